//! Shared pieces of the live tests: the skip-or-fail rule for privileged tests, and the
//! real tools (ping, tcpdump, DHCP clients) run inside the test's namespaces.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use vnet_bench::topo::netns_exec;

/// True when the test can run (root, namespaces, AF_XDP). Otherwise: panic when
/// `VNET_REQUIRE_PRIVILEGED` is set (CI), else print "skipped" and return false.
pub fn privileged_or_skip(test: &str) -> bool {
    let root = vnet_bench::preflight::is_root();
    let netns_ok = root
        && Command::new("ip")
            .args(["netns", "list"])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if root && netns_ok && vnet_bench::preflight::has_af_xdp() {
        return true;
    }
    let why = "needs root, network namespaces and AF_XDP";
    if std::env::var_os("VNET_REQUIRE_PRIVILEGED").is_some() {
        panic!("{test}: {why}, and VNET_REQUIRE_PRIVILEGED is set");
    }
    eprintln!("skipped: {test}: {why}");
    false
}

/// `ping -c COUNT` from a namespace; true when every reply came.
pub fn ping(from_netns: &str, addr: &str, count: &str) -> bool {
    netns_exec(
        from_netns,
        "ping",
        &["-c", count, "-i", "0.2", "-W", "1", addr],
    )
    .is_ok()
}

/// Start `tcpdump` in a namespace printing up to `count` packets matching `filter`
/// within 6 s.
pub fn sniff(netns: &str, ifname: &str, count: &str, filter: &[&str]) -> Child {
    let child = Command::new("ip")
        .args([
            "netns", "exec", netns, "timeout", "6", "tcpdump", "-l", "-n", "-c", count, "-i",
            ifname,
        ])
        .args(filter)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump runs");
    std::thread::sleep(Duration::from_millis(700));
    child
}

/// What a sniffer printed.
pub fn sniffed(child: Child) -> String {
    let out = child.wait_with_output().expect("tcpdump ends");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh directory under the system temp dir.
    pub fn new(name: &str) -> Self {
        let p = std::env::temp_dir().join(format!("vnet-live-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write an executable shell script.
pub fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("script");
    Command::new("chmod")
        .arg("+x")
        .arg(path)
        .status()
        .expect("chmod");
}

/// The IPv4 address (without prefix) of an interface in a namespace, if any.
pub fn addr_of(netns: &str, ifname: &str) -> Option<String> {
    let out = netns_exec(netns, "ip", &["-4", "-o", "addr", "show", "dev", ifname]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(word.split('/').next()?.to_string())
}

/// A real TCP exchange: an iperf3 server (one test, then exit) in `server_netns`, a
/// 1-second client run from `client_netns`. True when the client completed.
pub fn tcp_exchange(server_netns: &str, server_addr: &str, client_netns: &str, port: u16) -> bool {
    let port_s = port.to_string();
    let mut server = Command::new("ip")
        .args([
            "netns",
            "exec",
            server_netns,
            "iperf3",
            "-s",
            "-1",
            "-p",
            &port_s,
            "-B",
            server_addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("iperf3 server runs");
    std::thread::sleep(Duration::from_millis(500));
    let ok = Command::new("ip")
        .args([
            "netns",
            "exec",
            client_netns,
            "timeout",
            "10",
            "iperf3",
            "-c",
            server_addr,
            "-p",
            &port_s,
            "-t",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let _ = server.kill();
    let _ = server.wait();
    ok
}

/// A process whose output lines (stdout and stderr, as they come) are watched.
pub struct Watched {
    child: Child,
    rx: mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Watched {
    /// Start `cmd` with its output piped to the watcher.
    pub fn spawn(mut cmd: Command) -> Watched {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("watched process starts");
        let (tx, rx) = mpsc::channel::<String>();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
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
        Watched {
            child,
            rx,
            log: Vec::new(),
        }
    }

    /// Start `args` in a namespace.
    pub fn in_netns(netns: &str, args: &[&str]) -> Watched {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", netns]).args(args);
        Watched::spawn(cmd)
    }

    /// Wait up to 15 s for a line containing `what`.
    pub fn wait_for(&mut self, what: &str) -> bool {
        self.wait_for_within(what, Duration::from_secs(15))
    }

    /// Wait up to `limit` for a line containing `what`.
    pub fn wait_for_within(&mut self, what: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(line) = self.rx.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(what);
                self.log.push(line);
                if hit {
                    return true;
                }
            }
        }
        false
    }

    /// Send `sig` (as `kill` spells it: "-TERM").
    pub fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    /// Its exit status if it exits within `limit`; otherwise it is killed and `None`.
    pub fn exit_within(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// Everything printed so far that was read.
    pub fn log(&self) -> String {
        self.log.join("\n")
    }

    /// Stop (SIGTERM) and return everything it printed.
    pub fn finish(mut self) -> String {
        self.signal("-TERM");
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(100));
        self.log.extend(self.rx.try_iter());
        self.log.join("\n")
    }
}

/// Namespaces whose name starts with `prefix` (what a test left behind).
pub fn namespaces_of(prefix: &str) -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}
