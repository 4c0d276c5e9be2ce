//! The main job (`vnet-bench [--mode MODE]`): build the embedded default topology, run
//! the mode on it, show that it works, print a summary, tear everything down.
//!
//! With AF_XDP (root): namespaces `vm1` and `vm2` joined to a dataplane namespace by veth
//! pairs, `vnet-bench run` started inside the dataplane namespace, the real `ping` of
//! the guests' Linux stacks across it. Without privileges: the same mode on in-memory
//! ports, driven step by step in this process.

use crate::cli::{BackendChoice, ModeName};
use crate::preflight;
use crate::topo::{netns_exec, Topology};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};
use vnet_core::counters::CounterSet;
use vnet_core::engine::{HandoffRx, HandoffTx, Worker, WorkerConfig};
use vnet_core::frame::FramePool;
use vnet_core::port::mem::mem_pair;
use vnet_core::port::Port;
use vnet_core::time::Instant;
use vnet_modes::internal::{InternalConfig, InternalMode};

/// Addresses of the embedded Internal topology.
pub const INTERNAL_VM1: &str = "192.168.60.11";
/// Addresses of the embedded Internal topology.
pub const INTERNAL_VM2: &str = "192.168.60.12";

/// Run the main job.
pub fn main_job(mode: ModeName, backend: BackendChoice) -> Result<()> {
    if mode != ModeName::Internal {
        bail!(
            "the main job for mode {} is not implemented in this build yet; try `vnet-bench --mode internal`",
            mode.as_str()
        );
    }
    let use_xdp = match backend {
        BackendChoice::Mem => false,
        BackendChoice::Xdp => {
            preflight::require_root("vnet-bench --backend xdp")?;
            preflight::require_af_xdp()?;
            true
        }
        BackendChoice::Auto => preflight::is_root() && preflight::has_af_xdp(),
    };
    if use_xdp {
        internal_live()
    } else {
        internal_mem()
    }
}

/// The Internal mode on AF_XDP in the harness's own namespaces, proven with `ping`.
fn internal_live() -> Result<()> {
    let prefix = format!("vm{}", std::process::id() % 10000);
    println!("main job: mode internal, backend xdp, topology {prefix}-{{dp,vm1,vm2}}");
    let topo = Topology::build(
        &prefix,
        &[
            ("vm1", Some(&format!("{INTERNAL_VM1}/24"))),
            ("vm2", Some(&format!("{INTERNAL_VM2}/24"))),
        ],
    )?;
    let vm1 = topo.endpoint("vm1").clone();
    let vm2 = topo.endpoint("vm2").clone();
    let mut dp = Dataplane::start(
        topo.dp_netns(),
        &[
            "run",
            "--mode",
            "internal",
            "--vm",
            &vm1.dp_ifname,
            "--vm",
            &vm2.dp_ifname,
            "--stats-interval",
            "0",
        ],
    )?;
    let result = (|| -> Result<()> {
        for (from, to, addr) in [(&vm1, &vm2, INTERNAL_VM2), (&vm2, &vm1, INTERNAL_VM1)] {
            let out = netns_exec(
                &from.netns,
                "ping",
                &["-c", "5", "-i", "0.2", "-W", "2", addr],
            )
            .with_context(|| {
                format!(
                    "{} could not ping {} across the dataplane",
                    from.role, to.role
                )
            })?;
            let text = String::from_utf8_lossy(&out.stdout);
            let summary = text
                .lines()
                .filter(|l| l.contains("packets transmitted") || l.starts_with("rtt"))
                .collect::<Vec<_>>()
                .join("; ");
            println!("  {} -> {} ({addr}): {summary}", from.role, to.role);
        }
        Ok(())
    })();
    let log = dp.stop()?;
    println!("dataplane output:\n{log}");
    result?;
    println!("main job: internal mode forwards between vm1 and vm2 (VM1 <-> VM2: +)");
    drop(topo);
    Ok(())
}

