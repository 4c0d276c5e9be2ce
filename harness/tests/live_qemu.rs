//! Live test of every mode with real QEMU guests: two virtio-net guests at QEMU's
//! default offloads (partial checksums, TSO) on taps in the dataplane namespace, served
//! by `vnet-bench run`; the host and the Internet are veth namespaces as in the other
//! live tests. Per mode, the row of Table 1-1: DHCP leases (where the mode serves DHCP),
//! ping, a small (1 KiB) and an 8 MiB TCP transfer both ways (busybox nc, the receiver's
//! byte count and MD5 checked against the sender's), the source address a NAT server
//! sees (iperf3), UDP (DNS through the NAT modes' proxy, answered by
//! dnsmasq beyond the uplink; iperf3 UDP elsewhere), the port forward from inet and from
//! the host (NAT modes), and the `-` cells that two guests or the tap can show (NAT's
//! VM1 <-> VM2 with a capture in vm2, Internal's host: an address on vm1's own tap).
//!
//! The guests boot once (in parallel) and serve all five modes in turn; every check is
//! recorded, the table printed, and the test fails at the end if any check failed.
//! `VNET_QEMU_MODES=nat,internal` runs only some modes. Needs root, QEMU and the guest
//! image (`bash ci/guest/build.sh`); skipped otherwise, failed instead when
//! `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use common::{privileged_or_skip, TempDir};
use std::time::Instant;
use vnet_bench::guest::transfer::{self, End, Opener};
use vnet_bench::guest::{peer, qemu, Accel, Guest, GuestImage, GuestSpec, Tap};
use vnet_bench::mainjob::Dataplane;
use vnet_bench::topo::{netns_exec, Endpoint, Topology};

const EXE: &str = env!("CARGO_BIN_EXE_vnet-bench");
const MIB8: u64 = 8 << 20;
const SMALL: u64 = 1024;

/// QEMU and the image, or skip (fail under `VNET_REQUIRE_PRIVILEGED`) in one sentence.
fn qemu_or_skip(test: &str) -> Option<GuestImage> {
    let found = qemu::require_qemu()
        .and_then(|()| GuestImage::open(&GuestImage::default_dir(std::path::Path::new(EXE))));
    match found {
        Ok(image) => Some(image),
        Err(e) => {
            if std::env::var_os("VNET_REQUIRE_PRIVILEGED").is_some() {
                panic!("{test}: {e}, and VNET_REQUIRE_PRIVILEGED is set");
            }
            eprintln!("skipped: {test}: {e}");
            None
        }
    }
}

/// One checked cell or step.
struct Outcome {
    mode: &'static str,
    check: String,
    ok: bool,
    evidence: String,
}

#[derive(Default)]
struct Report(Vec<Outcome>);

impl Report {
    fn add(&mut self, mode: &'static str, check: &str, result: anyhow::Result<String>) -> bool {
        let (ok, evidence) = match result {
            Ok(e) => (true, e),
            Err(e) => (false, format!("{e:#}")),
        };
        eprintln!(
            "  {mode:<11} {check:<34} {} {evidence}",
            if ok { "ok  " } else { "FAIL" }
        );
        self.0.push(Outcome {
            mode,
            check: check.to_string(),
            ok,
            evidence,
        });
        ok
    }
}

