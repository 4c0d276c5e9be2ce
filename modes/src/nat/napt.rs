//! [`Napt`]: the tables of one worker and the translation paths.
//!
//! Tables (all sized at construction, indices are `u32`, `NIL` is "none"):
//!
//! - `mappings`: a slab of [`Mapping`]s (dynamic ones, plus up to [`MAX_FORWARDS`] static
//!   ones for forwarding rules), with a free list;
//! - `inside`: `(realm, proto, inside ip, inside port)` -> mapping (static mappings of
//!   several rules on one inside endpoint are chained through `next_inside`, in
//!   `statics`: what only static mappings need is kept out of the 32-byte [`Mapping`]);
//! - `ext_head`: a direct array `(proto, external port)` -> mapping, chained through
//!   `next_ext` (several static rules may share a port on different addresses);
//! - `sessions`: a slab of [`Session`]s, each on its mapping's doubly linked list, indexed
//!   by `by_session`: `(mapping, remote ip, remote port)` -> session;
//! - `addrs`: per `(dynamic mapping, remote ip)` the number of sessions and the latest
//!   deadline among them, indexed by `by_addr` (address-dependent filtering in O(1); kept
//!   only under that filtering);
//! - `wheel`: the timing wheel over session indices;
//! - `guests`: per guest (inside address of a realm) holding sessions, their number,
//!   indexed by `by_guest`, and per session its guest in `session_guest` (the per-guest
//!   share, [`NaptConfig::max_sessions_per_guest`](super::NaptConfig)).
//!
//! Batches can be warmed first (`napt/warm.rs`: [`Napt::warm_outbound`],
//! [`Napt::warm_inbound`]): staged prefetches that overlap the batch's cache misses.
//!
//! Outbound packets of a dynamic mapping's existing session are found through `by_flow`
//! (`napt/flows.rs`): the whole flow -> session, confirmed against the session and its
//! mapping; anything else takes the full lookup (`inside`, then `by_session`).
//!
//! Session lookups of a mapping with a single session (the common case: one TCP
//! connection per ephemeral port) read its list head instead of probing `by_session`.
//!
//! Invariants:
//!
//! - a live dynamic mapping has at least one session; it is freed with its last one;
//! - a mapping's `expires` is at least the deadline of each of its sessions (it may be
//!   later after a TCP close shortened one), an address entry's likewise for its sessions;
//! - `session_count <= max_sessions`; the slabs' free lists were allocated full, so
//!   pushing back never allocates;
//! - a guest's entry counts exactly its live sessions (those of its dynamic mappings and
//!   of the forwarding rules to it) and never exceeds the per-guest share; it is freed
//!   with its last session;
//! - every live session is linked in the wheel, except while [`Napt::poll`] holds it.

mod fastpath;
mod flows;
mod warm;

use std::net::Ipv4Addr;

use vnet_core::time::Instant;
use vnet_core::wire::{TcpFlags, TcpPacket, UdpPacket};

use super::config::{external_target, NaptConfig, NaptConfigError};
use super::forward::{ForwardError, ForwardRule, MAX_FORWARDS};
use super::ports::PortSpace;
use super::table::{FixedMap, Key};
use super::tcp_state::{Dir, TcpTrack};
use super::timer::Wheel;
use super::translate::{rd16, rd32, rewrite, rewrite_quoted, DST, L4, SRC};
use super::{Inbound, MappingInfo, NaptCounters, NatDrop, NatProto, Outbound};
use vnet_core::wire::checksum;

const NIL: u32 = u32::MAX;
const NEVER: Instant = Instant::from_nanos(u64::MAX);
const PORTS: usize = 65536;

/// 32 bytes (checked by a unit test), aligned to 32: two of them per cache line, never one
/// across two. What only static mappings need lives in [`StaticLink`].
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Mapping {
    realm: u16,
    proto: NatProto,
    is_static: bool,
    inside_ip: u32,
    inside_port: u16,
    ext_port: u16,
    /// Head of the session list.
    sessions: u32,
    session_count: u32,
    expires: Instant,
    next_ext: u32,
}

const FREE_MAPPING: Mapping = Mapping {
    realm: 0,
    proto: NatProto::Udp,
    is_static: false,
    inside_ip: 0,
    inside_port: 0,
    ext_port: 0,
    sessions: NIL,
    session_count: 0,
    expires: Instant::ZERO,
    next_ext: NIL,
};

/// The part of a static mapping (a forwarding rule's) the hot [`Mapping`] leaves out,
/// at the mapping's index in `Napt::statics`; `FREE_LINK` for dynamic mappings.
#[derive(Debug, Clone, Copy)]
struct StaticLink {
    /// The rule's external address, 0 for every address.
    ext_ip: u32,
    /// The next static mapping of the same inside endpoint.
    next_inside: u32,
}

const FREE_LINK: StaticLink = StaticLink {
    ext_ip: 0,
    next_inside: NIL,
};

/// 32 bytes (checked by a unit test), aligned to 32: two of them per cache line, never one
/// across two.
#[derive(Debug, Clone, Copy)]
#[repr(align(32))]
struct Session {
    mapping: u32,
    remote_ip: u32,
    remote_port: u16,
    tcp: TcpTrack,
    /// Directions offered to (bits 1, 2) and seen by (bits 4, 8) the fast path's offer
    /// logic (`napt/fastpath.rs`), in the struct's one byte of padding.
    offered: u8,
    /// Index in `addrs`, `NIL` for sessions of static mappings.
    addr: u32,
    expires: Instant,
    prev: u32,
    next: u32,
}

const FREE_SESSION: Session = Session {
    mapping: NIL,
    remote_ip: 0,
    remote_port: 0,
    tcp: TcpTrack::ZERO,
    offered: 0,
    addr: NIL,
    expires: Instant::ZERO,
    prev: NIL,
    next: NIL,
};

#[derive(Debug, Clone, Copy, Default)]
struct AddrEntry {
    count: u32,
    expires: Instant,
}

#[inline]
fn inside_key(realm: u16, proto: NatProto, ip: u32, port: u16) -> Key {
    Key {
        k0: u64::from(ip) << 32 | u64::from(realm) << 16 | u64::from(port),
        k1: proto as u32,
    }
}

#[inline]
fn session_key(mapping: u32, remote_ip: u32, remote_port: u16) -> Key {
    Key {
        k0: u64::from(remote_ip) << 32 | u64::from(mapping),
        k1: u32::from(remote_port),
    }
}

