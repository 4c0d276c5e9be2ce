//! The DHCP server of RFC 2131/2132 through the whole Host-only pipeline (VirtualBox's
//! defaults: server 192.168.56.100, pool .101-.254), with client messages emitted by
//! smoltcp's DHCP wire code and the replies' options read back byte by byte.
//!
//! Each case starts a fresh pipeline at virtual time 1 s and speaks for clients on
//! `vm1`'s port (port 0). The RELEASE and exhaustion cases narrow the pool to two
//! addresses (.101-.102), so that "free" and "full" are observable with three clients.

use super::suite::{case, ensure, eth_frame, ipv4_packet, Check, PipeRig, SuiteReport, L4};
use smoltcp::wire::{DhcpMessageType, DhcpPacket, DhcpRepr, EthernetAddress};
use std::net::Ipv4Addr;
use vnet_core::time::Instant;
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::host_only::{HostOnlyConfig, HostOnlyMode};
use vnet_modes::switch::SwitchConfig;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 56, 100);
const CLIENT_A: [u8; 6] = [0x08, 0x00, 0x27, 0xaa, 0x00, 0x01];
const CLIENT_B: [u8; 6] = [0x08, 0x00, 0x27, 0xaa, 0x00, 0x02];
const CLIENT_C: [u8; 6] = [0x08, 0x00, 0x27, 0xaa, 0x00, 0x03];
const BCAST: [u8; 6] = [0xff; 6];

/// A reply as the client sees it.
#[derive(Debug, Clone)]
struct Reply {
    eth_dst: [u8; 6],
    eth_src: [u8; 6],
    ip_dst: Ipv4Addr,
    kind: DhcpMessageType,
    yiaddr: Ipv4Addr,
    /// Every option, in order, as (code, value).
    options: Vec<(u8, Vec<u8>)>,
}

impl Reply {
    fn has(&self, code: u8) -> bool {
        self.options.iter().any(|(c, _)| *c == code)
    }

    fn u32_opt(&self, code: u8) -> Option<u32> {
        self.options
            .iter()
            .find(|(c, v)| *c == code && v.len() == 4)
            .map(|(_, v)| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }

    fn codes(&self) -> String {
        let c: Vec<String> = self.options.iter().map(|(c, _)| c.to_string()).collect();
        c.join(",")
    }

    fn broadcast(&self) -> bool {
        self.eth_dst == BCAST && self.ip_dst == Ipv4Addr::BROADCAST
    }
}

/// The options of a DHCP message (after the magic cookie), skipping pads.
fn options_of(dhcp: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 240;
    while i < dhcp.len() {
        match dhcp[i] {
            0 => i += 1,
            255 => break,
            code => {
                let Some(&len) = dhcp.get(i + 1) else { break };
                let end = (i + 2 + len as usize).min(dhcp.len());
                out.push((code, dhcp[i + 2..end].to_vec()));
                i = end;
            }
        }
    }
    out
}

struct DhcpRig {
    rig: PipeRig,
    xid: u32,
}

/// What a client message looks like on the wire.
#[derive(Debug, Clone, Copy)]
struct Msg {
    kind: DhcpMessageType,
    mac: [u8; 6],
    ciaddr: Ipv4Addr,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    broadcast_flag: bool,
    /// Unicast to the server (RENEWING) instead of broadcast.
    unicast_to: Option<[u8; 6]>,
}

impl Msg {
    fn new(kind: DhcpMessageType, mac: [u8; 6]) -> Self {
        Self {
            kind,
            mac,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server_id: None,
            broadcast_flag: false,
            unicast_to: None,
        }
    }
}

impl DhcpRig {
    fn new(pool_end: u8) -> Result<Self, String> {
        let mut dhcp = DhcpServerConfig::host_only();
        dhcp.pool_end = Ipv4Addr::new(192, 168, 56, pool_end);
        let mode = HostOnlyMode::host_only(
            HostOnlyConfig {
                vms: 2,
                switch: SwitchConfig::default(),
                dhcp: Some(dhcp),
            },
            Instant::ZERO,
        )
        .map_err(|e| format!("setup: {e}"))?;
        Ok(Self {
            rig: PipeRig::new(Box::new(mode), Instant::from_secs(1)),
            xid: 0x766e_0000,
        })
    }

