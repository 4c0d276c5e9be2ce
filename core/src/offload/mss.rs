//! The MSS each TCP peer announced, learnt from the SYNs a port transmits.
//!
//! A guest's TSO super-frame must be cut to the MSS its peer announced in the handshake.
//! The peer's SYN (or SYN-ACK) leaves the dataplane through the guest's port, with the
//! addresses the guest sees (after any NAT), so the port that will receive the guest's
//! super-frames records it on transmit: key = the flow as the guest sends it (guest
//! address and port first), value = the peer's MSS.
//!
//! Bounded and allocation-free after construction: a direct-mapped table of
//! [`MssTable::SLOTS`] entries, each holding a 64-bit hash of the flow as its tag; a new
//! flow may evict an older one that hashes to the same slot. A flow not found (evicted,
//! or its handshake never seen, e.g. the dataplane started mid-connection) is segmented
//! to the MTU alone, which is what the guest's own stack does when the peer's MSS is not
//! smaller than the path allows.

use super::gso::Flow;
use super::headers::{locate, PROTO_TCP};

/// Flow -> the MSS the peer announced.
#[derive(Debug)]
pub struct MssTable {
    slots: Box<[(u64, u16)]>,
}

impl Default for MssTable {
    fn default() -> Self {
        Self::new()
    }
}

fn hash(flow: &Flow) -> u64 {
    // FNV-1a over the flow: cheap, and good enough to spread ports over 1024 slots.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    };
    flow.0.iter().for_each(|&b| eat(b));
    flow.1.to_be_bytes().iter().for_each(|&b| eat(b));
    flow.2.iter().for_each(|&b| eat(b));
    flow.3.to_be_bytes().iter().for_each(|&b| eat(b));
    h | 1 // never 0: 0 marks an empty slot
}

impl MssTable {
    /// Entries in the table.
    pub const SLOTS: usize = 1024;

    /// An empty table.
    pub fn new() -> Self {
        Self {
            slots: vec![(0, 0); Self::SLOTS].into_boxed_slice(),
        }
    }

    /// Look at a frame this port transmits: a TCP SYN carrying an MSS option is recorded
    /// for the reverse flow (the one its receiver will send). Cheap for everything else:
    /// a few loads to find that it is not a SYN.
    #[inline]
    pub fn observe_tx(&mut self, frame: &[u8]) {
        let Some(h) = locate(frame) else { return };
        if h.proto != PROTO_TCP || frame[h.l4 + 13] & 0x02 == 0 {
            return;
        }
        let Some(mss) = mss_option(&frame[h.l4 + 20..h.l4 + h.l4_header_len(frame)]) else {
            return;
        };
        let Some((src, sport, dst, dport)) = super::gso::tcp_flow(frame) else {
            return;
        };
        let reverse = (dst, dport, src, sport);
        let tag = hash(&reverse);
        self.slots[tag as usize % Self::SLOTS] = (tag, mss);
    }

    /// The MSS announced to the sender of `flow`, if its handshake was seen.
    #[inline]
    pub fn lookup(&self, flow: &Flow) -> Option<u16> {
        let tag = hash(flow);
        let (t, mss) = self.slots[tag as usize % Self::SLOTS];
        (t == tag).then_some(mss)
    }
}

/// The MSS option's value in a TCP options area; `None` when absent or malformed.
fn mss_option(mut opts: &[u8]) -> Option<u16> {
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return None,
            1 => opts = &opts[1..],
            _ => {
                let len = usize::from(*opts.get(1)?);
                if len < 2 || len > opts.len() {
                    return None;
                }
                if kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([opts[2], opts[3]])).filter(|&m| m > 0);
                }
                opts = &opts[len..];
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN-ACK from 198.18.0.1:80 to 10.0.2.15:40000 with the given options.
    fn syn_ack(options: &[u8], flags: u8) -> Vec<u8> {
        let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        let tcp_len = 20 + options.len();
        let total = 20 + tcp_len;
        f.extend_from_slice(&[0x45, 0, 0, total as u8, 0, 1, 0x40, 0, 64, 6, 0, 0]);
        f.extend_from_slice(&[198, 18, 0, 1, 10, 0, 2, 15]);
        f.extend_from_slice(&[0, 80, 0x9c, 0x40, 0, 0, 0, 1, 0, 0, 0, 1]);
        f.extend_from_slice(&[((tcp_len / 4) << 4) as u8, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend_from_slice(options);
        f
    }

    fn guest_flow() -> Flow {
        let mut g = [0u8; 16];
        g[12..].copy_from_slice(&[10, 0, 2, 15]);
        let mut p = [0u8; 16];
        p[12..].copy_from_slice(&[198, 18, 0, 1]);
        (g, 40000, p, 80)
    }

    #[test]
    fn a_transmitted_syn_ack_teaches_the_guest_s_flow_its_mss() {
        let mut t = MssTable::new();
        assert_eq!(t.lookup(&guest_flow()), None);
        t.observe_tx(&syn_ack(&[1, 1, 4, 2, 2, 4, 0x02, 0x18], 0x12));
        assert_eq!(t.lookup(&guest_flow()), Some(536));
        // The same flow the other way round is not the guest's.
        let (a, ap, b, bp) = guest_flow();
        assert_eq!(t.lookup(&(b, bp, a, ap)), None);
    }

    #[test]
    fn non_syns_and_broken_options_teach_nothing() {
        let mut t = MssTable::new();
        t.observe_tx(&syn_ack(&[2, 4, 0x02, 0x18], 0x10)); // plain ACK
        t.observe_tx(&syn_ack(&[2, 9, 0x02, 0x18], 0x12)); // length past the end
        t.observe_tx(&syn_ack(&[0, 0, 2, 4, 0x02, 0x18, 0, 0], 0x12)); // after EOL
        t.observe_tx(&[0u8; 20]);
        assert_eq!(t.lookup(&guest_flow()), None);
    }
}
