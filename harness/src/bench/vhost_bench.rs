//! `vnet-bench bench --port-kind vhost-user`: the same NDR/PDR search and latency loads
//! as on veths, with the guests on vhost-user ports. Each guest is the bench's own
//! virtio driver ([`super::virtio`]) on a Unix socket; the DUT serves the sockets:
//! - `vnet`: `vnet-bench run --vm vhost-user:PATH` per guest (the other endpoints, the
//!   host or the Internet side, stay veths in their namespaces);
//! - `testpmd`: DPDK's vhost PMD (`--vdev net_vhost0,iface=PATH`), io forwarding between
//!   the two guests' sockets: the peer of the guest-to-guest direction.
//!
//! Directions: `guest-to-guest` (both ends virtio rings, driven by one thread on the
//! generator's core, see [`super::vhost_traffic`]) and `guest-to-inet` (the sender a
//! virtio ring, the sink the XDP sink on the Internet side's veth).
//!
//! There is no harness ceiling or floor here (no path from one virtio driver to another
//! without a device between them): each DUT's search starts from its intake rate, an
//! unpaced trial in which the sender offers whatever the transmit ring has room for, and
//! goes up to 1.25 times that (or `--max-rate`).
//!
//! Invariants: sockets live in a directory made for the run and removed with it; the
//! virtio drivers disconnect before their DUT stops; namespaces are the run's own.

use super::gen::{parse_mac, FrameSpec};
use super::lane::{LaneGen, LaneSink};
use super::peers::{self, DutKind, RunningDut};
use super::scenario::{Direction, NextHop, Scenario};
use super::search::SearchConfig;
use super::sink::Sink;
use super::vhost_traffic::VirtioTraffic;
use super::virtio::VirtioNic;
use super::{
    conclude, measure_dut, measure_fixed, record_round, run_prefix, say, spinner, BenchArgs,
    Conclusion, DutChoice, DutRuns, Lane, Rig,
};
use crate::mainjob::Dataplane;
use crate::topo::{Offloads, Topology};
use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long a DUT has to open its sockets.
const CONNECT_WAIT: Duration = Duration::from_secs(15);
/// A DUT's search goes up to this times its intake rate.
const HEADROOM: f64 = 1.25;

/// The MAC of a guest played by the bench's virtio driver (`vm1` -> `02:76:6e:ff:00:01`).
pub fn guest_mac(role: &str) -> [u8; 6] {
    let n = role.trim_start_matches("vm").parse::<u8>().unwrap_or(0);
    [0x02, 0x76, 0x6e, 0xff, 0x00, n]
}

/// The DUTs of a vhost-user run: vnet, and testpmd's vhost PMD where it applies (two
/// guests to join); anything else is refused in one sentence.
///
/// # Errors
/// When a named DUT has no vhost-user side.
pub fn duts(choices: &[DutChoice], scenario: &Scenario) -> Result<Vec<DutKind>> {
    let guest_to_guest = scenario.direction == Direction::GuestToGuest;
    let mut out = Vec::new();
    for c in choices {
        let kinds: &[DutKind] = match c {
            DutChoice::All => {
                if guest_to_guest {
                    &[DutKind::Vnet, DutKind::Testpmd]
                } else {
                    &[DutKind::Vnet]
                }
            }
            DutChoice::Vnet => &[DutKind::Vnet],
            DutChoice::Testpmd if guest_to_guest => &[DutKind::Testpmd],
            DutChoice::Testpmd => bail!(
                "testpmd's vhost PMD joins two guests; it has no {} path (use --direction guest-to-guest)",
                scenario.direction.as_str()
            ),
            DutChoice::VnetOffload => bail!(
                "vnet-offload is vnet's XDP fast path, which carries frames between AF_XDP ports; vhost-user guests go through the core: use --dut vnet"
            ),
            DutChoice::Kernel | DutChoice::KernelFlowtable | DutChoice::XdpRedirect => bail!(
                "the kernel and xdp-redirect have no vhost-user backend here (the kernel would need vhost-net and a tap); with --port-kind vhost-user use --dut vnet,testpmd"
            ),
        };
        for k in kinds {
            if !out.contains(k) {
                out.push(*k);
            }
        }
    }
    out.sort_by_key(|d| *d != DutKind::Vnet);
    Ok(out)
}

