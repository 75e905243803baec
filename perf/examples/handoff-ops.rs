//! Instructions per frame of one worker against two workers sharing one receive queue
//! (software handoff), for callgrind: masqd's real `Worker` and stages on the in-memory
//! I/O (`dataplane::io::mem::MemIo`, the backend the pipeline's tests use), the bench
//! topology and traffic of `masq-bench-mc` (`perf::topology`, `perf::flows`), both
//! directions (`--return-share`, default half).
//!
//! ```sh
//! cargo build --release -p perf --no-default-features --example handoff-ops
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/ho.out target/release/examples/handoff-ops
//! callgrind_annotate --inclusive=yes /tmp/ho.out | grep handoff_ops::poll_
//! ```
//!
//! Every poll of the one worker goes through `poll_single`, worker 0's (which receives
//! everything and hands half over) through `poll_receiver`, worker 1's through
//! `poll_owner`; the sessions are opened before, outside them. The pair runs twice: with
//! the `steer` stage (frames another worker owns handed over before `l2-input`, the
//! default) and with it off (`Worker::set_early_steer(false)`: every frame through the
//! pipeline to `nat-classify` first, as before the early steer), the latter through
//! `poll_receiver_late` and `poll_owner_late`. Divide each function's inclusive
//! instructions by the frames of the timed traffic (printed). With one queue
//! the pair runs at the pace of the busier worker, so the best the pair can scale to is
//! `single / max(receiver, owner)` — the I/O (MemIo's queues here, mbufs and rings on
//! DPDK) aside.

use std::sync::Arc;

use anyhow::{ensure, Context, Result};
use arc_swap::ArcSwap;
use dataplane::config::Config;
use dataplane::counters::WorkerCounters;
use dataplane::io::mem::{self, MemIo};
use dataplane::l3::neighbor::NeighborTable;
use dataplane::l3::route::RouteTable;
use dataplane::l3::router::Router;
use dataplane::nat::{self, steer::subscriber_owner};
use dataplane::setup;
use dataplane::time::Instant;
use dataplane::worker::Worker;
use perf::flows::{FlowSpace, FrameWriter, ReturnFlows, L4};
use perf::topology::{add_inside_hosts, config_text, GATEWAY_MAC, GEN_MAC, LAN_MAC, OUTSIDE, RULES, SERVER, WAN_MAC};

const LAN: u16 = 0;
const WAN: u16 = 1;
const SUBSCRIBERS: u32 = 1000;
const SESSIONS: u64 = 20_000;
/// Frames of the timed traffic.
const FRAMES: u64 = 40_000;

fn workers(n: u16, flows: &FlowSpace) -> Result<Vec<Worker<MemIo>>> {
    let config = Config::parse(&config_text(SESSIONS, 64512)).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let (set, compiled) = setup::load_rules(RULES, &config).context("rules")?;
    let shared: nat::SharedRules = Arc::new(ArcSwap::from_pointee(compiled));
    let timeouts = setup::timeouts(&config);
    let routes = Arc::new(RouteTable::from_config(&config));
    let neighbors = Arc::new(NeighborTable::new(64 + SUBSCRIBERS as usize));
    for nb in &config.neighbors {
        neighbors.add_static(nb.port as u16, nb.address, nb.mac).map_err(|_| anyhow::anyhow!("neighbours"))?;
    }
    add_inside_hosts(&neighbors, flows).map_err(|_| anyhow::anyhow!("neighbours"))?;
    let rings = mem::rings(usize::from(n));
    (0..n)
        .map(|w| {
            let path = setup::nat_path(&config, &set, shared.clone(), timeouts.clone(), w, n, 0x686f)?;
            let counters = Arc::new(WorkerCounters::default());
            let router = Router::new(routes.clone(), neighbors.clone(), vec![LAN_MAC, WAN_MAC], counters.clone());
            let mut io = MemIo::new(2);
            if n > 1 {
                io = io.with_handoff(w, rings.clone());
            }
            Ok(Worker::new(io, router, counters).with_nat(path))
        })
        .collect::<Result<Vec<_>, nat::ConfigError>>()
        .map_err(|e| anyhow::anyhow!("NAT: {e}"))
}

/// Opening the sessions (not counted).
#[inline(never)]
fn poll_setup(w: &mut Worker<MemIo>, now: Instant) -> usize {
    // (a distinct body, so the linker does not fold the four into one symbol)
    std::hint::black_box(0);
    w.poll(now)
}

#[inline(never)]
fn poll_single(w: &mut Worker<MemIo>, now: Instant) -> usize {
    // (a distinct body, so the linker does not fold the four into one symbol)
    std::hint::black_box(1);
    w.poll(now)
}

#[inline(never)]
fn poll_receiver(w: &mut Worker<MemIo>, now: Instant) -> usize {
    // (a distinct body, so the linker does not fold the four into one symbol)
    std::hint::black_box(2);
    w.poll(now)
}

#[inline(never)]
fn poll_owner(w: &mut Worker<MemIo>, now: Instant) -> usize {
    // (a distinct body, so the linker does not fold the four into one symbol)
    std::hint::black_box(3);
    w.poll(now)
}

#[inline(never)]
fn poll_receiver_late(w: &mut Worker<MemIo>, now: Instant) -> usize {
    // (a distinct body, so the linker does not fold the four into one symbol)
    std::hint::black_box(4);
    w.poll(now)
}

