//! Shared code of the fuzz targets (`fuzz_targets/`): the input format of the mode targets,
//! the checksum fix-up that lets the fuzzer reach past checksum checks, and the driver
//! that runs a mode pipeline the way the engine does and checks it after every batch.
//!
//! # The mode targets' input
//!
//! ```text
//! byte 0          configuration (each target reads its own bits: VM count, DHCP, host port...)
//! then records    ctrl (1 byte) | len (2 bytes, big endian) | len bytes of frame
//! ```
//!
//! `ctrl`: bits 0-2 the ingress port (modulo the number of ports; once a frame has left,
//! 7 instead answers it from where it went, see [`answer`], and 6 sends an ICMP error
//! about it, see [`icmp_error`]: the peers a fuzzer cannot guess), bit 3 ends the batch
//! after this frame, bit 4 fixes the frame up (the mode's own MAC and, on a NAT link, IPv4
//! address as destination, IPv4 total length, header and TCP/UDP/ICMP checksums), bits
//! 5-6 advance the clock before the frame (0, 10 ms, 2 s, 1000 s), bit 7 runs the
//! mode's timers (`poll`) after the batch. A record cut short by the end of the input
//! takes the bytes that are left. `ci/fuzz-seed.py` writes pcap frames in this format.

use std::time::Duration;

use std::net::Ipv4Addr;
use vnet_core::counters::{CounterSet, DropReason};
use vnet_core::frame::{FrameIndex, FramePool, Pkt, PortId};
use vnet_core::offload;
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::checksum;
use vnet_core::wire::IpProtocol;
use vnet_modes::layout::PortLayout;

/// Frames in the pool the driver gives a mode (a batch is at most [`BATCH`]).
pub const POOL_FRAMES: u32 = 256;
/// Size of a frame in the pool (no headroom).
pub const FRAME_SIZE: usize = 2048;
/// Most packets in one batch (the engine's burst).
pub const BATCH: usize = vnet_core::port::BURST;

/// `ctrl` port selector of a record that answers the last frame that left (see [`answer`]).
pub const ANSWER: u8 = 7;
/// `ctrl` port selector of a record that is an ICMP error about it (see [`icmp_error`]).
pub const ICMP_ERROR: u8 = 6;

/// A verdict no mode writes with one worker: what every slot holds before `process`,
/// so a slot the mode forgot to fill is caught.
const UNWRITTEN: Verdict = Verdict::HandOff(u8::MAX);

/// One frame of a mode target's input.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// Ingress selector (bits 0-2 of ctrl).
    pub port_sel: u8,
    /// End the batch after this frame.
    pub end_batch: bool,
    /// Apply [`fix_up`] before the mode sees the frame.
    pub fix: bool,
    /// Clock advance before the frame.
    pub advance: Duration,
    /// Run the timers after the batch.
    pub poll: bool,
    /// The frame.
    pub bytes: &'a [u8],
}

/// Splits the records after the configuration byte.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (&ctrl, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [a, b, rest @ ..] => (usize::from(u16::from_be_bytes([*a, *b])), rest),
            _ => (rest.len(), &rest[rest.len()..]),
        };
        let len = len.min(rest.len()).min(FRAME_SIZE);
        let (bytes, rest) = rest.split_at(len);
        data = rest;
        Some(Record {
            port_sel: ctrl & 7,
            end_batch: ctrl & 8 != 0,
            fix: ctrl & 16 != 0,
            advance: match (ctrl >> 5) & 3 {
                0 => Duration::ZERO,
                1 => Duration::from_millis(10),
                2 => Duration::from_secs(2),
                _ => Duration::from_secs(1000),
            },
            poll: ctrl & 128 != 0,
            bytes,
        })
    })
}

