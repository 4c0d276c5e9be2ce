//! The DHCP server against RFC 2131/2132 (and RFC 6842), one test per requirement.
//!
//! Client messages are literal DHCP payloads: a BOOTREQUEST header from literal fields
//! ([`bootrequest`]) followed by literal option bytes, fed through
//! `DhcpServer::handle_bytes`; replies are read back from the bytes the server emitted.
//! Time is virtual (`Instant::from_secs`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{DhcpMessageType, DhcpPacket, DhcpRepr};
use vnet_core::wire::{EthernetAddress, Layer, Malformed, WireError};
use vnet_modes::dhcp::{ClientKey, DhcpServer, DhcpServerConfig, LeaseState, ReplyDest};

// ---- an allocation counter, per thread, to prove the data path does not allocate ----

struct CountingAlloc;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count_allocation() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to `System` unchanged; counting touches only a
// thread-local `Cell` with no destructor, which never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (we forward everything).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: `ptr`/`layout` come from `System` (we forward everything); the caller
        // upholds `realloc`'s contract for `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

// ---- literal frames ----

const MAC_A: EthernetAddress = EthernetAddress([0x08, 0x00, 0x27, 0x11, 0x22, 0x33]);
const MAC_B: EthernetAddress = EthernetAddress([0x08, 0x00, 0x27, 0x44, 0x55, 0x66]);
const MAC_C: EthernetAddress = EthernetAddress([0x08, 0x00, 0x27, 0x77, 0x88, 0x99]);
const NO_FLAGS: [u8; 2] = [0x00, 0x00];
const BROADCAST: [u8; 2] = [0x80, 0x00];
const ZERO: [u8; 4] = [0, 0, 0, 0];
const XID: [u8; 4] = [0x5a, 0x17, 0xc0, 0xde];

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 56, last)
}

/// A BOOTREQUEST payload: literal header fields, `options` (literal bytes), END, padded
/// to 300 bytes as clients do.
fn bootrequest(
    flags: [u8; 2],
    ciaddr: [u8; 4],
    giaddr: [u8; 4],
    chaddr: EthernetAddress,
    options: &[u8],
) -> Vec<u8> {
    let mut b = vec![0x01, 0x01, 0x06, 0x00]; // op BOOTREQUEST, htype 1, hlen 6, hops 0
    b.extend_from_slice(&XID);
    b.extend_from_slice(&[0x00, 0x00]); // secs
    b.extend_from_slice(&flags);
    b.extend_from_slice(&ciaddr);
    b.extend_from_slice(&ZERO); // yiaddr
    b.extend_from_slice(&ZERO); // siaddr
    b.extend_from_slice(&giaddr);
    b.extend_from_slice(chaddr.as_bytes());
    b.extend_from_slice(&[0u8; 10]); // chaddr padding
    b.extend_from_slice(&[0u8; 64]); // sname
    b.extend_from_slice(&[0u8; 128]); // file
    b.extend_from_slice(&[0x63, 0x82, 0x53, 0x63]); // magic cookie
    b.extend_from_slice(options);
    b.push(0xff);
    b.resize(b.len().max(300), 0);
    b
}

/// DHCPDISCOVER with a host name and a parameter request list (as udhcpc sends).
fn discover(flags: [u8; 2], chaddr: EthernetAddress) -> Vec<u8> {
    bootrequest(
        flags,
        ZERO,
        ZERO,
        chaddr,
        &[
            53, 1, 1, // DISCOVER
            12, 3, b'v', b'm', b'1', // host name
            55, 4, 1, 3, 6, 15, // parameter request list
            57, 2, 0x02, 0x40, // max message size 576
        ],
    )
}

/// SELECTING DHCPREQUEST: server id 192.168.56.100, requested 192.168.56.`last`.
fn request_selecting(chaddr: EthernetAddress, last: u8) -> Vec<u8> {
    bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        chaddr,
        &[
            53, 1, 3, // REQUEST
            54, 4, 192, 168, 56, 100, // server identifier
            50, 4, 192, 168, 56, last, // requested IP
            12, 3, b'v', b'm', b'1', // host name
            55, 4, 1, 3, 6, 15, // parameter request list
        ],
    )
}

/// INIT-REBOOT DHCPREQUEST: requested 192.168.56.`last`, no server id, ciaddr 0.
fn request_init_reboot(chaddr: EthernetAddress, requested: [u8; 4]) -> Vec<u8> {
    let mut opts = vec![53, 1, 3, 50, 4];
    opts.extend_from_slice(&requested);
    bootrequest(BROADCAST, ZERO, ZERO, chaddr, &opts)
}

/// RENEWING/REBINDING DHCPREQUEST: ciaddr set, no server id, no requested IP.
fn request_renewing(flags: [u8; 2], ciaddr: [u8; 4], chaddr: EthernetAddress) -> Vec<u8> {
    bootrequest(flags, ciaddr, ZERO, chaddr, &[53, 1, 3])
}

