//! vhost-user frame path benchmarks (criterion): guest A's transmit ring to guest B's
//! receive ring through two in-process vhost-user ports, without a switch (issue #14's
//! target: 64-byte guest-to-guest PDR through vnet on vhost-user >= 3 Mpps on one core).
//!
//! Two guests, each its own 2 MiB of guest memory with split rings of 256 entries laid out
//! by hand (as `tests/vhost_chains.rs` lays them out), each behind
//! `Device::in_process(VERSION_1 | CSUM | HOST_TSO4 | HOST_TSO6)` and
//! `VhostUserPort::in_process`. `EVENT_IDX` is not negotiated: the drivers play a
//! poll-mode driver (DPDK's virtio PMD without Rx interrupts), which sets
//! `VRING_AVAIL_F_NO_INTERRUPT`, so the port reads one flag word per completion and
//! never signals.
//!
//! Per iteration, for a burst of `n` frames:
//! - driver emulation (NOT timed): guest A reclaims its transmit ring's used entries and
//!   offers `n` single-descriptor chains (12-byte virtio-net header + frame, written once
//!   at set-up: a guest's buffers do not change while the device reads them); guest B
//!   reads its receive ring's used entries (id, len) and offers `n` empty 1526-byte
//!   buffers (header + 1514). Each descriptor has a fixed buffer and head = slot, so an
//!   offer is `n` available-ring stores and one release store of the index;
//! - the worker (timed): `rx_burst` on A's port into a `Burst` (walk and check each
//!   chain, copy the header and the frame from guest memory into a pool frame, complete a
//!   partial checksum, return the chains to the used ring) then `tx_burst` of those
//!   packets on B's port (walk and check each receive chain, write header + frame into
//!   it, free the pool frame, return the chains). Only these two calls are timed
//!   (`iter_custom`, two `Instant::now()` per burst: about 1-2 ns per frame of the
//!   figure at n = 32 is the clock).
//!
//! Frames: Ethernet/IPv4/TCP (20-byte header), 60 bytes (64 on the wire with the FCS,
//! as in `wire.rs`) and 1514 bytes. `csum` variants send the TCP checksum partial
//! (`NEEDS_CSUM`, csum_start 34, csum_offset 16, the field holding the pseudo-header
//! sum), which the port completes over the frame in the pool; the others send it
//! complete (flags 0). The `with_driver` variant times the whole iteration (driver
//! emulation included), for scale.
//!
//! Elements are frames: criterion's "thrpt" is frames per second on one core.
//!
//! Run: `cargo bench -p vnet-core --bench vhost -- --warm-up-time 1 --measurement-time 3`.

mod common;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::tcp_frame;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap};
use vnet_core::frame::FramePool;
use vnet_core::port::vhost::device::Device;
use vnet_core::port::vhost::virtio_net::{
    F_CSUM, F_HOST_TSO4, F_HOST_TSO6, F_VERSION_1, NEEDS_CSUM, RX_HEADER,
};
use vnet_core::port::vhost::VhostUserPort;
use vnet_core::port::{Burst, Port};

/// Guest memory: 2 MiB from address 0.
const MEM_SIZE: usize = 0x20_0000;
const FEATURES: u64 = F_VERSION_1 | F_CSUM | F_HOST_TSO4 | F_HOST_TSO6;
/// The virtio-net header with `VERSION_1`.
const HLEN: usize = 12;
/// Entries per ring.
const RING: u16 = 256;
/// Rings: descriptor table, available ring (+0x1000), used ring (+0x2000).
const RING_BASE: [u64; 2] = [0x1000, 0x5000];
/// Buffers: 2 KiB per descriptor, each ring its own 512 KiB from here.
const BUF: u64 = 0x1_0000;
const BUF_SIZE: u64 = 2048;
/// A receive buffer: the header and a 1514-byte frame.
const RX_BUF_LEN: u32 = (HLEN + 1514) as u32;
/// Descriptor flag: device-writable.
const WRITE: u16 = 2;
/// Available ring flag: no interrupts wanted (a poll-mode driver).
const NO_INTERRUPT: u16 = 1;
const RXQ: usize = 0;
const TXQ: usize = 1;
const MTU: usize = 1500;

/// One guest's driver: its memory (a clone shares the mapping the device has).
struct Guest {
    mem: GuestMemoryMmap,
    avail_idx: [u16; 2],
    used_seen: [u16; 2],
}

