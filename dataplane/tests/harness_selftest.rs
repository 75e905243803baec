//! Tests of the integration-test harness itself (`tests/common`): pcap round trips, the
//! report format, config generation, the masqd runner (against a fake masqd script) and,
//! as root, the network-namespace guard. No real masqd and no DPDK needed. (The frame
//! builders and parsers are `dataplane::testkit`'s, tested at the foot of its files.)

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

const A: Mac = [2, 0, 0, 0, 1, 2];
const B: Mac = [2, 0, 0, 0, 1, 1];

fn lan() -> Ipv4Addr {
    ip4("100.64.0.2")
}
fn srv() -> Ipv4Addr {
    ip4("203.0.113.254")
}

#[test]
fn pcap_round_trip() {
    let dir = TempDir::new("selftest");
    let frames = vec![
        udp_frame(A, B, lan(), srv(), 1000, 53, 64, b"hello"),
        arp_request(A, lan(), ip4("100.64.0.1")),
        pad_to_min(icmp_echo_frame(A, B, lan(), srv(), 64, 7, 1, b"ping")),
    ];
    let path = dir.join("x.pcap");
    write_pcap(&path, &frames);
    assert_eq!(read_pcap(&path), frames);
    write_pcap::<Vec<u8>>(&path, &[]);
    assert!(read_pcap(&path).is_empty());
}

const REPORT: &str = "\
EAL: Detected CPU lcores: 2
masqd: ready (2 ports, 1 worker)
port:lan rx_packets 5
port:lan tx_packets 4
worker:0 rx_packets 9
worker:0 tx_packets 8
drop ipv4_bad_checksum 1
drop no_route 0
mempool in_use 0
masqd: clean shutdown
";

#[test]
fn report_parsing() {
    assert_eq!(log_counter(REPORT, "port:lan rx_packets"), Some(5));
    assert_eq!(log_counter(REPORT, "worker:0  tx_packets"), Some(8));
    assert_eq!(log_counter(REPORT, "drop ipv4_bad_checksum"), Some(1));
    assert_eq!(drop_count(REPORT, "no_route"), Some(0));
    assert_eq!(drop_count(REPORT, "no_such_reason"), None);
    assert_eq!(log_counter(REPORT, "mempool in_use"), Some(0));
    assert_eq!(log_counter(REPORT, "port:wan rx_packets"), None);
    assert_eq!(report_counters(REPORT).len(), 7);
    assert_eq!(shutdown_verdict(REPORT), Some(Ok(())));

    let leak = format!("{REPORT}drop no_route 3\nmempool in_use 12\nmasqd: LEAK 12 mbufs\n");
    assert_eq!(drop_count(&leak, "no_route"), Some(3), "last value wins");
    assert_eq!(shutdown_verdict(&leak), Some(Err(12)));
    assert_eq!(shutdown_verdict("EAL: oops\n"), None);
    // Lines that only look similar are not counters.
    let noise = "EAL: Detected 2 lcores\nworker:x rx 1\nport: rx 1\ndrop a b\n";
    assert!(report_counters(noise).is_empty());

    assert!(is_ready_line("masqd: ready (2 ports, 1 worker)"));
    assert!(is_ready_line("READY"));
    assert!(!is_ready_line("masqd: not ready yet"));
    assert!(!is_ready_line("already started"));
}

#[test]
fn eal_args_modes_and_unique_prefixes() {
    let a = eal_mem_args_for(false);
    let b = eal_mem_args_for(false);
    assert_eq!(&a[..3], ["--no-huge", "-m", "512"]);
    assert!(a.contains(&"--no-pci".to_string()));
    let (pa, pb) = (file_prefix_of(&a).unwrap(), file_prefix_of(&b).unwrap());
    assert!(pa.starts_with(&format!("masqtest-{}-", std::process::id())), "{pa}");
    assert_ne!(pa, pb);
    let h = eal_mem_args_for(true);
    assert!(!h.contains(&"--no-huge".to_string()));
    assert_eq!(&h[..3], ["-m", "512", "--huge-unlink"]);
    assert_eq!(file_prefix_of(&["--file-prefix=x".to_string()]), Some("x".to_string()));
}

fn example_config() -> MasqdConfig {
    MasqdConfig::new()
        .inside("lan", "net_af_packet0,iface=veth-lan", "100.64.0.1/10")
        .outside("wan", "net_af_packet1,iface=veth-wan", "203.0.113.1/24", Some("203.0.113.254"))
        .neighbor("wan", "203.0.113.254", "02:00:00:00:02:01")
        .cores(&[1])
}

