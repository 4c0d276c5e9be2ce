//! Behaviour suites: requirement-by-requirement checks of one pipeline with crafted
//! frames (the NAT behaviour of RFC 4787/5382/5508 in [`super::nat_suite`], the DHCP
//! server of RFC 2131 in [`super::dhcp_suite`]), run by `vnet-bench conformance` after
//! the reachability tables and reported with them.
//!
//! Frames are built and parsed with smoltcp's wire types (code no one here wrote), never
//! with the dataplane's own; every translated frame's checksums are recomputed by
//! smoltcp before a case may pass.
//!
//! Invariants:
//! - each case is named after the requirement it proves (`rfc4787_req1_eim_udp`) and
//!   runs on a fresh pipeline, so no case passes on state another left behind;
//! - a case passes only on what the pipeline emitted (verdicts and frames); counters
//!   never decide;
//! - time is virtual ([`PipeRig::at`]): a 7440 s timeout costs nothing;
//! - deterministic: the same pipeline gives the same evidence.

use serde::Serialize;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet, IpAddress,
    IpProtocol, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber, UdpPacket,
    UdpRepr, ETHERNET_HEADER_LEN,
};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::frame::{FramePool, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;

/// One requirement's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuiteCase {
    /// Named after the requirement (`rfc4787_req1_eim_udp`).
    pub name: String,
    /// The requirement, in a few words.
    pub requirement: String,
    /// Whether the pipeline did what the requirement says.
    pub pass: bool,
    /// What was sent and seen, in one line.
    pub evidence: String,
}

/// One suite's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SuiteReport {
    /// The suite (`nat-behaviour`, `dhcp-rfc2131`).
    pub suite: String,
    /// What it ran against (`vnet-modes nat`).
    pub subject: String,
    /// Every case, in order.
    pub cases: Vec<SuiteCase>,
}

impl SuiteReport {
    /// Whether every case passed.
    pub fn all_pass(&self) -> bool {
        self.cases.iter().all(|c| c.pass)
    }

    /// `PASS|FAIL suite/name requirement: evidence`, one line per case.
    pub fn text(&self) -> String {
        let mut out = format!("Behaviour suite {} ({}):\n", self.suite, self.subject);
        for c in &self.cases {
            let _ = writeln!(
                out,
                "{} {}/{} [{}] {}",
                if c.pass { "PASS" } else { "FAIL" },
                self.suite,
                c.name,
                c.requirement,
                c.evidence
            );
        }
        out
    }
}

/// The outcome of one check: `Ok(evidence)` passes, `Err(evidence)` fails.
pub type Check = Result<String, String>;

/// Run `check` as the case `name` (a panic inside is a failure with its message).
pub fn case(name: &str, requirement: &str, check: impl FnOnce() -> Check) -> SuiteCase {
    let result =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(check)).unwrap_or_else(|p| {
            let why = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(format!("the check panicked: {why}"))
        });
    let (pass, evidence) = match result {
        Ok(e) => (true, e),
        Err(e) => (false, e),
    };
    SuiteCase {
        name: name.into(),
        requirement: requirement.into(),
        pass,
        evidence,
    }
}

/// `Ok(())` when `cond`, else `Err(why)`.
pub fn ensure(cond: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(why())
    }
}

/// One pipeline driven frame by frame in virtual time.
pub struct PipeRig {
    pipeline: Box<dyn Pipeline>,
    pool: FramePool,
    start: Instant,
    /// The current virtual time.
    pub now: Instant,
}

impl std::fmt::Debug for PipeRig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipeRig").field("now", &self.now).finish()
    }
}

/// What the pipeline did with one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Its verdict.
    pub verdict: Verdict,
    /// The frame as it left (rewritten in place).
    pub frame: Vec<u8>,
}

impl Sent {
    /// The ports it left on (none when dropped).
    pub fn ports(&self) -> PortMask {
        match self.verdict {
            Verdict::Tx(m) => m,
            _ => PortMask::EMPTY,
        }
    }

    /// Whether it left on exactly `port`.
    pub fn to(&self, port: PortId) -> bool {
        self.ports() == PortMask::one(port)
    }

