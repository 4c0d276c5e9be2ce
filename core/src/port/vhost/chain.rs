//! Descriptor chains: the guest's buffers, read (its transmit ring) and written (its
//! receive ring). The guest is untrusted: every chain is checked before a byte of it is
//! used, and a chain that fails is refused with a [`ChainFault`], never followed.
//!
//! The walk is `virtio-queue`'s (`DescriptorChain`), done here on the burst's cached
//! descriptor table ([`super::ring::Avail`]) so a descriptor costs a bounds-checked
//! load rather than a region lookup: a chain yields at most as many descriptors as its
//! table holds, an indirect descriptor switches to its table (not from inside one; a
//! whole number of descriptors, at most `u16::MAX`), a chain ends past `u32::MAX`
//! bytes, and every descriptor is read only where it lies inside its table.
//!
//! Checks:
//! - a walk cut short by those bounds (a loop, a chain longer than the ring, a `next`
//!   or a head outside the table, a broken indirect table), or a chain longer than the
//!   scratch list: [`ChainFault::Unterminated`];
//! - every descriptor's buffer must lie in the guest's memory ([`ChainFault::Unmapped`]);
//! - a transmit chain holds only device-readable buffers, a receive chain only
//!   device-writable ones ([`ChainFault::WrongDirection`]);
//! - lengths: at least the virtio-net header, then a frame of 14 bytes or more, no
//!   longer than the destination ([`ChainFault::Short`], [`ChainFault::TooLong`]).
//!
//! Invariant: nothing here allocates; the descriptor list is a caller-owned scratch
//! [`Descriptors`] of fixed capacity.

use super::ring::{Area, Desc, Memory, DESC_SIZE};
use vm_memory::{Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice};

/// Why a chain was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ChainFault {
    /// The chain ended on a descriptor that still pointed further (a loop, longer than
    /// the ring, a `next` outside the table, or a head outside the table).
    Unterminated = 0,
    /// A buffer outside the guest's memory.
    Unmapped,
    /// A writable buffer in a transmit chain, or a readable one in a receive chain.
    WrongDirection,
    /// Shorter than the virtio-net header plus an Ethernet header.
    Short,
    /// Longer than the frame it must hold or fill.
    TooLong,
}

impl ChainFault {
    /// Number of reasons.
    pub const COUNT: usize = 5;
    /// Every reason, in counter order.
    pub const ALL: [ChainFault; Self::COUNT] = [
        ChainFault::Unterminated,
        ChainFault::Unmapped,
        ChainFault::WrongDirection,
        ChainFault::Short,
        ChainFault::TooLong,
    ];

    /// Stable snake_case name (counters, JSON).
    pub fn name(self) -> &'static str {
        match self {
            ChainFault::Unterminated => "chain_unterminated",
            ChainFault::Unmapped => "chain_unmapped",
            ChainFault::WrongDirection => "chain_wrong_direction",
            ChainFault::Short => "chain_short",
            ChainFault::TooLong => "chain_too_long",
        }
    }
}

/// The descriptors of one chain, gathered and checked.
#[derive(Debug)]
pub struct Descriptors {
    list: Vec<Desc>,
    /// Total bytes.
    pub total: usize,
}

impl Descriptors {
    /// Room for chains of up to `max` descriptors (the ring size bounds them; indirect
    /// tables are bounded the same way).
    pub fn with_capacity(max: usize) -> Self {
        Self {
            list: Vec::with_capacity(max),
            total: 0,
        }
    }

    /// Walk the chain at `head` of the ring whose descriptor table is `table`
    /// (`size` descriptors), keeping its descriptors; each must be device-writable
    /// when `writable`, readable otherwise, and lie in `mem`.
    #[inline]
    pub fn gather<'a, 'm>(
        &'a mut self,
        mem: &'a mut Memory<'m>,
        table: Area<'m>,
        size: u16,
        head: u16,
        writable: bool,
    ) -> Result<Chain<'a, 'm>, ChainFault> {
        self.list.clear();
        self.total = 0;
        let mut walk = Walk::new(table, size, head);
        loop {
            // A walk cut short: no descriptor at all (a head outside the table) or
            // the chain still pointed on.
            let d = walk.next(mem.guest()).ok_or(ChainFault::Unterminated)?;
            if d.is_write_only() != writable {
                return Err(ChainFault::WrongDirection);
            }
            if !in_memory(mem, GuestAddress(d.addr), d.len as usize) {
                return Err(ChainFault::Unmapped);
            }
            if self.list.len() == self.list.capacity() {
                return Err(ChainFault::Unterminated);
            }
            self.total += d.len as usize;
            self.list.push(d);
            if !d.has_next() {
                break;
            }
        }
        Ok(Chain { descs: self, mem })
    }

