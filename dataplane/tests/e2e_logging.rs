//! NAT event logging end to end: a real masqd between network namespaces exports to a
//! real IPFIX collector (`nfcapd` from Debian's nfdump) and to a syslog listener, as an
//! operator would run it. Traffic from the LAN host creates sessions; one expires on
//! its UDP timer, one is flushed through the control socket; `nfdump -o json` must show
//! the NAT44 session create and delete of each with the right inside and external
//! address and port, and the syslog listener the same as RFC 5424 lines.
//!
//! Both run with one worker and with two (the subscribers then live on different
//! workers, so events come from both rings). The collector listens on 127.0.0.1 in the
//! root namespace, where masqd's logging thread runs; traffic never leaves the machine.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::MutexGuard;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
";

const HOST_A: &str = "100.64.0.2";
const HOST_B: &str = "100.64.0.3";
const EXTERNAL: &str = "203.0.113.1";
const SERVER: &str = "203.0.113.254";
const STEP: Duration = Duration::from_secs(8);

fn peer() -> String {
    workspace_root().join("dataplane/tests/tools/peer.py").display().to_string()
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
}

/// Root, the namespace tools, nfcapd and nfdump: else SKIP (a failure under CI).
fn collector_tools() -> bool {
    if !require_root_and_tools() {
        return false;
    }
    if !have("nfcapd") || !have("nfdump") {
        if std::env::var_os("CI").is_some() {
            panic!("nfcapd/nfdump missing: scripts/setup.sh installs nfdump");
        }
        skip("nfcapd/nfdump not installed (scripts/setup.sh installs nfdump)");
        return false;
    }
    true
}

/// A free UDP port on 127.0.0.1 (bound then released).
fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// `nfcapd` writing into a temp dir.
struct Nfcapd {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
}

impl Nfcapd {
    fn start() -> Nfcapd {
        let dir = TempDir::new("nfcapd");
        let port = free_udp_port();
        let log = std::fs::File::create(dir.join("nfcapd.log")).unwrap();
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        let child = Command::new("timeout")
            .args(["120", "nfcapd", "-b", "127.0.0.1", "-p", &port.to_string(), "-t", "60", "-l"])
            .arg(&data)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("nfcapd");
        let c = Nfcapd { child: Some(child), dir, port };
        assert!(
            wait_until(Duration::from_secs(10), || c.log().contains("Startup")),
            "nfcapd did not start:\n{}",
            c.log()
        );
        c
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nfcapd.log")).unwrap_or_default()
    }

    /// Stop it (SIGTERM: it writes its file out) and read every record as JSON.
    fn stop_and_dump(mut self) -> Vec<Value> {
        // Let it read what masqd sent last (its final flush at shutdown).
        std::thread::sleep(Duration::from_millis(300));
        let mut child = self.child.take().unwrap();
        // `timeout` forwards SIGTERM to nfcapd.
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "nfcapd did not stop:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = Command::new("nfdump").arg("-R").arg(self.dir.join("data")).args(["-o", "json"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "nfdump: {}\n{text}\nnfcapd:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        // An empty file dumps as nothing at all.
        if text.trim().is_empty() {
            return Vec::new();
        }
        match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(v)) => v,
            other => panic!("nfdump -o json gave {other:?}:\n{text}"),
        }
    }
}

impl Drop for Nfcapd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One JSON request on masqd's control socket.
fn control(socket: &std::path::Path, cmd: &str, args: Value) -> Value {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = serde_json::json!({"id": 1, "cmd": cmd, "args": args});
    writeln!(s, "{req}").unwrap();
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).unwrap();
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["ok"], true, "{cmd}: {line}");
    v["result"].clone()
}

/// A syslog receiver: collects datagrams until asked.
fn syslog_listener() -> (u16, std::thread::JoinHandle<Vec<String>>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + Duration::from_secs(120);
        while !s2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                lines.push(String::from_utf8_lossy(&buf[..n]).to_string());
            }
        }
        lines
    });
    (port, h, stop)
}

struct Run {
    topo: LanWan,
    masqd: Option<Masqd>,
    _serial: MutexGuard<'static, ()>,
}

