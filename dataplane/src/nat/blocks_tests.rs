//! Port block allocation in the NAT core: which ports a subscriber's mappings get, when
//! blocks are allocated and released (and logged), limits, exhaustion, several workers,
//! and the log volume per 1 000 sessions with and without blocks.

use super::blocks::BlockQuery;
use super::events_tests::{events, kinds, sub, udp};
use super::tcp::SYN;
use super::*;
use crate::logging::ipfix::IpfixEncoder;
use crate::logging::{ring, EventKind, EventMask, LogDrain, QuotaKind};
use crate::time::{Duration, Instant};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

const POOL: [Ipv4Addr; 2] = [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)];
const T0: Instant = Instant::from_secs(1000);
const HOLD: Duration = Duration::from_secs(120);

fn config(tune: impl FnOnce(&mut NatConfig)) -> NatConfig {
    let mut c = NatConfig::new(POOL.to_vec(), 0, 1);
    c.max_sessions = 4096;
    c.seed = 11;
    c.port_block_size = 64;
    c.port_blocks_per_subscriber = 8;
    tune(&mut c);
    c
}

fn nat(mask: EventMask, tune: impl FnOnce(&mut NatConfig)) -> (WorkerNat, LogDrain) {
    let mut n = WorkerNat::new(config(tune), Arc::new(Timeouts::default())).unwrap();
    let (sink, drain) = ring(1 << 16, 0, mask);
    n.set_log(sink);
    (n, drain)
}

fn blocks_of(n: &WorkerNat, s: Ipv4Addr, now: Instant) -> Vec<BlockInfo> {
    let mut out = Vec::with_capacity(64);
    assert_eq!(n.blocks_matching(BlockQuery::Subscriber(s), 0, now, &mut out), None);
    out
}

fn outside(n: &WorkerNat, id: SessionId) -> Endpoint {
    n.session(id).unwrap().outside()
}

#[test]
fn a_subscribers_first_mapping_takes_a_block_and_later_ones_share_it() {
    let (mut n, mut d) = nat(EventMask::BLOCKS, |_| {});
    let a = n.create(&udp(2, 5000, 1), NatAction::Masquerade, 0, T0).unwrap();
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::BlockAllocate], "the block, no session record");
    let e = v[0];
    let ext = outside(&n, a);
    assert_eq!((e.inside().addr, e.outside().addr, e.block, e.time_ms), (sub(2), ext.addr, 64, T0.as_millis()));
    let range = PortRange::new(e.outside_port, e.block_end());
    assert!(range.contains(ext.port), "{ext:?} in {range:?}");
    assert_eq!((u32::from(range.lo) - 1024) % 64, 0, "blocks are aligned on the worker's slice");
    // 63 more mappings fill the block without a record; the 65th opens a second block
    // on the same address (paired pooling).
    for sp in 1..64 {
        let id = n.create(&udp(2, 5000 + sp, 1), NatAction::Masquerade, 0, T0).unwrap();
        let o = outside(&n, id);
        assert!(o.addr == ext.addr && range.contains(o.port), "{o:?}");
    }
    assert!(events(&mut d).is_empty());
    let id = n.create(&udp(2, 6000, 1), NatAction::Masquerade, 0, T0).unwrap();
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::BlockAllocate]);
    assert_eq!(v[0].outside().addr, ext.addr);
    assert!(!range.contains(outside(&n, id).port));
    assert_eq!(n.block_count(), 2);
    let held = blocks_of(&n, sub(2), T0 + Duration::from_secs(5));
    assert_eq!(held.len(), 2);
    assert_eq!(held[0].ports.lo, v[0].outside_port, "newest first");
    assert_eq!((held[1].ports, held[1].mappings, held[1].held), (range, 64, Duration::from_secs(5)));
    // A session on an existing mapping (another remote) takes no port at all.
    n.create(&udp(2, 5000, 2), NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(n.subscriber(sub(2)).unwrap().ports, 65);
    assert!(events(&mut d).is_empty());
}

