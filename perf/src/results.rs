//! What one `masq-bench` run measured: per session count, throughput with and without
//! NAT, connection setup and tear-down, memory and latency. Printed as a table and as
//! one JSON line (the last line of `--json` output).

use serde::Serialize;
use std::fmt::Write;

/// Latency added between the generator's enqueue and the sink's dequeue, at one offered
/// load.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LatencyPoint {
    /// Offered load as a fraction of the measured NAT throughput.
    pub load: f64,
    pub offered_mpps: f64,
    /// What the generator managed to send (below `offered_mpps` when it fell behind).
    pub sent_mpps: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Packets sent and received in the window (loss = 1 - received / sent).
    pub sent: u64,
    pub received: u64,
}

/// Every figure for one number of active sessions.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Point {
    pub sessions: u64,
    pub subscribers: u32,
    /// Median over the runs of the worker's rate through NAT with all sessions active.
    pub nat_mpps: f64,
    pub nat_mpps_runs: Vec<f64>,
    /// Median rate of the same worker routing the same frames without NAT.
    pub forward_mpps: f64,
    pub forward_mpps_runs: Vec<f64>,
    pub nat_gbps: f64,
    pub forward_gbps: f64,
    pub nat_forward_ratio: f64,
    pub nat_cycles_per_packet: f64,
    pub forward_cycles_per_packet: f64,
    /// Packets the worker dropped during the throughput runs (should be 0).
    pub nat_drops: u64,
    /// Sessions created per second, every packet a new flow, until the table was full.
    pub new_sessions_per_sec: f64,
    /// Sessions the table held when creation started failing.
    pub table_capacity: u64,
    /// Sessions removed per second by a flush of the full table.
    pub teardown_per_sec: f64,
    /// Resident memory growth from before the NAT was built to a full table, per session.
    pub bytes_per_session: f64,
    /// The NAT's own accounting of its tables, per session of capacity.
    pub nat_table_bytes_per_session: f64,
    pub latency: Vec<LatencyPoint>,
    /// With `--logging`: the same establishment run with session logging on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingPoint>,
    /// The NAT worker's runtime table over its throughput runs: TSC cycles per packet of
    /// each pipeline stage that ran (`masqctl stats --runtime`'s figures). Empty with
    /// `--no-runtime`.
    #[serde(default)]
    pub nat_stage_cycles: Vec<StageCycles>,
}

/// One pipeline stage's cost over a measurement.
#[derive(Clone, Debug, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct StageCycles {
    pub stage: String,
    /// Packets per call (the vector size the stage saw).
    pub packets_per_call: f64,
    pub cycles_per_packet: f64,
}

/// New-session rate with NAT event logging on (IPFIX to a local socket).
#[derive(Clone, Debug, Default, Serialize)]
pub struct LoggingPoint {
    pub new_sessions_per_sec: f64,
    /// Events the worker queued.
    pub events: u64,
    /// Events lost to a full ring.
    pub dropped: u64,
    /// IPFIX data records the logging thread encoded.
    pub ipfix_records: u64,
}

impl Point {
    /// p99 latency at the load closest to 50 %.
    pub fn latency_p99_at_half(&self) -> f64 {
        self.latency
            .iter()
            .min_by(|a, b| (a.load - 0.5).abs().total_cmp(&(b.load - 0.5).abs()))
            .map_or(0.0, |l| l.p99_us)
    }
}

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub frame_size: usize,
    pub proto: String,
    /// Share of the throughput runs' frames that are return traffic (outside → inside,
    /// to established sessions); the rates count both directions.
    pub return_share: f64,
    pub tsc_hz: u64,
    pub runs: usize,
    pub duration_s: f64,
    pub points: Vec<Point>,
}

/// Median of a sample (0 when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Layer-1 Gbit/s of `mpps` frames of `frame_size` bytes (plus preamble and gap).
pub fn gbps(mpps: f64, frame_size: usize) -> f64 {
    mpps * 1e6 * (frame_size as f64 + 20.0) * 8.0 / 1e9
}

