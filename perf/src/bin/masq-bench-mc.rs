//! masq-bench-mc: masqd's workers with one and with two workers — the multi-core
//! scaling and the cost of the software handoff between workers.
//!
//! Every worker is masqd's real `Worker<DpdkIo>` with NAT (one MASQUERADE rule), on its
//! own inside and outside port over in-process rings (DPDK's net_ring PMD), and with two
//! workers the handoff rings masqd builds. A run is a *preloaded burst*: the frames
//! (64 B UDP, `--sessions` flows whose sessions already exist) are put on the workers'
//! inside RX rings while the workers are parked, the workers are launched, and the main
//! thread sleeps until every frame has been sent or dropped, so it takes no CPU from
//! them. Three setups, in the same process:
//!
//! - `1 worker`: everything on worker 0 (core 1);
//! - `2 workers, RSS`: each frame on its subscriber's worker's queue, as a NIC with masq's
//!   RSS key would place it (no handoff);
//! - `2 workers, one queue`: everything on worker 0's queue; worker 0 hands the frames
//!   of worker 1's subscribers over a ring (software steering, as on virtual devices).
//!
//! `--return-share` of every timed burst (default half) is return traffic: the server's
//! replies to the established sessions, on the outside port's RX ring, translated back
//! to the inside hosts — on the owner's queue with RSS placement (as flow rules steering
//! each worker's port slice to its queue would place them; masqd does not install such
//! rules yet), on worker 0's with one queue. The first timed burst of every setup is
//! checked frame by frame in both directions (`perf::check`). With one queue, a busy
//! worker 1 makes worker 0 hold frames back (back-pressure, `handoff_paused`) rather
//! than drop them; what must still be dropped is `handoff_full`.
//!
//! With two workers the second runs on the main lcore's core (the main thread sleeps
//! meanwhile); on a machine with two cores that is every core there is.

#![deny(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant as StdInstant};

use anyhow::{bail, ensure, Context, Result};
use arc_swap::ArcSwap;
use clap::Parser;
use serde::Serialize;

use dataplane::config::Config;
use dataplane::config::DEFAULT_HANDOFF_RING;
use dataplane::counters::WorkerCounters;
use dataplane::dpdk_io::{DpdkIo, HandoffRings, TscClock, HANDOFF_STAGE};
use dataplane::l3::neighbor::NeighborTable;
use dataplane::l3::route::RouteTable;
use dataplane::l3::router::Router;
use dataplane::nat;
use dataplane::nat::steer::subscriber_owner;
use dataplane::setup;
use dataplane::stats::DropReason;
use dataplane::worker::Worker;
use dpdk::{Burst, Eal, Mbuf, MbufRing, MbufRingConsumer, MbufRingProducer, Mempool, Port, PortConfig};
use perf::check::{self, Expect};
use perf::flows::{FlowSpace, FrameWriter, ReturnFlows, L4};
use perf::results::median;
use perf::topology::{add_inside_hosts, config_text, GATEWAY_MAC, GEN_MAC, LAN_MAC, OUTSIDE, SERVER, WAN_MAC};

/// One and two workers with NAT: multi-core scaling and the cost of software handoff.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Active sessions (flows, created before the timed runs).
    #[arg(long, default_value_t = 100_000)]
    sessions: u64,
    /// Subscribers (inside addresses).
    #[arg(long, default_value_t = 1000)]
    subscribers: u32,
    /// Frames per preloaded burst (the rate is measured over one burst).
    #[arg(long, default_value_t = 131_072)]
    frames: usize,
    /// Timed bursts per setup (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// EAL memory in MB.
    #[arg(long, default_value_t = 2048)]
    mem: u32,
    /// Share of the timed bursts' frames that are return traffic, 0..=1.
    #[arg(long, default_value_t = 0.5)]
    return_share: f64,
    /// Slots of each handoff ring (masqd's `[workers] handoff_ring`).
    #[arg(long, default_value_t = DEFAULT_HANDOFF_RING)]
    handoff_ring: u32,
    /// End the output with one JSON line.
    #[arg(long)]
    json: bool,
}

