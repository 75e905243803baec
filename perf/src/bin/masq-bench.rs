//! masq-bench: masqd's real worker (`dataplane::worker::Worker<DpdkIo>`) on real DPDK
//! mbufs, with no NIC.
//!
//! Each of two "lanes" is a worker with an inside and an outside port, both ethdev
//! ports over in-process rings (`dpdk::Port::from_rings`, DPDK's net_ring PMD). The
//! generator, on the main lcore, enqueues frames on the inside port's RX ring; the
//! worker, on its own lcore, routes (and, in the NAT lane, MASQUERADEs) them to the
//! outside port, whose TX ring the sink, also on the main lcore, drains and recycles.
//! Lane A's router has the NAT with one MASQUERADE rule, lane B's has no NAT (plain
//! routing through the same worker code), so the two rates come from the same run.
//!
//! Throughput is measured by draining batches: the generator writes a batch of frames
//! (untimed), enqueues it at once and times until the worker has sent or dropped every
//! frame, so the worker never waits for the generator and the rate is the worker's own.
//! A share of every throughput batch (`--return-share`, default half) is return traffic:
//! replies from the server to established sessions, enqueued on the outside port's RX
//! ring and sent out of the inside port (translated back, in the NAT lane), as a CGN
//! carries both directions.
//! Latency is measured with a paced generator (a TSC stamp in each payload, hdrhistogram)
//! at fractions of the NAT rate. See perf/README.md.

#![deny(unsafe_code)]

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Instant as StdInstant;

use anyhow::{bail, ensure, Context, Result};
use arc_swap::ArcSwap;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;

use dataplane::config::Config;
use dataplane::counters::WorkerCounters;
use dataplane::dpdk_io::{DpdkIo, TscClock};
use dataplane::l3::neighbor::NeighborTable;
use dataplane::l3::route::RouteTable;
use dataplane::l3::router::Router;
use dataplane::nat::{self, NatPath};
use dataplane::pipeline::StageFigures;
use dataplane::setup;
use dataplane::worker::Worker;
use dpdk::{Burst, Eal, Mbuf, MbufRing, MbufRingConsumer, MbufRingProducer, Mempool, Port, PortConfig};
use perf::check::{self, Expect};
use perf::flows::{stamp_elapsed, FlowSpace, FrameWriter, ReturnFlows, L4};
use perf::results::{gbps, median, LatencyPoint, LoggingPoint, Point, Report, StageCycles};
use perf::topology::{add_inside_hosts, config_text, GATEWAY_MAC, GEN_MAC, LAN_MAC, OUTSIDE, RULES, SERVER, WAN_MAC};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ProtoArg {
    Udp,
    Tcp,
}

/// Benchmark masqd's worker: NAT vs forwarding throughput, new sessions per second,
/// tear-down, bytes per session and latency (RFC 9693 metrics), without a NIC.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Active sessions of the headline point (1000 ..= 134217728; 10000 with --quick).
    #[arg(long)]
    sessions: Option<u64>,
    /// Session counts to measure, comma-separated (default: 1000, 10x steps up to
    /// --sessions, and --sessions itself).
    #[arg(long, value_delimiter = ',')]
    sweep: Option<Vec<u64>>,
    /// Subscribers (inside addresses); default sessions/100, between 1 and 1000.
    #[arg(long)]
    subscribers: Option<u32>,
    /// Ethernet frame size in bytes, FCS included (64..=1518).
    #[arg(long, default_value_t = 64)]
    frame_size: usize,
    /// Transport of the generated flows.
    #[arg(long, value_enum, default_value = "udp")]
    proto: ProtoArg,
    /// Seconds per throughput run and per latency load.
    #[arg(long)]
    duration: Option<f64>,
    /// Throughput runs per mode (the median is reported).
    #[arg(long)]
    runs: Option<usize>,
    /// Frames per drained batch.
    #[arg(long, default_value_t = 8192)]
    batch: usize,
    /// Share of the throughput runs' frames that are return traffic (server to inside
    /// host, on established sessions), 0..=1.
    #[arg(long, default_value_t = 0.5)]
    return_share: f64,
    /// Offered loads for latency, as fractions of the measured NAT rate.
    #[arg(long, value_delimiter = ',', default_value = "0.1,0.5,0.9")]
    loads: Vec<f64>,
    /// Short smoke run (< 60 s): 10k sessions, 1 run of 0.2 s.
    #[arg(long)]
    quick: bool,
    /// End the output with one JSON line.
    #[arg(long)]
    json: bool,
    /// Write an SVG of throughput and latency against active sessions.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// EAL on hugepages (default: --no-huge).
    #[arg(long)]
    hugepages: bool,
    /// EAL memory in MB (mbufs only; the NAT's tables are ordinary heap memory).
    #[arg(long, default_value_t = 512)]
    mem: u32,
    /// Do not time the pipeline's stages (to measure what the always-on runtime
    /// counting costs: compare with a run without this flag).
    #[arg(long)]
    no_runtime: bool,
    /// Main lcore (generator and sink) and worker lcore.
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    cores: Vec<u32>,
    /// Also measure new sessions per second with NAT event logging on (session records
    /// as IPFIX to a local UDP socket, the logging thread on the main lcore), in the
    /// same run, and report events exported and dropped.
    #[arg(long)]
    logging: bool,
}

