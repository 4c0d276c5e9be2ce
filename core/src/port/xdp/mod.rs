//! The `xdp` backend: AF_XDP sockets (via xsk-rs/libxdp) as [`Port`]s.
//!
//! Layers, bottom up:
//!
//! - `umem`: one xsk-rs `Umem` per worker, shared by all the ports the
//!   worker serves (`XDP_SHARED_UMEM`), with the [`FramePool`] laid over its memory and
//!   the table of xsk-rs frame descriptors indexed by frame number. Forwarding from one
//!   port to another therefore moves a descriptor, never bytes.
//! - `socket`: [`XdpPort`], one socket on one queue of one interface, with its own
//!   rx/tx rings and its own fill/completion ring pair.
//! - `sockopt`, `netlink`, `napi`: busy-poll socket options and the bind-mode query,
//!   the XDP attachment as rtnetlink reports it, and the interface NAPI knobs
//!   ([`NapiGuard`]) applied while the ports live and restored after; `napi_state`: the
//!   knobs' originals on disk, so that a killed run's next start restores them.
//! - `link`: whether a port's interface is there and up ([`LinkProbe`]), and whether
//!   someone else's XDP program is on it ([`attached_program`]), for the control thread.
//! - [`XdpError`]: every setup failure as one sentence telling the user what to do.
//!
//! Kernel requirements: AF_XDP needs Linux 4.18, one UMEM shared across interfaces 5.10,
//! the busy-poll socket options (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL_BUDGET`) 5.11,
//! multi-buffer receive 6.6 (older kernels: the ports open without it, with a warning).
//! On veth, AF_XDP runs in copy mode (native XDP attach works, zero-copy does not).
//!
//! # For the engine
//!
//! - Frames: a worker's pool has `frames_per_port` frames per port. Each port keeps
//!   `min(fill_ring, frames_per_port / 2)` of them in its fill ring (the kernel's receive
//!   buffers) and never takes the pool below `2 * BURST` frames per port, which stay
//!   for floods, replies and copies. Frames handed to `tx_burst` come back to the pool
//!   in a later `service` call, once the kernel completes them.
//! - Call [`Port::service`] on every port once per loop, after the transmit bursts:
//!   it reaps completions, refills the fill ring, re-kicks a transmit the kernel did not
//!   finish, and drives the receive side when the kernel needs it.
//! - Syscalls per loop and port: none on the rx path in copy mode without busy polling;
//!   with busy polling (the default), one non-blocking `recvfrom` per loop when the rx
//!   ring is empty (that call runs the NAPI that fills it, `budget` packets at most, and
//!   is skipped when a `sendto` on the same socket already polled this loop). On tx, in
//!   copy mode, one `sendto` per `tx_burst` that accepted frames, per 128 frames
//!   (`XDP_MAX_TX_SKB_BUDGET`, Linux 6.17; 32 before): the copy-mode transmit path runs
//!   only inside `sendto`. In zero-copy mode only when the kernel sets need_wakeup.
//! - Multi-buffer (`XDP_USE_SG`, on by default): a frame longer than one UMEM frame (a tap
//!   guest's TSO super-frame) arrives in several; the port gathers and segments it
//!   ([`crate::offload::Segmenter`]) into pool frames, so one receive may hand out packets
//!   that used no fill frame of their own. The pieces go back to the pool at once.
//! - Teardown: drop the ports, then the pool. libxdp reuses the UMEM's own socket for the
//!   first port, so that port's queue is released only when the pool (which keeps the
//!   UMEM alive) is dropped as well.
//!
//! # Examples
//!
//! ```no_run
//! use vnet_core::port::xdp::{open_worker_ports, XdpConfig};
//! use vnet_core::port::{Burst, Port};
//!
//! let ifaces = [("vm1".to_string(), 0), ("vm2".to_string(), 1)];
//! let (mut pool, mut ports) = open_worker_ports(&ifaces, &XdpConfig::default())?;
//! let mut burst = Burst::new();
//! loop {
//!     ports[0].rx_burst(&mut pool, &mut burst);
//!     let sent = ports[1].tx_burst(&mut pool, burst.as_slice());
//!     for p in &burst.as_slice()[sent..] {
//!         pool.free(p.frame);
//!     }
//!     burst.clear();
//!     for port in &mut ports {
//!         port.service(&mut pool);
//!     }
//! #   break;
//! }
//! # Ok::<(), vnet_core::port::xdp::XdpError>(())
//! ```

