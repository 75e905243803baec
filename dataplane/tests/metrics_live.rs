//! The Prometheus exporter on a live masqd, as an operator meets it: `[metrics] listen`
//! in the config, `curl http://.../metrics` while real programs talk through the NAT
//! (ping, UDP, TCP between network namespaces), a second scrape after more traffic shows
//! the counters moved, and both scrapes pass `promtool check metrics` (Debian's
//! `prometheus` package). Plus what goes wrong: a taken or malformed listen address stops
//! masqd before EAL with an error naming `metrics.listen`.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::MutexGuard;
use std::time::Duration;

use common::*;

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
";

const HOST: &str = "100.64.0.2";
const SERVER: &str = "203.0.113.254";
const STEP: Duration = Duration::from_secs(8);

fn peer() -> String {
    workspace_root().join("dataplane/tests/tools/peer.py").display().to_string()
}

/// The metrics URL masqd printed at start (`masqd: metrics on http://ADDR/metrics`).
fn metrics_url(log: &str) -> String {
    log.lines()
        .find_map(|l| l.strip_prefix("masqd: metrics on "))
        .unwrap_or_else(|| panic!("masqd did not say where its metrics are:\n{log}"))
        .trim()
        .to_string()
}

/// `curl` the exporter, as an operator would; the body.
fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", url])
        .output()
        .expect("curl (scripts/setup.sh installs it)");
    assert!(out.status.success(), "curl {url}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("UTF-8 exposition")
}

/// `promtool check metrics` on `body`: no error, no lint warning. Without promtool: SKIP
/// (a failure under CI).
fn promtool_accepts(body: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        skip("promtool not installed (scripts/setup.sh installs Debian's prometheus)");
        return;
    };
    child.stdin.take().expect("stdin").write_all(body.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "promtool check metrics:\n{said}\n---\n{body}");
}

/// Every sample: `name{labels}` -> value.
fn samples(body: &str) -> BTreeMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (key, value) = l.rsplit_once(' ').unwrap_or_else(|| panic!("not a sample: {l}"));
            (key.to_string(), value.parse().unwrap_or_else(|_| panic!("not a number: {l}")))
        })
        .collect()
}

fn value(s: &BTreeMap<String, f64>, key: &str) -> f64 {
    *s.get(key).unwrap_or_else(|| panic!("no sample {key} in {:#?}", s.keys().collect::<Vec<_>>()))
}

struct Live {
    topo: LanWan,
    masqd: Option<Masqd>,
    _serial: MutexGuard<'static, ()>,
}

impl Live {
    fn start() -> Option<Live> {
        if !require_root_and_tools() {
            return None;
        }
        let serial = af_packet_serial();
        let topo = LanWan::new();
        let cfg = topo.masqd_config().rules(RULES).extra_toml("[metrics]\nlisten = \"127.0.0.1:0\"");
        let mut masqd = Masqd::start(&cfg);
        masqd.expect_ready(Duration::from_secs(20));
        Some(Live { topo, masqd: Some(masqd), _serial: serial })
    }

    fn log(&self) -> String {
        self.masqd.as_ref().map(Masqd::log).unwrap_or_default()
    }

