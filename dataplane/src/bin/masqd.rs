//! masqd: the masq NAT daemon.
//!
//! Reads and validates the configuration and the rules (`--rules FILE`, iptables-save
//! format) and builds every worker's NAT before EAL starts, so a typo costs nothing;
//! then initialises EAL with the lcores and devices it derives, configures every port
//! with one RX/TX queue pair per worker, launches one poll-mode worker per configured
//! core, and waits for SIGINT/SIGTERM. On the way out it stops the workers, prints every
//! counter (see `dataplane::report`), checks that each mbuf came back to its pool and
//! exits 0 — or 3 if buffers leaked.
//!
//! The control socket (`[control] socket`) is claimed before EAL starts — a live masqd
//! already answering there is an error — and served once the workers run, by threads on
//! the main lcore's CPU (see `dataplane::control_plane`); it is removed on the way out.
//! The control plane edits the same rules (`ArcSwap`) and timeouts the workers' NAT reads.
//!
//! With `[metrics] listen`, the Prometheus exporter's address is claimed with the control
//! socket and served by one more thread on the main lcore's CPU, answering scrapes through
//! the same handler as `stats.get` (`control::metrics`). Under systemd (`Type=notify`)
//! masqd reports READY once everything serves and STOPPING on the way out
//! (`dataplane::service`).
//!
//! Faults: every error after the first worker started stops and joins the workers before
//! masqd prints it and exits 1 ([`Workers`]). A panic anywhere (the release build aborts
//! on panic, so nothing unwinds) is reported by [`install_panic_hook`] — thread, place,
//! message, backtrace — which removes the control socket and exits 4. SIGHUP reloads the
//! `--rules` file, all or nothing, and never stops masqd ([`reload_rules`]).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use clap::Parser;

use dataplane::cli::Args;
use dataplane::config::{Config, PortConfig as PortCfg};
use dataplane::control_plane::{
    self, HandlerParts, MasqdHandler, PortStatsBoard, RulesControl, WorkerControl, WorkerHandle,
};
use dataplane::counters::WorkerCounters;
use dataplane::dpdk_io::{DpdkIo, HandoffRings, HostRings, TscClock, HANDOFF_STAGE};
use dataplane::host::{self, kernel, HostCounters, HostPorts};
use dataplane::l3::neighbor::NeighborTable;
use dataplane::l3::route::RouteTable;
use dataplane::l3::router::Router;
use dataplane::link::{self, LinkMonitor, LinkReading};
use dataplane::logging::{self, Exporter, ExporterSettings, ExporterStats, LogDrain};
use dataplane::nat::{self, NatPath};
use dataplane::policy::{CompiledRules, RuleSet};
use dataplane::report::{self, PortCounters};
use dataplane::setup;
use dataplane::worker::{Worker, HOLD_CAPACITY};
use dpdk::{Eal, Mempool, Port, PortConfig};

/// Exit code for a configuration error.
const EXIT_CONFIG: u8 = 2;
/// Exit code when mbufs leaked.
const EXIT_LEAK: u8 = 3;
/// Exit code after a panic (reported by the panic hook).
const EXIT_PANIC: u8 = 4;
/// Neighbour cache size (entries, all ports).
const NEIGHBORS: usize = 4096;

/// The control socket masqd bound, for the panic hook to remove.
static SOCKET: OnceLock<PathBuf> = OnceLock::new();

fn main() -> ExitCode {
    install_panic_hook();
    // Before anything else, so that no signal finds masqd with the default action
    // (SIGHUP's is to terminate).
    let signals = match Signals::install() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("masqd: error: installing signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args = Args::parse();
    let config = match Config::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("masqd: {}: {e}", args.config.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let nats = match build_nats(&config, args.rules.as_deref()) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("masqd: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if args.check {
        println!("masqd: {}: configuration OK", args.config.display());
        return ExitCode::SUCCESS;
    }
    match run(&config, nats, args.rules.as_deref(), &signals) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("masqd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The flags masqd's signal handlers set: SIGINT/SIGTERM stop, SIGHUP reloads the rules.
struct Signals {
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let signals = Signals { stop: Arc::new(AtomicBool::new(false)), hup: Arc::new(AtomicBool::new(false)) };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, signals.stop.clone())?;
        }
        signal_hook::flag::register(signal_hook::consts::SIGHUP, signals.hup.clone())?;
        Ok(signals)
    }
}

/// Report a panic on any thread — which thread, where, the message and a backtrace — then
/// remove the control socket and exit with [`EXIT_PANIC`]. masqd is built with
/// `panic = "abort"`, so nothing unwinds: without this hook a panic would end in SIGABRT
/// with the socket file left behind. The workers stop with the process; the shutdown
/// report (counters, leak check) is not printed.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        // EAL's lcore threads are not Rust's: their name is the OS one (`lcore-worker-N`).
        let os_name = std::fs::read_to_string("/proc/thread-self/comm").unwrap_or_default();
        let name = thread.name().unwrap_or(os_name.trim());
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(no message)");
        let place = info.location().map(|l| l.to_string()).unwrap_or_else(|| "an unknown place".into());
        eprintln!("masqd: fatal: thread '{name}' panicked at {place}: {message}");
        eprintln!("masqd: backtrace:\n{}", std::backtrace::Backtrace::force_capture());
        if let Some(path) = SOCKET.get() {
            let _ = std::fs::remove_file(path);
        }
        eprintln!("masqd: exiting after a panic (exit code {EXIT_PANIC})");
        std::process::exit(i32::from(EXIT_PANIC));
    }));
}

