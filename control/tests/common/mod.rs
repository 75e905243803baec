//! A mock masqd for the control tests: every command answered from in-memory state, with a
//! toy rule "grammar" (enough to fill the display columns) standing in for the dataplane's.
#![allow(dead_code)] // each test binary uses its own part of this module

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use control::protocol::{
    to_result, ChainListing, Flushed, LookupMatch, LookupQuery, LookupResult, Percentiles, PortStats, PortUtilisation,
    Protocol, RestoreSummary, RuleAdded, RuleEntry, RuleListing, RuleSelector, SavedRules, SessionCount, SessionEntry,
    SessionPage, StageRuntime, Stats, Timeouts, VersionInfo, WorkerStats,
};
use control::{Command, ControlError, Handler, Server, ServerHandle, ServerOptions};
use serde_json::{json, Value};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("masq-ctl-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // Its mode set, not left to the umask: a server binding on another test's thread
        // narrows the process-wide umask for that moment (see `control::server`), and a
        // directory created then would be born 0660 — refused as group-writable.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn socket(&self) -> PathBuf {
        self.0.join("masqd.sock")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A mock server on a fresh socket.
pub fn start(name: &str) -> (TempDir, ServerHandle) {
    start_with(name, ServerOptions::default())
}

pub fn start_with(name: &str, options: ServerOptions) -> (TempDir, ServerHandle) {
    start_handler(name, options, Mock::new())
}

/// Any handler on a fresh socket.
pub fn start_handler<H: Handler>(name: &str, options: ServerOptions, handler: H) -> (TempDir, ServerHandle) {
    let dir = TempDir::new(name);
    let server = Server::bind_with(dir.socket(), None, options).expect("bind");
    let handle = server.spawn(handler).expect("spawn");
    (dir, handle)
}

#[derive(Debug, Clone)]
struct Rule {
    spec: Vec<String>,
    packets: u64,
    bytes: u64,
}

#[derive(Debug, Clone)]
struct Chain {
    name: String,
    policy: Option<String>,
    rules: Vec<Rule>,
}

type Tables = BTreeMap<String, Vec<Chain>>;

struct State {
    tables: Tables,
    sessions: Vec<SessionEntry>,
    timeouts: Timeouts,
}

/// The mock handler. State behind one mutex: fine for a mock.
pub struct Mock {
    state: Mutex<State>,
}

/// The sessions the mock starts with: 25, of which 10 TCP (1 of them SYN_SENT), 10 UDP, 5 ICMP.
pub const SESSIONS: usize = 25;

fn builtin_tables() -> Tables {
    let chains = |names: &[&str]| {
        names.iter().map(|n| Chain { name: n.to_string(), policy: Some("ACCEPT".into()), rules: vec![] }).collect()
    };
    BTreeMap::from([
        ("filter".to_string(), chains(&["INPUT", "FORWARD", "OUTPUT"])),
        ("nat".to_string(), chains(&["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"])),
    ])
}

impl Mock {
    pub fn new() -> Mock {
        let sessions = (0..SESSIONS)
            .map(|i| {
                let proto = match i {
                    0..=9 => Protocol::Tcp,
                    10..=19 => Protocol::Udp,
                    _ => Protocol::Icmp,
                };
                SessionEntry {
                    proto,
                    inside: format!("100.64.0.{}:{}", 2 + i % 5, 40000 + i).parse().unwrap(),
                    outside: format!("203.0.113.1:{}", 61000 + i).parse().unwrap(),
                    remote: format!("198.51.100.7:{}", if proto == Protocol::Udp { 53 } else { 443 }).parse().unwrap(),
                    state: match (proto, i) {
                        (Protocol::Tcp, 9) => "SYN_SENT".into(),
                        (Protocol::Tcp, _) => "ESTABLISHED".into(),
                        (Protocol::Udp, _) => "UDP".into(),
                        (Protocol::Icmp, _) => "ICMP".into(),
                        (Protocol::Other(_), _) => "UNREPLIED".into(),
                    },
                    expires_in_secs: 7440 - i as u64,
                    worker: (i % 2) as u32,
                    id: None,
                    helper: None,
                    parent: None,
                }
            })
            .collect();
        Mock {
            state: Mutex::new(State {
                tables: builtin_tables(),
                sessions,
                timeouts: Timeouts { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60, other: 600 },
            }),
        }
    }
}

impl Default for Mock {
    fn default() -> Self {
        Mock::new()
    }
}

fn table<'a>(tables: &'a mut Tables, name: &str) -> Result<&'a mut Vec<Chain>, ControlError> {
    tables.get_mut(name).ok_or_else(|| ControlError::not_found(format!("no table `{name}`")))
}

