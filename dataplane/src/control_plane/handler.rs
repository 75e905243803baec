//! [`MasqdHandler`]: masqd's answer to every command of the control protocol.
//!
//! It runs on the control server's client threads, never on a worker core, and touches
//! the workers only through what they share by design: the compiled rules (swapped
//! whole), the timeouts (atomics), their counter blocks and latency histograms (read
//! without stopping them), and their mailboxes (for sessions, which only a worker may
//! touch).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use control::protocol::{
    to_result, Command, ControlError, ExpectationList, Flushed, Ipv4Net, LookupMatch, LookupQuery, LookupResult,
    MempoolStats, PortStats, PortUtilisation, Protocol, ProtocolSessions, SessionCount, SessionFilter, SessionPage,
    Stats, Timeouts, TimeoutsUpdate, VersionInfo,
};
use control::Handler;
use serde_json::{json, Value};

use super::latency::{self, LatencyHistogram};
use super::mailbox::{
    expectation_entry, session_entry, Pending, Reply, Request, ScanOp, SessionSelector, Walk, WorkerLink,
    PORT_USAGE_CHUNK, SCAN_CHUNK,
};
use super::rules::RulesControl;
use super::stats::{counter_totals, drops_by_reason, worker_stats};
use crate::config::{Config, Filtering};
use crate::counters::WorkerCounters;
use crate::nat::{self, TimeoutClass};
use crate::pipeline::WorkerRuntime;
use crate::policy::{CompiledRules, RuleSet};

/// How long one mailbox request may take before the command fails (`internal`).
pub const MAILBOX_TIMEOUT: Duration = Duration::from_secs(2);

/// Expectations listed per worker at most (its table's default size).
const EXPECTATIONS_PER_WORKER: usize = 1024;

/// A `sessions.list` page is cut short (with a cursor to go on) after this long.
pub const PAGE_TIME: Duration = Duration::from_millis(250);

/// A `sessions.count` or `sessions.flush` that needs a scan stops after this long and
/// answers how far it got, with a cursor to go on from: no request holds a client
/// thread (or asks the workers) for longer, however many sessions there are.
pub const SCAN_TIME: Duration = Duration::from_secs(1);

/// What the control plane holds of one worker.
pub struct WorkerHandle {
    /// Worker index (its queue number on every port).
    pub index: u32,
    /// The lcore it runs on.
    pub lcore: u32,
    pub counters: Arc<WorkerCounters>,
    pub latency: Arc<LatencyHistogram>,
    /// Its per-stage runtime table.
    pub runtime: Arc<WorkerRuntime>,
    /// Its mailbox.
    pub link: WorkerLink,
}

/// Port counters on demand (masqd: a [`super::PortStatsBoard`] request).
pub type PortStatsSource = Box<dyn Fn() -> Vec<PortStats> + Send + Sync>;

/// The packet-buffer pool's figures on demand (masqd: the DPDK mempool's counts, safe
/// to read from any thread).
pub type MempoolSource = Box<dyn Fn() -> MempoolStats + Send + Sync>;

/// Everything [`MasqdHandler::new`] needs.
pub struct HandlerParts {
    /// The rules in force at start (`--rules`, or empty).
    pub rules: RuleSet,
    /// Configured port names, in port-index order.
    pub port_names: Vec<String>,
    /// The compiled rules the workers read once per new flow; replaced at once by
    /// `rules` compiled, and on every change.
    pub compiled: Arc<ArcSwap<CompiledRules>>,
    /// The live timeouts the workers' NAT reads.
    pub timeouts: Arc<nat::Timeouts>,
    pub workers: Vec<WorkerHandle>,
    pub port_stats: PortStatsSource,
    /// `config.get`'s answer without `timeouts`, which are read live ([`config_json`]).
    pub config: Value,
    /// The NAT's external pool (fixed at start): SNAT rules to other addresses are
    /// refused. Empty: not checked (no NAT).
    pub external_addrs: Vec<std::net::Ipv4Addr>,
    /// TSC ticks per second (the unit of the runtime tables' cycles).
    pub tsc_hz: u64,
    /// The host interfaces' counters (none configured: `None`).
    pub host: Option<Arc<crate::host::HostCounters>>,
    /// Deterministic NAT tables, for `nat.lookup`.
    pub deterministic: nat::deterministic::DetTables,
}

/// Live sessions `nat.lookup` returns at most.
pub const LOOKUP_LIMIT: usize = 1000;

/// masqd's [`Handler`].
pub struct MasqdHandler {
    /// Shared with masqd's main thread, which reloads the rules file on SIGHUP.
    rules: Arc<RulesControl>,
    /// How long a count or flush scan may take per request ([`SCAN_TIME`]).
    scan_time: Duration,
    timeouts: Arc<nat::Timeouts>,
    workers: Vec<WorkerHandle>,
    port_stats: PortStatsSource,
    mempool: Option<MempoolSource>,
    config: Value,
    tsc_hz: u64,
    host: Option<Arc<crate::host::HostCounters>>,
    deterministic: nat::deterministic::DetTables,
}

impl MasqdHandler {
    /// Compiles `parts.rules` into `parts.compiled`; fails if they do not compile.
    pub fn new(parts: HandlerParts) -> Result<MasqdHandler, ControlError> {
        // Worker indices are 0..n; a rule set counts for as many.
        let workers = parts.workers.iter().map(|w| w.index as usize + 1).max().unwrap_or(0);
        Ok(MasqdHandler {
            scan_time: SCAN_TIME,
            rules: {
                let rules = RulesControl::new(parts.rules, parts.port_names, parts.compiled, workers)?;
                Arc::new(if parts.external_addrs.is_empty() { rules } else { rules.with_pool(parts.external_addrs) })
            },
            timeouts: parts.timeouts,
            workers: parts.workers,
            port_stats: parts.port_stats,
            mempool: None,
            config: parts.config,
            tsc_hz: parts.tsc_hz,
            host: parts.host,
            deterministic: parts.deterministic,
        })
    }

