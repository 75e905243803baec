//! NAT event logging from the NAT core: which events each operation reports, in which
//! order, with which fields — and that a full ring or a flood of refusals costs the
//! worker nothing but a counter.

use super::tcp::SYN;
use super::*;
use crate::logging::{ring, EventMask, LogDrain};
use crate::logging::{EventKind, NatEvent, QuotaKind};
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;
use std::sync::Arc;

const POOL: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
const T0: Instant = Instant::from_secs(1000);

fn nat_logging(mask: EventMask, tune: impl FnOnce(&mut NatConfig)) -> (WorkerNat, LogDrain) {
    let mut c = NatConfig::new(POOL.to_vec(), 0, 1);
    c.max_sessions = 64;
    c.seed = 7;
    tune(&mut c);
    let mut n = WorkerNat::new(c, Arc::new(Timeouts::default())).unwrap();
    let (sink, drain) = ring(1024, 0, mask);
    n.set_log(sink);
    (n, drain)
}

pub(super) fn events(d: &mut LogDrain) -> Vec<NatEvent> {
    let mut v = Vec::new();
    d.drain(usize::MAX, |e| v.push(*e));
    v
}

pub(super) fn kinds(v: &[NatEvent]) -> Vec<EventKind> {
    v.iter().map(|e| e.kind).collect()
}

pub(super) fn sub(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(100, 64, 0, n)
}

pub(super) fn udp(s: u8, sp: u16, r: u8) -> Tuple {
    Tuple::new(Endpoint::new(sub(s), sp), Endpoint::new(Ipv4Addr::new(198, 51, 100, r), 53), Proto::Udp)
}

#[test]
fn session_create_and_expiry_carry_the_translation() {
    let (mut n, mut d) = nat_logging(EventMask::SESSIONS, |_| {});
    let t = udp(2, 5000, 7);
    let id = n.create(&t, NatAction::Masquerade, 0, T0).unwrap();
    let out = n.session(id).unwrap().outside();
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::SessionCreate]);
    let e = v[0];
    assert_eq!((e.inside(), e.outside(), e.remote()), (t.src, out, t.dst));
    assert_eq!((e.proto, e.time_ms, e.dest_nat), (17, T0.as_millis(), false));
    // Expiry reports the delete at the time it happens.
    let later = T0 + Duration::from_secs(301);
    assert_eq!(n.expire(later, usize::MAX, |_| {}), 1);
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::SessionDelete]);
    assert_eq!((v[0].inside(), v[0].outside(), v[0].time_ms), (t.src, out, later.as_millis()));
    assert_eq!(n.log_counters().events, 2);
}

#[test]
fn flush_and_remove_report_deletes_identity_sessions_nothing() {
    let (mut n, mut d) = nat_logging(EventMask::SESSIONS, |_| {});
    let a = n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    n.create(&udp(3, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    n.create(&udp(4, 1, 1), NatAction::NoNat, 0, T0).unwrap();
    assert_eq!(kinds(&events(&mut d)), vec![EventKind::SessionCreate; 2], "untranslated: not logged");
    n.remove(a, T0);
    assert_eq!(kinds(&events(&mut d)), vec![EventKind::SessionDelete]);
    while n.count() > 0 {
        n.flush(T0, 16, |_| {});
    }
    assert_eq!(kinds(&events(&mut d)), vec![EventKind::SessionDelete]);
}

#[test]
fn port_forward_sessions_are_marked_dest_nat() {
    let (mut n, mut d) = nat_logging(EventMask::SESSIONS, |_| {});
    let client = Endpoint::new(Ipv4Addr::new(198, 51, 100, 9), 40000);
    let t = Tuple::new(client, Endpoint::new(POOL[0], 2222), Proto::Tcp);
    let to = Endpoint::new(sub(2), 22);
    n.create(&t, NatAction::Dnat { to, from_inside: false }, SYN, T0).unwrap();
    let v = events(&mut d);
    assert!(v[0].dest_nat);
    assert_eq!((v[0].inside(), v[0].outside(), v[0].remote()), (to, t.dst, client));
}

#[test]
fn mapping_events_once_per_mapping_in_order() {
    let (mut n, mut d) = nat_logging(EventMask::SESSIONS.union(EventMask::MAPPINGS), |_| {});
    // Two remotes on one inside endpoint: one mapping, two sessions.
    n.create(&udp(2, 5000, 1), NatAction::Masquerade, 0, T0).unwrap();
    n.create(&udp(2, 5000, 2), NatAction::Masquerade, 0, T0).unwrap();
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::MappingCreate, EventKind::SessionCreate, EventKind::SessionCreate]);
    assert_eq!((v[0].inside(), v[0].outside()), (v[1].inside(), v[1].outside()));
    assert_eq!(v[0].outside(), v[2].outside(), "endpoint-independent");
    n.expire(T0 + Duration::from_secs(400), usize::MAX, |_| {});
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::SessionDelete, EventKind::SessionDelete, EventKind::MappingDelete]);

    // Mappings only: no session records at all.
    let (mut n, mut d) = nat_logging(EventMask::MAPPINGS, |_| {});
    for r in 0..5 {
        n.create(&udp(2, 5000, r), NatAction::Masquerade, 0, T0).unwrap();
    }
    assert_eq!(kinds(&events(&mut d)), vec![EventKind::MappingCreate]);
}

