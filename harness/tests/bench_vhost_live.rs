//! Live benchmark with the guests on vhost-user ports (`bench --port-kind vhost-user`):
//! the bench's own virtio driver connects to the sockets that vnet (`--vm
//! vhost-user:PATH`) and testpmd's vhost PMD serve. Short, coarse runs check that the
//! machinery works: frames cross each DUT guest to guest (Internal) and are translated
//! from a vhost-user guest to the XDP sink on the Internet side's veth (NAT), the
//! sequence numbers and sizes arrive as sent, results are written, and nothing is left
//! behind (sockets, namespaces). Speed is measured, never asserted.
//!
//! Needs root; skipped otherwise, failed instead when `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use clap::Parser;
use common::{namespaces_of, privileged_or_skip, TempDir};
use vnet_bench::bench::scenario::Direction;
use vnet_bench::bench::{self, BenchArgs};
use vnet_bench::cli::ModeName;

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: BenchArgs,
}

/// A short, coarse run (0.3 s trials, 50% precision, rates up to 0.2 Mpps) on
/// vhost-user, namespaces `PREFIX-*`, results under `dir`, plus `extra`.
fn short_run(dir: &TempDir, prefix: &str, extra: &[&str]) -> BenchArgs {
    let out = dir.0.to_str().unwrap().to_string();
    let mut v = vec!["bench", "--vnet-exe", env!("CARGO_BIN_EXE_vnet-bench")];
    v.extend_from_slice(&["--port-kind", "vhost-user", "--trial", "0.3"]);
    v.extend_from_slice(&["--precision", "0.5", "--max-rate", "200000"]);
    v.extend_from_slice(&["--prefix", prefix, "--out", &out]);
    v.extend_from_slice(extra);
    Wrapper::parse_from(v).args
}

/// The DUT delivered the generator's frames whole: a PDR, a trial with no loss at all,
/// latency at 50 % of vnet's PDR with every frame of the 60-byte size sent.
fn assert_delivered(s: &bench::results::Summary, dut: &str) {
    let d = s.dut(dut).unwrap_or_else(|| panic!("{dut} measured"));
    assert!(d.error.is_none(), "{dut}: {:?}", d.error);
    assert!(d.pdr.is_some_and(|p| p.pps > 0.0), "{dut}: no PDR");
    assert!(
        d.trials
            .iter()
            .any(|t| t.received > 0 && t.received == t.sent),
        "{dut}: no trial delivered every frame: {:?}",
        d.trials
    );
    assert!(
        d.trials
            .iter()
            .all(|t| t.received <= t.sent && t.out_of_order == 0),
        "{dut}: more frames than sent, or reordered, on one queue pair: {:?}",
        d.trials
    );
    let l = d
        .latency_at(50)
        .unwrap_or_else(|| panic!("{dut}: latency at 50%"));
    assert!(l.count > 0, "{dut}: no latency samples");
    assert!(
        (l.rate.mean_frame_bytes - 60.0).abs() < 0.01,
        "{dut}: frames arrived as {} bytes, not 60",
        l.rate.mean_frame_bytes
    );
}

#[test]
fn bench_vhost_user_guest_to_guest_through_vnet_and_the_vhost_pmd() {
    if !privileged_or_skip("bench_vhost_user_guest_to_guest_through_vnet_and_the_vhost_pmd") {
        return;
    }
    let dir = TempDir::new("bench-vhost");
    let prefix = format!("tv{}", std::process::id() % 1000);
    let a = short_run(
        &dir,
        &prefix,
        &[
            "--mode",
            "internal",
            "--dut",
            "vnet,testpmd",
            "--flows",
            "16",
        ],
    );
    bench::run(a).expect("bench runs");
    let folder = dir.join(&format!(
        "{}-vhost-user",
        bench::result_folder(ModeName::Internal, Direction::GuestToGuest, 64)
    ));
    let s = bench::results::load_summaries(&folder).expect("summary written");
    let (_, s) = &s[0];
    assert!(
        s.settings.generator.contains("vhost-user"),
        "{}",
        s.settings.generator
    );
    assert_delivered(s, "vnet");
    assert_delivered(s, "testpmd");
    assert!(s.dut("testpmd").unwrap().ratio_vs_vnet.is_some());
    assert!(folder.join("vnet.hlog").exists() && folder.join("testpmd.hlog").exists());
    // Each DUT's own output, kept beside the results: vnet's final counters per port,
    // testpmd's log.
    let log = std::fs::read_to_string(folder.join("vnet.log")).expect("vnet.log written");
    assert!(
        log.starts_with("--- round 1 ---") && log.contains("final counters"),
        "vnet.log: {log}"
    );
    let log = std::fs::read_to_string(folder.join("testpmd.log")).expect("testpmd.log written");
    assert!(log.contains("EAL"), "testpmd.log: {log}");
    assert!(namespaces_of(&prefix).is_empty(), "namespaces left behind");
    let sockets = std::env::temp_dir().join(format!("vnet-bench-{prefix}-vhost"));
    assert!(!sockets.exists(), "{} left behind", sockets.display());
}

#[test]
fn bench_vhost_user_nat_guest_to_the_internet_side_veth() {
    if !privileged_or_skip("bench_vhost_user_nat_guest_to_the_internet_side_veth") {
        return;
    }
    let dir = TempDir::new("bench-vhost-nat");
    let prefix = format!("tw{}", std::process::id() % 1000);
    let a = short_run(&dir, &prefix, &["--mode", "nat", "--flows", "64"]);
    bench::run(a).expect("bench runs");
    let folder = dir.join(&format!(
        "{}-vhost-user",
        bench::result_folder(ModeName::Nat, Direction::GuestToInet, 64)
    ));
    let s = bench::results::load_summaries(&folder).expect("summary written");
    let (_, s) = &s[0];
    assert_eq!(
        s.duts.len(),
        1,
        "vnet alone: no peer NATs a vhost-user guest"
    );
    assert!(
        s.settings.sink_attach.contains("xdp"),
        "{}",
        s.settings.sink_attach
    );
    assert_delivered(s, "vnet");
    assert!(namespaces_of(&prefix).is_empty(), "namespaces left behind");
}

#[test]
fn bench_vhost_user_refuses_what_it_does_not_measure_in_one_sentence() {
    if !privileged_or_skip("bench_vhost_user_refuses_what_it_does_not_measure_in_one_sentence") {
        return;
    }
    let dir = TempDir::new("bench-vhost-refuse");
    for (extra, says) in [
        (
            &["--mode", "nat", "--direction", "both"][..],
            "guest-to-guest and guest-to-inet",
        ),
        (
            &["--mode", "internal", "--dut", "kernel"][..],
            "no vhost-user backend",
        ),
        (
            &["--mode", "nat", "--dut", "testpmd"][..],
            "joins two guests",
        ),
        (&["--mode", "internal", "--imix"][..], "--imix"),
    ] {
        let e = bench::run(short_run(&dir, "tx0", extra))
            .expect_err("refused")
            .to_string();
        assert!(e.contains(says), "{extra:?}: {e}");
        assert!(!e.contains('\n'), "one sentence: {e}");
    }
    assert!(namespaces_of("tx0").is_empty());
}