#[test]
fn the_source_port_is_kept_when_it_lies_in_the_subscribers_block() {
    let (mut n, _d) = nat(EventMask::BLOCKS, |_| {});
    let a = n.create(&udp(2, 7, 1), NatAction::Masquerade, 0, T0).unwrap();
    let block = blocks_of(&n, sub(2), T0)[0].ports;
    assert!(block.lo >= 1024, "below 1024 too, a port of the block: {:?}", outside(&n, a));
    for want in [block.hi, block.lo + 3] {
        let id = n.create(&udp(2, want, 1), NatAction::Masquerade, 0, T0).unwrap();
        assert_eq!(outside(&n, id).port, want);
    }
    // Taken already: another free port of the block.
    let id = n.create(&udp(3, block.hi, 1), NatAction::Masquerade, 0, T0).unwrap();
    assert_ne!(blocks_of(&n, sub(3), T0)[0].ports, block, "another subscriber, another block");
    assert!(!block.contains(outside(&n, id).port));
}

#[test]
fn tcp_udp_and_icmp_share_a_block() {
    let (mut n, mut d) = nat(EventMask::BLOCKS, |_| {});
    let u = n.create(&udp(2, 5000, 1), NatAction::Masquerade, 0, T0).unwrap();
    let port = outside(&n, u).port;
    let t = Tuple::new(Endpoint::new(sub(2), port), Endpoint::new(Ipv4Addr::new(198, 51, 100, 1), 80), Proto::Tcp);
    let tcp = n.create(&t, NatAction::Masquerade, SYN, T0).unwrap();
    assert_eq!(outside(&n, tcp).port, port, "the same port number, another protocol");
    let icmp = Tuple::new(Endpoint::new(sub(2), 77), Endpoint::new(Ipv4Addr::new(198, 51, 100, 1), 77), Proto::Icmp);
    let i = n.create(&icmp, NatAction::Masquerade, 0, T0).unwrap();
    assert!(blocks_of(&n, sub(2), T0)[0].ports.contains(outside(&n, i).port));
    assert_eq!(kinds(&events(&mut d)), vec![EventKind::BlockAllocate]);
    assert_eq!(n.block_count(), 1);
}

#[test]
fn a_block_is_released_a_hold_after_its_last_session_and_logged() {
    let (mut n, mut d) = nat(EventMask::BLOCKS, |_| {});
    for sp in 0..3 {
        n.create(&udp(2, 5000 + sp, 1), NatAction::Masquerade, 0, T0).unwrap();
    }
    let alloc = events(&mut d)[0];
    // UDP 300 s: the sessions expire, the block turns idle and stays the subscriber's.
    let end = T0 + Duration::from_secs(301);
    assert_eq!(n.expire(end, usize::MAX, |_| {}), 3);
    assert!(events(&mut d).is_empty(), "no record while the block is held");
    assert_eq!(n.subscriber(sub(2)).unwrap().ports, 0);
    let held = blocks_of(&n, sub(2), end);
    assert_eq!((held[0].mappings, held[0].release_in), (0, Some(HOLD)));
    assert_eq!(n.next_deadline(), Some(end + HOLD));
    // Another subscriber cannot get it meanwhile.
    n.create(&udp(3, 1, 1), NatAction::Masquerade, 0, end).unwrap();
    assert_ne!(blocks_of(&n, sub(3), end)[0].ports.lo, alloc.outside_port);
    assert_eq!(events(&mut d).len(), 1);
    // After the hold: released, logged with the same block, the subscriber gone.
    n.expire(end + Duration::from_millis(HOLD.as_millis() - 1), usize::MAX, |_| {});
    assert!(events(&mut d).is_empty());
    n.expire(end + HOLD, usize::MAX, |_| {});
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::BlockRelease]);
    let r = v[0];
    assert_eq!((r.inside(), r.outside(), r.block), (alloc.inside(), alloc.outside(), 64));
    assert_eq!(r.time_ms, (end + HOLD).as_millis());
    assert_eq!(n.subscriber(sub(2)), None);
    assert_eq!(n.block_count(), 1, "sub 3's");
    assert_eq!(n.block_counters(), BlockCounters { allocated: 2, released: 1 });
}

