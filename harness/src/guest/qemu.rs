//! One QEMU process: a guest on a tap or a vhost-user socket, killed on drop.
//!
//! The NIC is `virtio-net-pci` with QEMU's default offloads: the command line carries no
//! `csum=`, `gso=`, `guest_*` or `host_*` option, so the guest negotiates checksum
//! offload and TSO as any VM would (a unit test holds this). On a tap:
//! `-netdev tap,...,vhost=off` (`/dev/vhost-net` may be absent). On vhost-user: the
//! guest's memory is a shared memfd (the dataplane maps it), `-netdev vhost-user` on a
//! socket chardev that reconnects every second (QEMU waits at start until the dataplane
//! is there; QEMU 7.2 does not survive the dataplane's restart, so callers boot the
//! guest again then). The agent's virtio-serial
//! port is a unix socket QEMU listens on (`server=on,wait=off`); the serial console and
//! QEMU's own messages go to files in the guest's folder.

use super::accel::Accel;
use super::image::GuestImage;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// Fail with one sentence unless QEMU is installed.
///
/// # Errors
/// When `qemu-system-x86_64` cannot be started.
pub fn require_qemu() -> Result<()> {
    let ok = Command::new(QEMU)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        bail!("{QEMU} is missing; install the Debian package qemu-system-x86 (bash ci/bootstrap.sh does)");
    }
    Ok(())
}

/// How a guest's NIC reaches the dataplane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nic {
    /// A tap in the dataplane's namespace (the kernel in the frame path).
    Tap(String),
    /// A vhost-user socket the dataplane listens on (`--vm vhost-user:PATH`).
    VhostUser(PathBuf),
}

impl Nic {
    /// What `vnet-bench run --vm` takes for this NIC.
    pub fn port_arg(&self) -> String {
        match self {
            Nic::Tap(t) => t.clone(),
            Nic::VhostUser(p) => format!("vhost-user:{}", p.display()),
        }
    }
}

/// Guest memory in MiB (shared with the dataplane on vhost-user).
const MEMORY_MIB: u32 = 256;

/// What one guest is launched with.
#[derive(Debug, Clone)]
pub struct QemuConfig<'a> {
    /// Its name (the guest's host name, the files' names).
    pub name: &'a str,
    /// The namespace QEMU runs in (where the tap is).
    pub netns: &'a str,
    /// How its NIC reaches the dataplane.
    pub nic: &'a Nic,
    /// The NIC's MAC address.
    pub mac: &'a str,
    /// Queue pairs of a vhost-user NIC (QEMU's `queues=`; `mq=on` above 1), and the
    /// guest's vCPUs (a Linux guest enables one pair per vCPU).
    pub queue_pairs: u8,
    /// Kernel and initramfs.
    pub image: &'a GuestImage,
    /// KVM or TCG.
    pub accel: Accel,
    /// Folder for the agent socket, the console log and QEMU's messages.
    pub dir: &'a Path,
}

/// QEMU's arguments for a guest.
pub fn args(cfg: &QemuConfig<'_>) -> Vec<String> {
    let d = |f: &str| {
        cfg.dir
            .join(format!("{}.{f}", cfg.name))
            .display()
            .to_string()
    };
    let mut a: Vec<String> = vec![
        "-accel".into(),
        cfg.accel.as_str().into(),
        "-m".into(),
        MEMORY_MIB.to_string(),
        "-smp".into(),
        cfg.queue_pairs.max(1).to_string(),
        "-nodefaults".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        cfg.image.kernel.display().to_string(),
        "-initrd".into(),
        cfg.image.initrd.display().to_string(),
        "-append".into(),
        format!("console=ttyS0 quiet panic=-1 vnet.name={}", cfg.name),
        "-serial".into(),
        format!("file:{}", d("console")),
        "-device".into(),
        "virtio-serial-pci".into(),
        "-chardev".into(),
        format!("socket,id=agent,path={},server=on,wait=off", d("agent")),
        "-device".into(),
        "virtserialport,chardev=agent,name=vnet.agent".into(),
    ];
    match cfg.nic {
        Nic::Tap(tap) => a.extend([
            "-netdev".into(),
            format!("tap,id=net0,ifname={tap},script=no,downscript=no,vhost=off"),
        ]),
        Nic::VhostUser(sock) => a.extend([
            "-object".into(),
            format!("memory-backend-memfd,id=mem,size={MEMORY_MIB}M,share=on"),
            "-numa".into(),
            "node,memdev=mem".into(),
            "-chardev".into(),
            format!("socket,id=vu0,path={},reconnect=1", sock.display()),
            "-netdev".into(),
            match cfg.queue_pairs {
                0 | 1 => "vhost-user,id=net0,chardev=vu0".into(),
                n => format!("vhost-user,id=net0,chardev=vu0,queues={n}"),
            },
        ]),
    }
    // QEMU 7.2 (Debian 12) under TCG dereferences a null irqfd table when vhost-user
    // starts with MSI-X (a segfault in msix_set_vector_notifiers): legacy interrupts
    // there. Offloads are untouched.
    let vectors = match (cfg.nic, cfg.accel) {
        (Nic::VhostUser(_), Accel::Tcg) => ",vectors=0",
        _ => "",
    };
    let mq = match (cfg.nic, cfg.queue_pairs) {
        (Nic::VhostUser(_), 2..) => ",mq=on",
        _ => "",
    };
    a.extend([
        "-device".into(),
        format!("virtio-net-pci,netdev=net0,mac={}{vectors}{mq}", cfg.mac),
    ]);
    a
}

