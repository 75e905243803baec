//! End to end through the in-memory worker: frames in, frames out, time moved by hand.
//!
//! Frames are built, and every frame that comes out is checked, by `crate::testkit`,
//! written apart from masq's packet code: the IPv4 header checksum and the TCP, UDP or
//! ICMP checksum (UDP's 0 aside), and for ICMP errors the quoted datagram's header and,
//! when the quote holds it whole, its transport checksum.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::testkit::{self, TcpSeg};
use arc_swap::ArcSwap;

use crate::config::{Config, Filtering as ConfigFiltering};
use crate::counters::WorkerCounters;
use crate::io::mem::MemIo;
use crate::l3::neighbor::NeighborTable;
use crate::l3::route::RouteTable;
use crate::l3::router::Router;
use crate::nat::{ConnState, Endpoint, NatPath, Out2In, Proto, SharedRules, TcpState, Tuple, WorkerNat};
use crate::packet::ipv4::Ipv4Packet;
use crate::pipeline::FRAG_WAIT;
use crate::policy::Chain;
use crate::setup::{load_rules, nat_path, timeouts};
use crate::stats::DropReason;
use crate::time::Instant;
use crate::worker::Worker;

const LAN: u16 = 0;
const WAN: u16 = 1;
const MAC_LAN: [u8; 6] = [2, 0, 0, 0, 1, 1];
const MAC_WAN: [u8; 6] = [2, 0, 0, 0, 2, 1];
const GW: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];
const LAN_ADDR: [u8; 4] = [100, 64, 0, 1];
/// The WAN port's address: what MASQUERADE translates to.
const EXT: [u8; 4] = [203, 0, 113, 1];
const SERVER: [u8; 4] = [198, 51, 100, 7];
const STRANGER: [u8; 4] = [192, 0, 2, 99];
/// Inside hosts: H[0] = 100.64.0.2 ... H[2] = 100.64.0.4.
const H: [[u8; 4]; 3] = [[100, 64, 0, 2], [100, 64, 0, 3], [100, 64, 0, 4]];
const HMAC: [[u8; 6]; 3] = [[2, 0, 0, 0, 1, 2], [2, 0, 0, 0, 1, 3], [2, 0, 0, 0, 1, 4]];

const MASQ: &str = "*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";

const CONFIG: &str = r#"
[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "100.64.0.1/10"
[[port]]
name = "wan"
role = "outside"
device = "net_null1"
address = "203.0.113.1/24"
gateway = "203.0.113.254"
mtu = 1400
[workers]
cores = [1]
[nat]
max_sessions = 1024
[timeouts]
tcp = 100
tcpfin = 10
udp = 30
icmp = 20
"#;

struct Lab {
    w: Worker<MemIo>,
    c: Arc<WorkerCounters>,
    rules: SharedRules,
    config: Config,
    now: Instant,
}

fn lab(rules: &str) -> Lab {
    lab_with(rules, |_| {})
}

fn lab_with(rules: &str, tweak: impl FnOnce(&mut Config)) -> Lab {
    let mut config = Config::parse(CONFIG).unwrap();
    tweak(&mut config);
    let (set, compiled) = load_rules(rules, &config).unwrap_or_else(|e| panic!("{e}"));
    let shared: SharedRules = Arc::new(ArcSwap::from_pointee(compiled));
    let nat = nat_path(&config, &set, shared.clone(), timeouts(&config), 0, 1, 42).unwrap();
    let routes = Arc::new(RouteTable::from_config(&config));
    let neighbors = Arc::new(NeighborTable::new(64));
    neighbors.add_static(WAN, Ipv4Addr::new(203, 0, 113, 254), GW).unwrap();
    for (ip, mac) in H.iter().zip(HMAC) {
        neighbors.add_static(LAN, Ipv4Addr::from(*ip), mac).unwrap();
    }
    let c = Arc::new(WorkerCounters::default());
    let router = Router::new(routes, neighbors, vec![MAC_LAN, MAC_WAN], c.clone());
    let w = Worker::new(MemIo::new(2), router, c.clone()).with_nat(nat);
    Lab { w, c, rules: shared, config, now: Instant::from_secs(1) }
}

/// What a frame carries, as parsed by the testkit after checking every checksum.
#[derive(Debug, Clone)]
struct Seen {
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    /// ICMP type and code.
    icmp: (u8, u8),
    /// ICMP identifier (queries) or bytes 5..8 (errors).
    rest: [u8; 4],
    l4_csum: u16,
    payload: Vec<u8>,
}

impl Seen {
    fn ident(&self) -> u16 {
        u16::from_be_bytes([self.rest[0], self.rest[1]])
    }
}

/// Parse an IPv4 packet (no Ethernet) and check its checksums.
fn check_ip(ip: &[u8]) -> Seen {
    let p = testkit::parse_ipv4_packet(ip).expect("valid IPv4");
    assert!(p.ip_checksum_ok, "IPv4 header checksum");
    assert!(matches!(p.proto, 1 | 6 | 17), "unexpected transport {}", p.proto);
    assert!(p.l4_checksum_ok, "transport checksum (protocol {})", p.proto);
    Seen {
        src: p.src.octets(),
        dst: p.dst.octets(),
        ttl: p.ttl,
        sport: p.sport.unwrap_or(0),
        dport: p.dport.unwrap_or(0),
        tcp_flags: p.tcp_flags.unwrap_or(0),
        icmp: (p.icmp_type.unwrap_or(0), p.icmp_code.unwrap_or(0)),
        rest: p.icmp_rest.unwrap_or([0; 4]),
        l4_csum: p.l4_checksum.unwrap_or(0),
        payload: p.payload,
    }
}

/// Check a frame sent to `mac` and parse its IPv4 packet.
fn check(frame: &[u8], mac: [u8; 6]) -> Seen {
    assert_eq!(&frame[0..6], &mac, "destination MAC");
    assert_eq!(&frame[12..14], &[0x08, 0x00]);
    let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
    check_ip(&frame[14..14 + total])
}

fn from_host(h: usize) -> ([u8; 6], [u8; 6], [u8; 4]) {
    (HMAC[h], MAC_LAN, H[h])
}

fn udp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, payload: &[u8]) -> Vec<u8> {
    testkit::ethernet(src_mac, dst_mac, &testkit::ipv4(src, dst).udp(sp, dp, payload))
}

fn tcp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: &str) -> Vec<u8> {
    let ack = u32::from(flags.contains('A'));
    let seg = TcpSeg { window: 4096, ..TcpSeg::flags(flags, 1000, ack) };
    testkit::ethernet(src_mac, dst_mac, &testkit::ipv4(src, dst).tcp(sp, dp, seg, &[]))
}

fn echo(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4], ident: u16, request: bool) -> Vec<u8> {
    let ip = testkit::ipv4(src, dst);
    let packet = if request { ip.icmp_echo_request(ident, 1, b"ping") } else { ip.icmp_echo_reply(ident, 1, b"ping") };
    testkit::ethernet(src_mac, dst_mac, &packet)
}

fn host_udp(h: usize, sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
    let (sm, dm, src) = from_host(h);
    udp(sm, dm, src, sp, dst, dp, b"hello")
}

fn wan_udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
    udp(GW, MAC_WAN, src, sp, dst, dp, b"reply")
}

fn host_tcp(h: usize, sp: u16, dst: [u8; 4], dp: u16, flags: &str) -> Vec<u8> {
    let (sm, dm, src) = from_host(h);
    tcp(sm, dm, src, sp, dst, dp, flags)
}

fn wan_tcp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, flags: &str) -> Vec<u8> {
    tcp(GW, MAC_WAN, src, sp, dst, dp, flags)
}

/// An ICMP error (type, code) from `src` to `dst` quoting `quoted` (an IPv4 packet).
fn icmp_error(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    ty: u8,
    code: u8,
    quoted: &[u8],
) -> Vec<u8> {
    testkit::ethernet(src_mac, dst_mac, &testkit::ipv4(src, dst).icmp_error(ty, code, quoted))
}

impl Lab {
    fn send(&mut self, port: u16, frame: &[u8]) {
        self.w.io_mut().inject(port, frame);
        self.w.poll(self.now);
    }

    fn out(&mut self, port: u16) -> Vec<Vec<u8>> {
        self.w.io_mut().take_output(port)
    }

    /// Send, then expect exactly one frame, on `port`, and nothing on the other.
    fn through(&mut self, in_port: u16, frame: &[u8], out_port: u16) -> Vec<u8> {
        self.send(in_port, frame);
        let mut out = self.out(out_port);
        let other = self.out(1 - out_port);
        assert!(other.is_empty(), "unexpected frames on port {}: {}", 1 - out_port, other.len());
        assert_eq!(out.len(), 1, "one frame out on port {out_port}; drops: {:?}", self.drops());
        out.pop().unwrap()
    }

    /// Send and expect nothing out.
    fn dropped(&mut self, in_port: u16, frame: &[u8]) {
        self.send(in_port, frame);
        assert!(self.out(0).is_empty() && self.out(1).is_empty(), "expected a drop");
    }

    fn advance(&mut self, secs: u64) {
        self.advance_ms(secs * 1000);
    }

    fn advance_ms(&mut self, ms: u64) {
        self.now = self.now + crate::time::Duration::from_millis(ms);
        self.w.poll(self.now);
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL.iter().filter(|r| self.c.drops_for(**r) > 0).map(|r| (r.name(), self.c.drops_for(*r))).collect()
    }

    fn drop_count(&self, r: DropReason) -> u64 {
        self.c.drops_for(r)
    }

    fn nat(&self) -> &WorkerNat {
        self.w.nat().unwrap().nat()
    }

    fn path(&self) -> &NatPath {
        self.w.nat().unwrap()
    }

    /// Datagrams the NAT's fragment table remembers.
    fn nat_fragment_entries(&mut self) -> usize {
        self.w.nat_mut().unwrap().nat_mut().fragments().len()
    }
}

fn lan_to(h: usize) -> [u8; 6] {
    HMAC[h]
}

#[test]
fn masquerade_udp_out_and_back() {
    let mut l = lab(MASQ);
    let f = l.through(LAN, &host_udp(0, 40000, SERVER, 53), WAN);
    let s = check(&f, GW);
    assert_eq!((s.src, s.dst, s.sport, s.dport), (EXT, SERVER, 40000, 53), "source port kept when free");
    assert_eq!(s.ttl, 63);
    assert_eq!(s.payload, b"hello");
    let f = l.through(WAN, &wan_udp(SERVER, 53, EXT, 40000), LAN);
    let r = check(&f, lan_to(0));
    assert_eq!((r.src, r.dst, r.sport, r.dport), (SERVER, H[0], 53, 40000));
    assert_eq!(l.nat().count(), 1);
    assert_eq!(l.c.drops_total(), 0);
}

/// `allowed_sources` on the inside port (RFC 2827): listed sources go through, any other
/// source on that port is dropped at ip4-input as `source_not_allowed` before the NAT
/// sees it (no session, no subscriber), and the outside port is not filtered.
#[test]
fn inside_sources_outside_allowed_sources_are_dropped_and_counted() {
    let mut l = lab_with(MASQ, |c| c.ports[0].allowed_sources = vec!["100.64.0.2/31".parse().unwrap()]);
    // H[0] (.2) and H[1] (.3) are in 100.64.0.2/31; H[2] (.4) is not.
    for h in [0, 1] {
        let s = check(&l.through(LAN, &host_udp(h, 40000, SERVER, 53), WAN), GW);
        assert_eq!((s.src, s.dst), (EXT, SERVER));
    }
    l.dropped(LAN, &host_udp(2, 40000, SERVER, 53));
    l.dropped(LAN, &host_tcp(2, 40001, SERVER, 80, "S"));
    l.dropped(LAN, &echo(HMAC[2], MAC_LAN, H[2], LAN_ADDR, 7, true));
    // A spoofed source from nowhere near the subscribers' prefix, and one of the
    // outside's addresses sent from the inside.
    l.dropped(LAN, &udp(HMAC[0], MAC_LAN, [10, 9, 9, 9], 1234, SERVER, 53, b"spoof"));
    l.dropped(LAN, &udp(HMAC[0], MAC_LAN, SERVER, 1234, STRANGER, 53, b"spoof"));
    assert_eq!(l.drop_count(DropReason::SourceNotAllowed), 5);
    assert_eq!(l.drops(), [("source_not_allowed", 5)], "nothing else dropped");
    assert_eq!(l.nat().count(), 2, "no session for a refused source");
    // The outside port takes any source: the reply comes back.
    let r = check(&l.through(WAN, &wan_udp(SERVER, 53, EXT, 40000), LAN), lan_to(0));
    assert_eq!(r.dst, H[0]);
    // Without the list, the same frame goes through.
    let mut open = lab(MASQ);
    open.through(LAN, &host_udp(2, 40000, SERVER, 53), WAN);
    assert_eq!(open.drop_count(DropReason::SourceNotAllowed), 0);
}

