//! [`XdpPort`]: one AF_XDP socket (one interface queue) as a [`Port`].
//!
//! Frame ownership, per port: a frame is in this port's fill ring (counted by
//! `fill_level`), in its tx ring or waiting on its completion ring (counted by
//! `tx_outstanding`), queued in its [`Segmenter`] (segments of a multi-buffer frame, and
//! what arrived behind them, waiting for the next receive burst), or in the worker's
//! [`FramePool`] / in flight as a [`Pkt`]. Rx takes frames out of the fill count (the
//! pieces of a multi-buffer frame go back to the pool once copied into the segmenter),
//! tx puts them into the tx count, [`Port::service`] moves completed frames back to the
//! pool and tops the fill ring up from it.
//!
//! Order: received packets leave `rx_burst` in arrival order; once segments are queued,
//! later frames queue behind them, and queued packets are handed out before the rx ring
//! is read again.
//!
//! Hot path cost: `rx_burst`, `tx_burst` and `service` allocate nothing and make no
//! syscall except the ones the kernel asks for: a `sendto` when the tx ring says it needs
//! a wakeup (always, in copy mode, where it is repeated while descriptors remain and the
//! kernel keeps taking them, since one call transmits a bounded batch), and a
//! non-blocking `recvfrom` when the rx ring is empty and either busy polling is on or the
//! fill ring needs a wakeup (skipped when a `sendto` on the socket already polled).

use super::fastpath::{Attachment, FastPath};
use super::napi::NapiGuard;
use super::sockopt;
use super::{AttachMode, BindMode};
use crate::frame::{FramePool, Pkt, PortId};
use crate::offload::Segmenter;
use crate::port::{Burst, Port, PortInfo, PortStats, BURST};
use std::os::fd::RawFd;
use std::sync::Arc;
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, TxQueue, Umem};

/// The rings and the socket of one bound port (dropping them closes the socket).
#[derive(Debug)]
pub(crate) struct Rings {
    pub tx: TxQueue,
    pub rx: RxQueue,
    pub fill: FillQueue,
    pub comp: CompQueue,
}

/// What setup learnt about a port, for [`XdpPort::new`].
#[derive(Debug)]
pub(crate) struct Bound {
    pub ifname: String,
    pub ifindex: u32,
    pub id: PortId,
    pub rings: Rings,
    pub attach: AttachMode,
    pub bind: BindMode,
    pub napi: Option<Arc<NapiGuard>>,
    pub fastpath: Option<Attachment>,
    pub detail: String,
}

/// Per-port sizing derived from the configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sizing {
    pub fill_target: u32,
    pub reserve: usize,
    pub tx_ring: u32,
    pub max_frame: usize,
    pub need_wakeup: bool,
    pub busy_poll: bool,
    pub segment_mtu: usize,
}

/// An AF_XDP port: one queue of one interface, sharing its worker's UMEM.
///
/// Made by [`super::open_worker_ports`]. Needs Linux 4.18 (AF_XDP), 5.10 (a UMEM
/// shared across interfaces) and 5.11 (busy-poll socket options).
pub struct XdpPort {
    // Hot fields first.
    id: PortId,
    fd: RawFd,
    fill_level: u32,
    tx_outstanding: u32,
    sizing: Sizing,
    zero_copy: bool,
    kicked: bool,
    /// Busy polling is configured and the socket has a NAPI id to drive: only then is a
    /// `recvfrom` on an idle loop worth its syscall (see [`sockopt::napi_id`]).
    busy_poll_live: bool,
    /// Service calls until the NAPI id is looked up again while busy polling is idle.
    napi_recheck: u32,
    tx_kicks: u64,
    kick_errors: u64,
    rx_pokes: u64,
    realigned: u64,
    scratch: [FrameDesc; BURST],
    /// Multi-buffer frames gathered and segmented; their segments wait here in order.
    segmenter: Segmenter,
    descs: Arc<[FrameDesc]>,
    umem: Umem,
    /// The fast path's program on this port (detached when the port is dropped).
    fastpath: Option<Attachment>,
    // Dropping `rings` deletes the socket (and libxdp then detaches its XDP program once
    // no socket of the interface is left); the NAPI settings are restored after that
    // (fields drop in declaration order).
    rings: Rings,
    napi: Option<Arc<NapiGuard>>,
    // Cold.
    ifname: String,
    ifindex: u32,
    attach: AttachMode,
    bind: BindMode,
    detail: String,
}

impl std::fmt::Debug for XdpPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XdpPort")
            .field("ifname", &self.ifname)
            .field("id", &self.id)
            .field("attach", &self.attach)
            .field("bind", &self.bind)
            .field("fill_level", &self.fill_level)
            .field("tx_outstanding", &self.tx_outstanding)
            .finish()
    }
}

