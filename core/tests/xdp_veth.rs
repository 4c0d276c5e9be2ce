//! Privileged tests of the AF_XDP backend on veth pairs.
//!
//! Each test builds its own network namespace (`vnxt-<test>-<pid>`) with veth pairs,
//! enters it on the test thread with `setns`, binds [`XdpPort`]s there, and talks to the
//! far ends of the pairs through AF_PACKET sockets. Guards leave the namespace and
//! delete it even when the test panics. Nothing touches the machine's real interfaces.
//!
//! Without root (or where `ip netns add` fails) a test prints `skipped: ...` and passes,
//! unless `VNET_REQUIRE_PRIVILEGED` is set (CI), where it fails with the reason.
//!
//! Run with `cargo test -p vnet-core --test xdp_veth -- --test-threads=1`.
#![cfg(feature = "xdp")]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};
use vnet_core::frame::{FramePool, Pkt};
use vnet_core::port::xdp::{
    open_worker_ports, AttachMode, BindMode, NapiSettings, XdpConfig, XdpError, XdpPort,
};
use vnet_core::port::{Burst, Port};

/// The IEEE local experimental EtherType: nothing in the namespace reacts to it.
const ETH_P_TEST: u16 = 0x88b5;

// ---------------------------------------------------------------------------------
// Namespace and veth plumbing
// ---------------------------------------------------------------------------------

/// A network namespace of our own; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(test: &str) -> Result<Self, String> {
        let name = format!("vnxt-{test}-{}", std::process::id());
        // A namespace left over by a killed run of the same pid is ours to remove.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`ip netns add` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let ns = Self { name };
        // Quiet links: no IPv6 autoconfiguration traffic on the test interfaces.
        let _ = ns.exec(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ]);
        ns.ip(&["link", "set", "lo", "up"]);
        Ok(ns)
    }

    /// `ip -n NS ARGS...`, which must succeed.
    fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "ip -n {} {}: {}",
            self.name,
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run a command inside the namespace with its own sysfs (`ip netns exec`).
    fn exec(&self, cmd: &[&str]) -> io::Result<String> {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "{}: {}",
                cmd.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A veth pair `a`<->`b`, both up.
    fn veth(&self, a: &str, b: &str) {
        self.ip(&["link", "add", a, "type", "veth", "peer", "name", b]);
        self.ip(&["link", "set", a, "up"]);
        self.ip(&["link", "set", b, "up"]);
    }

    /// A sysfs value of an interface, as seen inside the namespace.
    fn sysfs(&self, ifname: &str, knob: &str) -> String {
        self.exec(&["cat", &format!("/sys/class/net/{ifname}/{knob}")])
            .unwrap_or_else(|e| panic!("read {knob} of {ifname}: {e}"))
            .trim()
            .to_string()
    }

    fn set_sysfs(&self, ifname: &str, knob: &str, value: &str) {
        self.exec(&[
            "sh",
            "-c",
            &format!("echo {value} > /sys/class/net/{ifname}/{knob}"),
        ])
        .unwrap_or_else(|e| panic!("write {knob} of {ifname}: {e}"));
    }

    /// `ip -d link show IF`.
    fn link_details(&self, ifname: &str) -> String {
        self.ip(&["-d", "link", "show", ifname])
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The test thread inside a namespace; back in the original one on drop.
struct Entered {
    orig: File,
}

fn setns(fd: &impl AsRawFd) -> io::Result<()> {
    // SAFETY: setns(2) on a valid namespace fd affects only the calling thread's
    // network namespace.
    if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn enter(ns: &Netns) -> Entered {
    let orig = File::open("/proc/thread-self/ns/net").expect("open own netns");
    let target = File::open(format!("/var/run/netns/{}", ns.name)).expect("open test netns");
    setns(&target).expect("enter test netns");
    Entered { orig }
}

impl Drop for Entered {
    fn drop(&mut self) {
        setns(&self.orig).expect("return to the original netns");
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The namespace `vnxt-<tag>-<pid>` for `test`, or `None` (after saying why) when the
/// test cannot run here.
fn privileged(test: &str, tag: &str) -> Option<Netns> {
    let why = if !is_root() {
        Some("needs root (AF_XDP, XDP and network namespaces)".to_string())
    } else {
        match Netns::create(tag) {
            Ok(ns) => return Some(ns),
            Err(e) => Some(format!("cannot create a network namespace: {e}")),
        }
    };
    let why = why.unwrap_or_default();
    if std::env::var_os("VNET_REQUIRE_PRIVILEGED").is_some() {
        panic!("{test}: {why}, and VNET_REQUIRE_PRIVILEGED is set");
    }
    eprintln!("skipped: {test} {why}");
    None
}

// ---------------------------------------------------------------------------------
// AF_PACKET endpoints
// ---------------------------------------------------------------------------------

/// A raw socket on one interface, for the test EtherType only.
struct RawSock {
    fd: OwnedFd,
}

impl RawSock {
    fn open(ifname: &str) -> Self {
        let proto = ETH_P_TEST.to_be() as i32;
        // SAFETY: socket(2) with constant arguments; the result is checked.
        let fd =
            unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto) };
        assert!(fd >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: NUL-terminated name alive for the call.
        let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(ifindex != 0, "no interface {ifname}");
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_TEST.to_be();
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: `sll` is a live sockaddr_ll and the length is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
        let size: i32 = 16 << 20;
        // SAFETY: `size` is a live i32 and the length is its size.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUFFORCE,
                (&size as *const i32).cast(),
                4,
            )
        };
        Self { fd }
    }

    fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is a live buffer of `frame.len()` bytes the kernel only reads.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            io::Error::last_os_error()
        );
    }

    /// The next incoming (not locally sent) frame, waiting at most `timeout`.
    fn recv(&self, timeout: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one live pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, left.as_millis() as i32) };
            if rc <= 0 {
                return None;
            }
            // SAFETY: sockaddr_ll is plain data; all-zero is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut flen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: `buf` and `from` are live and writable for the lengths passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut flen,
                )
            };
            if n < 0 {
                continue;
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Some(buf[..n as usize].to_vec());
        }
    }
}

