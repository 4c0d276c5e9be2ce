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

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use vnet_core::offload::{complete_partial, gso};
use vnet_core::wire::checksum;

/// An Ethernet/IPv4/TCP frame of `len` bytes (20-byte TCP header) with a complete
/// checksum, and the partial value of its checksum field.
fn tcp_frame(len: usize) -> (Vec<u8>, u16) {
    let mut f = vec![0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1, 0x08, 0x00];
    let total = len - 14;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 0, 2, 15, 198, 18, 0, 1]);
    let c = checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&[0x9c, 0x40, 0x14, 0x51, 0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x10]);
    f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    f.extend((f.len()..len).map(|i| i as u8));
    let tcp_len = (total - 20) as u32;
    let partial = checksum::fold(0x0a00 + 0x020f + 0xc612 + 0x0001 + 6 + tcp_len);
    f[50..52].copy_from_slice(&partial.to_be_bytes());
    complete_partial(&mut f);
    (f, partial)
}

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
