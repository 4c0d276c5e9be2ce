//! DHCP/BOOTP messages (RFC 2131, RFC 2132, RFC 951): a zero-copy view and a `Copy` repr.
//!
//! [`DhcpPacket`] is a checked view over the UDP payload of a DHCP message; [`DhcpRepr`]
//! is the small value a DHCP server reads and writes. Neither allocates.
//!
//! Layout (RFC 2131 figure 1), offsets into the UDP payload:
//!
//! ```text
//!   0 op | 1 htype | 2 hlen | 3 hops | 4..8 xid | 8..10 secs | 10..12 flags
//!  12 ciaddr | 16 yiaddr | 20 siaddr | 24 giaddr | 28..44 chaddr
//!  44..108 sname | 108..236 file | 236..240 magic cookie 99.130.83.99 | 240.. options
//! ```
//!
//! Invariants and choices:
//! - [`DhcpPacket::new_checked`] accepts a buffer only if it holds the 240-byte fixed part
//!   and the magic cookie; after that every getter is in bounds, so no getter panics.
//! - The options iterator ([`DhcpOptions`]) skips pad (0), stops at end (255) or at the end
//!   of the buffer (a missing end option is tolerated, as most servers do), and yields an
//!   error, once, for an option whose length byte or data runs past the buffer.
//! - Option overload (52, RFC 2132 9.3) is **ignored**: options carried in `sname`/`file`
//!   are not read, and [`DhcpRepr::emit`] never overloads. Clients put everything a server
//!   needs in the options field; our replies always fit in it (at most 548 bytes of
//!   payload with every inline field full, the size RFC 2131 says every client accepts).
//! - Long options split into several instances (RFC 3396) are not concatenated: the last
//!   instance wins.
//! - Only Ethernet clients are represented (`htype` 1, `hlen` 6): [`DhcpRepr::parse`]
//!   rejects anything else.
//! - Inline fields of [`DhcpRepr`] have fixed capacities ([`CLIENT_ID_MAX`],
//!   [`HOSTNAME_MAX`], ...). An over-long client identifier is an error (it keys leases and
//!   must be echoed unaltered, so it must not be truncated); an over-long host name, domain
//!   name or message is dropped (`None`); a parameter request list keeps its first
//!   [`PARAMETER_LIST_MAX`] codes; the DNS server list its first [`DNS_SERVERS_MAX`]
//!   addresses; the router list its first address.
//! - [`DhcpRepr::emit`] writes options in one stable order (see [`DhcpRepr::emit`]) and pads
//!   the payload with zeros to at least [`BOOTP_MIN_LEN`] (300) bytes.

use core::fmt;
use std::net::Ipv4Addr;

use super::{EthernetAddress, Layer, Malformed, WireError};

/// The UDP port DHCP servers listen on.
pub const SERVER_PORT: u16 = 67;
/// The UDP port DHCP clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// The magic cookie that opens the options field (RFC 2131 3, RFC 1497).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Length of the fixed part plus the magic cookie: the shortest valid DHCP payload.
pub const HEADER_LEN: usize = field::OPTIONS;
/// The BOOTP minimum payload length (RFC 951 / RFC 1542 2.1); replies are padded to it.
pub const BOOTP_MIN_LEN: usize = 300;
/// The largest payload every client must accept: 576-byte IP datagram minus IP and UDP.
pub const MIN_MAX_MESSAGE_LEN: usize = 548;
/// The `flags` bit asking for a broadcast reply (RFC 2131 2, figure 2).
pub const FLAG_BROADCAST: u16 = 0x8000;

/// Capacity of [`DhcpRepr::client_identifier`] (option 61), in bytes.
pub const CLIENT_ID_MAX: usize = 64;
/// Capacity of [`DhcpRepr::hostname`] (option 12), in bytes.
pub const HOSTNAME_MAX: usize = 64;
/// Capacity of [`DhcpRepr::domain_name`] (option 15), in bytes.
pub const DOMAIN_NAME_MAX: usize = 64;
/// Capacity of [`DhcpRepr::message`] (option 56), in bytes.
pub const MESSAGE_MAX: usize = 64;
/// Capacity of [`DhcpRepr::parameter_request_list`] (option 55), in codes.
pub const PARAMETER_LIST_MAX: usize = 32;
/// Capacity of [`DhcpRepr::dns_servers`] (option 6), in addresses.
pub const DNS_SERVERS_MAX: usize = 4;

/// Byte ranges of the fixed part.
#[allow(missing_docs)]
pub mod field {
    use core::ops::Range;

    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Range<usize> = 4..8;
    pub const SECS: Range<usize> = 8..10;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const SIADDR: Range<usize> = 20..24;
    pub const GIADDR: Range<usize> = 24..28;
    pub const CHADDR: Range<usize> = 28..44;
    pub const SNAME: Range<usize> = 44..108;
    pub const FILE: Range<usize> = 108..236;
    pub const MAGIC: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

/// Option codes this module reads or writes (RFC 2132).
#[allow(missing_docs)]
pub mod option {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVERS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_IDENTIFIER: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_IDENTIFIER: u8 = 61;
    pub const END: u8 = 255;
}

type Result<T> = core::result::Result<T, WireError>;

const fn truncated(required: usize, len: usize) -> WireError {
    WireError::truncated(Layer::Dhcp, required, len)
}

const fn malformed(kind: Malformed) -> WireError {
    WireError::Malformed(Layer::Dhcp, kind)
}

/// BOOTP `op` (RFC 951): request from a client or reply from a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhcpOpcode {
    /// BOOTREQUEST (1).
    Request,
    /// BOOTREPLY (2).
    Reply,
    /// Any other value.
    Unknown(u8),
}

impl From<u8> for DhcpOpcode {
    fn from(v: u8) -> Self {
        match v {
            1 => DhcpOpcode::Request,
            2 => DhcpOpcode::Reply,
            other => DhcpOpcode::Unknown(other),
        }
    }
}

impl From<DhcpOpcode> for u8 {
    fn from(v: DhcpOpcode) -> u8 {
        match v {
            DhcpOpcode::Request => 1,
            DhcpOpcode::Reply => 2,
            DhcpOpcode::Unknown(other) => other,
        }
    }
}

