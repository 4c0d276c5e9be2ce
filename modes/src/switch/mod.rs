//! The learning Ethernet switch: the L2 stage every switched mode is built on.
//!
//! For each frame: learn `source MAC -> ingress port` (unicast sources only), then
//! deliver by destination: broadcast and multicast flood to every member port but the
//! ingress; a known unicast goes to its port; an unknown one floods. A frame is never sent
//! back out of its ingress port (a known destination on the ingress port is dropped as
//! `same_segment`).
//!
//! Invariants: the stage reads only the first 14 bytes (Ethernet addresses and type) and
//! never rewrites the frame; its memory is the bounded [`Fdb`], fixed at construction.

pub mod fdb;

pub use fdb::{Fdb, Learn};

use std::time::Duration;
use vnet_core::counters::DropReason;
use vnet_core::fastpath::{L2Key, Offer};
use vnet_core::frame::PortId;
use vnet_core::pipeline::{PortMask, Verdict};
use vnet_core::time::Instant;

/// Shortest frame the switch accepts (an Ethernet header).
pub const MIN_FRAME: usize = 14;

/// Settings of the switch stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchConfig {
    /// FDB entry limit (VirtualBox-like default 4096).
    pub fdb_max: usize,
    /// FDB aging time (default 300 s, as 802.1D).
    pub aging: Duration,
}

impl Default for SwitchConfig {
    fn default() -> Self {
        Self {
            fdb_max: 4096,
            aging: Duration::from_secs(300),
        }
    }
}

/// Switch statistics (beyond the engine's per-port counters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SwitchStats {
    /// Frames flooded (broadcast, multicast, unknown unicast).
    pub flooded: u64,
    /// Addresses not learned because the FDB was full.
    pub learn_full: u64,
    /// Addresses that moved between ports.
    pub moves: u64,
}

/// A learning switch over a set of member ports.
#[derive(Debug)]
pub struct L2Switch {
    fdb: Fdb,
    members: PortMask,
    stats: SwitchStats,
}

/// Whether an Ethernet address is a group (broadcast or multicast) address.
#[inline]
pub fn is_group(mac: &[u8; 6]) -> bool {
    mac[0] & 1 != 0
}

#[inline]
fn mac_at(bytes: &[u8], at: usize) -> [u8; 6] {
    let mut m = [0u8; 6];
    m.copy_from_slice(&bytes[at..at + 6]);
    m
}

impl L2Switch {
    /// A switch among `members`.
    pub fn new(members: PortMask, config: SwitchConfig) -> Self {
        Self {
            fdb: Fdb::new(config.fdb_max, config.aging),
            members,
            stats: SwitchStats::default(),
        }
    }

    /// Member ports.
    pub fn members(&self) -> PortMask {
        self.members
    }

    /// The FDB (read-only).
    pub fn fdb(&self) -> &Fdb {
        &self.fdb
    }

    /// Statistics.
    pub fn stats(&self) -> SwitchStats {
        self.stats
    }

    /// Learn the source of a frame seen on `ingress` (also used for frames another
    /// worker received).
    /// Returns what happened to the address (`None`: nothing learnt).
    #[inline]
    pub fn learn(&mut self, now: Instant, bytes: &[u8], ingress: PortId) -> Option<Learn> {
        if bytes.len() < MIN_FRAME || !self.members.contains(ingress) {
            return None;
        }
        let src = mac_at(bytes, 6);
        if is_group(&src) {
            return None;
        }
        let learnt = self.fdb.learn(&src, ingress, now);
        match learnt {
            Learn::Full => self.stats.learn_full += 1,
            Learn::Moved => self.stats.moves += 1,
            Learn::New | Learn::Refreshed => {}
        }
        Some(learnt)
    }

    /// The fast path carried frames from `mac` on `port` until `at`: its FDB entry is
    /// as fresh as if the switch had seen them.
    pub fn refresh(&mut self, mac: &[u8; 6], port: PortId, at: Instant) {
        self.fdb.refresh(mac, port, at);
    }