/// Test frame `seq`: broadcast, test EtherType, sequence number, pattern; `len` bytes.
fn frame(seq: u64, len: usize) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&ETH_P_TEST.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u64 ^ seq) as u8);
    }
    f.truncate(len);
    f
}

fn seq_of(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes[14..22].try_into().unwrap())
}

/// Receive up to `want` packets from `port`, servicing every port, within `timeout`.
fn receive(
    ports: &mut [XdpPort],
    rx: usize,
    pool: &mut FramePool,
    want: usize,
    timeout: Duration,
) -> Vec<Pkt> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::with_capacity(want);
    let mut burst = Burst::new();
    while got.len() < want && Instant::now() < deadline {
        ports[rx].rx_burst(pool, &mut burst);
        got.extend_from_slice(burst.as_slice());
        burst.clear();
        for p in ports.iter_mut() {
            p.service(pool);
        }
    }
    got
}

/// Transmit all of `pkts` on `port`, servicing while the ring is full.
fn transmit(ports: &mut [XdpPort], tx: usize, pool: &mut FramePool, pkts: &[Pkt]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut done = 0;
    while done < pkts.len() {
        assert!(Instant::now() < deadline, "tx ring stayed full");
        done += ports[tx].tx_burst(pool, &pkts[done..]);
        for p in ports.iter_mut() {
            p.service(pool);
        }
    }
}

/// Service until every transmitted frame has completed; then the frame accounting.
fn settle(ports: &mut [XdpPort], pool: &mut FramePool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while ports.iter().any(|p| p.tx_outstanding() > 0) {
        assert!(Instant::now() < deadline, "transmissions never completed");
        for p in ports.iter_mut() {
            p.service(pool);
        }
    }
    let held: u32 = ports.iter().map(|p| p.frames_held()).sum();
    assert_eq!(
        pool.free_count() as u32 + held,
        pool.count(),
        "frames leaked: {} free + {held} in fill rings != {}",
        pool.free_count(),
        pool.count()
    );
}

