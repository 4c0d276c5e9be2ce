//! The forwarding database: MAC address -> port, learned, aged, bounded.
//!
//! An open-addressing table (linear probing, backward-shift deletion) allocated once at
//! twice the entry limit, so lookups stay short and nothing is ever allocated after
//! construction.
//!
//! Invariants:
//! - at most `max_entries` live entries; when full, new addresses are not learned (the
//!   caller floods unknown destinations) and [`Fdb::learn`] reports [`Learn::Full`];
//! - an entry older than the aging time is never returned by [`Fdb::lookup`], even
//!   before [`Fdb::sweep`] reclaims its slot;
//! - the table always has at least one empty slot, so every probe terminates.

use std::time::Duration;
use vnet_core::frame::PortId;
use vnet_core::time::Instant;

const OCCUPIED: u64 = 1 << 63;

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// `OCCUPIED | mac` when in use, 0 when empty.
    key: u64,
    port: PortId,
    seen: Instant,
}

const EMPTY: Slot = Slot {
    key: 0,
    port: 0,
    seen: Instant::ZERO,
};

/// Outcome of learning one source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Learn {
    /// A new entry was made.
    New,
    /// The entry existed on the same port; its age was refreshed.
    Refreshed,
    /// The address moved to another port.
    Moved,
    /// The table is full; nothing was learned.
    Full,
}

/// A bounded, aging MAC table.
#[derive(Debug)]
pub struct Fdb {
    slots: Box<[Slot]>,
    mask: usize,
    len: usize,
    max_entries: usize,
    aging: Duration,
}

#[inline]
fn mac_key(mac: &[u8; 6]) -> u64 {
    OCCUPIED
        | u64::from(mac[0]) << 40
        | u64::from(mac[1]) << 32
        | u64::from(mac[2]) << 24
        | u64::from(mac[3]) << 16
        | u64::from(mac[4]) << 8
        | u64::from(mac[5])
}

