//! Results on disk: per mode `summary.json` (schema [`SCHEMA`], documented in
//! `results/README.md`) and the latency histograms, as HdrHistogram interval logs
//! (`DUT.hlog`: one V2-compressed interval per load point, tagged `lat10`, `lat50`,
//! `lat90`; values in ns) and percentile distributions (`DUT-latNN.hgrm`: HdrHistogram's
//! `Value Percentile TotalCount 1/(1-Percentile)` text, values in microseconds).

use super::peers::DutInfo;
use super::search::{Found, TrialOutcome};
use anyhow::{bail, Context, Result};
use base64::Engine;
use hdrhistogram::serialization::interval_log::{
    IntervalLogIterator, IntervalLogWriterBuilder, LogEntry, Tag,
};
use hdrhistogram::serialization::{Deserializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// The summary's schema name.
pub const SCHEMA: &str = "vnet-bench/bench/1";

/// The machine a run was made on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// Host name.
    pub hostname: String,
    /// CPU model (from /proc/cpuinfo).
    pub cpu_model: String,
    /// Online CPUs.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn this() -> Machine {
        let read = |p: &str| {
            std::fs::read_to_string(p)
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let cpu_model = read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_default();
        Machine {
            hostname: read("/proc/sys/kernel/hostname"),
            cpu_model,
            cores: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            kernel: read("/proc/sys/kernel/osrelease"),
        }
    }
}

/// How the run was made.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Settings {
    /// Frame size with FCS (RFC 2544); 0 with IMIX.
    pub frame_size: usize,
    /// IMIX 7:4:1 of 64/570/1518.
    pub imix: bool,
    /// UDP flows (RFC 4814 pseudorandom ports).
    pub flows: u32,
    /// Trial length, seconds.
    pub trial_s: f64,
    /// Loss allowed at PDR.
    pub pdr_loss: f64,
    /// Search precision (relative).
    pub precision: f64,
    /// Rounds (each DUT searched once per round, DUTs alternating).
    pub rounds: u32,
    /// Generator core.
    pub gen_core: usize,
    /// DUT core.
    pub dut_core: usize,
    /// The generator.
    pub generator: String,
    /// BPF_PROG_RUN batch size.
    pub batch_size: u32,
    /// Sink XDP attach mode.
    pub sink_attach: String,
    /// `--latency-only`: no search; every DUT and the harness floor at one fixed rate.
    #[serde(default)]
    pub latency_only: bool,
    /// What the latency loads are a percentage of: `vnet PDR` (every DUT and the floor
    /// at the same offered rates), `own PDR` (a run without vnet: each DUT its own), or
    /// `fixed rate` (`--latency-only`).
    #[serde(default)]
    pub latency_reference: String,
    /// `--new-flows`: every frame a new UDP flow; rates are new flows (NAT sessions) per
    /// second. Absent (false) before 0.3.
    #[serde(default)]
    pub new_flows: bool,
    /// `--check-flows`: the sink counted distinct port pairs (`distinct_flows` of each
    /// trial).
    #[serde(default)]
    pub check_flows: bool,
}

/// A rate with its loss.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct RatePoint {
    /// Frames/s the generator was asked for; 0 in results written before it was
    /// recorded.
    #[serde(default)]
    pub requested_pps: f64,
    /// Offered frames/s: what the generator sent. Below the requested rate when the
    /// DUT pushed back (its receive ring stayed full and the generator gave slots up).
    pub offered_pps: f64,
    /// Received frames/s.
    pub received_pps: f64,
    /// Loss ratio.
    pub loss: f64,
    /// Mean length of the frames received, bytes from the Ethernet header on without
    /// FCS (60 for 64-byte frames, 349.8 for IMIX); 0 when none arrived or in results
    /// written before it was recorded.
    #[serde(default)]
    pub mean_frame_bytes: f64,
}

/// Latency at one load.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyPoint {
    /// Load as a percentage of the reference PDR (`settings.latency_reference`); 0 for
    /// the fixed rate of `--latency-only`.
    pub load_pct: u32,
    /// Offered and received rates.
    pub rate: RatePoint,
    /// Frames measured.
    pub count: u64,
    /// Frames out of order.
    pub out_of_order: u64,
    /// Exact mean, ns.
    pub mean_ns: f64,
    /// Percentiles, ns.
    pub p50_ns: u64,
    /// 90th.
    pub p90_ns: u64,
    /// 99th.
    pub p99_ns: u64,
    /// 99.9th.
    pub p999_ns: u64,
    /// 99.99th.
    pub p9999_ns: u64,
    /// Exact maximum, ns.
    pub max_ns: u64,
    /// Tag of the interval in `DUT.hlog`.
    pub hlog_tag: String,
    /// The `.hgrm` file.
    pub hgrm: String,
}

/// Ratios of a peer against vnet (peer / vnet).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Ratios {
    /// NDR ratio.
    pub ndr: f64,
    /// PDR ratio.
    pub pdr: f64,
    /// p50 latency at 50% PDR ratio.
    pub p50_at_50: f64,
    /// p99 latency at 50% PDR ratio.
    pub p99_at_50: f64,
}

