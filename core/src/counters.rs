//! Counters: per port, per direction, per drop reason; one writer, any number of readers.
//!
//! Each worker owns one [`WorkerCounters`] block and is the only thread that writes it
//! (relaxed loads and stores, no read-modify-write atomics, no locks), except the link
//! events of a port ([`PortCounters::count_link_event`]), which only the control thread
//! writes (in worker 0's block): every field still has exactly one writer. Readers sum
//! the blocks of every worker with [`CounterSet::snapshot`]. A reader may see a block a
//! few packets old; it never sees a torn value.

use crate::fastpath::{Miss, PortFastStats};
use crate::frame::MAX_PORTS;
use crate::offload::{OffloadStats, Unsegmented};
use crate::port::vhost::chain::ChainFault;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Why a packet was dropped. Every drop in the dataplane names one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum DropReason {
    /// The frame did not parse (truncated or malformed header).
    Malformed = 0,
    /// The destination is the port the frame came in on (a switch never reflects).
    SameSegment,
    /// The mode does not deliver this traffic (e.g. Internal has no host).
    Policy,
    /// No mapping, rule or route for the packet.
    NoRoute,
    /// A bounded table (FDB, NAT sessions, DHCP leases) is full.
    TableFull,
    /// The transmit ring of the output port had no room.
    TxFull,
    /// The worker had no free frame (to flood or to reply).
    NoFrame,
    /// The hand-off ring to another worker was full.
    HandoffFull,
    /// The frame exceeds the frame size or the output MTU.
    TooBig,
    /// IP fragments are not reassembled by this mode.
    Fragment,
    /// Traffic for the dataplane's own address that no service answers.
    Unhandled,
    /// TTL reached zero on a routed path.
    TtlExceeded,
    /// A guest sent from an address that is not its own to claim (outside its subnet, a
    /// service address of the dataplane, or an ARP reply for an address another guest or
    /// the dataplane holds).
    Spoofed,
    /// Over a per-port rate limit (broadcasts, ARP requests to the gateway).
    RateLimited,
    /// Over a per-guest share of a shared table (NAT sessions, DHCP leases): one guest
    /// cannot starve the others.
    GuestLimit,
    /// The output port's interface was down or gone.
    PortDown,
}

impl DropReason {
    /// Number of reasons.
    pub const COUNT: usize = 16;
    /// Every reason, in counter order.
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::Malformed,
        DropReason::SameSegment,
        DropReason::Policy,
        DropReason::NoRoute,
        DropReason::TableFull,
        DropReason::TxFull,
        DropReason::NoFrame,
        DropReason::HandoffFull,
        DropReason::TooBig,
        DropReason::Fragment,
        DropReason::Unhandled,
        DropReason::TtlExceeded,
        DropReason::Spoofed,
        DropReason::RateLimited,
        DropReason::GuestLimit,
        DropReason::PortDown,
    ];

    /// Stable snake_case name (used in printed counters and JSON).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Malformed => "malformed",
            DropReason::SameSegment => "same_segment",
            DropReason::Policy => "policy",
            DropReason::NoRoute => "no_route",
            DropReason::TableFull => "table_full",
            DropReason::TxFull => "tx_full",
            DropReason::NoFrame => "no_frame",
            DropReason::HandoffFull => "handoff_full",
            DropReason::TooBig => "too_big",
            DropReason::Fragment => "fragment",
            DropReason::Unhandled => "unhandled",
            DropReason::TtlExceeded => "ttl_exceeded",
            DropReason::Spoofed => "spoofed",
            DropReason::RateLimited => "rate_limited",
            DropReason::GuestLimit => "guest_limit",
            DropReason::PortDown => "port_down",
        }
    }
}

