//! The devices under test, started one after the other on the same topology: vnet
//! (`vnet-bench run`, and `vnet-offload`: the same with `--offload xdp`), the Linux kernel
//! doing the same mode (a bridge for the switched modes; routing and nftables NAT for the
//! NAT modes, and `kernel-flowtable`: the same plus an nftables flowtable, the kernel's own
//! fast path), DPDK's testpmd over `net_af_xdp` (io forwarding: the I/O-layer reference),
//! and `xdp-redirect`: the kernel's raw XDP_REDIRECT from one forwarding port to the other,
//! the limit of this topology.
//!
//! Settings: each DUT runs with the NAPI settings that are its own, on its own
//! dataplane-side interfaces only (never the generator's or the sink's ends): vnet its
//! `--napi auto` policy (set by vnet itself); testpmd the deferral DPDK's af_xdp guide
//! asks for with its preferred busy polling (`napi_defer_hard_irqs=2`,
//! `gro_flush_timeout=200000`, [`NapiKnobs`], restored when it stops); the kernel and
//! xdp-redirect their defaults (no deferral: a deferred bridge waits for the timer,
//! ~170 us a frame). The kernel's forwarding runs in the interfaces' NAPI, made threaded
//! and pinned to the DUT core, as vnet's worker is; otherwise it would run in the softirq
//! of the generator's core. xdp-redirect's program is left where veth runs every XDP
//! program, vnet's own and its fast path included: in the softirq of the core that
//! sends into the port (threaded, it lost frames at any load: see `xdp_redirect`). On
//! a veth the sink's receive work runs on the core that transmits into it: the DUT's for
//! vnet's workers, testpmd and the kernel; the generator's for xdp-redirect (and for
//! frames vnet's XDP fast path forwards).
//!
//! Not every DUT does every scenario's job: on the NAT modes testpmd and xdp-redirect
//! move frames untouched (the I/O a NAT needs, not a NAT; their frames are addressed to
//! the sink), which [`DutInfo::note`] says in every report; kernel-flowtable exists only
//! where the kernel routes (the NAT modes' routed directions) and refuses elsewhere in one
//! sentence, like testpmd on a scenario without exactly two ports.
//!
//! Invariants: whatever a DUT sets up is undone when it stops, also when its start fails
//! half-way (kernel: the undo list, newest first, and [`NapiKnobs`] restored on drop;
//! xdp-redirect: its programs detached by [`XdpPorts`]'s drop, so also on unwinding); a
//! DUT never replaces an XDP program it did not attach, and xdp-redirect's DEVMAP names
//! only the DUT namespace's ports (written from inside it).
//!
//! Kernel facts the peers rely on (Linux 6.18): a veth takes XDP-redirected frames
//! (`ndo_xdp_xmit`) only when its peer has NAPI, i.e. a native XDP program or GRO on;
//! since 6.3 the devmap checks the target's `xdp_features` (NETDEV_XDP_ACT_NDO_XMIT,
//! set by `veth_set_xdp_features`) and drops otherwise. A veth's GRO is off by default.
//! The generator redirects into a dataplane-side port, so every DUT gives those ports
//! NAPI (vnet and testpmd their XDP programs, the kernel GRO, xdp-redirect its program);
//! xdp-redirect redirects into the dataplane side of the sink's veth, whose peer carries
//! the sink's native XDP program: checked at start ([`sink_side_napi`]).
//! An nftables flowtable offloads a UDP flow as soon as conntrack has confirmed it
//! (`nft_flow_offload_eval`: TCP must be established, UDP needs no reply), so the bench's
//! one-way UDP streams are offloaded from their second frame on; kernels built without
//! `CONFIG_NF_FLOW_TABLE` refuse the flowtable, and kernel-flowtable says so.

use super::bpf::{self, BpfObject};
use super::scenario::{Direction, Scenario};
use crate::mainjob::Dataplane;
use crate::topo::{netns_exec, Topology};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vnet_core::port::xdp::NapiSettings;

/// Which DUT. Serialised as its report name (`xdp-redirect`); the names of 0.2 (`vnet`,
/// `kernel`, `testpmd`) are unchanged.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum DutKind {
    /// vnet-bench's dataplane.
    Vnet,
    /// vnet-bench's dataplane with `--offload xdp` (its XDP fast path).
    VnetOffload,
    /// The Linux kernel (a bridge; routing + nftables masquerade and DNAT for NAT).
    Kernel,
    /// The kernel's NAT plus an nftables flowtable (NAT modes only).
    KernelFlowtable,
    /// dpdk-testpmd, io forwarding over net_af_xdp.
    Testpmd,
    /// XDP_REDIRECT from one forwarding port to the other: an L2 wire, the topology's
    /// ceiling.
    XdpRedirect,
}

impl DutKind {
    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DutKind::Vnet => "vnet",
            DutKind::VnetOffload => "vnet-offload",
            DutKind::Kernel => "kernel",
            DutKind::KernelFlowtable => "kernel-flowtable",
            DutKind::Testpmd => "testpmd",
            DutKind::XdpRedirect => "xdp-redirect",
        }
    }

    /// True when the DUT routes a NAT mode's traffic (so the sender addresses it to the
    /// next hop's MAC); false for the DUTs that move frames port to port untouched
    /// (testpmd, xdp-redirect), whose frames go to the sink's MAC.
    pub fn routes(self) -> bool {
        matches!(
            self,
            DutKind::Vnet | DutKind::VnetOffload | DutKind::Kernel | DutKind::KernelFlowtable
        )
    }

    /// Whether the DUT can do `scenario`'s job: `Err` says why not in one sentence.
    ///
    /// # Errors
    /// kernel-flowtable on a switched path (no routing, so no flowtable).
    pub fn check_applies(self, scenario: &Scenario) -> Result<()> {
        if self == DutKind::KernelFlowtable && !routed(scenario) {
            bail!(
                "kernel-flowtable does not apply to {} {}: the kernel switches that path with a bridge, and nftables flowtables only speed up routed (forwarded) flows; use --dut kernel",
                scenario.mode.as_str(),
                scenario.direction.as_str()
            );
        }
        Ok(())
    }

    /// What the DUT is in `scenario` when that is not the mode's full job, for reports.
    pub fn note(self, scenario: &Scenario) -> String {
        let nat = routed(scenario);
        match (self, nat) {
            (DutKind::XdpRedirect, true) => "an L2 wire (XDP_REDIRECT from port to port, frames untouched): the ceiling of this topology, not a NAT".into(),
            (DutKind::XdpRedirect, false) => "an L2 wire between the two ports the stream crosses (XDP_REDIRECT, frames untouched): the ceiling of this topology, not a switch".into(),
            (DutKind::Testpmd, true) => "io forwarding between the two ports, frames untouched: the I/O a NAT needs, not a NAT".into(),
            (DutKind::KernelFlowtable, _) => "the kernel NAT plus an nftables flowtable: a flow bypasses the forwarding path once conntrack has confirmed it (UDP needs no reply)".into(),
            _ => String::new(),
        }
    }
}

