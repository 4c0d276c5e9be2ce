//! Round trips between `vnet_core::wire` and an independent implementation, etherparse 0.16:
//!
//! - frames built by etherparse's `PacketBuilder` (Ethernet II, no/one/two VLAN tags, IPv4,
//!   UDP/TCP/ICMPv4 echo; IPv6 + UDP) parse with our views and `Repr`s, every field checked;
//! - frames emitted by our `Repr`s parse with `SlicedPacket::from_ethernet`, every field and
//!   checksum checked against etherparse's own computation;
//! - ARP, which etherparse 0.16 does not parse, round trips against literal frames;
//! - every truncation of every generated frame, and arbitrary bytes, parse to an error or a
//!   view, never a panic.
//!
//! Addresses, ports, tags and payload lengths are randomised with proptest.

use std::net::{Ipv4Addr, Ipv6Addr};

use etherparse::{
    IcmpEchoHeader, Icmpv4Type, IpHeaders, LinkSlice, NetSlice, PacketBuilder, PacketBuilderStep,
    SlicedPacket, TcpOptionElement, TransportSlice, VlanId, VlanSlice,
};
use proptest::prelude::*;
use vnet_core::wire::*;

#[derive(Debug, Clone, Copy)]
enum Vlan {
    None,
    Single(u16),
    Double(u16, u16),
}

impl Vlan {
    fn ids(self) -> (Option<u16>, Option<u16>) {
        match self {
            Vlan::None => (None, None),
            Vlan::Single(id) => (Some(id), None),
            Vlan::Double(outer, inner) => (Some(outer), Some(inner)),
        }
    }

    fn header_len(self) -> usize {
        match self {
            Vlan::None => 14,
            Vlan::Single(_) => 18,
            Vlan::Double(..) => 22,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct L2L3 {
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    vlan: Vlan,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    ttl: u8,
}

fn vlan_strategy() -> impl Strategy<Value = Vlan> {
    prop_oneof![
        Just(Vlan::None),
        (0..4096u16).prop_map(Vlan::Single),
        (0..4096u16, 0..4096u16).prop_map(|(o, i)| Vlan::Double(o, i)),
    ]
}

fn single_vlan_strategy() -> impl Strategy<Value = Vlan> {
    prop_oneof![Just(Vlan::None), (0..4096u16).prop_map(Vlan::Single)]
}

fn l2l3_strategy(vlan: impl Strategy<Value = Vlan>) -> impl Strategy<Value = L2L3> {
    (
        any::<[u8; 6]>(),
        any::<[u8; 6]>(),
        vlan,
        any::<u32>(),
        any::<u32>(),
        any::<u8>(),
    )
        .prop_map(|(src_mac, dst_mac, vlan, s, d, ttl)| L2L3 {
            src_mac,
            dst_mac,
            vlan,
            src_ip: Ipv4Addr::from(s),
            dst_ip: Ipv4Addr::from(d),
            ttl,
        })
}

fn payload_strategy() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..200)
}

/// The etherparse builder up to the IPv4 header.
fn etherparse_ipv4(h: &L2L3) -> PacketBuilderStep<IpHeaders> {
    let eth = PacketBuilder::ethernet2(h.src_mac, h.dst_mac);
    let (src, dst) = (h.src_ip.octets(), h.dst_ip.octets());
    match h.vlan {
        Vlan::None => eth.ipv4(src, dst, h.ttl),
        Vlan::Single(id) => eth
            .single_vlan(VlanId::try_new(id).unwrap())
            .ipv4(src, dst, h.ttl),
        Vlan::Double(outer, inner) => eth
            .double_vlan(
                VlanId::try_new(outer).unwrap(),
                VlanId::try_new(inner).unwrap(),
            )
            .ipv4(src, dst, h.ttl),
    }
}

/// Pads like an Ethernet NIC does (to 60 bytes without FCS), so that every parser must stop
/// at the IPv4 total length.
fn pad(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
    frame
}

/// Checks the Ethernet and IPv4 layers of `frame` against `h`; returns the IPv4 payload.
fn check_l2l3<'a>(
    frame: &'a [u8],
    h: &L2L3,
    protocol: IpProtocol,
    l4_len: usize,
) -> Result<(Ipv4Packet<&'a [u8]>, usize), TestCaseError> {
    let eth = EthernetFrame::new_checked(frame).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(eth.src_addr(), EthernetAddress(h.src_mac));
    prop_assert_eq!(eth.dst_addr(), EthernetAddress(h.dst_mac));
    prop_assert_eq!(eth.vlan_ids(), h.vlan.ids());
    prop_assert_eq!(eth.vlan_id(), h.vlan.ids().0);
    prop_assert_eq!(eth.header_len(), h.vlan.header_len());
    prop_assert_eq!(eth.ethertype(), EtherType::Ipv4);
    if let Vlan::Double(..) = h.vlan {
        prop_assert_eq!(eth.vlan_tag(0).unwrap().tpid, EtherType::QinQ);
        prop_assert_eq!(eth.vlan_tag(1).unwrap().tpid, EtherType::Vlan);
        prop_assert!(EthernetRepr::parse(&eth).is_err());
    } else {
        let repr = EthernetRepr::parse(&eth).unwrap();
        prop_assert_eq!(repr.vlan, h.vlan.ids().0);
        prop_assert_eq!(repr.ethertype, EtherType::Ipv4);
    }

    let l3 = eth.header_len();
    let ip =
        Ipv4Packet::new_checked(&frame[l3..]).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(ip.verify_checksum());
    let repr = Ipv4Repr::parse(&ip).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(repr.src_addr, h.src_ip);
    prop_assert_eq!(repr.dst_addr, h.dst_ip);
    prop_assert_eq!(repr.hop_limit, h.ttl);
    prop_assert_eq!(repr.next_header, protocol);
    prop_assert_eq!(repr.payload_len, l4_len);
    prop_assert!(repr.dont_frag); // etherparse's default
    prop_assert_eq!(repr.ident, 0);
    prop_assert_eq!(ip.header_len(), 20);
    prop_assert!(!ip.is_fragment());
    prop_assert_eq!(ip.payload().len(), l4_len);
    Ok((ip, l3))
}

