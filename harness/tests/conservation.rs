//! Frames are conserved: a million mixed frames per mode (the pcap corpus, floods of random source
//! MACs, broadcasts, ARP to the gateway, DHCP DISCOVERs with random clients, SYNs to random
//! ports, truncations and random bytes) on random ports of every mode, through the engine's
//! worker and memory ports; afterwards the frame pool holds exactly the frames it started
//! with, and the counters add up: each port received what was sent to it, and what left
//! each port is what its counters say it transmitted.

use std::net::Ipv4Addr;
use vnet_bench::cli::ModeName;
use vnet_bench::corpus::{corpus, replay_pipeline};
use vnet_core::counters::CounterSet;
use vnet_core::engine::{HandoffRx, HandoffTx, Worker, WorkerConfig};
use vnet_core::frame::{FramePool, PortId};
use vnet_core::port::mem::mem_pair;
use vnet_core::port::Port;
use vnet_core::time::Instant;

/// Frames through each mode.
const FRAMES_PER_MODE: u64 = 1_000_000;
const POOL: u32 = 1024;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn mac(&mut self) -> [u8; 6] {
        let b = self.next().to_be_bytes();
        [b[0] & 0xfe | 2, b[1], b[2], b[3], b[4], b[5]]
    }
}

fn ipv4_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    l4: (u8, &[u8]),
) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = 20 + l4.1.len();
    let mut ip = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        l4.0,
        0,
        0,
    ];
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let c = vnet_core::wire::checksum::data(&ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&ip);
    f.extend_from_slice(l4.1);
    f
}

/// One frame of the mix.
fn mixed(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let guest = Ipv4Addr::new(10, 0, 2, 15);
    let router = [0x02, 0x76, 0x6e, 0, 2, 2];
    match rng.below(10) {
        0 | 1 => corpus[rng.below(corpus.len() as u64) as usize].clone(),
        9 => {
            // The NAT modes' next hop answering for itself (so translation runs too).
            let gw_mac = [0x0a, 0, 0, 0, 0, 1];
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&gw_mac);
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
            f.extend_from_slice(&gw_mac);
            f.extend_from_slice(&[198, 18, 0, 1]);
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&[198, 18, 0, 2]);
            f.resize(60, 0);
            f
        }
        2 => {
            // Unicast to nobody from a random source (MAC flood).
            let mut f = rng.mac().to_vec();
            f.extend_from_slice(&rng.mac());
            f.extend_from_slice(&[0x08, 0x00]);
            f.resize(60, 0);
            f
        }
        3 => {
            // Broadcast.
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&rng.mac());
            f.extend_from_slice(&[0x08, 0x06]);
            f.resize(60, 0);
            f
        }
        4 => {
            // ARP request for the gateway.
            let mac = rng.mac();
            let mut f = vec![0xff; 6];
            f.extend_from_slice(&mac);
            f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
            f.extend_from_slice(&mac);
            f.extend_from_slice(&guest.octets());
            f.extend_from_slice(&[0; 6]);
            f.extend_from_slice(&[10, 0, 2, 2]);
            f.resize(60, 0);
            f
        }
        5 => {
            // A SYN to a random port, or UDP, outbound.
            let sport = (1024 + rng.below(60000)) as u16;
            let dport = (1 + rng.below(65000)) as u16;
            let mut l4 = vec![0u8; 20];
            l4[0..2].copy_from_slice(&sport.to_be_bytes());
            l4[2..4].copy_from_slice(&dport.to_be_bytes());
            let proto = if rng.below(2) == 0 {
                l4[12] = 0x50;
                l4[13] = 0x02;
                6
            } else {
                l4[4..6].copy_from_slice(&20u16.to_be_bytes());
                17
            };
            ipv4_frame(
                router,
                [8, 0, 0x27, 0, 0, 1],
                guest,
                Ipv4Addr::new(198, 18, 9, 9),
                (proto, &l4),
            )
        }
        6 => {
            // Inbound to a random external port.
            let mut l4 = vec![0u8; 8];
            l4[0..2].copy_from_slice(&53u16.to_be_bytes());
            l4[2..4].copy_from_slice(&((1024 + rng.below(60000)) as u16).to_be_bytes());
            l4[4..6].copy_from_slice(&8u16.to_be_bytes());
            ipv4_frame(
                rng.mac(),
                rng.mac(),
                Ipv4Addr::new(198, 18, 0, 1),
                Ipv4Addr::new(198, 18, 0, 2),
                (17, &l4),
            )
        }
        7 => {
            // A corpus frame cut short.
            let f = &corpus[rng.below(corpus.len() as u64) as usize];
            f[..rng.below(f.len() as u64 + 1) as usize].to_vec()
        }
        _ => {
            // Random bytes with an IPv4 EtherType.
            let len = 14 + rng.below(300) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f
        }
    }
}

