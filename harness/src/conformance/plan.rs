//! What is under test: a mode (whose row of `MODES.md` is expected), the ports of its
//! topology, its endpoints' identities and the constructor of its pipeline.
//!
//! Invariants:
//! - ports follow [`PortLayout`]: `vm1` is port 0, `vm2` port 1, then the host port if the
//!   layout has one, then the uplink (`inet`) if it has one;
//! - every role has a plan even where the mode has no port for it: absent endpoints keep
//!   a static, notional address so that `-` cases can still aim probes at them;
//! - MACs, addresses and seeds are fixed: two runs of the same plan are identical;
//! - the expected row is always the mode's row of `MODES.md`; a test can plug in another
//!   pipeline or layout, never another expectation.

use super::cases::{ForwardRule, Translation};
use super::endpoint::EndpointPlan;
use super::table::{expected_directional, DirectionalRow, Role};
use crate::cli::ModeName;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vnet_core::frame::{FramePool, Pkt, PortId};
use vnet_core::pipeline::{Emitter, Pipeline, Verdict};
use vnet_core::time::Instant;
use vnet_modes::bridged::BridgedMode;
use vnet_modes::dhcp::DhcpServerConfig;
use vnet_modes::host_only::{HostOnlyConfig, HostOnlyMode};
use vnet_modes::internal::InternalConfig;
use vnet_modes::layout::PortLayout;
use vnet_modes::nat::ForwardRule as NatForwardRule;
use vnet_modes::natmode::pipeline::ControlMsg;
use vnet_modes::natmode::{HostLink, NatFlavor, NatModeConfig, NatSpec};
use vnet_modes::segment::SegmentSpec;
use vnet_modes::switch::SwitchConfig;

/// Builds a mode's pipeline for a topology, with the port-forward rules a case needs,
/// at dataplane time `now`. Errors are one sentence. A mode with a run-time control
/// channel (NAT) ignores the rules here and returns a [`RuleControl`] instead: the
/// backend installs the case's rule through it once the guests have their addresses.
pub type PipelineFactory =
    Arc<dyn Fn(&PortLayout, &[ForwardRule], Instant) -> Result<Built, String> + Send + Sync>;

/// Installs a port-forward rule into a running pipeline: `(rule, guest address, guest's
/// realm)` -> the rule as the mode's own syntax writes it (for the evidence).
pub type RuleControl = Box<dyn FnMut(&ForwardRule, Ipv4Addr, u16) -> Result<String, String>>;

/// A built pipeline and, where the mode has one, its run-time rule control.
pub struct Built {
    /// The pipeline.
    pub pipeline: Box<dyn Pipeline>,
    /// Run-time port-forward control (`None`: rules are given at build time).
    pub control: Option<RuleControl>,
}

impl Built {
    /// A pipeline whose rules (if any) were given at build time.
    pub fn fixed(pipeline: Box<dyn Pipeline>) -> Self {
        Self {
            pipeline,
            control: None,
        }
    }
}

impl fmt::Debug for Built {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Built")
            .field("control", &self.control.is_some())
            .finish()
    }
}

/// A boxed pipeline as a [`Pipeline`] (the worker is generic over its pipeline).
pub struct BoxedPipeline(pub Box<dyn Pipeline>);

impl fmt::Debug for BoxedPipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BoxedPipeline")
    }
}

impl Pipeline for BoxedPipeline {
    fn process(
        &mut self,
        now: Instant,
        pool: &mut FramePool,
        pkts: &mut [Pkt],
        verdicts: &mut [Verdict],
    ) {
        self.0.process(now, pool, pkts, verdicts)
    }
    fn observe_handoff(&mut self, now: Instant, bytes: &[u8], ingress: PortId) {
        self.0.observe_handoff(now, bytes, ingress)
    }
    fn poll_at(&self) -> Option<Instant> {
        self.0.poll_at()
    }
    fn poll(&mut self, now: Instant, pool: &mut FramePool, out: &mut Emitter) {
        self.0.poll(now, pool, out)
    }
}