/// Faults masqd injects into itself for its tests (`MASQD_FAULT`, read once at start;
/// see docs/operations.md): `error-after-launch` (an error once the workers run),
/// `panic-worker` (worker 0 panics at its first pass), `panic-main` (the main thread
/// panics once the workers run). Unset or empty: none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    ErrorAfterLaunch,
    PanicWorker,
    PanicMain,
}

impl Fault {
    fn from_env() -> Result<Fault> {
        match std::env::var("MASQD_FAULT").unwrap_or_default().as_str() {
            "" => Ok(Fault::None),
            "error-after-launch" => Ok(Fault::ErrorAfterLaunch),
            "panic-worker" => Ok(Fault::PanicWorker),
            "panic-main" => Ok(Fault::PanicMain),
            other => {
                bail!("MASQD_FAULT={other:?}: unknown (error-after-launch, panic-worker, panic-main)")
            }
        }
    }
}

/// The workers launched so far. Dropped on any early return (an error after the first
/// launch), it sets `stop` and waits for each of them, so `Eal`'s drop never waits for
/// workers that were never told to stop.
struct Workers<'e> {
    eal: &'e Eal,
    stop: Arc<AtomicBool>,
    lcores: Vec<u32>,
}

impl<'e> Workers<'e> {
    fn new(eal: &'e Eal, stop: Arc<AtomicBool>) -> Workers<'e> {
        Workers { eal, stop, lcores: Vec::new() }
    }

    fn launch(&mut self, lcore: u32, f: impl FnOnce() -> i32 + Send + 'static) -> Result<()> {
        self.eal.launch(lcore, f)?;
        self.lcores.push(lcore);
        Ok(())
    }

    /// Stop every worker and wait for it; false if one returned an error.
    fn join(&mut self) -> bool {
        self.stop.store(true, Ordering::Relaxed);
        let mut ok = true;
        for lcore in self.lcores.drain(..) {
            let rc = self.eal.wait(lcore);
            if rc != 0 {
                eprintln!("masqd: worker on lcore {lcore} exited with {rc}");
                ok = false;
            }
        }
        ok
    }
}

impl Drop for Workers<'_> {
    fn drop(&mut self) {
        if !self.lcores.is_empty() {
            eprintln!("masqd: stopping the workers after an error");
            self.join();
        }
    }
}

/// SIGHUP: replace the rules with the `--rules` file's, all or nothing (as
/// `rules.restore`: an error anywhere in the file changes nothing). Reports on stderr;
/// never stops masqd.
fn reload_rules(rules: &RulesControl, file: Option<&Path>) {
    let Some(path) = file else {
        eprintln!("masqd: SIGHUP: masqd was started without --rules, nothing to reload; rules unchanged");
        return;
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("masqd: SIGHUP: {}: cannot read: {e}; rules unchanged", path.display());
            return;
        }
    };
    match rules.reload(&text) {
        Ok(summary) => eprintln!("masqd: SIGHUP: rules reloaded from {}: {} rules", path.display(), summary.rules),
        Err(e) => eprintln!("masqd: SIGHUP: {}: {}; rules unchanged", path.display(), e.message),
    }
}

/// Every worker's NAT, and what they share with the control plane: the rule set (the
/// control plane's text model), the compiled rules the workers read, the live timeouts.
struct Nats {
    paths: Vec<NatPath>,
    rules: RuleSet,
    shared: nat::SharedRules,
    timeouts: Arc<nat::Timeouts>,
}

/// Load the rules (if any) and build every worker's NAT, before EAL starts. Errors
/// read `FILE: line N: ...`.
fn build_nats(config: &Config, rules: Option<&std::path::Path>) -> Result<Nats, String> {
    let (set, compiled) = match rules {
        None => (RuleSet::new(), CompiledRules::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            let (set, compiled) = setup::load_rules(&text, config).map_err(|e| format!("{}: {e}", path.display()))?;
            if set.len() > config.control.max_rules {
                return Err(format!(
                    "{}: {} rules, more than [control] max_rules = {}",
                    path.display(),
                    set.len(),
                    config.control.max_rules
                ));
            }
            (set, compiled)
        }
    };
    let workers = config.workers.cores.len() as u16;
    // With per-rule counters from the first packet (the control plane's copy replaces it).
    let shared: nat::SharedRules = Arc::new(ArcSwap::from_pointee(compiled.with_workers(usize::from(workers))));
    let timeouts = setup::timeouts(config);
    let seed = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new().build_hasher().finish()
    };
    let mut paths: Vec<NatPath> = (0..workers)
        .map(|w| {
            setup::nat_path(config, &set, shared.clone(), timeouts.clone(), w, workers, seed)
                .map_err(|e| format!("nat: {e}"))
        })
        .collect::<Result<_, _>>()?;
    reserve_host_ports(config, &mut paths);
    Ok(Nats { paths, rules: set, shared, timeouts })
}

/// `[host] ports` out of every worker's NAT pool on the host interfaces' outside
/// addresses, so the kernel's own connections never meet a mapping.
fn reserve_host_ports(config: &Config, paths: &mut [NatPath]) {
    let addrs = host::host_external_addrs(config);
    if addrs.is_empty() {
        return;
    }
    let reserved: usize =
        paths.iter_mut().map(|p| host::reserve_host_ports(p.nat_mut(), &addrs, config.host.ports)).sum();
    let (lo, hi) = config.host.ports;
    eprintln!("masqd: host ports {lo}-{hi} reserved from the NAT pool on {addrs:?} ({reserved} TCP and UDP ports)");
}

