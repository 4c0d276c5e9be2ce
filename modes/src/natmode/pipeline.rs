//! The NAT / NAT Network pipeline of one worker (see the module above for the paths).

use super::rewrite::{self, Field};
use super::shared::MacSlots;
use super::{GuestAddrs, NatFlavor, NatModeError, NatSpec};
use crate::dns_proxy::{DnsOutbound, DnsProxy};
use crate::gateway::{service_mac, Gateway};
use crate::guard::PortGuard;
use crate::layout::{PortLayout, PortRole};
use crate::nat::{
    write_admin_prohibited, ForwardRule, Inbound, Napt, NaptConfig, NatDrop, Outbound,
};
use crate::neighbor::NextHop;
use crate::switch::{is_group, L2Switch, Learn};
use std::net::Ipv4Addr;
use vnet_core::counters::DropReason;
use vnet_core::fastpath::{FastPathQueue, NatKey, Offer, Revoke, Seen};
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, PortMask, Verdict};
use vnet_core::time::Instant;
use vnet_core::wire::{EthernetAddress, ETHERNET_HEADER_LEN};

const ETH: usize = ETHERNET_HEADER_LEN;

/// A change of port-forward rules, sent by the control thread to every worker.
#[derive(Debug, Clone)]
pub enum ControlMsg {
    /// Add a rule.
    Add(ForwardRule),
    /// Remove the rule with this name.
    Remove(Box<str>),
}

/// Which link a NAPT translates onto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Link {
    Uplink,
    Host,
}

/// One worker's NAT or NAT Network pipeline.
#[derive(Debug)]
pub struct NatMode {
    flavor: NatFlavor,
    layout: PortLayout,
    addrs: GuestAddrs,
    worker: u8,
    /// Guest-side services, per realm (NAT) or one (NAT Network).
    gateways: Vec<Gateway>,
    dns: DnsProxy,
    napt: Napt,
    host_napt: Option<Napt>,
    uplink: NextHop,
    host: Option<NextHop>,
    host_ip: Option<Ipv4Addr>,
    /// NAT Network's segment switch.
    switch: Option<L2Switch>,
    guest_macs: MacSlots,
    next_hops: MacSlots,
    router_mac: EthernetAddress,
    control: crossbeam::channel::Receiver<ControlMsg>,
    /// Whether this worker serves the uplink / host port (and so resolves their next hop).
    owns_uplink: bool,
    owns_host: bool,
    guard: PortGuard,
    scratch: Box<[u8; 128]>,
    /// Offers to the fast path (`vnet_core::fastpath`) and what revokes them.
    fastpath: FastPathQueue,
    /// The tag of the packet being decided, set by the paths that may be offered.
    offer_tag: Option<u64>,
    /// `guest_macs` and `next_hops` versions the installed entries were written with.
    macs_seen: (u64, u64),
}

