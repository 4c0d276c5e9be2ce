//! Bridged mode: the VMs appear on the uplink's LAN with their own MACs. A learning
//! bridge among the VM ports, the host port (the host's own stack on the NIC) and the
//! uplink (the NIC): everything reaches everything, both ways.
//!
//! Invariants: frames are never rewritten and never originated; every port of the
//! layout is a bridge member.

use crate::guard::GuardConfig;
use crate::layout::PortLayout;
use crate::segment::{SegmentKind, SegmentSpec, SwitchedMode};
use crate::switch::SwitchConfig;

/// The Bridged mode's pipeline.
pub type BridgedMode = SwitchedMode;

impl SegmentSpec {
    /// A bridge over every port of `layout`.
    pub fn bridged(layout: PortLayout, switch: SwitchConfig) -> Self {
        Self {
            kind: SegmentKind::Bridged,
            layout,
            members: layout.all(),
            switch,
            guard: GuardConfig::default(),
            dhcp: None,
        }
    }
}

impl SwitchedMode {
    /// The Bridged pipeline for a single worker.
    pub fn bridged(layout: PortLayout, switch: SwitchConfig) -> Self {
        SegmentSpec::bridged(layout, switch).build(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vnet_core::frame::{FramePool, PortId};
    use vnet_core::pipeline::{Pipeline, PortMask, Verdict};
    use vnet_core::time::Instant;

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
        let mut m = BridgedMode::bridged(layout, SwitchConfig::default());
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
            run(
                &mut m,
                &mut pool,
                &frame([0xff; 6], mac(p + 1)),
                p as PortId,
            );
        }
        // Unicast in every direction goes straight to the owner.
        for src in 0..4u8 {
            for dst in 0..4u8 {
                if src == dst {
                    continue;
                }
                let v = run(
                    &mut m,
                    &mut pool,
                    &frame(mac(dst + 1), mac(src + 1)),
                    src as PortId,
                );
                assert_eq!(
                    v,
                    Verdict::Tx(PortMask::one(dst as PortId)),
                    "{src} -> {dst}"
                );
            }
        }
    }
}
