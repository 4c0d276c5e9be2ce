//! Throughput search (RFC 2544 binary search, FD.io CSIT's NDR and PDR): the highest
//! offered rate with zero loss (NDR) and with loss at most `pdr_loss` (PDR, 0.5%).
//!
//! The search is independent of traffic: it calls a trial function with a rate and
//! gets back what was offered and received, so it is tested with a model DUT. Rates
//! reported are the measured offered rates of the passing trials, not the requested ones.
//! Trials are short by default (2 s); a formal RFC 2544 run uses `--trial 60`.

use anyhow::Result;

/// One trial's outcome.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrialOutcome {
    /// Rate asked for, frames/s.
    pub requested_pps: f64,
    /// Rate actually offered, frames/s.
    pub offered_pps: f64,
    /// Frames sent.
    pub sent: u64,
    /// Frames received by the sink.
    pub received: u64,
    /// Frames received out of order.
    pub out_of_order: u64,
}

impl TrialOutcome {
    /// Lost fraction of what was sent (duplicates count as nothing lost).
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }

    /// Received frames per second.
    pub fn received_pps(&self) -> f64 {
        if self.sent == 0 {
            0.0
        } else {
            self.offered_pps * self.received as f64 / self.sent as f64
        }
    }
}

/// Search settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchConfig {
    /// Highest rate to try (the harness ceiling or `--max-rate`).
    pub max_pps: f64,
    /// Lowest rate: below it the search gives up and reports it.
    pub min_pps: f64,
    /// Loss allowed at PDR (0.005 = 0.5%).
    pub pdr_loss: f64,
    /// Relative width at which a search stops (0.02 = 2% of the upper bound).
    pub precision: f64,
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            max_pps: 10e6,
            min_pps: 10e3,
            pdr_loss: 0.005,
            precision: 0.02,
        }
    }
}

/// A found rate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Found {
    /// The measured offered rate of the best passing trial, frames/s.
    pub pps: f64,
    /// Its loss ratio.
    pub loss: f64,
    /// The lowest failing rate tried above it (the search's upper bound), frames/s.
    pub upper_pps: f64,
}

/// The search's result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchResult {
    /// No drop rate.
    pub ndr: Found,
    /// Partial drop rate.
    pub pdr: Found,
    /// Every trial, in order.
    pub trials: Vec<TrialOutcome>,
    /// False when the search was cut short (Ctrl-C); NDR/PDR are then the best so far.
    pub complete: bool,
}

/// Binary search on one criterion between `lo` (passing) and `hi` (failing).
fn bisect(
    cfg: &SearchConfig,
    mut lo: Found,
    mut hi: f64,
    pass: impl Fn(&TrialOutcome) -> bool,
    trial: &mut impl FnMut(f64) -> Result<Option<TrialOutcome>>,
    trials: &mut Vec<TrialOutcome>,
) -> Result<Option<Found>> {
    while (hi - lo.pps) > cfg.precision * hi && hi > cfg.min_pps {
        let rate = if lo.pps <= 0.0 { (hi / 2.0).max(cfg.min_pps) } else { (lo.pps + hi) / 2.0 };
        let Some(t) = trial(rate)? else { return Ok(None) };
        trials.push(t);
        if pass(&t) {
            lo = Found {
                pps: t.offered_pps,
                loss: t.loss_ratio(),
                upper_pps: hi,
            };
        } else {
            hi = rate;
            lo.upper_pps = hi;
        }
        if rate <= cfg.min_pps && !pass(&t) {
            break;
        }
    }
    Ok(Some(lo))
}

