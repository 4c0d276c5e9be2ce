//! Port-forwarding rules: static mappings from an external port to an inside endpoint.
//!
//! A rule is control-plane data (a name, allocated on the control path). Installed with
//! [`Napt::add_forward`](super::Napt::add_forward), it becomes a static mapping in the
//! worker's tables: inbound traffic to its external port is translated to its inside
//! endpoint whatever the filtering, and outbound traffic from that inside endpoint leaves
//! from its external port. Every worker holds every rule, so a forwarded flow works
//! whichever worker sees its packets.
//!
//! Invariants (kept by `add_forward`): rule names are unique; no two rules of one protocol
//! share an external port on overlapping external addresses (`None` overlaps everything).
//!
//! Both of VirtualBox's rule syntaxes parse into a [`ForwardRule`]:
//! [`ForwardRule::parse_natpf`] (`--natpf1 "name,proto,hostip,hostport,guestip,guestport"`)
//! and [`ForwardRule::parse_natnetwork`] (`--port-forward-4
//! "name:proto:[hostip]:hostport:[guestip]:guestport"`).

use core::fmt;
use std::net::Ipv4Addr;

/// The transport protocol a rule forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForwardProto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for ForwardProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForwardProto::Tcp => "tcp",
            ForwardProto::Udp => "udp",
        })
    }
}

/// One port-forwarding rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ForwardRule {
    /// Unique name (VirtualBox's rule name).
    pub name: Box<str>,
    /// Forwarded protocol.
    pub proto: ForwardProto,
    /// External address the rule listens on; `None`: every external address.
    pub external_ip: Option<Ipv4Addr>,
    /// External port (not 0).
    pub external_port: u16,
    /// Realm of the inside endpoint (the VM's NAT in NAT mode; 0 in NAT Network).
    pub realm: u16,
    /// Inside address.
    pub inside_ip: Ipv4Addr,
    /// Inside port (not 0).
    pub inside_port: u16,
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForwardError {
    /// Another rule already has this name.
    #[error("forward rule name '{name}' is already in use")]
    DuplicateName {
        /// The name.
        name: Box<str>,
    },
    /// Another rule takes the same protocol and external port on an overlapping address.
    #[error(
        "forward rule '{rule}' collides with rule '{existing}': both take {proto} port {port} on {}",
        describe_overlap(.overlap)
    )]
    Collision {
        /// The refused rule.
        rule: Box<str>,
        /// The installed rule it collides with.
        existing: Box<str>,
        /// The protocol.
        proto: ForwardProto,
        /// The external port.
        port: u16,
        /// The address both cover (`None`: all).
        overlap: Option<Ipv4Addr>,
    },
    /// An external or inside port of 0.
    #[error("forward rule '{rule}' uses port 0")]
    PortZero {
        /// The refused rule.
        rule: Box<str>,
    },
    /// The worker already holds [`MAX_FORWARDS`] rules.
    #[error("forward rule '{rule}' refused: {MAX_FORWARDS} rules already installed")]
    TooMany {
        /// The refused rule.
        rule: Box<str>,
    },
}

fn describe_overlap(overlap: &Option<Ipv4Addr>) -> String {
    overlap.map_or_else(|| "every external address".to_string(), |ip| ip.to_string())
}

/// Most rules one worker holds.
pub const MAX_FORWARDS: usize = 1024;

/// Why a rule string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad forward rule '{spec}': {reason}")]
pub struct ForwardParseError {
    /// The text given.
    pub spec: Box<str>,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ForwardRule {
    /// Parses VirtualBox's NAT syntax `name,proto,hostip,hostport,guestip,guestport` for the
    /// VM whose NAT is `realm`: an empty `hostip` means every external address, an empty
    /// `guestip` the guest's DHCP address `default_guest` (10.0.2.15 in VirtualBox).
    ///
    /// # Errors
    ///
    /// [`ForwardParseError`] saying which field is wrong.
    pub fn parse_natpf(
        spec: &str,
        realm: u16,
        default_guest: Ipv4Addr,
    ) -> Result<Self, ForwardParseError> {
        let err = |reason| ForwardParseError {
            spec: spec.into(),
            reason,
        };
        let f: Vec<&str> = spec.split(',').map(str::trim).collect();
        if f.len() != 6 {
            return Err(err("expected 6 comma-separated fields"));
        }
        let guest = if f[4].is_empty() {
            default_guest
        } else {
            f[4].parse()
                .map_err(|_| err("guest ip is not an IPv4 address"))?
        };
        Self::from_fields(spec, f[0], f[1], f[2], f[3], guest, f[5], realm)
    }

    /// Parses VirtualBox's NAT Network syntax
    /// `name:proto:[hostip]:hostport:[guestip]:guestport` (brackets optional, an empty
    /// `hostip` means every external address, the guest address is required); realm 0.
    ///
    /// # Errors
    ///
    /// [`ForwardParseError`] saying which field is wrong.
    pub fn parse_natnetwork(spec: &str) -> Result<Self, ForwardParseError> {
        let err = |reason| ForwardParseError {
            spec: spec.into(),
            reason,
        };
        let f: Vec<&str> = spec.split(':').map(str::trim).collect();
        if f.len() != 6 {
            return Err(err("expected 6 colon-separated fields"));
        }
        let unbracket = |s: &'static str, v: &str| -> Result<String, ForwardParseError> {
            match (v.starts_with('['), v.ends_with(']')) {
                (true, true) if v.len() >= 2 => Ok(v[1..v.len() - 1].trim().to_string()),
                (false, false) => Ok(v.to_string()),
                _ => Err(err(s)),
            }
        };
        let host = unbracket("unbalanced brackets around host ip", f[2])?;
        let guest = unbracket("unbalanced brackets around guest ip", f[4])?;
        if guest.is_empty() {
            return Err(err("guest ip is required"));
        }
        let guest = guest
            .parse()
            .map_err(|_| err("guest ip is not an IPv4 address"))?;
        Self::from_fields(spec, f[0], f[1], &host, f[3], guest, f[5], 0)
    }

