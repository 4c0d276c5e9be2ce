//! The state file: an interface's NAPI knobs as they were before the first change, on
//! disk, so that a run killed with SIGKILL (no `Drop`) still gets them back.
//!
//! One file per interface and network namespace:
//! `DIR/netns-INODE/IFNAME.state` (`DIR` is [`super::XdpConfig::napi_state_dir`],
//! `/run/vnet-bench` by default; `INODE` the namespace's, as
//! `stat -L -c %i /proc/self/ns/net` prints it), because the same interface name can
//! exist in several namespaces at once:
//!
//! ```text
//! vnet-bench-napi-state 1
//! ifindex 7
//! netns 4099
//! gro_flush_timeout 20000
//! napi_defer_hard_irqs 0
//! ```
//!
//! (`netns`: the namespace's cookie, `SO_NETNS_COOKIE`, unique for the boot: a later
//! namespace may get the same inode, and its interfaces the same indexes.)
//!
//! Invariants:
//! - The file is written (temp file, fsync, rename, directory fsync) *before* a knob is
//!   changed for the first time, and lists every knob changed so far with the value it
//!   had before the first change: after a crash at any point the file holds originals,
//!   never a value a run wrote.
//! - A file is trusted only for the interface it names (same ifindex in the same
//!   namespace, by cookie); one left by an interface or a namespace that was deleted
//!   since is stale and removed.
//! - Only the knobs this module knows, with decimal values, are ever read back, so a
//!   damaged file cannot make the dataplane write anything else to sysfs.
//! - It is removed once the originals are back (or the interface is gone).

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// The first line of a state file.
const HEADER: &str = "vnet-bench-napi-state 1";

/// The knobs a state file may name.
pub(crate) const KNOBS: [&str; 3] = ["napi_defer_hard_irqs", "gro_flush_timeout", "threaded"];

/// The default directory of state files.
pub const DEFAULT_STATE_DIR: &str = "/run/vnet-bench";

/// The state file of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateFile {
    path: PathBuf,
    ifindex: u32,
    netns: u64,
}

/// Inode of the calling thread's network namespace.
fn netns_inode() -> io::Result<u64> {
    Ok(fs::metadata("/proc/thread-self/ns/net")?.ino())
}

/// `dir/netns-INODE`: where the files about the calling thread's network namespace's
/// interfaces go (state files, and the run's ownership records).
///
/// # Errors
/// When the namespace cannot be identified.
pub fn netns_state_dir(dir: &Path) -> io::Result<PathBuf> {
    Ok(dir.join(format!("netns-{}", netns_inode()?)))
}

