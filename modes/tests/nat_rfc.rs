//! The NAPT stage against RFC 4787 (UDP), RFC 5382 (TCP) and RFC 5508 (ICMP), one test per
//! requirement, on literal packets.
//!
//! Every translated packet goes through [`verify_checksums`], which recomputes every
//! checksum from scratch (IPv4 header, TCP/UDP with the pseudo-header, ICMP, and for ICMP
//! errors the quoted IPv4 header and, when the quote is complete, the quoted transport
//! checksum) and compares it with the field.

use std::net::Ipv4Addr;
use std::time::Duration;

use proptest::prelude::*;
use vnet_core::time::Instant;
use vnet_core::wire::checksum;
use vnet_modes::nat::{
    owner_of_port, write_admin_prohibited, Filtering, ForwardError, ForwardProto, ForwardRule,
    Inbound, Napt, NaptConfig, NaptConfigError, NatDrop, NatProto, Outbound,
};

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const INET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const INET2: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 3);
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const GUEST2: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 16);
const GW: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;

/// UDP 10.0.2.15:5000 -> 198.18.0.1:53, payload "vnet" (checksums precomputed).
const LITERAL_UDP: [u8; 32] = [
    0x45, 0x00, 0x00, 0x20, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x56, 0x77, 0x0a, 0x00, 0x02, 0x0f,
    0xc6, 0x12, 0x00, 0x01, 0x13, 0x88, 0x00, 0x35, 0x00, 0x0c, 0x3e, 0x14, 0x76, 0x6e, 0x65, 0x74,
];

/// TCP SYN 10.0.2.15:40000 -> 198.18.0.1:80, seq 1000 (checksums precomputed).
const LITERAL_SYN: [u8; 40] = [
    0x45, 0x00, 0x00, 0x28, 0x12, 0x34, 0x40, 0x00, 0x40, 0x06, 0x56, 0x7a, 0x0a, 0x00, 0x02, 0x0f,
    0xc6, 0x12, 0x00, 0x01, 0x9c, 0x40, 0x00, 0x50, 0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00,
    0x50, 0x02, 0xff, 0xff, 0x3d, 0x48, 0x00, 0x00,
];

// ------------------------------------------------------------------ packet builders

