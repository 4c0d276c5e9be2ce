//! A minimal rtnetlink client: which XDP programs an interface has, its MAC address, MTU
//! and whether it is up.
//!
//! Used at setup, to report the attach mode the kernel actually shows (libxdp may reuse
//! a program someone else attached) and to tell a stale sysfs view from the right one
//! (see `napi`); by `link`, to find a program someone else attached before touching an
//! interface, to detach a program a killed run left, and to watch a running port's
//! interface. A netlink socket belongs to the network namespace it was created in,
//! here the calling thread's.
//!
//! Detaching is left to libxdp, which counts the sockets using its program and detaches
//! it when the last one is deleted (verified by the `xdp_program_detached_on_drop`
//! test); detaching here as well could pull the program from under another process's
//! sockets on other queues of the same interface.
//!
//! Messages are built and parsed by hand (native endianness, 4-byte attribute
//! alignment); only the syscalls are `unsafe`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_SETLINK: u16 = 19;
const IFLA_ADDRESS: u16 = 1;
const IFLA_MTU: u16 = 4;
const IFLA_EXT_MASK: u16 = 29;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_FD: u16 = 1;
const IFLA_XDP_FLAGS: u16 = 3;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = 0x3fff;
const RTEXT_FILTER_SKIP_STATS: u32 = 1 << 3;

/// XDP programs attached to an interface, by mode (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpAttachment {
    /// Program id attached in native (driver) mode.
    pub drv: u32,
    /// Program id attached in generic (skb) mode.
    pub skb: u32,
    /// Program id offloaded to hardware.
    pub hw: u32,
}

impl XdpAttachment {
    /// No program in any mode.
    #[cfg(test)]
    pub fn is_none(&self) -> bool {
        self.drv == 0 && self.skb == 0 && self.hw == 0
    }
}

/// What rtnetlink says about one interface.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkState {
    /// The hardware address, when the interface has a 6-byte one.
    pub mac: Option<[u8; 6]>,
    /// Attached XDP programs.
    pub xdp: XdpAttachment,
    /// The interface's MTU.
    pub mtu: Option<u32>,
    /// `ifi_flags` (`IFF_UP`, `IFF_RUNNING`...).
    pub flags: u32,
}

/// A NETLINK_ROUTE socket of the namespace it was opened in.
#[derive(Debug)]
pub struct RtNetlink {
    fd: OwnedFd,
    seq: u32,
}

impl RtNetlink {
    /// Open a route netlink socket in the calling thread's network namespace.
    ///
    /// # Errors
    /// The OS error of `socket(AF_NETLINK)`.
    pub fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call with constant arguments; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
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
        Ok(Self { fd, seq: 0 })
    }

    /// The MAC address and XDP programs of interface `ifindex`.
    ///
    /// # Errors
    /// ENODEV when no such interface exists in the socket's namespace; other OS errors.
    pub fn link(&mut self, ifindex: u32) -> io::Result<LinkState> {
        let payload = self.request(RTM_GETLINK, 0, ifindex, |buf| {
            push_attr(buf, IFLA_EXT_MASK, &RTEXT_FILTER_SKIP_STATS.to_ne_bytes());
        })?;
        Ok(parse_link(&payload))
    }

    /// Detach the XDP program attached to `ifindex` with `xdp_flags` (the mode it was
    /// attached in: `XDP_FLAGS_DRV_MODE` or `XDP_FLAGS_SKB_MODE`).
    ///
    /// # Errors
    /// The kernel's answer (ENODEV when the interface is gone).
    pub fn detach_xdp(&mut self, ifindex: u32, xdp_flags: u32) -> io::Result<()> {
        self.request(RTM_SETLINK, NLM_F_ACK, ifindex, |buf| {
            let start = begin_nested(buf, IFLA_XDP);
            push_attr(buf, IFLA_XDP_FD, &(-1i32).to_ne_bytes());
            push_attr(buf, IFLA_XDP_FLAGS, &xdp_flags.to_ne_bytes());
            end_nested(buf, start);
        })
        .map(|_| ())
    }

    /// Send one request about `ifindex` (with `flags` besides `NLM_F_REQUEST`) and wait
    /// for its answer: the payload of an RTM_NEWLINK reply, or nothing for a positive
    /// acknowledgement.
    fn request(
        &mut self,
        msg_type: u16,
        flags: u16,
        ifindex: u32,
        attrs: impl FnOnce(&mut Vec<u8>),
    ) -> io::Result<Vec<u8>> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched below
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid

        // struct ifinfomsg: family, pad, type, index, flags, change
        buf.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
        buf.extend_from_slice(&ifindex.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        attrs(&mut buf);
        let len = buf.len() as u32;
        buf[..4].copy_from_slice(&len.to_ne_bytes());

        // SAFETY: `buf` is a live, initialised buffer of `buf.len()` bytes the kernel only
        // reads; an unbound netlink socket sends to the kernel (port id 0).
        let sent = unsafe { libc::send(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), 0) };
        if sent < 0 {
            return Err(io::Error::last_os_error());
        }

        let mut reply = vec![0u8; 32 * 1024];
        loop {
            // SAFETY: `reply` is a live buffer of `reply.len()` writable bytes; the kernel
            // writes at most that many.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    reply.as_mut_ptr().cast(),
                    reply.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut msgs = &reply[..n as usize];
            while msgs.len() >= NLMSG_HDRLEN {
                let mlen = u32_at(msgs, 0) as usize;
                let mtype = u16_at(msgs, 4);
                let mseq = u32_at(msgs, 8);
                if mlen < NLMSG_HDRLEN || mlen > msgs.len() {
                    break;
                }
                let body = &msgs[NLMSG_HDRLEN..mlen];
                if mseq == seq {
                    if mtype == NLMSG_ERROR {
                        let code = body
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        return if code == 0 {
                            Ok(Vec::new())
                        } else {
                            Err(io::Error::from_raw_os_error(-code))
                        };
                    }
                    if mtype == RTM_NEWLINK {
                        return Ok(body.to_vec());
                    }
                }
                msgs = &msgs[align4(mlen).min(msgs.len())..];
            }
        }
    }
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

