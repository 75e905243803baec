//! Which worker owns a packet, when more than one worker shares the ports.
//!
//! Every worker owns a shard of the sessions and a slice of every external address's
//! ports ([`PortPartition`]). A packet must be handled by the worker that owns its
//! session, whichever queue it arrived on. The rule is stateless, so any worker
//! computes the same owner for the same packet:
//!
//! | packet | owner |
//! |---|---|
//! | from an inside port | the **subscriber's** worker: [`subscriber_owner`] of the source address |
//! | from an outside port, to one of our external addresses | the owner of the **destination port** (TCP/UDP port, ICMP identifier; for an ICMP error, the quoted packet's source port) |
//! | from an outside port, to anything else (routed, untranslated) | the subscriber's worker of the destination address |
//! | from an inside port, to one of our external addresses (hairpinning) | the sender's (subscriber's) worker first, for the sender's own mapping; then the owner of the destination port, where the destination's mapping lives (see [`super::slowpath`]) |
//! | an address-only protocol (GRE, ESP, ...), either way | [`addr_only_owner`] of the **remote** address (the destination of a packet from inside, the source of one from outside) and the protocol |
//!
//! An address-only flow has no port to name its worker, and one inside host at a time
//! may use an external address towards a remote on a protocol: so the worker of
//! (remote, protocol) holds every such session, sees every conflict, and chooses the
//! external address alone; both directions of the flow compute the same owner from
//! the packet. Such sessions count against their subscriber's session limit on that
//! worker, not on the subscriber's.
//!
//! A subscriber's flows all land on one worker, so per-subscriber limits and paired
//! pooling need no shared state; since that worker allocates from its own port slice,
//! replies name it by their destination port.
//!
//! [`subscriber_owner`] is the Toeplitz hash (the one NICs use for RSS) of the source
//! address under [`RSS_KEY`], modulo the worker count: masqd programs the inside port's
//! RSS with that key on the source address only (`L3_SRC_ONLY`), so on a NIC with a
//! default redirection table whose size the worker count divides, inside traffic is
//! already on the right queue and nothing moves. Wherever the hardware disagrees (no
//! RSS on virtual devices, af_packet's own fanout, another table) the software check
//! corrects it: the receiving worker hands the packet over a ring to its owner.
//!
//! Non-first fragments carry no ports. A worker that hands a port-steered first
//! fragment to another remembers where it sent the datagram (a small fixed table,
//! [`FRAG_OWNERS`] entries, 2 s) and sends the later fragments after it; fragments of
//! one datagram arrive on one queue (RSS hashes fragments by address only). A later
//! fragment that overtakes its first waits on the worker that received it
//! (`crate::pipeline::fragwait`); when the first fragment comes and is handed on, the
//! waiting fragments are woken and follow it to its owner.
//!
//! DNAT is the one case the packet alone cannot decide: a new inbound flow to a port
//! forward reaches the owner of the forwarded port, but its replies come from the
//! inside host and so reach that host's worker. The port's owner finds the DNAT rule and
//! hands the packet to the target's worker ([`super::path::Decision::Handoff`]), which
//! creates the session; every later packet of the flow takes the same way.

use std::net::Ipv4Addr;

use super::classify::{Frag, NatPacket, L4};
use super::frag::FragKey;
use super::key::Proto;
use super::ports::PortPartition;
use crate::time::{Duration, Instant};

/// The RSS key masqd programs on its inside port (the well-known default Toeplitz key
/// of Microsoft's RSS specification, 40 bytes).
pub const RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// Entries of the table that sends later fragments after their first.
pub const FRAG_OWNERS: usize = 256;
/// How long a fragment's owner is remembered.
pub const FRAG_OWNER_TTL: Duration = Duration::from_millis(2000);

/// The Toeplitz hash of `input` under `key` (`key` at least `input.len() + 4` bytes).
pub fn toeplitz(key: &[u8], input: &[u8]) -> u32 {
    debug_assert!(key.len() >= input.len() + 4);
    let mut window = u32::from_be_bytes([key[0], key[1], key[2], key[3]]);
    let mut hash = 0u32;
    for (i, &byte) in input.iter().enumerate() {
        let next = key.get(i + 4).copied().unwrap_or(0);
        for bit in 0..8 {
            if byte & (0x80 >> bit) != 0 {
                hash ^= window;
            }
            window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
        }
    }
    hash
}

