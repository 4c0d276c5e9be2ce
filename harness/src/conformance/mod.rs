//! The conformance suite (`vnet-bench conformance`): proves, by real traffic between
//! independent TCP/IP stacks, that each mode delivers exactly what its row of `MODES.md`
//! promises, and prints Table 1-1 as observed next to the seed's.
//!
//! Layers:
//! - [`table`]: the directional table and Table 1-1 as data, and the derivation rule;
//! - [`cases`]: the case list, generated from a mode's row (ICMP echo, UDP, TCP per cell;
//!   three cases per "port forward" cell);
//! - [`plan`]: what is under test ([`ModeUnderTest`]: the mode, its ports, its endpoints,
//!   its pipeline's constructor, so a test can plug in a broken one);
//! - [`endpoint`]: smoltcp stacks on `mem` ports, with echo services and DHCP clients;
//! - [`probe`]: the raw frames of `-` cases (directed unicast, broadcast, ARP), marked;
//! - [`CaseRunner`]: where cases run; [`mem_backend`] runs each case on a fresh
//!   in-memory dataplane in virtual time; [`live_backend`] runs them between real Linux
//!   stacks in the harness's namespaces, across `vnet-bench run` on AF_XDP (or, with
//!   `--dut kernel`, the kernel configured as the mode: [`kernel_peer`]);
//! - [`report`]: observed vs expected tables, per-case lines, the behaviour suites, JSON
//!   and pcap output;
//! - [`suite`], [`nat_suite`], [`dhcp_suite`]: behaviour suites, one case per RFC
//!   requirement, on crafted frames through a whole pipeline in virtual time (NAT: RFC
//!   4787/5382/5508 on the NAT and NAT Network pipelines; DHCP: RFC 2131 on Host-only),
//!   printed after the tables and counted in the verdict.
//!
//! NAT modes in the tables: guests by DHCP (10.0.2.15 each in NAT, 10.0.2.x on one
//! segment in NAT Network), the host on the host link (198.19.0.1; guests reach its
//! TCP/UDP services as 10.0.2.2 and it sees them from 198.19.0.2), `inet` the uplink's
//! next hop (198.18.0.1; it sees the external address 198.18.0.2). Port-forward `/rule`
//! cases install their rule at run time, after the guests have their addresses, through
//! the pipeline's control channel (`NatSpec::control`), as `VBoxManage controlvm ...
//! natpf1` / `natnetwork modify --port-forward-4` would.
//!
//! Invariants:
//! - a case's verdict comes from what crossed the ports' wires and what the endpoints'
//!   stacks completed, never from the dataplane's own counters or state (the counters
//!   only decorate the evidence);
//! - a `+` case needs the exchange to complete both ways *and* the receiver to see the
//!   source the mode must deliver; a `-` case needs every probe to stay away from the
//!   receiver's port (or, where the mode has no such port, from every port the sender
//!   must not reach);
//! - the `mem` backend is deterministic: the same modes give byte-identical JSON.

pub mod cases;
pub mod corpus_suite;
pub mod dhcp_suite;
pub mod endpoint;
pub mod evidence;
pub mod kernel_peer;
pub mod live_backend;
pub mod live_net;
pub mod mem_backend;
pub mod nat_suite;
pub mod plan;
pub mod probe;
pub mod report;
pub mod suite;
pub mod table;

pub use plan::{ModeUnderTest, PipelineFactory};
pub use report::{CaseResult, ModeReport, Report, SCHEMA};

use crate::cli::ModeName;
use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use std::path::PathBuf;
use std::str::FromStr;

/// Which modes `conformance` runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModeSelection {
    /// Every mode the dataplane implements.
    All,
    /// One mode.
    One(ModeName),
}

impl FromStr for ModeSelection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(ModeSelection::All);
        }
        ModeName::from_str(s, true).map(ModeSelection::One).map_err(|_| {
            format!("{s:?} is not a mode: use all, host-only, internal, bridged, nat or nat-network")
        })
    }
}

