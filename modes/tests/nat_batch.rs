//! Batch warming (`Napt::warm_outbound`, `Napt::warm_inbound`) is only a hint: a stage
//! that warms every batch before translating it gives the same verdicts, the same bytes
//! and the same counters as one that does not, whatever the packets (valid flows, replies,
//! unknown flows, garbage, truncated headers), and warming allocates nothing.

mod support;

use std::net::Ipv4Addr;

use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use vnet_core::time::Instant;
use vnet_core::wire::checksum;
use vnet_modes::nat::{Filtering, Napt, NaptConfig};

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

/// The allocation counter is global: tests hold this while they run, so the count of one
/// never includes another's allocations.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);

fn ip(src: u32, dst: u32, proto: u8, l4: &[u8]) -> Vec<u8> {
    support::ipv4(src.into(), dst.into(), proto, l4)
}

/// A packet of one of a few shapes: `kind` picks UDP, TCP (with `flags`), ICMP echo (type
/// 8 or 0), or raw bytes.
fn packet(kind: u8, src: u32, dst: u32, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    match kind % 5 {
        0 => {
            let mut l4 = [0u8; 12];
            l4[0..2].copy_from_slice(&sport.to_be_bytes());
            l4[2..4].copy_from_slice(&dport.to_be_bytes());
            l4[4..6].copy_from_slice(&12u16.to_be_bytes());
            ip(src, dst, 17, &l4)
        }
        1 => {
            let mut l4 = [0u8; 20];
            l4[0..2].copy_from_slice(&sport.to_be_bytes());
            l4[2..4].copy_from_slice(&dport.to_be_bytes());
            l4[12] = 5 << 4;
            l4[13] = flags;
            ip(src, dst, 6, &l4)
        }
        k @ (2 | 3) => {
            let mut m = [0u8; 12];
            m[0] = if k == 2 { 8 } else { 0 };
            m[4..6].copy_from_slice(&sport.to_be_bytes());
            let c = checksum::data(&m);
            m[2..4].copy_from_slice(&c.to_be_bytes());
            ip(src, dst, 1, &m)
        }
        _ => {
            // Garbage: a header cut short, or a plausible start with random length.
            let mut p = ip(src, dst, 17, &sport.to_be_bytes());
            p.truncate(usize::from(dport % 30));
            p
        }
    }
}

/// One packet of traffic: direction, realm, bytes.
type Item = (bool, u16, Vec<u8>);

fn traffic() -> impl Strategy<Value = Vec<Item>> {
    // Few addresses and ports, so flows repeat, replies meet mappings and both
    // directions hit the tables.
    let one = (
        any::<bool>(),
        0u16..3,
        0u8..5,
        0u32..4,
        0u32..3,
        prop_oneof![Just(1024u16), Just(1025), Just(2000), 1024u16..1040],
        prop_oneof![Just(53u16), Just(80), 1u16..4],
        any::<u8>(),
    )
        .prop_map(|(out, realm, kind, a, b, sport, dport, flags)| {
            let inside = 0x0a00_0200 | (a + 15);
            let remote = 0xc612_0100 | b;
            let p = if out {
                packet(kind, inside, remote, sport, dport, flags)
            } else {
                // Replies go to the external address; their port may hit a mapping.
                packet(kind, remote, u32::from(EXT), dport, sport, flags)
            };
            (out, realm, p)
        });
    prop::collection::vec(one, 1..200)
}

/// A stage holding `BACKGROUND` established TCP connections (warming only runs on tables
/// that big: smaller ones stay in cache), from inside addresses the traffic never uses.
fn stage(filtering: Filtering) -> Napt {
    let mut c = NaptConfig::new(EXT);
    c.max_sessions = BACKGROUND + 64;
    c.filtering = filtering;
    let mut n = Napt::new(c, Instant::ZERO).unwrap();
    for i in 0..BACKGROUND as u32 {
        let inside = 0x0a01_0000 | i;
        let mut syn = packet(1, inside, 0xc612_0201, 40000, 443, 0x02);
        assert!(matches!(
            n.outbound(Instant::ZERO, 0, &mut syn),
            vnet_modes::nat::Outbound::Translated
        ));
        let ext_port = u16::from_be_bytes([syn[20], syn[21]]);
        let mut synack = packet(1, 0xc612_0201, u32::from(EXT), 443, ext_port, 0x12);
        assert!(matches!(
            n.inbound(Instant::ZERO, &mut synack),
            vnet_modes::nat::Inbound::Translated { .. }
        ));
    }
    n
}

