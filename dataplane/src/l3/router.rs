//! The per-worker router: layer 2 and 3 around the NAT — which frames are ours, ARP,
//! IPv4 sanity, routing, TTL and MTU, and the packets a router owes (ARP replies, ICMP
//! errors, echo replies; RFC 826, RFC 1812).
//!
//! Sans-I/O and free of the NAT: the worker holds its [`Router`] and its NAT side by
//! side, and the pipeline's stages (`crate::pipeline`) call one method each, per packet
//! of their vector:
//!
//! | stage         | call                                                                 |
//! |---------------|----------------------------------------------------------------------|
//! | `l2-input`    | [`Router::l2_input`] (ours? which EtherType?), [`Router::arp`]       |
//! | `ip4-input`   | [`Router::ip4_input`]: one validation pass through the IPv4 view     |
//! | `ip4-forward` | [`Router::forward`]: route, TTL, MTU; [`Router::icmp_error`] builds the error in place |
//! | `ip4-local`   | [`Router::answer_local`]: echo replies to the router's own addresses |
//! | `l2-output`   | [`Router::neighbor`], [`Router::fill_l2`]                            |
//!
//! It counts what it originates (ARP replies, ICMP messages, learned neighbours) in the
//! worker's [`WorkerCounters`]; the drops it finds it returns as [`DropReason`]s for the
//! pipeline's `drop` stage to count, except where one packet is counted twice by design
//! (an ICMP error that is suppressed counts its cause and `icmp_error_suppressed`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::counters::WorkerCounters;
use crate::l3::neighbor::{Evict, Neighbor, NeighborTable};
use crate::l3::route::{NextHop, RouteTable};
use crate::packet::ethernet::HEADER_LEN as ETH_LEN;
use crate::packet::icmp::{self, Icmpv4Message, Icmpv4Packet};
use crate::packet::ipv4::{self, IpProtocol, Ipv4Packet};
use crate::packet::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetAddress, EthernetFrame};
use crate::ratelimit::TokenBucket;
use crate::stats::DropReason;
use crate::time::Instant;

/// Shortest Ethernet frame without FCS; shorter ones we originate are zero-padded.
pub const MIN_FRAME: usize = 60;
/// ICMP errors one worker may send per second (RFC 1812 §4.3.2.8 rate limiting).
pub const ICMP_ERRORS_PER_SEC: u32 = 1000;
/// Burst of ICMP errors allowed before the rate limit applies.
pub const ICMP_ERROR_BURST: u32 = 100;
/// TTL of packets the router originates.
pub const DEFAULT_TTL: u8 = 64;
/// New neighbours one worker learns per second from ARP packets it did not ask for
/// (requests for our addresses from senders not in the table); see [`crate::l3::neighbor`].
pub const NEIGHBOR_LEARN_PER_SEC: u32 = 100;
/// Burst of such new neighbours allowed before the rate applies.
pub const NEIGHBOR_LEARN_BURST: u32 = 100;

const IPV4_LEN: usize = ipv4::HEADER_LEN;
const ICMP_HEADER_LEN: usize = 8;
const REFRESH_SLOTS: usize = 8;

/// What a frame carries, for `l2-input`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Kind {
    Ipv4,
    Arp,
}

/// What [`Router::arp`] did with an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOutcome {
    /// The frame is now our reply, `len` bytes, MACs written: send it back out.
    Reply { len: usize },
    /// Used (a reply to our request, learned): free it, no drop to count.
    Consumed,
    /// Drop it for this reason.
    Drop(DropReason),
}

/// An ICMP error the router owes the sender of a packet it drops (RFC 1812).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IcmpErrorReq {
    /// The drop reason (counted when the error is built or suppressed).
    pub reason: DropReason,
    pub msg: Icmpv4Message,
    pub code: u8,
    /// Bytes 4..8 of the ICMP header (the next-hop MTU of "fragmentation needed").
    pub rest: u32,
}

/// Why [`Router::forward`] does not forward a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotForwarded {
    /// Answer with this ICMP error.
    Icmp(IcmpErrorReq),
    /// Drop silently for this reason.
    Drop(DropReason),
}

#[derive(Clone, Copy)]
struct Refresh {
    port: u16,
    via: Ipv4Addr,
    asked: Instant,
}

/// One worker's router. Routes and neighbours are shared read-mostly tables.
pub struct Router {
    routes: Arc<RouteTable>,
    neighbors: Arc<NeighborTable>,
    macs: Vec<EthernetAddress>,
    counters: Arc<WorkerCounters>,
    icmp_tokens: u32,
    icmp_refill: Instant,
    /// Unsolicited neighbour learning, [`NEIGHBOR_LEARN_PER_SEC`].
    learn_tokens: TokenBucket,
    /// Stale neighbours recently re-asked, so a busy flow asks once per second.
    refreshed: [Option<Refresh>; REFRESH_SLOTS],
    /// Stale neighbours to re-ask now (drained by the worker).
    refresh_due: [Option<(u16, Ipv4Addr)>; REFRESH_SLOTS],
}

