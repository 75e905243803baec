//! Builders: Ethernet frames and bare IPv4 packets with every checksum right, made with
//! etherparse (an implementation independent of masq's own packet code), plus the few
//! hand-made shapes etherparse does not make (ARP, fragments).
//!
//! Two levels: [`ipv4`]`(src, dst)` starts a bare IPv4 packet (TTL 64, DF set, ident 0;
//! [`Ip::ttl`] changes the TTL) and ends it with a transport ([`Ip::udp`], [`Ip::tcp`],
//! [`Ip::icmp_echo_request`], [`Ip::icmp`], ...); [`ethernet`] puts a packet in a frame.
//! The `*_frame` functions do both in one call, as the integration tests like it.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;

/// A MAC address.
pub type Mac = [u8; 6];
/// `ff:ff:ff:ff:ff:ff`.
pub const BROADCAST: Mac = [0xff; 6];
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_ARP: u16 = 0x0806;
pub const PROTO_ICMP: u8 = 1;
pub const PROTO_TCP: u8 = 6;
pub const PROTO_UDP: u8 = 17;
pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_RST: u8 = 0x04;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// `"02:00:00:00:01:02"` -> bytes. Panics on anything else.
pub fn mac(s: &str) -> Mac {
    let parts: Vec<u8> =
        s.split(':').map(|p| u8::from_str_radix(p, 16).unwrap_or_else(|_| panic!("bad MAC {s}"))).collect();
    parts.try_into().unwrap_or_else(|_| panic!("bad MAC {s}"))
}

/// `02:00:00:00:01:02`.
pub fn format_mac(m: Mac) -> String {
    m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// `"100.64.0.2"` -> address. Panics on anything else.
pub fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap_or_else(|_| panic!("bad IPv4 address {s}"))
}

/// The IPv4 header of a packet being built: see [`ipv4`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ip {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
}

/// A bare IPv4 packet from `src` to `dst` (TTL 64, DF set, ident 0); finish it with a
/// transport. Addresses may be given as `Ipv4Addr` or `[u8; 4]`.
pub fn ipv4(src: impl Into<Ipv4Addr>, dst: impl Into<Ipv4Addr>) -> Ip {
    Ip { src: src.into(), dst: dst.into(), ttl: 64 }
}

/// TCP segment fields for [`Ip::tcp`] and [`tcp_frame`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpSeg {
    /// `TCP_SYN | TCP_ACK` etc.
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
}

impl TcpSeg {
    /// `flags` with `seq` and `ack`, window 65535.
    pub fn new(flags: u8, seq: u32, ack: u32) -> TcpSeg {
        TcpSeg { flags, seq, ack, window: 65535 }
    }

    /// A SYN.
    pub fn syn(seq: u32) -> TcpSeg {
        TcpSeg::new(TCP_SYN, seq, 0)
    }

    /// Flags from letters, as tcpdump prints them: `S` SYN, `A` ACK, `F` FIN, `R` RST,
    /// `P` PSH (`"SA"` is a SYN-ACK). Panics on another letter.
    pub fn flags(letters: &str, seq: u32, ack: u32) -> TcpSeg {
        let flags = letters.chars().fold(0, |f, c| {
            f | match c {
                'S' => TCP_SYN,
                'A' => TCP_ACK,
                'F' => TCP_FIN,
                'R' => TCP_RST,
                'P' => TCP_PSH,
                _ => panic!("TCP flag {c:?} (expected S, A, F, R or P)"),
            }
        });
        TcpSeg::new(flags, seq, ack)
    }
}

impl Ip {
    /// The same header with another TTL.
    pub fn ttl(self, ttl: u8) -> Ip {
        Ip { ttl, ..self }
    }

    fn builder(self) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
        PacketBuilder::ipv4(self.src.octets(), self.dst.octets(), self.ttl)
    }

    /// A UDP datagram.
    pub fn udp(self, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let b = self.builder().udp(sport, dport);
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).expect("build a UDP packet");
        v
    }

    /// A packet of IP protocol `proto` (GRE 47, ESP 50, ...) carrying `payload`
    /// as it is: no transport header is built.
    pub fn raw(self, proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = u16::try_from(20 + payload.len()).expect("fits an IPv4 packet");
        let mut v = vec![0x45, 0, 0, 0, 0, 0, 0, 0, self.ttl, proto, 0, 0];
        v[2..4].copy_from_slice(&total.to_be_bytes());
        v.extend_from_slice(&self.src.octets());
        v.extend_from_slice(&self.dst.octets());
        v.extend_from_slice(payload);
        set_header_checksum(&mut v);
        v
    }

    /// A TCP segment.
    pub fn tcp(self, sport: u16, dport: u16, seg: TcpSeg, payload: &[u8]) -> Vec<u8> {
        let b = self.builder().tcp_header(tcp_header(sport, dport, seg));
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).expect("build a TCP packet");
        v
    }

    /// An ICMP echo request.
    pub fn icmp_echo_request(self, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let b = self.builder().icmpv4_echo_request(id, seq);
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).expect("build an ICMP echo request");
        v
    }

    /// An ICMP echo reply.
    pub fn icmp_echo_reply(self, id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
        let b = self.builder().icmpv4_echo_reply(id, seq);
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).expect("build an ICMP echo reply");
        v
    }

    /// Any ICMP message: `ty`, `code`, the four bytes after the checksum, then `payload`
    /// (for an error, the quoted datagram: [`Ip::icmp_error`]).
    pub fn icmp(self, ty: u8, code: u8, rest: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let b = self.builder().icmpv4_raw(ty, code, rest);
        let mut v = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut v, payload).expect("build an ICMP message");
        v
    }

    /// An ICMP error (`ty`, `code`: 3/3 port unreachable, 11/0 TTL exceeded, ...) quoting
    /// `quoted` (an IPv4 packet: its header and as much of the rest as given).
    pub fn icmp_error(self, ty: u8, code: u8, quoted: &[u8]) -> Vec<u8> {
        self.icmp(ty, code, [0; 4], quoted)
    }
}

