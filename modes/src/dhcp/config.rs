//! The DHCP server's configuration and its validation.
//!
//! A [`DhcpServerConfig`] is plain data; [`DhcpServerConfig::validate`] checks it once at
//! construction (control plane), so the data path never meets an inconsistent one.
//! Invariants after validation: the subnet mask is contiguous and shorter than /31; the
//! server address, the pool and the router lie inside the subnet; the pool excludes the
//! network and broadcast addresses, the server and the router; the pool has at most
//! [`MAX_POOL_LEN`] addresses; at most [`MAX_LEASES_CAP`] leases are held at once.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use vnet_core::wire::dhcp::{DNS_SERVERS_MAX, DOMAIN_NAME_MAX};

use super::lease_file::LeaseFileError;

/// The largest pool: a /16.
pub const MAX_POOL_LEN: usize = 65536;
/// The hard cap on leases offered or bound at once (the table is bounded whatever the
/// pool size).
pub const MAX_LEASES_CAP: usize = 4096;
/// Default lease time: one hour.
pub const DEFAULT_LEASE_TIME: Duration = Duration::from_secs(3600);
/// Default time an offered address stays reserved for the client it was offered to.
pub const DEFAULT_OFFER_HOLD: Duration = Duration::from_secs(60);
/// Default time a declined address stays unusable.
pub const DEFAULT_DECLINE_QUARANTINE: Duration = Duration::from_secs(300);

/// The default share of the pool one ingress port may hold: a VM or container needs one
/// lease per interface; a few more cover nested guests or a restart with a new client id.
pub const DEFAULT_LEASES_PER_PORT: usize = 8;

/// Everything a [`super::DhcpServer`] serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpServerConfig {
    /// The server's own address: the server identifier (option 54) and reply source.
    pub server_ip: Ipv4Addr,
    /// The subnet mask handed out (option 1); with `server_ip` it defines the subnet.
    pub subnet_mask: Ipv4Addr,
    /// The default gateway handed out (option 3), if any.
    pub router: Option<Ipv4Addr>,
    /// DNS servers handed out (option 6), at most [`DNS_SERVERS_MAX`].
    pub dns_servers: Vec<Ipv4Addr>,
    /// The domain name handed out (option 15), at most [`DOMAIN_NAME_MAX`] bytes.
    pub domain_name: Option<String>,
    /// First address of the pool.
    pub pool_start: Ipv4Addr,
    /// Last address of the pool (inclusive).
    pub pool_end: Ipv4Addr,
    /// Lease time granted (option 51); T1 and T2 are 1/2 and 7/8 of it.
    pub lease_time: Duration,
    /// How long an offered address stays reserved for its client.
    pub offer_hold: Duration,
    /// Most leases offered or bound at once; `None`: the pool size, capped at
    /// [`MAX_LEASES_CAP`].
    pub max_leases: Option<usize>,
    /// Most leases offered or bound at once to clients asking from one ingress port
    /// (default [`DEFAULT_LEASES_PER_PORT`]): a guest sending DISCOVERs with random client
    /// addresses takes this many and no more, the rest of the pool stays for the others.
    pub max_leases_per_port: usize,
    /// How long a declined address is kept out of the pool.
    pub decline_quarantine: Duration,
    /// Where leases persist across restarts, if anywhere (see [`super::lease_file`]).
    pub lease_file: Option<PathBuf>,
}

