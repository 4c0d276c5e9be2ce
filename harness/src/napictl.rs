//! The adaptive NAPI controller of `vnet-bench run` (`--napi auto`): on the control
//! thread, once per loop (~50 ms), each port's receive rate from the counters decides,
//! through [`AutoNapi::step`], whether its interface runs with NAPI deferral (batches,
//! for throughput) or without (each frame received at once, for latency).
//!
//! Invariants: only ports whose NAPI settings were applied are switched; a write that
//! fails is reported once and that port is left alone from then on; the guards restore
//! the interfaces' own values when the ports close, whatever was switched.

use std::sync::Arc;
use std::time::Instant;
use vnet_core::counters::PortTotals;
use vnet_core::port::xdp::{AutoNapi, AutoState, NapiGuard, NapiPolicy};

#[derive(Debug)]
struct Entry {
    port: usize,
    guard: Arc<NapiGuard>,
    state: AutoState,
    last_rx: u64,
    broken: bool,
}

/// Switches the ports' NAPI deferral with their receive rates.
#[derive(Debug)]
pub struct NapiController {
    auto: AutoNapi,
    ports: Vec<Entry>,
    last: Instant,
}

impl NapiController {
    /// A controller for `guards` (dataplane port index, guard) when `policy` is
    /// adaptive; `None` otherwise (nothing to switch).
    pub fn new(policy: Option<NapiPolicy>, guards: Vec<(usize, Arc<NapiGuard>)>) -> Option<Self> {
        let Some(NapiPolicy::Auto(auto)) = policy else {
            return None;
        };
        if guards.is_empty() {
            return None;
        }
        Some(Self {
            auto,
            ports: guards
                .into_iter()
                .map(|(port, guard)| Entry {
                    port,
                    guard,
                    state: AutoState::default(),
                    last_rx: 0,
                    broken: false,
                })
                .collect(),
            last: Instant::now(),
        })
    }

    /// One window: read the rates from `totals` (indexed by port), switch what must
    /// be switched. Returns a sentence per failed write.
    pub fn tick(&mut self, totals: &[PortTotals], names: &[String]) -> Vec<String> {
        let dt = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        let mut out = Vec::new();
        if dt <= 0.0 {
            return out;
        }
        for e in &mut self.ports {
            let rx = totals.get(e.port).map(|t| t.rx_packets).unwrap_or(0);
            let pps = rx.saturating_sub(e.last_rx) as f64 / dt;
            e.last_rx = rx;
            if e.broken {
                continue;
            }
            if let Some(s) = self.auto.step(&mut e.state, pps) {
                if let Err(err) = e.guard.set(s) {
                    e.broken = true;
                    out.push(format!(
                        "warning: port {} {}: could not switch its NAPI settings to {} ({err}); they stay as they are",
                        e.port,
                        names.get(e.port).map(String::as_str).unwrap_or("?"),
                        s.summary()
                    ));
                }
            }
        }
        out
    }

    /// One line per port for the final report: switches, and what is in force.
    pub fn report(&self, names: &[String]) -> Vec<String> {
        self.ports
            .iter()
            .map(|e| {
                format!(
                    "napi auto: port {} {}: {} switch(es), ending with {} ({})",
                    e.port,
                    names.get(e.port).map(String::as_str).unwrap_or("?"),
                    e.state.switches,
                    if e.state.high {
                        "deferral"
                    } else {
                        "no deferral"
                    },
                    e.guard.current().summary()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_a_busy_port_to_deferral_and_back_when_it_calms_down() {
        let dir = std::env::temp_dir().join(format!("vnet-napictl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let read = |k: &str| {
            std::fs::read_to_string(dir.join(k))
                .unwrap()
                .trim()
                .to_string()
        };
        for k in ["napi_defer_hard_irqs", "gro_flush_timeout"] {
            std::fs::write(dir.join(k), "0\n").unwrap();
        }
        let policy = NapiPolicy::default();
        let guard = Arc::new(NapiGuard::at_dir(&dir, "vm1", policy.initial()).unwrap());
        let mut ctl = NapiController::new(Some(policy), vec![(1, guard)]).expect("auto");
        let names = vec!["vm0".to_string(), "vm1".to_string()];
        let mut totals = vec![PortTotals::default(); 2];
        let mut window = |ctl: &mut NapiController, frames: u64| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            totals[1].rx_packets += frames;
            assert!(ctl.tick(&totals, &names).is_empty());
        };
        window(&mut ctl, 10);
        assert_eq!(
            read("gro_flush_timeout"),
            "0",
            "a quiet port keeps no deferral"
        );
        // 100k frames in ~10 ms: ~10 Mpps, far above the threshold.
        window(&mut ctl, 100_000);
        assert_eq!(read("napi_defer_hard_irqs"), "2");
        assert_eq!(read("gro_flush_timeout"), "200000");
        for _ in 0..3 {
            window(&mut ctl, 0);
        }
        assert_eq!(
            read("gro_flush_timeout"),
            "200000",
            "not before 4 calm windows"
        );
        window(&mut ctl, 0);
        assert_eq!(read("gro_flush_timeout"), "0");
        let report = ctl.report(&names);
        assert_eq!(report.len(), 1);
        assert!(
            report[0].contains("port 1 vm1: 2 switch(es), ending with no deferral"),
            "{}",
            report[0]
        );
        drop(ctl);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fixed_policy_needs_no_controller() {
        assert!(NapiController::new(Some(NapiPolicy::Fixed(Default::default())), vec![]).is_none());
        assert!(NapiController::new(None, vec![]).is_none());
    }
}
