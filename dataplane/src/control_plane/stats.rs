//! `stats.get`'s pieces that do not need the workers' mailboxes: port counters (read by
//! the thread that owns the ports, on request) and the per-worker counter blocks.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use control::protocol::{PortStats, StageRuntime, WorkerStats};

use crate::counters::WorkerCounters;
use crate::pipeline::WorkerRuntime;
use crate::stats::DropReason;

/// A port's basic counters, as `rte_eth_stats_get` gives them (no DPDK types here).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BasicPortCounters {
    pub ipackets: u64,
    pub opackets: u64,
    pub ibytes: u64,
    pub obytes: u64,
    pub imissed: u64,
    pub ierrors: u64,
    pub oerrors: u64,
    pub rx_nombuf: u64,
}

/// One port's entry of `stats.get`: basic counters, plus the PMD's extended counters
/// (the link fields are the caller's to fill: it owns the port).
pub fn port_stats(port: u16, name: &str, c: BasicPortCounters, xstats: &[(String, u64)]) -> PortStats {
    let mut pmd: BTreeMap<String, u64> = xstats.iter().cloned().collect();
    for (k, v) in [("ierrors", c.ierrors), ("oerrors", c.oerrors), ("imissed", c.imissed), ("rx_nombuf", c.rx_nombuf)] {
        pmd.insert(k.to_string(), v);
    }
    PortStats {
        port,
        name: name.to_string(),
        rx_packets: c.ipackets,
        rx_bytes: c.ibytes,
        rx_drops: c.imissed + c.rx_nombuf,
        tx_packets: c.opackets,
        tx_bytes: c.obytes,
        tx_drops: c.oerrors,
        pmd,
        link_up: None,
        link_speed_mbps: None,
        link_changes: 0,
    }
}

/// Port counters on request, read by the thread that owns the ports (masqd's main
/// thread), so the control thread never touches a DPDK port.
///
/// The control thread calls [`request`](Self::request): it raises a flag and waits (with a
/// time limit) for the owner, which calls [`serve`](Self::serve) on every turn of its loop
/// and reads the counters only when asked. On timeout the last snapshot is returned.
#[derive(Debug, Default)]
pub struct PortStatsBoard {
    /// Requests made; the owner serves when this is ahead of `state.served`.
    wanted: AtomicU64,
    state: Mutex<BoardState>,
    served: Condvar,
}

#[derive(Debug, Default)]
struct BoardState {
    served: u64,
    snapshot: Vec<PortStats>,
}

