//! Real endpoint tools driven inside the harness's namespaces: DHCP clients, ping, iperf3.
//! Used by the main job; each helper returns what it observed, never panics.

use crate::topo::{netns_exec, Endpoint};
use anyhow::{anyhow, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(PathBuf);

impl Scratch {
    /// A fresh directory for this process.
    pub fn new(name: &str) -> Result<Scratch> {
        let p = std::env::temp_dir().join(format!("vnet-bench-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)?;
        Ok(Scratch(p))
    }
    /// A path inside.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Write the udhcpc script (address and default route) into `dir`; returns its path.
pub fn udhcpc_script(dir: &Scratch) -> Result<String> {
    let path = dir.join("udhcpc.sh");
    std::fs::write(
        &path,
        r#"#!/bin/sh
case "$1" in
  deconfig) ip -4 addr flush dev "$interface" ;;
  bound|renew) ip -4 addr flush dev "$interface"; ip addr add "$ip/${mask:-24}" dev "$interface";
               for r in $router; do ip route replace default via "$r" dev "$interface"; break; done ;;
esac
"#,
    )?;
    Command::new("chmod").arg("+x").arg(&path).status()?;
    Ok(path.display().to_string())
}

/// Lease an address with busybox udhcpc; returns it.
pub fn lease(vm: &Endpoint, script: &str) -> Result<String> {
    netns_exec(
        &vm.netns,
        "busybox",
        &[
            "udhcpc", "-n", "-q", "-t", "5", "-T", "1", "-i", &vm.ifname, "-s", script,
        ],
    )?;
    addr_of(&vm.netns, &vm.ifname).ok_or_else(|| anyhow!("{} got no address", vm.role))
}

/// The IPv4 address of an interface.
pub fn addr_of(netns: &str, ifname: &str) -> Option<String> {
    let out = netns_exec(netns, "ip", &["-4", "-o", "addr", "show", "dev", ifname]).ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)?;
    Some(word.split('/').next()?.to_string())
}

/// `ping -c N`; the summary lines when every reply came.
pub fn ping(netns: &str, addr: &str, count: u32) -> Option<String> {
    let out = netns_exec(
        netns,
        "ping",
        &["-c", &count.to_string(), "-i", "0.2", "-W", "1", addr],
    )
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Some(
        text.lines()
            .filter(|l| l.contains("packets transmitted") || l.starts_with("rtt"))
            .collect::<Vec<_>>()
            .join("; "),
    )
}

/// An iperf3 server for one test.
pub fn iperf_server(netns: &str, addr: &str, port: u16) -> Result<Child> {
    let c = Command::new("ip")
        .args([
            "netns",
            "exec",
            netns,
            "iperf3",
            "-s",
            "-1",
            "-B",
            addr,
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow!("could not start iperf3 ({e}); install iperf3"))?;
    std::thread::sleep(Duration::from_millis(400));
    Ok(c)
}

/// What an iperf3 server printed once it finished (killed after 3 s).
pub fn server_log(mut c: Child) -> String {
    for _ in 0..30 {
        if c.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = c.kill();
    c.wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
        .unwrap_or_default()
}

/// A TCP iperf3 client for `secs` seconds; the receiver's bitrate line when it worked.
pub fn iperf_client(netns: &str, addr: &str, port: u16, secs: u32) -> Option<String> {
    iperf(netns, addr, port, secs, false)
}

/// A UDP iperf3 client (10 Mbit/s) for `secs` seconds; the receiver's bitrate when it
/// worked.
pub fn iperf_udp_client(netns: &str, addr: &str, port: u16, secs: u32) -> Option<String> {
    iperf(netns, addr, port, secs, true)
}

fn iperf(netns: &str, addr: &str, port: u16, secs: u32, udp: bool) -> Option<String> {
    let (port, secs) = (port.to_string(), secs.to_string());
    let mut args = vec![
        "netns", "exec", netns, "timeout", "20", "iperf3", "-c", addr, "-p", &port, "-t", &secs,
    ];
    if udp {
        args.extend(["-u", "-b", "10M"]);
    }
    let out = Command::new("ip").args(&args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().find(|l| l.contains("receiver")).map(|l| {
        l.split_whitespace()
            .skip_while(|w| !w.ends_with("Bytes"))
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// Whether a path exists (for optional tools).
pub fn has_tool(path: &str) -> bool {
    Path::new(path).exists()
}