/// The DHCP message type (option 53, RFC 2132 9.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DhcpMessageType {
    /// DHCPDISCOVER (1).
    Discover,
    /// DHCPOFFER (2).
    Offer,
    /// DHCPREQUEST (3).
    Request,
    /// DHCPDECLINE (4).
    Decline,
    /// DHCPACK (5).
    Ack,
    /// DHCPNAK (6).
    Nak,
    /// DHCPRELEASE (7).
    Release,
    /// DHCPINFORM (8).
    Inform,
    /// Any other value (never a parse error).
    Unknown(u8),
}

impl DhcpMessageType {
    /// The `op` this message type travels with: BOOTREPLY for OFFER, ACK and NAK,
    /// BOOTREQUEST otherwise (`None` for unknown types, which may use either).
    pub fn opcode(self) -> Option<DhcpOpcode> {
        match self {
            DhcpMessageType::Offer | DhcpMessageType::Ack | DhcpMessageType::Nak => {
                Some(DhcpOpcode::Reply)
            }
            DhcpMessageType::Unknown(_) => None,
            _ => Some(DhcpOpcode::Request),
        }
    }
}

impl From<u8> for DhcpMessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => DhcpMessageType::Discover,
            2 => DhcpMessageType::Offer,
            3 => DhcpMessageType::Request,
            4 => DhcpMessageType::Decline,
            5 => DhcpMessageType::Ack,
            6 => DhcpMessageType::Nak,
            7 => DhcpMessageType::Release,
            8 => DhcpMessageType::Inform,
            other => DhcpMessageType::Unknown(other),
        }
    }
}

impl From<DhcpMessageType> for u8 {
    fn from(v: DhcpMessageType) -> u8 {
        match v {
            DhcpMessageType::Discover => 1,
            DhcpMessageType::Offer => 2,
            DhcpMessageType::Request => 3,
            DhcpMessageType::Decline => 4,
            DhcpMessageType::Ack => 5,
            DhcpMessageType::Nak => 6,
            DhcpMessageType::Release => 7,
            DhcpMessageType::Inform => 8,
            DhcpMessageType::Unknown(other) => other,
        }
    }
}

/// A zero-copy view of a DHCP message (the UDP payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

fn ipv4_at(data: &[u8], start: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        data[start],
        data[start + 1],
        data[start + 2],
        data[start + 3],
    )
}

impl<T: AsRef<[u8]>> DhcpPacket<T> {
    /// Wraps a buffer without checking it; getters may panic if it is too short. Use
    /// [`DhcpPacket::new_checked`] for untrusted bytes.
    pub const fn new_unchecked(buffer: T) -> Self {
        DhcpPacket { buffer }
    }

    /// Wraps a buffer after [`DhcpPacket::check`]: never panics, on any input.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if shorter than [`HEADER_LEN`], [`Malformed::BadMagic`] if
    /// the cookie is wrong (both with [`Layer::Dhcp`]).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check()?;
        Ok(packet)
    }

    /// Checks the length and the magic cookie (options are checked while iterating).
    ///
    /// # Errors
    /// As [`DhcpPacket::new_checked`].
    pub fn check(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(truncated(HEADER_LEN, len));
        }
        if self.magic_cookie() != MAGIC_COOKIE {
            return Err(malformed(Malformed::BadMagic));
        }
        Ok(())
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// `op`: BOOTREQUEST or BOOTREPLY.
    pub fn op(&self) -> DhcpOpcode {
        DhcpOpcode::from(self.buffer.as_ref()[field::OP])
    }

    /// `htype`: hardware address type (1 = Ethernet).
    pub fn htype(&self) -> u8 {
        self.buffer.as_ref()[field::HTYPE]
    }

    /// `hlen`: hardware address length (6 for Ethernet).
    pub fn hlen(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// `hops`: relay agent hop count.
    pub fn hops(&self) -> u8 {
        self.buffer.as_ref()[field::HOPS]
    }

    /// `xid`: the client's transaction id.
    pub fn xid(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::XID];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// `secs`: seconds since the client began acquisition or renewal.
    pub fn secs(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::SECS];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// `flags` (only [`FLAG_BROADCAST`] is defined).
    pub fn flags(&self) -> u16 {
        let d = &self.buffer.as_ref()[field::FLAGS];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Whether the broadcast flag is set.
    pub fn broadcast(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }

    /// `ciaddr`: the client's address, when it has one it can answer ARP for.
    pub fn ciaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::CIADDR.start)
    }

    /// `yiaddr`: "your" address, assigned by the server.
    pub fn yiaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::YIADDR.start)
    }

    /// `siaddr`: next server to use in bootstrap.
    pub fn siaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::SIADDR.start)
    }

    /// `giaddr`: relay agent address.
    pub fn giaddr(&self) -> Ipv4Addr {
        ipv4_at(self.buffer.as_ref(), field::GIADDR.start)
    }

    /// `chaddr`: the 16-byte client hardware address field.
    pub fn chaddr(&self) -> &[u8] {
        &self.buffer.as_ref()[field::CHADDR]
    }

    /// The first six bytes of `chaddr`: an Ethernet client's MAC.
    pub fn client_hardware_address(&self) -> EthernetAddress {
        let d = &self.buffer.as_ref()[field::CHADDR];
        EthernetAddress([d[0], d[1], d[2], d[3], d[4], d[5]])
    }

    /// The four bytes where the magic cookie belongs.
    pub fn magic_cookie(&self) -> [u8; 4] {
        let d = &self.buffer.as_ref()[field::MAGIC];
        [d[0], d[1], d[2], d[3]]
    }

    /// The raw options region (everything after the cookie).
    pub fn options_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[field::OPTIONS..]
    }

    /// An allocation-free iterator over the options (see [`DhcpOptions`]).
    pub fn options(&self) -> DhcpOptions<'_> {
        DhcpOptions::new(self.options_bytes())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> DhcpPacket<T> {
    /// Sets `op`.
    pub fn set_op(&mut self, v: DhcpOpcode) {
        self.buffer.as_mut()[field::OP] = v.into();
    }

    /// Sets `htype`.
    pub fn set_htype(&mut self, v: u8) {
        self.buffer.as_mut()[field::HTYPE] = v;
    }

    /// Sets `hlen`.
    pub fn set_hlen(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }

    /// Sets `hops`.
    pub fn set_hops(&mut self, v: u8) {
        self.buffer.as_mut()[field::HOPS] = v;
    }

    /// Sets `xid`.
    pub fn set_xid(&mut self, v: u32) {
        self.buffer.as_mut()[field::XID].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets `secs`.
    pub fn set_secs(&mut self, v: u16) {
        self.buffer.as_mut()[field::SECS].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets `flags`.
    pub fn set_flags(&mut self, v: u16) {
        self.buffer.as_mut()[field::FLAGS].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets `ciaddr`.
    pub fn set_ciaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::CIADDR].copy_from_slice(&v.octets());
    }

    /// Sets `yiaddr`.
    pub fn set_yiaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::YIADDR].copy_from_slice(&v.octets());
    }

    /// Sets `siaddr`.
    pub fn set_siaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::SIADDR].copy_from_slice(&v.octets());
    }

    /// Sets `giaddr`.
    pub fn set_giaddr(&mut self, v: Ipv4Addr) {
        self.buffer.as_mut()[field::GIADDR].copy_from_slice(&v.octets());
    }

    /// Sets `chaddr` to an Ethernet MAC followed by ten zero bytes.
    pub fn set_client_hardware_address(&mut self, mac: EthernetAddress) {
        let d = &mut self.buffer.as_mut()[field::CHADDR];
        d[..6].copy_from_slice(mac.as_bytes());
        d[6..].fill(0);
    }

    /// Zeroes `sname` and `file` (no overload, no boot file).
    pub fn clear_sname_file(&mut self) {
        let d = self.buffer.as_mut();
        d[field::SNAME].fill(0);
        d[field::FILE].fill(0);
    }

    /// Writes the magic cookie.
    pub fn set_magic_cookie(&mut self) {
        self.buffer.as_mut()[field::MAGIC].copy_from_slice(&MAGIC_COOKIE);
    }

    /// The raw options region, writable.
    pub fn options_bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::OPTIONS..]
    }
}

