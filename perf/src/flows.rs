//! The benchmark's traffic: M subscribers × F flows each, and the frames that carry them.
//!
//! RFC 9693 (§4.4) has the tester pick source and destination ports pseudorandomly
//! (RFC 4814 §4.5) within limited ranges, so that the number of connections is known
//! and every one of them is distinct. [`FlowSpace`] maps a flow number `g` in
//! `0..subscribers × flows_per_subscriber` onto a distinct
//! `(inside address, source port, destination port)`: the subscriber is `g mod M`
//! (consecutive flows land on different subscribers) and the port pair is a
//! pseudorandom permutation of `g div M` over the subscriber's source-port range ×
//! destination-port range. Every subscriber uses at most [`FlowSpace::sport_count`]
//! source ports, so the external ports MASQUERADE needs stay within one address.
//!
//! [`FrameWriter`] writes one flow's Ethernet/IPv4/UDP (or TCP) headers into a buffer
//! with correct checksums, computed from precomputed partial sums — a few additions per
//! frame, so the generator costs little next to the worker it feeds. Its template frame
//! comes from `dataplane::testkit`, the builder every test uses; only the per-frame
//! fields (the flow's address, ports, stamp, checksums) are rewritten in place. The first
//! [`STAMP_LEN`] payload bytes carry a TSC timestamp (48 bits) for latency. A writer is
//! outbound ([`FrameWriter::new`]: from the flow's inside address to a fixed server) or
//! inbound ([`FrameWriter::inbound`]: from the server back to the flow's address);
//! [`ReturnFlows`] gives each flow's return tuple — to its external endpoint behind a
//! NAT, or to the inside host itself when forwarding.

use std::net::Ipv4Addr;

use dataplane::testkit;

/// Bytes of the TSC stamp at the start of the payload (48 bits of the TSC).
pub const STAMP_LEN: usize = 6;
/// Ethernet + IPv4 header bytes.
const L4_OFF: usize = 34;
/// RFC 9693 §4.4 / RFC 4814 §4.5: source ports from 1024..=65535, destination ports
/// from 1..=49151.
pub const SPORT_RANGE: (u16, u16) = (1024, 65535);
pub const DPORT_RANGE: (u16, u16) = (1, 49151);

/// Layer-4 protocol of the generated traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    Udp,
    Tcp,
}

impl L4 {
    pub fn header_len(self) -> usize {
        match self {
            L4::Udp => 8,
            L4::Tcp => 20,
        }
    }
    fn proto(self) -> u8 {
        match self {
            L4::Udp => 17,
            L4::Tcp => 6,
        }
    }
}

/// Why a flow space or frame size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("{0} subscribers do not fit in 100.64.0.0/10 beside the router (at most 4194301)")]
    Subscribers(u32),
    #[error("need at least one subscriber and one flow")]
    Empty,
    #[error("{flows} flows per subscriber do not fit in {sports} source ports x {dports} destination ports")]
    TooManyFlows { flows: u64, sports: u32, dports: u32 },
    #[error("frame size {size} B: must be {min}..=1518 B for {l4:?} with a timestamp")]
    FrameSize { size: usize, min: usize, l4: L4 },
}

