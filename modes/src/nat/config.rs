//! The NAPT stage's configuration, its validation, and the split of the external port space
//! between workers.
//!
//! A [`NaptConfig`] is plain data checked once by [`NaptConfig::validate`] (control plane),
//! so the data path never meets an inconsistent one. Invariants after validation:
//!
//! - `1 <= port_range.0 <= port_range.1` (port 0 is never handed out);
//! - `worker < workers`, and worker `worker` owns at least one port of the range;
//! - `1 <= max_sessions <=` [`MAX_SESSIONS_CAP`], `max_sessions_per_guest >= 1` (a share
//!   above `max_sessions` is the whole table);
//! - every timeout is non-zero and, when `strict` (the default), at least its RFC minimum
//!   (RFC 4787 REQ-5, RFC 5382 REQ-5, RFC 5508 REQ-2).
//!
//! # The port split
//!
//! Workers own *pairs* of ports: port `p` of the range belongs to worker
//! `((p - port_range.0) / 2) % workers` (see [`owner_of_port`]). Splitting by pairs rather
//! than by single ports keeps both parities in every worker, so port parity preservation
//! (RFC 4787 REQ-4) works with any number of workers; a plain `(p - lo) % workers` split
//! would leave a worker of an even-sized pool with ports of one parity only.

use std::net::Ipv4Addr;
use std::time::Duration;

/// The largest `max_sessions` accepted (4 Mi sessions: a few hundred MiB of tables).
pub const MAX_SESSIONS_CAP: usize = 1 << 22;

/// The default share of one guest: a quarter of the default table (four guests flooding
/// at once fill it; a single one leaves three quarters to the others).
pub const DEFAULT_SESSIONS_PER_GUEST: usize = 16384;

/// RFC 4787 REQ-5: a UDP mapping timer MUST NOT expire in less than two minutes.
pub const RFC_MIN_UDP: Duration = Duration::from_secs(120);
/// RFC 5382 REQ-5: established connection idle-timeout MUST NOT be less than 2 h 4 min.
pub const RFC_MIN_TCP_ESTABLISHED: Duration = Duration::from_secs(7440);
/// RFC 5382 REQ-5: transitory connection idle-timeout MUST NOT be less than 4 min.
pub const RFC_MIN_TCP_TRANSITORY: Duration = Duration::from_secs(240);
/// RFC 5508 REQ-2: an ICMP query session timer MUST NOT expire in less than 60 s.
pub const RFC_MIN_ICMP: Duration = Duration::from_secs(60);

/// Which inbound packets an existing mapping lets through (RFC 4787 section 5, REQ-8;
/// RFC 5382 REQ-3).
///
/// The default is [`Filtering::AddressDependent`]. Both it and endpoint-independent
/// filtering are allowed by RFC 4787 REQ-8 and RFC 5382 REQ-3; we take the stringent one:
///
/// - `MODES.md` promises "Inet -> VM: `-` without a forwarding rule". With
///   endpoint-independent filtering, any Internet host could reach a guest's port as soon
///   as the guest has talked to anyone from it; with address-dependent filtering only the
///   hosts the guest itself contacted can, which is the reachability VirtualBox users see.
/// - VirtualBox's own engines relay guest flows through host sockets: its TCP relay is
///   connection-bound (only the contacted peer gets through), while as far as we can tell
///   from the slirp source its UDP sockets are unconnected (any host may answer). A single
///   address-dependent default sits between the two and still lets peer-to-peer UDP hole
///   punching work between hosts that exchanged packets.
///
/// Set [`Filtering::EndpointIndependent`] for the transparent behaviour RFC 4787 REQ-8
/// recommends for applications, or [`Filtering::AddressPortDependent`] for the strictest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Filtering {
    /// Any external endpoint may send to a live mapping ("EIF").
    EndpointIndependent,
    /// Only external addresses the inside endpoint sent to ("ADF").
    #[default]
    AddressDependent,
    /// Only external address-and-port pairs the inside endpoint sent to ("APDF").
    AddressPortDependent,
}