/// Makes a frame consistent enough to reach past the parsers' checks: `dst_mac` as
/// destination (if given), and for untagged IPv4, `dst_ip` as destination (if given), the
/// total length (the rest of the frame), the header checksum and, for a first fragment's
/// TCP, UDP (length too) or ICMP, the transport checksum. Leaves whatever it cannot make
/// sense of as it is.
pub fn fix_up(frame: &mut [u8], dst_mac: Option<[u8; 6]>, dst_ip: Option<Ipv4Addr>) {
    if let (Some(mac), true) = (dst_mac, frame.len() >= 6) {
        frame[..6].copy_from_slice(&mac);
    }
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return;
    }
    let ip = &mut frame[14..];
    let total = ip.len().min(usize::from(u16::MAX));
    let ip = &mut ip[..total];
    let mut ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        ip[0] = 0x45;
        ihl = 20;
    }
    if ihl > total {
        return;
    }
    ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    if let Some(dst) = dst_ip {
        ip[16..20].copy_from_slice(&dst.octets());
    }
    ip[10..12].copy_from_slice(&[0, 0]);
    let c = checksum::data(&ip[..ihl]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & 0x3fff != 0 {
        return;
    }
    let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let proto = ip[9];
    let l4 = &mut ip[ihl..];
    let len = l4.len() as u16;
    match proto {
        6 if l4.len() >= 20 => {
            l4[16..18].copy_from_slice(&[0, 0]);
            let sum =
                checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp, len) + checksum::sum(l4);
            l4[16..18].copy_from_slice(&(!checksum::fold(sum)).to_be_bytes());
        }
        17 if l4.len() >= 8 => {
            l4[4..6].copy_from_slice(&len.to_be_bytes());
            l4[6..8].copy_from_slice(&[0, 0]);
            let sum =
                checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, len) + checksum::sum(l4);
            let c = match !checksum::fold(sum) {
                0 => 0xffff,
                c => c,
            };
            l4[6..8].copy_from_slice(&c.to_be_bytes());
        }
        1 if l4.len() >= 4 => {
            l4[2..4].copy_from_slice(&[0, 0]);
            let c = checksum::data(l4);
            l4[2..4].copy_from_slice(&c.to_be_bytes());
        }
        _ => {}
    }
}

/// What a mode target knows of its mode: the ports, and the rules a verdict must obey.
pub trait Oracle {
    /// The mode's ports.
    fn layout(&self) -> PortLayout;

    /// Destination MAC a fixed-up frame from `ingress` gets (the mode's own, where it has
    /// one); `None` keeps the frame's.
    fn fix_dst_mac(&self, _ingress: PortId) -> Option<[u8; 6]> {
        None
    }

    /// Destination IPv4 address a fixed-up frame from `ingress` gets (the mode's own on a
    /// link, where anything else is not for it); `None` keeps the frame's.
    fn fix_dst_ip(&self, _ingress: PortId) -> Option<Ipv4Addr> {
        None
    }

    /// Panics if `Tx(mask)` is wrong for a frame that came in on `ingress` as `before`
    /// and leaves as `after`. `mask` is already known to name only existing ports.
    fn check_tx(&self, ingress: PortId, before: &[u8], after: &[u8], mask: PortMask);

    /// Panics if a frame the mode originated (from `poll`) may not go to `mask`.
    fn check_emitted(&self, bytes: &[u8], mask: PortMask);
}

/// Per ingress port: what the driver saw, to compare with the engine's counters.
#[derive(Debug, Default, Clone)]
struct Tally {
    rx: u64,
    tx_verdicts: u64,
    consumed: u64,
    drops: [u64; DropReason::COUNT],
}

/// Runs a mode as the engine's worker does (complete partial checksums, `process`, act
/// on the verdicts, timers) and checks after every batch:
///
/// - every slot got a verdict, every `Tx` mask names only ports of the layout and obeys
///   the oracle, a packet's length never exceeds the frame;
/// - the counters (kept as the engine keeps them) add up: per port, received = `Tx` +
///   dropped + consumed, and the drop counters by reason equal the drops seen;
/// - frames are conserved: once the verdicts are settled and the emitted frames sent,
///   every frame is back in the pool but those a mode keeps (`Consumed`, until it emits
///   them).
///
/// With one worker a `HandOff` cannot be delivered: counted as the engine does (a
/// `no_route` drop).
#[derive(Debug)]
pub struct Driver<'o, M: Pipeline, O: Oracle> {
    mode: M,
    oracle: &'o O,
    layout: PortLayout,
    pool: FramePool,
    now: Instant,
    counters: CounterSet,
    tally: Vec<Tally>,
    /// Frames the mode kept (`Consumed`) and has not emitted yet.
    kept: Vec<FrameIndex>,
    pkts: Vec<Pkt>,
    before: Vec<Vec<u8>>,
    emitter: Emitter,
    /// The last frame that left (its first port and bytes): what an answer answers.
    last_out: Option<(PortId, Vec<u8>)>,
}

