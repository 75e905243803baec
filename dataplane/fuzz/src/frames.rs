//! `frames`: sequences of frames through two real workers (`Worker<MemIo>`, the whole
//! pipeline) with NAT, rules (masquerade, an SNAT pool, port forwards, a filter rule) and
//! handoff between them, time moving between frames.
//!
//! The input is a list of operations decoded with `arbitrary`: an inside host sending to a
//! server (TCP, UDP, ICMP echo; whole or as two fragments, possibly out of order), a
//! server answering a flow seen leaving the WAN port (so return traffic meets real
//! sessions) or knocking on a port forward, an ICMP error about a flow seen, ARP, raw
//! bytes, and time passing (sessions expire, parked fragments and held frames time out).
//! Each frame lands on either worker's queue, as RSS might put it.
//!
//! Checked after every step, besides "never panics":
//! - every frame is accounted for: sent, freed (dropped and counted), held (ARP),
//!   parked (fragments) or in a handoff queue — none lost, none duplicated;
//! - every frame sent has our port's MAC as source and, if IPv4, a valid header checksum;
//!   inside-bound frames go to an inside address;
//! - when the input holds no raw bytes and no corruption, every TCP/UDP/ICMP checksum of
//!   every frame sent verifies (etherparse as the independent oracle).

use std::net::Ipv4Addr;
use std::sync::Arc;

use arbitrary::{Arbitrary, Unstructured};
use arc_swap::ArcSwap;
use dataplane::config::Config;
use dataplane::counters::WorkerCounters;
use dataplane::io::mem::{self, MemIo};
use dataplane::l3::neighbor::NeighborTable;
use dataplane::l3::route::RouteTable;
use dataplane::l3::router::Router;
use dataplane::nat::SharedRules;
use dataplane::setup::{load_rules, nat_path, timeouts};
use dataplane::time::{Duration, Instant};
use dataplane::worker::Worker;
use etherparse::{NetSlice, PacketBuilder, SlicedPacket, TransportSlice};

const LAN: u16 = 0;
const WAN: u16 = 1;
const MAC_LAN: [u8; 6] = [2, 0, 0, 0, 1, 1];
const MAC_WAN: [u8; 6] = [2, 0, 0, 0, 2, 1];
const GW: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];
const GW_IP: [u8; 4] = [203, 0, 113, 254];
const LAN_IP: [u8; 4] = [100, 64, 0, 1];
const EXT: [u8; 4] = [203, 0, 113, 1];
/// Inside hosts; the last has no static neighbour entry (ARP on the way back).
const HOSTS: [[u8; 4]; 5] = [[100, 64, 0, 2], [100, 64, 0, 3], [100, 64, 0, 4], [100, 64, 1, 9], [100, 64, 0, 6]];
const STATIC_HOSTS: usize = 4;
/// Servers out there (the gateway's side).
const SERVERS: [[u8; 4]; 3] = [[198, 51, 100, 7], [192, 0, 2, 99], [203, 0, 113, 77]];

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
cores = [1, 2]
[nat]
max_sessions = 512
ports_per_subscriber = 64
[timeouts]
tcp = 100
tcpfin = 10
udp = 30
icmp = 20
"#;

const RULES: &str = "*nat\n\
-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22\n\
-A PREROUTING -i wan -p udp --dport 5000:5010 -j DNAT --to-destination 100.64.0.3\n\
-A POSTROUTING -o wan -s 100.64.0.4 -j SNAT --to-source 203.0.113.10-203.0.113.11\n\
-A POSTROUTING -o wan -j MASQUERADE\n\
COMMIT\n\
*filter\n\
:FORWARD ACCEPT [0:0]\n\
-A FORWARD -i lan -p tcp --dport 25 -j DROP\n\
COMMIT\n";

