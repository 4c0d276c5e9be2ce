//! The benchmark's XDP programs and the little of libbpf they need: load an object built
//! by `build.rs`, read and write array maps, attach to an interface, and run a program
//! with `BPF_PROG_RUN` in XDP live-frames mode (`BPF_F_TEST_XDP_LIVE_FRAMES`, Linux 5.18).
//!
//! All `unsafe` of the benchmark lives here. libbpf comes from `libbpf-sys`, the very
//! crate (and build) `xsk-rs` already links, so there is one libbpf in the binary.
//!
//! Network namespaces: attaching resolves interface names through netlink in the calling
//! thread's namespace, and the kernel resolves a DEVMAP value's ifindex in the namespace
//! of the thread that writes it; [`in_netns`] runs a closure on a thread that entered a
//! namespace. Invariant: every ifindex this module is given or writes is used on a thread
//! inside the namespace it was looked up in, so a program never reaches the machine's own
//! interfaces.

use anyhow::{anyhow, bail, Context, Result};
use std::ffi::CString;
use std::os::raw::c_void;

/// The generator object (compiled `bpf/gen.bpf.c`).
pub static GEN_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gen.bpf.o"));
/// The sink object (compiled `bpf/sink.bpf.c`).
pub static SINK_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/sink.bpf.o"));
/// The `xdp-redirect` peer's object (compiled `bpf/redirect.bpf.c`).
pub static REDIRECT_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redirect.bpf.o"));

/// `BPF_F_TEST_XDP_LIVE_FRAMES` from `linux/bpf.h`.
pub const BPF_F_TEST_XDP_LIVE_FRAMES: u32 = 1 << 1;

/// A loaded BPF object; closed (programs and maps released) on drop.
#[derive(Debug)]
pub struct BpfObject {
    obj: *mut libbpf_sys::bpf_object,
    ncpus: usize,
}

// SAFETY: the object is only used through libbpf calls taking the pointer; libbpf keeps
// no thread-local state about it, and maps/programs are accessed through fds.
unsafe impl Send for BpfObject {}
// SAFETY: as above; shared use only reads fds.
unsafe impl Sync for BpfObject {}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("name {s:?} contains NUL"))
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

impl BpfObject {
    /// Open and load an ELF object from memory.
    ///
    /// # Errors
    /// When the object is empty (built without clang) or the kernel refuses it.
    pub fn load(name: &str, bytes: &'static [u8]) -> Result<BpfObject> {
        if bytes.is_empty() {
            bail!("the {name} XDP program was not compiled (clang missing at build time); install clang and rebuild");
        }
        // SAFETY: `bytes` is a valid buffer for its length (static); null opts are allowed.
        let obj = unsafe {
            libbpf_sys::bpf_object__open_mem(
                bytes.as_ptr().cast::<c_void>(),
                bytes.len() as _,
                std::ptr::null(),
            )
        };
        if obj.is_null() {
            bail!("could not open the {name} BPF object: {}", errno());
        }
        // SAFETY: `obj` was just returned non-null by libbpf.
        let rc = unsafe { libbpf_sys::bpf_object__load(obj) };
        if rc != 0 {
            // SAFETY: `obj` is a valid object, closed once here.
            unsafe { libbpf_sys::bpf_object__close(obj) };
            bail!(
                "the kernel refused the {name} BPF program ({}); needs root and Linux >= 5.18",
                std::io::Error::from_raw_os_error(-rc)
            );
        }
        // SAFETY: plain query without arguments.
        let ncpus = unsafe { libbpf_sys::libbpf_num_possible_cpus() }.max(1) as usize;
        Ok(BpfObject { obj, ncpus })
    }

    /// Possible CPUs (the length of a per-CPU map value).
    pub fn ncpus(&self) -> usize {
        self.ncpus
    }

