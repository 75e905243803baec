//! masqd's side of the control plane: the [`control::Handler`] that answers every command
//! of the protocol (`docs/control-protocol.md`), and the little each worker carries for it.
//!
//! ```text
//!  masqctl / scripts ──unix socket──▶ control::Server (threads on the main lcore's CPU)
//!                                         │ MasqdHandler::handle(Command)
//!        ┌──────────────┬─────────────────┼───────────────────┬─────────────────────┐
//!   rules.*        timeouts.*         stats.get             sessions.*          config.get
//!   RulesControl   nat::Timeouts      counters, latency     WorkerLink ──mpsc──▶ WorkerMailbox
//!   (Mutex<RuleSet>, (atomics)        histograms (read       (bounded; the worker try_recv's
//!    ArcSwap store                     without stopping),     once per ms, outside the
//!    of CompiledRules)                 PortStatsBoard         burst loop, and answers one
//!                                      (main thread reads     bounded step)
//!                                       the ports)
//! ```
//!
//! | file | what |
//! | --- | --- |
//! | [`handler`] | [`MasqdHandler`]: every command; [`config_json`] for `config.get` |
//! | [`rules`] | [`RulesControl`]: the authoritative `RuleSet`, compiled and swapped whole on each change |
//! | [`mailbox`] | per-worker request queue: session pages, counts, flush steps, NAT summaries |
//! | [`latency`] | per-worker allocation-free latency histogram; merged percentiles |
//! | [`stats`] | port counters on request ([`PortStatsBoard`]), worker and drop figures |
//!
//! The worker's part is [`WorkerControl`]: its mailbox and its latency probe. The poll
//! loop costs for them are two cycle-counter reads and one counter increment per pass
//! that received packets, and one comparison per pass (plus a `try_recv` once per
//! millisecond) for the mailbox. No lock, no allocation, no syscall in the burst loop.

pub mod handler;
pub mod latency;
pub mod mailbox;
pub mod rules;
pub mod stats;

pub use handler::{config_json, HandlerParts, MasqdHandler, MempoolSource, PortStatsSource, WorkerHandle};
pub use latency::{LatencyHistogram, LatencyRecorder};
pub use mailbox::{WorkerLink, WorkerMailbox};
pub use rules::RulesControl;
pub use stats::{BasicPortCounters, PortStatsBoard};

use crate::nat::WorkerNat;
use crate::time::Instant;

/// What one worker carries for the control plane. `Default`: nothing (tests, benches).
#[derive(Default)]
pub struct WorkerControl {
    /// Where the control thread's questions about sessions arrive.
    pub mailbox: Option<WorkerMailbox>,
    /// The per-pass latency probe.
    pub latency: Option<LatencyRecorder>,
}

impl WorkerControl {
    pub fn new(mailbox: WorkerMailbox, latency: LatencyRecorder) -> WorkerControl {
        WorkerControl { mailbox: Some(mailbox), latency: Some(latency) }
    }

    /// The first burst of a poll pass has arrived.
    #[inline]
    pub fn burst_begin(&mut self) {
        if let Some(l) = &mut self.latency {
            l.begin();
        }
    }

    /// The pass handled `packets` and flushed its transmit stages.
    #[inline]
    pub fn burst_end(&mut self, packets: usize) {
        if let Some(l) = &mut self.latency {
            l.end(packets);
        }
    }

    /// Whether the mailbox should be looked at in this pass (once per millisecond).
    #[inline]
    pub fn mailbox_due(&self, now: Instant) -> bool {
        self.mailbox.as_ref().is_some_and(|m| m.due(now))
    }

    /// Answer at most one control-plane request from `nat`.
    #[cold]
    pub fn serve_mailbox(&mut self, nat: Option<&mut WorkerNat>, now: Instant) {
        if let Some(m) = &mut self.mailbox {
            m.serve(nat, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mailbox::{channel, Reply, Request};
    use super::*;
    use crate::config::Config;
    use crate::counters::WorkerCounters;
    use crate::io::mem::MemIo;
    use crate::l3::neighbor::NeighborTable;
    use crate::l3::route::RouteTable;
    use crate::l3::router::Router;
    use crate::worker::Worker;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant as StdInstant};

    static CYCLES: AtomicU64 = AtomicU64::new(0);

    /// A counter that advances 3200 cycles (3.2 µs at 1 GHz) per read.
    fn cycles() -> u64 {
        CYCLES.fetch_add(3200, Ordering::Relaxed)
    }

    fn worker(control: WorkerControl) -> Worker<MemIo> {
        let config = Config::parse(
            "[[port]]\nname = \"lan\"\nrole = \"inside\"\ndevice = \"net_null0\"\naddress = \"100.64.0.1/10\"\n\
             [[port]]\nname = \"wan\"\nrole = \"outside\"\ndevice = \"net_null1\"\naddress = \"203.0.113.1/24\"\n\
             [workers]\ncores = [1]\n",
        )
        .unwrap();
        let counters = Arc::new(WorkerCounters::default());
        let router = Router::new(
            Arc::new(RouteTable::from_config(&config)),
            Arc::new(NeighborTable::new(16)),
            vec![[2, 0, 0, 0, 1, 1], [2, 0, 0, 0, 2, 1]],
            counters.clone(),
        );
        Worker::new(MemIo::new(2), router, counters).with_control(control)
    }

    #[test]
    fn the_poll_loop_records_latency_per_packet_and_serves_its_mailbox_once_per_ms() {
        let (mailbox, link) = channel(0);
        let histogram = Arc::new(LatencyHistogram::default());
        let mut w = worker(WorkerControl::new(mailbox, LatencyRecorder::new(histogram.clone(), cycles, 1_000_000_000)));

        // An idle pass records nothing; a pass with 4 frames (dropped or not) records 4
        // packets at 3.2 µs / 4 = 800 ns each.
        w.poll(crate::time::Instant::from_millis(1));
        assert_eq!(histogram.samples(), 0);
        for _ in 0..4 {
            w.io_mut().inject(0, &[0u8; 60]);
        }
        assert_eq!(w.poll(crate::time::Instant::from_millis(2)), 4);
        assert_eq!(histogram.samples(), 4);
        assert_eq!(histogram.max_ns(), 800);

        // The mailbox was looked at in millisecond 2 already: requests wait for the first
        // pass of millisecond 3, which answers one.
        let deadline = StdInstant::now() + Duration::from_secs(5);
        let first = link.post(Request::Summary, deadline).unwrap();
        let second = link.post(Request::Summary, deadline).unwrap();
        w.poll(crate::time::Instant::from_millis(2));
        w.poll(crate::time::Instant::from_millis(3));
        w.poll(crate::time::Instant::from_millis(3));
        assert!(matches!(first.wait(deadline), Ok(Reply::NoNat)), "no NAT yet: answered, not an error");
        let soon = StdInstant::now() + Duration::from_millis(20);
        assert!(second.wait(soon).is_err(), "one request per millisecond");
    }
}