    /// `nat.lookup`: deterministic mappings (computed), live port blocks, then live
    /// sessions (scanned).
    fn lookup(&self, query: LookupQuery, protocol: Option<Protocol>) -> Result<LookupResult, ControlError> {
        let mut out = LookupResult::default();
        let det = |m: nat::deterministic::DetMapping| LookupMatch {
            source: "deterministic".into(),
            inside_addr: m.inside,
            inside_port: None,
            outside_addr: m.outside,
            first_port: m.ports.lo,
            last_port: m.ports.hi,
            protocol: None,
            remote: None,
            state: None,
            idle_secs: None,
            expires_in_secs: None,
            worker: None,
            since: None,
            held_secs: None,
            mappings: None,
        };
        let mut filter = SessionFilter { protocol, ..SessionFilter::default() };
        let blocks = match query {
            LookupQuery::Outside { addr, port } => nat::BlockQuery::Outside(addr, port),
            LookupQuery::Inside(addr) => nat::BlockQuery::Subscriber(addr),
        };
        let mut found = 0usize;
        self.lookup_blocks(blocks, &mut out, &mut found)?;
        match query {
            LookupQuery::Outside { addr, port } => {
                for t in self.deterministic.tables().iter().filter(|t| t.outside_contains(addr)) {
                    match port {
                        Some(p) => out.matches.extend(t.reverse(addr, p).and_then(|h| t.map(h)).map(det)),
                        None => out.matches.extend(t.mappings().filter(|m| m.outside == addr).map(det)),
                    }
                }
                filter.outside_addr = Some(Ipv4Net::host(addr));
                filter.outside_port = port;
            }
            LookupQuery::Inside(addr) => {
                out.matches.extend(self.deterministic.map(addr).map(det));
                filter.inside_addr = Some(Ipv4Net::host(addr));
            }
        }
        let selector = SessionSelector::from_filter(&filter)?;
        let mut buf = Vec::with_capacity(SCAN_CHUNK as usize);
        'workers: for w in &self.workers {
            let mut from = Some(Walk::default());
            while let Some(walk) = from.take() {
                let Reply::Scanned { buf: mut page, next, .. } =
                    self.scan(w, selector, walk, ScanOp::List, SCAN_CHUNK, std::mem::take(&mut buf))?
                else {
                    break;
                };
                for s in &page {
                    if found == LOOKUP_LIMIT {
                        out.truncated = true;
                        break 'workers;
                    }
                    let e = session_entry(s, w.index);
                    out.matches.push(LookupMatch {
                        source: "session".into(),
                        inside_addr: *e.inside.ip(),
                        inside_port: Some(e.inside.port()),
                        outside_addr: *e.outside.ip(),
                        first_port: e.outside.port(),
                        last_port: e.outside.port(),
                        protocol: Some(e.proto),
                        remote: Some(e.remote),
                        state: Some(e.state),
                        idle_secs: Some(s.idle.as_secs()),
                        expires_in_secs: Some(e.expires_in_secs),
                        worker: Some(w.index),
                        since: None,
                        held_secs: None,
                        mappings: None,
                    });
                    found += 1;
                }
                page.clear();
                buf = page;
                from = next;
            }
        }
        Ok(out)
    }

    /// `nat.lookup`'s port blocks (port block allocation): those `query` names, from
    /// every worker, counted in `found` against [`LOOKUP_LIMIT`]. A worker without port
    /// blocks (or without a NAT) has none.
    fn lookup_blocks(
        &self,
        query: nat::BlockQuery,
        out: &mut LookupResult,
        found: &mut usize,
    ) -> Result<(), ControlError> {
        const STEP: usize = 256;
        let mut buf = Vec::with_capacity(STEP);
        for w in &self.workers {
            let mut from = Some(0u32);
            while let Some(f) = from.take() {
                let request = Request::Blocks { query, from: f, buf: std::mem::take(&mut buf) };
                let Reply::Blocks { buf: back, next } = w.link.ask(request, MAILBOX_TIMEOUT)? else {
                    buf = Vec::with_capacity(STEP);
                    break;
                };
                let wall = std::time::SystemTime::now();
                for b in &back {
                    if *found == LOOKUP_LIMIT {
                        out.truncated = true;
                        return Ok(());
                    }
                    let since = wall.checked_sub(Duration::from_millis(b.held.as_millis()));
                    out.matches.push(LookupMatch {
                        source: "block".into(),
                        inside_addr: b.subscriber,
                        inside_port: None,
                        outside_addr: b.outside,
                        first_port: b.ports.lo,
                        last_port: b.ports.hi,
                        protocol: None,
                        remote: None,
                        state: Some(if b.mappings > 0 { "ACTIVE" } else { "IDLE" }.into()),
                        idle_secs: None,
                        expires_in_secs: b.release_in.map(|d| d.as_millis().div_ceil(1000)),
                        worker: Some(w.index),
                        since: since.map(|t| humantime::format_rfc3339_millis(t).to_string()),
                        held_secs: Some(b.held.as_secs()),
                        mappings: Some(b.mappings),
                    });
                    *found += 1;
                }
                // Steps move forward; one that does not cannot make progress: stop.
                from = next.filter(|n| *n > f);
                buf = back;
            }
        }
        Ok(())
    }

    /// The rules part (tests, and masqd's shutdown).
    pub fn rules(&self) -> &RulesControl {
        &self.rules
    }

    /// The rules part, shared: masqd's main thread reloads the rules file through it on
    /// SIGHUP while the control socket serves the same set.
    pub fn rules_shared(&self) -> Arc<RulesControl> {
        Arc::clone(&self.rules)
    }

    fn timeouts_now(&self) -> Timeouts {
        let v = self.timeouts.load();
        Timeouts { tcp: v.tcp, tcpfin: v.tcpfin, udp: v.udp, icmp: v.icmp, other: v.other }
    }

    /// `timeouts.set`: every value checked first (the bounds of the configuration file,
    /// [`nat::timeouts::check_timeout`]), then all set; a bad one changes nothing.
    fn set_timeouts(&self, u: TimeoutsUpdate) -> Result<Timeouts, ControlError> {
        let changes = [
            (TimeoutClass::TcpEstablished, u.tcp),
            (TimeoutClass::TcpTransitory, u.tcpfin),
            (TimeoutClass::Udp, u.udp),
            (TimeoutClass::Icmp, u.icmp),
            (TimeoutClass::Other, u.other),
        ];
        for (class, value) in changes {
            if let Some(secs) = value {
                nat::timeouts::check_timeout(secs)
                    .map_err(|e| ControlError::bad_args(class.name(), format!("`{}`: {e}", class.name())))?;
            }
        }
        for (class, value) in changes {
            if let Some(secs) = value {
                self.timeouts.set(class, secs);
            }
        }
        Ok(self.timeouts_now())
    }

    /// Report the packet-buffer pool in `stats.get` (`mempool`).
    pub fn with_mempool(mut self, source: MempoolSource) -> MasqdHandler {
        self.mempool = Some(source);
        self
    }

    /// Hold at most `max` rules (`[control] max_rules`); refused if the rules in force
    /// are already more. Before [`MasqdHandler::rules_shared`].
    pub fn with_max_rules(mut self, max: usize) -> Result<MasqdHandler, ControlError> {
        let rules = Arc::try_unwrap(self.rules)
            .map_err(|_| ControlError::internal("max_rules: set it before the rules are shared"))?;
        self.rules = Arc::new(rules.with_max_rules(max)?);
        Ok(self)
    }

    // ----- statistics -----

    fn stats(&self) -> Stats {
        // Ask every worker at once, read the ports meanwhile, then collect.
        let deadline = Instant::now() + MAILBOX_TIMEOUT;
        let pending: Vec<Option<Pending>> =
            self.workers.iter().map(|w| w.link.post(Request::Summary, deadline).ok()).collect();
        let ports = (self.port_stats)();
        let counters: Vec<&WorkerCounters> = self.workers.iter().map(|w| w.counters.as_ref()).collect();
        let histograms: Vec<&LatencyHistogram> = self.workers.iter().map(|w| w.latency.as_ref()).collect();
        let mut stats = Stats {
            ports,
            drops: drops_by_reason(&counters),
            latency_us: latency::percentiles(&histograms),
            tsc_hz: self.tsc_hz,
            latency_histogram: latency::histogram(&histograms),
            // Every protocol, zero or not (the figures are summed in below).
            sessions_by_protocol: STATS_PROTOS
                .iter()
                .map(|p| (proto_name(*p).to_string(), ProtocolSessions::default()))
                .collect(),
            ..Stats::default()
        };
        for (w, pending) in self.workers.iter().zip(pending) {
            // A worker that cannot answer still has its counters reported.
            let summary = match pending.map(|p| p.wait(deadline)) {
                Some(Ok(Reply::Summary(s))) => Some(s),
                _ => None,
            };
            let active = summary.map_or(0, |s| u64::from(s.sessions));
            if let Some(s) = summary {
                stats.sessions_active += active;
                stats.sessions_created += s.counters.sessions_created;
                stats.sessions_expired += s.counters.sessions_expired + s.counters.sessions_removed;
                for proto in STATS_PROTOS {
                    let (created, ended) =
                        (s.counters.created_by_proto[proto.code()], s.counters.ended_by_proto[proto.code()]);
                    let e = stats.sessions_by_protocol.entry(proto_name(proto).to_string()).or_default();
                    e.created += created;
                    e.expired += ended;
                    e.active += created.saturating_sub(ended);
                }
            }
            stats.workers.push(worker_stats(w.index, w.lcore, &w.counters, &w.runtime, active));
        }
        stats.counters = counter_totals(&stats.workers);
        stats.port_utilisation = self.port_utilisation(deadline);
        stats.mempool = self.mempool.as_ref().map(|m| m());
        if let Some(host) = &self.host {
            stats.host_interfaces = super::stats::host_interface_stats(host);
        }
        stats
    }

    /// Ports in use and available per external address, summed over workers (each
    /// worker owns a slice of every address). Workers without a NAT, or that do not
    /// answer by `deadline`, add nothing.
    fn port_utilisation(&self, deadline: Instant) -> Vec<PortUtilisation> {
        let mut by_addr: std::collections::BTreeMap<std::net::Ipv4Addr, PortUtilisation> = Default::default();
        let mut buf = Vec::with_capacity(PORT_USAGE_CHUNK);
        for w in &self.workers {
            let mut from = Some(0u32);
            while let Some(f) = from.take() {
                let reply = w.link.post(Request::PortUsage { from: f, buf: std::mem::take(&mut buf) }, deadline);
                let Ok(Reply::PortUsage { buf: back, next }) = reply.and_then(|p| p.wait(deadline)) else {
                    buf = Vec::with_capacity(PORT_USAGE_CHUNK);
                    break;
                };
                for u in &back {
                    let e = by_addr.entry(u.addr).or_insert_with(|| PortUtilisation {
                        address: u.addr,
                        capacity: 0,
                        tcp: 0,
                        udp: 0,
                        icmp: 0,
                    });
                    e.capacity += u.capacity;
                    e.icmp += u.in_use[nat::Proto::Icmp.code()];
                    e.tcp += u.in_use[nat::Proto::Tcp.code()];
                    e.udp += u.in_use[nat::Proto::Udp.code()];
                }
                // A step that reports nothing cannot make progress: stop.
                from = next.filter(|n| *n > f && !back.is_empty());
                buf = back;
            }
        }
        by_addr.into_values().collect()
    }

    // ----- sessions -----

    fn scan(
        &self,
        w: &WorkerHandle,
        selector: SessionSelector,
        from: Walk,
        op: ScanOp,
        limit: u32,
        buf: Vec<nat::SessionInfo>,
    ) -> Result<Reply, ControlError> {
        Ok(w.link.ask(Request::Scan { selector, from, limit, op, buf }, MAILBOX_TIMEOUT)?)
    }

    fn list_sessions(
        &self,
        filter: &SessionFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<SessionPage, ControlError> {
        let selector = SessionSelector::from_filter(filter)?;
        let (mut worker, mut walk) = match cursor {
            None => (0, Walk::default()),
            Some(c) => parse_cursor(c, self.workers.len())?,
        };
        let started = Instant::now();
        let mut page = SessionPage::default();
        let mut buf = Vec::with_capacity(SCAN_CHUNK.min(limit) as usize);
        while worker < self.workers.len() && (page.sessions.len() as u32) < limit {
            let w = &self.workers[worker];
            let want = (limit - page.sessions.len() as u32).min(SCAN_CHUNK);
            match self.scan(w, selector, walk, ScanOp::List, want, std::mem::take(&mut buf))? {
                Reply::Scanned { buf: mut found, next, .. } => {
                    page.sessions.extend(found.iter().map(|s| session_entry(s, w.index)));
                    found.clear();
                    buf = found;
                    match next {
                        Some(n) => walk = n,
                        None => (worker, walk) = (worker + 1, Walk::default()),
                    }
                }
                _ => (worker, walk) = (worker + 1, Walk::default()),
            }
            if started.elapsed() >= PAGE_TIME {
                break;
            }
        }
        page.next_cursor = (worker < self.workers.len()).then(|| cursor_at(worker, walk));
        Ok(page)
    }

    /// Visit the sessions of every worker from `from` on with `op`, until done or the
    /// scan deadline: the number that matched, and where to go on if time ran out.
    fn scan_all(&self, selector: SessionSelector, op: ScanOp, from: Option<&str>) -> Result<Scanned, ControlError> {
        let (mut worker, mut walk) = match from {
            None => (0, Walk::default()),
            Some(c) => parse_cursor(c, self.workers.len())?,
        };
        let deadline = Instant::now() + self.scan_time;
        let mut total = 0u64;
        let mut buf = Vec::with_capacity(SCAN_CHUNK as usize);
        while worker < self.workers.len() {
            if Instant::now() >= deadline {
                return Ok(Scanned { total, next: Some(cursor_at(worker, walk)) });
            }
            match self.scan(&self.workers[worker], selector, walk, op, SCAN_CHUNK, std::mem::take(&mut buf))? {
                Reply::Scanned { buf: back, matched, next } => {
                    total += u64::from(matched);
                    buf = back;
                    match next {
                        Some(n) => walk = n,
                        None => (worker, walk) = (worker + 1, Walk::default()),
                    }
                }
                _ => (worker, walk) = (worker + 1, Walk::default()),
            }
        }
        Ok(Scanned { total, next: None })
    }

    fn count_sessions(&self, filter: &SessionFilter, from: Option<&str>) -> Result<SessionCount, ControlError> {
        let selector = SessionSelector::from_filter(filter)?;
        if !selector.is_empty() {
            let Scanned { total, next } = self.scan_all(selector, ScanOp::Count, from)?;
            return Ok(SessionCount { count: total, next_cursor: next });
        }
        // Every session: the workers' own counts, no scan.
        let first = match from {
            None => 0,
            Some(c) => parse_cursor(c, self.workers.len())?.0,
        };
        let mut count = 0;
        for w in &self.workers[first..] {
            if let Reply::Summary(s) = w.link.ask(Request::Summary, MAILBOX_TIMEOUT)? {
                count += u64::from(s.sessions);
            }
        }
        Ok(SessionCount { count, next_cursor: None })
    }

    /// Every worker's open expectations (each worker's table is bounded).
    fn expectations(&self) -> Result<ExpectationList, ControlError> {
        let mut out = ExpectationList::default();
        for (i, w) in self.workers.iter().enumerate() {
            let buf = Vec::with_capacity(EXPECTATIONS_PER_WORKER);
            if let Reply::Expectations { buf } = w.link.ask(Request::Expectations { buf }, MAILBOX_TIMEOUT)? {
                out.expectations.extend(buf.iter().map(|e| expectation_entry(e, i as u32)));
            }
        }
        Ok(out)
    }

    fn flush_sessions(&self, filter: &SessionFilter, from: Option<&str>) -> Result<Flushed, ControlError> {
        let selector = SessionSelector::from_filter(filter)?;
        if !selector.is_empty() {
            let Scanned { total, next } = self.scan_all(selector, ScanOp::Remove, from)?;
            return Ok(Flushed { flushed: total, next_cursor: next });
        }
        // Everything: flush steps, worker by worker, until done or the deadline.
        let first = match from {
            None => 0,
            Some(c) => parse_cursor(c, self.workers.len())?.0,
        };
        let deadline = Instant::now() + self.scan_time;
        let mut flushed = 0;
        for (i, w) in self.workers.iter().enumerate().skip(first) {
            loop {
                if Instant::now() >= deadline {
                    return Ok(Flushed { flushed, next_cursor: Some(cursor_at(i, Walk::default())) });
                }
                let Reply::Flushed { removed, remaining } =
                    w.link.ask(Request::FlushStep { budget: SCAN_CHUNK }, MAILBOX_TIMEOUT)?
                else {
                    break;
                };
                flushed += u64::from(removed);
                // Sessions created meanwhile are not chased forever.
                if remaining == 0 || removed == 0 {
                    break;
                }
            }
        }
        Ok(Flushed { flushed, next_cursor: None })
    }

    /// Cut `sessions.count` and `sessions.flush` scans short after `time` (default
    /// [`SCAN_TIME`]) with a cursor to go on from.
    pub fn with_scan_time(mut self, time: Duration) -> MasqdHandler {
        self.scan_time = time;
        self
    }

    fn config(&self) -> Value {
        let mut config = self.config.clone();
        if let Value::Object(map) = &mut config {
            map.insert("timeouts".into(), json!(self.timeouts_now()));
        }
        config
    }
}

