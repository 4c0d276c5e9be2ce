//! The traffic generator: the XDP program `bpf/gen.bpf.c` run by `BPF_PROG_RUN` in
//! live-frames mode on a thread pinned to its own core, inside the sending endpoint's
//! namespace. The program paces (one frame per slot, excess runs dropped before they are
//! sent), stamps ports, sequence number and send time, and redirects each frame out of
//! the endpoint's interface. One core sends several Mpps this way, well above what the
//! dataplanes measured here forward, so the generator is not the bottleneck (the harness
//! ceiling, generator to sink over one veth pair, is measured and reported with every run).
//!
//! Live frames recycle their pages without restoring their contents, and a DUT that
//! forwards in place (the kernel's bridge or router) hands pages back with its own MACs,
//! addresses and TTL written in: the program therefore rewrites the whole header from
//! the `gen_hdr` map into every frame, not only the fields it varies.
//!
//! Frame sizes follow RFC 2544 (64..1518 bytes including the 4-byte FCS, which a veth
//! does not carry: a "64-byte" frame is 60 bytes here).

use super::bpf::{self, BpfObject};
use anyhow::{bail, Result};
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Offsets in the generator's config and state maps (mirror `bpf/common.h`).
mod key {
    pub const IFINDEX: u32 = 0;
    pub const INTERVAL_FP: u32 = 1;
    pub const START_NS: u32 = 2;
    pub const STOP_NS: u32 = 3;
    pub const FLOWS: u32 = 4;
    pub const TAG: u32 = 5;
    pub const IMIX: u32 = 6;
    pub const SEED: u32 = 7;
    pub const DPORT: u32 = 8;
    pub const NEW_FLOWS: u32 = 9;
    pub const NEXT_FP: u32 = 0;
    pub const SEQ: u32 = 1;
    pub const SENT: u32 = 2;
    pub const BYTES: u32 = 3;
    pub const SKIPPED: u32 = 4;
}

/// Ports a `--new-flows` trial walks through on each side (`VB_PORTS`): 1024..=65535.
pub const NEW_FLOW_PORTS: u32 = 64512;

/// The UDP ports `(source, destination)` of frame `n` of a `--new-flows` trial, as the
/// generator program writes them: the source port moves first, so the first
/// [`NEW_FLOW_PORTS`] frames are each a new inside endpoint (a new NAT mapping), the later
/// ones a new destination from one of those endpoints; no pair repeats within
/// `NEW_FLOW_PORTS^2` (4.2e9) frames.
pub fn new_flow_ports(n: u32) -> (u16, u16) {
    (
        (1024 + n % NEW_FLOW_PORTS) as u16,
        (1024 + (n / NEW_FLOW_PORTS) % NEW_FLOW_PORTS) as u16,
    )
}

/// The benchmark payload's magic (`VB_MAGIC`).
pub const MAGIC: u16 = 0xb5e7;
/// Bytes of a frame's header before the payload (Ethernet, IPv4, UDP).
pub const HEADER_LEN: usize = 42;
/// Payload bytes the generator writes.
pub const PAYLOAD_LEN: usize = 16;

/// What the frames look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Source IPv4 address.
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address.
    pub dst_ip: Ipv4Addr,
    /// A fixed UDP destination port (a forwarded port); `None`: pseudorandom per flow.
    pub dst_port: Option<u16>,
    /// Frame size with FCS (RFC 2544), 64..=1518; ignored (1518) with IMIX.
    pub frame_size: usize,
    /// 7:4:1 of 64, 570 and 1518 bytes.
    pub imix: bool,
}

/// Parse `02:76:6e:00:00:01`.
///
/// # Errors
/// When it is not six hex bytes.
pub fn parse_mac(s: &str) -> Result<[u8; 6]> {
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 6 {
        bail!("not a MAC address: {s}");
    }
    let mut m = [0u8; 6];
    for (b, p) in m.iter_mut().zip(parts) {
        *b = u8::from_str_radix(p, 16).map_err(|_| anyhow::anyhow!("not a MAC address: {s}"))?;
    }
    Ok(m)
}

