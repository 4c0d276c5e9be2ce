//! NAT behaviour (RFC 4787 UDP, RFC 5382 TCP, RFC 5508 ICMP): one case per requirement,
//! driven through a whole NAT or NAT Network pipeline (guest ports, host link, uplink)
//! with crafted Ethernet frames in virtual time.
//!
//! Topology of every case: `vm1` port 0, `vm2` port 1, host port 2, uplink port 3;
//! external address 198.18.0.2, next hop (`inet`) 198.18.0.1, a second Internet host
//! 198.18.0.3 behind the same next hop. NAT guests are both 10.0.2.15 (each in its own
//! realm); NAT Network guests are 10.0.2.4 and 10.0.2.5. The uplink's next hop is
//! resolved by answering the pipeline's first ARP request, as `inet` would.
//!
//! Where a requirement allows a range (timeouts), the case passes on the bound the RFC
//! sets and reports what it saw beyond it as evidence.

use super::plan::{
    mac_of, NAT_EXTERNAL_IP, NAT_HOST_IP, NAT_HOST_LINK_IP, NAT_HOST_LOOPBACK, NAT_INET_IP,
};
use super::suite::{
    arp_reply, case, ensure, eth_frame, ipv4_packet, parse, Check, Parsed, PipeRig, Sent,
    SuiteReport, L4,
};
use super::table::Role;
use smoltcp::wire::TcpControl;
use std::net::Ipv4Addr;
use vnet_core::frame::PortId;
use vnet_core::time::Instant;
use vnet_modes::gateway::service_mac;
use vnet_modes::nat::ForwardRule;
use vnet_modes::natmode::{HostLink, NatFlavor, NatModeConfig, NatSpec};

const VM1: PortId = 0;
const VM2: PortId = 1;
const HOST: PortId = 2;
const UPLINK: PortId = 3;
const EXT: Ipv4Addr = NAT_EXTERNAL_IP;
const INET: Ipv4Addr = NAT_INET_IP;
const INET2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);

/// One NAT pipeline with its next hops resolved.
struct NatRig {
    rig: PipeRig,
    flavor: NatFlavor,
}

impl NatRig {
    fn new(flavor: NatFlavor, tweak: impl FnOnce(&mut NatModeConfig)) -> Result<Self, String> {
        let mut config = NatModeConfig::new(flavor, 2, EXT, INET);
        config.host = Some(HostLink {
            own_ip: NAT_HOST_LINK_IP,
            host_ip: NAT_HOST_IP,
        });
        tweak(&mut config);
        let spec = NatSpec::new(config, 1, Instant::ZERO).map_err(|e| format!("setup: {e}"))?;
        let mode = spec
            .build(0, 1, Instant::ZERO)
            .map_err(|e| format!("setup: {e}"))?;
        let mut rig = PipeRig::new(Box::new(mode), Instant::from_secs(1));
        let asked = rig.poll().iter().any(|(m, f)| {
            m.iter().eq([UPLINK])
                && f.len() >= 42
                && f[12..14] == [8, 6]
                && f[38..42] == INET.octets()
        });
        ensure(asked, || {
            "setup: no ARP request for the next hop 198.18.0.1 on the uplink".into()
        })?;
        rig.send(
            UPLINK,
            &arp_reply(mac_of(Role::Inet), INET, service_mac(EXT).0, EXT),
        );
        rig.send(
            HOST,
            &arp_reply(
                mac_of(Role::Host),
                NAT_HOST_IP,
                service_mac(NAT_HOST_LINK_IP).0,
                NAT_HOST_LINK_IP,
            ),
        );
        rig.poll();
        Ok(Self { rig, flavor })
    }

    fn guest(&self, port: PortId) -> Ipv4Addr {
        match (self.flavor, port) {
            (NatFlavor::PerVm, _) => Ipv4Addr::new(10, 0, 2, 15),
            (NatFlavor::Network, VM1) => Ipv4Addr::new(10, 0, 2, 4),
            (NatFlavor::Network, _) => Ipv4Addr::new(10, 0, 2, 5),
        }
    }

