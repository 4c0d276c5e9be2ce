//! The case list: every directional cell of a mode's row, for ICMP echo, UDP and TCP,
//! generated from the table (data-driven: a new mode needs a row, not new code).
//!
//! Invariants:
//! - a `+` cell gives one [`Variant::Plain`] case per protocol expecting delivery;
//! - a `-` cell gives one [`Variant::Plain`] case per protocol expecting that nothing
//!   arrives;
//! - a "port forward" cell gives three cases per protocol: [`Variant::NoRule`] (blocked),
//!   [`Variant::Rule`] (exactly the forwarded port passes) and [`Variant::OtherPort`]
//!   (the rule exists, another port is still blocked); ICMP, which has no port to
//!   forward, gets the same three cases all expecting nothing to arrive (its rule
//!   variants install a UDP rule on the same port);
//! - case names are unique within a mode: `MODE/DIRECTION/PROTO[/VARIANT]`.

use super::table::{Direction, Proto, Reach, Role};
use crate::cli::ModeName;
use std::fmt;
use std::net::Ipv4Addr;

/// The port every endpoint's echo services (UDP and TCP) listen on.
pub const ECHO_PORT: u16 = 7;

/// The external port of the forward rule port-forward cases install.
pub const FORWARDED_PORT: u16 = 2222;

/// The external port port-forward cases try without a rule for it.
pub const OTHER_PORT: u16 = 2223;

/// Which of a cell's cases this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// The only case of a `+` or `-` cell.
    Plain,
    /// Port forward, no rule installed: blocked.
    NoRule,
    /// Port forward, a rule for the protocol and port: delivered.
    Rule,
    /// Port forward, a rule for another port exists: blocked.
    OtherPort,
}

impl Variant {
    /// Suffix of the case name (empty for plain cases).
    pub fn suffix(self) -> &'static str {
        match self {
            Variant::Plain => "",
            Variant::NoRule => "/no-rule",
            Variant::Rule => "/rule",
            Variant::OtherPort => "/other-port",
        }
    }
}

/// Which source address the receiver must see on a delivered exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedSource {
    /// The sender's own IP address and MAC (the L2 modes).
    Sender,
    /// A translated IP address (NAT: the external address or the gateway); the MAC is
    /// the dataplane's and is not checked.
    Translated(Ipv4Addr),
    /// The sender's own IP address and port, seen behind a router (NAT's inbound port
    /// forwards keep the remote source): the MAC is the router's and is not checked.
    Routed,
}

/// What a case must observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expect {
    /// The exchange completes both ways and the receiver sees `source`.
    Deliver {
        /// The source the receiver must see.
        source: ExpectedSource,
    },
    /// No probe frame reaches the receiver's port.
    Block,
}

impl Expect {
    /// `+` or `-`.
    pub fn symbol(self) -> &'static str {
        match self {
            Expect::Deliver { .. } => "+",
            Expect::Block => "-",
        }
    }
}

/// A port-forward rule a case installs (VirtualBox's `name,proto,hostip,hostport,
/// guestip,guestport` with empty host and guest IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ForwardRule {
    /// The forwarded protocol.
    pub proto: Proto,
    /// The external port.
    pub host_port: u16,
    /// The guest's port.
    pub guest_port: u16,
}

/// Where the sender addresses its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// The receiver's own address and [`ECHO_PORT`].
    Receiver,
    /// A translated address (a port forward's external address and port).
    Via {
        /// Address the sender uses.
        ip: Ipv4Addr,
        /// Port the sender uses (UDP and TCP).
        port: u16,
    },
}

/// One case: a direction, a protocol, what must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// `MODE/DIRECTION/PROTO[/VARIANT]`.
    pub name: String,
    /// The directional cell.
    pub direction: Direction,
    /// The traffic.
    pub proto: Proto,
    /// Plain, or one of the three port-forward variants.
    pub variant: Variant,
    /// What must be observed.
    pub expect: Expect,
    /// Where the sender sends.
    pub target: Target,
    /// The rule installed in the dataplane for this case, if any.
    pub forward: Option<ForwardRule>,
}

impl Case {
    /// Who sends.
    pub fn sender(&self) -> Role {
        self.direction.from()
    }

    /// Who must (not) receive.
    pub fn receiver(&self) -> Role {
        self.direction.to()
    }
}

impl fmt::Display for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// How a mode translates what it delivers, so that cases know which source and target
/// to expect. The L2 modes deliver untouched (the default); the NAT modes fill it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Translation {
    /// Source the receiver sees for traffic going out to `inet` (NAT: the external
    /// address); `None`: the sender's own.
    pub outbound_source: Option<Ipv4Addr>,
    /// Source the host sees for traffic from a guest (NAT: the host loopback mapping);
    /// `None`: the sender's own.
    pub to_host_source: Option<Ipv4Addr>,
    /// The address port forwards listen on (NAT: the external address).
    pub forward_address: Option<Ipv4Addr>,
    /// The address port forwards listen on for the host (NAT: the dataplane's address on
    /// the host link); `None`: [`Translation::forward_address`].
    pub host_forward_address: Option<Ipv4Addr>,
    /// The host loopback mapping (NAT: 10.0.2.2): guests reach the host's TCP and UDP
    /// services through it, and see the host's forwarded traffic coming from it. ICMP
    /// echo to it is answered by the gateway itself, so ICMP cases aim at the host's own
    /// address (routed through the same host-link NAPT).
    pub host_loopback: Option<Ipv4Addr>,
    /// Inbound traffic crosses a router (NAT): a guest sees the remote sender's own IP
    /// and port from the router's MAC ([`ExpectedSource::Routed`]).
    pub routed: bool,
}

