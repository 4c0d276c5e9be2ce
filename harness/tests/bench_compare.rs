//! `vnet-bench compare` on planted results (no privileges needed): a latency histogram
//! shifted by a known amount is flagged, two samples of the same distribution are not,
//! and an NDR drop beyond the threshold is flagged.

use hdrhistogram::Histogram;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use vnet_bench::bench::compare::{compare_dirs, ks_two_sample, Thresholds};
use vnet_bench::bench::results::{self, DutResult, Summary};
use vnet_bench::bench::search::Found;
use vnet_bench::bench::{sink, write_results};

/// xorshift64*: a fixed, dependency-free random source.
struct Rng(u64);
impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Latencies like a dataplane's: log-normal around 20 us with a tail, times `scale`.
fn sample(seed: u64, n: usize, scale: f64) -> Histogram<u64> {
    let mut rng = Rng(seed);
    let mut h = sink::new_histogram();
    for _ in 0..n {
        // Box-Muller.
        let (u1, u2) = (rng.unit().max(1e-12), rng.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        let v = 20_000.0 * (0.35 * z).exp() * scale;
        h.record(v as u64).unwrap();
    }
    h
}

fn write(dir: &Path, h: &Histogram<u64>, ndr: f64) {
    let found = |pps| Found {
        pps,
        loss: 0.0,
        upper_pps: pps * 1.02,
    };
    let mut s = Summary {
        schema: results::SCHEMA.into(),
        mode: "internal".into(),
        direction: "guest->guest".into(),
        complete: true,
        ..Summary::default()
    };
    s.settings.precision = 0.02;
    let mut lp = results::latency_point(h, 50, Default::default());
    lp.hgrm = "vnet-lat50.hgrm".into();
    s.duts.push(DutResult {
        dut: "vnet".into(),
        ndr: Some(found(ndr)),
        pdr: Some(found(ndr * 1.05)),
        latency: vec![lp],
        ..DutResult::default()
    });
    write_results(
        &dir.join("internal"),
        &s,
        &[("vnet".into(), vec![(50, h.clone())])],
        SystemTime::now(),
        Duration::from_secs(2),
    )
    .unwrap();
}

struct Scratch(PathBuf);
impl Scratch {
    fn new(name: &str) -> Scratch {
        let p = std::env::temp_dir().join(format!("vnet-cmp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        Scratch(p)
    }
}
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn same_distribution_is_not_a_regression() {
    let (a, b) = (Scratch::new("same-a"), Scratch::new("same-b"));
    write(&a.0, &sample(1, 200_000, 1.0), 1.0e6);
    write(&b.0, &sample(2, 200_000, 1.0), 0.99e6);
    let c = compare_dirs(&a.0, &b.0, "vnet", &Thresholds::default()).unwrap();
    assert_eq!(c.len(), 1);
    assert!(c[0].regressions.is_empty(), "{:?}", c[0].regressions);
    let ks = c[0].ks.unwrap();
    assert!(ks.d < 0.01, "{ks:?}");
}

#[test]
fn planted_latency_shift_is_a_regression() {
    let (a, b) = (Scratch::new("shift-a"), Scratch::new("shift-b"));
    write(&a.0, &sample(1, 200_000, 1.0), 1.0e6);
    write(&b.0, &sample(2, 200_000, 1.25), 1.0e6);
    let c = compare_dirs(&a.0, &b.0, "vnet", &Thresholds::default()).unwrap();
    assert_eq!(c[0].regressions.len(), 1, "{:?}", c[0].regressions);
    assert!(c[0].regressions[0].contains("p99"));
    assert!(c[0].ks.unwrap().p_value < 1e-6);
    // A 5% shift is significant (KS) but not large: noted, not failed.
    let d = Scratch::new("shift-d");
    write(&d.0, &sample(3, 200_000, 1.05), 1.0e6);
    let c = compare_dirs(&a.0, &d.0, "vnet", &Thresholds::default()).unwrap();
    assert!(c[0].regressions.is_empty(), "{:?}", c[0].regressions);
    assert!(!c[0].notes.is_empty());
}

#[test]
fn ndr_drop_is_a_regression_and_the_plot_draws_both() {
    let (a, b) = (Scratch::new("ndr-a"), Scratch::new("ndr-b"));
    let h = sample(1, 50_000, 1.0);
    write(&a.0, &h, 1.0e6);
    write(&b.0, &h, 0.8e6);
    let c = compare_dirs(&a.0, &b.0, "vnet", &Thresholds::default()).unwrap();
    assert!(
        c[0].regressions.iter().any(|r| r.starts_with("NDR")),
        "{:?}",
        c[0].regressions
    );
    let svg = vnet_bench::bench::plot::svg(&c, "vnet");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 2);
}

#[test]
fn ks_of_identical_histograms_is_zero() {
    let h = sample(9, 10_000, 1.0);
    let k = ks_two_sample(&h, &h);
    assert_eq!(k.d, 0.0);
    assert_eq!(k.p_value, 1.0);
}
