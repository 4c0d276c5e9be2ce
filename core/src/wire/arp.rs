//! ARP (RFC 826).
//!
//! ```text
//!  0       2       4   5   6       8
//! +-------+-------+---+---+-------+------+------+------+------+
//! | htype | ptype |hln|pln|  oper |  sha |  spa |  tha |  tpa |
//! +-------+-------+---+---+-------+------+------+------+------+
//! ```
//!
//! The view [`ArpPacket`] reads any hardware/protocol pair (the addresses are slices of the
//! announced lengths); a checked view holds all `8 + 2 * (hln + pln)` bytes. The value
//! [`ArpRepr`] only describes Ethernet/IPv4 (`htype` 1, `ptype` 0x0800, lengths 6/4, 28
//! bytes); anything else is [`Malformed`]. Bytes after the packet (Ethernet padding) are
//! ignored.

use core::fmt;
use std::net::Ipv4Addr;

use super::{get_u16, put_u16, EtherType, EthernetAddress, Layer, Malformed, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const ARP_ETHERNET_IPV4_LEN: usize = 28;

/// ARP hardware type for Ethernet.
pub const HARDWARE_ETHERNET: u16 = 1;

/// An ARP operation. Never fails to parse: unknown values are kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpOperation {
    /// Request, 1.
    Request,
    /// Reply, 2.
    Reply,
    /// Any other value.
    Unknown(u16),
}

impl From<u16> for ArpOperation {
    fn from(raw: u16) -> Self {
        match raw {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => ArpOperation::Unknown(other),
        }
    }
}

impl From<ArpOperation> for u16 {
    fn from(op: ArpOperation) -> Self {
        match op {
            ArpOperation::Request => 1,
            ArpOperation::Reply => 2,
            ArpOperation::Unknown(raw) => raw,
        }
    }
}

impl fmt::Display for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ArpOperation::Request => f.write_str("request"),
            ArpOperation::Reply => f.write_str("reply"),
            ArpOperation::Unknown(raw) => write!(f, "operation {raw}"),
        }
    }
}

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    /// Start of the variable-length addresses: sha, spa, tha, tpa.
    pub const ADDRS: usize = 8;
}

