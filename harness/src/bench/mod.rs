//! `vnet-bench bench`: throughput (NDR, PDR) and latency of a mode, for vnet and its
//! peers in the same run, on the harness's own namespaces.
//!
//! Layers:
//! - [`bpf`]: the XDP programs (`bpf/*.bpf.c`, compiled by `build.rs`) and libbpf calls;
//! - [`gen`]: the generator (BPF_PROG_RUN live frames, paced, pinned to its own core);
//! - [`sink`]: the sink (XDP on the receiving interface: latency buckets, sequence);
//! - [`virtio`], [`vhost_traffic`]: `--port-kind vhost-user`'s guests, a virtio driver on
//!   a vhost-user socket that sends paced and receives in one thread;
//! - [`lane`]: a stream's two ends, whichever of the two kinds;
//! - [`vhost_bench`]: the run with vhost-user guests (vnet and testpmd's vhost PMD);
//! - [`search`]: NDR/PDR binary search over trials;
//! - [`scenario`]: a mode in one direction (endpoints, addresses, DUT arguments);
//! - [`peers`]: the DUTs (vnet and vnet-offload, the kernel and kernel-flowtable, testpmd,
//!   xdp-redirect) and fair interface settings;
//! - [`results`]: `summary.json`, `.hlog`, `.hgrm`;
//! - [`compare`]: `vnet-bench compare` (KS test + threshold, SVG plot);
//! - [`ab`]: `vnet-bench compare --ab OLD NEW` (two builds alternately, pair by pair);
//! - [`report`]: `vnet-bench report` (a results folder as one table).
//!
//! A run: the harness ceiling (generator -> sink, unpaced); then per round each DUT on a
//! fresh topology (vnet first: its PDR sets every DUT's latency loads, 10/50/90 %), then
//! the harness floor (generator -> sink alone) at those loads. `--latency-only`: no
//! ceiling, no search; each DUT and the floor at one fixed rate.
//!
//! Invariants: everything runs in namespaces made for the run (prefix `vbNNN`), removed
//! on exit, on error and on Ctrl-C; interface settings changed for a peer are restored;
//! speed is measured, never asserted.

pub mod ab;
pub mod bpf;
pub mod compare;
pub mod gen;
pub mod lane;
pub mod peers;
pub mod plot;
pub mod report;
pub mod results;
pub mod scenario;
pub mod search;
pub mod sink;
pub mod vhost_bench;
pub mod vhost_traffic;
pub mod virtio;

pub use compare::CompareArgs;

use crate::cli::ModeName;
use crate::topo::{Offloads, Topology};
use anyhow::{bail, Context, Result};
use gen::Generator;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use lane::{LaneGen, LaneSink};
use peers::{DutKind, RunningDut};
use results::{Ceiling, DutResult, LatencyPoint, Machine, RatePoint, Ratios, Settings, Summary};
use scenario::{Direction, Scenario, Stream};
use search::{SearchConfig, TrialOutcome};
use sink::Sink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// Which DUTs to measure (`--dut`, comma-separated).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DutChoice {
    /// vnet.
    Vnet,
    /// vnet with `--offload xdp`.
    VnetOffload,
    /// The Linux kernel.
    Kernel,
    /// The kernel's NAT plus an nftables flowtable (NAT modes' routed directions).
    KernelFlowtable,
    /// testpmd.
    Testpmd,
    /// XDP_REDIRECT from port to port: an L2 wire, the topology's ceiling.
    XdpRedirect,
    /// Every DUT that applies to the scenario (kernel-flowtable only where the kernel
    /// routes), alternating.
    All,
}

/// The DUTs `choices` name for `scenario`, each once, vnet first (its PDR in a round sets
/// every DUT's latency loads), then in the order given. `all` adds every DUT that applies
/// to the scenario; a DUT named on its own that does not apply is kept, so that it is
/// refused in the report with its reason.
pub fn expand_duts(choices: &[DutChoice], scenario: &Scenario) -> Vec<DutKind> {
    let mut duts: Vec<DutKind> = Vec::new();
    for d in choices {
        let add: Vec<DutKind> = match d {
            DutChoice::Vnet => vec![DutKind::Vnet],
            DutChoice::VnetOffload => vec![DutKind::VnetOffload],
            DutChoice::Kernel => vec![DutKind::Kernel],
            DutChoice::KernelFlowtable => vec![DutKind::KernelFlowtable],
            DutChoice::Testpmd => vec![DutKind::Testpmd],
            DutChoice::XdpRedirect => vec![DutKind::XdpRedirect],
            DutChoice::All => [
                DutKind::Vnet,
                DutKind::VnetOffload,
                DutKind::Kernel,
                DutKind::KernelFlowtable,
                DutKind::Testpmd,
                DutKind::XdpRedirect,
            ]
            .into_iter()
            .filter(|k| k.check_applies(scenario).is_ok())
            .collect(),
        };
        for k in add {
            if !duts.contains(&k) {
                duts.push(k);
            }
        }
    }
    duts.sort_by_key(|d| *d != DutKind::Vnet);
    duts
}

/// How the bench's guests attach to the DUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PortKind {
    /// A veth per guest (vnet's AF_XDP ports, the kernel's interfaces).
    Veth,
    /// A vhost-user socket per guest (vnet's `--vm vhost-user:PATH`, DPDK's vhost PMD).
    VhostUser,
}

/// `vnet-bench bench` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// The mode to measure.
    #[arg(long, value_enum)]
    pub mode: ModeName,
    /// Direction of the traffic (default: guest-to-guest on the switched modes,
    /// guest-to-inet, the translated path, on the NAT modes).
    #[arg(long, value_enum)]
    pub direction: Option<Direction>,
    /// Devices under test, comma-separated (`vnet,kernel`), run alternately.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
    pub dut: Vec<DutChoice>,
    /// Frame size in bytes with FCS (RFC 2544: 64, 128, 256, 512, 1024, 1280, 1518).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(64..=1518))]
    pub frame_size: u16,
    /// IMIX (7:4:1 of 64, 570, 1518 bytes) instead of one frame size.
    #[arg(long)]
    pub imix: bool,
    /// UDP flows, pseudorandom ports (RFC 4814).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub flows: u32,
    /// Connection setup rate (NAT modes, guest-to-inet): every frame of a trial is the
    /// first and only frame of a UDP flow new to the DUT (frame n: source port
    /// 1024 + n % 64512, destination port 1024 + n / 64512), so the rates found are new
    /// flows (NAT sessions) per second. Every trial starts on an empty session table
    /// (vnet restarted, the kernel's conntrack flushed); vnet's table holds 2097152
    /// sessions (and fast-path entries), the kernel's what its namespace may have, and
    /// no trial offers more than 95 % of its DUT's table (summary.json says what bounded
    /// each DUT).
    #[arg(long, conflicts_with = "flows")]
    pub new_flows: bool,
    /// With --new-flows: the sink counts the distinct UDP port pairs of each trial
    /// (`distinct_flows` of every trial in summary.json). A hash insert per frame on the
    /// receiving softirq, which on a veth runs on the DUT's core: a check, not for
    /// measurements.
    #[arg(long, requires = "new_flows")]
    pub check_flows: bool,
    /// Trial length in seconds (RFC 2544 asks for 60 in a formal run).
    #[arg(long, default_value_t = 2.0, value_name = "S")]
    pub trial: f64,
    /// Loss allowed at PDR.
    #[arg(long, default_value_t = 0.005)]
    pub pdr_loss: f64,
    /// Search precision, relative to the upper bound.
    #[arg(long, default_value_t = 0.02)]
    pub precision: f64,
    /// Highest rate to try, frames/s (default: the harness ceiling).
    #[arg(long, value_name = "PPS")]
    pub max_rate: Option<f64>,
    /// Rounds: each DUT searched once per round, DUTs alternating; medians reported.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Core of the generator.
    #[arg(long, default_value_t = 0)]
    pub gen_core: usize,
    /// Core of the DUT.
    #[arg(long)]
    pub dut_core: Option<usize>,
    /// Frames per BPF_PROG_RUN batch (kernel default 64).
    #[arg(long, default_value_t = 64)]
    pub batch_size: u32,
    /// Write results to DIR/MODE/ (summary.json, DUT.hlog, DUT-latNN.hgrm).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Namespace prefix (1-5 letters/digits; default vb + pid).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Skip the harness-ceiling measurement (then --max-rate is required).
    #[arg(long)]
    pub no_ceiling: bool,
    /// No search: one-way latency of every DUT and of the harness itself (its floor) at
    /// one fixed rate (`--rate`), DUTs alternating per round.
    #[arg(long)]
    pub latency_only: bool,
    /// The fixed rate of `--latency-only`, frames/s.
    #[arg(
        long,
        value_name = "PPS",
        default_value_t = 10_000.0,
        requires = "latency_only"
    )]
    pub rate: f64,
    /// How the guests attach to the DUT: `veth` (the XDP generator and sink on veths,
    /// vnet on AF_XDP) or `vhost-user` (the bench's own virtio driver on vhost-user
    /// sockets served by vnet `--vm vhost-user:PATH` or testpmd's vhost PMD; directions
    /// guest-to-guest and guest-to-inet; results in a `-vhost-user` folder).
    #[arg(long, value_enum, default_value = "veth")]
    pub port_kind: PortKind,
    /// The vnet-bench binary to run as the vnet DUT (default: this one).
    #[arg(long, hide = true)]
    pub vnet_exe: Option<PathBuf>,
}

