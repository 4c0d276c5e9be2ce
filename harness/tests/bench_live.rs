//! Live benchmark on AF_XDP: short `bench` runs (Internal with IMIX over 100k flows, with
//! the harness floor at vnet's loads; NAT both ways for vnet and the kernel; NAT with
//! `--latency-only`; a run interrupted by Ctrl-C), in the test's own
//! namespaces. Checks that the machinery works (frames arrive, results are
//! written and read back); speed is measured, never asserted.
//!
//! Measurements themselves are made with `vnet-bench bench` (see the README).
//!
//! Needs root; skipped otherwise, failed instead when `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use clap::Parser;
use common::{privileged_or_skip, TempDir, Watched};
use vnet_bench::bench::{self, BenchArgs};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: BenchArgs,
}

/// A short, coarse run (0.3 s trials, 50% precision) in namespaces `PREFIX-*`, results
/// under `dir`, plus `extra`.
fn short_run(dir: &TempDir, prefix: &str, extra: &[&str]) -> BenchArgs {
    let out = dir.0.to_str().unwrap().to_string();
    let mut v = vec!["bench", "--vnet-exe", env!("CARGO_BIN_EXE_vnet-bench")];
    v.extend_from_slice(&["--trial", "0.3", "--precision", "0.5", "--prefix", prefix]);
    v.extend_from_slice(&["--out", &out]);
    v.extend_from_slice(extra);
    Wrapper::parse_from(v).args
}

#[test]
fn bench_internal_short_run_writes_results() {
    if !privileged_or_skip("bench_internal_short_run_writes_results") {
        return;
    }
    let dir = TempDir::new("bench");
    let prefix = format!("tq{}", std::process::id() % 1000);
    let a = short_run(
        &dir,
        &prefix,
        &[
            "--mode", "internal", "--dut", "vnet", "--imix", "--flows", "100000",
        ],
    );
    bench::run(a).expect("bench runs");
    let folder = dir.join("internal-guest-to-guest-imix");
    let s = bench::results::load_summaries(&folder).expect("summary written");
    let (_, s) = &s[0];
    let c = s.harness_ceiling.clone().expect("ceiling measured");
    assert!(
        c.rate.received_pps > 0.0,
        "the sink saw the generator's frames"
    );
    // IMIX 7:4:1 of 64/570/1518-byte frames: 349.8 bytes each on average without FCS.
    let imix_mean = (7.0 * 60.0 + 4.0 * 566.0 + 1514.0) / 12.0;
    let near_imix = |b: f64| (b - imix_mean).abs() < 0.02 * imix_mean;
    assert!(
        near_imix(c.rate.mean_frame_bytes),
        "the generator's IMIX reached the sink as {} bytes per frame, not {imix_mean:.1}",
        c.rate.mean_frame_bytes
    );
    let v = s.dut("vnet").expect("vnet measured");
    assert!(v.error.is_none(), "{:?}", v.error);
    assert!(v.ndr.is_some() && v.pdr.is_some());
    let at50 = v.latency_at(50).expect("latency at 50% of PDR");
    assert!(
        near_imix(at50.rate.mean_frame_bytes),
        "vnet forwarded IMIX as {} bytes per frame",
        at50.rate.mean_frame_bytes
    );
    let h = bench::results::read_hlog(&folder.join("vnet.hlog")).expect("hlog written");
    assert!(h.iter().any(|(t, h)| t == "lat50" && !h.is_empty()));
    assert!(folder.join("vnet-lat50.hgrm").exists());
    // The harness floor at the same loads, at the same offered rates as vnet.
    assert_eq!(s.settings.latency_reference, "vnet PDR");
    for pct in [10, 50, 90] {
        let f = s
            .floor_at(pct)
            .unwrap_or_else(|| panic!("no floor at {pct}%"));
        let l = v
            .latency_at(pct)
            .unwrap_or_else(|| panic!("no vnet latency at {pct}%"));
        assert!(f.count > 0, "the floor at {pct}% saw no frames");
        // The same requested rate for both (another load would be 5x or 9x off). What
        // each generator managed to offer may be lower, by what the receiver pushed
        // back (vnet near its PDR on a busy machine), never higher.
        let (a, b) = (f.rate.requested_pps, l.rate.requested_pps);
        assert!(
            a > 0.0 && (a - b).abs() <= 0.01 * b,
            "floor asked for {a:.0} frames/s at {pct}%, vnet {b:.0}: not the same load"
        );
        for (who, r) in [("floor", &f.rate), ("vnet", &l.rate)] {
            assert!(
                r.offered_pps > 0.0 && r.offered_pps <= 1.05 * r.requested_pps,
                "{who} offered {:.0} frames/s at {pct}% when asked for {:.0}",
                r.offered_pps,
                r.requested_pps
            );
        }
    }
    let fh = bench::results::read_hlog(&folder.join("floor.hlog")).expect("floor hlog written");
    assert_eq!(fh.len(), 3, "one floor interval per load");
}

