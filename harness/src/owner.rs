//! Which `vnet-bench run` holds an interface: an ownership record per interface,
//! `DIR/netns-INODE/IF.owner` next to its NAPI state file (`DIR` is `/run/vnet-bench`),
//! written once the run's port is bound and removed when the run stops cleanly:
//!
//! ```text
//! pid 4242
//! start 1234567
//! ifindex 7
//! prog 27171
//! ```
//!
//! `start` is the process's start time (field 22 of `/proc/PID/stat`), so that a pid
//! reused by another process does not pass for the run; `prog` is the XDP program the
//! port's socket uses. A run killed with SIGKILL leaves its record, and libxdp's program
//! stays attached (libxdp detaches it when the last socket is deleted, which a killed
//! process never does). At the next start, an interface that has an XDP program is
//! judged by its record ([`judge`]): a live run's is refused, a killed run's program is
//! detached (the interface is then as it was before that run, veth's offloads included,
//! which the kernel restores with the detach), anyone else's is refused.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use vnet_core::port::xdp::{netns_state_dir, AttachMode};

/// An ownership record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The run's process id.
    pub pid: u32,
    /// Its start time (clock ticks since boot).
    pub start: u64,
    /// The interface it bound.
    pub ifindex: u32,
    /// The XDP program it used there.
    pub prog: u32,
}

/// What an interface's XDP program means for a run about to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// No program: free.
    Free,
    /// The program a killed run left: detach it, then the interface is free.
    Leftover {
        /// The killed run.
        pid: u32,
        /// Its program.
        prog: u32,
    },
    /// A live run holds it.
    Run {
        /// That run.
        pid: u32,
    },
    /// Someone else's program.
    Other {
        /// The program.
        prog: u32,
        /// How it is attached.
        mode: AttachMode,
    },
}

/// Judge an interface (index `ifindex`, program `attached`) by its `record`; `alive`
/// tells whether a recorded process still runs.
pub fn judge(
    ifindex: u32,
    attached: Option<(u32, AttachMode)>,
    record: Option<Owner>,
    alive: impl Fn(&Owner) -> bool,
) -> Holder {
    let Some((prog, mode)) = attached else {
        return Holder::Free;
    };
    match record {
        Some(r) if alive(&r) => Holder::Run { pid: r.pid },
        Some(r) if r.ifindex == ifindex && r.prog == prog => Holder::Leftover { pid: r.pid, prog },
        _ => Holder::Other { prog, mode },
    }
}

fn path(dir: &Path, ifname: &str) -> io::Result<PathBuf> {
    if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    Ok(netns_state_dir(dir)?.join(format!("{ifname}.owner")))
}

/// The start time of process `pid`, if it runs (a zombie, killed but not yet reaped,
/// does not).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces and parentheses): state is
    // field 3, the start time field 22.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    if matches!(fields.next()?, "Z" | "X" | "x") {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether the process of a record still runs.
pub fn alive(owner: &Owner) -> bool {
    owner.pid != std::process::id() && start_time(owner.pid) == Some(owner.start)
}

/// Record that this process bound `ifname` (index `ifindex`) with program `prog`.
///
/// # Errors
/// When the record cannot be written.
pub fn record(dir: &Path, ifname: &str, ifindex: u32, prog: u32) -> io::Result<()> {
    let file = path(dir, ifname)?;
    let pid = std::process::id();
    let start = start_time(pid).unwrap_or(0);
    if let Some(parent) = file.parent() {
        fs::create_dir_all(parent)?;
    }
    let tmp = file.with_extension("owner.tmp");
    fs::write(
        &tmp,
        format!("pid {pid}\nstart {start}\nifindex {ifindex}\nprog {prog}\n"),
    )?;
    fs::rename(&tmp, &file)
}

/// Record that this process bound `ifname` (index `ifindex`) with whatever XDP
/// program is attached there now; a warning sentence when that fails.
pub fn record_bound(dir: &Path, ifname: &str, ifindex: u32) -> Option<String> {
    let prog = match vnet_core::port::xdp::attached_program(ifname) {
        Ok(Some((prog, _))) => prog,
        Ok(None) => return None,
        Err(e) => return Some(format!("warning: {e}")),
    };
    record(dir, ifname, ifindex, prog).err().map(|e| {
        format!(
            "warning: could not record that this run holds {ifname} under {} ({e}); a restart after a SIGKILL will find its XDP program in the way",
            dir.display()
        )
    })
}

/// The record of `ifname`, if there is a readable one.
pub fn read(dir: &Path, ifname: &str) -> Option<Owner> {
    parse(&fs::read_to_string(path(dir, ifname).ok()?).ok()?)
}

fn parse(text: &str) -> Option<Owner> {
    let mut lines = text.lines();
    let mut field = |name: &str| -> Option<u64> {
        lines
            .next()?
            .strip_prefix(name)?
            .strip_prefix(' ')?
            .parse()
            .ok()
    };
    Some(Owner {
        pid: field("pid")?.try_into().ok()?,
        start: field("start")?,
        ifindex: field("ifindex")?.try_into().ok()?,
        prog: field("prog")?.try_into().ok()?,
    })
}

/// Remove the record of `ifname` (and the namespace's directory once empty).
pub fn remove(dir: &Path, ifname: &str) {
    if let Ok(file) = path(dir, ifname) {
        let _ = fs::remove_file(&file);
        if let Some(parent) = file.parent() {
            let _ = fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(pid: u32, ifindex: u32, prog: u32) -> Owner {
        Owner {
            pid,
            start: 1,
            ifindex,
            prog,
        }
    }

    #[test]
    fn programs_are_judged_by_their_record() {
        let native = Some((40, AttachMode::Native));
        assert_eq!(judge(7, None, Some(rec(9, 7, 40)), |_| true), Holder::Free);
        assert_eq!(
            judge(7, native, Some(rec(9, 7, 40)), |_| true),
            Holder::Run { pid: 9 }
        );
        assert_eq!(
            judge(7, native, Some(rec(9, 7, 40)), |_| false),
            Holder::Leftover { pid: 9, prog: 40 }
        );
        // Another program since, or another interface of the same name: not ours.
        for r in [rec(9, 7, 41), rec(9, 8, 40)] {
            assert_eq!(
                judge(7, native, Some(r), |_| false),
                Holder::Other {
                    prog: 40,
                    mode: AttachMode::Native
                }
            );
        }
        assert!(matches!(
            judge(7, native, None, |_| false),
            Holder::Other { .. }
        ));
    }

    #[test]
    fn records_round_trip_and_this_process_is_alive_to_others_only() {
        let dir = std::env::temp_dir().join(format!("vnet-owner-{}", std::process::id()));
        record(&dir, "vm1", 7, 40).unwrap();
        let r = read(&dir, "vm1").unwrap();
        assert_eq!((r.pid, r.ifindex, r.prog), (std::process::id(), 7, 40));
        assert_eq!(Some(r.start), start_time(std::process::id()));
        assert!(
            !alive(&r),
            "a run does not hold an interface against itself"
        );
        let parent = Owner { pid: 1, ..r };
        assert!(!alive(&parent), "pid 1 started at another time");
        remove(&dir, "vm1");
        assert_eq!(read(&dir, "vm1"), None);
        assert!(parse("pid 1\nstart x\nifindex 2\nprog 3\n").is_none());
        assert!(path(&dir, "../etc").is_err());
        let _ = fs::remove_dir_all(&dir);
    }
}