impl NatMode {
    pub(super) fn new(
        spec: &NatSpec,
        worker: usize,
        workers: usize,
        now: Instant,
    ) -> Result<Self, NatModeError> {
        let c = &spec.config;
        let layout = c.layout();
        let addrs = c.guest_addrs();
        let uplink_port = layout.uplink().expect("NAT has an uplink");
        let owner = |p: PortId| p as usize % workers == worker;
        let gateways = spec
            .dhcp
            .iter()
            .enumerate()
            .map(|(realm, server)| {
                let announce = match c.flavor {
                    NatFlavor::PerVm => PortMask::one(realm as PortId),
                    NatFlavor::Network => layout.vm_mask(),
                };
                let gw =
                    Gateway::new(&addrs.services, announce).with_dhcp(server.clone(), addrs.dhcp);
                let announcer = match c.flavor {
                    NatFlavor::PerVm => owner(realm as PortId),
                    NatFlavor::Network => worker == 0,
                };
                if announcer {
                    gw
                } else {
                    gw.without_announcements()
                }
            })
            .collect();
        let napt_cfg = |external_ip| NaptConfig {
            external_ip,
            worker,
            workers,
            ..c.napt.clone()
        };
        let mut napt = Napt::new(napt_cfg(c.external_ip), now)?;
        let mut host_napt = match c.host {
            Some(h) => Some(Napt::new(napt_cfg(h.own_ip), now)?),
            None => None,
        };
        for rule in &c.forwards {
            napt.add_forward(rule.clone())?;
            if let Some(h) = host_napt.as_mut() {
                h.add_forward(rule.clone())?;
            }
        }
        let host = match (c.host, layout.host()) {
            (Some(h), Some(port)) => Some(NextHop::new(
                port,
                h.own_ip,
                service_mac(h.own_ip),
                h.host_ip,
            )),
            _ => None,
        };
        Ok(Self {
            flavor: c.flavor,
            layout,
            worker: worker as u8,
            gateways,
            dns: DnsProxy::new(addrs.dns, c.dns),
            napt,
            host_napt,
            uplink: NextHop::new(
                uplink_port,
                c.external_ip,
                service_mac(c.external_ip),
                c.gateway,
            ),
            host,
            host_ip: c.host.map(|h| h.host_ip),
            switch: (c.flavor == NatFlavor::Network)
                .then(|| L2Switch::new(layout.vm_mask(), c.switch)),
            guest_macs: spec.guest_macs.clone(),
            next_hops: spec.next_hops.clone(),
            router_mac: service_mac(addrs.router),
            control: spec.receivers[worker].clone(),
            owns_uplink: owner(uplink_port),
            owns_host: layout.host().is_some_and(owner),
            guard: PortGuard::new(c.guard),
            addrs,
            scratch: Box::new([0; 128]),
            fastpath: FastPathQueue::new(),
            offer_tag: None,
            macs_seen: (0, 0),
        })
    }

    /// The NAPT of the uplink (read-only).
    pub fn napt(&self) -> &Napt {
        &self.napt
    }

    /// The NAPT of the host link, if any.
    pub fn host_napt(&self) -> Option<&Napt> {
        self.host_napt.as_ref()
    }

    /// NAT Network's segment switch (read-only); `None` in NAT.
    pub fn switch(&self) -> Option<&L2Switch> {
        self.switch.as_ref()
    }

    /// The guard of the VM ports (read-only).
    pub fn guard(&self) -> &PortGuard {
        &self.guard
    }

    /// The DNS proxy (read-only).
    pub fn dns(&self) -> &DnsProxy {
        &self.dns
    }

    fn realm_of(&self, port: PortId) -> u16 {
        match self.flavor {
            NatFlavor::PerVm => port,
            NatFlavor::Network => 0,
        }
    }

    /// Prefetches the uplink NAPT's state for the IPv4 packets of a batch, guests'
    /// outbound and the uplink's inbound, so their cache misses overlap (a hint only: it
    /// changes no verdict; see `Napt::warm_outbound`).
    fn warm(&self, pool: &FramePool, pkts: &[Pkt]) {
        let ipv4 = |p: &Pkt| {
            let b = pool.bytes(p);
            (b.len() > ETH && b[12..14] == [0x08, 0x00]).then(|| &b[ETH..])
        };
        let role = |p: &Pkt| self.layout.role(p.port);
        self.napt
            .warm_outbound(pkts.iter().filter_map(|p| match role(p) {
                Some(PortRole::Vm(_)) => Some((self.realm_of(p.port), ipv4(p)?)),
                _ => None,
            }));
        self.napt
            .warm_inbound(pkts.iter().filter_map(|p| match role(p) {
                Some(PortRole::Uplink) => ipv4(p),
                _ => None,
            }));
    }

    fn handle(&mut self, now: Instant, pool: &mut FramePool, pkt: &mut Pkt) -> Verdict {
        if (pkt.len as usize) < ETH {
            return Verdict::Drop(DropReason::Malformed);
        }
        match self.layout.role(pkt.port) {
            Some(PortRole::Vm(_)) => self.on_guest_frame(now, pool, pkt),
            Some(PortRole::Uplink) => self.on_link_frame(now, pool, pkt, Link::Uplink),
            Some(PortRole::Host) => self.on_link_frame(now, pool, pkt, Link::Host),
            None => Verdict::Drop(DropReason::Policy),
        }
    }

