//! Which NAPI deferral a port's interface gets, and when it changes.
//!
//! Why a policy and not one setting (measured on veth, Linux 6.18, Internal at 64 bytes,
//! README "Latency"): the kernel gives an AF_XDP socket on veth no NAPI id, so busy
//! polling never runs its receive; that receive runs in the softirq of the core that
//! sends into the veth. With `napi_defer_hard_irqs=2 gro_flush_timeout=200000` every
//! NAPI completion re-arms a 200 us timer and masks the sender's wake-up, so under load
//! every frame waits for that timer (p50 ~120-250 us at any load) but arrives in large
//! batches (PDR ~0.85 Mpps); without deferral a frame is received at once (p50 ~6 us at
//! 10 kpps) but in small batches, and the PDR drops by ~13 % (the sender's core pays
//! for every small batch). [`NapiPolicy::Auto`]
//! therefore runs without deferral while a port's receive rate is low and switches to
//! the deferral above `up_pps`, back below `down_pps` after `calm_windows` quiet
//! windows (hysteresis, so that a rate near the threshold does not flap).
//!
//! Invariant: [`AutoNapi::step`] returns settings only when they differ from what the
//! state last returned (or the initial low settings), so each switch is written once.

use super::napi::NapiSettings;

/// A port interface's NAPI deferral while the dataplane runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NapiPolicy {
    /// These settings, always.
    Fixed(NapiSettings),
    /// No deferral at low receive rates, deferral at high ones.
    Auto(AutoNapi),
}

impl Default for NapiPolicy {
    fn default() -> Self {
        NapiPolicy::Auto(AutoNapi::default())
    }
}

impl NapiPolicy {
    /// The settings applied when the port opens.
    pub fn initial(&self) -> NapiSettings {
        match self {
            NapiPolicy::Fixed(s) => *s,
            NapiPolicy::Auto(a) => a.low,
        }
    }

    /// For the port's info line (no spaces inside a `key=value`):
    /// `napi=auto low=0/0 high=2/200000 up=500kpps down=250kpps` or
    /// `napi_defer_hard_irqs=2 gro_flush_timeout=200000`.
    pub fn summary(&self) -> String {
        match self {
            NapiPolicy::Fixed(s) => s.summary(),
            NapiPolicy::Auto(a) => format!(
                "napi=auto low={}/{} high={}/{} up={}kpps down={}kpps",
                a.low.defer_hard_irqs,
                a.low.gro_flush_timeout_ns,
                a.high.defer_hard_irqs,
                a.high.gro_flush_timeout_ns,
                a.up_pps / 1000,
                a.down_pps / 1000
            ),
        }
    }
}

/// The adaptive policy's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoNapi {
    /// Below `down_pps`: frames are received as they come.
    pub low: NapiSettings,
    /// Above `up_pps`: frames are received in batches, every `gro_flush_timeout`.
    pub high: NapiSettings,
    /// Receive rate (frames/s of the port) above which `high` applies.
    pub up_pps: u64,
    /// Receive rate below which `low` applies again (after `calm_windows` windows).
    pub down_pps: u64,
    /// Consecutive windows below `down_pps` before switching back.
    pub calm_windows: u32,
}

impl Default for AutoNapi {
    fn default() -> Self {
        Self {
            low: NapiSettings {
                defer_hard_irqs: 0,
                gro_flush_timeout_ns: 0,
            },
            high: NapiSettings::default(),
            up_pps: 500_000,
            down_pps: 250_000,
            calm_windows: 4,
        }
    }
}

/// One port's place in the adaptive policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoState {
    /// `high` is in force.
    pub high: bool,
    /// Consecutive windows below `down_pps` while `high`.
    calm: u32,
    /// Switches so far.
    pub switches: u64,
}

impl AutoNapi {
    /// Feed one window's receive rate of a port; the settings to write when they change.
    pub fn step(&self, st: &mut AutoState, rx_pps: f64) -> Option<NapiSettings> {
        if !st.high {
            if rx_pps > self.up_pps as f64 {
                st.high = true;
                st.calm = 0;
                st.switches += 1;
                return Some(self.high);
            }
            return None;
        }
        if rx_pps < self.down_pps as f64 {
            st.calm += 1;
            if st.calm >= self.calm_windows.max(1) {
                st.high = false;
                st.calm = 0;
                st.switches += 1;
                return Some(self.low);
            }
        } else {
            st.calm = 0;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn switches_up_at_once_and_down_only_after_calm_windows() {
        let a = AutoNapi::default();
        let mut st = AutoState::default();
        assert_eq!(a.step(&mut st, 10_000.0), None);
        assert_eq!(a.step(&mut st, 499_000.0), None);
        assert_eq!(a.step(&mut st, 600_000.0), Some(a.high));
        assert_eq!(a.step(&mut st, 700_000.0), None, "already high");
        // Between the thresholds: stays high, and resets the calm count.
        for _ in 0..3 {
            assert_eq!(a.step(&mut st, 100_000.0), None);
        }
        assert_eq!(a.step(&mut st, 300_000.0), None);
        for _ in 0..3 {
            assert_eq!(a.step(&mut st, 100_000.0), None);
        }
        assert_eq!(a.step(&mut st, 100_000.0), Some(a.low));
        assert_eq!(a.step(&mut st, 100_000.0), None, "already low");
        assert_eq!(st.switches, 2);
        assert!(!st.high);
    }

    #[test]
    fn fixed_and_auto_start_and_read_as_expected() {
        let f = NapiPolicy::Fixed(NapiSettings::default());
        assert_eq!(f.initial(), NapiSettings::default());
        assert_eq!(
            f.summary(),
            "napi_defer_hard_irqs=2 gro_flush_timeout=200000"
        );
        let a = NapiPolicy::default();
        assert_eq!(a.initial().defer_hard_irqs, 0);
        assert_eq!(a.initial().gro_flush_timeout_ns, 0);
        assert_eq!(
            a.summary(),
            "napi=auto low=0/0 high=2/200000 up=500kpps down=250kpps"
        );
        assert!(!a.summary().split(' ').any(str::is_empty));
    }
}
