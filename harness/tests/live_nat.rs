//! Live tests of NAT and NAT Network on AF_XDP with real stacks: udhcpc leases, ping to
//! the gateway, TCP and UDP (iperf3) to a server in `inet` arriving from the external
//! address, DNS through the proxy answered by dnsmasq in `inet`, port forwards from `inet`
//! and from the host (and an unforwarded port that stays closed), rules added and removed
//! while running, NAT guests isolated from each other, NAT Network guests reaching each
//! other.
//!
//! Needs root; skipped otherwise, failed instead when `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use common::{ping, privileged_or_skip, sniff, sniffed};
use std::process::{Command, Stdio};
use std::time::Duration;
use vnet_bench::mainjob::Dataplane;
use vnet_bench::scenario::{self, Scratch};
use vnet_bench::topo::{netns_exec, Endpoint, Topology};

const EXE: &str = env!("CARGO_BIN_EXE_vnet-bench");

/// A child process killed when the guard goes (test end or panic).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Two DHCP guests and a server beyond the uplink.
fn guests_and_inet(prefix: &str) -> (Topology, [Endpoint; 3]) {
    let topo = Topology::build(
        prefix,
        &[
            ("vm1", None),
            ("vm2", None),
            ("inet", Some("198.18.0.1/24")),
        ],
    )
    .expect("topology");
    let ends = ["vm1", "vm2", "inet"].map(|r| topo.endpoint(r).clone());
    (topo, ends)
}

fn lease(vm: &Endpoint, script: &str) -> String {
    scenario::lease(vm, script).unwrap_or_else(|e| panic!("udhcpc on {}: {e}", vm.role))
}

fn iperf_server(netns: &str, addr: &str, port: u16) -> std::process::Child {
    scenario::iperf_server(netns, addr, port).expect("iperf3 server")
}

fn iperf_client(netns: &str, addr: &str, port: u16, udp: bool) -> bool {
    if udp {
        scenario::iperf_udp_client(netns, addr, port, 1).is_some()
    } else {
        scenario::iperf_client(netns, addr, port, 1).is_some()
    }
}

