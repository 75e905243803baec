//! Runtime per stage, as VPP's `show runtime`: for every [`Stage`] of one worker, how many
//! times it ran (calls), how many packets it handled (its vectors' sizes summed) and the
//! TSC cycles it took.
//!
//! The worker reads the TSC once between stages and charges the difference to the stage
//! that just ran (a chain: one read per stage call, none per packet), so counting is
//! cheap enough to stay on; `masq-bench --no-runtime` measures what it costs
//! (BENCHMARKS.md). Stages no packet reached are not called and cost nothing. Idle polls
//! are charged to no stage.
//!
//! Stalls: each stage also keeps its longest single call (`max_cycles`, since start)
//! and how many of its calls took longer than the worker's slow threshold (1 ms in
//! masqd, [`WorkerRuntime::set_slow_threshold`]); the worker keeps the same two figures
//! for a whole pass of its poll loop (everything from receiving to serving the control
//! plane's mailbox, [`WorkerRuntime::record_pass`]). A compare or two per stage call and
//! one more counter read per pass that did anything: none per packet, none on idle
//! passes. The counts only grow, so "did any pass take more than 1 ms while I changed
//! the rules" is a difference of two readings. These are wall-clock cycles: a worker the
//! kernel preempts (more busy threads than cores) is charged for the time it was off
//! the CPU, too.
//!
//! The counters are single-writer cells ([`Counter`]): the worker writes, the control
//! plane (`stats.get`, `masqctl stats --runtime`) reads them at any time without
//! stopping it.

use super::Stage;
use crate::counters::Counter;

/// One stage's counters.
#[derive(Debug, Default)]
pub struct StageCounters {
    pub calls: Counter,
    pub packets: Counter,
    pub cycles: Counter,
    /// The longest single call, since start.
    pub max_cycles: Counter,
    /// Calls longer than the slow threshold.
    pub slow_calls: Counter,
}

/// One worker's runtime table. Written by that worker only.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerRuntime {
    stages: [StageCounters; Stage::COUNT],
    /// The longest pass of the poll loop, since start.
    max_pass_cycles: Counter,
    /// Passes longer than the slow threshold.
    slow_passes: Counter,
    /// Cycles above which a call or pass counts as slow (`u64::MAX`: never).
    slow_threshold: Counter,
}

impl Default for WorkerRuntime {
    fn default() -> Self {
        let r = WorkerRuntime {
            stages: std::array::from_fn(|_| StageCounters::default()),
            max_pass_cycles: Counter::default(),
            slow_passes: Counter::default(),
            slow_threshold: Counter::default(),
        };
        r.slow_threshold.set(u64::MAX);
        r
    }
}

/// The worker's stall figures: its longest pass and how many passes were slow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassFigures {
    pub max_cycles: u64,
    pub slow: u64,
    /// The threshold they were counted against (`u64::MAX`: none set).
    pub slow_threshold: u64,
}

/// A snapshot of one stage's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageFigures {
    pub stage: Stage,
    pub calls: u64,
    pub packets: u64,
    pub cycles: u64,
    pub max_cycles: u64,
    pub slow_calls: u64,
}

impl WorkerRuntime {
    /// Count one call of `stage` that handled `packets` in `cycles` TSC cycles.
    #[inline]
    pub fn record(&self, stage: Stage, packets: usize, cycles: u64) {
        let s = &self.stages[stage.index()];
        s.calls.inc();
        s.packets.add(packets as u64);
        s.cycles.add(cycles);
        if cycles > s.max_cycles.get() {
            s.max_cycles.set(cycles);
        }
        if cycles > self.slow_threshold.get() {
            s.slow_calls.inc();
        }
    }

    /// Count one pass of the poll loop that took `cycles` (only passes that did
    /// something: received, expired, flushed or served the mailbox).
    #[inline]
    pub fn record_pass(&self, cycles: u64) {
        if cycles > self.max_pass_cycles.get() {
            self.max_pass_cycles.set(cycles);
        }
        if cycles > self.slow_threshold.get() {
            self.slow_passes.inc();
        }
    }

    /// Calls and passes longer than `cycles` count as slow (masqd: 1 ms of TSC). Set
    /// before the worker starts.
    pub fn set_slow_threshold(&self, cycles: u64) {
        self.slow_threshold.set(cycles);
    }

    /// The longest pass and the slow ones.
    pub fn passes(&self) -> PassFigures {
        PassFigures {
            max_cycles: self.max_pass_cycles.get(),
            slow: self.slow_passes.get(),
            slow_threshold: self.slow_threshold.get(),
        }
    }

    /// One stage's counters.
    pub fn stage(&self, stage: Stage) -> StageFigures {
        let s = &self.stages[stage.index()];
        StageFigures {
            stage,
            calls: s.calls.get(),
            packets: s.packets.get(),
            cycles: s.cycles.get(),
            max_cycles: s.max_cycles.get(),
            slow_calls: s.slow_calls.get(),
        }
    }

    /// Every stage's counters, in pipeline order.
    pub fn figures(&self) -> Vec<StageFigures> {
        Stage::ALL.iter().map(|&s| self.stage(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_per_stage_and_lists_every_stage_in_order() {
        let r = WorkerRuntime::default();
        r.record(Stage::NatLookup, 32, 3200);
        r.record(Stage::NatLookup, 16, 800);
        r.record(Stage::Drop, 1, 50);
        let f = r.figures();
        assert_eq!(f.len(), Stage::COUNT);
        assert!(f.windows(2).all(|w| w[0].stage < w[1].stage));
        assert_eq!(
            r.stage(Stage::NatLookup),
            StageFigures {
                stage: Stage::NatLookup,
                calls: 2,
                packets: 48,
                cycles: 4000,
                max_cycles: 3200,
                slow_calls: 0
            }
        );
        assert_eq!(r.stage(Stage::L2Input).calls, 0);
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(*s));
        }
        assert_eq!(std::mem::align_of::<WorkerRuntime>(), 64);
    }

    #[test]
    fn keeps_the_longest_call_and_counts_slow_ones_against_the_threshold() {
        let r = WorkerRuntime::default();
        r.record(Stage::NatExpire, 0, 5_000_000);
        assert_eq!(r.stage(Stage::NatExpire).slow_calls, 0, "no threshold set: nothing is slow");
        r.set_slow_threshold(1000);
        for c in [10, 999, 1000, 1001, 70, 5000] {
            r.record(Stage::NatExpire, 0, c);
            r.record_pass(c);
        }
        let f = r.stage(Stage::NatExpire);
        assert_eq!((f.max_cycles, f.slow_calls, f.calls), (5_000_000, 2, 7));
        assert_eq!(r.passes(), PassFigures { max_cycles: 5000, slow: 2, slow_threshold: 1000 });
        assert_eq!(r.stage(Stage::L2Input).max_cycles, 0);
    }
}
