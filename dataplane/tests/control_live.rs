//! The control plane against a running masqd: every command over the real socket, rules
//! edited live, save/restore, timeouts, statistics while traffic flows, hostile requests
//! while it keeps forwarding, masqctl end to end, and the socket's life (refused when a
//! live masqd holds it, removed on exit), and sessions made by real traffic through the
//! NAT, listed, counted and flushed. masqd runs on `net_null` / `net_pcap` vdevs, each
//! with its own socket in its temp dir, so the tests may run in parallel.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};
use std::time::Duration;

use common::*;
use control::protocol::{
    Command, ErrorCode, RuleListing, RuleSelector, SavedRules, SessionCount, SessionFilter, SessionPage, Stats,
    Timeouts, TimeoutsUpdate, VersionInfo,
};
use control::{Client, ClientError};
use serde_json::{json, Value};

const LAN_MAC: &str = "02:00:00:00:01:01";
const WAN_MAC: &str = "02:00:00:00:02:01";
const HOST_MAC: &str = "02:00:00:00:01:02";
const GW_MAC: &str = "02:00:00:00:02:fe";
const READY: Duration = Duration::from_secs(20);
const STOP: Duration = Duration::from_secs(10);

/// The masqctl binary: `$MASQCTL`, else `<target>/release/masqctl` (built with masqd by
/// `cargo build --release --workspace`).
fn masqctl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("MASQCTL").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let p = target_dir().join("release").join("masqctl");
    assert!(
        p.is_file(),
        "masqctl not found at {}: build it with `cargo build --release -p control` (or set MASQCTL)",
        p.display()
    );
    p
}

/// A running masqd and its control socket (in its temp dir: see `Masqd::start_text`).
struct Live {
    masqd: Masqd,
    socket: PathBuf,
}

impl Live {
    fn start(cfg: MasqdConfig) -> Live {
        let mut masqd = Masqd::start(&cfg);
        masqd.expect_ready(READY);
        let socket = masqd.socket().to_path_buf();
        assert!(socket.starts_with(masqd.dir()), "a socket of its own: {}", socket.display());
        Live { masqd, socket }
    }

    /// Two `net_null` ports: an endless stream of zeroed frames, all dropped.
    fn on_null() -> Live {
        Live::start(null_config())
    }

    fn client(&self) -> Client {
        Client::connect(&self.socket).unwrap_or_else(|e| panic!("{e}\n{}", self.masqd.log()))
    }

    fn call(&self, command: &Command) -> Value {
        self.client().call(command).unwrap_or_else(|e| panic!("{}: {e}\n{}", command.name(), self.masqd.log()))
    }

    fn call_as<T: serde::de::DeserializeOwned>(&self, command: &Command) -> T {
        serde_json::from_value(self.call(command)).unwrap_or_else(|e| panic!("{}: {e}", command.name()))
    }

    fn masqctl(&self, args: &[&str]) -> Output {
        let mut all = vec!["--socket", self.socket.to_str().expect("UTF-8 path")];
        all.extend_from_slice(args);
        masqctl(&all)
    }

    fn stop(self) -> Stopped {
        let socket = self.socket.clone();
        let stopped = self.masqd.stop(STOP);
        assert!(!socket.exists(), "the socket is removed on exit");
        stopped
    }
}

fn null_config() -> MasqdConfig {
    MasqdConfig::new().inside("lan", "net_null0", "100.64.0.1/10").outside(
        "wan",
        "net_null1",
        "203.0.113.1/24",
        Some("203.0.113.254"),
    )
}

fn masqctl(args: &[&str]) -> Output {
    let mut child = Process::new(masqctl_path());
    child.args(args).stdin(std::process::Stdio::null());
    let out = child.output().unwrap_or_else(|e| panic!("cannot run masqctl: {e}"));
    out
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn spec(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

fn server_error(r: Result<Value, ClientError>) -> control::ControlError {
    match r {
        Err(ClientError::Server(e)) => e,
        other => panic!("expected an error from masqd, got {other:?}"),
    }
}

/// One raw exchange on a fresh connection: send `bytes` (nothing added), optionally
/// close the write half, and read everything masqd answers until it closes or goes
/// quiet.
fn raw_exchange(socket: &Path, bytes: &[u8], close_write: bool) -> Vec<Value> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(bytes).expect("write");
    if close_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let mut answers = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        if !close_write && out.ends_with(b"\n") {
            break;
        }
    }
    for line in String::from_utf8_lossy(&out).lines() {
        answers.push(serde_json::from_str(line).unwrap_or_else(|e| panic!("bad response line {line:?}: {e}")));
    }
    answers
}