/// Whether a protocol can be port-forwarded (VirtualBox's rules are `tcp` or `udp`).
pub fn forwardable(proto: Proto) -> bool {
    proto != Proto::Icmp
}

/// Every case of one mode's row.
pub fn cases_for(mode: ModeName, row: &[Reach; 6], translation: Translation) -> Vec<Case> {
    let mut cases = Vec::new();
    for (i, direction) in Direction::ALL.into_iter().enumerate() {
        for proto in Proto::ALL {
            let base = format!("{}/{}/{}", mode.as_str(), direction.slug(), proto.name());
            let source = match direction {
                Direction::VmToInet => translation.outbound_source,
                Direction::VmToHost => translation.to_host_source,
                Direction::HostToVm => translation.host_loopback,
                _ => None,
            }
            .map_or(
                if translation.routed && direction == Direction::InetToVm {
                    ExpectedSource::Routed
                } else {
                    ExpectedSource::Sender
                },
                ExpectedSource::Translated,
            );
            // Guests reach the host's TCP and UDP services through the loopback mapping.
            let plain_target = match (direction, translation.host_loopback) {
                (Direction::VmToHost, Some(ip)) if forwardable(proto) => Target::Via {
                    ip,
                    port: ECHO_PORT,
                },
                _ => Target::Receiver,
            };
            let plain = |expect| Case {
                name: base.clone(),
                direction,
                proto,
                variant: Variant::Plain,
                expect,
                target: plain_target,
                forward: None,
            };
            match row[i] {
                Reach::Yes => cases.push(plain(Expect::Deliver { source })),
                Reach::No | Reach::Mixed => cases.push(plain(Expect::Block)),
                Reach::PortForward => {
                    // ICMP has no port to forward: its rule variants install a UDP rule
                    // and still expect nothing to reach the guest.
                    let rule = ForwardRule {
                        proto: if forwardable(proto) {
                            proto
                        } else {
                            Proto::Udp
                        },
                        host_port: FORWARDED_PORT,
                        guest_port: ECHO_PORT,
                    };
                    let address = match direction {
                        Direction::HostToVm => translation
                            .host_forward_address
                            .or(translation.forward_address),
                        _ => translation.forward_address,
                    };
                    let via = |port| match address {
                        Some(ip) => Target::Via { ip, port },
                        None => Target::Receiver,
                    };
                    let variant = |variant: Variant, expect, target, forward| Case {
                        name: format!("{base}{}", variant.suffix()),
                        direction,
                        proto,
                        variant,
                        expect,
                        target,
                        forward,
                    };
                    cases.push(variant(
                        Variant::NoRule,
                        Expect::Block,
                        via(FORWARDED_PORT),
                        None,
                    ));
                    cases.push(variant(
                        Variant::Rule,
                        if forwardable(proto) {
                            Expect::Deliver { source }
                        } else {
                            Expect::Block
                        },
                        via(FORWARDED_PORT),
                        Some(rule),
                    ));
                    cases.push(variant(
                        Variant::OtherPort,
                        Expect::Block,
                        via(OTHER_PORT),
                        Some(rule),
                    ));
                }
            }
        }
    }
    cases
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::table::expected_directional;
    use std::collections::BTreeSet;

    #[test]
    fn every_cell_and_protocol_has_cases_with_unique_names() {
        for mode in [ModeName::Internal, ModeName::Bridged, ModeName::Nat] {
            let row = expected_directional(mode);
            let cases = cases_for(mode, &row, Translation::default());
            let names: BTreeSet<_> = cases.iter().map(|c| c.name.clone()).collect();
            assert_eq!(names.len(), cases.len());
            let forwards = row.iter().filter(|r| **r == Reach::PortForward).count();
            assert_eq!(
                cases.len(),
                3 * (6 - forwards) + 9 * forwards,
                "{}",
                mode.as_str()
            );
        }
    }

    #[test]
    fn port_forward_cells_are_three_cases() {
        let row = expected_directional(ModeName::Nat);
        let translation = Translation {
            forward_address: Some(Ipv4Addr::new(198, 18, 0, 2)),
            ..Translation::default()
        };
        let cases = cases_for(ModeName::Nat, &row, translation);
        let inet_tcp: Vec<_> = cases
            .iter()
            .filter(|c| c.direction == Direction::InetToVm && c.proto == Proto::Tcp)
            .collect();
        assert_eq!(inet_tcp.len(), 3);
        assert_eq!(inet_tcp[0].name, "nat/inet-vm/tcp/no-rule");
        assert_eq!(inet_tcp[0].expect, Expect::Block);
        assert!(matches!(inet_tcp[1].expect, Expect::Deliver { .. }));
        assert_eq!(
            inet_tcp[1].forward.map(|r| r.host_port),
            Some(FORWARDED_PORT)
        );
        assert_eq!(
            inet_tcp[2].target,
            Target::Via {
                ip: Ipv4Addr::new(198, 18, 0, 2),
                port: OTHER_PORT
            }
        );
        assert_eq!(inet_tcp[2].expect, Expect::Block);
    }
}
