//! Topologies: the harness's own network namespaces joined by veth pairs.
//!
//! A [`Topology`] is a dataplane namespace (`PREFIX-dp`) and one namespace per endpoint
//! (`PREFIX-vm1`, `PREFIX-vm2`, `PREFIX-host`, `PREFIX-inet`), each joined to the
//! dataplane namespace by a veth pair. The dataplane binds AF_XDP to the dataplane-side
//! ends; the endpoint-side ends carry the endpoints' addresses.
//!
//! Safety rules (network safety): only namespaces with the topology's prefix are created
//! or deleted; the machine's own interfaces are never touched; endpoint namespaces have
//! no route out of the topology. Everything is removed on drop (also on panic), and
//! [`remove_prefix`] cleans up after a killed run.

use anyhow::{bail, Context, Result};
use std::process::{Command, Output};

/// The endpoints' transmit offloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offloads {
    /// veth's defaults (checksum and segmentation offload on): what users have. The
    /// main job, the live tests and live conformance.
    Default,
    /// Transmit checksumming off (`ethtool -K IF tx off`): the bench's generator and
    /// sink, as they have always been measured.
    TxOff,
}

/// One endpoint of a topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Role name: `vm1`, `vm2`, `host`, `inet`...
    pub role: String,
    /// Its namespace.
    pub netns: String,
    /// The interface inside the endpoint namespace.
    pub ifname: String,
    /// The peer interface in the dataplane namespace.
    pub dp_ifname: String,
    /// Its address with prefix length, if static (e.g. `192.168.60.1/24`).
    pub addr: Option<String>,
    /// Its MAC address.
    pub mac: String,
}

/// A built topology; removed on drop.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    dp_netns: String,
    endpoints: Vec<Endpoint>,
    keep: bool,
}

/// Run `ip` with arguments, failing with its stderr.
pub fn ip(args: &[&str]) -> Result<Output> {
    run("ip", args)
}

/// Run a command, failing with its stderr.
pub fn run(cmd: &str, args: &[&str]) -> Result<Output> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("could not start `{cmd}`; is it installed?"))?;
    if !out.status.success() {
        bail!(
            "`{cmd} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out)
}

/// Run a command inside a namespace (`ip netns exec NS CMD ARGS...`).
pub fn netns_exec(netns: &str, cmd: &str, args: &[&str]) -> Result<Output> {
    let mut all = vec!["netns", "exec", netns, cmd];
    all.extend_from_slice(args);
    ip(&all)
}

/// Remove every namespace whose name starts with `PREFIX-`.
pub fn remove_prefix(prefix: &str) -> Result<usize> {
    let out = ip(&["netns", "list"])?;
    let mut n = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&format!("{prefix}-")) {
            let _ = ip(&["netns", "del", name]);
            n += 1;
        }
    }
    Ok(n)
}

impl Topology {
    /// A dataplane namespace and one endpoint namespace per `(role, address)`, joined by
    /// veth pairs. Endpoint MACs are fixed (`02:76:6e:PP:00:0N`) so that runs repeat.
    ///
    /// # Errors
    /// When a namespace or link cannot be made (not root, names taken...). Whatever was
    /// built is removed again.
    pub fn build(prefix: &str, endpoints: &[(&str, Option<&str>)]) -> Result<Topology> {
        Self::build_with(prefix, endpoints, Offloads::Default)
    }

    /// [`Topology::build`] with the endpoints' transmit offloads chosen.
    ///
    /// # Errors
    /// As [`Topology::build`].
    pub fn build_with(
        prefix: &str,
        endpoints: &[(&str, Option<&str>)],
        offloads: Offloads,
    ) -> Result<Topology> {
        if prefix.len() > 6
            || prefix.is_empty()
            || !prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            bail!("topology prefix must be 1-6 letters or digits, got {prefix:?}");
        }
        let mut topo = Topology {
            prefix: prefix.to_string(),
            dp_netns: format!("{prefix}-dp"),
            endpoints: Vec::new(),
            keep: false,
        };
        // Leftovers of a killed run with the same prefix would make names collide.
        remove_prefix(prefix)?;
        ip(&["netns", "add", &topo.dp_netns])?;
        netns_exec(&topo.dp_netns, "ip", &["link", "set", "lo", "up"])?;
        for (i, (role, addr)) in endpoints.iter().enumerate() {
            let netns = format!("{prefix}-{role}");
            // Interface names are at most 15 bytes.
            let ifname = format!("{prefix}e{i}");
            let dp_ifname = format!("{prefix}d{i}");
            let mac = format!("02:76:6e:{:02x}:00:{:02x}", prefix_byte(prefix), i + 1);
            ip(&["netns", "add", &netns])?;
            netns_exec(&netns, "ip", &["link", "set", "lo", "up"])?;
            ip(&[
                "link",
                "add",
                &ifname,
                "netns",
                &netns,
                "address",
                &mac,
                "type",
                "veth",
                "peer",
                "name",
                &dp_ifname,
                "netns",
                &topo.dp_netns,
            ])?;
            // Endpoints keep veth's default offloads, as users' containers and VMs do:
            // TCP/UDP leave them with partial checksums, which the dataplane completes.
            if offloads == Offloads::TxOff {
                netns_exec(&netns, "ethtool", &["-K", &ifname, "tx", "off"])?;
            }
            netns_exec(&netns, "ip", &["link", "set", &ifname, "up"])?;
            netns_exec(&topo.dp_netns, "ip", &["link", "set", &dp_ifname, "up"])?;
            // The dataplane side carries no address and takes part in no IP traffic.
            let _ = netns_exec(
                &topo.dp_netns,
                "sysctl",
                &[
                    "-q",
                    "-w",
                    &format!("net.ipv6.conf.{dp_ifname}.disable_ipv6=1"),
                ],
            );
            if let Some(a) = addr {
                netns_exec(&netns, "ip", &["addr", "add", a, "dev", &ifname])?;
            }
            topo.endpoints.push(Endpoint {
                role: role.to_string(),
                netns,
                ifname,
                dp_ifname,
                addr: addr.map(str::to_string),
                mac,
            });
        }
        Ok(topo)
    }

    /// The dataplane namespace.
    pub fn dp_netns(&self) -> &str {
        &self.dp_netns
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The endpoints, in build order.
    pub fn endpoints(&self) -> &[Endpoint] {
        &self.endpoints
    }

    /// The endpoint with a role.
    pub fn endpoint(&self, role: &str) -> &Endpoint {
        self.endpoints
            .iter()
            .find(|e| e.role == role)
            .unwrap_or_else(|| panic!("topology has no endpoint {role}"))
    }

    /// Leave the namespaces in place when dropped (`topo up`).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

fn prefix_byte(prefix: &str) -> u8 {
    prefix
        .bytes()
        .fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b))
}

impl Drop for Topology {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        for e in &self.endpoints {
            let _ = ip(&["netns", "del", &e.netns]);
        }
        let _ = ip(&["netns", "del", &self.dp_netns]);
    }
}
