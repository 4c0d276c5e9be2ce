//! The bench's generator and sink on vhost-user ports: a paced sender on one guest's
//! transmit ring and, when the stream ends at another guest, the receiver on that guest's
//! receive ring, both driven by one thread on the generator's core ([`VirtioNic`]s).
//!
//! One thread does both because a busy-polling sender and a busy-polling receiver on one
//! core (this machine has two, the DUT has the other) take turns by the scheduler's time
//! slices, and a receive ring of 1024 entries overflows within a fraction of a millisecond
//! of a slice at Mpps rates: the receiver, not the DUT, would lose frames.
//!
//! Frames are the XDP generator's (`gen.bpf.c`): the same template, the same RFC 4814
//! flow ports (or `--new-flows` ports) and the same 16-byte payload (magic, trial tag,
//! sequence number, send time on `CLOCK_MONOTONIC`), so the XDP sink on a veth reads them
//! too (a NAT guest on vhost-user sending to the Internet side).
//!
//! Pacing and loss: slot `n` of a trial at `pps` is due at `start + n / pps`. Each pass
//! offers the slots due (at most [`BURST`]), stamped with the pass's time. A due slot
//! that finds the transmit ring full is a frame the device did not take: counted sent
//! and lost (`refused`), as a guest's frame is lost when its virtio queue is full. Slots
//! more than [`LATE`] behind because this thread itself fell behind (preempted) are given
//! up and not counted sent (`skipped`, as the XDP generator does). Unpaced (`pps` 0), the
//! sender offers whatever the ring has room for: the device's intake rate.

use super::bpf;
use super::gen::{new_flow_ports, FrameSpec, GenReport, HEADER_LEN, MAGIC, PAYLOAD_LEN};
use super::sink::{new_histogram, SinkReport};
use super::virtio::{Received, VirtioNic};
use anyhow::{bail, Result};
use hdrhistogram::Histogram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use vm_memory::Bytes;

/// Frames offered or received per pass, at most.
pub const BURST: usize = 32;
/// Slots the sender may run late before it gives them up.
pub const LATE: u64 = 1024;
/// How long the receiver keeps reading after the sending window (frames in flight).
const DRAIN: Duration = Duration::from_millis(100);
/// The flow seed, as the XDP generator's (`SEED`).
const SEED: u32 = 0x5eed_4814;

/// `gen.bpf.c`'s `mix32`.
fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// UDP ports `(source, destination)` of frame `seq`, as `gen.bpf.c` writes them.
pub fn flow_ports(seq: u64, flows: u32, dst_port: Option<u16>, new_flows: bool) -> (u16, u16) {
    if new_flows {
        return new_flow_ports(seq as u32);
    }
    let flow = (seq % u64::from(flows.max(1))) as u32;
    let h = mix32(flow ^ SEED);
    let h2 = mix32(h ^ 0x9e37_79b9);
    (
        (1024 + h % 64512) as u16,
        dst_port.unwrap_or((1024 + h2 % 64512) as u16),
    )
}

/// The 16-byte payload of frame `seq` of trial `tag`, sent at `now` (host byte order,
/// as `common.h`).
pub fn payload(tag: u16, seq: u64, now: u64) -> [u8; PAYLOAD_LEN] {
    let mut p = [0u8; PAYLOAD_LEN];
    p[..2].copy_from_slice(&MAGIC.to_ne_bytes());
    p[2..4].copy_from_slice(&tag.to_ne_bytes());
    p[4..8].copy_from_slice(&(seq as u32).to_ne_bytes());
    p[8..].copy_from_slice(&now.to_ne_bytes());
    p
}

/// What the receiver counts in one trial (the XDP sink's figures).
#[derive(Debug)]
struct Tally {
    tag: u16,
    received: u64,
    bytes: u64,
    next_seq: u64,
    out_of_order: u64,
    stale: u64,
    latency_sum_ns: u64,
    latency_max_ns: u64,
    histogram: Histogram<u64>,
}

impl Tally {
    fn new(tag: u16) -> Tally {
        Tally {
            tag,
            received: 0,
            bytes: 0,
            next_seq: 0,
            out_of_order: 0,
            stale: 0,
            latency_sum_ns: 0,
            latency_max_ns: 0,
            histogram: new_histogram(),
        }
    }

