//! The NAPT data path allocates nothing: new mappings and sessions, translation both ways,
//! hairpins, ICMP errors both ways, drops (table full, filtered, malformed), expiry through
//! `poll`, and the ICMP 3/13 helper all run under a counting global allocator, and the
//! number of allocations during the measured part must be zero.

mod support;

use std::net::Ipv4Addr;

use vnet_core::time::Instant;
use vnet_core::wire::checksum;
use vnet_modes::nat::{
    write_admin_prohibited, ForwardProto, ForwardRule, Inbound, Napt, NaptConfig, Outbound,
};

#[global_allocator]
static GLOBAL: support::Counting = support::Counting;

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const INET: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn ip(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, l4: &[u8]) -> Vec<u8> {
    support::ipv4(src, dst, proto, l4)
}

fn udp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    let mut l4 = [0u8; 12];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[4..6].copy_from_slice(&12u16.to_be_bytes());
    ip(src.0, dst.0, 17, &l4)
}

fn tcp(src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16), flags: u8) -> Vec<u8> {
    let mut l4 = [0u8; 20];
    l4[0..2].copy_from_slice(&src.1.to_be_bytes());
    l4[2..4].copy_from_slice(&dst.1.to_be_bytes());
    l4[12] = 5 << 4;
    l4[13] = flags;
    ip(src.0, dst.0, 6, &l4)
}

fn icmp(src: Ipv4Addr, dst: Ipv4Addr, typ: u8, rest: u32, data: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 8 + data.len()];
    m[0] = typ;
    m[4..8].copy_from_slice(&rest.to_be_bytes());
    m[8..].copy_from_slice(data);
    let c = checksum::data(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    ip(src, dst, 1, &m)
}

#[test]
fn nat_data_path_does_not_allocate() {
    let mut config = NaptConfig::new(EXT);
    config.max_sessions = 4096;
    let mut n = Napt::new(config, Instant::ZERO).unwrap();
    n.add_forward(ForwardRule {
        name: "ssh".into(),
        proto: ForwardProto::Tcp,
        external_ip: None,
        external_port: 2222,
        realm: 1,
        inside_ip: Ipv4Addr::new(10, 0, 2, 15),
        inside_port: 22,
    })
    .unwrap();

    // Every packet is built before counting starts.
    let guests: Vec<Ipv4Addr> = (1..=64).map(|h| Ipv4Addr::new(10, 0, 2, h)).collect();
    let outbound: Vec<(u16, Vec<u8>)> = (0..6000u32)
        .map(|i| {
            let g = guests[(i % 64) as usize];
            let port = 1024 + (i / 64) as u16;
            let p = match i % 3 {
                0 => udp((g, port), (INET, 53)),
                1 => tcp((g, port), (INET, 80), 0x02),
                _ => icmp(g, INET, 8, u32::from(port) << 16 | 1, b"ping"),
            };
            ((i % 4) as u16, p)
        })
        .collect();
    let forwarded_in = tcp((INET, 50000), (EXT, 2222), 0x02);
    let forwarded_out = tcp((Ipv4Addr::new(10, 0, 2, 15), 22), (INET, 50000), 0x12);
    let hairpin = tcp((guests[1], 9999), (EXT, 2222), 0x02);
    let garbage = vec![0x45u8; 7];
    let mut scratch = [0u8; 256];
    let mut replies = [[0u8; 128]; 64];
    let mut error_out = [0u8; 256];

    // The counter counts.
    let ((), counted) = support::count_allocs(|| drop(std::hint::black_box(Box::new(1u64))));
    assert!(counted > 0);

    support::start();
    let mut translated = 0u64;
    for round in 0..3u64 {
        let now = Instant::from_secs(round * 400);
        // Forwarded traffic and a hairpin, while the table has room.
        let mut p = forwarded_in.clone_into_array();
        let _ = n.inbound(now, &mut p);
        let mut p = forwarded_out.clone_into_array();
        let _ = n.outbound(now, 1, &mut p);
        let buf = &mut scratch[..hairpin.len()];
        buf.copy_from_slice(&hairpin);
        let _ = n.outbound(now, 0, buf);
        for (i, (realm, p)) in outbound.iter().enumerate() {
            let buf = &mut scratch[..p.len()];
            buf.copy_from_slice(p);
            if let Outbound::Translated = n.outbound(now, *realm, buf) {
                translated += 1;
                if i < 64 {
                    // An inbound reply and an ICMP error about the translated packet.
                    let r = &mut replies[i][..buf.len()];
                    r.copy_from_slice(buf);
                    r[12..20].rotate_left(4);
                    let hl = 20;
                    if r[9] != 1 {
                        let (a, b) = (r[hl], r[hl + 1]);
                        r[hl] = r[hl + 2];
                        r[hl + 1] = r[hl + 3];
                        r[hl + 2] = a;
                        r[hl + 3] = b;
                    } else {
                        r[hl] = 0;
                    }
                    let _ = n.inbound(now, r);
                    let len = 28 + buf.len();
                    error_out[..len].fill(0);
                    error_out[0] = 0x45;
                    error_out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                    error_out[8] = 64;
                    error_out[9] = 1;
                    error_out[12..16].copy_from_slice(&INET.octets());
                    error_out[16..20].copy_from_slice(&EXT.octets());
                    let c = checksum::data(&error_out[..20]);
                    error_out[10..12].copy_from_slice(&c.to_be_bytes());
                    error_out[20] = 3;
                    error_out[21] = 3;
                    error_out[28..len].copy_from_slice(buf);
                    let c = checksum::data(&error_out[20..len]);
                    error_out[22..24].copy_from_slice(&c.to_be_bytes());
                    assert!(matches!(
                        n.inbound(now, &mut error_out[..len]),
                        Inbound::Translated { .. }
                    ));
                }
            } else {
                // Table full: answer with ICMP 3/13 into a stack buffer.
                let mut err = [0u8; 128];
                let _ = write_admin_prohibited(&mut err, Ipv4Addr::new(10, 0, 2, 2), p);
            }
        }
        let buf = &mut scratch[..garbage.len()];
        buf.copy_from_slice(&garbage);
        let _ = n.outbound(now, 0, buf);
        let _ = n.inbound(now, buf);
        let _ = n.poll_at();
        n.poll(now + std::time::Duration::from_secs(300));
    }
    let allocs = support::stop();
    assert!(
        translated > 4096,
        "the table filled and emptied ({translated})"
    );
    assert!(n.counters().table_full > 0);
    assert!(n.counters().hairpins > 0 && n.counters().icmp_errors_translated > 0);
    assert_eq!(allocs, 0, "allocations on the data path");
}

trait IntoArray {
    fn clone_into_array(&self) -> [u8; 40];
}

impl IntoArray for Vec<u8> {
    fn clone_into_array(&self) -> [u8; 40] {
        let mut a = [0u8; 40];
        a.copy_from_slice(self);
        a
    }
}
