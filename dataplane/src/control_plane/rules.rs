//! `rules.*`: the authoritative rule set, kept by the control thread, and the compiled
//! copy the workers read.
//!
//! The text model ([`RuleSet`]) lives behind a `Mutex` that only control-plane threads
//! take. Every change is made on a copy, validated, compiled into a new
//! [`CompiledRules`] and swapped in whole (`ArcSwap::store`); only then does the copy
//! become the rule set. A command that fails anywhere — parse, rule check, compile —
//! changes nothing. Workers load the compiled set once per new flow, so a change applies
//! to flows created after it; sessions created under the old rules keep their translation.
//!
//! Listings show each rule's packet and byte counters, summed over the workers' blocks
//! of the compiled set in force (see [`CompiledRules`]'s "Per-rule counters"). They
//! belong to that set, so every successful change (append, insert, delete, flush,
//! policy, restore) starts them all at zero again.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use control::protocol::{
    self, ChainListing, ControlError, Flushed, RestoreSummary, RuleAdded, RuleEntry, RuleListing, RuleSelector,
    SavedRules,
};

use crate::config::DEFAULT_MAX_RULES;
use crate::policy::parse::save::parse_save;
use crate::policy::{
    parse_chain, parse_policy, parse_rule_spec, parse_table, tokenize, Applied, Chain, Command, CompiledRules,
    ListOptions, ParseErrorKind, RuleSet, RuleSetError, Table, Target,
};

/// The rules of a running masqd: the text model and the compiled set the workers use.
pub struct RulesControl {
    set: Mutex<RuleSet>,
    /// Configured port names, in port-index order.
    ports: Vec<String>,
    compiled: Arc<ArcSwap<CompiledRules>>,
    /// Workers that count rule matches (blocks in every compiled set).
    workers: usize,
    /// The NAT's external pool, fixed at start (sorted): every outside port's address
    /// and every SNAT address of the rules masqd started with. `None`: not checked.
    pool: Option<Vec<Ipv4Addr>>,
    /// The most rules the set may hold, all chains together (`[control] max_rules`).
    max_rules: usize,
}

impl RulesControl {
    /// Take over `initial` (the `--rules` file, or empty) and the shared compiled set the
    /// workers read; `compiled` is replaced at once by `initial` compiled, so the two agree.
    /// If `compiled` already holds `initial` compiled (masqd's workers start with it), its
    /// per-rule counters carry on: what the workers counted before is kept.
    /// `workers`: how many workers count matches (indices `0..workers`).
    pub fn new(
        initial: RuleSet,
        ports: Vec<String>,
        compiled: Arc<ArcSwap<CompiledRules>>,
        workers: usize,
    ) -> Result<RulesControl, ControlError> {
        let rules = RulesControl {
            set: Mutex::new(RuleSet::new()),
            ports,
            compiled,
            workers,
            pool: None,
            max_rules: DEFAULT_MAX_RULES,
        };
        let built = rules.compile(&initial)?.keep_counters_of(&rules.compiled.load());
        rules.compiled.store(Arc::new(built));
        *rules.lock() = initial;
        Ok(rules)
    }

    /// Refuse, from now on, SNAT rules whose `--to-source` addresses are not all in
    /// `pool` (the external addresses the workers' port allocators were built for).
    pub fn with_pool(mut self, mut pool: Vec<Ipv4Addr>) -> RulesControl {
        pool.sort_unstable();
        pool.dedup();
        self.pool = Some(pool);
        self
    }

    /// Hold at most `max` rules from now on (`[control] max_rules`); refused if the rules
    /// in force are already more.
    pub fn with_max_rules(mut self, max: usize) -> Result<RulesControl, ControlError> {
        self.max_rules = max;
        self.check_count(&self.lock())?;
        Ok(self)
    }

    /// A change that would leave more than `max_rules` rules is refused (`conflict`).
    fn check_count(&self, set: &RuleSet) -> Result<(), ControlError> {
        if set.len() > self.max_rules {
            return Err(ControlError::conflict(format!(
                "too many rules: masqd holds at most {} rules in all chains ([control] max_rules), and this \
                 would make {}",
                self.max_rules,
                set.len()
            )));
        }
        Ok(())
    }

