//! The worker threads of a run: started, paused one at a time (so that the control
//! thread can give a worker a new port set while the others go on), and stopped.
//!
//! Each worker has its own stop flag; pausing sets it, joins the thread (the worker
//! leaves its loop within one iteration and comes back whole), lets the caller change
//! the worker, and starts it again on the same core. Stopping sets every flag and joins
//! every thread.
//!
//! Invariant: a worker is either running on its thread or held by the control thread,
//! never both; a worker whose thread panicked is gone, and the run ends.

use anyhow::{bail, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use vnet_core::engine::{spawn_worker, Worker, WorkerHandle};
use vnet_core::pipeline::Pipeline;

#[derive(Debug)]
struct Slot<M: Pipeline> {
    handle: Option<WorkerHandle<M>>,
    halt: Arc<AtomicBool>,
    core: Option<usize>,
}

/// The running workers.
#[derive(Debug)]
pub struct Workers<M: Pipeline> {
    slots: Vec<Slot<M>>,
}

impl<M: Pipeline + 'static> Workers<M> {
    /// Start worker `i` on `cores[i]` (unpinned where `cores` is shorter).
    ///
    /// # Errors
    /// When a thread cannot be spawned (the ones started are stopped again).
    pub fn start(workers: Vec<Worker<M>>, cores: &[usize]) -> Result<Self> {
        let mut all = Self { slots: Vec::new() };
        for (i, worker) in workers.into_iter().enumerate() {
            let halt = Arc::new(AtomicBool::new(false));
            let core = cores.get(i).copied();
            match spawn_worker(worker, core, halt.clone()) {
                Ok(handle) => all.slots.push(Slot {
                    handle: Some(handle),
                    halt,
                    core,
                }),
                Err(e) => {
                    all.stop();
                    bail!("could not start worker {i} ({e})");
                }
            }
        }
        Ok(all)
    }

    /// Whether a worker thread ended on its own (a panic).
    pub fn any_finished(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.handle.as_ref().is_none_or(|h| h.thread.is_finished()))
    }

    /// Pause worker `w`, let `change` change it, start it again; what `change` returned.
    ///
    /// # Errors
    /// When the worker's thread had panicked, or cannot be started again.
    pub fn paused<R>(&mut self, w: usize, change: impl FnOnce(&mut Worker<M>) -> R) -> Result<R> {
        let slot = &mut self.slots[w];
        let Some(handle) = slot.handle.take() else {
            bail!("worker {w} stopped unexpectedly; see the message above");
        };
        slot.halt.store(true, Ordering::Relaxed);
        let Ok(mut worker) = handle.thread.join() else {
            bail!("worker {w} stopped unexpectedly; see the message above");
        };
        let result = change(&mut worker);
        slot.halt.store(false, Ordering::Relaxed);
        match spawn_worker(worker, slot.core, slot.halt.clone()) {
            Ok(h) => slot.handle = Some(h),
            Err(e) => bail!("could not start worker {w} again ({e})"),
        }
        Ok(result)
    }

    /// Stop every worker; the workers (to be dropped: their ports close), and whether
    /// one had panicked.
    pub fn stop(&mut self) -> (Vec<Worker<M>>, bool) {
        for s in &self.slots {
            s.halt.store(true, Ordering::Relaxed);
        }
        let mut panicked = false;
        let mut done = Vec::new();
        for s in &mut self.slots {
            match s.handle.take().map(|h| h.thread.join()) {
                Some(Ok(w)) => done.push(w),
                Some(Err(_)) | None => panicked = true,
            }
        }
        (done, panicked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vnet_core::counters::CounterSet;
    use vnet_core::engine::{HandoffMesh, WorkerConfig};
    use vnet_core::frame::{FramePool, Pkt};
    use vnet_core::pipeline::Verdict;
    use vnet_core::port::mem::mem_pair;
    use vnet_core::port::Port;
    use vnet_core::time::Instant;

    #[derive(Debug)]
    struct Count(u64);

    impl Pipeline for Count {
        fn process(&mut self, _: Instant, _: &mut FramePool, p: &mut [Pkt], v: &mut [Verdict]) {
            self.0 += p.len() as u64;
            v.iter_mut()
                .for_each(|v| *v = Verdict::Drop(vnet_core::counters::DropReason::Policy));
        }
    }

    #[test]
    fn a_paused_worker_comes_back_with_its_pipeline() {
        let (p0, peer) = mem_pair("p0", 0, 64);
        let counters = CounterSet::new(1, 1);
        let mut mesh = HandoffMesh::new(1, 16);
        let h = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
        let w = Worker::new(
            0,
            vec![(0, Box::new(p0) as Box<dyn Port>)],
            &[0],
            FramePool::with_heap(64, 2048, 0),
            Count(0),
            counters.worker(0),
            h,
            WorkerConfig::default(),
        );
        let mut workers = Workers::start(vec![w], &[]).unwrap();
        peer.send(&[1; 60]);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while counters.snapshot()[0].rx_packets == 0 && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let seen = workers.paused(0, |w| w.pipeline().0).unwrap();
        assert_eq!(seen, 1);
        assert!(!workers.any_finished());
        let (done, panicked) = workers.stop();
        assert!(!panicked);
        assert_eq!(done[0].pipeline().0, 1);
    }
}
