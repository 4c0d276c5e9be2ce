//! DHCP server stage throughput, in memory: one element = one full transaction
//! (DHCPDISCOVER -> DHCPOFFER, DHCPREQUEST -> DHCPACK), bytes in, bytes out, through
//! `DhcpServer::handle_bytes` (parse, lease logic, emit).
//!
//! - `known_clients`: a rotating set of 1024 client MACs that already hold leases (the
//!   steady state of a busy segment: clients rebooting or renewing from scratch);
//! - `new_clients`: a never-seen MAC for every transaction, with a DHCPRELEASE after the
//!   ACK so the pool never runs out: every transaction allocates an address (the free-slot
//!   scan and the client index insert/remove).
//!
//! Criterion reports time per transaction and transactions per second (`Elements`).

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::UNIX_EPOCH;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vnet_core::time::Instant;
use vnet_core::wire::dhcp::{field, DhcpMessageType, DhcpPacket, DhcpRepr, HEADER_LEN};
use vnet_core::wire::EthernetAddress;
use vnet_modes::dhcp::{DhcpServer, DhcpServerConfig};

const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn server() -> DhcpServer {
    let mut config = DhcpServerConfig::new(
        SERVER,
        Ipv4Addr::new(255, 255, 240, 0),
        Ipv4Addr::new(10, 0, 0, 10),
        Ipv4Addr::new(10, 0, 15, 254),
    );
    config.router = Some(SERVER);
    config.dns_servers = vec![SERVER];
    DhcpServer::new(config, Instant::ZERO, UNIX_EPOCH).unwrap()
}

/// A client message template whose `chaddr` and option 50 are patched per transaction.
struct Template {
    bytes: Vec<u8>,
    requested_ip_at: Option<usize>,
}

impl Template {
    fn new(repr: &DhcpRepr) -> Self {
        let mut bytes = vec![0u8; repr.buffer_len()];
        repr.emit(&mut bytes).unwrap();
        let mut at = HEADER_LEN;
        let mut requested_ip_at = None;
        for opt in DhcpPacket::new_checked(&bytes[..]).unwrap().options() {
            let opt = opt.unwrap();
            if opt.code == 50 {
                requested_ip_at = Some(at + 2);
            }
            at += 2 + opt.data.len();
        }
        Template {
            bytes,
            requested_ip_at,
        }
    }

    fn set_mac(&mut self, mac: [u8; 6]) {
        self.bytes[field::CHADDR.start..field::CHADDR.start + 6].copy_from_slice(&mac);
    }

    fn set_requested_ip(&mut self, ip: &[u8]) {
        let at = self.requested_ip_at.unwrap();
        self.bytes[at..at + 4].copy_from_slice(ip);
    }

    fn set_ciaddr(&mut self, ip: &[u8]) {
        self.bytes[field::CIADDR].copy_from_slice(ip);
    }
}

fn mac(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0x00, b[0], b[1], b[2], b[3]]
}

struct Client {
    discover: Template,
    request: Template,
    release: Template,
    out: [u8; 600],
}

impl Client {
    fn new() -> Self {
        let chaddr = EthernetAddress([0x02, 0, 0, 0, 0, 0]);
        let mut discover = DhcpRepr::new(DhcpMessageType::Discover, 0x1234_5678, chaddr);
        discover.parameter_request_list = vnet_core::wire::dhcp::InlineBytes::new(&[1, 3, 6, 15]);
        let mut request = discover;
        request.message_type = DhcpMessageType::Request;
        request.server_identifier = Some(SERVER);
        request.requested_ip = Some(Ipv4Addr::UNSPECIFIED);
        let mut release = DhcpRepr::new(DhcpMessageType::Release, 0x1234_5679, chaddr);
        release.server_identifier = Some(SERVER);
        Client {
            discover: Template::new(&discover),
            request: Template::new(&request),
            release: Template::new(&release),
            out: [0u8; 600],
        }
    }

    /// DISCOVER/OFFER then REQUEST/ACK for `mac`; returns the bound address bytes.
    fn transaction(&mut self, server: &mut DhcpServer, now: Instant, mac: [u8; 6]) -> [u8; 4] {
        self.discover.set_mac(mac);
        let (len, _) = server
            .handle_bytes(now, &self.discover.bytes, &mut self.out)
            .unwrap()
            .expect("offer");
        black_box(len);
        let mut yiaddr = [0u8; 4];
        yiaddr.copy_from_slice(&self.out[field::YIADDR]);
        self.request.set_mac(mac);
        self.request.set_requested_ip(&yiaddr);
        let (len, dest) = server
            .handle_bytes(now, &self.request.bytes, &mut self.out)
            .unwrap()
            .expect("ack");
        black_box((len, dest));
        debug_assert_eq!(self.out[field::OPTIONS + 2], 5, "DHCPACK");
        yiaddr
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("dhcp");
    group.throughput(Throughput::Elements(1));

    group.bench_function("known_clients", |b| {
        let mut server = server();
        let mut client = Client::new();
        const CLIENTS: u32 = 1024;
        for n in 0..CLIENTS {
            client.transaction(&mut server, Instant::ZERO, mac(n));
        }
        let mut n = 0u32;
        b.iter(|| {
            n = (n + 1) % CLIENTS;
            client.transaction(&mut server, Instant::ZERO, mac(n))
        });
        assert_eq!(server.leases().active(), CLIENTS as usize);
    });

    group.bench_function("new_clients", |b| {
        let mut server = server();
        let mut client = Client::new();
        let mut n = 0u32;
        b.iter(|| {
            n = n.wrapping_add(1);
            let m = mac(n);
            let addr = client.transaction(&mut server, Instant::ZERO, m);
            client.release.set_mac(m);
            client.release.set_ciaddr(&addr);
            let silent = server
                .handle_bytes(Instant::ZERO, &client.release.bytes, &mut client.out)
                .unwrap();
            debug_assert!(silent.is_none());
            addr
        });
        assert_eq!(server.counters().exhausted, 0);
    });

    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