fn t(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn ip_with_options(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert_eq!(opts.len() % 4, 0);
    let hl = 20 + opts.len();
    let mut p = vec![0u8; hl + payload.len()];
    p[0] = 0x40 | (hl / 4) as u8;
    p[2..4].copy_from_slice(&((hl + payload.len()) as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40; // DF
    p[8] = 64;
    p[9] = proto;
    p[12..16].copy_from_slice(&src.octets());
    p[16..20].copy_from_slice(&dst.octets());
    p[20..hl].copy_from_slice(opts);
    let c = checksum::data(&p[..hl]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[hl..].copy_from_slice(payload);
    p
}

fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    ip_with_options(src, dst, proto, &[], payload)
}

fn pseudo_checksum(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, seg: &[u8]) -> u16 {
    let mut ph = [0u8; 12];
    ph[..4].copy_from_slice(&src.octets());
    ph[4..8].copy_from_slice(&dst.octets());
    ph[9] = proto;
    ph[10..12].copy_from_slice(&(seg.len() as u16).to_be_bytes());
    !checksum::fold(checksum::sum(&ph) + checksum::sum(seg))
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), payload: &[u8]) -> Vec<u8> {
    let mut seg = vec![0u8; 8 + payload.len()];
    seg[0..2].copy_from_slice(&src.1.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.1.to_be_bytes());
    let len = seg.len() as u16;
    seg[4..6].copy_from_slice(&len.to_be_bytes());
    seg[8..].copy_from_slice(payload);
    let c = match pseudo_checksum(src.0, dst.0, 17, &seg) {
        0 => 0xffff,
        c => c,
    };
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    ip(src.0, dst.0, 17, &seg)
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8, seq: u32, ack: u32) -> Vec<u8> {
    let mut seg = vec![0u8; 20];
    seg[0..2].copy_from_slice(&src.1.to_be_bytes());
    seg[2..4].copy_from_slice(&dst.1.to_be_bytes());
    seg[4..8].copy_from_slice(&seq.to_be_bytes());
    seg[8..12].copy_from_slice(&ack.to_be_bytes());
    seg[12] = 5 << 4;
    seg[13] = flags;
    seg[14..16].copy_from_slice(&65535u16.to_be_bytes());
    let c = pseudo_checksum(src.0, dst.0, 6, &seg);
    seg[16..18].copy_from_slice(&c.to_be_bytes());
    ip(src.0, dst.0, 6, &seg)
}

fn icmp(src: Ipv4Addr, dst: Ipv4Addr, typ: u8, code: u8, rest: u32, data: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 8 + data.len()];
    m[0] = typ;
    m[1] = code;
    m[4..8].copy_from_slice(&rest.to_be_bytes());
    m[8..].copy_from_slice(data);
    let c = checksum::data(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ip(src, dst, 1, &m)
}

fn echo(src: Ipv4Addr, dst: Ipv4Addr, typ: u8, id: u16, seq: u16) -> Vec<u8> {
    icmp(
        src,
        dst,
        typ,
        0,
        u32::from(id) << 16 | u32::from(seq),
        b"ping-data",
    )
}

fn hl(p: &[u8]) -> usize {
    usize::from(p[0] & 0x0f) * 4
}

fn src_of(p: &[u8]) -> (Ipv4Addr, u16) {
    let a = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let port = if p[9] == 1 {
        be16(p, hl(p) + 4)
    } else {
        be16(p, hl(p))
    };
    (a, port)
}

fn dst_of(p: &[u8]) -> (Ipv4Addr, u16) {
    let a = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let port = if p[9] == 1 {
        be16(p, hl(p) + 4)
    } else {
        be16(p, hl(p) + 2)
    };
    (a, port)
}

/// The packet quoted by an ICMP error.
fn quoted(p: &[u8]) -> &[u8] {
    &p[hl(p) + 8..usize::from(be16(p, 2))]
}

/// Recomputes every checksum of `p` from scratch and compares it with the field.
fn verify_checksums(p: &[u8]) {
    let h = hl(p);
    let tl = usize::from(be16(p, 2));
    assert!(tl <= p.len() && h >= 20, "bad lengths");
    let mut hdr = p[..h].to_vec();
    hdr[10] = 0;
    hdr[11] = 0;
    assert_eq!(be16(p, 10), checksum::data(&hdr), "IPv4 header checksum");
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let mut seg = p[h..tl].to_vec();
    match p[9] {
        6 => {
            let field = be16(&seg, 16);
            seg[16] = 0;
            seg[17] = 0;
            assert_eq!(field, pseudo_checksum(src, dst, 6, &seg), "TCP checksum");
        }
        17 => {
            let field = be16(&seg, 6);
            if field != 0 {
                seg[6] = 0;
                seg[7] = 0;
                let want = match pseudo_checksum(src, dst, 17, &seg) {
                    0 => 0xffff,
                    c => c,
                };
                assert_eq!(field, want, "UDP checksum");
            }
        }
        1 => {
            let field = be16(&seg, 2);
            seg[2] = 0;
            seg[3] = 0;
            assert_eq!(field, checksum::data(&seg), "ICMP checksum");
            if matches!(seg[0], 3 | 11 | 12) {
                let inner = &p[h + 8..tl];
                let ih = hl(inner);
                let mut ihdr = inner[..ih].to_vec();
                ihdr[10] = 0;
                ihdr[11] = 0;
                assert_eq!(
                    be16(inner, 10),
                    checksum::data(&ihdr),
                    "quoted IPv4 checksum"
                );
                if inner.len() >= usize::from(be16(inner, 2)) {
                    verify_checksums(inner);
                }
            }
        }
        _ => {}
    }
}

fn config() -> NaptConfig {
    NaptConfig::new(EXT)
}

fn napt_with(f: impl FnOnce(&mut NaptConfig)) -> Napt {
    let mut c = config();
    f(&mut c);
    Napt::new(c, Instant::ZERO).expect("valid config")
}

fn napt() -> Napt {
    napt_with(|_| {})
}

/// Sends `p` outbound, expects `Translated`, checks checksums; returns the packet.
fn out_ok(n: &mut Napt, now: Instant, realm: u16, mut p: Vec<u8>) -> Vec<u8> {
    assert_eq!(n.outbound(now, realm, &mut p), Outbound::Translated);
    verify_checksums(&p);
    p
}

/// Sends `p` inbound, expects `Translated { realm }`, checks checksums; returns it.
fn in_ok(n: &mut Napt, now: Instant, realm: u16, mut p: Vec<u8>) -> Vec<u8> {
    assert_eq!(n.inbound(now, &mut p), Inbound::Translated { realm });
    verify_checksums(&p);
    p
}

fn in_drop(n: &mut Napt, now: Instant, mut p: Vec<u8>) -> NatDrop {
    let before = p.clone();
    match n.inbound(now, &mut p) {
        Inbound::Drop(d) => {
            assert_eq!(p, before, "a dropped packet is untouched");
            d
        }
        v => panic!("expected a drop, got {v:?}"),
    }
}

fn out_drop(n: &mut Napt, now: Instant, realm: u16, mut p: Vec<u8>) -> NatDrop {
    let before = p.clone();
    match n.outbound(now, realm, &mut p) {
        Outbound::Drop(d) => {
            assert_eq!(p, before, "a dropped packet is untouched");
            d
        }
        v => panic!("expected a drop, got {v:?}"),
    }
}

/// The external port a UDP flow from `inside` gets.
fn udp_port(
    n: &mut Napt,
    now: Instant,
    realm: u16,
    inside: (Ipv4Addr, u16),
    to: (Ipv4Addr, u16),
) -> u16 {
    let p = out_ok(n, now, realm, udp(inside, to, b"x"));
    assert_eq!(src_of(&p).0, EXT);
    assert_eq!(dst_of(&p), to, "destination untouched");
    src_of(&p).1
}

// ------------------------------------------------------------------ the helpers themselves

#[test]
fn builders_match_literal_packets_and_verifier_catches_errors() {
    assert_eq!(udp((GUEST, 5000), (INET, 53), b"vnet"), LITERAL_UDP);
    assert_eq!(tcp((GUEST, 40000), (INET, 80), SYN, 1000, 0), LITERAL_SYN);
    verify_checksums(&LITERAL_UDP);
    verify_checksums(&LITERAL_SYN);
    for at in [10, 26] {
        let mut bad = LITERAL_UDP;
        bad[at] ^= 1;
        assert!(std::panic::catch_unwind(|| verify_checksums(&bad)).is_err());
    }
}

// ------------------------------------------------------------------ RFC 4787 (UDP)

#[test]
fn rfc4787_req1_endpoint_independent_mapping_udp() {
    let mut n = napt();
    let mut p = LITERAL_UDP.to_vec();
    assert_eq!(n.outbound(t(0), 0, &mut p), Outbound::Translated);
    verify_checksums(&p);
    assert_eq!(src_of(&p), (EXT, 5000));
    assert_eq!(&p[28..], b"vnet", "payload untouched");
    for to in [(INET, 54), (INET2, 53), (INET2, 123)] {
        assert_eq!(udp_port(&mut n, t(1), 0, (GUEST, 5000), to), 5000);
    }
    assert_eq!(n.mapping_count(), 1);
    assert_eq!(n.session_count(), 4);
    let m = n.mapping(t(1), 0, NatProto::Udp, GUEST, 5000).unwrap();
    assert_eq!((m.external_ip, m.external_port), (Some(EXT), 5000));
}

#[test]
fn rfc4787_req3_no_port_overloading() {
    let mut n = napt();
    let mut seen = std::collections::HashMap::new();
    for host in 1..=20u8 {
        for port in [5000u16, 5001, 40000] {
            let inside = (Ipv4Addr::new(10, 0, 2, host), port);
            let ext = udp_port(&mut n, t(0), 0, inside, (INET, 53));
            assert!(seen.insert(ext, inside).is_none(), "port {ext} overloaded");
        }
    }
    // Each external port leads back to exactly its own inside endpoint.
    for (&ext, &inside) in &seen {
        let r = in_ok(&mut n, t(1), 0, udp((INET, 53), (EXT, ext), b"r"));
        assert_eq!(dst_of(&r), inside);
    }
    // TCP is a separate space: 10.0.2.16:5000 may keep TCP 5000 although UDP 5000 is
    // taken (by 10.0.2.1:5000), and that does not disturb the UDP mapping.
    let s = out_ok(&mut n, t(1), 0, tcp((GUEST2, 5000), (INET, 80), SYN, 1, 0));
    assert_eq!(src_of(&s).1, 5000);
    let r = in_ok(&mut n, t(1), 0, udp((INET, 53), (EXT, 5000), b"r"));
    assert_eq!(dst_of(&r), (Ipv4Addr::new(10, 0, 2, 1), 5000));
}

#[test]
fn rfc4787_req3_port_preservation_when_free() {
    let mut n = napt();
    assert_eq!(udp_port(&mut n, t(0), 0, (GUEST, 40000), (INET, 53)), 40000);
    assert_eq!(udp_port(&mut n, t(0), 0, (GUEST, 1024), (INET, 53)), 1024);
    assert_eq!(udp_port(&mut n, t(0), 0, (GUEST, 65535), (INET, 53)), 65535);
    // Taken: another port, not the same one.
    assert_ne!(
        udp_port(&mut n, t(0), 0, (GUEST2, 40000), (INET, 53)),
        40000
    );
}

#[test]
fn rfc4787_req3_port_range_class_kept_when_range_allows() {
    // REQ-3a: 0-1023 stays in 0-1023 when the range has such ports...
    let mut n = napt_with(|c| c.port_range = (1, 65535));
    assert_eq!(udp_port(&mut n, t(0), 0, (GUEST, 53), (INET, 53)), 53);
    let p = udp_port(&mut n, t(0), 0, (GUEST2, 53), (INET, 53));
    assert!(p < 1024 && p != 53, "{p}");
    assert!(udp_port(&mut n, t(0), 0, (GUEST2, 5000), (INET, 53)) >= 1024);
    // ...and with the default range (1024, 65535) a well-known port maps into 1024+ (the
    // documented deviation): never below the range.
    let mut n = napt();
    let p = udp_port(&mut n, t(0), 0, (GUEST, 53), (INET, 53));
    assert!(p >= 1024, "{p}");
}

#[test]
fn rfc4787_req4_port_parity_preserved() {
    let mut n = napt();
    // Every guest uses the same ports: the first keeps them, the others get the nearest
    // free port of the same parity, even when a port of the other parity is nearer.
    for port in [5000u16, 5001, 6001, 6000] {
        for host in 1..=50u8 {
            let ext = udp_port(
                &mut n,
                t(0),
                0,
                (Ipv4Addr::new(10, 0, 2, host), port),
                (INET, 53),
            );
            assert_eq!(ext % 2, port % 2, "parity of {port} -> {ext}");
        }
    }
    assert_eq!(udp_port(&mut n, t(0), 0, (GUEST, 40001), (INET, 53)) % 2, 1);
}

#[test]
fn rfc4787_req5_udp_mapping_lives_at_least_120s_default_300s() {
    assert_eq!(config().timeouts.udp, Duration::from_secs(300));
    let mut n = napt();
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    for s in [1, 119, 120, 299] {
        in_ok(&mut n, t(s), 0, udp((INET, 53), (EXT, 5000), b"r"));
    }
    assert_eq!(n.poll(Instant::from_millis(299_999)), 0);
    assert_eq!(
        in_drop(&mut n, t(300), udp((INET, 53), (EXT, 5000), b"r")),
        NatDrop::NoMapping
    );
    assert_eq!(n.poll(t(300)), 1);
    assert_eq!((n.mapping_count(), n.session_count()), (0, 0));
    assert!(n.mapping(t(300), 0, NatProto::Udp, GUEST, 5000).is_none());

    // Below two minutes is refused (naming the field), 120 s is accepted and honoured.
    let mut c = config();
    c.timeouts.udp = Duration::from_secs(119);
    assert!(matches!(
        Napt::new(c.clone(), Instant::ZERO),
        Err(NaptConfigError::TimeoutBelowRfc {
            field: "timeouts.udp",
            ..
        })
    ));
    c.timeouts.udp = Duration::from_secs(120);
    let mut n = Napt::new(c, Instant::ZERO).unwrap();
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    in_ok(
        &mut n,
        Instant::from_millis(119_999),
        0,
        udp((INET, 53), (EXT, 5000), b"r"),
    );
    in_drop(&mut n, t(120), udp((INET, 53), (EXT, 5000), b"r"));
}

#[test]
fn rfc4787_req6_outbound_refreshes_inbound_does_not() {
    let mut n = napt();
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    // Inbound traffic all along does not keep the mapping alive.
    for s in (10..300).step_by(10) {
        in_ok(&mut n, t(s), 0, udp((INET, 53), (EXT, 5000), b"r"));
    }
    in_drop(&mut n, t(300), udp((INET, 53), (EXT, 5000), b"r"));
    // Outbound traffic does: every outbound packet restarts the 300 s.
    let mut n = napt();
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    udp_port(&mut n, t(200), 0, (GUEST, 5000), (INET, 53));
    n.poll(t(450));
    in_ok(&mut n, t(499), 0, udp((INET, 53), (EXT, 5000), b"r"));
    in_drop(&mut n, t(500), udp((INET, 53), (EXT, 5000), b"r"));
    // Outbound to another host refreshes the mapping, not the first host's session.
    let mut n = napt();
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    udp_port(&mut n, t(200), 0, (GUEST, 5000), (INET2, 53));
    in_drop(&mut n, t(300), udp((INET, 53), (EXT, 5000), b"r"));
    in_ok(&mut n, t(499), 0, udp((INET2, 53), (EXT, 5000), b"r"));
}

#[test]
fn rfc4787_req8_address_dependent_filtering_blocks_other_hosts() {
    let mut n = napt();
    assert_eq!(n.config().filtering, Filtering::AddressDependent);
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    in_ok(&mut n, t(1), 0, udp((INET, 53), (EXT, 5000), b"r"));
    // Another port of the same host: allowed (address-dependent).
    in_ok(&mut n, t(1), 0, udp((INET, 9999), (EXT, 5000), b"r"));
    // Another host: filtered.
    assert_eq!(
        in_drop(&mut n, t(1), udp((INET2, 53), (EXT, 5000), b"r")),
        NatDrop::Filtered
    );
    assert_eq!(n.counters().filtered, 1);
    // Once the guest sent to it, it is allowed too.
    udp_port(&mut n, t(2), 0, (GUEST, 5000), (INET2, 7));
    in_ok(&mut n, t(3), 0, udp((INET2, 53), (EXT, 5000), b"r"));
}

#[test]
fn rfc4787_req8_endpoint_independent_filtering_when_configured() {
    let mut n = napt_with(|c| c.filtering = Filtering::EndpointIndependent);
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    let r = in_ok(&mut n, t(1), 0, udp((INET2, 4444), (EXT, 5000), b"r"));
    assert_eq!(dst_of(&r), (GUEST, 5000));
    assert_eq!(src_of(&r), (INET2, 4444));
    // Inbound from new hosts creates no state.
    assert_eq!(n.session_count(), 1);
    // But only to live mappings.
    in_drop(&mut n, t(1), udp((INET2, 4444), (EXT, 5002), b"r"));
    in_drop(&mut n, t(300), udp((INET2, 4444), (EXT, 5000), b"r"));
}

#[test]
fn rfc4787_req8_address_port_dependent_filtering_when_configured() {
    let mut n = napt_with(|c| c.filtering = Filtering::AddressPortDependent);
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    in_ok(&mut n, t(1), 0, udp((INET, 53), (EXT, 5000), b"r"));
    assert_eq!(
        in_drop(&mut n, t(1), udp((INET, 54), (EXT, 5000), b"r")),
        NatDrop::Filtered
    );
    assert_eq!(
        in_drop(&mut n, t(1), udp((INET2, 53), (EXT, 5000), b"r")),
        NatDrop::Filtered
    );
}

#[test]
fn rfc4787_req9_hairpinning_with_external_source() {
    // NAT Network: two guests in realm 0, A at 10.0.2.4, B at 10.0.2.5.
    let a = (Ipv4Addr::new(10, 0, 2, 4), 4000);
    let b = (Ipv4Addr::new(10, 0, 2, 5), 5000);
    let mut n = napt();
    // A talks to a server and learns its external endpoint EXT:4000; B likewise EXT:5000.
    udp_port(&mut n, t(0), 0, a, (INET, 3478));
    udp_port(&mut n, t(0), 0, b, (INET, 3478));
    // A punches towards B's external endpoint: B's filter has not seen EXT yet.
    let mut p = udp(a, (EXT, 5000), b"punch");
    assert_eq!(
        n.outbound(t(1), 0, &mut p),
        Outbound::Drop(NatDrop::Filtered)
    );
    // B sends to A's external endpoint: delivered to A, from B's *external* endpoint.
    let mut p = udp(b, (EXT, 4000), b"hello");
    assert_eq!(n.outbound(t(2), 0, &mut p), Outbound::Hairpin { realm: 0 });
    verify_checksums(&p);
    assert_eq!(
        src_of(&p),
        (EXT, 5000),
        "REQ-9a: external source address and port"
    );
    assert_eq!(dst_of(&p), a);
    assert_eq!(&p[28..], b"hello");
    // A answers B's external endpoint: delivered to B from EXT:4000.
    let mut p = udp(a, (EXT, 5000), b"back");
    assert_eq!(n.outbound(t(3), 0, &mut p), Outbound::Hairpin { realm: 0 });
    verify_checksums(&p);
    assert_eq!((src_of(&p), dst_of(&p)), ((EXT, 4000), b));
    assert_eq!(n.counters().hairpins, 2);

    // TCP, endpoint-independent filtering: a guest reaches another straight away.
    let mut n = napt_with(|c| c.filtering = Filtering::EndpointIndependent);
    out_ok(&mut n, t(0), 0, tcp(b, (INET, 80), SYN, 1, 0));
    let mut p = tcp(a, (EXT, 5000), SYN, 7, 0);
    assert_eq!(n.outbound(t(1), 0, &mut p), Outbound::Hairpin { realm: 0 });
    verify_checksums(&p);
    assert_eq!((src_of(&p), dst_of(&p)), ((EXT, 4000), b));
}

#[test]
fn rfc4787_req9_hairpin_through_forward_rule_reaches_self() {
    // NAT mode: the VM of realm 7 reaches its own forwarded port through the external
    // address, and its answer comes back the same way.
    let mut n = napt();
    n.add_forward(rule("ssh", ForwardProto::Tcp, None, 2222, 7, GUEST, 22))
        .unwrap();
    let mut syn = tcp((GUEST, 40000), (EXT, 2222), SYN, 1, 0);
    assert_eq!(
        n.outbound(t(0), 7, &mut syn),
        Outbound::Hairpin { realm: 7 }
    );
    verify_checksums(&syn);
    assert_eq!((src_of(&syn), dst_of(&syn)), ((EXT, 40000), (GUEST, 22)));
    let mut synack = tcp((GUEST, 22), (EXT, 40000), SYN | ACK, 9, 2);
    assert_eq!(
        n.outbound(t(0), 7, &mut synack),
        Outbound::Hairpin { realm: 7 }
    );
    verify_checksums(&synack);
    assert_eq!(
        (src_of(&synack), dst_of(&synack)),
        ((EXT, 2222), (GUEST, 40000))
    );
    // Another realm's VM reaches it too, and both VMs keep their own mappings.
    let mut syn = tcp((GUEST, 40000), (EXT, 2222), SYN, 1, 0);
    assert_eq!(
        n.outbound(t(0), 8, &mut syn),
        Outbound::Hairpin { realm: 7 }
    );
    assert_eq!(src_of(&syn).0, EXT);
    assert_ne!(src_of(&syn).1, 40000, "realm 8's mapping is not realm 7's");
}

#[test]
fn rfc4787_req12_icmp_error_does_not_end_mapping() {
    let mut n = napt();
    let sent = out_ok(&mut n, t(0), 0, udp((GUEST, 5000), (INET, 53), b"q"));
    let before = n.mapping(t(0), 0, NatProto::Udp, GUEST, 5000).unwrap();
    // Port unreachable from the server, quoting what it got.
    let err = icmp(INET, EXT, 3, 3, 0, &sent);
    let e = in_ok(&mut n, t(1), 0, err);
    assert_eq!(dst_of(&e).0, GUEST);
    n.poll(t(2));
    assert_eq!(n.mapping(t(2), 0, NatProto::Udp, GUEST, 5000), Some(before));
    in_ok(&mut n, t(3), 0, udp((INET, 53), (EXT, 5000), b"r"));
}

// ------------------------------------------------------------------ RFC 5382 (TCP)

#[test]
fn rfc5382_req1_endpoint_independent_mapping_tcp() {
    let mut n = napt();
    let p = out_ok(&mut n, t(0), 0, LITERAL_SYN.to_vec());
    assert_eq!(src_of(&p), (EXT, 40000));
    assert_eq!(
        &p[24..28],
        &LITERAL_SYN[24..28],
        "sequence number untouched"
    );
    for to in [(INET, 443), (INET2, 80)] {
        let p = out_ok(&mut n, t(1), 0, tcp((GUEST, 40000), to, SYN, 5, 0));
        assert_eq!(src_of(&p), (EXT, 40000));
    }
}

#[test]
fn rfc5382_req2_simultaneous_open() {
    let mut n = napt();
    out_ok(
        &mut n,
        t(0),
        0,
        tcp((GUEST, 40000), (INET, 5555), SYN, 100, 0),
    );
    // The peer's own SYN crosses ours: it passes.
    let r = in_ok(
        &mut n,
        t(0),
        0,
        tcp((INET, 5555), (EXT, 40000), SYN, 900, 0),
    );
    assert_eq!(dst_of(&r), (GUEST, 40000));
    out_ok(
        &mut n,
        t(1),
        0,
        tcp((GUEST, 40000), (INET, 5555), SYN | ACK, 100, 901),
    );
    in_ok(
        &mut n,
        t(1),
        0,
        tcp((INET, 5555), (EXT, 40000), SYN | ACK, 900, 101),
    );
    // Established: idle far beyond the transitory timeout, it still works.
    in_ok(
        &mut n,
        t(5000),
        0,
        tcp((INET, 5555), (EXT, 40000), ACK, 901, 101),
    );
}

#[test]
fn rfc5382_req4_unsolicited_syn_dropped() {
    let mut n = napt();
    // No mapping at all.
    assert_eq!(
        in_drop(&mut n, t(0), tcp((INET, 5555), (EXT, 40000), SYN, 1, 0)),
        NatDrop::NoMapping
    );
    // A mapping, but to another host (address-dependent filtering).
    out_ok(&mut n, t(0), 0, tcp((GUEST, 40000), (INET, 80), SYN, 1, 0));
    assert_eq!(
        in_drop(&mut n, t(1), tcp((INET2, 5555), (EXT, 40000), SYN, 1, 0)),
        NatDrop::Filtered
    );
    assert_eq!(n.counters().unsolicited_syn, 2);
    // Never answered: the verdicts above are drops, and nothing else is produced.
    assert_eq!(n.counters().translated_out, 1);
}

#[test]
fn rfc5382_req5_established_idle_7440s_transitory_240s() {
    let c = config();
    assert_eq!(c.timeouts.tcp_established, Duration::from_secs(7440));
    assert_eq!(c.timeouts.tcp_transitory, Duration::from_secs(240));
    let mut n = napt();
    let s = (INET, 80);
    // Transitory: a SYN lives 240 s without an answer.
    out_ok(&mut n, t(0), 0, tcp((GUEST, 40000), s, SYN, 1, 0));
    out_ok(&mut n, t(0), 0, tcp((GUEST, 40001), s, SYN, 1, 0));
    in_ok(&mut n, t(239), 0, tcp(s, (EXT, 40000), SYN | ACK, 1, 2));
    let late = tcp(s, (EXT, 40001), SYN | ACK, 1, 2);
    assert_eq!(in_drop(&mut n, t(240), late), NatDrop::NoMapping);
    assert_eq!(n.poll(t(240)), 1);
    assert_eq!(n.session_count(), 1);
    // Established (the SYN+ACK at 239 s): 7440 s idle, in either direction.
    let (g, e) = ((GUEST, 40000), (EXT, 40000));
    in_ok(&mut n, t(239 + 7439), 0, tcp(s, e, ACK, 2, 2));
    // Inbound packets alone keep a connection alive (it is idle only when both sides
    // are), and so do outbound ones.
    in_ok(&mut n, t(239 + 2 * 7439), 0, tcp(s, e, ACK, 2, 2));
    let last = 239 + 3 * 7439;
    out_ok(&mut n, t(last), 0, tcp(g, s, ACK, 2, 2));
    assert_eq!(
        n.poll(t(last + 7439)),
        0,
        "still established after 7439 s idle"
    );
    assert_eq!(n.session_count(), 1);
    assert_eq!(
        in_drop(&mut n, t(last + 7440), tcp(s, e, ACK, 2, 2)),
        NatDrop::NoMapping
    );
    assert_eq!(n.poll(t(last + 7440)), 1);
    assert_eq!((n.session_count(), n.mapping_count()), (0, 0));
}

#[test]
fn rfc5382_req5_fin_both_ways_or_rst_make_transitory() {
    let (g, s, e) = ((GUEST, 40000), (INET, 80), (EXT, 40000));
    let open = |n: &mut Napt| {
        out_ok(n, t(0), 0, tcp(g, s, SYN, 1, 0));
        in_ok(n, t(0), 0, tcp(s, e, SYN | ACK, 1, 2));
        out_ok(n, t(0), 0, tcp(g, s, ACK, 2, 2));
    };
    let mut n = napt();
    open(&mut n);
    out_ok(&mut n, t(10), 0, tcp(g, s, FIN | ACK, 2, 2));
    // The wheel files the established connection far ahead (a turn, 1024 s, at most).
    assert_eq!(n.poll(t(250)), 0);
    // Half-closed stays established.
    in_ok(&mut n, t(260), 0, tcp(s, e, ACK, 2, 3));
    in_ok(&mut n, t(300), 0, tcp(s, e, FIN | ACK, 2, 3));
    in_ok(&mut n, t(301), 0, tcp(s, e, ACK, 3, 3));
    // Both FINs: 240 s after the last packet.
    in_drop(&mut n, t(301 + 240), tcp(s, e, ACK, 3, 3));
    // The wheel reclaims it on time (the deadline moved earlier when it closed).
    assert_eq!(n.poll(t(301 + 240)), 1);
    assert_eq!(n.session_count(), 0);

    let mut n = napt();
    open(&mut n);
    in_ok(&mut n, t(10), 0, tcp(s, e, RST, 2, 0));
    assert!(n.poll_at().unwrap() <= t(10 + 240));
    in_drop(&mut n, t(250), tcp(s, e, ACK, 3, 3));
    // A new SYN on the same 4-tuple after the reset opens a new connection.
    let mut n = napt();
    open(&mut n);
    in_ok(&mut n, t(10), 0, tcp(s, e, RST, 2, 0));
    out_ok(&mut n, t(20), 0, tcp(g, s, SYN, 50, 0));
    in_ok(&mut n, t(21), 0, tcp(s, e, SYN | ACK, 70, 51));
    in_ok(&mut n, t(3000), 0, tcp(s, e, ACK, 71, 51));
}

#[test]
fn rfc5382_req9_icmp_unreachable_translated() {
    let mut n = napt();
    let syn = out_ok(&mut n, t(0), 0, LITERAL_SYN.to_vec());
    for (typ, code, rest) in [(3u8, 1u8, 0u32), (3, 3, 0), (3, 4, 1400), (11, 0, 0)] {
        // Quote the header and the first 8 bytes, as most routers do.
        let err = icmp(INET2, EXT, typ, code, rest, &syn[..28]);
        let e = in_ok(&mut n, t(1), 0, err);
        assert_eq!(dst_of(&e).0, GUEST);
        assert_eq!((e[20], e[21]), (typ, code), "type and code kept");
        assert_eq!(be16(&e, 26), rest as u16, "next-hop MTU kept");
        assert_eq!(
            quoted(&e),
            &LITERAL_SYN[..28],
            "quote reverted to what the guest sent"
        );
    }
    // RFC 5382 REQ-10: ICMP does not end the connection.
    in_ok(
        &mut n,
        t(2),
        0,
        tcp((INET, 80), (EXT, 40000), SYN | ACK, 1, 1001),
    );
}

// ------------------------------------------------------------------ RFC 5508 (ICMP)

#[test]
fn rfc5508_req1_icmp_echo_identifier_mapping() {
    let mut n = napt();
    let p = out_ok(&mut n, t(0), 0, echo(GUEST, INET, 8, 0x1234, 1));
    assert_eq!(src_of(&p), (EXT, 0x1234), "identifier preserved when free");
    // Independent of the destination.
    let q = out_ok(&mut n, t(0), 0, echo(GUEST, INET2, 8, 0x1234, 2));
    assert_eq!(src_of(&q), (EXT, 0x1234));
    // Another guest's identical identifier gets another external one.
    let o = out_ok(&mut n, t(0), 0, echo(GUEST2, INET, 8, 0x1234, 1));
    assert_ne!(src_of(&o).1, 0x1234);
    // Replies go back to the right guest, with the original identifier.
    let r = in_ok(&mut n, t(1), 0, echo(INET, EXT, 0, 0x1234, 1));
    assert_eq!(dst_of(&r), (GUEST, 0x1234));
    assert_eq!(be16(&r, 26), 1, "sequence number untouched");
    let r = in_ok(&mut n, t(1), 0, echo(INET, EXT, 0, src_of(&o).1, 1));
    assert_eq!(dst_of(&r), (GUEST2, 0x1234));
    // Inbound echo requests and other queries are not translated.
    assert_eq!(
        in_drop(&mut n, t(1), echo(INET, EXT, 8, 0x1234, 1)),
        NatDrop::NoMapping
    );
    assert_eq!(
        in_drop(&mut n, t(1), icmp(INET, EXT, 13, 0, 0, &[0; 12])),
        NatDrop::Unsupported
    );
    assert_eq!(
        out_drop(&mut n, t(1), 0, icmp(GUEST, INET, 5, 1, 0, &[0; 28])),
        NatDrop::Unsupported
    );
}

#[test]
fn rfc5508_req2_icmp_query_timeout_60s() {
    assert_eq!(config().timeouts.icmp, Duration::from_secs(60));
    let mut n = napt();
    let ping = out_ok(&mut n, t(0), 0, echo(GUEST, INET, 8, 7777, 1));
    assert_eq!(src_of(&ping), (EXT, 7777));
    in_ok(&mut n, t(59), 0, echo(INET, EXT, 0, 7777, 1));
    assert_eq!(
        in_drop(&mut n, t(60), echo(INET, EXT, 0, 7777, 1)),
        NatDrop::NoMapping
    );
    let mut c = config();
    c.timeouts.icmp = Duration::from_secs(59);
    assert!(matches!(
        c.validate(),
        Err(NaptConfigError::TimeoutBelowRfc {
            field: "timeouts.icmp",
            ..
        })
    ));
}

/// An ICMP error from INET2 about `quoted_packet`, addressed to EXT.
fn inbound_error(quoted_packet: &[u8]) -> Vec<u8> {
    icmp(INET2, EXT, 3, 3, 0, quoted_packet)
}

#[test]
fn rfc5508_req3_bad_embedded_checksum_dropped() {
    let mut n = napt();
    let sent = out_ok(&mut n, t(0), 0, udp((GUEST, 5000), (INET, 53), b"q"));
    // Bad outer ICMP checksum.
    let mut e = inbound_error(&sent);
    e[22] ^= 0xff;
    assert_eq!(in_drop(&mut n, t(1), e), NatDrop::BadChecksum);
    // Good ICMP checksum over a quote with a bad IPv4 header checksum.
    let mut bad = sent.clone();
    bad[11] ^= 1;
    assert_eq!(
        in_drop(&mut n, t(1), inbound_error(&bad)),
        NatDrop::BadChecksum
    );
    // A bad quoted UDP checksum is not checked (REQ-3c): translated.
    let mut bad = sent.clone();
    bad[26] ^= 1;
    let mut e = inbound_error(&bad);
    assert_eq!(n.inbound(t(1), &mut e), Inbound::Translated { realm: 0 });
    assert_eq!(dst_of(&e).0, GUEST);
    // Bad outer IPv4 header checksum.
    let mut e = inbound_error(&sent);
    e[10] ^= 1;
    assert_eq!(in_drop(&mut n, t(1), e), NatDrop::BadChecksum);
    assert_eq!(n.counters().bad_checksum, 3);
}

#[test]
fn rfc5508_req4_inbound_error_translated_checksums_fixed() {
    let mut n = napt();
    // Another guest holds the preserved ports first, so that ports and identifiers are
    // rewritten too, not only addresses.
    out_ok(&mut n, t(0), 0, udp((GUEST2, 5000), (INET, 53), b"first"));
    out_ok(&mut n, t(0), 0, echo(GUEST2, INET, 8, 0x4242, 1));
    out_ok(&mut n, t(0), 0, tcp((GUEST2, 40000), (INET, 80), SYN, 1, 0));
    let original_udp = udp((GUEST, 5000), (INET, 53), b"query");
    let sent_udp = out_ok(&mut n, t(0), 0, original_udp.clone());
    let original_ping = echo(GUEST, INET, 8, 0x4242, 9);
    let sent_ping = out_ok(&mut n, t(0), 0, original_ping.clone());
    let original_tcp = tcp((GUEST, 40000), (INET, 80), SYN, 1, 0);
    let sent_tcp = out_ok(&mut n, t(0), 0, original_tcp.clone());
    assert_eq!(src_of(&sent_udp), (EXT, 5002));
    assert_eq!(src_of(&sent_ping), (EXT, 0x4244));
    assert_eq!(src_of(&sent_tcp), (EXT, 40002));
    // (translated packet, what the guest sent, type, code, rest of header)
    type Case<'a> = (&'a [u8], &'a [u8], u8, u8, u32);
    let cases: [Case; 5] = [
        (&sent_udp, &original_udp, 3, 3, 0),
        (&sent_udp, &original_udp, 3, 4, 576),
        (&sent_ping, &original_ping, 11, 0, 0),
        (&sent_tcp, &original_tcp, 3, 13, 0),
        (&sent_tcp[..28], &original_tcp[..28], 12, 0, 0x1400_0000),
    ];
    for (sent, original, typ, code, rest) in cases {
        let e = in_ok(&mut n, t(1), 0, icmp(INET2, EXT, typ, code, rest, sent));
        assert_eq!(dst_of(&e).0, GUEST, "outer destination -> inside address");
        assert_eq!(
            Ipv4Addr::new(e[12], e[13], e[14], e[15]),
            INET2,
            "outer source kept"
        );
        assert_eq!((e[20], e[21]), (typ, code));
        assert_eq!(u32::from_be_bytes([e[24], e[25], e[26], e[27]]), rest);
        assert_eq!(quoted(&e), original, "quoted packet reverted exactly");
    }
    // A quote with IPv4 options: the transport header is found past them (REQ-3b).
    let mut n = napt();
    let with_opts = {
        let mut seg = udp((GUEST, 6000), (INET, 53), b"o")[20..].to_vec();
        // The UDP checksum does not cover IPv4 options: reuse the segment as is.
        seg.truncate(9);
        ip_with_options(GUEST, INET, 17, &[0x94, 0x04, 0, 0], &seg)
    };
    let sent = out_ok(&mut n, t(0), 0, with_opts.clone());
    assert_eq!(src_of(&sent), (EXT, 6000));
    let e = in_ok(&mut n, t(1), 0, inbound_error(&sent));
    assert_eq!(quoted(&e), &with_opts[..]);
    // An error to an address that is not the quote's source: not ours.
    let mut e = inbound_error(&sent);
    e[16..20].copy_from_slice(&[198, 18, 0, 9]);
    e[10] = 0;
    e[11] = 0;
    let c = checksum::data(&e[..20]);
    e[10..12].copy_from_slice(&c.to_be_bytes());
    assert_eq!(in_drop(&mut n, t(1), e), NatDrop::IcmpErrorNoMapping);
    // No mapping for the quote: dropped (REQ-4).
    let stray = udp((EXT, 7000), (INET, 53), b"?");
    assert_eq!(
        in_drop(&mut n, t(1), inbound_error(&stray)),
        NatDrop::IcmpErrorNoMapping
    );
    // A quote that is not ours (another source address): dropped.
    let stray = udp((INET2, 6000), (INET, 53), b"?");
    assert_eq!(
        in_drop(&mut n, t(1), inbound_error(&stray)),
        NatDrop::IcmpErrorNoMapping
    );
    // From a host the mapping never contacted: filtered like any inbound packet.
    let foreign = udp((EXT, 6000), (INET2, 53), b"?");
    assert_eq!(
        in_drop(&mut n, t(1), inbound_error(&foreign)),
        NatDrop::Filtered
    );
    assert_eq!(n.counters().icmp_errors_translated, 1);
}

#[test]
fn rfc5508_req5_outbound_error_translated() {
    let mut n = napt();
    out_ok(&mut n, t(0), 0, udp((GUEST, 5000), (INET, 53), b"q"));
    // The server's datagram reaches the guest, whose port is closed: it answers 3/3.
    let from_server = udp((INET, 53), (EXT, 5000), b"answer");
    let delivered = in_ok(&mut n, t(1), 0, from_server.clone());
    let unreach = icmp(GUEST, INET, 3, 3, 0, &delivered);
    let e = out_ok(&mut n, t(1), 0, unreach);
    assert_eq!(src_of(&e).0, EXT, "outer source -> external address");
    assert_eq!(dst_of(&e).0, INET);
    assert_eq!((e[20], e[21]), (3, 3));
    assert_eq!(
        quoted(&e),
        &from_server[..],
        "quote reverted to what the server sent"
    );
    // Truncated quote (header + 8 bytes) too.
    let e = out_ok(
        &mut n,
        t(1),
        0,
        icmp(GUEST, INET, 3, 3, 0, &delivered[..28]),
    );
    assert_eq!(quoted(&e), &from_server[..28]);
    // An echo reply the guest got, quoted back (e.g. 3/3 from a firewall inside).
    let ping = out_ok(&mut n, t(0), 0, echo(GUEST, INET, 8, 0x99, 1));
    assert_ne!(
        src_of(&ping).1,
        0x99,
        "identifiers below the range are remapped"
    );
    let reply = echo(INET, EXT, 0, src_of(&ping).1, 1);
    let got = in_ok(&mut n, t(1), 0, reply.clone());
    let e = out_ok(&mut n, t(1), 0, icmp(GUEST, INET, 3, 10, 0, &got));
    assert_eq!(quoted(&e), &reply[..]);
    // No mapping: dropped; no mapping created.
    let stray = udp((INET, 53), (GUEST, 5555), b"x");
    assert_eq!(
        out_drop(&mut n, t(1), 0, icmp(GUEST, INET, 3, 3, 0, &stray)),
        NatDrop::IcmpErrorNoMapping
    );
    assert!(n.mapping(t(1), 0, NatProto::Udp, GUEST, 5555).is_none());
    // Another realm's guest has no such mapping either.
    assert_eq!(
        out_drop(&mut n, t(1), 1, icmp(GUEST, INET, 3, 3, 0, &delivered)),
        NatDrop::IcmpErrorNoMapping
    );
}

#[test]
fn rfc5508_req6_errors_do_not_refresh() {
    let mut n = napt();
    let sent = out_ok(&mut n, t(0), 0, udp((GUEST, 5000), (INET, 53), b"q"));
    let delivered = in_ok(&mut n, t(1), 0, udp((INET, 53), (EXT, 5000), b"a"));
    let ping = out_ok(&mut n, t(0), 0, echo(GUEST, INET, 8, 5, 1));
    let udp_before = n.mapping(t(1), 0, NatProto::Udp, GUEST, 5000).unwrap();
    for s in [50, 100, 290] {
        in_ok(&mut n, t(s), 0, inbound_error(&sent));
        out_ok(&mut n, t(s), 0, icmp(GUEST, INET, 3, 3, 0, &delivered));
        if s < 60 {
            in_ok(&mut n, t(s), 0, inbound_error(&ping));
        }
    }
    assert_eq!(
        n.mapping(t(290), 0, NatProto::Udp, GUEST, 5000),
        Some(udp_before)
    );
    let ping_reply = echo(INET, EXT, 0, src_of(&ping).1, 1);
    assert_eq!(in_drop(&mut n, t(60), ping_reply), NatDrop::NoMapping);
    assert_eq!(
        in_drop(&mut n, t(300), udp((INET, 53), (EXT, 5000), b"a")),
        NatDrop::NoMapping
    );
    // Expired: errors about it are dropped, and they do not bring it back.
    assert_eq!(
        in_drop(&mut n, t(300), inbound_error(&sent)),
        NatDrop::IcmpErrorNoMapping
    );
    n.poll(t(300));
    assert_eq!((n.mapping_count(), n.session_count()), (0, 0));
}

#[test]
fn rfc5508_req8_table_full_icmp_3_13() {
    let mut n = napt_with(|c| c.max_sessions = 2);
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    udp_port(&mut n, t(0), 0, (GUEST, 5001), (INET, 53));
    let offending = udp((GUEST, 5002), (INET, 53), b"one too many");
    assert_eq!(
        out_drop(&mut n, t(1), 0, offending.clone()),
        NatDrop::TableFull
    );
    assert_eq!(n.counters().table_full, 1);
    let mut out = [0xa5u8; 128];
    let len = write_admin_prohibited(&mut out, GW, &offending).unwrap();
    let err = &out[..len];
    verify_checksums(err);
    assert_eq!(len, 20 + 8 + 20 + 8);
    assert_eq!(err[9], 1);
    assert_eq!((err[20], err[21]), (3, 13));
    assert_eq!(Ipv4Addr::new(err[12], err[13], err[14], err[15]), GW);
    assert_eq!(dst_of(err).0, GUEST);
    assert_eq!(quoted(err), &offending[..28], "IP header + 8 bytes quoted");
    assert_eq!(out[len], 0xa5);
}

// ------------------------------------------------------------------ table limits

#[test]
fn table_full_new_dropped_established_kept() {
    let mut n = napt_with(|c| c.max_sessions = 3);
    let (g, s, e) = ((GUEST, 40000), (INET, 80), (EXT, 40000));
    out_ok(&mut n, t(0), 0, tcp(g, s, SYN, 1, 0));
    in_ok(&mut n, t(0), 0, tcp(s, e, SYN | ACK, 1, 2));
    udp_port(&mut n, t(0), 0, (GUEST, 5000), (INET, 53));
    let ping = out_ok(&mut n, t(0), 0, echo(GUEST, INET, 8, 1, 1));
    // Full: new flows of every kind are refused, to new and to known destinations.
    assert_eq!(
        out_drop(&mut n, t(1), 0, tcp((GUEST, 40001), s, SYN, 1, 0)),
        NatDrop::TableFull
    );
    assert_eq!(
        out_drop(&mut n, t(1), 0, udp((GUEST, 5000), (INET2, 53), b"x")),
        NatDrop::TableFull
    );
    assert_eq!(
        out_drop(&mut n, t(1), 0, echo(GUEST, INET, 8, 2, 1)),
        NatDrop::TableFull
    );
    // Existing ones keep working both ways.
    out_ok(&mut n, t(2), 0, tcp(g, s, ACK, 2, 2));
    in_ok(&mut n, t(2), 0, tcp(s, e, ACK, 2, 2));
    udp_port(&mut n, t(2), 0, (GUEST, 5000), (INET, 53));
    in_ok(&mut n, t(2), 0, udp((INET, 53), (EXT, 5000), b"r"));
    in_ok(&mut n, t(2), 0, echo(INET, EXT, 0, src_of(&ping).1, 1));
    assert_eq!(n.session_count(), 3);
    // Once the ICMP session expires, a new flow fits.
    n.poll(t(62));
    assert_eq!(n.session_count(), 2);
    out_ok(&mut n, t(62), 0, tcp((GUEST, 40001), s, SYN, 1, 0));
}

#[test]
fn ports_exhausted_dropped_and_counted() {
    let mut n = napt_with(|c| c.port_range = (2000, 2003));
    for host in 1..=4u8 {
        udp_port(
            &mut n,
            t(0),
            0,
            (Ipv4Addr::new(10, 0, 2, host), 9000),
            (INET, 53),
        );
    }
    assert_eq!(
        out_drop(&mut n, t(0), 0, udp((GUEST2, 9000), (INET, 53), b"x")),
        NatDrop::PortsExhausted
    );
    assert_eq!(n.counters().ports_exhausted, 1);
    assert_eq!(n.mapping_count(), 4);
    n.poll(t(300));
    udp_port(&mut n, t(300), 0, (GUEST2, 9000), (INET, 53));
}

#[test]
fn expiry_reclaims_everything_and_poll_at_says_when() {
    let mut n = napt();
    assert_eq!(n.poll_at(), None);
    for i in 0..1000u16 {
        udp_port(&mut n, t(0), 0, (GUEST, 10000 + i), (INET, 53));
        out_ok(
            &mut n,
            t(0),
            0,
            tcp((GUEST, 20000 + i), (INET, 80), SYN, 1, 0),
        );
    }
    assert_eq!((n.mapping_count(), n.session_count()), (2000, 2000));
    let at = n.poll_at().unwrap();
    assert!(at <= t(240), "{at:?}");
    assert_eq!(n.poll(t(239)), 0);
    assert_eq!(n.poll(t(240)), 1000);
    assert_eq!(n.poll(t(300)), 1000);
    assert_eq!(
        (n.mapping_count(), n.session_count(), n.poll_at()),
        (0, 0, None)
    );
    assert_eq!(n.counters().expired_mappings, 2000);
}

#[test]
fn fragments_dropped_and_counted() {
    let mut n = napt();
    for (flags_hi, off) in [(0x20u8, 0u8), (0x00, 0x10), (0x20, 0x10)] {
        let mut p = udp((GUEST, 5000), (INET, 53), b"fragment");
        p[6] = flags_hi;
        p[7] = off;
        p[10] = 0;
        p[11] = 0;
        let c = checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(out_drop(&mut n, t(0), 0, p.clone()), NatDrop::Fragment);
        assert_eq!(in_drop(&mut n, t(0), p), NatDrop::Fragment);
    }
    assert_eq!(n.counters().fragments, 6);
    assert_eq!(n.mapping_count(), 0);
}

// ------------------------------------------------------------------ workers

#[test]
fn port_space_split_between_workers() {
    let mk = |w| napt_with(|c| (c.workers, c.worker) = (2, w));
    let mut w = [mk(0), mk(1)];
    for (i, n) in w.iter_mut().enumerate() {
        for host in 1..=40u8 {
            for port in [5000u16, 5001, 5002, 5003] {
                let inside = (Ipv4Addr::new(10, 0, 2, host), port);
                let ext = udp_port(n, t(0), 0, inside, (INET, 53));
                assert_eq!(owner_of_port(ext, (1024, 65535), 2), i);
                assert_eq!(n.owner_of_port(ext), i);
                assert_eq!(ext % 2, port % 2, "both parities in every worker");
                let reply = udp((INET, 53), (EXT, ext), b"r");
                assert_eq!(n.owner_of_packet(&reply), Some(i));
            }
        }
    }
    // Port preservation where this worker owns the port: 5000/5001 belong to worker
    // ((5000 - 1024) / 2) % 2 = 0.
    assert_eq!(
        udp_port(&mut w[0], t(0), 0, (GUEST, 7000), (INET, 53)),
        7000
    );
    assert_ne!(
        udp_port(&mut w[1], t(0), 0, (GUEST, 7000), (INET, 53)),
        7000
    );
    // The other worker holds nothing for a port it does not own.
    assert_eq!(
        in_drop(&mut w[1], t(1), udp((INET, 53), (EXT, 7000), b"r")),
        NatDrop::NoMapping
    );
    // ICMP errors and echo replies are owned by the quoted source port / identifier.
    let sent = out_ok(&mut w[1], t(0), 0, udp((GUEST, 9000), (INET, 53), b"q"));
    assert_eq!(w[1].owner_of_packet(&inbound_error(&sent)), Some(1));
    let ping = out_ok(&mut w[1], t(0), 0, echo(GUEST, INET, 8, 3, 1));
    assert_eq!(
        w[0].owner_of_packet(&echo(INET, EXT, 0, src_of(&ping).1, 1)),
        Some(1)
    );
    assert_eq!(w[0].owner_of_packet(&[0x45, 0, 0]), None);
    // A hairpin to a port the other worker owns is handed off, then finished there.
    let mut w = [
        mk(0),
        napt_with(|c| {
            (c.workers, c.worker) = (2, 1);
            c.filtering = Filtering::EndpointIndependent;
        }),
    ];
    let sent = out_ok(&mut w[1], t(0), 0, udp((GUEST, 9000), (INET, 53), b"q"));
    let port = src_of(&sent).1;
    let mut p = udp((GUEST2, 5000), (EXT, port), b"hp");
    assert_eq!(
        w[0].outbound(t(1), 0, &mut p),
        Outbound::Handoff { worker: 1 }
    );
    assert_eq!(src_of(&p).0, EXT);
    assert_eq!(w[1].inbound(t(1), &mut p), Inbound::Translated { realm: 0 });
    verify_checksums(&p);
    assert_eq!(dst_of(&p), (GUEST, 9000));
}

// ------------------------------------------------------------------ forwarding

fn rule(
    name: &str,
    proto: ForwardProto,
    external_ip: Option<Ipv4Addr>,
    external_port: u16,
    realm: u16,
    inside_ip: Ipv4Addr,
    inside_port: u16,
) -> ForwardRule {
    ForwardRule {
        name: name.into(),
        proto,
        external_ip,
        external_port,
        realm,
        inside_ip,
        inside_port,
    }
}

#[test]
fn forward_rule_reaches_inside_and_replies_translate() {
    let mut n = napt();
    n.add_forward(ForwardRule::parse_natpf("ssh,tcp,,2222,,22", 3, GUEST).unwrap())
        .unwrap();
    n.add_forward(rule(
        "dns",
        ForwardProto::Udp,
        Some(EXT),
        5353,
        3,
        GUEST,
        53,
    ))
    .unwrap();
    let (c, e) = ((INET, 50000), (EXT, 2222));
    // Inbound, with address-dependent filtering and no prior contact: forwarded.
    let syn = in_ok(&mut n, t(0), 3, tcp(c, e, SYN, 1, 0));
    assert_eq!((src_of(&syn), dst_of(&syn)), (c, (GUEST, 22)));
    let synack = out_ok(&mut n, t(0), 3, tcp((GUEST, 22), c, SYN | ACK, 9, 2));
    assert_eq!((src_of(&synack), dst_of(&synack)), (e, c));
    in_ok(&mut n, t(0), 3, tcp(c, e, ACK, 2, 10));
    // Established: idle for an hour and it still goes both ways.
    in_ok(&mut n, t(3600), 3, tcp(c, e, ACK, 2, 10));
    let q = in_ok(&mut n, t(1), 3, udp((INET2, 999), (EXT, 5353), b"q"));
    assert_eq!(dst_of(&q), (GUEST, 53));
    let a = out_ok(&mut n, t(1), 3, udp((GUEST, 53), (INET2, 999), b"a"));
    assert_eq!(src_of(&a), (EXT, 5353));
    // The rule only opens its own port and protocol.
    in_drop(&mut n, t(1), udp(c, (EXT, 2222), b"x"));
    in_drop(&mut n, t(1), tcp(c, (EXT, 2223), SYN, 1, 0));
    // A rule on every address also answers on another local address (the host's).
    let host = Ipv4Addr::new(192, 168, 56, 1);
    let syn = in_ok(&mut n, t(1), 3, tcp((host, 40000), (host, 2222), SYN, 1, 0));
    assert_eq!(dst_of(&syn), (GUEST, 22));
    let back = out_ok(
        &mut n,
        t(1),
        3,
        tcp((GUEST, 22), (host, 40000), SYN | ACK, 1, 2),
    );
    assert_eq!(
        src_of(&back),
        (host, 2222),
        "reply from the address the client used"
    );
    // A rule bound to one address does not answer on another of the dataplane's
    // addresses (the host's), nor does a rule bound to the host's on the external one.
    assert_eq!(
        in_drop(&mut n, t(1), udp((INET2, 999), (host, 5353), b"q")),
        NatDrop::NoMapping
    );
    n.add_forward(rule(
        "host-only",
        ForwardProto::Tcp,
        Some(host),
        2323,
        3,
        GUEST,
        23,
    ))
    .unwrap();
    let syn = in_ok(&mut n, t(1), 3, tcp((host, 40001), (host, 2323), SYN, 1, 0));
    assert_eq!(dst_of(&syn), (GUEST, 23));
    assert_eq!(
        in_drop(&mut n, t(1), tcp(c, (EXT, 2323), SYN, 1, 0)),
        NatDrop::NoMapping
    );
    assert!(n.remove_forward("host-only"));
    // A dynamic mapping never takes a forwarded port.
    assert_ne!(udp_port(&mut n, t(1), 0, (GUEST2, 5353), (INET, 53)), 5353);
    // A worker that never saw the connection still translates replies (static mapping).
    let mut other = napt_with(|c| (c.workers, c.worker) = (2, 1));
    other
        .add_forward(ForwardRule::parse_natpf("ssh,tcp,,2222,,22", 3, GUEST).unwrap())
        .unwrap();
    let back = out_ok(&mut other, t(5), 3, tcp((GUEST, 22), c, ACK, 10, 2));
    assert_eq!(src_of(&back), e);
    // Two rules to one inside endpoint: replies leave through the rule the connection
    // came in by.
    n.add_forward(rule("ssh-alt", ForwardProto::Tcp, None, 2022, 3, GUEST, 22))
        .unwrap();
    let c2 = (INET2, 60000);
    let syn = in_ok(&mut n, t(2), 3, tcp(c2, (EXT, 2022), SYN, 1, 0));
    assert_eq!(dst_of(&syn), (GUEST, 22));
    let back = out_ok(&mut n, t(2), 3, tcp((GUEST, 22), c2, SYN | ACK, 1, 2));
    assert_eq!(src_of(&back), (EXT, 2022));
    let back = out_ok(&mut n, t(2), 3, tcp((GUEST, 22), c, ACK, 10, 2));
    assert_eq!(src_of(&back), (EXT, 2222));
    assert!(n.remove_forward("ssh-alt"));
    // Removal closes it.
    assert!(n.remove_forward("ssh"));
    assert!(!n.remove_forward("ssh"));
    assert_eq!(
        in_drop(&mut n, t(2), tcp(c, e, SYN, 1, 0)),
        NatDrop::NoMapping
    );
    assert_eq!(n.forwards().map(|r| &*r.name).collect::<Vec<_>>(), ["dns"]);
}

#[test]
fn forward_rule_sessions_are_tracked_renewed_and_bounded() {
    let host = Ipv4Addr::new(192, 168, 56, 1);
    let c = (INET, 50000);
    // A rule on every address. A client's session records the address it came to; once
    // expired (not yet reclaimed) and reused through another address, replies leave from
    // the new one.
    let mut n = napt();
    n.add_forward(rule("ssh", ForwardProto::Tcp, None, 2222, 3, GUEST, 22))
        .unwrap();
    in_ok(&mut n, t(0), 3, tcp(c, (EXT, 2222), SYN, 1, 0));
    assert_eq!(n.counters().new_sessions, 1);
    // Unanswered, the SYN's session is transitory (240 s); it passes and the same client
    // comes back to the host's address.
    in_ok(&mut n, t(300), 3, tcp(c, (host, 2222), SYN, 1, 0));
    assert_eq!(
        n.counters().new_sessions,
        2,
        "the expired session starts afresh"
    );
    let back = out_ok(&mut n, t(300), 3, tcp((GUEST, 22), c, SYN | ACK, 9, 2));
    assert_eq!(src_of(&back), (host, 2222));
    // Established both ways (inbound ACK), the session outlives the transitory timeout.
    in_ok(&mut n, t(301), 3, tcp(c, (host, 2222), ACK, 2, 10));
    n.poll(t(301 + 600));
    assert_eq!(n.session_count(), 1, "established: 7440 s");
    // Inbound UDP to a UDP rule does not touch TCP state (and is tracked).
    n.add_forward(rule("dns", ForwardProto::Udp, None, 5353, 3, GUEST, 53))
        .unwrap();
    in_ok(&mut n, t(1000), 3, udp((INET2, 9), (EXT, 5353), b"q"));
    assert_eq!(n.session_count(), 2);
    // The client's FIN (inbound) and the guest's: the TCP session is closing (240 s).
    in_ok(&mut n, t(1001), 3, tcp(c, (host, 2222), FIN | ACK, 2, 10));
    out_ok(&mut n, t(1001), 3, tcp((GUEST, 22), c, FIN | ACK, 10, 3));
    n.poll(t(1001 + 250));
    assert_eq!(
        n.session_count(),
        1,
        "the closed TCP session went, the UDP one stays"
    );

    // No room in the table: forwarded, untracked, counted.
    let mut n = napt_with(|c| c.max_sessions = 1);
    n.add_forward(rule("ssh", ForwardProto::Tcp, None, 2222, 3, GUEST, 22))
        .unwrap();
    in_ok(&mut n, t(0), 3, tcp(c, (EXT, 2222), SYN, 1, 0));
    in_ok(&mut n, t(0), 3, tcp((INET2, 1), (EXT, 2222), SYN, 1, 0));
    assert_eq!((n.session_count(), n.counters().forward_untracked), (1, 1));
    // The guest's share is full: likewise, under its own counter.
    let mut n = napt_with(|c| c.max_sessions_per_guest = 1);
    n.add_forward(rule("ssh", ForwardProto::Tcp, None, 2222, 3, GUEST, 22))
        .unwrap();
    in_ok(&mut n, t(0), 3, tcp(c, (EXT, 2222), SYN, 1, 0));
    in_ok(&mut n, t(0), 3, tcp((INET2, 1), (EXT, 2222), SYN, 1, 0));
    assert_eq!(
        (n.session_count(), n.counters().forward_untracked_guest),
        (1, 1)
    );
    assert_eq!(n.guest_sessions(3, GUEST), 1);
    // Outbound from the guest on the rule's port to a new peer: translated, untracked.
    let out = out_ok(&mut n, t(1), 3, tcp((GUEST, 22), (INET2, 7), SYN, 1, 0));
    assert_eq!(src_of(&out), (EXT, 2222));
    assert_eq!(n.counters().forward_untracked_guest, 2);
    // A dynamic flow of that guest is refused as guest_limit; another guest's is not.
    let mut p = udp((GUEST, 6000), (INET, 53), b"q");
    assert_eq!(
        n.outbound(t(1), 3, &mut p),
        Outbound::Drop(NatDrop::GuestLimit)
    );
    assert_eq!(n.counters().guest_limit, 1);
    out_ok(&mut n, t(1), 3, udp((GUEST2, 6000), (INET, 53), b"q"));
}

#[test]
fn filters_close_exactly_at_the_deadline() {
    // A mapping kept alive by a later session to INET2: the one to INET ends at its own
    // deadline (300 s), to the instant, under address- and address-port-dependent filters.
    for filtering in [Filtering::AddressDependent, Filtering::AddressPortDependent] {
        let mut n = napt_with(|c| c.filtering = filtering);
        let port = udp_port(&mut n, t(0), 0, (GUEST, 4000), (INET, 53));
        udp_port(&mut n, t(100), 0, (GUEST, 4000), (INET2, 53));
        let just_before = Instant::from_nanos(t(300).as_nanos() - 1);
        in_ok(&mut n, just_before, 0, udp((INET, 53), (EXT, port), b"r"));
        assert_eq!(
            in_drop(&mut n, t(300), udp((INET, 53), (EXT, port), b"r")),
            NatDrop::Filtered,
            "{filtering:?}"
        );
        in_ok(&mut n, t(300), 0, udp((INET2, 53), (EXT, port), b"r"));
    }
}

#[test]
fn a_hairpin_to_a_forwarded_port_is_translated_by_any_worker() {
    // The rule's port belongs to worker 0; worker 1 holds the rule too and translates
    // the hairpin itself instead of handing it over.
    let mut n = napt_with(|c| (c.workers, c.worker) = (2, 1));
    assert_eq!(n.owner_of_port(1024), 0);
    n.add_forward(rule("web", ForwardProto::Udp, None, 1024, 3, GUEST, 80))
        .unwrap();
    let mut p = udp((GUEST2, 5000), (EXT, 1024), b"hp");
    assert_eq!(n.outbound(t(0), 4, &mut p), Outbound::Hairpin { realm: 3 });
    assert_eq!(dst_of(&p), (GUEST, 80));
}

#[test]
fn forward_rule_takes_port_from_dynamic_mapping() {
    let mut n = napt();
    assert_eq!(udp_port(&mut n, t(0), 0, (GUEST2, 8080), (INET, 53)), 8080);
    n.add_forward(rule("web", ForwardProto::Udp, None, 8080, 0, GUEST, 80))
        .unwrap();
    assert_eq!(n.counters().evicted_by_forward, 1);
    let r = in_ok(&mut n, t(1), 0, udp((INET, 53), (EXT, 8080), b"r"));
    assert_eq!(dst_of(&r), (GUEST, 80));
    assert_ne!(udp_port(&mut n, t(1), 0, (GUEST2, 8080), (INET, 53)), 8080);
    // Removing the rule frees the port for dynamic use again.
    n.remove_forward("web");
    assert_eq!(udp_port(&mut n, t(1), 0, (GUEST, 8080), (INET, 53)), 8080);
}

#[test]
fn forward_rule_collision_refused_naming_both() {
    let mut n = napt();
    n.add_forward(rule("ssh", ForwardProto::Tcp, None, 2222, 0, GUEST, 22))
        .unwrap();
    let err = n
        .add_forward(rule(
            "ssh-again",
            ForwardProto::Tcp,
            Some(EXT),
            2222,
            1,
            GUEST,
            22,
        ))
        .unwrap_err();
    assert!(matches!(err, ForwardError::Collision { .. }));
    let msg = err.to_string();
    assert_eq!(
        msg,
        "forward rule 'ssh-again' collides with rule 'ssh': both take tcp port 2222 on 198.18.0.2"
    );
    // Two rules on every address, and two on the same address, collide too.
    let err = n
        .add_forward(rule("ssh-all", ForwardProto::Tcp, None, 2222, 0, GUEST, 23))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "forward rule 'ssh-all' collides with rule 'ssh': both take tcp port 2222 on every external address"
    );
    let err = n
        .add_forward(rule("ssh", ForwardProto::Udp, None, 2223, 0, GUEST, 22))
        .unwrap_err();
    assert!(matches!(err, ForwardError::DuplicateName { .. }), "{err}");
    // Same port, other protocol; same port on two distinct specific addresses: fine.
    n.add_forward(rule("ssh-udp", ForwardProto::Udp, None, 2222, 0, GUEST, 22))
        .unwrap();
    n.add_forward(rule("a", ForwardProto::Tcp, Some(INET), 3000, 0, GUEST, 1))
        .unwrap();
    n.add_forward(rule(
        "b",
        ForwardProto::Tcp,
        Some(INET2),
        3000,
        0,
        GUEST2,
        1,
    ))
    .unwrap();
    let err = n
        .add_forward(rule("c", ForwardProto::Tcp, None, 3000, 0, GUEST, 2))
        .unwrap_err();
    assert!(err.to_string().contains("'c'") && err.to_string().contains("'a'"));
    let err = n
        .add_forward(rule("d", ForwardProto::Tcp, Some(INET2), 3000, 0, GUEST, 3))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "forward rule 'd' collides with rule 'b': both take tcp port 3000 on 198.18.0.3"
    );
    let err = n
        .add_forward(rule("e", ForwardProto::Udp, None, 2222, 0, GUEST, 3))
        .unwrap_err();
    assert!(err.to_string().contains("udp port 2222"), "{err}");
    assert!(matches!(
        n.add_forward(rule("z", ForwardProto::Tcp, None, 0, 0, GUEST, 2)),
        Err(ForwardError::PortZero { .. })
    ));
    assert_eq!(n.forwards().count(), 4);
}

