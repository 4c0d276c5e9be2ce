//! The fast path's kernel side: the XDP program of `bpf/fastpath.bpf.c`, loaded once per
//! dataplane and attached to every port instead of libxdp's default program, and its
//! maps, as a [`FlowCache`].
//!
//! The program does what the default one does (redirect each frame to the port's AF_XDP
//! socket, `XDP_PASS` when there is none) except for frames of flows the core installed
//! in `fp_l2`/`fp_nat`, which it switches or translates and redirects to their egress
//! port itself. See the program's header comment for what always goes to the core.
//!
//! Invariants:
//! - the `#[repr(C)]` structs here are the program's map layouts (`bpf/fastpath.h`), byte
//!   for byte (a test checks the sizes); addresses and ports are stored in wire order;
//! - a port is in `fp_ifindex` only while its socket is in `fp_xsks` (see
//!   [`FastPath::add_port`]); its `FP_PORT_REDIRECT` flag says whether frames may be
//!   redirected to it, i.e. whether the kernel can deliver them (a veth whose peer has an
//!   XDP program or GRO on), and is kept current by the caller;
//! - all `unsafe` of the fast path is here: libbpf calls on the object and its maps.

use crate::fastpath::{EntryUse, FlowCache, L2Key, Miss, NatKey, NatRewrite, PortFastStats};
use crate::frame::PortId;
use crate::time::Instant;
use std::ffi::CString;
use std::io;
use std::os::raw::c_void;
use std::sync::Arc;

/// The compiled program (empty when clang was missing at build time).
static OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/fastpath.bpf.o"));

/// Ports the program knows (`FP_MAX_PORTS`).
pub const MAX_PORTS: u32 = 64;
const FP_PORT_REDIRECT: u32 = 1;
const FS_FAST_RX: usize = 0;
const FS_FAST_RX_BYTES: usize = 1;
const FS_FAST_TX: usize = 2;
const FS_FAST_TX_BYTES: usize = 3;
const FS_CORE: usize = 4;
const FS_MISS_FIRST: usize = 5;
const FS_CSUM_DONE: usize = FS_MISS_FIRST + Miss::COUNT;
const FS_N: usize = FS_CSUM_DONE + 1;

/// `struct fp_l2_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RawL2Key {
    ingress: u32,
    src: [u8; 6],
    dst: [u8; 6],
}

/// `struct fp_l2_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RawL2Val {
    egress: u32,
    pad: u32,
    packets: u64,
    bytes: u64,
    last_seen: u64,
}

/// `struct fp_nat_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RawNatKey {
    ingress: u32,
    saddr: [u8; 4],
    daddr: [u8; 4],
    sport: [u8; 2],
    dport: [u8; 2],
    proto: u8,
    pad: [u8; 3],
}

/// `struct fp_nat_val`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
struct RawNatVal {
    egress: u32,
    match_dst: [u8; 6],
    match_src: [u8; 6],
    new_dst: [u8; 6],
    new_src: [u8; 6],
    new_saddr: [u8; 4],
    new_daddr: [u8; 4],
    new_sport: [u8; 2],
    new_dport: [u8; 2],
    ttl_dec: u8,
    pad: [u8; 3],
    packets: u64,
    bytes: u64,
    last_seen: u64,
}

impl RawL2Key {
    fn of(k: &L2Key) -> Self {
        Self {
            ingress: u32::from(k.ingress),
            src: k.src,
            dst: k.dst,
        }
    }
}

impl RawNatKey {
    fn of(k: &NatKey) -> Self {
        Self {
            ingress: u32::from(k.ingress),
            saddr: k.saddr,
            daddr: k.daddr,
            sport: k.sport.to_be_bytes(),
            dport: k.dport.to_be_bytes(),
            proto: k.proto,
            pad: [0; 3],
        }
    }
}

/// Why the fast path cannot start, as one sentence.
fn load_error(what: &str, e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "the fast-path XDP program could not {what} ({e}); it needs root and Linux >= 5.18 \
             (run with --offload off to do without)"
        ),
    )
}

