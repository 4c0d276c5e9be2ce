//! The `mem` backend: each case on a fresh in-process dataplane, driven in virtual time.
//!
//! A [`Sim`] is one worker over `mem` ports, one smoltcp [`Endpoint`] on the far end of
//! each port, and a virtual clock. One tick ([`TICK_MS`]): every endpoint takes what the
//! dataplane sent it and runs its stack (in role order: vm1, vm2, host, inet), the
//! client of the case takes its step, then the worker runs one loop
//! ([`vnet_core::engine::Worker::run_once`]) at the same virtual instant.
//!
//! Invariants:
//! - fully deterministic: no wall clock, no threads, fixed MACs, addresses and seeds, a
//!   fixed polling order; the same case gives the same frames at the same virtual times;
//! - every case starts from nothing (fresh pipeline, FDB, ARP caches, DHCP leases), so
//!   no case can pass on state another case left behind;
//! - a `+` case passes only when the exchange completed both ways within
//!   [`EXCHANGE_DEADLINE_MS`] and the receiver's wire shows the expected source; a `-`
//!   case passes only when, within [`SETTLE_MS`] after the probes, no frame carrying a
//!   probe's marker crossed a watched port's wire from the dataplane.

use super::cases::{Case, Expect, ExpectedSource, Target, ECHO_PORT};
use super::endpoint::{Client, ClientState, Endpoint, Trace, WireDir, CLIENT_PORT};
use super::evidence::{self, no_port};
use super::plan::{BoxedPipeline, ModeUnderTest, RuleControl};
use super::probe::{self, carries, mac_text, Ends, ProbeKind};
use super::table::{Direction, Proto, Reach, Role};
use super::{CaseRun, CaseRunner};
use smoltcp::socket::tcp;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use vnet_core::counters::{CounterSet, DropReason};
use vnet_core::engine::{HandoffRx, HandoffTx, Worker, WorkerConfig};
use vnet_core::frame::FramePool;
use vnet_core::port::mem::mem_pair;
use vnet_core::port::Port;
use vnet_core::time::Instant;

/// One step of virtual time.
pub const TICK_MS: u64 = 1;
/// How long DHCP clients may take to get an address.
pub const BOOT_DEADLINE_MS: u64 = 10_000;
/// How long a `+` exchange may take (TCP's first retransmission is after 1 s).
pub const EXCHANGE_DEADLINE_MS: u64 = 5_000;
/// How long a `-` case watches for its probes after sending them.
pub const SETTLE_MS: u64 = 300;
/// How long a completed TCP exchange runs on, so that the receiver finishes closing.
pub const TCP_LINGER_MS: u64 = 50;
/// How long a rule sent on a control channel is given to take effect (the worker
/// applies it at its next timer poll, at most 16 loops away).
pub const RULE_SETTLE_MS: u64 = 20;
/// Frames per `mem` ring.
const RING_DEPTH: usize = 256;
/// Base of the endpoints' smoltcp seeds (one per role).
const SEED: u64 = 0x766e_6574_2d62_0000;

/// One in-memory dataplane with its endpoints.
pub struct Sim {
    now_ms: u64,
    endpoints: [Option<Endpoint>; 4],
    worker: Worker<BoxedPipeline>,
    counters: CounterSet,
    /// Role of each dataplane port, in port order.
    port_roles: Vec<Role>,
    /// The pipeline's run-time rule control, if it has one.
    control: Option<RuleControl>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("now_ms", &self.now_ms)
            .field("ports", &self.port_roles)
            .finish()
    }
}

