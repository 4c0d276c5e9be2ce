//! The DHCP server fed an arbitrary sequence of messages: well-formed DISCOVER, REQUEST,
//! DECLINE, RELEASE, INFORM (and other types) built from fuzz-chosen fields for a few
//! clients (MACs and client identifiers that collide on purpose), the same messages
//! emitted and then damaged byte by byte, raw payloads, clock jumps and expiry polls, on a
//! small pool with short times so that exhaustion, offer holds, quarantines and lease ends
//! all happen. After every step:
//!
//! - every message has exactly one outcome: a reply (OFFER, ACK, NAK) or one silence
//!   counter (a port over its share may add `port_limit` to a NAK or an `exhausted`, or
//!   be the only one); a reply fits 548 bytes, parses back to itself, and carries what
//!   RFC 2131 Table 3 says (no 50/55/57; a NAK no address);
//! - every offered or acknowledged address is in the pool, and the lease table then holds
//!   it for that client;
//! - no two clients hold the same address: an address is never offered or acknowledged
//!   to a client while the server's own ACK gave it to another client whose lease has not
//!   ended (by time, RELEASE or DECLINE), nor while it is quarantined after a DECLINE;
//! - the lease table is consistent through its public view: each client remembered by
//!   one address, held slots name a client and a deadline, declined ones no client,
//!   `active()` counts the held slots and stays within `max_active()`, each port within
//!   its share, `find_free()` finds a free address whenever there is one.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::{Duration, UNIX_EPOCH};
use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{
    DhcpMessageType, DhcpRepr, InlineBytes, HEADER_LEN, MIN_MAX_MESSAGE_LEN,
};
use vnet_core::wire::EthernetAddress;
use vnet_modes::dhcp::{
    ClientKey, DhcpCounters, DhcpReply, DhcpServer, DhcpServerConfig, LeaseState,
};

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 100);
const POOL_START: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 101);

#[derive(Debug, Arbitrary)]
struct Input {
    /// Pool size 1..=8.
    pool: u8,
    /// `max_leases` (None: the pool).
    max_leases: Option<u8>,
    /// `max_leases_per_port` 1..=4.
    per_port: u8,
    /// Lease time, offer hold and quarantine: 1..=64 s each.
    lease_secs: u8,
    hold_secs: u8,
    quarantine_secs: u8,
    steps: Vec<Step>,
}

#[derive(Debug, Arbitrary)]
enum Step {
    /// A message, handled as a parsed value.
    Msg(Msg),
    /// A message emitted, damaged (byte `at % len` set to `value`), then handled as bytes.
    Damaged { msg: Msg, edits: Vec<(u16, u8)> },
    /// Any payload.
    Raw(Vec<u8>),
    /// The clock moves on (milliseconds, up to ~65 s).
    Wait(u16),
    /// The clock moves on past every lease and quarantine.
    LongWait,
    /// The expiry timer.
    Poll,
}