fn config(max_sessions: u64) -> Result<Config> {
    // Every port of the space per subscriber: the flows, not a limit, decide.
    let text = config_text(max_sessions, 64512);
    Config::parse(&text).map_err(|e| anyhow::anyhow!("bench config: {e}"))
}

/// One worker, its ring ports, and the main thread's ends of its rings.
struct Lane {
    worker: Option<Worker<DpdkIo>>,
    counters: Arc<WorkerCounters>,
    gen: MbufRingProducer,
    sink: MbufRingConsumer,
    /// The outside port's RX ring: return traffic.
    wan_gen: MbufRingProducer,
    /// The inside port's TX ring: return traffic, translated back.
    back: MbufRingConsumer,
    _ports: Vec<Port>,
}

/// `workers` lanes sharing one rule set, with handoff rings when there are two or more.
fn lanes(
    tag: &str,
    workers: u16,
    pool: &Mempool,
    frames: usize,
    flows: &FlowSpace,
    handoff_ring: u32,
) -> Result<Vec<Lane>> {
    let sessions = flows.len();
    let config = config(sessions)?;
    let (set, compiled) = setup::load_rules(perf::topology::RULES, &config).context("bench rules")?;
    let shared: nat::SharedRules = Arc::new(ArcSwap::from_pointee(compiled));
    let timeouts = setup::timeouts(&config);
    let routes = Arc::new(RouteTable::from_config(&config));
    let neighbors = Arc::new(NeighborTable::new(64 + flows.subscribers() as usize));
    for n in &config.neighbors {
        neighbors.add_static(n.port as u16, n.address, n.mac).map_err(|_| anyhow::anyhow!("neighbour table full"))?;
    }
    add_inside_hosts(&neighbors, flows).map_err(|_| anyhow::anyhow!("neighbour table full"))?;
    let mut handoffs =
        if workers > 1 { HandoffRings::mesh(workers, handoff_ring).context("handoff rings")? } else { vec![] }
            .into_iter();
    let ring_size = (frames + 1024).next_power_of_two() as u32;
    let mut out = Vec::new();
    for w in 0..workers {
        let name = format!("{tag}{w}");
        let ring = |suffix: &str, size: u32| {
            MbufRing::new(&format!("{name}_{suffix}"), size, dpdk::SOCKET_ID_ANY)
                .with_context(|| format!("creating ring {name}_{suffix} (try more --mem)"))
        };
        let (lan_rx_p, lan_rx_c) = ring("lrx", ring_size)?.split();
        let (lan_tx_p, lan_tx_c) = ring("ltx", ring_size)?.split();
        let (wan_rx_p, wan_rx_c) = ring("wrx", ring_size)?.split();
        let (wan_tx_p, wan_tx_c) = ring("wtx", ring_size)?.split();
        let pcfg = PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: None, mtu: None };
        let mut lan = Port::from_rings(&format!("{name}_lan"), lan_rx_c, lan_tx_p, dpdk::SOCKET_ID_ANY)?;
        let mut wan = Port::from_rings(&format!("{name}_wan"), wan_rx_c, wan_tx_p, dpdk::SOCKET_ID_ANY)?;
        for p in [&mut lan, &mut wan] {
            p.configure(&pcfg, pool).context("configuring a ring port")?;
            p.start().context("starting a ring port")?;
        }
        let counters = Arc::new(WorkerCounters::default());
        let path = setup::nat_path(&config, &set, shared.clone(), timeouts.clone(), w, workers, 0x6d63)
            .context("bench NAT")?;
        let router = Router::new(routes.clone(), neighbors.clone(), vec![LAN_MAC, WAN_MAC], counters.clone());
        let mut io = DpdkIo::new(
            vec![lan.rx_queue(0)?, wan.rx_queue(0)?],
            vec![lan.tx_queue(0)?, wan.tx_queue(0)?],
            pool.clone(),
        );
        if let Some(h) = handoffs.next() {
            io = io.with_handoff(h);
        }
        out.push(Lane {
            worker: Some(Worker::new(io, router, counters.clone()).with_nat(path)),
            counters,
            gen: lan_rx_p,
            sink: wan_tx_c,
            wan_gen: wan_rx_p,
            back: lan_tx_c,
            _ports: vec![lan, wan],
        });
    }
    Ok(out)
}

