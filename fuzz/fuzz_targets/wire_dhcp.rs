//! DHCP (BOOTP) messages: arbitrary bytes as a UDP payload. Every getter of a checked view
//! stays in bounds, the options iterator ends after at most one error; a message that
//! parses is emitted again with `DhcpRepr::emit` (into exactly `buffer_len()` bytes; a
//! shorter buffer is refused, never overrun) and parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_core::wire::dhcp::{DhcpPacket, DhcpRepr, BOOTP_MIN_LEN, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let parsed = DhcpRepr::parse_bytes(data);
    let Ok(packet) = DhcpPacket::new_checked(data) else {
        assert!(parsed.is_err());
        return;
    };
    let _ = (
        packet.op(),
        packet.htype(),
        packet.hlen(),
        packet.hops(),
        packet.xid(),
    );
    let _ = (
        packet.secs(),
        packet.flags(),
        packet.broadcast(),
        packet.ciaddr(),
    );
    let _ = (
        packet.yiaddr(),
        packet.siaddr(),
        packet.giaddr(),
        packet.chaddr(),
    );
    let _ = (packet.client_hardware_address(), packet.magic_cookie());
    assert_eq!(packet.options_bytes().len(), data.len() - HEADER_LEN);
    let mut errors = 0;
    for (n, opt) in packet.options().enumerate() {
        assert!(n <= data.len(), "the options iterator does not end");
        if opt.is_err() {
            errors += 1;
        }
    }
    assert!(errors <= 1);

    let Ok(repr) = parsed else {
        return;
    };
    assert_eq!(DhcpRepr::parse(&packet).as_ref(), Ok(&repr));
    let len = repr.buffer_len();
    assert!(len >= BOOTP_MIN_LEN);
    let mut short = vec![0xa5u8; len - 1];
    assert!(repr.emit(&mut short).is_err());
    assert!(short.iter().all(|&b| b == 0xa5), "a refused emit wrote");
    let mut buf = vec![0xa5u8; len + 7];
    assert_eq!(repr.emit(&mut buf), Ok(len));
    assert!(
        buf[len..].iter().all(|&b| b == 0xa5),
        "emit wrote past buffer_len()"
    );
    let again = DhcpRepr::parse_bytes(&buf[..len]).expect("emitted DHCP parses");
    assert_eq!(again, repr);
});
