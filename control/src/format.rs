//! How masqctl prints results: the rules table (`iptables -L -n -v`), rule specifications
//! (`iptables -S`), the translation table (`ipchains -M -L`), statistics, timeouts and
//! versions. Pure functions from result types to text; no I/O, no protocol logic.

use std::fmt::Write;

use serde_json::Value;

use crate::protocol::{
    ExpectationEntry, Flushed, LookupResult, RuleListing, SavedRules, SessionCount, SessionEntry, Stats, Timeouts,
    VersionInfo,
};

/// How to show a `rules.list` table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RulesView {
    /// `-v`: counters and interfaces.
    pub verbose: bool,
    /// `--line-numbers`.
    pub line_numbers: bool,
    /// `-x`: exact counters instead of K/M/G.
    pub exact: bool,
}

/// How to show a command's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Nothing: iptables is silent on success.
    Silent,
    /// [`RuleListing`] as `iptables -L -n`.
    Rules(RulesView),
    /// [`RuleListing`] as `iptables -S`.
    RuleSpecs,
    /// [`SavedRules`] text, verbatim.
    Saved,
    /// [`Stats`].
    Stats,
    /// [`Stats`]' per-stage runtime tables.
    Runtime,
    /// [`Timeouts`].
    Timeouts,
    /// [`SessionCount`].
    Count,
    /// [`Flushed`].
    Flushed,
    /// [`LookupResult`] as a table.
    Lookup,
    /// [`VersionInfo`] beside masqctl's own version.
    Version,
    /// Any value as pretty JSON.
    Json,
}

/// Render `result` for `view`; `Err` when the result is not the shape the view expects.
pub fn render(view: View, result: Value) -> Result<String, serde_json::Error> {
    Ok(match view {
        View::Silent => String::new(),
        View::Rules(rules) => rules_table(&serde_json::from_value(result)?, rules),
        View::RuleSpecs => rule_specs(&serde_json::from_value(result)?),
        View::Saved => serde_json::from_value::<SavedRules>(result)?.text,
        View::Stats => stats(&serde_json::from_value(result)?),
        View::Runtime => runtime(&serde_json::from_value(result)?),
        View::Timeouts => timeouts(&serde_json::from_value(result)?),
        View::Count => format!("{}\n", serde_json::from_value::<SessionCount>(result)?.count),
        View::Flushed => format!("flushed {}\n", serde_json::from_value::<Flushed>(result)?.flushed),
        View::Lookup => lookup(&serde_json::from_value(result)?),
        View::Version => version(env!("CARGO_PKG_VERSION"), &serde_json::from_value(result)?),
        View::Json => json(&result),
    })
}

/// `nat.lookup`: one line per match, deterministic ranges first, then port blocks
/// (with a `since` column: when the subscriber got the block), then sessions.
pub fn lookup(r: &LookupResult) -> String {
    if r.matches.is_empty() {
        return "no match\n".to_string();
    }
    let with_since = r.matches.iter().any(|m| m.since.is_some());
    let mut out = format!(
        "{:<14}{:<22}{:<28}{:<6}{:<22}{:<12}{:>6}{:>9}",
        "source", "inside", "outside", "proto", "remote", "state", "idle", "expires"
    );
    if with_since {
        out.push_str("  since");
    }
    out.push('\n');
    for m in &r.matches {
        let inside = match m.inside_port {
            Some(p) => format!("{}:{p}", m.inside_addr),
            None => m.inside_addr.to_string(),
        };
        let outside = if m.first_port == m.last_port {
            format!("{}:{}", m.outside_addr, m.first_port)
        } else {
            format!("{}:{}-{}", m.outside_addr, m.first_port, m.last_port)
        };
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        let line = format!(
            "{:<14}{:<22}{:<28}{:<6}{:<22}{:<12}{:>6}{:>9}",
            m.source,
            inside,
            outside,
            opt(m.protocol.map(|p| p.to_string())),
            opt(m.remote.map(|r| r.to_string())),
            opt(m.state.clone()),
            opt(m.idle_secs.map(|s| format!("{s}s"))),
            opt(m.expires_in_secs.map(|s| format!("{s}s"))),
        );
        let line = match (with_since, &m.since) {
            (true, since) => format!("{line}  {}", since.as_deref().unwrap_or("-")),
            (false, _) => line,
        };
        out.push_str(line.trim_end());
        out.push('\n');
    }
    if r.truncated {
        out.push_str("(more live sessions matched; narrow with --proto or a port)\n");
    }
    out
}