/// NAT sessions (and vnet-offload's fast-path entries) a vnet DUT gets with
/// `--new-flows`: 2 Mi, so that a 1 s trial may offer up to 2 M new flows/s (1 M with 2 s
/// trials), about 4x what vnet's core sets up here. Not vnet's largest table (4 Mi): every
/// trial restarts vnet, and vnet-offload's preallocated BPF maps of 4 Mi entries cost
/// about a gigabyte to set up and free per restart.
pub const NEW_FLOWS_SESSIONS: usize = 1 << 21;

/// Share of a DUT's session table one `--new-flows` trial may fill at most: the offered
/// rate is capped at this times the table over the trial length.
const NEW_FLOWS_FILL: f64 = 0.95;

/// The highest rate a `--new-flows` trial of `trial_s` seconds may offer a DUT whose
/// table holds `table` sessions; `None` when it keeps no per-flow state (0).
pub fn new_flows_cap(table: u64, trial_s: f64) -> Option<f64> {
    (table > 0 && trial_s > 0.0).then(|| NEW_FLOWS_FILL * table as f64 / trial_s)
}

/// `--new-flows`: the running DUT, renewed before every trial but the first (an empty
/// session table), and what it takes to aim the generators at it again.
struct Renewal<'a> {
    dut: RunningDut,
    /// True until the first trial: the DUT has just started.
    fresh: bool,
    kind: DutKind,
    topo: &'a Topology,
    scenario: &'a Scenario,
    frame_size: usize,
    imix: bool,
}

/// One measured stream: its generator and its sink.
struct Lane {
    stream: Stream,
    gen: LaneGen,
    sink: LaneSink,
}

/// The streams of a scenario, measured together: a trial runs every generator at once
/// (each at its share of the rate) and adds up what the sinks saw.
struct Rig<'a> {
    lanes: Vec<Lane>,
    tag: u16,
    trial: Duration,
    stop: &'a AtomicBool,
    /// `--new-flows` on a DUT: renewed before each trial.
    renewal: Option<Renewal<'a>>,
}

impl Rig<'_> {
    /// `--new-flows`: an empty session table before every trial but the DUT's first;
    /// a restarted vnet is asked for its MAC again and learns the next hop.
    fn renew(&mut self) -> Result<()> {
        let Some(r) = self.renewal.as_mut() else {
            return Ok(());
        };
        if std::mem::replace(&mut r.fresh, false) {
            return Ok(());
        }
        r.dut.renew()?;
        if matches!(r.dut, RunningDut::Vnet { .. }) {
            r.scenario.forget_neighbours(r.topo);
            r.scenario.warm_up(r.topo);
            for l in &mut self.lanes {
                let f = r
                    .scenario
                    .frame(r.topo, &l.stream, r.kind, r.frame_size, r.imix)?;
                l.gen.set_frame(&f)?;
            }
        }
        Ok(())
    }

    /// One trial at `rate` frames/s in total; `None` when interrupted. `rate` 0: unpaced.
    fn trial(&mut self, rate: f64) -> Result<Option<(TrialOutcome, sink::SinkReport)>> {
        if self.stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        self.renew()?;
        self.tag = self.tag.wrapping_add(1).max(1);
        for l in &self.lanes {
            l.sink.reset(self.tag)?;
        }
        let share = rate / self.lanes.len() as f64;
        let (tag, trial, stop) = (self.tag, self.trial, self.stop);
        let sent: Vec<Result<gen::GenReport>> = std::thread::scope(|s| {
            let running: Vec<_> = self
                .lanes
                .iter()
                .map(|l| s.spawn(move || l.gen.run(tag, share, trial, stop)))
                .collect();
            running
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a generator thread panicked")))
                })
                .collect()
        });
        // Frames still in flight (rings, the DUT) arrive within a few ms.
        std::thread::sleep(Duration::from_millis(100));
        let mut total: Option<sink::SinkReport> = None;
        for l in &self.lanes {
            let r = l.sink.read()?;
            match &mut total {
                Some(t) => t.merge(&r)?,
                None => total = Some(r),
            }
        }
        if self.stop.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (mut n, mut pps, mut skipped, mut refused) = (0u64, 0.0, 0u64, 0u64);
        for g in sent {
            let g = g?;
            n += g.sent;
            pps += g.pps;
            skipped += g.skipped;
            refused += g.refused;
        }
        let s = total.context("a rig has at least one stream")?;
        Ok(Some((
            TrialOutcome {
                requested_pps: if rate > 0.0 { rate } else { pps },
                offered_pps: pps,
                sent: n,
                received: s.received,
                out_of_order: s.out_of_order,
                gen_skipped: skipped,
                gen_refused: refused,
                received_bytes: s.bytes,
                distinct_flows: s.new_flows,
            },
            s,
        )))
    }

    /// Address every stream's frames for `dut` (the next hop's MAC differs per DUT).
    fn aim(
        &mut self,
        topo: &Topology,
        scenario: &Scenario,
        dut: DutKind,
        frame_size: usize,
        imix: bool,
    ) -> Result<()> {
        for l in &mut self.lanes {
            let f = scenario.frame(topo, &l.stream, dut, frame_size, imix)?;
            l.gen.set_frame(&f)?;
        }
        Ok(())
    }
}

/// CPUs online (`/sys/devices/system/cpu/online`, e.g. "0-1"): one more than the
/// highest; whatever this process's affinity mask allows.
fn online_cpus() -> Option<usize> {
    cpus_in(&std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?)
}

/// `--gen-core` and `--dut-core` must name cores this machine has.
///
/// # Errors
/// Otherwise, naming the cores there are.
fn check_cores(gen_core: usize, dut_core: usize, cores: usize) -> Result<()> {
    let cpus = online_cpus().unwrap_or(cores);
    for (flag, core) in [("--gen-core", gen_core), ("--dut-core", dut_core)] {
        if core >= cpus {
            bail!(
                "{flag} {core}: this machine has {cpus} cores (0 to {}); pick one of them",
                cpus - 1
            );
        }
    }
    Ok(())
}

/// The run's namespace prefix: `--prefix`, or `vb` + the pid's last three digits.
///
/// # Errors
/// When `--prefix` is longer than 5 characters.
fn run_prefix(args: &BenchArgs) -> Result<String> {
    let prefix = args
        .prefix
        .clone()
        .unwrap_or_else(|| format!("vb{}", std::process::id() % 1000));
    if prefix.len() > 5 {
        bail!("--prefix must be at most 5 characters");
    }
    Ok(prefix)
}

