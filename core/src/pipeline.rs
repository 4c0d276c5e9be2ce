//! The contract between the engine and a mode: sans-IO, batch in, verdicts out.
//!
//! The engine hands a mode a batch of received packets and the current [`Instant`]; the
//! mode may read and rewrite the packets' bytes in place (through the [`FramePool`]) and
//! returns one [`Verdict`] per packet. A mode never reads a clock, makes a syscall or
//! allocates per packet. Frames a mode originates itself (gratuitous ARP, replies it
//! cannot write in place) go out through an [`Emitter`] from [`Pipeline::poll`].
//!
//! Invariants:
//! - `verdicts.len() == pkts.len()` in [`Pipeline::process`]; the engine fills every
//!   verdict slot before reading it (the mode must write each one);
//! - a [`Verdict::Tx`] mask never names a port the dataplane does not have, and the
//!   engine transmits the frame once on every port of the mask (copying where needed);
//! - a mode that takes a frame with [`Verdict::Consumed`] now owns it and must free it
//!   (or transmit it through the emitter) itself.

use crate::counters::DropReason;
use crate::fastpath::{FastPathQueue, Seen};
use crate::frame::{FramePool, Pkt, PortId, MAX_PORTS};
use crate::time::Instant;

/// A set of ports, one bit per [`PortId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PortMask(pub u64);

impl PortMask {
    /// No port.
    pub const EMPTY: PortMask = PortMask(0);

    /// The set holding only `port`.
    #[inline]
    pub const fn one(port: PortId) -> Self {
        PortMask(1u64 << port)
    }

    /// Ports `0..n`.
    #[inline]
    pub const fn first(n: usize) -> Self {
        if n >= MAX_PORTS {
            PortMask(u64::MAX)
        } else {
            PortMask((1u64 << n) - 1)
        }
    }

    /// Whether `port` is in the set.
    #[inline]
    pub const fn contains(self, port: PortId) -> bool {
        self.0 & (1u64 << port) != 0
    }

    /// The set without `port`.
    #[inline]
    pub const fn without(self, port: PortId) -> Self {
        PortMask(self.0 & !(1u64 << port))
    }

    /// The set with `port`.
    #[inline]
    pub const fn with(self, port: PortId) -> Self {
        PortMask(self.0 | (1u64 << port))
    }

    /// Ports in both sets.
    #[inline]
    pub const fn and(self, other: PortMask) -> Self {
        PortMask(self.0 & other.0)
    }

    /// Whether the set is empty.
    #[inline]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of ports in the set.
    #[inline]
    pub const fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// The ports, lowest first.
    #[inline]
    pub fn iter(self) -> impl Iterator<Item = PortId> {
        let mut bits = self.0;
        std::iter::from_fn(move || {
            if bits == 0 {
                return None;
            }
            let p = bits.trailing_zeros() as PortId;
            bits &= bits - 1;
            Some(p)
        })
    }
}

/// What becomes of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (possibly rewritten) packet on every port of the mask; an empty mask
    /// is a silent discard (nothing to deliver, nothing wrong).
    Tx(PortMask),
    /// Drop it and count the reason against the ingress port.
    Drop(DropReason),
    /// The mode kept the frame (it owns it now).
    Consumed,
    /// Another worker owns the state this packet needs (e.g. the NAT mapping of its
    /// external port): hand the frame, as received, to that worker's pipeline. A packet
    /// already handed off once is not handed off again (it is dropped as `no_route`).
    HandOff(u8),
}

/// Frames a mode originates, with where they go. Fixed capacity, no allocation.
#[derive(Debug)]
pub struct Emitter {
    items: [(Pkt, PortMask); Emitter::CAPACITY],
    len: usize,
}

impl Default for Emitter {
    fn default() -> Self {
        Self::new()
    }
}

impl Emitter {
    /// Frames one poll may originate.
    pub const CAPACITY: usize = 64;

    /// An empty emitter.
    pub fn new() -> Self {
        let blank = (
            Pkt {
                frame: 0,
                len: 0,
                port: 0,
            },
            PortMask::EMPTY,
        );
        Self {
            items: [blank; Self::CAPACITY],
            len: 0,
        }
    }

    /// Queue a frame for `ports`; gives it back when the emitter is full.
    pub fn push(&mut self, pkt: Pkt, ports: PortMask) -> Result<(), Pkt> {
        if self.len == Self::CAPACITY {
            return Err(pkt);
        }
        self.items[self.len] = (pkt, ports);
        self.len += 1;
        Ok(())
    }

    /// Room left.
    pub fn remaining(&self) -> usize {
        Self::CAPACITY - self.len
    }

    /// Queued frames.
    pub fn items(&self) -> &[(Pkt, PortMask)] {
        &self.items[..self.len]
    }

    /// Empty the emitter.
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// A mode as the engine sees it.
pub trait Pipeline: Send {
    /// Decide the fate of a batch of received packets. Write exactly one verdict per
    /// packet into `verdicts` (same index).
    fn process(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    );

    /// Called when a packet another worker received is delivered by this worker (for
    /// learning): `bytes` came in on `ingress`. Default: nothing.
    fn observe_handoff(&mut self, _now: Instant, _bytes: &[u8], _ingress: PortId) {}

    /// The next time the mode wants [`Pipeline::poll`] even without traffic.
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Timers: expire state, originate frames (into `out`). Called every few loops and
    /// whenever `poll_at` has passed.
    fn poll(&mut self, _now: Instant, _pool: &mut FramePool, _out: &mut Emitter) {}

    /// The mode's fast-path outbox ([`crate::fastpath`]), if it can offer entries. The
    /// engine enables it when the dataplane has a fast path and drains it after every
    /// batch and timer run. Default: none (the mode never offers).
    fn fastpath_queue(&mut self) -> Option<&mut FastPathQueue> {
        None
    }

    /// Frames of an offered flow took the fast path (reported once per sync): refresh and
    /// count as if the mode had seen them. Default: nothing.
    fn fastpath_seen(&mut self, _seen: &Seen) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_mask_operations() {
        let m = PortMask::first(4).without(2);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![0, 1, 3]);
        assert_eq!(m.len(), 3);
        assert!(m.contains(3) && !m.contains(2));
        assert_eq!(PortMask::first(64).len(), 64);
        assert_eq!(PortMask::one(63).iter().collect::<Vec<_>>(), vec![63]);
        assert!(PortMask::EMPTY.is_empty());
        assert_eq!(m.and(PortMask::one(1)), PortMask::one(1));
    }

    #[test]
    fn emitter_is_bounded() {
        let mut e = Emitter::new();
        let p = Pkt {
            frame: 1,
            len: 60,
            port: 0,
        };
        for _ in 0..Emitter::CAPACITY {
            e.push(p, PortMask::one(0)).unwrap();
        }
        assert_eq!(e.push(p, PortMask::one(0)), Err(p));
        e.clear();
        assert_eq!(e.remaining(), Emitter::CAPACITY);
    }
}
