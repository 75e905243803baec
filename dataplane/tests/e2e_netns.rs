//! End to end: real hosts in network namespaces talk through a real masqd attached to
//! veth pairs with `net_af_packet`. The namespaces and links are created here and removed
//! on drop; traffic never leaves them. Needs root (CI runs as root; elsewhere it skips).

mod common;

use std::time::Duration;

use common::*;

#[test]
fn lan_host_pings_the_server_through_masqd() {
    if !require_root_and_tools() {
        return;
    }
    let _serial = af_packet_serial();
    let topo = LanWan::new();
    let mut masqd = Masqd::start(&topo.masqd_config());
    masqd.expect_ready(Duration::from_secs(20));
    assert!(topo.ping_from_lan(addr::SERVER, 3), "ping through masqd failed:\n{}", masqd.log());
    // The router answers pings to its own inside address too.
    assert!(topo.ping_from_lan(addr::LAN_ROUTER, 1), "ping of the router failed:\n{}", masqd.log());
    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    let log = &stopped.log;
    assert!(stopped.expect_counter("worker:0 forwarded") >= 6, "3 requests + 3 replies forwarded:\n{log}");
    assert!(stopped.expect_counter("worker:0 arp_replies_sent") >= 1, "hosts resolved the router:\n{log}");
    assert!(stopped.expect_counter("worker:0 arp_learned") >= 1, "router resolved a host:\n{log}");
}

#[test]
fn traceroute_style_ttl_one_gets_time_exceeded_from_the_router() {
    if !require_root_and_tools() {
        return;
    }
    let _serial = af_packet_serial();
    let topo = LanWan::new();
    let mut masqd = Masqd::start(&topo.masqd_config());
    masqd.expect_ready(Duration::from_secs(20));
    // ping with TTL 1: the router answers "time to live exceeded", so ping fails but
    // prints the router's address.
    let out = topo.lan(Duration::from_secs(10), &["ping", "-n", "-c", "1", "-t", "1", "-W", "2", addr::SERVER]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(
        text.contains(&format!("From {}", addr::LAN_ROUTER)) && text.to_lowercase().contains("time to live exceeded"),
        "expected a time-exceeded from the router, got:\n{text}\n{}",
        masqd.log()
    );
    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    assert!(drop_count(&stopped.log, "ttl_exceeded").unwrap_or(0) >= 1);
}
