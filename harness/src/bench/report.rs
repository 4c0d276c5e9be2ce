//! `vnet-bench report DIR`: every measurement under a results folder (written by one or
//! more `vnet-bench bench --out DIR`) as one table: per mode, direction and frame size,
//! each DUT's NDR, PDR, what it still delivers at 2x PDR, p50/p99 latency at 10, 50 and
//! 90 % of the reference PDR, and vnet's PDR as a multiple of the peer's; then a `floor`
//! row, the harness alone at the same loads, where it was measured; under the table, the
//! notes of DUTs that do not do the mode's whole job (xdp-redirect and testpmd on the NAT
//! modes are L2 wires, not NATs). Reads only; `--markdown` for documents. Results of
//! every release are read (fields added later default to empty).

use super::results::{self, DutResult, LatencyPoint, Summary};
use anyhow::Result;
use std::path::PathBuf;

/// `vnet-bench report` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// A results folder (its MODE-DIRECTION-SIZE subfolders) or one measurement's folder.
    pub dir: PathBuf,
    /// A Markdown table instead of aligned text.
    #[arg(long)]
    pub markdown: bool,
}

fn mpps(pps: Option<f64>) -> String {
    pps.map(|p| format!("{:.3}", p / 1e6))
        .unwrap_or_else(|| "-".into())
}

/// Microseconds: one decimal below 10 us (the floor and low-load figures), none above.
fn us(ns: Option<u64>) -> String {
    ns.map(|n| {
        let u = n as f64 / 1e3;
        if u < 10.0 {
            format!("{u:.1}")
        } else {
            format!("{u:.0}")
        }
    })
    .unwrap_or_else(|| "-".into())
}

/// One table row's cells.
fn row(s: &Summary, d: &DutResult) -> Vec<String> {
    let size = if s.settings.imix {
        "IMIX".to_string()
    } else {
        s.settings.frame_size.to_string()
    };
    let pdr = d.pdr.map(|f| f.pps);
    let over = d.overload.map(|o| o.received_pps);
    let over_pct = match (over, pdr) {
        (Some(o), Some(p)) if p > 0.0 => format!("{:.0}%", o / p * 100.0),
        _ => "-".into(),
    };
    let vs = match (s.dut("vnet").and_then(|v| v.pdr), d.pdr) {
        (Some(v), Some(p)) if d.dut != "vnet" && p.pps > 0.0 => format!("{:.2}x", v.pps / p.pps),
        _ => "-".into(),
    };
    vec![
        s.mode.clone(),
        if s.settings.new_flows {
            // `--new-flows`: the rates are new flows (sessions) per second.
            format!("{} new flows/s", s.direction)
        } else {
            s.direction.clone()
        },
        size,
        d.dut.clone(),
        mpps(d.ndr.map(|f| f.pps)),
        mpps(pdr),
        format!("{} ({over_pct})", mpps(over)),
        if s.settings.latency_only {
            // `--latency-only`: the one fixed-rate point, in the first latency column.
            match d.latency_at(0) {
                Some(l) => format!(
                    "{} at {:.0} kpps",
                    p50_p99(Some(l)),
                    l.rate.offered_pps / 1e3
                ),
                None => "-".into(),
            }
        } else {
            p50_p99(d.latency_at(10))
        },
        p50_p99(d.latency_at(50)),
        p50_p99(d.latency_at(90)),
        vs,
        mpps(s.harness_ceiling.as_ref().map(|c| c.rate.received_pps)),
    ]
}

/// `p50/p99` in microseconds, `-` when not measured.
fn p50_p99(l: Option<&LatencyPoint>) -> String {
    match l {
        Some(l) => format!("{}/{}", us(Some(l.p50_ns)), us(Some(l.p99_ns))),
        None => "-".into(),
    }
}

/// The harness floor's row of a measurement, when it was measured.
fn floor_row(s: &Summary) -> Option<Vec<String>> {
    if s.harness_floor.is_empty() {
        return None;
    }
    let floor = DutResult {
        dut: "floor".into(),
        latency: s.harness_floor.clone(),
        ..DutResult::default()
    };
    let mut r = row(s, &floor);
    r[6] = "-".into();
    Some(r)
}

const HEADER: [&str; 12] = [
    "mode",
    "direction",
    "bytes",
    "dut",
    "NDR Mpps",
    "PDR Mpps",
    "at 2xPDR Mpps",
    "p50/p99 us at 10%",
    "at 50%",
    "at 90%",
    "vnet PDR / dut",
    "ceiling Mpps",
];

/// The table's rows, in the order the modes appear in MODES.md.
///
/// # Errors
/// When the folder holds no readable summary.
pub fn rows(dir: &std::path::Path) -> Result<Vec<Vec<String>>> {
    let mut all = results::load_summaries(dir)?;
    let order = |m: &str| {
        ["host-only", "internal", "bridged", "nat", "nat-network"]
            .iter()
            .position(|x| *x == m)
            .unwrap_or(9)
    };
    all.sort_by(|(_, a), (_, b)| {
        (order(&a.mode), &a.direction, a.settings.frame_size).cmp(&(
            order(&b.mode),
            &b.direction,
            b.settings.frame_size,
        ))
    });
    Ok(all
        .iter()
        .flat_map(|(_, s)| s.duts.iter().map(move |d| row(s, d)).chain(floor_row(s)))
        .collect())
}