    /// The fast-path offer for a frame this switch has just sent to exactly one port:
    /// a unicast frame from `ingress` to a known destination.
    #[inline]
    pub fn offer(bytes: &[u8], ingress: PortId, verdict: Verdict) -> Option<Offer> {
        let Verdict::Tx(mask) = verdict else {
            return None;
        };
        if mask.len() != 1 || bytes.len() < MIN_FRAME {
            return None;
        }
        let (src, dst) = (mac_at(bytes, 6), mac_at(bytes, 0));
        if is_group(&dst) || is_group(&src) {
            return None;
        }
        Some(Offer::L2 {
            key: L2Key { ingress, src, dst },
            egress: mask.iter().next()?,
        })
    }

    /// [`L2Switch::sweep`], handing each aged-out address to `gone`.
    pub fn sweep_each(&mut self, now: Instant, gone: impl FnMut([u8; 6])) -> usize {
        self.fdb.sweep_each(now, gone)
    }

    /// Where a frame from `ingress` goes (learning its source on the way).
    #[inline]
    pub fn forward(&mut self, now: Instant, bytes: &[u8], ingress: PortId) -> Verdict {
        if bytes.len() < MIN_FRAME {
            return Verdict::Drop(DropReason::Malformed);
        }
        if !self.members.contains(ingress) {
            return Verdict::Drop(DropReason::Policy);
        }
        self.learn(now, bytes, ingress);
        self.route(now, bytes, ingress)
    }

    /// Where a frame from `ingress` goes, without learning its source (the caller
    /// already did, with [`L2Switch::learn`]).
    #[inline]
    pub fn route(&mut self, now: Instant, bytes: &[u8], ingress: PortId) -> Verdict {
        if bytes.len() < MIN_FRAME {
            return Verdict::Drop(DropReason::Malformed);
        }
        if !self.members.contains(ingress) {
            return Verdict::Drop(DropReason::Policy);
        }
        let dst = mac_at(bytes, 0);
        if !is_group(&dst) {
            if let Some(port) = self.fdb.lookup(&dst, now) {
                if port == ingress {
                    return Verdict::Drop(DropReason::SameSegment);
                }
                return Verdict::Tx(PortMask::one(port));
            }
        }
        self.stats.flooded += 1;
        Verdict::Tx(self.members.without(ingress))
    }

    /// Reclaim aged-out FDB entries.
    pub fn sweep(&mut self, now: Instant) -> usize {
        self.fdb.sweep(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0x02, 0, 0, 0, 0, 0xa];
    const B: [u8; 6] = [0x02, 0, 0, 0, 0, 0xb];
    const BCAST: [u8; 6] = [0xff; 6];
    const MCAST: [u8; 6] = [0x01, 0x00, 0x5e, 0, 0, 1];

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.resize(60, 0);
        f
    }

    fn sw() -> L2Switch {
        L2Switch::new(PortMask::first(3), SwitchConfig::default())
    }

    #[test]
    fn broadcast_and_multicast_flood_to_all_but_ingress() {
        let mut s = sw();
        let t = Instant::ZERO;
        assert_eq!(
            s.forward(t, &frame(BCAST, A), 0),
            Verdict::Tx(PortMask(0b110))
        );
        assert_eq!(
            s.forward(t, &frame(MCAST, A), 2),
            Verdict::Tx(PortMask(0b011))
        );
    }

    #[test]
    fn unknown_unicast_floods_then_known_goes_direct() {
        let mut s = sw();
        let t = Instant::ZERO;
        assert_eq!(s.forward(t, &frame(B, A), 0), Verdict::Tx(PortMask(0b110)));
        assert_eq!(s.forward(t, &frame(A, B), 1), Verdict::Tx(PortMask::one(0)));
        assert_eq!(s.forward(t, &frame(B, A), 0), Verdict::Tx(PortMask::one(1)));
        assert_eq!(s.stats().flooded, 1);
    }