/// The flow space: which flow number is which 5-tuple.
#[derive(Clone, Debug)]
pub struct FlowSpace {
    subscribers: u32,
    flows_per_subscriber: u64,
    sport_lo: u16,
    sport_n: u32,
    dport_lo: u16,
    dport_n: u32,
    pairs: u64,
    mul: u64,
    add: u64,
    inside_base: u32,
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl FlowSpace {
    /// `subscribers` inside addresses from 100.64.0.1 up, each with
    /// `flows_per_subscriber` flows using at most `max_sports` source ports.
    pub fn new(subscribers: u32, flows_per_subscriber: u64, max_sports: u32) -> Result<FlowSpace, FlowError> {
        if subscribers == 0 || flows_per_subscriber == 0 || max_sports == 0 {
            return Err(FlowError::Empty);
        }
        // 100.64.0.1 up, short of 100.127.255.254 (the worker's inside address).
        if subscribers > (1 << 22) - 3 {
            return Err(FlowError::Subscribers(subscribers));
        }
        let sport_all = u32::from(SPORT_RANGE.1 - SPORT_RANGE.0) + 1;
        let dport_all = u32::from(DPORT_RANGE.1 - DPORT_RANGE.0) + 1;
        let sport_n = max_sports.min(sport_all).min(flows_per_subscriber.min(u64::from(u32::MAX)) as u32);
        let dport_n = flows_per_subscriber.div_ceil(u64::from(sport_n));
        if dport_n > u64::from(dport_all) {
            return Err(FlowError::TooManyFlows { flows: flows_per_subscriber, sports: sport_n, dports: dport_all });
        }
        let dport_n = dport_n as u32;
        let pairs = u64::from(sport_n) * u64::from(dport_n);
        // A multiplier coprime to `pairs` makes k -> (k * mul + add) mod pairs a bijection.
        let mut mul = 2_654_435_761 % pairs.max(2);
        while pairs > 1 && gcd(mul, pairs) != 1 {
            mul += 1;
        }
        // Start the source range at 2024 (above the commonly used low ports) unless the
        // range would then leave 1024..=65535.
        let sport_lo = if 2024 + sport_n - 1 <= u32::from(SPORT_RANGE.1) { 2024 } else { SPORT_RANGE.0 };
        Ok(FlowSpace {
            subscribers,
            flows_per_subscriber,
            sport_lo,
            sport_n,
            dport_lo: DPORT_RANGE.0,
            dport_n,
            pairs,
            mul: mul.max(1),
            add: 0x9e37 % pairs.max(1),
            inside_base: u32::from(Ipv4Addr::new(100, 64, 0, 1)),
        })
    }

    /// The same space with subscribers numbered from `first` (default 100.64.0.1).
    pub fn with_base(mut self, first: Ipv4Addr) -> FlowSpace {
        self.inside_base = u32::from(first);
        self
    }

    /// Number of flows (sessions when every flow is open).
    pub fn len(&self) -> u64 {
        u64::from(self.subscribers) * self.flows_per_subscriber
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn subscribers(&self) -> u32 {
        self.subscribers
    }

    /// The inside address of subscriber `s` (`0..subscribers()`).
    pub fn subscriber(&self, s: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.inside_base + s)
    }

    /// Source ports each subscriber uses (its MASQUERADE mappings, at most).
    pub fn sport_count(&self) -> u32 {
        self.sport_n
    }

    /// Destination ports each subscriber uses.
    pub fn dport_count(&self) -> u32 {
        self.dport_n
    }

    /// Flow `g` (taken modulo the space): inside address, source port, destination port.
    #[inline]
    pub fn flow(&self, g: u64) -> (u32, u16, u16) {
        let (s, p) = self.parts(g);
        let sport = self.sport_lo + (p % u64::from(self.sport_n)) as u16;
        let dport = self.dport_lo + (p / u64::from(self.sport_n)) as u16;
        (self.inside_base + s, sport, dport)
    }

    /// (subscriber number, port-pair number) of flow `g`.
    #[inline]
    fn parts(&self, g: u64) -> (u32, u64) {
        let g = g % self.len();
        let s = (g % u64::from(self.subscribers)) as u32;
        let k = g / u64::from(self.subscribers);
        (s, (k.wrapping_mul(self.mul).wrapping_add(self.add)) % self.pairs)
    }

    /// Inside endpoints (address, source port) the flows use at most: subscribers ×
    /// source ports. With endpoint-independent mapping, one mapping each.
    pub fn endpoints(&self) -> usize {
        self.subscribers as usize * self.sport_n as usize
    }

    /// The inside endpoint number `i` (`0..endpoints()`): address and source port.
    pub fn endpoint(&self, i: usize) -> (u32, u16) {
        let n = self.sport_n as usize;
        (self.inside_base + (i / n) as u32, self.sport_lo + (i % n) as u16)
    }

    /// The number of flow `g`'s inside endpoint (see [`FlowSpace::endpoint`]).
    #[inline]
    pub fn endpoint_of(&self, g: u64) -> usize {
        let (s, p) = self.parts(g);
        s as usize * self.sport_n as usize + (p % u64::from(self.sport_n)) as usize
    }
}

/// Where the server's replies to each flow go, for an inbound [`FrameWriter`].
#[derive(Clone, Debug)]
pub struct ReturnFlows {
    /// Translated: the external address and every inside endpoint's external port, by
    /// endpoint number. `None`: untranslated (back to the inside host itself).
    outside: Option<(u32, Vec<u16>)>,
}

/// An inside endpoint has no mapping to send its return traffic to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no mapping for inside endpoint {addr}:{port}: open the sessions before return traffic")]
pub struct NoMapping {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl ReturnFlows {
    /// Replies to the inside hosts themselves (plain routing, no NAT).
    pub fn untranslated() -> ReturnFlows {
        ReturnFlows { outside: None }
    }

