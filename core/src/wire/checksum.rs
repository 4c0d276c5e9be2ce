//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! Vocabulary:
//!
//! - a *partial sum* (`u32`) is the one's complement sum of big-endian 16-bit words, not yet
//!   folded; [`sum`] returns one that is at most `0xffff`, so up to 65 536 partial sums can be
//!   added with `+` in a `u32` before [`fold`];
//! - [`fold`] adds the carries back in (end-around carry) and gives the 16-bit sum;
//! - the *checksum* written into a header is the complement of the folded sum ([`data`]).
//!
//! A buffer is verified by summing it *with* its checksum field in place: the folded sum is
//! `0xffff` exactly when the checksum is right.
//!
//! Incremental updates use RFC 1624 equation 3, `HC' = ~(~HC + ~m + m')`, which (unlike
//! equation 2 of RFC 1141) never turns a correct `0x0000` into `0xffff` or the reverse: the
//! result equals a full recomputation whenever the covered data is not all zeros. (If the
//! rewrite makes *all* covered data zero, equation 3 gives `0x0000` where recomputation gives
//! `0xffff`; that cannot happen for IPv4, whose first byte holds the version, nor for UDP and
//! TCP, whose pseudo-header holds the protocol number.)

use std::net::Ipv4Addr;

use super::IpProtocol;

/// One's complement partial sum of `data`, read as big-endian 16-bit words.
///
/// An odd final byte is padded with a zero low byte (RFC 1071). When a checksum covers
/// several slices, only the last may have odd length.
///
/// The result is at most `0xffff` (it is folded), and is `0` only if every byte is zero.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    // The ones' complement sum is byte-order independent (RFC 1071 section 2(B)): sum the
    // words in the machine's own order and swap the folded result once. Native 32-bit
    // words widened into a u64 need no byte swaps, so the loop vectorises; 2^32 words of
    // slack before the accumulator could overflow. 2^32 == 1 (mod 0xffff), so a 32-bit
    // word adds the same value modulo 0xffff as its two 16-bit halves, and the folds
    // below preserve "zero only if all bytes are zero", which is what makes this equal
    // to the word-by-word sum.
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        acc += u64::from(u32::from_ne_bytes([c[0], c[1], c[2], c[3]]));
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        // In network order an odd final byte is the high byte of a zero-padded word.
        acc += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    // Fold 64 -> 32 -> 16 bits with end-around carry, then back to network order.
    let mut s = (acc & 0xffff_ffff) + (acc >> 32);
    s = (s & 0xffff_ffff) + (s >> 32);
    u32::from(u16::from_be(fold(s as u32)))
}

/// Folds a partial sum to 16 bits, adding the carries back in (not complemented).
#[inline]
pub const fn fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The checksum to write over `bytes`: the complement of their folded sum.
///
/// Compute it with the checksum field zeroed.
#[inline]
pub fn data(bytes: &[u8]) -> u16 {
    !fold(sum(bytes))
}

/// The partial sum of the IPv4 pseudo-header used by UDP and TCP (RFC 768, RFC 793):
/// source, destination, zero, protocol, and the transport `length` (header + payload).
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: IpProtocol, length: u16) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    (s >> 16)
        + (s & 0xffff)
        + (d >> 16)
        + (d & 0xffff)
        + u32::from(u8::from(protocol))
        + u32::from(length)
}

/// RFC 1624 incremental update of `old_checksum` for one 16-bit word of the covered data
/// changing from `old` to `new` (equation 3: `HC' = ~(~HC + ~m + m')`).
#[inline]
pub const fn update16(old_checksum: u16, old: u16, new: u16) -> u16 {
    let s = (!old_checksum) as u32 + (!old) as u32 + new as u32;
    !fold(s)
}

