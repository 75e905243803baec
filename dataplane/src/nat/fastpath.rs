//! The fast path: apply a session's translation to a packet, in place.
//!
//! A session rewrites exactly one (address, port) pair (see [`Session`]): a packet
//! travelling **in2out** has its *source* rewritten from the session's inside endpoint
//! to its outside endpoint; a packet travelling **out2in** has its *destination*
//! rewritten from outside to inside. ICMP queries rewrite the identifier as the port;
//! address-only protocols (GRE, ESP, ...) only the address and the IPv4 checksum.
//!
//! Nothing is recomputed: the session carries the RFC 1624 deltas of its in2out
//! rewrite (`[0]` IPv4 header, `[1]` transport checksum), computed once by the slow
//! path ([`csum_deltas`](super::slowpath::csum_deltas)); out2in applies their
//! negation. A UDP checksum of 0 ("none") stays 0.
//!
//! ```text
//!            in2out: src inside → outside            out2in: dst outside → inside
//!  IPv4 csum   += deltas[0]                            += ¬deltas[0]
//!  L4 csum     += deltas[1]   (TCP/UDP: addr+port, ICMP query: identifier)
//! ```
//!
//! ICMP errors (RFC 5508 §4) are translated with the same deltas applied to the
//! *quoted* datagram, which travelled the opposite way: an error going out2in quotes a
//! packet that went in2out, so its quoted source (outside → inside) and the outer
//! destination are rewritten; going in2out, the quoted destination (inside → outside)
//! and the outer source. Like Linux (`nf_nat_icmp_reply_translation`), the quoted IPv4
//! checksum and the quoted transport checksum (when the quote reaches it) are fixed,
//! and the outer ICMP checksum takes the sum of every word changed inside it.
//!
//! No function here allocates, locks, logs, looks at policy or allocates ports; each
//! trusts the offsets [`classify`](super::classify) proved.

use super::classify::{l4_checksum_at, Quoted};
use super::key::{Endpoint, Proto, Tuple};
use super::table::{Session, SessionKind};
use super::Dir;
use crate::packet::checksum::Delta;
use crate::packet::icmp::Icmpv4Packet;
use crate::packet::ipv4::Ipv4Packet;
use crate::packet::tcp::TcpPacket;
use crate::packet::udp::UdpPacket;

/// The checksum deltas of a packet of `s` travelling `dir`.
#[inline]
pub fn deltas(s: &Session, dir: Dir) -> [Delta; 2] {
    let [ip, l4] = s.csum_deltas();
    match dir {
        Dir::In2Out => [ip, l4],
        Dir::Out2In => [ip.negate(), l4.negate()],
    }
}

/// What the rewritten endpoint becomes: the source of an in2out packet, the
/// destination of an out2in one.
#[inline]
pub fn rewrite_to(s: &Session, dir: Dir) -> Endpoint {
    match dir {
        Dir::In2Out => s.outside(),
        Dir::Out2In => s.inside(),
    }
}

/// A packet's tuple after translation.
#[inline]
pub fn translated(t: Tuple, s: &Session, dir: Dir) -> Tuple {
    let to = rewrite_to(s, dir);
    match (dir, t.proto) {
        // An ICMP query's identifier is in both tuple ports.
        (Dir::In2Out, Proto::Icmp) => Tuple::new(to, Endpoint::new(t.dst.addr, to.port), t.proto),
        (Dir::Out2In, Proto::Icmp) => Tuple::new(Endpoint::new(t.src.addr, to.port), to, t.proto),
        (Dir::In2Out, _) => Tuple::new(to, t.dst, t.proto),
        (Dir::Out2In, _) => Tuple::new(t.src, to, t.proto),
    }
}