    fn lan(&self, args: &[&str]) -> (i32, String) {
        let p = peer();
        let mut argv = vec!["python3", p.as_str()];
        argv.extend_from_slice(args);
        let out = self.topo.lan(STEP, &argv);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

#[test]
fn scrapes_of_a_live_masqd_move_with_traffic_and_pass_promtool() {
    let Some(mut t) = Live::start() else { return };
    let url = metrics_url(&t.log());
    let srv = t.topo.srv_ns.clone();
    let p = peer();
    t.topo.net.spawn(&srv, Duration::from_secs(60), &["python3", &p, "udp-echo", "0.0.0.0", "7"], None);
    t.topo.net.spawn(&srv, Duration::from_secs(60), &["python3", &p, "tcp-echo-peer", "0.0.0.0", "80"], None);
    std::thread::sleep(Duration::from_millis(400));

    // First traffic: a ping and one UDP flow.
    assert!(t.topo.ping_from_lan(SERVER, 2), "ping through masqd:\n{}", t.log());
    let (rc, seen) = t.lan(&["udp-ask", HOST, "40000", SERVER, "7"]);
    assert_eq!((rc, seen.as_str()), (0, "203.0.113.1:40000"), "UDP through masqd:\n{}", t.log());
    let first_body = curl(&url);
    promtool_accepts(&first_body);
    let first = samples(&first_body);

    // More: another UDP flow, a TCP connection, more pings.
    let (rc, _) = t.lan(&["udp-ask", HOST, "40001", SERVER, "7"]);
    assert_eq!(rc, 0, "second UDP flow:\n{}", t.log());
    let (rc, seen) = t.lan(&["tcp-ask", SERVER, "80"]);
    assert_eq!(rc, 0, "TCP through masqd ({seen}):\n{}", t.log());
    assert!(seen.starts_with("203.0.113.1:"), "the server saw {seen}");
    assert!(t.topo.ping_from_lan(SERVER, 3));
    let second_body = curl(&url);
    promtool_accepts(&second_body);
    let second = samples(&second_body);
    let grew = |key: &str| {
        let (a, b) = (value(&first, key), value(&second, key));
        assert!(b > a, "{key} did not grow between scrapes: {a} -> {b}");
    };

    for port in ["lan", "wan"] {
        grew(&format!("masq_port_rx_packets_total{{port=\"{port}\"}}"));
        grew(&format!("masq_port_tx_packets_total{{port=\"{port}\"}}"));
        grew(&format!("masq_port_rx_bytes_total{{port=\"{port}\"}}"));
        assert_eq!(value(&second, &format!("masq_port_link_up{{port=\"{port}\"}}")), 1.0, "veth carrier is up");
    }
    grew("masq_worker_rx_packets_total{worker=\"0\"}");
    grew("masq_worker_tx_packets_total{worker=\"0\"}");
    grew("masq_worker_polls_total{worker=\"0\"}");
    grew("masq_sessions_created_total{protocol=\"udp\"}");
    grew("masq_sessions_created_total{protocol=\"icmp\"}");
    assert_eq!(value(&first, "masq_sessions_created_total{protocol=\"tcp\"}"), 0.0);
    assert_eq!(value(&second, "masq_sessions_created_total{protocol=\"tcp\"}"), 1.0, "one TCP connection");
    assert!(value(&second, "masq_sessions{protocol=\"udp\"}") >= 2.0, "the UDP sessions are still live");
    assert!(value(&second, "masq_nat_ports_in_use{address=\"203.0.113.1\",protocol=\"udp\"}") >= 2.0);
    assert!(value(&second, "masq_nat_ports_capacity{address=\"203.0.113.1\"}") > 60000.0);
    grew("masq_packet_latency_seconds_count");
    grew("masq_packet_latency_seconds_sum");
    assert_eq!(
        value(&second, "masq_packet_latency_seconds_bucket{le=\"+Inf\"}"),
        value(&second, "masq_packet_latency_seconds_count")
    );
    // Every drop reason is there, by name, zero or not.
    assert!(second.contains_key("masq_dropped_packets_total{reason=\"no_route\"}"));
    assert_eq!(value(&second, "masq_build_info{version=\"0.1.0\"}"), 1.0);

    // Per-stage runtime counters: whatever per-worker list of stage records stats.get
    // carries (the pipeline's `show runtime`), the exporter publishes every entry.
    let result = control::Client::connect(t.masqd.as_ref().expect("running").socket())
        .and_then(|mut c| c.call(&control::Command::StatsGet))
        .unwrap_or_else(|e| panic!("stats.get: {e}"));
    let third = samples(&curl(&url));
    for w in result["workers"].as_array().expect("workers") {
        let lists = w.as_object().expect("a worker object").values().filter_map(|v| v.as_array());
        for record in lists.flatten().filter(|r| r.get("stage").is_some()) {
            let key = format!(
                "masq_stage_packets_total{{worker=\"{}\",stage=\"{}\"}}",
                w["worker"],
                record["stage"].as_str().expect("a stage name")
            );
            assert!(third.contains_key(&key), "stats.get has {record} but the exporter has no {key}");
        }
    }
    // The packet-buffer pool: stats.get's `mempool` record, every field as a gauge.
    let pool = result["mempool"].as_object().unwrap_or_else(|| panic!("stats.get has no mempool: {result}"));
    for (field, metric) in [("size", "masq_mempool_buffers"), ("in_use", "masq_mempool_buffers_in_use")] {
        assert!(pool.contains_key(field), "{pool:?}");
        assert!(third.contains_key(metric), "stats.get has mempool.{field} but the exporter has no {metric}");
    }
    assert_eq!(pool.len(), 2, "a mempool field the exporter does not know: {pool:?}");
    let size = pool["size"].as_f64().unwrap();
    assert_eq!(value(&third, "masq_mempool_buffers"), size);
    let in_use = value(&third, "masq_mempool_buffers_in_use");
    assert!(size > 0.0 && in_use <= size, "buffers in use {in_use} of {size}");

    // The exporter thread runs on the main lcore's CPU (core 0 here), never the worker's.
    let pid = t.masqd.as_ref().expect("running").pid();
    let cpus = thread_cpus(pid, "masq-metrics").unwrap_or_else(|| panic!("no masq-metrics thread in masqd {pid}"));
    assert_eq!(cpus, "0", "the metrics thread may run on CPUs {cpus}; the worker has core 1");

    // The exporter and stats.get are one door: the per-worker counters agree with the
    // shutdown report's (which comes after, so is at least as large).
    let rx = value(&second, "masq_worker_rx_packets_total{worker=\"0\"}");
    let stopped = t.masqd.take().expect("running").stop(Duration::from_secs(10));
    stopped.assert_clean();
    assert!(stopped.expect_counter("worker:0 rx_packets") as f64 >= rx, "{}", stopped.log);
    // And it stopped serving with masqd.
    let after = Command::new("curl").args(["-sS", "--max-time", "2", &url]).output().expect("curl");
    assert!(!after.status.success(), "the exporter is gone with masqd");
}

/// `Cpus_allowed_list` of the thread of process `pid` named `name`.
fn thread_cpus(pid: u32, name: &str) -> Option<String> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    tasks.flatten().find_map(|task| {
        let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
        if comm.trim() != name {
            return None;
        }
        let status = std::fs::read_to_string(task.path().join("status")).ok()?;
        status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).map(|v| v.trim().to_string())
    })
}

