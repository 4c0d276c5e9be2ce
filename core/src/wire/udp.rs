//! UDP (RFC 768) over IPv4.
//!
//! ```text
//!  0               2               4               6               8
//! +---------------+---------------+---------------+---------------+------
//! |  source port  |   dest port   |    length     |   checksum    | payload
//! +---------------+---------------+---------------+---------------+------
//! ```
//!
//! Invariants of a checked [`UdpPacket`]: `8 <= length <= buffer length`; bytes after
//! `length` are not part of [`UdpPacket::payload`]. The checksum covers the IPv4
//! pseudo-header, the header and the payload; a checksum field of 0 means "none" and always
//! verifies, and a computed 0 is written as `0xffff`.

use std::net::Ipv4Addr;

use super::checksum;
use super::{get_u16, put_u16, IpProtocol, Layer, Malformed, WireError};

/// Length of the UDP header.
pub const UDP_HEADER_LEN: usize = 8;

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
}

/// A zero-copy view of a UDP datagram.
#[derive(Debug, Clone)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Udp, .. }` if the buffer is shorter than 8 bytes or than the
    /// length field; `Malformed(Udp, BadLength)` if the length field is below 8.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the header and the length field against the buffer.
    ///
    /// # Errors
    ///
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < UDP_HEADER_LEN {
            return Err(WireError::truncated(Layer::Udp, UDP_HEADER_LEN, len));
        }
        let length = usize::from(self.len());
        if length < UDP_HEADER_LEN {
            return Err(WireError::Malformed(Layer::Udp, Malformed::BadLength));
        }
        if len < length {
            return Err(WireError::truncated(Layer::Udp, length, len));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always 8.
    pub const fn header_len(&self) -> usize {
        UDP_HEADER_LEN
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field (header + payload).
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Checksum field (0 = none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// The datagram: header and payload up to the length field (clamped to the buffer).
    #[inline]
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..usize::from(self.len()).min(data.len())]
    }

    /// The payload, up to the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(UDP_HEADER_LEN..).unwrap_or(&[])
    }

    /// Does the checksum verify for this source and destination? A zero checksum field
    /// ("none") always does.
    #[inline]
    pub fn verify_checksum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = self.datagram();
        let sum = checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Udp, self.len())
            + checksum::sum(datagram);
        checksum::fold(sum) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Computes the checksum (pseudo-header, header, payload up to the length field) and
    /// writes it; a computed 0 is written as `0xffff`.
    #[inline]
    pub fn fill_checksum(&mut self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        self.set_checksum(0);
        let sum = checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Udp, self.len())
            + checksum::sum(self.datagram());
        let value = match !checksum::fold(sum) {
            0 => 0xffff,
            v => v,
        };
        self.set_checksum(value);
    }

    /// RFC 1624 update of the checksum for a 16-bit word it covers (a port, or half of a
    /// pseudo-header address) changing from `old` to `new`. Keeps a zero checksum ("none")
    /// zero and never writes a computed 0 as 0.
    #[inline]
    pub fn update_checksum16(&mut self, old: u16, new: u16) {
        let current = self.checksum();
        if current != 0 {
            let value = match checksum::update16(current, old, new) {
                0 => 0xffff,
                v => v,
            };
            self.set_checksum(value);
        }
    }

    /// Like [`update_checksum16`](Self::update_checksum16) for a 32-bit word (an IPv4
    /// address of the pseudo-header, as `u32::from(addr)`).
    #[inline]
    pub fn update_checksum32(&mut self, old: u32, new: u32) {
        let current = self.checksum();
        if current != 0 {
            let value = match checksum::update32(current, old, new) {
                0 => 0xffff,
                v => v,
            };
            self.set_checksum(value);
        }
    }

    /// The payload, mutable (up to the length field).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let end = usize::from(get_u16(data, field::LENGTH)).min(data.len());
        data.get_mut(UDP_HEADER_LEN..end).unwrap_or(&mut [])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A UDP header; the payload is referred to by length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length (`length - 8`).
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a checked view and verifies its checksum against the IPv4 pseudo-header.
    ///
    /// # Errors
    ///
    /// `Malformed(Udp, BadChecksum)` unless the checksum is 0 or verifies.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &UdpPacket<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
    ) -> Result<Self, WireError> {
        packet.check_len()?;
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(WireError::Malformed(Layer::Udp, Malformed::BadChecksum));
        }
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: usize::from(packet.len()) - UDP_HEADER_LEN,
        })
    }

    /// Always 8.
    pub const fn header_len(&self) -> usize {
        UDP_HEADER_LEN
    }

    /// Header plus payload: the length field emit writes.
    pub const fn buffer_len(&self) -> usize {
        UDP_HEADER_LEN + self.payload_len
    }

    /// Writes the header (ports, length) and the checksum over the pseudo-header, the header
    /// and the `payload_len` bytes already in the buffer after it (the payload is not
    /// touched: write it first).
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than `buffer_len()`, or `buffer_len()` exceeds 65 535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut UdpPacket<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
    ) {
        let length = u16::try_from(self.buffer_len())
            .expect("UdpRepr::emit: payload_len exceeds the UDP length field");
        assert!(
            packet.buffer.as_ref().len() >= self.buffer_len(),
            "UdpRepr::emit: buffer shorter than buffer_len()"
        );
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len(length);
        packet.fill_checksum(src_addr, dst_addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 199);

    /// DNS-style datagram 192.168.0.1:53 -> 192.168.0.199:58764, payload "hello\n".
    static DATAGRAM: [u8; 14] = [
        0x00, 0x35, 0xe5, 0x8c, // ports
        0x00, 0x0e, 0x54, 0x1b, // length 14, checksum
        0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x0a, // "hello\n"
    ];

    #[test]
    fn parse() {
        let p = UdpPacket::new_checked(&DATAGRAM[..]).unwrap();
        assert_eq!(p.src_port(), 53);
        assert_eq!(p.dst_port(), 58764);
        assert_eq!(p.len(), 14);
        assert_eq!(p.checksum(), 0x541b);
        assert_eq!(p.payload(), b"hello\n");
        assert!(p.verify_checksum(SRC, DST));
        assert!(!p.verify_checksum(DST, Ipv4Addr::new(192, 168, 0, 2)));
        assert_eq!(
            UdpRepr::parse(&p, SRC, DST).unwrap(),
            UdpRepr {
                src_port: 53,
                dst_port: 58764,
                payload_len: 6
            }
        );
        assert_eq!(
            UdpRepr::parse(&p, SRC, Ipv4Addr::new(1, 2, 3, 4)),
            Err(WireError::Malformed(Layer::Udp, Malformed::BadChecksum))
        );
    }

    #[test]
    fn zero_checksum_means_none() {
        let mut b = DATAGRAM;
        b[6] = 0;
        b[7] = 0;
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum(Ipv4Addr::UNSPECIFIED, Ipv4Addr::BROADCAST));
        assert!(UdpRepr::parse(&p, SRC, DST).is_ok());
    }

    #[test]
    fn trailing_bytes_are_not_payload() {
        let mut b = [0u8; 20];
        b[..14].copy_from_slice(&DATAGRAM);
        let p = UdpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload(), b"hello\n");
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn every_truncation() {
        for len in 0..DATAGRAM.len() {
            match UdpPacket::new_checked(&DATAGRAM[..len]) {
                Err(WireError::Truncated {
                    layer: Layer::Udp,
                    required,
                    len: got,
                }) => {
                    assert_eq!(got, len);
                    assert_eq!(required, if len < 8 { 8 } else { 14 });
                }
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_length() {
        for length in 0..8u8 {
            let mut b = DATAGRAM;
            b[5] = length;
            assert_eq!(
                UdpPacket::new_checked(&b[..]).unwrap_err(),
                WireError::Malformed(Layer::Udp, Malformed::BadLength)
            );
        }
    }

    #[test]
    fn emit() {
        let repr = UdpRepr {
            src_port: 53,
            dst_port: 58764,
            payload_len: 6,
        };
        let mut buf = [0xa5u8; 16];
        buf[8..14].copy_from_slice(b"hello\n");
        repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..]), SRC, DST);
        assert_eq!(&buf[..14], &DATAGRAM[..]);
        assert_eq!(&buf[14..], &[0xa5, 0xa5]);
        assert_eq!(repr.buffer_len(), 14);
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Choose a payload word making the sum 0xffff, so the checksum computes to 0.
        let mut b = [0u8; 10];
        b[..8].copy_from_slice(&[0x00, 0x35, 0x00, 0x35, 0x00, 0x0a, 0x00, 0x00]);
        let mut p = UdpPacket::new_unchecked(&mut b[..]);
        p.fill_checksum(SRC, DST);
        let needed = p.checksum();
        // Put the checksum value into the payload instead: now the sum is 0xffff.
        p.payload_mut().copy_from_slice(&needed.to_be_bytes());
        p.fill_checksum(SRC, DST);
        assert_eq!(p.checksum(), 0xffff);
        assert!(p.verify_checksum(SRC, DST));
    }

    #[test]
    fn incremental_update_matches_fill() {
        let mut b = DATAGRAM;
        let mut p = UdpPacket::new_checked(&mut b[..]).unwrap();
        let new_src = Ipv4Addr::new(198, 18, 0, 2);
        p.update_checksum32(u32::from(SRC), u32::from(new_src));
        p.update_checksum16(53, 40000);
        p.set_src_port(40000);
        assert!(p.verify_checksum(new_src, DST));
        let incremental = p.checksum();
        p.fill_checksum(new_src, DST);
        assert_eq!(p.checksum(), incremental);
        // "No checksum" stays so.
        p.set_checksum(0);
        p.update_checksum16(40000, 1);
        assert_eq!(p.checksum(), 0);
    }
}
