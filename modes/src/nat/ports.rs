//! The external ports (and ICMP identifiers) one worker may hand out, and their allocation.
//!
//! The worker's ports are numbered densely by a *local index* `i`: local pair `i / 2` is the
//! worker's `(i / 2)`-th pair of the range (see [`super::config::owner_of_port`]), `i % 2`
//! picks its even-offset or odd-offset port. The map from local index to port is strictly
//! increasing, so a port interval is a local-index interval, and the parity of a port is
//! the parity of `port_range.0 + i`.
//!
//! A bitmap per protocol (TCP, UDP, ICMP) marks the free local indices; allocation scans it
//! 64 ports per word, so even a nearly full space costs at most `n / 64` word tests.
//!
//! Policy (RFC 4787 REQ-3/4, RFC 5382 REQ-7):
//!
//! 1. the inside port itself when it is free, in the range and owned by this worker (port
//!    preservation);
//! 2. else the first free port at or after it (wrapping) of the *same parity* (REQ-4),
//! 3. else of either parity;
//!
//! all within the inside port's *class*: 1..=1023 maps into the range's part below 1024
//! and 1024.. into the part from 1024 (REQ-3a), when the range has such a part. With the
//! default range (1024, 65535) there is no low part, so a well-known inside port maps into
//! 1024..=65535: a documented deviation from REQ-3a's RECOMMENDED, chosen so that the NAT
//! never needs privileged external ports. A high inside port never takes a low external
//! port. ICMP identifiers have no classes.
//!
//! Invariants: a local index is free in the bitmap exactly when no mapping and no
//! forwarding rule holds its port for that protocol (no port overloading), and
//! `free_low + free_high` counts the bitmap's set bits.

use super::NatProto;

/// One worker's share of the port range.
#[derive(Debug)]
pub(crate) struct PortSpace {
    lo: u16,
    hi: u16,
    worker: u32,
    workers: u32,
    len: u32,
    /// First local index whose port is >= 1024.
    split: u32,
    free: [Box<[u64]>; 3],
    free_low: [u32; 3],
    free_high: [u32; 3],
}

impl PortSpace {
    /// The share of `worker` among `workers` in `lo..=hi` (validated config).
    pub(crate) fn new(lo: u16, hi: u16, worker: usize, workers: usize) -> Self {
        let mut s = PortSpace {
            lo,
            hi,
            worker: worker as u32,
            workers: workers as u32,
            len: 0,
            split: 0,
            free: [Box::new([]), Box::new([]), Box::new([])],
            free_low: [0; 3],
            free_high: [0; 3],
        };
        let pairs = (u32::from(hi - lo) + 2) / 2;
        let owned_pairs = if s.worker < pairs {
            (pairs - s.worker).div_ceil(s.workers)
        } else {
            0
        };
        let mut len = owned_pairs * 2;
        if len > 0 && s.port_of(len - 1).is_none() {
            len -= 1;
        }
        s.len = len;
        s.split = s.lower_bound(1024);
        let words = (len as usize).div_ceil(64);
        for p in 0..3 {
            let mut bits = vec![!0u64; words];
            if len & 63 != 0 {
                bits[words - 1] = (1u64 << (len % 64)) - 1;
            }
            s.free[p] = bits.into_boxed_slice();
            s.free_low[p] = s.split;
            s.free_high[p] = len - s.split;
        }
        s
    }

    /// The port of local index `i`, if within the range.
    #[inline]
    fn port_of(&self, i: u32) -> Option<u16> {
        let pair = u64::from(i / 2) * u64::from(self.workers) + u64::from(self.worker);
        let p = u64::from(self.lo) + 2 * pair + u64::from(i % 2);
        (p <= u64::from(self.hi)).then_some(p as u16)
    }

    /// The local index of `port`, if this worker owns it.
    #[inline]
    fn local_of(&self, port: u16) -> Option<u32> {
        if port < self.lo || port > self.hi {
            return None;
        }
        let off = u32::from(port - self.lo);
        let q = off >> 1;
        (q % self.workers == self.worker).then(|| (q / self.workers) * 2 + (off & 1))
    }

    /// The smallest local index whose port is `>= port` (`len` if none).
    fn lower_bound(&self, port: u16) -> u32 {
        if port <= self.lo {
            return 0;
        }
        if port > self.hi {
            return self.len;
        }
        let off = u32::from(port - self.lo);
        let q = off >> 1;
        let k = q / self.workers;
        let i = match (q % self.workers).cmp(&self.worker) {
            std::cmp::Ordering::Equal => k * 2 + (off & 1),
            std::cmp::Ordering::Less => k * 2,
            std::cmp::Ordering::Greater => (k + 1) * 2,
        };
        i.min(self.len)
    }

