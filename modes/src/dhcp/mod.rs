//! The DHCP server stage (RFC 2131, RFC 2132, RFC 6842), sans-IO.
//!
//! The stage works on DHCP payloads: the caller strips Ethernet/IPv4/UDP from a frame
//! to port 67, hands the payload and `now` to [`DhcpServer::handle_bytes`] (or a parsed
//! [`DhcpRepr`](vnet_core::wire::dhcp::DhcpRepr) to [`DhcpServer::handle`]) and, for a
//! reply, wraps it again as its [`ReplyDest`] says.
//!
//! - [`config`]: [`DhcpServerConfig`], its VirtualBox presets and its validation;
//! - [`leases`]: the bounded [`LeaseTable`] (one slot per pool
//!   address, a client index, a deadline heap);
//! - [`server`]: [`DhcpServer`], the RFC 2131 state logic, the reply rules of Table 3 and
//!   4.1, and the [`DhcpCounters`];
//! - [`lease_file`]: the persisted lease file (control plane only).
//!
//! Invariants: the data path ([`DhcpServer::handle`], [`DhcpServer::handle_bytes`],
//! [`DhcpServer::poll`]) reads no clock, does no I/O and does not allocate; memory is
//! bounded by the pool size, fixed at construction; every message is answered or its
//! silence counted.

pub mod config;
pub mod lease_file;
pub mod leases;
pub mod server;

pub use config::{
    DhcpConfigError, DhcpServerConfig, DEFAULT_DECLINE_QUARANTINE, DEFAULT_LEASES_PER_PORT,
    DEFAULT_LEASE_TIME, DEFAULT_OFFER_HOLD, MAX_LEASES_CAP, MAX_POOL_LEN,
};
pub use lease_file::LeaseFileError;
pub use leases::{ClientKey, Lease, LeaseState, LeaseTable};
pub use server::{DhcpCounters, DhcpReply, DhcpServer, ReplyDest};
