//! The slow path: a packet that matched no session.
//!
//! It turns the policy's verdicts into a [`NatAction`], creates the session, and
//! precomputes the session's checksum deltas ([`csum_deltas`]) so that this packet and
//! every later one of the flow take the [fast path](super::fastpath). The order of
//! evaluation and the routing live in [`path`](super::path); this file holds the
//! pieces that do not depend on where the packet is:
//!
//! - [`source_action`]: nat POSTROUTING → `MASQUERADE` is SNAT to the egress port's
//!   address (with `--to-ports`), `SNAT` to its pool;
//! - [`dest_target`]: nat PREROUTING → the DNAT endpoint (a pool address chosen by a
//!   hash of the client address, the original port kept when the rule's range allows
//!   it); `REDIRECT` is DNAT to the inbound port's own address;
//! - [`create`]: `WorkerNat::create` plus the deltas.
//!
//! Keeping the allocator off the external ports that DNAT rules forward, as rules
//! change, is [`NatPath::sync_static_ports`](super::path::NatPath::sync_static_ports).

use std::net::Ipv4Addr;

use super::key::{Endpoint, Proto, Tuple};
use super::ports::PortRange as NatPortRange;
use super::table::Session;
use super::{CreateError, NatAction, SessionId, SnatTarget, WorkerNat};
use crate::packet::checksum::Delta;
use crate::policy::{Chain, CompiledRules, DestNat, FlowMatch, PortRange, SourceNat};
use crate::time::Instant;

/// The in2out checksum deltas of a session: `[0]` for the IPv4 header (address),
/// `[1]` for the transport checksum (TCP/UDP: address and port, since the
/// pseudo-header covers the address; ICMP query: the identifier only).
pub fn csum_deltas(s: &Session) -> [Delta; 2] {
    let (i, o) = (s.inside(), s.outside());
    let ip = Delta::new().replace_addr(i.addr, o.addr);
    let l4 = match s.proto() {
        Proto::Icmp => Delta::new().replace16(i.port, o.port),
        Proto::Tcp | Proto::Udp => ip.replace16(i.port, o.port),
    };
    [ip, l4]
}

/// Create the session for `t` and store its deltas. `t` is the packet's tuple as on
/// the wire (ICMP: identifier in both ports).
pub fn create(
    nat: &mut WorkerNat,
    t: &Tuple,
    action: NatAction,
    tcp_flags: u8,
    now: Instant,
) -> Result<SessionId, CreateError> {
    let id = nat.create(t, action, tcp_flags, now)?;
    let s = *nat.session(id).expect("just created").session;
    nat.set_csum_deltas(id, csum_deltas(&s));
    Ok(id)
}

fn nat_ports(p: Option<PortRange>) -> Option<NatPortRange> {
    p.map(|r| NatPortRange::new(r.first(), r.last()))
}

/// The source translation nat POSTROUTING asks for, for a flow leaving by a port
/// whose address is `egress_addr`. `None`: no translation.
pub fn source_action(nat: SourceNat, egress_addr: Ipv4Addr) -> Option<NatAction> {
    match nat {
        SourceNat::None => None,
        // `--random` changes nothing: the allocator already picks at random when the
        // source port is taken, and keeping a free source port is RFC 4787 REQ-3.
        SourceNat::Masquerade { ports, random: _ } => {
            Some(NatAction::Snat(SnatTarget { addrs: (egress_addr, egress_addr), ports: nat_ports(ports) }))
        }
        SourceNat::Snat { addrs, ports } => {
            Some(NatAction::Snat(SnatTarget { addrs: (addrs.first(), addrs.last()), ports: nat_ports(ports) }))
        }
    }
}

/// The DNAT endpoint for a flow `t` (as on the wire) decided by nat PREROUTING;
/// `inbound_addr` is the address of the port it arrived on (REDIRECT). ICMP keeps
/// its identifier.
pub fn dest_target(nat: DestNat, t: &Tuple, inbound_addr: Ipv4Addr) -> Option<Endpoint> {
    let port = |ports: Option<PortRange>| match (t.proto, ports) {
        (Proto::Icmp, _) | (_, None) => t.dst.port,
        (_, Some(r)) if r.contains(t.dst.port) => t.dst.port,
        (_, Some(r)) => r.first(),
    };
    match nat {
        DestNat::None => None,
        DestNat::Dnat { addrs, ports } => {
            // A stable choice per client, spread over the pool.
            let h = u64::from(u32::from(t.src.addr).wrapping_mul(0x9e37_79b9));
            let k = (h * addrs.len()) >> 32;
            let addr = Ipv4Addr::from(u32::from(addrs.first()).wrapping_add(k as u32));
            Some(Endpoint::new(addr, port(ports)))
        }
        DestNat::Redirect { ports } => Some(Endpoint::new(inbound_addr, port(ports))),
    }
}

/// Whether untranslated flows must be tracked: yes unless the rules are empty and
/// FORWARD accepts everything (plain routing, where a session would change nothing).
pub fn tracks_untranslated(rules: &CompiledRules, any_flow: &FlowMatch) -> bool {
    let empty = rules.chain_len(Chain::Prerouting) == 0
        && rules.chain_len(Chain::Postrouting) == 0
        && rules.chain_len(Chain::Forward) == 0;
    !(empty && rules.forward(any_flow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AddrRange;

    fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Tuple {
        Tuple::new(Endpoint::new(src.into(), sp), Endpoint::new(dst.into(), dp), Proto::Udp)
    }

    #[test]
    fn masquerade_is_snat_to_the_egress_address() {
        let wan = Ipv4Addr::new(203, 0, 113, 1);
        let a = source_action(SourceNat::Masquerade { ports: PortRange::new(2000, 2999), random: true }, wan);
        assert_eq!(
            a,
            Some(NatAction::Snat(SnatTarget { addrs: (wan, wan), ports: Some(NatPortRange::new(2000, 2999)) }))
        );
        assert_eq!(source_action(SourceNat::None, wan), None);
    }

    #[test]
    fn dnat_targets() {
        let t = udp([198, 51, 100, 9], 5000, [203, 0, 113, 1], 2222);
        let one = AddrRange::single(Ipv4Addr::new(100, 64, 0, 2));
        let to = dest_target(DestNat::Dnat { addrs: one, ports: PortRange::new(22, 22) }, &t, Ipv4Addr::UNSPECIFIED);
        assert_eq!(to, Some(Endpoint::new(Ipv4Addr::new(100, 64, 0, 2), 22)));
        let to = dest_target(DestNat::Dnat { addrs: one, ports: None }, &t, Ipv4Addr::UNSPECIFIED);
        assert_eq!(to.unwrap().port, 2222);
        let keep = dest_target(DestNat::Dnat { addrs: one, ports: PortRange::new(2000, 3000) }, &t, 0.into());
        assert_eq!(keep.unwrap().port, 2222);
        let pool = AddrRange::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 4)).unwrap();
        for s in 0..50u8 {
            let t = udp([198, 51, 100, s], 1, [203, 0, 113, 1], 80);
            let a = dest_target(DestNat::Dnat { addrs: pool, ports: None }, &t, 0.into()).unwrap().addr;
            assert!((Ipv4Addr::new(10, 0, 0, 1)..=Ipv4Addr::new(10, 0, 0, 4)).contains(&a));
        }
        let r = dest_target(DestNat::Redirect { ports: PortRange::new(8080, 8080) }, &t, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(r, Some(Endpoint::new(Ipv4Addr::new(1, 2, 3, 4), 8080)));
        assert_eq!(dest_target(DestNat::None, &t, 0.into()), None);
    }
}
