//! How `vnet-bench run` ends on SIGINT or SIGTERM, always within two seconds.
//!
//! - The first signal sets the stop flag, which the control thread reads every 50 ms
//!   (also between the workers' port sets at start); the run then stops its workers,
//!   closes its ports (XDP programs detached, sockets closed, NAPI settings restored,
//!   state files removed) and prints its counters, and exits 0.
//! - A second signal ends the process at once (status 130).
//! - A watchdog thread, woken by the first signal, ends the process with status 1 after
//!   [`LIMIT`] if the teardown has not finished by then (a kernel call stuck behind a
//!   namespace being deleted, say); the interfaces' original settings are then restored
//!   by the next start, from their state files.
//!
//! What the teardown could otherwise wait on, and why it does not: worker threads leave
//! their loop within one iteration (no blocking call in it); closing a socket whose
//! interface is gone, detaching from a vanished interface and restoring the sysfs knobs
//! of a vanished interface all fail at once (ENODEV/ENOENT) and count as done; the
//! control socket's thread polls its stop flag every 50 ms.

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// The longest a teardown may take after the first signal.
pub const LIMIT: Duration = Duration::from_millis(1500);

/// Install the handlers and the watchdog; the stop flag.
///
/// # Errors
/// When a handler cannot be installed.
pub fn install() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it acts only on a signal that finds the flag already set.
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())
            .context("could not install signal handler")?;
        signal_hook::flag::register(sig, stop.clone())
            .context("could not install signal handler")?;
    }
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("could not install signal handler")?;
    std::thread::Builder::new()
        .name("vnet-stop-watchdog".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                std::thread::sleep(LIMIT);
                eprintln!(
                    "error: stopping took longer than {} ms; exiting now (the next start restores the interfaces' settings from their state files)",
                    LIMIT.as_millis()
                );
                std::process::exit(1);
            }
        })
        .context("could not start the stop watchdog")?;
    Ok(stop)
}
