//! Classify: what the NAT needs to know about one IPv4 packet, read once.
//!
//! [`classify`] takes an IPv4 packet the router has already checked (version, lengths,
//! header checksum) and returns a small `Copy` summary, [`NatPacket`]: the flow's
//! [`Tuple`] for TCP, UDP and ICMP queries, the quoted datagram of an ICMP error, or
//! "later fragment" / "not translatable". It proves every offset the translation
//! will touch, so the rewriters in [`fastpath`](super::fastpath) index freely.
//!
//! ICMP queries carry their identifier in *both* tuple ports: the NAT core takes the
//! local side's port as the identifier and canonicalises the remote port to 0, so the
//! same tuple serves an in2out and an out2in lookup.
//!
//! Checks, by packet kind:
//!
//! | packet                  | required                                                  | drop reason      |
//! |-------------------------|-----------------------------------------------------------|------------------|
//! | TCP / UDP               | whole header (`new_checked`); first fragment: 20 / 8 bytes | `l4_malformed`   |
//! | ICMP (not a fragment)   | 8-byte header and a verifying checksum                    | `l4_malformed`, `l4_bad_checksum` |
//! | ICMP error              | the quoted IPv4 header whole, 8 bytes of its TCP/UDP/ICMP | `l4_malformed`   |
//! | other protocols (GRE, ESP, ...) | nothing: translated by address, every fragment alike | —            |
//!
//! TCP and UDP checksums are not verified here: translation updates them
//! incrementally, which keeps a wrong checksum wrong for the receiver to see. The slow
//! path verifies them before a packet may create a session ([`verify_l4`]).

use std::net::Ipv4Addr;

use super::key::{Endpoint, Proto, Tuple};
use crate::packet::icmp::{Icmpv4Message, Icmpv4Packet};
use crate::packet::ipv4::Ipv4Packet;
use crate::packet::tcp::TcpPacket;
use crate::packet::udp::UdpPacket;
use crate::stats::DropReason;

/// Where a packet sits in its datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frag {
    /// Not fragmented.
    Whole,
    /// Offset 0, more fragments: carries the transport header.
    First,
    /// Offset > 0: no transport header.
    Later,
}

/// A translatable flow: TCP, UDP, an ICMP query, or an address-only protocol (GRE, ESP, ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flow {
    /// As on the wire; an ICMP query's identifier in both ports.
    pub tuple: Tuple,
    /// TCP flags (0 otherwise).
    pub tcp_flags: u8,
    /// ICMP: an echo or timestamp *request* (the initiator's direction).
    pub request: bool,
}

/// The datagram quoted by an ICMP error, as far as the NAT needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// Offset of the quoted IPv4 header from the start of the outer IPv4 header.
    pub at: u16,
    /// Quoted IPv4 header length, bytes.
    pub header_len: u8,
    /// Quoted transport bytes present (at least 8).
    pub l4_len: u16,
    /// The quoted packet's tuple as it was sent (src → dst); ICMP: identifier in both.
    pub tuple: Tuple,
}

impl Quoted {
    /// Whether the quoted transport checksum field lies within the quote.
    pub fn l4_checksum_quoted(&self) -> bool {
        usize::from(self.l4_len) >= l4_checksum_at(self.tuple.proto) + 2
    }

    /// The tuple of a packet travelling the other way: what the session that sent the
    /// quoted packet is found by.
    pub fn lookup_tuple(&self) -> Tuple {
        self.tuple.reversed()
    }
}

/// What kind of packet, for the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4 {
    /// TCP, UDP, ICMP query (whole or first fragment); an address-only protocol (any fragment).
    Flow(Flow),
    /// An ICMP error quoting a TCP, UDP or ICMP-query datagram (not fragmented).
    IcmpError(Quoted),
    /// A non-first fragment of TCP, UDP or ICMP: ports come from the fragment table.
    Fragment,
    /// Nothing the NAT translates: another protocol, another ICMP type, an error
    /// quoting something untranslatable.
    Other,
}

