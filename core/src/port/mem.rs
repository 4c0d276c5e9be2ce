//! The `mem` backend: a port whose other end is a [`MemPeer`] in the same process.
//!
//! Each direction is a pair of bounded crossbeam rings: one carries filled buffers, the
//! other returns empty ones. All buffers are allocated when the pair is made, so the
//! steady state allocates nothing on either side.
//!
//! Invariants: a buffer is in exactly one ring or held by exactly one side; `len` of a
//! buffer is at most [`MEM_FRAME`]. The dataplane side copies into and out of its
//! [`FramePool`] (the `mem` backend models the copy the kernel does in AF_XDP copy mode).

use super::{Burst, Port, PortInfo, PortStats};
use crate::frame::{FramePool, Pkt, PortId};
use crossbeam::queue::ArrayQueue;
use std::sync::Arc;

/// Largest frame a `mem` port carries.
pub const MEM_FRAME: usize = 2048;

/// One preallocated frame buffer travelling between the two ends.
#[derive(Debug)]
struct Buf {
    data: Box<[u8; MEM_FRAME]>,
    len: usize,
}

/// One direction: filled buffers one way, empty ones back.
#[derive(Debug)]
struct Lane {
    full: ArrayQueue<Buf>,
    empty: ArrayQueue<Buf>,
}

impl Lane {
    fn new(depth: usize) -> Self {
        let lane = Self {
            full: ArrayQueue::new(depth),
            empty: ArrayQueue::new(depth),
        };
        for _ in 0..depth {
            let _ = lane.empty.push(Buf {
                data: Box::new([0u8; MEM_FRAME]),
                len: 0,
            });
        }
        lane
    }

    /// Copy `data` into an empty buffer and queue it; false when the lane is full.
    fn send(&self, data: &[u8]) -> bool {
        let Some(mut buf) = self.empty.pop() else {
            return false;
        };
        let len = data.len().min(MEM_FRAME);
        buf.data[..len].copy_from_slice(&data[..len]);
        buf.len = len;
        self.full.push(buf).is_ok()
    }

    /// Copy the next frame into `out`; returns its length.
    fn recv_into(&self, out: &mut [u8]) -> Option<usize> {
        let buf = self.full.pop()?;
        let len = buf.len.min(out.len());
        out[..len].copy_from_slice(&buf.data[..len]);
        let _ = self.empty.push(buf);
        Some(len)
    }
}

/// The dataplane end of a `mem` port.
#[derive(Debug)]
pub struct MemPort {
    name: String,
    id: PortId,
    to_dp: Arc<Lane>,
    from_dp: Arc<Lane>,
    stats: PortStats,
}

/// The far end of a `mem` port: what a test endpoint or generator holds.
#[derive(Debug, Clone)]
pub struct MemPeer {
    to_dp: Arc<Lane>,
    from_dp: Arc<Lane>,
}

/// A connected port/peer pair for dataplane port `id`, `depth` frames each way.
pub fn mem_pair(name: &str, id: PortId, depth: usize) -> (MemPort, MemPeer) {
    let to_dp = Arc::new(Lane::new(depth));
    let from_dp = Arc::new(Lane::new(depth));
    (
        MemPort {
            name: name.to_string(),
            id,
            to_dp: to_dp.clone(),
            from_dp: from_dp.clone(),
            stats: PortStats::default(),
        },
        MemPeer { to_dp, from_dp },
    )
}

impl MemPeer {
    /// Send a frame into the dataplane; false when the ring is full (the frame is lost,
    /// as on a wire).
    pub fn send(&self, frame: &[u8]) -> bool {
        self.to_dp.send(frame)
    }

    /// Receive the next frame the dataplane sent, copied into `out`.
    pub fn recv_into(&self, out: &mut [u8]) -> Option<usize> {
        self.from_dp.recv_into(out)
    }

    /// Receive the next frame as a vector (allocates; for tests).
    pub fn recv(&self) -> Option<Vec<u8>> {
        let mut buf = [0u8; MEM_FRAME];
        self.recv_into(&mut buf).map(|n| buf[..n].to_vec())
    }

    /// Every frame waiting (allocates; for tests).
    pub fn drain(&self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.recv()).collect()
    }
}

impl Port for MemPort {
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize {
        let mut n = 0;
        while !out.is_full() {
            let Some(frame) = pool.alloc() else {
                self.stats.fill_empty += 1;
                break;
            };
            let Some(len) = self.to_dp.recv_into(pool.frame_mut(frame)) else {
                pool.free(frame);
                break;
            };
            let _ = out.push(Pkt {
                frame,
                len: len as u16,
                port: self.id,
            });
            n += 1;
        }
        n
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
        for (i, pkt) in pkts.iter().enumerate() {
            if !self.from_dp.send(pool.bytes(pkt)) {
                return i;
            }
            pool.free(pkt.frame);
        }
        pkts.len()
    }

    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.name.clone(),
            backend: "mem",
            detail: format!("ring depth {}", self.to_dp.full.capacity()),
            max_frame: MEM_FRAME,
        }
    }

    fn stats(&self) -> PortStats {
        self.stats.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_both_ways_and_buffers_recycle() {
        let (mut port, peer) = mem_pair("p0", 3, 4);
        let mut pool = FramePool::with_heap(16, 2048, 0);
        for round in 0..10u8 {
            assert!(peer.send(&[round; 60]));
            let mut b = Burst::new();
            assert_eq!(port.rx_burst(&mut pool, &mut b), 1);
            let p = b.as_slice()[0];
            assert_eq!(p.port, 3);
            assert_eq!(pool.bytes(&p), &[round; 60][..]);
            assert_eq!(port.tx_burst(&mut pool, &[p]), 1);
            assert_eq!(peer.recv().unwrap(), vec![round; 60]);
        }
        assert_eq!(pool.free_count(), 16);
    }

    #[test]
    fn full_lane_refuses_and_keeps_frame_with_caller() {
        let (mut port, _peer) = mem_pair("p0", 0, 2);
        let mut pool = FramePool::with_heap(8, 2048, 0);
        let pkts: Vec<Pkt> = (0..3)
            .map(|_| pool.alloc_copy(&[1; 60], 0).unwrap())
            .collect();
        assert_eq!(port.tx_burst(&mut pool, &pkts), 2);
        assert_eq!(pool.free_count(), 8 - 1);
        pool.free(pkts[2].frame);
    }

    #[test]
    fn rx_stops_when_pool_is_empty() {
        let (mut port, peer) = mem_pair("p0", 0, 8);
        let mut pool = FramePool::with_heap(2, 2048, 0);
        for _ in 0..4 {
            peer.send(&[0; 64]);
        }
        let mut b = Burst::new();
        assert_eq!(port.rx_burst(&mut pool, &mut b), 2);
        assert_eq!(port.stats().fill_empty, 1);
    }
}
