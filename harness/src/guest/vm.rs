//! A booted guest and what the checks do with it: addresses (DHCP or static), ping,
//! iperf3 transfers with their byte counts, DNS, capture. Every operation goes through
//! the agent and returns what it observed; none panics.

use super::accel::Accel;
use super::agent::{Agent, Reply};
use super::image::GuestImage;
use super::qemu::{Nic, Qemu, QemuConfig};
use anyhow::{anyhow, bail, Context, Result};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// How long a guest may take from QEMU's start to its agent's first answer.
pub const BOOT_LIMIT: Duration = Duration::from_secs(90);

/// One guest to launch.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// Its name (`vm1`...).
    pub name: String,
    /// How its NIC reaches the dataplane.
    pub nic: Nic,
    /// Its MAC address.
    pub mac: String,
    /// Queue pairs of its NIC on vhost-user (QEMU's `queues=`, `mq=on` above 1), and
    /// as many vCPUs.
    pub queue_pairs: u8,
}

impl GuestSpec {
    /// One guest per tap, named `vm1`, `vm2`... with the harness's fixed MACs
    /// (`02:76:71:00:00:0N`), so that runs repeat.
    pub fn on_taps(taps: &[super::Tap]) -> Vec<GuestSpec> {
        Self::on_nics(taps.iter().map(|t| Nic::Tap(t.name().to_string())))
    }

    /// One guest per vhost-user socket (the dataplane listens on each), named and
    /// addressed as [`GuestSpec::on_taps`] does.
    pub fn on_vhost_user(sockets: &[std::path::PathBuf]) -> Vec<GuestSpec> {
        Self::on_nics(sockets.iter().cloned().map(Nic::VhostUser))
    }

    fn on_nics(nics: impl Iterator<Item = Nic>) -> Vec<GuestSpec> {
        nics.enumerate()
            .map(|(i, nic)| GuestSpec {
                name: format!("vm{}", i + 1),
                nic,
                mac: format!("02:76:71:00:00:{:02x}", i + 1),
                queue_pairs: 1,
            })
            .collect()
    }
}

/// An iperf3 transfer as the client saw it: what it sent, what the receiving side
/// reported, the rate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transfer {
    /// Bytes sent by the sending side.
    pub sent: u64,
    /// Bytes the receiving side received.
    pub received: u64,
    /// Receiver's rate, bits per second.
    pub bits_per_second: f64,
}

impl Transfer {
    /// Read iperf3's `-J` output (client side).
    ///
    /// # Errors
    /// When iperf3 reported an error or the JSON lacks the totals.
    pub fn from_iperf_json(text: &str) -> Result<Transfer> {
        let start = text
            .find('{')
            .ok_or_else(|| anyhow!("iperf3 printed no JSON: {}", text.trim()))?;
        let v: serde_json::Value = serde_json::from_str(&text[start..])
            .map_err(|e| anyhow!("iperf3's JSON does not parse ({e})"))?;
        if let Some(err) = v.get("error").and_then(|e| e.as_str()) {
            bail!("iperf3: {err}");
        }
        let end = &v["end"];
        let (sent, recv) = if end.get("sum_sent").is_some() {
            (&end["sum_sent"], &end["sum_received"])
        } else {
            (&end["sum"], &end["sum"])
        };
        let get = |o: &serde_json::Value, k: &str| o.get(k).and_then(|x| x.as_f64());
        Ok(Transfer {
            sent: get(sent, "bytes").ok_or_else(|| anyhow!("iperf3's JSON has no sent bytes"))?
                as u64,
            received: get(recv, "bytes")
                .ok_or_else(|| anyhow!("iperf3's JSON has no received bytes"))?
                as u64,
            bits_per_second: get(recv, "bits_per_second").unwrap_or(0.0),
        })
    }

    /// The rate as iperf3 prints it (`1.23 Gbits/sec`).
    pub fn rate(&self) -> String {
        let b = self.bits_per_second;
        if b >= 1e9 {
            format!("{:.2} Gbits/sec", b / 1e9)
        } else {
            format!("{:.0} Mbits/sec", b / 1e6)
        }
    }
}

/// A running guest: QEMU on its tap, and its agent. QEMU is killed on drop.
#[derive(Debug)]
pub struct Guest {
    name: String,
    mac: String,
    port: String,
    tap: Option<String>,
    qemu: Mutex<Option<Qemu>>,
    agent: Mutex<Agent>,
    launch: Launch,
}

/// What a guest was launched with (to launch it again).
#[derive(Debug, Clone)]
struct Launch {
    spec: GuestSpec,
    netns: String,
    image: GuestImage,
    accel: Accel,
    dir: std::path::PathBuf,
}

