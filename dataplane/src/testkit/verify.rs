//! Parsers for assertions, written apart from masq's own packet code: they read what a
//! frame says and verify every checksum (RFC 1071 sums over the header, the pseudo header
//! and the transport), so a test never trusts the code it tests to check its output.

use std::net::Ipv4Addr;

use super::frames::{fold, sum16, Mac, ETHERTYPE_ARP, ETHERTYPE_IPV4, PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// What an IPv4 frame says, for assertions. Checksums are verified here, independently of
/// masq's own code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ipv4Info {
    pub src_mac: Mac,
    pub dst_mac: Mac,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    pub proto: u8,
    pub ident: u16,
    pub dont_fragment: bool,
    /// More-fragments set or a non-zero offset.
    pub fragment: bool,
    pub total_len: u16,
    /// UDP/TCP ports.
    pub sport: Option<u16>,
    pub dport: Option<u16>,
    pub tcp_flags: Option<u8>,
    pub tcp_seq: Option<u32>,
    pub tcp_ack: Option<u32>,
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    /// Identifier of an ICMP echo request/reply (what NAT translates like a port).
    pub icmp_id: Option<u16>,
    /// ICMP: the four bytes after the checksum (identifier and sequence of a query; the
    /// next-hop MTU of "fragmentation needed" in the last two; a parameter problem's pointer).
    pub icmp_rest: Option<[u8; 4]>,
    /// The TCP, UDP or ICMP checksum field as found (UDP: 0 means none).
    pub l4_checksum: Option<u16>,
    /// Bytes after the transport header (for ICMP: after its 8-byte header, so for an
    /// error message the quoted datagram, see [`Ipv4Info::quoted`]).
    pub payload: Vec<u8>,
    /// Total length claims more than the frame holds (only [`Ipv4Info::quoted`] allows it).
    pub truncated: bool,
    pub ip_checksum_ok: bool,
    /// TCP/UDP/ICMP checksum verifies (UDP checksum 0 = none = ok); false when it cannot be
    /// verified (truncated, fragment); true for other protocols.
    pub l4_checksum_ok: bool,
    /// Both of the above.
    pub checksums_ok: bool,
}

impl Ipv4Info {
    /// For an ICMP error (destination unreachable, time exceeded, ...): the quoted
    /// datagram. Its header checksum is verified; its transport checksum usually cannot be.
    pub fn quoted(&self) -> Option<Ipv4Info> {
        if self.proto != PROTO_ICMP || !matches!(self.icmp_type, Some(3 | 4 | 5 | 11 | 12)) {
            return None;
        }
        parse_ip(&self.payload, [0; 6], [0; 6], true)
    }
}

/// Parse an Ethernet frame carrying IPv4. `None` if it is not IPv4 or shorter than its
/// headers or its total length claim.
pub fn parse_ipv4(frame: &[u8]) -> Option<Ipv4Info> {
    if frame.len() < 14 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4 {
        return None;
    }
    let dst_mac: Mac = frame[0..6].try_into().ok()?;
    let src_mac: Mac = frame[6..12].try_into().ok()?;
    parse_ip(&frame[14..], src_mac, dst_mac, false)
}

/// Parse a bare IPv4 packet (no Ethernet header).
pub fn parse_ipv4_packet(packet: &[u8]) -> Option<Ipv4Info> {
    parse_ip(packet, [0; 6], [0; 6], false)
}

