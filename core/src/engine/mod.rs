//! The poll-mode engine: workers pinned to cores, each running to completion over its
//! ports: rx burst -> pipeline -> tx bursts -> port service -> timers.
//!
//! Layout:
//! - [`worker`]: one worker's loop ([`Worker::run_once`] is one iteration);
//! - [`handoff`]: bounded, preallocated rings that carry frames between workers when a
//!   verdict names a port another worker serves;
//! - [`launch`]: threads, core pinning and the stop flag;
//! - [`links`]: which ports' interfaces are down (control thread -> workers).
//!
//! Invariants of the hot path (checked by the no-allocation test in vnet-modes): after
//! setup a worker allocates nothing, takes no lock and reads the clock once per loop;
//! the only syscalls are the ones a port's kernel rings ask for (kicks and wake-ups).

pub mod fastpath;
pub mod handoff;
pub mod launch;
pub mod links;
pub mod worker;

pub use fastpath::{FastPathLink, FastPathTableStats};
pub use handoff::{HandoffMesh, HandoffRx, HandoffTx};
pub use launch::{spawn_worker, spawn_workers, WorkerHandle};
pub use links::PortLinks;
pub use worker::{Worker, WorkerConfig};
