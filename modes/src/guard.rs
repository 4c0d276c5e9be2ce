//! The guest guard: what a VM port may send before any mode stage sees it.
//!
//! A dataplane sits between untrusted guests and everything else. Per VM port, the guard
//! bounds the two kinds of frame that cost every other port something:
//!
//! - group-addressed frames (broadcast and multicast: each is copied to every member
//!   port), at [`GuardConfig::group_pps`];
//! - ARP requests for the dataplane's own service addresses (each is answered, a frame
//!   the dataplane makes), at [`GuardConfig::arp_pps`];
//!
//! each with a token bucket of [`GuardConfig::burst`] frames. A frame over its rate is
//! dropped as [`DropReason::RateLimited`]. The spoofing rules are the modes' (they know
//! which addresses are whose); [`arp_sender`] is what they read.
//!
//! Invariants: a bucket never holds more than its burst nor admits more than `burst +
//! rate * elapsed` frames over any interval; a rate of 0 admits everything; the guard
//! never rewrites a frame and allocates nothing after construction.

use std::net::Ipv4Addr;
use vnet_core::counters::DropReason;
use vnet_core::frame::{PortId, MAX_PORTS};
use vnet_core::time::Instant;

/// Rate limits per VM port. Rates in frames per second; 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// Broadcast and multicast frames one VM port may send per second (default 1000).
    pub group_pps: u32,
    /// ARP requests for the dataplane's own addresses one VM port may send per second
    /// (default 100).
    pub arp_pps: u32,
    /// Frames a port may send at once above its rate, after a quiet spell (default 64).
    pub burst: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            group_pps: 1000,
            arp_pps: 100,
            burst: 64,
        }
    }
}

impl GuardConfig {
    /// No limits at all.
    pub const UNLIMITED: GuardConfig = GuardConfig {
        group_pps: 0,
        arp_pps: 0,
        burst: 0,
    };
}

/// A token bucket kept in nanoseconds of credit: each frame costs `1e9 / rate` ns, the
/// credit grows with time up to `burst` frames' worth.
#[derive(Debug, Clone, Copy)]
pub struct TokenBucket {
    cost_ns: u64,
    depth_ns: u64,
    credit_ns: u64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `rate` frames a second with room for `burst` (at least 1);
    /// `rate` 0: admits everything.
    pub fn new(rate: u32, burst: u32) -> Self {
        let cost_ns = if rate == 0 {
            0
        } else {
            1_000_000_000 / u64::from(rate)
        };
        let depth_ns = cost_ns * u64::from(burst.max(1));
        Self {
            cost_ns,
            depth_ns,
            credit_ns: depth_ns,
            last: Instant::ZERO,
        }
    }

    /// Whether one more frame at `now` is within the rate (and takes its token if so).
    #[inline]
    pub fn admit(&mut self, now: Instant) -> bool {
        if self.cost_ns == 0 {
            return true;
        }
        let elapsed = now.saturating_since(self.last).as_nanos() as u64;
        if elapsed > 0 {
            self.last = now;
            self.credit_ns = self.credit_ns.saturating_add(elapsed).min(self.depth_ns);
        }
        if self.credit_ns >= self.cost_ns {
            self.credit_ns -= self.cost_ns;
            true
        } else {
            false
        }
    }
}

/// What the guard dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Group-addressed frames over their port's rate.
    pub group_limited: u64,
    /// ARP requests for a service address over their port's rate.
    pub arp_limited: u64,
}

/// One worker's guard over the VM ports it serves.
#[derive(Debug)]
pub struct PortGuard {
    group: Box<[TokenBucket]>,
    arp: Box<[TokenBucket]>,
    stats: GuardStats,
}

impl PortGuard {
    /// Full buckets for every port.
    pub fn new(config: GuardConfig) -> Self {
        Self {
            group: vec![TokenBucket::new(config.group_pps, config.burst); MAX_PORTS]
                .into_boxed_slice(),
            arp: vec![TokenBucket::new(config.arp_pps, config.burst); MAX_PORTS].into_boxed_slice(),
            stats: GuardStats::default(),
        }
    }

    /// What was dropped so far.
    pub fn stats(&self) -> GuardStats {
        self.stats
    }

    /// Polices a frame from VM port `port`: `Some(RateLimited)` when it is over its
    /// rate. `is_service` tells the dataplane's own addresses.
    #[inline]
    pub fn police(
        &mut self,
        now: Instant,
        port: PortId,
        frame: &[u8],
        is_service: impl Fn(Ipv4Addr) -> bool,
    ) -> Option<DropReason> {
        let group = frame.first().is_some_and(|b| b & 1 != 0);
        let p = usize::from(port) % MAX_PORTS;
        if let Some(target) = arp_request_target(frame) {
            if is_service(target) {
                if self.arp[p].admit(now) {
                    return None;
                }
                self.stats.arp_limited += 1;
                return Some(DropReason::RateLimited);
            }
        }
        if group && !self.group[p].admit(now) {
            self.stats.group_limited += 1;
            return Some(DropReason::RateLimited);
        }
        None
    }
}

