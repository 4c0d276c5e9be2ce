//! The vhost-user port against an untrusted guest (issue #14, item 4): descriptor
//! chains that loop, point outside the guest's memory, have zero length, go the wrong
//! way or are too long or too short, a runaway available index, bad checksum offsets,
//! TSO super-frames, random descriptor tables.
//!
//! The guest is simulated in memory: one `GuestMemoryMmap` holds both split rings
//! (queue 0: the guest's receive ring, written by `tx_burst`; queue 1: its transmit
//! ring, read by `rx_burst`) laid out by hand as the virtio 1.x spec has them, and the
//! buffers. The test keeps its own handle of the memory (a clone shares the mapping)
//! and plays the driver: writes descriptors, offers heads, reads the used rings.
//!
//! Every test checks the invariants the port promises: a refused chain is counted by
//! its reason and returned to the used ring with length 0 (so the guest loses no
//! buffer), nothing panics or hangs, and every pool frame comes back.

use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};
use proptest::prelude::*;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vnet_core::frame::FramePool;
use vnet_core::port::vhost::chain::ChainFault;
use vnet_core::port::vhost::device::Device;
use vnet_core::port::vhost::virtio_net::{
    F_CSUM, F_GUEST_CSUM, F_GUEST_TSO4, F_HOST_TSO4, F_HOST_TSO6, F_INDIRECT_DESC, F_VERSION_1,
    GSO_TCPV4, GSO_UDP, NEEDS_CSUM, RX_HEADER,
};
use vnet_core::port::vhost::VhostUserPort;
use vnet_core::port::{Burst, Port};

/// Guest memory: 2 MiB from address 0.
const MEM_SIZE: u64 = 0x20_0000;
/// Descriptor flags.
const NEXT: u16 = 1;
const WRITE: u16 = 2;
const INDIRECT: u16 = 4;
const FEATURES: u64 = F_VERSION_1 | F_CSUM | F_HOST_TSO4 | F_HOST_TSO6 | F_INDIRECT_DESC;
/// The virtio-net header with `VERSION_1`.
const HLEN: usize = 12;
/// Rings (up to 256 entries each): descriptor table, available ring, used ring; two
/// queue pairs (receive, transmit, receive, transmit).
const RING_BASE: [u64; 4] = [0x1000, 0x5000, 0x9000, 0xd000];
/// Buffers are handed out from here on.
const BUF: u64 = 0x1_0000;
/// The port's MTU (IP packet), so segments are at most 1514-byte frames.
const MTU: usize = 1500;
/// Pool: 512 frames of 1792 bytes of data each.
const POOL_FRAMES: u32 = 512;
const RXQ: usize = 0;
const TXQ: usize = 1;

#[derive(Debug, Clone, Copy)]
struct Ring {
    size: u16,
    desc: u64,
    avail: u64,
    used: u64,
}

/// The driver's side of the device: the memory, the rings, a bump allocator for
/// buffers.
struct Guest {
    mem: GuestMemoryMmap,
    rings: [Ring; 4],
    avail_idx: [u16; 4],
    bump: u64,
}

impl Guest {
    fn write(&self, at: u64, bytes: &[u8]) {
        self.mem.write_slice(bytes, GuestAddress(at)).unwrap();
    }

    fn read(&self, at: u64, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, GuestAddress(at)).unwrap();
        v
    }

    fn u16_at(&self, at: u64) -> u16 {
        let b = self.read(at, 2);
        u16::from_le_bytes([b[0], b[1]])
    }

    /// Descriptor `i` of the table at `table`.
    fn put_desc(&self, table: u64, i: u32, addr: u64, len: u32, flags: u16, next: u16) {
        let mut d = [0u8; 16];
        d[..8].copy_from_slice(&addr.to_le_bytes());
        d[8..12].copy_from_slice(&len.to_le_bytes());
        d[12..14].copy_from_slice(&flags.to_le_bytes());
        d[14..].copy_from_slice(&next.to_le_bytes());
        self.write(table + 16 * u64::from(i), &d);
    }

    /// Descriptor `i` of queue `q`'s table.
    fn desc(&self, q: usize, i: u16, addr: u64, len: u32, flags: u16, next: u16) {
        self.put_desc(self.rings[q].desc, u32::from(i), addr, len, flags, next);
    }

    /// Offer the chain at `head` on queue `q`.
    fn offer(&mut self, q: usize, head: u16) {
        let r = self.rings[q];
        let slot = u64::from(self.avail_idx[q] % r.size);
        self.write(r.avail + 4 + 2 * slot, &head.to_le_bytes());
        self.avail_idx[q] = self.avail_idx[q].wrapping_add(1);
        self.set_avail_idx(q, self.avail_idx[q]);
    }

    fn set_avail_idx(&mut self, q: usize, idx: u16) {
        self.avail_idx[q] = idx;
        self.write(self.rings[q].avail + 2, &idx.to_le_bytes());
    }

    fn used_idx(&self, q: usize) -> u16 {
        self.u16_at(self.rings[q].used + 2)
    }

    /// Used element `i` of queue `q`: (id, len).
    fn used(&self, q: usize, i: u16) -> (u32, u32) {
        let r = self.rings[q];
        let b = self.read(r.used + 4 + 8 * u64::from(i % r.size), 8);
        (
            u32::from_le_bytes(b[..4].try_into().unwrap()),
            u32::from_le_bytes(b[4..].try_into().unwrap()),
        )
    }

    /// `len` bytes of buffer space (16-byte aligned).
    fn space(&mut self, len: usize) -> u64 {
        let at = self.bump;
        self.bump = (self.bump + len as u64 + 15) & !15;
        assert!(self.bump <= MEM_SIZE, "test guest out of memory");
        at
    }

    /// A buffer holding `bytes`.
    fn buf(&mut self, bytes: &[u8]) -> u64 {
        let at = self.space(bytes.len());
        self.write(at, bytes);
        at
    }

    /// A transmit chain in descriptors `first..`, one readable descriptor per part;
    /// returns its head.
    fn tx_chain(&mut self, first: u16, parts: &[&[u8]]) -> u16 {
        self.tx_chain_on(TXQ, first, parts)
    }

    /// [`Guest::tx_chain`] on transmit ring `q`.
    fn tx_chain_on(&mut self, q: usize, first: u16, parts: &[&[u8]]) -> u16 {
        for (i, p) in parts.iter().enumerate() {
            let i = i as u16;
            let last = i as usize + 1 == parts.len();
            let at = self.buf(p);
            let flags = if last { 0 } else { NEXT };
            self.desc(q, first + i, at, p.len() as u32, flags, first + i + 1);
        }
        first
    }
}

/// A guest with rings of `size` entries, its port, a pool.
fn setup(size: u16) -> (Guest, VhostUserPort, FramePool) {
    setup_with(size, FEATURES)
}

/// [`setup`] with the features the driver acknowledged.
fn setup_with(size: u16, features: u64) -> (Guest, VhostUserPort, FramePool) {
    setup_pairs(size, features, 1)
}

