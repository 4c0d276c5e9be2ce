//! Live benchmark on AF_XDP: short `bench` runs (Internal with IMIX over 100k flows; NAT
//! both ways for vnet and the kernel), in the test's own namespaces. Checks that the machinery works (frames arrive, results are
//! written and read back); speed is measured, never asserted.
//!
//! Measurements themselves are made with `vnet-bench bench` (see the README).
//!
//! Needs root; skipped otherwise, failed instead when `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use clap::Parser;
use common::{privileged_or_skip, TempDir};
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
