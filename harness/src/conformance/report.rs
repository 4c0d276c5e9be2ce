//! The verdict: per-case results, the observed tables next to the expected ones, JSON
//! and pcap output.
//!
//! Invariants:
//! - the observed directional cell is derived from the cases alone: per protocol, a
//!   plain case gives `+` when traffic got through (the exchange completed, or a probe
//!   leaked) and `-` otherwise; the three port-forward variants give "port forward" only
//!   as no-rule `-`, rule `+`, other-port `-` (a protocol no rule can forward, ICMP,
//!   counts only when something of it got through); protocols that disagree give `mixed`;
//! - observed Table 1-1 is [`derive_table_1_1`] of the observed directional row;
//! - a cell is marked `!!` when its observed value differs from the expected one or any
//!   of its cases failed; [`Report::all_pass`] is true only when every case passed;
//! - the JSON is a pure function of the results (no time stamps, no host names), so two
//!   runs of the deterministic `mem` backend give byte-identical JSON.

use super::cases::{Case, Expect, Variant};
use super::endpoint::Trace;
use super::suite::SuiteReport;
use super::table::{
    derive_table_1_1, expected_table_1_1, Direction, DirectionalRow, Proto, Reach, Table11Row,
    TABLE_1_1_COLUMNS,
};
use crate::cli::ModeName;
use serde::Serialize;
use std::fmt::Write as _;
use std::io;
use std::path::Path;
use std::time::Duration;

/// The JSON schema name and version (see [`Report::to_json`]).
pub const SCHEMA: &str = "vnet-bench/conformance/1";

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// Whether traffic got through (`+`) or not (`-`).
    pub reached: bool,
    /// Whether the case observed what it must.
    pub pass: bool,
    /// What was seen, in one line.
    pub evidence: String,
    /// Every port's wire during the case, in port order, with the port's name.
    pub traces: Vec<(String, Trace)>,
}

impl CaseResult {
    /// `+` or `-`.
    pub fn observed_symbol(&self) -> &'static str {
        if self.reached {
            "+"
        } else {
            "-"
        }
    }
}

/// The results of one mode.
#[derive(Debug, Clone)]
pub struct ModeReport {
    /// The mode whose row was expected.
    pub mode: ModeName,
    /// Its name in the report.
    pub label: String,
    /// The pipeline that ran.
    pub pipeline: String,
    /// The topology's ports, in port order.
    pub ports: Vec<String>,
    /// Every case, in table order.
    pub cases: Vec<CaseResult>,
    /// The expected directional row.
    pub expected: DirectionalRow,
    /// The observed directional row.
    pub observed: DirectionalRow,
}

impl ModeReport {
    /// Assemble a mode's report from its case results.
    pub fn new(
        mode: ModeName,
        label: String,
        pipeline: String,
        ports: Vec<String>,
        expected: DirectionalRow,
        cases: Vec<CaseResult>,
    ) -> Self {
        let observed = Direction::ALL.map(|d| observe_cell(&cases, d));
        Self {
            mode,
            label,
            pipeline,
            ports,
            cases,
            expected,
            observed,
        }
    }

    /// Whether every case of a direction passed.
    pub fn cell_cases_pass(&self, d: Direction) -> bool {
        self.cases
            .iter()
            .filter(|c| c.case.direction == d)
            .all(|c| c.pass)
    }

    /// Whether a directional cell is as expected (value and every case).
    pub fn cell_ok(&self, i: usize) -> bool {
        self.observed[i] == self.expected[i] && self.cell_cases_pass(Direction::ALL[i])
    }

    /// Expected Table 1-1 (the seed's).
    pub fn expected_table_1_1(&self) -> Table11Row {
        expected_table_1_1(self.mode)
    }

    /// Observed Table 1-1 (derived from the observed directional row).
    pub fn observed_table_1_1(&self) -> Table11Row {
        derive_table_1_1(&self.observed)
    }

    /// Whether a Table 1-1 cell is as expected (value and every case under it).
    pub fn table_1_1_ok(&self, i: usize) -> bool {
        let dirs: &[Direction] = match i {
            0 => &[Direction::VmToHost, Direction::HostToVm],
            1 => &[Direction::Vm1ToVm2, Direction::Vm2ToVm1],
            2 => &[Direction::VmToInet],
            _ => &[Direction::InetToVm],
        };
        self.observed_table_1_1()[i] == self.expected_table_1_1()[i]
            && dirs.iter().all(|d| self.cell_cases_pass(*d))
    }