fn config() -> DhcpServerConfig {
    let mut c = DhcpServerConfig::host_only();
    c.router = Some(ip(1));
    c.dns_servers = vec![ip(1)];
    c.domain_name = Some("vbox".into());
    c
}

/// The epoch of the wall clock in these tests: an arbitrary fixed date.
fn wall(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn at(secs: u64) -> Instant {
    Instant::from_secs(secs)
}

struct Harness {
    server: DhcpServer,
}

/// A reply as it went out.
#[derive(Debug)]
struct Sent {
    repr: DhcpRepr,
    dest: ReplyDest,
    /// Option codes in wire order.
    codes: Vec<u8>,
    bytes: Vec<u8>,
}

impl Harness {
    fn new() -> Self {
        Self::with(config())
    }

    fn with(config: DhcpServerConfig) -> Self {
        Harness {
            server: DhcpServer::new(config, at(0), wall(0)).unwrap(),
        }
    }

    fn send(&mut self, now: u64, payload: &[u8]) -> Option<Sent> {
        let mut out = [0xa5u8; 600];
        let (len, dest) = self
            .server
            .handle_bytes(at(now), payload, &mut out)
            .expect("well-formed request")?;
        let bytes = out[..len].to_vec();
        let packet = DhcpPacket::new_checked(&bytes[..]).unwrap();
        let codes = packet.options().map(|o| o.unwrap().code).collect();
        Some(Sent {
            repr: DhcpRepr::parse(&packet).unwrap(),
            dest,
            codes,
            bytes,
        })
    }

    /// DISCOVER/OFFER/REQUEST/ACK for `mac`; returns the bound address.
    fn bind(&mut self, now: u64, mac: EthernetAddress) -> Ipv4Addr {
        let offer = self.send(now, &discover(BROADCAST, mac)).unwrap();
        assert_eq!(offer.repr.message_type, DhcpMessageType::Offer);
        let last = offer.repr.yiaddr.octets()[3];
        let ack = self.send(now, &request_selecting(mac, last)).unwrap();
        assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
        ack.repr.yiaddr
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vnet-dhcp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- 4.3.1 DHCPDISCOVER ----

#[test]
fn rfc2131_4_3_1_discover_offers_first_free_pool_address() {
    let mut h = Harness::new();
    let offer = h.send(0, &discover(BROADCAST, MAC_A)).unwrap();
    assert_eq!(offer.repr.message_type, DhcpMessageType::Offer);
    assert_eq!(offer.repr.yiaddr, ip(101));
    assert_eq!(h.server.counters().offers, 1);
    // The offered address is reserved: another client is offered the next one.
    let other = h.send(1, &discover(BROADCAST, MAC_B)).unwrap();
    assert_eq!(other.repr.yiaddr, ip(102));
}

#[test]
fn rfc2131_4_3_1_requested_address_offered_when_free() {
    let mut h = Harness::new();
    let payload = bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        MAC_A,
        &[53, 1, 1, 50, 4, 192, 168, 56, 200],
    );
    assert_eq!(h.send(0, &payload).unwrap().repr.yiaddr, ip(200));
    // Taken by A's offer: B asking for it gets a free one instead.
    let payload = bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        MAC_B,
        &[53, 1, 1, 50, 4, 192, 168, 56, 200],
    );
    assert_eq!(h.send(0, &payload).unwrap().repr.yiaddr, ip(101));
    // Outside the pool (the server's own address): ignored.
    let payload = bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        MAC_C,
        &[53, 1, 1, 50, 4, 192, 168, 56, 100],
    );
    assert_eq!(h.send(0, &payload).unwrap().repr.yiaddr, ip(102));
}

#[test]
fn rfc2131_4_3_1_discover_from_bound_client_keeps_its_lease() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    // "The client's current address as recorded in the client's current binding".
    let offer = h.send(100, &discover(BROADCAST, MAC_A)).unwrap();
    assert_eq!(offer.repr.yiaddr, ip(101));
    // Offering does not shorten the lease to an offer hold.
    let lease = h.server.leases().lease(ip(101)).unwrap();
    assert_eq!(lease.state, LeaseState::Bound);
    assert_eq!(lease.deadline, Some(at(3600)));
}

// ---- 4.3.2 DHCPREQUEST, one test per row of the table and per outcome ----

#[test]
fn rfc2131_4_3_2_selecting_request_acked() {
    let mut h = Harness::new();
    let offer = h.send(0, &discover(BROADCAST, MAC_A)).unwrap();
    assert_eq!(offer.repr.yiaddr, ip(101));
    let ack = h.send(1, &request_selecting(MAC_A, 101)).unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    assert_eq!(ack.repr.yiaddr, ip(101));
    assert_eq!(ack.repr.xid, u32::from_be_bytes(XID));
    let lease = h.server.leases().lease(ip(101)).unwrap();
    assert_eq!(lease.state, LeaseState::Bound);
    assert_eq!(lease.deadline, Some(at(1) + Duration::from_secs(3600)));
    assert_eq!(h.server.counters().acks, 1);
}

