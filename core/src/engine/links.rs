//! Which ports' interfaces are down or gone: written by the control thread (the link
//! watcher of `vnet-bench run`), read by the workers once per loop.
//!
//! A worker skips a down port entirely: it neither receives from it nor services its
//! rings (no `sendto`/`recvfrom` on a socket whose interface is down or unbound), and
//! drops what the pipeline sends to it, counted as [`crate::counters::DropReason::PortDown`].
//! That keeps a lost port from costing syscalls or log lines per packet; the other ports
//! go on as before.
//!
//! Invariant: one writer (the control thread); a worker sees a change at its next loop.

use crate::frame::{PortId, MAX_PORTS};
use std::sync::atomic::{AtomicU64, Ordering};

/// One bit per dataplane port: set while its interface is down or gone.
#[derive(Debug, Default)]
pub struct PortLinks {
    down: AtomicU64,
}

const _: () = assert!(MAX_PORTS <= 64, "one bit per port");

impl PortLinks {
    /// Every port up.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mark port `id` down (`true`) or up again (`false`).
    pub fn set_down(&self, id: PortId, down: bool) {
        let bit = 1u64 << id;
        let old = self.down.load(Ordering::Relaxed);
        let new = if down { old | bit } else { old & !bit };
        self.down.store(new, Ordering::Relaxed);
    }

    /// Whether port `id` is down.
    pub fn is_down(&self, id: PortId) -> bool {
        self.mask() & (1u64 << id) != 0
    }

    /// The down ports, bit `id` per port.
    #[inline]
    pub fn mask(&self) -> u64 {
        self.down.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_go_down_and_up_one_by_one() {
        let l = PortLinks::new();
        assert_eq!(l.mask(), 0);
        l.set_down(2, true);
        l.set_down(63, true);
        assert!(l.is_down(2) && l.is_down(63) && !l.is_down(0));
        l.set_down(2, false);
        assert_eq!(l.mask(), 1 << 63);
    }
}
