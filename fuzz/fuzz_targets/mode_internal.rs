//! The Internal mode: an arbitrary sequence of frames on arbitrary VM ports, in batches,
//! checked after every batch by `vnet_fuzz::Driver` with the switched modes' rules
//! (`SwitchedOracle`: no port beyond the VMs, switched frames untouched and never back
//! to their ingress; without DHCP nothing is ever answered or originated).
//!
//! Configuration byte: bits 0-1 VMs - 2 (2..5), bit 2 a DHCP server (small pool), bit 3
//! a tiny FDB, bit 4 a tight guard, bit 5 the whole pool (Host-only's default) instead
//! of the small one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_core::time::Instant;
use vnet_fuzz::{guard_config, small_dhcp, switch_config, Driver, SwitchedOracle};
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::internal::{InternalConfig, InternalMode};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, records)) = data.split_first() else {
        return;
    };
    let vms = usize::from(cfg & 3) + 2;
    let dhcp = cfg & 4 != 0;
    let mut config = InternalConfig::new(vms);
    config.switch = switch_config(cfg & 8 != 0);
    if dhcp {
        config.dhcp = Some(if cfg & 32 != 0 {
            DhcpServerConfig::host_only()
        } else {
            small_dhcp()
        });
    }
    let mode = InternalMode::internal(config, Instant::ZERO)
        .expect("a valid Internal configuration")
        .with_guard(guard_config(cfg & 16 != 0));
    let oracle = SwitchedOracle {
        layout: mode.layout(),
        services: dhcp,
    };
    assert!(oracle.layout.host().is_none() && oracle.layout.uplink().is_none());
    let mut d = Driver::new(mode, &oracle, Instant::from_secs(1));
    d.feed(records);
});
