//! vhost-user ports: a QEMU guest (or DPDK's `virtio_user`) attached through shared
//! memory, its virtio rings served by the worker that polls the port, without the
//! kernel in the frame path.
//!
//! The frontend connects to (or is connected to by) a Unix socket; rust-vmm's `vhost`
//! crate speaks the protocol, [`control`] answers it, [`device`] maps the guest's
//! memory and builds the rings (`virtio-queue`, which keeps their state), [`ring`] reads
//! a burst's available chains through host slices resolved once per burst, [`chain`]
//! walks, checks, reads and writes descriptor chains, [`used`] returns them a burst at a
//! time, [`virtio_net`] is the per-frame header and the feature promises. All of it
//! runs on the worker's thread: the control socket is checked between bursts (every
//! [`CONTROL_POLL`]), so there is no thread per queue and no lock on the frame path.
//!
//! Frames: the guest's transmit rings (queue 1, and 3, 5, 7 for more queue pairs) feed
//! [`Port::rx_burst`]: each chain is copied into a pool frame, its partial checksum
//! completed at the header's offsets, a TSO super-frame cut into segments of its
//! `gso_size`. [`Port::tx_burst`] copies frames into the guest's receive ring (queue 0,
//! whatever the pairs), behind a header that asks nothing of the guest; for a guest that negotiated `GUEST_TSO` (and `GUEST_CSUM`, which it
//! depends on), consecutive segments of one TCP flow go as one super-frame
//! ([`crate::offload::coalesce`]). A guest that stops reading has its frames refused
//! (the worker drops and counts them); the other ports are never held up.
//!
//! Invariants:
//! - every chain taken from a ring is returned to its used ring (with length 0 when
//!   refused), so a guest never loses buffers, whatever it wrote in them: a receive
//!   ring's at the end of `tx_burst`, a transmit ring's by the `service` call that ends
//!   the worker's loop (after their frames went out) or the next `rx_burst`;
//! - a frame taken from the pool is pushed to the caller's burst, queued in the
//!   segmenter, or freed; a frame handed to `tx_burst` and accepted is freed here;
//! - a lost connection resets the device; the port then waits for the next one
//!   (server: the frontend reconnects; client: the port retries every second).

pub mod chain;
pub mod control;
pub mod device;
pub mod ring;
pub mod used;
pub mod virtio_net;

use crate::frame::{FramePool, Pkt, PortId};
use crate::offload::coalesce::{coalesce, MAX_SEGMENTS};
use crate::offload::Segmenter;
use crate::port::{Burst, Port, PortInfo, PortStats, BURST};
use crate::time::Instant;
use chain::{ChainFault, Descriptors};
use control::{Control, MAX_PAIRS, QUEUES};
use device::{Device, RingFault};
use ring::{Avail, Memory};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use vhost::vhost_user::{BackendReqHandler, Error as VuError};
use virtio_net::{
    NetHeader, F_GUEST_CSUM, F_GUEST_TSO4, F_GUEST_TSO6, GSO_NONE, GSO_TCPV4, GSO_TCPV6, RX_HEADER,
};
use virtio_queue::QueueT;

/// How often the control socket is checked while a frame path runs.
pub const CONTROL_POLL: Duration = Duration::from_millis(1);

/// The clock is read on one call of [`Port::service`] in this many: a worker calls it
/// every loop (well under a microsecond when busy), and a clock read per port per loop
/// cost more than the frame path's ring accesses.
const CLOCK_EVERY: u32 = 16;

/// How long a client-mode port waits between connection attempts.
pub const RECONNECT: Duration = Duration::from_secs(1);

/// Queue pair 0's receive ring (the device writes): every frame for the guest goes
/// there.
const RXQ: usize = 0;

/// The transmit ring (the device reads) of queue pair `p`.
const fn txq(p: usize) -> usize {
    2 * p + 1
}

/// Which side of the socket the port is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The port listens at the path; the frontend connects (QEMU's default, DPDK's
    /// `virtio_user`).
    Server,
    /// The frontend listens (QEMU `server=on`); the port connects and reconnects.
    Client,
    /// No socket: the device was set up in process ([`VhostUserPort::in_process`]).
    InProcess,
}