impl XdpPort {
    pub(crate) fn new(b: Bound, umem: Umem, descs: Arc<[FrameDesc]>, sizing: Sizing) -> Self {
        let fd = std::os::fd::AsRawFd::as_raw_fd(b.rings.rx.fd());
        Self {
            id: b.id,
            fd,
            fill_level: 0,
            tx_outstanding: 0,
            sizing,
            zero_copy: b.bind == BindMode::ZeroCopy,
            kicked: false,
            busy_poll_live: sizing.busy_poll && sockopt::napi_id(fd) != 0,
            napi_recheck: NAPI_RECHECK_EVERY,
            tx_kicks: 0,
            kick_errors: 0,
            rx_pokes: 0,
            realigned: 0,
            scratch: [descs[0]; BURST],
            segmenter: Segmenter::new(sizing.segment_mtu),
            descs,
            umem,
            fastpath: b.fastpath,
            rings: b.rings,
            napi: b.napi,
            ifname: b.ifname,
            ifindex: b.ifindex,
            attach: b.attach,
            bind: b.bind,
            detail: b.detail,
        }
    }

    /// Add a warning to the port's description (the startup line).
    pub(crate) fn warn(&mut self, warning: &str) {
        if self.detail.contains(" warnings: ") {
            self.detail.push_str("; ");
        } else {
            self.detail.push_str(" warnings: ");
        }
        self.detail.push_str(warning);
    }

    /// The fast path attached to this port, if any.
    pub fn fastpath(&self) -> Option<&Arc<FastPath>> {
        self.fastpath.as_ref().map(Attachment::fastpath)
    }

    /// The interface name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index (in the namespace the port was opened in).
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The dataplane port id stamped on received packets.
    pub fn id(&self) -> PortId {
        self.id
    }

    /// How the XDP program is attached ([`AttachMode::Native`] or
    /// [`AttachMode::Generic`]).
    pub fn attach_mode(&self) -> AttachMode {
        self.attach
    }

    /// How the socket is bound ([`BindMode::ZeroCopy`] or [`BindMode::Copy`]).
    pub fn bind_mode(&self) -> BindMode {
        self.bind
    }

    /// The NAPI settings guard, when they were applied: shared, so that the adaptive
    /// policy's controller can switch them while the port runs.
    pub fn napi(&self) -> Option<Arc<NapiGuard>> {
        self.napi.clone()
    }

    /// Frames currently handed to the kernel for receiving (in the fill ring or held by
    /// the kernel until they arrive on the rx ring).
    pub fn fill_level(&self) -> u32 {
        self.fill_level
    }

    /// Frames handed to the kernel for transmission whose completion has not been
    /// reaped yet.
    pub fn tx_outstanding(&self) -> u32 {
        self.tx_outstanding
    }

    /// Frames this port owns (fill + tx + queued segments): what the pool is missing
    /// because of it.
    pub fn frames_held(&self) -> u32 {
        self.fill_level + self.tx_outstanding + self.segmenter.queued() as u32
    }

    /// Non-blocking `recvfrom` calls made to drive the rx path.
    pub fn rx_pokes(&self) -> u64 {
        self.rx_pokes
    }

    /// Received packets the kernel placed at an unexpected offset in their frame, which
    /// were moved to the pool's data offset (expected: 0).
    pub fn realigned(&self) -> u64 {
        self.realigned
    }

    /// Kicks (`sendto`) that failed with an unexpected error.
    pub fn kick_errors(&self) -> u64 {
        self.kick_errors
    }

    /// Wake the kernel's transmit path if it asked for it (or always, without
    /// need_wakeup).
    ///
    /// In copy mode the kernel transmits inside `sendto`, at most its per-call budget
    /// (32 descriptors unless `XDP_MAX_TX_SKB_BUDGET` raised it, Linux 6.17), so the
    /// kick is repeated while descriptors remain and the previous one made progress.
    #[inline]
    fn kick_tx(&mut self) {
        if self.sizing.need_wakeup && !self.rings.tx.needs_wakeup() {
            return;
        }
        let mut pending = u32::MAX;
        loop {
            if self.rings.tx.wakeup().is_err() {
                self.kick_errors += 1;
            }
            self.tx_kicks += 1;
            self.kicked = true;
            if self.zero_copy {
                break;
            }
            let now = self.sizing.tx_ring - self.rings.tx.nb_free_exact().min(self.sizing.tx_ring);
            if now == 0 || now >= pending {
                break;
            }
            pending = now;
        }
    }