/// The EAL lcore id of each worker (its core number) and of the main lcore: its core
/// number too, unless a worker runs on that core, then the first id no worker uses
/// (pinned to the same core with `--lcores`, so every core can run a worker).
fn lcore_ids(config: &Config) -> (usize, Vec<usize>) {
    let workers = config.workers.cores.clone();
    let main = if workers.contains(&config.dpdk.main_core) {
        (0..).find(|id| !workers.contains(id)).unwrap_or(0)
    } else {
        config.dpdk.main_core
    };
    (main, workers)
}

/// EAL arguments derived from the configuration, then the user's extra ones.
fn eal_args(config: &Config) -> Vec<String> {
    let (main, workers) = lcore_ids(config);
    let mut map = vec![format!("{main}@{}", config.dpdk.main_core)];
    map.extend(workers.iter().map(|c| format!("{c}@{c}")));
    let mut args =
        vec!["masqd".to_string(), "--lcores".to_string(), map.join(","), "--main-lcore".to_string(), main.to_string()];
    let workers = config.workers.cores.len();
    for p in &config.ports {
        if p.is_vdev() {
            args.push("--vdev".to_string());
            args.push(vdev_devargs(p, workers));
        } else {
            args.push("-a".to_string());
            args.push(p.device.clone());
        }
    }
    for (i, p) in config.ports.iter().enumerate() {
        if let Some(name) = &p.host_interface {
            args.push("--vdev".to_string());
            args.push(format!("{},iface={name}", host_vdev(i)));
        }
    }
    if config.ports.iter().all(PortCfg::is_vdev) && !config.dpdk.args.iter().any(|a| a == "-a" || a == "-b") {
        args.push("--no-pci".to_string());
    }
    args.extend(config.dpdk.args.iter().cloned());
    args
}

/// af_packet needs one queue pair per worker, requested in its device arguments.
fn vdev_devargs(port: &PortCfg, workers: usize) -> String {
    if port.device.starts_with("net_af_packet") && workers > 1 && !port.device.contains("qpairs=") {
        format!("{},qpairs={workers}", port.device)
    } else {
        port.device.clone()
    }
}

/// Mbufs needed: every RX and TX ring full, every worker's stages and hold queue, the
/// per-lcore caches, and slack. Rounded up to 2^n - 1 as DPDK prefers.
fn pool_size(config: &Config) -> u32 {
    if config.dpdk.mbufs > 0 {
        return config.dpdk.mbufs;
    }
    let ports = config.ports.len() as u32;
    let workers = config.workers.cores.len() as u32;
    let rings = ports * workers * (u32::from(config.dpdk.rx_desc) + u32::from(config.dpdk.tx_desc));
    // Per worker: the RX vector, a TX stage per port, the free stage, the hold queue.
    let staging = workers * (config.workers.burst as u32 + (ports + 1) * 32 + HOLD_CAPACITY as u32);
    let caches = (workers + 1) * 256;
    // Handoff rings between every ordered pair of workers, and their stages.
    let handoff = workers * workers.saturating_sub(1) * (config.workers.handoff_ring + HANDOFF_STAGE as u32);
    // Host interfaces: each TAP's descriptors and the host thread's stages, and the rings
    // between it and every worker, both ways.
    let taps = config.ports.iter().filter(|p| p.host_interface.is_some()).count() as u32;
    let host = if taps == 0 { 0 } else { taps * (2 * TAP_DESC + 64) + workers * 2 * (config.host.queue + 32) };
    (rings + staging + caches + handoff + host + 1024).next_power_of_two() - 1
}

struct RunningPort {
    name: String,
    port: Port,
    /// The MAC the router uses: the configured one, else the device's.
    mac: [u8; 6],
    /// The kernel interface under a `net_af_packet` port, whose state is the link's.
    kernel_iface: Option<String>,
}

impl RunningPort {
    /// The link now: the driver's reading, and for af_packet the kernel interface's state
    /// too (see `dataplane::link`). `None` if the driver cannot say.
    fn read_link(&self) -> Option<LinkReading> {
        let l = self.port.link().ok()?;
        let kernel_up = self.kernel_iface.as_deref().and_then(link::kernel_link_up).unwrap_or(true);
        Some(LinkReading { up: l.up && kernel_up, speed_mbps: l.speed_mbps, full_duplex: l.full_duplex })
    }
}

/// Read every port's link and log what changed (main thread).
fn poll_links(ports: &[RunningPort], links: &mut LinkMonitor) {
    for (i, p) in ports.iter().enumerate() {
        if let Some(change) = links.update(i, p.read_link()) {
            eprintln!("masqd: port \"{}\": link {}", p.name, change.now);
        }
    }
}

