//! The DNS proxy at the NAT modes' DNS address (10.0.2.3 in NAT, 10.0.2.1 in NAT Network).
//!
//! A guest's UDP query to the proxy address, port 53, is re-addressed to the upstream
//! resolver (`--dns IP`, beyond the uplink) and then leaves through the NAPT like any
//! outbound datagram; the answer comes back through the NAPT to the guest, and the proxy
//! puts its own address back as the source, so the guest sees the answer from the
//! address it asked. Without an upstream the proxy answers SERVFAIL at once (RFC 1035
//! RCODE 2): a guest is never left waiting in silence.
//!
//! Invariants: only datagrams to `proxy_ip:53` are touched on the way out; on the way in,
//! only answers from `upstream:53` whose (realm, guest port, DNS id) the proxy forwarded
//! and that are still pending are re-sourced (a guest querying the upstream directly
//! sees the upstream's address); the pending table is bounded and entries expire.

use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::time::Instant;
use vnet_core::wire::{checksum, IpProtocol, Ipv4Packet, UdpPacket};

/// How long a forwarded query waits for its answer.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Most queries in flight through the proxy.
pub const MAX_PENDING: usize = 1024;

/// DNS port.
pub const DNS_PORT: u16 = 53;

/// What the proxy did with an outbound packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsOutbound {
    /// Not a query to the proxy: untouched.
    NotForUs,
    /// Re-addressed to the upstream; translate it outbound now.
    Forward,
    /// Rewritten in place into a SERVFAIL answer to the guest (addresses and ports
    /// swapped); send it back out of the ingress port.
    ServFail,
    /// A query to the proxy that cannot be forwarded (malformed or table full): drop.
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    realm: u16,
    guest_port: u16,
    id: u16,
    deadline: Instant,
}

/// Proxy statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Queries forwarded upstream.
    pub forwarded: u64,
    /// Answers returned to guests.
    pub answered: u64,
    /// SERVFAIL answers (no upstream).
    pub servfail: u64,
    /// Queries dropped (malformed, table full).
    pub dropped: u64,
}

/// The proxy stage.
#[derive(Debug)]
pub struct DnsProxy {
    proxy_ip: Ipv4Addr,
    upstream: Option<Ipv4Addr>,
    pending: Vec<Pending>,
    stats: DnsStats,
}

impl DnsProxy {
    /// A proxy at `proxy_ip` forwarding to `upstream` (None: answer SERVFAIL).
    pub fn new(proxy_ip: Ipv4Addr, upstream: Option<Ipv4Addr>) -> Self {
        Self {
            proxy_ip,
            upstream,
            pending: Vec::with_capacity(MAX_PENDING),
            stats: DnsStats::default(),
        }
    }

    /// The proxy's address.
    pub fn proxy_ip(&self) -> Ipv4Addr {
        self.proxy_ip
    }

    /// Statistics.
    pub fn stats(&self) -> DnsStats {
        self.stats
    }

    /// Handle a guest packet (`ip` starts at the IPv4 header) from `realm`.
    pub fn outbound(&mut self, now: Instant, realm: u16, ip: &mut [u8]) -> DnsOutbound {
        let Ok(mut packet) = Ipv4Packet::new_checked(&mut ip[..]) else {
            return DnsOutbound::NotForUs;
        };
        if packet.dst_addr() != self.proxy_ip || packet.next_header() != IpProtocol::Udp {
            return DnsOutbound::NotForUs;
        }
        let (src, dst) = (packet.src_addr(), packet.dst_addr());
        if packet.is_fragment() || !packet.verify_checksum() {
            self.stats.dropped += 1;
            return DnsOutbound::Drop;
        }
        let Ok(udp) = UdpPacket::new_checked(packet.payload_mut()) else {
            self.stats.dropped += 1;
            return DnsOutbound::Drop;
        };
        if udp.dst_port() != DNS_PORT {
            return DnsOutbound::NotForUs;
        }
        if !udp.verify_checksum(src, dst) || udp.payload().len() < 12 {
            self.stats.dropped += 1;
            return DnsOutbound::Drop;
        }
        let guest_port = udp.src_port();
        let id = u16::from_be_bytes([udp.payload()[0], udp.payload()[1]]);
        let Some(upstream) = self.upstream else {
            return self.servfail(ip);
        };
        self.expire(now);
        if self.pending.len() >= MAX_PENDING {
            self.stats.dropped += 1;
            return DnsOutbound::Drop;
        }
        self.pending.push(Pending {
            realm,
            guest_port,
            id,
            deadline: now + QUERY_TIMEOUT,
        });
        readdress(ip, upstream, AddrField::Destination);
        self.stats.forwarded += 1;
        DnsOutbound::Forward
    }