/// Start a QEMU per launch and wait until every agent answers (in parallel).
fn boot(launches: &[Launch]) -> Result<Vec<(Qemu, Agent)>> {
    let mut qemus = Vec::new();
    for l in launches {
        qemus.push(Qemu::spawn(&QemuConfig {
            name: &l.spec.name,
            netns: &l.netns,
            nic: &l.spec.nic,
            mac: &l.spec.mac,
            queue_pairs: l.spec.queue_pairs,
            image: &l.image,
            accel: l.accel,
            dir: &l.dir,
        })?);
    }
    let booted: Vec<Result<(Qemu, Agent)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = qemus
            .into_iter()
            .map(|mut q| {
                scope.spawn(move || {
                    let path = q.agent_socket().to_path_buf();
                    let agent = Agent::connect(&path, BOOT_LIMIT, &mut || q.check_alive());
                    match agent {
                        Ok(a) => Ok((q, a)),
                        Err(e) => {
                            Err(e.context(format!("guest did not boot ({})", q.last_words())))
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a boot thread panicked")))
            })
            .collect()
    });
    launches
        .iter()
        .zip(booted)
        .map(|(l, b)| b.with_context(|| format!("guest {}", l.spec.name)))
        .collect()
}

impl Guest {
    /// Launch every guest in `netns` at once and wait until all agents answer.
    ///
    /// # Errors
    /// When a QEMU does not start or a guest does not boot within [`BOOT_LIMIT`]; the
    /// guests already started are killed.
    pub fn boot_all(
        specs: &[GuestSpec],
        netns: &str,
        image: &GuestImage,
        accel: Accel,
        dir: &Path,
    ) -> Result<Vec<Guest>> {
        let launches: Vec<Launch> = specs
            .iter()
            .map(|s| Launch {
                spec: s.clone(),
                netns: netns.to_string(),
                image: image.clone(),
                accel,
                dir: dir.to_path_buf(),
            })
            .collect();
        let booted = boot(&launches)?;
        Ok(launches
            .into_iter()
            .zip(booted)
            .map(|(l, (qemu, agent))| Guest {
                name: l.spec.name.clone(),
                mac: l.spec.mac.clone(),
                port: l.spec.nic.port_arg(),
                tap: match &l.spec.nic {
                    Nic::Tap(t) => Some(t.clone()),
                    Nic::VhostUser(_) => None,
                },
                qemu: Mutex::new(Some(qemu)),
                agent: Mutex::new(agent),
                launch: l,
            })
            .collect())
    }

    /// Power every guest of `guests` off and boot it again, all at once (a fresh QEMU:
    /// on vhost-user, a dataplane that restarted is met by a QEMU that connects anew).
    ///
    /// # Errors
    /// As [`Guest::boot_all`].
    pub fn reboot_all(guests: &[Guest]) -> Result<()> {
        for g in guests {
            g.power_off();
        }
        let launches: Vec<Launch> = guests.iter().map(|g| g.launch.clone()).collect();
        let booted = boot(&launches)?;
        for (g, (qemu, agent)) in guests.iter().zip(booted) {
            *g.qemu.lock().unwrap_or_else(|e| e.into_inner()) = Some(qemu);
            *g.agent.lock().unwrap_or_else(|e| e.into_inner()) = agent;
        }
        Ok(())
    }

    /// Kill the guest's QEMU (its agent then answers nothing until [`Guest::reboot_all`]).
    pub fn power_off(&self) {
        self.qemu.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its MAC.
    pub fn mac(&self) -> &str {
        &self.mac
    }

    /// Its port as `vnet-bench run --vm` takes it (a tap, or `vhost-user:PATH`).
    pub fn port(&self) -> &str {
        &self.port
    }

    /// Its tap, when it is on one.
    pub fn tap(&self) -> Option<&str> {
        self.tap.as_deref()
    }

    /// Run a shell command in the guest, killed after `secs`.
    ///
    /// # Errors
    /// When the agent does not answer (QEMU gone, guest hung).
    pub fn sh(&self, cmd: &str, secs: u64) -> Result<Reply> {
        let mut agent = self
            .agent
            .lock()
            .map_err(|_| anyhow!("agent lock poisoned"))?;
        let r = agent.run(cmd, Duration::from_secs(secs));
        if r.is_err() {
            if let Ok(mut q) = self.qemu.lock() {
                match q.as_mut() {
                    Some(q) => q.check_alive()?,
                    None => bail!("guest {} is powered off", self.name),
                }
            }
        }
        r.with_context(|| format!("guest {}", self.name))
    }

    /// Run a command that must succeed; its output.
    ///
    /// # Errors
    /// When it fails, with its output.
    pub fn sh_ok(&self, cmd: &str, secs: u64) -> Result<String> {
        let r = self.sh(cmd, secs)?;
        if !r.ok() {
            bail!(
                "`{cmd}` failed in {} ({}): {}",
                self.name,
                r.status,
                r.output.trim()
            );
        }
        Ok(r.output)
    }

    /// Forget the network configuration (addresses, routes, neighbours, DHCP client,
    /// servers left running), keeping eth0 up.
    ///
    /// # Errors
    /// When the agent does not answer.
    pub fn reset_net(&self) -> Result<()> {
        self.sh(
            "killall -q udhcpc iperf3 tcpdump; ip -4 addr flush dev eth0; ip route flush dev eth0; ip neigh flush dev eth0; : >/etc/resolv.conf; ip link set eth0 up",
            10,
        )?;
        Ok(())
    }

    /// Wait until eth0 has carrier (on vhost-user: QEMU has reconnected to the
    /// dataplane and started its rings).
    ///
    /// # Errors
    /// When it has none after `limit`, or the agent does not answer.
    pub fn wait_carrier(&self, limit: Duration) -> Result<()> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let r = self.sh("cat /sys/class/net/eth0/carrier", 5)?;
            if r.output.trim() == "1" {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                bail!(
                    "{}: eth0 has no carrier after {} s",
                    self.name,
                    limit.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Lease an address with udhcpc (the image's default script sets address, route and
    /// resolv.conf); the address.
    ///
    /// # Errors
    /// When no lease comes.
    pub fn lease(&self) -> Result<String> {
        let r = self.sh("udhcpc -i eth0 -n -q -t 5 -T 1", 20)?;
        self.address()
            .ok_or_else(|| anyhow!("{} got no DHCP lease: {}", self.name, r.output.trim()))
    }

    /// Set a static address (CIDR) and, optionally, a default route.
    ///
    /// # Errors
    /// When `ip` fails in the guest.
    pub fn set_static(&self, cidr: &str, gateway: Option<&str>) -> Result<()> {
        self.sh_ok(&format!("ip addr add {cidr} dev eth0"), 5)?;
        if let Some(gw) = gateway {
            self.sh_ok(&format!("ip route replace default via {gw}"), 5)?;
        }
        Ok(())
    }

    /// eth0's IPv4 address.
    pub fn address(&self) -> Option<String> {
        let out = self.sh("ip -4 addr show dev eth0", 5).ok()?.output;
        let word = out.split_whitespace().skip_while(|w| *w != "inet").nth(1)?;
        Some(word.split('/').next()?.to_string())
    }

    /// The first name server of resolv.conf (from DHCP).
    pub fn resolver(&self) -> Option<String> {
        let out = self.sh("cat /etc/resolv.conf", 5).ok()?.output;
        out.lines()
            .find_map(|l| l.strip_prefix("nameserver "))
            .map(|s| s.trim().to_string())
    }

    /// `ping -c COUNT`; the summary line when every reply came.
    pub fn ping(&self, addr: &str, count: u32) -> Option<String> {
        self.ping_as("", addr, count)
    }

    /// [`Guest::ping`] run on vCPU `cpu` only (`taskset`): its frames leave on that
    /// vCPU's transmit queue when the NIC has one per vCPU.
    pub fn ping_on_cpu(&self, cpu: u32, addr: &str, count: u32) -> Option<String> {
        self.ping_as(&format!("taskset {:#x} ", 1u64 << cpu), addr, count)
    }

    fn ping_as(&self, prefix: &str, addr: &str, count: u32) -> Option<String> {
        let r = self
            .sh(
                &format!("{prefix}ping -c {count} -i 0.2 -W 2 {addr}"),
                u64::from(count) + 10,
            )
            .ok()?;
        if !r.ok() || !r.output.contains(&format!("{count} packets received")) {
            return None;
        }
        r.output
            .lines()
            .find(|l| l.contains("round-trip"))
            .map(|l| l.trim().to_string())
            .or(Some(format!("{count}/{count} replies")))
    }

    /// Send ICMP that must reach no one: broadcast pings to `bcast` and unicast pings to
    /// `addr`.
    pub fn probe(&self, bcast: &str, addr: &str) {
        let _ = self.sh(
            &format!("ping -c 2 -b -W 1 {bcast} ; ping -c 2 -W 1 {addr} ; arping -c 2 -w 2 -I eth0 {addr}"),
            15,
        );
    }

    /// An iperf3 client in the guest: `bytes` to `addr:port`, or from it when
    /// `reverse`; TCP unless `udp` (then at 10 Mbit/s).
    ///
    /// # Errors
    /// When iperf3 fails (refused, timed out) or its totals are missing.
    pub fn iperf(
        &self,
        addr: &str,
        port: u16,
        bytes: u64,
        reverse: bool,
        udp: bool,
    ) -> Result<Transfer> {
        let mut cmd = format!("iperf3 -J -c {addr} -p {port} -n {bytes} --connect-timeout 3000");
        if reverse {
            cmd.push_str(" -R");
        }
        if udp {
            cmd.push_str(" -u -b 10M -l 1200");
        } else if bytes < 131072 {
            cmd.push_str(&format!(" -l {bytes}"));
        }
        let r = self.sh(&cmd, 40)?;
        Transfer::from_iperf_json(&r.output)
            .with_context(|| format!("iperf3 from {} to {addr}:{port}", self.name))
    }

    /// A TCP iperf3 client in the guest for `secs` seconds (iperf3's own rate; not for
    /// byte counts).
    ///
    /// # Errors
    /// When iperf3 fails.
    pub fn iperf_for(&self, addr: &str, port: u16, secs: u32) -> Result<Transfer> {
        let r = self.sh(
            &format!("iperf3 -J -c {addr} -p {port} -t {secs} --connect-timeout 3000"),
            u64::from(secs) + 20,
        )?;
        Transfer::from_iperf_json(&r.output)
            .with_context(|| format!("iperf3 from {} to {addr}:{port}", self.name))
    }

    /// Start a one-test iperf3 server on `port`, bound to `addr`; returns once it listens.
    ///
    /// # Errors
    /// When it does not listen within 5 s.
    pub fn serve(&self, addr: &str, port: u16) -> Result<()> {
        self.sh_ok(
            &format!(
                "iperf3 -s -1 -J -B {addr} -p {port} >/tmp/iperf-{port}.json 2>&1 & i=0; while ! netstat -ltn | grep -q ':{port} '; do i=$((i+1)); [ $i -gt 50 ] && exit 1; sleep 0.1; done"
            ),
            10,
        )?;
        Ok(())
    }

    /// What the server on `port` received and from whom (`remote_host`), once its test
    /// ended (within 5 s); the server is stopped.
    ///
    /// # Errors
    /// When the server saw no complete test.
    pub fn served(&self, port: u16) -> Result<(Transfer, String)> {
        let f = format!("/tmp/iperf-{port}.json");
        let r = self.sh(
            &format!("i=0; while ! grep -q '\"end\"' {f} && [ $i -lt 50 ]; do i=$((i+1)); sleep 0.1; done; killall -q iperf3; cat {f}"),
            10,
        )?;
        let t = Transfer::from_iperf_json(&r.output)?;
        Ok((t, remote_host(&r.output)))
    }

    /// `nslookup -type=a NAME SERVER`; the output.
    pub fn nslookup(&self, name: &str, server: &str) -> String {
        self.sh(&format!("nslookup -type=a {name} {server}"), 10)
            .map(|r| r.output)
            .unwrap_or_else(|e| e.to_string())
    }

    /// Start capturing what matches the tcpdump `filter` on eth0 (in the guest; `-vv`,
    /// so tcpdump verifies IP, TCP and UDP checksums and prints `sum ok` or `bad`).
    ///
    /// # Errors
    /// When tcpdump does not start.
    pub fn capture(&self, filter: &str) -> Result<()> {
        self.sh_ok(
            &format!("tcpdump -Z root -l -n -vv -i eth0 {filter} >/tmp/capture.txt 2>/dev/null & sleep 1"),
            10,
        )?;
        Ok(())
    }

    /// What the capture saw (it is stopped).
    ///
    /// # Errors
    /// When the agent does not answer.
    pub fn captured(&self) -> Result<String> {
        Ok(self
            .sh(
                "sleep 1; killall -q tcpdump; sleep 0.2; cat /tmp/capture.txt",
                10,
            )?
            .output)
    }
}

/// The peer address an iperf3 server's JSON names.
pub fn remote_host(json: &str) -> String {
    let start = json.find('{').unwrap_or(0);
    serde_json::from_str::<serde_json::Value>(&json[start..])
        .ok()
        .and_then(|v| {
            v["start"]["connected"][0]["remote_host"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iperf_json_totals() {
        let json = r#"junk {"start":{"connected":[{"remote_host":"198.18.0.2"}]},
            "end":{"sum_sent":{"bytes":8388608,"bits_per_second":1e8},
                   "sum_received":{"bytes":8388608,"bits_per_second":9.5e7}}}"#;
        let t = Transfer::from_iperf_json(json).unwrap();
        assert_eq!((t.sent, t.received), (8388608, 8388608));
        assert_eq!(t.rate(), "95 Mbits/sec");
        assert_eq!(remote_host(json), "198.18.0.2");
        let err = Transfer::from_iperf_json(r#"{"error":"unable to connect to server"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unable to connect"), "{err}");
    }
}