#[test]
fn an_idle_block_comes_back_to_its_subscriber_without_a_record() {
    let (mut n, mut d) = nat(EventMask::BLOCKS, |_| {});
    n.create(&udp(2, 5000, 1), NatAction::Masquerade, 0, T0).unwrap();
    let block = blocks_of(&n, sub(2), T0)[0].ports;
    let end = T0 + Duration::from_secs(301);
    n.expire(end, usize::MAX, |_| {});
    // Back within the hold: the same block, in use again, no record either way.
    let later = end + Duration::from_secs(60);
    let id = n.create(&udp(2, 9, 1), NatAction::Masquerade, 0, later).unwrap();
    assert!(block.contains(outside(&n, id).port));
    assert_eq!(blocks_of(&n, sub(2), later)[0].release_in, None);
    n.expire(end + HOLD + Duration::from_secs(1), usize::MAX, |_| {});
    assert_eq!(kinds(&events(&mut d)), vec![EventKind::BlockAllocate], "not released: in use");
    assert_eq!(blocks_of(&n, sub(2), later)[0].held, Duration::from_secs(361), "held since the allocation");
    // Flushed: idle again, released a hold later.
    while n.count() > 0 {
        n.flush(later, 64, |_| {});
    }
    n.expire(later + HOLD, usize::MAX, |_| {});
    assert_eq!(kinds(&events(&mut d)), vec![EventKind::BlockRelease]);
}

#[test]
fn out_of_blocks_and_ports_is_a_quota_refusal() {
    let (mut n, mut d) = nat(EventMask::BLOCKS, |c| {
        c.port_block_size = 4;
        c.port_blocks_per_subscriber = 2;
    });
    for sp in 0..8 {
        n.create(&udp(2, 5000 + sp, 1), NatAction::Masquerade, 0, T0).unwrap();
    }
    assert_eq!(n.create(&udp(2, 6000, 1), NatAction::Masquerade, 0, T0), Err(CreateError::SubscriberLimit));
    assert_eq!(CreateError::SubscriberLimit.drop_reason(), crate::stats::DropReason::SubscriberLimit);
    let v = events(&mut d);
    assert_eq!(kinds(&v), vec![EventKind::BlockAllocate, EventKind::BlockAllocate, EventKind::QuotaExceeded]);
    assert_eq!((v[2].quota, v[2].limit, v[2].inside().addr), (QuotaKind::MaxEntriesPerUser, 8, sub(2)));
    assert_eq!(n.counters().create_failed[CreateError::SubscriberLimit as usize], 1);
    // A port of its blocks freed: usable again, no new block.
    let mut all = Vec::new();
    n.sessions_after(0, 64, T0, &mut all);
    let victim = all.iter().find(|s| s.inside.port == 5003).unwrap().id;
    n.remove(victim, T0);
    assert!(n.create(&udp(2, 6000, 1), NatAction::Masquerade, 0, T0).is_ok());
    assert_eq!(n.block_count(), 2);

    // ports_per_subscriber binds first when it is lower.
    let (mut n, mut d) = nat(EventMask::BLOCKS, |c| c.ports_per_subscriber = 5);
    for sp in 0..5 {
        n.create(&udp(2, 5000 + sp, 1), NatAction::Masquerade, 0, T0).unwrap();
    }
    assert_eq!(n.create(&udp(2, 6000, 1), NatAction::Masquerade, 0, T0), Err(CreateError::SubscriberLimit));
    let q = *events(&mut d).last().unwrap();
    assert_eq!((q.quota, q.limit), (QuotaKind::MaxEntriesPerUser, 5));
}

