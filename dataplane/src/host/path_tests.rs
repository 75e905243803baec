//! The exception path through the in-memory worker: frames in from ports and from the
//! kernel, frames out to ports and to the kernel, built and checked with the testkit
//! (etherparse builders; parsers that verify every checksum themselves).

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::*;
use crate::config::Config;
use crate::counters::WorkerCounters;
use crate::io::mem::MemIo;
use crate::l3::neighbor::NeighborTable;
use crate::l3::route::RouteTable;
use crate::l3::router::Router;
use crate::nat::SharedRules;
use crate::setup::{load_rules, nat_path, timeouts};
use crate::stats::DropReason;
use crate::testkit::frames::{arp_frame, ethernet, ipv4, TcpSeg};
use crate::testkit::verify::{parse_ipv4, Ipv4Info};
use crate::time::Duration;
use crate::worker::Worker;

const LAN: u16 = 0;
const WAN: u16 = 1;
const MAC_LAN: [u8; 6] = [2, 0, 0, 0, 1, 1];
const MAC_WAN: [u8; 6] = [2, 0, 0, 0, 2, 1];
const GW_MAC: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];
const HOST_MAC: [u8; 6] = [2, 0, 0, 0, 1, 2];
const LAN_ADDR: [u8; 4] = [100, 64, 0, 1];
const EXT: [u8; 4] = [203, 0, 113, 1];
const GW: [u8; 4] = [203, 0, 113, 254];
const SERVER: [u8; 4] = [198, 51, 100, 7];
const HOST: [u8; 4] = [100, 64, 0, 2];

const MASQ: &str = "*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";

const CONFIG: &str = r#"
[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "100.64.0.1/10"
host_interface = "lan0"
[[port]]
name = "wan"
role = "outside"
device = "net_null1"
address = "203.0.113.1/24"
gateway = "203.0.113.254"
host_interface = "wan0"
[workers]
cores = [1]
[nat]
max_sessions = 1024
"#;

struct Lab {
    w: Worker<MemIo>,
    c: Arc<WorkerCounters>,
    now: Instant,
}

/// A worker with `rules` and the configuration after `tweak` (`host_interface`s on both
/// ports unless removed), host ports reserved as masqd does.
fn lab_with(rules: &str, tweak: impl FnOnce(&mut Config)) -> Lab {
    let mut config = Config::parse(CONFIG).unwrap();
    tweak(&mut config);
    let (set, compiled) = load_rules(rules, &config).unwrap_or_else(|e| panic!("{e}"));
    let shared: SharedRules = Arc::new(ArcSwap::from_pointee(compiled));
    let mut nat = nat_path(&config, &set, shared, timeouts(&config), 0, 1, 42).unwrap();
    reserve_host_ports(nat.nat_mut(), &host_external_addrs(&config), config.host.ports);
    let routes = Arc::new(RouteTable::from_config(&config));
    let neighbors = Arc::new(NeighborTable::new(64));
    neighbors.add_static(WAN, Ipv4Addr::from(GW), GW_MAC).unwrap();
    neighbors.add_static(LAN, Ipv4Addr::from(HOST), HOST_MAC).unwrap();
    let c = Arc::new(WorkerCounters::default());
    let router = Router::new(routes, neighbors, vec![MAC_LAN, MAC_WAN], c.clone());
    let host = HostPorts::from_config(&config);
    let io = if host.is_some() { MemIo::new(2).with_host() } else { MemIo::new(2) };
    let mut w = Worker::new(io, router, c.clone()).with_nat(nat);
    if let Some(host) = host {
        w = w.with_host(host);
    }
    Lab { w, c, now: Instant::from_secs(1) }
}

fn lab(rules: &str) -> Lab {
    lab_with(rules, |_| {})
}

/// A frame sent to `dst_mac`, parsed with every checksum verified.
fn check(frame: &[u8], dst_mac: [u8; 6]) -> Ipv4Info {
    let i = parse_ipv4(frame).expect("an IPv4 frame");
    assert_eq!(i.dst_mac, dst_mac, "destination MAC");
    assert!(i.checksums_ok, "checksums: {i:?}");
    i
}

fn tcp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16, syn: bool) -> Vec<u8> {
    let seg = if syn { TcpSeg::flags("S", 1000, 0) } else { TcpSeg::flags("SA", 1000, 1) };
    ethernet(src_mac, dst_mac, &ipv4(src, dst).tcp(sp, dp, seg, &[]))
}

