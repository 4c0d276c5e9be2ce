//! The DHCP server stage: DHCP payloads and `now` in, replies and where to send them out.
//!
//! Invariants:
//! - sans-IO: [`DhcpServer::handle`] and [`DhcpServer::handle_bytes`] read no clock, do no
//!   I/O and do not allocate; the lease file is touched only by [`DhcpServer::new`],
//!   [`DhcpServer::save`] and [`DhcpServer::flush_if_dirty`] (control plane, timers);
//! - every message gets a verdict: a reply, or silence with a counter incremented saying
//!   why (see [`DhcpCounters`]);
//! - the lease table is bounded ([`super::MAX_LEASES_CAP`] leases, [`super::MAX_POOL_LEN`]
//!   addresses) and allocated at construction;
//! - replies follow RFC 2131 Table 3 (see [`DhcpServer::handle`]) and 4.1 ([`ReplyDest`]).

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{
    DhcpMessageType, DhcpRepr, InlineBytes, Ipv4List, DNS_SERVERS_MAX, DOMAIN_NAME_MAX, MESSAGE_MAX,
};
use vnet_core::wire::{EthernetAddress, WireError};

use super::config::{DhcpConfigError, DhcpServerConfig};
use super::lease_file::{self, LeaseFileError, LeaseRecord, RecordState};
use super::leases::{ClientKey, LeaseState, LeaseTable};

/// Where a reply goes (RFC 2131 4.1). The caller wraps the payload in UDP/IPv4/Ethernet
/// with source `server_ip:67` and:
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReplyDest {
    /// To `255.255.255.255:68`, Ethernet `ff:ff:ff:ff:ff:ff`.
    Broadcast,
    /// To `ip:68`, Ethernet `mac` (the client's `chaddr`): no ARP, the client may not
    /// answer it yet.
    Unicast {
        /// `ciaddr`, or `yiaddr` when the client has no address yet.
        ip: Ipv4Addr,
        /// The client's hardware address.
        mac: EthernetAddress,
    },
    /// To the relay agent at `giaddr:67` (routed/ARPed as any IP destination).
    Relay {
        /// The relay agent's address.
        giaddr: Ipv4Addr,
    },
}

/// A reply to send: the message and where it goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpReply {
    /// The DHCPOFFER, DHCPACK or DHCPNAK.
    pub repr: DhcpRepr,
    /// Where to send it.
    pub dest: ReplyDest,
}

/// One counter per outcome. Every message increments exactly one of the outcome
/// counters `offers`..`malformed`, or only `port_limit` when a DISCOVER exceeds its
/// port's share; a REQUEST refused for its port's share increments `port_limit` beside
/// its outcome (`naks` or `exhausted`). `discovers_received`/`requests_received` count
/// input, `reply_too_large` counts a reply that was decided (and counted) but did not fit
/// the caller's buffer, and `expired` counts leases running out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DhcpCounters {
    /// DHCPDISCOVERs received.
    pub discovers_received: u64,
    /// DHCPREQUESTs received.
    pub requests_received: u64,
    /// DHCPOFFERs sent.
    pub offers: u64,
    /// DHCPACKs sent in answer to DHCPREQUESTs.
    pub acks: u64,
    /// DHCPNAKs sent.
    pub naks: u64,
    /// DHCPDECLINEs accepted (address quarantined).
    pub declines: u64,
    /// DHCPRELEASEs accepted (address freed).
    pub releases: u64,
    /// DHCPINFORMs answered (with a DHCPACK).
    pub informs: u64,
    /// Silence: no address left in the pool, or `max_leases` reached.
    pub exhausted: u64,
    /// Silence: a DHCPREQUEST/DECLINE/RELEASE naming another server.
    pub ignored_foreign_server: u64,
    /// Silence: an INIT-REBOOT, RENEWING or REBINDING request from a client we have no
    /// record of (RFC 2131 4.3.2).
    pub ignored_unknown_client: u64,
    /// Silence: a DECLINE or RELEASE for an address the client does not hold.
    pub ignored_not_owner: u64,
    /// Silence: relayed (`giaddr` set) from a subnet other than ours.
    pub ignored_foreign_relay: u64,
    /// Silence: a message type a server does not take (OFFER, ACK, NAK, unknown).
    pub ignored_message_type: u64,
    /// Silence: a message missing what its type requires (a DHCPREQUEST with neither
    /// server id, requested address nor ciaddr; a DHCPDECLINE without requested address).
    pub ignored_incomplete: u64,
    /// Silence: unparseable payload ([`DhcpServer::handle_bytes`] only).
    pub malformed: u64,
    /// Replies that did not fit the caller's buffer ([`DhcpServer::handle_bytes`] only).
    pub reply_too_large: u64,
    /// Bound leases that ran out (counted by expiry, not per message).
    pub expired: u64,
    /// Silence (or a DHCPNAK to a REQUEST): the ingress port already holds its share of
    /// the pool (`max_leases_per_port`).
    pub port_limit: u64,
}

