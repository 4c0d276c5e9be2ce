//! Printing counters: one line per port, drops broken down by reason, then offloads
//! finished, the fast path's share (`fast_rx`, `fast_tx`, `to_core`, `miss_*`) and the
//! port's link events (`link_down`, `link_lost`, `rebound`).

use vnet_core::counters::{DropReason, LinkEvent, PortTotals};
use vnet_core::fastpath::Miss;
use vnet_core::offload::Unsegmented;
use vnet_core::port::vhost::chain::ChainFault;

/// Format per-port counters as a table (one line per port).
pub fn format_counters(names: &[String], totals: &[PortTotals]) -> String {
    let mut out = format!(
        "{:<4} {:<16} {:>12} {:>12} {:>10}  drops by reason, offloads finished\n",
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
        // Offloads finished for the senders (not drops), then what could not be.
        if t.csum_completed > 0 {
            reasons.push(format!("csum_completed={}", t.csum_completed));
        }
        if t.offload.superframes > 0 {
            reasons.push(format!(
                "superframes={} segments={}",
                t.offload.superframes, t.offload.segments
            ));
        }
        if t.coalesced > 0 {
            reasons.push(format!(
                "coalesced={} coalesced_segments={}",
                t.coalesced, t.coalesced_segments
            ));
        }
        for r in Unsegmented::ALL {
            if t.offload.dropped_for(r) > 0 {
                reasons.push(format!("{}={}", r.name(), t.offload.dropped_for(r)));
            }
        }
        // A vhost-user guest's descriptor chains refused (malformed; dropped, counted).
        for r in ChainFault::ALL {
            let n = t.chain_faults[r as usize];
            if n > 0 {
                reasons.push(format!("{}={n}", r.name()));
            }
        }
        // The fast path (--offload xdp): frames it carried, and why others took the core.
        let f = &t.fast;
        if f.rx + f.tx + f.to_core > 0 {
            reasons.push(format!(
                "fast_rx={} fast_tx={} to_core={}",
                f.rx, f.tx, f.to_core
            ));
            for m in Miss::ALL {
                let n = f.misses[m as usize];
                if n > 0 {
                    reasons.push(format!("miss_{}={n}", m.name()));
                }
            }
        }
        // What happened to the port's interface (events, not packets).
        for e in LinkEvent::ALL {
            if t.link_events_of(e) > 0 {
                reasons.push(format!("{}={}", e.name(), t.link_events_of(e)));
            }
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

/// Says once per port and reason why super-frames could not be segmented, with the fix.
#[derive(Debug)]
pub struct OffloadAdvisor {
    told: Vec<[bool; Unsegmented::COUNT]>,
}

impl OffloadAdvisor {
    /// Nothing told yet, for `ports` ports.
    pub fn new(ports: usize) -> Self {
        Self {
            told: vec![[false; Unsegmented::COUNT]; ports],
        }
    }

    /// The sentences not yet said for the counters in `totals`.
    pub fn news(&mut self, names: &[String], totals: &[PortTotals]) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (t, told)) in totals.iter().zip(&mut self.told).enumerate() {
            for r in Unsegmented::ALL {
                if !told[r as usize] && t.offload.dropped_for(r) > 0 {
                    told[r as usize] = true;
                    let name = names.get(i).map(String::as_str).unwrap_or("?");
                    out.push(format!(
                        "warning: port {i} {name}: {} ({})",
                        r.advice(),
                        r.name()
                    ));
                }
            }
        }
        out
    }
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
        t[1].drops[DropReason::PortDown as usize] = 3;
        t[1].link_events[LinkEvent::Lost as usize] = 1;
        t[1].link_events[LinkEvent::Rebound as usize] = 1;
        let s = format_counters(&["a0".into(), "b0".into()], &t);
        assert!(
            s.contains("tx_full=1 port_down=3 link_lost=1 rebound=1"),
            "{s}"
        );
        assert!(!lines[1].contains('='));
    }

    #[test]
    fn offload_counters_are_shown_and_each_problem_told_once() {
        let mut t = vec![PortTotals::default(); 2];
        t[1].csum_completed = 7;
        t[1].offload.superframes = 3;
        t[1].offload.segments = 90;
        t[1].offload.unsegmented[Unsegmented::NotTcp as usize] = 1;
        t[1].coalesced = 2;
        t[1].coalesced_segments = 60;
        let names = ["a0".to_string(), "tap0".to_string()];
        let s = format_counters(&names, &t);
        assert!(s.contains(
            "csum_completed=7 superframes=3 segments=90 coalesced=2 coalesced_segments=60 gso_not_tcp=1"
        ));
        let mut a = OffloadAdvisor::new(2);
        let first = a.news(&names, &t);
        assert_eq!(first.len(), 1);
        assert!(first[0].starts_with("warning: port 1 tap0: a guest sent UDP"));
        assert!(first[0].contains("host_uso=off"));
        t[1].offload.unsegmented[Unsegmented::NotTcp as usize] = 5;
        assert!(a.news(&names, &t).is_empty());
    }
}