/// What a vhost-user port has seen (cumulative).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VhostStats {
    /// Chains refused, by [`ChainFault`].
    pub chain_faults: [u64; ChainFault::COUNT],
    /// Ring faults (set-up that did not fit the memory, a runaway available index).
    pub ring_faults: u64,
    /// Frames for the guest refused because its receive ring had no buffer (it is not
    /// reading) or is not running.
    pub guest_not_reading: u64,
    /// Frames from the guest refused because the pool was empty.
    pub no_frame: u64,
    /// Partial checksums completed from the header.
    pub csum_completed: u64,
    /// Super-frames of a GSO type the device did not offer (UDP), dropped.
    pub gso_refused: u64,
    /// Frontends that connected.
    pub connects: u64,
    /// Connections lost or closed.
    pub disconnects: u64,
    /// Requests refused or failed.
    pub control_errors: u64,
    /// Interrupts sent to the guest.
    pub interrupts: u64,
    /// Super-frames written to a guest that takes them (`GUEST_TSO`), glued from
    /// consecutive segments.
    pub coalesced: u64,
    /// Segments those super-frames were glued from.
    pub coalesced_segments: u64,
}

struct Session {
    handler: BackendReqHandler<Mutex<Control>>,
    control: Arc<Mutex<Control>>,
    stream_fd: i32,
}

/// A vhost-user net device as a port.
pub struct VhostUserPort {
    id: PortId,
    path: PathBuf,
    role: Role,
    listener: Option<UnixListener>,
    session: Option<Session>,
    next_control: Instant,
    /// `service` calls left before the clock is read again.
    services_left: u32,
    /// The queue pair whose transmit ring `rx_burst` reads first (turn by turn).
    first_pair: usize,
    dev: Device,
    descs: Descriptors,
    /// Per ring, the chains consumed and not yet returned: (head, bytes written). The
    /// receive ring's go back at the end of each `tx_burst`; the transmit rings' in the
    /// worker's `service` call that ends the loop (or the next `rx_burst`, whichever
    /// comes first), once their frames have been sent on, so that returning them (a
    /// fence, a read of the driver's flags) is not on the path of the frames they held.
    used: [Vec<(u16, u32)>; QUEUES],
    /// A whole super-frame, read before it is segmented.
    big: Box<[u8]>,
    segmenter: Segmenter,
    stats: VhostStats,
    last_error: String,
}

impl std::fmt::Debug for VhostUserPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VhostUserPort")
            .field("id", &self.id)
            .field("path", &self.path)
            .field("role", &self.role)
            .field("connected", &self.session.is_some())
            .finish()
    }
}

/// Largest super-frame read from a guest: a 64 KiB IP packet behind an Ethernet header
/// with two VLAN tags.
const MAX_SUPER: usize = 65535 + 22;

/// Most descriptors one chain may have (the largest ring).
const MAX_CHAIN: usize = control::MAX_RING as usize;

impl VhostUserPort {
    /// A port with dataplane id `id` at socket `path`. As a server it listens at once
    /// (replacing a stale socket file); as a client it connects on its first service.
    /// Segments of the guest's super-frames are cut to IP packets of `mtu` bytes.
    pub fn new(id: PortId, path: &Path, role: Role, mtu: usize) -> std::io::Result<Self> {
        let listener = match role {
            Role::Server => {
                if path.exists() {
                    std::fs::remove_file(path)?;
                }
                let l = UnixListener::bind(path)?;
                l.set_nonblocking(true)?;
                Some(l)
            }
            Role::Client | Role::InProcess => None,
        };
        Ok(Self {
            id,
            path: path.to_path_buf(),
            role,
            listener,
            session: None,
            next_control: Instant::ZERO,
            services_left: 0,
            first_pair: 0,
            dev: Device::default(),
            descs: Descriptors::with_capacity(MAX_CHAIN),
            used: std::array::from_fn(|_| Vec::with_capacity(BURST * 4)),
            big: vec![0u8; MAX_SUPER].into_boxed_slice(),
            segmenter: Segmenter::new(mtu),
            stats: VhostStats::default(),
            last_error: String::new(),
        })
    }

