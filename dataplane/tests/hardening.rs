//! Hardening (issue 11) against a real masqd: what an attacker on a link or a careless
//! operator can do to it. Hosts in network namespaces behind veth pairs (`net_af_packet`);
//! the namespaces and links are created here and removed on drop, traffic never leaves
//! them. Needs root (CI runs as root; elsewhere each test skips).

mod common;

use std::time::Duration;

use common::*;

const READY: Duration = Duration::from_secs(20);
const STOP: Duration = Duration::from_secs(10);

/// Run `dataplane/tests/tools/peer.py` in a namespace: (exit code, trimmed stdout).
fn peer(topo: &LanWan, ns: &str, limit: Duration, args: &[&str]) -> (i32, String) {
    let script = workspace_root().join("dataplane/tests/tools/peer.py").display().to_string();
    let mut argv = vec!["python3", script.as_str()];
    argv.extend_from_slice(args);
    let out = topo.net.exec(ns, limit, &argv);
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Item 1: 20 000 ARP requests for masqd's inside address, each from a different spoofed
/// sender, then the LAN host (which masqd has never heard of) pings through: its reply
/// needs the host's MAC, which masqd still learns.
#[test]
fn a_flood_of_spoofed_arp_senders_leaves_room_for_a_real_host() {
    if !require_root_and_tools() {
        return;
    }
    let _serial = af_packet_serial();
    let topo = LanWan::new();
    let mut masqd = Masqd::start(&topo.masqd_config());
    masqd.expect_ready(READY);
    let (rc, sent) = peer(
        &topo,
        &topo.lan_ns,
        Duration::from_secs(60),
        &["arp-flood", "eth0", "20000", "100.64.100.0", addr::LAN_ROUTER],
    );
    assert_eq!((rc, sent.as_str()), (0, "20000"), "the flood was sent");
    std::thread::sleep(Duration::from_millis(300));
    assert!(topo.ping_from_lan(addr::SERVER, 3), "the LAN host cannot ping through after the flood:\n{}", masqd.log());
    let stopped = masqd.stop(STOP);
    stopped.assert_clean();
    let replies = stopped.expect_counter("worker:0 arp_replies_sent");
    let limited = stopped.expect_counter("worker:0 arp_learn_limited");
    let learned = stopped.expect_counter("worker:0 arp_learned");
    // af_packet may lose some of the flood; most of it arrives and is answered.
    assert!(replies > 10_000, "flood answered: {replies}\n{}", stopped.log);
    assert!(limited > 10_000, "flood not learned: {limited}\n{}", stopped.log);
    assert!(learned < 200, "learned {learned}\n{}", stopped.log);
    assert_eq!(stopped.expect_counter("worker:0 neighbor_table_full"), 0);
}