fn error_code(answer: &Value) -> &str {
    assert_eq!(answer["ok"], false, "{answer}");
    answer["error"]["code"].as_str().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------

#[test]
fn every_command_answers_on_a_live_masqd() {
    let live = Live::on_null();
    let commands = vec![
        Command::Version,
        Command::ConfigGet,
        Command::RulesAppend { table: "nat".into(), chain: "POSTROUTING".into(), spec: spec("-o wan -j MASQUERADE") },
        Command::RulesInsert {
            table: "nat".into(),
            chain: "PREROUTING".into(),
            position: 1,
            spec: spec("-i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22"),
        },
        Command::RulesList { table: "nat".into(), chain: None },
        Command::RulesPolicy { table: "filter".into(), chain: "FORWARD".into(), policy: "ACCEPT".into() },
        Command::RulesSave { table: None },
        Command::RulesRestore { text: "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n".into(), noflush: true },
        Command::RulesDelete { table: "nat".into(), chain: "PREROUTING".into(), rule: RuleSelector::Number(1) },
        Command::RulesFlush { table: "nat".into(), chain: None },
        Command::SessionsList { filter: SessionFilter::default(), cursor: None, limit: 100 },
        Command::SessionsCount { filter: SessionFilter::default(), cursor: None },
        Command::SessionsFlush { filter: SessionFilter::default(), cursor: None },
        Command::ExpectationsList,
        Command::StatsGet,
        Command::TimeoutsGet,
        Command::TimeoutsSet(TimeoutsUpdate { icmp: Some(30), ..Default::default() }),
        Command::NatLookup {
            query: control::protocol::LookupQuery::Outside { addr: "203.0.113.1".parse().unwrap(), port: Some(40001) },
            protocol: None,
        },
    ];
    let mut client = live.client();
    let mut names = std::collections::BTreeSet::new();
    for command in &commands {
        names.insert(command.name());
        client.call(command).unwrap_or_else(|e| panic!("{}: {e}\n{}", command.name(), live.masqd.log()));
    }
    assert_eq!(names.len(), Command::NAMES.len(), "every command of the protocol was asked");

    let v: VersionInfo = live.call_as(&Command::Version);
    assert_eq!((v.daemon.as_str(), v.protocol), ("masqd", control::protocol::PROTOCOL_VERSION));
    let config = live.call(&Command::ConfigGet);
    assert_eq!(config["ports"][0]["name"], "lan");
    assert_eq!(config["ports"][1]["role"], "outside");
    assert_eq!(config["control"]["socket"], live.socket.display().to_string());
    assert_eq!(config["workers"]["cores"], json!([1]));
    assert_eq!(config["timeouts"]["icmp"], 30);
    assert_eq!(config["rules_file"], Value::Null);
    // No translated traffic: no sessions, a short walk, and no error.
    let page: SessionPage =
        live.call_as(&Command::SessionsList { filter: SessionFilter::default(), cursor: None, limit: 10 });
    assert_eq!(page, SessionPage { sessions: vec![], next_cursor: None });
    live.stop().assert_clean();
}

#[test]
fn rules_added_live_are_listed_saved_and_restored_byte_for_byte() {
    let live = Live::on_null();
    let append = |chain: &str, s: &str| {
        live.call(&Command::RulesAppend { table: "nat".into(), chain: chain.into(), spec: spec(s) })
    };
    assert_eq!(append("POSTROUTING", "-s 100.64.0.0/10 -o wan -j MASQUERADE")["number"], 1);
    assert_eq!(append("PREROUTING", "-i wan -p udp --dport 5353 -j DNAT --to-destination 100.64.0.9:53")["number"], 1);
    live.call(&Command::RulesPolicy { table: "filter".into(), chain: "FORWARD".into(), policy: "DROP".into() });
    live.call(&Command::RulesAppend {
        table: "filter".into(),
        chain: "FORWARD".into(),
        spec: spec("-i lan -j ACCEPT"),
    });

    let listing: RuleListing = live.call_as(&Command::RulesList { table: "nat".into(), chain: None });
    let post = &listing.chains[1];
    assert_eq!(post.chain, "POSTROUTING");
    assert_eq!(post.rules[0].spec, spec("-s 100.64.0.0/10 -o wan -j MASQUERADE"));
    assert_eq!(
        (post.rules[0].target.as_str(), post.rules[0].out_iface.as_str(), post.rules[0].source.as_str()),
        ("MASQUERADE", "wan", "100.64.0.0/10")
    );
    assert_eq!(listing.chains[0].rules[0].options, "udp dpt:5353 to:100.64.0.9:53");

    let saved: SavedRules = live.call_as(&Command::RulesSave { table: None });
    assert!(saved.text.contains("-A POSTROUTING -s 100.64.0.0/10 -o wan -j MASQUERADE\n"), "{}", saved.text);
    assert!(saved.text.contains(":FORWARD DROP [0:0]\n-A FORWARD -i lan -j ACCEPT\n"), "{}", saved.text);

    // Flush everything, restore the saved text: the same bytes come back.
    live.call(&Command::RulesFlush { table: "nat".into(), chain: None });
    live.call(&Command::RulesRestore { text: "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n".into(), noflush: false });
    let empty: SavedRules = live.call_as(&Command::RulesSave { table: None });
    assert_ne!(empty.text, saved.text);
    let summary = live.call(&Command::RulesRestore { text: saved.text.clone(), noflush: false });
    assert_eq!(summary, json!({"tables": ["nat", "filter"], "rules": 3}));
    let again: SavedRules = live.call_as(&Command::RulesSave { table: None });
    assert_eq!(again.text, saved.text, "save -> restore -> save is byte-identical");

    // A restore with an error anywhere changes nothing.
    let bad =
        "*nat\n-A POSTROUTING -o wan -j MASQUERADE\n-A POSTROUTING -o nowhere -j MASQUERADE\nCOMMIT\n".to_string();
    let e = server_error(live.client().call(&Command::RulesRestore { text: bad, noflush: true }));
    assert_eq!(e.code, ErrorCode::Conflict);
    assert!(e.message.contains("line 3") && e.message.contains("nowhere"), "{e}");
    let after: SavedRules = live.call_as(&Command::RulesSave { table: None });
    assert_eq!(after.text, saved.text, "the failed restore changed nothing");

    // A rule naming an unknown port is refused, naming the token.
    let e = server_error(live.client().call(&Command::RulesAppend {
        table: "nat".into(),
        chain: "POSTROUTING".into(),
        spec: spec("-o eth9 -j MASQUERADE"),
    }));
    assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("spec[1]")));
    assert!(e.message.contains("eth9"), "{e}");
    live.stop().assert_clean();
}

#[test]
fn timeouts_set_then_get() {
    let live = Live::on_null();
    let before: Timeouts = live.call_as(&Command::TimeoutsGet);
    assert_eq!(
        before,
        Timeouts { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60, other: 600 },
        "the configuration's defaults"
    );
    let set: Timeouts = live.call_as(&Command::TimeoutsSet(TimeoutsUpdate {
        tcp: Some(7200),
        tcpfin: Some(10),
        udp: Some(160),
        icmp: None,
        other: None,
    }));
    assert_eq!(set, Timeouts { tcp: 7200, tcpfin: 10, udp: 160, icmp: 60, other: 600 });
    assert_eq!(live.call_as::<Timeouts>(&Command::TimeoutsGet), set);
    let e = server_error(live.client().request("timeouts.set", json!({"udp": 0})));
    assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("udp")));
    live.stop().assert_clean();
}

/// A lan host's UDP datagram to the Internet, routed out of wan.
fn host_udp(sport: u16) -> Vec<u8> {
    udp_frame(mac(HOST_MAC), mac(LAN_MAC), ip4("100.64.0.2"), ip4("198.51.100.7"), sport, 53, 64, &[7; 32])
}

/// lan replays a capture forever (`infinite_rx`); what masqd sends goes to /dev/null.
fn replaying(dir: &TempDir) -> MasqdConfig {
    let frames: Vec<Vec<u8>> = (0..8).map(|i| host_udp(40000 + i)).collect();
    let lan_in = dir.join("lan_in.pcap");
    let wan_in = dir.join("wan_in.pcap");
    write_pcap(&lan_in, &frames);
    write_pcap::<Vec<u8>>(&wan_in, &[]);
    MasqdConfig::new()
        .inside(
            "lan",
            &format!("net_pcap0,rx_pcap={},tx_pcap=/dev/null,infinite_rx=1", lan_in.display()),
            "100.64.0.1/10",
        )
        .with_mac(LAN_MAC)
        .outside("wan", &pcap_device(1, &wan_in, Path::new("/dev/null")), "203.0.113.1/24", Some("203.0.113.254"))
        .with_mac(WAN_MAC)
        .neighbor("wan", "203.0.113.254", GW_MAC)
        .neighbor("lan", "100.64.0.2", HOST_MAC)
}

fn wan_tx(stats: &Stats) -> u64 {
    stats.ports.iter().find(|p| p.name == "wan").map_or(0, |p| p.tx_packets)
}

