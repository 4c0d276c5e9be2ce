//! What a benchmark measures for a mode: which endpoints the topology has, which streams
//! (generator -> sink) cross the DUT with which addresses (a direction), how each DUT is
//! started for it, and how the generator learns the next hop's MAC.
//!
//! Directions:
//! - `guest-to-guest`: one guest to another on the same segment (internal, host-only,
//!   bridged, NAT Network; a NAT-mode guest is alone on its network, so not there);
//! - `guest-to-inet`: a guest to the server beyond the uplink (bridged: switched to the
//!   LAN; NAT modes: routed and translated, the sink sees the NAT's external address);
//! - `inet-to-guest`: the server to a guest (NAT modes: through a forwarded UDP port);
//! - `both`: the two directions at once (guest<->guest on the switched modes,
//!   guest<->inet on the NAT modes), half the offered rate each.
//!
//! Invariants: every address is inside the topology (the modes' own guest networks,
//! 198.18.0.0/15 for the "Internet"); a stream's frames are addressed as the sending
//! endpoint's own stack would address them, so every DUT sees the same traffic: to the
//! sink's MAC on a segment, to the next hop's MAC (resolved by the sender's ARP, per DUT)
//! when the DUT routes.

use super::gen::{parse_mac, FrameSpec};
use super::peers::DutKind;
use crate::cli::ModeName;
use crate::topo::{netns_exec, Offloads, Topology};
use anyhow::{bail, Context, Result};
use std::net::Ipv4Addr;

/// A direction of traffic through a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// From one guest to another on the same segment.
    GuestToGuest,
    /// From a guest to the server beyond the uplink (NAT modes: translated).
    GuestToInet,
    /// From the server to a guest (NAT modes: through a forwarded port).
    InetToGuest,
    /// Both ways at once: guest<->guest on the switched modes, guest<->inet on NAT.
    Both,
}

/// Sessions of a NAT DUT's table in the bench (and the one guest's share): room for
/// `--flows 100000` in both directions.
pub const BENCH_NAT_SESSIONS: usize = 131_072;

impl Direction {
    /// Name in reports and result folders.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::GuestToGuest => "guest->guest",
            Direction::GuestToInet => "guest->inet",
            Direction::InetToGuest => "inet->guest",
            Direction::Both => "both",
        }
    }

    /// Name as a path component (`guest-to-inet`).
    pub fn slug(self) -> &'static str {
        match self {
            Direction::GuestToGuest => "guest-to-guest",
            Direction::GuestToInet => "guest-to-inet",
            Direction::InetToGuest => "inet-to-guest",
            Direction::Both => "both",
        }
    }

    /// The direction measured when none is given: guest->guest on the switched modes,
    /// guest->inet (the translated path) on the NAT modes.
    pub fn default_for(mode: ModeName) -> Direction {
        match mode {
            ModeName::Nat | ModeName::NatNetwork => Direction::GuestToInet,
            _ => Direction::GuestToGuest,
        }
    }
}

/// Where a stream's frames are addressed at layer 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop {
    /// The sink itself (same segment).
    Sink,
    /// A router at this address, resolved by the sender's ARP for each DUT.
    Router(Ipv4Addr),
}

/// One generator -> sink stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The sending endpoint's role.
    pub gen_role: String,
    /// The receiving endpoint's role.
    pub sink_role: String,
    /// Source address of the frames.
    pub src_ip: Ipv4Addr,
    /// Destination address of the frames.
    pub dst_ip: Ipv4Addr,
    /// A fixed UDP destination port (a forwarded port); `None`: pseudorandom per flow.
    pub dst_port: Option<u16>,
    /// Layer-2 destination.
    pub next_hop: NextHop,
}

impl Stream {
    /// Name in reports (`vm1->inet`).
    pub fn label(&self) -> String {
        format!("{}->{}", self.gen_role, self.sink_role)
    }
}

/// The NAT side of a scenario: what vnet and the kernel peer are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatSetup {
    /// The guest's address.
    pub guest_ip: Ipv4Addr,
    /// The guests' gateway (the NAT's inside address).
    pub gateway_ip: Ipv4Addr,
    /// The NAT's external address with prefix.
    pub external: String,
    /// The uplink's next hop (the inet endpoint).
    pub inet_ip: Ipv4Addr,
    /// The forwarded UDP port (inet -> guest).
    pub forward_port: u16,
}

/// The UDP port forwarded to the guest in the inet->guest direction.
pub const FORWARD_PORT: u16 = 7000;

