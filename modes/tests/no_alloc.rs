//! The hot loop allocates nothing: a worker running the Internal mode over in-memory
//! ports, flooding and forwarding, is run under a counting global allocator, and the
//! number of allocations during the measured loops must be zero.

mod support;

use vnet_core::counters::CounterSet;
use vnet_core::engine::{HandoffMesh, Worker, WorkerConfig};
use vnet_core::frame::FramePool;
use vnet_core::port::mem::mem_pair;
use vnet_core::port::Port;
use vnet_core::time::Instant;
use vnet_modes::internal::{InternalConfig, InternalMode};

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

fn frame(dst: [u8; 6], src: [u8; 6], seq: u16) -> [u8; 64] {
    let mut f = [0u8; 64];
    f[..6].copy_from_slice(&dst);
    f[6..12].copy_from_slice(&src);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14..16].copy_from_slice(&seq.to_be_bytes());
    f
}

#[test]
fn hot_loop_does_not_allocate() {
    // Two workers (so hand-off is on the path too), three VM ports.
    let (p0, vm0) = mem_pair("vm0", 0, 256);
    let (p1, vm1) = mem_pair("vm1", 1, 256);
    let (p2, vm2) = mem_pair("vm2", 2, 256);
    let owners = [0u8, 1, 0];
    let counters = CounterSet::new(2, 3);
    let mut mesh = HandoffMesh::new(2, 256);
    let h1 = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
    let h0 = (mesh.tx.pop().unwrap(), mesh.rx.pop().unwrap());
    let mut w0 = Worker::new(
        0,
        vec![
            (0, Box::new(p0) as Box<dyn Port>),
            (2, Box::new(p2) as Box<dyn Port>),
        ],
        &owners,
        FramePool::with_heap(1024, 2048, 256),
        InternalMode::internal(InternalConfig::new(3), Instant::ZERO).expect("internal mode"),
        counters.worker(0),
        h0,
        WorkerConfig { timer_every: 8 },
    );
    let mut w1 = Worker::new(
        1,
        vec![(1, Box::new(p1) as Box<dyn Port>)],
        &owners,
        FramePool::with_heap(1024, 2048, 256),
        InternalMode::internal(InternalConfig::new(3), Instant::ZERO).expect("internal mode"),
        counters.worker(1),
        h1,
        WorkerConfig { timer_every: 8 },
    );
    let macs = [[2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], [2, 0, 0, 0, 0, 3]];
    let peers = [&vm0, &vm1, &vm2];
    let mut buf = [0u8; 2048];
    let mut t = 0u64;
    let mut step = |w0: &mut Worker<InternalMode>, w1: &mut Worker<InternalMode>, seq: u16| {
        // Every station broadcasts, then sends unicast to the next station.
        for (i, peer) in peers.iter().enumerate() {
            assert!(peer.send(&frame([0xff; 6], macs[i], seq)));
            assert!(peer.send(&frame(macs[(i + 1) % 3], macs[i], seq)));
        }
        for _ in 0..3 {
            t += 1_000_000;
            w0.run_once(Instant::from_nanos(t));
            w1.run_once(Instant::from_nanos(t));
        }
        let mut got = 0;
        for peer in &peers {
            while peer.recv_into(&mut buf).is_some() {
                got += 1;
            }
        }
        got
    };
    // The counter counts (so a zero below means something).
    let ((), counted) = support::count_allocs(|| drop(std::hint::black_box(vec![1u8; 8])));
    assert!(counted > 0);
    // Warm up: learn everything, touch every lazily-initialised path.
    for seq in 0..50 {
        step(&mut w0, &mut w1, seq);
    }
    support::start();
    let mut delivered = 0;
    for seq in 0..2000 {
        delivered += step(&mut w0, &mut w1, seq);
    }
    let allocs = support::stop();
    // Each step: 3 broadcasts x 2 receivers + 3 unicasts = 9 deliveries.
    assert_eq!(delivered, 2000 * 9, "frames were lost");
    assert_eq!(allocs, 0, "the hot loop allocated {allocs} times");
}