/// How far a scan of every worker got.
struct Scanned {
    /// Sessions that matched (and were counted or removed).
    total: u64,
    /// Where to go on, when the deadline came first.
    next: Option<String>,
}

/// A cursor for `worker`'s sessions from `walk` on.
fn cursor_at(worker: usize, walk: Walk) -> String {
    format!("{worker}:{}:{}", walk.slot, walk.seen)
}

/// The rows of `sessions_by_protocol`: one per [`nat::Proto::code`], every
/// address-only protocol (GRE, ESP, ...) together as `other`.
const STATS_PROTOS: [nat::Proto; nat::Proto::CODES] =
    [nat::Proto::Icmp, nat::Proto::Tcp, nat::Proto::Udp, nat::Proto::Other(0)];

/// A protocol's name in `stats.get` (`sessions_by_protocol`).
fn proto_name(p: nat::Proto) -> &'static str {
    match p {
        nat::Proto::Icmp => "icmp",
        nat::Proto::Tcp => "tcp",
        nat::Proto::Udp => "udp",
        nat::Proto::Other(_) => "other",
    }
}

/// `"worker:slot:seen"`: where a listing, a count or a flush goes on. Opaque to clients.
fn parse_cursor(cursor: &str, workers: usize) -> Result<(usize, Walk), ControlError> {
    let bad = || ControlError::bad_args("cursor", format!("`cursor`: {cursor:?} is not a cursor this masqd gave out"));
    let mut parts = cursor.split(':');
    let mut next = || parts.next().and_then(|p| p.parse::<u64>().ok()).ok_or_else(bad);
    let (w, slot, seen) = (next()?, next()?, next()?);
    if parts.next().is_some() || w >= workers as u64 || slot > u64::from(u32::MAX) || seen > u64::from(u32::MAX) {
        return Err(bad());
    }
    Ok((w as usize, Walk { slot: slot as u32, seen: seen as u32 }))
}

