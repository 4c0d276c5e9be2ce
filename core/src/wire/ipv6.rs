//! IPv6 fixed header (RFC 8200): enough to recognise and forward.
//!
//! ```text
//!  0       4               12                              32 bits
//! +-------+---------------+-------------------------------+
//! |version| traffic class |           flow label          |
//! +-------+---------------+---------------+---------------+
//! |        payload length         |  next header  |  hop limit   |
//! +-------------------------------+---------------+--------------+
//! |              source address (16 bytes)                       |
//! |           destination address (16 bytes)                     |
//! ```
//!
//! Invariants of a checked [`Ipv6Packet`]: version is 6 and the buffer holds the 40-byte
//! header and `payload length` bytes after it (more is allowed: Ethernet padding is not part
//! of [`Ipv6Packet::payload`]). Extension headers are not walked: `next_header` is the first
//! one. Jumbograms (payload length 0 with a hop-by-hop jumbo option) are not supported.

use std::net::Ipv6Addr;

use super::{get_u16, put_u16, IpProtocol, Layer, Malformed, WireError};

/// Length of the IPv6 fixed header.
pub const IPV6_HEADER_LEN: usize = 40;

mod field {
    use core::ops::Range;

    /// Version (4 bits), traffic class (8 bits), flow label (20 bits).
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: usize = 4;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// A zero-copy view of an IPv6 packet.
#[derive(Debug, Clone)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Ipv6, .. }` if the buffer is shorter than 40 bytes plus the
    /// payload length; `Malformed(Ipv6, BadVersion)` if the version is not 6.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the version and that header and payload fit the buffer.
    ///
    /// # Errors
    ///
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < IPV6_HEADER_LEN {
            return Err(WireError::truncated(Layer::Ipv6, IPV6_HEADER_LEN, len));
        }
        if self.version() != 6 {
            return Err(WireError::Malformed(Layer::Ipv6, Malformed::BadVersion));
        }
        let required = IPV6_HEADER_LEN + usize::from(self.payload_len());
        if len < required {
            return Err(WireError::truncated(Layer::Ipv6, required, len));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always 40.
    pub const fn header_len(&self) -> usize {
        IPV6_HEADER_LEN
    }

    fn ver_tc_flow(&self) -> u32 {
        let b = &self.buffer.as_ref()[field::VER_TC_FLOW];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Version (6).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[0] >> 4
    }

    /// Traffic class (DSCP and ECN).
    #[inline]
    pub fn traffic_class(&self) -> u8 {
        (self.ver_tc_flow() >> 20) as u8
    }

    /// Flow label (20 bits).
    #[inline]
    pub fn flow_label(&self) -> u32 {
        self.ver_tc_flow() & 0x000f_ffff
    }

    /// Payload length (extension headers included).
    #[inline]
    pub fn payload_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Next header (the first extension header or the upper-layer protocol).
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::NXT_HDR])
    }

    /// Hop limit.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::SRC_ADDR]);
        Ipv6Addr::from(a)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv6Addr {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buffer.as_ref()[field::DST_ADDR]);
        Ipv6Addr::from(a)
    }

    fn payload_range(&self) -> core::ops::Range<usize> {
        let len = self.buffer.as_ref().len();
        let end = (IPV6_HEADER_LEN + usize::from(self.payload_len())).min(len);
        IPV6_HEADER_LEN.min(end)..end
    }

    /// The payload (payload-length bytes after the header).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = self.payload_range();
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    fn set_ver_tc_flow(&mut self, value: u32) {
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let raw = (self.ver_tc_flow() & 0x0fff_ffff) | (u32::from(value & 0x0f) << 28);
        self.set_ver_tc_flow(raw);
    }

    /// Sets the traffic class.
    #[inline]
    pub fn set_traffic_class(&mut self, value: u8) {
        let raw = (self.ver_tc_flow() & 0xf00f_ffff) | (u32::from(value) << 20);
        self.set_ver_tc_flow(raw);
    }

    /// Sets the flow label (low 20 bits of `value`).
    #[inline]
    pub fn set_flow_label(&mut self, value: u32) {
        let raw = (self.ver_tc_flow() & 0xfff0_0000) | (value & 0x000f_ffff);
        self.set_ver_tc_flow(raw);
    }

    /// Sets the payload length.
    #[inline]
    pub fn set_payload_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the next header.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::NXT_HDR] = value.into();
    }

    /// Sets the hop limit.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.payload_range();
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv6Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An IPv6 fixed header (traffic class and flow label emitted as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv6Repr {
    /// Source address.
    pub src_addr: Ipv6Addr,
    /// Destination address.
    pub dst_addr: Ipv6Addr,
    /// Next header.
    pub next_header: IpProtocol,
    /// Payload length.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
}

impl Ipv6Repr {
    /// Reads a checked view.
    ///
    /// # Errors
    ///
    /// Those of [`Ipv6Packet::check_len`] (for an unchecked view).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.payload_len()),
            hop_limit: packet.hop_limit(),
        })
    }

    /// Always 40.
    pub const fn header_len(&self) -> usize {
        IPV6_HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        IPV6_HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte header; the payload is not touched.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than 40 bytes or `payload_len` exceeds 65 535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv6Packet<T>) {
        let payload_len = u16::try_from(self.payload_len)
            .expect("Ipv6Repr::emit: payload_len exceeds the IPv6 payload length field");
        packet.set_ver_tc_flow(0x6000_0000);
        packet.set_payload_len(payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ICMPv6 echo request fe80::1 -> ff02::1, traffic class 0xb8, flow 0x12345, 8 bytes of
    /// payload, then 2 bytes of padding.
    static PACKET: [u8; 50] = [
        0x6b, 0x81, 0x23, 0x45, // v6, TC 0xb8, flow 0x12345
        0x00, 0x08, 0x3a, 0xff, // payload 8, ICMPv6, hop limit 255
        0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // fe80::1
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // ff02::1
        0x80, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, // payload
        0x00, 0x00, // padding
    ];

    #[test]
    fn parse() {
        let p = Ipv6Packet::new_checked(&PACKET[..]).unwrap();
        assert_eq!(p.version(), 6);
        assert_eq!(p.traffic_class(), 0xb8);
        assert_eq!(p.flow_label(), 0x12345);
        assert_eq!(p.payload_len(), 8);
        assert_eq!(p.next_header(), IpProtocol::Icmpv6);
        assert_eq!(p.hop_limit(), 255);
        assert_eq!(p.src_addr(), "fe80::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.dst_addr(), "ff02::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(p.payload(), &PACKET[40..48]);
        assert_eq!(
            Ipv6Repr::parse(&p).unwrap(),
            Ipv6Repr {
                src_addr: "fe80::1".parse().unwrap(),
                dst_addr: "ff02::1".parse().unwrap(),
                next_header: IpProtocol::Icmpv6,
                payload_len: 8,
                hop_limit: 255,
            }
        );
    }

    #[test]
    fn every_truncation() {
        for len in 0..48 {
            match Ipv6Packet::new_checked(&PACKET[..len]) {
                Err(WireError::Truncated {
                    layer: Layer::Ipv6,
                    required,
                    len: got,
                }) => {
                    assert_eq!(got, len);
                    assert_eq!(required, if len < 40 { 40 } else { 48 });
                }
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_version() {
        let mut b = PACKET;
        b[0] = 0x45;
        assert_eq!(
            Ipv6Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed(Layer::Ipv6, Malformed::BadVersion)
        );
    }

    #[test]
    fn setters() {
        let mut b = [0u8; 48];
        let mut p = Ipv6Packet::new_unchecked(&mut b[..]);
        p.set_version(6);
        p.set_traffic_class(0xb8);
        p.set_flow_label(0x12345);
        p.set_payload_len(8);
        p.set_next_header(IpProtocol::Icmpv6);
        p.set_hop_limit(255);
        p.set_src_addr("fe80::1".parse().unwrap());
        p.set_dst_addr("ff02::1".parse().unwrap());
        p.payload_mut().copy_from_slice(&PACKET[40..48]);
        assert_eq!(&b[..], &PACKET[..48]);
    }

    #[test]
    fn emit() {
        let repr = Ipv6Repr {
            src_addr: "fe80::1".parse().unwrap(),
            dst_addr: "ff02::1".parse().unwrap(),
            next_header: IpProtocol::Icmpv6,
            payload_len: 8,
            hop_limit: 255,
        };
        let mut buf = [0xa5u8; 48];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut buf[..]));
        let mut expected = [0xa5u8; 48];
        expected[..40].copy_from_slice(&PACKET[..40]);
        expected[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        assert_eq!(buf, expected);
        assert_eq!(repr.buffer_len(), 48);
    }
}
