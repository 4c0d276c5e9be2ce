//! Checks made before touching the kernel, so that a user gets one plain sentence
//! instead of a libbpf error code.

use anyhow::{bail, Result};
use std::ffi::CString;

/// Whether the process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fail unless the process is root.
pub fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!("{what} needs root (it binds AF_XDP sockets and changes interface settings); run it as root, or use `--backend mem`");
    }
    Ok(())
}

/// Whether the kernel has AF_XDP sockets.
pub fn has_af_xdp() -> bool {
    // SAFETY: plain socket(2) call; the descriptor is closed right away.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return std::io::Error::last_os_error().raw_os_error() != Some(libc::EAFNOSUPPORT);
    }
    // SAFETY: `fd` is a descriptor this function owns.
    unsafe { libc::close(fd) };
    true
}

/// Fail unless the kernel has AF_XDP.
pub fn require_af_xdp() -> Result<()> {
    if !has_af_xdp() {
        bail!("this kernel has no AF_XDP sockets (CONFIG_XDP_SOCKETS); use a kernel with XDP sockets, or `--backend mem`");
    }
    Ok(())
}

/// Fail unless every named interface exists in the current network namespace.
pub fn require_interfaces<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !seen.insert(name) {
            bail!(
                "interface {name} is named twice; give each --vm/--host/--uplink its own interface"
            );
        }
        let c = CString::new(name).map_err(|_| anyhow::anyhow!("bad interface name {name:?}"))?;
        // SAFETY: `c` is a valid NUL-terminated string.
        if unsafe { libc::if_nametoindex(c.as_ptr()) } == 0 {
            bail!("no interface named {name} in this network namespace; create it or pass another name");
        }
    }
    Ok(())
}

/// Fail when an XDP program is already attached to one of the interfaces and another
/// `vnet-bench run` (alive) or any other program holds it; detach the program a killed
/// run left (see [`crate::owner`]). Asked through rtnetlink, before anything is bound,
/// so that the other program is left alone. Returns a line per program detached.
pub fn free_interfaces<'a>(
    names: impl IntoIterator<Item = &'a str>,
    state_dir: Option<&std::path::Path>,
) -> Result<Vec<String>> {
    use crate::owner::{self, Holder};
    use vnet_core::port::xdp::{attached_program, detach_program, LinkProbe, LinkStatus};
    let mut probe = LinkProbe::new();
    let mut lines = Vec::new();
    for name in names {
        let attached = attached_program(name).map_err(|e| anyhow::anyhow!("{e}"))?;
        let ifindex = match probe.status(name) {
            LinkStatus::Present { ifindex, .. } => ifindex,
            LinkStatus::Gone => 0,
        };
        let record = state_dir.and_then(|d| owner::read(d, name));
        match owner::judge(ifindex, attached, record, owner::alive) {
            Holder::Free => {}
            Holder::Run { pid } => bail!(
                "interface {name} is bound by another vnet-bench run (pid {pid}); stop that run first, or give this one other interfaces"
            ),
            Holder::Other { prog, mode } => bail!(
                "interface {name} already has an XDP program attached ({mode} mode, program id {prog}) that no vnet-bench run owns, so another XDP or AF_XDP program uses it; stop that program (or detach it with `ip link set dev {name} xdp off`) and retry"
            ),
            Holder::Leftover { pid, prog } => {
                detach_program(name, prog).map_err(|e| anyhow::anyhow!("{e}"))?;
                if let Some(d) = state_dir {
                    owner::remove(d, name);
                }
                lines.push(format!(
                    "{name}: detached the XDP program (id {prog}) a killed run (pid {pid}) left"
                ));
            }
        }
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_interface_is_one_sentence_naming_it() {
        let err = require_interfaces(["vnb-no-such0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no interface named vnb-no-such0"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn duplicate_interface_is_refused() {
        let err = require_interfaces(["lo", "lo"]).unwrap_err().to_string();
        assert!(err.contains("named twice"), "{err}");
    }

    #[test]
    fn loopback_exists() {
        require_interfaces(["lo"]).unwrap();
        assert!(free_interfaces(["lo"], None).unwrap().is_empty());
    }
}
