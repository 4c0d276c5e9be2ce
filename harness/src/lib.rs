//! vnet-bench: VirtualBox's five network modes as an AF_XDP poll-mode dataplane, and the
//! harness that proves and measures them.
//!
//! Layers:
//! - [`cli`]: the command-line contract (DESIGN.md);
//! - [`preflight`]: privilege, kernel and interface checks, each failing with one sentence;
//! - [`modespec`]: from `run`'s flags to a mode (ports, roles, pipeline recipe);
//! - [`configcheck`]: settings that do not fit together (interfaces given twice,
//!   overlapping networks, forward rules that cannot match), refused before anything
//!   starts;
//! - [`control`]: the NAT modes' control socket (port-forward rules at run time);
//! - [`corpus`]: the committed pcap corpus (`pcap gen`) and `replay` of captures;
//! - [`run`]: the dataplane as a service on existing interfaces (`vnet-bench run`), with
//!   [`portset`] (a worker's ports, opened together), [`workers`] (threads, paused to
//!   rebind), [`links`] and [`linkctl`] (interfaces that go down, vanish, come back),
//!   [`shutdown`] (signals, ending within two seconds), [`owner`] (which run holds an
//!   interface, so that a killed run's XDP programs are cleared at the next start);
//! - [`napictl`]: `run --napi auto`, switching the ports' NAPI deferral with their load;
//! - [`topo`]: the harness's own namespaces joined by veth pairs, removed on drop;
//! - [`mainjob`]: the embedded default job (`vnet-bench --mode MODE`), and the
//!   [`mainjob::Dataplane`] child-process handle the live tests use;
//! - [`scenario`]: real endpoint tools (DHCP clients, ping, iperf3) in the namespaces;
//! - [`guest`]: real QEMU guests on taps (image, accelerator, agent) for `--guest qemu`
//!   and the live VM tests;
//! - [`interrupt`]: Ctrl-C during a live main job removes what the job made;
//! - [`jobvm`]: the main job's guests, namespaces or QEMU, behind one trait;
//! - [`stats`]: counter tables.
#![warn(missing_docs)]

pub mod bench;
pub mod cli;
pub mod configcheck;
pub mod conformance;
pub mod control;
pub mod corpus;
pub mod fastpathctl;
pub mod guest;
pub mod interrupt;
pub mod jobvm;
pub mod linkctl;
pub mod links;
pub mod mainjob;
pub mod modespec;
pub mod napictl;
pub mod owner;
pub mod portset;
pub mod preflight;
pub mod run;
pub mod scenario;
pub mod shutdown;
pub mod stats;
pub mod topo;
pub mod vhostports;
pub mod workers;