/// Resident memory of this process in bytes (`VmRSS` in /proc/self/status).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The router for the bench topology (the subscribers of `hosts` static neighbours of
/// the inside port) and, when `nat` is Some((capacity, ports per subscriber)), the NAT
/// beside it.
fn make_router(
    counters: &Arc<WorkerCounters>,
    nat: Option<(u64, u32)>,
    hosts: Option<&FlowSpace>,
) -> Result<(Router, Option<NatPath>)> {
    let (cap, pps) = nat.unwrap_or((16, 1));
    let config = Config::parse(&config_text(cap, pps)).map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    let routes = Arc::new(RouteTable::from_config(&config));
    let neighbors = Arc::new(NeighborTable::new(64 + hosts.map_or(0, |h| h.subscribers() as usize)));
    for n in &config.neighbors {
        neighbors.add_static(n.port as u16, n.address, n.mac).map_err(|_| anyhow::anyhow!("neighbour table full"))?;
    }
    if let Some(h) = hosts {
        add_inside_hosts(&neighbors, h).map_err(|_| anyhow::anyhow!("neighbour table full"))?;
    }
    let router = Router::new(routes, neighbors, vec![LAN_MAC, WAN_MAC], counters.clone());
    if nat.is_none() {
        return Ok((router, None));
    }
    let (set, compiled) = setup::load_rules(RULES, &config).context("bench rules")?;
    let shared: nat::SharedRules = Arc::new(ArcSwap::from_pointee(compiled));
    let path = setup::nat_path(&config, &set, shared, setup::timeouts(&config), 0, 1, 0x6d61_7371_6265_6e63)
        .context("bench NAT")?;
    Ok((router, Some(path)))
}

/// Give `worker` a fresh router and NAT (see [`make_router`]).
fn reset_nat(
    worker: &mut Worker<DpdkIo>,
    counters: &Arc<WorkerCounters>,
    nat: Option<(u64, u32)>,
    hosts: Option<&FlowSpace>,
) -> Result<()> {
    let (router, path) = make_router(counters, nat, hosts)?;
    *worker.router_mut() = router;
    worker.set_nat(path);
    Ok(())
}

/// A UDP socket on 127.0.0.1 that reads and counts what the logging thread sends.
struct LocalCollector {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl LocalCollector {
    fn start() -> Result<LocalCollector> {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").context("collector socket")?;
        sock.set_read_timeout(Some(std::time::Duration::from_millis(50)))?;
        let addr = sock.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            let mut bytes = 0u64;
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => bytes += n as u64,
                    Err(_) if s2.load(Ordering::Relaxed) => return bytes,
                    Err(_) => {}
                }
            }
        });
        Ok(LocalCollector { addr, stop, thread })
    }

    /// Stop and return the bytes received.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}

/// One worker with its two ring-backed ports, and the generator's and sink's ring ends.
struct Lane {
    name: &'static str,
    worker: Option<Worker<DpdkIo>>,
    counters: Arc<WorkerCounters>,
    gen: MbufRingProducer,
    sink: MbufRingConsumer,
    /// The outside port's RX ring: return traffic goes in here.
    wan_gen: MbufRingProducer,
    /// What the worker sends out of the inside port: the return traffic.
    back: MbufRingConsumer,
    /// Where this lane's return traffic is addressed (set once the sessions exist).
    returns: ReturnFlows,
    /// Frames owned by the generator between batches.
    stash: Vec<Mbuf>,
    /// Whether this lane's router has the NAT (MASQUERADE to the outside address).
    nat: bool,
    /// Check the frames of the next drained batch (`perf::check`, both directions).
    check_next: bool,
    _ports: Vec<Port>,
}

impl Lane {
    fn new(name: &'static str, nat: bool, pool: &Mempool, batch: usize) -> Result<Lane> {
        let ring = |suffix: &str, size: usize| {
            MbufRing::new(&format!("{name}_{suffix}"), size as u32, dpdk::SOCKET_ID_ANY)
                .with_context(|| format!("creating ring {name}_{suffix} (try more --mem)"))
        };
        let (lan_rx_p, lan_rx_c) = ring("lrx", batch + 1024)?.split();
        let (lan_tx_p, lan_tx_c) = ring("ltx", batch + 1024)?.split();
        let (wan_rx_p, wan_rx_c) = ring("wrx", batch + 1024)?.split();
        let (wan_tx_p, wan_tx_c) = ring("wtx", batch + 1024)?.split();
        let pcfg = PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 1024, tx_desc: 1024, rss: None, mtu: None };
        let mut lan = Port::from_rings(&format!("{name}_lan"), lan_rx_c, lan_tx_p, dpdk::SOCKET_ID_ANY)
            .context("creating the inside ring port (is librte_net_ring installed?)")?;
        let mut wan = Port::from_rings(&format!("{name}_wan"), wan_rx_c, wan_tx_p, dpdk::SOCKET_ID_ANY)
            .context("creating the outside ring port")?;
        for p in [&mut lan, &mut wan] {
            p.configure(&pcfg, pool).context("configuring a ring port")?;
            p.start().context("starting a ring port")?;
        }
        let counters = Arc::new(WorkerCounters::default());
        let io = DpdkIo::new(
            vec![lan.rx_queue(0)?, wan.rx_queue(0)?],
            vec![lan.tx_queue(0)?, wan.tx_queue(0)?],
            pool.clone(),
        );
        let worker = Worker::new(io, make_router(&counters, None, None)?.0, counters.clone());
        Ok(Lane {
            name,
            worker: Some(worker),
            counters,
            gen: lan_rx_p,
            sink: wan_tx_c,
            wan_gen: wan_rx_p,
            back: lan_tx_c,
            returns: ReturnFlows::untranslated(),
            stash: Vec::with_capacity(batch + 64),
            nat,
            check_next: false,
            _ports: vec![lan, wan],
        })
    }

    fn worker_mut(&mut self) -> &mut Worker<DpdkIo> {
        self.worker.as_mut().expect("worker is home between phases")
    }
}

