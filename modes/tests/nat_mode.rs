//! NAT and NAT Network pipelines in memory, with frames built by etherparse: DHCP gives
//! 10.0.2.15, the uplink's next hop is resolved by ARP, outbound traffic leaves from the
//! external address and replies come back to the guest's own address and port, NAT
//! guests with the same address stay apart, port forwards reach the guest, the DNS proxy
//! answers SERVFAIL without an upstream, the host loopback reaches the host, and NAT
//! Network guests reach each other on the segment.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use vnet_core::frame::{FramePool, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{DhcpMessageType, DhcpRepr};
use vnet_core::wire::EthernetAddress;
use vnet_modes::gateway::service_mac;
use vnet_modes::nat::ForwardRule;
use vnet_modes::natmode::{HostLink, NatFlavor, NatMode, NatModeConfig, NatSpec};

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GW_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 1];
const HOST_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x99];
const G1: [u8; 6] = [0x08, 0, 0x27, 0, 0, 1];
const G2: [u8; 6] = [0x08, 0, 0x27, 0, 0, 2];

struct Rig {
    mode: NatMode,
    pool: FramePool,
    now: Instant,
    uplink: PortId,
}

impl Rig {
    fn new(flavor: NatFlavor, vms: usize, host: bool, forwards: Vec<ForwardRule>) -> Rig {
        let mut c = NatModeConfig::new(flavor, vms, EXT, GW);
        c.forwards = forwards;
        // Small tables: these tests need a handful of sessions, and build many rigs.
        c.napt.max_sessions = 1024;
        if host {
            c.host = Some(HostLink::default());
        }
        let spec = NatSpec::new(c, 1, Instant::ZERO).unwrap();
        let uplink = (vms + host as usize) as PortId;
        let mut rig = Rig {
            mode: spec.build(0, 1, Instant::ZERO).unwrap(),
            pool: FramePool::with_heap(256, 2048, 0),
            now: Instant::from_secs(1),
            uplink,
        };
        // The first poll asks for the next hop; the gateway answers.
        let mut out = Emitter::new();
        rig.mode.poll(rig.now, &mut rig.pool, &mut out);
        let asked = out
            .items()
            .iter()
            .any(|(p, m)| *m == PortMask::one(uplink) && rig.pool.bytes(p)[38..42] == GW.octets());
        for (p, _) in out.items() {
            rig.pool.free(p.frame);
        }
        assert!(asked, "no ARP request for the next hop");
        let reply = arp(2, GW_MAC, GW, EXT);
        assert_eq!(rig.run(&reply, uplink).0, Verdict::Tx(PortMask::EMPTY));
        if host {
            let host_port = vms as PortId;
            let reply = arp(
                2,
                HOST_MAC,
                Ipv4Addr::new(198, 19, 0, 1),
                Ipv4Addr::new(198, 19, 0, 2),
            );
            rig.run(&reply, host_port);
            let mut out = Emitter::new();
            rig.mode.poll(rig.now, &mut rig.pool, &mut out);
            for (p, _) in out.items() {
                rig.pool.free(p.frame);
            }
        }
        rig
    }

    fn run(&mut self, frame: &[u8], port: PortId) -> (Verdict, Vec<u8>) {
        let mut pkts = [self.pool.alloc_copy(frame, port).unwrap()];
        let mut v = [Verdict::Consumed];
        self.mode
            .process(self.now, &mut self.pool, &mut pkts, &mut v);
        let out = self.pool.bytes(&pkts[0]).to_vec();
        self.pool.free(pkts[0].frame);
        (v[0], out)
    }
}

fn arp(op: u8, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

fn udp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1)
        .write(&mut f, payload)
        .unwrap();
    f
}

fn tcp_syn(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 65535)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    f
}

/// (src ip, src port, dst ip, dst port), checking both checksums.
fn addrs(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum, "IPv4 checksum");
    let (sp, dp) = match p.transport {
        Some(TransportSlice::Udp(u)) => {
            let want = u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap();
            assert_eq!(u.checksum(), want, "UDP checksum");
            (u.source_port(), u.destination_port())
        }
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(&h, t.payload()).unwrap();
            assert_eq!(t.checksum(), want, "TCP checksum");
            (t.source_port(), t.destination_port())
        }
        other => panic!("unexpected transport {other:?}"),
    };
    (
        Ipv4Addr::from(h.source),
        sp,
        Ipv4Addr::from(h.destination),
        dp,
    )
}

fn gw_mac() -> [u8; 6] {
    service_mac(Ipv4Addr::new(10, 0, 2, 2)).0
}

const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const SERVER: (Ipv4Addr, u16) = (GW, 7);

