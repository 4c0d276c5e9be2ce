//! Raw frames for `-` cases, and reading back what a port's wire carried.
//!
//! Probes are built with smoltcp's wire types (a parser and emitter no one here wrote),
//! never with the dataplane's own. Each carries a unique marker: in the ICMP, UDP or TCP
//! payload for IP probes, and after the ARP body for ARP requests, so that a probe is
//! recognised wherever it turns up, whatever a mode did to its headers.
//!
//! Invariants: a marker is `<vnb CASE PROBE>`, unique within a run; searching a frame for
//! it is a plain byte-substring search; probes are well-formed (valid checksums), so that
//! a dataplane cannot drop them for being malformed and pass a `-` case by accident.

use super::table::Proto;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpAddress, IpProtocol, Ipv4Packet, Ipv4Repr,
    TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket, UdpRepr, ETHERNET_HEADER_LEN,
};
use std::net::Ipv4Addr;

/// The Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// Which probe of a `-` case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Directed unicast to the peer's MAC and IP.
    Unicast,
    /// The same packet in an Ethernet broadcast frame.
    Broadcast,
    /// An ARP request for the peer's address.
    Arp,
}

impl ProbeKind {
    /// Every probe, in sending order.
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Unicast, ProbeKind::Broadcast, ProbeKind::Arp];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Unicast => "unicast",
            ProbeKind::Broadcast => "broadcast",
            ProbeKind::Arp => "arp",
        }
    }
}

/// The marker of one probe (or exchange) of a case.
pub fn marker(case: &str, what: &str) -> Vec<u8> {
    format!("<vnb {case} {what}>").into_bytes()
}

/// Whether `frame` carries `marker`.
pub fn carries(frame: &[u8], marker: &[u8]) -> bool {
    !marker.is_empty() && frame.windows(marker.len()).any(|w| w == marker)
}

/// The two ends of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ends {
    /// Sender's MAC.
    pub src_mac: [u8; 6],
    /// Sender's address.
    pub src_ip: Ipv4Addr,
    /// Peer's MAC.
    pub dst_mac: [u8; 6],
    /// Peer's address.
    pub dst_ip: Ipv4Addr,
}

/// The probe frame of `kind` for `proto` between `ends`, carrying `marker`; UDP and TCP
/// go to `dst_port`, from `src_port`.
pub fn probe_frame(
    kind: ProbeKind,
    proto: Proto,
    ends: &Ends,
    ports: (u16, u16),
    marker: &[u8],
) -> Vec<u8> {
    match kind {
        ProbeKind::Unicast => ip_frame(proto, ends, ends.dst_mac, ports, marker),
        ProbeKind::Broadcast => ip_frame(proto, ends, BROADCAST, ports, marker),
        ProbeKind::Arp => arp_request(ends.src_mac, ends.src_ip, ends.dst_ip, marker),
    }
}

/// An ARP request "who has `target`, tell `src_ip`" with `trailer` after the body.
pub fn arp_request(
    src_mac: [u8; 6],
    src_ip: Ipv4Addr,
    target: Ipv4Addr,
    trailer: &[u8],
) -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(src_mac),
        source_protocol_addr: src_ip,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(BROADCAST),
        ethertype: EthernetProtocol::Arp,
    };
    let body = arp.buffer_len();
    let mut frame = vec![0u8; (ETHERNET_HEADER_LEN + body + trailer.len()).max(60)];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut f);
    arp.emit(&mut ArpPacket::new_unchecked(&mut f.payload_mut()[..body]));
    frame[ETHERNET_HEADER_LEN + body..ETHERNET_HEADER_LEN + body + trailer.len()]
        .copy_from_slice(trailer);
    frame
}

/// A gratuitous ARP (an announcement of `ip` at `mac`).
pub fn gratuitous_arp(mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    arp_request(mac, ip, ip, &[])
}