/// Every stage counts the packets that reached it, one call per burst, and the cycles
/// between the counter reads before and after it (MemIo's fake counter advances 100 per
/// read: one read per stage call).
#[test]
fn the_runtime_table_counts_each_stage_once_per_burst() {
    use super::Stage;
    let mut l = lab(MASQ);
    // One burst: a new flow's first two packets (both slow: the session is created by
    // the first), a bad checksum, a ping to the router.
    let mut bad = host_udp(1, 40001, SERVER, 53);
    bad[14 + 10] ^= 0xff;
    for f in [host_udp(0, 40000, SERVER, 53), host_udp(0, 40000, SERVER, 53), bad] {
        l.w.io_mut().inject(LAN, &f);
    }
    l.w.io_mut().inject(LAN, &echo(HMAC[0], MAC_LAN, H[0], LAN_ADDR, 9, true));
    l.w.poll(l.now);
    assert_eq!(l.out(WAN).len(), 2);
    assert_eq!(l.out(LAN).len(), 1, "the echo reply");
    let r = l.w.runtime().clone();
    let seen = |s: Stage| {
        let f = r.stage(s);
        (f.calls, f.packets)
    };
    assert_eq!(seen(Stage::PortRx), (1, 4));
    assert_eq!(seen(Stage::L2Input), (1, 4));
    assert_eq!(seen(Stage::Ip4Input), (1, 4));
    assert_eq!(seen(Stage::NatClassify), (1, 3), "the bad checksum stopped at ip4-input");
    assert_eq!(seen(Stage::NatLookup), (1, 3));
    assert_eq!(seen(Stage::NatSlowpath), (1, 3), "no session yet for any of them");
    assert_eq!(seen(Stage::Ip4Forward), (1, 3));
    assert_eq!(seen(Stage::NatRewrite), (1, 2), "the ping to the router is not translated");
    assert_eq!(seen(Stage::Ip4Local), (1, 1));
    assert_eq!(seen(Stage::L2Output), (1, 3));
    assert_eq!(seen(Stage::Drop), (1, 1));
    assert_eq!(seen(Stage::PortTx), (1, 3));
    assert_eq!(seen(Stage::Handoff), (0, 0));
    for s in [Stage::PortRx, Stage::L2Input, Stage::NatLookup, Stage::Drop] {
        assert_eq!(r.stage(s).cycles, 100, "{s:?}: one counter read after it, 100 apart");
    }
    // The next burst of the flow hits the fast path: lookup, forward, rewrite, out.
    l.w.io_mut().inject(LAN, &host_udp(0, 40000, SERVER, 53));
    l.w.poll(l.now);
    assert_eq!((seen(Stage::NatLookup), seen(Stage::NatSlowpath)), ((2, 4), (1, 3)));
    assert_eq!(seen(Stage::NatRewrite), (2, 3));
    // Counting off: nothing more is recorded.
    l.w.set_runtime_counting(false);
    l.w.io_mut().inject(LAN, &host_udp(0, 40000, SERVER, 53));
    l.w.poll(l.now);
    assert_eq!(seen(Stage::NatLookup), (2, 4));
    assert_eq!(l.out(WAN).len(), 2, "still forwarded");
}

/// The longest pass of the poll loop and the slow ones: a pass that did something is
/// timed from its first counter read to one after the mailbox (MemIo's fake counter:
/// 100 per read), an idle pass is not timed at all.
#[test]
fn the_longest_pass_and_slow_passes_are_counted_idle_passes_cost_nothing() {
    use super::Stage;
    let mut l = lab(MASQ);
    let r = l.w.runtime().clone();
    // Threshold 0: every timed pass counts as slow.
    r.set_slow_threshold(0);
    l.w.poll(l.now); // the first pass runs the timers and the mailbox: timed
    assert_eq!(r.passes().slow, 1);
    let first = r.passes().max_cycles;
    l.w.poll(l.now);
    l.w.poll(l.now);
    assert_eq!(r.passes().slow, 1, "idle passes are not timed");
    r.set_slow_threshold(1000);
    l.w.io_mut().inject(LAN, &host_udp(0, 40000, SERVER, 53));
    l.w.poll(l.now);
    assert_eq!(l.out(WAN).len(), 1);
    // Every stage that ran in this pass was charged 100 (one read after it); the pass is
    // those reads plus the one at its end.
    let staged: u64 = r.figures().iter().map(|f| f.cycles).sum::<u64>() - (first - 100);
    assert_eq!(r.passes().max_cycles, staged + 100);
    assert_eq!(staged, 1000, "ten stages ran");
    assert_eq!(r.passes().slow, 2, "longer than the threshold");
    // A fast-path packet: a shorter pass; the maximum stays, nothing more is slow.
    r.set_slow_threshold(u64::MAX);
    l.w.io_mut().inject(LAN, &host_udp(0, 40000, SERVER, 53));
    l.w.poll(l.now);
    assert_eq!(r.passes().max_cycles, staged + 100);
    assert_eq!(r.passes().slow, 2);
    assert_eq!(r.stage(Stage::NatLookup).max_cycles, 100);
}

/// Several packets of one new flow in one burst: all miss in nat-lookup, the first
/// creates the session in nat-slowpath, the others find it there (not a second one).
#[test]
fn packets_of_a_new_flow_in_one_burst_share_one_session() {
    let mut l = lab(MASQ);
    for _ in 0..3 {
        l.w.io_mut().inject(LAN, &host_udp(0, 40000, SERVER, 53));
        l.w.io_mut().inject(LAN, &host_udp(1, 40000, SERVER, 53));
    }
    l.w.poll(l.now);
    let out: Vec<Seen> = l.out(WAN).iter().map(|f| check(f, GW)).collect();
    assert_eq!(out.len(), 6, "drops: {:?}", l.drops());
    assert_eq!(l.nat().count(), 2);
    let ports: std::collections::BTreeSet<u16> = out.iter().map(|s| s.sport).collect();
    assert_eq!(ports.len(), 2, "one external port per host, the same for each of its packets");
    assert_eq!(l.c.drops_total(), 0);
}

/// Two inside hosts open a flow to each other's mapping in the same burst (hole
/// punching through the hairpin). The first packet's hairpin opens a session on the
/// second host's mapping; the second host's packet, later in the burst, has exactly that
/// session's inside key though nat-lookup missed it: the slow path must find it, not
/// take the packet for a new flow (a duplicate tuple, refused).
#[test]
fn a_session_the_burst_opened_serves_a_later_packet_of_the_same_burst() {
    let mut l = lab(MASQ);
    let pa = check(&l.through(LAN, &host_udp(0, 5000, SERVER, 3478), WAN), GW).sport;
    let pb = check(&l.through(LAN, &host_udp(1, 6000, SERVER, 3478), WAN), GW).sport;
    l.w.io_mut().inject(LAN, &host_udp(0, 5000, EXT, pb));
    l.w.io_mut().inject(LAN, &host_udp(1, 6000, EXT, pa));
    l.w.poll(l.now);
    let mut out: Vec<Seen> = l.out(LAN).iter().map(|f| check_ip(&f[14..])).collect();
    assert_eq!(out.len(), 2, "drops: {:?}", l.drops());
    out.sort_by_key(|s| s.dst);
    assert_eq!((out[0].src, out[0].sport, out[0].dst, out[0].dport), (EXT, pb, H[0], 5000));
    assert_eq!((out[1].src, out[1].sport, out[1].dst, out[1].dport), (EXT, pa, H[1], 6000));
    assert_eq!(l.c.drops_total(), 0);
}

/// A backend burst larger than the vector (256 frames) is run in vector-sized parts.
#[test]
fn a_burst_larger_than_the_vector_is_run_in_parts() {
    use super::{Stage, MAX_BURST};
    let mut l = lab(MASQ);
    l.w.io_mut().burst = 300;
    for i in 0..300u16 {
        l.w.io_mut().inject(LAN, &host_udp(0, 10000 + i, SERVER, 53));
    }
    assert_eq!(l.w.poll(l.now), 300);
    assert_eq!(l.out(WAN).len(), 300);
    assert_eq!(l.c.drops_total(), 0);
    let r = l.w.runtime();
    assert_eq!((r.stage(Stage::L2Input).calls, r.stage(Stage::L2Input).packets), (2, 300));
    assert_eq!(r.stage(Stage::PortRx).packets, 300);
    assert_eq!(MAX_BURST, 256);
}

#[test]
fn masquerade_tcp_and_icmp_echo() {
    let mut l = lab(MASQ);
    let s = check(&l.through(LAN, &host_tcp(0, 33000, SERVER, 443, "S"), WAN), GW);
    assert_eq!((s.src, s.sport, s.tcp_flags), (EXT, 33000, 0x02));
    let r = check(&l.through(WAN, &wan_tcp(SERVER, 443, EXT, 33000, "SA"), LAN), lan_to(0));
    assert_eq!((r.dst, r.dport, r.tcp_flags), (H[0], 33000, 0x12));

    let (sm, dm, src) = from_host(1);
    let s = check(&l.through(LAN, &echo(sm, dm, src, SERVER, 77, true), WAN), GW);
    assert_eq!((s.src, s.icmp, s.ident()), (EXT, (8, 0), 77));
    let r = check(&l.through(WAN, &echo(GW, MAC_WAN, SERVER, EXT, 77, false), LAN), lan_to(1));
    assert_eq!((r.src, r.dst, r.icmp, r.ident()), (SERVER, H[1], (0, 0), 77));
    // An echo *request* from outside with that identifier is not a reply: the router
    // answers it itself.
    let f = l.through(WAN, &echo(GW, MAC_WAN, SERVER, EXT, 77, true), WAN);
    let a = check(&f, GW);
    assert_eq!((a.src, a.dst, a.icmp), (EXT, SERVER, (0, 0)));
}

#[test]
fn two_hosts_same_port_get_distinct_external_ports() {
    let mut l = lab(MASQ);
    let a = check(&l.through(LAN, &host_udp(0, 5000, SERVER, 53), WAN), GW);
    let b = check(&l.through(LAN, &host_udp(1, 5000, SERVER, 53), WAN), GW);
    assert_eq!((a.src, b.src), (EXT, EXT), "the server sees only the external address");
    assert_eq!(a.sport, 5000);
    assert_ne!(a.sport, b.sport);
    assert!(b.sport >= 1024);
    let ra = check(&l.through(WAN, &wan_udp(SERVER, 53, EXT, a.sport), LAN), lan_to(0));
    let rb = check(&l.through(WAN, &wan_udp(SERVER, 53, EXT, b.sport), LAN), lan_to(1));
    assert_eq!((ra.dst, ra.dport), (H[0], 5000));
    assert_eq!((rb.dst, rb.dport), (H[1], 5000));
}

#[test]
fn privileged_ports_stay_privileged() {
    let mut l = lab(MASQ);
    let a = check(&l.through(LAN, &host_udp(0, 123, SERVER, 123), WAN), GW);
    let b = check(&l.through(LAN, &host_udp(1, 123, SERVER, 123), WAN), GW);
    assert_eq!(a.sport, 123);
    assert!(b.sport < 1024 && b.sport != 123, "{}", b.sport);
}

#[test]
fn udp_checksum_zero_stays_zero() {
    let mut l = lab(MASQ);
    let mut f = host_udp(0, 40000, SERVER, 53);
    f[14 + 20 + 6] = 0;
    f[14 + 20 + 7] = 0;
    let s = check(&l.through(LAN, &f, WAN), GW);
    assert_eq!((s.src, s.l4_csum), (EXT, 0));
    let mut r = wan_udp(SERVER, 53, EXT, 40000);
    r[14 + 20 + 6] = 0;
    r[14 + 20 + 7] = 0;
    let back = check(&l.through(WAN, &r, LAN), lan_to(0));
    assert_eq!((back.dst, back.l4_csum), (H[0], 0));
}