mod error;
mod fastpath;
mod link;
mod napi;
mod napi_policy;
mod napi_state;
mod netlink;
mod quiet;
mod socket;
mod sockopt;
mod umem;
mod xdp_features;

pub use error::XdpError;
pub use fastpath::FastPath;
pub use link::{attached_program, detach_program, LinkProbe, LinkStatus};
pub use napi::{NapiGuard, NapiSettings, DEFAULT_DEFER_HARD_IRQS, DEFAULT_GRO_FLUSH_TIMEOUT_NS};
pub use napi_policy::{AutoNapi, AutoState, NapiPolicy};
pub use napi_state::{netns_state_dir, DEFAULT_STATE_DIR};
pub use socket::XdpPort;
pub use xdp_features::{xdp_features, XdpFeatures};

use crate::frame::{FramePool, PortId};
use crate::port::{Port, BURST};
use fastpath::Attachment;
use netlink::RtNetlink;
use socket::{Bound, Rings, Sizing};
use std::ffi::CString;
use std::fmt;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};
use xsk_rs::config::{BindFlags, Interface, LibxdpFlags, QueueSize, SocketConfig, XdpFlags};
use xsk_rs::{FrameDesc, Socket, Umem};

/// How the XDP program that steers packets to the sockets is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// Native (driver) mode if the driver supports it, generic otherwise.
    #[default]
    Auto,
    /// Native (driver) mode only (`XDP_FLAGS_DRV_MODE`).
    Native,
    /// Generic (skb) mode only (`XDP_FLAGS_SKB_MODE`), works on any interface.
    Generic,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Auto => "auto",
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
        })
    }
}

/// How the AF_XDP socket is bound to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BindMode {
    /// Zero-copy if the driver can, copy otherwise (the kernel decides at bind time).
    #[default]
    Auto,
    /// Copy mode only (`XDP_COPY`): the kernel copies between its buffers and the UMEM.
    Copy,
    /// Zero-copy only (`XDP_ZEROCOPY`): the driver DMAs into the UMEM.
    ZeroCopy,
}

impl fmt::Display for BindMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BindMode::Auto => "auto",
            BindMode::Copy => "copy",
            BindMode::ZeroCopy => "zerocopy",
        })
    }
}

/// Busy-poll socket options (Linux 5.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyPoll {
    /// `SO_BUSY_POLL`: microseconds a blocking read may busy-poll (any non-zero value
    /// enables busy polling of the socket's NAPI from `recvfrom`/`sendto`).
    pub usecs: u32,
    /// `SO_BUSY_POLL_BUDGET`: packets one busy-poll round may process.
    pub budget: u32,
    /// `SO_PREFER_BUSY_POLL`: keep the NAPI in busy-poll mode instead of softirqs.
    pub prefer: bool,
}

impl Default for BusyPoll {
    fn default() -> Self {
        Self {
            usecs: 20,
            budget: BURST as u32,
            prefer: true,
        }
    }
}