impl Report {
    /// The headline point: the one with the most sessions.
    pub fn headline(&self) -> Option<&Point> {
        self.points.iter().max_by_key(|p| p.sessions)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "masq-bench: 1 worker, {} B {} frames ({:.0} % return traffic), TSC {:.2} GHz, median of {} run(s) of {:.1} s",
            self.frame_size,
            self.proto,
            self.return_share * 100.0,
            self.tsc_hz as f64 / 1e9,
            self.runs,
            self.duration_s
        );
        let _ = writeln!(
            o,
            "{:>10} {:>9} {:>9} {:>6} {:>8} {:>8} {:>7} {:>7} {:>10} {:>10} {:>9} {:>8} {:>8} {:>8}",
            "sessions",
            "nat Mpps",
            "fwd Mpps",
            "ratio",
            "nat Gb/s",
            "fwd Gb/s",
            "cyc/pkt",
            "fwd cyc",
            "new/s",
            "teardown/s",
            "capacity",
            "B/sess",
            "p50 µs",
            "p99 µs"
        );
        for p in &self.points {
            let half = p.latency.iter().min_by(|a, b| (a.load - 0.5).abs().total_cmp(&(b.load - 0.5).abs()));
            let _ = writeln!(
                o,
                "{:>10} {:>9.3} {:>9.3} {:>6.3} {:>8.2} {:>8.2} {:>7.0} {:>7.0} {:>10.0} {:>10.0} {:>9} {:>8.1} {:>8.1} {:>8.1}",
                p.sessions,
                p.nat_mpps,
                p.forward_mpps,
                p.nat_forward_ratio,
                p.nat_gbps,
                p.forward_gbps,
                p.nat_cycles_per_packet,
                p.forward_cycles_per_packet,
                p.new_sessions_per_sec,
                p.teardown_per_sec,
                p.table_capacity,
                p.bytes_per_session,
                half.map_or(0.0, |l| l.p50_us),
                half.map_or(0.0, |l| l.p99_us),
            );
        }
        if let Some(p) = self.headline() {
            let _ =
                writeln!(o, "latency added by the worker at {} sessions (generator -> worker -> sink):", p.sessions);
            let _ = writeln!(
                o,
                "{:>6} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                "load", "offered", "sent Mpps", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs", "loss %"
            );
            for l in &p.latency {
                let loss = if l.sent == 0 { 0.0 } else { 100.0 * (1.0 - l.received as f64 / l.sent as f64) };
                let _ = writeln!(
                    o,
                    "{:>5.0}% {:>9.3} {:>9.3} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.3}",
                    l.load * 100.0,
                    l.offered_mpps,
                    l.sent_mpps,
                    l.p50_us,
                    l.p90_us,
                    l.p99_us,
                    l.p999_us,
                    l.max_us,
                    loss.max(0.0)
                );
            }
        }
        o
    }

    /// The one-line JSON summary: the headline figures at top level, every point below.
    pub fn json_line(&self) -> String {
        let h = self.headline().cloned().unwrap_or_default();
        let v = serde_json::json!({
            "sessions": h.sessions,
            "return_share": self.return_share,
            "nat_mpps": h.nat_mpps,
            "forward_mpps": h.forward_mpps,
            "nat_forward_ratio": h.nat_forward_ratio,
            "nat_gbps": h.nat_gbps,
            "forward_gbps": h.forward_gbps,
            "cycles_per_packet": h.nat_cycles_per_packet,
            "new_sessions_per_sec": h.new_sessions_per_sec,
            "teardown_per_sec": h.teardown_per_sec,
            "table_capacity": h.table_capacity,
            "bytes_per_session": h.bytes_per_session,
            "latency_p99_us": h.latency_p99_at_half(),
            "new_sessions_per_sec_logging": h.logging.as_ref().map(|l| l.new_sessions_per_sec),
            "log_events_dropped": h.logging.as_ref().map(|l| l.dropped),
            "report": self,
        });
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn line_rate_of_64_byte_frames() {
        // 14.88 Mpps of 64 B frames is 10 Gbit/s on the wire.
        assert!((gbps(14.880_952, 64) - 10.0).abs() < 1e-3);
    }

    #[test]
    fn json_line_has_the_headline_keys() {
        let mut r = Report { frame_size: 64, return_share: 0.5, ..Default::default() };
        r.points.push(Point { sessions: 10, nat_mpps: 1.0, ..Default::default() });
        r.points.push(Point {
            sessions: 1000,
            nat_mpps: 2.0,
            forward_mpps: 4.0,
            nat_forward_ratio: 0.5,
            latency: vec![
                LatencyPoint { load: 0.1, p99_us: 1.0, ..Default::default() },
                LatencyPoint { load: 0.5, p99_us: 7.5, ..Default::default() },
            ],
            ..Default::default()
        });
        let line = r.json_line();
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["sessions"], 1000);
        assert_eq!(v["nat_forward_ratio"], 0.5);
        assert_eq!(v["latency_p99_us"], 7.5);
        assert_eq!(v["return_share"], 0.5);
        for k in ["nat_mpps", "forward_mpps", "new_sessions_per_sec", "bytes_per_session"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(r.table().contains("1000"));
    }
}
