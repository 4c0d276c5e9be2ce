//! Descriptor chains: the guest's buffers, read (its transmit ring) and written (its
//! receive ring). The guest is untrusted: every chain is checked before a byte of it is
//! used, and a chain that fails is refused with a [`ChainFault`], never followed.
//!
//! Checks (beyond what `virtio-queue` already bounds: a chain never yields more
//! descriptors than the ring holds, an indirect table is read only where it fits):
//! - a chain that ends on a descriptor still flagged `NEXT` was cut short by those
//!   bounds (a loop, a chain longer than the ring, a `next` outside the table):
//!   [`ChainFault::Unterminated`];
//! - every descriptor's buffer must lie in the guest's memory ([`ChainFault::Unmapped`]);
//! - a transmit chain holds only device-readable buffers, a receive chain only
//!   device-writable ones ([`ChainFault::WrongDirection`]);
//! - lengths: at least the virtio-net header, then a frame of 14 bytes or more, no
//!   longer than the destination ([`ChainFault::Short`], [`ChainFault::TooLong`]).
//!
//! Invariant: nothing here allocates; the descriptor list is a caller-owned scratch
//! [`Descriptors`] of fixed capacity.

use std::ops::Deref;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryBackend, GuestMemoryMmap};

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
    list: Vec<Descriptor>,
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

    /// Walk `chain`, keeping its descriptors; each must be device-writable when
    /// `writable`, readable otherwise, and lie in `mem`.
    pub fn gather<M>(
        &mut self,
        chain: DescriptorChain<M>,
        mem: &GuestMemoryMmap,
        writable: bool,
    ) -> Result<(), ChainFault>
    where
        M: Deref,
        M::Target: GuestMemory,
    {
        self.list.clear();
        self.total = 0;
        let mut last_next = true;
        for d in chain {
            last_next = d.has_next();
            if d.is_write_only() != writable {
                return Err(ChainFault::WrongDirection);
            }
            if !in_memory(mem, d.addr(), d.len() as usize) {
                return Err(ChainFault::Unmapped);
            }
            if self.list.len() == self.list.capacity() {
                return Err(ChainFault::Unterminated);
            }
            self.total += d.len() as usize;
            self.list.push(d);
        }
        if last_next {
            // Either no descriptor at all (a head outside the table) or the walk was
            // cut short while the chain still pointed on.
            return Err(ChainFault::Unterminated);
        }
        Ok(())
    }

    /// Copy the chain's bytes `skip..skip + out.len()` into `out`.
    pub fn read(
        &self,
        mem: &GuestMemoryMmap,
        skip: usize,
        out: &mut [u8],
    ) -> Result<(), ChainFault> {
        let mut pos = 0; // chain offset of the current descriptor
        let mut done = 0;
        for d in &self.list {
            let len = d.len() as usize;
            let (from, to) = (skip + done, skip + out.len());
            if from >= to {
                break;
            }
            if from < pos + len {
                let within = from - pos;
                let n = (len - within).min(to - from);
                let at = GuestAddress(d.addr().0 + within as u64);
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
    pub fn write(&self, mem: &GuestMemoryMmap, parts: &[&[u8]]) -> Result<usize, ChainFault> {
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
                let room = desc.len() as usize - used;
                if room == 0 {
                    d = descs.next();
                    used = 0;
                    continue;
                }
                let n = room.min(p.len());
                let at = GuestAddress(desc.addr().0 + used as u64);
                write_at(mem, at, &p[..n])?;
                used += n;
                p = &p[n..];
            }
        }
        Ok(need)
    }
}

// Guest memory access, one region lookup each. vm-memory's `check_range`, `read_slice`
// and `write_slice` go through its multi-region slice iterator (a peekable iterator of
// fallible slices) even when, as almost always, the range lies in one region: on the
// frame path that machinery cost more than the copies. Each helper takes the range as
// one slice when it lies in one region, and falls back to the general call (a buffer
// across two adjacent regions) otherwise, so the results are the same.

/// Whether `addr..addr + len` lies in the guest's memory (`check_range`).
#[inline]
fn in_memory(mem: &GuestMemoryMmap, addr: GuestAddress, len: usize) -> bool {
    mem.get_slice(addr, len).is_ok() || GuestMemoryBackend::check_range(mem, addr, len)
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
                in_memory(&mem, a, len),
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