    /// Whether every case passed.
    pub fn all_pass(&self) -> bool {
        self.cases.iter().all(|c| c.pass)
    }
}

/// The observed value of one directional cell from its cases.
fn observe_cell(cases: &[CaseResult], d: Direction) -> Reach {
    let mut cell: Option<Reach> = None;
    for proto in Proto::ALL {
        let of = |v: Variant| {
            cases
                .iter()
                .find(|c| c.case.direction == d && c.case.proto == proto && c.case.variant == v)
                .map(|c| c.reached)
        };
        // A protocol a rule cannot forward (ICMP) is consistent with "port forward" when
        // nothing of it got through; it says nothing about the cell otherwise.
        let unforwardable = cases.iter().any(|c| {
            c.case.direction == d
                && c.case.proto == proto
                && c.case.variant == Variant::Rule
                && c.case.expect == Expect::Block
        });
        let value = if let Some(plain) = of(Variant::Plain) {
            if plain {
                Reach::Yes
            } else {
                Reach::No
            }
        } else {
            match (
                of(Variant::NoRule),
                of(Variant::Rule),
                of(Variant::OtherPort),
            ) {
                (Some(false), Some(false), Some(false)) if unforwardable => continue,
                (Some(false), Some(true), Some(false)) => Reach::PortForward,
                (Some(false), Some(false), Some(false)) => Reach::No,
                (Some(true), Some(true), Some(true)) => Reach::Yes,
                (None, None, None) => continue,
                _ => Reach::Mixed,
            }
        };
        cell = match cell {
            None => Some(value),
            Some(c) if c == value => Some(c),
            Some(_) => Some(Reach::Mixed),
        };
    }
    cell.unwrap_or(Reach::No)
}

/// Everything one conformance run found.
#[derive(Debug, Clone)]
pub struct Report {
    /// `mem` or `xdp`.
    pub backend: String,
    /// One report per mode, in the order they ran.
    pub modes: Vec<ModeReport>,
    /// The behaviour suites that ran (NAT, DHCP), in order.
    pub suites: Vec<SuiteReport>,
}

/// One row of a printed table: label and `(observed, expected, ok)` cells.
type Row = (String, Vec<(String, String, bool)>);

fn render_table(title: &str, columns: &[&str], rows: &[Row]) -> String {
    let cells: Vec<(String, Vec<String>)> = rows
        .iter()
        .map(|(label, cells)| {
            let texts = cells
                .iter()
                .map(|(o, e, ok)| format!("{o}/{e}{}", if *ok { "" } else { " !!" }))
                .collect();
            (label.clone(), texts)
        })
        .collect();
    let mut widths: Vec<usize> = std::iter::once("mode".len())
        .chain(columns.iter().map(|c| c.len()))
        .collect();
    for (label, texts) in &cells {
        widths[0] = widths[0].max(label.len());
        for (i, t) in texts.iter().enumerate() {
            widths[i + 1] = widths[i + 1].max(t.len());
        }
    }
    let line = |items: Vec<&str>| {
        let mut s = String::from("|");
        for (i, item) in items.iter().enumerate() {
            let _ = write!(s, " {item:<w$} |", w = widths[i]);
        }
        s.push('\n');
        s
    };
    let mut out = format!("{title}\n");
    out += &line(
        std::iter::once("mode")
            .chain(columns.iter().copied())
            .collect(),
    );
    let mut rule = String::from("|");
    for w in &widths {
        let _ = write!(rule, "{}|", "-".repeat(w + 2));
    }
    out += &rule;
    out.push('\n');
    for (label, texts) in &cells {
        out += &line(
            std::iter::once(label.as_str())
                .chain(texts.iter().map(|t| t.as_str()))
                .collect(),
        );
    }
    out
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema: &'static str,
    backend: &'a str,
    all_pass: bool,
    modes: Vec<JsonMode<'a>>,
    suites: &'a [SuiteReport],
}

#[derive(Serialize)]
struct JsonMode<'a> {
    mode: &'static str,
    label: &'a str,
    pipeline: &'a str,
    ports: &'a [String],
    all_pass: bool,
    cases: Vec<JsonCase<'a>>,
    table: JsonTables,
}

#[derive(Serialize)]
struct JsonCase<'a> {
    name: &'a str,
    direction: &'static str,
    proto: &'static str,
    expected: &'static str,
    observed: &'static str,
    pass: bool,
    evidence: &'a str,
}

#[derive(Serialize)]
struct JsonTables {
    directional: JsonTable,
    table_1_1: JsonTable,
}

