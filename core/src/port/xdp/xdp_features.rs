//! The XDP features an interface advertises, asked of the kernel over generic netlink.
//!
//! The kernel's "netdev" generic netlink family (Linux 6.3+) answers
//! `NETDEV_CMD_DEV_GET` for one ifindex with `NETDEV_A_DEV_XDP_FEATURES`, a bitmask of
//! `enum netdev_xdp_act` (`include/uapi/linux/netdev.h`), offered here as the
//! associated constants of [`XdpFeatures`]. The one the dataplane cares about is
//! [`XdpFeatures::NDO_XMIT`]: an interface without it cannot be the target of an
//! `XDP_REDIRECT`, the kernel drops the frames. A veth sets it (since 6.3) exactly when
//! its *peer* can receive them, i.e. the peer has an XDP program or GRO enabled (and
//! has no more tx queues than the veth has rx queues), so the bit changes at run time
//! and is worth polling.
//!
//! Invariants:
//!
//! - A netlink socket belongs to the network namespace it was created in: an
//!   [`XdpFeatures`] answers about the interfaces of the namespace of the thread that
//!   called [`XdpFeatures::open`], wherever it is used later.
//! - The family id is resolved once, in `open` (`CTRL_CMD_GETFAMILY` on `GENL_ID_CTRL`),
//!   and cached: "netdev" is built into the kernel (`net/core`), never unregistered, so
//!   its id cannot change while the socket lives.
//! - Every request carries a fresh sequence number and only the answer with that number
//!   is taken; a late answer to an earlier request that timed out is skipped.
//! - A receive waits at most 2 s (`SO_RCVTIMEO`); a silent kernel gives `TimedOut`.
//! - One query is one `send` and one `recv` (more only to skip stale answers) on buffers
//!   the struct keeps: no allocation per query, for a control thread that asks every few
//!   hundred milliseconds.
//!
//! Messages are built and parsed by hand (native endianness, 4-byte attribute
//! alignment), as in the rtnetlink client (`netlink`); only the syscalls are `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDRLEN: usize = 16;
const GENL_HDRLEN: usize = 4;
const NLM_F_REQUEST: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLA_TYPE_MASK: u16 = 0x3fff;

/// `GENL_ID_CTRL` (`NLMSG_MIN_TYPE`): the generic netlink controller.
const GENL_ID_CTRL: u16 = 0x10;
const CTRL_CMD_GETFAMILY: u8 = 3;
const CTRL_ATTR_FAMILY_ID: u16 = 1;
const CTRL_ATTR_FAMILY_NAME: u16 = 2;
const CTRL_VERSION: u8 = 1;

/// `NETDEV_FAMILY_NAME`, NUL-terminated as the controller expects it.
const NETDEV_FAMILY_NAME: &[u8] = b"netdev\0";
const NETDEV_FAMILY_VERSION: u8 = 1;
const NETDEV_CMD_DEV_GET: u8 = 1;
const NETDEV_A_DEV_IFINDEX: u16 = 1;
const NETDEV_A_DEV_XDP_FEATURES: u16 = 3;

/// Room for one answer; the largest (the controller's description of "netdev", with
/// its operations and multicast groups) is well under 4 KiB.
const RX_BUF: usize = 32 * 1024;

/// A generic netlink socket, with the "netdev" family's id, for XDP feature queries.
#[derive(Debug)]
pub struct XdpFeatures {
    fd: OwnedFd,
    seq: u32,
    family: u16,
    tx: Vec<u8>,
    rx: Vec<u8>,
}

impl XdpFeatures {
    /// `NETDEV_XDP_ACT_BASIC`: XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX.
    pub const BASIC: u64 = 1;
    /// `NETDEV_XDP_ACT_REDIRECT`: a program on the interface may return XDP_REDIRECT.
    pub const REDIRECT: u64 = 2;
    /// `NETDEV_XDP_ACT_NDO_XMIT`: the interface accepts frames redirected to it.
    pub const NDO_XMIT: u64 = 4;
    /// `NETDEV_XDP_ACT_XSK_ZEROCOPY`: AF_XDP zero-copy.
    pub const XSK_ZEROCOPY: u64 = 8;
    /// `NETDEV_XDP_ACT_HW_OFFLOAD`: programs can be offloaded to the hardware.
    pub const HW_OFFLOAD: u64 = 16;
    /// `NETDEV_XDP_ACT_RX_SG`: multi-buffer frames on receive.
    pub const RX_SG: u64 = 32;
    /// `NETDEV_XDP_ACT_NDO_XMIT_SG`: multi-buffer frames redirected to the interface.
    pub const NDO_XMIT_SG: u64 = 64;