#[test]
fn selecting_request_with_the_offer_in_ciaddr_is_acked() {
    // Some old clients put the offered address in ciaddr instead of option 50.
    let mut h = Harness::new();
    let offer = h.send(0, &discover(BROADCAST, MAC_A)).unwrap();
    assert_eq!(offer.repr.yiaddr, ip(101));
    let req = bootrequest(
        BROADCAST,
        [192, 168, 56, 101],
        ZERO,
        MAC_A,
        &[53, 1, 3, 54, 4, 192, 168, 56, 100],
    );
    let ack = h.send(1, &req).unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    assert_eq!(ack.repr.yiaddr, ip(101));
    // Neither option 50 nor ciaddr: NAK.
    let req = bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        MAC_B,
        &[53, 1, 3, 54, 4, 192, 168, 56, 100],
    );
    let nak = h.send(2, &req).unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    assert_eq!(h.server.counters().requests_received, 2);
}

#[test]
fn rfc2131_4_3_2_selecting_request_for_wrong_address_naked() {
    let mut h = Harness::new();
    h.send(0, &discover(BROADCAST, MAC_A)).unwrap(); // offered .101
    let nak = h.send(1, &request_selecting(MAC_A, 150)).unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    assert_eq!(nak.dest, ReplyDest::Broadcast);
    assert_eq!(
        h.server.leases().lease(ip(150)).unwrap().state,
        LeaseState::Free
    );
}

#[test]
fn selecting_request_for_other_server_is_ignored() {
    let mut h = Harness::new();
    h.send(0, &discover(BROADCAST, MAC_A)).unwrap();
    assert_eq!(h.server.leases().active(), 1);
    let other_server = bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        MAC_A,
        &[53, 1, 3, 54, 4, 192, 168, 56, 2, 50, 4, 192, 168, 56, 2],
    );
    assert!(h.send(1, &other_server).is_none());
    assert_eq!(h.server.counters().ignored_foreign_server, 1);
    // "use the message as notification that the client has declined that server's
    // offer": our held address is free again.
    assert_eq!(h.server.leases().active(), 0);
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().state,
        LeaseState::Free
    );
}

#[test]
fn rfc2131_4_3_2_init_reboot_known_client_acked() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    let ack = h
        .send(100, &request_init_reboot(MAC_A, [192, 168, 56, 101]))
        .unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    assert_eq!(ack.repr.yiaddr, ip(101));
    assert_eq!(ack.dest, ReplyDest::Broadcast);
    assert_eq!(ack.repr.lease_duration, Some(3600));
}

#[test]
fn rfc2131_4_3_2_init_reboot_wrong_address_naked() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    let nak = h
        .send(100, &request_init_reboot(MAC_A, [192, 168, 56, 120]))
        .unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    assert_eq!(nak.dest, ReplyDest::Broadcast);
    // The client's real lease is untouched.
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().state,
        LeaseState::Bound
    );
}

#[test]
fn rfc2131_4_3_2_init_reboot_wrong_network_naked() {
    let mut h = Harness::new();
    // A client we never saw, coming back from another network (10.0.2.15).
    let nak = h
        .send(0, &request_init_reboot(MAC_A, [10, 0, 2, 15]))
        .unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    assert_eq!(nak.dest, ReplyDest::Broadcast);
}

#[test]
fn a_client_moving_to_a_port_at_its_share_cannot_renew_there() {
    let mut c = config();
    c.max_leases_per_port = 1;
    let mut h = Harness::with(c);
    let mut out = [0u8; 600];
    let mut from = |h: &mut Harness, port: u16, now: u64, payload: &[u8]| {
        h.server
            .handle_bytes_from(port, at(now), payload, &mut out)
            .unwrap()
            .map(|(len, _)| DhcpRepr::parse_bytes(&out[..len]).unwrap())
    };
    // A on port 0, B on port 1 (each port at its share of one).
    for (mac, port) in [(MAC_A, 0), (MAC_B, 1)] {
        let offer = from(&mut h, port, 0, &discover(BROADCAST, mac)).unwrap();
        let last = offer.yiaddr.octets()[3];
        let ack = from(&mut h, port, 0, &request_selecting(mac, last)).unwrap();
        assert_eq!(ack.message_type, DhcpMessageType::Ack);
    }
    let a = h
        .server
        .leases()
        .lease_of(&ClientKey::from_mac(MAC_A))
        .unwrap()
        .addr;
    // A shows up behind port 1: neither its renewal nor its INIT-REBOOT fits there.
    assert!(from(
        &mut h,
        1,
        10,
        &request_renewing(BROADCAST, a.octets(), MAC_A)
    )
    .is_none());
    assert!(from(&mut h, 1, 11, &request_init_reboot(MAC_A, a.octets())).is_none());
    let c = h.server.counters();
    assert_eq!((c.exhausted, c.port_limit), (2, 2));
    // Back on port 0 it renews.
    let ack = from(
        &mut h,
        0,
        12,
        &request_renewing(BROADCAST, a.octets(), MAC_A),
    )
    .unwrap();
    assert_eq!((ack.message_type, ack.yiaddr), (DhcpMessageType::Ack, a));
}