    fn router(&self) -> Ipv4Addr {
        match self.flavor {
            NatFlavor::PerVm => NAT_HOST_LOOPBACK,
            NatFlavor::Network => Ipv4Addr::new(10, 0, 2, 1),
        }
    }

    fn guest_mac(port: PortId) -> [u8; 6] {
        mac_of(if port == VM1 { Role::Vm1 } else { Role::Vm2 })
    }

    /// A guest packet to the router (its default gateway).
    fn guest_sends(&mut self, port: PortId, sport: u16, dst: Ipv4Addr, l4: L4<'_>) -> Sent {
        let ip = ipv4_packet(self.guest(port), dst, with_src_port(l4, sport));
        let frame = eth_frame(Self::guest_mac(port), service_mac(self.router()).0, &ip);
        self.rig.send(port, &frame)
    }

    /// A guest packet that must leave on the uplink: what `inet` sees.
    fn out(
        &mut self,
        port: PortId,
        sport: u16,
        dst: Ipv4Addr,
        l4: L4<'_>,
    ) -> Result<Parsed, String> {
        let sent = self.guest_sends(port, sport, dst, l4);
        ensure(sent.to(UPLINK), || {
            format!(
                "{}:{sport} -> {dst} was {}, not sent on the uplink",
                self.guest(port),
                sent.describe()
            )
        })?;
        parse(&sent.frame).map_err(|e| format!("translated packet: {e}"))
    }

    /// A packet from the Internet host `src` to the external address.
    fn inbound(&mut self, src: Ipv4Addr, l4: L4<'_>) -> Sent {
        let ip = ipv4_packet(src, EXT, l4);
        let frame = eth_frame(mac_of(Role::Inet), service_mac(EXT).0, &ip);
        self.rig.send(UPLINK, &frame)
    }

    /// Move the clock to `secs` after the start, run the timers, and answer the ARP
    /// requests for the next hops as `inet` and the host would.
    fn at(&mut self, secs: u64) {
        for (mask, f) in self.rig.at(secs) {
            if f.len() < 42 || f[12..14] != [8, 6] || f[21] != 1 {
                continue;
            }
            let target = Ipv4Addr::new(f[38], f[39], f[40], f[41]);
            let asker = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
            let mut sha = [0u8; 6];
            sha.copy_from_slice(&f[22..28]);
            let (port, mac) = if target == INET && mask.iter().any(|p| p == UPLINK) {
                (UPLINK, mac_of(Role::Inet))
            } else if target == NAT_HOST_IP && mask.iter().any(|p| p == HOST) {
                (HOST, mac_of(Role::Host))
            } else {
                continue;
            };
            self.rig.send(port, &arp_reply(mac, target, sha, asker));
        }
    }

    /// Whether an inbound packet reached the guest on `port` (NAT: on that port alone;
    /// NAT Network: flooding the segment is what a switch does with an aged-out MAC),
    /// and its parse, or what happened instead.
    fn delivered(&self, sent: &Sent, port: PortId) -> Result<Parsed, String> {
        let ports = sent.ports();
        let ok = match self.flavor {
            NatFlavor::PerVm => sent.to(port),
            NatFlavor::Network => {
                ports.iter().any(|p| p == port) && ports.iter().all(|p| p == VM1 || p == VM2)
            }
        };
        ensure(ok, || sent.describe())?;
        parse(&sent.frame).map_err(|e| format!("delivered packet: {e}"))
    }
}

fn with_src_port(l4: L4<'_>, sport: u16) -> L4<'_> {
    match l4 {
        L4::Udp(_, d, p) => L4::Udp(sport, d, p),
        L4::Tcp {
            dst,
            control,
            seq,
            ack,
            payload,
            ..
        } => L4::Tcp {
            src: sport,
            dst,
            control,
            seq,
            ack,
            payload,
        },
        icmp => icmp,
    }
}

fn udp_to(port: u16) -> L4<'static> {
    L4::Udp(0, port, b"vnb-nat-suite")
}

fn tcp(src: u16, dst: u16, control: TcpControl, seq: u32, ack: Option<u32>) -> L4<'static> {
    L4::Tcp {
        src,
        dst,
        control,
        seq,
        ack,
        payload: &[],
    }
}

