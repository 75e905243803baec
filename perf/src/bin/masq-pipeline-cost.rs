//! masq-pipeline-cost: the worker's packet pipeline on in-memory I/O, for instruction
//! counts and per-stage profiles without DPDK, a NIC or root.
//!
//! It builds the bench topology's worker (`perf::topology`), opens `--sessions` flows
//! (untimed), then runs `--bursts` bursts of `--burst` frames through `Worker::poll` in
//! one function, [`measured`], and prints what that took and the worker's runtime table.
//! Frames are written by `perf::flows::FrameWriter` into recycled buffers as they are
//! received, so the I/O costs a 60-byte header write per frame and nothing else.
//!
//! Modes: `nat` (established flows, uniformly at random over the table), `fwd` (the same
//! frames through a worker without NAT) and `new` (every frame a new flow).
//!
//! Wall-clock figures on a shared machine are noise; instruction counts are not:
//!
//! ```sh
//! valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/release/masq-pipeline-cost --mode nat --sessions 100000 --bursts 2000 --no-runtime
//! ```
//!
//! counts the instructions of the measured bursts only ("Collected"); divide by the
//! packets printed. `perf/pipeline-instructions.sh` does that for every mode.

#![deny(unsafe_code)]

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant as StdInstant;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use clap::{Parser, ValueEnum};

use dataplane::config::Config;
use dataplane::counters::WorkerCounters;
use dataplane::io::mem::MemFrame;
use dataplane::io::{Frame, PacketIo, TxReport};
use dataplane::l3::neighbor::NeighborTable;
use dataplane::l3::route::RouteTable;
use dataplane::l3::router::Router;
use dataplane::nat::SharedRules;
use dataplane::pipeline::Stage;
use dataplane::setup;
use dataplane::time::Instant;
use dataplane::worker::Worker;
use perf::flows::{FlowSpace, FrameWriter, L4};
use perf::topology::{config_text, GEN_MAC, LAN_MAC, RULES, SERVER, WAN_MAC};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Established flows through the NAT.
    Nat,
    /// The same frames, plain forwarding.
    Fwd,
    /// New flows: one session created per frame.
    New,
}

/// Run the worker's pipeline on in-memory frames and report its cost per packet.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[arg(long, value_enum, default_value = "nat")]
    mode: Mode,
    /// Sessions open before the measurement (the flows `nat` and `fwd` draw from).
    #[arg(long, default_value_t = 100_000)]
    sessions: u64,
    /// Bursts measured.
    #[arg(long, default_value_t = 10_000)]
    bursts: u64,
    /// Frames per burst (`[workers] burst`).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Subscribers (default sessions/100, between 1 and 1000, as masq-bench).
    #[arg(long)]
    subscribers: Option<u32>,
    /// Do not time the stages (what counting costs: compare with and without).
    #[arg(long)]
    no_runtime: bool,
}

/// What the next bursts carry: flow numbers from a generator.
struct BenchIo {
    writer: FrameWriter,
    flows: FlowSpace,
    free: Vec<MemFrame>,
    rx: VecDeque<MemFrame>,
    burst: usize,
    /// Flow numbers of the frames to generate: uniform over `0..span` from `next`
    /// (a xorshift), or sequential from `next` (`sequential`).
    next: u64,
    span: u64,
    sequential: bool,
    /// Bursts left to hand out on the inside port.
    bursts_left: u64,
    report: TxReport,
    #[cfg_attr(feature = "dpdk", allow(dead_code))]
    start: StdInstant,
}

impl BenchIo {
    fn flow_number(&mut self) -> u64 {
        if self.sequential {
            self.next += 1;
            return self.next - 1;
        }
        // xorshift64
        let mut x = self.next;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.next = x;
        x % self.span
    }
}

impl PacketIo for BenchIo {
    type Frame = MemFrame;

    fn port_count(&self) -> usize {
        2
    }

    fn rx_burst(&mut self, port: u16) -> usize {
        if port != 0 || self.bursts_left == 0 {
            return 0;
        }
        self.bursts_left -= 1;
        for _ in 0..self.burst {
            let Some(mut f) = self.free.pop() else { break };
            let g = self.flow_number();
            let flow = self.flows.flow(g);
            self.writer.write(f.room_mut(), false, flow, 0, false);
            f.set_len(self.writer.len());
            self.rx.push_back(f);
        }
        self.rx.len()
    }

    fn next_rx(&mut self) -> Option<MemFrame> {
        self.rx.pop_front()
    }

    fn tx(&mut self, _port: u16, frame: MemFrame) {
        self.report.packets += 1;
        self.report.bytes += frame.len() as u64;
        self.free.push(frame);
    }

    fn flush(&mut self) -> TxReport {
        std::mem::take(&mut self.report)
    }

    fn free(&mut self, frame: MemFrame) {
        self.free.push(frame);
    }

    fn alloc(&mut self) -> Option<MemFrame> {
        self.free.pop()
    }

    /// The TSC as masqd reads it (DPDK's `rte_rdtsc`; no EAL needed), or nanoseconds
    /// without the `dpdk` feature.
    fn cycles(&self) -> u64 {
        #[cfg(feature = "dpdk")]
        {
            dpdk::cycles::rdtsc()
        }
        #[cfg(not(feature = "dpdk"))]
        {
            self.start.elapsed().as_nanos() as u64
        }
    }
}

