//! Any mode behind one type, by enum dispatch (no `dyn`, no allocation): what the engine
//! runs when the mode is chosen at run time.

use crate::natmode::NatMode;
use crate::segment::SwitchedMode;
use vnet_core::fastpath::{FastPathQueue, Seen};
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, Verdict};
use vnet_core::time::Instant;

/// One of the five modes.
// One value per worker, never in arrays: the size difference costs nothing, while boxing
// would add an indirection to every batch.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum AnyMode {
    /// Internal, Host-only or Bridged.
    Switched(SwitchedMode),
    /// NAT or NAT Network.
    Nat(NatMode),
}

impl Pipeline for AnyMode {
    #[inline]
    fn process(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        match self {
            AnyMode::Switched(m) => m.process(now, pool, pkts, verdicts),
            AnyMode::Nat(m) => m.process(now, pool, pkts, verdicts),
        }
    }

    fn observe_handoff(&mut self, now: Instant, bytes: &[u8], ingress: PortId) {
        match self {
            AnyMode::Switched(m) => m.observe_handoff(now, bytes, ingress),
            AnyMode::Nat(m) => m.observe_handoff(now, bytes, ingress),
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        match self {
            AnyMode::Switched(m) => m.poll_at(),
            AnyMode::Nat(m) => m.poll_at(),
        }
    }

    fn poll(&mut self, now: Instant, pool: &mut FramePool, out: &mut Emitter) {
        match self {
            AnyMode::Switched(m) => m.poll(now, pool, out),
            AnyMode::Nat(m) => m.poll(now, pool, out),
        }
    }

    fn fastpath_queue(&mut self) -> Option<&mut FastPathQueue> {
        match self {
            AnyMode::Switched(m) => m.fastpath_queue(),
            AnyMode::Nat(m) => m.fastpath_queue(),
        }
    }

    fn fastpath_seen(&mut self, seen: &Seen) {
        match self {
            AnyMode::Switched(m) => m.fastpath_seen(seen),
            AnyMode::Nat(m) => m.fastpath_seen(seen),
        }
    }
}