fn no_xdp(details: &str) -> bool {
    !details.contains("prog/xdp") && !details.split_whitespace().any(|w| w.starts_with("xdp"))
}

// ---------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------

fn receive_and_forward(ns: &Netns, cfg: &XdpConfig) {
    let _inside = enter(ns);
    let ifaces = [("vnxt-a0".to_string(), 0), ("vnxt-b0".to_string(), 1)];
    let (mut pool, mut ports) = open_worker_ports(&ifaces, cfg).expect("open ports");
    for p in &ports {
        let info = p.info();
        println!(
            "{}: {} (max_frame {})",
            info.name, info.detail, info.max_frame
        );
        assert_eq!(info.backend, "xdp");
        assert!(info.detail.contains("bind=copy"), "{}", info.detail);
        assert_eq!(p.bind_mode(), BindMode::Copy, "veth has no zero-copy");
        match cfg.attach {
            AttachMode::Generic => assert_eq!(p.attach_mode(), AttachMode::Generic),
            _ => assert_eq!(
                p.attach_mode(),
                AttachMode::Native,
                "veth supports native XDP"
            ),
        }
    }
    let a1 = RawSock::open("vnxt-a1");
    let b1 = RawSock::open("vnxt-b1");

    let lens = [60usize, 64, 128, 333, 1000, 1514];
    let sent: Vec<Vec<u8>> = (0..48u64)
        .map(|i| frame(i, lens[i as usize % lens.len()]))
        .collect();
    for f in &sent {
        a1.send(f);
    }
    let got = receive(&mut ports, 0, &mut pool, sent.len(), Duration::from_secs(5));
    assert_eq!(
        got.len(),
        sent.len(),
        "frames lost between vnxt-a1 and the a0 socket"
    );
    for (p, want) in got.iter().zip(&sent) {
        assert_eq!(p.port, 0);
        assert_eq!(
            pool.bytes(p),
            &want[..],
            "frame {} differs after rx",
            seq_of(want)
        );
        assert_eq!(
            pool.addr_of(p.frame) % pool.frame_size() as u64,
            pool.data_offset() as u64
        );
    }
    assert_eq!(ports[0].realigned(), 0);

    transmit(&mut ports, 1, &mut pool, &got);
    for want in &sent {
        let f = b1
            .recv(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("frame {} never reached vnxt-b1", seq_of(want)));
        assert_eq!(&f, want, "frame {} differs after tx", seq_of(want));
    }
    settle(&mut ports, &mut pool);
    let stats = ports[1].stats();
    assert!(stats.tx_kicks > 0, "copy mode transmits only when kicked");
    assert_eq!(ports[0].stats().invalid_descs, 0);
    println!(
        "a0 {:?} pokes={}, b0 {:?} pokes={}",
        ports[0].stats(),
        ports[0].rx_pokes(),
        stats,
        ports[1].rx_pokes()
    );
}

#[test]
fn xdp_port_receives_and_transmits_frames() {
    let Some(ns) = privileged("xdp_port_receives_and_transmits_frames", "rxtx") else {
        return;
    };
    ns.veth("vnxt-a0", "vnxt-a1");
    ns.veth("vnxt-b0", "vnxt-b1");
    // Defaults: auto attach (native on veth), need_wakeup, busy polling, NAPI tuning.
    receive_and_forward(&ns, &XdpConfig::default());
    // need_wakeup without busy polling: copy mode should need no rx syscalls.
    receive_and_forward(
        &ns,
        &XdpConfig {
            busy_poll: None,
            napi: None,
            ..XdpConfig::default()
        },
    );
    // The other corner: generic XDP, no need_wakeup, no busy polling, NAPI untouched.
    receive_and_forward(
        &ns,
        &XdpConfig {
            attach: AttachMode::Generic,
            need_wakeup: false,
            busy_poll: None,
            napi: None,
            frames_per_port: 1024,
            ..XdpConfig::default()
        },
    );
}