    /// The verdict in words.
    pub fn describe(&self) -> String {
        match self.verdict {
            Verdict::Tx(m) if m == PortMask::EMPTY => "consumed".into(),
            Verdict::Tx(m) => {
                let ports: Vec<String> = m.iter().map(|p| p.to_string()).collect();
                format!("sent on port {}", ports.join("+"))
            }
            Verdict::Drop(r) => format!("dropped ({})", r.name()),
            Verdict::HandOff(w) => format!("handed to worker {w}"),
            Verdict::Consumed => "consumed".into(),
        }
    }
}

impl PipeRig {
    /// A rig over `pipeline`, starting at `start`.
    pub fn new(pipeline: Box<dyn Pipeline>, start: Instant) -> Self {
        Self {
            pipeline,
            pool: FramePool::with_heap(256, 2048, 0),
            start,
            now: start,
        }
    }

    /// Move the clock to `secs` after the start and run the pipeline's timers.
    pub fn at(&mut self, secs: u64) -> Vec<(PortMask, Vec<u8>)> {
        self.now = self.start + Duration::from_secs(secs);
        self.poll()
    }

    /// Run the pipeline's timers now; what it emitted.
    pub fn poll(&mut self) -> Vec<(PortMask, Vec<u8>)> {
        let mut out = Emitter::new();
        self.pipeline.poll(self.now, &mut self.pool, &mut out);
        let items: Vec<_> = out
            .items()
            .iter()
            .map(|(p, m)| (*m, self.pool.bytes(p).to_vec()))
            .collect();
        for (p, _) in out.items() {
            self.pool.free(p.frame);
        }
        items
    }

    /// Give `frame` to the pipeline as received on `port`.
    pub fn send(&mut self, port: PortId, frame: &[u8]) -> Sent {
        let Some(pkt) = self.pool.alloc_copy(frame, port) else {
            return Sent {
                verdict: Verdict::Consumed,
                frame: Vec::new(),
            };
        };
        let mut pkts = [pkt];
        let mut v = [Verdict::Consumed];
        self.pipeline
            .process(self.now, &mut self.pool, &mut pkts, &mut v);
        let out = self.pool.bytes(&pkts[0]).to_vec();
        if v[0] != Verdict::Consumed {
            self.pool.free(pkts[0].frame);
        }
        Sent {
            verdict: v[0],
            frame: out,
        }
    }
}

/// Layer-4 content of a crafted frame.
#[derive(Debug, Clone, Copy)]
pub enum L4<'a> {
    /// UDP from/to ports with a payload.
    Udp(u16, u16, &'a [u8]),
    /// TCP from/to ports with control, sequence, acknowledgement and payload.
    Tcp {
        /// Source port.
        src: u16,
        /// Destination port.
        dst: u16,
        /// SYN, FIN, RST or none.
        control: TcpControl,
        /// Sequence number.
        seq: u32,
        /// Acknowledgement number, if ACK is set.
        ack: Option<u32>,
        /// Payload.
        payload: &'a [u8],
    },
    /// An ICMP message: type, code, the 4 bytes after the checksum, and the rest.
    Icmp(u8, u8, [u8; 4], &'a [u8]),
}

/// The IPv4 packet (no Ethernet header) of `l4` from `src` to `dst`, checksums filled.
pub fn ipv4_packet(src: Ipv4Addr, dst: Ipv4Addr, l4: L4<'_>) -> Vec<u8> {
    let caps = ChecksumCapabilities::default();
    let (s, d) = (IpAddress::Ipv4(src), IpAddress::Ipv4(dst));
    let (proto, body) = match l4 {
        L4::Udp(sp, dp, payload) => {
            let mut b = vec![0u8; 8 + payload.len()];
            UdpRepr {
                src_port: sp,
                dst_port: dp,
            }
            .emit(
                &mut UdpPacket::new_unchecked(&mut b[..]),
                &s,
                &d,
                payload.len(),
                |p| p.copy_from_slice(payload),
                &caps,
            );
            (IpProtocol::Udp, b)
        }
        L4::Tcp {
            src: sp,
            dst: dp,
            control,
            seq,
            ack,
            payload,
        } => {
            let repr = TcpRepr {
                src_port: sp,
                dst_port: dp,
                control,
                seq_number: TcpSeqNumber(seq as i32),
                ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
                window_len: 64240,
                window_scale: None,
                max_seg_size: None,
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload,
            };
            let mut b = vec![0u8; repr.buffer_len()];
            repr.emit(&mut TcpPacket::new_unchecked(&mut b[..]), &s, &d, &caps);
            (IpProtocol::Tcp, b)
        }
        L4::Icmp(ty, code, rest, data) => {
            let mut b = vec![0u8; 8 + data.len()];
            b[0] = ty;
            b[1] = code;
            b[4..8].copy_from_slice(&rest);
            b[8..].copy_from_slice(data);
            Icmpv4Packet::new_unchecked(&mut b[..]).fill_checksum();
            (IpProtocol::Icmp, b)
        }
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: proto,
        payload_len: body.len(),
        hop_limit: 64,
    };
    let mut p = vec![0u8; ip.buffer_len() + body.len()];
    let mut pkt = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.emit(&mut pkt, &caps);
    pkt.payload_mut().copy_from_slice(&body);
    p
}

/// An Ethernet frame carrying `ip` (an IPv4 packet), padded to 60 bytes.
pub fn eth_frame(src_mac: [u8; 6], dst_mac: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac),
        dst_addr: EthernetAddress(dst_mac),
        ethertype: EthernetProtocol::Ipv4,
    };
    let mut f = vec![0u8; (ETHERNET_HEADER_LEN + ip.len()).max(60)];
    eth.emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + ip.len()].copy_from_slice(ip);
    f
}