    #[test]
    fn never_back_out_of_the_ingress_port() {
        let mut s = sw();
        let t = Instant::ZERO;
        s.forward(t, &frame(BCAST, A), 0);
        s.forward(t, &frame(BCAST, B), 0);
        assert_eq!(
            s.forward(t, &frame(B, A), 0),
            Verdict::Drop(DropReason::SameSegment)
        );
    }

    #[test]
    fn aged_entry_floods_again() {
        let mut s = L2Switch::new(
            PortMask::first(3),
            SwitchConfig {
                fdb_max: 16,
                aging: Duration::from_secs(10),
            },
        );
        s.forward(Instant::ZERO, &frame(BCAST, B), 1);
        assert_eq!(
            s.forward(Instant::from_secs(5), &frame(B, A), 0),
            Verdict::Tx(PortMask::one(1))
        );
        assert_eq!(
            s.forward(Instant::from_secs(16), &frame(B, A), 0),
            Verdict::Tx(PortMask(0b110))
        );
    }

    #[test]
    fn full_fdb_floods_unknown_and_does_not_grow() {
        let mut s = L2Switch::new(
            PortMask::first(3),
            SwitchConfig {
                fdb_max: 1,
                aging: Duration::from_secs(300),
            },
        );
        let t = Instant::ZERO;
        s.forward(t, &frame(BCAST, A), 0);
        s.forward(t, &frame(BCAST, B), 1);
        assert_eq!(s.fdb().len(), 1);
        assert_eq!(s.stats().learn_full, 1);
        assert_eq!(s.forward(t, &frame(B, A), 0), Verdict::Tx(PortMask(0b110)));
    }

    #[test]
    fn runt_frames_and_foreign_ports_are_dropped() {
        let mut s = sw();
        let t = Instant::ZERO;
        for len in 0..MIN_FRAME {
            assert_eq!(
                s.forward(t, &frame(B, A)[..len], 0),
                Verdict::Drop(DropReason::Malformed)
            );
        }
        assert_eq!(
            s.forward(t, &frame(B, A), 7),
            Verdict::Drop(DropReason::Policy)
        );
    }

    #[test]
    fn group_source_addresses_are_not_learned() {
        let mut s = sw();
        s.forward(Instant::ZERO, &frame(A, MCAST), 0);
        assert!(s.fdb().is_empty());
    }

    #[test]
    fn a_header_only_frame_is_learned_and_forwarded_a_shorter_one_dropped() {
        let mut s = sw();
        let t = Instant::ZERO;
        assert_eq!(s.members(), PortMask::first(3));
        let header = &frame(B, A)[..MIN_FRAME];
        assert_eq!(s.forward(t, header, 0), Verdict::Tx(PortMask(0b110)));
        assert_eq!(s.fdb().lookup(&A, t), Some(0));
        assert_eq!(
            s.forward(t, &header[..MIN_FRAME - 1], 0),
            Verdict::Drop(DropReason::Malformed)
        );
        // Not a member: refused, not learned.
        assert_eq!(
            s.forward(t, &frame(A, B), 5),
            Verdict::Drop(DropReason::Policy)
        );
        assert_eq!(s.fdb().lookup(&B, t), None);
    }

    #[test]
    fn moves_and_a_full_table_are_counted() {
        let mut s = L2Switch::new(
            PortMask::first(3),
            SwitchConfig {
                fdb_max: 1,
                ..SwitchConfig::default()
            },
        );
        let t = Instant::ZERO;
        s.forward(t, &frame(BCAST, A), 0);
        s.forward(t, &frame(BCAST, A), 1);
        s.forward(t, &frame(BCAST, A), 2);
        assert_eq!(s.stats().moves, 2);
        s.forward(t, &frame(BCAST, B), 0);
        s.forward(t, &frame(BCAST, B), 0);
        assert_eq!(s.stats().learn_full, 2);
    }
}