/// What `--port-kind vhost-user` does not measure yet, in one sentence.
///
/// # Errors
/// For `both` and `inet-to-guest`, IMIX, `--new-flows`, `--check-flows`.
pub fn check_applies(args: &BenchArgs, direction: Direction) -> Result<()> {
    if !matches!(direction, Direction::GuestToGuest | Direction::GuestToInet) {
        bail!(
            "--port-kind vhost-user measures guest-to-guest and guest-to-inet so far, not {}",
            direction.as_str()
        );
    }
    if args.imix {
        bail!("--imix is not measured on vhost-user ports yet (the virtio generator sends one frame size); drop --imix or use --port-kind veth");
    }
    if args.new_flows || args.check_flows {
        bail!("--new-flows is measured on veths (vnet restarts between trials, which a vhost-user guest would have to reconnect to); use --port-kind veth");
    }
    Ok(())
}

/// The run's socket directory, removed on drop.
struct SocketDir(PathBuf);

impl SocketDir {
    fn new(prefix: &str) -> Result<SocketDir> {
        let p = std::env::temp_dir().join(format!("vnet-bench-{prefix}-vhost"));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)
            .with_context(|| format!("could not create the socket directory {}", p.display()))?;
        Ok(SocketDir(p))
    }

    fn socket(&self, role: &str) -> PathBuf {
        self.0.join(format!("{role}.sock"))
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The guests' roles of a scenario (`vm1`, `vm2`), in order.
fn guest_roles(scenario: &Scenario) -> Vec<String> {
    scenario
        .endpoints
        .iter()
        .filter(|(r, _)| r.starts_with("vm"))
        .map(|(r, _)| r.clone())
        .collect()
}

/// The scenario's other endpoints (host, Internet side) as veths.
fn build_topology(scenario: &Scenario, prefix: &str) -> Result<Topology> {
    let others: Vec<(&str, Option<&str>)> = scenario
        .topology_spec()
        .into_iter()
        .filter(|(r, _)| !r.starts_with("vm"))
        .collect();
    Topology::build_with(prefix, &others, Offloads::TxOff)
}

/// Start `kind` serving one socket per guest.
fn start_dut(
    kind: DutKind,
    args: &BenchArgs,
    scenario: &Scenario,
    topo: &Topology,
    sockets: &[(String, PathBuf)],
    dut_core: usize,
) -> Result<(RunningDut, peers::DutInfo)> {
    for (_, p) in sockets {
        let _ = std::fs::remove_file(p);
    }
    match kind {
        DutKind::Vnet => {
            let exe = match &args.vnet_exe {
                Some(p) => p.clone(),
                None => std::env::current_exe().context("cannot find the vnet-bench binary")?,
            };
            let mut base = scenario.vnet_args(topo);
            for (_, p) in sockets {
                base.push("--vm".into());
                base.push(format!("vhost-user:{}", p.display()));
            }
            let argv = peers::vnet_argv(kind, base, dut_core, None);
            let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
            let mut dp = Dataplane::start_exe(&exe, topo.dp_netns(), &refs)?;
            let mut info = peers::vnet_info(
                &dp.log_so_far(),
                format!(
                    "ip netns exec {} vnet-bench {}",
                    topo.dp_netns(),
                    argv.join(" ")
                ),
            );
            info.backend = "vhost-user (vnet's virtio-net device on the worker)".into();
            // No interface of a guest here: no NAPI, no busy polling to report.
            info.napi = String::new();
            info.busy_poll = String::new();
            Ok((
                RunningDut::Vnet {
                    dp,
                    exe,
                    netns: topo.dp_netns().to_string(),
                    args: argv,
                    restarts: 0,
                    unclean: (0, String::new()),
                },
                info,
            ))
        }
        DutKind::Testpmd => {
            if sockets.len() != 2 {
                bail!("testpmd io forwarding joins exactly two guests");
            }
            let other = args.gen_core;
            let mut tp: Vec<String> = ["--no-huge", "--no-pci", "-m", "512", "--file-prefix"]
                .map(String::from)
                .to_vec();
            tp.push(format!("vnbv{}", std::process::id()));
            tp.extend(["-l".into(), format!("{other},{dut_core}")]);
            tp.extend(["--main-lcore".into(), other.to_string()]);
            for (i, (_, p)) in sockets.iter().enumerate() {
                tp.extend([
                    "--vdev".into(),
                    format!("net_vhost{i},iface={},queues=1", p.display()),
                ]);
            }
            tp.extend(
                [
                    "--",
                    "--forward-mode=io",
                    "--auto-start",
                    "--nb-cores=1",
                    "--rxq=1",
                    "--txq=1",
                    "--total-num-mbufs=16384",
                ]
                .map(String::from),
            );
            let (child, lines, log) = peers::spawn_testpmd(topo.dp_netns(), &tp)?;
            let info = peers::DutInfo {
                backend: "net_vhost (DPDK vhost PMD)".into(),
                command: format!("dpdk-testpmd {}", tp.join(" ")),
                detail: log
                    .iter()
                    .filter(|l| l.contains("vhost") || l.contains("VHOST"))
                    .cloned()
                    .collect(),
                ..peers::DutInfo::default()
            };
            Ok((
                RunningDut::Testpmd {
                    child,
                    lines,
                    log,
                    knobs: peers::NapiKnobs::default(),
                },
                info,
            ))
        }
        other => bail!("{} has no vhost-user backend here", other.as_str()),
    }
}

/// The lanes of the scenario's streams: the guests' drivers connected to the DUT's
/// sockets, the Internet side's XDP sink on its veth.
fn lanes(
    args: &BenchArgs,
    scenario: &Scenario,
    topo: &Topology,
    sockets: &[(String, PathBuf)],
) -> Result<Vec<Lane>> {
    let mut nics: HashMap<String, VirtioNic> = HashMap::new();
    for (role, p) in sockets {
        nics.insert(role.clone(), VirtioNic::connect(p, CONNECT_WAIT)?);
    }
    let mut out = Vec::new();
    for stream in &scenario.streams {
        let is_guest = |r: &str| r.starts_with("vm");
        if !is_guest(&stream.gen_role) {
            bail!("--port-kind vhost-user sends from a guest");
        }
        let dst_mac = match stream.next_hop {
            NextHop::Router(ip) => vnet_modes::gateway::service_mac(ip).0,
            NextHop::Sink if is_guest(&stream.sink_role) => guest_mac(&stream.sink_role),
            NextHop::Sink => parse_mac(&topo.endpoint(&stream.sink_role).mac)?,
        };
        let frame = FrameSpec {
            dst_mac,
            src_mac: guest_mac(&stream.gen_role),
            src_ip: stream.src_ip,
            dst_ip: stream.dst_ip,
            dst_port: stream.dst_port,
            frame_size: usize::from(args.frame_size),
            imix: args.imix,
        };
        let tx = nics
            .remove(&stream.gen_role)
            .with_context(|| format!("{} has no socket", stream.gen_role))?;
        let (rx, xdp_sink) = if is_guest(&stream.sink_role) {
            let rx = nics
                .remove(&stream.sink_role)
                .with_context(|| format!("{} has no socket", stream.sink_role))?;
            (Some(rx), None)
        } else {
            let e = topo.endpoint(&stream.sink_role);
            (None, Some(Sink::attach(&e.netns, &e.ifname)?))
        };
        let traffic = Arc::new(VirtioTraffic::new(
            tx,
            rx,
            args.gen_core,
            &frame,
            args.flows,
        )?);
        if is_guest(&stream.sink_role) {
            traffic.announce(guest_mac(&stream.sink_role), stream.dst_ip)?;
        }
        let sink = match xdp_sink {
            Some(s) => LaneSink::Xdp(s),
            None => LaneSink::Virtio(Arc::clone(&traffic)),
        };
        out.push(Lane {
            stream: stream.clone(),
            gen: LaneGen::Virtio(traffic),
            sink,
        });
    }
    Ok(out)
}

/// Run `vnet-bench bench --port-kind vhost-user`.
///
/// # Errors
/// When not privileged, the direction or a DUT does not apply, or a DUT fails to start.
pub fn run(args: BenchArgs) -> Result<()> {
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    crate::preflight::require_root("vnet-bench bench")?;
    let direction = args
        .direction
        .unwrap_or_else(|| Direction::default_for(args.mode));
    check_applies(&args, direction)?;
    let scenario = Scenario::new(args.mode, direction)?;
    if args.trial.is_nan() || args.trial <= 0.0 {
        bail!("--trial must be positive");
    }
    if args.latency_only && !(args.rate.is_finite() && args.rate >= 1.0) {
        bail!("--rate must be at least 1 frame/s");
    }
    let duts = duts(&args.dut, &scenario)?;
    let machine = super::results::Machine::this();
    let dut_core = args.dut_core.unwrap_or(if machine.cores > 1 {
        (args.gen_core + 1) % machine.cores
    } else {
        0
    });
    super::check_cores(args.gen_core, dut_core, machine.cores)?;
    let prefix = run_prefix(&args)?;
    let trial = Duration::from_secs_f64(args.trial);
    let stop = crate::run::stop_flag()?;
    let started = SystemTime::now();
    let dir = SocketDir::new(&prefix)?;
    let sockets: Vec<(String, PathBuf)> = guest_roles(&scenario)
        .into_iter()
        .map(|r| {
            let p = dir.socket(&r);
            (r, p)
        })
        .collect();
    let pb = spinner();

    let mut per_dut: Vec<DutRuns> = duts.iter().map(|d| DutRuns::new(*d)).collect();
    let mut complete = true;
    'rounds: for round in 0..args.rounds.max(1) {
        let mut round_reference: Option<f64> = None;
        for entry in per_dut.iter_mut() {
            if stop.load(Ordering::Relaxed) {
                complete = false;
                break 'rounds;
            }
            let kind = entry.kind;
            pb.set_message(format!("round {}: starting {}", round + 1, kind.as_str()));
            let topo = build_topology(&scenario, &prefix)?;
            let (dut, info) = match start_dut(kind, &args, &scenario, &topo, &sockets, dut_core) {
                Ok(x) => x,
                Err(e) => {
                    say(&pb, format!("  {}: could not start: {e:#}", kind.as_str()));
                    entry.error = Some(format!("{e:#}"));
                    continue;
                }
            };
            let r = measure_one(
                &args,
                &scenario,
                &topo,
                &sockets,
                trial,
                &stop,
                &pb,
                kind,
                if kind == DutKind::Vnet {
                    None
                } else {
                    round_reference
                },
            );
            let log = dut.stop();
            record_round(entry, r, log, &mut complete, &mut round_reference);
            entry.info = Some(info);
            drop(topo);
        }
    }
    pb.finish_and_clear();
    if stop.load(Ordering::Relaxed) {
        complete = false;
        println!("interrupted: keeping what was measured");
    }
    let reference = if args.latency_only {
        "fixed rate"
    } else {
        "vnet PDR"
    };
    drop(dir);
    conclude(
        &args,
        Conclusion {
            direction,
            command,
            started,
            dut_core,
            reference,
            generator: format!(
                "virtio driver on vhost-user rings of {} entries (vnet-bench's own frontend), paced, sender and receiver in one thread on core {}",
                super::virtio::RING,
                args.gen_core
            ),
            sink_attach: if direction == Direction::GuestToGuest {
                "virtio receive ring (vhost-user), read by the generator's thread".into()
            } else {
                "xdp on the Internet side's veth".into()
            },
            folder_suffix: "-vhost-user",
            ceil: None,
            per_dut,
            floor_trials: Vec::new(),
            complete,
        },
    )
}