#[test]
fn config_is_toml_that_masqd_accepts() {
    let cfg = example_config().extra_toml("[timeouts]\nudp = 160");
    let text = cfg.to_toml();
    let v: toml::Value = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(v["port"][1]["gateway"].as_str(), Some("203.0.113.254"));
    assert_eq!(v["workers"]["cores"][0].as_integer(), Some(1));
    assert_eq!(v["neighbor"][0]["mac"].as_str(), Some("02:00:00:00:02:01"));
    assert_eq!(v["timeouts"]["udp"].as_integer(), Some(160));
    let args: Vec<&str> = v["dpdk"]["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(args, cfg.eal_args.iter().map(String::as_str).collect::<Vec<_>>());
    // The daemon's own loader takes it as it is.
    let parsed = dataplane::config::Config::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.ports.len(), 2);
    assert_eq!(parsed.neighbors.len(), 1);

    // Awkward strings are escaped.
    let odd = MasqdConfig::new().inside("l\"n", "net_pcap0,rx_pcap=/tmp/a b\\c.pcap", "1.2.3.4/8");
    let v: toml::Value = toml::from_str(&odd.to_toml()).unwrap();
    assert_eq!(v["port"][0]["name"].as_str(), Some("l\"n"));
    assert_eq!(v["port"][0]["device"].as_str(), Some("net_pcap0,rx_pcap=/tmp/a b\\c.pcap"));
    assert_eq!(
        pcap_device(3, Path::new("/t/in.pcap"), Path::new("/t/out.pcap")),
        "net_pcap3,rx_pcap=/t/in.pcap,tx_pcap=/t/out.pcap"
    );
}

#[test]
fn masqd_path_names_the_fix_when_missing() {
    // Only checks the message when no binary is there; with one, the path must exist.
    match std::panic::catch_unwind(masqd_path) {
        Ok(p) => assert!(p.is_file()),
        Err(e) => {
            let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
            assert!(msg.contains("cargo build --release -p dataplane") || msg.contains("MASQD="), "{msg}");
        }
    }
    assert!(target_dir().is_absolute());
}

/// A stand-in for masqd: prints EAL-ish noise and `ready`, and on SIGTERM the report.
fn fake_masqd(dir: &Path, on_term: &str) -> PathBuf {
    let path = dir.join("fake-masqd");
    let script = format!(
        "#!/bin/sh\n\
         echo \"EAL: args: $*\"\n\
         trap '{on_term}' TERM\n\
         sleep 0.2\n\
         echo 'masqd: ready (2 ports, 1 worker)'\n\
         i=0; while [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done\n\
         exit 9\n"
    );
    std::fs::write(&path, script).unwrap();
    std::process::Command::new("chmod").args(["+x"]).arg(&path).status().unwrap();
    path
}

#[test]
fn runner_waits_for_ready_stops_and_collects_the_report() {
    let dir = TempDir::new("fake");
    let bin = fake_masqd(
        dir.path(),
        "echo \"port:lan rx_packets 5\"; echo \"drop no_route 0\"; echo \"mempool in_use 0\"; \
         echo \"masqd: clean shutdown\"; exit 0",
    );
    let cfg = example_config().rules("*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n");
    let mut m = Masqd::start_with(&bin, &cfg, &["--extra"]);
    assert!(m.config_path().is_file());
    m.expect_ready(Duration::from_secs(10));
    assert!(m.is_running());
    let log = m.log();
    assert!(log.contains("--config") && log.contains("--rules") && log.contains("--extra"), "{log}");
    let rules = std::fs::read_to_string(m.dir().join("rules.v4")).unwrap();
    assert!(rules.contains("MASQUERADE"));
    let dir_path = m.dir().to_path_buf();
    let stopped = m.stop(Duration::from_secs(10));
    stopped.assert_clean();
    assert_eq!(stopped.expect_counter("port:lan rx_packets"), 5);
    assert!(!dir_path.exists() || std::env::var("MASQ_TEST_KEEP").is_ok(), "temp dir removed");
}

#[test]
fn runner_reports_early_exit_and_kills_on_timeout() {
    let dir = TempDir::new("fake");
    // Exits at once with a config error, before any "ready".
    let bad = dir.join("bad-masqd");
    std::fs::write(&bad, "#!/bin/sh\necho 'masqd: config error: port[1].address: missing' >&2\nexit 2\n").unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&bad).status().unwrap();
    let mut m = Masqd::start_with(&bad, &example_config(), &[]);
    let err = m.wait_ready(Duration::from_secs(10)).unwrap_err();
    assert!(err.contains("exited") && err.contains("port[1].address"), "{err}");
    let s = m.wait_exit(Duration::from_secs(5));
    assert_eq!(s.status.code(), Some(2));
    assert_eq!(shutdown_verdict(&s.log), None);

    // Ignores SIGTERM: stop() must kill it and panic.
    let stubborn = fake_masqd(dir.path(), "echo still here");
    let mut m = Masqd::start_with(&stubborn, &example_config(), &[]);
    m.expect_ready(Duration::from_secs(10));
    let pid = m.pid();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| m.stop(Duration::from_millis(500))));
    let msg = r.expect_err("stop must panic").downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("did not exit"), "{msg}");
    assert!(!Path::new(&format!("/proc/{pid}")).exists() || proc_is_zombie_or_gone(pid), "killed");
}

fn proc_is_zombie_or_gone(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|s| s.contains(") Z ")).unwrap_or(true)
}

