//! The NAT and NAT Network pipelines as a worker runs them: nanoseconds per packet of
//! `Pipeline::process` on 64-frame batches of guest -> Internet UDP (Ethernet in,
//! Ethernet out: gateway checks, NAPT, next-hop MAC rewrite), with 1, 1k and 64k live
//! sessions. The in-memory counterpart of `vnet-bench bench --mode nat`.
//!
//! Flows are `GUEST:port -> 198.18.1.s:9` (4 servers per guest port, so 64 Ki sessions
//! are 16 Ki mappings); a batch takes flows by a fixed pseudorandom walk (RFC 4814), a new
//! batch every iteration, so the 64k case walks the tables as real traffic does. Each
//! iteration copies the batch's 60-byte frames into the pool before processing (the
//! pipeline translates in place); `copy_only` measures that copy alone, to subtract.
//! Sessions exist before measuring; `now` does not advance, so nothing expires.
//!
//! `guest_to_inet_offers`: the same with the fast path's bookkeeping on (`run --offload
//! xdp`): the mode builds an offer per translated packet and the worker's
//! [`FastPathLink`] checks each against its table after the batch, as the engine does.
//! Every flow is already installed (the worst case for the core: each frame that still
//! reaches it is offered again); the kernel side is an in-memory map, so the figure is the
//! core's own cost, without the one map-update syscall a new flow costs.

use std::net::Ipv4Addr;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vnet_core::engine::FastPathLink;
use vnet_core::fastpath::{EntryUse, FlowCache, L2Key, NatKey, NatRewrite, PortFastStats};
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::checksum;
use vnet_modes::natmode::{NatFlavor, NatMode, NatModeConfig, NatSpec};

const BATCH: usize = 64;
const FRAME: usize = 60;
const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const NEXT_HOP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const NEXT_HOP_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 1];
const GUEST_MAC: [u8; 6] = [0x08, 0, 0x27, 0, 0, 1];

fn arp(op: u8, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&sha);
    f[12..22].copy_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
    f[22..28].copy_from_slice(&sha);
    f[28..32].copy_from_slice(&spa.octets());
    f[38..42].copy_from_slice(&tpa.octets());
    f
}