    /// File descriptor of a program.
    ///
    /// # Errors
    /// When there is no program of that name.
    pub fn prog_fd(&self, name: &str) -> Result<i32> {
        let n = cstr(name)?;
        // SAFETY: valid object and NUL-terminated name.
        let prog = unsafe { libbpf_sys::bpf_object__find_program_by_name(self.obj, n.as_ptr()) };
        if prog.is_null() {
            bail!("no BPF program {name}");
        }
        // SAFETY: `prog` belongs to the loaded object.
        let fd = unsafe { libbpf_sys::bpf_program__fd(prog) };
        if fd < 0 {
            bail!("BPF program {name} has no fd");
        }
        Ok(fd)
    }

    /// File descriptor of a map.
    ///
    /// # Errors
    /// When there is no map of that name.
    pub fn map_fd(&self, name: &str) -> Result<i32> {
        let n = cstr(name)?;
        // SAFETY: valid object and NUL-terminated name.
        let fd = unsafe { libbpf_sys::bpf_object__find_map_fd_by_name(self.obj, n.as_ptr()) };
        if fd < 0 {
            bail!("no BPF map {name}");
        }
        Ok(fd)
    }
}

impl Drop for BpfObject {
    fn drop(&mut self) {
        // SAFETY: the object is valid and closed exactly once.
        unsafe { libbpf_sys::bpf_object__close(self.obj) };
    }
}

/// Write `value` at `key` of an array map of u64.
///
/// # Errors
/// The kernel's error.
pub fn array_set(fd: i32, key: u32, value: u64) -> Result<()> {
    // SAFETY: key and value point to live u32/u64 matching the map's key/value sizes.
    let rc = unsafe {
        libbpf_sys::bpf_map_update_elem(
            fd,
            (&key as *const u32).cast(),
            (&value as *const u64).cast(),
            0,
        )
    };
    if rc != 0 {
        bail!("BPF map update failed: {}", errno());
    }
    Ok(())
}

/// Write `value` to `key` of an array map whose values are exactly `value.len()` bytes.
///
/// # Errors
/// The kernel's error (a value of the wrong size gives EINVAL... or worse, so the size
/// is the caller's contract: [`HDR_LEN`] for `gen_hdr`).
pub fn array_set_bytes(fd: i32, key: u32, value: &[u8; HDR_LEN]) -> Result<()> {
    // SAFETY: key points to a live u32; value to HDR_LEN bytes, the map's value size.
    let rc = unsafe {
        libbpf_sys::bpf_map_update_elem(fd, (&key as *const u32).cast(), value.as_ptr().cast(), 0)
    };
    if rc != 0 {
        bail!("BPF map update failed: {}", errno());
    }
    Ok(())
}

/// Write `value` at `key` of a map with u32 keys and u32 values (a DEVMAP_HASH: the key
/// an ingress ifindex, the value the ifindex to redirect to).
///
/// A DEVMAP's value is resolved to an interface in the network namespace of the calling
/// thread: call this from a thread inside the namespace whose interfaces the map names
/// ([`in_netns`]), never from the machine's own namespace.
///
/// # Errors
/// The kernel's error (e.g. ENODEV when `value` is no interface of the map's namespace).
pub fn map_set_u32(fd: i32, key: u32, value: u32) -> Result<()> {
    // SAFETY: key and value point to live u32s, the map's key and value sizes.
    let rc = unsafe {
        libbpf_sys::bpf_map_update_elem(
            fd,
            (&key as *const u32).cast(),
            (&value as *const u32).cast(),
            0,
        )
    };
    if rc != 0 {
        bail!("BPF map update failed: {}", errno());
    }
    Ok(())
}

/// Bytes of the generator's header map value (`VB_HDR_LEN`): Ethernet + IPv4 + UDP
/// (42) rounded up to 8.
pub const HDR_LEN: usize = 48;