#[test]
fn stats_rise_with_traffic_and_garbage_requests_do_not_stop_forwarding() {
    let dir = TempDir::new("ctl-traffic");
    let live = Live::start(replaying(&dir));
    let mut stats: Stats = live.call_as(&Command::StatsGet);
    assert!(
        wait_until(Duration::from_secs(10), || {
            stats = live.call_as(&Command::StatsGet);
            wan_tx(&stats) > 1000
        }),
        "no traffic forwarded: {stats:?}\n{}",
        live.masqd.log()
    );
    assert_eq!(stats.ports.len(), 2);
    let lan = &stats.ports[0];
    assert_eq!((lan.port, lan.name.as_str()), (0, "lan"));
    assert!(lan.rx_packets > 1000 && lan.rx_bytes > lan.rx_packets * 60, "{lan:?}");
    assert!(lan.pmd.contains_key("imissed"), "{lan:?}");
    assert_eq!(stats.workers.len(), 1);
    assert!(stats.workers[0].rx_packets > 1000 && stats.workers[0].tx_packets > 1000, "{:?}", stats.workers);
    assert_eq!(stats.workers[0].lcore, 1);
    assert!(stats.drops.contains_key("no_route") && stats.drops.contains_key("tx_full"), "every reason is listed");
    let l = stats.latency_us;
    assert!(l.samples > 1000, "{l:?}");
    assert!(0.0 < l.p50 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p99_9 && l.p99_9 <= l.max, "{l:?}");

    // Garbage of every kind, each answered with its error.
    let s = &live.socket;
    assert_eq!(error_code(&raw_exchange(s, b"{nope\n", false)[0]), "bad_json");
    assert_eq!(error_code(&raw_exchange(s, b"[1, 2]\n", false)[0]), "bad_request");
    assert_eq!(error_code(&raw_exchange(s, b"\xff\xfe\n", false)[0]), "bad_json");
    let answers = raw_exchange(s, br#"{"id": 5, "cmd": "vers"#, true);
    assert_eq!(error_code(&answers[0]), "truncated");
    let mut big = vec![b'x'; control::protocol::MAX_REQUEST_BYTES + 10];
    big.extend_from_slice(b"\n{\"id\": 2, \"cmd\": \"version\"}\n");
    let answers = raw_exchange(s, &big, true);
    assert_eq!(error_code(&answers[0]), "too_large");
    assert_eq!(answers[1]["ok"], true, "the connection goes on after an oversized line: {}", answers[1]);
    let typed = raw_exchange(s, b"{\"id\": 3, \"cmd\": \"timeouts.set\", \"args\": {\"udp\": \"120\"}}\n", false);
    assert_eq!((error_code(&typed[0]), &typed[0]["error"]["field"]), ("bad_args", &json!("udp")));
    assert_eq!(typed[0]["id"], 3);
    let spec_typed = raw_exchange(
        s,
        b"{\"cmd\": \"rules.append\", \"args\": {\"chain\": \"FORWARD\", \"spec\": [\"-j\", 5]}}\n",
        false,
    );
    assert_eq!(spec_typed[0]["error"]["field"], "spec[1]");
    assert_eq!(error_code(&raw_exchange(s, b"{\"cmd\": \"rules.explode\"}\n", false)[0]), "unknown_command");
    assert_eq!(error_code(&raw_exchange(s, b"{\"cmd\": \"stats.get\", \"args\": 7}\n", false)[0]), "bad_args");
    assert_eq!(
        error_code(&raw_exchange(s, b"{\"cmd\": \"sessions.list\", \"args\": {\"cursor\": \"x\"}}\n", false)[0]),
        "bad_args"
    );

    // ... and masqd still forwards.
    let before = wan_tx(&live.call_as(&Command::StatsGet));
    assert!(
        wait_until(Duration::from_secs(10), || wan_tx(&live.call_as(&Command::StatsGet)) > before + 1000),
        "forwarding stopped after the garbage\n{}",
        live.masqd.log()
    );
    let stopped = live.stop();
    stopped.assert_clean();
    assert!(stopped.expect_counter("worker:0 forwarded") > 2000);
}

#[test]
fn masqctl_end_to_end() {
    let live = Live::on_null();
    let ok = |out: &Output| {
        assert!(out.status.success(), "masqctl failed: {}\n{}", String::from_utf8_lossy(&out.stderr), text(out));
    };
    let out = live.masqctl(&["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]);
    ok(&out);
    assert_eq!(text(&out), "", "iptables is silent on success");

    let out = live.masqctl(&["-t", "nat", "-L", "-n", "-v", "--line-numbers"]);
    ok(&out);
    let listing = text(&out);
    assert!(listing.contains("Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)"), "{listing}");
    let rule = listing.lines().find(|l| l.contains("MASQUERADE")).unwrap_or_else(|| panic!("{listing}"));
    let cols: Vec<&str> = rule.split_whitespace().collect();
    assert_eq!(cols, ["1", "0", "0", "MASQUERADE", "all", "--", "*", "wan", "0.0.0.0/0", "0.0.0.0/0"], "{listing}");

    let out = live.masqctl(&["save"]);
    ok(&out);
    assert!(
        text(&out).contains("*nat\n") && text(&out).contains("-A POSTROUTING -o wan -j MASQUERADE\n"),
        "{}",
        text(&out)
    );
    let saved = text(&out);
    // masqctl restore from a file, then save again: the same bytes.
    let file = live.masqd.dir().join("saved.v4");
    std::fs::write(&file, &saved).unwrap();
    ok(&live.masqctl(&["-t", "nat", "-F"]));
    ok(&live.masqctl(&["restore", file.to_str().unwrap()]));
    assert_eq!(text(&live.masqctl(&["save"])), saved);

    let out = live.masqctl(&["-M", "-S", "7200", "10", "160"]);
    ok(&out);
    let out = live.masqctl(&["timeouts"]);
    ok(&out);
    assert_eq!(text(&out), "tcp 7200  tcpfin 10  udp 160  icmp 60  other 600  (seconds)\n");

    let out = live.masqctl(&["stats"]);
    ok(&out);
    let s = text(&out);
    for needle in
        ["Ports:", "lan", "wan", "Workers:", "Sessions: 0 active", "Drops by reason:", "eth_not_for_us", "Latency"]
    {
        assert!(s.contains(needle), "{needle:?} missing from\n{s}");
    }
    let out = live.masqctl(&["-M", "-L"]);
    ok(&out);
    assert!(text(&out).starts_with("IP masquerading entries\n"), "{}", text(&out));
    let out = live.masqctl(&["version"]);
    ok(&out);
    assert!(text(&out).contains("masqd "), "{}", text(&out));

    // masqd's refusals: exit 1 with its message.
    let out = live.masqctl(&["-t", "nat", "-A", "POSTROUTING", "-o", "eth7", "-j", "MASQUERADE"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("eth7"), "{}", String::from_utf8_lossy(&out.stderr));
    live.stop().assert_clean();
}

#[test]
fn masqctl_without_masqd_asks_whether_it_runs() {
    let dir = TempDir::new("ctl-none");
    let socket = dir.join("nobody.sock");
    let out = masqctl(&["--socket", socket.to_str().unwrap(), "stats"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is masqd running?") && err.contains("nobody.sock"), "{err}");
}

#[test]
fn a_second_masqd_on_the_same_socket_refuses_to_start() {
    let live = Live::on_null();
    // Same socket, different devices and EAL prefix: it must fail before EAL, on the socket.
    let cfg = MasqdConfig::new()
        .inside("lan", "net_null2", "100.64.0.1/10")
        .outside("wan", "net_null3", "203.0.113.1/24", None)
        .extra_toml(&format!("[control]\nsocket = {}", json!(live.socket.display().to_string())));
    let second = Masqd::run_to_exit(&cfg.to_toml(), &[], Duration::from_secs(10));
    assert!(!second.status.success(), "{}", second.log);
    assert!(second.log.contains("already running") && second.log.contains("masqd.sock"), "{}", second.log);
    assert!(!second.log.contains("EAL arguments"), "refused before EAL:\n{}", second.log);
    // The first one is unharmed and still answers.
    let _: VersionInfo = live.call_as(&Command::Version);
    live.stop().assert_clean();
}

#[test]
fn every_change_through_the_socket_is_logged_with_who_made_it() {
    let live = Live::on_null();
    let out = live.masqctl(&["-A", "FORWARD", "-s", "192.0.2.77", "-j", "DROP"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = live.masqctl(&["-A", "FORWARD", "-s", "192.0.2.78", "-i", "eth9", "-j", "DROP"]);
    assert_eq!(out.status.code(), Some(1));
    live.masqctl(&["-L", "FORWARD"]);
    live.masqctl(&["-M", "-S", "0", "0", "170"]);
    let log = live.masqd.log();
    let uid = effective_uid();
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).map(str::to_string);
    let added = line("192.0.2.77").unwrap_or_else(|| panic!("no audit line:\n{log}"));
    assert!(added.starts_with(&format!("masqd: control: uid {uid} gid ")), "{added}");
    assert!(added.contains(" pid ") && added.contains(": rules.append {") && added.ends_with(": ok"), "{added}");
    let refused = line("192.0.2.78").unwrap_or_else(|| panic!("no audit line for the refusal:\n{log}"));
    assert!(refused.contains("refused (bad_args)") && refused.contains("eth9"), "{refused}");
    assert!(line(": timeouts.set {\"udp\":170}: ok").is_some(), "{log}");
    assert!(line("rules.list").is_none(), "reads are not logged:\n{log}");
    live.stop().assert_clean();
}

/// The effective uid, from /proc (no libc in tests).
fn effective_uid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(2)?.parse().ok()))
        .unwrap_or(u32::MAX)
}

#[test]
fn timeouts_through_the_socket_have_the_config_files_bounds() {
    let live = Live::on_null();
    let out = live.masqctl(&["-M", "-S", "7200", "0", "604801"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`udp`: 604801 s is outside 1..=604800"), "{err}");
    let t: Timeouts = live.call_as(&Command::TimeoutsGet);
    assert_eq!((t.tcp, t.udp), (7440, 300), "nothing changed");
    let e = server_error(
        live.client().call(&Command::TimeoutsSet(TimeoutsUpdate { icmp: Some(u32::MAX), ..Default::default() })),
    );
    assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadArgs, Some("icmp")));
    assert!(live.masqctl(&["-M", "-S", "604800", "1", "1"]).status.success());
    live.stop().assert_clean();
}

#[test]
fn the_rule_count_is_bounded_by_max_rules() {
    let dir = TempDir::new("ctl-maxrules");
    let socket = dir.join("m.sock");
    let control = format!("[control]\nsocket = {}\nmax_rules = 2", json!(socket.display().to_string()));
    // A rules file over the limit stops masqd before EAL, naming the file.
    let three = "*filter\n-A FORWARD -s 10.0.0.1 -j DROP\n-A FORWARD -s 10.0.0.2 -j DROP\n\
                 -A FORWARD -s 10.0.0.3 -j DROP\nCOMMIT\n";
    let masqd = Masqd::start(&null_config().extra_toml(&control).rules(three));
    let stopped = masqd.wait_exit(Duration::from_secs(10));
    assert!(!stopped.status.success(), "{}", stopped.log);
    assert!(stopped.log.contains("rules.v4: 3 rules, more than [control] max_rules = 2"), "{}", stopped.log);
    assert!(!stopped.log.contains("EAL"), "{}", stopped.log);
    // Live: the third rule is refused, and nothing changes.
    let mut masqd = Masqd::start(&null_config().extra_toml(&control));
    masqd.expect_ready(READY);
    let live = Live { masqd, socket };
    for n in 1..=2 {
        let out = live.masqctl(&["-A", "FORWARD", "-s", &format!("10.0.0.{n}"), "-j", "DROP"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let out = live.masqctl(&["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("too many rules") && err.contains("at most 2"), "{err}");
    let saved: SavedRules = live.call_as(&Command::RulesSave { table: None });
    assert!(!saved.text.contains("MASQUERADE") && saved.text.contains("10.0.0.2"), "{}", saved.text);
    assert_eq!(live.call(&Command::ConfigGet)["control"]["max_rules"], 2);
    live.stop().assert_clean();
}

#[test]
fn a_socket_directory_others_may_write_stops_masqd_before_eal() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("ctl-opendir");
    let open = dir.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let cfg =
        null_config().extra_toml(&format!("[control]\nsocket = {}", json!(open.join("m.sock").display().to_string())));
    let stopped = Masqd::run_to_exit(&cfg.to_toml(), &[], Duration::from_secs(10));
    assert!(!stopped.status.success(), "{}", stopped.log);
    assert!(
        stopped.log.contains(&format!("refusing the control socket's directory {}", open.display()))
            && stopped.log.contains("sticky"),
        "{}",
        stopped.log
    );
    assert!(!stopped.log.contains("EAL arguments"), "{}", stopped.log);
    assert!(!open.join("m.sock").exists());
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("ctl-stale");
    let socket = dir.join("stale.sock");
    drop(std::os::unix::net::UnixListener::bind(&socket).unwrap());
    assert!(socket.exists());
    let cfg = null_config().extra_toml(&format!("[control]\nsocket = {}", json!(socket.display().to_string())));
    let mut masqd = Masqd::start(&cfg);
    masqd.expect_ready(READY);
    assert!(Client::connect(&socket).unwrap().call(&Command::Version).is_ok());
    masqd.stop(STOP).assert_clean();
    assert!(!socket.exists());
}

#[test]
fn rules_file_is_loaded_at_start_and_a_bad_one_stops_masqd_before_eal() {
    let rules = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
    let live = Live::start(null_config().rules(rules));
    let listing: RuleListing =
        live.call_as(&Command::RulesList { table: "nat".into(), chain: Some("POSTROUTING".into()) });
    assert_eq!(listing.chains[0].rules.len(), 1);
    assert_eq!(listing.chains[0].rules[0].spec, spec("-o wan -j MASQUERADE"));
    let config = live.call(&Command::ConfigGet);
    assert!(config["rules_file"].as_str().is_some_and(|f| f.ends_with("rules.v4")), "{config}");
    live.stop().assert_clean();

    let bad = "*nat\n-A POSTROUTING -o wan -j MASQUERADE\n-A POSTROUTING -o wlan0 -j MASQUERADE\nCOMMIT\n";
    let mut masqd = Masqd::start(&null_config().rules(bad));
    assert!(masqd.wait_ready(Duration::from_secs(10)).is_err());
    let stopped = masqd.wait_exit(Duration::from_secs(10));
    assert_eq!(stopped.status.code(), Some(2), "{}", stopped.log);
    let line = stopped.log.lines().next().unwrap_or_default().to_string();
    assert!(line.starts_with("masqd: ") && line.contains("rules.v4: line 3: ") && line.contains("wlan0"), "{line}");
    assert!(!stopped.log.contains("EAL"), "{}", stopped.log);
}

// ---------------------------------------------------------------------------------------
// Sessions: need the NAT in the packet path.
// ---------------------------------------------------------------------------------------

/// `n` UDP flows from lan hosts through MASQUERADE; masqd runs on, sessions in place.
fn with_sessions(dir: &TempDir, n: u16) -> Live {
    with_sessions_under(dir, n, "*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n")
}

/// `n` UDP flows from lan hosts (one datagram each) under `rules`.
fn with_sessions_under(dir: &TempDir, n: u16, rules: &str) -> Live {
    let frames: Vec<Vec<u8>> = (0..n).map(|i| host_udp(30000 + i)).collect();
    let lan_in = dir.join("lan_in.pcap");
    let wan_in = dir.join("wan_in.pcap");
    write_pcap(&lan_in, &frames);
    write_pcap::<Vec<u8>>(&wan_in, &[]);
    let cfg = MasqdConfig::new()
        .inside("lan", &pcap_device(0, &lan_in, &dir.join("lan_out.pcap")), "100.64.0.1/10")
        .with_mac(LAN_MAC)
        .outside("wan", &pcap_device(1, &wan_in, &dir.join("wan_out.pcap")), "203.0.113.1/24", Some("203.0.113.254"))
        .with_mac(WAN_MAC)
        .neighbor("wan", "203.0.113.254", GW_MAC)
        .neighbor("lan", "100.64.0.2", HOST_MAC)
        .rules(rules);
    let live = Live::start(cfg);
    let count = |live: &Live| {
        live.call_as::<SessionCount>(&Command::SessionsCount { filter: SessionFilter::default(), cursor: None }).count
    };
    assert!(wait_until(Duration::from_secs(10), || count(&live) == u64::from(n)), "{}", live.masqd.log());
    live
}

#[test]
fn stats_carry_the_counters_of_the_shutdown_report() {
    let dir = TempDir::new("ctl-counters");
    let live = with_sessions(&dir, 20);
    let stats: Stats = live.call_as(&Command::StatsGet);
    let w = &stats.workers[0].counters;
    for key in ["nat_hairpinned", "handoff_out", "handoff_in", "nat_icmp_errors_translated", "nat_fragments_translated"]
    {
        assert_eq!(w.get(key), Some(&0), "{key}: {w:?}");
    }
    assert_eq!((w["nat_mappings"], w["nat_sessions_created"], w["forwarded"]), (20, 20, 20), "{w:?}");
    assert_eq!(stats.counters["forwarded"], 20, "{:?}", stats.counters);
    let pool = stats.mempool.expect("stats.get reports the mbuf pool");
    assert!(pool.size >= 1024 && pool.in_use <= pool.size, "{pool:?}");
    let out = live.masqctl(&["stats"]);
    assert!(text(&out).contains("nat_mappings") && text(&out).contains("Counters (all workers):"), "{}", text(&out));
    assert!(text(&out).contains(&format!(" of {} in use", pool.size)), "{}", text(&out));
    // The traffic is over (pcap ports read once): the report says the same, name for name.
    let stopped = live.stop();
    stopped.assert_clean();
    for (key, value) in w.iter().filter(|(k, _)| !matches!(k.as_str(), "polls" | "rx_packets" | "rx_bytes")) {
        assert_eq!(stopped.expect_counter(&format!("worker:0 {key}")), *value, "{key}");
    }
}

#[test]
fn sessions_list_count_and_flush_on_a_live_masqd() {
    let dir = TempDir::new("ctl-sessions");
    let live = with_sessions(&dir, 300);
    let mut cursor = None;
    let mut all = Vec::new();
    loop {
        let page: SessionPage = live.call_as(&Command::SessionsList {
            filter: SessionFilter::default(),
            cursor: cursor.clone(),
            limit: 100,
        });
        assert!(page.sessions.len() <= 100);
        all.extend(page.sessions);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(all.len(), 300);
    for s in &all {
        assert_eq!(s.proto, control::protocol::Protocol::Udp);
        assert_eq!(*s.inside.ip(), ip4("100.64.0.2"));
        assert_eq!(*s.outside.ip(), ip4("203.0.113.1"), "masqueraded to the wan address");
        assert_eq!(s.remote.to_string(), "198.51.100.7:53");
        assert!(s.expires_in_secs > 0 && s.expires_in_secs <= 300);
    }
    let filtered: SessionCount = live.call_as(&Command::SessionsCount {
        filter: SessionFilter { inside_port: Some(30007), ..Default::default() },
        cursor: None,
    });
    assert_eq!(filtered.count, 1);
    let stats: Stats = live.call_as(&Command::StatsGet);
    assert_eq!((stats.sessions_active, stats.sessions_created), (300, 300));
    // 300 flows from 300 source ports: 300 UDP ports in use on the wan address, of the
    // 1023 + 64512 one worker owns.
    assert_eq!(stats.port_utilisation.len(), 1, "{:?}", stats.port_utilisation);
    let u = &stats.port_utilisation[0];
    assert_eq!((u.address, u.capacity, u.udp, u.tcp, u.icmp), (ip4("203.0.113.1"), 1023 + 64512, 300, 0, 0));
    let flushed = live.call(&Command::SessionsFlush {
        filter: SessionFilter { inside_port: Some(30007), ..Default::default() },
        cursor: None,
    });
    assert_eq!(flushed, json!({"flushed": 1}));
    assert_eq!(
        live.call(&Command::SessionsFlush { filter: SessionFilter::default(), cursor: None }),
        json!({"flushed": 299})
    );
    assert_eq!(
        live.call(&Command::SessionsCount { filter: SessionFilter::default(), cursor: None }),
        json!({"count": 0})
    );
    let stats: Stats = live.call_as(&Command::StatsGet);
    assert_eq!(stats.port_utilisation[0].udp, 0, "flushed sessions free their ports");
    live.stop().assert_clean();
}

#[test]
fn masqctl_lists_the_translation_table() {
    let dir = TempDir::new("ctl-masq-l");
    let live = with_sessions(&dir, 5);
    let out = live.masqctl(&["-M", "-L", "-v"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = text(&out);
    assert_eq!(table.lines().count(), 2 + 5, "{table}");
    assert!(
        table.lines().skip(2).all(|l| l.starts_with("udp  100.64.0.2:300") && l.contains("203.0.113.1:")),
        "{table}"
    );
    let out = live.masqctl(&["sessions", "count"]);
    assert_eq!(text(&out), "5\n");
    live.stop().assert_clean();
}

/// Run `dataplane/tests/tools/peer.py` in a namespace: (exit code, trimmed stdout).
fn peer(topo: &LanWan, ns: &str, args: &[&str]) -> (i32, String) {
    let script = workspace_root().join("dataplane/tests/tools/peer.py").display().to_string();
    let mut argv = vec!["python3", script.as_str()];
    argv.extend_from_slice(args);
    let out = topo.net.exec(ns, Duration::from_secs(8), &argv);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn rules_changed_live_apply_to_new_flows_while_old_sessions_keep_their_translation() {
    if !require_root_and_tools() {
        return;
    }
    let _serial = af_packet_serial();
    let mut topo = LanWan::new();
    let rules = "*nat\n-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE\nCOMMIT\n";
    let live = Live::start(topo.masqd_config().rules(rules));
    let script = workspace_root().join("dataplane/tests/tools/peer.py").display().to_string();
    let srv = topo.srv_ns.clone();
    topo.net.spawn(&srv, Duration::from_secs(60), &["python3", &script, "udp-echo", "0.0.0.0", "7"], None);
    topo.net.wait_listening(&srv, "udp", "7");
    let ask = |port: &str| peer(&topo, &topo.lan_ns, &["udp-ask", addr::LAN_HOST, port, addr::SERVER, "7"]);

    let udp_in_use = |live: &Live| {
        let stats: Stats = live.call_as(&Command::StatsGet);
        stats.port_utilisation.iter().find(|u| u.address == ip4(addr::WAN_ROUTER)).map_or(0, |u| u.udp)
    };
    assert_eq!(udp_in_use(&live), 0);
    assert_eq!(ask("40000"), (0, "203.0.113.1:40000".into()), "masqueraded:\n{}", live.masqd.log());
    assert_eq!(udp_in_use(&live), 1, "one live flow, one port in use");
    // A new rule ahead of MASQUERADE: UDP goes out from ports 20000-20100.
    let out = live.masqctl(&[
        "-t",
        "nat",
        "-I",
        "POSTROUTING",
        "1",
        "-o",
        "wan",
        "-p",
        "udp",
        "-j",
        "SNAT",
        "--to-source",
        "203.0.113.1:20000-20100",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (rc, seen) = ask("40001");
    let port: u16 = seen.split_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
    assert!(rc == 0 && (20000..=20100).contains(&port), "a new flow takes the new rule: {seen}\n{}", live.masqd.log());
    assert_eq!(ask("40000"), (0, "203.0.113.1:40000".into()), "the old session keeps its translation");
    assert_eq!(udp_in_use(&live), 2, "two live flows, two ports in use");

    // The translation table shows both; flushed, the old flow starts over under the new rule.
    let out = live.masqctl(&["-M", "-L"]);
    let table = text(&out);
    assert!(table.contains("100.64.0.2:40000") && table.contains("203.0.113.1:40000"), "{table}");
    assert!(table.contains("100.64.0.2:40001"), "{table}");
    let count: SessionCount = live.call_as(&Command::SessionsCount { filter: SessionFilter::default(), cursor: None });
    assert_eq!(count.count, 2, "{table}");
    assert_eq!(
        live.call(&Command::SessionsFlush { filter: SessionFilter::default(), cursor: None }),
        json!({"flushed": 2})
    );
    let (rc, seen) = ask("40000");
    let port: u16 = seen.split_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or(0);
    assert!(rc == 0 && (20000..=20100).contains(&port), "after the flush: {seen}");
    let stats: Stats = live.call_as(&Command::StatsGet);
    assert_eq!((stats.sessions_created, stats.sessions_active), (3, 1), "{stats:?}");
    live.stop().assert_clean();
}

/// `(packets, bytes)` of every rule of one chain, as `rules.list` reports them.
fn rule_counts(live: &Live, table: &str, chain: &str) -> Vec<(u64, u64)> {
    let listing: RuleListing = live.call_as(&Command::RulesList { table: table.into(), chain: Some(chain.into()) });
    listing.chains[0].rules.iter().map(|r| (r.packets, r.bytes)).collect()
}

#[test]
fn rule_counters_count_what_each_rule_decided_and_reset_on_a_change() {
    let dir = TempDir::new("ctl-counters");
    let rules = "*nat\n-A POSTROUTING -o wan -p tcp -j MASQUERADE\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n\
                 *filter\n-A FORWARD -p tcp -j DROP\n-A FORWARD -i lan -o wan -j ACCEPT\nCOMMIT\n";
    let live = with_sessions_under(&dir, 20, rules);
    // 20 UDP flows of one datagram each: IPv4 length 20 + 8 + 32.
    let ip_len = (host_udp(1).len() - 14) as u64;
    assert_eq!(rule_counts(&live, "nat", "POSTROUTING"), [(0, 0), (20, 20 * ip_len)], "{}", live.masqd.log());
    assert_eq!(rule_counts(&live, "filter", "FORWARD"), [(0, 0), (20, 20 * ip_len)]);
    // As masqctl shows them: -L -v -x with line numbers.
    let out = live.masqctl(&["-t", "nat", "-L", "POSTROUTING", "-n", "-v", "-x", "--line-numbers"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = text(&out);
    let rows: Vec<Vec<&str>> =
        listing.lines().skip(2).map(|l| l.split_whitespace().take(4).collect::<Vec<_>>()).collect();
    let bytes = (20 * ip_len).to_string();
    assert_eq!(rows, [vec!["1", "0", "0", "MASQUERADE"], vec!["2", "20", bytes.as_str(), "MASQUERADE"]], "{listing}");
    // Any change swaps in a new compiled set: every counter starts again at zero.
    let out = live.masqctl(&["-P", "FORWARD", "ACCEPT"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(rule_counts(&live, "nat", "POSTROUTING"), [(0, 0), (0, 0)]);
    assert_eq!(rule_counts(&live, "filter", "FORWARD"), [(0, 0), (0, 0)]);
    live.stop().assert_clean();
}

#[test]
fn snat_to_an_address_masqd_did_not_start_with_is_refused_with_the_way_out() {
    let live = Live::on_null();
    let out =
        live.masqctl(&["-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "SNAT", "--to-source", "198.51.100.50"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("198.51.100.50 is not in masqd's external pool (203.0.113.1)"), "{err}");
    assert!(err.contains("restart masqd with --rules"), "{err}");
    // The wan address itself (in the pool) is fine, with a port range.
    let ok = live.masqctl(&[
        "-t",
        "nat",
        "-A",
        "POSTROUTING",
        "-o",
        "wan",
        "-p",
        "udp",
        "-j",
        "SNAT",
        "--to-source",
        "203.0.113.1:20000-20100",
    ]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    let saved: SavedRules = live.call_as(&Command::RulesSave { table: Some("nat".into()) });
    assert!(!saved.text.contains("198.51.100.50") && saved.text.contains("20000-20100"), "{}", saved.text);
    live.stop().assert_clean();
}

/// A LAN/WAN testbed with masqd masquerading, and a UDP echo server on the server (7).
fn udp_testbed(topo: &mut LanWan) -> Live {
    let rules = "*nat\n-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE\nCOMMIT\n";
    let live = Live::start(topo.masqd_config().rules(rules));
    let script = workspace_root().join("dataplane/tests/tools/peer.py").display().to_string();
    let srv = topo.srv_ns.clone();
    topo.net.spawn(&srv, Duration::from_secs(60), &["python3", &script, "udp-echo", "0.0.0.0", "7"], None);
    topo.net.wait_listening(&srv, "udp", "7");
    live
}

#[test]
fn a_port_forward_added_live_reserves_its_port_and_deleting_it_releases_the_port() {
    if !require_root_and_tools() {
        return;
    }
    let _serial = af_packet_serial();
    let mut topo = LanWan::new();
    let live = udp_testbed(&mut topo);
    let script = workspace_root().join("dataplane/tests/tools/peer.py").display().to_string();
    let lan = topo.lan_ns.clone();
    topo.net.spawn(&lan, Duration::from_secs(60), &["python3", &script, "udp-echo", addr::LAN_HOST, "7"], None);
    topo.net.wait_listening(&lan, "udp", "7");
    let port_of = |seen: &str| seen.split_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).unwrap_or(0);

    let out = live.masqctl(&[
        "-t",
        "nat",
        "-A",
        "PREROUTING",
        "-i",
        "wan",
        "-p",
        "udp",
        "--dport",
        "8080",
        "-j",
        "DNAT",
        "--to-destination",
        "100.64.0.2:7",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A LAN flow from source port 8080 cannot be given 8080: the forward holds it.
    let (rc, seen) = peer(&topo, &topo.lan_ns, &["udp-ask", addr::LAN_HOST, "8080", addr::SERVER, "7"]);
    assert!(rc == 0 && port_of(&seen) != 0 && port_of(&seen) != 8080, "{seen}\n{}", live.masqd.log());
    // The forward works: the server reaches the LAN host's echo through 203.0.113.1:8080.
    let (rc, seen) = peer(&topo, &topo.srv_ns, &["udp-ask", addr::SERVER, "5555", addr::WAN_ROUTER, "8080"]);
    assert_eq!((rc, seen.as_str()), (0, "203.0.113.254:5555"), "{}", live.masqd.log());

    // Deleted (and the sessions flushed): the port is released, and a flow from 8080 keeps it.
    let out = live.masqctl(&["-t", "nat", "-D", "PREROUTING", "1"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = live.masqctl(&["sessions", "flush"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (rc, seen) = peer(&topo, &topo.lan_ns, &["udp-ask", addr::LAN_HOST, "8080", addr::SERVER, "7"]);
    assert_eq!((rc, port_of(&seen)), (0, 8080), "released: {seen}\n{}", live.masqd.log());
    live.stop().assert_clean();
}

#[test]
fn sessions_expire_on_timers_set_with_masqctl() {
    if !require_root_and_tools() {
        return;
    }
    let _serial = af_packet_serial();
    let mut topo = LanWan::new();
    let live = udp_testbed(&mut topo);
    // The sessions start on the default UDP timer (300 s), so they are all still there to
    // be listed however long the three peers take to start on a loaded machine.
    let ask = |sport: &str| {
        let (rc, seen) = peer(&topo, &topo.lan_ns, &["udp-ask", addr::LAN_HOST, sport, addr::SERVER, "7"]);
        assert_eq!((rc, seen), (0, format!("203.0.113.1:{sport}")), "{}", live.masqd.log());
    };
    for sport in ["41000", "41001", "41002"] {
        ask(sport);
    }
    let out = live.masqctl(&["-M", "-L"]);
    let table = text(&out);
    for sport in ["41000", "41001", "41002"] {
        assert!(table.contains(&format!("100.64.0.2:{sport}")), "{table}");
    }
    let stats: Stats = live.call_as(&Command::StatsGet);
    assert_eq!((stats.sessions_active, stats.sessions_created, stats.sessions_expired), (3, 3, 0), "{stats:?}");
    // UDP 2 s, set live; a timeout applies to a session from its next packet, so each
    // flow sends one more (the same session: nothing new is created).
    let out = live.masqctl(&["-M", "-S", "7200", "10", "2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for sport in ["41000", "41001", "41002"] {
        ask(sport);
    }
    // Gone within a few seconds of its last packet (bounded wait), counted as expired.
    let count = |live: &Live| text(&live.masqctl(&["sessions", "count"]));
    assert!(wait_until(Duration::from_secs(15), || count(&live) == "0\n"), "{}", text(&live.masqctl(&["-M", "-L"])));
    let out = live.masqctl(&["-M", "-L"]);
    assert_eq!(text(&out).lines().count(), 2, "only the header is left: {}", text(&out));
    let stats: Stats = live.call_as(&Command::StatsGet);
    assert_eq!((stats.sessions_active, stats.sessions_created, stats.sessions_expired), (0, 3, 3), "{stats:?}");
    live.stop().assert_clean();
}

/// `net_pcap` with one rx_pcap (`<name>_in<q>.pcap`) and one tx_pcap per queue, so each of
/// two workers polls a queue of its own.
fn multiqueue_pcap(index: u32, dir: &TempDir, name: &str, queues: usize) -> String {
    let mut dev = format!("net_pcap{index}");
    for q in 0..queues {
        dev.push_str(&format!(",rx_pcap={}", dir.join(format!("{name}_in{q}.pcap")).display()));
    }
    for q in 0..queues {
        dev.push_str(&format!(",tx_pcap={}", dir.join(format!("{name}_out{q}.pcap")).display()));
    }
    dev
}

/// The per-stage runtime table of a live masqd (`stats.get`, `masqctl stats --runtime`):
/// traffic that takes every stage — ARP, new flows and hits, a flow of the other worker's
/// subscriber (handed over), a TFTP request (helper), a ping to the router, a bad
/// checksum, sessions expiring —
/// through two workers, then every stage shows packets, calls and cycles. Also
/// `[workers] burst`: the whole capture arrives as one burst of 64.
#[test]
fn the_runtime_table_shows_every_stage_of_a_live_masqd() {
    let dir = TempDir::new("ctl-runtime");
    // Worker 0 owns subscriber 100.64.0.2, worker 1 100.64.0.3 (tests/capture_multiqueue.rs).
    let (host0, host1, router) = (ip4("100.64.0.2"), ip4("100.64.0.3"), ip4("100.64.0.1"));
    let udp = |src, sport| udp_frame(mac(HOST_MAC), mac(LAN_MAC), src, ip4("198.51.100.7"), sport, 53, 64, b"q");
    let mut lan0 = vec![arp_request(mac(HOST_MAC), host0, router)];
    // 40 frames of one flow: the first burst creates the session, the next one hits it.
    lan0.extend((0..40).map(|_| udp(host0, 40000)));
    lan0.push(udp(host1, 40001)); // worker 1's subscriber on worker 0's queue
    lan0.push(icmp_echo_frame(mac(HOST_MAC), mac(LAN_MAC), host0, router, 64, 7, 1, b"ping"));
    // A TFTP read request: its session has the tftp helper (on by default), so the
    // packet passes the helper stage.
    let rrq = b"\x00\x01blob\x00octet\x00";
    lan0.push(udp_frame(mac(HOST_MAC), mac(LAN_MAC), host0, ip4("198.51.100.7"), 40003, 69, 64, rrq));
    let mut bad = udp(host0, 40002);
    bad[14 + 10] ^= 0xff; // IPv4 header checksum
    lan0.push(bad);
    for (name, q, frames) in [("lan", 0, &lan0), ("lan", 1, &vec![]), ("wan", 0, &vec![]), ("wan", 1, &vec![])] {
        write_pcap(&dir.join(format!("{name}_in{q}.pcap")), frames);
    }
    let cfg = MasqdConfig::new()
        .inside("lan", &multiqueue_pcap(0, &dir, "lan", 2), "100.64.0.1/10")
        .with_mac(LAN_MAC)
        .outside("wan", &multiqueue_pcap(1, &dir, "wan", 2), "203.0.113.1/24", Some("203.0.113.254"))
        .with_mac(WAN_MAC)
        .neighbor("wan", "203.0.113.254", GW_MAC)
        .neighbor("lan", "100.64.0.2", HOST_MAC)
        .neighbor("lan", "100.64.0.3", HOST_MAC)
        .rules("*nat\n-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE\nCOMMIT\n")
        .cores(&[0, 1])
        .burst(64)
        .extra_toml("[timeouts]\nudp = 1\nicmp = 1\n");
    let live = Live::start(cfg);
    // Stage name -> (calls, packets, cycles), summed over the workers.
    let totals = |stats: &Stats| {
        let mut t = std::collections::BTreeMap::<String, (u64, u64, u64)>::new();
        for r in stats.workers.iter().flat_map(|w| &w.runtime) {
            let e = t.entry(r.stage.clone()).or_default();
            *e = (e.0 + r.calls, e.1 + r.packets, e.2 + r.cycles);
        }
        t
    };
    // The host interface's stages see frames only with a host interface (e2e_host).
    let host_stage = |name: &str| name.starts_with("host-");
    let mut stats: Stats = live.call_as(&Command::StatsGet);
    let all_seen = |stats: &Stats| {
        totals(stats).iter().filter(|(n, _)| !host_stage(n)).all(|(_, &(calls, packets, _))| calls > 0 && packets > 0)
    };
    assert!(
        wait_until(Duration::from_secs(15), || {
            stats = live.call_as(&Command::StatsGet);
            all_seen(&stats)
        }),
        "stages with no packets: {:?}\n{}",
        totals(&stats).iter().filter(|(n, v)| v.1 == 0 && !host_stage(n)).collect::<Vec<_>>(),
        live.masqd.log()
    );
    assert!(stats.tsc_hz > 0);
    assert_eq!(stats.workers.len(), 2);
    let t = totals(&stats);
    let names: Vec<&str> = stats.workers[0].runtime.iter().map(|r| r.stage.as_str()).collect();
    assert_eq!(
        names,
        [
            "port-rx",
            "handoff-rx",
            "host-rx",
            "host-input",
            "l2-input",
            "ip4-input",
            "nat-classify",
            "nat-lookup",
            "nat-slowpath",
            "ip4-forward",
            "helper",
            "nat-rewrite",
            "ip4-local",
            "host-punt",
            "handoff",
            "l2-output",
            "drop",
            "port-tx",
            "nat-expire",
        ]
    );
    for (stage, &(calls, packets, cycles)) in &t {
        if host_stage(stage) {
            assert_eq!((calls, packets, cycles), (0, 0, 0), "{stage}: no host interface");
            continue;
        }
        assert!(
            cycles > 0 && calls <= packets.max(calls),
            "{stage}: {calls} calls, {packets} packets, {cycles} cycles"
        );
    }
    // What went in, stage by stage: 45 frames received — in one burst of up to 64
    // (`[workers] burst`; 32 would take two) — one handed over, one dropped.
    let rx0 = &stats.workers[0].runtime[0];
    assert_eq!((rx0.stage.as_str(), rx0.calls, rx0.packets), ("port-rx", 1, lan0.len() as u64));
    assert_eq!(t["port-rx"].1, lan0.len() as u64);
    assert_eq!((t["handoff"].1, t["handoff-rx"].1), (1, 1));
    assert_eq!(t["l2-input"].1, lan0.len() as u64);
    assert_eq!(t["ip4-input"].1, lan0.len() as u64 - 1, "all but the ARP request");
    assert_eq!(t["drop"].1, 1, "the bad checksum");
    assert_eq!(t["ip4-local"].1, 1, "the ping");
    assert_eq!(t["helper"].1, 1, "the TFTP request");
    assert_eq!(stats.drops["ipv4_bad_checksum"], 1);

    // masqctl prints the same table, one line per stage and worker.
    let out = live.masqctl(&["stats", "--runtime"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = text(&out);
    assert!(table.contains("worker 0 (lcore 0)") && table.contains("worker 1 (lcore 1)"), "{table}");
    for name in names {
        let rows = table.lines().filter(|l| l.split_whitespace().next() == Some(name)).count();
        assert_eq!(rows, 2, "{name} once per worker:\n{table}");
    }
    live.stop().assert_clean();
}
