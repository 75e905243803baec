//! Flow keys: protocols, endpoints, tuples, and how they are packed for hashing.
//!
//! A packet is described to the NAT by its [`Tuple`] exactly as it appears on the wire
//! (`src`, `dst`, `proto`); the NAT decides which side is "inside", "outside" and
//! "remote" from the direction it is looked up in. A [`FlowKey`] is the 3-tuple of one
//! side of a mapping (address, port, protocol).
//!
//! ICMP query messages (echo, timestamp, ...) carry an identifier instead of ports: the
//! identifier is the *local* port of the flow (the inside or outside side) and the
//! remote port is always 0. [`Tuple::icmp_query`] builds such a tuple and the NAT
//! canonicalises the remote port to 0 on every ICMP lookup, so callers cannot get it
//! wrong.
//!
//! Hashing packs a session key into two `u64` words (16 bytes: two addresses, two
//! ports, the protocol and which side of the session the key names), hashed by
//! [`FlowHasher`](super::hash::FlowHasher).

use std::net::Ipv4Addr;

/// A protocol the NAT translates: TCP, UDP and ICMP queries by port (or identifier),
/// and every other IP protocol without ports (GRE, ESP, AH, IP-in-IP, ...) by address
/// only ([`Proto::Other`]).
///
/// An address-only flow has no ports: its protocol number stands in both tuple ports
/// and in every port of its session (so one key format serves all protocols, and GRE
/// and ESP flows between the same addresses stay apart). Listings and the event log
/// show those ports as 0. DCCP (33) and UDP-Lite (136) have ports and a checksum over
/// the pseudo-header that address-only translation would break: they are not
/// translated ([`Proto::from_ip`] is `None`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// ICMP query messages; the identifier plays the part of a port.
    Icmp,
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// Any other IP protocol, by number, translated by address only.
    Other(u8),
}

impl Proto {
    /// The protocols with ports (a port space per external address), in `code` order.
    pub const ALL: [Proto; 3] = [Proto::Icmp, Proto::Tcp, Proto::Udp];

    /// GRE (47).
    pub const GRE: Proto = Proto::Other(47);
    /// ESP (50).
    pub const ESP: Proto = Proto::Other(50);

    /// The protocol for an IPv4 protocol number, if the NAT translates it.
    pub const fn from_ip(number: u8) -> Option<Proto> {
        match number {
            1 => Some(Proto::Icmp),
            6 => Some(Proto::Tcp),
            17 => Some(Proto::Udp),
            // Ports and a pseudo-header checksum: address-only translation would
            // break them, port translation is not implemented.
            33 | 136 => None,
            n => Some(Proto::Other(n)),
        }
    }

    /// The IPv4 protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Proto::Icmp => 1,
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Other(n) => n,
        }
    }

    /// Dense code 0..4: 0..3 index per-protocol port arrays ([`Proto::ALL`]), 3 is
    /// every address-only protocol.
    pub const fn code(self) -> usize {
        match self {
            Proto::Icmp => 0,
            Proto::Tcp => 1,
            Proto::Udp => 2,
            Proto::Other(_) => 3,
        }
    }

    /// Number of [`code`](Self::code) values.
    pub const CODES: usize = 4;

    /// Whether the protocol is translated by address only (no ports).
    #[inline]
    pub const fn is_addr_only(self) -> bool {
        matches!(self, Proto::Other(_))
    }

    /// Inverse of [`Proto::code`] for the protocols with ports (masked to two bits; 3
    /// maps to UDP: an address-only protocol's number is not in its code).
    pub(crate) const fn from_code(code: u8) -> Proto {
        match code & 3 {
            0 => Proto::Icmp,
            1 => Proto::Tcp,
            _ => Proto::Udp,
        }
    }

    /// Port or identifier of the *remote* side as the NAT keys it: always 0 for ICMP.
    #[inline]
    pub const fn remote_port(self, port: u16) -> u16 {
        match self {
            Proto::Icmp => 0,
            _ => port,
        }
    }

    /// The port every endpoint of an address-only flow of this protocol carries (its
    /// number); `None` for protocols with ports.
    #[inline]
    pub const fn addr_only_port(self) -> Option<u16> {
        match self {
            Proto::Other(n) => Some(n as u16),
            _ => None,
        }
    }
}

impl core::fmt::Display for Proto {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Proto::Icmp => f.write_str("icmp"),
            Proto::Tcp => f.write_str("tcp"),
            Proto::Udp => f.write_str("udp"),
            Proto::Other(n) => write!(f, "{n}"),
        }
    }
}

/// An IPv4 address and a port (or ICMP identifier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl Endpoint {
    pub const fn new(addr: Ipv4Addr, port: u16) -> Self {
        Endpoint { addr, port }
    }

    #[inline]
    pub(crate) fn addr_u32(self) -> u32 {
        u32::from(self.addr)
    }
}

impl core::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// A packet's 5-tuple as it appears on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: Endpoint,
    pub dst: Endpoint,
    pub proto: Proto,
}

impl Tuple {
    pub const fn new(src: Endpoint, dst: Endpoint, proto: Proto) -> Self {
        Tuple { src, dst, proto }
    }