fn desc(q: usize) -> u64 {
    RING_BASE[q]
}
fn avail(q: usize) -> u64 {
    RING_BASE[q] + 0x1000
}
fn used(q: usize) -> u64 {
    RING_BASE[q] + 0x2000
}
fn buf(q: usize, i: u16) -> u64 {
    BUF + q as u64 * u64::from(RING) * BUF_SIZE + u64::from(i) * BUF_SIZE
}

impl Guest {
    /// A guest whose transmit descriptors each hold `hdr` + `frame` and whose receive
    /// descriptors are each an empty 1526-byte buffer; its port (id `id`).
    fn new(id: u16, hdr: &[u8; HLEN], frame: &[u8]) -> (Guest, VhostUserPort) {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        let put_desc = |q: usize, i: u16, addr: u64, len: u32, flags: u16| {
            let mut d = [0u8; 16];
            d[..8].copy_from_slice(&addr.to_le_bytes());
            d[8..12].copy_from_slice(&len.to_le_bytes());
            d[12..14].copy_from_slice(&flags.to_le_bytes());
            mem.write_slice(&d, GuestAddress(desc(q) + 16 * u64::from(i)))
                .unwrap();
        };
        for i in 0..RING {
            let at = buf(TXQ, i);
            mem.write_slice(hdr, GuestAddress(at)).unwrap();
            mem.write_slice(frame, GuestAddress(at + HLEN as u64))
                .unwrap();
            put_desc(TXQ, i, at, (HLEN + frame.len()) as u32, 0);
            put_desc(RXQ, i, buf(RXQ, i), RX_BUF_LEN, WRITE);
        }
        for q in [RXQ, TXQ] {
            mem.write_obj(NO_INTERRUPT, GuestAddress(avail(q))).unwrap();
        }
        let dev = Device::in_process(
            FEATURES,
            mem.clone(),
            &[RXQ, TXQ].map(|q| (RING, desc(q), avail(q), used(q))),
        );
        assert!(dev.running(), "both rings run");
        let port = VhostUserPort::in_process(id, dev, MTU);
        assert!(port.running());
        let g = Guest {
            mem,
            avail_idx: [0; 2],
            used_seen: [0; 2],
        };
        (g, port)
    }

    /// What the driver does before it offers more: take the used entries of ring `q`
    /// (reading each one's id and length, as a driver does to find its buffers); returns
    /// the bytes the device reported.
    fn reclaim(&mut self, q: usize) -> u64 {
        let ring = self
            .mem
            .get_slice(GuestAddress(RING_BASE[q]), 0x3000)
            .unwrap();
        let u = (used(q) - RING_BASE[q]) as usize;
        let idx: u16 = ring.load(u + 2, Ordering::Acquire).unwrap();
        let mut bytes = 0;
        while self.used_seen[q] != idx {
            let slot = (self.used_seen[q] % RING) as usize;
            let _id: u32 = ring.load(u + 4 + 8 * slot, Ordering::Relaxed).unwrap();
            let len: u32 = ring.load(u + 8 + 8 * slot, Ordering::Relaxed).unwrap();
            bytes += u64::from(len);
            self.used_seen[q] = self.used_seen[q].wrapping_add(1);
        }
        bytes
    }

    /// Offer `n` chains on ring `q` (head = slot: each descriptor keeps its buffer).
    fn offer(&mut self, q: usize, n: usize) {
        let ring = self
            .mem
            .get_slice(GuestAddress(RING_BASE[q]), 0x3000)
            .unwrap();
        let a = (avail(q) - RING_BASE[q]) as usize;
        for _ in 0..n {
            let slot = self.avail_idx[q] % RING;
            ring.store(slot, a + 4 + 2 * slot as usize, Ordering::Relaxed)
                .unwrap();
            self.avail_idx[q] = self.avail_idx[q].wrapping_add(1);
        }
        ring.store(self.avail_idx[q], a + 2, Ordering::Release)
            .unwrap();
    }
}

/// Guest A, guest B, their ports, a pool, a burst.
struct Path {
    a: Guest,
    b: Guest,
    pa: VhostUserPort,
    pb: VhostUserPort,
    pool: FramePool,
    burst: Burst,
}

