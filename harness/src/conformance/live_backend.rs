//! The live backends (`conformance --backend xdp`, and `--dut kernel`): the same cases as
//! the `mem` backend, between real Linux stacks in the harness's own namespaces, across a
//! real dataplane: `vnet-bench run` on AF_XDP in the dataplane namespace, or (with
//! [`Dut::Kernel`], see [`super::kernel_peer`]) the Linux kernel itself configured as the
//! mode on the same namespaces, for comparison.
//!
//! One topology per mode (namespaces `cfNNNN-{dp,vm1,vm2,host,inet}`, as the mode has
//! them): static addresses as in [`ModeUnderTest`], DHCP guests leased with busybox
//! `udhcpc` from the dataplane's own server, an `AF_PACKET` capture on every endpoint
//! interface (what tcpdump uses; it stamps which way each frame went), an injector for
//! raw probes, and UDP and TCP echo services on [`ECHO_PORT`] in every endpoint
//! namespace (the namespace's own kernel stack, logging each peer).
//!
//! A `+` case runs the real exchange from the sender's stack (`ping`, a UDP socket, a
//! TCP connection that sends, reads its echo and closes) and passes when it completed
//! both ways, the receiver's wire shows the exchange's marker from the expected source
//! (NAT: the translated address; L2 modes: the sender's own IP, port and MAC) and, behind
//! a translation, the replies reached the sender's own address and port.
//!
//! A `-` case tries every way in while the receiver's wire is watched: the sender's own
//! stack sends an ARP request for the peer's address (a `ping` of it unresolved), then,
//! with `ip neigh replace PEER lladdr MAC nud permanent` (and a /32 route where the peer
//! is off-link), directed unicast of the case's protocol; a broadcast (`ping -b`, or a
//! UDP broadcast); and, towards a translated target, the plain attempt at it; the `mem`
//! backend's raw probes (directed unicast, broadcast, ARP, each marked) are injected on
//! the sender's wire too (the only way to aim at a peer that shares the sender's own
//! address, as NAT's two guests on 10.0.2.15 do). It passes only when every probe left
//! the sender and nothing of them (a marker, the sender's MAC, or the sender's address
//! towards the probed ports) reached the receiver's wire within [`SETTLE_MS`].
//!
//! Invariants:
//! - verdicts come from the captured wires and the endpoints' own stacks, never from
//!   the dataplane's counters or state;
//! - one dataplane runs per mode (not per case, to keep `--mode all` within minutes):
//!   cases run one after another, each judged only on the frames captured during it and
//!   on markers unique within the run; every change a case makes (neighbour entries,
//!   routes, port-forward rules) is undone before the next one;
//! - only the harness's own namespaces are touched, and they are removed when the mode
//!   ends, also on failure (the [`Topology`] is dropped last).

use super::cases::{Case, Expect, ExpectedSource, ForwardRule, Target, ECHO_PORT};
use super::endpoint::{AddrConfig, Trace, TraceEntry, WireDir};
use super::evidence::{self, no_port};
use super::kernel_peer::KernelPeer;
use super::live_net::{in_netns, EchoServers, Injector, ServerEvent, Sniffer};
use super::plan::{ModeUnderTest, NAT_EXTERNAL_IP, NAT_HOST_LINK_IP, NAT_INET_IP};
use super::probe::{self, carries, mac_text, Ends, ProbeKind};
use super::table::{Direction, Proto, Reach, Role};
use super::{CaseRun, CaseRunner};
use crate::cli::ModeName;
use crate::mainjob::Dataplane;
use crate::scenario::{self, Scratch};
use crate::topo::{netns_exec, Topology};
use anyhow::{anyhow, bail, Context, Result};
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a `-` case watches for its probes after sending them.
pub const SETTLE_MS: u64 = 400;
/// How long the stack's ARP request is given to leave before the neighbour is pinned.
const ARP_WAIT_MS: u64 = 60;
/// How long a port-forward rule is given to reach the workers.
const RULE_SETTLE_MS: u64 = 60;
/// Source port of the raw probes.
const RAW_PORT: u16 = 49152;

/// What forwards the traffic between the namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dut {
    /// `vnet-bench run` on AF_XDP in the dataplane namespace.
    Xdp,
    /// The same with `--offload xdp`, and GRO on at every endpoint's veth (the kernel
    /// delivers XDP redirects into a veth only then).
    XdpOffload,
    /// The Linux kernel configured as the mode (bridge, routing, nftables, dnsmasq).
    Kernel,
}

/// The live [`CaseRunner`].
#[derive(Debug)]
pub struct LiveBackend {
    exe: PathBuf,
    prefix: String,
    dut: Dut,
    env: Option<ModeEnv>,
    seq: u32,
    started: Instant,
}

impl LiveBackend {
    /// A runner that starts `exe` (a `vnet-bench` binary) as the dataplane, or the kernel
    /// with [`Dut::Kernel`], in namespaces named `cfNNNN-*`.
    pub fn new(exe: impl Into<PathBuf>, dut: Dut) -> Self {
        Self {
            exe: exe.into(),
            prefix: format!("cf{:04}", std::process::id() % 10000),
            dut,
            env: None,
            seq: 0,
            started: Instant::now(),
        }
    }

