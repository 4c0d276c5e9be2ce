//! Internal mode (VirtualBox `intnet`): a learning switch among the VM ports of one named
//! network. No host port, no uplink, no DHCP unless configured. Networks with different
//! names are separate dataplanes and never exchange a frame.
//!
//! Invariants: every port of the dataplane is a VM port of this network; the pipeline
//! never rewrites frames and never originates any.

use crate::switch::{L2Switch, SwitchConfig};
use std::time::Duration;
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;

/// How often aged FDB entries are reclaimed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Settings of an Internal network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalConfig {
    /// The network's name (VirtualBox `--intnet`), default `intnet`.
    pub network: String,
    /// Number of VM ports (dataplane ports `0..vms`).
    pub vms: usize,
    /// The switch's FDB settings.
    pub switch: SwitchConfig,
}

impl InternalConfig {
    /// `vms` VM ports on network `intnet` with default switch settings.
    pub fn new(vms: usize) -> Self {
        Self {
            network: "intnet".into(),
            vms,
            switch: SwitchConfig::default(),
        }
    }
}

/// The Internal mode pipeline.
#[derive(Debug)]
pub struct InternalMode {
    config: InternalConfig,
    switch: L2Switch,
    next_sweep: Instant,
}

impl InternalMode {
    /// The pipeline for `config`.
    pub fn new(config: InternalConfig) -> Self {
        let switch = L2Switch::new(PortMask::first(config.vms), config.switch);
        Self {
            config,
            switch,
            next_sweep: Instant::ZERO,
        }
    }

    /// The network name.
    pub fn network(&self) -> &str {
        &self.config.network
    }

    /// The switch stage (read-only).
    pub fn switch(&self) -> &L2Switch {
        &self.switch
    }
}

impl Pipeline for InternalMode {
    fn process(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        for (pkt, verdict) in pkts.iter().zip(verdicts.iter_mut()) {
            *verdict = self.switch.forward(now, pool.bytes(pkt), pkt.port);
        }
    }

    fn observe_handoff(&mut self, now: Instant, bytes: &[u8], ingress: PortId) {
        self.switch.learn(now, bytes, ingress);
    }

    fn poll_at(&self) -> Option<Instant> {
        Some(self.next_sweep)
    }

    fn poll(&mut self, now: Instant, _pool: &mut FramePool, _out: &mut Emitter) {
        if now >= self.next_sweep {
            self.switch.sweep(now);
            self.next_sweep = now + SWEEP_EVERY;
        }
    }
}
