//! Behaviour of [`WorkerNat`] as a whole: the RFC requirements, one test each, and a
//! model-based property test over random flows and time.

use super::tcp::{ACK, FIN, RST, SYN};
use super::*;
use crate::packet::checksum::Delta;
use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

const POOL: [Ipv4Addr; 4] = [
    Ipv4Addr::new(192, 0, 2, 1),
    Ipv4Addr::new(192, 0, 2, 2),
    Ipv4Addr::new(192, 0, 2, 3),
    Ipv4Addr::new(192, 0, 2, 4),
];

fn cfg(pool: &[Ipv4Addr], worker: u16, workers: u16) -> NatConfig {
    let mut c = NatConfig::new(pool.to_vec(), worker, workers);
    c.max_sessions = 1024;
    c.seed = 42;
    c
}

fn nat_with(c: NatConfig) -> WorkerNat {
    WorkerNat::new(c, Arc::new(Timeouts::default())).unwrap()
}

fn nat() -> WorkerNat {
    nat_with(cfg(&POOL, 0, 1))
}

fn sub(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, n)
}

fn ep(a: Ipv4Addr, p: u16) -> Endpoint {
    Endpoint::new(a, p)
}

fn remote(n: u8, p: u16) -> Endpoint {
    ep(Ipv4Addr::new(203, 0, 113, n), p)
}

fn out(nat: &WorkerNat, t: &Tuple) -> Endpoint {
    nat.lookup_in2out(t).expect("session").outside()
}

fn masq(nat: &mut WorkerNat, t: &Tuple, now: Instant) -> Result<SessionId, CreateError> {
    nat.create(t, NatAction::Masquerade, SYN, now)
}

fn udp(src: Endpoint, dst: Endpoint) -> Tuple {
    Tuple::new(src, dst, Proto::Udp)
}

fn tcp(src: Endpoint, dst: Endpoint) -> Tuple {
    Tuple::new(src, dst, Proto::Tcp)
}

/// The reply a remote sends to a session's outside endpoint.
fn reply_to(nat: &WorkerNat, t: &Tuple) -> Tuple {
    Tuple::new(t.dst, out(nat, t), t.proto)
}

fn expire_all(nat: &mut WorkerNat, now: Instant) -> Vec<SessionInfo> {
    let mut v = Vec::new();
    nat.expire(now, usize::MAX, |i| v.push(*i));
    v
}

const T0: Instant = Instant::from_secs(1000);

fn secs(s: u64) -> Instant {
    T0 + Duration::from_secs(s)
}

#[test]
fn keeps_the_source_port_when_free() {
    let mut n = nat();
    let t = udp(ep(sub(1), 40000), remote(1, 53));
    masq(&mut n, &t, T0).unwrap();
    assert_eq!(out(&n, &t).port, 40000);
    // Another subscriber with the same source port on the same address gets another.
    let mut c = cfg(&POOL[..1], 0, 1);
    c.seed = 1;
    let mut n = nat_with(c);
    masq(&mut n, &udp(ep(sub(1), 40000), remote(1, 53)), T0).unwrap();
    let t2 = udp(ep(sub(2), 40000), remote(1, 53));
    masq(&mut n, &t2, T0).unwrap();
    let p = out(&n, &t2).port;
    assert!(p != 40000 && p >= 1024);
}

#[test]
fn privileged_sources_map_below_1024() {
    let mut n = nat_with(cfg(&POOL[..1], 0, 1));
    for (i, port) in [22u16, 123, 500, 1023].into_iter().enumerate() {
        for s in 1..4 {
            let t = udp(ep(sub(s), port), remote(i as u8, 9));
            masq(&mut n, &t, T0).unwrap();
            let p = out(&n, &t).port;
            assert!((1..1024).contains(&p), "{port} -> {p}");
        }
    }
    let t = udp(ep(sub(9), 5000), remote(1, 9));
    masq(&mut n, &t, T0).unwrap();
    assert!(out(&n, &t).port >= 1024);
}

#[test]
fn worker_allocates_only_from_its_slice() {
    let mut n = nat_with(cfg(&POOL, 1, 3));
    let part = *n.partition();
    for s in 1..50u8 {
        for port in [80u16, 1024, 30000, 65535] {
            let t = tcp(ep(sub(s), port), remote(1, 443));
            masq(&mut n, &t, T0).unwrap();
            let o = out(&n, &t);
            assert_eq!(part.owner_of(o.port), Some(1), "{o}");
            assert_eq!(o.port < 1024, port < 1024);
        }
    }
}

