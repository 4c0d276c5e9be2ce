//! Ports that are vhost-user sockets, not interfaces: `--vm vhost-user:PATH` (vnet
//! listens at PATH, the frontend connects: QEMU's default, DPDK's `virtio_user`) and
//! `--vm vhost-user-client:PATH` (QEMU listens with `server=on`, vnet connects and
//! reconnects).
//!
//! Such a port has no interface: the interface checks, NAPI settings, ownership records
//! and the link watcher leave it out, and it never goes "down"; a guest that is not
//! connected or not reading simply takes no frames (they are dropped as `tx_full`).

use std::path::PathBuf;
use vnet_core::port::vhost::Role;

/// The socket and role of a `vhost-user:`/`vhost-user-client:` port name; `None` for an
/// interface name.
pub fn spec(name: &str) -> Option<(PathBuf, Role)> {
    if let Some(p) = name.strip_prefix("vhost-user-client:") {
        return Some((PathBuf::from(p), Role::Client));
    }
    name.strip_prefix("vhost-user:")
        .map(|p| (PathBuf::from(p), Role::Server))
}

/// Whether `name` names a vhost-user socket rather than an interface.
pub fn is_vhost(name: &str) -> bool {
    spec(name).is_some()
}

/// The names that are interfaces.
pub fn interfaces(names: &[String]) -> impl Iterator<Item = &str> {
    names.iter().map(String::as_str).filter(|n| !is_vhost(n))
}

/// Check every socket of `names` ([`check`]), and that no socket is named twice (two
/// ports on one socket would take each other's frontend).
pub fn check_all(names: &[String]) -> anyhow::Result<()> {
    for (i, n) in names.iter().enumerate() {
        check(n)?;
        if let Some((path, _)) = spec(n) {
            if names[..i]
                .iter()
                .any(|m| spec(m).is_some_and(|(p, _)| p == path))
            {
                anyhow::bail!(
                    "the vhost-user socket {} is named twice; give each VM its own socket",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

/// Check a socket path before anything is opened: it must be absolute or relative to
/// an existing directory, and (server) not an existing non-socket file.
pub fn check(name: &str) -> anyhow::Result<()> {
    let Some((path, role)) = spec(name) else {
        return Ok(());
    };
    if path.as_os_str().is_empty() {
        anyhow::bail!("{name}: give the socket's path, e.g. vhost-user:/run/vnet/vm1.sock");
    }
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        if !d.is_dir() {
            anyhow::bail!(
                "{name}: directory {} does not exist; create it or give another path",
                d.display()
            );
        }
    }
    if role == Role::Server {
        use std::os::unix::fs::FileTypeExt;
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            if !m.file_type().is_socket() {
                anyhow::bail!(
                    "{name}: {} exists and is not a socket; remove it or give another path",
                    path.display()
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_bad_paths_are_refused_in_one_sentence() {
        assert_eq!(
            spec("vhost-user:/tmp/a.sock"),
            Some((PathBuf::from("/tmp/a.sock"), Role::Server))
        );
        assert_eq!(
            spec("vhost-user-client:/tmp/b.sock"),
            Some((PathBuf::from("/tmp/b.sock"), Role::Client))
        );
        assert_eq!(spec("veth0"), None);
        let names = vec!["veth0".to_string(), "vhost-user:/x".to_string()];
        assert_eq!(interfaces(&names).collect::<Vec<_>>(), ["veth0"]);
        let e = check("vhost-user:/no/such/dir/a.sock")
            .unwrap_err()
            .to_string();
        assert!(e.contains("directory /no/such/dir does not exist"), "{e}");
        assert!(check("vhost-user:").is_err());
        let e = check("vhost-user:/etc/hostname").unwrap_err().to_string();
        assert!(e.contains("is not a socket"), "{e}");
        assert!(check("vhost-user:/tmp/vnet-test-not-there.sock").is_ok());
        let twice = vec![
            "vhost-user:/tmp/vnet-a.sock".to_string(),
            "vhost-user-client:/tmp/vnet-a.sock".to_string(),
        ];
        let e = check_all(&twice).unwrap_err().to_string();
        assert!(e.contains("/tmp/vnet-a.sock is named twice"), "{e}");
        assert!(check_all(&names).is_ok());
    }
}