/// True for a NAT mode's routed directions (where the kernel routes and translates).
fn routed(scenario: &Scenario) -> bool {
    scenario.nat.is_some() && scenario.direction != Direction::GuestToGuest
}

/// A sysfs knob of an interface in a namespace, read and written with `ip netns exec`
/// (which mounts the namespace's own /sys).
fn knob_read(netns: &str, ifname: &str, knob: &str) -> Result<String> {
    let out = netns_exec(netns, "cat", &[&format!("/sys/class/net/{ifname}/{knob}")])?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn knob_write(netns: &str, ifname: &str, knob: &str, value: &str) -> Result<()> {
    netns_exec(
        netns,
        "sh",
        &[
            "-c",
            &format!("echo {value} > /sys/class/net/{ifname}/{knob}"),
        ],
    )?;
    Ok(())
}

/// Interface settings changed for a peer; restored (newest first) on drop.
#[derive(Debug, Default)]
pub struct NapiKnobs {
    saved: Vec<(String, String, &'static str, String)>,
}

impl NapiKnobs {
    /// Set `knob` of `ifname` in `netns`, remembering the old value.
    ///
    /// # Errors
    /// When sysfs cannot be read or written.
    pub fn set(
        &mut self,
        netns: &str,
        ifname: &str,
        knob: &'static str,
        value: &str,
    ) -> Result<()> {
        let old = knob_read(netns, ifname, knob)?;
        if old != value {
            knob_write(netns, ifname, knob, value)?;
            self.saved.push((netns.into(), ifname.into(), knob, old));
        }
        Ok(())
    }

    /// The deferral DPDK's af_xdp guide asks for, on `ifname`.
    ///
    /// # Errors
    /// As [`NapiKnobs::set`].
    pub fn dpdk_napi(&mut self, netns: &str, ifname: &str) -> Result<()> {
        let n = NapiSettings::default();
        self.set(
            netns,
            ifname,
            "napi_defer_hard_irqs",
            &n.defer_hard_irqs.to_string(),
        )?;
        self.set(
            netns,
            ifname,
            "gro_flush_timeout",
            &n.gro_flush_timeout_ns.to_string(),
        )
    }
}

impl Drop for NapiKnobs {
    fn drop(&mut self) {
        for (ns, ifname, knob, old) in self.saved.iter().rev() {
            let _ = knob_write(ns, ifname, knob, old);
        }
    }
}

/// Pin the threaded-NAPI kernel threads of `ifname` (`napi/IF-ID`) to `core`.
///
/// # Errors
/// When no such thread exists or taskset fails.
pub fn pin_napi_threads(ifname: &str, core: usize) -> Result<usize> {
    let want = format!("napi/{ifname}-");
    let mut n = 0;
    for entry in std::fs::read_dir("/proc")?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(&want) {
            crate::topo::run("taskset", &["-pc", &core.to_string(), pid])?;
            n += 1;
        }
    }
    if n == 0 {
        bail!("no NAPI thread found for {ifname}");
    }
    Ok(n)
}

/// A running DUT.
pub enum RunningDut {
    /// vnet's dataplane child, and how to start it again ([`RunningDut::renew`]).
    Vnet {
        /// The child.
        dp: Dataplane,
        /// The binary.
        exe: std::path::PathBuf,
        /// The dataplane namespace.
        netns: String,
        /// Its arguments.
        args: Vec<String>,
        /// Restarts ([`RunningDut::renew`]) so far, and those whose stop was not clean
        /// with the first such error's first line.
        restarts: u32,
        /// See `restarts`.
        unclean: (u32, String),
    },
    /// The kernel (a bridge, or routing + nftables NAT): what to undo at stop.
    Kernel {
        /// The dataplane namespace.
        netns: String,
        /// What it is, for reports.
        what: String,
        /// Commands undoing the setup, run newest first at stop.
        undo: Vec<Vec<String>>,
        /// Changed settings.
        knobs: NapiKnobs,
    },
    /// xdp-redirect: its programs, detached at stop (or on drop).
    XdpRedirect {
        /// The attached programs.
        ports: XdpPorts,
    },
    /// testpmd.
    Testpmd {
        /// The child process.
        child: Child,
        /// Its output lines.
        lines: mpsc::Receiver<String>,
        /// Output so far.
        log: Vec<String>,
        /// NAPI settings applied for it.
        knobs: NapiKnobs,
    },
}

impl std::fmt::Debug for RunningDut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunningDut::Vnet { dp, .. } => write!(f, "vnet {dp:?}"),
            RunningDut::Kernel { what, .. } => write!(f, "kernel: {what}"),
            RunningDut::Testpmd { child, .. } => write!(f, "testpmd pid {}", child.id()),
            RunningDut::XdpRedirect { ports, .. } => write!(f, "xdp-redirect {ports:?}"),
        }
    }
}

/// Details of a running DUT for the summary.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct DutInfo {
    /// Port backend (`xdp`, `kernel`, `net_af_xdp`).
    pub backend: String,
    /// XDP attach mode of the DUT's ports (`native`, `generic`, `-`).
    pub xdp_attach: String,
    /// AF_XDP bind mode (`copy`, `zerocopy`, `-`).
    pub bind: String,
    /// need_wakeup on/off/-.
    pub need_wakeup: String,
    /// Busy-poll settings.
    pub busy_poll: String,
    /// NAPI settings.
    pub napi: String,
    /// The command or setup used.
    pub command: String,
    /// Startup lines describing the ports (vnet), for the record.
    pub detail: Vec<String>,
    /// What the DUT is when it is not doing the mode's whole job (an L2 wire on a NAT
    /// mode...), one sentence; empty otherwise. Absent in results before 0.3.
    #[serde(default)]
    pub note: String,
    /// `--new-flows`: sessions the DUT's NAT table holds (vnet's `--nat-max-sessions`,
    /// the kernel's `nf_conntrack_max` in the DUT namespace); 0 when the DUT keeps no
    /// per-flow state or without `--new-flows`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub session_table: u64,
    /// How `session_table` was set, and why not larger, one sentence.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub session_table_how: String,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

fn token<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// Parse vnet's `port N IF (role): xdp attach=.. bind=.. need_wakeup=.. busy_poll=..` lines.
pub fn vnet_info(log: &str, command: String) -> DutInfo {
    let ports: Vec<String> = log
        .lines()
        .filter(|l| l.starts_with("port "))
        .map(str::to_string)
        .collect();
    let first = ports.first().cloned().unwrap_or_default();
    let get = |k: &str| token(&first, k).unwrap_or("?").to_string();
    let busy = match (token(&first, "busy_poll="), token(&first, "prefer=")) {
        (Some(b), Some(p)) => format!("{b} prefer={p}"),
        (Some(b), None) => b.to_string(),
        _ => "?".into(),
    };
    DutInfo {
        backend: "xdp".into(),
        xdp_attach: get("attach="),
        bind: get("bind="),
        need_wakeup: get("need_wakeup="),
        busy_poll: busy,
        napi: if token(&first, "napi=").is_some() {
            ["napi=", "low=", "high=", "up=", "down="]
                .iter()
                .filter_map(|k| token(&first, k).map(|v| format!("{k}{v}")))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            format!(
                "napi_defer_hard_irqs={} gro_flush_timeout={}",
                get("napi_defer_hard_irqs="),
                get("gro_flush_timeout=")
            )
        },
        command,
        detail: ports,
        note: String::new(),
        ..DutInfo::default()
    }
}