/// Why a configuration (or its lease file) cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DhcpConfigError {
    /// The mask is not a run of ones followed by zeros, or leaves no room for hosts.
    #[error("subnet mask {0} is not a contiguous mask between /1 and /30")]
    InvalidSubnetMask(Ipv4Addr),
    /// `pool_start > pool_end`.
    #[error("pool start {start} is after pool end {end}")]
    PoolReversed {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
    },
    /// An address that must be in the subnet is not.
    #[error("{what} {addr} is outside the subnet {network}/{mask}")]
    OutsideSubnet {
        /// Which address ("pool start", "pool end", "router").
        what: &'static str,
        /// The address.
        addr: Ipv4Addr,
        /// The server's network.
        network: Ipv4Addr,
        /// The subnet mask.
        mask: Ipv4Addr,
    },
    /// The pool contains an address it must not hand out.
    #[error("the pool {start}-{end} contains the {what} {addr}")]
    PoolContains {
        /// First address.
        start: Ipv4Addr,
        /// Last address.
        end: Ipv4Addr,
        /// Which address ("server address", "router", "network address", ...).
        what: &'static str,
        /// The address.
        addr: Ipv4Addr,
    },
    /// The pool has more than [`MAX_POOL_LEN`] addresses.
    #[error("the pool has {len} addresses, at most {max} are supported")]
    PoolTooLarge {
        /// Pool size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `max_leases_per_port` is zero.
    #[error("max_leases_per_port must be at least 1")]
    MaxLeasesPerPort,
    /// `max_leases` is zero or above [`MAX_LEASES_CAP`].
    #[error("max_leases {requested} must be between 1 and {max}")]
    MaxLeases {
        /// The configured value.
        requested: usize,
        /// The limit.
        max: usize,
    },
    /// A duration is zero or does not fit the 32-bit seconds of a DHCP option.
    #[error("{what} {value:?} must be between 1 s and {max} s")]
    Duration {
        /// Which duration.
        what: &'static str,
        /// The configured value.
        value: Duration,
        /// The limit in seconds.
        max: u32,
    },
    /// More DNS servers than a reply carries.
    #[error("{count} DNS servers configured, at most {max} are supported")]
    TooManyDnsServers {
        /// How many were configured.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The domain name is empty or too long.
    #[error("domain name {0:?} must be 1 to {DOMAIN_NAME_MAX} bytes")]
    DomainName(String),
    /// The lease file could not be read or is corrupt.
    #[error(transparent)]
    LeaseFile(#[from] LeaseFileError),
}

/// Largest lease time: 0xffffffff means "infinity" in option 51 (RFC 2132 9.2) and is
/// not offered.
const MAX_LEASE_SECS: u32 = u32::MAX - 1;

impl DhcpServerConfig {
    /// A server at `server_ip` in the subnet `subnet_mask`, leasing `pool_start..=pool_end`,
    /// with no router, DNS or domain, and the default times and limits.
    pub fn new(
        server_ip: Ipv4Addr,
        subnet_mask: Ipv4Addr,
        pool_start: Ipv4Addr,
        pool_end: Ipv4Addr,
    ) -> Self {
        DhcpServerConfig {
            server_ip,
            subnet_mask,
            router: None,
            dns_servers: Vec::new(),
            domain_name: None,
            pool_start,
            pool_end,
            lease_time: DEFAULT_LEASE_TIME,
            offer_hold: DEFAULT_OFFER_HOLD,
            max_leases: None,
            max_leases_per_port: DEFAULT_LEASES_PER_PORT,
            decline_quarantine: DEFAULT_DECLINE_QUARANTINE,
            lease_file: None,
        }
    }

    /// VirtualBox's Host-only default (`vboxnet0`): server 192.168.56.100/24, pool
    /// 192.168.56.101-192.168.56.254, no router, no DNS.
    pub fn host_only() -> Self {
        Self::new(
            Ipv4Addr::new(192, 168, 56, 100),
            Ipv4Addr::new(255, 255, 255, 0),
            Ipv4Addr::new(192, 168, 56, 101),
            Ipv4Addr::new(192, 168, 56, 254),
        )
    }

    /// VirtualBox's NAT default: server and gateway 10.0.2.2, DNS 10.0.2.3, guests from
    /// 10.0.2.15 (up to 16 clients, .15-.30).
    pub fn nat() -> Self {
        let mut config = Self::new(
            Ipv4Addr::new(10, 0, 2, 2),
            Ipv4Addr::new(255, 255, 255, 0),
            Ipv4Addr::new(10, 0, 2, 15),
            Ipv4Addr::new(10, 0, 2, 30),
        );
        config.router = Some(Ipv4Addr::new(10, 0, 2, 2));
        config.dns_servers = vec![Ipv4Addr::new(10, 0, 2, 3)];
        config
    }

    /// VirtualBox's NAT Network default: server 10.0.2.3, gateway and DNS 10.0.2.1,
    /// pool 10.0.2.4-10.0.2.254.
    pub fn nat_network() -> Self {
        let mut config = Self::new(
            Ipv4Addr::new(10, 0, 2, 3),
            Ipv4Addr::new(255, 255, 255, 0),
            Ipv4Addr::new(10, 0, 2, 4),
            Ipv4Addr::new(10, 0, 2, 254),
        );
        config.router = Some(Ipv4Addr::new(10, 0, 2, 1));
        config.dns_servers = vec![Ipv4Addr::new(10, 0, 2, 1)];
        config
    }

    /// Number of addresses in the pool (0 if reversed).
    pub fn pool_len(&self) -> usize {
        let (s, e) = (u32::from(self.pool_start), u32::from(self.pool_end));
        if s > e {
            0
        } else {
            (e - s) as usize + 1
        }
    }

    /// The lease limit in force: `max_leases`, or the pool size capped at
    /// [`MAX_LEASES_CAP`].
    pub fn effective_max_leases(&self) -> usize {
        self.max_leases
            .unwrap_or_else(|| self.pool_len().min(MAX_LEASES_CAP))
    }

    /// Whether `addr` is in the server's subnet.
    pub fn in_subnet(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::from(self.subnet_mask);
        u32::from(addr) & mask == u32::from(self.server_ip) & mask
    }

    /// Checks every rule of the module docs.
    ///
    /// # Errors
    /// The first rule broken, as a [`DhcpConfigError`].
    pub fn validate(&self) -> Result<(), DhcpConfigError> {
        let mask = u32::from(self.subnet_mask);
        if mask == 0
            || mask.leading_ones() + mask.trailing_zeros() != 32
            || mask.trailing_zeros() < 2
        {
            return Err(DhcpConfigError::InvalidSubnetMask(self.subnet_mask));
        }
        let network = Ipv4Addr::from(u32::from(self.server_ip) & mask);
        let broadcast = Ipv4Addr::from(u32::from(self.server_ip) | !mask);
        let outside = |what, addr| DhcpConfigError::OutsideSubnet {
            what,
            addr,
            network,
            mask: self.subnet_mask,
        };
        if self.server_ip == network || self.server_ip == broadcast {
            return Err(outside("server address", self.server_ip));
        }
        let (start, end) = (self.pool_start, self.pool_end);
        if u32::from(start) > u32::from(end) {
            return Err(DhcpConfigError::PoolReversed { start, end });
        }
        for (what, addr) in [("pool start", start), ("pool end", end)] {
            if !self.in_subnet(addr) {
                return Err(outside(what, addr));
            }
        }
        let in_pool = |a: Ipv4Addr| (u32::from(start)..=u32::from(end)).contains(&u32::from(a));
        let mut forbidden = vec![
            ("network address", network),
            ("broadcast address", broadcast),
            ("server address", self.server_ip),
        ];
        if let Some(router) = self.router {
            if !self.in_subnet(router) {
                return Err(outside("router", router));
            }
            forbidden.push(("router", router));
        }
        for (what, addr) in forbidden {
            if in_pool(addr) {
                return Err(DhcpConfigError::PoolContains {
                    start,
                    end,
                    what,
                    addr,
                });
            }
        }
        let len = self.pool_len();
        if len > MAX_POOL_LEN {
            return Err(DhcpConfigError::PoolTooLarge {
                len,
                max: MAX_POOL_LEN,
            });
        }
        if self.max_leases_per_port == 0 {
            return Err(DhcpConfigError::MaxLeasesPerPort);
        }
        if let Some(n) = self.max_leases {
            if n == 0 || n > MAX_LEASES_CAP {
                return Err(DhcpConfigError::MaxLeases {
                    requested: n,
                    max: MAX_LEASES_CAP,
                });
            }
        }
        for (what, value) in [
            ("lease_time", self.lease_time),
            ("offer_hold", self.offer_hold),
            ("decline_quarantine", self.decline_quarantine),
        ] {
            if value.as_secs() == 0 || value.as_secs() > u64::from(MAX_LEASE_SECS) {
                return Err(DhcpConfigError::Duration {
                    what,
                    value,
                    max: MAX_LEASE_SECS,
                });
            }
        }
        if self.dns_servers.len() > DNS_SERVERS_MAX {
            return Err(DhcpConfigError::TooManyDnsServers {
                count: self.dns_servers.len(),
                max: DNS_SERVERS_MAX,
            });
        }
        if let Some(name) = &self.domain_name {
            if name.is_empty() || name.len() > DOMAIN_NAME_MAX {
                return Err(DhcpConfigError::DomainName(name.clone()));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid() {
        for c in [
            DhcpServerConfig::host_only(),
            DhcpServerConfig::nat(),
            DhcpServerConfig::nat_network(),
        ] {
            c.validate().unwrap();
        }
        assert_eq!(DhcpServerConfig::host_only().pool_len(), 154);
        assert_eq!(DhcpServerConfig::nat().effective_max_leases(), 16);
    }

    #[test]
    fn invalid_configs_are_rejected_with_the_broken_rule() {
        let ip = |d| Ipv4Addr::new(192, 168, 56, d);
        let base = DhcpServerConfig::host_only();
        let check = |f: &dyn Fn(&mut DhcpServerConfig), want: &str| {
            let mut c = base.clone();
            f(&mut c);
            let err = c.validate().expect_err(want).to_string();
            assert!(err.contains(want), "{err:?} does not mention {want:?}");
        };
        check(
            &|c| {
                c.pool_start = ip(200);
                c.pool_end = ip(150);
            },
            "is after pool end",
        );
        check(
            &|c| c.pool_end = Ipv4Addr::new(192, 168, 57, 10),
            "outside the subnet",
        );
        check(&|c| c.pool_start = ip(100), "contains the server address");
        check(&|c| c.pool_end = ip(255), "broadcast address");
        check(
            &|c| c.subnet_mask = Ipv4Addr::new(255, 0, 255, 0),
            "not a contiguous",
        );
        check(&|c| c.router = Some(ip(150)), "contains the router");
        check(
            &|c| c.router = Some(Ipv4Addr::new(10, 0, 0, 1)),
            "router 10.0.0.1 is outside",
        );
        check(&|c| c.max_leases = Some(0), "max_leases 0");
        check(&|c| c.max_leases = Some(MAX_LEASES_CAP + 1), "max_leases");
        check(&|c| c.lease_time = Duration::ZERO, "lease_time");
        check(&|c| c.dns_servers = vec![ip(1); 5], "5 DNS servers");
        check(&|c| c.domain_name = Some(String::new()), "domain name");
        check(
            &|c| {
                c.subnet_mask = Ipv4Addr::new(255, 254, 0, 0);
                c.server_ip = Ipv4Addr::new(10, 0, 0, 1);
                c.pool_start = Ipv4Addr::new(10, 0, 0, 2);
                c.pool_end = Ipv4Addr::new(10, 1, 255, 254);
            },
            "at most 65536",
        );
    }
}
