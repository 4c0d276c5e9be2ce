//! The main job (`vnet-bench [--mode MODE]`): build the embedded default topology, run
//! the mode on it, show that it works, print a summary, tear everything down.
//!
//! With AF_XDP (root): namespaces `vm1` and `vm2` joined to a dataplane namespace by veth
//! pairs, `vnet-bench run` started inside the dataplane namespace, the real `ping` of
//! the guests' Linux stacks across it. Without privileges: the same mode on in-memory
//! ports, driven step by step in this process.

use crate::cli::{BackendChoice, GuestKind, ModeName};
use crate::jobvm::Vms;
use crate::preflight;
use crate::scenario;
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};
use vnet_core::counters::CounterSet;
use vnet_core::engine::{HandoffRx, HandoffTx, Worker, WorkerConfig};
use vnet_core::frame::FramePool;
use vnet_core::port::mem::mem_pair;
use vnet_core::port::Port;
use vnet_core::time::Instant;
use vnet_modes::internal::{InternalConfig, InternalMode};
use vnet_modes::natmode::NatFlavor;

/// Addresses of the embedded Internal topology.
pub const INTERNAL_VM1: &str = "192.168.60.11";
/// Addresses of the embedded Internal topology.
pub const INTERNAL_VM2: &str = "192.168.60.12";

/// Run the main job with guests of `guest`'s kind.
pub fn main_job(mode: ModeName, backend: BackendChoice, guest: GuestKind) -> Result<()> {
    let use_xdp = match backend {
        BackendChoice::Mem => false,
        BackendChoice::Xdp => {
            preflight::require_root("vnet-bench --backend xdp")?;
            preflight::require_af_xdp()?;
            true
        }
        BackendChoice::Auto => preflight::is_root() && preflight::has_af_xdp(),
    };
    if guest == GuestKind::Qemu && !use_xdp {
        preflight::require_root("vnet-bench --guest qemu")?;
        preflight::require_af_xdp()?;
        bail!("--guest qemu needs the AF_XDP backend; leave out --backend mem");
    }
    if use_xdp {
        let prefix = format!("vm{}", std::process::id() % 10000);
        let _cleanup = crate::interrupt::on_interrupt(&prefix)?;
        match mode {
            ModeName::Internal => internal_live(&prefix, guest),
            ModeName::Nat => nat_live(&prefix, guest, NatFlavor::PerVm),
            ModeName::NatNetwork => nat_live(&prefix, guest, NatFlavor::Network),
            ModeName::HostOnly => host_only_live(&prefix, guest),
            ModeName::Bridged => bridged_live(&prefix, guest),
        }
    } else {
        mem_job(mode)
    }
}

/// Without AF_XDP: the mode's conformance cases over in-memory ports, with independent
/// TCP/IP stacks as endpoints (and, for Internal, an in-memory forwarding run).
fn mem_job(mode: ModeName) -> Result<()> {
    println!(
        "main job: mode {}, backend mem (run as root for the AF_XDP backend)",
        mode.as_str()
    );
    if mode == ModeName::Internal {
        internal_mem()?;
    }
    let Some(m) = crate::conformance::ModeUnderTest::for_mode(mode) else {
        bail!("the in-memory conformance cases for mode {} are not built yet; run as root for the live main job", mode.as_str());
    };
    let report = crate::conformance::run_mem(&[m]);
    report.print_tables();
    if !report.all_pass() {
        bail!(
            "mode {} does not deliver its row of Table 1-1 (see the cells marked !!)",
            mode.as_str()
        );
    }
    println!(
        "main job: mode {} matches its row of Table 1-1 in memory",
        mode.as_str()
    );
    Ok(())
}

/// One checked cell of the main job's live run.
struct Check {
    cell: &'static str,
    expected: &'static str,
    ok: bool,
    evidence: String,
}

fn print_checks(checks: &[Check]) -> bool {
    println!("{:<12} {:<14} {:<6} evidence", "cell", "expected", "result");
    for c in checks {
        println!(
            "{:<12} {:<14} {:<6} {}",
            c.cell,
            c.expected,
            if c.ok { "ok" } else { "FAIL" },
            c.evidence
        );
    }
    checks.iter().all(|c| c.ok)
}