/// Operations of one input, at most.
const MAX_OPS: usize = 64;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum L4 {
    Tcp { flags: u8 },
    Udp,
    Echo { ident: u16 },
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Inside host → server.
    Out { on: bool, host: u8, server: u8, l4: L4, sport: u16, dport: u16, len: u8, frag: Option<bool> },
    /// Server → the external endpoint of the `pick`-th flow seen leaving (or, with none
    /// seen, a port forward).
    Reply { on: bool, pick: u8, l4_flags: u8, len: u8 },
    /// Server → a port forward (TCP 2222, UDP 5000..5010) or any port of ours.
    Knock { on: bool, server: u8, tcp: bool, dport: u16, sport: u16 },
    /// The server's ICMP error (3/x, 11/0) about the `pick`-th flow seen leaving.
    IcmpError { on: bool, pick: u8, code: u8, time_exceeded: bool },
    /// ARP from an inside host (request for the router, or a reply to masqd).
    Arp { on: bool, host: u8, reply: bool },
    /// Any bytes on a port.
    Raw { on: bool, wan: bool, bytes: Vec<u8> },
    /// A generated frame with one byte flipped.
    Corrupt { at: u16, xor: u8 },
    /// Time passes.
    Wait { ms: u16 },
}

/// A flow seen leaving by the WAN port: what a server would answer.
#[derive(Debug, Clone, Copy)]
struct Seen {
    proto: u8,
    ext: [u8; 4],
    ext_port: u16,
    remote: [u8; 4],
    remote_port: u16,
}

struct Lab {
    workers: Vec<Worker<MemIo>>,
    counters: Vec<Arc<WorkerCounters>>,
    rings: mem::MemRings,
    now: Instant,
    injected: u64,
    seen: Vec<Seen>,
    /// The last generated frame (for `Corrupt`).
    last: Option<(usize, u16, Vec<u8>)>,
    /// Whether every frame so far had valid checksums.
    clean: bool,
    ip_id: u16,
}

fn lab() -> Lab {
    let config = Config::parse(CONFIG).expect("fuzz config");
    let (set, compiled) = load_rules(RULES, &config).expect("fuzz rules");
    let shared: SharedRules = Arc::new(ArcSwap::from_pointee(compiled.with_workers(2)));
    let routes = Arc::new(RouteTable::from_config(&config));
    let neighbors = Arc::new(NeighborTable::new(64));
    neighbors.add_static(WAN, Ipv4Addr::from(GW_IP), GW).expect("neighbour");
    for (i, h) in HOSTS.iter().take(STATIC_HOSTS).enumerate() {
        neighbors.add_static(LAN, Ipv4Addr::from(*h), [2, 0, 0, 0, 1, 2 + i as u8]).expect("neighbour");
    }
    let rings = mem::rings(2);
    let tmo = timeouts(&config);
    let (mut workers, mut counters) = (Vec::new(), Vec::new());
    for i in 0..2u16 {
        let nat = nat_path(&config, &set, shared.clone(), tmo.clone(), i, 2, 42).expect("NAT");
        let c = Arc::new(WorkerCounters::default());
        let router = Router::new(routes.clone(), neighbors.clone(), vec![MAC_LAN, MAC_WAN], c.clone());
        let io = MemIo::new(2).with_handoff(i, rings.clone());
        workers.push(Worker::new(io, router, c.clone()).with_nat(nat));
        counters.push(c);
    }
    Lab {
        workers,
        counters,
        rings,
        now: Instant::from_secs(1),
        injected: 0,
        seen: Vec::new(),
        last: None,
        clean: true,
        ip_id: 1,
    }
}

fn host_mac(i: usize) -> [u8; 6] {
    [2, 0, 0, 0, 1, 2 + i as u8]
}

impl Lab {
    fn inject(&mut self, on: bool, port: u16, frame: Vec<u8>) {
        let w = usize::from(on);
        self.workers[w].io_mut().inject(port, &frame);
        self.injected += 1;
        self.last = Some((w, port, frame));
    }

