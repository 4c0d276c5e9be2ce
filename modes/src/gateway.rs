//! Gateway services: the dataplane's own addresses, answered off the data path.
//!
//! A mode owns a few service addresses (Host-only's DHCP server 192.168.56.100, NAT's
//! 10.0.2.2 gateway and 10.0.2.3 DNS...). Each gets a locally administered MAC. For every
//! frame the mode first asks [`Gateway::intercept`]: a cheap check (EtherType ARP, or IPv4
//! to one of our addresses or to the broadcast DHCP port) detours the few frames meant for
//! the services; everything else returns `None` and goes on down the data path.
//!
//! Services, all answered by rewriting the request frame in place into the reply (no
//! allocation, no copy to another frame):
//! - ARP: requests for a service address get a reply from its MAC;
//! - ICMP echo: requests to a service address get an echo reply;
//! - DHCP: BOOTP requests to UDP port 67 go to the [`DhcpServer`] stage, whose reply is
//!   wrapped in Ethernet/IPv4/UDP and sent back out of the ingress port.
//!
//! On start (first [`Gateway::poll`]) a gratuitous ARP announces every service address.
//!
//! With several workers, each has its own gateway, but they share one DHCP server behind
//! a mutex ([`SharedDhcp`]): DHCP is a slow path (a few frames per client per lease), so
//! the lock is never taken for data traffic, and one lease table stays the only truth.
//! The lease file is written by the control thread (`vnet-bench run` flushes it every
//! second when leases changed), never by a worker.
//!
//! Invariants: a frame the gateway does not answer is left untouched; a reply never leaves
//! on a port other than the request's ingress (except gratuitous ARP, which floods to the
//! member ports); the scratch buffer is the only memory the services use per packet.

use crate::dhcp::{DhcpServer, LeaseState, ReplyDest};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use vnet_core::counters::DropReason;
use vnet_core::frame::{FramePool, Pkt};
use vnet_core::pipeline::{Emitter, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::{
    checksum, ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame,
    IpProtocol, Ipv4Packet, UdpPacket, ETHERNET_HEADER_LEN, IPV4_HEADER_LEN, UDP_HEADER_LEN,
};

/// Most service addresses one gateway answers for.
pub const MAX_SERVICE_ADDRS: usize = 4;

/// UDP port of a DHCP server.
pub const DHCP_SERVER_PORT: u16 = 67;
/// UDP port of a DHCP client.
pub const DHCP_CLIENT_PORT: u16 = 68;

/// The MAC a service address answers from: `02:76:6e:` + the last three address bytes
/// (locally administered, stable across runs).
pub fn service_mac(ip: Ipv4Addr) -> EthernetAddress {
    let o = ip.octets();
    EthernetAddress([0x02, 0x76, 0x6e, o[1], o[2], o[3]])
}

/// A DHCP server shared by the gateways of every worker.
pub type SharedDhcp = Arc<Mutex<DhcpServer>>;

/// What the services did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// ARP replies sent.
    pub arp_replies: u64,
    /// ICMP echo replies sent.
    pub echo_replies: u64,
    /// DHCP replies sent.
    pub dhcp_replies: u64,
    /// DHCP requests that got no reply (ignored by the server, or malformed).
    pub dhcp_silent: u64,
    /// Gratuitous ARPs sent.
    pub garps: u64,
    /// DHCP replies for a relay agent, dropped (no relays on a VirtualBox segment).
    pub dhcp_relay_dropped: u64,
}

/// The service stage.
#[derive(Debug)]
pub struct Gateway {
    addrs: [(Ipv4Addr, EthernetAddress); MAX_SERVICE_ADDRS],
    n_addrs: usize,
    /// The DHCP server and the index of the address it answers from.
    dhcp: Option<(usize, SharedDhcp)>,
    /// Where gratuitous ARPs go.
    announce_to: PortMask,
    announced: bool,
    scratch: Box<[u8; 1600]>,
    stats: GatewayStats,
}

impl Gateway {
    /// Services for `addrs`; gratuitous ARPs go to `announce_to`.
    ///
    /// # Panics
    /// With more than [`MAX_SERVICE_ADDRS`] addresses.
    pub fn new(addrs: &[Ipv4Addr], announce_to: PortMask) -> Self {
        assert!(
            addrs.len() <= MAX_SERVICE_ADDRS,
            "too many service addresses"
        );
        let mut table = [(Ipv4Addr::UNSPECIFIED, EthernetAddress::UNSPECIFIED); MAX_SERVICE_ADDRS];
        for (slot, ip) in table.iter_mut().zip(addrs) {
            *slot = (*ip, service_mac(*ip));
        }
        Self {
            addrs: table,
            n_addrs: addrs.len(),
            dhcp: None,
            announce_to,
            announced: false,
            scratch: Box::new([0; 1600]),
            stats: GatewayStats::default(),
        }
    }

