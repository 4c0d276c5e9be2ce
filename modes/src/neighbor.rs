//! Next-hop resolution on a routed port: the dataplane's own address on the link, the
//! next hop's MAC found by ARP and kept fresh.
//!
//! The NAT modes own an address on the uplink (`--external-ip`) and send everything to
//! one next hop (`--gateway`). This stage answers ARP for the own address, learns the
//! next hop's MAC from any ARP it sends (request or reply, so a changed MAC is picked up
//! at once), asks for it at start and again every [`REFRESH`] (and every
//! [`RETRY`] while unknown), and forgets it after [`STALE`] without news.
//!
//! Invariants: answers only ARP requests whose target is the own address; the learned
//! MAC is only ever the sender of an ARP packet whose sender address is the next hop;
//! requests originate from [`NextHop::poll`] only (timers), never per packet.

use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress, ETHERNET_HEADER_LEN};

/// Re-resolve a known next hop this often.
pub const REFRESH: Duration = Duration::from_secs(30);
/// Ask again this often while the next hop is unknown.
pub const RETRY: Duration = Duration::from_secs(1);
/// Forget a next hop not heard from for this long.
pub const STALE: Duration = Duration::from_secs(120);

/// The own address on a link and the next hop beyond it.
#[derive(Debug)]
pub struct NextHop {
    port: PortId,
    own_ip: Ipv4Addr,
    own_mac: EthernetAddress,
    next_hop: Ipv4Addr,
    next_hop_mac: Option<EthernetAddress>,
    heard: Instant,
    next_ask: Instant,
    /// ARP requests sent.
    pub requests_sent: u64,
    /// Times the next hop's MAC changed.
    pub mac_changes: u64,
}

impl NextHop {
    /// Own `own_ip`/`own_mac` on `port`, resolving `next_hop`.
    pub fn new(
        port: PortId,
        own_ip: Ipv4Addr,
        own_mac: EthernetAddress,
        next_hop: Ipv4Addr,
    ) -> Self {
        Self {
            port,
            own_ip,
            own_mac,
            next_hop,
            next_hop_mac: None,
            heard: Instant::ZERO,
            next_ask: Instant::ZERO,
            requests_sent: 0,
            mac_changes: 0,
        }
    }

    /// The own address.
    pub fn own_ip(&self) -> Ipv4Addr {
        self.own_ip
    }

    /// The own MAC.
    pub fn own_mac(&self) -> EthernetAddress {
        self.own_mac
    }

    /// The next hop's address.
    pub fn next_hop(&self) -> Ipv4Addr {
        self.next_hop
    }

    /// The next hop's MAC, if resolved and fresh.
    #[inline]
    pub fn next_hop_mac(&self, now: Instant) -> Option<EthernetAddress> {
        self.next_hop_mac
            .filter(|_| now.saturating_since(self.heard) <= STALE)
    }

    /// Handle an ARP frame received on the link: learn the next hop, answer requests
    /// for the own address (rewriting the frame in place). `None`: not an ARP frame.
    pub fn on_arp(&mut self, now: Instant, pool: &mut FramePool, pkt: &Pkt) -> Option<Verdict> {
        let frame = pool.bytes_mut(pkt);
        if frame.len() < ETHERNET_HEADER_LEN + 28 || frame[12..14] != [0x08, 0x06] {
            return None;
        }
        let Ok(repr) =
            ArpPacket::new_checked(&frame[ETHERNET_HEADER_LEN..]).and_then(|p| ArpRepr::parse(&p))
        else {
            return Some(Verdict::Drop(vnet_core::counters::DropReason::Malformed));
        };
        if repr.source_protocol_addr == self.next_hop && repr.source_hardware_addr.is_unicast() {
            if self
                .next_hop_mac
                .is_some_and(|m| m != repr.source_hardware_addr)
            {
                self.mac_changes += 1;
            }
            self.next_hop_mac = Some(repr.source_hardware_addr);
            self.heard = now;
        }
        if repr.operation == ArpOperation::Request && repr.target_protocol_addr == self.own_ip {
            let reply = repr.reply(self.own_mac);
            frame[..6].copy_from_slice(&repr.source_hardware_addr.0);
            frame[6..12].copy_from_slice(&self.own_mac.0);
            let mut arp =
                ArpPacket::new_unchecked(&mut frame[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + 28]);
            reply.emit(&mut arp);
            return Some(Verdict::Tx(PortMask::one(self.port)));
        }
        // Other ARP on the link is not for us.
        Some(Verdict::Tx(PortMask::EMPTY))
    }

    /// When the next resolution is due.
    pub fn poll_at(&self) -> Instant {
        self.next_ask
    }