/// Where the conformance traffic runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ConformanceBackend {
    /// In-process rings and smoltcp endpoints, in virtual time (unprivileged, anywhere).
    Mem,
    /// AF_XDP on veth pairs in the harness's namespaces, real Linux endpoints (root).
    Xdp,
}

/// `vnet-bench conformance` arguments.
#[derive(Debug, Clone, Args)]
pub struct ConformanceArgs {
    /// The mode to prove (`all`: every mode the dataplane implements).
    #[arg(long, value_name = "MODE|all", default_value = "all")]
    pub mode: ModeSelection,
    /// Where to run the traffic.
    #[arg(long, value_enum, default_value_t = ConformanceBackend::Mem)]
    pub backend: ConformanceBackend,
    /// Write every case with its result and evidence to FILE as JSON
    /// (schema `vnet-bench/conformance/1`).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write every port's traffic of every case as pcap under DIR.
    #[arg(long, value_name = "DIR")]
    pub capture: Option<PathBuf>,
    /// With `--backend xdp`: what forwards between the namespaces (`kernel`: the Linux
    /// kernel configured as the mode, for comparison).
    #[arg(long, value_enum, default_value_t = Dut::Vnet)]
    pub dut: Dut,
}

/// The device under test of the live backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dut {
    /// `vnet-bench run` on AF_XDP.
    Vnet,
    /// `vnet-bench run --offload xdp`, with GRO on at every endpoint's veth so that the
    /// kernel can deliver the fast path's redirects: established flows leave from the XDP
    /// fast path, and every verdict must stay the same.
    VnetOffload,
    /// The Linux kernel (bridge, routing, nftables, dnsmasq) on the same namespaces.
    Kernel,
}

/// A case's result as a backend reports it, before it becomes part of a report.
#[derive(Debug, Clone)]
pub struct CaseRun {
    /// Whether traffic got through (the exchange completed, or a probe leaked).
    pub reached: bool,
    /// Whether the case observed what it must.
    pub pass: bool,
    /// What was seen, in one line.
    pub evidence: String,
    /// Every port's wire, in port order, with the port's name.
    pub traces: Vec<(String, endpoint::Trace)>,
}

/// Where cases run: the `mem` backend ([`mem_backend::MemBackend`]) or the live backend
/// ([`live_backend::LiveBackend`]: real namespaces and Linux stacks). A runner gets one case at a time
/// and must judge it by what crossed the ports, as the module invariants say.
pub trait CaseRunner {
    /// `mem` or `xdp` (for the report).
    fn name(&self) -> &'static str;
    /// Run one case of `mode` from a fresh topology.
    fn run_case(&mut self, mode: &ModeUnderTest, case: &cases::Case) -> CaseRun;
}

/// Run every case of `modes` on `runner`.
pub fn run_with(modes: &[ModeUnderTest], runner: &mut dyn CaseRunner) -> Report {
    let modes = modes
        .iter()
        .map(|m| {
            let expected = m.expected();
            let results = cases::cases_for(m.mode, &expected, m.translation)
                .into_iter()
                .map(|case| {
                    let run = runner.run_case(m, &case);
                    CaseResult {
                        case,
                        reached: run.reached,
                        pass: run.pass,
                        evidence: run.evidence,
                        traces: run.traces,
                    }
                })
                .collect();
            let ports = table::Role::ALL
                .into_iter()
                .filter_map(|r| m.port_of(r).map(|p| (p, r.name().to_string())))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_values()
                .collect();
            ModeReport::new(
                m.mode,
                m.label.clone(),
                m.pipeline_name.clone(),
                ports,
                expected,
                results,
            )
        })
        .collect();
    Report {
        backend: runner.name().into(),
        modes,
        suites: Vec::new(),
    }
}

