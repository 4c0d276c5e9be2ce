//! Ports: where frames enter and leave the dataplane, one batch at a time.
//!
//! Every backend implements [`Port`]: receive a burst into a caller-owned [`Burst`],
//! transmit a burst, report what it can do. Frames live in the worker's
//! [`FramePool`]; ports exchange frame indices with it, never own memory of their own
//! in the fast path.
//!
//! Ownership rule: a frame handed to [`Port::tx_burst`] belongs to the port if it was
//! accepted (the return value counts accepted frames, always a prefix of the slice) and
//! stays the caller's otherwise. A port gives frames back to the pool when it is done
//! with them (completion for AF_XDP, right after copying for `mem`/`pcap`).
//!
//! Backends: [`mem`] (in-process rings), [`pcap`] (captures), [`capture`] (a tee that
//! wraps any port), [`vhost`] (vhost-user: a guest's virtio rings in shared memory) and
//! `xdp` (AF_XDP, with the `xdp` feature).

pub mod capture;
pub mod mem;
pub mod pcap;
pub mod vhost;
#[cfg(feature = "xdp")]
pub mod xdp;

use crate::frame::{FramePool, Pkt};
use std::fmt;

/// Most packets one receive or transmit call handles.
pub const BURST: usize = 64;

/// A fixed-capacity batch of packets (no allocation).
#[derive(Clone)]
pub struct Burst {
    pkts: [Pkt; BURST],
    len: usize,
}

impl fmt::Debug for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Default for Burst {
    fn default() -> Self {
        Self::new()
    }
}

impl Burst {
    /// An empty burst.
    pub const fn new() -> Self {
        Self {
            pkts: [Pkt {
                frame: 0,
                len: 0,
                port: 0,
            }; BURST],
            len: 0,
        }
    }
    /// Append a packet; gives it back when full.
    #[inline]
    pub fn push(&mut self, pkt: Pkt) -> Result<(), Pkt> {
        if self.len == BURST {
            return Err(pkt);
        }
        self.pkts[self.len] = pkt;
        self.len += 1;
        Ok(())
    }
    /// Number of packets.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Whether no more fit.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }
    /// Room left.
    #[inline]
    pub fn room(&self) -> usize {
        BURST - self.len
    }
    /// The packets.
    #[inline]
    pub fn as_slice(&self) -> &[Pkt] {
        &self.pkts[..self.len]
    }
    /// The packets, mutable.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Pkt] {
        &mut self.pkts[..self.len]
    }
    /// Forget every packet (the caller has dealt with their frames).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Drop the first `n` packets, keeping the rest in order.
    #[inline]
    pub fn consume_front(&mut self, n: usize) {
        let n = n.min(self.len);
        self.pkts.copy_within(n..self.len, 0);
        self.len -= n;
    }
}

/// What a port is and can do, for the startup line and results.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// Interface or file name.
    pub name: String,
    /// Backend name: "xdp", "mem", "pcap".
    pub backend: &'static str,
    /// Free-form details (XDP attach mode, bind mode, busy-poll settings...).
    pub detail: String,
    /// Largest frame the port carries.
    pub max_frame: usize,
}

/// Counters a backend keeps below the engine (kernel rings, files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames the kernel dropped because the rx ring was full or no fill frame was ready.
    pub rx_dropped: u64,
    /// Invalid descriptors the kernel saw on rx or tx.
    pub invalid_descs: u64,
    /// Times the fill ring was found empty.
    pub fill_empty: u64,
    /// Wake-up syscalls made for transmit.
    pub tx_kicks: u64,
    /// Super-frames received and segmented (or dropped, by reason) by the port.
    pub offload: crate::offload::OffloadStats,
    /// A vhost-user port's own counters.
    pub vhost: Option<vhost::VhostStats>,
}

/// Ports with their dataplane ids (a worker's set, in any order).
pub type NumberedPorts = Vec<(crate::frame::PortId, Box<dyn Port>)>;

/// One port of the dataplane. Implementations are used by one worker thread at a time.
pub trait Port: Send {
    /// Receive up to `out.room()` packets (at most [`BURST`]) into `out`, appending.
    /// Returns how many were added. Never blocks.
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize;

    /// Transmit `pkts` in order; returns how many (a prefix) the port accepted and now
    /// owns. The caller keeps (and must free or retry) the rest.
    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize;

    /// Housekeeping once per loop, after the loop's bursts were sent on: reclaim
    /// completed transmissions into the pool, hand back the buffers frames were read
    /// from (a vhost-user guest's transmit chains), top up receive buffers, kick the
    /// kernel only when it asks for it.
    fn service(&mut self, _pool: &mut FramePool) {}

    /// Description for the startup line.
    fn info(&self) -> PortInfo;

    /// Backend counters.
    fn stats(&self) -> PortStats {
        PortStats::default()
    }

    /// Flush buffered output (files). Called at stop.
    fn flush(&mut self) {}

    /// Whether the port itself finishes its frames' partial checksums, from the
    /// sender's own metadata (a vhost-user port, from the virtio-net header), so that
    /// the worker's guess at them ([`crate::offload::complete_partial`], for ports
    /// without metadata: AF_XDP) is not made: a frame whose sender did not ask for a
    /// checksum goes on as sent, as a NIC would pass it.
    fn finishes_checksums(&self) -> bool {
        false
    }

    /// Give back to `pool` every frame of it the port holds between bursts (queued
    /// segments), before the pool is replaced under a port that stays (a vhost-user
    /// port kept across a reopening of its worker's set).
    fn release_frames(&mut self, _pool: &mut FramePool) {}
}

impl<P: Port + ?Sized> Port for Box<P> {
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize {
        (**self).rx_burst(pool, out)
    }
    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
        (**self).tx_burst(pool, pkts)
    }
    fn service(&mut self, pool: &mut FramePool) {
        (**self).service(pool)
    }
    fn info(&self) -> PortInfo {
        (**self).info()
    }
    fn stats(&self) -> PortStats {
        (**self).stats()
    }
    fn flush(&mut self) {
        (**self).flush()
    }
    fn release_frames(&mut self, pool: &mut FramePool) {
        (**self).release_frames(pool)
    }
    fn finishes_checksums(&self) -> bool {
        (**self).finishes_checksums()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(frame: u32) -> Pkt {
        Pkt {
            frame,
            len: 60,
            port: 0,
        }
    }

    #[test]
    fn burst_is_bounded_and_consumes_front() {
        let mut b = Burst::new();
        for i in 0..BURST as u32 {
            b.push(pkt(i)).unwrap();
        }
        assert!(b.is_full());
        assert_eq!(b.push(pkt(99)), Err(pkt(99)));
        b.consume_front(60);
        assert_eq!(b.len(), 4);
        assert_eq!(b.as_slice()[0].frame, 60);
        b.consume_front(100);
        assert!(b.is_empty());
    }
}
