//! The committed corpus (`pcaps/`, see [`crate::corpus`]) replayed through each mode,
//! rewritten to the topology's addresses: the negative probes of a VM1 -> VM2 cell reach vm2
//! exactly when the mode connects guests, the DHCP exchange is answered where the mode serves
//! DHCP, and malformed frames are dropped without reaching the host or the uplink of a
//! routed mode.
//!
//! The frames are `corpus::corpus()`'s, which a test proves byte-identical to the files.

use super::suite::{SuiteCase, SuiteReport};
use crate::cli::ModeName;
use crate::corpus::{corpus, replay_frames};
use std::net::Ipv4Addr;

const VM1_MAC: [u8; 6] = [0x08, 0x00, 0x27, 0x00, 0x00, 0x01];

/// (vm1 address, vm2 address, DHCP server and the address vm1 leases first, if the mode
/// serves DHCP) of each mode's topology.
fn addresses(mode: ModeName) -> (Ipv4Addr, Ipv4Addr, Option<(Ipv4Addr, Ipv4Addr)>) {
    let ip = Ipv4Addr::new;
    match mode {
        ModeName::Internal => (ip(192, 168, 60, 11), ip(192, 168, 60, 12), None),
        ModeName::Bridged => (ip(198, 18, 0, 11), ip(198, 18, 0, 12), None),
        ModeName::HostOnly => (
            ip(192, 168, 56, 101),
            ip(192, 168, 56, 102),
            Some((ip(192, 168, 56, 100), ip(192, 168, 56, 101))),
        ),
        ModeName::Nat => (
            ip(10, 0, 2, 15),
            ip(10, 0, 2, 16),
            Some((ip(10, 0, 2, 2), ip(10, 0, 2, 15))),
        ),
        ModeName::NatNetwork => (
            ip(10, 0, 2, 4),
            ip(10, 0, 2, 5),
            Some((ip(10, 0, 2, 3), ip(10, 0, 2, 4))),
        ),
    }
}

/// Replace every occurrence of the corpus's 4-byte addresses, and recompute checksums.
fn rewrite(frame: &[u8], map: &[([u8; 4], [u8; 4])]) -> Vec<u8> {
    let mut f = frame.to_vec();
    // Addresses sit at fixed places: IPv4 src/dst (26, 30), ARP spa/tpa (28, 38), DHCP
    // options (50 requested, 54 server) after the BOOTP header.
    let mut places = vec![];
    if f.len() >= 34 && f[12..14] == [8, 0] {
        places.extend([26, 30]);
    }
    if f.len() >= 42 && f[12..14] == [8, 6] {
        places.extend([28, 38]);
    }
    let bootp = 14 + 20 + 8;
    if f.len() > bootp + 240 && f[12..14] == [8, 0] && f[23] == 17 && f[36..38] == [0, 67] {
        let mut at = bootp + 240;
        while at + 2 <= f.len() && f[at] != 255 {
            if f[at] == 0 {
                at += 1;
                continue;
            }
            let len = f[at + 1] as usize;
            if (f[at] == 50 || f[at] == 54) && len == 4 {
                places.push(at + 2);
            }
            at += 2 + len;
        }
    }
    for at in places {
        if at + 4 > f.len() {
            continue;
        }
        for (from, to) in map {
            if f[at..at + 4] == *from {
                f[at..at + 4].copy_from_slice(to);
                break;
            }
        }
    }
    if f.len() >= 34 && f[12..14] == [8, 0] && f[14] == 0x45 {
        fix_checksums(&mut f);
    }
    f
}

fn fix_checksums(f: &mut [u8]) {
    use vnet_core::wire::checksum;
    let total = u16::from_be_bytes([f[16], f[17]]) as usize;
    if f.len() < 14 + total || total < 20 {
        return;
    }
    f[24..26].fill(0);
    let s = checksum::data(&f[14..34]);
    f[24..26].copy_from_slice(&s.to_be_bytes());
    let (proto, l4) = (f[23], 34);
    let at = match proto {
        17 => l4 + 6,
        6 => l4 + 16,
        _ => return,
    };
    if at + 2 > 14 + total {
        return;
    }
    f[at..at + 2].fill(0);
    let mut pseudo = Vec::with_capacity(12 + total);
    pseudo.extend_from_slice(&f[26..34]);
    pseudo.extend_from_slice(&[0, proto]);
    pseudo.extend_from_slice(&((total - 20) as u16).to_be_bytes());
    pseudo.extend_from_slice(&f[l4..14 + total]);
    let mut s = checksum::data(&pseudo);
    if proto == 17 && s == 0 {
        s = 0xffff;
    }
    f[at..at + 2].copy_from_slice(&s.to_be_bytes());
}

