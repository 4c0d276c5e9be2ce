//! The Linux kernel as the device under test (`conformance --backend xdp --dut kernel`):
//! the same namespaces and cases as the live backend, with the dataplane namespace
//! configured as the mode by the kernel's own means instead of `vnet-bench run`:
//!
//! - Internal, Host-only, Bridged: one Linux bridge over the mode's ports; Host-only's
//!   DHCP server is dnsmasq on the bridge at 192.168.56.100 (pool .101-.254);
//! - NAT Network: a bridge over the VM ports with the router 10.0.2.1 and the host
//!   mapping 10.0.2.2 on it, dnsmasq serving 10.0.2.4-.254, the external address
//!   198.18.0.2 on the uplink and 198.19.0.2 on the host link, forwarding with an
//!   nftables table: masquerade out of the uplink and the host link, DNAT of 10.0.2.2 to
//!   the host, port forwards as DNAT rules (from the host link also SNAT to 10.0.2.2, as
//!   VirtualBox shows the host's forwarded traffic), everything else dropped;
//! - NAT (one private NAT engine per VM, both guests on 10.0.2.15): not expressible with
//!   one kernel namespace; [`comparable`] says so and the run leaves it out.
//!
//! Invariants: only the topology's dataplane namespace is configured; dnsmasq runs there
//! with no DNS (`--port=0`) and is stopped on drop.

use super::cases::ForwardRule;
use super::plan::{ModeUnderTest, NAT_EXTERNAL_IP, NAT_HOST_IP, NAT_HOST_LINK_IP, NAT_INET_IP};
use super::table::Role;
use crate::cli::ModeName;
use crate::scenario::Scratch;
use crate::topo::{netns_exec, Topology};
use anyhow::{anyhow, bail, Context, Result};
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Whether the kernel can stand in for `mode` here; `Err` says why not.
pub fn comparable(mode: ModeName) -> Result<(), &'static str> {
    match mode {
        ModeName::Nat => Err("not comparable: per-VM NAT (two guests alone on 10.0.2.15 each, one NAT engine per VM) is not expressible with one kernel namespace"),
        _ => Ok(()),
    }
}

/// The kernel configured as one mode in a topology's dataplane namespace.
#[derive(Debug)]
pub struct KernelPeer {
    netns: String,
    uplink: Option<String>,
    hostif: Option<String>,
    dnsmasq: Option<Child>,
}

