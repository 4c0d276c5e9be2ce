//! Printing counters: one line per port, drops broken down by reason.

use vnet_core::counters::{DropReason, PortTotals};

/// Format per-port counters as a table (one line per port).
pub fn format_counters(names: &[String], totals: &[PortTotals]) -> String {
    let mut out = format!(
        "{:<4} {:<16} {:>12} {:>12} {:>10}  drops by reason\n",
        "port", "interface", "rx", "tx", "dropped"
    );
    for (i, t) in totals.iter().enumerate() {
        let name = names.get(i).map(String::as_str).unwrap_or("?");
        let mut reasons: Vec<String> = DropReason::ALL
            .iter()
            .filter(|r| t.drops_for(**r) > 0)
            .map(|r| format!("{}={}", r.name(), t.drops_for(*r)))
            .collect();
        // Lost below the engine (the kernel's AF_XDP rings), not in `dropped`.
        if t.backend_rx_dropped > 0 {
            reasons.push(format!("kernel_rx_dropped={}", t.backend_rx_dropped));
        }
        if t.backend_fill_empty > 0 {
            reasons.push(format!("fill_empty={}", t.backend_fill_empty));
        }
        out.push_str(&format!(
            "{:<4} {:<16} {:>12} {:>12} {:>10}  {}\n",
            i,
            name,
            t.rx_packets,
            t.tx_packets,
            t.dropped(),
            reasons.join(" ")
        ));
    }
    out
}

/// Print per-port counters.
pub fn print_counters(names: &[String], totals: &[PortTotals]) {
    print!("{}", format_counters(names, totals));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_each_port_and_nonzero_reasons() {
        let mut t = vec![PortTotals::default(); 2];
        t[0].rx_packets = 5;
        t[1].tx_packets = 4;
        t[1].drops[DropReason::TxFull as usize] = 1;
        let s = format_counters(&["a0".into(), "b0".into()], &t);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[1].starts_with("0    a0"));
        assert!(lines[2].contains("tx_full=1"));
        assert!(!lines[1].contains('='));
    }
}