fn last_error() -> io::Error {
    io::Error::last_os_error()
}

fn rc_error(rc: i32) -> io::Error {
    io::Error::from_raw_os_error(rc.unsigned_abs() as i32)
}

/// The loaded program and its maps. Closed (maps and program released) on drop; detach
/// it from every interface first ([`FastPath::detach`]).
#[derive(Debug)]
pub struct FastPath {
    obj: *mut libbpf_sys::bpf_object,
    prog: i32,
    xsks: i32,
    tx: i32,
    ifindex: i32,
    ports: i32,
    stats: i32,
    l2: i32,
    nat: i32,
    ncpus: usize,
    entries: u32,
}

// SAFETY: after loading, the object is only used through map and program fds (syscalls,
// safe from any thread) and closed once in Drop; libbpf keeps no thread-local state.
unsafe impl Send for FastPath {}
// SAFETY: as above; every method takes &self and only issues syscalls on fds.
unsafe impl Sync for FastPath {}

impl FastPath {
    /// Load the program with room for `entries` switched and `entries` translated flows.
    ///
    /// # Errors
    /// One sentence: the program was not built (no clang), or the kernel refused it.
    pub fn load(entries: u32) -> io::Result<FastPath> {
        if OBJECT.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the fast-path XDP program was not compiled (clang missing at build time): \
                 install clang and rebuild, or run with --offload off",
            ));
        }
        super::quiet::quieten();
        // SAFETY: OBJECT is a static buffer valid for its length; null opts are allowed.
        let obj = unsafe {
            libbpf_sys::bpf_object__open_mem(
                OBJECT.as_ptr().cast::<c_void>(),
                OBJECT.len() as _,
                std::ptr::null(),
            )
        };
        if obj.is_null() {
            return Err(load_error("be opened", last_error()));
        }
        let mut fp = FastPath {
            obj,
            prog: -1,
            xsks: -1,
            tx: -1,
            ifindex: -1,
            ports: -1,
            stats: -1,
            l2: -1,
            nat: -1,
            // SAFETY: plain query without arguments.
            ncpus: unsafe { libbpf_sys::libbpf_num_possible_cpus() }.max(1) as usize,
            entries: entries.max(1),
        };
        for name in ["fp_l2", "fp_nat"] {
            let map = fp.map(name)?;
            // SAFETY: `map` belongs to the opened, not yet loaded object.
            let rc = unsafe { libbpf_sys::bpf_map__set_max_entries(map, fp.entries) };
            if rc != 0 {
                return Err(load_error("be sized", rc_error(rc)));
            }
        }
        // SAFETY: `obj` is the valid object opened above.
        let rc = unsafe { libbpf_sys::bpf_object__load(obj) };
        if rc != 0 {
            return Err(load_error("be loaded", rc_error(rc)));
        }
        let name = CString::new("vnet_fastpath").expect("no NUL");
        // SAFETY: valid object and NUL-terminated name.
        let prog = unsafe { libbpf_sys::bpf_object__find_program_by_name(obj, name.as_ptr()) };
        if prog.is_null() {
            return Err(load_error("be found", io::Error::other("no vnet_fastpath")));
        }
        // SAFETY: `prog` belongs to the loaded object.
        fp.prog = unsafe { libbpf_sys::bpf_program__fd(prog) };
        fp.xsks = fp.map_fd("fp_xsks")?;
        fp.tx = fp.map_fd("fp_tx")?;
        fp.ifindex = fp.map_fd("fp_ifindex")?;
        fp.ports = fp.map_fd("fp_ports")?;
        fp.stats = fp.map_fd("fp_stats")?;
        fp.l2 = fp.map_fd("fp_l2")?;
        fp.nat = fp.map_fd("fp_nat")?;
        Ok(fp)
    }

    fn map(&self, name: &str) -> io::Result<*mut libbpf_sys::bpf_map> {
        let n = CString::new(name).expect("no NUL");
        // SAFETY: valid object and NUL-terminated name.
        let map = unsafe { libbpf_sys::bpf_object__find_map_by_name(self.obj, n.as_ptr()) };
        if map.is_null() {
            return Err(load_error(
                "find its maps",
                io::Error::other(name.to_string()),
            ));
        }
        Ok(map)
    }

    fn map_fd(&self, name: &str) -> io::Result<i32> {
        let map = self.map(name)?;
        // SAFETY: `map` belongs to the loaded object.
        let fd = unsafe { libbpf_sys::bpf_map__fd(map) };
        if fd < 0 {
            return Err(load_error(
                "find its maps",
                io::Error::other(name.to_string()),
            ));
        }
        Ok(fd)
    }

    /// Entries each flow map holds.
    pub fn capacity(&self) -> u32 {
        self.entries
    }

    /// The program's fd (to attach it).
    pub fn prog_fd(&self) -> i32 {
        self.prog
    }

    /// Attach the program to `ifindex` (native when `native`, else generic), failing
    /// when another program is attached.
    ///
    /// # Errors
    /// The kernel's error.
    pub fn attach(&self, ifindex: u32, native: bool) -> io::Result<()> {
        let mode = if native {
            libbpf_sys::XDP_FLAGS_DRV_MODE
        } else {
            libbpf_sys::XDP_FLAGS_SKB_MODE
        };
        let flags = mode | libbpf_sys::XDP_FLAGS_UPDATE_IF_NOEXIST;
        // SAFETY: plain syscall wrapper; null opts are allowed.
        let rc = unsafe {
            libbpf_sys::bpf_xdp_attach(ifindex as i32, self.prog, flags, std::ptr::null())
        };
        if rc != 0 {
            return Err(rc_error(rc));
        }
        Ok(())
    }

    /// Detach the program from `ifindex` if it is ours that is attached there.
    pub fn detach(&self, ifindex: u32, native: bool) {
        let mode = if native {
            libbpf_sys::XDP_FLAGS_DRV_MODE
        } else {
            libbpf_sys::XDP_FLAGS_SKB_MODE
        };
        let opts = libbpf_sys::bpf_xdp_attach_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_xdp_attach_opts>() as _,
            old_prog_fd: self.prog,
            ..Default::default()
        };
        let flags = mode | libbpf_sys::XDP_FLAGS_REPLACE;
        // SAFETY: `opts` is a live, sized options struct; -1 detaches, and only if the
        // attached program is still `old_prog_fd` (XDP_FLAGS_REPLACE).
        unsafe { libbpf_sys::bpf_xdp_attach(ifindex as i32, -1, flags, &opts) };
    }

    fn update<K, V>(&self, fd: i32, key: &K, value: &V) -> io::Result<()> {
        // SAFETY: `key` and `value` are live and have the map's key and value sizes (the
        // map types here are fixed by the program and mirrored by K and V).
        let rc = unsafe {
            libbpf_sys::bpf_map_update_elem(
                fd,
                (key as *const K).cast(),
                (value as *const V).cast(),
                0,
            )
        };
        if rc != 0 {
            return Err(rc_error(rc));
        }
        Ok(())
    }

    fn delete<K>(&self, fd: i32, key: &K) {
        // SAFETY: `key` is live and has the map's key size.
        unsafe { libbpf_sys::bpf_map_delete_elem(fd, (key as *const K).cast()) };
    }

    fn lookup<K, V: Default>(&self, fd: i32, key: &K) -> Option<V> {
        let mut v = V::default();
        // SAFETY: `key` is live with the map's key size; `v` is a writable value of the
        // map's value size.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_elem(fd, (key as *const K).cast(), (&mut v as *mut V).cast())
        };
        (rc == 0).then_some(v)
    }

    /// Make dataplane port `id` known on `ifindex`, with its AF_XDP socket `xsk_fd`;
    /// `redirect`: whether frames may be redirected to it.
    ///
    /// # Errors
    /// The kernel's error (e.g. a socket bound to another queue).
    /// Without a socket (`None`, tests with [`FastPath::test_run`]) frames for the core
    /// pass to the kernel's stack.
    pub fn add_port(
        &self,
        id: PortId,
        ifindex: u32,
        xsk_fd: Option<i32>,
        redirect: bool,
    ) -> io::Result<()> {
        let id = u32::from(id);
        if id >= MAX_PORTS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "port id over 63",
            ));
        }
        if let Some(fd) = xsk_fd {
            self.update(self.xsks, &id, &fd)?;
        }
        self.update(self.tx, &id, &ifindex)?;
        self.set_redirect(id as PortId, redirect)?;
        self.update(self.ifindex, &ifindex, &id)
    }

    /// Forget port `id` (its frames pass to the stack until the program is detached).
    pub fn remove_port(&self, id: PortId, ifindex: u32) {
        self.delete(self.ifindex, &ifindex);
        let id = u32::from(id);
        let _ = self.update(self.ports, &id, &0u32);
        self.delete(self.xsks, &id);
    }

    /// Whether frames may be redirected to port `id`.
    ///
    /// # Errors
    /// The kernel's error.
    pub fn set_redirect(&self, id: PortId, on: bool) -> io::Result<()> {
        let flags = if on { FP_PORT_REDIRECT } else { 0 };
        self.update(self.ports, &u32::from(id), &flags)
    }

    /// Run the program once on `frame` as if it had arrived on `ingress_ifindex`
    /// (`BPF_PROG_TEST_RUN`, nothing is sent): the XDP action (`XDP_REDIRECT` = 4: the
    /// fast path took it; `XDP_PASS` = 2: to the core, no socket in a test) and the frame
    /// as the program left it.
    ///
    /// # Errors
    /// The kernel's error (no such interface, a frame the kernel refuses).
    pub fn test_run(&self, frame: &[u8], ingress_ifindex: u32) -> io::Result<(u32, Vec<u8>)> {
        let mut out = vec![0u8; frame.len() + 256];
        let ctx = libbpf_sys::xdp_md {
            data: 0,
            data_end: frame.len() as u32,
            data_meta: 0,
            ingress_ifindex,
            rx_queue_index: 0,
            egress_ifindex: 0,
        };
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_out: out.as_mut_ptr().cast(),
            data_size_in: frame.len() as u32,
            data_size_out: out.len() as u32,
            ctx_in: (&ctx as *const libbpf_sys::xdp_md).cast(),
            ctx_size_in: std::mem::size_of::<libbpf_sys::xdp_md>() as u32,
            repeat: 1,
            ..Default::default()
        };
        // SAFETY: every pointer in `opts` refers to a live buffer of the size given next
        // to it (`frame`, `out`, `ctx`), all outliving the call.
        let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(self.prog, &mut opts) };
        if rc != 0 {
            return Err(rc_error(rc));
        }
        out.truncate(opts.data_size_out as usize);
        Ok((opts.retval, out))
    }

    fn percpu(&self, key: u32) -> u64 {
        let mut v = vec![0u64; self.ncpus];
        // SAFETY: a per-CPU array's value is one u64 per possible CPU; `v` holds that.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_elem(
                self.stats,
                (&key as *const u32).cast(),
                v.as_mut_ptr().cast(),
            )
        };
        if rc != 0 {
            return 0;
        }
        v.iter().sum()
    }
}

