//! Per-packet processing latency: recorded by each worker, merged by the control thread.
//!
//! A worker reads the cycle counter when the first burst of a poll pass arrives and again
//! after that pass's transmit flush, and records the pass's time divided by its packets —
//! the average time one packet spent in masq — weighted by the number of packets. That is
//! two cycle-counter reads, one multiply, one divide and one counter increment per pass
//! with traffic, and nothing at all on idle passes.
//!
//! [`LatencyHistogram`] is a fixed array of single-writer counters in log-linear buckets:
//! exact from 0 to 15 ns, then 16 buckets per power of two (at most 6.25 % wide) up to
//! 2^24 ns (16.8 ms); anything slower lands in one overflow bucket. No allocation, no lock,
//! no atomic read-modify-write. The control thread reads every worker's array without
//! stopping anyone, merges them into an `hdrhistogram` and reports percentiles in
//! microseconds ([`percentiles`]). Figures are cumulative since masqd started.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use control::protocol::Percentiles;

use crate::counters::Counter;

/// Linear sub-buckets per power of two (2^SUB_BITS).
const SUB_BITS: u32 = 4;
const SUB: u64 = 1 << SUB_BITS;
/// Values from 2^TOP_EXP ns on go to the overflow bucket.
const TOP_EXP: u32 = 24;
/// Buckets, the overflow bucket last.
pub const BUCKETS: usize = ((TOP_EXP - SUB_BITS + 1) as u64 * SUB) as usize + 1;
const OVERFLOW: usize = BUCKETS - 1;

/// The bucket of a value in nanoseconds.
#[inline]
pub fn bucket_of(ns: u64) -> usize {
    if ns < SUB {
        return ns as usize;
    }
    let exp = 63 - ns.leading_zeros();
    if exp >= TOP_EXP {
        return OVERFLOW;
    }
    let mantissa = (ns >> (exp - SUB_BITS)) & (SUB - 1);
    (u64::from(exp - SUB_BITS + 1) * SUB + mantissa) as usize
}

/// The smallest value of bucket `b` and its width, in nanoseconds (`b < OVERFLOW`).
pub fn bucket_range(b: usize) -> (u64, u64) {
    let b = b as u64;
    if b < SUB {
        return (b, 1);
    }
    let group = b / SUB;
    let mantissa = b % SUB;
    ((SUB + mantissa) << (group - 1), 1 << (group - 1))
}

/// One worker's latency histogram. Written by that worker only; read by anyone.
#[derive(Debug)]
#[repr(align(64))]
pub struct LatencyHistogram {
    buckets: [Counter; BUCKETS],
    max_ns: AtomicU64,
    /// Sum of every recorded value times its packets, nanoseconds.
    sum_ns: Counter,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram {
            buckets: std::array::from_fn(|_| Counter::default()),
            max_ns: AtomicU64::new(0),
            sum_ns: Counter::default(),
        }
    }
}

impl LatencyHistogram {
    /// Count `packets` packets that took `ns` nanoseconds each. Owning worker only.
    #[inline]
    pub fn record(&self, ns: u64, packets: u64) {
        self.buckets[bucket_of(ns)].add(packets);
        self.sum_ns.add(ns.wrapping_mul(packets));
        if ns > self.max_ns.load(Relaxed) {
            self.max_ns.store(ns, Relaxed);
        }
    }

    /// Packets recorded.
    pub fn samples(&self) -> u64 {
        self.buckets.iter().map(Counter::get).sum()
    }

    /// The slowest packet, nanoseconds.
    pub fn max_ns(&self) -> u64 {
        self.max_ns.load(Relaxed)
    }

    /// Count in bucket `b`.
    pub fn bucket(&self, b: usize) -> u64 {
        self.buckets[b].get()
    }

    /// Sum of all samples, nanoseconds.
    pub fn sum_ns(&self) -> u64 {
        self.sum_ns.get()
    }
}

/// The worker's probe: a cycle counter, its rate, and the histogram it feeds.
pub struct LatencyRecorder {
    histogram: Arc<LatencyHistogram>,
    cycles: fn() -> u64,
    /// Nanoseconds per cycle, times 2^32.
    ns_per_cycle_q32: u64,
    start: u64,
}

