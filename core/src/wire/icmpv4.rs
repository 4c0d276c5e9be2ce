//! ICMPv4 (RFC 792, RFC 1191): echo, destination unreachable, time exceeded.
//!
//! ```text
//!  0       1       2               4               6               8
//! +-------+-------+---------------+---------------+---------------+------
//! | type  | code  |   checksum    | ident/unused  | seq_no/MTU    | data
//! +-------+-------+---------------+---------------+---------------+------
//! ```
//!
//! The view's buffer is the whole message (build it over [`Ipv4Packet::payload`], which ends
//! at the IPv4 total length): the checksum covers all of it. A checked view holds the
//! 8-byte header. For error messages (destination unreachable, time exceeded) the data is
//! the offending packet's IPv4 header and at least its first 8 payload bytes; read it with
//! [`Icmpv4Packet::inner_ipv4`].
//!
//! [`Icmpv4Repr`] refers to the data by length only, so it stays `Copy`: its `emit` writes
//! the header and checksums the header plus the `data_len` bytes already in the buffer
//! after it (write the data first, or keep it when turning a request into a reply in place).

use core::fmt;

use super::checksum;
use super::IPV4_HEADER_LEN;
use super::{get_u16, get_u32, put_u16, put_u32, Ipv4Packet, Layer, Malformed, WireError};

/// Length of the ICMPv4 header (type, code, checksum, 4 bytes rest-of-header).
pub const ICMPV4_HEADER_LEN: usize = 8;

/// Bytes of the offending packet's payload an ICMP error must quote after its IP header.
pub const ICMPV4_ERROR_QUOTE_LEN: usize = 8;

