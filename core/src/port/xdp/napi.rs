//! Interface NAPI settings that make AF_XDP busy polling pay off, applied while the
//! ports run and restored when they are dropped.
//!
//! For each bound interface [`NapiGuard`] writes `napi_defer_hard_irqs` and
//! `gro_flush_timeout` (ns) as [`NapiSettings`] say and, where the file exists,
//! `threaded` = 0, under `/sys/class/net/IF/`, remembering the values it replaced;
//! [`NapiGuard::set`] switches the first two while the port runs (the adaptive policy,
//! `napi_policy`). Deferral keeps the NAPI's wake-ups masked and runs it from a timer
//! every `gro_flush_timeout`: frames arrive in batches (throughput) but each waits for
//! the timer (latency). With `SO_PREFER_BUSY_POLL` on a socket that has a NAPI id the
//! application's `recvfrom` runs the NAPI instead; veth gives AF_XDP sockets none on
//! Linux 6.13+, so there the timer is all there is.
//!
//! Network namespaces: `/sys/class/net` shows the namespace of whoever mounted `/sys`,
//! not the calling thread's. The guard therefore checks that the sysfs entry it found is
//! the interface the socket is bound to (same ifindex and MAC as rtnetlink reports in
//! the caller's namespace); when it is not (a thread that entered a namespace with
//! `setns`), it mounts a fresh sysfs in a private mount namespace of a short-lived helper
//! thread, which sees the caller's network namespace, and keeps only a directory fd to
//! the interface. All later reads and writes go through that fd, so restoring works from
//! any thread.
//!
//! Crashes: with a state directory ([`super::XdpConfig::napi_state_dir`]) the guard
//! records each knob's original value in the interface's state file (`napi_state`)
//! before it changes that knob for the first time, and removes the file once it has put
//! the originals back. A guard that finds a file for its interface (a run that was
//! killed) takes the recorded values as the originals, whatever the interface shows
//! now; [`NapiGuard::restore_leftover`] puts them back without tuning anything.
//!
//! Invariant: only values this guard changed (or a killed run recorded) are restored,
//! newest first, and they are the values found before the first change.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;

use super::napi_state::StateFile;

/// The NAPI deferral written to each bound interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NapiSettings {
    /// `napi_defer_hard_irqs`: NAPI completions that keep "interrupts" (on veth: the
    /// sender's NAPI scheduling) masked and wait for `gro_flush_timeout` instead.
    pub defer_hard_irqs: u32,
    /// `gro_flush_timeout`, nanoseconds: how long a deferred NAPI waits for its timer.
    /// Every frame arriving meanwhile waits up to this long.
    pub gro_flush_timeout_ns: u64,
}

impl Default for NapiSettings {
    fn default() -> Self {
        Self {
            defer_hard_irqs: DEFAULT_DEFER_HARD_IRQS,
            gro_flush_timeout_ns: DEFAULT_GRO_FLUSH_TIMEOUT_NS,
        }
    }
}

impl NapiSettings {
    /// For the info line: `napi_defer_hard_irqs=2 gro_flush_timeout=20000`.
    pub fn summary(&self) -> String {
        format!(
            "napi_defer_hard_irqs={} gro_flush_timeout={}",
            self.defer_hard_irqs, self.gro_flush_timeout_ns
        )
    }

    /// (file, value, whether the file may be missing)
    fn knobs(&self) -> [(&'static str, String, bool); 3] {
        [
            (
                "napi_defer_hard_irqs",
                self.defer_hard_irqs.to_string(),
                false,
            ),
            (
                "gro_flush_timeout",
                self.gro_flush_timeout_ns.to_string(),
                false,
            ),
            ("threaded", "0".to_string(), true),
        ]
    }
}

/// Default `napi_defer_hard_irqs`.
pub const DEFAULT_DEFER_HARD_IRQS: u32 = 2;
/// Default `gro_flush_timeout` (nanoseconds).
pub const DEFAULT_GRO_FLUSH_TIMEOUT_NS: u64 = 200_000;

/// The NAPI settings of one interface, held for as long as its port lives (shared
/// with the adaptive controller, [`NapiGuard::set`], through an `Arc`).
#[derive(Debug)]
pub struct NapiGuard {
    ifname: String,
    dir: OwnedFd,
    state: Mutex<GuardState>,
}

#[derive(Debug)]
struct GuardState {
    /// The settings in force.
    current: NapiSettings,
    /// Knobs this guard changed, with the value found before, in write order.
    saved: Vec<(&'static str, String)>,
    /// Where `saved` is kept on disk, if anywhere.
    file: Option<StateFile>,
}

impl NapiGuard {
    /// Apply the settings to `ifname` (index `ifindex`) as seen from the calling
    /// thread's network namespace.
    ///
    /// # Errors
    /// A sentence for the port's info line when the settings could not be applied (no
    /// writable sysfs for this namespace, not root...).
    /// `mac` is the interface's address as rtnetlink reports it in that namespace, used
    /// to make sure the sysfs entry is the same device.
    /// `state_dir`: where the interface's state file goes (none: no file).
    pub(crate) fn apply(
        ifname: &str,
        ifindex: u32,
        mac: Option<[u8; 6]>,
        settings: NapiSettings,
        state_dir: Option<&Path>,
    ) -> Result<Self, String> {
        let dir = sysfs_dir(ifname, ifindex, mac)?;
        let file = state_dir
            .map(|d| StateFile::for_interface(d, ifname, ifindex))
            .transpose()
            .map_err(|e| format!("no state file for {ifname} ({e})"))?;
        Self::apply_with(dir, ifname, settings, file)
            .map_err(|e| format!("could not write NAPI settings ({e})"))
    }