    /// A UDP/TCP/ICMP echo packet with valid checksums, as an Ethernet frame.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &mut self,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src: [u8; 4],
        dst: [u8; 4],
        l4: L4,
        sport: u16,
        dport: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let b = PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(src, dst, 64);
        let mut out = Vec::new();
        let written = match l4 {
            L4::Udp => b.udp(sport, dport).write(&mut out, payload),
            L4::Tcp { flags } => {
                let mut t = b.tcp(sport, dport, u32::from(sport) << 8, 65535);
                if flags & 0x02 != 0 {
                    t = t.syn();
                }
                if flags & 0x10 != 0 {
                    t = t.ack(1);
                }
                if flags & 0x01 != 0 {
                    t = t.fin();
                }
                if flags & 0x04 != 0 {
                    t = t.rst();
                }
                t.write(&mut out, payload)
            }
            L4::Echo { ident } => b.icmpv4_echo_request(ident, sport).write(&mut out, payload),
        };
        written.expect("etherparse builds it");
        // A fresh IP identification per packet (etherparse writes 0).
        self.ip_id = self.ip_id.wrapping_add(1);
        set_ip_id(&mut out, self.ip_id);
        out
    }

    fn step(&mut self, op: Op) {
        match op {
            Op::Out { on, host, server, l4, sport, dport, len, frag } => {
                let h = usize::from(host) % HOSTS.len();
                let s = SERVERS[usize::from(server) % SERVERS.len()];
                let payload = vec![0x5a; usize::from(len)];
                let frame = self.build(host_mac(h), MAC_LAN, HOSTS[h], s, l4, sport, dport, &payload);
                match frag {
                    Some(reversed) if frame.len() > 14 + 20 + 16 => {
                        let (a, b) = fragment(&frame);
                        let (first, second) = if reversed { (b, a) } else { (a, b) };
                        self.inject(on, LAN, first);
                        self.inject(on, LAN, second);
                    }
                    _ => self.inject(on, LAN, frame),
                }
            }
            Op::Reply { on, pick, l4_flags, len } => {
                let Some(seen) = self.pick(pick) else { return };
                let l4 = match seen.proto {
                    6 => L4::Tcp { flags: l4_flags | 0x10 },
                    17 => L4::Udp,
                    _ => return self.echo_reply(on, seen),
                };
                let payload = vec![0xa5; usize::from(len)];
                let frame =
                    self.build(GW, MAC_WAN, seen.remote, seen.ext, l4, seen.remote_port, seen.ext_port, &payload);
                self.inject(on, WAN, frame);
            }
            Op::Knock { on, server, tcp, dport, sport } => {
                let s = SERVERS[usize::from(server) % SERVERS.len()];
                let dport = match dport % 4 {
                    0 if tcp => 2222,
                    0 => 5000 + dport % 11,
                    _ => dport,
                };
                let l4 = if tcp { L4::Tcp { flags: 0x02 } } else { L4::Udp };
                let frame = self.build(GW, MAC_WAN, s, EXT, l4, sport, dport, b"knock");
                self.inject(on, WAN, frame);
            }
            Op::IcmpError { on, pick, code, time_exceeded } => {
                let Some(seen) = self.pick(pick) else { return };
                // The quote: what the server got from us (header and 8 bytes of it).
                let l4 = match seen.proto {
                    6 => L4::Tcp { flags: 0x02 },
                    17 => L4::Udp,
                    _ => L4::Echo { ident: seen.ext_port },
                };
                let quoted = self.build(GW, MAC_WAN, seen.ext, seen.remote, l4, seen.ext_port, seen.remote_port, b"");
                let quote = &quoted[14..quoted.len().min(14 + 28)];
                let (t, c) = if time_exceeded { (11, 0) } else { (3, code % 16) };
                let b = PacketBuilder::ethernet2(GW, MAC_WAN).ipv4(seen.remote, seen.ext, 64).icmpv4_raw(t, c, [0; 4]);
                let mut frame = Vec::new();
                b.write(&mut frame, quote).expect("ICMP error");
                self.inject(on, WAN, frame);
            }
            Op::Arp { on, host, reply } => {
                let h = usize::from(host) % HOSTS.len();
                let (dst, op) = if reply { (MAC_LAN, 2u16) } else { ([0xff; 6], 1u16) };
                let mut f = Vec::with_capacity(60);
                f.extend_from_slice(&dst);
                f.extend_from_slice(&host_mac(h));
                f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4]);
                f.extend_from_slice(&op.to_be_bytes());
                f.extend_from_slice(&host_mac(h));
                f.extend_from_slice(&HOSTS[h]);
                f.extend_from_slice(&if reply { MAC_LAN } else { [0; 6] });
                f.extend_from_slice(&LAN_IP);
                f.resize(60, 0);
                self.inject(on, LAN, f);
            }
            Op::Raw { on, wan, bytes } => {
                self.clean = false;
                self.inject(on, if wan { WAN } else { LAN }, bytes);
            }
            Op::Corrupt { at, xor } => {
                // Replace the last frame injected by a corrupted copy (it has not been
                // polled yet: frames are handled at the end of each step).
                if let Some((w, port, mut frame)) = self.last.take() {
                    if frame.is_empty() || xor == 0 {
                        return;
                    }
                    let i = usize::from(at) % frame.len();
                    frame[i] ^= xor;
                    let q = &mut self.workers[w].io_mut().input[usize::from(port)];
                    if q.pop_back().is_some() {
                        q.push_back(mem::MemFrame::from_bytes(&frame));
                        self.clean = false;
                    }
                }
            }
            Op::Wait { ms } => self.now = self.now + Duration::from_millis(u64::from(ms) * 20),
        }
    }

    fn echo_reply(&mut self, on: bool, seen: Seen) {
        let b =
            PacketBuilder::ethernet2(GW, MAC_WAN).ipv4(seen.remote, seen.ext, 64).icmpv4_echo_reply(seen.ext_port, 1);
        let mut frame = Vec::new();
        b.write(&mut frame, b"pong").expect("echo reply");
        self.inject(on, WAN, frame);
    }

    fn pick(&self, pick: u8) -> Option<Seen> {
        (!self.seen.is_empty()).then(|| self.seen[usize::from(pick) % self.seen.len()])
    }

    /// Both workers poll until nothing is left to hand over (a few passes), then every
    /// frame sent is checked and the flows leaving are remembered.
    fn settle(&mut self) {
        for _ in 0..4 {
            for w in &mut self.workers {
                w.poll(self.now);
            }
        }
        for w in 0..2 {
            for port in [LAN, WAN] {
                for frame in self.workers[w].io_mut().take_output(port) {
                    self.check_sent(port, &frame);
                }
            }
        }
        self.check_accounting();
    }

    fn check_sent(&mut self, port: u16, frame: &[u8]) {
        let ours = if port == LAN { MAC_LAN } else { MAC_WAN };
        assert!(frame.len() >= 14, "runt frame sent: {frame:02x?}");
        assert_eq!(frame[6..12], ours, "source MAC of a frame sent on port {port}");
        if frame[12..14] != [0x08, 0x00] {
            return;
        }
        let p = SlicedPacket::from_ethernet(frame).unwrap_or_else(|e| panic!("IPv4 frame sent does not parse: {e}"));
        let Some(NetSlice::Ipv4(ip)) = &p.net else { return };
        let h = ip.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IPv4 header checksum of a frame sent");
        if port == LAN {
            assert_eq!(h.destination[..2], [100, 64], "inside-bound to an inside address: {h:?}");
        }
        let fragment = h.more_fragments || h.fragment_offset.value() != 0;
        if self.clean && !fragment {
            check_l4(&p, &h);
        }
        if port == WAN && !fragment {
            let seen = match &p.transport {
                Some(TransportSlice::Udp(u)) => Some((17, u.source_port(), u.destination_port())),
                Some(TransportSlice::Tcp(t)) => Some((6, t.source_port(), t.destination_port())),
                Some(TransportSlice::Icmpv4(i)) if i.type_u8() == 8 => {
                    let b = i.bytes5to8();
                    Some((1, u16::from_be_bytes([b[0], b[1]]), 0))
                }
                _ => None,
            };
            if let Some((proto, ext_port, remote_port)) = seen {
                if self.seen.len() >= 32 {
                    self.seen.remove(0);
                }
                self.seen.push(Seen { proto, ext: h.source, ext_port, remote: h.destination, remote_port });
            }
        }
    }

    /// Every frame received is sent, freed, held, parked or in a handoff queue.
    fn check_accounting(&self) {
        let mut out = 0u64;
        let mut allocated = 0u64;
        let mut rx = 0u64;
        for (w, c) in self.workers.iter().zip(&self.counters) {
            let io = w.io();
            allocated += (usize::MAX - io.alloc_budget) as u64;
            out += c.tx_packets.get() + io.freed as u64 + (w.held() + w.deferred()) as u64;
            rx += c.rx_packets.get();
        }
        let in_rings: u64 = self.rings.borrow().iter().map(|q| q.len() as u64).sum();
        let waiting: u64 = self.workers.iter().map(|w| w.io().input.iter().map(|q| q.len() as u64).sum::<u64>()).sum();
        assert_eq!(rx + waiting, self.injected, "every frame injected was received");
        assert_eq!(
            out + in_rings,
            self.injected + allocated,
            "frames lost or duplicated: sent+freed+held {out}, in handoff {in_rings}, injected {}, allocated {allocated}",
            self.injected
        );
    }
}

