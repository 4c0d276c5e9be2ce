//! The driver's side of a split ring (descriptor table and available ring), read a
//! burst at a time.
//!
//! `virtio-queue`'s `AvailIter` and `DescriptorChain` go through `GuestMemory` for
//! every access: the available index, each available entry and each descriptor cost a
//! region lookup, and a consumer that calls `Queue::iter` per chain reads the index
//! per chain. Measured live, those lookups were the largest item of the vhost-user
//! frame path. A [`Avail`] is opened once per burst: the available index is read once
//! (acquire), the descriptor table and the available ring are each resolved to one
//! host slice ([`Area`]), and the burst's heads are then bounds-checked loads from
//! those slices. Nothing is cached across bursts, so a new memory table or new ring
//! addresses (see `device`) can never leave a stale slice behind.
//!
//! `virtio-queue` still owns the ring's state: [`Avail::open`] starts at the queue's
//! `next_avail` and the caller stores [`Avail::next_avail`] back when the burst ends.
//!
//! Invariants (those of `Queue::iter`, plus a ring size that is a power of two, which
//! `Queue::new` guarantees and [`Avail::open`] checks again):
//! - an available index more than a ring ahead of `next_avail` is refused
//!   ([`RingFault::AvailIndex`]) before any entry is read;
//! - at most the chains the driver published when the burst opened are taken;
//! - every access is bounds-checked against the area it reads; an area that does not
//!   lie in one region is read through `GuestMemory` instead (same results, slower).

use super::device::RingFault;
use std::sync::atomic::Ordering;
use virtio_queue::{Queue, QueueT};
use vm_memory::{
    Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion, VolatileMemory,
    VolatileSlice,
};

/// Descriptor flag: the chain continues at `next`.
pub const DESC_NEXT: u16 = 1;
/// Descriptor flag: the buffer is device-writable.
pub const DESC_WRITE: u16 = 2;
/// Descriptor flag: the buffer is a table of descriptors.
pub const DESC_INDIRECT: u16 = 4;

/// Bytes of one descriptor.
pub const DESC_SIZE: usize = 16;

/// One descriptor as the driver wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    /// Guest address of the buffer.
    pub addr: u64,
    /// Bytes of the buffer.
    pub len: u32,
    /// `DESC_*` flags.
    pub flags: u16,
    /// The next descriptor's index, when flagged `DESC_NEXT`.
    pub next: u16,
}

impl Desc {
    fn parse(b: &[u8; DESC_SIZE]) -> Self {
        let (mut lo, mut hi) = ([0u8; 8], [0u8; 8]);
        lo.copy_from_slice(&b[..8]);
        hi.copy_from_slice(&b[8..]);
        Self::from_words(u64::from_le_bytes(lo), u64::from_le_bytes(hi))
    }

    /// The descriptor from its two little-endian words, read as numbers: the address,
    /// then length (low 32 bits), flags and next.
    fn from_words(lo: u64, hi: u64) -> Self {
        Self {
            addr: lo,
            len: hi as u32,
            flags: (hi >> 32) as u16,
            next: (hi >> 48) as u16,
        }
    }

    /// Whether the chain continues.
    pub fn has_next(&self) -> bool {
        self.flags & DESC_NEXT != 0
    }

    /// Whether the buffer is device-writable.
    pub fn is_write_only(&self) -> bool {
        self.flags & DESC_WRITE != 0
    }

    /// Whether the buffer is an indirect descriptor table.
    pub fn is_indirect(&self) -> bool {
        self.flags & DESC_INDIRECT != 0
    }
}

/// `len` bytes of guest memory at `addr`: one host slice when they lie in one region
/// (the case that matters), else reached through `GuestMemory` on each access.
#[derive(Debug, Clone, Copy)]
pub struct Area<'m> {
    mem: &'m GuestMemoryMmap,
    addr: GuestAddress,
    len: usize,
    slice: Option<VolatileSlice<'m>>,
}