/// The worker lane running on the worker lcore until [`Running::stop`].
struct Running<'a> {
    eal: &'a Eal,
    lcore: u32,
    stop: Arc<AtomicBool>,
    back: mpsc::Receiver<Worker<DpdkIo>>,
}

fn launch<'a>(eal: &'a Eal, lcore: u32, lane: &mut Lane, clock: TscClock) -> Result<Running<'a>> {
    let mut w = lane.worker.take().context("worker already running")?;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::sync_channel(1);
    let s = stop.clone();
    eal.launch(lcore, move || {
        w.run(&s, || clock.now());
        let _ = tx.send(w);
        0
    })
    .with_context(|| format!("launching the {} worker on lcore {lcore}", lane.name))?;
    Ok(Running { eal, lcore, stop, back: rx })
}

impl Running<'_> {
    fn stop(mut self, lane: &mut Lane) -> Result<()> {
        let rc = self.halt();
        ensure!(rc == 0, "worker on lcore {} exited with {rc}", self.lcore);
        lane.worker = Some(self.back.recv().context("worker did not come back")?);
        Ok(())
    }

    fn halt(&mut self) -> i32 {
        self.stop.store(true, Ordering::Relaxed);
        self.eal.wait(self.lcore)
    }
}

/// A phase that fails while the worker runs still stops it before anything is torn down
/// (the worker, and the mbufs it holds, then go with the channel).
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Traffic shared by every phase of one point.
struct Traffic {
    writer: FrameWriter,
    /// Return traffic: from the server to each flow's [`ReturnFlows`] address.
    ret_writer: FrameWriter,
    flows: FlowSpace,
    tcp: bool,
    hz: u64,
    batch: usize,
    /// Share of each throughput batch that is return traffic.
    return_share: f64,
}

/// The worker's drop counters that are not zero, by reason.
fn nonzero_drops(c: &WorkerCounters) -> Vec<(&'static str, u64)> {
    dataplane::stats::DropReason::ALL.iter().map(|r| (r.name(), c.drops_for(*r))).filter(|(_, n)| *n > 0).collect()
}

fn spin_us(hz: u64, us: u64) {
    let until = dpdk::cycles::rdtsc() + hz / 1_000_000 * us;
    while dpdk::cycles::rdtsc() < until {
        dpdk::cycles::pause();
    }
}

/// Move every frame of `v` into the ring (the ring is sized for a whole batch).
fn enqueue_all(gen: &mut MbufRingProducer, v: &mut Vec<Mbuf>, hz: u64) -> Result<()> {
    let mut b = Burst::<32>::new();
    let deadline = dpdk::cycles::rdtsc() + hz;
    while !v.is_empty() || !b.is_empty() {
        while !b.is_full() {
            match v.pop() {
                Some(m) => {
                    if let Err(m) = b.push(m) {
                        v.push(m);
                        break;
                    }
                }
                None => break,
            }
        }
        gen.enqueue_burst(&mut b);
        ensure!(dpdk::cycles::rdtsc() < deadline, "generator ring stayed full for 1 s: the worker is stuck");
    }
    Ok(())
}

impl Traffic {
    /// Top the stash up to a batch from the pool (fresh frames get a zero payload).
    fn fill(&self, lane: &mut Lane, pool: &Mempool, n: usize) -> Result<Vec<bool>> {
        let mut fresh = vec![false; lane.stash.len()];
        let deadline = dpdk::cycles::rdtsc() + self.hz;
        while lane.stash.len() < n {
            match pool.alloc() {
                Some(mut m) => {
                    m.set_len(self.writer.len()).context("mbuf too small for the frame size")?;
                    lane.stash.push(m);
                    fresh.push(true);
                }
                None => {
                    ensure!(dpdk::cycles::rdtsc() < deadline, "mempool empty: mbufs leaked or --batch too large");
                    spin_us(self.hz, 10);
                }
            }
        }
        Ok(fresh)
    }

    /// Write flows `next()` into the stash; stamp them now.
    fn write(&self, space: &FlowSpace, stash: &mut [Mbuf], fresh: &[bool], mut next: impl FnMut() -> u64, syn: bool) {
        let stamp = dpdk::cycles::rdtsc();
        for (i, m) in stash.iter_mut().enumerate() {
            let flow = space.flow(next());
            let _ = m.set_len(self.writer.len());
            self.writer.write(m.data_mut(), fresh.get(i).copied().unwrap_or(true), flow, stamp, syn && self.tcp);
        }
    }

    /// Write the server's replies to flows `next()` (to `returns`) into `frames`; with
    /// `expect`, note where each must arrive (inside host, port, server port).
    #[allow(clippy::too_many_arguments)]
    fn write_returns(
        &self,
        space: &FlowSpace,
        returns: &ReturnFlows,
        frames: &mut [Mbuf],
        fresh: &[bool],
        mut next: impl FnMut() -> u64,
        mut expect: Option<&mut Vec<(Ipv4Addr, u16, u16)>>,
    ) {
        let stamp = dpdk::cycles::rdtsc();
        for (i, m) in frames.iter_mut().enumerate() {
            let g = next();
            let flow = returns.flow(space, g);
            let _ = m.set_len(self.ret_writer.len());
            self.ret_writer.write(m.data_mut(), fresh.get(i).copied().unwrap_or(true), flow, stamp, false);
            if let Some(v) = expect.as_deref_mut() {
                let (host, port) = returns.inside(space, g);
                v.push((host, port, flow.1));
            }
        }
    }

