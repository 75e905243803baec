//! `stats.get`'s result in the Prometheus text exposition format (version 0.0.4).
//!
//! [`render`] takes the same [`Stats`] snapshot that `masqctl stats` prints and encodes it
//! with `prometheus-client`'s collector API: every figure is a constant read at scrape
//! time, nothing is kept between scrapes. Names follow Prometheus' conventions: the
//! `masq_` prefix, `_total` on counters (added by the encoder), base units (bytes,
//! seconds). The list, with labels and meaning, is in `docs/operations.md` ("Metrics").

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use serde::Deserialize;

use crate::protocol::Stats;

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// What the exporter adds beside the snapshot: the daemon's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    pub version: String,
}

/// One scrape's figures: `stats.get`'s result.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub stats: Stats,
    /// Per-stage runtime counters, when the daemon reports them.
    pub stages: StageRuntimes,
}

impl From<Stats> for Snapshot {
    fn from(stats: Stats) -> Snapshot {
        Snapshot { stats, stages: StageRuntimes::default() }
    }
}

impl Snapshot {
    /// Read `stats.get`'s result.
    pub fn from_result(result: &serde_json::Value) -> Result<Snapshot, serde_json::Error> {
        Ok(Snapshot { stats: Stats::deserialize(result)?, stages: StageRuntimes::deserialize(result)? })
    }
}

/// The pipeline's per-stage runtime counters in `stats.get` (VPP's `show runtime`): each
/// worker's `runtime` list and the TSC rate its cycles count in. Read from the result on
/// their own, so the exporter publishes them from the first daemon that reports them;
/// absent fields read as empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StageRuntimes {
    #[serde(default)]
    pub tsc_hz: u64,
    #[serde(default)]
    pub workers: Vec<WorkerStages>,
}

/// One worker's stages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct WorkerStages {
    pub worker: u32,
    #[serde(default)]
    pub runtime: Vec<StageFigures>,
}

/// One stage of one worker, since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct StageFigures {
    /// Stable name (`l2-input`, `nat-lookup`, ...).
    pub stage: String,
    pub calls: u64,
    pub packets: u64,
    pub cycles: u64,
    #[serde(default)]
    pub max_cycles: u64,
    #[serde(default)]
    pub slow_calls: u64,
}