/// [`setup_with`] with `pairs` queue pairs set up (the rings of the others are laid
/// out but the device does not know them).
fn setup_pairs(size: u16, features: u64, pairs: usize) -> (Guest, VhostUserPort, FramePool) {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE as usize)]).unwrap();
    let rings = RING_BASE.map(|b| Ring {
        size,
        desc: b,
        avail: b + 0x1000,
        used: b + 0x2000,
    });
    let guest = Guest {
        mem: mem.clone(),
        rings,
        avail_idx: [0; 4],
        bump: BUF,
    };
    let dev = Device::in_process(
        features,
        mem,
        &rings.map(|r| (r.size, r.desc, r.avail, r.used))[..2 * pairs],
    );
    assert!(dev.running(), "both rings run");
    let port = VhostUserPort::in_process(0, dev, MTU);
    assert!(port.running());
    (guest, port, FramePool::with_heap(POOL_FRAMES, 2048, 256))
}

/// One `rx_burst` and the `service` call that ends the worker's loop (which returns the
/// burst's chains to the guest), as the worker makes them.
fn rx_once(port: &mut VhostUserPort, pool: &mut FramePool, out: &mut Burst) -> usize {
    let n = port.rx_burst(pool, out);
    port.service(pool);
    n
}

/// Everything the port delivers until it has nothing more: each frame's bytes, its
/// pool frame freed.
fn drain(port: &mut VhostUserPort, pool: &mut FramePool) -> Vec<Vec<u8>> {
    let mut got = vec![];
    let mut out = Burst::new();
    loop {
        out.clear();
        let n = rx_once(port, pool, &mut out);
        assert_eq!(n, out.len());
        for p in out.as_slice() {
            got.push(pool.bytes(p).to_vec());
            pool.free(p.frame);
        }
        if n == 0 {
            return got;
        }
    }
}

fn faults(port: &VhostUserPort) -> [u64; ChainFault::COUNT] {
    port.vhost_stats().chain_faults
}

/// The counters with only `reason` at `n`.
fn only(reason: ChainFault, n: u64) -> [u64; ChainFault::COUNT] {
    let mut f = [0; ChainFault::COUNT];
    f[reason as usize] = n;
    f
}

/// A virtio-net header.
fn hdr(flags: u8, gso_type: u8, gso_size: u16, csum_start: u16, csum_offset: u16) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = flags;
    h[1] = gso_type;
    h[4..6].copy_from_slice(&gso_size.to_le_bytes());
    h[6..8].copy_from_slice(&csum_start.to_le_bytes());
    h[8..10].copy_from_slice(&csum_offset.to_le_bytes());
    h
}

/// A header asking for nothing.
const PLAIN: [u8; 12] = [0; 12];

/// A UDP/IPv4 frame with `payload_len` bytes of payload (valid checksums).
fn udp_frame(payload_len: usize, tag: u8) -> Vec<u8> {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i as u8) ^ tag).collect();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 2, 15], [198, 18, 0, 1], 64)
        .udp(40000, 5201);
    let mut f = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut f, &payload).unwrap();
    f
}

/// `header ++ frame`.
fn cat(h: &[u8], f: &[u8]) -> Vec<u8> {
    [h, f].concat()
}

/// The 16-bit ones' complement sum of `b` (big-endian words), not folded.
fn ones_sum(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The IPv4 pseudo-header sum of an Ethernet/IPv4 frame's transport (IHL 5), as a
/// guest with `CSUM` leaves it in the checksum field.
fn pseudo_v4(f: &[u8]) -> u16 {
    let total = usize::from(u16::from_be_bytes([f[16], f[17]]));
    let l4_len = (total - 20) as u32;
    fold(ones_sum(&f[26..34]) + u32::from(f[23]) + l4_len)
}

/// Case 1: well-formed transmit chains (header and frame in one descriptor; split over
/// three descriptors; through an indirect table) are delivered byte for byte, each
/// chain returned to the used ring (its head, length 0), no fault counted, every pool
/// frame back.
#[test]
fn well_formed_transmit_chains_are_delivered_byte_for_byte() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let (f1, f2, f3) = (udp_frame(100, 1), udp_frame(1000, 2), udp_frame(1472, 3));

    let h1 = g.tx_chain(0, &[&cat(&PLAIN, &f1)]);
    let h2 = g.tx_chain(1, &[&PLAIN, &f2[..20], &f2[20..]]);
    // An indirect table of two descriptors (header, frame) behind descriptor 4.
    let table = g.space(32);
    let (a, b) = (g.buf(&PLAIN), g.buf(&f3));
    g.put_desc(table, 0, a, HLEN as u32, NEXT, 1);
    g.put_desc(table, 1, b, f3.len() as u32, 0, 0);
    g.desc(TXQ, 4, table, 32, INDIRECT, 0);
    for h in [h1, h2, 4] {
        g.offer(TXQ, h);
    }

    let got = drain(&mut port, &mut pool);
    assert_eq!(got, vec![f1, f2, f3]);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
    assert_eq!(g.used_idx(TXQ), 3);
    for (i, h) in [h1, h2, 4].into_iter().enumerate() {
        assert_eq!(g.used(TXQ, i as u16), (u32::from(h), 0));
    }
    assert_eq!(pool.free_count(), start);
}

/// Two queue pairs (QEMU's `queues=2`, a guest with two vCPUs): frames from both
/// transmit rings are delivered and their chains returned to their own used rings;
/// frames for the guest go on pair 0's receive ring, pair 1's buffers stay untouched.
#[test]
fn every_queue_pairs_transmit_ring_is_read_and_pair_0_receives() {
    let (mut g, mut port, mut pool) = setup_pairs(16, FEATURES, 2);
    let detail = port.info().detail;
    assert!(detail.contains("2 queue pair(s)"), "{detail}");
    let start = pool.free_count();
    let (f1, f2, f3) = (udp_frame(100, 1), udp_frame(200, 2), udp_frame(300, 3));
    let h1 = g.tx_chain_on(TXQ, 0, &[&cat(&PLAIN, &f1)]);
    let h2 = g.tx_chain_on(TXQ + 2, 5, &[&cat(&PLAIN, &f2)]);
    let h3 = g.tx_chain_on(TXQ + 2, 6, &[&PLAIN, &f3]);
    g.offer(TXQ, h1);
    g.offer(TXQ + 2, h2);
    g.offer(TXQ + 2, h3);
    let mut got = drain(&mut port, &mut pool);
    got.sort_by_key(Vec::len);
    assert_eq!(got, vec![f1.clone(), f2, f3]);
    assert_eq!((g.used_idx(TXQ), g.used_idx(TXQ + 2)), (1, 2));
    assert_eq!(g.used(TXQ + 2, 1), (u32::from(h3), 0));
    assert_eq!(pool.free_count(), start);

    for q in [RXQ, RXQ + 2] {
        for i in 0..2u16 {
            let at = g.space(2048);
            g.desc(q, i, at, 2048, WRITE, 0);
            g.offer(q, i);
        }
    }
    let pkts: Vec<_> = (0..2).map(|_| pool.alloc_copy(&f1, 3).unwrap()).collect();
    assert_eq!(port.tx_burst(&mut pool, &pkts), 2);
    assert_eq!((g.used_idx(RXQ), g.used_idx(RXQ + 2)), (2, 0));
    assert_eq!(g.used(RXQ, 1), (1, (HLEN + f1.len()) as u32));
    assert_eq!(pool.free_count(), start);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
}