    /// Serve DHCP from the service address `server_ip` (which must be one of ours).
    ///
    /// # Panics
    /// When `server_ip` is not a service address.
    pub fn with_dhcp(mut self, server: SharedDhcp, server_ip: Ipv4Addr) -> Self {
        let idx = self
            .find(server_ip)
            .expect("the DHCP server address must be a service address");
        self.dhcp = Some((idx, server));
        self
    }

    /// Statistics.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// The DHCP server, if any.
    pub fn dhcp(&self) -> Option<&SharedDhcp> {
        self.dhcp.as_ref().map(|(_, s)| s)
    }

    /// Do not send gratuitous ARPs (all workers but one).
    pub fn without_announcements(mut self) -> Self {
        self.announced = true;
        self
    }

    /// The service addresses and their MACs.
    pub fn addrs(&self) -> &[(Ipv4Addr, EthernetAddress)] {
        &self.addrs[..self.n_addrs]
    }

    #[inline]
    fn find(&self, ip: Ipv4Addr) -> Option<usize> {
        self.addrs[..self.n_addrs]
            .iter()
            .position(|(a, _)| *a == ip)
    }

    /// Whether an ARP frame from a guest claims an address that is not the sender's: one
    /// of the services' own, or one the DHCP server holds for a client with another
    /// hardware address. Other frames, probes, and addresses nobody holds: `false`.
    pub fn is_spoofed_arp(&self, frame: &[u8]) -> bool {
        let Some((sha, spa)) = crate::guard::arp_sender(frame) else {
            return false;
        };
        if self.find(spa).is_some() {
            return true;
        }
        let Some((_, server)) = self.dhcp.as_ref() else {
            return false;
        };
        let server = server.lock().unwrap_or_else(|e| e.into_inner());
        server.leases().lease(spa).is_some_and(|l| {
            matches!(l.state, LeaseState::Offered | LeaseState::Bound)
                && l.client
                    .and_then(|c| c.hardware_addr())
                    .is_some_and(|holder| holder != sha)
        })
    }

    /// Whether `ip` is one of the services' own addresses.
    pub fn is_service(&self, ip: Ipv4Addr) -> bool {
        self.find(ip).is_some()
    }

    /// Answer `pkt` if it is for a service. `None`: not ours, the frame is untouched.
    #[inline]
    pub fn intercept(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkt: &mut Pkt,
    ) -> Option<Verdict> {
        let bytes = pool.bytes(pkt);
        if bytes.len() < ETHERNET_HEADER_LEN {
            return None;
        }
        // Cheap check first: EtherType at 12..14 (untagged frames only).
        match u16::from_be_bytes([bytes[12], bytes[13]]) {
            0x0806 => self.arp(pool, pkt),
            0x0800 => self.ipv4(now, pool, pkt),
            _ => None,
        }
    }

    fn arp(&mut self, pool: &mut FramePool, pkt: &mut Pkt) -> Option<Verdict> {
        let frame = pool.bytes_mut(pkt);
        let (mut eth, repr) = {
            let eth = EthernetFrame::new_checked(&mut frame[..]).ok()?;
            let arp = ArpPacket::new_checked(eth.payload()).ok()?;
            let repr = ArpRepr::parse(&arp).ok()?;
            (eth, repr)
        };
        if repr.operation != ArpOperation::Request {
            return None;
        }
        let idx = self.find(repr.target_protocol_addr)?;
        // A probe (sender 0.0.0.0, RFC 5227) for our address is answered too: it tells
        // the prober the address is taken.
        let mac = self.addrs[idx].1;
        let reply = repr.reply(mac);
        eth.set_dst_addr(repr.source_hardware_addr);
        eth.set_src_addr(mac);
        let mut arp = ArpPacket::new_unchecked(eth.payload_mut());
        reply.emit(&mut arp);
        self.stats.arp_replies += 1;
        Some(Verdict::Tx(PortMask::one(pkt.port)))
    }

