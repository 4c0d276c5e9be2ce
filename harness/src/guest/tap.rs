//! A tap interface inside one of the harness's namespaces, deleted on drop.
//!
//! The tap is made persistent (`ip tuntap add mode tap`) before QEMU opens it, so that
//! `vnet-bench run` can bind AF_XDP to it first; QEMU attaches to it by name. The host
//! side carries no address and no IPv6, so the namespace's own stack sends nothing to
//! the guest.

use crate::topo::{ip, netns_exec};
use anyhow::{bail, Result};

/// A persistent tap in a namespace.
#[derive(Debug)]
pub struct Tap {
    netns: String,
    name: String,
}

impl Tap {
    /// Create tap `name` in `netns` and set it up.
    ///
    /// # Errors
    /// When the name is not a valid interface name or `ip` refuses (not root, taken).
    pub fn create(netns: &str, name: &str) -> Result<Tap> {
        if name.is_empty() || name.len() > 15 || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            bail!("tap name must be 1-15 letters or digits, got {name:?}");
        }
        ip(&["-n", netns, "tuntap", "add", "mode", "tap", "name", name])?;
        let tap = Tap {
            netns: netns.to_string(),
            name: name.to_string(),
        };
        let _ = netns_exec(
            netns,
            "sysctl",
            &["-q", "-w", &format!("net.ipv6.conf.{name}.disable_ipv6=1")],
        );
        ip(&["-n", netns, "link", "set", name, "up"])?;
        Ok(tap)
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its namespace.
    pub fn netns(&self) -> &str {
        &self.netns
    }
}

impl Drop for Tap {
    fn drop(&mut self) {
        let _ = ip(&["-n", &self.netns, "link", "del", &self.name]);
    }
}