/// TCP, UDP (unless 0) and ICMP checksums of a frame sent, checked by etherparse.
fn check_l4(p: &SlicedPacket<'_>, h: &etherparse::Ipv4Header) {
    match &p.transport {
        Some(TransportSlice::Udp(u)) if u.checksum() != 0 => {
            let want = u.to_header().calc_checksum_ipv4(h, u.payload()).expect("UDP checksum");
            assert_eq!(u.checksum(), want, "UDP checksum of a frame sent");
        }
        Some(TransportSlice::Tcp(t)) => {
            let want = t.to_header().calc_checksum_ipv4(h, t.payload()).expect("TCP checksum");
            assert_eq!(t.checksum(), want, "TCP checksum of a frame sent");
        }
        Some(TransportSlice::Icmpv4(i)) => {
            assert_eq!(i.icmp_type().calc_checksum(i.payload()), i.checksum(), "ICMP checksum of a frame sent");
        }
        _ => {}
    }
}

fn set_ip_id(frame: &mut [u8], id: u16) {
    frame[14 + 4..14 + 6].copy_from_slice(&id.to_be_bytes());
    frame[14 + 10..14 + 12].fill(0);
    let sum = checksum(&frame[14..14 + 20]);
    frame[14 + 10..14 + 12].copy_from_slice(&sum.to_be_bytes());
}