/// A mode in one direction on its topology.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The mode.
    pub mode: ModeName,
    /// The direction.
    pub direction: Direction,
    /// Endpoints `(role, address/prefix)` in build order.
    pub endpoints: Vec<(String, Option<String>)>,
    /// Default routes `(role, gateway)` set in endpoint namespaces.
    pub routes: Vec<(String, Ipv4Addr)>,
    /// The measured streams (two for `both`).
    pub streams: Vec<Stream>,
    /// Set for a routed (NAT) scenario.
    pub nat: Option<NatSetup>,
}

fn host(cidr: &str) -> Ipv4Addr {
    cidr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("scenario addresses are valid")
}

fn l2_stream(eps: &[(&str, &str)], from: usize, to: usize) -> Stream {
    Stream {
        gen_role: eps[from].0.into(),
        sink_role: eps[to].0.into(),
        src_ip: host(eps[from].1),
        dst_ip: host(eps[to].1),
        dst_port: None,
        next_hop: NextHop::Sink,
    }
}

impl Scenario {
    /// The scenario of `mode` in `direction`.
    ///
    /// # Errors
    /// When the mode has no such direction (say, guest->guest in NAT mode, whose guests
    /// each have a private network).
    pub fn new(mode: ModeName, direction: Direction) -> Result<Scenario> {
        let nat = matches!(mode, ModeName::Nat | ModeName::NatNetwork);
        if nat && direction != Direction::GuestToGuest {
            return Ok(Self::routed(mode, direction));
        }
        let eps: Vec<(&str, &str)> = match mode {
            ModeName::Internal => vec![("vm1", "192.168.60.11/24"), ("vm2", "192.168.60.12/24")],
            ModeName::HostOnly => vec![
                ("vm1", "192.168.56.101/24"),
                ("vm2", "192.168.56.102/24"),
                ("host", "192.168.56.1/24"),
            ],
            ModeName::Bridged => vec![
                ("vm1", "198.18.0.11/24"),
                ("vm2", "198.18.0.12/24"),
                ("host", "198.18.0.254/24"),
                ("inet", "198.18.0.1/24"),
            ],
            ModeName::NatNetwork => vec![
                ("vm1", "10.0.2.4/24"),
                ("vm2", "10.0.2.5/24"),
                ("inet", "198.18.0.1/24"),
            ],
            ModeName::Nat => bail!(
                "NAT mode gives each guest its own private network, so there is no guest->guest path to measure; use --direction guest-to-inet, inet-to-guest or both (or --mode nat-network)"
            ),
        };
        let inet = eps.iter().position(|e| e.0 == "inet");
        let streams = match (direction, inet) {
            (Direction::GuestToGuest, _) => vec![l2_stream(&eps, 0, 1)],
            (Direction::Both, _) => vec![l2_stream(&eps, 0, 1), l2_stream(&eps, 1, 0)],
            (Direction::GuestToInet, Some(i)) => vec![l2_stream(&eps, 0, i)],
            (Direction::InetToGuest, Some(i)) => vec![l2_stream(&eps, i, 0)],
            (d, None) => bail!(
                "{} mode has no uplink, so there is no {} path; use --direction guest-to-guest or both",
                mode.as_str(),
                d.as_str()
            ),
        };
        Ok(Scenario {
            mode,
            direction,
            endpoints: eps
                .iter()
                .map(|(r, a)| (r.to_string(), Some(a.to_string())))
                .collect(),
            routes: Vec::new(),
            streams,
            nat: None,
        })
    }

