//! The Bridged mode: an arbitrary sequence of frames on arbitrary ports (VMs, host,
//! uplink), in batches, checked after every batch by `vnet_fuzz::Driver` with the
//! switched modes' rules (`SwitchedOracle` without services: every frame is switched,
//! untouched, never back to its ingress; nothing is originated).
//!
//! Configuration byte: bits 0-1 VMs - 1 (1..4), bit 2 no host port, bit 3 a tiny FDB,
//! bit 4 a tight guard.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_core::time::Instant;
use vnet_fuzz::{guard_config, switch_config, Driver, SwitchedOracle};
use vnet_modes::bridged::BridgedMode;
use vnet_modes::layout::PortLayout;

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, records)) = data.split_first() else {
        return;
    };
    let layout = PortLayout::new(usize::from(cfg & 3) + 1, cfg & 4 == 0, true);
    let mode = BridgedMode::bridged(layout, switch_config(cfg & 8 != 0))
        .with_guard(guard_config(cfg & 16 != 0));
    let oracle = SwitchedOracle {
        layout,
        services: false,
    };
    let mut d = Driver::new(mode, &oracle, Instant::from_secs(1));
    d.feed(records);
});
