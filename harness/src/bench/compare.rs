//! `vnet-bench compare BASELINE CANDIDATE`: per mode, NDR/PDR and latency percentiles
//! (at 50% of PDR) side by side with their change, and a verdict.
//!
//! A regression needs both:
//! - **significance**: latency, a two-sample Kolmogorov-Smirnov test on the two
//!   histograms (p < `alpha`); throughput, a drop larger than what the two searches can
//!   resolve (twice the search precision);
//! - **size**: p99 up by more than `--p99-threshold`, or NDR down by more than
//!   `--ndr-threshold` (defaults 10%). With millions of samples KS flags tiny shifts, so
//!   significance alone never fails a run.
//!
//! Exits 1 (via [`run`] returning false) on a regression, so CI can gate on it.
//!
//! With `--ab OLD_BIN NEW_BIN` it runs two builds itself, alternating, and judges them
//! pair by pair instead: see [`super::ab`].

use super::plot;
use super::results::{self, Summary};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};

/// `vnet-bench compare` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Baseline results: a folder of MODE/summary.json (or one mode's folder).
    #[arg(required_unless_present = "ab", conflicts_with = "ab")]
    pub baseline: Option<PathBuf>,
    /// Candidate results, the same shape.
    #[arg(required_unless_present = "ab", conflicts_with = "ab")]
    pub candidate: Option<PathBuf>,
    /// Instead of two folders: run `OLD_BIN bench` and `NEW_BIN bench` alternately
    /// (OLD,NEW then NEW,OLD...) and compare them pair by pair (needs root, as bench).
    #[arg(long, num_args = 2, value_names = ["OLD_BIN", "NEW_BIN"])]
    pub ab: Option<Vec<PathBuf>>,
    /// With --ab: pairs of runs, each running both builds once [default: 3].
    #[arg(long, conflicts_with = "baseline", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=super::ab::MAX_PAIRS))]
    pub pairs: Option<u32>,
    /// With --ab: keep the runs' results in DIR (new or empty) instead of a temporary
    /// folder removed at the end.
    #[arg(long, conflicts_with = "baseline", value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// With --ab: arguments of every `bench` run, after `--` (default: --mode internal);
    /// --dut vnet, --out and --prefix are added.
    #[arg(last = true, conflicts_with = "baseline", value_name = "BENCH ARGS")]
    pub bench_args: Vec<String>,
    /// Draw both percentile curves and the rates into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Relative p99 increase that counts as large.
    #[arg(long, default_value_t = 0.10)]
    pub p99_threshold: f64,
    /// Relative NDR decrease that counts as large (with --ab: NDR and PDR).
    #[arg(long, default_value_t = 0.10)]
    pub ndr_threshold: f64,
    /// Significance level of the KS test.
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// The DUT compared.
    #[arg(long, default_value = "vnet")]
    pub dut: String,
}

impl CompareArgs {
    /// The verdict's thresholds.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            p99: self.p99_threshold,
            ndr: self.ndr_threshold,
            alpha: self.alpha,
        }
    }
}

/// Thresholds of a verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// See [`CompareArgs::p99_threshold`].
    pub p99: f64,
    /// See [`CompareArgs::ndr_threshold`].
    pub ndr: f64,
    /// See [`CompareArgs::alpha`].
    pub alpha: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            p99: 0.10,
            ndr: 0.10,
            alpha: 0.01,
        }
    }
}

/// A two-sample KS test's outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ks {
    /// Largest distance between the two CDFs.
    pub d: f64,
    /// Asymptotic p-value.
    pub p_value: f64,
    /// Sample sizes.
    pub n: u64,
    /// Sample sizes.
    pub m: u64,
}

/// Two-sample Kolmogorov-Smirnov on two histograms (their recorded values, at the
/// histograms' resolution).
pub fn ks_two_sample(a: &Histogram<u64>, b: &Histogram<u64>) -> Ks {
    let pts = |h: &Histogram<u64>| -> Vec<(u64, u64)> {
        h.iter_recorded()
            .map(|v| {
                (
                    h.highest_equivalent(v.value_iterated_to()),
                    v.count_at_value(),
                )
            })
            .collect()
    };
    let (pa, pb) = (pts(a), pts(b));
    let (n, m) = (a.len(), b.len());
    if n == 0 || m == 0 {
        return Ks {
            d: 0.0,
            p_value: 1.0,
            n,
            m,
        };
    }
    let (mut i, mut j, mut ca, mut cb, mut d) = (0, 0, 0u64, 0u64, 0f64);
    while i < pa.len() || j < pb.len() {
        let va = pa.get(i).map(|x| x.0).unwrap_or(u64::MAX);
        let vb = pb.get(j).map(|x| x.0).unwrap_or(u64::MAX);
        let v = va.min(vb);
        while i < pa.len() && pa[i].0 == v {
            ca += pa[i].1;
            i += 1;
        }
        while j < pb.len() && pb[j].0 == v {
            cb += pb[j].1;
            j += 1;
        }
        d = d.max((ca as f64 / n as f64 - cb as f64 / m as f64).abs());
    }
    let ne = (n as f64 * m as f64) / (n + m) as f64;
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * d;
    Ks {
        d,
        p_value: kolmogorov_q(lambda),
        n,
        m,
    }
}

