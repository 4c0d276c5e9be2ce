//! A virtio-net driver over vhost-user, for the bench's traffic through vhost-user ports:
//! the frontend side of the protocol (rust-vmm's `vhost` crate, `vhost-user-frontend`),
//! guest memory in a shared file mapping (`vm-memory`), and the driver's half of two
//! split rings (receive queue 0, transmit queue 1) laid out and driven by hand the way a
//! poll-mode driver (DPDK's virtio PMD) drives them: no interrupts asked for
//! (`VRING_AVAIL_F_NO_INTERRUPT`), a kick only when the device has not said it polls
//! (`VRING_USED_F_NO_NOTIFY` clear).
//!
//! Guest memory (guest-physical address = offset in the file, [`MEM_SIZE`] bytes):
//! - per queue `q`, a block at `q * 0x8000`: the descriptor table (16 bytes x [`RING`]),
//!   the available ring at +0x4000, the used ring at +0x5000;
//! - buffers from 0x10000, [`BUF_SIZE`] bytes each: descriptor `i` of queue `q` always
//!   points at buffer `(q, i)`, a chain is one descriptor.
//!
//! Invariants:
//! - a transmit descriptor is either in `tx_free` or offered to the device, never both;
//!   the device may return descriptors in any order, so `tx_free` is filled from the used
//!   ring's ids, not assumed in order;
//! - every receive descriptor is offered to the device except while [`VirtioNic::rx_poll`]
//!   reads it, and is offered again before `rx_poll` returns;
//! - the driver never writes a buffer the device holds: transmit buffers are stamped only
//!   between being taken from `tx_free` and being offered.

use anyhow::{bail, Context, Result};
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, VolatileSlice,
};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

/// Entries per ring (QEMU's largest `rx_queue_size`).
pub const RING: u16 = 1024;
/// Bytes per buffer: the virtio-net header and a 1514-byte frame fit.
pub const BUF_SIZE: u64 = 2048;
/// The virtio-net header with `VIRTIO_F_VERSION_1` (it has `num_buffers`).
pub const NET_HDR: usize = 12;
/// Guest memory: rings and both queues' buffers (4 MiB + 64 KiB), rounded up.
pub const MEM_SIZE: usize = 8 << 20;

const RXQ: usize = 0;
const TXQ: usize = 1;
const QUEUE_BLOCK: u64 = 0x8000;
const AVAIL_AT: u64 = 0x4000;
const USED_AT: u64 = 0x5000;
const BUFFERS_AT: u64 = 0x1_0000;
/// Descriptor flag: the device writes this buffer.
const DESC_WRITE: u16 = 2;
/// Available ring flag: the driver wants no interrupts.
const AVAIL_NO_INTERRUPT: u16 = 1;
/// Used ring flag: the device polls and wants no kicks.
const USED_NO_NOTIFY: u16 = 1;
const F_VERSION_1: u64 = 1 << 32;
const F_PROTOCOL_FEATURES: u64 = 1 << 30;

fn desc(q: usize, i: u16) -> usize {
    (q as u64 * QUEUE_BLOCK + 16 * u64::from(i)) as usize
}
fn avail(q: usize) -> usize {
    (q as u64 * QUEUE_BLOCK + AVAIL_AT) as usize
}
fn used(q: usize) -> usize {
    (q as u64 * QUEUE_BLOCK + USED_AT) as usize
}
/// Offset of buffer `i` of queue `q`.
pub fn buffer(q: usize, i: u16) -> usize {
    (BUFFERS_AT + (q as u64 * u64::from(RING) + u64::from(i)) * BUF_SIZE) as usize
}

/// One received frame, as [`VirtioNic::rx_poll`] hands it over.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    /// Its length without the virtio-net header.
    pub len: usize,
    /// The buffer (header first), valid until the callback returns.
    pub buf: &'a VolatileSlice<'a>,
    /// Offset of the frame (after the header) in `buf`.
    pub at: usize,
}

