//! Two workers on multi-queue `net_pcap` ports (one rx_pcap and one tx_pcap per queue;
//! worker `w` polls queue `w` of every port and transmits on it): flows whose packets
//! arrive on the other worker's queue are handed to their owner over the handoff rings,
//! and the owner translates and sends them — which the tx capture of its queue shows.
//!
//! Ordering is deterministic: a worker reads lan before wan in every pass, and what one
//! worker hands another travels on one FIFO ring, so a subscriber's outbound frame on
//! lan queue q reaches its owner before the reply placed on wan queue q. For the port
//! forward, 64 frames for another MAC (dropped, `eth_not_for_us`) hold the server's
//! answer back two passes behind the inbound SYN.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;

const LAN_MAC: &str = "02:00:00:00:01:01";
const WAN_MAC: &str = "02:00:00:00:02:01";
const HOST_MAC: &str = "02:00:00:00:01:02";
const GW_MAC: &str = "02:00:00:00:02:fe";
/// Owned by worker 0 (Toeplitz hash of the source address under masq's RSS key).
const HOST0: &str = "100.64.0.2";
/// Owned by worker 1.
const HOST1: &str = "100.64.0.3";
const EXT: &str = "203.0.113.1";
const SERVER: &str = "198.51.100.7";
const CLIENT: &str = "192.0.2.50";
/// With 2 workers, worker 0 owns external ports 1024..=33279 and worker 1 33280..=65535.
const PORT0: u16 = 20000;
const PORT1: u16 = 40000;

const RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.3:22
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
";

fn multiqueue_pcap(index: u32, dir: &Path, name: &str, queues: usize) -> String {
    let mut dev = format!("net_pcap{index}");
    for q in 0..queues {
        dev.push_str(&format!(",rx_pcap={}", dir.join(format!("{name}_in{q}.pcap")).display()));
    }
    for q in 0..queues {
        dev.push_str(&format!(",tx_pcap={}", dir.join(format!("{name}_out{q}.pcap")).display()));
    }
    dev
}

fn out_udp(src: &str, sport: u16) -> Vec<u8> {
    udp_frame(mac(HOST_MAC), mac(LAN_MAC), ip4(src), ip4(SERVER), sport, 53, 64, b"query")
}

fn in_udp(dport: u16) -> Vec<u8> {
    udp_frame(mac(GW_MAC), mac(WAN_MAC), ip4(SERVER), ip4(EXT), 53, dport, 60, b"answer")
}

fn config(dir: &Path, queues: usize) -> MasqdConfig {
    MasqdConfig::new()
        .inside("lan", &multiqueue_pcap(0, dir, "lan", queues), "100.64.0.1/10")
        .with_mac(LAN_MAC)
        .outside("wan", &multiqueue_pcap(1, dir, "wan", queues), "203.0.113.1/24", Some("203.0.113.254"))
        .with_mac(WAN_MAC)
        .neighbor("wan", "203.0.113.254", GW_MAC)
        .neighbor("lan", HOST0, HOST_MAC)
        .neighbor("lan", HOST1, HOST_MAC)
        .rules(RULES)
        .cores(&[0, 1])
}