impl Sim {
    /// The topology of `mut_` with the pipeline built for `case`'s rules, at time 0.
    ///
    /// # Errors
    /// When the layout is not two VMs (plus host and uplink as the mode has them) or the
    /// pipeline cannot be built.
    pub fn new(mut_: &ModeUnderTest, case: &Case) -> Result<Self, String> {
        let layout = mut_.layout;
        if layout.vms() != 2 {
            return Err(format!(
                "the mem topology has exactly two VM ports, not {}",
                layout.vms()
            ));
        }
        let rules: Vec<_> = case.forward.into_iter().collect();
        let built = (mut_.pipeline)(&layout, &rules, Instant::ZERO)?;
        let (pipeline, control) = (built.pipeline, built.control);
        let mut port_roles: Vec<(u16, Role)> = Role::ALL
            .into_iter()
            .filter_map(|r| mut_.port_of(r).map(|p| (p, r)))
            .collect();
        port_roles.sort();
        let mut endpoints: [Option<Endpoint>; 4] = [None, None, None, None];
        let mut ports: Vec<(u16, Box<dyn Port>)> = Vec::new();
        for &(id, role) in &port_roles {
            let (port, peer) = mem_pair(role.name(), id, RING_DEPTH);
            ports.push((id, Box::new(port)));
            endpoints[role.index()] = Some(Endpoint::new(
                role,
                mut_.plan(role),
                peer,
                SEED + role.index() as u64,
                0,
            ));
        }
        let counters = CounterSet::new(1, ports.len());
        let owners = vec![0u8; ports.len()];
        let worker = Worker::new(
            0,
            ports,
            &owners,
            FramePool::with_heap(1024, 2048, 256),
            BoxedPipeline(pipeline),
            counters.worker(0),
            (HandoffTx::none(), HandoffRx::none()),
            WorkerConfig { timer_every: 16 },
        );
        Ok(Self {
            now_ms: 0,
            endpoints,
            worker,
            counters,
            port_roles: port_roles.into_iter().map(|(_, r)| r).collect(),
            control,
        })
    }

    /// The endpoint of a role, if the topology has its port.
    pub fn endpoint(&self, role: Role) -> Option<&Endpoint> {
        self.endpoints[role.index()].as_ref()
    }

    /// Virtual time, milliseconds since the start of the case.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// One tick; `client` (of the endpoint `role`) takes its step after its stack ran.
    pub fn tick(&mut self, mut client: Option<(Role, &mut Client)>) {
        let now = self.now_ms;
        for ep in self.endpoints.iter_mut().flatten() {
            ep.poll(now);
            if let Some((role, c)) = client.as_mut() {
                if *role == ep.role() {
                    c.step(ep, now);
                    ep.poll(now);
                }
            }
        }
        self.worker.run_once(Instant::from_millis(now));
        self.now_ms += TICK_MS;
    }

    /// Run `ms` of virtual time.
    pub fn run_for(&mut self, ms: u64, mut client: Option<(Role, &mut Client)>) {
        let end = self.now_ms + ms;
        while self.now_ms < end {
            self.tick(client.as_mut().map(|(r, c)| (*r, &mut **c)));
        }
    }

    /// Bring every endpoint up: wait for DHCP leases, then let each announce itself with a
    /// gratuitous ARP (so that switches have learned every MAC before a case starts).
    ///
    /// # Errors
    /// When a DHCP client got no address within [`BOOT_DEADLINE_MS`].
    pub fn boot(&mut self) -> Result<(), String> {
        while let Some(ep) = self.endpoints.iter().flatten().find(|e| e.ipv4().is_none()) {
            if self.now_ms >= BOOT_DEADLINE_MS {
                return Err(format!(
                    "{} got no address by DHCP within {BOOT_DEADLINE_MS} ms",
                    ep.role()
                ));
            }
            self.tick(None);
        }
        let now = self.now_ms;
        for ep in self.endpoints.iter_mut().flatten() {
            if let Some(ip) = ep.ipv4() {
                let frame = probe::gratuitous_arp(ep.mac(), ip);
                ep.inject(&frame, now);
            }
        }
        self.run_for(5, None);
        Ok(())
    }

    /// Every port's wire, in port order.
    pub fn traces(&self) -> Vec<(String, Trace)> {
        self.port_roles
            .iter()
            .filter_map(|r| self.endpoint(*r))
            .map(|ep| (ep.role().name().to_string(), ep.trace().clone()))
            .collect()
    }

    /// The dataplane's drops, as `port reason=count` items (empty: none).
    pub fn drops(&self) -> String {
        let mut out = String::new();
        for (i, totals) in self.counters.snapshot().iter().enumerate() {
            for reason in DropReason::ALL {
                let n = totals.drops_for(reason);
                if n > 0 {
                    let port = self.port_roles.get(i).map_or("?", |r| r.name());
                    let _ = write!(
                        out,
                        "{}{port} {}={n}",
                        if out.is_empty() { "" } else { ", " },
                        reason.name()
                    );
                }
            }
        }
        if out.is_empty() {
            "none".into()
        } else {
            out
        }
    }

    /// The roles whose wire carried, from the dataplane, a frame with any of `markers`
    /// (in role order).
    fn reached_by(&self, markers: &[Vec<u8>]) -> Vec<(Role, Vec<usize>)> {
        let mut out = Vec::new();
        for ep in self.endpoints.iter().flatten() {
            let hits: Vec<usize> = (0..markers.len())
                .filter(|&i| {
                    ep.trace()
                        .iter()
                        .any(|t| t.dir == WireDir::FromDataplane && carries(&t.bytes, &markers[i]))
                })
                .collect();
            if !hits.is_empty() {
                out.push((ep.role(), hits));
            }
        }
        out
    }
}