/// NAT or NAT Network on AF_XDP: DHCP, translation, port forwarding, isolation, with the
/// guests' real stacks and servers beyond the uplink and on the host.
fn nat_live(prefix: &str, guest: GuestKind, flavor: NatFlavor) -> Result<()> {
    let mode = if flavor == NatFlavor::PerVm {
        "nat"
    } else {
        "nat-network"
    };
    println!(
        "main job: mode {mode}, backend xdp, topology {prefix}-{{dp,{}host,inet}}",
        guests_in_topology(guest)
    );
    let scratch = scenario::Scratch::new("main")?;
    let (topo, mut vms) = Vms::build(
        guest,
        prefix,
        &[("vm1", None), ("vm2", None)],
        &[
            ("host", Some("198.19.0.1/24")),
            ("inet", Some("198.18.0.1/24")),
        ],
        &scratch,
    )?;
    let e = |r: &str| topo.endpoint(r).clone();
    let (host, inet) = (e("host"), e("inet"));
    let vm_ifs = vms.dp_ifnames();
    let control = scratch.join("control.sock").display().to_string();
    let rule = if flavor == NatFlavor::PerVm {
        "fwd,tcp,,2222,,5201".to_string()
    } else {
        "fwd:tcp:[]:2222:[10.0.2.4]:5201".to_string()
    };
    let mut dp = Dataplane::start(
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            mode,
            "--vm",
            &vm_ifs[0],
            "--vm",
            &vm_ifs[1],
            "--host",
            &host.dp_ifname,
            "--uplink",
            &inet.dp_ifname,
            "--external-ip",
            "198.18.0.2/24",
            "--gateway",
            "198.18.0.1",
            "--pf",
            &rule,
            "--control",
            &control,
            "--stats-interval",
            "0",
        ],
    )?;
    let result = (|| -> Result<Vec<Check>> {
        vms.boot()?;
        let (vm1, vm2) = (vms.vm(0), vms.vm(1));
        let a1 = vm1.lease()?;
        let a2 = vm2.lease()?;
        println!("  DHCP: vm1 {a1}, vm2 {a2}");
        let mut checks = Vec::new();
        // VM -> Inet: ICMP and TCP, seen from the external address.
        let icmp = vm1.ping("198.18.0.1", 3);
        let srv = scenario::iperf_server(&inet.netns, "198.18.0.1", 5301)?;
        let rate = vm1.tcp_rate("198.18.0.1", 5301, 2);
        let seen = scenario::server_log(srv);
        let translated = seen.contains("Accepted connection from 198.18.0.2");
        checks.push(Check {
            cell: "VM -> Inet",
            expected: "+",
            ok: icmp.is_some() && rate.is_some() && translated,
            evidence: format!(
                "ping {}; TCP {} (iperf3 2 s); server saw {}",
                if icmp.is_some() { "ok" } else { "failed" },
                rate.clone().unwrap_or_else(|| "failed".into()),
                if translated {
                    "198.18.0.2 (the external address)"
                } else {
                    "no translated connection"
                }
            ),
        });
        // VM -> Host through the host loopback address 10.0.2.2.
        let srv = scenario::iperf_server(&host.netns, "198.19.0.1", 5302)?;
        let rate = vm1.tcp_rate("10.0.2.2", 5302, 1);
        let seen = scenario::server_log(srv);
        checks.push(Check {
            cell: "VM -> Host",
            expected: "+",
            ok: rate.is_some() && seen.contains("Accepted connection from 198.19.0.2"),
            evidence: format!(
                "TCP to 10.0.2.2 reached the host: {}",
                rate.unwrap_or_else(|| "failed".into())
            ),
        });
        // Inet -> VM and Host -> VM: only through the rule.
        let target = if flavor == NatFlavor::PerVm {
            a1.clone()
        } else {
            "10.0.2.4".to_string()
        };
        // NAT: the rule (no vmN: prefix) is vm1's; NAT Network: whoever leased .4.
        let guest = if flavor == NatFlavor::Network && a2 == target {
            vm2
        } else {
            vm1
        };
        let mut forwarded = Vec::new();
        for (who, ns, addr) in [
            ("inet", &inet.netns, "198.18.0.2"),
            ("host", &host.netns, "198.19.0.2"),
        ] {
            guest.serve(&target, 5201)?;
            let ok = scenario::iperf_client(ns, addr, 2222, 1).is_some();
            guest.served(5201);
            guest.serve(&target, 5201)?;
            let blocked = scenario::iperf_client(ns, addr, 2223, 1).is_none();
            guest.served(5201);
            forwarded.push((who, ok, blocked));
        }
        for (who, ok, blocked) in forwarded {
            checks.push(Check {
                cell: if who == "inet" {
                    "Inet -> VM"
                } else {
                    "Host -> VM"
                },
                expected: "port forward",
                ok: ok && blocked,
                evidence: format!(
                    "rule 2222 -> {target}:5201 {}; port 2223 without a rule {}",
                    if ok { "passes" } else { "FAILED" },
                    if blocked { "blocked" } else { "OPEN" }
                ),
            });
        }
        // VM1 <-> VM2.
        let (expected, ok, evidence) = if flavor == NatFlavor::PerVm {
            vm2.capture_from(vm1.mac())?;
            vm1.probe("10.0.2.255", "10.0.2.16");
            let seen = vm2.captured();
            (
                "-",
                seen.trim().is_empty(),
                "vm2 captured none of vm1's broadcast or unicast frames".to_string(),
            )
        } else {
            let p = vm1.ping(&a2, 3);
            (
                "+",
                p.is_some(),
                format!("vm1 -> vm2 ping: {}", p.unwrap_or_else(|| "failed".into())),
            )
        };
        checks.push(Check {
            cell: "VM1 <-> VM2",
            expected,
            ok,
            evidence,
        });
        Ok(checks)
    })();
    let log = dp.stop()?;
    let checks = result?;
    let all = print_checks(&checks);
    println!("dataplane output:\n{log}");
    if !all {
        bail!("mode {mode} does not deliver what its row of Table 1-1 promises (see FAIL above)");
    }
    println!(
        "main job: {mode} matches Table 1-1 (VM <-> Host: - (VM -> host through 10.0.2.2, host -> VM by rule), VM1 <-> VM2: {}, VM -> Internet: +, VM <- Internet: port forwarding)",
        if flavor == NatFlavor::PerVm { "-" } else { "+" }
    );
    Ok(())
}