impl FlowCache for FastPath {
    fn install_l2(&self, key: &L2Key, egress: PortId) -> io::Result<()> {
        let v = RawL2Val {
            egress: u32::from(egress),
            ..Default::default()
        };
        self.update(self.l2, &RawL2Key::of(key), &v)
    }

    fn remove_l2(&self, key: &L2Key) {
        self.delete(self.l2, &RawL2Key::of(key));
    }

    fn read_l2(&self, key: &L2Key) -> Option<EntryUse> {
        let v: RawL2Val = self.lookup(self.l2, &RawL2Key::of(key))?;
        Some(EntryUse {
            packets: v.packets,
            bytes: v.bytes,
            last_seen: Instant::from_nanos(v.last_seen),
        })
    }

    fn install_nat(&self, key: &NatKey, r: &NatRewrite) -> io::Result<()> {
        let v = RawNatVal {
            egress: u32::from(r.egress),
            match_dst: r.match_dst,
            match_src: r.match_src,
            new_dst: r.new_dst,
            new_src: r.new_src,
            new_saddr: r.new_saddr,
            new_daddr: r.new_daddr,
            new_sport: r.new_sport.to_be_bytes(),
            new_dport: r.new_dport.to_be_bytes(),
            ttl_dec: u8::from(r.ttl_dec),
            ..Default::default()
        };
        self.update(self.nat, &RawNatKey::of(key), &v)
    }