/// The behaviour suites that go with `modes`: the NAT suite on each NAT mode's pipeline,
/// the DHCP suite (on the Host-only pipeline) when Host-only is among them. They always
/// run in memory, whatever the backend of the tables.
pub fn suites_for(modes: &[ModeUnderTest]) -> Vec<suite::SuiteReport> {
    let mut out = Vec::new();
    for m in modes {
        out.push(corpus_suite::run(m.mode));
        match m.mode {
            ModeName::HostOnly => out.push(dhcp_suite::run()),
            ModeName::Nat => out.push(nat_suite::run(vnet_modes::natmode::NatFlavor::PerVm)),
            ModeName::NatNetwork => {
                out.push(nat_suite::run(vnet_modes::natmode::NatFlavor::Network))
            }
            ModeName::Internal | ModeName::Bridged => {}
        }
    }
    out
}

/// Run every case of `modes` live ([`live_backend`]): one topology per mode in the
/// harness's own namespaces, `exe` (a `vnet-bench` binary) as the dataplane, or the
/// kernel with [`live_backend::Dut::Kernel`]. Needs root (and AF_XDP for the dataplane).
pub fn run_live(
    modes: &[ModeUnderTest],
    exe: impl Into<PathBuf>,
    dut: live_backend::Dut,
) -> Report {
    let mut runner = live_backend::LiveBackend::new(exe, dut);
    let report = run_with(modes, &mut runner);
    runner.finish();
    report
}

/// Run every case of `modes` on the `mem` backend.
pub fn run_mem(modes: &[ModeUnderTest]) -> Report {
    run_with(modes, &mut mem_backend::MemBackend)
}