/// Set `flag`'s value in `args` (replacing it where given: clap takes a flag once).
fn set_flag(args: &mut Vec<String>, flag: &str, value: String) {
    match args.iter().position(|a| a == flag) {
        Some(i) if i + 1 < args.len() => args[i + 1] = value,
        _ => args.extend([flag.to_string(), value]),
    }
}

/// The `vnet-bench run` command line of a vnet DUT: the scenario's arguments, no periodic
/// statistics, its worker on `core`, and `--offload xdp` for vnet-offload, `--offload off`
/// for plain vnet (the core alone). `sessions` (`--new-flows`): a NAT table of that many
/// sessions, all of them the one guest's share, and as many fast-path entries.
pub fn vnet_argv(
    kind: DutKind,
    scenario_args: Vec<String>,
    core: usize,
    sessions: Option<usize>,
) -> Vec<String> {
    let mut args = scenario_args;
    if let Some(n) = sessions {
        if args.iter().any(|a| a == "--nat-max-sessions") {
            set_flag(&mut args, "--nat-max-sessions", n.to_string());
            set_flag(&mut args, "--nat-sessions-per-guest", n.to_string());
        }
    }
    args.extend([
        "--stats-interval".into(),
        "0".into(),
        "--cores".into(),
        core.to_string(),
    ]);
    if kind == DutKind::VnetOffload {
        // Room for --flows 100000 in both directions.
        args.extend(["--offload".into(), "xdp".into()]);
        let entries = sessions.unwrap_or(0).max(262_144);
        args.extend(["--offload-entries".into(), entries.to_string()]);
    } else {
        args.extend(["--offload".into(), "off".into()]);
    }
    args
}

impl RunningDut {
    /// Start `kind` for `scenario` on `topo`, its work pinned to `core`.
    ///
    /// # Errors
    /// When the DUT does not start (testpmd missing, the dataplane failing...).
    /// `sessions` (`--new-flows`): the NAT session table to ask for (vnet gets it; the
    /// kernel's conntrack table is raised to it in the DUT namespace where the kernel
    /// allows, see [`DutInfo::session_table`]).
    pub fn start(
        kind: DutKind,
        topo: &Topology,
        scenario: &Scenario,
        core: usize,
        other_core: usize,
        vnet_exe: Option<&std::path::Path>,
        sessions: Option<usize>,
    ) -> Result<(RunningDut, DutInfo)> {
        kind.check_applies(scenario)?;
        let (dut, mut info) =
            Self::start_kind(kind, topo, scenario, core, other_core, vnet_exe, sessions)?;
        info.note = kind.note(scenario);
        Ok((dut, info))
    }

    /// `--new-flows`, before every trial: the DUT with an empty session table, so that
    /// each trial's flows are new to it and no trial inherits another's sessions. vnet is
    /// restarted with the same arguments (the caller re-resolves its MAC); the kernel's
    /// conntrack table in the DUT namespace is flushed; testpmd and xdp-redirect keep no
    /// per-flow state.
    ///
    /// # Errors
    /// When vnet failed or does not start again, or the flush is refused.
    pub fn renew(&mut self) -> Result<()> {
        match self {
            RunningDut::Vnet {
                dp,
                exe,
                netns,
                args,
                restarts,
                unclean,
            } => {
                // A stop that does not end cleanly (seen once in 20 restarts: exit status
                // 130 after SIGINT) does not spoil the next trial, which gets a new vnet
                // all the same; it is reported when the DUT stops.
                *restarts += 1;
                if let Err(e) = dp.stop() {
                    unclean.0 += 1;
                    if unclean.1.is_empty() {
                        unclean.1 = first_line(&format!("{e:#}"));
                    }
                }
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                *dp = Dataplane::start_exe(&*exe, netns, &argv).map_err(|e| {
                    anyhow::anyhow!(
                        "vnet did not start again for a fresh session table: {}",
                        first_line(&format!("{e:#}"))
                    )
                })?;
                Ok(())
            }
            RunningDut::Kernel { netns, .. } => {
                let ns = netns.clone();
                bpf::in_netns(&ns, conntrack_flush)
                    .with_context(|| format!("could not flush the conntrack table of {ns}"))
            }
            RunningDut::XdpRedirect { .. } | RunningDut::Testpmd { .. } => Ok(()),
        }
    }