/// Host-only on AF_XDP: both guests lease from the dataplane's DHCP server, reach each
/// other and the host.
fn host_only_live(prefix: &str, guest: GuestKind) -> Result<()> {
    println!(
        "main job: mode host-only, backend xdp, topology {prefix}-{{dp,{}host}}",
        guests_in_topology(guest)
    );
    let scratch = scenario::Scratch::new("main")?;
    let (topo, mut vms) = Vms::build(
        guest,
        prefix,
        &[("vm1", None), ("vm2", None)],
        &[("host", Some("192.168.56.1/24"))],
        &scratch,
    )?;
    let host = topo.endpoint("host").clone();
    let vm_ifs = vms.dp_ifnames();
    let mut dp = Dataplane::start(
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "host-only",
            "--vm",
            &vm_ifs[0],
            "--vm",
            &vm_ifs[1],
            "--host",
            &host.dp_ifname,
            "--stats-interval",
            "0",
        ],
    )?;
    let result = (|| -> Result<Vec<Check>> {
        vms.boot()?;
        let (vm1, vm2) = (vms.vm(0), vms.vm(1));
        let a1 = vm1.lease()?;
        let a2 = vm2.lease()?;
        println!("  DHCP: vm1 {a1}, vm2 {a2}");
        let p12 = vm1.ping(&a2, 3);
        let p1h = vm1.ping("192.168.56.1", 3);
        let ph2 = scenario::ping(&host.netns, &a2, 3);
        Ok(vec![
            Check {
                cell: "VM1 <-> VM2",
                expected: "+",
                ok: p12.is_some(),
                evidence: p12.unwrap_or_default(),
            },
            Check {
                cell: "VM -> Host",
                expected: "+",
                ok: p1h.is_some(),
                evidence: p1h.unwrap_or_default(),
            },
            Check {
                cell: "Host -> VM",
                expected: "+",
                ok: ph2.is_some(),
                evidence: ph2.unwrap_or_default(),
            },
        ])
    })();
    let log = dp.stop()?;
    let all = print_checks(&result?);
    println!("dataplane output:\n{log}");
    if !all {
        bail!("mode host-only does not deliver its row of Table 1-1 (see FAIL above)");
    }
    println!(
        "main job: host-only: guests lease from 192.168.56.100 and reach each other and the host"
    );
    Ok(())
}

