//! MAC addresses shared between workers without locks.
//!
//! A worker that sees a frame learns a MAC (a guest's, the next hop's); a packet that needs
//! it may be handled by another worker (the owner of its NAT mapping). Each slot is one
//! `AtomicU64`: bit 63 says "known", the low 48 bits hold the MAC. Writers store, readers
//! load, both relaxed: a reader sees the old or the new MAC, never a mix.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use vnet_core::wire::EthernetAddress;

const KNOWN: u64 = 1 << 63;

fn pack(mac: EthernetAddress) -> u64 {
    let m = mac.0;
    KNOWN
        | u64::from(m[0]) << 40
        | u64::from(m[1]) << 32
        | u64::from(m[2]) << 24
        | u64::from(m[3]) << 16
        | u64::from(m[4]) << 8
        | u64::from(m[5])
}

fn unpack(v: u64) -> Option<EthernetAddress> {
    (v & KNOWN != 0).then(|| {
        let b = v.to_be_bytes();
        EthernetAddress([b[2], b[3], b[4], b[5], b[6], b[7]])
    })
}

/// A fixed number of shared MAC slots, and a version that counts their changes (for the
/// fast path: entries written with an old MAC must go).
#[derive(Debug, Clone)]
pub struct MacSlots(Arc<[AtomicU64]>);

impl MacSlots {
    /// `n` unknown slots.
    pub fn new(n: usize) -> Self {
        MacSlots((0..=n).map(|_| AtomicU64::new(0)).collect())
    }

    #[inline]
    fn slot(&self, i: usize) -> Option<&AtomicU64> {
        self.0[..self.0.len() - 1].get(i)
    }

    fn bump(&self) {
        self.0[self.0.len() - 1].fetch_add(1, Ordering::Relaxed);
    }

    /// How many times a slot changed (any worker's change counts).
    #[inline]
    pub fn version(&self) -> u64 {
        self.0[self.0.len() - 1].load(Ordering::Relaxed)
    }

    /// The MAC in slot `i`, if known (out of range: unknown).
    #[inline]
    pub fn get(&self, i: usize) -> Option<EthernetAddress> {
        self.slot(i).and_then(|s| unpack(s.load(Ordering::Relaxed)))
    }

    /// Remember `mac` in slot `i` (ignored out of range); cheap when unchanged.
    #[inline]
    pub fn set(&self, i: usize, mac: EthernetAddress) {
        if let Some(s) = self.slot(i) {
            let v = pack(mac);
            if s.load(Ordering::Relaxed) != v {
                s.store(v, Ordering::Relaxed);
                self.bump();
            }
        }
    }

    /// Forget slot `i`.
    pub fn clear(&self, i: usize) {
        if let Some(s) = self.slot(i) {
            if s.swap(0, Ordering::Relaxed) != 0 {
                self.bump();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_round_trip_and_are_shared() {
        let a = MacSlots::new(4);
        let b = a.clone();
        assert_eq!(a.get(1), None);
        a.set(1, EthernetAddress([0x0a, 1, 2, 3, 4, 5]));
        assert_eq!(b.get(1), Some(EthernetAddress([0x0a, 1, 2, 3, 4, 5])));
        assert_eq!(b.get(9), None);
        assert_eq!(a.version(), 1);
        a.set(1, EthernetAddress([0x0a, 1, 2, 3, 4, 5]));
        assert_eq!(a.version(), 1, "unchanged: no new version");
        b.clear(1);
        assert_eq!(a.get(1), None);
        assert_eq!(a.version(), 2);
        b.clear(1);
        assert_eq!(a.version(), 2);
    }
}