#[test]
fn dnat_port_forward_in_and_replies_out() {
    let rules = "*nat\n-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.3:22\n\
                 -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
    let mut l = lab(rules);
    let client = [192, 0, 2, 50];
    let s = check(&l.through(WAN, &wan_tcp(client, 50000, EXT, 2222, "S"), LAN), lan_to(1));
    assert_eq!((s.src, s.sport, s.dst, s.dport), (client, 50000, H[1], 22));
    let r = check(&l.through(LAN, &host_tcp(1, 22, client, 50000, "SA"), WAN), GW);
    assert_eq!((r.src, r.sport, r.dst, r.dport), (EXT, 2222, client, 50000));
    let s = check(&l.through(WAN, &wan_tcp(client, 50000, EXT, 2222, "A"), LAN), lan_to(1));
    assert_eq!(s.dport, 22);
    let sess = l.nat().lookup_in2out(&Tuple::new(
        Endpoint::new(H[1].into(), 22),
        Endpoint::new(client.into(), 50000),
        Proto::Tcp,
    ));
    assert_eq!(sess.unwrap().state(), ConnState::Tcp(TcpState::Established));
    // The forwarded port is never handed to a masqueraded flow.
    let m = check(&l.through(LAN, &host_tcp(0, 2222, SERVER, 80, "S"), WAN), GW);
    assert_ne!(m.sport, 2222);
    // Other ports are not forwarded.
    l.dropped(WAN, &wan_tcp(client, 50000, EXT, 2223, "S"));
    assert_eq!(l.drop_count(DropReason::NoSession), 1);
}

#[test]
fn redirect_pings_to_the_router_and_tcp_to_its_address() {
    let rules = "*nat\n-A PREROUTING -i lan -p icmp -j REDIRECT\n\
                 -A PREROUTING -i wan -p tcp --dport 8080 -j REDIRECT --to-ports 80\nCOMMIT\n";
    let mut l = lab(rules);
    // Pings from the LAN to anywhere are answered by the router, as the address asked.
    let (sm, dm, src) = from_host(0);
    let r = check(&l.through(LAN, &echo(sm, dm, src, SERVER, 9, true), LAN), lan_to(0));
    assert_eq!((r.src, r.dst, r.icmp, r.ident()), (SERVER, H[0], (0, 0), 9));
    assert_eq!(r.payload, b"ping");
    // TCP redirected to the router's own port 80: masq has no local stack.
    l.dropped(WAN, &wan_tcp(STRANGER, 4000, EXT, 8080, "S"));
    assert_eq!(l.drop_count(DropReason::LocalUnhandled), 1);
    let t = Tuple::new(Endpoint::new(STRANGER.into(), 4000), Endpoint::new(EXT.into(), 8080), Proto::Tcp);
    let Out2In::Session(s) = l.nat().lookup_out2in(&t) else { panic!("REDIRECT session") };
    assert_eq!(s.inside(), Endpoint::new(EXT.into(), 80));
}

#[test]
fn hairpinning_udp() {
    let mut l = lab(MASQ);
    // H1 has a mapping (it talked to a server); H0 sends to H1's external endpoint.
    let b = check(&l.through(LAN, &host_udp(1, 6000, SERVER, 3478), WAN), GW);
    let a_in = l.through(LAN, &host_udp(0, 7000, EXT, b.sport), LAN);
    let a = check(&a_in, lan_to(1));
    assert_eq!((a.src, a.sport), (EXT, 7000), "the target sees the sender's external endpoint");
    assert_eq!((a.dst, a.dport), (H[1], 6000));
    assert_eq!(a.ttl, 63);
    // H1 answers the external endpoint it saw; H0 hears from H1's external endpoint.
    let back = check(&l.through(LAN, &host_udp(1, 6000, EXT, 7000), LAN), lan_to(0));
    assert_eq!((back.src, back.sport, back.dst, back.dport), (EXT, b.sport, H[0], 7000));
    assert_eq!(l.path().counters().hairpinned, 2);
}

#[test]
fn hairpinning_tcp_through_a_port_forward() {
    let rules = "*nat\n-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.3:22\n\
                 -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
    let mut l = lab(rules);
    let s = check(&l.through(LAN, &host_tcp(0, 40000, EXT, 2222, "S"), LAN), lan_to(1));
    assert_eq!((s.src, s.sport, s.dst, s.dport, s.tcp_flags), (EXT, 40000, H[1], 22, 0x02));
    let r = check(&l.through(LAN, &host_tcp(1, 22, EXT, 40000, "SA"), LAN), lan_to(0));
    assert_eq!((r.src, r.sport, r.dst, r.dport), (EXT, 2222, H[0], 40000));
}

#[test]
fn hairpinning_icmp_echo() {
    // To another host, through an ICMP forward on a second external address (the
    // sender's own external address would name both flows alike: an echo carries one
    // identifier, no ports).
    let rules = "*nat\n-A PREROUTING -d 203.0.113.10 -p icmp -j DNAT --to-destination 100.64.0.3\n\
                 -A POSTROUTING -o wan -s 100.64.0.4 -j SNAT --to-source 203.0.113.10\n\
                 -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
    let mut l = lab(rules);
    let pub2 = [203, 0, 113, 10];
    let (sm, dm, src) = from_host(0);
    let q = check(&l.through(LAN, &echo(sm, dm, src, pub2, 55, true), LAN), lan_to(1));
    assert_eq!((q.src, q.dst, q.icmp, q.ident()), (EXT, H[1], (8, 0), 55), "the target sees the sender's external");
    let (sm, dm, src) = from_host(1);
    let r = check(&l.through(LAN, &echo(sm, dm, src, EXT, 55, false), LAN), lan_to(0));
    assert_eq!((r.src, r.dst, r.icmp, r.ident()), (pub2, H[0], (0, 0), 55));
    assert_eq!(l.path().counters().hairpinned, 2);

    // To the router's own external address: answered, through the NAT.
    let (sm, dm, src) = from_host(2);
    let r = check(&l.through(LAN, &echo(sm, dm, src, EXT, 66, true), LAN), lan_to(2));
    assert_eq!((r.src, r.dst, r.icmp, r.ident()), (EXT, H[2], (0, 0), 66));
}

fn filtering(mode: ConfigFiltering) -> (Lab, u16) {
    let mut l = lab_with(MASQ, |c| c.nat.filtering = mode);
    let s = check(&l.through(LAN, &host_udp(0, 5000, SERVER, 3478), WAN), GW);
    (l, s.sport)
}

#[test]
fn endpoint_independent_filtering() {
    let (mut l, p) = filtering(ConfigFiltering::EndpointIndependent);
    let r = check(&l.through(WAN, &wan_udp(STRANGER, 1111, EXT, p), LAN), lan_to(0));
    assert_eq!((r.src, r.sport, r.dst, r.dport), (STRANGER, 1111, H[0], 5000));
    // The host answers the stranger through the same mapping.
    let s = check(&l.through(LAN, &host_udp(0, 5000, STRANGER, 1111), WAN), GW);
    assert_eq!((s.src, s.sport), (EXT, p));
    assert_eq!(l.nat().mapping_count(), 1);
}

#[test]
fn address_dependent_filtering() {
    let (mut l, p) = filtering(ConfigFiltering::AddressDependent);
    let r = check(&l.through(WAN, &wan_udp(SERVER, 9999, EXT, p), LAN), lan_to(0));
    assert_eq!(r.sport, 9999);
    l.dropped(WAN, &wan_udp(STRANGER, 3478, EXT, p));
    assert_eq!(l.drop_count(DropReason::FilteredEndpoint), 1);
}

#[test]
fn address_and_port_dependent_filtering() {
    let (mut l, p) = filtering(ConfigFiltering::AddressPortDependent);
    l.dropped(WAN, &wan_udp(SERVER, 9999, EXT, p));
    assert_eq!(l.drop_count(DropReason::FilteredEndpoint), 1);
    check(&l.through(WAN, &wan_udp(SERVER, 3478, EXT, p), LAN), lan_to(0));
}

#[test]
fn port_unreachable_from_the_server_reaches_the_right_host() {
    let mut l = lab(MASQ);
    let a = check(&l.through(LAN, &host_udp(0, 40000, SERVER, 53), WAN), GW);
    let b = l.through(LAN, &host_udp(1, 40000, SERVER, 53), WAN);
    let bs = check(&b, GW);
    assert_eq!(a.sport, 40000);
    assert_ne!(bs.sport, 40000);
    // The server quotes the whole datagram it got from H1's mapping.
    let quoted = &b[14..];
    let err = icmp_error(GW, MAC_WAN, SERVER, EXT, 3, 3, quoted);
    let e = check(&l.through(WAN, &err, LAN), lan_to(1));
    assert_eq!((e.src, e.dst, e.icmp), (SERVER, H[1], (3, 3)));
    // The quote, checked on its own: H1's datagram as it left H1 (but one hop older).
    let q = check_ip(&e.payload);
    assert_eq!((q.src, q.sport, q.dst, q.dport), (H[1], 40000, SERVER, 53));
    assert_eq!(q.ttl, 63);
    assert_eq!(q.payload, b"hello");
    let mut sent = host_udp(1, 40000, SERVER, 53)[14..].to_vec();
    Ipv4Packet::new_unchecked(&mut sent[..]).decrement_ttl();
    assert_eq!(e.payload, sent, "quote byte for byte");
    // An 8-byte quote (RFC 792) works the same; the quoted IPv4 header verifies.
    let err = icmp_error(GW, MAC_WAN, SERVER, EXT, 3, 3, &quoted[..28]);
    let e = check(&l.through(WAN, &err, LAN), lan_to(1));
    assert_eq!(e.payload, sent[..28]);
    assert_eq!(l.path().counters().icmp_errors, 2);
    // An error about nothing of ours is dropped.
    let mut other = quoted.to_vec();
    other[20..22].copy_from_slice(&999u16.to_be_bytes());
    l.dropped(WAN, &icmp_error(GW, MAC_WAN, SERVER, EXT, 3, 3, &other));
    assert_eq!(l.drop_count(DropReason::NoSession), 1);
    // A corrupted ICMP checksum is refused.
    let mut bad = icmp_error(GW, MAC_WAN, SERVER, EXT, 3, 3, quoted);
    *bad.last_mut().unwrap() ^= 0xff;
    l.dropped(WAN, &bad);
    assert_eq!(l.drop_count(DropReason::L4BadChecksum), 1);
}

#[test]
fn icmp_error_from_inside_about_a_forwarded_flow() {
    let rules = "*nat\n-A PREROUTING -i wan -p udp --dport 5353 -j DNAT --to-destination 100.64.0.3:53\nCOMMIT\n";
    let mut l = lab(rules);
    let client = [192, 0, 2, 50];
    let arrived = wan_udp(client, 7777, EXT, 5353);
    let d = l.through(WAN, &arrived, LAN);
    check(&d, lan_to(1));
    let t = Tuple::new(Endpoint::new(H[1].into(), 53), Endpoint::new(client.into(), 7777), Proto::Udp);
    let before = l.nat().lookup_in2out(&t).unwrap().expires_ms();
    l.advance(5);
    // H1 has nothing on port 53: it says so, quoting what it got.
    let (sm, dm, src) = from_host(1);
    let err = icmp_error(sm, dm, src, client, 3, 3, &d[14..]);
    let e = check(&l.through(LAN, &err, WAN), GW);
    assert_eq!((e.src, e.dst, e.icmp), (EXT, client, (3, 3)));
    let q = check_ip(&e.payload);
    assert_eq!((q.src, q.sport, q.dst, q.dport), (client, 7777, EXT, 5353));
    let mut want = arrived[14..].to_vec();
    Ipv4Packet::new_unchecked(&mut want[..]).decrement_ttl();
    assert_eq!(e.payload, want, "the client gets back what it sent");
    assert_eq!(l.nat().lookup_in2out(&t).unwrap().expires_ms(), before, "an ICMP error refreshes nothing");
}