#[test]
fn rfc2131_4_3_2_init_reboot_unknown_client_is_silent() {
    let mut h = Harness::new();
    // In our subnet and even free in our pool, but no record: "MUST remain silent".
    assert!(h
        .send(0, &request_init_reboot(MAC_A, [192, 168, 56, 150]))
        .is_none());
    assert_eq!(h.server.counters().ignored_unknown_client, 1);
    assert_eq!(h.server.counters().naks, 0);
    assert_eq!(h.server.leases().active(), 0);
}

#[test]
fn rfc2131_4_3_2_renewing_unicast_ack() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    // At T1 (1800 s) the client unicasts a REQUEST with ciaddr, flags clear.
    let ack = h
        .send(
            1800,
            &request_renewing(NO_FLAGS, [192, 168, 56, 101], MAC_A),
        )
        .unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    assert_eq!(ack.repr.yiaddr, ip(101));
    assert_eq!(ack.repr.ciaddr, ip(101));
    assert_eq!(
        ack.dest,
        ReplyDest::Unicast {
            ip: ip(101),
            mac: MAC_A
        }
    );
    // The lease is extended from now.
    let lease = h.server.leases().lease(ip(101)).unwrap();
    assert_eq!(lease.deadline, Some(at(1800 + 3600)));
}

#[test]
fn rfc2131_4_3_2_rebinding_broadcast_ack() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    // Past T2 (3150 s) the client broadcasts (here also with the broadcast flag); the
    // ACK still goes to ciaddr (4.1: ciaddr wins over the broadcast bit).
    let ack = h
        .send(
            3200,
            &request_renewing(BROADCAST, [192, 168, 56, 101], MAC_A),
        )
        .unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    assert_eq!(ack.repr.yiaddr, ip(101));
    assert_eq!(
        ack.dest,
        ReplyDest::Unicast {
            ip: ip(101),
            mac: MAC_A
        }
    );
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().deadline,
        Some(at(3200 + 3600))
    );
}

#[test]
fn rfc2131_4_3_2_renewing_after_expiry_reacquires_remembered_address() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    // The lease ran out (the client was suspended) but nobody took the address.
    let ack = h
        .send(
            5000,
            &request_renewing(NO_FLAGS, [192, 168, 56, 101], MAC_A),
        )
        .unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().state,
        LeaseState::Bound
    );
}

#[test]
fn rfc2131_4_3_2_renewing_with_wrong_ciaddr_naked() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    let nak = h
        .send(
            1800,
            &request_renewing(NO_FLAGS, [192, 168, 56, 140], MAC_A),
        )
        .unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    // 4.1: a NAK is broadcast even when ciaddr is set.
    assert_eq!(nak.dest, ReplyDest::Broadcast);
}

#[test]
fn rfc2131_4_3_2_renewing_address_of_another_client_naked() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    let nak = h
        .send(10, &request_renewing(NO_FLAGS, [192, 168, 56, 101], MAC_B))
        .unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().client,
        Some(ClientKey::from_mac(MAC_A))
    );
}

#[test]
fn rfc2131_4_3_2_rebinding_unknown_client_is_silent() {
    let mut h = Harness::new();
    // A REBINDING client leased by another server (no record here): silent.
    assert!(h
        .send(0, &request_renewing(BROADCAST, [192, 168, 56, 150], MAC_A))
        .is_none());
    assert!(h
        .send(0, &request_renewing(BROADCAST, [172, 16, 0, 9], MAC_A))
        .is_none());
    assert_eq!(h.server.counters().ignored_unknown_client, 2);
    assert_eq!(h.server.leases().active(), 0);
}

#[test]
fn request_matching_no_row_of_the_table_is_ignored() {
    let mut h = Harness::new();
    assert!(h
        .send(0, &bootrequest(BROADCAST, ZERO, ZERO, MAC_A, &[53, 1, 3]))
        .is_none());
    assert_eq!(h.server.counters().ignored_incomplete, 1);
}

// ---- Table 3: what replies carry ----

