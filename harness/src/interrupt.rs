//! Ctrl-C (SIGINT) or SIGTERM during a live main job: nothing the job made may outlive
//! it. [`on_interrupt`] starts a watcher thread; on the signal it stops every child
//! process registered with [`register`] (QEMU guests, the dataplane: SIGTERM, then SIGKILL
//! to what still runs two seconds later), removes the namespaces with the job's prefix
//! (and with them its veth pairs and taps), says so in one line and exits with status 130.
//! Without a signal the guard does nothing: the job's own `Drop`s clean up as usual.

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

/// SIGTERM to every child, then SIGKILL to those still running two seconds later: the
/// dataplane (`run`) ends within two seconds of SIGTERM and puts its interfaces' settings
/// back and removes its state files on the way; a SIGKILL would leave them for the next
/// start to clean.
fn stop_children(pids: &[u32]) {
    let signal = |sig: &str, pid: u32| {
        let _ = Command::new("kill")
            .args([sig, &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    };
    for &pid in pids {
        signal("-TERM", pid);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while pids.iter().any(|&p| running(p)) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for &pid in pids {
        if running(pid) {
            signal("-KILL", pid);
        }
    }
}

/// Whether `pid` exists and is not a zombie (a child that ended but was not reaped yet).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses and may hold spaces.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
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
            stop_children(&pids);
            let n = crate::topo::remove_prefix(&prefix).unwrap_or(0);
            eprintln!("interrupted (signal {sig}): stopped the guests and the dataplane, removed {n} namespaces {prefix}-*");
            std::process::exit(130);
        }
    });
    Ok(Guard { handle })
}
