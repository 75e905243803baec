//! End to end through masquerade: real programs in network namespaces talk through a real
//! masqd (on `net_af_packet` veths) running the rules below. The LAN host namespace holds
//! two subscriber addresses (100.64.0.2 and .3); the server namespace plays the Internet.
//! Every check looks at what the far side *saw*: the server must only ever see masqd's
//! external address. Namespaces, links and processes are removed on drop.
//!
//! Every test runs twice: with one worker, and with two (`cores = [0, 1]`, af_packet
//! with two queue pairs). With two, 100.64.0.2 belongs to worker 0 and 100.64.0.3 to
//! worker 1, the kernel's fanout spreads packets over both queues regardless, and each
//! worker hands what it does not own to the other: every behaviour must still hold.

mod common;

use std::path::PathBuf;
use std::sync::MutexGuard;
use std::time::Duration;

use common::*;

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80
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

struct Nat {
    topo: LanWan,
    masqd: Option<Masqd>,
    _serial: MutexGuard<'static, ()>,
}

impl Nat {
    fn start(cores: &[u32]) -> Option<Nat> {
        if !require_root_and_tools() {
            return None;
        }
        let serial = af_packet_serial();
        let topo = LanWan::new();
        topo.net.add_addr(&topo.lan_ns, "eth0", &format!("{HOST_B}/10"));
        let mut masqd = Masqd::start(&topo.masqd_config().rules(RULES).cores(cores));
        masqd.expect_ready(Duration::from_secs(20));
        Some(Nat { topo, masqd: Some(masqd), _serial: serial })
    }

    fn log(&self) -> String {
        self.masqd.as_ref().map(Masqd::log).unwrap_or_default()
    }