/// A running QEMU; killed on drop.
#[derive(Debug)]
pub struct Qemu {
    child: Child,
    name: String,
    console: PathBuf,
    messages: PathBuf,
    agent: PathBuf,
}

impl Qemu {
    /// Start QEMU for `cfg` in its namespace.
    ///
    /// # Errors
    /// When QEMU cannot be started.
    pub fn spawn(cfg: &QemuConfig<'_>) -> Result<Qemu> {
        let file = |f: &str| cfg.dir.join(format!("{}.{f}", cfg.name));
        let (console, messages, agent) = (file("console"), file("qemu.log"), file("agent"));
        let _ = std::fs::remove_file(&agent);
        let log = std::fs::File::create(&messages)
            .with_context(|| format!("cannot write {}", messages.display()))?;
        let child = Command::new("ip")
            .args(["netns", "exec", cfg.netns, QEMU])
            .args(args(cfg))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("could not start {QEMU} for {}", cfg.name))?;
        crate::interrupt::register(child.id());
        Ok(Qemu {
            child,
            name: cfg.name.to_string(),
            console,
            messages,
            agent,
        })
    }

    /// The agent's unix socket.
    pub fn agent_socket(&self) -> &Path {
        &self.agent
    }

    /// The serial console's log.
    pub fn console(&self) -> &Path {
        &self.console
    }

    /// Fail with QEMU's last words when it has exited.
    ///
    /// # Errors
    /// When QEMU is no longer running.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "QEMU of guest {} exited ({status}): {} {}",
                self.name,
                tail(&self.messages),
                tail(&self.console)
            );
        }
        Ok(())
    }

    /// The last lines of the console and of QEMU's messages (for error reports).
    pub fn last_words(&self) -> String {
        format!(
            "console: {} qemu: {}",
            tail(&self.console),
            tail(&self.messages)
        )
    }
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        crate::interrupt::unregister(self.child.id());
        let _ = std::fs::remove_file(&self.agent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_keeps_qemus_default_offloads() {
        let image = GuestImage {
            kernel: "/k".into(),
            initrd: "/i".into(),
        };
        let nic = Nic::Tap("tap0".into());
        let cfg = QemuConfig {
            name: "vm1",
            netns: "ns",
            nic: &nic,
            mac: "02:00:00:00:00:01",
            queue_pairs: 1,
            image: &image,
            accel: Accel::Tcg,
            dir: Path::new("/tmp"),
        };
        let a = args(&cfg).join(" ");
        assert!(a.contains("-netdev tap,id=net0,ifname=tap0,script=no,downscript=no,vhost=off"));
        assert!(a.ends_with("-device virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01"));
        for off in ["csum", "gso", "guest_", "host_", "mrg_rxbuf"] {
            assert!(!a.contains(off), "offload option {off} in {a}");
        }
        assert!(a.contains("-accel tcg"));
        let nic = Nic::VhostUser("/run/vm1.sock".into());
        let a = args(&QemuConfig { nic: &nic, ..cfg }).join(" ");
        assert!(a.contains(
            "-object memory-backend-memfd,id=mem,size=256M,share=on -numa node,memdev=mem"
        ));
        assert!(a.contains("-chardev socket,id=vu0,path=/run/vm1.sock,reconnect=1 -netdev vhost-user,id=net0,chardev=vu0"));
        assert!(a.ends_with("-device virtio-net-pci,netdev=net0,mac=02:00:00:00:00:01,vectors=0"));
        for off in ["csum", "gso", "guest_", "host_", "mrg_rxbuf"] {
            assert!(!a.contains(off), "offload option {off} in {a}");
        }
        assert_eq!(nic.port_arg(), "vhost-user:/run/vm1.sock");
        let a = args(&QemuConfig {
            nic: &nic,
            queue_pairs: 2,
            ..cfg
        })
        .join(" ");
        assert!(a.contains("-netdev vhost-user,id=net0,chardev=vu0,queues=2 "));
        assert!(a.ends_with(",vectors=0,mq=on"), "{a}");
    }
}
