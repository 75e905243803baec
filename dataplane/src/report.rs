//! masqd's counter report, printed at shutdown (and later served by the control plane).
//!
//! One counter per line, `<scope> <name> <value>`, so tests and scripts can grep it:
//!
//! ```text
//! port:lan rx_packets 5
//! worker:0 tx_packets 4
//! drop ipv4_bad_checksum 1
//! mempool in_use 0
//! ```
//!
//! `drop` lines are summed over workers and list every reason, zero or not. With NAT
//! event logging on, `logging <name> <value>` lines follow ([`render_logging`]); with host
//! interfaces, `host:<interface> <counter> <value>` lines (`crate::host::counters::render`).
//! The final line is written by masqd itself: `masqd: clean shutdown`, or
//! `masqd: LEAK <n> mbufs`.

use std::fmt::Write;

use crate::counters::WorkerCounters;
use crate::stats::DropReason;

/// A port's counters as `(name, value)` pairs, e.g. from `rte_eth_stats`.
pub struct PortCounters {
    pub name: String,
    pub counters: Vec<(String, u64)>,
}

/// Render the report.
pub fn render(ports: &[PortCounters], workers: &[&WorkerCounters], mempool_in_use: u64) -> String {
    let mut out = String::new();
    for p in ports {
        for (k, v) in &p.counters {
            let _ = writeln!(out, "port:{} {} {}", p.name, k, v);
        }
    }
    for (i, w) in workers.iter().enumerate() {
        for (k, v) in w.scalars() {
            let _ = writeln!(out, "worker:{i} {k} {v}");
        }
        let _ = writeln!(out, "worker:{i} drops {}", w.drops_total());
    }
    for r in DropReason::ALL {
        let total: u64 = workers.iter().map(|w| w.drops_for(*r)).sum();
        let _ = writeln!(out, "drop {} {}", r.name(), total);
    }
    let _ = writeln!(out, "mempool in_use {mempool_in_use}");
    out
}

/// The logging thread's counters, `logging <name> <value>` (see
/// [`crate::logging::ExporterStats`]).
pub fn render_logging(stats: &crate::logging::ExporterStats) -> String {
    let mut out = String::new();
    for (k, v) in stats.scalars() {
        let _ = writeln!(out, "logging {k} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_counter_per_line() {
        let a = WorkerCounters::default();
        let b = WorkerCounters::default();
        a.rx_packets.add(5);
        b.rx_packets.add(2);
        a.count_drop(DropReason::Ipv4BadChecksum);
        b.count_drop(DropReason::Ipv4BadChecksum);
        let ports = [PortCounters { name: "lan".into(), counters: vec![("rx_packets".into(), 7)] }];
        let text = render(&ports, &[&a, &b], 0);
        assert!(text.contains("\nworker:0 rx_packets 5\n"));
        assert!(text.contains("\nworker:1 rx_packets 2\n"));
        assert!(text.starts_with("port:lan rx_packets 7\n"));
        assert!(text.contains("\ndrop ipv4_bad_checksum 2\n"));
        assert!(text.contains("\ndrop no_route 0\n"));
        assert!(text.ends_with("mempool in_use 0\n"));
        assert!(text.lines().all(|l| l.split(' ').count() == 3), "{text}");
    }
}