fn begin_nested(buf: &mut Vec<u8>, ty: u16) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
    start
}

fn end_nested(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
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

/// Parse the body of an RTM_NEWLINK message (ifinfomsg + attributes).
fn parse_link(body: &[u8]) -> LinkState {
    let mut state = LinkState::default();
    let Some(attr_bytes) = body.get(IFINFOMSG_LEN..) else {
        return state;
    };
    // struct ifinfomsg: family, pad, type (2), index (4), flags (4), change (4).
    state.flags = u32_at(body, 8);
    let id = |p: &[u8]| if p.len() >= 4 { u32_at(p, 0) } else { 0 };
    for (ty, payload) in attrs(attr_bytes) {
        match ty {
            IFLA_ADDRESS if payload.len() == 6 => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(payload);
                state.mac = Some(mac);
            }
            IFLA_MTU if payload.len() == 4 => state.mtu = Some(u32_at(payload, 0)),
            IFLA_XDP => {
                for (xty, xp) in attrs(payload) {
                    match xty {
                        IFLA_XDP_DRV_PROG_ID => state.xdp.drv = id(xp),
                        IFLA_XDP_SKB_PROG_ID => state.xdp.skb = id(xp),
                        IFLA_XDP_HW_PROG_ID => state.xdp.hw = id(xp),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    fn newlink_body(mac: &[u8], xdp: &[(u16, u32)]) -> Vec<u8> {
        let mut b = vec![0u8; IFINFOMSG_LEN];
        push_attr(&mut b, 3, b"vm1\0"); // IFLA_IFNAME, ignored
        push_attr(&mut b, IFLA_ADDRESS, mac);
        let start = begin_nested(&mut b, IFLA_XDP);
        push_attr(&mut b, 2, &[1]); // IFLA_XDP_ATTACHED
        for &(ty, id) in xdp {
            push_attr(&mut b, ty, &id.to_ne_bytes());
        }
        end_nested(&mut b, start);
        b
    }

    #[test]
    fn parses_mac_and_programs_per_mode() {
        let body = newlink_body(&[2, 0, 0, 0, 0, 7], &[(IFLA_XDP_DRV_PROG_ID, 41), (4, 41)]);
        let s = parse_link(&body);
        assert_eq!(s.mac, Some([2, 0, 0, 0, 0, 7]));
        assert_eq!(
            s.xdp,
            XdpAttachment {
                drv: 41,
                skb: 0,
                hw: 0
            }
        );
        assert_eq!(s.flags, 0);
        let mut body = newlink_body(&[0; 6], &[(IFLA_XDP_SKB_PROG_ID, 9)]);
        body[8..12].copy_from_slice(&0x41u32.to_ne_bytes());
        let s = parse_link(&body);
        assert_eq!(s.flags, 0x41);
        assert_eq!(s.xdp.skb, 9);
        assert!(!s.xdp.is_none());
        assert!(parse_link(&newlink_body(&[0; 6], &[])).xdp.is_none());
    }

    #[test]
    fn truncated_or_garbage_bodies_do_not_panic() {
        let body = newlink_body(&[1, 2, 3, 4, 5, 6], &[(IFLA_XDP_DRV_PROG_ID, 3)]);
        for cut in 0..body.len() {
            let _ = parse_link(&body[..cut]);
        }
        let _ = parse_link(&[0xff; 64]);
    }

    #[test]
    fn loopback_has_no_xdp() {
        let mut nl = RtNetlink::open().expect("route netlink socket");
        let lo = nl.link(1).expect("ifindex 1 is lo");
        assert_eq!(lo.mac, Some([0; 6]));
        assert!(lo.xdp.is_none());
        let err = nl.link(0x7fff_fff0).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ENODEV));
    }
}