/// One DUT in one round: connect the guests, learn the DUT's intake rate, search.
#[allow(clippy::too_many_arguments)]
fn measure_one(
    args: &BenchArgs,
    scenario: &Scenario,
    topo: &Topology,
    sockets: &[(String, PathBuf)],
    trial: Duration,
    stop: &AtomicBool,
    pb: &ProgressBar,
    kind: DutKind,
    reference_pdr: Option<f64>,
) -> Result<super::RoundResult> {
    let lanes = lanes(args, scenario, topo, sockets)?;
    let mut rig = Rig {
        lanes,
        tag: 0,
        trial,
        stop,
        renewal: None,
    };
    // Warm-up (tag 0, which no trial uses): the DUT resolves the next hop, learns.
    for l in &rig.lanes {
        l.gen.run(0, 10_000.0, Duration::from_millis(300), stop)?;
    }
    let name = kind.as_str();
    if args.latency_only {
        return measure_fixed(&mut rig, args.rate, pb, name);
    }
    let max_pps = match args.max_rate {
        Some(m) => m,
        None => {
            pb.set_message(format!("{name}: intake rate (unpaced)"));
            let Some((t, _)) = rig.trial(0.0)? else {
                return Ok(super::RoundResult::interrupted());
            };
            say(
                pb,
                format!(
                    "  {name} intake (unpaced): offered {:.3} Mpps, received {:.3} Mpps",
                    t.offered_pps / 1e6,
                    t.received_pps() / 1e6
                ),
            );
            HEADROOM * t.offered_pps
        }
    };
    let cfg = SearchConfig {
        max_pps,
        min_pps: (max_pps / 1000.0).max(1000.0),
        pdr_loss: args.pdr_loss,
        precision: args.precision,
    };
    measure_dut(
        &mut rig,
        &cfg,
        f64::INFINITY,
        pb,
        name,
        reference_pdr,
        f64::INFINITY,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ModeName;

    #[test]
    fn guests_get_distinct_locally_administered_macs() {
        assert_eq!(guest_mac("vm1"), [2, 0x76, 0x6e, 0xff, 0, 1]);
        assert_ne!(guest_mac("vm1"), guest_mac("vm2"));
        assert_eq!(guest_mac("vm2")[0] & 3, 2, "locally administered unicast");
    }

    #[test]
    fn the_duts_are_vnet_and_the_vhost_pmd_where_two_guests_meet() {
        let g2g = Scenario::new(ModeName::Internal, Direction::GuestToGuest).unwrap();
        assert_eq!(
            duts(&[DutChoice::All], &g2g).unwrap(),
            vec![DutKind::Vnet, DutKind::Testpmd]
        );
        let nat = Scenario::new(ModeName::Nat, Direction::GuestToInet).unwrap();
        assert_eq!(duts(&[DutChoice::All], &nat).unwrap(), vec![DutKind::Vnet]);
        let e = duts(&[DutChoice::Testpmd], &nat).unwrap_err().to_string();
        assert!(e.contains("joins two guests"), "{e}");
        let e = duts(&[DutChoice::Kernel], &g2g).unwrap_err().to_string();
        assert!(e.contains("no vhost-user backend"), "{e}");
        let e = duts(&[DutChoice::VnetOffload], &g2g)
            .unwrap_err()
            .to_string();
        assert!(e.contains("AF_XDP ports"), "{e}");
    }

    #[test]
    fn only_the_guest_sides_become_sockets() {
        let s = Scenario::new(ModeName::Bridged, Direction::GuestToInet).unwrap();
        assert_eq!(guest_roles(&s), vec!["vm1", "vm2"]);
    }
}