/// A virtio-net device driven over a vhost-user socket.
pub struct VirtioNic {
    frontend: Frontend,
    mem: GuestMemoryMmap,
    kick: [EventFd; 2],
    /// Kept open: the device signals it unless told not to (it is told not to).
    _call: [EventFd; 2],
    avail_idx: [u16; 2],
    used_seen: [u16; 2],
    tx_free: Vec<u16>,
    tx_len: u32,
}

impl std::fmt::Debug for VirtioNic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "VirtioNic(fd {}, {} tx free)",
            self.frontend.as_raw_fd(),
            self.tx_free.len()
        )
    }
}

/// A file in `/dev/shm` for guest memory, unlinked at once: only the mapping and the
/// descriptor handed to the device keep it.
fn shared_file() -> Result<std::fs::File> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let path = format!(
        "/dev/shm/vnet-bench-virtio-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("could not create guest memory {path}; is /dev/shm mounted?"))?;
    let _ = std::fs::remove_file(&path);
    f.set_len(MEM_SIZE as u64)?;
    Ok(f)
}

/// Kick queue `q` unless the device said it polls.
fn notify(s: &VolatileSlice<'_>, kick: &EventFd, q: usize) -> Result<()> {
    std::sync::atomic::fence(Ordering::SeqCst);
    let flags: u16 = s.load(used(q), Ordering::Relaxed)?;
    if flags & USED_NO_NOTIFY == 0 {
        kick.write(1)?;
    }
    Ok(())
}

/// All of guest memory as one slice (one region lookup per call).
fn view(mem: &GuestMemoryMmap) -> Result<VolatileSlice<'_>> {
    Ok(mem.get_slice(GuestAddress(0), MEM_SIZE)?)
}

impl VirtioNic {
    /// Connect to the vhost-user socket at `path` (retrying until `wait` has passed while
    /// it is missing or refuses), set up memory and both rings, and start them.
    ///
    /// # Errors
    /// When nothing listens at `path` in time, or the device refuses the set-up.
    pub fn connect(path: &Path, wait: Duration) -> Result<VirtioNic> {
        let deadline = Instant::now() + wait;
        let mut frontend = loop {
            match Frontend::connect(path, 2) {
                Ok(f) => break f,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => bail!(
                    "no vhost-user device answered at {} within {:?}: {e}",
                    path.display(),
                    wait
                ),
            }
        };
        let what = |step: &'static str| move |e| anyhow::anyhow!("vhost-user {step}: {e}");
        frontend.set_owner().map_err(what("SET_OWNER"))?;
        let offered = frontend.get_features().map_err(what("GET_FEATURES"))?;
        if offered & F_VERSION_1 == 0 {
            bail!(
                "the vhost-user device at {} does not offer VIRTIO_F_VERSION_1",
                path.display()
            );
        }
        let features = F_VERSION_1 | (offered & F_PROTOCOL_FEATURES);
        frontend
            .set_features(features)
            .map_err(what("SET_FEATURES"))?;
        if features & F_PROTOCOL_FEATURES != 0 {
            frontend
                .get_protocol_features()
                .map_err(what("GET_PROTOCOL_FEATURES"))?;
            frontend
                .set_protocol_features(VhostUserProtocolFeatures::empty())
                .map_err(what("SET_PROTOCOL_FEATURES"))?;
        }
        let file = shared_file()?;
        let mem = GuestMemoryMmap::<()>::from_ranges_with_files([(
            GuestAddress(0),
            MEM_SIZE,
            Some(FileOffset::new(file, 0)),
        )])
        .context("could not map guest memory")?;
        let region = mem.iter().next().context("guest memory has a region")?;
        let info =
            VhostUserMemoryRegionInfo::from_guest_region(region).map_err(what("memory region"))?;
        let host = info.userspace_addr;
        let mut nic = VirtioNic {
            frontend,
            mem,
            kick: [EventFd::new(EFD_NONBLOCK)?, EventFd::new(EFD_NONBLOCK)?],
            _call: [EventFd::new(EFD_NONBLOCK)?, EventFd::new(EFD_NONBLOCK)?],
            avail_idx: [0; 2],
            used_seen: [0; 2],
            tx_free: (0..RING).rev().collect(),
            tx_len: 0,
        };
        nic.lay_out()?;
        nic.frontend
            .set_mem_table(&[info])
            .map_err(what("SET_MEM_TABLE"))?;
        for q in [RXQ, TXQ] {
            let f = &nic.frontend;
            f.set_vring_num(q, RING).map_err(what("SET_VRING_NUM"))?;
            f.set_vring_addr(
                q,
                &VringConfigData {
                    queue_max_size: RING,
                    queue_size: RING,
                    flags: 0,
                    desc_table_addr: host + desc(q, 0) as u64,
                    used_ring_addr: host + used(q) as u64,
                    avail_ring_addr: host + avail(q) as u64,
                    log_addr: None,
                },
            )
            .map_err(what("SET_VRING_ADDR"))?;
            f.set_vring_base(q, 0).map_err(what("SET_VRING_BASE"))?;
            f.set_vring_call(q, &nic._call[q])
                .map_err(what("SET_VRING_CALL"))?;
            f.set_vring_kick(q, &nic.kick[q])
                .map_err(what("SET_VRING_KICK"))?;
        }
        if features & F_PROTOCOL_FEATURES != 0 {
            for q in [RXQ, TXQ] {
                nic.frontend
                    .set_vring_enable(q, true)
                    .map_err(what("SET_VRING_ENABLE"))?;
            }
        }
        // Every receive buffer offered at once.
        let s = view(&nic.mem)?;
        for i in 0..RING {
            s.store(i, avail(RXQ) + 4 + 2 * usize::from(i), Ordering::Relaxed)?;
        }
        nic.avail_idx[RXQ] = RING;
        s.store(RING, avail(RXQ) + 2, Ordering::Release)?;
        for q in [RXQ, TXQ] {
            nic.kick[q].write(1)?;
        }
        Ok(nic)
    }