/// Translate a whole packet, or the first fragment of one, of flow protocol `proto`.
#[inline]
pub fn translate(ip: &mut [u8], proto: Proto, s: &Session, dir: Dir) {
    if s.kind() == SessionKind::Identity {
        return;
    }
    let [d_ip, d_l4] = deltas(s, dir);
    let to = rewrite_to(s, dir);
    let mut p = Ipv4Packet::new_unchecked(ip);
    match dir {
        Dir::In2Out => p.set_src_addr(to.addr),
        Dir::Out2In => p.set_dst_addr(to.addr),
    }
    p.apply_delta(d_ip);
    let l4 = p.payload_mut();
    match proto {
        Proto::Tcp => {
            let mut t = TcpPacket::new_unchecked(l4);
            match dir {
                Dir::In2Out => t.set_src_port(to.port),
                Dir::Out2In => t.set_dst_port(to.port),
            }
            t.apply_delta(d_l4);
        }
        Proto::Udp => {
            let mut u = UdpPacket::new_unchecked(l4);
            match dir {
                Dir::In2Out => u.set_src_port(to.port),
                Dir::Out2In => u.set_dst_port(to.port),
            }
            u.apply_delta(d_l4);
        }
        Proto::Icmp => {
            let mut i = Icmpv4Packet::new_unchecked(l4);
            i.set_echo_ident(to.port);
            i.apply_delta(d_l4);
        }
        // Address-only (GRE, ESP, ...): the payload is not touched.
        Proto::Other(_) => {}
    }
}

/// Translate a non-first fragment: the address and the IPv4 checksum only (the
/// transport header, and the checksum covering the whole datagram, are in the first
/// fragment).
#[inline]
pub fn translate_fragment(ip: &mut [u8], s: &Session, dir: Dir) {
    if s.kind() == SessionKind::Identity {
        return;
    }
    let [d_ip, _] = deltas(s, dir);
    let to = rewrite_to(s, dir);
    let mut p = Ipv4Packet::new_unchecked(ip);
    match dir {
        Dir::In2Out => p.set_src_addr(to.addr),
        Dir::Out2In => p.set_dst_addr(to.addr),
    }
    p.apply_delta(d_ip);
}

#[inline]
fn get16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// Translate an ICMP error travelling `dir` whose quoted datagram `q` belongs to `s`.
///
/// Reads the current field values (so a second pass, when hairpinning, sees the
/// first pass's result). The outer address is set to the session's translated
/// address whatever it was, as Linux does: an error from a router on the inside
/// leaves with the external address, like its subscriber's traffic.
pub fn translate_icmp_error(ip: &mut [u8], q: &Quoted, s: &Session, dir: Dir) {
    if s.kind() == SessionKind::Identity {
        return;
    }
    let [d_ip, d_l4] = deltas(s, dir);
    let to = rewrite_to(s, dir);
    let proto = q.tuple.proto;
    let mut outer = Ipv4Packet::new_unchecked(&mut *ip);
    match dir {
        Dir::Out2In => outer.set_dst_addr_update_checksum(to.addr),
        Dir::In2Out => outer.set_src_addr_update_checksum(to.addr),
    }
    let icmp_at = usize::from(outer.header_len());
    // Everything changed inside the ICMP message, for its checksum.
    let mut inner_change = Delta::new();
    let at = usize::from(q.at);
    {
        let mut inner = Ipv4Packet::new_unchecked(&mut ip[at..]);
        // The quoted packet travelled the other way: out2in errors quote a packet that
        // left with source = outside; in2out errors one delivered with dst = inside.
        let old = match dir {
            Dir::Out2In => inner.src_addr(),
            Dir::In2Out => inner.dst_addr(),
        };
        match dir {
            Dir::Out2In => inner.set_src_addr(to.addr),
            Dir::In2Out => inner.set_dst_addr(to.addr),
        }
        inner_change = inner_change.replace_addr(old, to.addr);
        let old_csum = inner.checksum();
        inner.apply_delta(d_ip);
        inner_change = inner_change.replace16(old_csum, inner.checksum());
    }
    let l4_at = at + usize::from(q.header_len);
    let l4 = &mut ip[l4_at..l4_at + usize::from(q.l4_len)];
    let port_at = match (proto, dir) {
        (Proto::Icmp, _) => 4,
        (_, Dir::Out2In) => 0,
        (_, Dir::In2Out) => 2,
    };
    let old_port = get16(l4, port_at);
    put16(l4, port_at, to.port);
    inner_change = inner_change.replace16(old_port, to.port);
    if q.l4_checksum_quoted() {
        let c = l4_checksum_at(proto);
        let old = get16(l4, c);
        let new = match proto {
            Proto::Udp => d_l4.apply_udp(old),
            _ => d_l4.apply(old),
        };
        put16(l4, c, new);
        inner_change = inner_change.replace16(old, new);
    }
    let mut icmp = Icmpv4Packet::new_unchecked(&mut ip[icmp_at..]);
    icmp.apply_delta(inner_change);
}