    /// Every SNAT address of `set` must be one the NAT can allocate ports on: the pool
    /// is sized when masqd starts, so a new address cannot be added live.
    fn check_pool(&self, set: &RuleSet) -> Result<(), ControlError> {
        let Some(pool) = &self.pool else { return Ok(()) };
        for (i, rule) in set.rules(Chain::Postrouting).iter().enumerate() {
            let Target::Snat { addrs, .. } = rule.target else { continue };
            let (first, last) = (u32::from(addrs.first()), u32::from(addrs.last()));
            let missing = (first..=last).map(Ipv4Addr::from).find(|a| pool.binary_search(a).is_err());
            if let Some(a) = missing {
                let known = pool.iter().map(Ipv4Addr::to_string).collect::<Vec<_>>().join(", ");
                return Err(ControlError::unsupported(format!(
                    "POSTROUTING rule {}: SNAT address {a} is not in masqd's external pool ({known}); \
                     the pool is fixed when masqd starts, so a new SNAT address cannot be added live: \
                     put the rule in the rules file and restart masqd with --rules",
                    i + 1
                )));
            }
        }
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, RuleSet> {
        // A panic while holding the lock cannot leave a half-made change: changes are
        // made on a copy and installed with one assignment.
        self.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn known(&self) -> Vec<&str> {
        self.ports.iter().map(String::as_str).collect()
    }

    fn compile(&self, set: &RuleSet) -> Result<CompiledRules, ControlError> {
        let ports: Vec<(&str, u16)> = self.ports.iter().enumerate().map(|(i, n)| (n.as_str(), i as u16)).collect();
        CompiledRules::new(set, &ports)
            .map(|c| c.with_workers(self.workers))
            .map_err(|e| ControlError::conflict(format!("rules do not compile: {e}")))
    }

    /// Apply `change` to a copy of the rule set; on success compile it, swap it in for
    /// the workers and keep it. All or nothing.
    fn change<T>(&self, change: impl FnOnce(&mut RuleSet) -> Result<T, ControlError>) -> Result<T, ControlError> {
        let mut guard = self.lock();
        let mut next = guard.clone();
        let out = change(&mut next)?;
        self.check_count(&next)?;
        self.check_pool(&next)?;
        let compiled = self.compile(&next)?;
        if let Some(pool) = &self.pool {
            crate::nat::static_ports::check_limit(&compiled, pool)
                .map_err(|e| ControlError::conflict(e.to_string()))?;
        }
        self.compiled.store(Arc::new(compiled));
        *guard = next;
        Ok(out)
    }

    /// A copy of the current rule set.
    pub fn snapshot(&self) -> RuleSet {
        self.lock().clone()
    }

    /// Read a rule command of the protocol and apply it to a copy of the rule set; on
    /// success compile and swap it in. All or nothing.
    fn run(&self, request: &protocol::Command) -> Result<Applied, ControlError> {
        let command = rule_command(request, &self.known())?;
        let field = match command {
            Command::Insert { .. } => "position",
            Command::SetPolicy { .. } => "policy",
            _ => "spec",
        };
        self.change(|set| set.apply(command).map_err(|e| set_error(e, field)))
    }

    // ----- commands -----

    /// `rules.list`.
    pub fn list(&self, table: &str, chain: Option<&str>) -> Result<RuleListing, ControlError> {
        let table = table_of(table)?;
        let chains = match chain {
            Some(name) => vec![chain_of(table, name)?],
            None => table.chains().to_vec(),
        };
        let set = self.lock();
        // Under the lock: the compiled set in force is the one made from `set`.
        let compiled = self.compiled.load();
        let chains =
            chains.into_iter().map(|chain| chain_listing(&set, table, chain, &compiled.rule_counts(chain))).collect();
        Ok(RuleListing { table: table.name().to_string(), chains })
    }

    /// `rules.append`.
    pub fn append(&self, table: &str, chain: &str, spec: &[String]) -> Result<RuleAdded, ControlError> {
        let request = protocol::Command::RulesAppend { table: table.into(), chain: chain.into(), spec: spec.to_vec() };
        Ok(RuleAdded { number: added(self.run(&request)?) })
    }

    /// `rules.insert`.
    pub fn insert(&self, table: &str, chain: &str, position: u32, spec: &[String]) -> Result<RuleAdded, ControlError> {
        let request =
            protocol::Command::RulesInsert { table: table.into(), chain: chain.into(), position, spec: spec.to_vec() };
        Ok(RuleAdded { number: added(self.run(&request)?) })
    }

    /// `rules.delete`.
    pub fn delete(&self, table: &str, chain: &str, rule: &RuleSelector) -> Result<(), ControlError> {
        let request = protocol::Command::RulesDelete { table: table.into(), chain: chain.into(), rule: rule.clone() };
        self.run(&request).map(drop)
    }

    /// `rules.flush`.
    pub fn flush(&self, table: &str, chain: Option<&str>) -> Result<Flushed, ControlError> {
        let request = protocol::Command::RulesFlush { table: table.into(), chain: chain.map(String::from) };
        match self.run(&request)? {
            Applied::Flushed { rules } => Ok(Flushed { flushed: rules as u64, next_cursor: None }),
            _ => Ok(Flushed { flushed: 0, next_cursor: None }),
        }
    }

    /// `rules.policy`.
    pub fn policy(&self, table: &str, chain: &str, policy: &str) -> Result<(), ControlError> {
        let request =
            protocol::Command::RulesPolicy { table: table.into(), chain: chain.into(), policy: policy.into() };
        self.run(&request).map(drop)
    }

    /// `rules.save`: iptables-save text of every table, or of one.
    pub fn save(&self, table: Option<&str>) -> Result<SavedRules, ControlError> {
        let table = table.map(table_of).transpose()?;
        let text = self.lock().to_save_text();
        Ok(SavedRules {
            text: match table {
                None => text,
                // A table without rules that a full save leaves out (raw).
                Some(table) if !text.lines().any(|l| l.strip_prefix('*') == Some(table.name())) => {
                    let mut t = format!("# Generated by masq\n*{table}\n");
                    for chain in table.chains() {
                        t.push_str(&format!(":{chain} ACCEPT [0:0]\n"));
                    }
                    t.push_str("COMMIT\n# Completed by masq\n");
                    t
                }
                Some(table) => one_table(&text, table),
            },
        })
    }

    /// `rules.restore`: replace the tables `text` names (or, with `noflush`, add its
    /// rules and set the policies of the chains it declares). Atomic.
    pub fn restore(&self, text: &str, noflush: bool) -> Result<RestoreSummary, ControlError> {
        let (parsed, seen) = parse_save(text, &self.known()).map_err(|e| ControlError::conflict(e.to_string()))?;
        let tables: Vec<Table> = Table::ALL.into_iter().filter(|t| seen[*t as usize]).collect();
        let declared = declared_chains(text);
        self.change(|set| {
            for &table in &tables {
                for &chain in table.chains() {
                    if noflush {
                        for rule in parsed.rules(chain) {
                            set.append(chain, rule.clone()).map_err(|e| set_error(e, "text"))?;
                        }
                        if declared.contains(&chain) {
                            set.set_policy(chain, parsed.policy(chain)).map_err(|e| set_error(e, "text"))?;
                        }
                    } else {
                        set.flush(table, Some(chain)).map_err(|e| set_error(e, "text"))?;
                        for rule in parsed.rules(chain) {
                            set.append(chain, rule.clone()).map_err(|e| set_error(e, "text"))?;
                        }
                        set.set_policy(chain, parsed.policy(chain)).map_err(|e| set_error(e, "text"))?;
                    }
                }
            }
            Ok(())
        })?;
        Ok(RestoreSummary {
            tables: tables.iter().map(|t| t.name().to_string()).collect(),
            rules: tables.iter().flat_map(|t| t.chains()).map(|&c| parsed.rules(c).len() as u64).sum(),
        })
    }
}

impl RulesControl {
    /// Replace every table with what `text` (a whole rules file, iptables-save format)
    /// holds: the rules masqd would run after a restart with `--rules` on that file
    /// (masqd's SIGHUP). All or nothing, as [`restore`](Self::restore): an error anywhere
    /// changes nothing. Counts the rules of every table.
    pub fn reload(&self, text: &str) -> Result<RestoreSummary, ControlError> {
        let (parsed, _) = parse_save(text, &self.known()).map_err(|e| ControlError::conflict(e.to_string()))?;
        self.change(|set| {
            *set = parsed.clone();
            Ok(())
        })?;
        Ok(RestoreSummary {
            tables: Table::ALL.iter().map(|t| t.name().to_string()).collect(),
            rules: Chain::ALL.iter().map(|&c| parsed.rules(c).len() as u64).sum(),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Names and errors
// ---------------------------------------------------------------------------------------

/// A rule command of the protocol (`rules.append`, `.insert`, `.delete`, `.flush`,
/// `.policy`) as a typed [`Command`], its names and tokens read by the policy parser, each
/// error as the protocol reports it: an unknown table or chain `not_found`, a spec that
/// does not parse `bad_args` naming the token at fault (`spec[3]`), a bad policy name
/// `bad_args` on `policy`, a policy the chain may not have `conflict`.
pub fn rule_command(request: &protocol::Command, known_ports: &[&str]) -> Result<Command, ControlError> {
    use protocol::Command as P;
    Ok(match request {
        P::RulesAppend { table, chain, spec } => {
            let chain = chain_of(table_of(table)?, chain)?;
            Command::Append { chain, rule: spec_of(chain, spec, known_ports)? }
        }
        P::RulesInsert { table, chain, position, spec } => {
            let chain = chain_of(table_of(table)?, chain)?;
            Command::Insert { chain, pos: *position as usize, rule: spec_of(chain, spec, known_ports)? }
        }
        P::RulesDelete { table, chain, rule } => {
            let chain = chain_of(table_of(table)?, chain)?;
            match rule {
                RuleSelector::Number(n) => Command::DeleteAt { chain, pos: *n as usize },
                RuleSelector::Spec(spec) => Command::DeleteMatching { chain, rule: spec_of(chain, spec, known_ports)? },
            }
        }
        P::RulesFlush { table, chain } => {
            let table = table_of(table)?;
            Command::Flush { table, chain: chain.as_deref().map(|c| chain_of(table, c)).transpose()? }
        }
        P::RulesPolicy { table, chain, policy } => {
            let chain = chain_of(table_of(table)?, chain)?;
            let policy = parse_policy(chain, policy).map_err(|e| match e {
                ParseErrorKind::PolicyNotAllowed { .. } => ControlError::conflict(e.to_string()),
                _ => ControlError::bad_args("policy", e.to_string()),
            })?;
            Command::SetPolicy { chain, policy }
        }
        other => return Err(ControlError::internal(format!("{} does not change rules", other.name()))),
    })
}

/// A masqctl command line (`-t nat -A POSTROUTING -o wan -j MASQUERADE`), read by
/// masqctl's parser and then as masqd reads the request: the path every rule change from
/// the command line takes, for tests that start from a command line.
#[cfg(test)]
pub(crate) fn masqctl_command(line: &str, known_ports: &[&str]) -> Result<Command, String> {
    let args = tokenize(line).map_err(|e| e.to_string())?;
    match control::cli::parse(args).map_err(|e| e.to_string())?.action {
        control::cli::Action::Call { command, .. } => rule_command(&command, known_ports).map_err(|e| e.message),
        other => Err(format!("not a rule command: {other:?}")),
    }
}

fn table_of(name: &str) -> Result<Table, ControlError> {
    parse_table(name).map_err(|e| ControlError::not_found(e.to_string()))
}

fn chain_of(table: Table, name: &str) -> Result<Chain, ControlError> {
    parse_chain(table, name).map_err(|e| ControlError::not_found(e.to_string()))
}

/// A spec that does not parse: `bad_args` naming the offending token (`spec[3]`) when
/// the error names one found in the spec, else `spec`.
fn spec_of(chain: Chain, spec: &[String], known_ports: &[&str]) -> Result<crate::policy::Rule, ControlError> {
    parse_rule_spec(chain, spec, known_ports).map_err(|e| {
        let field = e
            .token()
            .and_then(|t| spec.iter().position(|s| s == t))
            .map_or_else(|| "spec".to_string(), |i| format!("spec[{i}]"));
        ControlError::bad_args(field, e.to_string())
    })
}

/// The position an append or insert gave the new rule.
fn added(applied: Applied) -> u32 {
    match applied {
        Applied::Added { number } => number as u32,
        _ => 0,
    }
}

/// A rule set error, as the protocol reports it; `field` names the argument at fault
/// for errors about the request's own arguments.
fn set_error(e: RuleSetError, field: &str) -> ControlError {
    match e {
        RuleSetError::PositionOutOfRange { .. } if field == "position" => {
            ControlError::bad_args("position", format!("`position`: {e}"))
        }
        RuleSetError::PositionOutOfRange { .. } | RuleSetError::NoMatchingRule { .. } => {
            ControlError::not_found(e.to_string())
        }
        RuleSetError::ChainNotInTable { .. } => ControlError::not_found(e.to_string()),
        RuleSetError::PolicyNotAllowed { .. } => ControlError::conflict(e.to_string()),
        RuleSetError::InvalidRule { .. } => ControlError::bad_args(field, e.to_string()),
    }
}

/// Chains declared (`:CHAIN POLICY`) in iptables-save text, each in its `*table`
/// (two tables have a PREROUTING).
fn declared_chains(text: &str) -> Vec<Chain> {
    let mut table = None;
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            table = Table::from_name(name.trim());
        } else if let Some(rest) = line.strip_prefix(':') {
            let name = rest.split_whitespace().next().unwrap_or_default();
            if let Some(chain) = table.and_then(|t| t.chain(name)) {
                out.push(chain);
            }
        }
    }
    out
}

/// The save text of one table: the header line, then `*table` .. `COMMIT` and its
/// trailer, as [`RuleSet::to_save_text`] writes them.
fn one_table(text: &str, table: Table) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(name) = trimmed.strip_prefix('*') {
            inside = name == table.name();
        } else if !inside && trimmed.starts_with("# Generated") {
            out.push_str(line);
            continue;
        }
        if inside {
            out.push_str(line);
            if trimmed.starts_with("# Completed") {
                inside = false;
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Listing
// ---------------------------------------------------------------------------------------

/// One chain's listing; `counts[i]` are rule `i`'s (packets, bytes).
fn chain_listing(set: &RuleSet, table: Table, chain: Chain, counts: &[(u64, u64)]) -> ChainListing {
    let options = ListOptions { numeric: true, verbose: true, line_numbers: false };
    let listing = set.list(table, Some(chain), options).unwrap_or_default();
    // Line 1 is "Chain ...", line 2 the column heads, then one line per rule.
    let mut rows = listing.lines().skip(2);
    let rules = set
        .rules(chain)
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let mut entry = rows.next().map(columns).unwrap_or_default();
            entry.number = i as u32 + 1;
            (entry.packets, entry.bytes) = counts.get(i).copied().unwrap_or_default();
            entry.spec = tokenize(&rule.to_string()).unwrap_or_default();
            entry
        })
        .collect();
    ChainListing {
        chain: chain.name().to_string(),
        policy: Some(set.policy(chain).name().to_string()),
        packets: 0,
        bytes: 0,
        references: 0,
        rules,
    }
}

/// The display columns of one `iptables -L -n -v` row as the policy formatter prints it:
/// `pkts bytes target prot opt in out source destination options...`.
fn columns(row: &str) -> RuleEntry {
    let mut rest = row;
    let mut fields = Vec::with_capacity(9);
    while fields.len() < 9 {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        fields.push(&rest[..end]);
        rest = &rest[end..];
    }
    let field = |i: usize| fields.get(i).map_or(String::new(), |s| s.to_string());
    RuleEntry {
        packets: fields.first().and_then(|s| s.parse().ok()).unwrap_or(0),
        bytes: fields.get(1).and_then(|s| s.parse().ok()).unwrap_or(0),
        target: field(2),
        protocol: field(3),
        in_iface: field(5),
        out_iface: field(6),
        source: field(7),
        destination: field(8),
        options: rest.trim().to_string(),
        ..RuleEntry::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use control::protocol::ErrorCode;

    const PORTS: [&str; 2] = ["lan", "wan"];

    fn rules() -> (RulesControl, Arc<ArcSwap<CompiledRules>>) {
        let compiled = Arc::new(ArcSwap::from_pointee(CompiledRules::default()));
        let r = RulesControl::new(RuleSet::new(), PORTS.map(String::from).to_vec(), compiled.clone(), 2).unwrap();
        (r, compiled)
    }

    fn spec(s: &str) -> Vec<String> {
        tokenize(s).unwrap()
    }

    /// Issue 11 item 2: a port forward that would reserve too many external ports of
    /// the pool is refused live (append, restore, reload alike) and changes nothing.
    #[test]
    fn port_forwards_reserving_too_many_ports_are_refused() {
        let (r, compiled) = rules();
        let pool: Vec<Ipv4Addr> = (1..=16).map(|i| Ipv4Addr::new(203, 0, 113, i)).collect();
        let r = r.with_pool(pool);
        let wide = "-i wan -p tcp --dport 1024:65535 -j DNAT --to-destination 100.64.0.2";
        let e = r.append("nat", "PREROUTING", &spec(wide)).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.contains("PREROUTING rule 1 forwards 64512 ports on 16 external address"), "{}", e.message);
        assert_eq!(compiled.load().chain_len(Chain::Prerouting), 0, "nothing changed");
        let file = format!("*nat\n-A PREROUTING {wide}\nCOMMIT\n");
        assert_eq!(r.restore(&file, false).unwrap_err().code, ErrorCode::Conflict);
        assert_eq!(r.reload(&file).unwrap_err().code, ErrorCode::Conflict);
        // Narrowed to one address: accepted.
        r.append("nat", "PREROUTING", &spec(&format!("-d 203.0.113.1 {wide}"))).unwrap();
        assert_eq!(compiled.load().chain_len(Chain::Prerouting), 1);
    }

    /// SIGHUP's reload: the file's rules replace every table (a table the file leaves
    /// out is emptied, as after a restart); a file with an error changes nothing.
    #[test]
    fn reload_replaces_every_table_or_nothing() {
        let (r, compiled) = rules();
        r.append("filter", "FORWARD", &spec("-i lan -j ACCEPT")).unwrap();
        r.policy("filter", "FORWARD", "DROP").unwrap();
        let file = "*nat\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o wan -j MASQUERADE\n\
                    -A POSTROUTING -o lan -j MASQUERADE\nCOMMIT\n";
        let summary = r.reload(file).unwrap();
        assert_eq!(summary.rules, 2);
        assert_eq!(compiled.load().chain_len(Chain::Postrouting), 2);
        assert_eq!(compiled.load().chain_len(Chain::Forward), 0, "filter emptied: not in the file");
        assert_eq!(r.snapshot().policy(Chain::Forward), crate::policy::Policy::Accept);
        let before = r.save(None).unwrap();
        let before_compiled = compiled.load_full();
        let broken = "*nat\n-A POSTROUTING -o wan -j MASQUERADE\n-A POSTROUTING -o nowhere -j MASQUERADE\nCOMMIT\n";
        let e = r.reload(broken).unwrap_err();
        assert!(e.message.contains("line 3"), "{}", e.message);
        assert!(e.message.contains("nowhere"), "{}", e.message);
        assert_eq!(r.save(None).unwrap(), before, "unchanged");
        assert!(Arc::ptr_eq(&before_compiled, &compiled.load_full()), "workers keep the same compiled set");
    }

    #[test]
    fn append_lists_with_display_columns_and_swaps_the_compiled_set() {
        let (r, compiled) = rules();
        let before = compiled.load_full();
        assert_eq!(r.append("nat", "POSTROUTING", &spec("-o wan -j MASQUERADE")).unwrap().number, 1);
        assert!(!Arc::ptr_eq(&before, &compiled.load_full()), "a new compiled set was stored");
        assert_eq!(compiled.load().chain_len(Chain::Postrouting), 1);
        let n = r
            .insert(
                "nat",
                "PREROUTING",
                1,
                &spec("-i wan -p tcp --dport 8080 -m comment --comment \"web  server\" -j DNAT --to-destination 100.64.0.2:80"),
            )
            .unwrap();
        assert_eq!(n.number, 1);
        let listing = r.list("nat", None).unwrap();
        assert_eq!(listing.table, "nat");
        assert_eq!(listing.chains.len(), 2);
        let dnat = &listing.chains[0].rules[0];
        assert_eq!(
            (dnat.number, dnat.target.as_str(), dnat.protocol.as_str(), dnat.in_iface.as_str()),
            (1, "DNAT", "tcp", "wan")
        );
        assert_eq!((dnat.out_iface.as_str(), dnat.source.as_str()), ("*", "0.0.0.0/0"));
        assert_eq!(dnat.options, "tcp dpt:8080 /* web  server */ to:100.64.0.2:80");
        assert_eq!(dnat.spec[dnat.spec.len() - 3..], ["DNAT", "--to-destination", "100.64.0.2:80"].map(String::from));
        assert!(dnat.spec.contains(&"web  server".to_string()), "{:?}", dnat.spec);
        let masq = &listing.chains[1].rules[0];
        assert_eq!(masq.spec, spec("-o wan -j MASQUERADE"));
        assert_eq!(
            (masq.target.as_str(), masq.protocol.as_str(), masq.out_iface.as_str()),
            ("MASQUERADE", "all", "wan")
        );
        assert_eq!(masq.options, "");
        assert_eq!(listing.chains[1].policy.as_deref(), Some("ACCEPT"));
        let one = r.list("nat", Some("POSTROUTING")).unwrap();
        assert_eq!(one.chains.len(), 1);
    }

    #[test]
    fn errors_name_the_field_and_change_nothing() {
        let (r, compiled) = rules();
        r.append("nat", "POSTROUTING", &spec("-o wan -j MASQUERADE")).unwrap();
        let before = r.save(None).unwrap().text;
        let stored = compiled.load_full();

        let e = r.append("nat", "POSTROUTING", &spec("-o wan0 -j MASQUERADE")).unwrap_err();
        assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("spec[1]")));
        assert!(e.message.contains("wan0") && e.message.contains("lan, wan"), "{e}");
        let e = r.append("nat", "POSTROUTING", &spec("-o wan -j FROB")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("spec[3]"));
        let e = r.append("nat", "POSTROUTING", &spec("-i lan -j MASQUERADE")).unwrap_err();
        assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("spec")));
        assert_eq!(r.append("nat", "INPUT", &spec("-j ACCEPT")).unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(r.append("mangle", "X", &spec("-j ACCEPT")).unwrap_err().code, ErrorCode::NotFound);
        let e = r.append("filter", "POSTROUTING", &spec("-j ACCEPT")).unwrap_err();
        assert!(e.message.contains("table nat"), "{e}");
        let e = r.insert("nat", "POSTROUTING", 5, &spec("-j ACCEPT")).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("position"));
        assert_eq!(r.delete("nat", "POSTROUTING", &RuleSelector::Number(2)).unwrap_err().code, ErrorCode::NotFound);
        let e = r.delete("nat", "POSTROUTING", &RuleSelector::Spec(spec("-o lan -j MASQUERADE"))).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(r.policy("nat", "POSTROUTING", "DROP").unwrap_err().code, ErrorCode::Conflict);
        assert_eq!(r.policy("filter", "FORWARD", "REJECT").unwrap_err().field.as_deref(), Some("policy"));

        assert_eq!(r.save(None).unwrap().text, before);
        assert!(Arc::ptr_eq(&stored, &compiled.load_full()), "nothing was swapped");
    }