/// `--latency-only`: vnet and the harness floor at one fixed rate, no search; vnet
/// reports which NAPI policy it ran with.
#[test]
fn bench_latency_only_measures_vnet_and_the_floor_at_one_rate() {
    if !privileged_or_skip("bench_latency_only_measures_vnet_and_the_floor_at_one_rate") {
        return;
    }
    let dir = TempDir::new("bench-lat");
    let prefix = format!("tl{}", std::process::id() % 1000);
    let a = short_run(
        &dir,
        &prefix,
        &[
            "--mode",
            "nat",
            "--dut",
            "vnet",
            "--latency-only",
            "--rate",
            "5000",
        ],
    );
    bench::run(a).expect("bench runs");
    let folder = dir.join("nat-guest-to-inet-64");
    let s = bench::results::load_summaries(&folder).expect("summary written");
    let (_, s) = &s[0];
    assert!(s.settings.latency_only && s.complete);
    assert!(s.harness_ceiling.is_none(), "no search, no ceiling");
    let v = s.dut("vnet").expect("vnet measured");
    assert!(v.error.is_none(), "{:?}", v.error);
    assert!(v.pdr.is_none() && v.trials.is_empty(), "no search was run");
    assert!(v.info.napi.starts_with("napi=auto"), "{}", v.info.napi);
    for (who, l) in [("vnet", v.latency.first()), ("floor", s.floor_at(0))] {
        let l = l.unwrap_or_else(|| panic!("{who}: no latency at the fixed rate"));
        assert_eq!(l.load_pct, 0);
        assert!(
            (l.rate.offered_pps - 5000.0).abs() < 1000.0,
            "{who} offered {} frames/s, not 5000",
            l.rate.offered_pps
        );
        assert!(l.count > 0 && l.p50_ns > 0, "{who}: no frames measured");
        assert!(l.rate.loss < 0.01, "{who} lost {:.2}%", l.rate.loss * 100.0);
    }
    for file in [
        "vnet.hlog",
        "floor.hlog",
        "vnet-fixed.hgrm",
        "floor-fixed.hgrm",
    ] {
        assert!(folder.join(file).exists(), "{file} written");
    }
}

/// Both NAT directions at once, vnet and the kernel's routing + nftables NAT: a PDR above
/// zero means each direction delivered at least 99.5% of its half of the load (a broken
/// direction loses half of everything), so translation out and the forwarded port in
/// both work for both DUTs.
#[test]
fn bench_nat_both_ways_for_vnet_and_the_kernel() {
    if !privileged_or_skip("bench_nat_both_ways_for_vnet_and_the_kernel") {
        return;
    }
    let dir = TempDir::new("bench-nat");
    let prefix = format!("tn{}", std::process::id() % 1000);
    let a = short_run(
        &dir,
        &prefix,
        &[
            "--mode",
            "nat",
            "--direction",
            "both",
            "--dut",
            "vnet,kernel",
        ],
    );
    bench::run(a).expect("bench runs");
    let s = bench::results::load_summaries(&dir.join("nat-both-64")).expect("summary written");
    let (_, s) = &s[0];
    assert_eq!(s.direction, "both");
    for dut in ["vnet", "kernel"] {
        let d = s.dut(dut).unwrap_or_else(|| panic!("{dut} measured"));
        assert!(d.error.is_none(), "{dut}: {:?}", d.error);
        let pdr = d.pdr.unwrap_or_else(|| panic!("{dut}: no PDR"));
        assert!(pdr.pps > 0.0, "{dut}: nothing crossed the NAT both ways");
        assert!(
            d.latency_at(50).is_some_and(|l| l.p50_ns > 0),
            "{dut}: latency recorded"
        );
    }
}

/// Ctrl-C in the middle of a search: the bench stops within seconds, writes what it had
/// measured (marked incomplete, the ceiling and the trials so far) and leaves no
/// namespace and no dataplane behind.
#[test]
fn bench_interrupted_keeps_what_was_measured_and_tears_down() {
    use std::process::Command;
    use std::time::Duration;
    if !privileged_or_skip("bench_interrupted_keeps_what_was_measured_and_tears_down") {
        return;
    }
    let dir = TempDir::new("bench-int");
    let prefix = format!("ti{}", std::process::id() % 1000);
    let out = dir.0.to_str().unwrap().to_string();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vnet-bench"));
    cmd.args([
        "bench", "--mode", "internal", "--dut", "vnet", "--trial", "0.5",
    ])
    .args(["--prefix", &prefix, "--out", &out]);
    let mut bench = Watched::spawn(cmd);
    // The progress lines go to stderr when it is not a terminal: wait for vnet's
    // second search trial, then interrupt.
    assert!(
        bench.wait_for_within("vnet trial 2:", Duration::from_secs(90)),
        "the search never got going: {}",
        bench.log()
    );
    bench.signal("-INT");
    let status = bench
        .exit_within(Duration::from_secs(30))
        .expect("bench still running 30 s after Ctrl-C");
    assert!(
        bench.wait_for_within(
            "interrupted: keeping what was measured",
            Duration::from_secs(2)
        ),
        "{}",
        bench.log()
    );
    assert!(
        status.success(),
        "bench failed after Ctrl-C: {}",
        bench.log()
    );

    let s = bench::results::load_summaries(&dir.join("internal-guest-to-guest-64"))
        .expect("what was measured is written");
    let (_, s) = &s[0];
    assert!(!s.complete, "an interrupted run is marked incomplete");
    assert!(
        s.harness_ceiling.is_some(),
        "the ceiling measured before is kept"
    );
    let v = s.dut("vnet").expect("vnet's partial result is kept");
    assert!(v.trials.len() >= 2, "the trials run so far are kept: {v:?}");

    let netns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left: Vec<String> = String::from_utf8_lossy(&netns.stdout)
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
    let procs = Command::new("pgrep")
        .args(["-f", "--", &prefix])
        .output()
        .unwrap();
    assert!(
        procs.stdout.is_empty(),
        "a dataplane was left running: {}",
        String::from_utf8_lossy(&procs.stdout)
    );
}