fn chain<'a>(chains: &'a mut [Chain], name: &str) -> Result<&'a mut Chain, ControlError> {
    chains.iter_mut().find(|c| c.name == name).ok_or_else(|| ControlError::not_found(format!("no chain `{name}`")))
}

/// The toy grammar: a few options, a target, everything else is "options".
fn check_spec(spec: &[String]) -> Result<(), ControlError> {
    if let Some((i, bad)) = spec.iter().enumerate().find(|(_, t)| t.starts_with("--bogus")) {
        return Err(ControlError::bad_args(format!("spec[{i}]"), format!("unknown option `{bad}`")));
    }
    Ok(())
}

fn entry(number: usize, rule: &Rule) -> RuleEntry {
    let mut e = RuleEntry {
        number: number as u32,
        packets: rule.packets,
        bytes: rule.bytes,
        spec: rule.spec.clone(),
        protocol: "all".into(),
        in_iface: "*".into(),
        out_iface: "*".into(),
        source: "0.0.0.0/0".into(),
        destination: "0.0.0.0/0".into(),
        ..Default::default()
    };
    let mut options = Vec::new();
    let mut tokens = rule.spec.iter();
    while let Some(t) = tokens.next() {
        let mut value = || tokens.next().cloned().unwrap_or_default();
        match t.as_str() {
            "-p" => e.protocol = value(),
            "-i" => e.in_iface = value(),
            "-o" => e.out_iface = value(),
            "-s" => e.source = value(),
            "-d" => e.destination = value(),
            "-j" => e.target = value(),
            "--dport" => options.push(format!("{} dpt:{}", e.protocol, value())),
            "--to-destination" => options.push(format!("to:{}", value())),
            other => options.push(other.to_string()),
        }
    }
    e.options = options.join(" ");
    e
}

fn save(tables: &Tables, only: Option<&str>) -> String {
    let mut text = String::from("# Generated by the mock masqd\n");
    for (name, chains) in tables.iter().filter(|(n, _)| only.is_none_or(|o| o == n.as_str())) {
        text.push_str(&format!("*{name}\n"));
        for c in chains {
            text.push_str(&format!(":{} {} [0:0]\n", c.name, c.policy.as_deref().unwrap_or("-")));
        }
        for c in chains {
            for r in &c.rules {
                text.push_str(&format!("-A {} {}\n", c.name, r.spec.join(" ")));
            }
        }
        text.push_str("COMMIT\n");
    }
    text
}

