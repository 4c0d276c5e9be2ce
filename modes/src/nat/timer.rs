//! A hashed timing wheel over session indices: amortised O(1) expiry, no scan per packet.
//!
//! Time is cut into ticks of [`TICK_NS`]; the wheel has [`SLOTS`] slots, each an intrusive
//! doubly linked list of entries (the links live in arrays sized at construction, indexed
//! by session index). Entries are *lazy*: refreshing a session only moves its deadline
//! later in the session itself; the wheel entry stays where it is, and when its slot comes
//! up the owner either expires it or re-inserts it at its real deadline. A deadline that
//! moves *earlier* (a TCP connection closing) is re-slotted at once with
//! [`Wheel::reschedule_earlier`], so memory is reclaimed on time.
//!
//! Invariants:
//!
//! - every linked entry sits in the slot of a tick in `cursor..cursor + SLOTS` (deadlines
//!   further out are parked at the last tick and re-inserted when it comes up);
//! - ticks below `cursor` have been processed: a poll at `now` visits every entry whose
//!   slot tick is `<= tick(now)`, each at most twice;
//! - `occupied` has bit `s` set exactly when slot `s` is non-empty, so
//!   [`Wheel::next_deadline`] costs `SLOTS / 64` word tests at most.

use vnet_core::time::Instant;

/// Length of one tick: 250 ms.
pub(crate) const TICK_NS: u64 = 250_000_000;
/// Number of slots: 4096 ticks = 1024 s per turn.
pub(crate) const SLOTS: usize = 4096;

const NIL: u32 = u32::MAX;
/// The detached list being processed by a poll.
const PENDING: u32 = SLOTS as u32;

#[inline]
fn tick_of(t: Instant) -> u64 {
    t.as_nanos() / TICK_NS
}

/// The wheel.
#[derive(Debug)]
pub(crate) struct Wheel {
    /// List heads: `SLOTS` slots, then the pending list.
    heads: Box<[u32]>,
    next: Box<[u32]>,
    prev: Box<[u32]>,
    /// Slot holding each entry (`PENDING`, or `NIL` when not linked).
    slot: Box<[u32]>,
    /// Tick each linked entry was filed under.
    tick: Box<[u64]>,
    occupied: Box<[u64]>,
    cursor: u64,
    target: u64,
    len: usize,
}

impl Wheel {
    /// A wheel for entries `0..capacity`, starting at `now`.
    pub(crate) fn new(capacity: usize, now: Instant) -> Self {
        Self {
            heads: vec![NIL; SLOTS + 1].into_boxed_slice(),
            next: vec![NIL; capacity].into_boxed_slice(),
            prev: vec![NIL; capacity].into_boxed_slice(),
            slot: vec![NIL; capacity].into_boxed_slice(),
            tick: vec![0; capacity].into_boxed_slice(),
            occupied: vec![0; SLOTS / 64].into_boxed_slice(),
            cursor: tick_of(now),
            target: 0,
            len: 0,
        }
    }