#[test]
fn endpoint_independent_mapping() {
    let mut n = nat();
    let a = udp(ep(sub(1), 5000), remote(1, 53));
    let b = udp(ep(sub(1), 5000), remote(2, 123));
    let c = udp(ep(sub(1), 5001), remote(1, 53));
    for t in [&a, &b, &c] {
        masq(&mut n, t, T0).unwrap();
    }
    assert_eq!(out(&n, &a), out(&n, &b), "same inside endpoint, same mapping");
    assert_ne!(out(&n, &a), out(&n, &c));
    assert_eq!(n.mapping_count(), 2);
    let m = n.mapping_of(ep(sub(1), 5000), Proto::Udp).unwrap();
    assert_eq!(m.sessions, 2);
    assert_eq!(m.outside, out(&n, &a));
    // The reply of each remote finds its own session.
    match n.lookup_out2in(&reply_to(&n, &b)) {
        Out2In::Session(s) => assert_eq!(s.remote(), remote(2, 123)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn paired_pooling_across_protocols_and_spread() {
    let mut n = nat();
    let mut used = HashSet::new();
    for s in 1..=64u8 {
        let tt = tcp(ep(sub(s), 1000 + u16::from(s)), remote(1, 80));
        let tu = udp(ep(sub(s), 2000), remote(2, 53));
        let ti = Tuple::icmp_query(sub(s), remote(3, 0).addr, 7, true);
        let mut addrs = HashSet::new();
        for t in [tt, tu, ti] {
            masq(&mut n, &t, T0).unwrap();
            addrs.insert(out(&n, &t).addr);
        }
        assert_eq!(addrs.len(), 1, "subscriber {s} uses one address for TCP, UDP, ICMP");
        used.extend(addrs);
    }
    assert_eq!(used.len(), POOL.len(), "subscribers spread over the pool");
    // A subscriber whose mappings all expired may start afresh, but while it holds
    // one, new mappings stay on its address even after others expire.
    let s = n.subscriber(sub(1)).unwrap();
    assert_eq!(s.ports, 3);
    assert_eq!(POOL[usize::from(s.ext)], n.mapping_of(ep(sub(1), 2000), Proto::Udp).unwrap().outside.addr);
}

#[test]
fn icmp_identifier_is_translated_like_a_port() {
    let mut n = nat();
    let req = Tuple::icmp_query(sub(1), remote(1, 0).addr, 4242, true);
    masq(&mut n, &req, T0).unwrap();
    let o = out(&n, &req);
    assert_eq!(o.port, 4242, "identifier kept when free");
    let reply = Tuple::icmp_query(remote(1, 0).addr, o.addr, o.port, false);
    match n.lookup_out2in(&reply) {
        Out2In::Session(s) => assert_eq!(s.inside(), ep(sub(1), 4242)),
        other => panic!("{other:?}"),
    }
    // A caller that puts something in the remote "port" still finds it.
    let mut odd = req;
    odd.dst.port = 99;
    assert!(n.lookup_in2out(&odd).is_some());
}

#[test]
fn per_subscriber_port_limit() {
    let mut c = cfg(&POOL, 0, 1);
    c.ports_per_subscriber = 3;
    let mut n = nat_with(c);
    for p in 0..3 {
        masq(&mut n, &tcp(ep(sub(1), 3000 + p), remote(1, 80)), T0).unwrap();
    }
    let e = masq(&mut n, &tcp(ep(sub(1), 4000), remote(1, 80)), T0);
    assert_eq!(e, Err(CreateError::SubscriberLimit));
    assert_eq!(CreateError::SubscriberLimit.drop_reason(), DropReason::SubscriberLimit);
    // Existing mappings still take new sessions; other subscribers are unaffected.
    masq(&mut n, &tcp(ep(sub(1), 3000), remote(2, 80)), T0).unwrap();
    masq(&mut n, &tcp(ep(sub(2), 4000), remote(1, 80)), T0).unwrap();
    assert_eq!(n.counters().create_failed[CreateError::SubscriberLimit as usize], 1);
}

#[test]
fn per_subscriber_session_limit() {
    let mut c = cfg(&POOL, 0, 1);
    c.sessions_per_subscriber = 2;
    let mut n = nat_with(c);
    masq(&mut n, &udp(ep(sub(1), 1), remote(1, 53)), T0).unwrap();
    masq(&mut n, &udp(ep(sub(1), 1), remote(2, 53)), T0).unwrap();
    let e = masq(&mut n, &udp(ep(sub(1), 1), remote(3, 53)), T0);
    assert_eq!(e, Err(CreateError::SubscriberLimit));
}

/// Issue 11 item 3: every session counts against the inside subscriber it belongs to —
/// inbound on a mapping, a port forward's target, an untranslated inbound flow, and the
/// subscriber that opened a DNAT from inside (a transparent proxy) — and the counts go
/// back to nothing when the sessions end. REDIRECT on an outside port counts against
/// no one.
#[test]
fn every_session_counts_against_its_inside_subscriber() {
    let mut c = cfg(&POOL, 0, 1);
    c.sessions_per_subscriber = 2;
    let mut n = nat_with(c);
    let server = ep(sub(9), 22);
    let count = |n: &WorkerNat, a| n.subscriber(a).map_or(0, |s| s.sessions);
    // A port forward to sub(9): two clients fill its quota, the third is refused.
    for (i, r) in [remote(1, 1000), remote(2, 1000)].into_iter().enumerate() {
        n.create(&tcp(r, ep(POOL[0], 2222)), NatAction::Dnat { to: server, from_inside: false }, SYN, T0).unwrap();
        assert_eq!(count(&n, sub(9)), i as u32 + 1);
    }
    let third = tcp(remote(3, 1000), ep(POOL[0], 2222));
    let e = n.create(&third, NatAction::Dnat { to: server, from_inside: false }, SYN, T0);
    assert_eq!(e, Err(CreateError::SubscriberLimit));
    // Untranslated inbound to sub(8) counts against sub(8).
    n.create(&udp(remote(1, 53), ep(sub(8), 5353)), NatAction::NoNatInbound, 0, T0).unwrap();
    assert_eq!(count(&n, sub(8)), 1);
    // A transparent proxy: sub(1)'s flow DNATed at the inside port to a proxy counts
    // against sub(1), not against the proxy.
    let proxy = ep(Ipv4Addr::new(10, 0, 0, 1), 3128);
    n.create(&tcp(ep(sub(1), 40000), remote(5, 80)), NatAction::Dnat { to: proxy, from_inside: true }, SYN, T0)
        .unwrap();
    assert_eq!((count(&n, sub(1)), count(&n, proxy.addr)), (1, 0));
    // REDIRECT of outside traffic to our own external address: counted against no one.
    let redirect = NatAction::redirect(POOL[0], 8080, false);
    n.create(&tcp(remote(6, 1), ep(POOL[0], 80)), redirect, SYN, T0).unwrap();
    assert_eq!(count(&n, POOL[0]), 0);
    // Inbound on a mapping (endpoint-independent filtering) counts against its owner.
    masq(&mut n, &udp(ep(sub(2), 7000), remote(1, 53)), T0).unwrap();
    let ext = out(&n, &udp(ep(sub(2), 7000), remote(1, 53)));
    let Out2In::Mapping(m) = n.lookup_out2in(&udp(remote(7, 9), ext)) else { panic!("a mapping") };
    n.create(&udp(remote(7, 9), ext), NatAction::Inbound(m.id), 0, T0).unwrap();
    assert_eq!(count(&n, sub(2)), 2);
    let e = n.create(&udp(remote(8, 9), ext), NatAction::Inbound(m.id), 0, T0);
    assert_eq!(e, Err(CreateError::SubscriberLimit), "inbound sessions hit the owner's limit");
    // Everything ends: every count back to zero, every record gone.
    let ended = expire_all(&mut n, secs(100_000));
    assert_eq!(ended.len(), 7);
    assert_eq!(n.subscriber_count(), 0, "no subscriber record left");
}

/// `new_sessions_per_second`: a token bucket per subscriber, `new_sessions_burst` deep.
/// Inbound sessions (a port forward's target) do not take tokens.
#[test]
fn new_sessions_per_second_per_subscriber() {
    let mut c = cfg(&POOL, 0, 1);
    c.new_sessions_per_second = 100;
    c.new_sessions_burst = 10;
    let mut n = nat_with(c);
    let flow = |s: u8, i: u16| udp(ep(sub(s), 1000), remote((i % 200) as u8 + 1, 1000 + i));
    let ok = |n: &mut WorkerNat, s: u8, range: std::ops::Range<u16>, at: Instant| {
        range.filter(|i| masq(n, &flow(s, *i), at).is_ok()).count()
    };
    assert_eq!(ok(&mut n, 1, 0..50, T0), 10, "the burst");
    assert_eq!(masq(&mut n, &flow(1, 50), T0), Err(CreateError::RateLimited));
    assert_eq!(CreateError::RateLimited.drop_reason(), DropReason::SubscriberRateLimit);
    assert_eq!(ok(&mut n, 2, 0..10, T0), 10, "another subscriber has its own bucket");
    // 100/s: one more every 10 ms.
    let at = |ms| Instant::from_millis(T0.as_millis() + ms);
    assert_eq!(ok(&mut n, 1, 100..105, at(10)), 1);
    assert_eq!(ok(&mut n, 1, 200..300, at(1000)), 10, "refilled to the burst, no more");
    // A port forward's target is not rate-limited by the flows it receives.
    let server = ep(sub(9), 22);
    for i in 0..30u16 {
        let t = tcp(ep(Ipv4Addr::new(198, 51, 100, 1), 2000 + i), ep(POOL[0], 2222));
        n.create(&t, NatAction::Dnat { to: server, from_inside: false }, SYN, T0).unwrap();
    }
    assert_eq!(n.counters().create_failed[CreateError::RateLimited as usize], 40 + 1 + 4 + 90, "none for the forward");
}

#[test]
fn exhaustion_fails_typed_and_never_evicts() {
    let mut c = cfg(&POOL[..1], 0, 1);
    c.port_range = (1024, 1031);
    let mut n = nat_with(c);
    let flows: Vec<Tuple> = (0..8).map(|i| udp(ep(sub(i), 5000), remote(1, 53))).collect();
    for t in &flows {
        masq(&mut n, t, T0).unwrap();
    }
    let e = masq(&mut n, &udp(ep(sub(99), 5000), remote(1, 53)), T0);
    assert_eq!(e, Err(CreateError::PortsExhausted));
    assert_eq!(e.unwrap_err().drop_reason(), DropReason::PortsExhausted);
    for t in &flows {
        assert!(n.lookup_in2out(t).is_some(), "existing mapping kept");
    }
    // An existing mapping can still serve a new remote.
    masq(&mut n, &udp(ep(sub(0), 5000), remote(2, 53)), T0).unwrap();

    let mut c = cfg(&POOL, 0, 1);
    c.max_sessions = 4;
    let mut n = nat_with(c);
    for i in 0..4 {
        masq(&mut n, &udp(ep(sub(1), 100 + i), remote(1, 53)), T0).unwrap();
    }
    let e = masq(&mut n, &udp(ep(sub(2), 100), remote(1, 53)), T0);
    assert_eq!(e, Err(CreateError::SessionTableFull));
    assert_eq!(e.unwrap_err().drop_reason(), DropReason::SessionTableFull);
    assert_eq!(n.count(), 4);
}

#[test]
fn freed_port_is_quarantined_for_120s() {
    let mut c = cfg(&POOL[..1], 0, 1);
    c.port_range = (1024, 1024);
    let mut n = nat_with(c);
    let a = udp(ep(sub(1), 1024), remote(1, 53));
    masq(&mut n, &a, T0).unwrap();
    assert_eq!(out(&n, &a).port, 1024);
    // UDP idles out at +300 s; the port is held until +420 s.
    assert_eq!(expire_all(&mut n, secs(300)).len(), 1);
    assert_eq!(n.mapping_count(), 0);
    assert_eq!(n.ports_held(), 1);
    let b = udp(ep(sub(2), 1024), remote(1, 53));
    assert_eq!(masq(&mut n, &b, secs(419)), Err(CreateError::PortsExhausted));
    assert!(n.next_deadline().unwrap() <= secs(420));
    expire_all(&mut n, secs(420));
    masq(&mut n, &b, secs(420)).unwrap();
    assert_eq!(out(&n, &b).port, 1024);
}

#[test]
fn tcp_timeouts_follow_the_state() {
    let mut n = nat();
    let t = tcp(ep(sub(1), 3333), remote(1, 443));
    let id = n.create(&t, NatAction::Masquerade, SYN, T0).unwrap();
    let s = n.session(id).unwrap();
    assert_eq!(s.state(), ConnState::Tcp(TcpState::SynSent));
    assert_eq!(s.expires_ms(), secs(240).as_millis(), "SYN only: transitory");

    let r = n.refresh(id, Dir::Out2In, SYN | ACK, RefreshMode::Default, secs(1));
    assert_eq!(r.state, ConnState::Tcp(TcpState::SynReceived));
    assert!(!r.refreshed, "inbound does not refresh a non-established session");
    assert_eq!(r.expires, secs(240));
    let r = n.refresh(id, Dir::In2Out, ACK, RefreshMode::Default, secs(2));
    assert_eq!(r.state, ConnState::Tcp(TcpState::Established));
    assert_eq!(r.expires, secs(2 + 7440), "established timer");
    let r = n.refresh(id, Dir::Out2In, ACK, RefreshMode::Default, secs(10));
    assert!(r.refreshed, "inbound refreshes an established session");
    assert_eq!(r.expires, secs(10 + 7440));

    let r = n.refresh(id, Dir::In2Out, FIN | ACK, RefreshMode::Default, secs(20));
    assert_eq!(r.state, ConnState::Tcp(TcpState::FinWait));
    assert_eq!(r.expires, secs(20 + 240));
    let r = n.refresh(id, Dir::Out2In, FIN | ACK, RefreshMode::Default, secs(21));
    assert_eq!(r.state, ConnState::Tcp(TcpState::TimeWait));
    assert_eq!(r.expires, secs(20 + 240), "inbound on a closing session: no refresh");
    // The deadline moved earlier than the established one: the wheel must honour it.
    assert!(expire_all(&mut n, secs(259)).is_empty());
    assert_eq!(expire_all(&mut n, secs(260)).len(), 1);
}

#[test]
fn rst_closes_with_the_transitory_timer() {
    let mut n = nat();
    let t = tcp(ep(sub(1), 3333), remote(1, 443));
    let id = n.create(&t, NatAction::Masquerade, SYN, T0).unwrap();
    n.refresh(id, Dir::Out2In, SYN | ACK, RefreshMode::Default, secs(1));
    n.refresh(id, Dir::In2Out, ACK, RefreshMode::Default, secs(1));
    let r = n.refresh(id, Dir::Out2In, RST, RefreshMode::Default, secs(100));
    assert_eq!(r.state, ConnState::Tcp(TcpState::Closed));
    assert_eq!(r.expires, secs(100 + 240));
    assert!(expire_all(&mut n, secs(339)).is_empty());
    let gone = expire_all(&mut n, secs(340));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].state, ConnState::Tcp(TcpState::Closed));
    assert_eq!(n.mapping_count(), 0);
}

#[test]
fn suppressed_refresh_keeps_the_old_deadline() {
    let mut n = nat();
    let t = udp(ep(sub(1), 7000), remote(1, 53));
    let id = masq(&mut n, &t, T0).unwrap();
    let r = n.refresh(id, Dir::In2Out, 0, RefreshMode::Suppress, secs(100));
    assert!(!r.refreshed);
    assert_eq!(r.expires, secs(300));
    // Unreplied UDP: inbound does not refresh; once replied, inbound does.
    let r = n.refresh(id, Dir::Out2In, 0, RefreshMode::Default, secs(110));
    assert!(!r.refreshed);
    assert_eq!(r.state, ConnState::Replied);
    let r = n.refresh(id, Dir::Out2In, 0, RefreshMode::Default, secs(120));
    assert!(r.refreshed);
    assert_eq!(r.expires, secs(420));
    let r = n.refresh(id, Dir::Out2In, 0, RefreshMode::Force, secs(130));
    assert_eq!(r.expires, secs(430));
}

#[test]
fn sessions_expire_exactly_when_due() {
    let mut n = nat();
    let u = udp(ep(sub(1), 1), remote(1, 53));
    let i = Tuple::icmp_query(sub(1), remote(2, 0).addr, 9, true);
    let uid = masq(&mut n, &u, T0).unwrap();
    masq(&mut n, &i, T0).unwrap();
    assert!(n.next_deadline().unwrap() <= secs(60));
    assert!(expire_all(&mut n, Instant::from_millis(secs(60).as_millis() - 1)).is_empty());
    let e = expire_all(&mut n, secs(60));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].proto, Proto::Icmp);
    // Outbound traffic keeps the UDP session alive.
    n.refresh(uid, Dir::In2Out, 0, RefreshMode::Default, secs(250));
    assert!(expire_all(&mut n, secs(549)).is_empty());
    let e = expire_all(&mut n, secs(550));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].inside, ep(sub(1), 1));
    assert_eq!(e[0].idle, Duration::from_secs(300));
    assert_eq!((n.count(), n.mapping_count(), n.subscriber_count()), (0, 0, 0));
    assert_eq!(n.counters().sessions_expired, 2);
}

