//! vnet-modes: VirtualBox's five network modes as sans-IO pipelines.
//!
//! Every mode implements [`vnet_core::pipeline::Pipeline`]: it is handed `now` and a batch
//! of packets and answers one verdict per packet; it never reads a clock, does I/O or
//! allocates per packet. Modes are built from reusable stages:
//!
//! - [`switch`]: the learning Ethernet switch (bounded, aging FDB);
//! - [`dhcp`]: the RFC 2131/2132 DHCP server stage;
//! - [`internal`]: the Internal mode (`intnet`), a switch among VM ports.
#![warn(missing_docs)]

pub mod dhcp;
pub mod internal;
pub mod switch;