#[test]
fn rfc2131_table3_offer_and_ack_carry_lease_options_in_order() {
    let mut h = Harness::new();
    let offer = h.send(0, &discover(NO_FLAGS, MAC_A)).unwrap();
    let ack = h.send(0, &request_selecting(MAC_A, 101)).unwrap();
    for sent in [&offer, &ack] {
        // 53, 54, 51 lease, 58 T1, 59 T2, 1 mask before 3 router, 6, 12 echoed, 15.
        assert_eq!(sent.codes, [53, 54, 51, 58, 59, 1, 3, 6, 12, 15]);
        let r = &sent.repr;
        assert_eq!(r.server_identifier, Some(ip(100)));
        assert_eq!(r.lease_duration, Some(3600));
        assert_eq!(r.renewal_duration, Some(1800));
        assert_eq!(r.rebinding_duration, Some(3150));
        assert_eq!(r.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
        assert_eq!(r.router, Some(ip(1)));
        assert_eq!(r.dns_servers.unwrap().as_slice(), &[ip(1)]);
        assert_eq!(r.hostname.unwrap().as_slice(), b"vm1");
        assert_eq!(r.domain_name.unwrap().as_slice(), b"vbox");
        // Never requested IP (50), parameter request list (55), max message size (57).
        assert!(!sent.codes.iter().any(|c| [50, 55, 57].contains(c)));
        // BOOTREPLY, hops 0, secs 0, siaddr 0, chaddr copied, padded to 300.
        assert_eq!(sent.bytes[0], 2);
        assert_eq!(sent.bytes[3], 0);
        assert_eq!(r.secs, 0);
        assert_eq!(r.siaddr, Ipv4Addr::UNSPECIFIED);
        assert_eq!(r.client_hardware_address, MAC_A);
        assert_eq!(sent.bytes.len(), 300);
    }
}

#[test]
fn rfc2131_table3_inform_ack_has_no_lease_time() {
    let mut h = Harness::new();
    // A statically configured host (192.168.56.5) asks for its other parameters.
    let inform = bootrequest(
        NO_FLAGS,
        [192, 168, 56, 5],
        ZERO,
        MAC_A,
        &[53, 1, 8, 55, 3, 1, 3, 6],
    );
    let ack = h.send(0, &inform).unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    assert_eq!(ack.codes, [53, 54, 1, 3, 6, 15]);
    assert_eq!(ack.repr.lease_duration, None);
    assert_eq!(ack.repr.renewal_duration, None);
    assert_eq!(ack.repr.rebinding_duration, None);
    assert_eq!(ack.repr.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.repr.ciaddr, ip(5));
    // 4.3.5: "directly to the address given in the 'ciaddr' field".
    assert_eq!(
        ack.dest,
        ReplyDest::Unicast {
            ip: ip(5),
            mac: MAC_A
        }
    );
    // No lease was allocated or checked.
    assert_eq!(h.server.leases().active(), 0);
    assert_eq!(h.server.counters().informs, 1);
}

#[test]
fn rfc2131_table3_nak_has_only_server_id() {
    let mut h = Harness::new();
    h.bind(0, MAC_A);
    let nak = h
        .send(5, &request_init_reboot(MAC_A, [192, 168, 56, 130]))
        .unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    // 53, 54 and the optional 56 message; nothing else.
    assert_eq!(nak.codes, [53, 54, 56]);
    assert_eq!(nak.repr.server_identifier, Some(ip(100)));
    assert_eq!(nak.repr.ciaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.repr.yiaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.repr.siaddr, Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.repr.xid, u32::from_be_bytes(XID));
    assert_eq!(h.server.counters().naks, 1);
}

#[test]
fn rfc6842_client_identifier_echoed_in_replies() {
    let mut h = Harness::new();
    let id = [61, 7, 1, 0x08, 0x00, 0x27, 0x11, 0x22, 0x33];
    let mut opts = vec![53, 1, 1];
    opts.extend_from_slice(&id);
    let offer = h
        .send(0, &bootrequest(BROADCAST, ZERO, ZERO, MAC_A, &opts))
        .unwrap();
    assert!(offer.codes.contains(&61));
    assert_eq!(offer.repr.client_identifier.unwrap().as_slice(), &id[2..]);
    // Also in a NAK (wrong network).
    let mut opts = vec![53, 1, 3, 50, 4, 10, 0, 0, 1];
    opts.extend_from_slice(&id);
    let nak = h
        .send(0, &bootrequest(BROADCAST, ZERO, ZERO, MAC_A, &opts))
        .unwrap();
    assert_eq!(nak.codes, [53, 54, 56, 61]);
}

// ---- 4.1: where replies go ----

#[test]
fn rfc2131_4_1_broadcast_flag_means_broadcast_reply() {
    let mut h = Harness::new();
    let offer = h.send(0, &discover(BROADCAST, MAC_A)).unwrap();
    assert_eq!(offer.dest, ReplyDest::Broadcast);
    assert!(offer.repr.broadcast, "flags copied from the request");
}

#[test]
fn rfc2131_4_1_no_broadcast_flag_means_unicast_to_yiaddr() {
    let mut h = Harness::new();
    let offer = h.send(0, &discover(NO_FLAGS, MAC_A)).unwrap();
    assert_eq!(
        offer.dest,
        ReplyDest::Unicast {
            ip: ip(101),
            mac: MAC_A
        }
    );
    assert!(!offer.repr.broadcast);
}

#[test]
fn rfc2131_4_1_ciaddr_means_unicast_reply() {
    let mut h = Harness::new();
    h.bind(0, MAC_A);
    // ciaddr set and the broadcast bit set: ciaddr wins.
    let ack = h
        .send(10, &request_renewing(BROADCAST, [192, 168, 56, 101], MAC_A))
        .unwrap();
    assert_eq!(
        ack.dest,
        ReplyDest::Unicast {
            ip: ip(101),
            mac: MAC_A
        }
    );
}

#[test]
fn rfc2131_4_1_relayed_replies_go_to_giaddr_and_naks_set_broadcast_bit() {
    let mut h = Harness::new();
    let relay = [192, 168, 56, 1];
    let relayed = bootrequest(NO_FLAGS, ZERO, relay, MAC_A, &[53, 1, 1]);
    let offer = h.send(0, &relayed).unwrap();
    assert_eq!(offer.dest, ReplyDest::Relay { giaddr: ip(1) });
    assert_eq!(offer.repr.giaddr, ip(1));
    let nak_request = bootrequest(
        NO_FLAGS,
        ZERO,
        relay,
        MAC_B,
        &[53, 1, 3, 50, 4, 10, 1, 1, 1],
    );
    let nak = h.send(0, &nak_request).unwrap();
    assert_eq!(nak.repr.message_type, DhcpMessageType::Nak);
    assert_eq!(nak.dest, ReplyDest::Relay { giaddr: ip(1) });
    // 4.3.2: "The server MUST set the broadcast bit in the DHCPNAK".
    assert!(nak.repr.broadcast);
}

#[test]
fn relay_from_another_subnet_is_ignored() {
    let mut h = Harness::new();
    let relayed = bootrequest(NO_FLAGS, ZERO, [10, 9, 9, 1], MAC_A, &[53, 1, 1]);
    assert!(h.send(0, &relayed).is_none());
    assert_eq!(h.server.counters().ignored_foreign_relay, 1);
}

// ---- 4.3.3 DECLINE, 4.3.4 RELEASE ----

fn decline(chaddr: EthernetAddress, last: u8) -> Vec<u8> {
    bootrequest(
        NO_FLAGS,
        ZERO,
        ZERO,
        chaddr,
        &[
            53, 1, 4, 54, 4, 192, 168, 56, 100, 50, 4, 192, 168, 56, last,
        ],
    )
}

fn release(chaddr: EthernetAddress, last: u8) -> Vec<u8> {
    bootrequest(
        NO_FLAGS,
        [192, 168, 56, last],
        ZERO,
        chaddr,
        &[53, 1, 7, 54, 4, 192, 168, 56, 100],
    )
}

#[test]
fn rfc2131_4_3_3_decline_quarantines_address() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert!(h.send(1, &decline(MAC_A, 101)).is_none());
    assert_eq!(h.server.counters().declines, 1);
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().state,
        LeaseState::Declined
    );
    // Neither the declining client nor anyone else gets it during the quarantine...
    assert_eq!(
        h.send(2, &discover(BROADCAST, MAC_A)).unwrap().repr.yiaddr,
        ip(102)
    );
    let asks_for_it = bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        MAC_B,
        &[53, 1, 1, 50, 4, 192, 168, 56, 101],
    );
    assert_eq!(h.send(3, &asks_for_it).unwrap().repr.yiaddr, ip(103));
    // ...and after 300 s it is back in the pool.
    assert_eq!(
        h.server.poll_at(),
        Some(at(62)),
        "the offer hold (2 s + 60 s) ends first"
    );
    let asks_for_it = bootrequest(
        BROADCAST,
        ZERO,
        ZERO,
        MAC_C,
        &[53, 1, 1, 50, 4, 192, 168, 56, 101],
    );
    assert_eq!(h.send(301, &asks_for_it).unwrap().repr.yiaddr, ip(101));
}

