//! Frame memory: the worker's packet buffers and the descriptors that name them.
//!
//! A worker owns one [`FramePool`]: a contiguous region cut into `count` equal frames
//! (the AF_XDP UMEM when the worker serves `xdp` ports, a heap region otherwise) and a
//! free stack of frame indices. Packets move through the worker as [`Pkt`] descriptors
//! (frame index, length, ingress port), never as copies.
//!
//! Invariants:
//! - every frame index is in exactly one place at a time: the free stack, a port's
//!   kernel-owned rings (fill/tx), or one [`Pkt`] in flight inside the worker;
//! - [`FramePool::free`] of an index already free is a bug that would alias two packets;
//!   debug builds check it;
//! - a packet's bytes live at `data_offset .. data_offset + len` inside its frame, and
//!   `len <= FramePool::capacity()`.
//!
//! All raw-pointer access to frame memory in the crate happens in this module, behind
//! [`FramePool::bytes`] and [`FramePool::bytes_mut`].

use std::fmt;

/// Index of a frame in a [`FramePool`].
pub type FrameIndex = u32;

/// Number of a port inside one dataplane (0..[`MAX_PORTS`]).
pub type PortId = u16;

/// Most ports one dataplane serves (port sets are 64-bit masks).
pub const MAX_PORTS: usize = 64;

/// A packet in flight: which frame holds it, how long it is, where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pkt {
    /// The frame holding the bytes.
    pub frame: FrameIndex,
    /// Length of the packet in bytes.
    pub len: u16,
    /// Port the packet was received on.
    pub port: PortId,
}

enum Backing {
    /// Memory owned by the pool (the `mem` and `pcap` backends).
    Heap(#[allow(dead_code)] Box<[u8]>),
    /// Memory owned by someone else (the AF_XDP UMEM); the handle keeps it mapped for
    /// as long as the pool lives.
    #[cfg_attr(not(feature = "xdp"), allow(dead_code))]
    Borrowed(#[allow(dead_code)] Box<dyn std::any::Any + Send>),
}

/// The frames of one worker: a region of `count * frame_size` bytes and a free stack.
pub struct FramePool {
    base: *mut u8,
    frame_size: usize,
    data_offset: usize,
    count: u32,
    free: Vec<FrameIndex>,
    #[cfg(debug_assertions)]
    is_free: Vec<bool>,
    _backing: Backing,
}

// SAFETY: the pool exclusively owns its region (heap) or has exclusive use of it by the
// contract of `from_raw`; moving the pool to another thread moves that exclusivity along.
unsafe impl Send for FramePool {}

impl fmt::Debug for FramePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramePool")
            .field("frame_size", &self.frame_size)
            .field("data_offset", &self.data_offset)
            .field("count", &self.count)
            .field("free", &self.free.len())
            .finish()
    }
}

impl FramePool {
    /// A heap-backed pool of `count` frames of `frame_size` bytes, all free.
    ///
    /// `data_offset` bytes at the start of each frame are headroom.
    ///
    /// # Panics
    /// If `frame_size <= data_offset` or the region would not fit in memory.
    pub fn with_heap(count: u32, frame_size: usize, data_offset: usize) -> Self {
        assert!(frame_size > data_offset, "frame smaller than its headroom");
        let len = (count as usize)
            .checked_mul(frame_size)
            .expect("frame region overflows");
        let mut region = vec![0u8; len].into_boxed_slice();
        let base = region.as_mut_ptr();
        let mut pool = Self::new_inner(base, count, frame_size, data_offset, Backing::Heap(region));
        pool.free.extend((0..count).rev());
        #[cfg(debug_assertions)]
        pool.is_free.iter_mut().for_each(|f| *f = true);
        pool
    }

    /// A pool over memory owned elsewhere (the AF_XDP UMEM). No frame starts free: the
    /// owner hands frames in with [`FramePool::free`].
    ///
    /// # Safety
    /// `base .. base + count * frame_size` must be valid for reads and writes for as
    /// long as `keepalive` lives (the pool holds it), and nothing else may touch a frame
    /// while the pool considers it its own (free or in flight).
    #[cfg_attr(not(feature = "xdp"), allow(dead_code))]
    pub(crate) unsafe fn from_raw(
        base: *mut u8,
        count: u32,
        frame_size: usize,
        data_offset: usize,
        keepalive: Box<dyn std::any::Any + Send>,
    ) -> Self {
        Self::new_inner(
            base,
            count,
            frame_size,
            data_offset,
            Backing::Borrowed(keepalive),
        )
    }

    fn new_inner(
        base: *mut u8,
        count: u32,
        frame_size: usize,
        data_offset: usize,
        backing: Backing,
    ) -> Self {
        Self {
            base,
            frame_size,
            data_offset,
            count,
            free: Vec::with_capacity(count as usize),
            #[cfg(debug_assertions)]
            is_free: vec![false; count as usize],
            _backing: backing,
        }
    }

    /// Bytes a packet may occupy in one frame.
    pub fn capacity(&self) -> usize {
        self.frame_size - self.data_offset
    }

    /// Number of frames in the pool.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Size of one frame, headroom included.
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// Offset of the packet data inside a frame.
    pub fn data_offset(&self) -> usize {
        self.data_offset
    }

    /// Frames currently free.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Take a free frame, if any.
    #[inline]
    pub fn alloc(&mut self) -> Option<FrameIndex> {
        let f = self.free.pop()?;
        #[cfg(debug_assertions)]
        {
            self.is_free[f as usize] = false;
        }
        Some(f)
    }