    /// Tear down the current mode's topology (also done on drop and when a case of
    /// another mode comes).
    pub fn finish(&mut self) {
        if let Some(env) = self.env.take() {
            let label = env.label.clone();
            let log = env.stop();
            eprintln!(
                "live: {label} done at {:.1} s{}",
                self.started.elapsed().as_secs_f64(),
                if log.is_empty() {
                    String::new()
                } else {
                    format!("; {log}")
                }
            );
        }
    }
}

impl Drop for LiveBackend {
    fn drop(&mut self) {
        self.finish();
    }
}

impl CaseRunner for LiveBackend {
    fn name(&self) -> &'static str {
        match self.dut {
            Dut::Xdp => "xdp",
            Dut::XdpOffload => "xdp+offload",
            Dut::Kernel => "kernel",
        }
    }

    fn run_case(&mut self, mode: &ModeUnderTest, case: &Case) -> CaseRun {
        if self.env.as_ref().is_none_or(|e| e.label != mode.label) {
            self.finish();
            let t = Instant::now();
            let ready = setup(mode, &self.exe, &self.prefix, self.dut);
            match &ready {
                Ok(r) => eprintln!(
                    "live: {} up in {:.1} s ({})",
                    mode.label,
                    t.elapsed().as_secs_f64(),
                    r.describe()
                ),
                Err(e) => eprintln!("live: {} setup failed: {e:#}", mode.label),
            }
            self.env = Some(ModeEnv {
                label: mode.label.clone(),
                ready: ready.map_err(|e| format!("{e:#}").replace('\n', " | ")),
            });
        }
        self.seq += 1;
        let seq = self.seq;
        let env = self.env.as_mut().expect("set above");
        match &mut env.ready {
            Err(e) => failure(format!("setup: {e}"), Vec::new()),
            Ok(ready) => ready.run_case(mode, case, seq, &self.exe),
        }
    }
}

/// One mode's environment (or why it could not be built).
#[derive(Debug)]
struct ModeEnv {
    label: String,
    ready: Result<Ready, String>,
}

impl ModeEnv {
    fn stop(self) -> String {
        match self.ready {
            Ok(r) => r.stop(),
            Err(_) => String::new(),
        }
    }
}

/// One endpoint as it runs.
#[derive(Debug, Clone)]
struct End {
    role: Role,
    netns: String,
    ifname: String,
    mac: [u8; 6],
    ip: Ipv4Addr,
    prefix: u8,
}

impl End {
    fn on_link(&self, ip: Ipv4Addr) -> bool {
        let mask = mask(self.prefix);
        u32::from(ip) & mask == u32::from(self.ip) & mask
    }

    fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.ip) | !mask(self.prefix))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

/// What forwards, as it runs.
#[derive(Debug)]
enum Forwarder {
    Dataplane(Dataplane),
    Kernel(KernelPeer),
}

/// A built and running topology. Fields drop in order: captures, servers and injectors
/// first, then the forwarder, then the namespaces.
#[derive(Debug)]
struct Ready {
    sniffers: [Option<Sniffer>; 4],
    injectors: [Option<Injector>; 4],
    servers: [Option<EchoServers>; 4],
    forwarder: Option<Forwarder>,
    ends: [Option<End>; 4],
    control: Option<PathBuf>,
    _scratch: Scratch,
    topo: Topology,
}

