//! Hand-off between workers (VPP's hand-off): a frame whose verdict names a port served
//! by another worker is copied into a preallocated buffer and sent to that worker.
//!
//! For every ordered pair of workers there is one lane: a bounded ring of full buffers
//! and a bounded ring returning empty ones, all buffers allocated at setup. Sending takes
//! an empty buffer or fails (the caller drops the frame and counts `handoff_full`);
//! nothing grows and nothing is locked.
//!
//! Each message carries the frame, the port it entered the dataplane on and the ports
//! (all owned by the receiver) it must leave on; an empty port set means "run it through
//! your pipeline" (the sender's mode named the receiver as the owner of its state).

use crate::frame::PortId;
use crate::pipeline::PortMask;
use crossbeam::queue::ArrayQueue;
use std::sync::Arc;

/// Largest frame a hand-off carries.
pub const HANDOFF_FRAME: usize = 2048;

/// One frame in transit between workers.
#[derive(Debug)]
pub struct HandoffMsg {
    data: Box<[u8; HANDOFF_FRAME]>,
    len: usize,
    /// Port the frame entered the dataplane on.
    pub ingress: PortId,
    /// Ports of the receiving worker to transmit it on; empty: process it.
    pub ports: PortMask,
}

impl HandoffMsg {
    /// The frame's bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.data[..self.len]
    }
}

#[derive(Debug)]
struct Lane {
    full: ArrayQueue<HandoffMsg>,
    empty: ArrayQueue<HandoffMsg>,
}

/// The sending ends a worker holds, one per other worker.
#[derive(Debug)]
pub struct HandoffTx {
    lanes: Vec<Option<Arc<Lane>>>,
}

/// The receiving ends a worker holds, one per other worker.
#[derive(Debug)]
pub struct HandoffRx {
    lanes: Vec<Arc<Lane>>,
}

/// Every lane between `n` workers.
#[derive(Debug)]
pub struct HandoffMesh {
    /// Sending ends, indexed by worker.
    pub tx: Vec<HandoffTx>,
    /// Receiving ends, indexed by worker.
    pub rx: Vec<HandoffRx>,
}

impl HandoffMesh {
    /// Lanes of `depth` buffers between every ordered pair of `workers` workers.
    pub fn new(workers: usize, depth: usize) -> Self {
        let mut tx: Vec<HandoffTx> = (0..workers)
            .map(|_| HandoffTx {
                lanes: (0..workers).map(|_| None).collect(),
            })
            .collect();
        let mut rx: Vec<HandoffRx> = (0..workers)
            .map(|_| HandoffRx { lanes: Vec::new() })
            .collect();
        for (from, tx_w) in tx.iter_mut().enumerate() {
            for (to, rx_w) in rx.iter_mut().enumerate() {
                if from == to {
                    continue;
                }
                let lane = Arc::new(Lane {
                    full: ArrayQueue::new(depth),
                    empty: ArrayQueue::new(depth),
                });
                for _ in 0..depth {
                    let _ = lane.empty.push(HandoffMsg {
                        data: Box::new([0; HANDOFF_FRAME]),
                        len: 0,
                        ingress: 0,
                        ports: PortMask::EMPTY,
                    });
                }
                tx_w.lanes[to] = Some(lane.clone());
                rx_w.lanes.push(lane);
            }
        }
        Self { tx, rx }
    }
}

impl HandoffTx {
    /// A sender with no peers (single worker).
    pub fn none() -> Self {
        Self { lanes: Vec::new() }
    }

    /// Send a copy of `bytes` to worker `to`; false when its lane is full or `to` is
    /// this worker or unknown.
    pub fn send(&self, to: usize, bytes: &[u8], ingress: PortId, ports: PortMask) -> bool {
        let Some(Some(lane)) = self.lanes.get(to) else {
            return false;
        };
        if bytes.len() > HANDOFF_FRAME {
            return false;
        }
        let Some(mut msg) = lane.empty.pop() else {
            return false;
        };
        msg.data[..bytes.len()].copy_from_slice(bytes);
        msg.len = bytes.len();
        msg.ingress = ingress;
        msg.ports = ports;
        lane.full.push(msg).is_ok()
    }
}

impl HandoffRx {
    /// A receiver with no peers (single worker).
    pub fn none() -> Self {
        Self { lanes: Vec::new() }
    }

    /// Hand every waiting message (at most `max`) to `f`, then recycle its buffer.
    /// Returns how many were handled.
    pub fn drain(&self, max: usize, mut f: impl FnMut(&HandoffMsg)) -> usize {
        let mut n = 0;
        for lane in &self.lanes {
            while n < max {
                let Some(msg) = lane.full.pop() else { break };
                f(&msg);
                let _ = lane.empty.push(msg);
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_reach_the_right_worker_and_buffers_recycle() {
        let mesh = HandoffMesh::new(3, 2);
        assert!(mesh.tx[0].send(2, &[1, 2, 3], 5, PortMask::one(4)));
        assert!(
            !mesh.tx[0].send(0, &[1], 0, PortMask::EMPTY),
            "no lane to self"
        );
        let mut seen = Vec::new();
        mesh.rx[2].drain(64, |m| seen.push((m.bytes().to_vec(), m.ingress, m.ports)));
        assert_eq!(seen, vec![(vec![1, 2, 3], 5, PortMask::one(4))]);
        assert_eq!(mesh.rx[1].drain(64, |_| panic!("nothing for worker 1")), 0);
        for _ in 0..10 {
            assert!(mesh.tx[1].send(0, &[9; 60], 0, PortMask::one(0)));
            assert_eq!(mesh.rx[0].drain(64, |_| {}), 1);
        }
    }

    #[test]
    fn a_full_lane_refuses() {
        let mesh = HandoffMesh::new(2, 2);
        assert!(mesh.tx[0].send(1, &[0; 60], 0, PortMask::one(1)));
        assert!(mesh.tx[0].send(1, &[0; 60], 0, PortMask::one(1)));
        assert!(!mesh.tx[0].send(1, &[0; 60], 0, PortMask::one(1)));
        assert!(!mesh.tx[0].send(1, &[0; HANDOFF_FRAME + 1], 0, PortMask::one(1)));
    }
}