fn udp(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Vec<u8> {
    ethernet(src_mac, dst_mac, &ipv4(src, dst).udp(sp, dp, b"query"))
}

fn echo_request(src_mac: [u8; 6], dst_mac: [u8; 6], src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    ethernet(src_mac, dst_mac, &ipv4(src, dst).icmp_echo_request(5, 1, b"p"))
}

/// An ARP request (`op` 1, broadcast) or reply (`op` 2) from `src` asking for `target`.
fn arp(op: u16, src_mac: [u8; 6], src_ip: [u8; 4], target_ip: [u8; 4]) -> Vec<u8> {
    arp_frame([0xff; 6], op, src_mac, src_ip.into(), [0; 6], target_ip.into())
}

impl Lab {
    fn send(&mut self, port: u16, frame: &[u8]) {
        self.w.io_mut().inject(port, frame);
        self.w.poll(self.now);
    }

    /// As if the kernel sent `frame` on `port`'s host interface.
    fn kernel_sends(&mut self, port: u16, frame: &[u8]) {
        self.w.io_mut().inject_host(port, frame);
        self.w.poll(self.now);
    }

    fn out(&mut self, port: u16) -> Vec<Vec<u8>> {
        self.w.io_mut().take_output(port)
    }

    fn kernel_got(&mut self, port: u16) -> Vec<Vec<u8>> {
        self.w.io_mut().take_host_output(port)
    }

    /// Send and expect exactly one frame, to `port`'s kernel, and nothing else anywhere.
    fn punted(&mut self, in_port: u16, frame: &[u8], host_port: u16) -> Vec<u8> {
        self.send(in_port, frame);
        for p in [LAN, WAN] {
            assert!(self.out(p).is_empty(), "nothing leaves by port {p}");
        }
        let other = self.kernel_got(1 - host_port);
        assert!(other.is_empty(), "nothing for the other kernel interface");
        let mut k = self.kernel_got(host_port);
        assert_eq!(k.len(), 1, "one frame for the kernel of port {host_port}; drops: {:?}", self.drops());
        k.pop().unwrap()
    }

    /// Send and expect one frame out by `out_port`, none for the kernel.
    fn through(&mut self, in_port: u16, frame: &[u8], out_port: u16) -> Vec<u8> {
        self.send(in_port, frame);
        assert!(self.kernel_got(LAN).is_empty() && self.kernel_got(WAN).is_empty(), "nothing for the kernel");
        let mut out = self.out(out_port);
        assert!(self.out(1 - out_port).is_empty());
        assert_eq!(out.len(), 1, "one frame out by port {out_port}; drops: {:?}", self.drops());
        out.pop().unwrap()
    }

    fn drops(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL.iter().filter(|r| self.c.drops_for(**r) > 0).map(|r| (r.name(), self.c.drops_for(*r))).collect()
    }
}

#[test]
fn unclaimed_traffic_for_the_inside_address_reaches_the_kernel_and_its_reply_leaves_untouched() {
    let mut l = lab(MASQ);
    let syn = tcp(HOST_MAC, MAC_LAN, HOST, 40000, LAN_ADDR, 53, true);
    let k = l.punted(LAN, &syn, LAN);
    assert_eq!(k, syn, "delivered as it arrived: no TTL decrement, no translation");
    let dns = udp(HOST_MAC, MAC_LAN, HOST, 40001, LAN_ADDR, 53);
    assert_eq!(l.punted(LAN, &dns, LAN), dns);
    // The kernel answers; the frame (MACs written by the kernel) leaves by the port as is.
    let reply = tcp(MAC_LAN, HOST_MAC, LAN_ADDR, 53, HOST, 40000, false);
    l.kernel_sends(LAN, &reply);
    assert_eq!(l.out(LAN), vec![reply]);
    assert!(l.out(WAN).is_empty());
    assert_eq!((l.c.host_punted.get(), l.c.host_from_kernel.get()), (2, 1));
    assert_eq!(l.c.drops_total(), 0);
    assert_eq!(l.w.nat().unwrap().nat().count(), 0, "host traffic makes no sessions");
}

#[test]
fn without_a_host_interface_nothing_changes() {
    let mut l = lab_with(MASQ, |c| c.ports.iter_mut().for_each(|p| p.host_interface = None));
    l.send(LAN, &tcp(HOST_MAC, MAC_LAN, HOST, 40000, LAN_ADDR, 53, true));
    l.send(WAN, &tcp(GW_MAC, MAC_WAN, SERVER, 4000, EXT, 22, true));
    l.send(WAN, &udp(GW_MAC, MAC_WAN, SERVER, 53, EXT, 61000));
    assert!(l.out(LAN).is_empty() && l.out(WAN).is_empty());
    assert_eq!(l.c.drops_for(DropReason::LocalUnhandled), 1);
    assert_eq!(l.c.drops_for(DropReason::NoSession), 2);
    // Port 61000 is an ordinary NAT port then.
    let f = l.through(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 61000, SERVER, 53), WAN);
    assert_eq!(check(&f, GW_MAC).sport, Some(61000));
}

