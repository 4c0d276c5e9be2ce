//! What `vnet-bench run` does when a port's interface changes while it runs (issue 12,
//! faults): the control thread asks the [`LinkWatcher`] every 200 ms and, for each
//! change, marks the port in the workers' [`PortLinks`], counts the event in the port's
//! counters (`link_down`, `link_lost`, `rebound`) and prints one line.
//!
//! - *Down* (set down, no carrier): the worker skips the port and drops frames for it
//!   (`port_down`); the socket stays bound, so *up again* needs nothing else.
//! - *Lost* (deleted, namespace removed): the same, and the socket is dead.
//! - *Back* (an interface of that name exists again): the port's worker is paused, its
//!   whole port set closed and opened again on the interfaces present
//!   ([`crate::portset`] says why the whole set), its pipeline kept; the worker then
//!   runs on. Ports of other workers never pause. If the new interface cannot be bound,
//!   the port stays lost, one warning says why, and it is tried again when the interface
//!   changes or after [`LinkWatcher::RETRY`].
//!
//! vhost-user ports ([`crate::vhostports`]) have no interface and are not watched; a
//! reopening of their worker's set keeps them as they are, guests connected.
//!
//! Invariants: the NAPI controller lets go of a worker's guards before its ports close
//! and takes the new ones after; a port the worker cannot use is always marked down.

use crate::links::{describe, Change, LinkWatcher};
use crate::napictl::NapiController;
use crate::portset::{Opened, PortSets};
use crate::vhostports;
use crate::workers::Workers;
use anyhow::Result;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use vnet_core::counters::{CounterSet, LinkEvent};
use vnet_core::engine::PortLinks;
use vnet_core::frame::PortId;
use vnet_core::pipeline::Pipeline;
use vnet_core::port::xdp::{LinkProbe, LinkStatus};

/// The link side of a running dataplane.
#[derive(Debug)]
pub struct LinkControl {
    names: Vec<String>,
    roles: Vec<String>,
    owners: Vec<u8>,
    sets: PortSets,
    watcher: LinkWatcher,
    probe: LinkProbe,
    links: Arc<PortLinks>,
    counters: CounterSet,
    /// Where the run's ownership records go ([`crate::owner`]).
    state_dir: Option<PathBuf>,
}