fn is_martian_source(a: Ipv4Addr) -> bool {
    let o = a.octets();
    o[0] == 0 || o[0] == 127 || a.is_multicast() || a.is_broadcast() || o[0] >= 240
}

impl Router {
    pub fn new(
        routes: Arc<RouteTable>,
        neighbors: Arc<NeighborTable>,
        macs: Vec<[u8; 6]>,
        counters: Arc<WorkerCounters>,
    ) -> Router {
        assert_eq!(macs.len(), routes.port_count(), "one MAC per port");
        Router {
            routes,
            neighbors,
            macs: macs.into_iter().map(EthernetAddress).collect(),
            counters,
            icmp_tokens: ICMP_ERROR_BURST,
            icmp_refill: Instant::ZERO,
            learn_tokens: TokenBucket::full(NEIGHBOR_LEARN_BURST, Instant::ZERO),
            refreshed: [None; REFRESH_SLOTS],
            refresh_due: [None; REFRESH_SLOTS],
        }
    }

    /// The route table (the NAT's slow path reads it through [`crate::nat::Routing`]).
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    // ----- l2-input -----

    /// Whether `frame`, arrived on `in_port`, is sent to the port's own MAC (not
    /// broadcast): the frames the `steer` stage may hand to another worker before
    /// `l2-input` looks at them (the rest stay, and a frame not for us is dropped here).
    #[inline]
    pub fn to_port_mac(&self, in_port: u16, frame: &[u8]) -> bool {
        match (frame.get(..6), self.macs.get(usize::from(in_port))) {
            (Some(dst), Some(mac)) => dst == mac.as_bytes(),
            _ => false,
        }
    }

    /// Whether `frame`, arrived on `in_port`, is ours (our MAC or broadcast) and what it
    /// carries.
    #[inline]
    pub fn l2_input(&self, in_port: u16, frame: &[u8]) -> Result<L2Kind, DropReason> {
        let eth = EthernetFrame::new_checked(frame).map_err(|_| DropReason::EthTruncated)?;
        let dst = eth.dst_addr();
        if dst != self.macs[usize::from(in_port)] && !dst.is_broadcast() {
            return Err(DropReason::EthNotForUs);
        }
        match eth.ethertype() {
            EtherType::Ipv4 => Ok(L2Kind::Ipv4),
            EtherType::Arp => Ok(L2Kind::Arp),
            _ => Err(DropReason::EthUnsupportedType),
        }
    }

    /// An ARP packet that arrived on `in_port` (`room` holds the frame in its first `len`
    /// bytes, then the buffer's tailroom): learn the sender if RFC 826 says so, answer a
    /// request for one of our addresses in place. `claims(addr)`: whether `addr` on this
    /// port's link is ours besides the port's own address (the NAT's pool on an outside
    /// link: proxy ARP, so SNAT pools need no static routes upstream).
    pub fn arp(
        &mut self,
        in_port: u16,
        room: &mut [u8],
        len: usize,
        now: Instant,
        claims: impl Fn(Ipv4Addr) -> bool,
    ) -> ArpOutcome {
        let repr = match ArpPacket::new_checked(&room[ETH_LEN..len]).and_then(|p| ArpRepr::parse(&p)) {
            Ok(r) => r,
            Err(_) => return ArpOutcome::Drop(DropReason::ArpMalformed),
        };
        let port = self.routes.port(in_port);
        let sender_on_link = port.prefix.contains(repr.source_protocol_addr)
            && repr.source_protocol_addr != port.address
            && !repr.source_hw_addr.is_multicast();
        let target = repr.target_protocol_addr;
        if target != port.address && !(port.prefix.contains(target) && claims(target)) {
            if sender_on_link {
                self.neighbors.merge(in_port, repr.source_protocol_addr, repr.source_hw_addr.0, now);
            }
            return ArpOutcome::Drop(DropReason::ArpIgnored);
        }
        if sender_on_link {
            self.learn_sender(in_port, repr.source_protocol_addr, repr.source_hw_addr.0, now);
        }
        match repr.operation {
            ArpOperation::Request => {
                let ours = self.macs[usize::from(in_port)];
                let reply = ArpRepr {
                    operation: ArpOperation::Reply,
                    source_hw_addr: ours,
                    source_protocol_addr: target,
                    target_hw_addr: repr.source_hw_addr,
                    target_protocol_addr: repr.source_protocol_addr,
                };
                let out_len = self.emit_arp(room, repr.source_hw_addr, ours, &reply);
                self.counters.arp_replies_sent.inc();
                ArpOutcome::Reply { len: out_len }
            }
            // A reply to our request: learned above; nothing to send.
            ArpOperation::Reply => {
                self.counters.arp_replies_received.inc();
                ArpOutcome::Consumed
            }
            _ => ArpOutcome::Drop(DropReason::ArpIgnored),
        }
    }