#[test]
fn sessions_and_rules_win_over_the_kernel_on_the_outside_address() {
    let rules = "*nat\n-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22\n\
                 -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
    let mut l = lab(rules);
    // Unclaimed: SSH to the router's outside address reaches the kernel.
    let ssh = tcp(GW_MAC, MAC_WAN, SERVER, 50000, EXT, 22, true);
    assert_eq!(l.punted(WAN, &ssh, WAN), ssh);
    // A rule claims 2222: forwarded to the LAN host.
    let f = l.through(WAN, &tcp(GW_MAC, MAC_WAN, SERVER, 50001, EXT, 2222, true), LAN);
    let s = check(&f, HOST_MAC);
    assert_eq!((s.dst, s.dport), (Ipv4Addr::from(HOST), Some(22)));
    // A mapping claims its port: the LAN host's UDP flow gets its reply.
    let out = check(&l.through(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 40000, SERVER, 53), WAN), GW_MAC);
    let back = l.through(WAN, &udp(GW_MAC, MAC_WAN, SERVER, 53, EXT, out.sport.unwrap()), LAN);
    assert_eq!(check(&back, HOST_MAC).dport, Some(40000));
    // Pings to the outside address stay with masqd.
    let r = check(&l.through(WAN, &echo_request(GW_MAC, MAC_WAN, SERVER, EXT), WAN), GW_MAC);
    assert_eq!((r.src, r.dst, r.icmp_type, r.icmp_code), (EXT.into(), SERVER.into(), Some(0), Some(0)));
    assert_eq!(l.c.drops_total(), 0, "{:?}", l.drops());
}

#[test]
fn host_ports_are_never_mapped_and_their_replies_reach_the_kernel() {
    let mut l = lab(MASQ);
    for sp in [61000, 61500, 61999] {
        let f = l.through(LAN, &udp(HOST_MAC, MAC_LAN, HOST, sp, SERVER, 53), WAN);
        let s = check(&f, GW_MAC);
        let mapped = s.sport.unwrap();
        assert!(!(61000..=61999).contains(&mapped), "{sp} was mapped to {mapped}, a host port");
    }
    // The kernel's own query from a host port: out as it is; the answer comes back to it.
    let q = udp(MAC_WAN, GW_MAC, EXT, 61234, SERVER, 53);
    l.kernel_sends(WAN, &q);
    assert_eq!(l.out(WAN), vec![q]);
    let a = udp(GW_MAC, MAC_WAN, SERVER, 53, EXT, 61234);
    assert_eq!(l.punted(WAN, &a, WAN), a);
}

#[test]
fn the_outside_address_from_the_lan_reaches_the_kernel_untranslated() {
    let mut l = lab(MASQ);
    let syn = tcp(HOST_MAC, MAC_LAN, HOST, 40000, EXT, 22, true);
    assert_eq!(l.punted(LAN, &syn, LAN), syn, "as Linux delivers it: local, no SNAT");
    assert_eq!(l.w.nat().unwrap().nat().count(), 0);
}