    fn ipv4(&mut self, now: Instant, pool: &mut FramePool, pkt: &mut Pkt) -> Option<Verdict> {
        let (dst, proto, dst_port) = {
            let bytes = pool.bytes(pkt);
            let ip = Ipv4Packet::new_checked(&bytes[ETHERNET_HEADER_LEN..]).ok()?;
            let dst = ip.dst_addr();
            let proto = ip.next_header();
            let dst_port = if proto == IpProtocol::Udp && ip.payload().len() >= 4 {
                u16::from_be_bytes([ip.payload()[2], ip.payload()[3]])
            } else {
                0
            };
            (dst, proto, dst_port)
        };
        if proto == IpProtocol::Udp && dst_port == DHCP_SERVER_PORT && self.dhcp.is_some() {
            let to_us = dst == Ipv4Addr::BROADCAST
                || Some(dst) == self.dhcp.as_ref().map(|(i, _)| self.addrs[*i].0);
            if to_us {
                return Some(self.dhcp_request(now, pool, pkt));
            }
        }
        let idx = self.find(dst)?;
        if proto == IpProtocol::Icmp {
            return Some(self.echo(pool, pkt, idx));
        }
        Some(Verdict::Drop(DropReason::Unhandled))
    }

    fn echo(&mut self, pool: &mut FramePool, pkt: &mut Pkt, idx: usize) -> Verdict {
        let frame = pool.bytes_mut(pkt);
        let Ok(mut eth) = EthernetFrame::new_checked(&mut frame[..]) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let src_mac = eth.src_addr();
        let Ok(mut ip) = Ipv4Packet::new_checked(eth.payload_mut()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if !ip.verify_checksum() || ip.is_fragment() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let payload = ip.payload_mut();
        // Echo request: type 8, code 0; anything else to us is not answered.
        if payload.len() < 8 || payload[0] != 8 || payload[1] != 0 {
            return Verdict::Drop(DropReason::Unhandled);
        }
        if checksum::data(payload) != 0 {
            return Verdict::Drop(DropReason::Malformed);
        }
        payload[0] = 0;
        let old = u16::from_be_bytes([payload[2], payload[3]]);
        let new = checksum::update16(old, 0x0800, 0x0000);
        payload[2..4].copy_from_slice(&new.to_be_bytes());
        let src = ip.src_addr();
        ip.set_src_addr(self.addrs[idx].0);
        ip.set_dst_addr(src);
        ip.set_hop_limit(64);
        ip.fill_checksum();
        eth.set_dst_addr(src_mac);
        eth.set_src_addr(self.addrs[idx].1);
        self.stats.echo_replies += 1;
        Verdict::Tx(PortMask::one(pkt.port))
    }

    fn dhcp_request(&mut self, now: Instant, pool: &mut FramePool, pkt: &mut Pkt) -> Verdict {
        let Some((idx, server)) = self.dhcp.as_ref() else {
            return Verdict::Drop(DropReason::Unhandled);
        };
        let (server_ip, server_mac) = self.addrs[*idx];
        let server = server.clone();
        let payload_at = {
            let bytes = pool.bytes(pkt);
            let Ok(ip) = Ipv4Packet::new_checked(&bytes[ETHERNET_HEADER_LEN..]) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            if !ip.verify_checksum() || ip.is_fragment() {
                return Verdict::Drop(DropReason::Malformed);
            }
            let Ok(udp) = UdpPacket::new_checked(ip.payload()) else {
                return Verdict::Drop(DropReason::Malformed);
            };
            if !udp.verify_checksum(ip.src_addr(), ip.dst_addr()) {
                return Verdict::Drop(DropReason::Malformed);
            }
            ETHERNET_HEADER_LEN + ip.header_len() + UDP_HEADER_LEN
        };
        let request = &pool.bytes(pkt)[payload_at..];
        // A poisoned lock means another worker panicked mid-request; the table is still
        // consistent enough to keep serving.
        let mut server = server.lock().unwrap_or_else(|e| e.into_inner());
        let (len, dest) =
            match server.handle_bytes_from(pkt.port, now, request, &mut self.scratch[..]) {
                Ok(Some(reply)) => reply,
                Ok(None) | Err(_) => {
                    self.stats.dhcp_silent += 1;
                    return Verdict::Tx(PortMask::EMPTY);
                }
            };
        let (dst_ip, dst_mac) = match dest {
            ReplyDest::Broadcast => (Ipv4Addr::BROADCAST, EthernetAddress::BROADCAST),
            ReplyDest::Unicast { ip, mac } => (ip, EthernetAddress(mac.0)),
            // No relay agents on a VirtualBox segment (the server ignores relays from
            // other subnets); a same-subnet relay is not supported: count and drop.
            ReplyDest::Relay { .. } => {
                self.stats.dhcp_relay_dropped += 1;
                return Verdict::Tx(PortMask::EMPTY);
            }
        };
        let total = ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN + len;
        let frame = pool.frame_mut(pkt.frame);
        if total > frame.len() {
            return Verdict::Drop(DropReason::TooBig);
        }
        frame[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN..total]
            .copy_from_slice(&self.scratch[..len]);
        write_udp_headers(
            &mut frame[..total],
            (server_mac, dst_mac),
            (server_ip, dst_ip),
            (DHCP_SERVER_PORT, DHCP_CLIENT_PORT),
        );
        pkt.len = total as u16;
        self.stats.dhcp_replies += 1;
        Verdict::Tx(PortMask::one(pkt.port))
    }

    /// Timers: the DHCP server's expiry, and the gratuitous ARPs on start.
    pub fn poll(&mut self, now: Instant, pool: &mut FramePool, out: &mut Emitter) {
        if let Some((_, server)) = self.dhcp.as_ref() {
            server.lock().unwrap_or_else(|e| e.into_inner()).poll(now);
        }
        if self.announced || self.announce_to.is_empty() {
            return;
        }
        self.announced = true;
        for i in 0..self.n_addrs {
            let (ip, mac) = self.addrs[i];
            let Some(frame) = pool.alloc() else { return };
            let buf = pool.frame_mut(frame);
            let len = write_garp(buf, ip, mac);
            let pkt = Pkt {
                frame,
                len: len as u16,
                port: 0,
            };
            match out.push(pkt, self.announce_to) {
                Ok(()) => self.stats.garps += 1,
                Err(p) => pool.free(p.frame),
            }
        }
    }
}

/// Write a gratuitous ARP request (sender = target = `ip`) from `mac` to broadcast into
/// `buf`; returns the frame length (60 bytes: padded to the Ethernet minimum).
pub fn write_garp(buf: &mut [u8], ip: Ipv4Addr, mac: EthernetAddress) -> usize {
    let len = 60;
    buf[..len].fill(0);
    buf[..6].copy_from_slice(&[0xff; 6]);
    buf[6..12].copy_from_slice(&mac.0);
    buf[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
    let mut arp = ArpPacket::new_unchecked(&mut buf[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + 28]);
    ArpRepr {
        operation: ArpOperation::Request,
        source_hardware_addr: mac,
        source_protocol_addr: ip,
        target_hardware_addr: EthernetAddress::UNSPECIFIED,
        target_protocol_addr: ip,
    }
    .emit(&mut arp);
    len
}

/// Write Ethernet, IPv4 and UDP headers in front of a UDP payload already in
/// `frame[42..]` (the whole slice is the frame), with both checksums.
pub fn write_udp_headers(
    frame: &mut [u8],
    (src_mac, dst_mac): (EthernetAddress, EthernetAddress),
    (src_ip, dst_ip): (Ipv4Addr, Ipv4Addr),
    (src_port, dst_port): (u16, u16),
) {
    let udp_len = frame.len() - ETHERNET_HEADER_LEN - IPV4_HEADER_LEN;
    frame[..6].copy_from_slice(&dst_mac.0);
    frame[6..12].copy_from_slice(&src_mac.0);
    frame[12..14].copy_from_slice(&u16::from(EtherType::Ipv4).to_be_bytes());
    {
        let ip_bytes = &mut frame[ETHERNET_HEADER_LEN..];
        let mut ip = Ipv4Packet::new_unchecked(&mut ip_bytes[..]);
        ip.set_version(4);
        ip.set_header_len(IPV4_HEADER_LEN);
        ip.set_dscp(0);
        ip.set_ecn(0);
        ip.set_total_len((IPV4_HEADER_LEN + udp_len) as u16);
        ip.set_ident(0);
        ip.set_dont_frag(false);
        ip.set_more_frags(false);
        ip.set_frag_offset(0);
        ip.set_hop_limit(64);
        ip.set_next_header(IpProtocol::Udp);
        ip.set_src_addr(src_ip);
        ip.set_dst_addr(dst_ip);
        ip.fill_checksum();
    }
    let udp_bytes = &mut frame[ETHERNET_HEADER_LEN + IPV4_HEADER_LEN..];
    udp_bytes[0..2].copy_from_slice(&src_port.to_be_bytes());
    udp_bytes[2..4].copy_from_slice(&dst_port.to_be_bytes());
    udp_bytes[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp_bytes[6..8].copy_from_slice(&[0, 0]);
    let mut udp = UdpPacket::new_unchecked(&mut udp_bytes[..]);
    udp.fill_checksum(src_ip, dst_ip);
}