    /// After the NAPT translated an inbound packet to `realm`: if it is the answer to a
    /// query the proxy forwarded, make it come from the proxy's address.
    pub fn inbound(&mut self, now: Instant, realm: u16, ip: &mut [u8]) {
        let Some(upstream) = self.upstream else {
            return;
        };
        let Ok(packet) = Ipv4Packet::new_checked(&ip[..]) else {
            return;
        };
        if packet.src_addr() != upstream || packet.next_header() != IpProtocol::Udp {
            return;
        }
        let p = packet.payload();
        if p.len() < 8 + 12 || u16::from_be_bytes([p[0], p[1]]) != DNS_PORT {
            return;
        }
        let guest_port = u16::from_be_bytes([p[2], p[3]]);
        let id = u16::from_be_bytes([p[8], p[9]]);
        let Some(i) = self.pending.iter().position(|q| {
            q.realm == realm && q.guest_port == guest_port && q.id == id && q.deadline >= now
        }) else {
            return;
        };
        self.pending.swap_remove(i);
        readdress(ip, self.proxy_ip, AddrField::Source);
        self.stats.answered += 1;
    }

    fn expire(&mut self, now: Instant) {
        self.pending.retain(|q| q.deadline >= now);
    }

    /// Turn the query in `ip` into a SERVFAIL answer in place.
    fn servfail(&mut self, ip: &mut [u8]) -> DnsOutbound {
        let mut packet = Ipv4Packet::new_unchecked(&mut ip[..]);
        let (src, dst) = (packet.src_addr(), packet.dst_addr());
        packet.set_src_addr(dst);
        packet.set_dst_addr(src);
        packet.set_hop_limit(64);
        packet.fill_checksum();
        let udp = packet.payload_mut();
        let (sport, dport) = ([udp[0], udp[1]], [udp[2], udp[3]]);
        udp[0..2].copy_from_slice(&dport);
        udp[2..4].copy_from_slice(&sport);
        let dns = &mut udp[8..];
        // QR=1, opcode and RD kept, RA=1, RCODE=2 (server failure); no answers.
        let opcode_rd = dns[2] & 0x79;
        dns[2] = 0x80 | opcode_rd;
        dns[3] = 0x80 | 0x02;
        dns[6..10].fill(0);
        let mut udp = UdpPacket::new_unchecked(&mut packet.payload_mut()[..]);
        udp.fill_checksum(dst, src);
        self.stats.servfail += 1;
        DnsOutbound::ServFail
    }
}

#[derive(Clone, Copy)]
enum AddrField {
    Source,
    Destination,
}