#[test]
fn wait_until_polls_and_gives_up() {
    let mut n = 0;
    assert!(wait_until(Duration::from_secs(1), || {
        n += 1;
        n == 3
    }));
    assert!(!wait_until(Duration::from_millis(50), || false));
}

// ---- as root: network namespaces --------------------------------------------------------

fn link_exists(name: &str) -> bool {
    root_links().iter().any(|l| l == name)
}

#[test]
fn netns_guard_creates_configures_and_removes() {
    if !require_root_and_tools() {
        return;
    }
    let (ns_name, link_name);
    {
        let mut net = Netns::new();
        let ns = net.add_ns("a");
        let root_if = net.add_veth("x", &ns, "eth0");
        assert!(ns.starts_with(NETNS_PREFIX) && ns.len() <= 15 && root_if.len() <= 15);
        assert!(netns_list().contains(&ns));
        assert!(link_exists(&root_if));
        net.set_mac(Some(&ns), "eth0", mac("02:00:00:00:0a:01"));
        assert_eq!(net.mac_of(Some(&ns), "eth0"), mac("02:00:00:00:0a:01"));
        net.add_addr(&ns, "eth0", "192.0.2.2/24");
        net.add_route(&ns, "default", "192.0.2.1");

        // The root end is quiet: no IPv6, no forwarding, arp_ignore, strict rp_filter.
        let sys = |k: &str| std::fs::read_to_string(format!("/proc/sys/net/{k}")).unwrap().trim().to_string();
        assert_eq!(sys(&format!("ipv6/conf/{root_if}/disable_ipv6")), "1");
        assert_eq!(sys(&format!("ipv4/conf/{root_if}/forwarding")), "0");
        assert_eq!(sys(&format!("ipv4/conf/{root_if}/arp_ignore")), "8");
        assert_eq!(sys(&format!("ipv4/conf/{root_if}/rp_filter")), "1");
        // Offloads are off on both ends.
        let k = std::process::Command::new("ethtool").args(["-k", &root_if]).output().unwrap();
        assert!(String::from_utf8_lossy(&k.stdout).contains("tx-checksumming: off"));
        let k = net.exec(&ns, Duration::from_secs(5), &["ethtool", "-k", "eth0"]);
        assert!(String::from_utf8_lossy(&k.stdout).contains("tx-checksumming: off"));

        // Commands run inside, with a time limit.
        let out = net.exec(&ns, Duration::from_secs(5), &["ip", "-o", "-4", "addr", "show", "dev", "eth0"]);
        assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("192.0.2.2/24"));
        let t = std::time::Instant::now();
        let out = net.exec(&ns, Duration::from_millis(300), &["sleep", "10"]);
        assert_eq!(out.status.code(), Some(124));
        assert!(t.elapsed() < Duration::from_secs(3));
        let pid = net.spawn(&ns, Duration::from_secs(30), &["sleep", "30"], None);
        assert!(Path::new(&format!("/proc/{pid}")).exists());
        // Its own resolver and hosts file, not the machine's.
        let out = net.exec(&ns, Duration::from_secs(5), &["cat", "/etc/resolv.conf"]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), "nameserver 127.0.0.1\n");
        assert!(Path::new("/etc/netns").join(&ns).is_dir());

        ns_name = ns;
        link_name = root_if;
    }
    assert!(!netns_list().contains(&ns_name), "namespace {ns_name} left behind");
    assert!(!Path::new("/etc/netns").join(&ns_name).exists(), "/etc/netns/{ns_name} left behind");
    assert!(!link_exists(&link_name), "link {link_name} left behind");
}

#[test]
fn lan_wan_topology_builds_and_is_isolated_without_masqd() {
    if !require_root_and_tools() {
        return;
    }
    let names;
    {
        let t = LanWan::new();
        names = (t.lan_ns.clone(), t.srv_ns.clone(), t.lan_if.clone(), t.wan_if.clone());
        assert_eq!(t.net.mac_of(None, &t.lan_if), mac(addr::LAN_ROUTER_MAC));
        assert_eq!(t.net.mac_of(Some(&t.srv_ns), "eth0"), mac(addr::SERVER_MAC));
        let cfg = t.masqd_config();
        assert_eq!(cfg.ports[0].device, format!("net_af_packet0,iface={}", t.lan_if));
        assert!(dataplane::config::Config::parse(&cfg.to_toml()).is_ok());
        let out = t.lan(Duration::from_secs(5), &["ip", "route", "show", "default"]);
        assert!(String::from_utf8_lossy(&out.stdout).contains(addr::LAN_ROUTER));
        // Nothing crosses without masqd, and nobody answers for the router address.
        assert!(!t.ping_from_lan(addr::SERVER, 1));
        let out = t.srv(Duration::from_secs(5), &["ping", "-n", "-c", "1", "-W", "1", addr::LAN_HOST]);
        assert!(!out.status.success());
    }
    assert!(!netns_list().contains(&names.0) && !netns_list().contains(&names.1));
    assert!(!link_exists(&names.2) && !link_exists(&names.3));
}