/// Pretty JSON with a final newline (`--json`).
pub fn json(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a Value always serializes");
    text.push('\n');
    text
}

/// A counter as iptables prints it without `-x`: up to 99999 as is, then K, M, G, T.
fn human(n: u64) -> String {
    if n <= 99_999 {
        return n.to_string();
    }
    // Divide by 1000 rounding half up, as iptables' `(n + 500) / 1000`, without overflow.
    let thousandth = |n: u64| n / 1000 + u64::from(n % 1000 >= 500);
    let mut n = n;
    for suffix in ["K", "M", "G"] {
        n = thousandth(n);
        if n <= 9999 {
            return format!("{n}{suffix}");
        }
    }
    format!("{}T", thousandth(n))
}

fn counter(n: u64, exact: bool) -> String {
    if exact {
        n.to_string()
    } else {
        human(n)
    }
}

/// `rules.list` as `iptables -L -n [-v] [-x] [--line-numbers]` prints it (trailing blanks
/// trimmed).
pub fn rules_table(listing: &RuleListing, view: RulesView) -> String {
    let mut out = String::new();
    for (i, chain) in listing.chains.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match &chain.policy {
            Some(policy) if view.verbose => {
                let (packets, bytes) = (counter(chain.packets, view.exact), counter(chain.bytes, view.exact));
                let _ = writeln!(out, "Chain {} (policy {policy} {packets} packets, {bytes} bytes)", chain.chain);
            }
            Some(policy) => {
                let _ = writeln!(out, "Chain {} (policy {policy})", chain.chain);
            }
            None => {
                let _ = writeln!(out, "Chain {} ({} references)", chain.chain, chain.references);
            }
        }

        let mut header = String::new();
        if view.line_numbers {
            header.push_str("num  ");
        }
        if view.verbose {
            header.push_str(&if view.exact {
                format!("{:>8} {:>10} ", "pkts", "bytes")
            } else {
                format!("{:>5} {:>5} ", "pkts", "bytes")
            });
        }
        let _ = write!(header, "{:<9}  prot opt", "target");
        if view.verbose {
            let _ = write!(header, " {:<6} {:<6} ", "in", "out");
        }
        let _ = write!(header, " {:<19}  {:<19}", "source", "destination");
        push_line(&mut out, &header);

        for rule in &chain.rules {
            let mut line = String::new();
            if view.line_numbers {
                let _ = write!(line, "{:<4} ", rule.number);
            }
            if view.verbose {
                let (packets, bytes) = (counter(rule.packets, view.exact), counter(rule.bytes, view.exact));
                let _ = if view.exact {
                    write!(line, "{packets:>8} {bytes:>10} ")
                } else {
                    write!(line, "{packets:>5} {bytes:>5} ")
                };
            }
            let (negated, protocol) = match rule.protocol.strip_prefix('!') {
                Some(p) => ('!', p),
                None => (' ', if rule.protocol.is_empty() { "all" } else { rule.protocol.as_str() }),
            };
            let _ = write!(line, "{:<9} {negated}{protocol:<5}-- ", rule.target);
            if view.verbose {
                let _ = write!(line, " {:<6} {:<6} ", or_any(&rule.in_iface), or_any(&rule.out_iface));
            }
            // iptables prints each match and target option with a leading space.
            let _ = write!(
                line,
                " {:<19}  {:<19}  {}",
                or_default(&rule.source, "0.0.0.0/0"),
                or_default(&rule.destination, "0.0.0.0/0"),
                rule.options
            );
            push_line(&mut out, &line);
        }
    }
    out
}

fn or_any(iface: &str) -> &str {
    or_default(iface, "*")
}

fn or_default<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.is_empty() {
        default
    } else {
        value
    }
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line.trim_end());
    out.push('\n');
}