    /// Every bit with its name, lowest first (the names of `ip`/`ynl`).
    const NAMES: [(u64, &'static str); 7] = [
        (Self::BASIC, "basic"),
        (Self::REDIRECT, "redirect"),
        (Self::NDO_XMIT, "ndo-xmit"),
        (Self::XSK_ZEROCOPY, "xsk-zerocopy"),
        (Self::HW_OFFLOAD, "hw-offload"),
        (Self::RX_SG, "rx-sg"),
        (Self::NDO_XMIT_SG, "ndo-xmit-sg"),
    ];

    /// Open a generic netlink socket in the calling thread's network namespace and
    /// resolve the "netdev" family.
    ///
    /// # Errors
    /// `Unsupported` when the kernel has no "netdev" family (before Linux 6.3); the OS
    /// error of `socket`/`setsockopt`/`send`/`recv`; `TimedOut` when the controller does
    /// not answer within 2 s.
    pub fn open() -> io::Result<Self> {
        Self::open_family(NETDEV_FAMILY_NAME)
    }

    /// [`Self::open`] with the family named `name` (NUL-terminated) in place of "netdev":
    /// the tests' way to see a kernel without it.
    fn open_family(name: &[u8]) -> io::Result<Self> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_GENERIC,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a freshly created descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: `tv` is a live timeval and the length passed is its size.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let mut me = Self {
            fd,
            seq: 0,
            family: GENL_ID_CTRL,
            tx: Vec::with_capacity(64),
            rx: vec![0u8; RX_BUF],
        };
        let found = me.transact(
            GENL_ID_CTRL,
            CTRL_CMD_GETFAMILY,
            CTRL_VERSION,
            |buf| push_attr(buf, CTRL_ATTR_FAMILY_NAME, name),
            parse_family_id,
        );
        me.family = match found {
            Ok(Some(id)) => id,
            Ok(None) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the generic netlink controller's answer about \"netdev\" has no family id",
                ))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the kernel has no \"netdev\" generic netlink family: \
                     querying XDP features needs Linux 6.3 or later",
                ))
            }
            Err(e) => return Err(e),
        };
        Ok(me)
    }

    /// The `NETDEV_XDP_ACT_*` bits interface `ifindex` advertises (0: no XDP at all).
    ///
    /// # Errors
    /// ENODEV when no such interface exists in the socket's namespace; `TimedOut` when
    /// the kernel does not answer within 2 s; `InvalidData` for an answer without the
    /// features attribute; other OS errors.
    pub fn query(&mut self, ifindex: u32) -> io::Result<u64> {
        self.transact(
            self.family,
            NETDEV_CMD_DEV_GET,
            NETDEV_FAMILY_VERSION,
            |buf| push_attr(buf, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes()),
            parse_xdp_features,
        )?
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the kernel's answer about ifindex {ifindex} has no XDP features"),
            )
        })
    }

    /// Whether an interface with `features` accepts frames redirected to it
    /// ([`Self::NDO_XMIT`]). For a veth: whether its peer has an XDP program or GRO on.
    pub const fn takes_redirects(features: u64) -> bool {
        features & Self::NDO_XMIT != 0
    }

    /// `features` as names joined by `|` ("basic|redirect|rx-sg"), unknown bits in hex,
    /// "none" for 0: for log lines.
    pub fn describe(features: u64) -> String {
        let mut out = String::new();
        let mut rest = features;
        for (bit, name) in Self::NAMES {
            if features & bit != 0 {
                if !out.is_empty() {
                    out.push('|');
                }
                out.push_str(name);
                rest &= !bit;
            }
        }
        if rest != 0 {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(&format!("{rest:#x}"));
        }
        if out.is_empty() {
            out.push_str("none");
        }
        out
    }

    /// Send one request (`cmd` of `family`, attributes written by `attrs`) and hand the
    /// attributes of its answer to `parse`.
    fn transact<T>(
        &mut self,
        family: u16,
        cmd: u8,
        version: u8,
        attrs: impl FnOnce(&mut Vec<u8>),
        parse: impl FnOnce(&[u8]) -> T,
    ) -> io::Result<T> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        build_request(&mut self.tx, family, cmd, version, seq, attrs);
        // SAFETY: `tx` is a live, initialised buffer of `tx.len()` bytes the kernel only
        // reads; an unbound netlink socket sends to the kernel (port id 0).
        let sent = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                self.tx.as_ptr().cast(),
                self.tx.len(),
                0,
            )
        };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }
        loop {
            // SAFETY: `rx` is a live buffer of `rx.len()` writable bytes; the kernel
            // writes at most that many (MSG_TRUNC only changes the length returned).
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.rx.as_mut_ptr().cast(),
                    self.rx.len(),
                    libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no generic netlink answer within 2 s",
                    ));
                }
                return Err(e);
            }
            let n = n as usize;
            if n > self.rx.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("generic netlink answer of {n} bytes truncated"),
                ));
            }
            match find_reply(&self.rx[..n], seq, family) {
                Some(Ok(reply)) => return Ok(parse(reply)),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
    }
}

