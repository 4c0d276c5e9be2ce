//! Building the ICMP errors the NAT itself sends: "communication administratively
//! prohibited" (type 3 code 13) when it cannot create state for a new flow (RFC 5508
//! REQ-8), or any other destination-unreachable / time-exceeded message a caller needs.
//!
//! The error is written into a caller buffer (no allocation): a 20-byte IPv4 header (no
//! options, TTL 64, DF clear), the 8-byte ICMP header, then the offending packet's IPv4
//! header (options included) and the first 8 bytes of its payload (RFC 792, RFC 5508
//! REQ-8), or all of its payload when shorter.
//!
//! Invariants: the helper never answers what RFC 1122 section 3.2.2 forbids answering: an
//! ICMP error (or an unknown ICMP type), a non-first fragment, a packet from an address
//! that does not name one host (unspecified, broadcast, multicast, loopback), or a packet to
//! a broadcast or multicast address. It reads only the bytes the offending IPv4 header
//! announces and never panics on them.

use std::net::Ipv4Addr;

use vnet_core::wire::checksum;

use super::config::ip_bounds;

/// Length of the IPv4 header the helper writes.
const OUTER_IP_LEN: usize = 20;
/// Bytes of the offending payload quoted.
const QUOTE_LEN: usize = 8;

/// Why no error was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IcmpErrorRefused {
    /// `out` cannot hold the message; `needed` bytes would.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The offending packet's IPv4 header is malformed or truncated.
    Malformed,
    /// The offending packet is an ICMP error or an ICMP type that is not a query.
    IcmpError,
    /// The offending packet is a non-first fragment.
    NonFirstFragment,
    /// The offending packet's source or destination must not be answered.
    BadAddress,
}

/// Writes an ICMP destination-unreachable "communication administratively prohibited"
/// (type 3, code 13) from `from` to the source of `offending` (an IPv4 packet, from its
/// header on) into `out`; returns the length written. RFC 5508 REQ-8's answer when the NAT
/// cannot create a session for a new flow ([`NatDrop::TableFull`](super::NatDrop::TableFull)).
///
/// # Errors
///
/// As [`write_icmp_error`].
pub fn write_admin_prohibited(
    out: &mut [u8],
    from: Ipv4Addr,
    offending: &[u8],
) -> Result<usize, IcmpErrorRefused> {
    write_icmp_error(out, from, offending, 3, 13, 0)
}

/// Writes an ICMP error of `icmp_type`/`code` (with `rest`, the 4 bytes after the checksum:
/// 0, or the next-hop MTU for 3/4) from `from` about `offending` into `out`; returns the
/// length written (IPv4 header included). See the [module documentation](self).
///
/// # Errors
///
/// [`IcmpErrorRefused`] when `offending` must not be answered or `out` is too small; `out`
/// is then untouched.
pub fn write_icmp_error(
    out: &mut [u8],
    from: Ipv4Addr,
    offending: &[u8],
    icmp_type: u8,
    code: u8,
    rest: u32,
) -> Result<usize, IcmpErrorRefused> {
    let (hl, tl) = ip_bounds(offending).ok_or(IcmpErrorRefused::Malformed)?;
    if u16::from_be_bytes([offending[6], offending[7]]) & 0x1fff != 0 {
        return Err(IcmpErrorRefused::NonFirstFragment);
    }
    if offending[9] == 1 {
        // Only queries may be answered: echo, timestamp, information, address mask.
        match offending.get(hl) {
            Some(8 | 0 | 13 | 14 | 15 | 16 | 17 | 18) => {}
            Some(_) => return Err(IcmpErrorRefused::IcmpError),
            None => return Err(IcmpErrorRefused::Malformed),
        }
    }
    let src = Ipv4Addr::new(offending[12], offending[13], offending[14], offending[15]);
    let dst = Ipv4Addr::new(offending[16], offending[17], offending[18], offending[19]);
    if src.is_unspecified()
        || src.is_broadcast()
        || src.is_multicast()
        || src.is_loopback()
        || dst.is_broadcast()
        || dst.is_multicast()
    {
        return Err(IcmpErrorRefused::BadAddress);
    }
    let quote = hl + QUOTE_LEN.min(tl - hl);
    let needed = OUTER_IP_LEN + 8 + quote;
    if out.len() < needed {
        return Err(IcmpErrorRefused::BufferTooSmall { needed });
    }
    let out = &mut out[..needed];
    // IPv4 header.
    out[0] = 0x45;
    out[1] = 0;
    out[2..4].copy_from_slice(&(needed as u16).to_be_bytes());
    out[4..8].fill(0);
    out[8] = 64;
    out[9] = 1;
    out[10..12].fill(0);
    out[12..16].copy_from_slice(&from.octets());
    out[16..20].copy_from_slice(&src.octets());
    let c = checksum::data(&out[..OUTER_IP_LEN]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    // ICMP header and quote.
    let icmp = &mut out[OUTER_IP_LEN..];
    icmp[0] = icmp_type;
    icmp[1] = code;
    icmp[2..4].fill(0);
    icmp[4..8].copy_from_slice(&rest.to_be_bytes());
    icmp[8..].copy_from_slice(&offending[..quote]);
    let c = checksum::data(icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const UDP: [u8; 32] = [
        0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 2, 15, 198, 18, 0, 1, // IPv4
        0x13, 0x88, 0x00, 0x35, 0, 12, 0, 0, // UDP 5000 -> 53
        1, 2, 3, 4,
    ];

    #[test]
    fn admin_prohibited_quotes_header_and_8_bytes() {
        let mut out = [0xa5u8; 128];
        let n = write_admin_prohibited(&mut out, Ipv4Addr::new(10, 0, 2, 2), &UDP).unwrap();
        assert_eq!(n, 20 + 8 + 28);
        assert_eq!(out[n], 0xa5, "nothing written past the message");
        assert_eq!(checksum::fold(checksum::sum(&out[..20])), 0xffff);
        assert_eq!(checksum::fold(checksum::sum(&out[20..n])), 0xffff);
        assert_eq!(&out[16..20], &[10, 0, 2, 15]);
        assert_eq!(&out[12..16], &[10, 0, 2, 2]);
        assert_eq!((out[20], out[21]), (3, 13));
        assert_eq!(&out[28..n], &UDP[..28]);
    }

    #[test]
    fn refusals() {
        let mut out = [0u8; 128];
        let from = Ipv4Addr::new(10, 0, 2, 2);
        assert_eq!(
            write_admin_prohibited(&mut out[..40], from, &UDP),
            Err(IcmpErrorRefused::BufferTooSmall { needed: 56 })
        );
        let mut frag = UDP;
        frag[7] = 1;
        assert_eq!(
            write_admin_prohibited(&mut out, from, &frag),
            Err(IcmpErrorRefused::NonFirstFragment)
        );
        let mut icmp_err = UDP;
        icmp_err[9] = 1;
        icmp_err[20] = 3;
        assert_eq!(
            write_admin_prohibited(&mut out, from, &icmp_err),
            Err(IcmpErrorRefused::IcmpError)
        );
        let mut bcast = UDP;
        bcast[16..20].copy_from_slice(&[255; 4]);
        assert_eq!(
            write_admin_prohibited(&mut out, from, &bcast),
            Err(IcmpErrorRefused::BadAddress)
        );
        for len in 0..20 {
            assert_eq!(
                write_admin_prohibited(&mut out, from, &UDP[..len]),
                Err(IcmpErrorRefused::Malformed)
            );
        }
    }
}