/// The fixed MAC of a role (locally administered, `02:76:6e` = "vn").
pub const fn mac_of(role: Role) -> [u8; 6] {
    match role {
        Role::Vm1 => [0x02, 0x76, 0x6e, 0x00, 0x00, 0x01],
        Role::Vm2 => [0x02, 0x76, 0x6e, 0x00, 0x00, 0x02],
        Role::Host => [0x02, 0x76, 0x6e, 0x00, 0x01, 0x00],
        Role::Inet => [0x02, 0x76, 0x6e, 0x00, 0x02, 0x00],
    }
}

/// Internal's guests (the main job's addresses), and notional host and `inet` addresses
/// on the same subnet (the harshest place for them: a leak would be answered).
pub const INTERNAL_ADDRS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(192, 168, 60, 11),
    Ipv4Addr::new(192, 168, 60, 12),
    Ipv4Addr::new(192, 168, 60, 254),
    Ipv4Addr::new(192, 168, 60, 1),
];

/// Bridged: everyone on the uplink LAN 198.18.0.0/24 (DESIGN.md: `inet` 198.18.0.1).
pub const BRIDGED_ADDRS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(198, 18, 0, 11),
    Ipv4Addr::new(198, 18, 0, 12),
    Ipv4Addr::new(198, 18, 0, 254),
    Ipv4Addr::new(198, 18, 0, 1),
];

/// NAT modes: the external address on the uplink (`--external-ip`).
pub const NAT_EXTERNAL_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// NAT modes: `inet`, the uplink's next hop (`--gateway`).
pub const NAT_INET_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// NAT modes: the dataplane's address on the host link.
pub const NAT_HOST_LINK_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 2);
/// NAT modes: the host's address on the host link.
pub const NAT_HOST_IP: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// NAT modes: the host loopback mapping guests use to reach the host.
pub const NAT_HOST_LOOPBACK: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// A NAT or NAT Network pipeline over `layout` (one worker), with run-time rule control
/// through the spec's control channel (VirtualBox's `controlvm natpf1` /
/// `natnetwork modify --port-forward-4`): a rule sent there is applied at the worker's
/// next timer poll.
fn nat_pipeline(flavor: NatFlavor, layout: &PortLayout, now: Instant) -> Result<Built, String> {
    if layout.uplink().is_none() {
        return Err("a NAT mode needs an uplink port".into());
    }
    let mut config = NatModeConfig::new(flavor, layout.vms(), NAT_EXTERNAL_IP, NAT_INET_IP);
    if layout.host().is_some() {
        config.host = Some(HostLink {
            own_ip: NAT_HOST_LINK_IP,
            host_ip: NAT_HOST_IP,
        });
    }
    let default_guest = config.guest_addrs().default_guest;
    let spec = NatSpec::new(config, 1, now).map_err(|e| format!("nat mode: {e}"))?;
    let pipeline = spec
        .build(0, 1, now)
        .map_err(|e| format!("nat mode: {e}"))?;
    let control = spec.control[0].clone();
    let install = move |rule: &ForwardRule, guest: Ipv4Addr, realm: u16| {
        let proto = rule.proto.name();
        let (text, parsed) = match flavor {
            NatFlavor::PerVm => {
                let guest_field = if guest == default_guest {
                    String::new()
                } else {
                    guest.to_string()
                };
                let text = format!(
                    "conf-{proto},{proto},,{},{guest_field},{}",
                    rule.host_port, rule.guest_port
                );
                let parsed = NatForwardRule::parse_natpf(&text, realm, default_guest);
                (format!("natpf{} \"{text}\"", realm + 1), parsed)
            }
            NatFlavor::Network => {
                let text = format!(
                    "conf-{proto}:{proto}:[]:{}:[{guest}]:{}",
                    rule.host_port, rule.guest_port
                );
                let parsed = NatForwardRule::parse_natnetwork(&text);
                (format!("--port-forward-4 \"{text}\""), parsed)
            }
        };
        let parsed = parsed.map_err(|e| e.to_string())?;
        control
            .send(ControlMsg::Add(parsed))
            .map_err(|e| format!("control channel: {e}"))?;
        Ok(text)
    };
    Ok(Built {
        pipeline: Box::new(pipeline),
        control: Some(Box::new(install)),
    })
}