/// The XDP features of interface `ifindex` of the calling thread's network namespace:
/// [`XdpFeatures::open`] then [`XdpFeatures::query`], for a one-off question.
///
/// # Errors
/// Those of [`XdpFeatures::open`] and [`XdpFeatures::query`].
pub fn xdp_features(ifindex: u32) -> io::Result<u64> {
    XdpFeatures::open()?.query(ifindex)
}

/// Write into `buf` (cleared first) one request: netlink header, genetlink header,
/// attributes.
fn build_request(
    buf: &mut Vec<u8>,
    family: u16,
    cmd: u8,
    version: u8,
    seq: u32,
    attrs: impl FnOnce(&mut Vec<u8>),
) {
    buf.clear();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched below
    buf.extend_from_slice(&family.to_ne_bytes());
    buf.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
                                                // struct genlmsghdr: cmd, version, reserved (2)
    buf.extend_from_slice(&[cmd, version, 0, 0]);
    attrs(buf);
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
}

/// In one received datagram, the answer to request `seq` of `family`: `Some(Ok(attrs))`
/// for a reply (the bytes after its genetlink header), `Some(Err)` for a netlink error,
/// `None` when the datagram holds neither (a stale answer: keep reading).
fn find_reply(mut msgs: &[u8], seq: u32, family: u16) -> Option<io::Result<&[u8]>> {
    while msgs.len() >= NLMSG_HDRLEN {
        let mlen = u32_at(msgs, 0) as usize;
        let mtype = u16_at(msgs, 4);
        let mseq = u32_at(msgs, 8);
        if mlen < NLMSG_HDRLEN || mlen > msgs.len() {
            return None;
        }
        let body = &msgs[NLMSG_HDRLEN..mlen];
        if mseq == seq {
            if mtype == NLMSG_ERROR {
                let code = body.get(..4).map_or(0, |b| u32_at(b, 0) as i32);
                // A positive acknowledgement (we never ask for one) carries no
                // attributes: the caller finds none.
                return Some(if code == 0 {
                    Ok(&[])
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                });
            }
            if mtype == family {
                return Some(Ok(body.get(GENL_HDRLEN..).unwrap_or(&[])));
            }
        }
        msgs = &msgs[align4(mlen).min(msgs.len())..];
    }
    None
}

/// `CTRL_ATTR_FAMILY_ID` of a controller reply.
fn parse_family_id(attr_bytes: &[u8]) -> Option<u16> {
    attrs(attr_bytes)
        .find(|&(ty, p)| ty == CTRL_ATTR_FAMILY_ID && p.len() == 2)
        .map(|(_, p)| u16_at(p, 0))
}

