//! The main job's two guests, whatever they are: namespaces joined by veth pairs
//! (`--guest netns`, the default) or QEMU guests on taps (`--guest qemu`), behind one
//! trait, so the job's checks read the same for both and print the same screen.
//!
//! Order of life (both kinds): [`Vms::build`] makes the topology and the guests' links
//! (veth pairs, or taps in the dataplane namespace) before `vnet-bench run` binds them;
//! [`Vms::boot`] then starts QEMU (nothing for namespaces) and gives static addresses.
//! Drop order: QEMU guests, then taps, then the namespaces (the [`Topology`]).

use crate::cli::GuestKind;
use crate::guest::{Accel, Guest, GuestImage, GuestSpec, Tap};
use crate::scenario::{self, Scratch};
use crate::topo::{netns_exec, Endpoint, Topology};
use anyhow::{anyhow, Result};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// What the main job does with a guest.
pub trait JobVm {
    /// `vm1`, `vm2`.
    fn role(&self) -> &str;
    /// Its MAC.
    fn mac(&self) -> &str;
    /// The interface the dataplane binds for it.
    fn dp_ifname(&self) -> &str;
    /// Lease an address by DHCP; the address.
    fn lease(&self) -> Result<String>;
    /// `ping -c COUNT`; the summary when every reply came.
    fn ping(&self, addr: &str, count: u32) -> Option<String>;
    /// A TCP iperf3 client for `secs`; the receiver's rate.
    fn tcp_rate(&self, addr: &str, port: u16, secs: u32) -> Option<String>;
    /// A one-test iperf3 server at `addr:port`.
    fn serve(&self, addr: &str, port: u16) -> Result<()>;
    /// Stop the server on `port`; whether it completed a test.
    fn served(&self, port: u16) -> bool;
    /// Start capturing frames from `mac`.
    fn capture_from(&self, mac: &str) -> Result<()>;
    /// What the capture saw (stops it).
    fn captured(&self) -> String;
    /// Broadcast pings to `bcast` and unicast pings to `addr`, which must reach no one.
    fn probe(&self, bcast: &str, addr: &str);
}

/// A namespace guest (the existing topology's `vm1`, `vm2`).
#[derive(Debug)]
pub struct NetnsVm {
    ep: Endpoint,
    script: String,
    servers: Mutex<HashMap<u16, Child>>,
    sniffer: Mutex<Option<Child>>,
}

impl JobVm for NetnsVm {
    fn role(&self) -> &str {
        &self.ep.role
    }
    fn mac(&self) -> &str {
        &self.ep.mac
    }
    fn dp_ifname(&self) -> &str {
        &self.ep.dp_ifname
    }
    fn lease(&self) -> Result<String> {
        scenario::lease(&self.ep, &self.script)
    }
    fn ping(&self, addr: &str, count: u32) -> Option<String> {
        scenario::ping(&self.ep.netns, addr, count)
    }
    fn tcp_rate(&self, addr: &str, port: u16, secs: u32) -> Option<String> {
        scenario::iperf_client(&self.ep.netns, addr, port, secs)
    }
    fn serve(&self, addr: &str, port: u16) -> Result<()> {
        let c = scenario::iperf_server(&self.ep.netns, addr, port)?;
        self.servers
            .lock()
            .map_err(|_| anyhow!("lock poisoned"))?
            .insert(port, c);
        Ok(())
    }
    fn served(&self, port: u16) -> bool {
        let c = self.servers.lock().ok().and_then(|mut m| m.remove(&port));
        c.map(scenario::server_log)
            .is_some_and(|log| log.contains("receiver"))
    }
    fn capture_from(&self, mac: &str) -> Result<()> {
        let c = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ep.netns,
                "timeout",
                "6",
                "tcpdump",
                "-l",
                "-n",
            ])
            .args(["-c", "1", "-i", &self.ep.ifname, "ether", "src", mac])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        std::thread::sleep(Duration::from_millis(700));
        *self.sniffer.lock().map_err(|_| anyhow!("lock poisoned"))? = Some(c);
        Ok(())
    }
    fn captured(&self) -> String {
        let c = self.sniffer.lock().ok().and_then(|mut s| s.take());
        c.and_then(|c| c.wait_with_output().ok())
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .unwrap_or_default()
    }
    fn probe(&self, bcast: &str, addr: &str) {
        let ns = &self.ep.netns;
        let _ = netns_exec(ns, "ping", &["-c", "2", "-b", "-W", "1", bcast]);
        let _ = netns_exec(ns, "ping", &["-c", "2", "-W", "1", addr]);
    }
}

