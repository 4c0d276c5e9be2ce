//! From `run`'s arguments to a mode: which interfaces play which role, and the
//! [`SegmentSpec`] each worker builds its pipeline from. Every refusal is one sentence
//! naming the flag to change.

use crate::cli::{ModeName, RunArgs};
use anyhow::{anyhow, bail, Result};
use std::net::Ipv4Addr;
use std::time::Duration;
use vnet_core::time::Instant;
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::host_only::HostOnlyConfig;
use vnet_modes::internal::InternalConfig;
use vnet_modes::layout::PortLayout;
use vnet_modes::segment::SegmentSpec;
use vnet_modes::switch::SwitchConfig;

/// A mode ready to run: the interfaces in port order and the pipeline recipe.
#[derive(Debug)]
pub struct ModePlan {
    /// Interface names, in dataplane port order (VMs, host, uplink).
    pub ports: Vec<String>,
    /// The role of each port, for messages.
    pub roles: Vec<String>,
    /// The pipeline recipe.
    pub spec: SegmentSpec,
    /// One line describing the mode's settings.
    pub summary: String,
}

/// Parse `A.B.C.D/N`.
pub fn parse_cidr(text: &str) -> Result<(Ipv4Addr, u8)> {
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| anyhow!("--subnet {text:?} is not ADDRESS/PREFIX (e.g. 192.168.56.1/24)"))?;
    let addr: Ipv4Addr = addr
        .parse()
        .map_err(|_| anyhow!("--subnet {text:?}: {addr:?} is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (8..=30).contains(l))
        .ok_or_else(|| anyhow!("--subnet {text:?}: the prefix length must be 8 to 30"))?;
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
    config
        .validate()
        .map_err(|e| anyhow!("the DHCP settings do not fit together: {e}"))?;
    Ok(config)
}

/// Check the flags against the mode and lay out the ports.
pub fn plan(args: &RunArgs) -> Result<ModePlan> {
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
            let dhcp = if args.dhcp { Some(dhcp_config(args, subnet)?) } else { None };
            let summary = format!(
                "mode internal, network {:?}, {}",
                args.network,
                dhcp.as_ref()
                    .map(|d| format!("DHCP {} pool {}-{}", d.server_ip, d.pool_start, d.pool_end))
                    .unwrap_or_else(|| "no DHCP".into())
            );
            let spec = SegmentSpec::internal(InternalConfig {
                network: args.network.clone(),
                vms,
                switch,
                dhcp,
            }, Instant::now())?;
            Ok(ModePlan { ports, roles, spec, summary })
        }
        ModeName::HostOnly => {
            if args.uplink.is_some() {
                bail!("host-only mode has no uplink: nothing may leave the host-only network; drop --uplink");
            }
            let host = args
                .host
                .clone()
                .ok_or_else(|| anyhow!("host-only mode needs the host's interface; add --host IF"))?;
            let subnet = parse_cidr(args.subnet.as_deref().unwrap_or("192.168.56.1/24"))?;
            let dhcp = if args.no_dhcp { None } else { Some(dhcp_config(args, subnet)?) };
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
            let spec = SegmentSpec::host_only(HostOnlyConfig { vms, switch, dhcp }, Instant::now())?;
            Ok(ModePlan { ports, roles, spec, summary })
        }
        ModeName::Bridged => {
            let uplink = args
                .uplink
                .clone()
                .ok_or_else(|| anyhow!("bridged mode needs the uplink (the NIC's LAN); add --uplink IF"))?;
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
                spec: SegmentSpec::bridged(layout, switch),
                summary: "mode bridged".into(),
            })
        }
        ModeName::Nat | ModeName::NatNetwork => bail!(
            "mode {} is not implemented in this build yet; `run` supports internal, host-only and bridged",
            args.mode.as_str()
        ),
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
