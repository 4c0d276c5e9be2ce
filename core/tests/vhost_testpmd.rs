//! A vhost-user port against a real frontend: DPDK's `virtio_user` PMD in `dpdk-testpmd`
//! (`--no-huge`, its memory shared through memfd), which needs no VM.
//!
//! testpmd forwards in `io` mode on its one port, so every frame the port writes into
//! the guest's receive ring comes back through the guest's transmit ring unchanged:
//! the test sends frames of every size from 60 to 1514 bytes and checks each returns
//! byte for byte (any frame missing must be one testpmd itself reports dropped), then
//! stops testpmd, starts it again and checks the port took the new connection (reset,
//! memory table and rings set up again) and carries frames again.
//!
//! Needs `dpdk-testpmd` (Debian: dpdk-dev); without it the test prints `skipped: ...`
//! and passes, unless `VNET_REQUIRE_PRIVILEGED` is set (CI), where it fails.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vnet_core::frame::FramePool;
use vnet_core::port::vhost::{Role, VhostUserPort};
use vnet_core::port::{Burst, Port};

fn testpmd_or_skip(test: &str) -> bool {
    let found = Command::new("dpdk-testpmd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if found {
        return true;
    }
    let why = "needs dpdk-testpmd (apt-get install dpdk-dev)";
    if std::env::var_os("VNET_REQUIRE_PRIVILEGED").is_some() {
        panic!("{test}: {why}, and VNET_REQUIRE_PRIVILEGED is set");
    }
    eprintln!("skipped: {test}: {why}");
    false
}

/// testpmd with one `virtio_user` port on `sock`, io-forwarding it to itself; its
/// output in `log`; killed on drop.
struct Testpmd {
    child: Child,
    log: PathBuf,
}