    /// RFC 826 for an ARP packet addressed to us: merge the sender if it is in the table
    /// (learned, or asked for); otherwise add it within [`NEIGHBOR_LEARN_PER_SEC`] and
    /// without pushing out a fresh entry (see [`crate::l3::neighbor`]).
    fn learn_sender(&mut self, port: u16, addr: Ipv4Addr, mac: [u8; 6], now: Instant) {
        if self.neighbors.merge(port, addr, mac, now) {
            self.counters.arp_learned.inc();
        } else if !self.learn_tokens.take(now, NEIGHBOR_LEARN_PER_SEC, NEIGHBOR_LEARN_BURST) {
            self.counters.arp_learn_limited.inc();
        } else if self.neighbors.insert(port, addr, mac, now, Evict::NotFresh).is_ok() {
            self.counters.arp_learned.inc();
        } else {
            self.counters.neighbor_table_full.inc();
        }
    }

    fn emit_arp(&self, room: &mut [u8], dst: EthernetAddress, src: EthernetAddress, repr: &ArpRepr) -> usize {
        let out_len = MIN_FRAME.max(ETH_LEN + repr.buffer_len());
        room[..out_len].fill(0);
        let mut eth = EthernetFrame::new_unchecked(&mut room[..out_len]);
        eth.set_dst_addr(dst);
        eth.set_src_addr(src);
        eth.set_ethertype(EtherType::Arp);
        repr.emit(&mut ArpPacket::new_unchecked(&mut room[ETH_LEN..ETH_LEN + repr.buffer_len()]));
        out_len
    }

