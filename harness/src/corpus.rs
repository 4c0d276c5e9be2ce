//! The committed traffic corpus (`pcaps/`) and the replay of captures through a mode.
//!
//! `vnet-bench pcap gen [--out DIR]` writes the corpus: every frame is built here from
//! literal fields with fixed addresses (the guest 10.0.2.15 / 192.168.60.11 side of the
//! harness's topologies) and fixed timestamps (1 ms apart from 1 s), so the files are
//! byte-for-byte reproducible; a test regenerates them and compares with `pcaps/`.
//!
//! `vnet-bench replay --mode MODE --pcap FILE --port PORT --out DIR` runs a capture into
//! one port of the mode's default layout (in memory, virtual time advancing 1 ms per loop)
//! and writes what leaves every port as `DIR/ROLE.pcap`.

use crate::cli::ModeName;
use anyhow::{anyhow, bail, Context, Result};
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;
use vnet_core::counters::CounterSet;
use vnet_core::engine::{HandoffRx, HandoffTx, Worker, WorkerConfig};
use vnet_core::frame::{FramePool, PortId};
use vnet_core::pipeline::Pipeline;
use vnet_core::port::pcap::PcapPort;
use vnet_core::port::Port;
use vnet_core::time::Instant;
use vnet_core::wire::checksum;
use vnet_modes::any::AnyMode;
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::host_only::HostOnlyConfig;
use vnet_modes::internal::InternalConfig;
use vnet_modes::layout::{PortLayout, PortRole};
use vnet_modes::natmode::{HostLink, NatFlavor, NatModeConfig, NatSpec};
use vnet_modes::segment::SegmentSpec;
use vnet_modes::switch::SwitchConfig;

