//! NAPT: network address and port translation, the stage under the NAT and NAT Network
//! modes (RFC 4787 for UDP, RFC 5382 for TCP, RFC 5508 for ICMP).
//!
//! One [`Napt`] serves one worker. It is sans-IO: it is handed `now` and an IPv4 packet
//! (`&mut [u8]` from the IPv4 header on; the caller strips and restores Ethernet), rewrites
//! the packet in place and answers a verdict: [`Outbound`] for packets from the inside,
//! [`Inbound`] for packets from the outside. [`Napt::poll`] expires idle state and
//! [`Napt::poll_at`] says when next to call it.
//!
//! | file | what |
//! |---|---|
//! | [`config`] | [`NaptConfig`], [`Filtering`], [`NatTimeouts`], the worker port split |
//! | `napt.rs` | [`Napt`]: the tables and the outbound/inbound/ICMP-error paths |
//! | `napt/warm.rs` | batch warming: staged prefetches of what a batch's lookups will read |
//! | `ports.rs` | the per-worker port (and ICMP identifier) allocator |
//! | `table.rs` | the fixed-capacity hash index every table uses |
//! | `timer.rs` | the timing wheel behind expiry |
//! | `tcp_state.rs` | the per-session TCP tracker (which idle timeout applies) |
//! | `translate.rs` | in-place rewrites with RFC 1624 incremental checksums |
//! | [`forward`] | [`ForwardRule`]s (port forwarding) and VirtualBox's rule syntaxes |
//! | [`icmp_error`] | writing the ICMP errors the NAT sends itself (3/13, RFC 5508 REQ-8) |
//!
//! # Model
//!
//! - A **realm** is one private address space. NAT mode has one per VM (every guest is
//!   10.0.2.15, each behind its own NAT, all sharing one external address), NAT Network a
//!   single realm 0. Inside endpoints are keyed by `(realm, protocol, inside ip, inside
//!   port or ICMP identifier)`.
//! - A **mapping** binds an inside endpoint to an external port (identifier for ICMP echo)
//!   on the external address, the same for every destination (endpoint-independent
//!   mapping: RFC 4787 REQ-1, RFC 5382 REQ-1, RFC 5508 REQ-1). One external port maps to
//!   one inside endpoint per protocol (no port overloading: RFC 4787 REQ-3, RFC 5382
//!   REQ-7). Port allocation (preservation, parity, range class) is described in
//!   `ports.rs`'s documentation; the external port space is split between workers by
//!   [`owner_of_port`].
//! - A **session** is one `(mapping, remote ip, remote port)` (remote port 0 for ICMP);
//!   it carries the idle timer, the TCP state and the filtering state. A mapping lives
//!   while it has a session; at most `max_sessions` sessions exist at once.
//! - A **forwarding rule** ([`ForwardRule`]) is a static mapping: never expires, bypasses
//!   filtering, held by every worker.
//!
//! # Behaviour, requirement by requirement
//!
//! - Filtering (RFC 4787 REQ-8, RFC 5382 REQ-3): configurable, address-dependent by
//!   default (see [`Filtering`] for why). Packets of a session that exists and is live
//!   always pass; under address-dependent filtering any port of a contacted address does.
//! - Timers: UDP sessions are refreshed by outbound traffic only (RFC 4787 REQ-6: inbound
//!   MAY refresh; we do not, so a remote host cannot keep a mapping alive on its own); ICMP
//!   query sessions likewise (RFC 5508 REQ-2); TCP sessions by both directions, with the
//!   established or transitory idle timeout from the TCP tracker (RFC 5382 REQ-5; FINs both
//!   ways or a RST make a connection transitory). Sessions on forwarding rules are
//!   refreshed both ways (they are bookkeeping, not filtering state).
//! - Expiry is exact as seen by packets (every lookup compares the deadline with `now`),
//!   and memory is reclaimed by [`Napt::poll`] through a timing wheel within a 250 ms tick
//!   of the deadline: amortised O(1) per session, never a scan per packet.
//! - Unsolicited inbound TCP SYNs (no mapping, or filtered) are dropped and counted
//!   ([`NaptCounters::unsolicited_syn`]); the stage never answers them (RFC 5382 REQ-4's
//!   REQ-4a: silently dropping is allowed when answering would violate the security policy,
//!   and revealing which ports have mappings would).
//! - Inbound sessions are only created on forwarding rules; on a dynamic mapping, traffic
//!   that the filter admits (e.g. from a new remote under endpoint-independent filtering)
//!   is translated without creating state, so remote hosts cannot fill the table.
//! - Hairpinning (RFC 4787 REQ-9, RFC 5382 REQ-8, RFC 5508 REQ-7): a packet from the inside
//!   to the external address is translated outbound (so the target sees the external
//!   source address and port, REQ-9a), then inbound, filtering included.
//! - ICMP errors (RFC 5508 REQ-3..6, RFC 5382 REQ-9/10, RFC 4787 REQ-12): destination
//!   unreachable (fragmentation needed included, its MTU kept), time exceeded and
//!   parameter problem are translated both ways when their quoted packet matches a
//!   mapping; the outer ICMP checksum and the quoted IPv4 header checksum are verified
//!   first, the quoted transport checksum is not (but it is patched when quoted); type and
//!   code are kept; errors never create, refresh or end state.
//! - Other ICMP messages (redirects, timestamps, inbound echo requests, ...) are dropped
//!   (RFC 5508 REQ-11 allows it).
//! - Fragments: every IPv4 fragment is dropped and counted ([`NatDrop::Fragment`]); RFC
//!   4787 REQ-14 (out-of-order fragments) is out of scope. The stage neither fragments nor
//!   sends "fragmentation needed" (REQ-13 is the router's job) and does not touch the TTL.
//! - Checksums: the outer IPv4 header checksum is verified on every packet (a bad one is
//!   [`NatDrop::BadChecksum`]); TCP/UDP/ICMP-query checksums are not verified, only patched
//!   incrementally, so a corrupt packet stays detectably corrupt.
//!
//! # Multiple workers
//!
//! Each worker owns a share of the external ports ([`owner_of_port`]). Outbound traffic of
//! one inside endpoint must always reach the same worker (e.g. a VM port's traffic on one
//! worker), which then owns its mapping; inbound packets go to
//! [`NaptConfig::owner_of_packet`]. A hairpin whose target port another worker owns is
//! answered [`Outbound::Handoff`]: that worker's [`Napt::inbound`] finishes it.
//!
//! # Invariants
//!
//! - No allocation per packet: every table is allocated by [`Napt::new`] for
//!   `max_sessions` sessions (plus [`MAX_FORWARDS`] static mappings); only the forwarding
//!   rule calls (control plane) allocate. At the default 65 536 sessions that is about
//!   17 MB per worker (hash indices at a load factor of at most 2/3, 32-byte sessions, a
//!   direct `(protocol, port)` array for inbound lookups).
//! - Every packet gets a verdict; a [`NatDrop`] names why, and [`NaptCounters`] counts it.
//!   A dropped packet is left untouched, except after a hairpin's outbound half (then it
//!   already carries the external source).
//! - No input panics the stage: every length is checked before it is used.

