//! The NAT mode (one realm per VM): an arbitrary sequence of frames on arbitrary ports
//! (VMs, optional host, uplink), in batches, checked after every batch by
//! `vnet_fuzz::Driver` with the NAT rules (`vnet_fuzz::nat::NatOracle`); the
//! configuration byte is read by `vnet_fuzz::nat::run`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_modes::natmode::NatFlavor;

fuzz_target!(|data: &[u8]| {
    vnet_fuzz::nat::run(NatFlavor::PerVm, data);
});
