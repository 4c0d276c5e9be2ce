//! Live test of the Host-only mode on AF_XDP with real DHCP clients: udhcpc (busybox),
//! dhclient (isc-dhcp-client) and dhcpcd each obtain a lease from the dataplane's DHCP
//! server, renew it and release it; guests and the host (192.168.56.1 in its own
//! namespace) ping each other; a guest gets its address back after a dataplane restart
//! with a lease file. Also: Internal with `--dhcp` serves udhcpc the same way.
//!
//! Needs root; skipped otherwise, failed instead when `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use common::{addr_of, ping, privileged_or_skip, script, TempDir, Watched};
use std::process::Command;
use std::time::Duration;
use vnet_bench::mainjob::Dataplane;
use vnet_bench::topo::{netns_exec, Endpoint, Topology};

const EXE: &str = env!("CARGO_BIN_EXE_vnet-bench");

/// A udhcpc script that configures the address it is given (busybox ships none).
fn udhcpc_script(dir: &TempDir) -> String {
    let path = dir.join("udhcpc.sh");
    script(
        &path,
        r#"case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;
esac
echo "udhcpc-event $1 ${ip:-}""#,
    );
    path.display().to_string()
}

/// A dhclient script that configures only the address (never /etc/resolv.conf).
fn dhclient_script(dir: &TempDir) -> String {
    let path = dir.join("dhclient.sh");
    script(
        &path,
        r#"case "$reason" in
  BOUND|RENEW|REBIND|REBOOT) ip -4 addr flush dev "$interface"; ip addr add "$new_ip_address/24" dev "$interface" ;;
  RELEASE|EXPIRE|STOP) ip -4 addr flush dev "$interface" ;;
esac
echo "dhclient-event $reason ${new_ip_address:-}""#,
    );
    path.display().to_string()
}

fn in_pool(addr: &str) -> bool {
    addr.strip_prefix("192.168.56.")
        .and_then(|h| h.parse::<u8>().ok())
        .is_some_and(|h| (101..=254).contains(&h))
}