/// `vnet-bench conformance`: run, print the tables and the cases, write the JSON and
/// captures asked for. `Ok(true)` only when every case matched; the caller turns
/// `false` into exit status 1.
///
/// # Errors
/// For the `xdp` backend without root or AF_XDP, a mode the dataplane does not implement,
/// or output files that cannot be written.
pub fn run(args: ConformanceArgs) -> Result<bool> {
    let modes = match args.mode {
        ModeSelection::All => ModeUnderTest::all(),
        ModeSelection::One(mode) => match ModeUnderTest::for_mode(mode) {
            Some(m) => vec![m],
            None => {
                let have: Vec<String> = ModeUnderTest::all()
                    .iter()
                    .map(|m| m.label.clone())
                    .collect();
                bail!(
                    "mode {} is not implemented by the dataplane yet; conformance can run: {}",
                    mode.as_str(),
                    have.join(", ")
                );
            }
        },
    };
    let mut report = match args.backend {
        ConformanceBackend::Mem => run_mem(&modes),
        ConformanceBackend::Xdp => {
            crate::preflight::require_root("vnet-bench conformance --backend xdp")?;
            let dut = match args.dut {
                Dut::Kernel => live_backend::Dut::Kernel,
                Dut::Vnet => {
                    crate::preflight::require_af_xdp()?;
                    live_backend::Dut::Xdp
                }
                Dut::VnetOffload => {
                    crate::preflight::require_af_xdp()?;
                    live_backend::Dut::XdpOffload
                }
            };
            let exe = std::env::current_exe().context("cannot find the vnet-bench binary")?;
            let live: Vec<ModeUnderTest> = if dut == live_backend::Dut::Kernel {
                modes
                    .iter()
                    .filter(|m| match kernel_peer::comparable(m.mode) {
                        Ok(()) => true,
                        Err(why) => {
                            println!("kernel: {}: {why}; left out", m.label);
                            false
                        }
                    })
                    .cloned()
                    .collect()
            } else {
                modes.clone()
            };
            run_live(&live, exe, dut)
        }
    };
    report.suites = suites_for(&modes);
    report.print_tables();
    println!();
    report.print_cases();
    if !report.suites.is_empty() {
        println!();
        print!("{}", report.suites_text());
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json())
            .with_context(|| format!("cannot write the JSON report to {}", path.display()))?;
        println!("json: {}", path.display());
    }
    if let Some(dir) = &args.capture {
        let n = report
            .write_captures(dir)
            .with_context(|| format!("cannot write captures under {}", dir.display()))?;
        println!("captures: {n} pcap files under {}", dir.display());
    }
    let (total, passed) = report.counts();
    let (stotal, spassed) = report.suite_counts();
    println!(
        "conformance ({} backend): {passed}/{total} cases pass, behaviour suites {spassed}/{stotal}; verdict: {}",
        report.backend,
        if report.all_pass() { "PASS" } else { "FAIL" }
    );
    Ok(report.all_pass())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Parser, Subcommand};

    /// The shape of the real command line: top-level `--mode`/`--backend` for the main
    /// job and a `conformance` subcommand with its own.
    #[derive(Debug, Parser)]
    struct Cli {
        #[arg(long, value_enum)]
        mode: Option<ModeName>,
        #[arg(long, value_enum, default_value_t = crate::cli::BackendChoice::Auto)]
        backend: crate::cli::BackendChoice,
        #[command(subcommand)]
        command: Option<Command>,
    }

    #[derive(Debug, Subcommand)]
    enum Command {
        Conformance(ConformanceArgs),
    }

    fn parse(args: &[&str]) -> Result<ConformanceArgs, clap::Error> {
        let cli = Cli::try_parse_from(std::iter::once("vnet-bench").chain(args.iter().copied()))?;
        match cli.command {
            Some(Command::Conformance(a)) => Ok(a),
            None => panic!("no subcommand"),
        }
    }

    #[test]
    fn arguments_parse_with_defaults() {
        let a = parse(&["conformance"]).unwrap();
        assert_eq!(a.mode, ModeSelection::All);
        assert_eq!(a.backend, ConformanceBackend::Mem);
        assert!(a.json.is_none() && a.capture.is_none());
        let a = parse(&[
            "conformance",
            "--mode",
            "host-only",
            "--backend",
            "xdp",
            "--json",
            "out.json",
            "--capture",
            "pcaps",
        ])
        .unwrap();
        assert_eq!(a.mode, ModeSelection::One(ModeName::HostOnly));
        assert_eq!(a.backend, ConformanceBackend::Xdp);
        assert_eq!(a.json.as_deref(), Some(std::path::Path::new("out.json")));
        assert_eq!(a.capture.as_deref(), Some(std::path::Path::new("pcaps")));
        assert_eq!(
            parse(&["conformance", "--mode", "ALL"]).unwrap().mode,
            ModeSelection::All
        );
        let err = parse(&["conformance", "--mode", "nat-networks"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not a mode"), "{err}");
    }

    fn args(mode: ModeSelection, backend: ConformanceBackend) -> ConformanceArgs {
        ConformanceArgs {
            mode,
            backend,
            json: None,
            capture: None,
            dut: Dut::Vnet,
        }
    }

    #[test]
    fn live_backend_without_root_and_missing_modes_are_refused_in_one_sentence() {
        if !crate::preflight::is_root() {
            let e = run(args(ModeSelection::All, ConformanceBackend::Xdp)).unwrap_err();
            assert!(e.to_string().contains("needs root"), "{e}");
        }
        for mode in [
            ModeName::HostOnly,
            ModeName::Internal,
            ModeName::Bridged,
            ModeName::Nat,
            ModeName::NatNetwork,
        ] {
            if ModeUnderTest::for_mode(mode).is_none() {
                let e = run(args(ModeSelection::One(mode), ConformanceBackend::Mem)).unwrap_err();
                let want = format!("mode {} is not implemented", mode.as_str());
                assert!(e.to_string().contains(&want), "{e}");
            }
        }
    }

    #[test]
    fn run_writes_json_and_says_whether_everything_passed() {
        let dir = std::env::temp_dir().join(format!("vnet-bench-conf-run-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("verdict.json");
        let mut a = args(
            ModeSelection::One(ModeName::Internal),
            ConformanceBackend::Mem,
        );
        a.json = Some(json.clone());
        assert!(run(a).unwrap());
        let text = std::fs::read_to_string(&json).unwrap();
        assert!(
            text.starts_with("{\n  \"schema\": \"vnet-bench/conformance/1\""),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
