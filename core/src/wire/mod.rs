//! Wire formats: zero-copy views and small values for every header the dataplane touches.
//!
//! | header | view | value | module |
//! |---|---|---|---|
//! | Ethernet II + 802.1Q/802.1ad (up to 2 tags) | [`EthernetFrame`] | [`EthernetRepr`] | [`ethernet`] |
//! | ARP (Ethernet/IPv4) | [`ArpPacket`] | [`ArpRepr`] | [`arp`] |
//! | IPv4 (options kept as bytes) | [`Ipv4Packet`] | [`Ipv4Repr`] | [`ipv4`] |
//! | ICMPv4 (echo, unreachable, time exceeded) | [`Icmpv4Packet`] | [`Icmpv4Repr`] | [`icmpv4`] |
//! | UDP | [`UdpPacket`] | [`UdpRepr`] | [`udp`] |
//! | TCP (+ options iterator) | [`TcpPacket`] | [`TcpRepr`] | [`tcp`] |
//! | IPv6 fixed header | [`Ipv6Packet`] | [`Ipv6Repr`] | [`ipv6`] |
//! | DHCP (BOOTP) | see [`dhcp`] | | [`dhcp`] |
//!
//! plus the Internet checksum and its RFC 1624 incremental update in [`checksum`], and the one
//! error type [`WireError`] in [`error`].
//!
//! # The pattern (smoltcp's)
//!
//! - `XxxPacket<T: AsRef<[u8]>>` is a view over bytes someone else owns (a UMEM frame, a
//!   slice). `new_unchecked` wraps without looking; `new_checked` checks the lengths the
//!   header announces (and the version where there is one) so that **every getter of a
//!   checked view is in bounds**. Getters are nouns (`src_addr()`); setters are `set_*` and
//!   exist only where `T: AsMut<[u8]>`. Field offsets live in each module's private
//!   `mod field`.
//! - `XxxRepr` is a small `Copy` value: `parse(&packet)` reads a checked view and validates
//!   what the view does not (checksums, supported variants); `emit(&self, &mut packet)`
//!   writes it back; `header_len()`/`buffer_len()` say how many bytes `emit` needs.
//! - Protocol numbers never fail to parse: [`EtherType`], [`IpProtocol`], [`ArpOperation`],
//!   [`Icmpv4Message`] keep unknown values as `Unknown(raw)`; `From<raw>` always maps a known
//!   value to its named variant.
//!
//! # Invariants
//!
//! - Nothing here allocates, and nothing panics on untrusted bytes: every parse returns
//!   `Result<_, WireError>`, and a [`WireError`] says which layer was cut short (with the
//!   bytes required and present) or which field was wrong. [`WireError::reason`] is a stable
//!   label for drop counters.
//! - Variable-length getters (`payload()`, `options()`, `data()`) clamp to the buffer, so
//!   they stay in bounds even after a setter changed a length field.
//! - `emit` and setters write into a buffer the caller sized with `buffer_len()`; they panic
//!   (documented under `# Panics`) only on a buffer that is too short, a programming error.
//! - Transport `emit`s (ICMPv4, UDP, TCP) compute the checksum over the header and the
//!   payload **already in the buffer**: write (or keep, when replying in place) the payload
//!   first, then emit the header.
//! - Lengths trailing a header (Ethernet padding after an IPv4 packet, bytes after a UDP
//!   datagram's `length`) are allowed; `payload()` ends where the header says it ends.
//! - IPv4 and IPv6 addresses are [`std::net::Ipv4Addr`] and [`std::net::Ipv6Addr`].

pub mod arp;
pub mod checksum;
pub mod dhcp;
pub mod error;
pub mod ethernet;
pub mod icmpv4;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use self::arp::{ArpOperation, ArpPacket, ArpRepr, ARP_ETHERNET_IPV4_LEN};
pub use self::error::{Layer, Malformed, WireError};
pub use self::ethernet::{
    EtherType, EthernetAddress, EthernetFrame, EthernetRepr, ParseEthernetAddressError, VlanTag,
    ETHERNET_HEADER_LEN, VLAN_TAG_LEN,
};
pub use self::icmpv4::{
    Icmpv4DstUnreachable, Icmpv4Message, Icmpv4Packet, Icmpv4Repr, Icmpv4TimeExceeded,
    ICMPV4_HEADER_LEN,
};
pub use self::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr, IPV4_HEADER_LEN};
pub use self::ipv6::{Ipv6Packet, Ipv6Repr, IPV6_HEADER_LEN};
pub use self::tcp::{TcpFlags, TcpOption, TcpOptions, TcpPacket, TcpRepr, TCP_HEADER_LEN};
pub use self::udp::{UdpPacket, UdpRepr, UDP_HEADER_LEN};

/// Reads the big-endian `u16` at `at`.
#[inline(always)]
pub(crate) fn get_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Reads the big-endian `u32` at `at`.
#[inline(always)]
pub(crate) fn get_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Writes `value` big-endian at `at`.
#[inline(always)]
pub(crate) fn put_u16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Writes `value` big-endian at `at`.
#[inline(always)]
pub(crate) fn put_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}