/// One option: its code and its data (not including code and length bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    /// The option code.
    pub code: u8,
    /// The option data.
    pub data: &'a [u8],
}

/// Iterator over the options region: pad (0) is skipped, end (255) stops it, the end of
/// the buffer stops it. An option whose length or data runs past the buffer yields one
/// `Err(WireError::Truncated)` and then the iterator is exhausted. Never panics.
#[derive(Debug, Clone)]
pub struct DhcpOptions<'a> {
    data: &'a [u8],
    pos: usize,
    done: bool,
}

impl<'a> DhcpOptions<'a> {
    /// Iterates over `data`, an options region (after the magic cookie).
    pub fn new(data: &'a [u8]) -> Self {
        DhcpOptions {
            data,
            pos: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for DhcpOptions<'a> {
    type Item = Result<DhcpOption<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            let Some(&code) = self.data.get(self.pos) else {
                self.done = true;
                return None;
            };
            match code {
                option::PAD => self.pos += 1,
                option::END => {
                    self.done = true;
                    return None;
                }
                _ => {
                    // Lengths in errors count from the start of the DHCP message.
                    let have = field::OPTIONS + self.data.len();
                    let Some(&len) = self.data.get(self.pos + 1) else {
                        self.done = true;
                        return Some(Err(truncated(field::OPTIONS + self.pos + 2, have)));
                    };
                    let start = self.pos + 2;
                    let end = start + usize::from(len);
                    let Some(data) = self.data.get(start..end) else {
                        self.done = true;
                        return Some(Err(truncated(field::OPTIONS + end, have)));
                    };
                    self.pos = end;
                    return Some(Ok(DhcpOption { code, data }));
                }
            }
        }
    }
}

/// Up to `N` bytes stored inline (a client identifier, a host name, ...).
///
/// Invariant: holds between 1 and `N` bytes (DHCP options of these kinds are never empty;
/// absence is `Option::None` in [`DhcpRepr`]). Equality looks only at the held bytes.
#[derive(Clone, Copy)]
pub struct InlineBytes<const N: usize> {
    len: u8,
    bytes: [u8; N],
}

impl<const N: usize> InlineBytes<N> {
    /// Copies `data`; `None` if it is empty or longer than `N` (or than 255).
    pub fn new(data: &[u8]) -> Option<Self> {
        if data.is_empty() || data.len() > N || data.len() > 255 {
            return None;
        }
        let mut bytes = [0u8; N];
        bytes[..data.len()].copy_from_slice(data);
        Some(InlineBytes {
            len: data.len() as u8,
            bytes,
        })
    }

    /// Copies at most the first `N` bytes of `data`; `None` if it is empty.
    pub fn new_truncated(data: &[u8]) -> Option<Self> {
        Self::new(&data[..data.len().min(N).min(255)])
    }