impl Run {
    /// masqd with `extra_toml` (its `[logging]` section among it) on `cores`, between a
    /// LAN namespace holding HOST_A and HOST_B and a server answering UDP on port 7.
    fn start(cores: &[u32], extra_toml: &str) -> Run {
        let serial = af_packet_serial();
        let topo = LanWan::new();
        topo.net.add_addr(&topo.lan_ns, "eth0", &format!("{HOST_B}/10"));
        let cfg = topo.masqd_config().rules(RULES).cores(cores).extra_toml(extra_toml);
        let mut masqd = Masqd::start(&cfg);
        masqd.expect_ready(Duration::from_secs(20));
        let mut run = Run { topo, masqd: Some(masqd), _serial: serial };
        let srv = run.topo.srv_ns.clone();
        let p = peer();
        run.topo.net.spawn(&srv, Duration::from_secs(60), &["python3", &p, "udp-echo", "0.0.0.0", "7"], None);
        run.topo.net.wait_listening(&srv, "udp", "7");
        run
    }

    fn ask(&self, src: &str, sport: &str) -> String {
        let p = peer();
        let out = self.topo.lan(STEP, &["python3", &p, "udp-ask", src, sport, SERVER, "7"]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

fn str_of<'a>(r: &'a Value, k: &str) -> &'a str {
    r[k].as_str().unwrap_or_default()
}

/// `nat_event` records for (inside address, inside port), as (event id, xlt ip, xlt port).
fn nat_records(records: &[Value], inside: &str, port: u16) -> Vec<(String, String, String)> {
    records
        .iter()
        .filter(|r| str_of(r, "src4_addr") == inside && r["src_port"].as_u64() == Some(u64::from(port)))
        .map(|r| {
            (
                str_of(r, "nat_event_id").to_string(),
                str_of(r, "src4_xlt_ip").to_string(),
                str_of(r, "src_xlt_port").to_string(),
            )
        })
        .collect()
}

fn sessions_are_logged_to_nfcapd_and_syslog(cores: &[u32]) {
    if !collector_tools() {
        return;
    }
    let collector = Nfcapd::start();
    let (syslog_port, syslog, syslog_stop) = syslog_listener();
    let mut run = Run::start(
        cores,
        &format!(
            "[timeouts]\nudp = 2\n\n[logging]\nipfix = [\"127.0.0.1:{}\"]\nsyslog = \"127.0.0.1:{syslog_port}\"\n\
         observation_domain = 77\nsyslog_hostname = \"cgn-test\"\n",
            collector.port
        ),
    );
    let masqd = run.masqd.as_ref().unwrap();

    // A: expires on its 2 s UDP timer. B: flushed through the control socket at once.
    let seen_a = run.ask(HOST_A, "30000");
    let seen_b = run.ask(HOST_B, "31000");
    assert!(seen_a.starts_with(EXTERNAL) && seen_b.starts_with(EXTERNAL), "{seen_a} / {seen_b}\n{}", masqd.log());
    let flushed = control(masqd.socket(), "sessions.flush", serde_json::json!({"inside_addr": HOST_B}));
    assert_eq!(flushed["flushed"], 1, "{flushed}");
    // A's expiry (2 s, checked every millisecond) and the exporter's flush (≤ 1 s).
    std::thread::sleep(Duration::from_millis(3500));
    let stopped = run.masqd.take().unwrap().stop(Duration::from_secs(10));
    stopped.assert_clean();
    let records = collector.stop_and_dump();
    syslog_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines = syslog.join().unwrap();

    let workers = cores.len();
    let created: u64 = (0..workers).map(|w| stopped.expect_counter(&format!("worker:{w} log_events"))).sum();
    let dropped: u64 = (0..workers).map(|w| stopped.expect_counter(&format!("worker:{w} log_events_dropped"))).sum();
    assert_eq!((created, dropped), (4, 0), "two creates, two deletes, none lost:\n{}", stopped.log);
    assert_eq!(stopped.expect_counter("logging events"), 4, "{}", stopped.log);
    assert_eq!(stopped.expect_counter("logging send_errors"), 0);

    for (host, port, seen) in [(HOST_A, 30000u16, &seen_a), (HOST_B, 31000, &seen_b)] {
        let (xip, xport) = seen.split_once(':').unwrap();
        let recs = nat_records(&records, host, port);
        let expect = vec![
            ("4".to_string(), xip.to_string(), xport.to_string()),
            ("5".to_string(), xip.to_string(), xport.to_string()),
        ];
        assert_eq!(recs, expect, "{host}:{port} (server saw {seen}): create then delete, in\n{records:#?}");
        let create =
            records.iter().find(|r| str_of(r, "src4_addr") == host && str_of(r, "nat_event_id") == "4").unwrap();
        assert_eq!(str_of(create, "nat_event"), "NAT44 session create");
        assert_eq!(str_of(create, "dst4_addr"), SERVER);
        assert_eq!(create["proto"], 17);
        let delete =
            records.iter().find(|r| str_of(r, "src4_addr") == host && str_of(r, "nat_event_id") == "5").unwrap();
        assert_eq!(str_of(delete, "nat_event"), "NAT44 session delete");

        let mine: Vec<&String> =
            lines.iter().filter(|l| l.contains(&format!("ISADDR=\"{host}\" ISPORT=\"{port}\""))).collect();
        assert_eq!(mine.len(), 2, "{host}: SADD and SDEL in\n{lines:#?}");
        let sadd = mine.iter().find(|l| l.contains(" SADD ")).expect("SADD");
        assert!(sadd.contains(&format!("XSADDR=\"{xip}\" XSPORT=\"{xport}\"")), "{sadd}");
        assert!(sadd.starts_with("<134>1 ") && sadd.contains(" cgn-test masqd "), "{sadd}");
        assert!(mine.iter().any(|l| l.contains(" SDEL ")), "{mine:?}");
    }
    // Only those four translation events were exported.
    assert_eq!(records.iter().filter(|r| r.get("nat_event_id").is_some()).count(), 4, "{records:#?}");
}

#[test]
fn sessions_are_logged_to_nfcapd_and_syslog_one_worker() {
    sessions_are_logged_to_nfcapd_and_syslog(&[0]);
}

#[test]
fn sessions_are_logged_to_nfcapd_and_syslog_two_workers() {
    sessions_are_logged_to_nfcapd_and_syslog(&[0, 1]);
}

/// Deterministic NAT (RFC 7422) for one subscriber, dynamic NAT for the other: the
/// deterministic one's whole mapping is logged once at start and none of its sessions;
/// `nat.lookup` answers both ways for both.
fn deterministic_nat_is_logged_once_and_looked_up(cores: &[u32]) {
    if !collector_tools() {
        return;
    }
    const DET: &str = "203.0.113.2";
    let collector = Nfcapd::start();
    // HOST_B (100.64.0.3) is the only host of the table: the whole range 1024-65535.
    let mut run = Run::start(
        cores,
        &format!(
            "[[nat.deterministic]]\ninside = \"{HOST_B}/32\"\noutside = \"{DET}/32\"\n\n\
         [logging]\nipfix = [\"127.0.0.1:{}\"]\n",
            collector.port
        ),
    );
    let masqd = run.masqd.as_ref().unwrap();
    assert!(masqd.log().contains("deterministic NAT: 1 hosts"), "{}", masqd.log());

    let seen_a = run.ask(HOST_A, "30000");
    let seen_b = run.ask(HOST_B, "31000");
    assert!(seen_a.starts_with(&format!("{EXTERNAL}:")), "dynamic: {seen_a}\n{}", masqd.log());
    assert_eq!(seen_b, format!("{DET}:31000"), "deterministic, source port kept in its range\n{}", masqd.log());

    let socket = masqd.socket().to_path_buf();
    let r = control(&socket, "nat.lookup", serde_json::json!({"outside": seen_b, "protocol": "udp"}));
    let m = r["matches"].as_array().unwrap();
    assert_eq!(m.len(), 2, "{r}");
    assert_eq!((m[0]["source"].as_str(), m[0]["inside_addr"].as_str()), (Some("deterministic"), Some(HOST_B)));
    assert_eq!((m[0]["first_port"].as_u64(), m[0]["last_port"].as_u64()), (Some(1024), Some(65535)));
    assert_eq!((m[1]["source"].as_str(), m[1]["inside_port"].as_u64()), (Some("session"), Some(31000)));
    assert_eq!(m[1]["remote"].as_str(), Some(&*format!("{SERVER}:7")));
    let r = control(&socket, "nat.lookup", serde_json::json!({"inside": HOST_A}));
    let m = r["matches"].as_array().unwrap();
    assert_eq!(m.len(), 1, "{r}");
    let (xip, xport) = seen_a.split_once(':').unwrap();
    assert_eq!((m[0]["outside_addr"].as_str(), m[0]["first_port"].as_u64()), (Some(xip), xport.parse().ok()));
    let r = control(&socket, "nat.lookup", serde_json::json!({"outside": format!("{EXTERNAL}:1")}));
    assert_eq!(r["matches"], serde_json::json!([]), "nobody: {r}");

    std::thread::sleep(Duration::from_millis(1500));
    let stopped = run.masqd.take().unwrap().stop(Duration::from_secs(10));
    stopped.assert_clean();
    let records = collector.stop_and_dump();
    let block: Vec<&Value> = records.iter().filter(|r| str_of(r, "nat_event_id") == "16").collect();
    assert_eq!(block.len(), 1, "one record of the whole mapping: {records:#?}");
    assert_eq!((str_of(block[0], "src4_addr"), str_of(block[0], "src4_xlt_ip")), (HOST_B, DET));
    assert!(nat_records(&records, HOST_B, 31000).is_empty(), "no session records for it: {records:#?}");
    assert_eq!(nat_records(&records, HOST_A, 30000).len(), 1, "the dynamic one's create: {records:#?}");
}

#[test]
fn deterministic_nat_is_logged_once_and_looked_up_one_worker() {
    deterministic_nat_is_logged_once_and_looked_up(&[0]);
}

#[test]
fn deterministic_nat_is_logged_once_and_looked_up_two_workers() {
    deterministic_nat_is_logged_once_and_looked_up(&[0, 1]);
}

/// A second IPFIX collector: every datagram masqd sends it, until asked.
fn ipfix_listener() -> (u16, std::thread::JoinHandle<Vec<Vec<u8>>>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let port = sock.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let h = std::thread::spawn(move || {
        let mut msgs = Vec::new();
        let mut buf = [0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(120);
        while !s2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                msgs.push(buf[..n].to_vec());
            }
        }
        msgs
    });
    (port, h, stop)
}

