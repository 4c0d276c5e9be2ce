//! Live tests of the bench's newer peers, in the tests' own namespaces: xdp-redirect's
//! programs wire the two ports of the DUT namespace to each other (and to nothing else)
//! and are detached again; short `bench` runs of xdp-redirect on Internal and of
//! kernel-flowtable on NAT deliver frames (a PDR above zero); kernel-flowtable is refused
//! in one sentence where the kernel bridges. On a kernel built without nftables
//! flowtables the NAT run must say exactly that, and a probe of its own confirms it.
//! Speed is measured, never asserted.
//!
//! Needs root; skipped otherwise, failed instead when `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use clap::Parser;
use common::{namespaces_of, privileged_or_skip, TempDir};
use std::process::Command;
use vnet_bench::bench::peers::{self, XdpPorts};
use vnet_bench::bench::{self, BenchArgs};
use vnet_bench::topo::{netns_exec, Offloads, Topology};

#[derive(Parser)]
struct Wrapper {
    #[command(flatten)]
    args: BenchArgs,
}

/// A short, coarse run (0.3 s trials, 50% precision, the search from 0.1 Mpps down, no
/// ceiling measurement) in namespaces `PREFIX-*`, results under `dir`, plus `extra`.
fn short_run(dir: &TempDir, prefix: &str, extra: &[&str]) -> BenchArgs {
    let out = dir.0.to_str().unwrap().to_string();
    let mut v = vec!["bench", "--vnet-exe", env!("CARGO_BIN_EXE_vnet-bench")];
    v.extend_from_slice(&["--trial", "0.3", "--precision", "0.5", "--prefix", prefix]);
    v.extend_from_slice(&["--no-ceiling", "--max-rate", "100000"]);
    v.extend_from_slice(&["--out", &out]);
    v.extend_from_slice(extra);
    Wrapper::parse_from(v).args
}