/// Offer the chain `build` lays out (returning its head) on the transmit ring and
/// check that it is refused for `reason`: nothing delivered, the one fault counted,
/// the head returned with length 0 (`returned`; a head outside the table cannot be),
/// no pool frame kept; then a good chain is still carried (the port is not stuck).
fn expect_refused(
    size: u16,
    reason: ChainFault,
    returned: bool,
    build: impl FnOnce(&mut Guest) -> u16,
) {
    let (mut g, mut port, mut pool) = setup(size);
    let start = pool.free_count();
    let head = build(&mut g);
    g.offer(TXQ, head);
    assert_eq!(drain(&mut port, &mut pool), Vec::<Vec<u8>>::new());
    assert_eq!(faults(&port), only(reason, 1), "refused as {reason:?}");
    assert_eq!(port.vhost_stats().ring_faults, 0);
    if returned {
        assert_eq!(g.used_idx(TXQ), 1);
        assert_eq!(g.used(TXQ, 0), (u32::from(head), 0));
    } else {
        assert_eq!(g.used_idx(TXQ), 0);
    }
    assert_eq!(pool.free_count(), start);

    let f = udp_frame(200, 9);
    let good = g.tx_chain(0, &[&cat(&PLAIN, &f)]);
    g.offer(TXQ, good);
    assert_eq!(drain(&mut port, &mut pool), vec![f]);
    let before = u16::from(returned);
    assert_eq!(g.used_idx(TXQ), before + 1);
    assert_eq!(g.used(TXQ, before), (u32::from(good), 0));
    assert_eq!(faults(&port), only(reason, 1));
    assert_eq!(pool.free_count(), start);
}

/// A frame's worth of bytes (header and a UDP frame) for the malformed chains to point at.
fn some_bytes(g: &mut Guest) -> (u64, u32) {
    let b = cat(&PLAIN, &udp_frame(60, 7));
    (g.buf(&b), b.len() as u32)
}

/// Case 2a: a chain that loops (0 -> 1 -> 0) is refused as unterminated.
#[test]
fn a_looping_chain_is_unterminated() {
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let (a, n) = some_bytes(g);
        g.desc(TXQ, 0, a, n, NEXT, 1);
        g.desc(TXQ, 1, a, n, NEXT, 0);
        0
    });
}

/// Case 2b: a chain through every descriptor of the ring and on (15 -> 0 -> ... -> 15
/// -> 0): longer than the ring, refused as unterminated after at most a ring's worth.
#[test]
fn a_chain_longer_than_the_ring_is_unterminated() {
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let (a, n) = some_bytes(g);
        for i in 0..16 {
            g.desc(TXQ, i, a, n / 16 + 1, NEXT, (i + 1) % 16);
        }
        5
    });
}

/// Case 2c: an indirect table of 40000 chained descriptors (each one byte), longer than
/// the largest ring (32768) the port accepts a chain of: unterminated.
#[test]
fn an_indirect_chain_longer_than_any_ring_is_unterminated() {
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let (a, _) = some_bytes(g);
        let n = 40_000u32;
        let table = g.space(16 * n as usize);
        for i in 0..n {
            let last = i + 1 == n;
            let flags = if last { 0 } else { NEXT };
            g.put_desc(table, i, a, 1, flags, (i + 1) as u16);
        }
        g.desc(TXQ, 3, table, 16 * n, INDIRECT, 0);
        3
    });
}

/// Case 2d: a `next` index outside the descriptor table: unterminated.
#[test]
fn a_next_outside_the_table_is_unterminated() {
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let (a, n) = some_bytes(g);
        g.desc(TXQ, 0, a, 20, NEXT, 16);
        g.desc(TXQ, 1, a, n, NEXT, 0xffff);
        1
    });
    // The same inside an indirect table (its size bounds `next`).
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let (a, n) = some_bytes(g);
        let table = g.space(32);
        g.put_desc(table, 0, a, 12, NEXT, 1);
        g.put_desc(table, 1, a + 12, n - 12, NEXT, 2);
        g.desc(TXQ, 7, table, 32, INDIRECT, 0);
        7
    });
}

/// Case 2f: broken indirect tables: outside guest memory, a length that is not a
/// whole number of descriptors, empty, an indirect descriptor inside one (nested):
/// virtio-queue yields no descriptor (or stops) there, so the chain is unterminated
/// (an indirect table outside memory counts as unterminated, not unmapped).
#[test]
fn broken_indirect_tables_are_unterminated() {
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        g.desc(TXQ, 3, MEM_SIZE + 0x100, 32, INDIRECT, 0);
        3
    });
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let (a, n) = some_bytes(g);
        let table = g.space(32);
        g.put_desc(table, 0, a, n, 0, 0);
        g.desc(TXQ, 3, table, 24, INDIRECT, 0);
        3
    });
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let table = g.space(32);
        g.desc(TXQ, 3, table, 0, INDIRECT, 0);
        3
    });
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let (a, n) = some_bytes(g);
        let (outer, inner) = (g.space(32), g.space(16));
        g.put_desc(inner, 0, a, n, 0, 0);
        g.put_desc(outer, 0, a, HLEN as u32, NEXT, 1);
        g.put_desc(outer, 1, inner, 16, INDIRECT, 0);
        g.desc(TXQ, 3, outer, 32, INDIRECT, 0);
        3
    });
}

/// Case 2e: a head index outside the table: unterminated. It cannot be returned (the
/// used ring's id would be outside the driver's table, which a Linux guest treats as a
/// broken device), so the used index does not move for it; the next chain is served.
#[test]
fn a_head_outside_the_table_is_unterminated() {
    expect_refused(16, ChainFault::Unterminated, false, |_| 16);
    expect_refused(16, ChainFault::Unterminated, false, |_| 0xffff);
}

/// Case 3: a buffer outside guest memory, one whose end crosses the end of memory, one
/// whose addr + len overflows u64, alone, behind a good descriptor or in an indirect
/// table: unmapped.
#[test]
fn buffers_outside_guest_memory_are_unmapped() {
    for (addr, len) in [
        (MEM_SIZE + 0x1000, 100),
        (MEM_SIZE, 100),
        (MEM_SIZE - 50, 100),
        (u64::MAX - 10, 100),
        (u64::MAX, u32::MAX),
        (BUF, u32::MAX),
    ] {
        // Alone.
        expect_refused(16, ChainFault::Unmapped, true, |g| {
            g.desc(TXQ, 0, addr, len, 0, 0);
            0
        });
        // Behind a good header descriptor (the chain under 2^32 bytes in all).
        expect_refused(16, ChainFault::Unmapped, true, |g| {
            let h = g.buf(&PLAIN);
            g.desc(TXQ, 2, h, HLEN as u32, NEXT, 9);
            g.desc(TXQ, 9, addr, len.min(u32::MAX - HLEN as u32), 0, 0);
            2
        });
    }
    // A chain of 2^32 bytes or more in all is cut there by virtio-queue (VIRTIO 1.2,
    // 2.7.5.2: drivers must not make one), before the port sees the descriptor that
    // crosses the limit: refused as unterminated.
    expect_refused(16, ChainFault::Unterminated, true, |g| {
        let h = g.buf(&PLAIN);
        g.desc(TXQ, 2, h, HLEN as u32, NEXT, 9);
        g.desc(TXQ, 9, BUF, u32::MAX, 0, 0);
        2
    });
    // An indirect table's descriptor likewise.
    expect_refused(16, ChainFault::Unmapped, true, |g| {
        let table = g.space(32);
        let h = g.buf(&PLAIN);
        g.put_desc(table, 0, h, HLEN as u32, NEXT, 1);
        g.put_desc(table, 1, MEM_SIZE - 8, 64, 0, 0);
        g.desc(TXQ, 4, table, 32, INDIRECT, 0);
        4
    });
}