/// The NAT's summary of one IPv4 packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatPacket {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ttl: u8,
    /// IPv4 protocol number.
    pub ip_proto: u8,
    /// IPv4 identification (fragment key).
    pub ip_id: u16,
    pub frag: Frag,
    /// ICMP type, for ICMP packets (policy `--icmp-type`).
    pub icmp_type: Option<u8>,
    pub l4: L4,
}

impl NatPacket {
    /// TCP/UDP ports for policy matching (0 for anything else).
    pub fn ports(&self) -> (u16, u16) {
        match self.l4 {
            L4::Flow(f) if matches!(f.tuple.proto, Proto::Tcp | Proto::Udp) => (f.tuple.src.port, f.tuple.dst.port),
            _ => (0, 0),
        }
    }

    /// The fragment-table key of this packet's datagram.
    pub fn frag_key(&self) -> super::frag::FragKey {
        super::frag::FragKey { src: self.src, dst: self.dst, proto: self.ip_proto, id: self.ip_id }
    }
}

/// Offset of the transport checksum field within the transport header (TCP, UDP,
/// ICMP; an address-only protocol has none the NAT touches: 0).
pub const fn l4_checksum_at(proto: Proto) -> usize {
    match proto {
        Proto::Tcp => 16,
        Proto::Udp => 6,
        Proto::Icmp => 2,
        Proto::Other(_) => 0,
    }
}

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// Summarise `ip`, an IPv4 packet cut at its total length.
pub fn classify(ip: &[u8]) -> Result<NatPacket, DropReason> {
    let mut pkt = NO_PACKET;
    classify_into(ip, &mut pkt)?;
    Ok(pkt)
}

/// A summary that summarises nothing (a placeholder before [`classify_into`]).
pub const NO_PACKET: NatPacket = NatPacket {
    src: Ipv4Addr::UNSPECIFIED,
    dst: Ipv4Addr::UNSPECIFIED,
    ttl: 0,
    ip_proto: 0,
    ip_id: 0,
    frag: Frag::Whole,
    icmp_type: None,
    l4: L4::Other,
};

/// [`classify`] into `out` (the pipeline's per-packet record: no copy of the summary).
/// On error `out` holds a partial summary.
#[inline]
pub fn classify_into(ip: &[u8], out: &mut NatPacket) -> Result<(), DropReason> {
    *out = classify_inner(ip)?;
    Ok(())
}

#[inline(always)]
fn classify_inner(ip: &[u8]) -> Result<NatPacket, DropReason> {
    let p = Ipv4Packet::new_checked(ip).map_err(|_| DropReason::Ipv4Truncated)?;
    let frag = if p.frag_offset() != 0 {
        Frag::Later
    } else if p.more_frags() {
        Frag::First
    } else {
        Frag::Whole
    };
    let ip_proto = u8::from(p.next_header());
    let mut pkt = NatPacket {
        src: p.src_addr(),
        dst: p.dst_addr(),
        ttl: p.ttl(),
        ip_proto,
        ip_id: p.ident(),
        frag,
        icmp_type: None,
        l4: L4::Other,
    };
    let Some(proto) = Proto::from_ip(ip_proto) else {
        return Ok(pkt);
    };
    if let Some(port) = proto.addr_only_port() {
        // No transport header to read or check: every fragment carries all the NAT
        // needs (its addresses), so each is a flow of its own.
        let tuple = Tuple::new(Endpoint::new(pkt.src, port), Endpoint::new(pkt.dst, port), proto);
        pkt.l4 = L4::Flow(Flow { tuple, tcp_flags: 0, request: false });
        return Ok(pkt);
    }
    let l4 = p.payload();
    if proto == Proto::Icmp && frag != Frag::Later && !l4.is_empty() {
        pkt.icmp_type = Some(l4[0]);
    }
    if frag == Frag::Later {
        pkt.l4 = L4::Fragment;
        return Ok(pkt);
    }
    let ep = |sp, dp| Tuple::new(Endpoint::new(pkt.src, sp), Endpoint::new(pkt.dst, dp), proto);
    pkt.l4 = match proto {
        Proto::Tcp => {
            let flags = if frag == Frag::Whole {
                let t = TcpPacket::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
                t.flags().bits()
            } else if l4.len() >= crate::packet::TCP_HEADER_LEN {
                l4[13]
            } else {
                return Err(DropReason::L4Malformed);
            };
            L4::Flow(Flow { tuple: ep(be16(l4, 0), be16(l4, 2)), tcp_flags: flags, request: false })
        }
        Proto::Udp => {
            if frag == Frag::Whole {
                UdpPacket::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
            } else if l4.len() < crate::packet::UDP_HEADER_LEN {
                return Err(DropReason::L4Malformed);
            }
            L4::Flow(Flow { tuple: ep(be16(l4, 0), be16(l4, 2)), tcp_flags: 0, request: false })
        }
        Proto::Icmp => {
            let icmp = Icmpv4Packet::new_checked(l4).map_err(|_| DropReason::L4Malformed)?;
            if frag == Frag::Whole && !icmp.verify_checksum() {
                return Err(DropReason::L4BadChecksum);
            }
            let ty = icmp.msg_type();
            if ty.is_query() {
                let id = icmp.echo_ident();
                let request = matches!(ty, Icmpv4Message::EchoRequest | Icmpv4Message::Timestamp);
                L4::Flow(Flow { tuple: ep(id, id), tcp_flags: 0, request })
            } else if ty.is_error() && frag == Frag::Whole {
                quoted(usize::from(p.header_len()), &icmp)?
            } else {
                L4::Other
            }
        }
        Proto::Other(_) => unreachable!("address-only protocols returned above"),
    };
    Ok(pkt)
}

