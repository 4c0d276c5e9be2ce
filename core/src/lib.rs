//! vnet-core: the machinery under every vnet-bench mode.
//!
//! Layers, bottom up (a packet travels them in this order):
//!
//! - [`wire`]: zero-copy checked views and small `Repr` values for every header the
//!   dataplane reads or writes (Ethernet/802.1Q, ARP, IPv4, ICMPv4, UDP, TCP, DHCP, IPv6),
//!   plus full and incremental (RFC 1624) checksums.
//! - [`frame`]: the worker's frame memory ([`frame::FramePool`], the UMEM for AF_XDP) and
//!   the [`frame::Pkt`] descriptors that move through the worker instead of bytes.
//! - [`offload`]: ingress normalisation of frames as guests send them: partial TCP/UDP
//!   checksums completed, TSO super-frames cut into segments, so no mode sees either.
//! - [`port`]: the batch-oriented [`port::Port`] trait and its backends: `xdp` (AF_XDP via
//!   xsk-rs), `mem` (in-process rings), `pcap` (captures as input/output) and the `capture`
//!   tee that wraps any port.
//! - [`pipeline`]: the sans-IO contract between the engine and a mode: packets and `now`
//!   in, one [`pipeline::Verdict`] per packet out.
//! - [`counters`]: per-port, per-drop-reason counters, written by one worker, summed on read.
//! - [`engine`]: busy-polling workers pinned to cores, running rx -> pipeline -> tx.
//! - [`time`]: the monotonic [`time::Instant`] every mode takes as an argument.
#![warn(missing_docs)]

pub mod counters;
pub mod engine;
pub mod fastpath;
pub mod frame;
pub mod offload;
pub mod pipeline;
pub mod port;
pub mod time;
pub mod wire;
