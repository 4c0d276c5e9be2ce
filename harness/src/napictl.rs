//! The adaptive NAPI controller of `vnet-bench run` (`--napi auto`): on the control
//! thread, once per loop (~50 ms), each port's receive rate from the counters decides,
//! through [`AutoNapi::step`], whether its interface runs with NAPI deferral (batches,
//! for throughput) or without (each frame received at once, for latency).
//!
//! Invariants: only ports whose NAPI settings were applied are switched; a write that
//! fails is reported once and that port is left alone from then on; the guards restore
//! the interfaces' own values when the ports close, whatever was switched. When a
//! worker's ports are opened again (a port's interface came back), the controller lets
//! go of their guards first ([`NapiController::release`]), so that the old guards
//! restore the originals before the new ones read them, and takes the new ones
//! ([`NapiController::adopt`]).

use std::sync::Arc;
use std::time::Instant;
use vnet_core::counters::PortTotals;
use vnet_core::port::xdp::{AutoNapi, AutoState, NapiGuard, NapiPolicy};

#[derive(Debug)]
struct Entry {
    port: usize,
    /// `None` between [`NapiController::release`] and [`NapiController::adopt`], or
    /// while the port's interface is gone.
    guard: Option<Arc<NapiGuard>>,
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
        let mut ctl = Self {
            auto,
            ports: Vec::new(),
            last: Instant::now(),
        };
        ctl.adopt(guards);
        Some(ctl)
    }

    /// Let go of the guards of `ports` (their ports are about to close).
    pub fn release(&mut self, ports: &[usize]) {
        for e in self.ports.iter_mut().filter(|e| ports.contains(&e.port)) {
            e.guard = None;
        }
    }

    /// Switch the ports of `guards` through them from now on: new guards start with
    /// the policy's low settings, so their ports start over from the low state.
    pub fn adopt(&mut self, guards: Vec<(usize, Arc<NapiGuard>)>) {
        for (port, guard) in guards {
            match self.ports.iter_mut().find(|e| e.port == port) {
                Some(e) => {
                    e.guard = Some(guard);
                    e.state.high = false;
                    e.broken = false;
                }
                None => self.ports.push(Entry {
                    port,
                    guard: Some(guard),
                    state: AutoState::default(),
                    last_rx: 0,
                    broken: false,
                }),
            }
        }
        self.ports.sort_by_key(|e| e.port);
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
            // What the core's busy polling takes: the fast path's frames are forwarded
            // inside the NAPI itself, where a deferral only adds latency.
            let rx = totals
                .get(e.port)
                .map(|t| t.rx_packets.saturating_sub(t.fast.rx))
                .unwrap_or(0);
            let pps = rx.saturating_sub(e.last_rx) as f64 / dt;
            e.last_rx = rx;
            let Some(guard) = e.guard.as_ref().filter(|_| !e.broken) else {
                continue;
            };
            if let Some(s) = self.auto.step(&mut e.state, pps) {
                if let Err(err) = guard.set(s) {
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
                    e.guard
                        .as_ref()
                        .map(|g| g.current().summary())
                        .unwrap_or_else(|| "interface gone".into())
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
    fn released_guards_are_let_go_and_adopted_ones_start_low() {
        let dir = std::env::temp_dir().join(format!("vnet-napictl-adopt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for k in ["napi_defer_hard_irqs", "gro_flush_timeout"] {
            std::fs::write(dir.join(k), "0\n").unwrap();
        }
        let policy = NapiPolicy::default();
        let guard = || Arc::new(NapiGuard::at_dir(&dir, "vm0", policy.initial()).unwrap());
        let first = guard();
        let weak = Arc::downgrade(&first);
        let mut ctl = NapiController::new(Some(policy), vec![(0, first)]).expect("auto");
        ctl.release(&[0]);
        assert!(weak.upgrade().is_none(), "the released guard was kept");
        let names = vec!["vm0".to_string()];
        let mut totals = vec![PortTotals::default(); 1];
        std::thread::sleep(std::time::Duration::from_millis(10));
        totals[0].rx_packets += 100_000;
        assert!(ctl.tick(&totals, &names).is_empty());
        assert!(ctl.report(&names)[0].contains("interface gone"));
        ctl.adopt(vec![(0, guard())]);
        std::thread::sleep(std::time::Duration::from_millis(10));
        totals[0].rx_packets += 100_000;
        assert!(ctl.tick(&totals, &names).is_empty());
        let read = std::fs::read_to_string(dir.join("gro_flush_timeout")).unwrap();
        assert_eq!(read.trim(), "200000", "the adopted guard is switched");
        drop(ctl);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn frames_of_the_fast_path_do_not_switch_the_deferral_on() {
        let dir = std::env::temp_dir().join(format!("vnet-napictl-fast-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for k in ["napi_defer_hard_irqs", "gro_flush_timeout"] {
            std::fs::write(dir.join(k), "0\n").unwrap();
        }
        let policy = NapiPolicy::default();
        let guard = Arc::new(NapiGuard::at_dir(&dir, "vm0", policy.initial()).unwrap());
        let mut ctl = NapiController::new(Some(policy), vec![(0, guard)]).expect("auto");
        let names = vec!["vm0".to_string()];
        let mut totals = vec![PortTotals::default(); 1];
        std::thread::sleep(std::time::Duration::from_millis(10));
        // 100k frames in 10 ms, all forwarded by the fast path inside the NAPI.
        totals[0].rx_packets += 100_000;
        totals[0].fast.rx += 100_000;
        ctl.tick(&totals, &names);
        let read = std::fs::read_to_string(dir.join("gro_flush_timeout")).unwrap();
        assert_eq!(
            read.trim(),
            "0",
            "the fast path's frames switched the deferral on"
        );
        // The same rate through the core does.
        std::thread::sleep(std::time::Duration::from_millis(10));
        totals[0].rx_packets += 100_000;
        ctl.tick(&totals, &names);
        let read = std::fs::read_to_string(dir.join("gro_flush_timeout")).unwrap();
        assert_eq!(read.trim(), "200000");
        drop(ctl);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fixed_policy_needs_no_controller() {
        assert!(NapiController::new(Some(NapiPolicy::Fixed(Default::default())), vec![]).is_none());
        assert!(NapiController::new(None, vec![]).is_none());
    }
}