impl<'o, M: Pipeline, O: Oracle> Driver<'o, M, O> {
    /// A driver for `mode`, starting at `now`.
    pub fn new(mode: M, oracle: &'o O, now: Instant) -> Self {
        let layout = oracle.layout();
        assert!(!layout.is_empty());
        Self {
            mode,
            oracle,
            layout,
            pool: FramePool::with_heap(POOL_FRAMES, FRAME_SIZE, 0),
            now,
            counters: CounterSet::new(1, layout.len()),
            tally: vec![Tally::default(); layout.len()],
            kept: Vec::new(),
            pkts: Vec::with_capacity(BATCH),
            before: Vec::with_capacity(BATCH),
            emitter: Emitter::new(),
            last_out: None,
        }
    }

    /// The mode (for target-specific checks).
    pub fn mode(&self) -> &M {
        &self.mode
    }

    /// The engine-style counters so far, per port.
    pub fn totals(&self) -> Vec<vnet_core::counters::PortTotals> {
        self.counters.snapshot()
    }

    /// The clock.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Queues `bytes` from `port` for the next batch; runs the batch first when full.
    pub fn push(&mut self, port: PortId, bytes: &[u8]) {
        if self.pkts.len() == BATCH {
            self.run_batch();
        }
        let pkt = self
            .pool
            .alloc_copy(bytes, port)
            .expect("the driver's pool has room for a batch");
        self.pkts.push(pkt);
    }

    /// Advances the clock.
    pub fn advance(&mut self, by: Duration) {
        self.now = self.now + by;
    }

    /// Feeds the records of a target's input (see the crate docs).
    pub fn feed(&mut self, data: &[u8]) {
        let mut frame = [0u8; FRAME_SIZE];
        for r in records(data) {
            self.advance(r.advance);
            let made = match (r.port_sel, self.last_out.as_ref()) {
                (ANSWER, Some((port, last))) => Some((*port, answer(last, r.bytes, &mut frame))),
                (ICMP_ERROR, Some((port, last))) => {
                    icmp_error(last, r.bytes, &mut frame).map(|n| (*port, n))
                }
                _ => None,
            };
            let (port, buf) = match made {
                Some((port, n)) => {
                    let buf = &mut frame[..n];
                    fix_up(buf, None, None);
                    (port, buf)
                }
                None => {
                    let port = PortId::from(r.port_sel) % self.layout.len() as PortId;
                    let buf = &mut frame[..r.bytes.len()];
                    buf.copy_from_slice(r.bytes);
                    if r.fix {
                        fix_up(
                            buf,
                            self.oracle.fix_dst_mac(port),
                            self.oracle.fix_dst_ip(port),
                        );
                    }
                    (port, buf)
                }
            };
            self.push(port, buf);
            if r.poll {
                self.poll();
            } else if r.end_batch {
                self.run_batch();
                self.poll_if_due();
            }
        }
        self.run_batch();
        self.poll();
    }