    /// Copy the chain's bytes `skip..skip + out.len()` into `out`.
    fn read(&self, mem: &GuestMemoryMmap, skip: usize, out: &mut [u8]) -> Result<(), ChainFault> {
        let mut pos = 0; // chain offset of the current descriptor
        let mut done = 0;
        for d in &self.list {
            let len = d.len as usize;
            let (from, to) = (skip + done, skip + out.len());
            if from >= to {
                break;
            }
            if from < pos + len {
                let within = from - pos;
                let n = (len - within).min(to - from);
                let at = GuestAddress(d.addr + within as u64);
                read_at(mem, at, &mut out[done..done + n])?;
                done += n;
            }
            pos += len;
        }
        if done < out.len() {
            return Err(ChainFault::Short);
        }
        Ok(())
    }

    /// Write `parts` one after the other into the chain from its start; returns the
    /// bytes written.
    fn write(&self, mem: &GuestMemoryMmap, parts: &[&[u8]]) -> Result<usize, ChainFault> {
        let need: usize = parts.iter().map(|p| p.len()).sum();
        if need > self.total {
            return Err(ChainFault::TooLong);
        }
        let mut descs = self.list.iter();
        let (mut d, mut used) = (descs.next(), 0usize);
        for part in parts {
            let mut p = *part;
            while !p.is_empty() {
                let Some(desc) = d else {
                    return Err(ChainFault::TooLong);
                };
                let room = desc.len as usize - used;
                if room == 0 {
                    d = descs.next();
                    used = 0;
                    continue;
                }
                let n = room.min(p.len());
                let at = GuestAddress(desc.addr + used as u64);
                write_at(mem, at, &p[..n])?;
                used += n;
                p = &p[n..];
            }
        }
        Ok(need)
    }
}

/// A gathered chain: its descriptors, read and written through the burst's memory.
/// A chain of one buffer in one region (the common case: DPDK's virtio PMD, Linux
/// with small frames) is read or written through that buffer's host slice, resolved
/// against the region the burst last used, so it needs no region lookup.
#[derive(Debug)]
pub struct Chain<'a, 'm> {
    descs: &'a Descriptors,
    mem: &'a mut Memory<'m>,
}

impl<'m> Chain<'_, 'm> {
    /// Total bytes of the chain's buffers.
    pub fn total(&self) -> usize {
        self.descs.total
    }

    /// The chain's one buffer, when it has one and it lies in one region.
    fn whole(&mut self) -> Option<VolatileSlice<'m>> {
        match self.descs.list[..] {
            [d] => self.mem.slice(d.addr, d.len as usize),
            _ => None,
        }
    }

    /// Copy the chain's bytes `skip..skip + out.len()` into `out`.
    pub fn read(&mut self, skip: usize, out: &mut [u8]) -> Result<(), ChainFault> {
        match self.whole() {
            Some(s) => {
                let part = s.subslice(skip, out.len()).map_err(|_| ChainFault::Short)?;
                part.copy_to(out);
                Ok(())
            }
            None => self.descs.read(self.mem.guest(), skip, out),
        }
    }

    /// Write `parts` one after the other into the chain from its start; returns the
    /// bytes written.
    pub fn write(&mut self, parts: &[&[u8]]) -> Result<usize, ChainFault> {
        let Some(s) = self.whole() else {
            return self.descs.write(self.mem.guest(), parts);
        };
        let need: usize = parts.iter().map(|p| p.len()).sum();
        if need > s.len() {
            return Err(ChainFault::TooLong);
        }
        let mut at = 0;
        for p in parts {
            let dst = s.subslice(at, p.len()).map_err(|_| ChainFault::TooLong)?;
            dst.copy_from(p);
            at += p.len();
        }
        Ok(need)
    }
}

