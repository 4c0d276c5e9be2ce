//! A port's interface as seen from outside the data path: there or gone, carrying
//! traffic or not, and whether someone else's XDP program already sits on it.
//!
//! [`LinkProbe::status`] is what the link watcher of `vnet-bench run` asks about each
//! port every ~200 ms, from the control thread, never from a worker: one
//! `if_nametoindex` and one rtnetlink request per port. [`attached_program`] is asked
//! once per interface before anything is bound, so that an interface another program
//! (or another run) holds is refused before it is touched; [`detach_program`] removes
//! the program a killed run left (libxdp detaches its program when the last socket
//! using it is deleted, which a SIGKILL never does). Interfaces are looked up in
//! the calling thread's network namespace.

use super::netlink::RtNetlink;
use super::{ifindex_of, AttachMode, XdpError};

/// What an interface name stands for right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkStatus {
    /// No interface of that name.
    Gone,
    /// An interface of that name.
    Present {
        /// Its index (a new one when the interface was deleted and made again).
        ifindex: u32,
        /// Up with a carrier (`IFF_UP` and `IFF_RUNNING`): frames can pass.
        running: bool,
    },
}

/// Asks the kernel about interfaces by name; keeps one rtnetlink socket.
#[derive(Debug, Default)]
pub struct LinkProbe {
    nl: Option<RtNetlink>,
}

impl LinkProbe {
    /// A probe for the calling thread's network namespace (the socket is opened on
    /// first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// What `ifname` is now. When rtnetlink cannot be asked, an existing interface is
    /// taken as running (the watcher then only notices deletions).
    pub fn status(&mut self, ifname: &str) -> LinkStatus {
        let Ok(ifindex) = ifindex_of(ifname) else {
            return LinkStatus::Gone;
        };
        if self.nl.is_none() {
            self.nl = RtNetlink::open().ok();
        }
        let Some(nl) = self.nl.as_mut() else {
            return LinkStatus::Present {
                ifindex,
                running: true,
            };
        };
        match nl.link(ifindex) {
            Ok(link) => {
                let need = (libc::IFF_UP | libc::IFF_RUNNING) as u32;
                LinkStatus::Present {
                    ifindex,
                    running: link.flags & need == need,
                }
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => LinkStatus::Gone,
            Err(_) => {
                // A socket in a bad state (a timed-out answer still queued): a fresh one
                // next time.
                self.nl = None;
                LinkStatus::Present {
                    ifindex,
                    running: true,
                }
            }
        }
    }
}

/// The XDP program attached to `ifname`, if any: its id and how it is attached.
///
/// # Errors
/// [`XdpError::NoInterface`] when there is no such interface; [`XdpError::Os`] when
/// rtnetlink cannot be asked.
pub fn attached_program(ifname: &str) -> Result<Option<(u32, AttachMode)>, XdpError> {
    let index = ifindex_of(ifname)?;
    let os = |e: std::io::Error| XdpError::from_os("ask rtnetlink about", ifname, 0, (0, 0), e);
    let link = RtNetlink::open()
        .and_then(|mut nl| nl.link(index))
        .map_err(os)?;
    Ok(match link.xdp {
        x if x.drv != 0 => Some((x.drv, AttachMode::Native)),
        x if x.skb != 0 => Some((x.skb, AttachMode::Generic)),
        x if x.hw != 0 => Some((x.hw, AttachMode::Native)),
        _ => None,
    })
}

/// Detach XDP program `prog_id` from `ifname` if it is the one attached there (a
/// program a killed run left behind; a different program is left alone). Returns
/// whether it was detached.
///
/// # Errors
/// [`XdpError::NoInterface`] when there is no such interface; the OS error of
/// rtnetlink otherwise.
pub fn detach_program(ifname: &str, prog_id: u32) -> Result<bool, XdpError> {
    const XDP_FLAGS_SKB_MODE: u32 = 1 << 1;
    const XDP_FLAGS_DRV_MODE: u32 = 1 << 2;
    const XDP_FLAGS_HW_MODE: u32 = 1 << 3;
    let index = ifindex_of(ifname)?;
    let os =
        |e: std::io::Error| XdpError::from_os("detach the XDP program of", ifname, 0, (0, 0), e);
    let mut nl = RtNetlink::open().map_err(os)?;
    let xdp = nl.link(index).map_err(os)?.xdp;
    let flags = match prog_id {
        0 => return Ok(false),
        id if xdp.drv == id => XDP_FLAGS_DRV_MODE,
        id if xdp.skb == id => XDP_FLAGS_SKB_MODE,
        id if xdp.hw == id => XDP_FLAGS_HW_MODE,
        _ => return Ok(false),
    };
    nl.detach_xdp(index, flags).map_err(os)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_name_is_gone_and_loopback_is_present() {
        let mut probe = LinkProbe::new();
        assert_eq!(probe.status("vnxt-nosuch9"), LinkStatus::Gone);
        assert!(matches!(
            probe.status("lo"),
            LinkStatus::Present { ifindex: 1, .. }
        ));
        assert_eq!(attached_program("lo").unwrap(), None);
        assert!(!detach_program("lo", 7).unwrap(), "no program 7 on lo");
        assert!(matches!(
            attached_program("vnxt-nosuch9"),
            Err(XdpError::NoInterface { .. })
        ));
    }
}