/// Config text for a masqd on `net_null` ports whose exporter listens on `listen`.
fn null_with_metrics(listen: &str) -> String {
    MasqdConfig::new()
        .inside("lan", "net_null0", "100.64.0.1/10")
        .outside("wan", "net_null1", "203.0.113.1/24", Some("203.0.113.254"))
        .extra_toml(&format!("[metrics]\nlisten = \"{listen}\""))
        .to_toml()
}

#[test]
fn a_taken_listen_address_stops_masqd_before_eal_naming_the_field() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port of our own");
    let addr = taken.local_addr().unwrap();
    let stopped = Masqd::run_to_exit(&null_with_metrics(&addr.to_string()), &[], Duration::from_secs(20));
    assert!(!stopped.status.success(), "{}", stopped.log);
    let expected = format!("masqd: error: metrics.listen: cannot listen on {addr}: ");
    assert!(stopped.log.lines().any(|l| l.starts_with(&expected)), "want `{expected}...` in:\n{}", stopped.log);
    assert!(!stopped.log.contains("EAL arguments"), "EAL never started:\n{}", stopped.log);
}

#[test]
fn a_malformed_listen_address_is_a_config_error() {
    let stopped = Masqd::run_to_exit(&null_with_metrics("localhost:9469"), &[], Duration::from_secs(20));
    assert_eq!(stopped.status.code(), Some(2), "{}", stopped.log);
    assert!(stopped.log.contains("metrics.listen: \"localhost:9469\" is not an address and port"), "{}", stopped.log);
}
