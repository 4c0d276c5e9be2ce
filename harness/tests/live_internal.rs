//! Live test of the Internal mode on AF_XDP: real Linux stacks in the test's own
//! namespaces, joined by veth pairs to a dataplane namespace where two `vnet-bench run`
//! processes serve two internal networks (`intnet`: vm1, vm2; `other`: vm3, vm4).
//!
//! Needs root. Without it the test is skipped, unless `VNET_REQUIRE_PRIVILEGED` is set
//! (CI sets it), in which case it fails.

mod common;

use common::{ping, privileged_or_skip, sniff, sniffed, tcp_exchange};
use std::process::Command;
use vnet_bench::mainjob::Dataplane;
use vnet_bench::topo::{ip, netns_exec, Topology};

fn sniff_arp(netns: &str, ifname: &str, addr: &str) -> std::process::Child {
    sniff(netns, ifname, "1", &["arp", "and", "host", addr])
}

#[test]
fn internal_mode_live_ping_flood_and_isolation() {
    if !privileged_or_skip("internal_mode_live_ping_flood_and_isolation") {
        return;
    }
    let prefix = format!("ti{}", std::process::id() % 10000);
    let topo = Topology::build(
        &prefix,
        &[
            ("vm1", Some("192.168.60.11/24")),
            ("vm2", Some("192.168.60.12/24")),
            ("vm3", Some("192.168.60.13/24")),
            ("vm4", Some("192.168.60.14/24")),
        ],
    )
    .expect("topology");
    let [vm1, vm2, vm3, vm4] = ["vm1", "vm2", "vm3", "vm4"].map(|r| topo.endpoint(r).clone());
    let exe = env!("CARGO_BIN_EXE_vnet-bench");
    let mut intnet = Dataplane::start_exe(
        exe,
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "internal",
            "--network",
            "intnet",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--stats-interval",
            "0",
        ],
    )
    .expect("intnet dataplane starts");
    let mut other = Dataplane::start_exe(
        exe,
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "internal",
            "--network",
            "other",
            "--vm",
            &vm3.dp_ifname,
            "--vm",
            &vm4.dp_ifname,
            "--stats-interval",
            "0",
        ],
    )
    .expect("other dataplane starts");

    // The startup line reports the XDP attach and bind modes.
    let startup = intnet.log_so_far();
    assert!(
        startup.contains("xdp") && startup.contains("bind="),
        "startup line: {startup}"
    );

    // vm1 <-> vm2 on intnet, both directions; vm3 <-> vm4 on other.
    assert!(
        ping(&vm1.netns, "192.168.60.12", "3"),
        "vm1 cannot ping vm2 through intnet"
    );
    assert!(
        ping(&vm2.netns, "192.168.60.11", "3"),
        "vm2 cannot ping vm1 through intnet"
    );
    assert!(
        ping(&vm3.netns, "192.168.60.14", "3"),
        "vm3 cannot ping vm4 through other"
    );

    // ARP broadcasts flood: vm1 asks for an address nobody has; vm2 sees the request.
    let sniffer = sniff_arp(&vm2.netns, &vm2.ifname, "192.168.60.99");
    assert!(!ping(&vm1.netns, "192.168.60.99", "2"));
    let seen = sniffed(sniffer);
    assert!(
        seen.contains("who-has 192.168.60.99"),
        "vm2 did not see vm1's ARP broadcast: {seen:?}"
    );

    // Isolation: vm3 (network `other`) neither answers vm1 nor sees any frame from it.
    let sniffer = sniff(&vm3.netns, &vm3.ifname, "1", &["ether", "src", &vm1.mac]);
    assert!(
        !ping(&vm1.netns, "192.168.60.13", "2"),
        "vm1 reached vm3 on another network"
    );
    let seen = sniffed(sniffer);
    assert!(
        seen.trim().is_empty(),
        "vm3 saw traffic from intnet: {seen:?}"
    );

    // Default offloads, as users' containers have them: the endpoints' veths checksum
    // in "hardware", so their TCP leaves with partial checksums. TCP works both ways
    // because the dataplane completes them, and its counters say so.
    for e in [&vm1, &vm2] {
        let k = netns_exec(&e.netns, "ethtool", &["-k", &e.ifname]).expect("ethtool -k");
        let k = String::from_utf8_lossy(&k.stdout);
        assert!(
            k.contains("tx-checksumming: on"),
            "{} does not keep veth's default offloads: {k}",
            e.ifname
        );
    }
    assert!(
        tcp_exchange(&vm2.netns, "192.168.60.12", &vm1.netns, 5301),
        "TCP vm1 -> vm2 failed with default offloads"
    );
    assert!(
        tcp_exchange(&vm1.netns, "192.168.60.11", &vm2.netns, 5302),
        "TCP vm2 -> vm1 failed with default offloads"
    );

    // Clean stop: counters printed, XDP programs detached.
    let log = intnet.stop().expect("intnet stops cleanly on SIGINT");
    assert!(log.contains("final counters"), "no final counters: {log}");
    for e in [&vm1, &vm2] {
        let row = log
            .lines()
            .rev()
            .find(|l| l.split_whitespace().nth(1) == Some(e.dp_ifname.as_str()))
            .unwrap_or_else(|| panic!("no counters for {}: {log}", e.dp_ifname));
        let completed: u64 = row
            .split_whitespace()
            .find_map(|w| w.strip_prefix("csum_completed="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!(
            completed > 100,
            "{}: no partial checksums completed, so the test did not exercise offloads: {row}",
            e.dp_ifname
        );
    }
    other.stop().expect("other stops cleanly on SIGINT");
    for e in [&vm1, &vm2, &vm3, &vm4] {
        let out =
            ip(&["-n", topo.dp_netns(), "-d", "link", "show", &e.dp_ifname]).expect("link exists");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("prog/xdp"),
            "XDP program left on {}: {text}",
            e.dp_ifname
        );
    }
}

#[test]
fn run_refuses_missing_interface_in_one_sentence() {
    if !privileged_or_skip("run_refuses_missing_interface_in_one_sentence") {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_vnet-bench"))
        .args([
            "run",
            "--mode",
            "internal",
            "--vm",
            "vnbnosuch0",
            "--vm",
            "vnbnosuch1",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no interface named vnbnosuch0"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
