//! KVM or TCG: KVM only when `/dev/kvm` exists and a guest really boots with it.
//!
//! A nested KVM may accept `-accel kvm` and still fail (`-cpu host`: "failed to set MSR")
//! or hang in early boot (the default CPU model), so the probe boots the guest image with
//! `vnet.probe` (its init powers off at once) and takes KVM only when QEMU exits cleanly
//! within [`PROBE_LIMIT`]. `VNET_QEMU_ACCEL=kvm|tcg` skips the probe. The choice is made
//! once per process.

use super::image::GuestImage;
use super::qemu::QEMU;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long a KVM boot may take before KVM is judged not to work.
pub const PROBE_LIMIT: Duration = Duration::from_secs(8);

/// QEMU's accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualisation.
    Kvm,
    /// QEMU's translator (works everywhere, slower).
    Tcg,
}

impl Accel {
    /// As `-accel` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }

    /// The accelerator for this process, and why (probed once).
    pub fn choose(image: &GuestImage) -> (Accel, String) {
        static CHOICE: OnceLock<(Accel, String)> = OnceLock::new();
        CHOICE.get_or_init(|| decide(image)).clone()
    }
}

fn decide(image: &GuestImage) -> (Accel, String) {
    match std::env::var("VNET_QEMU_ACCEL").as_deref() {
        Ok("kvm") => return (Accel::Kvm, "VNET_QEMU_ACCEL=kvm".into()),
        Ok("tcg") => return (Accel::Tcg, "VNET_QEMU_ACCEL=tcg".into()),
        _ => {}
    }
    if !std::path::Path::new("/dev/kvm").exists() {
        return (Accel::Tcg, "no /dev/kvm".into());
    }
    match probe_kvm(image) {
        Ok(t) => (
            Accel::Kvm,
            format!("a KVM guest booted in {:.1} s", t.as_secs_f64()),
        ),
        Err(why) => (Accel::Tcg, format!("/dev/kvm is there but {why}")),
    }
}

fn probe_kvm(image: &GuestImage) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new(QEMU)
        .args([
            "-accel",
            "kvm",
            "-m",
            "256",
            "-nodefaults",
            "-display",
            "none",
        ])
        .args(["-no-reboot", "-serial", "null", "-kernel"])
        .arg(&image.kernel)
        .arg("-initrd")
        .arg(&image.initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1 vnet.probe"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("QEMU could not start ({e})"))?;
    while start.elapsed() < PROBE_LIMIT {
        match child.try_wait() {
            Ok(Some(s)) if s.success() => return Ok(start.elapsed()),
            Ok(Some(s)) => return Err(format!("a KVM guest failed to start ({s})")),
            Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    Err(format!(
        "a KVM guest did not boot within {} s",
        PROBE_LIMIT.as_secs()
    ))
}