fn parse_ip(p: &[u8], src_mac: Mac, dst_mac: Mac, allow_truncated: bool) -> Option<Ipv4Info> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0x0f) * 4;
    let total_len = u16::from_be_bytes([p[2], p[3]]);
    if ihl < 20 || p.len() < ihl || usize::from(total_len) < ihl {
        return None;
    }
    let truncated = p.len() < usize::from(total_len);
    if truncated && !allow_truncated {
        return None;
    }
    let end = usize::from(total_len).min(p.len());
    let frag = u16::from_be_bytes([p[6], p[7]]);
    let fragment = frag & 0x2000 != 0 || frag & 0x1fff != 0;
    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
    let dst = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
    let proto = p[9];
    let mut info = Ipv4Info {
        src_mac,
        dst_mac,
        src,
        dst,
        ttl: p[8],
        proto,
        ident: u16::from_be_bytes([p[4], p[5]]),
        dont_fragment: frag & 0x4000 != 0,
        fragment,
        total_len,
        sport: None,
        dport: None,
        tcp_flags: None,
        tcp_seq: None,
        tcp_ack: None,
        icmp_type: None,
        icmp_code: None,
        icmp_id: None,
        icmp_rest: None,
        l4_checksum: None,
        payload: Vec::new(),
        truncated,
        ip_checksum_ok: fold(sum16(0, &p[..ihl])) == 0xffff,
        l4_checksum_ok: false,
        checksums_ok: false,
    };
    let l4 = &p[ihl..end];
    let verifiable = !truncated && !fragment;
    let pseudo = |len: usize| {
        let mut acc = sum16(0, &p[12..20]);
        acc += u64::from(proto) + len as u64;
        acc
    };
    let first_fragment = frag & 0x1fff == 0;
    match proto {
        PROTO_UDP if first_fragment && l4.len() >= 4 => {
            info.sport = Some(u16::from_be_bytes([l4[0], l4[1]]));
            info.dport = Some(u16::from_be_bytes([l4[2], l4[3]]));
            if l4.len() >= 8 {
                let udp_len = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
                let csum = u16::from_be_bytes([l4[6], l4[7]]);
                info.l4_checksum = Some(csum);
                info.payload = l4[8..udp_len.clamp(8, l4.len())].to_vec();
                info.l4_checksum_ok = verifiable
                    && (8..=l4.len()).contains(&udp_len)
                    && (csum == 0 || fold(sum16(pseudo(udp_len), &l4[..udp_len])) == 0xffff);
            }
        }
        PROTO_TCP if first_fragment && l4.len() >= 4 => {
            info.sport = Some(u16::from_be_bytes([l4[0], l4[1]]));
            info.dport = Some(u16::from_be_bytes([l4[2], l4[3]]));
            if l4.len() >= 20 {
                info.tcp_seq = Some(u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]));
                info.tcp_ack = Some(u32::from_be_bytes([l4[8], l4[9], l4[10], l4[11]]));
                info.tcp_flags = Some(l4[13]);
                info.l4_checksum = Some(u16::from_be_bytes([l4[16], l4[17]]));
                let off = usize::from(l4[12] >> 4) * 4;
                info.payload = l4[off.clamp(20, l4.len())..].to_vec();
                info.l4_checksum_ok = verifiable && off >= 20 && fold(sum16(pseudo(l4.len()), l4)) == 0xffff;
            }
        }
        PROTO_ICMP if first_fragment && l4.len() >= 8 => {
            info.icmp_type = Some(l4[0]);
            info.icmp_code = Some(l4[1]);
            info.l4_checksum = Some(u16::from_be_bytes([l4[2], l4[3]]));
            info.icmp_rest = Some([l4[4], l4[5], l4[6], l4[7]]);
            if matches!(l4[0], 0 | 8 | 13 | 14) {
                info.icmp_id = Some(u16::from_be_bytes([l4[4], l4[5]]));
            }
            info.payload = l4[8..].to_vec();
            info.l4_checksum_ok = verifiable && fold(sum16(0, l4)) == 0xffff;
        }
        PROTO_UDP | PROTO_TCP | PROTO_ICMP => {}
        _ => {
            // No transport checksum the NAT keeps (GRE, ESP, ...): the payload whole.
            info.payload = l4.to_vec();
            info.l4_checksum_ok = true;
        }
    }
    info.checksums_ok = info.ip_checksum_ok && info.l4_checksum_ok;
    Some(info)
}

/// What an ARP frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpInfo {
    pub eth_src: Mac,
    pub eth_dst: Mac,
    /// 1 request, 2 reply.
    pub op: u16,
    pub sender_mac: Mac,
    pub sender_ip: Ipv4Addr,
    pub target_mac: Mac,
    pub target_ip: Ipv4Addr,
}

/// Parse an Ethernet/IPv4 ARP frame; `None` for anything else.
pub fn parse_arp(frame: &[u8]) -> Option<ArpInfo> {
    if frame.len() < 42 || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_ARP {
        return None;
    }
    let a = &frame[14..];
    if a[0..6] != [0, 1, 0x08, 0x00, 6, 4] {
        return None;
    }
    Some(ArpInfo {
        eth_dst: frame[0..6].try_into().ok()?,
        eth_src: frame[6..12].try_into().ok()?,
        op: u16::from_be_bytes([a[6], a[7]]),
        sender_mac: a[8..14].try_into().ok()?,
        sender_ip: Ipv4Addr::new(a[14], a[15], a[16], a[17]),
        target_mac: a[18..24].try_into().ok()?,
        target_ip: Ipv4Addr::new(a[24], a[25], a[26], a[27]),
    })
}

#[cfg(test)]
mod tests {
    use super::super::frames::*;
    use super::*;

    use std::net::Ipv4Addr;

    const A: Mac = [2, 0, 0, 0, 1, 2];
    const B: Mac = [2, 0, 0, 0, 1, 1];

    fn lan() -> Ipv4Addr {
        ip4("100.64.0.2")
    }
    fn srv() -> Ipv4Addr {
        ip4("203.0.113.254")
    }

