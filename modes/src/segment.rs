//! A switched segment: the pipeline shared by the L2 modes (Internal, Host-only, Bridged).
//!
//! Per frame: a frame from a VM port passes the guard first (rate limits on broadcast and
//! on ARP to the services, [`crate::guard`]; an ARP claim of a service address or of an
//! address the DHCP server leased to another guest is dropped as `spoofed`); then learn
//! its source in the switch; offer it to the gateway services (if the mode has any:
//! Host-only's DHCP server, Internal's optional one), which answer frames for their own
//! addresses in place; everything else is switched.
//!
//! Invariants: a frame the guard drops is neither learned nor forwarded; the services see
//! a frame before the switch forwards it, but the switch learns from every other frame
//! (so replies to a guest go straight to its port); a frame the services answer never
//! also reaches another port.

use crate::gateway::{Gateway, SharedDhcp};
use crate::guard::{GuardConfig, PortGuard};
use crate::layout::PortLayout;
use crate::switch::{L2Switch, Learn, SwitchConfig};
use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::counters::DropReason;
use vnet_core::fastpath::{FastPathQueue, Revoke, Seen};
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
    /// Rate limits of VM ports.
    pub guard: GuardConfig,
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
        .with_guard(self.guard)
    }
}

/// The pipeline of a switched mode.
#[derive(Debug)]
pub struct SwitchedMode {
    kind: SegmentKind,
    layout: PortLayout,
    switch: L2Switch,
    gateway: Option<Gateway>,
    guard: PortGuard,
    next_sweep: Instant,
    /// Offers of switched unicast flows to the fast path, revoked when an address moves
    /// or ages out.
    fastpath: FastPathQueue,
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
            guard: PortGuard::new(GuardConfig::default()),
            next_sweep: Instant::ZERO,
            fastpath: FastPathQueue::new(),
        }
    }

    /// Replaces the VM ports' rate limits.
    pub fn with_guard(mut self, config: GuardConfig) -> Self {
        self.guard = PortGuard::new(config);
        self
    }

    /// The guard (read-only).
    pub fn guard(&self) -> &PortGuard {
        &self.guard
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

impl SwitchedMode {
    /// The guard's verdict on a frame from VM port `port`: over a rate limit, or an ARP
    /// claim of an address that is not the sender's.
    #[inline]
    fn check_guest(&mut self, now: Instant, frame: &[u8], port: PortId) -> Option<DropReason> {
        let gw = self.gateway.as_ref();
        if let Some(reason) = self
            .guard
            .police(now, port, frame, |ip| gw.is_some_and(|g| g.is_service(ip)))
        {
            return Some(reason);
        }
        if frame.len() >= 14
            && frame[12..14] == [0x08, 0x06]
            && gw.is_some_and(|g| g.is_spoofed_arp(frame))
        {
            return Some(DropReason::Spoofed);
        }
        None
    }
}

/// The source MAC of a frame of at least 12 bytes (zeros when shorter).
pub(crate) fn src_of(bytes: &[u8]) -> [u8; 6] {
    let mut m = [0u8; 6];
    if let Some(b) = bytes.get(6..12) {
        m.copy_from_slice(b);
    }
    m
}

impl Pipeline for SwitchedMode {
    fn process(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        let vms = self.layout.vm_mask();
        for (pkt, verdict) in pkts.iter_mut().zip(verdicts.iter_mut()) {
            if vms.contains(pkt.port) {
                if let Some(reason) = self.check_guest(now, pool.bytes(pkt), pkt.port) {
                    *verdict = Verdict::Drop(reason);
                    continue;
                }
            }
            // Learn from the request before the services rewrite it into a reply.
            let learnt = self.switch.learn(now, pool.bytes(pkt), pkt.port);
            if learnt == Some(Learn::Moved) {
                self.fastpath.revoke(Revoke::Mac(src_of(pool.bytes(pkt))));
            }
            if let Some(v) = self
                .gateway
                .as_mut()
                .and_then(|gw| gw.intercept(now, pool, pkt))
            {
                *verdict = v;
                continue;
            }
            *verdict = self.switch.route(now, pool.bytes(pkt), pkt.port);
            if self.fastpath.enabled() {
                if let Some(offer) = L2Switch::offer(pool.bytes(pkt), pkt.port, *verdict) {
                    self.fastpath.offer(offer);
                }
            }
        }
    }

    fn observe_handoff(&mut self, now: Instant, bytes: &[u8], ingress: PortId) {
        if self.switch.learn(now, bytes, ingress) == Some(Learn::Moved) {
            self.fastpath.revoke(Revoke::Mac(src_of(bytes)));
        }
    }

    fn fastpath_queue(&mut self) -> Option<&mut FastPathQueue> {
        Some(&mut self.fastpath)
    }

    fn fastpath_seen(&mut self, seen: &Seen) {
        if let Seen::L2 { key, at, .. } = seen {
            self.switch.refresh(&key.src, key.ingress, *at);
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        Some(self.next_sweep)
    }

    fn poll(&mut self, now: Instant, pool: &mut FramePool, out: &mut Emitter) {
        if let Some(gw) = self.gateway.as_mut() {
            gw.poll(now, pool, out);
        }
        if now >= self.next_sweep {
            let q = &mut self.fastpath;
            self.switch
                .sweep_each(now, |mac| q.revoke(Revoke::Mac(mac)));
            self.next_sweep = now + SWEEP_EVERY;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::internal::InternalConfig;
    use vnet_core::pipeline::PortMask;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = dst.to_vec();
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(60, 0);
        f
    }

    fn run(
        m: &mut SwitchedMode,
        pool: &mut FramePool,
        now: Instant,
        f: &[u8],
        port: PortId,
    ) -> Verdict {
        let mut pkts = [pool.alloc_copy(f, port).unwrap()];
        let mut v = [Verdict::Consumed];
        m.process(now, pool, &mut pkts, &mut v);
        pool.free(pkts[0].frame);
        v[0]
    }

    #[test]
    fn poll_sweeps_aged_entries_once_a_second_and_handoffs_are_learned() {
        let aging = Duration::from_secs(10);
        let mut m = SwitchedMode::internal(
            InternalConfig {
                switch: SwitchConfig {
                    aging,
                    ..SwitchConfig::default()
                },
                ..InternalConfig::new(3)
            },
            Instant::ZERO,
        )
        .unwrap();
        let mut pool = FramePool::with_heap(4, 2048, 0);
        let mut out = Emitter::new();
        let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        let t0 = Instant::from_secs(100);
        // A frame another worker received teaches this one where `a` is.
        m.observe_handoff(t0, &frame([0xff; 6], a), 1);
        assert_eq!(
            run(&mut m, &mut pool, t0, &frame(a, b), 2),
            Verdict::Tx(PortMask::one(1))
        );
        // The first poll sweeps at once and schedules the next sweep a second later.
        m.poll(t0, &mut pool, &mut out);
        assert_eq!(m.poll_at(), Some(t0 + SWEEP_EVERY));
        assert_eq!(m.switch().fdb().len(), 2);
        // Past the aging time, a poll before the next sweep is due reclaims nothing...
        let late = t0 + aging + Duration::from_millis(1);
        m.next_sweep = late + Duration::from_millis(1);
        m.poll(late, &mut pool, &mut out);
        assert_eq!(m.switch().fdb().len(), 2);
        // ...the one at the sweep time reclaims both.
        m.poll(late + Duration::from_millis(1), &mut pool, &mut out);
        assert_eq!(m.switch().fdb().len(), 0);
        assert_eq!(
            m.poll_at(),
            Some(late + Duration::from_millis(1) + SWEEP_EVERY)
        );
        assert!(out.items().is_empty());
        assert!(m.gateway_mut().is_none());
        let mut h = SwitchedMode::host_only(
            crate::host_only::HostOnlyConfig {
                vms: 1,
                switch: SwitchConfig::default(),
                dhcp: Some(crate::dhcp::DhcpServerConfig::host_only()),
            },
            Instant::ZERO,
        )
        .unwrap();
        assert!(h.gateway_mut().is_some());
    }
}