    #[test]
    fn delete_flush_policy() {
        let (r, _) = rules();
        r.append("nat", "POSTROUTING", &spec("-o wan -j MASQUERADE")).unwrap();
        r.append("nat", "POSTROUTING", &spec("-o wan -p udp -j MASQUERADE")).unwrap();
        r.delete("nat", "POSTROUTING", &RuleSelector::Spec(spec("-o wan -j MASQUERADE"))).unwrap();
        assert_eq!(r.list("nat", None).unwrap().chains[1].rules[0].protocol, "udp");
        r.delete("nat", "POSTROUTING", &RuleSelector::Number(1)).unwrap();
        r.append("filter", "FORWARD", &spec("-i lan -j ACCEPT")).unwrap();
        r.policy("filter", "FORWARD", "DROP").unwrap();
        assert_eq!(r.flush("filter", None).unwrap().flushed, 1);
        assert_eq!(r.list("filter", None).unwrap().chains[0].policy.as_deref(), Some("DROP"));
    }

    #[test]
    fn save_restore_round_trips_byte_for_byte_and_is_atomic() {
        let (r, _) = rules();
        let text = "*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n\
                    -A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22\n\
                    -A POSTROUTING -s 100.64.0.0/10 -o wan -j MASQUERADE\nCOMMIT\n\
                    *filter\n:FORWARD DROP [0:0]\n-A FORWARD -i lan -o wan -j ACCEPT\nCOMMIT\n";
        let summary = r.restore(text, false).unwrap();
        assert_eq!(summary, RestoreSummary { tables: vec!["nat".into(), "filter".into()], rules: 3 });
        let saved = r.save(None).unwrap().text;
        let (again, _) = rules();
        again.restore(&saved, false).unwrap();
        assert_eq!(again.save(None).unwrap().text, saved, "save -> restore -> save is byte-identical");

        let nat = r.save(Some("nat")).unwrap().text;
        assert!(nat.starts_with("# Generated by masq\n*nat\n") && nat.ends_with("COMMIT\n# Completed by masq\n"));
        assert!(!nat.contains("FORWARD"), "{nat}");
        assert_eq!(r.save(Some("mangle")).unwrap_err().code, ErrorCode::NotFound);
        // The raw table has no rules: asked for, it is there, empty.
        assert_eq!(
            r.save(Some("raw")).unwrap().text,
            "# Generated by masq\n*raw\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n# Completed by masq\n"
        );

        // An error on any line changes nothing.
        let e =
            r.restore("*nat\n-A POSTROUTING -o wan -j MASQUERADE\n-A NOSUCH -j ACCEPT\nCOMMIT\n", false).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.starts_with("line 3: "), "{e}");
        let e = r.restore("*filter\n-A FORWARD -o wan9 -j ACCEPT\nCOMMIT\n", true).unwrap_err();
        assert!(e.message.contains("wan9"), "{e}");
        assert_eq!(r.save(None).unwrap().text, saved);