fn output(netns: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .output()
        .expect("runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// udhcpc: obtain a lease, renew it (SIGUSR1: udhcpc's "renew now"), release it on
/// exit (-R, SIGTERM). Returns the address it held.
fn udhcpc_cycle(vm: &Endpoint, script: &str) -> String {
    let mut c = Watched::in_netns(
        &vm.netns,
        &[
            "busybox", "udhcpc", "-f", "-R", "-t", "5", "-T", "1", "-i", &vm.ifname, "-s", script,
        ],
    );
    let bound = c.wait_for("udhcpc-event bound");
    c.signal("-USR1");
    let renewed = bound && c.wait_for("udhcpc-event renew");
    let addr = c
        .log()
        .lines()
        .find(|l| l.starts_with("udhcpc-event bound"))
        .map(|l| l.rsplit(' ').next().unwrap().to_string());
    let text = c.finish();
    assert!(bound, "udhcpc did not get a lease: {text}");
    assert!(renewed, "udhcpc did not renew: {text}");
    assert!(text.contains("release"), "udhcpc did not release: {text}");
    addr.unwrap()
}

fn dhcp_stats(log: &str) -> String {
    log.lines()
        .find(|l| l.starts_with("dhcp "))
        .unwrap_or("")
        .to_string()
}

fn stat(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn host_only_live_dhcp_clients_and_reachability() {
    if !privileged_or_skip("host_only_live_dhcp_clients_and_reachability") {
        return;
    }
    let dir = TempDir::new("hostonly");
    let prefix = format!("th{}", std::process::id() % 10000);
    let topo = Topology::build(
        &prefix,
        &[
            ("vm1", None),
            ("vm2", None),
            ("host", Some("192.168.56.1/24")),
        ],
    )
    .expect("topology");
    let [vm1, vm2, host] = ["vm1", "vm2", "host"].map(|r| topo.endpoint(r).clone());
    let lease_file = dir.join("leases");
    let lease_arg = lease_file.display().to_string();
    let args = [
        "run",
        "--mode",
        "host-only",
        "--vm",
        &vm1.dp_ifname,
        "--vm",
        &vm2.dp_ifname,
        "--host",
        &host.dp_ifname,
        "--lease-time",
        "6",
        "--lease-file",
        &lease_arg,
        "--stats-interval",
        "0",
    ];
    let mut dp =
        Dataplane::start_exe(EXE, topo.dp_netns(), &args).expect("host-only dataplane starts");
    let uscript = udhcpc_script(&dir);
    let dscript = dhclient_script(&dir);

    // 1. udhcpc on vm1: lease in the pool, renewal, release.
    let a1 = udhcpc_cycle(&vm1, &uscript);
    assert!(in_pool(&a1), "udhcpc got {a1}, outside 192.168.56.101-254");

    // 2. dhclient on vm2: lease, renewal (-d stays in the foreground), then release (-r).
    let lf = dir.join("dhclient.leases").display().to_string();
    let pf = dir.join("dhclient.pid").display().to_string();
    let (_, text) = output(
        &vm2.netns,
        &[
            "timeout",
            "-s",
            "TERM",
            "9",
            "dhclient",
            "-d",
            "-v",
            "-4",
            "-sf",
            &dscript,
            "-lf",
            &lf,
            "-pf",
            &pf,
            &vm2.ifname,
        ],
    );
    assert!(
        text.contains("dhclient-event BOUND") || text.contains("dhclient-event REBOOT"),
        "dhclient got no lease: {text}"
    );
    assert!(
        text.contains("dhclient-event RENEW"),
        "dhclient did not renew: {text}"
    );
    let (_, rel) = output(
        &vm2.netns,
        &[
            "dhclient",
            "-r",
            "-v",
            "-4",
            "-sf",
            &dscript,
            "-lf",
            &lf,
            "-pf",
            &pf,
            &vm2.ifname,
        ],
    );
    assert!(
        rel.contains("DHCPRELEASE"),
        "dhclient did not release: {rel}"
    );
    let a2 = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("dhclient-event BOUND ")
                .or_else(|| l.strip_prefix("dhclient-event REBOOT "))
        })
        .expect("dhclient address")
        .trim()
        .to_string();
    assert!(in_pool(&a2), "dhclient got {a2}");
    assert_ne!(a1, a2, "two guests got the same address");

    // 3. dhcpcd on vm1. It identifies itself by a DUID client identifier (option 61),
    // not by MAC, so it is a new client to the server: a third address from the pool.
    let mut c = Watched::in_netns(
        &vm1.netns,
        &[
            "dhcpcd",
            "-4",
            "-B",
            "-d",
            "--noarp",
            "-C",
            "resolv.conf",
            "-C",
            "timesyncd",
            "-C",
            "hostname",
            &vm1.ifname,
        ],
    );
    let leased = c.wait_for("leased ");
    let renewed = leased && c.wait_for("renewing lease");
    // `dhcpcd -k` signals the daemon (SIGALRM) and waits 5 s for it to exit. Seen once in
    // CI: dhcpcd 9.4.1 let that signal pass unanswered while it kept renewing, so the
    // release is asked for up to five times; what is tested is that it is sent and served.
    let mut rel = String::new();
    let mut released = false;
    for attempt in 1..=5 {
        if attempt > 1 {
            eprintln!("dhcpcd: release not seen, asking again ({attempt} of 5)");
        }
        let (_, said) = output(&vm1.netns, &["dhcpcd", "-4", "-k", &vm1.ifname]);
        rel.push_str(&said);
        released = c.wait_for_within("releasing lease", Duration::from_secs(5));
        if released {
            break;
        }
    }
    let text = c.finish();
    let _ = std::fs::remove_file(format!("/var/lib/dhcpcd/{}.lease", vm1.ifname));
    assert!(leased, "dhcpcd got no lease: {text}");
    assert!(renewed, "dhcpcd did not renew: {text}");
    assert!(released, "dhcpcd did not release: {rel} {text}");
    let a3 = text
        .lines()
        .find_map(|l| l.split("leased ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("dhcpcd's address")
        .to_string();
    assert!(in_pool(&a3), "dhcpcd got {a3}");
    assert!(
        a3 != a1 && a3 != a2,
        "dhcpcd's client id got another client's address: {a3}"
    );

    // 4. Configure both guests again (udhcpc, quit after lease) and check reachability.
    for vm in [&vm1, &vm2] {
        let (ok, text) = output(
            &vm.netns,
            &[
                "busybox", "udhcpc", "-n", "-q", "-t", "5", "-T", "1", "-i", &vm.ifname, "-s",
                &uscript,
            ],
        );
        assert!(ok, "udhcpc -q failed: {text}");
    }
    let v1 = addr_of(&vm1.netns, &vm1.ifname).expect("vm1 address");
    let v2 = addr_of(&vm2.netns, &vm2.ifname).expect("vm2 address");
    assert_eq!(v1, a1, "vm1 did not get its address back");
    assert!(ping(&vm1.netns, &v2, "2"), "vm1 cannot ping vm2");
    assert!(ping(&vm2.netns, &v1, "2"), "vm2 cannot ping vm1");
    assert!(
        ping(&vm1.netns, "192.168.56.1", "2"),
        "vm1 cannot ping the host"
    );
    assert!(ping(&host.netns, &v2, "2"), "the host cannot ping vm2");
    assert!(
        ping(&vm2.netns, "192.168.56.100", "2"),
        "the DHCP server does not answer ping"
    );

    let log = dp.stop().expect("stops cleanly");
    let stats = dhcp_stats(&log);
    assert!(
        stat(&stats, "releases") >= 2,
        "releases not seen by the server: {stats}"
    );
    assert!(
        stat(&stats, "acks") >= 6,
        "too few ACKs (leases + renewals): {stats}"
    );

    // 5. Restart with the lease file: vm1 (its address flushed) gets the same address.
    netns_exec(
        &vm1.netns,
        "ip",
        &["-4", "addr", "flush", "dev", &vm1.ifname],
    )
    .unwrap();
    let mut dp = Dataplane::start_exe(EXE, topo.dp_netns(), &args).expect("restarts");
    let (ok, text) = output(
        &vm1.netns,
        &[
            "busybox",
            "udhcpc",
            "-n",
            "-q",
            "-t",
            "5",
            "-T",
            "1",
            "-i",
            &vm1.ifname,
            "-s",
            &uscript,
        ],
    );
    assert!(ok, "udhcpc after restart: {text}");
    assert_eq!(
        addr_of(&vm1.netns, &vm1.ifname).as_deref(),
        Some(a1.as_str()),
        "address not kept across restart"
    );
    dp.stop().expect("stops cleanly");
}

#[test]
fn internal_with_dhcp_serves_udhcpc() {
    if !privileged_or_skip("internal_with_dhcp_serves_udhcpc") {
        return;
    }
    let dir = TempDir::new("intdhcp");
    let prefix = format!("tj{}", std::process::id() % 10000);
    let topo = Topology::build(&prefix, &[("vm1", None), ("vm2", None)]).expect("topology");
    let [vm1, vm2] = ["vm1", "vm2"].map(|r| topo.endpoint(r).clone());
    let mut dp = Dataplane::start_exe(
        EXE,
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "internal",
            "--dhcp",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--stats-interval",
            "0",
        ],
    )
    .expect("starts");
    let uscript = udhcpc_script(&dir);
    for vm in [&vm1, &vm2] {
        let (ok, text) = output(
            &vm.netns,
            &[
                "busybox", "udhcpc", "-n", "-q", "-t", "5", "-T", "1", "-i", &vm.ifname, "-s",
                &uscript,
            ],
        );
        assert!(ok, "udhcpc failed on internal --dhcp: {text}");
    }
    let v1 = addr_of(&vm1.netns, &vm1.ifname).expect("vm1 address");
    let v2 = addr_of(&vm2.netns, &vm2.ifname).expect("vm2 address");
    assert!(
        v1.starts_with("192.168.60.") && v2.starts_with("192.168.60."),
        "{v1} {v2}"
    );
    assert_ne!(v1, v2);
    assert!(ping(&vm1.netns, &v2, "2"));
    dp.stop().expect("stops cleanly");
}