/// Read `key` of an array map of u64.
///
/// # Errors
/// The kernel's error.
pub fn array_get(fd: i32, key: u32) -> Result<u64> {
    let mut v = 0u64;
    // SAFETY: key and value point to a live u32 and u64 of the map's sizes.
    let rc = unsafe {
        libbpf_sys::bpf_map_lookup_elem(
            fd,
            (&key as *const u32).cast(),
            (&mut v as *mut u64).cast(),
        )
    };
    if rc != 0 {
        bail!("BPF map lookup failed: {}", errno());
    }
    Ok(v)
}

/// Read `key` of a per-CPU array map of u64: one value per possible CPU.
///
/// # Errors
/// The kernel's error.
pub fn percpu_get(fd: i32, key: u32, ncpus: usize) -> Result<Vec<u64>> {
    let mut v = vec![0u64; ncpus];
    // SAFETY: the value buffer holds one 8-byte slot per possible CPU, as the kernel
    // writes for a per-CPU map with 8-byte values.
    let rc = unsafe {
        libbpf_sys::bpf_map_lookup_elem(fd, (&key as *const u32).cast(), v.as_mut_ptr().cast())
    };
    if rc != 0 {
        bail!("BPF map lookup failed: {}", errno());
    }
    Ok(v)
}

/// Zero `key` of a per-CPU array map of u64.
///
/// # Errors
/// The kernel's error.
pub fn percpu_zero(fd: i32, key: u32, ncpus: usize) -> Result<()> {
    let v = vec![0u64; ncpus];
    // SAFETY: as in `percpu_get`, a buffer of one u64 per possible CPU.
    let rc = unsafe {
        libbpf_sys::bpf_map_update_elem(fd, (&key as *const u32).cast(), v.as_ptr().cast(), 0)
    };
    if rc != 0 {
        bail!("BPF map update failed: {}", errno());
    }
    Ok(())
}

/// Attach an XDP program to an interface of the calling thread's namespace in driver
/// (native) mode, falling back to generic mode. Returns the flags used, for detaching.
///
/// # Errors
/// When neither mode works.
pub fn xdp_attach(ifindex: u32, prog_fd: i32) -> Result<(u32, &'static str)> {
    for (flags, name) in [
        (libbpf_sys::XDP_FLAGS_DRV_MODE, "native"),
        (libbpf_sys::XDP_FLAGS_SKB_MODE, "generic"),
    ] {
        // SAFETY: plain syscall wrapper; null opts allowed.
        let rc =
            unsafe { libbpf_sys::bpf_xdp_attach(ifindex as i32, prog_fd, flags, std::ptr::null()) };
        if rc == 0 {
            return Ok((flags, name));
        }
    }
    bail!(
        "could not attach the sink XDP program to ifindex {ifindex}: {}",
        errno()
    )
}

/// Attach an XDP program to an interface of the calling thread's namespace in driver
/// (native) mode only, never generic: generic XDP gives a veth no NAPI, so it could not
/// take redirected frames. Returns the flags used, for [`xdp_detach`].
///
/// # Errors
/// When the driver refuses native XDP (or the interface already has a program).
pub fn xdp_attach_native(ifindex: u32, prog_fd: i32) -> Result<u32> {
    // Fail rather than replace a program someone else attached.
    let flags = libbpf_sys::XDP_FLAGS_DRV_MODE | libbpf_sys::XDP_FLAGS_UPDATE_IF_NOEXIST;
    // SAFETY: plain syscall wrapper; null opts allowed.
    let rc =
        unsafe { libbpf_sys::bpf_xdp_attach(ifindex as i32, prog_fd, flags, std::ptr::null()) };
    if rc != 0 {
        bail!(
            "could not attach an XDP program natively to ifindex {ifindex}: {}",
            std::io::Error::from_raw_os_error(-rc)
        );
    }
    Ok(libbpf_sys::XDP_FLAGS_DRV_MODE)
}

