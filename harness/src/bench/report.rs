//! `vnet-bench report DIR`: every measurement under a results folder (written by one or
//! more `vnet-bench bench --out DIR`) as one table: per mode, direction and frame size,
//! each DUT's NDR, PDR, what it still delivers at 2x PDR, latency at 50% of PDR, and
//! vnet's PDR as a multiple of the peer's. Reads only; `--markdown` for documents.

use super::results::{self, DutResult, Summary};
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

fn us(ns: Option<u64>) -> String {
    ns.map(|n| format!("{:.0}", n as f64 / 1e3))
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
    let l = d.latency_at(50);
    let vs = match (s.dut("vnet").and_then(|v| v.pdr), d.pdr) {
        (Some(v), Some(p)) if d.dut != "vnet" && p.pps > 0.0 => format!("{:.2}x", v.pps / p.pps),
        _ => "-".into(),
    };
    vec![
        s.mode.clone(),
        s.direction.clone(),
        size,
        d.dut.clone(),
        mpps(d.ndr.map(|f| f.pps)),
        mpps(pdr),
        format!("{} ({over_pct})", mpps(over)),
        us(l.map(|l| l.p50_ns)),
        us(l.map(|l| l.p99_ns)),
        us(l.map(|l| l.p999_ns)),
        vs,
        mpps(s.harness_ceiling.as_ref().map(|c| c.rate.received_pps)),
    ]
}

const HEADER: [&str; 12] = [
    "mode",
    "direction",
    "bytes",
    "dut",
    "NDR Mpps",
    "PDR Mpps",
    "at 2xPDR Mpps",
    "p50 us",
    "p99 us",
    "p99.9 us",
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
        .flat_map(|(_, s)| s.duts.iter().map(move |d| row(s, d)))
        .collect())
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
    if !args.markdown {
        println!("(latency one-way at 50% of PDR; \"at 2xPDR\": delivered when offered twice the PDR, as a share of PDR)");
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
                offered_pps: 2.0 * pdr,
                received_pps: 0.9 * pdr,
                loss: 0.55,
                mean_frame_bytes: 60.0,
            }),
            latency: vec![LatencyPoint {
                load_pct: 50,
                p50_ns: 150_000,
                p99_ns: 250_000,
                p999_ns: 300_000,
                ..LatencyPoint::default()
            }],
            ..DutResult::default()
        }
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
            ..Summary::default()
        };
        let v = row(&s, &s.duts[0]);
        assert_eq!(
            v[4..10],
            ["0.600", "0.600", "0.540 (90%)", "150", "250", "300"]
        );
        assert_eq!(v[10], "-", "vnet is not compared with itself");
        assert_eq!(row(&s, &s.duts[1])[10], "1.50x");
        let md = format(&[v], true);
        assert!(md.starts_with("| mode | direction |"), "{md}");
        assert_eq!(md.lines().count(), 3);
    }
}