#[test]
fn realms_are_isolated() {
    let mut n = napt();
    let p1 = udp_port(&mut n, t(0), 1, (GUEST, 5000), (INET, 53));
    let p2 = udp_port(&mut n, t(0), 2, (GUEST, 5000), (INET, 53));
    assert_ne!(p1, p2);
    assert_eq!((p1, p2), (5000, 5002));
    let r = in_ok(&mut n, t(1), 1, udp((INET, 53), (EXT, p1), b"r1"));
    assert_eq!(dst_of(&r), (GUEST, 5000));
    let r = in_ok(&mut n, t(1), 2, udp((INET, 53), (EXT, p2), b"r2"));
    assert_eq!(dst_of(&r), (GUEST, 5000));
    // Realm 1's guest sending again keeps realm 1's port.
    assert_eq!(udp_port(&mut n, t(2), 1, (GUEST, 5000), (INET2, 53)), p1);
    // Errors quoted by realm 2's guest resolve through realm 2's mapping.
    let delivered = in_ok(&mut n, t(3), 2, udp((INET, 53), (EXT, p2), b"r2"));
    let e = out_ok(&mut n, t(3), 2, icmp(GUEST, INET, 3, 3, 0, &delivered));
    assert_eq!(src_of(quoted(&e)), (INET, 53));
    assert_eq!(dst_of(quoted(&e)), (EXT, p2));
}