    /// Count one received frame read at `now`; frames not the bench's are ignored.
    fn record(&mut self, r: Received<'_>, now: u64) {
        if r.len < HEADER_LEN + PAYLOAD_LEN {
            return;
        }
        let mut p = [0u8; PAYLOAD_LEN];
        if r.buf.read_slice(&mut p, r.at + HEADER_LEN).is_err() {
            return;
        }
        if u16::from_ne_bytes([p[0], p[1]]) != MAGIC {
            return;
        }
        if u16::from_ne_bytes([p[2], p[3]]) != self.tag {
            self.stale += 1;
            return;
        }
        let seq = u64::from(u32::from_ne_bytes([p[4], p[5], p[6], p[7]]));
        let sent = u64::from_ne_bytes(p[8..16].try_into().expect("8 bytes"));
        self.received += 1;
        self.bytes += r.len as u64;
        if seq + 1 > self.next_seq {
            self.next_seq = seq + 1;
        } else {
            self.out_of_order += 1;
        }
        let lat = now.saturating_sub(sent);
        self.latency_sum_ns += lat;
        self.latency_max_ns = self.latency_max_ns.max(lat);
        let _ = self.histogram.record(lat.max(1));
    }

    fn report(&self) -> SinkReport {
        SinkReport {
            received: self.received,
            max_seq: self.next_seq,
            out_of_order: self.out_of_order,
            bytes: self.bytes,
            stale: self.stale,
            latency_sum_ns: self.latency_sum_ns,
            latency_max_ns: self.latency_max_ns,
            new_flows: 0,
            same_flows: 0,
            flows_untracked: 0,
            histogram: self.histogram.clone(),
        }
    }
}

/// The sending guest's ring, the receiving guest's (when the stream ends at a guest),
/// and what the frames look like.
#[derive(Debug)]
struct Ends {
    tx: VirtioNic,
    rx: Option<VirtioNic>,
    frame: Vec<u8>,
    dst_port: Option<u16>,
    flows: u32,
    new_flows: bool,
    tally: Tally,
}

/// One stream's sender (and receiver) on vhost-user rings.
#[derive(Debug)]
pub struct VirtioTraffic {
    ends: Mutex<Ends>,
    core: usize,
}

impl VirtioTraffic {
    /// Traffic from `tx` (to `rx` when the stream ends at a guest), sent from `core`.
    ///
    /// # Errors
    /// When the frame does not fit the rings' buffers, or IMIX is asked for.
    pub fn new(
        mut tx: VirtioNic,
        rx: Option<VirtioNic>,
        core: usize,
        frame: &FrameSpec,
        flows: u32,
    ) -> Result<VirtioTraffic> {
        if frame.imix {
            bail!("the virtio generator sends one frame size, not IMIX");
        }
        let template = frame.template();
        tx.set_tx_frame(&template)?;
        Ok(VirtioTraffic {
            ends: Mutex::new(Ends {
                tx,
                rx,
                frame: template,
                dst_port: frame.dst_port,
                flows: flows.max(1),
                new_flows: false,
                tally: Tally::new(0),
            }),
            core,
        })
    }

    fn ends(&self) -> std::sync::MutexGuard<'_, Ends> {
        self.ends.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Send `frame` frames from now on.
    ///
    /// # Errors
    /// When frames are still in flight.
    pub fn set_frame(&self, frame: &FrameSpec) -> Result<()> {
        let mut e = self.ends();
        let template = frame.template();
        e.tx.set_tx_frame(&template)?;
        e.frame = template;
        e.dst_port = frame.dst_port;
        Ok(())
    }

    /// `--new-flows`: every frame a flow of its own.
    pub fn set_new_flows(&self, on: bool) {
        self.ends().new_flows = on;
    }

