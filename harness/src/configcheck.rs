//! Settings of `run` that are each well formed but do not fit together, refused before
//! anything starts (no interface touched): an interface given twice, networks that
//! overlap (a NAT's guest network, its uplink's network, the host link), a port-forward
//! rule that could never match or leads outside the guests' network.
//!
//! Every refusal is one sentence: what is wrong, then what to do.

use crate::cli::RunArgs;
use anyhow::{bail, Result};
use std::net::Ipv4Addr;
use vnet_modes::nat::{ForwardError, ForwardRule};
use vnet_modes::natmode::{NatModeConfig, NatModeError};

/// A network as address and mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Net {
    base: u32,
    mask: u32,
}

impl Net {
    fn new(addr: Ipv4Addr, mask: u32) -> Self {
        Self {
            base: u32::from(addr) & mask,
            mask,
        }
    }
    fn with_prefix(addr: Ipv4Addr, prefix: u8) -> Self {
        Self::new(
            addr,
            u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0),
        )
    }
    fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask == self.base
    }
    fn overlaps(&self, other: &Net) -> bool {
        let mask = self.mask & other.mask;
        self.base & mask == other.base & mask
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}",
            Ipv4Addr::from(self.base),
            self.mask.leading_ones()
        )
    }
}

/// Refuse an interface named by two of `--vm`, `--host`, `--uplink`.
///
/// # Errors
/// One sentence naming the interface and both flags.
pub fn distinct_interfaces(args: &RunArgs) -> Result<()> {
    let mut given: Vec<(&str, String)> = Vec::new();
    let named = args
        .vms
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), format!("--vm (vm{})", i + 1)))
        .chain(args.host.iter().map(|n| (n.as_str(), "--host".to_string())))
        .chain(
            args.uplink
                .iter()
                .map(|n| (n.as_str(), "--uplink".to_string())),
        );
    for (name, flag) in named {
        if let Some((_, first)) = given.iter().find(|(n, _)| *n == name) {
            bail!(
                "interface {name} is given twice ({first} and {flag}); give each --vm, --host and --uplink an interface of its own"
            );
        }
        given.push((name, flag));
    }
    Ok(())
}

/// Refuse NAT settings whose networks overlap, whose next hop is the dataplane itself,
/// or whose port-forward rules could never match or lead outside the guests' network.
/// `prefix` is `--external-ip`'s prefix length.
///
/// # Errors
/// One sentence naming the flags concerned.
pub fn nat_addresses(config: &NatModeConfig, prefix: u8) -> Result<()> {
    let guests = Net::new(config.dhcp.server_ip, u32::from(config.dhcp.subnet_mask));
    let ext = config.external_ip;
    let uplink = Net::with_prefix(ext, prefix);
    if uplink.overlaps(&guests) {
        bail!(
            "--external-ip {ext}/{prefix}: the uplink's network {uplink} overlaps the guests' network {guests}; give the uplink an address outside {guests}"
        );
    }
    if config.gateway == ext {
        bail!("--gateway {ext} is the external address itself; give the uplink's next hop (its router)");
    }
    if let Some(link) = &config.host {
        let pair = format!("{}/{}", link.own_ip, link.host_ip);
        if link.own_ip == link.host_ip {
            bail!("--host-link {pair}: the dataplane and the host need two different addresses; give OWN/HOST such as 198.19.0.2/198.19.0.1");
        }
        for addr in [link.own_ip, link.host_ip] {
            for (net, what) in [
                (guests, "the guests' network"),
                (uplink, "the uplink's network"),
            ] {
                if net.contains(addr) {
                    bail!(
                        "--host-link {pair}: {addr} is inside {what} {net}; pick host-link addresses outside {guests} and {uplink} (the default is 198.19.0.2/198.19.0.1)"
                    );
                }
            }
        }
    }
    for rule in &config.forwards {
        forward_fits(config, guests, rule)?;
    }
    Ok(())
}

/// A forward rule listens on an address the dataplane has and forwards into the guests'
/// network.
fn forward_fits(config: &NatModeConfig, guests: Net, rule: &ForwardRule) -> Result<()> {
    let name = &rule.name;
    if let Some(ip) = rule.external_ip {
        let own = config.host.map(|h| h.own_ip);
        if ip != config.external_ip && Some(ip) != own {
            let also = own
                .map(|o| format!(" or the host link's {o}"))
                .unwrap_or_default();
            bail!(
                "--pf rule '{name}' listens on {ip}, an address the dataplane does not have, so it would never match; use the external address {}{also}, or leave the host address empty for every one",
                config.external_ip
            );
        }
    }
    if !guests.contains(rule.inside_ip) {
        bail!(
            "--pf rule '{name}' forwards to {}, outside the guests' network {guests}; give a guest address inside it",
            rule.inside_ip
        );
    }
    let services = config.guest_addrs();
    let (net_addr, bcast) = (
        Ipv4Addr::from(guests.base),
        Ipv4Addr::from(guests.base | !guests.mask),
    );
    if services.services.contains(&rule.inside_ip)
        || rule.inside_ip == services.dhcp
        || rule.inside_ip == net_addr
        || rule.inside_ip == bcast
    {
        bail!(
            "--pf rule '{name}' forwards to {}, an address no guest can have (the network's, the broadcast or a service address of the dataplane); give a guest's address",
            rule.inside_ip
        );
    }
    Ok(())
}