#[test]
fn rfc2131_4_3_3_decline_from_non_owner_is_ignored() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert!(h.send(1, &decline(MAC_B, 101)).is_none());
    assert_eq!(h.server.counters().ignored_not_owner, 1);
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().state,
        LeaseState::Bound
    );
}

#[test]
fn rfc2131_4_3_4_release_frees_address() {
    let mut h = Harness::new();
    // A pool of one address: only a real release lets a second client in.
    let mut c = config();
    c.pool_end = ip(101);
    let mut h1 = Harness::with(c);
    assert_eq!(h1.bind(0, MAC_A), ip(101));
    assert!(h1.send(1, &discover(BROADCAST, MAC_B)).is_none());
    assert!(h1.send(2, &release(MAC_A, 101)).is_none());
    assert_eq!(h1.server.counters().releases, 1);
    assert_eq!(h1.server.leases().active(), 0);
    assert_eq!(h1.bind(3, MAC_B), ip(101));
    // A release from a client that does not hold the address changes nothing.
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert!(h.send(1, &release(MAC_B, 101)).is_none());
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().state,
        LeaseState::Bound
    );
}

// ---- lease stability, identity, bounds, expiry ----

#[test]
fn same_client_gets_same_address_back() {
    let mut h = Harness::new();
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert_eq!(h.bind(0, MAC_B), ip(102));
    // Rebinding from scratch (the client lost its state): same address.
    assert_eq!(h.bind(10, MAC_A), ip(101));
    // After a RELEASE, a newcomer is given an address nobody remembers...
    h.send(20, &release(MAC_A, 101));
    assert_eq!(h.bind(21, MAC_C), ip(103));
    // ...so the releasing client gets its own back.
    assert_eq!(h.bind(30, MAC_A), ip(101));
    // After its lease expired, too.
    assert_eq!(h.bind(30 + 3600 + 1, MAC_B), ip(102));
}

