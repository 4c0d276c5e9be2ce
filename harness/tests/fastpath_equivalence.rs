//! The fast path repeats the core, frame for frame: the real XDP program (run with
//! `BPF_PROG_TEST_RUN`, nothing sent) against the real mode pipelines in memory.
//!
//! Each test builds a namespace of its own with veth pairs (the program's ports must be
//! real interfaces), loads the program there, and drives a mode whose offers are
//! installed through a real [`FastPathLink`]. For every frame the kernel takes
//! (`XDP_REDIRECT`), the core is given the same frame and must produce the same bytes on
//! the same egress port; frames the kernel leaves (`XDP_PASS`) are the core's. Then the
//! decisions change (a session expires, an address moves) and the kernel must stop taking
//! the flow; and the kernel's use, synced back, must keep a session alive exactly as the
//! core's own frames would.
//!
//! Without root a test prints `skipped: ...` and passes, unless
//! `VNET_REQUIRE_PRIVILEGED` is set (CI), where it fails with the reason.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use vnet_core::counters::WorkerCounters;
use vnet_core::engine::FastPathLink;
use vnet_core::fastpath::{FlowCache, Miss};
use vnet_core::frame::{FramePool, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::port::xdp::FastPath;
use vnet_core::time::Instant;
use vnet_modes::gateway::service_mac;
use vnet_modes::internal::InternalConfig;
use vnet_modes::nat::ForwardRule;
use vnet_modes::natmode::pipeline::ControlMsg;
use vnet_modes::natmode::{NatFlavor, NatModeConfig, NatSpec};
use vnet_modes::segment::SwitchedMode;

const XDP_PASS: u32 = 2;
const XDP_REDIRECT: u32 = 4;

/// A namespace with `n` veth pairs `p0..`; deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn create(test: &str, n: usize) -> Result<Self, String> {
        let name = format!("vnxfp-{test}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let ok = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run ip: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "ip {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        ok(&["netns", "add", &name])?;
        let ns = Self { name };
        for i in 0..n {
            let (p, q) = (format!("p{i}"), format!("q{i}"));
            ok(&[
                "-n", &ns.name, "link", "add", "name", &p, "type", "veth", "peer", "name", &q,
            ])?;
            ok(&["-n", &ns.name, "link", "set", "dev", &p, "up"])?;
            ok(&["-n", &ns.name, "link", "set", "dev", &q, "up"])?;
        }
        Ok(ns)
    }

    /// Run `f` on a thread inside the namespace.
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on a valid namespace fd, affecting only this thread.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("test thread")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// The namespace, or why the test cannot run (a failure under VNET_REQUIRE_PRIVILEGED).
fn netns_or_skip(test: &str, n: usize) -> Option<Netns> {
    // SAFETY: geteuid has no preconditions.
    let why = if unsafe { libc::geteuid() } != 0 {
        "needs root".to_string()
    } else {
        match Netns::create(test, n) {
            Ok(ns) => return Some(ns),
            Err(e) => e,
        }
    };
    if std::env::var_os("VNET_REQUIRE_PRIVILEGED").is_some() {
        panic!("{test}: {why}, and VNET_REQUIRE_PRIVILEGED is set");
    }
    eprintln!("skipped: {test}: {why}");
    None
}

fn ifindex(name: &str) -> u32 {
    let c = std::ffi::CString::new(name).unwrap();
    // SAFETY: NUL-terminated name alive for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    assert_ne!(i, 0, "no interface {name}");
    i
}

/// A mode, its fast path and the two ways a frame can go.
struct Rig<M: Pipeline> {
    mode: M,
    pool: FramePool,
    fp: Arc<FastPath>,
    link: FastPathLink,
    ifindex: Vec<u32>,
    counters: WorkerCounters,
}

impl<M: Pipeline> Rig<M> {
    fn new(mut mode: M, ports: usize) -> Self {
        let fp = Arc::new(FastPath::load(1024).expect("load the fast path"));
        let ifindex: Vec<u32> = (0..ports).map(|i| ifindex(&format!("p{i}"))).collect();
        for (id, &i) in ifindex.iter().enumerate() {
            fp.add_port(id as PortId, i, None, true).unwrap();
        }
        mode.fastpath_queue()
            .expect("the mode offers")
            .set_enabled(true);
        Self {
            mode,
            pool: FramePool::with_heap(256, 2048, 0),
            link: FastPathLink::new(fp.clone(), 1024, Duration::from_secs(1)),
            fp,
            ifindex,
            counters: WorkerCounters::new(ports),
        }
    }

    /// The core decides `frame` from `port` (and its offers are installed).
    fn core(&mut self, now: Instant, frame: &[u8], port: PortId) -> (Verdict, Vec<u8>) {
        let mut pkts = [self.pool.alloc_copy(frame, port).unwrap()];
        // As the worker does, before any mode sees the frame.
        vnet_core::offload::complete_partial(self.pool.bytes_mut(&pkts[0]));
        let mut v = [Verdict::Consumed];
        self.mode.process(now, &mut self.pool, &mut pkts, &mut v);
        if let Some(q) = self.mode.fastpath_queue() {
            self.link.apply(q, &self.pool, &pkts, &v);
        }
        let out = self.pool.bytes(&pkts[0]).to_vec();
        self.pool.free(pkts[0].frame);
        (v[0], out)
    }

    /// Timers at `now`, syncing the kernel's use first (as the worker does).
    fn timers(&mut self, now: Instant) {
        let ports: Vec<PortId> = (0..self.ifindex.len() as PortId).collect();
        let mode = &mut self.mode;
        self.link
            .sync(now, &ports, &self.counters, |s| mode.fastpath_seen(s));
        let mut out = Emitter::new();
        self.mode.poll(now, &mut self.pool, &mut out);
        for (p, _) in out.items() {
            self.pool.free(p.frame);
        }
        if let Some(q) = self.mode.fastpath_queue() {
            self.link.apply(q, &self.pool, &[], &[]);
        }
    }

    /// The kernel's action on `frame` from `port`, its output, and the port it went to.
    fn kernel(&mut self, frame: &[u8], port: PortId) -> (u32, Vec<u8>, Option<PortId>) {
        let before: Vec<u64> = (0..self.ifindex.len())
            .map(|p| self.fp.port_stats(p as PortId).tx)
            .collect();
        let (action, out) = self
            .fp
            .test_run(frame, self.ifindex[port as usize])
            .unwrap();
        let egress = (0..self.ifindex.len())
            .find(|&p| self.fp.port_stats(p as PortId).tx > before[p])
            .map(|p| p as PortId);
        (action, out, egress)
    }

    /// The kernel takes `frame` and does exactly what the core does with it.
    fn same(&mut self, now: Instant, frame: &[u8], port: PortId) -> Vec<u8> {
        let (action, kout, egress) = self.kernel(frame, port);
        assert_eq!(
            action,
            XDP_REDIRECT,
            "the fast path did not take the frame: port stats {:?}, table {:?}",
            self.fp.port_stats(port),
            self.link.stats()
        );
        let (v, cout) = self.core(now, frame, port);
        let Verdict::Tx(mask) = v else {
            panic!("the core did not forward what the kernel did: {v:?}")
        };
        assert_eq!(mask, PortMask::one(egress.expect("an egress port")));
        assert_eq!(kout, cout, "kernel and core wrote different frames");
        cout
    }
}

fn ipv4_udp(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    l4_frame(macs, src, dst, 17, &[], payload)
}

fn ipv4_tcp(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    l4_frame(macs, src, dst, 6, &[flags], payload)
}

/// Ethernet + IPv4 + UDP or TCP (flags given) with every checksum valid.
fn l4_frame(
    (dst_mac, src_mac): ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    proto: u8,
    tcp_flags: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    let l4_len = if proto == 6 { 20 } else { 8 } + payload.len();
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
    f.extend_from_slice(&((20 + l4_len) as u16).to_be_bytes());
    f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    f.extend_from_slice(&src.0.octets());
    f.extend_from_slice(&dst.0.octets());
    let c = csum(&f[14..34], 0);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    let l4 = f.len();
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    if proto == 6 {
        f.extend_from_slice(&[0, 0, 0x10, 0, 0, 0, 0x20, 0, 0x50, tcp_flags[0], 0xff, 0xff]);
        f.extend_from_slice(&[0, 0, 0, 0]);
    } else {
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(payload);
    let mut pseudo = 0u32;
    for w in [src.0.octets(), dst.0.octets()] {
        pseudo += u32::from(u16::from_be_bytes([w[0], w[1]]));
        pseudo += u32::from(u16::from_be_bytes([w[2], w[3]]));
    }
    pseudo += u32::from(proto) + l4_len as u32;
    let mut c = csum(&f[l4..], pseudo);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    let at = l4 + if proto == 6 { 16 } else { 6 };
    f[at..at + 2].copy_from_slice(&c.to_be_bytes());
    f
}

/// The frame as a sender with checksum offload hands it over: the UDP checksum field holds
/// only the folded pseudo-header sum (Ethernet + IPv4 without options).
fn partial_udp(full: &[u8]) -> Vec<u8> {
    let mut f = full.to_vec();
    let mut p = 0u32;
    for w in f[26..34].chunks(2) {
        p += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    p += 17 + u32::from(u16::from_be_bytes([f[38], f[39]]));
    let folded = !csum(&[], p);
    f[40..42].copy_from_slice(&folded.to_be_bytes());
    f
}

fn csum(data: &[u8], mut sum: u32) -> u16 {
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn arp_reply(sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);
const GW_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 1];
const G1: [u8; 6] = [0x08, 0, 0x27, 0, 0, 1];
const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

#[test]
fn nat_flows_on_the_fast_path_leave_exactly_as_from_the_core_and_stop_when_the_core_says() {
    let Some(ns) = netns_or_skip("nat", 2) else {
        return;
    };
    ns.run(|| {
        let udp_timeout = Duration::from_secs(120);
        let mut c = NatModeConfig::new(NatFlavor::PerVm, 1, EXT, GW);
        c.napt.max_sessions = 1024;
        c.napt.timeouts.udp = udp_timeout;
        // The kernel stamps entries with the real monotonic clock: so does the test,
        // starting one timeout minus 3 s in the past so that deadlines fall in the
        // next seconds of real time.
        let t0 = Instant::now() - udp_timeout + Duration::from_secs(3);
        let spec = NatSpec::new(c, 1, t0).unwrap();
        let mut rig = Rig::new(spec.build(0, 1, t0).unwrap(), 2);
        let (vm, uplink) = (0 as PortId, 1 as PortId);
        rig.timers(t0);
        rig.core(t0, &arp_reply(GW_MAC, GW, EXT), uplink);
        let gw = service_mac(Ipv4Addr::new(10, 0, 2, 2)).0;

        // UDP, both directions: the first two frames of each are the core's; the second
        // offers the flow (a flow of one frame never costs an entry).
        let out = ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), b"one");
        let (v, first) = rig.core(t0, &out, vm);
        assert_eq!(v, Verdict::Tx(PortMask::one(uplink)));
        let ext_port = u16::from_be_bytes([first[34], first[35]]);
        let our_mac: [u8; 6] = first[6..12].try_into().unwrap();
        let back = |p: &[u8]| ipv4_udp((our_mac, GW_MAC), (SERVER, 7), (EXT, ext_port), p);
        rig.core(t0, &back(b"r1"), uplink);
        let (action, _, _) = rig.kernel(&out, vm);
        assert_eq!(action, XDP_PASS, "one frame seen: not offered yet");
        rig.core(t0, &out, vm);
        rig.core(t0, &back(b"r2"), uplink);
        for i in 0..20u8 {
            rig.same(
                t0,
                &ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), &[i; 33]),
                vm,
            );
            let inbound = rig.same(t0, &back(&[i; 17]), uplink);
            assert_eq!(&inbound[..6], &G1, "to the guest");
        }
        // A partial checksum is completed, then translated, the same on both paths.
        for len in [1usize, 10, 501] {
            let full = ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), &vec![0x5a; len]);
            rig.same(t0, &partial_udp(&full), vm);
        }
        // A UDP checksum of zero ("none") stays zero on both paths.
        let mut none = ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), b"nocsum");
        none[40..42].copy_from_slice(&[0, 0]);
        let out = rig.same(t0, &none, vm);
        assert_eq!(&out[40..42], &[0, 0]);

        // TCP: handshake and FIN through the core, data on the fast path.
        let tcp = |f: u8, p: &[u8]| ipv4_tcp((gw, G1), (GUEST, 40000), (SERVER, 80), f, p);
        let (_, syn) = rig.core(t0, &tcp(0x02, b""), vm);
        let tport = u16::from_be_bytes([syn[34], syn[35]]);
        let tback = |f: u8, p: &[u8]| ipv4_tcp((our_mac, GW_MAC), (SERVER, 80), (EXT, tport), f, p);
        rig.core(t0, &tback(0x12, b""), uplink);
        rig.core(t0, &tcp(0x10, b""), vm);
        rig.core(t0, &tback(0x10, b"hello"), uplink);
        // Each direction's second established frame offers it.
        rig.core(t0, &tcp(0x18, b"first"), vm);
        rig.core(t0, &tcp(0x18, b"second"), vm);
        rig.core(t0, &tback(0x10, b"again"), uplink);
        for i in 0..10u8 {
            rig.same(t0, &tcp(0x18, &[i; 100]), vm);
            rig.same(t0, &tback(0x18, &[i; 1000]), uplink);
        }
        // A rule changed at run time (`controlvm natpf`): every entry goes, the core
        // decides the flow again, then offers it anew at its second packet.
        let rule = ForwardRule::parse_natpf("web,tcp,,8080,,80", 0, GUEST).unwrap();
        spec.control[0].send(ControlMsg::Add(rule)).unwrap();
        rig.timers(t0);
        let (action, _, _) = rig.kernel(&tcp(0x18, b"after"), vm);
        assert_eq!(action, XDP_PASS, "a rule change revokes every entry");
        // Seen before: the next packet of each direction through the core offers it.
        rig.core(t0, &tcp(0x18, b"again1"), vm);
        rig.same(t0, &tcp(0x18, b"again2"), vm);
        let udp = ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), b"again");
        assert_eq!(
            rig.kernel(&udp, vm).0,
            XDP_PASS,
            "the UDP flow's entries went too"
        );
        rig.core(t0, &udp, vm);
        rig.core(t0, &back(b"again"), uplink);
        rig.same(t0, &udp, vm);
        rig.same(t0, &back(b"again2"), uplink);
        let (action, _, _) = rig.kernel(&tcp(0x11, b""), vm);
        assert_eq!(action, XDP_PASS, "a FIN is the core's");
        // A TTL of 1 is the core's (it answers with ICMP).
        let mut ttl1 = tcp(0x18, b"x");
        ttl1[22] = 1;
        let c = csum(
            &{
                let mut h = ttl1[14..34].to_vec();
                h[10] = 0;
                h[11] = 0;
                h
            },
            0,
        );
        ttl1[24..26].copy_from_slice(&c.to_be_bytes());
        assert_eq!(rig.kernel(&ttl1, vm).0, XDP_PASS);

        // The kernel alone carries outbound UDP now: synced back, it keeps the session
        // alive past the deadline the core's own frames gave it (t0 + timeout, 3 s from
        // the start of the test), exactly as if the core had seen them.
        let deadline = t0 + udp_timeout;
        while Instant::now() < deadline + Duration::from_millis(200) {
            rig.kernel(&ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), b"k"), vm);
            std::thread::sleep(Duration::from_millis(100));
        }
        // The next hop's ARP entry is kept fresh (a change of its MAC revokes everything).
        rig.core(deadline, &arp_reply(GW_MAC, GW, EXT), uplink);
        rig.timers(deadline + Duration::from_secs(1));
        std::thread::sleep(Duration::from_secs(1));
        let last_out = Instant::now();
        rig.same(
            last_out,
            &ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), b"alive"),
            vm,
        );
        // Inbound UDP never refreshes (RFC 4787 REQ-6): an inbound frame on the fast path
        // 2.5 s after the last outbound one does not move the session's end.
        std::thread::sleep(Duration::from_millis(2500));
        rig.kernel(&back(b"in"), uplink);
        let later = last_out + udp_timeout + Duration::from_millis(1500);
        rig.core(later, &arp_reply(GW_MAC, GW, EXT), uplink);
        rig.timers(later);
        let (action, _, _) = rig.kernel(&back(b"late"), uplink);
        assert_eq!(
            action, XDP_PASS,
            "the session expired: the core decides again"
        );
        let (v, _) = rig.core(later, &back(b"late"), uplink);
        assert!(matches!(v, Verdict::Drop(_)), "the core filters it: {v:?}");
        assert_eq!(
            rig.kernel(&ipv4_udp((gw, G1), (GUEST, 5000), (SERVER, 7), b"x"), vm)
                .0,
            XDP_PASS
        );
        let s = rig.link.stats();
        assert!(s.installed >= 4 && s.removed >= 2, "{s:?}");
    });
}

