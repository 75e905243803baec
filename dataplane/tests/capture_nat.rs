//! Capture tests of the NAT through a real masqd: frames in through `net_pcap` rx_pcap
//! files, translated frames out through tx_pcap, parsed and checked (every checksum) by
//! the harness's own parsers.
//!
//! Ordering: each port plays its whole capture from the start, and the worker polls
//! lan (port 0) before wan (port 1) in every pass, a burst of up to 32 frames each. So
//! with at most 32 frames on lan, all of them are translated before the first wan frame
//! is seen: outbound frames create the sessions that the replies in the wan capture hit.
//! Source ports are kept when free, so the replies can be written in advance.

mod common;

use std::time::Duration;

use common::*;

const LAN_MAC: &str = "02:00:00:00:01:01";
const WAN_MAC: &str = "02:00:00:00:02:01";
const HOST_MAC: &str = "02:00:00:00:01:02";
const GW_MAC: &str = "02:00:00:00:02:fe";
const HOST: &str = "100.64.0.2";
const EXT: &str = "203.0.113.1";
const SERVER: &str = "198.51.100.7";

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
";

struct Run {
    lan_out: Vec<Vec<u8>>,
    wan_out: Vec<Vec<u8>>,
    stopped: Stopped,
}

fn run(lan_in: &[Vec<u8>], wan_in: &[Vec<u8>], extra_toml: &str) -> Run {
    let dir = TempDir::new("capture-nat");
    let p = |n: &str| dir.join(n);
    write_pcap(&p("lan_in.pcap"), lan_in);
    write_pcap(&p("wan_in.pcap"), wan_in);
    let cfg = MasqdConfig::new()
        .inside("lan", &pcap_device(0, &p("lan_in.pcap"), &p("lan_out.pcap")), "100.64.0.1/10")
        .with_mac(LAN_MAC)
        .outside("wan", &pcap_device(1, &p("wan_in.pcap"), &p("wan_out.pcap")), "203.0.113.1/24", Some("203.0.113.254"))
        .with_mac(WAN_MAC)
        .neighbor("wan", "203.0.113.254", GW_MAC)
        .neighbor("lan", HOST, HOST_MAC)
        .neighbor("lan", "100.64.0.3", HOST_MAC)
        .rules(RULES)
        .extra_toml(extra_toml);
    let mut masqd = Masqd::start(&cfg);
    masqd.expect_ready(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(700));
    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    Run { lan_out: read_pcap(&p("lan_out.pcap")), wan_out: read_pcap(&p("wan_out.pcap")), stopped }
}

fn out_udp(src: &str, sport: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame(mac(HOST_MAC), mac(LAN_MAC), ip4(src), ip4(SERVER), sport, 53, 64, payload)
}

fn in_udp(dport: u16, payload: &[u8]) -> Vec<u8> {
    udp_frame(mac(GW_MAC), mac(WAN_MAC), ip4(SERVER), ip4(EXT), 53, dport, 60, payload)
}

#[test]
fn masquerade_udp_out_and_the_reply_back() {
    let r = run(&[out_udp(HOST, 40000, b"query")], &[in_udp(40000, b"answer")], "");
    assert_eq!(r.wan_out.len(), 1, "{}", r.stopped.log);
    let o = parse_ipv4(&r.wan_out[0]).unwrap();
    assert_eq!((o.src, o.dst, o.sport, o.dport), (ip4(EXT), ip4(SERVER), Some(40000), Some(53)));
    assert!(o.checksums_ok, "{o:?}");
    assert_eq!(o.payload, b"query");
    assert_eq!(r.lan_out.len(), 1, "{}", r.stopped.log);
    let i = parse_ipv4(&r.lan_out[0]).unwrap();
    assert_eq!(&r.lan_out[0][0..6], &mac(HOST_MAC));
    assert_eq!((i.src, i.dst, i.sport, i.dport), (ip4(SERVER), ip4(HOST), Some(53), Some(40000)));
    assert!(i.checksums_ok, "{i:?}");
    assert_eq!(i.payload, b"answer");
    assert_eq!(r.stopped.expect_counter("worker:0 nat_sessions_created"), 1);
}

#[test]
fn udp_checksum_zero_stays_zero_through_translation() {
    let mut f = out_udp(HOST, 40002, b"nocsum");
    // UDP checksum field: Ethernet 14 + IPv4 20 + 6.
    f[14 + 20 + 6..14 + 20 + 8].copy_from_slice(&[0, 0]);
    let r = run(&[f], &[], "");
    assert_eq!(r.wan_out.len(), 1);
    assert_eq!(&r.wan_out[0][14 + 20 + 6..14 + 20 + 8], &[0, 0], "checksum 0 (none) kept as 0");
    let o = parse_ipv4(&r.wan_out[0]).unwrap();
    assert_eq!(o.src, ip4(EXT));
    assert!(o.checksums_ok);
}