    fn start_kind(
        kind: DutKind,
        topo: &Topology,
        scenario: &Scenario,
        core: usize,
        other_core: usize,
        vnet_exe: Option<&std::path::Path>,
        sessions: Option<usize>,
    ) -> Result<(RunningDut, DutInfo)> {
        let dp = topo.dp_netns();
        let ifs = scenario.forwarding_ifnames(topo);
        match kind {
            DutKind::Vnet | DutKind::VnetOffload => {
                let exe = match vnet_exe {
                    Some(p) => p.to_path_buf(),
                    None => std::env::current_exe().context("cannot find the vnet-bench binary")?,
                };
                let args = vnet_argv(kind, scenario.vnet_args(topo), core, sessions);
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut d = Dataplane::start_exe(&exe, dp, &argv)?;
                let log = d.log_so_far();
                let mut info = vnet_info(
                    &log,
                    format!("ip netns exec {dp} vnet-bench {}", args.join(" ")),
                );
                if let (Some(n), Some(_)) = (sessions, &scenario.nat) {
                    info.session_table = n as u64;
                    info.session_table_how = if kind == DutKind::VnetOffload {
                        format!("--nat-max-sessions {n} --nat-sessions-per-guest {n} --offload-entries {n}, vnet restarted before every trial")
                    } else {
                        format!("--nat-max-sessions {n} --nat-sessions-per-guest {n}, vnet restarted before every trial")
                    };
                }
                Ok((
                    RunningDut::Vnet {
                        dp: d,
                        exe,
                        netns: dp.to_string(),
                        args,
                        restarts: 0,
                        unclean: (0, String::new()),
                    },
                    info,
                ))
            }
            DutKind::Kernel => kernel(topo, scenario, core, false, sessions),
            DutKind::KernelFlowtable => kernel(topo, scenario, core, true, sessions),
            DutKind::XdpRedirect => xdp_redirect(topo, scenario),
            DutKind::Testpmd => {
                if ifs.len() != 2 {
                    bail!(
                        "testpmd io forwarding joins exactly two ports; this scenario has {}",
                        ifs.len()
                    );
                }
                let mut knobs = NapiKnobs::default();
                for i in &ifs {
                    knobs.dpdk_napi(dp, i)?;
                }
                let args: Vec<String> = vec![
                    "--no-huge".into(),
                    "--no-pci".into(),
                    "-m".into(),
                    "512".into(),
                    "--file-prefix".into(),
                    format!("vnb{}", std::process::id()),
                    "-l".into(),
                    format!("{other_core},{core}"),
                    "--main-lcore".into(),
                    other_core.to_string(),
                    "--vdev".into(),
                    format!("net_af_xdp0,iface={}", ifs[0]),
                    "--vdev".into(),
                    format!("net_af_xdp1,iface={}", ifs[1]),
                    "--".into(),
                    "--forward-mode=io".into(),
                    "--auto-start".into(),
                    "--nb-cores=1".into(),
                    "--rxq=1".into(),
                    "--txq=1".into(),
                    // Without hugepages the default pool (~155k mbufs) does not fit.
                    "--total-num-mbufs=16384".into(),
                ];
                let (child, rx, log) = spawn_testpmd(dp, &args)?;
                let busy = log
                    .iter()
                    .find(|l| l.to_lowercase().contains("busy"))
                    .cloned()
                    .unwrap_or_else(|| "net_af_xdp default (busy_budget=64, prefer)".into());
                let info = DutInfo {
                    backend: "net_af_xdp".into(),
                    xdp_attach: "native (libxdp)".into(),
                    bind: log
                        .iter()
                        .find_map(|l| {
                            if l.contains("zero copy") || l.contains("zerocopy") {
                                Some("zerocopy".to_string())
                            } else {
                                None
                            }
                        })
                        .unwrap_or_else(|| "copy".into()),
                    need_wakeup: "on".into(),
                    busy_poll: busy,
                    napi: NapiSettings::default().summary(),
                    command: format!("ip netns exec {dp} dpdk-testpmd {}", args.join(" ")),
                    detail: log
                        .iter()
                        .filter(|l| l.contains("af_xdp") || l.contains("AF_XDP"))
                        .cloned()
                        .collect(),
                    ..DutInfo::default()
                };
                Ok((
                    RunningDut::Testpmd {
                        child,
                        lines: rx,
                        log,
                        knobs,
                    },
                    info,
                ))
            }
        }
    }

    /// Stop and restore; returns the DUT's output.
    ///
    /// # Errors
    /// When the DUT failed while running.
    pub fn stop(self) -> Result<String> {
        match self {
            RunningDut::Vnet {
                mut dp,
                restarts,
                unclean,
                ..
            } => {
                let log = dp.stop()?;
                if unclean.0 > 0 {
                    bail!(
                        "vnet did not stop cleanly at {} of its {restarts} restarts for a fresh session table (the trials after them ran on a new vnet): {}",
                        unclean.0,
                        unclean.1
                    );
                }
                Ok(log)
            }
            RunningDut::Kernel {
                netns, undo, knobs, ..
            } => {
                for cmd in undo.iter().rev() {
                    let args: Vec<&str> = cmd[1..].iter().map(String::as_str).collect();
                    let _ = netns_exec(&netns, &cmd[0], &args);
                }
                drop(knobs);
                Ok(String::new())
            }
            RunningDut::XdpRedirect { ports } => {
                let counts = ports.counts();
                drop(ports);
                let (seen, missed) = counts?;
                if missed > 0 {
                    bail!(
                        "xdp-redirect dropped {missed} of {seen} frames for want of a port entry"
                    );
                }
                Ok(format!("xdp-redirect: {seen} frames redirected"))
            }
            RunningDut::Testpmd {
                mut child,
                lines,
                mut log,
                knobs,
            } => {
                // `ip netns exec` execs testpmd in place: the child's pid is testpmd's.
                let _ = Command::new("kill")
                    .args(["-INT", &child.id().to_string()])
                    .status();
                let deadline = Instant::now() + Duration::from_secs(10);
                while child.try_wait()?.is_none() {
                    if Instant::now() > deadline {
                        let _ = child.kill();
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(50));
                log.extend(lines.try_iter());
                drop(knobs);
                Ok(log.join("\n"))
            }
        }
    }
}

/// Start `dpdk-testpmd` with `args` in `netns` and wait (30 s at most) until it
/// forwards: its child, its output lines from then on, and its output so far.
///
/// # Errors
/// When it is missing, exits, or does not start forwarding in time.
pub fn spawn_testpmd(
    netns: &str,
    args: &[String],
) -> Result<(Child, mpsc::Receiver<String>, Vec<String>)> {
    let mut child = Command::new("ip")
        // Line-buffered stdout: testpmd's ready line would otherwise sit in a pipe buffer.
        .args(["netns", "exec", netns, "stdbuf", "-oL", "dpdk-testpmd"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start dpdk-testpmd; is the dpdk package installed?")?;
    let (tx, rx) = mpsc::channel();
    for r in [
        Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("piped")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            BufReader::new(r)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx.send(l)))
        });
    }
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                let ready = l.contains("Press enter to exit")
                    || l.contains("Start automatic packet forwarding");
                log.push(l);
                if ready {
                    break;
                }
            }
            Err(_) => {
                if let Some(st) = child.try_wait()? {
                    bail!(
                        "dpdk-testpmd exited ({st}) before forwarding: {}",
                        log.join(" | ")
                    );
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "dpdk-testpmd did not start within 30 s: {}",
                        log.join(" | ")
                    );
                }
            }
        }
    }
    Ok((child, rx, log))
}