/// The quoted datagram of an ICMP error whose ICMP header starts `outer_header_len`
/// bytes into the outer packet.
fn quoted(outer_header_len: usize, icmp: &Icmpv4Packet<&[u8]>) -> Result<L4, DropReason> {
    let q = icmp.quoted_ipv4().map_err(|_| DropReason::L4Malformed)?;
    if q.frag_offset() != 0 {
        // A later fragment names no ports: nothing to match.
        return Ok(L4::Other);
    }
    let Some(proto) = Proto::from_ip(u8::from(q.next_header())).filter(|p| !p.is_addr_only()) else {
        // Errors about address-only protocols are not translated (yet).
        return Ok(L4::Other);
    };
    let l4 = q.payload();
    if l4.len() < 8 {
        return Err(DropReason::L4Malformed);
    }
    let (src, dst) = (q.src_addr(), q.dst_addr());
    let (sp, dp) = match proto {
        Proto::Tcp | Proto::Udp => (be16(l4, 0), be16(l4, 2)),
        Proto::Icmp => {
            if !Icmpv4Message::from(l4[0]).is_query() {
                // An error about an error is never sent (RFC 1812 §4.3.2.7).
                return Ok(L4::Other);
            }
            let id = be16(l4, 4);
            (id, id)
        }
        Proto::Other(_) => unreachable!("filtered above"),
    };
    let header_len = q.header_len();
    Ok(L4::IcmpError(Quoted {
        at: (outer_header_len + crate::packet::ICMP_HEADER_LEN) as u16,
        header_len,
        l4_len: l4.len() as u16,
        tuple: Tuple::new(Endpoint::new(src, sp), Endpoint::new(dst, dp), proto),
    }))
}