    /// Put back the originals a killed run recorded in `ifname`'s state file under
    /// `state_dir`, and remove the file. Returns what was restored (`knob=value ...`),
    /// `None` when there was nothing to restore.
    ///
    /// # Errors
    /// A sentence when the interface's sysfs cannot be reached or a knob not written
    /// (the file is kept for the next try).
    pub(crate) fn restore_leftover(
        ifname: &str,
        ifindex: u32,
        mac: Option<[u8; 6]>,
        state_dir: &Path,
    ) -> Result<Option<String>, String> {
        let file = StateFile::for_interface(state_dir, ifname, ifindex)
            .map_err(|e| format!("no state file for {ifname} ({e})"))?;
        if !file.path().exists() {
            return Ok(None);
        }
        let dir = sysfs_dir(ifname, ifindex, mac)?;
        restore_recorded(&dir, &file).map_err(|e| {
            format!(
                "could not restore {ifname}'s NAPI settings from {} ({e})",
                file.path().display()
            )
        })
    }

    /// Apply the settings through `dir`, an open directory holding the knob files
    /// (normally `/sys/class/net/IF`; any directory in tests).
    ///
    /// # Errors
    /// The first read or write that failed; knobs changed before it are restored.
    pub(crate) fn apply_at(dir: OwnedFd, ifname: &str, settings: NapiSettings) -> io::Result<Self> {
        Self::apply_with(dir, ifname, settings, None)
    }

    /// [`NapiGuard::apply_at`] keeping the originals in `file` (see the module docs).
    ///
    /// # Errors
    /// As [`NapiGuard::apply_at`], and when the state file cannot be written (then
    /// nothing is changed).
    pub(crate) fn apply_with(
        dir: OwnedFd,
        ifname: &str,
        settings: NapiSettings,
        file: Option<StateFile>,
    ) -> io::Result<Self> {
        // A file for this very interface: a killed run's originals, the true ones.
        let saved = file.as_ref().and_then(StateFile::load).unwrap_or_default();
        let guard = Self {
            ifname: ifname.to_string(),
            dir,
            state: Mutex::new(GuardState {
                current: settings,
                saved,
                file,
            }),
        };
        guard.write(settings, true)?;
        Ok(guard)
    }

    /// A guard over `dir`, a directory holding the knob files (an interface's sysfs
    /// directory, or any directory standing in for one in tests).
    ///
    /// # Errors
    /// As [`NapiGuard::apply_at`]: the directory or a required knob is missing.
    pub fn at_dir(dir: &std::path::Path, ifname: &str, settings: NapiSettings) -> io::Result<Self> {
        let path = dir
            .to_str()
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        Self::apply_at(open_dir(path)?, ifname, settings)
    }

    /// Switch the interface to `settings` (the adaptive controller; any thread).
    ///
    /// # Errors
    /// The first write that failed; the guard still restores what it changed.
    pub fn set(&self, settings: NapiSettings) -> io::Result<()> {
        self.write(settings, false)
    }