    /// A port over a device set up in process ([`Device::in_process`]): no socket, the
    /// rings are the caller's (tests and benches drive them as a guest would).
    pub fn in_process(id: PortId, dev: Device, mtu: usize) -> Self {
        let mut p = Self::new(id, Path::new(""), Role::InProcess, mtu)
            .expect("no socket to open in process");
        p.dev = dev;
        p
    }

    /// The device (rings, memory, features).
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Counters.
    pub fn vhost_stats(&self) -> VhostStats {
        let mut s = self.stats.clone();
        s.ring_faults = self.dev.fault_count;
        s
    }

    /// Whether a frontend is connected and both rings run.
    pub fn running(&self) -> bool {
        (self.session.is_some() || self.role == Role::InProcess) && self.dev.running()
    }

    /// The last control error (a refused request, a memory table that did not map, a
    /// failed connection attempt); empty when there was none.
    pub fn last_error(&self) -> &str {
        &self.last_error
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Check the control socket now (the worker does it every [`CONTROL_POLL`]).
    pub fn poll_control(&mut self) {
        if self.role == Role::InProcess {
            return;
        }
        if self.session.is_none() {
            self.connect();
        }
        // A frontend's set-up is a few dozen requests: take what is there.
        for _ in 0..64 {
            let Some(s) = self.session.as_mut() else {
                return;
            };
            if !readable(s.stream_fd) {
                return;
            }
            if let Ok(mut c) = s.control.lock() {
                c.next_avail = self.dev.next_avail();
            }
            let r = s.handler.handle_request();
            let changes = s
                .control
                .lock()
                .map(|mut c| std::mem::take(&mut c.changes))
                .unwrap_or_default();
            for ch in changes {
                if let Err(e) = self.dev.apply(ch) {
                    self.stats.control_errors += 1;
                    self.last_error = e;
                }
            }
            match r {
                Ok(()) => {}
                // Refused requests; the connection stays. QEMU 7.2 sends
                // `SET_VRING_ENABLE` before it sets the features, which the protocol
                // crate refuses as `InactiveFeature` (rings run from their kick: see
                // `device`).
                Err(
                    e @ (VuError::InvalidParam
                    | VuError::InvalidOperation(_)
                    | VuError::InactiveFeature(_)
                    | VuError::InactiveOperation(_)),
                ) => {
                    self.stats.control_errors += 1;
                    self.last_error = e.to_string();
                }
                Err(e) => {
                    if !matches!(e, VuError::Disconnected | VuError::PartialMessage) {
                        self.stats.control_errors += 1;
                        self.last_error = e.to_string();
                    }
                    self.disconnect();
                }
            }
        }
    }

    fn connect(&mut self) {
        let stream = match (&self.listener, &self.role) {
            (Some(l), _) => match l.accept() {
                Ok((s, _)) => s,
                Err(_) => return,
            },
            (None, Role::Client) => match UnixStream::connect(&self.path) {
                Ok(s) => s,
                Err(e) => {
                    self.last_error = format!("connecting to {}: {e}", self.path.display());
                    self.next_control = Instant::now() + RECONNECT;
                    return;
                }
            },
            (None, _) => return,
        };
        // The worker reads a request only once it has arrived; a frontend that stalls
        // half-way through one is cut off after a second.
        if stream.set_nonblocking(false).is_err()
            || stream
                .set_read_timeout(Some(Duration::from_secs(1)))
                .is_err()
        {
            return;
        }
        let stream_fd = stream.as_raw_fd();
        let control = Arc::new(Mutex::new(Control::default()));
        self.session = Some(Session {
            handler: BackendReqHandler::from_stream(stream, control.clone()),
            control,
            stream_fd,
        });
        self.dev = Device::default();
        self.stats.connects += 1;
    }

    fn disconnect(&mut self) {
        self.session = None;
        self.dev = Device::default();
        self.stats.disconnects += 1;
    }

    /// Take up to a burst of the transmit ring's chains into frames (or the
    /// segmenter): the available index is read once, each chain is returned to the
    /// guest whether it was taken or refused.
    fn take_chains(&mut self, qi: usize, pool: &mut FramePool, out: &mut Burst) {
        // The ring first: a pair the guest does not use costs no memory handle.
        let Some(q) = self.dev.rings[qi].queue.as_ref() else {
            return;
        };
        let Some(mem) = self.dev.memory() else {
            return;
        };
        let mut avail = match Avail::open(&mem, q) {
            Ok(Some(a)) => a,
            Ok(None) => return,
            Err(f) => return self.dev.break_ring(qi, f),
        };
        let hlen = virtio_net::header_len(self.dev.features);
        let mut guest = Memory::new(&mem);
        // The guest wrote these buffers on its core: start their misses together.
        avail.prefetch_ahead(&mut guest, BURST, false);
        // At most a burst's worth of chains per call, whatever they hold: a guest that
        // fills its ring with refused chains costs one bounded burst at a time (and the
        // used list never outgrows its capacity).
        for _ in 0..BURST {
            if out.is_full() || self.segmenter.has_queued() {
                break;
            }
            let Some(head) = avail.pop() else {
                break;
            };
            if let Err(f) = self.read_frame(&mut guest, &avail, head, hlen, pool, out) {
                self.stats.chain_faults[f as usize] += 1;
            }
            self.used[qi].push((head, 0));
        }
        if let Some(q) = self.dev.rings[qi].queue.as_mut() {
            q.set_next_avail(avail.next_avail());
        }
    }

    fn read_frame<'m>(
        &mut self,
        mem: &mut Memory<'m>,
        avail: &Avail<'m>,
        head: u16,
        hlen: usize,
        pool: &mut FramePool,
        out: &mut Burst,
    ) -> Result<(), ChainFault> {
        let mut chain = self
            .descs
            .gather(mem, avail.table, avail.size(), head, false)?;
        if chain.total() < hlen + 14 {
            return Err(ChainFault::Short);
        }
        let mut h = [0u8; 12];
        chain.read(0, &mut h[..hlen])?;
        let hdr = NetHeader::parse(&h[..hlen]).ok_or(ChainFault::Short)?;
        let len = chain.total() - hlen;
        if hdr.gso() != GSO_NONE {
            if !matches!(hdr.gso(), GSO_TCPV4 | GSO_TCPV6) {
                self.stats.gso_refused += 1;
                return Ok(());
            }
            if len > self.big.len() {
                return Err(ChainFault::TooLong);
            }
            chain.read(hlen, &mut self.big[..len])?;
            // gso_size is the payload of a segment (VIRTIO 1.2 5.1.6.2: the MSS "beyond
            // that header", TCP options included in the header), while the segmenter
            // takes an MSS the TCP options still come out of: add them back, or every
            // segment carries 12 bytes (timestamps) less than the guest asked for.
            let mss = (hdr.gso_size > 0)
                .then(|| hdr.gso_size.saturating_add(tcp_options(&self.big[..len])));
            // The segmenter writes every segment's checksums itself.
            self.segmenter.gather_piece(&self.big[..len]);
            self.segmenter.finish_with_mss(pool, self.id, mss);
            self.segmenter.drain_into(out);
            return Ok(());
        }
        if len > pool.capacity() || len > u16::MAX as usize {
            return Err(ChainFault::TooLong);
        }
        let Some(frame) = pool.alloc() else {
            self.stats.no_frame += 1;
            return Ok(());
        };
        let buf = &mut pool.frame_mut(frame)[..len];
        if let Err(f) = chain.read(hlen, buf) {
            pool.free(frame);
            return Err(f);
        }
        if hdr.needs_csum() {
            if virtio_net::complete_at(buf, hdr.csum_start, hdr.csum_offset) {
                self.stats.csum_completed += 1;
            } else {
                pool.free(frame);
                return Err(ChainFault::Short);
            }
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
        } else if let Err(p) = out.push(pkt) {
            pool.free(p.frame);
        }
        Ok(())
    }