/// The Toeplitz hash of every value of each byte of an IPv4 address under [`RSS_KEY`]:
/// the hash of an address is the XOR of its four bytes' entries.
static ADDR_TABLE: [[u32; 256]; 4] = addr_table();

const fn addr_table() -> [[u32; 256]; 4] {
    let mut t = [[0u32; 256]; 4];
    let mut pos = 0;
    while pos < 4 {
        let mut value = 0;
        while value < 256 {
            let mut h = 0u32;
            let mut bit = 0;
            while bit < 8 {
                if value & (0x80 >> bit) != 0 {
                    // The 32-bit key window starting at bit 8·pos + bit.
                    let start = pos * 8 + bit;
                    let mut w = 0u32;
                    let mut k = 0;
                    while k < 32 {
                        let b = start + k;
                        w = (w << 1) | ((RSS_KEY[b / 8] >> (7 - b % 8)) & 1) as u32;
                        k += 1;
                    }
                    h ^= w;
                }
                bit += 1;
            }
            t[pos][value] = h;
            value += 1;
        }
        pos += 1;
    }
    t
}

/// The Toeplitz hash of `addr` under [`RSS_KEY`] (table-driven: four lookups).
#[inline]
pub fn addr_hash(addr: Ipv4Addr) -> u32 {
    let o = addr.octets();
    ADDR_TABLE[0][usize::from(o[0])]
        ^ ADDR_TABLE[1][usize::from(o[1])]
        ^ ADDR_TABLE[2][usize::from(o[2])]
        ^ ADDR_TABLE[3][usize::from(o[3])]
}

/// The worker that owns subscriber `addr` among `workers`.
#[inline]
pub fn subscriber_owner(addr: Ipv4Addr, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    (addr_hash(addr) % u32::from(workers)) as u16
}

/// The worker that owns the address-only flows (GRE, ESP, ...) of protocol `proto` to
/// and from `remote` among `workers`.
#[inline]
pub fn addr_only_owner(remote: Ipv4Addr, proto: u8, workers: u16) -> u16 {
    if workers <= 1 {
        return 0;
    }
    let h = addr_hash(remote) ^ u32::from(proto).wrapping_mul(0x9e37_79b1);
    (h % u32::from(workers)) as u16
}

#[derive(Clone, Copy)]
struct FragOwner {
    key: FragKey,
    owner: u16,
    until: Instant,
}

/// One worker's steering: its index, the partition, and where it sent fragments.
pub struct Steering {
    me: u16,
    workers: u16,
    partition: PortPartition,
    frags: Box<[Option<FragOwner>]>,
    /// Later fragments sent after their first.
    pub fragments_followed: u64,
    /// Deterministic NAT: a packet to one of its (address, port)s belongs to the
    /// worker of the host the arithmetic names.
    det: super::deterministic::DetTables,
}

impl Steering {
    pub fn new(me: u16, partition: PortPartition) -> Steering {
        Steering {
            me,
            workers: partition.workers(),
            partition,
            frags: vec![None; FRAG_OWNERS].into_boxed_slice(),
            fragments_followed: 0,
            det: Default::default(),
        }
    }

    /// Steer packets to deterministic NAT addresses by the host owning the port.
    pub fn with_deterministic(mut self, det: super::deterministic::DetTables) -> Steering {
        self.det = det;
        self
    }