/// The run's progress spinner.
fn spinner() -> ProgressBar {
    let pb = ProgressBar::new_spinner();
    pb.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    pb.enable_steady_tick(Duration::from_millis(200));
    pb
}

/// Keep one DUT's round: what it measured (its PDR the round's reference when it is the
/// first), or why it measured nothing; a DUT that failed when stopped keeps its figures
/// with the failure beside them.
fn record_round(
    entry: &mut DutRuns,
    r: Result<RoundResult>,
    log: Result<String>,
    complete: &mut bool,
    round_reference: &mut Option<f64>,
) {
    entry.logs.push(match &log {
        Ok(text) => text.clone(),
        Err(e) => format!("{e:#}"),
    });
    match (r, log) {
        (Ok(r), log) => {
            match log {
                Ok(_) => *complete &= r.complete,
                Err(e) => entry.error = Some(format!("the DUT failed: {e:#}")),
            }
            *round_reference = round_reference.or(r.pdr.map(|p| p.pps));
            entry.rounds.push(r);
        }
        (Err(e), _) => entry.error = Some(format!("{e:#}")),
    }
}

/// One more than the highest CPU of a kernel CPU list ("0-3,8-11" -> 12).
fn cpus_in(list: &str) -> Option<usize> {
    let last = list.trim().rsplit([',', '-']).next()?;
    last.parse::<usize>().ok().map(|n| n + 1)
}

/// A line above the progress spinner, or plainly on stderr when there is no terminal.
fn say(pb: &ProgressBar, line: String) {
    if pb.is_hidden() {
        eprintln!("{line}");
    } else {
        pb.println(line);
    }
}

fn rate_point(t: &TrialOutcome) -> RatePoint {
    RatePoint {
        requested_pps: t.requested_pps,
        offered_pps: t.offered_pps,
        received_pps: t.received_pps(),
        loss: t.loss_ratio(),
        mean_frame_bytes: t.mean_frame_bytes(),
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        0.0
    } else if v.len() % 2 == 1 {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    }
}

fn mpps(pps: f64) -> String {
    format!("{:.3}", pps / 1e6)
}

fn us(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e3)
}

/// The harness alone: generator to sink over one veth pair (`PREFIX-*`), no DUT, the
/// sink on the dataplane-side end.
fn harness_rig<'a>(
    prefix: &str,
    args: &BenchArgs,
    frame_size: usize,
    trial: Duration,
    stop: &'a AtomicBool,
) -> Result<(Topology, Rig<'a>)> {
    let topo = Topology::build_with(prefix, &[("gen", None)], Offloads::TxOff)?;
    let e = topo.endpoint("gen").clone();
    let frame = gen::FrameSpec {
        dst_mac: [0x02, 0x76, 0x6e, 0, 0, 0xfe],
        src_mac: gen::parse_mac(&e.mac)?,
        src_ip: "198.18.0.11".parse()?,
        dst_ip: "198.18.0.12".parse()?,
        dst_port: None,
        frame_size,
        imix: args.imix,
    };
    let rig = Rig {
        lanes: vec![Lane {
            stream: Stream {
                gen_role: "gen".into(),
                sink_role: "sink".into(),
                src_ip: frame.src_ip,
                dst_ip: frame.dst_ip,
                dst_port: None,
                next_hop: scenario::NextHop::Sink,
            },
            gen: LaneGen::Xdp(Generator::new(
                &e.netns,
                &e.ifname,
                args.gen_core,
                &frame,
                args.flows,
                args.batch_size,
            )?),
            sink: LaneSink::Xdp(Sink::attach(topo.dp_netns(), &e.dp_ifname)?),
        }],
        tag: 0,
        trial,
        stop,
        renewal: None,
    };
    for l in &rig.lanes {
        l.gen.set_new_flows(args.new_flows)?;
        l.sink.count_flows(args.check_flows)?;
    }
    Ok((topo, rig))
}

/// Where the sink's receive work runs in [`harness_floor`].
const FLOOR_HOW: &str =
    "generator -> sink over one veth pair, the sink in the softirq of the generator's core (veth's default)";

/// The harness's own latency at each `(load %, rate)`: the floor under every DUT's
/// figures, measured on a fresh generator -> sink pair with veth's default NAPI
/// settings (no DUT's settings reach the generator's or the sink's ends). `None` when
/// interrupted.
fn harness_floor(
    prefix: &str,
    args: &BenchArgs,
    frame_size: usize,
    loads: &[(u32, f64)],
    trial: Duration,
    stop: &AtomicBool,
) -> Result<Option<Vec<LatencyTrial>>> {
    let (topo, mut rig) = harness_rig(prefix, args, frame_size, trial, stop)?;
    let mut out = Vec::new();
    for &(pct, rate) in loads {
        match rig.trial(rate)? {
            Some((t, s)) => out.push((pct, t, s)),
            None => return Ok(None),
        }
    }
    drop(rig);
    drop(topo);
    Ok(Some(out))
}

/// Measure the harness's ceiling: generator to sink over one veth pair, unpaced.
fn ceiling(
    prefix: &str,
    args: &BenchArgs,
    frame_size: usize,
    sink_core: usize,
    trial: Duration,
    stop: &AtomicBool,
) -> Result<Option<Ceiling>> {
    let (topo, mut rig) = harness_rig(prefix, args, frame_size, trial, stop)?;
    let e = topo.endpoint("gen").clone();
    // The sink's receive work on its own core (threaded NAPI), where a DUT would run:
    // otherwise it shares the generator's core and the ceiling measures both.
    // Measured twice: the sink's receive work in the softirq of the generator's core
    // (veth's default), and in a NAPI thread on the DUT's core; the better one is the
    // ceiling.
    let mut best: Option<(RatePoint, String)> = None;
    let inline = rig.trial(0.0)?.map(|(t, _)| {
        (
            rate_point(&t),
            format!("sink in the softirq of core {}", args.gen_core),
        )
    });
    best = best
        .into_iter()
        .chain(inline)
        .max_by(|a, b| a.0.received_pps.total_cmp(&b.0.received_pps));
    if sink_core != args.gen_core {
        let mut knobs = peers::NapiKnobs::default();
        knobs.set(topo.dp_netns(), &e.dp_ifname, "threaded", "1")?;
        peers::pin_napi_threads(&e.dp_ifname, sink_core)?;
        let threaded = rig.trial(0.0)?.map(|(t, _)| {
            (
                rate_point(&t),
                format!("sink in a NAPI thread on core {sink_core}"),
            )
        });
        drop(knobs);
        best = best
            .into_iter()
            .chain(threaded)
            .max_by(|a, b| a.0.received_pps.total_cmp(&b.0.received_pps));
    }
    drop(rig);
    drop(topo);
    Ok(best.map(|(rate, how)| Ceiling { rate, how }))
}

/// Latency histograms per DUT: `(dut, [(load %, histogram)])`.
pub type DutHistograms = (String, Vec<(u32, Histogram<u64>)>);

/// One DUT's runs over the rounds.
pub(crate) struct DutRuns {
    kind: DutKind,
    info: Option<peers::DutInfo>,
    rounds: Vec<RoundResult>,
    /// Why it has no (or no further) result.
    error: Option<String>,
    /// What it printed in each round it ran (vnet's final counters: drops by reason),
    /// kept beside the results as `DUT.log`.
    logs: Vec<String>,
}

impl DutRuns {
    /// No run yet.
    pub(crate) fn new(kind: DutKind) -> Self {
        Self {
            kind,
            info: None,
            rounds: Vec::new(),
            error: None,
            logs: Vec::new(),
        }
    }
}

/// A latency trial: (load %, the trial, the sink's report).
type LatencyTrial = (u32, TrialOutcome, sink::SinkReport);