/// The id of the XDP program attached in driver (native) mode to an interface of the
/// calling thread's namespace; 0 when there is none.
///
/// # Errors
/// The kernel's error (no such interface).
pub fn xdp_native_prog_id(ifindex: u32) -> Result<u32> {
    let mut id = 0u32;
    // SAFETY: plain netlink query writing one u32 we own.
    let rc = unsafe {
        libbpf_sys::bpf_xdp_query_id(
            ifindex as i32,
            libbpf_sys::XDP_FLAGS_DRV_MODE as i32,
            &mut id,
        )
    };
    if rc != 0 {
        bail!(
            "could not query the XDP program of ifindex {ifindex}: {}",
            std::io::Error::from_raw_os_error(-rc)
        );
    }
    Ok(id)
}

/// Detach whatever XDP program is attached with `flags`.
pub fn xdp_detach(ifindex: u32, flags: u32) {
    // SAFETY: plain syscall wrapper; null opts allowed.
    let _ = unsafe { libbpf_sys::bpf_xdp_detach(ifindex as i32, flags, std::ptr::null()) };
}

/// Run an XDP program `repeat` times on `frame` in live-frames mode: frames it returns
/// `XDP_REDIRECT` for are really sent. `batch_size` 0 means the kernel default (64).
///
/// # Errors
/// The kernel's error (e.g. EINVAL before Linux 5.18).
pub fn run_live(prog_fd: i32, frame: &[u8], repeat: u32, batch_size: u32) -> Result<()> {
    let mut opts = libbpf_sys::bpf_test_run_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
        data_in: frame.as_ptr().cast(),
        data_out: std::ptr::null_mut(),
        data_size_in: frame.len() as u32,
        data_size_out: 0,
        ctx_in: std::ptr::null(),
        ctx_out: std::ptr::null_mut(),
        ctx_size_in: 0,
        ctx_size_out: 0,
        retval: 0,
        repeat: repeat.min(i32::MAX as u32) as i32,
        duration: 0,
        flags: BPF_F_TEST_XDP_LIVE_FRAMES,
        cpu: 0,
        batch_size,
    };
    // SAFETY: `opts` is fully initialised with its own size; `frame` outlives the call.
    let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(prog_fd, &mut opts) };
    if rc != 0 {
        bail!("BPF_PROG_RUN (XDP live frames) failed: {}", errno());
    }
    Ok(())
}

/// CLOCK_MONOTONIC in ns, the clock of `bpf_ktime_get_ns`.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Pin the calling thread to one CPU.
///
/// # Errors
/// When the CPU does not exist or is not allowed.
pub fn pin_to_core(core: usize) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it; sched_setaffinity reads
    // the set we own for the calling thread (pid 0).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!("could not pin to core {core}: {}", errno());
    }
    Ok(())
}

/// Move the calling thread into network namespace `netns` (a name under /run/netns).
///
/// # Errors
/// When the namespace does not exist or setns is refused.
pub fn enter_netns(netns: &str) -> Result<()> {
    let path = format!("/run/netns/{netns}");
    let f = std::fs::File::open(&path).with_context(|| format!("no network namespace {netns}"))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on an fd we hold open, affecting only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("could not enter network namespace {netns}: {}", errno());
    }
    Ok(())
}

/// Run `f` on a fresh thread inside network namespace `netns`.
///
/// # Errors
/// Entering the namespace, or what `f` returns.
pub fn in_netns<T: Send + 'static>(
    netns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let netns = netns.to_string();
    std::thread::spawn(move || {
        enter_netns(&netns)?;
        f()
    })
    .join()
    .map_err(|_| anyhow!("a thread in namespace panicked"))?
}

/// The index of an interface in the calling thread's namespace.
///
/// # Errors
/// When there is no such interface.
pub fn ifindex(ifname: &str) -> Result<u32> {
    let n = cstr(ifname)?;
    // SAFETY: NUL-terminated name.
    let i = unsafe { libc::if_nametoindex(n.as_ptr()) };
    if i == 0 {
        bail!("no interface {ifname}");
    }
    Ok(i)
}
