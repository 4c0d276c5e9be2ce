//! Offload normalisation micro-benchmarks (criterion).
//!
//! - `csum_check_full_64`: the ingress test on a 64-byte TCP frame whose checksum is
//!   already complete (the bench generator's frames, most frames): the cost every frame
//!   pays.
//! - `csum_complete_64`, `csum_complete_1500`: completing a partial checksum (the field
//!   reset to the pseudo-header sum before each run, included in the time).
//! - `gso_segment_64k`: cutting a 64 KiB TSO super-frame into 46 MTU-sized segments
//!   (headers, payload copies, checksums); per super-frame.
//!
//! Run: `cargo bench -p vnet-core --no-default-features --bench offload`.

mod common;

use common::tcp_frame;
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vnet_core::offload::{complete_partial, gso};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("offload");
    g.throughput(Throughput::Elements(1));
    let (mut full, _) = tcp_frame(64);
    g.bench_function("csum_check_full_64", |b| {
        b.iter(|| complete_partial(black_box(&mut full)))
    });
    for len in [64usize, 1500] {
        let (mut f, partial) = tcp_frame(len);
        g.bench_function(format!("csum_complete_{len}"), |b| {
            b.iter(|| {
                f[50..52].copy_from_slice(&partial.to_be_bytes());
                complete_partial(black_box(&mut f))
            })
        });
    }
    let (sup, _) = tcp_frame(14 + 65_535);
    let plan = gso::plan(&sup, 1500, 1792, None).expect("a TCP super-frame");
    let mut out = vec![0u8; 1792];
    g.bench_function("gso_segment_64k", |b| {
        b.iter(|| {
            for i in 0..plan.segments() {
                gso::write_segment(black_box(&sup), &plan, i, &mut out);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