#[test]
fn live_timeout_change_applies_from_the_next_packet() {
    let mut n = nat();
    let quiet = udp(ep(sub(1), 1), remote(1, 53));
    let busy = udp(ep(sub(2), 1), remote(1, 53));
    masq(&mut n, &quiet, T0).unwrap();
    let b = masq(&mut n, &busy, T0).unwrap();
    n.timeouts().set(TimeoutClass::Udp, 30);
    let r = n.refresh(b, Dir::In2Out, 0, RefreshMode::Default, secs(20));
    assert_eq!(r.expires, secs(50), "new value from this packet on");
    let e = expire_all(&mut n, secs(50));
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].inside, ep(sub(2), 1));
    assert!(n.lookup_in2out(&quiet).is_some(), "no packet: keeps its deadline");
    assert!(expire_all(&mut n, secs(299)).is_empty());
    assert_eq!(expire_all(&mut n, secs(300)).len(), 1);
    // New sessions use the new value.
    masq(&mut n, &quiet, secs(400)).unwrap();
    assert_eq!(expire_all(&mut n, secs(430)).len(), 1);
}

#[test]
fn expire_respects_its_budget() {
    let mut n = nat();
    for i in 0..100 {
        masq(&mut n, &udp(ep(sub(1), 1000 + i), remote(1, 53)), T0).unwrap();
    }
    let mut total = 0;
    let mut calls = 0;
    loop {
        let k = n.expire(secs(300), 16, |_| {});
        assert!(k <= 16);
        total += k;
        calls += 1;
        if k == 0 && n.count() == 0 {
            break;
        }
    }
    assert_eq!(total, 100);
    assert!(calls >= 7);
}

