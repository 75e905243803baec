//! Address-only NAT end to end: GRE (47) and ESP (50) packets sent over raw sockets by
//! three inside hosts (100.64.0.2, .3, .4 in the LAN namespace) to a server namespace
//! (203.0.113.254) through a real masqd (on `net_af_packet` veths) with an SNAT pool of
//! two addresses (203.0.113.1-2). The server answers every packet with the source
//! address it saw; each host checks the answer came back to it. The third host to the
//! same server over GRE finds both addresses taken (`addr_only_in_use`), while its ESP
//! goes through. With one and two workers (the second: the flow lives with the worker
//! of (remote, protocol), whichever subscriber it comes from).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const HOSTS: [&str; 3] = ["100.64.0.2", "100.64.0.3", "100.64.0.4"];
const POOL: [&str; 2] = ["203.0.113.1", "203.0.113.2"];
const SERVER: &str = "203.0.113.254";
const PY: &str = "/usr/bin/python3";

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -s 100.64.0.0/10 -j SNAT --to-source 203.0.113.1-203.0.113.2
COMMIT
";

fn tool() -> String {
    workspace_root().join("dataplane/tests/tools/rawproto.py").display().to_string()
}

/// masqctl (`$MASQCTL`, else the release build next to masqd).
fn masqctl(socket: &Path, args: &[&str]) -> String {
    let bin = std::env::var_os("MASQCTL")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("release").join("masqctl"));
    let out = std::process::Command::new(&bin)
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    assert!(out.status.success(), "masqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `rawproto.py ask` from `src`: the server's answer ("seen <address> <payload>"), or
/// `None` when none came.
fn ask(topo: &LanWan, proto: &str, src: &str, payload: &str) -> Option<String> {
    let tool = tool();
    let o = topo.lan(Duration::from_secs(10), &[PY, &tool, "ask", proto, src, SERVER, payload, "2"]);
    o.status.success().then(|| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn gre_and_esp_from_three_hosts(cores: &[u32]) {
    if !require_root_and_tools() {
        return;
    }
    let _serial = af_packet_serial();
    let mut topo = LanWan::new();
    for h in &HOSTS[1..] {
        topo.net.add_addr(&topo.lan_ns, "eth0", &format!("{h}/10"));
    }
    let cfg = topo.masqd_config().rules(RULES).cores(cores);
    let mut masqd = Masqd::start(&cfg);
    masqd.expect_ready(Duration::from_secs(20));
    let files = TempDir::new("e2e-other-protocols");
    let srv = topo.srv_ns.clone();
    let tool = tool();
    for proto in ["47", "50"] {
        let log = files.join(format!("echo-{proto}.log"));
        topo.net.spawn(&srv, Duration::from_secs(60), &[PY, &tool, "echo", proto, SERVER, "50"], Some(&log));
    }
    // Let the echo sockets open.
    std::thread::sleep(Duration::from_millis(500));

    // GRE from the first two hosts: each seen at the WAN with a pool address of its
    // own, each answer delivered back to its sender.
    let mut seen = Vec::new();
    for (i, h) in HOSTS[..2].iter().enumerate() {
        let payload = format!("gre-from-{i}");
        let answer = ask(&topo, "47", h, &payload).unwrap_or_else(|| panic!("no GRE answer for {h}\n{}", masqd.log()));
        let words: Vec<&str> = answer.split(' ').collect();
        assert_eq!((words[0], words[2]), ("seen", payload.as_str()), "{answer}");
        assert!(POOL.contains(&words[1]), "{h} seen as {}", words[1]);
        seen.push(words[1].to_string());
        // Again: the same session, the same address.
        let again = ask(&topo, "47", h, &payload).expect("a second GRE answer");
        assert_eq!(again, answer);
    }
    assert_ne!(seen[0], seen[1], "one inside host per (external address, remote, protocol)");
    // The third host: both addresses carry GRE to this server. Refused.
    assert_eq!(ask(&topo, "47", HOSTS[2], "gre-from-2"), None, "{}", masqd.log());
    // ... but ESP is another protocol.
    let answer = ask(&topo, "50", HOSTS[2], "esp-from-2").expect("an ESP answer");
    let words: Vec<&str> = answer.split(' ').collect();
    assert!(POOL.contains(&words[1]) && words[2] == "esp-from-2", "{answer}");

    // Listed with their protocol numbers.
    let socket = masqd.socket().to_path_buf();
    let listing = masqctl(&socket, &["-M", "-L", "-n"]);
    assert_eq!(listing.lines().filter(|l| l.starts_with("47 ")).count(), 2, "{listing}");
    assert_eq!(listing.lines().filter(|l| l.starts_with("50 ")).count(), 1, "{listing}");
    let json = masqctl(&socket, &["json", r#"{"id":1,"cmd":"sessions.list","args":{"protocol":"gre"}}"#]);
    assert_eq!(json.matches(r#""proto":"47""#).count(), 2, "{json}");
    let stats = masqctl(&socket, &["json", r#"{"id":2,"cmd":"stats.get"}"#]);
    assert!(stats.contains(r#""other":{"active":3,"created":3,"expired":0}"#), "{stats}");

    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    assert!(drop_count(&stopped.log, "addr_only_in_use").unwrap_or(0) >= 1, "{}", stopped.log);
    assert_eq!(drop_count(&stopped.log, "l4_unsupported").unwrap_or(0), 0, "{}", stopped.log);
}

#[test]
fn gre_and_esp_1w() {
    gre_and_esp_from_three_hosts(&[1]);
}

#[test]
fn gre_and_esp_2w() {
    gre_and_esp_from_three_hosts(&[0, 1]);
}
