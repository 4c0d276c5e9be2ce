//! The veth namespaces on the other side of the guests (host, inet): iperf3 servers and
//! clients with JSON totals, ping, a DNS server, addresses. Same observations as
//! [`super::Guest`]'s, so a check reads the same either way.

use super::vm::{remote_host, Transfer};
use crate::topo::netns_exec;
use anyhow::{anyhow, Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A process in a namespace, killed on drop.
#[derive(Debug)]
pub struct Background(Child);

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An iperf3 server for one test in `netns`, bound to `addr:port`; drop it or read it
/// with [`served`].
///
/// # Errors
/// When iperf3 cannot start.
pub fn serve(netns: &str, addr: &str, port: u16) -> Result<Background> {
    let child = Command::new("ip")
        .args([
            "netns", "exec", netns, "iperf3", "-s", "-1", "-J", "-B", addr, "-p",
        ])
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("could not start iperf3; install iperf3")?;
    std::thread::sleep(Duration::from_millis(400));
    Ok(Background(child))
}

/// What a server received and from whom, once its test ended (it is stopped after 5 s).
///
/// # Errors
/// When it saw no complete test.
pub fn served(mut server: Background) -> Result<(Transfer, String)> {
    for _ in 0..50 {
        if server.0.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = server.0.kill();
    let mut out = String::new();
    if let Some(mut s) = server.0.stdout.take() {
        use std::io::Read;
        let _ = s.read_to_string(&mut out);
    }
    let t = Transfer::from_iperf_json(&out)?;
    Ok((t, remote_host(&out)))
}

/// An iperf3 client in `netns`: `bytes` to `addr:port` (or from it when `reverse`).
///
/// # Errors
/// When iperf3 fails or its totals are missing.
pub fn iperf(netns: &str, addr: &str, port: u16, bytes: u64, reverse: bool) -> Result<Transfer> {
    let (p, n) = (port.to_string(), bytes.to_string());
    let mut args = vec![
        "netns",
        "exec",
        netns,
        "timeout",
        "40",
        "iperf3",
        "-J",
        "-c",
        addr,
        "-p",
        &p,
        "-n",
        &n,
        "--connect-timeout",
        "3000",
    ];
    if reverse {
        args.push("-R");
    }
    let l = bytes.to_string();
    if bytes < 131072 {
        args.extend(["-l", &l]);
    }
    let out = Command::new("ip").args(&args).output()?;
    Transfer::from_iperf_json(&String::from_utf8_lossy(&out.stdout))
        .with_context(|| format!("iperf3 from {netns} to {addr}:{port}"))
}

/// Whether a TCP connect from `netns` to `addr:port` succeeds within 2 s.
pub fn connects(netns: &str, addr: &str, port: u16) -> bool {
    Command::new("ip")
        .args([
            "netns", "exec", netns, "timeout", "3", "busybox", "nc", "-w", "2", addr,
        ])
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `ping -c COUNT` from a namespace; the rtt line when every reply came.
pub fn ping(netns: &str, addr: &str, count: u32) -> Option<String> {
    crate::scenario::ping(netns, addr, count)
}

/// Give the only interface of an endpoint namespace exactly this address.
///
/// # Errors
/// When `ip` fails.
pub fn readdress(netns: &str, ifname: &str, cidr: &str) -> Result<()> {
    netns_exec(netns, "ip", &["-4", "addr", "flush", "dev", ifname])?;
    netns_exec(netns, "ip", &["addr", "add", cidr, "dev", ifname])?;
    Ok(())
}

/// dnsmasq in `netns` answering `NAME -> ADDR` on `listen` (no upstream, no files).
///
/// # Errors
/// When dnsmasq cannot start.
pub fn dns_server(netns: &str, listen: &str, name: &str, addr: &str) -> Result<Background> {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "dnsmasq",
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
        ])
        .arg(format!("--listen-address={listen}"))
        .arg("--bind-interfaces")
        .arg(format!("--address=/{name}/{addr}"))
        .arg("--pid-file=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow!("could not start dnsmasq ({e}); install dnsmasq-base"))?;
    std::thread::sleep(Duration::from_millis(300));
    Ok(Background(child))
}