    /// Return the chains taken from every transmit ring.
    fn return_transmitted(&mut self) {
        for p in 0..MAX_PAIRS {
            self.complete(txq(p));
        }
    }

    /// Return the burst's chains to ring `q`'s used ring and interrupt the guest if it
    /// asked for it.
    fn complete(&mut self, qi: usize) {
        if self.used[qi].is_empty() {
            return;
        }
        let Some(mem) = self.dev.memory() else {
            self.used[qi].clear();
            return;
        };
        let mem = &*mem;
        let Some(q) = self.dev.rings[qi].queue.as_mut() else {
            self.used[qi].clear();
            return;
        };
        let published = used::publish(mem, q, &self.used[qi]);
        self.used[qi].clear();
        match published {
            Err(used::Unwritable) => self.dev.break_ring(qi, RingFault::Invalid),
            Ok(true) => {
                self.dev.rings[qi].signal();
                self.stats.interrupts += 1;
            }
            Ok(false) => {}
        }
    }

    /// Write `pkts` into the receive ring's chains, one each, while the guest has
    /// chains available (the index read once); returns how many were written or
    /// refused (each refused chain is returned to the guest empty), the rest not
    /// touched. Every frame counted is freed.
    fn give_frames(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
        let Some(mem) = self.dev.memory() else {
            return 0;
        };
        let Some(q) = self.dev.rings[RXQ].queue.as_ref() else {
            return 0;
        };
        let mut avail = match Avail::open(&mem, q) {
            Ok(Some(a)) => a,
            Ok(None) => return 0,
            Err(f) => {
                self.dev.break_ring(RXQ, f);
                return 0;
            }
        };
        let hlen = virtio_net::header_len(self.dev.features);
        // Super-frames only to a driver that takes partial checksums too (VIRTIO 1.2
        // 5.1.3.1: GUEST_TSO4/6 require GUEST_CSUM).
        let tso = match self.dev.features & F_GUEST_CSUM {
            0 => 0,
            _ => self.dev.features & (F_GUEST_TSO4 | F_GUEST_TSO6),
        };
        let mut guest = Memory::new(&mem);
        // The guest's receive buffers were last read on its core: start their misses.
        avail.prefetch_ahead(&mut guest, pkts.len(), true);
        let mut sent = 0;
        while sent < pkts.len() {
            let Some(head) = avail.pop() else {
                break;
            };
            let rest = &pkts[sent..];
            let mut taken = 1;
            let written = self
                .descs
                .gather(&mut guest, avail.table, avail.size(), head, true)
                .and_then(|mut chain| {
                    let room = chain.total().saturating_sub(hlen);
                    let run = (tso != 0)
                        .then(|| coalesce(|k| pool.bytes(&rest[k]), rest.len(), room))
                        .flatten()
                        .filter(|c| tso & if c.v4 { F_GUEST_TSO4 } else { F_GUEST_TSO6 } != 0);
                    let Some(c) = run else {
                        return chain.write(&[&RX_HEADER[..hlen], pool.bytes(&rest[0])]);
                    };
                    taken = c.segments;
                    let header = virtio_net::gso_header(&c);
                    let mut parts: [&[u8]; MAX_SEGMENTS + 2] = [&[]; MAX_SEGMENTS + 2];
                    parts[0] = &header[..hlen];
                    parts[1] = c.headers();
                    for (k, p) in rest[..taken].iter().enumerate() {
                        parts[k + 2] = c.payload(k, pool.bytes(p));
                    }
                    chain.write(&parts[..taken + 2])
                });
            match written {
                Ok(n) => {
                    self.used[RXQ].push((head, n as u32));
                    if taken > 1 {
                        self.stats.coalesced += 1;
                        self.stats.coalesced_segments += taken as u64;
                    }
                }
                Err(f) => {
                    self.stats.chain_faults[f as usize] += 1;
                    self.used[RXQ].push((head, 0));
                }
            }
            for p in &rest[..taken] {
                pool.free(p.frame);
            }
            sent += taken;
        }
        if let Some(q) = self.dev.rings[RXQ].queue.as_mut() {
            q.set_next_avail(avail.next_avail());
        }
        sent
    }
}