fn tcp_header(sport: u16, dport: u16, seg: TcpSeg) -> etherparse::TcpHeader {
    let mut h = etherparse::TcpHeader::new(sport, dport, seg.seq, seg.window);
    h.fin = seg.flags & TCP_FIN != 0;
    h.syn = seg.flags & TCP_SYN != 0;
    h.rst = seg.flags & TCP_RST != 0;
    h.psh = seg.flags & TCP_PSH != 0;
    h.ack = seg.flags & TCP_ACK != 0;
    h.acknowledgment_number = seg.ack;
    h
}

/// `packet` (IPv4) in an Ethernet frame from `src_mac` to `dst_mac`.
pub fn ethernet(src_mac: Mac, dst_mac: Mac, packet: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(14 + packet.len());
    v.extend_from_slice(&dst_mac);
    v.extend_from_slice(&src_mac);
    v.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    v.extend_from_slice(packet);
    v
}

/// A UDP datagram in an Ethernet frame, all checksums correct, DF set, ident 0.
#[allow(clippy::too_many_arguments)]
pub fn udp_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    sport: u16,
    dport: u16,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    ethernet(src_mac, dst_mac, &ipv4(src_ip, dst_ip).ttl(ttl).udp(sport, dport, payload))
}

/// A TCP segment in an Ethernet frame, all checksums correct.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    sport: u16,
    dport: u16,
    ttl: u8,
    seg: TcpSeg,
    payload: &[u8],
) -> Vec<u8> {
    ethernet(src_mac, dst_mac, &ipv4(src_ip, dst_ip).ttl(ttl).tcp(sport, dport, seg, payload))
}

/// An ICMP echo request in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
pub fn icmp_echo_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    ttl: u8,
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    ethernet(src_mac, dst_mac, &ipv4(src_ip, dst_ip).ttl(ttl).icmp_echo_request(id, seq, payload))
}

/// An ICMP echo reply in an Ethernet frame.
#[allow(clippy::too_many_arguments)]
pub fn icmp_echo_reply_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    ttl: u8,
    id: u16,
    seq: u16,
    payload: &[u8],
) -> Vec<u8> {
    ethernet(src_mac, dst_mac, &ipv4(src_ip, dst_ip).ttl(ttl).icmp_echo_reply(id, seq, payload))
}

/// An Ethernet/IPv4 ARP frame (42 bytes, unpadded).
pub fn arp_frame(eth_dst: Mac, op: u16, sha: Mac, spa: Ipv4Addr, tha: Mac, tpa: Ipv4Addr) -> Vec<u8> {
    let mut v = Vec::with_capacity(42);
    v.extend_from_slice(&eth_dst);
    v.extend_from_slice(&sha);
    v.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    v.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]); // Ethernet, IPv4, hlen 6, plen 4
    v.extend_from_slice(&op.to_be_bytes());
    v.extend_from_slice(&sha);
    v.extend_from_slice(&spa.octets());
    v.extend_from_slice(&tha);
    v.extend_from_slice(&tpa.octets());
    v
}

/// A broadcast ARP request "who has `target_ip`? tell `src_ip`" (42 bytes, unpadded).
pub fn arp_request(src_mac: Mac, src_ip: Ipv4Addr, target_ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(BROADCAST, 1, src_mac, src_ip, [0; 6], target_ip)
}

/// A unicast ARP reply "`src_ip` is at `src_mac`" to `dst_mac`/`dst_ip`.
pub fn arp_reply(src_mac: Mac, src_ip: Ipv4Addr, dst_mac: Mac, dst_ip: Ipv4Addr) -> Vec<u8> {
    arp_frame(dst_mac, 2, src_mac, src_ip, dst_mac, dst_ip)
}

/// Zero-pad a frame to Ethernet's 60-byte minimum (as a NIC or the kernel would).
pub fn pad_to_min(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
    frame
}

