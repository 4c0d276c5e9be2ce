//! NAT and NAT Network: VirtualBox's two routed modes, on the NAPT stage.
//!
//! - **NAT** (`--mode nat`, [`NatFlavor::PerVm`]): every VM port is its own private
//!   10.0.2.0/24 (guest 10.0.2.15 by DHCP, gateway 10.0.2.2 answering ARP and ping, DNS
//!   proxy 10.0.2.3); each VM is a NAPT *realm*, so two guests with the same address never
//!   meet. Ports: VMs, optional host, uplink.
//! - **NAT Network** (`--mode nat-network`, [`NatFlavor::Network`]): one shared segment
//!   10.0.2.0/24 switched among the VM ports (guests reach each other), router and DNS
//!   proxy 10.0.2.1, host loopback 10.0.2.2, DHCP 10.0.2.3 (pool .4-.254); one realm.
//!
//! Routed path of a guest packet: DNS proxy (to the DNS address, UDP 53) -> host loopback
//! (TCP/UDP to 10.0.2.2, with `--host`: re-addressed to the host and translated by the
//! host link's NAPT) -> gateway services (ARP, ping, DHCP) -> TTL -> NAPT outbound -> the
//! uplink's next hop (ARP-resolved). From the uplink: ARP for the external address, then
//! NAPT inbound (in the worker owning the external port: others hand the packet over) ->
//! the guest, from the gateway's MAC. The host port works like a second uplink whose NAPT
//! translates to the dataplane's address on the host link, and whose replies appear to
//! the guest as coming from 10.0.2.2 (VirtualBox's host loopback mapping); the host reaches
//! a guest only through port-forward rules, which apply on both links.
//!
//! Guests are guarded ([`crate::guard`]): broadcast and ARP to the services are rate
//! limited per VM port; an ARP claim of a service address (or, in NAT Network, of an
//! address leased to another guest) is dropped as `spoofed`, as is a routed packet from an
//! address outside 10.0.2.0/24 or of a service (it is never translated); the NAPT gives
//! each guest a share of the sessions (`napt.max_sessions_per_guest`).
//!
//! Invariants: a guest frame never leaves on another VM port in NAT (realms are isolated);
//! nothing goes out of the uplink untranslated; every drop names a reason; MACs learned by
//! one worker are visible to all ([`shared::MacSlots`]).

pub mod pipeline;
pub mod rewrite;
pub mod shared;

pub use pipeline::NatMode;

use crate::dhcp::{DhcpConfigError, DhcpServer, DhcpServerConfig};
use crate::gateway::SharedDhcp;
use crate::guard::GuardConfig;
use crate::layout::PortLayout;
use crate::nat::{ForwardRule, NaptConfig, NaptConfigError};
use crate::switch::SwitchConfig;
use shared::MacSlots;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use vnet_core::time::Instant;

/// Which of the two routed modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatFlavor {
    /// NAT: one private NAT per VM.
    PerVm,
    /// NAT Network: one shared, switched segment.
    Network,
}

/// The dataplane's side of the host link (with `--host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLink {
    /// The dataplane's own address on the host link (default 198.19.0.2).
    pub own_ip: Ipv4Addr,
    /// The host's address (default 198.19.0.1); 10.0.2.2 maps to it.
    pub host_ip: Ipv4Addr,
}

impl Default for HostLink {
    fn default() -> Self {
        Self {
            own_ip: Ipv4Addr::new(198, 19, 0, 2),
            host_ip: Ipv4Addr::new(198, 19, 0, 1),
        }
    }
}

/// Settings of a NAT or NAT Network dataplane.
#[derive(Debug, Clone)]
pub struct NatModeConfig {
    /// Which mode.
    pub flavor: NatFlavor,
    /// Number of VM ports.
    pub vms: usize,
    /// The host link, if there is a host port.
    pub host: Option<HostLink>,
    /// The external address on the uplink (`--external-ip`).
    pub external_ip: Ipv4Addr,
    /// The next hop on the uplink (`--gateway`).
    pub gateway: Ipv4Addr,
    /// The upstream DNS resolver (`--dns`); none: the proxy answers SERVFAIL.
    pub dns: Option<Ipv4Addr>,
    /// Port-forward rules at start.
    pub forwards: Vec<ForwardRule>,
    /// NAPT settings (filtering, timeouts, table size); `external_ip`, `worker` and
    /// `workers` are filled in per worker.
    pub napt: NaptConfig,
    /// The segment's switch (NAT Network).
    pub switch: SwitchConfig,
    /// DHCP server settings (one server per VM in NAT, one in NAT Network).
    pub dhcp: DhcpServerConfig,
    /// Rate limits of VM ports.
    pub guard: GuardConfig,
}

impl NatModeConfig {
    /// VirtualBox's defaults for `flavor` with `vms` VMs, external address and next hop.
    pub fn new(flavor: NatFlavor, vms: usize, external_ip: Ipv4Addr, gateway: Ipv4Addr) -> Self {
        Self {
            flavor,
            vms,
            host: None,
            external_ip,
            gateway,
            dns: None,
            forwards: Vec::new(),
            napt: NaptConfig::new(external_ip),
            switch: SwitchConfig::default(),
            guard: GuardConfig::default(),
            dhcp: match flavor {
                NatFlavor::PerVm => DhcpServerConfig::nat(),
                NatFlavor::Network => DhcpServerConfig::nat_network(),
            },
        }
    }