/// Settings of the AF_XDP ports of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// XDP program attach mode.
    pub attach: AttachMode,
    /// Socket bind mode.
    pub bind: BindMode,
    /// UMEM frame size: 2048 or 4096 (a power of two no larger than the page size).
    pub frame_size: u32,
    /// Frames in the worker's UMEM per port it serves.
    pub frames_per_port: u32,
    /// Rx ring entries (power of two).
    pub rx_ring: u32,
    /// Tx ring entries (power of two).
    pub tx_ring: u32,
    /// Fill ring entries per port (power of two).
    pub fill_ring: u32,
    /// Completion ring entries per port (power of two).
    pub comp_ring: u32,
    /// Bind with `XDP_USE_NEED_WAKEUP`, so the kernel says when it needs a syscall.
    pub need_wakeup: bool,
    /// Busy-poll socket options; `None` leaves them unset.
    pub busy_poll: Option<BusyPoll>,
    /// The interfaces' NAPI deferral (`napi_defer_hard_irqs`, `gro_flush_timeout`, and
    /// `threaded` off) while the ports live; `None` leaves the interfaces as they are.
    /// The ports apply the policy's initial settings; switching them with the load
    /// ([`NapiPolicy::Auto`]) is the caller's, through [`XdpPort::napi`].
    pub napi: Option<NapiPolicy>,
    /// Queue id bound on every interface.
    pub queue_id: u32,
    /// Bind with `XDP_USE_SG` (Linux 6.6), so that a frame longer than one UMEM frame (a
    /// tap guest's TSO super-frame) arrives in several and is segmented in software
    /// instead of being dropped by the kernel. Falls back to without, with a warning.
    pub multi_buffer: bool,
    /// Largest IP packet a segment of a super-frame may be; 0: the smallest MTU of the
    /// worker's interfaces.
    pub segment_mtu: u32,
    /// Where each interface's NAPI originals are recorded before they are changed
    /// (`DIR/netns-INODE/IF.state`, see [`NapiGuard`]); `None`: nowhere, and a killed
    /// process leaves its settings behind.
    pub napi_state_dir: Option<std::path::PathBuf>,
    /// The fast path (`run --offload xdp`): its program is attached to every port instead
    /// of libxdp's default one, and each socket is entered in its `fp_xsks` map; `None`:
    /// libxdp's default program.
    pub fastpath: Option<SharedFastPath>,
}

/// A [`FastPath`] shared by every worker's ports (equal when it is the same one).
#[derive(Debug, Clone)]
pub struct SharedFastPath(pub Arc<FastPath>);

impl PartialEq for SharedFastPath {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for SharedFastPath {}

impl Default for XdpConfig {
    fn default() -> Self {
        Self {
            attach: AttachMode::Auto,
            bind: BindMode::Auto,
            frame_size: 2048,
            frames_per_port: 4096,
            rx_ring: 2048,
            tx_ring: 2048,
            fill_ring: 2048,
            comp_ring: 2048,
            need_wakeup: true,
            busy_poll: Some(BusyPoll::default()),
            napi: Some(NapiPolicy::default()),
            queue_id: 0,
            multi_buffer: true,
            segment_mtu: 0,
            napi_state_dir: Some(DEFAULT_STATE_DIR.into()),
            fastpath: None,
        }
    }
}

impl XdpConfig {
    /// Frames each port keeps in its fill ring.
    pub fn fill_target(&self) -> u32 {
        self.fill_ring.min(self.frames_per_port / 2)
    }

    /// Check the values the kernel would refuse.
    ///
    /// # Errors
    /// [`XdpError::InvalidConfig`] naming the bad value.
    pub fn validate(&self) -> Result<(), XdpError> {
        umem::umem_config(self)?;
        for (name, v) in [("rx_ring", self.rx_ring), ("tx_ring", self.tx_ring)] {
            if !v.is_power_of_two() {
                return Err(XdpError::InvalidConfig {
                    reason: format!("{name} must be a power of two, got {v}"),
                });
            }
        }
        let min = 4 * BURST as u32;
        if self.frames_per_port < min {
            return Err(XdpError::InvalidConfig {
                reason: format!(
                    "frames_per_port must be at least {min}, got {}",
                    self.frames_per_port
                ),
            });
        }
        Ok(())
    }
}

/// Index of `ifname` in the calling thread's network namespace.
fn ifindex_of(ifname: &str) -> Result<u32, XdpError> {
    let missing = || XdpError::NoInterface {
        ifname: ifname.to_string(),
    };
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(missing());
    }
    let c = CString::new(ifname).map_err(|_| missing())?;
    // SAFETY: `c` is a NUL-terminated string alive for the call; if_nametoindex only
    // reads it and returns 0 when there is no such interface.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        return Err(missing());
    }
    Ok(index)
}

/// Whether a failed native attach may be retried in generic mode.
fn may_fall_back(err: &io::Error) -> bool {
    !matches!(
        err.raw_os_error(),
        Some(
            libc::EPERM
                | libc::EACCES
                | libc::EBUSY
                | libc::EEXIST
                | libc::ENODEV
                | libc::ENXIO
                | libc::EAFNOSUPPORT
                | libc::ENOMEM
                | libc::ENOBUFS
        )
    )
}

