//! The comparison plot, hand-written SVG: per mode, both latency percentile curves on
//! HdrHistogram's axis (x = 1/(1-percentile), logarithmic: 0%, 90%, 99%, 99.9%...) and
//! bars of NDR and PDR, baseline in blue, candidate in red.

use super::compare::ModeComparison;
use hdrhistogram::Histogram;
use std::fmt::Write as _;

const W: f64 = 900.0;
const PANEL_H: f64 = 320.0;
const BASE: &str = "#1f77b4";
const CAND: &str = "#d62728";

fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut pts = Vec::new();
    let cap = (h.len().max(10) as f64).log10();
    for v in h.iter_quantiles(5) {
        let q = v.quantile_iterated_to();
        let x = if q < 1.0 {
            (1.0 / (1.0 - q)).log10().min(cap)
        } else {
            cap
        };
        pts.push((x, v.value_iterated_to() as f64 / 1e3));
    }
    pts
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG document.
pub fn svg(cmps: &[ModeComparison], dut: &str) -> String {
    let h = PANEL_H * cmps.len().max(1) as f64 + 40.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="20" font-size="14">vnet-bench compare ({}): <tspan fill="{BASE}">baseline</tspan> vs <tspan fill="{CAND}">candidate</tspan></text>"#,
        esc(dut)
    );
    for (i, c) in cmps.iter().enumerate() {
        let top = 40.0 + PANEL_H * i as f64;
        // Percentile panel.
        let (x0, y0, pw, ph) = (60.0, top + 20.0, 560.0, PANEL_H - 70.0);
        let _ = writeln!(
            s,
            r#"<text x="{x0}" y="{}" font-size="13">{} ({}): one-way latency at 50% of PDR</text>"#,
            top + 12.0,
            esc(&c.mode),
            esc(&c.base.direction)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#888"/>"##
        );
        if let Some((hb, hc)) = &c.hists {
            let (cb, cc) = (curve(hb), curve(hc));
            let xmax = cb
                .iter()
                .chain(cc.iter())
                .map(|p| p.0)
                .fold(2.0f64, f64::max)
                .ceil();
            let ymax = cb
                .iter()
                .chain(cc.iter())
                .map(|p| p.1)
                .fold(1e-3f64, f64::max)
                * 1.05;
            for k in 0..=(xmax as u32) {
                let x = x0 + pw * f64::from(k) / xmax;
                let label = match k {
                    0 => "0%".to_string(),
                    k => format!("{}%", 100.0 - 100.0 / 10f64.powi(k as i32)),
                };
                let _ = writeln!(
                    s,
                    r##"<line x1="{x:.1}" y1="{y0}" x2="{x:.1}" y2="{:.1}" stroke="#eee"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
                    y0 + ph,
                    y0 + ph + 14.0
                );
            }
            for k in 0..=4 {
                let v = ymax * f64::from(k) / 4.0;
                let y = y0 + ph - ph * f64::from(k) / 4.0;
                let _ = writeln!(
                    s,
                    r#"<text x="{:.1}" y="{y:.1}" text-anchor="end">{v:.1}</text>"#,
                    x0 - 4.0
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle">percentile (1/(1-p), log)</text>"#,
                x0 + pw / 2.0,
                y0 + ph + 30.0
            );
            let _ = writeln!(
                s,
                r#"<text x="14" y="{}" transform="rotate(-90 14 {})">latency (us)</text>"#,
                y0 + ph / 2.0,
                y0 + ph / 2.0
            );
            for (pts, color) in [(&cb, BASE), (&cc, CAND)] {
                let path: Vec<String> = pts
                    .iter()
                    .map(|(x, y)| {
                        format!("{:.1},{:.1}", x0 + pw * x / xmax, y0 + ph - ph * y / ymax)
                    })
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                    path.join(" ")
                );
            }
        } else {
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}">no latency histograms</text>"#,
                x0 + 20.0,
                y0 + 20.0
            );
        }
        // Rate bars.
        let (bx, bw) = (680.0, 200.0);
        let rates = |sum: &super::results::Summary| {
            let d = sum.dut(dut);
            [
                d.and_then(|d| d.ndr).map(|f| f.pps).unwrap_or(0.0),
                d.and_then(|d| d.pdr).map(|f| f.pps).unwrap_or(0.0),
            ]
        };
        let (rb, rc) = (rates(&c.base), rates(&c.cand));
        let rmax = rb.iter().chain(rc.iter()).copied().fold(1.0f64, f64::max);
        let _ = writeln!(
            s,
            r##"<line x1="{bx}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#888"/>"##,
            y0 + ph,
            bx + bw,
            y0 + ph
        );
        for (k, name) in ["NDR", "PDR"].iter().enumerate() {
            let gx = bx + 10.0 + 95.0 * k as f64;
            for (j, (v, color)) in [(rb[k], BASE), (rc[k], CAND)].iter().enumerate() {
                let bh = ph * v / rmax;
                let x = gx + 40.0 * j as f64;
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{:.1}" width="36" height="{bh:.1}" fill="{color}"/><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">{:.2}</text>"#,
                    y0 + ph - bh,
                    x + 18.0,
                    y0 + ph - bh - 3.0,
                    v / 1e6
                );
            }
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{name} (Mpps)</text>"#,
                gx + 38.0,
                y0 + ph + 14.0
            );
        }
        let verdict = if c.regressions.is_empty() {
            "ok".to_string()
        } else {
            format!("REGRESSION: {}", c.regressions.join("; "))
        };
        let _ = writeln!(
            s,
            r#"<text x="{x0}" y="{:.1}" fill="{}">{}</text>"#,
            y0 + ph + 46.0,
            if c.regressions.is_empty() {
                "#2ca02c"
            } else {
                CAND
            },
            esc(&verdict)
        );
    }
    s.push_str("</svg>\n");
    s
}