/// Our Ethernet + IPv4 emitted around a transport of `l4_len` bytes; returns the buffer
/// (pre-filled with 0xa5) and the offset of the transport header.
fn emit_l2l3(h: &L2L3, protocol: IpProtocol, l4_len: usize) -> (Vec<u8>, usize) {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(h.src_mac),
        dst_addr: EthernetAddress(h.dst_mac),
        ethertype: EtherType::Ipv4,
        vlan: h.vlan.ids().0,
    };
    let ip = Ipv4Repr {
        src_addr: h.src_ip,
        dst_addr: h.dst_ip,
        next_header: protocol,
        payload_len: l4_len,
        hop_limit: h.ttl,
        ident: 0x4242,
        dont_frag: true,
    };
    let mut buf = vec![0xa5u8; eth.buffer_len() + ip.buffer_len()];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    let l3 = eth.header_len();
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[l3..]));
    (buf, l3 + ip.header_len())
}

/// Checks etherparse's view of the Ethernet and IPv4 layers we emitted.
fn check_etherparse_l2l3(
    sliced: &SlicedPacket<'_>,
    h: &L2L3,
    protocol: u8,
    l4_len: usize,
) -> Result<(), TestCaseError> {
    match &sliced.link {
        Some(LinkSlice::Ethernet2(e)) => {
            prop_assert_eq!(e.source(), h.src_mac);
            prop_assert_eq!(e.destination(), h.dst_mac);
        }
        other => prop_assert!(false, "link {:?}", other),
    }
    match (&sliced.vlan, h.vlan) {
        (None, Vlan::None) => {}
        (Some(VlanSlice::SingleVlan(v)), Vlan::Single(id)) => {
            prop_assert_eq!(v.vlan_identifier().value(), id);
            prop_assert_eq!(v.ether_type().0, 0x0800);
        }
        (other, vlan) => prop_assert!(false, "vlan {:?} vs {:?}", other, vlan),
    }
    match &sliced.net {
        Some(NetSlice::Ipv4(ip)) => {
            let header = ip.header();
            prop_assert_eq!(header.source_addr(), h.src_ip);
            prop_assert_eq!(header.destination_addr(), h.dst_ip);
            prop_assert_eq!(header.ttl(), h.ttl);
            prop_assert_eq!(header.protocol().0, protocol);
            prop_assert_eq!(usize::from(header.total_len()), 20 + l4_len);
            prop_assert_eq!(header.identification(), 0x4242);
            prop_assert!(header.dont_fragment() && !header.more_fragments());
            prop_assert_eq!(
                header.header_checksum(),
                header.to_header().calc_header_checksum()
            );
        }
        other => prop_assert!(false, "net {:?}", other),
    }
    Ok(())
}

