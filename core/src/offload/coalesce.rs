//! Coalescing consecutive TCP segments of one flow back into one super-frame, for a
//! receiver that takes super-frames (a vhost-user guest that negotiated `GUEST_TSO4/6`):
//! the inverse of [`super::gso`], what Linux's GRO does for a NIC without LRO.
//!
//! [`coalesce`] looks at a run of frames bound for the same port, in order, and says how
//! many of them, from the first, make one super-frame, and with which headers. The
//! receiver gets the first segment's headers once, then every segment's payload, with a
//! *partial* TCP checksum (the field holds the folded pseudo-header sum, `csum_start` and
//! `csum_offset` say where) and a `gso_size` that cuts it back into the same segments.
//!
//! A run only grows while every rule Linux's `tcp_gro_receive` keeps holds, so the
//! super-frame says nothing the segments did not:
//! - every segment is TCP over IPv4 (not a fragment) or IPv6 (no extension header),
//!   after the same Ethernet header, with the same IP header but for the IPv4 total
//!   length, identification and header checksum and the IPv6 payload length, and the
//!   same TCP header (ports, acknowledgement, data offset, window, urgent pointer,
//!   options) but for the sequence number, the checksum and PSH/FIN;
//! - each segment's IPv4 header checksum and TCP checksum verify: a frame whose checksum
//!   is wrong goes on alone, so the receiver still drops it (the partial checksum of a
//!   super-frame is trusted by the receiver, and never covers a corrupt segment);
//! - sequence numbers follow one another; every segment but the last carries exactly
//!   the first one's payload (the `gso_size`), the last at most that; a segment with
//!   PSH or FIN ends the run; SYN, RST, URG and CWR never coalesce;
//! - the super-frame fits the receiver's buffer and an IP packet (64 KiB).
//!
//! Invariants: never panics, never allocates; frames are only read.

use super::headers::{locate, L4Headers, PROTO_TCP};
use crate::wire::{checksum, TcpFlags};

/// Most segments one super-frame is made of.
pub const MAX_SEGMENTS: usize = 64;

/// Longest Ethernet + IP + TCP header a super-frame keeps: two VLAN tags, IPv4 and TCP
/// with 40 bytes of options each.
pub const MAX_HEADERS: usize = 14 + 8 + 60 + 60;

/// The flags in the TCP header's byte 13 (the low 8 of [`TcpFlags`]).
const fn flag(f: TcpFlags) -> u8 {
    f.bits() as u8
}
const FIN: u8 = flag(TcpFlags::FIN);
const SYN: u8 = flag(TcpFlags::SYN);
const RST: u8 = flag(TcpFlags::RST);
const PSH: u8 = flag(TcpFlags::PSH);
const URG: u8 = flag(TcpFlags::URG);
const CWR: u8 = flag(TcpFlags::CWR);

/// A run of segments that make one super-frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Coalesced {
    /// How many frames, from the first, are in it (at least 2).
    pub segments: usize,
    /// Payload bytes per segment (all but the last carry exactly this many).
    pub gso_size: u16,
    /// IPv4 (else IPv6).
    pub v4: bool,
    /// Offset of the TCP header: where the partial checksum starts.
    pub csum_start: u16,
    /// Offset of the checksum field inside the TCP header.
    pub csum_offset: u16,
    /// Bytes of the super-frame (headers and every payload).
    pub len: usize,
    headers: [u8; MAX_HEADERS],
    header_len: usize,
    /// Where each segment's payload ends (its IP packet's end; Ethernet padding after).
    ends: [u32; MAX_SEGMENTS],
}

impl Coalesced {
    /// The super-frame's Ethernet, IP and TCP headers: the first segment's, with the IP
    /// length and header checksum of the whole, the last segment's PSH/FIN, and the
    /// partial TCP checksum.
    pub fn headers(&self) -> &[u8] {
        &self.headers[..self.header_len]
    }

    /// The payload of its segment `i` (`frame` as [`coalesce`] saw frame `i`).
    pub fn payload<'a>(&self, i: usize, frame: &'a [u8]) -> &'a [u8] {
        let end = self.ends.get(i).map_or(0, |&e| e as usize);
        frame.get(self.header_len..end).unwrap_or(&[])
    }
}

