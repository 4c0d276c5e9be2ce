//! What a benchmark measures for a mode: which endpoints the topology has, who sends to
//! whom with which addresses (a direction), and how each DUT is started for it.
//!
//! Directions: `guest->guest` for the switched modes (internal, host-only, bridged) now.
//! The NAT modes plug in here with `guest->inet` (translated: the sink sees the NAT's
//! external address) and `inet->guest` (through a forwarded port): a direction only
//! changes the endpoints, the frame's addresses and the DUT's arguments; generator, sink,
//! search and results stay as they are.

use super::gen::{parse_mac, FrameSpec};
use crate::cli::ModeName;
use crate::topo::Topology;
use anyhow::{bail, Result};
use std::net::Ipv4Addr;

/// A direction of traffic through a mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Direction {
    /// From one guest to another on the same segment.
    GuestToGuest,
    /// From a guest to the server beyond the uplink (NAT modes, translated).
    GuestToInet,
    /// From the server to a guest through a forwarded port (NAT modes).
    InetToGuest,
}

impl Direction {
    /// Name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::GuestToGuest => "guest->guest",
            Direction::GuestToInet => "guest->inet",
            Direction::InetToGuest => "inet->guest",
        }
    }
}

/// A mode in one direction on its topology.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The mode.
    pub mode: ModeName,
    /// The direction.
    pub direction: Direction,
    /// Endpoints `(role, address/prefix)` in build order.
    pub endpoints: Vec<(String, Option<String>)>,
    /// The sending endpoint's role.
    pub gen_role: String,
    /// The receiving endpoint's role.
    pub sink_role: String,
    /// Source address of the frames.
    pub src_ip: Ipv4Addr,
    /// Destination address of the frames.
    pub dst_ip: Ipv4Addr,
}

fn host(cidr: &str) -> Ipv4Addr {
    cidr.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .expect("scenario addresses are valid")
}

impl Scenario {
    /// The scenario of `mode` in `direction`.
    ///
    /// # Errors
    /// When that combination is not measurable yet.
    pub fn new(mode: ModeName, direction: Direction) -> Result<Scenario> {
        if direction != Direction::GuestToGuest {
            bail!(
                "direction {} is for the NAT modes, which `bench` does not drive yet",
                direction.as_str()
            );
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
            ModeName::Nat | ModeName::NatNetwork => {
                bail!("`bench --mode {}` is not available yet: the NAT modes' directions (guest->inet, inet->guest) plug in when the NAT dataplane lands", mode.as_str())
            }
        };
        Ok(Scenario {
            mode,
            direction,
            src_ip: host(eps[0].1),
            dst_ip: host(eps[1].1),
            gen_role: "vm1".into(),
            sink_role: "vm2".into(),
            endpoints: eps
                .iter()
                .map(|(r, a)| (r.to_string(), Some(a.to_string())))
                .collect(),
        })
    }

    /// The endpoints as `Topology::build` takes them.
    pub fn topology_spec(&self) -> Vec<(&str, Option<&str>)> {
        self.endpoints
            .iter()
            .map(|(r, a)| (r.as_str(), a.as_deref()))
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
        vec![
            topo.endpoint(&self.gen_role).dp_ifname.clone(),
            topo.endpoint(&self.sink_role).dp_ifname.clone(),
        ]
    }

    /// `vnet-bench run` arguments for this mode on `topo`.
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
        a
    }

    /// The frames the generator sends.
    ///
    /// # Errors
    /// When an endpoint's MAC is malformed.
    pub fn frame(&self, topo: &Topology, frame_size: usize, imix: bool) -> Result<FrameSpec> {
        Ok(FrameSpec {
            dst_mac: parse_mac(&topo.endpoint(&self.sink_role).mac)?,
            src_mac: parse_mac(&topo.endpoint(&self.gen_role).mac)?,
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            frame_size,
            imix,
        })
    }
}