    fn on_guest_frame(&mut self, now: Instant, pool: &mut FramePool, pkt: &mut Pkt) -> Verdict {
        let realm = self.realm_of(pkt.port);
        let gw_index = match self.flavor {
            NatFlavor::PerVm => pkt.port as usize,
            NatFlavor::Network => 0,
        };
        let bytes = pool.bytes(pkt);
        let mut dst_mac = [0u8; 6];
        dst_mac.copy_from_slice(&bytes[..6]);
        let src_mac =
            EthernetAddress([bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11]]);
        let ethertype = u16::from_be_bytes([bytes[12], bytes[13]]);
        let services = &self.addrs.services;
        if let Some(reason) = self
            .guard
            .police(now, pkt.port, bytes, |ip| services.contains(&ip))
        {
            return Verdict::Drop(reason);
        }
        if ethertype == 0x0806 && self.gateways[gw_index].is_spoofed_arp(bytes) {
            // Claims the gateway's, the DNS proxy's or another guest's address.
            return Verdict::Drop(DropReason::Spoofed);
        }
        if ethertype == 0x0800 && bytes.len() >= ETH + 20 && src_mac.is_unicast() {
            let src_ip = [
                bytes[ETH + 12],
                bytes[ETH + 13],
                bytes[ETH + 14],
                bytes[ETH + 15],
            ];
            if self.may_claim(Ipv4Addr::from(src_ip)) {
                self.learn_guest(realm, src_ip, src_mac);
            }
        } else if ethertype == 0x0806 && bytes.len() >= ETH + 28 && src_mac.is_unicast() {
            // ARP sender (probes and announcements after DHCP included).
            let spa = [
                bytes[ETH + 14],
                bytes[ETH + 15],
                bytes[ETH + 16],
                bytes[ETH + 17],
            ];
            self.learn_guest(realm, spa, src_mac);
        }
        let verdict = self.guest_verdict(now, pool, pkt, realm, gw_index, dst_mac, ethertype);
        if let Verdict::Tx(_) = verdict {
            self.learn_from_dhcp_reply(realm, pool.bytes(pkt));
        }
        verdict
    }

    /// A DHCP reply the services wrote tells which guest MAC holds the address it leased,
    /// before that guest sends anything of its own (a port forward may reach it first).
    fn learn_from_dhcp_reply(&mut self, realm: u16, frame: &[u8]) {
        const UDP: usize = ETH + 20;
        const BOOTP: usize = UDP + 8;
        if frame.len() < BOOTP + 34
            || frame[12..14] != [0x08, 0x00]
            || frame[ETH] != 0x45
            || frame[ETH + 9] != 17
            || frame[UDP..UDP + 2] != 67u16.to_be_bytes()
            || frame[BOOTP] != 2
        {
            return;
        }
        let yiaddr = [
            frame[BOOTP + 16],
            frame[BOOTP + 17],
            frame[BOOTP + 18],
            frame[BOOTP + 19],
        ];
        let c = &frame[BOOTP + 28..BOOTP + 34];
        let chaddr = EthernetAddress([c[0], c[1], c[2], c[3], c[4], c[5]]);
        if chaddr.is_unicast() {
            self.learn_guest(realm, yiaddr, chaddr);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn guest_verdict(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkt: &mut Pkt,
        realm: u16,
        gw_index: usize,
        dst_mac: [u8; 6],
        ethertype: u16,
    ) -> Verdict {
        if let Some(sw) = self.switch.as_mut() {
            // NAT Network: the segment first. Frames not for the router stay on it.
            if sw.learn(now, pool.bytes(pkt), pkt.port) == Some(Learn::Moved) {
                // Its flows, switched or translated to it, were written with its port.
                self.fastpath.revoke(Revoke::All);
            }
            let to_router = self
                .addrs
                .services
                .iter()
                .any(|ip| service_mac(*ip).0 == dst_mac);
            if !to_router {
                if is_group(&dst_mac) {
                    if let Some(v) = self.gateways[0].intercept(now, pool, pkt) {
                        return v;
                    }
                }
                let v = sw.route(now, pool.bytes(pkt), pkt.port);
                if self.fastpath.enabled() {
                    if let Some(offer) = L2Switch::offer(pool.bytes(pkt), pkt.port, v) {
                        self.fastpath.offer(offer);
                    }
                }
                return v;
            }
        }
        if ethertype == 0x0806 {
            // ARP for a service address is answered; other ARP has no one to reach in a
            // private NAT (and went to the segment above in NAT Network).
            return self.gateways[gw_index]
                .intercept(now, pool, pkt)
                .unwrap_or(Verdict::Tx(PortMask::EMPTY));
        }
        if ethertype != 0x0800 {
            return Verdict::Drop(DropReason::Policy);
        }
        // Everything below reads the IPv4 header: it must be there and consistent.
        if vnet_core::wire::Ipv4Packet::new_checked(&pool.bytes(pkt)[ETH..]).is_err() {
            return Verdict::Drop(DropReason::Malformed);
        }
        if !self.may_route_from(&pool.bytes(pkt)[ETH..]) {
            return Verdict::Drop(DropReason::Spoofed);
        }
        // DNS proxy.
        let ip = &mut pool.frame_mut(pkt.frame)[ETH..pkt.len as usize];
        match self.dns.outbound(now, realm, ip) {
            DnsOutbound::NotForUs => {}
            DnsOutbound::Forward => {
                // The proxy's per-query state decides: never offered.
                let v = self.route_out(now, pool, pkt, realm);
                self.offer_tag = None;
                return v;
            }
            DnsOutbound::ServFail => {
                swap_macs(pool.bytes_mut(pkt));
                return Verdict::Tx(PortMask::one(pkt.port));
            }
            DnsOutbound::Drop => return Verdict::Drop(DropReason::Malformed),
        }
        // Host loopback: TCP/UDP to 10.0.2.2 goes to the host.
        let ip = pool.bytes(pkt);
        let dst_ip = Ipv4Addr::new(ip[ETH + 16], ip[ETH + 17], ip[ETH + 18], ip[ETH + 19]);
        let proto = ip[ETH + 9];
        if dst_ip == self.addrs.host_loopback && (proto == 6 || proto == 17) {
            let Some(host_ip) = self.host_ip else {
                return Verdict::Drop(DropReason::NoRoute);
            };
            let ip = &mut pool.frame_mut(pkt.frame)[ETH..pkt.len as usize];
            rewrite::readdress(ip, Field::Destination, host_ip);
            return self.route_out(now, pool, pkt, realm);
        }
        if let Some(v) = self.gateways[gw_index].intercept(now, pool, pkt) {
            return v;
        }
        let ip = pool.bytes(pkt);
        let dst_ip = Ipv4Addr::new(ip[ETH + 16], ip[ETH + 17], ip[ETH + 18], ip[ETH + 19]);
        if in_guest_net(dst_ip) || dst_ip.is_broadcast() || dst_ip.is_multicast() {
            return Verdict::Drop(DropReason::Policy);
        }
        self.route_out(now, pool, pkt, realm)
    }

    /// A guest packet leaving through a NAPT: to the host link if addressed to the host,
    /// else to the uplink.
    fn route_out(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkt: &mut Pkt,
        realm: u16,
    ) -> Verdict {
        let len = pkt.len as usize;
        let frame = pool.frame_mut(pkt.frame);
        let ip = &mut frame[ETH..len];
        if !rewrite::decrement_ttl(ip) {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let dst_ip = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
        let link = if Some(dst_ip) == self.host_ip {
            Link::Host
        } else {
            Link::Uplink
        };
        let napt = match link {
            Link::Uplink => &mut self.napt,
            Link::Host => match self.host_napt.as_mut() {
                Some(n) => n,
                None => return Verdict::Drop(DropReason::NoRoute),
            },
        };
        match napt.outbound(now, realm, ip) {
            Outbound::Translated => {
                self.offer_tag = napt.last_session().map(|s| tag(link, s));
                let (port, own_mac, slot) = match link {
                    Link::Uplink => (self.uplink_port(), self.uplink.own_mac(), 0),
                    Link::Host => {
                        let h = self.host.as_ref().expect("host link");
                        (self.layout.host().expect("host port"), h.own_mac(), 1)
                    }
                };
                let Some(next) = self.next_hops.get(slot) else {
                    return Verdict::Drop(DropReason::NoRoute);
                };
                let frame = pool.bytes_mut(pkt);
                frame[..6].copy_from_slice(&next.0);
                frame[6..12].copy_from_slice(&own_mac.0);
                Verdict::Tx(PortMask::one(port))
            }
            Outbound::Hairpin { realm } => {
                if link == Link::Host {
                    let ip = &mut pool.frame_mut(pkt.frame)[ETH..len];
                    rewrite::readdress(ip, Field::Source, self.addrs.host_loopback);
                }
                self.deliver(now, pool, pkt, realm)
            }
            Outbound::Handoff { worker } => {
                // Continue as if it came in from that link, in the worker owning the port.
                pkt.port = match link {
                    Link::Uplink => self.uplink_port(),
                    Link::Host => self.layout.host().expect("host port"),
                };
                Verdict::HandOff(worker as u8)
            }
            Outbound::Drop(NatDrop::TableFull | NatDrop::PortsExhausted) => {
                self.admin_prohibited(pool, pkt)
            }
            Outbound::Drop(d) => Verdict::Drop(d.reason()),
        }
    }

    /// Answer a packet the NAPT had no room for with ICMP 3/13 (RFC 5508 REQ-8).
    fn admin_prohibited(&mut self, pool: &mut FramePool, pkt: &mut Pkt) -> Verdict {
        let len = pkt.len as usize;
        let quoted = (len - ETH).min(self.scratch.len());
        self.scratch[..quoted].copy_from_slice(&pool.bytes(pkt)[ETH..ETH + quoted]);
        let frame = pool.frame_mut(pkt.frame);
        match write_admin_prohibited(
            &mut frame[ETH..],
            self.addrs.router,
            &self.scratch[..quoted],
        ) {
            Ok(n) => {
                pkt.len = (ETH + n) as u16;
                swap_macs(pool.bytes_mut(pkt));
                let router = self.router_mac;
                pool.bytes_mut(pkt)[6..12].copy_from_slice(&router.0);
                Verdict::Tx(PortMask::one(pkt.port))
            }
            Err(_) => Verdict::Drop(DropReason::TableFull),
        }
    }

    fn uplink_port(&self) -> PortId {
        self.layout.uplink().expect("NAT has an uplink")
    }

    fn on_link_frame(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkt: &mut Pkt,
        link: Link,
    ) -> Verdict {
        let ethertype = {
            let b = pool.bytes(pkt);
            u16::from_be_bytes([b[12], b[13]])
        };
        let (hop, slot) = match link {
            Link::Uplink => (&mut self.uplink, 0),
            Link::Host => match self.host.as_mut() {
                Some(h) => (h, 1),
                None => return Verdict::Drop(DropReason::Policy),
            },
        };
        if ethertype == 0x0806 {
            let v = hop.on_arp(now, pool, pkt);
            if let Some(mac) = hop.next_hop_mac(now) {
                self.next_hops.set(slot, mac);
            }
            return v.unwrap_or(Verdict::Tx(PortMask::EMPTY));
        }
        if ethertype != 0x0800 {
            return Verdict::Tx(PortMask::EMPTY);
        }
        if vnet_core::wire::Ipv4Packet::new_checked(&pool.bytes(pkt)[ETH..]).is_err() {
            return Verdict::Drop(DropReason::Malformed);
        }
        let own_ip = hop.own_ip();
        let ip = &pool.bytes(pkt)[ETH..];
        if Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]) != own_ip {
            // Not for the dataplane (other hosts on the LAN): nothing to do.
            return Verdict::Tx(PortMask::EMPTY);
        }
        let napt = match link {
            Link::Uplink => &mut self.napt,
            Link::Host => self.host_napt.as_mut().expect("host napt"),
        };
        if let Some(owner) = napt.owner_of_packet(ip) {
            if owner != self.worker as usize {
                return Verdict::HandOff(owner as u8);
            }
        }
        let len = pkt.len as usize;
        let ip = &mut pool.frame_mut(pkt.frame)[ETH..len];
        match napt.inbound(now, ip) {
            Inbound::Translated { realm } => {
                let session = napt.last_session();
                if link == Link::Host {
                    rewrite::readdress(ip, Field::Source, self.addrs.host_loopback);
                } else {
                    self.dns.inbound(now, realm, ip);
                }
                // DNS answers pass the proxy's per-query state: never offered.
                let dns = ip.len() >= 22 && ip[9] == 17 && ip[20..22] == [0, 53];
                if !dns {
                    self.offer_tag = session.map(|s| tag(link, s));
                }
                self.deliver(now, pool, pkt, realm)
            }
            Inbound::Drop(d) => Verdict::Drop(d.reason()),
        }
    }

    /// Send a translated packet to its guest in `realm`.
    fn deliver(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkt: &mut Pkt,
        realm: u16,
    ) -> Verdict {
        let (port, mac) = match self.flavor {
            NatFlavor::PerVm => (realm as PortId, self.guest_macs.get(realm as usize)),
            NatFlavor::Network => {
                let b = pool.bytes(pkt);
                let last = b[ETH + 19] as usize;
                let mac = self.guest_macs.get(last);
                let port =
                    mac.and_then(|m| self.switch.as_ref().and_then(|s| s.fdb().lookup(&m.0, now)));
                match (port, mac) {
                    (Some(p), Some(m)) => (p, Some(m)),
                    // Known guest, port unknown to this worker's FDB: flood the segment.
                    (None, Some(m)) => {
                        let frame = pool.bytes_mut(pkt);
                        frame[..6].copy_from_slice(&m.0);
                        frame[6..12].copy_from_slice(&self.router_mac.0);
                        return Verdict::Tx(self.layout.vm_mask());
                    }
                    _ => return Verdict::Drop(DropReason::NoRoute),
                }
            }
        };
        let Some(mac) = mac else {
            return Verdict::Drop(DropReason::NoRoute);
        };
        let frame = pool.bytes_mut(pkt);
        frame[..6].copy_from_slice(&mac.0);
        frame[6..12].copy_from_slice(&self.router_mac.0);
        Verdict::Tx(PortMask::one(port))
    }

    /// Whether a guest may use `ip` as its own address: one of the guest network that is
    /// neither the network's, its broadcast's nor a service's.
    fn may_claim(&self, ip: Ipv4Addr) -> bool {
        let last = ip.octets()[3];
        in_guest_net(ip) && last != 0 && last != 255 && !self.addrs.services.contains(&ip)
    }

    /// Whether a routed packet's source is the guest's to use (see [`Self::may_claim`]);
    /// 0.0.0.0 only to reach the DHCP server (UDP to port 67). Anything else is spoofed and
    /// never translated.
    fn may_route_from(&self, ip: &[u8]) -> bool {
        let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
        if src.is_unspecified() {
            let hl = usize::from(ip[0] & 0x0f) * 4;
            return ip[9] == 17 && ip.len() >= hl + 4 && ip[hl + 2..hl + 4] == [0, 67];
        }
        self.may_claim(src)
    }

    fn learn_guest(&mut self, realm: u16, src_ip: [u8; 4], mac: EthernetAddress) {
        match self.flavor {
            NatFlavor::PerVm => self.guest_macs.set(realm as usize, mac),
            NatFlavor::Network => {
                if src_ip[..3] == [10, 0, 2] && src_ip[3] != 0 {
                    self.guest_macs.set(src_ip[3] as usize, mac);
                }
            }
        }
    }

    fn apply_control(&mut self) {
        while let Ok(msg) = self.control.try_recv() {
            // A rule changed: what the fast path holds is decided again by the core.
            self.fastpath.revoke(Revoke::All);
            match msg {
                ControlMsg::Add(rule) => {
                    // Validated by the control thread first; a refusal here cannot differ.
                    let _ = self.napt.add_forward(rule.clone());
                    if let Some(h) = self.host_napt.as_mut() {
                        let _ = h.add_forward(rule);
                    }
                }
                ControlMsg::Remove(name) => {
                    self.napt.remove_forward(&name);
                    if let Some(h) = self.host_napt.as_mut() {
                        h.remove_forward(&name);
                    }
                }
            }
        }
    }
}