    /// A NAT mode's routed scenario: one guest and the inet server.
    fn routed(mode: ModeName, direction: Direction) -> Scenario {
        let (guest, gateway) = match mode {
            ModeName::Nat => ([10, 0, 2, 15], [10, 0, 2, 2]),
            _ => ([10, 0, 2, 4], [10, 0, 2, 1]),
        };
        let (guest, gateway) = (Ipv4Addr::from(guest), Ipv4Addr::from(gateway));
        let (inet, external) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(198, 18, 0, 2));
        let out = Stream {
            gen_role: "vm1".into(),
            sink_role: "inet".into(),
            src_ip: guest,
            dst_ip: inet,
            dst_port: None,
            next_hop: NextHop::Router(gateway),
        };
        let back = Stream {
            gen_role: "inet".into(),
            sink_role: "vm1".into(),
            src_ip: inet,
            dst_ip: external,
            dst_port: Some(FORWARD_PORT),
            next_hop: NextHop::Router(external),
        };
        let streams = match direction {
            Direction::InetToGuest => vec![back],
            Direction::Both => vec![out, back],
            _ => vec![out],
        };
        Scenario {
            mode,
            direction,
            endpoints: vec![
                ("vm1".into(), Some(format!("{guest}/24"))),
                ("inet".into(), Some(format!("{inet}/24"))),
            ],
            routes: vec![("vm1".into(), gateway)],
            streams,
            nat: Some(NatSetup {
                guest_ip: guest,
                gateway_ip: gateway,
                external: format!("{external}/24"),
                inet_ip: inet,
                forward_port: FORWARD_PORT,
            }),
        }
    }

    /// The endpoints as `Topology::build` takes them.
    pub fn topology_spec(&self) -> Vec<(&str, Option<&str>)> {
        self.endpoints
            .iter()
            .map(|(r, a)| (r.as_str(), a.as_deref()))
            .collect()
    }

    /// Build the topology with the scenario's routes.
    ///
    /// # Errors
    /// As [`Topology::build`], or when a route cannot be set.
    pub fn build(&self, prefix: &str) -> Result<Topology> {
        let topo = Topology::build_with(prefix, &self.topology_spec(), Offloads::TxOff)?;
        for (role, gw) in &self.routes {
            let e = topo.endpoint(role);
            netns_exec(
                &e.netns,
                "ip",
                &["route", "add", "default", "via", &gw.to_string()],
            )?;
        }
        Ok(topo)
    }

    /// Dataplane-side interfaces of the guests (roles `vmN`).
    pub fn guest_ifnames(&self, topo: &Topology) -> Vec<String> {
        topo.endpoints()
            .iter()
            .filter(|e| e.role.starts_with("vm"))
            .map(|e| e.dp_ifname.clone())
            .collect()
    }

    /// Every dataplane-side interface (the kernel bridge's ports).
    pub fn dp_ifnames(&self, topo: &Topology) -> Vec<String> {
        topo.endpoints()
            .iter()
            .map(|e| e.dp_ifname.clone())
            .collect()
    }

    /// The two dataplane-side interfaces the measured traffic crosses (testpmd's ports).
    pub fn forwarding_ifnames(&self, topo: &Topology) -> Vec<String> {
        let s = &self.streams[0];
        vec![
            topo.endpoint(&s.gen_role).dp_ifname.clone(),
            topo.endpoint(&s.sink_role).dp_ifname.clone(),
        ]
    }

    /// `vnet-bench run` arguments for this mode on `topo`. The NAT modes get a session
    /// table of [`BENCH_NAT_SESSIONS`], all of it the one sending guest's share.
    pub fn vnet_args(&self, topo: &Topology) -> Vec<String> {
        let mut a = vec![
            "run".to_string(),
            "--mode".into(),
            self.mode.as_str().into(),
        ];
        for e in topo.endpoints() {
            let flag = match e.role.as_str() {
                "host" => "--host",
                "inet" => "--uplink",
                _ => "--vm",
            };
            a.push(flag.into());
            a.push(e.dp_ifname.clone());
        }
        if matches!(self.mode, ModeName::Nat | ModeName::NatNetwork) {
            let (external, inet) = match &self.nat {
                Some(n) => (n.external.clone(), n.inet_ip),
                None => ("198.18.0.2/24".into(), Ipv4Addr::new(198, 18, 0, 1)),
            };
            a.extend(["--external-ip".into(), external]);
            a.extend(["--gateway".into(), inet.to_string()]);
            // The bench's one guest opens every flow (up to 100k): it gets the whole table.
            a.extend(["--nat-max-sessions".into(), BENCH_NAT_SESSIONS.to_string()]);
            a.extend([
                "--nat-sessions-per-guest".into(),
                BENCH_NAT_SESSIONS.to_string(),
            ]);
            if let Some(n) = &self.nat {
                let p = n.forward_port;
                let rule = match self.mode {
                    ModeName::Nat => format!("bench,udp,,{p},,{p}"),
                    _ => format!("bench:udp:[]:{p}:[{}]:{p}", n.guest_ip),
                };
                a.extend(["--pf".into(), rule]);
            }
        }
        a
    }

    /// Let the DUT learn where everyone is (switch tables, ARP, the NAT's guest): one
    /// short ping per stream, from its sink to its source on a segment, from the guest to
    /// the server when routed. Failures are not fatal: the trials will show loss.
    pub fn warm_up(&self, topo: &Topology) {
        let pings: Vec<(String, Ipv4Addr)> = match &self.nat {
            Some(n) => vec![("vm1".into(), n.inet_ip)],
            None => self
                .streams
                .iter()
                .map(|s| (s.sink_role.clone(), s.src_ip))
                .collect(),
        };
        for (role, to) in pings {
            let _ = netns_exec(
                &topo.endpoint(&role).netns,
                "ping",
                &["-c", "2", "-i", "0.2", "-W", "1", &to.to_string()],
            );
        }
    }

    /// Forget what the endpoints learnt from the previous DUT (the next hop's MAC
    /// changes from one DUT to the next).
    pub fn forget_neighbours(&self, topo: &Topology) {
        for e in topo.endpoints() {
            let _ = netns_exec(&e.netns, "ip", &["neigh", "flush", "all"]);
        }
    }

    /// The frames of `stream` for `dut`. A routed stream goes to the next hop's MAC as
    /// the sender resolved it (vnet and the kernel route, [`DutKind::routes`]; testpmd and
    /// xdp-redirect only move frames from port to port, so their frames go to the sink's
    /// MAC).
    ///
    /// # Errors
    /// When an endpoint's MAC is malformed or the next hop was not resolved.
    pub fn frame(
        &self,
        topo: &Topology,
        stream: &Stream,
        dut: DutKind,
        frame_size: usize,
        imix: bool,
    ) -> Result<FrameSpec> {
        let gen = topo.endpoint(&stream.gen_role);
        let dst_mac = match (stream.next_hop, dut) {
            (NextHop::Router(ip), d) if d.routes() => {
                neighbour_mac(&gen.netns, ip).with_context(|| {
                    format!(
                        "{} did not resolve its next hop {ip} through the {}",
                        stream.gen_role,
                        dut.as_str()
                    )
                })?
            }
            _ => parse_mac(&topo.endpoint(&stream.sink_role).mac)?,
        };
        Ok(FrameSpec {
            dst_mac,
            src_mac: parse_mac(&gen.mac)?,
            src_ip: stream.src_ip,
            dst_ip: stream.dst_ip,
            dst_port: stream.dst_port,
            frame_size,
            imix,
        })
    }
}