/// A zero-copy view of an ARP packet.
#[derive(Debug, Clone)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Arp, .. }` if the fixed part or the announced addresses do not fit.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the fixed header and the four addresses it announces are in the buffer.
    ///
    /// # Errors
    ///
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < field::ADDRS {
            return Err(WireError::truncated(Layer::Arp, field::ADDRS, len));
        }
        let required = self.packet_len();
        if len < required {
            return Err(WireError::truncated(Layer::Arp, required, len));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Length of the packet its address lengths announce: `8 + 2 * (hln + pln)`.
    pub fn packet_len(&self) -> usize {
        field::ADDRS + 2 * (usize::from(self.hardware_len()) + usize::from(self.protocol_len()))
    }

    /// Hardware type (1 = Ethernet).
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (an EtherType; IPv4 for IPv4 ARP).
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(get_u16(self.buffer.as_ref(), field::PTYPE))
    }

    /// Hardware address length.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(get_u16(self.buffer.as_ref(), field::OPER))
    }

    fn addr_range(&self, index: usize) -> core::ops::Range<usize> {
        let h = usize::from(self.hardware_len());
        let p = usize::from(self.protocol_len());
        let (start, len) = match index {
            0 => (field::ADDRS, h),
            1 => (field::ADDRS + h, p),
            2 => (field::ADDRS + h + p, h),
            _ => (field::ADDRS + 2 * h + p, p),
        };
        start..start + len
    }

    fn addr(&self, index: usize) -> &[u8] {
        self.buffer
            .as_ref()
            .get(self.addr_range(index))
            .unwrap_or(&[])
    }

    /// Sender hardware address (`hln` bytes).
    pub fn source_hardware_addr(&self) -> &[u8] {
        self.addr(0)
    }

    /// Sender protocol address (`pln` bytes).
    pub fn source_protocol_addr(&self) -> &[u8] {
        self.addr(1)
    }

    /// Target hardware address (`hln` bytes).
    pub fn target_hardware_addr(&self) -> &[u8] {
        self.addr(2)
    }

    /// Target protocol address (`pln` bytes).
    pub fn target_protocol_addr(&self) -> &[u8] {
        self.addr(3)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        put_u16(self.buffer.as_mut(), field::PTYPE, value.into());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation.
    pub fn set_operation(&mut self, value: ArpOperation) {
        put_u16(self.buffer.as_mut(), field::OPER, value.into());
    }

    fn set_addr(&mut self, index: usize, value: &[u8]) {
        let range = self.addr_range(index);
        self.buffer.as_mut()[range].copy_from_slice(value);
    }

    /// Sets the sender hardware address.
    ///
    /// # Panics
    ///
    /// If `value` is not `hardware_len()` bytes or does not fit the buffer.
    pub fn set_source_hardware_addr(&mut self, value: &[u8]) {
        self.set_addr(0, value);
    }

    /// Sets the sender protocol address.
    ///
    /// # Panics
    ///
    /// If `value` is not `protocol_len()` bytes or does not fit the buffer.
    pub fn set_source_protocol_addr(&mut self, value: &[u8]) {
        self.set_addr(1, value);
    }

    /// Sets the target hardware address.
    ///
    /// # Panics
    ///
    /// If `value` is not `hardware_len()` bytes or does not fit the buffer.
    pub fn set_target_hardware_addr(&mut self, value: &[u8]) {
        self.set_addr(2, value);
    }

    /// Sets the target protocol address.
    ///
    /// # Panics
    ///
    /// If `value` is not `protocol_len()` bytes or does not fit the buffer.
    pub fn set_target_protocol_addr(&mut self, value: &[u8]) {
        self.set_addr(3, value);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Operation.
    pub operation: ArpOperation,
    /// Sender hardware address.
    pub source_hardware_addr: EthernetAddress,
    /// Sender protocol address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target hardware address (zero in a request).
    pub target_hardware_addr: EthernetAddress,
    /// Target protocol address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads a checked view.
    ///
    /// # Errors
    ///
    /// `Malformed(Arp, BadHardwareType | BadProtocolType | BadAddressLen)` unless it is
    /// Ethernet/IPv4 with lengths 6/4.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self, WireError> {
        if packet.hardware_type() != HARDWARE_ETHERNET {
            return Err(WireError::Malformed(Layer::Arp, Malformed::BadHardwareType));
        }
        if packet.protocol_type() != EtherType::Ipv4 {
            return Err(WireError::Malformed(Layer::Arp, Malformed::BadProtocolType));
        }
        if packet.hardware_len() != 6 || packet.protocol_len() != 4 {
            return Err(WireError::Malformed(Layer::Arp, Malformed::BadAddressLen));
        }
        let data = packet.buffer.as_ref();
        if data.len() < ARP_ETHERNET_IPV4_LEN {
            // Only reachable with an unchecked view.
            return Err(WireError::truncated(
                Layer::Arp,
                ARP_ETHERNET_IPV4_LEN,
                data.len(),
            ));
        }
        let mac = |at: usize| {
            let mut a = [0; 6];
            a.copy_from_slice(&data[at..at + 6]);
            EthernetAddress(a)
        };
        let ip = |at: usize| Ipv4Addr::new(data[at], data[at + 1], data[at + 2], data[at + 3]);
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hardware_addr: mac(8),
            source_protocol_addr: ip(14),
            target_hardware_addr: mac(18),
            target_protocol_addr: ip(24),
        })
    }

    /// Always [`ARP_ETHERNET_IPV4_LEN`] (28).
    pub const fn buffer_len(&self) -> usize {
        ARP_ETHERNET_IPV4_LEN
    }

    /// Same as [`buffer_len`](Self::buffer_len): ARP has no payload.
    pub const fn header_len(&self) -> usize {
        ARP_ETHERNET_IPV4_LEN
    }

    /// Writes all 28 bytes.
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than 28 bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hardware_addr(&self.source_hardware_addr.0);
        packet.set_source_protocol_addr(&self.source_protocol_addr.octets());
        packet.set_target_hardware_addr(&self.target_hardware_addr.0);
        packet.set_target_protocol_addr(&self.target_protocol_addr.octets());
    }

    /// The reply to this request from `hardware_addr` (which owns `target_protocol_addr`).
    pub fn reply(&self, hardware_addr: EthernetAddress) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hardware_addr: hardware_addr,
            source_protocol_addr: self.target_protocol_addr,
            target_hardware_addr: self.source_hardware_addr,
            target_protocol_addr: self.source_protocol_addr,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Who has 10.0.2.2? Tell 10.0.2.15 (from 52:54:00:12:34:56).
    static REQUEST: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // eth/ipv4, request
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // sha
        0x0a, 0x00, 0x02, 0x0f, // spa
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // tha
        0x0a, 0x00, 0x02, 0x02, // tpa
    ];

    /// 10.0.2.2 is at 52:55:0a:00:02:02.
    static REPLY: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // eth/ipv4, reply
        0x52, 0x55, 0x0a, 0x00, 0x02, 0x02, // sha
        0x0a, 0x00, 0x02, 0x02, // spa
        0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // tha
        0x0a, 0x00, 0x02, 0x0f, // tpa
    ];

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 2, 15),
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: Ipv4Addr::new(10, 0, 2, 2),
        }
    }

    #[test]
    fn parse_request() {
        let p = ArpPacket::new_checked(&REQUEST[..]).unwrap();
        assert_eq!(p.hardware_type(), 1);
        assert_eq!(p.protocol_type(), EtherType::Ipv4);
        assert_eq!((p.hardware_len(), p.protocol_len()), (6, 4));
        assert_eq!(p.operation(), ArpOperation::Request);
        assert_eq!(p.source_protocol_addr(), &[10, 0, 2, 15]);
        assert_eq!(p.target_protocol_addr(), &[10, 0, 2, 2]);
        assert_eq!(p.packet_len(), 28);
        assert_eq!(ArpRepr::parse(&p).unwrap(), request_repr());
    }

    #[test]
    fn padded_frame_payload_is_accepted() {
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REPLY);
        let p = ArpPacket::new_checked(&padded[..]).unwrap();
        let r = ArpRepr::parse(&p).unwrap();
        assert_eq!(
            r,
            request_repr().reply(EthernetAddress([0x52, 0x55, 0x0a, 0, 2, 2]))
        );
    }

    #[test]
    fn every_truncation() {
        for len in 0..REQUEST.len() {
            match ArpPacket::new_checked(&REQUEST[..len]) {
                Err(WireError::Truncated {
                    layer: Layer::Arp,
                    required,
                    len: got,
                }) => {
                    assert_eq!(got, len);
                    assert_eq!(required, if len < 8 { 8 } else { 28 });
                }
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn non_ethernet_ipv4_is_malformed() {
        let cases: [(usize, u8, Malformed); 4] = [
            (1, 0x06, Malformed::BadHardwareType), // htype 6 (IEEE 802)
            (2, 0x86, Malformed::BadProtocolType), // ptype 0x8600
            (4, 0x08, Malformed::BadAddressLen),   // hlen 8
            (5, 0x10, Malformed::BadAddressLen),   // plen 16
        ];
        for (at, value, kind) in cases {
            let mut b = [0u8; 64];
            b[..28].copy_from_slice(&REQUEST);
            b[at] = value;
            let p = ArpPacket::new_checked(&b[..]).unwrap();
            assert_eq!(
                ArpRepr::parse(&p),
                Err(WireError::Malformed(Layer::Arp, kind))
            );
        }
        // A large announced length is only a truncation for the view, never a panic.
        let mut b = REQUEST;
        b[4] = 0xff;
        assert_eq!(
            ArpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::truncated(Layer::Arp, 8 + 2 * (255 + 4), 28)
        );
    }

    #[test]
    fn emit_request_and_reply() {
        let mut buf = [0xa5u8; 30];
        request_repr().emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..28], &REQUEST[..]);
        assert_eq!(&buf[28..], &[0xa5, 0xa5]);

        let reply = request_repr().reply(EthernetAddress([0x52, 0x55, 0x0a, 0x00, 0x02, 0x02]));
        let mut buf = [0xa5u8; 28];
        reply.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
        assert_eq!(buf, REPLY);
        assert_eq!(reply.buffer_len(), 28);
    }

    #[test]
    fn operation_round_trip() {
        for raw in [0u16, 1, 2, 3, 0xffff] {
            assert_eq!(u16::from(ArpOperation::from(raw)), raw);
        }
        assert_eq!(ArpOperation::from(9), ArpOperation::Unknown(9));
    }
}