#[cfg(test)]
mod tests {
    use super::super::slowpath::csum_deltas;
    use super::super::table::{F_INBOUND, NIL};
    use super::*;
    use crate::packet::icmp::Icmpv4Message;
    use crate::testkit;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn session(kind: SessionKind, proto: Proto, inside: Endpoint, outside: Endpoint, remote: Endpoint) -> Session {
        let flags = if kind == SessionKind::DestNat { F_INBOUND } else { 0 };
        let mut s = Session::new(kind, proto, inside, outside, remote, NIL, flags);
        s.csum = csum_deltas(&s);
        s
    }

    /// IPv4 + TCP/UDP/ICMP echo with every checksum right, from the shared test builder
    /// (independent of the code under test).
    fn build(proto: Proto, src: Endpoint, dst: Endpoint, payload: &[u8], udp_no_csum: bool) -> Vec<u8> {
        let ip = testkit::ipv4(src.addr, dst.addr);
        match proto {
            Proto::Tcp => {
                let seg = testkit::TcpSeg { flags: testkit::TCP_PSH | testkit::TCP_ACK, seq: 0, ack: 0, window: 0 };
                ip.tcp(src.port, dst.port, seg, payload)
            }
            Proto::Udp => {
                let mut b = ip.udp(src.port, dst.port, payload);
                if udp_no_csum {
                    put16(&mut b, 26, 0);
                }
                b
            }
            Proto::Icmp => ip.icmp_echo_request(src.port, 1, payload),
            Proto::Other(n) => ip.raw(n, payload),
        }
    }

    /// Full recomputation of every checksum (the reference).
    fn fill(b: &mut [u8], udp_no_csum: bool) {
        let mut ip = Ipv4Packet::new_unchecked(&mut *b);
        ip.fill_checksum();
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let proto = Proto::from_ip(b[9]).unwrap();
        let l4 = &mut b[20..];
        match proto {
            Proto::Tcp => TcpPacket::new_unchecked(l4).fill_checksum(src, dst),
            Proto::Udp if udp_no_csum => put16(l4, 6, 0),
            Proto::Udp => UdpPacket::new_unchecked(l4).fill_checksum(src, dst),
            Proto::Icmp => Icmpv4Packet::new_unchecked(l4).fill_checksum(),
            Proto::Other(_) => {}
        }
    }

    /// Rewrite `src` (in2out) or `dst` (out2in) by plain writes, then recompute.
    fn reference(b: &[u8], dir: Dir, to: Endpoint, udp_no_csum: bool) -> Vec<u8> {
        let mut r = b.to_vec();
        let proto = Proto::from_ip(r[9]).unwrap();
        match dir {
            Dir::In2Out => r[12..16].copy_from_slice(&to.addr.octets()),
            Dir::Out2In => r[16..20].copy_from_slice(&to.addr.octets()),
        }
        let at = match (proto, dir) {
            (Proto::Icmp, _) => 24,
            (_, Dir::In2Out) => 20,
            (_, Dir::Out2In) => 22,
        };
        put16(&mut r, at, to.port);
        fill(&mut r, udp_no_csum);
        r
    }

    fn proto_of(i: u8) -> Proto {
        [Proto::Tcp, Proto::Udp, Proto::Icmp][usize::from(i % 3)]
    }