#[test]
fn filtering_endpoint_independent() {
    let mut n = nat();
    let t = udp(ep(sub(1), 5000), remote(1, 3478));
    masq(&mut n, &t, T0).unwrap();
    let o = out(&n, &t);
    let stranger = udp(remote(9, 1111), o);
    let m = match n.lookup_out2in(&stranger) {
        Out2In::Mapping(m) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(m.inside, ep(sub(1), 5000));
    let id = n.create(&stranger, NatAction::Inbound(m.id), 0, T0).unwrap();
    let s = n.session(id).unwrap();
    assert_eq!((s.inside(), s.outside(), s.remote()), (ep(sub(1), 5000), o, remote(9, 1111)));
    assert_eq!(s.initiator(), Dir::Out2In);
    // The inside host's reply goes out through the same session.
    let back = udp(ep(sub(1), 5000), remote(9, 1111));
    assert_eq!(n.lookup_in2out(&back).unwrap().id, id);
    assert_eq!(n.mapping_of(ep(sub(1), 5000), Proto::Udp).unwrap().sessions, 2);
    // Nothing listens on an unmapped port.
    assert!(matches!(n.lookup_out2in(&udp(remote(9, 1), ep(o.addr, o.port ^ 1))), Out2In::Miss));
}

#[test]
fn filtering_address_dependent() {
    let mut c = cfg(&POOL, 0, 1);
    c.filtering = Filtering::AddressDependent;
    let mut n = nat_with(c);
    let t = udp(ep(sub(1), 5000), remote(1, 3478));
    masq(&mut n, &t, T0).unwrap();
    let o = out(&n, &t);
    let same_addr = udp(remote(1, 9999), o);
    let other = udp(remote(2, 3478), o);
    let Out2In::Mapping(m) = n.lookup_out2in(&same_addr) else { panic!("same address, other port: accepted") };
    assert!(matches!(n.lookup_out2in(&other), Out2In::Filtered(_)));
    n.create(&same_addr, NatAction::Inbound(m.id), 0, T0).unwrap();
    // Once every session with that address is gone, it is refused again... but the
    // mapping goes with its last session, so the port simply stops answering.
    expire_all(&mut n, secs(300));
    assert!(matches!(n.lookup_out2in(&same_addr), Out2In::Miss));
}

#[test]
fn filtering_address_and_port_dependent() {
    let mut c = cfg(&POOL, 0, 1);
    c.filtering = Filtering::AddressPortDependent;
    let mut n = nat_with(c);
    let t = udp(ep(sub(1), 5000), remote(1, 3478));
    masq(&mut n, &t, T0).unwrap();
    let o = out(&n, &t);
    assert!(matches!(n.lookup_out2in(&udp(remote(1, 3478), o)), Out2In::Session(_)));
    assert!(matches!(n.lookup_out2in(&udp(remote(1, 3479), o)), Out2In::Filtered(_)));
    assert!(matches!(n.lookup_out2in(&udp(remote(2, 3478), o)), Out2In::Filtered(_)));
}

#[test]
fn address_dependent_filter_counts_sessions_per_address() {
    let mut c = cfg(&POOL, 0, 1);
    c.filtering = Filtering::AddressDependent;
    let mut n = nat_with(c);
    let a = udp(ep(sub(1), 5000), remote(1, 1));
    let b = udp(ep(sub(1), 5000), remote(1, 2));
    let keep = udp(ep(sub(1), 5000), remote(2, 2));
    masq(&mut n, &a, T0).unwrap();
    let bid = masq(&mut n, &b, secs(100)).unwrap();
    masq(&mut n, &keep, secs(200)).unwrap();
    let o = out(&n, &a);
    expire_all(&mut n, secs(300));
    assert!(matches!(n.lookup_out2in(&udp(remote(1, 7), o)), Out2In::Mapping(_)), "b still talks to 203.0.113.1");
    n.remove(bid, secs(300)).unwrap();
    assert!(matches!(n.lookup_out2in(&udp(remote(1, 7), o)), Out2In::Filtered(_)));
    assert!(matches!(n.lookup_out2in(&udp(remote(2, 7), o)), Out2In::Mapping(_)));
}

#[test]
fn hairpinning_finds_the_mapping_from_inside() {
    let mut n = nat();
    // Host B (server) has a mapping; host A sends to B's external endpoint.
    let bt = udp(ep(sub(2), 6000), remote(1, 3478));
    masq(&mut n, &bt, T0).unwrap();
    let b_ext = out(&n, &bt);
    let m = n.lookup_outside(b_ext, Proto::Udp).unwrap();
    assert_eq!(m.inside, ep(sub(2), 6000));
    // Pass 1: A's packet, in2out, gets A's own mapping.
    let at = udp(ep(sub(1), 7000), b_ext);
    masq(&mut n, &at, T0).unwrap();
    let a_ext = out(&n, &at);
    // Pass 2: the translated packet (a_ext -> b_ext) as out2in reaches B.
    let pass2 = udp(a_ext, b_ext);
    let Out2In::Mapping(m) = n.lookup_out2in(&pass2) else { panic!() };
    let id = n.create(&pass2, NatAction::Inbound(m.id), 0, T0).unwrap();
    assert_eq!(n.session(id).unwrap().inside(), ep(sub(2), 6000));
    // B's reply: in2out from B to a_ext finds that session.
    assert_eq!(n.lookup_in2out(&udp(ep(sub(2), 6000), a_ext)).unwrap().id, id);
}

#[test]
fn dnat_and_redirect_sessions() {
    let mut n = nat();
    let public = ep(POOL[0], 2222);
    n.reserve_port(public, Proto::Tcp).unwrap();
    let target = ep(Ipv4Addr::new(100, 64, 9, 9), 22);
    let syn = tcp(remote(5, 50000), public);
    assert!(matches!(n.lookup_out2in(&syn), Out2In::Miss));
    let id = n.create(&syn, NatAction::Dnat { to: target, from_inside: false }, SYN, T0).unwrap();
    let s = n.session(id).unwrap();
    assert_eq!(s.kind(), SessionKind::DestNat);
    assert_eq!((s.inside(), s.outside(), s.remote()), (target, public, remote(5, 50000)));
    // The server's reply is found from inside; the client's next packet from outside.
    let reply = tcp(target, remote(5, 50000));
    assert_eq!(n.lookup_in2out(&reply).unwrap().id, id);
    assert!(matches!(n.lookup_out2in(&syn), Out2In::Session(_)));
    // Handshake: initiator is outside.
    n.refresh(id, Dir::In2Out, SYN | ACK, RefreshMode::Default, T0);
    let r = n.refresh(id, Dir::Out2In, ACK, RefreshMode::Default, T0);
    assert_eq!(r.state, ConnState::Tcp(TcpState::Established));
    // A second rule to the same target with the same client port collides.
    let other = tcp(remote(5, 50000), ep(POOL[0], 2223));
    assert_eq!(
        n.create(&other, NatAction::Dnat { to: target, from_inside: false }, SYN, T0),
        Err(CreateError::TupleInUse)
    );
    // The reserved port is never handed out by masquerade.
    let m = tcp(ep(sub(1), 2222), remote(1, 80));
    let mut c = cfg(&POOL[..1], 0, 1);
    c.port_range = (2222, 2223);
    let mut n2 = nat_with(c);
    n2.reserve_port(public, Proto::Tcp).unwrap();
    masq(&mut n2, &m, T0).unwrap();
    assert_eq!(out(&n2, &m).port, 2223);
    // REDIRECT is DNAT to the inbound address.
    assert_eq!(
        NatAction::redirect(Ipv4Addr::new(10, 0, 0, 1), 3128, true),
        NatAction::Dnat { to: ep(Ipv4Addr::new(10, 0, 0, 1), 3128), from_inside: true }
    );
}

#[test]
fn snat_to_a_range_and_no_nat() {
    let mut n = nat();
    let target = SnatTarget { addrs: (POOL[2], POOL[3]), ports: Some(PortRange::new(20000, 20009)) };
    let t = tcp(ep(sub(1), 5), remote(1, 80));
    n.create(&t, NatAction::Snat(target), SYN, T0).unwrap();
    let o = out(&n, &t);
    assert!(o.addr == POOL[2] || o.addr == POOL[3]);
    assert!((20000..=20009).contains(&o.port));
    let outside_pool = SnatTarget { addrs: (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(1, 1, 1, 9)), ports: None };
    let e = n.create(&tcp(ep(sub(1), 6), remote(1, 80)), NatAction::Snat(outside_pool), SYN, T0);
    assert_eq!(e, Err(CreateError::PortsExhausted));

    let plain = udp(ep(sub(3), 53), remote(1, 53));
    let id = n.create(&plain, NatAction::NoNat, 0, T0).unwrap();
    let s = n.session(id).unwrap();
    assert_eq!((s.kind(), s.outside()), (SessionKind::Identity, ep(sub(3), 53)));
    assert!(matches!(n.lookup_out2in(&plain.reversed()), Out2In::Session(_)));
    assert_eq!(n.subscriber(sub(3)).unwrap().sessions, 1);
    assert!(n.session(id).unwrap().csum_deltas().iter().all(|d| d.is_zero()));
    let d = [Delta::new().replace16(1, 2), Delta::new().replace16(3, 4)];
    n.set_csum_deltas(id, d);
    assert_eq!(n.session(id).unwrap().csum_deltas(), d);
}

#[test]
fn listing_pages_through_every_session_once() {
    let mut n = nat();
    let mut ids = HashSet::new();
    for i in 0..300u16 {
        let id = masq(&mut n, &udp(ep(sub((i % 7) as u8), 1000 + i), remote(1, 53)), T0).unwrap();
        ids.insert(id);
    }
    // Punch holes.
    for &id in ids.iter().take(50) {
        n.remove(id, T0).unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = Some(0);
    let mut page = Vec::new();
    while let Some(c) = cursor {
        page.clear();
        cursor = n.sessions_after(c, 32, T0, &mut page);
        assert!(page.len() <= 32);
        seen.extend(page.iter().map(|s| s.id));
    }
    assert_eq!(seen.len(), 250);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);
}

#[test]
fn flush_frees_everything_in_bounded_steps() {
    let mut n = nat();
    for i in 0..200u16 {
        masq(&mut n, &tcp(ep(sub((i % 5) as u8), 1000 + i), remote(1, 80)), T0).unwrap();
    }
    let mut removed = 0;
    while n.count() > 0 {
        let k = n.flush(T0, 64, |_| {});
        assert!(k <= 64);
        removed += k;
    }
    assert_eq!(removed, 200);
    assert_eq!((n.mapping_count(), n.subscriber_count()), (0, 0));
    assert_eq!(n.ports_held(), 200, "freed ports are quarantined");
    assert_eq!(n.counters().sessions_removed, 200);
}

#[test]
fn no_allocation_after_construction() {
    // Every table is a boxed slice: it cannot grow. Check sizes and addresses stay put
    // through a heavy mixed workload.
    let mut c = cfg(&POOL, 0, 2);
    c.max_sessions = 256;
    c.filtering = Filtering::AddressDependent;
    let mut n = nat_with(c);
    let before = n.memory();
    let session_slab = n.sessions.slab_mut().as_ptr();
    let mut now = T0;
    for round in 0..20u16 {
        for i in 0..300u16 {
            let t = udp(ep(sub((i % 13) as u8), 2000 + i), remote((i % 5) as u8, 53 + round));
            if let Ok(id) = masq(&mut n, &t, now) {
                n.refresh(id, Dir::Out2In, 0, RefreshMode::Default, now);
            }
            let k = FragKey { src: t.src.addr, dst: t.dst.addr, proto: 17, id: i };
            let _ = n.fragments().first_fragment(&k, FragInfo { src_port: 1, dst_port: 2, verdict: 0 }, now);
            let _ = n.fragments().later_fragment(&k, now);
        }
        now = now + Duration::from_secs(200);
        n.expire(now, usize::MAX, |_| {});
    }
    assert_eq!(n.memory(), before);
    assert_eq!(n.sessions.slab_mut().as_ptr(), session_slab);
    let per = before.per_session_tables();
    assert!(per <= 128.0, "session + mapping + filter tables: {per} B per session");
}

#[test]
fn byte_budget_per_session() {
    let mut c = cfg(&POOL, 0, 1);
    c.max_sessions = 1 << 16;
    let m = nat_with(c.clone()).memory();
    let per = m.per_session_tables();
    // 48 + 20 (session, index at 0.8) + 16 + 17.8 (mapping, index at 0.9).
    assert!((101.0..=102.5).contains(&per), "EIF: {per} B per session");
    // Subscribers: max_sessions / 4 of them, 28 B at load 0.9: 7.8 B per session.
    let subs = m.subscribers as f64 / f64::from(m.max_sessions);
    assert!((7.5..=8.0).contains(&subs), "subscribers: {subs} B per session");
    c.filtering = Filtering::AddressDependent;
    let per = nat_with(c).memory().per_session_tables();
    assert!((121.0..=122.5).contains(&per), "ADF: {per} B per session");
}

// ----- model-based property test -----

#[derive(Clone, Debug)]
enum Op {
    /// Outbound packet: subscriber, source port, remote, remote port, proto code.
    Out(u8, u16, u8, u16, u8),
    /// Inbound packet from a remote to the outside endpoint of the k-th live session.
    In(usize, u8, u16),
    /// Advance time (seconds).
    Tick(u16),
    /// Remove the k-th live session.
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..6, 0u16..6, 0u8..3, 0u16..3, 0u8..3).prop_map(|(a, b, c, d, e)| Op::Out(a, b, c, d, e)),
        2 => (0usize..64, 0u8..4, 0u16..3).prop_map(|(k, r, p)| Op::In(k, r, p)),
        2 => prop_oneof![0u16..5, 0u16..100, 0u16..400].prop_map(Op::Tick),
        1 => (0usize..64).prop_map(Op::Remove),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Random traffic, time and removals against a model of the live sessions: both
    /// keys always find live sessions, expiry fires exactly at the model's deadlines,
    /// mappings are endpoint-independent and owned ports, and all accounting returns
    /// to zero at the end.
    #[test]
    fn nat_matches_model(ops in prop::collection::vec(op(), 1..150), filtering in 0u8..3, seed in any::<u64>()) {
        let mut c = cfg(&POOL[..2], 1, 2);
        c.max_sessions = 24;
        c.ports_per_subscriber = 4;
        c.seed = seed;
        c.port_range = (1024, 1100);
        c.filtering = [Filtering::EndpointIndependent, Filtering::AddressDependent, Filtering::AddressPortDependent][filtering as usize];
        let mut n = nat_with(c);
        let part = *n.partition();
        let mut now = T0;
        // id -> (inside tuple as sent from inside, deadline ms)
        let mut model: HashMap<SessionId, (Tuple, u64)> = HashMap::new();
        for op in ops {
            match op {
                Op::Out(s, sp, r, rp, pc) => {
                    let proto = Proto::ALL[pc as usize];
                    let t = Tuple::new(ep(sub(s), 1020 + sp), remote(r, 80 + rp), proto);
                    let canon = Tuple::new(t.src, Endpoint::new(t.dst.addr, proto.remote_port(t.dst.port)), proto);
                    let id = match n.lookup_in2out(&t) {
                        Some(s) => s.id,
                        None => match n.create(&t, NatAction::Masquerade, SYN, now) {
                            Ok(id) => {
                                let s = n.session(id).unwrap();
                                prop_assert_eq!(part.owner_of(s.outside().port), Some(1));
                                prop_assert_eq!(s.outside().port < 1024, t.src.port < 1024);
                                model.insert(id, (canon, s.expires_ms()));
                                id
                            }
                            Err(_) => continue,
                        },
                    };
                    let r = n.refresh(id, Dir::In2Out, ACK, RefreshMode::Default, now);
                    model.get_mut(&id).unwrap().1 = r.expires.as_millis();
                }
                Op::In(k, r, rp) => {
                    if model.is_empty() { continue; }
                    let mut ids: Vec<_> = model.keys().copied().collect();
                    ids.sort();
                    let id = ids[k % ids.len()];
                    let o = n.session(id).unwrap().outside();
                    let proto = model[&id].0.proto;
                    let t = Tuple::new(remote(r, 80 + rp), o, proto);
                    match n.lookup_out2in(&t) {
                        Out2In::Session(s) => {
                            let sid = s.id;
                            let r = n.refresh(sid, Dir::Out2In, ACK, RefreshMode::Default, now);
                            model.get_mut(&sid).unwrap().1 = r.expires.as_millis();
                        }
                        Out2In::Mapping(m) => {
                            if let Ok(new) = n.create(&t, NatAction::Inbound(m.id), SYN, now) {
                                let s = n.session(new).unwrap();
                                let inside_t = Tuple::new(s.inside(), s.remote(), proto);
                                model.insert(new, (inside_t, s.expires_ms()));
                            }
                        }
                        Out2In::Filtered(_) => {}
                        Out2In::Miss => prop_assert!(false, "a live session's outside endpoint has a mapping"),
                    }
                }
                Op::Tick(dt) => {
                    now = now + Duration::from_secs(u64::from(dt));
                    let mut gone = HashSet::new();
                    n.expire(now, usize::MAX, |i| { gone.insert(i.id); });
                    let due: HashSet<_> = model.iter().filter(|(_, v)| v.1 <= now.as_millis()).map(|(k, _)| *k).collect();
                    prop_assert_eq!(&gone, &due);
                    model.retain(|k, _| !gone.contains(k));
                }
                Op::Remove(k) => {
                    if model.is_empty() { continue; }
                    let mut ids: Vec<_> = model.keys().copied().collect();
                    ids.sort();
                    let id = ids[k % ids.len()];
                    prop_assert!(n.remove(id, now).is_some());
                    model.remove(&id);
                }
            }
            prop_assert_eq!(n.count() as usize, model.len());
            let mut mappings: HashMap<(Endpoint, Proto), Endpoint> = HashMap::new();
            for (id, (t, _)) in &model {
                let s = n.lookup_in2out(t).expect("inside key finds a live session");
                prop_assert_eq!(s.id, *id);
                let back = Tuple::new(s.remote(), s.outside(), t.proto);
                prop_assert!(matches!(n.lookup_out2in(&back), Out2In::Session(r) if r.id == *id));
                let prev = mappings.insert((s.inside(), t.proto), s.outside());
                prop_assert!(prev.is_none() || prev == Some(s.outside()), "endpoint-independent");
            }
            prop_assert_eq!(n.mapping_count() as usize, mappings.len());
            let subs: HashSet<_> = model.values().map(|(t, _)| t.src.addr).collect();
            prop_assert_eq!(n.subscriber_count(), subs.len());
            for a in subs {
                let s = n.subscriber(a).unwrap();
                let ports = mappings.keys().filter(|(e, _)| e.addr == a).count();
                prop_assert_eq!(s.ports as usize, ports);
                prop_assert!(s.ports <= 4);
                let paired: HashSet<_> = mappings.iter().filter(|((e, _), _)| e.addr == a).map(|(_, o)| o.addr).collect();
                prop_assert_eq!(paired.len(), 1, "paired pooling");
            }
        }
        while n.count() > 0 {
            n.flush(now, 7, |_| {});
        }
        prop_assert_eq!((n.mapping_count(), n.subscriber_count()), (0, 0));
        prop_assert_eq!(n.wheel.len(), 0);
    }
}