fn queue_size(name: &str, v: u32) -> Result<QueueSize, XdpError> {
    QueueSize::new(v).map_err(|_| XdpError::InvalidConfig {
        reason: format!("{name} must be a power of two, got {v}"),
    })
}

/// Create and bind one socket of `umem` on `ifname`.
fn bind_socket(
    umem: &Umem,
    (ifname, id, ifindex): (&str, PortId, u32),
    cfg: &XdpConfig,
    attach: AttachMode,
    bind: BindMode,
) -> Result<Result<(Rings, Option<Attachment>), io::Error>, XdpError> {
    let mut flags = BindFlags::empty();
    if cfg.need_wakeup {
        flags |= BindFlags::XDP_USE_NEED_WAKEUP;
    }
    if cfg.multi_buffer {
        flags |= BindFlags::XDP_USE_SG;
    }
    match bind {
        BindMode::Auto => {}
        BindMode::Copy => flags |= BindFlags::XDP_COPY,
        BindMode::ZeroCopy => flags |= BindFlags::XDP_ZEROCOPY,
    }
    let xdp_flags = match attach {
        AttachMode::Auto => XdpFlags::empty(),
        AttachMode::Native => XdpFlags::XDP_FLAGS_DRV_MODE,
        AttachMode::Generic => XdpFlags::XDP_FLAGS_SKB_MODE,
    };
    // With the fast path, its program replaces libxdp's: attached first, the socket
    // entered in its map once bound.
    let attachment = match &cfg.fastpath {
        Some(fp) => match Attachment::attach(&fp.0, id, ifindex, attach != AttachMode::Generic) {
            Ok(a) => Some(a),
            Err(e) => return Ok(Err(e)),
        },
        None => None,
    };
    let libxdp_flags = if attachment.is_some() {
        LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD
    } else {
        LibxdpFlags::empty()
    };
    let config = SocketConfig::builder()
        .rx_queue_size(queue_size("rx_ring", cfg.rx_ring)?)
        .tx_queue_size(queue_size("tx_ring", cfg.tx_ring)?)
        .libxdp_flags(libxdp_flags)
        .xdp_flags(xdp_flags)
        .bind_flags(flags)
        .build();
    let iface: Interface = ifname.parse().map_err(|_| XdpError::NoInterface {
        ifname: ifname.to_string(),
    })?;
    // SAFETY: xsk-rs requires XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD only when this UMEM
    // already has a socket on the same (interface, queue) pair; `open_worker_ports`
    // rejects duplicate interface names and binds one queue per interface, so every
    // pair is new to this UMEM.
    let created = unsafe { Socket::new(config, umem, &iface, cfg.queue_id) };
    Ok(match created {
        Ok((tx, rx, Some((fill, comp)))) => {
            let rings = Rings { tx, rx, fill, comp };
            match &attachment {
                Some(a) => a
                    .enter(rings.rx.fd().as_raw_fd())
                    .map(|()| (rings, attachment)),
                None => Ok((rings, None)),
            }
        }
        Ok((_, _, None)) => Err(io::Error::other(
            "xsk-rs returned no fill/completion rings for a new interface queue",
        )),
        Err(e) => Err(umem::os_error(&e)),
    })
}

/// How long a bind refused with EBUSY is retried: a queue released by a port that was
/// just dropped (or a process that just exited) is freed by a kernel work item a few
/// milliseconds later.
const BUSY_RETRY: Duration = Duration::from_millis(500);

/// [`bind_socket`], retrying EBUSY for up to [`BUSY_RETRY`].
fn bind_socket_retrying(
    umem: &Umem,
    port: (&str, PortId, u32),
    cfg: &XdpConfig,
    attach: AttachMode,
    bind: BindMode,
) -> Result<Result<(Rings, Option<Attachment>), io::Error>, XdpError> {
    let deadline = Instant::now() + BUSY_RETRY;
    loop {
        match bind_socket(umem, port, cfg, attach, bind)? {
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return Ok(done),
        }
    }
}

