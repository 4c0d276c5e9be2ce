//! From `run`'s arguments to a mode: which interfaces play which role, and the
//! [`SegmentSpec`] each worker builds its pipeline from. Every refusal is one sentence
//! naming the flag to change.

use crate::cli::{FilteringChoice, ModeName, RunArgs};
use anyhow::{anyhow, bail, Result};
use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::time::Instant;
use vnet_modes::any::AnyMode;
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::gateway::SharedDhcp;
use vnet_modes::guard::GuardConfig;
use vnet_modes::host_only::HostOnlyConfig;
use vnet_modes::internal::InternalConfig;
use vnet_modes::layout::PortLayout;
use vnet_modes::nat::{Filtering, ForwardRule};
use vnet_modes::natmode::{HostLink, NatFlavor, NatModeConfig, NatSpec};
use vnet_modes::segment::SegmentSpec;
use vnet_modes::switch::SwitchConfig;

/// How each worker builds its pipeline.
#[allow(clippy::large_enum_variant)] // one per run
#[derive(Debug)]
pub enum Recipe {
    /// Internal, Host-only, Bridged.
    Segment(SegmentSpec),
    /// NAT, NAT Network.
    Nat(NatSpec),
}

/// A mode ready to run: the interfaces in port order and the pipeline recipe.
#[derive(Debug)]
pub struct ModePlan {
    /// Interface names, in dataplane port order (VMs, host, uplink).
    pub ports: Vec<String>,
    /// The role of each port, for messages.
    pub roles: Vec<String>,
    /// The pipeline recipe.
    pub recipe: Recipe,
    /// One line describing the mode's settings.
    pub summary: String,
}

impl ModePlan {
    /// The pipeline of worker `worker` of `workers`.
    ///
    /// # Errors
    /// When the mode refuses its settings (checked already when planning).
    pub fn build(&self, worker: usize, workers: usize) -> Result<AnyMode> {
        Ok(match &self.recipe {
            Recipe::Segment(spec) => AnyMode::Switched(spec.build(worker)),
            Recipe::Nat(spec) => AnyMode::Nat(spec.build(worker, workers, Instant::now())?),
        })
    }

    /// The shared DHCP servers (for counters and the lease file).
    pub fn dhcp_servers(&self) -> Vec<(Ipv4Addr, SharedDhcp)> {
        match &self.recipe {
            Recipe::Segment(spec) => spec.dhcp.iter().cloned().collect(),
            Recipe::Nat(spec) => {
                let ip = spec.config.dhcp.server_ip;
                spec.dhcp.iter().map(|s| (ip, s.clone())).collect()
            }
        }
    }
}

/// Parse `--pf` rules for a NAT flavor.
pub fn parse_rules(flavor: NatFlavor, vms: usize, specs: &[String]) -> Result<Vec<ForwardRule>> {
    let mut rules = Vec::new();
    for spec in specs {
        let rule = match flavor {
            NatFlavor::PerVm => {
                let (realm, body) = match spec.split_once(':') {
                    Some((vm, body)) if vm.starts_with("vm") => {
                        let n: usize = vm[2..]
                            .parse()
                            .ok()
                            .filter(|n| (1..=vms).contains(n))
                            .ok_or_else(|| {
                                anyhow!("--pf {spec:?}: {vm:?} names no VM (vm1 to vm{vms})")
                            })?;
                        (n - 1, body)
                    }
                    _ => (0, spec.as_str()),
                };
                ForwardRule::parse_natpf(body, realm as u16, Ipv4Addr::new(10, 0, 2, 15))?
            }
            NatFlavor::Network => ForwardRule::parse_natnetwork(spec)?,
        };
        rules.push(rule);
    }
    Ok(rules)
}

