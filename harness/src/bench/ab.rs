//! `vnet-bench compare --ab OLD_BIN NEW_BIN [--pairs N] [--keep DIR] [-- BENCH ARGS...]`:
//! two builds measured alternately in one run and judged pair by pair, so that the
//! machine's drift (thermal, other load, frequency) hits both builds alike.
//!
//! Runs. Pair `i` (0-based, `0..N`) runs `OLD_BIN bench` then `NEW_BIN bench` when `i` is
//! even and `NEW_BIN` then `OLD_BIN` when it is odd (OLD,NEW,NEW,OLD,OLD,NEW... :
//! counterbalanced, so a trend over the run favours neither build). Every run is
//! `BIN bench BENCH_ARGS --dut vnet --out DIR/{a|b}-i --prefix abK` (`a` for OLD, `b` for
//! NEW, `K` the run's index `0..2N`, so no two runs share namespaces); BENCH ARGS
//! default to `--mode internal` and may not carry `--dut`, `--out`, `--prefix` or
//! `--vnet-exe` themselves. Each run's stdout and stderr go to the terminal. DIR is
//! `$TMPDIR/vnet-ab-PID`, removed at the end (also on error), or `--keep DIR` (new or
//! empty, kept). Ctrl-C or SIGTERM stops the run in progress (it cleans up as bench
//! does) and then compare, with an error.
//!
//! Invariants:
//! - nothing runs unless both binaries are executable files and the arguments are valid;
//! - a run that fails, or writes no summary with a vnet NDR and PDR, stops everything
//!   with an error naming the build (OLD_BIN/NEW_BIN), its path and the pair: a verdict
//!   is only given on complete pairs;
//! - every change is NEW relative to OLD within one pair, never across pairs.
//!
//! Verdict. Per measurement (mode, direction, frame size) present in both runs of a
//! pair, and per metric (NDR, PDR, and p50/p99/p99.9 latency at 50% of PDR from
//! `summary.json`), the relative change of each pair, their median, and how many pairs
//! went worse (lower rate, higher latency; a pair with no change is not worse). A metric
//! regresses when **both**:
//! - **size**: the median change is worse than its threshold: NDR and PDR down by more
//!   than `--ndr-threshold` (and more than twice the search precision, what two searches
//!   can resolve), p99 up by more than `--p99-threshold`;
//! - **consistency**: every pair went worse (every pair with the metric: a run cut
//!   short, which is noted, may lack latency) — a sign test's most extreme outcome; its
//!   one-sided p-value, 2^-N, is printed: 0.125 for 3 pairs, 0.031 for 5, 0.008 for 7:
//!   with few pairs the size rule carries the verdict, more pairs make it firmer.
//!
//! p50 and p99.9 are reported, not judged. [`run`] returns false on a regression (exit
//! status 1).
//!
//! For the record, the two-folder comparison of [`compare`] also runs on all OLD runs
//! against all NEW runs (latency histograms merged, the median run's NDR/PDR); it is
//! printed but is not the verdict. `--plot` draws that merged comparison, labelled with
//! the A/B verdict.

use super::compare::{self, CompareArgs, ModeComparison, Thresholds};
use super::results::{self, DutResult, Summary};
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Pairs when `--pairs` is not given.
pub const DEFAULT_PAIRS: u32 = 3;

/// Most pairs: the namespace prefix `ab` + run index stays within bench's 5 characters.
pub const MAX_PAIRS: i64 = 500;

/// The DUT the A/B runs measure (the binary under test runs itself as the dataplane).
const DUT: &str = "vnet";

/// Bench arguments when none are given.
const DEFAULT_BENCH_ARGS: [&str; 2] = ["--mode", "internal"];

/// Bench options the A/B runs set themselves.
const FORCED: [&str; 4] = ["--dut", "--out", "--prefix", "--vnet-exe"];

/// One of the two builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// The baseline (`OLD_BIN`, folders `a-i`).
    Old,
    /// The candidate (`NEW_BIN`, folders `b-i`).
    New,
}

impl Build {
    /// `OLD_BIN` or `NEW_BIN`.
    pub fn role(self) -> &'static str {
        match self {
            Build::Old => "OLD_BIN",
            Build::New => "NEW_BIN",
        }
    }

    /// The results folder of pair `pair`.
    pub fn folder(self, pair: u32) -> String {
        match self {
            Build::Old => format!("a-{pair}"),
            Build::New => format!("b-{pair}"),
        }
    }
}

/// The run order of pair `pair`: OLD first when even, NEW first when odd.
pub fn order(pair: u32) -> [Build; 2] {
    if pair.is_multiple_of(2) {
        [Build::Old, Build::New]
    } else {
        [Build::New, Build::Old]
    }
}

/// The user's bench arguments (or the default), refused when they set what the A/B runs
/// set themselves.
///
/// # Errors
/// When an argument is `--dut`, `--out`, `--prefix` or `--vnet-exe` (or `--opt=...`).
pub fn bench_args(user: &[String]) -> Result<Vec<String>> {
    for a in user {
        if let Some(f) = FORCED
            .iter()
            .find(|f| a == *f || a.starts_with(&format!("{f}=")))
        {
            if *f == "--vnet-exe" {
                bail!("compare --ab runs each binary as its own vnet DUT; remove --vnet-exe from the arguments after --");
            }
            bail!("compare --ab sets {f} of every bench run itself; remove {f} from the arguments after --");
        }
    }
    Ok(if user.is_empty() {
        DEFAULT_BENCH_ARGS.iter().map(|s| s.to_string()).collect()
    } else {
        user.to_vec()
    })
}