/// Find NDR and PDR. `trial(rate)` runs one trial at `rate` frames/s and returns `None`
/// when interrupted. The first trial is at `max_pps`; PDR is then bisected, and NDR
/// bisected below the PDR's upper bound.
///
/// # Errors
/// What `trial` returns.
pub fn search(cfg: &SearchConfig, mut trial: impl FnMut(f64) -> Result<Option<TrialOutcome>>) -> Result<SearchResult> {
    let mut trials = Vec::new();
    let zero = Found {
        pps: 0.0,
        loss: 0.0,
        upper_pps: cfg.max_pps,
    };
    let ndr_pass = |t: &TrialOutcome| t.sent > 0 && t.received >= t.sent;
    let pdr_pass = |t: &TrialOutcome| t.sent > 0 && t.loss_ratio() <= cfg.pdr_loss;
    let Some(first) = trial(cfg.max_pps)? else {
        return Ok(SearchResult { ndr: zero, pdr: zero, trials, complete: false });
    };
    trials.push(first);
    let at_max = Found {
        pps: first.offered_pps,
        loss: first.loss_ratio(),
        upper_pps: cfg.max_pps,
    };
    let pdr = if pdr_pass(&first) {
        at_max
    } else {
        match bisect(cfg, zero, cfg.max_pps, pdr_pass, &mut trial, &mut trials)? {
            Some(f) => f,
            None => {
                return Ok(SearchResult { ndr: zero, pdr: zero, trials, complete: false });
            }
        }
    };
    let ndr = if ndr_pass(&first) {
        at_max
    } else {
        // The best PDR trial may itself have been loss-free.
        let best_ndr = trials
            .iter()
            .filter(|t| ndr_pass(t))
            .map(|t| Found { pps: t.offered_pps, loss: 0.0, upper_pps: pdr.upper_pps })
            .fold(zero, |a, b| if b.pps > a.pps { b } else { a });
        let hi = trials
            .iter()
            .filter(|t| !ndr_pass(t))
            .map(|t| t.requested_pps)
            .fold(cfg.max_pps, f64::min);
        match bisect(cfg, best_ndr, hi, ndr_pass, &mut trial, &mut trials)? {
            Some(f) => f,
            None => return Ok(SearchResult { ndr: best_ndr, pdr, trials, complete: false }),
        }
    };
    Ok(SearchResult { ndr, pdr, trials, complete: true })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DUT that forwards up to `cap` frames/s and loses everything above.
    fn model(cap: f64) -> impl FnMut(f64) -> Result<Option<TrialOutcome>> {
        move |rate| {
            let sent = rate as u64;
            let received = sent.min(cap as u64);
            Ok(Some(TrialOutcome { requested_pps: rate, offered_pps: rate, sent, received, out_of_order: 0 }))
        }
    }

    #[test]
    fn finds_the_capacity_within_precision() {
        let cfg = SearchConfig { max_pps: 5e6, ..SearchConfig::default() };
        let r = search(&cfg, model(1.2e6)).unwrap();
        assert!(r.complete);
        assert!(r.ndr.pps <= 1.2e6 && r.ndr.pps >= 1.2e6 * 0.97, "{:?}", r.ndr);
        // PDR allows 0.5% loss: up to cap/(1-0.005).
        assert!(r.pdr.pps >= r.ndr.pps && r.pdr.pps <= 1.2e6 / 0.995 + 1.0, "{:?}", r.pdr);
        assert!(r.trials.len() < 30);
    }

    #[test]
    fn no_loss_at_max_ends_after_one_trial() {
        let cfg = SearchConfig { max_pps: 1e6, ..SearchConfig::default() };
        let r = search(&cfg, model(2e6)).unwrap();
        assert_eq!(r.trials.len(), 1);
        assert_eq!(r.ndr.pps, 1e6);
        assert_eq!(r.pdr.pps, 1e6);
    }

    #[test]
    fn interruption_keeps_what_was_measured() {
        let cfg = SearchConfig { max_pps: 5e6, ..SearchConfig::default() };
        let mut n = 0;
        let mut inner = model(1e6);
        let r = search(&cfg, |rate| {
            n += 1;
            if n > 4 { Ok(None) } else { inner(rate) }
        })
        .unwrap();
        assert!(!r.complete);
        assert_eq!(r.trials.len(), 4);
    }
}