    /// One drained batch: enqueue the whole stash (`share` of it as return traffic on the
    /// outside port), wait until the worker has handled all of it, take back what it
    /// sent. Returns (TSC ticks, frames, frames not delivered).
    #[allow(clippy::too_many_arguments)]
    fn batch(
        &self,
        lane: &mut Lane,
        pool: &Mempool,
        space: &FlowSpace,
        n: usize,
        mut next: impl FnMut() -> u64,
        syn: bool,
        share: f64,
    ) -> Result<(u64, u64, u64)> {
        let fresh = self.fill(lane, pool, n)?;
        let mut stash = std::mem::take(&mut lane.stash);
        // Exactly `n` frames go; the rest of the stash waits for the next batch.
        let spare = stash.split_off(n.min(stash.len()));
        let k = stash.len();
        let k_ret = ((k as f64 * share).round() as usize).min(k);
        let mut returns = stash.split_off(k - k_ret);
        self.write(space, &mut stash, &fresh, &mut next, syn);
        let mut expected = lane.check_next.then(Vec::new);
        let ret_fresh = fresh.get(k - k_ret..).unwrap_or(&[]);
        self.write_returns(space, &lane.returns, &mut returns, ret_fresh, &mut next, expected.as_mut());
        let c = lane.counters.clone();
        let rx0 = c.rx_packets.get();
        let t0 = dpdk::cycles::rdtsc();
        enqueue_all(&mut lane.gen, &mut stash, self.hz)?;
        returns.reverse(); // enqueue_all takes from the back: keep the written order
        enqueue_all(&mut lane.wan_gen, &mut returns, self.hz)?;
        let deadline = t0 + 5 * self.hz;
        // Done when the worker has received every frame and finished the pass that did
        // (its poll counter moved on twice). Poll at most every microsecond: reading the
        // worker's counter line more often would slow the worker that writes it.
        while c.rx_packets.get() - rx0 < k as u64 {
            ensure!(dpdk::cycles::rdtsc() < deadline, "worker did not take a batch of {k} frames in 5 s");
            spin_us(self.hz, 1);
        }
        let polls = c.polls.get();
        while c.polls.get() < polls + 2 {
            ensure!(dpdk::cycles::rdtsc() < deadline, "worker stopped polling");
            dpdk::cycles::pause();
        }
        let t1 = dpdk::cycles::rdtsc();
        let mut b = Burst::<32>::new();
        let mut out = 0usize;
        while lane.sink.dequeue_burst(&mut b) > 0 {
            out += b.len();
            stash.extend(b.drain());
        }
        let mut back = 0usize;
        while lane.back.dequeue_burst(&mut b) > 0 {
            back += b.len();
            stash.extend(b.drain());
        }
        let delivered = (out + back) as u64;
        if let Some(expected) = expected {
            lane.check_next = false;
            let e = Expect { nat: lane.nat, tcp: self.tcp };
            let what = || format!("{} lane: the worker's output is wrong, so its rate means nothing", lane.name);
            ensure!(
                out == k - k_ret && back == k_ret,
                "{}: of {} outbound and {k_ret} return frames, {out} and {back} came out (drops: {:?})",
                what(),
                k - k_ret,
                nonzero_drops(&c)
            );
            for (i, m) in stash[..out].iter().enumerate() {
                check::outbound(i, m.data(), e).with_context(what)?;
            }
            for (i, (m, want)) in stash[out..out + back].iter().zip(&expected).enumerate() {
                check::inbound(i, m.data(), e, Some(*want)).with_context(|| format!("{} (return traffic)", what()))?;
            }
        }
        // Frames the worker dropped went back to the pool; count them by what arrived.
        let drops = (k as u64).saturating_sub(delivered);
        stash.extend(spare);
        lane.stash = stash;
        Ok((t1 - t0, k as u64, drops))
    }

    /// Drained batches over the flows for `secs`: frames per second (and drops).
    fn throughput(&self, lane: &mut Lane, pool: &Mempool, secs: f64, start: &mut u64) -> Result<(f64, u64)> {
        let (mut ticks, mut frames, mut drops) = (0u64, 0u64, 0u64);
        let wall = StdInstant::now();
        while wall.elapsed().as_secs_f64() < secs {
            let mut g = *start;
            let (t, f, d) = self.batch(
                lane,
                pool,
                &self.flows,
                self.batch,
                || {
                    g += 1;
                    g
                },
                false,
                self.return_share,
            )?;
            *start = g;
            ticks += t;
            frames += f;
            drops += d;
        }
        Ok((frames as f64 * self.hz as f64 / ticks.max(1) as f64, drops))
    }

