//! The command line (a contract: scripts and users depend on it; see DESIGN.md).

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// VirtualBox's five network modes as an AF_XDP poll-mode dataplane, with a harness that
/// proves each mode's reachability table and measures it.
#[derive(Debug, Parser)]
#[command(name = "vnet-bench", version, about, long_about = None)]
pub struct Cli {
    /// Mode for the main job (when no subcommand is given).
    #[arg(long, value_enum, global = false)]
    pub mode: Option<ModeName>,

    /// Backend for the main job: `auto` uses AF_XDP when running as root, else memory.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// The main job's guests: namespaces (veth) or QEMU guests on taps (virtio-net at
    /// QEMU's default offloads; needs qemu-system-x86 and `bash ci/guest/build.sh`).
    #[arg(long, value_enum, default_value_t = GuestKind::Netns)]
    pub guest: GuestKind,

    /// What to do (the main job when absent).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The five modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeName {
    /// Guests and the host on a private switch with DHCP; no uplink.
    HostOnly,
    /// Guests on a named switch; nothing else.
    Internal,
    /// Guests bridged onto the uplink LAN.
    Bridged,
    /// One private NAT per guest.
    Nat,
    /// One shared NATed segment.
    NatNetwork,
}

impl ModeName {
    /// The name as typed on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeName::HostOnly => "host-only",
            ModeName::Internal => "internal",
            ModeName::Bridged => "bridged",
            ModeName::Nat => "nat",
            ModeName::NatNetwork => "nat-network",
        }
    }
}

/// What the main job's guests are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuestKind {
    /// Network namespaces joined by veth pairs.
    Netns,
    /// QEMU guests on taps.
    Qemu,
}

/// Which port backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// AF_XDP when privileged, memory otherwise.
    Auto,
    /// In-process rings.
    Mem,
    /// AF_XDP sockets on veth interfaces in the harness's namespaces.
    Xdp,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the dataplane on existing interfaces of the current network namespace until
    /// Ctrl-C.
    Run(Box<RunArgs>),
    /// Measure a mode's throughput (NDR, PDR) and latency, with its peers (kernel, testpmd).
    Bench(Box<crate::bench::BenchArgs>),
    /// Compare two result folders, or two builds run alternately (`--ab OLD NEW`); exits
    /// 1 on a regression.
    Compare(crate::bench::CompareArgs),
    /// Print every measurement of a results folder as one table.
    Report(crate::bench::report::ReportArgs),
    /// Prove each mode's row of Table 1-1 by real traffic between independent stacks;
    /// exits 1 when any case does not match MODES.md.
    Conformance(crate::conformance::ConformanceArgs),
    /// Add or remove port-forward rules of a running NAT dataplane (as `VBoxManage
    /// controlvm natpf`).
    Natpf {
        /// The dataplane's control socket (printed in its startup line).
        #[arg(long, value_name = "PATH")]
        control: PathBuf,
        /// What to do.
        #[command(subcommand)]
        action: NatpfAction,
    },
    /// The committed pcap corpus.
    Pcap {
        /// What to do.
        #[command(subcommand)]
        action: PcapAction,
    },
    /// Run a capture into one port of a mode (in memory) and write what leaves each port.
    Replay {
        /// The mode.
        #[arg(long, value_enum)]
        mode: ModeName,
        /// The capture (pcap, Ethernet).
        #[arg(long, value_name = "FILE")]
        pcap: PathBuf,
        /// The port it enters: vm1, vm2, host, uplink (as the mode has them) or a number.
        #[arg(long, default_value = "vm1")]
        port: String,
        /// Where to write ROLE.pcap for every port.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Build or remove the harness's namespaces, to explore by hand.
    Topo {
        /// Up or down.
        #[command(subcommand)]
        action: TopoAction,
    },
}