/// A mode under test.
#[derive(Clone)]
pub struct ModeUnderTest {
    /// The mode whose row of `MODES.md` is expected.
    pub mode: ModeName,
    /// Name in the report (the mode's name unless a test says otherwise).
    pub label: String,
    /// The ports of the topology.
    pub layout: PortLayout,
    /// Each role's identity, indexed by [`Role::index`].
    pub endpoints: [EndpointPlan; 4],
    /// What the mode translates (nothing for the L2 modes).
    pub translation: Translation,
    /// Name of the pipeline (for the report).
    pub pipeline_name: String,
    /// The pipeline's constructor.
    pub pipeline: PipelineFactory,
}

impl fmt::Debug for ModeUnderTest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModeUnderTest")
            .field("mode", &self.mode.as_str())
            .field("label", &self.label)
            .field("layout", &self.layout)
            .field("endpoints", &self.endpoints)
            .field("pipeline", &self.pipeline_name)
            .finish()
    }
}

fn static_plans(addrs: [Ipv4Addr; 4], prefix: u8) -> [EndpointPlan; 4] {
    Role::ALL.map(|r| EndpointPlan::fixed(mac_of(r), addrs[r.index()], prefix))
}

impl ModeUnderTest {
    /// Internal (`intnet`): two guests on 192.168.60.0/24, no host, no uplink.
    pub fn internal() -> Self {
        Self {
            mode: ModeName::Internal,
            label: "internal".into(),
            layout: PortLayout::new(2, false, false),
            endpoints: static_plans(INTERNAL_ADDRS, 24),
            translation: Translation::default(),
            pipeline_name: "vnet-modes internal".into(),
            pipeline: Arc::new(|layout, _rules, now| {
                // The Internal switch over the VM ports; any extra port of the layout
                // (a test's host or uplink wire) is attached but never a member.
                let mut spec = SegmentSpec::internal(InternalConfig::new(layout.vms()), now)
                    .map_err(|e| format!("internal mode: {e}"))?;
                spec.layout = *layout;
                Ok(Built::fixed(Box::new(spec.build(0))))
            }),
        }
    }

    /// Bridged: guests, host and `inet` all on 198.18.0.0/24.
    pub fn bridged() -> Self {
        Self {
            mode: ModeName::Bridged,
            label: "bridged".into(),
            layout: PortLayout::new(2, true, true),
            endpoints: static_plans(BRIDGED_ADDRS, 24),
            translation: Translation::default(),
            pipeline_name: "vnet-modes bridged".into(),
            pipeline: Arc::new(|layout, _rules, _now| {
                Ok(Built::fixed(Box::new(BridgedMode::bridged(
                    *layout,
                    SwitchConfig::default(),
                ))))
            }),
        }
    }

    /// Host-only (`vboxnet0`) with VirtualBox's defaults: host 192.168.56.1/24, guests
    /// by DHCP from the server at 192.168.56.100; no uplink (`inet` is notional).
    pub fn host_only() -> Self {
        let mut endpoints = static_plans(INTERNAL_ADDRS, 24);
        endpoints[Role::Vm1.index()] = EndpointPlan::dhcp(mac_of(Role::Vm1));
        endpoints[Role::Vm2.index()] = EndpointPlan::dhcp(mac_of(Role::Vm2));
        endpoints[Role::Host.index()] = EndpointPlan::fixed(
            mac_of(Role::Host),
            vnet_modes::host_only::DEFAULT_HOST_IP,
            24,
        );
        endpoints[Role::Inet.index()] =
            EndpointPlan::fixed(mac_of(Role::Inet), BRIDGED_ADDRS[3], 24);
        Self {
            mode: ModeName::HostOnly,
            label: "host-only".into(),
            layout: PortLayout::new(2, true, false),
            endpoints,
            translation: Translation::default(),
            pipeline_name: "vnet-modes host-only".into(),
            pipeline: Arc::new(|layout, _rules, now| {
                let config = HostOnlyConfig {
                    vms: layout.vms(),
                    switch: SwitchConfig::default(),
                    dhcp: Some(DhcpServerConfig::host_only()),
                };
                let mode = HostOnlyMode::host_only(config, now)
                    .map_err(|e| format!("host-only mode: {e}"))?;
                Ok(Built::fixed(Box::new(mode)))
            }),
        }
    }

    /// NAT with VirtualBox's defaults: each guest alone in its own 10.0.2.0/24 (both get
    /// 10.0.2.15 by DHCP from their own engine), the host on the host link (198.19.0.1,
    /// the dataplane 198.19.0.2; guests reach it as 10.0.2.2), `inet` beyond the uplink
    /// (198.18.0.1, the next hop; the external address is 198.18.0.2).
    pub fn nat() -> Self {
        Self::routed(NatFlavor::PerVm)
    }