#[inline]
fn guest_key(realm: u16, inside_ip: u32) -> Key {
    Key {
        k0: u64::from(inside_ip) << 32 | u64::from(realm),
        k1: 0,
    }
}

#[inline]
fn addr_key(mapping: u32, remote_ip: u32) -> Key {
    Key {
        k0: u64::from(remote_ip) << 32 | u64::from(mapping),
        k1: 0,
    }
}

#[inline]
fn ext_index(proto: NatProto, port: u16) -> usize {
    proto as usize * PORTS + usize::from(port)
}

/// The checked IPv4 header of a packet.
#[derive(Debug, Clone, Copy)]
struct Hdr {
    hl: usize,
    tl: usize,
    proto: u8,
    src: u32,
    dst: u32,
}

fn parse_ip(ip: &[u8]) -> Result<Hdr, NatDrop> {
    let (hl, tl) = super::config::ip_bounds(ip).ok_or(NatDrop::Malformed)?;
    if checksum::fold(checksum::sum(&ip[..hl])) != 0xffff {
        return Err(NatDrop::BadChecksum);
    }
    if rd16(ip, 6) & 0x3fff != 0 {
        return Err(NatDrop::Fragment);
    }
    Ok(Hdr {
        hl,
        tl,
        proto: ip[9],
        src: rd32(ip, SRC),
        dst: rd32(ip, DST),
    })
}

/// The quoted packet of an ICMP error.
#[derive(Debug, Clone, Copy)]
struct Quote {
    ihl: usize,
    proto: NatProto,
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
}

/// Verifies an ICMP error (`icmp` from its type byte) and reads its quote (RFC 5508 REQ-3):
/// ICMP checksum, then the quoted IPv4 header (options skipped) and its checksum; the
/// quoted transport checksum is not checked. `query_type` is the ICMP type the quote must
/// carry if it is an ICMP query (8 for our own outbound echo requests, 0 for echo replies
/// we delivered inside).
fn parse_quote(icmp: &[u8], query_type: u8) -> Result<Quote, NatDrop> {
    if icmp.len() < 8 + 20 + 8 {
        return Err(NatDrop::Malformed);
    }
    if checksum::fold(checksum::sum(icmp)) != 0xffff {
        return Err(NatDrop::BadChecksum);
    }
    let inner = &icmp[8..];
    let ihl = usize::from(inner[0] & 0x0f) * 4;
    if inner[0] >> 4 != 4 || ihl < 20 || inner.len() < ihl + 8 {
        return Err(NatDrop::Malformed);
    }
    if checksum::fold(checksum::sum(&inner[..ihl])) != 0xffff {
        return Err(NatDrop::BadChecksum);
    }
    if rd16(inner, 6) & 0x1fff != 0 {
        return Err(NatDrop::Fragment);
    }
    let t = &inner[ihl..];
    let (proto, sport, dport) = match inner[9] {
        6 => (NatProto::Tcp, rd16(t, 0), rd16(t, 2)),
        17 => (NatProto::Udp, rd16(t, 0), rd16(t, 2)),
        1 if t[0] == query_type => (NatProto::Icmp, rd16(t, 4), 0),
        _ => return Err(NatDrop::Unsupported),
    };
    Ok(Quote {
        ihl,
        proto,
        src: rd32(inner, SRC),
        dst: rd32(inner, DST),
        sport,
        dport,
    })
}

fn l4_of(proto: NatProto) -> L4 {
    match proto {
        NatProto::Tcp => L4::Tcp,
        NatProto::Udp => L4::Udp,
        NatProto::Icmp => L4::Icmp,
    }
}

/// One worker's NAPT stage. See the [module documentation](super).
#[derive(Debug)]
pub struct Napt {
    cfg: NaptConfig,
    ext_ip: u32,
    mappings: Box<[Mapping]>,
    /// Per mapping: its [`StaticLink`] (read only for static mappings).
    statics: Box<[StaticLink]>,
    free_mappings: Vec<u32>,
    dynamic_count: usize,
    sessions: Box<[Session]>,
    /// Per session of a static mapping: the external address it uses (resolves a rule's
    /// "every address"). Kept out of [`Session`] so the hot struct stays 32 bytes.
    session_ext: Box<[u32]>,
    free_sessions: Vec<u32>,
    session_count: usize,
    addrs: Box<[AddrEntry]>,
    free_addrs: Vec<u32>,
    /// Per guest entry: its live sessions.
    guests: Box<[u32]>,
    free_guests: Vec<u32>,
    /// `(realm, inside ip)` -> guest entry.
    by_guest: FixedMap<u32>,
    /// Per session: its guest entry.
    session_guest: Box<[u32]>,
    inside: FixedMap<u32>,
    by_session: FixedMap<u32>,
    by_addr: FixedMap<u32>,
    /// Outbound flow -> session, for dynamic mappings (see `napt/flows.rs`).
    by_flow: FixedMap<u32>,
    ext_head: Box<[u32]>,
    ports: PortSpace,
    wheel: Wheel,
    forwards: Vec<(ForwardRule, u32)>,
    /// External addresses of rules other than `ext_ip` (hairpin detection).
    extra_ips: Vec<u32>,
    counters: NaptCounters,
    /// The session the last translated packet used (NIL: none), for fast-path offers.
    last_session: u32,
    /// Sessions freed since the fast path last asked (`napt/fastpath.rs`), and whether
    /// more were freed than the list holds. Only kept while `track_freed` is on.
    freed: Vec<u32>,
    freed_overflow: bool,
    track_freed: bool,
}