    /// Run peer.py on the LAN host; (exit code, trimmed stdout).
    fn lan(&self, args: &[&str]) -> (i32, String) {
        let p = peer();
        let mut argv = vec!["python3", p.as_str()];
        argv.extend_from_slice(args);
        let out = self.topo.lan(STEP, &argv);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn srv(&self, args: &[&str]) -> (i32, String) {
        let p = peer();
        let mut argv = vec!["python3", p.as_str()];
        argv.extend_from_slice(args);
        let out = self.topo.srv(STEP, &argv);
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Start a long-running peer server in a namespace and wait (bounded) until it has bound.
    fn daemon(&mut self, ns: &str, args: &[&str], log: Option<&std::path::Path>) {
        let p = peer();
        let mut argv = vec!["python3", p.as_str()];
        argv.extend_from_slice(args);
        self.topo.net.spawn(ns, Duration::from_secs(60), &argv, log);
        let (proto, port) = peer_binds(args).expect("a peer.py server command");
        self.topo.net.wait_listening(ns, proto, port);
    }

    fn finish(mut self) -> Stopped {
        let stopped = self.masqd.take().expect("running").stop(Duration::from_secs(10));
        stopped.assert_clean();
        stopped
    }
}

fn udp_is_masqueraded_keeping_the_source_port_and_replies_come_back(cores: &[u32]) {
    let Some(mut t) = Nat::start(cores) else { return };
    let srv = t.topo.srv_ns.clone();
    t.daemon(&srv, &["udp-echo", "0.0.0.0", "7"], None);
    // A source port is kept when it is free and in the owning worker's slice of the port
    // range (with two workers, 100.64.0.2's worker 0 owns 1024..=33279).
    let (rc, seen) = t.lan(&["udp-ask", HOST_A, "30000", SERVER, "7"]);
    assert_eq!((rc, seen.as_str()), (0, "203.0.113.1:30000"), "server saw:\n{}", t.log());
    let stopped = t.finish();
    assert!(stopped.expect_counter("worker:0 nat_sessions_created") >= 1, "{}", stopped.log);
}

fn two_subscribers_on_the_same_source_port_get_different_external_ports(cores: &[u32]) {
    let Some(mut t) = Nat::start(cores) else { return };
    let srv = t.topo.srv_ns.clone();
    t.daemon(&srv, &["udp-echo", "0.0.0.0", "7"], None);
    let (rc_a, seen_a) = t.lan(&["udp-ask", HOST_A, "5000", SERVER, "7"]);
    let (rc_b, seen_b) = t.lan(&["udp-ask", HOST_B, "5000", SERVER, "7"]);
    assert_eq!((rc_a, rc_b), (0, 0), "both get replies: {seen_a} / {seen_b}\n{}", t.log());
    let (addr_a, port_a) = seen_a.split_once(':').expect("ip:port");
    let (addr_b, port_b) = seen_b.split_once(':').expect("ip:port");
    assert_eq!((addr_a, addr_b), (EXTERNAL, EXTERNAL), "the server sees only the external address");
    assert_eq!(port_a, "5000", "the first keeps its port");
    assert_ne!(port_a, port_b, "the second gets another external port");
    let port_b: u16 = port_b.parse().unwrap();
    assert!(port_b >= 1024, "non-privileged source maps to 1024-65535, got {port_b}");
    t.finish();
}

fn ping_and_a_tcp_download_with_curl_cross_the_nat(cores: &[u32]) {
    let Some(mut t) = Nat::start(cores) else { return };
    let dir = TempDir::new("e2e-http");
    let blob: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(dir.join("blob"), &blob).unwrap();
    let srv = t.topo.srv_ns.clone();
    let d = dir.path().display().to_string();
    t.topo.net.spawn(
        &srv,
        Duration::from_secs(60),
        &["python3", "-m", "http.server", "8000", "--bind", SERVER, "--directory", &d],
        None,
    );
    t.daemon(&srv, &["tcp-echo-peer", "0.0.0.0", "9000"], None);
    t.topo.net.wait_listening(&srv, "tcp", "8000");
    assert!(t.topo.ping_from_lan(SERVER, 2), "ping through NAT failed:\n{}", t.log());
    let out = t.topo.lan(
        Duration::from_secs(20),
        &[
            "curl",
            "-sS",
            "--max-time",
            "15",
            // python's server may still be starting on a loaded machine: a refused
            // connection is tried again (a NAT that drops the flow still fails).
            "--retry",
            "10",
            "--retry-connrefused",
            "--retry-delay",
            "1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_download}",
            &format!("http://{SERVER}:8000/blob"),
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.trim(), "200 1048576", "curl: {text} {}\n{}", String::from_utf8_lossy(&out.stderr), t.log());
    let (rc, seen) = t.lan(&["tcp-ask", SERVER, "9000"]);
    assert_eq!(rc, 0);
    assert!(seen.starts_with("203.0.113.1:"), "the TCP server saw {seen}");
    t.finish();
}

fn dnat_forwards_a_port_into_the_lan_and_replies_go_back(cores: &[u32]) {
    let Some(mut t) = Nat::start(cores) else { return };
    let lan = t.topo.lan_ns.clone();
    t.daemon(&lan, &["tcp-echo-peer", HOST_A, "80"], None);
    let (rc, seen) = t.srv(&["tcp-ask", EXTERNAL, "8080"]);
    assert_eq!(rc, 0, "connect to the forwarded port:\n{}", t.log());
    assert!(seen.starts_with("203.0.113.254:"), "the LAN server sees the real client, got {seen}");
    t.finish();
}

/// RFC 4787 REQ-9a (hairpinning with endpoint-independent mapping): A, which already
/// has a mapping for its socket, sends from that socket to B's external endpoint; B must
/// see A's mapping — the endpoint the server saw — not some other translation of A. With
/// two workers A and B are subscribers of different workers (asserted below), so the
/// datagram's two halves are translated on two workers.
fn hairpinning_reaches_another_subscriber_through_its_external_address(cores: &[u32]) {
    if cores.len() == 2 {
        use dataplane::nat::steer::subscriber_owner;
        let owner = |a: &str| subscriber_owner(a.parse().unwrap(), 2);
        assert_ne!(owner(HOST_A), owner(HOST_B), "A and B must live on different workers");
    }
    let Some(mut t) = Nat::start(cores) else { return };
    let srv = t.topo.srv_ns.clone();
    t.daemon(&srv, &["udp-echo", "0.0.0.0", "7"], None);
    // B creates its mapping by talking to the server; so does A, from the socket it then
    // uses to reach B.
    let (rc, b_ext) = t.lan(&["udp-ask", HOST_B, "6000", SERVER, "7"]);
    assert_eq!(rc, 0, "{}", t.log());
    let (rc, a_ext) = t.lan(&["udp-ask", HOST_A, "41010", SERVER, "7"]);
    assert_eq!(rc, 0, "{}", t.log());
    assert!(a_ext.starts_with("203.0.113.1:") && b_ext.starts_with("203.0.113.1:"), "{a_ext} {b_ext}");
    let (_, b_port) = b_ext.split_once(':').unwrap();
    // B listens on the same socket address; A sends to B's *external* address and port,
    // and B's answer goes back to A's external endpoint, hairpinned the other way.
    let dir = TempDir::new("e2e-hairpin");
    let log: PathBuf = dir.join("listen.log");
    let lan = t.topo.lan_ns.clone();
    t.daemon(&lan, &["udp-listen", HOST_B, "6000", "6"], Some(&log));
    let (rc, answer) = t.lan(&["udp-ask", HOST_A, "41010", EXTERNAL, b_port]);
    assert_eq!((rc, answer.as_str()), (0, "ok"), "A reached B via {b_ext}:\n{}", t.log());
    let heard = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(heard.trim(), format!("{a_ext} hello"), "B sees A's mapping, the one the server saw");
    let stopped = t.finish();
    let hairpinned: u64 = (0..cores.len()).map(|w| stopped.expect_counter(&format!("worker:{w} nat_hairpinned"))).sum();
    assert_eq!(hairpinned, 2, "A to B and B's answer, each counted once:\n{}", stopped.log);
}

fn icmp_port_unreachable_comes_back_to_the_right_host(cores: &[u32]) {
    let Some(t) = Nat::start(cores) else { return };
    // Nothing listens on port 9 at the server: its kernel answers ICMP port unreachable,
    // which masqd must translate back (outer and quoted headers) to 100.64.0.3:41000.
    let (rc, out) = t.lan(&["udp-ask", HOST_B, "41000", SERVER, "9"]);
    assert_eq!((rc, out.as_str()), (3, "refused"), "{}", t.log());
    t.finish();
}

/// One `#[test]` per test function and worker count.
macro_rules! one_and_two_workers {
    ($($f:ident: $one:ident, $two:ident;)*) => {$(
        #[test]
        fn $one() {
            $f(&[1]);
        }
        #[test]
        fn $two() {
            $f(&[0, 1]);
        }
    )*};
}

one_and_two_workers! {
    udp_is_masqueraded_keeping_the_source_port_and_replies_come_back: udp_masquerade_1w, udp_masquerade_2w;
    two_subscribers_on_the_same_source_port_get_different_external_ports: same_source_port_1w, same_source_port_2w;
    ping_and_a_tcp_download_with_curl_cross_the_nat: ping_and_curl_1w, ping_and_curl_2w;
    dnat_forwards_a_port_into_the_lan_and_replies_go_back: dnat_port_forward_1w, dnat_port_forward_2w;
    hairpinning_reaches_another_subscriber_through_its_external_address: hairpinning_1w, hairpinning_2w;
    icmp_port_unreachable_comes_back_to_the_right_host: icmp_port_unreachable_1w, icmp_port_unreachable_2w;
}
