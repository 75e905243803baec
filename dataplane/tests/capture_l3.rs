//! Capture tests of masqd's router: crafted frames go in through `net_pcap` (rx_pcap),
//! a real masqd handles them, and what it sent (tx_pcap) is parsed and checked with the
//! harness's own independent parsers. Each test is one masqd run; runs use their own EAL
//! file prefix, so they may run in parallel.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

const LAN_MAC: &str = "02:00:00:00:01:01";
const WAN_MAC: &str = "02:00:00:00:02:01";
const HOST_MAC: &str = "02:00:00:00:01:02";
const GW_MAC: &str = "02:00:00:00:02:fe";

/// One masqd run over two pcap ports: `lan_in` arrives on lan, `wan_in` on wan.
struct PcapRun {
    lan_out: Vec<Vec<u8>>,
    wan_out: Vec<Vec<u8>>,
    stopped: Stopped,
}

fn run_pcap(lan_in: &[Vec<u8>], wan_in: &[Vec<u8>], tweak: impl FnOnce(MasqdConfig) -> MasqdConfig) -> PcapRun {
    let dir = TempDir::new("capture-l3");
    let path = |n: &str| -> PathBuf { dir.join(n) };
    write_pcap(&path("lan_in.pcap"), lan_in);
    write_pcap(&path("wan_in.pcap"), wan_in);
    let cfg = MasqdConfig::new()
        .inside("lan", &pcap_device(0, &path("lan_in.pcap"), &path("lan_out.pcap")), "100.64.0.1/10")
        .with_mac(LAN_MAC)
        .outside(
            "wan",
            &pcap_device(1, &path("wan_in.pcap"), &path("wan_out.pcap")),
            "203.0.113.1/24",
            Some("203.0.113.254"),
        )
        .with_mac(WAN_MAC)
        .neighbor("wan", "203.0.113.254", GW_MAC)
        .neighbor("lan", "100.64.0.2", HOST_MAC);
    let cfg = tweak(cfg);
    let mut masqd = Masqd::start(&cfg);
    masqd.expect_ready(Duration::from_secs(20));
    // net_pcap delivers its whole file on the first polls; give the worker time to finish.
    std::thread::sleep(Duration::from_millis(700));
    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    PcapRun { lan_out: read_pcap(&path("lan_out.pcap")), wan_out: read_pcap(&path("wan_out.pcap")), stopped }
}

fn host_udp(ttl: u8, payload: &[u8]) -> Vec<u8> {
    udp_frame(mac(HOST_MAC), mac(LAN_MAC), ip4("100.64.0.2"), ip4("198.51.100.7"), 40000, 53, ttl, payload)
}

#[test]
fn arp_request_for_the_port_address_gets_a_reply() {
    let asker = mac("02:00:00:00:01:09");
    let run = run_pcap(&[arp_request(asker, ip4("100.64.0.9"), ip4("100.64.0.1"))], &[], |c| c);
    assert_eq!(run.lan_out.len(), 1, "one ARP reply");
    let a = parse_arp(&run.lan_out[0]).expect("an ARP packet");
    assert_eq!(a.op, 2, "reply");
    assert_eq!(a.sender_mac, mac(LAN_MAC));
    assert_eq!(a.sender_ip, ip4("100.64.0.1"));
    assert_eq!(a.target_mac, asker);
    assert_eq!(a.target_ip, ip4("100.64.0.9"));
    assert_eq!(&run.lan_out[0][0..6], &asker, "unicast back to the asker");
    assert!(run.wan_out.is_empty());
    assert_eq!(run.stopped.expect_counter("worker:0 arp_replies_sent"), 1);
}

#[test]
fn ipv4_is_routed_with_ttl_minus_one_new_macs_and_a_valid_checksum() {
    let frames: Vec<Vec<u8>> = (0..5u8).map(|i| host_udp(64, &[i; 32])).collect();
    let run = run_pcap(&frames, &[], |c| c);
    assert_eq!(run.wan_out.len(), 5);
    for (i, f) in run.wan_out.iter().enumerate() {
        assert_eq!(&f[0..6], &mac(GW_MAC), "to the gateway");
        assert_eq!(&f[6..12], &mac(WAN_MAC), "from the wan port");
        let p = parse_ipv4(f).expect("IPv4");
        assert_eq!(p.ttl, 63);
        assert_eq!((p.src, p.dst), (ip4("100.64.0.2"), ip4("198.51.100.7")));
        assert_eq!((p.sport, p.dport), (Some(40000), Some(53)));
        assert!(p.checksums_ok, "checksums: {p:?}");
        assert_eq!(p.payload, vec![i as u8; 32], "order and payload kept");
    }
    assert!(run.lan_out.is_empty());
    assert_eq!(run.stopped.expect_counter("worker:0 forwarded"), 5);
    assert_eq!(run.stopped.expect_counter("port:wan tx_packets"), 5);
    assert_eq!(run.stopped.expect_counter("port:lan rx_packets"), 5);
}