impl Handler for MasqdHandler {
    fn handle(&self, cmd: Command) -> Result<Value, ControlError> {
        match cmd {
            Command::RulesList { table, chain } => to_result(&self.rules.list(&table, chain.as_deref())?),
            Command::RulesAppend { table, chain, spec } => to_result(&self.rules.append(&table, &chain, &spec)?),
            Command::RulesInsert { table, chain, position, spec } => {
                to_result(&self.rules.insert(&table, &chain, position, &spec)?)
            }
            Command::RulesDelete { table, chain, rule } => {
                self.rules.delete(&table, &chain, &rule)?;
                Ok(json!({}))
            }
            Command::RulesFlush { table, chain } => to_result(&self.rules.flush(&table, chain.as_deref())?),
            Command::RulesPolicy { table, chain, policy } => {
                self.rules.policy(&table, &chain, &policy)?;
                Ok(json!({}))
            }
            Command::RulesSave { table } => to_result(&self.rules.save(table.as_deref())?),
            Command::RulesRestore { text, noflush } => to_result(&self.rules.restore(&text, noflush)?),
            Command::SessionsList { filter, cursor, limit } => {
                to_result(&self.list_sessions(&filter, cursor.as_deref(), limit)?)
            }
            Command::SessionsCount { filter, cursor } => to_result(&self.count_sessions(&filter, cursor.as_deref())?),
            Command::SessionsFlush { filter, cursor } => to_result(&self.flush_sessions(&filter, cursor.as_deref())?),
            Command::StatsGet => to_result(&self.stats()),
            Command::ExpectationsList => to_result(&self.expectations()?),
            Command::TimeoutsGet => to_result(&self.timeouts_now()),
            Command::TimeoutsSet(update) => to_result(&self.set_timeouts(update)?),
            Command::ConfigGet => Ok(self.config()),
            Command::NatLookup { query, protocol } => to_result(&self.lookup(query, protocol)?),
            Command::Version => to_result(&VersionInfo::masqd()),
        }
    }
}