fn echo(ty: u8, id: u16, seq: u16) -> L4<'static> {
    let [a, b] = id.to_be_bytes();
    let [c, d] = seq.to_be_bytes();
    L4::Icmp(ty, 0, [a, b, c, d], b"vnb-echo")
}

fn hostport(ip: Ipv4Addr, port: u16) -> String {
    format!("{ip}:{port}")
}

/// Run the NAT behaviour suite on `flavor`'s pipeline.
pub fn run(flavor: NatFlavor) -> SuiteReport {
    let f = flavor;
    let label = match f {
        NatFlavor::PerVm => "nat",
        NatFlavor::Network => "nat-network",
    };
    let cases = vec![
        case(
            "rfc4787_req1_eim_udp",
            "RFC 4787 REQ-1: endpoint-independent mapping (UDP)",
            || eim(f, udp_to(7)),
        ),
        case(
            "rfc4787_req3_no_port_overloading",
            "RFC 4787 REQ-3: no port overloading; port preserved where free",
            || no_overloading(f),
        ),
        case(
            "rfc4787_req5_udp_timeout_300s",
            "RFC 4787 REQ-5: UDP mapping lives >= 120 s, default 300 s",
            || udp_timeout(f),
        ),
        case(
            "rfc4787_req6_refresh_outbound_only",
            "RFC 4787 REQ-6: outbound traffic refreshes the mapping",
            || refresh(f),
        ),
        case(
            "rfc4787_req8_filtering_address_dependent",
            "RFC 4787 REQ-8: address-dependent filtering (the stated default)",
            || filtering(f),
        ),
        case(
            "rfc4787_req9_hairpinning",
            "RFC 4787 REQ-9: hairpinning through a forwarded external port, external source (9a)",
            || hairpin(f),
        ),
        case(
            "rfc4787_req12_icmp_error_keeps_mapping",
            "RFC 4787 REQ-12: an ICMP error does not end the mapping",
            || icmp_error(f, true),
        ),
        case(
            "rfc5382_req1_eim_tcp",
            "RFC 5382 REQ-1: endpoint-independent mapping (TCP)",
            || eim(f, tcp(0, 80, TcpControl::Syn, 1000, None)),
        ),
        case(
            "rfc5382_req4_unsolicited_syn_not_answered",
            "RFC 5382 REQ-4: an unsolicited inbound SYN is not passed nor answered within 6 s",
            || unsolicited_syn(f),
        ),
        case(
            "rfc5382_req5_tcp_established_7440s",
            "RFC 5382 REQ-5: established idle timeout >= 2 h 4 min",
            || tcp_established(f),
        ),
        case(
            "rfc5382_req5_tcp_transitory_240s",
            "RFC 5382 REQ-5: transitory idle timeout >= 4 min",
            || tcp_transitory(f),
        ),
        case(
            "rfc5508_req1_icmp_echo_identifier",
            "RFC 5508 REQ-1: echo passes; identifier mapping independent of the host",
            || icmp_echo(f),
        ),
        case(
            "rfc5508_req2_icmp_timeout_60s",
            "RFC 5508 REQ-2: ICMP query mapping lives >= 60 s",
            || icmp_timeout(f),
        ),
        case(
            "rfc5508_req4_icmp_error_translated",
            "RFC 5508 REQ-4: inbound ICMP error reverted to the inside addresses, checksums fixed",
            || icmp_error(f, false),
        ),
        case(
            "rfc5508_req8_table_full_3_13",
            "RFC 5508 REQ-8: no room for a mapping -> ICMP 3/13 to the sender, no crash",
            || table_full(f),
        ),
    ];
    SuiteReport {
        suite: "nat-behaviour".into(),
        subject: format!("vnet-modes {label}, in memory"),
        cases,
    }
}

fn eim(f: NatFlavor, l4: L4<'static>) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let g = n.guest(VM1);
    let a = n.out(VM1, 40000, INET, l4)?;
    let b = n.out(VM1, 40000, INET2, l4)?;
    ensure(a.src == EXT && a.src == b.src && a.sport == b.sport, || {
        format!(
            "{g}:40000 left as {} to {INET} but as {} to {INET2}",
            hostport(a.src, a.sport),
            hostport(b.src, b.sport)
        )
    })?;
    Ok(format!(
        "{g}:40000 left as {} to both {INET} and {INET2}",
        hostport(a.src, a.sport)
    ))
}

