//! Faults (issue 12, item 4), with real namespaces, veth pairs and `vnet-bench run`:
//!
//! - an interface deleted while `run` runs: one line, counted (`link_lost`, frames for
//!   it `port_down`), the other ports keep forwarding, and the port is bound again when
//!   an interface of that name returns (`rebound`), traffic through it works;
//! - an interface set down and up again: one line each way, counted (`link_down`);
//! - SIGKILL, then a restart: it starts (the killed run's XDP programs are detached),
//!   and the NAPI knobs are back to what they were before the *first* start once the
//!   restarted run stops, with no state file left;
//! - DHCP leases survive a SIGKILL through the lease file: the guest's renewal after
//!   the restart gets its address;
//! - SIGTERM and SIGINT end `run` within two seconds with a clean status, also while
//!   its interfaces and their namespaces are being removed;
//! - configuration errors refused before anything starts, each in one sentence with
//!   what to do (unprivileged), and an interface held by another run refused without
//!   disturbing it.
//!
//! Namespaces are `vf?NNN-*` (removed on drop, also on failure); the dataplanes are
//! killed on drop. Privileged tests skip without root, unless `VNET_REQUIRE_PRIVILEGED`
//! turns the skip into a failure.

mod common;

use common::{ping, privileged_or_skip, script, TempDir, Watched};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};
use vm_memory::Bytes;
use vnet_bench::bench::virtio::VirtioNic;
use vnet_bench::topo::{ip, netns_exec, Endpoint, Topology};

const EXE: &str = env!("CARGO_BIN_EXE_vnet-bench");

/// A process in a namespace (a `vnet-bench run`, a DHCP client), killed (SIGKILL) if
/// still running when dropped.
struct Run(Watched);

impl Run {
    /// Start `run ARGS` in `netns` and wait until it forwards.
    fn start(netns: &str, args: &[&str]) -> Run {
        let mut all = vec![EXE, "run"];
        all.extend_from_slice(args);
        let mut w = Run(Watched::in_netns(netns, &all));
        let ready = w.wait_for("Ctrl-C to stop", Duration::from_secs(20));
        assert!(ready, "the dataplane did not start: {}", w.log());
        w
    }

    /// Wait up to `limit` for a line containing `what`.
    fn wait_for(&mut self, what: &str, limit: Duration) -> bool {
        self.0.wait_for_within(what, limit)
    }

    /// Everything printed so far (after a short wait for late lines).
    fn log(&mut self) -> String {
        self.0
            .wait_for_within("\u{0}never printed", Duration::from_millis(300));
        self.0.log()
    }

    /// Send `sig` ("-TERM") and measure how long the process takes to exit (killed
    /// after 10 s): its status (`None` when it had to be killed) and the time.
    fn signal_and_wait(&mut self, sig: &str) -> (Option<ExitStatus>, Duration) {
        let t0 = Instant::now();
        self.0.signal(sig);
        let status = self.0.exit_within(Duration::from_secs(10));
        (status, t0.elapsed())
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.0.exit_within(Duration::ZERO);
    }
}

/// Removes a test namespace's state directory (`/run/vnet-bench/netns-INODE`) when
/// dropped: a failing test kills its run, which leaves its files there.
struct StateCleanup(PathBuf);

impl StateCleanup {
    fn of(topo: &Topology) -> Self {
        Self(state_dir(topo.dp_netns()))
    }
}

impl Drop for StateCleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The counters row of `ifname` in the last table of `log`.
fn row<'a>(log: &'a str, ifname: &str) -> &'a str {
    log.lines()
        .rev()
        .find(|l| l.split_whitespace().nth(1) == Some(ifname))
        .unwrap_or_else(|| panic!("no counters for {ifname}: {log}"))
}