#[derive(Debug, Arbitrary)]
struct Msg {
    kind: Kind,
    /// The ingress port (0..=3), or none (4..).
    port: u8,
    /// One of 6 MACs.
    mac: u8,
    /// One of 3 client identifiers, or none.
    client_id: Option<u8>,
    xid: u32,
    broadcast: bool,
    ciaddr: Addr,
    requested: Option<Addr>,
    server_id: Option<Addr>,
    giaddr: Option<Addr>,
    hostname: Option<Vec<u8>>,
    parameters: Option<Vec<u8>>,
    max_message_size: Option<u16>,
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Discover,
    Request,
    Decline,
    Release,
    Inform,
    Other(u8),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum Addr {
    Zero,
    /// `POOL_START + n` (past the pool too).
    Pool(u8),
    Server,
    Any(u32),
}

struct Rig {
    server: DhcpServer,
    now: Instant,
    pool: u32,
    lease: Duration,
    quarantine: Duration,
    /// What the server's ACKs gave out: address -> (client, end of lease).
    bound: HashMap<Ipv4Addr, (ClientKey, Instant)>,
    /// Addresses quarantined by an accepted DECLINE, until when.
    declined: HashMap<Ipv4Addr, Instant>,
}

impl Addr {
    fn ip(self) -> Ipv4Addr {
        match self {
            Addr::Zero => Ipv4Addr::UNSPECIFIED,
            Addr::Pool(n) => Ipv4Addr::from(u32::from(POOL_START) + u32::from(n % 16)),
            Addr::Server => SERVER,
            Addr::Any(a) => Ipv4Addr::from(a),
        }
    }
}

impl Msg {
    fn repr(&self) -> DhcpRepr {
        let kind = match self.kind {
            Kind::Discover => DhcpMessageType::Discover,
            Kind::Request => DhcpMessageType::Request,
            Kind::Decline => DhcpMessageType::Decline,
            Kind::Release => DhcpMessageType::Release,
            Kind::Inform => DhcpMessageType::Inform,
            Kind::Other(t) => DhcpMessageType::from(t),
        };
        let mac = EthernetAddress([0x08, 0, 0x27, 0, 0, self.mac % 6]);
        let mut r = DhcpRepr::new(kind, self.xid, mac);
        r.broadcast = self.broadcast;
        r.ciaddr = self.ciaddr.ip();
        r.requested_ip = self.requested.map(Addr::ip);
        r.server_identifier = self.server_id.map(Addr::ip);
        r.giaddr = self.giaddr.map_or(Ipv4Addr::UNSPECIFIED, Addr::ip);
        // Identifiers 0 and 1 are distinct; 2 is type 1 + MAC 0 (what udhcpc sends).
        r.client_identifier = self.client_id.and_then(|i| match i % 3 {
            0 => InlineBytes::new(b"\x00client-a"),
            1 => InlineBytes::new(b"\x00client-b"),
            _ => InlineBytes::new(&[1, 0x08, 0, 0x27, 0, 0, 0]),
        });
        r.hostname = self
            .hostname
            .as_deref()
            .and_then(InlineBytes::new_truncated);
        r.parameter_request_list = self
            .parameters
            .as_deref()
            .and_then(InlineBytes::new_truncated);
        r.max_message_size = self.max_message_size;
        r
    }

    fn port(&self) -> Option<u16> {
        (self.port < 4).then_some(u16::from(self.port))
    }
}

/// The outcome counters a message increments exactly one of.
fn outcomes(c: &DhcpCounters) -> [u64; 14] {
    [
        c.offers,
        c.acks,
        c.naks,
        c.declines,
        c.releases,
        c.informs,
        c.exhausted,
        c.ignored_foreign_server,
        c.ignored_unknown_client,
        c.ignored_not_owner,
        c.ignored_foreign_relay,
        c.ignored_message_type,
        c.ignored_incomplete,
        c.malformed,
    ]
}

impl Rig {
    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        let off = u32::from(ip).wrapping_sub(u32::from(POOL_START));
        off < self.pool
    }

    /// Handles `req` (as a value, or as `bytes` when given) and checks the outcome.
    fn handle(&mut self, req: Option<&DhcpRepr>, bytes: Option<&[u8]>, port: Option<u16>) {
        let before = self.server.counters();
        let reply: Option<DhcpReply> = match (req, bytes) {
            (Some(req), None) => match port {
                Some(p) => self.server.handle_from(p, self.now, req),
                None => self.server.handle(self.now, req),
            },
            (_, Some(bytes)) => {
                let mut out = [0u8; MIN_MAX_MESSAGE_LEN];
                let result = match port {
                    Some(p) => self.server.handle_bytes_from(p, self.now, bytes, &mut out),
                    None => self.server.handle_bytes(self.now, bytes, &mut out),
                };
                match result {
                    Ok(Some((len, _dest))) => Some(DhcpReply {
                        repr: DhcpRepr::parse_bytes(&out[..len]).expect("an emitted reply parses"),
                        dest: _dest,
                    }),
                    Ok(None) => None,
                    Err(e) => {
                        let after = self.server.counters();
                        assert_eq!(
                            after.reply_too_large, before.reply_too_large,
                            "a reply did not fit {MIN_MAX_MESSAGE_LEN} bytes: {e:?}"
                        );
                        assert_eq!(after.malformed, before.malformed + 1);
                        None
                    }
                }
            }
            (None, None) => unreachable!(),
        };
        let after = self.server.counters();
        let delta: Vec<u64> = outcomes(&after)
            .iter()
            .zip(outcomes(&before))
            .map(|(a, b)| a - b)
            .collect();
        let total: u64 = delta.iter().sum();
        let port_limit = after.port_limit - before.port_limit;
        assert!(port_limit <= 1);
        assert!(
            total == 1 || (total == 0 && port_limit == 1),
            "one message, outcomes {delta:?} (port_limit +{port_limit})"
        );
        let replied = delta[0] + delta[1] + delta[2] + delta[5] == 1;
        assert_eq!(
            reply.is_some(),
            replied,
            "reply {reply:?} vs outcomes {delta:?}"
        );

        // The request as the server read it (bytes parse to it when they got a reply).
        let parsed;
        let req = match (req, bytes) {
            (Some(r), None) => r,
            (_, Some(b)) => match DhcpRepr::parse_bytes(b) {
                Ok(r) => {
                    parsed = r;
                    &parsed
                }
                Err(_) => {
                    assert!(reply.is_none());
                    self.check_table();
                    return;
                }
            },
            (None, None) => unreachable!(),
        };
        let key = ClientKey::of(req);
        if delta[4] == 1 {
            // An accepted RELEASE ends the client's lease.
            self.bound.retain(|_, (c, _)| *c != key);
        }
        if delta[3] == 1 {
            let addr = req
                .requested_ip
                .expect("an accepted DECLINE names its address");
            self.bound.remove(&addr);
            let until = self.now + self.quarantine;
            self.declined.insert(addr, until);
        }
        if let Some(reply) = reply {
            self.check_reply(req, &reply, &key);
        }
        self.check_table();
    }

