//! Smoke test on `net_null`: the null PMD hands the worker an endless stream of zeroed
//! frames and swallows whatever is sent. masqd must run, forward nothing harmful (zeroed
//! frames are not addressed to it), and shut down cleanly with every mbuf back.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn masqd_on_net_null_runs_and_shuts_down_cleanly() {
    let cfg = MasqdConfig::new().inside("lan", "net_null0", "100.64.0.1/10").outside(
        "wan",
        "net_null1",
        "203.0.113.1/24",
        Some("203.0.113.254"),
    );
    let mut masqd = Masqd::start(&cfg);
    masqd.expect_ready(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(500));
    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    let rx = stopped.expect_counter("worker:0 rx_packets");
    assert!(rx > 1000, "the worker polled: {rx} frames");
    assert_eq!(stopped.expect_counter("worker:0 forwarded"), 0);
    assert_eq!(stopped.expect_counter("worker:0 tx_packets"), 0);
    assert_eq!(drop_count(&stopped.log, "eth_not_for_us"), Some(rx), "every zeroed frame dropped by name");
}

#[test]
fn bad_config_fails_before_eal_with_one_line_naming_the_field() {
    let cfg = MasqdConfig::new().inside("lan", "net_null0", "100.64.0.1/10").outside(
        "wan",
        "net_bogus0",
        "203.0.113.1/24",
        None,
    );
    let stopped = Masqd::run_to_exit(&cfg.to_toml(), &[], Duration::from_secs(10));
    assert_eq!(stopped.status.code(), Some(2), "{}", stopped.log);
    let lines: Vec<&str> = stopped.log.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {}", stopped.log);
    assert!(lines[0].contains("port[1].device") && lines[0].contains("net_bogus0"), "{}", lines[0]);
    assert!(!stopped.log.contains("EAL"), "EAL must not start");
}

#[test]
fn bad_rules_file_fails_before_eal_naming_file_line_and_expectation() {
    let cfg = MasqdConfig::new().inside("lan", "net_null0", "100.64.0.1/10").outside(
        "wan",
        "net_null1",
        "203.0.113.1/24",
        None,
    );
    let rules = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan -j SANT\nCOMMIT\n";
    let masqd = Masqd::start_text(&masqd_path(), &cfg.to_toml(), Some(rules), &[]);
    let stopped = masqd.wait_exit(Duration::from_secs(10));
    assert_eq!(stopped.status.code(), Some(2), "{}", stopped.log);
    let line = stopped.log.trim();
    assert!(!line.contains('\n'), "one line: {line}");
    assert!(line.contains("rules.v4") && line.contains("line 3") && line.contains("SANT"), "{line}");
    assert!(line.contains("MASQUERADE"), "says what was expected: {line}");
    assert!(!stopped.log.contains("EAL"), "EAL must not start");
}