fn run(config: &Config, nats: Nats, rules_file: Option<&Path>, signals: &Signals) -> Result<ExitCode> {
    let stop = signals.stop.clone();
    let fault = Fault::from_env()?;
    // Claim the control socket before EAL: a live masqd there is an error. It is served
    // once the workers run.
    let control_server =
        control::Server::bind(&config.control.socket, config.control.group.as_deref()).context("control socket")?;
    let _ = SOCKET.set(control_server.path().to_path_buf());
    let metrics_server = bind_metrics(config)?;
    let Nats { paths: mut nats, rules, shared: shared_rules, timeouts } = nats;
    let drains = attach_logging(config, &mut nats);

    host_prepare(config)?;
    let args = eal_args(config);
    eprintln!("masqd: EAL arguments: {}", args[1..].join(" "));
    let eal = Eal::init(&args).context("EAL initialisation failed")?;
    // One clock for every worker (the TSC rate is known once EAL runs), so NAT event
    // times share an origin whose wall-clock time the logging thread knows.
    let clock = TscClock::new();
    let epoch_ms = logging::exporter::wall_ms().saturating_sub(clock.now().as_millis());
    let worker_lcores = eal.worker_lcores();
    if worker_lcores.len() != config.workers.cores.len() {
        bail!(
            "EAL enabled {} worker lcores, configuration asks for {}",
            worker_lcores.len(),
            config.workers.cores.len()
        );
    }

    let n_workers = config.workers.cores.len() as u16;
    let mbufs = pool_size(config);
    // Every frame up to the largest port MTU in one mbuf: masq takes single-segment
    // frames only (`multi_segment`), so jumbo MTUs make every buffer bigger.
    let largest = config.ports.iter().map(|p| p.max_frame()).max().unwrap_or(0);
    let data_room = dpdk::DEFAULT_DATA_ROOM.max(dpdk::HEADROOM + largest);
    let pool = Mempool::new("masq_pkts", mbufs, 256, data_room, dpdk::SOCKET_ID_ANY).with_context(|| {
        format!("creating a pool of {mbufs} mbufs of {data_room} bytes (try more memory: -m in dpdk.args)")
    })?;

    let mut ports = Vec::with_capacity(config.ports.len());
    for (i, pc) in config.ports.iter().enumerate() {
        let name = pc.device_name();
        let mut port = Port::by_name(name).with_context(|| {
            format!(
                "port[{i}] \"{}\": device \"{}\" was not probed by DPDK (check the device string)",
                pc.name, pc.device
            )
        })?;
        let info = port.info().with_context(|| format!("port \"{}\": reading device info", pc.name))?;
        if info.max_rx_queues < n_workers || info.max_tx_queues < n_workers {
            bail!(
                "port \"{}\" ({}) supports {} RX / {} TX queues; {} workers need one each",
                pc.name,
                info.driver_name,
                info.max_rx_queues,
                info.max_tx_queues,
                n_workers
            );
        }
        // Inside: a subscriber's flows on one queue (source address only, masq's key, so
        // the NIC agrees with the workers' own check); outside: spread by the 4-tuple,
        // the workers hand each packet to its port's owner (see dataplane::nat::steer).
        let rss = (n_workers > 1).then(|| {
            if pc.role == dataplane::config::Role::Inside {
                let key = (usize::from(info.hash_key_size) == nat::steer::RSS_KEY.len())
                    .then(|| nat::steer::RSS_KEY.to_vec());
                dpdk::RssConfig { key, hash_fields: dpdk::rss::IPV4 | dpdk::rss::L3_SRC_ONLY }
            } else {
                dpdk::RssConfig { key: None, hash_fields: dpdk::rss::IP | dpdk::rss::UDP | dpdk::rss::TCP }
            }
        });
        // The MTU: refused here when the device cannot receive such frames (ethdev's own
        // check, said plainly), then set on the device, which for net_af_packet and
        // net_tap is their kernel interface's MTU.
        let frame = u32::from(pc.mtu) + 18;
        if frame > info.max_rx_pktlen {
            bail!(
                "port \"{}\": mtu {} needs frames of {frame} bytes, but device {} (driver {}) receives at \
                 most {} (an MTU of {}); lower [[port]] mtu, or use a device that carries larger frames \
                 (a NIC that takes jumbo frames, net_tap)",
                pc.name,
                pc.mtu,
                pc.device_name(),
                info.driver_name,
                info.max_rx_pktlen,
                info.max_rx_pktlen.saturating_sub(18)
            );
        }
        let pcfg = PortConfig {
            rx_queues: n_workers,
            tx_queues: n_workers,
            rx_desc: config.dpdk.rx_desc,
            tx_desc: config.dpdk.tx_desc,
            rss,
            mtu: Some(pc.mtu),
        };
        port.configure(&pcfg, &pool).with_context(|| format!("configuring port \"{}\"", pc.name))?;
        match port.set_mtu(pc.mtu) {
            Ok(()) => {}
            // No MTU on the device (net_null, net_pcap, net_ring): masqd's own limit only.
            Err(e) if e.errno() == Some(libc::ENOTSUP) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("port \"{}\": setting mtu {} on the device", pc.name, pc.mtu))
            }
        }
        if let Some(mac) = pc.mac {
            if let Err(e) = port.set_mac_addr(mac) {
                // The device keeps its own address; masq answers for the configured one in
                // software, and promiscuous mode (below) delivers frames sent to it.
                eprintln!(
                    "masqd: port \"{}\": device cannot take MAC {} ({e}); using it in software",
                    pc.name,
                    dataplane::packet::EthernetAddress(mac)
                );
            }
        }
        port.start().with_context(|| format!("starting port \"{}\"", pc.name))?;
        // Not fatal: some PMDs (af_packet on a veth) manage promiscuity themselves.
        if let Err(e) = port.set_promiscuous(true) {
            eprintln!("masqd: port \"{}\": promiscuous mode not set: {e}", pc.name);
        }
        let mac = match pc.mac {
            Some(m) => m,
            None => port.mac_addr().with_context(|| format!("port \"{}\": reading MAC", pc.name))?,
        };
        eprintln!(
            "masqd: port {} \"{}\" {} {} driver {} mac {} queues {}{}",
            port.id(),
            pc.name,
            pc.role,
            pc.address,
            info.driver_name,
            dataplane::packet::EthernetAddress(mac),
            n_workers,
            if n_workers > 1 && !port.rss_active() { " (no RSS)" } else { "" }
        );
        let kernel_iface = link::af_packet_iface(&pc.device).map(String::from);
        ports.push(RunningPort { name: pc.name.clone(), port, mac, kernel_iface });
    }

    let mut host_side = host_start(config, &ports, &pool, n_workers)?;
    let mut host_rings = host_side.as_mut().map(|h| std::mem::take(&mut h.rings)).unwrap_or_default().into_iter();

    // Link state from now on, polled by this thread; a port that starts down is logged.
    let mut links = LinkMonitor::new(ports.len());
    poll_links(&ports, &mut links);

    for t in config.nat.deterministic.tables() {
        let first = t.mappings().next();
        eprintln!(
            "masqd: deterministic NAT: {} hosts from {} on {} external address(es), {} ports each",
            t.hosts(),
            first.map_or_else(String::new, |m| m.inside.to_string()),
            t.outside_addrs().count(),
            t.ports_per_host()
        );
    }
    if let Some((size, per_subscriber)) = nats.first().and_then(|n| n.nat().port_blocks()) {
        let slice = dataplane::config::DYNAMIC_PORTS / n_workers as u32;
        eprintln!(
            "masqd: port blocks of {size} ports, at most {per_subscriber} per subscriber; {} per external address \
             and worker ({} ports of each worker's slice unused), released {} s after their last session",
            slice / size,
            slice % size,
            config.nat.port_hold
        );
    }
    let routes = Arc::new(RouteTable::from_config(config));
    let neighbors = Arc::new(NeighborTable::new(NEIGHBORS));
    for n in &config.neighbors {
        neighbors.add_static(n.port as u16, n.address, n.mac).context("adding static neighbours")?;
    }
    let macs: Vec<[u8; 6]> = ports.iter().map(|p| p.mac).collect();

    let mut all_counters = Vec::new();
    let mut control_workers = Vec::new();
    let mut nats = nats.into_iter();
    // Rings for packets a worker receives but another owns (none with one worker).
    let mut handoffs = if n_workers > 1 {
        HandoffRings::mesh(n_workers, config.workers.handoff_ring).context("creating handoff rings")?
    } else {
        Vec::new()
    }
    .into_iter();
    if n_workers > 1 {
        eprintln!(
            "masqd: {n_workers} workers: inside traffic steered by subscriber, return traffic by external port; \
             software handoff over {} rings of {}",
            usize::from(n_workers) * usize::from(n_workers - 1),
            config.workers.handoff_ring
        );
    }
    // From the first launch on, any early return stops and joins the workers.
    let mut workers = Workers::new(&eal, stop.clone());
    for (w, lcore) in worker_lcores.iter().enumerate() {
        let q = w as u16;
        let mut rxq = Vec::new();
        let mut txq = Vec::new();
        for p in ports.iter_mut() {
            rxq.push(p.port.rx_queue(q)?);
            txq.push(p.port.tx_queue(q)?);
        }
        let counters = Arc::new(WorkerCounters::default());
        all_counters.push(counters.clone());
        let nat = nats.next().context("one NAT per worker")?;
        let router = Router::new(routes.clone(), neighbors.clone(), macs.clone(), counters.clone());
        let mut io = DpdkIo::new(rxq, txq, pool.clone())
            .with_burst(config.workers.burst)
            .with_tx_drain(config.workers.tx_drain_us);
        if let Some(rings) = handoffs.next() {
            io = io.with_handoff(rings);
        }
        let mut host = None;
        if let (Some(rings), Some(h)) = (host_rings.next(), HostPorts::from_config(config)) {
            host = Some(h);
            io = io.with_host(rings);
        }
        // The control plane's ends: the worker's mailbox and latency histogram.
        let (mailbox, link) = control_plane::mailbox::channel(w as u32);
        let latency = Arc::new(control_plane::LatencyHistogram::default());
        let probe = control_plane::LatencyRecorder::new(latency.clone(), dpdk::cycles::rdtsc, dpdk::cycles::tsc_hz());
        let mut worker =
            Worker::new(io, router, counters.clone()).with_nat(nat).with_control(WorkerControl::new(mailbox, probe));
        if let Some(host) = host {
            worker = worker.with_host(host);
        }
        // Stage calls and poll passes longer than 1 ms count as slow (stats.get).
        worker.runtime().set_slow_threshold(dpdk::cycles::tsc_hz() / 1000);
        control_workers.push(WorkerHandle {
            index: w as u32,
            lcore: *lcore,
            counters,
            latency,
            runtime: worker.runtime().clone(),
            link,
        });
        let stop = stop.clone();
        let panic_now = fault == Fault::PanicWorker && w == 0;
        workers
            .launch(*lcore, move || {
                assert!(!panic_now, "MASQD_FAULT=panic-worker");
                worker.run(&stop, || clock.now());
                0
            })
            .with_context(|| format!("launching worker {w} on lcore {lcore}"))?;
    }
    // The logging thread, on the main lcore's CPU like the control threads.
    let log_stop = Arc::new(AtomicBool::new(false));
    let logger = match drains {
        Some(drains) => Some(start_logging(config, drains, epoch_ms, log_stop.clone())?),
        None => None,
    };
    // Serve the control socket (its threads inherit the main lcore's CPU, off the workers').
    let port_board = Arc::new(PortStatsBoard::new());
    // The external pool the workers' allocators were built for (fixed from here on).
    let external_addrs = setup::nat_config(config, &rules, 0, 1, 0).external_addrs;
    let handler = MasqdHandler::new(HandlerParts {
        rules,
        port_names: config.ports.iter().map(|p| p.name.clone()).collect(),
        compiled: shared_rules,
        timeouts,
        workers: control_workers,
        port_stats: {
            let board = port_board.clone();
            Box::new(move || board.request(Duration::from_millis(500)))
        },
        config: control_plane::config_json(config, &worker_lcores, rules_file),
        external_addrs,
        tsc_hz: dpdk::cycles::tsc_hz(),
        host: host_side.as_ref().map(|h| h.counters.clone()),
        deterministic: config.nat.deterministic.clone(),
    })
    .and_then(|h| h.with_max_rules(config.control.max_rules))
    .map(|h| {
        let pool = pool.clone();
        h.with_mempool(Box::new(move || control::protocol::MempoolStats {
            size: u64::from(pool.size()),
            in_use: u64::from(pool.in_use()),
        }))
    })
    .map_err(|e| anyhow::anyhow!("rules: {e}"))?;
    let rules_control = handler.rules_shared();
    let handler = Arc::new(handler);
    let host_thread = host_side.as_mut().map(|h| h.spawn()).transpose()?;
    let control_handle = control_server.spawn(handler.clone()).context("control socket")?;
    eprintln!("masqd: control socket {}", control_handle.path().display());
    let metrics_handle = start_metrics(metrics_server, handler)?;
    if fault == Fault::ErrorAfterLaunch {
        bail!("MASQD_FAULT=error-after-launch: a start-up error once the workers run");
    }

    let status = format!(
        "{} ports, {} workers on cores {:?}, {} mbufs",
        ports.len(),
        worker_lcores.len(),
        config.workers.cores,
        mbufs
    );
    eprintln!("masqd: ready: {status}");
    dataplane::service::ready(&status);

    assert!(fault != Fault::PanicMain, "MASQD_FAULT=panic-main");

    let mut last_link_poll = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        if last_link_poll.elapsed() >= link::POLL_INTERVAL {
            last_link_poll = std::time::Instant::now();
            poll_links(&ports, &mut links);
        }
        port_board.serve(|| {
            poll_links(&ports, &mut links);
            control_port_stats(&ports, &links)
        });
        if signals.hup.swap(false, Ordering::Relaxed) {
            reload_rules(&rules_control, rules_file);
        }
    }
    eprintln!("masqd: stopping");
    dataplane::service::stopping();
    control_handle.shutdown(); // stop serving, remove the socket
    if let Some(m) = metrics_handle {
        m.shutdown();
    }
    let mut failed = !workers.join();
    drop(workers);

    // The workers are done: the logging thread drains what they left, flushes, exits.
    log_stop.store(true, Ordering::Relaxed);
    let log_stats = logger.map(|(handle, stats)| {
        if handle.join().is_err() {
            eprintln!("masqd: the logging thread panicked");
            failed = true;
        }
        stats
    });
    if let Some(h) = host_thread {
        h.stop();
    }
    let host_report = host_side.map(host_stop).unwrap_or_default();

    let mut port_counters = Vec::new();
    for p in ports.iter_mut() {
        let s = p.port.stats().unwrap_or_default();
        port_counters.push(PortCounters {
            name: p.name.clone(),
            counters: vec![
                ("rx_packets".into(), s.ipackets),
                ("tx_packets".into(), s.opackets),
                ("rx_bytes".into(), s.ibytes),
                ("tx_bytes".into(), s.obytes),
                ("rx_missed".into(), s.imissed),
                ("rx_errors".into(), s.ierrors),
                ("tx_errors".into(), s.oerrors),
                ("rx_nombuf".into(), s.rx_nombuf),
            ],
        });
    }
    for p in ports {
        let RunningPort { name, mut port, .. } = p;
        if let Err(e) = port.stop() {
            eprintln!("masqd: port \"{name}\": stop: {e}");
        }
        if let Err(e) = port.close() {
            eprintln!("masqd: port \"{name}\": close: {e}");
        }
    }
    let in_use = pool.in_use();
    let workers: Vec<&WorkerCounters> = all_counters.iter().map(|c| c.as_ref()).collect();
    print!("{}", report::render(&port_counters, &workers, u64::from(in_use)));
    if let Some(s) = log_stats {
        print!("{}", report::render_logging(&s));
    }
    print!("{host_report}");
    if in_use != 0 {
        println!("masqd: LEAK {in_use} mbufs");
        return Ok(ExitCode::from(EXIT_LEAK));
    }
    println!("masqd: clean shutdown");
    drop(pool);
    drop(eal);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Give every worker's NAT an event ring when `[logging]` names a collector; the