impl Path {
    fn new(hdr: &[u8; HLEN], frame: &[u8]) -> Path {
        let (a, pa) = Guest::new(0, hdr, frame);
        let (b, pb) = Guest::new(1, &[0; HLEN], &[0; 60]);
        Path {
            a,
            b,
            pa,
            pb,
            pool: FramePool::with_heap(1024, 2048, 256),
            burst: Burst::new(),
        }
    }

    /// The drivers' part of one burst of `n` (not timed).
    #[inline(always)]
    fn drivers(&mut self, n: usize) -> u64 {
        self.a.reclaim(TXQ);
        self.a.offer(TXQ, n);
        let got = self.b.reclaim(RXQ);
        self.b.offer(RXQ, n);
        got
    }

    /// The worker's part: A's transmit ring to B's receive ring. Frames B refuses
    /// (none here) go back to the pool.
    #[inline(always)]
    fn worker(&mut self) -> usize {
        self.burst.clear();
        let n = self.pa.rx_burst(&mut self.pool, &mut self.burst);
        let sent = self.pb.tx_burst(&mut self.pool, self.burst.as_slice());
        for p in &self.burst.as_slice()[sent..] {
            self.pool.free(p.frame);
        }
        n
    }
}

/// Guest A's header and frame for a variant: a complete frame behind an empty header,
/// or its partial form behind a `NEEDS_CSUM` header.
fn guest_frame(len: usize, csum: bool) -> ([u8; HLEN], Vec<u8>, Vec<u8>) {
    let (full, partial) = tcp_frame(len);
    if !csum {
        return ([0; HLEN], full.clone(), full);
    }
    let mut f = full.clone();
    f[50..52].copy_from_slice(&partial.to_be_bytes());
    let mut h = [0u8; HLEN];
    h[0] = NEEDS_CSUM;
    h[6..8].copy_from_slice(&34u16.to_le_bytes());
    h[8..10].copy_from_slice(&16u16.to_le_bytes());
    (h, f, full)
}

/// One burst end to end, checked: B's first buffer holds the receive header and the
/// complete frame, every pool frame is back.
fn sanity(p: &mut Path, n: usize, want: &[u8]) {
    let free = p.pool.free_count();
    p.drivers(n);
    assert_eq!(p.worker(), n);
    assert_eq!(p.pool.free_count(), free, "every pool frame back");
    let got = p.b.reclaim(RXQ);
    assert_eq!(got, (n * (HLEN + want.len())) as u64);
    let mut b = vec![0u8; HLEN + want.len()];
    p.b.mem
        .read_slice(&mut b, GuestAddress(buf(RXQ, 0)))
        .unwrap();
    assert_eq!(&b[..HLEN], &RX_HEADER[..]);
    assert_eq!(&b[HLEN..], want);
    // Put B's driver back where `drivers` expects it (nothing left unread).
    p.b.used_seen[RXQ] = p.b.used_seen[RXQ].wrapping_sub(n as u16);
    p.b.reclaim(RXQ);
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("vhost_a_to_b");
    for (len, csum) in [(60usize, false), (60, true), (1514, false), (1514, true)] {
        let (hdr, frame, want) = guest_frame(len, csum);
        for n in [32usize, 64] {
            let mut p = Path::new(&hdr, &frame);
            sanity(&mut p, n, &want);
            g.throughput(Throughput::Elements(n as u64));
            let name = format!("{len}B{}", if csum { "_csum" } else { "" });
            g.bench_function(BenchmarkId::new(name, format!("burst{n}")), |b| {
                b.iter_custom(|iters| {
                    let mut t = Duration::ZERO;
                    for _ in 0..iters {
                        black_box(p.drivers(n));
                        let t0 = Instant::now();
                        black_box(p.worker());
                        t += t0.elapsed();
                    }
                    t
                })
            });
            if len == 60 && !csum {
                g.bench_function(
                    BenchmarkId::new(format!("{len}B_with_driver"), format!("burst{n}")),
                    |b| {
                        b.iter(|| {
                            black_box(p.drivers(n));
                            black_box(p.worker())
                        })
                    },
                );
            }
            let st = p.pa.vhost_stats();
            assert_eq!(st.chain_faults, [0; 5], "no chain refused");
            assert_eq!(st.no_frame, 0);
            assert_eq!(p.pb.vhost_stats().guest_not_reading, 0);
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