/// The latency loads, percent of the reference PDR.
const LATENCY_LOADS: [u32; 3] = [10, 50, 90];

/// Everything measured for one DUT in one round (`ndr`/`pdr` absent with
/// `--latency-only`).
struct RoundResult {
    ndr: Option<search::Found>,
    pdr: Option<search::Found>,
    trials: Vec<TrialOutcome>,
    latency: Vec<LatencyTrial>,
    overload: Option<RatePoint>,
    complete: bool,
}

/// Search a DUT's NDR and PDR, then measure its latency at 10, 50 and 90 % of
/// `reference_pdr` (vnet's PDR in this round, so that every DUT is measured at the same
/// offered rates; the DUT's own PDR when `None`) and what it delivers at 2x its PDR.
///
/// `rate_cap` (`--new-flows`: what the DUT's session table holds in one trial, infinite
/// otherwise) bounds every trial, the latency and overload ones included.
fn measure_dut(
    rig: &mut Rig<'_>,
    cfg: &SearchConfig,
    ceiling_pps: f64,
    pb: &ProgressBar,
    dut: &str,
    reference_pdr: Option<f64>,
    rate_cap: f64,
) -> Result<RoundResult> {
    let mut n = 0;
    let sr = search::search(cfg, |rate| {
        n += 1;
        pb.set_message(format!("{dut}: search trial {n} at {} Mpps", mpps(rate)));
        Ok(rig.trial(rate)?.map(|(t, _)| {
            say(
                pb,
                format!(
                    "  {dut} trial {n}: offered {} Mpps, received {} Mpps, loss {:.4}%{}",
                    mpps(t.offered_pps),
                    mpps(t.received_pps()),
                    t.loss_ratio() * 100.0,
                    if t.gen_skipped > 0 {
                        format!(" (generator stalled: {} slots given up)", t.gen_skipped)
                    } else {
                        String::new()
                    }
                ),
            );
            t
        }))
    })?;
    let mut latency = Vec::new();
    let mut overload = None;
    let mut complete = sr.complete;
    let base = reference_pdr.unwrap_or(sr.pdr.pps);
    if complete && sr.pdr.pps > 0.0 && base > 0.0 {
        for pct in LATENCY_LOADS {
            pb.set_message(format!("{dut}: latency at {pct}% of the reference PDR"));
            match rig.trial((base * f64::from(pct) / 100.0).min(rate_cap))? {
                Some((t, s)) => latency.push((pct, t, s)),
                None => {
                    complete = false;
                    break;
                }
            }
        }
        if complete {
            pb.set_message(format!("{dut}: 2x overload"));
            let want = 2.0 * sr.pdr.pps;
            let rate = if want >= rate_cap {
                rate_cap
            } else if want >= ceiling_pps {
                0.0
            } else {
                want
            };
            match rig.trial(rate)? {
                Some((t, _)) => overload = Some(rate_point(&t)),
                None => complete = false,
            }
        }
    }
    Ok(RoundResult {
        ndr: Some(sr.ndr),
        pdr: Some(sr.pdr),
        trials: sr.trials,
        latency,
        overload,
        complete,
    })
}

impl RoundResult {
    /// Nothing measured: interrupted before the search.
    fn interrupted() -> RoundResult {
        RoundResult {
            ndr: None,
            pdr: None,
            trials: Vec::new(),
            latency: Vec::new(),
            overload: None,
            complete: false,
        }
    }
}

/// `--latency-only`: one trial at `rate`.
fn measure_fixed(rig: &mut Rig<'_>, rate: f64, pb: &ProgressBar, dut: &str) -> Result<RoundResult> {
    pb.set_message(format!("{dut}: latency at {rate:.0} frames/s"));
    let t = rig.trial(rate)?;
    let complete = t.is_some();
    Ok(RoundResult {
        ndr: None,
        pdr: None,
        trials: Vec::new(),
        latency: t.map(|(t, s)| (0, t, s)).into_iter().collect(),
        overload: None,
        complete,
    })
}

/// Merge the latency trials of one load (from several rounds) into one point and its
/// histogram; `name` names the `.hgrm` file. `None` when there are none.
fn merge_latency(
    trials: &[&LatencyTrial],
    pct: u32,
    name: &str,
) -> Result<Option<(LatencyPoint, Histogram<u64>)>> {
    if trials.is_empty() {
        return Ok(None);
    }
    let mut h = sink::new_histogram();
    let (mut sum, mut max, mut ooo, mut off, mut req, mut recv, mut sent) =
        (0u64, 0u64, 0u64, 0.0, 0.0, 0u64, 0u64);
    let mut recv_bytes = 0u64;
    for (_, t, s) in trials {
        h.add(&s.histogram).context("merging histograms")?;
        sum += s.latency_sum_ns;
        max = max.max(s.latency_max_ns);
        ooo += s.out_of_order;
        off += t.offered_pps;
        req += t.requested_pps;
        recv += t.received;
        recv_bytes += t.received_bytes;
        sent += t.sent;
    }
    let n = trials.len() as f64;
    let loss = if sent > 0 {
        sent.saturating_sub(recv) as f64 / sent as f64
    } else {
        0.0
    };
    let rate = RatePoint {
        requested_pps: req / n,
        offered_pps: off / n,
        received_pps: off / n * (1.0 - loss),
        loss,
        mean_frame_bytes: if recv > 0 {
            recv_bytes as f64 / recv as f64
        } else {
            0.0
        },
    };
    let mut lp: LatencyPoint = results::latency_point(&h, pct, rate);
    if !h.is_empty() {
        lp.mean_ns = sum as f64 / h.len() as f64;
        lp.max_ns = max;
    }
    lp.out_of_order = ooo;
    lp.hgrm = format!("{name}-{}.hgrm", results::load_tag(pct));
    Ok(Some((lp, h)))
}

/// The loads measured: 10/50/90 % of the reference PDR, or the fixed rate (load 0).
fn loads_of(args: &BenchArgs) -> Vec<u32> {
    if args.latency_only {
        vec![0]
    } else {
        LATENCY_LOADS.to_vec()
    }
}

/// The scenario's generators and sinks on `topo`, aimed at the sinks' MACs until
/// [`Rig::aim`] addresses them for a DUT.
fn rig_for<'a>(
    topo: &Topology,
    scenario: &Scenario,
    args: &BenchArgs,
    frame_size: usize,
    trial: Duration,
    stop: &'a AtomicBool,
) -> Result<Rig<'a>> {
    let mut lanes = Vec::new();
    for stream in &scenario.streams {
        let g = topo.endpoint(&stream.gen_role);
        let s = topo.endpoint(&stream.sink_role);
        let frame = scenario.frame(topo, stream, DutKind::Testpmd, frame_size, args.imix)?;
        lanes.push(Lane {
            stream: stream.clone(),
            gen: LaneGen::Xdp(Generator::new(
                &g.netns,
                &g.ifname,
                args.gen_core,
                &frame,
                args.flows,
                args.batch_size,
            )?),
            sink: LaneSink::Xdp(Sink::attach(&s.netns, &s.ifname)?),
        });
    }
    for l in &lanes {
        l.gen.set_new_flows(args.new_flows)?;
        l.sink.count_flows(args.check_flows)?;
    }
    Ok(Rig {
        lanes,
        tag: 0,
        trial,
        stop,
        renewal: None,
    })
}

