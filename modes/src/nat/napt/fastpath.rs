//! What the fast path needs from the NAPT: which session a translated packet used (its
//! offer's tag), which sessions ended (their entries must go), and the kernel's use of a
//! session's entries folded back in as if the packets had been seen here.
//!
//! Invariants: a freed session is reported before its slot can be reused by a packet of
//! another flow (the engine drains after every batch and every timer run, and applies
//! revocations before offers); when more sessions end at once than
//! [`FREED_CAPACITY`], the report says "all" instead, never loses one.

use super::{Napt, NIL};
use crate::nat::NatProto;
use vnet_core::time::Instant;

/// Freed sessions remembered between two drains.
pub(super) const FREED_CAPACITY: usize = 1024;

impl Napt {
    /// Start (or stop) remembering freed sessions for the fast path.
    pub fn track_freed(&mut self, on: bool) {
        self.track_freed = on;
        self.freed.clear();
        self.freed_overflow = false;
    }

    /// The session the last translated packet used, if the fast path may carry its flow
    /// (a live session of this very flow).
    pub fn last_session(&self) -> Option<u32> {
        (self.last_session != NIL).then_some(self.last_session)
    }

    /// A packet of session `s`'s `outbound` (or inbound) direction went through the core:
    /// `true` when its flow is now to be offered to the fast path. A direction is offered
    /// at its second packet, once: a flow of one packet (a DNS query, a scan, a new-flow
    /// flood) never costs an entry's install and read-back, which made connection set-up
    /// 4-7x slower when every first packet installed one (`bench --new-flows`); after
    /// that the engine holds the entry (`false` again).
    #[inline]
    pub fn mark_offered(&mut self, s: u32, outbound: bool) -> bool {
        let (offered, seen) = if outbound { (1, 4) } else { (2, 8) };
        match self.sessions.get_mut(s as usize) {
            Some(sess) if sess.offered & offered != 0 => false,
            Some(sess) if sess.offered & seen == 0 => {
                sess.offered |= seen;
                false
            }
            Some(sess) => {
                sess.offered |= offered;
                true
            }
            None => false,
        }
    }

    /// Forget every offer (the fast path dropped all its entries): each flow is offered
    /// again by its next packet through the core (it was seen before).
    pub fn clear_offered(&mut self) {
        for sess in self.sessions.iter_mut() {
            sess.offered &= !3;
        }
    }

    #[inline]
    pub(super) fn note_freed(&mut self, s: u32) {
        if !self.track_freed {
            return;
        }
        if self.freed.len() < FREED_CAPACITY {
            self.freed.push(s);
        } else {
            self.freed_overflow = true;
        }
    }

    /// Hand each session freed since the last call to `f` (`None`: too many, treat every
    /// session as ended).
    pub fn drain_freed(&mut self, mut f: impl FnMut(Option<u32>)) {
        if self.freed_overflow {
            f(None);
        } else {
            for &s in &self.freed {
                f(Some(s));
            }
        }
        self.freed.clear();
        self.freed_overflow = false;
    }

    /// `packets` of session `s`'s flow took the fast path, the last at `at`; `outbound`:
    /// from the inside. Refreshes and counts exactly as the packets would have here: an
    /// outbound packet refreshes the session, an inbound one only for TCP (RFC 4787
    /// REQ-6: inbound UDP never refreshes); a deadline is never moved earlier.
    pub fn fastpath_seen(&mut self, s: u32, outbound: bool, at: Instant, packets: u64) {
        let Some(&guest) = self.session_guest.get(s as usize) else {
            return;
        };
        if guest == NIL {
            return; // Freed since: its entries are being revoked.
        }
        if outbound {
            self.counters.translated_out += packets;
        } else {
            self.counters.translated_in += packets;
        }
        let mapping = self.sessions[s as usize].mapping as usize;
        let tcp = self.mappings[mapping].proto == NatProto::Tcp;
        if outbound || tcp {
            let deadline = at + self.timeout(s);
            if deadline > self.sessions[s as usize].expires {
                self.set_deadline(s, deadline);
            }
        }
    }
}