#[test]
fn redirect_tcp_and_udp_reach_local_services_and_replies_go_back_translated() {
    let rules = "*nat\n-A PREROUTING -i lan -p tcp --dport 80 -j REDIRECT --to-ports 3128\n\
                 -A PREROUTING -i lan -p udp --dport 53 -j REDIRECT --to-ports 5353\n\
                 -A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
    let mut l = lab(rules);
    let k = check(&l.punted(LAN, &tcp(HOST_MAC, MAC_LAN, HOST, 40000, SERVER, 80, true), LAN), MAC_LAN);
    assert_eq!((k.src, k.sport, k.dst, k.dport, k.ttl), (HOST.into(), Some(40000), LAN_ADDR.into(), Some(3128), 64));
    let synack = tcp(MAC_LAN, HOST_MAC, LAN_ADDR, 3128, HOST, 40000, false);
    l.kernel_sends(LAN, &synack);
    let out = l.out(LAN);
    assert_eq!(out.len(), 1);
    let r = check(&out[0], HOST_MAC);
    assert_eq!(
        (r.src, r.sport, r.dst, r.dport),
        (SERVER.into(), Some(80), HOST.into(), Some(40000)),
        "the client sees whom it called"
    );

    let k = check(&l.punted(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 40002, SERVER, 53), LAN), MAC_LAN);
    assert_eq!((k.dst, k.dport), (LAN_ADDR.into(), Some(5353)));
    l.kernel_sends(LAN, &udp(MAC_LAN, HOST_MAC, LAN_ADDR, 5353, HOST, 40002));
    let r = check(&l.out(LAN)[0], HOST_MAC);
    assert_eq!((r.src, r.sport), (SERVER.into(), Some(53)));

    // Nothing listens: the kernel's port unreachable quotes the redirected datagram; the
    // client gets it about the datagram it sent.
    let quoted = &udp(HOST_MAC, MAC_LAN, HOST, 40003, LAN_ADDR, 5353)[14..];
    l.punted(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 40003, SERVER, 53), LAN);
    let err = ethernet(MAC_LAN, HOST_MAC, &ipv4(LAN_ADDR, HOST).icmp_error(3, 3, quoted));
    l.kernel_sends(LAN, &err);
    let e = check(&l.out(LAN)[0], HOST_MAC);
    // As Linux's NAT does: the outer source too is the address the client called.
    assert_eq!((e.src, e.dst, e.icmp_type, e.icmp_code), (SERVER.into(), HOST.into(), Some(3), Some(3)));
    let q = e.quoted().expect("the quoted datagram");
    assert_eq!((q.src, q.dst, q.sport, q.dport), (HOST.into(), SERVER.into(), Some(40003), Some(53)));
    assert_eq!(l.c.drops_total(), 0, "{:?}", l.drops());
}

#[test]
fn arp_for_our_address_is_mirrored_and_the_kernels_arp_replies_stay_home() {
    let mut l = lab(MASQ);
    let req = arp(1, HOST_MAC, HOST, LAN_ADDR);
    l.send(LAN, &req);
    assert_eq!(l.out(LAN).len(), 1, "masqd answers");
    assert_eq!(l.kernel_got(LAN), vec![req], "the kernel learns its neighbour");
    l.send(LAN, &arp(1, HOST_MAC, HOST, [100, 64, 0, 9]));
    assert!(l.kernel_got(LAN).is_empty(), "ARP for other addresses is not the kernel's");
    // The kernel resolves a neighbour: its request leaves; its replies do not (masqd
    // answered already).
    let kreq = arp(1, MAC_LAN, LAN_ADDR, HOST);
    l.kernel_sends(LAN, &kreq);
    assert_eq!(l.out(LAN), vec![kreq]);
    l.kernel_sends(LAN, &arp(2, MAC_LAN, LAN_ADDR, HOST));
    assert!(l.out(LAN).is_empty());
    assert_eq!(l.c.drops_for(DropReason::HostArpReply), 1);
}

#[test]
fn punts_are_rate_limited_and_bounded_and_both_are_counted() {
    let mut l = lab_with(MASQ, |c| c.host.max_pps = 100);
    for i in 0..100u16 {
        l.w.io_mut().inject(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 40000 + i, LAN_ADDR, 53));
    }
    for _ in 0..4 {
        l.w.poll(l.now);
    }
    assert_eq!(l.kernel_got(LAN).len(), 32, "the burst");
    assert_eq!(l.c.drops_for(DropReason::HostPuntLimited), 68);
    // A second later the bucket is full again.
    l.now = l.now + Duration::from_secs(1);
    l.send(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 50000, LAN_ADDR, 53));
    assert_eq!(l.kernel_got(LAN).len(), 1);
    // The ring toward the kernel takes 2 per pass: the rest is dropped, counted alike.
    l.w.io_mut().punt_limit = 2;
    l.now = l.now + Duration::from_secs(1);
    for i in 0..5u16 {
        l.w.io_mut().inject(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 50001 + i, LAN_ADDR, 53));
    }
    l.w.poll(l.now);
    assert_eq!(l.kernel_got(LAN).len(), 2);
    assert_eq!(l.c.drops_for(DropReason::HostPuntLimited), 71);
    assert_eq!(l.c.host_punted.get(), 35);
}

#[test]
fn transit_traffic_never_reaches_the_kernel() {
    let mut l = lab(MASQ);
    for i in 0..50u16 {
        let f = l.through(LAN, &udp(HOST_MAC, MAC_LAN, HOST, 30000 + i, SERVER, 9), WAN);
        assert_eq!(check(&f, GW_MAC).src, Ipv4Addr::from(EXT));
        // Inbound to an address that is not ours: routed (to the LAN host), not punted.
        let g = l.through(WAN, &udp(GW_MAC, MAC_WAN, GW, 7, HOST, 20000 + i), LAN);
        assert_eq!(check(&g, HOST_MAC).dst, Ipv4Addr::from(HOST));
    }
    assert_eq!(l.c.host_punted.get(), 0);
}