fn no_overloading(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let a = n.out(VM1, 5000, INET, udp_to(7))?;
    let b = n.out(VM2, 5000, INET, udp_to(7))?;
    let (g1, g2) = (n.guest(VM1), n.guest(VM2));
    ensure(a.sport != b.sport, || {
        format!(
            "vm1 {g1}:5000 and vm2 {g2}:5000 both got {} to the same {INET}:7",
            hostport(EXT, a.sport)
        )
    })?;
    ensure(a.sport == 5000, || {
        format!("the free port 5000 was not preserved: vm1 got {}", a.sport)
    })?;
    Ok(format!(
        "vm1 {g1}:5000 -> {}, vm2 {g2}:5000 -> {} (same destination {INET}:7; port preserved for the first)",
        hostport(a.src, a.sport),
        hostport(b.src, b.sport)
    ))
}

/// The mapping of vm1:5000 -> INET:7 made at time 0; whether a reply at `secs` arrives.
fn reply_at(n: &mut NatRig, ext_port: u16, secs: u64) -> bool {
    n.at(secs);
    let sent = n.inbound(INET, L4::Udp(7, ext_port, b"reply"));
    sent.to(VM1)
}

fn first_expiry(n: &mut NatRig, ext_port: u16, from: u64, to: u64, step: u64) -> Option<u64> {
    let mut t = from;
    while t <= to {
        if !reply_at(n, ext_port, t) {
            return Some(t);
        }
        t += step;
    }
    None
}

fn udp_timeout(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let p = n.out(VM1, 5000, INET, udp_to(7))?.sport;
    for t in [119, 299] {
        ensure(reply_at(&mut n, p, t), || {
            format!("the reply from {INET}:7 at {t} s after the last outbound packet was dropped")
        })?;
    }
    let gone = first_expiry(&mut n, p, 300, 400, 5);
    ensure(gone.is_some(), || {
        "the mapping still answered 400 s after the last outbound packet (default 300 s)".into()
    })?;
    Ok(format!(
        "replies to {} delivered at 119 s and 299 s (inbound did not refresh); dropped from {} s",
        hostport(EXT, p),
        gone.unwrap_or(0)
    ))
}

fn refresh(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let p = n.out(VM1, 5000, INET, udp_to(7))?.sport;
    n.at(250);
    let again = n.out(VM1, 5000, INET, udp_to(7))?.sport;
    ensure(again == p, || {
        format!("the mapping changed from {p} to {again}")
    })?;
    ensure(reply_at(&mut n, p, 540), || {
        "the reply at 540 s (290 s after the refresh at 250 s) was dropped".into()
    })?;
    let gone = first_expiry(&mut n, p, 555, 700, 5);
    ensure(gone.is_some(), || "the mapping never expired".into())?;
    Ok(format!(
        "outbound at 0 s and 250 s: reply at 540 s delivered, dropped from {} s",
        gone.unwrap_or(0)
    ))
}

fn filtering(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let p = n.out(VM1, 5000, INET, udp_to(7))?.sport;
    let other_host = n.inbound(INET2, L4::Udp(7, p, b"from elsewhere"));
    ensure(!other_host.to(VM1), || {
        format!(
            "{INET2}:7 (never contacted) reached vm1 through {}",
            hostport(EXT, p)
        )
    })?;
    let other_port = n.inbound(INET, L4::Udp(9, p, b"other port"));
    let d = n
        .delivered(&other_port, VM1)
        .map_err(|e| format!("{INET}:9 (contacted address, other port): {e}"))?;
    Ok(format!(
        "mapping {} after vm1 -> {INET}:7: from {INET2}:7 {}; from {INET}:9 delivered to {}",
        hostport(EXT, p),
        other_host.describe(),
        hostport(d.dst, d.dport)
    ))
}