/// The Internal mode over in-memory ports: two endpoints exchange frames through it.
fn internal_mem() -> Result<()> {
    println!("main job: mode internal, backend mem (run as root for the AF_XDP backend)");
    let (p0, vm1) = mem_pair("vm1", 0, 1024);
    let (p1, vm2) = mem_pair("vm2", 1, 1024);
    let counters = CounterSet::new(1, 2);
    let mut worker = Worker::new(
        0,
        vec![
            (0, Box::new(p0) as Box<dyn Port>),
            (1, Box::new(p1) as Box<dyn Port>),
        ],
        &[0, 0],
        FramePool::with_heap(4096, 2048, 256),
        InternalMode::internal(InternalConfig::new(2), Instant::ZERO).expect("internal mode"),
        counters.worker(0),
        (HandoffTx::none(), HandoffRx::none()),
        WorkerConfig::default(),
    );
    let mac1 = [0x02, 0x76, 0x6e, 0, 0, 1];
    let mac2 = [0x02, 0x76, 0x6e, 0, 0, 2];
    let frame = |dst: [u8; 6], src: [u8; 6], seq: u32| {
        let mut f = vec![0u8; 64];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x88, 0xb5]);
        f[14..18].copy_from_slice(&seq.to_be_bytes());
        f
    };
    // vm2 announces itself with a broadcast, then vm1 and vm2 exchange unicast frames.
    vm2.send(&frame([0xff; 6], mac2, 0));
    worker.run_once(Instant::from_secs(1));
    let flooded = vm1.drain().len();
    let n = 200_000u32;
    let start = StdInstant::now();
    let mut delivered = 0usize;
    let mut buf = [0u8; 2048];
    for seq in 0..n {
        vm1.send(&frame(mac2, mac1, seq));
        if seq % 64 == 63 {
            worker.run_once(Instant::from_secs(1));
            while vm2.recv_into(&mut buf).is_some() {
                delivered += 1;
            }
        }
    }
    worker.run_once(Instant::from_secs(1));
    while vm2.recv_into(&mut buf).is_some() {
        delivered += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "  vm2 broadcast reached vm1: {}",
        if flooded == 1 { "yes" } else { "NO" }
    );
    println!(
        "  vm1 -> vm2: {delivered}/{n} frames delivered, {:.2} Mpps through the in-memory ports (copy in and out included)",
        delivered as f64 / secs / 1e6
    );
    print!(
        "{}",
        crate::stats::format_counters(&["vm1".into(), "vm2".into()], &counters.snapshot())
    );
    if flooded != 1 || delivered != n as usize {
        bail!("internal mode lost frames in memory ({delivered}/{n}); this is a bug, please report it");
    }
    println!("main job: internal mode forwards between vm1 and vm2 (VM1 <-> VM2: +)");
    Ok(())
}

/// A `vnet-bench run` child process inside a namespace.
pub struct Dataplane {
    child: Child,
    lines: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Dataplane {
    /// Start `vnet-bench ARGS` (this very binary) in `netns` and wait until it forwards.
    pub fn start(netns: &str, args: &[&str]) -> Result<Dataplane> {
        let exe = std::env::current_exe().context("cannot find the vnet-bench binary")?;
        Self::start_exe(&exe, netns, args)
    }

    /// Start the `vnet-bench` binary at `exe` with `args` in `netns` and wait until it
    /// forwards (its startup line says so).
    pub fn start_exe(
        exe: impl AsRef<std::path::Path>,
        netns: &str,
        args: &[&str],
    ) -> Result<Dataplane> {
        let exe = exe.as_ref();
        let mut child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(exe)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("could not start the dataplane")?;
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            BufReader::new(out)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx.send(l)))
        });
        std::thread::spawn(move || {
            BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .for_each(|l| drop(tx2.send(l)))
        });
        let mut dp = Dataplane {
            child,
            lines: rx,
            log: Vec::new(),
        };
        let deadline = StdInstant::now() + Duration::from_secs(20);
        loop {
            match dp.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let ready = line.contains("Ctrl-C to stop");
                    dp.log.push(line);
                    if ready {
                        return Ok(dp);
                    }
                }
                Err(_) => {
                    if let Some(status) = dp.child.try_wait()? {
                        bail!(
                            "the dataplane exited ({status}) before forwarding: {}",
                            dp.log.join(" | ")
                        );
                    }
                    if StdInstant::now() > deadline {
                        let _ = dp.child.kill();
                        bail!(
                            "the dataplane did not start within 20 s: {}",
                            dp.log.join(" | ")
                        );
                    }
                }
            }
        }
    }

    /// Everything printed so far.
    pub fn log_so_far(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        self.log.join("\n")
    }

    /// Stop with SIGINT (as Ctrl-C would), wait, and return everything it printed.
    pub fn stop(&mut self) -> Result<String> {
        // SAFETY: kill(2) on our own child's pid. `ip netns exec` execs in place, so the
        // pid is the dataplane itself.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = StdInstant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait()? {
                break s;
            }
            if StdInstant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait()?;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        if !status.success() {
            bail!("the dataplane failed ({status}): {}", self.log.join("\n"));
        }
        Ok(self.log.join("\n"))
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