/// The arguments every run gets after the user's.
fn forced_args(out: &Path, run: u32) -> Vec<OsString> {
    vec![
        "--dut".into(),
        DUT.into(),
        "--out".into(),
        out.into(),
        "--prefix".into(),
        format!("ab{run}").into(),
    ]
}

/// The binary's absolute path, once it is known to be an executable file.
fn check_binary(role: &str, path: &Path) -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(_) => bail!("{role} {} does not exist", path.display()),
    };
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        bail!("{role} {} is not an executable file", path.display());
    }
    // Absolute, so that a bare name means the file here, not one on $PATH.
    std::fs::canonicalize(path).with_context(|| format!("could not resolve {}", path.display()))
}

/// Where the runs write: a temporary folder removed on drop, or the user's, kept.
#[derive(Debug)]
struct RunsDir {
    path: PathBuf,
    remove: bool,
}

impl RunsDir {
    fn new(keep: Option<&Path>) -> Result<RunsDir> {
        let (path, remove) = match keep {
            Some(k) => {
                if k.exists()
                    && std::fs::read_dir(k)
                        .with_context(|| format!("--keep {} is not a folder", k.display()))?
                        .next()
                        .is_some()
                {
                    bail!("--keep {} must be a new or empty folder", k.display());
                }
                (k.to_path_buf(), false)
            }
            None => {
                let p = std::env::temp_dir().join(format!("vnet-ab-{}", std::process::id()));
                // A leftover of an earlier process with the same pid.
                let _ = std::fs::remove_dir_all(&p);
                (p, true)
            }
        };
        std::fs::create_dir_all(&path)
            .with_context(|| format!("could not create {}", path.display()))?;
        Ok(RunsDir { path, remove })
    }
}