fn hairpin(f: NatFlavor) -> Check {
    // NAT: vm1 reaches itself through its own forward; NAT Network: vm2 reaches vm1.
    let (sender, rule) = match f {
        NatFlavor::PerVm => (
            VM1,
            ForwardRule::parse_natpf("hp,udp,,2222,,7", 0, Ipv4Addr::new(10, 0, 2, 15)),
        ),
        NatFlavor::Network => (
            VM2,
            ForwardRule::parse_natnetwork("hp:udp:[]:2222:[10.0.2.4]:7"),
        ),
    };
    let rule = rule.map_err(|e| format!("setup: {e}"))?;
    let mut n = NatRig::new(f, |c| c.forwards.push(rule))?;
    let (gs, gr) = (n.guest(sender), n.guest(VM1));
    if f == NatFlavor::Network {
        // The segment learns vm1 from its own traffic first (a NAT Network guest that
        // has not sent an IPv4 packet is not reachable through a forward: see the
        // `/rule` cases of the table).
        n.out(VM1, 7, INET, udp_to(7))?;
    }
    let sent = n.guest_sends(sender, 6000, EXT, udp_to(2222));
    let d = n
        .delivered(&sent, VM1)
        .map_err(|e| format!("{gs}:6000 -> {EXT}:2222 (forwarded to {gr}:7): {e}"))?;
    ensure(d.dst == gr && d.dport == 7, || {
        format!(
            "hairpinned to {} instead of {gr}:7",
            hostport(d.dst, d.dport)
        )
    })?;
    ensure(d.src == EXT, || {
        format!(
            "the receiver saw the source {} (REQ-9a wants the external address)",
            hostport(d.src, d.sport)
        )
    })?;
    // The answer must find its way back the same way.
    let back = n.guest_sends(VM1, 7, EXT, L4::Udp(7, d.sport, b"back"));
    let b = n
        .delivered(&back, sender)
        .map_err(|e| format!("the answer to {}: {e}", hostport(EXT, d.sport)))?;
    ensure(
        b.src == EXT && b.sport == 2222 && b.dst == gs && b.dport == 6000,
        || {
            format!(
                "the answer arrived as {} -> {}",
                hostport(b.src, b.sport),
                hostport(b.dst, b.dport)
            )
        },
    )?;
    Ok(format!(
        "{gs}:6000 -> {EXT}:2222 arrived at {gr}:7 from {} (external); the answer came back as {EXT}:2222 -> {gs}:6000",
        hostport(d.src, d.sport)
    ))
}

fn unsolicited_syn(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let syn = n.inbound(INET, tcp(40000, 40001, TcpControl::Syn, 77, None));
    ensure(!syn.to(VM1) && !syn.to(VM2), || {
        format!("an unsolicited SYN to {EXT}:40001 reached a guest")
    })?;
    ensure(!syn.to(UPLINK), || {
        "an unsolicited SYN was answered at once (REQ-4: not within 6 s)".into()
    })?;
    let mut answered = Vec::new();
    for t in 1..=7 {
        n.rig.now = Instant::from_secs(1 + t);
        for (m, frame) in n.rig.poll() {
            if m.iter().any(|p| p == UPLINK) && frame.len() > 34 && frame[23] == 1 {
                answered.push(format!("ICMP {}/{} at {t} s", frame[34], frame[35]));
            }
        }
    }
    Ok(format!(
        "SYN {INET}:40000 -> {EXT}:40001: {}; afterwards: {}",
        syn.describe(),
        if answered.is_empty() {
            "no ICMP port unreachable within 7 s (REQ-4 SHOULD send 3/3 after 6 s)".to_string()
        } else {
            answered.join(", ")
        }
    ))
}

/// A TCP connection vm1:40000 <-> INET:80 established at time 0; the external port.
fn established(n: &mut NatRig) -> Result<u16, String> {
    let syn = n.out(VM1, 40000, INET, tcp(0, 80, TcpControl::Syn, 1000, None))?;
    let p = syn.sport;
    let synack = n.inbound(INET, tcp(80, p, TcpControl::Syn, 5000, Some(1001)));
    n.delivered(&synack, VM1)
        .map_err(|e| format!("SYN-ACK: {e}"))?;
    n.out(
        VM1,
        40000,
        INET,
        tcp(0, 80, TcpControl::None, 1001, Some(5001)),
    )?;
    Ok(p)
}