const GUEST_MAC: [u8; 6] = [0x08, 0x00, 0x27, 0x00, 0x00, 0x01];
const PEER_MAC: [u8; 6] = [0x08, 0x00, 0x27, 0x00, 0x00, 0x02];
const ROUTER_MAC: [u8; 6] = [0x02, 0x76, 0x6e, 0x00, 0x02, 0x02];
const GUEST: [u8; 4] = [10, 0, 2, 15];
const PEER: [u8; 4] = [10, 0, 2, 16];
const INET: [u8; 4] = [198, 18, 0, 1];

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn ipv4(src: [u8; 4], dst: [u8; 4], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    let sum = checksum::data(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(l4);
    // Transport checksum over the pseudo-header.
    let at = match proto {
        6 => Some(20 + 16),
        17 => Some(20 + 6),
        _ => None,
    };
    if let Some(at) = at {
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&src);
        pseudo.extend_from_slice(&dst);
        pseudo.extend_from_slice(&[0, proto]);
        pseudo.extend_from_slice(&(l4.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(&p[20..]);
        let mut sum = checksum::data(&pseudo);
        if proto == 17 && sum == 0 {
            sum = 0xffff;
        }
        p[at..at + 2].copy_from_slice(&sum.to_be_bytes());
    }
    p
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

fn tcp(sport: u16, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&ack.to_be_bytes());
    t.extend_from_slice(&[0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t
}

fn icmp_echo(id: u16, seq: u16) -> Vec<u8> {
    let mut i = vec![8, 0, 0, 0];
    i.extend_from_slice(&id.to_be_bytes());
    i.extend_from_slice(&seq.to_be_bytes());
    i.extend_from_slice(b"vnet-bench");
    let sum = checksum::data(&i);
    i[2..4].copy_from_slice(&sum.to_be_bytes());
    i
}

fn arp(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa);
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa);
    a
}

fn dhcp(msg_type: u8, xid: u32, requested: Option<[u8; 4]>, server: Option<[u8; 4]>) -> Vec<u8> {
    let mut b = vec![0u8; 236];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&xid.to_be_bytes());
    b[10] = 0x80; // broadcast flag
    b[28..34].copy_from_slice(&GUEST_MAC);
    b.extend_from_slice(&[99, 130, 83, 99, 53, 1, msg_type]);
    if let Some(r) = requested {
        b.extend_from_slice(&[50, 4]);
        b.extend_from_slice(&r);
    }
    if let Some(s) = server {
        b.extend_from_slice(&[54, 4]);
        b.extend_from_slice(&s);
    }
    b.extend_from_slice(&[55, 4, 1, 3, 6, 12, 255]);
    b.resize(300, 0);
    b
}

/// The corpus: (file name, description, frames in order).
pub fn corpus() -> Vec<(&'static str, &'static str, Vec<Vec<u8>>)> {
    let bcast = [0xff; 6];
    let guest_udp = |payload: &[u8]| {
        eth(
            ROUTER_MAC,
            GUEST_MAC,
            0x0800,
            &ipv4(GUEST, INET, 17, &udp(40000, 7, payload)),
        )
    };
    vec![
        (
            "dhcp-exchange.pcap",
            "a guest's DHCPDISCOVER and its SELECTING DHCPREQUEST for 10.0.2.15 (server 10.0.2.2), broadcast",
            vec![
                eth(bcast, GUEST_MAC, 0x0800, &ipv4([0; 4], [255; 4], 17, &udp(68, 67, &dhcp(1, 0x5642_0001, None, None)))),
                eth(
                    bcast,
                    GUEST_MAC,
                    0x0800,
                    &ipv4([0; 4], [255; 4], 17, &udp(68, 67, &dhcp(3, 0x5642_0001, Some(GUEST), Some([10, 0, 2, 2])))),
                ),
            ],
        ),
        (
            "arp.pcap",
            "a guest's ARP request for its gateway 10.0.2.2, then a gratuitous ARP announcing 10.0.2.15",
            vec![
                eth(bcast, GUEST_MAC, 0x0806, &arp(1, GUEST_MAC, GUEST, [0; 6], [10, 0, 2, 2])),
                eth(bcast, GUEST_MAC, 0x0806, &arp(1, GUEST_MAC, GUEST, [0; 6], GUEST)),
            ],
        ),
        (
            "icmp-echo.pcap",
            "three ICMP echo requests from the guest to 198.18.0.1 through its router",
            (1..=3).map(|s| eth(ROUTER_MAC, GUEST_MAC, 0x0800, &ipv4(GUEST, INET, 1, &icmp_echo(0x1234, s)))).collect(),
        ),
        (
            "udp.pcap",
            "three UDP datagrams from the guest's port 40000 to 198.18.0.1:7",
            (0..3u8).map(|i| guest_udp(&[b'v', b'n', b'e', b't', b'0' + i])).collect(),
        ),
        (
            "tcp-handshake.pcap",
            "a guest's TCP SYN to 198.18.0.1:80, then its ACK and FIN (the server's side is not in the file)",
            vec![
                eth(ROUTER_MAC, GUEST_MAC, 0x0800, &ipv4(GUEST, INET, 6, &tcp(40001, 80, 1000, 0, 0x02))),
                eth(ROUTER_MAC, GUEST_MAC, 0x0800, &ipv4(GUEST, INET, 6, &tcp(40001, 80, 1001, 5001, 0x10))),
                eth(ROUTER_MAC, GUEST_MAC, 0x0800, &ipv4(GUEST, INET, 6, &tcp(40001, 80, 1001, 5001, 0x11))),
            ],
        ),
        (
            "negative-probes.pcap",
            "what a `-` cell sends to a peer 10.0.2.16 it must not reach: directed unicast to its MAC, a broadcast ping, an ARP request",
            vec![
                eth(PEER_MAC, GUEST_MAC, 0x0800, &ipv4(GUEST, PEER, 17, &udp(40002, 7, b"probe-unicast"))),
                eth(bcast, GUEST_MAC, 0x0800, &ipv4(GUEST, [10, 0, 2, 255], 1, &icmp_echo(0x4242, 1))),
                eth(bcast, GUEST_MAC, 0x0806, &arp(1, GUEST_MAC, GUEST, [0; 6], PEER)),
            ],
        ),
        (
            "malformed.pcap",
            "frames every mode must drop and count, never crash on: runt, truncated IPv4, bad IPv4 checksum, truncated UDP, truncated ARP",
            {
                let good = guest_udp(b"x");
                let mut bad_sum = good.clone();
                bad_sum[24] ^= 0xff;
                vec![
                    good[..10].to_vec(),
                    good[..24].to_vec(),
                    bad_sum,
                    good[..38].to_vec(),
                    eth(bcast, GUEST_MAC, 0x0806, &arp(1, GUEST_MAC, GUEST, [0; 6], PEER))[..30].to_vec(),
                ]
            },
        ),
    ]
}

/// Write the corpus into `dir` (and its index, `dir/CORPUS.md`).
pub fn generate(dir: &Path) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut index = String::from(
        "# pcaps/: the corpus\n\nMade by `vnet-bench pcap gen --out pcaps` (harness/src/corpus.rs); `cargo test` fails when\nthese files differ from what it makes. Guest 10.0.2.15 (08:00:27:00:00:01), router MAC\n02:76:6e:00:02:02, inet 198.18.0.1; timestamps 1 ms apart from 1 s.\n\n| file | frames | what |\n|---|---|---|\n",
    );
    let mut written = Vec::new();
    for (name, what, frames) in corpus() {
        let path = dir.join(name);
        let mut port = PcapPort::open(0, None, Some(&path))?;
        let mut pool = FramePool::with_heap(frames.len() as u32 + 1, 2048, 0);
        for (i, f) in frames.iter().enumerate() {
            port.set_clock(Duration::from_secs(1) + Duration::from_millis(i as u64));
            let pkt = pool
                .alloc_copy(f, 0)
                .ok_or_else(|| anyhow!("frame too long"))?;
            if port.tx_burst(&mut pool, &[pkt]) != 1 {
                bail!("could not write {}", path.display());
            }
        }
        port.flush();
        if let Some(e) = port.output_error() {
            bail!("{e}");
        }
        index.push_str(&format!("| `{name}` | {} | {what} |\n", frames.len()));
        written.push(name.to_string());
    }
    std::fs::write(dir.join("CORPUS.md"), index)?;
    Ok(written)
}