/// How many of `frames` (at most [`MAX_SEGMENTS`] are looked at), from the first, make
/// one super-frame of at most `room` bytes, with its headers; `None` when fewer than two
/// do. `frame(i)` gives frame `i < n`.
pub fn coalesce<'a>(frame: impl Fn(usize) -> &'a [u8], n: usize, room: usize) -> Option<Coalesced> {
    let n = n.min(MAX_SEGMENTS);
    if n < 2 {
        return None;
    }
    let first = frame(0);
    let lead = segment_of(first)?;
    if lead.flags & (SYN | RST | URG | CWR | PSH | FIN) != 0 || lead.payload == 0 {
        return None;
    }
    let gso_size = lead.payload;
    let hdrs = lead.headers;
    let ip_header = lead.h.l4 - lead.h.l3;
    let mut payload = lead.payload;
    let mut seq = lead.seq.wrapping_add(lead.payload as u32);
    let mut last_flags = lead.flags;
    let mut ends = [0u32; MAX_SEGMENTS];
    ends[0] = lead.h.end as u32;
    let mut count = 1;
    while count < n {
        let f = frame(count);
        let Some(s) = segment_of(f) else { break };
        let fits = hdrs + payload + s.payload <= room
            && ip_header + (hdrs - lead.h.l4) + payload + s.payload <= usize::from(u16::MAX);
        // The cheap tests first: the checksums are read only for a segment that would
        // join (and for the first one, once a second would).
        if !fits
            || s.payload == 0
            || s.payload > gso_size
            || s.seq != seq
            || (s.h.l3, s.h.l4, s.h.v4) != (lead.h.l3, lead.h.l4, lead.h.v4)
            || s.headers != hdrs
            || (s.flags ^ lead.flags) & !(PSH | FIN) != 0
            || !same_headers(first, f, &lead.h, hdrs)
            || (count == 1 && !checksums_verify(first, &lead.h))
            || !checksums_verify(f, &s.h)
        {
            break;
        }
        payload += s.payload;
        seq = seq.wrapping_add(s.payload as u32);
        last_flags = s.flags;
        ends[count] = s.h.end as u32;
        count += 1;
        if s.payload < gso_size || s.flags & (PSH | FIN) != 0 {
            break;
        }
    }
    if count < 2 {
        return None;
    }
    let mut headers = [0u8; MAX_HEADERS];
    headers[..hdrs].copy_from_slice(&first[..hdrs]);
    let h = lead.h;
    let l4_len = hdrs - h.l4 + payload;
    if h.v4 {
        let total = (h.l4 - h.l3 + l4_len) as u16;
        headers[h.l3 + 2..h.l3 + 4].copy_from_slice(&total.to_be_bytes());
        headers[h.l3 + 10..h.l3 + 12].fill(0);
        let c = checksum::data(&headers[h.l3..h.l4]);
        headers[h.l3 + 10..h.l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        headers[h.l3 + 4..h.l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    }
    headers[h.l4 + 13] = lead.flags | (last_flags & (PSH | FIN));
    // Partial: the folded pseudo-header sum, not complemented (Linux's CHECKSUM_PARTIAL).
    let partial = checksum::fold(h.pseudo_sum(&headers, l4_len));
    headers[h.l4 + 16..h.l4 + 18].copy_from_slice(&partial.to_be_bytes());
    Some(Coalesced {
        segments: count,
        gso_size: gso_size as u16,
        v4: h.v4,
        csum_start: h.l4 as u16,
        csum_offset: 16,
        len: hdrs + payload,
        headers,
        header_len: hdrs,
        ends,
    })
}

/// One frame read as a segment of a run.
struct Segment {
    h: L4Headers,
    /// Ethernet + IP + TCP header bytes.
    headers: usize,
    payload: usize,
    seq: u32,
    flags: u8,
}

/// The frame as a TCP segment (checksums not read), or `None`.
fn segment_of(f: &[u8]) -> Option<Segment> {
    let h = locate(f)?;
    if h.proto != PROTO_TCP {
        return None;
    }
    let headers = h.l4 + h.l4_header_len(f);
    if headers > MAX_HEADERS {
        return None;
    }
    Some(Segment {
        h,
        headers,
        payload: h.end - headers,
        seq: u32::from_be_bytes([f[h.l4 + 4], f[h.l4 + 5], f[h.l4 + 6], f[h.l4 + 7]]),
        flags: f[h.l4 + 13],
    })
}

/// Whether the segment's IPv4 header checksum and TCP checksum verify.
fn checksums_verify(f: &[u8], h: &L4Headers) -> bool {
    let ip = !h.v4 || checksum::fold(checksum::sum(&f[h.l3..h.l4])) == 0xffff;
    ip && checksum::fold(h.pseudo_sum(f, h.end - h.l4) + checksum::sum(&f[h.l4..h.end])) == 0xffff
}

/// Whether `f` has the headers of `first` but for the fields a segment may change (both
/// already located at the same offsets, `hdrs` bytes of headers).
fn same_headers(first: &[u8], f: &[u8], h: &L4Headers, hdrs: usize) -> bool {
    let (l3, l4) = (h.l3, h.l4);
    let same = |a: usize, b: usize| first[a..b] == f[a..b];
    let ip = if h.v4 {
        // Version/IHL and TOS; flags, fragment offset, TTL, protocol; addresses, options.
        same(l3, l3 + 2) && same(l3 + 6, l3 + 10) && same(l3 + 12, l4)
    } else {
        // Version, traffic class, flow label; next header, hop limit, addresses.
        same(l3, l3 + 4) && same(l3 + 6, l4)
    };
    // Ports; acknowledgement and data offset; window and urgent pointer; options.
    same(0, l3)
        && ip
        && same(l4, l4 + 4)
        && same(l4 + 8, l4 + 13)
        && same(l4 + 14, l4 + 16)
        && same(l4 + 18, hdrs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::gso::{plan, write_segment};
    use proptest::prelude::*;

    /// A TCP super-frame over IPv4 or IPv6 (valid checksum), `payload` bytes of data,
    /// optionally with 12 bytes of timestamps.
    fn superframe(v6: bool, payload: &[u8], options: bool, flags: u8) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        let opts: &[u8] = if options {
            &[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]
        } else {
            &[]
        };
        let tcp_len = 20 + opts.len() + payload.len();
        let l3 = 14;
        if v6 {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            f.extend_from_slice(&[6, 64]);
            f.extend_from_slice(&[0xfd; 16]);
            f.extend_from_slice(&[0xfe; 16]);
        } else {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
            f.extend_from_slice(&[
                0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 198, 18, 0, 1,
            ]);
            let c = checksum::data(&f[l3..l3 + 20]);
            f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let l4 = f.len();
        f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0x10, 0, 0, 0, 0x20, 0]);
        f.push((((20 + opts.len()) / 4) << 4) as u8);
        f.extend_from_slice(&[flags, 0xfa, 0xf0, 0, 0, 0, 0]);
        f.extend_from_slice(opts);
        f.extend_from_slice(payload);
        let h = locate(&f).unwrap();
        let c = !checksum::fold(h.pseudo_sum(&f, tcp_len) + checksum::sum(&f[l4..]));
        f[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
        f
    }

    /// The segments the segmenter cuts `sf` into for an MTU of `mtu`.
    fn cut(sf: &[u8], mtu: usize) -> Vec<Vec<u8>> {
        let p = plan(sf, mtu, 4096, None).unwrap();
        (0..p.segments())
            .map(|i| {
                let mut out = vec![0u8; 4096];
                let n = write_segment(sf, &p, i, &mut out);
                out.truncate(n);
                out
            })
            .collect()
    }

    /// Rewrite a frame's TCP checksum (after a test changed it on purpose).
    fn fix_csum(f: &mut [u8]) {
        let h = locate(f).unwrap();
        f[h.l4 + 16..h.l4 + 18].fill(0);
        let c = !checksum::fold(h.pseudo_sum(f, h.end - h.l4) + checksum::sum(&f[h.l4..h.end]));
        f[h.l4 + 16..h.l4 + 18].copy_from_slice(&c.to_be_bytes());
    }

    /// Whether a frame's TCP checksum verifies.
    fn verifies(f: &[u8]) -> bool {
        locate(f).is_some_and(|h| {
            checksum::fold(h.pseudo_sum(f, h.end - h.l4) + checksum::sum(&f[h.l4..h.end])) == 0xffff
        })
    }

    /// The super-frame a receiver ends up with: the headers, the payloads, and the
    /// partial checksum completed as a NIC (or the guest's stack) would.
    fn glue(c: &Coalesced, segs: &[Vec<u8>]) -> Vec<u8> {
        let mut f = c.headers().to_vec();
        for (i, s) in segs[..c.segments].iter().enumerate() {
            f.extend_from_slice(c.payload(i, s));
        }
        let (start, at) = (
            c.csum_start as usize,
            (c.csum_start + c.csum_offset) as usize,
        );
        let done = !checksum::fold(checksum::sum(&f[start..]));
        f[at..at + 2].copy_from_slice(&done.to_be_bytes());
        f
    }

    #[test]
    fn segments_glue_back_into_the_super_frame() {
        for v6 in [false, true] {
            let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7) as u8).collect();
            let sf = superframe(v6, &data, true, 0x18);
            let segs = cut(&sf, 1500);
            assert!(segs.len() > 10);
            let c = coalesce(|i| &segs[i][..], segs.len(), 70_000).unwrap();
            assert_eq!(c.segments, segs.len());
            assert_eq!(
                usize::from(c.gso_size),
                1500 - if v6 { 40 } else { 20 } - 32
            );
            // The first segment keeps the super-frame's IP id, so the glued frame is it.
            let want = sf.clone();
            assert_eq!(glue(&c, &segs), want, "v6={v6}");
            assert_eq!(c.len, want.len());
        }
    }

    #[test]
    fn a_run_stops_where_the_rules_do() {
        let data = vec![0x5a; 5000];
        let segs = cut(&superframe(false, &data, false, 0x10), 1500);
        let room = 70_000;
        // A wrong TCP checksum: the segment goes alone.
        let mut bad = segs.clone();
        bad[2][40] ^= 1;
        assert_eq!(
            coalesce(|i| &bad[i][..], bad.len(), room).unwrap().segments,
            2
        );
        // A gap in the sequence.
        let gap = [segs[0].clone(), segs[2].clone()];
        assert!(coalesce(|i| &gap[i][..], 2, room).is_none());
        // Another flow (a port changed, checksum right): not merged.
        let mut other = segs.clone();
        other[1][35] ^= 1;
        fix_csum(&mut other[1]);
        assert!(coalesce(|i| &other[i][..], 2, room).is_none());
        // The receiver's buffer holds two segments' worth.
        let two = 54 + 2 * 1460;
        assert_eq!(
            coalesce(|i| &segs[i][..], segs.len(), two)
                .unwrap()
                .segments,
            2
        );
        assert!(coalesce(|i| &segs[i][..], segs.len(), two - 1).is_none());
        // A SYN, a lone frame, a UDP frame: nothing to merge.
        let syn = [
            superframe(false, &[1], false, 0x02),
            superframe(false, &[1], false, 0x02),
        ];
        assert!(coalesce(|i| &syn[i][..], 2, room).is_none());
        assert!(coalesce(|i| &segs[i][..], 1, room).is_none());
        // PSH on the second segment ends the run there, and the super-frame has it.
        let mut psh = segs.clone();
        psh[1][47] |= PSH;
        fix_csum(&mut psh[1]);
        let c = coalesce(|i| &psh[i][..], psh.len(), room).unwrap();
        assert_eq!(c.segments, 2);
        assert_eq!(c.headers()[47] & PSH, PSH);
        // A shorter segment is the last one.
        let short = [segs[0].clone(), segs[3].clone()];
        assert!(coalesce(|i| &short[i][..], 2, room).is_none()); // (and a gap)
    }

    proptest! {
        /// Whatever the frames, `coalesce` never panics, never merges a segment whose
        /// checksum is wrong, and gives a super-frame that verifies and carries the
        /// segments' payloads in order; the segmenter's own segments always merge, as
        /// many as the receiver's room holds.
        #[test]
        fn any_run_is_safe(
            len in 1usize..9000, v6 in any::<bool>(), options in any::<bool>(),
            mtu in 576usize..1500,
            flips in proptest::collection::vec((0usize..16, 0usize..1600, 1u8..=255), 0..4),
            room in 0usize..70_000,
        ) {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let sf = superframe(v6, &data, options, 0x10);
            let mut segs = cut(&sf, mtu.max(if v6 { 1280 } else { 576 }));
            if flips.is_empty() {
                let hdrs = c_headers(&segs[0]);
                let mut fit = 0;
                let mut used = hdrs;
                for s in segs.iter().take(MAX_SEGMENTS) {
                    used += s.len() - hdrs;
                    if used > room { break; }
                    fit += 1;
                }
                let c = coalesce(|i| &segs[i][..], segs.len(), room);
                prop_assert_eq!(c.map_or(0, |c| c.segments), if fit >= 2 { fit } else { 0 });
                if let Some(c) = c {
                    let body: Vec<u8> = (0..c.segments).flat_map(|i| c.payload(i, &segs[i]).to_vec()).collect();
                    prop_assert_eq!(&data[..body.len()], &body[..]);
                }
            }
            for (s, at, x) in flips {
                let k = s % segs.len();
                if let Some(b) = segs[k].get_mut(at) { *b ^= x; }
            }
            if let Some(c) = coalesce(|i| &segs[i][..], segs.len(), room) {
                prop_assert!(c.segments >= 2 && c.len <= room);
                prop_assert!(segs[..c.segments].iter().all(|s| verifies(s)));
                let glued = glue(&c, &segs);
                prop_assert!(verifies(&glued));
                prop_assert_eq!(glued.len(), c.len);
            }
        }
    }

    /// Header bytes of a segment (Ethernet to the end of TCP).
    fn c_headers(f: &[u8]) -> usize {
        let h = locate(f).unwrap();
        h.l4 + h.l4_header_len(f)
    }
}