    /// The held bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Number of held bytes (at least 1).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false (see the type's invariant); present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl<const N: usize> AsRef<[u8]> for InlineBytes<N> {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl<const N: usize> PartialEq for InlineBytes<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for InlineBytes<N> {}

impl<const N: usize> core::hash::Hash for InlineBytes<N> {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl<const N: usize> fmt::Debug for InlineBytes<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match core::str::from_utf8(self.as_slice()) {
            Ok(s) if s.bytes().all(|b| b.is_ascii_graphic() || b == b' ') => write!(f, "{s:?}"),
            _ => {
                for b in self.as_slice() {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// Up to `N` IPv4 addresses stored inline (the DNS server list).
///
/// Invariant: holds between 1 and `N` addresses. Equality looks only at the held ones.
#[derive(Clone, Copy)]
pub struct Ipv4List<const N: usize> {
    len: u8,
    addrs: [Ipv4Addr; N],
}

impl<const N: usize> Ipv4List<N> {
    /// Copies `addrs`; `None` if it is empty or longer than `N`.
    pub fn new(addrs: &[Ipv4Addr]) -> Option<Self> {
        if addrs.is_empty() || addrs.len() > N || addrs.len() > 255 {
            return None;
        }
        let mut list = [Ipv4Addr::UNSPECIFIED; N];
        list[..addrs.len()].copy_from_slice(addrs);
        Some(Ipv4List {
            len: addrs.len() as u8,
            addrs: list,
        })
    }

    /// The held addresses.
    pub fn as_slice(&self) -> &[Ipv4Addr] {
        &self.addrs[..usize::from(self.len)]
    }

    /// Number of held addresses (at least 1).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false (see the type's invariant); present for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads up to `N` addresses from option data (length a non-zero multiple of 4).
    fn from_option(code: u8, data: &[u8]) -> Result<Self> {
        if data.is_empty() || data.len() & 3 != 0 {
            return Err(bad_option(code));
        }
        let mut list = [Ipv4Addr::UNSPECIFIED; N];
        let mut len = 0;
        for (slot, chunk) in list.iter_mut().zip(data.chunks_exact(4)) {
            *slot = ipv4_at(chunk, 0);
            len += 1;
        }
        Ok(Ipv4List {
            len: len as u8,
            addrs: list,
        })
    }
}

impl<const N: usize> PartialEq for Ipv4List<N> {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl<const N: usize> Eq for Ipv4List<N> {}

impl<const N: usize> fmt::Debug for Ipv4List<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// What a DHCP server reads from a client message and writes in its replies.
///
/// `op` is implied by [`DhcpRepr::message_type`] ([`DhcpMessageType::opcode`]); `htype`
/// and `hlen` are always Ethernet (1, 6); `hops` is written as 0; `sname` and `file` are
/// written as zeros; only the broadcast bit of `flags` is kept (RFC 2131 2: the other bits
/// "MUST be set to zero by clients and ignored by servers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpRepr {
    /// Option 53.
    pub message_type: DhcpMessageType,
    /// `xid`.
    pub xid: u32,
    /// `secs`.
    pub secs: u16,
    /// The broadcast bit of `flags`.
    pub broadcast: bool,
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `yiaddr`.
    pub yiaddr: Ipv4Addr,
    /// `siaddr`.
    pub siaddr: Ipv4Addr,
    /// `giaddr`.
    pub giaddr: Ipv4Addr,
    /// The client's MAC (first 6 bytes of `chaddr`).
    pub client_hardware_address: EthernetAddress,
    /// Option 61, the client identifier (type byte included), up to [`CLIENT_ID_MAX`].
    pub client_identifier: Option<InlineBytes<CLIENT_ID_MAX>>,
    /// Option 50, the requested IP address.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54, the server identifier.
    pub server_identifier: Option<Ipv4Addr>,
    /// Option 56, a human-readable message (e.g. why a NAK was sent).
    pub message: Option<InlineBytes<MESSAGE_MAX>>,
    /// Option 55, the parameter request list (first [`PARAMETER_LIST_MAX`] codes).
    pub parameter_request_list: Option<InlineBytes<PARAMETER_LIST_MAX>>,
    /// Option 57, the maximum DHCP message size the client accepts.
    pub max_message_size: Option<u16>,
    /// Option 12, the client's host name (echoed back by the server).
    pub hostname: Option<InlineBytes<HOSTNAME_MAX>>,
    /// Option 51, the lease time in seconds.
    pub lease_duration: Option<u32>,
    /// Option 58, the renewal time T1 in seconds.
    pub renewal_duration: Option<u32>,
    /// Option 59, the rebinding time T2 in seconds.
    pub rebinding_duration: Option<u32>,
    /// Option 1, the subnet mask.
    pub subnet_mask: Option<Ipv4Addr>,
    /// Option 3, the (first) router.
    pub router: Option<Ipv4Addr>,
    /// Option 6, the DNS servers (first [`DNS_SERVERS_MAX`]).
    pub dns_servers: Option<Ipv4List<DNS_SERVERS_MAX>>,
    /// Option 15, the domain name.
    pub domain_name: Option<InlineBytes<DOMAIN_NAME_MAX>>,
}

/// A known option with a length its definition does not allow. The code is named at
/// call sites for readability; [`WireError`] carries only the kind.
fn bad_option(_code: u8) -> WireError {
    malformed(Malformed::BadOption)
}

fn option_ipv4(code: u8, data: &[u8]) -> Result<Ipv4Addr> {
    if data.len() != 4 {
        return Err(bad_option(code));
    }
    Ok(ipv4_at(data, 0))
}

fn option_u32(code: u8, data: &[u8]) -> Result<u32> {
    match *data {
        [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(bad_option(code)),
    }
}

impl DhcpRepr {
    /// A message of type `message_type` from `client_hardware_address` with every other
    /// field zero or absent: a starting point for building messages.
    pub fn new(
        message_type: DhcpMessageType,
        xid: u32,
        client_hardware_address: EthernetAddress,
    ) -> Self {
        DhcpRepr {
            message_type,
            xid,
            secs: 0,
            broadcast: false,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            siaddr: Ipv4Addr::UNSPECIFIED,
            giaddr: Ipv4Addr::UNSPECIFIED,
            client_hardware_address,
            client_identifier: None,
            requested_ip: None,
            server_identifier: None,
            message: None,
            parameter_request_list: None,
            max_message_size: None,
            hostname: None,
            lease_duration: None,
            renewal_duration: None,
            rebinding_duration: None,
            subnet_mask: None,
            router: None,
            dns_servers: None,
            domain_name: None,
        }
    }

    /// Reads a checked packet.
    ///
    /// # Errors
    /// All with [`Layer::Dhcp`]: [`WireError::Truncated`] for a short buffer or an option
    /// running past it; [`Malformed::BadMagic`] for a wrong cookie;
    /// [`Malformed::BadHardwareType`] / [`Malformed::BadAddressLen`] for a non-Ethernet
    /// client (`htype` != 1 / `hlen` != 6); [`Malformed::BadOption`] for a known option of
    /// a bad length, a client identifier longer than [`CLIENT_ID_MAX`], or no message
    /// type (a plain BOOTP message, not served); [`Malformed::BadOpcode`] when `op`
    /// contradicts the message type.
    pub fn parse<T: AsRef<[u8]>>(packet: &DhcpPacket<T>) -> Result<Self> {
        packet.check()?;
        let (htype, hlen) = (packet.htype(), packet.hlen());
        if htype != 1 {
            return Err(malformed(Malformed::BadHardwareType));
        }
        if hlen != 6 {
            return Err(malformed(Malformed::BadAddressLen));
        }
        let mut repr = DhcpRepr::new(
            DhcpMessageType::Unknown(0),
            packet.xid(),
            packet.client_hardware_address(),
        );
        repr.secs = packet.secs();
        repr.broadcast = packet.broadcast();
        repr.ciaddr = packet.ciaddr();
        repr.yiaddr = packet.yiaddr();
        repr.siaddr = packet.siaddr();
        repr.giaddr = packet.giaddr();

        let mut message_type = None;
        for opt in packet.options() {
            let DhcpOption { code, data } = opt?;
            let bad_len = bad_option(code);
            match code {
                option::MESSAGE_TYPE => match *data {
                    [t] => message_type = Some(DhcpMessageType::from(t)),
                    _ => return Err(bad_len),
                },
                option::SUBNET_MASK => repr.subnet_mask = Some(option_ipv4(code, data)?),
                option::ROUTER => {
                    repr.router = Some(Ipv4List::<1>::from_option(code, data)?.as_slice()[0])
                }
                option::DNS_SERVERS => repr.dns_servers = Some(Ipv4List::from_option(code, data)?),
                option::HOSTNAME => {
                    if data.is_empty() {
                        return Err(bad_len);
                    }
                    repr.hostname = InlineBytes::new(data);
                }
                option::DOMAIN_NAME => {
                    if data.is_empty() {
                        return Err(bad_len);
                    }
                    repr.domain_name = InlineBytes::new(data);
                }
                option::MESSAGE => {
                    if data.is_empty() {
                        return Err(bad_len);
                    }
                    repr.message = InlineBytes::new(data);
                }
                option::REQUESTED_IP => repr.requested_ip = Some(option_ipv4(code, data)?),
                option::SERVER_IDENTIFIER => {
                    repr.server_identifier = Some(option_ipv4(code, data)?)
                }
                option::LEASE_TIME => repr.lease_duration = Some(option_u32(code, data)?),
                option::RENEWAL_TIME => repr.renewal_duration = Some(option_u32(code, data)?),
                option::REBINDING_TIME => repr.rebinding_duration = Some(option_u32(code, data)?),
                option::PARAMETER_REQUEST_LIST => {
                    repr.parameter_request_list =
                        Some(InlineBytes::new_truncated(data).ok_or(bad_len)?)
                }
                option::MAX_MESSAGE_SIZE => match *data {
                    [a, b] => repr.max_message_size = Some(u16::from_be_bytes([a, b])),
                    _ => return Err(bad_len),
                },
                option::CLIENT_IDENTIFIER => {
                    if data.is_empty() {
                        return Err(bad_len);
                    }
                    repr.client_identifier = Some(InlineBytes::new(data).ok_or(bad_len)?);
                }
                _ => {}
            }
        }
        repr.message_type = message_type.ok_or(malformed(Malformed::BadOption))?;
        if let Some(op) = repr.message_type.opcode() {
            if op != packet.op() {
                return Err(malformed(Malformed::BadOpcode));
            }
        }
        Ok(repr)
    }

    /// Checks and reads a raw payload: [`DhcpPacket::new_checked`] then
    /// [`DhcpRepr::parse`]. Never panics.
    ///
    /// # Errors
    /// As those two functions.
    pub fn parse_bytes(payload: &[u8]) -> Result<Self> {
        DhcpRepr::parse(&DhcpPacket::new_checked(payload)?)
    }

    /// Length of the options [`DhcpRepr::emit`] writes, end option included.
    fn options_len(&self) -> usize {
        fn opt<T>(o: &Option<T>, len: impl Fn(&T) -> usize) -> usize {
            o.as_ref().map_or(0, |v| 2 + len(v))
        }
        fn four<T>(_: &T) -> usize {
            4
        }
        3 // message type
            + opt(&self.server_identifier, four)
            + opt(&self.message, |m| m.len())
            + opt(&self.lease_duration, four)
            + opt(&self.renewal_duration, four)
            + opt(&self.rebinding_duration, four)
            + opt(&self.subnet_mask, four)
            + opt(&self.router, four)
            + opt(&self.dns_servers, |d| 4 * d.len())
            + opt(&self.hostname, |h| h.len())
            + opt(&self.domain_name, |d| d.len())
            + opt(&self.client_identifier, |c| c.len())
            + opt(&self.requested_ip, four)
            + opt(&self.parameter_request_list, |p| p.len())
            + opt(&self.max_message_size, |_| 2)
            + 1 // end
    }

    /// Bytes [`DhcpRepr::emit`] writes: the fixed part, the options and the end option,
    /// zero-padded to at least [`BOOTP_MIN_LEN`].
    pub fn buffer_len(&self) -> usize {
        (HEADER_LEN + self.options_len()).max(BOOTP_MIN_LEN)
    }

    /// Writes the message into the front of `buf` and returns its length
    /// ([`DhcpRepr::buffer_len`]). Every byte up to that length is written.
    ///
    /// Options are written in this stable order: 53, 54, 56, 51, 58, 59, 1, 3, 6, 12, 15,
    /// 61, 50, 55, 57 (each only when present), then 255 and zero padding.
    ///
    /// # Errors
    /// [`WireError::Truncated`] (with [`Layer::Dhcp`]) if `buf` is shorter than
    /// [`DhcpRepr::buffer_len`]; nothing is written then. (Unlike the other `wire` emits,
    /// which panic on a short buffer, this one reports it: the server emits into buffers
    /// sized before the reply is known.)
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        let len = self.buffer_len();
        if buf.len() < len {
            return Err(truncated(len, buf.len()));
        }
        let mut packet = DhcpPacket::new_unchecked(&mut buf[..len]);
        let op = self.message_type.opcode().unwrap_or(DhcpOpcode::Request);
        packet.set_op(op);
        packet.set_htype(1);
        packet.set_hlen(6);
        packet.set_hops(0);
        packet.set_xid(self.xid);
        packet.set_secs(self.secs);
        packet.set_flags(if self.broadcast { FLAG_BROADCAST } else { 0 });
        packet.set_ciaddr(self.ciaddr);
        packet.set_yiaddr(self.yiaddr);
        packet.set_siaddr(self.siaddr);
        packet.set_giaddr(self.giaddr);
        packet.set_client_hardware_address(self.client_hardware_address);
        packet.clear_sname_file();
        packet.set_magic_cookie();

        let mut w = OptionWriter {
            buf: packet.options_bytes_mut(),
            pos: 0,
        };
        w.put(option::MESSAGE_TYPE, &[self.message_type.into()]);
        if let Some(v) = self.server_identifier {
            w.put(option::SERVER_IDENTIFIER, &v.octets());
        }
        if let Some(v) = &self.message {
            w.put(option::MESSAGE, v.as_slice());
        }
        if let Some(v) = self.lease_duration {
            w.put(option::LEASE_TIME, &v.to_be_bytes());
        }
        if let Some(v) = self.renewal_duration {
            w.put(option::RENEWAL_TIME, &v.to_be_bytes());
        }
        if let Some(v) = self.rebinding_duration {
            w.put(option::REBINDING_TIME, &v.to_be_bytes());
        }
        if let Some(v) = self.subnet_mask {
            w.put(option::SUBNET_MASK, &v.octets());
        }
        if let Some(v) = self.router {
            w.put(option::ROUTER, &v.octets());
        }
        if let Some(v) = &self.dns_servers {
            w.head(option::DNS_SERVERS, 4 * v.len());
            for a in v.as_slice() {
                w.raw(&a.octets());
            }
        }
        if let Some(v) = &self.hostname {
            w.put(option::HOSTNAME, v.as_slice());
        }
        if let Some(v) = &self.domain_name {
            w.put(option::DOMAIN_NAME, v.as_slice());
        }
        if let Some(v) = &self.client_identifier {
            w.put(option::CLIENT_IDENTIFIER, v.as_slice());
        }
        if let Some(v) = self.requested_ip {
            w.put(option::REQUESTED_IP, &v.octets());
        }
        if let Some(v) = &self.parameter_request_list {
            w.put(option::PARAMETER_REQUEST_LIST, v.as_slice());
        }
        if let Some(v) = self.max_message_size {
            w.put(option::MAX_MESSAGE_SIZE, &v.to_be_bytes());
        }
        w.raw(&[option::END]);
        let pos = w.pos;
        w.buf[pos..].fill(0);
        Ok(len)
    }
}

/// Appends options to a buffer known (by `buffer_len`) to be large enough.
struct OptionWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl OptionWriter<'_> {
    fn raw(&mut self, data: &[u8]) {
        self.buf[self.pos..self.pos + data.len()].copy_from_slice(data);
        self.pos += data.len();
    }

    fn head(&mut self, code: u8, len: usize) {
        // Every inline field holds at most 255 bytes (InlineBytes/Ipv4List invariants).
        self.raw(&[code, len as u8]);
    }

    fn put(&mut self, code: u8, data: &[u8]) {
        self.head(code, data.len());
        self.raw(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A DHCPDISCOVER as udhcpc (busybox) sends it: broadcast flag clear, client id
    /// (type 1 + MAC), host name "vm1", parameter request list, max message size 576.
    fn discover_bytes() -> Vec<u8> {
        let mut b = vec![
            0x01, 0x01, 0x06, 0x00, // op, htype, hlen, hops
            0x3c, 0x5e, 0x71, 0x0a, // xid
            0x00, 0x00, 0x00, 0x00, // secs, flags
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ciaddr yiaddr siaddr giaddr
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // chaddr
        ];
        b.extend_from_slice(&[0u8; 192]); // sname, file
        b.extend_from_slice(&[
            0x63, 0x82, 0x53, 0x63, // magic cookie
            0x35, 0x01, 0x01, // 53: DISCOVER
            0x3d, 0x07, 0x01, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, // 61
            0x39, 0x02, 0x02, 0x40, // 57: 576
            0x0c, 0x03, b'v', b'm', b'1', // 12
            0x37, 0x07, 0x01, 0x03, 0x06, 0x0c, 0x0f, 0x1c, 0x2a, // 55
            0x00, 0x00, // pad
            0xff, // end
        ]);
        b.resize(300, 0);
        b
    }

    /// A SELECTING DHCPREQUEST as dhclient sends it: broadcast flag set, secs 3,
    /// requested ip and server id, no client id.
    fn request_bytes() -> Vec<u8> {
        let mut b = vec![
            0x01, 0x01, 0x06, 0x00, // op, htype, hlen, hops
            0xde, 0xad, 0xbe, 0xef, // xid
            0x00, 0x03, 0x80, 0x00, // secs 3, flags broadcast
            0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // ciaddr yiaddr siaddr giaddr
            0x08, 0x00, 0x27, 0xaa, 0xbb, 0xcc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // chaddr
        ];
        b.extend_from_slice(&[0u8; 192]);
        b.extend_from_slice(&[
            0x63, 0x82, 0x53, 0x63, // magic cookie
            0x35, 0x01, 0x03, // 53: REQUEST
            0x36, 0x04, 192, 168, 56, 100, // 54
            0x32, 0x04, 192, 168, 56, 101, // 50
            0x37, 0x04, 0x01, 0x03, 0x06, 0x0f, // 55
            0xff,
        ]);
        b
    }

    #[test]
    fn parse_discover_field_by_field() {
        let bytes = discover_bytes();
        let p = DhcpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(p.op(), DhcpOpcode::Request);
        assert_eq!((p.htype(), p.hlen(), p.hops()), (1, 6, 0));
        assert_eq!(p.xid(), 0x3c5e_710a);
        assert_eq!(p.secs(), 0);
        assert!(!p.broadcast());
        assert_eq!(p.ciaddr(), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            p.client_hardware_address(),
            EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        );
        let r = DhcpRepr::parse(&p).unwrap();
        assert_eq!(r.message_type, DhcpMessageType::Discover);
        assert_eq!(r.xid, 0x3c5e_710a);
        assert!(!r.broadcast);
        assert_eq!(
            r.client_identifier.unwrap().as_slice(),
            &[1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56]
        );
        assert_eq!(r.max_message_size, Some(576));
        assert_eq!(r.hostname.unwrap().as_slice(), b"vm1");
        assert_eq!(
            r.parameter_request_list.unwrap().as_slice(),
            &[1, 3, 6, 12, 15, 28, 42]
        );
        assert_eq!(r.requested_ip, None);
        assert_eq!(r.server_identifier, None);
        assert_eq!(r.lease_duration, None);
    }

    #[test]
    fn parse_request_field_by_field() {
        let bytes = request_bytes();
        let r = DhcpRepr::parse_bytes(&bytes).unwrap();
        assert_eq!(r.message_type, DhcpMessageType::Request);
        assert_eq!(r.xid, 0xdead_beef);
        assert_eq!(r.secs, 3);
        assert!(r.broadcast);
        assert_eq!(
            r.client_hardware_address,
            EthernetAddress([0x08, 0x00, 0x27, 0xaa, 0xbb, 0xcc])
        );
        assert_eq!(r.server_identifier, Some(Ipv4Addr::new(192, 168, 56, 100)));
        assert_eq!(r.requested_ip, Some(Ipv4Addr::new(192, 168, 56, 101)));
        assert_eq!(r.parameter_request_list.unwrap().as_slice(), &[1, 3, 6, 15]);
        assert_eq!(r.client_identifier, None);
        assert_eq!(r.giaddr, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn every_truncation_of_the_fixed_part_is_an_error() {
        for bytes in [discover_bytes(), request_bytes()] {
            for len in 0..HEADER_LEN {
                assert_eq!(
                    DhcpPacket::new_checked(&bytes[..len]).unwrap_err(),
                    truncated(HEADER_LEN, len),
                    "len {len}"
                );
            }
        }
    }

    #[test]
    fn every_truncation_inside_the_options_is_an_error() {
        // request_bytes' options: 53 (3 bytes), 54 (6), 50 (6), 55 (6), END. A cut that
        // falls on an option boundary leaves a shorter but well-formed message (a missing
        // END is tolerated); every other cut must be an error, never a panic.
        let bytes = request_bytes();
        let boundaries = [
            HEADER_LEN + 3,
            HEADER_LEN + 9,
            HEADER_LEN + 15,
            HEADER_LEN + 21,
        ];
        for len in 0..bytes.len() {
            let result = DhcpRepr::parse_bytes(&bytes[..len]);
            if boundaries.contains(&len) {
                let r = result.unwrap();
                assert_eq!(r.message_type, DhcpMessageType::Request);
                assert_eq!(r.server_identifier.is_some(), len >= HEADER_LEN + 9);
                assert_eq!(r.requested_ip.is_some(), len >= HEADER_LEN + 15);
            } else if len == HEADER_LEN {
                assert_eq!(result, Err(malformed(Malformed::BadOption)), "no type");
            } else if len < HEADER_LEN {
                assert_eq!(result, Err(truncated(HEADER_LEN, len)), "len {len}");
            } else {
                // Cut inside an option: it needs its length byte, then its end.
                let start = boundaries
                    .iter()
                    .copied()
                    .filter(|&b| b < len)
                    .max()
                    .unwrap_or(HEADER_LEN);
                let end = boundaries.iter().copied().find(|&b| b > len).unwrap();
                let need = if len == start + 1 { start + 2 } else { end };
                assert_eq!(result, Err(truncated(need, len)), "len {len}");
            }
        }
        assert_eq!(
            DhcpRepr::parse_bytes(&bytes).unwrap(),
            DhcpRepr::parse_bytes(&bytes[..bytes.len() - 1]).unwrap()
        );
        // Every cut of the discover, too, ends in a value or an error, never a panic.
        let d = discover_bytes();
        for len in 0..d.len() {
            let _ = DhcpRepr::parse_bytes(&d[..len]);
        }
    }

    #[test]
    fn truncated_option_reports_required_and_present_lengths() {
        let mut bytes = request_bytes();
        bytes.truncate(HEADER_LEN + 3 + 3); // 53 whole, 54 code+len+1 data byte
        assert_eq!(
            DhcpRepr::parse_bytes(&bytes).unwrap_err(),
            truncated(HEADER_LEN + 9, HEADER_LEN + 6)
        );
        // A lone code byte with no length byte: the length byte is required.
        bytes.truncate(HEADER_LEN + 4);
        assert_eq!(
            DhcpRepr::parse_bytes(&bytes).unwrap_err(),
            truncated(HEADER_LEN + 5, HEADER_LEN + 4)
        );
        assert_eq!(
            DhcpRepr::parse_bytes(&bytes).unwrap_err().reason(),
            "truncated_dhcp"
        );
    }

    #[test]
    fn bad_cookie_bad_length_bootp_and_opcode_are_errors() {
        let mut b = request_bytes();
        b[236] = 0;
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadMagic))
        );

        let mut b = request_bytes();
        b[HEADER_LEN + 4] = 3; // 54 with length 3
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadOption))
        );

        let mut b = request_bytes();
        b[HEADER_LEN] = 0; // 53 becomes pad, "01 03" becomes option 1 with length 3
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadOption))
        );