    /// An ICMP query message (echo request or reply, ...) from `src` to `dst` whose
    /// local side uses identifier `ident`. `local_is_src` says which side is local:
    /// true for a packet from inside (echo request going out), false for a packet from
    /// outside (echo reply coming back).
    pub fn icmp_query(src: Ipv4Addr, dst: Ipv4Addr, ident: u16, local_is_src: bool) -> Self {
        let (sp, dp) = if local_is_src { (ident, 0) } else { (0, ident) };
        Tuple { src: Endpoint::new(src, sp), dst: Endpoint::new(dst, dp), proto: Proto::Icmp }
    }

    /// The same flow seen from the other direction.
    pub const fn reversed(self) -> Self {
        Tuple { src: self.dst, dst: self.src, proto: self.proto }
    }
}

/// One side of a mapping: (address, port or identifier, protocol).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub proto: Proto,
}

impl FlowKey {
    pub const fn new(addr: Ipv4Addr, port: u16, proto: Proto) -> Self {
        FlowKey { addr, port, proto }
    }

    pub const fn endpoint(self) -> Endpoint {
        Endpoint::new(self.addr, self.port)
    }
}

const _: () = assert!(core::mem::size_of::<Endpoint>() == 6);
const _: () = assert!(core::mem::size_of::<Tuple>() <= 16);
const _: () = assert!(core::mem::size_of::<FlowKey>() <= 8);

/// Which key of a session (or mapping) an index entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Side {
    /// Found from packets arriving on the inside: (inside endpoint, remote endpoint).
    Inside = 0,
    /// Found from packets arriving on the outside: (outside endpoint, remote endpoint).
    Outside = 1,
}

/// Pack a session key — (local endpoint, remote endpoint, protocol, side) — into the
/// two words the hash consumes. 4+4 address bytes, 2+2 port bytes, protocol, side:
/// 14 bytes of information in 16.
#[inline]
pub(crate) fn pack5(local: Endpoint, remote: Endpoint, proto: Proto, side: Side) -> (u64, u64) {
    let a = (u64::from(local.addr_u32()) << 32) | u64::from(remote.addr_u32());
    let b =
        (u64::from(local.port) << 48) | (u64::from(remote.port) << 32) | (u64::from(proto.number()) << 8) | side as u64;
    (a, b)
}

/// Pack a mapping key — (endpoint, protocol, side) — into two words.
#[inline]
pub(crate) fn pack3(ep: Endpoint, proto: Proto, side: Side) -> (u64, u64) {
    let a = u64::from(ep.addr_u32());
    let b = (u64::from(ep.port) << 32) | (u64::from(proto.number()) << 8) | 0x10 | side as u64;
    (a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: [u8; 4], p: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(a), p)
    }

    #[test]
    fn proto_numbers_round_trip() {
        for p in Proto::ALL {
            assert_eq!(Proto::from_ip(p.number()), Some(p));
            assert_eq!(Proto::from_code(p.code() as u8), p);
        }
        assert_eq!(Proto::from_ip(47), Some(Proto::GRE));
        assert_eq!(Proto::GRE.number(), 47);
        assert_eq!(Proto::ESP.code(), 3);
        assert!(Proto::ESP.is_addr_only() && !Proto::Udp.is_addr_only());
        assert_eq!(Proto::from_ip(33), None);
        assert_eq!(Proto::from_ip(136), None);
        assert_eq!(Proto::Icmp.remote_port(7), 0);
        assert_eq!(Proto::Udp.remote_port(7), 7);
    }

    #[test]
    fn icmp_query_puts_ident_on_the_local_side() {
        let a = Ipv4Addr::new(10, 0, 0, 1);
        let b = Ipv4Addr::new(8, 8, 8, 8);
        let out = Tuple::icmp_query(a, b, 77, true);
        assert_eq!((out.src.port, out.dst.port), (77, 0));
        let back = Tuple::icmp_query(b, a, 77, false);
        assert_eq!((back.src.port, back.dst.port), (0, 77));
        assert_eq!(out.reversed(), back);
    }

    #[test]
    fn packing_is_injective_on_fields() {
        let l = ep([10, 0, 0, 1], 1000);
        let r = ep([8, 8, 8, 8], 53);
        let base = pack5(l, r, Proto::Udp, Side::Inside);
        assert_ne!(base, pack5(l, r, Proto::Udp, Side::Outside));
        assert_ne!(base, pack5(l, r, Proto::Tcp, Side::Inside));
        assert_ne!(base, pack5(r, l, Proto::Udp, Side::Inside));
        assert_ne!(base, pack5(ep([10, 0, 0, 1], 1001), r, Proto::Udp, Side::Inside));
        let (gre, esp) = (ep([10, 0, 0, 1], 47), ep([8, 8, 8, 8], 47));
        assert_ne!(pack5(gre, esp, Proto::GRE, Side::Inside), pack5(gre, esp, Proto::ESP, Side::Inside));
        assert_ne!(pack3(l, Proto::Udp, Side::Inside), pack3(l, Proto::Udp, Side::Outside));
        // 3-tuple keys never collide with 5-tuple keys (bit 4 of the low byte).
        assert_ne!(pack3(l, Proto::Udp, Side::Inside).1 & 0xff, base.1 & 0xff);
    }
}