/// `rules.list` as `iptables -S` prints it: policies and user chains, then the rules.
pub fn rule_specs(listing: &RuleListing) -> String {
    let mut out = String::new();
    for chain in &listing.chains {
        let _ = match &chain.policy {
            Some(policy) => writeln!(out, "-P {} {policy}", chain.chain),
            None => writeln!(out, "-N {}", chain.chain),
        };
    }
    for chain in &listing.chains {
        for rule in &chain.rules {
            let mut line = format!("-A {}", chain.chain);
            for token in &rule.spec {
                line.push(' ');
                line.push_str(&quote(token));
            }
            push_line(&mut out, &line);
        }
    }
    out
}

/// A token as a shell (and iptables-restore) reads it back.
fn quote(token: &str) -> String {
    let plain = !token.is_empty() && token.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/,!=+@%^[]{}".contains(c));
    if plain {
        token.to_string()
    } else {
        format!("\"{}\"", token.replace('\\', "\\\\").replace('"', "\\\""))
    }
}

/// Seconds as `M:SS`, or `H:MM:SS` from an hour up.
fn expires(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}:{m:02}:{s:02}")
    } else {
        format!("{m:02}:{s:02}")
    }
}

/// The translation table, as `ipchains -M -L -n` showed it, one session a line.
pub fn translations(sessions: &[SessionEntry], verbose: bool) -> String {
    let mut out = String::from("IP masquerading entries\n");
    let mut header =
        format!("{:<5}{:<22}{:<22}{:<22}{:<12}{:>8}", "prot", "inside", "outside", "remote", "state", "expires");
    if verbose {
        header.push_str("  worker");
    }
    push_line(&mut out, &header);
    // A data session follows its control session (a helper's: same worker, `parent`).
    let is_child_of = |c: &SessionEntry, p: &SessionEntry| {
        c.parent.is_some() && c.parent == p.id && c.worker == p.worker && p.parent.is_none()
    };
    let listed_with_parent = |c: &SessionEntry| c.parent.is_some() && sessions.iter().any(|p| is_child_of(c, p));
    let mut order: Vec<&SessionEntry> = Vec::with_capacity(sessions.len());
    for s in sessions.iter().filter(|s| !listed_with_parent(s)) {
        order.push(s);
        if s.id.is_some() && s.parent.is_none() {
            order.extend(sessions.iter().filter(|c| is_child_of(c, s)));
        }
    }
    for s in order {
        let mut line = format!(
            "{:<5}{:<22}{:<22}{:<22}{:<12}{:>8}",
            s.proto.as_str(),
            s.inside.to_string(),
            s.outside.to_string(),
            s.remote.to_string(),
            s.state,
            expires(s.expires_in_secs)
        );
        if verbose {
            let _ = write!(line, "  {:>6}", s.worker);
        }
        match (&s.helper, s.parent, s.id) {
            (Some(h), Some(p), _) => {
                let _ = write!(line, "  {h} data of #{p}");
            }
            (Some(h), None, Some(id)) => {
                let _ = write!(line, "  {h} #{id}");
            }
            _ => {}
        }
        push_line(&mut out, &line);
    }
    out
}

/// The protocol helpers' open expectations, after the translation table (nothing when
/// there are none).
pub fn expectations(list: &[ExpectationEntry]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut out = String::from("Expected connections (protocol helpers)\n");
    push_line(
        &mut out,
        &format!("{:<6}{:<5}{:<5}{:<22}{:<22}{:<22}{:>8}", "helper", "prot", "dir", "from", "to", "reaches", "expires"),
    );
    for e in list {
        let from = match e.src_port {
            Some(p) => format!("{}:{p}", e.src),
            None => format!("{}:*", e.src),
        };
        push_line(
            &mut out,
            &format!(
                "{:<6}{:<5}{:<5}{:<22}{:<22}{:<22}{:>8}  data of #{}",
                e.helper,
                e.proto.as_str(),
                e.direction,
                from,
                e.dst.to_string(),
                e.inside.to_string(),
                expires(e.expires_in_secs),
                e.parent
            ),
        );
    }
    out
}

/// A port's link for the ports table: `up`, `up 10G`, `down`, `?` (unknown).
fn link(p: &crate::protocol::PortStats) -> String {
    match (p.link_up, p.link_speed_mbps) {
        (Some(true), Some(m)) if m >= 1000 && m % 1000 == 0 => format!("up {}G", m / 1000),
        (Some(true), Some(m)) if m > 0 => format!("up {m}M"),
        (Some(true), _) => "up".to_string(),
        (Some(false), _) => "down".to_string(),
        (None, _) => "?".to_string(),
    }
}