impl Pipeline for NatMode {
    fn process(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        self.warm(pool, pkts);
        let offers = self.fastpath.enabled();
        for (i, (pkt, verdict)) in pkts.iter_mut().zip(verdicts.iter_mut()).enumerate() {
            let arrival = if offers {
                Arrival::of(pool.bytes(pkt))
            } else {
                None
            };
            let ingress = pkt.port;
            self.offer_tag = None;
            *verdict = self.handle(now, pool, pkt);
            if let (Some(a), Some(tag)) = (arrival, self.offer_tag) {
                // Once per session and direction: the engine holds the entry after that.
                let outbound = matches!(self.layout.role(ingress), Some(PortRole::Vm(_)));
                let napt = match tag >> 32 {
                    0 => Some(&mut self.napt),
                    _ => self.host_napt.as_mut(),
                };
                if matches!(*verdict, Verdict::Tx(m) if m.len() == 1)
                    && napt.is_some_and(|n| n.mark_offered(tag as u32, outbound))
                {
                    self.fastpath.offer(a.offer(i as u16, ingress, tag));
                }
            }
        }
        if offers {
            self.collect_revocations();
        }
    }

    fn observe_handoff(&mut self, now: Instant, bytes: &[u8], ingress: PortId) {
        if let Some(sw) = self.switch.as_mut() {
            if sw.learn(now, bytes, ingress) == Some(Learn::Moved) {
                self.fastpath.revoke(Revoke::All);
            }
        }
    }