/// The Kolmogorov distribution's tail Q(λ) = 2 Σ (-1)^(k-1) exp(-2 k² λ²).
fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 0.2 {
        return 1.0;
    }
    let mut sum = 0.0;
    for k in 1..=100 {
        let kf = f64::from(k);
        let term = (-2.0 * kf * kf * lambda * lambda).exp();
        sum += if k % 2 == 1 { term } else { -term };
        if term < 1e-12 {
            break;
        }
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

/// One mode compared.
#[derive(Debug, Clone)]
pub struct ModeComparison {
    /// Mode.
    pub mode: String,
    /// Baseline summary.
    pub base: Summary,
    /// Candidate summary.
    pub cand: Summary,
    /// Latency histograms at 50% of PDR, if both have them.
    pub hists: Option<(Histogram<u64>, Histogram<u64>)>,
    /// KS on them.
    pub ks: Option<Ks>,
    /// Regressions found (empty: none).
    pub regressions: Vec<String>,
    /// Notes (significant but small changes...).
    pub notes: Vec<String>,
}

/// The histogram tagged `tag` (`lat50`...) of `dir/DUT.hlog`, if readable.
pub fn hist_at(dir: &Path, dut: &str, tag: &str) -> Option<Histogram<u64>> {
    results::read_hlog(&dir.join(format!("{dut}.hlog")))
        .ok()?
        .into_iter()
        .find(|(t, _)| t == tag)
        .map(|(_, h)| h)
}

/// Relative change from `base` to `cand` (0 when `base` is 0).
pub fn rel(base: f64, cand: f64) -> f64 {
    if base == 0.0 {
        0.0
    } else {
        (cand - base) / base
    }
}

/// What a summary measured, as a label and a key: mode, direction and frame size
/// (`internal (guest->guest, 64 B)`). Only summaries with the same one are compared.
pub fn measurement(s: &Summary) -> String {
    let size = if s.settings.imix {
        "IMIX".to_string()
    } else {
        format!("{} B", s.settings.frame_size)
    };
    format!("{} ({}, {size})", s.mode, s.direction)
}

/// The smallest throughput change two NDR/PDR searches can resolve: twice the coarser
/// search precision.
pub fn rate_resolution(base: &Summary, cand: &Summary) -> f64 {
    2.0 * base.settings.precision.max(cand.settings.precision)
}

/// Compare one mode: the latency histograms at 50% of PDR (KS test and p99 change) and
/// NDR, against the thresholds.
pub fn compare_mode(
    b: &Summary,
    c: &Summary,
    hists: Option<(Histogram<u64>, Histogram<u64>)>,
    dut: &str,
    t: &Thresholds,
) -> ModeComparison {
    let ks = hists.as_ref().map(|(x, y)| ks_two_sample(x, y));
    let mut regressions = Vec::new();
    let mut notes = Vec::new();
    if let (Some((hb, hc)), Some(k)) = (&hists, ks) {
        let (p99b, p99c) = (
            hb.value_at_quantile(0.99) as f64,
            hc.value_at_quantile(0.99) as f64,
        );
        let ch = rel(p99b, p99c);
        let significant = k.p_value < t.alpha;
        if significant && ch > t.p99 {
            regressions.push(format!(
                "p99 latency +{:.1}% (> {:.0}%), KS D={:.3} p={:.2e}",
                ch * 100.0,
                t.p99 * 100.0,
                k.d,
                k.p_value
            ));
        } else if significant && ch > 0.0 {
            notes.push(format!(
                "latency distribution differs (KS p={:.2e}) but p99 changed only {:+.1}%",
                k.p_value,
                ch * 100.0
            ));
        }
    }
    if let (Some(nb), Some(nc)) = (
        b.dut(dut).and_then(|d| d.ndr),
        c.dut(dut).and_then(|d| d.ndr),
    ) {
        let ch = rel(nb.pps, nc.pps);
        if -ch > t.ndr && -ch > rate_resolution(b, c) {
            regressions.push(format!("NDR {:.1}% (< -{:.0}%)", ch * 100.0, t.ndr * 100.0));
        }
    }
    ModeComparison {
        mode: b.mode.clone(),
        base: b.clone(),
        cand: c.clone(),
        hists,
        ks,
        regressions,
        notes,
    }
}

/// Compare every measurement (mode, direction, frame size) present in both result
/// folders.
///
/// # Errors
/// When a folder holds no readable summaries.
pub fn compare_dirs(
    base: &Path,
    cand: &Path,
    dut: &str,
    t: &Thresholds,
) -> Result<Vec<ModeComparison>> {
    let bs = results::load_summaries(base)?;
    let cs = results::load_summaries(cand)?;
    let mut out = Vec::new();
    for (bdir, b) in &bs {
        let Some((cdir, c)) = cs.iter().find(|(_, c)| measurement(c) == measurement(b)) else {
            continue;
        };
        let hists = match (hist_at(bdir, dut, "lat50"), hist_at(cdir, dut, "lat50")) {
            (Some(x), Some(y)) => Some((x, y)),
            _ => None,
        };
        out.push(compare_mode(b, c, hists, dut, t));
    }
    Ok(out)
}

fn fmt_change(b: f64, c: f64) -> String {
    if b == 0.0 {
        "-".into()
    } else {
        format!("{:+.1}%", rel(b, c) * 100.0)
    }
}

/// Print comparisons; true when there is no regression.
pub fn print(cmps: &[ModeComparison], dut: &str) -> bool {
    let mut ok = true;
    for c in cmps {
        print_table(c, dut);
        if c.regressions.is_empty() {
            println!("  verdict: ok");
        } else {
            ok = false;
            for r in &c.regressions {
                println!("  REGRESSION: {r}");
            }
        }
    }
    ok
}

/// Print one mode's rates, latency percentiles, KS test and notes (not the verdict).
pub fn print_table(c: &ModeComparison, dut: &str) {
    println!("mode {}, dut {dut}", measurement(&c.base));
    println!(
        "  {:<12} {:>12} {:>12} {:>9}",
        "", "baseline", "candidate", "change"
    );
    let (bd, cd) = (c.base.dut(dut), c.cand.dut(dut));
    for (name, f) in [
        (
            "NDR Mpps",
            (|d: &results::DutResult| d.ndr.map(|x| x.pps))
                as fn(&results::DutResult) -> Option<f64>,
        ),
        ("PDR Mpps", |d| d.pdr.map(|x| x.pps)),
    ] {
        if let (Some(b), Some(cv)) = (bd.and_then(f), cd.and_then(f)) {
            println!(
                "  {name:<12} {:>12.3} {:>12.3} {:>9}",
                b / 1e6,
                cv / 1e6,
                fmt_change(b, cv)
            );
        }
    }
    if let Some((hb, hc)) = &c.hists {
        for (name, q) in [
            ("p50 us", 0.5),
            ("p90 us", 0.9),
            ("p99 us", 0.99),
            ("p99.9 us", 0.999),
            ("max us", 1.0),
        ] {
            let (b, cv) = (
                hb.value_at_quantile(q) as f64 / 1e3,
                hc.value_at_quantile(q) as f64 / 1e3,
            );
            println!("  {name:<12} {b:>12.2} {cv:>12.2} {:>9}", fmt_change(b, cv));
        }
    }
    if let Some(k) = c.ks {
        println!(
            "  KS D={:.4} p={:.3e} (n={}, m={})",
            k.d, k.p_value, k.n, k.m
        );
    }
    for n in &c.notes {
        println!("  note: {n}");
    }
}

/// Run `vnet-bench compare`; Ok(false) on a regression (exit status 1).
///
/// # Errors
/// When the folders cannot be read or the plot written; with `--ab`, see [`super::ab::run`].
pub fn run(args: CompareArgs) -> Result<bool> {
    if args.ab.is_some() {
        return super::ab::run(&args);
    }
    let (Some(baseline), Some(candidate)) = (&args.baseline, &args.candidate) else {
        anyhow::bail!("give BASELINE and CANDIDATE result folders, or --ab OLD_BIN NEW_BIN");
    };
    let t = args.thresholds();
    let cmps = compare_dirs(baseline, candidate, &args.dut, &t)?;
    if cmps.is_empty() {
        anyhow::bail!(
            "no mode appears in both {} and {}",
            baseline.display(),
            candidate.display()
        );
    }
    let ok = print(&cmps, &args.dut);
    if let Some(p) = &args.plot {
        write_plot(p, &cmps, &args.dut)?;
    }
    Ok(ok)
}

/// Write [`plot::svg`] of `cmps` to `path`.
///
/// # Errors
/// When the file cannot be written.
pub fn write_plot(path: &Path, cmps: &[ModeComparison], dut: &str) -> Result<()> {
    std::fs::write(path, plot::svg(cmps, dut))
        .with_context(|| format!("could not write {}", path.display()))?;
    println!("plot written to {}", path.display());
    Ok(())
}