    /// The settings in force.
    pub fn current(&self) -> NapiSettings {
        self.lock().current
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GuardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write `settings` (with `threaded` off when `first`), remembering the value each
    /// knob had before this guard first changed it.
    ///
    /// With a state file, a knob's original is on disk before the knob is first written.
    fn write(&self, settings: NapiSettings, first: bool) -> io::Result<()> {
        let mut st = self.lock();
        let st = &mut *st;
        let knobs = settings.knobs();
        let knobs = if first { &knobs[..] } else { &knobs[..2] };
        let fail = |st: &mut GuardState, e: io::Error| {
            if first {
                let _ = restore(&self.dir, &mut st.saved);
                if let Some(f) = &st.file {
                    f.remove();
                }
            }
            Err(e)
        };
        for (name, value, optional) in knobs {
            let old = match read_knob(&self.dir, name) {
                Ok(old) => old,
                Err(e) if *optional && e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return fail(st, e),
            };
            if old == *value {
                continue;
            }
            if !st.saved.iter().any(|(n, _)| n == name) {
                st.saved.push((name, old));
                if let Some(f) = &st.file {
                    if let Err(e) = f.store(&st.saved) {
                        st.saved.pop();
                        return fail(st, e);
                    }
                }
            }
            if let Err(e) = write_knob(&self.dir, name, value) {
                return fail(st, e);
            }
        }
        st.current = settings;
        Ok(())
    }

    /// The interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// For the info line: `napi_defer_hard_irqs=2 gro_flush_timeout=20000`.
    pub fn summary(&self) -> String {
        self.current().summary()
    }
}

/// Put back every saved knob, newest first, and forget them. An interface that is gone
/// has nothing left to restore, which counts as done.
///
/// # Errors
/// The first write that failed otherwise (the others are still tried).
fn restore(dir: &OwnedFd, saved: &mut Vec<(&'static str, String)>) -> io::Result<()> {
    let mut result = Ok(());
    for (name, old) in saved.drain(..).rev() {
        match write_knob(dir, name, &old) {
            Err(e) if !is_gone(&e) && result.is_ok() => result = Err(e),
            _ => {}
        }
    }
    result
}

/// Put back what `file` records through `dir` and remove the file; what was restored
/// (`knob=value ...`), `None` without a (valid) file.
///
/// # Errors
/// The first write that failed; the file is kept then.
fn restore_recorded(dir: &OwnedFd, file: &StateFile) -> io::Result<Option<String>> {
    let Some(mut saved) = file.load() else {
        return Ok(None);
    };
    let text = saved
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ");
    restore(dir, &mut saved)?;
    file.remove();
    Ok(Some(text))
}

/// Whether a sysfs error means the interface no longer exists.
fn is_gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENODEV))
}

impl Drop for NapiGuard {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        // On failure the interface keeps the tuned value, which is harmless, and the
        // state file stays for the next run to restore.
        if restore(&self.dir, &mut st.saved).is_ok() {
            if let Some(f) = &st.file {
                f.remove();
            }
        }
    }
}