#[inline(never)]
fn poll_owner_late(w: &mut Worker<MemIo>, now: Instant) -> usize {
    // (a distinct body, so the linker does not fold the four into one symbol)
    std::hint::black_box(5);
    w.poll(now)
}

/// Poll every worker (worker 0 with `first`, the others with `rest`) until none receives
/// anything; returns the frames sent out of either port and dropped.
fn drain(
    ws: &mut [Worker<MemIo>],
    now: Instant,
    first: fn(&mut Worker<MemIo>, Instant) -> usize,
    rest: fn(&mut Worker<MemIo>, Instant) -> usize,
) -> (u64, u64) {
    loop {
        let mut got = 0;
        for (i, w) in ws.iter_mut().enumerate() {
            got += if i == 0 { first(w, now) } else { rest(w, now) };
        }
        if got == 0 {
            break;
        }
    }
    let mut out = 0;
    for w in ws.iter_mut() {
        out += (w.io_mut().take_output(LAN).len() + w.io_mut().take_output(WAN).len()) as u64;
    }
    (out, ws.iter().map(|w| w.counters().drops_total()).sum())
}

fn main() -> Result<()> {
    let share: f64 = match std::env::args().nth(1) {
        Some(a) => a.strip_prefix("--return-share=").context("usage: handoff-ops [--return-share=F]")?.parse()?,
        None => 0.5,
    };
    ensure!((0.0..=1.0).contains(&share), "--return-share: a fraction in 0..=1");
    let flows = FlowSpace::new(SUBSCRIBERS, SESSIONS / u64::from(SUBSCRIBERS), 16)?;
    let out_w = FrameWriter::new(L4::Udp, 64, GEN_MAC, LAN_MAC, SERVER)?;
    let ret_w = FrameWriter::inbound(L4::Udp, 64, GATEWAY_MAC, WAN_MAC, SERVER)?;
    let now = Instant::from_secs(1);
    let mut buf = vec![0u8; out_w.len()];
    let mut report = Vec::new();
    // (workers, steer early)
    for (n, early) in [(1u16, true), (2, false), (2, true)] {
        let mut ws = workers(n, &flows)?;
        for w in &mut ws {
            w.set_early_steer(early);
        }
        let label = match (n, early) {
            (1, _) => "1 worker",
            (_, false) => "2 workers, steered at nat-classify",
            _ => "2 workers, steered before l2-input",
        };
        // Open every session: all traffic on worker 0's queue, as in the timed part.
        for g in 0..flows.len() {
            out_w.write(&mut buf, true, flows.flow(g), 0, false);
            ws[0].io_mut().inject(LAN, &buf);
        }
        let (opened, dropped) = drain(&mut ws, now, poll_setup, poll_setup);
        ensure!(
            opened == flows.len() && dropped == 0,
            "{n} worker(s): {opened} of {} opened, {dropped} dropped",
            flows.len()
        );
        let nats: Vec<&nat::WorkerNat> = ws.iter().map(|w| w.nat().expect("NAT").nat()).collect();
        let returns = ReturnFlows::translated(&flows, OUTSIDE, |a, p| {
            let owner = usize::from(subscriber_owner(a, n));
            nats[owner].mapping_of(nat::Endpoint::new(a, p), nat::Proto::Udp).map(|m| m.outside.port)
        })?;
        let handed0: u64 = ws.iter().map(|w| w.counters().handoff_out.get()).sum();
        let stages0: Vec<_> = ws.iter().map(|w| w.runtime().figures()).collect();
        // The timed traffic, on worker 0's queues.
        let mut returned = 0u64;
        for j in 0..FRAMES {
            let g = j % flows.len();
            if ((j + 1) as f64 * share).floor() > (j as f64 * share).floor() {
                ret_w.write(&mut buf, true, returns.flow(&flows, g), 0, false);
                ws[0].io_mut().inject(WAN, &buf);
                returned += 1;
            } else {
                out_w.write(&mut buf, true, flows.flow(g), 0, false);
                ws[0].io_mut().inject(LAN, &buf);
            }
        }
        let (sent, dropped) = match (n, early) {
            (1, _) => drain(&mut ws, now, poll_single, poll_single),
            (_, false) => drain(&mut ws, now, poll_receiver_late, poll_owner_late),
            _ => drain(&mut ws, now, poll_receiver, poll_owner),
        };
        ensure!(sent == FRAMES && dropped == 0, "{label}: {sent} of {FRAMES} frames out, {dropped} dropped");
        let handed: u64 = ws.iter().map(|w| w.counters().handoff_out.get()).sum();
        report.push(format!(
            "{label}: {FRAMES} timed frames ({returned} return traffic) all out, {} handed over",
            handed - handed0
        ));
        // Which stages each worker ran the timed frames through (packets).
        for (w, (worker, before)) in ws.iter().zip(&stages0).enumerate() {
            let after = worker.runtime().figures();
            let seen: Vec<String> = after
                .iter()
                .zip(before)
                .filter(|(a, b)| a.packets > b.packets)
                .map(|(a, b)| format!("{} {}", a.stage.name(), a.packets - b.packets))
                .collect();
            report.push(format!("  worker {w}: {}", seen.join(", ")));
        }
    }
    for line in report {
        println!("{line}");
    }
    println!(
        "instructions per frame: poll_single / {FRAMES}; poll_receiver[_late] / {FRAMES} and poll_owner[_late] / {FRAMES}"
    );
    Ok(())
}