#[derive(Serialize)]
struct JsonTable {
    columns: Vec<&'static str>,
    expected: Vec<&'static str>,
    observed: Vec<&'static str>,
    ok: Vec<bool>,
}

impl Report {
    /// Whether every case of every mode and of every suite passed (the run's exit status).
    pub fn all_pass(&self) -> bool {
        self.modes.iter().all(|m| m.all_pass()) && self.suites.iter().all(|s| s.all_pass())
    }

    /// Number of suite cases and of passed suite cases.
    pub fn suite_counts(&self) -> (usize, usize) {
        let cases = self.suites.iter().flat_map(|s| &s.cases);
        cases.fold((0, 0), |(t, p), c| (t + 1, p + c.pass as usize))
    }

    /// Every suite's lines ([`SuiteReport::text`]), separated by blank lines.
    pub fn suites_text(&self) -> String {
        let texts: Vec<String> = self.suites.iter().map(|s| s.text()).collect();
        texts.join("\n")
    }

    /// Number of cases and of passed cases.
    pub fn counts(&self) -> (usize, usize) {
        let cases = self.modes.iter().flat_map(|m| &m.cases);
        let (total, passed) = cases.fold((0, 0), |(t, p), c| (t + 1, p + c.pass as usize));
        (total, passed)
    }

    /// The directional table and Table 1-1, observed/expected per cell, mismatches
    /// marked `!!`.
    pub fn tables_text(&self) -> String {
        let columns: Vec<&str> = Direction::ALL.iter().map(|d| d.label()).collect();
        let rows: Vec<Row> = self
            .modes
            .iter()
            .map(|m| {
                let cells = (0..6)
                    .map(|i| {
                        (
                            m.observed[i].to_string(),
                            m.expected[i].to_string(),
                            m.cell_ok(i),
                        )
                    })
                    .collect();
                (m.label.clone(), cells)
            })
            .collect();
        let mut out = render_table(
            "Directional table (observed/expected; `!!` marks a mismatch):",
            &columns,
            &rows,
        );
        let rows: Vec<Row> = self
            .modes
            .iter()
            .map(|m| {
                let (o, e) = (m.observed_table_1_1(), m.expected_table_1_1());
                let cells = (0..4)
                    .map(|i| (o[i].to_string(), e[i].to_string(), m.table_1_1_ok(i)))
                    .collect();
                (m.label.clone(), cells)
            })
            .collect();
        out.push('\n');
        out += &render_table(
            "Table 1-1 (observed/expected; `!!` marks a mismatch):",
            &TABLE_1_1_COLUMNS,
            &rows,
        );
        out
    }

    /// One line per case: `PASS|FAIL name expected/observed evidence`.
    pub fn cases_text(&self) -> String {
        let mut out = String::new();
        for m in &self.modes {
            for c in &m.cases {
                let _ = writeln!(
                    out,
                    "{} {} {}/{} {}",
                    if c.pass { "PASS" } else { "FAIL" },
                    c.case.name,
                    c.observed_symbol(),
                    c.case.expect.symbol(),
                    c.evidence
                );
            }
        }
        out
    }

    /// Print [`Report::tables_text`] to standard output.
    pub fn print_tables(&self) {
        print!("{}", self.tables_text());
    }

    /// Print [`Report::cases_text`] to standard output.
    pub fn print_cases(&self) {
        print!("{}", self.cases_text());
    }