#[test]
fn quota_and_exhaustion_alerts() {
    // Per-subscriber port limit.
    let (mut n, mut d) = nat_logging(EventMask::SESSIONS, |c| c.ports_per_subscriber = 1);
    n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(n.create(&udp(2, 2, 1), NatAction::Masquerade, 0, T0), Err(CreateError::SubscriberLimit));
    let v = events(&mut d);
    let q = v.last().unwrap();
    assert_eq!(
        (q.kind, q.quota, q.limit, q.inside().addr),
        (EventKind::QuotaExceeded, QuotaKind::MaxEntriesPerUser, 1, sub(2))
    );

    // Session table full.
    let (mut n, mut d) = nat_logging(EventMask::default(), |c| c.max_sessions = 2);
    n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    n.create(&udp(3, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    assert!(n.create(&udp(4, 1, 1), NatAction::Masquerade, 0, T0).is_err());
    let v = events(&mut d);
    assert_eq!(v.len(), 1, "no session records with an empty mask: {v:?}");
    assert_eq!((v[0].quota, v[0].limit), (QuotaKind::MaxSessions, 2));

    // Ports exhausted on the paired address, then addresses exhausted for a newcomer.
    let (mut n, mut d) = nat_logging(EventMask::default(), |c| c.port_range = (1024, 1025));
    for s in 0..4 {
        n.create(&udp(2 + s, 2000, 1), NatAction::Masquerade, 0, T0).unwrap();
    }
    let paired = n.subscriber(sub(2)).unwrap().ext;
    assert!(n.create(&udp(2, 2001, 1), NatAction::Masquerade, 0, T0).is_err());
    assert!(n.create(&udp(9, 2001, 1), NatAction::Masquerade, 0, T0).is_err());
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::PortsExhausted, EventKind::AddressesExhausted]);
    assert_eq!((v[0].inside().addr, v[0].outside().addr), (sub(2), POOL[usize::from(paired)]));
    assert_eq!(v[1].limit, 2, "both pool addresses tried");
}

