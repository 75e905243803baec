//! masq-bench-host: what the exception path costs a worker, for the two designs the host
//! interface could have (docs/host-interface.md, "Measured"):
//!
//! - **a TAP queue per worker**: the worker polls its TAP queue every pass (a `read()`
//!   that usually finds nothing) and writes each punted frame to it (a `writev()` per
//!   frame, in which the kernel also receives the frame);
//! - **rings to a host thread**: the worker dequeues from an SPSC ring (usually empty)
//!   and enqueues punted frames on another; the host thread on the main core does the
//!   TAP I/O.
//!
//! It creates one `net_tap` (`masqbench0`, IPv6 off, no address: frames written to it
//! are for a MAC the kernel does not have and are dropped by the kernel's stack) and one
//! ring, and times each operation with the TSC on the main lcore: median cycles per
//! call of `--runs` runs of `--iterations` calls. Run it as root in a network namespace
//! of its own, e.g.
//! `ip netns add hb && ip netns exec hb target/release/masq-bench-host; ip netns del hb`.

#![deny(unsafe_code)]

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;

use dpdk::{Burst, Eal, MbufRing, Mempool, Port, PortConfig};
use perf::results::median;

/// The worker-side cost of a TAP queue per worker against rings to a host thread.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Calls per run.
    #[arg(long, default_value_t = 100_000)]
    iterations: u32,
    /// Runs (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Extra EAL arguments.
    #[arg(long, default_value = "--no-huge -m 256 --file-prefix masq-bench-host")]
    eal: String,
}

#[derive(Serialize)]
struct Figures {
    tsc_hz: u64,
    /// Cycles of one poll of an empty TAP queue (`rx_burst`: a `read()` that finds nothing).
    tap_poll_empty: f64,
    /// Cycles of one poll of an empty ring (`dequeue_burst`).
    ring_poll_empty: f64,
    /// Cycles per frame written to the TAP (`tx_burst` of one frame).
    tap_write_one: f64,
    /// Cycles per frame written to the TAP in bursts of 32.
    tap_write_burst32: f64,
    /// Cycles per frame enqueued on a ring in bursts of one.
    ring_enqueue_one: f64,
    /// Cycles per frame enqueued on a ring in bursts of 32.
    ring_enqueue_burst32: f64,
}

const FRAME: [u8; 60] = {
    let mut f = [0u8; 60];
    // To 02:00:00:00:ff:ff (not the TAP's MAC), from 02:00:00:00:00:01, IPv4.
    f[0] = 2;
    f[4] = 0xff;
    f[5] = 0xff;
    f[6] = 2;
    f[11] = 1;
    f[12] = 0x08;
    f[14] = 0x45;
    f[17] = 46;
    f[22] = 64;
    f[23] = 17;
    f
};

fn fill<const N: usize>(pool: &Mempool, burst: &mut Burst<N>, n: usize) -> Result<()> {
    for _ in 0..n {
        let mut m = pool.alloc().context("mbuf pool empty")?;
        m.room_mut()[..FRAME.len()].copy_from_slice(&FRAME);
        m.set_len(FRAME.len()).map_err(|e| anyhow::anyhow!("{e}"))?;
        if burst.push(m).is_err() {
            anyhow::bail!("burst full");
        }
    }
    Ok(())
}

/// Median over `runs` of cycles per unit: `f` returns (cycles, units) of one run.
fn measure(runs: usize, mut f: impl FnMut() -> Result<(u64, u64)>) -> Result<f64> {
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (cycles, units) = f()?;
        v.push(cycles as f64 / units.max(1) as f64);
    }
    Ok(median(&v))
}

