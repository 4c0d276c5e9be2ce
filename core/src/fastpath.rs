//! The fast path's contract: what a mode may offer to the kernel's XDP hook, how it takes
//! an offer back, and what flows back from the kernel.
//!
//! With `run --offload xdp` every port carries an XDP program that switches or translates
//! the frames of flows the core has already decided, without a trip through user space.
//! The entries are a cache of the core's decisions, never a second implementation:
//!
//! - a mode **offers** an entry only for a decision it has just made for a real frame
//!   ([`Offer`]): a switched unicast frame that went to one known port, a translated
//!   TCP/UDP packet of an established session. The rewrite of a translated flow is read
//!   by the engine from that very frame after the mode rewrote it, so the kernel repeats
//!   the core's own output byte for byte;
//! - a mode **revokes** entries as soon as the decision changes ([`Revoke`]): an FDB
//!   entry that moved or aged, a session that ended or expired, a rule deleted;
//! - the kernel's use of the entries **flows back** ([`Seen`]): the last time a frame
//!   took an entry and how many did, so that the mode refreshes its timers and counts
//!   exactly as if it had seen those frames itself (to within the engine's sync period).
//!
//! [`FlowCache`] is the kernel side as the engine sees it (`port::xdp::fastpath` is the
//! real one); [`FastPathQueue`] is the mode's outbox, bounded, with no allocation after
//! construction: an offer that does not fit is simply made again by the flow's next frame.

use crate::frame::PortId;
use crate::time::Instant;
use std::io;

/// A switched unicast flow: frames from `ingress` with these Ethernet addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct L2Key {
    /// The port the frames come in on.
    pub ingress: PortId,
    /// Source MAC.
    pub src: [u8; 6],
    /// Destination MAC (unicast).
    pub dst: [u8; 6],
}

/// A translated TCP/UDP flow as it arrives on its ingress port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatKey {
    /// The port the frames come in on.
    pub ingress: PortId,
    /// 6 (TCP) or 17 (UDP).
    pub proto: u8,
    /// Source address.
    pub saddr: [u8; 4],
    /// Destination address.
    pub daddr: [u8; 4],
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
}

/// What the kernel does to a frame of a [`NatKey`] flow: the core's own output for the
/// frame the entry was offered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatRewrite {
    /// Where it goes.
    pub egress: PortId,
    /// The destination MAC the flow's frames arrive with (the dataplane's).
    pub match_dst: [u8; 6],
    /// The source MAC they arrive with (the sender's).
    pub match_src: [u8; 6],
    /// Destination MAC on the way out (the next hop).
    pub new_dst: [u8; 6],
    /// Source MAC on the way out (the dataplane's on the egress side).
    pub new_src: [u8; 6],
    /// Source address on the way out.
    pub new_saddr: [u8; 4],
    /// Destination address on the way out.
    pub new_daddr: [u8; 4],
    /// Source port on the way out.
    pub new_sport: u16,
    /// Destination port on the way out.
    pub new_dport: u16,
    /// Whether the TTL goes down by one (routed), else it is kept.
    pub ttl_dec: bool,
}

/// How much an entry was used, as the kernel counted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EntryUse {
    /// Frames that took the entry.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// When the last one did (the monotonic clock, as [`Instant::now`]); zero: never.
    pub last_seen: Instant,
}

/// Why a frame went to the core instead of the fast path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Miss {
    /// No entry for the flow (new flows, traffic the core keeps).
    NoEntry = 0,
    /// Broadcast or multicast destination.
    Group,
    /// ARP and other non-IP EtherTypes, VLAN tags.
    NotIp,
    /// IP options, IPv6 extension headers, lengths that do not add up.
    Shape,
    /// IPv4 fragments (translated flows).
    Fragment,
    /// TCP SYN, FIN or RST: the core tracks the connection.
    Control,
    /// A partial TCP/UDP checksum (a sender with checksum offload) the program could not
    /// complete (a segment over 4 KiB); shorter ones are completed on the fast path.
    PartialCsum,
    /// A super-frame (TSO/GRO): in several buffers, or in one longer than the egress
    /// port's MTU (which the kernel would drop at the egress); the core segments it.
    MultiBuf,
    /// The TTL would expire: the core answers with ICMP.
    Ttl,
    /// The egress port cannot take redirected frames (its peer has no XDP program and
    /// no GRO).
    Egress,
    /// An entry for the flow, but other Ethernet addresses.
    Mac,
    /// IPv4 but neither TCP nor UDP (translated flows).
    Proto,
    /// An IPv4 header checksum that does not verify (translated flows).
    BadCsum,
}

