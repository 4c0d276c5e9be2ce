//! In-place address rewrites of routed IPv4 packets with incremental checksum updates
//! (RFC 1624): the host loopback mapping (10.0.2.2 <-> the host's address) and the TTL.
//!
//! Invariants: only the IPv4 header and the TCP/UDP checksum change; a UDP checksum of
//! zero (none) stays zero; fragments and other protocols get the IP header rewrite only.

use std::net::Ipv4Addr;
use vnet_core::wire::checksum;

/// Which address to rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// The source address.
    Source,
    /// The destination address.
    Destination,
}

/// Rewrite one address of the IPv4 packet `ip` (from its header on) to `new`.
pub fn readdress(ip: &mut [u8], which: Field, new: Ipv4Addr) {
    if ip.len() < 20 {
        return;
    }
    let at = match which {
        Field::Source => 12,
        Field::Destination => 16,
    };
    let old = u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    let new32 = u32::from(new);
    if old == new32 {
        return;
    }
    ip[at..at + 4].copy_from_slice(&new.octets());
    let sum = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&checksum::update32(sum, old, new32).to_be_bytes());
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let first_fragment = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff == 0;
    let (csum_at, is_udp) = match ip[9] {
        6 => (16, false),
        17 => (6, true),
        _ => return,
    };
    if !first_fragment || ip.len() < ihl + csum_at + 2 {
        return;
    }
    let l4 = &mut ip[ihl..];
    let sum = u16::from_be_bytes([l4[csum_at], l4[csum_at + 1]]);
    if is_udp && sum == 0 {
        return;
    }
    let mut updated = checksum::update32(sum, old, new32);
    if is_udp && updated == 0 {
        updated = 0xffff;
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&updated.to_be_bytes());
}

/// Decrement the TTL; false (packet untouched) when it would reach zero.
pub fn decrement_ttl(ip: &mut [u8]) -> bool {
    if ip.len() < 20 || ip[8] <= 1 {
        return false;
    }
    let old = u16::from_be_bytes([ip[8], ip[9]]);
    ip[8] -= 1;
    let new = u16::from_be_bytes([ip[8], ip[9]]);
    let sum = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&checksum::update16(sum, old, new).to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use vnet_core::wire::{Ipv4Packet, TcpPacket, UdpPacket};

    fn packet(proto: u8) -> Vec<u8> {
        let l4_len = if proto == 6 { 20 } else { 8 };
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2,
        ];
        p.resize(20 + l4_len + 4, 0);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[20..22].copy_from_slice(&40000u16.to_be_bytes());
        p[22..24].copy_from_slice(&80u16.to_be_bytes());
        if proto == 6 {
            p[32] = 0x50;
        } else {
            p[24..26].copy_from_slice(&(l4_len as u16 + 4).to_be_bytes());
        }
        let n = p.len();
        p[n - 4..].copy_from_slice(b"data");
        let (s, d) = (Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 2));
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.fill_checksum();
        if proto == 6 {
            TcpPacket::new_unchecked(ip.payload_mut()).fill_checksum(s, d);
        } else {
            UdpPacket::new_unchecked(ip.payload_mut()).fill_checksum(s, d);
        }
        p
    }

    fn valid(p: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        let (s, d) = (ip.src_addr(), ip.dst_addr());
        ip.verify_checksum()
            && match p[9] {
                6 => TcpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(s, d),
                _ => UdpPacket::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum(s, d),
            }
    }

    #[test]
    fn rewrites_keep_every_checksum_valid() {
        for proto in [6u8, 17] {
            let mut p = packet(proto);
            readdress(&mut p, Field::Destination, Ipv4Addr::new(198, 19, 0, 1));
            assert_eq!(&p[16..20], &[198, 19, 0, 1]);
            assert!(valid(&p), "proto {proto} after dst rewrite");
            readdress(&mut p, Field::Source, Ipv4Addr::new(10, 0, 2, 2));
            assert!(valid(&p), "proto {proto} after src rewrite");
            assert!(decrement_ttl(&mut p));
            assert_eq!(p[8], 63);
            assert!(valid(&p));
        }
    }

    #[test]
    fn ttl_one_is_not_forwarded() {
        let mut p = packet(17);
        p[8] = 1;
        assert!(!decrement_ttl(&mut p));
        assert_eq!(p[8], 1);
    }

    #[test]
    fn short_packets_are_left_alone() {
        for n in 0..28 {
            let mut p = packet(17);
            p.truncate(n);
            readdress(&mut p, Field::Source, Ipv4Addr::new(1, 2, 3, 4));
        }
    }
}