/// `topo up|down`.
#[derive(Debug, Subcommand)]
pub enum TopoAction {
    /// Create the namespaces and veth pairs for a mode and print how to use them.
    Up {
        /// Mode whose topology to build.
        #[arg(long, value_enum, default_value_t = ModeName::Internal)]
        mode: ModeName,
        /// Name prefix of the namespaces.
        #[arg(long, default_value = "vnb")]
        prefix: String,
    },
    /// Remove every namespace with the prefix.
    Down {
        /// Name prefix of the namespaces.
        #[arg(long, default_value = "vnb")]
        prefix: String,
    },
}

/// NAT inbound filtering (RFC 4787 REQ-8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FilteringChoice {
    /// Any remote may use a mapping (most transparent).
    EndpointIndependent,
    /// Only remotes the guest sent to (the default: RFC 4787 REQ-8's stringent choice).
    AddressDependent,
    /// Only the exact remote address and port the guest sent to.
    AddressPortDependent,
}

/// `pcap` actions.
#[derive(Debug, Subcommand)]
pub enum PcapAction {
    /// Write the corpus (reproducibly) into a directory.
    Gen {
        /// The directory.
        #[arg(long, default_value = "pcaps")]
        out: PathBuf,
    },
}

/// `natpf` actions on a running NAT dataplane.
#[derive(Debug, Subcommand)]
pub enum NatpfAction {
    /// Add a rule (same syntax as `run --pf`).
    Add {
        /// The rule.
        rule: String,
    },
    /// Remove the rule with this name.
    Delete {
        /// The rule's name.
        name: String,
    },
    /// List the rules.
    List,
}

/// How the ports' NAPI deferral is chosen (`--napi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NapiChoice {
    /// No deferral at low receive rates, deferral at high ones.
    Auto,
    /// The deferral always.
    Fixed,
}