/// Open one AF_XDP port per interface for one worker, all sharing one UMEM, and the
/// [`FramePool`] over that UMEM.
///
/// `ifaces` lists (interface name, dataplane port id); the ports come back in the same
/// order, each with its fill ring already stocked. Interfaces are looked up in the
/// calling thread's network namespace. See the [module docs](self) for the frame budget
/// and how to drive the ports.
///
/// Requires Linux 4.18 for AF_XDP, 5.10 for a UMEM shared across interfaces (more than
/// one interface), 5.11 for the busy-poll options (older kernels: a warning in
/// [`Port::info`], not an error), and root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW; plus
/// CAP_SYS_ADMIN for the NAPI settings when called from a thread that entered another
/// network namespace).
///
/// # Errors
/// [`XdpError::NoInterface`] for a name that does not exist (checked before anything is
/// created), [`XdpError::DuplicateInterface`], [`XdpError::InvalidConfig`],
/// [`XdpError::NotPermitted`] without privileges, [`XdpError::NoAfXdp`] on kernels
/// without AF_XDP, [`XdpError::AlreadyBound`] when another program or socket holds the
/// queue, [`XdpError::OutOfMemory`] when the UMEM cannot be locked,
/// [`XdpError::NativeUnsupported`] / [`XdpError::ZeroCopyUnsupported`] when a forced
/// mode is unavailable, [`XdpError::Os`] otherwise. Nothing stays attached or bound
/// after an error. A queue found busy is retried for half a second first, since the
/// kernel frees the queue of a just-closed socket from a work item.
pub fn open_worker_ports(
    ifaces: &[(String, PortId)],
    cfg: &XdpConfig,
) -> Result<(FramePool, Vec<XdpPort>), XdpError> {
    quiet::quieten();
    cfg.validate()?;
    if ifaces.is_empty() {
        return Err(XdpError::InvalidConfig {
            reason: "a worker needs at least one interface".to_string(),
        });
    }
    for (i, (name, _)) in ifaces.iter().enumerate() {
        if ifaces[..i].iter().any(|(n, _)| n == name) {
            return Err(XdpError::DuplicateInterface {
                ifname: name.clone(),
            });
        }
    }
    let indexes = ifaces
        .iter()
        .map(|(name, _)| ifindex_of(name))
        .collect::<Result<Vec<_>, _>>()?;
    let segment_mtu = match cfg.segment_mtu {
        0 => smallest_mtu(&indexes),
        m => m,
    };
    let opened = match open_with(ifaces, &indexes, cfg, cfg.bind, segment_mtu) {
        // The first socket bound zero-copy and a later interface cannot follow (shared
        // UMEM sockets inherit the first one's mode): everyone in copy mode then.
        Err(XdpError::ZeroCopyUnsupported { .. }) if cfg.bind == BindMode::Auto => {
            open_with(ifaces, &indexes, cfg, BindMode::Copy, segment_mtu)
        }
        other => other,
    };
    match opened {
        // A kernel before 6.6 (EINVAL) or a zero-copy driver without multi-buffer
        // (EOPNOTSUPP) refuses XDP_USE_SG: carry on without, and say what it costs.
        Err(e) if cfg.multi_buffer && may_retry_without_sg(&e) => {
            let plain = XdpConfig {
                multi_buffer: false,
                ..cfg.clone()
            };
            let (pool, mut ports) = open_worker_ports(ifaces, &plain)?;
            for p in &mut ports {
                p.warn(&format!(
                    "multi-buffer receive refused ({e}); frames longer than {} bytes \
                     (TSO super-frames from a tap guest) are dropped by the kernel: turn \
                     TSO off in the guest (ethtool -K eth0 tso off, or QEMU \
                     host_tso4=off,host_tso6=off)",
                    pool.capacity()
                ));
            }
            Ok((pool, ports))
        }
        other => other,
    }
}