#[test]
fn xdp_frames_do_not_leak() {
    let Some(ns) = privileged("xdp_frames_do_not_leak", "leak") else {
        return;
    };
    ns.veth("vnxt-a0", "vnxt-a1");
    ns.veth("vnxt-b0", "vnxt-b1");
    let _inside = enter(&ns);
    // A small UMEM, so that a leak of even a few frames per thousand would run it dry.
    let cfg = XdpConfig {
        frames_per_port: 1024,
        ..XdpConfig::default()
    };
    let ifaces = [("vnxt-a0".to_string(), 0), ("vnxt-b0".to_string(), 1)];
    let (mut pool, mut ports) = open_worker_ports(&ifaces, &cfg).expect("open ports");
    let a1 = RawSock::open("vnxt-a1");
    let b1 = RawSock::open("vnxt-b1");

    const TOTAL: u64 = 200_000;
    const BATCH: u64 = 200;
    let started = Instant::now();
    let mut received_b1 = 0u64;
    let mut seq = 0u64;
    while seq < TOTAL {
        let n = BATCH.min(TOTAL - seq);
        for i in 0..n {
            a1.send(&frame(seq + i, 60 + ((seq + i) % 64) as usize));
        }
        let got = receive(&mut ports, 0, &mut pool, n as usize, Duration::from_secs(5));
        assert_eq!(
            got.len() as u64,
            n,
            "rx stalled at frame {seq}: {:?} {:?}",
            ports[0].stats(),
            ports[0]
        );
        assert_eq!(seq_of(pool.bytes(&got[0])), seq);
        transmit(&mut ports, 1, &mut pool, &got);
        seq += n;
        while let Some(f) = b1.recv(Duration::ZERO) {
            assert_eq!(seq_of(&f), received_b1, "b1 saw frames out of order");
            received_b1 += 1;
        }
    }
    settle(&mut ports, &mut pool);
    while received_b1 < TOTAL {
        let Some(f) = b1.recv(Duration::from_secs(2)) else {
            break;
        };
        assert_eq!(seq_of(&f), received_b1);
        received_b1 += 1;
    }
    let elapsed = started.elapsed();
    println!(
        "{TOTAL} frames a1 -> a0 -> b0 -> b1 in {elapsed:?}; a0 {:?} pokes={}; b0 {:?} \
         pokes={}; pool {} free of {}",
        ports[0].stats(),
        ports[0].rx_pokes(),
        ports[1].stats(),
        ports[1].rx_pokes(),
        pool.free_count(),
        pool.count()
    );
    assert_eq!(received_b1, TOTAL, "frames lost on the way to vnxt-b1");
    let s0 = ports[0].stats();
    assert_eq!(s0.rx_dropped, 0, "the kernel dropped frames at a0");
    assert_eq!(s0.invalid_descs + ports[1].stats().invalid_descs, 0);
    assert_eq!(
        ports[0].fill_level(),
        cfg.fill_target(),
        "fill ring not kept full"
    );
}