    fn check_reply(&mut self, req: &DhcpRepr, reply: &DhcpReply, key: &ClientKey) {
        let r = &reply.repr;
        assert_eq!(r.xid, req.xid);
        assert_eq!(r.client_hardware_address, req.client_hardware_address);
        assert_eq!(r.server_identifier, Some(SERVER));
        assert_eq!(r.client_identifier, req.client_identifier);
        assert!(r.requested_ip.is_none() && r.parameter_request_list.is_none());
        assert!(r.max_message_size.is_none());
        // It emits and parses back to itself.
        let mut buf = [0u8; MIN_MAX_MESSAGE_LEN];
        let len = r.emit(&mut buf).expect("a reply fits 548 bytes");
        assert!(len >= HEADER_LEN);
        assert_eq!(DhcpRepr::parse_bytes(&buf[..len]).as_ref(), Ok(r));
        let lease_reply = match (req.message_type, r.message_type) {
            (DhcpMessageType::Discover, DhcpMessageType::Offer) => true,
            (DhcpMessageType::Request, DhcpMessageType::Ack) => true,
            (DhcpMessageType::Request, DhcpMessageType::Nak) => {
                assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
                assert_eq!(r.ciaddr, Ipv4Addr::UNSPECIFIED);
                assert!(r.lease_duration.is_none());
                false
            }
            (DhcpMessageType::Inform, DhcpMessageType::Ack) => {
                assert_eq!(r.yiaddr, Ipv4Addr::UNSPECIFIED);
                assert!(r.lease_duration.is_none());
                false
            }
            (q, a) => panic!("{a:?} in answer to {q:?}"),
        };
        if !lease_reply {
            return;
        }
        let addr = r.yiaddr;
        assert!(
            self.in_pool(addr),
            "{:?} of {addr} outside the pool",
            r.message_type
        );
        assert!(r.lease_duration.is_some());
        // Nobody else holds it by our own ACK, and it is not quarantined.
        if let Some((holder, until)) = self.bound.get(&addr) {
            assert!(
                holder == key || *until <= self.now,
                "{:?} of {addr} to {key} while {holder} holds it until {until:?} (now {:?})",
                r.message_type,
                self.now
            );
        }
        if let Some(until) = self.declined.get(&addr) {
            assert!(
                *until <= self.now,
                "{:?} of {addr} quarantined until {until:?} (now {:?})",
                r.message_type,
                self.now
            );
        }
        let lease = self
            .server
            .leases()
            .lease(addr)
            .expect("a pool address has a slot");
        assert_eq!(
            lease.client.as_ref(),
            Some(key),
            "{addr} not held for {key}"
        );
        match r.message_type {
            DhcpMessageType::Offer => {
                assert!(matches!(
                    lease.state,
                    LeaseState::Offered | LeaseState::Bound
                ))
            }
            _ => {
                assert_eq!(lease.state, LeaseState::Bound);
                // The client's previous address (if another) is no longer its.
                self.bound.retain(|_, (c, _)| c != key);
                self.bound.insert(addr, (*key, self.now + self.lease));
            }
        }
    }

