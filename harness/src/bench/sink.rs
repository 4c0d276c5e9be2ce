//! The sink: the XDP program `bpf/sink.bpf.c` attached to the receiving endpoint's
//! interface. Per trial (tag) it counts the generator's frames, tracks their sequence
//! numbers (highest seen, out-of-order count) and puts each frame's one-way latency
//! (receive time minus the stamped send time, both `bpf_ktime_get_ns`) into log-linear
//! buckets, read at the end into an HdrHistogram.
//!
//! Buckets (mirror `bpf/common.h`): values below 64 ns exactly; above, 32 sub-buckets per
//! power of two (about 3% resolution). A bucket is recorded at its midpoint.

use super::bpf::{self, BpfObject};
use anyhow::Result;
use hdrhistogram::Histogram;

/// Number of latency buckets.
pub const BUCKETS: u32 = 2048;
const SUB_BITS: u32 = 5;

mod key {
    pub const TAG: u32 = 0;
    pub const FLOWS: u32 = 1;
    pub const COUNT: u32 = 0;
    pub const MAX_SEQ: u32 = 1;
    pub const OOO: u32 = 2;
    pub const BYTES: u32 = 3;
    pub const STALE: u32 = 4;
    pub const LAT_SUM: u32 = 5;
    pub const LAT_MAX: u32 = 6;
    pub const NEW_FLOWS: u32 = 7;
    pub const SAME_FLOWS: u32 = 8;
    pub const FLOWS_UNTRACKED: u32 = 9;
    pub const N: u32 = 10;
}

/// The bucket of a latency in ns (as the sink program computes it).
pub fn bucket_of(v: u64) -> u32 {
    if v < 64 {
        return v as u32;
    }
    let e = 63 - v.leading_zeros();
    let sub = ((v >> (e - SUB_BITS)) & ((1 << SUB_BITS) - 1)) as u32;
    (64 + (e - 6) * (1 << SUB_BITS) + sub).min(BUCKETS - 1)
}

/// The range `[lo, hi]` of values in bucket `i`.
pub fn bucket_range(i: u32) -> (u64, u64) {
    if i < 64 {
        return (u64::from(i), u64::from(i));
    }
    let e = (i - 64) / (1 << SUB_BITS) + 6;
    let sub = u64::from((i - 64) % (1 << SUB_BITS));
    let lo = ((1u64 << SUB_BITS) + sub) << (e - SUB_BITS);
    (lo, lo + (1u64 << (e - SUB_BITS)) - 1)
}

/// A new latency histogram (ns, 1 ns .. 100 s, 3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("valid histogram bounds")
}

/// What the sink saw in one trial.
#[derive(Debug, Clone)]
pub struct SinkReport {
    /// Frames of the trial received.
    pub received: u64,
    /// Highest sequence number + 1 (0: none).
    pub max_seq: u64,
    /// Frames that came with a lower sequence number than one seen before.
    pub out_of_order: u64,
    /// Bytes received (without FCS).
    pub bytes: u64,
    /// Benchmark frames of an earlier trial (late stragglers).
    pub stale: u64,
    /// Latency sum in ns (for the exact mean).
    pub latency_sum_ns: u64,
    /// Largest latency in ns (exact).
    pub latency_max_ns: u64,
    /// With [`Sink::count_flows`]: frames whose UDP port pair the trial had not shown
    /// before (distinct flows), frames of a pair already seen, and frames whose pair found
    /// no room in the sink's set (2^21 pairs); all 0 otherwise.
    pub new_flows: u64,
    /// See `new_flows`.
    pub same_flows: u64,
    /// See `new_flows`.
    pub flows_untracked: u64,
    /// One-way latency in ns.
    pub histogram: Histogram<u64>,
}

impl SinkReport {
    /// Add what another sink saw in the same trial (both directions at once).
    ///
    /// # Errors
    /// When the histograms cannot be added (they share bounds, so never in practice).
    pub fn merge(&mut self, o: &SinkReport) -> anyhow::Result<()> {
        self.received += o.received;
        self.max_seq = self.max_seq.max(o.max_seq);
        self.out_of_order += o.out_of_order;
        self.bytes += o.bytes;
        self.stale += o.stale;
        self.latency_sum_ns += o.latency_sum_ns;
        self.latency_max_ns = self.latency_max_ns.max(o.latency_max_ns);
        self.new_flows += o.new_flows;
        self.same_flows += o.same_flows;
        self.flows_untracked += o.flows_untracked;
        self.histogram.add(&o.histogram)?;
        Ok(())
    }
}