    /// Paced traffic at `pps` for `secs`: latency from the payload stamps.
    fn paced(&self, lane: &mut Lane, pool: &Mempool, pps: f64, secs: f64, start: &mut u64) -> Result<LatencyPoint> {
        let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3).context("histogram")?;
        let fresh = self.fill(lane, pool, self.batch)?;
        let mut stash = std::mem::take(&mut lane.stash);
        // Zero the payload of fresh frames once; from here on only headers are rewritten.
        self.write(&self.flows, &mut stash, &fresh, || 0, false);
        let hz = self.hz as f64;
        let t0 = dpdk::cycles::rdtsc();
        let end = t0 + (secs * hz) as u64;
        let warm = t0 + (secs * hz * 0.1) as u64;
        let (mut sent, mut received) = (0u64, 0u64);
        let mut b = Burst::<32>::new();
        let mut g = *start;
        loop {
            let now = dpdk::cycles::rdtsc();
            if now >= end {
                break;
            }
            while lane.sink.dequeue_burst(&mut b) > 0 {
                let t = dpdk::cycles::rdtsc();
                for m in b.drain() {
                    if let Some(st) = self.writer.read_stamp(m.data()) {
                        if t >= warm {
                            let ns = stamp_elapsed(t, st) as f64 * 1e9 / hz;
                            hist.saturating_record(ns as u64);
                        }
                    }
                    received += 1;
                    stash.push(m);
                }
            }
            let due = (((now - t0) as f64 / hz) * pps) as u64;
            let n = due.saturating_sub(sent).min(32) as usize;
            if n == 0 || stash.is_empty() {
                continue;
            }
            let stamp = dpdk::cycles::rdtsc();
            for _ in 0..n.min(stash.len()) {
                let Some(mut m) = stash.pop() else { break };
                g += 1;
                self.writer.write(m.data_mut(), false, self.flows.flow(g), stamp, false);
                if let Err(m) = b.push(m) {
                    stash.push(m);
                    break;
                }
            }
            sent += lane.gen.enqueue_burst(&mut b) as u64;
            stash.extend(b.drain());
        }
        // Let what is in flight arrive (bounded), then take every frame back.
        let settle = dpdk::cycles::rdtsc() + self.hz / 20;
        while dpdk::cycles::rdtsc() < settle {
            while lane.sink.dequeue_burst(&mut b) > 0 {
                received += b.len() as u64;
                stash.extend(b.drain());
            }
        }
        while lane.back.dequeue_burst(&mut b) > 0 {
            b.clear();
        }
        *start = g;
        lane.stash = stash;
        let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        Ok(LatencyPoint {
            load: 0.0,
            offered_mpps: pps / 1e6,
            sent_mpps: sent as f64 / secs / 1e6,
            p50_us: us(0.5),
            p90_us: us(0.9),
            p99_us: us(0.99),
            p999_us: us(0.999),
            max_us: hist.max() as f64 / 1000.0,
            sent,
            received,
        })
    }
}

struct Plan {
    sweep: Vec<u64>,
    subscribers: Option<u32>,
    frame_size: usize,
    l4: L4,
    duration: f64,
    runs: usize,
    batch: usize,
    loads: Vec<f64>,
    return_share: f64,
    logging: bool,
}

fn plan(args: &Args) -> Result<Plan> {
    let sessions = args.sessions.unwrap_or(if args.quick { 10_000 } else { 1_000_000 });
    ensure!((1000..=1 << 27).contains(&sessions), "--sessions {sessions}: must be 1000..=134217728");
    let sweep = match &args.sweep {
        Some(s) => s.clone(),
        None if args.quick => vec![1000, sessions],
        None => {
            let mut v = vec![];
            let mut n = 1000;
            while n < sessions {
                v.push(n);
                n *= 10;
            }
            v.push(sessions);
            v
        }
    };
    let mut sweep = sweep;
    sweep.sort_unstable();
    sweep.dedup();
    for &n in &sweep {
        ensure!((16..=1 << 27).contains(&n), "--sweep {n}: session counts must be 16..=134217728");
    }
    ensure!(args.batch >= 32 && args.batch <= 1 << 16, "--batch {}: must be 32..=65536", args.batch);
    ensure!((0.0..=1.0).contains(&args.return_share), "--return-share {}: a fraction in 0..=1", args.return_share);
    for &l in &args.loads {
        ensure!(l > 0.0 && l <= 1.0, "--loads {l}: loads are fractions in (0, 1]");
    }
    ensure!(args.cores.len() == 2 && args.cores[0] != args.cores[1], "--cores: give two different cores, MAIN,WORKER");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    if let Some(c) = args.cores.iter().find(|&&c| c >= cpus) {
        bail!("--cores: core {c} is not available (this process may use {cpus} CPUs: 0..={})", cpus - 1);
    }
    let l4 = match args.proto {
        ProtoArg::Udp => L4::Udp,
        ProtoArg::Tcp => L4::Tcp,
    };
    let duration = args.duration.unwrap_or(if args.quick { 0.2 } else { 1.0 });
    ensure!(duration > 0.0 && duration <= 600.0, "--duration {duration}: must be in (0, 600] seconds");
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 });
    ensure!((1..=101).contains(&runs), "--runs {runs}: must be 1..=101");
    FrameWriter::new(l4, args.frame_size, GEN_MAC, LAN_MAC, SERVER)?;
    Ok(Plan {
        sweep,
        subscribers: args.subscribers,
        frame_size: args.frame_size,
        l4,
        duration,
        runs,
        batch: if args.quick { args.batch.min(4096) } else { args.batch },
        loads: args.loads.clone(),
        return_share: args.return_share,
        logging: args.logging,
    })
}

fn progress(t0: StdInstant, msg: &str) {
    eprintln!("masq-bench [{:6.1}s] {msg}", t0.elapsed().as_secs_f64());
}