    fn ep() -> impl Strategy<Value = Endpoint> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(a, p)| Endpoint::new(Ipv4Addr::from(a), p))
    }

    /// An ICMP error (type 3 code 3) from `from` to `to` quoting `quote` bytes of `orig`.
    fn icmp_error(from: Ipv4Addr, to: Ipv4Addr, orig: &[u8], quote: usize) -> Vec<u8> {
        testkit::ipv4(from, to).icmp_error(3, 3, &orig[..quote.min(orig.len())])
    }

    fn quoted_of(b: &[u8]) -> Quoted {
        let p = super::super::classify::classify(b).unwrap();
        match p.l4 {
            super::super::classify::L4::IcmpError(q) => q,
            other => panic!("{other:?}"),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        /// Incremental translation == plain rewrite + full recomputation, both ways,
        /// and translating a reply back gives the original flow's endpoints.
        #[test]
        fn incremental_equals_recompute(
            p in 0u8..3, inside in ep(), outside in ep(), remote in ep(),
            payload in proptest::collection::vec(any::<u8>(), 0..48), no_csum in any::<bool>(), dnat in any::<bool>(),
        ) {
            let proto = proto_of(p);
            let no_csum = no_csum && proto == Proto::Udp;
            let kind = if dnat { SessionKind::DestNat } else { SessionKind::SourceNat };
            let s = session(kind, proto, inside, outside, remote);
            let rport = if proto == Proto::Icmp { inside.port } else { remote.port };
            // in2out: inside -> remote
            let orig = build(proto, inside, Endpoint::new(remote.addr, rport), &payload, no_csum);
            let mut got = orig.clone();
            translate(&mut got, proto, &s, Dir::In2Out);
            let want = reference(&orig, Dir::In2Out, outside, no_csum);
            prop_assert_eq!(&got, &want);
            // out2in: remote -> outside, becomes remote -> inside
            let oport = if proto == Proto::Icmp { outside.port } else { remote.port };
            let reply = build(proto, Endpoint::new(remote.addr, oport), outside, &payload, no_csum);
            let mut got = reply.clone();
            translate(&mut got, proto, &s, Dir::Out2In);
            let back = build(proto, Endpoint::new(remote.addr, if proto == Proto::Icmp { inside.port } else { remote.port }), inside, &payload, no_csum);
            prop_assert_eq!(&got, &reference(&reply, Dir::Out2In, inside, no_csum));
            prop_assert_eq!(&got, &back, "reverse translation restores the endpoints");
            if no_csum {
                prop_assert_eq!(get16(&got, 26), 0, "UDP checksum 0 stays 0");
            }
            // Fragments: address and IPv4 checksum only.
            let mut frag = orig.clone();
            translate_fragment(&mut frag, &s, Dir::In2Out);
            let mut want = orig.clone();
            want[12..16].copy_from_slice(&outside.addr.octets());
            Ipv4Packet::new_unchecked(&mut want[..]).fill_checksum();
            prop_assert_eq!(frag, want);
        }

        /// An address-only packet (GRE, ESP, any protocol number but the ported ones):
        /// only its address and IPv4 checksum change, its payload (whatever checksum it
        /// holds) never; a reply translated back reaches the inside address.
        #[test]
        fn address_only_rewrites_the_address_alone(
            n in any::<u8>(), inside in any::<[u8; 4]>(), outside in any::<[u8; 4]>(), remote in any::<[u8; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64), dnat in any::<bool>(),
        ) {
            let Some(proto) = Proto::from_ip(n).filter(|p| p.is_addr_only()) else { return Ok(()) };
            let e = |a: [u8; 4]| Endpoint::new(Ipv4Addr::from(a), u16::from(n));
            let kind = if dnat { SessionKind::DestNat } else { SessionKind::SourceNat };
            let s = session(kind, proto, e(inside), e(outside), e(remote));
            prop_assert_eq!(s.proto(), proto);
            let orig = build(proto, e(inside), e(remote), &payload, false);
            let mut got = orig.clone();
            translate(&mut got, proto, &s, Dir::In2Out);
            let mut want = orig.clone();
            want[12..16].copy_from_slice(&outside);
            fill(&mut want, false);
            prop_assert_eq!(&got, &want);
            let reply = build(proto, e(remote), e(outside), &payload, false);
            let mut got = reply.clone();
            translate(&mut got, proto, &s, Dir::Out2In);
            prop_assert_eq!(&got, &build(proto, e(remote), e(inside), &payload, false));
        }

        /// An error about a translated packet, translated, quotes the original packet
        /// byte for byte, and every checksum (outer IPv4, outer ICMP) verifies.
        #[test]
        fn icmp_errors_restore_the_quote(
            p in 0u8..3, inside in ep(), outside in ep(), remote in ep(), router in any::<[u8; 4]>(),
            payload in proptest::collection::vec(any::<u8>(), 0..48), quote in 28usize..120, no_csum in any::<bool>(),
        ) {
            let proto = proto_of(p);
            let no_csum = no_csum && proto == Proto::Udp;
            // A quote that cuts the TCP checksum in half leaves it as quoted (so does
            // Linux): nothing to compare byte for byte there.
            let quote = if proto == Proto::Tcp && quote == 37 { 38 } else { quote };
            let s = session(SessionKind::SourceNat, proto, inside, outside, remote);
            let rport = if proto == Proto::Icmp { inside.port } else { remote.port };
            // Outbound: the inside host's packet, as it left.
            let sent = build(proto, inside, Endpoint::new(remote.addr, rport), &payload, no_csum);
            let mut left = sent.clone();
            translate(&mut left, proto, &s, Dir::In2Out);
            let mut err = icmp_error(Ipv4Addr::from(router), outside.addr, &left, quote);
            let q = quoted_of(&err);
            translate_icmp_error(&mut err, &q, &s, Dir::Out2In);
            prop_assert_eq!(&err[16..20], &inside.addr.octets()[..], "outer destination");
            prop_assert_eq!(&err[28..], &sent[..err.len() - 28], "quote restored");
            prop_assert!(Ipv4Packet::new_unchecked(&err[..]).verify_checksum());
            prop_assert!(Icmpv4Packet::new_unchecked(&err[20..]).verify_checksum());

            // Inbound: a packet delivered inside, and the inside host's error about it.
            let oport = if proto == Proto::Icmp { outside.port } else { remote.port };
            let arrived = build(proto, Endpoint::new(remote.addr, oport), outside, &payload, no_csum);
            let mut delivered = arrived.clone();
            translate(&mut delivered, proto, &s, Dir::Out2In);
            let mut err = icmp_error(inside.addr, remote.addr, &delivered, quote);
            let q = quoted_of(&err);
            translate_icmp_error(&mut err, &q, &s, Dir::In2Out);
            prop_assert_eq!(&err[12..16], &outside.addr.octets()[..], "outer source");
            prop_assert_eq!(&err[28..], &arrived[..err.len() - 28]);
            prop_assert!(Ipv4Packet::new_unchecked(&err[..]).verify_checksum());
            prop_assert!(Icmpv4Packet::new_unchecked(&err[20..]).verify_checksum());
        }
    }

    #[test]
    fn identity_sessions_change_nothing() {
        let e = Endpoint::new(Ipv4Addr::new(100, 64, 0, 2), 5);
        let r = Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 53);
        let s = session(SessionKind::Identity, Proto::Udp, e, e, r);
        let orig = build(Proto::Udp, e, r, b"x", false);
        let mut b = orig.clone();
        translate(&mut b, Proto::Udp, &s, Dir::In2Out);
        translate_fragment(&mut b, &s, Dir::Out2In);
        assert_eq!(b, orig);
        let t = Tuple::new(e, r, Proto::Udp);
        assert_eq!(translated(t, &s, Dir::In2Out), t);
    }

    #[test]
    fn translated_tuples() {
        let i = Endpoint::new(Ipv4Addr::new(100, 64, 0, 2), 7);
        let o = Endpoint::new(Ipv4Addr::new(192, 0, 2, 1), 1025);
        let r = Endpoint::new(Ipv4Addr::new(8, 8, 8, 8), 0);
        let s = session(SessionKind::SourceNat, Proto::Icmp, i, o, r);
        let req = Tuple::new(i, Endpoint::new(r.addr, 7), Proto::Icmp);
        assert_eq!(translated(req, &s, Dir::In2Out), Tuple::new(o, Endpoint::new(r.addr, 1025), Proto::Icmp));
        let rep = Tuple::new(Endpoint::new(r.addr, 1025), o, Proto::Icmp);
        assert_eq!(translated(rep, &s, Dir::Out2In), Tuple::new(Endpoint::new(r.addr, 7), i, Proto::Icmp));
        assert_eq!(Icmpv4Message::from(8), Icmpv4Message::EchoRequest);
    }
}
