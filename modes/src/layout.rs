//! Port layout: which dataplane port plays which role.
//!
//! Ports are numbered VMs first (`0..vms`), then the host port, then the uplink, in the
//! order `vnet-bench run` takes them from the command line. Every mode and the harness
//! share this numbering.

use vnet_core::frame::{PortId, MAX_PORTS};
use vnet_core::pipeline::PortMask;

/// The role of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRole {
    /// The n-th VM port.
    Vm(usize),
    /// The host's own stack.
    Host,
    /// The uplink (the physical NIC's LAN, "the Internet").
    Uplink,
}

/// Which ports a dataplane has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortLayout {
    vms: usize,
    host: bool,
    uplink: bool,
}

impl PortLayout {
    /// `vms` VM ports, optionally a host port and an uplink.
    ///
    /// # Panics
    /// When the ports would not fit in a [`PortMask`].
    pub fn new(vms: usize, host: bool, uplink: bool) -> Self {
        assert!(
            vms + host as usize + uplink as usize <= MAX_PORTS,
            "too many ports"
        );
        Self { vms, host, uplink }
    }

    /// Number of VM ports.
    pub fn vms(&self) -> usize {
        self.vms
    }

    /// Number of ports in all.
    pub fn len(&self) -> usize {
        self.vms + self.host as usize + self.uplink as usize
    }

    /// Whether there are no ports.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The host port, if any.
    pub fn host(&self) -> Option<PortId> {
        self.host.then_some(self.vms as PortId)
    }

    /// The uplink port, if any.
    pub fn uplink(&self) -> Option<PortId> {
        self.uplink
            .then_some((self.vms + self.host as usize) as PortId)
    }

    /// The VM ports.
    pub fn vm_mask(&self) -> PortMask {
        PortMask::first(self.vms)
    }

    /// Every port.
    pub fn all(&self) -> PortMask {
        PortMask::first(self.len())
    }

    /// The role of a port.
    pub fn role(&self, port: PortId) -> Option<PortRole> {
        let p = port as usize;
        if p < self.vms {
            Some(PortRole::Vm(p))
        } else if Some(port) == self.host() {
            Some(PortRole::Host)
        } else if Some(port) == self.uplink() {
            Some(PortRole::Uplink)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_vms_then_host_then_uplink() {
        let l = PortLayout::new(2, true, true);
        assert_eq!(l.len(), 4);
        assert_eq!(l.host(), Some(2));
        assert_eq!(l.uplink(), Some(3));
        assert_eq!(l.role(1), Some(PortRole::Vm(1)));
        assert_eq!(l.role(3), Some(PortRole::Uplink));
        assert_eq!(l.role(4), None);
        assert_eq!(l.vm_mask(), PortMask(0b11));
        let no_host = PortLayout::new(3, false, true);
        assert_eq!(no_host.host(), None);
        assert_eq!(no_host.uplink(), Some(3));
    }
}