impl LinkControl {
    /// Watch ports `names` (playing `roles`, served by workers `owners`), bound at start
    /// to `bound` (ifindex per port), reopened through `sets`, recording which
    /// interfaces the run holds under `state_dir`. Ports whose interface is down at
    /// start are marked down; the lines saying so are returned.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        names: Vec<String>,
        roles: Vec<String>,
        owners: Vec<u8>,
        sets: PortSets,
        bound: &[u32],
        links: Arc<PortLinks>,
        counters: CounterSet,
        state_dir: Option<PathBuf>,
    ) -> (Self, Vec<String>) {
        let mut probe = LinkProbe::new();
        let mut lines = Vec::new();
        let state: Vec<(u32, bool)> = names
            .iter()
            .zip(bound)
            .enumerate()
            .map(|(port, (name, &ifindex))| {
                if crate::vhostports::is_vhost(name) {
                    // A socket, not an interface: never down.
                    return (ifindex, true);
                }
                let running = match probe.status(name) {
                    LinkStatus::Present { running, .. } => running,
                    LinkStatus::Gone => false,
                };
                if !running {
                    links.set_down(port as PortId, true);
                    lines.push(describe(port, name, &roles[port], Change::Down));
                }
                (ifindex, running)
            })
            .collect();
        let ctl = Self {
            names,
            roles,
            owners,
            sets,
            watcher: LinkWatcher::new(&state),
            probe,
            links,
            counters,
            state_dir,
        };
        (ctl, lines)
    }

    fn line(&self, port: usize, change: Change) -> String {
        describe(port, &self.names[port], &self.roles[port], change)
    }

    fn count(&self, port: usize, event: LinkEvent) {
        self.counters.worker(0).port(port).count_link_event(event);
    }

    /// Check the links when due and act on what changed; the lines to print.
    ///
    /// # Errors
    /// When a worker could not be paused or started again (the run must end).
    pub fn tick<M: Pipeline + 'static>(
        &mut self,
        workers: &mut Workers<M>,
        napi: &mut Option<NapiController>,
    ) -> Result<Vec<String>> {
        let now = Instant::now();
        let mut lines = Vec::new();
        if !self.watcher.due(now) {
            return Ok(lines);
        }
        let mut back: Vec<(usize, u32)> = Vec::new();
        for port in 0..self.names.len() {
            if crate::vhostports::is_vhost(&self.names[port]) {
                continue;
            }
            let status = self.probe.status(&self.names[port]);
            let Some(change) = self.watcher.observe(port, status, now) else {
                continue;
            };
            match change {
                Change::Down | Change::Lost => {
                    self.links.set_down(port as PortId, true);
                    self.count(
                        port,
                        if change == Change::Down {
                            LinkEvent::Down
                        } else {
                            LinkEvent::Lost
                        },
                    );
                    lines.push(self.line(port, change));
                }
                Change::Up => {
                    self.links.set_down(port as PortId, false);
                    lines.push(self.line(port, change));
                }
                Change::Returned { ifindex } => back.push((port, ifindex)),
            }
        }
        let mut owners: Vec<u8> = back.iter().map(|(p, _)| self.owners[*p]).collect();
        owners.sort_unstable();
        owners.dedup();
        for w in owners {
            let mine: Vec<(usize, u32)> = back
                .iter()
                .copied()
                .filter(|(p, _)| self.owners[*p] == w)
                .collect();
            self.rebind(w as usize, &mine, workers, napi, &mut lines)?;
        }
        Ok(lines)
    }

    /// Close worker `w`'s ports and open them again, binding the ports of `back`
    /// (port, ifindex) to their returned interfaces.
    fn rebind<M: Pipeline + 'static>(
        &mut self,
        w: usize,
        back: &[(usize, u32)],
        workers: &mut Workers<M>,
        napi: &mut Option<NapiController>,
        lines: &mut Vec<String>,
    ) -> Result<()> {
        let ids: Vec<PortId> = (0..self.names.len())
            .filter(|p| self.owners[*p] as usize == w)
            .map(|p| p as PortId)
            .collect();
        let returning = |id: &PortId| back.iter().any(|(p, _)| *p == *id as usize);
        let mut absent: Vec<PortId> = ids
            .iter()
            .copied()
            .filter(|id| self.watcher.is_lost(*id as usize) && !returning(id))
            .collect();
        let was_absent = absent.clone();
        let sets = &mut self.sets;
        let names = &self.names;
        let (guards, bound, error) = workers.paused(w, |worker| {
            if let Some(ctl) = napi.as_mut() {
                ctl.release(&ids.iter().map(|id| *id as usize).collect::<Vec<_>>());
            }
            // The old set goes first: an interface queue takes one socket at a time. Its
            // vhost-user ports stay (their guests stay connected), their frames of the
            // old pool given back.
            let (old, mut pool) = worker.take_ports();
            let (mut kept, closed): (Vec<_>, Vec<_>) = old
                .into_iter()
                .partition(|(id, _)| vhostports::is_vhost(&names[*id as usize]));
            kept.iter_mut()
                .for_each(|(_, p)| p.release_frames(&mut pool));
            drop(closed);
            drop(pool);
            let mut error = None;
            let opened = match sets.open(&ids, &absent, true, &mut kept) {
                Ok(o) => o,
                Err(e) => {
                    error = Some(e.to_string());
                    // Without the returning interfaces; failing that, without any.
                    absent.extend(ids.iter().copied().filter(returning));
                    match sets.open(&ids, &absent, true, &mut kept) {
                        Ok(o) => o,
                        Err(e) => {
                            error = Some(e.to_string());
                            sets.open(&ids, &ids, true, &mut kept)
                                .expect("a set without interfaces always opens")
                        }
                    }
                }
            };
            let Opened {
                pool,
                ports,
                guards,
                bound,
            } = opened;
            worker.install_ports(ports, pool);
            (guards, bound, error)
        })?;
        if let Some(ctl) = napi.as_mut() {
            ctl.adopt(guards);
        }
        let now = Instant::now();
        for &id in &ids {
            let port = id as usize;
            if let Some(&(_, ifindex, _)) = bound.iter().find(|(b, _, _)| *b == id) {
                // Every reopened port has a new XDP program: the record follows.
                if let Some(dir) = &self.state_dir {
                    lines.extend(crate::owner::record_bound(dir, &self.names[port], ifindex));
                }
                // Ports that were bound before keep their state (same interface).
                if returning(&id) {
                    let running = matches!(
                        self.probe.status(&self.names[port]),
                        LinkStatus::Present { running: true, .. }
                    );
                    self.watcher.bound(port, ifindex, running);
                    self.links.set_down(id, !running);
                    self.count(port, LinkEvent::Rebound);
                    lines.push(self.line(port, Change::Returned { ifindex }));
                }
                continue;
            }
            if was_absent.contains(&id) {
                continue;
            }
            let ifindex = match self.probe.status(&self.names[port]) {
                LinkStatus::Present { ifindex, .. } => ifindex,
                LinkStatus::Gone => 0,
            };
            self.links.set_down(id, true);
            if self.watcher.rebind_failed(port, ifindex, now) {
                lines.push(format!(
                    "warning: port {port} {} ({}): could not bind it again ({}); frames for it are dropped (port_down), and it is tried again when the interface changes or in {} s",
                    self.names[port],
                    self.roles[port],
                    error.as_deref().unwrap_or("no reason given"),
                    LinkWatcher::RETRY.as_secs()
                ));
            }
        }
        Ok(())
    }
}
