//! Worker threads: one per core in `--cores`, pinned with core_affinity, stopped by a
//! shared flag (set by the signal handler on SIGINT/SIGTERM).

use super::worker::Worker;
use crate::pipeline::Pipeline;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running worker thread.
#[derive(Debug)]
pub struct WorkerHandle {
    /// The core it is pinned to, if pinning succeeded.
    pub core: Option<usize>,
    /// The thread; joins to the worker's final state.
    pub thread: JoinHandle<()>,
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
) -> std::io::Result<Vec<WorkerHandle>> {
    let mut handles = Vec::with_capacity(workers.len());
    for (i, mut worker) in workers.into_iter().enumerate() {
        let core = cores.get(i).copied();
        let stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("vnet-worker-{i}"))
            .spawn(move || {
                if let Some(id) = core {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                        eprintln!("warning: could not pin worker {i} to core {id}");
                    }
                }
                worker.run(&stop);
            })?;
        handles.push(WorkerHandle { core, thread });
    }
    Ok(handles)
}