#[test]
fn tcp_lifecycle_with_short_timers() {
    let mut l = lab(MASQ);
    let t = Tuple::new(Endpoint::new(H[0].into(), 5555), Endpoint::new(SERVER.into(), 80), Proto::Tcp);
    let state = |l: &Lab| l.nat().lookup_in2out(&t).map(|s| s.state());
    use crate::nat::{ConnState::Tcp, TcpState::*};
    let p = check(&l.through(LAN, &host_tcp(0, 5555, SERVER, 80, "S"), WAN), GW).sport;
    assert_eq!(state(&l), Some(Tcp(SynSent)));
    l.through(WAN, &wan_tcp(SERVER, 80, EXT, p, "SA"), LAN);
    l.through(LAN, &host_tcp(0, 5555, SERVER, 80, "A"), WAN);
    assert_eq!(state(&l), Some(Tcp(Established)));
    // Established: the long timer (100 s here).
    l.advance(60);
    l.through(WAN, &wan_tcp(SERVER, 80, EXT, p, "A"), LAN);
    l.advance(60);
    assert_eq!(state(&l), Some(Tcp(Established)), "inbound packets refresh an established session");
    l.through(LAN, &host_tcp(0, 5555, SERVER, 80, "FA"), WAN);
    l.through(WAN, &wan_tcp(SERVER, 80, EXT, p, "FA"), LAN);
    assert_eq!(state(&l), Some(Tcp(TimeWait)));
    l.advance(9);
    assert!(state(&l).is_some());
    l.advance(2);
    assert_eq!(state(&l), None, "transitory timer (10 s) after the close");
    assert_eq!(l.c.nat_sessions_expired.get(), 1);
    l.dropped(WAN, &wan_tcp(SERVER, 80, EXT, p, "A"));
    assert_eq!(l.drop_count(DropReason::NoSession), 1);

    // RST: translated, then the session lives out the transitory time.
    let p = check(&l.through(LAN, &host_tcp(0, 6666, SERVER, 80, "S"), WAN), GW).sport;
    l.through(WAN, &wan_tcp(SERVER, 80, EXT, p, "SA"), LAN);
    l.through(LAN, &host_tcp(0, 6666, SERVER, 80, "A"), WAN);
    let r = check(&l.through(LAN, &host_tcp(0, 6666, SERVER, 80, "RA"), WAN), GW);
    assert_eq!((r.src, r.sport, r.tcp_flags & 0x04), (EXT, p, 0x04));
    let t2 = Tuple::new(Endpoint::new(H[0].into(), 6666), Endpoint::new(SERVER.into(), 80), Proto::Tcp);
    assert_eq!(l.nat().lookup_in2out(&t2).unwrap().state(), Tcp(Closed));
    l.advance(5);
    l.through(WAN, &wan_tcp(SERVER, 80, EXT, p, "A"), LAN);
    l.advance(6);
    assert!(l.nat().lookup_in2out(&t2).is_none());
}

#[test]
fn subscriber_limit_sends_host_unreachable() {
    let mut l = lab_with(MASQ, |c| c.nat.ports_per_subscriber = 2);
    l.through(LAN, &host_udp(0, 1000, SERVER, 53), WAN);
    l.through(LAN, &host_udp(0, 1001, SERVER, 53), WAN);
    let refused = host_udp(0, 1002, SERVER, 53);
    let e = check(&l.through(LAN, &refused, LAN), lan_to(0));
    assert_eq!((e.src, e.dst, e.icmp), (LAN_ADDR, H[0], (3, 1)));
    assert_eq!(e.payload, refused[14..14 + 28], "quotes the refused packet");
    assert_eq!(l.drop_count(DropReason::SubscriberLimit), 1);
    l.advance(1);
    assert_eq!(l.c.nat_create_failed_subscriber_limit.get(), 1);
    // Existing mappings keep working; other subscribers are unaffected.
    l.through(LAN, &host_udp(0, 1000, [9, 9, 9, 9], 53), WAN);
    l.through(LAN, &host_udp(1, 1002, SERVER, 53), WAN);
}

/// Split an IPv4 packet (from an Ethernet frame) into two fragments at `at` (a
/// multiple of 8) of its payload, with identification `id`.
fn fragments(frame: &[u8], at: usize, id: u16) -> (Vec<u8>, Vec<u8>) {
    let (eth, ip) = frame.split_at(14);
    let (first, later) = testkit::fragments(ip, id, at);
    ([eth, &first].concat(), [eth, &later].concat())
}

fn frag_parts(frame: &[u8]) -> (Ipv4Packet<&[u8]>, &[u8]) {
    let p = Ipv4Packet::new_checked(&frame[14..]).unwrap();
    assert!(p.verify_checksum());
    let total = usize::from(p.total_len());
    (p, &frame[14 + 20..14 + total])
}

#[test]
fn fragments_first_later_and_out_of_order() {
    let mut l = lab(MASQ);
    let (sm, dm, src) = from_host(0);
    let whole = udp(sm, dm, src, 4444, SERVER, 9, &[0x5a; 100]);
    let (first, later) = fragments(&whole, 48, 0x1111);
    let f1 = l.through(LAN, &first, WAN);
    let f2 = l.through(LAN, &later, WAN);
    let (p1, d1) = frag_parts(&f1);
    let (p2, d2) = frag_parts(&f2);
    assert_eq!((p1.src_addr(), p2.src_addr()), (Ipv4Addr::from(EXT), Ipv4Addr::from(EXT)));
    assert!(p1.more_frags() && p2.frag_offset() == 48);
    // Reassembled, the datagram's UDP checksum verifies with the new source.
    let mut datagram = Vec::new();
    datagram.extend_from_slice(&f1[14..34]);
    datagram.extend_from_slice(d1);
    datagram.extend_from_slice(d2);
    let mut ip = Ipv4Packet::new_unchecked(&mut datagram[..]);
    ip.set_total_len((20 + d1.len() + d2.len()) as u16);
    ip.clear_flags();
    ip.set_frag_offset(0);
    ip.fill_checksum();
    let s = check_ip(&datagram);
    assert_eq!((s.src, s.sport), (EXT, 4444));
    assert_eq!(l.path().counters().fragments, 1);

    // A later fragment that overtakes its first waits (RFC 4787 REQ-14): nothing goes
    // out, nothing is dropped; when the first arrives, both leave translated, first first.
    let (first, later) = fragments(&whole, 48, 0x2222);
    l.send(LAN, &later);
    assert!(l.out(WAN).is_empty() && l.out(LAN).is_empty(), "parked");
    assert_eq!(l.drop_count(DropReason::FragmentNoState), 0);
    l.send(LAN, &first);
    let out = l.out(WAN);
    assert_eq!(out.len(), 2, "first fragment, then the parked one; drops: {:?}", l.drops());
    let (p1, _) = frag_parts(&out[0]);
    let (p2, _) = frag_parts(&out[1]);
    assert_eq!((p1.frag_offset(), p2.frag_offset()), (0, 48));
    assert_eq!((p1.src_addr(), p2.src_addr()), (Ipv4Addr::from(EXT), Ipv4Addr::from(EXT)));
    // An orphan whose first fragment never comes is dropped when its wait is over.
    let (_, orphan) = fragments(&whole, 48, 0x2323);
    l.send(LAN, &orphan);
    l.advance_ms(FRAG_WAIT.as_millis() - 1);
    assert_eq!(l.drop_count(DropReason::FragmentNoState), 0, "still waiting");
    l.advance_ms(1);
    assert_eq!(l.drop_count(DropReason::FragmentNoState), 1, "dropped when its wait is over");
    assert!(l.out(WAN).is_empty());
    assert_eq!((l.c.fragments_waited.get(), l.c.fragments_retried.get(), l.w.deferred()), (2, 1, 0));

    // Fragmented replies come back in too.
    let long = udp(GW, MAC_WAN, SERVER, 9, EXT, 4444, &[7; 64]);
    let (r1, r2) = fragments(&long, 32, 0x3333);
    let q1 = l.through(WAN, &r1, LAN);
    let q2 = l.through(WAN, &r2, LAN);
    assert_eq!(frag_parts(&q1).0.dst_addr(), Ipv4Addr::from(H[0]));
    assert_eq!(frag_parts(&q2).0.dst_addr(), Ipv4Addr::from(H[0]));
}

/// The fragments of `frame` (an Ethernet frame) with `size` payload bytes each, in order.
fn fragments_n(frame: &[u8], size: usize, id: u16) -> Vec<Vec<u8>> {
    let (eth, ip) = frame.split_at(14);
    testkit::fragments_of(ip, id, size).into_iter().map(|f| [eth, &f].concat()).collect()
}

/// Put translated fragments (any order, one datagram, each whole) back together and
/// check the datagram: its IPv4 and transport checksums must verify.
fn reassemble(frames: &[Vec<u8>]) -> Seen {
    let mut parts: Vec<(usize, u16, &[u8])> = frames
        .iter()
        .map(|f| {
            let (p, data) = frag_parts(f);
            (usize::from(p.frag_offset()), p.ident(), data)
        })
        .collect();
    parts.sort_by_key(|p| p.0);
    let mut datagram =
        frames.iter().find(|f| frag_parts(f).0.frag_offset() == 0).expect("first fragment")[14..34].to_vec();
    for (offset, id, data) in &parts {
        assert_eq!(*offset, datagram.len() - 20, "fragments contiguous");
        assert_eq!(*id, parts[0].1, "one datagram");
        datagram.extend_from_slice(data);
    }
    let len = datagram.len() as u16;
    let mut ip = Ipv4Packet::new_unchecked(&mut datagram[..]);
    ip.set_total_len(len);
    ip.clear_flags();
    ip.set_frag_offset(0);
    ip.fill_checksum();
    check_ip(&datagram)
}

/// Later fragments with made-up IP IDs, `n` at a time on each port: from a spoofing
/// inside host to a server, and from a stranger to our external address. Each pass
/// (32 frames a port) one millisecond apart. Returns how many were sent.
fn spray_bogus_fragments(l: &mut Lab, n: usize, seed: &mut u32) -> u64 {
    let (sm, dm, src) = from_host(2);
    let inside = udp(sm, dm, src, 5000, SERVER, 9, &[0xee; 64]);
    let outside = udp(GW, MAC_WAN, STRANGER, 5000, EXT, 9, &[0xee; 64]);
    for _ in 0..n {
        *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let id = (*seed >> 16) as u16;
        l.w.io_mut().inject(LAN, &fragments(&inside, 32, id).1);
        l.w.io_mut().inject(WAN, &fragments(&outside, 32, id ^ 0x5555).1);
    }
    while !l.w.io().input.iter().all(|q| q.is_empty()) {
        l.now = l.now + crate::time::Duration::from_millis(1);
        l.w.poll(l.now);
    }
    2 * n as u64
}