/// One line per DUT note of the folder's measurements (`xdp-redirect on nat: an L2
/// wire ...`), each distinct line once, in the order the folders are read.
///
/// # Errors
/// When the folder holds no readable summary.
pub fn notes(dir: &std::path::Path) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for (_, s) in results::load_summaries(dir)? {
        for d in s.duts.iter().filter(|d| !d.info.note.is_empty()) {
            let line = format!("{} on {}: {}", d.dut, s.mode, d.info.note);
            if !out.contains(&line) {
                out.push(line);
            }
        }
    }
    Ok(out)
}

/// Format rows under [`HEADER`].
pub fn format(rows: &[Vec<String>], markdown: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str(&format!("| {} |\n", HEADER.join(" | ")));
        out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
        for r in rows {
            out.push_str(&format!("| {} |\n", r.join(" | ")));
        }
        return out;
    }
    let mut w: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.len());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
            + "\n"
    };
    out.push_str(&line(HEADER.to_vec()));
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Run `vnet-bench report`.
///
/// # Errors
/// When the folder holds no readable summary.
pub fn run(args: &ReportArgs) -> Result<()> {
    let rows = rows(&args.dir)?;
    print!("{}", format(&rows, args.markdown));
    for n in notes(&args.dir)? {
        if args.markdown {
            println!("\n- {n}");
        } else {
            println!("note: {n}");
        }
    }
    if !args.markdown {
        println!("(latency one-way at 10/50/90% of vnet's PDR, the same offered rates for every DUT and the floor (the harness alone); \"at 2xPDR\": delivered when offered twice the PDR, as a share of PDR)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::results::{LatencyPoint, RatePoint};
    use crate::bench::search::Found;

    fn dut(name: &str, pdr: f64) -> DutResult {
        let f = Found {
            pps: pdr,
            loss: 0.0,
            upper_pps: pdr * 1.1,
        };
        DutResult {
            dut: name.into(),
            ndr: Some(f),
            pdr: Some(f),
            overload: Some(RatePoint {
                requested_pps: 2.0 * pdr,
                offered_pps: 2.0 * pdr,
                received_pps: 0.9 * pdr,
                loss: 0.55,
                mean_frame_bytes: 60.0,
            }),
            latency: vec![
                LatencyPoint {
                    load_pct: 10,
                    p50_ns: 6_400,
                    p99_ns: 20_000,
                    ..LatencyPoint::default()
                },
                LatencyPoint {
                    load_pct: 50,
                    p50_ns: 150_000,
                    p99_ns: 250_000,
                    p999_ns: 300_000,
                    ..LatencyPoint::default()
                },
            ],
            ..DutResult::default()
        }
    }

    #[test]
    fn notes_name_the_wires_once_and_old_results_still_read() {
        let dir = std::env::temp_dir().join(format!("vnet-report-notes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut wire = dut("xdp-redirect", 900_000.0);
        wire.info.note = "an L2 wire, not a NAT".into();
        for (folder, direction) in [("nat-a", "guest->inet"), ("nat-b", "both")] {
            let s = Summary {
                schema: results::SCHEMA.into(),
                mode: "nat".into(),
                direction: direction.into(),
                duts: vec![dut("vnet", 600_000.0), wire.clone()],
                ..Summary::default()
            };
            let d = dir.join(folder);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("summary.json"), serde_json::to_string(&s).unwrap()).unwrap();
        }
        assert_eq!(
            notes(&dir).unwrap(),
            ["xdp-redirect on nat: an L2 wire, not a NAT"]
        );
        let r = rows(&dir).unwrap();
        assert!(
            r.iter().any(|r| r[3] == "xdp-redirect" && r[10] == "0.67x"),
            "{r:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        // The committed 0.2.0 results (no `note` yet) still read, without notes.
        let old = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../results/0.2.0");
        assert!(!rows(&old).unwrap().is_empty());
        assert!(notes(&old).unwrap().is_empty());
    }

    #[test]
    fn rows_show_rates_overload_share_latency_and_ratio_against_the_peer() {
        let s = Summary {
            schema: results::SCHEMA.into(),
            mode: "nat".into(),
            direction: "guest->inet".into(),
            settings: results::Settings {
                frame_size: 64,
                ..Default::default()
            },
            duts: vec![dut("vnet", 600_000.0), dut("kernel", 400_000.0)],
            harness_floor: vec![LatencyPoint {
                load_pct: 50,
                p50_ns: 3_500,
                p99_ns: 8_000,
                ..LatencyPoint::default()
            }],
            ..Summary::default()
        };
        let v = row(&s, &s.duts[0]);
        assert_eq!(
            v[4..10],
            ["0.600", "0.600", "0.540 (90%)", "6.4/20", "150/250", "-"]
        );
        let f = floor_row(&s).expect("a floor row");
        assert_eq!(f[3..10], ["floor", "-", "-", "-", "-", "3.5/8.0", "-"]);
        assert_eq!(v[10], "-", "vnet is not compared with itself");
        assert_eq!(row(&s, &s.duts[1])[10], "1.50x");
        let md = format(&[v], true);
        assert!(md.starts_with("| mode | direction |"), "{md}");
        assert_eq!(md.lines().count(), 3);
        // `--new-flows` results say that their rates are new flows per second.
        let mut n = s.clone();
        n.settings.new_flows = true;
        assert_eq!(row(&n, &n.duts[0])[1], "guest->inet new flows/s");
        assert_eq!(row(&s, &s.duts[0])[1], "guest->inet");
    }
}
