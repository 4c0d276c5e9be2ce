//! NAT with two workers, in memory: the external port space is split between them, the
//! uplink is served by worker 0, guest vm2 by worker 1. Every flow's two directions must
//! translate correctly wherever its packets arrive: outbound from worker 1 leaves through
//! worker 0's uplink (cross-worker transmit), and replies arriving at worker 0 are handed
//! to the worker owning the external port (hand-off), which delivers them to the guest.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use vnet_core::counters::CounterSet;
use vnet_core::engine::{HandoffMesh, Worker, WorkerConfig};
use vnet_core::frame::FramePool;
use vnet_core::port::mem::{mem_pair, MemPeer};
use vnet_core::port::Port;
use vnet_core::time::Instant;
use vnet_modes::gateway::service_mac;
use vnet_modes::nat::owner_of_port;
use vnet_modes::natmode::{NatFlavor, NatMode, NatModeConfig, NatSpec};

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GW_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 1];
const GUEST_MACS: [[u8; 6]; 2] = [[0x08, 0, 0x27, 0, 0, 1], [0x08, 0, 0x27, 0, 0, 2]];
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

fn udp(src_mac: [u8; 6], dst_mac: [u8; 6], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1)
        .write(&mut f, b"payload")
        .unwrap();
    f
}

fn addrs(frame: &[u8]) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
    let p = SlicedPacket::from_ethernet(frame).unwrap();
    let Some(NetSlice::Ipv4(ip)) = p.net else {
        panic!("not ipv4")
    };
    let h = ip.header().to_header();
    assert_eq!(h.calc_header_checksum(), h.header_checksum);
    let Some(TransportSlice::Udp(u)) = p.transport else {
        panic!("not udp")
    };
    assert_eq!(
        u.checksum(),
        u.to_header().calc_checksum_ipv4(&h, u.payload()).unwrap()
    );
    (
        Ipv4Addr::from(h.source),
        u.source_port(),
        Ipv4Addr::from(h.destination),
        u.destination_port(),
    )
}

struct Rig {
    workers: [Worker<NatMode>; 2],
    guests: [MemPeer; 2],
    uplink: MemPeer,
    t: u64,
}

impl Rig {
    fn step(&mut self) {
        for _ in 0..3 {
            self.t += 1_000_000;
            for w in &mut self.workers {
                w.run_once(Instant::from_nanos(self.t));
            }
        }
    }
}

fn rig() -> Rig {
    let config = NatModeConfig::new(NatFlavor::PerVm, 2, EXT, GW);
    let spec = NatSpec::new(config, 2, Instant::ZERO).unwrap();
    let (p0, g0) = mem_pair("vm1", 0, 256);
    let (p1, g1) = mem_pair("vm2", 1, 256);
    let (p2, up) = mem_pair("uplink", 2, 256);
    let owners = [0u8, 1, 0];
    let counters = CounterSet::new(2, 3);
    let mut mesh = HandoffMesh::new(2, 256);
    let h1 = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
    let h0 = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
    let w0 = Worker::new(
        0,
        vec![
            (0, Box::new(p0) as Box<dyn Port>),
            (2, Box::new(p2) as Box<dyn Port>),
        ],
        &owners,
        FramePool::with_heap(1024, 2048, 0),
        spec.build(0, 2, Instant::ZERO).unwrap(),
        counters.worker(0),
        h0,
        WorkerConfig { timer_every: 1 },
    );
    let w1 = Worker::new(
        1,
        vec![(1, Box::new(p1) as Box<dyn Port>)],
        &owners,
        FramePool::with_heap(1024, 2048, 0),
        spec.build(1, 2, Instant::ZERO).unwrap(),
        counters.worker(1),
        h1,
        WorkerConfig { timer_every: 1 },
    );
    let mut rig = Rig {
        workers: [w0, w1],
        guests: [g0, g1],
        uplink: up,
        t: 1_000_000_000,
    };
    rig.step();
    // Worker 0 serves the uplink and asks for the next hop; answer it.
    let asks: Vec<Vec<u8>> = rig.uplink.drain();
    assert!(
        asks.iter()
            .any(|f| f[12..14] == [8, 6] && f[38..42] == GW.octets()),
        "no ARP for the next hop"
    );
    let mut reply = vec![0u8; 60];
    reply[..6].copy_from_slice(&service_mac(EXT).0);
    reply[6..12].copy_from_slice(&GW_MAC);
    reply[12..22].copy_from_slice(&[8, 6, 0, 1, 8, 0, 6, 4, 0, 2]);
    reply[22..28].copy_from_slice(&GW_MAC);
    reply[28..32].copy_from_slice(&GW.octets());
    reply[32..38].copy_from_slice(&service_mac(EXT).0);
    reply[38..42].copy_from_slice(&EXT.octets());
    rig.uplink.send(&reply);
    rig.step();
    for g in &rig.guests {
        g.drain();
    }
    rig
}

#[test]
fn every_flow_translates_both_ways_wherever_it_arrives() {
    let mut rig = rig();
    let gw_mac = service_mac(Ipv4Addr::new(10, 0, 2, 2)).0;
    let mut seen_owner = [false; 2];
    for flow in 0..40u16 {
        for (vm, guest_mac) in GUEST_MACS.iter().enumerate() {
            let sport = 5000 + flow;
            let server = (GW, 7000 + flow);
            assert!(rig.guests[vm].send(&udp(*guest_mac, gw_mac, (GUEST, sport), server)));
            rig.step();
            let out = rig.uplink.drain();
            assert_eq!(
                out.len(),
                1,
                "vm{} flow {flow}: nothing left the uplink",
                vm + 1
            );
            let (src, ext_port, dst, dport) = addrs(&out[0]);
            assert_eq!((src, dst, dport), (EXT, GW, 7000 + flow));
            // The external port belongs to the worker serving the guest's port.
            let owner = owner_of_port(ext_port, (1024, 65535), 2);
            assert_eq!(owner, vm, "vm{} got a port of worker {owner}", vm + 1);
            seen_owner[owner] = true;
            // The reply enters at worker 0 (the uplink) and must reach the same guest.
            assert!(rig
                .uplink
                .send(&udp(GW_MAC, service_mac(EXT).0, server, (EXT, ext_port))));
            rig.step();
            for (other, g) in rig.guests.iter().enumerate() {
                let got = g.drain();
                if other == vm {
                    assert_eq!(got.len(), 1, "vm{} flow {flow}: reply lost", vm + 1);
                    assert_eq!(&got[0][..6], guest_mac);
                    assert_eq!(addrs(&got[0]), (GW, 7000 + flow, GUEST, sport));
                } else {
                    assert!(
                        got.is_empty(),
                        "a reply for vm{} reached vm{}",
                        vm + 1,
                        other + 1
                    );
                }
            }
        }
    }
    assert!(seen_owner[0] && seen_owner[1]);
    let handed: u64 = rig.workers[1].pipeline().napt().counters().translated_in;
    assert_eq!(
        handed, 40,
        "worker 1 translated the replies of its 40 flows"
    );
}
