//! The ports of one worker, opened together: an AF_XDP socket per interface on one
//! shared UMEM ([`open_worker_ports`]), wrapped for `--capture`, with a placeholder
//! ([`AbsentPort`]) for each port whose interface is gone.
//!
//! Used at start, and when a port's interface comes back: the run then pauses the
//! port's worker, closes the worker's whole set (sockets, XDP programs, UMEM) and opens
//! it again on the interfaces now present. Why the whole set: the dead socket's fill
//! and transmit rings still hold frames of the shared UMEM that the kernel will never
//! give back, and only a fresh UMEM returns them all to the pool; re-adding one socket
//! to the old UMEM would leak up to a port's share of frames at every loss. The cost
//! is a pause of a few tens of milliseconds on the worker's other ports, only when an
//! interface returns (a loss costs them nothing), and new capture files for the
//! worker's ports (`IF.N-rx.pcap`, N counting the reopenings).
//!
//! vhost-user ports are the exception: they own no UMEM frame between bursts and have
//! a guest connected, which a reopening must not cut (QEMU 7.2 dies when its backend
//! goes), so the caller hands them back ([`PortSets::open`]'s `kept`) and they join the
//! new set as they are, connection, rings and capture files included.
//!
//! Invariants: the worker's previous AF_XDP ports are dropped before this set is opened
//! (an interface queue takes one AF_XDP socket at a time); a kept port is either in the
//! opened set or still in `kept` (an open that fails takes none of them).

use crate::vhostports;
use anyhow::{Context, Result};
use std::path::PathBuf;
use std::sync::Arc;
use vnet_core::frame::{FramePool, PortId};
use vnet_core::port::capture::CapturePort;
use vnet_core::port::vhost::VhostUserPort;
use vnet_core::port::xdp::{open_worker_ports, NapiGuard, XdpConfig};
use vnet_core::port::{Burst, NumberedPorts, Port, PortInfo};

/// A port whose interface is gone: receives nothing, and the worker, which has it
/// marked down, never sends to it.
#[derive(Debug)]
pub struct AbsentPort {
    name: String,
}

impl Port for AbsentPort {
    fn rx_burst(&mut self, _: &mut FramePool, _: &mut Burst) -> usize {
        0
    }
    fn tx_burst(&mut self, _: &mut FramePool, _: &[vnet_core::frame::Pkt]) -> usize {
        0
    }
    fn info(&self) -> PortInfo {
        PortInfo {
            name: self.name.clone(),
            backend: "none",
            detail: "interface gone".into(),
            max_frame: 1514,
        }
    }
}

/// A worker's ports, opened.
pub struct Opened {
    /// The frame pool over the set's UMEM (a small heap pool when every port is absent).
    pub pool: FramePool,
    /// The ports, by dataplane id.
    pub ports: NumberedPorts,
    /// The NAPI guards of the ports that have one (for the adaptive controller).
    pub guards: Vec<(usize, Arc<NapiGuard>)>,
    /// Each bound port: its id, the ifindex it is bound to (0: a vhost-user socket), its
    /// startup line.
    pub bound: Vec<(PortId, u32, String)>,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("pool", &self.pool)
            .field(
                "ports",
                &self.ports.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
            )
            .field("bound", &self.bound)
            .finish()
    }
}

/// How to open any worker's ports.
#[derive(Debug)]
pub struct PortSets {
    names: Vec<String>,
    roles: Vec<String>,
    xdp: XdpConfig,
    capture: Option<PathBuf>,
    reopened: u32,
}

impl PortSets {
    /// Ports named `names` (by dataplane id) playing `roles`, opened with `xdp`,
    /// captured into `capture` when given.
    pub fn new(
        names: Vec<String>,
        roles: Vec<String>,
        xdp: XdpConfig,
        capture: Option<PathBuf>,
    ) -> Self {
        Self {
            names,
            roles,
            xdp,
            capture,
            reopened: 0,
        }
    }

    /// The startup line of port `id` with `detail`.
    pub fn line(&self, id: PortId, detail: &str) -> String {
        let i = id as usize;
        format!("port {i} {} ({}): {detail}", self.names[i], self.roles[i])
    }

    /// Open ports `ids` of one worker, all but those in `absent` on their interfaces.
    /// `again`: a reopening (captures go to new files, numbered by the reopenings that
    /// succeeded). `kept`: vhost-user ports of the previous set, installed again as
    /// they are (whatever `absent` says: they have no interface), taken from `kept`
    /// only when the open succeeds.
    ///
    /// # Errors
    /// The sentence of [`open_worker_ports`], or a capture file that cannot be made.
    pub fn open(
        &mut self,
        ids: &[PortId],
        absent: &[PortId],
        again: bool,
        kept: &mut NumberedPorts,
    ) -> Result<Opened> {
        let opened = self.open_numbered(ids, absent, again, kept);
        if again && opened.is_ok() {
            self.reopened += 1;
        }
        opened
    }