#[test]
fn client_identifier_preferred_over_mac() {
    let mut h = Harness::new();
    let with_id = |mac: EthernetAddress, msg: u8, extra: &[u8]| {
        let mut opts = vec![53, 1, msg, 61, 5, 0xff, 0xde, 0xad, 0xbe, 0xef];
        opts.extend_from_slice(extra);
        bootrequest(BROADCAST, ZERO, ZERO, mac, &opts)
    };
    let offer = h.send(0, &with_id(MAC_A, 1, &[])).unwrap();
    assert_eq!(offer.repr.yiaddr, ip(101));
    let req = with_id(
        MAC_A,
        3,
        &[54, 4, 192, 168, 56, 100, 50, 4, 192, 168, 56, 101],
    );
    assert_eq!(
        h.send(0, &req).unwrap().repr.message_type,
        DhcpMessageType::Ack
    );
    // Same client identifier on another NIC: same lease.
    assert_eq!(
        h.send(1, &with_id(MAC_B, 1, &[])).unwrap().repr.yiaddr,
        ip(101)
    );
    // Same MAC without the identifier: another client.
    assert_eq!(
        h.send(2, &discover(BROADCAST, MAC_A)).unwrap().repr.yiaddr,
        ip(102)
    );
    let key = ClientKey::from_client_id(&[0xff, 0xde, 0xad, 0xbe, 0xef]).unwrap();
    assert_eq!(h.server.leases().lease_of(&key).unwrap().addr, ip(101));
}

#[test]
fn pool_exhaustion_is_silent_and_counted() {
    let mut c = config();
    c.pool_end = ip(102);
    let mut h = Harness::with(c);
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert_eq!(h.bind(0, MAC_B), ip(102));
    assert!(h.send(1, &discover(BROADCAST, MAC_C)).is_none());
    assert_eq!(h.server.counters().exhausted, 1);
    // max_leases bounds the table below the pool size too.
    let mut c = config();
    c.max_leases = Some(1);
    let mut h = Harness::with(c);
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert!(h.send(1, &discover(BROADCAST, MAC_B)).is_none());
    assert_eq!(h.server.counters().exhausted, 1);
    assert_eq!(h.server.leases().active(), 1);
}

#[test]
fn lease_expiry_frees_address() {
    let mut c = config();
    c.pool_end = ip(101);
    let mut h = Harness::with(c);
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert_eq!(h.server.poll_at(), Some(at(3600)));
    assert!(h.send(3599, &discover(BROADCAST, MAC_B)).is_none());
    h.server.poll(at(3600));
    assert_eq!(h.server.counters().expired, 1);
    assert_eq!(h.server.poll_at(), None);
    assert_eq!(
        h.server.leases().lease(ip(101)).unwrap().state,
        LeaseState::Free
    );
    // A takes it back while nobody else has (remembered binding)...
    assert_eq!(
        h.send(3700, &request_init_reboot(MAC_A, [192, 168, 56, 101]))
            .unwrap()
            .repr
            .message_type,
        DhcpMessageType::Ack
    );
    h.server.poll(at(3700 + 3600));
    // ...but once B takes it, A's record is gone: INIT-REBOOT from A is silent.
    assert_eq!(h.bind(3700 + 3600, MAC_B), ip(101));
    assert!(h
        .send(7400, &request_init_reboot(MAC_A, [192, 168, 56, 101]))
        .is_none());
    assert_eq!(h.server.counters().ignored_unknown_client, 1);
}

// ---- the lease file ----