/// One DUT's results.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DutResult {
    /// `vnet`, `kernel`, `testpmd`.
    pub dut: String,
    /// Backend and settings.
    pub info: DutInfo,
    /// No drop rate (median over rounds).
    pub ndr: Option<Found>,
    /// Partial drop rate (median over rounds).
    pub pdr: Option<Found>,
    /// NDR of every round.
    pub ndr_rounds_pps: Vec<f64>,
    /// PDR of every round.
    pub pdr_rounds_pps: Vec<f64>,
    /// Forwarding at 2x PDR (capped at the harness ceiling).
    pub overload: Option<RatePoint>,
    /// Latency at 10/50/90% of PDR.
    pub latency: Vec<LatencyPoint>,
    /// Against vnet (absent for vnet itself).
    pub ratio_vs_vnet: Option<Ratios>,
    /// Every search trial.
    pub trials: Vec<TrialOutcome>,
    /// Why this DUT has no (or partial) results.
    pub error: Option<String>,
    /// `--new-flows`: the DUT's session table and what bounded its result. Absent
    /// otherwise (and before 0.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_flows: Option<NewFlows>,
}

/// `--new-flows`: what one DUT's connection-setup result was bounded by.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct NewFlows {
    /// Sessions the DUT's NAT table holds (0: the DUT keeps no per-flow state).
    pub session_table: u64,
    /// How the table was set (flags, sysctl, renewal before every trial).
    pub session_table_how: String,
    /// The highest rate any trial offered this DUT, new flows/s: 95 % of the table over
    /// the trial length, or the harness ceiling when lower (0: unbounded).
    pub max_offered_pps: f64,
    /// What bounded the result: "the DUT...", "the session table...", "the harness
    /// ceiling...".
    pub bound_by: String,
}

impl DutResult {
    /// The latency point at `pct`% of PDR.
    pub fn latency_at(&self, pct: u32) -> Option<&LatencyPoint> {
        self.latency.iter().find(|l| l.load_pct == pct)
    }
}

/// The hlog tag of a load: `lat50` at 50 % of PDR, `fixed` for `--latency-only`.
pub fn load_tag(load_pct: u32) -> String {
    if load_pct == 0 {
        "fixed".to_string()
    } else {
        format!("lat{load_pct}")
    }
}

/// The harness's own ceiling: generator to sink over one veth pair.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ceiling {
    /// Unpaced generator.
    pub rate: RatePoint,
    /// Where the sink ran in the better of the two measurements.
    pub how: String,
}

/// `summary.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    /// [`SCHEMA`].
    pub schema: String,
    /// Mode.
    pub mode: String,
    /// Direction (`guest->guest`...).
    pub direction: String,
    /// The command line.
    pub command: String,
    /// Start, seconds since the Unix epoch.
    pub started_unix: u64,
    /// False when interrupted: what was measured so far.
    pub complete: bool,
    /// The machine.
    pub machine: Machine,
    /// How.
    pub settings: Settings,
    /// The harness's ceiling.
    pub harness_ceiling: Option<Ceiling>,
    /// The harness's own latency (generator to sink over one veth pair, no DUT) at the
    /// loads the DUTs were measured at: the floor under every DUT's figures.
    #[serde(default)]
    pub harness_floor: Vec<LatencyPoint>,
    /// Where the sink ran for the floor.
    #[serde(default)]
    pub harness_floor_how: String,
    /// Per DUT.
    pub duts: Vec<DutResult>,
}

impl Summary {
    /// A DUT's result.
    pub fn dut(&self, name: &str) -> Option<&DutResult> {
        self.duts.iter().find(|d| d.dut == name)
    }

    /// The harness floor at `pct`% of the reference PDR (0: the fixed rate).
    pub fn floor_at(&self, pct: u32) -> Option<&LatencyPoint> {
        self.harness_floor.iter().find(|l| l.load_pct == pct)
    }
}

/// Percentiles of a histogram into a latency point (mean/max from the histogram; the
/// caller may replace them with the sink's exact ones).
pub fn latency_point(h: &Histogram<u64>, load_pct: u32, rate: RatePoint) -> LatencyPoint {
    LatencyPoint {
        load_pct,
        rate,
        count: h.len(),
        out_of_order: 0,
        mean_ns: h.mean(),
        p50_ns: h.value_at_quantile(0.5),
        p90_ns: h.value_at_quantile(0.9),
        p99_ns: h.value_at_quantile(0.99),
        p999_ns: h.value_at_quantile(0.999),
        p9999_ns: h.value_at_quantile(0.9999),
        max_ns: h.max(),
        hlog_tag: load_tag(load_pct),
        hgrm: String::new(),
    }
}

