//! Byte-exact TCP transfers between a guest and a namespace (or two guests), with busybox
//! `nc` on both ends: the sender sends a file of random bytes and half-closes; the
//! receiver writes what arrives to a file until the sender's FIN; the receiver's byte
//! count and MD5 must equal the sender's. (iperf3's `-n` totals are taken when the client
//! stops sending, before the last bytes are read, so they undercount; they are not used
//! to check bytes.)
//!
//! Either end may open the connection: the listener listens on `port`, the connecting
//! end reaches it at `addr:dport` (they differ through a port forward). A receiver's
//! stdin is a FIFO nobody writes (so `nc` never half-closes first); every process is
//! bounded by a timeout.

use super::vm::Guest;
use crate::topo::netns_exec;
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::time::{Duration, Instant};

/// One end of a transfer.
#[derive(Debug, Clone, Copy)]
pub enum End<'a> {
    /// A QEMU guest (files in its /tmp).
    Guest(&'a Guest),
    /// A namespace, with a scratch folder of its own.
    Netns(&'a str, &'a Path),
}

/// What a transfer moved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moved {
    /// Bytes the receiver got (equal to what was sent, with the same MD5).
    pub bytes: u64,
    /// Wall time of the connecting end, seconds.
    pub secs: f64,
}

impl Moved {
    /// The rate in Mbit/s over the connecting end's wall time.
    pub fn mbits(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.secs.max(1e-6) / 1e6
    }
}

/// Which end opens the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opener {
    /// The sender connects; the receiver listens.
    Sender,
    /// The receiver connects; the sender listens.
    Receiver,
}

const LIMIT: u64 = 60;

impl End<'_> {
    fn sh(&self, cmd: &str, secs: u64) -> Result<String> {
        match self {
            End::Guest(g) => g.sh_ok(cmd, secs),
            End::Netns(ns, _) => {
                let out = netns_exec(ns, "timeout", &[&secs.to_string(), "sh", "-c", cmd])?;
                Ok(String::from_utf8_lossy(&out.stdout).to_string())
            }
        }
    }

    fn file(&self, name: &str) -> String {
        match self {
            End::Guest(_) => format!("/tmp/{name}"),
            End::Netns(_, dir) => dir.join(name).display().to_string(),
        }
    }

    /// A busybox applet as this end calls it.
    fn bb(&self, applet: &str) -> String {
        match self {
            End::Guest(_) => applet.to_string(),
            End::Netns(..) => format!("busybox {applet}"),
        }
    }

    fn nc(&self) -> String {
        self.bb("nc")
    }

    /// Start `cmd` in the background; its pid is written to `pidfile`.
    fn spawn(&self, cmd: &str, pidfile: &str) -> Result<()> {
        self.sh(
            &format!("timeout {LIMIT} {cmd} 2>/dev/null & echo $! >{pidfile}"),
            10,
        )
        .map(drop)
    }

    fn wait_listening(&self, port: u16) -> Result<()> {
        self.sh(
            &format!(
                "i=0; while ! {} -ltn | grep -q ':{port} '; do i=$((i+1)); [ $i -gt 50 ] && exit 1; sleep 0.1; done",
                self.bb("netstat")
            ),
            10,
        )
        .with_context(|| format!("nothing listens on port {port}"))
        .map(drop)
    }

    fn wait_gone(&self, pidfile: &str, secs: u64) -> Result<()> {
        self.sh(
            &format!("i=0; while kill -0 $(cat {pidfile}) 2>/dev/null; do i=$((i+1)); [ $i -gt {} ] && exit 1; sleep 0.1; done", secs * 10),
            secs + 5,
        )
        .map(drop)
    }

    fn kill(&self, pidfile: &str) {
        let _ = self.sh(&format!("kill $(cat {pidfile}) 2>/dev/null; true"), 5);
    }

    /// Size and MD5 of a file.
    fn digest(&self, path: &str) -> Result<(u64, String)> {
        let out = self.sh(&format!("wc -c <{path}; md5sum {path}"), 20)?;
        let mut words = out.split_whitespace();
        let n = words
            .next()
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| anyhow!("no size for {path}: {out}"))?;
        let md5 = words.next().unwrap_or_default().to_string();
        Ok((n, md5))
    }
}

/// Move `bytes` random bytes from `sender` to `receiver` over one TCP connection.
///
/// # Errors
/// When the connection fails, times out, or the receiver got other bytes than were sent
/// (the sentence says how many of how many).
pub fn tcp(
    sender: End<'_>,
    receiver: End<'_>,
    opener: Opener,
    (addr, dport): (&str, u16),
    port: u16,
    bytes: u64,
) -> Result<Moved> {
    let blob = sender.file(&format!("blob-{port}"));
    let recv = receiver.file(&format!("recv-{port}"));
    let hold = receiver.file("hold");
    sender.sh(&format!("head -c {bytes} /dev/urandom >{blob}"), 20)?;
    let (_, md5) = sender.digest(&blob)?;
    receiver.sh(&format!("rm -f {recv}; [ -p {hold} ] || mkfifo {hold}"), 5)?;
    let (listener, connector) = match opener {
        Opener::Sender => (receiver, sender),
        Opener::Receiver => (sender, receiver),
    };
    let pidfile = listener.file(&format!("nc-{port}.pid"));
    let listen = match opener {
        Opener::Sender => format!("{} -l -p {port} 0<>{hold} >{recv}", listener.nc()),
        Opener::Receiver => format!("{} -l -p {port} <{blob} >/dev/null", listener.nc()),
    };
    listener.spawn(&listen, &pidfile)?;
    let result = (|| {
        listener.wait_listening(port)?;
        let connect = match opener {
            Opener::Sender => format!("{} -w 3 {addr} {dport} <{blob} >/dev/null", connector.nc()),
            Opener::Receiver => format!("{} -w 3 {addr} {dport} 0<>{hold} >{recv}", connector.nc()),
        };
        let start = Instant::now();
        connector
            .sh(&format!("timeout {LIMIT} {connect}"), LIMIT + 5)
            .with_context(|| format!("TCP to {addr}:{dport} failed"))?;
        let secs = start.elapsed().as_secs_f64();
        listener
            .wait_gone(&pidfile, 10)
            .context("the listening end did not finish")?;
        let (got, got_md5) = receiver.digest(&recv)?;
        if got != bytes || got_md5 != md5 {
            bail!(
                "the receiver got {got} of {bytes} bytes{}",
                if got == bytes {
                    " (different content)"
                } else {
                    ""
                }
            );
        }
        Ok(Moved { bytes: got, secs })
    })();
    listener.kill(&pidfile);
    let _ = sender.sh(&format!("rm -f {blob}"), 5);
    let _ = receiver.sh(&format!("rm -f {recv}"), 5);
    if result.is_err() {
        std::thread::sleep(Duration::from_millis(100));
    }
    result
}