    #[test]
    fn udp_builder_and_parser_agree() {
        let f = udp_frame(A, B, lan(), srv(), 40000, 53, 17, b"payload!");
        let p = parse_ipv4(&f).expect("IPv4");
        assert_eq!((p.src_mac, p.dst_mac), (A, B));
        assert_eq!((p.src, p.dst, p.ttl, p.proto), (lan(), srv(), 17, PROTO_UDP));
        assert_eq!((p.sport, p.dport), (Some(40000), Some(53)));
        assert_eq!(p.payload, b"payload!");
        assert!(p.checksums_ok && p.ip_checksum_ok && p.l4_checksum_ok && !p.fragment && !p.truncated);
        assert!(p.dont_fragment);
        // Ethernet padding after the datagram is ignored.
        assert_eq!(parse_ipv4(&pad_to_min(f.clone())), Some(p));

        // A wrong header checksum, then fixed again.
        let mut bad = f.clone();
        bad[22] -= 1; // TTL
        let q = parse_ipv4(&bad).unwrap();
        assert!(!q.ip_checksum_ok && q.l4_checksum_ok && !q.checksums_ok);
        set_ipv4_checksum(&mut bad);
        assert!(parse_ipv4(&bad).unwrap().checksums_ok);

        // A flipped payload bit breaks the UDP checksum only.
        let mut bad = f.clone();
        *bad.last_mut().unwrap() ^= 1;
        let q = parse_ipv4(&bad).unwrap();
        assert!(q.ip_checksum_ok && !q.l4_checksum_ok && !q.checksums_ok);

        // UDP checksum 0 means "none": valid.
        let mut none = f.clone();
        none[40] = 0;
        none[41] = 0;
        assert!(parse_ipv4(&none).unwrap().checksums_ok);

        // Truncated frames are not parsed; non-IPv4 neither.
        assert_eq!(parse_ipv4(&f[..f.len() - 1]), None);
        assert_eq!(parse_ipv4(&arp_request(A, lan(), srv())), None);
    }

    #[test]
    fn tcp_builder_and_parser_agree() {
        let seg = TcpSeg::new(TCP_SYN | TCP_ACK, 1000, 2001);
        let f = tcp_frame(A, B, srv(), lan(), 80, 40000, 63, seg, b"");
        let p = parse_ipv4(&f).unwrap();
        assert_eq!((p.proto, p.sport, p.dport), (PROTO_TCP, Some(80), Some(40000)));
        assert_eq!((p.tcp_flags, p.tcp_seq, p.tcp_ack), (Some(TCP_SYN | TCP_ACK), Some(1000), Some(2001)));
        assert!(p.checksums_ok);

        let f = tcp_frame(
            A,
            B,
            lan(),
            srv(),
            40000,
            80,
            64,
            TcpSeg::new(TCP_PSH | TCP_ACK, 1, 1),
            b"GET / HTTP/1.0\r\n\r\n",
        );
        let p = parse_ipv4(&f).unwrap();
        assert_eq!(p.payload, b"GET / HTTP/1.0\r\n\r\n");
        assert!(p.checksums_ok);
        let mut bad = f.clone();
        bad[14 + 20 + 2] ^= 0x80; // destination port
        assert!(!parse_ipv4(&bad).unwrap().l4_checksum_ok);
        assert_eq!(TcpSeg::syn(5), TcpSeg { flags: TCP_SYN, seq: 5, ack: 0, window: 65535 });
    }