    /// Build a broadcast ARP request for `target` from `port` into `room`; returns its length
    /// (0 if `room` is too small).
    /// `target` is marked incomplete in the neighbour table so that its answer is learned
    /// (counted as `neighbor_table_full` if it cannot be).
    pub fn emit_arp_request(&self, port: u16, target: Ipv4Addr, room: &mut [u8], now: Instant) -> usize {
        if room.len() < MIN_FRAME {
            return 0;
        }
        if self.neighbors.mark_incomplete(port, target, now).is_err() {
            self.counters.neighbor_table_full.inc();
        }
        let ours = self.macs[usize::from(port)];
        let req = ArpRepr {
            operation: ArpOperation::Request,
            source_hw_addr: ours,
            source_protocol_addr: self.routes.port(port).address,
            target_hw_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        self.emit_arp(room, EthernetAddress::BROADCAST, ours, &req)
    }

    // ----- ip4-input -----

    /// Validate `ip` (everything after the Ethernet header) once, through the IPv4 view's
    /// accessors, in this order: length of the fixed header, version, IHL, total length
    /// (then every accessor of the view is in bounds: its `check_len` holds), header
    /// checksum, martian addresses, and destinations no router forwards (broadcast,
    /// multicast, a directed broadcast of one of our prefixes). Returns the total length:
    /// Ethernet padding beyond it is not part of the packet.
    #[inline]
    pub fn ip4_input(&self, ip: &[u8]) -> Result<usize, DropReason> {
        if ip.len() < IPV4_LEN {
            return Err(DropReason::Ipv4Truncated);
        }
        let p = Ipv4Packet::new_unchecked(ip);
        if p.version() != 4 {
            return Err(DropReason::Ipv4BadVersion);
        }
        let header_len = usize::from(p.header_len());
        if header_len < IPV4_LEN || header_len > ip.len() {
            return Err(DropReason::Ipv4BadIhl);
        }
        let total_len = usize::from(p.total_len());
        if total_len < header_len {
            return Err(DropReason::Ipv4BadLength);
        }
        if total_len > ip.len() {
            return Err(DropReason::Ipv4Truncated);
        }
        debug_assert!(p.check_len().is_ok());
        if !p.verify_checksum() {
            return Err(DropReason::Ipv4BadChecksum);
        }
        let (src, dst) = (p.src_addr(), p.dst_addr());
        if is_martian_source(src) || dst.octets()[0] == 0 || dst.octets()[0] == 127 {
            return Err(DropReason::Ipv4BadAddress);
        }
        if dst.is_broadcast() || dst.is_multicast() || self.routes.is_directed_broadcast(dst) {
            return Err(DropReason::LocalUnhandled);
        }
        Ok(total_len)
    }

    // ----- ip4-forward -----

    /// Whether `addr` is one of the router's own port addresses.
    #[inline]
    pub fn is_local(&self, addr: Ipv4Addr) -> bool {
        self.routes.local_port(addr).is_some()
    }

    /// The next hop toward `dst`.
    #[inline]
    pub fn route(&self, dst: Ipv4Addr) -> Option<NextHop> {
        self.routes.lookup(dst)
    }

    /// Route `ip` (checked by [`ip4_input`](Self::ip4_input), as it arrived) toward `dst`
    /// (its destination after translation) and check TTL and MTU against it, so an
    /// ICMP error quotes what its sender sent (RFC 1812 §5.3.1, §4.3.2.3). The caller
    /// decrements the TTL.
    #[inline]
    pub fn forward(&self, ip: &Ipv4Packet<&[u8]>, dst: Ipv4Addr) -> Result<NextHop, NotForwarded> {
        let error = |reason, msg, code, rest| NotForwarded::Icmp(IcmpErrorReq { reason, msg, code, rest });
        let Some(hop) = self.routes.lookup(dst) else {
            return Err(error(DropReason::NoRoute, Icmpv4Message::DstUnreachable, 0, 0));
        };
        if ip.ttl() <= 1 {
            return Err(error(DropReason::TtlExceeded, Icmpv4Message::TimeExceeded, 0, 0));
        }
        let mtu = self.routes.port(hop.port).mtu;
        if ip.total_len() > mtu {
            if ip.dont_frag() {
                return Err(error(DropReason::NeedFragmentation, Icmpv4Message::DstUnreachable, 4, u32::from(mtu)));
            }
            return Err(NotForwarded::Drop(DropReason::TooBig));
        }
        Ok(hop)
    }

    fn take_icmp_token(&mut self, now: Instant) -> bool {
        let elapsed = now.millis_since(self.icmp_refill);
        let refill = elapsed.saturating_mul(u64::from(ICMP_ERRORS_PER_SEC)) / 1000;
        if refill > 0 {
            self.icmp_tokens = (u64::from(self.icmp_tokens) + refill).min(u64::from(ICMP_ERROR_BURST)) as u32;
            self.icmp_refill = now;
        }
        if self.icmp_tokens == 0 {
            return false;
        }
        self.icmp_tokens -= 1;
        true
    }

    /// The packet in `room` (its first `len` bytes) is dropped for `err.reason` (counted
    /// here): where RFC 1812 allows and the rate limit has a token, turn its buffer into
    /// the ICMP error back to its source. Returns the error's frame length and next hop,
    /// or `None` when no error is sent (counted as `icmp_error_suppressed`).
    pub fn icmp_error(
        &mut self,
        room: &mut [u8],
        len: usize,
        now: Instant,
        err: IcmpErrorReq,
    ) -> Option<(usize, NextHop)> {
        self.counters.count_drop(err.reason);
        let original = Ipv4Packet::new_unchecked(&room[ETH_LEN..len]);
        let suppressed = |c: &WorkerCounters| {
            c.count_drop(DropReason::IcmpErrorSuppressed);
            None
        };
        if !icmp::may_send_error_about(&original) || !self.take_icmp_token(now) {
            return suppressed(&self.counters);
        }
        let to = original.src_addr();
        let Some(back) = self.routes.lookup(to) else {
            return suppressed(&self.counters);
        };
        let quote_len = icmp::error_quote_len(&room[ETH_LEN..len]);
        let quote_at = ETH_LEN + IPV4_LEN + ICMP_HEADER_LEN;
        if room.len() < (quote_at + quote_len).max(MIN_FRAME) {
            return suppressed(&self.counters);
        }
        room.copy_within(ETH_LEN..ETH_LEN + quote_len, quote_at);
        let from = self.routes.port(back.port).address;
        let Ok(ip_len) =
            icmp::emit_error(&mut room[ETH_LEN..], from, to, DEFAULT_TTL, err.msg, err.code, err.rest, quote_len)
        else {
            return suppressed(&self.counters);
        };
        let mut out_len = ETH_LEN + ip_len;
        if out_len < MIN_FRAME {
            room[out_len..MIN_FRAME].fill(0);
            out_len = MIN_FRAME;
        }
        EthernetFrame::new_unchecked(&mut room[..out_len]).set_ethertype(EtherType::Ipv4);
        self.counters.icmp_sent.inc();
        self.counters.icmp_errors_sent.inc();
        Some((out_len, back))
    }

    // ----- ip4-local -----

    /// A packet for one of the router's own addresses (`ip`, as translated): answer an
    /// echo request in place (the reply's addresses swapped, checksums filled); anything
    /// else is `local_unhandled`. The caller translates the reply if its request was
    /// translated, routes it and counts it sent.
    pub fn answer_local(&self, ip: &mut [u8]) -> Result<(), DropReason> {
        let p = Ipv4Packet::new_unchecked(&*ip);
        let is_echo = p.next_header() == IpProtocol::Icmp
            && !p.is_fragment()
            && Icmpv4Packet::new_checked(p.payload())
                .map(|m| m.msg_type() == Icmpv4Message::EchoRequest && m.verify_checksum())
                .unwrap_or(false);
        if !is_echo {
            return Err(DropReason::LocalUnhandled);
        }
        let (src, dst) = (p.src_addr(), p.dst_addr());
        let mut p = Ipv4Packet::new_unchecked(ip);
        p.set_src_addr(dst);
        p.set_dst_addr(src);
        p.set_ttl(DEFAULT_TTL);
        p.fill_checksum();
        let mut echo = Icmpv4Packet::new_unchecked(p.payload_mut());
        echo.set_msg_type(Icmpv4Message::EchoReply);
        echo.fill_checksum();
        Ok(())
    }

    /// Count a message the router originated (an ICMP error or echo reply) as sent.
    #[inline]
    pub fn count_icmp_sent(&self) {
        self.counters.icmp_sent.inc();
    }

    // ----- l2-output -----

    /// The MAC of next hop `via` on `port`, if known. A stale entry is still used, and
    /// asked for again ([`take_refresh`](Self::take_refresh)), at most once a second.
    #[inline]
    pub fn neighbor(&mut self, port: u16, via: Ipv4Addr, now: Instant) -> Option<[u8; 6]> {
        match self.neighbors.lookup(port, via, now) {
            Neighbor::Fresh(mac) => Some(mac),
            Neighbor::Stale(mac) => {
                self.note_stale(port, via, now);
                Some(mac)
            }
            Neighbor::Missing => None,
        }
    }

    fn note_stale(&mut self, port: u16, via: Ipv4Addr, now: Instant) {
        let recent =
            self.refreshed.iter().flatten().any(|r| r.port == port && r.via == via && now.millis_since(r.asked) < 1000);
        if recent {
            return;
        }
        let slot = self.refreshed.iter().position(Option::is_none).unwrap_or_else(|| {
            // Replace the oldest.
            (0..REFRESH_SLOTS).min_by_key(|&i| self.refreshed[i].map(|r| r.asked)).unwrap_or(0)
        });
        self.refreshed[slot] = Some(Refresh { port, via, asked: now });
        if let Some(due) = self.refresh_due.iter_mut().find(|d| d.is_none()) {
            *due = Some((port, via));
        }
    }

    /// A stale neighbour the worker should send an ARP request for.
    pub fn take_refresh(&mut self) -> Option<(u16, Ipv4Addr)> {
        self.refresh_due.iter_mut().find_map(Option::take)
    }

    /// The MAC of `via` on `port`, if known.
    pub fn resolved(&self, port: u16, via: Ipv4Addr, now: Instant) -> Option<[u8; 6]> {
        match self.neighbors.lookup(port, via, now) {
            Neighbor::Fresh(mac) | Neighbor::Stale(mac) => Some(mac),
            Neighbor::Missing => None,
        }
    }

    /// Write the Ethernet addresses of a frame leaving on `port` toward `dst`.
    #[inline]
    pub fn fill_l2(&self, port: u16, dst: [u8; 6], frame: &mut [u8]) {
        let mut eth = EthernetFrame::new_unchecked(frame);
        eth.set_dst_addr(EthernetAddress(dst));
        eth.set_src_addr(self.macs[usize::from(port)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::io::mem::MemIo;
    use crate::testkit::{self, Ipv4Info};
    use crate::worker::Worker;

    const LAN: u16 = 0;
    const WAN: u16 = 1;
    const MAC_LAN: [u8; 6] = [2, 0, 0, 0, 1, 1];
    const MAC_WAN: [u8; 6] = [2, 0, 0, 0, 2, 1];
    const HOST: [u8; 6] = [2, 0, 0, 0, 1, 2];
    const GW: [u8; 6] = [2, 0, 0, 0, 2, 0xfe];
    const HOST_IP: [u8; 4] = [100, 64, 0, 2];
    const SERVER_IP: [u8; 4] = [198, 51, 100, 7];

    fn setup(static_gw: bool) -> (Worker<MemIo>, Arc<WorkerCounters>, Arc<NeighborTable>) {
        setup_with(static_gw, 64)
    }

    /// A worker routing between LAN and WAN, with a neighbour table for `neighbors` entries.
    fn setup_with(static_gw: bool, neighbors: usize) -> (Worker<MemIo>, Arc<WorkerCounters>, Arc<NeighborTable>) {
        let cfg = Config::parse(
            r#"
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
"#,
        )
        .unwrap();
        let routes = Arc::new(RouteTable::from_config(&cfg));
        let neighbors = Arc::new(NeighborTable::new(neighbors));
        if static_gw {
            neighbors.add_static(WAN, Ipv4Addr::new(203, 0, 113, 254), GW).unwrap();
        }
        neighbors.add_static(LAN, Ipv4Addr::from(HOST_IP), HOST).unwrap();
        let counters = Arc::new(WorkerCounters::default());
        let router = Router::new(routes, neighbors.clone(), vec![MAC_LAN, MAC_WAN], counters.clone());
        (Worker::new(MemIo::new(2), router, counters.clone()), counters, neighbors)
    }

    fn udp_from_host(ttl: u8, payload_len: usize) -> Vec<u8> {
        testkit::udp_frame(HOST, MAC_LAN, HOST_IP.into(), SERVER_IP.into(), 40000, 53, ttl, &vec![0xab; payload_len])
    }

    fn arp_frame(op: u16, src_mac: [u8; 6], src_ip: [u8; 4], dst_mac: [u8; 6], target_ip: [u8; 4]) -> Vec<u8> {
        testkit::arp_frame(dst_mac, op, src_mac, src_ip.into(), [0; 6], target_ip.into())
    }

    /// Parse an IPv4 frame and check every checksum with the testkit, an oracle written
    /// apart from masq's packet code.
    fn parse(frame: &[u8]) -> Ipv4Info {
        let p = testkit::parse_ipv4(frame).expect("a valid IPv4 frame");
        assert!(p.checksums_ok, "checksums: {p:?}");
        p
    }

    #[test]
    fn routes_lan_to_wan_with_ttl_minus_one_and_new_macs() {
        let (mut w, c, _) = setup(true);
        let input = udp_from_host(64, 20);
        w.io_mut().inject(LAN, &input);
        w.poll(Instant::from_secs(1));
        let out = w.io_mut().take_output(WAN);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(&f[0..6], &GW);
        assert_eq!(&f[6..12], &MAC_WAN);
        let p = parse(f);
        assert_eq!(p.ttl, 63);
        assert_eq!(p.src.octets(), HOST_IP);
        assert_eq!(p.dst.octets(), SERVER_IP);
        // Only TTL (offset 8) and the header checksum (10..12) changed.
        assert_eq!(f[14..14 + 8], input[14..14 + 8]);
        assert_eq!(f[14 + 9], input[14 + 9]);
        assert_eq!(f[14 + 12..], input[14 + 12..]);
        assert_eq!(c.forwarded.get(), 1);
        assert_eq!(c.tx_packets.get(), 1);
        assert_eq!(c.drops_total(), 0);
    }

    #[test]
    fn ttl_one_gets_time_exceeded_back_to_the_source() {
        let (mut w, c, _) = setup(true);
        let input = udp_from_host(1, 100);
        w.io_mut().inject(LAN, &input);
        w.poll(Instant::from_secs(1));
        assert!(w.io_mut().take_output(WAN).is_empty());
        let out = w.io_mut().take_output(LAN);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(&f[0..6], &HOST);
        assert_eq!(&f[6..12], &MAC_LAN);
        let p = parse(f);
        assert_eq!(p.src.octets(), [100, 64, 0, 1]);
        assert_eq!(p.dst.octets(), HOST_IP);
        assert_eq!((p.icmp_type, p.icmp_code), (Some(11), Some(0)), "time exceeded");
        let payload = &p.payload[..];
        // The quote is the original IPv4 header plus the first 8 bytes of its payload.
        assert_eq!(payload, &input[14..14 + 28]);
        assert_eq!(c.drops_for(DropReason::TtlExceeded), 1);
        assert_eq!(c.icmp_sent.get(), 1);
    }

    #[test]
    fn answers_arp_for_its_address_and_learns_the_asker() {
        let (mut w, c, n) = setup(true);
        let asker = [2, 0, 0, 0, 1, 9];
        let asker_ip = [100, 64, 0, 9];
        w.io_mut().inject(LAN, &arp_frame(1, asker, asker_ip, [0xff; 6], [100, 64, 0, 1]));
        w.poll(Instant::from_secs(1));
        let out = w.io_mut().take_output(LAN);
        assert_eq!(out.len(), 1);
        let f = &out[0];
        assert_eq!(f.len(), MIN_FRAME);
        assert_eq!(&f[0..6], &asker);
        assert_eq!(&f[6..12], &MAC_LAN);
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 2], "reply");
        assert_eq!(&f[22..28], &MAC_LAN);
        assert_eq!(&f[28..32], &[100, 64, 0, 1]);
        assert_eq!(&f[32..38], &asker);
        assert_eq!(&f[38..42], &asker_ip);
        assert_eq!(c.arp_replies_sent.get(), 1);
        assert_eq!(n.lookup(LAN, Ipv4Addr::from(asker_ip), Instant::from_secs(1)), Neighbor::Fresh(asker));
        // Not for us: ignored and counted.
        w.io_mut().inject(LAN, &arp_frame(1, asker, asker_ip, [0xff; 6], [100, 64, 0, 77]));
        w.poll(Instant::from_secs(1));
        assert!(w.io_mut().take_output(LAN).is_empty());
        assert_eq!(c.drops_for(DropReason::ArpIgnored), 1);
    }

    /// Issue 11 item 1: 20 000 spoofed inside senders ask for our address (each answered),
    /// in a table the size masqd uses; then a new host's traffic still gets through both
    /// ways, its reply resolved with ARP while the flood's learning budget is spent.
    #[test]
    fn a_flood_of_spoofed_arp_senders_does_not_lock_out_a_new_host() {
        // masqd's table size.
        let (mut w, c, neighbors) = setup_with(true, 4096);
        w.io_mut().burst = 256;
        let t = Instant::from_secs(10);
        let flood = 20_000u32;
        for i in 0..flood {
            let ip = (u32::from(Ipv4Addr::new(100, 64, 100, 0)) + i).to_be_bytes();
            let mac = [2, 0xee, (i >> 24) as u8, (i >> 16) as u8, (i >> 8) as u8, i as u8];
            w.io_mut().inject(LAN, &arp_frame(1, mac, ip, [0xff; 6], [100, 64, 0, 1]));
            if i % 256 == 255 {
                w.poll(t);
                assert_eq!(w.io_mut().take_output(LAN).len(), 256, "every request answered");
            }
        }
        w.poll(t);
        w.io_mut().take_output(LAN);
        assert_eq!(c.arp_replies_sent.get(), u64::from(flood));
        let learned = c.arp_learned.get();
        assert!(learned <= u64::from(NEIGHBOR_LEARN_BURST), "learned {learned}");
        assert_eq!(c.arp_learn_limited.get(), u64::from(flood) - learned);
        assert!(neighbors.entries().len() <= 2 + NEIGHBOR_LEARN_BURST as usize);

        // A new host, in the same second (no learning budget left): out to the server...
        let new_mac = [2, 0, 0, 0, 1, 0x77];
        let new_ip = [100, 64, 0, 77];
        let out = testkit::udp_frame(new_mac, MAC_LAN, new_ip.into(), SERVER_IP.into(), 5353, 53, 64, b"query");
        w.io_mut().inject(LAN, &out);
        w.poll(t);
        assert_eq!(w.io_mut().take_output(WAN).len(), 1, "forwarded out");
        // ...and the server's answer back, which needs the host's MAC: masqd asks,
        // the host answers, the held answer goes out.
        let back = testkit::udp_frame(GW, MAC_WAN, SERVER_IP.into(), new_ip.into(), 53, 5353, 64, b"answer");
        w.io_mut().inject(WAN, &back);
        w.poll(t);
        let asks = w.io_mut().take_output(LAN);
        assert_eq!(asks.len(), 1);
        assert_eq!(&asks[0][38..42], &new_ip, "ARP request for the new host");
        w.io_mut().inject(LAN, &arp_frame(2, new_mac, new_ip, MAC_LAN, [100, 64, 0, 1]));
        w.poll(Instant::from_millis(10_001));
        let delivered = w.io_mut().take_output(LAN);
        assert_eq!(delivered.len(), 1, "the answer reached the new host");
        assert_eq!(&delivered[0][0..6], &new_mac);
        assert_eq!(neighbors.lookup(LAN, Ipv4Addr::from(new_ip), t), Neighbor::Fresh(new_mac));
        assert_eq!(c.drops_for(DropReason::ArpUnresolved), 0);
        assert_eq!(c.neighbor_table_full.get(), 0);
    }

    /// The learning rate refills: a second later, a new sender asking for our address
    /// is learned again.
    #[test]
    fn unsolicited_learning_resumes_after_the_rate_refills() {
        let (mut w, c, n) = setup_with(true, 4096);
        w.io_mut().burst = 512;
        for i in 0..(NEIGHBOR_LEARN_BURST + 50) {
            let ip = (u32::from(Ipv4Addr::new(100, 64, 9, 0)) + i).to_be_bytes();
            w.io_mut().inject(LAN, &arp_frame(1, [2, 1, 1, 1, 1, i as u8], ip, [0xff; 6], [100, 64, 0, 1]));
        }
        w.poll(Instant::from_secs(1));
        assert_eq!(c.arp_learn_limited.get(), 50);
        let asker = [100, 64, 8, 1];
        w.io_mut().inject(LAN, &arp_frame(1, [2, 1, 1, 1, 2, 2], asker, [0xff; 6], [100, 64, 0, 1]));
        w.poll(Instant::from_secs(2));
        assert_eq!(n.lookup(LAN, Ipv4Addr::from(asker), Instant::from_secs(2)), Neighbor::Fresh([2, 1, 1, 1, 2, 2]));
    }

    #[test]
    fn holds_packets_until_the_gateway_answers_arp() {
        let (mut w, c, _) = setup(false);
        w.io_mut().inject(LAN, &udp_from_host(64, 10));
        w.io_mut().inject(LAN, &udp_from_host(64, 11));
        w.poll(Instant::from_secs(1));
        let asks = w.io_mut().take_output(WAN);
        assert_eq!(asks.len(), 1, "one ARP request for two held packets");
        assert_eq!(&asks[0][0..6], &[0xff; 6]);
        assert_eq!(&asks[0][38..42], &[203, 0, 113, 254]);
        assert_eq!(w.held(), 2);
        // The gateway replies.
        w.io_mut().inject(WAN, &arp_frame(2, GW, [203, 0, 113, 254], MAC_WAN, [203, 0, 113, 1]));
        w.poll(Instant::from_millis(1500));
        let out = w.io_mut().take_output(WAN);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|f| f[0..6] == GW && f[6..12] == MAC_WAN));
        assert_eq!(out[0].len() + 1, out[1].len(), "order kept");
        assert_eq!(w.held(), 0);
        assert_eq!(c.drops_total(), 0);
    }