/// Encode a snapshot as Prometheus text.
pub fn render(snapshot: &Snapshot, build: &BuildInfo) -> String {
    let mut registry = Registry::with_prefix("masq");
    registry.register_collector(Box::new(Collected { snapshot: snapshot.clone(), build: build.clone() }));
    let mut out = String::with_capacity(16 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

/// What one scrape encodes.
#[derive(Debug)]
struct Collected {
    snapshot: Snapshot,
    build: BuildInfo,
}

/// A metric family: its name (without prefix and `_total`), help, unit and type, then
/// one sample per label set.
struct Family<'e, 'a> {
    encoder: &'e mut DescriptorEncoder<'a>,
}

impl<'e, 'a> Family<'e, 'a> {
    fn new(encoder: &'e mut DescriptorEncoder<'a>) -> Self {
        Family { encoder }
    }

    /// A counter family: `(labels, value)` samples.
    fn counters<'l>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: impl IntoIterator<Item = (Vec<(&'l str, String)>, u64)>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = self.encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Counter)?;
        for (labels, value) in samples {
            ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    /// A gauge family.
    fn gauges<'l, V: prometheus_client::encoding::EncodeGaugeValue>(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        samples: impl IntoIterator<Item = (Vec<(&'l str, String)>, V)>,
    ) -> Result<(), std::fmt::Error> {
        let mut family = self.encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
        for (labels, value) in samples {
            ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

fn label(key: &str, value: impl ToString) -> Vec<(&str, String)> {
    vec![(key, value.to_string())]
}

impl Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.snapshot.stats;
        let mut f = Family::new(&mut encoder);

        {
            let mut info = f.encoder.encode_descriptor("build", "masqd's version", None, MetricType::Info)?;
            info.encode_info(&[("version", self.build.version.as_str())])?;
        }

        // ----- ports -----
        let port = |name: &str| label("port", name);
        let pmd = |p: &crate::protocol::PortStats, key: &str| p.pmd.get(key).copied().unwrap_or(0);
        f.counters(
            "port_rx_packets",
            "Packets received by the port",
            None,
            s.ports.iter().map(|p| (port(&p.name), p.rx_packets)),
        )?;
        f.counters(
            "port_tx_packets",
            "Packets sent by the port",
            None,
            s.ports.iter().map(|p| (port(&p.name), p.tx_packets)),
        )?;
        f.counters(
            "port_rx",
            "Bytes received by the port",
            Some(Unit::Bytes),
            s.ports.iter().map(|p| (port(&p.name), p.rx_bytes)),
        )?;
        f.counters(
            "port_tx",
            "Bytes sent by the port",
            Some(Unit::Bytes),
            s.ports.iter().map(|p| (port(&p.name), p.tx_bytes)),
        )?;
        f.counters(
            "port_rx_missed",
            "Packets the NIC dropped on receive for want of a descriptor (imissed)",
            None,
            s.ports.iter().map(|p| (port(&p.name), pmd(p, "imissed"))),
        )?;
        f.counters(
            "port_rx_nombuf",
            "Receive failures for want of an mbuf (rx_nombuf)",
            None,
            s.ports.iter().map(|p| (port(&p.name), pmd(p, "rx_nombuf"))),
        )?;
        f.counters(
            "port_rx_errors",
            "Erroneous packets received (ierrors)",
            None,
            s.ports.iter().map(|p| (port(&p.name), pmd(p, "ierrors"))),
        )?;
        f.counters(
            "port_tx_errors",
            "Packets the port failed to send (oerrors)",
            None,
            s.ports.iter().map(|p| (port(&p.name), pmd(p, "oerrors"))),
        )?;
        f.gauges(
            "port_link_up",
            "1 when the port's carrier is up, 0 when down (absent when the driver cannot tell)",
            None,
            s.ports.iter().filter_map(|p| p.link_up.map(|up| (port(&p.name), i64::from(up)))),
        )?;

        // ----- workers -----
        let worker = |w: &crate::protocol::WorkerStats| label("worker", w.worker);
        f.counters(
            "worker_rx_packets",
            "Packets the worker received from every port",
            None,
            s.workers.iter().map(|w| (worker(w), w.rx_packets)),
        )?;
        f.counters(
            "worker_tx_packets",
            "Packets the worker sent, all ports",
            None,
            s.workers.iter().map(|w| (worker(w), w.tx_packets)),
        )?;
        f.counters(
            "worker_rx",
            "Bytes the worker received, all ports",
            Some(Unit::Bytes),
            s.workers.iter().map(|w| (worker(w), w.rx_bytes)),
        )?;
        f.counters(
            "worker_tx",
            "Bytes the worker sent, all ports",
            Some(Unit::Bytes),
            s.workers.iter().map(|w| (worker(w), w.tx_bytes)),
        )?;
        f.counters(
            "worker_polls",
            "Poll-loop passes, idle ones included",
            None,
            s.workers.iter().map(|w| (worker(w), w.polls)),
        )?;
        f.counters(
            "worker_handoff_out_packets",
            "Packets the worker received but another worker owns, handed over a ring",
            None,
            s.workers.iter().map(|w| (worker(w), w.handoff_out)),
        )?;
        f.counters(
            "worker_handoff_in_packets",
            "Packets other workers handed to this one",
            None,
            s.workers.iter().map(|w| (worker(w), w.handoff_in)),
        )?;
        f.counters(
            "worker_slow_passes",
            "Poll-loop passes that took longer than 1 ms (wall clock)",
            None,
            s.workers.iter().map(|w| (worker(w), w.slow_passes)),
        )?;
        f.gauges(
            "worker_max_pass_cycles",
            "The longest poll-loop pass since start, in TSC cycles (masq_tsc_hertz per second)",
            None,
            s.workers.iter().map(|w| (worker(w), w.max_pass_cycles as i64)),
        )?;
        f.counters(
            "worker_dropped_packets",
            "Packets the worker dropped, every reason",
            None,
            s.workers.iter().map(|w| (worker(w), w.drops)),
        )?;
        f.gauges(
            "worker_sessions",
            "Sessions in the worker's table",
            None,
            s.workers.iter().map(|w| (worker(w), w.sessions_active)),
        )?;

        // ----- drops, sessions, ports -----
        f.counters(
            "dropped_packets",
            "Packets dropped, by reason (masqd's stable drop-reason names), all workers",
            None,
            s.drops.iter().map(|(reason, n)| (label("reason", reason), *n)),
        )?;
        let by_proto = |get: fn(&crate::protocol::ProtocolSessions) -> u64| {
            s.sessions_by_protocol.iter().map(move |(p, v)| (label("protocol", p), get(v)))
        };
        f.gauges("sessions", "NAT sessions in the tables now, by protocol", None, by_proto(|v| v.active))?;
        f.counters("sessions_created", "NAT sessions created, by protocol", None, by_proto(|v| v.created))?;
        f.counters(
            "sessions_expired",
            "NAT sessions ended (expired, or flushed from the control socket), by protocol",
            None,
            by_proto(|v| v.expired),
        )?;
        f.gauges(
            "nat_ports_in_use",
            "External ports (ICMP: identifiers) held by live mappings, by external address and protocol",
            None,
            s.port_utilisation.iter().flat_map(|u| {
                [("tcp", u.tcp), ("udp", u.udp), ("icmp", u.icmp)].map(|(proto, n)| {
                    (vec![("address", u.address.to_string()), ("protocol", proto.to_string())], i64::from(n))
                })
            }),
        )?;
        f.gauges(
            "nat_ports_capacity",
            "External ports available for translation per protocol on the address (all workers' slices)",
            None,
            s.port_utilisation.iter().map(|u| (label("address", u.address), i64::from(u.capacity))),
        )?;

        // ----- host interfaces (only with `host_interface`s) -----
        if !s.host_interfaces.is_empty() {
            type Get = fn(&crate::protocol::HostInterfaceStats) -> u64;
            let families: [(&str, &str, Get); 7] = [
                ("host_interface_rx_packets", "Frames masqd delivered to the kernel's host interface", |h| {
                    h.rx_packets
                }),
                ("host_interface_rx_bytes", "Bytes masqd delivered to the kernel's host interface", |h| h.rx_bytes),
                ("host_interface_rx_dropped", "Frames for the kernel its host interface did not take", |h| {
                    h.rx_dropped
                }),
                ("host_interface_tx_packets", "Frames the kernel sent on its host interface", |h| h.tx_packets),
                ("host_interface_tx_bytes", "Bytes the kernel sent on its host interface", |h| h.tx_bytes),
                ("host_interface_tx_dropped", "Frames from the kernel a worker's full ring did not take", |h| {
                    h.tx_dropped
                }),
                (
                    "host_interface_tx_unsupported",
                    "Frames from the kernel that are neither IPv4 nor ARP (dropped)",
                    |h| h.tx_unsupported,
                ),
            ];
            for (name, help, get) in families {
                f.counters(
                    name,
                    help,
                    None,
                    s.host_interfaces
                        .iter()
                        .map(|h| (vec![("interface", h.name.clone()), ("port", h.port.clone())], get(h))),
                )?;
            }
        }

        // ----- packet buffers (when the daemon reports its pool) -----
        if let Some(pool) = &s.mempool {
            let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            f.gauges("mempool_buffers", "Packet buffers (mbufs) in the pool", None, [(Vec::new(), gauge(pool.size))])?;
            f.gauges(
                "mempool_buffers_in_use",
                "Packet buffers allocated now (device queues, rings, frames held for ARP or a first \
                 fragment); back to its idle level when no traffic is in flight, a steady rise is a leak",
                None,
                [(Vec::new(), gauge(pool.in_use))],
            )?;
        }

        // ----- latency -----
        {
            let h = &s.latency_histogram;
            let mut previous = 0u64;
            // The encoder wants each bucket's own count; the snapshot has them cumulative.
            let buckets: Vec<(f64, u64)> = h
                .buckets
                .iter()
                .map(|b| {
                    let own = b.count.saturating_sub(previous);
                    previous = previous.max(b.count);
                    (b.le_us / 1e6, own)
                })
                .collect();
            let mut latency = f.encoder.encode_descriptor(
                "packet_latency",
                "Time a packet spends in masqd: each poll pass's time divided by its packets, per packet",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            latency.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                h.sum_us / 1e6,
                h.count,
                &buckets,
                None,
            )?;
        }

        // ----- per-stage runtime (absent until the daemon reports it) -----
        let rt = &self.snapshot.stages;
        let stages = || {
            rt.workers.iter().flat_map(|w| {
                w.runtime
                    .iter()
                    .map(move |st| (vec![("worker", w.worker.to_string()), ("stage", st.stage.clone())], st))
            })
        };
        if stages().next().is_some() {
            f.counters(
                "stage_calls",
                "Times a pipeline stage ran (once per burst that reached it), per worker",
                None,
                stages().map(|(l, st)| (l, st.calls)),
            )?;
            f.counters(
                "stage_packets",
                "Packets a pipeline stage handled, per worker",
                None,
                stages().map(|(l, st)| (l, st.packets)),
            )?;
            f.counters(
                "stage_cycles",
                "TSC cycles a pipeline stage took, per worker (masq_tsc_hertz of them per second)",
                None,
                stages().map(|(l, st)| (l, st.cycles)),
            )?;
            f.counters(
                "stage_slow_calls",
                "Calls of a pipeline stage that took longer than 1 ms (wall clock), per worker",
                None,
                stages().map(|(l, st)| (l, st.slow_calls)),
            )?;
            f.gauges(
                "stage_max_cycles",
                "The longest single call of a pipeline stage since start, in TSC cycles, per worker",
                None,
                stages().map(|(l, st)| (l, st.max_cycles as i64)),
            )?;
            if rt.tsc_hz > 0 {
                let hz = rt.tsc_hz as f64;
                {
                    let mut family = f.encoder.encode_descriptor(
                        "stage_cpu",
                        "Time a pipeline stage took, per worker",
                        Some(&Unit::Seconds),
                        MetricType::Counter,
                    )?;
                    for (labels, st) in stages() {
                        ConstCounter::new(st.cycles as f64 / hz).encode(family.encode_family(&labels)?)?;
                    }
                }
                f.gauges(
                    "tsc_hertz",
                    "Rate of the cycle counter the stage cycles count in",
                    None,
                    [(Vec::new(), rt.tsc_hz as i64)],
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        LatencyBucket, LatencyHistogram, PortStats, PortUtilisation, ProtocolSessions, StageRuntime, WorkerStats,
    };

    fn stats() -> Stats {
        Stats {
            ports: vec![
                PortStats {
                    port: 0,
                    name: "lan".into(),
                    rx_packets: 10,
                    rx_bytes: 1000,
                    tx_packets: 9,
                    tx_bytes: 900,
                    pmd: [("imissed".to_string(), 2), ("ierrors".to_string(), 1)].into(),
                    link_up: Some(true),
                    ..Default::default()
                },
                PortStats { port: 1, name: "wan".into(), link_up: None, ..Default::default() },
            ],
            workers: vec![WorkerStats {
                worker: 0,
                lcore: 1,
                rx_packets: 10,
                polls: 12345,
                handoff_out: 3,
                handoff_in: 4,
                drops: 1,
                sessions_active: 2,
                max_pass_cycles: 70000,
                slow_passes: 5,
                ..Default::default()
            }],
            drops: [("no_route".to_string(), 1), ("ttl_exceeded".to_string(), 0)].into(),
            sessions_by_protocol: [
                ("tcp".to_string(), ProtocolSessions { active: 2, created: 5, expired: 3 }),
                ("udp".to_string(), ProtocolSessions::default()),
            ]
            .into(),
            port_utilisation: vec![PortUtilisation {
                address: "203.0.113.1".parse().unwrap(),
                capacity: 64512,
                tcp: 2,
                udp: 0,
                icmp: 1,
            }],
            latency_histogram: LatencyHistogram {
                buckets: vec![
                    LatencyBucket { le_us: 0.5, count: 3 },
                    LatencyBucket { le_us: 1.0, count: 7 },
                    LatencyBucket { le_us: 2.0, count: 7 },
                ],
                count: 8,
                sum_us: 6.5,
            },
            ..Default::default()
        }
    }

    fn line_of<'t>(text: &'t str, prefix: &str) -> &'t str {
        text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no line `{prefix}` in\n{text}"))
    }

    #[test]
    fn every_family_is_typed_named_by_convention_and_labelled() {
        let text = render(&stats().into(), &BuildInfo { version: "1.2.3".into() });
        assert_eq!(line_of(&text, "masq_build_info"), r#"masq_build_info{version="1.2.3"} 1"#);
        assert_eq!(line_of(&text, "# TYPE masq_port_rx_packets_total"), "# TYPE masq_port_rx_packets_total counter");
        assert_eq!(
            line_of(&text, r#"masq_port_rx_packets_total{port="lan"}"#),
            r#"masq_port_rx_packets_total{port="lan"} 10"#
        );
        assert_eq!(
            line_of(&text, r#"masq_port_rx_bytes_total{port="lan"}"#),
            r#"masq_port_rx_bytes_total{port="lan"} 1000"#
        );
        assert_eq!(
            line_of(&text, r#"masq_port_rx_missed_total{port="lan"}"#),
            r#"masq_port_rx_missed_total{port="lan"} 2"#
        );
        assert_eq!(
            line_of(&text, r#"masq_port_rx_errors_total{port="lan"}"#),
            r#"masq_port_rx_errors_total{port="lan"} 1"#
        );
        assert_eq!(
            line_of(&text, r#"masq_port_tx_errors_total{port="wan"}"#),
            r#"masq_port_tx_errors_total{port="wan"} 0"#
        );
        assert_eq!(line_of(&text, "masq_port_link_up{"), r#"masq_port_link_up{port="lan"} 1"#);
        assert!(!text.contains(r#"masq_port_link_up{port="wan"}"#), "unknown link state is left out");
        assert_eq!(line_of(&text, "masq_worker_polls_total{"), r#"masq_worker_polls_total{worker="0"} 12345"#);
        assert_eq!(
            line_of(&text, "masq_worker_handoff_out_packets_total{"),
            r#"masq_worker_handoff_out_packets_total{worker="0"} 3"#
        );
        assert_eq!(
            line_of(&text, "masq_worker_handoff_in_packets_total{"),
            r#"masq_worker_handoff_in_packets_total{worker="0"} 4"#
        );
        assert_eq!(line_of(&text, "masq_worker_slow_passes_total{"), r#"masq_worker_slow_passes_total{worker="0"} 5"#);
        assert_eq!(line_of(&text, "masq_worker_max_pass_cycles{"), r#"masq_worker_max_pass_cycles{worker="0"} 70000"#);
        assert_eq!(line_of(&text, "masq_worker_sessions{"), r#"masq_worker_sessions{worker="0"} 2"#);
        assert_eq!(line_of(&text, "# TYPE masq_worker_sessions "), "# TYPE masq_worker_sessions gauge");
        assert_eq!(
            line_of(&text, r#"masq_dropped_packets_total{reason="no_route"}"#),
            r#"masq_dropped_packets_total{reason="no_route"} 1"#
        );
        assert!(text.contains(r#"masq_dropped_packets_total{reason="ttl_exceeded"} 0"#), "zero reasons too");
        assert_eq!(line_of(&text, r#"masq_sessions{protocol="tcp"}"#), r#"masq_sessions{protocol="tcp"} 2"#);
        assert_eq!(
            line_of(&text, r#"masq_sessions_created_total{protocol="tcp"}"#),
            r#"masq_sessions_created_total{protocol="tcp"} 5"#
        );
        assert_eq!(
            line_of(&text, r#"masq_sessions_expired_total{protocol="tcp"}"#),
            r#"masq_sessions_expired_total{protocol="tcp"} 3"#
        );
        assert_eq!(
            line_of(&text, r#"masq_nat_ports_in_use{address="203.0.113.1",protocol="icmp"}"#),
            r#"masq_nat_ports_in_use{address="203.0.113.1",protocol="icmp"} 1"#
        );
        assert_eq!(
            line_of(&text, "masq_nat_ports_capacity{"),
            r#"masq_nat_ports_capacity{address="203.0.113.1"} 64512"#
        );
    }

    #[test]
    fn host_interfaces_are_published_only_when_there_are_some() {
        let text = render(&stats().into(), &BuildInfo { version: "0".into() });
        assert!(!text.contains("masq_host_interface"), "no host interfaces, no families");
        let mut s = stats();
        s.host_interfaces = vec![crate::protocol::HostInterfaceStats {
            name: "wan0".into(),
            port: "wan".into(),
            rx_packets: 77,
            tx_packets: 66,
            tx_unsupported: 2,
            ..Default::default()
        }];
        let text = render(&s.into(), &BuildInfo { version: "0".into() });
        assert_eq!(
            line_of(&text, "# TYPE masq_host_interface_rx_packets_total"),
            "# TYPE masq_host_interface_rx_packets_total counter"
        );
        assert_eq!(
            line_of(&text, "masq_host_interface_rx_packets_total{"),
            r#"masq_host_interface_rx_packets_total{interface="wan0",port="wan"} 77"#
        );
        assert_eq!(
            line_of(&text, "masq_host_interface_tx_packets_total{"),
            r#"masq_host_interface_tx_packets_total{interface="wan0",port="wan"} 66"#
        );
        assert_eq!(
            line_of(&text, "masq_host_interface_tx_unsupported_total{"),
            r#"masq_host_interface_tx_unsupported_total{interface="wan0",port="wan"} 2"#
        );
    }

    #[test]
    fn the_packet_buffer_pool_is_two_gauges_when_reported() {
        let text = render(&stats().into(), &BuildInfo { version: "0".into() });
        assert!(!text.contains("masq_mempool"), "no pool reported, no families");
        let mut s = stats();
        s.mempool = Some(crate::protocol::MempoolStats { size: 8191, in_use: 1536 });
        let text = render(&s.into(), &BuildInfo { version: "0".into() });
        assert_eq!(line_of(&text, "# TYPE masq_mempool_buffers "), "# TYPE masq_mempool_buffers gauge");
        assert_eq!(line_of(&text, "masq_mempool_buffers "), "masq_mempool_buffers 8191");
        assert_eq!(line_of(&text, "# TYPE masq_mempool_buffers_in_use "), "# TYPE masq_mempool_buffers_in_use gauge");
        assert_eq!(line_of(&text, "masq_mempool_buffers_in_use "), "masq_mempool_buffers_in_use 1536");
    }

    #[test]
    fn latency_is_a_histogram_in_seconds_with_cumulative_buckets() {
        let text = render(&stats().into(), &BuildInfo { version: "0".into() });
        assert_eq!(
            line_of(&text, "# TYPE masq_packet_latency_seconds"),
            "# TYPE masq_packet_latency_seconds histogram"
        );
        let buckets: Vec<&str> = text.lines().filter(|l| l.starts_with("masq_packet_latency_seconds_bucket")).collect();
        assert_eq!(
            buckets,
            [
                r#"masq_packet_latency_seconds_bucket{le="5e-07"} 3"#,
                r#"masq_packet_latency_seconds_bucket{le="1e-06"} 7"#,
                r#"masq_packet_latency_seconds_bucket{le="2e-06"} 7"#,
                r#"masq_packet_latency_seconds_bucket{le="+Inf"} 8"#,
            ]
        );
        assert_eq!(line_of(&text, "masq_packet_latency_seconds_count"), "masq_packet_latency_seconds_count 8");
        let sum: f64 = line_of(&text, "masq_packet_latency_seconds_sum").rsplit(' ').next().unwrap().parse().unwrap();
        assert!((sum - 6.5e-6).abs() < 1e-12, "{sum}");
    }

    #[test]
    fn stage_runtimes_are_read_from_the_result_and_published_when_present() {
        let mut result = serde_json::to_value(stats()).unwrap();
        let snapshot = Snapshot::from_result(&result).unwrap();
        let text = render(&snapshot, &BuildInfo { version: "0".into() });
        assert!(!text.contains("masq_stage_"), "no stage families without stage figures");
        result["tsc_hz"] = serde_json::json!(2_000_000_000u64);
        result["workers"][0]["runtime"] = serde_json::json!([
            {"stage": "l2-input", "calls": 10, "packets": 300, "cycles": 6000},
            {"stage": "nat-lookup", "calls": 9, "packets": 250, "cycles": 20000, "max_cycles": 4000, "slow_calls": 1}
        ]);
        let snapshot = Snapshot::from_result(&result).unwrap();
        // `Stats` carries the stage figures itself too.
        let mut expected = stats();
        expected.tsc_hz = 2_000_000_000;
        expected.workers[0].runtime = vec![
            StageRuntime { stage: "l2-input".into(), calls: 10, packets: 300, cycles: 6000, ..Default::default() },
            StageRuntime {
                stage: "nat-lookup".into(),
                calls: 9,
                packets: 250,
                cycles: 20000,
                max_cycles: 4000,
                slow_calls: 1,
            },
        ];
        assert_eq!(snapshot.stats, expected, "the rest of the snapshot reads the same");
        let text = render(&snapshot, &BuildInfo { version: "0".into() });
        for line in [
            r#"masq_stage_calls_total{worker="0",stage="l2-input"} 10"#,
            r#"masq_stage_packets_total{worker="0",stage="nat-lookup"} 250"#,
            r#"masq_stage_cycles_total{worker="0",stage="nat-lookup"} 20000"#,
            r#"masq_stage_cpu_seconds_total{worker="0",stage="l2-input"} 0.000003"#,
            r#"masq_stage_max_cycles{worker="0",stage="nat-lookup"} 4000"#,
            r#"masq_stage_slow_calls_total{worker="0",stage="nat-lookup"} 1"#,
            r#"masq_stage_slow_calls_total{worker="0",stage="l2-input"} 0"#,
            "masq_tsc_hertz 2000000000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn an_empty_snapshot_still_encodes() {
        let text = render(&Stats::default().into(), &BuildInfo { version: "0".into() });
        assert!(text.contains("# TYPE masq_dropped_packets_total counter"));
        assert!(text.contains("masq_packet_latency_seconds_count 0"));
    }
}