#[test]
fn icmp_port_unreachable_from_the_server_is_translated_back() {
    let outbound = out_udp(HOST, 40004, b"to nowhere");
    // What the server received: the translated datagram. It quotes that back.
    let mut seen_by_server = udp_frame(mac(GW_MAC), mac(WAN_MAC), ip4(EXT), ip4(SERVER), 40004, 53, 63, b"to nowhere");
    let quoted = seen_by_server.split_off(14);
    let error = icmp_error_frame(mac(GW_MAC), mac(WAN_MAC), ip4(SERVER), ip4(EXT), 3, 3, &quoted);
    let mut bad = error.clone();
    bad[14 + 20 + 2] ^= 0xff; // ICMP checksum
    let r = run(&[outbound], &[error, bad], "");
    assert_eq!(r.lan_out.len(), 1, "one error reaches the host, the corrupted one is dropped:\n{}", r.stopped.log);
    let e = parse_ipv4(&r.lan_out[0]).unwrap();
    assert_eq!((e.src, e.dst), (ip4(SERVER), ip4(HOST)));
    assert_eq!((e.icmp_type, e.icmp_code), (Some(3), Some(3)));
    assert!(e.checksums_ok, "outer checksums: {e:?}");
    let q = e.quoted().expect("quoted datagram");
    assert_eq!((q.src, q.dst, q.sport, q.dport), (ip4(HOST), ip4(SERVER), Some(40004), Some(53)));
    assert!(q.ip_checksum_ok, "quoted IPv4 checksum fixed");
    assert_eq!(drop_count(&r.stopped.log, "l4_bad_checksum"), Some(1));
    assert_eq!(r.stopped.expect_counter("worker:0 nat_icmp_errors_translated"), 1);
}

#[test]
fn dnat_forwards_an_inbound_tcp_syn_into_the_lan() {
    let syn = tcp_frame(mac(GW_MAC), mac(WAN_MAC), ip4(SERVER), ip4(EXT), 50000, 2222, 60, TcpSeg::syn(1000), b"");
    // The reply direction needs the session this SYN creates, but lan's capture is played
    // before wan's; it is covered by e2e_nat.rs (real TCP) and the in-memory NAT tests.
    let r = run(&[], &[syn], "");
    assert_eq!(r.lan_out.len(), 1, "{}", r.stopped.log);
    let s = parse_ipv4(&r.lan_out[0]).unwrap();
    assert_eq!((s.src, s.dst, s.sport, s.dport), (ip4(SERVER), ip4(HOST), Some(50000), Some(22)));
    assert_eq!(s.tcp_flags, Some(TCP_SYN));
    assert!(s.checksums_ok, "{s:?}");
}

#[test]
fn unsolicited_inbound_udp_is_dropped_as_no_session() {
    let r = run(&[], &[in_udp(45678, b"knock")], "");
    assert!(r.lan_out.is_empty());
    assert_eq!(drop_count(&r.stopped.log, "no_session"), Some(1), "{}", r.stopped.log);
}

#[test]
fn address_port_dependent_filtering_refuses_another_server_port() {
    let outbound = out_udp(HOST, 40006, b"q");
    let other_port = udp_frame(mac(GW_MAC), mac(WAN_MAC), ip4(SERVER), ip4(EXT), 5353, 40006, 60, b"x");
    let r = run(
        std::slice::from_ref(&outbound),
        std::slice::from_ref(&other_port),
        "[nat]\nfiltering = \"address-port-dependent\"\n",
    );
    assert!(r.lan_out.is_empty(), "filtered");
    assert_eq!(drop_count(&r.stopped.log, "filtered_endpoint"), Some(1), "{}", r.stopped.log);
    // Endpoint-independent filtering (the default) lets it in.
    let r = run(&[outbound], &[other_port], "");
    assert_eq!(r.lan_out.len(), 1, "{}", r.stopped.log);
    let i = parse_ipv4(&r.lan_out[0]).unwrap();
    assert_eq!((i.dst, i.dport, i.sport), (ip4(HOST), Some(40006), Some(5353)));
}

#[test]
fn two_subscribers_on_one_source_port_get_two_external_ports() {
    let r = run(&[out_udp(HOST, 7000, b"a"), out_udp("100.64.0.3", 7000, b"b")], &[], "");
    assert_eq!(r.wan_out.len(), 2);
    let a = parse_ipv4(&r.wan_out[0]).unwrap();
    let b = parse_ipv4(&r.wan_out[1]).unwrap();
    assert_eq!((a.src, b.src), (ip4(EXT), ip4(EXT)));
    assert_eq!(a.sport, Some(7000));
    assert_ne!(a.sport, b.sport);
    assert!(a.checksums_ok && b.checksums_ok);
}