    /// Replies to the external endpoints a NAT mapped the flows of `space` to: `external`
    /// and, for each inside endpoint, the port `mapped(address, source port)` returns.
    pub fn translated(
        space: &FlowSpace,
        external: Ipv4Addr,
        mut mapped: impl FnMut(Ipv4Addr, u16) -> Option<u16>,
    ) -> Result<ReturnFlows, NoMapping> {
        let ports = (0..space.endpoints())
            .map(|i| {
                let (a, p) = space.endpoint(i);
                mapped(Ipv4Addr::from(a), p).ok_or(NoMapping { addr: Ipv4Addr::from(a), port: p })
            })
            .collect::<Result<Vec<u16>, NoMapping>>()?;
        Ok(ReturnFlows { outside: Some((u32::from(external), ports)) })
    }

    /// The reply to flow `g` of `space`, for [`FrameWriter::write`] of an inbound
    /// writer: (destination address, source port = the flow's destination port,
    /// destination port).
    #[inline]
    pub fn flow(&self, space: &FlowSpace, g: u64) -> (u32, u16, u16) {
        let (inside, sport, dport) = space.flow(g);
        match &self.outside {
            None => (inside, dport, sport),
            Some((ext, ports)) => (*ext, dport, ports[space.endpoint_of(g)]),
        }
    }

    /// Where the NAT must deliver the reply to flow `g`: the inside host and port.
    pub fn inside(&self, space: &FlowSpace, g: u64) -> (Ipv4Addr, u16) {
        let (inside, sport, _) = space.flow(g);
        (Ipv4Addr::from(inside), sport)
    }
}

/// One's-complement sum of big-endian 16-bit words, not folded.
fn sum16(bytes: &[u8]) -> u64 {
    bytes.chunks(2).map(|c| u64::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))).sum()
}

#[inline]
fn fold(mut s: u64) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// Writes frames of one size, protocol and fixed peer; only the flow and stamp vary.
#[derive(Clone, Debug)]
pub struct FrameWriter {
    l4: L4,
    /// Offset of the address that varies per flow: the source (26) for outbound
    /// frames, the destination (30) for inbound ones.
    flow_addr_off: usize,
    /// Frame length without the FCS.
    len: usize,
    /// Ethernet + IPv4 + L4 header with every constant field set.
    template: [u8; 54],
    /// Sum of the IPv4 header's constant words (source address excluded).
    ip_base: u64,
    /// Sum of the pseudo header's and L4 header's constant words (addresses of the
    /// source, ports and stamp excluded; the payload beyond the stamp is zero).
    l4_base: u64,
}

impl FrameWriter {
    /// Frames of `frame_size` bytes on the wire including the 4-byte FCS (so 64 B
    /// frames are 60 bytes in the buffer), from `src_mac` to `dst_mac`, from each flow's
    /// address to `dst`.
    pub fn new(
        l4: L4,
        frame_size: usize,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        dst: Ipv4Addr,
    ) -> Result<Self, FlowError> {
        Self::build(l4, frame_size, src_mac, dst_mac, dst, 26)
    }

    /// Frames as [`FrameWriter::new`], but from `src` to each flow's address (return
    /// traffic: write it a [`ReturnFlows::flow`]).
    pub fn inbound(
        l4: L4,
        frame_size: usize,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src: Ipv4Addr,
    ) -> Result<Self, FlowError> {
        Self::build(l4, frame_size, src_mac, dst_mac, src, 30)
    }

