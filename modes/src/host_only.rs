//! Host-only mode (VirtualBox `vboxnet0`): the Internal switch plus the host port, with a
//! DHCP server. Defaults are VirtualBox's: host 192.168.56.1/24, DHCP server
//! 192.168.56.100, pool 192.168.56.101-192.168.56.254. There is no uplink: nothing ever
//! leaves towards an outside network.
//!
//! Invariants: the ports are the VMs and the host, nothing else; the DHCP server answers
//! from its own address and MAC (it is a service of the dataplane, not the host).

use crate::dhcp::{DhcpConfigError, DhcpServer, DhcpServerConfig};
use crate::guard::GuardConfig;
use crate::layout::PortLayout;
use crate::segment::{SegmentKind, SegmentSpec, SwitchedMode};
use crate::switch::SwitchConfig;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use vnet_core::time::Instant;

/// The Host-only mode's pipeline.
pub type HostOnlyMode = SwitchedMode;

/// VirtualBox's default host address on `vboxnet0`.
pub const DEFAULT_HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 1);
/// VirtualBox's default prefix length on `vboxnet0`.
pub const DEFAULT_PREFIX: u8 = 24;
/// VirtualBox's default DHCP server address on `vboxnet0`.
pub const DEFAULT_DHCP_SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 100);
/// VirtualBox's default first pool address.
pub const DEFAULT_POOL_START: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 101);
/// VirtualBox's default last pool address.
pub const DEFAULT_POOL_END: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 254);

/// Settings of a Host-only network.
#[derive(Debug, Clone)]
pub struct HostOnlyConfig {
    /// Number of VM ports (dataplane ports `0..vms`; the host port is `vms`).
    pub vms: usize,
    /// The switch's FDB settings.
    pub switch: SwitchConfig,
    /// The DHCP server (None: `--no-dhcp`).
    pub dhcp: Option<DhcpServerConfig>,
}

impl SegmentSpec {
    /// The Host-only mode.
    ///
    /// # Errors
    /// When the DHCP configuration is invalid or its lease file unreadable. `now` is the
    /// dataplane clock at start (the lease file's wall-clock expiries are mapped onto it).
    pub fn host_only(config: HostOnlyConfig, now: Instant) -> Result<Self, DhcpConfigError> {
        let layout = PortLayout::new(config.vms, true, false);
        let dhcp = match config.dhcp {
            Some(dhcp) => Some((
                dhcp.server_ip,
                Arc::new(Mutex::new(DhcpServer::new(dhcp, now, SystemTime::now())?)),
            )),
            None => None,
        };
        Ok(Self {
            kind: SegmentKind::HostOnly,
            layout,
            members: layout.all(),
            switch: config.switch,
            guard: GuardConfig::default(),
            dhcp,
        })
    }
}

impl SwitchedMode {
    /// The Host-only pipeline for a single worker.
    ///
    /// # Errors
    /// As [`SegmentSpec::host_only`].
    pub fn host_only(config: HostOnlyConfig, now: Instant) -> Result<Self, DhcpConfigError> {
        Ok(SegmentSpec::host_only(config, now)?.build(0))
    }
}