/// Bridged on AF_XDP: guests, host and a server on the uplink LAN all reach each other.
fn bridged_live(prefix: &str, guest: GuestKind) -> Result<()> {
    println!(
        "main job: mode bridged, backend xdp, topology {prefix}-{{dp,{}host,inet}}",
        guests_in_topology(guest)
    );
    let hosts = [
        ("vm1", "198.18.0.11"),
        ("vm2", "198.18.0.12"),
        ("host", "198.18.0.254"),
        ("inet", "198.18.0.1"),
    ];
    let cidr: Vec<String> = hosts.iter().map(|(_, a)| format!("{a}/24")).collect();
    let scratch = scenario::Scratch::new("main")?;
    let (topo, mut vms) = Vms::build(
        guest,
        prefix,
        &[("vm1", Some(&cidr[0])), ("vm2", Some(&cidr[1]))],
        &[("host", Some(&cidr[2])), ("inet", Some(&cidr[3]))],
        &scratch,
    )?;
    let e = |r: &str| topo.endpoint(r).clone();
    let vm_ifs = vms.dp_ifnames();
    let mut dp = Dataplane::start(
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "bridged",
            "--vm",
            &vm_ifs[0],
            "--vm",
            &vm_ifs[1],
            "--host",
            &e("host").dp_ifname,
            "--uplink",
            &e("inet").dp_ifname,
            "--stats-interval",
            "0",
        ],
    )?;
    let result = (|| -> Result<Vec<Check>> {
        vms.boot()?;
        let mut checks = Vec::new();
        for (cell, from, to) in [
            ("VM1 <-> VM2", "vm1", 1),
            ("VM -> Host", "vm1", 2),
            ("VM -> Inet", "vm2", 3),
            ("Inet -> VM", "inet", 0),
        ] {
            let p = match from {
                "vm1" => vms.vm(0).ping(hosts[to].1, 3),
                "vm2" => vms.vm(1).ping(hosts[to].1, 3),
                _ => scenario::ping(&e(from).netns, hosts[to].1, 3),
            };
            checks.push(Check {
                cell,
                expected: "+",
                ok: p.is_some(),
                evidence: p.unwrap_or_default(),
            });
        }
        Ok(checks)
    })();
    let log = dp.stop()?;
    let all = print_checks(&result?);
    println!("dataplane output:\n{log}");
    if !all {
        bail!("mode bridged does not deliver its row of Table 1-1 (see FAIL above)");
    }
    println!("main job: bridged: everything reaches everything");
    Ok(())
}

/// The Internal mode on AF_XDP in the harness's own namespaces (or with QEMU guests),
/// proven with `ping`.
fn internal_live(prefix: &str, guest: GuestKind) -> Result<()> {
    println!(
        "main job: mode internal, backend xdp, topology {prefix}-{{dp{}}}",
        if guest == GuestKind::Netns {
            ",vm1,vm2"
        } else {
            ""
        }
    );
    let scratch = scenario::Scratch::new("main")?;
    let (c1, c2) = (format!("{INTERNAL_VM1}/24"), format!("{INTERNAL_VM2}/24"));
    let (topo, mut vms) = Vms::build(
        guest,
        prefix,
        &[("vm1", Some(&c1)), ("vm2", Some(&c2))],
        &[],
        &scratch,
    )?;
    let vm_ifs = vms.dp_ifnames();
    let mut dp = Dataplane::start(
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "internal",
            "--vm",
            &vm_ifs[0],
            "--vm",
            &vm_ifs[1],
            "--stats-interval",
            "0",
        ],
    )?;
    let result = (|| -> Result<()> {
        vms.boot()?;
        for (from, to, addr) in [(0, 1, INTERNAL_VM2), (1, 0, INTERNAL_VM1)] {
            let (from, to) = (vms.vm(from), vms.vm(to));
            let summary = from.ping(addr, 5).with_context(|| {
                format!(
                    "{} could not ping {} across the dataplane",
                    from.role(),
                    to.role()
                )
            })?;
            println!("  {} -> {} ({addr}): {summary}", from.role(), to.role());
        }
        Ok(())
    })();
    let log = dp.stop()?;
    println!("dataplane output:\n{log}");
    result?;
    println!("main job: internal mode forwards between vm1 and vm2 (VM1 <-> VM2: +)");
    drop(vms);
    drop(topo);
    Ok(())
}

/// `vm1,vm2,` when the guests are namespaces (the topology line lists namespaces).
fn guests_in_topology(guest: GuestKind) -> &'static str {
    match guest {
        GuestKind::Netns => "vm1,vm2,",
        GuestKind::Qemu => "",
    }
}