/// Issue 11 item 4: later fragments nobody sent a first fragment for (made-up IP IDs, a
/// flood) take neither the fragment table nor the waiting area from real datagrams, and
/// each costs one slow-path visit: nothing is retried until its first fragment comes.
#[test]
fn a_flood_of_bogus_later_fragments_does_not_stop_real_fragmented_datagrams() {
    use crate::pipeline::{Stage, FRAG_WAIT_CAPACITY};
    let mut l = lab(MASQ);
    let slow = |l: &Lab| l.w.runtime().stage(Stage::NatSlowpath).packets;
    let mut seed = 7;
    let mut bogus = spray_bogus_fragments(&mut l, 1500, &mut seed);
    // Each bogus fragment went through the slow path once; none was run again.
    assert_eq!(slow(&l), bogus, "slow-path visits");
    assert_eq!(l.c.fragments_retried.get(), 0);
    assert_eq!(l.w.deferred(), FRAG_WAIT_CAPACITY);
    assert!(l.nat_fragment_entries() == 0, "no entry for a fragment without its first");
    // More passes, a little real traffic: the waiting fragments are not looked at.
    let before = slow(&l);
    for sp in 0..20 {
        l.through(LAN, &host_udp(0, 41000 + sp, SERVER, 53), WAN);
    }
    assert_eq!(slow(&l) - before, 20, "one slow-path visit per new flow, nothing more");

    // A real datagram, first fragment first, after the flood: 4 fragments, whole.
    let (sm, dm, src) = from_host(0);
    let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
    let whole = udp(sm, dm, src, 4444, SERVER, 9, &payload);
    let parts = fragments_n(&whole, 1000, 0x1234);
    assert_eq!(parts.len(), 4);
    for f in &parts {
        l.w.io_mut().inject(LAN, f);
    }
    l.w.poll(l.now);
    let out = l.out(WAN);
    assert_eq!(out.len(), 4, "drops: {:?}", l.drops());
    let s = reassemble(&out);
    assert_eq!((s.src, s.sport, s.dst, s.dport), (EXT, 4444, SERVER, 9));
    assert_eq!(s.payload, payload);
    assert_eq!(l.drop_count(DropReason::FragmentTableFull), 0);

    // A real datagram whose first fragment comes last, amid the flood: its later
    // fragments wait (pushing out the oldest bogus ones), the flood goes on, then the
    // first fragment comes and all four leave, translated.
    let parts = fragments_n(&whole, 1000, 0x4321);
    for f in parts[1..].iter().rev() {
        l.w.io_mut().inject(LAN, f);
    }
    l.w.poll(l.now);
    bogus += spray_bogus_fragments(&mut l, 20, &mut seed);
    assert!(l.out(WAN).is_empty());
    let visits = slow(&l);
    l.send(LAN, &parts[0]);
    let out = l.out(WAN);
    assert_eq!(out.len(), 4, "drops: {:?}", l.drops());
    assert_eq!(frag_parts(&out[0]).0.frag_offset(), 0, "the first fragment leaves first");
    let s = reassemble(&out);
    assert_eq!((s.src, s.sport, s.payload.len()), (EXT, 4444, payload.len()));
    assert_eq!(l.c.fragments_retried.get(), 3, "the three woken fragments, once each");
    assert_eq!(slow(&l) - visits, 4);

    // Every bogus fragment is a counted drop: pushed out of the waiting area, or its
    // wait over. Nothing is left waiting.
    l.advance_ms(FRAG_WAIT.as_millis());
    let (full, no_state) = (l.drop_count(DropReason::FragmentWaitFull), l.drop_count(DropReason::FragmentNoState));
    assert_eq!(full + no_state, bogus, "drops: {:?}", l.drops());
    assert_eq!(no_state, FRAG_WAIT_CAPACITY as u64 - 3, "the bogus ones that still waited");
    assert_eq!(l.w.deferred(), 0);
    assert_eq!(l.c.fragments_waiting.get(), 0);
    assert_eq!(l.c.fragments_waited.get(), bogus + 3);
}

/// Real datagrams whose fragments come in any order, the last first, are translated
/// whole, both ways; more fragments of one datagram than may wait are counted drops.
#[test]
fn out_of_order_fragments_of_real_datagrams() {
    use crate::pipeline::FRAG_WAIT_PER_DATAGRAM;
    let mut l = lab(MASQ);
    let (sm, dm, src) = from_host(1);
    let payload: Vec<u8> = (0..2400u32).map(|i| (i * 7) as u8).collect();
    let whole = udp(sm, dm, src, 5555, SERVER, 9, &payload);
    // Last to first, one pass each.
    let parts = fragments_n(&whole, 800, 0x0a0a);
    assert_eq!(parts.len(), 4);
    for f in parts.iter().rev() {
        l.send(LAN, f);
    }
    let out = l.out(WAN);
    assert_eq!(out.len(), 4, "drops: {:?}", l.drops());
    let s = reassemble(&out);
    assert_eq!((s.src, s.sport, s.dst), (EXT, 5555, SERVER));
    assert_eq!(s.payload, payload);
    // Scrambled, all in one burst.
    let parts = fragments_n(&whole, 800, 0x0b0b);
    for i in [2, 0, 3, 1] {
        l.w.io_mut().inject(LAN, &parts[i]);
    }
    l.w.poll(l.now);
    let out = l.out(WAN);
    assert_eq!(out.len(), 4, "drops: {:?}", l.drops());
    assert_eq!(reassemble(&out).payload, payload);
    // The reply, fragmented and last fragment first, comes back in whole.
    let back: Vec<u8> = (0..1500u32).map(|i| (i * 3) as u8).collect();
    let reply = udp(GW, MAC_WAN, SERVER, 9, EXT, 5555, &back);
    let parts = fragments_n(&reply, 504, 0x0c0c);
    for f in parts.iter().rev() {
        l.send(WAN, f);
    }
    let out = l.out(LAN);
    assert_eq!(out.len(), parts.len(), "drops: {:?}", l.drops());
    let s = reassemble(&out);
    assert_eq!((s.dst, s.dport, s.payload), (H[1], 5555, back));
    assert_eq!(l.drops(), vec![]);
    // A datagram cut in 40 pieces, its first last: no more than FRAG_WAIT_PER_DATAGRAM
    // of its later fragments wait; the rest are counted, and the first goes through.
    let big = udp(sm, dm, src, 5555, SERVER, 9, &[1u8; 320]);
    let parts = fragments_n(&big, 8, 0x0d0d);
    for f in parts[1..].iter() {
        l.send(LAN, f);
    }
    let limited = (parts.len() - 1 - FRAG_WAIT_PER_DATAGRAM) as u64;
    assert_eq!(l.drop_count(DropReason::FragmentDatagramLimit), limited);
    l.send(LAN, &parts[0]);
    assert_eq!(l.out(WAN).len(), 1 + FRAG_WAIT_PER_DATAGRAM);
}

/// ICMP the NAT cannot translate (issue 11 item 11: `icmp_unsupported` was documented
/// and never counted): a router advertisement, and an error about an ICMP error, from
/// inside through MASQUERADE are dropped as `icmp_unsupported`, not `l4_unsupported`.
#[test]
fn icmp_the_nat_cannot_translate_is_counted_as_icmp_unsupported() {
    let mut l = lab(MASQ);
    let (sm, dm, src) = from_host(0);
    l.dropped(LAN, &icmp_error(sm, dm, src, SERVER, 9, 0, &[0; 8]));
    assert_eq!(l.drop_count(DropReason::IcmpUnsupported), 1);
    let inner = testkit::ipv4(SERVER, src).icmp_error(3, 1, &[0x45; 28]);
    l.dropped(LAN, &icmp_error(sm, dm, src, SERVER, 3, 3, &inner));
    assert_eq!(l.drops(), vec![("icmp_unsupported", 2)]);
    // An echo request is a query: translated.
    l.through(LAN, &echo(sm, dm, src, SERVER, 9, true), WAN);
}

#[test]
fn forward_drop_policy_with_accept_rule() {
    let rules = "*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n\
                 *filter\n:FORWARD DROP [0:0]\n-A FORWARD -i lan -o wan -p udp -j ACCEPT\nCOMMIT\n";
    let mut l = lab(rules);
    let s = check(&l.through(LAN, &host_udp(0, 1000, SERVER, 53), WAN), GW);
    // Replies of an accepted flow pass without a rule of their own.
    check(&l.through(WAN, &wan_udp(SERVER, 53, EXT, s.sport), LAN), lan_to(0));
    // TCP is not accepted.
    l.dropped(LAN, &host_tcp(0, 1000, SERVER, 80, "S"));
    assert_eq!(l.drop_count(DropReason::PolicyDrop), 1);
    // Nor anything from outside to an inside address.
    l.dropped(WAN, &wan_udp(SERVER, 53, H[1], 53));
    assert_eq!(l.drop_count(DropReason::PolicyDrop), 2);
}

#[test]
fn untranslated_traffic_is_routed() {
    // No rules at all: a plain router, no state.
    let mut l = lab("");
    let s = check(&l.through(LAN, &host_udp(0, 1000, SERVER, 53), WAN), GW);
    assert_eq!((s.src, s.sport), (H[0], 1000));
    check(&l.through(WAN, &wan_udp(SERVER, 53, H[0], 1000), LAN), lan_to(0));
    assert_eq!(l.nat().count(), 0);
    // Rules that do not match: routed untranslated, tracked.
    let mut l = lab("*nat\n-A POSTROUTING -o wan -s 10.0.0.0/8 -j MASQUERADE\nCOMMIT\n");
    let s = check(&l.through(LAN, &host_udp(0, 1000, SERVER, 53), WAN), GW);
    assert_eq!(s.src, H[0]);
    check(&l.through(WAN, &wan_udp(SERVER, 53, H[0], 1000), LAN), lan_to(0));
    assert_eq!(l.nat().count(), 1);
    // The router still answers pings, from either side.
    let (sm, dm, src) = from_host(0);
    let r = check(&l.through(LAN, &echo(sm, dm, src, LAN_ADDR, 1, true), LAN), lan_to(0));
    assert_eq!(r.src, LAN_ADDR);
    let r = check(&l.through(WAN, &echo(GW, MAC_WAN, SERVER, EXT, 1, true), WAN), GW);
    assert_eq!(r.src, EXT);
}

#[test]
fn sessions_expire_when_time_moves() {
    let mut l = lab(MASQ);
    let s = check(&l.through(LAN, &host_udp(0, 1000, SERVER, 53), WAN), GW);
    let (sm, dm, src) = from_host(1);
    l.through(LAN, &echo(sm, dm, src, SERVER, 5, true), WAN);
    assert_eq!(l.nat().count(), 2);
    l.advance(21);
    assert_eq!(l.nat().count(), 1, "ICMP (20 s) gone, UDP (30 s) left");
    l.advance(10);
    assert_eq!(l.nat().count(), 0);
    assert_eq!(l.c.nat_sessions_expired.get(), 2);
    assert_eq!(l.c.nat_sessions_created.get(), 2);
    l.dropped(WAN, &wan_udp(SERVER, 53, EXT, s.sport));
    assert_eq!(l.drop_count(DropReason::NoSession), 1);
}

#[test]
fn ttl_and_mtu_errors_quote_the_untranslated_packet() {
    let mut l = lab(MASQ);
    let mut f = host_udp(0, 1000, SERVER, 53);
    f[14 + 8] = 1;
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    let e = check(&l.through(LAN, &f, LAN), lan_to(0));
    assert_eq!((e.dst, e.icmp), (H[0], (11, 0)));
    assert_eq!(e.payload, f[14..14 + 28]);
    assert_eq!(l.nat().count(), 0, "no session for a packet that dies here");
    // DF and larger than the WAN MTU (1400).
    let (sm, dm, src) = from_host(0);
    let big = udp(sm, dm, src, 1001, SERVER, 53, &[0; 1450]);
    let e = check(&l.through(LAN, &big, LAN), lan_to(0));
    assert_eq!((e.icmp, u16::from_be_bytes([e.rest[2], e.rest[3]])), ((3, 4), 1400));
    assert_eq!(&e.payload[12..16], &H[0], "quotes the inside source");
}

/// The frame balance of docs/operations.md ("Every frame counted"): received + ARP
/// requests sent + ICMP errors sent = sent + drops (less `icmp_error_suppressed`, a second
/// count of a dropped packet) + ARP replies received + frames still held — through each
/// path that makes or uses up a frame without forwarding it.
#[test]
fn every_frame_is_sent_dropped_or_consumed_in_the_counters() {
    let mut l = lab(MASQ);
    let c = l.c.clone();
    let balance = |held: u64| {
        let suppressed = c.drops_for(DropReason::IcmpErrorSuppressed);
        (
            c.rx_packets.get() + c.arp_requests_sent.get() + c.icmp_errors_sent.get() + c.host_from_kernel.get(),
            c.tx_packets.get() + c.drops_total() - suppressed
                + c.arp_replies_received.get()
                + c.host_punted.get()
                + held,
        )
    };
    // An ICMP error made of a dropped packet's buffer (TTL 1).
    let mut f = host_udp(0, 1000, SERVER, 53);
    f[14 + 8] = 1;
    Ipv4Packet::new_unchecked(&mut f[14..]).fill_checksum();
    check(&l.through(LAN, &f, LAN), lan_to(0));
    assert_eq!((c.icmp_errors_sent.get(), c.drops_total()), (1, 1));
    // No error about an ICMP error: the drop is counted twice (its reason, suppressed).
    let quoted = testkit::ipv4(SERVER, H[0]).udp(53, 1000, b"x");
    let err = testkit::ethernet(HMAC[0], MAC_LAN, &testkit::ipv4(H[0], SERVER).ttl(1).icmp_error(3, 3, &quoted));
    l.dropped(LAN, &err);
    assert_eq!(c.drops_for(DropReason::IcmpErrorSuppressed), 1);
    // An ARP request answered in place.
    let lan_ip = Ipv4Addr::from(LAN_ADDR);
    let req = testkit::arp_request(HMAC[1], Ipv4Addr::from(H[1]), lan_ip);
    l.through(LAN, &req, LAN);
    // A frame to an unknown neighbour waits for our ARP request's reply, then goes.
    let stranger = [100, 64, 0, 50];
    let stranger_mac = [2, 0, 0, 0, 1, 50];
    let (sm, dm, src) = from_host(0);
    l.send(LAN, &udp(sm, dm, src, 1001, stranger, 9, b"hi"));
    let asked = l.out(LAN);
    assert_eq!((asked.len(), c.arp_requests_sent.get()), (1, 1), "one ARP request");
    assert_eq!(balance(l.w.held() as u64), (6, 6), "{:?}", c.scalars());
    l.send(LAN, &testkit::arp_reply(stranger_mac, Ipv4Addr::from(stranger), MAC_LAN, lan_ip));
    l.advance(1);
    let released = l.out(LAN);
    assert_eq!(released.len(), 1, "the held frame goes: {:?} {:?}", l.drops(), c.scalars());
    assert_eq!(c.arp_replies_received.get(), 1);
    assert_eq!(l.w.held(), 0);
    assert_eq!(balance(0), (7, 7), "{:?}", c.scalars());
}