fn tcp_established(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let p = established(&mut n)?;
    n.at(7439);
    let late = n.inbound(INET, tcp(80, p, TcpControl::None, 5001, Some(1001)));
    n.delivered(&late, VM1)
        .map_err(|e| format!("a segment after 7439 s idle: {e}"))?;
    // Idle again from 7439 s: gone some time after 7439 + 7440 s.
    let mut gone = None;
    for t in [7439 + 7440 + 60, 7439 + 7440 + 600] {
        n.at(t);
        let s = n.inbound(INET, tcp(80, p, TcpControl::None, 5001, Some(1001)));
        if !s.to(VM1) {
            gone = Some(t);
            break;
        }
    }
    Ok(format!(
        "connection via {} idle 7439 s: segment delivered; {}",
        hostport(EXT, p),
        match gone {
            Some(t) => format!("after a second idle period, dropped at {t} s"),
            None => "still delivered 8040 s after the last segment".into(),
        }
    ))
}

fn tcp_transitory(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let p = n
        .out(VM1, 40000, INET, tcp(0, 80, TcpControl::Syn, 1000, None))?
        .sport;
    n.at(239);
    let synack = n.inbound(INET, tcp(80, p, TcpControl::Syn, 5000, Some(1001)));
    n.delivered(&synack, VM1)
        .map_err(|e| format!("SYN-ACK 239 s after the SYN: {e}"))?;
    let mut m = NatRig::new(f, |_| {})?;
    let q = m
        .out(VM1, 40000, INET, tcp(0, 80, TcpControl::Syn, 1000, None))?
        .sport;
    m.at(600);
    let late = m.inbound(INET, tcp(80, q, TcpControl::Syn, 5000, Some(1001)));
    Ok(format!(
        "half-open via {}: SYN-ACK at 239 s delivered; at 600 s {}",
        hostport(EXT, p),
        if late.to(VM1) {
            "still delivered".to_string()
        } else {
            format!("{} (expired)", late.describe())
        }
    ))
}

fn icmp_echo(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let g = n.guest(VM1);
    let a = n.out(VM1, 0, INET, echo(8, 0x1234, 1))?;
    let b = n.out(VM1, 0, INET2, echo(8, 0x1234, 2))?;
    ensure(a.src == EXT && a.sport == b.sport, || {
        format!(
            "identifier 0x1234 became {:#06x} to {INET} and {:#06x} to {INET2}",
            a.sport, b.sport
        )
    })?;
    let reply = n.inbound(INET, echo(0, a.sport, 1));
    let d = n
        .delivered(&reply, VM1)
        .map_err(|e| format!("echo reply: {e}"))?;
    ensure(d.dst == g && d.sport == 0x1234, || {
        format!(
            "the reply reached {} with identifier {:#06x}",
            d.dst, d.sport
        )
    })?;
    Ok(format!(
        "echo id 0x1234 from {g} left as {EXT} id {:#06x} to both {INET} and {INET2}; the reply came back to {g} id 0x1234",
        a.sport
    ))
}

fn icmp_timeout(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let a = n.out(VM1, 0, INET, echo(8, 0x4242, 1))?;
    n.at(59);
    let reply = n.inbound(INET, echo(0, a.sport, 1));
    n.delivered(&reply, VM1)
        .map_err(|e| format!("echo reply 59 s later: {e}"))?;
    n.at(59 + 61 + 60);
    let late = n.inbound(INET, echo(0, a.sport, 2));
    Ok(format!(
        "reply at 59 s delivered; at 180 s {}",
        if late.to(VM1) {
            "still delivered".to_string()
        } else {
            format!("{} (expired)", late.describe())
        }
    ))
}