fn main() -> Result<()> {
    let args = Args::parse();
    let name = "masqbench0";
    if std::path::Path::new("/proc/sys/net/ipv6/conf/default/disable_ipv6").exists() {
        // Before the TAP exists: it starts without IPv6 (no router solicitations).
        let _ = std::fs::write("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
    }
    let mut eal_args = vec!["masq-bench-host".to_string(), "-l".into(), "0".into(), "--no-pci".into()];
    eal_args.push("--vdev".into());
    eal_args.push(format!("net_tap_bench0,iface={name}"));
    eal_args.extend(args.eal.split_whitespace().map(str::to_string));
    let eal = Eal::init(&eal_args).context("EAL")?;
    let pool = Mempool::new("bench_host", 8191, 256, dpdk::DEFAULT_DATA_ROOM, dpdk::SOCKET_ID_ANY)?;
    let mut tap = Port::by_name("net_tap_bench0")?;
    tap.configure(&PortConfig { rx_queues: 1, tx_queues: 1, rx_desc: 512, tx_desc: 512, rss: None, mtu: None }, &pool)?;
    tap.start()?;
    let mut rxq = tap.rx_queue(0)?;
    let mut txq = tap.tx_queue(0)?;
    let mut ring = MbufRing::new("bench_host_ring", 4096, dpdk::SOCKET_ID_ANY)?;
    let n = u64::from(args.iterations);
    let mut burst: Burst<32> = Burst::new();
    let rdtsc = dpdk::cycles::rdtsc;

    let tap_poll_empty = measure(args.runs, || {
        let t = rdtsc();
        for _ in 0..n {
            rxq.rx_burst(&mut burst);
        }
        let c = rdtsc() - t;
        burst.clear();
        Ok((c, n))
    })?;
    let ring_poll_empty = measure(args.runs, || {
        let t = rdtsc();
        for _ in 0..n {
            ring.dequeue_burst(&mut burst);
        }
        Ok((rdtsc() - t, n))
    })?;
    let writes = (n / 10).max(1000);
    let tap_write_one = measure(args.runs, || {
        let mut cycles = 0;
        for _ in 0..writes {
            fill(&pool, &mut burst, 1)?;
            let t = rdtsc();
            txq.tx_burst(&mut burst);
            cycles += rdtsc() - t;
            burst.clear();
        }
        Ok((cycles, writes))
    })?;
    let tap_write_burst32 = measure(args.runs, || {
        let mut cycles = 0;
        for _ in 0..writes / 32 {
            fill(&pool, &mut burst, 32)?;
            let t = rdtsc();
            txq.tx_burst(&mut burst);
            cycles += rdtsc() - t;
            burst.clear();
        }
        Ok((cycles, writes / 32 * 32))
    })?;
    let mut out: Burst<32> = Burst::new();
    let ring_enqueue_one = measure(args.runs, || {
        let mut cycles = 0;
        for _ in 0..writes {
            fill(&pool, &mut burst, 1)?;
            let t = rdtsc();
            ring.enqueue_burst(&mut burst);
            cycles += rdtsc() - t;
            burst.clear();
            ring.dequeue_burst(&mut out);
            out.clear();
        }
        Ok((cycles, writes))
    })?;
    let ring_enqueue_burst32 = measure(args.runs, || {
        let mut cycles = 0;
        for _ in 0..writes / 32 {
            fill(&pool, &mut burst, 32)?;
            let t = rdtsc();
            ring.enqueue_burst(&mut burst);
            cycles += rdtsc() - t;
            burst.clear();
            ring.dequeue_burst(&mut out);
            out.clear();
        }
        Ok((cycles, writes / 32 * 32))
    })?;
    let f = Figures {
        tsc_hz: dpdk::cycles::tsc_hz(),
        tap_poll_empty,
        ring_poll_empty,
        tap_write_one,
        tap_write_burst32,
        ring_enqueue_one,
        ring_enqueue_burst32,
    };
    drop((rxq, txq, ring, burst, out));
    tap.stop()?;
    tap.close()?;
    drop(pool);
    drop(eal);
    if args.json {
        println!("{}", serde_json::to_string(&f)?);
    } else {
        println!("cycles (median of {} runs), TSC {} MHz", args.runs, f.tsc_hz / 1_000_000);
        println!("  poll, nothing there:    TAP {:>8.0}   ring {:>6.0}", f.tap_poll_empty, f.ring_poll_empty);
        println!("  one frame per call:     TAP {:>8.0}   ring {:>6.0}", f.tap_write_one, f.ring_enqueue_one);
        println!("  per frame, bursts of 32: TAP {:>7.0}   ring {:>6.0}", f.tap_write_burst32, f.ring_enqueue_burst32);
    }
    Ok(())
}