/// A walk along one chain as `virtio-queue`'s `DescriptorChain` walks it: at most as
/// many descriptors as the table holds, an indirect descriptor (not inside an indirect
/// table, a whole number of descriptors long) switches to its table from entry 0, and
/// a chain of more than `u32::MAX` bytes ends. `None` when the walk is cut short.
///
/// It ends on any input: each descriptor yielded costs one of `ttl` (at most the
/// table's size), and a walk enters an indirect table at most once.
struct Walk<'m> {
    table: Area<'m>,
    entries: u16,
    next: u16,
    ttl: u16,
    indirect: bool,
    bytes: u32,
}

impl<'m> Walk<'m> {
    fn new(table: Area<'m>, size: u16, head: u16) -> Self {
        Self {
            table,
            entries: size,
            next: head,
            ttl: size,
            indirect: false,
            bytes: 0,
        }
    }

    fn next(&mut self, mem: &'m GuestMemoryMmap) -> Option<Desc> {
        loop {
            if self.ttl == 0 || self.next >= self.entries {
                return None;
            }
            let d = self.table.desc(self.next)?;
            if d.is_indirect() {
                self.enter_indirect(mem, d)?;
                continue;
            }
            self.bytes = self.bytes.checked_add(d.len)?;
            if d.has_next() {
                self.next = d.next;
                self.ttl -= 1;
            } else {
                self.ttl = 0;
            }
            return Some(d);
        }
    }

    fn enter_indirect(&mut self, mem: &'m GuestMemoryMmap, d: Desc) -> Option<()> {
        if self.indirect || !(d.len as usize).is_multiple_of(DESC_SIZE) {
            return None;
        }
        let entries = u16::try_from(d.len as usize / DESC_SIZE).ok()?;
        self.table = Area::new(mem, GuestAddress(d.addr), d.len as usize);
        self.entries = entries;
        self.next = 0;
        self.ttl = entries;
        self.indirect = true;
        Some(())
    }
}

// Guest memory access, one region lookup each. vm-memory's `check_range`, `read_slice`
// and `write_slice` go through its multi-region slice iterator (a peekable iterator of
// fallible slices) even when, as almost always, the range lies in one region: on the
// frame path that machinery cost more than the copies. Each helper takes the range as
// one slice when it lies in one region, and falls back to the general call (a buffer
// across two adjacent regions) otherwise, so the results are the same.

/// Whether `addr..addr + len` lies in the guest's memory (`check_range`), checked
/// against the region the burst last used first.
#[inline]
fn in_memory(mem: &mut Memory<'_>, addr: GuestAddress, len: usize) -> bool {
    mem.slice(addr.0, len).is_some() || GuestMemoryBackend::check_range(mem.guest(), addr, len)
}

/// Copy the guest's bytes at `at` into `out` (`read_slice`).
#[inline]
fn read_at(mem: &GuestMemoryMmap, at: GuestAddress, out: &mut [u8]) -> Result<(), ChainFault> {
    if let Ok(s) = mem.get_slice(at, out.len()) {
        s.copy_to(out);
        return Ok(());
    }
    mem.read_slice(out, at).map_err(|_| ChainFault::Unmapped)
}

