//! IPv4 (RFC 791) and the IP protocol numbers shared with IPv6.
//!
//! ```text
//!  0               1               2               3
//! +-------+-------+---------------+-------------------------------+
//! |version|  IHL  |   DSCP/ECN    |          total length         |
//! +-------+-------+---------------+-----+-------------------------+
//! |        identification         |flags|     fragment offset     |
//! +---------------+---------------+-----+-------------------------+
//! |      TTL      |   protocol    |        header checksum        |
//! +---------------+---------------+-------------------------------+
//! |                        source address                         |
//! |                      destination address                      |
//! |                 options (IHL > 5), then payload               |
//! ```
//!
//! Invariants of a checked [`Ipv4Packet`]: version is 4, `20 <= header_len <= total_len <=
//! buffer length`. Bytes after `total_len` (Ethernet padding) are allowed and are not part of
//! [`Ipv4Packet::payload`]. The checksum is *not* checked by the view (forwarding may not need
//! it); [`Ipv4Repr::parse`] checks it, or call [`Ipv4Packet::verify_checksum`].

use core::fmt;
use std::net::Ipv4Addr;

use super::checksum;
use super::{get_u16, put_u16, Layer, Malformed, WireError};

/// Length of an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// An IP protocol number (IPv4 `protocol`, IPv6 `next header`). Never fails to parse.
///
/// Build it with `IpProtocol::from(raw)`, which maps known values to their named variant, so
/// `Unknown` never holds a known value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpProtocol {
    /// IPv6 hop-by-hop options, 0.
    HopByHop,
    /// ICMP, 1.
    Icmp,
    /// IGMP, 2.
    Igmp,
    /// TCP, 6.
    Tcp,
    /// UDP, 17.
    Udp,
    /// IPv6 routing header, 43.
    Ipv6Route,
    /// IPv6 fragment header, 44.
    Ipv6Frag,
    /// ICMPv6, 58.
    Icmpv6,
    /// IPv6 no next header, 59.
    Ipv6NoNxt,
    /// IPv6 destination options, 60.
    Ipv6Opts,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for IpProtocol {
    #[inline]
    fn from(raw: u8) -> Self {
        match raw {
            0 => IpProtocol::HopByHop,
            1 => IpProtocol::Icmp,
            2 => IpProtocol::Igmp,
            6 => IpProtocol::Tcp,
            17 => IpProtocol::Udp,
            43 => IpProtocol::Ipv6Route,
            44 => IpProtocol::Ipv6Frag,
            58 => IpProtocol::Icmpv6,
            59 => IpProtocol::Ipv6NoNxt,
            60 => IpProtocol::Ipv6Opts,
            other => IpProtocol::Unknown(other),
        }
    }
}

impl From<IpProtocol> for u8 {
    #[inline]
    fn from(p: IpProtocol) -> Self {
        match p {
            IpProtocol::HopByHop => 0,
            IpProtocol::Icmp => 1,
            IpProtocol::Igmp => 2,
            IpProtocol::Tcp => 6,
            IpProtocol::Udp => 17,
            IpProtocol::Ipv6Route => 43,
            IpProtocol::Ipv6Frag => 44,
            IpProtocol::Icmpv6 => 58,
            IpProtocol::Ipv6NoNxt => 59,
            IpProtocol::Ipv6Opts => 60,
            IpProtocol::Unknown(raw) => raw,
        }
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            IpProtocol::HopByHop => f.write_str("Hop-by-Hop"),
            IpProtocol::Icmp => f.write_str("ICMP"),
            IpProtocol::Igmp => f.write_str("IGMP"),
            IpProtocol::Tcp => f.write_str("TCP"),
            IpProtocol::Udp => f.write_str("UDP"),
            IpProtocol::Ipv6Route => f.write_str("IPv6-Route"),
            IpProtocol::Ipv6Frag => f.write_str("IPv6-Frag"),
            IpProtocol::Icmpv6 => f.write_str("ICMPv6"),
            IpProtocol::Ipv6NoNxt => f.write_str("IPv6-NoNxt"),
            IpProtocol::Ipv6Opts => f.write_str("IPv6-Opts"),
            IpProtocol::Unknown(raw) => write!(f, "protocol {raw}"),
        }
    }
}