/// Replay `frames` (in order, one per loop) into port `input` of `mode`'s default layout,
/// in memory; returns what left each port, in port order (VMs, host, uplink).
pub fn replay_frames(
    mode: ModeName,
    frames: &[Vec<u8>],
    input: usize,
) -> Result<Vec<Vec<Vec<u8>>>> {
    let (layout, pipeline) = replay_pipeline(mode)?;
    let mut ports: Vec<(PortId, Box<dyn Port>)> = Vec::new();
    let mut peers = Vec::new();
    for i in 0..layout.len() {
        let (port, peer) = vnet_core::port::mem::mem_pair(&format!("p{i}"), i as PortId, 256);
        ports.push((i as PortId, Box::new(port)));
        peers.push(peer);
    }
    let counters = CounterSet::new(1, layout.len());
    let mut worker = Worker::new(
        0,
        ports,
        &vec![0u8; layout.len()],
        FramePool::with_heap(1024, 2048, 256),
        pipeline,
        counters.worker(0),
        (HandoffTx::none(), HandoffRx::none()),
        WorkerConfig { timer_every: 1 },
    );
    let mut out: Vec<Vec<Vec<u8>>> = vec![Vec::new(); layout.len()];
    let mut t = 1_000u64;
    let mut step = |worker: &mut Worker<AnyMode>, out: &mut Vec<Vec<Vec<u8>>>| {
        t += 1;
        worker.run_once(Instant::from_millis(t));
        for (i, peer) in peers.iter().enumerate() {
            out[i].extend(peer.drain());
        }
    };
    // Let the mode announce itself first (gratuitous ARP, next-hop ARP), then forget it.
    for _ in 0..3 {
        step(&mut worker, &mut out);
    }
    out.iter_mut().for_each(Vec::clear);
    let input_peer = peers[input].clone();
    for f in frames {
        input_peer.send(f);
        step(&mut worker, &mut out);
    }
    for _ in 0..10 {
        step(&mut worker, &mut out);
    }
    Ok(out)
}