/// The `mem` backend as a [`CaseRunner`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemBackend;

impl CaseRunner for MemBackend {
    fn name(&self) -> &'static str {
        "mem"
    }

    fn run_case(&mut self, mode: &ModeUnderTest, case: &Case) -> CaseRun {
        run_case(mode, case)
    }
}

/// Run one case of `mut_` on a fresh dataplane.
pub fn run_case(mut_: &ModeUnderTest, case: &Case) -> CaseRun {
    let mut sim = match Sim::new(mut_, case) {
        Ok(sim) => sim,
        Err(e) => return setup_failure(format!("setup: {e}"), Vec::new()),
    };
    if let Err(e) = sim.boot() {
        return setup_failure(format!("boot: {e}"), sim.traces());
    }
    let mut installed = String::new();
    if let (Some(rule), Some(mut control)) = (case.forward, sim.control.take()) {
        // A mode with run-time control gets the rule now, for the receiver's actual
        // (DHCP) address, as `VBoxManage controlvm ... natpf1` would add it.
        let guest = sim.endpoint(case.receiver()).and_then(|e| e.ipv4());
        let realm = mut_.port_of(case.receiver());
        let (Some(guest), Some(realm)) = (guest, realm) else {
            return setup_failure(
                format!("{} has no address or port to forward to", case.receiver()),
                sim.traces(),
            );
        };
        match control(&rule, guest, realm) {
            Ok(text) => installed = format!("rule {text} installed at run time; "),
            Err(e) => return setup_failure(format!("rule refused: {e}"), sim.traces()),
        }
        sim.control = Some(control);
        sim.run_for(RULE_SETTLE_MS, None);
    }
    let mut run = match case.expect {
        Expect::Deliver { source } => deliver(&mut sim, mut_, case, source),
        Expect::Block => block(&mut sim, mut_, case),
    };
    run.evidence.insert_str(0, &installed);
    run
}

fn setup_failure(evidence: String, traces: Vec<(String, Trace)>) -> CaseRun {
    CaseRun {
        reached: false,
        pass: false,
        evidence,
        traces,
    }
}