/// The MTU of an interface of the calling thread's network namespace.
///
/// # Errors
/// [`XdpError::NoInterface`] when there is no such interface; [`XdpError::Os`] when
/// rtnetlink cannot be asked.
pub fn interface_mtu(ifname: &str) -> Result<u32, XdpError> {
    let index = ifindex_of(ifname)?;
    let os = |e: io::Error| XdpError::from_os("read the MTU of", ifname, 0, (0, 0), e);
    let mut nl = RtNetlink::open().map_err(os)?;
    let link = nl.link(index).map_err(os)?;
    Ok(link.mtu.unwrap_or(1500))
}

/// Put back the NAPI settings a killed run left on `ifname`, from its state file under
/// `state_dir` (see [`NapiGuard`]), and remove the file. Returns what was restored
/// (`knob=value ...`), `None` when there was no file for this interface.
///
/// # Errors
/// A sentence when the interface does not exist, its sysfs cannot be reached or a knob
/// cannot be written (the file is kept then).
pub fn restore_napi_leftover(
    ifname: &str,
    state_dir: &std::path::Path,
) -> Result<Option<String>, String> {
    let index = ifindex_of(ifname).map_err(|e| e.to_string())?;
    let mac = RtNetlink::open()
        .and_then(|mut nl| nl.link(index))
        .ok()
        .and_then(|l| l.mac);
    NapiGuard::restore_leftover(ifname, index, mac, state_dir)
}

/// Whether a failed open may succeed without `XDP_USE_SG`.
fn may_retry_without_sg(e: &XdpError) -> bool {
    matches!(
        e,
        XdpError::Os { .. }
            | XdpError::ZeroCopyUnsupported { .. }
            | XdpError::NativeUnsupported { .. }
    )
}

/// The smallest MTU among the interfaces (1500 when none can be read).
fn smallest_mtu(indexes: &[u32]) -> u32 {
    let Ok(mut nl) = RtNetlink::open() else {
        return 1500;
    };
    indexes
        .iter()
        .filter_map(|&i| nl.link(i).ok().and_then(|l| l.mtu))
        .min()
        .unwrap_or(1500)
}