#[inline]
fn mac_of(key: u64) -> [u8; 6] {
    let b = key.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

impl Fdb {
    /// A table for up to `max_entries` addresses, each forgotten `aging` after it was
    /// last seen.
    pub fn new(max_entries: usize, aging: Duration) -> Self {
        let max_entries = max_entries.max(1);
        let cap = (max_entries * 2).next_power_of_two();
        Self {
            slots: vec![EMPTY; cap].into_boxed_slice(),
            mask: cap - 1,
            len: 0,
            max_entries,
            aging,
        }
    }

    /// Live entries (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The entry limit.
    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// The aging time.
    pub fn aging(&self) -> Duration {
        self.aging
    }

    #[inline]
    fn home(&self, key: u64) -> usize {
        // Fibonacci hashing: spreads the low-entropy OUI bits.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize & self.mask
    }

    #[inline]
    fn find(&self, key: u64) -> Result<usize, usize> {
        let mut i = self.home(key);
        loop {
            let k = self.slots[i].key;
            if k == key {
                return Ok(i);
            }
            if k == 0 {
                return Err(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    fn expired(&self, slot: &Slot, now: Instant) -> bool {
        now.saturating_since(slot.seen) > self.aging
    }

    /// The port `mac` was last seen on, unless unknown or aged out.
    #[inline]
    pub fn lookup(&self, mac: &[u8; 6], now: Instant) -> Option<PortId> {
        match self.find(mac_key(mac)) {
            Ok(i) if !self.expired(&self.slots[i], now) => Some(self.slots[i].port),
            _ => None,
        }
    }

    /// Record that `mac` was seen on `port` at `now`.
    #[inline]
    pub fn learn(&mut self, mac: &[u8; 6], port: PortId, now: Instant) -> Learn {
        let key = mac_key(mac);
        match self.find(key) {
            Ok(i) => {
                let slot = &mut self.slots[i];
                slot.seen = now;
                if slot.port == port {
                    Learn::Refreshed
                } else {
                    slot.port = port;
                    Learn::Moved
                }
            }
            Err(i) => {
                if self.len >= self.max_entries {
                    return Learn::Full;
                }
                self.slots[i] = Slot {
                    key,
                    port,
                    seen: now,
                };
                self.len += 1;
                Learn::New
            }
        }
    }

    /// Move the last-seen time of `mac` on `port` forward to `at` (the fast path carried
    /// its frames); nothing if it is not known there or was seen later.
    pub fn refresh(&mut self, mac: &[u8; 6], port: PortId, at: Instant) {
        if let Ok(i) = self.find(mac_key(mac)) {
            let slot = &mut self.slots[i];
            if slot.port == port && slot.seen < at {
                slot.seen = at;
            }
        }
    }

    /// [`Fdb::sweep`], handing each reclaimed address to `gone`.
    pub fn sweep_each(&mut self, now: Instant, mut gone: impl FnMut([u8; 6])) -> usize {
        let aging = self.aging;
        let mut removed = 0;
        let mut i = 0;
        while i < self.slots.len() {
            let s = self.slots[i];
            if s.key != 0 && now.saturating_since(s.seen) > aging {
                gone(mac_of(s.key));
                self.delete_at(i);
                removed += 1;
                continue;
            }
            i += 1;
        }
        removed
    }

    /// Forget every entry that points at `port` (a port went away).
    pub fn flush_port(&mut self, port: PortId) {
        self.remove_where(|s| s.port == port);
    }

    /// Reclaim the slots of aged-out entries; returns how many were removed.
    pub fn sweep(&mut self, now: Instant) -> usize {
        let aging = self.aging;
        self.remove_where(|s| now.saturating_since(s.seen) > aging)
    }

    fn remove_where(&mut self, pred: impl Fn(&Slot) -> bool) -> usize {
        let mut removed = 0;
        let mut i = 0;
        while i < self.slots.len() {
            if self.slots[i].key != 0 && pred(&self.slots[i]) {
                self.delete_at(i);
                removed += 1;
                // The backward shift may have moved another entry into `i`: look again.
                continue;
            }
            i += 1;
        }
        removed
    }

    /// Backward-shift deletion: keeps every remaining entry reachable from its home.
    fn delete_at(&mut self, mut hole: usize) {
        self.slots[hole] = EMPTY;
        self.len -= 1;
        let mut j = (hole + 1) & self.mask;
        while self.slots[j].key != 0 {
            let home = self.home(self.slots[j].key);
            // Move j into the hole when its home is not in (hole, j] cyclically.
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = self.slots[j];
                self.slots[j] = EMPTY;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(n: u32) -> [u8; 6] {
        let b = n.to_be_bytes();
        [0x02, 0, b[0], b[1], b[2], b[3]]
    }

    #[test]
    fn learns_looks_up_and_moves() {
        let mut f = Fdb::new(16, Duration::from_secs(300));
        let t = Instant::from_secs(1);
        assert_eq!(f.lookup(&mac(1), t), None);
        assert_eq!(f.learn(&mac(1), 3, t), Learn::New);
        assert_eq!(f.lookup(&mac(1), t), Some(3));
        assert_eq!(f.learn(&mac(1), 3, t), Learn::Refreshed);
        assert_eq!(f.learn(&mac(1), 5, t), Learn::Moved);
        assert_eq!(f.lookup(&mac(1), t), Some(5));
        assert_eq!(f.len(), 1);
    }

    #[test]
    fn entries_age_out_and_sweep_reclaims() {
        let mut f = Fdb::new(16, Duration::from_secs(300));
        f.learn(&mac(1), 0, Instant::from_secs(0));
        f.learn(&mac(2), 1, Instant::from_secs(200));
        assert_eq!(f.lookup(&mac(1), Instant::from_secs(300)), Some(0));
        assert_eq!(f.lookup(&mac(1), Instant::from_secs(301)), None);
        assert_eq!(f.sweep(Instant::from_secs(301)), 1);
        assert_eq!(f.len(), 1);
        assert_eq!(f.lookup(&mac(2), Instant::from_secs(301)), Some(1));
    }

    #[test]
    fn full_table_learns_nothing_more() {
        let mut f = Fdb::new(4, Duration::from_secs(300));
        let t = Instant::ZERO;
        for n in 0..4 {
            assert_eq!(f.learn(&mac(n), 0, t), Learn::New);
        }
        assert_eq!(f.learn(&mac(99), 1, t), Learn::Full);
        assert_eq!(f.lookup(&mac(99), t), None);
        assert_eq!(f.len(), 4);
        // Known entries still refresh and move when full.
        assert_eq!(f.learn(&mac(2), 1, t), Learn::Moved);
    }

    #[test]
    fn deletion_keeps_colliding_entries_reachable() {
        // Many entries in a small table force long probe chains; delete half and check
        // every survivor is still found.
        let mut f = Fdb::new(512, Duration::from_secs(10));
        for n in 0..512 {
            let seen = if n % 2 == 0 { 0 } else { 20 };
            f.learn(&mac(n * 7919), (n % 64) as PortId, Instant::from_secs(seen));
        }
        assert_eq!(f.sweep(Instant::from_secs(25)), 256);
        for n in 0..512 {
            let got = f.lookup(&mac(n * 7919), Instant::from_secs(25));
            if n % 2 == 0 {
                assert_eq!(got, None);
            } else {
                assert_eq!(got, Some((n % 64) as PortId), "entry {n} lost");
            }
        }
    }

    #[test]
    fn flush_port_forgets_only_that_port() {
        let mut f = Fdb::new(16, Duration::from_secs(300));
        f.learn(&mac(1), 0, Instant::ZERO);
        f.learn(&mac(2), 1, Instant::ZERO);
        f.flush_port(0);
        assert_eq!(f.lookup(&mac(1), Instant::ZERO), None);
        assert_eq!(f.lookup(&mac(2), Instant::ZERO), Some(1));
    }
}