    #[test]
    fn icmp_builders_and_quoted_datagrams() {
        let f = icmp_echo_frame(A, B, lan(), srv(), 1, 0x1234, 9, b"abcdefgh");
        let p = parse_ipv4(&f).unwrap();
        assert_eq!((p.proto, p.icmp_type, p.icmp_code, p.icmp_id), (PROTO_ICMP, Some(8), Some(0), Some(0x1234)));
        assert_eq!(p.payload, b"abcdefgh");
        assert!(p.checksums_ok);
        let r = parse_ipv4(&icmp_echo_reply_frame(B, A, srv(), lan(), 64, 0x1234, 9, b"abcdefgh")).unwrap();
        assert_eq!((r.icmp_type, r.icmp_id), (Some(0), Some(0x1234)));
        assert!(r.checksums_ok);
        assert_eq!(p.quoted(), None);

        // An ICMP time exceeded quoting the echo's IP header + 8 bytes, built by hand.
        let mut icmp = vec![11, 0, 0, 0, 0, 0, 0, 0];
        icmp.extend_from_slice(&f[14..14 + 28]);
        let c = internet_checksum(&icmp);
        icmp[2..4].copy_from_slice(&c.to_be_bytes());
        let mut ipv4 = vec![0x45, 0, 0, 0, 0, 0, 0, 0, 64, PROTO_ICMP, 0, 0];
        ipv4.extend_from_slice(&ip4("100.64.0.1").octets());
        ipv4.extend_from_slice(&lan().octets());
        let total = (ipv4.len() + icmp.len()) as u16;
        ipv4[2..4].copy_from_slice(&total.to_be_bytes());
        let c = internet_checksum(&ipv4);
        ipv4[10..12].copy_from_slice(&c.to_be_bytes());
        let mut frame = Vec::new();
        frame.extend_from_slice(&A);
        frame.extend_from_slice(&B);
        frame.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        frame.extend_from_slice(&ipv4);
        frame.extend_from_slice(&icmp);

        let te = parse_ipv4(&frame).unwrap();
        assert_eq!((te.icmp_type, te.icmp_code, te.src), (Some(11), Some(0), ip4("100.64.0.1")));
        assert!(te.checksums_ok);
        let q = te.quoted().expect("quoted datagram");
        assert_eq!((q.src, q.dst, q.ttl, q.proto, q.icmp_id), (lan(), srv(), 1, PROTO_ICMP, Some(0x1234)));
        assert!(q.truncated && q.ip_checksum_ok && !q.checksums_ok);
        assert_eq!(parse_ipv4_packet(&f[14..]).unwrap().src, lan());
    }

    #[test]
    fn arp_builders_and_parser_agree() {
        let req = arp_request(A, lan(), ip4("100.64.0.1"));
        assert_eq!(req.len(), 42);
        let a = parse_arp(&req).unwrap();
        assert_eq!((a.eth_dst, a.eth_src, a.op), (BROADCAST, A, 1));
        assert_eq!((a.sender_mac, a.sender_ip, a.target_ip), (A, lan(), ip4("100.64.0.1")));
        let rep = parse_arp(&pad_to_min(arp_reply(B, ip4("100.64.0.1"), A, lan()))).unwrap();
        assert_eq!((rep.op, rep.eth_dst, rep.sender_mac, rep.target_mac, rep.target_ip), (2, A, B, A, lan()));
        assert_eq!(parse_arp(&udp_frame(A, B, lan(), srv(), 1, 2, 3, b"")), None);
        assert_eq!(mac("02:00:00:00:01:02"), A);
        assert_eq!(format_mac(A), "02:00:00:00:01:02");
        // RFC 1071's example: 0x0001 0xf203 0xf4f5 0xf6f7 sums to 0xddf2, checksum 0x220d.
        assert_eq!(internet_checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]), 0x220d);
    }

    #[test]
    fn icmp_errors_built_with_the_builder_quote_their_datagram() {
        let echo = icmp_echo_frame(A, B, lan(), srv(), 1, 0x1234, 7, b"ping");
        let err = ethernet(A, B, &ipv4([100, 64, 0, 1], lan()).icmp_error(11, 0, &echo[14..14 + 28]));
        let te = parse_ipv4(&err).unwrap();
        assert_eq!((te.icmp_type, te.icmp_code), (Some(11), Some(0)));
        assert!(te.checksums_ok);
        let q = te.quoted().expect("quoted datagram");
        assert_eq!((q.src, q.dst, q.ttl, q.proto, q.icmp_id), (lan(), srv(), 1, PROTO_ICMP, Some(0x1234)));
    }

    #[test]
    fn raw_fields_for_assertions() {
        let f = icmp_echo_frame(A, B, lan(), srv(), 1, 0x1234, 9, b"x");
        let p = parse_ipv4(&f).unwrap();
        assert_eq!(p.icmp_rest, Some([0x12, 0x34, 0, 9]));
        assert_eq!(p.l4_checksum, Some(u16::from_be_bytes([f[36], f[37]])));
        let p = parse_ipv4(&udp_frame(A, B, lan(), srv(), 1, 2, 64, b"x")).unwrap();
        assert_eq!((p.icmp_rest, p.l4_checksum.is_some()), (None, true));
    }

    #[test]
    fn fragments_parse_as_fragments() {
        let whole = ipv4(lan(), srv()).udp(1, 2, &[7; 40]);
        let (first, rest) = fragments(&whole, 99, 16);
        let (a, b) = (parse_ipv4_packet(&first).unwrap(), parse_ipv4_packet(&rest).unwrap());
        assert!(a.fragment && b.fragment && a.ip_checksum_ok && b.ip_checksum_ok);
        assert_eq!((a.ident, b.ident, a.sport, b.sport), (99, 99, Some(1), None));
        assert_eq!(usize::from(a.total_len) + usize::from(b.total_len), whole.len() + 20);
    }
}