#[test]
fn switched_flows_on_the_fast_path_match_the_core_and_follow_the_fdb() {
    let Some(ns) = netns_or_skip("l2", 3) else {
        return;
    };
    ns.run(|| {
        let now = Instant::now();
        let mode = SwitchedMode::internal(InternalConfig::new(3), now).unwrap();
        let mut rig = Rig::new(mode, 3);
        let (a, b) = ([0x02, 0, 0, 0, 0, 0xa], [0x02, 0, 0, 0, 0, 0xb]);
        let (ia, ib) = (
            Ipv4Addr::new(192, 168, 60, 1),
            Ipv4Addr::new(192, 168, 60, 2),
        );
        let ab = |p: &[u8]| ipv4_udp((b, a), (ia, 1), (ib, 2), p);
        let ba = |p: &[u8]| ipv4_udp((a, b), (ib, 2), (ia, 1), p);
        // Unknown destination: flooded by the core, never offered.
        let (v, _) = rig.core(now, &ab(b"1"), 0);
        assert_eq!(v, Verdict::Tx(PortMask(0b110)));
        assert_eq!(rig.kernel(&ab(b"1"), 0).0, XDP_PASS);
        rig.core(now, &ba(b"2"), 1);
        rig.core(now, &ab(b"3"), 0);
        for i in 0..10u8 {
            let out = rig.same(now, &ab(&[i; 40]), 0);
            assert_eq!(out, ab(&[i; 40]), "switched frames are not changed");
            rig.same(now, &ba(&[i; 40]), 1);
        }
        // b moves to port 2: the core learns it from b's next frame there and revokes;
        // a's frames to b are the core's again, then offered anew toward port 2.
        let (v, _) = rig.core(now, &ba(b"moved"), 2);
        assert_eq!(v, Verdict::Tx(PortMask::one(0)));
        assert_eq!(rig.kernel(&ab(b"x"), 0).0, XDP_PASS, "revoked on the move");
        let (v, _) = rig.core(now, &ab(b"x"), 0);
        assert_eq!(v, Verdict::Tx(PortMask::one(2)));
        let (_, _, egress) = rig.kernel(&ab(b"y"), 0);
        assert_eq!(egress, Some(2));
        // A frame from b on its old port with the old entry would have been wrong; the
        // entry (1, b, a) is gone too.
        assert_eq!(rig.kernel(&ba(b"old"), 1).0, XDP_PASS);
        // Multicast and ARP are always the core's.
        let mut mc = ab(b"m");
        mc[..6].copy_from_slice(&[0x01, 0, 0x5e, 0, 0, 1]);
        assert_eq!(rig.kernel(&mc, 0).0, XDP_PASS);
        assert_eq!(rig.kernel(&arp_reply(a, ia, ib), 0).0, XDP_PASS);
        // Partial checksums (a sender with checksum offload) are completed on both paths,
        // byte for byte the same, whatever the segment's length (odd ones too).
        for len in [0usize, 1, 2, 3, 7, 64, 333, 1400] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            let full = ab(&payload);
            let out = rig.same(now, &partial_udp(&full), 0);
            assert_eq!(
                out, full,
                "completed to the sender's own full checksum ({len})"
            );
        }
        assert_eq!(
            rig.fp.port_stats(0).csum_completed,
            8,
            "each completion counted"
        );
        // A full-size frame (the veths' 1500-byte MTU) is the fast path's; a super-frame
        // in one buffer (a tap's two-segment TSO frame, 2962 bytes) would be dropped at
        // the egress as longer than its MTU: it is the core's, counted as a super-frame.
        rig.same(now, &ab(&[5; 1472]), 0);
        let multi = Miss::ALL.iter().position(|m| *m == Miss::MultiBuf).unwrap();
        let before = rig.fp.port_stats(0).misses[multi];
        assert_eq!(rig.kernel(&ab(&[6; 2962 - 42]), 0).0, XDP_PASS);
        assert_eq!(rig.fp.port_stats(0).misses[multi], before + 1);
        // Aged out: the core's sweep revokes; a synced fast path refreshes a's entry but
        // not b's (b sends nothing through it any more).
        let later = now + Duration::from_secs(301);
        rig.timers(later);
        rig.timers(later + Duration::from_secs(1));
        assert_eq!(rig.kernel(&ab(b"z"), 0).0, XDP_PASS, "b aged out");
    });
}
