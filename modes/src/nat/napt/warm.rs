//! Batch warming: [`Napt::warm_outbound`] and [`Napt::warm_inbound`] walk a batch of
//! packets through the tables in stages and prefetch what the translation of each will
//! read, so the cache misses of the whole batch overlap instead of queueing one after the
//! other (the bulk-lookup pattern of DPDK's `rte_hash`).
//!
//! Each stage handles every packet of a chunk of [`CHUNK`] before the next stage starts,
//! and only reads lines the previous stage prefetched:
//!
//! | stage | outbound | inbound |
//! |---|---|---|
//! | 1 | parse, prefetch the `by_flow` slot | parse, prefetch `ext_head[(proto, port)]` |
//! | 2 | probe `by_flow`; prefetch the session (not indexed: the `inside` slot) | read the head; prefetch the mapping and the `by_addr` (or `by_session`) slot |
//! | 3 | prefetch the session's mapping and address entry (not indexed: probe `inside`, prefetch the mapping and the `by_session` slot) | probe; prefetch the address entry (or session) |
//!
//! Small tables (under `WARM_MIN_SESSIONS` sessions) stay in cache: warming is skipped.
//!
//! Invariants: warming takes `&self` and only prefetches: it changes no state and no
//! verdict, whatever the packets (a malformed one, an unknown flow or a stale index is
//! just not warmed; every index is bounds-checked). It allocates nothing (fixed arrays on
//! the stack). Callers warm a batch, then translate it packet by packet as before.

use super::super::table::prefetch;
use super::super::translate::{rd16, rd32, DST, SRC};
use super::super::Filtering;
use super::{addr_key, ext_index, inside_key, session_key, Napt, NIL};
use crate::nat::NatProto;

/// Below this many sessions the tables' live lines fit in L2 (about five 64-byte lines a
/// session: 4096 sessions are 1.3 MB) and warming would only repeat the lookups' work
/// (measured: +12..19 ns a packet at 1 and 1k sessions), so it is skipped.
const WARM_MIN_SESSIONS: usize = 4096;

/// Packets warmed per round: enough to overlap many misses, few enough that the lines of
/// a round still sit in L1/L2 when they are used.
const CHUNK: usize = 64;

/// The fields of a packet the lookups need.
#[derive(Debug, Clone, Copy)]
struct Flow {
    proto: NatProto,
    /// Outbound: the inside endpoint. Inbound: the remote one.
    src: u32,
    sport: u16,
    /// Outbound: the remote endpoint. Inbound: the external one.
    dst: u32,
    dport: u16,
    /// Outbound: the realm. Inbound: unused.
    realm: u16,
    /// What stage 2 found: inbound, the mapping; outbound, the session the flow index
    /// named (`NIL`: not warmed further, or outbound without an index entry).
    m: u32,
}

const NO_FLOW: Flow = Flow {
    proto: NatProto::Udp,
    src: 0,
    sport: 0,
    dst: 0,
    dport: 0,
    realm: 0,
    m: NIL,
};

/// The lookup fields of a first-fragment-free IPv4 TCP, UDP or ICMP echo packet; `echo`
/// is the ICMP type whose identifier is the inside one's (8 outbound, 0 inbound). No
/// checksum is verified: a wrong guess only costs a useless prefetch.
#[inline]
fn parse(ip: &[u8], echo: u8) -> Option<Flow> {
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let hl = usize::from(ip[0] & 0x0f) * 4;
    let l4 = ip.get(hl..hl + 8)?;
    let (proto, sport, dport) = match ip[9] {
        6 => (NatProto::Tcp, rd16(l4, 0), rd16(l4, 2)),
        17 => (NatProto::Udp, rd16(l4, 0), rd16(l4, 2)),
        1 if l4[0] == echo => {
            let id = rd16(l4, 4);
            // The identifier is the inside "port" outbound, the external one inbound.
            if echo == 8 {
                (NatProto::Icmp, id, 0)
            } else {
                (NatProto::Icmp, 0, id)
            }
        }
        _ => return None,
    };
    Some(Flow {
        proto,
        src: rd32(ip, SRC),
        sport,
        dst: rd32(ip, DST),
        dport,
        realm: 0,
        m: NIL,
    })
}

