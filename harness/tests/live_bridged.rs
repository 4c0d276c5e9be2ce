//! Live test of the Bridged mode on AF_XDP: two guests, the host and a server in `inet`
//! (all on 198.18.0.0/24, the benchmarking range) reach each other through the bridge with
//! ping and a real TCP exchange (iperf3), in both directions.
//!
//! Needs root; skipped otherwise, failed instead when `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use common::{ping, privileged_or_skip, tcp_exchange};
use vnet_bench::mainjob::Dataplane;
use vnet_bench::topo::Topology;

#[test]
fn bridged_live_everyone_reaches_everyone() {
    if !privileged_or_skip("bridged_live_everyone_reaches_everyone") {
        return;
    }
    let prefix = format!("tb{}", std::process::id() % 10000);
    let hosts = [
        ("vm1", "198.18.0.11"),
        ("vm2", "198.18.0.12"),
        ("host", "198.18.0.254"),
        ("inet", "198.18.0.1"),
    ];
    let spec: Vec<(&str, Option<String>)> = hosts
        .iter()
        .map(|(r, a)| (*r, Some(format!("{a}/24"))))
        .collect();
    let spec_ref: Vec<(&str, Option<&str>)> =
        spec.iter().map(|(r, a)| (*r, a.as_deref())).collect();
    let topo = Topology::build(&prefix, &spec_ref).expect("topology");
    let e = |r: &str| topo.endpoint(r).clone();
    let (vm1, vm2, host, inet) = (e("vm1"), e("vm2"), e("host"), e("inet"));
    let mut dp = Dataplane::start_exe(
        env!("CARGO_BIN_EXE_vnet-bench"),
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "bridged",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--host",
            &host.dp_ifname,
            "--uplink",
            &inet.dp_ifname,
            "--stats-interval",
            "0",
        ],
    )
    .expect("bridged dataplane starts");
    for (from, _) in &hosts {
        for (to, addr) in &hosts {
            if from != to {
                assert!(
                    ping(&topo.endpoint(from).netns, addr, "1"),
                    "{from} cannot ping {to} ({addr})"
                );
            }
        }
    }
    let mut port = 5201;
    for (a, b) in [("vm1", "inet"), ("vm2", "host"), ("vm1", "vm2")] {
        for (client, server) in [(a, b), (b, a)] {
            let addr = hosts.iter().find(|(r, _)| *r == server).unwrap().1;
            port += 1;
            assert!(
                tcp_exchange(
                    &topo.endpoint(server).netns,
                    addr,
                    &topo.endpoint(client).netns,
                    port
                ),
                "TCP {client} -> {server} failed"
            );
        }
    }
    let log = dp.stop().expect("stops cleanly");
    assert!(log.contains("final counters"), "{log}");
}
