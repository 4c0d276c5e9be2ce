//! Ctrl-C (SIGINT) or SIGTERM during a live main job: nothing the job made may outlive
//! it. [`on_interrupt`] starts a watcher thread; on the signal it kills every child
//! process registered with [`register`] (QEMU guests, the dataplane), removes the
//! namespaces with the job's prefix (and with them its veth pairs and taps), says so in
//! one line and exits with status 130. Without a signal the guard does nothing: the job's
//! own `Drop`s clean up as usual.

use anyhow::{Context, Result};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};
use std::process::{Command, Stdio};
use std::sync::Mutex;

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Kill `pid` if the job is interrupted while it runs.
pub fn register(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.push(pid);
    }
}

/// `pid` has been waited for: never signal it (its number may be reused).
pub fn unregister(pid: u32) {
    if let Ok(mut c) = CHILDREN.lock() {
        c.retain(|p| *p != pid);
    }
}

/// The watcher; stops watching when dropped.
#[derive(Debug)]
pub struct Guard {
    handle: Handle,
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.handle.close();
    }
}

/// Watch for SIGINT and SIGTERM while the returned guard lives; on one, clean up the
/// job with namespaces `PREFIX-*` and exit 130.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn on_interrupt(prefix: &str) -> Result<Guard> {
    let mut signals =
        Signals::new([SIGINT, SIGTERM]).context("could not install signal handler")?;
    let handle = signals.handle();
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            let pids = CHILDREN.lock().map(|c| c.clone()).unwrap_or_default();
            for pid in pids {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let n = crate::topo::remove_prefix(&prefix).unwrap_or(0);
            eprintln!("interrupted (signal {sig}): stopped the guests and the dataplane, removed {n} namespaces {prefix}-*");
            std::process::exit(130);
        }
    });
    Ok(Guard { handle })
}
