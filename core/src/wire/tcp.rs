//! TCP (RFC 9293) over IPv4: header, flags, options.
//!
//! ```text
//!  0               2               4                               8
//! +---------------+---------------+-------------------------------+
//! |  source port  |   dest port   |        sequence number        |
//! +---------------+---------------+-------------------------------+
//! |     acknowledgment number     |off|rsv|flags|  window size    |
//! +---------------+---------------+-------+-------+---------------+
//! |   checksum    |urgent pointer | options (off > 5) ... | payload
//! ```
//!
//! Invariants of a checked [`TcpPacket`]: data offset >= 5 and the whole header (options
//! included) is in the buffer. The view's buffer is the whole segment (build it over
//! [`Ipv4Packet::payload`](super::Ipv4Packet::payload)): the checksum covers the IPv4
//! pseudo-header and all of it.
//!
//! [`TcpOptions`] walks the options without allocating: unknown kinds are skipped by their
//! length, and a malformed length yields one error and ends the walk (never a panic or an
//! endless loop: every step consumes at least one byte).

use core::fmt;
use core::ops;
use std::net::Ipv4Addr;

use super::checksum;
use super::{get_u16, get_u32, put_u16, put_u32, IpProtocol, Layer, Malformed, WireError};

/// Length of a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// Longest TCP header (data offset 15).
pub const TCP_MAX_HEADER_LEN: usize = 60;

/// TCP control flags (the 9 low bits of bytes 12..14).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(u16);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x001);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x002);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x004);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x008);
    /// Acknowledgment field significant.
    pub const ACK: TcpFlags = TcpFlags(0x010);
    /// Urgent pointer field significant.
    pub const URG: TcpFlags = TcpFlags(0x020);
    /// ECN echo.
    pub const ECE: TcpFlags = TcpFlags(0x040);
    /// Congestion window reduced.
    pub const CWR: TcpFlags = TcpFlags(0x080);
    /// ECN nonce (historic, RFC 3540).
    pub const NS: TcpFlags = TcpFlags(0x100);

    const ALL_BITS: u16 = 0x1ff;
    const NAMES: [(TcpFlags, &'static str); 9] = [
        (TcpFlags::FIN, "FIN"),
        (TcpFlags::SYN, "SYN"),
        (TcpFlags::RST, "RST"),
        (TcpFlags::PSH, "PSH"),
        (TcpFlags::ACK, "ACK"),
        (TcpFlags::URG, "URG"),
        (TcpFlags::ECE, "ECE"),
        (TcpFlags::CWR, "CWR"),
        (TcpFlags::NS, "NS"),
    ];

    /// No flag set.
    pub const fn empty() -> Self {
        TcpFlags(0)
    }

    /// The flags of `bits`, ignoring bits above the 9 flag bits.
    pub const fn from_bits_truncate(bits: u16) -> Self {
        TcpFlags(bits & Self::ALL_BITS)
    }

    /// The raw bits.
    pub const fn bits(self) -> u16 {
        self.0
    }

    /// No flag set?
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Are all flags of `other` set?
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Is any flag of `other` set?
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }

    /// Sets or clears the flags of `other`.
    pub fn set(&mut self, other: TcpFlags, value: bool) {
        if value {
            self.insert(other)
        } else {
            self.remove(other)
        }
    }
}

impl ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl ops::BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    /// `SYN|ACK`; `-` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// One TCP option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpOption<'a> {
    /// End of option list (kind 0); the rest of the options area is padding.
    EndOfList,
    /// No-operation padding (kind 1).
    NoOperation,
    /// Maximum segment size (kind 2, length 4).
    MaxSegmentSize(u16),
    /// Window scale shift (kind 3, length 3).
    WindowScale(u8),
    /// SACK permitted (kind 4, length 2).
    SackPermitted,
    /// SACK blocks `(left, right)` (kind 5, length 2 + 8n, n = 1..=4).
    SackRange([Option<(u32, u32)>; 4]),
    /// Timestamps (kind 8, length 10).
    Timestamp {
        /// Timestamp value.
        tsval: u32,
        /// Timestamp echo reply.
        tsecr: u32,
    },
    /// Any other kind, with its data (after kind and length).
    Unknown {
        /// Option kind.
        kind: u8,
        /// Option data.
        data: &'a [u8],
    },
}