/// masqctl (release build, or `MASQCTL`).
fn masqctl(socket: &std::path::Path, args: &[&str]) -> String {
    let path = match std::env::var_os("MASQCTL").filter(|p| !p.is_empty()) {
        Some(p) => std::path::PathBuf::from(p),
        None => target_dir().join("release").join("masqctl"),
    };
    assert!(path.is_file(), "masqctl not found at {}: cargo build --release -p control", path.display());
    let out =
        Command::new("timeout").arg("10").arg(&path).arg("--socket").arg(socket).args(args).output().expect("masqctl");
    assert!(out.status.success(), "masqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Port block allocation on (blocks of 64, released 2 s after their last session): a
/// subscriber's first session makes nfcapd see one port block allocation (natEvent 16)
/// with its inside address, the external address and a 64-port range holding the port
/// the server saw (nfdump 1.7 shows the event and both addresses but not the range: a
/// second collector decodes the same messages for portRangeStart/End/NumPorts), and no
/// session records; `masqctl lookup` finds the subscriber from a
/// port of the block while it is held; once the UDP timer (set to 2 s with
/// `timeouts.set`, applied by one more packet of each flow) has ended the sessions and
/// the hold has passed, one de-allocation (17) of the same block. Two subscribers (on two
/// workers when there are two), one with two sessions in one block. The sessions start
/// on the default timer, so slow peers cannot end them before they are looked up.
fn port_blocks_are_logged_and_looked_up(cores: &[u32]) {
    if !collector_tools() {
        return;
    }
    let collector = Nfcapd::start();
    let (syslog_port, syslog, syslog_stop) = syslog_listener();
    let (ipfix_port, ipfix, ipfix_stop) = ipfix_listener();
    let mut run = Run::start(
        cores,
        &format!(
            "[nat]\nport_block_size = 64\nport_blocks_per_subscriber = 4\nport_hold = 2\n\n\
         [logging]\nipfix = [\"127.0.0.1:{}\", \"127.0.0.1:{ipfix_port}\"]\nsyslog = \"127.0.0.1:{syslog_port}\"\n",
            collector.port
        ),
    );
    let masqd = run.masqd.as_ref().unwrap();
    assert!(masqd.log().contains("port blocks of 64 ports, at most 4 per subscriber"), "{}", masqd.log());

    let seen_a1 = run.ask(HOST_A, "30000");
    let seen_a2 = run.ask(HOST_A, "30001");
    let seen_b = run.ask(HOST_B, "31000");
    let port_of = |seen: &str| -> u16 {
        let (ip, port) = seen.split_once(':').unwrap_or_default();
        assert_eq!(ip, EXTERNAL, "{seen}\n{}", masqd.log());
        port.parse().unwrap()
    };
    let (a1, a2, b) = (port_of(&seen_a1), port_of(&seen_a2), port_of(&seen_b));

    // While the sessions live: the block holding the port names the subscriber.
    let socket = masqd.socket().to_path_buf();
    let r = control(&socket, "nat.lookup", serde_json::json!({"outside": seen_a2}));
    let block = &r["matches"][0];
    assert_eq!((block["source"].as_str(), block["inside_addr"].as_str()), (Some("block"), Some(HOST_A)), "{r}");
    let (lo, hi) = (block["first_port"].as_u64().unwrap() as u16, block["last_port"].as_u64().unwrap() as u16);
    assert_eq!(hi - lo, 63, "{r}");
    assert!((lo..=hi).contains(&a1) && (lo..=hi).contains(&a2), "both of A's sessions in one block: {a1} {a2} {r}");
    assert!(block["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{r}");
    assert_eq!(block["mappings"], 2, "{r}");
    // masqctl, from another port of the block (one nobody uses).
    let unused = (lo..=hi).find(|p| *p != a1 && *p != a2).unwrap();
    let text = masqctl(&socket, &["lookup", "--outside", &format!("{EXTERNAL}:{unused}")]);
    let line = text.lines().nth(1).unwrap_or_default();
    assert!(
        line.starts_with("block") && line.contains(HOST_A) && line.contains(&format!("{EXTERNAL}:{lo}-{hi}")),
        "{text}"
    );
    assert!(line.contains("ACTIVE"), "{text}");
    assert_eq!(text.lines().count(), 2, "the block only: no session on that port\n{text}");
    let text = masqctl(&socket, &["lookup", "--inside", HOST_B]);
    assert!(text.lines().nth(1).is_some_and(|l| l.starts_with("block")), "{text}");

    // UDP 2 s from each flow's next packet, then the 2 s hold: the blocks go (bounded
    // wait), then the exporter's flush.
    control(&socket, "timeouts.set", serde_json::json!({"udp": 2}));
    for (host, sport, seen) in [(HOST_A, "30000", &seen_a1), (HOST_A, "30001", &seen_a2), (HOST_B, "31000", &seen_b)] {
        assert_eq!(&run.ask(host, sport), seen, "the same mapping");
    }
    let held = || {
        [HOST_A, HOST_B].iter().any(|h| {
            let r = control(&socket, "nat.lookup", serde_json::json!({"inside": h}));
            r["matches"].as_array().is_some_and(|m| m.iter().any(|m| m["source"] == "block"))
        })
    };
    assert!(wait_until(Duration::from_secs(20), || !held()), "blocks still held\n{}", masqd.log());
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = run.masqd.take().unwrap().stop(Duration::from_secs(10));
    stopped.assert_clean();
    let records = collector.stop_and_dump();
    syslog_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let lines = syslog.join().unwrap();
    ipfix_stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut decoder = dataplane::logging::ipfix::decode::Collector::default();
    let decoded: Vec<_> = ipfix
        .join()
        .unwrap()
        .iter()
        .flat_map(|m| decoder.message(m).unwrap_or_else(|e| panic!("IPFIX message: {e}")).1)
        .collect();

    let sum =
        |name: &str| -> u64 { (0..cores.len()).map(|w| stopped.expect_counter(&format!("worker:{w} {name}"))).sum() };
    assert_eq!(
        (sum("nat_blocks_allocated"), sum("nat_blocks_released"), sum("nat_blocks")),
        (2, 2, 0),
        "{}",
        stopped.log
    );
    assert_eq!((sum("log_events"), sum("log_events_dropped")), (4, 0), "{}", stopped.log);
    assert_eq!(sum("nat_sessions_expired"), 3, "{}", stopped.log);

    let nat: Vec<&Value> = records.iter().filter(|r| r.get("nat_event_id").is_some()).collect();
    assert!(nat.iter().all(|r| ["16", "17"].contains(&str_of(r, "nat_event_id"))), "no session records: {nat:#?}");
    for (host, ports) in [(HOST_A, vec![a1, a2]), (HOST_B, vec![b])] {
        let mine: Vec<&&Value> = nat.iter().filter(|r| str_of(r, "src4_addr") == host).collect();
        let ids: Vec<&str> = mine.iter().map(|r| str_of(r, "nat_event_id")).collect();
        assert_eq!(ids, ["16", "17"], "{host}: allocation then de-allocation in\n{records:#?}");
        assert!(mine.iter().all(|r| str_of(r, "src4_xlt_ip") == EXTERNAL), "{mine:#?}");
        assert_eq!(
            (str_of(mine[0], "nat_event"), str_of(mine[1], "nat_event")),
            ("Port block allocation", "Port block de-allocation")
        );
        // The same records, decoded: template 258 with the block's range.
        let blocks: Vec<_> = decoded.iter().filter(|r| r.template == 258 && r.ipv4(8) == host.parse().ok()).collect();
        let events: Vec<u64> = blocks.iter().filter_map(|r| r.uint(230)).collect();
        assert_eq!(events, [16, 17], "{host}: {blocks:?}");
        let mut range = None;
        for r in &blocks {
            assert_eq!(r.ipv4(225), EXTERNAL.parse().ok());
            let (start, end) = (r.uint(361).unwrap() as u16, r.uint(362).unwrap() as u16);
            assert_eq!((end - start, r.uint(363), r.uint(364)), (63, Some(1), Some(64)), "{r:?}");
            assert!(ports.iter().all(|p| (start..=end).contains(p)), "{host}: {ports:?} in {start}-{end}");
            assert!(range.is_none_or(|x| x == (start, end)), "released the block it was given");
            range = Some((start, end));
        }
        if host == HOST_A {
            assert_eq!(range, Some((lo, hi)), "the block masqctl lookup showed");
        }

        let syslog: Vec<&String> = lines.iter().filter(|l| l.contains(&format!("ISADDR=\"{host}\""))).collect();
        assert_eq!(syslog.len(), 2, "{host}: PBADD and PBDEL in\n{lines:#?}");
        assert!(syslog[0].contains(" PBADD ") && syslog[1].contains(" PBDEL "), "{syslog:?}");
        let (start, end) = range.unwrap();
        let xs = format!("XSADDR=\"{EXTERNAL}\" XSPORT=\"{start}\" XEPORT=\"{end}\"");
        assert!(syslog.iter().all(|l| l.contains(&xs)), "{xs} in {syslog:?}");
    }
}

#[test]
fn port_blocks_are_logged_and_looked_up_one_worker() {
    port_blocks_are_logged_and_looked_up(&[0]);
}

#[test]
fn port_blocks_are_logged_and_looked_up_two_workers() {
    port_blocks_are_logged_and_looked_up(&[0, 1]);
}

/// Address-only sessions (GRE) with port blocks on and `events` at its default (blocks):
/// no block covers an address used without ports, so each GRE session is logged as a
/// NAT44 session create and delete (protocol 47, ports 0) beside the subscriber's UDP
/// block records, and no UDP session record appears.
fn address_only_sessions_are_logged_beside_port_blocks(cores: &[u32]) {
    if !collector_tools() {
        return;
    }
    let collector = Nfcapd::start();
    let mut run = Run::start(
        cores,
        &format!(
            "[nat]\nport_block_size = 64\nport_hold = 2\n\n[timeouts]\nudp = 2\nother = 2\n\n\
         [logging]\nipfix = [\"127.0.0.1:{}\"]\n",
            collector.port
        ),
    );
    let srv = run.topo.srv_ns.clone();
    let raw = workspace_root().join("dataplane/tests/tools/rawproto.py").display().to_string();
    run.topo.net.spawn(&srv, Duration::from_secs(60), &["python3", &raw, "echo", "47", SERVER, "50"], None);
    let masqd = run.masqd.as_ref().unwrap();

    // GRE: asked again until the raw echo socket (not visible to `ss -l`) answers; each
    // try is the same session.
    let mut answer = String::new();
    let answered = wait_until(Duration::from_secs(20), || {
        let o = run.topo.lan(STEP, &["python3", &raw, "ask", "47", HOST_A, SERVER, "gre-logged", "1"]);
        answer = String::from_utf8_lossy(&o.stdout).trim().to_string();
        o.status.success()
    });
    assert!(answered, "no GRE answer\n{}", masqd.log());
    assert_eq!(answer, format!("seen {EXTERNAL} gre-logged"), "{}", masqd.log());
    let seen_udp = run.ask(HOST_A, "30000");
    assert!(seen_udp.starts_with(&format!("{EXTERNAL}:")), "{seen_udp}\n{}", masqd.log());
    // Both end on their 2 s timers, the block a 2 s hold later (bounded wait).
    let socket = masqd.socket().to_path_buf();
    let held = || {
        let r = control(&socket, "nat.lookup", serde_json::json!({"inside": HOST_A}));
        r["matches"].as_array().is_some_and(|m| !m.is_empty())
    };
    assert!(wait_until(Duration::from_secs(30), || !held()), "still translated\n{}", masqd.log());
    // The exporter's flush (at most a second).
    std::thread::sleep(Duration::from_millis(1500));
    let stopped = run.masqd.take().unwrap().stop(Duration::from_secs(10));
    stopped.assert_clean();
    let records = collector.stop_and_dump();

    let nat: Vec<&Value> = records.iter().filter(|r| r.get("nat_event_id").is_some()).collect();
    let gre: Vec<(&str, &str, &str, &str)> = nat
        .iter()
        .filter(|r| r["proto"] == 47)
        .map(|r| (str_of(r, "nat_event_id"), str_of(r, "src4_addr"), str_of(r, "src4_xlt_ip"), str_of(r, "dst4_addr")))
        .collect();
    assert_eq!(
        gre,
        [("4", HOST_A, EXTERNAL, SERVER), ("5", HOST_A, EXTERNAL, SERVER)],
        "GRE's create and delete in\n{records:#?}"
    );
    // (nfdump prints some ports as numbers, some as strings; absent is no port either.)
    let port = |p: &Value| p.as_u64().or_else(|| p.as_str().and_then(|s| s.parse().ok())).unwrap_or(0);
    let ports = |r: &&&Value| port(&r["src_port"]) + port(&r["src_xlt_port"]);
    assert!(nat.iter().filter(|r| r["proto"] == 47).all(|r| ports(&r) == 0), "no ports: {records:#?}");
    let others: Vec<&str> = nat.iter().filter(|r| r["proto"] != 47).map(|r| str_of(r, "nat_event_id")).collect();
    assert_eq!(others, ["16", "17"], "UDP: its block only, no session record, in\n{records:#?}");
    let sum =
        |name: &str| -> u64 { (0..cores.len()).map(|w| stopped.expect_counter(&format!("worker:{w} {name}"))).sum() };
    assert_eq!((sum("log_events"), sum("log_events_dropped")), (4, 0), "{}", stopped.log);
}

#[test]
fn address_only_sessions_are_logged_beside_port_blocks_one_worker() {
    address_only_sessions_are_logged_beside_port_blocks(&[0]);
}

#[test]
fn address_only_sessions_are_logged_beside_port_blocks_two_workers() {
    address_only_sessions_are_logged_beside_port_blocks(&[0, 1]);
}