/// A one-shot TCP connect from `netns` to `addr:port` (busybox nc, 2 s).
fn connects(netns: &str, addr: &str, port: u16) -> bool {
    let listener_port = port.to_string();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "timeout",
            "3",
            "busybox",
            "nc",
            "-w",
            "2",
            addr,
            &listener_port,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn natpf(control: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(EXE)
        .args(["natpf", "--control", control])
        .args(args)
        .output()
        .expect("natpf runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

#[test]
fn nat_live_dhcp_translation_dns_forwarding_isolation() {
    if !privileged_or_skip("nat_live_dhcp_translation_dns_forwarding_isolation") {
        return;
    }
    let dir = Scratch::new("nat").expect("scratch");
    let prefix = format!("tn{}", std::process::id() % 10000);
    let topo = Topology::build(
        &prefix,
        &[
            ("vm1", None),
            ("vm2", None),
            ("host", Some("198.19.0.1/24")),
            ("inet", Some("198.18.0.1/24")),
        ],
    )
    .expect("topology");
    let [vm1, vm2, host, inet] = ["vm1", "vm2", "host", "inet"].map(|r| topo.endpoint(r).clone());
    // A DNS server beyond the uplink.
    // Killed on drop, so a failing assertion does not leave it running.
    let _dnsmasq = KillOnDrop(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &inet.netns,
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--listen-address=198.18.0.1",
                "--bind-interfaces",
                "--address=/example.test/198.18.0.77",
                "--pid-file=",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq runs"),
    );
    let control = dir.join("nat.sock").display().to_string();
    let mut dp = Dataplane::start_exe(
        EXE,
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "nat",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--host",
            &host.dp_ifname,
            "--uplink",
            &inet.dp_ifname,
            "--external-ip",
            "198.18.0.2/24",
            "--gateway",
            "198.18.0.1",
            "--dns",
            "198.18.0.1",
            "--pf",
            "fwd,tcp,,2222,,5201",
            "--control",
            &control,
            "--stats-interval",
            "0",
        ],
    )
    .expect("nat dataplane starts");
    let s = scenario::udhcpc_script(&dir).expect("udhcpc script");
    assert_eq!(lease(&vm1, &s), "10.0.2.15", "vm1's lease");
    assert_eq!(
        lease(&vm2, &s),
        "10.0.2.15",
        "vm2's lease (its own private NAT)"
    );
    assert!(
        ping(&vm1.netns, "10.0.2.2", "2"),
        "vm1 cannot ping its gateway"
    );

    // TCP and UDP to inet arrive from the external address.
    let srv = iperf_server(&inet.netns, "198.18.0.1", 5301);
    assert!(
        iperf_client(&vm1.netns, "198.18.0.1", 5301, false),
        "TCP vm1 -> inet failed"
    );
    let log = scenario::server_log(srv);
    assert!(
        log.contains("Accepted connection from 198.18.0.2"),
        "server did not see the external address: {log}"
    );
    let srv = iperf_server(&inet.netns, "198.18.0.1", 5302);
    assert!(
        iperf_client(&vm2.netns, "198.18.0.1", 5302, true),
        "UDP vm2 -> inet failed"
    );
    let log = scenario::server_log(srv);
    assert!(
        log.contains("198.18.0.2"),
        "UDP test not from the external address: {log}"
    );

    // DNS through the proxy at 10.0.2.3.
    // (-type=a: dnsmasq without upstream refuses the AAAA query busybox also sends.)
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &vm1.netns,
            "timeout",
            "5",
            "busybox",
            "nslookup",
            "-type=a",
            "example.test",
            "10.0.2.3",
        ])
        .output()
        .expect("nslookup runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("198.18.0.77"),
        "DNS through the proxy failed: {text}"
    );

    // Port forward 2222 -> vm1:5201, from inet and from the host; 2223 stays closed.
    let srv = iperf_server(&vm1.netns, "10.0.2.15", 5201);
    assert!(
        iperf_client(&inet.netns, "198.18.0.2", 2222, false),
        "forwarded port unreachable from inet"
    );
    scenario::server_log(srv);
    let srv = iperf_server(&vm1.netns, "10.0.2.15", 5201);
    assert!(
        iperf_client(&host.netns, "198.19.0.2", 2222, false),
        "forwarded port unreachable from the host"
    );
    scenario::server_log(srv);
    assert!(
        !connects(&inet.netns, "198.18.0.2", 2223),
        "an unforwarded port is open"
    );

    // Rules while running: add 8080 -> vm1:5201, use it, delete it.
    natpf(&control, &["add", "web,tcp,,8080,,5201"]).expect("rule added");
    let err = natpf(&control, &["add", "clash,tcp,,8080,,22"]).expect_err("colliding rule refused");
    assert!(err.contains("clash") && err.contains("web"), "{err}");
    std::thread::sleep(Duration::from_millis(300));
    let srv = iperf_server(&vm1.netns, "10.0.2.15", 5201);
    assert!(
        iperf_client(&inet.netns, "198.18.0.2", 8080, false),
        "rule added at run time does not work"
    );
    scenario::server_log(srv);
    natpf(&control, &["delete", "web"]).expect("rule deleted");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !connects(&inet.netns, "198.18.0.2", 8080),
        "deleted rule still forwards"
    );

    // NAT guests never meet: nothing vm1 sends reaches vm2.
    let sniffer = sniff(&vm2.netns, &vm2.ifname, "1", &["ether", "src", &vm1.mac]);
    let _ = netns_exec(
        &vm1.netns,
        "ping",
        &["-c", "2", "-b", "-W", "1", "10.0.2.255"],
    );
    let _ = netns_exec(&vm1.netns, "ping", &["-c", "2", "-W", "1", "10.0.2.16"]);
    let seen = sniffed(sniffer);
    assert!(seen.trim().is_empty(), "vm2 saw vm1's frames: {seen}");

    let log = dp.stop().expect("stops cleanly");
    assert!(log.contains("final counters"));
}