impl Testpmd {
    /// `server`: testpmd listens at `sock` (`server=1`) and the port connects to it.
    fn start_as(sock: &Path, prefix: &str, server: bool) -> Self {
        let log = std::env::temp_dir().join(format!("{prefix}-testpmd.log"));
        let vdev = format!(
            "net_virtio_user0,path={},queues=1,server={}",
            sock.display(),
            u8::from(server)
        );
        let child = Command::new("dpdk-testpmd")
            .args([
                "--no-huge",
                "-m",
                "512",
                "--no-shconf",
                "--no-pci",
                "-l",
                "0,1",
            ])
            .args(["--file-prefix", prefix, "--vdev", &vdev, "--"])
            .args([
                "--forward-mode=io",
                "--port-topology=loop",
                "--total-num-mbufs=8192",
            ])
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(&log).expect("testpmd's log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("dpdk-testpmd starts");
        Testpmd { child, log }
    }

    /// Ask testpmd to quit (Enter), serving the port meanwhile (its shutdown talks to
    /// the device), and read the frames its io forwarding dropped on transmit (its
    /// transmit ring, our receive side, was full): its final `TX-dropped`.
    fn quit(mut self, port: &mut VhostUserPort, pool: &mut FramePool, disconnects: u64) -> u64 {
        if let Some(i) = self.child.stdin.as_mut() {
            let _ = i.write_all(b"\n");
        }
        service_until(port, pool, "testpmd quits", |p| {
            p.vhost_stats().disconnects >= disconnects
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let total = text
            .split("Accumulated forward statistics")
            .nth(1)
            .unwrap_or("");
        total
            .split_whitespace()
            .skip_while(|w| *w != "TX-dropped:")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("testpmd printed no TX-dropped: {text}"))
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A socket path of our own, removed on drop.
struct Sock(PathBuf);

impl Drop for Sock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An Ethernet frame of `len` bytes (local experimental EtherType) carrying `seq`.
fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x02]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_add(i) as u8;
    }
    f
}

fn service_until(
    port: &mut VhostUserPort,
    pool: &mut FramePool,
    what: &str,
    ok: impl Fn(&VhostUserPort) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ok(port) {
        assert!(
            Instant::now() < deadline,
            "{what}: timed out; {:?}",
            port.info()
        );
        port.poll_control();
        let mut b = Burst::new();
        port.rx_burst(pool, &mut b);
        for p in b.as_slice() {
            pool.free(p.frame);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Wait until the frontend forwards: its driver starts its rings (and may restart
/// them, dropping what was written before) before it polls them; a probe a
/// millisecond until one comes back.
fn warm_up(port: &mut VhostUserPort, pool: &mut FramePool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the frontend never forwarded a frame"
        );
        let p = pool
            .alloc_copy(&frame(u32::MAX, 60), 0)
            .expect("pool has frames");
        if port.tx_burst(pool, &[p]) == 0 {
            pool.free(p.frame);
        }
        std::thread::sleep(Duration::from_millis(1));
        let mut b = Burst::new();
        port.rx_burst(pool, &mut b);
        port.service(pool);
        let n = b.len();
        for p in b.as_slice() {
            pool.free(p.frame);
        }
        if n > 0 {
            break;
        }
    }
    // Probes still in flight come back within a few milliseconds.
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        let mut b = Burst::new();
        port.rx_burst(pool, &mut b);
        for p in b.as_slice() {
            pool.free(p.frame);
        }
    }
}

/// Send `n` frames of sizes 60..=1514 through the guest and back; returns how many
/// came back intact. Every frame that returns must be one that was sent, unchanged.
fn round_trip(port: &mut VhostUserPort, pool: &mut FramePool, n: u32, base: u32) -> u32 {
    let mut sent: HashMap<u32, Vec<u8>> = HashMap::new();
    let mut next = 0u32;
    let mut back = 0u32;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut progress = Instant::now();
    while back < n && Instant::now() < deadline {
        // Everything sent and nothing back for a while: the rest is lost.
        if next == n && progress.elapsed() > Duration::from_secs(2) {
            break;
        }
        if next < n {
            let seq = base + next;
            let f = frame(seq, 60 + (next as usize * 37) % (1514 - 60 + 1));
            let p = pool.alloc_copy(&f, 0).expect("pool has frames");
            if port.tx_burst(pool, &[p]) == 1 {
                sent.insert(seq, f);
                next += 1;
            } else {
                pool.free(p.frame);
            }
        }
        let mut b = Burst::new();
        port.rx_burst(pool, &mut b);
        for p in b.as_slice() {
            let got = pool.bytes(p).to_vec();
            pool.free(p.frame);
            assert!(got.len() >= 18, "a {}-byte frame came back", got.len());
            let seq = u32::from_be_bytes(got[14..18].try_into().unwrap());
            let want = sent
                .remove(&seq)
                .unwrap_or_else(|| panic!("frame {seq} came back but was not sent (or twice)"));
            assert_eq!(got, want, "frame {seq} came back changed");
            back += 1;
            progress = Instant::now();
        }
        port.service(pool);
    }
    back
}

/// Session number `nth` with a new testpmd (`server`: it listens): wait until the
/// port runs, round-trip `n` frames, stop testpmd. Every frame that does not come back
/// must be one testpmd reports it dropped itself (on this 2-core machine its transmit
/// ring, our receive side, may overflow while the test thread is descheduled); any
/// other loss is the port's.
#[allow(clippy::too_many_arguments)]
fn session(
    port: &mut VhostUserPort,
    pool: &mut FramePool,
    sock: &Path,
    prefix: &str,
    server: bool,
    n: u32,
    nth: u64,
) {
    let tp = Testpmd::start_as(sock, prefix, server);
    service_until(port, pool, &format!("connection {nth}"), |p| p.running());
    warm_up(port, pool);
    let back = round_trip(port, pool, n, nth as u32 * 1_000_000);
    assert_eq!(port.vhost_stats().connects, nth);
    let dropped = tp.quit(port, pool, nth);
    assert!(
        back >= n - n / 20 && n - back <= dropped as u32,
        "session {nth}: {back} of {n} frames came back and testpmd dropped {dropped}: {:?}",
        port.vhost_stats()
    );
}

#[test]
fn testpmd_virtio_user_round_trips_frames_and_reconnects() {
    if !testpmd_or_skip("testpmd_virtio_user_round_trips_frames_and_reconnects") {
        return;
    }
    let sock = Sock(std::env::temp_dir().join(format!("vnet-vhost-{}.sock", std::process::id())));
    let mut port = VhostUserPort::new(0, &sock.0, Role::Server, 1500).expect("socket binds");
    let mut pool = FramePool::with_heap(4096, 2048, 0);
    let free_at_start = pool.free_count();
    let prefix = format!("vnvh{}", std::process::id());

    // A first session, then the frontend goes away (a QEMU shutdown) and comes back (a
    // restart): the device is set up again and carries frames again.
    session(&mut port, &mut pool, &sock.0, &prefix, false, 2000, 1);
    assert_eq!(
        port.vhost_stats().chain_faults,
        [0; 5],
        "a well-behaved frontend's chains are all accepted"
    );
    assert!(!port.running());
    session(&mut port, &mut pool, &sock.0, &prefix, false, 500, 2);
    assert_eq!(
        pool.free_count(),
        free_at_start,
        "every frame is back in the pool"
    );
}

/// The other role: testpmd listens (`server=1`, as QEMU with `server=on`) and the port
/// (`vhost-user-client:PATH`) connects to it, and again after testpmd restarts.
#[test]
fn testpmd_as_server_takes_the_port_as_client_and_again_after_a_restart() {
    if !testpmd_or_skip("testpmd_as_server_takes_the_port_as_client_and_again_after_a_restart") {
        return;
    }
    let sock = Sock(std::env::temp_dir().join(format!("vnet-vhostc-{}.sock", std::process::id())));
    let prefix = format!("vnvc{}", std::process::id());
    let mut pool = FramePool::with_heap(4096, 2048, 0);
    // testpmd creates its socket at start; the port retries until it can connect.
    let mut port = VhostUserPort::new(0, &sock.0, Role::Client, 1500).expect("a client port");
    session(&mut port, &mut pool, &sock.0, &prefix, true, 500, 1);
    session(&mut port, &mut pool, &sock.0, &prefix, true, 500, 2);
}
