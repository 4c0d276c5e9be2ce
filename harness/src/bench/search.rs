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
    /// Paced slots the generator gave up (it stalled); 0 when unpaced.
    #[serde(default)]
    pub gen_skipped: u64,
    /// Frames the DUT did not take from a vhost-user guest (its transmit ring full when
    /// they were due): counted sent and lost. Absent before 0.4 and on veth.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gen_refused: u64,
    /// Bytes the sink received (frames from the Ethernet header on, no FCS).
    #[serde(default)]
    pub received_bytes: u64,
    /// `--check-flows`: frames that arrived with a UDP port pair new in this trial
    /// (distinct flows at the sink); 0 when not counted. Absent before 0.3.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub distinct_flows: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

impl TrialOutcome {
    /// Lost fraction of what was sent (duplicates count as nothing lost).
    pub fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }

    /// Mean length of the frames received, bytes without FCS (0 when none arrived).
    pub fn mean_frame_bytes(&self) -> f64 {
        if self.received == 0 {
            0.0
        } else {
            self.received_bytes as f64 / self.received as f64
        }
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

/// Most trials one bisection makes (a safety net; 2% precision needs about 7).
const MAX_TRIALS: usize = 24;

/// Binary search on one criterion between the requested rates `lo_req` (passing, 0 for
/// none yet) and `hi` (failing). The bisection runs on requested rates; the result is
/// the measured offered rate of the best passing trial (the generator may offer less
/// than asked when the DUT's receive work shares its core, as on a veth).
fn bisect(
    cfg: &SearchConfig,
    mut lo: Found,
    mut lo_req: f64,
    mut hi: f64,
    pass: impl Fn(&TrialOutcome) -> bool,
    trial: &mut impl FnMut(f64) -> Result<Option<TrialOutcome>>,
    trials: &mut Vec<TrialOutcome>,
) -> Result<Option<Found>> {
    let mut n = 0;
    while (hi - lo_req) > cfg.precision * hi && hi > cfg.min_pps && n < MAX_TRIALS {
        n += 1;
        let rate = if lo_req <= 0.0 {
            (hi / 2.0).max(cfg.min_pps)
        } else {
            (lo_req + hi) / 2.0
        };
        let Some(t) = trial(rate)? else {
            return Ok(None);
        };
        trials.push(t);
        if pass(&t) {
            lo_req = rate;
            if t.offered_pps >= lo.pps {
                lo = Found {
                    pps: t.offered_pps,
                    loss: t.loss_ratio(),
                    upper_pps: hi,
                };
            }
        } else {
            hi = rate;
            lo.upper_pps = hi;
            if rate <= cfg.min_pps {
                break;
            }
        }
    }
    Ok(Some(lo))
}

/// The best trial so far passing `pass` (for an interrupted search).
fn best(trials: &[TrialOutcome], pass: impl Fn(&TrialOutcome) -> bool) -> Found {
    trials.iter().filter(|t| pass(t)).fold(
        Found {
            pps: 0.0,
            loss: 0.0,
            upper_pps: 0.0,
        },
        |a, t| {
            if t.offered_pps > a.pps {
                Found {
                    pps: t.offered_pps,
                    loss: t.loss_ratio(),
                    upper_pps: 0.0,
                }
            } else {
                a
            }
        },
    )
}

/// Find NDR and PDR. `trial(rate)` runs one trial at `rate` frames/s and returns `None`
/// when interrupted (the result then holds the best trials so far). The first trial is
/// at `max_pps`; PDR is then bisected, and NDR bisected below the PDR's upper bound.
///
/// # Errors
/// What `trial` returns.
pub fn search(
    cfg: &SearchConfig,
    mut trial: impl FnMut(f64) -> Result<Option<TrialOutcome>>,
) -> Result<SearchResult> {
    let mut trials = Vec::new();
    let zero = Found {
        pps: 0.0,
        loss: 0.0,
        upper_pps: cfg.max_pps,
    };
    let ndr_pass = |t: &TrialOutcome| t.sent > 0 && t.received >= t.sent;
    let pdr_pass = |t: &TrialOutcome| t.sent > 0 && t.loss_ratio() <= cfg.pdr_loss;
    let partial = |trials: Vec<TrialOutcome>| SearchResult {
        ndr: best(&trials, ndr_pass),
        pdr: best(&trials, pdr_pass),
        trials,
        complete: false,
    };
    let Some(first) = trial(cfg.max_pps)? else {
        return Ok(partial(trials));
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
        match bisect(
            cfg,
            zero,
            0.0,
            cfg.max_pps,
            pdr_pass,
            &mut trial,
            &mut trials,
        )? {
            Some(f) => f,
            None => return Ok(partial(trials)),
        }
    };
    let ndr = if ndr_pass(&first) {
        at_max
    } else {
        // Start from what the PDR search already showed: its loss-free trials pass, its
        // failing ones fail.
        let lo_req = trials
            .iter()
            .filter(|t| ndr_pass(t))
            .map(|t| t.requested_pps)
            .fold(0.0, f64::max);
        let start = Found {
            upper_pps: pdr.upper_pps,
            ..best(&trials, ndr_pass)
        };
        let hi = trials
            .iter()
            .filter(|t| !ndr_pass(t))
            .map(|t| t.requested_pps)
            .filter(|r| *r > lo_req)
            .fold(cfg.max_pps, f64::min);
        match bisect(cfg, start, lo_req, hi, ndr_pass, &mut trial, &mut trials)? {
            Some(f) => f,
            None => return Ok(partial(trials)),
        }
    };
    // Every zero-loss trial also passes the PDR criterion: with noisy short trials the
    // two bisections can disagree, and PDR is never reported below NDR.
    let pdr = if ndr.pps > pdr.pps {
        Found {
            loss: ndr.loss,
            ..ndr
        }
    } else {
        pdr
    };
    Ok(SearchResult {
        ndr,
        pdr,
        trials,
        complete: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A DUT that forwards up to `cap` frames/s and loses everything above.
    fn model(cap: f64) -> impl FnMut(f64) -> Result<Option<TrialOutcome>> {
        move |rate| {
            let sent = rate as u64;
            let received = sent.min(cap as u64);
            Ok(Some(TrialOutcome {
                requested_pps: rate,
                offered_pps: rate,
                sent,
                received,
                out_of_order: 0,
                gen_skipped: 0,
                gen_refused: 0,
                received_bytes: 0,
                distinct_flows: 0,
            }))
        }
    }

    #[test]
    fn finds_the_capacity_within_precision() {
        let cfg = SearchConfig {
            max_pps: 5e6,
            ..SearchConfig::default()
        };
        let r = search(&cfg, model(1.2e6)).unwrap();
        assert!(r.complete);
        assert!(
            r.ndr.pps <= 1.2e6 && r.ndr.pps >= 1.2e6 * 0.97,
            "{:?}",
            r.ndr
        );
        // PDR allows 0.5% loss: up to cap/(1-0.005).
        assert!(
            r.pdr.pps >= r.ndr.pps && r.pdr.pps <= 1.2e6 / 0.995 + 1.0,
            "{:?}",
            r.pdr
        );
        assert!(r.trials.len() < 30);
    }

    #[test]
    fn terminates_when_the_generator_offers_less_than_asked() {
        let cfg = SearchConfig {
            max_pps: 3e6,
            ..SearchConfig::default()
        };
        let r = search(&cfg, |rate| {
            let offered = rate * 0.6;
            let sent = offered as u64;
            let received = sent.min(4e5 as u64);
            Ok(Some(TrialOutcome {
                requested_pps: rate,
                offered_pps: offered,
                sent,
                received,
                out_of_order: 0,
                gen_skipped: 0,
                gen_refused: 0,
                received_bytes: 0,
                distinct_flows: 0,
            }))
        })
        .unwrap();
        assert!(r.complete);
        assert!(r.trials.len() < 2 * MAX_TRIALS);
        assert!(r.ndr.pps <= 4e5 && r.ndr.pps > 3.8e5, "{:?}", r.ndr);
    }

    #[test]
    fn no_loss_at_max_ends_after_one_trial() {
        let cfg = SearchConfig {
            max_pps: 1e6,
            ..SearchConfig::default()
        };
        let r = search(&cfg, model(2e6)).unwrap();
        assert_eq!(r.trials.len(), 1);
        assert_eq!(r.ndr.pps, 1e6);
        assert_eq!(r.pdr.pps, 1e6);
    }

    #[test]
    fn interruption_keeps_what_was_measured() {
        let cfg = SearchConfig {
            max_pps: 5e6,
            ..SearchConfig::default()
        };
        let mut n = 0;
        let mut inner = model(1e6);
        let r = search(&cfg, |rate| {
            n += 1;
            if n > 4 {
                Ok(None)
            } else {
                inner(rate)
            }
        })
        .unwrap();
        assert!(!r.complete);
        assert_eq!(r.trials.len(), 4);
        assert!(r.ndr.pps > 0.0, "the best trial so far is kept");
    }
}