/// The MAC `netns` has for `ip`, asking by ping when it has none.
fn neighbour_mac(netns: &str, ip: Ipv4Addr) -> Result<[u8; 6]> {
    let ip = ip.to_string();
    for attempt in 0..2 {
        let out = netns_exec(netns, "ip", &["-4", "neigh", "show", &ip])?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let mut words = text.split_whitespace();
        if words.any(|w| w == "lladdr") {
            if let Some(mac) = words.next() {
                return parse_mac(mac);
            }
        }
        if attempt == 0 {
            let _ = netns_exec(netns, "ping", &["-c", "1", "-W", "1", &ip]);
        }
    }
    bail!("no ARP entry for {ip} in {netns}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_directions_route_through_the_gateway_and_the_forward() {
        let s = Scenario::new(ModeName::Nat, Direction::Both).unwrap();
        assert_eq!(s.streams.len(), 2);
        assert_eq!(s.streams[0].label(), "vm1->inet");
        assert_eq!(
            s.streams[0].next_hop,
            NextHop::Router(Ipv4Addr::new(10, 0, 2, 2))
        );
        assert_eq!(s.streams[1].dst_ip, Ipv4Addr::new(198, 18, 0, 2));
        assert_eq!(s.streams[1].dst_port, Some(FORWARD_PORT));
        let nn = Scenario::new(ModeName::NatNetwork, Direction::InetToGuest).unwrap();
        assert_eq!(nn.streams.len(), 1);
        assert_eq!(nn.nat.unwrap().guest_ip, Ipv4Addr::new(10, 0, 2, 4));
    }

    #[test]
    fn impossible_directions_say_why() {
        let e = Scenario::new(ModeName::Nat, Direction::GuestToGuest).unwrap_err();
        assert!(e.to_string().contains("private network"), "{e}");
        let e = Scenario::new(ModeName::Internal, Direction::GuestToInet).unwrap_err();
        assert!(e.to_string().contains("no uplink"), "{e}");
        let b = Scenario::new(ModeName::Bridged, Direction::InetToGuest).unwrap();
        assert_eq!(b.streams[0].label(), "inet->vm1");
        let both = Scenario::new(ModeName::Internal, Direction::Both).unwrap();
        assert_eq!(both.streams[1].label(), "vm2->vm1");
    }
}