/// A dataplane's error in one line: it carries the whole log ("the dataplane failed
/// (exit status: 1): LOG"), whose last line says why; so the words before the log, then
/// that last line, at most 200 characters of it.
fn first_line(text: &str) -> String {
    let head = text.split_once("): ").map(|(h, _)| format!("{h})"));
    let last = text
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let last = match last.char_indices().nth(200) {
        Some((at, _)) => format!("{}...", &last[..at]),
        None => last.to_string(),
    };
    match head {
        Some(h) if !text.lines().next().unwrap_or("").ends_with(&last) => {
            format!("{h}: ... {last}")
        }
        _ => last,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The kernel peer's NAT (table `ip vbnat`): DNAT of the forwarded UDP port arriving on
/// the uplink to the guest, masquerade of everything leaving through the uplink.
pub fn nat_ruleset(uplink_if: &str, forward_port: u16, guest_ip: std::net::Ipv4Addr) -> String {
    format!(
        "table ip vbnat {{\n chain pre {{ type nat hook prerouting priority -100; iifname \"{uplink_if}\" udp dport {p} dnat to {g}:{p}; }}\n chain post {{ type nat hook postrouting priority 100; oifname \"{uplink_if}\" masquerade; }}\n}}\n",
        p = forward_port,
        g = guest_ip
    )
}

/// kernel-flowtable's addition (table `inet vbft`): flowtable `ft` at the ingress of
/// `devices`, and a forward chain adding every TCP and UDP flow to it. Once a flow is in
/// the flowtable its frames skip the forwarding path (routing, the forward and
/// postrouting hooks) at ingress, NAT applied from the conntrack entry.
pub fn flowtable_ruleset(devices: &[String]) -> String {
    let devs = devices
        .iter()
        .map(|d| format!("\"{d}\""))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "table inet vbft {{\n flowtable ft {{ hook ingress priority 0; devices = {{ {devs} }}; }}\n chain forward {{ type filter hook forward priority 0; ip protocol {{ tcp, udp }} flow add @ft; }}\n}}\n"
    )
}

/// How kernel-flowtable's refusal starts when the kernel has no flowtables.
pub const NO_FLOWTABLES: &str = "this kernel has no nftables flowtables";

/// The error for a refused flowtable: a kernel without flowtable support said ENOENT
/// (no such object type) or EOPNOTSUPP.
fn flowtable_refused(e: anyhow::Error) -> anyhow::Error {
    let msg = format!("{e:#}");
    if msg.contains("No such file or directory") || msg.contains("not supported") {
        // nft's own first words, without the command line and file position before them
        // (nft then repeats the rule and points at it, on further lines).
        let said = msg
            .split("Error: ")
            .nth(1)
            .unwrap_or(&msg)
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        anyhow::anyhow!(
            "{NO_FLOWTABLES} (nft: {said}): it was built without CONFIG_NF_FLOW_TABLE / CONFIG_NFT_FLOW_OFFLOAD, so the kernel's fast path cannot be measured on this machine"
        )
    } else {
        e.context("the kernel refused the nftables flowtable")
    }
}

/// `nft` must be installed for the NAT modes' kernel peers.
fn require_nft() -> Result<()> {
    match Command::new("nft").arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => bail!(
            "`nft` is not installed, and the kernel peers of the NAT modes need it; install the nftables package (ci/bootstrap.sh does)"
        ),
    }
}

/// Load `rules` into `netns` with `nft -f` (one transaction: all or nothing).
fn nft_load(netns: &str, rules: &str) -> Result<()> {
    let file =
        std::env::temp_dir().join(format!("vnet-bench-nft-{netns}-{}.nft", std::process::id()));
    std::fs::write(&file, rules)?;
    let r = netns_exec(netns, "nft", &["-f", &file.display().to_string()]);
    let _ = std::fs::remove_file(&file);
    r.map(|_| ())
}

