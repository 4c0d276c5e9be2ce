//! Hostile guests, replayed against the modes in memory: each attack is handled, counted
//! by reason, never leaks to a port the mode forbids, and leaves the other guests served.
//!
//! - MAC flood (100k random source MACs), in every mode with a switch among guests
//!   (Internal, Host-only, Bridged, NAT Network): the FDB stays bounded, known hosts keep
//!   being forwarded to their port (not flooded) while it runs;
//! - NAT session flood (random ports, UDP and SYN) from one guest: the guest stops at its
//!   share (`guest_limit`), another guest keeps opening connections (NAT and NAT Network);
//! - DHCP starvation (DISCOVERs with random client MACs from one port): the port stops at
//!   its share (`port_limit`), another guest still gets an address;
//! - spoofing: routed packets from outside 10.0.2.0/24 or from a service address are not
//!   translated; ARP claiming the gateway's, the DHCP server's or another guest's leased
//!   address is dropped (`spoofed`) and never reaches another guest;
//! - broadcast floods (the same four modes) and ARP-to-gateway floods (NAT): bounded by
//!   the port's rate (`rate_limited`), unicast between other guests untouched.

use etherparse::PacketBuilder;
use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::counters::DropReason;
use vnet_core::frame::{FramePool, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{DhcpMessageType, DhcpRepr};
use vnet_core::wire::EthernetAddress;
use vnet_modes::any::AnyMode;
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::gateway::service_mac;
use vnet_modes::guard::GuardStats;
use vnet_modes::host_only::HostOnlyConfig;
use vnet_modes::internal::InternalConfig;
use vnet_modes::layout::PortLayout;
use vnet_modes::natmode::{NatFlavor, NatMode, NatModeConfig, NatSpec};
use vnet_modes::segment::SwitchedMode;
use vnet_modes::switch::{Fdb, SwitchConfig};

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GW_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 1];
const INET: Ipv4Addr = Ipv4Addr::new(198, 18, 7, 7);

/// A small deterministic generator (xorshift), so a failure replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn mac(&mut self) -> [u8; 6] {
        let b = self.next().to_be_bytes();
        // Unicast, locally administered.
        [b[0] & 0xfe | 0x02, b[1], b[2], b[3], b[4], b[5]]
    }
    fn port(&mut self) -> u16 {
        1024 + (self.next() % 60000) as u16
    }
}

/// Runs one frame through `mode` at `now`; the verdict and the frame as left.
fn run(
    mode: &mut impl Pipeline,
    pool: &mut FramePool,
    now: Instant,
    frame: &[u8],
    port: PortId,
) -> (Verdict, Vec<u8>) {
    let mut pkts = [pool.alloc_copy(frame, port).unwrap()];
    let mut v = [Verdict::Consumed];
    mode.process(now, pool, &mut pkts, &mut v);
    let out = pool.bytes(&pkts[0]).to_vec();
    pool.free(pkts[0].frame);
    (v[0], out)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.resize(60, 0);
    f
}

fn arp(op: u8, dst: [u8; 6], sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

fn udp(
    macs: ([u8; 6], [u8; 6]),
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    payload: &[u8],
) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .udp(src.1, dst.1)
        .write(&mut f, payload)
        .unwrap();
    f
}

fn syn(macs: ([u8; 6], [u8; 6]), src: (Ipv4Addr, u16), dst: (Ipv4Addr, u16)) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(macs.0, macs.1)
        .ipv4(src.0.octets(), dst.0.octets(), 64)
        .tcp(src.1, dst.1, 1000, 65535)
        .syn()
        .write(&mut f, &[])
        .unwrap();
    f
}

fn discover(chaddr: [u8; 6]) -> Vec<u8> {
    let mut d = DhcpRepr::new(DhcpMessageType::Discover, 7, EthernetAddress(chaddr));
    d.broadcast = true;
    let mut payload = vec![0u8; d.buffer_len()];
    let n = d.emit(&mut payload).unwrap();
    udp(
        (chaddr, [0xff; 6]),
        (Ipv4Addr::UNSPECIFIED, 68),
        (Ipv4Addr::BROADCAST, 67),
        &payload[..n],
    )
}