fn ip_checksum(h: &[u8]) -> u16 {
    let mut s: u32 = h
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
        .sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

impl FrameSpec {
    /// Bytes on a veth (no FCS).
    pub fn wire_len(&self) -> usize {
        if self.imix {
            1514
        } else {
            self.frame_size.clamp(64, 1518) - 4
        }
    }

    /// The template frame the generator program stamps: Ethernet, IPv4 (DF, TTL 64, valid
    /// checksum), UDP (checksum 0: none, legal for IPv4; ports set per flow), zero payload.
    pub fn template(&self) -> Vec<u8> {
        let len = self.wire_len();
        let mut f = vec![0u8; len];
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..34];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&((len - 14) as u16).to_be_bytes());
        ip[6] = 0x40;
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&self.src_ip.octets());
        ip[16..20].copy_from_slice(&self.dst_ip.octets());
        let c = ip_checksum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
        f[34..36].copy_from_slice(&1024u16.to_be_bytes());
        f[36..38].copy_from_slice(&1024u16.to_be_bytes());
        f[38..40].copy_from_slice(&((len - 34) as u16).to_be_bytes());
        f
    }
}

/// What one generator trial sent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GenReport {
    /// Frames sent (redirected out of the interface).
    pub sent: u64,
    /// Bytes sent (without FCS).
    pub bytes: u64,
    /// Paced slots given up because the generator fell more than 64 slots behind (it
    /// was preempted); frames within 64 slots are sent late and stamped with their slot.
    pub skipped: u64,
    /// Frames the device did not take (a vhost-user guest's transmit ring was full when
    /// they were due): counted in `sent`, lost. Always 0 on a veth, whose generator
    /// sends into the kernel, which drops at the interface instead.
    pub refused: u64,
    /// Length of the sending window, seconds.
    pub secs: f64,
    /// Sent frames per second: the offered rate.
    pub pps: f64,
}

/// A loaded generator bound to an interface of a namespace.
#[derive(Debug)]
pub struct Generator {
    obj: BpfObject,
    prog: i32,
    cfg: i32,
    state: i32,
    hdr: i32,
    netns: String,
    core: usize,
    frame: Vec<u8>,
    batch_size: u32,
}

impl Generator {
    /// Load the generator for `ifname` in `netns`, sending `frame` frames from `core`.
    ///
    /// # Errors
    /// When the program cannot be loaded or the interface is missing.
    pub fn new(
        netns: &str,
        ifname: &str,
        core: usize,
        frame: &FrameSpec,
        flows: u32,
        batch_size: u32,
    ) -> Result<Generator> {
        let obj = BpfObject::load("generator", bpf::GEN_OBJ)?;
        let prog = obj.prog_fd("vb_gen")?;
        let cfg = obj.map_fd("gen_cfg")?;
        let state = obj.map_fd("gen_state")?;
        let hdr = obj.map_fd("gen_hdr")?;
        let name = ifname.to_string();
        let ifindex = bpf::in_netns(netns, move || bpf::ifindex(&name))?;
        bpf::array_set(cfg, key::IFINDEX, u64::from(ifindex))?;
        bpf::array_set(cfg, key::FLOWS, u64::from(flows.max(1)))?;
        bpf::array_set(cfg, key::SEED, 0x5eed_4814)?;
        let mut g = Generator {
            obj,
            prog,
            cfg,
            state,
            hdr,
            netns: netns.to_string(),
            core,
            frame: Vec::new(),
            batch_size,
        };
        g.set_frame(frame)?;
        Ok(g)
    }

    /// `--new-flows`: every frame of a trial a flow of its own ([`new_flow_ports`])
    /// instead of the RFC 4814 ports of `flows` flows.
    ///
    /// # Errors
    /// When the program's config cannot be written.
    pub fn set_new_flows(&self, on: bool) -> Result<()> {
        bpf::array_set(self.cfg, key::NEW_FLOWS, u64::from(on))
    }

    /// Send `frame` frames from now on (the next hop's MAC changes from DUT to DUT).
    ///
    /// # Errors
    /// When the program's config cannot be written.
    pub fn set_frame(&mut self, frame: &FrameSpec) -> Result<()> {
        bpf::array_set(self.cfg, key::IMIX, u64::from(frame.imix))?;
        bpf::array_set(self.cfg, key::DPORT, u64::from(frame.dst_port.unwrap_or(0)))?;
        self.frame = frame.template();
        let mut h = [0u8; bpf::HDR_LEN];
        h[..HEADER_LEN].copy_from_slice(&self.frame[..HEADER_LEN]);
        bpf::array_set_bytes(self.hdr, 0, &h)?;
        Ok(())
    }