/// Enough sessions for warming to run (it skips tables under 4096 sessions).
const BACKGROUND: usize = 4200;

/// Runs `items` through `n` in batches of `batch`, warming each batch first if `warm`;
/// returns every verdict (as text) and every resulting packet.
fn run(n: &mut Napt, items: &[Item], batch: usize, warm: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (b, chunk) in items.chunks(batch).enumerate() {
        // Time moves 30 s a batch: UDP and ICMP sessions expire and get reclaimed along the
        // way; the background TCP connections (7440 s) outlive the 200 batches at most.
        let now = Instant::from_secs(30 * b as u64);
        n.poll(now);
        let mut pkts: Vec<Item> = chunk.to_vec();
        if warm {
            n.warm_outbound(pkts.iter().filter(|i| i.0).map(|i| (i.1, &i.2[..])));
            n.warm_inbound(pkts.iter().filter(|i| !i.0).map(|i| &i.2[..]));
        }
        for (dir_out, realm, p) in pkts.iter_mut() {
            let v = if *dir_out {
                format!("{:?}", n.outbound(now, *realm, p))
            } else {
                format!("{:?}", n.inbound(now, p))
            };
            out.push((v, p.clone()));
        }
    }
    out
}

#[test]
fn warming_changes_nothing() {
    // The whole property under the lock: proptest allocates between cases too.
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut runner = TestRunner::new(ProptestConfig::with_cases(64));
    let inputs = (traffic(), 1usize..80, 0u8..3);
    // The property has teeth only if replies meet mappings: count them.
    let translated_in = std::cell::Cell::new(0u64);
    runner
        .run(&inputs, |(items, batch, filt)| {
            let filtering = match filt {
                0 => Filtering::EndpointIndependent,
                1 => Filtering::AddressDependent,
                _ => Filtering::AddressPortDependent,
            };
            let mut cold = stage(filtering);
            let mut warm = stage(filtering);
            let a = run(&mut cold, &items, batch, false);
            let b = run(&mut warm, &items, batch, true);
            prop_assert_eq!(a, b);
            prop_assert_eq!(cold.counters(), warm.counters());
            prop_assert_eq!(cold.session_count(), warm.session_count());
            prop_assert!(warm.session_count() >= BACKGROUND);
            translated_in.set(translated_in.get() + warm.counters().translated_in);
            Ok(())
        })
        .unwrap();
    assert!(
        translated_in.get() > 50,
        "too few inbound translations: {}",
        translated_in.get()
    );
}

#[test]
fn warming_allocates_nothing() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let mut n = stage(Filtering::AddressDependent);
    // More than one chunk's worth (64) of packets, some with state behind them.
    let out: Vec<Vec<u8>> = (0..150u32)
        .map(|i| {
            packet(
                (i % 5) as u8,
                0x0a00_020f + i % 7,
                0xc612_0101,
                1024 + i as u16,
                53,
                2,
            )
        })
        .collect();
    for p in &out {
        let mut p = p.clone();
        let _ = n.outbound(Instant::ZERO, 0, &mut p);
    }
    let replies: Vec<Vec<u8>> = (0..150u32)
        .map(|i| {
            packet(
                (i % 5) as u8,
                0xc612_0101,
                u32::from(EXT),
                53,
                1024 + i as u16,
                0x12,
            )
        })
        .collect();
    let ((), allocs) = support::count_allocs(|| {
        n.warm_outbound(out.iter().map(|p| (0, &p[..])));
        n.warm_inbound(replies.iter().map(|p| &p[..]));
    });
    assert_eq!(allocs, 0, "warming allocated");
}