mod field {
    use core::ops::Range;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Ipv4, .. }` if the buffer is shorter than 20 bytes, the header
    /// length or the total length; `Malformed(Ipv4, BadVersion | BadHeaderLen |
    /// BadTotalLen)` for version != 4, IHL < 5, or total length < header length.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the version and that the header and total lengths fit the buffer.
    ///
    /// # Errors
    ///
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < IPV4_HEADER_LEN {
            return Err(WireError::truncated(Layer::Ipv4, IPV4_HEADER_LEN, len));
        }
        if self.version() != 4 {
            return Err(WireError::Malformed(Layer::Ipv4, Malformed::BadVersion));
        }
        let header_len = self.header_len();
        if header_len < IPV4_HEADER_LEN {
            return Err(WireError::Malformed(Layer::Ipv4, Malformed::BadHeaderLen));
        }
        if len < header_len {
            return Err(WireError::truncated(Layer::Ipv4, header_len, len));
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(WireError::Malformed(Layer::Ipv4, Malformed::BadTotalLen));
        }
        if len < total_len {
            return Err(WireError::truncated(Layer::Ipv4, total_len, len));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version (4).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (`IHL * 4`, 20..=60), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Differentiated services code point (6 bits).
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    /// Explicit congestion notification (2 bits).
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Total length (header + payload) in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't-fragment flag.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field times 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) << 3
    }

    /// Is this a fragment (more-fragments set or offset != 0)?
    #[inline]
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline]
    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.buffer.as_ref()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }

    /// The header bytes, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..self.header_len().min(data.len())]
    }

    /// The options bytes (empty for IHL 5), uninterpreted.
    #[inline]
    pub fn options(&self) -> &[u8] {
        self.header().get(IPV4_HEADER_LEN..).unwrap_or(&[])
    }

    /// Does the header checksum verify?
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.header())) == 0xffff
    }

    fn payload_range(&self) -> core::ops::Range<usize> {
        let len = self.buffer.as_ref().len();
        let end = usize::from(self.total_len()).min(len);
        let start = self.header_len().min(end);
        start..end
    }

    /// The payload: from the end of the header to `total_len` (Ethernet padding excluded).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let range = self.payload_range();
        &self.buffer.as_ref()[range]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version nibble.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4, at most 60).
    #[inline]
    pub fn set_header_len(&mut self, bytes: usize) {
        let ihl = ((bytes / 4).min(15)) as u8;
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ihl;
    }

    /// Sets the DSCP (6 bits).
    #[inline]
    pub fn set_dscp(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0x03) | (value << 2);
    }

    /// Sets the ECN (2 bits).
    #[inline]
    pub fn set_ecn(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DSCP_ECN];
        *b = (*b & 0xfc) | (value & 0x03);
    }

    /// Sets the total length.
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::IDENT, value);
    }

    /// Clears the flags and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        put_u16(self.buffer.as_mut(), field::FLG_OFF, 0);
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let raw = get_u16(self.buffer.as_ref(), field::FLG_OFF);
        let raw = if on { raw | flag } else { raw & !flag };
        put_u16(self.buffer.as_mut(), field::FLG_OFF, raw);
    }

    /// Sets the don't-fragment flag.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        self.set_flag(FLAG_DF, value);
    }

    /// Sets the more-fragments flag.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        self.set_flag(FLAG_MF, value);
    }

    /// Sets the fragment offset in bytes (divided by 8; the low 3 bits are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, bytes: u16) {
        let raw = get_u16(self.buffer.as_ref(), field::FLG_OFF);
        let raw = (raw & !OFFSET_MASK) | (bytes >> 3);
        put_u16(self.buffer.as_mut(), field::FLG_OFF, raw);
    }

    /// Sets the time to live.
    #[inline]
    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    #[inline]
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    /// Sets the destination address.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum (options included) and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.header());
        self.set_checksum(value);
    }

    /// The options bytes, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let data = self.buffer.as_mut();
        let end = (usize::from(data[field::VER_IHL] & 0x0f) * 4).min(data.len());
        data.get_mut(IPV4_HEADER_LEN..end).unwrap_or(&mut [])
    }

    /// The payload, mutable (up to `total_len`).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.payload_range();
        &mut self.buffer.as_mut()[range]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An IPv4 header without options, as [`Ipv4Repr::emit`] writes it.