/// Rewrite one address of an IPv4/UDP packet, fixing both checksums incrementally.
fn readdress(ip: &mut [u8], new: Ipv4Addr, which: AddrField) {
    let mut packet = Ipv4Packet::new_unchecked(&mut ip[..]);
    let old = match which {
        AddrField::Source => packet.src_addr(),
        AddrField::Destination => packet.dst_addr(),
    };
    let (old32, new32) = (u32::from(old), u32::from(new));
    match which {
        AddrField::Source => packet.set_src_addr(new),
        AddrField::Destination => packet.set_dst_addr(new),
    }
    let ip_sum = u16::from_be_bytes([ip[10], ip[11]]);
    ip[10..12].copy_from_slice(&checksum::update32(ip_sum, old32, new32).to_be_bytes());
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    let udp = &mut ip[ihl..];
    let udp_sum = u16::from_be_bytes([udp[6], udp[7]]);
    if udp_sum != 0 {
        let mut updated = checksum::update32(udp_sum, old32, new32);
        if updated == 0 {
            updated = 0xffff;
        }
        udp[6..8].copy_from_slice(&updated.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);
    const PROXY: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);
    const UPSTREAM: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

    /// IPv4/UDP query for "a." type A, id 0x1234, from GUEST:40000 to `dst`:53.
    fn query(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> Vec<u8> {
        let dns = [
            0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
        ];
        let udp_len = 8 + dns.len();
        let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0];
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        let total = (20 + udp_len) as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p.extend_from_slice(&sport.to_be_bytes());
        p.extend_from_slice(&dport.to_be_bytes());
        p.extend_from_slice(&(udp_len as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(&dns);
        let mut ip = Ipv4Packet::new_unchecked(&mut p[..]);
        ip.fill_checksum();
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        udp.fill_checksum(src, dst);
        p
    }

    fn checksums_ok(p: &[u8]) -> bool {
        let ip = Ipv4Packet::new_checked(p).unwrap();
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        ip.verify_checksum() && udp.verify_checksum(ip.src_addr(), ip.dst_addr())
    }

    #[test]
    fn query_is_forwarded_and_answer_resourced() {
        let mut d = DnsProxy::new(PROXY, Some(UPSTREAM));
        let mut q = query(GUEST, PROXY, 40000, 53);
        assert_eq!(d.outbound(Instant::ZERO, 0, &mut q), DnsOutbound::Forward);
        assert_eq!(&q[16..20], &UPSTREAM.octets());
        assert!(checksums_ok(&q));
        // The answer, already translated back to the guest by the NAPT.
        let mut a = query(UPSTREAM, GUEST, 53, 40000);
        d.inbound(Instant::from_secs(1), 0, &mut a);
        assert_eq!(&a[12..16], &PROXY.octets());
        assert!(checksums_ok(&a));
        assert_eq!(d.stats().answered, 1);
        // A second identical answer is not re-sourced (no longer pending).
        let mut again = query(UPSTREAM, GUEST, 53, 40000);
        d.inbound(Instant::from_secs(1), 0, &mut again);
        assert_eq!(&again[12..16], &UPSTREAM.octets());
    }

    #[test]
    fn answers_for_another_realm_or_late_are_left_alone() {
        let mut d = DnsProxy::new(PROXY, Some(UPSTREAM));
        let mut q = query(GUEST, PROXY, 40000, 53);
        d.outbound(Instant::ZERO, 1, &mut q);
        let mut a = query(UPSTREAM, GUEST, 53, 40000);
        d.inbound(Instant::from_secs(1), 2, &mut a);
        assert_eq!(&a[12..16], &UPSTREAM.octets(), "other realm");
        d.inbound(Instant::from_secs(11), 1, &mut a);
        assert_eq!(&a[12..16], &UPSTREAM.octets(), "after the timeout");
    }

    #[test]
    fn without_upstream_the_answer_is_servfail_never_silence() {
        let mut d = DnsProxy::new(PROXY, None);
        let mut q = query(GUEST, PROXY, 40000, 53);
        assert_eq!(d.outbound(Instant::ZERO, 0, &mut q), DnsOutbound::ServFail);
        assert_eq!(&q[12..16], &PROXY.octets());
        assert_eq!(&q[16..20], &GUEST.octets());
        assert_eq!(u16::from_be_bytes([q[20], q[21]]), 53);
        assert_eq!(u16::from_be_bytes([q[22], q[23]]), 40000);
        assert_eq!(&q[28..30], &[0x12, 0x34], "same id");
        assert_eq!(q[30] & 0x80, 0x80, "a response");
        assert_eq!(q[31] & 0x0f, 2, "SERVFAIL");
        assert!(checksums_ok(&q));
    }

    #[test]
    fn other_traffic_is_not_touched() {
        let mut d = DnsProxy::new(PROXY, Some(UPSTREAM));
        let mut q = query(GUEST, UPSTREAM, 40000, 53);
        let orig = q.clone();
        assert_eq!(d.outbound(Instant::ZERO, 0, &mut q), DnsOutbound::NotForUs);
        let mut r = query(GUEST, PROXY, 40000, 5353);
        assert_eq!(d.outbound(Instant::ZERO, 0, &mut r), DnsOutbound::NotForUs);
        assert_eq!(q, orig);
        for cut in 0..orig.len() {
            let mut t = query(GUEST, PROXY, 40000, 53);
            t.truncate(cut);
            let _ = d.outbound(Instant::ZERO, 0, &mut t);
        }
    }

    #[test]
    fn pending_table_is_bounded() {
        let mut d = DnsProxy::new(PROXY, Some(UPSTREAM));
        for i in 0..MAX_PENDING as u16 {
            let mut q = query(GUEST, PROXY, 1000 + i, 53);
            assert_eq!(d.outbound(Instant::ZERO, 0, &mut q), DnsOutbound::Forward);
        }
        let mut q = query(GUEST, PROXY, 9, 53);
        assert_eq!(d.outbound(Instant::ZERO, 0, &mut q), DnsOutbound::Drop);
        // After the timeout the table has room again.
        let mut q = query(GUEST, PROXY, 9, 53);
        assert_eq!(
            d.outbound(Instant::from_secs(11), 0, &mut q),
            DnsOutbound::Forward
        );
    }
}