    /// Descriptors (each its own buffer; receive ones device-writable) and ring flags.
    fn lay_out(&self) -> Result<()> {
        let s = view(&self.mem)?;
        for i in 0..RING {
            for (q, len, flags) in [(RXQ, BUF_SIZE as u32, DESC_WRITE), (TXQ, 0, 0)] {
                let mut d = [0u8; 16];
                d[..8].copy_from_slice(&(buffer(q, i) as u64).to_le_bytes());
                d[8..12].copy_from_slice(&len.to_le_bytes());
                d[12..14].copy_from_slice(&flags.to_le_bytes());
                s.write_slice(&d, desc(q, i))?;
            }
        }
        for q in [RXQ, TXQ] {
            s.store(AVAIL_NO_INTERRUPT, avail(q), Ordering::Relaxed)?;
        }
        Ok(())
    }

    /// Put `frame` (behind a header that asks nothing of the device) in every transmit
    /// buffer and size every transmit descriptor for it. Only while no frame is in flight.
    ///
    /// # Errors
    /// When the frame does not fit a buffer, or frames are still in flight.
    pub fn set_tx_frame(&mut self, frame: &[u8]) -> Result<()> {
        self.tx_reclaim()?;
        if self.tx_free.len() != usize::from(RING) {
            bail!("frames are still in flight on the transmit ring");
        }
        if NET_HDR + frame.len() > BUF_SIZE as usize {
            bail!(
                "a {}-byte frame does not fit a {BUF_SIZE}-byte buffer",
                frame.len()
            );
        }
        let s = view(&self.mem)?;
        let len = (NET_HDR + frame.len()) as u32;
        for i in 0..RING {
            s.write_slice(&[0u8; NET_HDR], buffer(TXQ, i))?;
            s.write_slice(frame, buffer(TXQ, i) + NET_HDR)?;
            s.store(len, desc(TXQ, i) + 8, Ordering::Relaxed)?;
        }
        self.tx_len = len;
        Ok(())
    }

    /// Transmit descriptors free to offer.
    pub fn tx_free(&self) -> usize {
        self.tx_free.len()
    }