    fn open_numbered(
        &self,
        ids: &[PortId],
        absent: &[PortId],
        again: bool,
        kept: &mut NumberedPorts,
    ) -> Result<Opened> {
        let is_kept = |id: &PortId| kept.iter().any(|(k, _)| k == id);
        let present: Vec<(String, PortId)> = ids
            .iter()
            .filter(|id| !absent.contains(id))
            .filter(|&&id| !vhostports::is_vhost(&self.names[id as usize]))
            .map(|&id| (self.names[id as usize].clone(), id))
            .collect();
        let vhost: Vec<PortId> = ids
            .iter()
            .copied()
            .filter(|&id| vhostports::is_vhost(&self.names[id as usize]))
            .filter(|id| !absent.contains(id) || is_kept(id))
            .collect();
        let (pool, xports) = if present.is_empty() {
            // Frames for the vhost-user ports (or only for the pipeline's own packets,
            // all dropped as port_down).
            let frames = (vhost.len() as u32 * self.xdp.frames_per_port).max(256);
            (FramePool::with_heap(frames, 2048, 256), Vec::new())
        } else {
            // The vhost-user ports' frames come from the same pool: the AF_XDP ports'
            // share grows by theirs (the fill rings keep their size, so it is all free).
            let extra =
                (vhost.len() as u32 * self.xdp.frames_per_port).div_ceil(present.len() as u32);
            let xdp = XdpConfig {
                frames_per_port: self.xdp.frames_per_port + extra,
                ..self.xdp.clone()
            };
            open_worker_ports(&present, &xdp)?
        };
        let mut opened = Opened {
            pool,
            ports: Vec::with_capacity(ids.len()),
            guards: Vec::new(),
            bound: Vec::new(),
        };
        for port in xports {
            let id = port.id();
            if let Some(g) = port.napi() {
                opened.guards.push((id as usize, g));
            }
            let info = port.info();
            opened.bound.push((
                id,
                port.ifindex(),
                self.line(id, &format!("{} {}", info.backend, info.detail)),
            ));
            opened
                .ports
                .push((id, self.captured(id, Box::new(port), again)?));
        }
        // New vhost-user ports first (opening one may fail), then the kept ones.
        for &id in vhost.iter().filter(|id| !is_kept(id)) {
            let name = &self.names[id as usize];
            let (path, role) = vhostports::spec(name).expect("a vhost-user name");
            let port = VhostUserPort::new(id, &path, role, self.xdp.segment_mtu.max(68) as usize)
                .with_context(|| {
                format!("could not open the vhost-user socket {}", path.display())
            })?;
            let info = port.info();
            opened.bound.push((
                id,
                0,
                self.line(id, &format!("{} {}", info.backend, info.detail)),
            ));
            opened
                .ports
                .push((id, self.captured(id, Box::new(port), again)?));
        }
        for (id, port) in std::mem::take(kept) {
            if !vhost.contains(&id) {
                kept.push((id, port));
                continue;
            }
            let info = port.info();
            opened.bound.push((
                id,
                0,
                self.line(id, &format!("{} {}", info.backend, info.detail)),
            ));
            opened.ports.push((id, port));
        }
        for &id in ids
            .iter()
            .filter(|id| absent.contains(id) && !vhost.contains(id))
        {
            let name = self.names[id as usize].clone();
            opened.ports.push((id, Box::new(AbsentPort { name })));
        }
        Ok(opened)
    }

    /// `port` with its capture, when `--capture` asks for one.
    fn captured(&self, id: PortId, port: Box<dyn Port>, again: bool) -> Result<Box<dyn Port>> {
        let Some(dir) = &self.capture else {
            return Ok(port);
        };
        let name = &self.names[id as usize];
        let file = match (again, self.reopened) {
            (false, _) => name.clone(),
            (true, n) => format!("{name}.{}", n + 1),
        };
        let port = CapturePort::new(port, dir, &file)
            .with_context(|| format!("could not capture port {id} {name}"))?;
        Ok(Box::new(port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_of_absent_ports_opens_without_any_interface() {
        let mut sets = PortSets::new(
            vec!["vnxt-gone0".into(), "vnxt-gone1".into()],
            vec!["vm1".into(), "vm2".into()],
            XdpConfig::default(),
            None,
        );
        let opened = sets.open(&[0, 1], &[0, 1], true, &mut vec![]).unwrap();
        assert_eq!(opened.ports.len(), 2);
        assert!(opened.bound.is_empty() && opened.guards.is_empty());
        assert_eq!(opened.ports[1].1.info().detail, "interface gone");
        assert!(opened.pool.free_count() > 0);
        assert_eq!(
            sets.line(1, "xdp attach=native"),
            "port 1 vnxt-gone1 (vm2): xdp attach=native"
        );
        // A present port that does not exist is an error in one sentence.
        let e = sets
            .open(&[0], &[], false, &mut vec![])
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no interface named vnxt-gone0"), "{e}");
    }
}