fn request(chaddr: [u8; 6], addr: Ipv4Addr, server: Ipv4Addr) -> Vec<u8> {
    let mut r = DhcpRepr::new(DhcpMessageType::Request, 7, EthernetAddress(chaddr));
    r.broadcast = true;
    r.requested_ip = Some(addr);
    r.server_identifier = Some(server);
    let mut payload = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut payload).unwrap();
    udp(
        (chaddr, [0xff; 6]),
        (Ipv4Addr::UNSPECIFIED, 68),
        (Ipv4Addr::BROADCAST, 67),
        &payload[..n],
    )
}

/// The `yiaddr` of a DHCP reply frame (Ethernet, IPv4 without options, UDP).
fn yiaddr(reply: &[u8]) -> Ipv4Addr {
    DhcpRepr::parse_bytes(&reply[42..]).unwrap().yiaddr
}

/// A NAT pipeline with its uplink's next hop resolved.
fn nat(
    flavor: NatFlavor,
    vms: usize,
    tune: impl FnOnce(&mut NatModeConfig),
) -> (NatMode, FramePool) {
    let mut c = NatModeConfig::new(flavor, vms, EXT, GW);
    tune(&mut c);
    let spec = NatSpec::new(c, 1, Instant::ZERO).unwrap();
    let mut mode = spec.build(0, 1, Instant::ZERO).unwrap();
    let mut pool = FramePool::with_heap(64, 2048, 0);
    let now = Instant::from_secs(1);
    let mut out = Emitter::new();
    mode.poll(now, &mut pool, &mut out);
    for (p, _) in out.items() {
        pool.free(p.frame);
    }
    let uplink = vms as PortId;
    run(
        &mut mode,
        &mut pool,
        now,
        &arp(2, [0xff; 6], GW_MAC, GW, EXT),
        uplink,
    );
    (mode, pool)
}

fn drops_of(verdicts: &[Verdict], reason: DropReason) -> usize {
    verdicts
        .iter()
        .filter(|v| **v == Verdict::Drop(reason))
        .count()
}

/// The modes with a switch among guests, each with three VM ports (0, 1, 2) and an FDB of
/// `fdb_max` entries, as one pipeline type.
fn segment_modes(fdb_max: usize) -> Vec<(&'static str, AnyMode)> {
    let switch = SwitchConfig {
        fdb_max,
        ..SwitchConfig::default()
    };
    let now = Instant::ZERO;
    let internal = SwitchedMode::internal(
        InternalConfig {
            switch,
            ..InternalConfig::new(3)
        },
        now,
    )
    .unwrap();
    let host_only = SwitchedMode::host_only(
        HostOnlyConfig {
            vms: 3,
            switch,
            dhcp: Some(DhcpServerConfig::host_only()),
        },
        now,
    )
    .unwrap();
    let bridged = SwitchedMode::bridged(PortLayout::new(3, true, true), switch);
    let mut c = NatModeConfig::new(NatFlavor::Network, 3, EXT, GW);
    c.switch = switch;
    let nat_network = NatSpec::new(c, 1, now).unwrap().build(0, 1, now).unwrap();
    vec![
        ("internal", AnyMode::Switched(internal)),
        ("host-only", AnyMode::Switched(host_only)),
        ("bridged", AnyMode::Switched(bridged)),
        ("nat-network", AnyMode::Nat(nat_network)),
    ]
}

fn fdb_of(mode: &AnyMode) -> &Fdb {
    match mode {
        AnyMode::Switched(m) => m.switch().fdb(),
        AnyMode::Nat(m) => m.switch().expect("NAT Network has a switch").fdb(),
    }
}

fn guard_of(mode: &AnyMode) -> GuardStats {
    match mode {
        AnyMode::Switched(m) => m.guard().stats(),
        AnyMode::Nat(m) => m.guard().stats(),
    }
}