/// The mode's default layout for replay and a pipeline over it.
pub fn replay_pipeline(mode: ModeName) -> Result<(PortLayout, AnyMode)> {
    let now = Instant::ZERO;
    Ok(match mode {
        ModeName::Internal => {
            let spec = SegmentSpec::internal(InternalConfig::new(2), now)?;
            (spec.layout, AnyMode::Switched(spec.build(0)))
        }
        ModeName::HostOnly => {
            let spec = SegmentSpec::host_only(
                HostOnlyConfig {
                    vms: 2,
                    switch: SwitchConfig::default(),
                    dhcp: Some(DhcpServerConfig::host_only()),
                },
                now,
            )?;
            (spec.layout, AnyMode::Switched(spec.build(0)))
        }
        ModeName::Bridged => {
            let layout = PortLayout::new(2, true, true);
            (
                layout,
                AnyMode::Switched(SegmentSpec::bridged(layout, SwitchConfig::default()).build(0)),
            )
        }
        ModeName::Nat | ModeName::NatNetwork => {
            let flavor = if mode == ModeName::Nat {
                NatFlavor::PerVm
            } else {
                NatFlavor::Network
            };
            let mut c = NatModeConfig::new(
                flavor,
                2,
                Ipv4Addr::from(INET).saturating_next(),
                Ipv4Addr::from(INET),
            );
            c.host = Some(HostLink::default());
            let layout = c.layout();
            let spec = NatSpec::new(c, 1, now)?;
            (layout, AnyMode::Nat(spec.build(0, 1, now)?))
        }
    })
}

trait NextAddr {
    fn saturating_next(self) -> Ipv4Addr;
}

impl NextAddr for Ipv4Addr {
    fn saturating_next(self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self).saturating_add(1))
    }
}

fn role_name(role: PortRole) -> String {
    match role {
        PortRole::Vm(i) => format!("vm{}", i + 1),
        PortRole::Host => "host".into(),
        PortRole::Uplink => "uplink".into(),
    }
}

/// Replay `pcap` into `port` (a role name or number) of `mode`; write every port's output
/// to `out/ROLE.pcap`. Returns (role, frames out) per port.
pub fn replay(mode: ModeName, pcap: &Path, port: &str, out: &Path) -> Result<Vec<(String, u64)>> {
    let (layout, pipeline) = replay_pipeline(mode)?;
    let roles: Vec<String> = (0..layout.len())
        .map(|p| role_name(layout.role(p as PortId).expect("role")))
        .collect();
    let input = match port.parse::<usize>() {
        Ok(n) if n < roles.len() => n,
        _ => roles.iter().position(|r| r == port).ok_or_else(|| {
            anyhow!(
                "mode {} has no port {port:?}; its ports are {}",
                mode.as_str(),
                roles.join(", ")
            )
        })?,
    };
    std::fs::create_dir_all(out).with_context(|| format!("could not create {}", out.display()))?;
    let mut ports: Vec<(PortId, Box<dyn Port>)> = Vec::new();
    for (i, role) in roles.iter().enumerate() {
        let path = out.join(format!("{role}.pcap"));
        let p = PcapPort::open(i as PortId, (i == input).then_some(pcap), Some(&path))?;
        ports.push((i as PortId, Box::new(p)));
    }
    let counters = CounterSet::new(1, roles.len());
    let mut worker = Worker::new(
        0,
        ports,
        &vec![0u8; roles.len()],
        FramePool::with_heap(4096, 2048, 256),
        pipeline,
        counters.worker(0),
        (HandoffTx::none(), HandoffRx::none()),
        WorkerConfig { timer_every: 1 },
    );
    replay_loop(&mut worker);
    let totals = counters.snapshot();
    Ok(roles
        .into_iter()
        .zip(totals.iter().map(|t| t.tx_packets))
        .collect())
}

fn replay_loop<M: Pipeline>(worker: &mut Worker<M>) {
    // Virtual time from 1 s, 1 ms a loop; stop after 200 loops without input.
    let mut idle = 0;
    let mut t = 1_000u64;
    while idle < 200 {
        t += 1;
        if worker.run_once(Instant::from_millis(t)) == 0 {
            idle += 1;
        } else {
            idle = 0;
        }
    }
    worker.flush_ports();
}