pub mod config;
pub mod forward;
pub mod icmp_error;
mod napt;
mod ports;
mod table;
mod tcp_state;
mod timer;
mod translate;

use std::net::Ipv4Addr;

use vnet_core::counters::DropReason;
use vnet_core::time::Instant;

pub use config::{
    owner_of_port, Filtering, NaptConfig, NaptConfigError, NatTimeouts, DEFAULT_SESSIONS_PER_GUEST,
};
pub use forward::{ForwardError, ForwardParseError, ForwardProto, ForwardRule, MAX_FORWARDS};
pub use icmp_error::{write_admin_prohibited, write_icmp_error, IcmpErrorRefused};
pub use napt::Napt;

/// The protocols the stage translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatProto {
    /// TCP (port mappings).
    Tcp = 0,
    /// UDP (port mappings).
    Udp = 1,
    /// ICMP echo (identifier mappings).
    Icmp = 2,
}

impl From<ForwardProto> for NatProto {
    fn from(p: ForwardProto) -> Self {
        match p {
            ForwardProto::Tcp => NatProto::Tcp,
            ForwardProto::Udp => NatProto::Udp,
        }
    }
}

/// Why the stage dropped a packet. Small and `Copy`: the data path returns it by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NatDrop {
    /// No room for a new session (`max_sessions`). Existing sessions keep working. The
    /// caller should answer with ICMP 3/13 ([`write_admin_prohibited`], RFC 5508 REQ-8).
    TableFull,
    /// No free external port (identifier) of the needed class in this worker's share.
    /// Also answered with ICMP 3/13 by a caller that follows RFC 5508 REQ-8.
    PortsExhausted,
    /// Not TCP, UDP, ICMP echo or a translatable ICMP error (RFC 5508 REQ-11: may drop).
    Unsupported,
    /// An IPv4 fragment (never translated; RFC 4787 REQ-14 is out of scope), or an ICMP
    /// error quoting a non-first fragment.
    Fragment,
    /// A truncated or inconsistent header (IPv4, TCP, UDP, ICMP, or the quoted packet of
    /// an ICMP error), or a TCP/UDP port of 0.
    Malformed,
    /// A checksum the stage verifies is wrong: the IPv4 header, or an ICMP error's
    /// checksum or its quoted IPv4 header (RFC 5508 REQ-3).
    BadChecksum,
    /// Inbound to an external port, identifier or address with no mapping (including an
    /// unsolicited TCP SYN and an inbound echo request), or an outbound TCP RST with no
    /// state.
    NoMapping,
    /// An ICMP error whose quoted packet matches no live mapping (RFC 5508 REQ-4/5).
    IcmpErrorNoMapping,
    /// The mapping exists but the filter refused the remote endpoint (RFC 4787 REQ-8).
    Filtered,
    /// The inside endpoint's guest already holds its share of the sessions
    /// ([`NaptConfig::max_sessions_per_guest`]): one guest cannot starve the others.
    GuestLimit,
}

