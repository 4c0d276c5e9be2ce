//! Locating the IP and TCP/UDP headers of an Ethernet frame, for the offload steps.
//!
//! Only what normalisation needs, read at fixed offsets: up to two VLAN tags, IPv4 (not a
//! fragment) or IPv6 (the transport header directly after the fixed header), TCP or UDP
//! long enough to hold its checksum field. Every offset in a returned [`L4Headers`] lies
//! inside the frame; `l4_end` stops at the IP length, so Ethernet padding is never
//! covered by a checksum.

use crate::wire::checksum;

/// Ethernet header length.
const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// IP protocol numbers.
pub(crate) const PROTO_TCP: u8 = 6;
pub(crate) const PROTO_UDP: u8 = 17;

/// Where the headers of a TCP or UDP frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct L4Headers {
    /// Offset of the IP header.
    pub l3: usize,
    /// IPv4 (else IPv6).
    pub v4: bool,
    /// Offset of the TCP/UDP header.
    pub l4: usize,
    /// End of the IP packet (the frame may be longer: Ethernet padding).
    pub end: usize,
    /// [`PROTO_TCP`] or [`PROTO_UDP`].
    pub proto: u8,
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl L4Headers {
    /// Offset of the checksum field inside the transport header.
    #[inline]
    pub fn csum_field(&self) -> usize {
        self.l4 + if self.proto == PROTO_TCP { 16 } else { 6 }
    }

    /// The unfolded pseudo-header sum for a transport segment of `l4_len` bytes.
    #[inline]
    pub fn pseudo_sum(&self, frame: &[u8], l4_len: usize) -> u32 {
        let l3 = self.l3;
        let (addrs, n) = if self.v4 {
            (&frame[l3 + 12..l3 + 20], 8)
        } else {
            (&frame[l3 + 8..l3 + 40], 32)
        };
        let mut s: u32 = 0;
        for w in addrs[..n].chunks_exact(2) {
            s += u32::from(u16::from_be_bytes([w[0], w[1]]));
        }
        s + u32::from(self.proto) + (l4_len as u32 >> 16) + (l4_len as u32 & 0xffff)
    }

    /// The transport header's length (TCP data offset; 8 for UDP).
    #[inline]
    pub fn l4_header_len(&self, frame: &[u8]) -> usize {
        if self.proto == PROTO_TCP {
            usize::from(frame[self.l4 + 12] >> 4) * 4
        } else {
            8
        }
    }
}

/// Offsets of a TCP or UDP frame's headers; `None` for anything else (including IPv4
/// fragments, IPv6 extension headers and lengths that do not fit the frame).
#[inline]
pub(crate) fn locate(frame: &[u8]) -> Option<L4Headers> {
    if frame.len() < ETH_LEN {
        return None;
    }
    let mut ethertype = be16(frame, 12);
    let mut l3 = ETH_LEN;
    for _ in 0..2 {
        if ethertype != ETHERTYPE_VLAN && ethertype != ETHERTYPE_QINQ {
            break;
        }
        if frame.len() < l3 + 4 {
            return None;
        }
        ethertype = be16(frame, l3 + 2);
        l3 += 4;
    }
    let (v4, l4, end, proto) = match ethertype {
        ETHERTYPE_IPV4 => {
            if frame.len() < l3 + 20 || frame[l3] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(frame[l3] & 0x0f) * 4;
            let total = usize::from(be16(frame, l3 + 2));
            // More fragments set or a non-zero offset: not a whole transport segment.
            if ihl < 20 || total < ihl || be16(frame, l3 + 6) & 0x3fff != 0 {
                return None;
            }
            (true, l3 + ihl, l3 + total, frame[l3 + 9])
        }
        ETHERTYPE_IPV6 => {
            if frame.len() < l3 + 40 || frame[l3] >> 4 != 6 {
                return None;
            }
            let payload = usize::from(be16(frame, l3 + 4));
            (false, l3 + 40, l3 + 40 + payload, frame[l3 + 6])
        }
        _ => return None,
    };
    if end > frame.len() {
        return None;
    }
    let h = L4Headers {
        l3,
        v4,
        l4,
        end,
        proto,
    };
    let min = match proto {
        PROTO_TCP => 20,
        PROTO_UDP => 8,
        _ => return None,
    };
    if end < l4 + min {
        return None;
    }
    if proto == PROTO_TCP {
        let doff = h.l4_header_len(frame);
        if doff < 20 || l4 + doff > end {
            return None;
        }
    }
    Some(h)
}

/// The folded pseudo-header sum, which is what a partial checksum field holds.
#[inline]
pub(crate) fn partial_value(frame: &[u8], h: &L4Headers) -> u16 {
    checksum::fold(h.pseudo_sum(frame, h.end - h.l4))
}
