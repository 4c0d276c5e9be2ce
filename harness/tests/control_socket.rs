//! The NAT control socket's access rules with a real unprivileged client: `vnet-bench
//! natpf` run as `nobody` (through `setpriv`) is refused with the sentence that says what
//! to do, root is served, and `--control-group` lets the group in.
//!
//! Needs root (to switch users); skipped otherwise, failed instead when
//! `VNET_REQUIRE_PRIVILEGED` is set.

mod common;

use std::net::Ipv4Addr;
use std::process::Command;
use vnet_bench::control::{request, ControlServer};
use vnet_core::time::Instant;
use vnet_modes::natmode::{NatFlavor, NatModeConfig, NatSpec};

/// `nobody` and `nogroup` on Debian.
const NOBODY: u32 = 65534;

fn natpf_as_nobody(path: &std::path::Path, rule: &str) -> std::process::Output {
    Command::new("setpriv")
        .args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            env!("CARGO_BIN_EXE_vnet-bench"),
            "natpf",
            "--control",
            path.to_str().unwrap(),
            "add",
            rule,
        ])
        .output()
        .expect("setpriv runs (util-linux)")
}

#[test]
fn only_root_or_the_control_group_may_change_port_forwards() {
    if !common::privileged_or_skip("only_root_or_the_control_group_may_change_port_forwards") {
        return;
    }
    let dir = common::TempDir::new("ctl");
    let path = dir.join("nat.sock");
    let spec = || {
        let config = NatModeConfig::new(
            NatFlavor::PerVm,
            1,
            Ipv4Addr::new(198, 18, 0, 2),
            Ipv4Addr::new(198, 18, 0, 1),
        );
        NatSpec::new(config, 1, Instant::now()).expect("a valid NAT")
    };
    // The temporary folder must let `nobody` reach the socket: only the socket's own
    // mode is under test.
    std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();

    let srv = ControlServer::start(&path, &spec(), None).expect("listens");
    let out = natpf_as_nobody(&path, "web,tcp,,8080,,80");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nobody added a rule: {err}");
    assert!(err.contains("permission denied on"), "{err}");
    assert_eq!(request(&path, "list").unwrap(), "", "nothing was added");
    assert_eq!(
        request(&path, "add web,tcp,,8080,,80").unwrap(),
        "added web"
    );
    drop(srv);

    let srv = ControlServer::start(&path, &spec(), Some(NOBODY)).expect("listens");
    let out = natpf_as_nobody(&path, "web,tcp,,8080,,80");
    assert!(
        out.status.success(),
        "a member of the control group was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        request(&path, "list").unwrap(),
        "web,tcp,,8080,10.0.2.15,80"
    );
    drop(srv);
}
