//! UDP: the input is a source and a destination IPv4 address (8 bytes) and then a datagram.
//! Every getter of a checked view stays in bounds; a datagram that parses (length and
//! checksum) is emitted again around the same payload and parses to the same value, with
//! the same ports and length bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use vnet_core::wire::{UdpPacket, UdpRepr};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let src = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
    let dst = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
    let segment = &data[8..];
    let Ok(udp) = UdpPacket::new_checked(segment) else {
        return;
    };
    let _ = (udp.src_port(), udp.dst_port(), udp.checksum());
    assert_eq!(udp.payload().len(), usize::from(udp.len()) - 8);
    let verifies = udp.verify_checksum(src, dst);
    let Ok(repr) = UdpRepr::parse(&udp, src, dst) else {
        assert!(!verifies);
        return;
    };
    assert!(verifies);
    assert_eq!(repr.payload_len, udp.payload().len());
    let mut buf = vec![0u8; repr.buffer_len()];
    buf[repr.header_len()..].copy_from_slice(udp.payload());
    repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), src, dst);
    let again = UdpPacket::new_checked(&buf[..]).expect("emitted UDP checks");
    assert_ne!(again.checksum(), 0, "emit always writes a checksum");
    assert!(again.verify_checksum(src, dst));
    assert_eq!(
        UdpRepr::parse(&again, src, dst).expect("emitted UDP parses"),
        repr
    );
    assert_eq!(&buf[..6], &segment[..6]);
    assert_eq!(again.payload(), udp.payload());
});
