//! masqctl end to end: the built binary against the mock server.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command as Process, Output, Stdio};

use common::{start, TempDir};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn masqctl(socket: &Path, args: &[&str], stdin: &str) -> Run {
    let mut child = Process::new(env!("CARGO_BIN_EXE_masqctl"))
        .arg("-S")
        .arg(socket)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("masqctl runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let Output { status, stdout, stderr } = child.wait_with_output().unwrap();
    Run {
        code: status.code().expect("exited"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// Run a line of arguments; expect success.
fn ok(socket: &Path, line: &str) -> String {
    let run = masqctl(socket, &line.split_whitespace().collect::<Vec<_>>(), "");
    assert_eq!(run.code, 0, "masqctl {line}: {}", run.stderr);
    assert!(run.stderr.is_empty(), "masqctl {line}: {}", run.stderr);
    run.stdout
}

fn fails(socket: &Path, line: &str) -> Run {
    let run = masqctl(socket, &line.split_whitespace().collect::<Vec<_>>(), "");
    assert_ne!(run.code, 0, "masqctl {line} should fail");
    run
}

#[test]
fn the_iptables_examples_end_to_end() {
    let (_dir, server) = start("cli-rules");
    let s = server.path();

    assert_eq!(ok(s, "-t nat -A POSTROUTING -o wan -j MASQUERADE"), "");
    assert_eq!(ok(s, "-t nat -I PREROUTING 1 -i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80"), "");
    assert_eq!(ok(s, "-P FORWARD DROP"), "");

    let table = ok(s, "-t nat -L -n -v --line-numbers");
    assert!(table.starts_with("Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)\n"), "{table}");
    assert!(table.contains("num   pkts bytes target     prot opt in     out     source               destination\n"));
    assert!(
        table.contains(
            "1        0     0 DNAT       tcp  --  wan    *       0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:100.64.0.2:80\n"
        ),
        "{table}"
    );
    assert!(table.contains("1        0     0 MASQUERADE  all  --  *      wan     0.0.0.0/0            0.0.0.0/0\n"));

    let filter = ok(s, "-L FORWARD");
    assert_eq!(filter, "Chain FORWARD (policy DROP)\ntarget     prot opt source               destination\n");

    let specs = ok(s, "-t nat --list-rules POSTROUTING");
    assert_eq!(specs, "-P POSTROUTING ACCEPT\n-A POSTROUTING -o wan -j MASQUERADE\n");

    assert_eq!(ok(s, "-t nat -D POSTROUTING 1"), "");
    assert_eq!(ok(s, "-t nat --list-rules POSTROUTING"), "-P POSTROUTING ACCEPT\n");
    assert_eq!(ok(s, "-t nat -D PREROUTING -i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80"), "");

    ok(s, "-A INPUT -s 10.0.0.1 -j DROP");
    assert_eq!(ok(s, "-F"), "", "flush, table filter by default");
    assert!(!ok(s, "save").contains("10.0.0.1"));

    // --json prints the raw result.
    let json: serde_json::Value = serde_json::from_str(&ok(s, "-t nat -L --json")).unwrap();
    assert_eq!(json["table"], "nat");
    assert_eq!(json["chains"].as_array().unwrap().len(), 4);
}

#[test]
fn server_errors_exit_1_with_the_message() {
    let (_dir, server) = start("cli-errors");
    let s = server.path();
    let run = fails(s, "-t nat -D POSTROUTING 9");
    assert_eq!(run.code, 1);
    assert_eq!(run.stderr, "masqctl: no such rule in chain POSTROUTING\n");
    let run = fails(s, "-t mangle -L");
    assert_eq!((run.code, run.stderr.as_str()), (1, "masqctl: no table `mangle`\n"));
    let run = fails(s, "-A INPUT --bogus-option 1 -j DROP");
    assert_eq!((run.code, run.stderr.as_str()), (1, "masqctl: unknown option `--bogus-option`\n"));
    let run = fails(s, "-P FORWARD MAYBE");
    assert_eq!(run.code, 1);
}

#[test]
fn usage_errors_exit_2() {
    let (_dir, server) = start("cli-usage");
    let s = server.path();
    for line in ["", "-A", "-M -S 1 2", "-L -A INPUT", "frobnicate", "-N chain", "stats --nope"] {
        let run = fails(s, line);
        assert_eq!(run.code, 2, "masqctl {line}: {}", run.stderr);
        assert!(run.stderr.starts_with("masqctl: "), "{}", run.stderr);
        assert!(run.stdout.is_empty());
    }
    let help = ok(s, "--help");
    assert!(help.contains("masqctl -M -S TCP TCPFIN UDP"));
}

#[test]
fn translation_table_and_timeouts() {
    let (_dir, server) = start("cli-masq");
    let s = server.path();
    let table = ok(s, "-M -L");
    let mut lines = table.lines();
    assert_eq!(lines.next(), Some("IP masquerading entries"));
    assert_eq!(
        lines.next(),
        Some("prot inside                outside               remote                state        expires")
    );
    assert_eq!(
        lines.next(),
        Some("tcp  100.64.0.2:40000      203.0.113.1:61000     198.51.100.7:443      ESTABLISHED  2:04:00")
    );
    assert_eq!(table.lines().count(), 2 + common::SESSIONS);
    let json: serde_json::Value = serde_json::from_str(&ok(s, "-M -L --json")).unwrap();
    assert_eq!(json["sessions"].as_array().unwrap().len(), common::SESSIONS);
    assert!(ok(s, "-M -L -v").lines().nth(3).unwrap().ends_with("       1"), "worker column");

    assert_eq!(ok(s, "-M -S 7200 10 160"), "");
    assert_eq!(ok(s, "timeouts"), "tcp 7200  tcpfin 10  udp 160  icmp 60  other 600  (seconds)\n");
    assert_eq!(ok(s, "-M -S 0 0 0 --icmp 30"), "");
    assert_eq!(ok(s, "timeouts"), "tcp 7200  tcpfin 10  udp 160  icmp 30  other 600  (seconds)\n");

    assert_eq!(ok(s, "sessions count --proto udp"), "10\n");
    let udp = ok(s, "sessions --proto udp --remote-port 53");
    assert_eq!(udp.lines().count(), 2 + 10);
    assert_eq!(ok(s, "sessions flush --proto icmp"), "flushed 5\n");
    assert_eq!(ok(s, "sessions count"), "20\n");
}

#[test]
fn save_and_restore_through_files_and_pipes() {
    let (_dir, server) = start("cli-save");
    let s = server.path();
    ok(s, "-t nat -A POSTROUTING -o wan -j MASQUERADE");
    let saved = ok(s, "save");
    assert!(saved.contains("*nat\n") && saved.contains("-A POSTROUTING -o wan -j MASQUERADE\n"));
    assert_eq!(
        ok(s, "save -t nat"),
        saved.replace("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", "")
    );
    ok(s, "-t nat -F");

    // masqctl restore < rules.v4
    let run = masqctl(s, &["restore"], &saved);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""));
    assert_eq!(ok(s, "save"), saved);

    // From a file; a bad file changes nothing and says which line.
    let dir = TempDir::new("cli-files");
    let bad = dir.path().join("bad.v4");
    std::fs::write(&bad, "*nat\n-A POSTROUTING -o lte -j MASQUERADE\nBOGUS\nCOMMIT\n").unwrap();
    let run = masqctl(s, &["restore", bad.to_str().unwrap()], "");
    assert_eq!((run.code, run.stderr.as_str()), (1, "masqctl: line 3: not understood\n"));
    assert_eq!(ok(s, "save"), saved);
    let run = masqctl(s, &["restore", dir.path().join("missing.v4").to_str().unwrap()], "");
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("masqctl: cannot read "), "{}", run.stderr);
}

#[test]
fn stats_version_config_and_raw_json() {
    let (_dir, server) = start("cli-misc");
    let s = server.path();
    let stats = ok(s, "stats");
    assert!(stats.contains("Sessions: 25 active, 40 created, 15 expired"), "{stats}");
    assert!(stats.contains("no_route"));
    assert!(stats.contains("p99.9 15.0"));
    assert!(stats.contains("Counters (all workers):") && stats.contains("nat_hairpinned"), "{stats}");
    let json: serde_json::Value = serde_json::from_str(&ok(s, "stats --json")).unwrap();
    assert_eq!(json["latency_us"]["p99_9"], 15.0);
    assert_eq!(json["workers"][0]["runtime"][1]["stage"], "nat-lookup");
    let runtime = ok(s, "stats --runtime");
    assert!(runtime.contains("worker 0 (lcore 2): 990 packets in"), "{runtime}");
    let lookup = runtime.lines().find(|l| l.trim_start().starts_with("nat-lookup")).unwrap();
    assert_eq!(lookup.split_whitespace().collect::<Vec<_>>(), ["nat-lookup", "40", "980", "24.5", "100.0", "0.0", "0"]);

    let version = ok(s, "version");
    assert!(version.starts_with("masqctl ") && version.contains("\nmasqd ") && version.contains("control protocol 1"));
    assert_eq!(ok(s, "-V"), version);
    assert!(ok(s, "config").contains("\"socket\""));

    let run = masqctl(s, &["json", r#"{"id": 7, "cmd": "timeouts.set", "args": {"udp": 120}}"#], "");
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.starts_with("{\"id\":7,\"ok\":true,\"result\":{") && run.stdout.ends_with("}}\n"),
        "{}",
        run.stdout
    );
    let response: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        response["result"],
        serde_json::json!({"tcp": 7440, "tcpfin": 240, "udp": 120, "icmp": 60, "other": 600})
    );
    let run = masqctl(s, &["json", r#"{"id": 8, "cmd": "nope"}"#], "");
    assert_eq!(run.code, 1, "an error response is a failure");
    assert!(run.stdout.starts_with("{\"id\":8,\"ok\":false,\"error\":{\"code\":\"unknown_command\""), "{}", run.stdout);
}

#[test]
fn masqd_not_running() {
    let dir = TempDir::new("cli-absent");
    let socket = dir.socket();
    let run = masqctl(&socket, &["-t", "nat", "-L"], "");
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        format!(
            "masqctl: cannot connect to {}: No such file or directory — is masqd running? (set -S/--socket)\n",
            socket.display()
        )
    );
    assert!(run.stdout.is_empty());

    // Without -S, it looks in the default place and says so.
    let output = Process::new(env!("CARGO_BIN_EXE_masqctl")).args(["-M", "-L"]).output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    if !Path::new(control::protocol::DEFAULT_SOCKET).exists() {
        assert_eq!(output.status.code(), Some(1));
        assert_eq!(
            stderr,
            "masqctl: cannot connect to /run/masq/masqd.sock: No such file or directory — is masqd running? (set -S/--socket)\n"
        );
    }
}

#[test]
fn lookup_answers_both_ways() {
    let (_dir, server) = start("cli-lookup");
    let s = server.path();
    // Session 12 of the mock: UDP 100.64.0.4:40012 -> 203.0.113.1:61012.
    let out = ok(s, "lookup --outside 203.0.113.1:61012 --proto udp");
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("source        inside"), "{out}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        row[..6],
        ["session", "100.64.0.4:40012", "203.0.113.1:61012", "udp", "198.51.100.7:53", "UDP"],
        "{out}"
    );
    assert_eq!(lines.next(), None);
    assert_eq!(ok(s, "lookup --outside 203.0.113.1:61012 --proto tcp"), "no match\n");
    // A subscriber: its 5 sessions (i = 2, 7, 12, 17, 22).
    assert_eq!(ok(s, "lookup --inside 100.64.0.4").lines().count(), 1 + 5);
    let json: serde_json::Value = serde_json::from_str(&ok(s, "--json lookup --inside 100.64.0.4")).unwrap();
    assert_eq!(json["matches"].as_array().unwrap().len(), 5);
    // Usage errors exit 2 and name the problem.
    for bad in ["lookup", "lookup --outside 203.0.113.1:port", "lookup --inside 100.64.0.4 --outside 203.0.113.1"] {
        let run = masqctl(s, &bad.split_whitespace().collect::<Vec<_>>(), "");
        assert_eq!(run.code, 2, "{bad}: {}", run.stderr);
        assert!(!run.stderr.is_empty());
    }
}

#[test]
fn version_without_masqd_still_names_masqctl_and_says_masqd_is_not_there() {
    let dir = TempDir::new("cli-version");
    let nobody = dir.path().join("nobody.sock");
    for flag in ["--version", "-V", "version"] {
        let run = masqctl(&nobody, &[flag], "");
        assert_eq!(run.code, 0, "{flag}: {}", run.stderr);
        assert_eq!(run.stdout, format!("masqctl {}\n", env!("CARGO_PKG_VERSION")), "{flag}");
        assert!(run.stderr.contains("is masqd running?") && run.stderr.contains("nobody.sock"), "{}", run.stderr);
    }
    // With --json the answer is masqd's, so no masqd is an error.
    assert_eq!(masqctl(&nobody, &["--json", "version"], "").code, 1);
}
