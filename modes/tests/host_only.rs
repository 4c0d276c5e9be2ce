//! Host-only mode in memory: the gateway services (ARP, ICMP echo, DHCP, gratuitous ARP)
//! answer on the frames a guest would send, built with an independent crate (etherparse),
//! and everything else is switched between the VMs and the host.

use etherparse::{PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{DhcpMessageType, DhcpRepr};
use vnet_core::wire::{checksum, EthernetAddress};
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::gateway::service_mac;
use vnet_modes::host_only::{HostOnlyConfig, HostOnlyMode};
use vnet_modes::switch::SwitchConfig;

const VM1: [u8; 6] = [0x08, 0x00, 0x27, 0, 0, 1];
const HOST: [u8; 6] = [0x0a, 0x00, 0x27, 0, 0, 0];
const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 100);

fn mode() -> HostOnlyMode {
    HostOnlyMode::host_only(
        HostOnlyConfig {
            vms: 2,
            switch: SwitchConfig::default(),
            dhcp: Some(DhcpServerConfig::host_only()),
        },
        Instant::ZERO,
    )
    .unwrap()
}

fn process(
    m: &mut HostOnlyMode,
    pool: &mut FramePool,
    frame: &[u8],
    port: PortId,
) -> (Verdict, Vec<u8>) {
    let mut pkts = [pool.alloc_copy(frame, port).unwrap()];
    let mut v = [Verdict::Consumed];
    m.process(Instant::from_secs(1), pool, &mut pkts, &mut v);
    let out = pool.bytes(&pkts[0]).to_vec();
    pool.free(pkts[0].frame);
    (v[0], out)
}

fn arp_request(sha: [u8; 6], spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa);
    f.resize(60, 0);
    f
}

#[test]
fn arp_for_the_dhcp_server_is_answered_from_its_mac() {
    let mut m = mode();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let (v, out) = process(
        &mut m,
        &mut pool,
        &arp_request(VM1, [192, 168, 56, 101], [192, 168, 56, 100]),
        0,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    let mac = service_mac(SERVER).0;
    assert_eq!(&out[0..6], &VM1);
    assert_eq!(&out[6..12], &mac);
    assert_eq!(&out[20..22], &[0, 2], "operation reply");
    assert_eq!(&out[22..28], &mac);
    assert_eq!(&out[28..32], &[192, 168, 56, 100]);
    assert_eq!(&out[32..38], &VM1);
    assert_eq!(&out[38..42], &[192, 168, 56, 101]);
}

#[test]
fn arp_for_the_host_is_switched_not_answered() {
    let mut m = mode();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let req = arp_request(VM1, [192, 168, 56, 101], [192, 168, 56, 1]);
    let (v, out) = process(&mut m, &mut pool, &req, 0);
    assert_eq!(
        v,
        Verdict::Tx(PortMask(0b110)),
        "floods to vm2 and the host"
    );
    assert_eq!(out, req, "untouched");
}

#[test]
fn ping_to_the_dhcp_server_is_echoed_with_valid_checksums() {
    let mut m = mode();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(VM1, service_mac(SERVER).0)
        .ipv4([192, 168, 56, 101], [192, 168, 56, 100], 64)
        .icmpv4_echo_request(0x1234, 7)
        .write(&mut frame, b"abcdefgh")
        .unwrap();
    let (v, out) = process(&mut m, &mut pool, &frame, 1);
    assert_eq!(v, Verdict::Tx(PortMask::one(1)));
    let p = SlicedPacket::from_ethernet(&out).unwrap();
    let ip = match p.net {
        Some(etherparse::NetSlice::Ipv4(ip)) => ip,
        other => panic!("not ipv4: {other:?}"),
    };
    assert_eq!(ip.header().source(), [192, 168, 56, 100]);
    assert_eq!(ip.header().destination(), [192, 168, 56, 101]);
    assert_eq!(checksum::data(&out[14..34]), 0, "IPv4 header checksum");
    assert_eq!(checksum::data(&out[34..]), 0, "ICMP checksum");
    match p.transport {
        Some(TransportSlice::Icmpv4(icmp)) => {
            assert!(
                matches!(icmp.icmp_type(), etherparse::Icmpv4Type::EchoReply(e) if e.id == 0x1234 && e.seq == 7)
            );
            assert_eq!(icmp.payload(), b"abcdefgh");
        }
        other => panic!("not icmp: {other:?}"),
    }
    assert_eq!(&out[0..6], &VM1);
}

fn dhcp_frame(repr: &DhcpRepr, src_ip: [u8; 4], dst_ip: [u8; 4], dst_mac: [u8; 6]) -> Vec<u8> {
    let mut payload = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut payload).unwrap();
    payload.truncate(n);
    let mut frame = Vec::new();
    PacketBuilder::ethernet2(VM1, dst_mac)
        .ipv4(src_ip, dst_ip, 64)
        .udp(68, 67)
        .write(&mut frame, &payload)
        .unwrap();
    frame
}