/// Run `vnet-bench bench`.
///
/// # Errors
/// When not privileged, the mode is not measurable yet, or the topology fails.
pub fn run(args: BenchArgs) -> Result<()> {
    if args.port_kind == PortKind::VhostUser {
        return vhost_bench::run(args);
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    crate::preflight::require_root("vnet-bench bench")?;
    crate::preflight::require_af_xdp()?;
    let direction = args
        .direction
        .unwrap_or_else(|| Direction::default_for(args.mode));
    let scenario = Scenario::new(args.mode, direction)?;
    if args.trial.is_nan() || args.trial <= 0.0 {
        bail!("--trial must be positive");
    }
    if args.new_flows {
        check_new_flows(&scenario)?;
    }
    let machine = Machine::this();
    let dut_core = args.dut_core.unwrap_or(if machine.cores > 1 {
        (args.gen_core + 1) % machine.cores
    } else {
        0
    });
    check_cores(args.gen_core, dut_core, machine.cores)?;
    let prefix = run_prefix(&args)?;
    let frame_size = usize::from(args.frame_size);
    let trial = Duration::from_secs_f64(args.trial);
    let stop = crate::run::stop_flag()?;
    let started = SystemTime::now();
    let pb = spinner();

    // vnet first: its PDR in a round sets the offered rates of every DUT's latency trials.
    let duts = expand_duts(&args.dut, &scenario);
    let refused: Vec<anyhow::Error> = duts
        .iter()
        .filter_map(|d| d.check_applies(&scenario).err())
        .collect();
    if refused.len() == duts.len() {
        if let Some(e) = refused.into_iter().next() {
            // Nothing here applies: say why before anything is built. (A DUT that does not
            // apply next to others that do is refused in its report row instead.)
            return Err(e);
        }
    }
    let reference = if args.latency_only {
        "fixed rate"
    } else if duts.first() == Some(&DutKind::Vnet) {
        "vnet PDR"
    } else {
        "own PDR"
    };
    if args.latency_only && !(args.rate.is_finite() && args.rate >= 1.0) {
        bail!("--rate must be at least 1 frame/s");
    }

    // 1. The harness's own ceiling (not needed for a fixed rate).
    let ceil = if args.no_ceiling || args.latency_only {
        None
    } else {
        pb.set_message("harness ceiling: generator -> sink over one veth pair");
        let c = ceiling(
            &format!("{prefix}c"),
            &args,
            frame_size,
            dut_core,
            trial,
            &stop,
        )?;
        if let Some(c) = &c {
            say(&pb, format!(
                "harness ceiling (generator -> sink, one veth pair, no DUT): offered {} Mpps, received {} Mpps of {:.1}-byte frames on average ({})",
                mpps(c.rate.offered_pps),
                mpps(c.rate.received_pps),
                c.rate.mean_frame_bytes,
                c.how
            ));
        }
        c
    };
    let max_pps = match (args.max_rate, &ceil) {
        (Some(m), _) => m,
        (None, Some(c)) => c.rate.received_pps,
        (None, None) if args.latency_only => args.rate,
        (None, None) => bail!("without the ceiling measurement, give --max-rate"),
    };
    let cfg = SearchConfig {
        max_pps,
        min_pps: (max_pps / 1000.0).max(1000.0),
        pdr_loss: args.pdr_loss,
        precision: args.precision,
    };

    // 2. Each DUT run gets a fresh copy of the mode's topology, generator and sink: a
    // peer's interface settings (threaded NAPI toggled on and off by the kernel peer)
    // must not carry over to the next DUT (it cut testpmd's PDR from 0.44 to 0.06 Mpps).
    // Each round ends with the harness floor at the round's loads.
    let mut sink_attach = String::new();
    let mut per_dut: Vec<DutRuns> = duts.iter().map(|d| DutRuns::new(*d)).collect();
    let mut floor_trials: Vec<LatencyTrial> = Vec::new();
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
            let topo = scenario.build(&prefix)?;
            let mut rig = rig_for(&topo, &scenario, &args, frame_size, trial, &stop)?;
            sink_attach = rig.lanes[0].sink.attach_mode().to_string();
            let (dut, info) = match RunningDut::start(
                kind,
                &topo,
                &scenario,
                dut_core,
                args.gen_core,
                args.vnet_exe.as_deref(),
                args.new_flows.then_some(NEW_FLOWS_SESSIONS),
            ) {
                Ok(x) => x,
                Err(e) => {
                    say(&pb, format!("  {}: could not start: {e:#}", kind.as_str()));
                    entry.error = Some(format!("{e:#}"));
                    continue;
                }
            };
            scenario.forget_neighbours(&topo);
            scenario.warm_up(&topo);
            let reference_pdr = if kind == DutKind::Vnet {
                None
            } else {
                round_reference
            };
            // --new-flows: no trial offers more new flows than the DUT's table holds.
            let rate_cap = if args.new_flows {
                new_flows_cap(info.session_table, args.trial).unwrap_or(f64::INFINITY)
            } else {
                f64::INFINITY
            };
            let dut_cfg = SearchConfig {
                max_pps: cfg.max_pps.min(rate_cap),
                ..cfg
            };
            let mut held = Some(dut);
            if args.new_flows {
                rig.renewal = held.take().map(|dut| Renewal {
                    dut,
                    fresh: true,
                    kind,
                    topo: &topo,
                    scenario: &scenario,
                    frame_size,
                    imix: args.imix,
                });
            }
            let r = rig
                .aim(&topo, &scenario, kind, frame_size, args.imix)
                .and_then(|()| {
                    if args.latency_only {
                        measure_fixed(&mut rig, args.rate.min(rate_cap), &pb, kind.as_str())
                    } else {
                        measure_dut(
                            &mut rig,
                            &dut_cfg,
                            ceil.as_ref()
                                .map(|c| c.rate.offered_pps)
                                .unwrap_or(f64::INFINITY),
                            &pb,
                            kind.as_str(),
                            reference_pdr,
                            rate_cap,
                        )
                    }
                });
            if let Some(r) = rig.renewal.take() {
                held = Some(r.dut);
            }
            let log = match held {
                Some(dut) => dut.stop(),
                None => Err(anyhow::anyhow!("the DUT was lost between trials")),
            };
            record_round(entry, r, log, &mut complete, &mut round_reference);
            entry.info = Some(info);
            drop(rig);
            drop(topo);
        }
        // The harness floor at this round's loads.
        let loads: Vec<(u32, f64)> = if args.latency_only {
            vec![(0, args.rate)]
        } else {
            round_reference
                .filter(|p| *p > 0.0)
                .map(|p| {
                    LATENCY_LOADS
                        .iter()
                        .map(|&pct| (pct, p * f64::from(pct) / 100.0))
                        .collect()
                })
                .unwrap_or_default()
        };
        if !loads.is_empty() {
            pb.set_message(format!("round {}: harness floor", round + 1));
            match harness_floor(
                &format!("{prefix}f"),
                &args,
                frame_size,
                &loads,
                trial,
                &stop,
            )? {
                Some(t) => floor_trials.extend(t),
                None => complete = false,
            }
        }
    }
    pb.finish_and_clear();
    if stop.load(Ordering::Relaxed) {
        complete = false;
        println!("interrupted: keeping what was measured");
    }

    conclude(
        &args,
        Conclusion {
            direction,
            command,
            started,
            dut_core,
            reference,
            generator:
                "xdp live frames (BPF_PROG_RUN, BPF_F_TEST_XDP_LIVE_FRAMES), paced in the program"
                    .into(),
            sink_attach,
            folder_suffix: if args.new_flows { "-new-flows" } else { "" },
            ceil,
            per_dut,
            floor_trials,
            complete,
        },
    )
}

/// What a run measured, for [`conclude`].
struct Conclusion {
    direction: Direction,
    command: String,
    started: SystemTime,
    dut_core: usize,
    /// What set the latency loads (`vnet PDR`, `own PDR`, `fixed rate`).
    reference: &'static str,
    /// How the traffic was generated, for the summary.
    generator: String,
    sink_attach: String,
    /// Appended to the result folder's name (`-new-flows`, `-vhost-user`).
    folder_suffix: &'static str,
    ceil: Option<Ceiling>,
    per_dut: Vec<DutRuns>,
    floor_trials: Vec<LatencyTrial>,
    complete: bool,
}