    /// Runs the queued packets through the mode and settles the verdicts.
    pub fn run_batch(&mut self) {
        let n = self.pkts.len();
        if n == 0 {
            return;
        }
        let worker = self.counters.worker(0);
        self.before.clear();
        for p in &self.pkts {
            offload::complete_partial(self.pool.bytes_mut(p));
            let c = worker.port(p.port as usize);
            c.add_rx(1, u64::from(p.len));
            self.tally[p.port as usize].rx += 1;
            self.before.push(self.pool.bytes(p).to_vec());
        }
        let ingress: Vec<PortId> = self.pkts.iter().map(|p| p.port).collect();
        let mut verdicts = [UNWRITTEN; BATCH];
        self.mode
            .process(self.now, &mut self.pool, &mut self.pkts, &mut verdicts[..n]);
        let all = self.layout.all();
        for i in 0..n {
            let pkt = self.pkts[i];
            let port = ingress[i];
            let t = &mut self.tally[port as usize];
            let c = worker.port(port as usize);
            assert!(
                usize::from(pkt.len) <= self.pool.capacity(),
                "packet {i}: length {} beyond the frame",
                pkt.len
            );
            match verdicts[i] {
                UNWRITTEN => panic!("packet {i} of {n}: no verdict written"),
                Verdict::Tx(mask) => {
                    assert_eq!(
                        mask.and(all),
                        mask,
                        "packet {i} from port {port}: Tx to a port the layout lacks ({mask:?}, ports {all:?})"
                    );
                    self.oracle
                        .check_tx(port, &self.before[i], self.pool.bytes(&pkt), mask);
                    t.tx_verdicts += 1;
                    for out in mask.iter() {
                        worker.port(out as usize).add_tx(1, u64::from(pkt.len));
                    }
                    remember(&mut self.last_out, mask, self.pool.bytes(&pkt));
                    self.pool.free(pkt.frame);
                }
                Verdict::Drop(reason) => {
                    t.drops[reason as usize] += 1;
                    c.add_drop(reason);
                    self.pool.free(pkt.frame);
                }
                Verdict::Consumed => {
                    t.consumed += 1;
                    self.kept.push(pkt.frame);
                }
                Verdict::HandOff(_) => {
                    // One worker: the engine cannot hand it to anyone (no_route).
                    t.drops[DropReason::NoRoute as usize] += 1;
                    c.add_drop(DropReason::NoRoute);
                    self.pool.free(pkt.frame);
                }
            }
        }
        self.pkts.clear();
        self.check_counters();
        self.check_frames();
    }

    /// Runs the mode's timers and sends what it originates.
    pub fn poll(&mut self) {
        self.run_batch();
        self.emitter.clear();
        self.mode.poll(self.now, &mut self.pool, &mut self.emitter);
        let all = self.layout.all();
        for &(pkt, mask) in self.emitter.items() {
            assert!(usize::from(pkt.len) <= self.pool.capacity());
            assert_eq!(
                mask.and(all),
                mask,
                "emitted to a port the layout lacks ({mask:?}, ports {all:?})"
            );
            self.oracle.check_emitted(self.pool.bytes(&pkt), mask);
            remember(&mut self.last_out, mask, self.pool.bytes(&pkt));
            if let Some(k) = self.kept.iter().position(|&f| f == pkt.frame) {
                self.kept.swap_remove(k);
            }
            self.pool.free(pkt.frame);
        }
        self.emitter.clear();
        self.check_frames();
    }

    /// Polls when the mode's deadline has passed.
    pub fn poll_if_due(&mut self) {
        if self.mode.poll_at().is_some_and(|t| t <= self.now) {
            self.poll();
        }
    }

    fn check_counters(&self) {
        let totals = self.counters.snapshot();
        for (port, (t, c)) in self.tally.iter().zip(&totals).enumerate() {
            let dropped: u64 = t.drops.iter().sum();
            assert_eq!(
                c.rx_packets,
                t.tx_verdicts + dropped + t.consumed,
                "port {port}: received != transmitted + dropped + consumed"
            );
            assert_eq!(c.dropped(), dropped, "port {port}: drop counters");
            for r in DropReason::ALL {
                assert_eq!(
                    c.drops_for(r),
                    t.drops[r as usize],
                    "port {port}: drops for {}",
                    r.name()
                );
            }
        }
    }

    fn check_frames(&self) {
        assert_eq!(
            self.pool.free_count() + self.kept.len(),
            POOL_FRAMES as usize,
            "frames lost or freed twice (free {}, kept by the mode {})",
            self.pool.free_count(),
            self.kept.len()
        );
    }
}

/// The Ethernet type of a frame (untagged), if it has one.
pub fn ethertype(frame: &[u8]) -> Option<u16> {
    (frame.len() >= 14).then(|| u16::from_be_bytes([frame[12], frame[13]]))
}