#[allow(clippy::too_many_arguments)]
fn measure_point(
    eal: &Eal,
    lcore: u32,
    pool: &Mempool,
    clock: TscClock,
    nat_lane: &mut Lane,
    fwd_lane: &mut Lane,
    p: &Plan,
    sessions: u64,
    t0: StdInstant,
) -> Result<Point> {
    let hz = dpdk::cycles::tsc_hz();
    let subs = p.subscribers.unwrap_or((sessions / 100).clamp(1, 1000) as u32).max(1);
    let per_sub = (sessions / u64::from(subs)).max(1);
    let max_sports = (32_000 / subs).clamp(1, 4096);
    let flows = FlowSpace::new(subs, per_sub, max_sports)?;
    let n = flows.len();
    let writer = FrameWriter::new(p.l4, p.frame_size, GEN_MAC, LAN_MAC, SERVER)?;
    let ret_writer = FrameWriter::inbound(p.l4, p.frame_size, GATEWAY_MAC, WAN_MAC, SERVER)?;
    let tr =
        Traffic { writer, ret_writer, flows, tcp: p.l4 == L4::Tcp, hz, batch: p.batch, return_share: p.return_share };
    progress(
        t0,
        &format!(
            "{n} sessions: {subs} subscribers x {per_sub} flows ({} source x {} destination ports each)",
            tr.flows.sport_count(),
            tr.flows.dport_count()
        ),
    );

    // Memory baseline without any NAT, then the NAT sized to exactly n sessions.
    let counters = nat_lane.counters.clone();
    reset_nat(nat_lane.worker_mut(), &counters, None, None)?;
    let rss0 = rss_bytes();
    reset_nat(nat_lane.worker_mut(), &counters, Some((n, tr.flows.sport_count().max(1))), Some(&tr.flows))?;
    let fwd_counters = fwd_lane.counters.clone();
    reset_nat(fwd_lane.worker_mut(), &fwd_counters, None, Some(&tr.flows))?;
    fwd_lane.returns = ReturnFlows::untranslated();

    // 0. With --logging: connection establishment with session logging to a local
    // IPFIX socket, on a fresh table, then a fresh table again for what follows.
    let logging = if p.logging {
        let (sink, drain) =
            dataplane::logging::ring(dataplane::logging::DEFAULT_RING, 0, dataplane::logging::EventMask::SESSIONS);
        nat_lane.worker_mut().nat_mut().context("NAT lane without NAT")?.nat_mut().set_log(sink);
        let collector = LocalCollector::start()?;
        let settings = dataplane::logging::ExporterSettings {
            ipfix: vec![collector.addr],
            syslog: None,
            observation_domain: 1,
            mtu: 1400,
            template_refresh_ms: 60_000,
            facility: 16,
            hostname: "masq-bench".into(),
        };
        let exporter = dataplane::logging::Exporter::udp(settings, vec![drain], 0).context("logging exporter")?;
        let stats = exporter.stats();
        let stop_log = Arc::new(AtomicBool::new(false));
        let log_thread = exporter.spawn(stop_log.clone()).context("logging thread")?;
        let run = launch(eal, lcore, nat_lane, clock)?;
        let (mut lticks, mut lcreated, mut g) = (0u64, 0u64, 0u64);
        while g < n {
            let k = (n - g).min(tr.batch as u64) as usize;
            let mut next = g;
            let (t, f, d) = tr.batch(
                nat_lane,
                pool,
                &tr.flows,
                k,
                || {
                    let v = next;
                    next += 1;
                    v
                },
                true,
                0.0,
            )?;
            g = next;
            lticks += t;
            lcreated += f - d;
        }
        run.stop(nat_lane)?;
        stop_log.store(true, Ordering::Relaxed);
        log_thread.join().map_err(|_| anyhow::anyhow!("the logging thread panicked"))?;
        let log = nat_lane.worker_mut().nat().context("NAT lane without NAT")?.nat().log_counters();
        let rate = lcreated as f64 * hz as f64 / lticks.max(1) as f64;
        let received = collector.stop();
        let exported = stats.ipfix_records.load(Ordering::Relaxed);
        progress(
            t0,
            &format!(
                "  with logging: {lcreated} sessions created at {:.2} M/s; {} events, {} dropped, {exported} IPFIX records, {received} bytes received",
                rate / 1e6,
                log.events,
                log.dropped
            ),
        );
        reset_nat(nat_lane.worker_mut(), &counters, Some((n, tr.flows.sport_count().max(1))), Some(&tr.flows))?;
        Some(LoggingPoint {
            new_sessions_per_sec: rate,
            events: log.events,
            dropped: log.dropped,
            ipfix_records: exported,
        })
    } else {
        None
    };

    // 1. Connection establishment: every frame a new flow, until the table is full.
    let run = launch(eal, lcore, nat_lane, clock)?;
    let (mut ticks, mut created) = (0u64, 0u64);
    let mut g = 0u64;
    let mut last = StdInstant::now();
    while g < n {
        let k = (n - g).min(tr.batch as u64) as usize;
        let mut next = g;
        let (t, f, d) = tr.batch(
            nat_lane,
            pool,
            &tr.flows,
            k,
            || {
                let v = next;
                next += 1;
                v
            },
            true,
            0.0,
        )?;
        g = next;
        ticks += t;
        created += f - d;
        if last.elapsed().as_secs_f64() > 2.0 {
            last = StdInstant::now();
            progress(t0, &format!("  new sessions: {:.0} %", 100.0 * g as f64 / n as f64));
        }
    }
    // One batch past capacity, from other subscribers: new flows now fail (counted
    // drops) and the table stays full.
    let others = FlowSpace::new(1024, 64, 64)?.with_base(Ipv4Addr::new(100, 96, 0, 1));
    let mut beyond = 0u64;
    let (_, _, overflow_drops) = tr.batch(
        nat_lane,
        pool,
        &others,
        tr.batch.min(4096),
        || {
            beyond += 1;
            beyond
        },
        true,
        0.0,
    )?;
    run.stop(nat_lane)?;
    let new_per_sec = created as f64 * hz as f64 / ticks.max(1) as f64;
    let nat = nat_lane.worker_mut().nat().context("NAT lane without NAT")?.nat();
    let capacity = u64::from(nat.count());
    let mem = nat.memory();
    let rss1 = rss_bytes();
    // Return traffic goes to the external endpoints the NAT just mapped the flows to.
    let proto = if tr.tcp { nat::Proto::Tcp } else { nat::Proto::Udp };
    let returns = ReturnFlows::translated(&tr.flows, OUTSIDE, |a, port| {
        nat.mapping_of(nat::Endpoint::new(a, port), proto).map(|m| m.outside.port)
    })?;
    let bytes_per_session = rss1.saturating_sub(rss0) as f64 / capacity.max(1) as f64;
    let table_bytes = mem.total() as f64 / f64::from(mem.max_sessions.max(1));
    progress(
        t0,
        &format!(
            "  {created} sessions created at {:.2} M/s; table holds {capacity} ({overflow_drops} frames of a batch of new flows beyond it dropped); {:.0} B/session resident",
            new_per_sec / 1e6,
            bytes_per_session
        ),
    );

    nat_lane.returns = returns;

    // 2. Throughput with every session active, NAT and forwarding interleaved, both
    //    directions (`--return-share` of the frames are the server's replies).
    let mut start = 0u64;
    let (mut nat_runs, mut fwd_runs, mut nat_drops) = (vec![], vec![], 0u64);
    let mut stages_before = nat_lane.worker_mut().runtime().figures();
    for r in 0..=p.runs {
        // run 0 warms caches and is not counted
        let secs = if r == 0 { p.duration.min(0.3) } else { p.duration };
        nat_lane.check_next = r == 0;
        fwd_lane.check_next = r == 0;
        if r == 1 {
            // The warm-up run is not counted in the stage table either.
            stages_before = nat_lane.worker_mut().runtime().figures();
        }
        let run = launch(eal, lcore, nat_lane, clock)?;
        let (pps, d) = tr.throughput(nat_lane, pool, secs, &mut start)?;
        run.stop(nat_lane)?;
        let run = launch(eal, lcore, fwd_lane, clock)?;
        let (fpps, _) = tr.throughput(fwd_lane, pool, secs, &mut start)?;
        run.stop(fwd_lane)?;
        if r > 0 {
            nat_runs.push(pps / 1e6);
            fwd_runs.push(fpps / 1e6);
            nat_drops += d;
            progress(t0, &format!("  run {r}/{}: NAT {:.3} Mpps, forward {:.3} Mpps", p.runs, pps / 1e6, fpps / 1e6));
        }
    }
    let nat_mpps = median(&nat_runs);
    let fwd_mpps = median(&fwd_runs);
    let nat_stage_cycles = stage_cycles(&stages_before, &nat_lane.worker_mut().runtime().figures());
    if !nat_stage_cycles.is_empty() {
        progress(t0, "  NAT worker per stage over the runs (packets/call, cycles/packet):");
        for s in &nat_stage_cycles {
            progress(t0, &format!("    {:<14} {:>6.1} {:>8.1}", s.stage, s.packets_per_call, s.cycles_per_packet));
        }
    }

    // 3. Latency at fractions of the NAT rate.
    let mut latency = vec![];
    let run = launch(eal, lcore, nat_lane, clock)?;
    for &load in &p.loads {
        let mut l = tr.paced(nat_lane, pool, nat_mpps * 1e6 * load, p.duration, &mut start)?;
        l.load = load;
        progress(
            t0,
            &format!(
                "  latency at {:.0} %: p50 {:.1} µs, p99 {:.1} µs ({} sent, {} received)",
                load * 100.0,
                l.p50_us,
                l.p99_us,
                l.sent,
                l.received
            ),
        );
        latency.push(l);
    }
    run.stop(nat_lane)?;

    // 4. Tear-down: flush the full table, as `masqctl sessions flush` does, in steps.
    let now = clock.now();
    let nat = nat_lane.worker_mut().nat_mut().context("NAT lane without NAT")?.nat_mut();
    let before = u64::from(nat.count());
    let f0 = StdInstant::now();
    while nat.count() > 0 {
        if nat.flush(now, 65_536, |_| {}) == 0 {
            break;
        }
    }
    let teardown = (before - u64::from(nat.count())) as f64 / f0.elapsed().as_secs_f64().max(1e-9);
    // Free the NAT's tables before the next point.
    reset_nat(nat_lane.worker_mut(), &counters, None, None)?;

    if let Some(l) = &logging {
        progress(
            t0,
            &format!(
                "  logging costs {:.1} % of the new-session rate ({:.2} -> {:.2} M/s), {} of {} events dropped",
                100.0 * (1.0 - l.new_sessions_per_sec / new_per_sec.max(1e-9)),
                new_per_sec / 1e6,
                l.new_sessions_per_sec / 1e6,
                l.dropped,
                l.events + l.dropped
            ),
        );
    }
    Ok(Point {
        logging,
        sessions: capacity,
        subscribers: subs,
        nat_mpps,
        nat_mpps_runs: nat_runs,
        forward_mpps: fwd_mpps,
        forward_mpps_runs: fwd_runs,
        nat_gbps: gbps(nat_mpps, p.frame_size),
        forward_gbps: gbps(fwd_mpps, p.frame_size),
        nat_forward_ratio: if fwd_mpps > 0.0 { nat_mpps / fwd_mpps } else { 0.0 },
        nat_cycles_per_packet: if nat_mpps > 0.0 { hz as f64 / (nat_mpps * 1e6) } else { 0.0 },
        forward_cycles_per_packet: if fwd_mpps > 0.0 { hz as f64 / (fwd_mpps * 1e6) } else { 0.0 },
        nat_drops,
        new_sessions_per_sec: new_per_sec,
        table_capacity: capacity,
        teardown_per_sec: teardown,
        bytes_per_session,
        nat_table_bytes_per_session: table_bytes,
        latency,
        nat_stage_cycles,
    })
}

