//! A vhost-user port against a real frontend: DPDK's `virtio_user` PMD in `dpdk-testpmd`
//! (`--no-huge`, its memory shared through memfd), which needs no VM.
//!
//! testpmd forwards in `io` mode on its one port, so every frame the port writes into
//! the guest's receive ring comes back through the guest's transmit ring unchanged:
//! the test sends frames of every size from 60 to 1514 bytes and checks each returns
//! byte for byte, then kills testpmd, starts it again and checks the port took the new
//! connection (reset, memory table and rings set up again) and carries frames again.
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

/// testpmd with one `virtio_user` port on `sock`, io-forwarding it to itself; killed
/// on drop.
struct Testpmd {
    child: Child,
}

impl Testpmd {
    fn start(sock: &Path, prefix: &str) -> Self {
        let vdev = format!("net_virtio_user0,path={},queues=1", sock.display());
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
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dpdk-testpmd starts");
        Testpmd { child }
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        if let Some(i) = self.child.stdin.as_mut() {
            let _ = i.write_all(b"\n");
        }
        std::thread::sleep(Duration::from_millis(1500));
        let _ = self.child.kill();
        let _ = self.child.wait();
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
    while back < n && Instant::now() < deadline {
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
        }
        port.service(pool);
    }
    back
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

    let tp = Testpmd::start(&sock.0, &prefix);
    service_until(&mut port, &mut pool, "first connection", |p| p.running());
    warm_up(&mut port, &mut pool);
    let back = round_trip(&mut port, &mut pool, 2000, 0);
    assert_eq!(
        back,
        2000,
        "every frame came back: {:?}",
        port.vhost_stats()
    );
    let s = port.vhost_stats();
    assert_eq!(s.connects, 1);
    assert_eq!(
        s.chain_faults, [0; 5],
        "a well-behaved frontend's chains are all accepted"
    );

    // The frontend goes away and comes back (a QEMU restart).
    drop(tp);
    service_until(&mut port, &mut pool, "disconnect seen", |p| {
        p.vhost_stats().disconnects >= 1
    });
    assert!(!port.running());
    let mut stdin_holder = Testpmd::start(&sock.0, &prefix);
    service_until(&mut port, &mut pool, "second connection", |p| p.running());
    warm_up(&mut port, &mut pool);
    let back = round_trip(&mut port, &mut pool, 500, 1_000_000);
    assert_eq!(
        back,
        500,
        "frames flow after the reconnect: {:?}",
        port.vhost_stats()
    );
    assert_eq!(port.vhost_stats().connects, 2);
    if let Some(i) = stdin_holder.child.stdin.as_mut() {
        let _ = i.write_all(b"\n");
    }
    drop(stdin_holder);
    service_until(&mut port, &mut pool, "second disconnect", |p| {
        p.vhost_stats().disconnects >= 2
    });
    assert_eq!(
        pool.free_count(),
        free_at_start,
        "every frame is back in the pool"
    );
}