/// Build a mode's topology, start what forwards, lease addresses, start captures and
/// servers.
fn setup(mode: &ModeUnderTest, exe: &Path, prefix: &str, dut: Dut) -> Result<Ready> {
    let mut roles: Vec<(u16, Role)> = Role::ALL
        .into_iter()
        .filter_map(|r| mode.port_of(r).map(|p| (p, r)))
        .collect();
    roles.sort();
    let addrs: Vec<(Role, Option<String>)> = roles
        .iter()
        .map(|&(_, r)| {
            let a = match mode.plan(r).addr {
                AddrConfig::Static { ip, prefix } => Some(format!("{ip}/{prefix}")),
                AddrConfig::Dhcp => None,
            };
            (r, a)
        })
        .collect();
    let spec: Vec<(&str, Option<&str>)> = addrs
        .iter()
        .map(|(r, a)| (r.name(), a.as_deref()))
        .collect();
    let topo = Topology::build(prefix, &spec)?;
    let scratch = Scratch::new(&format!("conf-{}", mode.label))?;
    let dp_if = |r: Role| topo.endpoint(r.name()).dp_ifname.clone();
    let mut control = None;
    let forwarder = match dut {
        Dut::Xdp | Dut::XdpOffload => {
            let mut args: Vec<String> = vec![
                "run".into(),
                "--mode".into(),
                mode.mode.as_str().into(),
                "--vm".into(),
                dp_if(Role::Vm1),
                "--vm".into(),
                dp_if(Role::Vm2),
            ];
            if mode.port_of(Role::Host).is_some() {
                args.extend(["--host".into(), dp_if(Role::Host)]);
            }
            if mode.port_of(Role::Inet).is_some() {
                args.extend(["--uplink".into(), dp_if(Role::Inet)]);
            }
            if mode.translation.routed {
                let path = scratch.join("control.sock");
                args.extend([
                    "--external-ip".into(),
                    format!("{NAT_EXTERNAL_IP}/24"),
                    "--gateway".into(),
                    NAT_INET_IP.to_string(),
                    "--host-link".into(),
                    format!("{NAT_HOST_LINK_IP}/{}", super::plan::NAT_HOST_IP),
                    "--control".into(),
                    path.display().to_string(),
                ]);
                control = Some(path);
            }
            args.extend(["--stats-interval".into(), "0".into()]);
            if dut == Dut::XdpOffload {
                args.extend(["--offload".into(), "xdp".into()]);
                for &(_, r) in &roles {
                    let e = topo.endpoint(r.name());
                    crate::topo::netns_exec(&e.netns, "ethtool", &["-K", &e.ifname, "gro", "on"])
                        .with_context(|| format!("could not turn GRO on at {}", e.ifname))?;
                }
            }
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            Forwarder::Dataplane(Dataplane::start_exe(exe, topo.dp_netns(), &args)?)
        }
        Dut::Kernel => Forwarder::Kernel(KernelPeer::start(mode, &topo, &scratch)?),
    };
    let script = scenario::udhcpc_script(&scratch)?;
    let mut ends: [Option<End>; 4] = [None, None, None, None];
    for &(_, role) in &roles {
        let t = topo.endpoint(role.name());
        if mode.plan(role).addr == AddrConfig::Dhcp {
            scenario::lease(t, &script).with_context(|| format!("{role}: DHCP"))?;
        }
        let (ip, prefix) = addr_with_prefix(&t.netns, &t.ifname)
            .ok_or_else(|| anyhow!("{role} has no IPv4 address"))?;
        ends[role.index()] = Some(End {
            role,
            netns: t.netns.clone(),
            ifname: t.ifname.clone(),
            mac: parse_mac(&t.mac).ok_or_else(|| anyhow!("bad MAC {}", t.mac))?,
            ip,
            prefix,
        });
    }
    let mut sniffers: [Option<Sniffer>; 4] = [None, None, None, None];
    let mut injectors: [Option<Injector>; 4] = [None, None, None, None];
    let mut servers: [Option<EchoServers>; 4] = [None, None, None, None];
    for e in ends.iter().flatten() {
        sniffers[e.role.index()] = Some(Sniffer::start(&e.netns, &e.ifname)?);
        injectors[e.role.index()] = Some(Injector::open(&e.netns, &e.ifname)?);
        servers[e.role.index()] = Some(EchoServers::start(&e.netns, ECHO_PORT)?);
    }
    std::thread::sleep(Duration::from_millis(50));
    Ok(Ready {
        sniffers,
        injectors,
        servers,
        forwarder: Some(forwarder),
        ends,
        control,
        _scratch: scratch,
        topo,
    })
}