fn open_with(
    ifaces: &[(String, PortId)],
    indexes: &[u32],
    cfg: &XdpConfig,
    bind: BindMode,
    segment_mtu: u32,
) -> Result<(FramePool, Vec<XdpPort>), XdpError> {
    let uc = umem::umem_config(cfg)?;
    let count = cfg
        .frames_per_port
        .checked_mul(ifaces.len() as u32)
        .filter(|c| (*c as u64) * (cfg.frame_size as u64) <= isize::MAX as u64)
        .ok_or_else(|| XdpError::InvalidConfig {
            reason: format!(
                "{} frames per port for {} ports do not fit in memory",
                cfg.frames_per_port,
                ifaces.len()
            ),
        })?;
    let layout = umem::layout(&uc, count);
    let (mut umem_handle, mut descs) = umem::create(uc, layout, &ifaces[0].0)?;
    let mut bound: Vec<Bound> = Vec::with_capacity(ifaces.len());
    let mut first_zero_copy = false;

    for (i, ((ifname, id), &ifindex)) in ifaces.iter().zip(indexes).enumerate() {
        let mut warnings: Vec<String> = Vec::new();
        let modes: &[AttachMode] = match cfg.attach {
            AttachMode::Auto => &[AttachMode::Native, AttachMode::Generic],
            AttachMode::Native => &[AttachMode::Native],
            AttachMode::Generic => &[AttachMode::Generic],
        };
        let mut result = None;
        for (k, &mode) in modes.iter().enumerate() {
            match bind_socket_retrying(&umem_handle, (ifname, *id, ifindex), cfg, mode, bind)? {
                Ok(rings) => {
                    result = Some(Ok((rings, mode)));
                    break;
                }
                Err(e) if k + 1 < modes.len() && may_fall_back(&e) => {
                    warnings.push(format!("native XDP refused ({e}), attached generic"));
                    if i == 0 {
                        // libxdp binds the UMEM's own socket before attaching the program
                        // and leaves it bound when the attach fails: start from a fresh
                        // UMEM (dropping the old one closes that socket).
                        (umem_handle, descs) = umem::create(uc, layout, ifname)?;
                    }
                }
                Err(e) => {
                    result = Some(Err((e, mode)));
                    break;
                }
            }
        }
        let ((rings, fastpath), requested) = match result {
            Some(Ok(r)) => r,
            Some(Err((e, mode))) => {
                return Err(bind_error(
                    e,
                    ifname,
                    cfg,
                    mode,
                    bind == BindMode::ZeroCopy || (i > 0 && first_zero_copy),
                    layout,
                ))
            }
            None => unreachable!("at least one attach mode is tried"),
        };

        let fd = rings.rx.fd().as_raw_fd();
        let zero_copy = match sockopt::is_zero_copy(fd) {
            Ok(zc) => zc,
            Err(e) => {
                warnings.push(format!("bind mode unknown ({e})"));
                bind == BindMode::ZeroCopy
            }
        };
        if i == 0 {
            first_zero_copy = zero_copy;
        }

        let mut nl = RtNetlink::open().ok();
        let link = nl.as_mut().and_then(|nl| nl.link(ifindex).ok());
        let (attach, prog_id) = match link.map(|l| l.xdp) {
            Some(x) if x.drv != 0 => (AttachMode::Native, x.drv),
            Some(x) if x.skb != 0 => (AttachMode::Generic, x.skb),
            _ => {
                warnings.push("no XDP program visible after binding".to_string());
                (requested, 0)
            }
        };
        if attach != requested && prog_id != 0 {
            warnings.push(format!(
                "an XDP program was already attached in {attach} mode and is shared"
            ));
        }

        let tx_budget = if zero_copy {
            String::new()
        } else {
            let budget = cfg.tx_ring.clamp(32, 2 * BURST as u32);
            match sockopt::set_tx_budget(fd, budget) {
                Ok(()) => format!(" tx_budget={budget}"),
                // Before 6.17 the budget is fixed at 32; the port kicks again instead.
                Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => {
                    " tx_budget=32".to_string()
                }
                Err(e) => {
                    warnings.push(format!("XDP_MAX_TX_SKB_BUDGET={budget} refused ({e})"));
                    " tx_budget=32".to_string()
                }
            }
        };
        let busy = match &cfg.busy_poll {
            Some(bp) => {
                warnings.extend(sockopt::apply_busy_poll(fd, bp));
                format!(
                    "busy_poll={}us/{} prefer={} napi_id={}",
                    bp.usecs,
                    bp.budget,
                    if bp.prefer { "on" } else { "off" },
                    sockopt::napi_id(fd)
                )
            }
            None => "busy_poll=off".to_string(),
        };
        let (napi, napi_text) = if let Some(policy) = &cfg.napi {
            match NapiGuard::apply(
                ifname,
                ifindex,
                link.and_then(|l| l.mac),
                policy.initial(),
                cfg.napi_state_dir.as_deref(),
            ) {
                Ok(g) => (Some(Arc::new(g)), policy.summary()),
                Err(w) => {
                    warnings.push(format!("NAPI settings not applied: {w}"));
                    (None, "napi=unchanged".to_string())
                }
            }
        } else {
            (None, "napi=unchanged".to_string())
        };
        let mut detail = format!(
            "attach={attach} bind={}{tx_budget} need_wakeup={} {busy} {napi_text} queue={} \
             multi_buffer={} segment_mtu={segment_mtu}",
            if zero_copy { "zerocopy" } else { "copy" },
            if cfg.need_wakeup { "on" } else { "off" },
            cfg.queue_id,
            if cfg.multi_buffer { "on" } else { "off" },
        );
        if !warnings.is_empty() {
            detail.push_str(" warnings: ");
            detail.push_str(&warnings.join("; "));
        }
        bound.push(Bound {
            ifname: ifname.clone(),
            ifindex,
            id: *id,
            rings,
            attach,
            bind: if zero_copy {
                BindMode::ZeroCopy
            } else {
                BindMode::Copy
            },
            napi,
            fastpath,
            detail,
        });
    }

    let mut pool = umem::pool_over(&umem_handle, &descs, layout)?;
    for frame in (0..count).rev() {
        pool.free(frame);
    }
    let descs: Arc<[FrameDesc]> = descs.into();
    let sizing = Sizing {
        fill_target: cfg.fill_target(),
        reserve: 2 * BURST * ifaces.len(),
        tx_ring: cfg.tx_ring,
        max_frame: pool.capacity(),
        need_wakeup: cfg.need_wakeup,
        busy_poll: cfg.busy_poll.is_some(),
        segment_mtu: segment_mtu as usize,
    };
    let mut ports: Vec<XdpPort> = bound
        .into_iter()
        .map(|b| XdpPort::new(b, umem_handle.clone(), descs.clone(), sizing))
        .collect();
    for port in &mut ports {
        port.service(&mut pool);
    }
    Ok((pool, ports))
}