    /// Send `m` from `vm1`'s port; the reply, if the pipeline sent one back there.
    fn send(&mut self, m: Msg) -> Result<Option<Reply>, String> {
        self.xid += 1;
        let repr = DhcpRepr {
            message_type: m.kind,
            transaction_id: self.xid,
            secs: 0,
            client_hardware_address: EthernetAddress(m.mac),
            client_ip: m.ciaddr,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            router: None,
            subnet_mask: None,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            broadcast: m.broadcast_flag,
            requested_ip: m.requested,
            client_identifier: Some(EthernetAddress(m.mac)),
            server_identifier: m.server_id,
            parameter_request_list: Some(&[1, 3, 6, 51, 54, 58, 59]),
            dns_servers: None,
            max_size: Some(1500),
            lease_duration: None,
            renew_duration: None,
            rebind_duration: None,
            additional_options: &[],
        };
        let mut payload = vec![0u8; repr.buffer_len().max(300)];
        repr.emit(&mut DhcpPacket::new_unchecked(&mut payload[..]))
            .map_err(|e| format!("emit: {e}"))?;
        let (src, dst, dst_mac) = match m.unicast_to {
            Some(mac) => (m.ciaddr, SERVER, mac),
            None => (m.ciaddr, Ipv4Addr::BROADCAST, BCAST),
        };
        let ip = ipv4_packet(src, dst, L4::Udp(68, 67, &payload));
        let sent = self.rig.send(0, &eth_frame(m.mac, dst_mac, &ip));
        if !sent.ports().iter().any(|p| p == 0) {
            return Ok(None);
        }
        let p = super::suite::parse(&sent.frame).map_err(|e| format!("reply: {e}"))?;
        if p.proto != 17 || p.sport != 67 || p.dport != 68 {
            return Ok(None);
        }
        let dp = DhcpPacket::new_checked(&p.udp_payload[..]).map_err(|e| format!("reply: {e}"))?;
        let parsed = DhcpRepr::parse(&dp).map_err(|e| format!("reply: {e}"))?;
        ensure(parsed.transaction_id == self.xid, || {
            format!(
                "reply xid {:#x} for request {:#x}",
                parsed.transaction_id, self.xid
            )
        })?;
        Ok(Some(Reply {
            eth_dst: p.dst_mac,
            eth_src: p.src_mac,
            ip_dst: p.dst,
            kind: parsed.message_type,
            yiaddr: parsed.your_ip,
            options: options_of(&p.udp_payload),
        }))
    }

    fn expect(&mut self, m: Msg, kind: DhcpMessageType) -> Result<Reply, String> {
        let what = format!("{:?}", m.kind);
        match self.send(m)? {
            Some(r) if r.kind == kind => Ok(r),
            Some(r) => Err(format!("{what} answered by {:?}", r.kind)),
            None => Err(format!("{what} not answered")),
        }
    }