#[test]
fn mac_flood_keeps_the_fdb_bounded_and_known_hosts_forwarded() {
    let fdb_max = 1024;
    for (name, mut m) in segment_modes(fdb_max) {
        let mut pool = FramePool::with_heap(16, 2048, 0);
        let (a, b) = ([2, 0, 0, 0, 0, 0xa], [2, 0, 0, 0, 0, 0xb]);
        let t0 = Instant::from_secs(1);
        // Two hosts known before the flood.
        run(&mut m, &mut pool, t0, &eth([0xff; 6], a, 0x0800), 1);
        run(&mut m, &mut pool, t0, &eth([0xff; 6], b, 0x0800), 2);
        let mut rng = Rng(0x5eed);
        let mut flooded = 0;
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_micros(i);
            // Unicast to an unknown address from a random source: flooded, as a switch
            // does, but never back to the attacker's port.
            let (v, _) = run(
                &mut m,
                &mut pool,
                now,
                &eth(rng.mac(), rng.mac(), 0x0800),
                0,
            );
            match v {
                Verdict::Tx(mask) => {
                    assert!(!mask.contains(0) && mask.contains(1) && mask.contains(2));
                    flooded += 1;
                }
                other => panic!("{name}: flood frame got {other:?}"),
            }
            if i % 1000 == 0 {
                // The known hosts still reach each other directly, not by flooding.
                let (v, _) = run(&mut m, &mut pool, now, &eth(a, b, 0x0800), 2);
                assert_eq!(v, Verdict::Tx(PortMask::one(1)), "{name} at frame {i}");
                let (v, _) = run(&mut m, &mut pool, now, &eth(b, a, 0x0800), 1);
                assert_eq!(v, Verdict::Tx(PortMask::one(2)), "{name} at frame {i}");
            }
        }
        assert_eq!(flooded, 100_000);
        let fdb = fdb_of(&m);
        assert!(fdb.len() <= fdb_max, "{name}: {} entries", fdb.len());
        assert_eq!(fdb.len(), fdb_max, "{name}: filled, not grown");
        assert_eq!(
            pool.free_count(),
            16,
            "{name}: every frame back in the pool"
        );
    }
}

/// Guest A floods new UDP flows and SYNs; guest B opens connections throughout.
fn session_flood(flavor: NatFlavor) {
    let share = 256;
    let (mut m, mut pool) = nat(flavor, 2, |c| {
        c.napt.max_sessions = 1024;
        c.napt.max_sessions_per_guest = share;
    });
    let router = match flavor {
        NatFlavor::PerVm => service_mac(Ipv4Addr::new(10, 0, 2, 2)).0,
        NatFlavor::Network => service_mac(Ipv4Addr::new(10, 0, 2, 1)).0,
    };
    // In NAT both guests are 10.0.2.15 (each its own realm); in NAT Network .4 and .5.
    let (ip_a, ip_b) = match flavor {
        NatFlavor::PerVm => (Ipv4Addr::new(10, 0, 2, 15), Ipv4Addr::new(10, 0, 2, 15)),
        NatFlavor::Network => (Ipv4Addr::new(10, 0, 2, 4), Ipv4Addr::new(10, 0, 2, 5)),
    };
    let (mac_a, mac_b) = ([8, 0, 0x27, 0, 0, 0xa], [8, 0, 0x27, 0, 0, 0xb]);
    let mut rng = Rng(42);
    let mut verdicts_a = Vec::new();
    let mut b_opened = 0;
    for i in 0..20_000u64 {
        let now = Instant::from_secs(1) + Duration::from_micros(10 * i);
        let dst = (INET, rng.port());
        let f = if i % 2 == 0 {
            udp((mac_a, router), (ip_a, rng.port()), dst, b"x")
        } else {
            syn((mac_a, router), (ip_a, rng.port()), dst)
        };
        verdicts_a.push(run(&mut m, &mut pool, now, &f, 0).0);
        if i % 100 == 0 {
            let f = syn(
                (mac_b, router),
                (ip_b, 20000 + (i / 100) as u16),
                (INET, 443),
            );
            let (v, out) = run(&mut m, &mut pool, now, &f, 1);
            assert_eq!(v, Verdict::Tx(PortMask::one(2)), "B's connection {i}");
            assert_eq!(out[26..30], EXT.octets(), "translated");
            b_opened += 1;
        }
    }
    let realm_a = 0;
    let realm_b = match flavor {
        NatFlavor::PerVm => 1,
        NatFlavor::Network => 0,
    };
    let napt = m.napt();
    assert_eq!(napt.guest_sessions(realm_a, ip_a), share as u32);
    assert_eq!(napt.guest_sessions(realm_b, ip_b), b_opened);
    let limited = drops_of(&verdicts_a, DropReason::GuestLimit);
    assert_eq!(limited, 20_000 - share);
    assert_eq!(napt.counters().guest_limit, limited as u64);
    // Nothing of A's flood went anywhere but the uplink.
    assert!(verdicts_a.iter().all(|v| matches!(
        v,
        Verdict::Tx(mask) if *mask == PortMask::one(2)
    ) || *v == Verdict::Drop(DropReason::GuestLimit)));
    // Once A's sessions expire, A may open connections again.
    let later = Instant::from_secs(1) + Duration::from_secs(7441 + 300);
    let mut out = Emitter::new();
    m.poll(later, &mut pool, &mut out);
    for (p, _) in out.items() {
        pool.free(p.frame);
    }
    // (The next hop's entry aged too: it answers the new ARP request.)
    run(
        &mut m,
        &mut pool,
        later,
        &arp(2, [0xff; 6], GW_MAC, GW, EXT),
        2,
    );
    assert_eq!(m.napt().guest_sessions(realm_a, ip_a), 0);
    let f = udp((mac_a, router), (ip_a, 5555), (INET, 53), b"q");
    assert_eq!(
        run(&mut m, &mut pool, later, &f, 0).0,
        Verdict::Tx(PortMask::one(2))
    );
    assert_eq!(pool.free_count(), 64);
}