#[test]
fn alerts_are_rate_limited_and_a_full_ring_only_counts() {
    let (mut n, mut d) = nat_logging(EventMask::SESSIONS, |c| c.sessions_per_subscriber = 1);
    n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    for r in 0..200 {
        let _ = n.create(&udp(2, 1, 2 + r), NatAction::Masquerade, 0, T0);
    }
    let v = events(&mut d);
    assert_eq!(v.len(), 1 + ALERTS_PER_SECOND as usize);
    assert_eq!(n.log_counters().alerts_suppressed, 200 - u64::from(ALERTS_PER_SECOND));
    // The next second allows alerts again.
    let _ = n.create(&udp(2, 1, 250), NatAction::Masquerade, 0, T0 + Duration::from_secs(1));
    assert_eq!(events(&mut d).len(), 1);

    // A ring of 4 that nobody drains: creation goes on, the overflow is counted.
    let mut c = NatConfig::new(POOL.to_vec(), 0, 1);
    c.max_sessions = 64;
    let mut n = WorkerNat::new(c, Arc::new(Timeouts::default())).unwrap();
    let (sink, mut d) = ring(4, 0, EventMask::SESSIONS);
    n.set_log(sink);
    for s in 0..10 {
        n.create(&udp(s, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    }
    assert_eq!(n.count(), 10);
    assert_eq!(n.log_counters(), LogCounters { events: 4, dropped: 6, alerts_suppressed: 0 });
    assert_eq!(events(&mut d).len(), 4);
}

#[test]
fn without_a_sink_nothing_is_counted() {
    let mut c = NatConfig::new(POOL.to_vec(), 0, 1);
    c.max_sessions = 64;
    let mut n = WorkerNat::new(c, Arc::new(Timeouts::default())).unwrap();
    n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(n.log_counters(), LogCounters::default());
}

/// GRE from `s` to remote `r`: the protocol number in both ports, as classify gives it.
fn gre(s: u8, r: u8) -> Tuple {
    Tuple::new(Endpoint::new(sub(s), 47), Endpoint::new(Ipv4Addr::new(198, 51, 100, r), 47), Proto::GRE)
}

#[test]
fn address_only_sessions_are_logged_whatever_events_says() {
    // No block, mapping or deterministic range covers an external address used without
    // ports: the session record (protocol, remote, ports 0) is logged in every mode.
    let blocks = |c: &mut NatConfig| c.port_block_size = 64;
    for (mask, tune) in [
        (EventMask::BLOCKS, blocks as fn(&mut NatConfig)),
        (EventMask::MAPPINGS, |_: &mut NatConfig| {}),
        (EventMask::SESSIONS, |_: &mut NatConfig| {}),
    ] {
        let (mut n, mut d) = nat_logging(mask, tune);
        let id = n.create(&gre(2, 7), NatAction::Masquerade, 0, T0).unwrap();
        let out = n.session(id).unwrap().outside();
        assert!(POOL.contains(&out.addr));
        // A UDP flow of the same subscriber is logged as `events` says (with blocks: a
        // block allocation, no session record).
        n.create(&udp(2, 5000, 7), NatAction::Masquerade, 0, T0).unwrap();
        let v = events(&mut d);
        let gre_events: Vec<_> = v.iter().filter(|e| e.proto == 47).collect();
        assert_eq!(gre_events.len(), 1, "{mask:?}: {v:?}");
        let e = gre_events[0];
        assert_eq!(e.kind, EventKind::SessionCreate, "{mask:?}");
        // Logged without ports (the protocol number the NAT keys them by is not a port).
        let no_port = |e: Endpoint| Endpoint::new(e.addr, 0);
        assert_eq!(
            (e.inside(), e.outside(), e.remote()),
            (no_port(gre(2, 7).src), no_port(out), no_port(gre(2, 7).dst))
        );
        let udp_kinds: Vec<_> = v.iter().filter(|e| e.proto != 47).map(|e| e.kind).collect();
        let expected = match mask {
            EventMask::BLOCKS => vec![EventKind::BlockAllocate],
            EventMask::MAPPINGS => vec![EventKind::MappingCreate],
            _ => vec![EventKind::SessionCreate],
        };
        assert_eq!(udp_kinds, expected, "{mask:?}");
        // Its delete too, at expiry ([timeouts] other: 600 s).
        n.expire(T0 + Duration::from_secs(700), usize::MAX, |_| {});
        let v = events(&mut d);
        let deleted: Vec<_> = v.iter().filter(|e| e.proto == 47).map(|e| (e.kind, e.outside().addr)).collect();
        assert_eq!(deleted, vec![(EventKind::SessionDelete, out.addr)], "{mask:?}: {v:?}");
    }
}
