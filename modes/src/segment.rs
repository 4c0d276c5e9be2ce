//! A switched segment: the pipeline shared by the L2 modes (Internal, Host-only, Bridged).
//!
//! Per frame: learn its source in the switch; offer it to the gateway services (if the
//! mode has any: Host-only's DHCP server, Internal's optional one), which answer frames
//! for their own addresses in place; everything else is switched.
//!
//! Invariants: the services see a frame before the switch forwards it, but the switch
//! learns from every frame (so replies to a guest go straight to its port); a frame the
//! services answer never also reaches another port.

use crate::gateway::{Gateway, SharedDhcp};
use crate::layout::PortLayout;
use crate::switch::{L2Switch, SwitchConfig};
use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, Verdict};
use vnet_core::time::Instant;

/// How often aged FDB entries are reclaimed.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Which VirtualBox mode a segment implements (for messages and results).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// `intnet`.
    Internal,
    /// `vboxnet0`.
    HostOnly,
    /// Bridged onto the uplink.
    Bridged,
}

/// Everything needed to build a switched mode's pipeline for each worker: made once
/// (validating the configuration, creating the shared DHCP server), then
/// [`SegmentSpec::build`] once per worker.
#[derive(Debug, Clone)]
pub struct SegmentSpec {
    /// Which mode.
    pub kind: SegmentKind,
    /// The ports.
    pub layout: PortLayout,
    /// Which ports the switch connects.
    pub members: vnet_core::pipeline::PortMask,
    /// FDB settings.
    pub switch: SwitchConfig,
    /// The DHCP service address and the server shared by every worker.
    pub dhcp: Option<(Ipv4Addr, SharedDhcp)>,
}

impl SegmentSpec {
    /// The pipeline of worker `worker` (worker 0 sends the gratuitous ARPs).
    pub fn build(&self, worker: usize) -> SwitchedMode {
        let gateway = self.dhcp.as_ref().map(|(ip, server)| {
            let gw = Gateway::new(&[*ip], self.layout.all()).with_dhcp(server.clone(), *ip);
            if worker == 0 {
                gw
            } else {
                gw.without_announcements()
            }
        });
        SwitchedMode::from_parts(
            self.kind,
            self.layout,
            L2Switch::new(self.members, self.switch),
            gateway,
        )
    }
}

/// The pipeline of a switched mode.
#[derive(Debug)]
pub struct SwitchedMode {
    kind: SegmentKind,
    layout: PortLayout,
    switch: L2Switch,
    gateway: Option<Gateway>,
    next_sweep: Instant,
}

impl SwitchedMode {
    /// A segment of `kind` over `layout` with `switch` and optional services.
    pub fn from_parts(
        kind: SegmentKind,
        layout: PortLayout,
        switch: L2Switch,
        gateway: Option<Gateway>,
    ) -> Self {
        Self {
            kind,
            layout,
            switch,
            gateway,
            next_sweep: Instant::ZERO,
        }
    }

    /// Which mode this is.
    pub fn kind(&self) -> SegmentKind {
        self.kind
    }

    /// The port layout.
    pub fn layout(&self) -> PortLayout {
        self.layout
    }

    /// The switch (read-only).
    pub fn switch(&self) -> &L2Switch {
        &self.switch
    }

    /// The services, if any.
    pub fn gateway(&self) -> Option<&Gateway> {
        self.gateway.as_ref()
    }

    /// The services, mutable.
    pub fn gateway_mut(&mut self) -> Option<&mut Gateway> {
        self.gateway.as_mut()
    }
}

impl Pipeline for SwitchedMode {
    fn process(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        for (pkt, verdict) in pkts.iter_mut().zip(verdicts.iter_mut()) {
            let Some(gw) = self.gateway.as_mut() else {
                *verdict = self.switch.forward(now, pool.bytes(pkt), pkt.port);
                continue;
            };
            // Learn from the request before the services rewrite it into a reply.
            self.switch.learn(now, pool.bytes(pkt), pkt.port);
            *verdict = match gw.intercept(now, pool, pkt) {
                Some(v) => v,
                None => self.switch.route(now, pool.bytes(pkt), pkt.port),
            };
        }
    }

    fn observe_handoff(&mut self, now: Instant, bytes: &[u8], ingress: PortId) {
        self.switch.learn(now, bytes, ingress);
    }

    fn poll_at(&self) -> Option<Instant> {
        Some(self.next_sweep)
    }

    fn poll(&mut self, now: Instant, pool: &mut FramePool, out: &mut Emitter) {
        if let Some(gw) = self.gateway.as_mut() {
            gw.poll(now, pool, out);
        }
        if now >= self.next_sweep {
            self.switch.sweep(now);
            self.next_sweep = now + SWEEP_EVERY;
        }
    }
}