fn ip_frame(
    proto: Proto,
    ends: &Ends,
    dst_mac: [u8; 6],
    ports: (u16, u16),
    marker: &[u8],
) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let (src, dst) = (IpAddress::Ipv4(ends.src_ip), IpAddress::Ipv4(ends.dst_ip));
    let (next_header, l4_len) = match proto {
        Proto::Icmp => (IpProtocol::Icmp, 8 + marker.len()),
        Proto::Udp => (IpProtocol::Udp, 8 + marker.len()),
        Proto::Tcp => (IpProtocol::Tcp, 20 + marker.len()),
    };
    let ip = Ipv4Repr {
        src_addr: ends.src_ip,
        dst_addr: ends.dst_ip,
        next_header,
        payload_len: l4_len,
        hop_limit: 64,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(ends.src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let len = ETHERNET_HEADER_LEN + ip.buffer_len() + l4_len;
    let mut frame = vec![0u8; len.max(60)];
    let mut f = EthernetFrame::new_unchecked(&mut frame[..len]);
    eth.emit(&mut f);
    let mut p = Ipv4Packet::new_unchecked(f.payload_mut());
    ip.emit(&mut p, &caps);
    let l4 = p.payload_mut();
    match proto {
        Proto::Icmp => {
            let repr = Icmpv4Repr::EchoRequest {
                ident: 0x7072,
                seq_no: 1,
                data: marker,
            };
            repr.emit(&mut Icmpv4Packet::new_unchecked(l4), &caps);
        }
        Proto::Udp => {
            let repr = UdpRepr {
                src_port: ports.0,
                dst_port: ports.1,
            };
            repr.emit(
                &mut UdpPacket::new_unchecked(l4),
                &src,
                &dst,
                marker.len(),
                |payload| payload.copy_from_slice(marker),
                &caps,
            );
        }
        Proto::Tcp => {
            let repr = TcpRepr {
                src_port: ports.0,
                dst_port: ports.1,
                control: TcpControl::Syn,
                seq_number: TcpSeqNumber(0x766e_6200),
                ack_number: None,
                window_len: 64240,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload: marker,
            };
            repr.emit(&mut TcpPacket::new_unchecked(l4), &src, &dst, &caps);
        }
    }
    frame
}

/// Where a frame came from, as its receiver sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenSource {
    /// Ethernet source.
    pub mac: [u8; 6],
    /// IPv4 source.
    pub ip: Ipv4Addr,
    /// UDP or TCP source port (0 for ICMP).
    pub port: u16,
}

/// The source of an IPv4 frame (with its UDP/TCP port where it has one).
pub fn seen_source(frame: &[u8]) -> Option<SeenSource> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let mac = eth.src_addr().0;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let port = match ip.next_header() {
        IpProtocol::Udp => UdpPacket::new_checked(ip.payload()).ok()?.src_port(),
        IpProtocol::Tcp => TcpPacket::new_checked(ip.payload()).ok()?.src_port(),
        _ => 0,
    };
    Some(SeenSource {
        mac,
        ip: ip.src_addr(),
        port,
    })
}

/// The destination of an IPv4 frame: address and UDP/TCP port (0 for anything else).
pub fn seen_destination(frame: &[u8]) -> Option<(Ipv4Addr, u16)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let port = match ip.next_header() {
        IpProtocol::Udp => UdpPacket::new_checked(ip.payload()).ok()?.dst_port(),
        IpProtocol::Tcp => TcpPacket::new_checked(ip.payload()).ok()?.dst_port(),
        _ => 0,
    };
    Some((ip.dst_addr(), port))
}

/// A MAC as text (`02:76:6e:00:00:01`).
pub fn mac_text(mac: [u8; 6]) -> String {
    let hex: Vec<String> = mac.iter().map(|b| format!("{b:02x}")).collect();
    hex.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends() -> Ends {
        Ends {
            src_mac: [2, 0, 0, 0, 0, 1],
            src_ip: Ipv4Addr::new(10, 0, 0, 1),
            dst_mac: [2, 0, 0, 0, 0, 2],
            dst_ip: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn probes_parse_back_and_carry_their_marker() {
        let m = marker("internal/vm-host/udp", "unicast");
        for proto in Proto::ALL {
            for kind in ProbeKind::ALL {
                let f = probe_frame(kind, proto, &ends(), (49152, 7), &m);
                assert!(carries(&f, &m), "{proto} {kind:?}");
                assert!(!carries(&f, &marker("internal/vm-host/udp", "broadcast")));
                let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                assert_eq!(eth.src_addr().0, [2, 0, 0, 0, 0, 1]);
                if kind == ProbeKind::Arp {
                    assert_eq!(eth.dst_addr().0, BROADCAST);
                    let arp =
                        ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
                    assert!(
                        matches!(arp, ArpRepr::EthernetIpv4 { target_protocol_addr, .. }
                        if target_protocol_addr == Ipv4Addr::new(10, 0, 0, 2))
                    );
                    continue;
                }
                let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                assert!(ip.verify_checksum());
                let seen = seen_source(&f).unwrap();
                assert_eq!(seen.ip, Ipv4Addr::new(10, 0, 0, 1));
                assert_eq!(seen.port, if proto == Proto::Icmp { 0 } else { 49152 });
                let src = IpAddress::Ipv4(ends().src_ip);
                let dst = IpAddress::Ipv4(ends().dst_ip);
                match proto {
                    Proto::Udp => assert!(UdpPacket::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum(&src, &dst)),
                    Proto::Tcp => assert!(TcpPacket::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum(&src, &dst)),
                    Proto::Icmp => assert!(Icmpv4Packet::new_checked(ip.payload())
                        .unwrap()
                        .verify_checksum()),
                }
            }
        }
    }
}