impl Drop for KernelPeer {
    fn drop(&mut self) {
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn nft(netns: &str, script: &str) -> Result<()> {
    let out = Command::new("ip")
        .args(["netns", "exec", netns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .expect("piped")
                .write_all(script.as_bytes())?;
            c.wait_with_output()
        })
        .context("could not run nft; install nftables")?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

impl KernelPeer {
    /// Configure the dataplane namespace of `topo` as `mode`.
    ///
    /// # Errors
    /// When a command fails, or the mode has no kernel equivalent.
    pub fn start(mode: &ModeUnderTest, topo: &Topology, scratch: &Scratch) -> Result<KernelPeer> {
        comparable(mode.mode).map_err(|e| anyhow!("{}: {e}", mode.label))?;
        let ns = topo.dp_netns().to_string();
        let sh = |args: &[&str]| netns_exec(&ns, args[0], &args[1..]);
        let dp_if = |r: Role| {
            mode.port_of(r)
                .map(|_| topo.endpoint(r.name()).dp_ifname.clone())
        };
        let (vm1, vm2) = (dp_if(Role::Vm1), dp_if(Role::Vm2));
        let (hostif, uplink) = (dp_if(Role::Host), dp_if(Role::Inet));
        let mut peer = KernelPeer {
            netns: ns.clone(),
            uplink: None,
            hostif: None,
            dnsmasq: None,
        };
        sh(&["ip", "link", "add", "br0", "type", "bridge"])?;
        sh(&["sysctl", "-q", "-w", "net.ipv6.conf.br0.disable_ipv6=1"])?;
        let routed = mode.mode == ModeName::NatNetwork;
        let members: Vec<&String> = if routed {
            [&vm1, &vm2].into_iter().flatten().collect()
        } else {
            [&vm1, &vm2, &hostif, &uplink]
                .into_iter()
                .flatten()
                .collect()
        };
        for m in members {
            sh(&["ip", "link", "set", m, "master", "br0"])?;
        }
        sh(&["ip", "link", "set", "br0", "up"])?;
        // Frames bridged between guests are the bridge's business, not the IP forward
        // chain's (where br_netfilter is loaded, it would hand them to it).
        let _ = sh(&["sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=0"]);
        let dhcp = match mode.mode {
            ModeName::HostOnly => {
                sh(&["ip", "addr", "add", "192.168.56.100/24", "dev", "br0"])?;
                Some(("192.168.56.101,192.168.56.254,255.255.255.0,1h", None))
            }
            ModeName::NatNetwork => {
                sh(&["ip", "addr", "add", "10.0.2.1/24", "dev", "br0"])?;
                sh(&["ip", "addr", "add", "10.0.2.2/24", "dev", "br0"])?;
                Some(("10.0.2.4,10.0.2.254,255.255.255.0,1h", Some("10.0.2.1")))
            }
            _ => None,
        };
        if let Some((range, router)) = dhcp {
            let leases = scratch.join("dnsmasq.leases").display().to_string();
            let mut cmd = Command::new("ip");
            cmd.args([
                "netns",
                "exec",
                &ns,
                "dnsmasq",
                "-k",
                "--conf-file=/dev/null",
            ])
            .args(["--port=0", "--interface=br0", "--bind-interfaces"])
            .arg(format!("--dhcp-range={range}"))
            .arg(format!("--dhcp-leasefile={leases}"))
            .arg("--pid-file=");
            if let Some(r) = router {
                cmd.arg(format!("--dhcp-option=3,{r}"));
            }
            peer.dnsmasq = Some(
                cmd.stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("could not start dnsmasq")?,
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        if routed {
            let (up, host) = (
                uplink.clone().ok_or_else(|| anyhow!("no uplink"))?,
                hostif.clone().ok_or_else(|| anyhow!("no host link"))?,
            );
            sh(&[
                "ip",
                "addr",
                "add",
                &format!("{NAT_EXTERNAL_IP}/24"),
                "dev",
                &up,
            ])?;
            sh(&[
                "ip",
                "addr",
                "add",
                &format!("{NAT_HOST_LINK_IP}/24"),
                "dev",
                &host,
            ])?;
            sh(&[
                "ip",
                "route",
                "add",
                "default",
                "via",
                &NAT_INET_IP.to_string(),
            ])?;
            sh(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
            nft(
                &ns,
                &format!(
                    "table ip vnb {{
  chain pre {{ type nat hook prerouting priority dstnat;
    iifname \"br0\" ip daddr 10.0.2.2 meta l4proto {{ tcp, udp }} dnat to {NAT_HOST_IP}
  }}
  chain post {{ type nat hook postrouting priority srcnat;
    iifname \"{host}\" oifname \"br0\" snat to 10.0.2.2
    oifname \"{up}\" masquerade
    oifname \"{host}\" masquerade
  }}
  chain forward_drop {{ type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname \"br0\" oifname \"br0\" accept
    iifname \"br0\" oifname {{ \"{up}\", \"{host}\" }} accept
    ct status dnat accept
  }}
}}
"
                ),
            )?;
            peer.uplink = Some(up);
            peer.hostif = Some(host);
        }
        Ok(peer)
    }

    /// Add a port-forward rule named `name` to `guest` (from the uplink's external address
    /// and the host link's address); the rule as written.
    ///
    /// # Errors
    /// When the mode has no NAT, or nftables refuses the rule.
    pub fn add_forward(
        &mut self,
        name: &str,
        rule: &ForwardRule,
        guest: Ipv4Addr,
    ) -> Result<String> {
        let (Some(up), Some(host)) = (&self.uplink, &self.hostif) else {
            bail!("the kernel's bridge has no port forwards");
        };
        let proto = rule.proto.name();
        let mut text = Vec::new();
        for (iif, addr) in [(up, NAT_EXTERNAL_IP), (host, NAT_HOST_LINK_IP)] {
            text.push(format!(
                "add rule ip vnb pre iifname \"{iif}\" ip daddr {addr} {proto} dport {} dnat to {guest}:{} comment \"{name}\"",
                rule.host_port, rule.guest_port
            ));
        }
        nft(&self.netns, &(text.join("\n") + "\n"))?;
        Ok(format!(
            "nft DNAT {proto} {NAT_EXTERNAL_IP}:{0} and {NAT_HOST_LINK_IP}:{0} -> {guest}:{1}",
            rule.host_port, rule.guest_port
        ))
    }

    /// Remove the rules named `name`.
    ///
    /// # Errors
    /// When nftables refuses.
    pub fn delete_forward(&mut self, name: &str) -> Result<()> {
        let out = netns_exec(
            &self.netns,
            "nft",
            &["-a", "list", "chain", "ip", "vnb", "pre"],
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        for line in text.lines() {
            if line.contains(&format!("comment \"{name}\"")) {
                if let Some(h) = line.rsplit("# handle ").next() {
                    netns_exec(
                        &self.netns,
                        "nft",
                        &["delete", "rule", "ip", "vnb", "pre", "handle", h.trim()],
                    )?;
                }
            }
        }
        // Flows of the rule (conntrack) stay as Linux keeps them; the next case uses
        // other ports.
        Ok(())
    }
}