    /// NAT Network with VirtualBox's defaults: both guests on one segment 10.0.2.0/24 (by
    /// DHCP from 10.0.2.3), host and `inet` as for [`ModeUnderTest::nat`].
    pub fn nat_network() -> Self {
        Self::routed(NatFlavor::Network)
    }

    fn routed(flavor: NatFlavor) -> Self {
        let mut endpoints = static_plans(INTERNAL_ADDRS, 24);
        endpoints[Role::Vm1.index()] = EndpointPlan::dhcp(mac_of(Role::Vm1));
        endpoints[Role::Vm2.index()] = EndpointPlan::dhcp(mac_of(Role::Vm2));
        endpoints[Role::Host.index()] = EndpointPlan::fixed(mac_of(Role::Host), NAT_HOST_IP, 24);
        endpoints[Role::Inet.index()] = EndpointPlan::fixed(mac_of(Role::Inet), NAT_INET_IP, 24);
        let (mode, label) = match flavor {
            NatFlavor::PerVm => (ModeName::Nat, "nat"),
            NatFlavor::Network => (ModeName::NatNetwork, "nat-network"),
        };
        Self {
            mode,
            label: label.into(),
            layout: PortLayout::new(2, true, true),
            endpoints,
            translation: Translation {
                outbound_source: Some(NAT_EXTERNAL_IP),
                to_host_source: Some(NAT_HOST_LINK_IP),
                forward_address: Some(NAT_EXTERNAL_IP),
                host_forward_address: Some(NAT_HOST_LINK_IP),
                host_loopback: Some(NAT_HOST_LOOPBACK),
                routed: true,
            },
            pipeline_name: format!("vnet-modes {label}"),
            pipeline: Arc::new(move |layout, _rules, now| nat_pipeline(flavor, layout, now)),
        }
    }

    /// The mode's standard setup, where the dataplane implements it.
    pub fn for_mode(mode: ModeName) -> Option<Self> {
        match mode {
            ModeName::Internal => Some(Self::internal()),
            ModeName::Bridged => Some(Self::bridged()),
            ModeName::HostOnly => Some(Self::host_only()),
            ModeName::Nat => Some(Self::nat()),
            ModeName::NatNetwork => Some(Self::nat_network()),
        }
    }

    /// Every mode `--mode all` runs, in `MODES.md` order.
    pub fn all() -> Vec<Self> {
        [
            ModeName::HostOnly,
            ModeName::Internal,
            ModeName::Bridged,
            ModeName::Nat,
            ModeName::NatNetwork,
        ]
        .into_iter()
        .filter_map(Self::for_mode)
        .collect()
    }

    /// The same, with another pipeline (e.g. a deliberately broken one).
    pub fn with_pipeline(
        mut self,
        name: &str,
        factory: impl Fn(&PortLayout, &[ForwardRule], Instant) -> Result<Box<dyn Pipeline>, String>
            + Send
            + Sync
            + 'static,
    ) -> Self {
        self.pipeline_name = name.into();
        self.pipeline =
            Arc::new(move |layout, rules, now| factory(layout, rules, now).map(Built::fixed));
        self
    }

    /// The same, on another layout (e.g. Internal with host and uplink wires attached).
    pub fn with_layout(mut self, layout: PortLayout) -> Self {
        self.layout = layout;
        self
    }

    /// The same, under another name in the report.
    pub fn with_label(mut self, label: &str) -> Self {
        self.label = label.into();
        self
    }

    /// The expected directional row (`MODES.md`).
    pub fn expected(&self) -> DirectionalRow {
        expected_directional(self.mode)
    }

    /// The dataplane port of a role, if the topology has one.
    pub fn port_of(&self, role: Role) -> Option<PortId> {
        match role {
            Role::Vm1 => (self.layout.vms() >= 1).then_some(0),
            Role::Vm2 => (self.layout.vms() >= 2).then_some(1),
            Role::Host => self.layout.host(),
            Role::Inet => self.layout.uplink(),
        }
    }

    /// The plan of a role.
    pub fn plan(&self, role: Role) -> &EndpointPlan {
        &self.endpoints[role.index()]
    }
}