fn nat_plan(
    args: &RunArgs,
    flavor: NatFlavor,
    mut ports: Vec<String>,
    mut roles: Vec<String>,
) -> Result<ModePlan> {
    let name = args.mode.as_str();
    let uplink = args
        .uplink
        .clone()
        .ok_or_else(|| anyhow!("{name} mode needs the uplink; add --uplink IF"))?;
    let (external_ip, prefix) = parse_cidr_flag(
        "--external-ip",
        args.external_ip
            .as_deref()
            .ok_or_else(|| anyhow!("{name} mode needs its external address; add --external-ip ADDRESS/PREFIX (e.g. 198.18.0.2/24)"))?,
    )?;
    let gateway = args
        .gateway
        .ok_or_else(|| anyhow!("{name} mode needs the uplink's next hop; add --gateway IP"))?;
    if u32::from(gateway) & u32::from(mask(prefix))
        != u32::from(external_ip) & u32::from(mask(prefix))
    {
        bail!("--gateway {gateway} is not on the uplink's network {external_ip}/{prefix}");
    }
    if args.dhcp || args.no_dhcp || args.subnet.is_some() {
        bail!("{name} mode has its own fixed guest network 10.0.2.0/24 with DHCP; drop --dhcp/--no-dhcp/--subnet");
    }
    let vms = args.vms.len();
    let mut config = NatModeConfig::new(flavor, vms, external_ip, gateway);
    config.dns = args.dns;
    config.forwards = parse_rules(flavor, vms, &args.pf)?;
    config.napt.filtering = match args.nat_filtering {
        FilteringChoice::EndpointIndependent => Filtering::EndpointIndependent,
        FilteringChoice::AddressDependent => Filtering::AddressDependent,
        FilteringChoice::AddressPortDependent => Filtering::AddressPortDependent,
    };
    config.napt.max_sessions = args.nat_max_sessions;
    config.napt.max_sessions_per_guest = args.nat_sessions_per_guest;
    config.dhcp.max_leases_per_port = args.dhcp_leases_per_port;
    config.guard = guard_config(args);
    config.napt.timeouts.udp = Duration::from_secs(args.nat_udp_timeout);
    config.napt.timeouts.tcp_established = Duration::from_secs(args.nat_tcp_timeout);
    config.napt.timeouts.tcp_transitory = Duration::from_secs(args.nat_tcp_transitory_timeout);
    config.napt.timeouts.icmp = Duration::from_secs(args.nat_icmp_timeout);
    config.napt.hash_seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    config.dhcp.lease_time = Duration::from_secs(args.lease_time);
    config.dhcp.lease_file = args.lease_file.clone();
    if let Some(h) = &args.host {
        let (own, host) = args.host_link.split_once('/').ok_or_else(|| {
            anyhow!(
                "--host-link {:?} is not OWN/HOST (e.g. 198.19.0.2/198.19.0.1)",
                args.host_link
            )
        })?;
        let own: Ipv4Addr = own
            .parse()
            .map_err(|_| anyhow!("--host-link: {own:?} is not an IPv4 address"))?;
        let host: Ipv4Addr = host
            .parse()
            .map_err(|_| anyhow!("--host-link: {host:?} is not an IPv4 address"))?;
        config.host = Some(HostLink {
            own_ip: own,
            host_ip: host,
        });
        ports.push(h.clone());
        roles.push("host".into());
    }
    ports.push(uplink);
    roles.push("uplink".into());
    let workers = args.cores.len().max(1);
    let summary = format!(
        "mode {name}, external {external_ip}/{prefix} via {gateway}, DNS {}, {} forward rule(s), filtering {:?}",
        args.dns.map(|d| d.to_string()).unwrap_or_else(|| "none (SERVFAIL)".into()),
        config.forwards.len(),
        config.napt.filtering
    );
    crate::configcheck::nat_addresses(&config, prefix)?;
    let spec =
        NatSpec::new(config, workers, Instant::now()).map_err(crate::configcheck::nat_error)?;
    Ok(ModePlan {
        ports,
        roles,
        recipe: Recipe::Nat(spec),
        summary,
    })
}

fn parse_cidr_flag(flag: &str, text: &str) -> Result<(Ipv4Addr, u8)> {
    parse_cidr(text).map_err(|e| anyhow!("{}", e.to_string().replace("--subnet", flag)))
}