/// Idle timeouts of NAT state, all configurable (RFC 4787 REQ-5b, RFC 5382 REQ-5a,
/// RFC 5508 REQ-2a).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NatTimeouts {
    /// UDP mapping timer, refreshed by outbound traffic only (default 300 s; RFC 4787
    /// REQ-5: at least 120 s, 300 s or more recommended).
    pub udp: Duration,
    /// Established TCP connection idle timeout (default 7440 s = 2 h 4 min, RFC 5382 REQ-5).
    pub tcp_established: Duration,
    /// Transitory TCP connection idle timeout: partially open, both FINs seen, or reset
    /// (default 240 s, RFC 5382 REQ-5).
    pub tcp_transitory: Duration,
    /// ICMP query (echo) session timer (default 60 s, RFC 5508 REQ-2).
    pub icmp: Duration,
}

impl Default for NatTimeouts {
    fn default() -> Self {
        Self {
            udp: Duration::from_secs(300),
            tcp_established: RFC_MIN_TCP_ESTABLISHED,
            tcp_transitory: RFC_MIN_TCP_TRANSITORY,
            icmp: RFC_MIN_ICMP,
        }
    }
}

/// Everything one worker's [`Napt`](super::Napt) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptConfig {
    /// The external address every mapping is translated to (the NAT's uplink address).
    pub external_ip: Ipv4Addr,
    /// Ports (and ICMP identifiers) handed out, inclusive (default `(1024, 65535)`).
    pub port_range: (u16, u16),
    /// This worker's index, `< workers`.
    pub worker: usize,
    /// Number of workers sharing the port space (see [`owner_of_port`]).
    pub workers: usize,
    /// Inbound filtering of dynamic mappings (default address-dependent).
    pub filtering: Filtering,
    /// Most sessions held at once by this worker (default 65 536); every table is sized
    /// from it at construction.
    pub max_sessions: usize,
    /// Most sessions one guest (inside address of one realm) holds at once in this worker
    /// (default [`DEFAULT_SESSIONS_PER_GUEST`]): a guest flooding new flows gets
    /// [`NatDrop::GuestLimit`](super::NatDrop::GuestLimit) past its share while the others
    /// keep opening connections. VirtualBox gives each VM an engine of its own; this is
    /// the shared table's equivalent.
    pub max_sessions_per_guest: usize,
    /// Idle timeouts.
    pub timeouts: NatTimeouts,
    /// Refuse timeouts below the RFC minimums (default `true`; tests and benches may lower
    /// them with `false`).
    pub strict: bool,
    /// Seed of the table hashes (keyed against collision flooding by remote endpoints);
    /// give each run a random one in production, any constant in tests.
    pub hash_seed: u64,
}

impl NaptConfig {
    /// A single-worker configuration with every default and the given external address.
    pub fn new(external_ip: Ipv4Addr) -> Self {
        Self {
            external_ip,
            port_range: (1024, 65535),
            worker: 0,
            workers: 1,
            filtering: Filtering::default(),
            max_sessions: 65536,
            max_sessions_per_guest: DEFAULT_SESSIONS_PER_GUEST,
            timeouts: NatTimeouts::default(),
            strict: true,
            hash_seed: 0x6e61_7074_5f76_6e65,
        }
    }

    /// Checks the invariants listed in the [module documentation](self).
    ///
    /// # Errors
    ///
    /// The first [`NaptConfigError`] found, naming the offending field.
    pub fn validate(&self) -> Result<(), NaptConfigError> {
        if self.external_ip.is_unspecified() || self.external_ip.is_broadcast() {
            return Err(NaptConfigError::BadExternalIp(self.external_ip));
        }
        let (lo, hi) = self.port_range;
        if lo == 0 || lo > hi {
            return Err(NaptConfigError::BadPortRange { lo, hi });
        }
        if self.workers == 0 || self.worker >= self.workers {
            return Err(NaptConfigError::BadWorker {
                worker: self.worker,
                workers: self.workers,
            });
        }
        let pairs = (usize::from(hi - lo) + 2) / 2;
        if self.worker >= pairs {
            return Err(NaptConfigError::NoPortsForWorker {
                worker: self.worker,
                lo,
                hi,
            });
        }
        if self.max_sessions == 0 || self.max_sessions > MAX_SESSIONS_CAP {
            return Err(NaptConfigError::BadMaxSessions(self.max_sessions));
        }
        if self.max_sessions_per_guest == 0 {
            return Err(NaptConfigError::ZeroSessionsPerGuest);
        }
        let t = &self.timeouts;
        let checks = [
            ("timeouts.udp", t.udp, RFC_MIN_UDP, "RFC 4787 REQ-5"),
            (
                "timeouts.tcp_established",
                t.tcp_established,
                RFC_MIN_TCP_ESTABLISHED,
                "RFC 5382 REQ-5",
            ),
            (
                "timeouts.tcp_transitory",
                t.tcp_transitory,
                RFC_MIN_TCP_TRANSITORY,
                "RFC 5382 REQ-5",
            ),
            ("timeouts.icmp", t.icmp, RFC_MIN_ICMP, "RFC 5508 REQ-2"),
        ];
        for (field, value, minimum, requirement) in checks {
            if value.is_zero() {
                return Err(NaptConfigError::ZeroTimeout { field });
            }
            if self.strict && value < minimum {
                return Err(NaptConfigError::TimeoutBelowRfc {
                    field,
                    value,
                    minimum,
                    requirement,
                });
            }
        }
        Ok(())
    }