    #[inline]
    fn is_free(&self, proto: NatProto, i: u32) -> bool {
        self.free[proto as usize][(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set_used(&mut self, proto: NatProto, i: u32) {
        let p = proto as usize;
        self.free[p][(i / 64) as usize] &= !(1 << (i % 64));
        if i < self.split {
            self.free_low[p] -= 1;
        } else {
            self.free_high[p] -= 1;
        }
    }

    /// Marks `port` used if this worker owns it and it is free (a forwarding rule's port).
    pub(crate) fn reserve(&mut self, proto: NatProto, port: u16) {
        if let Some(i) = self.local_of(port) {
            if self.is_free(proto, i) {
                self.set_used(proto, i);
            }
        }
    }

    /// Returns `port` to the free pool if this worker owns it.
    pub(crate) fn release(&mut self, proto: NatProto, port: u16) {
        if let Some(i) = self.local_of(port) {
            if !self.is_free(proto, i) {
                let p = proto as usize;
                self.free[p][(i / 64) as usize] |= 1 << (i % 64);
                if i < self.split {
                    self.free_low[p] += 1;
                } else {
                    self.free_high[p] += 1;
                }
            }
        }
    }

    /// Allocates a port for an inside endpoint using `inside_port`, by the policy of the
    /// [module documentation](self). `None`: the class is exhausted.
    pub(crate) fn allocate(&mut self, proto: NatProto, inside_port: u16) -> Option<u16> {
        let p = proto as usize;
        let (a, b) = if proto == NatProto::Icmp {
            (0, self.len)
        } else if inside_port < 1024 && self.split > 0 {
            (0, self.split)
        } else if inside_port >= 1024 && self.split < self.len {
            (self.split, self.len)
        } else {
            (0, self.len)
        };
        let free = if (a, b) == (0, self.split) {
            self.free_low[p]
        } else if (a, b) == (self.split, self.len) {
            self.free_high[p]
        } else {
            self.free_low[p] + self.free_high[p]
        };
        if free == 0 {
            return None;
        }
        if let Some(i) = self.local_of(inside_port) {
            if (a..b).contains(&i) && self.is_free(proto, i) {
                self.set_used(proto, i);
                return Some(inside_port);
            }
        }
        let mut start = self.lower_bound(inside_port);
        if !(a..b).contains(&start) {
            start = a;
        }
        // Local index parity that gives the inside port's parity.
        let want = u32::from((inside_port ^ self.lo) & 1);
        let parity_mask = if want == 0 {
            0x5555_5555_5555_5555
        } else {
            0xaaaa_aaaa_aaaa_aaaa
        };
        let bits = &self.free[p];
        let found = find(bits, start, b, parity_mask)
            .or_else(|| find(bits, a, start, parity_mask))
            .or_else(|| find(bits, start, b, !0))
            .or_else(|| find(bits, a, start, !0))?;
        self.set_used(proto, found);
        self.port_of(found)
    }
}

/// The first set bit of `bits & pattern` in `[from, to)`.
fn find(bits: &[u64], from: u32, to: u32, pattern: u64) -> Option<u32> {
    if from >= to {
        return None;
    }
    let mut w = (from / 64) as usize;
    let last = ((to - 1) / 64) as usize;
    let mut word = bits[w] & pattern & (!0u64 << (from % 64));
    loop {
        if w == last && to & 63 != 0 {
            word &= (1u64 << (to % 64)) - 1;
        }
        if word != 0 {
            return Some(w as u32 * 64 + word.trailing_zeros());
        }
        if w == last {
            return None;
        }
        w += 1;
        word = bits[w] & pattern;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_index_round_trips() {
        for (lo, hi, workers) in [(1024, 65535, 1), (1024, 65535, 3), (1, 100, 4), (7, 8, 1)] {
            for w in 0..workers {
                let s = PortSpace::new(lo, hi, w, workers);
                let mut prev = None;
                for i in 0..s.len {
                    let p = s.port_of(i).unwrap();
                    assert_eq!(s.local_of(p), Some(i));
                    assert_eq!(s.lower_bound(p), i);
                    if let Some(q) = prev {
                        assert!(q < p);
                    }
                    prev = Some(p);
                    assert_eq!(super::super::config::owner_of_port(p, (lo, hi), workers), w);
                }
                assert!(s.port_of(s.len).is_none());
            }
        }
    }

    #[test]
    fn preserve_then_parity_then_any() {
        let mut s = PortSpace::new(1024, 1031, 0, 1);
        assert_eq!(s.allocate(NatProto::Udp, 1026), Some(1026));
        assert_eq!(s.allocate(NatProto::Udp, 1026), Some(1028));
        assert_eq!(s.allocate(NatProto::Udp, 1026), Some(1030));
        assert_eq!(s.allocate(NatProto::Udp, 1026), Some(1024));
        // Evens exhausted: an odd port is better than none.
        assert_eq!(s.allocate(NatProto::Udp, 1026), Some(1027));
        // Protocols are separate spaces.
        assert_eq!(s.allocate(NatProto::Tcp, 1026), Some(1026));
        assert_eq!(s.allocate(NatProto::Udp, 1031), Some(1031));
        assert_eq!(s.allocate(NatProto::Udp, 1031), Some(1025));
        assert_eq!(s.allocate(NatProto::Udp, 1031), Some(1029));
        assert_eq!(s.allocate(NatProto::Udp, 1), None);
        s.release(NatProto::Udp, 1028);
        assert_eq!(s.allocate(NatProto::Udp, 40000), Some(1028));
    }

    #[test]
    fn low_ports_stay_low_when_the_range_allows() {
        let mut s = PortSpace::new(1000, 1100, 0, 1);
        assert_eq!(s.allocate(NatProto::Tcp, 22), Some(1000));
        assert_eq!(s.allocate(NatProto::Tcp, 23), Some(1001));
        assert_eq!(s.allocate(NatProto::Tcp, 5000), Some(1024));
        for _ in 0..22 {
            assert!(s.allocate(NatProto::Tcp, 22).unwrap() < 1024);
        }
        assert_eq!(s.allocate(NatProto::Tcp, 22), None, "low class exhausted");
        assert!(s.allocate(NatProto::Tcp, 5000).unwrap() >= 1024);
    }
}
