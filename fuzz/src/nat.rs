//! The NAT and NAT Network targets: the mode built from the configuration byte, and the
//! rules its verdicts obey.

use crate::{l3_source, Driver, Oracle};
use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::counters::PortTotals;
use vnet_core::frame::PortId;
use vnet_core::pipeline::PortMask;
use vnet_core::time::Instant;
use vnet_modes::gateway::service_mac;
use vnet_modes::guard::GuardConfig;
use vnet_modes::layout::{PortLayout, PortRole};
use vnet_modes::nat::{Filtering, ForwardRule};
use vnet_modes::natmode::{HostLink, NatFlavor, NatModeConfig, NatSpec};

/// The external address on the uplink.
pub const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The uplink's next hop.
pub const GW: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const GW_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 1];
const HOST_MAC: [u8; 6] = [0x0a, 0, 0, 0, 0, 0x99];

/// The rules of the NAT modes:
///
/// - what leaves on the uplink is translated: an IPv4 packet from the external address or
///   an ARP packet of it; on the host port likewise with the host-link address;
/// - the two links never talk to each other directly: a frame from the uplink never goes
///   to the host port, nor one from the host port to the uplink;
/// - NAT (one realm per VM): a frame reaches at most one VM port, and a guest's frame
///   reaches another VM's port only through the external address (hairpinning, as
///   anything on the Internet could): sent to it, and arriving from it.
#[derive(Debug, Clone)]
pub struct NatOracle {
    flavor: NatFlavor,
    layout: PortLayout,
    host_ip: Option<Ipv4Addr>,
}

fn ipv4_dst(frame: &[u8]) -> Option<Ipv4Addr> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    Some(Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]))
}

impl NatOracle {
    fn check_links(&self, what: &str, bytes: &[u8], mask: PortMask) {
        if let Some(up) = self.layout.uplink() {
            if mask.contains(up) {
                assert_eq!(
                    l3_source(bytes),
                    Some(EXT),
                    "{what} to the uplink is not from the external address: {bytes:02x?}"
                );
            }
        }
        if let (Some(host), Some(own)) = (self.layout.host(), self.host_ip) {
            if mask.contains(host) {
                assert_eq!(
                    l3_source(bytes),
                    Some(own),
                    "{what} to the host port is not from the host-link address: {bytes:02x?}"
                );
            }
        }
        if self.flavor == NatFlavor::PerVm {
            assert!(
                mask.and(self.layout.vm_mask()).len() <= 1,
                "{what} to several NAT realms ({mask:?})"
            );
        }
    }
}

impl Oracle for NatOracle {
    fn layout(&self) -> PortLayout {
        self.layout
    }

    fn fix_dst_mac(&self, ingress: PortId) -> Option<[u8; 6]> {
        Some(match self.layout.role(ingress)? {
            PortRole::Vm(_) => match self.flavor {
                NatFlavor::PerVm => service_mac(Ipv4Addr::new(10, 0, 2, 2)).0,
                NatFlavor::Network => service_mac(Ipv4Addr::new(10, 0, 2, 1)).0,
            },
            PortRole::Uplink => service_mac(EXT).0,
            PortRole::Host => service_mac(self.host_ip?).0,
        })
    }

    fn fix_dst_ip(&self, ingress: PortId) -> Option<Ipv4Addr> {
        match self.layout.role(ingress)? {
            PortRole::Vm(_) => None,
            PortRole::Uplink => Some(EXT),
            PortRole::Host => self.host_ip,
        }
    }

    fn check_tx(&self, ingress: PortId, before: &[u8], after: &[u8], mask: PortMask) {
        self.check_links("a frame", after, mask);
        match self.layout.role(ingress) {
            Some(PortRole::Uplink) => {
                if let Some(host) = self.layout.host() {
                    assert!(!mask.contains(host), "from the uplink to the host port");
                }
            }
            Some(PortRole::Host) => {
                if let Some(up) = self.layout.uplink() {
                    assert!(!mask.contains(up), "from the host port to the uplink");
                }
            }
            Some(PortRole::Vm(_)) if self.flavor == NatFlavor::PerVm => {
                let others = mask.and(self.layout.vm_mask()).without(ingress);
                if !others.is_empty() {
                    assert!(
                        ipv4_dst(before) == Some(EXT) && l3_source(after) == Some(EXT),
                        "a NAT guest's frame from port {ingress} reached {others:?} other than \
                         by hairpinning: {before:02x?} -> {after:02x?}"
                    );
                }
            }
            _ => {}
        }
    }

    fn check_emitted(&self, bytes: &[u8], mask: PortMask) {
        self.check_links("an originated frame", bytes, mask);
    }
}

fn arp_reply(sha: [u8; 6], spa: Ipv4Addr, tpa: Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 2]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.octets());
    f.resize(60, 0);
    f
}