/// Where the frames go: all on worker 0's queue, or on their subscriber's worker's.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Placement {
    OneQueue,
    BySubscriber,
}

struct Bench<'a> {
    eal: &'a Eal,
    lcores: Vec<u32>,
    pool: &'a Mempool,
    writer: FrameWriter,
    /// Return traffic: the server's replies, to `returns`.
    ret_writer: FrameWriter,
    returns: ReturnFlows,
    flows: FlowSpace,
    stash: Vec<Mbuf>,
    next_flow: u64,
}

/// Whether frame `j` of a burst is return traffic: `share` of the frames, evenly spread.
fn is_return(j: usize, share: f64) -> bool {
    ((j + 1) as f64 * share).floor() > (j as f64 * share).floor()
}

/// Enqueue every frame of `frames` on `ring` (sized for a whole burst).
fn enqueue(ring: &mut MbufRingProducer, frames: &mut Vec<Mbuf>, what: &str) -> Result<()> {
    let mut b = Burst::<32>::new();
    for m in frames.drain(..) {
        if let Err(m) = b.push(m) {
            drop(m);
        }
        if b.is_full() {
            ring.enqueue_burst(&mut b);
            ensure!(b.is_empty(), "{what} ring full");
        }
    }
    ring.enqueue_burst(&mut b);
    ensure!(b.is_empty(), "{what} ring full");
    Ok(())
}