/// `config.get`'s answer for `config` (without live timeouts): ports, workers and their
/// lcores, EAL settings, NAT sizing, the control socket and the rules file.
pub fn config_json(config: &Config, worker_lcores: &[u32], rules_file: Option<&Path>) -> Value {
    let ports: Vec<Value> = config
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| {
            json!({
                "port": i,
                "name": p.name,
                "role": p.role.to_string(),
                "device": p.device,
                "address": p.address.to_string(),
                "gateway": p.gateway.map(|g| g.to_string()),
                "mtu": p.mtu,
                "mac": p.mac.map(|m| crate::packet::EthernetAddress(m).to_string()),
                "host_interface": p.host_interface,
                "allowed_sources": p.allowed_sources.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let filtering = match config.nat.filtering {
        Filtering::EndpointIndependent => "endpoint-independent",
        Filtering::AddressDependent => "address-dependent",
        Filtering::AddressPortDependent => "address-port-dependent",
    };
    json!({
        "ports": ports,
        "workers": {
            "cores": config.workers.cores,
            "lcores": worker_lcores,
            "burst": config.workers.burst,
        },
        "dpdk": {
            "main_core": config.dpdk.main_core,
            "args": config.dpdk.args,
            "mbufs": config.dpdk.mbufs,
            "rx_desc": config.dpdk.rx_desc,
            "tx_desc": config.dpdk.tx_desc,
        },
        "nat": {
            "max_sessions": config.nat.max_sessions,
            "ports_per_subscriber": config.nat.ports_per_subscriber,
            "sessions_per_subscriber": config.nat.sessions_per_subscriber,
            "new_sessions_per_second": config.nat.new_sessions_per_second,
            "new_sessions_burst": config.nat.new_sessions_burst,
            "filtering": filtering,
        },
        "control": {
            "socket": config.control.socket,
            "group": config.control.group,
            "max_rules": config.control.max_rules,
        },
        "host": {
            "ports": format!("{}-{}", config.host.ports.0, config.host.ports.1),
            "max_pps": config.host.max_pps,
            "queue": config.host.queue,
            "set_local_port_range": config.host.set_local_port_range,
        },
        "metrics": config.metrics.map(|m| json!({"listen": m.listen.to_string()})),
        "rules_file": rules_file.map(|p| p.display().to_string()),
        "version": env!("CARGO_PKG_VERSION"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::mailbox::{channel, WorkerMailbox};
    use super::*;
    use control::protocol::ErrorCode;
    use control::server::respond;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread::JoinHandle;

    const CONFIG: &str = r#"
[dpdk]
args = ["--no-huge"]
[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "100.64.0.1/10"
[[port]]
name = "wan"
role = "outside"
device = "net_null1"
address = "203.0.113.1/24"
gateway = "203.0.113.254"
[workers]
cores = [1, 2]
[control]
socket = "/tmp/x.sock"
"#;

    /// A handler over `n` fake workers whose mailboxes are served by a thread, with `nat`
    /// deciding what each worker's NAT is.
    struct Fixture {
        handler: MasqdHandler,
        stop: Arc<AtomicBool>,
        thread: Option<JoinHandle<()>>,
        compiled: Arc<ArcSwap<CompiledRules>>,
        timeouts: Arc<nat::Timeouts>,
        counters: Vec<Arc<WorkerCounters>>,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }

    fn fixture(nats: Vec<Option<nat::WorkerNat>>) -> Fixture {
        fixture_full(nats, Default::default(), SCAN_TIME)
    }

    /// [`fixture`] whose count and flush scans stop after `scan_time`.
    fn fixture_timed(nats: Vec<Option<nat::WorkerNat>>, scan_time: Duration) -> Fixture {
        fixture_full(nats, Default::default(), scan_time)
    }

    fn fixture_with(nats: Vec<Option<nat::WorkerNat>>, deterministic: nat::deterministic::DetTables) -> Fixture {
        fixture_full(nats, deterministic, SCAN_TIME)
    }

    fn fixture_full(
        mut nats: Vec<Option<nat::WorkerNat>>,
        deterministic: nat::deterministic::DetTables,
        scan_time: Duration,
    ) -> Fixture {
        let config = Config::parse(CONFIG).unwrap();
        let compiled = Arc::new(ArcSwap::from_pointee(CompiledRules::default()));
        let timeouts = Arc::new(nat::Timeouts::default());
        let mut workers = Vec::new();
        let mut mailboxes: Vec<WorkerMailbox> = Vec::new();
        let mut counters = Vec::new();
        for i in 0..nats.len() as u32 {
            let (mailbox, link) = channel(i);
            mailboxes.push(mailbox);
            let c = Arc::new(WorkerCounters::default());
            counters.push(c.clone());
            let latency = Arc::new(LatencyHistogram::default());
            latency.record(1500, 10);
            let runtime = Arc::new(WorkerRuntime::default());
            runtime.record(crate::pipeline::Stage::L2Input, 8, 400);
            workers.push(WorkerHandle { index: i, lcore: i + 1, counters: c, latency, runtime, link });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let now = crate::time::Instant::from_millis(start.elapsed().as_millis() as u64);
                    for (m, n) in mailboxes.iter_mut().zip(nats.iter_mut()) {
                        if m.due(now) {
                            m.serve(n.as_mut(), now);
                        }
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
            })
        };
        let handler = MasqdHandler::new(HandlerParts {
            rules: RuleSet::new(),
            port_names: vec!["lan".into(), "wan".into()],
            compiled: compiled.clone(),
            timeouts: timeouts.clone(),
            workers,
            port_stats: Box::new(|| vec![super::super::stats::port_stats(0, "lan", Default::default(), &[])]),
            config: config_json(&config, &[1, 2], Some(Path::new("/etc/masq/rules.v4"))),
            external_addrs: vec![std::net::Ipv4Addr::new(203, 0, 113, 1)],
            tsc_hz: 2_000_000_000,
            host: None,
            deterministic,
        })
        .unwrap()
        .with_scan_time(scan_time)
        .with_mempool(Box::new(|| MempoolStats { size: 4096, in_use: 7 }));
        Fixture { handler, stop, thread: Some(thread), compiled, timeouts, counters }
    }

    fn nat_with(worker: u16, workers: u16, n: u16) -> nat::WorkerNat {
        use crate::nat::{Endpoint, NatAction, NatConfig, Proto, Tuple};
        use std::net::Ipv4Addr;
        let mut nat = nat::WorkerNat::new(
            NatConfig::new(vec![Ipv4Addr::new(203, 0, 113, 1)], worker, workers),
            Arc::new(nat::Timeouts::default()),
        )
        .unwrap();
        for i in 0..n {
            let t = Tuple::new(
                Endpoint::new(Ipv4Addr::new(100, 64, worker as u8, (i % 250) as u8 + 1), 10000 + i),
                Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), if i % 2 == 0 { 443 } else { 53 }),
                if i % 2 == 0 { Proto::Tcp } else { Proto::Udp },
            );
            nat.create(&t, NatAction::Masquerade, 0x02, crate::time::Instant::from_secs(1)).unwrap();
        }
        nat
    }

    fn call(f: &Fixture, line: &str) -> Result<Value, ControlError> {
        respond(&f.handler, line.as_bytes()).outcome
    }

    #[test]
    fn lookup_answers_from_live_sessions_and_deterministic_tables() {
        use crate::nat::deterministic::{DetTable, DetTables};
        use std::net::Ipv4Addr;
        let det = DetTables::new(vec![DetTable::new(
            (Ipv4Addr::new(100, 64, 9, 0), 24),
            (Ipv4Addr::new(203, 0, 113, 9), 32),
        )
        .unwrap()])
        .unwrap();
        let f = fixture_with(vec![Some(nat_with(0, 2, 10)), Some(nat_with(1, 2, 10))], det);
        // Worker 0 keeps source ports (its slice is 1024-33279): 100.64.0.4:10003 (UDP).
        let v =
            call(&f, r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.1:10003", "protocol": "udp"}}"#).unwrap();
        let r: LookupResult = serde_json::from_value(v).unwrap();
        assert_eq!(r.matches.len(), 1, "{r:?}");
        let m = &r.matches[0];
        assert_eq!(
            (m.source.as_str(), m.inside_addr, m.inside_port),
            ("session", Ipv4Addr::new(100, 64, 0, 4), Some(10003))
        );
        assert_eq!(
            (m.protocol, m.worker, m.remote),
            (Some(Protocol::Udp), Some(0), Some("198.51.100.7:53".parse().unwrap()))
        );
        assert!(m.idle_secs.is_some() && m.expires_in_secs.is_some());
        // The wrong protocol: nothing.
        let v =
            call(&f, r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.1:10003", "protocol": "tcp"}}"#).unwrap();
        assert_eq!(v, json!({"matches": [], "truncated": false}));
        // A subscriber of worker 1: its session, wherever its port.
        let v = call(&f, r#"{"cmd": "nat.lookup", "args": {"inside": "100.64.1.1"}}"#).unwrap();
        let r: LookupResult = serde_json::from_value(v).unwrap();
        assert_eq!(r.matches.len(), 1, "{r:?}");
        assert_eq!((r.matches[0].inside_port, r.matches[0].worker), (Some(10000), Some(1)));
        // Deterministic: computed both ways.
        let v = call(&f, r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.9:1300"}}"#).unwrap();
        assert_eq!(
            v,
            json!({"truncated": false, "matches": [{"source": "deterministic", "inside_addr": "100.64.9.1",
                "outside_addr": "203.0.113.9", "first_port": 1276, "last_port": 1527}]})
        );
        let v = call(&f, r#"{"cmd": "nat.lookup", "args": {"inside": "100.64.9.1"}}"#).unwrap();
        assert_eq!(v["matches"][0]["first_port"], 1276);
        let v = call(&f, r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.9"}}"#).unwrap();
        assert_eq!(v["matches"].as_array().unwrap().len(), 256, "every host of the address");
        // Bad arguments are refused, naming them.
        for bad in [
            r#"{"cmd": "nat.lookup"}"#,
            r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.1:1", "inside": "100.64.0.2"}}"#,
            r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.1:x"}}"#,
            r#"{"cmd": "nat.lookup", "args": {"inside": "100.64.0.0/24"}}"#,
            r#"{"cmd": "nat.lookup", "args": {"inside": "100.64.0.2", "protocol": "sctp"}}"#,
        ] {
            let e = call(&f, bad).unwrap_err();
            assert_eq!(e.code, control::protocol::ErrorCode::BadArgs, "{bad}: {e:?}");
        }
    }

    #[test]
    fn lookup_answers_from_live_port_blocks() {
        use crate::nat::{Endpoint, NatAction, NatConfig, Proto, Tuple};
        use std::net::Ipv4Addr;
        let ext = Ipv4Addr::new(203, 0, 113, 1);
        let blocks = |worker: u16| {
            let mut c = NatConfig::new(vec![ext], worker, 2);
            c.port_block_size = 64;
            let mut nat = nat::WorkerNat::new(c, Arc::new(nat::Timeouts::default())).unwrap();
            // Subscriber 100.64.<worker>.1: 70 mappings, two blocks.
            for i in 0..70 {
                let inside = Endpoint::new(Ipv4Addr::new(100, 64, worker as u8, 1), 20000 + i);
                let t = Tuple::new(inside, Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 53), Proto::Udp);
                nat.create(&t, NatAction::Masquerade, 0, crate::time::Instant::ZERO).unwrap();
            }
            nat
        };
        let (w0, w1) = (blocks(0), blocks(1));
        let mut held = Vec::with_capacity(4);
        w1.blocks_matching(nat::BlockQuery::Subscriber(Ipv4Addr::new(100, 64, 1, 1)), 0, Default::default(), &mut held);
        let b = held[1];
        let f = fixture(vec![Some(w0), Some(w1)]);
        // A port inside worker 1's older block: the block, then its live session.
        let port = b.ports.lo + 10;
        let v = call(&f, &format!(r#"{{"cmd": "nat.lookup", "args": {{"outside": "203.0.113.1:{port}"}}}}"#)).unwrap();
        let r: LookupResult = serde_json::from_value(v).unwrap();
        let m = &r.matches[0];
        assert_eq!(
            (m.source.as_str(), m.inside_addr, m.outside_addr, m.first_port, m.last_port),
            ("block", Ipv4Addr::new(100, 64, 1, 1), ext, b.ports.lo, b.ports.hi)
        );
        assert_eq!(
            (m.state.as_deref(), m.mappings, m.worker, m.expires_in_secs),
            (Some("ACTIVE"), Some(64), Some(1), None)
        );
        let since = humantime::parse_rfc3339(m.since.as_deref().unwrap()).unwrap();
        let age = std::time::SystemTime::now().duration_since(since).unwrap();
        assert!(age.as_secs() <= 5 + m.held_secs.unwrap(), "{m:?}");
        assert!(r.matches[1..].iter().all(|s| s.source == "session" && s.first_port == port), "{r:?}");
        // A subscriber: both its blocks, then its sessions.
        let v = call(&f, r#"{"cmd": "nat.lookup", "args": {"inside": "100.64.0.1", "protocol": "udp"}}"#).unwrap();
        let r: LookupResult = serde_json::from_value(v).unwrap();
        let kinds: Vec<&str> = r.matches.iter().map(|m| m.source.as_str()).collect();
        assert_eq!(kinds[..2], ["block", "block"]);
        assert_eq!(kinds.iter().filter(|k| **k == "session").count(), 70);
        assert!(r.matches[..2].iter().all(|m| m.worker == Some(0) && m.last_port - m.first_port == 63));
        // The whole address: four blocks over the two workers.
        let v = call(&f, r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.1", "protocol": "icmp"}}"#).unwrap();
        let r: LookupResult = serde_json::from_value(v).unwrap();
        assert_eq!(r.matches.len(), 4, "{r:?}");
        // A port in no block.
        let v = call(&f, r#"{"cmd": "nat.lookup", "args": {"outside": "203.0.113.1:65535"}}"#).unwrap();
        assert_eq!(v, json!({"matches": [], "truncated": false}));
    }

    #[test]
    fn every_command_answers() {
        let f = fixture(vec![None, None]);
        let lines = [
            r#"{"cmd": "rules.append", "args": {"table": "nat", "chain": "POSTROUTING", "spec": ["-o", "wan", "-j", "MASQUERADE"]}}"#,
            r#"{"cmd": "rules.insert", "args": {"table": "nat", "chain": "POSTROUTING", "spec": ["-o", "wan", "-p", "udp", "-j", "MASQUERADE"]}}"#,
            r#"{"cmd": "rules.list", "args": {"table": "nat"}}"#,
            r#"{"cmd": "rules.delete", "args": {"table": "nat", "chain": "POSTROUTING", "number": 1}}"#,
            r#"{"cmd": "rules.policy", "args": {"chain": "FORWARD", "policy": "DROP"}}"#,
            r#"{"cmd": "rules.save"}"#,
            r#"{"cmd": "rules.restore", "args": {"text": "*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n"}}"#,
            r#"{"cmd": "rules.flush", "args": {"table": "nat"}}"#,
            r#"{"cmd": "sessions.list", "args": {"protocol": "tcp"}}"#,
            r#"{"cmd": "sessions.count"}"#,
            r#"{"cmd": "sessions.flush"}"#,
            r#"{"cmd": "expectations.list"}"#,
            r#"{"cmd": "stats.get"}"#,
            r#"{"cmd": "timeouts.get"}"#,
            r#"{"cmd": "timeouts.set", "args": {"udp": 120}}"#,
            r#"{"cmd": "config.get"}"#,
            r#"{"cmd": "nat.lookup", "args": {"inside": "100.64.0.2"}}"#,
            r#"{"cmd": "version"}"#,
        ];
        let mut names = std::collections::BTreeSet::new();
        for line in lines {
            let v: Value = serde_json::from_str(line).unwrap();
            names.insert(v["cmd"].as_str().unwrap().to_string());
            assert!(call(&f, line).is_ok(), "{line}: {:?}", call(&f, line));
        }
        assert_eq!(names.len(), Command::NAMES.len(), "every command is exercised");
        // Without a NAT, sessions are empty, not errors.
        assert_eq!(call(&f, r#"{"cmd": "sessions.list"}"#).unwrap(), json!({"sessions": [], "next_cursor": null}));
        assert_eq!(call(&f, r#"{"cmd": "sessions.count"}"#).unwrap(), json!({"count": 0}));
        assert_eq!(
            call(&f, r#"{"cmd": "sessions.flush", "args": {"protocol": "udp"}}"#).unwrap(),
            json!({"flushed": 0})
        );
    }

    #[test]
    fn timeouts_from_the_socket_have_the_bounds_of_the_config_file() {
        let f = fixture(vec![None]);
        let e = call(&f, r#"{"cmd": "timeouts.set", "args": {"tcp": 7200, "udp": 604801}}"#).unwrap_err();
        assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("udp")));
        assert_eq!(e.message, "`udp`: 604801 s is outside 1..=604800");
        assert_eq!(f.timeouts.get(TimeoutClass::TcpEstablished), crate::time::Duration::from_secs(7440), "unchanged");
        assert!(call(&f, r#"{"cmd": "timeouts.set", "args": {"icmp": 604800}}"#).is_ok());
    }

    #[test]
    fn timeouts_set_then_get_and_the_nat_sees_them() {
        let f = fixture(vec![None]);
        let set = call(&f, r#"{"cmd": "timeouts.set", "args": {"tcp": 7200, "tcpfin": 10, "udp": 160}}"#).unwrap();
        assert_eq!(set, json!({"tcp": 7200, "tcpfin": 10, "udp": 160, "icmp": 60, "other": 600}));
        assert_eq!(call(&f, r#"{"cmd": "timeouts.get"}"#).unwrap(), set);
        assert_eq!(f.timeouts.get(TimeoutClass::Udp), crate::time::Duration::from_secs(160));
        assert_eq!(call(&f, r#"{"cmd": "config.get"}"#).unwrap()["timeouts"]["tcpfin"], 10);
    }

    #[test]
    fn stats_report_counters_drops_latency_and_sessions() {
        let f = fixture(vec![Some(nat_with(0, 2, 30)), None]);
        f.counters[0].rx_packets.add(5);
        f.counters[1].rx_packets.add(7);
        f.counters[1].count_drop(crate::stats::DropReason::NoRoute);
        let s: Stats = serde_json::from_value(call(&f, r#"{"cmd": "stats.get"}"#).unwrap()).unwrap();
        assert_eq!(s.ports.len(), 1);
        assert_eq!(s.workers.len(), 2);
        assert_eq!((s.workers[0].rx_packets, s.workers[1].rx_packets), (5, 7));
        assert_eq!((s.workers[0].lcore, s.workers[1].drops), (1, 1));
        assert_eq!(s.drops["no_route"], 1);
        assert_eq!((s.sessions_active, s.sessions_created, s.workers[0].sessions_active), (30, 30, 30));
        // Worker 0 of 2 owns half of 203.0.113.1's ports; its 30 flows are 30 mappings.
        let part = nat::PortPartition::new(2, nat::PortRange::new(1024, 65535)).unwrap();
        let own = part.slice(0, true).len() + part.slice(0, false).len();
        assert_eq!(
            s.port_utilisation,
            vec![PortUtilisation {
                address: std::net::Ipv4Addr::new(203, 0, 113, 1),
                capacity: own,
                tcp: 15,
                udp: 15,
                icmp: 0
            }]
        );
        assert_eq!(s.latency_us.samples, 20);
        assert!((s.latency_us.p50 - 1.5).abs() < 0.1, "{:?}", s.latency_us);
        // Each worker's runtime table, every stage, in order, with the TSC rate.
        assert_eq!(s.tsc_hz, 2_000_000_000);
        for w in &s.workers {
            let names: Vec<&str> = w.runtime.iter().map(|r| r.stage.as_str()).collect();
            let all: Vec<&str> = crate::pipeline::Stage::ALL.iter().map(|s| s.name()).collect();
            assert_eq!(names, all);
            let l2 = w.runtime.iter().find(|r| r.stage == "l2-input").unwrap();
            assert_eq!((l2.calls, l2.packets, l2.cycles), (1, 8, 400));
        }
        // The same samples as a histogram: 10 per worker at 1.5 µs, all under 2 µs.
        assert_eq!((s.latency_histogram.count, s.latency_histogram.sum_us), (20, 30.0));
        let le = |us: f64| s.latency_histogram.buckets.iter().find(|b| b.le_us == us).unwrap().count;
        assert_eq!((le(1.0), le(2.0)), (0, 20));
        // nat_with: even flows TCP, odd UDP.
        let tcp = ProtocolSessions { active: 15, created: 15, expired: 0 };
        assert_eq!(s.sessions_by_protocol["tcp"], tcp);
        assert_eq!(s.sessions_by_protocol["udp"], tcp);
        assert_eq!(s.sessions_by_protocol["icmp"], ProtocolSessions::default());
        assert_eq!(s.mempool, Some(MempoolStats { size: 4096, in_use: 7 }), "read live from its source");
    }

    #[test]
    fn sessions_page_across_workers_with_filters_and_flush() {
        let f = fixture(vec![Some(nat_with(0, 2, 1500)), None, Some(nat_with(1, 3, 700))]);
        assert_eq!(call(&f, r#"{"cmd": "sessions.count"}"#).unwrap(), json!({"count": 2200}));
        assert_eq!(
            call(&f, r#"{"cmd": "sessions.count", "args": {"protocol": "udp"}}"#).unwrap(),
            json!({"count": 1100})
        );
        assert_eq!(
            call(&f, r#"{"cmd": "sessions.count", "args": {"inside_addr": "100.64.1.0/24", "state": "SYN_SENT"}}"#)
                .unwrap(),
            json!({"count": 350})
        );
        // Page through everything, 1000 at a time.
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::BTreeSet::new();
        let mut pages = 0;
        loop {
            let args = match &cursor {
                None => json!({"limit": 1000}),
                Some(c) => json!({"limit": 1000, "cursor": c}),
            };
            let line = json!({"cmd": "sessions.list", "args": args}).to_string();
            let page: SessionPage = serde_json::from_value(call(&f, &line).unwrap()).unwrap();
            assert!(page.sessions.len() <= 1000);
            for s in &page.sessions {
                assert!(seen.insert((s.worker, s.inside, s.remote)), "listed twice: {s:?}");
                assert!(s.worker == 0 || s.worker == 2);
            }
            pages += 1;
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 2200);
        assert!(pages >= 3);
        let e = call(&f, r#"{"cmd": "sessions.list", "args": {"cursor": "9:0:0"}}"#).unwrap_err();
        assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("cursor")));
        let e = call(&f, r#"{"cmd": "sessions.count", "args": {"state": "asleep"}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("state"));

        assert_eq!(
            call(&f, r#"{"cmd": "sessions.flush", "args": {"protocol": "tcp"}}"#).unwrap(),
            json!({"flushed": 1100})
        );
        assert_eq!(call(&f, r#"{"cmd": "sessions.count"}"#).unwrap(), json!({"count": 1100}));
        assert_eq!(call(&f, r#"{"cmd": "sessions.flush"}"#).unwrap(), json!({"flushed": 1100}));
        assert_eq!(call(&f, r#"{"cmd": "sessions.count"}"#).unwrap(), json!({"count": 0}));
        let s: Stats = serde_json::from_value(call(&f, r#"{"cmd": "stats.get"}"#).unwrap()).unwrap();
        assert_eq!((s.sessions_created, s.sessions_expired), (2200, 2200));
        let udp = s.sessions_by_protocol["udp"];
        assert_eq!((udp.active, udp.created, udp.expired), (0, 1100, 1100));
    }

    /// Call `line` (a count or a flush), then again with each `next_cursor`, until done:
    /// the sum of `key`, and how many calls it took.
    fn to_the_end(f: &Fixture, cmd: &str, args: Value, key: &str) -> (u64, usize) {
        let (mut total, mut calls, mut args) = (0, 0, args);
        loop {
            let line = json!({"cmd": cmd, "args": args}).to_string();
            let r = call(f, &line).unwrap_or_else(|e| panic!("{line}: {e:?}"));
            total += r[key].as_u64().unwrap();
            calls += 1;
            assert!(calls < 1000, "no end in sight");
            match r.get("next_cursor").and_then(Value::as_str) {
                Some(c) => args["cursor"] = json!(c),
                None => return (total, calls),
            }
        }
    }

    #[test]
    fn counts_and_flushes_that_cannot_finish_in_time_say_how_far_they_got_and_go_on() {
        // Each worker step takes at least a millisecond (one request per ms of its clock):
        // 6000 sessions are many steps, far more than 3 ms allow.
        let f = fixture_timed(vec![Some(nat_with(0, 2, 3000)), Some(nat_with(1, 2, 3000))], Duration::from_millis(3));
        let (udp, calls) = to_the_end(&f, "sessions.count", json!({"protocol": "udp"}), "count");
        assert_eq!(udp, 3000);
        assert!(calls > 1, "cut short at least once: {calls}");
        // The first answer of a cut-short flush says how far it got, and no more went.
        let first = call(&f, r#"{"cmd": "sessions.flush", "args": {"protocol": "udp"}}"#).unwrap();
        let (done, cursor) = (first["flushed"].as_u64().unwrap(), first["next_cursor"].as_str().unwrap());
        assert!(done < 1500, "{first}");
        assert_eq!(to_the_end(&f, "sessions.count", json!({"protocol": "udp"}), "count").0, 3000 - done);
        let (rest, _) = to_the_end(&f, "sessions.flush", json!({"protocol": "udp", "cursor": cursor}), "flushed");
        assert_eq!(done + rest, 3000);
        assert_eq!(call(&f, r#"{"cmd": "sessions.count"}"#).unwrap(), json!({"count": 3000}));
        // A full flush (flush steps, not a scan) is cut short the same way.
        let (all, calls) = to_the_end(&f, "sessions.flush", json!({}), "flushed");
        assert_eq!(all, 3000);
        assert!(calls > 1, "{calls}");
        assert_eq!(call(&f, r#"{"cmd": "sessions.count"}"#).unwrap(), json!({"count": 0}));
        let e = call(&f, r#"{"cmd": "sessions.flush", "args": {"cursor": "7:0:0"}}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("cursor"));
    }

    #[test]
    fn rules_reach_the_compiled_set_and_config_says_what_runs() {
        let f = fixture(vec![None]);
        call(&f, r#"{"cmd": "rules.append", "args": {"table": "nat", "chain": "POSTROUTING", "spec": ["-o", "wan", "-j", "MASQUERADE"]}}"#).unwrap();
        assert_eq!(f.compiled.load().chain_len(crate::policy::Chain::Postrouting), 1);
        let e = call(&f, r#"{"cmd": "rules.append", "args": {"table": "nat", "chain": "POSTROUTING", "spec": ["-o", "eth0", "-j", "MASQUERADE"]}}"#).unwrap_err();
        assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("spec[1]")));
        let c = call(&f, r#"{"cmd": "config.get"}"#).unwrap();
        assert_eq!(c["ports"][1]["name"], "wan");
        assert_eq!(c["ports"][1]["gateway"], "203.0.113.254");
        assert_eq!(c["workers"]["lcores"], json!([1, 2]));
        assert_eq!(c["control"]["socket"], "/tmp/x.sock");
        assert_eq!(c["metrics"], Value::Null, "no [metrics] section");
        assert_eq!(c["rules_file"], "/etc/masq/rules.v4");
        assert_eq!(c["timeouts"]["tcp"], 7440);
        let v: VersionInfo = serde_json::from_value(call(&f, r#"{"cmd": "version"}"#).unwrap()).unwrap();
        assert_eq!(v.daemon, "masqd");
    }
}