    fn build(
        l4: L4,
        frame_size: usize,
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        fixed: Ipv4Addr,
        flow_addr_off: usize,
    ) -> Result<Self, FlowError> {
        let min = L4_OFF + l4.header_len() + STAMP_LEN + 4;
        if !(min.max(64)..=1518).contains(&frame_size) {
            return Err(FlowError::FrameSize { size: frame_size, min: min.max(64), l4 });
        }
        let len = frame_size - 4;
        // The template: a frame from the shared test builder (dataplane::testkit) with
        // the flow's address 0.0.0.0, ports 0 and a zero payload; then the fields `write`
        // sets per frame are cleared, so the partial sums below leave them out.
        let payload = vec![0u8; len - L4_OFF - l4.header_len()];
        let (src, dst) =
            if flow_addr_off == 26 { (Ipv4Addr::UNSPECIFIED, fixed) } else { (fixed, Ipv4Addr::UNSPECIFIED) };
        let built = match l4 {
            L4::Udp => testkit::udp_frame(src_mac, dst_mac, src, dst, 0, 0, 64, &payload),
            L4::Tcp => {
                let seg = testkit::TcpSeg { flags: testkit::TCP_ACK, seq: 0x0100_0000, ack: 0, window: 0xffff };
                testkit::tcp_frame(src_mac, dst_mac, src, dst, 0, 0, 64, seg, &payload)
            }
        };
        debug_assert_eq!(built.len(), len);
        let mut t = [0u8; 54];
        let hdr_end = L4_OFF + l4.header_len();
        t[..hdr_end].copy_from_slice(&built[..hdr_end]);
        t[24..26].fill(0); // IPv4 checksum
        match l4 {
            L4::Udp => t[40..42].fill(0),
            L4::Tcp => t[50..52].fill(0),
        }
        let ip_base = sum16(&t[14..34]);
        let l4_len = (len - L4_OFF) as u16;
        let mut l4_hdr = t[L4_OFF..hdr_end].to_vec();
        if l4 == L4::Tcp {
            l4_hdr[13] = 0; // flags are added per frame
        }
        let l4_base = sum16(&fixed.octets()) + u64::from(l4.proto()) + u64::from(l4_len) + sum16(&l4_hdr);
        Ok(FrameWriter { l4, flow_addr_off, len, template: t, ip_base, l4_base })
    }

    /// Frame length in the buffer (without FCS).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Offset of the stamp in the frame.
    pub fn stamp_offset(&self) -> usize {
        L4_OFF + self.l4.header_len()
    }

    /// Write `flow` = `(address, sport, dport)` — as [`FlowSpace::flow`] gives it for an
    /// outbound writer (the address is the source), as [`ReturnFlows::flow`] gives it for
    /// an inbound one (the destination) — stamped with `stamp` into `buf` (at least
    /// [`FrameWriter::len`] bytes; the payload after the stamp is zeroed the first time,
    /// `fresh`, and assumed still zero afterwards — the NAT never writes it). `syn` sets
    /// TCP's SYN instead of ACK.
    #[inline]
    pub fn write(&self, buf: &mut [u8], fresh: bool, flow: (u32, u16, u16), stamp: u64, syn: bool) {
        let (src, sport, dport) = flow;
        let off = self.flow_addr_off;
        let hl = self.l4.header_len();
        let stamp_off = L4_OFF + hl;
        if fresh {
            buf[stamp_off..self.len].fill(0);
        }
        buf[..stamp_off].copy_from_slice(&self.template[..stamp_off]);
        let s = src.to_be_bytes();
        buf[off..off + 4].copy_from_slice(&s);
        let src_sum = u64::from(src >> 16) + u64::from(src & 0xffff);
        let ip_csum = !fold(self.ip_base + src_sum);
        buf[24..26].copy_from_slice(&ip_csum.to_be_bytes());
        buf[34..36].copy_from_slice(&sport.to_be_bytes());
        buf[36..38].copy_from_slice(&dport.to_be_bytes());
        let st = (stamp & 0xffff_ffff_ffff).to_be_bytes();
        buf[stamp_off..stamp_off + STAMP_LEN].copy_from_slice(&st[2..8]);
        let stamp_sum = (stamp & 0xffff) + ((stamp >> 16) & 0xffff) + ((stamp >> 32) & 0xffff);
        let mut sum = self.l4_base + src_sum + u64::from(sport) + u64::from(dport) + stamp_sum;
        match self.l4 {
            L4::Udp => {
                let c = !fold(sum);
                buf[40..42].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            }
            L4::Tcp => {
                let flags = if syn { 0x02u8 } else { 0x10 };
                buf[47] = flags;
                sum += u64::from(flags);
                buf[50..52].copy_from_slice(&(!fold(sum)).to_be_bytes());
            }
        }
    }