// ------------------------------------------------------------------ robustness

#[test]
fn malformed_packets_dropped_not_panicking() {
    let mut n = napt();
    let sent = out_ok(&mut n, t(0), 0, udp((GUEST, 5000), (INET, 53), b"q"));
    out_ok(&mut n, t(0), 0, echo(GUEST, INET, 8, 7, 1));
    // (what, packet, the length below which a cut is structurally malformed)
    let packets = [
        ("udp", udp((GUEST, 5000), (INET, 53), b"payload"), 35),
        ("tcp", tcp((GUEST, 40000), (INET, 80), SYN, 1, 0), 40),
        ("echo", echo(GUEST, INET, 8, 7, 1), 28),
        ("error", inbound_error(&sent), 56),
        (
            "error-out",
            icmp(GUEST, INET, 3, 3, 0, &udp((INET, 53), (GUEST, 5000), b"r")),
            56,
        ),
    ];
    for (what, p, min) in &packets {
        for len in 0..p.len() {
            // Cut short with the IPv4 total length unchanged...
            let mut cut = p[..len].to_vec();
            assert!(
                matches!(
                    n.outbound(t(1), 0, &mut cut),
                    Outbound::Drop(NatDrop::Malformed)
                ),
                "{what} outbound cut at {len}"
            );
            let mut cut = p[..len].to_vec();
            assert!(
                matches!(n.inbound(t(1), &mut cut), Inbound::Drop(NatDrop::Malformed)),
                "{what} inbound cut at {len}"
            );
            // ...and with the total length (and header checksum) saying so, so that the
            // transport or quoted header is what is short.
            if len >= 20 {
                let mut cut = p[..len].to_vec();
                cut[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                cut[10] = 0;
                cut[11] = 0;
                let c = checksum::data(&cut[..20]);
                cut[10..12].copy_from_slice(&c.to_be_bytes());
                let v = n.outbound(t(1), 0, &mut cut.clone());
                let w = n.inbound(t(1), &mut cut);
                if len < *min {
                    assert!(
                        matches!(v, Outbound::Drop(_)),
                        "{what} outbound len {len}: {v:?}"
                    );
                    assert!(
                        matches!(w, Inbound::Drop(_)),
                        "{what} inbound len {len}: {w:?}"
                    );
                }
            }
        }
    }
    // Not IPv4, bad header length, total length below the header.
    for bad in [[0x65u8; 40], [0x44; 40]] {
        assert_eq!(out_drop(&mut n, t(1), 0, bad.to_vec()), NatDrop::Malformed);
    }
    let mut p = udp((GUEST, 5000), (INET, 53), b"x");
    p[2..4].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(in_drop(&mut n, t(1), p), NatDrop::Malformed);
    // Port 0 and unsupported protocols.
    assert_eq!(
        out_drop(&mut n, t(1), 0, udp((GUEST, 0), (INET, 53), b"x")),
        NatDrop::Malformed
    );
    assert_eq!(
        out_drop(&mut n, t(1), 0, ip(GUEST, INET, 47, &[0; 8])),
        NatDrop::Unsupported
    );
    assert_eq!(
        in_drop(&mut n, t(1), ip(INET, EXT, 47, &[0; 8])),
        NatDrop::Unsupported
    );
    // The table did not grow from any of it.
    assert_eq!((n.mapping_count(), n.session_count()), (2, 2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120), ver in 0u8..2) {
        let mut n = napt();
        let mut b = bytes.clone();
        if ver == 1 && b.len() >= 20 {
            // Make it look like IPv4 with a valid header checksum, to reach deeper.
            b[0] = 0x45;
            let tl = b.len() as u16;
            b[2..4].copy_from_slice(&tl.to_be_bytes());
            b[6] &= 0x40;
            b[7] = 0;
            b[10] = 0;
            b[11] = 0;
            let c = checksum::data(&b[..20]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
        }
        let _ = n.outbound(t(0), 0, &mut b.clone());
        let _ = n.inbound(t(0), &mut b);
        let _ = n.owner_of_packet(&bytes);
    }

    #[test]
    fn outbound_then_reply_restores_inside_addressing(
        flows in proptest::collection::vec(
            (
                1u8..=254, 1u16.., any::<[u8; 4]>(), 1u16.., 0u16..3,
                proptest::collection::vec(any::<u8>(), 0..40), any::<u8>(), any::<bool>(),
            ),
            1..24,
        )
    ) {
        let mut n = napt();
        for (host, sport, remote, rport, realm, payload, flags, zero_udp_csum) in flows {
            let inside = (Ipv4Addr::new(10, 0, 2, host), sport);
            let mut remote = Ipv4Addr::from(remote);
            if remote == EXT {
                remote = INET;
            }
            let is_tcp = flags & 1 == 1;
            let mut p = if is_tcp {
                tcp(inside, (remote, rport), (flags & !RST) | SYN, 1, 0)
            } else {
                let mut p = udp(inside, (remote, rport), &payload);
                if zero_udp_csum {
                    p[26] = 0;
                    p[27] = 0;
                }
                p
            };
            let original = p.clone();
            prop_assert_eq!(n.outbound(t(0), realm, &mut p), Outbound::Translated);
            verify_checksums(&p);
            prop_assert_eq!(src_of(&p).0, EXT);
            prop_assert_eq!(dst_of(&p), (remote, rport));
            if is_tcp {
                prop_assert_eq!(&p[24..36], &original[24..36], "sequence numbers untouched");
            } else {
                prop_assert_eq!(&p[28..], &original[28..], "payload untouched");
            }
            if !is_tcp && zero_udp_csum {
                prop_assert_eq!(be16(&p, 26), 0, "no checksum stays no checksum");
            }
            let ext = src_of(&p).1;
            let mut reply = if is_tcp {
                tcp((remote, rport), (EXT, ext), SYN | ACK, 5, 2)
            } else {
                udp((remote, rport), (EXT, ext), &payload)
            };
            prop_assert_eq!(n.inbound(t(1), &mut reply), Inbound::Translated { realm });
            verify_checksums(&reply);
            prop_assert_eq!(dst_of(&reply), inside);
            prop_assert_eq!(src_of(&reply), (remote, rport));
        }
    }
}