    /// The guest-side addresses: (router, DNS proxy, DHCP server, service addresses).
    pub fn guest_addrs(&self) -> GuestAddrs {
        match self.flavor {
            NatFlavor::PerVm => GuestAddrs {
                router: Ipv4Addr::new(10, 0, 2, 2),
                dns: Ipv4Addr::new(10, 0, 2, 3),
                host_loopback: Ipv4Addr::new(10, 0, 2, 2),
                dhcp: self.dhcp.server_ip,
                services: vec![Ipv4Addr::new(10, 0, 2, 2), Ipv4Addr::new(10, 0, 2, 3)],
                default_guest: Ipv4Addr::new(10, 0, 2, 15),
            },
            NatFlavor::Network => GuestAddrs {
                router: Ipv4Addr::new(10, 0, 2, 1),
                dns: Ipv4Addr::new(10, 0, 2, 1),
                host_loopback: Ipv4Addr::new(10, 0, 2, 2),
                dhcp: self.dhcp.server_ip,
                services: vec![
                    Ipv4Addr::new(10, 0, 2, 1),
                    Ipv4Addr::new(10, 0, 2, 2),
                    Ipv4Addr::new(10, 0, 2, 3),
                ],
                default_guest: Ipv4Addr::new(10, 0, 2, 4),
            },
        }
    }

    /// The port layout.
    pub fn layout(&self) -> PortLayout {
        PortLayout::new(self.vms, self.host.is_some(), true)
    }
}

/// The addresses the dataplane holds on the guest side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestAddrs {
    /// Where guests send routed traffic (their default gateway).
    pub router: Ipv4Addr,
    /// The DNS proxy.
    pub dns: Ipv4Addr,
    /// The host loopback address.
    pub host_loopback: Ipv4Addr,
    /// The DHCP server.
    pub dhcp: Ipv4Addr,
    /// Every address answered by the services (ARP, ping).
    pub services: Vec<Ipv4Addr>,
    /// The guest a NAT rule with an empty guest address forwards to.
    pub default_guest: Ipv4Addr,
}

/// Errors building a NAT dataplane.
#[derive(Debug, thiserror::Error)]
pub enum NatModeError {
    /// The DHCP settings are wrong.
    #[error(transparent)]
    Dhcp(#[from] DhcpConfigError),
    /// The NAPT settings are wrong.
    #[error(transparent)]
    Napt(#[from] NaptConfigError),
    /// A port-forward rule was refused.
    #[error(transparent)]
    Forward(#[from] crate::nat::ForwardError),
}

/// Everything shared by the workers of a NAT dataplane; [`NatSpec::build`] makes each
/// worker's pipeline.
#[derive(Debug, Clone)]
pub struct NatSpec {
    /// The settings.
    pub config: NatModeConfig,
    /// DHCP servers: one per VM (NAT) or one (NAT Network).
    pub dhcp: Vec<SharedDhcp>,
    /// Guest MACs: per realm (NAT) or per last address byte (NAT Network).
    pub guest_macs: MacSlots,
    /// The uplink next hop's MAC (slot 0) and the host's (slot 1).
    pub next_hops: MacSlots,
    /// Port-forward rule changes for running workers (control thread -> workers).
    pub control: Vec<crossbeam::channel::Sender<pipeline::ControlMsg>>,
    receivers: Vec<crossbeam::channel::Receiver<pipeline::ControlMsg>>,
}

impl NatSpec {
    /// Validate `config` and create the shared state for `workers` workers.
    ///
    /// # Errors
    /// When the DHCP or NAPT settings or a forward rule are refused.
    pub fn new(config: NatModeConfig, workers: usize, now: Instant) -> Result<Self, NatModeError> {
        let servers = match config.flavor {
            NatFlavor::PerVm => config.vms,
            NatFlavor::Network => 1,
        };
        let mut dhcp = Vec::with_capacity(servers);
        for i in 0..servers {
            let mut c = config.dhcp.clone();
            if let Some(path) = &c.lease_file {
                if servers > 1 {
                    c.lease_file = Some(path.with_extension(format!("vm{}", i + 1)));
                }
            }
            dhcp.push(Arc::new(Mutex::new(DhcpServer::new(
                c,
                now,
                SystemTime::now(),
            )?)));
        }
        // Check the NAPT settings and the rules once, as worker 0 would see them.
        let mut probe = crate::nat::Napt::new(
            NaptConfig {
                external_ip: config.external_ip,
                max_sessions: 16,
                ..config.napt.clone()
            },
            now,
        )?;
        for rule in &config.forwards {
            probe.add_forward(rule.clone())?;
        }
        let (control, receivers) = (0..workers.max(1))
            .map(|_| crossbeam::channel::bounded(64))
            .unzip();
        Ok(Self {
            guest_macs: MacSlots::new(match config.flavor {
                NatFlavor::PerVm => config.vms,
                NatFlavor::Network => 256,
            }),
            next_hops: MacSlots::new(2),
            dhcp,
            config,
            control,
            receivers,
        })
    }

    /// The pipeline of worker `worker` of `workers`.
    ///
    /// # Errors
    /// As [`NatSpec::new`] (the checks passed there, so only on a changed config).
    pub fn build(
        &self,
        worker: usize,
        workers: usize,
        now: Instant,
    ) -> Result<NatMode, NatModeError> {
        NatMode::new(self, worker, workers.max(1), now)
    }
}