impl TcpOption<'_> {
    /// Bytes this option takes on the wire.
    pub fn buffer_len(&self) -> usize {
        match *self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => 4,
            TcpOption::WindowScale(_) => 3,
            TcpOption::SackPermitted => 2,
            TcpOption::SackRange(ranges) => 2 + 8 * ranges.iter().flatten().count(),
            TcpOption::Timestamp { .. } => 10,
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option at the start of `buffer`; returns [`buffer_len`](Self::buffer_len).
    ///
    /// # Panics
    ///
    /// If `buffer` is shorter than `buffer_len()`, or an `Unknown` option's data is longer
    /// than 253 bytes.
    pub fn emit(&self, buffer: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buffer = &mut buffer[..len];
        match *self {
            TcpOption::EndOfList => buffer[0] = 0,
            TcpOption::NoOperation => buffer[0] = 1,
            TcpOption::MaxSegmentSize(mss) => {
                buffer[..2].copy_from_slice(&[2, 4]);
                put_u16(buffer, 2, mss);
            }
            TcpOption::WindowScale(shift) => buffer.copy_from_slice(&[3, 3, shift]),
            TcpOption::SackPermitted => buffer.copy_from_slice(&[4, 2]),
            TcpOption::SackRange(ranges) => {
                buffer[0] = 5;
                buffer[1] = len as u8;
                for (i, (left, right)) in ranges.iter().flatten().enumerate() {
                    put_u32(buffer, 2 + 8 * i, *left);
                    put_u32(buffer, 6 + 8 * i, *right);
                }
            }
            TcpOption::Timestamp { tsval, tsecr } => {
                buffer[..2].copy_from_slice(&[8, 10]);
                put_u32(buffer, 2, tsval);
                put_u32(buffer, 6, tsecr);
            }
            TcpOption::Unknown { kind, data } => {
                buffer[0] = kind;
                buffer[1] = u8::try_from(len).expect("TcpOption::emit: option data too long");
                buffer[2..].copy_from_slice(data);
            }
        }
        len
    }
}

/// Iterator over the options of a TCP header; see the [module docs](self).
///
/// Yields `Err(Malformed(Tcp, BadOption))` once, then ends, if an option's length is below
/// 2, runs past the options area, or does not fit its kind.
#[derive(Debug, Clone)]
pub struct TcpOptions<'a> {
    data: &'a [u8],
}

impl<'a> TcpOptions<'a> {
    /// Walks `data`, the options area of a TCP header.
    pub const fn new(data: &'a [u8]) -> Self {
        TcpOptions { data }
    }

    fn fail(&mut self) -> Option<Result<TcpOption<'a>, WireError>> {
        self.data = &[];
        Some(Err(WireError::Malformed(Layer::Tcp, Malformed::BadOption)))
    }
}

impl<'a> Iterator for TcpOptions<'a> {
    type Item = Result<TcpOption<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        let (&kind, rest) = data.split_first()?;
        match kind {
            0 => {
                self.data = &[];
                return Some(Ok(TcpOption::EndOfList));
            }
            1 => {
                self.data = rest;
                return Some(Ok(TcpOption::NoOperation));
            }
            _ => {}
        }
        let Some(&length) = rest.first() else {
            return self.fail();
        };
        let length = usize::from(length);
        if length < 2 || length > data.len() {
            return self.fail();
        }
        let body = &data[2..length];
        self.data = &data[length..];
        let option = match (kind, body.len()) {
            (2, 2) => TcpOption::MaxSegmentSize(get_u16(body, 0)),
            (3, 1) => TcpOption::WindowScale(body[0]),
            (4, 0) => TcpOption::SackPermitted,
            (5, 8 | 16 | 24 | 32) => {
                let mut ranges = [None; 4];
                for (slot, block) in ranges.iter_mut().zip(body.chunks_exact(8)) {
                    *slot = Some((get_u32(block, 0), get_u32(block, 4)));
                }
                TcpOption::SackRange(ranges)
            }
            (8, 8) => TcpOption::Timestamp {
                tsval: get_u32(body, 0),
                tsecr: get_u32(body, 4),
            },
            (2..=5 | 8, _) => return self.fail(),
            (kind, _) => TcpOption::Unknown { kind, data: body },
        };
        Some(Ok(option))
    }
}

impl core::iter::FusedIterator for TcpOptions<'_> {}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    /// Data offset (4 bits), reserved (3 bits), NS, then the other flags.
    pub const FLAGS: usize = 12;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
}