    /// The receiving guest says who it is: one frame from its MAC (an ARP announcement of
    /// `ip`), so that a learning switch knows its port before the trials.
    ///
    /// # Errors
    /// When its ring does not take the frame.
    pub fn announce(&self, mac: [u8; 6], ip: std::net::Ipv4Addr) -> Result<()> {
        let mut e = self.ends();
        let Some(rx) = e.rx.as_mut() else {
            return Ok(());
        };
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&[0xff; 6]);
        f[6..12].copy_from_slice(&mac);
        f[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        f[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
        f[22..28].copy_from_slice(&mac);
        f[28..32].copy_from_slice(&ip.octets());
        f[38..42].copy_from_slice(&ip.octets());
        rx.set_tx_frame(&f)?;
        if rx.tx_offer(1, |_, _, _| Ok(()))? != 1 {
            bail!("the receiving guest's transmit ring took no frame");
        }
        std::thread::sleep(Duration::from_millis(20));
        rx.tx_reclaim()?;
        Ok(())
    }

    /// Start counting trial `tag` (the receiver's figures of the last trial are dropped).
    pub fn reset(&self, tag: u16) {
        self.ends().tally = Tally::new(tag);
    }

    /// What the receiver counted since [`VirtioTraffic::reset`].
    pub fn read(&self) -> SinkReport {
        self.ends().tally.report()
    }

    /// Send for `duration` at `pps` frames/s (0: as fast as the ring takes them), frames
    /// tagged `tag`, receiving meanwhile and for [`DRAIN`] after. Returns early when
    /// `stop` is set.
    ///
    /// # Errors
    /// When the thread cannot be pinned, or a device breaks the ring protocol.
    pub fn run(
        &self,
        tag: u16,
        pps: f64,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<GenReport> {
        let mut guard = self.ends();
        let e = &mut *guard;
        e.tally.tag = tag;
        let core = self.core;
        std::thread::scope(|s| {
            s.spawn(|| -> Result<GenReport> {
                bpf::pin_to_core(core)?;
                send(e, tag, pps, duration, stop)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the vhost-user generator thread panicked"))?
        })
    }
}

/// The sending loop of [`VirtioTraffic::run`], on the pinned thread.
fn send(
    e: &mut Ends,
    tag: u16,
    pps: f64,
    duration: Duration,
    stop: &AtomicBool,
) -> Result<GenReport> {
    let start = bpf::monotonic_ns() + 1_000_000;
    let end = start + duration.as_nanos() as u64;
    let interval = if pps > 0.0 { 1e9 / pps } else { 0.0 };
    let vary_ports = e.flows > 1 || e.new_flows;
    let (mut issued, mut seq, mut skipped, mut refused, mut bytes) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let frame_len = e.frame.len() as u64;
    let mut last = start;
    loop {
        let now = bpf::monotonic_ns();
        let stopping = stop.load(Ordering::Relaxed);
        if let Some(rx) = e.rx.as_mut() {
            let tally = &mut e.tally;
            rx.rx_poll(BURST, |r| tally.record(r, now))?;
        }
        if now >= end + DRAIN.as_nanos() as u64 || stopping {
            break;
        }
        e.tx.tx_reclaim()?;
        if now < start || now >= end {
            continue;
        }
        last = now;
        let want = if interval > 0.0 {
            let due = ((now - start) as f64 / interval) as u64 + 1;
            let mut backlog = due.saturating_sub(issued);
            if backlog > LATE {
                skipped += backlog - LATE;
                issued += backlog - LATE;
                backlog = LATE;
            }
            backlog.min(BURST as u64) as usize
        } else {
            BURST
        };
        if want == 0 {
            continue;
        }
        let free = e.tx.tx_free();
        if interval > 0.0 && free < want {
            refused += (want - free) as u64;
            issued += (want - free) as u64;
        }
        let (flows, dst_port, new_flows) = (e.flows, e.dst_port, e.new_flows);
        let first = seq;
        let n = e.tx.tx_offer(want, |k, buf, at| {
            let seq = first + k as u64;
            if vary_ports {
                let (sp, dp) = flow_ports(seq, flows, dst_port, new_flows);
                let mut ports = [0u8; 4];
                ports[..2].copy_from_slice(&sp.to_be_bytes());
                ports[2..].copy_from_slice(&dp.to_be_bytes());
                buf.write_slice(&ports, at + 34)?;
            }
            buf.write_slice(&payload(tag, seq, now), at + HEADER_LEN)?;
            Ok(())
        })?;
        seq += n as u64;
        issued += n as u64;
        bytes += n as u64 * frame_len;
    }
    let secs = (last.min(end).saturating_sub(start)) as f64 / 1e9;
    let sent = seq + refused;
    Ok(GenReport {
        sent,
        bytes: bytes + refused * frame_len,
        skipped,
        refused,
        secs,
        pps: if secs > 0.0 { sent as f64 / secs } else { 0.0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_ports_mirror_the_xdp_generator() {
        // One flow: the same pair every frame; a fixed destination port stays fixed.
        assert_eq!(flow_ports(0, 1, None, false), flow_ports(7, 1, None, false));
        assert_eq!(flow_ports(3, 16, Some(7000), false).1, 7000);
        // 16 flows repeat with period 16 and are not all the same.
        let pairs: std::collections::HashSet<_> =
            (0..16).map(|s| flow_ports(s, 16, None, false)).collect();
        assert!(pairs.len() > 12, "{pairs:?}");
        assert_eq!(
            flow_ports(5, 16, None, false),
            flow_ports(21, 16, None, false)
        );
        for s in 0..1000 {
            let (a, b) = flow_ports(s, 100, None, false);
            assert!(a >= 1024 && b >= 1024);
        }
        assert_eq!(flow_ports(70_000, 1, None, true), new_flow_ports(70_000));
    }

    #[test]
    fn payload_is_magic_tag_seq_time_in_host_order() {
        let p = payload(9, 0x1_0000_0005, 42);
        assert_eq!(u16::from_ne_bytes([p[0], p[1]]), MAGIC);
        assert_eq!(u16::from_ne_bytes([p[2], p[3]]), 9);
        assert_eq!(u32::from_ne_bytes([p[4], p[5], p[6], p[7]]), 5);
        assert_eq!(u64::from_ne_bytes(p[8..].try_into().unwrap()), 42);
    }
}