#[test]
fn nat_dhcp_gives_10_0_2_15_with_gateway_and_dns() {
    let mut rig = Rig::new(NatFlavor::PerVm, 1, false, vec![]);
    let mut d = DhcpRepr::new(DhcpMessageType::Discover, 7, EthernetAddress(G1));
    d.broadcast = true;
    let mut payload = vec![0u8; d.buffer_len()];
    let n = d.emit(&mut payload).unwrap();
    let f = udp(
        G1,
        [0xff; 6],
        (Ipv4Addr::UNSPECIFIED, 68),
        (Ipv4Addr::BROADCAST, 67),
        &payload[..n],
    );
    let (v, out) = rig.run(&f, 0);
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    let offer = DhcpRepr::parse_bytes(&out[42..]).unwrap();
    assert_eq!(offer.message_type, DhcpMessageType::Offer);
    assert_eq!(offer.yiaddr, GUEST);
    assert_eq!(offer.router, Some(Ipv4Addr::new(10, 0, 2, 2)));
    assert_eq!(
        offer.dns_servers.unwrap().as_slice(),
        &[Ipv4Addr::new(10, 0, 2, 3)]
    );
}

#[test]
fn nat_outbound_leaves_from_external_address_and_reply_returns_to_guest() {
    let mut rig = Rig::new(NatFlavor::PerVm, 1, false, vec![]);
    let (v, out) = rig.run(&udp(G1, gw_mac(), (GUEST, 5000), SERVER, b"ping"), 0);
    assert_eq!(v, Verdict::Tx(PortMask::one(rig.uplink)));
    assert_eq!(&out[..6], &GW_MAC, "to the next hop learned by ARP");
    let (src, sport, dst, dport) = addrs(&out);
    assert_eq!((src, dst, dport), (EXT, GW, 7));
    assert_eq!(sport, 5000, "port preserved");
    assert_eq!(out[22], 63, "TTL decremented");
    let (v, back) = rig.run(
        &udp(
            GW_MAC,
            out[6..12].try_into().unwrap(),
            SERVER,
            (EXT, sport),
            b"pong",
        ),
        rig.uplink,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    assert_eq!(&back[..6], &G1);
    assert_eq!(&back[6..12], &gw_mac());
    assert_eq!(addrs(&back), (GW, 7, GUEST, 5000));
}

#[test]
fn nat_guests_with_the_same_address_stay_apart() {
    let mut rig = Rig::new(NatFlavor::PerVm, 2, false, vec![]);
    let (_, o1) = rig.run(&udp(G1, gw_mac(), (GUEST, 5000), SERVER, b"a"), 0);
    let (_, o2) = rig.run(&udp(G2, gw_mac(), (GUEST, 5000), SERVER, b"b"), 1);
    let (p1, p2) = (addrs(&o1).1, addrs(&o2).1);
    assert_ne!(p1, p2, "two realms share an external port");
    for (port, vm, mac) in [(p1, 0, G1), (p2, 1, G2)] {
        let (v, back) = rig.run(&udp(GW_MAC, [0; 6], SERVER, (EXT, port), b"r"), rig.uplink);
        assert_eq!(v, Verdict::Tx(PortMask::one(vm)));
        assert_eq!(&back[..6], &mac);
    }
    // A guest sending to the other guest's address (its own subnet) reaches nobody.
    let (v, _) = rig.run(
        &udp(
            G1,
            gw_mac(),
            (GUEST, 1),
            (Ipv4Addr::new(10, 0, 2, 16), 1),
            b"x",
        ),
        0,
    );
    assert!(matches!(v, Verdict::Drop(_)), "{v:?}");
    let (v, _) = rig.run(&arp(1, G1, GUEST, Ipv4Addr::new(10, 0, 2, 16)), 0);
    assert_eq!(
        v,
        Verdict::Tx(PortMask::EMPTY),
        "ARP for another guest is not answered or flooded"
    );
}

#[test]
fn nat_port_forward_reaches_guest_and_other_ports_do_not() {
    let rule = ForwardRule::parse_natpf("ssh,tcp,,2222,,22", 0, GUEST).unwrap();
    let mut rig = Rig::new(NatFlavor::PerVm, 1, false, vec![rule]);
    // The guest must be known (it spoke once).
    rig.run(&udp(G1, gw_mac(), (GUEST, 5000), SERVER, b"hi"), 0);
    let (v, f) = rig.run(
        &tcp_syn(GW_MAC, [0; 6], (GW, 40000), (EXT, 2222)),
        rig.uplink,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    assert_eq!(addrs(&f), (GW, 40000, GUEST, 22));
    let (v, _) = rig.run(
        &tcp_syn(GW_MAC, [0; 6], (GW, 40000), (EXT, 2223)),
        rig.uplink,
    );
    assert!(
        matches!(v, Verdict::Drop(_)),
        "unforwarded port reached the guest: {v:?}"
    );
}

#[test]
fn nat_dns_proxy_without_upstream_answers_servfail() {
    let mut rig = Rig::new(NatFlavor::PerVm, 1, false, vec![]);
    let q = [
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
    ];
    let (v, out) = rig.run(
        &udp(
            G1,
            service_mac(Ipv4Addr::new(10, 0, 2, 3)).0,
            (GUEST, 40000),
            (Ipv4Addr::new(10, 0, 2, 3), 53),
            &q,
        ),
        0,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    assert_eq!(addrs(&out), (Ipv4Addr::new(10, 0, 2, 3), 53, GUEST, 40000));
    assert_eq!(out[42 + 3] & 0x0f, 2, "SERVFAIL");
}

#[test]
fn nat_host_loopback_reaches_the_host_and_replies_come_from_10_0_2_2() {
    let mut rig = Rig::new(NatFlavor::PerVm, 1, true, vec![]);
    let host_port: PortId = 1;
    let (v, out) = rig.run(
        &tcp_syn(
            G1,
            gw_mac(),
            (GUEST, 40000),
            (Ipv4Addr::new(10, 0, 2, 2), 80),
        ),
        0,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(host_port)));
    assert_eq!(&out[..6], &HOST_MAC);
    let (src, sport, dst, dport) = addrs(&out);
    assert_eq!(
        (src, dst, dport),
        (
            Ipv4Addr::new(198, 19, 0, 2),
            Ipv4Addr::new(198, 19, 0, 1),
            80
        )
    );
    let (v, back) = rig.run(
        &tcp_syn(
            HOST_MAC,
            [0; 6],
            (Ipv4Addr::new(198, 19, 0, 1), 80),
            (Ipv4Addr::new(198, 19, 0, 2), sport),
        ),
        host_port,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    assert_eq!(addrs(&back), (Ipv4Addr::new(10, 0, 2, 2), 80, GUEST, 40000));
}

#[test]
fn nat_network_guests_reach_each_other_and_share_one_nat() {
    let mut rig = Rig::new(NatFlavor::Network, 2, false, vec![]);
    let a = Ipv4Addr::new(10, 0, 2, 4);
    let b = Ipv4Addr::new(10, 0, 2, 5);
    // vm2 announces itself, then vm1 talks to it directly on the segment.
    let (v, _) = rig.run(&arp(1, G2, b, a), 1);
    assert_eq!(
        v,
        Verdict::Tx(PortMask::one(0)),
        "ARP floods on the segment"
    );
    let (v, _) = rig.run(&udp(G1, G2, (a, 1000), (b, 2000), b"hi"), 0);
    assert_eq!(v, Verdict::Tx(PortMask::one(1)));
    // Outbound through the router 10.0.2.1.
    let router = service_mac(Ipv4Addr::new(10, 0, 2, 1)).0;
    let (v, out) = rig.run(&udp(G1, router, (a, 5000), SERVER, b"out"), 0);
    assert_eq!(v, Verdict::Tx(PortMask::one(rig.uplink)));
    let (src, sport, _, _) = addrs(&out);
    assert_eq!(src, EXT);
    let (v, back) = rig.run(
        &udp(GW_MAC, [0; 6], SERVER, (EXT, sport), b"in"),
        rig.uplink,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    assert_eq!(addrs(&back), (GW, 7, a, 5000));
    assert_eq!(&back[..6], &G1);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn frame_strategy() -> impl Strategy<Value = (Vec<u8>, u8)> {
        (
            prop::collection::vec(any::<u8>(), 0..120),
            prop::sample::select(vec![0x0800u16, 0x0806, 0x86dd, 0x8100, 0x1234]),
            any::<bool>(),
            0u8..4,
        )
            .prop_map(|(mut bytes, ethertype, ipv4_like, port)| {
                if bytes.len() >= 14 {
                    bytes[12..14].copy_from_slice(&ethertype.to_be_bytes());
                }
                if ipv4_like && bytes.len() > 14 {
                    bytes[14] = 0x45;
                }
                (bytes, port)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// No frame, however broken, panics a NAT or NAT Network pipeline on any port.
        #[test]
        fn arbitrary_frames_never_panic(frames in prop::collection::vec(frame_strategy(), 1..16)) {
            for flavor in [NatFlavor::PerVm, NatFlavor::Network] {
                let mut rig = Rig::new(flavor, 2, true, vec![]);
                for (bytes, port) in &frames {
                    if bytes.is_empty() {
                        continue;
                    }
                    let _ = rig.run(bytes, (*port % 4) as PortId);
                }
            }
        }
    }
}