/// Walks a frame down to the transport header the way a mode would, returning the first
/// error. Used to show that no input panics.
fn parse_chain(frame: &[u8]) -> Result<(), WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    match eth.ethertype() {
        EtherType::Arp => {
            let arp = ArpPacket::new_checked(eth.payload())?;
            ArpRepr::parse(&arp)?;
        }
        EtherType::Ipv4 => {
            let ip = Ipv4Packet::new_checked(eth.payload())?;
            let _ = ip.options();
            let repr = Ipv4Repr::parse(&ip)?;
            let (src, dst) = (repr.src_addr, repr.dst_addr);
            match repr.next_header {
                IpProtocol::Udp => {
                    let udp = UdpPacket::new_checked(ip.payload())?;
                    UdpRepr::parse(&udp, src, dst)?;
                }
                IpProtocol::Tcp => {
                    let tcp = TcpPacket::new_checked(ip.payload())?;
                    for option in tcp.options_iter() {
                        option?;
                    }
                    TcpRepr::parse(&tcp, src, dst)?;
                }
                IpProtocol::Icmp => {
                    let icmp = Icmpv4Packet::new_checked(ip.payload())?;
                    Icmpv4Repr::parse(&icmp)?;
                    if icmp.is_error() {
                        icmp.inner_ipv4()?;
                    }
                }
                _ => {}
            }
        }
        EtherType::Ipv6 => {
            let ip = Ipv6Packet::new_checked(eth.payload())?;
            Ipv6Repr::parse(&ip)?;
        }
        _ => {}
    }
    Ok(())
}