    /// Take back the transmit descriptors the device has used; returns how many are free.
    ///
    /// # Errors
    /// When the device returned an id out of range (a broken device).
    pub fn tx_reclaim(&mut self) -> Result<usize> {
        let s = view(&self.mem)?;
        let idx: u16 = s.load(used(TXQ) + 2, Ordering::Acquire)?;
        while self.used_seen[TXQ] != idx {
            let slot = usize::from(self.used_seen[TXQ] % RING);
            let id: u32 = s.load(used(TXQ) + 4 + 8 * slot, Ordering::Relaxed)?;
            if id >= u32::from(RING) || self.tx_free.len() >= usize::from(RING) {
                bail!("the device returned transmit descriptor {id}, which it did not hold");
            }
            self.tx_free.push(id as u16);
            self.used_seen[TXQ] = self.used_seen[TXQ].wrapping_add(1);
        }
        Ok(self.tx_free.len())
    }

    /// Offer up to `n` frames (at most what is free); `stamp(k, buf, at)` writes frame `k`
    /// of this call into its buffer (the frame starts at `at`) before it is offered.
    /// Returns how many were offered.
    ///
    /// # Errors
    /// When guest memory cannot be written (never with this layout) or the kick fails.
    pub fn tx_offer(
        &mut self,
        n: usize,
        mut stamp: impl FnMut(usize, &VolatileSlice<'_>, usize) -> Result<()>,
    ) -> Result<usize> {
        let n = n.min(self.tx_free.len());
        if n == 0 {
            return Ok(0);
        }
        let s = view(&self.mem)?;
        for k in 0..n {
            let id = self.tx_free.pop().expect("n <= free");
            stamp(k, &s, buffer(TXQ, id) + NET_HDR)?;
            let slot = usize::from(self.avail_idx[TXQ] % RING);
            s.store(id, avail(TXQ) + 4 + 2 * slot, Ordering::Relaxed)?;
            self.avail_idx[TXQ] = self.avail_idx[TXQ].wrapping_add(1);
        }
        s.store(self.avail_idx[TXQ], avail(TXQ) + 2, Ordering::Release)?;
        notify(&s, &self.kick[TXQ], TXQ)?;
        Ok(n)
    }

    /// Hand every frame the device has put in the receive ring to `each`, at most `max`,
    /// and offer their buffers again. Returns how many there were.
    ///
    /// # Errors
    /// When the device returned an id out of range (a broken device).
    pub fn rx_poll(&mut self, max: usize, mut each: impl FnMut(Received<'_>)) -> Result<usize> {
        let s = view(&self.mem)?;
        let idx: u16 = s.load(used(RXQ) + 2, Ordering::Acquire)?;
        let mut n = 0;
        while self.used_seen[RXQ] != idx && n < max {
            let slot = usize::from(self.used_seen[RXQ] % RING);
            let id: u32 = s.load(used(RXQ) + 4 + 8 * slot, Ordering::Relaxed)?;
            let len: u32 = s.load(used(RXQ) + 8 + 8 * slot, Ordering::Relaxed)?;
            if id >= u32::from(RING) {
                bail!("the device returned receive descriptor {id}, which does not exist");
            }
            let id = id as u16;
            let written = (len as usize).min(BUF_SIZE as usize);
            if written > NET_HDR {
                let buf = s.subslice(buffer(RXQ, id), BUF_SIZE as usize)?;
                each(Received {
                    len: written - NET_HDR,
                    buf: &buf,
                    at: NET_HDR,
                });
            }
            let a = usize::from(self.avail_idx[RXQ] % RING);
            s.store(id, avail(RXQ) + 4 + 2 * a, Ordering::Relaxed)?;
            self.avail_idx[RXQ] = self.avail_idx[RXQ].wrapping_add(1);
            self.used_seen[RXQ] = self.used_seen[RXQ].wrapping_add(1);
            n += 1;
        }
        if n > 0 {
            s.store(self.avail_idx[RXQ], avail(RXQ) + 2, Ordering::Release)?;
            notify(&s, &self.kick[RXQ], RXQ)?;
        }
        Ok(n)
    }
}