/// Case 4a: a chain of only zero-length descriptors (one, or several) is short.
#[test]
fn a_chain_of_zero_length_descriptors_is_short() {
    expect_refused(16, ChainFault::Short, true, |g| {
        let a = g.space(64);
        g.desc(TXQ, 0, a, 0, 0, 0);
        0
    });
    expect_refused(16, ChainFault::Short, true, |g| {
        let a = g.space(64);
        g.desc(TXQ, 0, a, 0, NEXT, 1);
        g.desc(TXQ, 1, a, 0, NEXT, 2);
        g.desc(TXQ, 2, a, 0, 0, 0);
        0
    });
    // A header and an Ethernet header one byte short.
    expect_refused(16, ChainFault::Short, true, |g| {
        let b = cat(&PLAIN, &[0xab; 13]);
        g.tx_chain(0, &[&b])
    });
}

/// Case 4b: zero-length descriptors between good ones (even with an address outside
/// memory: a zero-length buffer is never touched) do not disturb the frame.
#[test]
fn zero_length_descriptors_between_good_ones_are_fine() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let f = udp_frame(300, 4);
    let (h, a, b) = (g.buf(&PLAIN), g.buf(&f[..100]), g.buf(&f[100..]));
    g.desc(TXQ, 0, h, HLEN as u32, NEXT, 1);
    g.desc(TXQ, 1, h, 0, NEXT, 2);
    g.desc(TXQ, 2, a, 100, NEXT, 3);
    g.desc(TXQ, 3, MEM_SIZE + 0x10_0000, 0, NEXT, 4);
    g.desc(TXQ, 4, b, (f.len() - 100) as u32, NEXT, 5);
    g.desc(TXQ, 5, b, 0, 0, 0);
    g.offer(TXQ, 0);
    assert_eq!(drain(&mut port, &mut pool), vec![f]);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
    assert_eq!((g.used_idx(TXQ), g.used(TXQ, 0)), (1, (0, 0)));
    assert_eq!(pool.free_count(), start);
}

/// Case 5a: a device-writable buffer in a transmit chain: wrong direction.
#[test]
fn a_writable_buffer_in_a_transmit_chain_is_wrong_direction() {
    expect_refused(16, ChainFault::WrongDirection, true, |g| {
        let (a, n) = some_bytes(g);
        g.desc(TXQ, 0, a, n, WRITE, 0);
        0
    });
    expect_refused(16, ChainFault::WrongDirection, true, |g| {
        let (a, n) = some_bytes(g);
        g.desc(TXQ, 0, a, HLEN as u32, NEXT, 1);
        g.desc(TXQ, 1, a + HLEN as u64, n - HLEN as u32, WRITE, 0);
        0
    });
}

/// Receive-ring chains for `tx_burst`: a guest whose receive ring offers the chain
/// `build` lays out; one frame of `frame_len` is sent. Returns (guest, port, pool,
/// the frame, what `tx_burst` returned); the pool is back to full.
fn send_one(
    frame_len: usize,
    build: impl FnOnce(&mut Guest) -> u16,
) -> (Guest, VhostUserPort, FramePool, Vec<u8>, usize, u16) {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let head = build(&mut g);
    g.offer(RXQ, head);
    let f = udp_frame(frame_len - 42, 5);
    let p = pool.alloc_copy(&f, 3).unwrap();
    let sent = port.tx_burst(&mut pool, &[p]);
    if sent == 0 {
        pool.free(p.frame);
    }
    assert_eq!(pool.free_count(), start, "the accepted frame was freed");
    (g, port, pool, f, sent, head)
}

/// Case 5b: a readable buffer in a receive chain: wrong direction; the frame is
/// accepted and dropped (the chain was consumed: see case 6b), the chain returned with
/// length 0, and no byte written into the guest's buffers, not even the writable one
/// before the readable one.
#[test]
fn a_readable_buffer_in_a_receive_chain_is_wrong_direction() {
    let mut bufs = (0, 0);
    let (g, port, _pool, _f, sent, head) = send_one(100, |g| {
        bufs = (g.buf(&[0xaa; 64]), g.buf(&[0xbb; 2048]));
        g.desc(RXQ, 6, bufs.0, 64, WRITE | NEXT, 7);
        g.desc(RXQ, 7, bufs.1, 2048, NEXT, 8);
        g.desc(RXQ, 8, bufs.0, 16, WRITE, 0);
        6
    });
    assert_eq!(sent, 1);
    assert_eq!(faults(&port), only(ChainFault::WrongDirection, 1));
    assert_eq!((g.used_idx(RXQ), g.used(RXQ, 0)), (1, (u32::from(head), 0)));
    assert_eq!(g.read(bufs.0, 64), vec![0xaa; 64]);
    assert_eq!(g.read(bufs.1, 2048), vec![0xbb; 2048]);
    assert_eq!(port.vhost_stats().guest_not_reading, 0);
}

/// Case 6a: a transmit chain longer than a pool frame and not a super-frame: too long.
/// A super-frame longer than the largest IP packet (64 KiB): too long as well.
#[test]
fn a_transmit_chain_longer_than_a_frame_is_too_long() {
    // The pool's frames hold 1792 bytes: 1793 is one too many, 1792 fits.
    expect_refused(16, ChainFault::TooLong, true, |g| {
        let f = udp_frame(1793 - 42, 1);
        g.tx_chain(0, &[&PLAIN, &f])
    });
    let (mut g, mut port, mut pool) = setup(16);
    let f = vec![0x5a; 1792];
    let h = g.tx_chain(0, &[&PLAIN, &f]);
    g.offer(TXQ, h);
    assert_eq!(drain(&mut port, &mut pool), vec![f]);

    expect_refused(16, ChainFault::TooLong, true, |g| {
        let h = hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16);
        let f = super_frame(&vec![0u8; 65_600], 0x10, 1, 1);
        g.tx_chain(0, &[&h, &f])
    });
}

/// Case 6b: a receive chain too small for the frame: refused as too long, nothing
/// written into it, returned with length 0. `tx_burst` counts the frame as accepted
/// (and frees it): the guest's buffer is consumed either way, and refusing the frame
/// would leave it to the caller to retry into the next buffer or hold up every frame
/// behind it; the loss is the guest's doing and is counted (`chain_faults`, and the
/// port's `invalid_descs`). A chain of exactly header + frame is filled.
#[test]
fn a_receive_chain_too_small_is_refused_and_the_frame_dropped() {
    let mut at = 0;
    let (g, port, _pool, _f, sent, head) = send_one(60, |g| {
        at = g.buf(&[0xcc; 80]);
        g.desc(RXQ, 0, at, 40, WRITE | NEXT, 1);
        g.desc(RXQ, 1, at + 40, (HLEN + 60 - 40 - 1) as u32, WRITE, 0);
        0
    });
    assert_eq!(sent, 1, "accepted and dropped");
    assert_eq!(faults(&port), only(ChainFault::TooLong, 1));
    assert_eq!(port.stats().invalid_descs, 1);
    assert_eq!((g.used_idx(RXQ), g.used(RXQ, 0)), (1, (u32::from(head), 0)));
    assert_eq!(g.read(at, 80), vec![0xcc; 80], "nothing written");
    assert_eq!(port.vhost_stats().guest_not_reading, 0);

    let (g, port, _pool, f, sent, head) = send_one(60, |g| {
        at = g.buf(&[0xcc; 80]);
        g.desc(RXQ, 0, at, 40, WRITE | NEXT, 1);
        g.desc(RXQ, 1, at + 40, (HLEN + 60 - 40) as u32, WRITE, 0);
        0
    });
    assert_eq!(sent, 1);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
    let n = (HLEN + 60) as u32;
    assert_eq!((g.used_idx(RXQ), g.used(RXQ, 0)), (1, (u32::from(head), n)));
    assert_eq!(g.read(at, HLEN + 60), cat(&RX_HEADER, &f));
    assert_eq!(g.read(at + u64::from(n), 8), vec![0xcc; 8]);
}