#[test]
fn subscriber_port_limit_drops_and_sends_host_unreachable() {
    let frames: Vec<Vec<u8>> = (0..3).map(|i| out_udp(HOST, 41000 + i, b"x")).collect();
    let r = run(&frames, &[], "[nat]\nports_per_subscriber = 2\n");
    assert_eq!(r.wan_out.len(), 2, "two mappings allowed:\n{}", r.stopped.log);
    assert_eq!(drop_count(&r.stopped.log, "subscriber_limit"), Some(1));
    assert_eq!(r.lan_out.len(), 1, "ICMP back to the subscriber");
    let e = parse_ipv4(&r.lan_out[0]).unwrap();
    assert_eq!((e.dst, e.icmp_type, e.icmp_code), (ip4(HOST), Some(3), Some(1)));
    assert!(e.checksums_ok);
}

/// An ICMP error (type, code) quoting `quoted` (an IPv4 packet).
fn icmp_error_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src: std::net::Ipv4Addr,
    dst: std::net::Ipv4Addr,
    ty: u8,
    code: u8,
    quoted: &[u8],
) -> Vec<u8> {
    let mut icmp = vec![ty, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quoted);
    let c = internet_checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let total = (20 + icmp.len()) as u16;
    let mut f = Vec::new();
    f.extend_from_slice(&dst_mac);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0, 0, 64, 1, 0, 0]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    set_ipv4_checksum(&mut f);
    f
}

/// `mtu = 9000` on both ports: an 8000-byte UDP datagram goes out translated and its
/// 8000-byte reply comes back, each in one frame (the packet buffers hold a whole jumbo
/// frame); with the default MTU the same frame is dropped and counted, not passed on.
#[test]
fn jumbo_frames_up_to_the_port_mtu_are_translated_both_ways() {
    let big: Vec<u8> = (0..8000u32).map(|i| (i % 251) as u8).collect();
    let run_mtu = |mtu: Option<u16>| {
        let dir = TempDir::new("capture-jumbo");
        let p = |n: &str| dir.join(n);
        write_pcap(&p("lan_in.pcap"), &[out_udp(HOST, 40010, &big)]);
        write_pcap(&p("wan_in.pcap"), &[in_udp(40010, &big)]);
        let mut cfg = MasqdConfig::new()
            .inside("lan", &pcap_device(0, &p("lan_in.pcap"), &p("lan_out.pcap")), "100.64.0.1/10")
            .with_mac(LAN_MAC);
        if let Some(m) = mtu {
            cfg = cfg.with_mtu(m);
        }
        cfg = cfg
            .outside(
                "wan",
                &pcap_device(1, &p("wan_in.pcap"), &p("wan_out.pcap")),
                "203.0.113.1/24",
                Some("203.0.113.254"),
            )
            .with_mac(WAN_MAC);
        if let Some(m) = mtu {
            cfg = cfg.with_mtu(m);
        }
        let cfg = cfg.neighbor("wan", "203.0.113.254", GW_MAC).neighbor("lan", HOST, HOST_MAC).rules(RULES);
        let mut masqd = Masqd::start(&cfg);
        masqd.expect_ready(Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(700));
        let stopped = masqd.stop(Duration::from_secs(10));
        stopped.assert_clean();
        Run { lan_out: read_pcap(&p("lan_out.pcap")), wan_out: read_pcap(&p("wan_out.pcap")), stopped }
    };
    let r = run_mtu(Some(9000));
    assert_eq!(r.wan_out.len(), 1, "{}", r.stopped.log);
    assert_eq!(r.wan_out[0].len(), 14 + 20 + 8 + 8000);
    let o = parse_ipv4(&r.wan_out[0]).unwrap();
    assert_eq!((o.src, o.dst, o.sport, o.dport), (ip4(EXT), ip4(SERVER), Some(40010), Some(53)));
    assert!(o.checksums_ok, "{o:?}");
    assert_eq!(o.payload, big);
    assert_eq!(r.lan_out.len(), 1, "{}", r.stopped.log);
    let i = parse_ipv4(&r.lan_out[0]).unwrap();
    assert_eq!((i.src, i.dst, i.sport, i.dport), (ip4(SERVER), ip4(HOST), Some(53), Some(40010)));
    assert!(i.checksums_ok, "{i:?}");
    assert_eq!(i.payload, big);
    assert_eq!(drop_count(&r.stopped.log, "multi_segment"), Some(0));

    let r = run_mtu(None);
    assert!(r.wan_out.is_empty() && r.lan_out.is_empty(), "{}", r.stopped.log);
    assert_eq!(drop_count(&r.stopped.log, "multi_segment"), Some(2), "{}", r.stopped.log);
}