/// logging thread's ends are returned.
fn attach_logging(config: &Config, nats: &mut [NatPath]) -> Option<Vec<LogDrain>> {
    if !config.logging.enabled() {
        return None;
    }
    let mask = config.logging.mask(config.nat.port_block_size > 0);
    let drains = nats
        .iter_mut()
        .enumerate()
        .map(|(w, path)| {
            let (sink, drain) = logging::ring(config.logging.ring as usize, w as u8, mask);
            path.nat_mut().set_log(sink);
            drain
        })
        .collect();
    Some(drains)
}

/// Start the logging thread (IPFIX and/or syslog over UDP).
fn start_logging(
    config: &Config,
    drains: Vec<LogDrain>,
    epoch_ms: u64,
    stop: Arc<AtomicBool>,
) -> Result<(std::thread::JoinHandle<()>, Arc<ExporterStats>)> {
    let l = &config.logging;
    let hostname = l.syslog_hostname.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
    });
    let settings = ExporterSettings {
        ipfix: l.ipfix.clone(),
        syslog: l.syslog,
        observation_domain: l.observation_domain,
        mtu: usize::from(l.mtu),
        template_refresh_ms: u64::from(l.template_refresh) * 1000,
        facility: l.syslog_facility,
        hostname,
    };
    // Deterministic NAT: each host's whole mapping, once, at start (RFC 7422), as a port
    // block allocation record.
    let startup: Vec<logging::NatEvent> = config
        .nat
        .deterministic
        .tables()
        .iter()
        .flat_map(|t| t.mappings().collect::<Vec<_>>())
        .map(|m| {
            let size = (m.ports.hi - m.ports.lo).saturating_add(1);
            logging::NatEvent::block(logging::EventKind::BlockAllocate, 0, m.inside, m.outside, m.ports.lo, size)
        })
        .collect();
    let exporter =
        Exporter::udp(settings, drains, epoch_ms).context("logging: opening the UDP socket")?.with_startup(startup);
    let stats = exporter.stats();
    let handle = exporter.spawn(stop).context("logging: starting the thread")?;
    let to: Vec<String> =
        l.ipfix.iter().map(|a| format!("ipfix {a}")).chain(l.syslog.iter().map(|a| format!("syslog {a}"))).collect();
    eprintln!("masqd: logging NAT events to {} (ring of {} per worker)", to.join(", "), l.ring);
    Ok((handle, stats))
}