/// The XDP program names attached to the interfaces of a namespace (`ip -d link`).
fn xdp_programs(netns: &str) -> String {
    let out = netns_exec(netns, "ip", &["-d", "link", "show"]).expect("ip link");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("prog/xdp"))
        .map(str::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// xdp-redirect's programs on two ports of a topology: a ping between the endpoints
/// crosses (the DEVMAP names the DUT namespace's own ports, not the machine's), only
/// once each endpoint gives its port NAPI (GRO on), as the kernel requires of a veth
/// that takes redirected frames; dropping the programs detaches them.
#[test]
fn xdp_redirect_wires_the_two_ports_to_each_other_and_detaches_on_drop() {
    if !privileged_or_skip("xdp_redirect_wires_the_two_ports_to_each_other_and_detaches_on_drop") {
        return;
    }
    let prefix = format!("tw{}", std::process::id() % 1000);
    let topo = Topology::build_with(
        &prefix,
        &[
            ("vm1", Some("192.168.61.11/24")),
            ("vm2", Some("192.168.61.12/24")),
        ],
        Offloads::TxOff,
    )
    .expect("topology");
    let (e1, e2) = (topo.endpoint("vm1").clone(), topo.endpoint("vm2").clone());
    let dp = topo.dp_netns().to_string();
    for e in [&e1, &e2] {
        assert_eq!(
            peers::sink_side_napi(&e.netns, &e.ifname).unwrap(),
            None,
            "a fresh veth has neither XDP nor GRO"
        );
    }
    let ports = XdpPorts::attach(&dp, &[e1.dp_ifname.clone(), e2.dp_ifname.clone()])
        .expect("xdp-redirect attaches natively");
    let attached = xdp_programs(&dp);
    assert_eq!(
        attached.matches("vb_redirect").count(),
        2,
        "on both ports: {attached}"
    );
    // Without NAPI on the receiving ends the kernel drops every redirected frame.
    assert!(!common::ping(&e1.netns, "192.168.61.12", "2"));
    for e in [&e1, &e2] {
        netns_exec(&e.netns, "ethtool", &["-K", &e.ifname, "gro", "on"]).unwrap();
        assert_eq!(
            peers::sink_side_napi(&e.netns, &e.ifname).unwrap(),
            Some("GRO on")
        );
    }
    assert!(
        common::ping(&e1.netns, "192.168.61.12", "3"),
        "ARP and ICMP cross the wire both ways"
    );
    let (seen, missed) = ports.counts().unwrap();
    assert!(seen >= 6, "the programs ran for the frames: {seen}");
    assert_eq!(missed, 0);
    drop(ports);
    assert_eq!(xdp_programs(&dp), "", "detached on drop");
    assert!(
        !common::ping(&e1.netns, "192.168.61.12", "1"),
        "nothing joins the ports any more"
    );
    drop(topo);
    assert!(namespaces_of(&prefix).is_empty());
}

/// `--dut xdp-redirect` on Internal: frames arrive (PDR above zero), the run records
/// that the sink's end had NAPI and calls the DUT a wire, and leaves nothing behind.
#[test]
fn bench_xdp_redirect_on_internal_delivers_frames() {
    if !privileged_or_skip("bench_xdp_redirect_on_internal_delivers_frames") {
        return;
    }
    let dir = TempDir::new("bench-xdpr");
    let prefix = format!("tr{}", std::process::id() % 1000);
    let a = short_run(
        &dir,
        &prefix,
        &["--mode", "internal", "--dut", "xdp-redirect"],
    );
    bench::run(a).expect("bench runs");
    let s = bench::results::load_summaries(&dir.join("internal-guest-to-guest-64"))
        .expect("summary written");
    let (_, s) = &s[0];
    let d = s.dut("xdp-redirect").expect("xdp-redirect measured");
    assert!(d.error.is_none(), "{:?}", d.error);
    let pdr = d.pdr.expect("a PDR");
    assert!(pdr.pps > 0.0, "no frame crossed the XDP_REDIRECT wire");
    assert!(d.latency_at(50).is_some_and(|l| l.count > 0));
    assert_eq!(d.info.xdp_attach, "native");
    assert!(d.info.note.contains("L2 wire"), "{}", d.info.note);
    assert!(
        d.info
            .detail
            .iter()
            .any(|l| l.contains("(vm2)") && l.contains("has NAPI (a native XDP program)")),
        "{:?}",
        d.info.detail
    );
    assert!(namespaces_of(&prefix).is_empty(), "namespaces left behind");
}

/// True when this kernel takes an nftables flowtable, tried in a scratch namespace.
fn kernel_takes_flowtables(prefix: &str) -> bool {
    let ns = format!("{prefix}-ftprobe");
    let _ = Command::new("ip").args(["netns", "del", &ns]).output();
    let run = |args: &[&str]| {
        Command::new("ip")
            .args(args)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(run(&["netns", "add", &ns]));
    assert!(run(&[
        "-n", &ns, "link", "add", "fta", "type", "veth", "peer", "name", "ftb"
    ]));
    let file = std::env::temp_dir().join(format!("{ns}.nft"));
    std::fs::write(
        &file,
        peers::flowtable_ruleset(&["fta".to_string(), "ftb".to_string()]),
    )
    .unwrap();
    let ok = run(&["netns", "exec", &ns, "nft", "-f", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    assert!(run(&["netns", "del", &ns]));
    ok
}

/// `--dut kernel-flowtable` on NAT: frames cross the kernel's NAT with its flowtable (PDR
/// above zero). A kernel without flowtables cannot run it: then the run must name exactly
/// that, and the kernel must refuse a flowtable in a probe of this test's own too.
#[test]
fn bench_kernel_flowtable_on_nat_delivers_frames_or_names_the_missing_kernel_support() {
    if !privileged_or_skip(
        "bench_kernel_flowtable_on_nat_delivers_frames_or_names_the_missing_kernel_support",
    ) {
        return;
    }
    let dir = TempDir::new("bench-ft");
    let prefix = format!("tf{}", std::process::id() % 1000);
    let a = short_run(
        &dir,
        &prefix,
        &["--mode", "nat", "--dut", "kernel-flowtable"],
    );
    bench::run(a).expect("bench runs");
    let s =
        bench::results::load_summaries(&dir.join("nat-guest-to-inet-64")).expect("summary written");
    let (_, s) = &s[0];
    let d = s.dut("kernel-flowtable").expect("kernel-flowtable tried");
    let supported = kernel_takes_flowtables(&prefix);
    match &d.error {
        Some(e) if e.contains(peers::NO_FLOWTABLES) => {
            assert!(
                !supported,
                "the kernel takes flowtables, yet the bench said: {e}"
            );
            eprintln!(
                "note: this kernel has no nftables flowtables; checked that kernel-flowtable says so instead of measuring"
            );
        }
        Some(e) => panic!("kernel-flowtable failed: {e}"),
        None => {
            assert!(supported, "the probe refused a flowtable the bench loaded");
            let pdr = d.pdr.expect("a PDR");
            assert!(pdr.pps > 0.0, "nothing crossed the NAT with its flowtable");
            assert!(d.info.command.contains("flowtable"), "{}", d.info.command);
        }
    }
    assert!(namespaces_of(&prefix).is_empty(), "namespaces left behind");
}

/// kernel-flowtable where the kernel bridges (Internal): refused in one sentence before
/// anything is built.
#[test]
fn bench_kernel_flowtable_is_refused_where_the_kernel_bridges() {
    if !privileged_or_skip("bench_kernel_flowtable_is_refused_where_the_kernel_bridges") {
        return;
    }
    let dir = TempDir::new("bench-ftl2");
    let prefix = format!("tb{}", std::process::id() % 1000);
    let a = short_run(
        &dir,
        &prefix,
        &["--mode", "internal", "--dut", "kernel-flowtable"],
    );
    let e = bench::run(a).expect_err("refused").to_string();
    assert!(
        e.starts_with("kernel-flowtable does not apply to internal guest->guest"),
        "{e}"
    );
    assert!(e.contains("--dut kernel") && !e.contains(". "), "{e}");
    assert!(namespaces_of(&prefix).is_empty(), "nothing was built");
    assert!(!dir.join("internal-guest-to-guest-64").exists());
}