/// `key=N` of a counters row (0 when absent).
fn count(row: &str, key: &str) -> u64 {
    row.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Ping until one reply comes (at most `limit`), then a burst of three must all come.
fn ping_works(netns: &str, addr: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while !ping(netns, addr, "1") {
        if Instant::now() > deadline {
            return false;
        }
    }
    ping(netns, addr, "3")
}

/// Make an endpoint's veth pair again, with the same names, MAC and address.
fn recreate(dp_netns: &str, e: &Endpoint) {
    ip(&[
        "link",
        "add",
        &e.ifname,
        "netns",
        &e.netns,
        "address",
        &e.mac,
        "type",
        "veth",
        "peer",
        "name",
        &e.dp_ifname,
        "netns",
        dp_netns,
    ])
    .expect("veth made again");
    let _ = netns_exec(
        dp_netns,
        "sysctl",
        &[
            "-q",
            "-w",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", e.dp_ifname),
        ],
    );
    netns_exec(&e.netns, "ip", &["link", "set", &e.ifname, "up"]).unwrap();
    netns_exec(dp_netns, "ip", &["link", "set", &e.dp_ifname, "up"]).unwrap();
    if let Some(a) = &e.addr {
        netns_exec(&e.netns, "ip", &["addr", "add", a, "dev", &e.ifname]).unwrap();
    }
}

fn prefix(letter: char) -> String {
    format!("vf{letter}{}", std::process::id() % 1000)
}

fn three_vms(prefix: &str) -> Topology {
    Topology::build(
        prefix,
        &[
            ("vm1", Some("192.168.61.11/24")),
            ("vm2", Some("192.168.61.12/24")),
            ("vm3", Some("192.168.61.13/24")),
        ],
    )
    .expect("topology")
}

fn internal_args(topo: &Topology) -> Vec<String> {
    let mut args: Vec<String> = ["--mode", "internal", "--stats-interval", "0"]
        .map(String::from)
        .to_vec();
    for e in topo.endpoints() {
        args.push("--vm".into());
        args.push(e.dp_ifname.clone());
    }
    args
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn a_deleted_port_is_told_once_counted_and_bound_again_when_it_returns() {
    if !privileged_or_skip("a_deleted_port_is_told_once_counted_and_bound_again_when_it_returns") {
        return;
    }
    let topo = three_vms(&prefix('a'));
    let _state = StateCleanup::of(&topo);
    let [vm1, vm2, vm3] = ["vm1", "vm2", "vm3"].map(|r| topo.endpoint(r).clone());
    let mut run = Run::start(topo.dp_netns(), &strs(&internal_args(&topo)));
    assert!(ping(&vm1.netns, "192.168.61.13", "2"), "vm1 -> vm3 before");

    // vm3's veth pair goes (deleting one end deletes both).
    ip(&["-n", &vm3.netns, "link", "del", &vm3.ifname]).expect("veth deleted");
    let gone = format!("{} (vm3): interface gone", vm3.dp_ifname);
    assert!(
        run.wait_for(&gone, Duration::from_secs(3)),
        "no line for the loss: {}",
        run.log()
    );
    // The two others still talk, both ways.
    assert!(
        ping(&vm1.netns, "192.168.61.12", "3"),
        "vm1 -> vm2 after the loss"
    );
    assert!(
        ping(&vm2.netns, "192.168.61.11", "3"),
        "vm2 -> vm1 after the loss"
    );
    // Traffic for the lost port (vm1's ARP broadcasts for vm3) is dropped, not told.
    assert!(!ping(&vm1.netns, "192.168.61.13", "2"));

    // An interface of the same name (and MAC) comes back: the port is bound to it.
    recreate(topo.dp_netns(), &vm3);
    let back = format!("{} (vm3): interface back", vm3.dp_ifname);
    assert!(
        run.wait_for(&back, Duration::from_secs(3)),
        "no line for the return: {}",
        run.log()
    );
    assert!(
        ping_works(&vm1.netns, "192.168.61.13", Duration::from_secs(5)),
        "vm1 -> vm3 after the return: {}",
        run.log()
    );
    assert!(
        ping(&vm3.netns, "192.168.61.12", "3"),
        "vm3 -> vm2 after the return"
    );
    assert!(
        ping(&vm2.netns, "192.168.61.11", "3"),
        "vm2 -> vm1 after the return"
    );

    let (status, _) = run.signal_and_wait("-INT");
    assert!(status.is_some_and(|s| s.success()), "stop: {}", run.log());
    let log = run.log();
    assert_eq!(
        log.matches(&gone).count(),
        1,
        "the loss told more than once: {log}"
    );
    assert_eq!(
        log.matches(&back).count(),
        1,
        "the return told more than once: {log}"
    );
    let r = row(&log, &vm3.dp_ifname);
    assert_eq!(count(r, "link_lost"), 1, "{r}");
    assert_eq!(count(r, "rebound"), 1, "{r}");
    assert!(
        count(r, "port_down") >= 1,
        "frames for the lost port not counted: {r}"
    );
    for e in [&vm1, &vm2] {
        let r = row(&log, &e.dp_ifname);
        assert_eq!(count(r, "link_lost") + count(r, "port_down"), 0, "{r}");
    }
}

/// An ARP request for `target` from a guest on vhost-user (`nic`, MAC
/// 02:00:00:00:00:99, 192.168.61.50), offered every 200 ms until the reply comes back
/// through the dataplane (at most `limit`).
fn arp_through_vhost(nic: &mut VirtioNic, target: [u8; 4], limit: Duration) -> bool {
    let mac = [2, 0, 0, 0, 0, 0x99];
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&mac);
    f.extend_from_slice(&[192, 168, 61, 50, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&target);
    f.resize(60, 0);
    nic.set_tx_frame(&f).expect("frame set");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        nic.tx_reclaim().expect("tx reclaim");
        nic.tx_offer(1, |_, _, _| Ok(())).expect("offered");
        let mut answered = false;
        for _ in 0..20 {
            nic.rx_poll(64, |r| {
                let mut b = vec![0u8; r.len.min(64)];
                let _ = r.buf.read_slice(&mut b, r.at);
                // An ARP reply to us, from the target.
                answered |= b.len() >= 42
                    && b[..6] == mac
                    && b[12..14] == [0x08, 0x06]
                    && b[20..22] == [0, 2]
                    && b[28..32] == target;
            })
            .expect("rx poll");
            if answered {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    false
}

/// A vhost-user guest is not cut off when its worker's port set is reopened because
/// another port's interface came back: the same connection (no new one: the test's
/// frontend never reconnects) still reaches a veth VM afterwards, and the port's
/// startup line is not told again.
#[test]
fn a_vhost_user_guest_stays_connected_when_another_port_is_bound_again() {
    if !privileged_or_skip("a_vhost_user_guest_stays_connected_when_another_port_is_bound_again") {
        return;
    }
    let topo = three_vms(&prefix('v'));
    let _state = StateCleanup::of(&topo);
    let dir = TempDir::new("vf-vhost");
    let sock = dir.join("vm4.sock");
    let vm3 = topo.endpoint("vm3").clone();
    let mut args = internal_args(&topo);
    args.push("--vm".into());
    args.push(format!("vhost-user:{}", sock.display()));
    let mut run = Run::start(topo.dp_netns(), &strs(&args));
    let mut nic = VirtioNic::connect(&sock, Duration::from_secs(5)).expect("frontend connects");
    assert!(
        arp_through_vhost(&mut nic, [192, 168, 61, 11], Duration::from_secs(5)),
        "no ARP reply from vm1 before: {}",
        run.log()
    );

    ip(&["-n", &vm3.netns, "link", "del", &vm3.ifname]).expect("veth deleted");
    recreate(topo.dp_netns(), &vm3);
    let back = format!("{} (vm3): interface back", vm3.dp_ifname);
    assert!(
        run.wait_for(&back, Duration::from_secs(5)),
        "no line for the return: {}",
        run.log()
    );
    assert!(
        arp_through_vhost(&mut nic, [192, 168, 61, 11], Duration::from_secs(5)),
        "the vhost-user guest lost its connection at the rebind: {}",
        run.log()
    );
    assert!(
        arp_through_vhost(&mut nic, [192, 168, 61, 13], Duration::from_secs(5)),
        "no ARP reply from the returned vm3: {}",
        run.log()
    );
    drop(nic);
    let (status, _) = run.signal_and_wait("-INT");
    assert!(status.is_some_and(|s| s.success()), "stop: {}", run.log());
}

#[test]
fn a_port_set_down_is_skipped_and_forwards_again_when_up() {
    if !privileged_or_skip("a_port_set_down_is_skipped_and_forwards_again_when_up") {
        return;
    }
    let topo = three_vms(&prefix('b'));
    let _state = StateCleanup::of(&topo);
    let [vm1, vm2, _vm3] = ["vm1", "vm2", "vm3"].map(|r| topo.endpoint(r).clone());
    let mut run = Run::start(topo.dp_netns(), &strs(&internal_args(&topo)));
    assert!(ping(&vm1.netns, "192.168.61.12", "2"), "vm1 -> vm2 before");

    netns_exec(
        topo.dp_netns(),
        "ip",
        &["link", "set", &vm2.dp_ifname, "down"],
    )
    .unwrap();
    let down = format!("{} (vm2): link down", vm2.dp_ifname);
    assert!(
        run.wait_for(&down, Duration::from_secs(3)),
        "no line for the link going down: {}",
        run.log()
    );
    assert!(
        ping(&vm1.netns, "192.168.61.13", "3"),
        "vm1 -> vm3 while vm2 is down"
    );
    assert!(
        !ping(&vm1.netns, "192.168.61.12", "1"),
        "vm2 answered while down"
    );

    netns_exec(
        topo.dp_netns(),
        "ip",
        &["link", "set", &vm2.dp_ifname, "up"],
    )
    .unwrap();
    let up = format!("{} (vm2): link up again", vm2.dp_ifname);
    assert!(
        run.wait_for(&up, Duration::from_secs(3)),
        "no line for the link coming up: {}",
        run.log()
    );
    assert!(
        ping_works(&vm1.netns, "192.168.61.12", Duration::from_secs(5)),
        "vm1 -> vm2 after up"
    );

    let (status, _) = run.signal_and_wait("-INT");
    assert!(status.is_some_and(|s| s.success()), "stop: {}", run.log());
    let log = run.log();
    assert_eq!(log.matches(&down).count(), 1, "{log}");
    assert_eq!(log.matches(&up).count(), 1, "{log}");
    let r = row(&log, &vm2.dp_ifname);
    assert_eq!(count(r, "link_down"), 1, "{r}");
    assert_eq!(count(r, "link_lost"), 0, "{r}");
}

/// A NAPI knob of a dataplane-side interface, as its namespace's sysfs shows it.
fn knob(netns: &str, ifname: &str, name: &str) -> String {
    let out = netns_exec(netns, "cat", &[&format!("/sys/class/net/{ifname}/{name}")])
        .expect("knob readable");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn set_knob(netns: &str, ifname: &str, name: &str, value: &str) {
    netns_exec(
        netns,
        "sh",
        &[
            "-c",
            &format!("echo {value} > /sys/class/net/{ifname}/{name}"),
        ],
    )
    .expect("knob writable");
}

/// The state directory of namespace `netns` (`/run/vnet-bench/netns-INODE`).
fn state_dir(netns: &str) -> PathBuf {
    let ino = std::fs::metadata(format!("/run/netns/{netns}"))
        .expect("namespace file")
        .ino();
    PathBuf::from(format!("/run/vnet-bench/netns-{ino}"))
}

fn has_xdp(netns: &str, ifname: &str) -> bool {
    let out = ip(&["-n", netns, "-d", "link", "show", ifname]).expect("link shown");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

#[test]
fn sigkill_then_restart_restores_the_settings_from_before_the_first_start() {
    if !privileged_or_skip("sigkill_then_restart_restores_the_settings_from_before_the_first_start")
    {
        return;
    }
    let topo = Topology::build(
        &prefix('k'),
        &[
            ("vm1", Some("192.168.61.11/24")),
            ("vm2", Some("192.168.61.12/24")),
        ],
    )
    .expect("topology");
    let _state = StateCleanup::of(&topo);
    let dp = topo.dp_netns().to_string();
    let [vm1, vm2] = ["vm1", "vm2"].map(|r| topo.endpoint(r).clone());
    let d1 = vm1.dp_ifname.clone();
    set_knob(&dp, &d1, "gro_flush_timeout", "12345");
    set_knob(&dp, &d1, "napi_defer_hard_irqs", "3");
    let args = internal_args(&topo);
    let state = state_dir(&dp).join(format!("{d1}.state"));

    let mut first = Run::start(&dp, &strs(&args));
    assert_eq!(knob(&dp, &d1, "gro_flush_timeout"), "0", "run changes it");
    let text = std::fs::read_to_string(&state).expect("state file while running");
    assert!(
        text.contains("gro_flush_timeout 12345") && text.contains("napi_defer_hard_irqs 3"),
        "{text}"
    );
    let (status, _) = first.signal_and_wait("-KILL");
    assert!(status.is_some_and(|s| !s.success()), "SIGKILL");
    assert!(state.exists(), "the state file outlives a SIGKILL");
    assert_eq!(
        knob(&dp, &d1, "gro_flush_timeout"),
        "0",
        "left as the killed run set it"
    );
    assert!(has_xdp(&dp, &d1), "a killed run leaves its XDP program");

    let mut second = Run::start(&dp, &strs(&args));
    let log = second.log();
    assert!(
        log.contains(&format!("{d1}: detached the XDP program")),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "{d1}: restored the NAPI settings a killed run left"
        )),
        "{log}"
    );
    assert!(
        ping(&vm1.netns, "192.168.61.12", "3"),
        "the restart forwards"
    );
    assert!(
        state.exists(),
        "the restarted run keeps the originals on disk"
    );
    let (status, took) = second.signal_and_wait("-INT");
    assert!(
        status.is_some_and(|s| s.success()),
        "stop: {}",
        second.log()
    );
    assert!(took < Duration::from_secs(2), "stop took {took:?}");

    assert_eq!(knob(&dp, &d1, "gro_flush_timeout"), "12345");
    assert_eq!(knob(&dp, &d1, "napi_defer_hard_irqs"), "3");
    assert!(!state.exists(), "the state file outlives a clean stop");
    for e in [&vm1, &vm2] {
        assert!(
            !has_xdp(&dp, &e.dp_ifname),
            "XDP program left on {}",
            e.dp_ifname
        );
        let owner = state_dir(&dp).join(format!("{}.owner", e.dp_ifname));
        assert!(!owner.exists(), "{} outlives a clean stop", owner.display());
    }
}

#[test]
fn dhcp_leases_survive_a_sigkill_through_the_lease_file() {
    if !privileged_or_skip("dhcp_leases_survive_a_sigkill_through_the_lease_file") {
        return;
    }
    let dir = TempDir::new("faults-leases");
    let udhcpc_script = dir.join("udhcpc.sh");
    script(
        &udhcpc_script,
        r#"case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface" ;;
esac
echo "udhcpc-event $1 ${ip:-}""#,
    );
    let topo = Topology::build(
        &prefix('l'),
        &[("vm1", None), ("host", Some("192.168.56.1/24"))],
    )
    .expect("topology");
    let _state = StateCleanup::of(&topo);
    let dp = topo.dp_netns().to_string();
    let [vm1, host] = ["vm1", "host"].map(|r| topo.endpoint(r).clone());
    let leases = dir.join("leases");
    let leases_arg = leases.display().to_string();
    let args = [
        "--mode",
        "host-only",
        "--vm",
        &vm1.dp_ifname,
        "--host",
        &host.dp_ifname,
        "--lease-file",
        &leases_arg,
        "--stats-interval",
        "0",
    ];
    let mut first = Run::start(&dp, &args);
    let mut client = Run(Watched::in_netns(
        &vm1.netns,
        &[
            "busybox",
            "udhcpc",
            "-f",
            "-t",
            "5",
            "-T",
            "1",
            "-i",
            &vm1.ifname,
            "-s",
            udhcpc_script.to_str().unwrap(),
        ],
    ));
    let within = Duration::from_secs(15);
    assert!(
        client.wait_for("udhcpc-event bound", within),
        "no lease: {}",
        client.log()
    );
    let addr = client
        .log()
        .lines()
        .find_map(|l| l.strip_prefix("udhcpc-event bound "))
        .expect("bound address")
        .to_string();
    // The control thread writes the lease file at most once a second.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&leases).is_ok_and(|t| t.contains(&addr)) {
        assert!(Instant::now() < deadline, "lease of {addr} never written");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _) = first.signal_and_wait("-KILL");
    assert!(status.is_some(), "SIGKILL");

    let mut second = Run::start(&dp, &args);
    // udhcpc's "renew now": a unicast REQUEST in RENEWING state to the server.
    client.0.signal("-USR1");
    let renewed = format!("udhcpc-event renew {addr}");
    assert!(
        client.wait_for(&renewed, within),
        "the renewal after the restart did not keep {addr}: {}",
        client.log()
    );
    assert!(
        ping(&vm1.netns, "192.168.56.1", "2"),
        "guest -> host after the restart"
    );
    let (_, _) = client.signal_and_wait("-TERM");
    let client_log = client.log();
    assert_eq!(
        client_log.matches("udhcpc-event deconfig").count(),
        1,
        "the client lost its address on the way (only its start deconfigures): {client_log}"
    );
    let (status, _) = second.signal_and_wait("-INT");
    assert!(
        status.is_some_and(|s| s.success()),
        "stop: {}",
        second.log()
    );
    let log = second.log();
    let dhcp = log.lines().find(|l| l.starts_with("dhcp ")).unwrap_or("");
    assert_eq!(count(dhcp, "naks"), 0, "{dhcp}");
    assert!(count(dhcp, "acks") >= 1, "{dhcp}");
}

#[test]
fn sigterm_ends_run_within_two_seconds_while_its_interfaces_and_namespace_go() {
    if !privileged_or_skip(
        "sigterm_ends_run_within_two_seconds_while_its_interfaces_and_namespace_go",
    ) {
        return;
    }
    let topo = three_vms(&prefix('t'));
    let _state = StateCleanup::of(&topo);
    let mut run = Run::start(topo.dp_netns(), &strs(&internal_args(&topo)));
    assert!(ping(&topo.endpoint("vm1").netns, "192.168.61.12", "1"));
    // The veths go with the endpoints' namespaces (the kernel removes them in the
    // background), and the dataplane's namespace loses its name; no waiting.
    for e in topo.endpoints() {
        ip(&["netns", "del", &e.netns]).expect("namespace deleted");
    }
    ip(&["netns", "del", topo.dp_netns()]).expect("namespace deleted");
    let (status, took) = run.signal_and_wait("-TERM");
    let log = run.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "not a clean stop ({status:?}): {log}"
    );
    assert!(
        took < Duration::from_secs(2),
        "SIGTERM took {took:?}: {log}"
    );
    assert!(log.contains("final counters"), "{log}");
}

#[test]
fn sigint_ends_run_within_two_seconds() {
    if !privileged_or_skip("sigint_ends_run_within_two_seconds") {
        return;
    }
    let topo = three_vms(&prefix('i'));
    let _state = StateCleanup::of(&topo);
    let mut run = Run::start(topo.dp_netns(), &strs(&internal_args(&topo)));
    assert!(ping(&topo.endpoint("vm1").netns, "192.168.61.13", "1"));
    let (status, took) = run.signal_and_wait("-INT");
    let log = run.log();
    assert!(
        status.is_some_and(|s| s.success()),
        "not a clean stop: {log}"
    );
    assert!(took < Duration::from_secs(2), "SIGINT took {took:?}: {log}");
    assert!(log.contains("final counters"), "{log}");
    for e in topo.endpoints() {
        assert!(!has_xdp(topo.dp_netns(), &e.dp_ifname), "{log}");
    }
}

#[test]
fn an_interface_held_by_another_run_is_refused_without_disturbing_it() {
    if !privileged_or_skip("an_interface_held_by_another_run_is_refused_without_disturbing_it") {
        return;
    }
    let topo = three_vms(&prefix('h'));
    let _state = StateCleanup::of(&topo);
    let [vm1, vm2, vm3] = ["vm1", "vm2", "vm3"].map(|r| topo.endpoint(r).clone());
    let mut first = Run::start(
        topo.dp_netns(),
        &[
            "--mode",
            "internal",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--stats-interval",
            "0",
        ],
    );
    let t0 = Instant::now();
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            topo.dp_netns(),
            EXE,
            "run",
            "--mode",
            "internal",
        ])
        .args(["--vm", &vm3.dp_ifname, "--vm", &vm2.dp_ifname])
        .output()
        .expect("second run");
    let took = t0.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!(
            "interface {} is bound by another vnet-bench run (pid ",
            vm2.dp_ifname
        )) && err.contains("; stop that run first"),
        "{err}"
    );
    assert!(
        took < Duration::from_millis(500),
        "refused only after {took:?}"
    );
    // Nothing of the second run touched vm3's interface, and the first still forwards.
    assert!(!has_xdp(topo.dp_netns(), &vm3.dp_ifname));
    assert!(
        ping(&vm1.netns, "192.168.61.12", "3"),
        "the first run was disturbed"
    );
    let (status, _) = first.signal_and_wait("-INT");
    assert!(status.is_some_and(|s| s.success()), "{}", first.log());
}

