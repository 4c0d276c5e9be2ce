//! A worker's side of the fast path: turns its mode's offers into kernel entries, takes
//! them out when the mode revokes them, and brings the kernel's use of them back.
//!
//! Invariants:
//! - an entry is in the kernel only while it is in this table (installed here, removed
//!   here); every worker installs only flows arriving on its own ports;
//! - a translated entry's rewrite is read from the frame the mode has just rewritten and
//!   is about to send to exactly one port, and is installed only if that frame is a plain
//!   IPv4 TCP/UDP packet of the offered flow's protocol: the kernel repeats the core's
//!   output, never its own idea of it;
//! - the tables are sized at construction for the kernel maps' capacity and do not grow:
//!   an offer beyond it is refused and counted (`install_failed`), the flow stays on the
//!   core;
//! - [`FastPathLink::sync`] reports each entry's use since the previous sync once, so a
//!   mode counts and refreshes exactly what the kernel forwarded.

use crate::counters::WorkerCounters;
use crate::fastpath::{
    EntryUse, FastPathQueue, FlowCache, L2Key, NatKey, NatRewrite, Offer, Revoke, Seen,
};
use crate::frame::{FramePool, Pkt, PortId};
use crate::pipeline::Verdict;
use crate::time::Instant;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A multiply-rotate hasher for the table's small fixed keys (the std SipHash costs more
/// than the rest of an offer's check). Keys come from traffic, but the table only
/// remembers flows the core already decided and bounds them (`capacity`), so a
/// collision-heavy flood slows offers, never the kernel's path.
#[derive(Debug, Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }

    #[inline]
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    #[inline]
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }

    #[inline]
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
}

type FastHash = std::hash::BuildHasherDefault<KeyHasher>;

/// Counters of a worker's fast-path table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastPathTableStats {
    /// Entries installed in the kernel.
    pub installed: u64,
    /// Entries removed (revoked by the mode or found gone).
    pub removed: u64,
    /// Offers the kernel or the table refused (full).
    pub install_failed: u64,
    /// Offers for frames that were not what the offer said (not sent to exactly one port,
    /// not a plain TCP/UDP packet after the rewrite).
    pub offers_unusable: u64,
    /// Entries in the kernel now.
    pub live: u64,
}

#[derive(Debug, Clone, Copy)]
struct L2Entry {
    egress: PortId,
    synced: EntryUse,
}

#[derive(Debug, Clone, Copy)]
struct NatEntry {
    tag: u64,
    rewrite: NatRewrite,
    synced: EntryUse,
}

/// The keys installed for one tag (a session: one per direction).
#[derive(Debug, Clone, Copy)]
struct TagKeys {
    keys: [Option<NatKey>; 2],
}

/// One worker's link to the kernel's flow cache.
#[derive(Debug)]
pub struct FastPathLink {
    cache: Arc<dyn FlowCache>,
    capacity: usize,
    l2: HashMap<L2Key, L2Entry, FastHash>,
    nat: HashMap<NatKey, NatEntry, FastHash>,
    by_tag: HashMap<u64, TagKeys, FastHash>,
    every: Duration,
    next_sync: Instant,
    stats: FastPathTableStats,
}

impl FastPathLink {
    /// A link to `cache` holding at most `capacity` switched and `capacity` translated
    /// flows, syncing every `every`.
    pub fn new(cache: Arc<dyn FlowCache>, capacity: usize, every: Duration) -> Self {
        Self {
            cache,
            capacity,
            l2: HashMap::with_capacity_and_hasher(capacity, FastHash::default()),
            nat: HashMap::with_capacity_and_hasher(capacity, FastHash::default()),
            by_tag: HashMap::with_capacity_and_hasher(capacity, FastHash::default()),
            every,
            next_sync: Instant::ZERO,
            stats: FastPathTableStats::default(),
        }
    }