fn icmp_error(f: NatFlavor, then_reply: bool) -> Check {
    let mut n = NatRig::new(f, |_| {})?;
    let g = n.guest(VM1);
    let sent = n.guest_sends(VM1, 5000, INET, udp_to(7));
    ensure(sent.to(UPLINK), || format!("outbound: {}", sent.describe()))?;
    let out = parse(&sent.frame)?;
    let p = out.sport;
    // Destination unreachable / port unreachable from INET, quoting the translated packet
    // (IP header + 8 bytes) as it saw it.
    let quoted = &sent.frame[14..14 + 28];
    let err = n.inbound(INET, L4::Icmp(3, 3, [0; 4], quoted));
    let d = n
        .delivered(&err, VM1)
        .map_err(|e| format!("ICMP 3/3: {e}"))?;
    let l4 = &d.l4;
    ensure(d.dst == g && l4[0] == 3 && l4[1] == 3, || {
        format!("delivered to {} as ICMP {}/{}", d.dst, l4[0], l4[1])
    })?;
    let inner = &l4[8..];
    ensure(inner.len() >= 28, || {
        format!("quote of {} bytes", inner.len())
    })?;
    // The quote is cut after 8 transport bytes: its total length exceeds it.
    let inner_ip = smoltcp::wire::Ipv4Packet::new_unchecked(&inner[..20]);
    let isrc = inner_ip.src_addr();
    let idst = inner_ip.dst_addr();
    let isport = u16::from_be_bytes([inner[20], inner[21]]);
    let idport = u16::from_be_bytes([inner[22], inner[23]]);
    ensure(inner_ip.verify_checksum(), || {
        "the quoted IPv4 header checksum was not fixed".into()
    })?;
    ensure(
        isrc == g && isport == 5000 && idst == INET && idport == 7,
        || {
            format!(
                "quoted packet {} -> {}, expected {g}:5000 -> {INET}:7",
                hostport(isrc, isport),
                hostport(idst, idport)
            )
        },
    )?;
    let mut evidence = format!(
        "ICMP 3/3 to {} quoting {}: delivered to {g} quoting {}:5000 -> {INET}:7, outer and quoted checksums valid",
        hostport(EXT, p),
        hostport(EXT, p),
        g
    );
    if then_reply {
        n.at(10);
        let reply = n.inbound(INET, L4::Udp(7, p, b"still here"));
        n.delivered(&reply, VM1)
            .map_err(|e| format!("the reply after the error: {e}"))?;
        evidence.push_str("; a reply 10 s later still reached vm1");
    }
    Ok(evidence)
}

fn table_full(f: NatFlavor) -> Check {
    let mut n = NatRig::new(f, |c| c.napt.max_sessions = 2)?;
    let (g, r) = (n.guest(VM1), n.router());
    n.out(VM1, 5000, INET, udp_to(7))?;
    n.out(VM1, 5001, INET, udp_to(7))?;
    let sent = n.guest_sends(VM1, 5002, INET, udp_to(7));
    ensure(!sent.to(UPLINK), || {
        "a third flow left with a table of 2 sessions".into()
    })?;
    let d = n
        .delivered(&sent, VM1)
        .map_err(|e| format!("the third flow: {e} (no ICMP 3/13)"))?;
    ensure(d.proto == 1 && d.l4[0] == 3 && d.l4[1] == 13, || {
        format!(
            "answered with protocol {} type {} code {}",
            d.proto, d.l4[0], d.l4[1]
        )
    })?;
    ensure(d.src == r && d.dst == g, || {
        format!("3/13 from {} to {}, expected {r} -> {g}", d.src, d.dst)
    })?;
    let quoted_port = u16::from_be_bytes([d.l4[8 + 20], d.l4[8 + 21]]);
    ensure(quoted_port == 5002, || {
        format!("the quote is of source port {quoted_port}, not 5002")
    })?;
    // Still alive: the existing flows work.
    let again = n.out(VM1, 5000, INET, udp_to(7));
    ensure(again.is_ok(), || {
        "an existing flow stopped after the table filled".into()
    })?;
    Ok(format!(
        "max_sessions 2: the third flow {g}:5002 answered by ICMP 3/13 from {r} quoting it; existing flows still pass"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_is_named_after_a_requirement() {
        let r = run(NatFlavor::PerVm);
        assert!(r.cases.len() >= 15);
        for c in &r.cases {
            assert!(c.name.starts_with("rfc"), "{}", c.name);
        }
    }
}