impl NatDrop {
    /// The engine's drop reason for this drop.
    pub fn reason(self) -> DropReason {
        match self {
            NatDrop::TableFull | NatDrop::PortsExhausted => DropReason::TableFull,
            NatDrop::Unsupported | NatDrop::Filtered => DropReason::Policy,
            NatDrop::Fragment => DropReason::Fragment,
            NatDrop::Malformed | NatDrop::BadChecksum => DropReason::Malformed,
            NatDrop::NoMapping | NatDrop::IcmpErrorNoMapping => DropReason::NoRoute,
            NatDrop::GuestLimit => DropReason::GuestLimit,
        }
    }

    /// Stable snake_case name.
    pub fn name(self) -> &'static str {
        match self {
            NatDrop::TableFull => "table_full",
            NatDrop::PortsExhausted => "ports_exhausted",
            NatDrop::Unsupported => "unsupported",
            NatDrop::Fragment => "fragment",
            NatDrop::Malformed => "malformed",
            NatDrop::BadChecksum => "bad_checksum",
            NatDrop::NoMapping => "no_mapping",
            NatDrop::IcmpErrorNoMapping => "icmp_error_no_mapping",
            NatDrop::Filtered => "filtered",
            NatDrop::GuestLimit => "guest_limit",
        }
    }
}

/// The verdict on a packet from the inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound {
    /// Rewritten (source address -> external, source port/identifier -> mapped, or for an
    /// ICMP error its quoted destination); send it to the uplink.
    Translated,
    /// The destination was the external address: the packet was translated outbound, then
    /// inbound to the inside endpoint it reaches (RFC 4787 REQ-9), whose realm this is.
    /// Deliver it to that realm.
    Hairpin {
        /// Realm of the inside endpoint reached.
        realm: u16,
    },
    /// A hairpin to an external port another worker owns: the packet carries its outbound
    /// translation; hand it to `worker`'s [`Napt::inbound`].
    Handoff {
        /// The worker owning the target port.
        worker: usize,
    },
    /// Dropped.
    Drop(NatDrop),
}

/// The verdict on a packet from the outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Rewritten to the inside endpoint (destination address and port/identifier, or for
    /// an ICMP error its quoted source); deliver it to `realm`.
    Translated {
        /// Realm of the inside endpoint.
        realm: u16,
    },
    /// Dropped.
    Drop(NatDrop),
}

