//! The devices under test, started one after the other on the same topology: vnet
//! (`vnet-bench run`), the Linux kernel doing the same mode (a bridge for the switched
//! modes), and DPDK's testpmd over `net_af_xdp` (io forwarding: the I/O-layer reference).
//!
//! Settings: each DUT runs with the NAPI settings that are its own, on its own
//! dataplane-side interfaces only (never the generator's or the sink's ends): vnet its
//! `--napi auto` policy (set by vnet itself); testpmd the deferral DPDK's af_xdp guide
//! asks for with its preferred busy polling (`napi_defer_hard_irqs=2`,
//! `gro_flush_timeout=200000`, [`NapiKnobs`], restored when it stops); the kernel its
//! defaults (no deferral: a deferred bridge waits for the timer, ~170 us a frame). The
//! kernel's forwarding runs in the interfaces' NAPI, made threaded and pinned to the
//! DUT core, as vnet's worker is; otherwise it would run in the softirq of the
//! generator's core. On a veth the sink's receive work runs on the core that transmits
//! (the DUT's), for every DUT alike.

use super::scenario::{Direction, Scenario};
use crate::mainjob::Dataplane;
use crate::topo::{netns_exec, Topology};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vnet_core::port::xdp::NapiSettings;

/// Which DUT.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DutKind {
    /// vnet-bench's dataplane.
    Vnet,
    /// The Linux kernel (a bridge; routing + nftables masquerade and DNAT for NAT).
    Kernel,
    /// dpdk-testpmd, io forwarding over net_af_xdp.
    Testpmd,
}

impl DutKind {
    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            DutKind::Vnet => "vnet",
            DutKind::Kernel => "kernel",
            DutKind::Testpmd => "testpmd",
        }
    }
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
    /// vnet's dataplane child.
    Vnet(Dataplane),
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
            RunningDut::Vnet(d) => write!(f, "vnet {d:?}"),
            RunningDut::Kernel { what, .. } => write!(f, "kernel: {what}"),
            RunningDut::Testpmd { child, .. } => write!(f, "testpmd pid {}", child.id()),
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
    }
}

impl RunningDut {
    /// Start `kind` for `scenario` on `topo`, its work pinned to `core`.
    ///
    /// # Errors
    /// When the DUT does not start (testpmd missing, the dataplane failing...).
    pub fn start(
        kind: DutKind,
        topo: &Topology,
        scenario: &Scenario,
        core: usize,
        other_core: usize,
        vnet_exe: Option<&std::path::Path>,
    ) -> Result<(RunningDut, DutInfo)> {
        let dp = topo.dp_netns();
        let ifs = scenario.forwarding_ifnames(topo);
        match kind {
            DutKind::Vnet => {
                let exe = match vnet_exe {
                    Some(p) => p.to_path_buf(),
                    None => std::env::current_exe().context("cannot find the vnet-bench binary")?,
                };
                let mut args: Vec<String> = scenario.vnet_args(topo);
                args.extend([
                    "--stats-interval".into(),
                    "0".into(),
                    "--cores".into(),
                    core.to_string(),
                ]);
                let argv: Vec<&str> = args.iter().map(String::as_str).collect();
                let mut d = Dataplane::start_exe(&exe, dp, &argv)?;
                let log = d.log_so_far();
                let info = vnet_info(
                    &log,
                    format!("ip netns exec {dp} vnet-bench {}", args.join(" ")),
                );
                Ok((RunningDut::Vnet(d), info))
            }
            DutKind::Kernel => kernel(topo, scenario, core),
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
                let mut child = Command::new("ip")
                    // Line-buffered stdout: testpmd's ready line would otherwise sit in a pipe buffer.
                    .args(["netns", "exec", dp, "stdbuf", "-oL", "dpdk-testpmd"])
                    .args(&args)
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
            RunningDut::Vnet(mut d) => d.stop(),
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

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The kernel doing the scenario's job in the dataplane namespace: a bridge over the
/// segment's ports, or (NAT modes, routed directions) forwarding with the gateway and
/// external addresses, nftables masquerade out of the uplink and a DNAT of the
/// forwarded port. Every port gets vnet's NAPI settings, threaded NAPI pinned to `core`
/// and GRO on (a veth takes XDP-redirected frames only with NAPI on); all undone at stop.
fn kernel(topo: &Topology, scenario: &Scenario, core: usize) -> Result<(RunningDut, DutInfo)> {
    let dp = topo.dp_netns();
    let mut undo: Vec<Vec<String>> = Vec::new();
    let mut knobs = NapiKnobs::default();
    let routed = scenario
        .nat
        .as_ref()
        .filter(|_| scenario.direction != Direction::GuestToGuest);
    let (ifs, what) = match routed {
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
                let rules = format!(
                    "table ip vbnat {{\n chain pre {{ type nat hook prerouting priority -100; iifname \"{uplink_if}\" udp dport {p} dnat to {g}:{p}; }}\n chain post {{ type nat hook postrouting priority 100; oifname \"{uplink_if}\" masquerade; }}\n}}\n",
                    p = n.forward_port,
                    g = n.guest_ip
                );
                let file = std::env::temp_dir().join(format!("vnet-bench-nft-{dp}.nft"));
                std::fs::write(&file, rules)?;
                let path = file.display().to_string();
                let r = sh(
                    &["nft", "-f", &path],
                    Some(&["nft", "delete", "table", "ip", "vbnat"]),
                );
                let _ = std::fs::remove_file(&file);
                r?;
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
            sh(
                &["ethtool", "-K", i, "gro", "on"],
                Some(&["ethtool", "-K", i, "gro", "off"]),
            )?;
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
        return Err(e.context("could not set up the kernel peer"));
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
    };
    Ok((dut, info))
}