/// Copy `bytes` into the guest's memory at `at` (`write_slice`).
#[inline]
fn write_at(mem: &GuestMemoryMmap, at: GuestAddress, bytes: &[u8]) -> Result<(), ChainFault> {
    if let Ok(s) = mem.get_slice(at, bytes.len()) {
        s.copy_from(bytes);
        return Ok(());
    }
    mem.write_slice(bytes, at).map_err(|_| ChainFault::Unmapped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::atomic::Ordering;
    use virtio_queue::{Queue, QueueOwnedT, QueueT};

    /// One descriptor as (address, length, flags, next), for both walks.
    fn fields(d: &virtio_queue::desc::split::Descriptor) -> (u64, u32, u16, u16) {
        (d.addr().0, d.len(), d.flags(), d.next())
    }

    proptest! {
        /// The walk on the cached table yields what `virtio-queue`'s `DescriptorChain`
        /// yields, descriptor for descriptor, on any table: loops, `next` and heads out
        /// of range, indirect tables (nested, misaligned lengths, empty, unmapped,
        /// across the end of memory), any flags.
        #[test]
        fn the_walk_is_virtio_queues_walk(
            ring in proptest::collection::vec((0usize..6, 0usize..6, 0u16..8, 0u16..10), 8),
            indirect in proptest::collection::vec((0usize..6, 0usize..6, 0u16..8, 0u16..10), 8),
            head in 0u16..10,
        ) {
            const SIZE: u16 = 8;
            const DESC: u64 = 0x1000;
            const TABLE: u64 = 0x4000;
            // Buffers: an indirect table, a misaligned copy of it, plain memory, the
            // last bytes of memory, outside memory, an address that overflows.
            let addrs = [TABLE, TABLE + 0x203, 0x5000, 0xfff0, 0x2_0000, u64::MAX - 8];
            let lens = [0u32, 16, 24, 48, 128, u32::MAX];
            let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1_0000)]).unwrap();
            let put = |at: u64, (a, l, f, n): (usize, usize, u16, u16)| {
                let mut d = [0u8; 16];
                d[..8].copy_from_slice(&addrs[a].to_le_bytes());
                d[8..12].copy_from_slice(&lens[l].to_le_bytes());
                d[12..14].copy_from_slice(&f.to_le_bytes());
                d[14..].copy_from_slice(&n.to_le_bytes());
                mem.write_slice(&d, GuestAddress(at)).unwrap();
            };
            for (i, &d) in ring.iter().enumerate() {
                put(DESC + 16 * i as u64, d);
            }
            for (i, &d) in indirect.iter().enumerate() {
                put(TABLE + 16 * i as u64, d);
                put(TABLE + 0x203 + 16 * i as u64, d);
            }
            let mut q = Queue::new(SIZE).unwrap();
            q.try_set_desc_table_address(GuestAddress(DESC)).unwrap();
            q.try_set_avail_ring_address(GuestAddress(0x2000)).unwrap();
            q.try_set_used_ring_address(GuestAddress(0x3000)).unwrap();
            q.set_ready(true);
            mem.store(head.to_le(), GuestAddress(0x2004), Ordering::Relaxed).unwrap();
            mem.store(1u16.to_le(), GuestAddress(0x2002), Ordering::Relaxed).unwrap();
            let theirs: Vec<_> = q.iter(&mem).unwrap().next().unwrap()
                .take(64).map(|d| fields(&d)).collect();
            let table = Area::new(&mem, GuestAddress(DESC), 16 * usize::from(SIZE));
            let mut walk = Walk::new(table, SIZE, head);
            let ours: Vec<_> = std::iter::from_fn(|| walk.next(&mem))
                .take(64).map(|d| (d.addr, d.len, d.flags, d.next)).collect();
            prop_assert_eq!(ours, theirs);
        }
    }

    /// The one-region fast paths give what vm-memory's general calls give: inside a
    /// region, across two adjacent regions (the fallback), and outside the memory.
    #[test]
    fn one_region_access_matches_the_general_calls() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x1000), 0x1000),
            (GuestAddress(0x4000), 0x1000),
        ])
        .unwrap();
        let bytes: Vec<u8> = (0..0x100u32).map(|i| (i * 7) as u8).collect();
        for (at, len) in [
            (0x10u64, 0x100usize),
            (0xf80, 0x100),
            (0x1f80, 0x100),
            (0x3ff0, 0x20),
            (0x4f80, 0x100),
            (0x5000, 0),
            (0x9000, 0),
        ] {
            let a = GuestAddress(at);
            assert_eq!(
                in_memory(&mut Memory::new(&mem), a, len),
                GuestMemoryBackend::check_range(&mem, a, len),
                "{at:#x}+{len:#x}"
            );
            let part = &bytes[..len];
            let w = write_at(&mem, a, part);
            assert_eq!(w.is_ok(), mem.write_slice(part, a).is_ok(), "{at:#x}");
            let (mut x, mut y) = (vec![0u8; len], vec![1u8; len]);
            let r = read_at(&mem, a, &mut x);
            assert_eq!(r.is_ok(), mem.read_slice(&mut y, a).is_ok(), "{at:#x}");
            if r.is_ok() {
                assert_eq!(x, part);
                assert_eq!(y, part);
            }
        }
    }
}