/// `run` with `args` (no privileges needed: refused before any interface is looked
/// at); its exit code and stderr.
fn refused(args: &str) -> (Option<i32>, String) {
    let out = Command::new(EXE)
        .arg("run")
        .args(args.split_whitespace())
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).trim().to_string(),
    )
}

#[test]
fn configuration_errors_are_refused_before_anything_starts_in_one_sentence() {
    const NAT: &str =
        "--mode nat --vm vfno0 --uplink vfno1 --external-ip 198.18.0.2/24 --gateway 198.18.0.1";
    let cases: Vec<(String, &str)> = vec![
        (
            "--mode host-only --vm vfno0 --host vfno1 --subnet 10.9.0.1/40".into(),
            "the prefix length must be 8 to 30",
        ),
        (
            "--mode host-only --vm vfno0 --host vfno1 --subnet 10.9.0".into(),
            "is not ADDRESS/PREFIX",
        ),
        (
            "--mode host-only --vm vfno0 --host vfno1 --subnet 10.9.0.0/24".into(),
            "is the network's own address",
        ),
        (
            "--mode nat --vm vfno0 --uplink vfno1 --external-ip 198.18.0.255/24 --gateway 198.18.0.1".into(),
            "is the broadcast address",
        ),
        (
            "--mode host-only --vm vfno0 --host vfno1 --dhcp-range 192.168.57.10-192.168.57.20".into(),
            "pool start 192.168.57.10 is outside the subnet",
        ),
        (
            "--mode internal --vm vfno0 --vm vfno1 --dhcp --subnet 10.7.0.1/24 --dhcp-server 10.8.0.1".into(),
            "outside the subnet",
        ),
        (
            "--mode nat --vm vfno0 --uplink vfno1 --external-ip 10.0.2.50/24 --gateway 10.0.2.1".into(),
            "overlaps the guests' network 10.0.2.0/24",
        ),
        (
            "--mode nat-network --vm vfno0 --uplink vfno1 --external-ip 10.0.0.5/16 --gateway 10.0.0.1".into(),
            "overlaps the guests' network 10.0.2.0/24",
        ),
        (
            format!("{NAT} --host vfno2 --host-link 10.0.2.9/10.0.2.8"),
            "is inside the guests' network",
        ),
        (
            format!("{NAT} --host vfno2 --host-link 198.19.0.2/198.18.0.7"),
            "is inside the uplink's network",
        ),
        (
            format!("{NAT} --pf a,tcp,,2222,,22 --pf b,tcp,,2222,,23"),
            "forward rule 'b' collides with rule 'a'",
        ),
        (
            format!("{NAT} --pf a,tcp,,2222,,22 --pf a,udp,,2222,,22"),
            "forward rule name 'a' is already in use",
        ),
        (
            format!("{NAT} --pf a,tcp,198.18.0.9,2222,,22"),
            "an address the dataplane does not have",
        ),
        (
            "--mode internal --vm vfno0 --vm vfno0".into(),
            "interface vfno0 is given twice (--vm (vm1) and --vm (vm2))",
        ),
        (
            "--mode nat --vm vfno0 --uplink vfno0 --external-ip 198.18.0.2/24 --gateway 198.18.0.1".into(),
            "interface vfno0 is given twice (--vm (vm1) and --uplink)",
        ),
    ];
    for (args, expected) in &cases {
        let (code, err) = refused(args);
        assert_eq!(code, Some(1), "run {args}: {err}");
        assert_eq!(err.lines().count(), 1, "run {args}: not one line: {err}");
        assert!(err.starts_with("error: "), "run {args}: {err}");
        assert!(
            err.contains(expected),
            "run {args}: expected {expected:?} in {err}"
        );
        // What is wrong, then what to do.
        assert!(err.contains("; "), "run {args}: no advice in {err}");
        assert!(
            !err.contains("no interface named") && !err.contains("needs root"),
            "run {args}: reached the interfaces: {err}"
        );
    }
}