impl StateFile {
    /// The file of `ifname` (index `ifindex`) in the calling thread's namespace.
    ///
    /// # Errors
    /// When the namespace cannot be identified or the name cannot be a file name.
    pub fn for_interface(dir: &Path, ifname: &str, ifindex: u32) -> io::Result<Self> {
        if ifname.is_empty() || ifname.contains('/') || ifname.starts_with('.') {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        Ok(Self {
            path: netns_state_dir(dir)?.join(format!("{ifname}.state")),
            ifindex,
            netns: super::sockopt::netns_cookie(),
        })
    }

    /// A file at `path` (tests).
    #[cfg(test)]
    pub fn at(path: PathBuf, ifindex: u32) -> Self {
        Self {
            path,
            ifindex,
            netns: 99,
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The originals recorded for this interface, if a file for it exists. A file that
    /// cannot be read back, or was left by another interface of the same name, is
    /// removed and `None` returned.
    pub fn load(&self) -> Option<Knobs> {
        let text = fs::read_to_string(&self.path).ok()?;
        let parsed = parse(&text)
            .filter(|(ifindex, netns, _)| (*ifindex, *netns) == (self.ifindex, self.netns));
        if parsed.is_none() {
            self.remove();
        }
        parsed.map(|(_, _, knobs)| knobs)
    }

    /// Record `saved` (knob, original value), replacing the file atomically.
    ///
    /// # Errors
    /// The first failed step (directory, write, sync, rename).
    pub fn store(&self, saved: &[(&'static str, String)]) -> io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut text = format!("{HEADER}\nifindex {}\nnetns {}\n", self.ifindex, self.netns);
        for (knob, value) in saved {
            text.push_str(&format!("{knob} {value}\n"));
        }
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = self.path.with_file_name(tmp_name);
        let mut f = File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &self.path)?;
        File::open(dir)?.sync_all()
    }

    /// Remove the file (nothing to do when it is not there), and its namespace's
    /// directory when that is left empty.
    pub fn remove(&self) {
        let _ = fs::remove_file(&self.path);
        if let Some(dir) = self.path.parent() {
            // Fails, as it should, while another interface's file is in it.
            let _ = fs::remove_dir(dir);
        }
    }
}

/// Knobs and their original values, in the order they were first changed.
type Knobs = Vec<(&'static str, String)>;

/// The ifindex, namespace cookie and knobs of a state file's text; `None` unless it is
/// whole and names only known knobs with decimal values.
fn parse(text: &str) -> Option<(u32, u64, Knobs)> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let ifindex = lines.next()?.strip_prefix("ifindex ")?.parse().ok()?;
    let netns = lines.next()?.strip_prefix("netns ")?.parse().ok()?;
    let mut knobs = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(' ')?;
        let name = KNOBS.into_iter().find(|k| *k == name)?;
        if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        if knobs.iter().any(|(k, _)| *k == name) {
            return None;
        }
        knobs.push((name, value.to_string()));
    }
    Some((ifindex, netns, knobs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("vnet-napistate-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn stores_atomically_and_loads_back_only_for_the_same_interface() {
        let dir = scratch("roundtrip");
        let f = StateFile::at(dir.join("ns").join("vm1.state"), 7);
        assert_eq!(f.load(), None);
        let saved = vec![
            ("gro_flush_timeout", "20000".to_string()),
            ("napi_defer_hard_irqs", "0".to_string()),
        ];
        f.store(&saved).unwrap();
        assert!(!dir.join("ns").join("vm1.state.tmp").exists());
        assert_eq!(f.load(), Some(saved.clone()));
        // Another interface of the same name (made again since): stale, removed.
        let other = StateFile::at(f.path().to_path_buf(), 8);
        assert_eq!(other.load(), None);
        assert!(!f.path().exists());
        // The same name and index in a later namespace that got the same inode.
        f.store(&saved).unwrap();
        let later = StateFile {
            netns: 100,
            ..f.clone()
        };
        assert_eq!(later.load(), None);
        assert!(!f.path().exists());
        f.store(&saved).unwrap();
        f.remove();
        assert!(!f.path().exists() && !dir.join("ns").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_files_are_never_believed() {
        let ok = format!("{HEADER}\nifindex 3\nnetns 5\nthreaded 1\n");
        assert_eq!(
            parse(&ok),
            Some((3, 5, vec![("threaded", "1".to_string())]))
        );
        for bad in [
            "",
            "vnet-bench-napi-state 2\nifindex 3\n",
            &format!("{HEADER}\n"),
            &format!("{HEADER}\nifindex x\n"),
            &format!("{HEADER}\nifindex 3\nthreaded 1\n"),
            &format!("{HEADER}\nifindex 3\nnetns 5\nmtu 1500\n"),
            &format!("{HEADER}\nifindex 3\nnetns 5\nthreaded 1; reboot\n"),
            &format!("{HEADER}\nifindex 3\nnetns 5\nthreaded -1\n"),
            &format!("{HEADER}\nifindex 3\nnetns 5\nthreaded \n"),
            &format!("{HEADER}\nifindex 3\nnetns 5\nthreaded 1\nthreaded 0\n"),
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let dir = scratch("damaged");
        fs::create_dir_all(&dir).unwrap();
        let f = StateFile::at(dir.join("vm1.state"), 3);
        fs::write(f.path(), "garbage").unwrap();
        assert_eq!(f.load(), None);
        assert!(!f.path().exists(), "a damaged file is removed");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_are_per_namespace_and_names_stay_inside_the_directory() {
        let f = StateFile::for_interface(Path::new("/run/vnet-bench"), "vm1", 4).unwrap();
        let ns = netns_inode().unwrap();
        assert_eq!(
            f.path(),
            Path::new(&format!("/run/vnet-bench/netns-{ns}/vm1.state"))
        );
        for bad in ["", "../x", "a/b", "..", "."] {
            assert!(
                StateFile::for_interface(Path::new("/tmp"), bad, 1).is_err(),
                "{bad}"
            );
        }
    }
}