fn count(n: u32, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn endpoint_text(ip: Ipv4Addr, port: u16, mac: [u8; 6]) -> String {
    if port == 0 {
        format!("{ip} ({})", mac_text(mac))
    } else {
        format!("{ip}:{port} ({})", mac_text(mac))
    }
}

/// A `+` case: the exchange must complete and the receiver must see the right source.
fn deliver(sim: &mut Sim, mut_: &ModeUnderTest, case: &Case, source: ExpectedSource) -> CaseRun {
    let (from, to) = (case.sender(), case.receiver());
    let (Some(sender), Some(receiver)) = (sim.endpoint(from), sim.endpoint(to)) else {
        let missing = if sim.endpoint(from).is_none() {
            from
        } else {
            to
        };
        return setup_failure(no_port(mut_, missing), sim.traces());
    };
    let (sender_ip, sender_mac) = (sender.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED), sender.mac());
    let target = match case.target {
        Target::Receiver => (receiver.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED), ECHO_PORT),
        Target::Via { ip, port } => (ip, port),
    };
    let marker = probe::marker(&case.name, "exchange");
    let ep = sim.endpoints[from.index()].as_mut().expect("sender exists");
    let mut client = Client::start(ep, case.proto, target, &marker);
    let t0 = sim.now_ms();
    while *client.state() == ClientState::Running && sim.now_ms() - t0 < EXCHANGE_DEADLINE_MS {
        sim.tick(Some((from, &mut client)));
    }
    if case.proto == Proto::Tcp && matches!(client.state(), ClientState::Done { .. }) {
        sim.run_for(TCP_LINGER_MS, Some((from, &mut client)));
    }
    let receiver = sim.endpoint(to).expect("receiver exists");
    let seen = receiver
        .trace()
        .iter()
        .filter(|t| t.dir == WireDir::FromDataplane && carries(&t.bytes, &marker))
        .find_map(|t| probe::seen_source(&t.bytes));
    let mut evidence = String::new();
    let completed = match client.state() {
        ClientState::Done { at_ms } => {
            let took = at_ms - t0;
            let _ = match case.proto {
                Proto::Icmp => write!(
                    evidence,
                    "echo reply from {} after {took} ms ({})",
                    target.0,
                    count(client.attempts(), "request")
                ),
                Proto::Udp => write!(
                    evidence,
                    "udp echo from {}:{} after {took} ms ({})",
                    target.0,
                    target.1,
                    count(client.attempts(), "datagram")
                ),
                Proto::Tcp => write!(
                    evidence,
                    "connected to {}:{}, {} bytes echoed, closed after {took} ms",
                    target.0,
                    target.1,
                    client.echoed()
                ),
            };
            true
        }
        ClientState::Running => {
            let _ = match case.proto {
                Proto::Icmp => write!(
                    evidence,
                    "no echo reply within {EXCHANGE_DEADLINE_MS} ms ({})",
                    count(client.attempts(), "request")
                ),
                Proto::Udp => write!(
                    evidence,
                    "no udp echo within {EXCHANGE_DEADLINE_MS} ms ({})",
                    count(client.attempts(), "datagram")
                ),
                Proto::Tcp => write!(
                    evidence,
                    "tcp exchange incomplete within {EXCHANGE_DEADLINE_MS} ms (client {}, {} bytes echoed)",
                    client.tcp_state(sim.endpoint(from).expect("sender exists")).map_or("-".into(), |s| s.to_string()),
                    client.echoed()
                ),
            };
            false
        }
        ClientState::Failed(why) => {
            let _ = write!(evidence, "{} exchange failed: {why}", case.proto);
            false
        }
    };
    let mut closed = true;
    if case.proto == Proto::Tcp && completed {
        let server = receiver.tcp_echo_state();
        let client_state = client.tcp_state(sim.endpoint(from).expect("sender exists"));
        closed = server == tcp::State::Listen;
        let _ = write!(
            evidence,
            " (client {}, server {})",
            client_state.map_or("-".into(), |s| s.to_string()),
            if closed {
                "closed".to_string()
            } else {
                server.to_string()
            }
        );
    }
    let source_ok = match seen {
        None => {
            let _ = write!(evidence, "; nothing carrying the marker reached {to}");
            false
        }
        Some(seen) => {
            let (ok, want) = match source {
                ExpectedSource::Sender => {
                    let port = if case.proto == Proto::Icmp {
                        0
                    } else {
                        CLIENT_PORT
                    };
                    (
                        seen.ip == sender_ip && seen.mac == sender_mac && seen.port == port,
                        endpoint_text(sender_ip, port, sender_mac),
                    )
                }
                ExpectedSource::Translated(ip) => (seen.ip == ip, format!("{ip}")),
                ExpectedSource::Routed => {
                    let port = if case.proto == Proto::Icmp {
                        0
                    } else {
                        CLIENT_PORT
                    };
                    (
                        seen.ip == sender_ip && seen.port == port,
                        format!(
                            "{} (behind the router)",
                            endpoint_text(sender_ip, port, seen.mac)
                        ),
                    )
                }
            };
            let saw = endpoint_text(seen.ip, seen.port, seen.mac);
            if ok {
                let _ = write!(evidence, "; {to} saw {saw} as expected");
            } else {
                let _ = write!(evidence, "; {to} saw {saw}, expected {want}");
            }
            ok
        }
    };
    // Behind a translation, the replies must come back to the sender's own address and
    // port (the marker rides in them too).
    let mut reply_ok = true;
    if source != ExpectedSource::Sender && completed {
        let port = if case.proto == Proto::Icmp {
            0
        } else {
            CLIENT_PORT
        };
        let back = sim
            .endpoint(from)
            .expect("sender exists")
            .trace()
            .iter()
            .filter(|t| t.dir == WireDir::FromDataplane && carries(&t.bytes, &marker))
            .find_map(|t| probe::seen_destination(&t.bytes));
        reply_ok = back == Some((sender_ip, port));
        let _ = match back {
            Some((ip, p)) if reply_ok => write!(evidence, "; replies reached {from} at {ip}:{p}"),
            Some((ip, p)) => write!(
                evidence,
                "; replies reached {from} at {ip}:{p}, expected {sender_ip}:{port}"
            ),
            None => write!(evidence, "; no reply carrying the marker reached {from}"),
        };
    }
    if !completed {
        let _ = write!(evidence, "; dataplane drops: {}", sim.drops());
    }
    CaseRun {
        reached: completed,
        pass: completed && source_ok && closed && reply_ok,
        evidence,
        traces: sim.traces(),
    }
}