    fn fastpath_queue(&mut self) -> Option<&mut FastPathQueue> {
        if !self.fastpath.enabled() {
            // The engine is about to enable it: from now on freed sessions are reported.
            self.napt.track_freed(true);
            if let Some(h) = self.host_napt.as_mut() {
                h.track_freed(true);
            }
            self.macs_seen = (self.guest_macs.version(), self.next_hops.version());
        }
        Some(&mut self.fastpath)
    }

    fn fastpath_seen(&mut self, seen: &Seen) {
        match *seen {
            Seen::L2 { key, at, .. } => {
                if let Some(sw) = self.switch.as_mut() {
                    sw.refresh(&key.src, key.ingress, at);
                }
            }
            Seen::Nat {
                tag,
                key,
                at,
                packets,
            } => {
                let outbound = matches!(self.layout.role(key.ingress), Some(PortRole::Vm(_)));
                let napt = match tag >> 32 {
                    0 => Some(&mut self.napt),
                    _ => self.host_napt.as_mut(),
                };
                if let Some(napt) = napt {
                    napt.fastpath_seen(tag as u32, outbound, at, packets);
                }
            }
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        let mut t = self.napt.poll_at();
        if self.owns_uplink {
            t = Some(t.map_or(self.uplink.poll_at(), |x| x.min(self.uplink.poll_at())));
        }
        t
    }

    fn poll(&mut self, now: Instant, pool: &mut FramePool, out: &mut Emitter) {
        self.apply_control();
        self.napt.poll(now);
        if let Some(h) = self.host_napt.as_mut() {
            h.poll(now);
        }
        for gw in &mut self.gateways {
            gw.poll(now, pool, out);
        }
        if let Some(sw) = self.switch.as_mut() {
            let q = &mut self.fastpath;
            let mut gone = false;
            sw.sweep_each(now, |mac| {
                q.revoke(Revoke::Mac(mac));
                gone = true;
            });
            if gone {
                // Translated flows to a guest are written with its port, too.
                q.revoke(Revoke::All);
            }
        }
        if self.owns_uplink {
            self.uplink.poll(now, pool, out);
            match self.uplink.next_hop_mac(now) {
                Some(mac) => self.next_hops.set(0, mac),
                None => self.next_hops.clear(0),
            }
        }
        if self.owns_host {
            if let Some(h) = self.host.as_mut() {
                h.poll(now, pool, out);
                match h.next_hop_mac(now) {
                    Some(mac) => self.next_hops.set(1, mac),
                    None => self.next_hops.clear(1),
                }
            }
        }
        if self.fastpath.enabled() {
            self.collect_revocations();
        }
    }
}

/// The fast-path tag of session `s` of the NAPT of `link`.
fn tag(link: Link, s: u32) -> u64 {
    let slot: u64 = match link {
        Link::Uplink => 0,
        Link::Host => 1,
    };
    slot << 32 | u64::from(s)
}

/// What a translated packet looked like when it arrived, for its offer: its first 38
/// bytes (Ethernet, IPv4 without options, the ports), copied before the mode rewrites it
/// and parsed only when an offer is made.
#[derive(Debug, Clone, Copy)]
struct Arrival {
    head: [u8; 38],
}

impl Arrival {
    /// A plain IPv4 TCP/UDP packet (no options, no fragment, no SYN/FIN/RST): the only
    /// kind the fast path translates.
    #[inline]
    fn of(f: &[u8]) -> Option<Arrival> {
        if f.len() < ETH + 20 + 8 || f[12..14] != [0x08, 0x00] || f[ETH] != 0x45 {
            return None;
        }
        if (f[ETH + 6] & 0x3f) | f[ETH + 7] != 0 {
            return None;
        }
        match f[ETH + 9] {
            6 if f.len() >= ETH + 40 && f[ETH + 33] & 0x07 == 0 => {}
            17 => {}
            _ => return None,
        }
        let mut head = [0u8; 38];
        head.copy_from_slice(&f[..38]);
        Some(Arrival { head })
    }

