//! [`Segmenter`]: a port's receive-side TSO engine: gathers a super-frame that arrived in
//! several buffers, cuts it into segments in the worker's frames, and queues them in
//! arrival order for the port's next receive bursts.
//!
//! Order: once a segment is queued, every frame the port receives after it is queued
//! behind it ([`Segmenter::enqueue`]), and the port hands out queued packets before
//! taking new ones from its ring, so a flow's frames leave in the order they came.
//!
//! Invariants: the reassembly buffer and the queue are allocated by [`Segmenter::new`]
//! and never grow; every frame taken from the pool is either queued or given back; a
//! super-frame that cannot be segmented is counted once under its [`Unsegmented`] reason.

use super::gso::{self, tcp_flow};
use super::mss::MssTable;
use super::Unsegmented;
use crate::frame::{FramePool, Pkt, PortId};
use crate::port::Burst;
use std::collections::VecDeque;

/// Largest super-frame gathered: an IP packet of 64 KiB with its Ethernet header and two
/// VLAN tags.
pub const MAX_SUPER_FRAME: usize = 65_535 + 14 + 8;

/// What a port's segmenter has done so far (cumulative).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffloadStats {
    /// Super-frames received (frames longer than one receive buffer).
    pub superframes: u64,
    /// Segments made from them.
    pub segments: u64,
    /// Super-frames (or queued frames) dropped, by [`Unsegmented`] reason.
    pub unsegmented: [u64; Unsegmented::COUNT],
}

impl OffloadStats {
    /// Drops for one reason.
    pub fn dropped_for(&self, reason: Unsegmented) -> u64 {
        self.unsegmented[reason as usize]
    }
}

/// The receive-side TSO engine of one port.
#[derive(Debug)]
pub struct Segmenter {
    buf: Box<[u8]>,
    len: usize,
    /// The super-frame being gathered outgrew `buf`: drop its remaining pieces.
    overflow: bool,
    /// A super-frame's first piece was seen and its last not yet.
    gathering: bool,
    queue: VecDeque<Pkt>,
    mss: MssTable,
    mtu: usize,
    stats: OffloadStats,
}

impl Segmenter {
    /// Packets that may wait in the queue: two 64 KiB super-frames at a 536-byte MSS.
    pub const QUEUE: usize = 256;

    /// A segmenter cutting segments to IP packets of at most `mtu` bytes.
    pub fn new(mtu: usize) -> Self {
        Self {
            buf: vec![0u8; MAX_SUPER_FRAME].into_boxed_slice(),
            len: 0,
            overflow: false,
            gathering: false,
            queue: VecDeque::with_capacity(Self::QUEUE),
            mss: MssTable::new(),
            mtu,
            stats: OffloadStats::default(),
        }
    }

    /// The MTU segments are cut to.
    pub fn mtu(&self) -> usize {
        self.mtu
    }

    /// Counters so far.
    pub fn stats(&self) -> OffloadStats {
        self.stats
    }

    /// Packets (segments, and frames that arrived behind them) waiting in the queue.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Whether packets wait in the queue.
    #[inline]
    pub fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Whether a super-frame is half gathered.
    #[inline]
    pub fn is_gathering(&self) -> bool {
        self.gathering
    }

    /// Record the MSS of a SYN the port transmits (see [`MssTable::observe_tx`]).
    #[inline]
    pub fn observe_tx(&mut self, frame: &[u8]) {
        self.mss.observe_tx(frame);
    }

    /// Queue an ordinary packet behind the segments already waiting. Gives it back when
    /// the queue is full (the caller frees its frame; it is counted as `gso_backlog`).
    pub fn enqueue(&mut self, pkt: Pkt) -> Result<(), Pkt> {
        if self.queue.len() == Self::QUEUE {
            self.stats.unsegmented[Unsegmented::Backlog as usize] += 1;
            return Err(pkt);
        }
        self.queue.push_back(pkt);
        Ok(())
    }

