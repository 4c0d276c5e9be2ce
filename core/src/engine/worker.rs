//! One worker: the run-to-completion loop over the ports it serves.
//!
//! Per iteration ([`Worker::run_once`], handed the time, which [`Worker::run`] reads
//! every [`CLOCK_EVERY`] loops): for each port receive a burst (at most [`BURST`]),
//! count it, complete partial TCP/UDP checksums ([`offload::complete_partial`]: senders
//! with checksum offload; not on a port that finishes them itself,
//! [`Port::finishes_checksums`]), hand it to the pipeline, turn verdicts into per-port
//! transmit bursts (cloning a frame only when it leaves on several ports, handing it off
//! when a port belongs to another worker); take frames other workers handed over;
//! transmit the staged bursts; service every port (completions, fill ring, kicks); every
//! `timer_every` loops, or when the pipeline's deadline has passed, run its timers.
//!
//! Ports marked down in the worker's [`PortLinks`] ([`Worker::set_links`]) are skipped:
//! nothing is received from them, their rings are not serviced, and frames for them are
//! dropped as `port_down`. Between two runs (the thread joined) the caller may swap the
//! whole port set and its frame pool ([`Worker::take_ports`], [`Worker::install_ports`]),
//! keeping the pipeline and its state: how `vnet-bench run` rebinds a port whose
//! interface came back.
//!
//! Invariants: every received frame is, by the end of the iteration, transmitted, freed
//! (and counted as a drop with a reason if it was not a clean discard), handed off as a
//! copy, or owned by the pipeline (`Consumed`). No allocation after [`Worker::new`]
//! (and [`Worker::install_ports`]). Between iterations no frame is in flight, so the
//! pool can be swapped there.

use crate::counters::{DropReason, WorkerCounters};
use crate::engine::fastpath::{FastPathLink, FastPathTableStats};
use crate::engine::handoff::{HandoffRx, HandoffTx};
use crate::engine::links::PortLinks;
use crate::frame::{FramePool, Pkt, PortId, MAX_PORTS};
use crate::offload;
use crate::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use crate::port::{Burst, NumberedPorts, Port, BURST};
use crate::time::Instant;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Loops of [`Worker::run`] per clock read.
pub const CLOCK_EVERY: u32 = 8;

/// Tunables of a worker loop.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Run the pipeline's timers every this many loops (and whenever its deadline passed).
    pub timer_every: u32,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self { timer_every: 1024 }
    }
}

/// A worker: its ports, its frames, its pipeline, its counters.
pub struct Worker<M: Pipeline> {
    index: usize,
    ports: Vec<Box<dyn Port>>,
    /// Dataplane port id of each local port slot.
    port_ids: Vec<PortId>,
    /// Local slot of each dataplane port id, if this worker serves it.
    slot_of: [Option<u8>; MAX_PORTS],
    /// Which worker serves each dataplane port id.
    owner_of: [u8; MAX_PORTS],
    pool: FramePool,
    pipeline: M,
    counters: Arc<WorkerCounters>,
    handoff_tx: HandoffTx,
    handoff_rx: HandoffRx,
    rx: Burst,
    verdicts: [Verdict; BURST],
    tx: Vec<Burst>,
    emitter: Emitter,
    config: WorkerConfig,
    loops: u64,
    /// Down ports, shared with the control thread.
    links: Option<Arc<PortLinks>>,
    /// The links mask last seen, and the local slots it marks down (bit per slot).
    links_seen: u64,
    down_slots: u64,
    /// The fast path (`--offload xdp`): the mode's offers become kernel entries.
    fastpath: Option<FastPathLink>,
}

impl<M: Pipeline> std::fmt::Debug for Worker<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .field("ports", &self.port_ids)
            .field("pool", &self.pool)
            .field("loops", &self.loops)
            .finish()
    }
}