/// Per (address, protocol) in-use counts follow mappings: up on a new mapping, not on
/// a second session of the same mapping, down when the last session expires; pages
/// of the report fill only the spare room of the caller's buffer.
#[test]
fn port_usage_counts_mappings_per_address_and_protocol() {
    let mut n = nat_with(cfg(&POOL, 1, 2));
    let usage = |n: &WorkerNat| {
        let mut all = Vec::new();
        let mut from = Some(0);
        while let Some(f) = from {
            let mut page = Vec::with_capacity(3);
            from = n.port_usage(f, &mut page);
            assert!(page.len() <= 3);
            all.extend(page);
        }
        all
    };
    let u = usage(&n);
    assert_eq!(u.len(), POOL.len());
    let own = n.partition().slice(1, true).len() + n.partition().slice(1, false).len();
    assert!(u.iter().all(|p| p.capacity == own && p.in_use == [0; 3]));
    let mut by_addr = HashMap::new();
    for i in 0..20u8 {
        let t = udp(ep(sub(i + 1), 40000), remote(1, 53));
        masq(&mut n, &t, T0).unwrap();
        // A second remote shares the mapping (EIM): no new port.
        masq(&mut n, &udp(ep(sub(i + 1), 40000), remote(2, 53)), T0).unwrap();
        *by_addr.entry(out(&n, &t).addr).or_insert(0u32) += 1;
    }
    masq(&mut n, &tcp(ep(sub(1), 5555), remote(1, 443)), T0).unwrap();
    let u = usage(&n);
    let udp_total: u32 = u.iter().map(|p| p.in_use[Proto::Udp.code()]).sum();
    let tcp_total: u32 = u.iter().map(|p| p.in_use[Proto::Tcp.code()]).sum();
    assert_eq!((udp_total, tcp_total), (20, 1));
    for p in &u {
        assert_eq!(p.in_use[Proto::Udp.code()], by_addr.get(&p.addr).copied().unwrap_or(0), "{}", p.addr);
    }
    assert_eq!(n.mapping_count(), 21);
    expire_all(&mut n, secs(100_000));
    assert!(usage(&n).iter().all(|p| p.in_use == [0; 3]), "freed ports are not in use (quarantine aside)");
}