/// Runs a NAT or NAT Network target's input. Configuration byte: bits 0-1 VMs - 1, bit 2
/// a host port, bit 3 port-forward rules (TCP 2222 and UDP 5353), bit 4 the next hops
/// resolved before the input (their ARP replies), bit 5 small tables (16 sessions, 12 per
/// guest, 32 external ports, short timeouts), bit 6 endpoint-independent filtering, bit
/// 7 a tight guard (burst 4, 10 frames/s) and an upstream DNS resolver. Returns the
/// counters per port (for the seeds' tests).
pub fn run(flavor: NatFlavor, data: &[u8]) -> Vec<PortTotals> {
    let Some((&cfg, records)) = data.split_first() else {
        return Vec::new();
    };
    let vms = usize::from(cfg & 3) + 1;
    let host = cfg & 4 != 0;
    let mut c = NatModeConfig::new(flavor, vms, EXT, GW);
    c.napt.max_sessions = 1024;
    if host {
        c.host = Some(HostLink::default());
    }
    if cfg & 8 != 0 {
        c.forwards = match flavor {
            NatFlavor::PerVm => {
                let guest = Ipv4Addr::new(10, 0, 2, 15);
                vec![
                    ForwardRule::parse_natpf("ssh,tcp,,2222,,22", 0, guest),
                    ForwardRule::parse_natpf("dns,udp,,5353,,53", (vms - 1) as u16, guest),
                ]
            }
            NatFlavor::Network => vec![
                ForwardRule::parse_natnetwork("ssh:tcp:[]:2222:[10.0.2.4]:22"),
                ForwardRule::parse_natnetwork("dns:udp:[]:5353:[10.0.2.5]:53"),
            ],
        }
        .into_iter()
        .map(|r| r.expect("a valid rule"))
        .collect();
    }
    if cfg & 32 != 0 {
        c.napt.max_sessions = 16;
        c.napt.max_sessions_per_guest = 12;
        c.napt.port_range = (40000, 40031);
        c.napt.strict = false;
        c.napt.timeouts.udp = Duration::from_secs(3);
        c.napt.timeouts.tcp_established = Duration::from_secs(5);
        c.napt.timeouts.tcp_transitory = Duration::from_secs(2);
        c.napt.timeouts.icmp = Duration::from_secs(1);
        c.switch.fdb_max = 4;
        c.switch.aging = Duration::from_secs(5);
    }
    if cfg & 64 != 0 {
        c.napt.filtering = Filtering::EndpointIndependent;
    }
    if cfg & 128 != 0 {
        c.guard = GuardConfig {
            group_pps: 10,
            arp_pps: 10,
            burst: 4,
        };
        c.dns = Some(Ipv4Addr::new(198, 18, 0, 53));
    }
    let oracle = NatOracle {
        flavor,
        layout: c.layout(),
        host_ip: c.host.map(|h| h.own_ip),
    };
    let host_link = c.host;
    let now = Instant::ZERO;
    let spec = NatSpec::new(c, 1, now).expect("a valid NAT configuration");
    let mode = spec.build(0, 1, now).expect("a valid NAT worker");
    let mut d = Driver::new(mode, &oracle, Instant::from_secs(1));
    if cfg & 16 != 0 {
        d.poll();
        let up = oracle.layout.uplink().expect("NAT has an uplink");
        d.push(up, &arp_reply(GW_MAC, GW, EXT));
        if let (Some(h), Some(port)) = (host_link, oracle.layout.host()) {
            d.push(port, &arp_reply(HOST_MAC, h.host_ip, h.own_ip));
        }
        d.run_batch();
        d.poll();
    }
    d.feed(records);
    d.totals()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(target: &str, name: &str) -> Vec<u8> {
        let path = format!("{}/corpus/{target}/seed-{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e} (run ci/fuzz-seed.py)"))
    }

    #[test]
    fn the_seeds_reach_the_uplink_through_the_napt_and_the_answers_come_back() {
        for (flavor, target, cfg) in [
            (NatFlavor::PerVm, "mode_nat", "1d"),
            (NatFlavor::PerVm, "mode_nat", "10"),
            (NatFlavor::Network, "mode_nat_network", "11"),
        ] {
            let totals = run(flavor, &seed(target, &format!("all-cfg{cfg}")));
            let uplink = totals.len() - 1;
            let guests = totals[0].tx_packets;
            assert!(
                guests > 0,
                "{target} cfg {cfg}: no DHCP or ARP answer: {totals:?}"
            );
            assert!(
                totals[uplink].tx_packets > 3,
                "{target} cfg {cfg}: nothing translated to the uplink: {totals:?}"
            );
            // With the peers answering (or refusing with ICMP errors), what they send is
            // translated back to the guest.
            for (what, name) in [("answers", "all-answered"), ("ICMP errors", "all-refused")] {
                let t = run(flavor, &seed(target, &format!("{name}-cfg{cfg}")));
                assert!(
                    t[0].tx_packets >= guests + 5,
                    "{target} cfg {cfg}: the peers' {what} do not reach the guest: {t:?}"
                );
            }
        }
    }
}
