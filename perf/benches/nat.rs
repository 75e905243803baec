//! Criterion microbenchmarks of the NAT core's hot operations, through the dataplane
//! crate's public API (no DPDK): parse, lookup, translate, allocate, expire.
//!
//! `cargo bench -p perf --no-default-features --bench nat` (add `-- --quick` for a
//! short run). Frames come from `perf::flows`, the generator masq-bench uses.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant as StdInstant};

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use dataplane::nat::{classify, fastpath, Dir, Endpoint, NatAction, NatConfig, Proto, Timeouts, Tuple, WorkerNat};
use dataplane::packet::{EthernetFrame, Ipv4Packet, UdpPacket};
use dataplane::time::Instant;
use perf::flows::{FlowSpace, FrameWriter, L4};
use perf::natops::{self, Scenario};

const EXT: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);

fn nat(max_sessions: u32) -> WorkerNat {
    let mut c = NatConfig::new(vec![EXT], 0, 1);
    c.max_sessions = max_sessions;
    WorkerNat::new(c, Arc::new(Timeouts::default())).expect("bench NAT config")
}

fn tuple(space: &FlowSpace, g: u64) -> Tuple {
    let (src, sport, dport) = space.flow(g);
    Tuple::new(Endpoint::new(Ipv4Addr::from(src), sport), Endpoint::new(SERVER, dport), Proto::Udp)
}

/// A NAT holding every flow of `space` (MASQUERADE, as masqd creates them).
fn populated(space: &FlowSpace) -> WorkerNat {
    let mut n = nat(space.len() as u32);
    for g in 0..space.len() {
        dataplane::nat::slowpath::create(&mut n, &tuple(space, g), NatAction::Masquerade, 0, Instant::ZERO)
            .expect("table sized for the flow space");
    }
    n
}

fn space(sessions: u64) -> FlowSpace {
    let subs = (sessions / 100).clamp(1, 1000) as u32;
    FlowSpace::new(subs, sessions / u64::from(subs), (32_000 / subs).max(1)).expect("flow space")
}

fn frame(l4: L4, g: u64, space: &FlowSpace) -> Vec<u8> {
    let w = FrameWriter::new(l4, 64, [2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], SERVER).unwrap();
    let mut buf = vec![0u8; w.len()];
    w.write(&mut buf, true, space.flow(g), 0x1234_5678, false);
    buf
}

fn parse(c: &mut Criterion) {
    let s = space(1000);
    let f = frame(L4::Udp, 7, &s);
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    g.bench_function("views eth+ipv4+udp, checksums verified", |b| {
        b.iter(|| {
            let eth = EthernetFrame::new_checked(black_box(&f[..])).unwrap();
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            let udp = UdpPacket::new_checked(ip.payload()).unwrap();
            black_box((ip.verify_checksum(), udp.verify_checksum(ip.src_addr(), ip.dst_addr()), udp.src_port()))
        })
    });
    g.bench_function("nat classify (ipv4 -> tuple)", |b| b.iter(|| black_box(classify::classify(black_box(&f[14..])))));
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    for sessions in [1_000u64, 100_000, 1_000_000] {
        let s = space(sessions);
        let n = populated(&s);
        let tuples: Vec<Tuple> = (0..4096u64).map(|i| tuple(&s, i.wrapping_mul(0x9e37_79b9) % s.len())).collect();
        let mut i = 0usize;
        g.bench_with_input(BenchmarkId::new("in2out hit", sessions), &sessions, |b, _| {
            b.iter(|| {
                i = (i + 1) & 4095;
                black_box(n.lookup_in2out(&tuples[i]).map(|r| r.id))
            })
        });
        let miss = Tuple::new(Endpoint::new(Ipv4Addr::new(100, 127, 0, 9), 9), Endpoint::new(SERVER, 9), Proto::Udp);
        g.bench_with_input(BenchmarkId::new("in2out miss", sessions), &sessions, |b, _| {
            b.iter(|| black_box(n.lookup_in2out(black_box(&miss)).is_none()))
        });
    }
    g.finish();
}

fn translate(c: &mut Criterion) {
    let s = space(1000);
    let n = populated(&s);
    let mut g = c.benchmark_group("translate");
    g.throughput(Throughput::Elements(1));
    for l4 in [L4::Udp, L4::Tcp] {
        let f = frame(l4, 5, &s);
        let proto = if l4 == L4::Udp { Proto::Udp } else { Proto::Tcp };
        let (session, ip) = if l4 == L4::Udp {
            (*n.lookup_in2out(&tuple(&s, 5)).unwrap().session, f[14..].to_vec())
        } else {
            let mut t = nat(16);
            let tu = Tuple { proto: Proto::Tcp, ..tuple(&s, 5) };
            let id = dataplane::nat::slowpath::create(&mut t, &tu, NatAction::Masquerade, 0x02, Instant::ZERO).unwrap();
            (*t.session(id).unwrap().session, f[14..].to_vec())
        };
        g.bench_function(format!("apply in2out {l4:?} (addr, port, checksums)"), |b| {
            b.iter_batched_ref(
                || ip.clone(),
                |buf| fastpath::translate(black_box(buf), proto, &session, Dir::In2Out),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

/// Time `iters` creations of `scenario`'s flows; the table is rebuilt (untimed) each time
/// it is full, so every figure averages a fill from empty to full.
fn time_creates(iters: u64, scenario: Scenario) -> StdDuration {
    let flows = scenario.flows();
    let cap = u64::from(natops::TABLE_SESSIONS);
    let mut n = scenario.nat();
    let mut g = 0u64;
    let mut total = StdDuration::ZERO;
    let mut done = 0u64;
    while done < iters {
        let chunk = (iters - done).min(cap - g);
        let t0 = StdInstant::now();
        black_box(natops::create_flows(&mut n, &flows, g, g + chunk));
        total += t0.elapsed();
        done += chunk;
        g += chunk;
        if g == cap {
            n = scenario.nat();
            g = 0;
        }
    }
    total
}

fn allocate(c: &mut Criterion) {
    let mut g = c.benchmark_group("allocate");
    g.throughput(Throughput::Elements(1));
    // The same table size (60 000 sessions) in each; see perf::natops for the shapes.
    for scenario in Scenario::ALL {
        g.bench_function(scenario.describe(), |b| b.iter_custom(|iters| time_creates(iters, scenario)));
    }
    g.finish();
}

fn expire(c: &mut Criterion) {
    let mut g = c.benchmark_group("expire");
    let batch = 10_000u64;
    g.throughput(Throughput::Elements(batch));
    let s = space(batch);
    g.bench_function("expire 10k due UDP sessions", |b| {
        b.iter_batched_ref(
            || populated(&s),
            |n| {
                let gone = n.expire(Instant::from_secs(10_000), usize::MAX, |_| {});
                assert_eq!(gone as u64, batch);
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, parse, lookup, translate, allocate, expire);
criterion_main!(benches);