impl<'m> Area<'m> {
    /// The area; resolving it never fails (an unmapped area fails on access).
    pub fn new(mem: &'m GuestMemoryMmap, addr: GuestAddress, len: usize) -> Self {
        Self {
            mem,
            addr,
            len,
            slice: mem.get_slice(addr, len).ok(),
        }
    }

    /// Copy the area's bytes at `off` into `out`; `false` when they are not all inside
    /// the area or not in memory.
    pub fn read(&self, off: usize, out: &mut [u8]) -> bool {
        match off.checked_add(out.len()) {
            Some(end) if end <= self.len => {}
            _ => return false,
        }
        match self.slice {
            Some(s) => s.subslice(off, out.len()).map(|s| s.copy_to(out)).is_ok(),
            None => self
                .guest(off)
                .is_some_and(|at| self.mem.read_slice(out, at).is_ok()),
        }
    }

    /// The little-endian `u16` at `off` (aligned), loaded with `order`.
    pub fn load_u16(&self, off: usize, order: Ordering) -> Option<u16> {
        if off.checked_add(2)? > self.len {
            return None;
        }
        let v: u16 = match self.slice {
            Some(s) => s.load(off, order).ok()?,
            None => self.mem.load(self.guest(off)?, order).ok()?,
        };
        Some(u16::from_le(v))
    }

    /// Descriptor `i` of the table this area holds.
    pub fn desc(&self, i: u16) -> Option<Desc> {
        let off = usize::from(i) * DESC_SIZE;
        if let Some(s) = self.slice {
            // Two 8-byte loads (unaligned ones: an indirect table need not be aligned).
            let lo = s.get_ref::<u64>(off).ok()?.load();
            let hi = s.get_ref::<u64>(off + 8).ok()?.load();
            return Some(Desc::from_words(u64::from_le(lo), u64::from_le(hi)));
        }
        let mut b = [0u8; DESC_SIZE];
        self.read(off, &mut b).then(|| Desc::parse(&b))
    }

    fn guest(&self, off: usize) -> Option<GuestAddress> {
        self.addr.0.checked_add(off as u64).map(GuestAddress)
    }
}

/// The guest's memory for one burst, remembering the region of the last buffer
/// resolved: the guest's buffers almost always lie in one or two regions, so most
/// resolutions are a bounds check against that region's host slice rather than a
/// search of the region table.
#[derive(Debug)]
pub struct Memory<'m> {
    mem: &'m GuestMemoryMmap,
    /// (guest address, host slice) of the last region used.
    last: Option<(u64, VolatileSlice<'m>)>,
}

impl<'m> Memory<'m> {
    /// The memory, no region remembered yet.
    pub fn new(mem: &'m GuestMemoryMmap) -> Self {
        Self { mem, last: None }
    }

    /// The memory itself.
    pub fn guest(&self) -> &'m GuestMemoryMmap {
        self.mem
    }

    /// The host slice of `addr..addr + len` when it lies in one region (as
    /// `GuestMemory::get_slice` gives it); `None` otherwise. One difference: an empty
    /// range just past the end of the remembered region resolves (to an empty slice)
    /// where `get_slice` refuses it; vm-memory's `check_range`, which callers fall back
    /// on, accepts every empty range anyway.
    #[inline]
    pub fn slice(&mut self, addr: u64, len: usize) -> Option<VolatileSlice<'m>> {
        if let Some((start, region)) = self.last {
            let within = addr
                .checked_sub(start)
                .and_then(|o| usize::try_from(o).ok())
                .and_then(|o| region.subslice(o, len).ok());
            if within.is_some() {
                return within;
            }
        }
        let r = self.mem.find_region(GuestAddress(addr))?;
        let (start, region) = (r.start_addr().0, r.as_volatile_slice().ok()?);
        self.last = Some((start, region));
        let o = usize::try_from(addr - start).ok()?;
        region.subslice(o, len).ok()
    }
}

/// One burst's view of a running ring's available side.
#[derive(Debug)]
pub struct Avail<'m> {
    /// The ring's descriptor table (`size` descriptors).
    pub table: Area<'m>,
    ring: Area<'m>,
    size: u16,
    next: u16,
    end: u16,
}