/// An address-only flow (GRE, ESP, ...) from `host` to remote `r`: the protocol number
/// in both ports, as classify gives it.
fn addr_only(proto: Proto, host: Ipv4Addr, r: Ipv4Addr) -> Tuple {
    let port = proto.addr_only_port().expect("an address-only protocol");
    Tuple::new(ep(host, port), ep(r, port), proto)
}

#[test]
fn address_only_flows_take_one_pool_address_per_remote_and_protocol() {
    let mut n = nat();
    let server = Ipv4Addr::new(203, 0, 113, 9);
    // Four hosts to one remote over GRE: each takes another pool address, no port.
    let mut taken = HashSet::new();
    for h in 1..=4 {
        let t = addr_only(Proto::GRE, sub(h), server);
        let id = masq(&mut n, &t, T0).unwrap();
        let s = n.session(id).unwrap();
        assert_eq!((s.kind(), s.mapping, s.proto()), (SessionKind::SourceNat, table::NIL, Proto::GRE));
        assert_eq!((s.outside().port, s.remote()), (47, ep(server, 47)));
        assert!(POOL.contains(&s.outside().addr));
        assert!(taken.insert(s.outside().addr), "{} reused", s.outside().addr);
        // The remote's answer finds it by (external address, remote, protocol).
        let back = Tuple::new(ep(server, 47), s.outside(), Proto::GRE);
        assert!(matches!(n.lookup_out2in(&back), Out2In::Session(r) if r.id == id));
        assert_eq!(n.subscriber(sub(h)).unwrap().sessions, 1);
    }
    assert_eq!(n.mapping_count(), 0, "no mapping, no port");
    // A fifth host: every address carries GRE to this server. Refused, typed, counted.
    let fifth = addr_only(Proto::GRE, sub(5), server);
    assert_eq!(masq(&mut n, &fifth, T0), Err(CreateError::AddressInUse));
    assert_eq!(CreateError::AddressInUse.drop_reason(), crate::stats::DropReason::AddrOnlyInUse);
    assert_eq!(n.counters().create_failed[CreateError::AddressInUse as usize], 1);
    // ... while ESP to the same server, and GRE to another one, are free.
    masq(&mut n, &addr_only(Proto::ESP, sub(5), server), T0).unwrap();
    masq(&mut n, &addr_only(Proto::GRE, sub(5), Ipv4Addr::new(203, 0, 113, 10)), T0).unwrap();
    // The same flow again is not a second session.
    assert_eq!(masq(&mut n, &addr_only(Proto::GRE, sub(1), server), T0), Err(CreateError::TupleInUse));
    assert_eq!(n.counters().created_by_proto[3], 6);
}