/// Whether the transport checksum of a whole TCP or UDP packet verifies (UDP without
/// checksum passes). Fragments and other packets pass: they cannot be checked here.
/// The slow path calls this before a packet may create state.
pub fn verify_l4(ip: &[u8], pkt: &NatPacket) -> bool {
    let L4::Flow(f) = pkt.l4 else { return true };
    if pkt.frag != Frag::Whole {
        return true;
    }
    let p = Ipv4Packet::new_unchecked(ip);
    let l4 = p.payload();
    match f.tuple.proto {
        Proto::Tcp => TcpPacket::new_unchecked(l4).verify_checksum(pkt.src, pkt.dst),
        Proto::Udp => {
            let u = UdpPacket::new_unchecked(l4);
            u.checksum() == 0 || u.verify_checksum(pkt.src, pkt.dst)
        }
        // Verified by classify.
        Proto::Icmp => true,
        // Nothing the translation changes is covered by a transport checksum.
        Proto::Other(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{ipv4, TcpSeg};

    const A: [u8; 4] = [100, 64, 0, 2];
    const B: [u8; 4] = [198, 51, 100, 7];

    #[test]
    fn udp_tcp_and_echo() {
        let udp = ipv4(A, B).udp(40000, 53, b"q");
        let p = classify(&udp).unwrap();
        let L4::Flow(f) = p.l4 else { panic!("{p:?}") };
        assert_eq!((f.tuple.src.port, f.tuple.dst.port, f.tuple.proto), (40000, 53, Proto::Udp));
        assert_eq!(p.ports(), (40000, 53));
        assert_eq!(p.frag, Frag::Whole);

        let tcp = ipv4(A, B).tcp(1234, 80, TcpSeg { window: 1000, ..TcpSeg::flags("S", 7, 0) }, &[]);
        let L4::Flow(f) = classify(&tcp).unwrap().l4 else { panic!() };
        assert_eq!(f.tcp_flags, 0x02);
        assert!(verify_l4(&tcp, &classify(&tcp).unwrap()));
        let mut bad = tcp.clone();
        *bad.last_mut().unwrap() ^= 1; // urgent pointer low byte
        assert!(!verify_l4(&bad, &classify(&bad).unwrap()));

        let echo = ipv4(A, B).icmp_echo_request(77, 1, b"hi");
        let p = classify(&echo).unwrap();
        let L4::Flow(f) = p.l4 else { panic!() };
        assert_eq!((f.tuple.src.port, f.tuple.dst.port, f.request), (77, 77, true));
        assert_eq!(p.icmp_type, Some(8));
        assert_eq!(p.ports(), (0, 0));
        let mut bad = echo.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(classify(&bad), Err(DropReason::L4BadChecksum));
    }

    #[test]
    fn icmp_error_quotes_the_flow() {
        let udp = ipv4(B, A).udp(53, 40000, b"answer");
        let err = ipv4([100, 64, 0, 1], B).icmp_error(3, 3, &udp[..28]);
        let p = classify(&err).unwrap();
        let L4::IcmpError(q) = p.l4 else { panic!("{p:?}") };
        assert_eq!(q.at, 28);
        assert_eq!(q.header_len, 20);
        assert_eq!(q.l4_len, 8);
        assert!(q.l4_checksum_quoted());
        assert_eq!(q.tuple.src, Endpoint::new(B.into(), 53));
        assert_eq!(q.lookup_tuple().src, Endpoint::new(A.into(), 40000));
        // Too short a quote.
        let short = ipv4([100, 64, 0, 1], B).icmp_error(3, 3, &udp[..24]);
        assert_eq!(classify(&short), Err(DropReason::L4Malformed));
    }

    #[test]
    fn fragments_and_others() {
        let mut udp = ipv4(A, B).udp(1, 2, &[0; 100]);
        // First fragment: MF set; UDP length now exceeds what is present, still fine.
        udp[6] = 0x20;
        let p = classify(&udp).unwrap();
        assert_eq!(p.frag, Frag::First);
        assert!(matches!(p.l4, L4::Flow(_)));
        // Later fragment.
        udp[6] = 0x00;
        udp[7] = 0x10;
        let p = classify(&udp).unwrap();
        assert_eq!((p.frag, p.l4), (Frag::Later, L4::Fragment));
        // GRE, even a later fragment: an address-only flow, the number in both ports.
        let mut gre = udp.clone();
        gre[9] = 47;
        let p = classify(&gre).unwrap();
        let L4::Flow(f) = p.l4 else { panic!("{p:?}") };
        assert_eq!((f.tuple.proto, f.tuple.src.port, f.tuple.dst.port), (Proto::GRE, 47, 47));
        assert_eq!((p.frag, p.ports()), (Frag::Later, (0, 0)));
        assert!(verify_l4(&gre, &p));
        // DCCP: ports we do not translate.
        gre[9] = 33;
        assert_eq!(classify(&gre).unwrap().l4, L4::Other);
    }
}