impl Napt {
    /// Prefetches what [`outbound`](Napt::outbound) will read for each `(realm, packet)`
    /// of a batch: a few stages over the whole batch, each prefetching the next level of
    /// the tables, so the batch's cache misses overlap. Call it with the batch (up to a
    /// few hundred packets), then translate the packets as usual. Only a hint: it changes
    /// no state and no verdict, whatever the packets, and allocates nothing.
    pub fn warm_outbound<'a>(&self, batch: impl IntoIterator<Item = (u16, &'a [u8])>) {
        if self.session_count < WARM_MIN_SESSIONS {
            return;
        }
        let mut flows = [NO_FLOW; CHUNK];
        let mut n = 0;
        for (realm, ip) in batch {
            if let Some(mut f) = parse(ip, 8) {
                f.realm = realm;
                self.prefetch_flow(realm, f.proto, (f.src, f.sport), (f.dst, f.dport));
                flows[n] = f;
                n += 1;
                if n == CHUNK {
                    self.warm_outbound_chunk(&mut flows);
                    n = 0;
                }
            }
        }
        self.warm_outbound_chunk(&mut flows[..n]);
    }

    /// Stages 2 and 3 of outbound warming (stage 1 ran while the chunk was collected).
    /// `f.m` holds the indexed session, `NIL` for a flow that takes the full lookup.
    fn warm_outbound_chunk(&self, flows: &mut [Flow]) {
        for f in flows.iter_mut() {
            let hint = self.flow_hint(f.realm, f.proto, (f.src, f.sport), (f.dst, f.dport));
            match hint.and_then(|s| self.sessions.get(s as usize)) {
                Some(sess) => {
                    prefetch(sess);
                    f.m = hint.unwrap_or(NIL);
                }
                None => {
                    self.inside
                        .prefetch(inside_key(f.realm, f.proto, f.src, f.sport));
                    f.m = NIL;
                }
            }
        }
        for f in flows.iter() {
            if let Some(sess) = self.sessions.get(f.m as usize) {
                if let Some(mp) = self.mappings.get(sess.mapping as usize) {
                    prefetch(mp);
                }
                if let Some(a) = self.addrs.get(sess.addr as usize) {
                    prefetch(a);
                }
                continue;
            }
            let m = self
                .inside
                .get(inside_key(f.realm, f.proto, f.src, f.sport))
                .unwrap_or(NIL);
            if let Some(mp) = self.mappings.get(m as usize) {
                prefetch(mp);
                self.by_session.prefetch(session_key(m, f.dst, f.dport));
            }
        }
    }

    /// Prefetches what [`inbound`](Napt::inbound) will read for each packet of a batch,
    /// as [`warm_outbound`](Napt::warm_outbound) does for outbound packets. Only a hint.
    pub fn warm_inbound<'a>(&self, batch: impl IntoIterator<Item = &'a [u8]>) {
        if self.session_count < WARM_MIN_SESSIONS {
            return;
        }
        let mut flows = [NO_FLOW; CHUNK];
        let mut n = 0;
        for ip in batch {
            if let Some(f) = parse(ip, 0) {
                prefetch(&self.ext_head[ext_index(f.proto, f.dport)]);
                flows[n] = f;
                n += 1;
                if n == CHUNK {
                    self.warm_inbound_chunk(&mut flows);
                    n = 0;
                }
            }
        }
        self.warm_inbound_chunk(&mut flows[..n]);
    }

    /// Stages 2 and 3 of inbound warming.
    fn warm_inbound_chunk(&self, flows: &mut [Flow]) {
        let by_addr = self.cfg.filtering == Filtering::AddressDependent;
        for f in flows.iter_mut() {
            f.m = self.ext_head[ext_index(f.proto, f.dport)];
            if let Some(mp) = self.mappings.get(f.m as usize) {
                prefetch(mp);
                if by_addr && f.proto != NatProto::Tcp {
                    self.by_addr.prefetch(addr_key(f.m, f.src));
                } else {
                    self.by_session.prefetch(session_key(f.m, f.src, f.sport));
                }
            }
        }
        for f in flows.iter() {
            let Some(mp) = self.mappings.get(f.m as usize) else {
                continue;
            };
            if mp.session_count == 1 {
                // The single session answers both lookups; its address entry is a
                // dependent load: warm it once the session is in.
                if let Some(sess) = self.sessions.get(mp.sessions as usize) {
                    prefetch(sess);
                }
            } else if by_addr && f.proto != NatProto::Tcp {
                let a = self.by_addr.get(addr_key(f.m, f.src)).unwrap_or(NIL);
                if let Some(a) = self.addrs.get(a as usize) {
                    prefetch(a);
                }
            } else {
                let s = self
                    .by_session
                    .get(session_key(f.m, f.src, f.sport))
                    .unwrap_or(NIL);
                if let Some(sess) = self.sessions.get(s as usize) {
                    prefetch(sess);
                }
            }
        }
        if by_addr {
            for f in flows.iter() {
                let Some(mp) = self.mappings.get(f.m as usize) else {
                    continue;
                };
                if mp.session_count == 1 {
                    let a = self
                        .sessions
                        .get(mp.sessions as usize)
                        .map_or(NIL, |s| s.addr);
                    if let Some(a) = self.addrs.get(a as usize) {
                        prefetch(a);
                    }
                }
            }
        }
    }
}