#[test]
fn rules_swap_applies_to_new_flows() {
    let mut l = lab("");
    let s = check(&l.through(LAN, &host_udp(0, 1000, SERVER, 53), WAN), GW);
    assert_eq!(s.src, H[0]);
    let (_, compiled) = load_rules(MASQ, &l.config).unwrap();
    l.rules.store(Arc::new(compiled));
    let s = check(&l.through(LAN, &host_udp(0, 1001, SERVER, 53), WAN), GW);
    assert_eq!(s.src, EXT);
}

#[test]
fn answers_arp_for_pool_addresses_on_the_outside_link() {
    let mut l = lab("*nat\n-A POSTROUTING -o wan -j SNAT --to-source 203.0.113.10-203.0.113.11\nCOMMIT\n");
    let mut req = Vec::new();
    req.extend_from_slice(&[0xff; 6]);
    req.extend_from_slice(&GW);
    req.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    req.extend_from_slice(&GW);
    req.extend_from_slice(&[203, 0, 113, 254]);
    req.extend_from_slice(&[0; 6]);
    req.extend_from_slice(&[203, 0, 113, 11]);
    let r = l.through(WAN, &req, WAN);
    assert_eq!(&r[20..22], &[0, 2], "reply");
    assert_eq!(&r[22..28], &MAC_WAN);
    assert_eq!(&r[28..32], &[203, 0, 113, 11]);
    // Not on the LAN side, and not for addresses outside the pool.
    let mut lan_req = req.clone();
    lan_req[6..12].copy_from_slice(&HMAC[0]);
    lan_req[22..28].copy_from_slice(&HMAC[0]);
    lan_req[28..32].copy_from_slice(&H[0]);
    l.dropped(LAN, &lan_req);
    req[38..42].copy_from_slice(&[203, 0, 113, 12]);
    l.dropped(WAN, &req);
    // And SNAT to the pool works both ways.
    let s = check(&l.through(LAN, &host_udp(0, 1000, SERVER, 53), WAN), GW);
    assert!(s.src == [203, 0, 113, 10] || s.src == [203, 0, 113, 11]);
    check(&l.through(WAN, &wan_udp(SERVER, 53, s.src, s.sport), LAN), lan_to(0));
}

mod robustness {
    //! Bad input through the whole worker (router + NAT): random bytes and valid frames
    //! with bytes flipped, on both ports, with DNAT, MASQUERADE and time moving. Nothing
    //! may panic, and every frame must be accounted for: sent, freed, or still held.

    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    const RULES: &str = "*nat\n\
        -A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22\n\
        -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";

    fn seeds() -> Vec<(u16, Vec<u8>)> {
        let out_udp = host_udp(0, 40000, SERVER, 53);
        let quoted = {
            let mut q = udp(GW, MAC_WAN, EXT, 40000, SERVER, 53, b"hello");
            q.drain(..14);
            q
        };
        let (sm, dm, src) = from_host(1);
        let (first, later) = fragments(&udp(sm, dm, src, 4444, SERVER, 9, &[0x5a; 100]), 48, 0x2222);
        vec![
            (LAN, out_udp),
            (LAN, host_tcp(0, 40001, SERVER, 80, "S")),
            (LAN, echo(HMAC[0], MAC_LAN, H[0], SERVER, 7, true)),
            (WAN, wan_udp(SERVER, 53, EXT, 40000)),
            (WAN, wan_tcp(SERVER, 80, EXT, 40001, "SA")),
            (WAN, wan_tcp(STRANGER, 5555, EXT, 2222, "S")),
            (WAN, icmp_error(GW, MAC_WAN, SERVER, EXT, 3, 3, &quoted)),
            (LAN, first),
            (LAN, later),
        ]
    }

    #[derive(Debug, Clone)]
    enum Input {
        Random(u16, Vec<u8>),
        Mutated(usize, Vec<(usize, u8)>, Option<usize>),
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            (0u16..2, vec(any::<u8>(), 0..160)).prop_map(|(p, b)| Input::Random(p, b)),
            (0usize..9, vec((0usize..200, any::<u8>()), 0..6), proptest::option::of(0usize..200))
                .prop_map(|(s, flips, cut)| Input::Mutated(s, flips, cut)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn bad_frames_never_panic_and_are_all_accounted_for(inputs in vec(input(), 1..48), steps in vec(0u64..40, 1..4)) {
            let mut l = lab(RULES);
            let seeds = seeds();
            let mut injected = 0u64;
            for (i, inp) in inputs.iter().enumerate() {
                let (port, frame) = match inp {
                    Input::Random(p, b) => (*p, b.clone()),
                    Input::Mutated(s, flips, cut) => {
                        let (p, mut f) = seeds[*s].clone();
                        for (at, b) in flips {
                            if let Some(x) = f.get_mut(*at) {
                                *x ^= *b;
                            }
                        }
                        if let Some(c) = cut {
                            f.truncate(*c);
                        }
                        (p, f)
                    }
                };
                l.w.io_mut().inject(port, &frame);
                injected += 1;
                if i % 8 == 7 {
                    l.w.poll(l.now);
                }
            }
            l.w.poll(l.now);
            for s in &steps {
                l.now = l.now + crate::time::Duration::from_millis(*s * 100);
                l.w.poll(l.now);
            }
            let sent = (l.out(LAN).len() + l.out(WAN).len()) as u64;
            let io = l.w.io();
            let allocated = (usize::MAX - io.alloc_budget) as u64;
            let freed = io.freed as u64;
            let held = (l.w.held() + l.w.deferred()) as u64;
            prop_assert_eq!(l.c.rx_packets.get(), injected);
            prop_assert_eq!(sent + freed + held, injected + allocated, "sent {} freed {} held {}", sent, freed, held);
            // The counters balance the same way (docs/operations.md, "Every frame counted").
            let c = &l.c;
            let suppressed = c.drops_for(DropReason::IcmpErrorSuppressed);
            prop_assert_eq!(
                c.rx_packets.get() + c.arp_requests_sent.get() + c.icmp_errors_sent.get() + c.host_from_kernel.get(),
                c.tx_packets.get() + c.drops_total() - suppressed + c.arp_replies_received.get() + c.host_punted.get() + held,
                "{:?}", c.scalars()
            );
        }
    }
}

/// A packet of IP protocol `proto` (GRE 47, ESP 50) from inside host `h` to `dst`.
fn host_raw(h: usize, proto: u8, dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let (sm, dm, src) = from_host(h);
    testkit::ethernet(sm, dm, &testkit::ipv4(src, dst).raw(proto, payload))
}

/// A packet of IP protocol `proto` arriving from the WAN.
fn wan_raw(src: [u8; 4], proto: u8, dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    testkit::ethernet(GW, MAC_WAN, &testkit::ipv4(src, dst).raw(proto, payload))
}

/// A frame sent to `mac` carrying an address-only packet, its IPv4 checksum checked:
/// (source, destination, protocol, payload).
fn check_raw(frame: &[u8], mac: [u8; 6]) -> ([u8; 4], [u8; 4], u8, Vec<u8>) {
    assert_eq!(&frame[0..6], &mac, "destination MAC");
    let p = testkit::parse_ipv4_packet(&frame[14..]).expect("valid IPv4");
    assert!(p.ip_checksum_ok, "IPv4 header checksum");
    (p.src.octets(), p.dst.octets(), p.proto, p.payload)
}

/// A GRE header (no flags, protocol type IPv4) and a few bytes of tunnelled packet.
const GRE: &[u8] = &[0, 0, 0x08, 0x00, 0x45, 0, 0, 20, 1, 2, 3, 4, 5, 6, 7, 8];

#[test]
fn gre_and_esp_are_translated_by_address_one_host_per_remote() {
    let mut l = lab(MASQ);
    // GRE out: the external address, nothing else changed.
    let f = l.through(LAN, &host_raw(0, 47, SERVER, GRE), WAN);
    assert_eq!(check_raw(&f, GW), (EXT, SERVER, 47, GRE.to_vec()));
    let back = l.through(WAN, &wan_raw(SERVER, 47, EXT, b"\0\0\x08\0reply"), LAN);
    assert_eq!(check_raw(&back, lan_to(0)), (SERVER, H[0], 47, b"\0\0\x08\0reply".to_vec()));
    // A second host to the same remote over GRE: MASQUERADE has one address. Refused
    // with host unreachable, counted under its own reason.
    let refused = host_raw(1, 47, SERVER, GRE);
    let e = check(&l.through(LAN, &refused, LAN), lan_to(1));
    assert_eq!((e.src, e.dst, e.icmp), (LAN_ADDR, H[1], (3, 1)));
    assert_eq!(l.drop_count(DropReason::AddrOnlyInUse), 1);
    // ESP from the second host to the same remote is another protocol: fine.
    let f = l.through(LAN, &host_raw(1, 50, SERVER, b"spi-and-data"), WAN);
    assert_eq!(check_raw(&f, GW), (EXT, SERVER, 50, b"spi-and-data".to_vec()));
    let back = l.through(WAN, &wan_raw(SERVER, 50, EXT, b"esp-back"), LAN);
    assert_eq!(check_raw(&back, lan_to(1)), (SERVER, H[1], 50, b"esp-back".to_vec()));
    // Listed with their protocol numbers and no ports.
    let mut list = Vec::new();
    l.nat().sessions_after(0, 16, l.now, &mut list);
    let mut seen: Vec<(u8, Ipv4Addr, u16)> =
        list.iter().map(|s| (s.proto.number(), s.inside.addr, s.inside.port)).collect();
    seen.sort();
    assert_eq!(seen, vec![(47, H[0].into(), 0), (50, H[1].into(), 0)]);
    assert_eq!(l.drop_count(DropReason::L4Unsupported), 0);
    // GRE from an unknown remote to the external address: no session, dropped.
    l.dropped(WAN, &wan_raw(STRANGER, 47, EXT, GRE));
    assert_eq!(l.drop_count(DropReason::NoSession), 1);
    // After the `other` timeout (600 s) the address is free for the second host.
    l.advance(601);
    assert_eq!(l.nat().count(), 0);
    let f = l.through(LAN, &host_raw(1, 47, SERVER, GRE), WAN);
    assert_eq!(check_raw(&f, GW).0, EXT);
}

#[test]
fn gre_takes_the_next_snat_address_and_fragments_follow() {
    let rules = "*nat\n-A POSTROUTING -o wan -j SNAT --to-source 203.0.113.1-203.0.113.2\nCOMMIT\n";
    let mut l = lab(rules);
    let pool = [EXT, [203, 0, 113, 2]];
    let mut got = Vec::new();
    for h in 0..2 {
        let (src, dst, proto, _) = check_raw(&l.through(LAN, &host_raw(h, 47, SERVER, GRE), WAN), GW);
        assert_eq!((dst, proto), (SERVER, 47));
        assert!(pool.contains(&src), "{src:?}");
        got.push(src);
    }
    assert_ne!(got[0], got[1], "one inside host per (external address, remote, protocol)");
    // Replies to each address reach their own host.
    for h in 0..2 {
        let back = l.through(WAN, &wan_raw(SERVER, 47, got[h], GRE), LAN);
        assert_eq!(check_raw(&back, lan_to(h)).1, H[h]);
    }
    // A third host: both addresses taken.
    l.through(LAN, &host_raw(2, 47, SERVER, GRE), LAN);
    assert_eq!(l.drop_count(DropReason::AddrOnlyInUse), 1);
    // A fragmented GRE packet: every fragment translated by address, in any order.
    let (sm, dm, src) = from_host(0);
    let whole = testkit::ethernet(sm, dm, &testkit::ipv4(src, SERVER).raw(47, &[0x5a; 100]));
    let (first, later) = fragments(&whole, 48, 0x2222);
    for frag in [later, first] {
        let f = l.through(LAN, &frag, WAN);
        let (p, _) = frag_parts(&f);
        assert_eq!((p.src_addr(), p.ident()), (Ipv4Addr::from(got[0]), 0x2222));
    }
    assert_eq!(l.drop_count(DropReason::FragmentNoState), 0);
}

/// Two workers in one thread, sharing routes, neighbours and rules, handing frames to
/// each other over in-memory queues: the multi-core steering with the real worker loop.
mod two_workers {
    use super::*;
    use crate::io::mem;
    use crate::nat::steer::subscriber_owner;