/// `NETDEV_A_DEV_XDP_FEATURES` of a `NETDEV_CMD_DEV_GET` reply: a u64 (the kernel puts
/// it with `nla_put_u64_64bit`, so a `NETDEV_A_DEV_PAD` may precede it).
fn parse_xdp_features(attr_bytes: &[u8]) -> Option<u64> {
    attrs(attr_bytes)
        .find(|&(ty, p)| ty == NETDEV_A_DEV_XDP_FEATURES && (p.len() == 8 || p.len() == 4))
        .map(|(_, p)| {
            if p.len() == 8 {
                u64::from_ne_bytes([p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]])
            } else {
                u64::from(u32_at(p, 0))
            }
        })
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn push_attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = (4 + data.len()) as u16;
    buf.extend_from_slice(&len.to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(align4(buf.len()), 0);
}

/// Iterate the attributes in `b` as (type without flags, payload).
fn attrs(mut b: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if b.len() < 4 {
            return None;
        }
        let len = u16_at(b, 0) as usize;
        let ty = u16_at(b, 2) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            return None;
        }
        let payload = &b[4..len];
        b = &b[align4(len).min(b.len())..];
        Some((ty, payload))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::process::Command;

    /// A whole netlink message of `mtype`/`seq` around `body`.
    fn nlmsg(mtype: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&mtype.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&4242u32.to_ne_bytes());
        m.extend_from_slice(body);
        m.resize(align4(m.len()), 0);
        m
    }

    /// A `NETDEV_CMD_DEV_GET` reply body as the kernel writes it: ifindex, pad, features,
    /// zero-copy max segments.
    fn dev_get_body(ifindex: u32, features: u64) -> Vec<u8> {
        let mut b = vec![NETDEV_CMD_DEV_GET, NETDEV_FAMILY_VERSION, 0, 0];
        push_attr(&mut b, NETDEV_A_DEV_IFINDEX, &ifindex.to_ne_bytes());
        push_attr(&mut b, 2, &[]); // NETDEV_A_DEV_PAD
        push_attr(&mut b, NETDEV_A_DEV_XDP_FEATURES, &features.to_ne_bytes());
        push_attr(&mut b, 4, &1u32.to_ne_bytes()); // NETDEV_A_DEV_XDP_ZC_MAX_SEGS
        b
    }

    #[test]
    fn builds_genetlink_requests() {
        let mut buf = vec![0xaa; 3]; // leftovers of an earlier request are dropped
        build_request(&mut buf, 0x1d, NETDEV_CMD_DEV_GET, 1, 7, |b| {
            push_attr(b, NETDEV_A_DEV_IFINDEX, &5u32.to_ne_bytes())
        });
        let mut want = Vec::new();
        want.extend_from_slice(&28u32.to_ne_bytes());
        want.extend_from_slice(&0x1du16.to_ne_bytes());
        want.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
        want.extend_from_slice(&7u32.to_ne_bytes());
        want.extend_from_slice(&0u32.to_ne_bytes());
        want.extend_from_slice(&[NETDEV_CMD_DEV_GET, 1, 0, 0]);
        want.extend_from_slice(&8u16.to_ne_bytes());
        want.extend_from_slice(&NETDEV_A_DEV_IFINDEX.to_ne_bytes());
        want.extend_from_slice(&5u32.to_ne_bytes());
        assert_eq!(buf, want);

        // The family name is NUL-terminated and padded to 4 bytes: 4 + 7 -> 12.
        build_request(&mut buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, 1, |b| {
            push_attr(b, CTRL_ATTR_FAMILY_NAME, NETDEV_FAMILY_NAME)
        });
        assert_eq!(buf.len(), NLMSG_HDRLEN + GENL_HDRLEN + 12);
        assert_eq!(u32_at(&buf, 0) as usize, buf.len());
        assert_eq!(u16_at(&buf, 20), 11);
        assert_eq!(&buf[24..31], b"netdev\0");
    }

    #[test]
    fn parses_canned_replies() {
        // Controller reply: name, then id, then things we ignore.
        let mut ctrl = vec![1, 2, 0, 0];
        push_attr(&mut ctrl, CTRL_ATTR_FAMILY_NAME, NETDEV_FAMILY_NAME);
        push_attr(&mut ctrl, CTRL_ATTR_FAMILY_ID, &0x1du16.to_ne_bytes());
        push_attr(&mut ctrl, 3, &1u32.to_ne_bytes()); // CTRL_ATTR_VERSION
        let msg = nlmsg(GENL_ID_CTRL, 1, &ctrl);
        let attrs = find_reply(&msg, 1, GENL_ID_CTRL).unwrap().unwrap();
        assert_eq!(parse_family_id(attrs), Some(0x1d));

        // A stale answer (earlier seq) before ours in the same datagram is skipped.
        let features = XdpFeatures::BASIC | XdpFeatures::REDIRECT | XdpFeatures::NDO_XMIT;
        let mut dgram = nlmsg(0x1d, 4, &dev_get_body(9, 0));
        dgram.extend(nlmsg(0x1d, 5, &dev_get_body(9, features)));
        let attrs = find_reply(&dgram, 5, 0x1d).unwrap().unwrap();
        assert_eq!(parse_xdp_features(attrs), Some(features));
        assert!(XdpFeatures::takes_redirects(features));
        assert!(!XdpFeatures::takes_redirects(
            features & !XdpFeatures::NDO_XMIT
        ));
        // Only a stale answer: keep reading.
        assert!(find_reply(&dgram[..dgram.len() / 2], 5, 0x1d).is_none());

        // An error message: the kernel's errno, negated.
        let mut err = (-libc::ENODEV).to_ne_bytes().to_vec();
        err.extend_from_slice(&nlmsg(0x1d, 6, &[])[..NLMSG_HDRLEN]); // the request echoed
        let e = find_reply(&nlmsg(NLMSG_ERROR, 6, &err), 6, 0x1d)
            .unwrap()
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENODEV));

        // A reply without the features attribute.
        let mut bare = vec![NETDEV_CMD_DEV_GET, 1, 0, 0];
        push_attr(&mut bare, NETDEV_A_DEV_IFINDEX, &9u32.to_ne_bytes());
        assert_eq!(parse_xdp_features(&bare[GENL_HDRLEN..]), None);
    }

    #[test]
    fn truncated_or_garbage_replies_do_not_panic() {
        let msg = nlmsg(0x1d, 3, &dev_get_body(2, 0x7f));
        for cut in 0..msg.len() {
            if let Some(Ok(a)) = find_reply(&msg[..cut], 3, 0x1d) {
                let _ = parse_xdp_features(a);
            }
            let _ = parse_xdp_features(&msg[..cut]);
            let _ = parse_family_id(&msg[..cut]);
        }
        let _ = find_reply(&[0xff; 64], 0xffff_ffff, 0xffff);
        let _ = parse_xdp_features(&[0xff; 64]);
    }

    #[test]
    fn describes_bits() {
        assert_eq!(XdpFeatures::describe(0), "none");
        assert_eq!(XdpFeatures::describe(0x27), "basic|redirect|ndo-xmit|rx-sg");
        assert_eq!(XdpFeatures::describe(0x7f | 0x100), {
            "basic|redirect|ndo-xmit|xsk-zerocopy|hw-offload|rx-sg|ndo-xmit-sg|0x100"
        });
    }

    /// Unprivileged: the namespace's loopback, and an interface that does not exist.
    #[test]
    fn loopback_and_missing_interface() {
        let mut q = match XdpFeatures::open() {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                eprintln!("skipped: loopback_and_missing_interface: {e}");
                return;
            }
            r => r.expect("open a generic netlink socket"),
        };
        let lo = q.query(1).expect("ifindex 1 is lo");
        assert!(!XdpFeatures::takes_redirects(lo), "lo: {lo:#x}");
        let err = q.query(0x7fff_fff0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
        // The socket stays usable after an error.
        assert_eq!(q.query(1).unwrap(), lo);
        assert_eq!(xdp_features(1).unwrap(), lo);
    }

    /// A kernel without the family (ENOENT from the controller) is `Unsupported`. (A
    /// name must fit GENL_NAMSIZ, 16 bytes with the NUL, or the answer is EINVAL.)
    #[test]
    fn missing_family_is_unsupported() {
        let err = XdpFeatures::open_family(b"vnet-nofamily\0").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{err}");
        assert!(err.to_string().contains("Linux 6.3"), "{err}");
    }

    /// `vnxf-<pid>`, deleted on drop, even when the test panics.
    struct Netns {
        name: String,
    }

    impl Netns {
        fn create() -> Result<Self, String> {
            let name = format!("vnxf-{}", std::process::id());
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
            let out = Command::new("ip")
                .args(["netns", "add", &name])
                .output()
                .map_err(|e| format!("ip netns add: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ip netns add: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Ok(Self { name })
        }

        /// Run `args` inside the namespace, panicking with its stderr on failure.
        fn run(&self, args: &[&str]) {
            let out = Command::new("ip")
                .args(["netns", "exec", &self.name])
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .output();
        }
    }

    /// The namespace, or `None` (after saying why) when the test cannot run here; with
    /// `VNET_REQUIRE_PRIVILEGED` set, a test that cannot run fails.
    fn privileged(test: &str) -> Option<Netns> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let why = if unsafe { libc::geteuid() } != 0 {
            "needs root (network namespaces)".to_string()
        } else {
            match Netns::create() {
                Ok(ns) => return Some(ns),
                Err(e) => format!("cannot create a network namespace: {e}"),
            }
        };
        if std::env::var_os("VNET_REQUIRE_PRIVILEGED").is_some() {
            panic!("{test}: {why}, and VNET_REQUIRE_PRIVILEGED is set");
        }
        eprintln!("skipped: {test} {why}");
        None
    }

    /// Run `f` on a fresh thread that has entered namespace `ns` (the test thread stays
    /// where it is); its panic is the test's.
    fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", ns.name);
        std::thread::spawn(move || {
            let target = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns(2) on a valid namespace fd; it changes only this thread's
            // network namespace, and the thread ends with `f`.
            let rc = unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    }

    fn ifindex(name: &str) -> u32 {
        let c = std::ffi::CString::new(name).unwrap();
        // SAFETY: `c` is a NUL-terminated string alive for the call.
        let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
        assert_ne!(i, 0, "no interface {name}: {}", io::Error::last_os_error());
        i
    }

    /// A veth takes redirects exactly when its peer has GRO on (Linux 6.3+).
    #[test]
    fn veth_takes_redirects_when_peer_has_gro() {
        let Some(ns) = privileged("veth_takes_redirects_when_peer_has_gro") else {
            return;
        };
        ns.run(&[
            "ip", "link", "add", "name", "a", "type", "veth", "peer", "name", "b",
        ]);
        ns.run(&["ip", "link", "set", "dev", "a", "up"]);
        ns.run(&["ip", "link", "set", "dev", "b", "up"]);

        let query = |ns: &Netns| {
            in_netns(ns, || {
                let mut q = XdpFeatures::open()?;
                let (a, b) = (ifindex("a"), ifindex("b"));
                Ok::<_, io::Error>((q.query(a)?, q.query(b)?))
            })
        };

        ns.run(&["ethtool", "-K", "b", "gro", "off"]);
        let (off, b_off) = match query(&ns) {
            Err(e) if e.kind() == io::ErrorKind::Unsupported => {
                if std::env::var_os("VNET_REQUIRE_PRIVILEGED").is_some() {
                    panic!("veth_takes_redirects_when_peer_has_gro: {e}");
                }
                eprintln!("skipped: veth_takes_redirects_when_peer_has_gro: {e}");
                return;
            }
            r => r.expect("query a and b, b's GRO off"),
        };
        ns.run(&["ethtool", "-K", "b", "gro", "on"]);
        let (on, b_on) = query(&ns).expect("query a and b, b's GRO on");
        eprintln!(
            "veth a, peer GRO off: {off:#x} ({}); on: {on:#x} ({}); b: {b_off:#x} / {b_on:#x}",
            XdpFeatures::describe(off),
            XdpFeatures::describe(on),
        );
        assert!(!XdpFeatures::takes_redirects(off), "peer GRO off: {off:#x}");
        assert!(XdpFeatures::takes_redirects(on), "peer GRO on: {on:#x}");
        for f in [off, on] {
            assert_ne!(f & XdpFeatures::BASIC, 0, "{f:#x}");
            assert_ne!(f & XdpFeatures::REDIRECT, 0, "{f:#x}");
        }
        // b's bits follow a's GRO, which did not change.
        assert_eq!(b_off, b_on);

        // An interface that went away: the kernel's ENODEV, from a socket opened in
        // the namespace that had it.
        let a = in_netns(&ns, || ifindex("a"));
        ns.run(&["ip", "link", "del", "dev", "a"]);
        let err = in_netns(&ns, move || {
            XdpFeatures::open().and_then(|mut q| q.query(a))
        })
        .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    }
}