/// A zero-copy view of a TCP segment.
#[derive(Debug, Clone)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps `buffer` without checking it; getters may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    ///
    /// # Errors
    ///
    /// `Truncated { layer: Tcp, .. }` if the buffer is shorter than 20 bytes or than the
    /// data offset; `Malformed(Tcp, BadHeaderLen)` if the data offset is below 5.
    pub fn new_checked(buffer: T) -> Result<Self, WireError> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks the data offset against the buffer.
    ///
    /// # Errors
    ///
    /// As [`new_checked`](Self::new_checked).
    pub fn check_len(&self) -> Result<(), WireError> {
        let len = self.buffer.as_ref().len();
        if len < TCP_HEADER_LEN {
            return Err(WireError::truncated(Layer::Tcp, TCP_HEADER_LEN, len));
        }
        let header_len = self.header_len();
        if header_len < TCP_HEADER_LEN {
            return Err(WireError::Malformed(Layer::Tcp, Malformed::BadHeaderLen));
        }
        if len < header_len {
            return Err(WireError::truncated(Layer::Tcp, header_len, len));
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
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

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number (meaningful with ACK).
    #[inline]
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset * 4), options included.
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::FLAGS] >> 4) * 4
    }

    /// All control flags.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_truncate(get_u16(self.buffer.as_ref(), field::FLAGS))
    }

    /// FIN flag.
    pub fn fin(&self) -> bool {
        self.flags().contains(TcpFlags::FIN)
    }

    /// SYN flag.
    pub fn syn(&self) -> bool {
        self.flags().contains(TcpFlags::SYN)
    }

    /// RST flag.
    pub fn rst(&self) -> bool {
        self.flags().contains(TcpFlags::RST)
    }

    /// PSH flag.
    pub fn psh(&self) -> bool {
        self.flags().contains(TcpFlags::PSH)
    }

    /// ACK flag.
    pub fn ack(&self) -> bool {
        self.flags().contains(TcpFlags::ACK)
    }

    /// URG flag.
    pub fn urg(&self) -> bool {
        self.flags().contains(TcpFlags::URG)
    }

    /// ECE flag.
    pub fn ece(&self) -> bool {
        self.flags().contains(TcpFlags::ECE)
    }

    /// CWR flag.
    pub fn cwr(&self) -> bool {
        self.flags().contains(TcpFlags::CWR)
    }

    /// Window size (unscaled).
    #[inline]
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer (meaningful with URG).
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// The options area (between the fixed header and the data offset), uninterpreted.
    #[inline]
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = self.header_len().min(data.len());
        data.get(TCP_HEADER_LEN..end).unwrap_or(&[])
    }

    /// An iterator over the options.
    #[inline]
    pub fn options_iter(&self) -> TcpOptions<'_> {
        TcpOptions::new(self.options())
    }

    /// The payload after the options, to the end of the buffer.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        data.get(self.header_len()..).unwrap_or(&[])
    }

    fn pseudo_sum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> u32 {
        let data = self.buffer.as_ref();
        // A segment is at most 65 515 bytes inside IPv4; longer buffers cannot verify.
        let length = u16::try_from(data.len()).unwrap_or(u16::MAX);
        checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Tcp, length)
            + checksum::sum(data)
    }

    /// Does the checksum over the pseudo-header and the whole buffer verify?
    #[inline]
    pub fn verify_checksum(&self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) -> bool {
        checksum::fold(self.pseudo_sum(src_addr, dst_addr)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
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

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        put_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        put_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    /// Sets the header length in bytes (rounded down to a multiple of 4, at most 60),
    /// keeping the flags.
    #[inline]
    pub fn set_header_len(&mut self, bytes: usize) {
        let offset = (bytes / 4).min(15) as u8;
        let b = &mut self.buffer.as_mut()[field::FLAGS];
        *b = (*b & 0x0f) | (offset << 4);
    }

    /// Sets all control flags, keeping the data offset and reserved bits.
    #[inline]
    pub fn set_flags(&mut self, flags: TcpFlags) {
        let raw = get_u16(self.buffer.as_ref(), field::FLAGS);
        let raw = (raw & !TcpFlags::ALL_BITS) | flags.bits();
        put_u16(self.buffer.as_mut(), field::FLAGS, raw);
    }

    /// Sets the window size.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::WIN_SIZE, value);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        put_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Computes the checksum over the pseudo-header and the whole buffer and writes it.
    #[inline]
    pub fn fill_checksum(&mut self, src_addr: Ipv4Addr, dst_addr: Ipv4Addr) {
        self.set_checksum(0);
        let value = !checksum::fold(self.pseudo_sum(src_addr, dst_addr));
        self.set_checksum(value);
    }

    /// The options area, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = self.header_len();
        let data = self.buffer.as_mut();
        let end = end.min(data.len());
        data.get_mut(TCP_HEADER_LEN..end).unwrap_or(&mut [])
    }

    /// The payload, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = self.header_len();
        self.buffer.as_mut().get_mut(start..).unwrap_or(&mut [])
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// A TCP header with the options a stack negotiates; the payload is referred to by length.
///
/// SACK blocks and unknown options of a parsed segment are not kept (read them with
/// [`TcpPacket::options_iter`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq_number: u32,
    /// Acknowledgment number (kept as is, whether or not ACK is set).
    pub ack_number: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// Window size (unscaled).
    pub window_len: u16,
    /// Urgent pointer.
    pub urgent_at: u16,
    /// Maximum segment size option.
    pub max_seg_size: Option<u16>,
    /// Window scale option.
    pub window_scale: Option<u8>,
    /// SACK-permitted option.
    pub sack_permitted: bool,
    /// Timestamps option `(tsval, tsecr)`.
    pub timestamp: Option<(u32, u32)>,
    /// Payload length.
    pub payload_len: usize,
}

