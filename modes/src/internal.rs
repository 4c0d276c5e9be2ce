//! Internal mode (VirtualBox `intnet`): a learning switch among the VM ports of one named
//! network. No host port, no uplink; no DHCP unless configured (then Host-only's server).
//! Networks with different names are separate dataplanes and never exchange a frame.
//!
//! Invariants: every port of the dataplane is a VM port of this network; without DHCP the
//! pipeline never rewrites frames and never originates any.

use crate::dhcp::{DhcpConfigError, DhcpServer, DhcpServerConfig};
use crate::guard::GuardConfig;
use crate::layout::PortLayout;
use crate::segment::{SegmentKind, SegmentSpec, SwitchedMode};
use crate::switch::SwitchConfig;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use vnet_core::time::Instant;

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

impl SegmentSpec {
    /// The Internal mode.
    ///
    /// # Errors
    /// When the DHCP configuration is invalid or its lease file unreadable. `now` is the
    /// dataplane clock at start (the lease file's wall-clock expiries are mapped onto it).
    pub fn internal(config: InternalConfig, now: Instant) -> Result<Self, DhcpConfigError> {
        let layout = PortLayout::new(config.vms, false, false);
        let dhcp = match config.dhcp {
            Some(dhcp) => Some((
                dhcp.server_ip,
                Arc::new(Mutex::new(DhcpServer::new(dhcp, now, SystemTime::now())?)),
            )),
            None => None,
        };
        Ok(Self {
            kind: SegmentKind::Internal,
            layout,
            members: layout.vm_mask(),
            switch: config.switch,
            guard: GuardConfig::default(),
            dhcp,
        })
    }
}

impl SwitchedMode {
    /// The Internal mode pipeline for a single worker.
    ///
    /// # Errors
    /// As [`SegmentSpec::internal`].
    pub fn internal(config: InternalConfig, now: Instant) -> Result<Self, DhcpConfigError> {
        Ok(SegmentSpec::internal(config, now)?.build(0))
    }
}