impl Port for VhostUserPort {
    fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize {
        // Chains of a burst `service` did not end (none in the worker's loop).
        self.return_transmitted();
        let before = out.len();
        self.segmenter.drain_into(out);
        // Each running pair's transmit ring, the first one turn by turn, while the
        // burst has room.
        let first = self.first_pair;
        self.first_pair = (first + 1) % MAX_PAIRS;
        for k in 0..MAX_PAIRS {
            if out.is_full() || self.segmenter.has_queued() {
                break;
            }
            self.take_chains(txq((first + k) % MAX_PAIRS), pool, out);
        }
        out.len() - before
    }

    fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
        let sent = self.give_frames(pool, pkts);
        self.stats.guest_not_reading += (pkts.len() - sent) as u64;
        self.complete(RXQ);
        sent
    }

    fn service(&mut self, _pool: &mut FramePool) {
        self.return_transmitted();
        if self.services_left > 0 {
            self.services_left -= 1;
            return;
        }
        self.services_left = CLOCK_EVERY - 1;
        let now = Instant::now();
        if now < self.next_control {
            return;
        }
        self.next_control = now + CONTROL_POLL;
        self.poll_control();
    }

    fn release_frames(&mut self, pool: &mut FramePool) {
        self.segmenter.release(pool);
    }

    fn finishes_checksums(&self) -> bool {
        true
    }

    fn info(&self) -> PortInfo {
        let mut state = match (self.session.is_some(), self.running()) {
            (_, true) => format!(
                "running, features {:#x}, {} queue pair(s)",
                self.dev.features,
                self.dev.pairs_running()
            ),
            (false, false) => "waiting for the frontend".to_string(),
            (true, false) => "connected, rings not running".to_string(),
        };
        if !self.running() && !self.last_error.is_empty() {
            state.push_str(&format!(" (last error: {})", self.last_error));
        }
        let role = match self.role {
            Role::Server => "server",
            Role::Client => "client",
            Role::InProcess => "in process",
        };
        PortInfo {
            name: self.path.display().to_string(),
            backend: "vhost-user",
            detail: format!("{role}, {state}"),
            max_frame: 1514,
        }
    }

    fn stats(&self) -> PortStats {
        let v = self.vhost_stats();
        // Frames the guest did not take are the worker's `tx_full` drops already.
        PortStats {
            invalid_descs: v.chain_faults.iter().sum(),
            offload: self.segmenter.stats(),
            vhost: Some(v),
            ..PortStats::default()
        }
    }
}

