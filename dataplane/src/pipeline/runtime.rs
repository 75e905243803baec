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
}

/// One worker's runtime table. Written by that worker only.
#[derive(Debug)]
#[repr(align(64))]
pub struct WorkerRuntime {
    stages: [StageCounters; Stage::COUNT],
}

impl Default for WorkerRuntime {
    fn default() -> Self {
        WorkerRuntime { stages: std::array::from_fn(|_| StageCounters::default()) }
    }
}

/// A snapshot of one stage's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StageFigures {
    pub stage: Stage,
    pub calls: u64,
    pub packets: u64,
    pub cycles: u64,
}

impl WorkerRuntime {
    /// Count one call of `stage` that handled `packets` in `cycles` TSC cycles.
    #[inline]
    pub fn record(&self, stage: Stage, packets: usize, cycles: u64) {
        let s = &self.stages[stage.index()];
        s.calls.inc();
        s.packets.add(packets as u64);
        s.cycles.add(cycles);
    }

    /// One stage's counters.
    pub fn stage(&self, stage: Stage) -> StageFigures {
        let s = &self.stages[stage.index()];
        StageFigures { stage, calls: s.calls.get(), packets: s.packets.get(), cycles: s.cycles.get() }
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
            StageFigures { stage: Stage::NatLookup, calls: 2, packets: 48, cycles: 4000 }
        );
        assert_eq!(r.stage(Stage::L2Input).calls, 0);
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(*s));
        }
        assert_eq!(std::mem::align_of::<WorkerRuntime>(), 64);
    }
}