fn conserve(mode: ModeName) {
    let (layout, pipeline) = replay_pipeline(mode).unwrap();
    let n = layout.len();
    let mut ports: Vec<(PortId, Box<dyn Port>)> = Vec::new();
    let mut peers = Vec::new();
    for i in 0..n {
        let (port, peer) = mem_pair(&format!("p{i}"), i as PortId, 256);
        ports.push((i as PortId, Box::new(port)));
        peers.push(peer);
    }
    let counters = CounterSet::new(1, n);
    let mut worker = Worker::new(
        0,
        ports,
        &vec![0u8; n],
        FramePool::with_heap(POOL, 2048, 256),
        pipeline,
        counters.worker(0),
        (HandoffTx::none(), HandoffRx::none()),
        WorkerConfig { timer_every: 1 },
    );
    let start_free = worker.pool().free_count();
    let corpus: Vec<Vec<u8>> = corpus().into_iter().flat_map(|(_, _, f)| f).collect();
    let mut rng = Rng(0xc0ffee ^ n as u64);
    let mut sent = vec![0u64; n];
    let mut out = vec![0u64; n];
    let mut t = 1_000_000_000u64;
    let mut total = 0u64;
    while total < FRAMES_PER_MODE {
        for _ in 0..64 {
            let f = mixed(&mut rng, &corpus);
            if f.is_empty() {
                continue;
            }
            let p = rng.below(n as u64) as usize;
            if peers[p].send(&f) {
                sent[p] += 1;
            }
            total += 1;
        }
        t += 50_000;
        worker.run_once(Instant::from_nanos(t));
        for (i, peer) in peers.iter().enumerate() {
            out[i] += peer.drain().len() as u64;
        }
    }
    // Let timers run (ARP retries, DHCP offers, NAT expiry) and everything drain.
    for _ in 0..100 {
        t += 10_000_000;
        worker.run_once(Instant::from_nanos(t));
        for (i, peer) in peers.iter().enumerate() {
            out[i] += peer.drain().len() as u64;
        }
    }
    assert_eq!(
        worker.pool().free_count(),
        start_free,
        "{mode:?}: frames leaked (pool of {POOL})"
    );
    let totals = counters.snapshot();
    for i in 0..n {
        assert_eq!(totals[i].rx_packets, sent[i], "{mode:?} port {i}: rx count");
        assert_eq!(totals[i].tx_packets, out[i], "{mode:?} port {i}: tx count");
    }
    let rx: u64 = sent.iter().sum();
    let dropped: u64 = totals.iter().map(|t| t.dropped()).sum();
    assert!(
        dropped > 0 && dropped <= rx,
        "{mode:?}: {dropped} drops of {rx}"
    );
    println!(
        "{mode:?}: {rx} frames in, {} out, {dropped} dropped, pool {start_free} free before and after",
        out.iter().sum::<u64>()
    );
}

#[test]
fn internal_conserves_frames() {
    conserve(ModeName::Internal);
}

#[test]
fn host_only_conserves_frames() {
    conserve(ModeName::HostOnly);
}

#[test]
fn bridged_conserves_frames() {
    conserve(ModeName::Bridged);
}

#[test]
fn nat_conserves_frames() {
    conserve(ModeName::Nat);
}

#[test]
fn nat_network_conserves_frames() {
    conserve(ModeName::NatNetwork);
}