    struct Pair {
        w: Vec<Worker<MemIo>>,
        c: Vec<Arc<WorkerCounters>>,
        now: Instant,
    }

    fn pair(rules: &str) -> Pair {
        let config = Config::parse(CONFIG).unwrap();
        let (set, compiled) = load_rules(rules, &config).unwrap_or_else(|e| panic!("{e}"));
        let shared: SharedRules = Arc::new(ArcSwap::from_pointee(compiled));
        let routes = Arc::new(RouteTable::from_config(&config));
        let neighbors = Arc::new(NeighborTable::new(64));
        neighbors.add_static(WAN, Ipv4Addr::new(203, 0, 113, 254), GW).unwrap();
        for (ip, mac) in H.iter().zip(HMAC) {
            neighbors.add_static(LAN, Ipv4Addr::from(*ip), mac).unwrap();
        }
        let rings = mem::rings(2);
        let tmo = timeouts(&config);
        let (mut w, mut c) = (Vec::new(), Vec::new());
        for i in 0..2u16 {
            let nat = nat_path(&config, &set, shared.clone(), tmo.clone(), i, 2, 42).unwrap();
            let counters = Arc::new(WorkerCounters::default());
            let router = Router::new(routes.clone(), neighbors.clone(), vec![MAC_LAN, MAC_WAN], counters.clone());
            let io = MemIo::new(2).with_handoff(i, rings.clone());
            w.push(Worker::new(io, router, counters.clone()).with_nat(nat));
            c.push(counters);
        }
        Pair { w, c, now: Instant::from_secs(1) }
    }

    impl Pair {
        /// `frame` arrives on `port` of worker `on`'s queue; both workers poll until
        /// quiet. Returns every frame sent, per worker, on `out_port`, and nothing else.
        fn send(&mut self, on: usize, port: u16, frame: &[u8], out_port: u16) -> Vec<(usize, Vec<u8>)> {
            self.w[on].io_mut().inject(port, frame);
            for _ in 0..4 {
                for w in &mut self.w {
                    w.poll(self.now);
                }
            }
            let mut out = Vec::new();
            for (i, w) in self.w.iter_mut().enumerate() {
                assert!(w.io_mut().take_output(1 - out_port).is_empty(), "frames on port {}", 1 - out_port);
                out.extend(w.io_mut().take_output(out_port).into_iter().map(|f| (i, f)));
            }
            out
        }

        fn one(&mut self, on: usize, port: u16, frame: &[u8], out_port: u16) -> (usize, Vec<u8>) {
            let mut out = self.send(on, port, frame, out_port);
            assert_eq!(out.len(), 1, "one frame out; drops: {:?} / {:?}", drops(&self.c[0]), drops(&self.c[1]));
            out.pop().unwrap()
        }

        fn sessions(&self, w: usize) -> u32 {
            self.w[w].nat().unwrap().nat().count()
        }
    }

    fn drops(c: &WorkerCounters) -> Vec<(&'static str, u64)> {
        DropReason::ALL.iter().filter(|r| c.drops_for(**r) > 0).map(|r| (r.name(), c.drops_for(*r))).collect()
    }

    #[test]
    fn flows_live_on_the_subscribers_worker_whichever_queue_they_arrive_on() {
        let mut p = pair(MASQ);
        let owner = usize::from(subscriber_owner(H[0].into(), 2));
        let other = 1 - owner;
        // Outbound on the wrong worker's queue: handed to the subscriber's worker.
        let (by, f) = p.one(other, LAN, &host_udp(0, 40000, SERVER, 53), WAN);
        assert_eq!(by, owner);
        let s = check(&f, GW);
        assert_eq!((s.src, s.dst, s.dport), (EXT, SERVER, 53));
        assert_eq!(p.w[owner].nat().unwrap().nat().partition().owner_of(s.sport), Some(owner as u16));
        assert_eq!((p.sessions(owner), p.sessions(other)), (1, 0));
        // The reply, on either worker's queue, reaches the owner and goes back translated.
        for on in [0, 1] {
            let (by, f) = p.one(on, WAN, &wan_udp(SERVER, 53, EXT, s.sport), LAN);
            assert_eq!(by, owner);
            let r = check(&f, lan_to(0));
            assert_eq!((r.src, r.dst, r.sport, r.dport), (SERVER, H[0], 53, 40000));
        }
        assert_eq!(p.c[other].handoff_out.get(), 2);
        assert_eq!(p.c[owner].handoff_in.get(), 2);
        assert_eq!(p.c[owner].handoff_out.get(), 0);
        // A second flow of the same subscriber arriving on its own worker: no handoff.
        let (by, _) = p.one(owner, LAN, &host_udp(0, 40001, SERVER, 53), WAN);
        assert_eq!(by, owner);
        assert_eq!((p.sessions(owner), p.sessions(other)), (2, 0));
    }

    #[test]
    fn a_port_forward_lives_with_its_inside_host() {
        let rules = "*nat\n-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.3:22\n\
                     -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
        let mut p = pair(rules);
        let target = usize::from(subscriber_owner(H[1].into(), 2));
        let client = [192, 0, 2, 50];
        for on in [0, 1] {
            let (by, f) = p.one(on, WAN, &wan_tcp(client, 50000 + on as u16, EXT, 2222, "S"), LAN);
            assert_eq!(by, target);
            let s = check(&f, lan_to(1));
            assert_eq!((s.dst, s.dport), (H[1], 22));
            // The server's answer arrives on either queue and leaves from port 2222.
            for reply_on in [0, 1] {
                let (by, f) = p.one(reply_on, LAN, &host_tcp(1, 22, client, 50000 + on as u16, "SA"), WAN);
                assert_eq!(by, target);
                let r = check(&f, GW);
                assert_eq!((r.src, r.sport, r.dst), (EXT, 2222, client));
            }
        }
        assert_eq!((p.sessions(target), p.sessions(1 - target)), (2, 0));
    }

    #[test]
    fn hairpinning_between_subscribers_of_different_workers() {
        let mut p = pair(MASQ);
        assert_ne!(subscriber_owner(H[0].into(), 2), subscriber_owner(H[1].into(), 2));
        // H1 opens a mapping; H0 reaches it through its external endpoint and back.
        let (_, b) = p.one(0, LAN, &host_udp(1, 6000, SERVER, 3478), WAN);
        let b = check(&b, GW);
        let (_, a) = p.one(0, LAN, &host_udp(0, 7000, EXT, b.sport), LAN);
        let a = check(&a, lan_to(1));
        assert_eq!((a.src, a.dst, a.dport), (EXT, H[1], 6000));
        let (_, back) = p.one(1, LAN, &host_udp(1, 6000, EXT, a.sport), LAN);
        let back = check(&back, lan_to(0));
        assert_eq!((back.src, back.sport, back.dst, back.dport), (EXT, b.sport, H[0], 7000));
    }

    #[test]
    fn gre_lives_with_the_remote_whichever_host_and_queue() {
        let rules = "*nat\n-A POSTROUTING -o wan -j SNAT --to-source 203.0.113.1-203.0.113.2\nCOMMIT\n";
        let mut p = pair(rules);
        // Two hosts of different workers.
        assert_ne!(subscriber_owner(H[0].into(), 2), subscriber_owner(H[1].into(), 2));
        let owner = usize::from(crate::nat::steer::addr_only_owner(SERVER.into(), 47, 2));
        let mut ext = Vec::new();
        for h in 0..2 {
            for on in [0, 1] {
                let (by, f) = p.one(on, LAN, &host_raw(h, 47, SERVER, GRE), WAN);
                assert_eq!(by, owner, "host {h} on queue {on}");
                let (src, dst, proto, payload) = check_raw(&f, GW);
                assert_eq!((dst, proto, payload), (SERVER, 47, GRE.to_vec()));
                if on == 0 {
                    ext.push(src);
                } else {
                    assert_eq!(src, ext[h], "the same session");
                }
            }
        }
        assert_ne!(ext[0], ext[1]);
        assert_eq!((p.sessions(owner), p.sessions(1 - owner)), (2, 0));
        // The server's replies, on either queue, reach the right host.
        for h in 0..2 {
            for on in [0, 1] {
                let (by, f) = p.one(on, WAN, &wan_raw(SERVER, 47, ext[h], b"back"), LAN);
                assert_eq!(by, owner);
                assert_eq!(check_raw(&f, lan_to(h)), (SERVER, H[h], 47, b"back".to_vec()));
            }
        }
    }

    #[test]
    fn a_busy_workers_ring_holds_frames_back_and_pauses_rx_without_loss() {
        let mut p = pair(MASQ);
        let owner = usize::from(subscriber_owner(H[0].into(), 2));
        let other = 1 - owner;
        // The owner's ring takes nothing: every frame for it stays staged on `other`.
        p.w[other].io_mut().handoff_ring = 0;
        let n = 600u16;
        for i in 0..n {
            p.w[other].io_mut().inject(LAN, &host_udp(0, 40000 + i, SERVER, 53));
        }
        for _ in 0..40 {
            for w in &mut p.w {
                w.poll(p.now);
            }
        }
        // Staged up to the point where another pass of bursts might not fit, then RX
        // paused: the rest still waits in the (NIC's) input queue. Nothing dropped.
        let staged = p.w[other].io().handoff_backlog(owner as u16);
        let waiting = p.w[other].io().input[usize::from(LAN)].len();
        assert!(staged > 400 && staged <= 512, "staged {staged}");
        assert_eq!(staged + waiting, usize::from(n));
        assert!(p.c[other].handoff_paused.get() > 0);
        assert_eq!(drops(&p.c[other]), vec![]);
        assert!(p.w[owner].io_mut().take_output(WAN).is_empty());
        // The owner catches up: everything goes through, in order, nothing lost.
        p.w[other].io_mut().handoff_ring = usize::MAX;
        let mut out = Vec::new();
        for _ in 0..60 {
            for w in &mut p.w {
                w.poll(p.now);
            }
            out.extend(p.w[owner].io_mut().take_output(WAN));
        }
        assert_eq!(out.len(), usize::from(n), "drops {:?} / {:?}", drops(&p.c[0]), drops(&p.c[1]));
        let sports: Vec<u16> = out.iter().map(|f| check(f, GW).sport).collect();
        let mapped: Vec<u16> = (0..n)
            .map(|i| {
                p.w[owner]
                    .nat()
                    .unwrap()
                    .nat()
                    .mapping_of(Endpoint::new(H[0].into(), 40000 + i), Proto::Udp)
                    .unwrap()
                    .outside
                    .port
            })
            .collect();
        assert_eq!(sports, mapped, "order kept");
        assert_eq!(p.c[other].handoff_out.get(), u64::from(n));
        assert_eq!(p.c[owner].handoff_in.get(), u64::from(n));
        assert_eq!((drops(&p.c[0]), drops(&p.c[1])), (vec![], vec![]));
    }

    #[test]
    fn a_frame_that_finds_its_handoff_stage_full_is_a_counted_drop() {
        let mut p = pair(MASQ);
        let owner = usize::from(subscriber_owner(H[0].into(), 2));
        let other = 1 - owner;
        // A stage of one frame and a ring that takes nothing: the second and third frames
        // of the pass have nowhere to wait.
        p.w[other].io_mut().handoff_ring = 0;
        p.w[other].io_mut().handoff_stage = 1;
        for i in 0..3 {
            p.w[other].io_mut().inject(LAN, &host_udp(0, 40000 + i, SERVER, 53));
        }
        p.w[other].poll(p.now);
        assert_eq!(p.c[other].drops_for(DropReason::HandoffFull), 2);
        assert_eq!(p.w[other].io().handoff_backlog(owner as u16), 1);
        assert_eq!(p.c[other].handoff_out.get(), 0);
    }