/// The DHCP server of one subnet. See the module docs for its invariants.
#[derive(Debug)]
pub struct DhcpServer {
    config: DhcpServerConfig,
    lease_secs: u32,
    router: Option<Ipv4Addr>,
    dns: Option<Ipv4List<DNS_SERVERS_MAX>>,
    domain: Option<InlineBytes<DOMAIN_NAME_MAX>>,
    leases: LeaseTable,
    counters: DhcpCounters,
    dirty: bool,
    /// The ingress port of the message being handled (`u16::MAX`: none given).
    port: u16,
}

/// No ingress port given (the lease counts against no port's share).
const NO_PORT: u16 = u16::MAX;

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn nak_text(text: &str) -> Option<InlineBytes<MESSAGE_MAX>> {
    InlineBytes::new(text.as_bytes())
}

impl DhcpServer {
    /// Validates `config` and, if it names a lease file that exists, restores its leases.
    /// `now` and `wall_now` are the same moment on the monotonic and the wall clock:
    /// they convert the file's wall-clock expiries to [`Instant`]s (unused without a
    /// lease file).
    ///
    /// # Errors
    /// [`DhcpConfigError`] for an invalid configuration, or
    /// [`DhcpConfigError::LeaseFile`] (naming the file) if the lease file cannot be read
    /// or is corrupt, truncated, or contradicts itself (an address or a client twice).
    pub fn new(
        config: DhcpServerConfig,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<Self, DhcpConfigError> {
        config.validate()?;
        let lease_secs = config.lease_time.as_secs() as u32;
        let mut server = DhcpServer {
            lease_secs,
            router: config.router,
            dns: Ipv4List::new(&config.dns_servers),
            domain: config
                .domain_name
                .as_deref()
                .and_then(|d| InlineBytes::new(d.as_bytes())),
            leases: LeaseTable::new(
                config.pool_start,
                config.pool_len(),
                config.effective_max_leases(),
            )
            .with_max_per_port(config.max_leases_per_port),
            counters: DhcpCounters::default(),
            dirty: false,
            port: NO_PORT,
            config,
        };
        if let Some(path) = server.config.lease_file.clone() {
            if let Some(records) = lease_file::load(&path)? {
                server.restore(&path, &records, now, unix_secs(wall_now))?;
            }
        }
        Ok(server)
    }

    fn restore(
        &mut self,
        path: &std::path::Path,
        records: &[LeaseRecord],
        now: Instant,
        wall_secs: u64,
    ) -> Result<(), LeaseFileError> {
        let corrupt = |r: &LeaseRecord, reason| LeaseFileError::Corrupt {
            path: path.to_path_buf(),
            line: r.line,
            reason,
        };
        // Entries outside the (possibly reconfigured) pool are stale, not corrupt: skipped.
        for r in records {
            if !self.leases.contains(r.addr) {
                continue;
            }
            let taken = self
                .leases
                .lease(r.addr)
                .is_some_and(|l| l.state != LeaseState::Free || l.client.is_some());
            if taken {
                return Err(corrupt(r, "address listed twice"));
            }
            if let Some(c) = &r.client {
                if self.leases.lease_of(c).is_some() {
                    return Err(corrupt(r, "client listed twice"));
                }
            }
            // Remaining time, capped at the lease time in case the wall clock went back.
            let remaining = Duration::from_secs(
                r.expiry_unix
                    .saturating_sub(wall_secs)
                    .min(u64::from(self.lease_secs)),
            );
            match (r.state, &r.client) {
                (RecordState::Declined, _) => {
                    if !remaining.is_zero() {
                        let q = remaining.min(self.config.decline_quarantine);
                        self.leases.decline(r.addr, now + q);
                    }
                }
                (RecordState::Bound, Some(c))
                    if !remaining.is_zero() && self.leases.can_hold(r.addr) =>
                {
                    self.leases
                        .hold(r.addr, c, LeaseState::Bound, now + remaining);
                }
                (_, Some(c)) => {
                    self.leases.remember(r.addr, c);
                }
                (_, None) => return Err(corrupt(r, "record without client")),
            }
        }
        Ok(())
    }

    /// The configuration in force.
    pub fn config(&self) -> &DhcpServerConfig {
        &self.config
    }

    /// The counters so far.
    pub fn counters(&self) -> DhcpCounters {
        self.counters
    }

    /// The lease table (read-only).
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// The next moment something expires (an offer hold, a lease, a quarantine): call
    /// [`DhcpServer::poll`] then (or just keep calling `handle`, which expires first).
    pub fn poll_at(&self) -> Option<Instant> {
        self.leases.next_deadline()
    }

    /// Expires everything due at `now`: expired leases become free but stay remembered
    /// for their clients while nobody else takes the address. Allocation-free.
    pub fn poll(&mut self, now: Instant) {
        let e = self.leases.expire(now);
        self.counters.expired += e.leases;
    }

    /// Whether leases changed since the last save (bind, renewal, release, decline).
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the lease file now (atomically, see [`super::lease_file`]); a no-op without
    /// a configured file. `now`/`wall_now` are the same moment on both clocks.
    ///
    /// # Errors
    /// [`LeaseFileError::Io`] naming the file; the previous file is then intact and the
    /// server stays dirty.
    pub fn save(&mut self, now: Instant, wall_now: SystemTime) -> Result<(), LeaseFileError> {
        let Some(path) = self.config.lease_file.clone() else {
            self.dirty = false;
            return Ok(());
        };
        self.poll(now);
        let wall_secs = unix_secs(wall_now);
        let records: Vec<LeaseRecord> = self
            .leases
            .iter()
            .map(|l| {
                let expiry = |d: Option<Instant>| {
                    let remaining = d.map_or(Duration::ZERO, |d| d.saturating_since(now));
                    // Round up: a lease never ends earlier after a restart than before.
                    let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
                    wall_secs + secs
                };
                let (state, expiry_unix) = match l.state {
                    LeaseState::Bound => (RecordState::Bound, expiry(l.deadline)),
                    LeaseState::Declined => (RecordState::Declined, expiry(l.deadline)),
                    // An offer hold is transient: only the client memory persists.
                    LeaseState::Offered | LeaseState::Free => (RecordState::Free, 0),
                };
                LeaseRecord {
                    state,
                    addr: l.addr,
                    expiry_unix,
                    client: l.client,
                    line: 0,
                }
            })
            .collect();
        lease_file::store(&path, &records)?;
        self.dirty = false;
        Ok(())
    }

    /// [`DhcpServer::save`] if anything changed since the last save; returns whether it
    /// wrote. Meant for a periodic control-plane timer.
    ///
    /// # Errors
    /// As [`DhcpServer::save`].
    pub fn flush_if_dirty(
        &mut self,
        now: Instant,
        wall_now: SystemTime,
    ) -> Result<bool, LeaseFileError> {
        if !self.dirty {
            return Ok(false);
        }
        self.save(now, wall_now)?;
        Ok(true)
    }

    /// Parses `payload`, handles it and emits the reply into `out`: `Ok(Some((len,
    /// dest)))` with the reply in `out[..len]`, `Ok(None)` for silence. Allocation-free.
    ///
    /// # Errors
    /// The parse error of a malformed payload (counted in `malformed`), or
    /// [`WireError::Truncated`] if `out` is too small for the reply (counted in
    /// `reply_too_large`; 548 bytes always suffice).
    pub fn handle_bytes(
        &mut self,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Option<(usize, ReplyDest)>, WireError> {
        self.handle_bytes_from(NO_PORT, now, payload, out)
    }

    /// [`DhcpServer::handle_bytes`] for a message that came in on ingress port `port`:
    /// leases it makes count against that port's share (`max_leases_per_port`).
    ///
    /// # Errors
    /// As [`DhcpServer::handle_bytes`].
    pub fn handle_bytes_from(
        &mut self,
        port: u16,
        now: Instant,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<Option<(usize, ReplyDest)>, WireError> {
        let request = match DhcpRepr::parse_bytes(payload) {
            Ok(r) => r,
            Err(e) => {
                self.counters.malformed += 1;
                return Err(e);
            }
        };
        let Some(reply) = self.handle_from(port, now, &request) else {
            return Ok(None);
        };
        match reply.repr.emit(out) {
            Ok(len) => Ok(Some((len, reply.dest))),
            Err(e) => {
                self.counters.reply_too_large += 1;
                Err(e)
            }
        }
    }

    /// Handles one client message at `now`; `None` means stay silent (the reason is
    /// counted). Expires what is due first. Allocation-free.
    ///
    /// Replies carry, per RFC 2131 Table 3 (as updated by RFC 6842):
    /// - always 53 (type) and 54 (server identifier); `xid`, `flags`, `giaddr`, `chaddr`
    ///   copied from the request; `secs`, `hops`, `siaddr` zero; 61 (client identifier)
    ///   echoed when the client sent one (RFC 6842: the server "MUST return the 'client
    ///   identifier' option, unaltered");
    /// - DHCPOFFER and DHCPACK to a DHCPREQUEST: `yiaddr`, 51 (lease time), 58 (T1 =
    ///   lease/2), 59 (T2 = 7/8 lease), 1 (subnet mask), 3 (router), 6 (DNS), 12 (the
    ///   client's host name, echoed), 15 (domain name); a DHCPACK keeps the request's
    ///   `ciaddr`;
    /// - DHCPACK to a DHCPINFORM: the same options without 51/58/59, `yiaddr` zero,
    ///   `ciaddr` copied;
    /// - DHCPNAK: only 53, 54, 56 (a message saying why) and the echoed 61; `ciaddr`,
    ///   `yiaddr`, `siaddr` zero; the broadcast bit set when relayed (RFC 2131 4.3.2);
    /// - never 50, 55 or 57.
    pub fn handle(&mut self, now: Instant, request: &DhcpRepr) -> Option<DhcpReply> {
        self.handle_from(NO_PORT, now, request)
    }

    /// [`DhcpServer::handle`] for a message that came in on ingress port `port` (see
    /// [`DhcpServer::handle_bytes_from`]).
    pub fn handle_from(
        &mut self,
        port: u16,
        now: Instant,
        request: &DhcpRepr,
    ) -> Option<DhcpReply> {
        self.port = port;
        let reply = self.handle_inner(now, request);
        self.port = NO_PORT;
        reply
    }

    fn handle_inner(&mut self, now: Instant, request: &DhcpRepr) -> Option<DhcpReply> {
        self.poll(now);
        if request.giaddr != Ipv4Addr::UNSPECIFIED && !self.config.in_subnet(request.giaddr) {
            // We serve one subnet: a relay from another one would get addresses that do
            // not work there.
            self.counters.ignored_foreign_relay += 1;
            return None;
        }
        match request.message_type {
            DhcpMessageType::Discover => self.discover(now, request),
            DhcpMessageType::Request => self.request(now, request),
            DhcpMessageType::Decline => self.decline(now, request),
            DhcpMessageType::Release => self.release(request),
            DhcpMessageType::Inform => self.inform(request),
            DhcpMessageType::Offer
            | DhcpMessageType::Ack
            | DhcpMessageType::Nak
            | DhcpMessageType::Unknown(_) => {
                self.counters.ignored_message_type += 1;
                None
            }
        }
    }

    /// RFC 2131 4.3.1: choose the client's current or previous address, else the
    /// requested one if valid and free, else a free one; hold it for the client.
    fn discover(&mut self, now: Instant, req: &DhcpRepr) -> Option<DhcpReply> {
        self.counters.discovers_received += 1;
        let key = ClientKey::of(req);
        let existing = self.leases.lease_of(&key);
        let addr = existing.map(|l| l.addr).or_else(|| {
            req.requested_ip
                .filter(|&r| self.leases.is_available_for(r, &key))
                .or_else(|| self.leases.find_free())
        });
        let Some(addr) = addr.filter(|&a| self.leases.can_hold(a)) else {
            self.counters.exhausted += 1;
            return None;
        };
        if !self.port_can_hold(addr) {
            self.counters.port_limit += 1;
            return None;
        }
        // A bound client that lost its state keeps its lease; otherwise hold the offer.
        if existing.map(|l| l.state) != Some(LeaseState::Bound) {
            let held = self.leases.hold_on(
                self.port,
                addr,
                &key,
                LeaseState::Offered,
                now + self.config.offer_hold,
            );
            debug_assert!(held);
        }
        self.counters.offers += 1;
        Some(self.lease_reply(req, DhcpMessageType::Offer, addr))
    }

    /// RFC 2131 4.3.2, telling the client's state from the request (the table of
    /// 4.3.2): server id present → SELECTING; else ciaddr set → RENEWING or
    /// REBINDING; else requested address present → INIT-REBOOT.
    fn request(&mut self, now: Instant, req: &DhcpRepr) -> Option<DhcpReply> {
        self.counters.requests_received += 1;
        let key = ClientKey::of(req);
        let record = self.leases.lease_of(&key);
        if let Some(server_id) = req.server_identifier {
            // SELECTING.
            if server_id != self.config.server_ip {
                // "Servers not selected by the DHCPREQUEST message use the message as
                // notification that the client has declined that server's offer."
                if let Some(l) = record.filter(|l| l.state == LeaseState::Offered) {
                    self.leases.free(l.addr);
                }
                self.counters.ignored_foreign_server += 1;
                return None;
            }
            // "'requested IP address' MUST be filled in with the yiaddr value from the
            // chosen DHCPOFFER"; some old clients put it in ciaddr instead.
            let wanted = req
                .requested_ip
                .or((req.ciaddr != Ipv4Addr::UNSPECIFIED).then_some(req.ciaddr));
            let Some(wanted) = wanted else {
                return Some(self.nak(req, "no requested address"));
            };
            // Our offer (or lease) must be the address requested. Without any record
            // (the offer hold ran out and the memory was taken, or we restarted without a
            // lease file) an address still free in the pool is granted.
            if record.is_some_and(|l| l.addr != wanted) {
                return Some(self.nak(req, "requested address was not offered"));
            }
            return match self.bind(now, req, &key, wanted) {
                Some(reply) => Some(reply),
                None => Some(self.nak(req, "requested address not available")),
            };
        }
        if req.ciaddr != Ipv4Addr::UNSPECIFIED {
            // RENEWING (unicast to us) or REBINDING (broadcast): the payload looks the
            // same, so both are handled alike; the ACK goes to ciaddr either way (4.1).
            return match record {
                Some(l) if l.addr == req.ciaddr => {
                    // Extending our own lease: "the server SHOULD return a DHCPACK".
                    let reply = self.bind(now, req, &key, req.ciaddr);
                    if reply.is_none() {
                        self.counters.exhausted += 1;
                    }
                    reply
                }
                // We know this client under another address: its ciaddr is wrong.
                Some(_) => Some(self.nak(req, "address not leased to this client")),
                None => {
                    let held_by_other = self.leases.lease(req.ciaddr).is_some_and(|l| {
                        matches!(l.state, LeaseState::Offered | LeaseState::Bound)
                    });
                    if held_by_other {
                        // Our pool, leased to someone else: certainly wrong.
                        Some(self.nak(req, "address leased to another client"))
                    } else {
                        // No record: the lease may come from another server; "A DHCP
                        // server MAY extend a client's lease only if it has local
                        // administrative authority to do so."
                        self.counters.ignored_unknown_client += 1;
                        None
                    }
                }
            };
        }
        if let Some(wanted) = req.requested_ip {
            // INIT-REBOOT: "Server SHOULD send a DHCPNAK message to the client if the
            // 'requested IP address' is incorrect, or is on the wrong network."
            if !self.config.in_subnet(wanted) {
                return Some(self.nak(req, "wrong network"));
            }
            return match record {
                Some(l) if l.addr == wanted => match self.bind(now, req, &key, wanted) {
                    Some(reply) => Some(reply),
                    None => {
                        self.counters.exhausted += 1;
                        None
                    }
                },
                Some(_) => Some(self.nak(req, "requested address incorrect")),
                None => {
                    // "If the DHCP server has no record of this client, then it MUST
                    // remain silent".
                    self.counters.ignored_unknown_client += 1;
                    None
                }
            };
        }
        self.counters.ignored_incomplete += 1;
        None
    }

    /// Binds `addr` to `key` for a full lease and builds the DHCPACK, if `addr` is the
    /// client's or free, and within `max_leases`.
    fn bind(
        &mut self,
        now: Instant,
        req: &DhcpRepr,
        key: &ClientKey,
        addr: Ipv4Addr,
    ) -> Option<DhcpReply> {
        if !self.leases.is_available_for(addr, key) || !self.leases.can_hold(addr) {
            return None;
        }
        if !self.port_can_hold(addr) {
            self.counters.port_limit += 1;
            return None;
        }
        let until = now + Duration::from_secs(u64::from(self.lease_secs));
        if !self
            .leases
            .hold_on(self.port, addr, key, LeaseState::Bound, until)
        {
            return None;
        }
        self.dirty = true;
        self.counters.acks += 1;
        Some(self.lease_reply(req, DhcpMessageType::Ack, addr))
    }

    /// Whether the port of the message being handled may hold `addr` (always, when the
    /// message came with no port).
    fn port_can_hold(&self, addr: Ipv4Addr) -> bool {
        self.port == NO_PORT || self.leases.port_can_hold(addr, self.port)
    }

    /// RFC 2131 4.3.3: the address is in use elsewhere; quarantine it.
    fn decline(&mut self, now: Instant, req: &DhcpRepr) -> Option<DhcpReply> {
        if req
            .server_identifier
            .is_some_and(|s| s != self.config.server_ip)
        {
            self.counters.ignored_foreign_server += 1;
            return None;
        }
        let Some(addr) = req.requested_ip else {
            self.counters.ignored_incomplete += 1;
            return None;
        };
        // Only the client we gave the address to may take it out of the pool; anyone
        // else could otherwise empty the pool with forged DECLINEs.
        let key = ClientKey::of(req);
        match self.leases.lease_of(&key) {
            Some(l) if l.addr == addr => {
                self.leases
                    .decline(addr, now + self.config.decline_quarantine);
                self.dirty = true;
                self.counters.declines += 1;
            }
            _ => self.counters.ignored_not_owner += 1,
        }
        None
    }

    /// RFC 2131 4.3.4: free the address, remember the client.
    fn release(&mut self, req: &DhcpRepr) -> Option<DhcpReply> {
        if req
            .server_identifier
            .is_some_and(|s| s != self.config.server_ip)
        {
            self.counters.ignored_foreign_server += 1;
            return None;
        }
        let key = ClientKey::of(req);
        match self.leases.lease_of(&key) {
            Some(l)
                if l.addr == req.ciaddr
                    && matches!(l.state, LeaseState::Offered | LeaseState::Bound) =>
            {
                self.leases.free(l.addr);
                self.dirty = true;
                self.counters.releases += 1;
            }
            _ => self.counters.ignored_not_owner += 1,
        }
        None
    }

    /// RFC 2131 4.3.5: configuration only, "without allocating a new address, checking
    /// for an existing binding, filling in 'yiaddr' or including lease time parameters".
    fn inform(&mut self, req: &DhcpRepr) -> Option<DhcpReply> {
        self.counters.informs += 1;
        let mut repr = self.reply_base(req, DhcpMessageType::Ack);
        repr.ciaddr = req.ciaddr;
        self.add_config_options(req, &mut repr);
        Some(DhcpReply {
            dest: destination(req, &repr),
            repr,
        })
    }

    /// The fields every reply shares (Table 3).
    fn reply_base(&self, req: &DhcpRepr, message_type: DhcpMessageType) -> DhcpRepr {
        let mut repr = DhcpRepr::new(message_type, req.xid, req.client_hardware_address);
        repr.broadcast = req.broadcast;
        repr.giaddr = req.giaddr;
        repr.server_identifier = Some(self.config.server_ip);
        repr.client_identifier = req.client_identifier;
        repr
    }

    fn add_config_options(&self, req: &DhcpRepr, repr: &mut DhcpRepr) {
        repr.subnet_mask = Some(self.config.subnet_mask);
        repr.router = self.router;
        repr.dns_servers = self.dns;
        repr.hostname = req.hostname;
        repr.domain_name = self.domain;
    }

    /// A DHCPOFFER or DHCPACK (to a DHCPREQUEST) for `addr`.
    fn lease_reply(
        &self,
        req: &DhcpRepr,
        message_type: DhcpMessageType,
        addr: Ipv4Addr,
    ) -> DhcpReply {
        let mut repr = self.reply_base(req, message_type);
        repr.yiaddr = addr;
        if message_type == DhcpMessageType::Ack {
            // Table 3: "ciaddr from DHCPREQUEST or 0".
            repr.ciaddr = req.ciaddr;
        }
        let lease = self.lease_secs;
        repr.lease_duration = Some(lease);
        repr.renewal_duration = Some(lease / 2);
        repr.rebinding_duration = Some((u64::from(lease) * 7 / 8) as u32);
        self.add_config_options(req, &mut repr);
        DhcpReply {
            dest: destination(req, &repr),
            repr,
        }
    }

    fn nak(&mut self, req: &DhcpRepr, why: &str) -> DhcpReply {
        self.counters.naks += 1;
        let mut repr = self.reply_base(req, DhcpMessageType::Nak);
        // 4.3.2: "If 'giaddr' is set in the DHCPREQUEST message, the client is on a
        // different subnet. The server MUST set the broadcast bit in the DHCPNAK".
        repr.broadcast = req.broadcast || req.giaddr != Ipv4Addr::UNSPECIFIED;
        repr.message = nak_text(why);
        DhcpReply {
            dest: destination(req, &repr),
            repr,
        }
    }
}

/// RFC 2131 4.1: "If the 'giaddr' field in a DHCP message from a client is non-zero, the
/// server sends any return messages to the 'DHCP server' port on the BOOTP relay agent
/// whose address appears in 'giaddr'. If the 'giaddr' field is zero and the 'ciaddr'
/// field is nonzero, then the server unicasts DHCPOFFER and DHCPACK messages to the
/// address in 'ciaddr'. If 'giaddr' is zero and 'ciaddr' is zero, and the broadcast bit
/// is set, then the server broadcasts DHCPOFFER and DHCPACK messages to 0xffffffff. If
/// the broadcast bit is not set and 'giaddr' is zero and 'ciaddr' is zero, then the
/// server unicasts DHCPOFFER and DHCPACK messages to the client's hardware address and
/// 'yiaddr' address. In all cases, when 'giaddr' is zero, the server broadcasts any
/// DHCPNAK messages to 0xffffffff."
///
/// A reply with no address to unicast to (a DHCPINFORM with `ciaddr` zero) is broadcast.
pub fn destination(request: &DhcpRepr, reply: &DhcpRepr) -> ReplyDest {
    let zero = Ipv4Addr::UNSPECIFIED;
    if request.giaddr != zero {
        ReplyDest::Relay {
            giaddr: request.giaddr,
        }
    } else if reply.message_type == DhcpMessageType::Nak {
        ReplyDest::Broadcast
    } else if request.ciaddr != zero {
        ReplyDest::Unicast {
            ip: request.ciaddr,
            mac: request.client_hardware_address,
        }
    } else if request.broadcast || reply.yiaddr == zero {
        ReplyDest::Broadcast
    } else {
        ReplyDest::Unicast {
            ip: reply.yiaddr,
            mac: request.client_hardware_address,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> DhcpServer {
        DhcpServer::new(DhcpServerConfig::host_only(), Instant::ZERO, UNIX_EPOCH).unwrap()
    }

    #[test]
    fn offer_hold_expiry_frees_the_address_but_remembers_the_client() {
        let mut s = server();
        let req = DhcpRepr::new(
            DhcpMessageType::Discover,
            1,
            EthernetAddress([2, 0, 0, 0, 0, 1]),
        );
        let offer = s.handle(Instant::ZERO, &req).unwrap();
        assert_eq!(s.poll_at(), Some(Instant::ZERO + s.config().offer_hold));
        s.poll(Instant::from_secs(61));
        assert_eq!(s.leases().active(), 0);
        assert_eq!(s.poll_at(), None);
        let again = s.handle(Instant::from_secs(62), &req).unwrap();
        assert_eq!(again.repr.yiaddr, offer.repr.yiaddr);
        s.leases().check_invariants();
    }

    #[test]
    fn destination_follows_rfc2131_4_1_precedence() {
        let mut req = DhcpRepr::new(
            DhcpMessageType::Request,
            1,
            EthernetAddress([2, 0, 0, 0, 0, 1]),
        );
        let mut ack = DhcpRepr::new(DhcpMessageType::Ack, 1, EthernetAddress([2, 0, 0, 0, 0, 1]));
        ack.yiaddr = Ipv4Addr::new(10, 0, 0, 5);
        let nak = DhcpRepr::new(DhcpMessageType::Nak, 1, EthernetAddress([2, 0, 0, 0, 0, 1]));
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        assert_eq!(
            destination(&req, &ack),
            ReplyDest::Unicast {
                ip: ack.yiaddr,
                mac
            }
        );
        req.broadcast = true;
        assert_eq!(destination(&req, &ack), ReplyDest::Broadcast);
        req.ciaddr = Ipv4Addr::new(10, 0, 0, 9);
        assert_eq!(
            destination(&req, &ack),
            ReplyDest::Unicast {
                ip: req.ciaddr,
                mac
            }
        );
        assert_eq!(destination(&req, &nak), ReplyDest::Broadcast);
        req.giaddr = Ipv4Addr::new(10, 0, 0, 1);
        let relay = ReplyDest::Relay { giaddr: req.giaddr };
        assert_eq!(destination(&req, &ack), relay);
        assert_eq!(destination(&req, &nak), relay);
    }
}