    /// Top the fill ring up to its target from the pool, leaving the reserve.
    #[inline]
    fn refill(&mut self, pool: &mut FramePool) {
        while self.fill_level < self.sizing.fill_target {
            let room = (self.sizing.fill_target - self.fill_level) as usize;
            let spare = pool.free_count().saturating_sub(self.sizing.reserve);
            let k = room.min(spare).min(BURST);
            if k == 0 {
                break;
            }
            let mut k_got = 0;
            while k_got < k {
                let Some(frame) = pool.alloc() else { break };
                self.scratch[k_got] = self.descs[frame as usize];
                k_got += 1;
            }
            let k = k_got;
            if k == 0 {
                break;
            }
            // SAFETY: every descriptor names a frame of this port's UMEM that was just
            // taken from the pool, so neither userspace nor the kernel uses it now.
            let n = unsafe { self.rings.fill.produce(&self.scratch[..k]) };
            // The ring holds at most `fill_level` entries and is `fill_target` or more
            // long, so it has room; produce is all-or-nothing, give back on refusal.
            for d in &self.scratch[n..k] {
                pool.free(pool.frame_of(d.addr() as u64));
            }
            self.fill_level += n as u32;
            if n < k {
                break;
            }
        }
    }

    /// Hand one piece of a multi-buffer frame to the segmenter and its frame back to
    /// the pool.
    #[cold]
    fn gather(&mut self, pool: &mut FramePool, frame: u32, len: usize, last: bool) {
        self.segmenter.gather_piece(&pool.frame(frame)[..len]);
        pool.free(frame);
        if last {
            self.segmenter.finish(pool, self.id);
        }
    }

    /// Move a received packet found at `addr` (not the pool's data offset) to where the
    /// pool expects it. Returns the length kept.
    #[cold]
    fn realign(&mut self, pool: &mut FramePool, i: usize) -> usize {
        self.realigned += 1;
        let d = self.scratch[i];
        let frame = pool.frame_of(d.addr() as u64);
        let len = kept_len(
            d.addr() as u64,
            d.lengths().data(),
            pool.frame_size(),
            pool.capacity(),
        );
        let dst = pool.frame_mut(frame).as_mut_ptr();
        // SAFETY: `d` was just consumed from this port's rx ring, so it names a frame of
        // this UMEM that the kernel has handed back and nobody else is using.
        let src = unsafe { self.umem.data(&d) }.contents().as_ptr();
        // SAFETY: `src .. src + len` lies in the frame (len <= frame_end - addr) and
        // `dst .. dst + len` in its data area (len <= capacity); `copy` allows the two
        // ranges to overlap. No reference to either range is alive at this point.
        unsafe { std::ptr::copy(src, dst, len) };
        len
    }
}

impl Port for XdpPort {
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize {
        // Segments of an earlier super-frame (and what arrived behind them) go first.
        let mut added = self.segmenter.drain_into(out);
        if self.segmenter.has_queued() {
            return added;
        }
        let want = out.room().min(BURST);
        if want == 0 {
            return added;
        }
        // SAFETY: the rx ring belongs to a socket on this port's UMEM; the scratch
        // descriptors are only overwritten.
        let n = unsafe { self.rings.rx.consume(&mut self.scratch[..want]) };
        self.fill_level = self.fill_level.saturating_sub(n as u32);
        let cap = pool.capacity();
        for i in 0..n {
            let d = self.scratch[i];
            let addr = d.addr() as u64;
            let frame = pool.frame_of(addr);
            let len = if addr == pool.addr_of(frame) {
                d.lengths().data().min(cap)
            } else {
                self.realign(pool, i)
            };
            let more = d.has_more_frames();
            if more || self.segmenter.is_gathering() {
                // A piece of a multi-buffer frame: gathered, then segmented.
                self.gather(pool, frame, len, !more);
                continue;
            }
            let pkt = Pkt {
                frame,
                len: len as u16,
                port: self.id,
            };
            if self.segmenter.has_queued() {
                if let Err(p) = self.segmenter.enqueue(pkt) {
                    pool.free(p.frame);
                }
            } else {
                let _ = out.push(pkt);
                added += 1;
            }
        }
        added + self.segmenter.drain_into(out)
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
        let mut sent = 0;
        let mut produced = 0;
        while sent < pkts.len() {
            let chunk = &pkts[sent..pkts.len().min(sent + BURST)];
            let room = self.rings.tx.nb_free(chunk.len() as u32) as usize;
            let k = chunk.len().min(room);
            if k == 0 {
                break;
            }
            let mut m = 0;
            for p in &chunk[..k] {
                if p.len == 0 {
                    // The kernel would skip an empty descriptor as invalid and never
                    // complete it, losing the frame: accept it and free it here.
                    pool.free(p.frame);
                    continue;
                }
                self.segmenter.observe_tx(pool.bytes(p));
                let mut d = self.descs[p.frame as usize];
                // SAFETY: `d` names frame `p.frame` of this UMEM, owned by the caller (in
                // flight, in no ring), and `&mut FramePool` rules out other references into
                // the pool. `set_pos` only sets the descriptor's length (clamped to the
                // frame); it neither zeroes nor moves data.
                unsafe { self.umem.data_mut(&mut d) }
                    .cursor()
                    .set_pos(p.len as usize);
                self.scratch[m] = d;
                m += 1;
            }
            // SAFETY: the descriptors name caller-owned frames of this UMEM; from here
            // on they belong to the kernel until they come back on the completion ring.
            let n = unsafe { self.rings.tx.produce(&self.scratch[..m]) };
            // `nb_free` reported room for `k >= m` entries and this port is the ring's only
            // producer, so the all-or-nothing `produce` takes all of them.
            debug_assert_eq!(n, m, "tx ring refused descriptors it had room for");
            self.tx_outstanding += n as u32;
            produced += n;
            sent += k;
        }
        if produced > 0 {
            self.kick_tx();
        }
        sent
    }

