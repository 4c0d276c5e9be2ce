//! Criterion benchmarks of the switched mode pipelines in memory: ns per packet on 64-frame
//! batches, with N known MACs/flows, no ports and no kernel in the way.
//!
//! `cargo bench -p vnet-modes --bench modes`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vnet_core::frame::{FramePool, Pkt};
use vnet_core::pipeline::{Pipeline, Verdict};
use vnet_core::time::Instant;
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::host_only::{HostOnlyConfig, HostOnlyMode};
use vnet_modes::internal::{InternalConfig, InternalMode};
use vnet_modes::layout::PortLayout;
use vnet_modes::segment::SwitchedMode;
use vnet_modes::switch::SwitchConfig;

const BATCH: usize = 64;

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// Each switched mode with 4 ports; `macs` stations spread over them, all learned;
/// each batch carries 64 unicast IPv4 frames between known stations (through the
/// gateway's cheap check where the mode has services).
/// Makes a fresh pipeline of one mode.
type Builder = fn() -> SwitchedMode;

fn switched_modes(c: &mut Criterion) {
    let builders: [(&str, Builder); 3] = [
        ("internal", || {
            InternalMode::internal(InternalConfig::new(4), Instant::ZERO).expect("internal mode")
        }),
        ("host_only", || {
            HostOnlyMode::host_only(
                HostOnlyConfig {
                    vms: 3,
                    switch: SwitchConfig::default(),
                    dhcp: Some(DhcpServerConfig::host_only()),
                },
                Instant::ZERO,
            )
            .expect("host-only mode")
        }),
        ("bridged", || {
            SwitchedMode::bridged(PortLayout::new(2, true, true), SwitchConfig::default())
        }),
    ];
    for (name, build) in builders {
        switch_group(c, name, build);
    }
}

fn switch_group(c: &mut Criterion, name: &str, build: fn() -> SwitchedMode) {
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Elements(BATCH as u64));
    for macs in [1u32, 64, 4096] {
        let ports = 4usize;
        let mut mode = build();
        let mut pool = FramePool::with_heap(4096, 2048, 256);
        let now = Instant::from_secs(1);
        // Learn every station: one broadcast from each.
        let station_port = |n: u32| (n as usize % ports) as u16;
        for n in 0..macs {
            let mut f = [0u8; 64];
            f[..6].copy_from_slice(&[0xff; 6]);
            f[6..12].copy_from_slice(&mac(n));
            let mut pkts = [pool.alloc_copy(&f, station_port(n)).unwrap()];
            let mut v = [Verdict::Consumed];
            mode.process(now, &mut pool, &mut pkts, &mut v);
            pool.free(pkts[0].frame);
        }
        // A batch of frames from station i to station i+1 (on another port). With one
        // known MAC, the frames come from one more station (learned by the first frame).
        let mut batch: Vec<Pkt> = (0..BATCH as u32)
            .map(|i| {
                let (src, dst) = if macs == 1 {
                    (1, 0)
                } else {
                    ((i * 7919) % macs, ((i * 7919) % macs + 1) % macs)
                };
                let mut f = [0u8; 64];
                f[..6].copy_from_slice(&mac(dst));
                f[6..12].copy_from_slice(&mac(src));
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                // IPv4/UDP between two guests (not to a service address).
                f[14] = 0x45;
                f[16..18].copy_from_slice(&46u16.to_be_bytes());
                f[22] = 64;
                f[23] = 17;
                f[26..30].copy_from_slice(&[192, 168, 56, 20]);
                f[30..34].copy_from_slice(&[192, 168, 56, 21]);
                let port = station_port(src);
                pool.alloc_copy(&f, port).unwrap()
            })
            .collect();
        let mut verdicts = [Verdict::Consumed; BATCH];
        // Every frame goes to exactly one port: the path measured is the unicast one.
        mode.process(now, &mut pool, &mut batch, &mut verdicts);
        assert!(verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Tx(m) if m.len() == 1)));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{macs}_macs")),
            &macs,
            |b, _| {
                b.iter(|| {
                    mode.process(now, &mut pool, black_box(&mut batch), &mut verdicts);
                    black_box(&verdicts);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, switched_modes);
criterion_main!(benches);
