//! Bridged mode: the VMs appear on the uplink's LAN with their own MACs. A learning
//! bridge among the VM ports, the host port (the host's own stack on the NIC) and the
//! uplink (the NIC): everything reaches everything, both ways.
//!
//! Invariants: frames are never rewritten and never originated; every port of the
//! layout is a bridge member.

use crate::internal::SWEEP_EVERY;
use crate::layout::PortLayout;
use crate::switch::{L2Switch, SwitchConfig};
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, Verdict};
use vnet_core::time::Instant;

/// The Bridged mode pipeline.
#[derive(Debug)]
pub struct BridgedMode {
    layout: PortLayout,
    switch: L2Switch,
    next_sweep: Instant,
}

impl BridgedMode {
    /// A bridge over every port of `layout`.
    pub fn new(layout: PortLayout, switch: SwitchConfig) -> Self {
        Self {
            layout,
            switch: L2Switch::new(layout.all(), switch),
            next_sweep: Instant::ZERO,
        }
    }

    /// The port layout.
    pub fn layout(&self) -> PortLayout {
        self.layout
    }

    /// The bridge (read-only).
    pub fn switch(&self) -> &L2Switch {
        &self.switch
    }
}

impl Pipeline for BridgedMode {
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

#[cfg(test)]
mod tests {
    use super::*;
    use vnet_core::pipeline::PortMask;

    fn run(mode: &mut BridgedMode, pool: &mut FramePool, bytes: &[u8], port: PortId) -> Verdict {
        let mut pkts = [pool.alloc_copy(bytes, port).unwrap()];
        let mut v = [Verdict::Consumed];
        mode.process(Instant::ZERO, pool, &mut pkts, &mut v);
        pool.free(pkts[0].frame);
        v[0]
    }

    #[test]
    fn vm_host_and_uplink_all_reach_each_other() {
        let layout = PortLayout::new(2, true, true);
        let mut m = BridgedMode::new(layout, SwitchConfig::default());
        let mut pool = FramePool::with_heap(8, 2048, 0);
        let mac = |n: u8| [2, 0, 0, 0, 0, n];
        let frame = |d: [u8; 6], s: [u8; 6]| {
            let mut f = vec![0u8; 60];
            f[..6].copy_from_slice(&d);
            f[6..12].copy_from_slice(&s);
            f
        };
        // Everyone announces itself; a broadcast from the uplink reaches VMs and host.
        assert_eq!(
            run(&mut m, &mut pool, &frame([0xff; 6], mac(4)), 3),
            Verdict::Tx(PortMask(0b0111))
        );
        for p in 0..3u8 {
            run(&mut m, &mut pool, &frame([0xff; 6], mac(p + 1)), p as PortId);
        }
        // Unicast in every direction goes straight to the owner.
        for src in 0..4u8 {
            for dst in 0..4u8 {
                if src == dst {
                    continue;
                }
                let v = run(&mut m, &mut pool, &frame(mac(dst + 1), mac(src + 1)), src as PortId);
                assert_eq!(v, Verdict::Tx(PortMask::one(dst as PortId)), "{src} -> {dst}");
            }
        }
    }
}