#[test]
fn lease_file_survives_restart() {
    let dir = temp_dir("restart");
    let path = dir.join("leases");
    let mut c = config();
    c.lease_file = Some(path.clone());
    let mut h = Harness::with(c.clone());
    assert_eq!(h.bind(0, MAC_A), ip(101));
    assert_eq!(h.bind(0, MAC_B), ip(102));
    h.send(10, &release(MAC_B, 102));
    assert!(h.server.is_dirty());
    assert!(h.server.flush_if_dirty(at(100), wall(100)).unwrap());
    assert!(!h.server.flush_if_dirty(at(100), wall(100)).unwrap());

    // Restart 1000 s later (wall clock), with a fresh monotonic epoch.
    let mut h = Harness {
        server: DhcpServer::new(c, at(0), wall(1100)).unwrap(),
    };
    let a = h.server.leases().lease(ip(101)).unwrap();
    assert_eq!(a.state, LeaseState::Bound);
    assert_eq!(a.client, Some(ClientKey::from_mac(MAC_A)));
    assert_eq!(a.deadline, Some(at(3600 - 1100)), "remaining time kept");
    // A's INIT-REBOOT is acknowledged: the server has a record of it.
    let ack = h
        .send(5, &request_init_reboot(MAC_A, [192, 168, 56, 101]))
        .unwrap();
    assert_eq!(ack.repr.message_type, DhcpMessageType::Ack);
    // B released before the restart: its address is free but still remembered for it.
    let b = h.server.leases().lease(ip(102)).unwrap();
    assert_eq!(
        (b.state, b.client),
        (LeaseState::Free, Some(ClientKey::from_mac(MAC_B)))
    );
    assert_eq!(h.bind(6, MAC_C), ip(103));
    assert_eq!(h.bind(7, MAC_B), ip(102));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn lease_file_write_is_atomic() {
    let dir = temp_dir("atomic");
    let path = dir.join("leases");
    let tmp = dir.join("leases.tmp");
    let mut c = config();
    c.lease_file = Some(path.clone());
    let mut h = Harness::with(c.clone());
    assert_eq!(h.bind(0, MAC_A), ip(101));
    h.server.save(at(1), wall(1)).unwrap();
    let saved = std::fs::read_to_string(&path).unwrap();
    assert!(!tmp.exists(), "the temporary file is renamed away");
    // A crash in the middle of the next save leaves garbage in PATH.tmp and the old
    // PATH intact: loading ignores the garbage.
    std::fs::write(&tmp, b"vnet-dhcp-leases 1\nbound 192.168.56.1").unwrap();
    let restarted = DhcpServer::new(c.clone(), at(0), wall(2)).unwrap();
    assert_eq!(
        restarted.leases().lease(ip(101)).unwrap().state,
        LeaseState::Bound
    );
    // The next save overwrites the stale temporary file and replaces PATH whole.
    assert_eq!(h.bind(3, MAC_B), ip(102));
    h.server.save(at(3), wall(3)).unwrap();
    assert!(!tmp.exists());
    let now_saved = std::fs::read_to_string(&path).unwrap();
    assert_ne!(saved, now_saved);
    assert!(now_saved.ends_with("end 2\n"), "{now_saved}");
    // A save that cannot write (the directory is gone) fails and stays dirty.
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(h.bind(4, MAC_C), ip(103));
    assert!(h.server.save(at(4), wall(4)).is_err());
    assert!(h.server.is_dirty());
}

#[test]
fn lease_file_truncated_is_an_error_naming_the_file() {
    let dir = temp_dir("truncated");
    let path = dir.join("leases");
    let mut c = config();
    c.lease_file = Some(path.clone());
    let mut h = Harness::with(c.clone());
    h.bind(0, MAC_A);
    h.server.save(at(1), wall(1)).unwrap();
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 4]).unwrap();
    let err = DhcpServer::new(c.clone(), at(0), wall(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("truncated"), "{err}");
    // Garbage in the main file: also an error naming it, never a panic.
    std::fs::write(&path, b"\xff\xfe garbage").unwrap();
    let err = DhcpServer::new(c, at(0), wall(2)).unwrap_err().to_string();
    assert!(err.contains(&path.display().to_string()), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- data-path properties ----

#[test]
fn handle_bytes_does_not_allocate() {
    let mut h = Harness::new();
    let frames: Vec<Vec<u8>> = vec![
        discover(BROADCAST, MAC_A),
        request_selecting(MAC_A, 101),
        request_renewing(NO_FLAGS, [192, 168, 56, 101], MAC_A),
        request_init_reboot(MAC_A, [192, 168, 56, 101]),
        request_init_reboot(MAC_A, [192, 168, 56, 120]),
        bootrequest(NO_FLAGS, [192, 168, 56, 5], ZERO, MAC_B, &[53, 1, 8]),
        decline(MAC_A, 101),
        release(MAC_A, 101),
        vec![1, 2, 3],
    ];
    let mut out = [0u8; 600];
    let before = allocations();
    for (i, f) in frames.iter().enumerate() {
        let _ = h.server.handle_bytes(at(i as u64), f, &mut out);
    }
    h.server.poll(at(100_000));
    assert_eq!(allocations() - before, 0);
}

#[test]
fn malformed_payloads_are_counted_not_answered() {
    let mut h = Harness::new();
    let mut out = [0u8; 600];
    let good = discover(BROADCAST, MAC_A);
    for len in [0, 10, 239, 240] {
        assert!(h
            .server
            .handle_bytes(at(0), &good[..len], &mut out)
            .is_err());
    }
    let mut bad_cookie = good.clone();
    bad_cookie[236] = 0;
    assert_eq!(
        h.server.handle_bytes(at(0), &bad_cookie, &mut out),
        Err(WireError::Malformed(Layer::Dhcp, Malformed::BadMagic))
    );
    assert_eq!(h.server.counters().malformed, 5);
    // A reply that does not fit the caller's buffer is an error, counted.
    let mut small = [0u8; 100];
    assert!(h.server.handle_bytes(at(0), &good, &mut small).is_err());
    assert_eq!(h.server.counters().reply_too_large, 1);
}

#[test]
fn server_messages_sent_to_the_server_are_ignored() {
    let mut h = Harness::new();
    let mut offer = DhcpRepr::new(DhcpMessageType::Offer, 1, MAC_A);
    offer.yiaddr = ip(150);
    assert!(h.server.handle(at(0), &offer).is_none());
    assert_eq!(h.server.counters().ignored_message_type, 1);
}