/// Aggregate the rounds (medians, merged histograms, ratios against vnet), print the
/// summary and write the results.
fn conclude(args: &BenchArgs, c: Conclusion) -> Result<()> {
    let Conclusion {
        direction,
        command,
        started,
        dut_core,
        reference,
        generator,
        sink_attach,
        folder_suffix,
        ceil,
        per_dut,
        floor_trials,
        complete,
    } = c;
    let frame_size = usize::from(args.frame_size);
    let trial = Duration::from_secs_f64(args.trial);
    // 3. Aggregate.
    let mut hists: Vec<DutHistograms> = Vec::new();
    let mut dut_results = Vec::new();
    let mut logs: Vec<(String, Vec<String>)> = Vec::new();
    for DutRuns {
        kind,
        info,
        rounds,
        error,
        logs: dut_logs,
    } in per_dut
    {
        let name = kind.as_str().to_string();
        logs.push((name.clone(), dut_logs));
        let mut r = DutResult {
            dut: name.clone(),
            info: info.unwrap_or_default(),
            error,
            ..DutResult::default()
        };
        if !rounds.is_empty() {
            let ndrs: Vec<search::Found> = rounds.iter().filter_map(|x| x.ndr).collect();
            let pdrs: Vec<search::Found> = rounds.iter().filter_map(|x| x.pdr).collect();
            r.ndr_rounds_pps = ndrs.iter().map(|f| f.pps).collect();
            r.pdr_rounds_pps = pdrs.iter().map(|f| f.pps).collect();
            let pick = |found: &[search::Found]| {
                let m = median(&mut found.iter().map(|f| f.pps).collect::<Vec<_>>());
                found
                    .iter()
                    .copied()
                    .min_by(|a, b| (a.pps - m).abs().total_cmp(&(b.pps - m).abs()))
            };
            r.ndr = pick(&ndrs);
            r.pdr = pick(&pdrs);
            r.trials = rounds
                .iter()
                .flat_map(|x| x.trials.iter().copied())
                .collect();
            r.overload = rounds.iter().rev().find_map(|x| x.overload);
            let mut hs = Vec::new();
            for pct in loads_of(args) {
                let points: Vec<&LatencyTrial> = rounds
                    .iter()
                    .flat_map(|x| x.latency.iter())
                    .filter(|l| l.0 == pct)
                    .collect();
                if let Some((lp, h)) = merge_latency(&points, pct, &name)? {
                    r.latency.push(lp);
                    hs.push((pct, h));
                }
            }
            hists.push((name.clone(), hs));
        }
        if args.new_flows {
            r.new_flows = Some(new_flows_bound(
                &r,
                ceil.as_ref().map(|c| c.rate.offered_pps),
                args.trial,
            ));
        }
        dut_results.push(r);
    }
    let mut harness_floor = Vec::new();
    let mut floor_hists = Vec::new();
    for pct in loads_of(args) {
        let points: Vec<&LatencyTrial> = floor_trials.iter().filter(|l| l.0 == pct).collect();
        if let Some((lp, h)) = merge_latency(&points, pct, "floor")? {
            harness_floor.push(lp);
            floor_hists.push((pct, h));
        }
    }
    if !floor_hists.is_empty() {
        hists.push(("floor".to_string(), floor_hists));
    }
    if let Some(v) = dut_results.iter().find(|d| d.dut == "vnet").cloned() {
        for d in dut_results.iter_mut().filter(|d| d.dut != "vnet") {
            let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
            let (Some(dn), Some(vn), Some(dp), Some(vp)) = (d.ndr, v.ndr, d.pdr, v.pdr) else {
                continue;
            };
            let lat = |x: &DutResult, f: fn(&LatencyPoint) -> u64| {
                x.latency_at(50).map(f).unwrap_or(0) as f64
            };
            d.ratio_vs_vnet = Some(Ratios {
                ndr: ratio(dn.pps, vn.pps),
                pdr: ratio(dp.pps, vp.pps),
                p50_at_50: ratio(lat(d, |l| l.p50_ns), lat(&v, |l| l.p50_ns)),
                p99_at_50: ratio(lat(d, |l| l.p99_ns), lat(&v, |l| l.p99_ns)),
            });
        }
    }
    let summary = Summary {
        schema: results::SCHEMA.into(),
        mode: args.mode.as_str().into(),
        direction: direction.as_str().into(),
        command,
        started_unix: started
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        complete,
        machine: Machine::this(),
        settings: Settings {
            frame_size: if args.imix { 0 } else { frame_size },
            imix: args.imix,
            flows: args.flows,
            trial_s: args.trial,
            pdr_loss: args.pdr_loss,
            precision: args.precision,
            rounds: args.rounds.max(1),
            gen_core: args.gen_core,
            dut_core,
            generator,
            batch_size: args.batch_size,
            sink_attach,
            latency_only: args.latency_only,
            latency_reference: reference.into(),
            new_flows: args.new_flows,
            check_flows: args.check_flows,
        },
        harness_ceiling: ceil,
        harness_floor_how: if harness_floor.is_empty() {
            String::new()
        } else {
            FLOOR_HOW.into()
        },
        harness_floor,
        duts: dut_results,
    };
    print_summary(&summary);
    if let Some(out) = &args.out {
        let mut folder =
            result_folder(args.mode, direction, if args.imix { 0 } else { frame_size });
        // Connection setup rates (-new-flows) and vhost-user guests (-vhost-user)
        // beside the same mode's figures on veths.
        folder.push_str(folder_suffix);
        let dir = out.join(folder);
        write_results(&dir, &summary, &hists, started, trial)?;
        write_logs(&dir, &logs)?;
        println!("results written to {}", dir.display());
    }
    Ok(())
}