impl<M: Pipeline> Worker<M> {
    /// A worker serving `ports` (dataplane id, port) with `pool` as frame memory.
    ///
    /// `owners[id]` names the worker serving each dataplane port (all ports of the
    /// dataplane, not only this worker's); with one worker pass all zeros.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        index: usize,
        ports: Vec<(PortId, Box<dyn Port>)>,
        owners: &[u8],
        pool: FramePool,
        pipeline: M,
        counters: Arc<WorkerCounters>,
        handoff: (HandoffTx, HandoffRx),
        config: WorkerConfig,
    ) -> Self {
        assert!(owners.len() <= MAX_PORTS);
        let mut slot_of = [None; MAX_PORTS];
        let mut owner_of = [0u8; MAX_PORTS];
        owner_of[..owners.len()].copy_from_slice(owners);
        let mut port_ids = Vec::with_capacity(ports.len());
        let mut list = Vec::with_capacity(ports.len());
        for (slot, (id, port)) in ports.into_iter().enumerate() {
            assert!((id as usize) < MAX_PORTS, "port id out of range");
            slot_of[id as usize] = Some(slot as u8);
            port_ids.push(id);
            list.push(port);
        }
        let tx = (0..list.len()).map(|_| Burst::new()).collect();
        Self {
            index,
            ports: list,
            port_ids,
            slot_of,
            owner_of,
            pool,
            pipeline,
            counters,
            handoff_tx: handoff.0,
            handoff_rx: handoff.1,
            rx: Burst::new(),
            verdicts: [Verdict::Drop(DropReason::Unhandled); BURST],
            tx,
            emitter: Emitter::new(),
            config,
            loops: 0,
            links: None,
            links_seen: 0,
            down_slots: 0,
            fastpath: None,
        }
    }

    /// Skip the ports `links` marks down (see the module docs).
    pub fn set_links(&mut self, links: Arc<PortLinks>) {
        self.links = Some(links);
        self.links_seen = 0;
        self.down_slots = 0;
    }

    /// Take the worker's ports (with their ids, in slot order) and frame pool away, to
    /// close them or to install some of them again (after [`Port::release_frames`]);
    /// the worker keeps its pipeline, counters and hand-off rings, and must not run
    /// again before [`Worker::install_ports`] gives it a new set.
    pub fn take_ports(&mut self) -> (NumberedPorts, FramePool) {
        self.flush_ports();
        // Between iterations every burst is empty; nothing refers to the old pool.
        self.rx.clear();
        self.tx.iter_mut().for_each(Burst::clear);
        self.emitter.clear();
        let pool = std::mem::replace(&mut self.pool, FramePool::with_heap(0, 64, 0));
        let ports = std::mem::take(&mut self.ports);
        (self.port_ids.iter().copied().zip(ports).collect(), pool)
    }

    /// Give the worker a new port set with its frame pool: the same dataplane port ids
    /// it served before, in any order.
    ///
    /// # Panics
    /// If the ids are not the ones the worker serves.
    pub fn install_ports(&mut self, ports: NumberedPorts, pool: FramePool) {
        let mut old = self.port_ids.clone();
        let mut new: Vec<PortId> = ports.iter().map(|(id, _)| *id).collect();
        old.sort_unstable();
        new.sort_unstable();
        assert_eq!(old, new, "a worker's new ports must be the ones it served");
        self.slot_of = [None; MAX_PORTS];
        self.port_ids.clear();
        self.ports.clear();
        for (slot, (id, port)) in ports.into_iter().enumerate() {
            self.slot_of[id as usize] = Some(slot as u8);
            self.port_ids.push(id);
            self.ports.push(port);
        }
        self.pool = pool;
        self.links_seen = 0;
        self.down_slots = 0;
    }

    /// Refresh `down_slots` from the shared links (one load when nothing changed).
    #[inline]
    fn read_links(&mut self) {
        let Some(links) = &self.links else {
            return;
        };
        let mask = links.mask();
        if mask != self.links_seen {
            self.links_seen = mask;
            self.down_slots = self
                .port_ids
                .iter()
                .enumerate()
                .filter(|(_, id)| mask & (1u64 << **id) != 0)
                .fold(0, |acc, (slot, _)| acc | 1u64 << slot);
        }
    }

    #[inline]
    fn slot_down(&self, slot: usize) -> bool {
        self.down_slots & (1u64 << slot) != 0
    }

    /// Give the worker a fast path: from now on its mode's offers are installed in the
    /// kernel, revoked when the mode says, and synced back.
    pub fn set_fastpath(&mut self, link: FastPathLink) {
        if let Some(q) = self.pipeline.fastpath_queue() {
            q.set_enabled(true);
        }
        self.fastpath = Some(link);
    }

    /// The fast-path table's counters (none without a fast path).
    pub fn fastpath_stats(&self) -> Option<FastPathTableStats> {
        self.fastpath.as_ref().map(FastPathLink::stats)
    }

    /// Remove every fast-path entry this worker installed (before the ports go).
    pub fn clear_fastpath(&mut self) {
        if let Some(link) = &mut self.fastpath {
            link.clear();
        }
    }

    /// The worker's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The pipeline (for inspection in tests).
    pub fn pipeline(&self) -> &M {
        &self.pipeline
    }

    /// The frame pool (for inspection in tests).
    pub fn pool(&self) -> &FramePool {
        &self.pool
    }

    /// Loops run so far.
    pub fn loops(&self) -> u64 {
        self.loops
    }

    /// Busy-poll until `stop` is set, then flush the ports.
    ///
    /// The clock is read once every [`CLOCK_EVERY`] loops: a read per loop was 7 % of a
    /// loaded worker's cycles (and a quarter of an idle one's), and nothing the pipeline
    /// times (sessions, leases, the FDB, timers) needs finer than the few loops' worth of
    /// work it lags by (microseconds; well under a millisecond at full bursts).
    pub fn run(&mut self, stop: &AtomicBool) {
        let mut now = Instant::now();
        let mut loops_left = CLOCK_EVERY;
        while !stop.load(Ordering::Relaxed) {
            self.run_once(now);
            loops_left -= 1;
            if loops_left == 0 {
                now = Instant::now();
                loops_left = CLOCK_EVERY;
            }
        }
        self.flush_ports();
    }

    /// Flush every port's buffered output (capture files).
    pub fn flush_ports(&mut self) {
        for p in &mut self.ports {
            p.flush();
        }
    }

    /// One iteration of the loop at time `now`; returns packets received.
    pub fn run_once(&mut self, now: Instant) -> usize {
        let mut received = 0;
        self.read_links();
        for slot in 0..self.ports.len() {
            if self.slot_down(slot) {
                continue;
            }
            self.rx.clear();
            let n = self.ports[slot].rx_burst(&mut self.pool, &mut self.rx);
            if n == 0 {
                continue;
            }
            received += n;
            let id = self.port_ids[slot];
            let mut bytes: u64 = 0;
            let mut completed: u64 = 0;
            let guess = !self.ports[slot].finishes_checksums();
            for p in self.rx.as_slice() {
                bytes += p.len as u64;
                if guess {
                    completed += u64::from(offload::complete_partial(self.pool.bytes_mut(p)));
                }
            }
            let c = self.counters.port(id as usize);
            c.add_rx(n as u64, bytes);
            if completed > 0 {
                c.add_csum_completed(completed);
            }
            self.process_rx(now, false);
            // Keep bursts short: transmit before the next port's burst can fill them.
            self.flush_tx();
        }
        self.take_handoffs(now);
        self.flush_tx();
        for (slot, port) in self.ports.iter_mut().enumerate() {
            if self.down_slots & (1u64 << slot) == 0 {
                port.service(&mut self.pool);
            }
        }
        self.loops += 1;
        let due = self.pipeline.poll_at().is_some_and(|t| t <= now);
        if due
            || self
                .loops
                .is_multiple_of(self.config.timer_every.max(1) as u64)
        {
            self.run_timers(now);
        }
        received
    }

    /// Run the packets in `self.rx` through the pipeline and act on the verdicts.
    /// `handed_off`: they came from another worker (no second hand-off).
    fn process_rx(&mut self, now: Instant, handed_off: bool) {
        let n = self.rx.len();
        let verdicts = &mut self.verdicts[..n];
        self.pipeline
            .process(now, &mut self.pool, self.rx.as_mut_slice(), verdicts);
        if let Some(link) = &mut self.fastpath {
            if let Some(q) = self.pipeline.fastpath_queue() {
                if !q.is_empty() {
                    link.apply(q, &self.pool, self.rx.as_slice(), &self.verdicts[..n]);
                }
            }
        }
        for i in 0..n {
            let pkt = self.rx.as_slice()[i];
            match self.verdicts[i] {
                Verdict::Tx(mask) => self.dispatch(pkt, mask),
                Verdict::Drop(reason) => {
                    self.counters.port(pkt.port as usize).add_drop(reason);
                    self.pool.free(pkt.frame);
                }
                Verdict::Consumed => {}
                Verdict::HandOff(worker) => {
                    let sent = !handed_off
                        && worker as usize != self.index
                        && self.handoff_tx.send(
                            worker as usize,
                            self.pool.bytes(&pkt),
                            pkt.port,
                            PortMask::EMPTY,
                        );
                    if !sent {
                        let reason = if handed_off || worker as usize == self.index {
                            DropReason::NoRoute
                        } else {
                            DropReason::HandoffFull
                        };
                        self.counters.port(pkt.port as usize).add_drop(reason);
                    }
                    self.pool.free(pkt.frame);
                }
            }
        }
    }

    fn run_timers(&mut self, now: Instant) {
        for (slot, port) in self.ports.iter().enumerate() {
            self.counters
                .port(self.port_ids[slot] as usize)
                .set_backend(&port.stats());
        }
        if let Some(link) = &mut self.fastpath {
            // Before the timers: what the kernel forwarded refreshes state first.
            if link.sync_due(now) {
                let pipeline = &mut self.pipeline;
                link.sync(now, &self.port_ids, &self.counters, |seen| {
                    pipeline.fastpath_seen(seen)
                });
            }
        }
        self.emitter.clear();
        self.pipeline.poll(now, &mut self.pool, &mut self.emitter);
        if let Some(link) = &mut self.fastpath {
            if let Some(q) = self.pipeline.fastpath_queue() {
                if !q.is_empty() {
                    link.apply(q, &self.pool, &[], &[]);
                }
            }
        }
        for i in 0..self.emitter.items().len() {
            let (pkt, mask) = self.emitter.items()[i];
            self.dispatch(pkt, mask);
        }
        self.emitter.clear();
        self.flush_tx();
    }

    /// Send `pkt` to every port of `mask`: remote ports by hand-off (a copy), local
    /// ports by staging (clones for all but the last, which gets the original).
    fn dispatch(&mut self, pkt: Pkt, mask: PortMask) {
        let mut local = PortMask::EMPTY;
        let mut remote = PortMask::EMPTY;
        for id in mask.iter() {
            if self.slot_of[id as usize].is_some() {
                local = local.with(id);
            } else {
                remote = remote.with(id);
            }
        }
        if !remote.is_empty() {
            self.hand_off(&pkt, remote);
        }
        if local.is_empty() {
            self.pool.free(pkt.frame);
            return;
        }
        let last = local.len() - 1;
        for (i, id) in local.iter().enumerate() {
            let out = if i as u32 == last {
                pkt
            } else {
                match self.pool.clone_pkt(&pkt) {
                    Some(copy) => copy,
                    None => {
                        self.counters
                            .port(id as usize)
                            .add_drop(DropReason::NoFrame);
                        continue;
                    }
                }
            };
            self.stage(id, out);
        }
    }

    fn hand_off(&mut self, pkt: &Pkt, remote: PortMask) {
        // Group the remote ports by owning worker; one message per worker.
        let mut left = remote;
        while let Some(first) = left.iter().next() {
            let owner = self.owner_of[first as usize];
            let mut group = PortMask::EMPTY;
            for id in left.iter() {
                if self.owner_of[id as usize] == owner {
                    group = group.with(id);
                }
            }
            left = PortMask(left.0 & !group.0);
            let sent = self
                .handoff_tx
                .send(owner as usize, self.pool.bytes(pkt), pkt.port, group);
            if !sent {
                self.counters
                    .port(pkt.port as usize)
                    .add_drops(DropReason::HandoffFull, group.len() as u64);
            }
        }
    }

    fn take_handoffs(&mut self, now: Instant) {
        const CHUNK: usize = 16;
        let blank = (
            Pkt {
                frame: 0,
                len: 0,
                port: 0,
            },
            PortMask::EMPTY,
        );
        let mut staged = [blank; CHUNK];
        // Bounded per loop so that a busy peer cannot starve this worker's own ports.
        for _ in 0..(4 * BURST / CHUNK) {
            let mut n = 0;
            let mut handled = 0;
            self.rx.clear();
            let (pool, pipeline, counters, rx) = (
                &mut self.pool,
                &mut self.pipeline,
                &self.counters,
                &mut self.rx,
            );
            self.handoff_rx.drain(CHUNK, |msg| {
                handled += 1;
                if msg.ports.is_empty() {
                    // To be processed here: the sender's mode named this worker the owner.
                    match pool.alloc_copy(msg.bytes(), msg.ingress) {
                        Some(pkt) => {
                            let _ = rx.push(pkt);
                        }
                        None => counters
                            .port(msg.ingress as usize)
                            .add_drop(DropReason::NoFrame),
                    }
                    return;
                }
                pipeline.observe_handoff(now, msg.bytes(), msg.ingress);
                match pool.alloc_copy(msg.bytes(), msg.ingress) {
                    Some(pkt) => {
                        staged[n] = (pkt, msg.ports);
                        n += 1;
                    }
                    None => counters
                        .port(msg.ingress as usize)
                        .add_drops(DropReason::NoFrame, msg.ports.len() as u64),
                }
            });
            for &(pkt, mask) in &staged[..n] {
                self.dispatch(pkt, mask);
            }
            if !self.rx.is_empty() {
                self.process_rx(now, true);
            }
            if handled < CHUNK {
                break;
            }
        }
        self.rx.clear();
    }

    #[inline]
    fn stage(&mut self, id: PortId, pkt: Pkt) {
        let Some(slot) = self.slot_of[id as usize] else {
            self.pool.free(pkt.frame);
            return;
        };
        let slot = slot as usize;
        if self.tx[slot].is_full() {
            self.flush_port(slot);
        }
        if self.tx[slot].push(pkt).is_err() {
            self.counters.port(id as usize).add_drop(DropReason::TxFull);
            self.pool.free(pkt.frame);
        }
    }

    fn flush_tx(&mut self) {
        for slot in 0..self.tx.len() {
            if !self.tx[slot].is_empty() {
                self.flush_port(slot);
            }
        }
    }

    fn flush_port(&mut self, slot: usize) {
        let id = self.port_ids[slot];
        let down = self.slot_down(slot);
        let burst = &mut self.tx[slot];
        let pkts = burst.as_slice();
        if down {
            self.counters
                .port(id as usize)
                .add_drops(DropReason::PortDown, pkts.len() as u64);
            for p in pkts {
                self.pool.free(p.frame);
            }
            burst.clear();
            return;
        }
        let sent = self.ports[slot].tx_burst(&mut self.pool, pkts);
        let bytes: u64 = pkts[..sent].iter().map(|p| p.len as u64).sum();
        let c = self.counters.port(id as usize);
        if sent > 0 {
            c.add_tx(sent as u64, bytes);
        }
        if sent < pkts.len() {
            c.add_drops(DropReason::TxFull, (pkts.len() - sent) as u64);
            for p in &pkts[sent..] {
                self.pool.free(p.frame);
            }
        }
        burst.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::CounterSet;
    use crate::engine::handoff::HandoffMesh;
    use crate::port::mem::mem_pair;

    /// Worker 0 serves port 0, worker 1 serves port 1. Frames whose first byte is 1 are
    /// owned by worker 1 (handed off, then sent out of port 1 by it); others are sent
    /// straight to port 1 (a cross-worker transmit).
    #[derive(Debug)]
    struct OwnerByFirstByte {
        me: u8,
        processed: u32,
    }

    impl Pipeline for OwnerByFirstByte {
        fn process(
            &mut self,
            _: Instant,
            pool: &mut FramePool,
            pkts: &mut [Pkt],
            v: &mut [Verdict],
        ) {
            for (p, v) in pkts.iter().zip(v.iter_mut()) {
                self.processed += 1;
                let owner = pool.bytes(p)[0];
                *v = if owner != self.me && owner == 1 {
                    Verdict::HandOff(owner)
                } else if owner == 9 {
                    Verdict::HandOff(self.me)
                } else {
                    Verdict::Tx(PortMask::one(1))
                };
            }
        }
    }

    /// Forwards everything from port 0 to port 1.
    #[derive(Debug)]
    struct ZeroToOne;

    impl Pipeline for ZeroToOne {
        fn process(&mut self, _: Instant, _: &mut FramePool, _: &mut [Pkt], v: &mut [Verdict]) {
            v.iter_mut()
                .for_each(|v| *v = Verdict::Tx(PortMask::one(1)));
        }
    }

    #[test]
    fn partial_checksums_are_completed_before_the_pipeline_and_counted() {
        // A UDP datagram 10.0.2.15:40000 -> 198.18.0.1:53 with 4 payload bytes, as a
        // sender with checksum offload hands it over: the field holds the folded
        // pseudo-header sum.
        let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0, 0, 32, 0, 1, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&[10, 0, 2, 15, 198, 18, 0, 1]);
        let c = crate::wire::checksum::data(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f.extend_from_slice(&[0x9c, 0x40, 0, 53, 0, 12, 0, 0, b'a', b'b', b'c', b'd']);
        let pseudo = 0x0a00 + 0x020f + 0xc612 + 0x0001 + 17 + 12;
        let partial = crate::wire::checksum::fold(pseudo);
        f[40..42].copy_from_slice(&partial.to_be_bytes());
        // The reference: the checksum computed over the segment with the field zeroed.
        let mut zeroed = f[34..].to_vec();
        zeroed[6..8].copy_from_slice(&[0, 0]);
        let want = !crate::wire::checksum::fold(pseudo + crate::wire::checksum::sum(&zeroed));

        let (p0, peer0) = mem_pair("p0", 0, 64);
        let (p1, peer1) = mem_pair("p1", 1, 64);
        let counters = CounterSet::new(1, 2);
        let mut w = zero_to_one_worker(p0, p1, &counters);
        peer0.send(&f);
        let mut wrong = f.clone();
        wrong[40] ^= 0x11; // simply wrong: forwarded as it is
        peer0.send(&wrong);
        w.run_once(Instant::ZERO);
        let got = peer1.drain();
        assert_eq!(got.len(), 2);
        assert_eq!(u16::from_be_bytes([got[0][40], got[0][41]]), want);
        assert_eq!(&got[0][..40], &f[..40]);
        assert_eq!(got[1], wrong);
        assert_eq!(counters.snapshot()[0].csum_completed, 1);

        // A port that finishes checksums from metadata: the same frames go on as sent.
        struct Finishing<P>(P);
        impl<P: Port> Port for Finishing<P> {
            fn rx_burst(&mut self, pool: &mut FramePool, out: &mut Burst) -> usize {
                self.0.rx_burst(pool, out)
            }
            fn tx_burst(&mut self, pool: &mut FramePool, pkts: &[Pkt]) -> usize {
                self.0.tx_burst(pool, pkts)
            }
            fn info(&self) -> crate::port::PortInfo {
                self.0.info()
            }
            fn finishes_checksums(&self) -> bool {
                true
            }
        }
        let (p0, peer0) = mem_pair("p0", 0, 64);
        let (p1, peer1) = mem_pair("p1", 1, 64);
        let counters = CounterSet::new(1, 2);
        let mut w = zero_to_one_worker(Finishing(p0), p1, &counters);
        peer0.send(&f);
        w.run_once(Instant::ZERO);
        assert_eq!(peer1.drain(), vec![f]);
        assert_eq!(counters.snapshot()[0].csum_completed, 0);
    }

    fn zero_to_one_worker(
        p0: impl Port + 'static,
        p1: impl Port + 'static,
        counters: &CounterSet,
    ) -> Worker<ZeroToOne> {
        let mut mesh = HandoffMesh::new(1, 16);
        let h = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
        Worker::new(
            0,
            vec![
                (0, Box::new(p0) as Box<dyn Port>),
                (1, Box::new(p1) as Box<dyn Port>),
            ],
            &[0, 0],
            FramePool::with_heap(64, 2048, 0),
            ZeroToOne,
            counters.worker(0),
            h,
            WorkerConfig::default(),
        )
    }

    #[test]
    fn a_down_port_is_neither_read_nor_written_and_its_frames_are_counted() {
        let (p0, peer0) = mem_pair("p0", 0, 64);
        let (p1, peer1) = mem_pair("p1", 1, 64);
        let counters = CounterSet::new(1, 2);
        let mut w = zero_to_one_worker(p0, p1, &counters);
        let links = Arc::new(PortLinks::new());
        w.set_links(links.clone());
        links.set_down(1, true);
        peer0.send(&[1; 60]);
        peer0.send(&[2; 60]);
        w.run_once(Instant::ZERO);
        assert!(peer1.drain().is_empty(), "sent to a down port");
        let t = counters.snapshot();
        assert_eq!(t[1].drops_for(DropReason::PortDown), 2);
        assert_eq!(t[1].tx_packets, 0);
        assert_eq!(
            w.pool().free_count(),
            64,
            "frames for a down port are freed"
        );

        // A down port's own frames stay where they are until it is up again.
        links.set_down(1, false);
        links.set_down(0, true);
        peer0.send(&[3; 60]);
        w.run_once(Instant::ZERO);
        assert!(peer1.drain().is_empty());
        links.set_down(0, false);
        w.run_once(Instant::ZERO);
        assert_eq!(peer1.drain(), vec![vec![3; 60]]);
    }

    #[test]
    fn a_new_port_set_replaces_the_old_one_and_the_pipeline_stays() {
        let (p0, _peer0) = mem_pair("p0", 0, 64);
        let (p1, _peer1) = mem_pair("p1", 1, 64);
        let counters = CounterSet::new(1, 2);
        let mut w = zero_to_one_worker(p0, p1, &counters);
        w.run_once(Instant::ZERO);
        let (old, pool) = w.take_ports();
        assert_eq!(old.iter().map(|(id, _)| *id).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(pool.free_count(), 64);
        drop(old);
        let (q0, peer0) = mem_pair("q0", 0, 64);
        let (q1, peer1) = mem_pair("q1", 1, 64);
        // Any order of the same ids.
        w.install_ports(
            vec![
                (1, Box::new(q1) as Box<dyn Port>),
                (0, Box::new(q0) as Box<dyn Port>),
            ],
            FramePool::with_heap(32, 2048, 0),
        );
        peer0.send(&[5; 60]);
        w.run_once(Instant::ZERO);
        assert_eq!(peer1.drain(), vec![vec![5; 60]]);
        assert_eq!(w.pool().free_count(), 32);
        assert_eq!(w.loops(), 2, "the same worker, loops go on");
    }

    #[test]
    #[should_panic(expected = "must be the ones it served")]
    fn a_port_set_with_other_ids_is_refused() {
        let (p0, _a) = mem_pair("p0", 0, 64);
        let (p1, _b) = mem_pair("p1", 1, 64);
        let counters = CounterSet::new(1, 3);
        let mut w = zero_to_one_worker(p0, p1, &counters);
        let _ = w.take_ports();
        let (q2, _c) = mem_pair("q2", 2, 64);
        w.install_ports(
            vec![(2, Box::new(q2) as Box<dyn Port>)],
            FramePool::with_heap(8, 2048, 0),
        );
    }

    #[test]
    fn hand_off_runs_the_owner_s_pipeline_and_cross_worker_tx_works() {
        let (p0, peer0) = mem_pair("p0", 0, 64);
        let (p1, peer1) = mem_pair("p1", 1, 64);
        let counters = CounterSet::new(2, 2);
        let mut mesh = HandoffMesh::new(2, 16);
        let h1 = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
        let h0 = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
        let mut w0 = Worker::new(
            0,
            vec![(0, Box::new(p0) as Box<dyn Port>)],
            &[0, 1],
            FramePool::with_heap(64, 2048, 0),
            OwnerByFirstByte {
                me: 0,
                processed: 0,
            },
            counters.worker(0),
            h0,
            WorkerConfig::default(),
        );
        let mut w1 = Worker::new(
            1,
            vec![(1, Box::new(p1) as Box<dyn Port>)],
            &[0, 1],
            FramePool::with_heap(64, 2048, 0),
            OwnerByFirstByte {
                me: 1,
                processed: 0,
            },
            counters.worker(1),
            h1,
            WorkerConfig::default(),
        );
        peer0.send(&[1; 60]); // owned by worker 1: handed off, processed there
        peer0.send(&[0; 60]); // processed by worker 0, transmitted by worker 1
        peer0.send(&[9; 60]); // hand-off to self: dropped as no_route
        w0.run_once(Instant::ZERO);
        w1.run_once(Instant::ZERO);
        let got = peer1.drain();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&vec![1; 60]) && got.contains(&vec![0; 60]));
        assert_eq!(w0.pipeline().processed, 3);
        assert_eq!(
            w1.pipeline().processed,
            1,
            "worker 1 ran its pipeline on the hand-off"
        );
        let totals = counters.snapshot();
        assert_eq!(totals[0].drops_for(DropReason::NoRoute), 1);
        assert_eq!(totals[1].tx_packets, 2);
        assert_eq!(w0.pool().free_count(), 64);
        assert_eq!(w1.pool().free_count(), 64);
    }
}
