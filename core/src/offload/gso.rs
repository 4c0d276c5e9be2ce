//! TCP segmentation in software (what a NIC does for TSO), one segment at a time.
//!
//! A super-frame is one Ethernet frame carrying a TCP segment longer than the path allows:
//! its headers once, then up to 64 KiB of payload. [`plan`] checks it and decides the
//! segment size; [`write_segment`] writes segment `i` into a caller's buffer, so the
//! caller can take one frame from its pool per segment and never allocates.
//!
//! Each segment, as Linux's `tcp_gso_segment`/`inet_gso_segment` would write it:
//! - the Ethernet and IP headers copied; IPv4 total length, identification (the
//!   super-frame's, plus the segment's index, wrapping) and header checksum rewritten;
//!   IPv6 payload length rewritten;
//! - the TCP header copied with its options (timestamps repeat on every segment);
//!   sequence number advanced by the payload before it; FIN and PSH only on the last
//!   segment, CWR only on the first; the checksum computed in full (the super-frame's
//!   own field is usually partial and is never trusted).
//!
//! Payload per segment: `min(mss, mtu - ip header - 20) - tcp options`, the size a sender
//! whose MSS is `mss` would have used (the MSS counts data only, RFC 9293 3.7.1), further
//! bounded so that a segment fits one frame of the caller's pool.

use super::headers::{locate, PROTO_TCP};
use super::Unsegmented;
use crate::wire::checksum;

/// How a super-frame is cut: computed by [`plan`], used by [`write_segment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    l3: usize,
    l4: usize,
    v4: bool,
    /// Ethernet + IP + TCP header bytes, copied to every segment.
    headers: usize,
    /// Payload bytes of the super-frame.
    payload: usize,
    /// Payload bytes per segment (the last may carry fewer).
    per_segment: usize,
}

impl Plan {
    /// How many segments the super-frame becomes (at least 1).
    pub fn segments(&self) -> usize {
        self.payload.div_ceil(self.per_segment).max(1)
    }

    /// Payload bytes per segment.
    pub fn per_segment(&self) -> usize {
        self.per_segment
    }

    /// Bytes of segment `i` as written by [`write_segment`].
    pub fn segment_len(&self, i: usize) -> usize {
        let start = i * self.per_segment;
        self.headers + self.per_segment.min(self.payload.saturating_sub(start))
    }
}

/// The TCP flow of a frame, as (source address, source port, destination address,
/// destination port), addresses as 16 bytes (IPv4 mapped into the low 4).
pub type Flow = ([u8; 16], u16, [u8; 16], u16);

/// Reads the TCP flow of a frame, if it is TCP over IPv4 or IPv6.
pub fn tcp_flow(frame: &[u8]) -> Option<Flow> {
    let h = locate(frame)?;
    if h.proto != PROTO_TCP {
        return None;
    }
    Some(flow_at(frame, h.l3, h.l4, h.v4))
}

fn flow_at(frame: &[u8], l3: usize, l4: usize, v4: bool) -> Flow {
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    if v4 {
        src[12..].copy_from_slice(&frame[l3 + 12..l3 + 16]);
        dst[12..].copy_from_slice(&frame[l3 + 16..l3 + 20]);
    } else {
        src.copy_from_slice(&frame[l3 + 8..l3 + 24]);
        dst.copy_from_slice(&frame[l3 + 24..l3 + 40]);
    }
    let sport = u16::from_be_bytes([frame[l4], frame[l4 + 1]]);
    let dport = u16::from_be_bytes([frame[l4 + 2], frame[l4 + 3]]);
    (src, sport, dst, dport)
}

/// Checks a super-frame and decides its segment size.
///
/// `mtu`: the largest IP packet a segment may be; `capacity`: the largest frame (with its
/// Ethernet header) the caller can write a segment into; `mss`: the MSS the receiver
/// announced, when known.
///
/// # Errors
/// [`Unsegmented::NotTcp`] for anything but TCP over IPv4/IPv6 (UDP super-frames
/// included), [`Unsegmented::Malformed`] when its headers do not parse or leave no room
/// for payload in a segment.
pub fn plan(
    frame: &[u8],
    mtu: usize,
    capacity: usize,
    mss: Option<u16>,
) -> Result<Plan, Unsegmented> {
    let Some(h) = locate(frame) else {
        return Err(if is_ip(frame) {
            Unsegmented::Malformed
        } else {
            Unsegmented::NotTcp
        });
    };
    if h.proto != PROTO_TCP {
        return Err(Unsegmented::NotTcp);
    }
    let ip_header = h.l4 - h.l3;
    let tcp_header = h.l4_header_len(frame);
    let headers = h.l4 + tcp_header;
    let options = tcp_header - 20;
    let by_mtu = mtu.saturating_sub(ip_header + 20);
    let by_mss = mss.map_or(usize::MAX, usize::from);
    let by_frame = capacity.saturating_sub(headers) + options;
    let per_segment = by_mtu.min(by_mss).min(by_frame).saturating_sub(options);
    if per_segment == 0 {
        return Err(Unsegmented::Malformed);
    }
    Ok(Plan {
        l3: h.l3,
        l4: h.l4,
        v4: h.v4,
        headers,
        payload: h.end - headers,
        per_segment,
    })
}

