//! Completing partial TCP/UDP checksums (what a NIC does for `CHECKSUM_PARTIAL`).
//!
//! A sender that offloads its transport checksum writes the folded pseudo-header sum `P`
//! into the checksum field and leaves the rest to the NIC. With the field holding `P`,
//! the ones' complement sum of the transport segment is `D + P`, where `D` is the sum of
//! everything but the field, so the finished checksum `!(pseudo + D)` is simply
//! `!fold(sum(segment))`: one pass over the segment, no pseudo-header to add again.
//!
//! The detection test is `field == P`. For a frame whose checksum was already valid and
//! happens to equal `P` (a one-in-65536 coincidence), the same formula gives the same
//! value back, so completing never damages a good frame; a frame whose checksum is simply
//! wrong does not hold `P` and is left untouched (a switch does not judge).

use super::headers::{locate, partial_value, PROTO_UDP};
use crate::wire::checksum;

/// Completes the TCP or UDP checksum of an Ethernet frame if it is partial.
///
/// Returns `true` when the checksum field was rewritten (a partial checksum completed),
/// `false` for every other frame, which is left byte for byte as it was. Never panics.
#[inline]
pub fn complete_partial(frame: &mut [u8]) -> bool {
    let Some(h) = locate(frame) else {
        return false;
    };
    let at = h.csum_field();
    let field = u16::from_be_bytes([frame[at], frame[at + 1]]);
    // A UDP checksum of zero means "none" (IPv4); P is never zero (the protocol is in it).
    if field != partial_value(frame, &h) {
        return false;
    }
    let mut done = !checksum::fold(checksum::sum(&frame[h.l4..h.end]));
    if h.proto == PROTO_UDP && done == 0 {
        done = 0xffff; // RFC 768: a computed zero is sent as all ones.
    }
    if done == field {
        return false;
    }
    frame[at..at + 2].copy_from_slice(&done.to_be_bytes());
    true
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::checksum::{data, fold, pseudo_header_v4};
    use crate::wire::IpProtocol;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    /// An Ethernet + IPv4 + TCP/UDP frame with a valid checksum, and the offset of its
    /// checksum field.
    pub(crate) fn v4_frame(proto: u8, payload: &[u8], vlan: bool) -> (Vec<u8>, usize) {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let l3 = f.len();
        let l4_len = if proto == 6 { 20 } else { 8 } + payload.len();
        let total = 20 + l4_len;
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            1,
            0x40,
            0,
            64,
            proto,
        ]);
        f.extend_from_slice(&[0, 0, 10, 0, 2, 15, 198, 18, 0, 1]);
        let ip_csum = data(&f[l3..l3 + 20]);
        f[l3 + 10..l3 + 12].copy_from_slice(&ip_csum.to_be_bytes());
        let l4 = f.len();
        if proto == 6 {
            f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18]);
            f.extend_from_slice(&[0x01, 0xf6, 0, 0, 0, 0]);
        } else {
            f.extend_from_slice(&[
                0x9c,
                0x40,
                0x00,
                0x35,
                (l4_len >> 8) as u8,
                l4_len as u8,
                0,
                0,
            ]);
        }
        f.extend_from_slice(payload);
        let at = l4 + if proto == 6 { 16 } else { 6 };
        let p = pseudo_header_v4(
            Ipv4Addr::new(10, 0, 2, 15),
            Ipv4Addr::new(198, 18, 0, 1),
            IpProtocol::from(proto),
            l4_len as u16,
        );
        let mut c = !fold(p + checksum::sum(&f[l4..]));
        if proto == 17 && c == 0 {
            c = 0xffff;
        }
        f[at..at + 2].copy_from_slice(&c.to_be_bytes());
        (f, at)
    }

    /// The same frame as its sender would hand it over with checksum offload.
    pub(crate) fn make_partial(f: &mut [u8], at: usize) {
        let h = locate(f).unwrap();
        let p = partial_value(f, &h);
        f[at..at + 2].copy_from_slice(&p.to_be_bytes());
    }

    #[test]
    fn a_partial_tcp_checksum_is_completed_to_the_real_one() {
        for vlan in [false, true] {
            let (good, at) = v4_frame(6, b"hello, partial world", vlan);
            let mut f = good.clone();
            make_partial(&mut f, at);
            assert_ne!(f, good);
            assert!(complete_partial(&mut f));
            assert_eq!(f, good);
        }
    }

    #[test]
    fn a_partial_udp_checksum_is_completed_and_padding_is_not_covered() {
        let (good, at) = v4_frame(17, b"dns?", false);
        let mut f = good.clone();
        make_partial(&mut f, at);
        f.extend_from_slice(&[0xee; 18]); // Ethernet padding beyond the IP length
        assert!(complete_partial(&mut f));
        assert_eq!(&f[..good.len()], &good[..]);
    }

    #[test]
    fn valid_wrong_and_other_frames_are_left_alone() {
        let (good, at) = v4_frame(6, b"abc", false);
        let mut f = good.clone();
        assert!(!complete_partial(&mut f));
        assert_eq!(f, good);
        f[at] ^= 0x55; // simply wrong: forwarded as it is
        let wrong = f.clone();
        assert!(!complete_partial(&mut f));
        assert_eq!(f, wrong);
        // UDP without a checksum (zero) stays without one.
        let (mut u, uat) = v4_frame(17, b"x", false);
        u[uat..uat + 2].copy_from_slice(&[0, 0]);
        let before = u.clone();
        assert!(!complete_partial(&mut u));
        assert_eq!(u, before);
        // ARP, truncated frames, fragments.
        assert!(!complete_partial(&mut [0u8; 10]));
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert!(!complete_partial(&mut arp));
        let mut frag = good.clone();
        make_partial(&mut frag, at);
        frag[20] |= 0x20; // more fragments
        let before = frag.clone();
        assert!(!complete_partial(&mut frag));
        assert_eq!(frag, before);
    }

    #[test]
    fn ipv6_partial_tcp_is_completed() {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
        let payload = b"six";
        let l4_len = 20 + payload.len();
        f.extend_from_slice(&[0x60, 0, 0, 0, 0, l4_len as u8, 6, 64]);
        f.extend_from_slice(&[0xfd; 16]);
        f.extend_from_slice(&[0xfe; 16]);
        let l4 = f.len();
        f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18]);
        f.extend_from_slice(&[0x01, 0xf6, 0, 0, 0, 0]);
        f.extend_from_slice(payload);
        // Reference: pseudo-header + segment, written out word by word.
        let mut p: u32 = 0;
        for w in f[22..54].chunks(2) {
            p += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        p += 6 + l4_len as u32;
        let good = !fold(p + checksum::sum(&f[l4..]));
        f[l4 + 16..l4 + 18].copy_from_slice(&fold(p).to_be_bytes());
        assert!(complete_partial(&mut f));
        assert_eq!(u16::from_be_bytes([f[l4 + 16], f[l4 + 17]]), good);
    }

    proptest! {
        /// Any payload: partial -> completed equals the sender's full checksum, and a
        /// valid frame is never changed.
        #[test]
        fn completion_matches_full_computation(
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            tcp in any::<bool>(),
        ) {
            let (good, at) = v4_frame(if tcp { 6 } else { 17 }, &payload, false);
            let mut same = good.clone();
            complete_partial(&mut same);
            prop_assert_eq!(&same, &good);
            let mut f = good.clone();
            make_partial(&mut f, at);
            complete_partial(&mut f);
            prop_assert_eq!(&f, &good);
        }

        /// Arbitrary bytes never panic and are changed only in the checksum field.
        #[test]
        fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let before = bytes.clone();
            if complete_partial(&mut bytes) {
                let diff: Vec<_> = (0..bytes.len()).filter(|&i| bytes[i] != before[i]).collect();
                prop_assert!(diff.len() <= 2);
            } else {
                prop_assert_eq!(bytes, before);
            }
        }
    }
}