/// Parse `A.B.C.D/N`, a host's address in its network (not the network's own address
/// nor its broadcast).
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8)> {
    const FIX: &str = "give a host address and prefix length such as 192.168.56.1/24";
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| anyhow!("--subnet {text:?} is not ADDRESS/PREFIX; {FIX}"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| anyhow!("--subnet {text:?}: {addr:?} is not an IPv4 address; {FIX}"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (8..=30).contains(l))
        .ok_or_else(|| anyhow!("--subnet {text:?}: the prefix length must be 8 to 30; {FIX}"))?;
    let host = u32::from(addr) & !u32::from(mask(len));
    if host == 0 || host == !u32::from(mask(len)) {
        let what = if host == 0 {
            "network's own"
        } else {
            "broadcast"
        };
        bail!("--subnet {text:?}: {addr} is the {what} address of its network, which no host can have; {FIX}");
    }
    Ok((addr, len))
}

fn mask(len: u8) -> Ipv4Addr {
    Ipv4Addr::from(u32::MAX << (32 - len))
}

fn host_in(net: Ipv4Addr, len: u8, host: u32) -> Ipv4Addr {
    Ipv4Addr::from((u32::from(net) & u32::from(mask(len))) | host)
}

/// The DHCP server for a subnet, with the flags' overrides.
fn dhcp_config(args: &RunArgs, subnet: (Ipv4Addr, u8)) -> Result<DhcpServerConfig> {
    let (addr, len) = subnet;
    let server = args.dhcp_server.unwrap_or_else(|| host_in(addr, len, 100));
    let (first, last) = match &args.dhcp_range {
        Some(r) => {
            let (a, b) = r.split_once('-').ok_or_else(|| {
                anyhow!("--dhcp-range {r:?} is not FIRST-LAST (e.g. 192.168.56.101-192.168.56.254)")
            })?;
            let a: Ipv4Addr = a
                .parse()
                .map_err(|_| anyhow!("--dhcp-range: {a:?} is not an IPv4 address"))?;
            let b: Ipv4Addr = b
                .parse()
                .map_err(|_| anyhow!("--dhcp-range: {b:?} is not an IPv4 address"))?;
            (a, b)
        }
        None => (
            host_in(addr, len, 101),
            host_in(addr, len, (1u32 << (32 - len)) - 2),
        ),
    };
    let mut config = DhcpServerConfig::new(server, mask(len), first, last);
    config.lease_time = Duration::from_secs(args.lease_time);
    config.lease_file = args.lease_file.clone();
    config.max_leases_per_port = args.dhcp_leases_per_port;
    config
        .validate()
        .map_err(|e| anyhow!("the DHCP settings do not fit together: {e}; change --subnet, --dhcp-server or --dhcp-range so that the server and the pool are inside the subnet and apart"))?;
    Ok(config)
}

/// The VM ports' rate limits from the flags.
fn guard_config(args: &RunArgs) -> GuardConfig {
    GuardConfig {
        group_pps: args.broadcast_rate,
        arp_pps: args.arp_rate,
        burst: args.rate_burst,
    }
}

/// Check the flags against the mode and lay out the ports.
pub fn plan(args: &RunArgs) -> Result<ModePlan> {
    crate::configcheck::distinct_interfaces(args)?;
    let switch = SwitchConfig {
        fdb_max: args.fdb_max,
        aging: Duration::from_secs(args.fdb_aging),
    };
    if args.fdb_max == 0 {
        bail!("--fdb-max must be at least 1");
    }
    let mut ports = args.vms.clone();
    let mut roles: Vec<String> = (1..=args.vms.len()).map(|i| format!("vm{i}")).collect();
    let vms = args.vms.len();
    match args.mode {
        ModeName::Internal => {
            if args.host.is_some() {
                bail!("internal mode has no host port; drop --host (an internal network reaches only its VMs)");
            }
            if args.uplink.is_some() {
                bail!("internal mode has no uplink; drop --uplink (an internal network never reaches outside)");
            }
            if vms < 2 && !args.dhcp {
                bail!("give at least two --vm interfaces: a switch with one port forwards nothing");
            }
            let subnet = parse_cidr(args.subnet.as_deref().unwrap_or("192.168.60.1/24"))?;
            let dhcp = if args.dhcp {
                Some(dhcp_config(args, subnet)?)
            } else {
                None
            };
            let summary = format!(
                "mode internal, network {:?}, {}",
                args.network,
                dhcp.as_ref()
                    .map(|d| format!("DHCP {} pool {}-{}", d.server_ip, d.pool_start, d.pool_end))
                    .unwrap_or_else(|| "no DHCP".into())
            );
            let mut spec = SegmentSpec::internal(
                InternalConfig {
                    network: args.network.clone(),
                    vms,
                    switch,
                    dhcp,
                },
                Instant::now(),
            )?;
            spec.guard = guard_config(args);
            Ok(ModePlan {
                ports,
                roles,
                recipe: Recipe::Segment(spec),
                summary,
            })
        }
        ModeName::HostOnly => {
            if args.uplink.is_some() {
                bail!("host-only mode has no uplink: nothing may leave the host-only network; drop --uplink");
            }
            let host = args.host.clone().ok_or_else(|| {
                anyhow!("host-only mode needs the host's interface; add --host IF")
            })?;
            let subnet = parse_cidr(args.subnet.as_deref().unwrap_or("192.168.56.1/24"))?;
            let dhcp = if args.no_dhcp {
                None
            } else {
                Some(dhcp_config(args, subnet)?)
            };
            let summary = format!(
                "mode host-only, host {}/{}, {}",
                subnet.0,
                subnet.1,
                dhcp.as_ref()
                    .map(|d| format!("DHCP {} pool {}-{}", d.server_ip, d.pool_start, d.pool_end))
                    .unwrap_or_else(|| "no DHCP".into())
            );
            ports.push(host);
            roles.push("host".into());
            let mut spec =
                SegmentSpec::host_only(HostOnlyConfig { vms, switch, dhcp }, Instant::now())?;
            spec.guard = guard_config(args);
            Ok(ModePlan {
                ports,
                roles,
                recipe: Recipe::Segment(spec),
                summary,
            })
        }
        ModeName::Bridged => {
            let uplink = args.uplink.clone().ok_or_else(|| {
                anyhow!("bridged mode needs the uplink (the NIC's LAN); add --uplink IF")
            })?;
            if args.dhcp || args.no_dhcp || args.subnet.is_some() || args.dhcp_range.is_some() {
                bail!("bridged mode has no DHCP server of its own (guests get addresses from the LAN); drop the DHCP flags");
            }
            let has_host = args.host.is_some();
            if let Some(h) = &args.host {
                ports.push(h.clone());
                roles.push("host".into());
            }
            ports.push(uplink);
            roles.push("uplink".into());
            let layout = PortLayout::new(vms, has_host, true);
            Ok(ModePlan {
                ports,
                roles,
                recipe: Recipe::Segment(SegmentSpec {
                    guard: guard_config(args),
                    ..SegmentSpec::bridged(layout, switch)
                }),
                summary: "mode bridged".into(),
            })
        }
        ModeName::Nat => nat_plan(args, NatFlavor::PerVm, ports, roles),
        ModeName::NatNetwork => nat_plan(args, NatFlavor::Network, ports, roles),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn args(line: &str) -> RunArgs {
        let mut argv = vec!["vnet-bench", "run"];
        argv.extend(line.split_whitespace());
        match Cli::parse_from(argv).command {
            Some(crate::cli::Command::Run(a)) => *a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn host_only_defaults_are_virtualbox_s() {
        let p = plan(&args("--mode host-only --vm a --vm b --host h")).unwrap();
        assert_eq!(p.ports, vec!["a", "b", "h"]);
        assert!(p.summary.contains("192.168.56.1/24"), "{}", p.summary);
        assert!(
            p.summary
                .contains("DHCP 192.168.56.100 pool 192.168.56.101-192.168.56.254"),
            "{}",
            p.summary
        );
    }

    #[test]
    fn host_only_refuses_an_uplink_and_needs_a_host() {
        let e = plan(&args("--mode host-only --vm a --host h --uplink u")).unwrap_err();
        assert!(e.to_string().contains("drop --uplink"), "{e}");
        let e = plan(&args("--mode host-only --vm a")).unwrap_err();
        assert!(e.to_string().contains("add --host"), "{e}");
    }

    #[test]
    fn bridged_orders_vms_host_uplink() {
        let p = plan(&args("--mode bridged --vm a --vm b --host h --uplink u")).unwrap();
        assert_eq!(p.ports, vec!["a", "b", "h", "u"]);
        assert_eq!(p.roles, vec!["vm1", "vm2", "host", "uplink"]);
        let e = plan(&args("--mode bridged --vm a")).unwrap_err();
        assert!(e.to_string().contains("--uplink"), "{e}");
    }

    #[test]
    fn custom_subnet_and_range() {
        let p = plan(&args(
            "--mode host-only --vm a --host h --subnet 10.9.0.1/16 --dhcp-range 10.9.1.1-10.9.1.50",
        ))
        .unwrap();
        assert!(
            p.summary
                .contains("DHCP 10.9.0.100 pool 10.9.1.1-10.9.1.50"),
            "{}",
            p.summary
        );
        let e = plan(&args(
            "--mode host-only --vm a --host h --dhcp-range 10.9.1.1",
        ))
        .unwrap_err();
        assert!(e.to_string().contains("FIRST-LAST"), "{e}");
        let e = plan(&args("--mode host-only --vm a --host h --subnet 10.9.0.1")).unwrap_err();
        assert!(e.to_string().contains("ADDRESS/PREFIX"), "{e}");
    }

    #[test]
    fn internal_dhcp_is_optional() {
        let p = plan(&args("--mode internal --vm a --vm b")).unwrap();
        assert!(p.summary.contains("no DHCP"));
        let p = plan(&args("--mode internal --vm a --vm b --dhcp")).unwrap();
        assert!(p.summary.contains("DHCP 192.168.60.100"), "{}", p.summary);
        let e = plan(&args("--mode internal --vm a --vm b --host h")).unwrap_err();
        assert!(e.to_string().contains("drop --host"), "{e}");
    }
}