/// Case 7: the driver's available index more than a ring ahead of the device: the
/// ring is broken (nothing taken, nothing returned), counted once however often it is
/// polled; the same on the receive ring, where `tx_burst` then accepts nothing. A
/// whole ring ahead is still legal and served.
#[test]
fn a_runaway_available_index_breaks_the_ring_once() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let h = g.tx_chain(0, &[&cat(&PLAIN, &udp_frame(50, 1))]);
    g.offer(TXQ, h);
    g.set_avail_idx(TXQ, 17);
    for _ in 0..3 {
        assert!(drain(&mut port, &mut pool).is_empty());
    }
    assert_eq!(port.vhost_stats().ring_faults, 1);
    assert_eq!(g.used_idx(TXQ), 0);
    assert!(!port.running());

    // The receive ring: 0x8000 ahead.
    g.set_avail_idx(RXQ, 0x8000);
    let p = pool.alloc_copy(&udp_frame(50, 2), 1).unwrap();
    for _ in 0..3 {
        assert_eq!(port.tx_burst(&mut pool, &[p]), 0);
    }
    pool.free(p.frame);
    assert_eq!(port.vhost_stats().ring_faults, 2);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
    assert_eq!(pool.free_count(), start);

    // Exactly a ring ahead: 16 chains (all the same head, as a confused driver might).
    let (mut g, mut port, mut pool) = setup(16);
    let f = udp_frame(50, 3);
    let h = g.tx_chain(0, &[&cat(&PLAIN, &f)]);
    for _ in 0..16 {
        g.offer(TXQ, h);
    }
    assert_eq!(drain(&mut port, &mut pool), vec![f; 16]);
    assert_eq!(port.vhost_stats().ring_faults, 0);
    assert_eq!(g.used_idx(TXQ), 16);
}

/// A TCP/IPv4 frame with valid checksums and where its checksum field is.
fn tcp_frame(payload_len: usize) -> (Vec<u8>, usize) {
    let payload: Vec<u8> = (0..payload_len).map(|i| (i * 13) as u8).collect();
    let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 2, 15], [198, 18, 0, 1], 64)
        .tcp(40000, 5201, 77, 1024);
    let mut f = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut f, &payload).unwrap();
    (f, 34 + 16)
}

/// Case 8: a NEEDS_CSUM frame (TCP and UDP) is completed to the frame with its real
/// checksum; offsets beyond the frame (or inside the Ethernet header) are refused as
/// short and counted, the frame not delivered.
#[test]
fn partial_checksums_are_completed_and_bad_offsets_refused() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let (good_tcp, at) = tcp_frame(333);
    let mut partial = good_tcp.clone();
    let p = pseudo_v4(&partial);
    partial[at..at + 2].copy_from_slice(&p.to_be_bytes());
    assert_ne!(partial, good_tcp);
    let h = g.tx_chain(0, &[&hdr(NEEDS_CSUM, 0, 0, 34, 16), &partial]);
    g.offer(TXQ, h);

    let good_udp = udp_frame(101, 8);
    let mut partial_udp = good_udp.clone();
    let p = pseudo_v4(&partial_udp);
    partial_udp[40..42].copy_from_slice(&p.to_be_bytes());
    let h = g.tx_chain(2, &[&cat(&hdr(NEEDS_CSUM, 0, 0, 34, 6), &partial_udp)]);
    g.offer(TXQ, h);

    let len = partial.len() as u16;
    for (i, (start, offset)) in [
        (34, len - 34 - 1),
        (34, 0xffff),
        (0xffff, 0xffff),
        (2, 10),
        (len, 0),
    ]
    .into_iter()
    .enumerate()
    {
        let h = g.tx_chain(
            4 + i as u16,
            &[&cat(&hdr(NEEDS_CSUM, 0, 0, start, offset), &partial)],
        );
        g.offer(TXQ, h);
    }
    assert_eq!(drain(&mut port, &mut pool), vec![good_tcp, good_udp]);
    assert_eq!(port.vhost_stats().csum_completed, 2);
    assert_eq!(faults(&port), only(ChainFault::Short, 5));
    assert_eq!(g.used_idx(TXQ), 7);
    for i in 0..7 {
        assert_eq!(g.used(TXQ, i).1, 0);
    }
    assert_eq!(pool.free_count(), start);
}

/// A TSO super-frame as a guest hands it over: Ethernet, IPv4 (id `id`), TCP from
/// 10.0.2.15:40000 to 198.18.0.1:5201 with a timestamp option (a 32-byte header),
/// sequence number `seq`, `flags`, and `payload`; the TCP checksum field holds the
/// pseudo-header sum (as with `NEEDS_CSUM`), the IP checksum is left zero.
fn super_frame(payload: &[u8], flags: u8, id: u16, seq: u32) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = (20 + 32 + payload.len()).min(0xffff);
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8]);
    f.extend_from_slice(&id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 198, 18, 0, 1]);
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 7, 0x80, flags, 0x01, 0xf6, 0, 0, 0, 0]);
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend_from_slice(payload);
    let p = pseudo_v4(&f);
    f[50..52].copy_from_slice(&p.to_be_bytes());
    f
}

/// Case 9: a TSO super-frame (TCPv4, gso_size 1448, 10 KB of payload, spread over
/// several descriptors as a guest's scatter-gather list is) comes out as segments of
/// at most 1514 bytes, each carrying the `gso_size` the guest asked for (the last the
/// rest), with valid IPv4 and TCP checksums, consecutive sequence numbers and IP ids,
/// PSH only on the last, and the payload in order.
#[test]
fn a_tso_super_frame_becomes_valid_mtu_segments() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let payload: Vec<u8> = (0..10_240u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let seq0 = 0xffff_f000u32; // wraps
    let f = super_frame(&payload, 0x18, 0xfffe, seq0);
    let h = hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16);
    let h = g.tx_chain(0, &[&h, &f[..66], &f[66..4000], &f[4000..8192], &f[8192..]]);
    g.offer(TXQ, h);

    let segs = drain(&mut port, &mut pool);
    assert_eq!(segs.len(), 10_240usize.div_ceil(1448));
    let mut got = vec![];
    for (i, s) in segs.iter().enumerate() {
        assert!(s.len() <= 1514, "segment {i}: {} bytes", s.len());
        let sp = SlicedPacket::from_ethernet(s).unwrap();
        let Some(NetSlice::Ipv4(ip)) = sp.net else {
            panic!("segment {i} not ipv4")
        };
        let iph = ip.header().to_header();
        assert_eq!(
            iph.header_checksum,
            iph.calc_header_checksum(),
            "segment {i}"
        );
        assert_eq!(usize::from(iph.total_len), s.len() - 14);
        assert_eq!(iph.identification, 0xfffeu16.wrapping_add(i as u16));
        let Some(TransportSlice::Tcp(tcp)) = sp.transport else {
            panic!("segment {i} not tcp")
        };
        let th = tcp.to_header();
        assert_eq!(
            th.checksum,
            th.calc_checksum_ipv4(&iph, tcp.payload()).unwrap(),
            "segment {i}"
        );
        assert_eq!(th.sequence_number, seq0.wrapping_add(got.len() as u32));
        assert_eq!(th.psh, i + 1 == segs.len());
        let want = if i + 1 == segs.len() {
            10_240 - 1448 * i
        } else {
            1448
        };
        assert_eq!(tcp.payload().len(), want, "segment {i} carries gso_size");
        got.extend_from_slice(tcp.payload());
    }
    assert_eq!(got, payload);
    assert_eq!(g.used_idx(TXQ), 1);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
    assert_eq!(pool.free_count(), start);

    // A UDP super-frame (never offered) is dropped and counted, its chain returned.
    let h = g.tx_chain(0, &[&hdr(0, GSO_UDP, 1000, 0, 0), &f]);
    g.offer(TXQ, h);
    assert!(drain(&mut port, &mut pool).is_empty());
    assert_eq!(port.vhost_stats().gso_refused, 1);
    assert_eq!(g.used_idx(TXQ), 2);
    assert_eq!(pool.free_count(), start);
}

