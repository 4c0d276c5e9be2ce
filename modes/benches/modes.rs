//! Criterion benchmarks of the mode pipelines in memory: ns per packet on 64-frame
//! batches, with N known MACs/flows, no ports and no kernel in the way.
//!
//! `cargo bench -p vnet-modes --bench modes`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vnet_core::frame::{FramePool, Pkt};
use vnet_core::pipeline::{Pipeline, Verdict};
use vnet_core::time::Instant;
use vnet_modes::internal::{InternalConfig, InternalMode};
use vnet_modes::switch::SwitchConfig;

const BATCH: usize = 64;

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

/// Internal switch with 4 VM ports; `macs` stations spread over them, all learned;
/// each batch carries 64 unicast frames between known stations.
fn internal_switch(c: &mut Criterion) {
    let mut group = c.benchmark_group("internal_switch");
    group.throughput(Throughput::Elements(BATCH as u64));
    for macs in [1u32, 64, 4096] {
        let ports = 4usize;
        let mut mode = InternalMode::internal(
            InternalConfig {
                switch: SwitchConfig {
                    fdb_max: 4096,
                    ..SwitchConfig::default()
                },
                ..InternalConfig::new(ports)
            },
            Instant::ZERO,
        )
        .expect("internal mode");
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
        // A batch of frames from station i to station i+1 (a different port when macs > 1).
        let mut batch: Vec<Pkt> = (0..BATCH as u32)
            .map(|i| {
                let src = (i * 7919) % macs;
                let dst = if macs == 1 { src } else { (src + 1) % macs };
                let mut f = [0u8; 64];
                f[..6].copy_from_slice(&mac(dst));
                f[6..12].copy_from_slice(&mac(src));
                f[12..14].copy_from_slice(&[0x08, 0x00]);
                // With one station the frame comes in on another port than its own.
                let port = if macs == 1 {
                    (station_port(src) + 1) % ports as u16
                } else {
                    station_port(src)
                };
                pool.alloc_copy(&f, port).unwrap()
            })
            .collect();
        let mut verdicts = [Verdict::Consumed; BATCH];
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
        assert!(verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Tx(m) if m.len() == 1)));
    }
    group.finish();
}

criterion_group!(benches, internal_switch);
criterion_main!(benches);
