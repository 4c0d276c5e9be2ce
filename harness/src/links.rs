//! The link watcher of `vnet-bench run`: on the control thread, every
//! [`LinkWatcher::EVERY`], each port's interface is looked up by name
//! ([`vnet_core::port::xdp::LinkProbe`]: `if_nametoindex` plus one rtnetlink request) and
//! compared with what the port is bound to. Each change is one [`Change`], told in one
//! line and counted once; nothing is said or counted per packet or per loop.
//!
//! States of a port: `Up` (bound, frames pass), `Down` (bound, but the interface is
//! down or has no carrier: the socket stays, the worker skips the port until it is up
//! again), `Lost` (the interface was deleted, or another one took its name: the socket
//! is dead). A `Lost` port whose name appears again is [`Change::Returned`]; the run
//! then binds it again ([`crate::portset`]) and reports the result with
//! [`LinkWatcher::bound`] or [`LinkWatcher::rebind_failed`]. A failed rebind is tried
//! again when the interface changes, or after [`LinkWatcher::RETRY`].
//!
//! Design choice (why the watcher polls): a check costs two cheap syscalls per port five
//! times a second on a thread that sleeps anyway, needs no subscription state that
//! could miss an event, and sees a delete-and-recreate between two checks as a changed
//! ifindex. Detecting the loss from the data path instead (ENXIO from `sendto`) would
//! put error handling and syscalls back into the workers' loop.

use std::time::{Duration, Instant};
use vnet_core::port::xdp::LinkStatus;

/// What changed for a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The interface went down or lost its carrier.
    Down,
    /// It is up again (the same interface).
    Up,
    /// It disappeared, or another interface took its name.
    Lost,
    /// An interface of the port's name is there again: bind the port to it.
    Returned {
        /// Its index.
        ifindex: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Up,
    Down,
    Lost,
}

#[derive(Debug)]
struct Port {
    state: State,
    /// The interface the port's socket is bound to.
    bound: u32,
    /// A rebind that failed: the interface it was tried on, and when.
    failed: Option<(u32, Instant)>,
}

/// Watches every port's interface; see the module docs.
#[derive(Debug)]
pub struct LinkWatcher {
    ports: Vec<Port>,
    next: Instant,
}

impl LinkWatcher {
    /// Time between two checks.
    pub const EVERY: Duration = Duration::from_millis(200);
    /// Time before a failed rebind is tried again on the same interface.
    pub const RETRY: Duration = Duration::from_secs(5);

    /// Ports bound at start to these interfaces (ifindex, running).
    pub fn new(bound: &[(u32, bool)]) -> Self {
        Self {
            ports: bound
                .iter()
                .map(|&(ifindex, running)| Port {
                    state: if running { State::Up } else { State::Down },
                    bound: ifindex,
                    failed: None,
                })
                .collect(),
            next: Instant::now() + Self::EVERY,
        }
    }

    /// Whether a check is due at `now` (and if so, the next one is scheduled).
    pub fn due(&mut self, now: Instant) -> bool {
        if now < self.next {
            return false;
        }
        self.next = now + Self::EVERY;
        true
    }

    /// Whether port `port` is down or lost (the worker must skip it).
    pub fn is_down(&self, port: usize) -> bool {
        self.ports[port].state != State::Up
    }

    /// Whether port `port`'s interface is gone (it cannot be opened).
    pub fn is_lost(&self, port: usize) -> bool {
        self.ports[port].state == State::Lost
    }

    /// Compare `port` with what its interface is now; the change, if any.
    pub fn observe(&mut self, port: usize, status: LinkStatus, now: Instant) -> Option<Change> {
        let p = &mut self.ports[port];
        match (p.state, status) {
            (State::Lost, LinkStatus::Gone) => None,
            (State::Lost, LinkStatus::Present { ifindex, .. }) => {
                let retry = match p.failed {
                    Some((ix, at)) => ix != ifindex || now.duration_since(at) >= Self::RETRY,
                    None => true,
                };
                retry.then_some(Change::Returned { ifindex })
            }
            (_, LinkStatus::Gone) => {
                p.state = State::Lost;
                Some(Change::Lost)
            }
            (_, LinkStatus::Present { ifindex, .. }) if ifindex != p.bound => {
                // Deleted and made again between two checks: the socket is dead all
                // the same; the new interface is taken at the next check.
                p.state = State::Lost;
                Some(Change::Lost)
            }
            (State::Up, LinkStatus::Present { running: false, .. }) => {
                p.state = State::Down;
                Some(Change::Down)
            }
            (State::Down, LinkStatus::Present { running: true, .. }) => {
                p.state = State::Up;
                Some(Change::Up)
            }
            _ => None,
        }
    }

    /// `port` was bound to interface `ifindex` again.
    pub fn bound(&mut self, port: usize, ifindex: u32, running: bool) {
        let p = &mut self.ports[port];
        p.bound = ifindex;
        p.failed = None;
        p.state = if running { State::Up } else { State::Down };
    }