impl<'m> Avail<'m> {
    /// Open `q`'s available side: read the driver's index once. `None` when no chain
    /// is waiting (the descriptor table is then not even resolved: an idle ring costs
    /// one region lookup and one load per burst).
    ///
    /// # Errors
    /// [`RingFault::AvailIndex`] when the index cannot be read or runs more than a ring
    /// ahead of the device (as `Queue::iter` refuses it).
    pub fn open(mem: &'m GuestMemoryMmap, q: &Queue) -> Result<Option<Self>, RingFault> {
        let size = q.size();
        // `Queue::new` refuses other sizes; a slot is then an index masked, not divided.
        if !size.is_power_of_two() {
            return Err(RingFault::AvailIndex);
        }
        // flags, idx, one entry per descriptor.
        let ring = Area::new(mem, GuestAddress(q.avail_ring()), 4 + 2 * usize::from(size));
        let end = ring
            .load_u16(2, Ordering::Acquire)
            .ok_or(RingFault::AvailIndex)?;
        let next = q.next_avail();
        if end.wrapping_sub(next) > size {
            return Err(RingFault::AvailIndex);
        }
        if end == next {
            return Ok(None);
        }
        let table = Area::new(
            mem,
            GuestAddress(q.desc_table()),
            DESC_SIZE * usize::from(size),
        );
        Ok(Some(Self {
            table,
            ring,
            size,
            next,
            end,
        }))
    }

    /// The ring's size (its table's descriptors, the longest chain).
    pub fn size(&self) -> u16 {
        self.size
    }

    /// The head of the next available chain, if the driver published one when the
    /// burst opened.
    pub fn pop(&mut self) -> Option<u16> {
        if self.next == self.end {
            return None;
        }
        let slot = usize::from(self.next & (self.size - 1));
        // Ordered after the acquire load of the index in `open`.
        let head = self.ring.load_u16(4 + 2 * slot, Ordering::Relaxed)?;
        self.next = self.next.wrapping_add(1);
        Some(head)
    }

    /// Prefetch the first two cache lines (a header and a small frame) of the first
    /// buffer of each of the next `k` available chains, without taking them, so that
    /// their cache misses (the driver's core wrote or read them last) overlap here
    /// rather than stall each frame's copy in turn, as DPDK's vhost library does with
    /// `rte_prefetch0`. Anything that does not resolve is skipped; the chains are
    /// walked and checked when they are taken. Measured live (`bench --port-kind
    /// vhost-user`, Internal, 64-byte frames): touching the lines with loads took PDR
    /// from 5.3 to 7.7 Mpps; prefetching them instead (a prefetch retires without
    /// waiting for its line, where a load holds up every instruction after it) took the
    /// frames forwarded at 12 Mpps offered from 7.6 to 9.6 Mpps.
    ///
    /// The lines of a receive ring's buffers (`write`) are asked for in the exclusive
    /// state, as the copy into them will need them: a line fetched shared would be
    /// fetched again for the store (at a fixed 8.8 Mpps, p50 5.6-9.0 -> 2.5-3.8 us).
    pub fn prefetch_ahead(&self, mem: &mut Memory<'m>, k: usize, write: bool) {
        let mut at = self.next;
        for _ in 0..k {
            if at == self.end {
                return;
            }
            let slot = at & (self.size - 1);
            at = at.wrapping_add(1);
            let head = self
                .ring
                .load_u16(4 + 2 * usize::from(slot), Ordering::Relaxed);
            let Some(d) = head.and_then(|h| self.table.desc(h)) else {
                continue;
            };
            if d.is_indirect() || d.len == 0 {
                continue;
            }
            // The first two cache lines: a header and a small frame.
            let len = (d.len as usize).min(128);
            if let Some(s) = mem.slice(d.addr, len) {
                let p = s.ptr_guard().as_ptr();
                let fetch = if write { prefetch_for_write } else { prefetch };
                fetch(p);
                if len > 64 {
                    fetch(p.wrapping_add(64));
                }
            }
        }
    }