/// The kernel doing the scenario's job in the dataplane namespace: a bridge over the
/// segment's ports, or (NAT modes, routed directions) forwarding with the gateway and
/// external addresses, nftables masquerade out of the uplink and a DNAT of the
/// forwarded port, plus (`flowtable`) an nftables flowtable over the two ports. Every
/// port gets threaded NAPI pinned to `core` and GRO on (a veth takes XDP-redirected
/// frames only with NAPI on); all undone at stop.
fn kernel(
    topo: &Topology,
    scenario: &Scenario,
    core: usize,
    flowtable: bool,
    sessions: Option<usize>,
) -> Result<(RunningDut, DutInfo)> {
    let dp = topo.dp_netns();
    let mut undo: Vec<Vec<String>> = Vec::new();
    let mut knobs = NapiKnobs::default();
    let routed = scenario.nat.as_ref().filter(|_| routed(scenario));
    if flowtable && routed.is_none() {
        DutKind::KernelFlowtable.check_applies(scenario)?;
    }
    if routed.is_some() {
        require_nft()?;
    }
    let (ifs, mut what) = match routed {
        Some(n) => (
            scenario.dp_ifnames(topo),
            format!(
                "forwarding + nftables masquerade, DNAT udp/{} to {} ({dp})",
                n.forward_port, n.guest_ip
            ),
        ),
        None => {
            let ifs = match scenario.mode {
                // The NAT Network's guests share a segment; its uplink is not bridged.
                crate::cli::ModeName::NatNetwork => scenario.guest_ifnames(topo),
                _ => scenario.dp_ifnames(topo),
            };
            let what = format!("linux bridge vbbr0 over {} ({dp})", ifs.join(","));
            (ifs, what)
        }
    };
    if flowtable {
        what.push_str(&format!(
            " + nftables flowtable ft on {} (flow add @ft for tcp, udp)",
            ifs.join(",")
        ));
    }
    let mut table: (u64, String) = (0, String::new());
    let mut setup = || -> Result<()> {
        let mut sh = |args: &[&str], un: Option<&[&str]>| -> Result<()> {
            netns_exec(dp, args[0], &args[1..])?;
            if let Some(u) = un {
                undo.push(strings(u));
            }
            Ok(())
        };
        match routed {
            Some(n) => {
                let (guest_if, uplink_if) = (&ifs[0], &ifs[ifs.len() - 1]);
                let gw = format!("{}/24", n.gateway_ip);
                sh(
                    &["ip", "addr", "add", &gw, "dev", guest_if],
                    Some(&["ip", "addr", "flush", "dev", guest_if]),
                )?;
                sh(
                    &["ip", "addr", "add", &n.external, "dev", uplink_if],
                    Some(&["ip", "addr", "flush", "dev", uplink_if]),
                )?;
                sh(
                    &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
                    Some(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=0"]),
                )?;
                nft_load(dp, &nat_ruleset(uplink_if, n.forward_port, n.guest_ip))?;
                undo.push(strings(&["nft", "delete", "table", "ip", "vbnat"]));
                if let Some(want) = sessions {
                    // Loaded with the NAT table, conntrack has its sysctls in `dp` now.
                    let (got, how) = conntrack_max(dp, want)?;
                    if let Some(old) = how.1 {
                        undo.push(strings(&[
                            "sysctl",
                            "-q",
                            "-w",
                            &format!("net.netfilter.nf_conntrack_max={old}"),
                        ]));
                    }
                    table = (got, how.0);
                }
                if flowtable {
                    nft_load(dp, &flowtable_ruleset(&ifs)).map_err(flowtable_refused)?;
                    undo.push(strings(&["nft", "delete", "table", "inet", "vbft"]));
                }
            }
            None => {
                sh(
                    &["ip", "link", "add", "vbbr0", "type", "bridge"],
                    Some(&["ip", "link", "del", "vbbr0"]),
                )?;
                sh(&["ip", "link", "set", "vbbr0", "up"], None)?;
                for i in &ifs {
                    sh(&["ip", "link", "set", i, "master", "vbbr0"], None)?;
                }
            }
        }
        for i in &ifs {
            netns_exec(dp, "ethtool", &["-K", i, "gro", "on"])?;
            undo.push(strings(&["ethtool", "-K", i, "gro", "off"]));
            knobs.set(dp, i, "threaded", "1")?;
            pin_napi_threads(i, core)?;
        }
        Ok(())
    };
    let r = setup();
    let dut = RunningDut::Kernel {
        netns: dp.to_string(),
        what: what.clone(),
        undo,
        knobs,
    };
    if let Err(e) = r {
        let _ = dut.stop();
        return Err(e.context(format!(
            "could not set up the {} peer",
            if flowtable {
                "kernel-flowtable"
            } else {
                "kernel"
            }
        )));
    }
    let info = DutInfo {
        backend: "kernel".into(),
        xdp_attach: "-".into(),
        bind: "-".into(),
        need_wakeup: "-".into(),
        busy_poll: "-".into(),
        napi: format!("kernel defaults (no deferral); threaded=1 pinned to core {core}; gro on"),
        command: what,
        detail: vec![],
        note: String::new(),
        session_table: table.0,
        session_table_how: table.1,
    };
    Ok((dut, info))
}

/// `--new-flows`: raise `nf_conntrack_max` in `netns` to `want`. The kernel refuses a
/// namespace more than the init namespace's value (6.x: the table is per namespace,
/// bounded by the machine's own), and the machine's setting is not the harness's to
/// change; then the namespace keeps what it has. Returns the table's size and
/// `(how, the old value to restore when it was changed)`.
///
/// # Errors
/// When the sysctl cannot be read (conntrack not loaded in `netns`).
fn conntrack_max(netns: &str, want: usize) -> Result<(u64, (String, Option<u64>))> {
    let read = || -> Result<u64> {
        let out = netns_exec(netns, "sysctl", &["-n", "net.netfilter.nf_conntrack_max"])?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .context("nf_conntrack_max is not a number")
    };
    let old = read()?;
    if old >= want as u64 {
        return Ok((
            old,
            (
                format!("nf_conntrack_max {old} in the DUT namespace, conntrack flushed before every trial"),
                None,
            ),
        ));
    }
    let set = netns_exec(
        netns,
        "sysctl",
        &[
            "-q",
            "-w",
            &format!("net.netfilter.nf_conntrack_max={want}"),
        ],
    );
    let now = read()?;
    let how = if set.is_ok() && now >= want as u64 {
        format!("nf_conntrack_max raised from {old} to {now} in the DUT namespace, conntrack flushed before every trial")
    } else {
        format!("nf_conntrack_max {now} in the DUT namespace: the kernel refused {want} (a namespace may not exceed the init namespace's limit, which the harness leaves alone); conntrack flushed before every trial")
    };
    Ok((now, (how, (now != old).then_some(old))))
}

/// Flush the conntrack table of the calling thread's namespace: ctnetlink's
/// `IPCTNL_MSG_CT_DELETE` without attributes, for IPv4 (what `conntrack -F` sends), then
/// the kernel's acknowledgement.
///
/// # Errors
/// When the netlink socket cannot be opened or the kernel answers with an error.
pub fn conntrack_flush() -> Result<()> {
    const NFNL_SUBSYS_CTNETLINK: u16 = 1;
    const IPCTNL_MSG_CT_DELETE: u16 = 2;
    // SAFETY: plain socket(2); the descriptor is closed below on every path.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        bail!(
            "could not open a netfilter netlink socket: {}",
            std::io::Error::last_os_error()
        );
    }
    let result = (|| -> Result<()> {
        // struct nlmsghdr (16 bytes) + struct nfgenmsg (4 bytes), host byte order but
        // nfgenmsg.res_id (big-endian, 0 here).
        let mut msg = [0u8; 20];
        msg[0..4].copy_from_slice(&20u32.to_ne_bytes());
        msg[4..6]
            .copy_from_slice(&((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_DELETE).to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        msg[6..8].copy_from_slice(&flags.to_ne_bytes());
        msg[8..12].copy_from_slice(&1u32.to_ne_bytes());
        msg[16] = libc::AF_INET as u8;
        // SAFETY: sending our own buffer on our own socket (kernel as destination: the
        // socket is unbound and unconnected, and send(2) on netlink goes to the kernel).
        let sent = unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) };
        if sent != msg.len() as isize {
            bail!("netlink send failed: {}", std::io::Error::last_os_error());
        }
        let mut buf = [0u8; 512];
        // SAFETY: receiving into our own buffer of the given length.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 20 {
            bail!(
                "no acknowledgement from ctnetlink: {}",
                std::io::Error::last_os_error()
            );
        }
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        if ty != libc::NLMSG_ERROR as u16 {
            bail!("ctnetlink answered with message type {ty}, not an acknowledgement");
        }
        let err = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
        if err != 0 {
            bail!(
                "ctnetlink refused the flush: {}",
                std::io::Error::from_raw_os_error(-err)
            );
        }
        Ok(())
    })();
    // SAFETY: closing the descriptor opened above, once.
    unsafe { libc::close(fd) };
    result
}

/// True when `ethtool -k` output says GRO is on.
fn gro_on(ethtool_k: &str) -> bool {
    ethtool_k
        .lines()
        .any(|l| l.trim() == "generic-receive-offload: on")
}

/// Whether the endpoint interface `ifname` (in `netns`) gives its veth peer, the
/// dataplane side, NAPI, so that frames XDP-redirected into that peer are delivered:
/// `Some(how)` (a native XDP program, such as the sink's, or GRO on), `None` when
/// the kernel would drop them. Reads only.
///
/// # Errors
/// When the interface is missing or cannot be queried.
pub fn sink_side_napi(netns: &str, ifname: &str) -> Result<Option<&'static str>> {
    let name = ifname.to_string();
    let id = bpf::in_netns(netns, move || bpf::xdp_native_prog_id(bpf::ifindex(&name)?))?;
    if id != 0 {
        return Ok(Some("a native XDP program"));
    }
    let out = netns_exec(netns, "ethtool", &["-k", ifname])?;
    if gro_on(&String::from_utf8_lossy(&out.stdout)) {
        return Ok(Some("GRO on"));
    }
    Ok(None)
}

/// xdp-redirect's program attached natively to the DUT namespace's two forwarding
/// ports; detached on drop (a clean stop, a failed start, unwinding).
#[derive(Debug)]
pub struct XdpPorts {
    obj: BpfObject,
    stats: i32,
    netns: String,
    /// `(ifname, ifindex)` of each port the program is attached to.
    attached: Vec<(String, u32)>,
}

impl XdpPorts {
    /// Load `bpf/redirect.bpf.c`, point each of the two ports at the other, attach.
    ///
    /// # Errors
    /// When the program cannot be loaded, an interface is missing, or native XDP is
    /// refused (then whatever was attached is detached again).
    pub fn attach(netns: &str, ports: &[String; 2]) -> Result<XdpPorts> {
        let obj = BpfObject::load("xdp-redirect", bpf::REDIRECT_OBJ)?;
        let prog = obj.prog_fd("vb_redirect")?;
        let map = obj.map_fd("redirect_ports")?;
        let stats = obj.map_fd("redirect_stats")?;
        let names = ports.clone();
        // The kernel resolves a DEVMAP value's ifindex in the namespace of the thread that
        // writes it: written from anywhere else, the entries would name the machine's own
        // interfaces. So the lookups and the writes happen on one thread in `netns`.
        let (a, b) = bpf::in_netns(netns, move || {
            let (a, b) = (bpf::ifindex(&names[0])?, bpf::ifindex(&names[1])?);
            // Each ingress ifindex to the other port.
            for (k, v) in [(a, b), (b, a)] {
                bpf::map_set_u32(map, k, v)?;
            }
            Ok((a, b))
        })?;
        let mut me = XdpPorts {
            obj,
            stats,
            netns: netns.to_string(),
            attached: Vec::new(),
        };
        for (name, i) in ports.iter().zip([a, b]) {
            bpf::in_netns(netns, move || bpf::xdp_attach_native(i, prog))
                .with_context(|| format!("xdp-redirect could not attach to {name}"))?;
            me.attached.push((name.clone(), i));
        }
        Ok(me)
    }