/// Claim `[metrics] listen` before EAL starts (a taken address costs nothing).
fn bind_metrics(config: &Config) -> Result<Option<control::metrics::MetricsServer>> {
    config.metrics.map(|m| control::metrics::MetricsServer::bind(m.listen).context("metrics.listen")).transpose()
}

/// Serve scrapes from a thread on the main lcore's CPU (it inherits this thread's
/// affinity), through the control plane's handler.
fn start_metrics(
    server: Option<control::metrics::MetricsServer>,
    handler: Arc<MasqdHandler>,
) -> Result<Option<control::metrics::MetricsHandle>> {
    let Some(server) = server else { return Ok(None) };
    let build = control::metrics::BuildInfo { version: env!("CARGO_PKG_VERSION").to_string() };
    let handle = server.spawn(handler, build).context("metrics")?;
    eprintln!("masqd: metrics on http://{}/metrics", handle.local_addr());
    Ok(Some(handle))
}

/// Every port's counters for `stats.get`, read here on the main thread, which owns the
/// ports (the control plane asks through a [`PortStatsBoard`]).
fn control_port_stats(ports: &[RunningPort], links: &LinkMonitor) -> Vec<control::protocol::PortStats> {
    ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let s = p.port.stats().unwrap_or_default();
            let basic = control_plane::BasicPortCounters {
                ipackets: s.ipackets,
                opackets: s.opackets,
                ibytes: s.ibytes,
                obytes: s.obytes,
                imissed: s.imissed,
                ierrors: s.ierrors,
                oerrors: s.oerrors,
                rx_nombuf: s.rx_nombuf,
            };
            let mut stats =
                control_plane::stats::port_stats(p.port.id(), &p.name, basic, &p.port.xstats().unwrap_or_default());
            let link = links.status(i);
            stats.link_up = link.last.map(|l| l.up);
            stats.link_speed_mbps = link.last.filter(|l| l.up && l.speed_mbps > 0).map(|l| l.speed_mbps);
            stats.link_changes = link.changes;
            stats
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Host interfaces (`[[port]] host_interface`): see dataplane::host and
// docs/host-interface.md. Set up on the main thread only: before EAL (stale TAPs), after
// the ports (TAP queues, the kernel side), and undone at exit.
// ---------------------------------------------------------------------------------------

/// Descriptors of each TAP queue.
const TAP_DESC: u32 = 512;

/// The DPDK name of port `i`'s TAP (a `net_tap` vdev; `iface=` names the kernel side).
fn host_vdev(i: usize) -> String {
    format!("net_tap_h{i}")
}

/// Before EAL creates the TAPs: remove a stale one a killed masqd left (refuse a name
/// another process or another kind of interface holds).
fn host_prepare(config: &Config) -> Result<()> {
    for p in &config.ports {
        let Some(name) = &p.host_interface else { continue };
        if let Some(cmd) = kernel::remove_stale(name).with_context(|| format!("port \"{}\": host interface", p.name))? {
            eprintln!("masqd: host interface {name}: a stale one was left; removed it: {cmd}");
        }
    }
    Ok(())
}

/// The host interfaces while masqd runs: the TAP ports, the host thread's state until
/// it is spawned, the workers' ring ends until they are handed out, the counters, and the
/// ephemeral range to restore.
struct HostSide {
    taps: Vec<(String, Port)>,
    pump: Option<host::pump::HostPump>,
    rings: Vec<HostRings>,
    counters: Arc<HostCounters>,
    port_range: Option<kernel::LocalPortRange>,
    stop: Arc<AtomicBool>,
}

/// The running host thread.
struct HostThread {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl HostThread {
    /// Stop it (after the workers: nothing is punted any more) and wait.
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if self.handle.join().is_err() {
            eprintln!("masqd: the host thread panicked");
        }
    }
}

impl HostSide {
    /// Start the host thread on the main core (it inherits the main thread's CPU).
    fn spawn(&mut self) -> Result<HostThread> {
        let mut pump = self.pump.take().context("host thread started twice")?;
        let stop = self.stop.clone();
        let handle = std::thread::Builder::new()
            .name("masq-host".into())
            .spawn(move || pump.run(&stop))
            .context("starting the host thread")?;
        Ok(HostThread { stop: self.stop.clone(), handle })
    }
}

/// Configure and start every TAP, give the kernel side the port's MAC, MTU, address and
/// route, set the ephemeral port range, and build the host thread and its rings. `None`
/// without host interfaces.
fn host_start(config: &Config, ports: &[RunningPort], pool: &Mempool, workers: u16) -> Result<Option<HostSide>> {
    if !config.has_host_interfaces() {
        return Ok(None);
    }
    let mut taps = Vec::new();
    let mut pump_taps = Vec::new();
    let mut names = Vec::new();
    for (i, (pc, rp)) in config.ports.iter().zip(ports).enumerate() {
        let Some(name) = &pc.host_interface else { continue };
        let ctx = || format!("port \"{}\": host interface {name}", pc.name);
        // IPv4 and ARP only: no IPv6 chatter from the kernel, before the TAP goes up.
        kernel::disable_ipv6(name).with_context(ctx)?;
        let mut tap = Port::by_name(&host_vdev(i)).with_context(ctx)?;
        let pcfg = PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: TAP_DESC as u16,
            tx_desc: TAP_DESC as u16,
            rss: None,
            mtu: None,
        };
        tap.configure(&pcfg, pool).with_context(ctx)?;
        tap.start().with_context(ctx)?;
        tap.set_mac_addr(rp.mac).with_context(ctx)?;
        let done = kernel::configure(name, rp.mac, pc.mtu, pc.address, pc.gateway).with_context(ctx)?;
        for cmd in &done.commands {
            eprintln!("masqd: host interface {name}: {cmd}");
        }
        for note in &done.notes {
            eprintln!("masqd: host interface {name}: {note}");
        }
        pump_taps.push(host::pump::Tap { port: i as u16, rx: tap.rx_queue(0)?, tx: tap.tx_queue(0)? });
        names.push((name.clone(), pc.name.clone()));
        taps.push((name.clone(), tap));
    }
    let port_range = if config.host.set_local_port_range {
        let r = kernel::LocalPortRange::set(config.host.ports).context("setting the host's ephemeral port range")?;
        eprintln!(
            "masqd: host: net.ipv4.ip_local_port_range {} {} (was {})",
            config.host.ports.0,
            config.host.ports.1,
            r.previous()
        );
        Some(r)
    } else {
        match kernel::local_port_range() {
            Some((lo, hi)) if lo < config.host.ports.0 || hi > config.host.ports.1 => eprintln!(
                "masqd: host: warning: the kernel's ephemeral ports {lo}-{hi} are not within [host] ports {}-{}: \
                 replies to the host's connections on other ports may meet NAT mappings",
                config.host.ports.0, config.host.ports.1
            ),
            _ => {}
        }
        None
    };
    let counters = Arc::new(HostCounters::new(names));
    let (pump, rings) =
        host::pump::HostPump::new(pump_taps, config.ports.len(), workers, config.host.queue, counters.clone())
            .context("creating the host rings")?;
    eprintln!(
        "masqd: host interfaces: {} (punt limit {} frames/s per worker, rings of {})",
        taps.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", "),
        config.host.max_pps,
        config.host.queue
    );
    Ok(Some(HostSide { taps, pump: Some(pump), rings, counters, port_range, stop: Arc::new(AtomicBool::new(false)) }))
}

/// Close the TAPs (DPDK removes the kernel interfaces with them), make sure they are
/// gone, put the ephemeral range back; returns the host interfaces' report lines.
fn host_stop(side: HostSide) -> String {
    let HostSide { taps, pump, rings, counters, port_range, .. } = side;
    drop((pump, rings));
    for (name, mut tap) in taps {
        if let Err(e) = tap.stop() {
            eprintln!("masqd: host interface {name}: stop: {e}");
        }
        if let Err(e) = tap.close() {
            eprintln!("masqd: host interface {name}: close: {e}");
        }
        match kernel::remove(&name) {
            Ok(Some(cmd)) => eprintln!("masqd: host interface {name}: still there after close; {cmd}"),
            Ok(None) => {}
            Err(e) => eprintln!("masqd: host interface {name}: {e}"),
        }
    }
    if let Some(r) = port_range {
        if let Err(e) = r.restore() {
            eprintln!("masqd: host: restoring the ephemeral port range: {e}");
        }
    }
    host::counters::render(&counters)
}