#[test]
fn exhausted_addresses_refuse_with_alerts() {
    // One address, ports 1024-1151: two blocks of 64.
    let (mut n, mut d) = nat(EventMask::BLOCKS, |c| {
        c.external_addrs = vec![POOL[0]];
        c.port_range = (1024, 1151);
    });
    n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    n.create(&udp(3, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    for sp in 2..65 {
        n.create(&udp(2, sp, 1), NatAction::Masquerade, 0, T0).unwrap();
    }
    // Subscriber 2 needs a second block on its address: none left.
    assert_eq!(n.create(&udp(2, 100, 1), NatAction::Masquerade, 0, T0), Err(CreateError::PortsExhausted));
    // A newcomer finds no block anywhere.
    assert_eq!(n.create(&udp(4, 100, 1), NatAction::Masquerade, 0, T0), Err(CreateError::PortsExhausted));
    let v = events(&mut d);
    assert_eq!(
        kinds(&v),
        vec![
            EventKind::BlockAllocate,
            EventKind::BlockAllocate,
            EventKind::PortsExhausted,
            EventKind::AddressesExhausted
        ]
    );
    assert_eq!((v[2].inside().addr, v[2].outside().addr), (sub(2), POOL[0]));
    // Subscriber 3's block still serves subscriber 3.
    assert!(n.create(&udp(3, 2, 1), NatAction::Masquerade, 0, T0).is_ok());
}

#[test]
fn snat_port_ranges_and_addresses_choose_the_block() {
    let (mut n, mut d) = nat(EventMask::BLOCKS, |_| {});
    let to = |a: Ipv4Addr, ports: Option<PortRange>| NatAction::Snat(SnatTarget { addrs: (a, a), ports });
    let r = PortRange::new(20000, 20099);
    let a = n.create(&udp(2, 1, 1), to(POOL[1], Some(r)), 0, T0).unwrap();
    let o = outside(&n, a);
    assert!(o.addr == POOL[1] && r.contains(o.port), "{o:?}");
    for sp in 2..40 {
        let id = n.create(&udp(2, sp, 1), to(POOL[1], Some(r)), 0, T0).unwrap();
        assert!(r.contains(outside(&n, id).port));
    }
    // A rule to the other address: a block there (the rule wins over pairing).
    let b = n.create(&udp(2, 50, 1), to(POOL[0], None), 0, T0).unwrap();
    assert_eq!(outside(&n, b).addr, POOL[0]);
    assert!(kinds(&events(&mut d)).iter().all(|k| *k == EventKind::BlockAllocate));
    assert!(blocks_of(&n, sub(2), T0).iter().all(|b| b.outside == POOL[0] || b.ports.lo <= r.hi && r.lo <= b.ports.hi));
    // Privileged ports are not in any block.
    assert_eq!(
        n.create(&udp(3, 1, 1), to(POOL[0], Some(PortRange::new(100, 200))), 0, T0),
        Err(CreateError::PortsExhausted)
    );
}

#[test]
fn blocks_stay_in_the_workers_slice() {
    let mut c = config(|c| c.port_block_size = 100);
    c.worker_index = 1;
    c.worker_count = 3;
    let mut n = WorkerNat::new(c, Arc::new(Timeouts::default())).unwrap();
    let part = *n.partition();
    for s in 0..50 {
        for sp in 0..3 {
            n.create(&udp(s, 4000 + sp, 1), NatAction::Masquerade, 0, T0).unwrap();
        }
        for b in blocks_of(&n, sub(s), T0) {
            assert_eq!(b.ports.len(), 100);
            assert_eq!((part.owner_of(b.ports.lo), part.owner_of(b.ports.hi)), (Some(1), Some(1)), "{b:?}");
        }
    }
}

#[test]
fn lookups_by_outside_port_and_address() {
    let (mut n, _d) = nat(EventMask::BLOCKS, |_| {});
    let a = n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    let o = outside(&n, a);
    n.create(&udp(3, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    let now = T0 + Duration::from_secs(9);
    let b2 = blocks_of(&n, sub(2), now)[0];
    for p in [b2.ports.lo, b2.ports.hi, o.port] {
        let mut out = Vec::with_capacity(4);
        assert_eq!(n.blocks_matching(BlockQuery::Outside(o.addr, Some(p)), 0, now, &mut out), None);
        assert_eq!(out, vec![b2], "port {p}");
    }
    let mut out = Vec::with_capacity(4);
    n.blocks_matching(BlockQuery::Outside(o.addr, Some(b2.ports.hi + 1)), 0, now, &mut out);
    assert!(out.iter().all(|b| b.subscriber != sub(2)));
    // Every block of an address, in steps as small as the buffer.
    let on_addr: Vec<Ipv4Addr> = POOL.iter().filter(|a| **a == o.addr).copied().collect();
    let mut all = Vec::new();
    let mut from = Some(0);
    while let Some(f) = from {
        let mut out = Vec::with_capacity(1);
        from = n.blocks_matching(BlockQuery::Outside(on_addr[0], None), f, now, &mut out);
        all.extend(out);
    }
    let expect = [2u8, 3].iter().filter(|s| blocks_of(&n, sub(**s), now)[0].outside == o.addr).count();
    assert_eq!(all.len(), expect);
    assert!(all.contains(&b2));
    // Not a pool address, or no port blocks: nothing.
    let mut out = Vec::with_capacity(4);
    assert_eq!(n.blocks_matching(BlockQuery::Outside(Ipv4Addr::new(9, 9, 9, 9), None), 0, now, &mut out), None);
    let plain = WorkerNat::new(config(|c| c.port_block_size = 0), Arc::new(Timeouts::default())).unwrap();
    assert_eq!(plain.blocks_matching(BlockQuery::Subscriber(sub(2)), 0, now, &mut out), None);
    assert!(out.is_empty());
    assert_eq!(plain.port_blocks(), None);
    assert_eq!(n.port_blocks(), Some((64, 8)));
}

#[test]
fn sessions_and_blocks_both_when_asked() {
    let (mut n, mut d) = nat(EventMask::BLOCKS.union(EventMask::SESSIONS), |_| {});
    n.create(&udp(2, 1, 1), NatAction::Masquerade, 0, T0).unwrap();
    n.create(&udp(2, 2, 1), NatAction::Masquerade, 0, T0).unwrap();
    assert_eq!(
        kinds(&events(&mut d)),
        vec![EventKind::BlockAllocate, EventKind::SessionCreate, EventKind::SessionCreate]
    );
    n.expire(T0 + Duration::from_secs(301), usize::MAX, |_| {});
    n.expire(T0 + Duration::from_secs(301) + HOLD, usize::MAX, |_| {});
    assert_eq!(
        kinds(&events(&mut d)),
        vec![EventKind::SessionDelete, EventKind::SessionDelete, EventKind::BlockRelease]
    );
}

#[test]
fn bad_block_configurations_are_refused() {
    let t = Arc::new(Timeouts::default());
    let mut c = config(|c| c.port_block_size = 64_513);
    assert_eq!(
        WorkerNat::new(c.clone(), t.clone()).err(),
        Some(ConfigError::PortBlockSize { size: 64_513, slice: 64_512 })
    );
    c.port_block_size = 32_257;
    c.worker_count = 2;
    assert_eq!(
        WorkerNat::new(c.clone(), t.clone()).err(),
        Some(ConfigError::PortBlockSize { size: 32_257, slice: 32_256 })
    );
    c.port_block_size = 32_256;
    assert!(WorkerNat::new(c.clone(), t.clone()).is_ok(), "one block per worker and address");
    c.port_blocks_per_subscriber = 0;
    assert_eq!(WorkerNat::new(c, t).err(), Some(ConfigError::PortBlocksPerSubscriber));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Whatever subscribers do, every mapping's port lies in a block its subscriber
    /// holds, no subscriber holds more than its blocks, and once everything has expired
    /// and the hold has passed, every block and subscriber is gone — each allocation
    /// record matched by a release of the same block.
    #[test]
    fn mappings_stay_in_their_subscribers_blocks(
        ops in prop::collection::vec((0u8..6, 0u16..40, 0u8..3, 0u8..4), 1..300),
    ) {
        let (mut n, mut d) = nat(EventMask::BLOCKS, |c| {
            c.port_block_size = 8;
            c.port_blocks_per_subscriber = 3;
            c.port_range = (1024, 1024 + 8 * 12 - 1);
        });
        let mut now = T0;
        for (s, sp, r, op) in ops {
            now = now + Duration::from_secs(7);
            if op == 0 {
                n.expire(now, usize::MAX, |_| {});
                continue;
            }
            let _ = n.create(&udp(s, sp, r), NatAction::Masquerade, 0, now);
            let mut all = Vec::new();
            n.sessions_after(0, 4096, now, &mut all);
            for x in &all {
                let held = blocks_of(&n, x.inside.addr, now);
                prop_assert!(held.len() <= 3);
                prop_assert!(held.iter().any(|b| b.outside == x.outside.addr && b.ports.contains(x.outside.port)), "{:?} outside its blocks {:?}", x, held);
            }
        }
        // Every session expires (TCP at most 7440 s), then every block's hold passes.
        let end = now + Duration::from_secs(7441);
        n.expire(end, usize::MAX, |_| {});
        n.expire(end + HOLD, usize::MAX, |_| {});
        prop_assert_eq!((n.count(), n.mapping_count(), n.block_count(), n.subscriber_count()), (0, 0, 0, 0));
        let mut open: HashMap<(u32, u32, u16), u32> = HashMap::new();
        for e in events(&mut d) {
            let key = (e.inside_addr, e.outside_addr, e.outside_port);
            match e.kind {
                EventKind::BlockAllocate => *open.entry(key).or_default() += 1,
                EventKind::BlockRelease => {
                    let c = open.get_mut(&key).expect("a release matches an allocation");
                    *c -= 1;
                }
                _ => {}
            }
        }
        prop_assert!(open.values().all(|c| *c == 0));
    }
}

/// docs/logging.md's figures: IPFIX records and bytes for 1 000 UDP sessions from 10
/// subscribers (100 each, each its own source port), created and expired, per-session
/// logging against port blocks of 64 (and both).
#[test]
fn log_volume_per_1000_sessions_with_and_without_blocks() {
    fn run(mask: EventMask, block: u32) -> (usize, usize, usize) {
        let (mut n, mut d) = nat(mask, |c| c.port_block_size = block);
        for s in 0..10 {
            for sp in 0..100 {
                n.create(&udp(s + 2, 10_000 + sp, 1), NatAction::Masquerade, 0, T0).unwrap();
            }
        }
        n.expire(T0 + Duration::from_secs(301), usize::MAX, |_| {});
        n.expire(T0 + Duration::from_secs(301) + HOLD, usize::MAX, |_| {});
        assert_eq!((n.count(), n.block_count()), (0, 0));
        let mut enc = IpfixEncoder::new(1, 1400, 60_000).unwrap();
        enc.send_templates(0, &mut |_| {});
        let (mut bytes, mut msgs) = (0usize, 0usize);
        let mut out = |m: &[u8]| {
            bytes += m.len();
            msgs += 1;
        };
        let v = events(&mut d);
        // Data messages only: templates were sent before and are not due again at 0.
        for e in &v {
            enc.encode(e, e.time_ms, 0, &mut out);
        }
        enc.flush(0, &mut out);
        (v.len(), bytes, msgs)
    }
    let sessions = run(EventMask::SESSIONS, 0);
    let blocks = run(EventMask::BLOCKS, 64);
    let both = run(EventMask::BLOCKS.union(EventMask::SESSIONS), 64);
    println!("IPFIX for 1000 sessions from 10 subscribers (records, bytes, messages):");
    println!("  per session (events = \"sessions\"):          {sessions:?}");
    println!("  port blocks of 64 (events absent/\"blocks\"):  {blocks:?}");
    println!("  port blocks and sessions (\"sessions\"):      {both:?}");
    assert_eq!(sessions.0, 2000, "a create and a delete per session");
    assert_eq!(blocks.0, 40, "100 ports each: 2 blocks per subscriber, allocated and released");
    assert_eq!(both.0, 2040);
    assert_eq!(blocks.1, 16 + 4 + 40 * 25, "one message: header, set header, 40 records of 25 bytes");
    assert!(sessions.1 > 60 * blocks.1, "{sessions:?} vs {blocks:?}");
}

#[test]
fn a_new_block_whose_ports_are_all_reserved_is_passed_over() {
    // One address, ports 1024-1279: four blocks of 64; the first three reserved for TCP
    // (port forwards, `[host] ports`). Whichever block the random choice lands on, a
    // subscriber's first TCP mapping gets the fourth, and the others stay free.
    for seed in 0..16 {
        let (mut n, mut d) = nat(EventMask::BLOCKS, |c| {
            c.external_addrs = vec![POOL[0]];
            c.port_range = (1024, 1279);
            c.seed = seed;
        });
        for p in 1024..1216 {
            n.reserve_port(Endpoint::new(POOL[0], p), Proto::Tcp).unwrap();
        }
        let t = Tuple::new(Endpoint::new(sub(2), 5000), Endpoint::new(Ipv4Addr::new(198, 51, 100, 1), 80), Proto::Tcp);
        let id = n.create(&t, NatAction::Masquerade, SYN, T0).unwrap_or_else(|e| panic!("seed {seed}: {e:?}"));
        let o = outside(&n, id);
        assert!((1216..=1279).contains(&o.port), "seed {seed}: {o:?}");
        assert_eq!(n.block_count(), 1, "seed {seed}: the passed-over blocks went back");
        assert_eq!(n.block_counters(), BlockCounters { allocated: 1, released: 0 });
        let v = events(&mut d);
        assert_eq!(kinds(&v), vec![EventKind::BlockAllocate]);
        assert_eq!(v[0].outside_port, 1216);
        // UDP is not reserved: another subscriber's UDP mapping may take any of them.
        n.create(&udp(3, 5000, 1), NatAction::Masquerade, 0, T0).unwrap();
        // TCP again: the two blocks left are reserved — refused, nothing held by it.
        let t = Tuple::new(Endpoint::new(sub(4), 5000), Endpoint::new(Ipv4Addr::new(198, 51, 100, 1), 80), Proto::Tcp);
        assert_eq!(n.block_count(), 2);
        assert_eq!(n.create(&t, NatAction::Masquerade, SYN, T0), Err(CreateError::PortsExhausted));
        assert_eq!((n.block_count(), n.block_counters().allocated), (2, 2), "seed {seed}");
    }
}