/// Statistics, section by section.
pub fn stats(s: &Stats) -> String {
    let mut out = String::new();
    out.push_str("Ports:\n");
    push_line(
        &mut out,
        &format!(
            "  {:>4} {:<10} {:<13} {:>14} {:>16} {:>10} {:>14} {:>16} {:>10}",
            "port", "name", "link", "rx packets", "rx bytes", "rx drops", "tx packets", "tx bytes", "tx drops"
        ),
    );
    for p in &s.ports {
        push_line(
            &mut out,
            &format!(
                "  {:>4} {:<10} {:<13} {:>14} {:>16} {:>10} {:>14} {:>16} {:>10}",
                p.port,
                p.name,
                link(p),
                p.rx_packets,
                p.rx_bytes,
                p.rx_drops,
                p.tx_packets,
                p.tx_bytes,
                p.tx_drops
            ),
        );
    }
    for p in s.ports.iter().filter(|p| p.link_changes > 0) {
        let _ = writeln!(out, "  port {} link changes: {}", p.port, p.link_changes);
    }
    for p in s.ports.iter().filter(|p| !p.pmd.is_empty()) {
        let counters: Vec<String> = p.pmd.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "  port {} PMD: {}", p.port, counters.join(" "));
    }

    out.push_str("\nWorkers:\n");
    push_line(
        &mut out,
        &format!(
            "  {:>6} {:>5} {:>14} {:>14} {:>10} {:>10}",
            "worker", "lcore", "rx packets", "tx packets", "drops", "sessions"
        ),
    );
    for w in &s.workers {
        push_line(
            &mut out,
            &format!(
                "  {:>6} {:>5} {:>14} {:>14} {:>10} {:>10}",
                w.worker, w.lcore, w.rx_packets, w.tx_packets, w.drops, w.sessions_active
            ),
        );
    }

    if !s.host_interfaces.is_empty() {
        out.push_str("\nHost interfaces (rx: to the kernel, tx: from it):\n");
        push_line(
            &mut out,
            &format!(
                "  {:<15} {:<10} {:>12} {:>14} {:>9} {:>12} {:>14} {:>9} {:>11}",
                "interface",
                "port",
                "rx packets",
                "rx bytes",
                "rx drops",
                "tx packets",
                "tx bytes",
                "tx drops",
                "unsupported"
            ),
        );
        for h in &s.host_interfaces {
            push_line(
                &mut out,
                &format!(
                    "  {:<15} {:<10} {:>12} {:>14} {:>9} {:>12} {:>14} {:>9} {:>11}",
                    h.name,
                    h.port,
                    h.rx_packets,
                    h.rx_bytes,
                    h.rx_dropped,
                    h.tx_packets,
                    h.tx_bytes,
                    h.tx_dropped,
                    h.tx_unsupported
                ),
            );
        }
    }

    let _ = writeln!(
        out,
        "\nSessions: {} active, {} created, {} expired",
        s.sessions_active, s.sessions_created, s.sessions_expired
    );
    if let Some(m) = &s.mempool {
        let _ = writeln!(out, "Packet buffers: {} of {} in use", m.in_use, m.size);
    }

    // What the shutdown report has beyond the tables above: hairpins, handoffs, ICMP errors
    // and fragments translated, mappings, refused creations... (the Workers table has the
    // packet counts; `polls` only measures idle spinning).
    const SHOWN: &[&str] = &["rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "polls"];
    let counters: Vec<(&String, &u64)> =
        s.counters.iter().filter(|(k, &v)| v > 0 && !SHOWN.contains(&k.as_str())).collect();
    if !s.counters.is_empty() {
        out.push_str("\nCounters (all workers):\n");
        if counters.is_empty() {
            out.push_str("  none\n");
        }
        let width = counters.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (name, n) in counters {
            let _ = writeln!(out, "  {name:<width$} {n:>14}");
        }
    }

    out.push_str("\nDrops by reason:\n");
    if s.drops.values().all(|&n| n == 0) {
        out.push_str("  none\n");
    }
    let width = s.drops.keys().map(String::len).max().unwrap_or(0);
    for (reason, n) in s.drops.iter().filter(|(_, &n)| n > 0) {
        let _ = writeln!(out, "  {reason:<width$} {n:>14}");
    }

    out.push_str("\nExternal port utilisation:\n");
    push_line(
        &mut out,
        &format!("  {:<15} {:>8} {:>8} {:>8} {:>9} {:>7}", "address", "tcp", "udp", "icmp", "capacity", "busiest"),
    );
    for u in &s.port_utilisation {
        let busiest = u.tcp.max(u.udp).max(u.icmp);
        let percent = if u.capacity == 0 { 0.0 } else { 100.0 * f64::from(busiest) / f64::from(u.capacity) };
        push_line(
            &mut out,
            &format!(
                "  {:<15} {:>8} {:>8} {:>8} {:>9} {:>6.1}%",
                u.address.to_string(),
                u.tcp,
                u.udp,
                u.icmp,
                u.capacity,
                percent
            ),
        );
    }

    let l = &s.latency_us;
    let _ = writeln!(
        out,
        "\nLatency (us, {} samples): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
        l.samples, l.p50, l.p90, l.p99, l.p99_9, l.max
    );
    out
}