#[test]
fn nat_session_flood_from_one_guest_does_not_starve_another() {
    session_flood(NatFlavor::PerVm);
}

#[test]
fn nat_network_session_flood_from_one_guest_does_not_starve_another() {
    session_flood(NatFlavor::Network);
}

#[test]
fn dhcp_starvation_from_one_port_leaves_the_pool_to_the_others() {
    let mut dhcp = DhcpServerConfig::host_only();
    dhcp.max_leases_per_port = 4;
    let mut m = SwitchedMode::host_only(
        HostOnlyConfig {
            vms: 3,
            switch: SwitchConfig::default(),
            dhcp: Some(dhcp),
        },
        Instant::ZERO,
    )
    .unwrap();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let mut rng = Rng(7);
    let mut offers = 0;
    let mut silent = 0;
    for i in 0..5000u64 {
        // Spread over 50 s so the port's broadcast budget is not what stops them.
        let now = Instant::from_secs(1) + Duration::from_millis(10 * i);
        match run(&mut m, &mut pool, now, &discover(rng.mac()), 0).0 {
            Verdict::Tx(mask) => {
                if mask == PortMask::one(0) {
                    offers += 1;
                } else {
                    assert!(mask.is_empty(), "a DHCP flood frame leaked to {mask:?}");
                    silent += 1;
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(offers, 4, "the port's share");
    assert_eq!(silent, 5000 - 4);
    let server = m.gateway().unwrap().dhcp().unwrap().lock().unwrap();
    assert_eq!(server.counters().port_limit, 5000 - 4);
    assert_eq!(server.counters().discovers_received, 5000);
    assert_eq!(server.leases().port_active(0), 4);
    drop(server);
    // A REQUEST for a free address from a new client on that port: NAK, counted.
    let now = Instant::from_secs(59);
    let server_ip = Ipv4Addr::new(192, 168, 56, 100);
    let free = Ipv4Addr::new(192, 168, 56, 200);
    let (v, nak) = run(
        &mut m,
        &mut pool,
        now,
        &request(rng.mac(), free, server_ip),
        0,
    );
    assert_eq!(v, Verdict::Tx(PortMask::one(0)));
    let nak = DhcpRepr::parse_bytes(&nak[42..]).unwrap();
    assert_eq!(nak.message_type, DhcpMessageType::Nak);
    let server = m.gateway().unwrap().dhcp().unwrap().lock().unwrap();
    assert_eq!(server.counters().port_limit, 5000 - 4 + 1);
    assert_eq!(server.leases().port_active(0), 4);
    drop(server);
    // Another guest gets an address and binds it.
    let now = Instant::from_secs(60);
    let vm2 = [8, 0, 0x27, 0, 0, 2];
    let (v, offer) = run(&mut m, &mut pool, now, &discover(vm2), 1);
    assert_eq!(v, Verdict::Tx(PortMask::one(1)));
    let addr = yiaddr(&offer);
    let (v, ack) = run(&mut m, &mut pool, now, &request(vm2, addr, server_ip), 1);
    assert_eq!(v, Verdict::Tx(PortMask::one(1)));
    let ack = DhcpRepr::parse_bytes(&ack[42..]).unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (DhcpMessageType::Ack, addr));
    let server = m.gateway().unwrap().dhcp().unwrap().lock().unwrap();
    assert_eq!(server.counters().requests_received, 2);
    assert_eq!(server.leases().port_active(1), 1);
}

#[test]
fn nat_network_dhcp_starvation_is_bounded_per_port() {
    let (mut m, mut pool) = nat(NatFlavor::Network, 2, |c| c.dhcp.max_leases_per_port = 2);
    let mut rng = Rng(9);
    let mut offers = 0;
    for i in 0..1000u64 {
        let now = Instant::from_secs(2) + Duration::from_millis(20 * i);
        if run(&mut m, &mut pool, now, &discover(rng.mac()), 0).0 == Verdict::Tx(PortMask::one(0)) {
            offers += 1;
        }
    }
    assert_eq!(offers, 2);
    let now = Instant::from_secs(100);
    let (v, offer) = run(&mut m, &mut pool, now, &discover([8, 0, 0x27, 0, 0, 2]), 1);
    assert_eq!(v, Verdict::Tx(PortMask::one(1)));
    assert!(yiaddr(&offer).octets()[..3] == [10, 0, 2]);
}

#[test]
fn nat_guest_spoofing_its_source_is_not_translated() {
    for flavor in [NatFlavor::PerVm, NatFlavor::Network] {
        let (mut m, mut pool) = nat(flavor, 2, |_| {});
        let services = match flavor {
            NatFlavor::PerVm => [2, 3],
            NatFlavor::Network => [1, 3],
        };
        let router = service_mac(Ipv4Addr::new(10, 0, 2, services[0])).0;
        let mac = [8, 0, 0x27, 0, 0, 1];
        let now = Instant::from_secs(2);
        for src in [
            Ipv4Addr::new(192, 0, 2, 1),
            Ipv4Addr::new(10, 0, 3, 15),
            Ipv4Addr::new(10, 0, 2, 0),
            Ipv4Addr::new(10, 0, 2, 255),
            Ipv4Addr::new(10, 0, 2, services[0]),
            Ipv4Addr::new(10, 0, 2, services[1]),
            Ipv4Addr::UNSPECIFIED,
        ] {
            let f = udp((mac, router), (src, 4000), (INET, 53), b"x");
            assert_eq!(
                run(&mut m, &mut pool, now, &f, 0).0,
                Verdict::Drop(DropReason::Spoofed),
                "{flavor:?} from {src}"
            );
        }
        assert_eq!(m.napt().counters().translated_out, 0);
        // From 0.0.0.0 only DHCP passes (to the server, which stays silent on junk).
        let f = udp(
            (mac, [0xff; 6]),
            (Ipv4Addr::UNSPECIFIED, 68),
            (Ipv4Addr::BROADCAST, 67),
            b"x",
        );
        assert_ne!(
            run(&mut m, &mut pool, now, &f, 0).0,
            Verdict::Drop(DropReason::Spoofed),
            "{flavor:?}: a short DHCP message from 0.0.0.0"
        );
        if flavor == NatFlavor::PerVm {
            // An IPv4 header saying UDP from 0.0.0.0, and nothing after it: no port to
            // read, so not DHCP.
            let mut f = eth(router, mac, 0x0800);
            f.truncate(14);
            let mut ip = vec![
                0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255,
            ];
            let c = vnet_core::wire::checksum::data(&ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
            f.extend_from_slice(&ip);
            assert_eq!(
                run(&mut m, &mut pool, now, &f, 0).0,
                Verdict::Drop(DropReason::Spoofed)
            );
        }
        // The guest's own address works.
        let f = udp(
            (mac, router),
            (Ipv4Addr::new(10, 0, 2, 15), 4000),
            (INET, 53),
            b"x",
        );
        assert_eq!(
            run(&mut m, &mut pool, now, &f, 0).0,
            Verdict::Tx(PortMask::one(2))
        );
    }
}

#[test]
fn arp_claims_of_service_addresses_are_dropped_and_do_not_move_them() {
    for (flavor, gw) in [(NatFlavor::PerVm, 2u8), (NatFlavor::Network, 1)] {
        let (mut m, mut pool) = nat(flavor, 2, |_| {});
        let now = Instant::from_secs(2);
        let evil = [8, 0, 0x27, 0, 0, 0xe];
        for svc in [gw, 3] {
            let ip = Ipv4Addr::new(10, 0, 2, svc);
            // A gratuitous reply broadcast on the segment, and a unicast reply.
            for f in [
                arp(2, [0xff; 6], evil, ip, ip),
                arp(
                    2,
                    [8, 0, 0x27, 0, 0, 2],
                    evil,
                    ip,
                    Ipv4Addr::new(10, 0, 2, 5),
                ),
            ] {
                assert_eq!(
                    run(&mut m, &mut pool, now, &f, 0).0,
                    Verdict::Drop(DropReason::Spoofed),
                    "{flavor:?} claims {ip}"
                );
            }
        }
        // The other guest still gets the gateway's own MAC for it.
        let ask = arp(
            1,
            [0xff; 6],
            [8, 0, 0x27, 0, 0, 2],
            Ipv4Addr::new(10, 0, 2, 5),
            Ipv4Addr::new(10, 0, 2, gw),
        );
        let (v, reply) = run(&mut m, &mut pool, now, &ask, 1);
        assert_eq!(v, Verdict::Tx(PortMask::one(1)));
        assert_eq!(reply[22..28], service_mac(Ipv4Addr::new(10, 0, 2, gw)).0);
    }
}

#[test]
fn arp_claim_of_another_guests_lease_is_dropped() {
    // Host-only: vm1 leases an address; vm2 answering ARP for it is spoofing.
    let mut m = SwitchedMode::host_only(
        HostOnlyConfig {
            vms: 2,
            switch: SwitchConfig::default(),
            dhcp: Some(DhcpServerConfig::host_only()),
        },
        Instant::ZERO,
    )
    .unwrap();
    let mut pool = FramePool::with_heap(16, 2048, 0);
    let now = Instant::from_secs(1);
    let (vm1, vm2) = ([8, 0, 0x27, 0, 0, 1], [8, 0, 0x27, 0, 0, 2]);
    let server = Ipv4Addr::new(192, 168, 56, 100);
    let (_, offer) = run(&mut m, &mut pool, now, &discover(vm1), 0);
    let leased = yiaddr(&offer);
    let (_, ack) = run(&mut m, &mut pool, now, &request(vm1, leased, server), 0);
    assert_eq!(yiaddr(&ack), leased);
    let host_mac = [0x0a, 0, 0x27, 0, 0, 0];
    let claim = arp(2, host_mac, vm2, leased, Ipv4Addr::new(192, 168, 56, 1));
    assert_eq!(
        run(&mut m, &mut pool, now, &claim, 1).0,
        Verdict::Drop(DropReason::Spoofed)
    );
    // Claiming the DHCP server's address too.
    let claim = arp(2, [0xff; 6], vm2, server, server);
    assert_eq!(
        run(&mut m, &mut pool, now, &claim, 1).0,
        Verdict::Drop(DropReason::Spoofed)
    );
    // The holder's own announcement passes, as does vm2 claiming a free address.
    let own = arp(2, [0xff; 6], vm1, leased, leased);
    assert_eq!(
        run(&mut m, &mut pool, now, &own, 0).0,
        Verdict::Tx(PortMask(0b110))
    );
    let free = Ipv4Addr::new(192, 168, 56, 200);
    let other = arp(2, [0xff; 6], vm2, free, free);
    assert_eq!(
        run(&mut m, &mut pool, now, &other, 1).0,
        Verdict::Tx(PortMask(0b101))
    );
    // The host port is not policed (it is the host's own stack).
    let from_host = arp(2, [0xff; 6], host_mac, leased, leased);
    assert!(matches!(
        run(&mut m, &mut pool, now, &from_host, 2).0,
        Verdict::Tx(_)
    ));
}

#[test]
fn broadcast_flood_is_rate_bounded_and_unicast_untouched() {
    for (name, mut m) in segment_modes(4096) {
        let mut pool = FramePool::with_heap(16, 2048, 0);
        let (a, b, evil) = (
            [2, 0, 0, 0, 0, 0xa],
            [2, 0, 0, 0, 0, 0xb],
            [2, 0, 0, 0, 0, 0xe],
        );
        let t0 = Instant::from_secs(1);
        run(&mut m, &mut pool, t0, &eth([0xff; 6], a, 0x0800), 1);
        run(&mut m, &mut pool, t0, &eth([0xff; 6], b, 0x0800), 2);
        // 100k broadcasts over one second (100 kpps) from port 0, unicast between 1 and 2.
        let (mut passed, mut limited, mut unicast) = (0u64, 0u64, 0u64);
        for i in 0..100_000u64 {
            let now = t0 + Duration::from_micros(10 * i);
            match run(&mut m, &mut pool, now, &eth([0xff; 6], evil, 0x0800), 0).0 {
                Verdict::Tx(mask) => {
                    assert!(!mask.contains(0) && mask.contains(1) && mask.contains(2));
                    passed += 1;
                }
                Verdict::Drop(DropReason::RateLimited) => limited += 1,
                other => panic!("{name}: {other:?}"),
            }
            if i % 10 == 0 {
                let (v, _) = run(&mut m, &mut pool, now, &eth(b, a, 0x0800), 1);
                assert_eq!(v, Verdict::Tx(PortMask::one(2)), "{name}");
                unicast += 1;
            }
        }
        // The default: 1000/s with a burst of 64.
        assert!((1000..=1070).contains(&passed), "{name}: {passed}");
        assert_eq!(passed + limited, 100_000);
        assert_eq!(guard_of(&m).group_limited, limited, "{name}");
        assert_eq!(unicast, 10_000);
    }
}

#[test]
fn arp_flood_to_the_gateway_is_rate_bounded() {
    let (mut m, mut pool) = nat(NatFlavor::PerVm, 2, |_| {});
    let mac = [8, 0, 0x27, 0, 0, 1];
    let gw = Ipv4Addr::new(10, 0, 2, 2);
    let guest = Ipv4Addr::new(10, 0, 2, 15);
    let (mut answered, mut limited) = (0, 0);
    for i in 0..10_000u64 {
        // 10 kpps for one second.
        let now = Instant::from_secs(2) + Duration::from_micros(100 * i);
        match run(
            &mut m,
            &mut pool,
            now,
            &arp(1, [0xff; 6], mac, guest, gw),
            0,
        )
        .0
        {
            Verdict::Tx(mask) => {
                assert_eq!(mask, PortMask::one(0));
                answered += 1;
            }
            Verdict::Drop(DropReason::RateLimited) => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    // The default: 100/s with a burst of 64.
    assert!((100..=170).contains(&answered), "{answered}");
    assert_eq!(m.guard().stats().arp_limited, limited);
    // The other guest's port has its own budget.
    let now = Instant::from_secs(3);
    let ask = arp(1, [0xff; 6], [8, 0, 0x27, 0, 0, 2], guest, gw);
    assert_eq!(
        run(&mut m, &mut pool, now, &ask, 1).0,
        Verdict::Tx(PortMask::one(1))
    );
}