    fn service(&mut self, pool: &mut FramePool) {
        // 1. Completed transmissions back to the pool.
        if self.tx_outstanding > 0 {
            loop {
                // SAFETY: the completion ring belongs to this port's UMEM context; the
                // scratch descriptors are only overwritten.
                let n = unsafe { self.rings.comp.consume(&mut self.scratch) };
                for d in &self.scratch[..n] {
                    pool.free(pool.frame_of(d.addr() as u64));
                }
                self.tx_outstanding = self.tx_outstanding.saturating_sub(n as u32);
                if n < BURST {
                    break;
                }
            }
            // 2. Copy mode transmits a bounded batch per sendto: if descriptors are
            // still waiting in the tx ring and nobody kicked this loop, kick again.
            if !self.kicked
                && self.tx_outstanding > 0
                && self.rings.tx.nb_free_exact() < self.sizing.tx_ring
            {
                self.kick_tx();
            }
        }
        // 3. Keep the fill ring full.
        self.refill(pool);
        // 4. Drive the rx NAPI when the kernel needs us to: busy polling (the NAPI runs
        // in our syscalls, when the socket has a NAPI id) or a fill ring asking for a
        // wakeup. A sendto on this socket already polled this loop; a non-empty rx ring
        // needs no help yet. Without a NAPI id (veth on Linux 6.13+) a busy-poll
        // recvfrom does nothing but cost a syscall per port and loop; the id is looked
        // up again now and then (older kernels set it with the first frame).
        if self.sizing.busy_poll && !self.busy_poll_live {
            self.napi_recheck -= 1;
            if self.napi_recheck == 0 {
                self.napi_recheck = NAPI_RECHECK_EVERY;
                self.busy_poll_live = sockopt::napi_id(self.fd) != 0;
            }
        }
        if !self.kicked
            && (self.busy_poll_live || (self.sizing.need_wakeup && self.rings.fill.needs_wakeup()))
            && self.rings.rx.nb_avail(1) == 0
        {
            self.rx_pokes += 1;
            if !sockopt::poke_rx(self.fd) {
                self.kick_errors += 1;
            }
        }
        self.kicked = false;
    }

    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.ifname.clone(),
            backend: "xdp",
            detail: self.detail.clone(),
            max_frame: self.sizing.max_frame,
        }
    }

    fn stats(&self) -> PortStats {
        let k = self.rings.rx.fd().xdp_statistics().unwrap_or_default();
        PortStats {
            rx_dropped: k.rx_dropped() + k.rx_ring_full(),
            invalid_descs: k.rx_invalid_descs() + k.tx_invalid_descs(),
            fill_empty: k.rx_fill_ring_empty_descs(),
            tx_kicks: self.tx_kicks,
            offload: self.segmenter.stats(),
            vhost: None,
        }
    }
}

/// Service calls between two lookups of a socket's NAPI id while it has none.
const NAPI_RECHECK_EVERY: u32 = 1 << 16;

/// How many bytes of a packet the kernel placed at UMEM address `addr` with length
/// `len` can be kept: what lies inside its frame and fits the pool's data area.
fn kept_len(addr: u64, len: usize, frame_size: usize, capacity: usize) -> usize {
    let in_frame = addr as usize % frame_size;
    len.min(frame_size - in_frame).min(capacity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdp_port_is_send() {
        fn assert_send<T: Send>() {}
        assert_send::<XdpPort>();
    }

    #[test]
    fn realigned_packets_never_leave_their_frame() {
        // At the expected offset: everything fits.
        assert_eq!(kept_len(2048 + 256, 1500, 2048, 1792), 1500);
        // Moved back into the headroom: bounded by the data area.
        assert_eq!(kept_len(2048 + 64, 1900, 2048, 1792), 1792);
        // Moved forward: bounded by the end of the frame.
        assert_eq!(kept_len(2048 + 1000, 1500, 2048, 1792), 1048);
    }
}