    fn remove_nat(&self, key: &NatKey) {
        self.delete(self.nat, &RawNatKey::of(key));
    }

    fn read_nat(&self, key: &NatKey) -> Option<EntryUse> {
        let v: RawNatVal = self.lookup(self.nat, &RawNatKey::of(key))?;
        Some(EntryUse {
            packets: v.packets,
            bytes: v.bytes,
            last_seen: Instant::from_nanos(v.last_seen),
        })
    }

    fn port_stats(&self, port: PortId) -> PortFastStats {
        let base = usize::from(port) * FS_N;
        let at = |i: usize| self.percpu((base + i) as u32);
        let mut s = PortFastStats {
            rx: at(FS_FAST_RX),
            rx_bytes: at(FS_FAST_RX_BYTES),
            tx: at(FS_FAST_TX),
            tx_bytes: at(FS_FAST_TX_BYTES),
            to_core: at(FS_CORE),
            csum_completed: at(FS_CSUM_DONE),
            misses: [0; Miss::COUNT],
        };
        for (i, m) in s.misses.iter_mut().enumerate() {
            *m = at(FS_MISS_FIRST + i);
        }
        s
    }
}

/// The fast path on one port: its program attached and the port in its maps. Dropping it
/// takes the port out of the maps and detaches the program (if it is still ours).
#[derive(Debug)]
pub(crate) struct Attachment {
    fp: Arc<FastPath>,
    id: PortId,
    ifindex: u32,
    native: bool,
}