/// Whether the frame is IPv4 or IPv6 (behind up to two VLAN tags).
fn is_ip(frame: &[u8]) -> bool {
    let mut at = 12;
    for _ in 0..3 {
        match frame.get(at..at + 2) {
            Some([0x08, 0x00]) | Some([0x86, 0xdd]) => return true,
            Some([0x81, 0x00]) | Some([0x88, 0xa8]) => at += 4,
            _ => return false,
        }
    }
    false
}

/// Writes segment `i` (`i < plan.segments()`) of the super-frame `frame` into `out`;
/// returns its length ([`Plan::segment_len`]).
///
/// # Panics
/// If `frame` is not the frame `plan` was made from, `i` is out of range, or `out` is
/// shorter than the segment (callers size it from the plan's `capacity`).
pub fn write_segment(frame: &[u8], plan: &Plan, i: usize, out: &mut [u8]) -> usize {
    assert!(i < plan.segments(), "segment index out of range");
    let start = i * plan.per_segment;
    let chunk = plan.per_segment.min(plan.payload - start);
    let len = plan.headers + chunk;
    let out = &mut out[..len];
    out[..plan.headers].copy_from_slice(&frame[..plan.headers]);
    out[plan.headers..].copy_from_slice(&frame[plan.headers + start..plan.headers + start + chunk]);

    let (l3, l4) = (plan.l3, plan.l4);
    let l4_len = len - l4;
    if plan.v4 {
        let total = (len - l3) as u16;
        out[l3 + 2..l3 + 4].copy_from_slice(&total.to_be_bytes());
        let id = u16::from_be_bytes([frame[l3 + 4], frame[l3 + 5]]).wrapping_add(i as u16);
        out[l3 + 4..l3 + 6].copy_from_slice(&id.to_be_bytes());
        out[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
        let c = checksum::data(&out[l3..l4]);
        out[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    } else {
        out[l3 + 4..l3 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
    }

    let seq = u32::from_be_bytes([frame[l4 + 4], frame[l4 + 5], frame[l4 + 6], frame[l4 + 7]])
        .wrapping_add(start as u32);
    out[l4 + 4..l4 + 8].copy_from_slice(&seq.to_be_bytes());
    const FIN: u8 = 0x01;
    const PSH: u8 = 0x08;
    const CWR: u8 = 0x80;
    let mut flags = out[l4 + 13];
    if i + 1 < plan.segments() {
        flags &= !(FIN | PSH);
    }
    if i > 0 {
        flags &= !CWR;
    }
    out[l4 + 13] = flags;
    out[l4 + 16..l4 + 18].copy_from_slice(&[0, 0]);
    let h = super::headers::L4Headers {
        l3,
        v4: plan.v4,
        l4,
        end: len,
        proto: PROTO_TCP,
    };
    let pseudo = h.pseudo_sum(out, l4_len);
    let c = !checksum::fold(pseudo + checksum::sum(&out[l4..]));
    out[l4 + 16..l4 + 18].copy_from_slice(&c.to_be_bytes());
    len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::test_frames::super_frame;
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use proptest::prelude::*;

    fn check_segments(f: &[u8], mtu: usize, mss: Option<u16>, flags: u8) -> Vec<Vec<u8>> {
        let p = plan(f, mtu, 1792, mss).unwrap();
        let mut out = vec![];
        for i in 0..p.segments() {
            let mut buf = vec![0xa5u8; 1792];
            let n = write_segment(f, &p, i, &mut buf);
            assert_eq!(n, p.segment_len(i));
            buf.truncate(n);
            out.push(buf);
        }
        // Every segment parses, with valid checksums, in order, covering the payload.
        let payload_in = &f[14 + 20 + 32..];
        let mut got = vec![];
        let seq0 = u32::from_be_bytes([f[38], f[39], f[40], f[41]]);
        let id0 = u16::from_be_bytes([f[18], f[19]]);
        for (i, s) in out.iter().enumerate() {
            assert!(s.len() - 14 <= mtu, "segment {i} larger than the MTU");
            let sp = SlicedPacket::from_ethernet(s).unwrap();
            let Some(NetSlice::Ipv4(ip)) = sp.net else {
                panic!("not ipv4")
            };
            let iph = ip.header().to_header();
            assert_eq!(iph.header_checksum, iph.calc_header_checksum());
            assert_eq!(iph.identification, id0.wrapping_add(i as u16));
            let Some(TransportSlice::Tcp(tcp)) = sp.transport else {
                panic!("not tcp")
            };
            let th = tcp.to_header();
            assert_eq!(
                th.checksum,
                th.calc_checksum_ipv4(&iph, tcp.payload()).unwrap(),
                "segment {i} checksum"
            );
            assert_eq!(th.sequence_number, seq0.wrapping_add(got.len() as u32));
            assert_eq!(th.options.as_slice(), &f[54..66]);
            let last = i + 1 == out.len();
            assert_eq!(th.fin, last && flags & 1 != 0);
            assert_eq!(th.psh, last && flags & 8 != 0);
            assert_eq!(th.cwr, i == 0 && flags & 0x80 != 0);
            assert!(th.ack);
            if let Some(m) = mss {
                assert!(tcp.payload().len() + 12 <= m as usize);
            }
            got.extend_from_slice(tcp.payload());
        }
        assert_eq!(got, payload_in);
        out
    }

    #[test]
    fn a_64k_super_frame_becomes_mtu_sized_segments() {
        let payload: Vec<u8> = (0..65_000u32).map(|i| (i * 7) as u8).collect();
        let f = super_frame(&payload, 0x18 | 0x80 | 0x01, 0xfffe, 0xffff_f000);
        let segs = check_segments(&f, 1500, None, 0x18 | 0x80 | 0x01);
        // 1500 - 20 - 20 - 12 options = 1448 bytes a segment, as Linux's gso_size.
        assert_eq!(segs.len(), 65_000usize.div_ceil(1448));
        assert_eq!(segs[0].len(), 14 + 1500);
    }

    #[test]
    fn the_peer_s_mss_bounds_the_segments() {
        let payload = vec![0x42u8; 5000];
        let f = super_frame(&payload, 0x10, 1, 1);
        let segs = check_segments(&f, 1500, Some(536), 0x10);
        assert_eq!(segs.len(), 5000usize.div_ceil(524));
    }

    #[test]
    fn udp_and_broken_super_frames_are_refused_with_a_reason() {
        let mut f = super_frame(&[0u8; 3000], 0x10, 1, 1);
        f[23] = 17;
        assert_eq!(plan(&f, 1500, 1792, None), Err(Unsegmented::NotTcp));
        let mut f = super_frame(&[0u8; 3000], 0x10, 1, 1);
        f[16] = 0xff; // total length beyond the frame
        assert_eq!(plan(&f, 1500, 1792, None), Err(Unsegmented::Malformed));
        let mut arp = vec![0u8; 3000];
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(plan(&arp, 1500, 1792, None), Err(Unsegmented::NotTcp));
        let f = super_frame(&[0u8; 3000], 0x10, 1, 1);
        assert_eq!(plan(&f, 50, 1792, None), Err(Unsegmented::Malformed));
    }

    #[test]
    fn an_ipv6_super_frame_becomes_valid_segments() {
        let payload: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x86, 0xdd];
        let l4_len = 20 + payload.len();
        f.extend_from_slice(&[0x60, 0, 0, 0, (l4_len >> 8) as u8, l4_len as u8, 6, 64]);
        f.extend_from_slice(&[0xfd; 16]);
        f.extend_from_slice(&[0xfe; 16]);
        f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 5, 0, 0, 0, 7, 0x50, 0x19]);
        f.extend_from_slice(&[0x01, 0xf6, 0, 0, 0, 0]);
        f.extend_from_slice(&payload);
        let p = plan(&f, 1500, 1792, None).unwrap();
        // 1500 - 40 - 20 = 1440 bytes a segment.
        assert_eq!(p.segments(), 3);
        let mut got = vec![];
        for i in 0..p.segments() {
            let mut buf = vec![0u8; 1792];
            let n = write_segment(&f, &p, i, &mut buf);
            let sp = SlicedPacket::from_ethernet(&buf[..n]).unwrap();
            let Some(NetSlice::Ipv6(ip)) = sp.net else {
                panic!("not ipv6")
            };
            let Some(TransportSlice::Tcp(tcp)) = sp.transport else {
                panic!("not tcp")
            };
            let th = tcp.to_header();
            let iph = ip.header().to_header();
            assert_eq!(usize::from(iph.payload_length), 20 + tcp.payload().len());
            assert_eq!(
                th.checksum,
                th.calc_checksum_ipv6(&iph, tcp.payload()).unwrap()
            );
            assert_eq!(th.sequence_number, 5 + got.len() as u32);
            assert_eq!(th.fin, i == 2, "FIN only on the last segment");
            got.extend_from_slice(tcp.payload());
        }
        assert_eq!(got, payload);
    }

    proptest! {
        #[test]
        fn any_super_frame_segments_into_a_valid_sequence(
            len in 1usize..20_000,
            mtu in 600usize..1800,
            mss in proptest::option::of(200u16..1460),
            flags in any::<u8>(),
            id in any::<u16>(),
            seq in any::<u32>(),
        ) {
            let payload: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let flags = flags | 0x10;
            let f = super_frame(&payload, flags, id, seq);
            check_segments(&f, mtu, mss, flags);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(p) = plan(&bytes, 1500, 1792, Some(100)) {
                let mut buf = vec![0u8; 1792];
                for i in 0..p.segments() {
                    write_segment(&bytes, &p, i, &mut buf);
                }
            }
        }
    }
}