/// A `-` case: directed unicast, broadcast and ARP probes (and, towards a translated
/// target, the sender's own attempt) must not reach the receiver's port.
fn block(sim: &mut Sim, mut_: &ModeUnderTest, case: &Case) -> CaseRun {
    let (from, to) = (case.sender(), case.receiver());
    let Some(sender) = sim.endpoint(from) else {
        return CaseRun {
            reached: false,
            pass: true,
            evidence: format!("{}; nothing can be sent from {from}", no_port(mut_, from)),
            traces: sim.traces(),
        };
    };
    let (peer_mac, peer_ip) = match sim.endpoint(to) {
        Some(ep) => (ep.mac(), ep.ipv4()),
        None => (mut_.plan(to).mac, mut_.plan(to).static_ip()),
    };
    let Some(peer_ip) = peer_ip else {
        return setup_failure(
            format!("{to} has no address to aim probes at"),
            sim.traces(),
        );
    };
    let ends = Ends {
        src_mac: sender.mac(),
        src_ip: sender.ipv4().unwrap_or(Ipv4Addr::UNSPECIFIED),
        dst_mac: peer_mac,
        dst_ip: peer_ip,
    };
    let dst_port = match case.target {
        Target::Receiver => ECHO_PORT,
        Target::Via { port, .. } => port,
    };
    let mut markers = Vec::new();
    let mut names = Vec::new();
    let now = sim.now_ms();
    let ep = sim.endpoints[from.index()].as_mut().expect("sender exists");
    for kind in ProbeKind::ALL {
        let m = probe::marker(&case.name, kind.name());
        ep.inject(
            &probe::probe_frame(kind, case.proto, &ends, (CLIENT_PORT, dst_port), &m),
            now,
        );
        markers.push(m);
        names.push(kind.name());
    }
    let mut client = match case.target {
        Target::Via { ip, port } => {
            let m = probe::marker(&case.name, "exchange");
            let c = Client::start(ep, case.proto, (ip, port), &m);
            markers.push(m);
            names.push("stack");
            Some(c)
        }
        Target::Receiver => None,
    };
    // A probe the sender's ring refused proves nothing: the case cannot pass on it.
    let sender_trace = sim.endpoint(from).expect("sender exists").trace();
    let unsent: Vec<&str> = (0..ProbeKind::ALL.len())
        .filter(|&i| {
            !sender_trace
                .iter()
                .any(|t| t.dir == WireDir::ToDataplane && carries(&t.bytes, &markers[i]))
        })
        .map(|i| names[i])
        .collect();
    if !unsent.is_empty() {
        return setup_failure(
            format!("probes not sent (ring full): {}", unsent.join(", ")),
            sim.traces(),
        );
    }
    sim.run_for(SETTLE_MS, client.as_mut().map(|c| (from, c)));

    // Which ports must stay clean: the receiver's; with no receiver port, every port the
    // sender must not reach.
    let receiver_exists = sim.endpoint(to).is_some();
    let expected = mut_.expected();
    let watched: Vec<Role> = if receiver_exists {
        vec![to]
    } else {
        sim.port_roles
            .iter()
            .copied()
            .filter(|&r| r != from)
            .filter(|&r| {
                Direction::between(from, r)
                    .map(|d| {
                        expected[Direction::ALL.iter().position(|x| *x == d).unwrap_or(0)]
                            != Reach::Yes
                    })
                    .unwrap_or(false)
            })
            .collect()
    };
    let reached = sim.reached_by(&markers);
    let leaks: Vec<String> = reached
        .iter()
        .filter(|(r, _)| watched.contains(r))
        .map(|(r, hits)| {
            let kinds: Vec<&str> = hits.iter().map(|&i| names[i]).collect();
            format!("{} reached {r}", kinds.join("+"))
        })
        .collect();
    let elsewhere: Vec<String> = reached
        .iter()
        .filter(|(r, _)| !watched.contains(r) && *r != from)
        .map(|(r, _)| r.name().to_string())
        .collect();
    let mut evidence = format!(
        "{} from {from} to {to} {}",
        names.join(", "),
        endpoint_text(peer_ip, 0, peer_mac)
    );
    let leaked = evidence::negative_outcome(
        &mut evidence,
        mut_,
        to,
        receiver_exists,
        &leaks,
        &watched,
        &elsewhere,
    );
    let _ = write!(evidence, "; dataplane drops: {}", sim.drops());
    CaseRun {
        reached: leaked,
        pass: !leaked,
        evidence,
        traces: sim.traces(),
    }
}
