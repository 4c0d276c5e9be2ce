//! The virtio-net device's promises: the feature bits this device offers, and the
//! header (`struct virtio_net_hdr`) in front of every frame on its rings.
//!
//! What is offered, and why each promise can be kept on every path:
//! - `CSUM` (the guest may send partial checksums): the port completes them at receive,
//!   from the header's `csum_start`/`csum_offset`, before any mode sees the frame, so
//!   every egress (AF_XDP, another guest, NAT translation) gets a finished checksum;
//! - `HOST_TSO4`/`HOST_TSO6` (the guest may send TCP super-frames): the port cuts them
//!   into segments of the header's `gso_size` at receive (the same segmenter the AF_XDP
//!   ports use), so no egress ever sees a frame above its MTU;
//! - `GUEST_CSUM`, `GUEST_TSO4`/`GUEST_TSO6` (the guest takes partial checksums and
//!   super-frames): consecutive TCP segments of one flow bound for the guest, whose
//!   checksums verify, are glued back into one super-frame with a partial checksum and
//!   their `gso_size` ([`crate::offload::coalesce`]), when the guest's receive buffer
//!   holds it; every other frame goes as it is, finished, in one buffer. A guest's TSO
//!   super-frame thus reaches another guest as super-frames, whatever ran in between
//!   (NAT rewrites finished checksums; the segments are checked before they are glued);
//! - `MRG_RXBUF` is not offered: a frame (or super-frame) goes in one receive buffer;
//!   a Linux guest with `GUEST_TSO` then posts 64 KiB buffers ("big packets");
//! - `MQ` (up to [`super::control::MAX_PAIRS`] queue pairs): every pair's transmit ring
//!   is read; frames for the guest all go on pair 0's receive ring, so a flow is never
//!   reordered across rings (one worker serves the port either way).
//!
//! Invariant: [`NetHeader::parse`] and [`complete_at`] never panic on any input; a
//! header the device cannot honour is reported, never guessed at.

use vhost::vhost_user::message::VhostUserProtocolFeatures;

/// The driver may send partial checksums.
pub const F_CSUM: u64 = 1 << 0;
/// The device may send partial checksums (and the driver takes them).
pub const F_GUEST_CSUM: u64 = 1 << 1;
/// The device may send TCPv4 super-frames.
pub const F_GUEST_TSO4: u64 = 1 << 7;
/// The device may send TCPv6 super-frames.
pub const F_GUEST_TSO6: u64 = 1 << 8;
/// The driver may send TCPv4 super-frames.
pub const F_HOST_TSO4: u64 = 1 << 11;
/// The driver may send TCPv6 super-frames.
pub const F_HOST_TSO6: u64 = 1 << 12;
/// The `num_buffers` field (and merged receive buffers).
pub const F_MRG_RXBUF: u64 = 1 << 15;
/// Several queue pairs (the guest's control queue, which picks how many it uses, is
/// QEMU's; QEMU masks the bit unless the device offers it).
pub const F_MQ: u64 = 1 << 22;
/// Indirect descriptor tables.
pub const F_INDIRECT_DESC: u64 = 1 << 28;
/// `used_event` / `avail_event` notification suppression.
pub const F_EVENT_IDX: u64 = 1 << 29;
/// vhost-user protocol features (rings start disabled until `SET_VRING_ENABLE`).
pub const F_PROTOCOL_FEATURES: u64 = 1 << 30;
/// Virtio 1.0 (little-endian rings, 12-byte header).
pub const F_VERSION_1: u64 = 1 << 32;

/// Every feature bit the device offers (QEMU 7.2 starts a vhost-user net device only
/// when `PROTOCOL_FEATURES` is offered).
pub const FEATURES_OFFERED: u64 = F_CSUM
    | F_GUEST_CSUM
    | F_GUEST_TSO4
    | F_GUEST_TSO6
    | F_HOST_TSO4
    | F_HOST_TSO6
    | F_MQ
    | F_INDIRECT_DESC
    | F_EVENT_IDX
    | F_PROTOCOL_FEATURES
    | F_VERSION_1;

/// The vhost-user protocol features the device offers: acknowledged replies, and
/// several queue pairs (`MQ`: QEMU asks `GET_QUEUE_NUM` and sets up each pair; the
/// guest's `VIRTIO_NET_F_MQ` and control queue are QEMU's own, it enables the pairs the
/// guest uses with `SET_VRING_ENABLE`).
pub const PROTOCOL_FEATURES_OFFERED: VhostUserProtocolFeatures =
    VhostUserProtocolFeatures::REPLY_ACK.union(VhostUserProtocolFeatures::MQ);

/// `flags`: the checksum from `csum_start` on is left to the device.
pub const NEEDS_CSUM: u8 = 1;
/// `gso_type`: not a super-frame.
pub const GSO_NONE: u8 = 0;
/// `gso_type`: TCP over IPv4.
pub const GSO_TCPV4: u8 = 1;
/// `gso_type`: UDP fragmentation offload (never negotiated).
pub const GSO_UDP: u8 = 3;
/// `gso_type`: TCP over IPv6.
pub const GSO_TCPV6: u8 = 4;
/// `gso_type` flag: the sender uses ECN.
pub const GSO_ECN: u8 = 0x80;

