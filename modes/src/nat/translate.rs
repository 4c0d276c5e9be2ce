//! Rewriting packets in place: addresses, ports and identifiers, with every checksum they
//! touch patched incrementally (RFC 1624 equation 3, via [`vnet_core::wire::checksum`]).
//!
//! Invariants (the callers check lengths first; nothing here re-checks them):
//!
//! - `ip` holds a checked IPv4 header of `hl` bytes followed by a transport header long
//!   enough for the field rewritten (TCP 20, UDP 8, ICMP 8 bytes);
//! - after a rewrite every checksum equals what a full recomputation gives: the IPv4
//!   header checksum, the TCP/UDP checksum (pseudo-header included; a UDP checksum of 0,
//!   "none", stays 0, and a computed 0 is written as `0xffff`), the ICMP checksum;
//! - inside an ICMP error, every 16-bit word changed in the quoted packet goes through
//!   [`icmp_put16`], which patches the outer ICMP checksum; all those words sit at even
//!   offsets of the ICMP message (8 + a multiple of 4 + an even offset), as RFC 1624 needs.

use vnet_core::wire::checksum::{update16, update32};

#[inline(always)]
pub(crate) fn rd16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
pub(crate) fn wr16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn rd32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
fn wr32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

/// Offset of the IPv4 source address.
pub(crate) const SRC: usize = 12;
/// Offset of the IPv4 destination address.
pub(crate) const DST: usize = 16;

/// The transport a rewrite touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum L4 {
    /// TCP: ports at 0/2, checksum at 16 over a pseudo-header.
    Tcp,
    /// UDP: ports at 0/2, optional checksum at 6 over a pseudo-header.
    Udp,
    /// ICMP query: identifier at 4, checksum at 2, no pseudo-header.
    Icmp,
}

impl L4 {
    #[inline]
    fn csum_at(self) -> usize {
        match self {
            L4::Tcp => 16,
            L4::Udp => 6,
            L4::Icmp => 2,
        }
    }

    /// Offset of the port (or identifier) on the `addr` side (`SRC` or `DST`).
    #[inline]
    fn port_at(self, addr: usize) -> usize {
        match (self, addr) {
            (L4::Icmp, _) => 4,
            (_, SRC) => 0,
            _ => 2,
        }
    }
}

/// A transport checksum after its pseudo-header address went `old_ip -> new_ip` and a
/// covered word went `old_port -> new_port`.
#[inline]
fn l4_checksum(l4: L4, c: u16, old_ip: u32, new_ip: u32, old_port: u16, new_port: u16) -> u16 {
    match l4 {
        L4::Udp if c == 0 => 0,
        L4::Icmp => update16(c, old_port, new_port),
        _ => {
            let c = update16(update32(c, old_ip, new_ip), old_port, new_port);
            if l4 == L4::Udp && c == 0 {
                0xffff
            } else {
                c
            }
        }
    }
}

/// Rewrites the address at `addr` (`SRC` or `DST`) of the IPv4 header and the matching
/// port (identifier for ICMP) of the transport header at `hl`, fixing both checksums.
#[inline]
pub(crate) fn rewrite(ip: &mut [u8], hl: usize, l4: L4, addr: usize, new_ip: u32, new_port: u16) {
    let old_ip = rd32(ip, addr);
    if old_ip != new_ip {
        wr32(ip, addr, new_ip);
        wr16(ip, 10, update32(rd16(ip, 10), old_ip, new_ip));
    }
    let port_at = hl + l4.port_at(addr);
    let old_port = rd16(ip, port_at);
    wr16(ip, port_at, new_port);
    let c_at = hl + l4.csum_at();
    let c = l4_checksum(l4, rd16(ip, c_at), old_ip, new_ip, old_port, new_port);
    wr16(ip, c_at, c);
}

/// Writes `v` at `at` of an ICMP message and patches its checksum (at 2).
#[inline]
pub(crate) fn icmp_put16(icmp: &mut [u8], at: usize, v: u16) {
    let old = rd16(icmp, at);
    if old != v {
        wr16(icmp, at, v);
        wr16(icmp, 2, update16(rd16(icmp, 2), old, v));
    }
}

/// Rewrites, inside the ICMP error `icmp` (from its type byte), the quoted packet's
/// address at `addr` (`SRC` or `DST`) and the matching port or identifier of its transport
/// header at `8 + ihl`, fixing the quoted IPv4 header checksum, the quoted transport
/// checksum when it lies within the quote (UDP and ICMP always, TCP when 18 bytes are
/// quoted), and the outer ICMP checksum.
pub(crate) fn rewrite_quoted(
    icmp: &mut [u8],
    ihl: usize,
    l4: L4,
    addr: usize,
    new_ip: u32,
    new_port: u16,
) {
    let base = 8;
    let old_ip = rd32(icmp, base + addr);
    icmp_put16(icmp, base + addr, (new_ip >> 16) as u16);
    icmp_put16(icmp, base + addr + 2, new_ip as u16);
    let ip_c = update32(rd16(icmp, base + 10), old_ip, new_ip);
    icmp_put16(icmp, base + 10, ip_c);
    let t = base + ihl;
    let port_at = t + l4.port_at(addr);
    let old_port = rd16(icmp, port_at);
    icmp_put16(icmp, port_at, new_port);
    let c_at = t + l4.csum_at();
    if icmp.len() >= c_at + 2 {
        let c = l4_checksum(l4, rd16(icmp, c_at), old_ip, new_ip, old_port, new_port);
        icmp_put16(icmp, c_at, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vnet_core::wire::checksum;

    #[test]
    fn udp_rewrite_matches_recomputation_and_keeps_zero() {
        let mut p = [
            0x45, 0, 0, 30, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 2, 15, 198, 18, 0, 1, // ip
            0x13, 0x88, 0, 53, 0, 10, 0, 0, 0xab, 0xcd,
        ];
        let c = checksum::data(&p[..20]);
        wr16(&mut p, 10, c);
        let mut zero = p;
        let pseudo = checksum::pseudo_header_v4(
            [10, 0, 2, 15].into(),
            [198, 18, 0, 1].into(),
            vnet_core::wire::IpProtocol::Udp,
            10,
        );
        let c = !checksum::fold(pseudo + checksum::sum(&p[20..]));
        wr16(&mut p, 26, c);
        rewrite(&mut p, 20, L4::Udp, SRC, 0xc612_0002, 1024);
        assert_eq!(checksum::fold(checksum::sum(&p[..20])), 0xffff);
        let pseudo = checksum::pseudo_header_v4(
            [198, 18, 0, 2].into(),
            [198, 18, 0, 1].into(),
            vnet_core::wire::IpProtocol::Udp,
            10,
        );
        assert_eq!(checksum::fold(pseudo + checksum::sum(&p[20..])), 0xffff);
        rewrite(&mut zero, 20, L4::Udp, SRC, 0xc612_0002, 1024);
        assert_eq!(rd16(&zero, 26), 0);
    }
}
