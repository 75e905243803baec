//! The control server over a real Unix socket, against the mock handler.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::{start, start_with, Mock, TempDir, SESSIONS};
use control::protocol::{
    Flushed, Protocol, RestoreSummary, RuleAdded, RuleListing, RuleSelector, SavedRules, SessionCount, SessionFilter,
    SessionPage, Stats, Timeouts, TimeoutsUpdate, VersionInfo, PROTOCOL_VERSION,
};
use control::{Client, ClientError, Command, ErrorCode, Response, Server, ServerError, ServerOptions};
use serde_json::{json, Value};

/// A connection speaking raw lines.
struct Raw {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Raw {
    fn connect(path: &std::path::Path) -> Raw {
        let writer = UnixStream::connect(path).unwrap();
        writer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Raw { reader: BufReader::new(writer.try_clone().unwrap()), writer }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn response(&mut self) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with('\n'), "a response is one whole line: {line:?}");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    fn ask(&mut self, line: &str) -> Response {
        self.send(format!("{line}\n").as_bytes());
        self.response()
    }

    /// True once the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut rest = String::new();
        matches!(self.reader.read_line(&mut rest), Ok(0))
    }
}

fn code(r: &Response) -> ErrorCode {
    r.outcome.clone().expect_err("an error response").code
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn spec(s: &str) -> Vec<String> {
    s.split_whitespace().map(String::from).collect()
}

// ---------------------------------------------------------------------------------------
// Every command through a real socket
// ---------------------------------------------------------------------------------------

#[test]
fn rule_commands_round_trip() {
    let (_dir, server) = start("rules");
    let mut c = Client::connect(server.path()).unwrap();
    let nat = |chain: Option<&str>| Command::RulesList { table: "nat".into(), chain: chain.map(String::from) };

    let added: RuleAdded = c
        .call_as(&Command::RulesAppend {
            table: "nat".into(),
            chain: "POSTROUTING".into(),
            spec: spec("-o wan -j MASQUERADE"),
        })
        .unwrap();
    assert_eq!(added.number, 1);
    let added: RuleAdded = c
        .call_as(&Command::RulesInsert {
            table: "nat".into(),
            chain: "PREROUTING".into(),
            position: 1,
            spec: spec("-i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80"),
        })
        .unwrap();
    assert_eq!(added.number, 1);
    c.call(&Command::RulesAppend {
        table: "nat".into(),
        chain: "POSTROUTING".into(),
        spec: spec("-o lte -j MASQUERADE"),
    })
    .unwrap();

    let listing: RuleListing = c.call_as(&nat(None)).unwrap();
    assert_eq!(listing.chains.len(), 4);
    let post = listing.chains.iter().find(|ch| ch.chain == "POSTROUTING").unwrap();
    assert_eq!(post.rules.iter().map(|r| r.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!((post.rules[0].target.as_str(), post.rules[0].out_iface.as_str()), ("MASQUERADE", "wan"));
    assert_eq!(post.rules[0].packets, 0, "counters are present");

    let listing: RuleListing = c.call_as(&nat(Some("PREROUTING"))).unwrap();
    assert_eq!(listing.chains.len(), 1);
    assert_eq!(listing.chains[0].rules[0].options, "tcp dpt:8080 to:100.64.0.2:80");

    // Delete by spec, then by number.
    c.call(&Command::RulesDelete {
        table: "nat".into(),
        chain: "POSTROUTING".into(),
        rule: RuleSelector::Spec(spec("-o wan -j MASQUERADE")),
    })
    .unwrap();
    let listing: RuleListing = c.call_as(&nat(Some("POSTROUTING"))).unwrap();
    assert_eq!(listing.chains[0].rules[0].spec, spec("-o lte -j MASQUERADE"));
    c.call(&Command::RulesDelete { table: "nat".into(), chain: "POSTROUTING".into(), rule: RuleSelector::Number(1) })
        .unwrap();
    let err = c
        .call(&Command::RulesDelete { table: "nat".into(), chain: "POSTROUTING".into(), rule: RuleSelector::Number(1) })
        .unwrap_err();
    assert!(matches!(err, ClientError::Server(ref e) if e.code == ErrorCode::NotFound), "{err}");

    // Policy.
    c.call(&Command::RulesPolicy { table: "filter".into(), chain: "FORWARD".into(), policy: "DROP".into() }).unwrap();
    let listing: RuleListing =
        c.call_as(&Command::RulesList { table: "filter".into(), chain: Some("FORWARD".into()) }).unwrap();
    assert_eq!(listing.chains[0].policy.as_deref(), Some("DROP"));

    // Save, flush, restore.
    let saved: SavedRules = c.call_as(&Command::RulesSave { table: None }).unwrap();
    assert!(saved.text.contains("*nat\n") && saved.text.contains("-A PREROUTING -i wan -p tcp --dport 8080"));
    assert!(saved.text.contains(":FORWARD DROP"));
    let flushed: Flushed = c.call_as(&Command::RulesFlush { table: "nat".into(), chain: None }).unwrap();
    assert_eq!(flushed.flushed, 1);
    let summary: RestoreSummary =
        c.call_as(&Command::RulesRestore { text: saved.text.clone(), noflush: false }).unwrap();
    assert_eq!((summary.tables, summary.rules), (vec!["filter".to_string(), "nat".to_string()], 1));
    let again: SavedRules = c.call_as(&Command::RulesSave { table: None }).unwrap();
    assert_eq!(again.text, saved.text);
    let nat_only: SavedRules = c.call_as(&Command::RulesSave { table: Some("nat".into()) }).unwrap();
    assert!(!nat_only.text.contains("*filter"));
}

#[test]
fn restore_is_atomic() {
    let (_dir, server) = start("restore");
    let mut c = Client::connect(server.path()).unwrap();
    c.call(&Command::RulesAppend {
        table: "nat".into(),
        chain: "POSTROUTING".into(),
        spec: spec("-o wan -j MASQUERADE"),
    })
    .unwrap();
    let before: SavedRules = c.call_as(&Command::RulesSave { table: None }).unwrap();
    let bad = "*nat\n-A POSTROUTING -o lte -j MASQUERADE\n-A NOSUCHCHAIN -j DROP\nCOMMIT\n";
    let err = c.call(&Command::RulesRestore { text: bad.into(), noflush: false }).unwrap_err();
    match err {
        ClientError::Server(e) => {
            assert_eq!((e.code, e.message.as_str()), (ErrorCode::Conflict, "line 3: unknown chain"))
        }
        other => panic!("{other}"),
    }
    let after: SavedRules = c.call_as(&Command::RulesSave { table: None }).unwrap();
    assert_eq!(after.text, before.text, "a failed restore changes nothing");
}

#[test]
fn session_commands_round_trip_with_paging_and_filters() {
    let (_dir, server) = start("sessions");
    let mut c = Client::connect(server.path()).unwrap();

    let mut all = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page: SessionPage = c
            .call_as(&Command::SessionsList { filter: SessionFilter::default(), cursor: cursor.clone(), limit: 10 })
            .unwrap();
        pages += 1;
        assert!(page.sessions.len() <= 10);
        all.extend(page.sessions);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!((pages, all.len()), (3, SESSIONS));

    let tcp = SessionFilter { protocol: Some(Protocol::Tcp), ..Default::default() };
    let count: SessionCount = c.call_as(&Command::SessionsCount { filter: tcp.clone(), cursor: None }).unwrap();
    assert_eq!(count.count, 10);
    let established = SessionFilter { state: Some("established".into()), ..tcp.clone() };
    let page: SessionPage =
        c.call_as(&Command::SessionsList { filter: established, cursor: None, limit: 100 }).unwrap();
    assert_eq!(page.sessions.len(), 9);
    assert!(page.next_cursor.is_none());

    // Raw JSON filters, as a script would send them.
    let count = c.request("sessions.count", json!({"inside_addr": "100.64.0.2", "remote_port": 53})).unwrap();
    assert_eq!(count, json!({"count": 2}));

    let flushed: Flushed = c.call_as(&Command::SessionsFlush { filter: tcp, cursor: None }).unwrap();
    assert_eq!(flushed.flushed, 10);
    let flushed: Flushed =
        c.call_as(&Command::SessionsFlush { filter: SessionFilter::default(), cursor: None }).unwrap();
    assert_eq!(flushed.flushed, 15);
    let count: SessionCount =
        c.call_as(&Command::SessionsCount { filter: SessionFilter::default(), cursor: None }).unwrap();
    assert_eq!(count.count, 0);
}

#[test]
fn stats_timeouts_config_and_version_round_trip() {
    let (_dir, server) = start("misc");
    let mut c = Client::connect(server.path()).unwrap();

    let stats: Stats = c.call_as(&Command::StatsGet).unwrap();
    assert_eq!(stats, common::canned_stats(SESSIONS));

    let t: Timeouts = c.call_as(&Command::TimeoutsGet).unwrap();
    assert_eq!(t, Timeouts { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60, other: 600 });
    let t: Timeouts = c
        .call_as(&Command::TimeoutsSet(TimeoutsUpdate { udp: Some(120), icmp: Some(30), ..Default::default() }))
        .unwrap();
    assert_eq!(t, Timeouts { tcp: 7440, tcpfin: 240, udp: 120, icmp: 30, other: 600 });
    assert_eq!(c.call_as::<Timeouts>(&Command::TimeoutsGet).unwrap(), t);

    let config = c.call(&Command::ConfigGet).unwrap();
    assert!(config["control"]["socket"].is_string());

    let v: VersionInfo = c.call_as(&Command::Version).unwrap();
    assert_eq!((v.daemon.as_str(), v.protocol), ("masqd", PROTOCOL_VERSION));
}

#[test]
fn the_documented_example_works_verbatim() {
    let (_dir, server) = start("example");
    let mut raw = Raw::connect(server.path());
    let r = raw.ask(r#"{"id": 7, "cmd": "timeouts.set", "args": {"udp": 120}}"#);
    assert_eq!(r.id, json!(7));
    assert_eq!(r.outcome.unwrap(), json!({"tcp": 7440, "tcpfin": 240, "udp": 120, "icmp": 60, "other": 600}));
    let r = raw.ask(r#"{"id": 8, "cmd": "timeouts.set", "args": {"udp": "120"}}"#);
    let line = serde_json::to_string(&r).unwrap();
    assert!(line.starts_with(r#"{"id":8,"ok":false,"error":{"code":"bad_args","message":"#), "{line}");
}

// ---------------------------------------------------------------------------------------
// Bad input: the right code, and the connection keeps serving
// ---------------------------------------------------------------------------------------

#[test]
fn garbage_wrong_types_and_unknown_commands_get_their_codes() {
    let (_dir, server) = start("garbage");
    let mut raw = Raw::connect(server.path());
    let cases: &[(&str, ErrorCode, Value)] = &[
        ("this is not json", ErrorCode::BadJson, Value::Null),
        ("{\"id\": 1, \"cmd\": \"version\"", ErrorCode::BadJson, Value::Null),
        ("[\"version\"]", ErrorCode::BadRequest, Value::Null),
        (r#"{"id": 2}"#, ErrorCode::BadRequest, json!(2)),
        (r#"{"id": 3, "cmd": ["version"]}"#, ErrorCode::BadRequest, json!(3)),
        (r#"{"id": 4, "cmd": "version", "arg": {}}"#, ErrorCode::BadRequest, json!(4)),
        (r#"{"id": 5, "cmd": "rules.frobnicate"}"#, ErrorCode::UnknownCommand, json!(5)),
        (r#"{"id": 6, "cmd": "timeouts.set", "args": {"udp": "soon"}}"#, ErrorCode::BadArgs, json!(6)),
        (r#"{"id": 7, "cmd": "rules.append", "args": {"chain": 5, "spec": []}}"#, ErrorCode::BadArgs, json!(7)),
        (r#"{"id": 8, "cmd": "rules.append", "args": {"chain": "X", "spec": [1]}}"#, ErrorCode::BadArgs, json!(8)),
        (r#"{"id": 9, "cmd": "sessions.list", "args": "all"}"#, ErrorCode::BadArgs, json!(9)),
        (r#"{"id": "ten", "cmd": "rules.list", "args": {"table": "mangle"}}"#, ErrorCode::NotFound, json!("ten")),
        (
            r#"{"id": 11, "cmd": "rules.append", "args": {"chain": "INPUT", "spec": ["--bogus"]}}"#,
            ErrorCode::BadArgs,
            json!(11),
        ),
        ("\u{fffd}\u{fffd}", ErrorCode::BadJson, Value::Null),
    ];
    for (line, expected, id) in cases {
        let r = raw.ask(line);
        assert_eq!((&code(&r), &r.id), (expected, id), "{line}");
    }
    // Invalid UTF-8 too.
    raw.send(b"{\"id\": \xff}\n");
    assert_eq!(code(&raw.response()), ErrorCode::BadJson);
    // Blank lines are ignored; the same connection still answers.
    raw.send(b"\n  \r\n");
    let r = raw.ask(r#"{"id": {"any": "json"}, "cmd": "version"}"#);
    assert_eq!(r.id, json!({"any": "json"}));
    assert!(r.outcome.is_ok());
    // The field at fault is named.
    let r = raw.ask(r#"{"cmd": "rules.append", "args": {"chain": "X", "spec": ["-j", 1]}}"#);
    assert_eq!(r.outcome.unwrap_err().field.as_deref(), Some("spec[1]"));
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let (_dir, server) = start("pipeline");
    let mut raw = Raw::connect(server.path());
    let batch: String = (1..=20).map(|i| format!("{{\"id\": {i}, \"cmd\": \"version\"}}\n")).collect();
    raw.send(batch.as_bytes());
    for i in 1..=20 {
        assert_eq!(raw.response().id, json!(i));
    }
}

#[test]
fn a_truncated_request_gets_truncated_and_the_server_goes_on() {
    let (_dir, server) = start("truncated");
    let mut raw = Raw::connect(server.path());
    raw.send(br#"{"id": 41, "cmd": "version"}"#);
    raw.writer.shutdown(std::net::Shutdown::Write).unwrap();
    let r = raw.response();
    assert_eq!((code(&r), r.id), (ErrorCode::Truncated, json!(41)));
    assert!(raw.closed());

    let mut raw = Raw::connect(server.path());
    raw.send(br#"{"id": 42, "cmd": "ver"#);
    raw.writer.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(code(&raw.response()), ErrorCode::Truncated);

    let mut c = Client::connect(server.path()).unwrap();
    c.call(&Command::Version).unwrap();
}

#[test]
fn an_oversized_request_gets_too_large_and_the_connection_goes_on() {
    let (_dir, server) = start("too-large");
    let mut raw = Raw::connect(server.path());
    // 1.5 MiB of a "valid" request: over the 1 MiB bound.
    let filler = "x".repeat(3 << 19);
    let line = format!("{{\"id\": 1, \"cmd\": \"rules.restore\", \"args\": {{\"text\": \"{filler}\"}}}}\n");
    let writer = raw.writer.try_clone().unwrap();
    let sender = thread::spawn(move || (&writer).write_all(line.as_bytes()).unwrap());
    let r = raw.response();
    assert_eq!((code(&r), r.id), (ErrorCode::TooLarge, Value::Null));
    sender.join().unwrap();
    let r = raw.ask(r#"{"id": 2, "cmd": "version"}"#);
    assert_eq!(r.id, json!(2));
    assert!(r.outcome.is_ok());

    // Just under the bound is accepted (and reaches the handler).
    let text = "#".repeat(control::protocol::MAX_REQUEST_BYTES - 100);
    let line = format!("{{\"id\": 3, \"cmd\": \"rules.restore\", \"args\": {{\"text\": \"{text}\"}}}}");
    assert!(line.len() <= control::protocol::MAX_REQUEST_BYTES);
    let r = raw.ask(&line);
    assert!(r.outcome.is_ok(), "{r:?}");
}

#[test]
fn a_request_that_never_finishes_times_out() {
    let options = ServerOptions { request_timeout: Duration::from_millis(300), ..Default::default() };
    let (_dir, server) = start_with("slowloris", options);
    let mut raw = Raw::connect(server.path());
    raw.send(br#"{"id": 1, "cmd": "#);
    let r = raw.response();
    assert_eq!(code(&r), ErrorCode::Timeout);
    assert!(raw.closed());
    wait_until("the slow client is gone", || server.active_clients() == 0);
}

#[test]
fn idle_connections_are_closed() {
    let options = ServerOptions { idle_timeout: Duration::from_millis(300), ..Default::default() };
    let (_dir, server) = start_with("idle", options);
    let mut raw = Raw::connect(server.path());
    assert!(raw.ask(r#"{"cmd": "version"}"#).outcome.is_ok());
    assert!(raw.closed(), "closed without a word once idle");
}

// ---------------------------------------------------------------------------------------
// Concurrency and hostile clients
// ---------------------------------------------------------------------------------------

#[test]
fn fifty_clients_at_once() {
    let (_dir, server) = start("fifty");
    let path = server.path().to_path_buf();
    let barrier = Arc::new(Barrier::new(50));
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let (path, barrier) = (path.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                let mut c = Client::connect(&path).unwrap();
                barrier.wait();
                for j in 0..20 {
                    let chain = if i % 2 == 0 { "INPUT" } else { "OUTPUT" };
                    c.call(&Command::RulesAppend {
                        table: "filter".into(),
                        chain: chain.into(),
                        spec: spec(&format!("-s 10.0.{i}.{j} -j DROP")),
                    })
                    .unwrap();
                    let v: VersionInfo = c.call_as(&Command::Version).unwrap();
                    assert_eq!(v.protocol, PROTOCOL_VERSION);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let mut c = Client::connect(&path).unwrap();
    let listing: RuleListing = c.call_as(&Command::RulesList { table: "filter".into(), chain: None }).unwrap();
    assert_eq!(listing.chains.iter().map(|ch| ch.rules.len()).sum::<usize>(), 1000);
}

#[test]
fn a_client_that_never_reads_blocks_no_one_and_is_cut_off() {
    let options = ServerOptions { write_timeout: Duration::from_millis(300), ..Default::default() };
    let (_dir, server) = start_with("no-reader", options);

    // Flood requests with large answers and never read them.
    let hog = UnixStream::connect(server.path()).unwrap();
    let flood = {
        let mut hog = hog.try_clone().unwrap();
        thread::spawn(move || {
            let request = b"{\"id\": 1, \"cmd\": \"stats.get\"}\n".repeat(200);
            for _ in 0..200 {
                if hog.write_all(&request).is_err() {
                    break; // the server hung up on us: what this test wants
                }
            }
        })
    };
    wait_until("the hog connects", || server.active_clients() == 1);

    // Meanwhile another client is served promptly.
    let started = Instant::now();
    let mut c = Client::connect(server.path()).unwrap();
    for _ in 0..10 {
        c.call(&Command::Version).unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(2), "served in {:?}", started.elapsed());
    drop(c);

    // And the hog is disconnected, not buffered for.
    wait_until("the hog is cut off", || server.active_clients() == 0);
    flood.join().unwrap();
    drop(hog);
}

#[test]
fn clients_over_the_cap_are_told_busy() {
    let options = ServerOptions { max_clients: 2, ..Default::default() };
    let (_dir, server) = start_with("busy", options);
    let mut first = Client::connect(server.path()).unwrap();
    let mut second = Client::connect(server.path()).unwrap();
    first.call(&Command::Version).unwrap();
    second.call(&Command::Version).unwrap();
    let mut third = Client::connect(server.path()).unwrap();
    match third.call(&Command::Version) {
        Err(ClientError::Server(e)) => assert_eq!(e.code, ErrorCode::Busy),
        other => panic!("expected busy, got {other:?}"),
    }
    drop(first);
    wait_until("a slot frees", || server.active_clients() == 1);
    let mut fourth = Client::connect(server.path()).unwrap();
    fourth.call(&Command::Version).unwrap();
}

// ---------------------------------------------------------------------------------------
// The socket file
// ---------------------------------------------------------------------------------------

#[test]
fn socket_is_0600_in_a_created_directory_and_removed_on_shutdown() {
    let dir = TempDir::new("perms");
    let path = dir.path().join("run/masq/masqd.sock");
    let server = Server::bind(&path, None).unwrap().spawn(Mock::new()).unwrap();
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(path.parent().unwrap().is_dir());
    Client::connect(&path).unwrap().call(&Command::Version).unwrap();
    server.shutdown();
    assert!(!path.exists(), "the socket is removed on shutdown");
}

#[test]
fn socket_with_a_group_is_0660_and_owned_by_it() {
    // A group that is not the caller's own, when /etc/group has one.
    let own = {
        let probe = TempDir::new("gid-probe");
        std::fs::metadata(probe.path()).unwrap().gid()
    };
    let etc_group = std::fs::read_to_string("/etc/group").unwrap_or_default();
    let (name, gid) = etc_group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse::<u32>().ok()?))
        })
        .find(|(_, gid)| *gid != own)
        .unwrap_or_else(|| ("".into(), own));
    let dir = TempDir::new("group");
    let group = if name.is_empty() { gid.to_string() } else { name };
    let server = match Server::bind(dir.socket(), Some(&group)) {
        Ok(server) => server,
        // Not root and not a member: chown may be refused; the numeric form still works.
        Err(ServerError::Permissions { .. }) => Server::bind(dir.socket(), Some(&own.to_string())).unwrap(),
        Err(e) => panic!("{e}"),
    };
    let meta = std::fs::metadata(dir.socket()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert!(meta.gid() == gid || meta.gid() == own);
    drop(server);
    assert!(!dir.socket().exists(), "a server dropped before spawning removes its socket");

    let err = Server::bind(dir.socket(), Some("no-such-group-masq")).unwrap_err();
    assert!(matches!(err, ServerError::UnknownGroup { .. }), "{err}");
    assert!(!dir.socket().exists(), "an unknown group leaves nothing behind");
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_refused() {
    let dir = TempDir::new("stale");
    // A socket file whose server is gone.
    drop(UnixListener::bind(dir.socket()).unwrap());
    assert!(dir.socket().exists());
    let server = Server::bind(dir.socket(), None).unwrap().spawn(Mock::new()).unwrap();
    Client::connect(dir.socket()).unwrap().call(&Command::Version).unwrap();

    // A second server on the same path: refused, and the first keeps its socket.
    let err = Server::bind(dir.socket(), None).unwrap_err();
    assert!(matches!(err, ServerError::AlreadyRunning { .. }));
    assert!(err.to_string().contains("already running"), "{err}");
    Client::connect(dir.socket()).unwrap().call(&Command::Version).unwrap();
    server.shutdown();

    // Not a socket: never removed.
    std::fs::write(dir.socket(), "precious").unwrap();
    let err = Server::bind(dir.socket(), None).unwrap_err();
    assert!(matches!(err, ServerError::NotASocket { .. }), "{err}");
    assert_eq!(std::fs::read_to_string(dir.socket()).unwrap(), "precious");
}

#[test]
fn shutdown_waits_for_connected_clients() {
    let (_dir, server) = start("shutdown");
    let path = server.path().to_path_buf();
    let mut idle = Raw::connect(&path);
    assert!(idle.ask(r#"{"cmd": "version"}"#).outcome.is_ok());
    let started = Instant::now();
    server.shutdown();
    assert!(started.elapsed() < Duration::from_secs(2), "shutdown took {:?}", started.elapsed());
    assert!(idle.closed());
    assert!(!path.exists());
    let err = Client::connect(&path).unwrap_err();
    assert!(err.to_string().starts_with(&format!("cannot connect to {}: ", path.display())), "{err}");
}

#[test]
fn a_partial_line_then_a_complete_one_in_pieces() {
    let (_dir, server) = start("pieces");
    let mut raw = Raw::connect(server.path());
    for piece in [&b"{\"id\": 5,"[..], b" \"cmd\": \"time", b"outs.get\"}", b"\n"] {
        raw.send(piece);
        thread::sleep(Duration::from_millis(20));
    }
    let r = raw.response();
    assert_eq!(r.id, json!(5));
    let mut rest = Vec::new();
    raw.writer.shutdown(std::net::Shutdown::Write).unwrap();
    raw.reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "nothing more than one response per request");
}