impl Miss {
    /// Number of reasons.
    pub const COUNT: usize = 13;
    /// Every reason, in counter order.
    pub const ALL: [Miss; Self::COUNT] = [
        Miss::NoEntry,
        Miss::Group,
        Miss::NotIp,
        Miss::Shape,
        Miss::Fragment,
        Miss::Control,
        Miss::PartialCsum,
        Miss::MultiBuf,
        Miss::Ttl,
        Miss::Egress,
        Miss::Mac,
        Miss::Proto,
        Miss::BadCsum,
    ];

    /// Name in stats and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Miss::NoEntry => "no_entry",
            Miss::Group => "group",
            Miss::NotIp => "not_ip",
            Miss::Shape => "shape",
            Miss::Fragment => "fragment",
            Miss::Control => "tcp_control",
            Miss::PartialCsum => "partial_csum",
            Miss::MultiBuf => "multi_buf",
            Miss::Ttl => "ttl",
            Miss::Egress => "egress",
            Miss::Mac => "mac",
            Miss::Proto => "proto",
            Miss::BadCsum => "bad_csum",
        }
    }
}

/// The kernel's per-port fast-path counters (cumulative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortFastStats {
    /// Frames the fast path took on this (ingress) port.
    pub rx: u64,
    /// Their bytes.
    pub rx_bytes: u64,
    /// Frames the fast path sent out of this port.
    pub tx: u64,
    /// Their bytes.
    pub tx_bytes: u64,
    /// Frames handed to the core.
    pub to_core: u64,
    /// Partial TCP/UDP checksums the program completed (those of frames it forwarded).
    pub csum_completed: u64,
    /// Why, indexed as [`Miss::ALL`].
    pub misses: [u64; Miss::COUNT],
}

/// The kernel side of the fast path: the maps of the XDP program.
///
/// All methods are syscalls on maps; the engine calls them when it installs, removes or
/// syncs entries, never per frame.
pub trait FlowCache: Send + Sync + std::fmt::Debug {
    /// Install (or replace) a switched flow.
    ///
    /// # Errors
    /// The kernel's error (a full map: `E2BIG`/`ENOSPC`).
    fn install_l2(&self, key: &L2Key, egress: PortId) -> io::Result<()>;
    /// Remove a switched flow (absent: nothing).
    fn remove_l2(&self, key: &L2Key);
    /// The use of a switched flow's entry.
    fn read_l2(&self, key: &L2Key) -> Option<EntryUse>;
    /// Install (or replace) a translated flow.
    ///
    /// # Errors
    /// The kernel's error.
    fn install_nat(&self, key: &NatKey, rewrite: &NatRewrite) -> io::Result<()>;
    /// Remove a translated flow.
    fn remove_nat(&self, key: &NatKey);
    /// The use of a translated flow's entry.
    fn read_nat(&self, key: &NatKey) -> Option<EntryUse>;
    /// The fast-path counters of a port.
    fn port_stats(&self, port: PortId) -> PortFastStats;
}

/// An entry a mode offers, for a frame of the batch it has just decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// The frame was switched, unchanged, to exactly `egress`.
    L2 {
        /// The flow.
        key: L2Key,
        /// Its port.
        egress: PortId,
    },
    /// Packet `pkt` of the batch was translated and goes to exactly one port; the engine
    /// reads the rewrite from its bytes.
    Nat {
        /// Index of the packet in the batch handed to `process`.
        pkt: u16,
        /// The flow as the packet arrived.
        key: NatKey,
        /// The packet's (destination, source) MACs as it arrived.
        in_macs: ([u8; 6], [u8; 6]),
        /// The TTL it arrived with.
        in_ttl: u8,
        /// The mode's handle on the decision (a session), for [`Revoke::Tag`] and
        /// [`Seen::Nat`].
        tag: u64,
    },
}

/// A decision that changed: the entries it installed must go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoke {
    /// Every switched flow from or to this address (it moved, aged or was flushed).
    Mac([u8; 6]),
    /// Every translated flow offered with this tag (the session ended).
    Tag(u64),
    /// Everything (a rule or neighbour changed: start again from the core).
    All,
}

/// The kernel's use of an entry since the last sync, handed to the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Frames of a switched flow took the fast path; the last at `at`.
    L2 {
        /// The flow.
        key: L2Key,
        /// The last frame's time.
        at: Instant,
        /// Frames since the last sync.
        packets: u64,
    },
    /// Frames of a translated flow took the fast path.
    Nat {
        /// The tag it was offered with.
        tag: u64,
        /// The flow.
        key: NatKey,
        /// The last frame's time.
        at: Instant,
        /// Frames since the last sync.
        packets: u64,
    },
}