/// Case 9, continued: super-frames whose segments overflow a burst (8 super-frames of
/// 8 segments and 8 plain frames between them: 72 frames, more than the 64 of a burst)
/// come out whole and in the guest's order across bursts, every chain returned.
#[test]
fn segments_beyond_a_burst_keep_their_order() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let payload: Vec<u8> = (0..10_240u32).map(|i| (i * 3) as u8).collect();
    let f = super_frame(&payload, 0x10, 1, 1000);
    let sh = hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16);
    let s = g.tx_chain(0, &[&sh, &f[..100], &f[100..]]);
    let plain = udp_frame(500, 6);
    let p = g.tx_chain(3, &[&cat(&PLAIN, &plain)]);
    for _ in 0..8 {
        g.offer(TXQ, s);
        g.offer(TXQ, p);
    }
    let mut bursts = 0;
    let mut got = vec![];
    let mut out = Burst::new();
    loop {
        out.clear();
        if rx_once(&mut port, &mut pool, &mut out) == 0 {
            break;
        }
        bursts += 1;
        for q in out.as_slice() {
            got.push(pool.bytes(q).to_vec());
            pool.free(q.frame);
        }
    }
    assert_eq!(bursts, 2);
    assert_eq!(got.len(), 8 * 9);
    let segs = &got[..8];
    for (i, chunk) in got.chunks(9).enumerate() {
        assert_eq!(&chunk[..8], segs, "super-frame {i}");
        assert_eq!(chunk[8], plain, "plain frame {i}");
    }
    let mut data = vec![];
    for s in segs {
        data.extend_from_slice(&s[66..]);
    }
    assert_eq!(data, payload);
    assert_eq!(g.used_idx(TXQ), 16);
    assert_eq!(pool.free_count(), start);
}

/// A dry pool: with 4 frames left, 8 plain frames give 4 delivered and 4 counted as
/// `no_frame`, and a super-frame of 8 segments is dropped whole (not cut short); every
/// chain is returned and every frame comes back.
#[test]
fn a_dry_pool_drops_and_counts_without_leaking() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let held: Vec<u32> = (0..start - 4).map(|_| pool.alloc().unwrap()).collect();
    let plain = udp_frame(64, 2);
    let p = g.tx_chain(0, &[&cat(&PLAIN, &plain)]);
    for _ in 0..8 {
        g.offer(TXQ, p);
    }
    let mut out = Burst::new();
    assert_eq!(rx_once(&mut port, &mut pool, &mut out), 4);
    assert_eq!(port.vhost_stats().no_frame, 4);
    assert_eq!(g.used_idx(TXQ), 8);
    assert_eq!(pool.free_count(), 0);
    for q in out.as_slice() {
        assert_eq!(pool.bytes(q), &plain[..]);
        pool.free(q.frame);
    }

    let f = super_frame(&[1u8; 10_240], 0x10, 1, 1);
    let s = g.tx_chain(1, &[&hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), &f]);
    g.offer(TXQ, s);
    assert!(drain(&mut port, &mut pool).is_empty());
    assert_eq!(port.stats().offload.segments, 0);
    assert_eq!(g.used_idx(TXQ), 9);
    assert_eq!(pool.free_count(), 4);
    for h in held {
        pool.free(h);
    }
    assert_eq!(pool.free_count(), start);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
}

/// Case 11: a guest that offers no receive buffer is not reading: `tx_burst` accepts
/// nothing (the frames stay the caller's) and counts them; with one buffer, one frame
/// is accepted and the rest counted.
#[test]
fn a_guest_that_is_not_reading_refuses_frames() {
    let (mut g, mut port, mut pool) = setup(16);
    let start = pool.free_count();
    let pkts: Vec<_> = (0..3)
        .map(|i| pool.alloc_copy(&udp_frame(60 + i, i as u8), 2).unwrap())
        .collect();
    assert_eq!(port.tx_burst(&mut pool, &pkts), 0);
    assert_eq!(port.vhost_stats().guest_not_reading, 3);
    assert_eq!(pool.free_count(), start - 3, "the caller still owns them");

    let at = g.space(2048);
    g.desc(RXQ, 0, at, 2048, WRITE, 0);
    g.offer(RXQ, 0);
    assert_eq!(port.tx_burst(&mut pool, &pkts), 1);
    assert_eq!(port.vhost_stats().guest_not_reading, 5);
    assert_eq!(g.used(RXQ, 0), (0, (HLEN + pkts[0].len as usize) as u32));
    assert_eq!(g.read(at + HLEN as u64, 102), udp_frame(60, 0));
    for p in &pkts[1..] {
        pool.free(p.frame);
    }
    assert_eq!(pool.free_count(), start);
    assert_eq!(faults(&port), [0; ChainFault::COUNT]);
}