///
/// DSCP/ECN are not kept (emitted as 0); options of a parsed packet are skipped (use
/// [`Ipv4Packet::options`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub next_header: IpProtocol,
    /// Payload length in bytes (`total_len - header_len`).
    pub payload_len: usize,
    /// Time to live.
    pub hop_limit: u8,
    /// Identification.
    pub ident: u16,
    /// Don't-fragment flag.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Reads a checked view and verifies its header checksum.
    ///
    /// # Errors
    ///
    /// `Malformed(Ipv4, BadChecksum)` if the checksum is wrong; `Malformed(Ipv4,
    /// Fragmented)` for a fragment (this value cannot describe one; forward those with the
    /// view).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(WireError::Malformed(Layer::Ipv4, Malformed::BadChecksum));
        }
        if packet.is_fragment() {
            return Err(WireError::Malformed(Layer::Ipv4, Malformed::Fragmented));
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            hop_limit: packet.hop_limit(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Always [`IPV4_HEADER_LEN`] (20): emit writes no options.
    pub const fn header_len(&self) -> usize {
        IPV4_HEADER_LEN
    }

    /// Header plus payload: the `total_len` emit writes.
    pub const fn buffer_len(&self) -> usize {
        IPV4_HEADER_LEN + self.payload_len
    }

    /// Writes the 20-byte header (IHL 5, DSCP/ECN 0, no fragmentation) and its checksum.
    /// The payload is not touched.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than 20 bytes, or if `buffer_len()` exceeds 65 535.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        let total_len = u16::try_from(self.buffer_len())
            .expect("Ipv4Repr::emit: payload_len exceeds the IPv4 total length");
        let data = packet.buffer.as_mut();
        data[field::VER_IHL] = 0x45;
        data[field::DSCP_ECN] = 0;
        put_u16(data, field::LENGTH, total_len);
        put_u16(data, field::IDENT, self.ident);
        put_u16(
            data,
            field::FLG_OFF,
            if self.dont_frag { FLAG_DF } else { 0 },
        );
        data[field::TTL] = self.hop_limit;
        data[field::PROTOCOL] = self.next_header.into();
        data[field::SRC_ADDR].copy_from_slice(&self.src_addr.octets());
        data[field::DST_ADDR].copy_from_slice(&self.dst_addr.octets());
        put_u16(data, field::CHECKSUM, 0);
        let value = checksum::data(&data[..IPV4_HEADER_LEN]);
        put_u16(data, field::CHECKSUM, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// UDP DNS reply 192.168.0.1 -> 192.168.0.199, captured (total length 0x73 = 115),
    /// payload cut to 8 bytes here so total length is 28.
    static UDP_PACKET: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, // v4, IHL 5, total 28
        0x1c, 0x46, 0x40, 0x00, // ident 0x1c46, DF
        0x40, 0x11, 0x9c, 0x72, // TTL 64, UDP, checksum
        0xc0, 0xa8, 0x00, 0x01, // 192.168.0.1
        0xc0, 0xa8, 0x00, 0xc7, // 192.168.0.199
        0x00, 0x35, 0xe5, 0x8c, 0x00, 0x08, 0x00, 0x00, // UDP header
    ];

    /// IHL 6 with a router-alert option (IGMP style), 4 bytes payload, plus 2 bytes of
    /// Ethernet padding after total_len.
    static WITH_OPTIONS: [u8; 30] = [
        0x46, 0xc0, 0x00, 0x1c, // v4, IHL 6, DSCP 48, total 28
        0x00, 0x00, 0x00, 0x00, // ident 0, no flags
        0x01, 0x02, 0x00, 0x00, // TTL 1, IGMP, checksum (filled in test)
        0x0a, 0x00, 0x00, 0x01, // 10.0.0.1
        0xe0, 0x00, 0x00, 0x16, // 224.0.0.22
        0x94, 0x04, 0x00, 0x00, // router alert
        0x22, 0x00, 0xf9, 0x02, // payload
        0x00, 0x00, // padding
    ];

    fn with_options() -> [u8; 30] {
        let mut b = WITH_OPTIONS;
        Ipv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn parse_udp_packet() {
        let p = Ipv4Packet::new_checked(&UDP_PACKET[..]).unwrap();
        assert_eq!(p.version(), 4);
        assert_eq!(p.header_len(), 20);
        assert_eq!((p.dscp(), p.ecn()), (0, 0));
        assert_eq!(p.total_len(), 28);
        assert_eq!(p.ident(), 0x1c46);
        assert!(p.dont_frag() && !p.more_frags() && !p.is_fragment());
        assert_eq!(p.frag_offset(), 0);
        assert_eq!(p.hop_limit(), 64);
        assert_eq!(p.next_header(), IpProtocol::Udp);
        assert_eq!(p.checksum(), 0x9c72);
        assert!(p.verify_checksum());
        assert_eq!(p.src_addr(), Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(p.dst_addr(), Ipv4Addr::new(192, 168, 0, 199));
        assert!(p.options().is_empty());
        assert_eq!(p.payload(), &UDP_PACKET[20..]);
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Ipv4Repr {
                src_addr: Ipv4Addr::new(192, 168, 0, 1),
                dst_addr: Ipv4Addr::new(192, 168, 0, 199),
                next_header: IpProtocol::Udp,
                payload_len: 8,
                hop_limit: 64,
                ident: 0x1c46,
                dont_frag: true,
            }
        );
    }

    #[test]
    fn options_and_padding() {
        let b = with_options();
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 24);
        assert_eq!(p.dscp(), 48);
        assert_eq!(p.options(), &[0x94, 0x04, 0x00, 0x00]);
        assert_eq!(p.payload(), &[0x22, 0x00, 0xf9, 0x02]);
        assert!(p.verify_checksum());
        let r = Ipv4Repr::parse(&p).unwrap();
        assert_eq!(r.payload_len, 4);
        assert_eq!(r.next_header, IpProtocol::Igmp);
    }

    #[test]
    fn every_truncation() {
        for frame in [&UDP_PACKET[..], &with_options()[..28]] {
            for len in 0..frame.len() {
                match Ipv4Packet::new_checked(&frame[..len]) {
                    Err(WireError::Truncated {
                        layer: Layer::Ipv4,
                        required,
                        len: got,
                    }) => {
                        assert_eq!(got, len);
                        assert!(required > len && required <= frame.len());
                    }
                    other => panic!("len {len}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn malformed() {
        let set = |at: usize, v: u8| {
            let mut b = UDP_PACKET;
            b[at] = v;
            Ipv4Packet::new_checked(b).map(|_| ())
        };
        let m = |k| Err(WireError::Malformed(Layer::Ipv4, k));
        assert_eq!(set(0, 0x65), m(Malformed::BadVersion));
        assert_eq!(set(0, 0x44), m(Malformed::BadHeaderLen));
        assert_eq!(set(0, 0x40), m(Malformed::BadHeaderLen));
        assert_eq!(set(3, 19), m(Malformed::BadTotalLen));
        assert_eq!(set(0, 0x4f), Err(WireError::truncated(Layer::Ipv4, 60, 28)));
        assert_eq!(set(3, 29), Err(WireError::truncated(Layer::Ipv4, 29, 28)));

        let mut b = UDP_PACKET;
        b[11] ^= 1;
        let p = Ipv4Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&p).map(|_| ()), m(Malformed::BadChecksum));
    }

    #[test]
    fn fragments() {
        let mut b = UDP_PACKET;
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_dont_frag(false);
        p.set_more_frags(true);
        p.fill_checksum();
        assert!(p.is_fragment());
        assert_eq!(
            Ipv4Repr::parse(&p),
            Err(WireError::Malformed(Layer::Ipv4, Malformed::Fragmented))
        );
        p.set_more_frags(false);
        p.set_frag_offset(1480);
        p.fill_checksum();
        assert_eq!(p.frag_offset(), 1480);
        assert!(p.is_fragment() && !p.more_frags() && !p.dont_frag());
        assert_eq!(&b[6..8], &[0x00, 0xb9]);
    }

    #[test]
    fn setters_and_fill_checksum() {
        let mut b = [0u8; 28];
        let mut p = Ipv4Packet::new_unchecked(&mut b[..]);
        p.set_version(4);
        p.set_header_len(20);
        p.set_dscp(0);
        p.set_ecn(0);
        p.set_total_len(28);
        p.set_ident(0x1c46);
        p.clear_flags();
        p.set_dont_frag(true);
        p.set_hop_limit(64);
        p.set_next_header(IpProtocol::Udp);
        p.set_src_addr(Ipv4Addr::new(192, 168, 0, 1));
        p.set_dst_addr(Ipv4Addr::new(192, 168, 0, 199));
        p.payload_mut().copy_from_slice(&UDP_PACKET[20..]);
        p.fill_checksum();
        assert_eq!(b, UDP_PACKET);

        let mut b = with_options();
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.options_mut()[2] = 0x12;
        p.set_ecn(3);
        assert!(!p.verify_checksum());
        p.fill_checksum();
        assert!(p.verify_checksum());
        assert_eq!(p.ecn(), 3);
        assert_eq!(p.dscp(), 48);
    }

    #[test]
    fn getters_clamp_after_length_change() {
        let mut b = UDP_PACKET;
        let mut p = Ipv4Packet::new_checked(&mut b[..]).unwrap();
        p.set_total_len(0xffff);
        p.set_header_len(60);
        assert!(p.payload().is_empty());
        assert_eq!(p.options().len(), 8);
        assert_eq!(p.payload_mut().len(), 0);
        let _ = p.verify_checksum();
    }

    #[test]
    fn emit() {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 0, 1),
            dst_addr: Ipv4Addr::new(192, 168, 0, 199),
            next_header: IpProtocol::Udp,
            payload_len: 8,
            hop_limit: 64,
            ident: 0x1c46,
            dont_frag: true,
        };
        assert_eq!(repr.buffer_len(), 28);
        let mut buf = [0xa5u8; 28];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..20], &UDP_PACKET[..20]);
        assert_eq!(&buf[20..], &[0xa5; 8]);
    }

    #[test]
    fn protocol_round_trip() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(raw)), raw);
        }
        assert_eq!(IpProtocol::from(6), IpProtocol::Tcp);
        assert_eq!(IpProtocol::from(200), IpProtocol::Unknown(200));
    }
}