    /// The report as JSON (`--json FILE`), schema `vnet-bench/conformance/1`:
    ///
    /// ```text
    /// {
    ///   "schema": "vnet-bench/conformance/1",
    ///   "backend": "mem" | "xdp",
    ///   "all_pass": bool,                 // every case of every mode passed
    ///   "modes": [{
    ///     "mode": "internal",             // the MODES.md row that was expected
    ///     "label": "internal",            // name in the report (tests may rename)
    ///     "pipeline": "vnet-modes internal",
    ///     "ports": ["vm1", "vm2"],        // dataplane ports in port order
    ///     "all_pass": bool,
    ///     "cases": [{
    ///       "name": "internal/vm1-vm2/tcp",   // MODE/DIRECTION/PROTO[/no-rule|/rule|/other-port]
    ///       "direction": "VM1 -> VM2",        // a column of the directional table
    ///       "proto": "icmp" | "udp" | "tcp",
    ///       "expected": "+" | "-",
    ///       "observed": "+" | "-",            // + : the exchange completed or a probe leaked
    ///       "pass": bool,
    ///       "evidence": "..."                 // one line: what was sent and seen
    ///     }],
    ///     "table": {
    ///       "directional": {"columns": [6 headings], "expected": [...], "observed": [...], "ok": [bools]},
    ///       "table_1_1":   {"columns": [4 headings], "expected": [...], "observed": [...], "ok": [bools]}
    ///     }
    ///   }],
    ///   "suites": [{                      // behaviour suites (NAT, DHCP), in memory
    ///     "suite": "nat-behaviour",
    ///     "subject": "vnet-modes nat, in memory",
    ///     "cases": [{"name": "rfc4787_req1_eim_udp", "requirement": "...",
    ///                "pass": bool, "evidence": "..."}]
    ///   }]
    /// }
    /// ```
    ///
    /// Directional cells are `+`, `-`, `port forward` or (observed only) `mixed`; Table 1-1
    /// cells are `+`, `-` or `port forwarding`. `ok` is false where the observed value
    /// differs from the expected one or a case under the cell failed. The version changes
    /// whenever a field changes meaning or goes away; new fields may be added within it.
    pub fn to_json(&self) -> String {
        let modes = self
            .modes
            .iter()
            .map(|m| {
                let (o, e) = (m.observed_table_1_1(), m.expected_table_1_1());
                JsonMode {
                    mode: m.mode.as_str(),
                    label: &m.label,
                    pipeline: &m.pipeline,
                    ports: &m.ports,
                    all_pass: m.all_pass(),
                    cases: m
                        .cases
                        .iter()
                        .map(|c| JsonCase {
                            name: &c.case.name,
                            direction: c.case.direction.label(),
                            proto: c.case.proto.name(),
                            expected: c.case.expect.symbol(),
                            observed: c.observed_symbol(),
                            pass: c.pass,
                            evidence: &c.evidence,
                        })
                        .collect(),
                    table: JsonTables {
                        directional: JsonTable {
                            columns: Direction::ALL.iter().map(|d| d.label()).collect(),
                            expected: m.expected.iter().map(|r| r.symbol()).collect(),
                            observed: m.observed.iter().map(|r| r.symbol()).collect(),
                            ok: (0..6).map(|i| m.cell_ok(i)).collect(),
                        },
                        table_1_1: JsonTable {
                            columns: TABLE_1_1_COLUMNS.to_vec(),
                            expected: e.iter().map(|c| c.symbol()).collect(),
                            observed: o.iter().map(|c| c.symbol()).collect(),
                            ok: (0..4).map(|i| m.table_1_1_ok(i)).collect(),
                        },
                    },
                }
            })
            .collect();
        let report = JsonReport {
            schema: SCHEMA,
            backend: &self.backend,
            all_pass: self.all_pass(),
            modes,
            suites: &self.suites,
        };
        let mut text = serde_json::to_string_pretty(&report).expect("the report serialises");
        text.push('\n');
        text
    }

    /// Write every port's wire of every case as pcap (`--capture DIR`):
    /// `DIR/LABEL/DIRECTION_PROTO[_VARIANT]/PORT.pcap`, both directions of the port in
    /// order (as tcpdump on that port's wire would see them), Ethernet, nanosecond
    /// virtual-time stamps (milliseconds since the start of the case). Returns the
    /// number of files written.
    ///
    /// # Errors
    /// When a directory or file cannot be created or written.
    pub fn write_captures(&self, dir: &Path) -> io::Result<usize> {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        use pcap_file::TsResolution;
        let mut files = 0;
        for m in &self.modes {
            for c in &m.cases {
                let case_dir = c.case.name.split('/').skip(1).collect::<Vec<_>>().join("_");
                let path = dir.join(sanitize(&m.label)).join(sanitize(&case_dir));
                std::fs::create_dir_all(&path)?;
                for (port, trace) in &c.traces {
                    let file =
                        std::fs::File::create(path.join(format!("{}.pcap", sanitize(port))))?;
                    let header = PcapHeader {
                        ts_resolution: TsResolution::NanoSecond,
                        ..PcapHeader::default()
                    };
                    let mut w = PcapWriter::with_header(io::BufWriter::new(file), header)
                        .map_err(io::Error::other)?;
                    for t in trace {
                        let packet = PcapPacket::new(
                            Duration::from_millis(t.at_ms),
                            t.bytes.len() as u32,
                            &t.bytes,
                        );
                        w.write_packet(&packet).map_err(io::Error::other)?;
                    }
                    io::Write::flush(&mut w.into_writer())?;
                    files += 1;
                }
            }
        }
        Ok(files)
    }
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}