    #[test]
    fn unanswered_arp_drops_held_packets_after_the_timeout() {
        let (mut w, c, _) = setup(false);
        w.io_mut().inject(LAN, &udp_from_host(64, 10));
        w.poll(Instant::from_secs(1));
        w.poll(Instant::from_millis(2100));
        assert_eq!(w.io_mut().take_output(WAN).len(), 2, "request plus one retry");
        w.poll(Instant::from_millis(4001));
        assert_eq!(w.held(), 0);
        assert_eq!(c.drops_for(DropReason::ArpUnresolved), 1);
        assert_eq!(w.io().freed, 1);
    }

    #[test]
    fn malformed_frames_are_dropped_by_reason() {
        let (mut w, c, _) = setup(true);
        let good = udp_from_host(64, 20);
        let mut bad_csum = good.clone();
        bad_csum[14 + 10] ^= 0xff;
        let mut bad_ihl = good.clone();
        bad_ihl[14] = 0x44;
        let mut bad_version = good.clone();
        bad_version[14] = 0x65;
        let mut bad_len = good.clone();
        bad_len[14 + 2..14 + 4].copy_from_slice(&10u16.to_be_bytes());
        let mut too_long = good.clone();
        too_long[14 + 2..14 + 4].copy_from_slice(&1000u16.to_be_bytes());
        let mut not_ours = good.clone();
        not_ours[0..6].copy_from_slice(&[2, 9, 9, 9, 9, 9]);
        let mut ipv6 = good.clone();
        ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
        for f in [&good[..10], &good[..20], &bad_csum, &bad_ihl, &bad_version, &bad_len, &too_long, &not_ours, &ipv6] {
            w.io_mut().inject(LAN, f);
        }
        w.poll(Instant::from_secs(1));
        assert!(w.io_mut().take_output(WAN).is_empty());
        for (reason, n) in [
            (DropReason::EthTruncated, 1),
            (DropReason::Ipv4Truncated, 2),
            (DropReason::Ipv4BadChecksum, 1),
            (DropReason::Ipv4BadIhl, 1),
            (DropReason::Ipv4BadVersion, 1),
            (DropReason::Ipv4BadLength, 1),
            (DropReason::EthNotForUs, 1),
            (DropReason::EthUnsupportedType, 1),
        ] {
            assert_eq!(c.drops_for(reason), n, "{}", reason.name());
        }
        assert_eq!(c.drops_total(), 9);
        assert_eq!(w.io().freed, 9);
    }