/// The IPv4 address and prefix length of an interface.
fn addr_with_prefix(netns: &str, ifname: &str) -> Option<(Ipv4Addr, u8)> {
    let out = netns_exec(netns, "ip", &["-4", "-o", "addr", "show", "dev", ifname]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    let (ip, prefix) = word.split_once('/')?;
    Some((ip.parse().ok()?, prefix.parse().ok()?))
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    Some(mac)
}

fn failure(evidence: String, traces: Vec<(String, Trace)>) -> CaseRun {
    CaseRun {
        reached: false,
        pass: false,
        evidence,
        traces,
    }
}

fn endpoint_text(ip: Ipv4Addr, port: u16, mac: [u8; 6]) -> String {
    if port == 0 {
        format!("{ip} ({})", mac_text(mac))
    } else {
        format!("{ip}:{port} ({})", mac_text(mac))
    }
}

/// A 16-byte marker (so that `ping -p` can carry it whole), unique within a run.
fn marker(seq: u32, what: &str) -> Vec<u8> {
    let mut m = format!("vnb{:05}{what:<8}", seq % 100_000).into_bytes();
    m.truncate(16);
    m
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `ping` in a namespace, not waited for.
fn spawn_ping(netns: &str, target: Ipv4Addr, pattern: &[u8], broadcast: bool) -> Option<Child> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", netns, "ping", "-n", "-c", "1", "-W", "1"]);
    if broadcast {
        cmd.arg("-b");
    }
    cmd.args(["-p", &hex(pattern)])
        .arg(target.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A UDP datagram from a namespace's stack.
fn udp_send(netns: &str, to: SocketAddrV4, payload: &[u8], broadcast: bool) -> Result<()> {
    let payload = payload.to_vec();
    in_netns(netns, move || -> Result<()> {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
        s.set_broadcast(broadcast)?;
        s.send_to(&payload, to)?;
        Ok(())
    })?
}

/// A TCP connection attempt from a namespace's stack (sending `payload` if it connects),
/// on its own thread.
fn tcp_try(netns: &str, to: SocketAddrV4, payload: Option<Vec<u8>>) -> std::thread::JoinHandle<()> {
    let netns = netns.to_string();
    std::thread::spawn(move || {
        let _ = in_netns(&netns, move || {
            if let Ok(mut s) =
                TcpStream::connect_timeout(&SocketAddr::V4(to), Duration::from_millis(300))
            {
                if let Some(p) = payload {
                    let _ = s.write_all(&p);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
    })
}

/// What a client's exchange did.
struct Exchange {
    completed: bool,
    client_port: u16,
    text: String,
}

/// The real exchange of a `+` case from `sender`'s stack.
fn exchange(sender: &End, proto: Proto, target: (Ipv4Addr, u16), m: &[u8]) -> Exchange {
    let t0 = Instant::now();
    let (ip, port) = target;
    match proto {
        Proto::Icmp => {
            for attempt in 1..=3u32 {
                let ok = Command::new("ip")
                    .args(["netns", "exec", &sender.netns, "ping", "-n", "-c", "1"])
                    .args(["-W", "1", "-p", &hex(m), &ip.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return Exchange {
                        completed: true,
                        client_port: 0,
                        text: format!(
                            "ping: echo reply from {ip} after {} ms ({attempt} request{})",
                            t0.elapsed().as_millis(),
                            if attempt == 1 { "" } else { "s" }
                        ),
                    };
                }
            }
            Exchange {
                completed: false,
                client_port: 0,
                text: "ping: no echo reply within 3 s (3 requests)".into(),
            }
        }
        Proto::Udp => {
            let m = m.to_vec();
            let r = in_netns(&sender.netns, move || -> Result<(u16, u32, bool)> {
                let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))?;
                s.set_read_timeout(Some(Duration::from_millis(300)))?;
                let local = s.local_addr()?.port();
                let to = SocketAddrV4::new(ip, port);
                let mut buf = [0u8; 2048];
                for attempt in 1..=6u32 {
                    s.send_to(&m, to)?;
                    let deadline = Instant::now() + Duration::from_millis(300);
                    while Instant::now() < deadline {
                        match s.recv_from(&mut buf) {
                            Ok((n, SocketAddr::V4(from))) if from == to && buf[..n] == m[..] => {
                                return Ok((local, attempt, true))
                            }
                            Ok(_) => {}
                            Err(_) => break,
                        }
                    }
                }
                Ok((local, 6, false))
            });
            match r.and_then(|r| r) {
                Ok((local, n, true)) => Exchange {
                    completed: true,
                    client_port: local,
                    text: format!(
                        "udp echo from {ip}:{port} after {} ms ({n} datagram{})",
                        t0.elapsed().as_millis(),
                        if n == 1 { "" } else { "s" }
                    ),
                },
                Ok((local, n, false)) => Exchange {
                    completed: false,
                    client_port: local,
                    text: format!("no udp echo from {ip}:{port} within 1.8 s ({n} datagrams)"),
                },
                Err(e) => Exchange {
                    completed: false,
                    client_port: 0,
                    text: format!("udp exchange failed: {e:#}"),
                },
            }
        }
        Proto::Tcp => {
            let m = m.to_vec();
            let r = in_netns(&sender.netns, move || -> (u16, usize, Result<()>) {
                let to = SocketAddr::V4(SocketAddrV4::new(ip, port));
                let mut s = match TcpStream::connect_timeout(&to, Duration::from_secs(3)) {
                    Ok(s) => s,
                    Err(e) => return (0, 0, Err(anyhow!("connect: {e}"))),
                };
                let local = s.local_addr().map(|a| a.port()).unwrap_or(0);
                let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
                if let Err(e) = s.write_all(&m) {
                    return (local, 0, Err(anyhow!("send: {e}")));
                }
                let _ = s.shutdown(std::net::Shutdown::Write);
                let mut echoed = Vec::new();
                let r = s.read_to_end(&mut echoed);
                let n = echoed.len();
                match r {
                    Ok(_) if echoed == m => (local, n, Ok(())),
                    Ok(_) => (local, n, Err(anyhow!("echo differs"))),
                    Err(e) => (local, n, Err(anyhow!("read: {e}"))),
                }
            });
            match r {
                Ok((local, n, Ok(()))) => Exchange {
                    completed: true,
                    client_port: local,
                    text: format!(
                        "connected to {ip}:{port}, {n} bytes echoed, closed after {} ms",
                        t0.elapsed().as_millis()
                    ),
                },
                Ok((local, n, Err(e))) => Exchange {
                    completed: false,
                    client_port: local,
                    text: format!(
                        "tcp exchange with {ip}:{port} incomplete ({e}, {n} bytes echoed)"
                    ),
                },
                Err(e) => Exchange {
                    completed: false,
                    client_port: 0,
                    text: format!("tcp exchange failed: {e:#}"),
                },
            }
        }
    }
}

/// Whether an ARP request for `target` from `mac` is in `frame`.
fn arp_request_for(frame: &[u8], mac: [u8; 6], target: Ipv4Addr) -> bool {
    frame.len() >= 42
        && frame[12..14] == [0x08, 0x06]
        && frame[20..22] == [0, 1]
        && frame[22..28] == mac
        && frame[38..42] == target.octets()
}

/// Whether `frame` is an IPv4 packet from `src` that a probe of `proto` to `ports` would
/// have become (an echo request, or UDP/TCP to one of the ports).
fn from_address_to(frame: &[u8], src: Ipv4Addr, proto: Proto, ports: &[u16]) -> bool {
    let Some(seen) = probe::seen_source(frame) else {
        return false;
    };
    if seen.ip != src || frame.len() < 34 {
        return false;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let l4 = 14 + ihl;
    match (frame[23], proto) {
        (1, Proto::Icmp) => frame.get(l4) == Some(&8),
        (17, Proto::Udp) | (6, Proto::Tcp) => {
            probe::seen_destination(frame).is_some_and(|(_, p)| ports.contains(&p))
        }
        _ => false,
    }
}

impl Ready {
    fn describe(&self) -> String {
        let ends: Vec<String> = self
            .ends
            .iter()
            .flatten()
            .map(|e| format!("{} {}/{}", e.role, e.ip, e.prefix))
            .collect();
        format!(
            "{}; {}",
            match self.forwarder {
                Some(Forwarder::Dataplane(_)) => "vnet-bench run in ".to_string(),
                Some(Forwarder::Kernel(_)) => "the kernel in ".to_string(),
                None => String::new(),
            } + self.topo.dp_netns(),
            ends.join(", ")
        )
    }

    /// Stop everything; a summary of the forwarder's end.
    fn stop(mut self) -> String {
        for s in &mut self.sniffers {
            *s = None;
        }
        for s in &mut self.servers {
            *s = None;
        }
        match self.forwarder.take() {
            Some(Forwarder::Dataplane(mut dp)) => match dp.stop() {
                Ok(log) => match fast_path_share(&log) {
                    Some((fast, core)) => format!(
                        "dataplane stopped cleanly; the fast path carried {fast} frames, the core {core}"
                    ),
                    None => "dataplane stopped cleanly".into(),
                },
                Err(e) => format!("DATAPLANE FAILED: {e:#}"),
            },
            Some(Forwarder::Kernel(k)) => {
                drop(k);
                String::new()
            }
            None => String::new(),
        }
    }

    fn end(&self, role: Role) -> Option<&End> {
        self.ends[role.index()].as_ref()
    }

    fn marks(&self) -> [usize; 4] {
        let mut m = [0; 4];
        for (i, s) in self.sniffers.iter().enumerate() {
            m[i] = s.as_ref().map_or(0, Sniffer::mark);
        }
        m
    }

    fn trace(&self, role: Role, marks: &[usize; 4], t0: Instant) -> Trace {
        self.sniffers[role.index()]
            .as_ref()
            .map_or_else(Vec::new, |s| s.since(marks[role.index()], t0))
    }

    fn traces(&self, marks: &[usize; 4], t0: Instant) -> Vec<(String, Trace)> {
        Role::ALL
            .into_iter()
            .filter(|r| self.end(*r).is_some())
            .map(|r| (r.name().to_string(), self.trace(r, marks, t0)))
            .collect()
    }

    fn run_case(&mut self, mode: &ModeUnderTest, case: &Case, seq: u32, exe: &Path) -> CaseRun {
        let mut installed = String::new();
        let mut undo: Option<String> = None;
        if let Some(rule) = case.forward {
            match self.install(mode, case, &rule, seq, exe) {
                Ok((text, name)) => {
                    installed = format!("rule {text} installed at run time; ");
                    undo = Some(name);
                }
                Err(e) => return failure(format!("rule refused: {e:#}"), Vec::new()),
            }
        }
        let mut run = match case.expect {
            Expect::Deliver { source } => self.deliver(mode, case, source, seq),
            Expect::Block => self.block(mode, case, seq),
        };
        if let Some(name) = undo {
            if let Err(e) = self.uninstall(&name, exe) {
                run.pass = false;
                let _ = write!(run.evidence, "; rule {name} could not be removed: {e:#}");
            }
        }
        run.evidence.insert_str(0, &installed);
        run
    }

    /// Install a case's port-forward rule; its text and its name (to remove it).
    fn install(
        &mut self,
        mode: &ModeUnderTest,
        case: &Case,
        rule: &ForwardRule,
        seq: u32,
        exe: &Path,
    ) -> Result<(String, String)> {
        let guest = self
            .end(case.receiver())
            .ok_or_else(|| anyhow!("{} has no port to forward to", case.receiver()))?
            .clone();
        let proto = rule.proto.name();
        let name = format!("conf{seq}");
        if let Some(Forwarder::Kernel(k)) = &mut self.forwarder {
            let text = k.add_forward(&name, rule, guest.ip)?;
            return Ok((text, name));
        }
        let control = self
            .control
            .clone()
            .ok_or_else(|| anyhow!("{} has no control socket", mode.label))?;
        let text = match mode.mode {
            ModeName::NatNetwork => format!(
                "{name}:{proto}:[]:{}:[{}]:{}",
                rule.host_port, guest.ip, rule.guest_port
            ),
            _ => {
                let vm = if case.receiver() == Role::Vm2 {
                    "vm2:"
                } else {
                    ""
                };
                format!(
                    "{vm}{name},{proto},,{},,{}",
                    rule.host_port, rule.guest_port
                )
            }
        };
        let out = Command::new(exe)
            .arg("natpf")
            .arg("--control")
            .arg(&control)
            .args(["add", &text])
            .output()
            .context("could not run vnet-bench natpf")?;
        if !out.status.success() {
            bail!(
                "`vnet-bench natpf add {text}`: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        std::thread::sleep(Duration::from_millis(RULE_SETTLE_MS));
        Ok((format!("`vnet-bench natpf add {text}`"), name))
    }

    fn uninstall(&mut self, name: &str, exe: &Path) -> Result<()> {
        if let Some(Forwarder::Kernel(k)) = &mut self.forwarder {
            return k.delete_forward(name);
        }
        let control = self.control.clone().ok_or_else(|| anyhow!("no control"))?;
        let out = Command::new(exe)
            .arg("natpf")
            .arg("--control")
            .arg(&control)
            .args(["delete", name])
            .output()?;
        if !out.status.success() {
            bail!("{}", String::from_utf8_lossy(&out.stderr).trim());
        }
        std::thread::sleep(Duration::from_millis(RULE_SETTLE_MS));
        Ok(())
    }

    /// A `+` case.
    fn deliver(
        &mut self,
        mode: &ModeUnderTest,
        case: &Case,
        source: ExpectedSource,
        seq: u32,
    ) -> CaseRun {
        let (from, to) = (case.sender(), case.receiver());
        let (Some(sender), Some(receiver)) = (self.end(from).cloned(), self.end(to).cloned())
        else {
            let missing = if self.end(from).is_none() { from } else { to };
            return failure(no_port(mode, missing), Vec::new());
        };
        let target = match case.target {
            Target::Receiver => (receiver.ip, ECHO_PORT),
            Target::Via { ip, port } => (ip, port),
        };
        let m = marker(seq, "xchg");
        let marks = self.marks();
        let t0 = Instant::now();
        let ex = exchange(&sender, case.proto, target, &m);
        // Let the receiver finish closing and the captures catch up.
        let mut server_saw = None;
        for _ in 0..40 {
            server_saw = self.servers[to.index()].as_ref().and_then(|s| {
                s.events().into_iter().find(|e| match e {
                    ServerEvent::Udp { payload, .. } => payload == &m,
                    ServerEvent::Tcp { payload, .. } => payload == &m,
                })
            });
            if case.proto == Proto::Icmp || server_saw.is_some() || !ex.completed {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::sleep(Duration::from_millis(30));
        let traces = self.traces(&marks, t0);
        let trace_of = |r: Role| -> &[TraceEntry] {
            traces
                .iter()
                .find(|(n, _)| n == r.name())
                .map_or(&[], |(_, t)| t.as_slice())
        };
        let seen = trace_of(to)
            .iter()
            .filter(|t| t.dir == WireDir::FromDataplane && carries(&t.bytes, &m))
            .find_map(|t| probe::seen_source(&t.bytes));
        let mut evidence = ex.text.clone();
        let mut closed = true;
        if case.proto == Proto::Tcp && ex.completed {
            closed = matches!(server_saw, Some(ServerEvent::Tcp { closed: true, .. }));
            let _ = write!(
                evidence,
                " (server {})",
                if closed { "closed" } else { "not closed" }
            );
        }
        let port = if case.proto == Proto::Icmp {
            0
        } else {
            ex.client_port
        };
        let source_ok = match seen {
            None => {
                let _ = write!(evidence, "; nothing carrying the marker reached {to}");
                false
            }
            Some(seen) => {
                let (ok, want) = match source {
                    ExpectedSource::Sender => (
                        seen.ip == sender.ip && seen.mac == sender.mac && seen.port == port,
                        endpoint_text(sender.ip, port, sender.mac),
                    ),
                    ExpectedSource::Translated(ip) => (seen.ip == ip, format!("{ip}")),
                    ExpectedSource::Routed => (
                        seen.ip == sender.ip && seen.port == port,
                        format!(
                            "{} (behind the router)",
                            endpoint_text(sender.ip, port, seen.mac)
                        ),
                    ),
                };
                let saw = endpoint_text(seen.ip, seen.port, seen.mac);
                if ok {
                    let _ = write!(evidence, "; {to} saw {saw} as expected");
                } else {
                    let _ = write!(evidence, "; {to} saw {saw}, expected {want}");
                }
                ok
            }
        };
        if let Some(e) = &server_saw {
            let (kind, from) = match e {
                ServerEvent::Udp { from, .. } => ("udp", from),
                ServerEvent::Tcp { from, .. } => ("tcp", from),
            };
            let _ = write!(evidence, " (its {kind} echo server logged {from})");
        }
        let mut reply_ok = true;
        if source != ExpectedSource::Sender && ex.completed {
            let back = trace_of(from)
                .iter()
                .filter(|t| t.dir == WireDir::FromDataplane && carries(&t.bytes, &m))
                .find_map(|t| probe::seen_destination(&t.bytes));
            reply_ok = back == Some((sender.ip, port));
            let _ = match back {
                Some((ip, p)) if reply_ok => {
                    write!(evidence, "; replies reached {from} at {ip}:{p}")
                }
                Some((ip, p)) => write!(
                    evidence,
                    "; replies reached {from} at {ip}:{p}, expected {}:{port}",
                    sender.ip
                ),
                None => write!(evidence, "; no reply carrying the marker reached {from}"),
            };
        }
        CaseRun {
            reached: ex.completed,
            pass: ex.completed && source_ok && closed && reply_ok,
            evidence,
            traces,
        }
    }

    /// A `-` case.
    fn block(&mut self, mode: &ModeUnderTest, case: &Case, seq: u32) -> CaseRun {
        let (from, to) = (case.sender(), case.receiver());
        let Some(sender) = self.end(from).cloned() else {
            return CaseRun {
                reached: false,
                pass: true,
                evidence: format!("{}; nothing can be sent from {from}", no_port(mode, from)),
                traces: Vec::new(),
            };
        };
        let (peer_mac, peer_ip) = match self.end(to) {
            Some(e) => (e.mac, Some(e.ip)),
            None => (mode.plan(to).mac, mode.plan(to).static_ip()),
        };
        let Some(peer_ip) = peer_ip else {
            return failure(format!("{to} has no address to aim probes at"), Vec::new());
        };
        let dst_port = match case.target {
            Target::Receiver => ECHO_PORT,
            Target::Via { port, .. } => port,
        };
        let ns = sender.netns.clone();
        let dev = sender.ifname.clone();
        let peer = peer_ip.to_string();
        // (name, marker or None for the stack's ARP and TCP SYN, which carry none)
        let mut probes: Vec<(String, Option<Vec<u8>>)> = Vec::new();
        let mut children: Vec<Child> = Vec::new();
        let mut threads = Vec::new();
        let mut undo: Vec<Vec<String>> = Vec::new();
        let marks = self.marks();
        let t0 = Instant::now();
        let own = peer_ip == sender.ip;
        let mut via = None;
        if !own {
            if !sender.on_link(peer_ip) {
                let route = format!("{peer}/32");
                let _ = netns_exec(&ns, "ip", &["route", "replace", &route, "dev", &dev]);
                undo.push(vec![
                    "route".into(),
                    "del".into(),
                    route,
                    "dev".into(),
                    dev.clone(),
                ]);
            }
            // (c) ARP: the stack resolves the peer's address.
            let _ = netns_exec(&ns, "ip", &["neigh", "del", &peer, "dev", &dev]);
            let m = marker(seq, "arp");
            if let Some(mut c) = spawn_ping(&ns, peer_ip, &m, false) {
                std::thread::sleep(Duration::from_millis(ARP_WAIT_MS));
                let _ = c.kill();
                let _ = c.wait();
            }
            probes.push(("stack arp".into(), None));
            let _ = netns_exec(&ns, "ip", &["neigh", "del", &peer, "dev", &dev]);
            // (a) directed unicast to the peer's MAC.
            let mac = mac_text(peer_mac);
            let _ = netns_exec(
                &ns,
                "ip",
                &[
                    "neigh",
                    "replace",
                    &peer,
                    "lladdr",
                    &mac,
                    "dev",
                    &dev,
                    "nud",
                    "permanent",
                ],
            );
            undo.insert(
                0,
                vec![
                    "neigh".into(),
                    "del".into(),
                    peer.clone(),
                    "dev".into(),
                    dev.clone(),
                ],
            );
            let m = marker(seq, "uni");
            match case.proto {
                Proto::Icmp => {
                    children.extend(spawn_ping(&ns, peer_ip, &m, false));
                    probes.push(("stack unicast".into(), Some(m)));
                }
                Proto::Udp => {
                    let _ = udp_send(&ns, SocketAddrV4::new(peer_ip, dst_port), &m, false);
                    probes.push(("stack unicast".into(), Some(m)));
                }
                Proto::Tcp => {
                    threads.push(tcp_try(&ns, SocketAddrV4::new(peer_ip, dst_port), None));
                    probes.push(("stack unicast".into(), None));
                }
            }
        }
        // (b) broadcast.
        let m = marker(seq, "bcast");
        let bcast = sender.broadcast();
        if case.proto == Proto::Udp {
            let _ = udp_send(&ns, SocketAddrV4::new(bcast, dst_port), &m, true);
        } else {
            children.extend(spawn_ping(&ns, bcast, &m, true));
        }
        probes.push(("stack broadcast".into(), Some(m)));
        // The mem backend's raw probes, on the sender's wire.
        let ends = Ends {
            src_mac: sender.mac,
            src_ip: sender.ip,
            dst_mac: peer_mac,
            dst_ip: peer_ip,
        };
        for kind in ProbeKind::ALL {
            let m = marker(seq, &format!("raw{}", &kind.name()[..3]));
            let frame = probe::probe_frame(kind, case.proto, &ends, (RAW_PORT, dst_port), &m);
            if let Some(inj) = &self.injectors[from.index()] {
                inj.send(&frame);
            }
            probes.push((format!("raw {}", kind.name()), Some(m)));
        }
        // The plain attempt at a translated target.
        if let Target::Via { ip, port } = case.target {
            let m = marker(seq, "via");
            match case.proto {
                Proto::Icmp => children.extend(spawn_ping(&ns, ip, &m, false)),
                Proto::Udp => {
                    let _ = udp_send(&ns, SocketAddrV4::new(ip, port), &m, false);
                }
                Proto::Tcp => {
                    threads.push(tcp_try(&ns, SocketAddrV4::new(ip, port), Some(m.clone())))
                }
            }
            probes.push((format!("stack to {ip}:{port}"), Some(m)));
            via = Some((ip, port));
        }
        std::thread::sleep(Duration::from_millis(SETTLE_MS));
        for mut c in children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for t in threads {
            let _ = t.join();
        }
        for args in undo {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let _ = netns_exec(&ns, "ip", &args);
        }
        let traces = self.traces(&marks, t0);
        let trace_of = |r: Role| -> &[TraceEntry] {
            traces
                .iter()
                .find(|(n, _)| n == r.name())
                .map_or(&[], |(_, t)| t.as_slice())
        };
        // Every probe must have left the sender, or the case proves nothing.
        let out: Vec<&TraceEntry> = trace_of(from)
            .iter()
            .filter(|t| t.dir == WireDir::ToDataplane)
            .collect();
        let unsent: Vec<&str> = probes
            .iter()
            .filter(|(name, m)| {
                !out.iter().any(|t| match m {
                    // A TCP attempt that found no peer carries its marker in no frame:
                    // its SYN is the probe.
                    Some(m) if name.starts_with("stack to") && case.proto == Proto::Tcp => {
                        carries(&t.bytes, m) || probe::seen_destination(&t.bytes) == via
                    }
                    Some(m) => carries(&t.bytes, m),
                    None if name == "stack arp" => arp_request_for(&t.bytes, sender.mac, peer_ip),
                    None => probe::seen_destination(&t.bytes) == Some((peer_ip, dst_port)),
                })
            })
            .map(|(n, _)| n.as_str())
            .collect();
        if !unsent.is_empty() {
            return failure(
                format!("probes did not leave {from}: {}", unsent.join(", ")),
                traces,
            );
        }
        let receiver_exists = self.end(to).is_some();
        let expected = mode.expected();
        let watched: Vec<Role> = if receiver_exists {
            vec![to]
        } else {
            Role::ALL
                .into_iter()
                .filter(|&r| r != from && self.end(r).is_some())
                .filter(|&r| {
                    Direction::between(from, r).is_some_and(|d| {
                        expected[Direction::ALL.iter().position(|x| *x == d).unwrap_or(0)]
                            != Reach::Yes
                    })
                })
                .collect()
        };
        let ports = [dst_port, ECHO_PORT];
        let hits = |r: Role| -> Vec<String> {
            let frames: Vec<&TraceEntry> = trace_of(r)
                .iter()
                .filter(|t| t.dir == WireDir::FromDataplane)
                .collect();
            let mut hits: Vec<String> = probes
                .iter()
                .filter_map(|(name, m)| {
                    let m = m.as_ref()?;
                    frames
                        .iter()
                        .any(|t| carries(&t.bytes, m))
                        .then(|| name.clone())
                })
                .collect();
            if frames
                .iter()
                .any(|t| t.bytes.get(6..12) == Some(&sender.mac[..]))
            {
                hits.push(format!("frames from {}", mac_text(sender.mac)));
            }
            if frames
                .iter()
                .any(|t| from_address_to(&t.bytes, sender.ip, case.proto, &ports))
            {
                hits.push(format!("{} from {}", case.proto, sender.ip));
            }
            hits
        };
        let mut leaks = Vec::new();
        let mut elsewhere = Vec::new();
        for r in Role::ALL {
            if r == from || self.end(r).is_none() {
                continue;
            }
            let h = hits(r);
            if h.is_empty() {
                continue;
            }
            if watched.contains(&r) {
                leaks.push(format!("{} reached {r}", h.join("+")));
            } else {
                elsewhere.push(r.name().to_string());
            }
        }
        let names: Vec<&str> = probes.iter().map(|(n, _)| n.as_str()).collect();
        let mut evidence = format!(
            "{} from {from} to {to} {}{}",
            names.join(", "),
            endpoint_text(peer_ip, 0, peer_mac),
            if own {
                " (the sender's own address: raw probes only for unicast and ARP)"
            } else {
                ""
            }
        );
        let leaked = evidence::negative_outcome(
            &mut evidence,
            mode,
            to,
            receiver_exists,
            &leaks,
            &watched,
            &elsewhere,
        );
        CaseRun {
            reached: leaked,
            pass: !leaked,
            evidence,
            traces,
        }
    }
}

/// Frames the fast path took and frames it handed to the core, summed over the ports of
/// the dataplane's final counters (`None` without a fast path).
fn fast_path_share(log: &str) -> Option<(u64, u64)> {
    let last = log.rsplit("final counters:").next()?;
    let sum = |key: &str| -> u64 {
        last.split_whitespace()
            .filter_map(|w| w.strip_prefix(key))
            .filter_map(|v| v.parse::<u64>().ok())
            .sum()
    };
    let (fast, core) = (sum("fast_rx="), sum("to_core="));
    (log.contains("final counters:") && fast + core > 0).then_some((fast, core))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fast_path_share_is_summed_over_the_final_counters_only() {
        let log = "port 0 ...\nfast_rx=99 to_core=99\nvnet-bench run: stopped; final counters:\n\
                   0 vm1 10 10 0  fast_rx=7 fast_tx=3 to_core=2 miss_no_entry=2\n\
                   1 vm2 5 5 0  fast_rx=3 fast_tx=7 to_core=1";
        assert_eq!(fast_path_share(log), Some((10, 3)));
        assert_eq!(fast_path_share("final counters:\n0 vm1 10 10 0"), None);
        assert_eq!(fast_path_share("fast_rx=5"), None);
    }

    #[test]
    fn markers_fit_ping_patterns_and_differ() {
        let a = marker(1, "rawbro");
        let b = marker(1, "rawuni");
        assert_eq!(a.len(), 16);
        assert_eq!(hex(&a).len(), 32);
        assert_ne!(a, b);
        assert_ne!(marker(2, "xchg"), marker(12, "xchg"));
    }

    #[test]
    fn subnets() {
        let e = End {
            role: Role::Vm1,
            netns: String::new(),
            ifname: String::new(),
            mac: [0; 6],
            ip: Ipv4Addr::new(10, 0, 2, 15),
            prefix: 24,
        };
        assert_eq!(e.broadcast(), Ipv4Addr::new(10, 0, 2, 255));
        assert!(e.on_link(Ipv4Addr::new(10, 0, 2, 2)));
        assert!(!e.on_link(Ipv4Addr::new(198, 19, 0, 1)));
        assert_eq!(
            parse_mac("02:76:6e:aa:00:01"),
            Some([2, 0x76, 0x6e, 0xaa, 0, 1])
        );
    }
}