/// Each stage that ran between two snapshots of a worker's runtime table: packets per
/// call and cycles per packet.
fn stage_cycles(before: &[StageFigures], after: &[StageFigures]) -> Vec<StageCycles> {
    after
        .iter()
        .zip(before)
        .filter(|(a, b)| a.calls > b.calls && a.packets > b.packets)
        .map(|(a, b)| {
            let (calls, packets, cycles) = (a.calls - b.calls, a.packets - b.packets, a.cycles - b.cycles);
            StageCycles {
                stage: a.stage.name().to_string(),
                packets_per_call: packets as f64 / calls as f64,
                cycles_per_packet: cycles as f64 / packets as f64,
            }
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masq-bench: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// EAL leaves its runtime directory (config and lock files of `--file-prefix`) behind;
/// every run has its own prefix, so remove it rather than pile them up.
fn remove_runtime_dir(prefix: &str) {
    let base = if std::env::var_os("XDG_RUNTIME_DIR").is_some() && !is_root() {
        PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR").unwrap_or_default()).join("dpdk")
    } else if is_root() {
        PathBuf::from("/var/run/dpdk")
    } else {
        PathBuf::from("/tmp/dpdk")
    };
    let _ = std::fs::remove_dir_all(base.join(prefix));
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Uid:")).map(|u| u.split_whitespace().next() == Some("0")))
        .unwrap_or(false)
}

fn run(args: &Args) -> Result<()> {
    let p = plan(args)?;
    let t0 = StdInstant::now();
    let prefix = format!("masq-bench-{}", std::process::id());
    let mut eal_args: Vec<String> = vec![
        "masq-bench".into(),
        "-l".into(),
        format!("{},{}", args.cores[0], args.cores[1]),
        "--main-lcore".into(),
        args.cores[0].to_string(),
        "--no-pci".into(),
        "--file-prefix".into(),
        prefix.clone(),
        "--log-level".into(),
        "warning".into(),
        "-m".into(),
        args.mem.to_string(),
    ];
    eal_args.push(if args.hugepages { "--huge-unlink" } else { "--no-huge" }.into());
    let eal = Eal::init(&eal_args)
        .with_context(|| format!("EAL initialisation failed (arguments: {})", eal_args[1..].join(" ")))?;
    let lcore = *eal.worker_lcores().first().context("EAL enabled no worker lcore")?;
    let mbufs = ((2 * (p.batch + 2048) + 4096) as u32).next_power_of_two() - 1;
    let pool = Mempool::new("bench_pkts", mbufs, 256, dpdk::DEFAULT_DATA_ROOM, dpdk::SOCKET_ID_ANY)
        .with_context(|| format!("creating a pool of {mbufs} mbufs (try a larger --mem)"))?;
    let clock = TscClock::new();
    let mut nat_lane = Lane::new("nat", true, &pool, p.batch)?;
    let mut fwd_lane = Lane::new("fwd", false, &pool, p.batch)?;
    for lane in [&mut nat_lane, &mut fwd_lane] {
        lane.worker_mut().set_runtime_counting(!args.no_runtime);
    }
    progress(t0, &format!("EAL up, worker on lcore {lcore}, {mbufs} mbufs; measuring {:?} sessions", p.sweep));

    let mut report = Report {
        frame_size: p.frame_size,
        proto: format!("{:?}", p.l4).to_lowercase(),
        return_share: p.return_share,
        tsc_hz: dpdk::cycles::tsc_hz(),
        runs: p.runs,
        duration_s: p.duration,
        points: vec![],
    };
    let mut result = Ok(());
    for &n in &p.sweep {
        match measure_point(&eal, lcore, &pool, clock, &mut nat_lane, &mut fwd_lane, &p, n, t0) {
            Ok(pt) => report.points.push(pt),
            Err(e) => {
                result = Err(e.context(format!("measuring {n} sessions")));
                break;
            }
        }
    }
    // Give every mbuf back before the pool goes, and check none leaked.
    for lane in [&mut nat_lane, &mut fwd_lane] {
        lane.stash.clear();
        if let Some(w) = lane.worker.as_mut() {
            w.shutdown();
        }
    }
    drop(nat_lane);
    drop(fwd_lane);
    let in_use = pool.in_use();
    drop(pool);
    drop(eal);
    remove_runtime_dir(&prefix);
    result?;
    if in_use != 0 {
        bail!("{in_use} mbufs did not come back to the pool");
    }
    print!("{}", report.table());
    if let Some(path) = &args.plot {
        perf::plot::write_svg(&report, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        println!("plot: {}", path.display());
    }
    if args.json {
        println!("{}", report.json_line());
    }
    Ok(())
}