    /// DISCOVER/OFFER/REQUEST/ACK for `mac`: the OFFER and the ACK.
    fn dora(&mut self, mac: [u8; 6]) -> Result<(Reply, Reply), String> {
        let offer = self.expect(
            Msg::new(DhcpMessageType::Discover, mac),
            DhcpMessageType::Offer,
        )?;
        let mut req = Msg::new(DhcpMessageType::Request, mac);
        req.requested = Some(offer.yiaddr);
        req.server_id = Some(SERVER);
        let ack = self.expect(req, DhcpMessageType::Ack)?;
        Ok((offer, ack))
    }
}

/// Run the DHCP suite on the Host-only pipeline.
pub fn run() -> SuiteReport {
    let cases = vec![
        case(
            "rfc2131_selecting",
            "4.3.2 SELECTING: DISCOVER/OFFER, REQUEST(54,50)/ACK; Table 3 options",
            selecting,
        ),
        case(
            "rfc2131_4_1_reply_destination",
            "4.1: broadcast flag -> broadcast; else unicast to chaddr/yiaddr",
            reply_destination,
        ),
        case(
            "rfc2131_init_reboot",
            "4.3.2 INIT-REBOOT: REQUEST(50, no 54, ciaddr 0) for its lease -> ACK",
            init_reboot,
        ),
        case(
            "rfc2131_init_reboot_wrong_address_nak",
            "4.3.2 INIT-REBOOT with a wrong address -> NAK, broadcast, no lease, yiaddr 0",
            nak,
        ),
        case(
            "rfc2131_renewing",
            "4.3.2 RENEWING: unicast REQUEST(ciaddr, no 50/54) -> ACK to ciaddr",
            renewing,
        ),
        case(
            "rfc2131_rebinding",
            "4.3.2 REBINDING: broadcast REQUEST(ciaddr, no 50/54) -> ACK",
            rebinding,
        ),
        case(
            "rfc2131_decline_quarantines",
            "4.3.3 DECLINE: the address is marked unusable",
            decline,
        ),
        case(
            "rfc2131_release_frees",
            "4.3.4 RELEASE: the address is free again",
            release,
        ),
        case(
            "rfc2131_inform",
            "4.3.5 INFORM: ACK without yiaddr and without lease time, to ciaddr",
            inform,
        ),
        case(
            "rfc2131_stable_lease_per_client",
            "the same MAC gets the same address again",
            stable,
        ),
        case(
            "rfc2131_pool_exhaustion_silence",
            "pool exhausted: DISCOVER answered by silence, no crash",
            exhaustion,
        ),
    ];
    SuiteReport {
        suite: "dhcp-rfc2131".into(),
        subject: "vnet-modes host-only (server 192.168.56.100), in memory".into(),
        cases,
    }
}

fn selecting() -> Check {
    let mut r = DhcpRig::new(254)?;
    let (offer, ack) = r.dora(CLIENT_A)?;
    let in_pool =
        |ip: Ipv4Addr| (101..=254).contains(&ip.octets()[3]) && ip.octets()[..3] == [192, 168, 56];
    ensure(in_pool(offer.yiaddr), || {
        format!("offered {}", offer.yiaddr)
    })?;
    ensure(ack.yiaddr == offer.yiaddr, || {
        format!("offered {} but acknowledged {}", offer.yiaddr, ack.yiaddr)
    })?;
    for (name, reply) in [("OFFER", &offer), ("ACK", &ack)] {
        for code in [1, 51, 53, 54] {
            ensure(reply.has(code), || {
                format!("{name} lacks option {code} (has {})", reply.codes())
            })?;
        }
        for code in [50, 55, 57] {
            ensure(!reply.has(code), || {
                format!("{name} carries option {code}, which a reply MUST NOT")
            })?;
        }
        let pos = |c: u8| reply.options.iter().position(|(x, _)| *x == c);
        if let (Some(m), Some(rt)) = (pos(1), pos(3)) {
            ensure(m < rt, || format!("{name}: option 1 after option 3"))?;
        }
    }
    let lease = ack.u32_opt(51).unwrap_or(0);
    let t = |c| ack.u32_opt(c);
    if let (Some(t1), Some(t2)) = (t(58), t(59)) {
        ensure(
            t1 == lease / 2 && t2 == lease / 8 * 7 || t2 == lease * 7 / 8,
            || format!("lease {lease} s with T1 {t1} s, T2 {t2} s (want 0.5 and 0.875)"),
        )?;
    }
    Ok(format!(
        "OFFER {} (options {}), ACK {} lease {lease} s (options {})",
        offer.yiaddr,
        offer.codes(),
        ack.yiaddr,
        ack.codes()
    ))
}

fn reply_destination() -> Check {
    let mut r = DhcpRig::new(254)?;
    let plain = r.expect(
        Msg::new(DhcpMessageType::Discover, CLIENT_A),
        DhcpMessageType::Offer,
    )?;
    ensure(
        plain.eth_dst == CLIENT_A && plain.ip_dst == plain.yiaddr,
        || {
            format!(
                "no broadcast flag: OFFER sent to {:02x?} / {} (want chaddr / yiaddr {})",
                plain.eth_dst, plain.ip_dst, plain.yiaddr
            )
        },
    )?;
    let mut m = Msg::new(DhcpMessageType::Discover, CLIENT_B);
    m.broadcast_flag = true;
    let b = r.expect(m, DhcpMessageType::Offer)?;
    ensure(b.broadcast(), || {
        format!(
            "broadcast flag: OFFER sent to {:02x?} / {}",
            b.eth_dst, b.ip_dst
        )
    })?;
    Ok(format!(
        "without the flag: unicast to chaddr and {}; with it: broadcast",
        plain.yiaddr
    ))
}

fn init_reboot() -> Check {
    let mut r = DhcpRig::new(254)?;
    let (_, ack) = r.dora(CLIENT_A)?;
    let mut m = Msg::new(DhcpMessageType::Request, CLIENT_A);
    m.requested = Some(ack.yiaddr);
    let again = r.expect(m, DhcpMessageType::Ack)?;
    ensure(again.yiaddr == ack.yiaddr, || {
        format!(
            "INIT-REBOOT for {} acknowledged {}",
            ack.yiaddr, again.yiaddr
        )
    })?;
    Ok(format!("INIT-REBOOT REQUEST for {} -> ACK", ack.yiaddr))
}

fn nak() -> Check {
    let mut r = DhcpRig::new(254)?;
    r.dora(CLIENT_A)?;
    let mut evidence = Vec::new();
    for wrong in [Ipv4Addr::new(192, 168, 56, 200), Ipv4Addr::new(10, 9, 9, 9)] {
        let mut m = Msg::new(DhcpMessageType::Request, CLIENT_A);
        m.requested = Some(wrong);
        let n = r.expect(m, DhcpMessageType::Nak)?;
        ensure(n.broadcast(), || format!("NAK for {wrong} not broadcast"))?;
        ensure(n.yiaddr.is_unspecified(), || {
            format!("NAK yiaddr {}", n.yiaddr)
        })?;
        ensure(n.has(54) && !n.has(51), || {
            format!("NAK for {wrong} options {} (want 54, no 51)", n.codes())
        })?;
        evidence.push(format!("{wrong} -> NAK (broadcast, options {})", n.codes()));
    }
    Ok(evidence.join("; "))
}

fn renewing() -> Check {
    let mut r = DhcpRig::new(254)?;
    let (_, ack) = r.dora(CLIENT_A)?;
    let mut m = Msg::new(DhcpMessageType::Request, CLIENT_A);
    m.ciaddr = ack.yiaddr;
    m.unicast_to = Some(ack.eth_src);
    let renew = r.expect(m, DhcpMessageType::Ack)?;
    ensure(
        renew.ip_dst == ack.yiaddr && renew.eth_dst == CLIENT_A,
        || {
            format!(
                "renewal ACK sent to {} / {:02x?}",
                renew.ip_dst, renew.eth_dst
            )
        },
    )?;
    ensure(renew.has(51), || "renewal ACK without a lease time".into())?;
    Ok(format!(
        "unicast REQUEST from {} to the server -> ACK unicast to {}",
        ack.yiaddr, renew.ip_dst
    ))
}

fn rebinding() -> Check {
    let mut r = DhcpRig::new(254)?;
    let (_, ack) = r.dora(CLIENT_A)?;
    let mut m = Msg::new(DhcpMessageType::Request, CLIENT_A);
    m.ciaddr = ack.yiaddr;
    let re = r.expect(m, DhcpMessageType::Ack)?;
    ensure(re.has(51), || "rebinding ACK without a lease time".into())?;
    Ok(format!(
        "broadcast REQUEST with ciaddr {} -> ACK to {}",
        ack.yiaddr, re.ip_dst
    ))
}

fn decline() -> Check {
    let mut r = DhcpRig::new(254)?;
    let (_, ack) = r.dora(CLIENT_A)?;
    let bad = ack.yiaddr;
    let mut m = Msg::new(DhcpMessageType::Decline, CLIENT_A);
    m.requested = Some(bad);
    m.server_id = Some(SERVER);
    let answer = r.send(m)?;
    ensure(answer.is_none(), || "DECLINE was answered".into())?;
    let (offer, ack2) = r.dora(CLIENT_A)?;
    let (offer_b, _) = r.dora(CLIENT_B)?;
    ensure(offer.yiaddr != bad && offer_b.yiaddr != bad, || {
        format!("the declined {bad} was offered again")
    })?;
    Ok(format!(
        "{bad} declined (no answer); next leases: client A {}, client B {}",
        ack2.yiaddr, offer_b.yiaddr
    ))
}

fn release() -> Check {
    let mut r = DhcpRig::new(102)?;
    let (_, a) = r.dora(CLIENT_A)?;
    r.dora(CLIENT_B)?;
    let full = r.send(Msg::new(DhcpMessageType::Discover, CLIENT_C))?;
    ensure(full.is_none(), || {
        "a third client got an offer from a pool of two".into()
    })?;
    let mut m = Msg::new(DhcpMessageType::Release, CLIENT_A);
    m.ciaddr = a.yiaddr;
    m.server_id = Some(SERVER);
    m.unicast_to = Some(a.eth_src);
    ensure(r.send(m)?.is_none(), || "RELEASE was answered".into())?;
    let (offer, _) = r.dora(CLIENT_C)?;
    ensure(offer.yiaddr == a.yiaddr, || {
        format!(
            "after {} was released, client C got {}",
            a.yiaddr, offer.yiaddr
        )
    })?;
    Ok(format!(
        "pool .101-.102 full; client A released {}; client C then leased it",
        a.yiaddr
    ))
}

fn inform() -> Check {
    let mut r = DhcpRig::new(254)?;
    let own = Ipv4Addr::new(192, 168, 56, 50);
    let mut m = Msg::new(DhcpMessageType::Inform, CLIENT_A);
    m.ciaddr = own;
    let ack = r.expect(m, DhcpMessageType::Ack)?;
    ensure(ack.yiaddr.is_unspecified(), || {
        format!("INFORM ACK yiaddr {}", ack.yiaddr)
    })?;
    ensure(!ack.has(51), || "INFORM ACK carries a lease time".into())?;
    ensure(ack.has(54), || "INFORM ACK lacks the server id".into())?;
    ensure(ack.ip_dst == own, || {
        format!("INFORM ACK sent to {}", ack.ip_dst)
    })?;
    Ok(format!(
        "INFORM from {own} -> ACK to {} (options {}, no 51, yiaddr 0)",
        ack.ip_dst,
        ack.codes()
    ))
}

fn stable() -> Check {
    let mut r = DhcpRig::new(254)?;
    let (_, a) = r.dora(CLIENT_A)?;
    r.dora(CLIENT_B)?;
    let (_, again) = r.dora(CLIENT_A)?;
    ensure(again.yiaddr == a.yiaddr, || {
        format!("client A got {} then {}", a.yiaddr, again.yiaddr)
    })?;
    Ok(format!("client A leased {} twice", a.yiaddr))
}

fn exhaustion() -> Check {
    let mut r = DhcpRig::new(102)?;
    let (_, a) = r.dora(CLIENT_A)?;
    let (_, b) = r.dora(CLIENT_B)?;
    let mut silent = 0;
    for _ in 0..3 {
        if r.send(Msg::new(DhcpMessageType::Discover, CLIENT_C))?
            .is_none()
        {
            silent += 1;
        }
    }
    ensure(silent == 3, || {
        format!("{} of 3 DISCOVERs answered", 3 - silent)
    })?;
    // Still serving its clients.
    let mut m = Msg::new(DhcpMessageType::Request, CLIENT_A);
    m.ciaddr = a.yiaddr;
    r.expect(m, DhcpMessageType::Ack)?;
    Ok(format!(
        "pool .101-.102 held by {} and {}: 3 DISCOVERs from a third client unanswered; renewals still served",
        a.yiaddr, b.yiaddr
    ))
}