        let mut b = request_bytes();
        b.truncate(HEADER_LEN);
        b.push(255);
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadOption))
        );

        let mut b = request_bytes();
        b[0] = 2; // BOOTREPLY carrying a REQUEST
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadOpcode))
        );

        let mut b = request_bytes();
        b[2] = 16;
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadAddressLen))
        );
        b[1] = 6; // IEEE 802
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadHardwareType))
        );

        let mut b = request_bytes();
        b.truncate(HEADER_LEN);
        b.extend_from_slice(&[53, 1, 1, 61, 70]);
        b.extend_from_slice(&[7u8; 70]);
        assert_eq!(
            DhcpRepr::parse_bytes(&b),
            Err(malformed(Malformed::BadOption))
        );
    }

    #[test]
    fn options_iterator_skips_pad_stops_at_end_and_is_fused_after_error() {
        let data = [0, 0, 53, 1, 2, 0, 255, 1, 4, 1, 2, 3, 4];
        let codes: Vec<u8> = DhcpOptions::new(&data).map(|o| o.unwrap().code).collect();
        assert_eq!(codes, [53]);
        let data = [53, 1, 2, 12, 9, b'x'];
        let mut it = DhcpOptions::new(&data);
        assert_eq!(it.next().unwrap().unwrap().data, &[2]);
        assert!(it.next().unwrap().is_err());
        assert!(it.next().is_none());
    }

    fn offer() -> DhcpRepr {
        let mut r = DhcpRepr::new(
            DhcpMessageType::Offer,
            0x0102_0304,
            EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]),
        );
        r.broadcast = true;
        r.yiaddr = Ipv4Addr::new(192, 168, 56, 101);
        r.server_identifier = Some(Ipv4Addr::new(192, 168, 56, 100));
        r.lease_duration = Some(3600);
        r.renewal_duration = Some(1800);
        r.rebinding_duration = Some(3150);
        r.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 0));
        r.router = Some(Ipv4Addr::new(192, 168, 56, 1));
        r.dns_servers = Ipv4List::new(&[Ipv4Addr::new(10, 0, 2, 3), Ipv4Addr::new(1, 1, 1, 1)]);
        r.hostname = InlineBytes::new(b"vm1");
        r.domain_name = InlineBytes::new(b"lan");
        r
    }

    #[test]
    fn emit_offer_into_a5_buffer_matches_literal_bytes() {
        let r = offer();
        let mut buf = [0xa5u8; 600];
        let n = r.emit(&mut buf).unwrap();
        assert_eq!(n, BOOTP_MIN_LEN);
        assert_eq!(n, r.buffer_len());
        let mut expected = vec![
            0x02, 0x01, 0x06, 0x00, // op reply, htype, hlen, hops
            0x01, 0x02, 0x03, 0x04, // xid
            0x00, 0x00, 0x80, 0x00, // secs, flags
            0, 0, 0, 0, // ciaddr
            192, 168, 56, 101, // yiaddr
            0, 0, 0, 0, 0, 0, 0, 0, // siaddr, giaddr
            0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // chaddr
        ];
        expected.extend_from_slice(&[0u8; 192]);
        expected.extend_from_slice(&[
            99, 130, 83, 99, // cookie
            53, 1, 2, // OFFER
            54, 4, 192, 168, 56, 100, // server id
            51, 4, 0, 0, 0x0e, 0x10, // 3600
            58, 4, 0, 0, 0x07, 0x08, // 1800
            59, 4, 0, 0, 0x0c, 0x4e, // 3150
            1, 4, 255, 255, 255, 0, // mask
            3, 4, 192, 168, 56, 1, // router
            6, 8, 10, 0, 2, 3, 1, 1, 1, 1, // dns
            12, 3, b'v', b'm', b'1', // hostname
            15, 3, b'l', b'a', b'n', // domain
            255,
        ]);
        expected.resize(BOOTP_MIN_LEN, 0);
        assert_eq!(&buf[..n], &expected[..]);
        assert!(buf[n..].iter().all(|&b| b == 0xa5), "wrote past buffer_len");
    }

    #[test]
    fn emit_into_short_buffer_is_an_error_and_writes_nothing() {
        let r = offer();
        let mut buf = [0xa5u8; 299];
        assert_eq!(r.emit(&mut buf), Err(truncated(300, 299)));
        assert!(buf.iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn largest_reply_fits_the_minimum_max_message_size() {
        let mut r = offer();
        r.message_type = DhcpMessageType::Ack;
        r.hostname = InlineBytes::new(&[b'h'; HOSTNAME_MAX]);
        r.domain_name = InlineBytes::new(&[b'd'; DOMAIN_NAME_MAX]);
        r.client_identifier = InlineBytes::new(&[1; CLIENT_ID_MAX]);
        r.dns_servers = Ipv4List::new(&[Ipv4Addr::LOCALHOST; DNS_SERVERS_MAX]);
        assert!(r.buffer_len() <= MIN_MAX_MESSAGE_LEN, "{}", r.buffer_len());
    }

    fn arb_ip() -> impl Strategy<Value = Ipv4Addr> {
        any::<u32>().prop_map(Ipv4Addr::from)
    }

    fn arb_bytes<const N: usize>() -> impl Strategy<Value = Option<InlineBytes<N>>> {
        proptest::option::of(
            proptest::collection::vec(any::<u8>(), 1..=N)
                .prop_map(|v| InlineBytes::new(&v).unwrap()),
        )
    }

    prop_compose! {
        fn arb_repr()(
            t in 0u8..=20,
            xid in any::<u32>(),
            secs in any::<u16>(),
            broadcast in any::<bool>(),
            addrs in (arb_ip(), arb_ip(), arb_ip(), arb_ip()),
            mac in any::<[u8; 6]>(),
            client_identifier in arb_bytes::<CLIENT_ID_MAX>(),
            ips in (
                proptest::option::of(arb_ip()),
                proptest::option::of(arb_ip()),
                proptest::option::of(arb_ip()),
                proptest::option::of(arb_ip()),
            ),
            message in arb_bytes::<MESSAGE_MAX>(),
            parameter_request_list in arb_bytes::<PARAMETER_LIST_MAX>(),
            max_message_size in proptest::option::of(any::<u16>()),
            hostname in arb_bytes::<HOSTNAME_MAX>(),
            times in (
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
                proptest::option::of(any::<u32>()),
            ),
            dns in proptest::option::of(proptest::collection::vec(arb_ip(), 1..=DNS_SERVERS_MAX)),
            domain_name in arb_bytes::<DOMAIN_NAME_MAX>(),
        ) -> DhcpRepr {
            DhcpRepr {
                // Unknown(0) would be written as option 53 = 0: still a valid message.
                message_type: DhcpMessageType::from(t),
                xid,
                secs,
                broadcast,
                ciaddr: addrs.0,
                yiaddr: addrs.1,
                siaddr: addrs.2,
                giaddr: addrs.3,
                client_hardware_address: EthernetAddress(mac),
                client_identifier,
                requested_ip: ips.0,
                server_identifier: ips.1,
                message,
                parameter_request_list,
                max_message_size,
                hostname,
                lease_duration: times.0,
                renewal_duration: times.1,
                rebinding_duration: times.2,
                subnet_mask: ips.2,
                router: ips.3,
                dns_servers: dns.map(|d| Ipv4List::new(&d).unwrap()),
                domain_name,
            }
        }
    }

    proptest! {
        #[test]
        fn parse_of_emit_is_identity(repr in arb_repr()) {
            let mut buf = [0xa5u8; 1024];
            let n = repr.emit(&mut buf).unwrap();
            prop_assert_eq!(n, repr.buffer_len());
            prop_assert!(n >= BOOTP_MIN_LEN);
            prop_assert_eq!(DhcpRepr::parse_bytes(&buf[..n]).unwrap(), repr);
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = DhcpRepr::parse_bytes(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mutated_valid_message(
            idx in 0usize..300, val in any::<u8>(), cut in 0usize..=300,
        ) {
            let mut b = discover_bytes();
            b[idx] = val;
            b.truncate(cut);
            let _ = DhcpRepr::parse_bytes(&b);
        }
    }
}