/// The sentence for a refused NAT setup: forward rules get what to do added.
pub fn nat_error(e: NatModeError) -> anyhow::Error {
    match e {
        NatModeError::Forward(f @ ForwardError::Collision { .. }) => anyhow::anyhow!(
            "{f}; give one of them another protocol, host port or host address, or drop it"
        ),
        NatModeError::Forward(f @ ForwardError::DuplicateName { .. }) => {
            anyhow::anyhow!("{f}; give each --pf rule a name of its own")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use vnet_modes::natmode::{HostLink, NatFlavor};

    fn args(line: &str) -> RunArgs {
        let mut argv = vec!["vnet-bench", "run"];
        argv.extend(line.split_whitespace());
        match Cli::parse_from(argv).command {
            Some(Command::Run(a)) => *a,
            _ => unreachable!(),
        }
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn nat(ext: &str, gw: &str) -> NatModeConfig {
        NatModeConfig::new(NatFlavor::PerVm, 2, ip(ext), ip(gw))
    }

    #[test]
    fn an_interface_given_twice_is_named_with_both_flags() {
        distinct_interfaces(&args("--mode bridged --vm a --vm b --host h --uplink u")).unwrap();
        let e = distinct_interfaces(&args("--mode internal --vm a --vm a"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "interface a is given twice (--vm (vm1) and --vm (vm2)); give each --vm, --host and --uplink an interface of its own"
        );
        let e = distinct_interfaces(&args("--mode nat --vm a --uplink a"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("(--vm (vm1) and --uplink)"), "{e}");
    }

    #[test]
    fn networks_may_not_overlap() {
        nat_addresses(&nat("198.18.0.2", "198.18.0.1"), 24).unwrap();
        let e = nat_addresses(&nat("10.0.2.50", "10.0.2.1"), 24)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "--external-ip 10.0.2.50/24: the uplink's network 10.0.2.0/24 overlaps the guests' network 10.0.2.0/24; give the uplink an address outside 10.0.2.0/24"
        );
        // A wider uplink network that holds the guests' one overlaps too.
        assert!(nat_addresses(&nat("10.0.0.5", "10.0.0.1"), 16).is_err());
        let e = nat_addresses(&nat("198.18.0.2", "198.18.0.2"), 24)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("--gateway 198.18.0.2 is the external address"),
            "{e}"
        );

        let mut c = nat("198.18.0.2", "198.18.0.1");
        c.host = Some(HostLink {
            own_ip: ip("10.0.2.9"),
            host_ip: ip("10.0.2.8"),
        });
        let e = nat_addresses(&c, 24).unwrap_err().to_string();
        assert!(
            e.starts_with("--host-link 10.0.2.9/10.0.2.8: 10.0.2.9 is inside the guests' network 10.0.2.0/24;"),
            "{e}"
        );
        c.host = Some(HostLink {
            own_ip: ip("198.19.0.2"),
            host_ip: ip("198.18.0.7"),
        });
        let e = nat_addresses(&c, 24).unwrap_err().to_string();
        assert!(
            e.contains("198.18.0.7 is inside the uplink's network 198.18.0.0/24"),
            "{e}"
        );
        c.host = Some(HostLink::default());
        nat_addresses(&c, 24).unwrap();
    }

    #[test]
    fn forward_rules_must_be_able_to_match_and_lead_to_a_guest() {
        let mut c = nat("198.18.0.2", "198.18.0.1");
        let rule = |spec: &str| {
            crate::modespec::parse_rules(NatFlavor::PerVm, 2, &[spec.to_string()])
                .unwrap()
                .remove(0)
        };
        c.forwards = vec![
            rule("ssh,tcp,,2222,,22"),
            rule("vm2:web,tcp,198.18.0.2,80,,80"),
        ];
        nat_addresses(&c, 24).unwrap();
        c.forwards = vec![rule("ssh,tcp,198.18.0.9,2222,,22")];
        let e = nat_addresses(&c, 24).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "--pf rule 'ssh' listens on 198.18.0.9, an address the dataplane does not have"
            ),
            "{e}"
        );
        c.forwards = vec![rule("ssh,tcp,,2222,10.0.3.15,22")];
        let e = nat_addresses(&c, 24).unwrap_err().to_string();
        assert!(e.contains("outside the guests' network 10.0.2.0/24"), "{e}");
        c.forwards = vec![rule("ssh,tcp,,2222,10.0.2.2,22")];
        let e = nat_addresses(&c, 24).unwrap_err().to_string();
        assert!(e.contains("an address no guest can have"), "{e}");
    }

    #[test]
    fn refusals_are_one_sentence_with_what_to_do() {
        for e in [
            distinct_interfaces(&args("--mode internal --vm a --vm a")).unwrap_err(),
            nat_addresses(&nat("10.0.2.50", "10.0.2.1"), 24).unwrap_err(),
        ] {
            let s = e.to_string();
            assert!(!s.contains('\n') && s.matches("; ").count() == 1, "{s}");
        }
    }
}