    #[allow(clippy::too_many_arguments)]
    fn from_fields(
        spec: &str,
        name: &str,
        proto: &str,
        host: &str,
        host_port: &str,
        guest: Ipv4Addr,
        guest_port: &str,
        realm: u16,
    ) -> Result<Self, ForwardParseError> {
        let err = |reason| ForwardParseError {
            spec: spec.into(),
            reason,
        };
        if name.is_empty() {
            return Err(err("empty rule name"));
        }
        let proto = match proto.to_ascii_lowercase().as_str() {
            "tcp" => ForwardProto::Tcp,
            "udp" => ForwardProto::Udp,
            _ => return Err(err("protocol must be tcp or udp")),
        };
        let external_ip = if host.is_empty() {
            None
        } else {
            Some(
                host.parse()
                    .map_err(|_| err("host ip is not an IPv4 address"))?,
            )
        };
        let port = |s: &str, what| match s.parse::<u16>() {
            Ok(p) if p != 0 => Ok(p),
            _ => Err(err(what)),
        };
        Ok(ForwardRule {
            name: name.into(),
            proto,
            external_ip,
            external_port: port(host_port, "host port must be 1..=65535")?,
            realm,
            inside_ip: guest,
            inside_port: port(guest_port, "guest port must be 1..=65535")?,
        })
    }

    /// Whether the two rules take the same protocol and port on an overlapping address;
    /// the address they share (`None`: all).
    pub(crate) fn overlap(&self, other: &ForwardRule) -> Option<Option<Ipv4Addr>> {
        if self.proto != other.proto || self.external_port != other.external_port {
            return None;
        }
        match (self.external_ip, other.external_ip) {
            (None, None) => Some(None),
            (Some(a), None) | (None, Some(a)) => Some(Some(a)),
            (Some(a), Some(b)) if a == b => Some(Some(a)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

    #[test]
    fn natpf_syntax() {
        let r = ForwardRule::parse_natpf("ssh,tcp,,2222,,22", 3, GUEST).unwrap();
        assert_eq!(
            r,
            ForwardRule {
                name: "ssh".into(),
                proto: ForwardProto::Tcp,
                external_ip: None,
                external_port: 2222,
                realm: 3,
                inside_ip: GUEST,
                inside_port: 22,
            }
        );
        let r = ForwardRule::parse_natpf("dns,udp,127.0.0.1,5353,10.0.2.16,53", 0, GUEST).unwrap();
        assert_eq!(r.external_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(r.inside_ip, Ipv4Addr::new(10, 0, 2, 16));
        for bad in [
            "ssh,tcp,,2222,,",
            "ssh,sctp,,2222,,22",
            ",tcp,,2222,,22",
            "ssh,tcp,,0,,22",
            "ssh,tcp,x,1,,22",
            "ssh,tcp,,2222,22",
        ] {
            assert!(ForwardRule::parse_natpf(bad, 0, GUEST).is_err(), "{bad}");
        }
    }

    #[test]
    fn natnetwork_syntax() {
        let r = ForwardRule::parse_natnetwork("web:tcp:[]:8080:[10.0.2.4]:80").unwrap();
        assert_eq!(r.external_ip, None);
        assert_eq!(r.inside_ip, Ipv4Addr::new(10, 0, 2, 4));
        assert_eq!((r.external_port, r.inside_port, r.realm), (8080, 80, 0));
        let r = ForwardRule::parse_natnetwork("w:UDP:198.18.0.2:53:10.0.2.4:53").unwrap();
        assert_eq!(r.external_ip, Some(Ipv4Addr::new(198, 18, 0, 2)));
        assert_eq!(r.proto, ForwardProto::Udp);
        assert!(ForwardRule::parse_natnetwork("web:tcp:[]:8080:[]:80").is_err());
        assert!(ForwardRule::parse_natnetwork("web:tcp:[:8080:[10.0.2.4]:80").is_err());
    }
}