/// The sink program attached to an interface; detached on drop.
#[derive(Debug)]
pub struct Sink {
    obj: BpfObject,
    cfg: i32,
    stats: i32,
    lat: i32,
    netns: String,
    ifindex: u32,
    flags: u32,
    attach: &'static str,
}

impl Sink {
    /// Attach the sink to `ifname` in `netns` (native XDP, else generic).
    ///
    /// # Errors
    /// When the program cannot be loaded or attached.
    pub fn attach(netns: &str, ifname: &str) -> Result<Sink> {
        let obj = BpfObject::load("sink", bpf::SINK_OBJ)?;
        let prog = obj.prog_fd("vb_sink")?;
        let name = ifname.to_string();
        let (ifindex, flags, attach) = bpf::in_netns(netns, move || {
            let i = bpf::ifindex(&name)?;
            let (flags, mode) = bpf::xdp_attach(i, prog)?;
            Ok((i, flags, mode))
        })?;
        Ok(Sink {
            cfg: obj.map_fd("sink_cfg")?,
            stats: obj.map_fd("sink_stats")?,
            lat: obj.map_fd("sink_lat")?,
            obj,
            netns: netns.to_string(),
            ifindex,
            flags,
            attach,
        })
    }

    /// `native` or `generic`.
    pub fn attach_mode(&self) -> &'static str {
        self.attach
    }

    /// Count the distinct UDP port pairs of each trial (`--check-flows`): a hash lookup
    /// (and for a new pair an insert) per frame, in the softirq that receives the frame,
    /// which on a veth is the sending core's (the DUT's): a check, not for measurements.
    ///
    /// # Errors
    /// Map update failures.
    pub fn count_flows(&self, on: bool) -> Result<()> {
        bpf::array_set(self.cfg, key::FLOWS, u64::from(on))
    }

    /// Zero the counters and accept only frames tagged `tag` from now on.
    ///
    /// # Errors
    /// Map update failures.
    pub fn reset(&self, tag: u16) -> Result<()> {
        let n = self.obj.ncpus();
        bpf::array_set(self.cfg, key::TAG, u64::from(tag))?;
        for k in 0..key::N {
            bpf::percpu_zero(self.stats, k, n)?;
        }
        for b in 0..BUCKETS {
            bpf::percpu_zero(self.lat, b, n)?;
        }
        Ok(())
    }

    /// Read the counters and the latency histogram.
    ///
    /// # Errors
    /// Map lookup failures.
    pub fn read(&self) -> Result<SinkReport> {
        let n = self.obj.ncpus();
        let sum = |k: u32| -> Result<u64> { Ok(bpf::percpu_get(self.stats, k, n)?.iter().sum()) };
        let max = |k: u32| -> Result<u64> {
            Ok(bpf::percpu_get(self.stats, k, n)?
                .into_iter()
                .max()
                .unwrap_or(0))
        };
        let mut histogram = new_histogram();
        let received = sum(key::COUNT)?;
        let mut seen = 0;
        if received > 0 {
            for b in 0..BUCKETS {
                let c: u64 = bpf::percpu_get(self.lat, b, n)?.iter().sum();
                if c > 0 {
                    let (lo, hi) = bucket_range(b);
                    histogram.saturating_record_n((lo + hi) / 2, c);
                    seen += c;
                    if seen >= received {
                        break;
                    }
                }
            }
        }
        Ok(SinkReport {
            received,
            max_seq: max(key::MAX_SEQ)?,
            out_of_order: sum(key::OOO)?,
            bytes: sum(key::BYTES)?,
            stale: sum(key::STALE)?,
            latency_sum_ns: sum(key::LAT_SUM)?,
            latency_max_ns: max(key::LAT_MAX)?,
            new_flows: sum(key::NEW_FLOWS)?,
            same_flows: sum(key::SAME_FLOWS)?,
            flows_untracked: sum(key::FLOWS_UNTRACKED)?,
            histogram,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let (i, f) = (self.ifindex, self.flags);
        let _ = bpf::in_netns(&self.netns, move || {
            bpf::xdp_detach(i, f);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order_with_3_percent_resolution() {
        let mut last = 0;
        for v in (0..100_000u64).chain([1 << 20, 123_456_789, 10_000_000_000]) {
            let b = bucket_of(v);
            let (lo, hi) = bucket_range(b);
            assert!(lo <= v && v <= hi, "{v} in bucket {b} [{lo},{hi}]");
            assert!((hi - lo) as f64 <= (v as f64) / 32.0 + 1.0);
            if v < 100_000 {
                assert!(b >= last);
                last = b;
            }
        }
        assert!(bucket_of(u64::MAX) < BUCKETS);
    }
}
