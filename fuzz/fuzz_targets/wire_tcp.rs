//! TCP: the input is a source and a destination IPv4 address (8 bytes) and then a segment.
//! Every getter of a checked view stays in bounds and the options iterator ends (after at
//! most one error); a segment that parses (header length, checksum, options) is emitted
//! again around the same payload and parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use vnet_core::wire::{TcpOption, TcpOptions, TcpPacket, TcpRepr};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let src = Ipv4Addr::new(data[0], data[1], data[2], data[3]);
    let dst = Ipv4Addr::new(data[4], data[5], data[6], data[7]);
    let segment = &data[8..];
    // The options iterator alone, over any bytes: ends, fails at most once, and every
    // option it yields re-encodes to what it read.
    walk_options(segment);

    let Ok(tcp) = TcpPacket::new_checked(segment) else {
        return;
    };
    let _ = (
        tcp.src_port(),
        tcp.dst_port(),
        tcp.seq_number(),
        tcp.ack_number(),
    );
    let _ = (
        tcp.flags(),
        tcp.window_len(),
        tcp.checksum(),
        tcp.urgent_at(),
    );
    let _ = (
        tcp.fin(),
        tcp.syn(),
        tcp.rst(),
        tcp.psh(),
        tcp.ack(),
        tcp.urg(),
    );
    let _ = (tcp.ece(), tcp.cwr());
    assert_eq!(tcp.options().len(), tcp.header_len() - 20);
    assert_eq!(tcp.header_len() + tcp.payload().len(), segment.len());
    walk_options(tcp.options());

    let Ok(repr) = TcpRepr::parse(&tcp, src, dst) else {
        return;
    };
    assert!(tcp.verify_checksum(src, dst));
    assert_eq!(repr.payload_len, tcp.payload().len());
    let mut buf = vec![0u8; repr.buffer_len()];
    buf[repr.header_len()..].copy_from_slice(tcp.payload());
    repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst);
    let again = TcpPacket::new_checked(&buf[..]).expect("emitted TCP checks");
    assert!(again.verify_checksum(src, dst));
    assert_eq!(again.header_len(), repr.header_len());
    assert_eq!(
        TcpRepr::parse(&again, src, dst).expect("emitted TCP parses"),
        repr
    );
    assert_eq!(again.payload(), tcp.payload());
});

fn walk_options(bytes: &[u8]) {
    let mut errors = 0;
    let mut seen = 0;
    let mut rest = bytes;
    for option in TcpOptions::new(bytes) {
        seen += 1;
        assert!(seen <= bytes.len() + 1, "the options iterator does not end");
        match option {
            Ok(o) => {
                let len = o.buffer_len();
                assert!(len <= rest.len());
                if !matches!(o, TcpOption::EndOfList) {
                    let mut out = vec![0u8; len];
                    assert_eq!(o.emit(&mut out), len);
                    assert_eq!(&out[..], &rest[..len]);
                    rest = &rest[len..];
                }
            }
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1);
}