/// The sentence for a socket that could not be bound.
fn bind_error(
    err: io::Error,
    ifname: &str,
    cfg: &XdpConfig,
    attach: AttachMode,
    zero_copy_wanted: bool,
    layout: umem::Layout,
) -> XdpError {
    if err.raw_os_error() == Some(libc::EOPNOTSUPP) {
        if zero_copy_wanted {
            return XdpError::ZeroCopyUnsupported {
                ifname: ifname.to_string(),
            };
        }
        if attach == AttachMode::Native {
            return XdpError::NativeUnsupported {
                ifname: ifname.to_string(),
                source: err,
            };
        }
    }
    XdpError::from_os(
        "bind an AF_XDP socket",
        ifname,
        cfg.queue_id,
        (layout.count as u64, layout.bytes()),
        err,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = XdpConfig::default();
        assert_eq!(c.frame_size, 2048);
        assert_eq!(
            (c.rx_ring, c.tx_ring, c.fill_ring, c.comp_ring),
            (2048, 2048, 2048, 2048)
        );
        assert!(c.need_wakeup && c.napi == Some(NapiPolicy::default()));
        assert_eq!(
            c.busy_poll,
            Some(BusyPoll {
                usecs: 20,
                budget: 64,
                prefer: true
            })
        );
        assert_eq!(c.queue_id, 0);
        assert_eq!(c.fill_target(), 2048);
        c.validate().unwrap();
    }

    #[test]
    fn validation_names_the_bad_value() {
        let bad = XdpConfig {
            rx_ring: 1000,
            ..XdpConfig::default()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("rx_ring"));
        let bad = XdpConfig {
            frames_per_port: 10,
            ..XdpConfig::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("frames_per_port"));
        let small = XdpConfig {
            frames_per_port: 1024,
            ..XdpConfig::default()
        };
        assert_eq!(small.fill_target(), 512);
    }

    #[test]
    fn missing_interfaces_are_found_before_anything_is_created() {
        let e = open_worker_ports(&[("vnxt-nosuch0".to_string(), 0)], &XdpConfig::default())
            .unwrap_err();
        assert!(matches!(e, XdpError::NoInterface { .. }), "{e}");
        assert!(e
            .to_string()
            .starts_with("no interface named vnxt-nosuch0 "));
        let e = open_worker_ports(
            &[("lo".to_string(), 0), ("lo".to_string(), 1)],
            &XdpConfig::default(),
        )
        .unwrap_err();
        assert!(matches!(e, XdpError::DuplicateInterface { .. }), "{e}");
        assert!(matches!(
            ifindex_of("a-name-longer-than-ifnamsiz"),
            Err(XdpError::NoInterface { .. })
        ));
    }

    #[test]
    fn only_soft_errors_fall_back_to_generic() {
        assert!(may_fall_back(&io::Error::from_raw_os_error(
            libc::EOPNOTSUPP
        )));
        assert!(may_fall_back(&io::Error::from_raw_os_error(libc::EINVAL)));
        assert!(!may_fall_back(&io::Error::from_raw_os_error(libc::EBUSY)));
        assert!(!may_fall_back(&io::Error::from_raw_os_error(libc::EPERM)));
    }

    #[test]
    fn modes_print_as_in_the_info_line() {
        assert_eq!(AttachMode::Native.to_string(), "native");
        assert_eq!(AttachMode::Generic.to_string(), "generic");
        assert_eq!(BindMode::ZeroCopy.to_string(), "zerocopy");
        assert_eq!(BindMode::Copy.to_string(), "copy");
    }
}