    /// Send for `duration` at `pps` frames per second (0: as fast as possible), frames
    /// tagged `tag`. Returns early (with what was sent) when `stop` is set.
    ///
    /// # Errors
    /// When BPF_PROG_RUN fails (kernel older than 5.18, not root).
    pub fn run(
        &self,
        tag: u16,
        pps: f64,
        duration: Duration,
        stop: &AtomicBool,
    ) -> Result<GenReport> {
        let interval_fp = if pps > 0.0 {
            (256e9 / pps).round().max(1.0) as u64
        } else {
            0
        };
        for k in [key::NEXT_FP, key::SEQ, key::SENT, key::BYTES, key::SKIPPED] {
            bpf::array_set(self.state, k, 0)?;
        }
        bpf::array_set(self.cfg, key::INTERVAL_FP, interval_fp)?;
        bpf::array_set(self.cfg, key::TAG, u64::from(tag))?;
        let start = bpf::monotonic_ns() + 2_000_000;
        let stop_ns = start + duration.as_nanos() as u64;
        bpf::array_set(self.cfg, key::START_NS, start)?;
        bpf::array_set(self.cfg, key::STOP_NS, stop_ns)?;
        // Runs per BPF_PROG_RUN call: long calls. Between two calls the generator sends
        // nothing for long enough that the pacing gives slots up (with 262144 runs a call,
        // a third of all slots were lost: the stream was on/off and every DUT's rate was
        // understated by ~30%); with 2^24 runs (0.3-0.8 s) under 2% are. The program
        // itself stops at STOP_NS, so a trial still ends on time; Ctrl-C waits for the
        // call in progress.
        let repeat = 16_777_216;
        let result = std::thread::scope(|s| {
            s.spawn(|| -> Result<()> {
                bpf::enter_netns(&self.netns)?;
                bpf::pin_to_core(self.core)?;
                loop {
                    let now = bpf::monotonic_ns();
                    if now >= stop_ns {
                        return Ok(());
                    }
                    if stop.load(Ordering::Relaxed) {
                        bpf::array_set(self.cfg, key::STOP_NS, now)?;
                        return Ok(());
                    }
                    bpf::run_live(self.prog, &self.frame, repeat, self.batch_size)?;
                }
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the generator thread panicked"))?
        });
        result?;
        let end = bpf::array_get(self.cfg, key::STOP_NS)?.min(bpf::monotonic_ns());
        let secs = end.saturating_sub(start) as f64 / 1e9;
        let sent = bpf::array_get(self.state, key::SENT)?;
        let bytes = bpf::array_get(self.state, key::BYTES)?;
        let skipped = bpf::array_get(self.state, key::SKIPPED)?;
        let _ = &self.obj;
        Ok(GenReport {
            sent,
            bytes,
            skipped,
            refused: 0,
            secs,
            pps: if secs > 0.0 { sent as f64 / secs } else { 0.0 },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: usize) -> FrameSpec {
        FrameSpec {
            dst_mac: [2, 0, 0, 0, 0, 2],
            src_mac: [2, 0, 0, 0, 0, 1],
            src_ip: Ipv4Addr::new(192, 168, 60, 11),
            dst_ip: Ipv4Addr::new(192, 168, 60, 12),
            dst_port: None,
            frame_size: size,
            imix: false,
        }
    }

    #[test]
    fn template_is_a_valid_udp_frame_of_the_size_without_fcs() {
        for size in [64, 128, 1518] {
            let f = spec(size).template();
            assert_eq!(f.len(), size - 4);
            assert_eq!(ip_checksum(&f[14..34]), 0, "IPv4 header checksum verifies");
            assert_eq!(u16::from_be_bytes([f[16], f[17]]) as usize, size - 4 - 14);
            assert_eq!(u16::from_be_bytes([f[38], f[39]]) as usize, size - 4 - 34);
            assert!(f.len() >= HEADER_LEN + PAYLOAD_LEN);
        }
    }

    #[test]
    fn new_flow_ports_never_repeat_a_pair_and_stay_out_of_the_well_known_ports() {
        let mut seen = std::collections::HashSet::new();
        // Across the wrap of the source port, and far into the sequence.
        for n in (0..200_000u32).chain(4_000_000_000..4_000_100_000) {
            let (s, d) = new_flow_ports(n);
            assert!(s >= 1024 && d >= 1024, "{n}: {s} {d}");
            assert!(seen.insert((s, d)), "frame {n} repeats the pair {s}->{d}");
        }
        assert_eq!(new_flow_ports(0), (1024, 1024));
        assert_eq!(new_flow_ports(NEW_FLOW_PORTS - 1), (65535, 1024));
        assert_eq!(new_flow_ports(NEW_FLOW_PORTS), (1024, 1025));
    }

    #[test]
    fn parses_macs() {
        assert_eq!(
            parse_mac("02:76:6e:0a:00:01").unwrap(),
            [2, 0x76, 0x6e, 10, 0, 1]
        );
        assert!(parse_mac("02:76").is_err());
    }
}