    /// The stamp a frame carries (48 bits).
    #[inline]
    pub fn read_stamp(&self, frame: &[u8]) -> Option<u64> {
        let off = self.stamp_offset();
        let b = frame.get(off..off + STAMP_LEN)?;
        let mut v = [0u8; 8];
        v[2..8].copy_from_slice(b);
        Some(u64::from_be_bytes(v))
    }
}

/// Ticks from `earlier` to `now` between two 48-bit stamps.
#[inline]
pub fn stamp_elapsed(now: u64, earlier: u64) -> u64 {
    now.wrapping_sub(earlier) & 0xffff_ffff_ffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const DST: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

    #[test]
    fn flows_are_distinct_and_in_range() {
        let f = FlowSpace::new(7, 1000, 16).unwrap();
        assert_eq!(f.len(), 7000);
        assert_eq!(f.sport_count(), 16);
        let mut seen = HashSet::new();
        let mut sports = HashSet::new();
        for g in 0..f.len() {
            let (a, sp, dp) = f.flow(g);
            assert!(seen.insert((a, sp, dp)), "flow {g} repeats");
            assert!((SPORT_RANGE.0..=SPORT_RANGE.1).contains(&sp));
            assert!((DPORT_RANGE.0..=DPORT_RANGE.1).contains(&dp));
            let o = Ipv4Addr::from(a).octets();
            assert_eq!((o[0], o[1] & 0xc0), (100, 64));
            sports.insert((a, sp));
        }
        assert!(sports.len() <= 7 * 16);
        // wraps
        assert_eq!(f.flow(f.len() + 3), f.flow(3));
    }

    #[test]
    fn refuses_impossible_spaces() {
        assert_eq!(FlowSpace::new(0, 1, 1).unwrap_err(), FlowError::Empty);
        assert!(matches!(FlowSpace::new(1, 10_000_000, 1), Err(FlowError::TooManyFlows { .. })));
        assert!(matches!(FlowSpace::new((1 << 22) - 2, 1, 1), Err(FlowError::Subscribers(_))));
        let most = FlowSpace::new((1 << 22) - 3, 1, 1).unwrap();
        assert_eq!(most.subscriber((1 << 22) - 4), Ipv4Addr::new(100, 127, 255, 253));
        assert!(FrameWriter::new(L4::Udp, 63, [0; 6], [0; 6], DST).is_err());
        assert!(FrameWriter::new(L4::Udp, 1519, [0; 6], [0; 6], DST).is_err());
    }

    fn check(l4: L4, size: usize) {
        let w = FrameWriter::new(l4, size, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], DST).unwrap();
        let mut buf = vec![0xaau8; 2048];
        let f = FlowSpace::new(3, 50, 8).unwrap();
        for (i, g) in [0u64, 1, 77, 149].into_iter().enumerate() {
            let (a, sp, dp) = f.flow(g);
            let stamp = 0x1234_5678_9abc_def0u64.wrapping_mul(g + 1);
            w.write(&mut buf, i == 0, (a, sp, dp), stamp, g == 1);
            let frame = &buf[..w.len()];
            // The shared parser verifies every checksum independently.
            let p = testkit::parse_ipv4(frame).unwrap_or_else(|| panic!("{l4:?} {size} flow {g}: not IPv4"));
            assert!(p.checksums_ok, "{l4:?} {size} flow {g}: {p:?}");
            assert_eq!((p.src, p.dst, p.ttl), (Ipv4Addr::from(a), DST, 64));
            assert_eq!((p.src_mac, p.dst_mac), ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]));
            assert_eq!(usize::from(p.total_len), w.len() - 14);
            assert_eq!((p.sport, p.dport), (Some(sp), Some(dp)));
            match l4 {
                L4::Udp => assert_eq!(p.proto, testkit::PROTO_UDP),
                L4::Tcp => {
                    let flags = if g == 1 { testkit::TCP_SYN } else { testkit::TCP_ACK };
                    assert_eq!((p.proto, p.tcp_flags), (testkit::PROTO_TCP, Some(flags)));
                }
            }
            assert_eq!(w.read_stamp(frame), Some(stamp & 0xffff_ffff_ffff));
        }
    }

    #[test]
    fn frames_parse_with_valid_checksums() {
        for size in [64, 65, 128, 512, 1518] {
            check(L4::Udp, size);
            check(L4::Tcp, size);
        }
    }

    #[test]
    fn endpoints_number_every_flows_inside_side() {
        let f = FlowSpace::new(5, 40, 3).unwrap();
        assert_eq!(f.endpoints(), 15);
        let mut used = HashSet::new();
        for g in 0..f.len() {
            let (a, sp, _) = f.flow(g);
            let i = f.endpoint_of(g);
            assert!(i < f.endpoints());
            assert_eq!(f.endpoint(i), (a, sp), "flow {g}");
            used.insert(i);
        }
        assert_eq!(used.len(), 15, "every endpoint carries flows");
    }

    #[test]
    fn return_frames_go_to_the_mapping_or_the_inside_host() {
        let f = FlowSpace::new(3, 50, 8).unwrap();
        let ext = Ipv4Addr::new(198, 18, 0, 1);
        // A stand-in NAT: endpoint (a, p) mapped to port 10000 + last octet * 100 + p % 100.
        let map = |a: Ipv4Addr, p: u16| Some(10_000 + u16::from(a.octets()[3]) * 100 + p % 100);
        let nat = ReturnFlows::translated(&f, ext, map).unwrap();
        let plain = ReturnFlows::untranslated();
        let w = FrameWriter::inbound(L4::Udp, 64, [2, 0, 0, 0, 0, 0x20], [2, 0, 0, 0, 0, 2], DST).unwrap();
        let mut buf = vec![0u8; 2048];
        for g in [0u64, 1, 2, 99, 149] {
            let (inside, sport, dport) = f.flow(g);
            for (r, want) in [
                (&nat, (ext, dport, map(Ipv4Addr::from(inside), sport).unwrap())),
                (&plain, (Ipv4Addr::from(inside), dport, sport)),
            ] {
                w.write(&mut buf, true, r.flow(&f, g), 7, false);
                let p = testkit::parse_ipv4(&buf[..w.len()]).expect("IPv4");
                assert!(p.checksums_ok, "flow {g}: {p:?}");
                assert_eq!((p.src, p.dst), (DST, want.0));
                assert_eq!((p.sport, p.dport), (Some(want.1), Some(want.2)));
                assert_eq!(r.inside(&f, g), (Ipv4Addr::from(inside), sport));
            }
        }
        // Return traffic needs every mapping.
        let missing = ReturnFlows::translated(&f, ext, |_, p| (p != 2025).then_some(p)).unwrap_err();
        assert_eq!(missing.port, 2025);
    }

    #[test]
    fn inbound_tcp_frames_have_valid_checksums() {
        let w = FrameWriter::inbound(L4::Tcp, 128, [2, 0, 0, 0, 0, 0x20], [2, 0, 0, 0, 0, 2], DST).unwrap();
        let mut buf = vec![0u8; 2048];
        let to = u32::from(Ipv4Addr::new(100, 64, 0, 9));
        w.write(&mut buf, true, (to, 443, 2024), 0xabc, false);
        let p = testkit::parse_ipv4(&buf[..w.len()]).expect("IPv4");
        assert!(p.checksums_ok, "{p:?}");
        assert_eq!((p.src, p.dst, p.proto), (DST, Ipv4Addr::from(to), testkit::PROTO_TCP));
        assert_eq!((p.sport, p.dport, p.tcp_flags), (Some(443), Some(2024), Some(testkit::TCP_ACK)));
    }

    #[test]
    fn stamps_wrap() {
        assert_eq!(stamp_elapsed(5, 0xffff_ffff_fffe), 7);
        assert_eq!(stamp_elapsed(10, 4), 6);
    }
}