/// Bytes of the header for the negotiated features: 12 with `VERSION_1` or
/// `MRG_RXBUF` (`num_buffers` included), 10 for a legacy driver.
pub fn header_len(features: u64) -> usize {
    if features & (F_VERSION_1 | F_MRG_RXBUF) != 0 {
        12
    } else {
        10
    }
}

/// The header of a frame the guest sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetHeader {
    /// `NEEDS_CSUM` and others.
    pub flags: u8,
    /// `GSO_*`, with the ECN bit.
    pub gso_type: u8,
    /// Segment payload size of a super-frame.
    pub gso_size: u16,
    /// Where the checksummed part starts (from the Ethernet header).
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl NetHeader {
    /// The header at the front of `b` (at least 10 bytes; little-endian as virtio 1.0
    /// and x86 legacy drivers write it). `None` when `b` is shorter.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < 10 {
            return None;
        }
        let le = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        Some(Self {
            flags: b[0],
            gso_type: b[1],
            gso_size: le(4),
            csum_start: le(6),
            csum_offset: le(8),
        })
    }

    /// Whether the checksum is left to the device.
    pub fn needs_csum(&self) -> bool {
        self.flags & NEEDS_CSUM != 0
    }

    /// The segmentation asked for, without the ECN bit.
    pub fn gso(&self) -> u8 {
        self.gso_type & !GSO_ECN
    }
}

/// The header the device writes in front of a frame for the guest: nothing to finish
/// (no flags, no GSO), one buffer. Bytes beyond [`header_len`] are not written.
pub const RX_HEADER: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];

/// The header in front of a super-frame for the guest: partial checksum at
/// `csum_start`/`csum_offset`, TCP over IPv4 or IPv6 cut at `gso_size`, one buffer.
pub fn gso_header(c: &crate::offload::coalesce::Coalesced) -> [u8; 12] {
    let mut h = [0u8; 12];
    h[0] = NEEDS_CSUM;
    h[1] = if c.v4 { GSO_TCPV4 } else { GSO_TCPV6 };
    h[2..4].copy_from_slice(&(c.headers().len() as u16).to_le_bytes());
    h[4..6].copy_from_slice(&c.gso_size.to_le_bytes());
    h[6..8].copy_from_slice(&c.csum_start.to_le_bytes());
    h[8..10].copy_from_slice(&c.csum_offset.to_le_bytes());
    h[10] = 1;
    h
}

/// Complete a partial checksum as a NIC does: the 16-bit ones' complement sum of
/// `frame[start..]` (whose checksum field holds the pseudo-header sum), complemented,
/// written at `start + offset`. `false` (frame untouched) when the offsets do not fit
/// the frame: the field must lie inside it, after the Ethernet header.
pub fn complete_at(frame: &mut [u8], start: u16, offset: u16) -> bool {
    let (start, at) = (start as usize, start as usize + offset as usize);
    if start < 14 || at + 2 > frame.len() {
        return false;
    }
    let mut done = !crate::wire::checksum::fold(crate::wire::checksum::sum(&frame[start..]));
    // RFC 768: a UDP checksum (the field 6 bytes into the header) computed as zero is
    // sent as all ones; TCP keeps the zero, as Linux's own completion does.
    if done == 0 && offset == 6 {
        done = 0xffff;
    }
    frame[at..at + 2].copy_from_slice(&done.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offload::csum::tests::{make_partial, v4_frame};
    use proptest::prelude::*;

    #[test]
    fn header_layout() {
        let h = NetHeader::parse(&[1, 0x81, 0x36, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]).unwrap();
        assert!(h.needs_csum());
        assert_eq!(h.gso(), GSO_TCPV4);
        assert_eq!((h.gso_size, h.csum_start, h.csum_offset), (1448, 34, 16));
        assert!(NetHeader::parse(&[0; 9]).is_none());
        assert_eq!(header_len(F_VERSION_1), 12);
        assert_eq!(header_len(F_CSUM), 10);
    }

    proptest! {
        /// A frame as a guest with CSUM sends it (the field holds the pseudo-header
        /// sum), completed at the header's offsets, is the frame with its real
        /// checksum; any offsets at all never panic.
        #[test]
        fn completion_at_the_offsets_gives_the_real_checksum(
            payload in proptest::collection::vec(any::<u8>(), 0..600),
            udp in any::<bool>(),
            start in any::<u16>(), offset in any::<u16>(),
        ) {
            let proto = if udp { 17 } else { 6 };
            let (good, at) = v4_frame(proto, &payload, false);
            let mut f = good.clone();
            make_partial(&mut f, at);
            let l4 = 34;
            prop_assert!(complete_at(&mut f, l4 as u16, (at - l4) as u16));
            prop_assert_eq!(&f, &good);
            let _ = complete_at(&mut f, start, offset);
        }
    }
}
