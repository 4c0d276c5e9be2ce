//! Socket options xsk-rs does not wrap: busy polling, the bound mode, the rx nudge.
//!
//! All of it is plain `setsockopt`/`getsockopt`/`recvfrom` on the AF_XDP socket's fd.
//! Busy-poll options exist since Linux 5.11 (`SO_PREFER_BUSY_POLL`,
//! `SO_BUSY_POLL_BUDGET`; `SO_BUSY_POLL` is older); `XDP_OPTIONS` since 5.3. Failures
//! of the busy-poll options are returned as warnings, never as errors: the port works
//! without them, only slower.

use super::BusyPoll;
use std::io;
use std::os::fd::RawFd;

/// `SOL_SOCKET` option: busy-poll this many microseconds on blocking reads (any value
/// above zero also lets a non-blocking `recvfrom`/`sendto` poll the NAPI once).
pub const SO_BUSY_POLL: i32 = 46;
/// `SOL_SOCKET` option (5.11): prefer busy polling over softirq NAPI processing; works
/// with the interface's `napi_defer_hard_irqs` and `gro_flush_timeout`.
pub const SO_PREFER_BUSY_POLL: i32 = 69;
/// `SOL_SOCKET` option (5.11): NAPI budget of one busy-poll round.
pub const SO_BUSY_POLL_BUDGET: i32 = 70;
/// Socket level of the AF_XDP options.
pub const SOL_XDP: i32 = 283;
/// `SOL_XDP` option (5.3): `struct xdp_options { __u32 flags; }` of a bound socket.
pub const XDP_OPTIONS: i32 = 8;
/// Flag in `xdp_options.flags`: the socket is bound in zero-copy mode.
pub const XDP_OPTIONS_ZEROCOPY: u32 = 1;
/// `SOL_XDP` option (6.17): most descriptors one `sendto` transmits in copy mode
/// (default 32, allowed 32 ..= tx ring entries).
pub const XDP_MAX_TX_SKB_BUDGET: i32 = 9;

fn set_int(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a live i32 for the duration of the call and the length passed is
    // its size; the kernel only reads it. A bad fd is reported as EBADF, not UB.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Apply the busy-poll options to an AF_XDP socket; returns one warning per option the
/// kernel refused (empty when all took effect).
pub fn apply_busy_poll(fd: RawFd, bp: &BusyPoll) -> Vec<String> {
    let usecs = i32::try_from(bp.usecs).unwrap_or(i32::MAX);
    let budget = i32::try_from(bp.budget).unwrap_or(i32::MAX);
    let mut warnings = Vec::new();
    let opts = [
        (
            "SO_PREFER_BUSY_POLL",
            SO_PREFER_BUSY_POLL,
            i32::from(bp.prefer),
        ),
        ("SO_BUSY_POLL", SO_BUSY_POLL, usecs),
        ("SO_BUSY_POLL_BUDGET", SO_BUSY_POLL_BUDGET, budget),
    ];
    for (label, name, value) in opts {
        if let Err(e) = set_int(fd, libc::SOL_SOCKET, name, value) {
            warnings.push(format!("{label}={value} refused ({e})"));
        }
    }
    warnings
}

/// `SOL_SOCKET` option: the NAPI id the socket busy-polls (0: none).
pub const SO_INCOMING_NAPI_ID: i32 = 56;

/// `SOL_SOCKET` option (5.14): the cookie of the socket's network namespace.
pub const SO_NETNS_COOKIE: i32 = 71;

/// The cookie of the calling thread's network namespace: unique for the whole boot,
/// where its inode number may be given to a later namespace. 0 before Linux 5.14.
pub fn netns_cookie() -> u64 {
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return 0;
    };
    let mut cookie: u64 = 0;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `cookie` and `len` are live for the call and `len` holds `cookie`'s size;
    // the kernel writes at most that many bytes. The fd is open for the whole call.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        cookie
    } else {
        0
    }
}

