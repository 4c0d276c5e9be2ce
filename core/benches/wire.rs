//! Wire-format micro-benchmarks (criterion).
//!
//! - `parse_eth_ipv4_udp`: checked parse of a minimum-size frame (64 bytes on the wire, 60 in
//!   the buffer since AF_XDP frames carry no FCS): Ethernet, IPv4 with header checksum
//!   verification, UDP; reads the ports.
//! - `parse_eth_ipv4_udp_reprs`: the same through `Ipv4Repr`/`UdpRepr`, which also verify the
//!   UDP checksum.
//! - `incremental_checksum_rewrite`: a NAT-style rewrite of the source address and port with
//!   RFC 1624 updates of the IPv4 and UDP checksums (no recomputation).
//! - `checksum_sum_1500`: full one's complement sum over 1500 bytes, for scale.
//!
//! Run: `cargo bench -p vnet-core --no-default-features --bench wire`.

use std::net::Ipv4Addr;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vnet_core::wire::{
    checksum, EtherType, EthernetAddress, EthernetFrame, EthernetRepr, IpProtocol, Ipv4Packet,
    Ipv4Repr, Layer, Malformed, UdpPacket, UdpRepr, WireError,
};

const SRC_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
const DST_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// A 60-byte Ethernet/IPv4/UDP frame with 18 bytes of payload and valid checksums.
fn frame_60() -> [u8; 60] {
    let mut buf = [0u8; 60];
    let eth = EthernetRepr {
        src_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
        dst_addr: EthernetAddress([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]),
        ethertype: EtherType::Ipv4,
        vlan: None,
    };
    let udp = UdpRepr {
        src_port: 40000,
        dst_port: 7,
        payload_len: 18,
    };
    let ip = Ipv4Repr {
        src_addr: SRC_IP,
        dst_addr: DST_IP,
        next_header: IpProtocol::Udp,
        payload_len: udp.buffer_len(),
        hop_limit: 64,
        ident: 1,
        dont_frag: true,
    };
    for (i, b) in buf[42..].iter_mut().enumerate() {
        *b = i as u8;
    }
    eth.emit(&mut EthernetFrame::new_unchecked(&mut buf[..]));
    ip.emit(&mut Ipv4Packet::new_unchecked(&mut buf[14..]));
    udp.emit(
        &mut UdpPacket::new_unchecked(&mut buf[34..]),
        SRC_IP,
        DST_IP,
    );
    buf
}

#[inline(never)]
fn parse_views(frame: &[u8]) -> Result<(u16, u16), WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    if eth.ethertype() != EtherType::Ipv4 {
        return Err(WireError::Malformed(
            Layer::Ethernet,
            Malformed::BadProtocolType,
        ));
    }
    let ip = Ipv4Packet::new_checked(eth.payload())?;
    if !ip.verify_checksum() {
        return Err(WireError::Malformed(Layer::Ipv4, Malformed::BadChecksum));
    }
    let udp = UdpPacket::new_checked(ip.payload())?;
    Ok((udp.src_port(), udp.dst_port()))
}

#[inline(never)]
fn parse_reprs(frame: &[u8]) -> Result<(Ipv4Repr, UdpRepr), WireError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let ip = Ipv4Packet::new_checked(eth.payload())?;
    let ip_repr = Ipv4Repr::parse(&ip)?;
    let udp = UdpPacket::new_checked(ip.payload())?;
    let udp_repr = UdpRepr::parse(&udp, ip_repr.src_addr, ip_repr.dst_addr)?;
    Ok((ip_repr, udp_repr))
}

/// Rewrites the source address and port of an Ethernet/IPv4/UDP frame in place, updating
/// both checksums incrementally.
#[inline(never)]
fn rewrite_source(frame: &mut [u8], new_addr: Ipv4Addr, new_port: u16) {
    let mut eth = EthernetFrame::new_unchecked(frame);
    let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
    let old_addr = u32::from(ip.src_addr());
    let new_addr_bits = u32::from(new_addr);
    ip.set_checksum(checksum::update32(ip.checksum(), old_addr, new_addr_bits));
    ip.set_src_addr(new_addr);
    let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
    let old_port = udp.src_port();
    udp.update_checksum32(old_addr, new_addr_bits);
    udp.update_checksum16(old_port, new_port);
    udp.set_src_port(new_port);
}

fn benches(c: &mut Criterion) {
    let frame = frame_60();
    assert_eq!(parse_views(&frame), Ok((40000, 7)));
    assert!(parse_reprs(&frame).is_ok());

    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_eth_ipv4_udp", |b| {
        b.iter(|| parse_views(black_box(&frame[..])))
    });
    group.bench_function("parse_eth_ipv4_udp_reprs", |b| {
        b.iter(|| parse_reprs(black_box(&frame[..])))
    });

    let mut rewritten = frame;
    let targets = [(Ipv4Addr::new(198, 18, 0, 2), 61000u16), (SRC_IP, 40000u16)];
    // Sanity: the incremental result equals a full recomputation.
    rewrite_source(&mut rewritten, targets[0].0, targets[0].1);
    {
        let ip = Ipv4Packet::new_checked(&rewritten[14..]).unwrap();
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert!(udp.verify_checksum(targets[0].0, DST_IP));
    }
    let mut i = 0usize;
    group.bench_function("incremental_checksum_rewrite", |b| {
        b.iter(|| {
            let (addr, port) = targets[i & 1];
            i = i.wrapping_add(1);
            rewrite_source(
                black_box(&mut rewritten[..]),
                black_box(addr),
                black_box(port),
            );
        })
    });
    group.finish();

    let big: Vec<u8> = (0..1500u32).map(|i| (i * 7) as u8).collect();
    let mut group = c.benchmark_group("wire");
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("checksum_sum_1500", |b| {
        b.iter(|| checksum::sum(black_box(&big[..])))
    });
    group.finish();
}

criterion_group!(wire, benches);
criterion_main!(wire);
