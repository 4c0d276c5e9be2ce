//! A fixed-capacity open-addressing hash index, keyed by small packed keys, and a slab of
//! indices.
//!
//! [`FixedMap`] is allocated once at 1.5 times its entry limit rounded up to a power of two
//! (a load factor of at most 2/3), uses linear probing and backward-shift deletion, and
//! hashes with a seeded 64-bit mixer so that remote hosts cannot aim collisions without
//! knowing the seed.
//!
//! Invariants:
//!
//! - the owner never inserts beyond the limit given to [`FixedMap::with_limit`] (checked
//!   with a debug assertion), so at least a third of the slots are empty and every probe
//!   ends;
//! - a key's slot index is only valid until the next insert or remove.
//!
//! [`prefetch`] (vnet-core's, where the `unsafe` lives) is the crate's one cache hint: it
//! only asks the CPU to start loading a line, so it never changes what the program computes.

/// A packed key: `k1` must be below `2^31` (its top bit marks an occupied slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// The wide part.
    pub(crate) k0: u64,
    /// The narrow part, `< 2^31`.
    pub(crate) k1: u32,
}

const OCCUPIED: u32 = 1 << 31;

#[derive(Debug, Clone, Copy)]
struct Slot<V> {
    k0: u64,
    /// `OCCUPIED | key.k1` when in use, 0 when empty.
    k1: u32,
    value: V,
}

/// A bounded hash index from [`Key`] to `V`.
#[derive(Debug)]
pub(crate) struct FixedMap<V: Copy> {
    slots: Box<[Slot<V>]>,
    mask: usize,
    len: usize,
    limit: usize,
    seed: u64,
}

#[inline]
fn mix(mut h: u64) -> u64 {
    // splitmix64's finaliser.
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

pub(crate) use vnet_core::frame::prefetch;

impl<V: Copy + Default> FixedMap<V> {
    /// An index for up to `limit` keys.
    pub(crate) fn with_limit(limit: usize, seed: u64) -> Self {
        let limit = limit.max(1);
        let cap = (limit + limit / 2 + 1).next_power_of_two();
        let empty = Slot {
            k0: 0,
            k1: 0,
            value: V::default(),
        };
        Self {
            slots: vec![empty; cap].into_boxed_slice(),
            mask: cap - 1,
            len: 0,
            limit,
            seed,
        }
    }
}

impl<V: Copy> FixedMap<V> {
    /// Keys held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn home(&self, k0: u64, k1: u32) -> usize {
        let h = mix(mix(k0 ^ self.seed).wrapping_add(u64::from(k1)));
        (h as usize) & self.mask
    }

    /// `Ok(slot)` holding `key`, or `Err(slot)` where it would go.
    #[inline]
    fn find(&self, key: Key) -> Result<usize, usize> {
        debug_assert!(key.k1 < OCCUPIED);
        let k1 = key.k1 | OCCUPIED;
        let mut i = self.home(key.k0, key.k1);
        loop {
            let s = &self.slots[i];
            if s.k1 == 0 {
                return Err(i);
            }
            if s.k1 == k1 && s.k0 == key.k0 {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The value of `key`.
    #[inline]
    pub(crate) fn get(&self, key: Key) -> Option<V> {
        self.find(key).ok().map(|i| self.slots[i].value)
    }

    /// Starts loading the slot where the probe for `key` begins ([`prefetch`]).
    #[inline]
    pub(crate) fn prefetch(&self, key: Key) {
        prefetch(&self.slots[self.home(key.k0, key.k1)]);
    }

    /// Inserts or replaces `key`. The caller keeps `len() < limit` before a new key.
    #[inline]
    pub(crate) fn insert(&mut self, key: Key, value: V) {
        match self.find(key) {
            Ok(i) => self.slots[i].value = value,
            Err(i) => {
                debug_assert!(self.len < self.limit, "FixedMap over its limit");
                self.slots[i] = Slot {
                    k0: key.k0,
                    k1: key.k1 | OCCUPIED,
                    value,
                };
                self.len += 1;
            }
        }
    }

    /// Removes `key`, returning its value.
    pub(crate) fn remove(&mut self, key: Key) -> Option<V> {
        let i = self.find(key).ok()?;
        let value = self.slots[i].value;
        self.delete_at(i);
        Some(value)
    }

    /// Backward-shift deletion: keeps every remaining key reachable from its home.
    fn delete_at(&mut self, mut hole: usize) {
        self.slots[hole].k1 = 0;
        self.len -= 1;
        let mut j = (hole + 1) & self.mask;
        while self.slots[j].k1 != 0 {
            let s = self.slots[j];
            let home = self.home(s.k0, s.k1 & !OCCUPIED);
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.slots[hole] = s;
                self.slots[j].k1 = 0;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn matches_a_hashmap_under_churn() {
        let mut m: FixedMap<u32> = FixedMap::with_limit(64, 7);
        let mut reference = HashMap::new();
        let mut x: u64 = 1;
        for step in 0..20_000u32 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // A small key space, so inserts, hits and removes all happen.
            let key = Key {
                k0: (x >> 40) % 97,
                k1: ((x >> 20) % 3) as u32,
            };
            let op = x % 3;
            if op == 0 {
                assert_eq!(m.remove(key), reference.remove(&(key.k0, key.k1)));
            } else if reference.len() < 64 || reference.contains_key(&(key.k0, key.k1)) {
                m.insert(key, step);
                reference.insert((key.k0, key.k1), step);
            }
            assert_eq!(m.get(key), reference.get(&(key.k0, key.k1)).copied());
            assert_eq!(m.len(), reference.len());
        }
        for (&(k0, k1), &v) in &reference {
            assert_eq!(m.get(Key { k0, k1 }), Some(v));
        }
    }
}