/// Write an interval log with one interval per `(tag, histogram)`.
///
/// # Errors
/// I/O or serialization failures.
pub fn write_hlog(
    path: &Path,
    comment: &str,
    start: SystemTime,
    intervals: &[(String, &Histogram<u64>, Duration, Duration)],
) -> Result<()> {
    let mut buf = Vec::new();
    let mut ser = V2DeflateSerializer::new();
    {
        let mut w = IntervalLogWriterBuilder::new()
            .add_comment(comment)
            .add_comment("values in nanoseconds (one-way latency, generator stamp to sink)")
            .with_start_time(start)
            .with_base_time(start)
            .with_max_value_divisor(1.0)
            .begin_log_with(&mut buf, &mut ser)?;
        for (tag, h, at, len) in intervals {
            w.write_histogram(*h, *at, *len, Tag::new(tag))
                .map_err(|e| anyhow::anyhow!("could not write histogram {tag}: {e:?}"))?;
        }
    }
    std::fs::write(path, buf).with_context(|| format!("could not write {}", path.display()))
}

/// Read every tagged interval of an interval log.
///
/// # Errors
/// When the file is missing or malformed.
pub fn read_hlog(path: &Path) -> Result<Vec<(String, Histogram<u64>)>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("could not read {}", path.display()))?;
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry
            .map_err(|e| anyhow::anyhow!("{} is not an interval log: {e:?}", path.display()))?;
        if let LogEntry::Interval(iv) = entry {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(iv.encoded_histogram())
                .with_context(|| format!("bad base64 in {}", path.display()))?;
            let h: Histogram<u64> = Deserializer::new()
                .deserialize(&mut std::io::Cursor::new(raw))
                .map_err(|e| anyhow::anyhow!("bad histogram in {}: {e:?}", path.display()))?;
            out.push((
                iv.tag().map(|t| t.as_str().to_string()).unwrap_or_default(),
                h,
            ));
        }
    }
    if out.is_empty() {
        bail!("{} holds no histogram", path.display());
    }
    Ok(out)
}

/// HdrHistogram's percentile distribution text, values scaled by `1/scale` (1000: ns to
/// µs), 5 ticks per half distance, with the `#[Mean ...]`, `#[Max ...]`, `#[Buckets ...]`
/// footers.
pub fn hgrm_text(h: &Histogram<u64>, scale: f64) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    for v in h.iter_quantiles(5) {
        total += v.count_since_last_iteration();
        let q = v.quantile_iterated_to();
        let value = v.value_iterated_to() as f64 / scale;
        if q < 1.0 {
            let _ = writeln!(
                s,
                "{value:12.3} {q:2.12} {total:10} {:14.2}",
                1.0 / (1.0 - q)
            );
        } else {
            let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
        }
    }
    let sub_buckets = 1u64 << (((2.0 * 10f64.powi(i32::from(h.sigfig()))).log2().ceil()) as u32);
    let _ = writeln!(
        s,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]",
        h.mean() / scale,
        h.stdev() / scale
    );
    let _ = writeln!(
        s,
        "#[Max     = {:12.3}, Total count    = {:12}]",
        h.max() as f64 / scale,
        h.len()
    );
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    s
}

/// Read every `summary.json` under `dir`: `dir/summary.json` itself, or `dir/MODE/summary.json`.
///
/// # Errors
/// When none is found or one is malformed.
pub fn load_summaries(dir: &Path) -> Result<Vec<(std::path::PathBuf, Summary)>> {
    let mut found = Vec::new();
    let direct = dir.join("summary.json");
    let candidates: Vec<std::path::PathBuf> = if direct.exists() {
        vec![direct]
    } else {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("could not read {}", dir.display()))?
            .flatten()
            .map(|e| e.path().join("summary.json"))
            .filter(|p| p.exists())
            .collect();
        v.sort();
        v
    };
    for p in candidates {
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("could not read {}", p.display()))?;
        let s: Summary = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a vnet-bench summary", p.display()))?;
        if s.schema != SCHEMA {
            bail!(
                "{} has schema {:?}, expected {SCHEMA:?}",
                p.display(),
                s.schema
            );
        }
        found.push((p.parent().unwrap_or(dir).to_path_buf(), s));
    }
    if found.is_empty() {
        bail!("no summary.json in {} or its subfolders", dir.display());
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hlog_round_trips_and_hgrm_has_the_format() {
        let mut h = crate::bench::sink::new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 10).unwrap();
        }
        let dir = std::env::temp_dir().join(format!("vnet-results-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.hlog");
        write_hlog(
            &p,
            "test",
            SystemTime::now(),
            &[("lat50".into(), &h, Duration::ZERO, Duration::from_secs(2))],
        )
        .unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.contains("#[StartTime: ")
                && text.contains("#[BaseTime: ")
                && text.contains("Tag=lat50,")
        );
        let back = read_hlog(&p).unwrap();
        assert_eq!(back[0].0, "lat50");
        assert_eq!(back[0].1, h);
        let g = hgrm_text(&h, 1000.0);
        assert!(g.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"));
        assert!(
            g.contains("#[Mean    = ") && g.contains("#[Max     = ") && g.contains("#[Buckets = ")
        );
        assert!(g.lines().rev().nth(3).unwrap().contains(" 10000"), "{g}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