#[test]
fn address_only_sessions_keep_the_paired_address_and_the_snat_range() {
    let mut n = nat();
    let server = Ipv4Addr::new(203, 0, 113, 9);
    // A subscriber holding ports: its GRE leaves from its paired address.
    let u = udp(ep(sub(1), 4000), remote(1, 53));
    masq(&mut n, &u, T0).unwrap();
    let paired = out(&n, &u).addr;
    masq(&mut n, &addr_only(Proto::GRE, sub(1), server), T0).unwrap();
    assert_eq!(out(&n, &addr_only(Proto::GRE, sub(1), server)).addr, paired);
    // An SNAT range of two addresses: two hosts, then none.
    let target = SnatTarget { addrs: (POOL[2], POOL[3]), ports: None };
    let mut got = Vec::new();
    for h in 2..=3 {
        let t = addr_only(Proto::ESP, sub(h), server);
        n.create(&t, NatAction::Snat(target), 0, T0).unwrap();
        got.push(out(&n, &t).addr);
    }
    got.sort();
    assert_eq!(got, vec![POOL[2], POOL[3]]);
    let e = n.create(&addr_only(Proto::ESP, sub(4), server), NatAction::Snat(target), 0, T0);
    assert_eq!(e, Err(CreateError::AddressInUse));
}