impl Bench<'_> {
    /// One preloaded burst of `n` frames through `lanes`, `share` of them return
    /// traffic: (seconds, frames delivered, frames dropped). With `check`, every frame
    /// that comes out is checked (both directions).
    fn burst(
        &mut self,
        lanes: &mut [Lane],
        n: usize,
        place: Placement,
        share: f64,
        check: bool,
    ) -> Result<(f64, u64, u64)> {
        let workers = lanes.len() as u16;
        while self.stash.len() < n {
            let Some(mut m) = self.pool.alloc() else {
                bail!("mempool empty: {} in use, {} in the stash", self.pool.in_use(), self.stash.len());
            };
            m.set_len(self.writer.len()).context("mbuf too small")?;
            self.writer.write(m.data_mut(), true, (0, 0, 0), 0, false);
            self.stash.push(m);
        }
        let mut out: Vec<Vec<Mbuf>> = (0..lanes.len()).map(|_| Vec::new()).collect();
        let mut ret: Vec<Vec<Mbuf>> = (0..lanes.len()).map(|_| Vec::new()).collect();
        // What the return frames must arrive as: (inside host, port, server port) -> count.
        let mut expected: std::collections::HashMap<(Ipv4Addr, u16, u16), u32> = Default::default();
        for (j, mut m) in self.stash.drain(..n.min(self.stash.len())).enumerate() {
            self.next_flow += 1;
            let g = self.next_flow;
            let flow = self.flows.flow(g);
            let w = match place {
                Placement::OneQueue => 0,
                Placement::BySubscriber => usize::from(subscriber_owner(Ipv4Addr::from(flow.0), workers)),
            };
            if is_return(j, share) {
                let r = self.returns.flow(&self.flows, g);
                self.ret_writer.write(m.data_mut(), false, r, 0, false);
                if check {
                    let (host, port) = self.returns.inside(&self.flows, g);
                    *expected.entry((host, port, r.1)).or_default() += 1;
                }
                ret[w].push(m);
            } else {
                self.writer.write(m.data_mut(), false, flow, 0, false);
                out[w].push(m);
            }
        }
        for ((lane, o), r) in lanes.iter_mut().zip(out.iter_mut()).zip(ret.iter_mut()) {
            enqueue(&mut lane.gen, o, "inside")?;
            enqueue(&mut lane.wan_gen, r, "outside")?;
        }
        let before: Vec<(u64, u64)> =
            lanes.iter().map(|l| (l.counters.tx_packets.get(), l.counters.drops_total())).collect();
        // Launch every worker on its lcore; the main thread sleeps until all is done.
        let stop = Arc::new(AtomicBool::new(false));
        let mut back = Vec::new();
        let t0 = StdInstant::now();
        for (lane, &lcore) in lanes.iter_mut().zip(&self.lcores) {
            let mut w = lane.worker.take().context("worker already running")?;
            let (tx, rx) = mpsc::sync_channel(1);
            let s = stop.clone();
            self.eal
                .launch(lcore, move || {
                    let clock = TscClock::new();
                    w.run(&s, || clock.now());
                    let _ = tx.send(w);
                    0
                })
                .with_context(|| format!("launching a worker on lcore {lcore}"))?;
            back.push(rx);
        }
        let done = |lanes: &[Lane]| -> (u64, u64) {
            lanes.iter().zip(&before).fold((0, 0), |(s, d), (l, b)| {
                (s + l.counters.tx_packets.get() - b.0, d + l.counters.drops_total() - b.1)
            })
        };
        let deadline = t0 + Duration::from_secs(30);
        let (sent, dropped, elapsed) = loop {
            std::thread::sleep(Duration::from_micros(200));
            let (s, d) = done(lanes);
            if s + d >= n as u64 {
                break (s, d, t0.elapsed().as_secs_f64());
            }
            if StdInstant::now() > deadline {
                stop.store(true, Ordering::Relaxed);
                bail!("{n} frames not through in 30 s ({s} sent, {d} dropped)");
            }
        };
        stop.store(true, Ordering::Relaxed);
        for ((lane, rx), &lcore) in lanes.iter_mut().zip(back).zip(&self.lcores) {
            let rc = self.eal.wait(lcore);
            ensure!(rc == 0, "worker on lcore {lcore} exited with {rc}");
            lane.worker = Some(rx.recv().context("worker did not come back")?);
        }
        let e = Expect { nat: true, tcp: false };
        let mut checked = 0usize;
        for lane in lanes.iter_mut() {
            let mut b = Burst::<32>::new();
            while lane.sink.dequeue_burst(&mut b) > 0 {
                if check {
                    for m in b.iter() {
                        check::outbound(checked, m.data(), e).context("outbound frame")?;
                        checked += 1;
                    }
                }
                self.stash.extend(b.drain());
            }
            while lane.back.dequeue_burst(&mut b) > 0 {
                if check {
                    for m in b.iter() {
                        let got = check::inbound(checked, m.data(), e, None).context("return frame")?;
                        match expected.get_mut(&got) {
                            Some(c) if *c > 0 => *c -= 1,
                            _ => bail!("return frame {checked}: {got:?} was not sent (or arrived twice)"),
                        }
                        checked += 1;
                    }
                }
                self.stash.extend(b.drain());
            }
        }
        if check {
            ensure!(dropped == 0, "{dropped} frames dropped in the checked burst");
            ensure!(expected.values().all(|&c| c == 0), "return frames missing from the checked burst");
        }
        Ok((elapsed, sent, dropped))
    }

    /// Open every session (untimed, outbound only), then `runs` timed bursts with
    /// `share` return traffic: median Mpps, the share handed between workers, and what
    /// was dropped or held back.
    fn setup(&mut self, lanes: &mut [Lane], place: Placement, frames: usize, runs: usize, share: f64) -> Result<Setup> {
        let sessions = self.flows.len();
        let mut opened = 0;
        while opened < sessions {
            let n = (sessions - opened).min(frames as u64) as usize;
            self.burst(lanes, n, place, 0.0, false)?;
            opened += n as u64;
        }
        // The replies go to the external endpoints the owners' NATs mapped the flows to.
        let workers = lanes.len() as u16;
        let nats: Vec<&nat::WorkerNat> = lanes
            .iter()
            .map(|l| l.worker.as_ref().and_then(|w| w.nat()).map(|p| p.nat()).context("a lane without its NAT"))
            .collect::<Result<_>>()?;
        self.returns = ReturnFlows::translated(&self.flows, OUTSIDE, |a, port| {
            let owner = usize::from(subscriber_owner(a, workers));
            nats[owner].mapping_of(nat::Endpoint::new(a, port), nat::Proto::Udp).map(|m| m.outside.port)
        })?;
        let sum =
            |lanes: &[Lane], f: &dyn Fn(&WorkerCounters) -> u64| -> u64 { lanes.iter().map(|l| f(&l.counters)).sum() };
        let handed0 = sum(lanes, &|c| c.handoff_out.get());
        let full0 = sum(lanes, &|c| c.drops_for(DropReason::HandoffFull));
        let paused0 = sum(lanes, &|c| c.handoff_paused.get());
        let mut rates = Vec::new();
        let mut dropped = 0;
        for r in 0..runs {
            let (secs, sent, d) = self.burst(lanes, frames, place, share, r == 0)?;
            rates.push(sent as f64 / secs / 1e6);
            dropped += d;
        }
        let handed = sum(lanes, &|c| c.handoff_out.get()) - handed0;
        let live: u64 = lanes.iter().map(|l| l.counters.nat_sessions.get()).sum();
        Ok(Setup {
            mpps: median(&rates),
            handed_off_share: handed as f64 / (frames * runs) as f64,
            dropped,
            handoff_full: sum(lanes, &|c| c.drops_for(DropReason::HandoffFull)) - full0,
            handoff_paused: sum(lanes, &|c| c.handoff_paused.get()) - paused0,
            sessions: live,
        })
    }
}

