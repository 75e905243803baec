//! Deterministic NAT (RFC 7422) in the NAT core: fixed ranges, mixed with dynamic NAT,
//! no per-session logging, and steering that finds a host's worker from outside.

use super::deterministic::{DetTable, DetTables};
use super::steer::{subscriber_owner, Steering};
use super::*;
use crate::logging::{ring, EventMask};
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;
use std::sync::Arc;

const POOL: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const DET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
const T0: Instant = Instant::from_secs(1000);

fn tables() -> DetTables {
    DetTables::new(vec![DetTable::new((Ipv4Addr::new(100, 64, 0, 0), 24), (DET, 32)).unwrap()]).unwrap()
}

fn nat(worker: u16, workers: u16) -> WorkerNat {
    let mut c = NatConfig::new(vec![POOL], worker, workers);
    c.max_sessions = 512;
    c.max_subscribers = 512;
    c.deterministic = tables();
    WorkerNat::new(c, Arc::new(Timeouts::default())).unwrap()
}

fn udp(src: Ipv4Addr, sp: u16) -> Tuple {
    Tuple::new(Endpoint::new(src, sp), Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 53), Proto::Udp)
}

#[test]
fn fixed_range_for_table_hosts_dynamic_for_the_rest() {
    let mut n = nat(0, 1);
    let host = Ipv4Addr::new(100, 64, 0, 3); // slot 3: ports 1780..=2031
    let range = tables().map(host).unwrap().ports;
    assert_eq!((range.lo, range.hi), (1024 + 3 * 252, 1024 + 4 * 252 - 1));
    // A source port inside the range is kept; outside it, the range's first free port.
    let a = n.create(&udp(host, range.lo + 5), NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(n.session(a).unwrap().outside(), Endpoint::new(DET, range.lo + 5));
    let b = n.create(&udp(host, 40000), NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(n.session(b).unwrap().outside(), Endpoint::new(DET, range.lo));
    // Whatever the rule's target: the table decides.
    let snat = NatAction::Snat(SnatTarget { addrs: (POOL, POOL), ports: None });
    let c = n.create(&udp(host, 40001), snat, 0, T0).unwrap();
    assert_eq!(n.session(c).unwrap().outside(), Endpoint::new(DET, range.lo + 1));
    // Outside the table: the dynamic pool.
    let d = n.create(&udp(Ipv4Addr::new(100, 64, 1, 9), 40000), NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(n.session(d).unwrap().outside().addr, POOL);
    // Replies find the deterministic session.
    let reply = Tuple::new(Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 53), Endpoint::new(DET, range.lo), Proto::Udp);
    assert!(matches!(n.lookup_out2in(&reply), Out2In::Session(s) if s.inside().addr == host));
    assert!(n.is_external(DET) && n.is_external(POOL) && !n.is_external(Ipv4Addr::new(203, 0, 113, 3)));
    // The range runs out at 252 mappings (of which 3 above), and nothing spills over.
    for p in 0..249u16 {
        n.create(&udp(host, 50000 + p), NatAction::Masquerade, 0, T0).unwrap();
    }
    assert_eq!(n.create(&udp(host, 60000), NatAction::Masquerade, 0, T0), Err(CreateError::PortsExhausted));
    // Expiry gives the ports back at once (the range is the host's alone).
    n.expire(T0 + Duration::from_secs(400), usize::MAX, |_| {});
    let e = n.create(&udp(host, 40000), NatAction::Masquerade, 0, T0 + Duration::from_secs(400)).unwrap();
    assert_eq!(n.session(e).unwrap().outside(), Endpoint::new(DET, range.lo));
}

#[test]
fn deterministic_hosts_are_not_logged_per_session() {
    let mut n = nat(0, 1);
    let (sink, mut drain) = ring(64, 0, EventMask::SESSIONS.union(EventMask::MAPPINGS));
    n.set_log(sink);
    n.create(&udp(Ipv4Addr::new(100, 64, 0, 3), 2000), NatAction::Masquerade, 0, T0).unwrap();
    n.create(&udp(Ipv4Addr::new(100, 64, 1, 3), 2000), NatAction::Masquerade, 0, T0).unwrap();
    n.expire(T0 + Duration::from_secs(400), usize::MAX, |_| {});
    let mut seen = Vec::new();
    drain.drain(usize::MAX, |e| seen.push((e.kind, e.inside().addr)));
    let dynamic = Ipv4Addr::new(100, 64, 1, 3);
    assert_eq!(
        seen,
        vec![
            (crate::logging::EventKind::MappingCreate, dynamic),
            (crate::logging::EventKind::SessionCreate, dynamic),
            (crate::logging::EventKind::SessionDelete, dynamic),
            (crate::logging::EventKind::MappingDelete, dynamic),
        ]
    );
}

#[test]
fn a_pool_address_cannot_be_deterministic() {
    let mut c = NatConfig::new(vec![DET], 0, 1);
    c.deterministic = tables();
    assert!(
        matches!(WorkerNat::new(c, Arc::new(Timeouts::default())), Err(ConfigError::DeterministicInPool(a)) if a == DET)
    );
}

fn frame(src: Ipv4Addr, sp: u16, dst: Ipv4Addr, dp: u16) -> super::classify::NatPacket {
    let mut v = Vec::new();
    etherparse::PacketBuilder::ipv4(src.octets(), dst.octets(), 64).udp(sp, dp).write(&mut v, b"x").unwrap();
    super::classify::classify(&v).unwrap()
}

#[test]
fn two_workers_each_serve_their_own_hosts_and_replies_find_them() {
    let workers = 2;
    let mut nats = [nat(0, workers), nat(1, workers)];
    let mut steer: Vec<Steering> =
        (0..workers).map(|w| Steering::new(w, *nats[0].partition()).with_deterministic(tables())).collect();
    let remote = Ipv4Addr::new(198, 51, 100, 7);
    let mut checked = [0; 2];
    for last in 0..=255u8 {
        let host = Ipv4Addr::new(100, 64, 0, last);
        let owner = subscriber_owner(host, workers);
        // Inside traffic reaches the host's worker, which maps it into the host's range,
        // whichever worker owns those ports in the dynamic partition.
        assert_eq!(steer[1 - owner as usize].owner(false, &frame(host, 5000, remote, 53), &[POOL], T0), owner);
        let id = nats[owner as usize].create(&udp(host, 5000), NatAction::Masquerade, 0, T0).unwrap();
        let out = nats[owner as usize].session(id).unwrap().outside();
        assert_eq!(out.addr, DET);
        // A reply, received by either worker, is steered to the host's worker...
        for s in steer.iter_mut() {
            assert_eq!(s.owner(true, &frame(remote, 53, out.addr, out.port), &[POOL], T0), owner, "{host}");
        }
        // ...which finds the session; the other worker knows nothing of it.
        let reply = Tuple::new(Endpoint::new(remote, 53), out, Proto::Udp);
        assert!(matches!(nats[owner as usize].lookup_out2in(&reply), Out2In::Session(_)));
        assert!(matches!(nats[1 - owner as usize].lookup_out2in(&reply), Out2In::Miss));
        checked[owner as usize] += 1;
    }
    assert!(checked[0] > 50 && checked[1] > 50, "both workers own hosts: {checked:?}");
    // A deterministic address's port no host owns stays where it arrived.
    assert_eq!(steer[1].owner(true, &frame(remote, 53, DET, 80), &[POOL], T0), 1);
}

#[test]
fn a_deterministic_hosts_address_only_sessions_are_logged() {
    // Its address is shared with the other hosts of its table (each with its own port
    // range): a GRE session, which has no port, is named only by its session record.
    let mut n = nat(0, 1);
    let (sink, mut drain) = ring(64, 0, EventMask::SESSIONS);
    n.set_log(sink);
    let host = Ipv4Addr::new(100, 64, 0, 3);
    let remote = Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 47);
    let t = Tuple::new(Endpoint::new(host, 47), remote, Proto::GRE);
    let id = n.create(&t, NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(n.session(id).unwrap().outside().addr, DET);
    n.create(&udp(host, 2000), NatAction::Masquerade, 0, T0).unwrap();
    n.expire(T0 + Duration::from_secs(700), usize::MAX, |_| {});
    let mut seen = Vec::new();
    drain.drain(usize::MAX, |e| seen.push((e.kind, e.proto, e.inside().addr, e.outside().addr)));
    use crate::logging::EventKind::{SessionCreate, SessionDelete};
    assert_eq!(seen, vec![(SessionCreate, 47, host, DET), (SessionDelete, 47, host, DET)], "the UDP session is not");
}