/// Every worker's runtime table, as VPP's `show runtime`: per pipeline stage, calls,
/// packets, packets per call (the vector size), TSC cycles per packet, the longest call
/// (µs) and the calls over 1 ms, since start; per worker, its longest poll-loop pass and
/// the passes over 1 ms.
pub fn runtime(s: &Stats) -> String {
    let mut out = String::new();
    let ghz = s.tsc_hz as f64 / 1e9;
    let _ = writeln!(out, "Runtime per stage since start (TSC {ghz:.2} GHz; cycles per packet of each stage):");
    let ratio = |a: u64, b: u64| if b == 0 { "-".to_string() } else { format!("{:.1}", a as f64 / b as f64) };
    let micros =
        |c: u64| if s.tsc_hz == 0 { "-".to_string() } else { format!("{:.1}", c as f64 * 1e6 / s.tsc_hz as f64) };
    for w in &s.workers {
        let received: u64 = w.runtime.iter().filter(|r| r.stage.ends_with("-rx")).map(|r| r.packets).sum();
        let cycles: u64 = w.runtime.iter().map(|r| r.cycles).sum();
        let _ = writeln!(
            out,
            "\nworker {} (lcore {}): {received} packets in, {} cycles per packet over all stages; \
             longest pass {} us, {} passes over 1 ms",
            w.worker,
            w.lcore,
            ratio(cycles, received),
            micros(w.max_pass_cycles),
            w.slow_passes
        );
        push_line(
            &mut out,
            &format!(
                "  {:<14} {:>12} {:>14} {:>10} {:>11} {:>10} {:>8}",
                "stage", "calls", "packets", "pkts/call", "cycles/pkt", "max us", ">1 ms"
            ),
        );
        for r in &w.runtime {
            push_line(
                &mut out,
                &format!(
                    "  {:<14} {:>12} {:>14} {:>10} {:>11} {:>10} {:>8}",
                    r.stage,
                    r.calls,
                    r.packets,
                    ratio(r.packets, r.calls),
                    ratio(r.cycles, r.packets),
                    micros(r.max_cycles),
                    r.slow_calls
                ),
            );
        }
    }
    out
}

/// Timeouts in `ipchains -M -S` order, plus ICMP.
pub fn timeouts(t: &Timeouts) -> String {
    format!("tcp {}  tcpfin {}  udp {}  icmp {}  other {}  (seconds)\n", t.tcp, t.tcpfin, t.udp, t.icmp, t.other)
}

