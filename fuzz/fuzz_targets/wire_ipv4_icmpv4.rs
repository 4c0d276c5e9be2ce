//! IPv4 and ICMPv4: arbitrary bytes as an IPv4 packet. Every getter of a checked view stays
//! in bounds; a parsed header is emitted again (no options) around the same payload and
//! parses to the same value; an ICMPv4 message is emitted again over its own data and comes
//! back byte for byte (the checksum may change only between its two encodings of zero).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vnet_core::wire::{
    Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN,
};

fuzz_target!(|data: &[u8]| {
    if data.len() >= IPV4_HEADER_LEN {
        // An unchecked view's clamped getters stay in bounds on any header.
        let v = Ipv4Packet::new_unchecked(data);
        let _ = (v.options(), v.payload(), v.header());
    }
    let Ok(ip) = Ipv4Packet::new_checked(data) else {
        // ICMP parsing does not depend on IPv4: try the bytes as a message anyway.
        icmp(data);
        return;
    };
    let _ = (
        ip.dscp(),
        ip.ecn(),
        ip.ident(),
        ip.dont_frag(),
        ip.more_frags(),
    );
    let _ = (
        ip.frag_offset(),
        ip.hop_limit(),
        ip.checksum(),
        ip.src_addr(),
        ip.dst_addr(),
    );
    assert_eq!(ip.header().len(), ip.header_len());
    assert_eq!(ip.options().len(), ip.header_len() - IPV4_HEADER_LEN);
    assert_eq!(
        ip.payload().len(),
        usize::from(ip.total_len()) - ip.header_len()
    );

    if let Ok(repr) = Ipv4Repr::parse(&ip) {
        assert!(ip.verify_checksum() && !ip.is_fragment());
        assert_eq!(repr.payload_len, ip.payload().len());
        let mut buf = vec![0u8; repr.buffer_len()];
        buf[repr.header_len()..].copy_from_slice(ip.payload());
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        let again = Ipv4Packet::new_checked(&buf[..]).expect("emitted IPv4 checks");
        assert!(again.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&again).expect("emitted IPv4 parses"), repr);
        assert_eq!(again.payload(), ip.payload());
        // Without options, DSCP/ECN or the reserved flag the header comes back as it was
        // (but the checksum field, which may hold the other zero).
        let h = ip.header();
        if h.len() == IPV4_HEADER_LEN && h[1] == 0 && h[6] & 0x80 == 0 {
            assert_eq!(&buf[..10], &h[..10]);
            assert_eq!(&buf[12..20], &h[12..20]);
        }
    }

    if ip.next_header() == IpProtocol::Icmp {
        icmp(ip.payload());
    }
});

fn icmp(data: &[u8]) {
    let Ok(p) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let _ = (
        p.msg_type(),
        p.msg_code(),
        p.checksum(),
        p.echo_ident(),
        p.echo_seq_no(),
    );
    let _ = (p.next_hop_mtu(), p.rest_of_header(), p.data(), p.is_error());
    if let Ok(inner) = p.inner_ipv4() {
        // Not a checked view, but its fixed header, options and payload are in bounds.
        let _ = (
            inner.src_addr(),
            inner.dst_addr(),
            inner.total_len(),
            inner.next_header(),
        );
        let _ = (
            inner.options(),
            inner.payload(),
            inner.header_len(),
            inner.ident(),
        );
        assert!(inner.payload().len() >= 8);
    }
    let Ok(repr) = Icmpv4Repr::parse(&p) else {
        return;
    };
    assert!(p.verify_checksum());
    assert_eq!(repr.buffer_len(), data.len());
    let mut buf = data.to_vec();
    buf[..8].fill(0);
    repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
    let again = Icmpv4Packet::new_checked(&buf[..]).expect("emitted ICMP checks");
    assert!(again.verify_checksum());
    assert_eq!(
        Icmpv4Repr::parse(&again).expect("emitted ICMP parses"),
        repr
    );
    assert_eq!(&buf[..2], &data[..2]);
    assert_eq!(&buf[4..], &data[4..]);
}