/// Each DUT's output, round by round, as `DUT.log` in `dir` (none for a DUT that never
/// ran).
fn write_logs(dir: &Path, logs: &[(String, Vec<String>)]) -> Result<()> {
    for (dut, rounds) in logs.iter().filter(|(_, r)| !r.is_empty()) {
        let mut text = String::new();
        for (i, log) in rounds.iter().enumerate() {
            text.push_str(&format!("--- round {} ---\n{}\n", i + 1, log.trim_end()));
        }
        let path = dir.join(format!("{dut}.log"));
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    Ok(())
}

/// `--new-flows` needs a NAT mode (the only ones with per-flow state) and a destination
/// port free to vary.
///
/// # Errors
/// Otherwise, in one sentence.
pub fn check_new_flows(scenario: &Scenario) -> Result<()> {
    if scenario.nat.is_none() {
        bail!(
            "--new-flows measures NAT session setup, and {} {} keeps no per-flow state (a switch learns MACs, not flows); use --mode nat or nat-network, or --flows",
            scenario.mode.as_str(),
            scenario.direction.as_str()
        );
    }
    if let Some(p) = scenario.streams.iter().find_map(|s| s.dst_port) {
        bail!(
            "--new-flows varies the destination port, but {} sends to the forwarded port {p}; use --direction guest-to-inet",
            scenario.direction.as_str()
        );
    }
    Ok(())
}

/// What bounded a `--new-flows` result: the DUT's session table (the PDR reached the
/// highest rate its table allowed), the harness ceiling, or the DUT itself.
fn new_flows_bound(r: &DutResult, ceiling: Option<f64>, trial_s: f64) -> results::NewFlows {
    let cap = new_flows_cap(r.info.session_table, trial_s);
    let ceiling = ceiling.unwrap_or(f64::INFINITY);
    let max = cap.unwrap_or(f64::INFINITY).min(ceiling);
    let at_max = r
        .pdr
        .is_some_and(|p| max.is_finite() && p.pps >= 0.97 * max);
    let bound_by = if !at_max {
        "the DUT: its PDR is below the highest rate offered".to_string()
    } else if cap.is_some_and(|c| c <= ceiling) {
        format!(
            "the session table: the PDR reached the highest rate the table allowed ({:.0}% of {} sessions in a {trial_s} s trial); the DUT may set up more",
            NEW_FLOWS_FILL * 100.0,
            r.info.session_table
        )
    } else {
        "the harness ceiling: the PDR reached the highest rate the generator offers".to_string()
    };
    results::NewFlows {
        session_table: r.info.session_table,
        session_table_how: r.info.session_table_how.clone(),
        max_offered_pps: if max.is_finite() { max } else { 0.0 },
        bound_by,
    }
}

/// The folder of one measurement under `--out`: `MODE-DIRECTION-SIZE`
/// (`nat-guest-to-inet-64`; `imix` for IMIX), so that several runs share one `--out`.
pub fn result_folder(mode: ModeName, direction: Direction, frame_size: usize) -> String {
    let size = if frame_size == 0 {
        "imix".to_string()
    } else {
        frame_size.to_string()
    };
    format!("{}-{}-{size}", mode.as_str(), direction.slug())
}

/// Write `summary.json`, `DUT.hlog` and `DUT-latNN.hgrm` into `dir`.
///
/// # Errors
/// I/O failures.
pub fn write_results(
    dir: &Path,
    summary: &Summary,
    hists: &[DutHistograms],
    started: SystemTime,
    trial: Duration,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    for (dut, hs) in hists {
        let intervals: Vec<(String, &Histogram<u64>, Duration, Duration)> = hs
            .iter()
            .enumerate()
            .map(|(i, (pct, h))| (results::load_tag(*pct), h, trial * i as u32, trial))
            .collect();
        if !intervals.is_empty() {
            results::write_hlog(
                &dir.join(format!("{dut}.hlog")),
                &format!("vnet-bench {} {dut}", summary.mode),
                started,
                &intervals,
            )?;
        }
        for (pct, h) in hs {
            std::fs::write(
                dir.join(format!("{dut}-{}.hgrm", results::load_tag(*pct))),
                results::hgrm_text(h, 1000.0),
            )?;
        }
    }
    let json = serde_json::to_string_pretty(summary)?;
    std::fs::write(dir.join("summary.json"), json + "\n")?;
    Ok(())
}

/// Print the summary as a table.
pub fn print_summary(s: &Summary) {
    println!(
        "bench {} ({}), {} frames, {}, trials {} s{}",
        s.mode,
        s.direction,
        if s.settings.imix {
            "IMIX".to_string()
        } else {
            format!("{}-byte", s.settings.frame_size)
        },
        if s.settings.new_flows {
            "every frame a new UDP flow (rates are new flows/s)".to_string()
        } else {
            format!("{} flow(s)", s.settings.flows)
        },
        s.settings.trial_s,
        if s.settings.latency_only {
            String::new()
        } else {
            format!(", PDR loss {}%", s.settings.pdr_loss * 100.0)
        }
    );
    println!(
        "machine: {} cores, {}, kernel {}",
        s.machine.cores, s.machine.cpu_model, s.machine.kernel
    );
    if let Some(c) = &s.harness_ceiling {
        println!(
            "harness ceiling (generator -> sink, no DUT): {} Mpps ({})",
            mpps(c.rate.received_pps),
            c.how
        );
    }
    if s.settings.latency_only {
        print_latency_only(s);
    } else {
        print_search(s);
    }
    let w = name_width(s);
    for d in s.duts.iter().filter(|d| !d.info.backend.is_empty()) {
        let busy = match d.info.busy_poll.as_str() {
            "" | "-" => String::new(),
            b => format!("busy_poll={b} "),
        };
        let sep = if busy.is_empty() && d.info.napi.is_empty() {
            ""
        } else {
            ": "
        };
        println!("{:<w$} {}{sep}{busy}{}", d.dut, d.info.backend, d.info.napi);
        if !d.info.note.is_empty() {
            println!("{:<w$} note: {}", d.dut, d.info.note);
        }
    }
    for d in &s.duts {
        if let Some(n) = &d.new_flows {
            let table = if n.session_table > 0 {
                format!(
                    "table {} sessions ({})",
                    n.session_table, n.session_table_how
                )
            } else {
                "no per-flow state".to_string()
            };
            println!(
                "{:<w$} new flows: {table}; at most {} M new flows/s offered; bounded by {}",
                d.dut,
                mpps(n.max_offered_pps),
                n.bound_by
            );
        }
    }
    if !s.complete {
        println!("(incomplete: interrupted or a search was cut short)");
    }
}

/// Width of the DUT column: the longest name (`kernel-flowtable`), at least 8.
fn name_width(s: &Summary) -> usize {
    s.duts
        .iter()
        .map(|d| d.dut.len())
        .chain([8])
        .max()
        .unwrap_or(8)
}

fn print_search(s: &Summary) {
    let w = name_width(s);
    let (ndr, pdr, over) = if s.settings.new_flows {
        ("NDR Mfl/s", "PDR Mfl/s", "2xPDR Mfl/s")
    } else {
        ("NDR Mpps", "PDR Mpps", "2xPDR Mpps")
    };
    println!(
        "{:<w$} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9}  vs vnet (NDR, PDR)",
        "dut", ndr, pdr, over, "p50 us", "p99 us", "p99.9 us", "max us",
    );
    let lat = |l: Option<&LatencyPoint>| {
        [
            l.map(|l| us(l.p50_ns)),
            l.map(|l| us(l.p99_ns)),
            l.map(|l| us(l.p999_ns)),
            l.map(|l| us(l.max_ns)),
        ]
        .map(|v| v.unwrap_or_else(|| "-".into()))
    };
    for d in &s.duts {
        let [p50, p99, p999, max] = lat(d.latency_at(50));
        println!(
            "{:<w$} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9}  {}",
            d.dut,
            d.ndr.map(|f| mpps(f.pps)).unwrap_or_else(|| "-".into()),
            d.pdr.map(|f| mpps(f.pps)).unwrap_or_else(|| "-".into()),
            d.overload
                .map(|o| mpps(o.received_pps))
                .unwrap_or_else(|| "-".into()),
            p50,
            p99,
            p999,
            max,
            d.ratio_vs_vnet
                .map(|r| format!("{:.2}x, {:.2}x", r.ndr, r.pdr))
                .unwrap_or_default(),
        );
        if let Some(e) = &d.error {
            println!("         ({e})");
        }
    }
    if let Some(f) = s.floor_at(50) {
        let [p50, p99, p999, max] = lat(Some(f));
        println!(
            "{:<w$} {:>9} {:>9} {:>11} {:>9} {:>9} {:>9} {:>9}  (the harness alone)",
            "floor", "-", "-", "-", p50, p99, p999, max
        );
    }
    println!(
        "latency: one-way at 50% of the {} (every DUT at the same offered rate); p50/p99 us at 10/50/90%:",
        s.settings.latency_reference
    );
    let rows = s
        .duts
        .iter()
        .map(|d| (d.dut.as_str(), &d.latency))
        .chain((!s.harness_floor.is_empty()).then_some(("floor", &s.harness_floor)));
    for (name, points) in rows {
        let cells: Vec<String> = LATENCY_LOADS
            .iter()
            .map(|&pct| match points.iter().find(|l| l.load_pct == pct) {
                Some(l) => format!(
                    "{pct}% ({}) {}/{}",
                    offered_kpps(&l.rate),
                    us(l.p50_ns),
                    us(l.p99_ns)
                ),
                None => format!("{pct}% -"),
            })
            .collect();
        println!("  {name:<w$} {}", cells.join("   "));
    }
}

/// "195 kpps", or "236 of 372 kpps" when the DUT pushed the generator below the
/// requested rate by more than 5 % (every DUT was asked for the same rate; this one
/// could not take it).
fn offered_kpps(r: &RatePoint) -> String {
    let kpps = |pps: f64| (pps / 1e3).round();
    if r.requested_pps > 0.0 && r.offered_pps < 0.95 * r.requested_pps {
        format!("{} of {} kpps", kpps(r.offered_pps), kpps(r.requested_pps))
    } else {
        format!("{} kpps", kpps(r.offered_pps))
    }
}

fn print_latency_only(s: &Summary) {
    let w = name_width(s);
    let rate = s
        .harness_floor
        .first()
        .or_else(|| s.duts.iter().find_map(|d| d.latency.first()))
        .map(|l| l.rate.offered_pps)
        .unwrap_or(0.0);
    if s.harness_floor.is_empty() {
        println!("one-way latency at a fixed {rate:.0} frames/s; no harness floor here");
    } else {
        println!(
            "one-way latency at a fixed {:.0} frames/s; the floor is the harness alone ({})",
            rate, s.harness_floor_how
        );
    }
    println!(
        "{:<w$} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {:>9} {:>9}",
        "dut",
        "loss %",
        "p50 us",
        "p90 us",
        "p99 us",
        "p99.9 us",
        "max us",
        "count",
        "p50/floor",
        "p99/floor"
    );
    let floor = s.floor_at(0);
    let rows = s
        .duts
        .iter()
        .map(|d| (d.dut.as_str(), d.latency.first(), d.error.as_deref()))
        .chain(floor.is_some().then_some(("floor", floor, None)));
    for (name, l, err) in rows {
        match l {
            Some(l) => {
                let ratio = |a: u64, f: Option<u64>| match f {
                    Some(f) if f > 0 && name != "floor" => format!("{:.2}x", a as f64 / f as f64),
                    _ => "-".into(),
                };
                println!(
                    "{:<w$} {:>8.3} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {:>9} {:>9}",
                    name,
                    l.rate.loss * 100.0,
                    us(l.p50_ns),
                    us(l.p90_ns),
                    us(l.p99_ns),
                    us(l.p999_ns),
                    us(l.max_ns),
                    l.count,
                    ratio(l.p50_ns, floor.map(|f| f.p50_ns)),
                    ratio(l.p99_ns, floor.map(|f| f.p99_ns)),
                );
            }
            None => println!("{name:<w$} -"),
        }
        if let Some(e) = err {
            println!("         ({e})");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_adds_every_peer_that_applies_with_vnet_first() {
        use DutChoice as C;
        let nat = Scenario::new(ModeName::Nat, Direction::GuestToInet).unwrap();
        let internal = Scenario::new(ModeName::Internal, Direction::GuestToGuest).unwrap();
        let names = |v: Vec<DutKind>| v.iter().map(|k| k.as_str()).collect::<Vec<_>>();
        assert_eq!(
            names(expand_duts(&[C::All], &nat)),
            [
                "vnet",
                "vnet-offload",
                "kernel",
                "kernel-flowtable",
                "testpmd",
                "xdp-redirect"
            ]
        );
        assert_eq!(
            names(expand_duts(&[C::All], &internal)),
            ["vnet", "vnet-offload", "kernel", "testpmd", "xdp-redirect"],
            "no flowtable where the kernel bridges"
        );
        // Named ones in the order given, each once, vnet moved first.
        assert_eq!(
            names(expand_duts(
                &[C::XdpRedirect, C::KernelFlowtable, C::Vnet, C::XdpRedirect],
                &nat
            )),
            ["vnet", "xdp-redirect", "kernel-flowtable"]
        );
        // Named explicitly where it does not apply: kept, to be refused with its reason.
        assert_eq!(
            names(expand_duts(&[C::Vnet, C::KernelFlowtable], &internal)),
            ["vnet", "kernel-flowtable"]
        );
    }

    #[test]
    fn dut_accepts_the_new_peers_comma_separated() {
        #[derive(clap::Parser)]
        struct W {
            #[command(flatten)]
            a: BenchArgs,
        }
        let w = <W as clap::Parser>::try_parse_from([
            "x",
            "--mode",
            "nat",
            "--dut",
            "vnet,vnet-offload,kernel,kernel-flowtable,xdp-redirect,testpmd",
        ])
        .unwrap();
        assert_eq!(
            w.a.dut,
            [
                DutChoice::Vnet,
                DutChoice::VnetOffload,
                DutChoice::Kernel,
                DutChoice::KernelFlowtable,
                DutChoice::XdpRedirect,
                DutChoice::Testpmd
            ]
        );
        assert!(
            <W as clap::Parser>::try_parse_from(["x", "--mode", "nat", "--dut", "xdp"]).is_err()
        );
    }

    #[test]
    fn new_flows_is_for_the_nat_modes_outbound_and_excludes_flows() {
        for (mode, dir) in [
            (ModeName::Nat, Direction::GuestToInet),
            (ModeName::NatNetwork, Direction::GuestToInet),
        ] {
            check_new_flows(&Scenario::new(mode, dir).unwrap()).unwrap();
        }
        let e =
            check_new_flows(&Scenario::new(ModeName::Internal, Direction::GuestToGuest).unwrap())
                .unwrap_err()
                .to_string();
        assert!(e.contains("no per-flow state") && !e.contains(". "), "{e}");
        for dir in [Direction::InetToGuest, Direction::Both] {
            let e = check_new_flows(&Scenario::new(ModeName::Nat, dir).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains("forwarded port 7000"), "{e}");
        }
        #[derive(clap::Parser)]
        struct W {
            #[command(flatten)]
            a: BenchArgs,
        }
        let p = |v: &[&str]| {
            let mut all = vec!["x", "--mode", "nat"];
            all.extend_from_slice(v);
            <W as clap::Parser>::try_parse_from(all)
        };
        assert!(p(&["--new-flows"]).unwrap().a.new_flows);
        assert!(p(&["--new-flows", "--flows", "10"]).is_err());
        assert!(
            p(&["--check-flows"]).is_err(),
            "--check-flows needs --new-flows"
        );
        assert!(p(&["--new-flows", "--check-flows"]).unwrap().a.check_flows);
    }

    #[test]
    fn new_flows_trials_stay_within_the_table() {
        assert_eq!(new_flows_cap(0, 1.0), None, "no table, no cap");
        let cap = new_flows_cap(1_000_000, 2.0).unwrap();
        assert!((cap - 475_000.0).abs() < 1.0, "{cap}");
        let mut r = DutResult {
            dut: "vnet".into(),
            ..DutResult::default()
        };
        r.info.session_table = 1_000_000;
        let found = |pps: f64| search::Found {
            pps,
            loss: 0.0,
            upper_pps: pps,
        };
        // PDR at the table's cap, below the ceiling: bounded by the table.
        r.pdr = Some(found(cap));
        let b = new_flows_bound(&r, Some(4e6), 2.0);
        assert!(
            b.bound_by.starts_with("the session table"),
            "{}",
            b.bound_by
        );
        assert_eq!(b.max_offered_pps, cap);
        // Well below: the DUT.
        r.pdr = Some(found(cap / 3.0));
        let b = new_flows_bound(&r, Some(4e6), 2.0);
        assert!(b.bound_by.starts_with("the DUT"), "{}", b.bound_by);
        // The ceiling below the cap, reached: the harness.
        r.pdr = Some(found(3e5));
        let b = new_flows_bound(&r, Some(3e5), 2.0);
        assert!(
            b.bound_by.starts_with("the harness ceiling"),
            "{}",
            b.bound_by
        );
        // No table (testpmd): only the ceiling bounds it.
        r.info.session_table = 0;
        r.pdr = Some(found(1e5));
        let b = new_flows_bound(&r, Some(4e6), 2.0);
        assert_eq!(b.max_offered_pps, 4e6);
        assert!(b.bound_by.starts_with("the DUT"));
    }

    #[test]
    fn cpu_lists_count_up_to_the_highest_cpu() {
        assert_eq!(cpus_in("0-1\n"), Some(2));
        assert_eq!(cpus_in("0"), Some(1));
        assert_eq!(cpus_in("0-3,8-11"), Some(12));
        assert_eq!(cpus_in(""), None);
        let here = online_cpus().expect("/sys/devices/system/cpu/online is readable");
        assert!(here >= Machine::this().cores);
    }
}