impl PortStatsBoard {
    pub fn new() -> PortStatsBoard {
        PortStatsBoard::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BoardState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Fresh counters, read after this call; the last ones if the owner does not answer
    /// within `timeout`.
    pub fn request(&self, timeout: Duration) -> Vec<PortStats> {
        let ticket = self.wanted.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = Instant::now() + timeout;
        let mut state = self.lock();
        while state.served < ticket {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.served.wait_timeout(state, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        state.snapshot.clone()
    }

    /// If counters were asked for, read them with `read` and hand them over. Cheap when
    /// nobody asked: one atomic load and a plain mutex lock.
    pub fn serve(&self, read: impl FnOnce() -> Vec<PortStats>) {
        let wanted = self.wanted.load(Ordering::Acquire);
        if self.lock().served >= wanted {
            return;
        }
        let snapshot = read();
        let mut state = self.lock();
        state.snapshot = snapshot;
        state.served = state.served.max(wanted);
        drop(state);
        self.served.notify_all();
    }
}

/// One worker's entry of `stats.get` (its session count comes from its mailbox).
pub fn worker_stats(
    worker: u32,
    lcore: u32,
    c: &WorkerCounters,
    runtime: &WorkerRuntime,
    sessions_active: u64,
) -> WorkerStats {
    WorkerStats {
        worker,
        lcore,
        rx_packets: c.rx_packets.get(),
        rx_bytes: c.rx_bytes.get(),
        tx_packets: c.tx_packets.get(),
        tx_bytes: c.tx_bytes.get(),
        drops: c.drops_total(),
        sessions_active,
        polls: c.polls.get(),
        handoff_out: c.handoff_out.get(),
        handoff_in: c.handoff_in.get(),
        runtime: stage_runtime(runtime),
        max_pass_cycles: runtime.passes().max_cycles,
        slow_passes: runtime.passes().slow,
        counters: c.scalars().into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
    }
}

/// Every host interface's counters for `stats.get`.
pub fn host_interface_stats(host: &crate::host::HostCounters) -> Vec<control::protocol::HostInterfaceStats> {
    host.interfaces
        .iter()
        .map(|(name, port, c)| control::protocol::HostInterfaceStats {
            name: name.clone(),
            port: port.clone(),
            rx_packets: c.rx_packets.get(),
            rx_bytes: c.rx_bytes.get(),
            rx_dropped: c.rx_dropped.get(),
            tx_packets: c.tx_packets.get(),
            tx_bytes: c.tx_bytes.get(),
            tx_dropped: c.tx_dropped.get(),
            tx_unsupported: c.tx_unsupported.get(),
        })
        .collect()
}

/// Each counter of the workers' `counters`, summed.
pub fn counter_totals(workers: &[WorkerStats]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for (k, v) in workers.iter().flat_map(|w| &w.counters) {
        *totals.entry(k.clone()).or_insert(0) += v;
    }
    totals
}

/// A worker's runtime table for `stats.get`: every stage, in pipeline order.
pub fn stage_runtime(runtime: &WorkerRuntime) -> Vec<StageRuntime> {
    runtime
        .figures()
        .into_iter()
        .map(|f| StageRuntime {
            stage: f.stage.name().to_string(),
            calls: f.calls,
            packets: f.packets,
            cycles: f.cycles,
            max_cycles: f.max_cycles,
            slow_calls: f.slow_calls,
        })
        .collect()
}

/// Drops by reason over all workers: every reason by its stable name, zero or not.
pub fn drops_by_reason(workers: &[&WorkerCounters]) -> BTreeMap<String, u64> {
    DropReason::ALL.iter().map(|r| (r.name().to_string(), workers.iter().map(|w| w.drops_for(*r)).sum())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Stage;
    use std::sync::Arc;

    #[test]
    fn the_board_serves_on_request_and_times_out_with_the_last_snapshot() {
        let board = Arc::new(PortStatsBoard::new());
        let mut reads = 0;
        board.serve(|| {
            reads += 1;
            vec![]
        });
        assert_eq!(reads, 0, "nobody asked");

        let asker = {
            let board = board.clone();
            std::thread::spawn(move || board.request(Duration::from_secs(5)))
        };
        let owner = {
            let board = board.clone();
            std::thread::spawn(move || {
                for _ in 0..500 {
                    board.serve(|| {
                        vec![port_stats(0, "lan", BasicPortCounters { ipackets: 7, ..Default::default() }, &[])]
                    });
                    std::thread::sleep(Duration::from_millis(2));
                }
            })
        };
        let got = asker.join().unwrap();
        assert_eq!(got[0].rx_packets, 7);
        assert_eq!(got[0].name, "lan");
        owner.join().unwrap();
        let start = Instant::now();
        assert_eq!(board.request(Duration::from_millis(30)).len(), 1, "the last snapshot");
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn port_entry_sums_receive_drops_and_keeps_pmd_counters() {
        let c = BasicPortCounters { imissed: 2, rx_nombuf: 3, oerrors: 1, ierrors: 4, ..Default::default() };
        let p = port_stats(1, "wan", c, &[("rx_good_packets".into(), 9)]);
        assert_eq!((p.rx_drops, p.tx_drops), (5, 1));
        assert_eq!(p.pmd["ierrors"], 4);
        assert_eq!(p.pmd["rx_good_packets"], 9);
    }

    #[test]
    fn drops_list_every_reason() {
        let a = WorkerCounters::default();
        let b = WorkerCounters::default();
        a.count_drop(DropReason::NoRoute);
        b.count_drop(DropReason::NoRoute);
        let d = drops_by_reason(&[&a, &b]);
        assert_eq!(d.len(), DropReason::COUNT);
        assert_eq!(d["no_route"], 2);
        assert_eq!(d["tx_full"], 0);
        a.polls.add(9);
        a.handoff_out.add(2);
        a.handoff_in.add(3);
        let runtime = WorkerRuntime::default();
        runtime.record(Stage::NatLookup, 32, 1600);
        let w = worker_stats(1, 3, &a, &runtime, 5);
        assert_eq!((w.worker, w.lcore, w.drops, w.sessions_active), (1, 3, 1, 5));
        assert_eq!((w.polls, w.handoff_out, w.handoff_in), (9, 2, 3));
        assert_eq!(w.runtime.len(), Stage::COUNT);
        assert_eq!(w.runtime[0].stage, "port-rx");
        let lookup = w.runtime.iter().find(|s| s.stage == "nat-lookup").unwrap();
        assert_eq!((lookup.calls, lookup.packets, lookup.cycles), (1, 32, 1600));
    }

    /// docs/control-protocol.md's `stats.get` example lists every worker counter, by name.
    #[test]
    fn the_documented_worker_counters_are_the_workers_counters() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control-protocol.md");
        let text = std::fs::read_to_string(path).unwrap();
        let block = text.split("```json\n").find(|b| b.contains("\"cmd\": \"stats.get\"")).expect("the example");
        let response = block.split("```").next().unwrap().split_once("\n← ").unwrap().1;
        let response: serde_json::Value = serde_json::from_str(response).unwrap();
        let documented: Vec<&str> =
            response["result"]["workers"][0]["counters"].as_object().unwrap().keys().map(String::as_str).collect();
        let mut ours: Vec<&str> = WorkerCounters::default().scalars().into_iter().map(|(k, _)| k).collect();
        ours.sort_unstable();
        assert_eq!(documented, ours, "update the stats.get example in docs/control-protocol.md");
    }

    #[test]
    fn worker_entries_carry_every_counter_of_the_shutdown_report() {
        let a = WorkerCounters::default();
        let b = WorkerCounters::default();
        a.nat_hairpinned.add(2);
        b.nat_hairpinned.add(3);
        a.handoff_out.add(7);
        b.nat_fragments_translated.inc();
        let rt = WorkerRuntime::default();
        let (wa, wb) = (worker_stats(0, 1, &a, &rt, 0), worker_stats(1, 2, &b, &rt, 0));
        // The report's worker lines, name for name and value for value.
        let report = crate::report::render(&[], &[&a, &b], 0);
        for (i, w) in [&wa, &wb].into_iter().enumerate() {
            assert_eq!(w.counters.len(), a.scalars().len());
            for (k, v) in &w.counters {
                assert!(report.contains(&format!("worker:{i} {k} {v}\n")), "{k}\n{report}");
            }
        }
        for key in ["nat_hairpinned", "handoff_out", "handoff_in", "nat_icmp_errors_translated", "nat_mappings"] {
            assert!(wa.counters.contains_key(key), "{key}");
        }
        let totals = counter_totals(&[wa, wb]);
        assert_eq!((totals["nat_hairpinned"], totals["handoff_out"], totals["nat_fragments_translated"]), (5, 7, 1));
    }
}