/// What the stage did, per worker. Plain numbers; the owner reads them with
/// [`Napt::counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NaptCounters {
    /// Packets translated outbound (hairpins included).
    pub translated_out: u64,
    /// Packets translated inbound (hairpins included).
    pub translated_in: u64,
    /// Hairpinned packets delivered inside.
    pub hairpins: u64,
    /// Hairpins handed to another worker.
    pub handoffs: u64,
    /// Dynamic mappings created.
    pub new_mappings: u64,
    /// Sessions created.
    pub new_sessions: u64,
    /// Sessions expired by [`Napt::poll`].
    pub expired_sessions: u64,
    /// Dynamic mappings expired by [`Napt::poll`] (their last session expired).
    pub expired_mappings: u64,
    /// ICMP errors translated (either way).
    pub icmp_errors_translated: u64,
    /// Forwarded packets translated without a session because the table was full.
    pub forward_untracked: u64,
    /// Dynamic mappings removed because a forwarding rule took their port or endpoint.
    pub evicted_by_forward: u64,
    /// Inbound TCP SYNs (without ACK) dropped as no-mapping or filtered.
    pub unsolicited_syn: u64,
    /// Drops: [`NatDrop::TableFull`].
    pub table_full: u64,
    /// Drops: [`NatDrop::PortsExhausted`].
    pub ports_exhausted: u64,
    /// Drops: [`NatDrop::Unsupported`].
    pub unsupported: u64,
    /// Drops: [`NatDrop::Fragment`].
    pub fragments: u64,
    /// Drops: [`NatDrop::Malformed`].
    pub malformed: u64,
    /// Drops: [`NatDrop::BadChecksum`].
    pub bad_checksum: u64,
    /// Drops: [`NatDrop::NoMapping`].
    pub no_mapping: u64,
    /// Drops: [`NatDrop::IcmpErrorNoMapping`].
    pub icmp_error_no_mapping: u64,
    /// Drops: [`NatDrop::Filtered`].
    pub filtered: u64,
    /// Drops: [`NatDrop::GuestLimit`].
    pub guest_limit: u64,
    /// Forwarded packets translated without a session because their guest held its share.
    pub forward_untracked_guest: u64,
}

impl NaptCounters {
    #[inline]
    fn count_drop(&mut self, d: NatDrop) {
        let c = match d {
            NatDrop::TableFull => &mut self.table_full,
            NatDrop::PortsExhausted => &mut self.ports_exhausted,
            NatDrop::Unsupported => &mut self.unsupported,
            NatDrop::Fragment => &mut self.fragments,
            NatDrop::Malformed => &mut self.malformed,
            NatDrop::BadChecksum => &mut self.bad_checksum,
            NatDrop::NoMapping => &mut self.no_mapping,
            NatDrop::IcmpErrorNoMapping => &mut self.icmp_error_no_mapping,
            NatDrop::Filtered => &mut self.filtered,
            NatDrop::GuestLimit => &mut self.guest_limit,
        };
        *c += 1;
    }

    /// All drops.
    pub fn dropped(&self) -> u64 {
        self.table_full
            + self.ports_exhausted
            + self.unsupported
            + self.fragments
            + self.malformed
            + self.bad_checksum
            + self.no_mapping
            + self.icmp_error_no_mapping
            + self.filtered
    }
}

/// A mapping as [`Napt::mapping`] reports it (diagnostics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MappingInfo {
    /// Realm of the inside endpoint.
    pub realm: u16,
    /// Protocol.
    pub proto: NatProto,
    /// Inside address.
    pub inside_ip: Ipv4Addr,
    /// Inside port or ICMP identifier.
    pub inside_port: u16,
    /// External address (`None`: a forwarding rule on every external address).
    pub external_ip: Option<Ipv4Addr>,
    /// External port or ICMP identifier.
    pub external_port: u16,
    /// Sessions held.
    pub sessions: u32,
    /// Whether this is a forwarding rule's static mapping.
    pub forwarded: bool,
    /// When the mapping expires if no packet refreshes it (`None` for static mappings).
    pub expires: Option<Instant>,
}