        // noflush adds; a table not in the text is kept.
        let s = r.restore("*nat\n-A POSTROUTING -o wan -p udp -j MASQUERADE\nCOMMIT\n", true).unwrap();
        assert_eq!(s.rules, 1);
        assert_eq!(r.list("nat", Some("POSTROUTING")).unwrap().chains[0].rules.len(), 2);
        assert_eq!(r.list("filter", None).unwrap().chains[0].policy.as_deref(), Some("DROP"), "not declared: kept");
        r.restore("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", true).unwrap();
        assert_eq!(r.list("filter", None).unwrap().chains[0].policy.as_deref(), Some("ACCEPT"));
        assert_eq!(r.list("filter", None).unwrap().chains[0].rules.len(), 1, "noflush keeps the rules");
        // Without noflush, the tables in the text are replaced, the others kept.
        r.restore("*filter\nCOMMIT\n", false).unwrap();
        assert_eq!(r.list("filter", None).unwrap().chains[0].rules.len(), 0);
        assert_eq!(r.list("nat", Some("POSTROUTING")).unwrap().chains[0].rules.len(), 2);
    }

    #[test]
    fn initial_rules_are_compiled_at_once() {
        let compiled = Arc::new(ArcSwap::from_pointee(CompiledRules::default()));
        let set = RuleSet::parse_save("*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n", &PORTS).unwrap();
        let r = RulesControl::new(set, PORTS.map(String::from).to_vec(), compiled.clone(), 1).unwrap();
        assert_eq!(compiled.load().chain_len(Chain::Postrouting), 1);
        assert_eq!(r.snapshot().len(), 1);
        // A wildcard interface that matches no port does not compile.
        let set = RuleSet::parse_save("*nat\nCOMMIT\n", &PORTS).unwrap();
        let r = RulesControl::new(set, PORTS.map(String::from).to_vec(), compiled, 1).unwrap();
        let e = r.append("nat", "POSTROUTING", &spec("-o ppp+ -j MASQUERADE"));
        assert!(e.is_err(), "{e:?}");
    }

    #[test]
    fn listings_show_the_workers_counts_summed_and_a_change_resets_them() {
        let (r, compiled) = rules();
        r.append("nat", "POSTROUTING", &spec("-o wan -p tcp -j MASQUERADE")).unwrap();
        r.append("nat", "POSTROUTING", &spec("-o wan -j MASQUERADE")).unwrap();
        let set = compiled.load();
        set.count(0, Chain::Postrouting, Some(1), 100);
        set.count(1, Chain::Postrouting, Some(1), 60);
        set.count(1, Chain::Postrouting, None, 60);
        set.count(7, Chain::Postrouting, Some(0), 60);
        let listing = r.list("nat", Some("POSTROUTING")).unwrap();
        let rows: Vec<(u64, u64)> = listing.chains[0].rules.iter().map(|e| (e.packets, e.bytes)).collect();
        assert_eq!(rows, [(0, 0), (2, 160)], "summed over workers; the policy and unknown workers count nothing");
        r.policy("filter", "FORWARD", "DROP").unwrap();
        let listing = r.list("nat", Some("POSTROUTING")).unwrap();
        assert!(listing.chains[0].rules.iter().all(|e| (e.packets, e.bytes) == (0, 0)), "a new set starts at zero");
    }

    #[test]
    fn snat_to_an_address_outside_the_pool_is_refused_and_changes_nothing() {
        let (r, compiled) = rules();
        let r = r.with_pool(vec!["203.0.113.2".parse().unwrap(), "203.0.113.1".parse().unwrap()]);
        r.append("nat", "POSTROUTING", &spec("-o wan -p udp -j SNAT --to-source 203.0.113.1-203.0.113.2:2000-3000"))
            .unwrap();
        let before = compiled.load_full();
        let e =
            r.append("nat", "POSTROUTING", &spec("-o wan -j SNAT --to-source 203.0.113.2-203.0.113.3")).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unsupported);
        assert!(e.message.contains("203.0.113.3 is not in masqd's external pool (203.0.113.1, 203.0.113.2)"), "{e}");
        assert!(e.message.contains("restart masqd with --rules"), "{e}");
        let text = "*nat\n-A POSTROUTING -j SNAT --to-source 198.51.100.1\nCOMMIT\n";
        assert_eq!(r.restore(text, false).unwrap_err().code, ErrorCode::Unsupported);
        assert!(Arc::ptr_eq(&before, &compiled.load_full()), "nothing changed");
        assert_eq!(r.snapshot().rules(Chain::Postrouting).len(), 1);
    }

    #[test]
    fn counts_made_before_the_control_plane_took_over_are_kept() {
        let set = RuleSet::parse_save("*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n", &PORTS).unwrap();
        let ports = [("lan", 0), ("wan", 1)];
        let start = CompiledRules::new(&set, &ports).unwrap().with_workers(1);
        start.count(0, Chain::Postrouting, Some(0), 60);
        let compiled = Arc::new(ArcSwap::from_pointee(start));
        let r = RulesControl::new(set, PORTS.map(String::from).to_vec(), compiled.clone(), 1).unwrap();
        compiled.load().count(0, Chain::Postrouting, Some(0), 40);
        let listing = r.list("nat", Some("POSTROUTING")).unwrap();
        assert_eq!((listing.chains[0].rules[0].packets, listing.chains[0].rules[0].bytes), (2, 100));
    }

    #[test]
    fn the_rule_count_is_bounded_and_a_refusal_changes_nothing() {
        let (r, compiled) = rules();
        let r = r.with_max_rules(3).unwrap();
        for i in 1..=3 {
            r.append("filter", "FORWARD", &spec(&format!("-s 10.0.0.{i} -j DROP"))).unwrap();
        }
        let stored = compiled.load_full();
        let e = r.append("filter", "FORWARD", &spec("-s 10.0.0.4 -j DROP")).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        assert!(e.message.contains("at most 3 rules") && e.message.contains("would make 4"), "{e}");
        let e = r.insert("nat", "POSTROUTING", 1, &spec("-o wan -j MASQUERADE")).unwrap_err();
        assert_eq!(e.code, ErrorCode::Conflict);
        let text = "*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";
        assert_eq!(r.restore(text, true).unwrap_err().code, ErrorCode::Conflict, "noflush adds: 4");
        assert!(Arc::ptr_eq(&stored, &compiled.load_full()), "nothing was swapped");
        assert_eq!(r.snapshot().len(), 3);
        // Replacing keeps the count: fine. Deleting makes room.
        r.restore("*filter\n-A FORWARD -j ACCEPT\nCOMMIT\n", false).unwrap();
        assert_eq!(r.snapshot().len(), 1);
        r.append("nat", "POSTROUTING", &spec("-o wan -j MASQUERADE")).unwrap();
        // A limit below what is in force is refused.
        let (big, _) = rules();
        for i in 1..=3 {
            big.append("filter", "FORWARD", &spec(&format!("-s 10.0.0.{i} -j DROP"))).unwrap();
        }
        assert_eq!(big.with_max_rules(2).err().map(|e| e.code), Some(ErrorCode::Conflict));
    }
}