#[test]
fn replies_on_the_other_workers_queue_reach_the_owner_and_are_translated() {
    let dir = TempDir::new("capture-mq");
    let other_mac = udp_frame(mac(HOST_MAC), mac("02:00:00:00:09:09"), ip4(HOST1), ip4(SERVER), 1, 2, 64, b"x");
    let syn = tcp_frame(mac(GW_MAC), mac(WAN_MAC), ip4(CLIENT), ip4(EXT), 50000, 2222, 60, TcpSeg::syn(1000), b"");
    let syn_ack = tcp_frame(
        mac(HOST_MAC),
        mac(LAN_MAC),
        ip4(HOST1),
        ip4(CLIENT),
        22,
        50000,
        64,
        TcpSeg::new(TCP_SYN | TCP_ACK, 7000, 1001),
        b"",
    );
    // Worker 0's queues carry worker 1's subscriber, and the reverse.
    let mut lan0 = vec![out_udp(HOST1, PORT1)];
    lan0.extend(std::iter::repeat_n(other_mac, 64));
    lan0.push(syn_ack);
    write_pcap(&dir.join("lan_in0.pcap"), &lan0);
    write_pcap(&dir.join("lan_in1.pcap"), &[out_udp(HOST0, PORT0)]);
    write_pcap(&dir.join("wan_in0.pcap"), &[in_udp(PORT1), syn]);
    write_pcap(&dir.join("wan_in1.pcap"), &[in_udp(PORT0)]);

    let mut masqd = Masqd::start(&config(dir.path(), 2));
    masqd.expect_ready(Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(700));
    let stopped = masqd.stop(Duration::from_secs(10));
    stopped.assert_clean();
    let log = &stopped.log;
    let read = |n: &str| read_pcap(&dir.join(n));
    let (lan_out0, lan_out1, wan_out0, wan_out1) =
        (read("lan_out0.pcap"), read("lan_out1.pcap"), read("wan_out0.pcap"), read("wan_out1.pcap"));
    let parsed = |frames: &[Vec<u8>]| -> Vec<Ipv4Info> {
        frames
            .iter()
            .map(|f| {
                let p = parse_ipv4(f).unwrap_or_else(|| panic!("not IPv4: {f:02x?}"));
                assert!(p.checksums_ok, "{p:?}");
                p
            })
            .collect()
    };

    // Worker 0 sent HOST0's flow out and its reply in; nothing of HOST1's.
    let w0_out = parsed(&wan_out0);
    assert_eq!(w0_out.len(), 1, "wan queue 0: {w0_out:?}\n{log}");
    assert_eq!((w0_out[0].src, w0_out[0].sport, w0_out[0].dst), (ip4(EXT), Some(PORT0), ip4(SERVER)));
    let w0_in = parsed(&lan_out0);
    assert_eq!(w0_in.len(), 1, "lan queue 0: {w0_in:?}\n{log}");
    assert_eq!((w0_in[0].src, w0_in[0].dst, w0_in[0].dport), (ip4(SERVER), ip4(HOST0), Some(PORT0)));

    // Worker 1: HOST1's flow, its reply, and the port forward both ways.
    let w1_out = parsed(&wan_out1);
    assert_eq!(w1_out.len(), 2, "wan queue 1: {w1_out:?}\n{log}");
    assert_eq!((w1_out[0].src, w1_out[0].sport, w1_out[0].dst), (ip4(EXT), Some(PORT1), ip4(SERVER)));
    assert_eq!(
        (w1_out[1].src, w1_out[1].sport, w1_out[1].dst, w1_out[1].dport, w1_out[1].tcp_flags),
        (ip4(EXT), Some(2222), ip4(CLIENT), Some(50000), Some(TCP_SYN | TCP_ACK))
    );
    // (In either order: the reply came over the ring as it arrived on worker 0 (`steer`),
    // the port forward's SYN after worker 0's slow path, and worker 1's pipeline may run
    // the second first: frames of different flows.)
    let mut w1_in = parsed(&lan_out1);
    w1_in.sort_by_key(|p| p.dport);
    assert_eq!(w1_in.len(), 2, "lan queue 1: {w1_in:?}\n{log}");
    assert_eq!((w1_in[0].src, w1_in[0].dst, w1_in[0].dport), (ip4(CLIENT), ip4(HOST1), Some(22)));
    assert_eq!((w1_in[1].dst, w1_in[1].dport), (ip4(HOST1), Some(PORT1)));

    // Every frame that arrived on a queue its worker does not own went over a ring.
    assert_eq!(stopped.expect_counter("worker:0 handoff_out"), 4, "{log}");
    assert_eq!(stopped.expect_counter("worker:1 handoff_in"), 4, "{log}");
    assert_eq!(stopped.expect_counter("worker:1 handoff_out"), 2, "{log}");
    assert_eq!(stopped.expect_counter("worker:0 handoff_in"), 2, "{log}");
    assert_eq!(stopped.expect_counter("worker:0 nat_sessions"), 1, "{log}");
    assert_eq!(stopped.expect_counter("worker:1 nat_sessions"), 2, "{log}");
    assert_eq!(drop_count(log, "eth_not_for_us"), Some(64), "{log}");
    assert_eq!(drop_count(log, "handoff_full"), Some(0), "{log}");
    assert!(log.contains("software handoff"), "{log}");
}

#[test]
fn more_workers_than_the_device_has_queues_is_a_clear_error() {
    let dir = TempDir::new("capture-mq-err");
    for n in ["lan_in0", "wan_in0"] {
        write_pcap::<Vec<u8>>(&dir.join(format!("{n}.pcap")), &[]);
    }
    let stopped = Masqd::start(&config(dir.path(), 1)).wait_exit(Duration::from_secs(20));
    assert!(!stopped.status.success());
    assert!(stopped.log.contains("supports 1 RX / 1 TX queues; 2 workers need one each"), "{}", stopped.log);
}