    pub fn me(&self) -> u16 {
        self.me
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// The worker that owns `pkt` (received on a port that faces outside if
    /// `outside`), given the external addresses (sorted).
    pub fn owner(&mut self, outside: bool, pkt: &NatPacket, external: &[Ipv4Addr], now: Instant) -> u16 {
        if let L4::Flow(f) = pkt.l4 {
            if let Proto::Other(n) = f.tuple.proto {
                return addr_only_owner(if outside { pkt.src } else { pkt.dst }, n, self.workers);
            }
        }
        if !outside {
            // The subscriber's, whatever the destination: a packet to one of our
            // external endpoints (hairpinning) takes its sender's mapping there first.
            return subscriber_owner(pkt.src, self.workers);
        }
        if !self.det.is_empty() && self.det.is_outside(pkt.dst) {
            // Deterministic NAT: the worker of the host that owns the destination port,
            // which holds the mapping.
            let port = match pkt.l4 {
                L4::Flow(f) => Some(f.tuple.dst.port),
                L4::IcmpError(q) if self.det.is_outside(q.tuple.src.addr) => Some(q.tuple.src.port),
                L4::Fragment => return self.later_fragment(&pkt.frag_key(), now),
                _ => None,
            };
            let host = port.and_then(|p| self.det.owner_host(pkt.dst, p));
            let owner = host.map_or(self.me, |h| subscriber_owner(h, self.workers));
            if pkt.frag == Frag::First && owner != self.me {
                self.remember(pkt.frag_key(), owner, now);
            }
            return owner;
        }
        let is_external = |a: Ipv4Addr| external.binary_search(&a).is_ok();
        if !is_external(pkt.dst) {
            return subscriber_owner(pkt.dst, self.workers);
        }
        // To one of our external addresses: the port names the owner.
        let port = match pkt.l4 {
            L4::Flow(f) => Some(f.tuple.dst.port),
            L4::IcmpError(q) if is_external(q.tuple.src.addr) => Some(q.tuple.src.port),
            L4::Fragment => return self.later_fragment(&pkt.frag_key(), now),
            _ => None,
        };
        let Some(owner) = port.and_then(|p| self.partition.owner_of(p)) else {
            return self.me;
        };
        if pkt.frag == Frag::First && owner != self.me {
            self.remember(pkt.frag_key(), owner, now);
        }
        owner
    }

    fn slot(key: &FragKey) -> usize {
        let h =
            u32::from(key.src) ^ u32::from(key.dst).rotate_left(16) ^ u32::from(key.id) ^ u32::from(key.proto) << 24;
        (h.wrapping_mul(0x9e37_79b1) >> 24) as usize % FRAG_OWNERS
    }

    fn remember(&mut self, key: FragKey, owner: u16, now: Instant) {
        self.frags[Self::slot(&key)] = Some(FragOwner { key, owner, until: now + FRAG_OWNER_TTL });
    }

    fn later_fragment(&mut self, key: &FragKey, now: Instant) -> u16 {
        match self.frags[Self::slot(key)] {
            Some(f) if f.key == *key && now < f.until => {
                self.fragments_followed += 1;
                f.owner
            }
            _ => self.me,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::ports::PortRange;
    use crate::testkit::{fragments, ipv4, TcpSeg};

    fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, sp: u16, dp: u16, payload: &[u8]) -> Vec<u8> {
        ipv4(src, dst).udp(sp, dp, payload)
    }

    fn tcp_packet(src: Ipv4Addr, dst: Ipv4Addr, sp: u16, dp: u16) -> Vec<u8> {
        ipv4(src, dst).tcp(sp, dp, TcpSeg { window: 1000, ..TcpSeg::flags("SA", 1, 1) }, &[])
    }

    fn icmp_echo_reply(src: Ipv4Addr, dst: Ipv4Addr, ident: u16) -> Vec<u8> {
        ipv4(src, dst).icmp_echo_reply(ident, 1, b"ping")
    }

    fn port_unreachable(src: Ipv4Addr, dst: Ipv4Addr, quoted: &[u8]) -> Vec<u8> {
        ipv4(src, dst).icmp_error(3, 3, quoted)
    }

    /// The verification vectors of Microsoft's RSS specification (IPv4, addresses only).
    #[test]
    fn toeplitz_matches_the_published_ipv4_vectors() {
        let v = [
            ([66, 9, 149, 187], [161, 142, 100, 80], 0x323e_8fc2u32),
            ([199, 92, 111, 2], [65, 69, 140, 83], 0xd718_262a),
            ([24, 19, 198, 95], [12, 22, 207, 184], 0xd2d0_a5de),
            ([38, 27, 205, 30], [209, 142, 163, 6], 0x8298_9176),
            ([153, 39, 163, 191], [202, 188, 127, 2], 0x5d18_09c5),
        ];
        for (src, dst, want) in v {
            let input: Vec<u8> = src.iter().chain(dst.iter()).copied().collect();
            assert_eq!(toeplitz(&RSS_KEY, &input), want, "{src:?} -> {dst:?}");
        }
    }

    #[test]
    fn the_address_table_is_the_toeplitz_hash() {
        for a in [0u32, 1, 0x6440_0002, 0x6440_0003, 0xc0a8_0101, 0xffff_ffff, 0x4209_95bb] {
            let a = Ipv4Addr::from(a);
            assert_eq!(addr_hash(a), toeplitz(&RSS_KEY, &a.octets()), "{a}");
        }
    }

    #[test]
    fn subscribers_spread_over_workers_and_one_worker_owns_all() {
        for n in 1..=4u16 {
            let mut seen = vec![0u32; usize::from(n)];
            for i in 0..1024u32 {
                let a = Ipv4Addr::from(0x6440_0000 + i);
                seen[usize::from(subscriber_owner(a, n))] += 1;
            }
            // Every worker gets a fair share (within 25 %) of 1024 consecutive addresses.
            for (w, &c) in seen.iter().enumerate() {
                assert!(c * u32::from(n) > 768 && c * u32::from(n) < 1280, "n={n} worker {w}: {c}");
            }
        }
    }

    const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

    fn steering(me: u16) -> Steering {
        Steering::new(me, PortPartition::new(2, PortRange::new(1024, 65535)).unwrap())
    }

    /// What nat-classify hands the steering.
    fn frame(ip: Vec<u8>) -> NatPacket {
        crate::nat::classify::classify(&ip).expect("a valid packet")
    }

    #[test]
    fn inside_packets_go_to_the_subscriber_and_replies_to_the_port_owner() {
        let host = Ipv4Addr::new(100, 64, 0, 2);
        let server = Ipv4Addr::new(198, 51, 100, 7);
        let owner = subscriber_owner(host, 2);
        for me in 0..2 {
            let mut s = steering(me);
            let now = Instant::from_millis(1);
            let out = frame(udp_packet(host, server, 40000, 53, b"q"));
            assert_eq!(s.owner(false, &out, &[EXT], now), owner);
            // Replies: by the external port's slice (1024..=33279 is worker 0's).
            for (port, w) in [(1024, 0), (33279, 0), (33280, 1), (65535, 1)] {
                let back = frame(udp_packet(server, EXT, 53, port, b"r"));
                assert_eq!(s.owner(true, &back, &[EXT], now), w, "port {port}");
                let tcp = frame(tcp_packet(server, EXT, 80, port));
                assert_eq!(s.owner(true, &tcp, &[EXT], now), w, "tcp port {port}");
            }
            // Routed (untranslated) traffic from outside: the destination's worker.
            let routed = frame(udp_packet(server, host, 53, 40000, b"r"));
            assert_eq!(s.owner(true, &routed, &[EXT], now), owner);
            // From inside to one of our external endpoints (hairpinning): the sender's.
            let hairpin = frame(udp_packet(host, EXT, 40000, 65535, b"h"));
            assert_eq!(s.owner(false, &hairpin, &[EXT], now), owner);
            let _ = me;
        }
    }

    #[test]
    fn icmp_echo_replies_and_errors_follow_the_identifier_or_quoted_port() {
        let server = Ipv4Addr::new(198, 51, 100, 7);
        let mut s = steering(0);
        let now = Instant::from_millis(1);
        let reply = frame(icmp_echo_reply(server, EXT, 40000));
        assert_eq!(s.owner(true, &reply, &[EXT], now), 1);
        // A port unreachable quoting our datagram EXT:40000 -> server:53.
        let quoted = udp_packet(EXT, server, 40000, 53, b"q");
        let err = frame(port_unreachable(server, EXT, &quoted));
        assert_eq!(s.owner(true, &err, &[EXT], now), 1);
        let quoted = udp_packet(EXT, server, 2000, 53, b"q");
        let err = frame(port_unreachable(server, EXT, &quoted));
        assert_eq!(s.owner(true, &err, &[EXT], now), 0);
    }

    #[test]
    fn later_fragments_follow_their_first_fragment() {
        let server = Ipv4Addr::new(198, 51, 100, 7);
        let mut s = steering(0);
        let now = Instant::from_millis(5);
        let whole = udp_packet(server, EXT, 53, 50000, &[7u8; 64]);
        let (first, later) = fragments(&whole, 0x1234, 32);
        // A later fragment before its first: stays.
        assert_eq!(s.owner(true, &frame(later.clone()), &[EXT], now), 0);
        assert_eq!(s.owner(true, &frame(first), &[EXT], now), 1);
        assert_eq!(s.owner(true, &frame(later.clone()), &[EXT], now), 1);
        assert_eq!(s.fragments_followed, 1);
        // Forgotten after the TTL.
        assert_eq!(s.owner(true, &frame(later), &[EXT], now + FRAG_OWNER_TTL), 0);
    }

    #[test]
    fn address_only_flows_follow_the_remote_and_protocol() {
        let (a, b) = (Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(100, 64, 0, 3));
        let server = Ipv4Addr::new(198, 51, 100, 7);
        let now = Instant::from_millis(1);
        for n in [2u16, 3, 4] {
            let partition = PortPartition::new(n, PortRange::new(1024, 65535)).unwrap();
            for proto in [47u8, 50] {
                let want = addr_only_owner(server, proto, n);
                for me in 0..n {
                    let mut s = Steering::new(me, partition);
                    for host in [a, b] {
                        let mut out = ipv4(host, server).udp(1, 2, b"gre");
                        out[9] = proto;
                        crate::packet::ipv4::Ipv4Packet::new_unchecked(&mut out[..]).fill_checksum();
                        assert_eq!(s.owner(false, &frame(out), &[EXT], now), want);
                    }
                    let mut back = ipv4(server, EXT).udp(1, 2, b"gre");
                    back[9] = proto;
                    crate::packet::ipv4::Ipv4Packet::new_unchecked(&mut back[..]).fill_checksum();
                    assert_eq!(s.owner(true, &frame(back), &[EXT], now), want);
                }
            }
        }
        // Remotes spread over the workers.
        let mut seen = [0u32; 2];
        for i in 0..256u32 {
            seen[usize::from(addr_only_owner(Ipv4Addr::from(0xc633_6400 + i), 47, 2))] += 1;
        }
        assert!(seen.iter().all(|&c| c > 96), "{seen:?}");
    }

    proptest::proptest! {
        /// Every worker computes the same owner for the same packet (so a handed-off
        /// packet is never handed on), a reply to a port from worker w's slice is owned
        /// by w, and whatever comes from inside by its sender's worker.
        #[test]
        fn all_workers_agree_on_the_owner(
            n in 1u16..=8, src in proptest::prelude::any::<u32>(), dst in proptest::prelude::any::<u32>(),
            sport in 1u16.., dport in 1u16.., outside in proptest::prelude::any::<bool>(), tcp in proptest::prelude::any::<bool>(),
        ) {
            let partition = PortPartition::new(n, PortRange::new(1024, 65535)).unwrap();
            let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
            let ip = if tcp { tcp_packet(src, dst, sport, dport) } else { udp_packet(src, dst, sport, dport, b"x") };
            let f = frame(ip);
            let now = Instant::from_millis(1);
            let mut external = [dst, EXT];
            external.sort();
            let owners: Vec<u16> = (0..n)
                .map(|me| Steering::new(me, partition).owner(outside, &f, &external, now))
                .collect();
            proptest::prop_assert!(owners.iter().all(|&o| o == owners[0] && o < n), "{:?}", owners);
            if !outside {
                proptest::prop_assert_eq!(owners[0], subscriber_owner(src, n));
            } else if let Some(w) = partition.owner_of(dport) {
                proptest::prop_assert_eq!(owners[0], w);
            }
        }
    }
}