/// A mode's outbox of offers and revocations, drained by the engine after every batch and
/// every timer run. Disabled (the default) it takes nothing: a mode checks
/// [`FastPathQueue::enabled`] before building an offer, so the core pays one branch.
#[derive(Debug)]
pub struct FastPathQueue {
    enabled: bool,
    offers: Vec<Offer>,
    revokes: Vec<Revoke>,
    /// Offers that did not fit (made again by the flow's next frame).
    pub offers_dropped: u64,
}

impl Default for FastPathQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl FastPathQueue {
    /// Offers one batch may queue.
    pub const OFFERS: usize = 256;
    /// Revocations one batch or timer run may queue; beyond, they become [`Revoke::All`].
    pub const REVOKES: usize = 1024;

    /// A disabled queue.
    pub fn new() -> Self {
        Self {
            enabled: false,
            offers: Vec::with_capacity(Self::OFFERS),
            revokes: Vec::with_capacity(Self::REVOKES),
            offers_dropped: 0,
        }
    }

    /// Turn offers on or off (the engine does, when it has a fast path).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    /// Whether the engine takes offers.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Queue an offer (dropped when the queue is full or disabled).
    #[inline]
    pub fn offer(&mut self, offer: Offer) {
        if !self.enabled {
            return;
        }
        if self.offers.len() < Self::OFFERS {
            self.offers.push(offer);
        } else {
            self.offers_dropped += 1;
        }
    }

    /// Queue a revocation. Never lost: when the queue is full it becomes
    /// [`Revoke::All`].
    #[inline]
    pub fn revoke(&mut self, revoke: Revoke) {
        if !self.enabled {
            return;
        }
        if self.revokes.len() + 1 < Self::REVOKES {
            self.revokes.push(revoke);
        } else if self.revokes.last() != Some(&Revoke::All) {
            self.revokes.push(Revoke::All);
        }
    }

    /// Take the queued offers and revocations (revocations first: they may concern
    /// what was offered before the change).
    pub fn drain(&mut self, mut f: impl FnMut(Result<Offer, Revoke>)) {
        for r in self.revokes.drain(..) {
            f(Err(r));
        }
        for o in self.offers.drain(..) {
            f(Ok(o));
        }
    }

    /// Whether a [`Revoke::All`] is queued.
    pub fn revokes_all(&self) -> bool {
        self.revokes.contains(&Revoke::All)
    }

    /// Whether anything is queued.
    pub fn is_empty(&self) -> bool {
        self.offers.is_empty() && self.revokes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> L2Key {
        L2Key {
            ingress: 0,
            src: [2, 0, 0, 0, 0, n],
            dst: [2, 0, 0, 0, 0, 99],
        }
    }

    #[test]
    fn a_disabled_queue_takes_nothing() {
        let mut q = FastPathQueue::new();
        q.offer(Offer::L2 {
            key: key(1),
            egress: 1,
        });
        q.revoke(Revoke::All);
        assert!(q.is_empty());
    }

    #[test]
    fn offers_are_bounded_and_revocations_never_lost() {
        let mut q = FastPathQueue::new();
        q.set_enabled(true);
        for i in 0..FastPathQueue::OFFERS + 5 {
            q.offer(Offer::L2 {
                key: key(i as u8),
                egress: 1,
            });
        }
        assert_eq!(q.offers_dropped, 5);
        for i in 0..FastPathQueue::REVOKES * 2 {
            q.revoke(Revoke::Tag(i as u64));
        }
        let (mut offers, mut revokes) = (0, Vec::new());
        q.drain(|x| match x {
            Ok(_) => offers += 1,
            Err(r) => revokes.push(r),
        });
        assert_eq!(offers, FastPathQueue::OFFERS);
        assert_eq!(revokes.last(), Some(&Revoke::All));
        assert!(revokes.len() <= FastPathQueue::REVOKES);
        // Revocations come out before offers.
        let mut order = Vec::new();
        q.offer(Offer::L2 {
            key: key(1),
            egress: 1,
        });
        q.revoke(Revoke::Mac([2; 6]));
        q.drain(|x| order.push(x.is_ok()));
        assert_eq!(order, vec![false, true]);
        assert!(q.is_empty());
    }

    #[test]
    fn miss_table_is_consistent() {
        for (i, m) in Miss::ALL.iter().enumerate() {
            assert_eq!(*m as usize, i);
        }
        let mut names: Vec<_> = Miss::ALL.iter().map(|m| m.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Miss::COUNT);
    }
}