impl Drop for NetnsVm {
    fn drop(&mut self) {
        if let Ok(mut m) = self.servers.lock() {
            for (_, mut c) in m.drain() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl JobVm for Guest {
    fn role(&self) -> &str {
        self.name()
    }
    fn mac(&self) -> &str {
        Guest::mac(self)
    }
    fn dp_ifname(&self) -> &str {
        self.port()
    }
    fn lease(&self) -> Result<String> {
        Guest::lease(self)
    }
    fn ping(&self, addr: &str, count: u32) -> Option<String> {
        Guest::ping(self, addr, count)
    }
    fn tcp_rate(&self, addr: &str, port: u16, secs: u32) -> Option<String> {
        self.iperf_for(addr, port, secs).ok().map(|t| t.rate())
    }
    fn serve(&self, addr: &str, port: u16) -> Result<()> {
        Guest::serve(self, addr, port)
    }
    fn served(&self, port: u16) -> bool {
        Guest::served(self, port).is_ok()
    }
    fn capture_from(&self, mac: &str) -> Result<()> {
        self.capture(&format!("ether src {mac}"))
    }
    fn captured(&self) -> String {
        Guest::captured(self).unwrap_or_default()
    }
    fn probe(&self, bcast: &str, addr: &str) {
        Guest::probe(self, bcast, addr)
    }
}

/// The job's guests of either kind, and their static addresses (None: DHCP).
#[derive(Debug)]
pub struct Vms {
    statics: Vec<Option<String>>,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Netns(Vec<NetnsVm>),
    Qemu {
        // Field order is drop order: guests before their taps.
        guests: Vec<Guest>,
        taps: Vec<Tap>,
        image: GuestImage,
        dir: Scratch,
        netns: String,
    },
}

impl Vms {
    /// The topology (`PREFIX-dp` and the `others`' namespaces, plus `vm1`/`vm2`
    /// namespaces for `--guest netns`) and the guests' links: veth pairs or taps in the
    /// dataplane namespace. `vms` are `(role, static CIDR)`.
    ///
    /// # Errors
    /// When the topology cannot be built, or (`qemu`) QEMU or the guest image is missing.
    pub fn build(
        kind: GuestKind,
        prefix: &str,
        vms: &[(&str, Option<&str>)],
        others: &[(&str, Option<&str>)],
        scratch: &Scratch,
    ) -> Result<(Topology, Vms)> {
        let statics = vms.iter().map(|(_, a)| a.map(str::to_string)).collect();
        match kind {
            GuestKind::Netns => {
                let all: Vec<(&str, Option<&str>)> = vms.iter().chain(others).copied().collect();
                let topo = Topology::build(prefix, &all)?;
                let script = scenario::udhcpc_script(scratch)?;
                let list = vms
                    .iter()
                    .map(|(r, _)| NetnsVm {
                        ep: topo.endpoint(r).clone(),
                        script: script.clone(),
                        servers: Mutex::new(HashMap::new()),
                        sniffer: Mutex::new(None),
                    })
                    .collect();
                Ok((
                    topo,
                    Vms {
                        statics,
                        kind: Kind::Netns(list),
                    },
                ))
            }
            GuestKind::Qemu => {
                crate::guest::qemu::require_qemu()?;
                let image = GuestImage::for_current_exe()?;
                let topo = Topology::build(prefix, others)?;
                let mut taps = Vec::new();
                for i in 0..vms.len() {
                    taps.push(Tap::create(
                        topo.dp_netns(),
                        &format!("{prefix}t{}", i + 1),
                    )?);
                }
                let kind = Kind::Qemu {
                    guests: Vec::new(),
                    taps,
                    image,
                    dir: Scratch::new("guests")?,
                    netns: topo.dp_netns().to_string(),
                };
                Ok((topo, Vms { statics, kind }))
            }
        }
    }

    /// The interfaces the dataplane binds, in VM order.
    pub fn dp_ifnames(&self) -> Vec<String> {
        match &self.kind {
            Kind::Netns(l) => l.iter().map(|v| v.ep.dp_ifname.clone()).collect(),
            Kind::Qemu { taps, .. } => taps.iter().map(|t| t.name().to_string()).collect(),
        }
    }

    /// Start the QEMU guests (in parallel, once the dataplane has bound their taps) and
    /// give static addresses; prints the accelerator. Nothing to do for namespaces.
    ///
    /// # Errors
    /// When a guest does not boot or an address cannot be set.
    pub fn boot(&mut self) -> Result<()> {
        let Kind::Qemu {
            guests,
            taps,
            image,
            dir,
            netns,
        } = &mut self.kind
        else {
            return Ok(());
        };
        let (accel, why) = Accel::choose(image);
        println!("  QEMU guests: accelerator {} ({why})", accel.as_str());
        let specs = GuestSpec::on_taps(taps);
        let started = std::time::Instant::now();
        *guests = Guest::boot_all(&specs, netns, image, accel, &dir.join(""))?;
        println!(
            "  QEMU guests: vm1, vm2 booted in {:.1} s (virtio-net at QEMU's default offloads)",
            started.elapsed().as_secs_f64()
        );
        for (g, a) in guests.iter().zip(&self.statics) {
            if let Some(cidr) = a {
                g.set_static(cidr, None)?;
            }
        }
        Ok(())
    }

    /// Guest `i` (0: vm1).
    ///
    /// # Panics
    /// When there is no such guest or the QEMU guests are not booted.
    pub fn vm(&self, i: usize) -> &dyn JobVm {
        match &self.kind {
            Kind::Netns(l) => &l[i],
            Kind::Qemu { guests, .. } => &guests[i],
        }
    }
}