#[test]
fn ttl_one_gets_icmp_time_exceeded_back() {
    let original = host_udp(1, b"expiring");
    let run = run_pcap(std::slice::from_ref(&original), &[], |c| c);
    assert!(run.wan_out.is_empty(), "nothing forwarded");
    assert_eq!(run.lan_out.len(), 1);
    let f = &run.lan_out[0];
    assert_eq!(&f[0..6], &mac(HOST_MAC));
    let p = parse_ipv4(f).expect("IPv4");
    assert_eq!((p.src, p.dst), (ip4("100.64.0.1"), ip4("100.64.0.2")));
    assert_eq!((p.icmp_type, p.icmp_code), (Some(11), Some(0)));
    assert!(p.checksums_ok, "{p:?}");
    let q = p.quoted().expect("quoted datagram");
    assert_eq!((q.src, q.dst, q.sport, q.dport), (ip4("100.64.0.2"), ip4("198.51.100.7"), Some(40000), Some(53)));
    assert_eq!(&p.payload[..28], &original[14..14 + 28], "header + 8 bytes quoted verbatim");
    assert_eq!(drop_count(&run.stopped.log, "ttl_exceeded"), Some(1));
    assert_eq!(run.stopped.expect_counter("worker:0 icmp_sent"), 1);
}

#[test]
fn malformed_frames_are_dropped_and_counted_by_reason() {
    let good = host_udp(64, &[7; 20]);
    let mut bad_csum = good.clone();
    bad_csum[14 + 10] ^= 0x5a;
    let mut bad_ihl = good.clone();
    bad_ihl[14] = 0x43;
    let mut bad_len = good.clone();
    bad_len[14 + 2..14 + 4].copy_from_slice(&8u16.to_be_bytes());
    set_ipv4_checksum(&mut bad_len);
    let mut truncated = good.clone();
    truncated.truncate(14 + 12);
    let short = good[..9].to_vec();
    let mut ipv6 = good.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let mut not_ours = good.clone();
    not_ours[0..6].copy_from_slice(&mac("02:00:00:00:09:09"));
    let frames = vec![short, truncated, bad_csum, bad_ihl, bad_len, ipv6, not_ours, good];
    let run = run_pcap(&frames, &[], |c| c);
    assert_eq!(run.wan_out.len(), 1, "only the good frame is forwarded");
    assert!(parse_ipv4(&run.wan_out[0]).unwrap().checksums_ok);
    let log = &run.stopped.log;
    for (reason, n) in [
        ("eth_truncated", 1),
        ("ipv4_truncated", 1),
        ("ipv4_bad_checksum", 1),
        ("ipv4_bad_ihl", 1),
        ("ipv4_bad_length", 1),
        ("eth_unsupported_type", 1),
        ("eth_not_for_us", 1),
    ] {
        assert_eq!(drop_count(log, reason), Some(n), "drop {reason}\n{log}");
    }
    assert_eq!(run.stopped.expect_counter("worker:0 drops"), 7);
}

#[test]
fn next_hop_is_resolved_with_arp_then_the_packet_is_sent() {
    // No static gateway entry: masqd must ask; the gateway's reply is in the wan capture,
    // which net_pcap plays at once, so the reply is learned and the held packet released.
    let lan = vec![host_udp(64, b"held")];
    let wan = vec![arp_reply(mac(GW_MAC), ip4("203.0.113.254"), mac(WAN_MAC), ip4("203.0.113.1"))];
    let dir = TempDir::new("capture-arp");
    let p = |n: &str| dir.join(n);
    write_pcap(&p("lan_in.pcap"), &lan);
    write_pcap(&p("wan_reply.pcap"), &wan);
    // Whichever masqd sees first, the held packet must leave once the reply is learned.
    let cfg = MasqdConfig::new()
        .inside("lan", &pcap_device(0, &p("lan_in.pcap"), &p("lan_out.pcap")), "100.64.0.1/10")
        .with_mac(LAN_MAC)
        .outside(
            "wan",
            &pcap_device(1, &p("wan_reply.pcap"), &p("wan_out.pcap")),
            "203.0.113.1/24",
            Some("203.0.113.254"),
        )
        .with_mac(WAN_MAC)
        .neighbor("lan", "100.64.0.2", HOST_MAC);
    let mut masqd = Masqd::start(&cfg);
    masqd.expect_ready(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(700));
    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    let out = read_pcap(&p("wan_out.pcap"));
    let data: Vec<&Vec<u8>> = out.iter().filter(|f| parse_ipv4(f).is_some()).collect();
    assert_eq!(data.len(), 1, "the data packet went out once resolved: {out:?}");
    assert_eq!(&data[0][0..6], &mac(GW_MAC));
    assert_eq!(parse_ipv4(data[0]).unwrap().payload, b"held");
    assert_eq!(stopped.expect_counter("worker:0 arp_learned"), 1);
    assert_eq!(drop_count(&stopped.log, "arp_unresolved"), Some(0));
}