fn parse_reply(out: &[u8]) -> (DhcpRepr, [u8; 6], [u8; 4]) {
    let p = SlicedPacket::from_ethernet(out).unwrap();
    let Some(etherparse::NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    let Some(TransportSlice::Udp(udp)) = p.transport else {
        panic!("not udp")
    };
    assert_eq!((udp.source_port(), udp.destination_port()), (67, 68));
    assert_eq!(ip.header().source(), [192, 168, 56, 100]);
    assert_eq!(checksum::data(&out[14..34]), 0, "IPv4 header checksum");
    let expect = udp
        .to_header()
        .calc_checksum_ipv4(&ip.header().to_header(), udp.payload())
        .unwrap();
    assert_eq!(udp.checksum(), expect, "UDP checksum");
    let mut dst = [0u8; 6];
    dst.copy_from_slice(&out[..6]);
    (
        DhcpRepr::parse_bytes(udp.payload()).unwrap(),
        dst,
        ip.header().destination(),
    )
}

#[test]
fn dhcp_discover_request_ack_over_full_frames() {
    let mut m = mode();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let mut discover = DhcpRepr::new(DhcpMessageType::Discover, 0xabcd, EthernetAddress(VM1));
    discover.broadcast = true;
    let (v, out) = process(
        &mut m,
        &mut pool,
        &dhcp_frame(&discover, [0; 4], [255; 4], [0xff; 6]),
        0,
    );
    assert_eq!(
        v,
        Verdict::Tx(PortMask::one(0)),
        "the offer goes back to the client's port only"
    );
    let (offer, dst_mac, dst_ip) = parse_reply(&out);
    assert_eq!(offer.message_type, DhcpMessageType::Offer);
    assert_eq!(offer.yiaddr, Ipv4Addr::new(192, 168, 56, 101));
    assert_eq!(offer.server_identifier, Some(SERVER));
    assert_eq!(
        (dst_mac, dst_ip),
        ([0xff; 6], [255; 4]),
        "broadcast flag: broadcast reply"
    );

    let mut request = DhcpRepr::new(DhcpMessageType::Request, 0xabcd, EthernetAddress(VM1));
    request.requested_ip = Some(offer.yiaddr);
    request.server_identifier = Some(SERVER);
    let (v, out) = process(
        &mut m,
        &mut pool,
        &dhcp_frame(&request, [0; 4], [255; 4], [0xff; 6]),
        0,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    let (ack, dst_mac, dst_ip) = parse_reply(&out);
    assert_eq!(ack.message_type, DhcpMessageType::Ack);
    assert_eq!(ack.yiaddr, Ipv4Addr::new(192, 168, 56, 101));
    assert_eq!(
        (dst_mac, dst_ip),
        (VM1, [192, 168, 56, 101]),
        "no broadcast flag: unicast to yiaddr/chaddr"
    );
    let server = m
        .gateway()
        .unwrap()
        .dhcp()
        .unwrap()
        .lock()
        .unwrap()
        .counters();
    assert_eq!((server.offers, server.acks), (1, 1));
}

#[test]
fn traffic_between_vm_and_host_is_switched() {
    let mut m = mode();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(HOST, [0xff; 6])
        .ipv4([192, 168, 56, 1], [192, 168, 56, 255], 64)
        .udp(5000, 5000)
        .write(&mut f, b"x")
        .unwrap();
    let (v, _) = process(&mut m, &mut pool, &f, 2);
    assert_eq!(
        v,
        Verdict::Tx(PortMask(0b011)),
        "host broadcast reaches both VMs"
    );
    let mut g = Vec::new();
    PacketBuilder::ethernet2(VM1, HOST)
        .ipv4([192, 168, 56, 101], [192, 168, 56, 1], 64)
        .udp(5000, 5000)
        .write(&mut g, b"y")
        .unwrap();
    let (v, _) = process(&mut m, &mut pool, &g, 0);
    assert_eq!(
        v,
        Verdict::Tx(PortMask::one(2)),
        "VM reaches the host directly"
    );
}

#[test]
fn gratuitous_arp_announces_the_server_once() {
    let mut m = mode();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let mut out = Emitter::new();
    m.poll(Instant::from_secs(1), &mut pool, &mut out);
    assert_eq!(out.items().len(), 1);
    let (pkt, mask): (Pkt, PortMask) = out.items()[0];
    assert_eq!(mask, PortMask(0b111));
    let bytes = pool.bytes(&pkt).to_vec();
    assert_eq!(&bytes[0..6], &[0xff; 6]);
    assert_eq!(&bytes[28..32], &[192, 168, 56, 100], "sender ip");
    assert_eq!(
        &bytes[38..42],
        &[192, 168, 56, 100],
        "target ip = sender ip"
    );
    pool.free(pkt.frame);
    out.clear();
    m.poll(Instant::from_secs(2), &mut pool, &mut out);
    assert!(out.items().is_empty(), "announced once");
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]
        /// No frame, however broken, panics the Host-only pipeline (switch + services).
        #[test]
        fn arbitrary_frames_never_panic(
            frames in prop::collection::vec(
                (prop::collection::vec(any::<u8>(), 1..400), prop::sample::select(vec![0x0800u16, 0x0806, 0x1234]), 0u16..3),
                1..16,
            )
        ) {
            let mut m = mode();
            let mut pool = FramePool::with_heap(64, 2048, 0);
            for (mut bytes, ethertype, port) in frames {
                if bytes.len() >= 15 {
                    bytes[12..14].copy_from_slice(&ethertype.to_be_bytes());
                    bytes[14] = 0x45;
                    if bytes.len() >= 24 {
                        bytes[23] = 17; // UDP, to reach the DHCP path
                    }
                }
                let _ = process(&mut m, &mut pool, &bytes, port);
            }
            prop_assert_eq!(pool.free_count(), 64);
        }
    }
}
