//! Errors of the AF_XDP backend: one plain sentence each, saying what to do.
//!
//! Setup talks to libxdp, libbpf and the kernel, which all answer with an errno; this
//! module turns those numbers into the few situations a user can act on
//! ([`XdpError::from_os`]). Anything else keeps the operation, the interface and the
//! OS error text, so the sentence still points somewhere useful.

use std::io;

/// Why the AF_XDP ports of a worker could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// The interface does not exist in the calling thread's network namespace.
    #[error(
        "no interface named {ifname} in this network namespace; create it or pass another --vm/--host/--uplink"
    )]
    NoInterface {
        /// The name asked for.
        ifname: String,
    },

    /// The process lacks the capabilities AF_XDP and XDP need (EPERM/EACCES).
    #[error("binding AF_XDP needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW); run as root")]
    NotPermitted,

    /// The kernel was built without AF_XDP sockets (EAFNOSUPPORT).
    #[error(
        "this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS); use --backend mem or a kernel >= 5.x with XDP sockets"
    )]
    NoAfXdp,

    /// Another XDP program or AF_XDP socket holds the interface queue (EBUSY/EEXIST).
    #[error(
        "interface {ifname} already has an XDP program or AF_XDP socket on queue {queue}; stop the other program (ip link set dev {ifname} xdp off) and retry"
    )]
    AlreadyBound {
        /// The interface.
        ifname: String,
        /// The queue id asked for.
        queue: u32,
    },

    /// The UMEM could not be allocated or registered (ENOMEM/ENOBUFS).
    #[error(
        "could not allocate and lock {bytes} bytes of AF_XDP frame memory ({frames} frames); raise the locked-memory limit (ulimit -l unlimited) or use fewer frames per port"
    )]
    OutOfMemory {
        /// Frames asked for.
        frames: u64,
        /// Bytes asked for.
        bytes: u64,
    },

    /// The same interface was listed twice for one worker.
    #[error("interface {ifname} is listed twice for one worker; list each interface once")]
    DuplicateInterface {
        /// The interface.
        ifname: String,
    },

    /// Native (driver) XDP was forced but the driver does not support it.
    #[error(
        "interface {ifname} does not support native XDP ({source}); use attach mode auto or generic"
    )]
    NativeUnsupported {
        /// The interface.
        ifname: String,
        /// What the kernel said.
        source: io::Error,
    },

    /// Zero-copy was forced (or inherited from the worker's first port) but the driver
    /// cannot do it.
    #[error("interface {ifname} cannot bind AF_XDP in zero-copy mode; use bind mode auto or copy")]
    ZeroCopyUnsupported {
        /// The interface.
        ifname: String,
    },

    /// A configuration value the kernel would reject.
    #[error("invalid AF_XDP configuration: {reason}; fix the setting and retry")]
    InvalidConfig {
        /// What is wrong.
        reason: String,
    },

    /// Any other failure, with the operation and the OS error.
    #[error("could not {op} on interface {ifname} ({source}); check `ip -d link show {ifname}` and dmesg")]
    Os {
        /// What was being done ("bind an AF_XDP socket", "create the UMEM"...).
        op: &'static str,
        /// The interface concerned (or "-" for the UMEM).
        ifname: String,
        /// The OS error.
        source: io::Error,
    },
}

impl XdpError {
    /// Classify an OS error met while doing `op` on `ifname`/`queue`.
    ///
    /// EPERM/EACCES become [`XdpError::NotPermitted`], EAFNOSUPPORT
    /// [`XdpError::NoAfXdp`], EBUSY/EEXIST [`XdpError::AlreadyBound`], ENOMEM/ENOBUFS
    /// [`XdpError::OutOfMemory`] (with `frames`/`bytes` of the UMEM), ENODEV/ENXIO
    /// [`XdpError::NoInterface`]; the rest [`XdpError::Os`].
    pub fn from_os(
        op: &'static str,
        ifname: &str,
        queue: u32,
        umem: (u64, u64),
        err: io::Error,
    ) -> Self {
        match err.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => XdpError::NotPermitted,
            Some(libc::EAFNOSUPPORT) => XdpError::NoAfXdp,
            Some(libc::EBUSY) | Some(libc::EEXIST) => XdpError::AlreadyBound {
                ifname: ifname.to_string(),
                queue,
            },
            Some(libc::ENOMEM) | Some(libc::ENOBUFS) => XdpError::OutOfMemory {
                frames: umem.0,
                bytes: umem.1,
            },
            Some(libc::ENODEV) | Some(libc::ENXIO) => XdpError::NoInterface {
                ifname: ifname.to_string(),
            },
            _ => XdpError::Os {
                op,
                ifname: ifname.to_string(),
                source: err,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(errno: i32) -> XdpError {
        XdpError::from_os(
            "bind an AF_XDP socket",
            "vm1",
            3,
            (8192, 16 << 20),
            io::Error::from_raw_os_error(errno),
        )
    }

    #[test]
    fn errnos_map_to_the_situations_a_user_can_fix() {
        assert!(matches!(classify(libc::EPERM), XdpError::NotPermitted));
        assert!(matches!(classify(libc::EACCES), XdpError::NotPermitted));
        assert!(matches!(classify(libc::EAFNOSUPPORT), XdpError::NoAfXdp));
        assert!(matches!(
            classify(libc::EBUSY),
            XdpError::AlreadyBound { queue: 3, .. }
        ));
        assert!(matches!(
            classify(libc::EEXIST),
            XdpError::AlreadyBound { .. }
        ));
        assert!(matches!(
            classify(libc::ENOMEM),
            XdpError::OutOfMemory { frames: 8192, .. }
        ));
        assert!(matches!(
            classify(libc::ENOBUFS),
            XdpError::OutOfMemory { .. }
        ));
        assert!(matches!(
            classify(libc::ENODEV),
            XdpError::NoInterface { .. }
        ));
        assert!(matches!(classify(libc::EINVAL), XdpError::Os { .. }));
    }

    #[test]
    fn messages_are_one_sentence_with_the_fix() {
        for e in [
            classify(libc::EPERM),
            classify(libc::EAFNOSUPPORT),
            classify(libc::EBUSY),
            classify(libc::ENOMEM),
            classify(libc::ENODEV),
            classify(libc::EINVAL),
        ] {
            let s = e.to_string();
            assert!(!s.contains('\n'), "{s}");
            assert!(s.contains("; "), "no advice in: {s}");
            assert!(!s.ends_with('.'), "{s}");
        }
        assert_eq!(
            classify(libc::EBUSY).to_string(),
            "interface vm1 already has an XDP program or AF_XDP socket on queue 3; stop the other \
             program (ip link set dev vm1 xdp off) and retry"
        );
        assert!(classify(libc::ENOMEM).to_string().contains("ulimit -l"));
    }
}