    /// Give a frame back.
    #[inline]
    pub fn free(&mut self, frame: FrameIndex) {
        debug_assert!(frame < self.count, "frame index out of range");
        #[cfg(debug_assertions)]
        {
            assert!(
                !self.is_free[frame as usize],
                "double free of frame {frame}"
            );
            self.is_free[frame as usize] = true;
        }
        self.free.push(frame);
    }

    /// Offset of a frame's packet data from the start of the region (the UMEM address).
    #[inline]
    pub fn addr_of(&self, frame: FrameIndex) -> u64 {
        (frame as usize * self.frame_size + self.data_offset) as u64
    }

    /// The frame holding a region address (the inverse of [`FramePool::addr_of`], for
    /// any address inside the frame).
    #[inline]
    pub fn frame_of(&self, addr: u64) -> FrameIndex {
        (addr as usize / self.frame_size) as FrameIndex
    }

    /// The whole data area of a frame (`capacity()` bytes).
    #[inline]
    pub fn frame_mut(&mut self, frame: FrameIndex) -> &mut [u8] {
        assert!(frame < self.count, "frame index out of range");
        let off = frame as usize * self.frame_size + self.data_offset;
        // SAFETY: `frame < count`, so `off .. off + capacity` lies inside the region,
        // which is valid for the pool's life (constructor contracts); `&mut self`
        // guarantees no other reference into the pool is live.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off), self.capacity()) }
    }

    /// A frame's data area, read-only.
    #[inline]
    pub fn frame(&self, frame: FrameIndex) -> &[u8] {
        assert!(frame < self.count, "frame index out of range");
        let off = frame as usize * self.frame_size + self.data_offset;
        // SAFETY: as in `frame_mut`; shared access through `&self`.
        unsafe { std::slice::from_raw_parts(self.base.add(off), self.capacity()) }
    }

    /// The bytes of a packet.
    #[inline]
    pub fn bytes(&self, pkt: &Pkt) -> &[u8] {
        &self.frame(pkt.frame)[..pkt.len as usize]
    }

    /// The bytes of a packet, writable.
    #[inline]
    pub fn bytes_mut(&mut self, pkt: &Pkt) -> &mut [u8] {
        let len = pkt.len as usize;
        &mut self.frame_mut(pkt.frame)[..len]
    }

    /// Copy `data` into a new frame; `None` when the pool is empty or `data` too long.
    pub fn alloc_copy(&mut self, data: &[u8], port: PortId) -> Option<Pkt> {
        if data.len() > self.capacity() || data.len() > u16::MAX as usize {
            return None;
        }
        let frame = self.alloc()?;
        self.frame_mut(frame)[..data.len()].copy_from_slice(data);
        Some(Pkt {
            frame,
            len: data.len() as u16,
            port,
        })
    }

    /// Copy a packet into a new frame (for flooding); `None` when the pool is empty.
    pub fn clone_pkt(&mut self, pkt: &Pkt) -> Option<Pkt> {
        let frame = self.alloc()?;
        let len = pkt.len as usize;
        let (src_off, dst_off) = (
            pkt.frame as usize * self.frame_size + self.data_offset,
            frame as usize * self.frame_size + self.data_offset,
        );
        // SAFETY: both ranges lie inside the region (indices < count, len <= capacity)
        // and belong to different frames, so they do not overlap.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.add(src_off), self.base.add(dst_off), len)
        };
        Some(Pkt { frame, ..*pkt })
    }
}

/// Asks the CPU to start loading the cache lines holding `*r`: its first and last byte, so
/// a value straddling two lines is covered (a no-op off x86_64). Batch paths call it for
/// every packet before the real work, so the loads overlap (the NAPT's table walks).
#[inline(always)]
pub fn prefetch<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has (it is in the target's
    // baseline). A prefetch is only a hint: it never faults and never writes; both
    // pointers point into `*r` anyway.
    unsafe {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let first = (r as *const T).cast::<i8>();
        _mm_prefetch::<_MM_HINT_T0>(first);
        _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(std::mem::size_of::<T>().max(1) - 1));
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_round_trip_and_exhaustion() {
        let mut pool = FramePool::with_heap(4, 2048, 256);
        assert_eq!(pool.capacity(), 1792);
        let got: Vec<_> = (0..4).map(|_| pool.alloc().unwrap()).collect();
        assert_eq!(got, vec![0, 1, 2, 3]);
        assert_eq!(pool.alloc(), None);
        pool.free(2);
        assert_eq!(pool.alloc(), Some(2));
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "double free")]
    fn double_free_is_caught() {
        let mut pool = FramePool::with_heap(2, 2048, 0);
        let f = pool.alloc().unwrap();
        pool.free(f);
        pool.free(f);
    }

    #[test]
    fn clone_copies_bytes_into_another_frame() {
        let mut pool = FramePool::with_heap(4, 256, 16);
        let p = pool.alloc_copy(&[1, 2, 3, 4], 7).unwrap();
        let q = pool.clone_pkt(&p).unwrap();
        assert_ne!(p.frame, q.frame);
        assert_eq!(pool.bytes(&q), &[1, 2, 3, 4]);
        assert_eq!(q.port, 7);
        pool.bytes_mut(&p)[0] = 9;
        assert_eq!(pool.bytes(&q)[0], 1);
    }

    #[test]
    fn addresses_map_back_to_frames() {
        let pool = FramePool::with_heap(8, 2048, 256);
        for f in 0..8 {
            assert_eq!(pool.frame_of(pool.addr_of(f)), f);
            assert_eq!(pool.frame_of(pool.addr_of(f) + 100), f);
        }
    }

    #[test]
    fn oversized_copy_is_refused() {
        let mut pool = FramePool::with_heap(2, 128, 64);
        assert!(pool.alloc_copy(&[0u8; 65], 0).is_none());
        assert_eq!(pool.free_count(), 2);
    }
}