/// The sysfs directory of `ifname` as the calling thread's namespace has it, checked to
/// be the device rtnetlink knows as `ifindex`/`mac` (see the module docs).
fn sysfs_dir(ifname: &str, ifindex: u32, mac: Option<[u8; 6]>) -> Result<OwnedFd, String> {
    match open_dir_at_sys(ifname) {
        Ok(dir) if same_device(&dir, ifindex, mac) => Ok(dir),
        _ => {
            let dir = private_sysfs_dir(ifname)
                .map_err(|e| format!("no sysfs view of {ifname} in this namespace ({e})"))?;
            if !same_device(&dir, ifindex, mac) {
                return Err(format!("sysfs shows another {ifname} than the bound one"));
            }
            Ok(dir)
        }
    }
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn open_dir(path: &str) -> io::Result<OwnedFd> {
    let path = cstring(path)?;
    // SAFETY: `path` is a NUL-terminated string that outlives the call; the result is
    // checked before being owned.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir_at_sys(ifname: &str) -> io::Result<OwnedFd> {
    if ifname.contains('/') || ifname.is_empty() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    open_dir(&format!("/sys/class/net/{ifname}"))
}

fn open_knob(dir: &OwnedFd, name: &str, flags: i32) -> io::Result<File> {
    let name = cstring(name)?;
    // SAFETY: `dir` is an open directory fd and `name` a NUL-terminated relative path,
    // both alive for the call; the result is checked before being owned.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
}

fn read_knob(dir: &OwnedFd, name: &str) -> io::Result<String> {
    let mut s = String::new();
    open_knob(dir, name, libc::O_RDONLY)?.read_to_string(&mut s)?;
    Ok(s.trim().to_string())
}

fn write_knob(dir: &OwnedFd, name: &str, value: &str) -> io::Result<()> {
    open_knob(dir, name, libc::O_WRONLY | libc::O_TRUNC)?.write_all(value.as_bytes())
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Whether the sysfs directory describes the device rtnetlink knows as `ifindex`/`mac`.
fn same_device(dir: &OwnedFd, ifindex: u32, mac: Option<[u8; 6]>) -> bool {
    let index_ok = read_knob(dir, "ifindex")
        .ok()
        .and_then(|s| s.parse::<u32>().ok())
        == Some(ifindex);
    let mac_ok = match mac {
        Some(mac) => read_knob(dir, "address").ok().and_then(|s| parse_mac(&s)) == Some(mac),
        None => true,
    };
    index_ok && mac_ok
}

/// Open `class/net/IF` of a sysfs mounted from the calling thread's network namespace.
///
/// A helper thread (which starts in the caller's network namespace) unshares its mount
/// namespace, makes it private so nothing propagates to the host, mounts sysfs over
/// `/sys` there and opens the interface directory. When the thread ends its mount
/// namespace goes away; the directory fd keeps the (now detached) sysfs mount usable.
fn private_sysfs_dir(ifname: &str) -> io::Result<OwnedFd> {
    if ifname.contains('/') || ifname.is_empty() {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let path = format!("/sys/class/net/{ifname}");
    std::thread::scope(|s| {
        s.spawn(|| -> io::Result<OwnedFd> {
            // SAFETY: unshare(2) with a constant flag; affects only this helper thread
            // (CLONE_NEWNS implies CLONE_FS, which gives the thread its own fs state).
            if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let root = cstring("/")?;
            // SAFETY: mount(2) changing propagation of "/" to private inside the mount
            // namespace this thread just unshared; null source/type/data are allowed for
            // a propagation change.
            let rc = unsafe {
                libc::mount(
                    std::ptr::null(),
                    root.as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            let (src, target, fstype) = (cstring("sysfs")?, cstring("/sys")?, cstring("sysfs")?);
            // SAFETY: mounts a new sysfs instance over /sys in this thread's private mount
            // namespace; all strings are NUL-terminated and outlive the call.
            let rc = unsafe {
                libc::mount(
                    src.as_ptr(),
                    target.as_ptr(),
                    fstype.as_ptr(),
                    libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                    std::ptr::null(),
                )
            };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            open_dir(&path)
        })
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("sysfs helper thread panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let p = std::env::temp_dir().join(format!(
                "vnet-napi-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }
        fn write(&self, name: &str, v: &str) {
            std::fs::write(self.0.join(name), v).unwrap();
        }
        fn read(&self, name: &str) -> String {
            std::fs::read_to_string(self.0.join(name)).unwrap()
        }
        fn fd(&self) -> OwnedFd {
            open_dir(self.0.to_str().unwrap()).unwrap()
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn applies_then_restores_what_it_changed() {
        let d = TempDir::new("restore");
        d.write("napi_defer_hard_irqs", "0\n");
        d.write("gro_flush_timeout", "0\n");
        d.write("threaded", "1\n");
        let g = NapiGuard::apply_at(
            d.fd(),
            "vm1",
            NapiSettings {
                defer_hard_irqs: 2,
                gro_flush_timeout_ns: 200_000,
            },
        )
        .unwrap();
        assert_eq!(d.read("napi_defer_hard_irqs"), "2");
        assert_eq!(d.read("gro_flush_timeout"), "200000");
        assert_eq!(d.read("threaded"), "0");
        assert_eq!(
            g.summary(),
            "napi_defer_hard_irqs=2 gro_flush_timeout=200000"
        );
        drop(g);
        assert_eq!(d.read("napi_defer_hard_irqs"), "0");
        assert_eq!(d.read("gro_flush_timeout"), "0");
        assert_eq!(d.read("threaded"), "1");
    }

    #[test]
    fn missing_threaded_is_fine_and_unchanged_values_are_left_alone() {
        let d = TempDir::new("partial");
        d.write("napi_defer_hard_irqs", "2\n");
        d.write("gro_flush_timeout", "20000\n");
        let g = NapiGuard::apply_at(
            d.fd(),
            "vm1",
            NapiSettings {
                defer_hard_irqs: 2,
                gro_flush_timeout_ns: 200_000,
            },
        )
        .unwrap();
        assert_eq!(g.lock().saved.len(), 1);
        assert!(!d.path().join("threaded").exists());
        d.write("napi_defer_hard_irqs", "7");
        drop(g);
        // Only gro_flush_timeout was changed by the guard, so only it is restored.
        assert_eq!(d.read("gro_flush_timeout"), "20000");
        assert_eq!(d.read("napi_defer_hard_irqs"), "7");
    }

    #[test]
    fn missing_required_knob_is_an_error() {
        let d = TempDir::new("missing");
        d.write("napi_defer_hard_irqs", "0");
        let err = NapiGuard::apply_at(
            d.fd(),
            "vm1",
            NapiSettings {
                defer_hard_irqs: 2,
                gro_flush_timeout_ns: 200_000,
            },
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        // The knob written before the failure was put back.
        assert_eq!(d.read("napi_defer_hard_irqs"), "0");
    }

    fn deferral() -> NapiSettings {
        NapiSettings {
            defer_hard_irqs: 2,
            gro_flush_timeout_ns: 200_000,
        }
    }

    #[test]
    fn originals_are_on_disk_before_the_first_change_and_gone_after_a_clean_stop() {
        let d = TempDir::new("state");
        d.write("napi_defer_hard_irqs", "0\n");
        d.write("gro_flush_timeout", "12345\n");
        let path = d.path().join("st").join("vm1.state");
        let file = StateFile::at(path.clone(), 9);
        let g = NapiGuard::apply_with(d.fd(), "vm1", deferral(), Some(file.clone())).unwrap();
        assert_eq!(d.read("gro_flush_timeout"), "200000");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("napi_defer_hard_irqs 0\n") && text.contains("gro_flush_timeout 12345\n"),
            "{text}"
        );
        // A later switch changes recorded knobs only: the originals stay.
        g.set(NapiSettings {
            defer_hard_irqs: 0,
            gro_flush_timeout_ns: 0,
        })
        .unwrap();
        assert_eq!(file.load().unwrap().len(), 2);
        drop(g);
        assert_eq!(d.read("gro_flush_timeout"), "12345");
        assert_eq!(d.read("napi_defer_hard_irqs"), "0");
        assert!(!path.exists(), "the state file outlived a clean stop");
    }

    #[test]
    fn a_killed_run_s_originals_win_over_what_it_left() {
        let d = TempDir::new("killed");
        d.write("napi_defer_hard_irqs", "0\n");
        d.write("gro_flush_timeout", "12345\n");
        let path = d.path().join("st").join("vm1.state");
        let file = StateFile::at(path.clone(), 9);
        let killed = NapiGuard::apply_with(d.fd(), "vm1", deferral(), Some(file.clone())).unwrap();
        // SIGKILL: no drop.
        std::mem::forget(killed);
        assert_eq!(d.read("gro_flush_timeout"), "200000");
        assert!(path.exists());

        // The next run, with settings equal to what the killed one left.
        let g = NapiGuard::apply_with(d.fd(), "vm1", deferral(), Some(file.clone())).unwrap();
        assert!(path.exists());
        drop(g);
        assert_eq!(d.read("gro_flush_timeout"), "12345");
        assert_eq!(d.read("napi_defer_hard_irqs"), "0");
        assert!(!path.exists());

        // Or a start without tuning: the originals are put back first.
        let killed = NapiGuard::apply_with(d.fd(), "vm1", deferral(), Some(file.clone())).unwrap();
        std::mem::forget(killed);
        let restored = restore_recorded(&d.fd(), &file).unwrap().unwrap();
        assert_eq!(restored, "napi_defer_hard_irqs=0 gro_flush_timeout=12345");
        assert_eq!(d.read("gro_flush_timeout"), "12345");
        assert!(!path.exists());
        assert_eq!(restore_recorded(&d.fd(), &file).unwrap(), None);
    }

    #[test]
    fn nothing_is_changed_when_the_originals_cannot_be_recorded() {
        let d = TempDir::new("unwritable");
        d.write("napi_defer_hard_irqs", "0\n");
        d.write("gro_flush_timeout", "12345\n");
        // The state "directory" is a file: the record cannot be written.
        d.write("blocker", "");
        let file = StateFile::at(d.path().join("blocker").join("vm1.state"), 9);
        assert!(NapiGuard::apply_with(d.fd(), "vm1", deferral(), Some(file)).is_err());
        assert_eq!(d.read("gro_flush_timeout"), "12345\n", "untouched");
        assert_eq!(d.read("napi_defer_hard_irqs"), "0\n", "untouched");
    }

    #[test]
    fn macs_parse_strictly() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01"),
            Some([2, 0, 0x0a, 0xff, 0, 1])
        );
        assert_eq!(parse_mac("02:00:0a:ff:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
        assert_eq!(parse_mac("zz:00:0a:ff:00:01"), None);
    }

    #[test]
    fn slashes_in_names_are_refused() {
        assert!(open_dir_at_sys("../etc").is_err());
        assert!(private_sysfs_dir("a/b").is_err());
    }
}
