//! The outbound flow index: `by_flow` maps a whole outbound flow, `(realm, proto, inside
//! ip, inside port, remote ip, remote port)`, to its session, so the hit path of
//! [`Napt::outbound`] probes one index slot and then reads the session and its mapping
//! (lines it needs anyway), instead of probing `inside`, reading the mapping, then
//! probing `by_session`.
//!
//! The six fields (114 bits) do not fit a [`Key`] (95 bits): the key holds both addresses
//! exactly and a 31-bit fold of the rest (exact for flows of one realm and protocol), so
//! two flows may share a key. Hence:
//!
//! - a hit is only a candidate: [`Napt::flow_session`] confirms it against the session
//!   and its mapping, and on any mismatch the caller takes the full lookup
//!   (`inside`, then `by_session`), which stays the reference;
//! - only sessions of dynamic mappings are indexed (static mappings may chain several
//!   rules on one inside endpoint, so their flows take the full lookup, which picks the
//!   rule);
//! - a session is indexed only if its key is free (a second flow with the same key is
//!   simply not indexed), and unindexed only if the key still points at it; so the index
//!   never holds more than one entry per live session, and a removed session is never
//!   returned.
//!
//! A shared key only costs the second flow the full lookup; where keys land in the index
//! stays seeded, as in every [`FixedMap`](super::super::table::FixedMap).

use super::super::table::Key;
use super::{Napt, NIL};
use crate::nat::NatProto;

/// The `by_flow` key of an outbound flow.
#[inline]
pub(super) fn flow_key(realm: u16, proto: NatProto, inside: (u32, u16), remote: (u32, u16)) -> Key {
    let rest = u64::from(realm) << 34
        | (proto as u64) << 32
        | u64::from(inside.1) << 16
        | u64::from(remote.1);
    Key {
        k0: u64::from(remote.0) << 32 | u64::from(inside.0),
        k1: ((rest ^ rest >> 31) as u32) & 0x7fff_ffff,
    }
}

impl Napt {
    /// The key of session `s` in `by_flow` (from the session and its mapping).
    #[inline]
    fn session_flow_key(&self, s: u32) -> Key {
        let sess = &self.sessions[s as usize];
        let mp = &self.mappings[sess.mapping as usize];
        flow_key(
            mp.realm,
            mp.proto,
            (mp.inside_ip, mp.inside_port),
            (sess.remote_ip, sess.remote_port),
        )
    }

    /// The session of an outbound flow of a dynamic mapping, with its mapping, if the
    /// index has it; `None` means "take the full lookup", not "no session".
    #[inline]
    pub(super) fn flow_session(
        &self,
        realm: u16,
        proto: NatProto,
        inside: (u32, u16),
        remote: (u32, u16),
    ) -> Option<(u32, u32)> {
        let s = self.by_flow.get(flow_key(realm, proto, inside, remote))?;
        let sess = self.sessions.get(s as usize)?;
        if sess.mapping == NIL || sess.remote_ip != remote.0 || sess.remote_port != remote.1 {
            return None;
        }
        let mp = &self.mappings[sess.mapping as usize];
        let same = !mp.is_static
            && mp.realm == realm
            && mp.proto == proto
            && mp.inside_ip == inside.0
            && mp.inside_port == inside.1;
        same.then_some((s, sess.mapping))
    }

    /// Starts loading the `by_flow` slot of an outbound flow (batch warming).
    #[inline]
    pub(super) fn prefetch_flow(
        &self,
        realm: u16,
        proto: NatProto,
        inside: (u32, u16),
        remote: (u32, u16),
    ) {
        self.by_flow
            .prefetch(flow_key(realm, proto, inside, remote));
    }

    /// The `by_flow` candidate of an outbound flow, unconfirmed (batch warming: reads
    /// only the prefetched slot).
    #[inline]
    pub(super) fn flow_hint(
        &self,
        realm: u16,
        proto: NatProto,
        inside: (u32, u16),
        remote: (u32, u16),
    ) -> Option<u32> {
        self.by_flow.get(flow_key(realm, proto, inside, remote))
    }

    /// Indexes new session `s` if it belongs to a dynamic mapping and its key is free.
    pub(super) fn index_flow(&mut self, s: u32) {
        let sess = &self.sessions[s as usize];
        if self.mappings[sess.mapping as usize].is_static {
            return;
        }
        let key = self.session_flow_key(s);
        if self.by_flow.get(key).is_none() {
            self.by_flow.insert(key, s);
        }
    }

    /// Removes session `s` (still linked to its mapping) from the index if it is there.
    pub(super) fn unindex_flow(&mut self, s: u32) {
        let key = self.session_flow_key(s);
        if self.by_flow.get(key) == Some(s) {
            self.by_flow.remove(key);
        }
    }
}