macro_rules! raw_enum {
    (
        $(#[$attr:meta])*
        pub enum $name:ident($raw:ty) {
            $($(#[$vattr:meta])* $variant:ident = $value:expr,)*
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vattr])* $variant,)*
            /// Any other value.
            Unknown($raw),
        }

        impl From<$raw> for $name {
            #[inline]
            fn from(raw: $raw) -> Self {
                match raw {
                    $($value => $name::$variant,)*
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $raw {
            #[inline]
            fn from(value: $name) -> Self {
                match value {
                    $($name::$variant => $value,)*
                    $name::Unknown(raw) => raw,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match *self {
                    $($name::$variant => f.write_str(stringify!($variant)),)*
                    $name::Unknown(raw) => write!(f, "{}({raw})", stringify!($name)),
                }
            }
        }
    };
}

raw_enum! {
    /// An ICMPv4 message type. Never fails to parse.
    pub enum Icmpv4Message(u8) {
        /// Echo reply, 0.
        EchoReply = 0,
        /// Destination unreachable, 3.
        DstUnreachable = 3,
        /// Redirect, 5.
        Redirect = 5,
        /// Echo request, 8.
        EchoRequest = 8,
        /// Router advertisement, 9.
        RouterAdvert = 9,
        /// Router solicitation, 10.
        RouterSolicit = 10,
        /// Time exceeded, 11.
        TimeExceeded = 11,
        /// Parameter problem, 12.
        ParamProblem = 12,
        /// Timestamp, 13.
        Timestamp = 13,
        /// Timestamp reply, 14.
        TimestampReply = 14,
    }
}

raw_enum! {
    /// Destination-unreachable codes. Never fails to parse.
    pub enum Icmpv4DstUnreachable(u8) {
        /// Net unreachable, 0.
        NetUnreachable = 0,
        /// Host unreachable, 1.
        HostUnreachable = 1,
        /// Protocol unreachable, 2.
        ProtoUnreachable = 2,
        /// Port unreachable, 3.
        PortUnreachable = 3,
        /// Fragmentation needed and DF set, 4 (carries the next-hop MTU, RFC 1191).
        FragRequired = 4,
        /// Source route failed, 5.
        SrcRouteFailed = 5,
        /// Destination network unknown, 6.
        DstNetUnknown = 6,
        /// Destination host unknown, 7.
        DstHostUnknown = 7,
        /// Source host isolated, 8.
        SrcHostIsolated = 8,
        /// Network administratively prohibited, 9.
        NetProhibited = 9,
        /// Host administratively prohibited, 10.
        HostProhibited = 10,
        /// Network unreachable for ToS, 11.
        NetUnreachToS = 11,
        /// Host unreachable for ToS, 12.
        HostUnreachToS = 12,
        /// Communication administratively prohibited (by filtering), 13.
        AdminProhibited = 13,
        /// Host precedence violation, 14.
        HostPrecedenceViolation = 14,
        /// Precedence cutoff in effect, 15.
        PrecedenceCutoff = 15,
    }
}

raw_enum! {
    /// Time-exceeded codes. Never fails to parse.
    pub enum Icmpv4TimeExceeded(u8) {
        /// TTL exceeded in transit, 0.
        TtlExpired = 0,
        /// Fragment reassembly time exceeded, 1.
        FragExpired = 1,
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    /// Rest of header: echo identifier / unused.
    pub const ECHO_IDENT: usize = 4;
    /// Rest of header: echo sequence number / next-hop MTU.
    pub const ECHO_SEQNO: usize = 6;
    pub const REST: usize = 4;
    pub const DATA: usize = 8;
}

/// A zero-copy view of an ICMPv4 message.
#[derive(Debug, Clone)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Icmpv4, .. }` if shorter than the 8-byte header.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the 8-byte header is present.
    ///
    /// # Errors
    ///
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < ICMPV4_HEADER_LEN {
            return Err(WireError::truncated(Layer::Icmpv4, ICMPV4_HEADER_LEN, len));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Header length: always 8.
    pub const fn header_len(&self) -> usize {
        ICMPV4_HEADER_LEN
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// Message code.
    #[inline]
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (echo request/reply).
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply).
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU (destination unreachable, fragmentation needed; RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// The four rest-of-header bytes as one big-endian word.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::REST)
    }

    /// The data after the 8-byte header: echo payload, or for error messages the offending
    /// packet's IPv4 header and first payload bytes.
    #[inline]
    pub fn data(&self) -> &[u8] {
        self.buffer.as_ref().get(field::DATA..).unwrap_or(&[])
    }

    /// Does the checksum over the whole buffer verify?
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::fold(checksum::sum(self.buffer.as_ref())) == 0xffff
    }

    /// Is this an error message that quotes an offending packet (destination unreachable,
    /// redirect, time exceeded, parameter problem)?
    pub fn is_error(&self) -> bool {
        matches!(
            self.msg_type(),
            Icmpv4Message::DstUnreachable
                | Icmpv4Message::Redirect
                | Icmpv4Message::TimeExceeded
                | Icmpv4Message::ParamProblem
        )
    }

    /// The quoted ("inner") IPv4 packet of an error message, as a view over [`data`](Self::data).
    ///
    /// The quote is cut short by design, so the returned view is *not* a checked one: its
    /// fixed-header getters and `options()` are in bounds (checked here), its `payload()`
    /// holds only the quoted transport bytes (at least 8: ports, and for TCP the sequence
    /// number), and its `total_len()` still tells the original length.
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Icmpv4, .. }` if the data is shorter than the inner IPv4 header
    /// plus 8 bytes (`required`/`len` count from the start of the ICMP message);
    /// `Malformed(Icmpv4, BadVersion | BadHeaderLen)` if the quote is not IPv4;
    /// `Malformed(Icmpv4, BadTotalLen)` if its total length is below its header plus 8.
    pub fn inner_ipv4(&self) -> Result<Ipv4Packet<&[u8]>, WireError> {
        let data = self.data();
        let len = self.buffer.as_ref().len();
        let min = ICMPV4_HEADER_LEN + IPV4_HEADER_LEN + ICMPV4_ERROR_QUOTE_LEN;
        if data.len() < IPV4_HEADER_LEN + ICMPV4_ERROR_QUOTE_LEN {
            return Err(WireError::truncated(Layer::Icmpv4, min, len));
        }
        let inner = Ipv4Packet::new_unchecked(data);
        if inner.version() != 4 {
            return Err(WireError::Malformed(Layer::Icmpv4, Malformed::BadVersion));
        }
        if inner.header_len() < IPV4_HEADER_LEN {
            return Err(WireError::Malformed(Layer::Icmpv4, Malformed::BadHeaderLen));
        }
        let required = inner.header_len() + ICMPV4_ERROR_QUOTE_LEN;
        if data.len() < required {
            return Err(WireError::truncated(
                Layer::Icmpv4,
                ICMPV4_HEADER_LEN + required,
                len,
            ));
        }
        // `payload()` ends at the quoted total length: one below the header plus 8 bytes
        // (no real packet is that short) would leave fewer than the 8 promised.
        if usize::from(inner.total_len()) < required {
            return Err(WireError::Malformed(Layer::Icmpv4, Malformed::BadTotalLen));
        }
        Ok(inner)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the message code.
    #[inline]
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the next-hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the four rest-of-header bytes.
    #[inline]
    pub fn set_rest_of_header(&mut self, value: u32) {
        put_u32(self.buffer.as_mut(), field::REST, value);
    }

    /// The data after the header, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.buffer
            .as_mut()
            .get_mut(field::DATA..)
            .unwrap_or(&mut [])
    }

    /// Computes the checksum over the whole buffer and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.buffer.as_ref());
        self.set_checksum(value);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An ICMPv4 message header; the data is referred to by length (`data_len`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Icmpv4Repr {
    /// Echo request (type 8).
    EchoRequest {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Length of the echo data.
        data_len: usize,
    },
    /// Echo reply (type 0).
    EchoReply {
        /// Identifier.
        ident: u16,
        /// Sequence number.
        seq_no: u16,
        /// Length of the echo data.
        data_len: usize,
    },
    /// Destination unreachable (type 3).
    DstUnreachable {
        /// Why.
        code: Icmpv4DstUnreachable,
        /// Next-hop MTU for [`Icmpv4DstUnreachable::FragRequired`], else 0.
        next_hop_mtu: u16,
        /// Length of the quoted packet (IPv4 header + at least 8 bytes).
        data_len: usize,
    },
    /// Time exceeded (type 11).
    TimeExceeded {
        /// Why.
        code: Icmpv4TimeExceeded,
        /// Length of the quoted packet (IPv4 header + at least 8 bytes).
        data_len: usize,
    },
    /// Any other message, kept raw.
    Other {
        /// Message type.
        msg_type: Icmpv4Message,
        /// Message code.
        code: u8,
        /// The four rest-of-header bytes.
        rest_of_header: u32,
        /// Length of the data.
        data_len: usize,
    },
}

impl Icmpv4Repr {
    /// Reads a checked view (the buffer is the whole message) and verifies its checksum.
    ///
    /// Echo request/reply with code 0, and destination unreachable / time exceeded whose
    /// unused rest-of-header bytes are zero, get their own variant; everything else
    /// (including RFC 4884 extended errors) becomes [`Icmpv4Repr::Other`], so that
    /// [`emit`](Self::emit) reproduces every parsed header byte for byte.
    ///
    /// # Errors
    ///
    /// `Malformed(Icmpv4, BadChecksum)`.
    pub fn parse<T: AsRef<[u8]>>(packet: &Icmpv4Packet<T>) -> Result<Self, WireError> {
        packet.check_len()?;
        if !packet.verify_checksum() {
            return Err(WireError::Malformed(Layer::Icmpv4, Malformed::BadChecksum));
        }
        let data_len = packet.data().len();
        let code = packet.msg_code();
        Ok(match (packet.msg_type(), code) {
            (Icmpv4Message::EchoRequest, 0) => Icmpv4Repr::EchoRequest {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data_len,
            },
            (Icmpv4Message::EchoReply, 0) => Icmpv4Repr::EchoReply {
                ident: packet.echo_ident(),
                seq_no: packet.echo_seq_no(),
                data_len,
            },
            (Icmpv4Message::DstUnreachable, _) if packet.echo_ident() == 0 => {
                let code = Icmpv4DstUnreachable::from(code);
                Icmpv4Repr::DstUnreachable {
                    code,
                    next_hop_mtu: packet.next_hop_mtu(),
                    data_len,
                }
            }
            (Icmpv4Message::TimeExceeded, _) if packet.rest_of_header() == 0 => {
                Icmpv4Repr::TimeExceeded {
                    code: Icmpv4TimeExceeded::from(code),
                    data_len,
                }
            }
            (msg_type, code) => Icmpv4Repr::Other {
                msg_type,
                code,
                rest_of_header: packet.rest_of_header(),
                data_len,
            },
        })
    }

    /// Always 8.
    pub const fn header_len(&self) -> usize {
        ICMPV4_HEADER_LEN
    }

    /// Length of the data after the header.
    pub const fn data_len(&self) -> usize {
        match *self {
            Icmpv4Repr::EchoRequest { data_len, .. }
            | Icmpv4Repr::EchoReply { data_len, .. }
            | Icmpv4Repr::DstUnreachable { data_len, .. }
            | Icmpv4Repr::TimeExceeded { data_len, .. }
            | Icmpv4Repr::Other { data_len, .. } => data_len,
        }
    }

    /// Header plus data: the message length.
    pub const fn buffer_len(&self) -> usize {
        ICMPV4_HEADER_LEN + self.data_len()
    }

    /// Writes the header, then the checksum over the first [`buffer_len`](Self::buffer_len)
    /// bytes of the buffer. The data must already be in place after the header (it is not
    /// touched).
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Icmpv4Packet<T>) {
        let (msg_type, code, rest) = match *self {
            Icmpv4Repr::EchoRequest { ident, seq_no, .. } => (
                Icmpv4Message::EchoRequest,
                0,
                (u32::from(ident) << 16) | u32::from(seq_no),
            ),
            Icmpv4Repr::EchoReply { ident, seq_no, .. } => (
                Icmpv4Message::EchoReply,
                0,
                (u32::from(ident) << 16) | u32::from(seq_no),
            ),
            Icmpv4Repr::DstUnreachable {
                code, next_hop_mtu, ..
            } => (
                Icmpv4Message::DstUnreachable,
                code.into(),
                u32::from(next_hop_mtu),
            ),
            Icmpv4Repr::TimeExceeded { code, .. } => (Icmpv4Message::TimeExceeded, code.into(), 0),
            Icmpv4Repr::Other {
                msg_type,
                code,
                rest_of_header,
                ..
            } => (msg_type, code, rest_of_header),
        };
        let len = self.buffer_len();
        let data = &mut packet.buffer.as_mut()[..len];
        data[field::TYPE] = msg_type.into();
        data[field::CODE] = code;
        put_u16(data, field::CHECKSUM, 0);
        put_u32(data, field::REST, rest);
        let value = checksum::data(data);
        put_u16(data, field::CHECKSUM, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// `ping -c1 -s 8` echo request: ident 0x1234, seq 1, data "abcdefgh".
    static ECHO_REQUEST: [u8; 16] = [
        0x08, 0x00, 0x54, 0x35, // type 8, code 0, checksum
        0x12, 0x34, 0x00, 0x01, // ident, seq
        0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, // data
    ];

    /// Port unreachable quoting a UDP datagram 10.0.0.2:40000 -> 10.0.0.1:53.
    static PORT_UNREACHABLE: [u8; 36] = [
        0x03, 0x03, 0x00, 0x00, // type 3, code 3, checksum (filled in test)
        0x00, 0x00, 0x00, 0x00, // unused
        0x45, 0x00, 0x00, 0x24, 0x00, 0x01, 0x00, 0x00, // inner IPv4 (total 36)
        0x40, 0x11, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x02, //
        0x0a, 0x00, 0x00, 0x01, //
        0x9c, 0x40, 0x00, 0x35, 0x00, 0x10, 0x00, 0x00, // inner UDP header
    ];

    fn port_unreachable() -> [u8; 36] {
        let mut b = PORT_UNREACHABLE;
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        b
    }

    #[test]
    fn echo_request() {
        let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..]).unwrap();
        assert_eq!(p.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(p.msg_code(), 0);
        assert_eq!(p.checksum(), 0x5435);
        assert!(p.verify_checksum());
        assert_eq!(p.echo_ident(), 0x1234);
        assert_eq!(p.echo_seq_no(), 1);
        assert_eq!(p.data(), b"abcdefgh");
        assert!(!p.is_error());
        assert_eq!(
            Icmpv4Repr::parse(&p).unwrap(),
            Icmpv4Repr::EchoRequest {
                ident: 0x1234,
                seq_no: 1,
                data_len: 8
            }
        );
    }

    #[test]
    fn reply_in_place() {
        let mut b = ECHO_REQUEST;
        let mut p = Icmpv4Packet::new_checked(&mut b[..]).unwrap();
        let Icmpv4Repr::EchoRequest {
            ident,
            seq_no,
            data_len,
        } = Icmpv4Repr::parse(&p).unwrap()
        else {
            panic!("not an echo request");
        };
        let reply = Icmpv4Repr::EchoReply {
            ident,
            seq_no,
            data_len,
        };
        reply.emit(&mut p);
        assert!(p.verify_checksum());
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), reply);
        // Only type and checksum changed: 0x5435 + 0x0800.
        assert_eq!(&b[..4], &[0x00, 0x00, 0x5c, 0x35]);
        assert_eq!(&b[4..], &ECHO_REQUEST[4..]);
    }

    #[test]
    fn port_unreachable_inner() {
        let b = port_unreachable();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(p.is_error());
        assert_eq!(p.msg_type(), Icmpv4Message::DstUnreachable);
        assert_eq!(
            Icmpv4DstUnreachable::from(p.msg_code()),
            Icmpv4DstUnreachable::PortUnreachable
        );
        let inner = p.inner_ipv4().unwrap();
        assert_eq!(inner.src_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(inner.dst_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(inner.next_header(), super::super::IpProtocol::Udp);
        assert_eq!(inner.total_len(), 36);
        assert_eq!(
            inner.payload(),
            &[0x9c, 0x40, 0x00, 0x35, 0x00, 0x10, 0x00, 0x00]
        );
        assert_eq!(
            Icmpv4Repr::parse(&p).unwrap(),
            Icmpv4Repr::DstUnreachable {
                code: Icmpv4DstUnreachable::PortUnreachable,
                next_hop_mtu: 0,
                data_len: 28
            }
        );
        // The quote must hold the IPv4 header and 8 bytes.
        for len in 8..36 {
            let p = Icmpv4Packet::new_checked(&b[..len]).unwrap();
            assert!(
                matches!(
                    p.inner_ipv4(),
                    Err(WireError::Truncated {
                        layer: Layer::Icmpv4,
                        required: 36,
                        ..
                    })
                ),
                "len {len}"
            );
        }
        let mut bad = b;
        bad[8] = 0x65;
        assert_eq!(
            Icmpv4Packet::new_checked(&bad[..])
                .unwrap()
                .inner_ipv4()
                .unwrap_err(),
            WireError::Malformed(Layer::Icmpv4, Malformed::BadVersion)
        );
        bad[8] = 0x43;
        assert_eq!(
            Icmpv4Packet::new_checked(&bad[..])
                .unwrap()
                .inner_ipv4()
                .unwrap_err(),
            WireError::Malformed(Layer::Icmpv4, Malformed::BadHeaderLen)
        );
    }

    #[test]
    fn inner_total_len_below_header_plus_quote_is_refused() {
        // Found by fuzzing (fuzz/regressions/wire_ipv4_icmpv4): a quote whose total length
        // says the packet ended inside its transport header left `payload()` shorter than
        // the 8 bytes `inner_ipv4` promises.
        for total in [0u16, 20, 27] {
            let mut b = PORT_UNREACHABLE;
            b[10..12].copy_from_slice(&total.to_be_bytes());
            Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
            let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
            assert_eq!(
                p.inner_ipv4().unwrap_err(),
                WireError::Malformed(Layer::Icmpv4, Malformed::BadTotalLen),
                "total length {total}"
            );
        }
        // The shortest real quote (header + 8) and a longer original still pass.
        for total in [28u16, 36, 1500] {
            let mut b = PORT_UNREACHABLE;
            b[10..12].copy_from_slice(&total.to_be_bytes());
            let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
            let inner = p.inner_ipv4().unwrap();
            assert_eq!(inner.total_len(), total);
            assert_eq!(inner.payload().len(), 8);
        }
    }

    #[test]
    fn every_truncation() {
        for len in 0..ICMPV4_HEADER_LEN {
            assert_eq!(
                Icmpv4Packet::new_checked(&ECHO_REQUEST[..len]).unwrap_err(),
                WireError::truncated(Layer::Icmpv4, 8, len)
            );
        }
        // Past the header, a cut message is caught by the checksum, never a panic.
        for len in ICMPV4_HEADER_LEN..ECHO_REQUEST.len() {
            let p = Icmpv4Packet::new_checked(&ECHO_REQUEST[..len]).unwrap();
            assert_eq!(
                Icmpv4Repr::parse(&p),
                Err(WireError::Malformed(Layer::Icmpv4, Malformed::BadChecksum))
            );
        }
    }

    #[test]
    fn bad_checksum() {
        let mut b = ECHO_REQUEST;
        b[15] ^= 0x40;
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        assert!(!p.verify_checksum());
        assert_eq!(
            Icmpv4Repr::parse(&p),
            Err(WireError::Malformed(Layer::Icmpv4, Malformed::BadChecksum))
        );
    }

    #[test]
    fn emit_echo_request() {
        let repr = Icmpv4Repr::EchoRequest {
            ident: 0x1234,
            seq_no: 1,
            data_len: 8,
        };
        let mut buf = [0xa5u8; 18];
        buf[8..16].copy_from_slice(b"abcdefgh");
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut buf[..]));
        assert_eq!(&buf[..16], &ECHO_REQUEST[..]);
        assert_eq!(&buf[16..], &[0xa5, 0xa5]);
        assert_eq!(repr.buffer_len(), 16);
    }

    #[test]
    fn emit_frag_required_and_time_exceeded() {
        let quote = &PORT_UNREACHABLE[8..];
        let repr = Icmpv4Repr::DstUnreachable {
            code: Icmpv4DstUnreachable::FragRequired,
            next_hop_mtu: 1400,
            data_len: quote.len(),
        };
        let mut buf = [0xa5u8; 36];
        buf[8..].copy_from_slice(quote);
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        assert!(p.verify_checksum());
        assert_eq!(p.next_hop_mtu(), 1400);
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), repr);
        assert_eq!(
            &buf[..8],
            &[0x03, 0x04, buf[2], buf[3], 0x00, 0x00, 0x05, 0x78]
        );

        let repr = Icmpv4Repr::TimeExceeded {
            code: Icmpv4TimeExceeded::TtlExpired,
            data_len: quote.len(),
        };
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        assert_eq!(Icmpv4Repr::parse(&p).unwrap(), repr);
        assert_eq!(&buf[..2], &[0x0b, 0x00]);
        assert_eq!(&buf[4..8], &[0; 4]);

        let repr = Icmpv4Repr::DstUnreachable {
            code: Icmpv4DstUnreachable::AdminProhibited,
            next_hop_mtu: 0,
            data_len: quote.len(),
        };
        let mut p = Icmpv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut p);
        assert_eq!(buf[1], 13);
    }

    #[test]
    fn other_messages() {
        // Timestamp request: kept raw.
        let mut b = [0u8; 20];
        b[0] = 13;
        b[4..8].copy_from_slice(&[0xab, 0xcd, 0x00, 0x01]);
        Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
        let p = Icmpv4Packet::new_checked(&b[..]).unwrap();
        let repr = Icmpv4Repr::parse(&p).unwrap();
        assert_eq!(
            repr,
            Icmpv4Repr::Other {
                msg_type: Icmpv4Message::Timestamp,
                code: 0,
                rest_of_header: 0xabcd_0001,
                data_len: 12
            }
        );
        let mut out = [0xa5u8; 20];
        out[8..].copy_from_slice(&b[8..]);
        repr.emit(&mut Icmpv4Packet::new_unchecked(&mut out[..]));
        assert_eq!(out, b);
        assert_eq!(Icmpv4Message::from(42), Icmpv4Message::Unknown(42));
        for raw in 0..=255u8 {
            assert_eq!(u8::from(Icmpv4Message::from(raw)), raw);
            assert_eq!(u8::from(Icmpv4DstUnreachable::from(raw)), raw);
            assert_eq!(u8::from(Icmpv4TimeExceeded::from(raw)), raw);
        }
        assert_eq!(Icmpv4Message::EchoRequest.to_string(), "EchoRequest");
        assert_eq!(Icmpv4Message::Unknown(42).to_string(), "Icmpv4Message(42)");
    }
}