/// The counters of one port inside one worker.
#[derive(Debug, Default)]
pub struct PortCounters {
    rx_packets: AtomicU64,
    rx_bytes: AtomicU64,
    tx_packets: AtomicU64,
    tx_bytes: AtomicU64,
    drops: [AtomicU64; DropReason::COUNT],
    /// Below the engine, as the backend last reported them (see [`PortCounters::set_backend`]).
    backend_rx_dropped: AtomicU64,
    backend_fill_empty: AtomicU64,
    backend_tx_kicks: AtomicU64,
    backend_invalid: AtomicU64,
    /// Partial TCP/UDP checksums completed at ingress.
    csum_completed: AtomicU64,
    backend_superframes: AtomicU64,
    backend_segments: AtomicU64,
    backend_unsegmented: [AtomicU64; Unsegmented::COUNT],
    /// Partial checksums the backend completed from the sender's metadata (vhost-user).
    backend_csum_completed: AtomicU64,
    /// Descriptor chains a vhost-user port refused, by reason.
    backend_chain_faults: [AtomicU64; ChainFault::COUNT],
    /// Super-frames a vhost-user port glued for its guest, and their segments.
    backend_coalesced: AtomicU64,
    backend_coalesced_segments: AtomicU64,
    /// Link events, indexed as [`LinkEvent::ALL`] (control thread only).
    link_events: [AtomicU64; LinkEvent::COUNT],
    /// The fast path's counters of this port, as last read from the kernel (see
    /// [`PortCounters::set_fast`]).
    fast_rx: AtomicU64,
    fast_rx_bytes: AtomicU64,
    fast_tx: AtomicU64,
    fast_tx_bytes: AtomicU64,
    fast_to_core: AtomicU64,
    fast_csum_completed: AtomicU64,
    fast_misses: [AtomicU64; Miss::COUNT],
}

/// What happened to a port's interface while the dataplane ran (counted per port by the
/// link watcher of `vnet-bench run`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LinkEvent {
    /// The interface went down (set down, or lost its carrier).
    Down = 0,
    /// The interface disappeared (deleted, or its namespace removed).
    Lost,
    /// An interface of the port's name appeared again and the port was bound to it.
    Rebound,
}

impl LinkEvent {
    /// Number of events.
    pub const COUNT: usize = 3;
    /// Every event, in counter order.
    pub const ALL: [LinkEvent; Self::COUNT] =
        [LinkEvent::Down, LinkEvent::Lost, LinkEvent::Rebound];

    /// Stable snake_case name (used in printed counters).
    pub fn name(self) -> &'static str {
        match self {
            LinkEvent::Down => "link_down",
            LinkEvent::Lost => "link_lost",
            LinkEvent::Rebound => "rebound",
        }
    }
}

