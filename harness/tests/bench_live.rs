//! Live benchmark on AF_XDP: a short `bench` of the Internal mode for every DUT, in the
//! test's own namespaces. Checks that the machinery works (frames arrive, results are
//! written and read back); speed is measured, never asserted.
//!
//! `bench_from_env` (ignored) runs `vnet-bench bench` with the arguments in
//! `VNET_BENCH_ARGS`, for measuring before the subcommand is wired into the CLI:
//! `VNET_BENCH_ARGS="--mode internal --out /tmp/r" cargo test --release -p vnet-bench
//! --test bench_live -- --ignored --nocapture`.
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

fn args(extra: &[&str]) -> BenchArgs {
    let mut v = vec!["bench", "--vnet-exe", env!("CARGO_BIN_EXE_vnet-bench")];
    v.extend_from_slice(extra);
    Wrapper::parse_from(v).args
}

#[test]
fn bench_internal_short_run_writes_results() {
    if !privileged_or_skip("bench_internal_short_run_writes_results") {
        return;
    }
    let dir = TempDir::new("bench");
    let out = dir.0.to_str().unwrap().to_string();
    let prefix = format!("tq{}", std::process::id() % 1000);
    let a = args(&[
        "--mode",
        "internal",
        "--dut",
        "vnet",
        "--trial",
        "0.3",
        "--precision",
        "0.5",
        "--prefix",
        &prefix,
        "--out",
        &out,
    ]);
    bench::run(a).expect("bench runs");
    let s = bench::results::load_summaries(&dir.join("internal")).expect("summary written");
    let (_, s) = &s[0];
    let c = s.harness_ceiling.clone().expect("ceiling measured");
    assert!(
        c.rate.received_pps > 0.0,
        "the sink saw the generator's frames"
    );
    let v = s.dut("vnet").expect("vnet measured");
    assert!(v.error.is_none(), "{:?}", v.error);
    assert!(v.ndr.is_some() && v.pdr.is_some());
    let h =
        bench::results::read_hlog(&dir.join("internal").join("vnet.hlog")).expect("hlog written");
    assert!(h.iter().any(|(t, h)| t == "lat50" && !h.is_empty()));
    assert!(dir.join("internal").join("vnet-lat50.hgrm").exists());
}

#[test]
#[ignore = "measures; run by hand with VNET_BENCH_ARGS"]
fn bench_from_env() {
    if !privileged_or_skip("bench_from_env") {
        return;
    }
    let extra = std::env::var("VNET_BENCH_ARGS").unwrap_or_else(|_| "--mode internal".into());
    let words: Vec<&str> = extra.split_whitespace().collect();
    bench::run(args(&words)).expect("bench runs");
}