impl Drop for VhostUserPort {
    fn drop(&mut self) {
        if self.role == Role::Server {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Bytes of TCP options in a super-frame's TCP header, found as the segmenter finds it
/// (up to two VLAN tags, IPv4, or IPv6 with the TCP header right after the fixed one);
/// 0 when there is none to be found (the segmenter then refuses the frame anyway).
fn tcp_options(f: &[u8]) -> u16 {
    let be16 = |at: usize| f.get(at..at + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let mut l3 = 14;
    let mut ethertype = be16(12);
    for _ in 0..2 {
        if matches!(ethertype, Some(0x8100 | 0x88a8)) {
            ethertype = be16(l3 + 2);
            l3 += 4;
        }
    }
    let l4 = match ethertype {
        Some(0x0800) => f.get(l3).map(|&b| l3 + usize::from(b & 0x0f) * 4),
        Some(0x86dd) => Some(l3 + 40),
        _ => None,
    };
    l4.and_then(|l4| f.get(l4 + 12))
        .map_or(0, |&b| (u16::from(b >> 4) * 4).saturating_sub(20))
}

/// Whether `fd` has data (or a hang-up) to read, without waiting.
fn readable(fd: i32) -> bool {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd, timeout 0 (no wait).
    let n = unsafe { libc::poll(&mut p, 1, 0) };
    n > 0 && p.revents != 0
}