    /// The worker owning external port (or ICMP identifier) `port`: see [`owner_of_port`].
    #[inline]
    pub fn owner_of_port(&self, port: u16) -> usize {
        owner_of_port(port, self.port_range, self.workers)
    }

    /// The worker that must run [`Napt::inbound`](super::Napt::inbound) for the packet
    /// `ip` (an IPv4 packet from the external side): the owner of the external port it
    /// targets (TCP/UDP destination port, ICMP echo reply identifier), or for an ICMP error
    /// the owner of the quoted packet's source port or echo identifier.
    ///
    /// `None` when the packet is not one the stage translates inbound (malformed, a
    /// fragment, another protocol or ICMP type): any worker may drop it.
    pub fn owner_of_packet(&self, ip: &[u8]) -> Option<usize> {
        external_port_of(ip).map(|port| self.owner_of_port(port))
    }
}

/// The worker owning external port (or ICMP identifier) `port` when `workers` workers share
/// `port_range`: `((port - lo) / 2) % workers` for a port of the range (so each worker owns
/// whole even/odd pairs), `(port / 2) % workers` for a port outside it (only forwarding
/// rules use those, and every worker holds every rule, so any deterministic answer does).
#[inline]
pub fn owner_of_port(port: u16, port_range: (u16, u16), workers: usize) -> usize {
    let workers = workers.max(1);
    let (lo, hi) = port_range;
    if (lo..=hi).contains(&port) {
        usize::from((port - lo) >> 1) % workers
    } else {
        usize::from(port >> 1) % workers
    }
}

#[inline]
fn rd16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// The external port (or identifier) an inbound packet targets, by the rules of
/// [`NaptConfig::owner_of_packet`].
pub(crate) fn external_port_of(ip: &[u8]) -> Option<u16> {
    external_target(ip).map(|(_, port)| port)
}

/// The protocol number of the mapping (6, 17 or 1) and the external port (identifier) an
/// inbound packet targets. Reads only fixed offsets, all bounds-checked.
pub(crate) fn external_target(ip: &[u8]) -> Option<(u8, u16)> {
    let (hl, tl) = ip_bounds(ip)?;
    // Fragments: only the first carries ports, and the stage drops all of them.
    if rd16(ip, 6)? & 0x3fff != 0 {
        return None;
    }
    let l4 = &ip[hl..tl];
    match ip[9] {
        p @ (6 | 17) => Some((p, rd16(l4, 2)?)),
        1 => match *l4.first()? {
            0 => Some((1, rd16(l4, 4)?)),
            3 | 11 | 12 => {
                let inner = l4.get(8..)?;
                let ihl = usize::from(*inner.first()? & 0x0f) * 4;
                if *inner.first()? >> 4 != 4 || ihl < 20 || inner.len() < ihl + 8 {
                    return None;
                }
                let t = &inner[ihl..];
                match inner[9] {
                    p @ (6 | 17) => Some((p, rd16(t, 0)?)),
                    1 if t[0] == 8 => Some((1, rd16(t, 4)?)),
                    _ => None,
                }
            }
            _ => None,
        },
        _ => None,
    }
}

/// `(header_len, total_len)` of a well-formed IPv4 header in `ip`.
pub(crate) fn ip_bounds(ip: &[u8]) -> Option<(usize, usize)> {
    let first = *ip.first()?;
    let hl = usize::from(first & 0x0f) * 4;
    let tl = usize::from(rd16(ip, 2)?);
    if first >> 4 != 4 || hl < 20 || tl < hl || tl > ip.len() {
        return None;
    }
    Some((hl, tl))
}

