//! Internal mode (VirtualBox `intnet`): a learning switch among the VM ports of one named
//! network. No host port, no uplink; no DHCP unless configured (then Host-only's server).
//! Networks with different names are separate dataplanes and never exchange a frame.
//!
//! Invariants: every port of the dataplane is a VM port of this network; without DHCP the
//! pipeline never rewrites frames and never originates any.

use crate::dhcp::{DhcpConfigError, DhcpServer, DhcpServerConfig};
use crate::gateway::Gateway;
use crate::layout::PortLayout;
use crate::segment::{SegmentKind, SwitchedMode};
use crate::switch::{L2Switch, SwitchConfig};

pub use crate::segment::SWEEP_EVERY;

/// The Internal mode's pipeline.
pub type InternalMode = SwitchedMode;

/// Settings of an Internal network.
#[derive(Debug, Clone)]
pub struct InternalConfig {
    /// The network's name (VirtualBox `--intnet`), default `intnet`.
    pub network: String,
    /// Number of VM ports (dataplane ports `0..vms`).
    pub vms: usize,
    /// The switch's FDB settings.
    pub switch: SwitchConfig,
    /// An optional DHCP server (`--dhcp`).
    pub dhcp: Option<DhcpServerConfig>,
}

impl InternalConfig {
    /// `vms` VM ports on network `intnet` with default switch settings and no DHCP.
    pub fn new(vms: usize) -> Self {
        Self {
            network: "intnet".into(),
            vms,
            switch: SwitchConfig::default(),
            dhcp: None,
        }
    }
}

impl SwitchedMode {
    /// The Internal mode pipeline.
    ///
    /// # Errors
    /// When the DHCP configuration is invalid or its lease file unreadable.
    pub fn internal(config: InternalConfig) -> Result<Self, DhcpConfigError> {
        let layout = PortLayout::new(config.vms, false, false);
        let gateway = match config.dhcp {
            Some(dhcp) => {
                let ip = dhcp.server_ip;
                let server = DhcpServer::new(dhcp)?;
                Some(Gateway::new(&[ip], layout.all()).with_dhcp(server, ip))
            }
            None => None,
        };
        Ok(Self::from_parts(
            SegmentKind::Internal,
            layout,
            L2Switch::new(layout.vm_mask(), config.switch),
            gateway,
        ))
    }
}