#[test]
fn xdp_errors_are_plain_sentences() {
    let Some(ns) = privileged("xdp_errors_are_plain_sentences", "errors") else {
        return;
    };
    ns.veth("vnxt-a0", "vnxt-a1");
    let _inside = enter(&ns);

    let e =
        open_worker_ports(&[("vnxt-missing".to_string(), 0)], &XdpConfig::default()).unwrap_err();
    assert!(matches!(e, XdpError::NoInterface { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "no interface named vnxt-missing in this network namespace; create it or pass another \
         --vm/--host/--uplink"
    );

    let e = open_worker_ports(
        &[("vnxt-a0".to_string(), 0), ("vnxt-a0".to_string(), 1)],
        &XdpConfig::default(),
    )
    .unwrap_err();
    assert!(matches!(e, XdpError::DuplicateInterface { .. }), "{e:?}");

    let (mut pool, mut ports) =
        open_worker_ports(&[("vnxt-a0".to_string(), 0)], &XdpConfig::default())
            .expect("first open");
    let e = open_worker_ports(&[("vnxt-a0".to_string(), 0)], &XdpConfig::default()).unwrap_err();
    println!("second open: {e}");
    assert!(
        matches!(e, XdpError::AlreadyBound { queue: 0, .. }),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "interface vnxt-a0 already has an XDP program or AF_XDP socket on queue 0; stop the other \
         program (ip link set dev vnxt-a0 xdp off) and retry"
    );
    let msg = e.to_string();
    assert!(
        !msg.contains('\n') && msg.matches("; ").count() == 1,
        "{msg}"
    );

    // Without privileges (a thread that gave up root; the rest of the process keeps it).
    let e = std::thread::spawn(|| {
        // SAFETY: the raw setresuid syscall changes the credentials of this helper
        // thread only (glibc's setresuid would change every thread of the process).
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534) };
        assert_eq!(rc, 0, "drop root: {}", io::Error::last_os_error());
        open_worker_ports(&[("vnxt-a1".to_string(), 0)], &XdpConfig::default()).unwrap_err()
    })
    .join()
    .expect("unprivileged open");
    assert!(matches!(e, XdpError::NotPermitted), "{e:?}");
    assert_eq!(
        e.to_string(),
        "binding AF_XDP needs root (CAP_NET_ADMIN, CAP_BPF, CAP_NET_RAW); run as root"
    );

    // The failed second open left the first one working.
    let a1 = RawSock::open("vnxt-a1");
    a1.send(&frame(7, 60));
    let got = receive(&mut ports, 0, &mut pool, 1, Duration::from_secs(5));
    assert_eq!(
        got.len(),
        1,
        "the first port stopped receiving after the failed open"
    );
    assert_eq!(seq_of(pool.bytes(&got[0])), 7);
    pool.free(got[0].frame);
}

#[test]
fn xdp_program_detached_on_drop() {
    let Some(ns) = privileged("xdp_program_detached_on_drop", "detach") else {
        return;
    };
    ns.veth("vnxt-a0", "vnxt-a1");
    ns.veth("vnxt-b0", "vnxt-b1");
    ns.set_sysfs("vnxt-a0", "gro_flush_timeout", "1000");
    let before = (
        ns.sysfs("vnxt-a0", "napi_defer_hard_irqs"),
        ns.sysfs("vnxt-a0", "gro_flush_timeout"),
    );
    assert_eq!(before.1, "1000");
    let inside = enter(&ns);

    // Native on a0 (auto), generic on b0, in two workers' worth of UMEM.
    let (pool_a, ports_a) =
        open_worker_ports(&[("vnxt-a0".to_string(), 0)], &XdpConfig::default()).expect("open a0");
    let generic = XdpConfig {
        attach: AttachMode::Generic,
        ..XdpConfig::default()
    };
    let (pool_b, ports_b) =
        open_worker_ports(&[("vnxt-b0".to_string(), 1)], &generic).expect("open b0");
    assert_eq!(ports_a[0].attach_mode(), AttachMode::Native);
    assert_eq!(ports_b[0].attach_mode(), AttachMode::Generic);
    let a = ns.link_details("vnxt-a0");
    let b = ns.link_details("vnxt-b0");
    assert!(a.contains("prog/xdp") && !a.contains("xdpgeneric"), "{a}");
    assert!(b.contains("xdpgeneric"), "{b}");
    // The default policy (auto) opens without deferral...
    assert_eq!(ns.sysfs("vnxt-a0", "napi_defer_hard_irqs"), "0");
    assert_eq!(ns.sysfs("vnxt-a0", "gro_flush_timeout"), "0");
    // ...and its controller switches the deferral on through the shared guard.
    let guard = ports_a[0].napi().expect("NAPI settings applied");
    guard
        .set(NapiSettings::default())
        .expect("switch to deferral");
    assert_eq!(ns.sysfs("vnxt-a0", "napi_defer_hard_irqs"), "2");
    assert_eq!(ns.sysfs("vnxt-a0", "gro_flush_timeout"), "200000");
    drop(guard);

    drop(ports_a);
    drop(pool_a);
    drop(ports_b);
    drop(pool_b);
    drop(inside);

    for ifname in ["vnxt-a0", "vnxt-b0"] {
        let d = ns.link_details(ifname);
        assert!(no_xdp(&d), "XDP program left on {ifname}:\n{d}");
    }
    let after = (
        ns.sysfs("vnxt-a0", "napi_defer_hard_irqs"),
        ns.sysfs("vnxt-a0", "gro_flush_timeout"),
    );
    assert_eq!(after, before, "NAPI settings not restored");

    // And the interface is free again: a new worker can bind it.
    let _inside = enter(&ns);
    let (_pool, ports) =
        open_worker_ports(&[("vnxt-a0".to_string(), 0)], &XdpConfig::default()).expect("rebind");
    assert_eq!(ports.len(), 1);
}