fn worker(args: &Args, capacity: u64, flows: &FlowSpace, nat: bool) -> Result<Worker<BenchIo>> {
    let config = Config::parse(&config_text(capacity, flows.sport_count().max(1)))
        .map_err(|e| anyhow::anyhow!("bench config: {e}"))?;
    let counters = Arc::new(WorkerCounters::default());
    let routes = Arc::new(RouteTable::from_config(&config));
    let neighbors = Arc::new(NeighborTable::new(64));
    for n in &config.neighbors {
        neighbors.add_static(n.port as u16, n.address, n.mac).map_err(|_| anyhow::anyhow!("neighbour table full"))?;
    }
    let router = Router::new(routes, neighbors, vec![LAN_MAC, WAN_MAC], counters.clone());
    let writer = FrameWriter::new(L4::Udp, 64, GEN_MAC, LAN_MAC, SERVER)?;
    let free = (0..args.burst * 2).map(|_| MemFrame::from_bytes(&[])).collect();
    let io = BenchIo {
        writer,
        flows: flows.clone(),
        free,
        rx: VecDeque::with_capacity(args.burst),
        burst: args.burst,
        next: 0,
        span: 1,
        sequential: true,
        bursts_left: 0,
        report: TxReport::default(),
        start: StdInstant::now(),
    };
    let mut w = Worker::new(io, router, counters);
    if nat {
        let (set, compiled) = setup::load_rules(RULES, &config).context("bench rules")?;
        let shared: SharedRules = Arc::new(ArcSwap::from_pointee(compiled));
        w = w.with_nat(setup::nat_path(&config, &set, shared, setup::timeouts(&config), 0, 1, 0x6d63)?);
    }
    w.set_runtime_counting(!args.no_runtime);
    Ok(w)
}

/// The measured part: `bursts` polls, one burst each.
#[inline(never)]
fn measured(w: &mut Worker<BenchIo>, bursts: u64, now: Instant) -> usize {
    let mut n = 0;
    for _ in 0..bursts {
        n += w.poll(black_box(now));
    }
    n
}

fn run(args: &Args) -> Result<()> {
    anyhow::ensure!((1..=256).contains(&args.burst), "--burst must be 1..=256");
    let subs = args.subscribers.unwrap_or((args.sessions / 100).clamp(1, 1000) as u32).max(1);
    let packets = args.bursts * args.burst as u64;
    // `new` continues the flow space past the open sessions: one new flow per frame.
    let wanted = args.sessions + if args.mode == Mode::New { packets } else { 0 };
    let flows = FlowSpace::new(subs, wanted.div_ceil(u64::from(subs)), (32_000 / subs).clamp(1, 4096))?;
    let open = (args.sessions / u64::from(subs)).max(1) * u64::from(subs);
    let nat = args.mode != Mode::Fwd;
    let mut w = worker(args, flows.len().max(16), &flows, nat)?;
    let now = Instant::from_secs(1);
    // Open the sessions, in order (`new` too: its table is as full as the others').
    if nat {
        let io = w.io_mut();
        io.sequential = true;
        io.next = 0;
        io.bursts_left = open / args.burst as u64;
        while w.poll(now) > 0 {}
    }
    let open = if nat { u64::from(w.nat().map_or(0, |p| p.nat().count())) } else { open };
    let io = w.io_mut();
    io.bursts_left = args.bursts;
    if args.mode == Mode::New {
        io.sequential = true;
        io.next = open;
    } else {
        io.sequential = false;
        io.next = 0x2545_f491_4f6c_dd1d;
        io.span = open.max(1);
    }
    let runtime_before = w.runtime().figures();
    let t0 = StdInstant::now();
    let got = measured(&mut w, args.bursts, now);
    let secs = t0.elapsed().as_secs_f64();
    let c = w.counters();
    println!(
        "mode {:?}: {got} packets in {} bursts of {}, {} sessions open, {:.1} ns/packet (wall clock), {} sent, {} dropped",
        args.mode,
        args.bursts,
        args.burst,
        w.nat().map_or(0, |p| p.nat().count()),
        secs * 1e9 / got.max(1) as f64,
        c.tx_packets.get(),
        c.drops_total()
    );
    if args.mode == Mode::New {
        let created = w.nat().map_or(0, |p| p.nat().counters().sessions_created);
        println!("sessions created: {created}");
    }
    if !args.no_runtime {
        let unit = if cfg!(feature = "dpdk") { "cyc/pkt" } else { "ns/pkt" };
        println!("{:<14} {:>10} {:>12} {:>10} {:>8}", "stage", "calls", "packets", "pkts/call", unit);
        for (after, before) in w.runtime().figures().iter().zip(runtime_before) {
            let (calls, pkts, ns) =
                (after.calls - before.calls, after.packets - before.packets, after.cycles - before.cycles);
            if calls == 0 {
                continue;
            }
            let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
            println!(
                "{:<14} {calls:>10} {pkts:>12} {:>10.1} {:>8.1}",
                after.stage.name(),
                ratio(pkts, calls),
                ratio(ns, pkts)
            );
        }
    }
    black_box(Stage::ALL);
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masq-pipeline-cost: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
