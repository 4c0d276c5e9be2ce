//! IPv6 fixed header: arbitrary bytes as an IPv6 packet. Every getter of a checked view
//! stays in bounds; a parsed header is emitted again around the same payload, parses to
//! the same value and comes back byte for byte but for the traffic class and flow label
//! (which the value does not keep).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_core::wire::{Ipv6Packet, Ipv6Repr, IPV6_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(ip) = Ipv6Packet::new_checked(data) else {
        return;
    };
    let _ = (
        ip.traffic_class(),
        ip.flow_label(),
        ip.next_header(),
        ip.hop_limit(),
    );
    let _ = (ip.src_addr(), ip.dst_addr());
    assert_eq!(ip.version(), 6);
    assert_eq!(ip.payload().len(), usize::from(ip.payload_len()));
    let repr = Ipv6Repr::parse(&ip).expect("a checked view parses");
    let mut buf = vec![0u8; repr.buffer_len()];
    buf[repr.header_len()..].copy_from_slice(ip.payload());
    repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
    let again = Ipv6Packet::new_checked(&buf[..]).expect("emitted IPv6 checks");
    assert_eq!(Ipv6Repr::parse(&again).expect("emitted IPv6 parses"), repr);
    assert_eq!(
        &buf[4..IPV6_HEADER_LEN],
        &data[4..IPV6_HEADER_LEN],
        "header after the flow label"
    );
    assert_eq!(again.payload(), ip.payload());
});