#[test]
fn xdp_auto_attach_falls_back_to_generic() {
    let Some(ns) = privileged("xdp_auto_attach_falls_back_to_generic", "fallback") else {
        return;
    };
    // An interface kind without native XDP (veth has it): whichever this kernel has.
    let kind = ["dummy", "ifb", "bridge"].into_iter().find(|kind| {
        Command::new("ip")
            .args(["-n", &ns.name, "link", "add", "vnxt-d0", "type", kind])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let Some(kind) = kind else {
        eprintln!(
            "skipped: xdp_auto_attach_falls_back_to_generic needs a dummy, ifb or bridge interface"
        );
        return;
    };
    println!("interface without native XDP: {kind}");
    ns.ip(&["link", "set", "vnxt-d0", "up"]);
    ns.veth("vnxt-a0", "vnxt-a1");
    let _inside = enter(&ns);

    let native = XdpConfig {
        attach: AttachMode::Native,
        ..XdpConfig::default()
    };
    let e = open_worker_ports(&[("vnxt-d0".to_string(), 0)], &native).unwrap_err();
    assert!(matches!(e, XdpError::NativeUnsupported { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("interface vnxt-d0 does not support native XDP")
            && e.to_string().ends_with("; use attach mode auto or generic"),
        "{e}"
    );
    assert!(
        no_xdp(&ns.link_details("vnxt-d0")),
        "failed open left XDP behind"
    );

    // Auto: the non-XDP interface (first port, so libxdp's half-bound UMEM socket must be replaced)
    // falls back to generic, the veth after it stays native, on one shared UMEM.
    let ifaces = [("vnxt-d0".to_string(), 0), ("vnxt-a0".to_string(), 1)];
    let (mut pool, mut ports) =
        open_worker_ports(&ifaces, &XdpConfig::default()).expect("auto attach");
    for p in &ports {
        println!("{}: {}", p.ifname(), p.info().detail);
    }
    assert_eq!(ports[0].attach_mode(), AttachMode::Generic);
    assert!(ports[0].info().detail.contains("native XDP refused"));
    assert_eq!(ports[1].attach_mode(), AttachMode::Native);
    assert!(ns.link_details("vnxt-d0").contains("xdpgeneric"));

    let a1 = RawSock::open("vnxt-a1");
    a1.send(&frame(1, 100));
    let got = receive(&mut ports, 1, &mut pool, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].port, 1);
    // Out of the non-XDP interface (which drops it), and the frame still comes back.
    transmit(&mut ports, 0, &mut pool, &got);
    settle(&mut ports, &mut pool);
    drop(ports);
    drop(pool);

    // The other order: the fallback happens on a socket sharing the UMEM.
    let ifaces = [("vnxt-a0".to_string(), 0), ("vnxt-d0".to_string(), 1)];
    let (mut pool, mut ports) =
        open_worker_ports(&ifaces, &XdpConfig::default()).expect("auto attach, shared");
    assert_eq!(ports[0].attach_mode(), AttachMode::Native);
    assert_eq!(ports[1].attach_mode(), AttachMode::Generic);
    a1.send(&frame(2, 100));
    let got = receive(&mut ports, 0, &mut pool, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1);
    assert_eq!(seq_of(pool.bytes(&got[0])), 2);
    transmit(&mut ports, 1, &mut pool, &got);
    settle(&mut ports, &mut pool);
}

// ---------------------------------------------------------------------------------
// A tap with a virtio-net header: what a QEMU guest with default offloads hands over
// ---------------------------------------------------------------------------------

/// A tap device opened with `IFF_VNET_HDR`, as QEMU opens it; closed (and gone) on drop.
struct Tap {
    fd: OwnedFd,
}

impl Tap {
    fn open(name: &str) -> Self {
        let path = std::ffi::CString::new("/dev/net/tun").unwrap();
        // SAFETY: open(2) of a NUL-terminated path; the result is checked.
        let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        assert!(fd >= 0, "open /dev/net/tun: {}", io::Error::last_os_error());
        // SAFETY: a fresh descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // struct ifreq: 16-byte name, then the flags (short) in the union.
        let mut ifr = [0u8; 40];
        ifr[..name.len()].copy_from_slice(name.as_bytes());
        let flags = (libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR) as u16;
        ifr[16..18].copy_from_slice(&flags.to_ne_bytes());
        // SAFETY: TUNSETIFF reads and writes a struct ifreq, which `ifr` is large
        // enough to hold (40 bytes), alive for the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, ifr.as_mut_ptr()) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", io::Error::last_os_error());
        Self { fd }
    }

    /// Write one frame as a guest would: a 10-byte virtio-net header, then the frame.
    fn write_guest_frame(&self, vnet_hdr: [u8; 10], frame: &[u8]) {
        let mut buf = vnet_hdr.to_vec();
        buf.extend_from_slice(frame);
        // SAFETY: `buf` is a live buffer of `buf.len()` bytes the kernel only reads.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
        assert_eq!(
            n,
            buf.len() as isize,
            "write to tap: {}",
            io::Error::last_os_error()
        );
    }
}

/// A virtio-net header asking for checksum completion from `csum_start` (+16, TCP), and,
/// when `gso_size > 0`, TCPv4 segmentation.
fn vnet_hdr(csum_start: u16, hdr_len: u16, gso_size: u16) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[0] = 1; // VIRTIO_NET_HDR_F_NEEDS_CSUM
    h[1] = if gso_size > 0 { 1 } else { 0 }; // VIRTIO_NET_HDR_GSO_TCPV4
    h[2..4].copy_from_slice(&hdr_len.to_le_bytes());
    h[4..6].copy_from_slice(&gso_size.to_le_bytes());
    h[6..8].copy_from_slice(&csum_start.to_le_bytes());
    h[8..10].copy_from_slice(&16u16.to_le_bytes());
    h
}

/// An IPv4/TCP frame (timestamp option) with `payload` bytes and a partial checksum,
/// as a guest's stack leaves it for the device.
fn guest_tcp(payload: usize, seq: u32) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00];
    let total = 20 + 32 + payload;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0x12,
        0x34,
        0x40,
        0,
    ]);
    f.extend_from_slice(&[64, 6, 0, 0, 10, 0, 2, 15, 198, 18, 0, 1]);
    let c = vnet_core::wire::checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51]);
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 9, 0x80, 0x98, 0x01, 0xf6, 0, 0, 0, 0]); // CWR|PSH|ACK
    f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    f.extend((0..payload).map(|i| (i % 251) as u8));
    // Partial: the folded pseudo-header sum, as the guest's kernel writes it.
    let tcp_len = (32 + payload) as u32;
    let p = 0x0a00 + 0x020f + 0xc612 + 0x0001 + 6 + tcp_len;
    let p = vnet_core::wire::checksum::fold(p);
    f[50..52].copy_from_slice(&p.to_be_bytes());
    f
}