/// Split a bare IPv4 packet into two fragments with IP ID `id`: the first carries `at`
/// bytes of its payload (a multiple of 8) with more-fragments set, the second the rest at
/// offset `at`. Header checksums are filled; the transport checksum is the whole
/// datagram's, as it should be.
pub fn fragments(packet: &[u8], id: u16, at: usize) -> (Vec<u8>, Vec<u8>) {
    assert!(at & 7 == 0, "fragment offsets are multiples of 8, not {at}");
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let (header, payload) = packet.split_at(ihl);
    let part = |data: &[u8], offset: usize, more: bool| {
        let mut p = header.to_vec();
        p[2..4].copy_from_slice(&((ihl + data.len()) as u16).to_be_bytes());
        p[4..6].copy_from_slice(&id.to_be_bytes());
        let flags = if more { 0x2000 } else { 0 } | (offset / 8) as u16;
        p[6..8].copy_from_slice(&flags.to_be_bytes());
        p.extend_from_slice(data);
        set_header_checksum(&mut p);
        p
    };
    (part(&payload[..at], 0, true), part(&payload[at..], at, false))
}

/// Split an IPv4 packet into fragments of `size` payload bytes (a multiple of 8; the
/// last one shorter), with identification `id`, in order.
pub fn fragments_of(packet: &[u8], id: u16, size: usize) -> Vec<Vec<u8>> {
    assert!(size > 0 && size & 7 == 0, "fragment sizes are multiples of 8, not {size}");
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let (header, payload) = packet.split_at(ihl);
    let chunks = payload.chunks(size).count();
    payload
        .chunks(size)
        .enumerate()
        .map(|(i, data)| {
            let mut p = header.to_vec();
            p[2..4].copy_from_slice(&((ihl + data.len()) as u16).to_be_bytes());
            p[4..6].copy_from_slice(&id.to_be_bytes());
            let flags = if i + 1 < chunks { 0x2000 } else { 0 } | (i * size / 8) as u16;
            p[6..8].copy_from_slice(&flags.to_be_bytes());
            p.extend_from_slice(data);
            set_header_checksum(&mut p);
            p
        })
        .collect()
}

/// RFC 1071 Internet checksum of `data` (the value to store in a checksum field).
pub fn internet_checksum(data: &[u8]) -> u16 {
    !fold(sum16(0, data))
}

/// One's-complement sum of `data` as big-endian 16-bit words (an odd byte padded), on
/// top of `acc`; not folded.
pub(super) fn sum16(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Fold a sum to 16 bits.
pub(super) fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// Recompute the header checksum of a bare IPv4 packet in place.
pub fn set_header_checksum(packet: &mut [u8]) {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    packet[10..12].fill(0);
    let c = internet_checksum(&packet[..ihl]);
    packet[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Recompute the IPv4 header checksum of an Ethernet frame in place (after a test has
/// edited the header).
pub fn set_ipv4_checksum(frame: &mut [u8]) {
    set_header_checksum(&mut frame[14..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1071_example() {
        // 0x0001 0xf203 0xf4f5 0xf6f7 sums to 0xddf2, checksum 0x220d.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2]), !0xf201);
    }

    #[test]
    fn frames_are_packets_in_ethernet() {
        let a = [2, 0, 0, 0, 0, 1];
        let b = [2, 0, 0, 0, 0, 2];
        let packet = ipv4([10, 0, 0, 1], [10, 0, 0, 2]).ttl(9).udp(1, 2, b"x");
        let frame = udp_frame(a, b, ip4("10.0.0.1"), ip4("10.0.0.2"), 1, 2, 9, b"x");
        assert_eq!(&frame[14..], &packet[..]);
        assert_eq!((&frame[0..6], &frame[6..12], &frame[12..14]), (&b[..], &a[..], &[8, 0][..]));
        assert_eq!((packet[8], packet[6] & 0x40, &packet[4..6]), (9, 0x40, &[0, 0][..]), "TTL, DF, ident");
        let mut edited = frame.clone();
        edited[14 + 8] = 3;
        set_ipv4_checksum(&mut edited);
        assert_eq!(internet_checksum(&edited[14..34]), 0);
        assert_eq!(mac("02:00:00:00:00:01"), a);
        assert_eq!(format_mac(a), "02:00:00:00:00:01");
    }

    #[test]
    fn tcp_flags_by_letter() {
        assert_eq!(TcpSeg::flags("SA", 1, 2), TcpSeg::new(TCP_SYN | TCP_ACK, 1, 2));
        assert_eq!(TcpSeg::flags("", 0, 0).flags, 0);
        assert_eq!(TcpSeg::flags("FRP", 0, 0).flags, TCP_FIN | TCP_RST | TCP_PSH);
        let seg = ipv4([1, 1, 1, 1], [2, 2, 2, 2]).tcp(5, 6, TcpSeg::flags("R", 9, 0), b"");
        assert_eq!((seg[20 + 13], &seg[20 + 4..20 + 8]), (TCP_RST, &9u32.to_be_bytes()[..]));
    }
}