fn frames_of(name: &str) -> Vec<Vec<u8>> {
    corpus()
        .into_iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, f)| f)
        .unwrap_or_default()
}

fn case(name: &str, requirement: &str, pass: bool, evidence: String) -> SuiteCase {
    SuiteCase {
        name: name.into(),
        requirement: requirement.into(),
        pass,
        evidence,
    }
}

/// Run the corpus through `mode`.
pub fn run(mode: ModeName) -> SuiteReport {
    let (vm1, vm2, dhcp) = addresses(mode);
    let guest_links = !matches!(mode, ModeName::Nat);
    let map = [
        ([10, 0, 2, 15], vm1.octets()),
        ([10, 0, 2, 16], vm2.octets()),
    ];
    let mut cases = Vec::new();

    // Negative probes: unicast to vm2's MAC and address, broadcast, ARP for vm2.
    let probes: Vec<Vec<u8>> = frames_of("negative-probes.pcap")
        .iter()
        .map(|f| rewrite(f, &map))
        .collect();
    match replay_frames(mode, &probes, 0) {
        Ok(out) => {
            let at_vm2 = out[1]
                .iter()
                .filter(|f| f.len() >= 12 && f[6..12] == VM1_MAC)
                .count();
            let want = if guest_links { probes.len() } else { 0 };
            cases.push(case(
                "corpus_negative_probes_vm1_to_vm2",
                if guest_links { "VM1 -> VM2 is +: the probes arrive" } else { "VM1 -> VM2 is -: no probe arrives" },
                at_vm2 == want,
                format!("negative-probes.pcap rewritten to {vm1} -> {vm2}: {at_vm2} of {} at vm2 (want {want})", probes.len()),
            ));
        }
        Err(e) => cases.push(case(
            "corpus_negative_probes_vm1_to_vm2",
            "replay",
            false,
            e.to_string(),
        )),
    }

    // The DHCP exchange is answered where the mode serves DHCP.
    if let Some((server, lease)) = dhcp {
        let map = [
            ([10, 0, 2, 15], lease.octets()),
            ([10, 0, 2, 2], server.octets()),
        ];
        let exchange: Vec<Vec<u8>> = frames_of("dhcp-exchange.pcap")
            .iter()
            .map(|f| rewrite(f, &map))
            .collect();
        match replay_frames(mode, &exchange, 0) {
            Ok(out) => {
                let replies: Vec<u8> = out[0]
                    .iter()
                    .filter(|f| f.len() > 42 + 240 && f[12..14] == [8, 0] && f[34..36] == [0, 67])
                    .filter_map(|f| {
                        let opts = &f[42 + 240..];
                        opts.windows(3)
                            .find(|w| w[0] == 53 && w[1] == 1)
                            .map(|w| w[2])
                    })
                    .collect();
                cases.push(case(
                    "corpus_dhcp_exchange_answered",
                    "DISCOVER -> OFFER, REQUEST -> ACK from the mode's DHCP server",
                    replies == vec![2, 5],
                    format!("dhcp-exchange.pcap (server {server}, address {lease}): reply types {replies:?} (want [2, 5])"),
                ));
            }
            Err(e) => cases.push(case(
                "corpus_dhcp_exchange_answered",
                "replay",
                false,
                e.to_string(),
            )),
        }
    }

    // Malformed frames: nothing of them is routed out of the host port or the uplink.
    let malformed = frames_of("malformed.pcap");
    match replay_frames(mode, &malformed, 0) {
        Ok(out) => {
            let routed = matches!(mode, ModeName::Nat | ModeName::NatNetwork);
            let leaked: usize = out
                .iter()
                .skip(2)
                .map(|p| {
                    p.iter()
                        .filter(|f| f.len() >= 12 && f[6..12] == VM1_MAC)
                        .count()
                })
                .sum();
            cases.push(case(
                "corpus_malformed_dropped",
                if routed {
                    "no malformed frame is routed out"
                } else {
                    "malformed frames never crash the switch"
                },
                !routed || leaked == 0,
                format!(
                    "malformed.pcap ({} frames): {leaked} left through host/uplink",
                    malformed.len()
                ),
            ));
        }
        Err(e) => cases.push(case(
            "corpus_malformed_dropped",
            "replay",
            false,
            e.to_string(),
        )),
    }
    SuiteReport {
        suite: "corpus-replay".into(),
        subject: format!("vnet-modes {}", mode.as_str()),
        cases,
    }
}