/// The target address of an ARP request (Ethernet/IPv4), if `frame` is one.
#[inline]
fn arp_request_target(frame: &[u8]) -> Option<Ipv4Addr> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x06] || frame[20..22] != [0, 1] {
        return None;
    }
    Some(Ipv4Addr::new(frame[38], frame[39], frame[40], frame[41]))
}

/// The sender of an Ethernet/IPv4 ARP frame (request or reply) that claims an address:
/// `(sender hardware address, sender protocol address)`; `None` for other frames and for
/// probes (sender address 0.0.0.0, RFC 5227).
#[inline]
pub fn arp_sender(frame: &[u8]) -> Option<([u8; 6], Ipv4Addr)> {
    if frame.len() < 42
        || frame[12..14] != [0x08, 0x06]
        || frame[14..16] != [0, 1]
        || frame[16..18] != [0x08, 0x00]
        || frame[18] != 6
        || frame[19] != 4
    {
        return None;
    }
    let spa = Ipv4Addr::new(frame[28], frame[29], frame[30], frame[31]);
    if spa.is_unspecified() {
        return None;
    }
    let mut sha = [0u8; 6];
    sha.copy_from_slice(&frame[22..28]);
    Some((sha, spa))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn arp(op: u8, spa: [u8; 4], tpa: [u8; 4]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1]);
        f.extend_from_slice(&spa);
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa);
        f
    }

    #[test]
    fn bucket_admits_burst_then_rate() {
        let mut b = TokenBucket::new(1000, 10);
        let t0 = Instant::from_secs(5);
        let admitted = (0..100).filter(|_| b.admit(t0)).count();
        assert_eq!(admitted, 10, "the burst, then nothing at the same instant");
        // 1 ms later: exactly one more.
        let t1 = t0 + Duration::from_millis(1);
        assert!(b.admit(t1));
        assert!(!b.admit(t1));
        // A long quiet spell refills only to the burst.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| b.admit(t2)).count(), 10);
        // Over one simulated second at 10 kpps offered: about the rate gets through.
        let mut n = 0;
        for i in 0..10_000u64 {
            if b.admit(t2 + Duration::from_micros(100 * i)) {
                n += 1;
            }
        }
        assert!((995..=1011).contains(&n), "{n}");
    }

    #[test]
    fn zero_rate_is_unlimited() {
        let mut b = TokenBucket::new(0, 0);
        assert!((0..10_000).all(|_| b.admit(Instant::ZERO)));
    }

    #[test]
    fn police_limits_group_and_service_arp_per_port() {
        let mut g = PortGuard::new(GuardConfig {
            group_pps: 100,
            arp_pps: 10,
            burst: 5,
        });
        let gw = Ipv4Addr::new(10, 0, 2, 2);
        let svc = |ip| ip == gw;
        let now = Instant::from_secs(1);
        let to_gw = arp(1, [10, 0, 2, 15], gw.octets());
        let to_other = arp(1, [10, 0, 2, 15], [10, 0, 2, 16]);
        let ok = (0..20)
            .filter(|_| g.police(now, 0, &to_gw, svc).is_none())
            .count();
        assert_eq!(ok, 5);
        // Port 1 has buckets of its own; ARP for other addresses uses the group bucket.
        assert!(g.police(now, 1, &to_gw, svc).is_none());
        let ok = (0..20)
            .filter(|_| g.police(now, 0, &to_other, svc).is_none())
            .count();
        assert_eq!(ok, 5);
        assert_eq!(
            g.police(now, 0, &to_other, svc),
            Some(DropReason::RateLimited)
        );
        // Unicast frames are never limited.
        let mut unicast = to_other.clone();
        unicast[0] = 2;
        assert!((0..100).all(|_| g.police(now, 0, &unicast, svc).is_none()));
        assert_eq!(g.stats().arp_limited, 15);
        assert_eq!(g.stats().group_limited, 16);
    }

    #[test]
    fn arp_sender_reads_claims_not_probes() {
        let reply = arp(2, [10, 0, 2, 2], [10, 0, 2, 15]);
        assert_eq!(
            arp_sender(&reply),
            Some(([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 2, 2)))
        );
        assert_eq!(arp_sender(&arp(1, [0; 4], [10, 0, 2, 15])), None);
        // Only Ethernet/IPv4 ARP: each header field that differs makes it something else.
        for (at, value) in [(12, 0x86), (15, 6), (17, 0xdd), (18, 8), (19, 16)] {
            let mut other = reply.clone();
            other[at] = value;
            assert_eq!(arp_sender(&other), None, "byte {at} = {value:#x}");
        }
        assert_eq!(arp_sender(&reply[..40]), None);
        assert_eq!(arp_request_target(&reply), None);
    }
}