    #[test]
    fn df_packets_over_the_mtu_get_fragmentation_needed() {
        let (mut w, c, _) = setup(true);
        let f = testkit::udp_frame(HOST, MAC_LAN, HOST_IP.into(), SERVER_IP.into(), 1, 2, 64, &[0u8; 1450]);
        // The testkit sets DF; check that.
        assert_ne!(f[14 + 6] & 0x40, 0);
        w.io_mut().inject(LAN, &f);
        w.poll(Instant::from_secs(1));
        let out = w.io_mut().take_output(LAN);
        assert_eq!(out.len(), 1);
        let p = parse(&out[0]);
        assert_eq!((p.icmp_type, p.icmp_code), (Some(3), Some(4)));
        let rest = p.icmp_rest.unwrap();
        assert_eq!(u16::from_be_bytes([rest[2], rest[3]]), 1400);
        assert_eq!(c.drops_for(DropReason::NeedFragmentation), 1);
    }

    #[test]
    fn answers_pings_to_its_own_address() {
        let (mut w, c, _) = setup(true);
        let f = testkit::icmp_echo_frame(HOST, MAC_LAN, HOST_IP.into(), [100, 64, 0, 1].into(), 64, 7, 1, b"ping");
        w.io_mut().inject(LAN, &f);
        w.poll(Instant::from_secs(1));
        let out = w.io_mut().take_output(LAN);
        assert_eq!(out.len(), 1);
        let p = parse(&out[0]);
        assert_eq!(p.src.octets(), [100, 64, 0, 1]);
        assert_eq!(p.dst.octets(), HOST_IP);
        assert_eq!((p.icmp_type, p.icmp_id), (Some(0), Some(7)));
        assert_eq!(p.payload, b"ping");
        assert_eq!(c.icmp_sent.get(), 1);
    }

    #[test]
    fn icmp_errors_are_rate_limited_and_never_about_icmp_errors() {
        let (mut w, c, _) = setup(true);
        for _ in 0..(ICMP_ERROR_BURST + 10) {
            w.io_mut().inject(LAN, &udp_from_host(1, 8));
        }
        w.io_mut().burst = 1024;
        w.poll(Instant::from_secs(1));
        assert_eq!(w.io_mut().take_output(LAN).len(), ICMP_ERROR_BURST as usize);
        assert_eq!(c.drops_for(DropReason::IcmpErrorSuppressed), 10);
        // An ICMP error with TTL 1 gets no error about it.
        let f =
            testkit::ethernet(HOST, MAC_LAN, &testkit::ipv4(HOST_IP, SERVER_IP).ttl(1).icmp_error(3, 3, &[0u8; 28]));
        w.io_mut().inject(LAN, &f);
        w.poll(Instant::from_secs(10));
        assert!(w.io_mut().take_output(LAN).is_empty());
        assert_eq!(c.drops_for(DropReason::IcmpErrorSuppressed), 11);
    }
}