    /// The table's counters.
    pub fn stats(&self) -> FastPathTableStats {
        FastPathTableStats {
            live: (self.l2.len() + self.nat.len()) as u64,
            ..self.stats
        }
    }

    /// Act on what the mode queued while deciding `pkts` (their `verdicts` and rewritten
    /// bytes as they are now, before transmission).
    pub fn apply(
        &mut self,
        queue: &mut FastPathQueue,
        pool: &FramePool,
        pkts: &[Pkt],
        verdicts: &[Verdict],
    ) {
        queue.drain(|item| match item {
            Err(revoke) => self.revoke(revoke),
            Ok(Offer::L2 { key, egress }) => self.offer_l2(key, egress),
            Ok(Offer::Nat {
                pkt,
                key,
                in_macs,
                in_ttl,
                tag,
            }) => {
                // Installed for this decision already: a decision that changed was
                // revoked first, so there is nothing to read again.
                if self.nat.get(&key).is_some_and(|e| e.tag == tag) {
                    return;
                }
                let i = usize::from(pkt);
                let egress = match verdicts.get(i) {
                    Some(Verdict::Tx(mask)) if mask.len() == 1 => mask.iter().next(),
                    _ => None,
                };
                let rewrite = match (egress, pkts.get(i)) {
                    (Some(egress), Some(p)) => {
                        rewrite_of(pool.bytes(p), &key, in_macs, in_ttl, egress)
                    }
                    _ => None,
                };
                match rewrite {
                    Some(r) => self.offer_nat(key, r, tag),
                    None => self.stats.offers_unusable += 1,
                }
            }
        });
    }

    fn offer_l2(&mut self, key: L2Key, egress: PortId) {
        if self.l2.get(&key).is_some_and(|e| e.egress == egress) {
            return;
        }
        if !self.l2.contains_key(&key) && self.l2.len() >= self.capacity {
            self.stats.install_failed += 1;
            return;
        }
        match self.cache.install_l2(&key, egress) {
            Ok(()) => {
                self.stats.installed += 1;
                self.l2.insert(
                    key,
                    L2Entry {
                        egress,
                        synced: EntryUse::default(),
                    },
                );
            }
            Err(_) => self.stats.install_failed += 1,
        }
    }

    fn offer_nat(&mut self, key: NatKey, rewrite: NatRewrite, tag: u64) {
        if let Some(e) = self.nat.get(&key) {
            if e.tag == tag && e.rewrite == rewrite {
                return;
            }
            self.remove_nat(&key);
        }
        if self.nat.len() >= self.capacity || self.by_tag.len() >= self.capacity {
            self.stats.install_failed += 1;
            return;
        }
        if self.cache.install_nat(&key, &rewrite).is_err() {
            self.stats.install_failed += 1;
            return;
        }
        self.stats.installed += 1;
        self.nat.insert(
            key,
            NatEntry {
                tag,
                rewrite,
                synced: EntryUse::default(),
            },
        );
        let slot = self
            .by_tag
            .entry(tag)
            .or_insert(TagKeys { keys: [None; 2] });
        match slot.keys {
            [None, _] => slot.keys[0] = Some(key),
            [_, None] => slot.keys[1] = Some(key),
            [Some(old), Some(_)] => {
                // A third flow for one tag: the oldest goes.
                slot.keys = [slot.keys[1], Some(key)];
                self.remove_nat(&old);
            }
        }
    }

    fn remove_nat(&mut self, key: &NatKey) {
        if let Some(e) = self.nat.remove(key) {
            self.cache.remove_nat(key);
            self.stats.removed += 1;
            if let Some(t) = self.by_tag.get_mut(&e.tag) {
                for k in &mut t.keys {
                    if k.as_ref() == Some(key) {
                        *k = None;
                    }
                }
                if t.keys == [None, None] {
                    self.by_tag.remove(&e.tag);
                }
            }
        }
    }