/// The IPv4 source of an untagged IPv4 frame, or the sender address of an ARP one.
pub fn l3_source(frame: &[u8]) -> Option<Ipv4Addr> {
    let at = match ethertype(frame)? {
        0x0800 => 14 + 12,
        0x0806 => 14 + 14,
        _ => return None,
    };
    let b = frame.get(at..at + 4)?;
    Some(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
}

/// The rules of the switched modes (Internal, Host-only, Bridged): every `Tx` stays on
/// the layout's ports (so Internal never reaches a host or uplink port and Host-only never
/// an uplink: their layouts have none); a frame that leaves on any port but its ingress
/// is switched, not answered: it is untouched and does not go back out of its ingress.
/// Only the services (a DHCP server) answer, on the ingress alone, and originate frames.
#[derive(Debug, Clone, Copy)]
pub struct SwitchedOracle {
    /// The mode's ports.
    pub layout: PortLayout,
    /// Whether the mode has services (DHCP).
    pub services: bool,
}

impl Oracle for SwitchedOracle {
    fn layout(&self) -> PortLayout {
        self.layout
    }

    fn check_tx(&self, ingress: PortId, before: &[u8], after: &[u8], mask: PortMask) {
        if mask.is_empty() || (self.services && mask == PortMask::one(ingress)) {
            return;
        }
        assert!(
            !mask.contains(ingress),
            "a frame from port {ingress} sent back out of it ({mask:?})"
        );
        assert!(
            before == after,
            "a switched frame from port {ingress} to {mask:?} was rewritten"
        );
    }

    fn check_emitted(&self, _bytes: &[u8], mask: PortMask) {
        assert!(
            self.services,
            "a mode without services originated a frame (to {mask:?})"
        );
    }
}

pub mod nat;

/// Switch settings from two configuration bits: a tiny FDB (4 entries, 5 s aging) or the
/// default.
pub fn switch_config(tiny: bool) -> vnet_modes::switch::SwitchConfig {
    let mut s = vnet_modes::switch::SwitchConfig::default();
    if tiny {
        s.fdb_max = 4;
        s.aging = Duration::from_secs(5);
    }
    s
}

/// A guard of VM ports: tight (burst 4, 10 frames/s) or the default.
pub fn guard_config(tight: bool) -> vnet_modes::guard::GuardConfig {
    if tight {
        vnet_modes::guard::GuardConfig {
            group_pps: 10,
            arp_pps: 10,
            burst: 4,
        }
    } else {
        vnet_modes::guard::GuardConfig::default()
    }
}

/// A DHCP server for the switched modes: Host-only's, on a pool of 4 (so that exhaustion
/// and the per-port share are reached) with short times.
pub fn small_dhcp() -> vnet_modes::dhcp::DhcpServerConfig {
    let mut d = vnet_modes::dhcp::DhcpServerConfig::host_only();
    d.pool_end = Ipv4Addr::new(192, 168, 56, 104);
    d.max_leases_per_port = 2;
    d.lease_time = Duration::from_secs(30);
    d.offer_hold = Duration::from_secs(5);
    d.decline_quarantine = Duration::from_secs(10);
    d
}

fn remember(last: &mut Option<(PortId, Vec<u8>)>, mask: PortMask, bytes: &[u8]) {
    let Some(port) = mask.iter().next() else {
        return;
    };
    let (p, buf) = last.get_or_insert_with(|| (port, Vec::with_capacity(FRAME_SIZE)));
    *p = port;
    buf.clear();
    buf.extend_from_slice(bytes);
}

/// A peer's answer to `last` (a frame that left the mode), into `out`; returns its length.
/// MACs, IPv4 addresses and TCP/UDP ports swapped, TTL 64; an ICMP echo request becomes
/// its reply; TCP acknowledges the segment's sequence number, with `extra[0]` as its flags
/// (SYN+ACK without); an ARP request becomes the reply of the address asked for. The rest
/// of `extra` overwrites the start of the payload. Checksums are fixed by the caller.
pub fn answer(last: &[u8], extra: &[u8], out: &mut [u8]) -> usize {
    let n = last.len().min(out.len());
    let out = &mut out[..n];
    out.copy_from_slice(&last[..n]);
    if n < 14 {
        return n;
    }
    for i in 0..6 {
        out.swap(i, i + 6);
    }
    let overlay = extra.get(1..).unwrap_or(&[]);
    match ethertype(out) {
        Some(0x0800) if n >= 34 => {
            let ihl = usize::from(out[14] & 0x0f) * 4;
            for i in 0..4 {
                out.swap(26 + i, 30 + i);
            }
            out[22] = 64;
            let l4 = 14 + ihl.max(20);
            let data_at = match out[23] {
                6 | 17 if n >= l4 + 4 => {
                    for i in 0..2 {
                        out.swap(l4 + i, l4 + 2 + i);
                    }
                    if out[23] == 6 && n >= l4 + 14 {
                        let seq = u32::from_be_bytes([
                            out[l4 + 4],
                            out[l4 + 5],
                            out[l4 + 6],
                            out[l4 + 7],
                        ]);
                        let ack = u32::from_be_bytes([
                            out[l4 + 8],
                            out[l4 + 9],
                            out[l4 + 10],
                            out[l4 + 11],
                        ]);
                        out[l4 + 4..l4 + 8].copy_from_slice(&ack.to_be_bytes());
                        out[l4 + 8..l4 + 12].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
                        out[l4 + 13] = extra.first().copied().unwrap_or(0x12);
                        l4 + usize::from(out[l4 + 12] >> 4) * 4
                    } else {
                        l4 + 8
                    }
                }
                1 if n >= l4 + 8 => {
                    if out[l4] == 8 {
                        out[l4] = 0;
                    }
                    l4 + 8
                }
                _ => n,
            };
            if let Some(payload) = out.get_mut(data_at..) {
                let k = payload.len().min(overlay.len());
                payload[..k].copy_from_slice(&overlay[..k]);
            }
        }
        Some(0x0806) if n >= 42 => {
            // Request -> reply from the address asked for, with a MAC of the fuzzer's.
            let mut mac = [0x0a, 0, 0, 0, 0, 0x01];
            let k = overlay.len().min(6);
            mac[..k].copy_from_slice(&overlay[..k]);
            mac[0] &= 0xfe;
            let (sha, spa) = (out[22..28].to_vec(), out[28..32].to_vec());
            let tpa = out[38..42].to_vec();
            out[20..22].copy_from_slice(&[0, 2]);
            out[22..28].copy_from_slice(&mac);
            out[28..32].copy_from_slice(&tpa);
            out[32..38].copy_from_slice(&sha);
            out[38..42].copy_from_slice(&spa);
            out[6..12].copy_from_slice(&mac);
        }
        _ => {}
    }
    n
}

/// An ICMP error about `last` (an untagged IPv4 frame that left the mode), as the host it
/// was sent to (or a router on the way) would send it back: destination unreachable
/// (`extra[0]` even) or time exceeded, code `extra[1]` (next-hop MTU 1280 for
/// fragmentation needed), quoting the IPv4 header and 8 bytes. `None` for other frames.
pub fn icmp_error(last: &[u8], extra: &[u8], out: &mut [u8]) -> Option<usize> {
    if ethertype(last)? != 0x0800 || last.len() < 34 {
        return None;
    }
    let ip = &last[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let quote = ip.len().min(ihl.max(20) + 8);
    let n = 14 + 20 + 8 + quote;
    if n > out.len() {
        return None;
    }
    let out = &mut out[..n];
    out[..6].copy_from_slice(&last[6..12]);
    out[6..12].copy_from_slice(&last[..6]);
    out[12..14].copy_from_slice(&[0x08, 0x00]);
    let h = &mut out[14..34];
    h.fill(0);
    h[0] = 0x45;
    h[8] = 64;
    h[9] = 1;
    h[12..16].copy_from_slice(&ip[16..20]);
    h[16..20].copy_from_slice(&ip[12..16]);
    let icmp = &mut out[34..];
    icmp[..8].fill(0);
    let time_exceeded = extra.first().is_some_and(|b| b & 1 == 1);
    icmp[0] = if time_exceeded { 11 } else { 3 };
    icmp[1] = extra.get(1).map_or(3, |c| c % 16);
    if !time_exceeded && icmp[1] == 4 {
        icmp[6..8].copy_from_slice(&1280u16.to_be_bytes());
    }
    icmp[8..].copy_from_slice(&ip[..quote]);
    Some(n)
}