    /// The lease table's invariants, through its public view.
    fn check_table(&self) {
        let t = self.server.leases();
        let mut held = 0;
        let mut any_free = false;
        let mut clients = Vec::new();
        for n in 0..self.pool {
            let addr = Ipv4Addr::from(u32::from(POOL_START) + n);
            let l = t.lease(addr).expect("every pool address has a slot");
            assert_eq!(l.addr, addr);
            match l.state {
                LeaseState::Offered | LeaseState::Bound => {
                    held += 1;
                    assert!(l.client.is_some() && l.deadline.is_some(), "{l:?}");
                }
                LeaseState::Declined => {
                    assert!(l.client.is_none() && l.deadline.is_some(), "{l:?}")
                }
                LeaseState::Free => {
                    any_free = true;
                    assert!(l.deadline.is_none(), "{l:?}");
                }
            }
            if let Some(c) = l.client {
                assert!(!clients.contains(&c), "client {c} remembered twice");
                clients.push(c);
                assert_eq!(t.lease_of(&c), Some(l), "client index of {c}");
            }
        }
        assert!(t
            .lease(Ipv4Addr::from(u32::from(POOL_START) + self.pool))
            .is_none());
        assert_eq!(t.active(), held);
        assert!(held <= t.max_active());
        assert_eq!(t.find_free().is_some(), any_free);
        if let Some(a) = t.find_free() {
            assert_eq!(t.lease(a).map(|l| l.state), Some(LeaseState::Free));
        }
        let mut per_port = 0;
        for p in 0..4 {
            assert!(
                t.port_active(p) <= t.max_per_port(),
                "port {p} over its share"
            );
            per_port += t.port_active(p);
        }
        assert!(per_port <= held);
        assert_eq!(t.iter().count(), {
            let mut n = 0;
            for i in 0..self.pool {
                let l = t.lease(Ipv4Addr::from(u32::from(POOL_START) + i)).unwrap();
                n += usize::from(l.state != LeaseState::Free || l.client.is_some());
            }
            n
        });
    }
}

fuzz_target!(|input: Input| {
    let pool = u32::from(input.pool % 8) + 1;
    let secs = |v: u8| Duration::from_secs(u64::from(v % 64) + 1);
    let mut config = DhcpServerConfig::host_only();
    config.pool_end = Ipv4Addr::from(u32::from(POOL_START) + pool - 1);
    config.max_leases = input.max_leases.map(|m| usize::from(m % 8) + 1);
    config.max_leases_per_port = usize::from(input.per_port % 4) + 1;
    config.lease_time = secs(input.lease_secs);
    config.offer_hold = secs(input.hold_secs);
    config.decline_quarantine = secs(input.quarantine_secs);
    config.domain_name = Some("fuzz.example".into());
    config.dns_servers = vec![Ipv4Addr::new(192, 168, 56, 1)];
    config.router = Some(Ipv4Addr::new(192, 168, 56, 1));
    let lease = config.lease_time;
    let quarantine = config.decline_quarantine;
    let now = Instant::from_secs(1);
    let server = DhcpServer::new(config, now, UNIX_EPOCH).expect("a valid configuration");
    let mut rig = Rig {
        server,
        now,
        pool,
        lease,
        quarantine,
        bound: HashMap::new(),
        declined: HashMap::new(),
    };
    for step in input.steps.iter().take(256) {
        match step {
            Step::Msg(m) => rig.handle(Some(&m.repr()), None, m.port()),
            Step::Damaged { msg, edits } => {
                let repr = msg.repr();
                let mut buf = vec![0u8; repr.buffer_len()];
                let len = repr.emit(&mut buf).expect("sized by buffer_len");
                for &(at, value) in edits.iter().take(16) {
                    buf[usize::from(at) % len] = value;
                }
                rig.handle(None, Some(&buf[..len]), msg.port());
            }
            Step::Raw(bytes) => rig.handle(None, Some(bytes), None),
            Step::Wait(ms) => rig.now = rig.now + Duration::from_millis(u64::from(*ms)),
            Step::LongWait => rig.now = rig.now + Duration::from_secs(3600),
            Step::Poll => {
                rig.server.poll(rig.now);
                if let Some(at) = rig.server.poll_at() {
                    assert!(at > rig.now, "poll left a due deadline");
                }
                rig.check_table();
            }
        }
    }
});