impl Drop for RunsDir {
    fn drop(&mut self) {
        if self.remove {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// Run `cmd` to its end. Spawning is retried while the kernel says the file is being
/// written (ETXTBSY: a binary just written, whose write descriptor a concurrently forked
/// child still holds). When `stop` is raised, the run gets a SIGTERM (once): Ctrl-C
/// reaches it by itself (same process group), a SIGTERM sent to compare alone would
/// not, and the run must clean up its namespaces rather than be orphaned.
fn run_to_end(cmd: &mut Command, stop: &AtomicBool) -> std::io::Result<ExitStatus> {
    let mut tries = 0;
    let mut child = loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 20 => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other?,
        }
    };
    let mut forwarded = false;
    loop {
        if let Some(st) = child.try_wait()? {
            return Ok(st);
        }
        if stop.load(Ordering::Relaxed) && !forwarded {
            forwarded = true;
            let _ = Command::new("sh")
                .args(["-c", &format!("kill -TERM {}", child.id())])
                .status();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Check a run's results: at least one summary, each with a vnet NDR and PDR. Returns
/// notes (incomplete runs).
fn check_run(out: &Path, what: &str) -> Result<Vec<String>> {
    let sums =
        results::load_summaries(out).with_context(|| format!("{what} wrote no usable results"))?;
    let mut notes = Vec::new();
    for (_, s) in &sums {
        match s.dut(DUT) {
            Some(d) if d.ndr.is_some() && d.pdr.is_some() => {}
            Some(d) => bail!(
                "{what} measured no vnet NDR/PDR for {}: {}",
                compare::measurement(s),
                d.error.as_deref().unwrap_or("no reason given")
            ),
            None => bail!("{what} has no vnet result for {}", compare::measurement(s)),
        }
        if !s.complete {
            notes.push(format!(
                "{what}: {} is incomplete (interrupted or a search cut short)",
                compare::measurement(s)
            ));
        }
    }
    Ok(notes)
}

/// Run every pair in [`order`]; returns notes on incomplete runs.
fn run_pairs(
    bins: [&Path; 2],
    bench: &[String],
    pairs: u32,
    dir: &Path,
    stop: &AtomicBool,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for pair in 0..pairs {
        for (k, build) in order(pair).into_iter().enumerate() {
            let run = 2 * pair + k as u32;
            let bin = match build {
                Build::Old => bins[0],
                Build::New => bins[1],
            };
            let out = dir.join(build.folder(pair));
            let what = format!("{} {} in pair {pair}", build.role(), bin.display());
            let forced = forced_args(&out, run);
            eprintln!(
                "compare --ab: pair {pair} (of {pairs}), run {}/{}: {} bench {} {}",
                run + 1,
                2 * pairs,
                bin.display(),
                bench.join(" "),
                forced
                    .iter()
                    .map(|a| a.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let st = run_to_end(
                Command::new(bin).arg("bench").args(bench).args(&forced),
                stop,
            )
            .with_context(|| format!("could not run {what}"))?;
            if stop.load(Ordering::Relaxed) {
                bail!("interrupted during {what}");
            }
            if !st.success() {
                bail!("{what} failed ({st}); its output is above");
            }
            notes.extend(check_run(&out, &what)?);
        }
    }
    Ok(notes)
}

/// One metric of a mode.
#[derive(Debug, Clone, Copy)]
struct Metric {
    name: &'static str,
    get: fn(&DutResult) -> Option<f64>,
    /// Display unit: value / div.
    div: f64,
    higher_is_better: bool,
    gate: Gate,
}

/// Which threshold judges a metric.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gate {
    /// `--ndr-threshold`, at least the search resolution.
    Rate,
    /// `--p99-threshold`.
    P99,
    /// Reported only.
    None,
}

fn lat50(d: &DutResult, f: fn(&results::LatencyPoint) -> u64) -> Option<f64> {
    d.latency_at(50).map(|l| f(l) as f64)
}

const METRICS: [Metric; 5] = [
    Metric {
        name: "NDR Mpps",
        get: |d| d.ndr.map(|f| f.pps),
        div: 1e6,
        higher_is_better: true,
        gate: Gate::Rate,
    },
    Metric {
        name: "PDR Mpps",
        get: |d| d.pdr.map(|f| f.pps),
        div: 1e6,
        higher_is_better: true,
        gate: Gate::Rate,
    },
    Metric {
        name: "p50 us",
        get: |d| lat50(d, |l| l.p50_ns),
        div: 1e3,
        higher_is_better: false,
        gate: Gate::None,
    },
    Metric {
        name: "p99 us",
        get: |d| lat50(d, |l| l.p99_ns),
        div: 1e3,
        higher_is_better: false,
        gate: Gate::P99,
    },
    Metric {
        name: "p99.9 us",
        get: |d| lat50(d, |l| l.p999_ns),
        div: 1e3,
        higher_is_better: false,
        gate: Gate::None,
    },
];

/// One metric over the pairs, and its verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricRow {
    /// Name with unit (`NDR Mpps`, `p99 us`...).
    pub name: &'static str,
    /// OLD's value per pair (display unit), `None` where missing.
    pub old: Vec<Option<f64>>,
    /// NEW's value per pair.
    pub new: Vec<Option<f64>>,
    /// Relative change NEW vs OLD per pair.
    pub changes: Vec<Option<f64>>,
    /// Median of the changes present.
    pub median: Option<f64>,
    /// Pairs that went worse.
    pub worse: usize,
    /// Pairs with a change.
    pub judged: usize,
    /// How much worse the median must be to count (`None`: not judged).
    pub limit: Option<f64>,
    /// Rates: a decrease is worse; latencies: an increase.
    pub higher_is_better: bool,
    /// Size and consistency both hold.
    pub regression: bool,
}

impl MetricRow {
    /// `change` turned so that positive is worse.
    fn badness(&self, change: f64) -> f64 {
        if self.higher_is_better {
            -change
        } else {
            change
        }
    }
}

/// A measurement's A/B table.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeAb {
    /// What was measured: [`compare::measurement`].
    pub measurement: String,
    /// Per metric.
    pub rows: Vec<MetricRow>,
}

impl ModeAb {
    /// One line per regressed metric.
    pub fn regressions(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|r| r.regression)
            .map(|r| {
                format!(
                    "{} median {:+.1}% (limit {}), worse in {}/{} pairs",
                    r.name,
                    r.median.unwrap_or(0.0) * 100.0,
                    fmt_limit(r),
                    r.worse,
                    r.judged
                )
            })
            .collect()
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// One-sided sign test: P(at least `worse` of `n` pairs worse | no difference).
pub fn sign_p(worse: usize, n: usize) -> f64 {
    let mut pmf = 0.5f64.powi(n as i32);
    let mut tail = 0.0;
    for k in 0..=n {
        if k >= worse {
            tail += pmf;
        }
        pmf *= (n - k) as f64 / (k + 1) as f64;
    }
    tail.min(1.0)
}

/// Judge one measurement over the pairs (`None`: missing from a run of that pair).
pub fn judge(measurement: &str, pairs: &[Option<(&Summary, &Summary)>], t: &Thresholds) -> ModeAb {
    let resolution = pairs
        .iter()
        .flatten()
        .map(|(a, b)| compare::rate_resolution(a, b))
        .fold(0.0, f64::max);
    let rows = METRICS
        .iter()
        .map(|m| {
            let val = |s: &Summary| s.dut(DUT).and_then(m.get).map(|v| v / m.div);
            let old: Vec<Option<f64>> = pairs.iter().map(|p| p.and_then(|(a, _)| val(a))).collect();
            let new: Vec<Option<f64>> = pairs.iter().map(|p| p.and_then(|(_, b)| val(b))).collect();
            let changes: Vec<Option<f64>> = old
                .iter()
                .zip(&new)
                .map(|(a, b)| Some(compare::rel((*a)?, (*b)?)))
                .collect();
            let present: Vec<f64> = changes.iter().flatten().copied().collect();
            let mut row = MetricRow {
                name: m.name,
                old,
                new,
                median: median(present.clone()),
                worse: 0,
                judged: present.len(),
                limit: match m.gate {
                    Gate::Rate => Some(t.ndr.max(resolution)),
                    Gate::P99 => Some(t.p99),
                    Gate::None => None,
                },
                higher_is_better: m.higher_is_better,
                regression: false,
                changes,
            };
            row.worse = present.iter().filter(|c| row.badness(**c) > 0.0).count();
            row.regression = match (row.limit, row.median) {
                (Some(limit), Some(med)) => row.badness(med) > limit && row.worse == row.judged,
                _ => false,
            };
            row
        })
        .collect();
    ModeAb {
        measurement: measurement.into(),
        rows,
    }
}

/// One run's results of one mode: its folder and summary.
type Run = (PathBuf, Summary);

fn find<'a>(list: &'a [Run], key: &str) -> Option<&'a Run> {
    list.iter().find(|(_, s)| compare::measurement(s) == key)
}

/// The lat50 histograms of `runs` merged; `None` unless every run has one.
fn merged_hist(runs: &[&Run]) -> Option<Histogram<u64>> {
    let mut all = runs
        .iter()
        .map(|(dir, _)| compare::hist_at(dir, DUT, "lat50"));
    let mut h = all.next()??;
    for x in all {
        h.add(x?).ok()?;
    }
    Some(h)
}

/// One build's runs of a mode as one summary: the run at the median NDR (the lower
/// middle for an even count) with every run's NDR/PDR as rounds, and the merged lat50
/// histogram's percentiles as its latency.
fn merged_summary(runs: &[&Run], h: Option<&Histogram<u64>>) -> Summary {
    let mut by_ndr: Vec<&Summary> = runs.iter().map(|(_, s)| s).collect();
    let ndr = |s: &Summary| s.dut(DUT).and_then(|d| d.ndr).map_or(0.0, |f| f.pps);
    by_ndr.sort_by(|a, b| ndr(a).total_cmp(&ndr(b)));
    let mut s = by_ndr[(by_ndr.len() - 1) / 2].clone();
    s.command = format!("{} runs merged by vnet-bench compare --ab", runs.len());
    s.complete = runs.iter().all(|(_, r)| r.complete);
    let rounds = |f: fn(&DutResult) -> &Vec<f64>| -> Vec<f64> {
        runs.iter()
            .filter_map(|(_, r)| r.dut(DUT))
            .flat_map(|d| f(d).iter().copied())
            .collect()
    };
    let (ndr_rounds, pdr_rounds) = (rounds(|d| &d.ndr_rounds_pps), rounds(|d| &d.pdr_rounds_pps));
    if let Some(d) = s.duts.iter_mut().find(|d| d.dut == DUT) {
        d.ndr_rounds_pps = ndr_rounds;
        d.pdr_rounds_pps = pdr_rounds;
        if let Some(h) = h {
            let rate = d.latency_at(50).map(|l| l.rate).unwrap_or_default();
            d.latency = vec![results::latency_point(h, 50, rate)];
        }
    }
    s
}

/// Judge every measurement ([`compare::measurement`]: mode, direction, frame size) of
/// the OLD runs over the pairs where both runs have it, and run the merged two-folder
/// comparison for the record.
///
/// # Errors
/// When a run's results cannot be read.
pub fn compare_runs(
    dir: &Path,
    pairs: u32,
    t: &Thresholds,
) -> Result<(Vec<ModeAb>, Vec<ModeComparison>)> {
    // Per pair, OLD's and NEW's runs.
    let mut sums: Vec<(Vec<Run>, Vec<Run>)> = Vec::new();
    for pair in 0..pairs {
        let load = |b: Build| results::load_summaries(&dir.join(b.folder(pair)));
        sums.push((load(Build::Old)?, load(Build::New)?));
    }
    let mut keys: Vec<String> = Vec::new();
    for (_, s) in sums.iter().flat_map(|(a, _)| a.iter()) {
        let k = compare::measurement(s);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let (mut tables, mut record) = (Vec::new(), Vec::new());
    for key in keys {
        let found: Vec<Option<(&Run, &Run)>> = sums
            .iter()
            .map(|(a, b)| Some((find(a, &key)?, find(b, &key)?)))
            .collect();
        let both: Vec<Option<(&Summary, &Summary)>> =
            found.iter().map(|p| p.map(|(a, b)| (&a.1, &b.1))).collect();
        if both.iter().all(Option::is_none) {
            continue;
        }
        tables.push(judge(&key, &both, t));
        let olds: Vec<_> = found.iter().flatten().map(|p| p.0).collect();
        let news: Vec<_> = found.iter().flatten().map(|p| p.1).collect();
        let hists = merged_hist(&olds).zip(merged_hist(&news));
        let (ms_old, ms_new) = (
            merged_summary(&olds, hists.as_ref().map(|h| &h.0)),
            merged_summary(&news, hists.as_ref().map(|h| &h.1)),
        );
        record.push(compare::compare_mode(&ms_old, &ms_new, hists, DUT, t));
    }
    Ok((tables, record))
}

fn fmt_pct(c: Option<f64>) -> String {
    c.map_or("-".into(), |c| format!("{:+.1}%", c * 100.0))
}

fn fmt_limit(r: &MetricRow) -> String {
    match r.limit {
        None => "-".into(),
        Some(l) if r.higher_is_better => format!("-{:.1}%", l * 100.0),
        Some(l) => format!("+{:.1}%", l * 100.0),
    }
}

/// Print a mode's A/B table.
pub fn print_table(m: &ModeAb) {
    let pairs = m.rows.first().map_or(0, |r| r.changes.len());
    println!(
        "mode {}, dut {DUT}: change NEW vs OLD per pair",
        m.measurement
    );
    let mut head = format!("  {:<10} {:>9} {:>9}", "", "OLD med", "NEW med");
    for i in 0..pairs {
        head.push_str(&format!(" {:>8}", format!("pair {i}")));
    }
    head.push_str(&format!(
        " {:>8} {:>6} {:>7} {:>7}  verdict",
        "median", "worse", "sign p", "limit"
    ));
    println!("{head}");
    for r in &m.rows {
        let med = |v: &[Option<f64>]| median(v.iter().flatten().copied().collect());
        let num = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        let mut line = format!(
            "  {:<10} {:>9} {:>9}",
            r.name,
            num(med(&r.old)),
            num(med(&r.new))
        );
        for c in &r.changes {
            line.push_str(&format!(" {:>8}", fmt_pct(*c)));
        }
        line.push_str(&format!(
            " {:>8} {:>6} {:>7.3} {:>7}  {}",
            fmt_pct(r.median),
            format!("{}/{}", r.worse, r.judged),
            sign_p(r.worse, r.judged),
            fmt_limit(r),
            match (r.regression, r.limit) {
                (true, _) => "REGRESSION",
                (false, Some(_)) => "ok",
                (false, None) => "(reported)",
            }
        ));
        println!("{line}");
    }
}

/// Run `vnet-bench compare --ab`; Ok(false) on a regression.
///
/// # Errors
/// Invalid arguments, a missing or non-executable binary, a run that fails or writes no
/// vnet result, unreadable results, an unwritable plot.
pub fn run(args: &CompareArgs) -> Result<bool> {
    let Some([old, new]) = args.ab.as_deref() else {
        bail!("--ab takes two binaries: OLD_BIN NEW_BIN");
    };
    if args.dut != DUT {
        bail!(
            "compare --ab measures the vnet DUT only; drop --dut {}",
            args.dut
        );
    }
    let bench = bench_args(&args.bench_args)?;
    let old = check_binary("OLD_BIN", old)?;
    let new = check_binary("NEW_BIN", new)?;
    let pairs = args.pairs.unwrap_or(DEFAULT_PAIRS);
    let t = args.thresholds();
    let dir = RunsDir::new(args.keep.as_deref())?;
    let stop = crate::run::stop_flag()?;
    let notes = run_pairs([&old, &new], &bench, pairs, &dir.path, &stop)?;

    let (tables, mut record) = compare_runs(&dir.path, pairs, &t)?;
    if tables.is_empty() {
        bail!("no measurement (mode, direction, frame size) appears in both builds' results");
    }
    println!(
        "\nA/B: OLD {} vs NEW {}, {} pairs (order per pair i: OLD,NEW when i is even, NEW,OLD when odd)",
        old.display(),
        new.display(),
        pairs
    );
    for n in &notes {
        println!("note: {n}");
    }
    for m in &tables {
        print_table(m);
    }
    println!("\nfor the record, not the verdict: all OLD runs against all NEW runs (merged)");
    for c in &record {
        compare::print_table(c, DUT);
        println!(
            "  two-folder rule on the merged runs: {}",
            if c.regressions.is_empty() {
                "ok".to_string()
            } else {
                c.regressions.join("; ")
            }
        );
    }
    let regressions: Vec<String> = tables
        .iter()
        .flat_map(|m| {
            m.regressions()
                .into_iter()
                .map(move |r| format!("{}: {r}", m.measurement))
        })
        .collect();
    if regressions.is_empty() {
        println!("\nA/B verdict: ok");
    } else {
        println!("\nA/B verdict: REGRESSION");
        for r in &regressions {
            println!("  REGRESSION: {r}");
        }
    }
    if let Some(p) = &args.plot {
        // The merged comparison, labelled with the A/B verdict rather than its own.
        for (c, m) in record.iter_mut().zip(&tables) {
            c.regressions = m.regressions();
            c.notes.clear();
        }
        compare::write_plot(p, &record, DUT)?;
    }
    if dir.remove {
        drop(dir);
    } else {
        println!("runs kept in {}", dir.path.display());
    }
    Ok(regressions.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::search::Found;
    use crate::bench::{sink, write_results};
    use clap::Parser;
    use std::time::SystemTime;

    /// `vnet-bench compare`'s arguments as a command of their own.
    #[derive(Debug, clap::Parser)]
    struct Cmd {
        #[command(flatten)]
        args: CompareArgs,
    }

    fn parse(argv: &[&str]) -> Result<CompareArgs, clap::Error> {
        Cmd::try_parse_from(std::iter::once("compare").chain(argv.iter().copied())).map(|c| c.args)
    }

    /// A folder removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!("vnet-abtest-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn s(&self, rel: &str) -> String {
            self.0.join(rel).to_string_lossy().into_owned()
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// Latencies spread over 10..30 us, times `scale`.
    fn hist(scale: f64) -> Histogram<u64> {
        let mut h = sink::new_histogram();
        for i in 0..20_000u64 {
            h.record(((10_000 + i) as f64 * scale) as u64).unwrap();
        }
        h
    }

    /// A bench result folder as `bench --out` writes it (through the crate's writers):
    /// `dir/internal`, 64-byte frames.
    fn fixture(dir: &Path, ndr: f64, lat_scale: f64) {
        fixture_sized(&dir.join("internal"), ndr, lat_scale, 64);
    }

    /// One measurement's folder `dir`.
    fn fixture_sized(dir: &Path, ndr: f64, lat_scale: f64, frame_size: usize) {
        let found = |pps| Found {
            pps,
            loss: 0.0,
            upper_pps: pps * 1.02,
        };
        let h = hist(lat_scale);
        let mut s = Summary {
            schema: results::SCHEMA.into(),
            mode: "internal".into(),
            direction: "guest->guest".into(),
            complete: true,
            ..Summary::default()
        };
        s.settings.precision = 0.02;
        s.settings.frame_size = frame_size;
        let mut lp = results::latency_point(&h, 50, Default::default());
        lp.hgrm = "vnet-lat50.hgrm".into();
        s.duts.push(DutResult {
            dut: "vnet".into(),
            ndr: Some(found(ndr)),
            pdr: Some(found(ndr * 1.05)),
            ndr_rounds_pps: vec![ndr],
            pdr_rounds_pps: vec![ndr * 1.05],
            latency: vec![lp],
            ..DutResult::default()
        });
        write_results(
            dir,
            &s,
            &[("vnet".into(), vec![(50, h)])],
            SystemTime::now(),
            Duration::from_secs(2),
        )
        .unwrap();
    }

    /// A fake `vnet-bench`: logs `NAME ARGS...` to `log`, then copies `fixtures/PREFIX`
    /// (per run) or `fixtures/default` to its `--out`.
    fn fake_bin(path: &Path, name: &str, fixtures: &Path, log: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let script = format!(
            r#"#!/bin/sh
echo "{name} $*" >> '{log}'
[ "$1" = bench ] || exit 2
out= prefix=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift ;;
    --prefix) prefix="$2"; shift ;;
  esac
  shift
done
[ -n "$out" ] || exit 3
src='{fixtures}/default'
[ -d '{fixtures}/'"$prefix" ] && src='{fixtures}/'"$prefix"
mkdir -p "$out" && cp -R "$src/." "$out/"
"#,
            log = log.display(),
            fixtures = fixtures.display()
        );
        std::fs::write(path, script).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// OLD and NEW fake binaries in `w`, with OLD's and NEW's default fixtures.
    fn setup(w: &Scratch, old: (f64, f64), new: (f64, f64)) {
        for (name, (ndr, lat)) in [("old", old), ("new", new)] {
            fixture(&w.0.join(format!("fx-{name}/default")), ndr, lat);
            fake_bin(
                &w.0.join(name),
                &name.to_uppercase(),
                &w.0.join(format!("fx-{name}")),
                &w.0.join("log"),
            );
        }
    }

    fn log(w: &Scratch) -> Vec<String> {
        std::fs::read_to_string(w.0.join("log"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    #[test]
    fn the_command_line_takes_folders_or_ab() {
        let a = parse(&["base", "cand"]).unwrap();
        assert_eq!(a.baseline, Some(PathBuf::from("base")));
        assert!(a.ab.is_none() && a.bench_args.is_empty() && a.pairs.is_none());
        let a = parse(&[
            "--ab", "o", "n", "--pairs", "5", "--keep", "k", "--", "--mode", "nat", "--trial", "1",
        ])
        .unwrap();
        assert_eq!(a.ab, Some(vec![PathBuf::from("o"), PathBuf::from("n")]));
        assert_eq!((a.pairs, a.keep), (Some(5), Some(PathBuf::from("k"))));
        assert_eq!(a.bench_args, ["--mode", "nat", "--trial", "1"]);
        assert!(a.baseline.is_none() && a.candidate.is_none());
        for bad in [
            &[][..],
            &["base"],
            &["base", "cand", "--ab", "o", "n"],
            &["--ab", "o"],
            &["base", "cand", "--pairs", "2"],
            &["base", "cand", "--", "--mode", "internal"],
            &["--ab", "o", "n", "--pairs", "0"],
            &["--ab", "o", "n", "--pairs", "501"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn order_alternates_and_forced_arguments_are_refused() {
        let seq: Vec<Build> = (0..3).flat_map(order).collect();
        use Build::{New, Old};
        assert_eq!(seq, [Old, New, New, Old, Old, New]);
        assert_eq!(bench_args(&[]).unwrap(), ["--mode", "internal"]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            bench_args(&s(&["--mode", "nat"])).unwrap(),
            ["--mode", "nat"]
        );
        for bad in [
            &["--out", "x"][..],
            &["--mode", "internal", "--out=x"],
            &["--dut", "kernel"],
            &["--dut=vnet"],
            &["--prefix", "zz"],
            &["--vnet-exe", "/bin/true"],
        ] {
            let e = bench_args(&s(bad)).unwrap_err().to_string();
            let opt = bad
                .iter()
                .find(|a| a.starts_with("--") && *a != &"--mode")
                .unwrap();
            assert!(e.contains(opt.split('=').next().unwrap()), "{bad:?}: {e}");
        }
        assert!((sign_p(3, 3) - 0.125).abs() < 1e-12);
        assert!((sign_p(0, 5) - 1.0).abs() < 1e-12);
        assert!((sign_p(4, 5) - 6.0 / 32.0).abs() < 1e-12);
    }

    #[test]
    fn identical_builds_are_not_a_regression_and_the_temp_folder_goes() {
        let w = Scratch::new("same");
        setup(&w, (1.0e6, 1.0), (1.0e6, 1.0));
        let a = parse(&["--ab", &w.s("old"), &w.s("new")]).unwrap();
        assert!(run(&a).unwrap());
        assert_eq!(log(&w).len(), 6);
        let tmp = std::env::temp_dir().join(format!("vnet-ab-{}", std::process::id()));
        assert!(!tmp.exists(), "{} was left behind", tmp.display());
    }

    #[test]
    fn a_planted_ndr_drop_in_every_pair_is_a_regression() {
        let w = Scratch::new("drop");
        setup(&w, (1.0e6, 1.0), (0.8e6, 1.0));
        let keep = w.s("keep");
        let plot = w.s("ab.svg");
        let a = parse(&[
            "--ab",
            &w.s("old"),
            &w.s("new"),
            "--keep",
            &keep,
            "--plot",
            &plot,
        ])
        .unwrap();
        assert!(!run(&a).unwrap(), "a 20% NDR drop passed");
        // The tables behind the verdict: NDR and PDR regress, latency does not.
        let (tables, record) = compare_runs(Path::new(&keep), 3, &a.thresholds()).unwrap();
        assert_eq!(tables.len(), 1);
        let regressed: Vec<&str> = tables[0]
            .rows
            .iter()
            .filter(|r| r.regression)
            .map(|r| r.name)
            .collect();
        assert_eq!(regressed, ["NDR Mpps", "PDR Mpps"]);
        let ndr = &tables[0].rows[0];
        assert_eq!((ndr.worse, ndr.judged), (3, 3));
        assert!((ndr.median.unwrap() + 0.2).abs() < 1e-9, "{ndr:?}");
        // The merged record: 3 runs' histograms per side, the two-folder rule agrees.
        let (ho, hn) = record[0].hists.as_ref().unwrap();
        assert_eq!((ho.len(), hn.len()), (60_000, 60_000));
        assert!(record[0].regressions.iter().any(|r| r.starts_with("NDR")));
        for f in ["a-0", "a-1", "a-2", "b-0", "b-1", "b-2"] {
            assert!(w
                .0
                .join("keep")
                .join(f)
                .join("internal/summary.json")
                .exists());
        }
        let svg = std::fs::read_to_string(&plot).unwrap();
        assert!(svg.contains("REGRESSION: NDR Mpps median -20.0%"), "{svg}");
    }

    #[test]
    fn inconsistent_or_small_changes_are_not_regressions() {
        // NEW 20% slower in pairs 0 and 2 only (its runs ab1 and ab4), as fast in pair 1:
        // the median is -20% but not every pair agrees.
        let w = Scratch::new("mixed");
        setup(&w, (1.0e6, 1.0), (0.8e6, 1.0));
        fixture(&w.0.join("fx-new/ab2"), 1.0e6, 1.0);
        let keep = w.s("keep");
        let a = parse(&["--ab", &w.s("old"), &w.s("new"), "--keep", &keep]).unwrap();
        assert!(run(&a).unwrap());
        let (tables, _) = compare_runs(Path::new(&keep), 3, &a.thresholds()).unwrap();
        let ndr = &tables[0].rows[0];
        assert_eq!((ndr.worse, ndr.judged), (2, 3), "{ndr:?}");
        assert!((ndr.median.unwrap() + 0.2).abs() < 1e-9);
        // NEW 5% slower everywhere: consistent but below the 10% threshold.
        let w = Scratch::new("small");
        setup(&w, (1.0e6, 1.0), (0.95e6, 1.0));
        let a = parse(&["--ab", &w.s("old"), &w.s("new"), "--keep", &w.s("keep")]).unwrap();
        assert!(run(&a).unwrap());
    }

    #[test]
    fn latency_regresses_upwards_and_only_p99_is_judged() {
        let w = Scratch::new("lat");
        setup(&w, (1.0e6, 1.0), (1.0e6, 1.3));
        let keep = w.s("keep");
        let a = parse(&[
            "--ab",
            &w.s("old"),
            &w.s("new"),
            "--pairs",
            "2",
            "--keep",
            &keep,
        ])
        .unwrap();
        assert!(!run(&a).unwrap());
        let (tables, _) = compare_runs(Path::new(&keep), 2, &a.thresholds()).unwrap();
        let regressed: Vec<&str> = tables[0]
            .rows
            .iter()
            .filter(|r| r.regression)
            .map(|r| r.name)
            .collect();
        assert_eq!(regressed, ["p99 us"]);
        // The other way round (NEW faster) is no regression.
        let w = Scratch::new("lat-better");
        setup(&w, (1.0e6, 1.3), (1.0e6, 1.0));
        let a = parse(&["--ab", &w.s("old"), &w.s("new"), "--keep", &w.s("keep")]).unwrap();
        assert!(run(&a).unwrap());
    }

    #[test]
    fn runs_alternate_with_unique_prefixes_and_forced_arguments() {
        let w = Scratch::new("order");
        setup(&w, (1.0e6, 1.0), (1.0e6, 1.0));
        let keep = w.s("keep");
        let a = parse(&[
            "--ab",
            &w.s("old"),
            &w.s("new"),
            "--keep",
            &keep,
            "--",
            "--mode",
            "internal",
            "--trial",
            "1",
        ])
        .unwrap();
        assert!(run(&a).unwrap());
        let lines = log(&w);
        let who: Vec<&str> = lines.iter().map(|l| l.split(' ').next().unwrap()).collect();
        assert_eq!(who, ["OLD", "NEW", "NEW", "OLD", "OLD", "NEW"]);
        assert_eq!(
            lines[2],
            format!("NEW bench --mode internal --trial 1 --dut vnet --out {keep}/b-1 --prefix ab2")
        );
        assert_eq!(
            lines[3],
            format!("OLD bench --mode internal --trial 1 --dut vnet --out {keep}/a-1 --prefix ab3")
        );
        // --keep must be new or empty.
        let e = run(&a).unwrap_err().to_string();
        assert!(e.contains("must be a new or empty folder"), "{e}");
        assert_eq!(log(&w).len(), 6);
    }

    #[test]
    fn a_missing_or_non_executable_binary_is_refused_before_any_run() {
        let w = Scratch::new("missing");
        setup(&w, (1.0e6, 1.0), (1.0e6, 1.0));
        let a = parse(&["--ab", &w.s("old"), &w.s("nope"), "--keep", &w.s("keep")]).unwrap();
        let e = format!("{:#}", run(&a).unwrap_err());
        assert_eq!(e, format!("NEW_BIN {} does not exist", w.s("nope")));
        std::fs::write(w.0.join("plain"), "#!/bin/sh\n").unwrap();
        let a = parse(&["--ab", &w.s("plain"), &w.s("new"), "--keep", &w.s("keep")]).unwrap();
        let e = format!("{:#}", run(&a).unwrap_err());
        assert_eq!(
            e,
            format!("OLD_BIN {} is not an executable file", w.s("plain"))
        );
        assert!(log(&w).is_empty());
        assert!(!w.0.join("keep").exists());
    }

    #[test]
    fn bench_arguments_the_runs_set_are_refused_before_any_run() {
        let w = Scratch::new("forced");
        setup(&w, (1.0e6, 1.0), (1.0e6, 1.0));
        let (old, new) = (w.s("old"), w.s("new"));
        let a = parse(&[
            "--ab", &old, &new, "--", "--mode", "internal", "--out", "/tmp/x",
        ])
        .unwrap();
        let e = format!("{:#}", run(&a).unwrap_err());
        assert!(e.contains("--out"), "{e}");
        let a = parse(&["--ab", &old, &new, "--dut", "kernel"]).unwrap();
        let e = format!("{:#}", run(&a).unwrap_err());
        assert!(e.contains("vnet DUT only"), "{e}");
        assert!(log(&w).is_empty());
    }

    #[test]
    fn a_failing_run_names_the_build_and_the_pair() {
        let w = Scratch::new("fail");
        setup(&w, (1.0e6, 1.0), (1.0e6, 1.0));
        // NEW's run ab3 (pair 1, second) exits 0 without results; run ab2 fails outright.
        let a = parse(&["--ab", &w.s("old"), &w.s("new"), "--keep", &w.s("keep")]).unwrap();
        std::fs::write(
            w.0.join("new"),
            "#!/bin/sh\ncase \"$*\" in *ab2*) exit 7;; esac\n",
        )
        .unwrap();
        let e = format!("{:#}", run(&a).unwrap_err());
        assert!(
            e.starts_with(&format!(
                "NEW_BIN {} in pair 0 wrote no usable results",
                w.s("new")
            )),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(w.0.join("keep"));
        std::fs::write(w.0.join("new"), "#!/bin/sh\nexit 7\n").unwrap();
        let e = format!("{:#}", run(&a).unwrap_err());
        assert_eq!(
            e,
            format!(
                "NEW_BIN {} in pair 0 failed (exit status: 7); its output is above",
                w.s("new")
            )
        );
    }

    #[test]
    fn a_stop_is_passed_on_to_the_run_in_progress() {
        let w = Scratch::new("stop");
        let bin = w.0.join("slow");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\ntrap 'echo TERM >> {log}; kill $p; exit 143' TERM\nsleep 30 & p=$!\nwait $p\n",
                log = w.s("log")
            ),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let stop = AtomicBool::new(false);
        let started = std::time::Instant::now();
        let e = std::thread::scope(|s| {
            let r = s.spawn(|| run_pairs([&bin, &bin], &[], 1, &w.0, &stop));
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::Relaxed);
            r.join().unwrap()
        })
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("interrupted during OLD_BIN"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(log(&w), ["TERM"]);
    }

    #[test]
    fn only_the_same_frame_size_is_compared() {
        // Two folders of results, the candidate's with a 128-byte run listed first: the
        // 64-byte baseline meets the 64-byte candidate, not the slower 128-byte one.
        let w = Scratch::new("sizes");
        fixture_sized(&w.0.join("base/internal-64"), 1.0e6, 1.0, 64);
        fixture_sized(&w.0.join("cand/a-internal-128"), 0.5e6, 1.0, 128);
        fixture_sized(&w.0.join("cand/internal-64"), 1.0e6, 1.0, 64);
        let c = compare::compare_dirs(
            &w.0.join("base"),
            &w.0.join("cand"),
            DUT,
            &Thresholds::default(),
        )
        .unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(
            compare::measurement(&c[0].cand),
            "internal (guest->guest, 64 B)"
        );
        assert!(c[0].regressions.is_empty(), "{:?}", c[0].regressions);
        // A/B: NEW measured another frame size only: nothing to compare, an error.
        setup(&w, (1.0e6, 1.0), (1.0e6, 1.0));
        std::fs::remove_dir_all(w.0.join("fx-new/default")).unwrap();
        fixture_sized(&w.0.join("fx-new/default/internal"), 1.0e6, 1.0, 128);
        let a = parse(&["--ab", &w.s("old"), &w.s("new"), "--keep", &w.s("keep")]).unwrap();
        let e = format!("{:#}", run(&a).unwrap_err());
        assert!(e.starts_with("no measurement"), "{e}");
    }
}