    fn revoke(&mut self, revoke: Revoke) {
        match revoke {
            Revoke::Mac(mac) => {
                let cache = &self.cache;
                let before = self.l2.len();
                self.l2.retain(|k, _| {
                    let keep = k.src != mac && k.dst != mac;
                    if !keep {
                        cache.remove_l2(k);
                    }
                    keep
                });
                self.stats.removed += (before - self.l2.len()) as u64;
            }
            Revoke::Tag(tag) => {
                if let Some(t) = self.by_tag.get(&tag).copied() {
                    for k in t.keys.into_iter().flatten() {
                        self.remove_nat(&k);
                    }
                }
            }
            Revoke::All => self.clear(),
        }
    }

    /// Remove every entry (the mode's decisions all changed, or the dataplane stops).
    pub fn clear(&mut self) {
        for k in self.l2.keys() {
            self.cache.remove_l2(k);
        }
        for k in self.nat.keys() {
            self.cache.remove_nat(k);
        }
        self.stats.removed += (self.l2.len() + self.nat.len()) as u64;
        self.l2.clear();
        self.nat.clear();
        self.by_tag.clear();
    }

    /// Whether a sync is due at `now`.
    pub fn sync_due(&self, now: Instant) -> bool {
        now >= self.next_sync
    }

    /// Read every entry's use and hand what is new since the last sync to `seen`; copy
    /// the kernel's per-port counters of `ports` into `counters`.
    pub fn sync(
        &mut self,
        now: Instant,
        ports: &[PortId],
        counters: &WorkerCounters,
        mut seen: impl FnMut(&Seen),
    ) {
        self.next_sync = now + self.every;
        let cache = &self.cache;
        for (key, e) in self.l2.iter_mut() {
            let Some(u) = cache.read_l2(key) else {
                continue;
            };
            if u.packets > e.synced.packets {
                seen(&Seen::L2 {
                    key: *key,
                    at: u.last_seen,
                    packets: u.packets - e.synced.packets,
                });
                e.synced = u;
            }
        }
        for (key, e) in self.nat.iter_mut() {
            let Some(u) = cache.read_nat(key) else {
                continue;
            };
            if u.packets > e.synced.packets {
                seen(&Seen::Nat {
                    tag: e.tag,
                    key: *key,
                    at: u.last_seen,
                    packets: u.packets - e.synced.packets,
                });
                e.synced = u;
            }
        }
        for &p in ports {
            counters.port(usize::from(p)).set_fast(&cache.port_stats(p));
        }
    }
}

/// The rewrite the core applied, read from the frame it produced: Ethernet + IPv4 (no
/// options) + the offered flow's TCP or UDP header.
fn rewrite_of(
    out: &[u8],
    key: &NatKey,
    (match_dst, match_src): ([u8; 6], [u8; 6]),
    in_ttl: u8,
    egress: PortId,
) -> Option<NatRewrite> {
    if out.len() < 14 + 20 + 8 || out[12..14] != [0x08, 0x00] || out[14] != 0x45 {
        return None;
    }
    let ip = &out[14..];
    if ip[9] != key.proto || (key.proto != 6 && key.proto != 17) {
        return None;
    }
    let ttl = ip[8];
    let ttl_dec = match in_ttl.checked_sub(ttl) {
        Some(0) => false,
        Some(1) => true,
        _ => return None,
    };
    let mac = |at: usize| -> [u8; 6] { out[at..at + 6].try_into().expect("6 bytes") };
    let addr = |at: usize| -> [u8; 4] { ip[at..at + 4].try_into().expect("4 bytes") };
    Some(NatRewrite {
        egress,
        match_dst,
        match_src,
        new_dst: mac(0),
        new_src: mac(6),
        new_saddr: addr(12),
        new_daddr: addr(16),
        new_sport: u16::from_be_bytes([ip[20], ip[21]]),
        new_dport: u16::from_be_bytes([ip[22], ip[23]]),
        ttl_dec,
    })
}