#[test]
fn address_only_sessions_expire_on_the_other_timeout_and_list_without_ports() {
    let mut n = nat();
    let server = Ipv4Addr::new(203, 0, 113, 9);
    let t = addr_only(Proto::GRE, sub(1), server);
    let id = masq(&mut n, &t, T0).unwrap();
    let mut list = Vec::new();
    n.sessions_after(0, 10, secs(1), &mut list);
    assert_eq!(list.len(), 1);
    let i = list[0];
    assert_eq!((i.proto, i.inside, i.remote, i.outside.port), (Proto::GRE, ep(sub(1), 0), ep(server, 0), 0));
    assert_eq!((i.state, i.expires_in), (ConnState::Unreplied, Duration::from_secs(599)));
    // A reply marks it replied (not refreshing: it was not established); the next
    // packet out refreshes it.
    let r = n.refresh(id, Dir::Out2In, 0, RefreshMode::Default, secs(50));
    assert_eq!((r.state, r.refreshed), (ConnState::Replied, false));
    assert!(n.refresh(id, Dir::In2Out, 0, RefreshMode::Default, secs(100)).refreshed);
    assert!(expire_all(&mut n, secs(699)).is_empty());
    let gone = expire_all(&mut n, secs(700));
    assert_eq!((gone.len(), gone[0].proto), (1, Proto::GRE));
    assert_eq!((n.count(), n.subscriber(sub(1))), (0, None));
    assert_eq!(n.counters().ended_by_proto[3], 1);
    // The address is free for another host now.
    masq(&mut n, &addr_only(Proto::GRE, sub(2), server), secs(701)).unwrap();
}