    /// Ask for the next hop when due (a gratuitous announcement of the own address goes
    /// with the first request).
    pub fn poll(&mut self, now: Instant, pool: &mut FramePool, out: &mut Emitter) {
        if now < self.next_ask || out.remaining() < 2 {
            return;
        }
        if self.requests_sent == 0 {
            self.emit(pool, out, self.own_ip);
        }
        self.emit(pool, out, self.next_hop);
        self.requests_sent += 1;
        let fresh = self.next_hop_mac(now).is_some();
        self.next_ask = now + if fresh { REFRESH } else { RETRY };
    }

    fn emit(&mut self, pool: &mut FramePool, out: &mut Emitter, target: Ipv4Addr) {
        let Some(frame) = pool.alloc() else { return };
        let buf = pool.frame_mut(frame);
        buf[..60].fill(0);
        buf[..6].copy_from_slice(&[0xff; 6]);
        buf[6..12].copy_from_slice(&self.own_mac.0);
        buf[12..14].copy_from_slice(&[0x08, 0x06]);
        let mut arp =
            ArpPacket::new_unchecked(&mut buf[ETHERNET_HEADER_LEN..ETHERNET_HEADER_LEN + 28]);
        ArpRepr {
            operation: ArpOperation::Request,
            source_hardware_addr: self.own_mac,
            source_protocol_addr: self.own_ip,
            target_hardware_addr: EthernetAddress::UNSPECIFIED,
            target_protocol_addr: target,
        }
        .emit(&mut arp);
        let pkt = Pkt {
            frame,
            len: 60,
            port: self.port,
        };
        if let Err(p) = out.push(pkt, PortMask::one(self.port)) {
            pool.free(p.frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const ME: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
    const MY_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

    fn arp(op: u8, sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&sha);
        f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, op]);
        f.extend_from_slice(&sha);
        f.extend_from_slice(&spa.octets());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&tpa.octets());
        f.resize(60, 0);
        f
    }

    #[test]
    fn resolves_answers_and_follows_a_changed_mac() {
        let mut n = NextHop::new(3, ME, MY_MAC, GW);
        let mut pool = FramePool::with_heap(16, 2048, 0);
        let mut out = Emitter::new();
        n.poll(Instant::ZERO, &mut pool, &mut out);
        assert_eq!(out.items().len(), 2, "announce + who-has");
        let (ask, mask) = out.items()[1];
        assert_eq!(mask, PortMask::one(3));
        assert_eq!(&pool.bytes(&ask)[38..42], &GW.octets());
        for (p, _) in out.items() {
            pool.free(p.frame);
        }
        assert_eq!(n.next_hop_mac(Instant::ZERO), None);

        // The gateway's reply teaches its MAC.
        let reply = pool
            .alloc_copy(&arp(2, [0x0a, 9, 9, 9, 9, 1], GW, ME), 3)
            .unwrap();
        assert_eq!(
            n.on_arp(Instant::from_secs(1), &mut pool, &reply),
            Some(Verdict::Tx(PortMask::EMPTY))
        );
        pool.free(reply.frame);
        assert_eq!(
            n.next_hop_mac(Instant::from_secs(1)),
            Some(EthernetAddress([0x0a, 9, 9, 9, 9, 1]))
        );

        // Its request for our address is answered in place and teaches a new MAC.
        let req = pool
            .alloc_copy(&arp(1, [0x0a, 9, 9, 9, 9, 2], GW, ME), 3)
            .unwrap();
        assert_eq!(
            n.on_arp(Instant::from_secs(2), &mut pool, &req),
            Some(Verdict::Tx(PortMask::one(3)))
        );
        let b = pool.bytes(&req);
        assert_eq!(&b[0..6], &[0x0a, 9, 9, 9, 9, 2]);
        assert_eq!(&b[20..22], &[0, 2]);
        assert_eq!(&b[22..28], &MY_MAC.0);
        assert_eq!(&b[28..32], &ME.octets());
        pool.free(req.frame);
        assert_eq!(n.mac_changes, 1);
        assert_eq!(
            n.next_hop_mac(Instant::from_secs(2)),
            Some(EthernetAddress([0x0a, 9, 9, 9, 9, 2]))
        );
        // Stale after silence.
        assert_eq!(
            n.next_hop_mac(Instant::from_secs(2) + STALE + Duration::from_secs(1)),
            None
        );
    }

    #[test]
    fn other_hosts_arp_teaches_nothing() {
        let mut n = NextHop::new(0, ME, MY_MAC, GW);
        let mut pool = FramePool::with_heap(4, 2048, 0);
        let f = pool
            .alloc_copy(
                &arp(
                    1,
                    [7; 6],
                    Ipv4Addr::new(198, 18, 0, 9),
                    Ipv4Addr::new(198, 18, 0, 10),
                ),
                0,
            )
            .unwrap();
        assert_eq!(
            n.on_arp(Instant::ZERO, &mut pool, &f),
            Some(Verdict::Tx(PortMask::EMPTY))
        );
        assert_eq!(n.next_hop_mac(Instant::ZERO), None);
    }
}