/// Where an iperf3 server runs (for the source-address checks).
#[derive(Clone, Copy)]
enum Side<'a> {
    Guest(&'a Guest),
    Netns(&'a str),
}

/// A short iperf3 test from `client` to a server on `server` listening at `bind:port`,
/// reached at `addr:dport`; the address the server saw the connection come from.
fn source_seen(
    client: Side<'_>,
    server: Side<'_>,
    (bind, port): (&str, u16),
    (addr, dport): (&str, u16),
) -> anyhow::Result<String> {
    let bg = match server {
        Side::Guest(g) => {
            g.serve(bind, port)?;
            None
        }
        Side::Netns(ns) => Some(peer::serve(ns, bind, port)?),
    };
    let sent = match client {
        Side::Guest(g) => g.iperf(addr, dport, SMALL, false, false),
        Side::Netns(ns) => peer::iperf(ns, addr, dport, SMALL, false),
    };
    let seen = match (server, bg) {
        (Side::Guest(g), _) => g.served(port),
        (_, Some(bg)) => peer::served(bg),
        (_, None) => unreachable!("a namespace server has a process"),
    };
    sent?;
    Ok(seen?.1)
}

/// `bytes` from `sender` to `receiver` over a connection `opener` opens to `addr:port`;
/// recorded as one check.
#[allow(clippy::too_many_arguments)]
fn tcp(
    r: &mut Report,
    (mode, check): (&'static str, &str),
    sender: End<'_>,
    receiver: End<'_>,
    opener: Opener,
    to: (&str, u16),
    port: u16,
    bytes: u64,
) {
    let res = transfer::tcp(sender, receiver, opener, to, port, bytes).map(|m| {
        let rate = if m.bytes >= MIB8 {
            format!(", {:.1} s, {:.0} Mbit/s", m.secs, m.mbits())
        } else {
            String::new()
        };
        format!("{} bytes arrived intact (count and MD5){rate}", m.bytes)
    });
    r.add(mode, check, res);
}

/// The three transfers of a `+` pair: 1 KiB and 8 MiB from the guest, 8 MiB back, all
/// on connections the guest opens to `addr`.
fn tcp_both_ways(
    r: &mut Report,
    (mode, cell): (&'static str, &str),
    guest: &Guest,
    peer: End<'_>,
    addr: &str,
) {
    let g = End::Guest(guest);
    tcp(
        r,
        (mode, &format!("{cell} TCP 1 KiB")),
        g,
        peer,
        Opener::Sender,
        (addr, 5301),
        5301,
        SMALL,
    );
    tcp(
        r,
        (mode, &format!("{cell} TCP 8 MiB")),
        g,
        peer,
        Opener::Sender,
        (addr, 5302),
        5302,
        MIB8,
    );
    tcp(
        r,
        (mode, &format!("{cell} TCP 8 MiB back")),
        peer,
        g,
        Opener::Receiver,
        (addr, 5303),
        5303,
        MIB8,
    );
}

fn ping_check(r: &mut Report, mode: &'static str, cell: &str, res: Option<String>) {
    r.add(
        mode,
        &format!("{cell} ping"),
        res.ok_or_else(|| anyhow::anyhow!("no reply")),
    );
}

/// The test's fixed parts: the namespaces, the taps, the guests.
struct Rig<'a> {
    dp: &'a str,
    host: &'a Endpoint,
    inet: &'a Endpoint,
    vm1: &'a Guest,
    vm2: &'a Guest,
    guests: &'a [Guest],
    dir: &'a TempDir,
}

impl Rig<'_> {
    fn start(&self, r: &mut Report, mode: &'static str, args: &[&str]) -> Option<Dataplane> {
        let mut all = vec![
            "run",
            "--mode",
            mode,
            "--vm",
            self.vm1.port(),
            "--vm",
            self.vm2.port(),
            "--stats-interval",
            "0",
        ];
        all.extend_from_slice(args);
        // (Guests on vhost-user are booted afresh below.)
        for g in [self.vm1, self.vm2]
            .into_iter()
            .filter(|g| g.tap().is_some())
        {
            if let Err(e) = g.reset_net() {
                r.add(mode, "guest reset", Err(e));
                return None;
            }
        }
        let dp = match Dataplane::start_exe(EXE, self.dp, &all) {
            Ok(dp) => dp,
            Err(e) => {
                r.add(mode, "dataplane starts", Err(e));
                return None;
            }
        };
        // On vhost-user, the guests boot anew against each mode's dataplane (QEMU 7.2
        // does not survive its backend's restart) and wait for their link.
        if self.vm1.tap().is_none() {
            // QEMU must find the socket at its start: connected later by its reconnect
            // timer, QEMU 7.2 never starts the device.
            let listening = self.guests.iter().try_for_each(|g| {
                let path = g.port().strip_prefix("vhost-user:").unwrap_or_default();
                wait_socket(std::path::Path::new(path))
            });
            let booted = listening
                .and_then(|()| Guest::reboot_all(self.guests))
                .and_then(|()| {
                    for g in self.guests {
                        g.wait_carrier(std::time::Duration::from_secs(20))?;
                    }
                    Ok(())
                });
            if let Err(e) = booted {
                r.add(mode, "guests boot on vhost-user", Err(e));
                return None;
            }
        }
        Some(dp)
    }

    /// Stop the dataplane; its final counters must show that vm1 really sent with
    /// offloads (partial checksums completed, TSO super-frames segmented on its tap):
    /// otherwise the checks above proved nothing about offloads.
    fn stop(&self, r: &mut Report, mode: &'static str, mut dp: Dataplane) {
        if self.vm1.tap().is_none() {
            // vm2 runs with `queues=2` and two vCPUs: QEMU offers it VIRTIO_NET_F_MQ
            // (bit 22) only once vnet took both queue pairs; its driver acknowledges it
            // and enables both pairs (a transmit queue per vCPU), so its frames leave on
            // both transmit rings and every check above crossed both.
            let res = self
                .vm2
                .sh_ok(
                    "cat /sys/class/net/eth0/device/features; ls /sys/class/net/eth0/queues",
                    10,
                )
                .and_then(|out| {
                    let mut words = out.split_whitespace();
                    let bits = words.next().unwrap_or_default().to_string();
                    let queues = words.collect::<Vec<_>>().join(" ");
                    let mq = bits.as_bytes().get(22) == Some(&b'1');
                    if mq && queues.contains("rx-1") && queues.contains("tx-1") {
                        Ok(format!(
                            "vm2: VIRTIO_NET_F_MQ acknowledged, queues {queues}"
                        ))
                    } else {
                        Err(anyhow::anyhow!(
                            "vm2: features {bits} (MQ is bit 22), queues {queues}"
                        ))
                    }
                });
            r.add(mode, "multi-queue guest (queues=2) attached", res);
            // The frontends go first: QEMU 7.2 crashes when its backend goes away.
            self.guests.iter().for_each(Guest::power_off);
        }
        let log = match dp.stop() {
            Ok(log) => log,
            Err(e) => {
                r.add(mode, "dataplane stops cleanly", Err(e));
                return;
            }
        };
        let port = self.vm1.port();
        let line = log
            .lines()
            .skip_while(|l| !l.contains("final counters"))
            .find(|l| l.split_whitespace().nth(1) == Some(port))
            .unwrap_or_default();
        let (csum, superframes, segments) = (
            counter(line, "csum_completed"),
            counter(line, "superframes"),
            counter(line, "segments"),
        );
        let res = if csum > 0 && superframes > 0 {
            Ok(format!(
                "vm1's port: {csum} partial checksums completed, {superframes} TSO super-frames -> {segments} segments"
            ))
        } else {
            Err(anyhow::anyhow!(
                "vm1's port shows no offloaded traffic (csum_completed={csum}, superframes={superframes}): {line}"
            ))
        };
        r.add(mode, "guests send with offloads", res);
        if self.vm1.tap().is_none() {
            // A guest on vhost-user takes super-frames (GUEST_TSO4): the segments of the
            // transfers towards it must have reached it glued.
            let (glued, from) = (
                counter(line, "coalesced"),
                counter(line, "coalesced_segments"),
            );
            let res = if glued > 0 {
                Ok(format!(
                    "vm1 received {glued} super-frames glued from {from} segments"
                ))
            } else {
                Err(anyhow::anyhow!(
                    "vm1's port glued no super-frame for it (coalesced=0): {line}"
                ))
            };
            r.add(mode, "guest receives super-frames", res);
        }
    }

    fn leases(&self, r: &mut Report, mode: &'static str) -> Option<(String, String)> {
        let a1 = self.vm1.lease();
        let a2 = self.vm2.lease();
        let ok = a1.is_ok() && a2.is_ok();
        let (a1s, a2s) = (
            a1.as_ref()
                .map(String::clone)
                .unwrap_or_else(|e| e.to_string()),
            a2.as_ref()
                .map(String::clone)
                .unwrap_or_else(|e| e.to_string()),
        );
        r.add(
            mode,
            "DHCP (udhcpc in both guests)",
            if ok {
                Ok(format!("vm1 {a1s}, vm2 {a2s}"))
            } else {
                Err(anyhow::anyhow!("vm1: {a1s}; vm2: {a2s}"))
            },
        );
        ok.then_some((a1s, a2s))
    }

    /// A namespace end of a transfer.
    fn ns<'b>(&'b self, e: &'b Endpoint) -> End<'b> {
        End::Netns(&e.netns, &self.dir.0)
    }

    fn internal(&self, r: &mut Report) {
        const M: &str = "internal";
        let Some(dp) = self.start(r, M, &[]) else {
            return;
        };
        let res = self
            .vm1
            .set_static("192.168.60.11/24", None)
            .and_then(|()| self.vm2.set_static("192.168.60.12/24", None));
        if r.add(
            M,
            "static addresses",
            res.map(|()| "192.168.60.11, .12".into()),
        ) {
            ping_check(r, M, "VM1 -> VM2", self.vm1.ping("192.168.60.12", 3));
            ping_check(r, M, "VM2 -> VM1", self.vm2.ping("192.168.60.11", 3));
            if self.vm2.tap().is_none() {
                // vm2 has two queue pairs and two vCPUs: from vCPU 1 its frames leave
                // on transmit queue 1 (pair 1's ring).
                let res = self.vm2.ping_on_cpu(1, "192.168.60.11", 3);
                ping_check(r, M, "VM2 (vCPU 1, queue pair 1) -> VM1", res);
            }
            let vm2 = End::Guest(self.vm2);
            tcp_both_ways(r, (M, "VM1 -> VM2"), self.vm1, vm2, "192.168.60.12");
            // UDP: vm1's DNS query to vm2 (nothing answers but ICMP); vm2's tcpdump checks
            // the datagram's checksum.
            let res = self.vm2.capture("udp port 53").and_then(|()| {
                self.vm1.nslookup("example.test", "192.168.60.12");
                let seen = self.vm2.captured()?;
                if seen.contains("udp sum ok") {
                    Ok("vm2 received vm1's DNS query, UDP checksum ok".into())
                } else {
                    Err(anyhow::anyhow!(
                        "vm2 saw no good UDP datagram: {}",
                        seen.trim()
                    ))
                }
            });
            r.add(M, "VM1 -> VM2 UDP", res);
            // VM <-> Host `-`: an address on vm1's own tap (where a host's stack would
            // answer without the dataplane) must stay unreachable. (On vhost-user there
            // is no host side at all.)
            if let Some(tap) = self.vm1.tap() {
                let res = netns_exec(
                    self.dp,
                    "ip",
                    &["addr", "add", "192.168.60.1/24", "dev", tap],
                )
                .and_then(|_| match self.vm1.ping("192.168.60.1", 2) {
                    None => Ok("vm1 gets no answer from 192.168.60.1 on its own tap".into()),
                    Some(s) => Err(anyhow::anyhow!("the tap's host side answered: {s}")),
                });
                let _ = netns_exec(
                    self.dp,
                    "ip",
                    &["addr", "del", "192.168.60.1/24", "dev", tap],
                );
                r.add(M, "VM <-> Host - (tap host side)", res);
            }
        }
        self.stop(r, M, dp);
    }

    fn host_only(&self, r: &mut Report) {
        const M: &str = "host-only";
        let host = self.host;
        let _ = peer::readdress(&host.netns, &host.ifname, "192.168.56.1/24");
        let _dns = peer::dns_server(&host.netns, "192.168.56.1", "example.test", "198.18.0.77");
        let Some(dp) = self.start(r, M, &["--host", &host.dp_ifname]) else {
            return;
        };
        if let Some((a1, a2)) = self.leases(r, M) {
            ping_check(r, M, "VM1 -> VM2", self.vm1.ping(&a2, 3));
            ping_check(r, M, "VM -> Host", self.vm1.ping("192.168.56.1", 3));
            ping_check(r, M, "Host -> VM", peer::ping(&host.netns, &a1, 3));
            let h = self.ns(host);
            tcp_both_ways(r, (M, "VM -> Host"), self.vm1, h, "192.168.56.1");
            let g2 = End::Guest(self.vm2);
            tcp(
                r,
                (M, "Host -> VM (host opens) TCP 8 MiB"),
                h,
                g2,
                Opener::Sender,
                (&a2, 5304),
                5304,
                MIB8,
            );
            tcp(
                r,
                (M, "VM1 -> VM2 TCP 1 KiB"),
                End::Guest(self.vm1),
                g2,
                Opener::Sender,
                (&a2, 5305),
                5305,
                SMALL,
            );
            r.add(M, "VM -> Host UDP (DNS)", dns(self.vm1, "192.168.56.1"));
        }
        self.stop(r, M, dp);
    }

    fn bridged(&self, r: &mut Report) {
        const M: &str = "bridged";
        let (host, inet) = (self.host, self.inet);
        let _ = peer::readdress(&host.netns, &host.ifname, "198.18.0.254/24");
        let _ = peer::readdress(&inet.netns, &inet.ifname, "198.18.0.1/24");
        let _dns = peer::dns_server(&inet.netns, "198.18.0.1", "example.test", "198.18.0.77");
        let args = ["--host", &host.dp_ifname, "--uplink", &inet.dp_ifname];
        let Some(dp) = self.start(r, M, &args) else {
            return;
        };
        let res = self
            .vm1
            .set_static("198.18.0.11/24", None)
            .and_then(|()| self.vm2.set_static("198.18.0.12/24", None));
        if r.add(
            M,
            "static addresses",
            res.map(|()| "198.18.0.11, .12".into()),
        ) {
            ping_check(r, M, "VM1 -> VM2", self.vm1.ping("198.18.0.12", 3));
            ping_check(r, M, "VM -> Host", self.vm1.ping("198.18.0.254", 3));
            ping_check(r, M, "VM -> Inet", self.vm2.ping("198.18.0.1", 3));
            ping_check(
                r,
                M,
                "Inet -> VM",
                peer::ping(&inet.netns, "198.18.0.11", 3),
            );
            ping_check(
                r,
                M,
                "Host -> VM",
                peer::ping(&host.netns, "198.18.0.12", 3),
            );
            let (i, h, g2) = (self.ns(inet), self.ns(host), End::Guest(self.vm2));
            tcp_both_ways(r, (M, "VM -> Inet"), self.vm1, i, "198.18.0.1");
            tcp(
                r,
                (M, "Inet -> VM (inet opens) TCP 8 MiB"),
                i,
                g2,
                Opener::Sender,
                ("198.18.0.12", 5304),
                5304,
                MIB8,
            );
            tcp(
                r,
                (M, "VM -> Host TCP 1 KiB"),
                g2,
                h,
                Opener::Sender,
                ("198.18.0.254", 5305),
                5305,
                SMALL,
            );
            tcp(
                r,
                (M, "Host -> VM (host opens) TCP 1 KiB"),
                h,
                g2,
                Opener::Sender,
                ("198.18.0.12", 5306),
                5306,
                SMALL,
            );
            r.add(M, "VM -> Inet UDP (DNS)", dns(self.vm1, "198.18.0.1"));
        }
        self.stop(r, M, dp);
    }

    fn nat(&self, r: &mut Report, network: bool) {
        let m: &'static str = if network { "nat-network" } else { "nat" };
        let (host, inet) = (self.host, self.inet);
        let _ = peer::readdress(&host.netns, &host.ifname, "198.19.0.1/24");
        let _ = peer::readdress(&inet.netns, &inet.ifname, "198.18.0.1/24");
        let _dns = peer::dns_server(&inet.netns, "198.18.0.1", "example.test", "198.18.0.77");
        let rule = if network {
            "fwd:tcp:[]:2222:[10.0.2.4]:5201"
        } else {
            "fwd,tcp,,2222,,5201"
        };
        let control = self.dir.join(&format!("{m}.sock")).display().to_string();
        let args = [
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
            rule,
            "--control",
            &control,
        ];
        let Some(dp) = self.start(r, m, &args) else {
            return;
        };
        if let Some((a1, a2)) = self.leases(r, m) {
            if !network && (a1 != "10.0.2.15" || a2 != "10.0.2.15") {
                r.add(
                    m,
                    "both guests lease 10.0.2.15",
                    Err(anyhow::anyhow!("{a1}, {a2}")),
                );
            }
            let gw = if network { "10.0.2.1" } else { "10.0.2.2" };
            ping_check(r, m, &format!("VM -> gateway {gw}"), self.vm1.ping(gw, 2));
            ping_check(r, m, "VM -> Inet", self.vm1.ping("198.18.0.1", 3));
            let (i, h) = (self.ns(inet), self.ns(host));
            let (g1, g2) = (Side::Guest(self.vm1), Side::Guest(self.vm2));
            let seen = source_seen(
                g1,
                Side::Netns(&inet.netns),
                ("198.18.0.1", 5201),
                ("198.18.0.1", 5201),
            );
            r.add(
                m,
                "VM -> Inet from 198.18.0.2",
                expect_source(seen, "198.18.0.2"),
            );
            tcp_both_ways(r, (m, "VM -> Inet"), self.vm1, i, "198.18.0.1");
            // VM -> Host through the host loopback 10.0.2.2, seen from the host link.
            let seen = source_seen(
                g2,
                Side::Netns(&host.netns),
                ("198.19.0.1", 5202),
                ("10.0.2.2", 5202),
            );
            r.add(
                m,
                "VM -> Host (10.0.2.2) from 198.19.0.2",
                expect_source(seen, "198.19.0.2"),
            );
            tcp(
                r,
                (m, "VM -> Host (10.0.2.2) TCP 1 KiB"),
                End::Guest(self.vm2),
                h,
                Opener::Sender,
                ("10.0.2.2", 5304),
                5304,
                SMALL,
            );
            // UDP: DNS through the proxy the lease names.
            let res = match self.vm1.resolver() {
                None => Err(anyhow::anyhow!("the lease named no DNS server")),
                Some(ns) => dns(self.vm1, &ns),
            };
            r.add(m, "VM -> Inet UDP (DNS proxy)", res);
            // Port forwards: from inet to the external address, from the host to the host
            // link address; 2223 has no rule.
            let target = if network { "10.0.2.4" } else { "10.0.2.15" };
            let fwd = if network && a2 == target {
                self.vm2
            } else {
                self.vm1
            };
            for (cell, e, addr) in [
                ("Inet -> VM", inet, "198.18.0.2"),
                ("Host -> VM", host, "198.19.0.2"),
            ] {
                tcp(
                    r,
                    (m, &format!("{cell} port forward TCP 8 MiB")),
                    self.ns(e),
                    End::Guest(fwd),
                    Opener::Sender,
                    (addr, 2222),
                    5201,
                    MIB8,
                );
                let res = fwd.serve(target, 5201).and_then(|()| {
                    let open = peer::connects(&e.netns, addr, 2223);
                    let _ = fwd.served(5201);
                    if open {
                        anyhow::bail!("port 2223 without a rule is open");
                    }
                    Ok("port 2223 without a rule blocked".to_string())
                });
                r.add(m, &format!("{cell} without a rule -"), res);
            }
            if network {
                ping_check(r, m, "VM1 -> VM2", self.vm1.ping(&a2, 3));
                tcp(
                    r,
                    (m, "VM1 -> VM2 TCP 1 KiB"),
                    End::Guest(self.vm1),
                    End::Guest(self.vm2),
                    Opener::Sender,
                    (&a2, 5305),
                    5305,
                    SMALL,
                );
            } else {
                let res = self
                    .vm2
                    .capture(&format!("ether src {}", self.vm1.mac()))
                    .and_then(|()| {
                        self.vm1.probe("10.0.2.255", "10.0.2.16");
                        let seen = self.vm2.captured()?;
                        if seen.trim().is_empty() {
                            Ok(
                                "vm2 captured none of vm1's broadcast, unicast or ARP frames"
                                    .into(),
                            )
                        } else {
                            Err(anyhow::anyhow!("vm2 saw vm1's frames: {}", seen.trim()))
                        }
                    });
                r.add(m, "VM1 <-> VM2 -", res);
            }
        }
        self.stop(r, m, dp);
    }
}

fn expect_source(seen: anyhow::Result<String>, want: &str) -> anyhow::Result<String> {
    let seen = seen?;
    if seen != want {
        anyhow::bail!("the server saw {seen:?}, not {want}");
    }
    Ok(format!("the server saw the connection come from {seen}"))
}

/// Wait until a Unix socket accepts connections (the dataplane is listening).
fn wait_socket(path: &std::path::Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        if Instant::now() > deadline {
            anyhow::bail!("nothing listens at {} after 20 s", path.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

/// A counter `KEY=N` of a counters line (0 when absent).
fn counter(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        .unwrap_or(0)
}

/// A DNS query from `guest` to `server` (dnsmasq knows example.test as 198.18.0.77).
fn dns(guest: &Guest, server: &str) -> anyhow::Result<String> {
    let out = guest.nslookup("example.test", server);
    if out.contains("198.18.0.77") {
        Ok(format!("example.test -> 198.18.0.77 through {server}"))
    } else {
        Err(anyhow::anyhow!("through {server}: {}", out.trim()))
    }
}

/// Which NICs the guests have.
#[derive(Clone, Copy, PartialEq)]
enum Nics {
    /// Taps in the dataplane's namespace.
    Taps,
    /// vhost-user sockets the dataplane listens on.
    VhostUser,
}

#[test]
fn qemu_guests_every_mode_default_offloads() {
    every_mode("qemu_guests_every_mode_default_offloads", Nics::Taps);
}

/// The same checks with the guests on vhost-user (`--vm vhost-user:PATH`): no kernel
/// in the guests' frame path, offloads negotiated with vnet itself. Each mode's
/// dataplane is a new process, so the guests also reconnect five times.
#[test]
fn qemu_guests_on_vhost_user_every_mode_default_offloads() {
    every_mode(
        "qemu_guests_on_vhost_user_every_mode_default_offloads",
        Nics::VhostUser,
    );
}

fn every_mode(t: &str, nics: Nics) {
    if !privileged_or_skip(t) {
        return;
    }
    let Some(image) = qemu_or_skip(t) else { return };
    let started = Instant::now();
    let modes: Vec<String> = std::env::var("VNET_QEMU_MODES")
        .unwrap_or_else(|_| "internal,host-only,bridged,nat,nat-network".into())
        .split(',')
        .map(str::to_string)
        .collect();
    let tag = if nics == Nics::Taps { "tq" } else { "tv" };
    let prefix = format!("{tag}{}", std::process::id() % 10000);
    let topo = Topology::build(&prefix, &[("host", None), ("inet", None)]).expect("topology");
    let (host, inet) = (topo.endpoint("host").clone(), topo.endpoint("inet").clone());
    let dir = TempDir::new("qemu");
    let (accel, why) = Accel::choose(&image);
    eprintln!("accelerator: {} ({why})", accel.as_str());
    let mut _taps: Vec<Tap> = Vec::new();
    // QEMU waits at start for its vhost-user backend: a dataplane serves the sockets
    // while the guests boot.
    let mut booting: Option<Dataplane> = None;
    let specs = match nics {
        Nics::Taps => {
            _taps = (1..=2)
                .map(|i| Tap::create(topo.dp_netns(), &format!("{prefix}t{i}")).expect("tap"))
                .collect();
            GuestSpec::on_taps(&_taps)
        }
        Nics::VhostUser => {
            let socks: Vec<_> = (1..=2).map(|i| dir.join(&format!("vm{i}.sock"))).collect();
            let vms: Vec<String> = socks
                .iter()
                .map(|p| format!("vhost-user:{}", p.display()))
                .collect();
            let args = [
                "run", "--mode", "internal", "--vm", &vms[0], "--vm", &vms[1],
            ];
            booting = Some(
                Dataplane::start_exe(EXE, topo.dp_netns(), &args).expect("dataplane for the boot"),
            );
            for p in &socks {
                wait_socket(p).expect("the boot's dataplane listens");
            }
            // vm2 as QEMU's multi-queue set-ups have it (`queues=2`, `mq=on`): vnet
            // offers the pairs, QEMU sets both up, the one-vCPU guest enables one.
            let mut specs = GuestSpec::on_vhost_user(&socks);
            specs[1].queue_pairs = 2;
            specs
        }
    };
    let guests =
        Guest::boot_all(&specs, topo.dp_netns(), &image, accel, &dir.0).expect("guests boot");
    if let Some(mut dp) = booting.take() {
        guests.iter().for_each(Guest::power_off);
        dp.stop().expect("the boot's dataplane stops");
    }
    eprintln!("guests booted in {:.1} s", started.elapsed().as_secs_f64());
    let rig = Rig {
        dp: topo.dp_netns(),
        host: &host,
        inet: &inet,
        vm1: &guests[0],
        vm2: &guests[1],
        guests: &guests,
        dir: &dir,
    };
    let mut r = Report::default();
    for m in &modes {
        let t = Instant::now();
        match m.as_str() {
            "internal" => rig.internal(&mut r),
            "host-only" => rig.host_only(&mut r),
            "bridged" => rig.bridged(&mut r),
            "nat" => rig.nat(&mut r, false),
            "nat-network" => rig.nat(&mut r, true),
            other => panic!("VNET_QEMU_MODES names no mode {other:?}"),
        }
        eprintln!("  ({m}: {:.1} s)", t.elapsed().as_secs_f64());
    }
    let failed: Vec<String> =
        r.0.iter()
            .filter(|o| !o.ok)
            .map(|o| format!("{} {}: {}", o.mode, o.check, o.evidence))
            .collect();
    eprintln!(
        "live_qemu ({}): {} checks, {} failed, accelerator {}, {:.1} s",
        if nics == Nics::Taps {
            "taps"
        } else {
            "vhost-user"
        },
        r.0.len(),
        failed.len(),
        accel.as_str(),
        started.elapsed().as_secs_f64()
    );
    drop(guests);
    assert!(
        failed.is_empty(),
        "with QEMU guests at default offloads these checks failed:\n{}",
        failed.join("\n")
    );
}