/// Case 12 (offloads kept between guests): a guest's TSO super-frame, cut into
/// segments at receive, reaches a guest that negotiated `GUEST_TSO4` as one super-frame
/// in its 64 KiB buffer (a Linux guest's "big packets" chain: header, then pages),
/// with `NEEDS_CSUM` and the sender's `gso_size`, its payload whole and its partial
/// checksum completing to the right one; into a 2 KiB buffer, or for a guest without
/// `GUEST_TSO4`, the segments go one per buffer, finished.
#[test]
fn super_frames_reach_a_guest_that_takes_them_whole() {
    let features = FEATURES | F_GUEST_CSUM | F_GUEST_TSO4;
    let payload: Vec<u8> = (0..10_240u32).map(|i| (i * 13 + i / 97) as u8).collect();
    let f = super_frame(&payload, 0x18, 0x4000, 77);
    let segments = |g: &mut Guest, port: &mut VhostUserPort, pool: &mut FramePool| {
        let h = g.tx_chain(0, &[&hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16), &f]);
        g.offer(TXQ, h);
        let segs = drain(port, pool);
        assert_eq!(segs.len(), 8);
        segs.iter()
            .map(|s| pool.alloc_copy(s, 1).unwrap())
            .collect::<Vec<_>>()
    };

    let (mut g, mut port, mut pool) = setup_with(16, features);
    let start = pool.free_count();
    let pkts = segments(&mut g, &mut port, &mut pool);
    let at = g.space(HLEN + 2 * 0x8000);
    g.desc(RXQ, 0, at, HLEN as u32, WRITE | NEXT, 1);
    g.desc(RXQ, 1, at + HLEN as u64, 0x8000, WRITE | NEXT, 2);
    g.desc(RXQ, 2, at + (HLEN + 0x8000) as u64, 0x8000, WRITE, 0);
    g.offer(RXQ, 0);
    assert_eq!(
        port.tx_burst(&mut pool, &pkts),
        8,
        "all 8 segments in one buffer"
    );
    let len = 66 + payload.len();
    assert_eq!(g.used(RXQ, 0), (0, (HLEN + len) as u32));
    let h = g.read(at, HLEN);
    assert_eq!(h[..2], [NEEDS_CSUM, GSO_TCPV4]);
    let le = |i: usize| u16::from_le_bytes([h[i], h[i + 1]]);
    assert_eq!((le(2), le(4), le(6), le(8), le(10)), (66, 1448, 34, 16, 1));
    let mut got = g.read(at + HLEN as u64, len);
    assert_eq!(&got[66..], &payload[..]);
    // The guest's stack takes the partial checksum as it is; completed, it is right.
    assert_eq!(u16::from_be_bytes([got[50], got[51]]), pseudo_v4(&got));
    let done = !fold(ones_sum(&got[34..]));
    got[50..52].copy_from_slice(&done.to_be_bytes());
    let sp = SlicedPacket::from_ethernet(&got).unwrap();
    let Some(NetSlice::Ipv4(ip)) = sp.net else {
        panic!("not ipv4")
    };
    let iph = ip.header().to_header();
    assert_eq!(iph.header_checksum, iph.calc_header_checksum());
    assert_eq!(usize::from(iph.total_len), len - 14);
    assert_eq!(iph.identification, 0x4000);
    let Some(TransportSlice::Tcp(tcp)) = sp.transport else {
        panic!("not tcp")
    };
    let th = tcp.to_header();
    assert_eq!(
        th.checksum,
        th.calc_checksum_ipv4(&iph, tcp.payload()).unwrap()
    );
    assert_eq!((th.sequence_number, th.psh), (77, true));
    let v = port.vhost_stats();
    assert_eq!((v.coalesced, v.coalesced_segments), (1, 8));
    assert_eq!(pool.free_count(), start);

    // 2 KiB buffers: a full segment fills one (two do not fit), so six go alone,
    // finished, and the last two (1448 + 104 bytes of payload) glue into one. Without
    // GUEST_TSO4, or with it but without GUEST_CSUM (which it requires), all eight go
    // alone.
    for (features, glued) in [
        (features, 1),
        (FEATURES | F_GUEST_CSUM, 0),
        (FEATURES | F_GUEST_TSO4, 0),
    ] {
        let (mut g, mut port, mut pool) = setup_with(16, features);
        let pkts = segments(&mut g, &mut port, &mut pool);
        let mut ats = vec![];
        for i in 0..8 {
            let at = g.space(2048);
            g.desc(RXQ, i, at, 2048, WRITE, 0);
            g.offer(RXQ, i);
            ats.push(at);
        }
        assert_eq!(port.tx_burst(&mut pool, &pkts), 8);
        assert_eq!(g.used_idx(RXQ), 8 - glued);
        for (i, p) in pkts.iter().enumerate().take(8 - 2 * usize::from(glued)) {
            assert_eq!(g.used(RXQ, i as u16).1, (HLEN + p.len as usize) as u32);
            assert_eq!(g.read(ats[i], HLEN), RX_HEADER.to_vec());
        }
        let v = port.vhost_stats();
        assert_eq!(
            (v.coalesced, v.coalesced_segments),
            (u64::from(glued), 2 * u64::from(glued))
        );
        if glued == 1 {
            assert_eq!(g.used(RXQ, 6).1, (HLEN + 66 + 1448 + 104) as u32);
            assert_eq!(g.read(ats[6], 2), vec![NEEDS_CSUM, GSO_TCPV4]);
        }
    }
}

/// Frames planted whole for the random tables to point at (address, header + frame):
/// a plain UDP frame, a TCP frame with a partial checksum, a TSO super-frame.
fn planted() -> [(u64, Vec<u8>); 3] {
    let (mut tcp, at) = tcp_frame(333);
    let p = pseudo_v4(&tcp);
    tcp[at..at + 2].copy_from_slice(&p.to_be_bytes());
    [
        (0x4_0000, cat(&PLAIN, &udp_frame(100, 1))),
        (0x4_1000, cat(&hdr(NEEDS_CSUM, 0, 0, 34, 16), &tcp)),
        (
            0x4_2000,
            cat(
                &hdr(NEEDS_CSUM, GSO_TCPV4, 1448, 34, 16),
                &super_frame(&[7u8; 3000], 0x18, 1, 1),
            ),
        ),
    ]
}

/// One random descriptor: a buffer in the scribbled area (often 64-byte aligned, where
/// [`scribble`] makes headers plausible), in the rings (`rings`), just below the end of
/// memory, beyond it, near the top of the address space, or exactly one of the
/// [`planted`] frames; a length from zero to huge; flags mostly `dir` (0: readable,
/// or `WRITE`), with or without `NEXT`, sometimes anything; a next mostly in the table.
fn any_desc(rings: bool, dir: u16) -> impl Strategy<Value = (u64, u32, u16, u16)> {
    let low = if rings { 0 } else { BUF };
    let addr = prop_oneof![
        3 => BUF..BUF + 0x1_0000,
        3 => (0..0x400u64).prop_map(|i| BUF + 64 * i),
        1 => low..BUF + 0x10,
        1 => MEM_SIZE - 0x1000..MEM_SIZE + 0x1000,
        1 => u64::MAX - 0x1000..=u64::MAX,
    ];
    let len = prop_oneof![
        2 => 0u32..2,
        4 => 0u32..200,
        4 => 0u32..3000,
        1 => 0u32..0x2_0000,
        1 => u32::MAX - 0x100..=u32::MAX,
    ];
    let plant = (0..3usize).prop_map(|k| {
        let p = &planted()[k];
        (p.0, p.1.len() as u32)
    });
    let place = prop_oneof![6 => (addr, len), 2 => plant];
    let flags = prop_oneof![
        6 => Just(dir),
        4 => Just(dir | NEXT),
        1 => Just(INDIRECT),
        2 => 0u16..8,
        1 => any::<u16>(),
    ];
    let next = prop_oneof![6 => 0u16..16, 1 => 0u16..20, 1 => any::<u16>()];
    (place, flags, next).prop_map(|((a, l), f, n)| (a, l, f, n))
}

