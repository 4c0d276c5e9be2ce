//! The per-session TCP tracker: just enough state to pick the idle timeout (RFC 5382 REQ-5).
//!
//! A session's TCP state is one byte of flags: which direction sent a SYN, which sent a
//! FIN, whether a RST was seen, and whether the session was picked up mid-stream.
//!
//! - *established*: both directions sent a SYN (SYN then SYN+ACK, or a simultaneous open,
//!   RFC 5382 REQ-2) and the connection is not closed;
//! - *closed*: a RST was seen (RFC 7857 section 2.2: keep the state for the transitory
//!   time after a RST), or both directions sent a FIN;
//! - anything else (SYN sent, not yet answered; closed) is *transitory*.
//!
//! A session created by a packet without SYN (the connection predates the NAT, or the
//! first packet the stage saw was a reply) is *loose*: any packet then counts as its
//! direction's SYN, so it becomes established once both directions have spoken.
//!
//! A SYN without ACK on a closed session starts a fresh connection on the same 4-tuple
//! (TIME_WAIT reuse). Invariants: the tracker never rejects a packet (RFC 5382 REQ-2:
//! every valid sequence passes), and ICMP never changes it (RFC 5382 REQ-10).

use vnet_core::wire::TcpFlags;

const SYN_OUT: u8 = 1;
const SYN_IN: u8 = 2;
const FIN_OUT: u8 = 4;
const FIN_IN: u8 = 8;
const RST: u8 = 16;
const LOOSE: u8 = 32;

/// Which way a packet crosses the NAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    /// Inside to outside.
    Out,
    /// Outside to inside.
    In,
}

/// The TCP state of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TcpTrack(u8);

impl TcpTrack {
    /// No packet seen (a free session slot).
    pub(crate) const ZERO: TcpTrack = TcpTrack(0);

    /// The state of a session created by a packet with `flags` going `dir`.
    #[inline]
    pub(crate) fn new(dir: Dir, flags: TcpFlags) -> Self {
        let start = if flags.contains(TcpFlags::SYN) {
            0
        } else {
            LOOSE
        };
        let mut t = TcpTrack(start);
        t.update(dir, flags);
        t
    }

    /// Whether a RST or both FINs were seen.
    #[inline]
    pub(crate) fn closed(self) -> bool {
        self.0 & RST != 0 || self.0 & (FIN_OUT | FIN_IN) == FIN_OUT | FIN_IN
    }

    /// Whether the connection is established (uses the long idle timeout).
    #[inline]
    pub(crate) fn established(self) -> bool {
        self.0 & (SYN_OUT | SYN_IN) == SYN_OUT | SYN_IN && !self.closed()
    }

    /// Feeds one packet's flags.
    #[inline]
    pub(crate) fn update(&mut self, dir: Dir, flags: TcpFlags) {
        let (syn_d, fin_d) = match dir {
            Dir::Out => (SYN_OUT, FIN_OUT),
            Dir::In => (SYN_IN, FIN_IN),
        };
        let syn = flags.contains(TcpFlags::SYN);
        let rst = flags.contains(TcpFlags::RST);
        if syn && !rst && !flags.contains(TcpFlags::ACK) && self.closed() {
            self.0 = 0;
        }
        if rst {
            self.0 |= RST;
            return;
        }
        if syn || self.0 & LOOSE != 0 {
            self.0 |= syn_d;
        }
        if flags.contains(TcpFlags::FIN) {
            self.0 |= fin_d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYN: TcpFlags = TcpFlags::SYN;
    const ACK: TcpFlags = TcpFlags::ACK;
    const FIN: TcpFlags = TcpFlags::FIN;

    #[test]
    fn three_way_handshake_then_close() {
        let mut t = TcpTrack::new(Dir::Out, SYN);
        assert!(!t.established());
        t.update(Dir::In, SYN | ACK);
        assert!(t.established());
        t.update(Dir::Out, ACK);
        t.update(Dir::Out, FIN | ACK);
        assert!(t.established(), "half-closed stays established");
        t.update(Dir::In, FIN | ACK);
        assert!(t.closed() && !t.established());
        // A new SYN on the same 4-tuple reopens.
        t.update(Dir::Out, SYN);
        assert!(!t.closed() && !t.established());
        t.update(Dir::In, SYN | ACK);
        assert!(t.established());
    }

    #[test]
    fn simultaneous_open_and_rst() {
        let mut t = TcpTrack::new(Dir::Out, SYN);
        t.update(Dir::In, SYN);
        assert!(t.established());
        t.update(Dir::In, TcpFlags::RST);
        assert!(t.closed());
    }

    #[test]
    fn loose_pickup() {
        let mut t = TcpTrack::new(Dir::Out, ACK);
        assert!(!t.established());
        t.update(Dir::In, ACK);
        assert!(t.established());
        let mut t = TcpTrack::new(Dir::In, SYN);
        t.update(Dir::Out, SYN | ACK);
        assert!(t.established());
    }
}
