//! Live `bench --new-flows` (connection setup rate) on NAT for vnet: a short, coarse run
//! (0.3 s trials, 50 % precision) with the sink counting distinct UDP port pairs
//! (`--check-flows`). Every frame that crossed the NAT must have arrived as a flow of its
//! own: a generator that repeats port pairs, or a NAT that folds new flows onto existing
//! mappings, fails it. Speed is measured, never asserted.
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

#[test]
fn bench_new_flows_through_vnet_nat_delivers_one_distinct_flow_per_frame() {
    if !privileged_or_skip("bench_new_flows_through_vnet_nat_delivers_one_distinct_flow_per_frame")
    {
        return;
    }
    let dir = TempDir::new("bench-newflows");
    let prefix = format!("tf{}", std::process::id() % 1000);
    let out = dir.0.to_str().unwrap().to_string();
    let a = Wrapper::parse_from([
        "bench",
        "--vnet-exe",
        env!("CARGO_BIN_EXE_vnet-bench"),
        "--trial",
        "0.3",
        "--precision",
        "0.5",
        "--prefix",
        &prefix,
        "--out",
        &out,
        "--mode",
        "nat",
        "--direction",
        "guest-to-inet",
        "--dut",
        "vnet",
        "--new-flows",
        "--check-flows",
    ])
    .args;
    bench::run(a).expect("bench runs");
    let s = bench::results::load_summaries(&dir.join("nat-guest-to-inet-64-new-flows"))
        .expect("summary written");
    let (_, s) = &s[0];
    assert!(s.settings.new_flows && s.settings.check_flows);
    let v = s.dut("vnet").expect("vnet measured");
    assert!(v.error.is_none(), "{:?}", v.error);
    assert!(
        v.pdr.is_some_and(|p| p.pps > 0.0),
        "no new flow crossed vnet's NAT"
    );
    // Every trial's frames at the sink: as many distinct port pairs as frames.
    let crossed: Vec<_> = v.trials.iter().filter(|t| t.received > 0).collect();
    assert!(!crossed.is_empty(), "no trial delivered anything");
    for t in &crossed {
        assert_eq!(
            t.distinct_flows, t.received,
            "a trial at {:.0} frames/s delivered {} frames but only {} distinct flows",
            t.offered_pps, t.received, t.distinct_flows
        );
    }
    // The latency trials, too (fresh vnet each): frames arrived.
    assert!(v.latency_at(50).is_some_and(|l| l.count > 0));
    // What bounded it is said, with vnet's table as the harness set it.
    let nf = v.new_flows.as_ref().expect("new_flows in summary.json");
    assert_eq!(nf.session_table, bench::NEW_FLOWS_SESSIONS as u64);
    assert!(nf
        .session_table_how
        .contains("restarted before every trial"));
    let cap = bench::new_flows_cap(nf.session_table, 0.3).expect("a table, a cap");
    assert!(nf.max_offered_pps > 0.0 && nf.max_offered_pps <= cap + 1.0);
    for t in &v.trials {
        assert!(
            t.sent as f64 <= nf.session_table as f64,
            "a trial sent {} frames, more than the {} sessions of the table",
            t.sent,
            nf.session_table
        );
    }
    assert!(!nf.bound_by.is_empty());
}