/// Fill the buffer area with bytes from `seed` (xorshift), so headers, frames and
/// indirect tables found there are arbitrary; `nice_headers`: every 64 bytes a header
/// a guest might send (no flags or `NEEDS_CSUM`, no GSO, TCP or an unknown type,
/// checksum offsets within a small frame).
fn scribble(g: &Guest, seed: u64, nice_headers: bool) {
    let mut x = seed | 1;
    let mut b = vec![0u8; 0x1_1000];
    for w in b.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
    }
    if nice_headers {
        for i in (0..b.len()).step_by(64) {
            b[i] &= 1;
            b[i + 1] &= 0x85;
            b[i + 6] %= 80;
            b[i + 7] = 0;
            b[i + 8] %= 24;
            b[i + 9] = 0;
        }
    }
    g.write(BUF, &b);
    for (at, bytes) in planted() {
        g.write(at, &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Case 10 (transmit ring): random descriptor tables over random bytes, random
    /// available entries and index: `rx_burst` never panics or loops forever, every
    /// pool frame comes back, and every chain it took is returned to the used ring in
    /// order with length 0 (but heads outside the table), or, when the index ran more
    /// than a ring ahead, nothing is taken and the ring fault counted once.
    #[test]
    fn random_transmit_rings_never_panic_leak_or_lose_chains(
        descs in proptest::collection::vec(any_desc(true, 0), 16),
        heads in proptest::collection::vec(prop_oneof![8 => 0u16..16, 1 => any::<u16>()], 16),
        idx in prop_oneof![4 => 0u16..=16, 1 => any::<u16>()],
        seed in any::<u64>(),
        nice in any::<bool>(),
    ) {
        let (mut g, mut port, mut pool) = setup(16);
        let start = pool.free_count();
        scribble(&g, seed, nice);
        for (i, &(a, l, f, n)) in descs.iter().enumerate() {
            g.desc(TXQ, i as u16, a, l, f, n);
        }
        for &h in &heads {
            g.offer(TXQ, h);
        }
        g.set_avail_idx(TXQ, idx);
        let got = drain(&mut port, &mut pool);
        prop_assert_eq!(pool.free_count(), start);
        let v = port.vhost_stats();
        if idx > 16 {
            prop_assert!(got.is_empty());
            prop_assert_eq!(v.ring_faults, 1);
            prop_assert_eq!(g.used_idx(TXQ), 0);
        } else {
            prop_assert_eq!(v.ring_faults, 0);
            let taken: Vec<u16> = heads[..usize::from(idx)].iter().copied().filter(|&h| h < 16).collect();
            prop_assert_eq!(usize::from(g.used_idx(TXQ)), taken.len());
            for (i, &h) in taken.iter().enumerate() {
                prop_assert_eq!(g.used(TXQ, i as u16), (u32::from(h), 0));
            }
            // Every refused chain was counted; a chain yields one frame, or none
            // (refused, pool, UDP GSO, segmenter drop), or a super-frame's segments.
            let refused: u64 = v.chain_faults.iter().sum();
            prop_assert!(refused <= u64::from(idx));
            for f in &got {
                prop_assert!(f.len() >= 14 && f.len() <= pool.capacity());
            }
        }
        // Polling again takes nothing more.
        prop_assert!(drain(&mut port, &mut pool).is_empty());
        prop_assert_eq!(pool.free_count(), start);
    }

    /// Case 10 (receive ring): random descriptor tables and available entries: `tx_burst`
    /// never panics, accepts a prefix of the frames (freeing them; the caller frees the
    /// rest, and the pool is whole again), returns every chain it took with the bytes
    /// it wrote (0 when refused, header + frame otherwise) and writes only into
    /// buffers the guest marked writable.
    #[test]
    fn random_receive_rings_never_panic_leak_or_lose_chains(
        descs in proptest::collection::vec(any_desc(false, WRITE), 16),
        heads in proptest::collection::vec(prop_oneof![8 => 0u16..16, 1 => any::<u16>()], 16),
        idx in prop_oneof![4 => 0u16..=16, 1 => any::<u16>()],
        lens in proptest::collection::vec(60usize..1515, 1..24),
        seed in any::<u64>(),
    ) {
        let (mut g, mut port, mut pool) = setup(16);
        let start = pool.free_count();
        scribble(&g, seed, false);
        for (i, &(a, l, f, n)) in descs.iter().enumerate() {
            g.desc(RXQ, i as u16, a, l, f, n);
        }
        for &h in &heads {
            g.offer(RXQ, h);
        }
        g.set_avail_idx(RXQ, idx);
        let with_rings = g.read(0, MEM_SIZE as usize);
        let pkts: Vec<_> = lens.iter().enumerate()
            .map(|(i, &n)| pool.alloc_copy(&udp_frame(n - 42, i as u8), 1).unwrap())
            .collect();
        let sent = port.tx_burst(&mut pool, &pkts);
        for p in &pkts[sent..] {
            pool.free(p.frame);
        }
        prop_assert_eq!(pool.free_count(), start);
        let v = port.vhost_stats();
        prop_assert_eq!(v.guest_not_reading, (pkts.len() - sent) as u64);
        if idx > 16 {
            prop_assert_eq!(sent, 0);
            prop_assert_eq!(v.ring_faults, 1);
            prop_assert_eq!(g.used_idx(RXQ), 0);
            return Ok(());
        }
        prop_assert_eq!(sent, pkts.len().min(usize::from(idx)));
        let taken: Vec<(usize, u16)> = heads[..sent].iter().copied().enumerate().filter(|&(_, h)| h < 16).collect();
        prop_assert_eq!(usize::from(g.used_idx(RXQ)), taken.len());
        let mut written = 0;
        for (u, &(i, h)) in taken.iter().enumerate() {
            let (id, len) = g.used(RXQ, u as u16);
            prop_assert_eq!(id, u32::from(h));
            let whole = (HLEN + lens[i]) as u32;
            prop_assert!(len == 0 || len == whole, "used length {} of {}", len, whole);
            written += u64::from(len != 0);
        }
        prop_assert_eq!(written + v.chain_faults.iter().sum::<u64>(), sent as u64);
        // Outside the used ring, only bytes under descriptors flagged WRITE may have
        // changed.
        let after = g.read(0, MEM_SIZE as usize);
        let used = g.rings[RXQ].used;
        let used_ring = used as usize..(used + 4 + 8 * 16) as usize;
        for (i, (&a, &b)) in with_rings.iter().zip(&after).enumerate() {
            if a == b || used_ring.contains(&i) {
                continue;
            }
            let covered = descs.iter().any(|&(addr, l, f, _)| {
                f & WRITE != 0 && f & INDIRECT == 0
                    && (i as u64) >= addr && (i as u64) < addr.saturating_add(u64::from(l))
            }) || indirect_writable(&with_rings, &descs, i as u64)
                || indirect_writable(&after, &descs, i as u64);
            prop_assert!(covered, "byte {:#x} written outside a writable buffer", i);
        }
    }
}

/// Whether `at` lies in a writable buffer of an indirect table some descriptor points
/// to, the tables read from the memory image `mem` (before the frames were written, or
/// after: a frame written over a later chain's table changes what that chain holds).
fn indirect_writable(mem: &[u8], descs: &[(u64, u32, u16, u16)], at: u64) -> bool {
    descs.iter().any(|&(addr, l, f, _)| {
        let end = addr.checked_add(u64::from(l));
        if f & INDIRECT == 0 || l % 16 != 0 || end.is_none_or(|e| e > MEM_SIZE) {
            return false;
        }
        (0..u64::from(l) / 16).any(|i| {
            let o = (addr + 16 * i) as usize;
            let d = &mem[o..o + 16];
            let a = u64::from_le_bytes(d[..8].try_into().unwrap());
            let n = u32::from_le_bytes(d[8..12].try_into().unwrap());
            let fl = u16::from_le_bytes([d[12], d[13]]);
            fl & WRITE != 0 && at >= a && at < a.saturating_add(u64::from(n))
        })
    })
}