/// Every strict prefix of `frame` that cuts into the headers or the IPv4 packet fails with a
/// `Truncated` error (checksums are never reached with missing bytes).
fn check_truncations(frame: &[u8], end_of_ip: usize) -> Result<(), TestCaseError> {
    prop_assert!(parse_chain(frame).is_ok());
    for len in 0..end_of_ip {
        let err = parse_chain(&frame[..len]);
        prop_assert!(
            matches!(err, Err(WireError::Truncated { .. })),
            "len {}: {:?}",
            len,
            err
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn etherparse_udp_parses(
        h in l2l3_strategy(vlan_strategy()),
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        payload in payload_strategy(),
    ) {
        let mut frame = Vec::new();
        etherparse_ipv4(&h).udp(src_port, dst_port).write(&mut frame, &payload).unwrap();
        let end_of_ip = frame.len();
        let frame = pad(frame);
        let (ip, _) = check_l2l3(&frame, &h, IpProtocol::Udp, 8 + payload.len())?;

        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        prop_assert_eq!(udp.src_port(), src_port);
        prop_assert_eq!(udp.dst_port(), dst_port);
        prop_assert_eq!(usize::from(udp.len()), 8 + payload.len());
        prop_assert_eq!(udp.payload(), &payload[..]);
        prop_assert!(udp.verify_checksum(h.src_ip, h.dst_ip));
        prop_assert_ne!(udp.checksum(), 0);
        let repr = UdpRepr::parse(&udp, h.src_ip, h.dst_ip).unwrap();
        prop_assert_eq!(repr, UdpRepr { src_port, dst_port, payload_len: payload.len() });

        check_truncations(&frame, end_of_ip)?;
    }

    #[test]
    fn etherparse_tcp_parses(
        h in l2l3_strategy(vlan_strategy()),
        ports in any::<(u16, u16)>(),
        seq in any::<u32>(),
        ack in proptest::option::of(any::<u32>()),
        window in any::<u16>(),
        mss in proptest::option::of(any::<u16>()),
        ws in proptest::option::of(0u8..15),
        sack_permitted in any::<bool>(),
        ts in proptest::option::of(any::<(u32, u32)>()),
        payload in payload_strategy(),
    ) {
        let mut options = Vec::new();
        if let Some(mss) = mss {
            options.push(TcpOptionElement::MaximumSegmentSize(mss));
        }
        if sack_permitted {
            options.push(TcpOptionElement::SelectiveAcknowledgementPermitted);
        }
        if let Some((a, b)) = ts {
            options.push(TcpOptionElement::Timestamp(a, b));
        }
        if let Some(ws) = ws {
            options.push(TcpOptionElement::Noop);
            options.push(TcpOptionElement::WindowScale(ws));
        }
        let mut builder = etherparse_ipv4(&h).tcp(ports.0, ports.1, seq, window).psh();
        if let Some(ack) = ack {
            builder = builder.ack(ack);
        }
        let builder = builder.options(&options).unwrap();
        let mut frame = Vec::new();
        builder.write(&mut frame, &payload).unwrap();
        let end_of_ip = frame.len();
        let frame = pad(frame);
        let l4_len = end_of_ip - h.vlan.header_len() - 20;
        let (ip, _) = check_l2l3(&frame, &h, IpProtocol::Tcp, l4_len)?;

        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        prop_assert_eq!(tcp.src_port(), ports.0);
        prop_assert_eq!(tcp.dst_port(), ports.1);
        prop_assert_eq!(tcp.seq_number(), seq);
        prop_assert_eq!(tcp.ack_number(), ack.unwrap_or(0));
        prop_assert_eq!(tcp.window_len(), window);
        prop_assert_eq!(tcp.payload(), &payload[..]);
        prop_assert!(tcp.psh() && !tcp.syn() && !tcp.fin() && !tcp.rst());
        prop_assert_eq!(tcp.ack(), ack.is_some());
        prop_assert!(tcp.verify_checksum(h.src_ip, h.dst_ip));
        let repr = TcpRepr::parse(&tcp, h.src_ip, h.dst_ip).unwrap();
        let mut flags = TcpFlags::PSH;
        flags.set(TcpFlags::ACK, ack.is_some());
        prop_assert_eq!(repr.flags, flags);
        prop_assert_eq!(repr.max_seg_size, mss);
        prop_assert_eq!(repr.window_scale, ws);
        prop_assert_eq!(repr.sack_permitted, sack_permitted);
        prop_assert_eq!(repr.timestamp, ts);
        prop_assert_eq!(repr.payload_len, payload.len());

        check_truncations(&frame, end_of_ip)?;
    }

    #[test]
    fn etherparse_icmp_echo_parses(
        h in l2l3_strategy(vlan_strategy()),
        ident in any::<u16>(),
        seq_no in any::<u16>(),
        request in any::<bool>(),
        payload in payload_strategy(),
    ) {
        let step = etherparse_ipv4(&h);
        let builder = if request {
            step.icmpv4_echo_request(ident, seq_no)
        } else {
            step.icmpv4_echo_reply(ident, seq_no)
        };
        let mut frame = Vec::new();
        builder.write(&mut frame, &payload).unwrap();
        let end_of_ip = frame.len();
        let frame = pad(frame);
        let (ip, _) = check_l2l3(&frame, &h, IpProtocol::Icmp, 8 + payload.len())?;

        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        prop_assert!(icmp.verify_checksum());
        prop_assert_eq!(icmp.data(), &payload[..]);
        let data_len = payload.len();
        let expected = if request {
            Icmpv4Repr::EchoRequest { ident, seq_no, data_len }
        } else {
            Icmpv4Repr::EchoReply { ident, seq_no, data_len }
        };
        prop_assert_eq!(Icmpv4Repr::parse(&icmp).unwrap(), expected);

        check_truncations(&frame, end_of_ip)?;
    }

    #[test]
    fn etherparse_ipv6_udp_parses(
        src_mac in any::<[u8; 6]>(),
        dst_mac in any::<[u8; 6]>(),
        src in any::<[u8; 16]>(),
        dst in any::<[u8; 16]>(),
        hop_limit in any::<u8>(),
        ports in any::<(u16, u16)>(),
        payload in payload_strategy(),
    ) {
        let mut frame = Vec::new();
        PacketBuilder::ethernet2(src_mac, dst_mac)
            .ipv6(src, dst, hop_limit)
            .udp(ports.0, ports.1)
            .write(&mut frame, &payload)
            .unwrap();
        let end_of_ip = frame.len();
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        prop_assert_eq!(eth.ethertype(), EtherType::Ipv6);
        let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
        let repr = Ipv6Repr::parse(&ip).unwrap();
        prop_assert_eq!(repr, Ipv6Repr {
            src_addr: Ipv6Addr::from(src),
            dst_addr: Ipv6Addr::from(dst),
            next_header: IpProtocol::Udp,
            payload_len: 8 + payload.len(),
            hop_limit,
        });
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        prop_assert_eq!((udp.src_port(), udp.dst_port()), ports);
        prop_assert_eq!(udp.payload(), &payload[..]);
        check_truncations(&frame, end_of_ip)?;
    }

    #[test]
    fn our_udp_parses_in_etherparse(
        h in l2l3_strategy(single_vlan_strategy()),
        src_port in any::<u16>(),
        dst_port in any::<u16>(),
        payload in payload_strategy(),
    ) {
        let udp = UdpRepr { src_port, dst_port, payload_len: payload.len() };
        let (mut buf, l4) = emit_l2l3(&h, IpProtocol::Udp, udp.buffer_len());
        buf[l4 + 8..].copy_from_slice(&payload);
        udp.emit(&mut UdpPacket::new_unchecked(&mut buf[l4..]), h.src_ip, h.dst_ip);

        let sliced = SlicedPacket::from_ethernet(&buf).unwrap();
        check_etherparse_l2l3(&sliced, &h, 17, udp.buffer_len())?;
        match &sliced.transport {
            Some(TransportSlice::Udp(u)) => {
                prop_assert_eq!(u.source_port(), src_port);
                prop_assert_eq!(u.destination_port(), dst_port);
                prop_assert_eq!(usize::from(u.length()), 8 + payload.len());
                prop_assert_eq!(u.payload(), &payload[..]);
                let expected = u
                    .to_header()
                    .calc_checksum_ipv4_raw(h.src_ip.octets(), h.dst_ip.octets(), u.payload())
                    .unwrap();
                prop_assert_eq!(u.checksum(), expected);
            }
            other => prop_assert!(false, "transport {:?}", other),
        }
    }

    #[test]
    fn our_tcp_parses_in_etherparse(
        h in l2l3_strategy(single_vlan_strategy()),
        ports in any::<(u16, u16)>(),
        seq_number in any::<u32>(),
        ack_number in any::<u32>(),
        flag_bits in 0u16..0x100,
        window_len in any::<u16>(),
        max_seg_size in proptest::option::of(any::<u16>()),
        window_scale in proptest::option::of(0u8..15),
        sack_permitted in any::<bool>(),
        timestamp in proptest::option::of(any::<(u32, u32)>()),
        payload in payload_strategy(),
    ) {
        let tcp = TcpRepr {
            src_port: ports.0,
            dst_port: ports.1,
            seq_number,
            ack_number,
            flags: TcpFlags::from_bits_truncate(flag_bits),
            window_len,
            urgent_at: 0,
            max_seg_size,
            window_scale,
            sack_permitted,
            timestamp,
            payload_len: payload.len(),
        };
        let (mut buf, l4) = emit_l2l3(&h, IpProtocol::Tcp, tcp.buffer_len());
        buf[l4 + tcp.header_len()..].copy_from_slice(&payload);
        tcp.emit(&mut TcpPacket::new_unchecked(&mut buf[l4..]), h.src_ip, h.dst_ip);

        let sliced = SlicedPacket::from_ethernet(&buf).unwrap();
        check_etherparse_l2l3(&sliced, &h, 6, tcp.buffer_len())?;
        match &sliced.transport {
            Some(TransportSlice::Tcp(t)) => {
                prop_assert_eq!(t.source_port(), ports.0);
                prop_assert_eq!(t.destination_port(), ports.1);
                prop_assert_eq!(t.sequence_number(), seq_number);
                prop_assert_eq!(t.acknowledgment_number(), ack_number);
                prop_assert_eq!(t.window_size(), window_len);
                prop_assert_eq!(usize::from(t.data_offset()) * 4, tcp.header_len());
                let f = tcp.flags;
                prop_assert_eq!(t.fin(), f.contains(TcpFlags::FIN));
                prop_assert_eq!(t.syn(), f.contains(TcpFlags::SYN));
                prop_assert_eq!(t.rst(), f.contains(TcpFlags::RST));
                prop_assert_eq!(t.psh(), f.contains(TcpFlags::PSH));
                prop_assert_eq!(t.ack(), f.contains(TcpFlags::ACK));
                prop_assert_eq!(t.urg(), f.contains(TcpFlags::URG));
                prop_assert_eq!(t.ece(), f.contains(TcpFlags::ECE));
                prop_assert_eq!(t.cwr(), f.contains(TcpFlags::CWR));
                prop_assert_eq!(t.payload(), &payload[..]);
                let expected = t.calc_checksum_ipv4(h.src_ip.octets(), h.dst_ip.octets()).unwrap();
                prop_assert_eq!(t.checksum(), expected);

                let mut seen_mss = None;
                let mut seen_ws = None;
                let mut seen_sack = false;
                let mut seen_ts = None;
                for option in t.options_iterator() {
                    match option.unwrap() {
                        TcpOptionElement::MaximumSegmentSize(v) => seen_mss = Some(v),
                        TcpOptionElement::WindowScale(v) => seen_ws = Some(v),
                        TcpOptionElement::SelectiveAcknowledgementPermitted => seen_sack = true,
                        TcpOptionElement::Timestamp(a, b) => seen_ts = Some((a, b)),
                        TcpOptionElement::Noop => {}
                        other => prop_assert!(false, "option {:?}", other),
                    }
                }
                prop_assert_eq!(seen_mss, max_seg_size);
                prop_assert_eq!(seen_ws, window_scale);
                prop_assert_eq!(seen_sack, sack_permitted);
                prop_assert_eq!(seen_ts, timestamp);
            }
            other => prop_assert!(false, "transport {:?}", other),
        }
        // And back through our own parser.
        prop_assert!(parse_chain(&buf).is_ok());
    }

    #[test]
    fn our_icmp_echo_parses_in_etherparse(
        h in l2l3_strategy(single_vlan_strategy()),
        ident in any::<u16>(),
        seq_no in any::<u16>(),
        request in any::<bool>(),
        payload in payload_strategy(),
    ) {
        let data_len = payload.len();
        let icmp = if request {
            Icmpv4Repr::EchoRequest { ident, seq_no, data_len }
        } else {
            Icmpv4Repr::EchoReply { ident, seq_no, data_len }
        };
        let (mut buf, l4) = emit_l2l3(&h, IpProtocol::Icmp, icmp.buffer_len());
        buf[l4 + 8..].copy_from_slice(&payload);
        icmp.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[l4..]));

        let sliced = SlicedPacket::from_ethernet(&buf).unwrap();
        check_etherparse_l2l3(&sliced, &h, 1, icmp.buffer_len())?;
        match &sliced.transport {
            Some(TransportSlice::Icmpv4(i)) => {
                let echo = IcmpEchoHeader { id: ident, seq: seq_no };
                let expected = if request {
                    Icmpv4Type::EchoRequest(echo)
                } else {
                    Icmpv4Type::EchoReply(echo)
                };
                prop_assert_eq!(i.icmp_type(), expected.clone());
                prop_assert_eq!(i.payload(), &payload[..]);
                prop_assert_eq!(i.checksum(), expected.calc_checksum(i.payload()));
            }
            other => prop_assert!(false, "transport {:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse_chain(&frame);
    }

    #[test]
    fn mutated_frames_never_panic(
        h in l2l3_strategy(vlan_strategy()),
        ports in any::<(u16, u16)>(),
        payload in payload_strategy(),
        flips in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut frame = Vec::new();
        etherparse_ipv4(&h)
            .tcp(ports.0, ports.1, 1, 2)
            .options(&[TcpOptionElement::MaximumSegmentSize(1460), TcpOptionElement::Noop])
            .unwrap()
            .write(&mut frame, &payload)
            .unwrap();
        for (at, value) in flips {
            let i = at.index(frame.len());
            frame[i] = value;
        }
        let _ = parse_chain(&frame);
    }
}

/// ARP request as captured on a QEMU guest: Ethernet broadcast, padded to 60 bytes.
const ARP_REQUEST_FRAME: [u8; 60] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06, // eth
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4 request
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x02, 0x0f, // sha, spa 10.0.2.15
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x02, 0x02, // tha, tpa 10.0.2.2
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding
];

/// The gateway's reply, unpadded.
const ARP_REPLY_FRAME: [u8; 42] = [
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x08, 0x06, // eth
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // eth/ipv4 reply
    0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, 0x0a, 0x00, 0x02, 0x02, // sha, spa 10.0.2.2
    0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x0a, 0x00, 0x02, 0x0f, // tha, tpa 10.0.2.15
];

#[test]
fn arp_request_to_reply() {
    let gateway_mac = EthernetAddress([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]);
    let eth = EthernetFrame::new_checked(&ARP_REQUEST_FRAME[..]).unwrap();
    assert_eq!(eth.ethertype(), EtherType::Arp);
    assert!(eth.dst_addr().is_broadcast());
    let arp = ArpPacket::new_checked(eth.payload()).unwrap();
    let request = ArpRepr::parse(&arp).unwrap();
    assert_eq!(request.operation, ArpOperation::Request);
    assert_eq!(request.source_protocol_addr, Ipv4Addr::new(10, 0, 2, 15));
    assert_eq!(request.target_protocol_addr, Ipv4Addr::new(10, 0, 2, 2));
    assert_eq!(request.target_hardware_addr, EthernetAddress::UNSPECIFIED);

    let reply = request.reply(gateway_mac);
    let eth_reply = EthernetRepr {
        src_addr: gateway_mac,
        dst_addr: request.source_hardware_addr,
        ethertype: EtherType::Arp,
        vlan: None,
    };
    let mut buf = [0xa5u8; 42];
    eth_reply.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    reply.emit(&mut ArpPacket::new_unchecked(&mut buf[14..]));
    assert_eq!(buf, ARP_REPLY_FRAME);

    // etherparse 0.16 does not parse ARP, but must agree on the Ethernet header.
    let sliced = SlicedPacket::from_ethernet(&buf).unwrap();
    match sliced.link {
        Some(LinkSlice::Ethernet2(e)) => {
            assert_eq!(e.source(), gateway_mac.0);
            assert_eq!(e.destination(), [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);
            assert_eq!(e.ether_type().0, 0x0806);
        }
        other => panic!("link {other:?}"),
    }
    assert!(sliced.net.is_none());
}

#[test]
fn arp_every_truncation() {
    for len in 0..42 {
        let err = parse_chain(&ARP_REQUEST_FRAME[..len]).unwrap_err();
        let layer = if len < 14 {
            Layer::Ethernet
        } else {
            Layer::Arp
        };
        assert!(
            matches!(err, WireError::Truncated { layer: l, .. } if l == layer),
            "len {len}: {err:?}"
        );
    }
}

#[test]
fn reasons_are_labels() {
    let err = parse_chain(&ARP_REQUEST_FRAME[..20]).unwrap_err();
    assert_eq!(err.reason(), "truncated_arp");
    let mut bad = ARP_REQUEST_FRAME;
    bad[15] = 6;
    assert_eq!(
        parse_chain(&bad).unwrap_err().reason(),
        "bad_arp_hardware_type"
    );
}