/// RFC 1624 incremental update for a 32-bit value (an IPv4 address as `u32::from(addr)`)
/// changing from `old` to `new`; the value must start at an even offset of the covered data.
#[inline]
pub const fn update32(old_checksum: u16, old: u32, new: u32) -> u16 {
    let s = (!old_checksum) as u32
        + (!(old >> 16) & 0xffff)
        + (!old & 0xffff)
        + (new >> 16)
        + (new & 0xffff);
    !fold(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Word-by-word reference sum (RFC 1071 section 4.1), no tricks.
    fn reference_sum(data: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            s += u32::from(u16::from_be_bytes([data[i], data[i + 1]]));
            s = (s & 0xffff) + (s >> 16);
            i += 2;
        }
        if i < data.len() {
            s += u32::from(data[i]) << 8;
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&bytes)), 0xddf2);
        assert_eq!(data(&bytes), !0xddf2);
    }

    #[test]
    fn ipv4_header_example() {
        // A captured IPv4 header (checksum 0xb861 at offset 10).
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(fold(sum(&h)), 0xffff);
        h[10] = 0;
        h[11] = 0;
        assert_eq!(data(&h), 0xb861);
    }

    #[test]
    fn odd_length_and_empty() {
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0x12]), 0x1200);
        assert_eq!(sum(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(sum(&[0; 9]), 0);
        assert_eq!(data(&[0; 4]), 0xffff);
    }

    #[test]
    fn pseudo_header() {
        let s = pseudo_header_v4(
            Ipv4Addr::new(192, 168, 0, 1),
            Ipv4Addr::new(192, 168, 0, 199),
            IpProtocol::Udp,
            0x5f,
        );
        let bytes = [192, 168, 0, 1, 192, 168, 0, 199, 0, 17, 0, 0x5f];
        assert_eq!(fold(s), fold(sum(&bytes)));
    }

    #[test]
    fn rfc1624_section4_example() {
        // RFC 1624 section 4: the other words sum to 0xcd7a, m = 0x5555 -> m' = 0x3285.
        // HC = ~(0xcd7a + 0x5555) = 0xdd2f; recomputation gives ~(0xcd7a + 0x3285) = 0x0000,
        // which equation 3 reproduces (equation 2 would give 0xffff).
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
    }

    #[test]
    fn rfc1624_corner_cases() {
        // Section 3: a sum of 0xffff (-0) gives the checksum 0x0000; updating from it must
        // behave as if the sum were +0 in one's complement arithmetic.
        assert_eq!(data(&[0xff, 0xff]), 0x0000);
        let hc = update16(0x0000, 0xffff, 0x0001);
        assert_eq!(hc, data(&[0x00, 0x01]));
        // Checksum field of 0xffff (sum 0, all-zero data) updated to nonzero data.
        assert_eq!(update16(0xffff, 0x0000, 0x1234), data(&[0x12, 0x34]));
        // Identity update keeps the checksum.
        assert_eq!(update16(0xdd2f, 0x5555, 0x5555), 0xdd2f);
        // m = 0xffff and m' = 0x0000 are the same one's complement value.
        let words = [0x12, 0x34, 0xff, 0xff];
        let hc = data(&words);
        assert_eq!(
            update16(hc, 0xffff, 0x0000),
            data(&[0x12, 0x34, 0x00, 0x00])
        );
    }

    /// Rewrites the 16-bit word at `at` (an even offset) and checks the incremental result
    /// against a full recomputation.
    fn check_rewrite16(mut buf: Vec<u8>, at: usize, new: u16) -> Result<(), TestCaseError> {
        let hc = data(&buf);
        let old = u16::from_be_bytes([buf[at], buf[at + 1]]);
        buf[at..at + 2].copy_from_slice(&new.to_be_bytes());
        let inc = update16(hc, old, new);
        if buf.iter().any(|&b| b != 0) {
            prop_assert_eq!(inc, data(&buf));
        } else {
            // All-zero data, the documented exception: equation 3 gives +0 (0x0000) where
            // recomputation gives -0 (0xffff).
            prop_assert_eq!(inc, 0x0000);
            prop_assert_eq!(data(&buf), 0xffff);
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4096))]

        #[test]
        fn sum_matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            prop_assert_eq!(fold(sum(&data)), reference_sum(&data));
        }

        #[test]
        fn update16_matches_recompute(
            words in proptest::collection::vec(any::<u16>(), 1..40),
            idx in any::<proptest::sample::Index>(),
            new in any::<u16>(),
        ) {
            let buf: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let at = 2 * idx.index(words.len());
            check_rewrite16(buf, at, new)?;
        }

        #[test]
        fn update16_corner_words(
            words in proptest::collection::vec(
                prop_oneof![Just(0u16), Just(0xffffu16), any::<u16>()], 1..6),
            idx in any::<proptest::sample::Index>(),
            new in prop_oneof![Just(0u16), Just(0xffffu16), any::<u16>()],
        ) {
            let buf: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
            let at = 2 * idx.index(words.len());
            check_rewrite16(buf, at, new)?;
        }

        #[test]
        fn update32_matches_recompute_ipv4_header(
            mut header in proptest::array::uniform20(any::<u8>()),
            new_src in any::<u32>(),
            new_dst in any::<u32>(),
        ) {
            header[0] = 0x45; // never all zero, like a real header
            header[10] = 0;
            header[11] = 0;
            let hc = data(&header);
            let old_src = u32::from_be_bytes([header[12], header[13], header[14], header[15]]);
            let old_dst = u32::from_be_bytes([header[16], header[17], header[18], header[19]]);
            header[12..16].copy_from_slice(&new_src.to_be_bytes());
            header[16..20].copy_from_slice(&new_dst.to_be_bytes());
            let inc = update32(update32(hc, old_src, new_src), old_dst, new_dst);
            prop_assert_eq!(inc, data(&header));
            header[10..12].copy_from_slice(&inc.to_be_bytes());
            prop_assert_eq!(fold(sum(&header)), 0xffff);
        }
    }
}