    fn offer(&self, pkt: u16, ingress: PortId, tag: u64) -> Offer {
        let f = &self.head;
        let ip = &f[ETH..];
        let mac = |at: usize| -> [u8; 6] { f[at..at + 6].try_into().expect("6 bytes") };
        let addr = |at: usize| -> [u8; 4] { ip[at..at + 4].try_into().expect("4 bytes") };
        Offer::Nat {
            pkt,
            key: NatKey {
                ingress,
                proto: ip[9],
                saddr: addr(12),
                daddr: addr(16),
                sport: u16::from_be_bytes([ip[20], ip[21]]),
                dport: u16::from_be_bytes([ip[22], ip[23]]),
            },
            in_macs: (mac(0), mac(6)),
            in_ttl: ip[8],
            tag,
        }
    }
}

impl NatMode {
    /// Queue the revocations of what changed: sessions that ended, and every entry when
    /// a MAC they were written with changed (a guest's, a next hop's) or a rule changed.
    fn collect_revocations(&mut self) {
        let macs = (self.guest_macs.version(), self.next_hops.version());
        if macs != self.macs_seen {
            self.macs_seen = macs;
            self.fastpath.revoke(Revoke::All);
        }
        if self.fastpath.revokes_all() {
            // Every entry goes: every session is offered again by its next packet.
            self.napt.clear_offered();
            if let Some(h) = self.host_napt.as_mut() {
                h.clear_offered();
            }
        }
        let q = &mut self.fastpath;
        for (slot, napt) in [Some(&mut self.napt), self.host_napt.as_mut()]
            .into_iter()
            .enumerate()
        {
            let Some(napt) = napt else { continue };
            napt.drain_freed(|s| match s {
                Some(s) => q.revoke(Revoke::Tag((slot as u64) << 32 | u64::from(s))),
                None => q.revoke(Revoke::All),
            });
        }
    }
}

fn in_guest_net(ip: Ipv4Addr) -> bool {
    ip.octets()[..3] == [10, 0, 2]
}

fn swap_macs(frame: &mut [u8]) {
    let mut tmp = [0u8; 6];
    tmp.copy_from_slice(&frame[..6]);
    frame.copy_within(6..12, 0);
    frame[6..12].copy_from_slice(&tmp);
}
