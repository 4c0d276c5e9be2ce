//! vnet-modes: VirtualBox's five network modes as sans-IO pipelines.
//!
//! Every mode implements [`vnet_core::pipeline::Pipeline`]: it is handed `now` and a batch
//! of packets and answers one verdict per packet; it never reads a clock, does I/O or
//! allocates per packet. Modes are built from reusable stages:
//!
//! - [`switch`]: the learning Ethernet switch (bounded, aging FDB);
//! - [`dhcp`]: the RFC 2131/2132 DHCP server stage;
//! - [`layout`]: which port is a VM, the host or the uplink;
//! - [`gateway`]: the dataplane's own addresses (ARP, ICMP echo, DHCP), answered in place;
//! - [`guard`]: per VM port rate limits (broadcast, ARP to the services) and ARP claims;
//! - [`neighbor`]: the own address on a routed link and the next hop's MAC (ARP);
//! - [`dns_proxy`]: the NAT modes' DNS proxy (forward upstream, or SERVFAIL);
//! - [`segment`]: the switched pipeline the three L2 modes share;
//! - [`internal`]: the Internal mode (`intnet`), a switch among VM ports;
//! - [`host_only`]: the Host-only mode, VMs and host with a DHCP server;
//! - [`bridged`]: the Bridged mode, a learning bridge of VMs, host and uplink;
//! - [`nat`]: the NAPT stage (RFC 4787/5382/5508), port forwarding;
//! - [`natmode`]: the NAT and NAT Network modes built on it;
//! - [`any`]: any mode behind one type, for the engine.
#![warn(missing_docs)]

pub mod any;
pub mod bridged;
pub mod dhcp;
pub mod dns_proxy;
pub mod gateway;
pub mod guard;
pub mod host_only;
pub mod internal;
pub mod layout;
pub mod nat;
pub mod natmode;
pub mod neighbor;
pub mod segment;
pub mod switch;