#[derive(Serialize, Clone, Copy)]
struct Setup {
    mpps: f64,
    handed_off_share: f64,
    /// Frames of the timed bursts that did not come out, for any reason.
    dropped: u64,
    /// Of those, frames whose handoff stage was full.
    handoff_full: u64,
    /// Poll passes a worker left its receive queues alone (handoff back-pressure).
    handoff_paused: u64,
    sessions: u64,
}

#[derive(Serialize)]
struct Report {
    sessions: u64,
    frames_per_burst: usize,
    runs: usize,
    return_share: f64,
    handoff_ring: u32,
    one_worker_mpps: f64,
    two_workers_rss_mpps: f64,
    two_workers_one_queue_mpps: f64,
    scaling_rss: f64,
    scaling_one_queue: f64,
    handed_off_share_one_queue: f64,
    dropped: u64,
    dropped_one_queue: u64,
    handoff_full_one_queue: u64,
    handoff_paused_one_queue: u64,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masq-bench-mc: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    ensure!((1000..=1 << 24).contains(&args.sessions), "--sessions: 1000..=16777216");
    ensure!((1024..=1 << 20).contains(&args.frames), "--frames: 1024..=1048576");
    ensure!((1..=101).contains(&args.runs), "--runs: 1..=101");
    ensure!(args.subscribers >= 2, "--subscribers: at least 2");
    ensure!((0.0..=1.0).contains(&args.return_share), "--return-share: a fraction in 0..=1");
    // The NAT admits max_sessions / 4 subscribers per worker (nat.max_sessions sizes both).
    ensure!(
        args.sessions >= 4 * u64::from(args.subscribers),
        "--sessions {} for {} subscribers: give at least 4 sessions per subscriber",
        args.sessions,
        args.subscribers
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    ensure!(cpus >= 2, "needs two CPUs (this process may use {cpus})");
    let prefix = format!("masq-bench-mc-{}", std::process::id());
    // Lcore 1 on core 1, lcore 2 on core 0 beside the (sleeping) main lcore 0.
    let eal_args: Vec<String> = [
        "masq-bench-mc",
        "--lcores",
        "0@0,1@1,2@0",
        "--main-lcore",
        "0",
        "--no-pci",
        "--no-huge",
        "--file-prefix",
        &prefix,
        "--log-level",
        "warning",
        "-m",
        &args.mem.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let eal = Eal::init(&eal_args).context("EAL initialisation failed")?;
    let lcores = eal.worker_lcores();
    ensure!(lcores.len() == 2, "EAL gave {} worker lcores, need 2", lcores.len());
    ensure!((256..=65536).contains(&args.handoff_ring), "--handoff-ring: 256..=65536");
    let handoff = 2 * (args.handoff_ring as usize + HANDOFF_STAGE);
    let mbufs = ((args.frames + handoff + 8192) as u32).next_power_of_two() - 1;
    let pool = Mempool::new("mc_pkts", mbufs, 256, dpdk::DEFAULT_DATA_ROOM, dpdk::SOCKET_ID_ANY)
        .with_context(|| format!("a pool of {mbufs} mbufs (try a larger --mem)"))?;
    let per_subscriber = args.sessions.div_ceil(u64::from(args.subscribers));
    // Few source ports per subscriber: flows share mappings, as real subscribers do, so
    // the one external address (64512 ports) holds every subscriber's mappings.
    let flows = FlowSpace::new(args.subscribers, per_subscriber, 16).context("flow space")?;
    let writer = FrameWriter::new(L4::Udp, 64, GEN_MAC, LAN_MAC, SERVER)?;
    let ret_writer = FrameWriter::inbound(L4::Udp, 64, GATEWAY_MAC, WAN_MAC, SERVER)?;
    let mut bench = Bench {
        eal: &eal,
        lcores: lcores.clone(),
        pool: &pool,
        writer,
        ret_writer,
        returns: ReturnFlows::untranslated(),
        flows,
        stash: vec![],
        next_flow: 0,
    };
    let share = args.return_share;
    let t0 = StdInstant::now();
    let say = |m: &str| eprintln!("masq-bench-mc [{:6.1}s] {m}", t0.elapsed().as_secs_f64());

    say(&format!("1 worker, {} sessions", bench.flows.len()));
    let mut one = lanes("a", 1, &pool, args.frames, &bench.flows, args.handoff_ring)?;
    bench.lcores = vec![lcores[0]];
    let s1 = bench.setup(&mut one, Placement::BySubscriber, args.frames, args.runs, share)?;
    say("2 workers, RSS placement");
    let mut two = lanes("b", 2, &pool, args.frames, &bench.flows, args.handoff_ring)?;
    bench.lcores = lcores.clone();
    bench.next_flow = 0;
    let s2 = bench.setup(&mut two, Placement::BySubscriber, args.frames, args.runs, share)?;
    say("2 workers, one queue (software handoff)");
    let s3 = bench.setup(&mut two, Placement::OneQueue, args.frames, args.runs, share)?;

    for lane in one.iter_mut().chain(two.iter_mut()) {
        if let Some(w) = lane.worker.as_mut() {
            w.shutdown();
        }
    }
    bench.stash.clear();
    drop(one);
    drop(two);
    let in_use = pool.in_use();
    drop(pool);
    drop(eal);
    let _ = std::fs::remove_dir_all(PathBuf::from("/var/run/dpdk").join(&prefix));
    ensure!(in_use == 0, "{in_use} mbufs did not come back to the pool");

    let r = Report {
        sessions: s1.sessions,
        frames_per_burst: args.frames,
        runs: args.runs,
        return_share: share,
        handoff_ring: args.handoff_ring,
        one_worker_mpps: s1.mpps,
        two_workers_rss_mpps: s2.mpps,
        two_workers_one_queue_mpps: s3.mpps,
        scaling_rss: s2.mpps / s1.mpps,
        scaling_one_queue: s3.mpps / s1.mpps,
        handed_off_share_one_queue: s3.handed_off_share,
        dropped: s1.dropped + s2.dropped + s3.dropped,
        dropped_one_queue: s3.dropped,
        handoff_full_one_queue: s3.handoff_full,
        handoff_paused_one_queue: s3.handoff_paused,
    };
    println!("{} sessions, {:.0} % return traffic, handoff rings of {}", s1.sessions, share * 100.0, args.handoff_ring);
    println!("setup                          Mpps   vs 1 worker  handed off  dropped  handoff_full  paused passes");
    for (name, s) in [("1 worker", s1), ("2 workers, RSS", s2), ("2 workers, one queue (handoff)", s3)] {
        println!(
            "{name:<30} {:>5.2}   {:>10.2}  {:>9.0} %  {:>7}  {:>12}  {:>13}",
            s.mpps,
            s.mpps / s1.mpps,
            s.handed_off_share * 100.0,
            s.dropped,
            s.handoff_full,
            s.handoff_paused
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    }
    Ok(())
}