/// The Internal mode over in-memory ports: two endpoints exchange frames through it.
fn internal_mem() -> Result<()> {
    println!("main job: mode internal, backend mem (run as root for the AF_XDP backend)");
    let (p0, vm1) = mem_pair("vm1", 0, 1024);
    let (p1, vm2) = mem_pair("vm2", 1, 1024);
    let counters = CounterSet::new(1, 2);
    let mut worker = Worker::new(
        0,
        vec![
            (0, Box::new(p0) as Box<dyn Port>),
            (1, Box::new(p1) as Box<dyn Port>),
        ],
        &[0, 0],
        FramePool::with_heap(4096, 2048, 256),
        InternalMode::internal(InternalConfig::new(2), Instant::ZERO).expect("internal mode"),
        counters.worker(0),
        (HandoffTx::none(), HandoffRx::none()),
        WorkerConfig::default(),
    );
    let mac1 = [0x02, 0x76, 0x6e, 0, 0, 1];
    let mac2 = [0x02, 0x76, 0x6e, 0, 0, 2];
    let frame = |dst: [u8; 6], src: [u8; 6], seq: u32| {
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&seq.to_be_bytes());
        f
    };
    // vm2 announces itself with a broadcast, then vm1 and vm2 exchange unicast frames.
    vm2.send(&frame([0xff; 6], mac2, 0));
    worker.run_once(Instant::from_secs(1));
    let flooded = vm1.drain().len();
    let n = 200_000u32;
    let start = StdInstant::now();
    let mut delivered = 0usize;
    let mut buf = [0u8; 2048];
    for seq in 0..n {
        vm1.send(&frame(mac2, mac1, seq));
        if seq % 64 == 63 {
            worker.run_once(Instant::from_secs(1));
            while vm2.recv_into(&mut buf).is_some() {
                delivered += 1;
            }
        }
    }
    worker.run_once(Instant::from_secs(1));
    while vm2.recv_into(&mut buf).is_some() {
        delivered += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  vm2 broadcast reached vm1: {}",
        if flooded == 1 { "yes" } else { "NO" }
    );
    println!(
        "  vm1 -> vm2: {delivered}/{n} frames delivered, {:.2} Mpps through the in-memory ports (copy in and out included)",
        delivered as f64 / secs / 1e6
    );
    print!(
        "{}",
        crate::stats::format_counters(&["vm1".into(), "vm2".into()], &counters.snapshot())
    );
    if flooded != 1 || delivered != n as usize {
        bail!("internal mode lost frames in memory ({delivered}/{n}); this is a bug, please report it");
    }
    println!("main job: internal mode forwards between vm1 and vm2 (VM1 <-> VM2: +)");
    Ok(())
}

/// A `vnet-bench run` child process inside a namespace.
pub struct Dataplane {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Dataplane {
    /// Start `vnet-bench ARGS` (this very binary) in `netns` and wait until it forwards.
    pub fn start(netns: &str, args: &[&str]) -> Result<Dataplane> {
        let exe = std::env::current_exe().context("cannot find the vnet-bench binary")?;
        Self::start_exe(&exe, netns, args)
    }

    /// Start the `vnet-bench` binary at `exe` with `args` in `netns` and wait until it
    /// forwards (its startup line says so).
    pub fn start_exe(
        exe: impl AsRef<std::path::Path>,
        netns: &str,
        args: &[&str],
    ) -> Result<Dataplane> {
        let exe = exe.as_ref();
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("could not start the dataplane")?;
        crate::interrupt::register(child.id());
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx.send(l)))
        });
        std::thread::spawn(move || {
            BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx2.send(l)))
        });
        let mut dp = Dataplane {
            child,
            lines: rx,
            log: Vec::new(),
        };
        let deadline = StdInstant::now() + Duration::from_secs(20);
        loop {
            match dp.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let ready = line.contains("Ctrl-C to stop");
                    dp.log.push(line);
                    if ready {
                        return Ok(dp);
                    }
                }
                Err(_) => {
                    if let Some(status) = dp.child.try_wait()? {
                        bail!(
                            "the dataplane exited ({status}) before forwarding: {}",
                            dp.log.join(" | ")
                        );
                    }
                    if StdInstant::now() > deadline {
                        let _ = dp.child.kill();
                        bail!(
                            "the dataplane did not start within 20 s: {}",
                            dp.log.join(" | ")
                        );
                    }
                }
            }
        }
    }

    /// Everything printed so far.
    pub fn log_so_far(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// Stop with SIGINT (as Ctrl-C would), wait, and return everything it printed.
    pub fn stop(&mut self) -> Result<String> {
        // SAFETY: kill(2) on our own child's pid. `ip netns exec` execs in place, so the
        // pid is the dataplane itself.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = StdInstant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if StdInstant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        crate::interrupt::unregister(self.child.id());
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        if !status.success() {
            bail!("the dataplane failed ({status}): {}", self.log.join("\n"));
        }
        Ok(self.log.join("\n"))
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        crate::interrupt::unregister(self.child.id());
    }
}