#[test]
fn xdp_tap_guest_super_frames_are_segmented_and_checksums_completed() {
    let test = "xdp_tap_guest_super_frames_are_segmented_and_checksums_completed";
    let Some(ns) = privileged(test, "tso") else {
        return;
    };
    let _inside = enter(&ns);
    let tap = Tap::open("vnxt-tap0");
    ns.ip(&["link", "set", "vnxt-tap0", "up"]);
    let (mut pool, mut ports) =
        open_worker_ports(&[("vnxt-tap0".to_string(), 0)], &XdpConfig::default())
            .expect("open the tap port");
    let detail = ports[0].info().detail;
    println!("tap: {detail}");
    assert!(detail.contains("multi_buffer=on"), "{detail}");

    // 1. A small frame with checksum offload: the kernel hands it over still partial,
    // and the completion step makes it exactly what the sender's stack would have sent.
    let small = guest_tcp(100, 1);
    tap.write_guest_frame(vnet_hdr(34, 0, 0), &small);
    let got = receive(&mut ports, 0, &mut pool, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "the small frame never arrived");
    let mut bytes = pool.bytes(&got[0]).to_vec();
    assert_eq!(
        bytes, small,
        "AF_XDP hands the frame over as the guest wrote it"
    );
    assert!(vnet_core::offload::complete_partial(&mut bytes));
    let sp = etherparse::SlicedPacket::from_ethernet(&bytes).unwrap();
    let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(tcp))) =
        (sp.net, sp.transport)
    else {
        panic!("not IPv4/TCP")
    };
    let th = tcp.to_header();
    assert_eq!(
        th.checksum,
        th.calc_checksum_ipv4(&ip.header().to_header(), tcp.payload())
            .unwrap()
    );
    pool.free(got[0].frame);

    // 2. A TSO super-frame of 20 000 bytes of payload (gso_size 1448): it arrives in
    // several UMEM frames and comes out as 14 valid segments, in order.
    let payload = 20_000usize;
    let sup = guest_tcp(payload, 1000);
    tap.write_guest_frame(vnet_hdr(34, 66, 1448), &sup);
    let want = payload.div_ceil(1448);
    let got = receive(&mut ports, 0, &mut pool, want, Duration::from_secs(5));
    let stats = ports[0].stats().offload;
    assert_eq!(got.len(), want, "segments missing; offload stats {stats:?}");
    assert_eq!((stats.superframes, stats.segments), (1, want as u64));
    let mut seq = 1000u32;
    let mut data = Vec::new();
    for (i, p) in got.iter().enumerate() {
        let b = pool.bytes(p);
        assert!(b.len() <= 14 + 1500, "segment {i} is {} bytes", b.len());
        let sp = etherparse::SlicedPacket::from_ethernet(b).unwrap();
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(tcp))) =
            (sp.net, sp.transport)
        else {
            panic!("segment {i} is not IPv4/TCP")
        };
        let iph = ip.header().to_header();
        assert_eq!(iph.header_checksum, iph.calc_header_checksum());
        assert_eq!(iph.identification, 0x1234u16.wrapping_add(i as u16));
        let th = tcp.to_header();
        assert_eq!(
            th.checksum,
            th.calc_checksum_ipv4(&iph, tcp.payload()).unwrap()
        );
        assert_eq!(th.sequence_number, seq);
        assert_eq!(th.psh, i + 1 == want, "PSH only on the last segment");
        assert_eq!(th.cwr, i == 0, "CWR only on the first segment");
        seq = seq.wrapping_add(tcp.payload().len() as u32);
        data.extend_from_slice(tcp.payload());
    }
    assert_eq!(
        data,
        &sup[66..],
        "the payload survives segmentation byte for byte"
    );
    for p in &got {
        pool.free(p.frame);
    }
    settle(&mut ports, &mut pool);
}
