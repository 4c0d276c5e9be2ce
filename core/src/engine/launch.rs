//! Worker threads: one per core in `--cores`, pinned with core_affinity, stopped by a
//! stop flag (set by the signal handler on SIGINT/SIGTERM, or by the control thread to
//! pause one worker). A thread gives its [`Worker`] back when it ends, so the caller can
//! change the worker's ports and start it again ([`spawn_worker`]).

use super::worker::Worker;
use crate::pipeline::Pipeline;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running worker thread.
#[derive(Debug)]
pub struct WorkerHandle<M: Pipeline> {
    /// The core it is pinned to, if pinning was asked for.
    pub core: Option<usize>,
    /// The thread; joins to the worker, as the loop left it.
    pub thread: JoinHandle<Worker<M>>,
}

/// Start `worker` on a thread of its own, pinned to `core` when given, running until
/// `stop` is set.
///
/// # Errors
/// When the thread cannot be spawned.
pub fn spawn_worker<M: Pipeline + 'static>(
    mut worker: Worker<M>,
    core: Option<usize>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<WorkerHandle<M>> {
    let i = worker.index();
    let thread = std::thread::Builder::new()
        .name(format!("vnet-worker-{i}"))
        .spawn(move || {
            if let Some(id) = core {
                if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                    eprintln!("warning: could not pin worker {i} to core {id}");
                }
            }
            worker.run(&stop);
            worker
        })?;
    Ok(WorkerHandle { core, thread })
}

/// Start one thread per worker, pinning worker `i` to `cores[i]` (no pinning where
/// `cores` is shorter). Each thread runs until `stop` is set.
///
/// # Errors
/// When a thread cannot be spawned.
pub fn spawn_workers<M: Pipeline + 'static>(
    workers: Vec<Worker<M>>,
    cores: &[usize],
    stop: Arc<AtomicBool>,
) -> std::io::Result<Vec<WorkerHandle<M>>> {
    workers
        .into_iter()
        .enumerate()
        .map(|(i, worker)| spawn_worker(worker, cores.get(i).copied(), stop.clone()))
        .collect()
}