/// The NAPI id busy polling of this socket would drive; 0 when there is none. On Linux
/// 6.13 and later an AF_XDP socket takes it from its queue at bind time, and veth names
/// no NAPI for its queues: busy polling then does nothing on veth (older kernels took
/// it from the first frame received).
pub fn napi_id(fd: RawFd) -> u32 {
    let mut id: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `id` and `len` are live for the call and `len` holds `id`'s size; the
    // kernel writes at most that many bytes. A bad fd is an error return, not UB.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            SO_INCOMING_NAPI_ID,
            (&mut id as *mut u32).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        id
    } else {
        0
    }
}

/// Raise the copy-mode transmit budget of one `sendto` (Linux 6.17).
///
/// # Errors
/// ENOPROTOOPT on older kernels, EACCES outside 32 ..= tx ring entries.
pub fn set_tx_budget(fd: RawFd, budget: u32) -> io::Result<()> {
    set_int(
        fd,
        SOL_XDP,
        XDP_MAX_TX_SKB_BUDGET,
        i32::try_from(budget).unwrap_or(i32::MAX),
    )
}

/// Whether a bound AF_XDP socket runs in zero-copy mode (`XDP_OPTIONS`, Linux 5.3).
///
/// # Errors
/// The OS error of `getsockopt` (ENOPROTOOPT on kernels before 5.3).
pub fn is_zero_copy(fd: RawFd) -> io::Result<bool> {
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: `flags` and `len` are live locals; the kernel writes at most `len` bytes
    // (the size of `struct xdp_options`, one u32) into `flags` and updates `len`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            SOL_XDP,
            XDP_OPTIONS,
            (&mut flags as *mut u32).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(flags & XDP_OPTIONS_ZEROCOPY != 0)
}

/// Let the kernel run the socket's rx path once: a non-blocking, zero-length `recvfrom`.
///
/// With busy polling enabled this polls the interface's NAPI context from the calling
/// thread (the way AF_XDP busy polling is meant to be driven); with `need_wakeup` in
/// zero-copy mode it wakes the driver up to refill from the fill ring. Returns false
/// when the kernel reported an unexpected error (EAGAIN and friends are expected).
#[inline]
pub fn poke_rx(fd: RawFd) -> bool {
    // SAFETY: a zero-length receive into a null buffer with a null address is the
    // documented way to drive an AF_XDP socket; the kernel writes nothing to user memory.
    let rc = unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
    if rc >= 0 {
        return true;
    }
    matches!(
        io::Error::last_os_error().raw_os_error(),
        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::ENETDOWN)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_kernel_uapi() {
        assert_eq!(SO_BUSY_POLL, libc::SO_BUSY_POLL);
        assert_eq!(SO_NETNS_COOKIE, libc::SO_NETNS_COOKIE);
        assert_eq!(SO_PREFER_BUSY_POLL, libc::SO_PREFER_BUSY_POLL);
        assert_eq!(SO_BUSY_POLL_BUDGET, libc::SO_BUSY_POLL_BUDGET);
        assert_eq!(SOL_XDP, libc::SOL_XDP);
        assert_eq!(XDP_OPTIONS, libc::XDP_OPTIONS);
        assert_eq!(XDP_OPTIONS_ZEROCOPY, libc::XDP_OPTIONS_ZEROCOPY);
        // The literal values the kernel headers define (asm-generic/socket.h, if_xdp.h).
        assert_eq!(
            (SO_BUSY_POLL, SO_PREFER_BUSY_POLL, SO_BUSY_POLL_BUDGET),
            (46, 69, 70)
        );
        assert_eq!((SOL_XDP, XDP_OPTIONS, XDP_OPTIONS_ZEROCOPY), (283, 8, 1));
        assert_eq!(XDP_MAX_TX_SKB_BUDGET, 9);
    }

    #[test]
    fn the_namespace_cookie_is_stable() {
        let c = netns_cookie();
        assert_eq!(c, netns_cookie());
    }

    #[test]
    fn refused_options_become_warnings_not_errors() {
        // An invalid fd refuses all three options, which must come back as warnings.
        let warnings = apply_busy_poll(-1, &BusyPoll::default());
        assert_eq!(warnings.len(), 3, "{warnings:?}");
        assert!(warnings[0].starts_with("SO_PREFER_BUSY_POLL=1 refused"));
        assert!(is_zero_copy(-1).is_err());
        assert!(set_tx_budget(-1, 128).is_err());
        assert!(!poke_rx(-1));
    }
}
