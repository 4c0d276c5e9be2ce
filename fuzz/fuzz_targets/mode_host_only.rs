//! The Host-only mode: an arbitrary sequence of frames on arbitrary ports (VMs and the
//! host), in batches, checked after every batch by `vnet_fuzz::Driver` with the switched
//! modes' rules (`SwitchedOracle`: no port beyond the VMs and the host, so never an
//! uplink; switched frames untouched and never back to their ingress; only the DHCP
//! server answers, on the ingress alone).
//!
//! Configuration byte: bits 0-1 VMs - 1 (1..4), bit 2 no DHCP server (`--no-dhcp`), bit
//! 3 a tiny FDB, bit 4 a tight guard, bit 5 the whole default pool instead of a small one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_core::time::Instant;
use vnet_fuzz::{guard_config, small_dhcp, switch_config, Driver, SwitchedOracle};
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::host_only::{HostOnlyConfig, HostOnlyMode};

fuzz_target!(|data: &[u8]| {
    let Some((&cfg, records)) = data.split_first() else {
        return;
    };
    let dhcp = cfg & 4 == 0;
    let config = HostOnlyConfig {
        vms: usize::from(cfg & 3) + 1,
        switch: switch_config(cfg & 8 != 0),
        dhcp: dhcp.then(|| {
            if cfg & 32 != 0 {
                DhcpServerConfig::host_only()
            } else {
                small_dhcp()
            }
        }),
    };
    let mode = HostOnlyMode::host_only(config, Instant::ZERO)
        .expect("a valid Host-only configuration")
        .with_guard(guard_config(cfg & 16 != 0));
    let oracle = SwitchedOracle {
        layout: mode.layout(),
        services: dhcp,
    };
    assert!(oracle.layout.host().is_some() && oracle.layout.uplink().is_none());
    let mut d = Driver::new(mode, &oracle, Instant::from_secs(1));
    d.feed(records);
});