fn udp(dst_mac: [u8; 6], src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> [u8; FRAME] {
    let mut f = [0u8; FRAME];
    f[..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&GUEST_MAC);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&46u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.0.octets());
    ip[16..20].copy_from_slice(&dst.0.octets());
    let c = checksum::data(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f[34..36].copy_from_slice(&src.1.to_be_bytes());
    f[36..38].copy_from_slice(&dst.1.to_be_bytes());
    f[38..40].copy_from_slice(&26u16.to_be_bytes());
    f
}

struct Rig {
    mode: NatMode,
    pool: FramePool,
    now: Instant,
    uplink: PortId,
    gateway_mac: [u8; 6],
}

impl Rig {
    fn new(flavor: NatFlavor, max_sessions: usize) -> Rig {
        let mut c = NatModeConfig::new(flavor, 1, EXT, NEXT_HOP);
        c.napt.max_sessions = max_sessions;
        // One guest holds every flow here: its share is the whole table.
        c.napt.max_sessions_per_guest = max_sessions;
        let spec = NatSpec::new(c, 1, Instant::ZERO).expect("nat spec");
        let mut rig = Rig {
            mode: spec.build(0, 1, Instant::ZERO).expect("nat mode"),
            pool: FramePool::with_heap(1024, 2048, 0),
            now: Instant::from_secs(1),
            uplink: 1,
            gateway_mac: [0; 6],
        };
        // The first poll asks for the next hop; it answers.
        let mut out = Emitter::new();
        rig.mode.poll(rig.now, &mut rig.pool, &mut out);
        for (p, _) in out.items() {
            rig.pool.free(p.frame);
        }
        rig.run(&arp(2, NEXT_HOP_MAC, NEXT_HOP, EXT), rig.uplink);
        // The guest asks for its gateway's MAC.
        let gw = match flavor {
            NatFlavor::PerVm => Ipv4Addr::new(10, 0, 2, 2),
            NatFlavor::Network => Ipv4Addr::new(10, 0, 2, 1),
        };
        let (v, reply) = rig.run(&arp(1, GUEST_MAC, guest(flavor), gw), 0);
        assert!(matches!(v, Verdict::Tx(_)), "the gateway answers ARP");
        rig.gateway_mac.copy_from_slice(&reply[6..12]);
        rig
    }

    fn run(&mut self, frame: &[u8], port: PortId) -> (Verdict, Vec<u8>) {
        let mut pkts = [self.pool.alloc_copy(frame, port).expect("a free frame")];
        let mut v = [Verdict::Consumed];
        self.mode
            .process(self.now, &mut self.pool, &mut pkts, &mut v);
        let out = self.pool.bytes(&pkts[0]).to_vec();
        self.pool.free(pkts[0].frame);
        (v[0], out)
    }
}

fn guest(flavor: NatFlavor) -> Ipv4Addr {
    match flavor {
        NatFlavor::PerVm => Ipv4Addr::new(10, 0, 2, 15),
        NatFlavor::Network => Ipv4Addr::new(10, 0, 2, 4),
    }
}

/// The `n` flows' frames.
fn flows(flavor: NatFlavor, gateway_mac: [u8; 6], n: usize) -> Vec<[u8; FRAME]> {
    (0..n)
        .map(|i| {
            let server = Ipv4Addr::new(198, 18, 1, (i % 4) as u8 + 1);
            udp(
                gateway_mac,
                (guest(flavor), 1024 + (i / 4) as u16),
                (server, 9),
            )
        })
        .collect()
}

/// Copy the next batch of flows into `pkts` (a fixed pseudorandom walk over all flows).
fn load(pool: &mut FramePool, pkts: &[Pkt], flows: &[[u8; FRAME]], cursor: &mut usize) {
    let span = flows.len().next_power_of_two();
    for p in pkts {
        loop {
            *cursor = (*cursor + 40503) & (span - 1);
            if *cursor < flows.len() {
                break;
            }
        }
        pool.bytes_mut(p).copy_from_slice(&flows[*cursor]);
    }
}

/// The kernel's maps, in memory: installs are remembered, nothing else.
#[derive(Debug, Default)]
struct MemCache {
    nat: Mutex<std::collections::HashSet<NatKey>>,
}

impl FlowCache for MemCache {
    fn install_l2(&self, _: &L2Key, _: PortId) -> std::io::Result<()> {
        Ok(())
    }
    fn remove_l2(&self, _: &L2Key) {}
    fn read_l2(&self, _: &L2Key) -> Option<EntryUse> {
        None
    }
    fn install_nat(&self, key: &NatKey, _: &NatRewrite) -> std::io::Result<()> {
        self.nat.lock().unwrap().insert(*key);
        Ok(())
    }
    fn remove_nat(&self, key: &NatKey) {
        self.nat.lock().unwrap().remove(key);
    }
    fn read_nat(&self, _: &NatKey) -> Option<EntryUse> {
        None
    }
    fn port_stats(&self, _: PortId) -> PortFastStats {
        PortFastStats::default()
    }
}

fn nat_modes(c: &mut Criterion) {
    for (name, flavor) in [
        ("nat_mode", NatFlavor::PerVm),
        ("nat_network_mode", NatFlavor::Network),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(Throughput::Elements(BATCH as u64));
        for sessions in [1usize, 1024, 65536] {
            let mut rig = Rig::new(flavor, 65536 + 1024);
            let flows = flows(flavor, rig.gateway_mac, sessions);
            let pkts: Vec<Pkt> = (0..BATCH)
                .map(|_| rig.pool.alloc_copy(&flows[0], 0).expect("a free frame"))
                .collect();
            let mut verdicts = [Verdict::Consumed; BATCH];
            // Make every session, then check that the measured path is the translated one.
            for chunk in flows.chunks(BATCH) {
                for (p, f) in pkts.iter().zip(chunk) {
                    rig.pool.bytes_mut(p).copy_from_slice(f);
                }
                let n = chunk.len();
                let mut batch = pkts[..n].to_vec();
                rig.mode
                    .process(rig.now, &mut rig.pool, &mut batch, &mut verdicts[..n]);
            }
            let mut cursor = 0;
            let mut batch = pkts.clone();
            load(&mut rig.pool, &batch, &flows, &mut cursor);
            rig.mode
                .process(rig.now, &mut rig.pool, &mut batch, &mut verdicts);
            let uplink = rig.uplink;
            assert!(
                verdicts
                    .iter()
                    .all(|v| matches!(v, Verdict::Tx(m) if m.len() == 1 && m.contains(uplink))),
                "{name}: every frame is translated out of the uplink: {:?}",
                &verdicts[..4]
            );
            assert_eq!(rig.pool.bytes(&batch[0])[26..30], EXT.octets());
            group.bench_with_input(
                BenchmarkId::new("guest_to_inet", sessions),
                &sessions,
                |b, _| {
                    b.iter(|| {
                        load(&mut rig.pool, &batch, &flows, &mut cursor);
                        rig.mode.process(
                            rig.now,
                            &mut rig.pool,
                            black_box(&mut batch),
                            &mut verdicts,
                        );
                        black_box(&verdicts);
                    })
                },
            );
            // The fast path's bookkeeping on: every flow offered once and installed.
            let cache = Arc::new(MemCache::default());
            let mut link = FastPathLink::new(cache.clone(), 65536 + 1024, Duration::from_secs(1));
            rig.mode.fastpath_queue().expect("offers").set_enabled(true);
            for _ in 0..(sessions / BATCH + 2) * 4 {
                load(&mut rig.pool, &batch, &flows, &mut cursor);
                rig.mode
                    .process(rig.now, &mut rig.pool, &mut batch, &mut verdicts);
                link.apply(
                    rig.mode.fastpath_queue().expect("offers"),
                    &rig.pool,
                    &batch,
                    &verdicts,
                );
            }
            assert!(
                cache.nat.lock().unwrap().len() >= sessions.min(BATCH),
                "{name}: the flows were offered and installed"
            );
            group.bench_with_input(
                BenchmarkId::new("guest_to_inet_offers", sessions),
                &sessions,
                |b, _| {
                    b.iter(|| {
                        load(&mut rig.pool, &batch, &flows, &mut cursor);
                        rig.mode.process(
                            rig.now,
                            &mut rig.pool,
                            black_box(&mut batch),
                            &mut verdicts,
                        );
                        link.apply(
                            rig.mode.fastpath_queue().expect("offers"),
                            &rig.pool,
                            &batch,
                            &verdicts,
                        );
                        black_box(&verdicts);
                    })
                },
            );
            rig.mode
                .fastpath_queue()
                .expect("offers")
                .set_enabled(false);
            group.bench_with_input(
                BenchmarkId::new("copy_only", sessions),
                &sessions,
                |b, _| {
                    b.iter(|| {
                        load(&mut rig.pool, black_box(&batch), &flows, &mut cursor);
                    })
                },
            );
        }
        group.finish();
    }
}

criterion_group!(benches, nat_modes);
criterion_main!(benches);