    /// Binding `port` to `ifindex` failed at `now`; it stays lost. Returns whether this
    /// is the first failure on that interface (to be told; later ones are not).
    pub fn rebind_failed(&mut self, port: usize, ifindex: u32, now: Instant) -> bool {
        let p = &mut self.ports[port];
        let first = p.failed.is_none_or(|(ix, _)| ix != ifindex);
        p.failed = Some((ifindex, now));
        p.state = State::Lost;
        first
    }

    /// `port`'s interface vanished while its worker's ports were opened again.
    pub fn lost(&mut self, port: usize) {
        self.ports[port].state = State::Lost;
    }
}

/// The line that tells a change of port `port` (interface `name`, role `role`).
pub fn describe(port: usize, name: &str, role: &str, change: Change) -> String {
    let who = format!("port {port} {name} ({role})");
    match change {
        Change::Down => format!(
            "{who}: link down; frames for it are dropped (port_down) until it is up again"
        ),
        Change::Up => format!("{who}: link up again; forwarding"),
        Change::Lost => format!(
            "{who}: interface gone; frames for it are dropped (port_down) until an interface named {name} appears again"
        ),
        Change::Returned { ifindex } => {
            format!("{who}: interface back (ifindex {ifindex}); port bound to it again")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(ifindex: u32) -> LinkStatus {
        LinkStatus::Present {
            ifindex,
            running: true,
        }
    }

    fn down(ifindex: u32) -> LinkStatus {
        LinkStatus::Present {
            ifindex,
            running: false,
        }
    }

    #[test]
    fn each_change_is_reported_once() {
        let t = Instant::now();
        let mut w = LinkWatcher::new(&[(5, true), (6, true)]);
        assert_eq!(w.observe(0, up(5), t), None);
        assert_eq!(w.observe(0, down(5), t), Some(Change::Down));
        assert_eq!(w.observe(0, down(5), t), None);
        assert!(w.is_down(0) && !w.is_lost(0));
        assert_eq!(w.observe(0, up(5), t), Some(Change::Up));
        assert_eq!(w.observe(0, up(5), t), None);
        assert_eq!(w.observe(1, LinkStatus::Gone, t), Some(Change::Lost));
        assert_eq!(w.observe(1, LinkStatus::Gone, t), None);
        assert!(w.is_lost(1) && !w.is_down(0));
        assert_eq!(
            w.observe(1, down(9), t),
            Some(Change::Returned { ifindex: 9 })
        );
        w.bound(1, 9, false);
        assert!(w.is_down(1) && !w.is_lost(1));
        assert_eq!(w.observe(1, up(9), t), Some(Change::Up));
    }

    #[test]
    fn a_new_interface_of_the_same_name_is_a_loss_then_a_return() {
        let t = Instant::now();
        let mut w = LinkWatcher::new(&[(5, true)]);
        assert_eq!(w.observe(0, up(7), t), Some(Change::Lost));
        assert_eq!(
            w.observe(0, up(7), t),
            Some(Change::Returned { ifindex: 7 })
        );
    }

    #[test]
    fn a_failed_rebind_waits_for_a_change_or_the_retry_time() {
        let t = Instant::now();
        let mut w = LinkWatcher::new(&[(5, true)]);
        w.observe(0, LinkStatus::Gone, t);
        assert_eq!(
            w.observe(0, up(7), t),
            Some(Change::Returned { ifindex: 7 })
        );
        assert!(w.rebind_failed(0, 7, t), "the first failure is told");
        assert_eq!(w.observe(0, up(7), t + Duration::from_secs(1)), None);
        let later = t + LinkWatcher::RETRY;
        assert_eq!(
            w.observe(0, up(7), later),
            Some(Change::Returned { ifindex: 7 })
        );
        assert!(
            !w.rebind_failed(0, 7, later),
            "the same failure is not told again"
        );
        assert_eq!(
            w.observe(0, up(8), later),
            Some(Change::Returned { ifindex: 8 })
        );
    }

    #[test]
    fn checks_are_spaced() {
        let mut w = LinkWatcher::new(&[]);
        let t = Instant::now();
        assert!(!w.due(t));
        assert!(w.due(t + LinkWatcher::EVERY));
        assert!(!w.due(t + LinkWatcher::EVERY));
    }

    #[test]
    fn lines_say_what_happens_to_the_port_s_frames() {
        let l = describe(2, "vfd2", "vm3", Change::Lost);
        assert_eq!(
            l,
            "port 2 vfd2 (vm3): interface gone; frames for it are dropped (port_down) until an interface named vfd2 appears again"
        );
        assert!(describe(2, "vfd2", "vm3", Change::Returned { ifindex: 12 })
            .contains("interface back (ifindex 12)"));
    }
}