    /// Move queued packets into `out` while it has room; returns how many.
    #[inline]
    pub fn drain_into(&mut self, out: &mut Burst) -> usize {
        let mut n = 0;
        while !out.is_full() {
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            let _ = out.push(p);
            n += 1;
        }
        n
    }

    /// Add one piece of a super-frame (`bytes`, copied); `last`: it is the final piece,
    /// and the gathered frame is segmented into frames of `pool`, stamped with `port`,
    /// and queued ([`Segmenter::gather_piece`] then [`Segmenter::finish`]).
    pub fn push_piece(&mut self, bytes: &[u8], last: bool, pool: &mut FramePool, port: PortId) {
        self.gather_piece(bytes);
        if last {
            self.finish(pool, port);
        }
    }

    /// Copy one piece of a super-frame into the reassembly buffer (the first piece
    /// starts a new super-frame).
    pub fn gather_piece(&mut self, bytes: &[u8]) {
        if !self.gathering {
            self.gathering = true;
            self.len = 0;
            self.overflow = false;
        }
        if self.overflow {
            return;
        }
        if self.len + bytes.len() <= self.buf.len() {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            self.overflow = true;
        }
    }

    /// The last piece is in: segment the gathered super-frame into frames of `pool`,
    /// stamped with `port`, and queue them (or count why not).
    pub fn finish(&mut self, pool: &mut FramePool, port: PortId) {
        self.finish_with_mss(pool, port, None);
    }

    /// [`Segmenter::finish`] with the segment size the sender asked for (a virtio-net
    /// header's `gso_size`); `None`: the MSS learned from the flow's handshake.
    pub fn finish_with_mss(&mut self, pool: &mut FramePool, port: PortId, mss: Option<u16>) {
        self.gathering = false;
        self.stats.superframes += 1;
        if self.overflow {
            self.stats.unsegmented[Unsegmented::TooLong as usize] += 1;
            return;
        }
        self.segment(pool, port, mss);
    }

    /// Cut the gathered super-frame `buf[..len]` into queued segments.
    fn segment(&mut self, pool: &mut FramePool, port: PortId, asked: Option<u16>) {
        let frame = &self.buf[..self.len];
        let mss = asked.or_else(|| tcp_flow(frame).and_then(|f| self.mss.lookup(&f)));
        let plan = match gso::plan(frame, self.mtu, pool.capacity(), mss) {
            Ok(p) => p,
            Err(reason) => {
                self.stats.unsegmented[reason as usize] += 1;
                return;
            }
        };
        let n = plan.segments();
        if self.queue.len() + n > Self::QUEUE {
            self.stats.unsegmented[Unsegmented::Backlog as usize] += 1;
            return;
        }
        // All frames first, so that a dry pool drops the whole super-frame rather than
        // a middle piece of it (TCP recovers one loss more cheaply than a hole).
        if pool.free_count() < n {
            self.stats.unsegmented[Unsegmented::NoFrame as usize] += 1;
            return;
        }
        for i in 0..n {
            let Some(f) = pool.alloc() else {
                unreachable!("free_count said {n} frames were there")
            };
            let len = gso::write_segment(frame, &plan, i, pool.frame_mut(f));
            self.queue.push_back(Pkt {
                frame: f,
                len: len as u16,
                port,
            });
        }
        self.stats.segments += n as u64;
    }