#[inline]
fn bump(c: &AtomicU64, by: u64) {
    // Single writer: a load and a store are enough, and cheaper than fetch_add.
    c.store(
        c.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

impl PortCounters {
    /// Count received packets (called by the owning worker only).
    #[inline]
    pub fn add_rx(&self, packets: u64, bytes: u64) {
        bump(&self.rx_packets, packets);
        bump(&self.rx_bytes, bytes);
    }
    /// Count transmitted packets (owning worker only).
    #[inline]
    pub fn add_tx(&self, packets: u64, bytes: u64) {
        bump(&self.tx_packets, packets);
        bump(&self.tx_bytes, bytes);
    }
    /// Count a dropped packet that came in on this port (owning worker only).
    #[inline]
    pub fn add_drop(&self, reason: DropReason) {
        bump(&self.drops[reason as usize], 1);
    }
    /// Count several dropped packets (owning worker only).
    #[inline]
    pub fn add_drops(&self, reason: DropReason, n: u64) {
        bump(&self.drops[reason as usize], n);
    }

    /// Count partial checksums completed at ingress (owning worker only).
    #[inline]
    pub fn add_csum_completed(&self, n: u64) {
        bump(&self.csum_completed, n);
    }

    /// Record the fast path's counters of this port as the kernel has them now
    /// (cumulative values, replaced, not added; the owning worker only).
    pub fn set_fast(&self, f: &PortFastStats) {
        self.fast_rx.store(f.rx, Ordering::Relaxed);
        self.fast_rx_bytes.store(f.rx_bytes, Ordering::Relaxed);
        self.fast_tx.store(f.tx, Ordering::Relaxed);
        self.fast_tx_bytes.store(f.tx_bytes, Ordering::Relaxed);
        self.fast_to_core.store(f.to_core, Ordering::Relaxed);
        self.fast_csum_completed
            .store(f.csum_completed, Ordering::Relaxed);
        for (c, v) in self.fast_misses.iter().zip(f.misses) {
            c.store(v, Ordering::Relaxed);
        }
    }

    /// Count a link event of this port (the control thread only, never a worker).
    pub fn count_link_event(&self, event: LinkEvent) {
        bump(&self.link_events[event as usize], 1);
    }

    /// Record the backend's own counters (kernel ring drops...), as last read by the
    /// owning worker (cumulative values, replaced, not added).
    pub fn set_backend(&self, stats: &crate::port::PortStats) {
        self.backend_rx_dropped
            .store(stats.rx_dropped, Ordering::Relaxed);
        self.backend_fill_empty
            .store(stats.fill_empty, Ordering::Relaxed);
        self.backend_tx_kicks
            .store(stats.tx_kicks, Ordering::Relaxed);
        self.backend_invalid
            .store(stats.invalid_descs, Ordering::Relaxed);
        let o = &stats.offload;
        self.backend_superframes
            .store(o.superframes, Ordering::Relaxed);
        self.backend_segments.store(o.segments, Ordering::Relaxed);
        for (c, v) in self.backend_unsegmented.iter().zip(o.unsegmented) {
            c.store(v, Ordering::Relaxed);
        }
        if let Some(v) = &stats.vhost {
            self.backend_csum_completed
                .store(v.csum_completed, Ordering::Relaxed);
            for (c, n) in self.backend_chain_faults.iter().zip(v.chain_faults) {
                c.store(n, Ordering::Relaxed);
            }
            self.backend_coalesced.store(v.coalesced, Ordering::Relaxed);
            self.backend_coalesced_segments
                .store(v.coalesced_segments, Ordering::Relaxed);
        }
    }
}

/// The counters a worker writes: one [`PortCounters`] per dataplane port.
#[derive(Debug)]
pub struct WorkerCounters {
    ports: Box<[PortCounters]>,
}

impl WorkerCounters {
    /// Counters for `ports` ports.
    pub fn new(ports: usize) -> Self {
        assert!(ports <= MAX_PORTS);
        Self {
            ports: (0..ports).map(|_| PortCounters::default()).collect(),
        }
    }
    /// The counters of one port.
    #[inline]
    pub fn port(&self, port: usize) -> &PortCounters {
        &self.ports[port]
    }
}

/// Totals for one port, summed over workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortTotals {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Drops by reason, indexed as [`DropReason::ALL`].
    pub drops: [u64; DropReason::COUNT],
    /// Frames the backend lost before the engine saw them (AF_XDP: rx ring full, no fill
    /// frame), as last reported.
    pub backend_rx_dropped: u64,
    /// Times the backend found no free frame for receiving.
    pub backend_fill_empty: u64,
    /// Transmit wake-ups (syscalls) the backend made.
    pub backend_tx_kicks: u64,
    /// Invalid descriptors the kernel reported.
    pub backend_invalid: u64,
    /// Partial TCP/UDP checksums completed at ingress (by the core, or by the fast path
    /// for the frames it forwarded).
    pub csum_completed: u64,
    /// Receive-side segmentation of TSO super-frames, as the backend last reported it.
    pub offload: OffloadStats,
    /// Descriptor chains a vhost-user port refused, indexed as [`ChainFault::ALL`].
    pub chain_faults: [u64; ChainFault::COUNT],
    /// Super-frames glued from consecutive segments for a vhost-user guest that takes
    /// them (`GUEST_TSO`).
    pub coalesced: u64,
    /// The segments those super-frames were glued from.
    pub coalesced_segments: u64,
    /// Link events, indexed as [`LinkEvent::ALL`].
    pub link_events: [u64; LinkEvent::COUNT],
    /// The fast path (`--offload xdp`): frames it took and sent on this port, frames it
    /// handed to the core and why. `rx_packets`/`tx_packets` above include its frames.
    pub fast: PortFastStats,
}

impl PortTotals {
    /// All drops of the port.
    pub fn dropped(&self) -> u64 {
        self.drops.iter().sum()
    }
    /// Drops for one reason.
    pub fn drops_for(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }
    /// How often `event` happened.
    pub fn link_events_of(&self, event: LinkEvent) -> u64 {
        self.link_events[event as usize]
    }
}

/// Every worker's counters, shared with readers (the stats printer).
#[derive(Debug, Clone)]
pub struct CounterSet {
    workers: Arc<[Arc<WorkerCounters>]>,
    ports: usize,
}

impl CounterSet {
    /// Blocks for `workers` workers serving `ports` ports.
    pub fn new(workers: usize, ports: usize) -> Self {
        Self {
            workers: (0..workers)
                .map(|_| Arc::new(WorkerCounters::new(ports)))
                .collect(),
            ports,
        }
    }
    /// The block a worker writes.
    pub fn worker(&self, index: usize) -> Arc<WorkerCounters> {
        self.workers[index].clone()
    }
    /// Number of ports.
    pub fn ports(&self) -> usize {
        self.ports
    }
    /// Per-port totals summed over all workers.
    pub fn snapshot(&self) -> Vec<PortTotals> {
        let mut out = vec![PortTotals::default(); self.ports];
        for w in self.workers.iter() {
            for (p, t) in out.iter_mut().enumerate() {
                let c = w.port(p);
                t.rx_packets += c.rx_packets.load(Ordering::Relaxed);
                t.rx_bytes += c.rx_bytes.load(Ordering::Relaxed);
                t.tx_packets += c.tx_packets.load(Ordering::Relaxed);
                t.tx_bytes += c.tx_bytes.load(Ordering::Relaxed);
                for (i, d) in c.drops.iter().enumerate() {
                    t.drops[i] += d.load(Ordering::Relaxed);
                }
                t.backend_rx_dropped += c.backend_rx_dropped.load(Ordering::Relaxed);
                t.backend_fill_empty += c.backend_fill_empty.load(Ordering::Relaxed);
                t.backend_tx_kicks += c.backend_tx_kicks.load(Ordering::Relaxed);
                t.backend_invalid += c.backend_invalid.load(Ordering::Relaxed);
                t.csum_completed += c.csum_completed.load(Ordering::Relaxed)
                    + c.backend_csum_completed.load(Ordering::Relaxed);
                for (t, c) in t.chain_faults.iter_mut().zip(&c.backend_chain_faults) {
                    *t += c.load(Ordering::Relaxed);
                }
                t.coalesced += c.backend_coalesced.load(Ordering::Relaxed);
                t.coalesced_segments += c.backend_coalesced_segments.load(Ordering::Relaxed);
                t.offload.superframes += c.backend_superframes.load(Ordering::Relaxed);
                t.offload.segments += c.backend_segments.load(Ordering::Relaxed);
                for (t, c) in t.offload.unsegmented.iter_mut().zip(&c.backend_unsegmented) {
                    *t += c.load(Ordering::Relaxed);
                }
                for (t, c) in t.link_events.iter_mut().zip(&c.link_events) {
                    *t += c.load(Ordering::Relaxed);
                }
                let f = &mut t.fast;
                f.rx += c.fast_rx.load(Ordering::Relaxed);
                f.rx_bytes += c.fast_rx_bytes.load(Ordering::Relaxed);
                f.tx += c.fast_tx.load(Ordering::Relaxed);
                f.tx_bytes += c.fast_tx_bytes.load(Ordering::Relaxed);
                f.to_core += c.fast_to_core.load(Ordering::Relaxed);
                f.csum_completed += c.fast_csum_completed.load(Ordering::Relaxed);
                for (t, c) in f.misses.iter_mut().zip(&c.fast_misses) {
                    *t += c.load(Ordering::Relaxed);
                }
            }
        }
        for t in &mut out {
            t.rx_packets += t.fast.rx;
            t.rx_bytes += t.fast.rx_bytes;
            t.tx_packets += t.fast.tx;
            t.tx_bytes += t.fast.tx_bytes;
            t.csum_completed += t.fast.csum_completed;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_over_workers() {
        let set = CounterSet::new(2, 3);
        set.worker(0).port(1).add_rx(2, 128);
        set.worker(1).port(1).add_rx(3, 192);
        set.worker(1).port(2).add_drop(DropReason::TxFull);
        set.worker(0).port(2).add_drops(DropReason::TxFull, 4);
        set.worker(0).port(2).count_link_event(LinkEvent::Lost);
        let s = set.snapshot();
        assert_eq!(s[1].rx_packets, 5);
        assert_eq!(s[1].rx_bytes, 320);
        assert_eq!(s[2].drops_for(DropReason::TxFull), 5);
        assert_eq!(s[2].dropped(), 5);
        assert_eq!(s[2].link_events_of(LinkEvent::Lost), 1);
        assert_eq!(s[2].link_events_of(LinkEvent::Down), 0);
        assert_eq!(s[0], PortTotals::default());
    }

    #[test]
    fn reason_table_is_consistent() {
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }
}