/// Why a [`NaptConfig`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NaptConfigError {
    /// The external address is 0.0.0.0 or 255.255.255.255.
    #[error("external_ip {0} is not a usable unicast address")]
    BadExternalIp(Ipv4Addr),
    /// `port_range` starts at 0 or is reversed.
    #[error("port_range ({lo}, {hi}) is empty, reversed or starts at port 0")]
    BadPortRange {
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
    /// `workers` is 0 or `worker >= workers`.
    #[error("worker {worker} is not below workers = {workers} (and workers must be >= 1)")]
    BadWorker {
        /// This worker's index.
        worker: usize,
        /// Number of workers.
        workers: usize,
    },
    /// The range is too small to give this worker a port pair.
    #[error("port_range ({lo}, {hi}) leaves worker {worker} no port pair")]
    NoPortsForWorker {
        /// This worker's index.
        worker: usize,
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
    },
    /// `max_sessions` is 0 or above [`MAX_SESSIONS_CAP`].
    #[error("max_sessions = {0} is not within 1..={MAX_SESSIONS_CAP}")]
    BadMaxSessions(usize),
    /// `max_sessions_per_guest` is 0.
    #[error("max_sessions_per_guest must be at least 1")]
    ZeroSessionsPerGuest,
    /// A timeout is zero.
    #[error("{field} must not be zero")]
    ZeroTimeout {
        /// The field, e.g. `timeouts.udp`.
        field: &'static str,
    },
    /// A timeout is below its RFC minimum while `strict` is set.
    #[error("{field} = {value:?} is below the {requirement} minimum of {minimum:?} (set strict: false to allow it)")]
    TimeoutBelowRfc {
        /// The field, e.g. `timeouts.udp`.
        field: &'static str,
        /// The value given.
        value: Duration,
        /// The RFC minimum.
        minimum: Duration,
        /// The requirement, e.g. `RFC 4787 REQ-5`.
        requirement: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> NaptConfig {
        NaptConfig::new(Ipv4Addr::new(198, 18, 0, 2))
    }

    #[test]
    fn defaults_validate() {
        cfg().validate().unwrap();
        assert_eq!(cfg().filtering, Filtering::AddressDependent);
        assert_eq!(cfg().timeouts.udp, Duration::from_secs(300));
    }

    #[test]
    fn timeouts_below_rfc_name_the_field_unless_lax() {
        let mut c = cfg();
        c.timeouts.udp = Duration::from_secs(119);
        match c.validate() {
            Err(NaptConfigError::TimeoutBelowRfc { field, .. }) => {
                assert_eq!(field, "timeouts.udp")
            }
            other => panic!("{other:?}"),
        }
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("timeouts.udp"));
        c.strict = false;
        c.validate().unwrap();
        c.timeouts.icmp = Duration::ZERO;
        assert_eq!(
            c.validate(),
            Err(NaptConfigError::ZeroTimeout {
                field: "timeouts.icmp"
            })
        );
        let mut c = cfg();
        c.timeouts.tcp_established = Duration::from_secs(7439);
        assert!(matches!(
            c.validate(),
            Err(NaptConfigError::TimeoutBelowRfc {
                field: "timeouts.tcp_established",
                ..
            })
        ));
    }

    #[test]
    fn bad_ranges_and_workers() {
        let mut c = cfg();
        c.port_range = (0, 10);
        assert!(c.validate().is_err());
        c.port_range = (10, 9);
        assert!(c.validate().is_err());
        c.port_range = (1024, 1025);
        c.workers = 2;
        c.worker = 1;
        assert!(matches!(
            c.validate(),
            Err(NaptConfigError::NoPortsForWorker { .. })
        ));
        c.worker = 2;
        assert!(matches!(
            c.validate(),
            Err(NaptConfigError::BadWorker { .. })
        ));
        let mut c = cfg();
        c.max_sessions = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn owner_split_by_pairs() {
        let r = (1024, 65535);
        assert_eq!(owner_of_port(1024, r, 2), 0);
        assert_eq!(owner_of_port(1025, r, 2), 0);
        assert_eq!(owner_of_port(1026, r, 2), 1);
        assert_eq!(owner_of_port(1027, r, 2), 1);
        assert_eq!(owner_of_port(1028, r, 2), 0);
        assert_eq!(owner_of_port(80, r, 2), 0);
        assert_eq!(owner_of_port(5000, r, 1), 0);
    }
}