impl Attachment {
    /// Attach `fp`'s program to `ifindex` (before the port's socket exists).
    pub(crate) fn attach(
        fp: &Arc<FastPath>,
        id: PortId,
        ifindex: u32,
        native: bool,
    ) -> io::Result<Self> {
        fp.attach(ifindex, native)?;
        Ok(Self {
            fp: fp.clone(),
            id,
            ifindex,
            native,
        })
    }

    /// Enter the port's socket: from now on its frames reach the socket (or take the fast
    /// path).
    pub(crate) fn enter(&self, xsk_fd: i32) -> io::Result<()> {
        self.fp.add_port(self.id, self.ifindex, Some(xsk_fd), false)
    }

    /// The fast path.
    pub(crate) fn fastpath(&self) -> &Arc<FastPath> {
        &self.fp
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        self.fp.remove_port(self.id, self.ifindex);
        self.fp.detach(self.ifindex, self.native);
    }
}

impl Drop for FastPath {
    fn drop(&mut self) {
        // SAFETY: the object is valid and closed exactly once.
        unsafe { libbpf_sys::bpf_object__close(self.obj) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_layouts_match_the_program() {
        // bpf/fastpath.h: 16, 32, 20, 72 bytes.
        assert_eq!(std::mem::size_of::<RawL2Key>(), 16);
        assert_eq!(std::mem::size_of::<RawL2Val>(), 32);
        assert_eq!(std::mem::size_of::<RawNatKey>(), 20);
        assert_eq!(std::mem::size_of::<RawNatVal>(), 72);
        assert_eq!(FS_N, 19);
    }
}