impl LatencyRecorder {
    /// A probe reading `cycles`, which ticks `hz` times a second (the TSC and its rate in
    /// masqd; any monotonic counter in tests).
    pub fn new(histogram: Arc<LatencyHistogram>, cycles: fn() -> u64, hz: u64) -> LatencyRecorder {
        let ns_per_cycle_q32 = ((1_000_000_000u128 << 32) / u128::from(hz.max(1))) as u64;
        LatencyRecorder { histogram, cycles, ns_per_cycle_q32, start: 0 }
    }

    /// The first burst of a pass has arrived.
    #[inline]
    pub fn begin(&mut self) {
        self.start = (self.cycles)();
    }

    /// The pass that began with [`begin`](Self::begin) handled `packets` and flushed.
    #[inline]
    pub fn end(&mut self, packets: usize) {
        let elapsed = (self.cycles)().wrapping_sub(self.start);
        let ns = ((u128::from(elapsed) * u128::from(self.ns_per_cycle_q32)) >> 32) as u64;
        let packets = packets.max(1) as u64;
        self.histogram.record(ns / packets, packets);
    }

    pub fn histogram(&self) -> &Arc<LatencyHistogram> {
        &self.histogram
    }
}

/// Merge the workers' histograms and report percentiles in microseconds.
pub fn percentiles(workers: &[&LatencyHistogram]) -> Percentiles {
    let max_ns = workers.iter().map(|h| h.max_ns()).max().unwrap_or(0);
    let mut merged = match hdrhistogram::Histogram::<u64>::new_with_bounds(1, 1 << (TOP_EXP + 2), 3) {
        Ok(h) => h,
        Err(_) => return Percentiles::default(),
    };
    let mut samples = 0u64;
    for b in 0..BUCKETS {
        let count: u64 = workers.iter().map(|h| h.bucket(b)).sum();
        if count == 0 {
            continue;
        }
        samples += count;
        let value = if b == OVERFLOW {
            max_ns.max(1 << TOP_EXP)
        } else {
            let (low, width) = bucket_range(b);
            low + (width - 1) / 2
        };
        // hdrhistogram counts from 1; a 0 ns sample reads as 1 ns. Values beyond the
        // histogram's range are clamped to its top.
        let _ = merged.record_n(value.clamp(1, merged.high()), count);
    }
    if samples == 0 {
        return Percentiles::default();
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    // A percentile never exceeds the slowest packet actually seen (bucket midpoints can).
    let at = |q: f64| us(merged.value_at_quantile(q).min(max_ns.max(1)));
    Percentiles { samples, p50: at(0.50), p90: at(0.90), p99: at(0.99), p99_9: at(0.999), max: us(max_ns) }
}

/// Upper bounds of [`histogram`]'s buckets, nanoseconds: 100 ns to 10 ms in 1-2-5 steps.
pub const HISTOGRAM_BOUNDS_NS: [u64; 16] = [
    100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000, 200_000, 500_000, 1_000_000, 2_000_000,
    5_000_000, 10_000_000,
];

/// Merge the workers' histograms into cumulative counts at [`HISTOGRAM_BOUNDS_NS`], for
/// Prometheus. A bound counts the internal buckets that lie wholly at or below it, so
/// every sample counted under `le` really is `<= le`; samples in the one internal bucket
/// that straddles a bound (at most 6.25 % of the bound wide) count from the next bound
/// on. `count` and `sum_us` are exact.
pub fn histogram(workers: &[&LatencyHistogram]) -> control::protocol::LatencyHistogram {
    use control::protocol::{LatencyBucket, LatencyHistogram as Wire};
    let mut buckets = Vec::with_capacity(HISTOGRAM_BOUNDS_NS.len());
    let mut cumulative = 0u64;
    let mut b = 0;
    for le in HISTOGRAM_BOUNDS_NS {
        while b < OVERFLOW {
            let (low, width) = bucket_range(b);
            if low + width - 1 > le {
                break;
            }
            cumulative += workers.iter().map(|h| h.bucket(b)).sum::<u64>();
            b += 1;
        }
        buckets.push(LatencyBucket { le_us: le as f64 / 1000.0, count: cumulative });
    }
    let count = workers.iter().map(|h| h.samples()).sum();
    let sum_ns: u64 = workers.iter().map(|h| h.sum_ns()).sum();
    Wire { buckets, count, sum_us: sum_ns as f64 / 1000.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_exact_then_log_linear_and_contiguous() {
        for ns in 0..16 {
            assert_eq!(bucket_of(ns), ns as usize);
        }
        let mut expected_low = 0;
        for b in 0..OVERFLOW {
            let (low, width) = bucket_range(b);
            assert_eq!(low, expected_low, "bucket {b} starts where {} ended", b.saturating_sub(1));
            assert_eq!(bucket_of(low), b);
            assert_eq!(bucket_of(low + width - 1), b);
            assert!(width == 1 || (width as f64) / (low as f64) <= 1.0 / 16.0, "bucket {b} at most 6.25 % wide");
            expected_low = low + width;
        }
        assert_eq!(expected_low, 1 << TOP_EXP, "the buckets cover 0..2^24 ns");
        assert_eq!(bucket_of(1 << TOP_EXP), OVERFLOW);
        assert_eq!(bucket_of(u64::MAX), OVERFLOW);
        assert_eq!(BUCKETS, 337);
    }

    #[test]
    fn percentiles_of_merged_workers() {
        let a = LatencyHistogram::default();
        let b = LatencyHistogram::default();
        // 900 packets at 1 µs, 90 at 10 µs, 9 at 100 µs, 1 at 2 ms.
        a.record(1_000, 500);
        b.record(1_000, 400);
        a.record(10_000, 90);
        b.record(100_000, 9);
        b.record(2_000_000, 1);
        let p = percentiles(&[&a, &b]);
        assert_eq!(p.samples, 1000);
        let close = |got: f64, want: f64| (got - want).abs() / want < 0.07;
        assert!(close(p.p50, 1.0), "{p:?}");
        assert!(close(p.p90, 1.0), "{p:?}");
        assert!(close(p.p99, 10.0), "{p:?}");
        assert!(close(p.p99_9, 100.0), "{p:?}");
        assert_eq!(p.max, 2000.0);
        assert_eq!(percentiles(&[]), Percentiles::default());
        assert_eq!(percentiles(&[&LatencyHistogram::default()]), Percentiles::default());
    }

    #[test]
    fn histogram_counts_cumulatively_at_fixed_bounds_and_sums_exactly() {
        let a = LatencyHistogram::default();
        let b = LatencyHistogram::default();
        a.record(150, 10); // (100, 200]
        b.record(150, 5);
        a.record(1_000, 4); // straddles... 1000 lies in [992, 1024): counted from 2 µs on
        b.record(3_000, 2); // (2 µs, 5 µs]
        a.record(50_000_000, 1); // beyond 10 ms: only in count
        let h = histogram(&[&a, &b]);
        let at = |le_us: f64| h.buckets.iter().find(|x| x.le_us == le_us).unwrap().count;
        assert_eq!(h.buckets.len(), HISTOGRAM_BOUNDS_NS.len());
        assert_eq!((at(0.1), at(0.2), at(0.5), at(1.0)), (0, 15, 15, 15));
        assert_eq!((at(2.0), at(5.0), at(10_000.0)), (19, 21, 21));
        assert_eq!(h.count, 22);
        assert_eq!(h.sum_us, (150.0 * 15.0 + 4_000.0 + 6_000.0 + 50_000_000.0) / 1000.0);
        assert!(h.buckets.windows(2).all(|w| w[0].le_us < w[1].le_us && w[0].count <= w[1].count));
        let empty = histogram(&[]);
        assert_eq!((empty.count, empty.sum_us, empty.buckets.len()), (0, 0.0, 16));
    }

    #[test]
    fn overflow_reports_the_true_maximum() {
        let h = LatencyHistogram::default();
        h.record(50_000_000, 3);
        let p = percentiles(&[&h]);
        assert_eq!(p.samples, 3);
        assert_eq!(p.max, 50_000.0);
        assert!(p.p50 <= p.max);
    }

    #[test]
    fn recorder_divides_the_pass_by_its_packets() {
        use std::sync::atomic::AtomicU64;
        static FAKE: AtomicU64 = AtomicU64::new(0);
        fn cycles() -> u64 {
            FAKE.load(Relaxed)
        }
        let h = Arc::new(LatencyHistogram::default());
        // A 2 GHz counter: 64_000 cycles = 32 µs for 32 packets = 1 µs each.
        let mut r = LatencyRecorder::new(h.clone(), cycles, 2_000_000_000);
        FAKE.store(1_000_000, Relaxed);
        r.begin();
        FAKE.store(1_064_000, Relaxed);
        r.end(32);
        assert_eq!(h.samples(), 32);
        assert_eq!(h.max_ns(), 1000);
        assert_eq!(h.bucket(bucket_of(1000)), 32);
    }
}