#[test]
fn nat_network_live_guests_meet_and_translate() {
    if !privileged_or_skip("nat_network_live_guests_meet_and_translate") {
        return;
    }
    let dir = Scratch::new("natnet").expect("scratch");
    let prefix = format!("tw{}", std::process::id() % 10000);
    let (topo, [vm1, vm2, inet]) = guests_and_inet(&prefix);
    let mut dp = Dataplane::start_exe(
        EXE,
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "nat-network",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--uplink",
            &inet.dp_ifname,
            "--external-ip",
            "198.18.0.2/24",
            "--gateway",
            "198.18.0.1",
            "--pf",
            "fwd:tcp:[]:2222:[10.0.2.4]:5201",
            "--control",
            &dir.join("nn.sock").display().to_string(),
            "--stats-interval",
            "0",
        ],
    )
    .expect("nat-network dataplane starts");
    let s = scenario::udhcpc_script(&dir).expect("udhcpc script");
    let a1 = lease(&vm1, &s);
    let a2 = lease(&vm2, &s);
    for a in [&a1, &a2] {
        let last: u8 = a
            .strip_prefix("10.0.2.")
            .and_then(|h| h.parse().ok())
            .expect("10.0.2.x");
        assert!((4..=254).contains(&last), "{a} outside the pool");
    }
    assert_ne!(a1, a2);
    assert!(
        ping(&vm1.netns, &a2, "2"),
        "NAT Network guests cannot reach each other"
    );
    assert!(
        ping(&vm2.netns, "10.0.2.1", "2"),
        "router 10.0.2.1 does not answer"
    );
    let srv = iperf_server(&inet.netns, "198.18.0.1", 5303);
    assert!(
        iperf_client(&vm2.netns, "198.18.0.1", 5303, false),
        "TCP vm2 -> inet failed"
    );
    let log = scenario::server_log(srv);
    assert!(log.contains("Accepted connection from 198.18.0.2"), "{log}");
    if a1 == "10.0.2.4" {
        let srv = iperf_server(&vm1.netns, &a1, 5201);
        assert!(
            iperf_client(&inet.netns, "198.18.0.2", 2222, false),
            "forwarded port unreachable"
        );
        scenario::server_log(srv);
    }
    dp.stop().expect("stops cleanly");
}

#[test]
fn nat_live_two_workers_translate_every_flow() {
    if !privileged_or_skip("nat_live_two_workers_translate_every_flow") {
        return;
    }
    let dir = Scratch::new("nat2w").expect("scratch");
    let prefix = format!("tv{}", std::process::id() % 10000);
    let (topo, [vm1, vm2, inet]) = guests_and_inet(&prefix);
    // Ports 0 (vm1) and 2 (uplink) on worker 0, port 1 (vm2) on worker 1.
    let mut dp = Dataplane::start_exe(
        EXE,
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "nat",
            "--cores",
            "0,1",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--uplink",
            &inet.dp_ifname,
            "--external-ip",
            "198.18.0.2/24",
            "--gateway",
            "198.18.0.1",
            "--pf",
            "vm2:fwd,tcp,,2222,,5201",
            "--control",
            &dir.join("c.sock").display().to_string(),
            "--stats-interval",
            "0",
        ],
    )
    .expect("two-worker nat dataplane starts");
    let s = scenario::udhcpc_script(&dir).expect("udhcpc script");
    lease(&vm1, &s);
    lease(&vm2, &s);
    for (i, vm) in [&vm1, &vm2].into_iter().enumerate() {
        assert!(
            ping(&vm.netns, "198.18.0.1", "3"),
            "{} cannot ping inet",
            vm.role
        );
        let port = 5310 + i as u16;
        let srv = iperf_server(&inet.netns, "198.18.0.1", port);
        assert!(
            iperf_client(&vm.netns, "198.18.0.1", port, false),
            "TCP {} -> inet failed",
            vm.role
        );
        assert!(scenario::server_log(srv).contains("Accepted connection from 198.18.0.2"));
    }
    let srv = iperf_server(&vm2.netns, "10.0.2.15", 5201);
    assert!(
        iperf_client(&inet.netns, "198.18.0.2", 2222, false),
        "forward to vm2 (worker 1) failed"
    );
    scenario::server_log(srv);
    let log = dp.stop().expect("stops cleanly");
    assert!(log.contains("2 worker(s)"), "{log}");
}