    /// Frames the programs ran for, and frames dropped for want of an entry.
    ///
    /// # Errors
    /// Map lookup failures.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let n = self.obj.ncpus();
        let sum = |k: u32| -> Result<u64> { Ok(bpf::percpu_get(self.stats, k, n)?.iter().sum()) };
        Ok((sum(0)?, sum(1)?))
    }
}

impl Drop for XdpPorts {
    fn drop(&mut self) {
        for (_, i) in self.attached.drain(..) {
            let _ = bpf::in_netns(&self.netns, move || {
                bpf::xdp_detach(i, libbpf_sys::XDP_FLAGS_DRV_MODE);
                Ok(())
            });
        }
    }
}

/// xdp-redirect on `scenario`: checks that every measured stream's sink side takes
/// redirected frames and attaches [`XdpPorts`] to the two forwarding ports. Their NAPI
/// keeps veth's default (not threaded, no deferral): the program runs in the softirq of
/// the core that sends into the port, where vnet's own XDP program (and its fast path)
/// runs on the same veth. (Threaded NAPI pinned to the DUT core, as the kernel peer has,
/// was measured: the thread woke too late for veth's 256-frame ring at any load, 0.2 to
/// 0.9 % of the frames were lost at the generator's transmit even at 0.15 Mpps, and the
/// PDR fell to a tenth of what the wire carries.)
fn xdp_redirect(topo: &Topology, scenario: &Scenario) -> Result<(RunningDut, DutInfo)> {
    let dp = topo.dp_netns();
    let ifs = scenario.forwarding_ifnames(topo);
    let ports: [String; 2] = match <[String; 2]>::try_from(ifs) {
        Ok(p) => p,
        Err(v) => bail!(
            "xdp-redirect joins exactly two ports; this scenario has {}",
            v.len()
        ),
    };
    let mut detail = Vec::new();
    let sinks: Vec<&str> = scenario
        .streams
        .iter()
        .map(|s| s.sink_role.as_str())
        .collect();
    for s in &scenario.streams {
        for (role, measured) in [(s.sink_role.as_str(), true), (s.gen_role.as_str(), false)] {
            if !measured && sinks.contains(&role) {
                continue;
            }
            let e = topo.endpoint(role);
            match sink_side_napi(&e.netns, &e.ifname)? {
                Some(how) => detail.push(format!(
                    "redirect target {} ({role}): its peer {} has NAPI ({how})",
                    e.dp_ifname, e.ifname
                )),
                None if measured => bail!(
                    "xdp-redirect cannot deliver to {role}: the peer {} of the target {} has neither a native XDP program nor GRO on, so the kernel would drop every redirected frame (xdp_features without NDO_XMIT)",
                    e.ifname,
                    e.dp_ifname
                ),
                None => detail.push(format!(
                    "redirect target {} ({role}, not measured): its peer {} has no NAPI, so frames towards {role} are dropped",
                    e.dp_ifname, e.ifname
                )),
            }
        }
    }
    let xdp = XdpPorts::attach(dp, &ports)?;
    let info = DutInfo {
        backend: "xdp_redirect (devmap)".into(),
        xdp_attach: "native".into(),
        bind: "-".into(),
        need_wakeup: "-".into(),
        busy_poll: "-".into(),
        napi: "veth defaults (no deferral, not threaded): the program runs in the softirq of the sending core".into(),
        command: format!(
            "XDP_REDIRECT through a DEVMAP_HASH between {} and {} ({dp}), every frame to the other port",
            ports[0], ports[1]
        ),
        detail,
        ..DutInfo::default()
    };
    Ok((RunningDut::XdpRedirect { ports: xdp }, info))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ModeName;

    fn args(kind: DutKind) -> Vec<String> {
        let base = vec!["run".to_string(), "--mode".into(), "nat".into()];
        vnet_argv(kind, base, 1, None)
    }

    #[test]
    fn vnet_offload_runs_vnet_with_the_xdp_offload_and_plain_vnet_with_it_off() {
        let off = args(DutKind::VnetOffload);
        let at = off
            .iter()
            .position(|a| a == "--offload")
            .expect("--offload given");
        assert_eq!(off[at + 1], "xdp");
        assert_eq!(off.iter().filter(|a| *a == "--offload").count(), 1);
        assert!(off.windows(2).any(|w| w == ["--offload-entries", "262144"]));
        let plain = args(DutKind::Vnet);
        let at = plain
            .iter()
            .position(|a| a == "--offload")
            .expect("--offload given");
        assert_eq!(plain[at + 1], "off", "{plain:?}");
        // Everything else is the same command line.
        assert_eq!(off[..off.len() - 4], plain[..plain.len() - 2]);
        assert_eq!(
            plain[..3],
            ["run", "--mode", "nat"],
            "the scenario's arguments come first"
        );
        let cores = plain.iter().position(|a| a == "--cores").unwrap();
        assert_eq!(plain[cores + 1], "1");
    }

    #[test]
    fn a_dataplane_error_is_shortened_to_its_status_and_last_line() {
        let e = "the dataplane failed (exit status: 1): port 0 vb1d0 (vm1): xdp attach=native\nport 1 ...\nError: could not bind vb1d1: busy\n";
        assert_eq!(
            first_line(e),
            "the dataplane failed (exit status: 1): ... Error: could not bind vb1d1: busy"
        );
        assert_eq!(first_line("one line only"), "one line only");
        let long = "x".repeat(500);
        assert!(first_line(&long).len() <= 203);
    }

    #[test]
    fn new_flows_gives_vnet_the_table_and_the_fast_path_as_many_entries() {
        let base = |n: &str| {
            vec![
                "run".to_string(),
                "--mode".into(),
                "nat".into(),
                "--nat-max-sessions".into(),
                n.into(),
                "--nat-sessions-per-guest".into(),
                n.into(),
            ]
        };
        let a = vnet_argv(DutKind::VnetOffload, base("131072"), 1, Some(2_097_152));
        for flag in [
            "--nat-max-sessions",
            "--nat-sessions-per-guest",
            "--offload-entries",
        ] {
            assert_eq!(
                a.iter().filter(|x| *x == flag).count(),
                1,
                "{flag} once: {a:?}"
            );
            assert!(
                a.windows(2).any(|w| w == [flag, "2097152"]),
                "{flag}: {a:?}"
            );
        }
        let plain = vnet_argv(DutKind::Vnet, base("131072"), 1, Some(2_097_152));
        assert!(plain
            .windows(2)
            .any(|w| w == ["--nat-max-sessions", "2097152"]));
        assert!(!plain.iter().any(|x| x == "--offload-entries"));
        // Without --new-flows the scenario's table stays.
        let same = vnet_argv(DutKind::Vnet, base("131072"), 1, None);
        assert!(same
            .windows(2)
            .any(|w| w == ["--nat-max-sessions", "131072"]));
    }

    #[test]
    fn flowtable_ruleset_offloads_tcp_and_udp_between_the_two_ports() {
        let r = flowtable_ruleset(&["vb1d0".to_string(), "vb1d1".to_string()]);
        assert!(r.starts_with("table inet vbft {\n"), "{r}");
        assert!(
            r.contains(
                "flowtable ft { hook ingress priority 0; devices = { \"vb1d0\", \"vb1d1\" }; }"
            ),
            "{r}"
        );
        assert!(
            r.contains("chain forward { type filter hook forward priority 0; ip protocol { tcp, udp } flow add @ft; }"),
            "{r}"
        );
        assert_eq!(r.matches('{').count(), r.matches('}').count(), "{r}");
    }

    #[test]
    fn nat_ruleset_forwards_the_port_to_the_guest_and_masquerades_out_of_the_uplink() {
        let r = nat_ruleset("vb1d1", 7000, "10.0.2.15".parse().unwrap());
        assert!(r.starts_with("table ip vbnat {"), "{r}");
        assert!(
            r.contains("iifname \"vb1d1\" udp dport 7000 dnat to 10.0.2.15:7000;"),
            "{r}"
        );
        assert!(r.contains("oifname \"vb1d1\" masquerade;"), "{r}");
        assert_eq!(r.matches('{').count(), r.matches('}').count(), "{r}");
    }

    #[test]
    fn a_kernel_without_flowtables_is_named_as_such() {
        let e = anyhow::anyhow!(
            "`ip netns exec vb1-dp nft -f /tmp/x.nft` failed: /tmp/x.nft:2:12-13: Error: Could not process rule: No such file or directory\n flowtable ft {{ hook ingress priority 0; }}\n           ^^\n/tmp/x.nft:3:80-91: Error: Could not process rule: No such file or directory\n chain forward {{ }}"
        );
        let m = format!("{:#}", flowtable_refused(e));
        assert!(m.starts_with(NO_FLOWTABLES), "{m}");
        assert!(
            m.contains("(nft: Could not process rule: No such file or directory)"),
            "{m}"
        );
        assert!(!m.contains("/tmp/x.nft") && !m.contains('\n'), "{m}");
        let other = anyhow::anyhow!("syntax error, unexpected junk");
        let m = format!("{:#}", flowtable_refused(other));
        assert!(!m.starts_with(NO_FLOWTABLES), "{m}");
        assert!(m.contains("syntax error"), "{m}");
    }

    #[test]
    fn kernel_flowtable_applies_only_where_the_kernel_routes() {
        let nat = Scenario::new(ModeName::Nat, Direction::GuestToInet).unwrap();
        let nn_back = Scenario::new(ModeName::NatNetwork, Direction::InetToGuest).unwrap();
        let nn_seg = Scenario::new(ModeName::NatNetwork, Direction::GuestToGuest).unwrap();
        let internal = Scenario::new(ModeName::Internal, Direction::GuestToGuest).unwrap();
        assert!(DutKind::KernelFlowtable.check_applies(&nat).is_ok());
        assert!(DutKind::KernelFlowtable.check_applies(&nn_back).is_ok());
        for s in [&nn_seg, &internal] {
            let e = DutKind::KernelFlowtable.check_applies(s).unwrap_err();
            let m = e.to_string();
            assert!(m.contains("bridge") && m.contains("--dut kernel"), "{m}");
            assert_eq!(m.matches(". ").count(), 0, "one sentence: {m}");
        }
        for k in [
            DutKind::Vnet,
            DutKind::VnetOffload,
            DutKind::Kernel,
            DutKind::Testpmd,
            DutKind::XdpRedirect,
        ] {
            assert!(k.check_applies(&internal).is_ok() && k.check_applies(&nat).is_ok());
        }
    }

    #[test]
    fn only_the_port_to_port_duts_are_noted_as_wires_on_nat() {
        let nat = Scenario::new(ModeName::Nat, Direction::Both).unwrap();
        let internal = Scenario::new(ModeName::Internal, Direction::GuestToGuest).unwrap();
        let wire = DutKind::XdpRedirect.note(&nat);
        assert!(
            wire.contains("L2 wire") && wire.contains("not a NAT"),
            "{wire}"
        );
        assert!(DutKind::Testpmd.note(&nat).contains("not a NAT"));
        assert!(DutKind::XdpRedirect
            .note(&internal)
            .contains("not a switch"));
        for k in [DutKind::Vnet, DutKind::VnetOffload, DutKind::Kernel] {
            assert!(k.note(&nat).is_empty() && k.note(&internal).is_empty());
            assert!(k.routes());
        }
        assert!(DutKind::KernelFlowtable.routes());
        assert!(!DutKind::XdpRedirect.routes() && !DutKind::Testpmd.routes());
    }

    #[test]
    fn dut_names_serialise_as_report_names_and_old_names_still_read() {
        for k in [
            DutKind::Vnet,
            DutKind::VnetOffload,
            DutKind::Kernel,
            DutKind::KernelFlowtable,
            DutKind::Testpmd,
            DutKind::XdpRedirect,
        ] {
            let j = serde_json::to_string(&k).unwrap();
            assert_eq!(j, format!("\"{}\"", k.as_str()));
            assert_eq!(serde_json::from_str::<DutKind>(&j).unwrap(), k);
            // `--dut` spells them the same way.
            let v = <DutKind as clap::ValueEnum>::to_possible_value(&k).unwrap();
            assert_eq!(v.get_name(), k.as_str());
        }
        // A DutInfo written before `note` existed still reads.
        let old = r#"{"backend":"kernel","xdp_attach":"-","bind":"-","need_wakeup":"-","busy_poll":"-","napi":"x","command":"y","detail":[]}"#;
        let i: DutInfo = serde_json::from_str(old).unwrap();
        assert!(i.note.is_empty());
    }

    #[test]
    fn gro_is_read_from_ethtool_k() {
        let on = "Features for x:\nrx-checksumming: on\ngeneric-receive-offload: on\nlarge-receive-offload: off [fixed]\n";
        let off = "Features for x:\ngeneric-receive-offload: off\nrx-gro-hw: on\n";
        assert!(gro_on(on));
        assert!(!gro_on(off));
        assert!(!gro_on(""));
    }
}