/// masqctl's version and the daemon's.
pub fn version(masqctl: &str, daemon: &VersionInfo) -> String {
    format!("masqctl {masqctl}\n{} {} (control protocol {})\n", daemon.daemon, daemon.version, daemon.protocol)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{
        ChainListing, HostInterfaceStats, LookupMatch, MempoolStats, Percentiles, PortStats, PortUtilisation, Protocol,
        RuleEntry, StageRuntime, WorkerStats,
    };

    fn nat_listing() -> RuleListing {
        RuleListing {
            table: "nat".into(),
            chains: vec![
                ChainListing {
                    chain: "PREROUTING".into(),
                    policy: Some("ACCEPT".into()),
                    packets: 12,
                    bytes: 3400,
                    references: 0,
                    rules: vec![RuleEntry {
                        number: 1,
                        packets: 123_456,
                        bytes: 98_765_432,
                        spec: "-i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80"
                            .split(' ')
                            .map(String::from)
                            .collect(),
                        target: "DNAT".into(),
                        protocol: "tcp".into(),
                        in_iface: "wan".into(),
                        out_iface: "*".into(),
                        source: "0.0.0.0/0".into(),
                        destination: "0.0.0.0/0".into(),
                        options: "tcp dpt:8080 to:100.64.0.2:80".into(),
                    }],
                },
                ChainListing {
                    chain: "POSTROUTING".into(),
                    policy: Some("ACCEPT".into()),
                    packets: 0,
                    bytes: 0,
                    references: 0,
                    rules: vec![RuleEntry {
                        number: 1,
                        spec: vec!["-o".into(), "wan".into(), "-j".into(), "MASQUERADE".into()],
                        target: "MASQUERADE".into(),
                        protocol: "all".into(),
                        in_iface: "*".into(),
                        out_iface: "wan".into(),
                        source: "0.0.0.0/0".into(),
                        destination: "0.0.0.0/0".into(),
                        ..Default::default()
                    }],
                },
                ChainListing { chain: "subscribers".into(), references: 2, ..Default::default() },
            ],
        }
    }

    #[test]
    fn rules_table_matches_iptables_verbose_layout() {
        let text = rules_table(&nat_listing(), RulesView { verbose: true, line_numbers: true, exact: false });
        let expected = "\
Chain PREROUTING (policy ACCEPT 12 packets, 3400 bytes)
num   pkts bytes target     prot opt in     out     source               destination
1     123K   99M DNAT       tcp  --  wan    *       0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:100.64.0.2:80

Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination
1        0     0 MASQUERADE  all  --  *      wan     0.0.0.0/0            0.0.0.0/0

Chain subscribers (2 references)
num   pkts bytes target     prot opt in     out     source               destination
";
        assert_eq!(text, expected);
    }

    #[test]
    fn rules_table_plain_and_exact() {
        let text = rules_table(&nat_listing(), RulesView::default());
        assert!(text.starts_with(
            "Chain PREROUTING (policy ACCEPT)\n\
             target     prot opt source               destination\n\
             DNAT       tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:100.64.0.2:80\n"
        ));
        let text = rules_table(&nat_listing(), RulesView { verbose: true, exact: true, line_numbers: false });
        assert!(text.contains("    pkts      bytes target"), "{text}");
        assert!(text.contains("  123456   98765432 DNAT"), "{text}");
    }

    #[test]
    fn counters_shorten_as_iptables_does() {
        assert_eq!(human(99_999), "99999");
        assert_eq!(human(100_000), "100K");
        assert_eq!(human(9_999_499), "9999K");
        assert_eq!(human(9_999_500), "10M");
        assert_eq!(human(12_345_678_901), "12G");
        assert_eq!(human(u64::MAX), "18446744T");
    }

    #[test]
    fn rule_specs_read_back() {
        let text = rule_specs(&nat_listing());
        assert_eq!(
            text,
            "-P PREROUTING ACCEPT\n-P POSTROUTING ACCEPT\n-N subscribers\n\
             -A PREROUTING -i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80\n\
             -A POSTROUTING -o wan -j MASQUERADE\n"
        );
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("say \"hi\""), "\"say \\\"hi\\\"\"");
    }

    #[test]
    fn translation_table_has_the_ipchains_columns() {
        let sessions = [SessionEntry {
            proto: Protocol::Tcp,
            inside: "100.64.0.2:40000".parse().unwrap(),
            outside: "203.0.113.1:61000".parse().unwrap(),
            remote: "198.51.100.7:80".parse().unwrap(),
            state: "ESTABLISHED".into(),
            expires_in_secs: 7431,
            worker: 1,
            id: None,
            helper: None,
            parent: None,
        }];
        let text = translations(&sessions, false);
        assert_eq!(
            text,
            "IP masquerading entries\n\
             prot inside                outside               remote                state        expires\n\
             tcp  100.64.0.2:40000      203.0.113.1:61000     198.51.100.7:80       ESTABLISHED  2:03:51\n"
        );
        assert!(translations(&sessions, true).lines().nth(2).unwrap().ends_with("2:03:51       1"));
        assert_eq!(expires(59), "00:59");
        assert_eq!(expires(600), "10:00");
    }

    #[test]
    fn data_sessions_follow_their_control_session() {
        let e = |inside: &str, remote: &str, id: Option<u32>, helper: Option<&str>, parent: Option<u32>| SessionEntry {
            proto: Protocol::Tcp,
            inside: inside.parse().unwrap(),
            outside: "203.0.113.1:1024".parse().unwrap(),
            remote: remote.parse().unwrap(),
            state: "ESTABLISHED".into(),
            expires_in_secs: 60,
            worker: 0,
            id,
            helper: helper.map(str::to_string),
            parent,
        };
        let sessions = [
            e("100.64.0.2:5001", "198.51.100.7:20", None, Some("ftp"), Some(12)),
            e("100.64.0.3:1", "198.51.100.9:53", None, None, None),
            e("100.64.0.2:5000", "198.51.100.7:21", Some(12), Some("ftp"), None),
        ];
        let text = translations(&sessions, false);
        let lines: Vec<&str> = text.lines().skip(2).collect();
        assert!(lines[0].starts_with("tcp  100.64.0.3:1"), "{text}");
        assert!(lines[1].starts_with("tcp  100.64.0.2:5000") && lines[1].ends_with("  ftp #12"), "{text}");
        assert!(lines[2].starts_with("tcp  100.64.0.2:5001") && lines[2].ends_with("  ftp data of #12"), "{text}");
    }

    #[test]
    fn stats_show_every_section() {
        let s = Stats {
            ports: vec![
                PortStats {
                    port: 0,
                    name: "inside".into(),
                    rx_packets: 10,
                    pmd: [("imissed".to_string(), 3)].into(),
                    link_up: Some(true),
                    link_speed_mbps: Some(10_000),
                    ..Default::default()
                },
                PortStats { port: 1, name: "wan".into(), link_up: Some(false), link_changes: 3, ..Default::default() },
            ],
            workers: vec![WorkerStats { worker: 0, lcore: 2, rx_packets: 10, ..Default::default() }],
            drops: [("no_route".to_string(), 4), ("ttl_exceeded".to_string(), 0)].into(),
            sessions_active: 1,
            sessions_created: 5,
            sessions_expired: 4,
            port_utilisation: vec![PortUtilisation {
                address: "203.0.113.1".parse().unwrap(),
                capacity: 1000,
                tcp: 250,
                udp: 10,
                icmp: 0,
            }],
            latency_us: Percentiles { samples: 100, p50: 1.0, p90: 2.0, p99: 3.0, p99_9: 4.0, max: 5.5 },
            host_interfaces: vec![HostInterfaceStats {
                name: "wan0".into(),
                port: "wan".into(),
                rx_packets: 77,
                tx_packets: 66,
                tx_unsupported: 2,
                ..Default::default()
            }],
            counters: [
                ("forwarded".to_string(), 9),
                ("nat_hairpinned".to_string(), 2),
                ("handoff_out".to_string(), 0),
                ("polls".to_string(), 77),
            ]
            .into(),
            mempool: Some(MempoolStats { size: 8192, in_use: 12 }),
            ..Default::default()
        };
        let text = stats(&s);
        assert!(
            text.contains(
                "\nCounters (all workers):\n  forwarded                   9\n  nat_hairpinned              2\n"
            ),
            "{text}"
        );
        assert!(!text.contains("handoff_out") && !text.contains("polls"), "zeros and idle spinning are left out");
        assert!(text.contains("Host interfaces"), "{text}");
        let line = text.lines().find(|l| l.trim_start().starts_with("wan0")).expect("the host interface's line");
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!((cols[1], cols[2], cols[5], cols[8]), ("wan", "77", "66", "2"), "{line}");
        let without = stats(&Stats { host_interfaces: Vec::new(), ..s.clone() });
        assert!(!without.contains("Host interfaces"), "no section without host interfaces");
        for needle in [
            "inside",
            "port 0 PMD: imissed=3",
            "up 10G",
            " down ",
            "port 1 link changes: 3",
            "Sessions: 1 active, 5 created, 4 expired",
            "Packet buffers: 12 of 8192 in use",
            "no_route",
            "203.0.113.1",
            "25.0%",
            "p99.9 4.0  max 5.5",
        ] {
            assert!(text.contains(needle), "{needle:?} missing from\n{text}");
        }
        assert!(!text.contains("ttl_exceeded"), "zero drop counters are left out");
    }

    #[test]
    fn runtime_tables_per_worker_with_vector_size_and_cycles_per_packet() {
        let stage = |stage: &str, calls, packets, cycles| StageRuntime {
            stage: stage.into(),
            calls,
            packets,
            cycles,
            ..Default::default()
        };
        let s = Stats {
            workers: vec![WorkerStats {
                worker: 1,
                lcore: 3,
                runtime: vec![
                    stage("port-rx", 10, 320, 6400),
                    stage("nat-lookup", 10, 320, 32000),
                    stage("nat-slowpath", 0, 0, 0),
                    StageRuntime { max_cycles: 3_900_000, slow_calls: 2, ..stage("nat-expire", 5, 0, 4_000_000) },
                ],
                max_pass_cycles: 5_200_000,
                slow_passes: 3,
                ..Default::default()
            }],
            tsc_hz: 2_600_000_000,
            ..Default::default()
        };
        let text = runtime(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("TSC 2.60 GHz"), "{text}");
        assert!(
            text.contains(
                "worker 1 (lcore 3): 320 packets in, 12620.0 cycles per packet over all stages; \
                 longest pass 2000.0 us, 3 passes over 1 ms"
            ),
            "{text}"
        );
        let row = |name: &str| lines.iter().find(|l| l.trim_start().starts_with(name)).copied().unwrap();
        let cols = |name: &str| row(name).split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(cols("nat-lookup"), ["nat-lookup", "10", "320", "32.0", "100.0", "0.0", "0"]);
        assert_eq!(cols("port-rx"), ["port-rx", "10", "320", "32.0", "20.0", "0.0", "0"]);
        assert_eq!(cols("nat-slowpath"), ["nat-slowpath", "0", "0", "-", "-", "0.0", "0"], "never called: no ratio");
        assert_eq!(cols("nat-expire"), ["nat-expire", "5", "0", "0.0", "-", "1500.0", "2"], "longest call, slow calls");
        assert!(render(View::Runtime, serde_json::to_value(&s).unwrap()).unwrap() == text);
    }

    #[test]
    fn lookup_shows_blocks_with_since() {
        let block: LookupMatch = serde_json::from_value(serde_json::json!({
            "source": "block", "inside_addr": "100.64.0.2", "outside_addr": "203.0.113.1",
            "first_port": 2048, "last_port": 2111, "state": "IDLE", "expires_in_secs": 80, "worker": 0,
            "since": "2026-12-06T07:44:56.067Z", "held_secs": 125, "mappings": 0
        }))
        .unwrap();
        let session: LookupMatch = serde_json::from_value(serde_json::json!({
            "source": "session", "inside_addr": "100.64.0.2", "inside_port": 5000, "outside_addr": "203.0.113.1",
            "first_port": 2050, "last_port": 2050, "protocol": "udp", "remote": "198.51.100.7:53",
            "state": "UDP", "idle_secs": 3, "expires_in_secs": 297, "worker": 0
        }))
        .unwrap();
        let text = lookup(&LookupResult { matches: vec![block, session.clone()], truncated: false });
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("expires  since"), "{text}");
        let b: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            b,
            ["block", "100.64.0.2", "203.0.113.1:2048-2111", "-", "-", "IDLE", "-", "80s", "2026-12-06T07:44:56.067Z"]
        );
        assert!(lines[2].starts_with("session") && lines[2].ends_with("297s  -"), "{text}");
        // Without blocks, no since column.
        let text = lookup(&LookupResult { matches: vec![session], truncated: false });
        assert!(text.lines().next().unwrap().ends_with("expires"), "{text}");
    }

    #[test]
    fn render_checks_the_shape() {
        assert_eq!(render(View::Count, serde_json::json!({"count": 3})).unwrap(), "3\n");
        assert!(render(View::Count, serde_json::json!({"flushed": 3})).is_err());
        assert_eq!(render(View::Silent, Value::Null).unwrap(), "");
        assert_eq!(render(View::Saved, serde_json::json!({"text": "*nat\nCOMMIT\n"})).unwrap(), "*nat\nCOMMIT\n");
    }
}
