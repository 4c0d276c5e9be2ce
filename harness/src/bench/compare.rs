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

use super::plot;
use super::results::{self, Summary};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};

/// `vnet-bench compare` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CompareArgs {
    /// Baseline results: a folder of MODE/summary.json (or one mode's folder).
    pub baseline: PathBuf,
    /// Candidate results, the same shape.
    pub candidate: PathBuf,
    /// Draw both percentile curves and the rates into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Relative p99 increase that counts as large.
    #[arg(long, default_value_t = 0.10)]
    pub p99_threshold: f64,
    /// Relative NDR decrease that counts as large.
    #[arg(long, default_value_t = 0.10)]
    pub ndr_threshold: f64,
    /// Significance level of the KS test.
    #[arg(long, default_value_t = 0.01)]
    pub alpha: f64,
    /// The DUT compared.
    #[arg(long, default_value = "vnet")]
    pub dut: String,
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

fn hist_at(dir: &Path, dut: &str, tag: &str) -> Option<Histogram<u64>> {
    results::read_hlog(&dir.join(format!("{dut}.hlog")))
        .ok()?
        .into_iter()
        .find(|(t, _)| t == tag)
        .map(|(_, h)| h)
}

fn rel(base: f64, cand: f64) -> f64 {
    if base == 0.0 {
        0.0
    } else {
        (cand - base) / base
    }
}

/// Compare every mode present in both result folders.
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
        let Some((cdir, c)) = cs
            .iter()
            .find(|(_, c)| c.mode == b.mode && c.direction == b.direction)
        else {
            continue;
        };
        let hists = match (hist_at(bdir, dut, "lat50"), hist_at(cdir, dut, "lat50")) {
            (Some(x), Some(y)) => Some((x, y)),
            _ => None,
        };
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
            let resolution = 2.0 * b.settings.precision.max(c.settings.precision);
            if -ch > t.ndr && -ch > resolution {
                regressions.push(format!("NDR {:.1}% (< -{:.0}%)", ch * 100.0, t.ndr * 100.0));
            }
        }
        out.push(ModeComparison {
            mode: b.mode.clone(),
            base: b.clone(),
            cand: c.clone(),
            hists,
            ks,
            regressions,
            notes,
        });
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
        println!("mode {} ({}), dut {dut}", c.mode, c.base.direction);
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

/// Run `vnet-bench compare`; Ok(false) on a regression (exit status 1).
///
/// # Errors
/// When the folders cannot be read or the plot written.
pub fn run(args: CompareArgs) -> Result<bool> {
    let t = Thresholds {
        p99: args.p99_threshold,
        ndr: args.ndr_threshold,
        alpha: args.alpha,
    };
    let cmps = compare_dirs(&args.baseline, &args.candidate, &args.dut, &t)?;
    if cmps.is_empty() {
        anyhow::bail!(
            "no mode appears in both {} and {}",
            args.baseline.display(),
            args.candidate.display()
        );
    }
    let ok = print(&cmps, &args.dut);
    if let Some(p) = &args.plot {
        std::fs::write(p, plot::svg(&cmps, &args.dut))
            .with_context(|| format!("could not write {}", p.display()))?;
        println!("plot written to {}", p.display());
    }
    Ok(ok)
}
