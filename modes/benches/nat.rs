//! NAPT translation cost, in memory: nanoseconds per packet for UDP, outbound and inbound,
//! in batches of 64 packets, with 1, 1k and 64k live sessions.
//!
//! Each flow is `10.x.y.z:port -> 198.18.1.s:53` (an IPv4 + UDP packet of 46 bytes: a
//! 64-byte Ethernet frame without its header and FCS); each inside endpoint talks to up to
//! 4 servers, so 64 Ki sessions are 16 Ki mappings. The flows of a batch are picked by
//! a fixed pseudorandom permutation of all flows (RFC 4814: pseudorandom addresses and
//! ports, not incrementing ones), so the 64k case walks the tables the way real traffic
//! does. Copying the batch in is done by criterion's setup and is not timed. `now` advances
//! 100 ns a batch, as a dataplane's clock does between batches (a frozen clock would let
//! every refresh skip its writes, since the deadlines would not move); a run covers a few
//! seconds of that clock at most, far from the 300 s UDP timeout, so nothing expires.
//! Inbound uses address-dependent filtering (the default).
//!
//! Each direction is measured two ways: packet by packet (`outbound`, `inbound`), and as
//! the NAT pipeline runs a batch (`outbound_warm`, `inbound_warm`): `Napt::warm_*` over the
//! 64 packets first, then the same per-packet calls.
//!
//! Criterion reports time per batch and packets per second (`Elements(64)`).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use vnet_core::time::Instant;
use vnet_core::wire::checksum;
use vnet_modes::nat::{Inbound, Napt, NaptConfig, Outbound};

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const BATCH: usize = 64;
const LEN: usize = 46;

type Packet = [u8; LEN];

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Packet {
    let mut p = [0u8; LEN];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(LEN as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src.0.octets());
    p[16..20].copy_from_slice(&dst.0.octets());
    let c = checksum::data(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20..22].copy_from_slice(&src.1.to_be_bytes());
    p[22..24].copy_from_slice(&dst.1.to_be_bytes());
    p[24..26].copy_from_slice(&((LEN - 20) as u16).to_be_bytes());
    for (i, b) in p[28..].iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut pseudo = [0u8; 12];
    pseudo[..4].copy_from_slice(&src.0.octets());
    pseudo[4..8].copy_from_slice(&dst.0.octets());
    pseudo[9] = 17;
    pseudo[10..12].copy_from_slice(&((LEN - 20) as u16).to_be_bytes());
    let c = !checksum::fold(checksum::sum(&pseudo) + checksum::sum(&p[20..]));
    p[26..28].copy_from_slice(&c.to_be_bytes());
    p
}

/// A stage holding `sessions` UDP flows, with their outbound packets and the replies.
struct Setup {
    napt: Napt,
    outbound: Vec<Packet>,
    inbound: Vec<Packet>,
}

fn setup(sessions: usize) -> Setup {
    let mut config = NaptConfig::new(EXT);
    config.max_sessions = 65536;
    let mut napt = Napt::new(config, Instant::ZERO).unwrap();
    let mut outbound = Vec::with_capacity(sessions);
    let mut inbound = Vec::with_capacity(sessions);
    // Each inside endpoint talks to up to 4 servers (the port space holds 64 512 mappings,
    // fewer than 64 Ki sessions), so 64 Ki sessions are 16 Ki mappings.
    let servers: Vec<Ipv4Addr> = (0..4).map(|i| Ipv4Addr::new(198, 18, 1, i)).collect();
    let per_endpoint = sessions.min(servers.len());
    // A multiplicative walk over the 2^24 inside endpoints 10.x.y.z: distinct, scattered.
    let mut x: u32 = 1;
    for _ in 0..sessions / per_endpoint {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345) & 0xff_ffff;
        let inside = (Ipv4Addr::from(0x0a00_0000 | x), 1024 + (x % 60000) as u16);
        for server in &servers[..per_endpoint] {
            let p = udp(inside, (*server, 53));
            let mut translated = p;
            assert_eq!(
                napt.outbound(Instant::from_secs(1), 0, &mut translated),
                Outbound::Translated
            );
            let ext_port = u16::from_be_bytes([translated[20], translated[21]]);
            outbound.push(p);
            inbound.push(udp((*server, 53), (EXT, ext_port)));
        }
    }
    Setup {
        napt,
        outbound,
        inbound,
    }
}

/// The next batch: 64 flows picked by a pseudorandom permutation (an odd stride modulo a
/// power of two covers every index; indices beyond the flows are skipped).
fn next_batch(flows: &[Packet], cursor: &mut usize) -> Vec<Packet> {
    let n = flows.len();
    let span = n.next_power_of_two();
    let mut batch = Vec::with_capacity(BATCH);
    while batch.len() < BATCH {
        *cursor = (*cursor + 40503) & (span - 1);
        if *cursor < n {
            batch.push(flows[*cursor]);
        }
    }
    batch
}

fn bench_nat(c: &mut Criterion) {
    let mut group = c.benchmark_group("nat_udp");
    group.throughput(Throughput::Elements(BATCH as u64));
    // The clock: 2 s, plus 100 ns per batch measured.
    let mut batches = 0u64;
    let mut tick = move || {
        batches += 1;
        Instant::from_secs(2) + Duration::from_nanos(100 * batches)
    };
    for sessions in [1usize, 1024, 65536] {
        let mut s = setup(sessions);
        let mut cursor = 0;
        group.bench_function(BenchmarkId::new("outbound", sessions), |b| {
            b.iter_batched_ref(
                || next_batch(&s.outbound, &mut cursor),
                |batch| {
                    let now = tick();
                    for p in batch.iter_mut() {
                        black_box(s.napt.outbound(now, 0, p));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let mut cursor = 0;
        group.bench_function(BenchmarkId::new("outbound_warm", sessions), |b| {
            b.iter_batched_ref(
                || next_batch(&s.outbound, &mut cursor),
                |batch| {
                    let now = tick();
                    s.napt.warm_outbound(batch.iter().map(|p| (0, &p[..])));
                    for p in batch.iter_mut() {
                        black_box(s.napt.outbound(now, 0, p));
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let mut cursor = 0;
        group.bench_function(BenchmarkId::new("inbound", sessions), |b| {
            b.iter_batched_ref(
                || next_batch(&s.inbound, &mut cursor),
                |batch| {
                    let now = tick();
                    for p in batch.iter_mut() {
                        let v = s.napt.inbound(now, p);
                        debug_assert!(matches!(v, Inbound::Translated { .. }));
                        black_box(v);
                    }
                },
                BatchSize::SmallInput,
            )
        });
        let mut cursor = 0;
        group.bench_function(BenchmarkId::new("inbound_warm", sessions), |b| {
            b.iter_batched_ref(
                || next_batch(&s.inbound, &mut cursor),
                |batch| {
                    let now = tick();
                    s.napt.warm_inbound(batch.iter().map(|p| &p[..]));
                    for p in batch.iter_mut() {
                        let v = s.napt.inbound(now, p);
                        debug_assert!(matches!(v, Inbound::Translated { .. }));
                        black_box(v);
                    }
                },
                BatchSize::SmallInput,
            )
        });
        assert_eq!(s.napt.session_count(), sessions);
    }
    group.finish();
}

criterion_group!(benches, bench_nat);
criterion_main!(benches);