    /// The queue's `next_avail` after the chains taken.
    pub fn next_avail(&self) -> u16 {
        self.next
    }
}

/// Ask the CPU to start loading the cache line holding `p` into its caches, without
/// waiting for it (x86-64 `prefetcht0`; nothing elsewhere).
#[inline(always)]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it reads nothing into the program and never faults,
    // whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Ask the CPU to start loading the cache line holding `p` in the exclusive state, ready
/// to be written (x86-64 `prefetchw`, a no-op on CPUs before it; nothing elsewhere).
#[inline(always)]
fn prefetch_for_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as `prefetch`: a hint that neither changes memory nor faults.
    unsafe {
        std::arch::asm!("prefetchw [{0}]", in(reg) p, options(nostack, preserves_flags));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remembered region gives the slices `get_slice` gives, whichever region the
    /// last buffer was in: inside each region, at and past their ends, across two
    /// adjacent ones, in the gap, outside memory, overflowing (empty ranges past a
    /// region's end aside: see `Memory::slice`).
    #[test]
    fn the_remembered_region_resolves_as_get_slice_does() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x1000), 0x1000),
            (GuestAddress(0x4000), 0x1000),
        ])
        .unwrap();
        let cases = [
            (0x10u64, 0x100usize),
            (0x1010, 0x100),
            (0xf80, 0x80),
            (0xf80, 0x81),
            (0x1f00, 0x100),
            (0x2000, 0),
            (0x3000, 0x10),
            (0x4ff0, 0x10),
            (0x4ff0, 0x11),
            (0x5000, 0),
            (u64::MAX - 4, 8),
        ];
        let mut m = Memory::new(&mem);
        // Every case after every other, so each starts from each remembered region.
        for &(a0, l0) in &cases {
            for &(a, l) in &cases {
                for (at, len) in [(a0, l0), (a, l)] {
                    let want = mem.get_slice(GuestAddress(at), len).ok();
                    let got = m.slice(at, len);
                    if len == 0 && want.is_none() {
                        // See `Memory::slice`: possibly an empty slice at a region's end.
                        assert!(got.is_none_or(|s| s.is_empty()), "{at:#x} after {a0:#x}");
                        continue;
                    }
                    assert_eq!(
                        got.map(|s| (s.ptr_guard().as_ptr(), s.len())),
                        want.map(|s| (s.ptr_guard().as_ptr(), s.len())),
                        "{at:#x}+{len:#x} after {a0:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn an_area_across_two_regions_reads_as_guest_memory_does() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x1000),
            (GuestAddress(0x1000), 0x1000),
        ])
        .unwrap();
        let bytes: Vec<u8> = (0..64u8).collect();
        mem.write_slice(&bytes, GuestAddress(0xfe0)).unwrap();
        let one = Area::new(&mem, GuestAddress(0xfe0), 0x20);
        let two = Area::new(&mem, GuestAddress(0xfe0), 0x40);
        assert!(one.slice.is_some() && two.slice.is_none());
        for a in [one, two] {
            let mut b = [0u8; 16];
            assert!(a.read(16, &mut b));
            assert_eq!(&b[..], &bytes[16..32]);
            assert_eq!(a.load_u16(2, Ordering::Relaxed), Some(0x0302));
            assert!(!a.read(a.len - 8, &mut b), "past the area");
            assert_eq!(a.load_u16(a.len - 1, Ordering::Relaxed), None);
        }
        let mut b = [0u8; 16];
        assert!(two.read(0x18, &mut b), "across the boundary");
        assert_eq!(&b[..], &bytes[0x18..0x28]);
        let out = Area::new(&mem, GuestAddress(0x1ff0), 0x20);
        assert!(out.read(0, &mut b), "the part in memory");
        assert!(!out.read(16, &mut b), "outside memory");
        assert_eq!(out.desc(1), None);
    }
}