    /// Entries linked (pending ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn link(&mut self, idx: u32, slot: u32) {
        let i = idx as usize;
        let head = self.heads[slot as usize];
        self.next[i] = head;
        self.prev[i] = NIL;
        if head != NIL {
            self.prev[head as usize] = idx;
        }
        self.heads[slot as usize] = idx;
        self.slot[i] = slot;
        if slot != PENDING {
            self.occupied[slot as usize / 64] |= 1 << (slot % 64);
        }
    }

    /// Files `idx` (not linked) under `deadline`.
    pub(crate) fn insert(&mut self, idx: u32, deadline: Instant) {
        debug_assert_eq!(self.slot[idx as usize], NIL);
        let t = tick_of(deadline)
            .max(self.cursor)
            .min(self.cursor + SLOTS as u64 - 1);
        self.tick[idx as usize] = t;
        self.link(idx, (t % SLOTS as u64) as u32);
        self.len += 1;
    }

    /// Unlinks `idx` if it is linked.
    pub(crate) fn remove(&mut self, idx: u32) {
        let i = idx as usize;
        let slot = self.slot[i];
        if slot == NIL {
            return;
        }
        let (p, n) = (self.prev[i], self.next[i]);
        if p != NIL {
            self.next[p as usize] = n;
        } else {
            self.heads[slot as usize] = n;
            if n == NIL && slot != PENDING {
                self.occupied[slot as usize / 64] &= !(1 << (slot % 64));
            }
        }
        if n != NIL {
            self.prev[n as usize] = p;
        }
        self.slot[i] = NIL;
        self.next[i] = NIL;
        self.prev[i] = NIL;
        self.len -= 1;
    }

    /// Moves `idx` to `deadline` if that falls in an earlier tick than where it is filed.
    pub(crate) fn reschedule_earlier(&mut self, idx: u32, deadline: Instant) {
        let i = idx as usize;
        if self.slot[i] == NIL || self.slot[i] == PENDING {
            return;
        }
        if tick_of(deadline).max(self.cursor) < self.tick[i] {
            self.remove(idx);
            self.insert(idx, deadline);
        }
    }

    /// Starts a poll at `now`: [`pop_due`](Self::pop_due) then yields every entry filed
    /// under a tick `<= tick(now)`. The caller expires each, or re-[`insert`](Self::insert)s
    /// it at its real deadline.
    pub(crate) fn begin_poll(&mut self, now: Instant) {
        let target = tick_of(now);
        // After a gap longer than a turn, every slot is due once: skip the stale ticks.
        if target >= self.cursor + SLOTS as u64 {
            self.cursor = target + 1 - SLOTS as u64;
        }
        self.target = target;
    }

    /// The next entry due in the poll begun by [`begin_poll`](Self::begin_poll), unlinked.
    pub(crate) fn pop_due(&mut self) -> Option<u32> {
        loop {
            let head = self.heads[PENDING as usize];
            if head != NIL {
                self.remove(head);
                return Some(head);
            }
            if self.cursor > self.target {
                return None;
            }
            let s = (self.cursor % SLOTS as u64) as usize;
            self.cursor += 1;
            let mut idx = self.heads[s];
            if idx == NIL {
                continue;
            }
            // Detach the whole slot into the pending list.
            self.heads[PENDING as usize] = idx;
            self.heads[s] = NIL;
            self.occupied[s / 64] &= !(1 << (s % 64));
            while idx != NIL {
                self.slot[idx as usize] = PENDING;
                idx = self.next[idx as usize];
            }
        }
    }

    /// When the next poll has work: the start of the earliest non-empty slot's tick.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        if self.heads[PENDING as usize] != NIL {
            return Some(Instant::from_nanos(self.cursor.saturating_mul(TICK_NS)));
        }
        let start = (self.cursor % SLOTS as u64) as usize;
        let words = SLOTS / 64;
        // Scan cyclically from `start`: the first word masked below `start`, then the
        // others, then the first word's low bits.
        for step in 0..=words {
            let w = (start / 64 + step) % words;
            let mut bits = self.occupied[w];
            if step == 0 {
                bits &= !0u64 << (start % 64);
            } else if step == words {
                bits &= !(!0u64 << (start % 64));
            }
            if bits != 0 {
                let s = w * 64 + bits.trailing_zeros() as usize;
                let dist = (s + SLOTS - start) % SLOTS;
                return Some(Instant::from_nanos(
                    (self.cursor + dist as u64).saturating_mul(TICK_NS),
                ));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    fn poll(w: &mut Wheel, now: Instant, deadlines: &mut [Instant]) -> Vec<u32> {
        let mut expired = Vec::new();
        w.begin_poll(now);
        while let Some(i) = w.pop_due() {
            if deadlines[i as usize] <= now {
                expired.push(i);
            } else {
                w.insert(i, deadlines[i as usize]);
            }
        }
        expired.sort();
        expired
    }

    #[test]
    fn expires_on_time_and_reinserts_far_deadlines() {
        let mut w = Wheel::new(4, Instant::ZERO);
        let mut d = [secs(10), secs(300), secs(7440), secs(10)];
        for (i, t) in d.iter().enumerate() {
            w.insert(i as u32, *t);
        }
        assert_eq!(w.next_deadline(), Some(secs(10)));
        assert!(poll(&mut w, secs(9), &mut d).is_empty());
        assert_eq!(poll(&mut w, secs(10), &mut d), vec![0, 3]);
        assert!(poll(&mut w, secs(299), &mut d).is_empty());
        assert_eq!(poll(&mut w, secs(300), &mut d), vec![1]);
        // The 7440 s entry was parked a turn ahead, then re-filed.
        assert!(w.next_deadline().unwrap() <= secs(7440));
        assert!(poll(&mut w, secs(7439), &mut d).is_empty());
        assert_eq!(poll(&mut w, secs(7440), &mut d), vec![2]);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn big_gap_and_earlier_reschedule() {
        let mut w = Wheel::new(3, secs(5));
        let mut d = [secs(100), secs(5000), secs(100_000)];
        for (i, t) in d.iter().enumerate() {
            w.insert(i as u32, *t);
        }
        d[1] = secs(50);
        w.reschedule_earlier(1, d[1]);
        assert_eq!(w.next_deadline(), Some(secs(50)));
        assert_eq!(poll(&mut w, secs(60_000), &mut d), vec![0, 1]);
        assert_eq!(poll(&mut w, secs(99_999), &mut d), Vec::<u32>::new());
        assert_eq!(poll(&mut w, secs(100_000), &mut d), vec![2]);
    }

    #[test]
    fn remove_anywhere() {
        let mut w = Wheel::new(3, Instant::ZERO);
        for i in 0..3 {
            w.insert(i, secs(10));
        }
        w.remove(1);
        w.remove(1);
        let mut d = [secs(10); 3];
        assert_eq!(poll(&mut w, secs(11), &mut d), vec![0, 2]);
    }
}