/// An ARP reply "`spa` is at `sha`" to `tha`/`tpa`.
pub fn arp_reply(sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&tha);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&tha);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

/// An IPv4 frame's parts as its receiver sees them, after smoltcp verified every
/// checksum (IPv4 header, and UDP/TCP with the pseudo-header or ICMP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// IPv4 source.
    pub src: Ipv4Addr,
    /// IPv4 destination.
    pub dst: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    /// UDP/TCP source port, ICMP echo identifier, else 0.
    pub sport: u16,
    /// UDP/TCP destination port, else 0.
    pub dport: u16,
    /// The IP payload (the transport header included).
    pub l4: Vec<u8>,
    /// The UDP payload, if UDP.
    pub udp_payload: Vec<u8>,
}

/// Parse an Ethernet/IPv4 frame, verifying every checksum; `Err` says which failed.
pub fn parse(frame: &[u8]) -> Result<Parsed, String> {
    let eth = EthernetFrame::new_checked(frame).map_err(|e| format!("ethernet: {e}"))?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return Err(format!("not IPv4 but {}", eth.ethertype()));
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| format!("ipv4: {e}"))?;
    if !ip.verify_checksum() {
        return Err("bad IPv4 header checksum".into());
    }
    let (s, d) = (
        IpAddress::Ipv4(ip.src_addr()),
        IpAddress::Ipv4(ip.dst_addr()),
    );
    let payload = ip.payload();
    let (sport, dport, udp_payload) = match ip.next_header() {
        IpProtocol::Udp => {
            let u = UdpPacket::new_checked(payload).map_err(|e| format!("udp: {e}"))?;
            if !u.verify_checksum(&s, &d) {
                return Err("bad UDP checksum".into());
            }
            (u.src_port(), u.dst_port(), u.payload().to_vec())
        }
        IpProtocol::Tcp => {
            let t = TcpPacket::new_checked(payload).map_err(|e| format!("tcp: {e}"))?;
            if !t.verify_checksum(&s, &d) {
                return Err("bad TCP checksum".into());
            }
            (t.src_port(), t.dst_port(), Vec::new())
        }
        IpProtocol::Icmp => {
            let i = Icmpv4Packet::new_checked(payload).map_err(|e| format!("icmp: {e}"))?;
            if !i.verify_checksum() {
                return Err("bad ICMP checksum".into());
            }
            let id = if matches!(payload[0], 0 | 8) {
                u16::from_be_bytes([payload[4], payload[5]])
            } else {
                0
            };
            (id, 0, Vec::new())
        }
        _ => (0, 0, Vec::new()),
    };
    let mut src_mac = [0u8; 6];
    src_mac.copy_from_slice(&frame[6..12]);
    let mut dst_mac = [0u8; 6];
    dst_mac.copy_from_slice(&frame[..6]);
    Ok(Parsed {
        src_mac,
        dst_mac,
        src: ip.src_addr(),
        dst: ip.dst_addr(),
        proto: ip.next_header().into(),
        sport,
        dport,
        l4: payload.to_vec(),
        udp_payload,
    })
}