    /// Give every queued frame back to the pool (the port is closing).
    pub fn release(&mut self, pool: &mut FramePool) {
        while let Some(p) = self.queue.pop_front() {
            pool.free(p.frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn super_frame(payload: usize) -> Vec<u8> {
        let bytes: Vec<u8> = (0..payload).map(|i| i as u8).collect();
        crate::offload::test_frames::super_frame(&bytes, 0x18, 1, 1)
    }

    #[test]
    fn pieces_are_gathered_segmented_and_handed_out_in_order() {
        let mut pool = FramePool::with_heap(128, 2048, 256);
        let mut s = Segmenter::new(1500);
        let f = super_frame(10_000);
        let pieces: Vec<&[u8]> = f.chunks(1792).collect();
        for (i, p) in pieces.iter().enumerate() {
            s.push_piece(p, i + 1 == pieces.len(), &mut pool, 3);
        }
        assert!(!s.is_gathering());
        let n = 10_000usize.div_ceil(1448);
        assert_eq!(s.stats().segments, n as u64);
        // An ordinary packet received afterwards waits behind the segments.
        let plain = pool.alloc_copy(&[1u8; 60], 3).unwrap();
        s.enqueue(plain).unwrap();
        let mut out = Burst::new();
        assert_eq!(s.drain_into(&mut out), n + 1);
        assert_eq!(out.as_slice()[n], plain);
        let mut seq = 1u32;
        for p in &out.as_slice()[..n] {
            let b = pool.bytes(p);
            assert_eq!(u32::from_be_bytes([b[38], b[39], b[40], b[41]]), seq);
            seq += (b.len() - 66) as u32;
            assert_eq!(p.port, 3);
        }
        assert_eq!(seq, 10_001);
        for p in out.as_slice() {
            pool.free(p.frame);
        }
        assert_eq!(pool.free_count(), 128);
    }

    #[test]
    fn the_mss_of_the_syn_ack_sent_to_the_guest_bounds_its_segments() {
        let mut pool = FramePool::with_heap(64, 2048, 256);
        let mut s = Segmenter::new(1500);
        // The peer's SYN-ACK as the port transmits it to the guest: the guest's flow
        // reversed, MSS 536 in its options.
        let mut syn_ack = crate::offload::test_frames::super_frame(&[], 0x12, 9, 77);
        syn_ack[54..66].copy_from_slice(&[2, 4, 0x02, 0x18, 1, 1, 1, 1, 1, 1, 1, 1]);
        let (src, dst) = (syn_ack[26..30].to_vec(), syn_ack[30..34].to_vec());
        syn_ack[26..30].copy_from_slice(&dst);
        syn_ack[30..34].copy_from_slice(&src);
        let (sport, dport) = (syn_ack[34..36].to_vec(), syn_ack[36..38].to_vec());
        syn_ack[34..36].copy_from_slice(&dport);
        syn_ack[36..38].copy_from_slice(&sport);
        s.observe_tx(&syn_ack);
        s.push_piece(&super_frame(5000), true, &mut pool, 0);
        // 536 - 12 bytes of timestamp option = 524 bytes a segment.
        assert_eq!(s.stats().segments, 5000u64.div_ceil(524));
        let mut out = Burst::new();
        s.drain_into(&mut out);
        assert!(out.as_slice().iter().all(|p| p.len as usize <= 66 + 524));
        for p in out.as_slice() {
            pool.free(p.frame);
        }
    }

    #[test]
    fn what_cannot_be_segmented_is_counted_and_frees_nothing_twice() {
        let mut pool = FramePool::with_heap(8, 2048, 256);
        let mut s = Segmenter::new(1500);
        // Needs 7 frames: fine. Then 30 frames: the pool is short, dropped whole.
        s.push_piece(&super_frame(10_000), true, &mut pool, 0);
        assert_eq!(s.stats().segments, 7);
        s.push_piece(&super_frame(40_000), true, &mut pool, 0);
        assert_eq!(s.stats().dropped_for(Unsegmented::NoFrame), 1);
        // UDP.
        let mut u = super_frame(3000);
        u[23] = 17;
        s.push_piece(&u, true, &mut pool, 0);
        assert_eq!(s.stats().dropped_for(Unsegmented::NotTcp), 1);
        // Longer than any offload makes.
        for _ in 0..40 {
            s.push_piece(&[0u8; 1792], false, &mut pool, 0);
        }
        s.push_piece(&[0u8; 10], true, &mut pool, 0);
        assert_eq!(s.stats().dropped_for(Unsegmented::TooLong), 1);
        assert_eq!(s.stats().superframes, 4);
        s.release(&mut pool);
        assert_eq!(pool.free_count(), 8);
    }
}