/// XDP attach mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AttachChoice {
    /// Native where the driver has it, else generic.
    Auto,
    /// Driver (native) XDP only.
    Native,
    /// Generic (skb) XDP only.
    Generic,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The mode to run.
    #[arg(long, value_enum)]
    pub mode: ModeName,
    /// A VM-side interface, or a VM's vhost-user socket: `vhost-user:PATH` (vnet
    /// listens, QEMU connects) or `vhost-user-client:PATH` (QEMU listens with
    /// `server=on`) (repeat for each VM).
    #[arg(long = "vm", value_name = "IF", required = true)]
    pub vms: Vec<String>,
    /// The host-side interface (Host-only, Bridged, NAT modes).
    #[arg(long, value_name = "IF")]
    pub host: Option<String>,
    /// The uplink interface (Bridged, NAT, NAT Network).
    #[arg(long, value_name = "IF")]
    pub uplink: Option<String>,
    /// Internal network name.
    #[arg(long, default_value = "intnet")]
    pub network: String,
    /// Cores to pin workers to, one worker per core (e.g. `0,1`).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub cores: Vec<usize>,
    /// Seconds between counter printouts (0: only at exit).
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub stats_interval: f64,
    /// Write every port's rx and tx to pcap files in this directory.
    #[arg(long, value_name = "DIR")]
    pub capture: Option<PathBuf>,
    /// FDB size limit.
    #[arg(long, default_value_t = 4096)]
    pub fdb_max: usize,
    /// FDB aging time in seconds.
    #[arg(long, default_value_t = 300)]
    pub fdb_aging: u64,
    /// The network's addressing as ADDRESS/PREFIX: Host-only's host address (default
    /// 192.168.56.1/24); Internal's with --dhcp (default 192.168.60.1/24).
    #[arg(long, value_name = "CIDR")]
    pub subnet: Option<String>,
    /// Serve DHCP on an Internal network.
    #[arg(long)]
    pub dhcp: bool,
    /// Do not serve DHCP on a Host-only network.
    #[arg(long, conflicts_with = "dhcp")]
    pub no_dhcp: bool,
    /// The DHCP server's address (default: .100 of the subnet).
    #[arg(long, value_name = "IP")]
    pub dhcp_server: Option<std::net::Ipv4Addr>,
    /// The DHCP pool as FIRST-LAST (default: .101-.254 of the subnet).
    #[arg(long, value_name = "FIRST-LAST")]
    pub dhcp_range: Option<String>,
    /// DHCP lease time in seconds.
    #[arg(long, default_value_t = 3600, value_name = "S")]
    pub lease_time: u64,
    /// Keep DHCP leases in this file across restarts (written atomically).
    #[arg(long, value_name = "PATH")]
    pub lease_file: Option<PathBuf>,
    /// NAT modes: the external address on the uplink, ADDRESS/PREFIX.
    #[arg(long, value_name = "CIDR")]
    pub external_ip: Option<String>,
    /// NAT modes: the next hop on the uplink.
    #[arg(long, value_name = "IP")]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// NAT modes: the upstream DNS resolver the proxy forwards to (none: SERVFAIL).
    #[arg(long, value_name = "IP")]
    pub dns: Option<std::net::Ipv4Addr>,
    /// NAT modes: a port-forward rule in VirtualBox's syntax (repeatable). NAT:
    /// `[vmN:]name,proto,hostip,hostport,guestip,guestport`; NAT Network:
    /// `name:proto:[hostip]:hostport:[guestip]:guestport`.
    #[arg(long = "pf", value_name = "RULE")]
    pub pf: Vec<String>,
    /// NAT modes: inbound filtering of dynamic mappings.
    #[arg(long, value_enum, default_value_t = FilteringChoice::AddressDependent)]
    pub nat_filtering: FilteringChoice,
    /// NAT modes: most sessions per worker; new ones beyond are refused (ICMP 3/13).
    #[arg(long, default_value_t = 65536)]
    pub nat_max_sessions: usize,
    /// NAT modes: most sessions one guest holds per worker (its fair share); new ones
    /// beyond are dropped as guest_limit while other guests keep opening theirs.
    #[arg(long, default_value_t = vnet_modes::nat::DEFAULT_SESSIONS_PER_GUEST, value_name = "N")]
    pub nat_sessions_per_guest: usize,
    /// DHCP: most leases the clients behind one port may hold (DHCP starvation bound).
    #[arg(long, default_value_t = vnet_modes::dhcp::DEFAULT_LEASES_PER_PORT, value_name = "N")]
    pub dhcp_leases_per_port: usize,
    /// Broadcast and multicast frames one VM port may send per second (0: unlimited);
    /// the rest are dropped as rate_limited.
    #[arg(long, default_value_t = 1000, value_name = "PPS")]
    pub broadcast_rate: u32,
    /// ARP requests for the dataplane's own addresses one VM port may send per second
    /// (0: unlimited).
    #[arg(long, default_value_t = 100, value_name = "PPS")]
    pub arp_rate: u32,
    /// Frames a VM port may send at once above those two rates after a quiet spell.
    #[arg(long, default_value_t = 64, value_name = "N")]
    pub rate_burst: u32,
    /// NAT modes: UDP mapping idle timeout, seconds (RFC 4787: at least 120).
    #[arg(long, default_value_t = 300)]
    pub nat_udp_timeout: u64,
    /// NAT modes: established TCP idle timeout, seconds (RFC 5382: at least 7440).
    #[arg(long, default_value_t = 7440)]
    pub nat_tcp_timeout: u64,
    /// NAT modes: transitory TCP timeout, seconds (RFC 5382: at least 240).
    #[arg(long, default_value_t = 240)]
    pub nat_tcp_transitory_timeout: u64,
    /// NAT modes: ICMP query timeout, seconds (RFC 5508: at least 60).
    #[arg(long, default_value_t = 60)]
    pub nat_icmp_timeout: u64,
    /// NAT modes with --host: the dataplane's address on the host link and the host's,
    /// as OWN/HOST (10.0.2.2 maps to HOST).
    #[arg(long, default_value = "198.19.0.2/198.19.0.1", value_name = "OWN/HOST")]
    pub host_link: String,
    /// NAT modes: control socket for adding and removing port-forward rules while running
    /// (`vnet-bench natpf`); default /run/vnet-bench/FIRST-VM-IF.sock.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// NAT modes: let this group use the control socket too (mode 0660 instead of 0600).
    #[arg(long, value_name = "GROUP")]
    pub control_group: Option<String>,
    /// XDP attach mode.
    #[arg(long, value_enum, default_value_t = AttachChoice::Auto)]
    pub xdp_mode: AttachChoice,
    /// Do not set busy-poll socket options.
    #[arg(long)]
    pub no_busy_poll: bool,
    /// Do not change the interfaces' NAPI settings.
    #[arg(long)]
    pub no_napi_tuning: bool,
    /// How the ports' NAPI deferral is chosen: `auto` (none while a port receives little,
    /// the deferral below above `--napi-auto-pps`: latency at low load, batches at high),
    /// or `fixed` (the deferral below, always).
    #[arg(long, value_enum, default_value_t = NapiChoice::Auto, conflicts_with = "no_napi_tuning")]
    pub napi: NapiChoice,
    /// Receive rate of a port (frames/s) above which `--napi auto` turns the deferral on;
    /// it turns off again below half of it.
    #[arg(long, value_name = "PPS", default_value_t = 500_000,
          value_parser = clap::value_parser!(u64).range(1000..))]
    pub napi_auto_pps: u64,
    /// `napi_defer_hard_irqs` written to every port's interface while it runs.
    #[arg(long, value_name = "N", default_value_t = vnet_core::port::xdp::DEFAULT_DEFER_HARD_IRQS,
          conflicts_with = "no_napi_tuning")]
    pub napi_defer_hard_irqs: u32,
    /// `gro_flush_timeout` (ns) written to every port's interface while it runs: how long
    /// a deferred receive waits, at most, before the kernel runs it.
    #[arg(long, value_name = "NS", default_value_t = vnet_core::port::xdp::DEFAULT_GRO_FLUSH_TIMEOUT_NS,
          conflicts_with = "no_napi_tuning")]
    pub gro_flush_timeout: u64,
    /// Bind without `XDP_USE_SG`: frames longer than one UMEM frame (TSO super-frames
    /// from tap guests) are then dropped by the kernel instead of segmented.
    #[arg(long)]
    pub no_multi_buffer: bool,
    /// The XDP fast path: `xdp` (the default: 2.1 to 2.6x the core's PDR in every mode,
    /// measured) installs the core's decisions for established flows (switched unicast,
    /// translated TCP/UDP sessions) into an XDP program on every port, which forwards
    /// their frames in the kernel; `off` sends every frame through the AF_XDP sockets to
    /// the core.
    #[arg(long, value_enum, default_value_t = OffloadChoice::Xdp)]
    pub offload: OffloadChoice,
    /// Flows the fast path holds, switched and translated each (its BPF hash maps).
    #[arg(long, value_name = "N", default_value_t = 65536,
          value_parser = clap::value_parser!(u32).range(16..=1 << 22))]
    pub offload_entries: u32,
    /// How often the fast path's use of its entries is read back into the core
    /// (timers, counters), in milliseconds; must stay below every timeout.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=10_000))]
    pub offload_sync_ms: u64,
    /// AF_XDP frames per port (receive buffers, in-flight packets, TSO segments).
    #[arg(long, value_name = "N", default_value_t = 4096,
          value_parser = clap::value_parser!(u32).range(256..=1 << 20))]
    pub frames_per_port: u32,
}

/// `--offload`: where established flows are forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OffloadChoice {
    /// The XDP fast path in front of the core.
    Xdp,
    /// The core only.
    Off,
}