impl Napt {
    /// A stage for `config`, its clock starting at `now`; allocates every table.
    ///
    /// # Errors
    ///
    /// [`NaptConfigError`] if `config` does not [validate](NaptConfig::validate).
    pub fn new(config: NaptConfig, now: Instant) -> Result<Self, NaptConfigError> {
        config.validate()?;
        let max = config.max_sessions;
        let max_mappings = max + MAX_FORWARDS;
        let seed = config.hash_seed;
        let (lo, hi) = config.port_range;
        Ok(Self {
            ext_ip: u32::from(config.external_ip),
            mappings: vec![FREE_MAPPING; max_mappings].into_boxed_slice(),
            statics: vec![FREE_LINK; max_mappings].into_boxed_slice(),
            free_mappings: (0..max_mappings as u32).rev().collect(),
            dynamic_count: 0,
            sessions: vec![FREE_SESSION; max].into_boxed_slice(),
            session_ext: vec![0; max].into_boxed_slice(),
            free_sessions: (0..max as u32).rev().collect(),
            session_count: 0,
            addrs: vec![AddrEntry::default(); max].into_boxed_slice(),
            free_addrs: (0..max as u32).rev().collect(),
            guests: vec![0; max].into_boxed_slice(),
            free_guests: (0..max as u32).rev().collect(),
            by_guest: FixedMap::with_limit(max, seed.rotate_left(35)),
            session_guest: vec![NIL; max].into_boxed_slice(),
            inside: FixedMap::with_limit(max_mappings, seed),
            by_session: FixedMap::with_limit(max, seed.rotate_left(21)),
            by_addr: FixedMap::with_limit(max, seed.rotate_left(42)),
            by_flow: FixedMap::with_limit(max, seed.rotate_left(7)),
            ext_head: vec![NIL; 3 * PORTS].into_boxed_slice(),
            ports: PortSpace::new(lo, hi, config.worker, config.workers),
            wheel: Wheel::new(max, now),
            forwards: Vec::new(),
            extra_ips: Vec::new(),
            counters: NaptCounters::default(),
            last_session: NIL,
            freed: Vec::with_capacity(fastpath::FREED_CAPACITY),
            freed_overflow: false,
            track_freed: false,
            cfg: config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NaptConfig {
        &self.cfg
    }

    /// The counters.
    pub fn counters(&self) -> &NaptCounters {
        &self.counters
    }

    /// Dynamic mappings held (expired ones not yet reclaimed by [`poll`](Self::poll)
    /// included).
    pub fn mapping_count(&self) -> usize {
        self.dynamic_count
    }

    /// Sessions held (expired ones not yet reclaimed included).
    pub fn session_count(&self) -> usize {
        self.session_count
    }

    /// Sessions the guest `inside_ip` of `realm` holds in this worker.
    pub fn guest_sessions(&self, realm: u16, inside_ip: Ipv4Addr) -> u32 {
        self.by_guest
            .get(guest_key(realm, u32::from(inside_ip)))
            .map_or(0, |g| self.guests[g as usize])
    }

    /// Whether the guest `inside_ip` of `realm` holds its whole share of sessions.
    #[inline]
    fn guest_full(&self, realm: u16, inside_ip: u32) -> bool {
        self.by_guest
            .get(guest_key(realm, inside_ip))
            .is_some_and(|g| self.guests[g as usize] as usize >= self.cfg.max_sessions_per_guest)
    }

    /// The worker owning external port (identifier) `port`; see
    /// [`owner_of_port`](super::owner_of_port).
    pub fn owner_of_port(&self, port: u16) -> usize {
        self.cfg.owner_of_port(port)
    }

    /// The worker that must translate the inbound packet `ip`; see
    /// [`NaptConfig::owner_of_packet`].
    pub fn owner_of_packet(&self, ip: &[u8]) -> Option<usize> {
        self.cfg.owner_of_packet(ip)
    }

    /// The mapping of an inside endpoint, if any (a live one, or a forwarding rule's).
    pub fn mapping(
        &self,
        now: Instant,
        realm: u16,
        proto: NatProto,
        inside_ip: Ipv4Addr,
        inside_port: u16,
    ) -> Option<MappingInfo> {
        let m = self
            .inside
            .get(inside_key(realm, proto, u32::from(inside_ip), inside_port))?;
        let mp = &self.mappings[m as usize];
        if !mp.is_static && mp.expires <= now {
            return None;
        }
        Some(MappingInfo {
            realm,
            proto,
            inside_ip,
            inside_port,
            external_ip: {
                let ext_ip = self.mapping_ext_ip(m);
                (ext_ip != 0).then(|| Ipv4Addr::from(ext_ip))
            },
            external_port: mp.ext_port,
            sessions: mp.session_count,
            forwarded: mp.is_static,
            expires: (!mp.is_static).then_some(mp.expires),
        })
    }

    // ---------------------------------------------------------------- outbound

    /// Translates a packet from the inside endpoint's `realm`; see [`Outbound`].
    pub fn outbound(&mut self, now: Instant, realm: u16, ip: &mut [u8]) -> Outbound {
        self.last_session = NIL;
        match self.outbound_inner(now, realm, ip) {
            Ok(()) => {
                self.counters.translated_out += 1;
                self.after_outbound(now, ip)
            }
            Err(d) => {
                self.counters.count_drop(d);
                Outbound::Drop(d)
            }
        }
    }

    fn outbound_inner(&mut self, now: Instant, realm: u16, ip: &mut [u8]) -> Result<(), NatDrop> {
        let h = parse_ip(ip)?;
        let l4 = &ip[h.hl..h.tl];
        let (proto, sport, dport, flags) = match h.proto {
            6 => {
                let t = TcpPacket::new_checked(l4).map_err(|_| NatDrop::Malformed)?;
                (NatProto::Tcp, t.src_port(), t.dst_port(), t.flags())
            }
            17 => {
                let u = UdpPacket::new_checked(l4).map_err(|_| NatDrop::Malformed)?;
                (NatProto::Udp, u.src_port(), u.dst_port(), TcpFlags::empty())
            }
            1 => {
                if l4.len() < 8 {
                    return Err(NatDrop::Malformed);
                }
                match l4[0] {
                    8 => (NatProto::Icmp, rd16(l4, 4), 0, TcpFlags::empty()),
                    3 | 11 | 12 => return self.outbound_error(now, realm, h, ip),
                    _ => return Err(NatDrop::Unsupported),
                }
            }
            _ => return Err(NatDrop::Unsupported),
        };
        if proto != NatProto::Icmp && (sport == 0 || dport == 0) {
            return Err(NatDrop::Malformed);
        }
        let (ext_ip, ext_port) =
            self.outbound_flow(now, realm, proto, h.src, sport, h.dst, dport, flags)?;
        rewrite(ip, h.hl, l4_of(proto), SRC, ext_ip, ext_port);
        Ok(())
    }

    /// Finds or creates the mapping and session of an outbound packet, updates and
    /// refreshes the session; the external address and port to write.
    #[allow(clippy::too_many_arguments)]
    fn outbound_flow(
        &mut self,
        now: Instant,
        realm: u16,
        proto: NatProto,
        src: u32,
        sport: u16,
        dst: u32,
        dport: u16,
        flags: TcpFlags,
    ) -> Result<(u32, u16), NatDrop> {
        if let Some((s, m)) = self.flow_session(realm, proto, (src, sport), (dst, dport)) {
            return Ok(self.outbound_hit(now, s, m, proto, flags));
        }
        let rst_only = proto == NatProto::Tcp && flags.contains(TcpFlags::RST);
        let mut m = match self.inside.get(inside_key(realm, proto, src, sport)) {
            Some(m) => m,
            None => {
                if rst_only {
                    return Err(NatDrop::NoMapping);
                }
                if self.session_count >= self.cfg.max_sessions {
                    return Err(NatDrop::TableFull);
                }
                if self.guest_full(realm, src) {
                    return Err(NatDrop::GuestLimit);
                }
                let port = self
                    .ports
                    .allocate(proto, sport)
                    .ok_or(NatDrop::PortsExhausted)?;
                self.new_dynamic_mapping(realm, proto, src, sport, port)
            }
        };
        if self.next_inside(m) != NIL {
            m = self.pick_sibling(m, dst, dport);
        }
        let mp = self.mappings[m as usize];
        match self.find_session(m, dst, dport) {
            Some(s) => Ok(self.outbound_hit(now, s, m, proto, flags)),
            None => {
                let ext_ip = match self.mapping_ext_ip(m) {
                    0 => self.ext_ip,
                    ip => ip,
                };
                if rst_only {
                    // A reset creates no state; translate it if the mapping exists.
                    return Ok((ext_ip, mp.ext_port));
                }
                if self.session_count >= self.cfg.max_sessions {
                    if mp.is_static {
                        self.counters.forward_untracked += 1;
                        return Ok((ext_ip, mp.ext_port));
                    }
                    return Err(NatDrop::TableFull);
                }
                if self.guest_full(realm, src) {
                    if mp.is_static {
                        self.counters.forward_untracked_guest += 1;
                        return Ok((ext_ip, mp.ext_port));
                    }
                    return Err(NatDrop::GuestLimit);
                }
                let tcp = TcpTrack::new(Dir::Out, flags);
                self.new_session(now, m, dst, dport, ext_ip, tcp);
                Ok((ext_ip, mp.ext_port))
            }
        }
    }

    /// An outbound packet of session `s` (of mapping `m`): updates and refreshes the
    /// session; the external address and port to write.
    #[inline]
    fn outbound_hit(
        &mut self,
        now: Instant,
        s: u32,
        m: u32,
        proto: NatProto,
        flags: TcpFlags,
    ) -> (u32, u16) {
        let sess = &mut self.sessions[s as usize];
        if sess.expires <= now {
            // Expired, not yet reclaimed: start afresh, as if it had been.
            sess.tcp = TcpTrack::new(Dir::Out, flags);
            self.counters.new_sessions += 1;
        } else if proto == NatProto::Tcp {
            sess.tcp.update(Dir::Out, flags);
        }
        let mp = &self.mappings[m as usize];
        let ext_port = mp.ext_port;
        let ext_ip = if mp.is_static {
            self.session_ext[s as usize]
        } else {
            self.ext_ip
        };
        self.refresh(s, now);
        self.last_session = s;
        (ext_ip, ext_port)
    }

    /// Translates an ICMP error from the inside (RFC 5508 REQ-5): the quoted packet is an
    /// inbound packet we delivered, its destination is reverted to the external address and
    /// port, the outer source becomes the external address. Creates and refreshes nothing.
    fn outbound_error(
        &mut self,
        now: Instant,
        realm: u16,
        h: Hdr,
        ip: &mut [u8],
    ) -> Result<(), NatDrop> {
        let q = parse_quote(&ip[h.hl..h.tl], 0)?;
        let (inside_port, remote_port) = match q.proto {
            NatProto::Icmp => (q.sport, 0),
            _ => (q.dport, q.sport),
        };
        let mut m = self
            .inside
            .get(inside_key(realm, q.proto, q.dst, inside_port))
            .ok_or(NatDrop::IcmpErrorNoMapping)?;
        if self.next_inside(m) != NIL {
            m = self.pick_sibling(m, q.src, remote_port);
        }
        let mp = self.mappings[m as usize];
        if !mp.is_static && mp.expires <= now {
            return Err(NatDrop::IcmpErrorNoMapping);
        }
        let ext_ip = match self.find_session(m, q.src, remote_port) {
            Some(s) if mp.is_static => self.session_ext[s as usize],
            _ => match self.mapping_ext_ip(m) {
                0 => self.ext_ip,
                ip => ip,
            },
        };
        let (hl, tl) = (h.hl, h.tl);
        rewrite_quoted(
            &mut ip[hl..tl],
            q.ihl,
            l4_of(q.proto),
            DST,
            ext_ip,
            mp.ext_port,
        );
        let old = rd32(ip, SRC);
        ip[SRC..SRC + 4].copy_from_slice(&ext_ip.to_be_bytes());
        let c = checksum::update32(rd16(ip, 10), old, ext_ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        self.counters.icmp_errors_translated += 1;
        Ok(())
    }

    /// Hairpinning: a translated outbound packet to one of our external addresses is
    /// translated inbound at once (or handed to the worker owning its target port).
    fn after_outbound(&mut self, now: Instant, ip: &mut [u8]) -> Outbound {
        let dst = rd32(ip, DST);
        if dst != self.ext_ip && !self.extra_ips.contains(&dst) {
            return Outbound::Translated;
        }
        if let Some((proto, port)) = external_target(ip) {
            let owner = self.cfg.owner_of_port(port);
            let proto = match proto {
                6 => NatProto::Tcp,
                17 => NatProto::Udp,
                _ => NatProto::Icmp,
            };
            if owner != self.cfg.worker && !self.has_static(proto, port, dst) {
                self.counters.handoffs += 1;
                return Outbound::Handoff { worker: owner };
            }
        }
        match self.inbound_inner(now, ip) {
            Ok(realm) => {
                self.counters.translated_in += 1;
                self.counters.hairpins += 1;
                Outbound::Hairpin { realm }
            }
            Err(d) => {
                self.counters.count_drop(d);
                Outbound::Drop(d)
            }
        }
    }

    // ---------------------------------------------------------------- inbound

    /// Translates a packet from the outside; see [`Inbound`].
    pub fn inbound(&mut self, now: Instant, ip: &mut [u8]) -> Inbound {
        self.last_session = NIL;
        match self.inbound_inner(now, ip) {
            Ok(realm) => {
                self.counters.translated_in += 1;
                Inbound::Translated { realm }
            }
            Err(d) => {
                self.counters.count_drop(d);
                Inbound::Drop(d)
            }
        }
    }

    fn inbound_inner(&mut self, now: Instant, ip: &mut [u8]) -> Result<u16, NatDrop> {
        let h = parse_ip(ip)?;
        let l4 = &ip[h.hl..h.tl];
        let (proto, sport, dport, flags) = match h.proto {
            6 => {
                let t = TcpPacket::new_checked(l4).map_err(|_| NatDrop::Malformed)?;
                (NatProto::Tcp, t.src_port(), t.dst_port(), t.flags())
            }
            17 => {
                let u = UdpPacket::new_checked(l4).map_err(|_| NatDrop::Malformed)?;
                (NatProto::Udp, u.src_port(), u.dst_port(), TcpFlags::empty())
            }
            1 => {
                if l4.len() < 8 {
                    return Err(NatDrop::Malformed);
                }
                match l4[0] {
                    0 => (NatProto::Icmp, 0, rd16(l4, 4), TcpFlags::empty()),
                    3 | 11 | 12 => return self.inbound_error(now, h, ip),
                    8 => return Err(NatDrop::NoMapping),
                    _ => return Err(NatDrop::Unsupported),
                }
            }
            _ => return Err(NatDrop::Unsupported),
        };
        if proto != NatProto::Icmp && (sport == 0 || dport == 0) {
            return Err(NatDrop::Malformed);
        }
        let m = match self.inbound_flow(now, proto, h.src, sport, h.dst, dport, flags) {
            Ok(m) => m,
            Err(d) => {
                if proto == NatProto::Tcp
                    && flags.contains(TcpFlags::SYN)
                    && !flags.contains(TcpFlags::ACK)
                {
                    self.counters.unsolicited_syn += 1;
                }
                return Err(d);
            }
        };
        let mp = self.mappings[m as usize];
        rewrite(ip, h.hl, l4_of(proto), DST, mp.inside_ip, mp.inside_port);
        Ok(mp.realm)
    }

    /// Finds the mapping of an inbound packet, applies filtering (dynamic mappings) and
    /// updates the session.
    #[allow(clippy::too_many_arguments)]
    fn inbound_flow(
        &mut self,
        now: Instant,
        proto: NatProto,
        src: u32,
        sport: u16,
        dst: u32,
        dport: u16,
        flags: TcpFlags,
    ) -> Result<u32, NatDrop> {
        let m = self.find_ext(proto, dport, dst).ok_or(NatDrop::NoMapping)?;
        let mp = self.mappings[m as usize];
        if !mp.is_static {
            if mp.expires <= now {
                return Err(NatDrop::NoMapping);
            }
            if proto == NatProto::Tcp {
                // A session of this very connection decides; else the filter.
                if let Some(s) = self.find_session(m, src, sport) {
                    if self.sessions[s as usize].expires <= now {
                        return Err(NatDrop::Filtered);
                    }
                    self.sessions[s as usize].tcp.update(Dir::In, flags);
                    self.refresh(s, now);
                    self.last_session = s;
                    return Ok(m);
                }
            }
            if !self.permits(now, m, src, sport) {
                return Err(NatDrop::Filtered);
            }
            // The fast path may carry this flow only while its own session lives (which
            // implies the mapping and the address entry do).
            self.last_session = match self.find_session(m, src, sport) {
                Some(s) if self.sessions[s as usize].expires > now => s,
                _ => NIL,
            };
            return Ok(m);
        }
        // A forwarding rule: no filtering; track the session when there is room.
        match self.find_session(m, src, sport) {
            Some(s) => {
                let sess = &mut self.sessions[s as usize];
                if sess.expires <= now {
                    sess.tcp = TcpTrack::new(Dir::In, flags);
                    self.session_ext[s as usize] = dst;
                    self.counters.new_sessions += 1;
                } else if proto == NatProto::Tcp {
                    sess.tcp.update(Dir::In, flags);
                }
                self.refresh(s, now);
                self.last_session = s;
            }
            None => {
                if self.session_count >= self.cfg.max_sessions {
                    self.counters.forward_untracked += 1;
                } else if self.guest_full(mp.realm, mp.inside_ip) {
                    self.counters.forward_untracked_guest += 1;
                } else {
                    let tcp = TcpTrack::new(Dir::In, flags);
                    self.new_session(now, m, src, sport, dst, tcp);
                }
            }
        }
        Ok(m)
    }

    /// Whether the filter lets `remote_ip:remote_port` reach dynamic mapping `m`.
    fn permits(&self, now: Instant, m: u32, remote_ip: u32, remote_port: u16) -> bool {
        use super::Filtering::*;
        match self.cfg.filtering {
            EndpointIndependent => self.mappings[m as usize].expires > now,
            AddressDependent => self
                .find_addr(m, remote_ip)
                .is_some_and(|a| self.addrs[a as usize].expires > now),
            AddressPortDependent => self
                .find_session(m, remote_ip, remote_port)
                .is_some_and(|s| self.sessions[s as usize].expires > now),
        }
    }

    /// Translates an ICMP error from the outside (RFC 5508 REQ-4): the quoted packet is one
    /// we translated outbound; its source is reverted to the inside endpoint and the outer
    /// destination becomes the inside address. Creates and refreshes nothing (REQ-6).
    fn inbound_error(&mut self, now: Instant, h: Hdr, ip: &mut [u8]) -> Result<u16, NatDrop> {
        let q = parse_quote(&ip[h.hl..h.tl], 8)?;
        let m = self
            .find_ext(q.proto, q.sport, q.src)
            .ok_or(NatDrop::IcmpErrorNoMapping)?;
        let mp = self.mappings[m as usize];
        if h.dst != q.src {
            return Err(NatDrop::IcmpErrorNoMapping);
        }
        if !mp.is_static {
            if mp.expires <= now {
                return Err(NatDrop::IcmpErrorNoMapping);
            }
            if !self.permits(now, m, q.dst, q.dport) {
                return Err(NatDrop::Filtered);
            }
        }
        let (hl, tl) = (h.hl, h.tl);
        rewrite_quoted(
            &mut ip[hl..tl],
            q.ihl,
            l4_of(q.proto),
            SRC,
            mp.inside_ip,
            mp.inside_port,
        );
        let old = rd32(ip, DST);
        ip[DST..DST + 4].copy_from_slice(&mp.inside_ip.to_be_bytes());
        let c = checksum::update32(rd16(ip, 10), old, mp.inside_ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        self.counters.icmp_errors_translated += 1;
        Ok(mp.realm)
    }

    // ---------------------------------------------------------------- timers

    /// Reclaims every session (and emptied dynamic mapping) whose deadline is `<= now`;
    /// returns how many sessions expired. Amortised O(1) per session (timing wheel).
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut expired = 0;
        self.wheel.begin_poll(now);
        while let Some(s) = self.wheel.pop_due() {
            let sess = self.sessions[s as usize];
            if sess.expires > now {
                self.wheel.insert(s, sess.expires);
                continue;
            }
            expired += 1;
            self.counters.expired_sessions += 1;
            let m = sess.mapping;
            self.remove_session(s);
            let mp = &self.mappings[m as usize];
            if !mp.is_static && mp.session_count == 0 {
                self.drop_mapping(m);
                self.counters.expired_mappings += 1;
            }
        }
        expired
    }

    /// When [`poll`](Self::poll) next has work (`None`: no state at all).
    pub fn poll_at(&self) -> Option<Instant> {
        self.wheel.next_deadline()
    }

    // ---------------------------------------------------------------- forwarding

    /// Installs a forwarding rule (control plane: may allocate). Dynamic mappings on the
    /// rule's external port or of its inside endpoint are removed first (counted in
    /// [`NaptCounters::evicted_by_forward`]); their port then belongs to the rule.
    ///
    /// # Errors
    ///
    /// [`ForwardError`]: a duplicate name, a collision (same protocol and external port on
    /// an overlapping address; the error names both rules), a port of 0, or
    /// [`MAX_FORWARDS`] rules already installed. Nothing changes then.
    pub fn add_forward(&mut self, rule: ForwardRule) -> Result<(), ForwardError> {
        if rule.external_port == 0 || rule.inside_port == 0 {
            return Err(ForwardError::PortZero { rule: rule.name });
        }
        if self.forwards.iter().any(|(r, _)| r.name == rule.name) {
            return Err(ForwardError::DuplicateName { name: rule.name });
        }
        for (r, _) in &self.forwards {
            if let Some(overlap) = rule.overlap(r) {
                return Err(ForwardError::Collision {
                    rule: rule.name,
                    existing: r.name.clone(),
                    proto: rule.proto,
                    port: rule.external_port,
                    overlap,
                });
            }
        }
        if self.forwards.len() >= MAX_FORWARDS {
            return Err(ForwardError::TooMany { rule: rule.name });
        }
        let proto = NatProto::from(rule.proto);
        let port = rule.external_port;
        let inside_ip = u32::from(rule.inside_ip);
        // Evict dynamic mappings in the way.
        let mut m = self.ext_head[ext_index(proto, port)];
        while m != NIL {
            let next = self.mappings[m as usize].next_ext;
            if !self.mappings[m as usize].is_static {
                self.evict(m);
            }
            m = next;
        }
        let key = inside_key(rule.realm, proto, inside_ip, rule.inside_port);
        if let Some(m) = self.inside.get(key) {
            if !self.mappings[m as usize].is_static {
                self.evict(m);
            }
        }
        // The static mapping. The slab holds MAX_FORWARDS more than max_sessions, and
        // dynamic mappings never outnumber sessions, so a slot is free.
        let m = self.free_mappings.pop().expect("slab sized for rules");
        let head = &mut self.ext_head[ext_index(proto, port)];
        self.mappings[m as usize] = Mapping {
            realm: rule.realm,
            proto,
            inside_ip,
            inside_port: rule.inside_port,
            ext_port: port,
            is_static: true,
            sessions: NIL,
            session_count: 0,
            expires: NEVER,
            next_ext: *head,
        };
        *head = m;
        self.statics[m as usize] = StaticLink {
            ext_ip: rule.external_ip.map_or(0, u32::from),
            next_inside: NIL,
        };
        match self.inside.get(key) {
            Some(first) => {
                let mut last = first;
                while self.statics[last as usize].next_inside != NIL {
                    last = self.statics[last as usize].next_inside;
                }
                self.statics[last as usize].next_inside = m;
            }
            None => self.inside.insert(key, m),
        }
        self.ports.reserve(proto, port);
        self.forwards.push((rule, m));
        self.recompute_extra_ips();
        Ok(())
    }

    /// Removes the rule named `name` and its sessions; whether it existed.
    pub fn remove_forward(&mut self, name: &str) -> bool {
        let Some(pos) = self.forwards.iter().position(|(r, _)| &*r.name == name) else {
            return false;
        };
        let (_, m) = self.forwards.remove(pos);
        self.remove_all_sessions(m);
        self.drop_mapping(m);
        self.recompute_extra_ips();
        true
    }

    /// The installed rules, in installation order.
    pub fn forwards(&self) -> impl Iterator<Item = &ForwardRule> + '_ {
        self.forwards.iter().map(|(r, _)| r)
    }

    fn recompute_extra_ips(&mut self) {
        self.extra_ips.clear();
        for (r, _) in &self.forwards {
            if let Some(ip) = r.external_ip {
                let ip = u32::from(ip);
                if ip != self.ext_ip && !self.extra_ips.contains(&ip) {
                    self.extra_ips.push(ip);
                }
            }
        }
    }

    fn evict(&mut self, m: u32) {
        self.remove_all_sessions(m);
        self.drop_mapping(m);
        self.counters.evicted_by_forward += 1;
    }

    // ---------------------------------------------------------------- tables

    /// The mapping an inbound packet to `dst:port` reaches. Always inlined: it is most of
    /// the inbound lookup (measured: left to itself, the compiler stopped inlining it once
    /// static mappings' addresses moved to `statics`, +27 instructions a packet).
    #[inline(always)]
    fn find_ext(&self, proto: NatProto, port: u16, dst: u32) -> Option<u32> {
        let mut m = self.ext_head[ext_index(proto, port)];
        while m != NIL {
            let mp = &self.mappings[m as usize];
            let matches = if mp.is_static {
                let ext_ip = self.statics[m as usize].ext_ip;
                ext_ip == 0 || ext_ip == dst
            } else {
                dst == self.ext_ip
            };
            if matches {
                return Some(m);
            }
            m = mp.next_ext;
        }
        None
    }

    fn has_static(&self, proto: NatProto, port: u16, dst: u32) -> bool {
        self.find_ext(proto, port, dst)
            .is_some_and(|m| self.mappings[m as usize].is_static)
    }

    /// The session `(m, remote)`. A mapping with a single session (most: one TCP connection
    /// per ephemeral port) answers from its list head, without probing the index.
    #[inline]
    fn find_session(&self, m: u32, remote_ip: u32, remote_port: u16) -> Option<u32> {
        let mp = &self.mappings[m as usize];
        match mp.session_count {
            0 => None,
            1 => {
                let sess = &self.sessions[mp.sessions as usize];
                (sess.remote_ip == remote_ip && sess.remote_port == remote_port)
                    .then_some(mp.sessions)
            }
            _ => self.by_session.get(session_key(m, remote_ip, remote_port)),
        }
    }

    /// The address entry `(m, remote_ip)` (address-dependent filtering only).
    #[inline]
    fn find_addr(&self, m: u32, remote_ip: u32) -> Option<u32> {
        let mp = &self.mappings[m as usize];
        match mp.session_count {
            0 => None,
            1 => {
                let sess = &self.sessions[mp.sessions as usize];
                (sess.remote_ip == remote_ip && sess.addr != NIL).then_some(sess.addr)
            }
            _ => self.by_addr.get(addr_key(m, remote_ip)),
        }
    }

    /// Among the static mappings sharing `m`'s inside endpoint, the one with a session to
    /// `remote` (the rule the conversation came in through), else `m`.
    fn pick_sibling(&self, m: u32, remote_ip: u32, remote_port: u16) -> u32 {
        let mut c = m;
        while c != NIL {
            if self.find_session(c, remote_ip, remote_port).is_some() {
                return c;
            }
            c = self.statics[c as usize].next_inside;
        }
        m
    }

    /// The next static mapping of `m`'s inside endpoint (`NIL` for dynamic mappings).
    #[inline]
    fn next_inside(&self, m: u32) -> u32 {
        if self.mappings[m as usize].is_static {
            self.statics[m as usize].next_inside
        } else {
            NIL
        }
    }

    /// Mapping `m`'s external address: the stage's for a dynamic mapping, the rule's
    /// (0 for every address) for a static one.
    #[inline]
    fn mapping_ext_ip(&self, m: u32) -> u32 {
        if self.mappings[m as usize].is_static {
            self.statics[m as usize].ext_ip
        } else {
            self.ext_ip
        }
    }

    fn new_dynamic_mapping(
        &mut self,
        realm: u16,
        proto: NatProto,
        inside_ip: u32,
        inside_port: u16,
        ext_port: u16,
    ) -> u32 {
        // Dynamic mappings never outnumber sessions, and the caller checked that a session
        // fits: a slot is free.
        let m = self.free_mappings.pop().expect("slab sized for sessions");
        let head = &mut self.ext_head[ext_index(proto, ext_port)];
        self.mappings[m as usize] = Mapping {
            realm,
            proto,
            inside_ip,
            inside_port,
            ext_port,
            is_static: false,
            sessions: NIL,
            session_count: 0,
            expires: Instant::ZERO,
            next_ext: *head,
        };
        *head = m;
        self.inside
            .insert(inside_key(realm, proto, inside_ip, inside_port), m);
        self.dynamic_count += 1;
        self.counters.new_mappings += 1;
        m
    }

    /// Frees mapping `m` (its sessions already removed): indices, port, slot.
    fn drop_mapping(&mut self, m: u32) {
        let mp = self.mappings[m as usize];
        let link = self.statics[m as usize];
        debug_assert!(mp.session_count == 0 && mp.sessions == NIL);
        let key = inside_key(mp.realm, mp.proto, mp.inside_ip, mp.inside_port);
        match self.inside.get(key) {
            Some(first) if first == m => {
                if link.next_inside != NIL {
                    self.inside.insert(key, link.next_inside);
                } else {
                    self.inside.remove(key);
                }
            }
            Some(first) => {
                let mut c = first;
                while c != NIL {
                    let next = self.statics[c as usize].next_inside;
                    if next == m {
                        self.statics[c as usize].next_inside = link.next_inside;
                        break;
                    }
                    c = next;
                }
            }
            None => {}
        }
        let slot = ext_index(mp.proto, mp.ext_port);
        if self.ext_head[slot] == m {
            self.ext_head[slot] = mp.next_ext;
        } else {
            let mut c = self.ext_head[slot];
            while c != NIL {
                let next = self.mappings[c as usize].next_ext;
                if next == m {
                    self.mappings[c as usize].next_ext = mp.next_ext;
                    break;
                }
                c = next;
            }
        }
        if self.ext_head[slot] == NIL {
            self.ports.release(mp.proto, mp.ext_port);
        }
        if !mp.is_static {
            self.dynamic_count -= 1;
        }
        self.mappings[m as usize] = FREE_MAPPING;
        self.statics[m as usize] = FREE_LINK;
        self.free_mappings.push(m);
    }

    fn new_session(
        &mut self,
        now: Instant,
        m: u32,
        remote_ip: u32,
        remote_port: u16,
        ext_ip: u32,
        tcp: TcpTrack,
    ) {
        let s = self
            .free_sessions
            .pop()
            .expect("caller checked max_sessions");
        self.last_session = s;
        let mp = &mut self.mappings[m as usize];
        let addr = if mp.is_static || self.cfg.filtering != super::Filtering::AddressDependent {
            NIL
        } else {
            let key = addr_key(m, remote_ip);
            match self.by_addr.get(key) {
                Some(a) => a,
                None => {
                    let a = self
                        .free_addrs
                        .pop()
                        .expect("one entry per session at most");
                    self.addrs[a as usize] = AddrEntry {
                        count: 0,
                        expires: Instant::ZERO,
                    };
                    self.by_addr.insert(key, a);
                    a
                }
            }
        };
        if addr != NIL {
            self.addrs[addr as usize].count += 1;
        }
        let gkey = guest_key(mp.realm, mp.inside_ip);
        let g = match self.by_guest.get(gkey) {
            Some(g) => g,
            None => {
                let g = self
                    .free_guests
                    .pop()
                    .expect("one entry per session at most");
                self.guests[g as usize] = 0;
                self.by_guest.insert(gkey, g);
                g
            }
        };
        self.guests[g as usize] += 1;
        self.session_guest[s as usize] = g;
        let head = mp.sessions;
        mp.sessions = s;
        mp.session_count += 1;
        if head != NIL {
            self.sessions[head as usize].prev = s;
        }
        self.sessions[s as usize] = Session {
            mapping: m,
            remote_ip,
            remote_port,
            tcp,
            offered: 0,
            addr,
            expires: Instant::ZERO,
            prev: NIL,
            next: head,
        };
        self.session_ext[s as usize] = ext_ip;
        self.by_session
            .insert(session_key(m, remote_ip, remote_port), s);
        self.index_flow(s);
        self.session_count += 1;
        self.counters.new_sessions += 1;
        let deadline = now + self.timeout(s);
        self.set_deadline(s, deadline);
        self.wheel.insert(s, deadline);
    }

    /// The idle timeout that applies to session `s` now.
    #[inline]
    fn timeout(&self, s: u32) -> std::time::Duration {
        let sess = &self.sessions[s as usize];
        let t = &self.cfg.timeouts;
        match self.mappings[sess.mapping as usize].proto {
            NatProto::Udp => t.udp,
            NatProto::Icmp => t.icmp,
            NatProto::Tcp if sess.tcp.established() => t.tcp_established,
            NatProto::Tcp => t.tcp_transitory,
        }
    }

    /// Restarts session `s`'s idle timer at `now`.
    #[inline]
    fn refresh(&mut self, s: u32, now: Instant) {
        let deadline = now + self.timeout(s);
        let old = self.sessions[s as usize].expires;
        self.set_deadline(s, deadline);
        if deadline < old {
            self.wheel.reschedule_earlier(s, deadline);
        }
    }

    #[inline]
    fn set_deadline(&mut self, s: u32, deadline: Instant) {
        let sess = &mut self.sessions[s as usize];
        sess.expires = deadline;
        let mp = &mut self.mappings[sess.mapping as usize];
        if !mp.is_static && mp.expires < deadline {
            mp.expires = deadline;
        }
        if sess.addr != NIL {
            let a = &mut self.addrs[sess.addr as usize];
            if a.expires < deadline {
                a.expires = deadline;
            }
        }
    }

    /// Unlinks session `s` from every table (not its mapping's fate).
    fn remove_session(&mut self, s: u32) {
        self.unindex_flow(s);
        let sess = self.sessions[s as usize];
        self.wheel.remove(s);
        self.by_session
            .remove(session_key(sess.mapping, sess.remote_ip, sess.remote_port));
        if sess.addr != NIL {
            let a = &mut self.addrs[sess.addr as usize];
            a.count -= 1;
            if a.count == 0 {
                self.by_addr.remove(addr_key(sess.mapping, sess.remote_ip));
                self.free_addrs.push(sess.addr);
            }
        }
        let g = self.session_guest[s as usize];
        self.session_guest[s as usize] = NIL;
        self.guests[g as usize] -= 1;
        if self.guests[g as usize] == 0 {
            let mp = &self.mappings[sess.mapping as usize];
            self.by_guest.remove(guest_key(mp.realm, mp.inside_ip));
            self.free_guests.push(g);
        }
        if sess.prev != NIL {
            self.sessions[sess.prev as usize].next = sess.next;
        } else {
            self.mappings[sess.mapping as usize].sessions = sess.next;
        }
        if sess.next != NIL {
            self.sessions[sess.next as usize].prev = sess.prev;
        }
        self.mappings[sess.mapping as usize].session_count -= 1;
        self.sessions[s as usize] = FREE_SESSION;
        self.free_sessions.push(s);
        self.session_count -= 1;
        self.note_freed(s);
    }

    fn remove_all_sessions(&mut self, m: u32) {
        while self.mappings[m as usize].sessions != NIL {
            let s = self.mappings[m as usize].sessions;
            self.remove_session(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::flows::flow_key;
    use super::*;

    #[test]
    fn hot_structs_stay_small() {
        assert_eq!(std::mem::size_of::<Session>(), 32);
        assert_eq!(std::mem::size_of::<Mapping>(), 32);
    }

    fn udp(src: ([u8; 4], u16), dst: ([u8; 4], u16)) -> [u8; 28] {
        let mut p = [0u8; 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&28u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src.0);
        p[16..20].copy_from_slice(&dst.0);
        let c = checksum::data(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p[20..22].copy_from_slice(&src.1.to_be_bytes());
        p[22..24].copy_from_slice(&dst.1.to_be_bytes());
        p[24..26].copy_from_slice(&8u16.to_be_bytes());
        p
    }

    /// A `by_flow` entry pointing at the wrong session (as a shared key could) is not
    /// trusted: the packet takes the full lookup and is translated as without the index.
    #[test]
    fn a_wrong_flow_index_entry_falls_back_to_the_full_lookup() {
        let cfg = NaptConfig::new(Ipv4Addr::new(198, 18, 0, 2));
        let mut napt = Napt::new(cfg, Instant::ZERO).unwrap();
        let now = Instant::from_secs(1);
        let a = udp(([10, 0, 0, 1], 1000), ([198, 18, 1, 1], 53));
        let b = udp(([10, 0, 0, 2], 2000), ([198, 18, 1, 1], 53));
        let (mut a1, mut b1) = (a, b);
        assert_eq!(napt.outbound(now, 0, &mut a1), Outbound::Translated);
        assert_eq!(napt.outbound(now, 0, &mut b1), Outbound::Translated);
        assert_ne!(a1[20..22], b1[20..22]);
        let sa = napt.by_flow.get(flow_key(
            0,
            NatProto::Udp,
            (0x0a00_0001, 1000),
            (0xc612_0101, 53),
        ));
        let kb = flow_key(0, NatProto::Udp, (0x0a00_0002, 2000), (0xc612_0101, 53));
        let sb = napt.by_flow.get(kb);
        assert!(sa.is_some() && sb.is_some() && sa != sb);
        napt.by_flow.insert(kb, sa.unwrap());
        let mut b2 = b;
        assert_eq!(napt.outbound(now, 0, &mut b2), Outbound::Translated);
        assert_eq!(b2, b1);
        let mut a2 = a;
        assert_eq!(napt.outbound(now, 0, &mut a2), Outbound::Translated);
        assert_eq!(a2, a1);
        assert_eq!(napt.session_count(), 2);
    }

    /// Sessions leave `by_flow` with their removal.
    #[test]
    fn expired_sessions_leave_the_flow_index() {
        let cfg = NaptConfig::new(Ipv4Addr::new(198, 18, 0, 2));
        let mut napt = Napt::new(cfg, Instant::ZERO).unwrap();
        for i in 0..4u8 {
            let mut p = udp(([10, 0, 0, 1 + i % 2], 1000), ([198, 18, 1, i], 53));
            assert_eq!(
                napt.outbound(Instant::from_secs(1), 0, &mut p),
                Outbound::Translated
            );
        }
        assert_eq!(napt.by_flow.len(), 4);
        assert_eq!(napt.poll(Instant::from_secs(1000)), 4);
        assert_eq!(napt.by_flow.len(), 0);
    }
}