/// iptables-restore, all or nothing.
fn restore(current: &Tables, text: &str, noflush: bool) -> Result<(Tables, RestoreSummary), ControlError> {
    let mut tables = current.clone();
    let mut summary = RestoreSummary::default();
    let mut open: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let fail = |what: &str| ControlError::conflict(format!("line {}: {what}", n + 1));
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('*') {
            let chains = tables.get_mut(name).ok_or_else(|| fail("unknown table"))?;
            if !noflush {
                chains.iter_mut().for_each(|c| c.rules.clear());
            }
            summary.tables.push(name.to_string());
            open = Some(name.to_string());
        } else if line == "COMMIT" {
            open.take().ok_or_else(|| fail("COMMIT outside a table"))?;
        } else if let Some(rest) = line.strip_prefix(':') {
            let name = open.as_ref().ok_or_else(|| fail("chain outside a table"))?;
            let mut words = rest.split_whitespace();
            let (chain_name, policy) = (words.next().unwrap_or(""), words.next().unwrap_or("-"));
            let c = chain(tables.get_mut(name).unwrap(), chain_name).map_err(|_| fail("unknown chain"))?;
            if policy != "-" {
                c.policy = Some(policy.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("-A ") {
            let name = open.as_ref().ok_or_else(|| fail("rule outside a table"))?;
            let mut words = rest.split_whitespace().map(String::from);
            let chain_name = words.next().unwrap_or_default();
            let spec: Vec<String> = words.collect();
            check_spec(&spec).map_err(|e| fail(&e.message))?;
            let c = chain(tables.get_mut(name).unwrap(), &chain_name).map_err(|_| fail("unknown chain"))?;
            c.rules.push(Rule { spec, packets: 0, bytes: 0 });
            summary.rules += 1;
        } else {
            return Err(fail("not understood"));
        }
    }
    if open.is_some() {
        return Err(ControlError::conflict("missing COMMIT"));
    }
    Ok((tables, summary))
}

pub fn canned_stats(sessions: usize) -> Stats {
    Stats {
        ports: vec![
            PortStats {
                port: 0,
                name: "inside".into(),
                rx_packets: 1000,
                rx_bytes: 64000,
                tx_packets: 990,
                tx_bytes: 63000,
                pmd: [("imissed".to_string(), 0), ("ierrors".to_string(), 1)].into(),
                ..Default::default()
            },
            PortStats { port: 1, name: "wan".into(), rx_packets: 980, tx_packets: 1000, ..Default::default() },
        ],
        workers: vec![
            WorkerStats {
                worker: 0,
                lcore: 2,
                rx_packets: 990,
                tx_packets: 995,
                sessions_active: 13,
                runtime: vec![
                    StageRuntime {
                        stage: "port-rx".into(),
                        calls: 40,
                        packets: 990,
                        cycles: 49500,
                        ..Default::default()
                    },
                    StageRuntime {
                        stage: "nat-lookup".into(),
                        calls: 40,
                        packets: 980,
                        cycles: 98000,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            WorkerStats {
                worker: 1,
                lcore: 3,
                rx_packets: 990,
                tx_packets: 995,
                sessions_active: 12,
                ..Default::default()
            },
        ],
        drops: [("no_route".to_string(), 7), ("ipv4_bad_checksum".to_string(), 0)].into(),
        sessions_active: sessions as u64,
        sessions_created: 40,
        sessions_expired: 15,
        port_utilisation: vec![PortUtilisation {
            address: "203.0.113.1".parse().unwrap(),
            capacity: 64512,
            tcp: 10,
            udp: 10,
            icmp: 5,
        }],
        latency_us: Percentiles { samples: 1980, p50: 1.5, p90: 2.5, p99: 7.0, p99_9: 15.0, max: 40.0 },
        tsc_hz: 2_600_000_000,
        counters: [("forwarded".to_string(), 1970), ("nat_hairpinned".to_string(), 3), ("handoff_out".to_string(), 0)]
            .into(),
        ..Default::default()
    }
}

impl Handler for Mock {
    fn handle(&self, cmd: Command) -> Result<Value, ControlError> {
        let mut state = self.state.lock().unwrap();
        let state = &mut *state;
        match cmd {
            Command::RulesList { table: name, chain: only } => {
                let chains = table(&mut state.tables, &name)?;
                if let Some(only) = &only {
                    chain(chains, only)?;
                }
                let listing = RuleListing {
                    table: name,
                    chains: chains
                        .iter()
                        .filter(|c| only.as_ref().is_none_or(|o| *o == c.name))
                        .map(|c| ChainListing {
                            chain: c.name.clone(),
                            policy: c.policy.clone(),
                            packets: 0,
                            bytes: 0,
                            references: 0,
                            rules: c.rules.iter().enumerate().map(|(i, r)| entry(i + 1, r)).collect(),
                        })
                        .collect(),
                };
                to_result(&listing)
            }
            Command::RulesAppend { table: t, chain: c, spec } => {
                check_spec(&spec)?;
                let chain = chain(table(&mut state.tables, &t)?, &c)?;
                chain.rules.push(Rule { spec, packets: 0, bytes: 0 });
                to_result(&RuleAdded { number: chain.rules.len() as u32 })
            }
            Command::RulesInsert { table: t, chain: c, position, spec } => {
                check_spec(&spec)?;
                let chain = chain(table(&mut state.tables, &t)?, &c)?;
                let at = position as usize - 1;
                if at > chain.rules.len() {
                    return Err(ControlError::bad_args(
                        "position",
                        format!("`position`: {c} has {} rules", chain.rules.len()),
                    ));
                }
                chain.rules.insert(at, Rule { spec, packets: 0, bytes: 0 });
                to_result(&RuleAdded { number: position })
            }
            Command::RulesDelete { table: t, chain: c, rule } => {
                let chain = chain(table(&mut state.tables, &t)?, &c)?;
                let at = match rule {
                    RuleSelector::Number(n) => (n as usize <= chain.rules.len()).then(|| n as usize - 1),
                    RuleSelector::Spec(spec) => chain.rules.iter().position(|r| r.spec == spec),
                };
                let at = at.ok_or_else(|| ControlError::not_found(format!("no such rule in chain {c}")))?;
                chain.rules.remove(at);
                Ok(json!({}))
            }
            Command::RulesFlush { table: t, chain: c } => {
                let chains = table(&mut state.tables, &t)?;
                let mut flushed = 0;
                match c {
                    Some(c) => flushed += std::mem::take(&mut chain(chains, &c)?.rules).len(),
                    None => chains.iter_mut().for_each(|c| flushed += std::mem::take(&mut c.rules).len()),
                }
                to_result(&Flushed { flushed: flushed as u64, next_cursor: None })
            }
            Command::RulesPolicy { table: t, chain: c, policy } => {
                if !["ACCEPT", "DROP"].contains(&policy.as_str()) {
                    return Err(ControlError::bad_args("policy", "`policy`: ACCEPT or DROP"));
                }
                chain(table(&mut state.tables, &t)?, &c)?.policy = Some(policy);
                Ok(json!({}))
            }
            Command::RulesSave { table: t } => {
                if let Some(t) = &t {
                    table(&mut state.tables, t)?;
                }
                to_result(&SavedRules { text: save(&state.tables, t.as_deref()) })
            }
            Command::RulesRestore { text, noflush } => {
                let (tables, summary) = restore(&state.tables, &text, noflush)?;
                state.tables = tables;
                to_result(&summary)
            }
            Command::SessionsList { filter, cursor, limit } => {
                let start: usize = match cursor {
                    None => 0,
                    Some(c) => c.parse().map_err(|_| ControlError::bad_args("cursor", "`cursor`: not one of mine"))?,
                };
                let matching: Vec<&SessionEntry> = state.sessions.iter().filter(|s| filter.matches(s)).collect();
                let end = (start + limit as usize).min(matching.len());
                let page = SessionPage {
                    sessions: matching.get(start..end).unwrap_or_default().iter().map(|s| (*s).clone()).collect(),
                    next_cursor: (end < matching.len()).then(|| end.to_string()),
                };
                to_result(&page)
            }
            // A mock's tables are small: a count or flush always finishes in one step.
            Command::SessionsCount { filter, .. } => to_result(&SessionCount {
                count: state.sessions.iter().filter(|s| filter.matches(s)).count() as u64,
                next_cursor: None,
            }),
            Command::SessionsFlush { filter, .. } => {
                let before = state.sessions.len();
                state.sessions.retain(|s| !filter.matches(s));
                to_result(&Flushed { flushed: (before - state.sessions.len()) as u64, next_cursor: None })
            }
            Command::StatsGet => to_result(&canned_stats(state.sessions.len())),
            Command::ExpectationsList => to_result(&control::protocol::ExpectationList::default()),
            Command::TimeoutsGet => to_result(&state.timeouts),
            Command::TimeoutsSet(update) => {
                state.timeouts = update.apply(state.timeouts);
                to_result(&state.timeouts)
            }
            Command::ConfigGet => Ok(json!({"control": {"socket": "/run/masq/masqd.sock", "group": null}})),
            Command::NatLookup { query, protocol } => {
                let hit = |s: &SessionEntry| {
                    protocol.is_none_or(|p| p == s.proto)
                        && match query {
                            LookupQuery::Outside { addr, port } => {
                                *s.outside.ip() == addr && port.is_none_or(|p| p == s.outside.port())
                            }
                            LookupQuery::Inside(addr) => *s.inside.ip() == addr,
                        }
                };
                let matches = state
                    .sessions
                    .iter()
                    .filter(|s| hit(s))
                    .map(|s| LookupMatch {
                        source: "session".into(),
                        inside_addr: *s.inside.ip(),
                        inside_port: Some(s.inside.port()),
                        outside_addr: *s.outside.ip(),
                        first_port: s.outside.port(),
                        last_port: s.outside.port(),
                        protocol: Some(s.proto),
                        remote: Some(s.remote),
                        state: Some(s.state.clone()),
                        idle_secs: Some(0),
                        expires_in_secs: Some(s.expires_in_secs),
                        worker: Some(s.worker),
                        since: None,
                        held_secs: None,
                        mappings: None,
                    })
                    .collect();
                to_result(&LookupResult { matches, truncated: false })
            }
            Command::Version => to_result(&VersionInfo::masqd()),
        }
    }
}