    #[test]
    fn icmp_errors_and_later_fragments_follow_the_session() {
        let mut p = pair(MASQ);
        let owner = usize::from(subscriber_owner(H[0].into(), 2));
        let (_, f) = p.one(owner, LAN, &host_udp(0, 40000, SERVER, 53), WAN);
        let s = check(&f, GW);
        // A port unreachable from the server quoting what it got, on the other queue.
        let quoted = &f[14..];
        let err = icmp_error(GW, MAC_WAN, SERVER, EXT, 3, 3, quoted);
        let (by, e) = p.one(1 - owner, WAN, &err, LAN);
        assert_eq!(by, owner);
        let e = check(&e, lan_to(0));
        assert_eq!((e.dst, e.icmp), (H[0], (3, 3)));
        // A fragmented reply, both fragments on the other queue: they follow the first.
        let whole = udp(GW, MAC_WAN, SERVER, 53, EXT, s.sport, &[9u8; 200]);
        let (first, later) = fragments(&whole, 96, 0x4242);
        let (by, _) = p.one(1 - owner, WAN, &first, LAN);
        assert_eq!(by, owner);
        let (by, l) = p.one(1 - owner, WAN, &later, LAN);
        assert_eq!(by, owner);
        assert_eq!(&l[0..6], &lan_to(0));
        let steer = p.w[1 - owner].nat().unwrap().steering().unwrap();
        assert_eq!(steer.fragments_followed, 1);
        // The later fragment first, both on the other queue: it waits there, and
        // follows its first fragment to the owner when that comes.
        let (first, later) = fragments(&whole, 96, 0x4343);
        assert!(p.send(1 - owner, WAN, &later, LAN).is_empty());
        assert_eq!(p.w[1 - owner].deferred(), 1);
        let out = p.send(1 - owner, WAN, &first, LAN);
        assert_eq!(out.len(), 2, "drops: {:?} / {:?}", drops(&p.c[0]), drops(&p.c[1]));
        assert!(out.iter().all(|(by, f)| *by == owner && f[0..6] == lan_to(0)));
        assert_eq!(p.c[1 - owner].fragments_retried.get(), 1);
        assert_eq!(p.w[1 - owner].deferred(), 0);
        assert_eq!((drops(&p.c[0]), drops(&p.c[1])), (vec![], vec![]));
    }
}

/// Per-rule counters: a nat rule counts the first packet of each connection it decides
/// (later packets hit the session), a FORWARD rule each packet it is evaluated on; a
/// rule that matches nothing stays at zero; a set without counter blocks counts nothing.
#[test]
fn rules_count_the_packets_and_bytes_they_decide() {
    let rules = "*nat\n-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.3:22\n\
                 -A PREROUTING -i wan -p udp --dport 9999 -j DNAT --to-destination 100.64.0.3:9\n\
                 -A POSTROUTING -o wan -p tcp -j MASQUERADE\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n\
                 *filter\n-A FORWARD -p icmp -j DROP\n-A FORWARD -i lan -j ACCEPT\nCOMMIT\n";
    let mut l = lab(rules);
    let fresh = l.rules.load().as_ref().clone().with_workers(1);
    l.rules.store(Arc::new(fresh));
    // Two UDP flows out, three packets each, replies too.
    for sp in [40000, 40001] {
        for _ in 0..3 {
            let s = check(&l.through(LAN, &host_udp(0, sp, SERVER, 53), WAN), GW);
            check(&l.through(WAN, &wan_udp(SERVER, 53, EXT, s.sport), LAN), lan_to(0));
        }
    }
    // A port forward, one connection of three packets.
    let client = [192, 0, 2, 50];
    let syn = wan_tcp(client, 50000, EXT, 2222, "S");
    check(&l.through(WAN, &syn, LAN), lan_to(1));
    check(&l.through(LAN, &host_tcp(1, 22, client, 50000, "SA"), WAN), GW);
    check(&l.through(WAN, &wan_tcp(client, 50000, EXT, 2222, "A"), LAN), lan_to(1));
    let r = l.rules.load();
    // Bytes are IPv4 lengths, as iptables counts them.
    let one = (host_udp(0, 40000, SERVER, 53).len() - 14) as u64;
    assert_eq!(r.rule_counts(Chain::Prerouting), vec![(1, (syn.len() - 14) as u64), (0, 0)], "the forward's SYN");
    assert_eq!(r.rule_counts(Chain::Postrouting), vec![(0, 0), (2, 2 * one)], "first packets of two UDP flows");
    // FORWARD: the two UDP flows' first packets (lan → ACCEPT); the forwarded SYN came
    // in on wan and was decided by the policy, which counts nothing.
    assert_eq!(r.rule_counts(Chain::Forward), vec![(0, 0), (2, 2 * one)]);
    // An ICMP echo from lan is dropped by FORWARD rule 1: counted, per packet.
    let (hmac, rmac, h) = from_host(0);
    l.dropped(LAN, &echo(hmac, rmac, h, SERVER, 7, true));
    l.dropped(LAN, &echo(hmac, rmac, h, SERVER, 7, true));
    assert_eq!(l.rules.load().rule_counts(Chain::Forward)[0].0, 2);
    // A new set (any change) starts at zero; without counter blocks nothing is counted.
    l.rules.store(Arc::new(l.rules.load().as_ref().clone().with_workers(1)));
    assert!(l.rules.load().rule_counts(Chain::Postrouting).iter().all(|c| *c == (0, 0)));
    let (_, bare) = load_rules(rules, &l.config).unwrap();
    l.rules.store(Arc::new(bare));
    check(&l.through(LAN, &host_udp(0, 40005, SERVER, 53), WAN), GW);
    assert_eq!(l.rules.load().rule_counts(Chain::Postrouting), vec![(0, 0), (0, 0)]);
}

const FWD_8080: &str = "*nat\n-A PREROUTING -i wan -p udp --dport 8080 -j DNAT --to-destination 100.64.0.3:80\n\
                        -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";

/// Swap in `rules` as the control plane does, and let the worker tick.
fn swap_rules(l: &mut Lab, rules: &str) {
    let (_, compiled) = load_rules(rules, &l.config).unwrap();
    l.rules.store(Arc::new(compiled));
    l.advance(1);
}

#[test]
fn port_forwards_added_live_reserve_their_port_and_release_it_when_deleted() {
    let mut l = lab(MASQ);
    assert_eq!(l.path().static_ports_reserved(), 0);
    swap_rules(&mut l, FWD_8080);
    assert_eq!(l.path().static_ports_reserved(), 1);
    // Masquerade never hands out the forwarded port ...
    let s = check(&l.through(LAN, &host_udp(0, 8080, SERVER, 53), WAN), GW);
    assert_ne!(s.sport, 8080, "the forward's port is reserved");
    // ... and the forward works.
    let f = check(&l.through(WAN, &wan_udp(SERVER, 999, EXT, 8080), LAN), lan_to(1));
    assert_eq!((f.dst, f.dport), (H[1], 80));
    // The same set swapped in again (another change) keeps the reservation.
    swap_rules(&mut l, FWD_8080);
    assert_eq!(l.path().static_ports_reserved(), 1);
    // Deleted: released, and a new flow from source port 8080 keeps its port.
    swap_rules(&mut l, MASQ);
    assert_eq!(l.path().static_ports_reserved(), 0);
    let s = check(&l.through(LAN, &host_udp(2, 8080, SERVER, 53), WAN), GW);
    assert_eq!(s.sport, 8080, "released");
}

#[test]
fn a_port_forward_whose_port_a_mapping_holds_reserves_it_once_released() {
    let mut l = lab(MASQ);
    let s = check(&l.through(LAN, &host_udp(0, 8080, SERVER, 53), WAN), GW);
    assert_eq!(s.sport, 8080);
    swap_rules(&mut l, FWD_8080);
    assert_eq!(l.path().static_ports_reserved(), 0, "busy: a mapping holds it");
    l.advance(31);
    assert_eq!(l.nat().count(), 0, "the UDP session expired (30 s)");
    assert_eq!(l.path().static_ports_reserved(), 0, "quarantined for 120 s");
    l.advance(120);
    l.advance(2);
    assert_eq!(l.path().static_ports_reserved(), 1, "retried once the hold passed");
    let s = check(&l.through(LAN, &host_udp(1, 8080, SERVER, 53), WAN), GW);
    assert_ne!(s.sport, 8080);
    // Released again only by this worker's own reservation: the mapping's port is not
    // touched when the forward goes.
    swap_rules(&mut l, MASQ);
    assert_eq!(l.path().static_ports_reserved(), 0);
    assert_eq!(l.nat().count(), 1);
}

/// Issue 11 item 3: a subscriber scanning 100 000 destinations gets no more than its
/// share — `[nat] new_sessions_per_second` (2000/s, burst 2000), then
/// `sessions_per_subscriber` (10 000) — and is answered ICMP host unreachable, never by
/// evicting anyone; a second subscriber on the same worker opens every one of its new
/// sessions meanwhile.
#[test]
fn a_scanning_subscriber_gets_its_share_and_no_more() {
    let mut l = lab_with(MASQ, |c| {
        c.nat.max_sessions = 65536;
        c.nat.sessions_per_subscriber = 10_000;
        c.nat.new_sessions_per_second = 2000;
        c.nat.new_sessions_burst = 2000;
    });
    let (scanner, other) = (0, 1);
    let (mut scanned, mut refused_icmp) = (0u32, 0u32);
    let (mut b_sent, mut b_out) = (0u32, 0u32);
    let start = l.now;
    // 10 s: the scanner sends 10 new flows per millisecond, the other subscriber one
    // every 2 ms.
    for ms in 0..10_000u64 {
        for _ in 0..10 {
            let dst = (0xc633_0000u32 + scanned).to_be_bytes(); // 198.51.x.y
            l.w.io_mut().inject(LAN, &host_udp(scanner, 40000, dst, 53));
            scanned += 1;
        }
        if ms % 2 == 0 {
            let dst = (0xcb00_7100u32 + 0x100 + b_sent).to_be_bytes(); // 203.0.114.x ...
            l.w.io_mut().inject(LAN, &host_udp(other, 50000, dst, 443));
            b_sent += 1;
        }
        l.now = start + crate::time::Duration::from_millis(ms);
        l.w.poll(l.now);
        for f in l.out(WAN) {
            if check(&f, GW).sport == 50000 {
                b_out += 1;
            }
        }
        for f in l.out(LAN) {
            let back = check(&f, lan_to(scanner));
            assert_eq!(back.icmp, (3, 1), "refusals answered host unreachable");
            refused_icmp += 1;
        }
    }
    assert_eq!(scanned, 100_000);
    let a = l.nat().subscriber(H[scanner].into()).expect("the scanner holds sessions");
    let b = l.nat().subscriber(H[other].into()).expect("the other subscriber holds sessions");
    assert_eq!(a.sessions, 10_000, "the scanner's share: its session limit, reached within 10 s at 2000/s");
    assert_eq!((b_out, b.sessions), (b_sent, b_sent), "every flow of the other subscriber got through");
    let rate = l.drop_count(DropReason::SubscriberRateLimit);
    let limit = l.drop_count(DropReason::SubscriberLimit);
    assert_eq!(rate + limit, 100_000 - 10_000, "every refusal counted (rate {rate}, limit {limit})");
    // 2000 at once, then 2000/s: the limit is reached after 4 s; until then 30 000 flows
    // were over the rate, after it 60 000 over the limit.
    assert!((29_000..=31_000).contains(&rate), "over the rate for 4 s: {rate}");
    assert!((59_000..=61_000).contains(&limit), "then at the session limit: {limit}");
    assert!(refused_icmp > 0, "ICMP host unreachable (rate-limited by the router's ICMP budget)");
    assert_eq!(l.nat().count(), 10_000 + b_sent, "nothing evicted, nothing else in the table");
    l.advance(1);
    assert_eq!(l.c.nat_create_failed_rate_limited.get(), rate, "published for stats");
    assert_eq!(l.c.nat_create_failed_subscriber_limit.get(), limit);
}