impl TcpRepr {
    /// Reads a checked view: verifies the checksum and walks the options.
    ///
    /// # Errors
    ///
    /// `Malformed(Tcp, BadChecksum)`, or `Malformed(Tcp, BadOption)` for a malformed option.
    pub fn parse<T: AsRef<[u8]>>(
        packet: &TcpPacket<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
    ) -> Result<Self, WireError> {
        packet.check_len()?;
        if !packet.verify_checksum(src_addr, dst_addr) {
            return Err(WireError::Malformed(Layer::Tcp, Malformed::BadChecksum));
        }
        let mut repr = TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq_number: packet.seq_number(),
            ack_number: packet.ack_number(),
            flags: packet.flags(),
            window_len: packet.window_len(),
            urgent_at: packet.urgent_at(),
            max_seg_size: None,
            window_scale: None,
            sack_permitted: false,
            timestamp: None,
            payload_len: packet.payload().len(),
        };
        for option in packet.options_iter() {
            match option? {
                TcpOption::MaxSegmentSize(mss) => repr.max_seg_size = Some(mss),
                TcpOption::WindowScale(shift) => repr.window_scale = Some(shift),
                TcpOption::SackPermitted => repr.sack_permitted = true,
                TcpOption::Timestamp { tsval, tsecr } => repr.timestamp = Some((tsval, tsecr)),
                TcpOption::EndOfList
                | TcpOption::NoOperation
                | TcpOption::SackRange(_)
                | TcpOption::Unknown { .. } => {}
            }
        }
        Ok(repr)
    }

    /// Header length with the options [`emit`](Self::emit) writes (a multiple of 4):
    /// 20, plus 4 for MSS, 12 for timestamps (with SACK-permitted packed in), 4 for
    /// SACK-permitted alone, 4 for window scale.
    pub const fn header_len(&self) -> usize {
        let mut len = TCP_HEADER_LEN;
        if self.max_seg_size.is_some() {
            len += 4;
        }
        if self.timestamp.is_some() {
            len += 12;
        } else if self.sack_permitted {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 4;
        }
        len
    }

    /// Header plus payload: the segment length.
    pub const fn buffer_len(&self) -> usize {
        self.header_len() + self.payload_len
    }

    /// Writes the header and options (Linux SYN layout: MSS, SACK-permitted + timestamps
    /// or NOPs, NOP + window scale), then the checksum over the pseudo-header, the header
    /// and the `payload_len` bytes already in the buffer after it (write the payload first).
    ///
    /// # Panics
    ///
    /// If the buffer is shorter than `buffer_len()`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src_addr: Ipv4Addr,
        dst_addr: Ipv4Addr,
    ) {
        let header_len = self.header_len();
        let segment = &mut packet.buffer.as_mut()[..self.buffer_len()];
        put_u16(segment, field::SRC_PORT, self.src_port);
        put_u16(segment, field::DST_PORT, self.dst_port);
        put_u32(segment, field::SEQ_NUM, self.seq_number);
        put_u32(segment, field::ACK_NUM, self.ack_number);
        put_u16(
            segment,
            field::FLAGS,
            ((header_len as u16 / 4) << 12) | self.flags.bits(),
        );
        put_u16(segment, field::WIN_SIZE, self.window_len);
        put_u16(segment, field::CHECKSUM, 0);
        put_u16(segment, field::URGENT, self.urgent_at);

        let options = &mut segment[TCP_HEADER_LEN..header_len];
        let mut at = 0;
        if let Some(mss) = self.max_seg_size {
            at += TcpOption::MaxSegmentSize(mss).emit(&mut options[at..]);
        }
        match (self.sack_permitted, self.timestamp) {
            (sack, Some((tsval, tsecr))) => {
                if sack {
                    at += TcpOption::SackPermitted.emit(&mut options[at..]);
                } else {
                    options[at..at + 2].copy_from_slice(&[1, 1]);
                    at += 2;
                }
                at += TcpOption::Timestamp { tsval, tsecr }.emit(&mut options[at..]);
            }
            (true, None) => {
                options[at..at + 2].copy_from_slice(&[1, 1]);
                at += 2;
                at += TcpOption::SackPermitted.emit(&mut options[at..]);
            }
            (false, None) => {}
        }
        if let Some(shift) = self.window_scale {
            at += TcpOption::NoOperation.emit(&mut options[at..]);
            at += TcpOption::WindowScale(shift).emit(&mut options[at..]);
        }
        debug_assert_eq!(at, options.len());

        let length = u16::try_from(segment.len()).unwrap_or(u16::MAX);
        let sum = checksum::pseudo_header_v4(src_addr, dst_addr, IpProtocol::Tcp, length)
            + checksum::sum(segment);
        put_u16(segment, field::CHECKSUM, !checksum::fold(sum));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const DST: Ipv4Addr = Ipv4Addr::new(93, 184, 216, 34);

    /// Linux SYN 10.0.2.15:51234 -> 93.184.216.34:80, options MSS 1460, SACK-permitted,
    /// timestamps, NOP, window scale 7 (checksum filled in by `syn()`).
    static SYN: [u8; 40] = [
        0xc8, 0x22, 0x00, 0x50, // ports
        0x5e, 0x7a, 0x10, 0x01, // seq
        0x00, 0x00, 0x00, 0x00, // ack
        0xa0, 0x02, 0xfa, 0xf0, // offset 10, SYN, window 64240
        0x00, 0x00, 0x00, 0x00, // checksum, urgent
        0x02, 0x04, 0x05, 0xb4, // MSS 1460
        0x04, 0x02, // SACK permitted
        0x08, 0x0a, 0x00, 0x01, 0xe2, 0x40, 0x00, 0x00, 0x00, 0x00, // TS 123456, 0
        0x01, // NOP
        0x03, 0x03, 0x07, // WS 7
    ];

    fn syn() -> [u8; 40] {
        let mut b = SYN;
        TcpPacket::new_unchecked(&mut b[..]).fill_checksum(SRC, DST);
        b
    }

    fn syn_repr() -> TcpRepr {
        TcpRepr {
            src_port: 51234,
            dst_port: 80,
            seq_number: 0x5e7a_1001,
            ack_number: 0,
            flags: TcpFlags::SYN,
            window_len: 64240,
            urgent_at: 0,
            max_seg_size: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamp: Some((123_456, 0)),
            payload_len: 0,
        }
    }

    #[test]
    fn parse_syn() {
        let b = syn();
        let p = TcpPacket::new_checked(&b[..]).unwrap();
        assert_eq!(p.src_port(), 51234);
        assert_eq!(p.dst_port(), 80);
        assert_eq!(p.seq_number(), 0x5e7a_1001);
        assert_eq!(p.ack_number(), 0);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN);
        assert!(p.syn() && !p.ack() && !p.fin() && !p.rst() && !p.psh());
        assert!(!p.urg() && !p.ece() && !p.cwr());
        assert_eq!(p.window_len(), 64240);
        assert_eq!(p.urgent_at(), 0);
        assert_eq!(p.options(), &SYN[20..]);
        assert!(p.payload().is_empty());
        assert!(p.verify_checksum(SRC, DST));
        let options: Vec<_> = p.options_iter().collect::<Result<_, _>>().unwrap();
        assert_eq!(
            options,
            [
                TcpOption::MaxSegmentSize(1460),
                TcpOption::SackPermitted,
                TcpOption::Timestamp {
                    tsval: 123_456,
                    tsecr: 0
                },
                TcpOption::NoOperation,
                TcpOption::WindowScale(7),
            ]
        );
        assert_eq!(TcpRepr::parse(&p, SRC, DST).unwrap(), syn_repr());
        assert_eq!(
            TcpRepr::parse(&p, SRC, Ipv4Addr::new(1, 1, 1, 1)),
            Err(WireError::Malformed(Layer::Tcp, Malformed::BadChecksum))
        );
    }

    #[test]
    fn every_truncation() {
        let b = syn();
        for len in 0..b.len() {
            match TcpPacket::new_checked(&b[..len]) {
                Err(WireError::Truncated {
                    layer: Layer::Tcp,
                    required,
                    len: got,
                }) => {
                    assert_eq!(got, len);
                    assert_eq!(required, if len < 20 { 20 } else { 40 });
                }
                other => panic!("len {len}: {other:?}"),
            }
        }
    }

    #[test]
    fn bad_data_offset() {
        for offset in 0..5u8 {
            let mut b = syn();
            b[12] = (offset << 4) | (b[12] & 0x0f);
            assert_eq!(
                TcpPacket::new_checked(&b[..]).unwrap_err(),
                WireError::Malformed(Layer::Tcp, Malformed::BadHeaderLen)
            );
        }
        let mut b = syn();
        b[12] = 0xf0;
        assert_eq!(
            TcpPacket::new_checked(&b[..]).unwrap_err(),
            WireError::truncated(Layer::Tcp, 60, 40)
        );
    }

    fn walk(options: &[u8]) -> Vec<Result<TcpOption<'_>, WireError>> {
        TcpOptions::new(options).collect()
    }

    #[test]
    fn options_edge_cases() {
        let bad = Err(WireError::Malformed(Layer::Tcp, Malformed::BadOption));
        // Zero length would loop forever if trusted.
        assert_eq!(walk(&[0x02, 0x00, 0x05, 0xb4]), [bad]);
        // Length 1 likewise.
        assert_eq!(walk(&[0x01, 0x1e, 0x01]), [Ok(TcpOption::NoOperation), bad]);
        // Length past the end.
        assert_eq!(walk(&[0x08, 0x0a, 0, 0, 0, 0]), [bad]);
        // Kind without a length byte.
        assert_eq!(walk(&[0x01, 0x02]), [Ok(TcpOption::NoOperation), bad]);
        // Known kind with the wrong length.
        assert_eq!(walk(&[0x02, 0x03, 0x05, 0x01]), [bad]);
        assert_eq!(walk(&[0x05, 0x03, 0x00]), [bad]);
        // Unknown kinds are skipped by their length.
        assert_eq!(
            walk(&[0xfe, 0x04, 0xaa, 0xbb, 0x03, 0x03, 0x02]),
            [
                Ok(TcpOption::Unknown {
                    kind: 0xfe,
                    data: &[0xaa, 0xbb]
                }),
                Ok(TcpOption::WindowScale(2))
            ]
        );
        // End of list stops the walk; the rest is padding.
        assert_eq!(walk(&[0x00, 0x02, 0x00]), [Ok(TcpOption::EndOfList)]);
        // SACK with two blocks.
        let sack = [0x05, 0x12, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4];
        assert_eq!(
            walk(&sack),
            [Ok(TcpOption::SackRange([
                Some((1, 2)),
                Some((3, 4)),
                None,
                None
            ]))]
        );
        assert!(walk(&[]).is_empty());
    }

    #[test]
    fn bad_option_fails_repr_parse() {
        let mut b = syn();
        b[21] = 0; // MSS length 0
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        p.fill_checksum(SRC, DST);
        assert_eq!(
            TcpRepr::parse(&p, SRC, DST),
            Err(WireError::Malformed(Layer::Tcp, Malformed::BadOption))
        );
    }

    #[test]
    fn emit_syn() {
        let repr = syn_repr();
        assert_eq!(repr.header_len(), 40);
        let mut buf = [0xa5u8; 42];
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST);
        assert_eq!(&buf[..40], &syn()[..]);
        assert_eq!(&buf[40..], &[0xa5, 0xa5]);
    }

    #[test]
    fn emit_other_layouts() {
        let cases = [
            (None, false, None, None, &[][..]),
            (Some(1460), false, None, None, &[2, 4, 5, 180][..]),
            (None, true, None, None, &[1, 1, 4, 2][..]),
            (
                None,
                false,
                Some((1, 2)),
                None,
                &[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2][..],
            ),
            (None, false, None, Some(14), &[1, 3, 3, 14][..]),
        ];
        for (mss, sack, ts, ws, expected) in cases {
            let repr = TcpRepr {
                src_port: 1,
                dst_port: 2,
                seq_number: 3,
                ack_number: 4,
                flags: TcpFlags::ACK | TcpFlags::PSH,
                window_len: 5,
                urgent_at: 0,
                max_seg_size: mss,
                window_scale: ws,
                sack_permitted: sack,
                timestamp: ts,
                payload_len: 3,
            };
            let mut buf = [0xa5u8; 80];
            let header_len = repr.header_len();
            buf[header_len..header_len + 3].copy_from_slice(b"abc");
            repr.emit(
                &mut TcpPacket::new_unchecked(&mut buf[..repr.buffer_len()]),
                SRC,
                DST,
            );
            assert_eq!(&buf[20..header_len], expected);
            assert!(buf[repr.buffer_len()..].iter().all(|&b| b == 0xa5));
            let p = TcpPacket::new_checked(&buf[..repr.buffer_len()]).unwrap();
            assert_eq!(p.payload(), b"abc");
            assert_eq!(TcpRepr::parse(&p, SRC, DST).unwrap(), repr);
        }
    }

    #[test]
    fn setters() {
        let mut b = syn();
        let mut p = TcpPacket::new_checked(&mut b[..]).unwrap();
        p.set_src_port(1);
        p.set_dst_port(2);
        p.set_seq_number(3);
        p.set_ack_number(4);
        p.set_flags(TcpFlags::SYN | TcpFlags::ACK | TcpFlags::NS);
        p.set_window_len(5);
        p.set_urgent_at(6);
        p.options_mut()[0] = 1;
        p.fill_checksum(SRC, DST);
        assert_eq!(p.header_len(), 40);
        assert_eq!(p.flags(), TcpFlags::SYN | TcpFlags::ACK | TcpFlags::NS);
        assert_eq!(
            (p.src_port(), p.dst_port(), p.seq_number(), p.ack_number()),
            (1, 2, 3, 4)
        );
        assert_eq!((p.window_len(), p.urgent_at()), (5, 6));
        assert!(p.verify_checksum(SRC, DST));
        p.set_header_len(20);
        assert!(p.options().is_empty());
        assert_eq!(p.payload_mut().len(), 20);
        assert_eq!(p.flags(), TcpFlags::SYN | TcpFlags::ACK | TcpFlags::NS);
    }

    #[test]
    fn flags() {
        let mut f = TcpFlags::SYN | TcpFlags::ACK;
        assert_eq!(f.to_string(), "SYN|ACK");
        assert_eq!(format!("{f:?}"), "TcpFlags(SYN|ACK)");
        assert!(f.contains(TcpFlags::SYN) && f.intersects(TcpFlags::ACK | TcpFlags::FIN));
        f.set(TcpFlags::SYN, false);
        f |= TcpFlags::FIN;
        assert_eq!(f, TcpFlags::FIN | TcpFlags::ACK);
        f.remove(TcpFlags::ACK);
        assert_eq!(f & TcpFlags::FIN, TcpFlags::FIN);
        assert_eq!(TcpFlags::empty().to_string(), "-");
        assert_eq!(TcpFlags::from_bits_truncate(0xffff).bits(), 0x1ff);
    }

    #[test]
    fn option_emit_round_trip() {
        let options = [
            TcpOption::EndOfList,
            TcpOption::NoOperation,
            TcpOption::MaxSegmentSize(536),
            TcpOption::WindowScale(14),
            TcpOption::SackPermitted,
            TcpOption::SackRange([Some((1, 2)), Some((3, 4)), Some((5, 6)), Some((7, 8))]),
            TcpOption::Timestamp {
                tsval: 9,
                tsecr: 10,
            },
            TcpOption::Unknown {
                kind: 30,
                data: &[1, 2, 3],
            },
        ];
        for option in options {
            let mut buf = [0u8; 40];
            let len = option.emit(&mut buf);
            assert_eq!(len, option.buffer_len());
            let mut it = TcpOptions::new(&buf[..len]);
            assert_eq!(it.next(), Some(Ok(option)));
            assert_eq!(it.next(), None);
        }
    }
}