fn checksum(b: &[u8]) -> u16 {
    let mut s: u32 = b.chunks(2).map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum();
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

/// Split an IPv4 frame (20-byte header) into two fragments: the first carries the
/// transport header and 8 bytes, the second the rest.
fn fragment(frame: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (eth, ip) = frame.split_at(14);
    let (hdr, data) = ip.split_at(20);
    let cut = 16.min(data.len());
    let mk = |part: &[u8], offset_units: u16, more: bool| {
        let mut f = eth.to_vec();
        let mut h = hdr.to_vec();
        h[2..4].copy_from_slice(&((20 + part.len()) as u16).to_be_bytes());
        let flags = (if more { 0x2000 } else { 0 }) | offset_units;
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        h[10..12].fill(0);
        let sum = checksum(&h);
        h[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend_from_slice(&h);
        f.extend_from_slice(part);
        f
    };
    (mk(&data[..cut], 0, true), mk(&data[cut..], (cut / 8) as u16, false))
}

pub fn frames(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut lab = lab();
    for _ in 0..MAX_OPS {
        let Ok(op) = Op::arbitrary(&mut u) else { break };
        // Corrupt applies to the frame before it is polled.
        let corrupting = matches!(op, Op::Corrupt { .. });
        lab.step(op);
        if !corrupting {
            if let Ok(true) = u.arbitrary::<bool>() {
                continue; // more frames in the same burst
            }
        }
        lab.settle();
    }
    lab.settle();
    // Long after: every session and every parked or held frame has gone.
    lab.now = lab.now + Duration::from_secs(600);
    for _ in 0..3 {
        lab.settle();
        lab.now = lab.now + Duration::from_secs(1);
    }
    for w in &lab.workers {
        assert_eq!(w.held() + w.deferred(), 0, "frames still held long after");
    }
}
