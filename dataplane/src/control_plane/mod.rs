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

pub use handler::{config_json, HandlerParts, MasqdHandler, PortStatsSource, WorkerHandle};
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
