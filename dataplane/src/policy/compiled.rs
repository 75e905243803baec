//! Compiled rules: what the dataplane's slow path evaluates for each new flow.
//!
//! [`CompiledRules::new`] turns a [`RuleSet`] into flat per-chain arrays with interface
//! names resolved to port indices and networks to (net, mask) pairs. The result is
//! immutable and `Send + Sync`: the control thread builds a new one after every change
//! and the dataplane swaps it in whole behind an atomic pointer (RCU style). The fast
//! path (session hit) never looks at it; only a session miss evaluates it, and
//! evaluation neither allocates nor locks.
//!
//! Semantics are iptables' for builtin chains: rules are tried in order, the first
//! matching rule with a terminating target decides; RETURN leaves the chain, so the
//! policy decides; no match means the policy. nat chains always have policy ACCEPT
//! (no translation).
//!
//! Every verdict carries `rule`: the 0-based index, in [`RuleSet::rules`], of the rule
//! that decided (`None` when the policy did), so the caller can keep per-rule counters.
//!
//! ## Per-rule counters
//!
//! A compiled set carries its own packet and byte counters ([`RuleCounters`]): one block
//! per worker ([`CompiledRules::with_workers`]), indexed by the rule's position in the
//! set, written only by that worker ([`CompiledRules::count`]: a relaxed load and store,
//! no locked instruction) and summed by the control thread ([`CompiledRules::rule_counts`]).
//! They count what iptables' would: a nat rule counts the first packet of each
//! connection it decides (rules are evaluated only when a flow has no session), a
//! FORWARD rule each packet it is evaluated on (here too: the first packet of a tracked
//! flow, or every packet of an untracked one). Because they live in the set, **a change
//! to the rules — any command that swaps in a new compiled set — starts every counter
//! at zero again**; a worker still holding the old set for one decision counts into the
//! old set, which nobody reads any more.

use std::net::Ipv4Addr;

use std::sync::Arc;

use crate::counters::Counter;

use super::rule::{AddrRange, Chain, Cidr, Iface, Negatable, Policy, PortRange, Rule, Target};
use super::ruleset::RuleSet;
use crate::nat::HelperKind;

/// What the slow path knows about a new flow when it consults the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowMatch {
    /// Index of the port the first packet arrived on.
    pub in_port: u16,
    /// Index of the port it will leave by; `None` before routing (PREROUTING). A rule
    /// with `-o` (negated or not) never matches a flow whose `out_port` is `None`.
    pub out_port: Option<u16>,
    /// IP protocol number.
    pub proto: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// TCP/UDP source port (0 for other protocols).
    pub src_port: u16,
    /// TCP/UDP destination port (0 for other protocols; ICMP puts its type in
    /// `icmp_type`).
    pub dst_port: u16,
    /// ICMP type, for ICMP flows. `--icmp-type` never matches `None`.
    pub icmp_type: Option<u8>,
}

/// Destination translation decided in nat PREROUTING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DestNat {
    /// No translation.
    None,
    /// DNAT to a pool.
    Dnat {
        /// Address pool.
        addrs: AddrRange,
        /// Port range, if the rule gave one.
        ports: Option<PortRange>,
    },
    /// REDIRECT: DNAT to the inbound port's own address (the dataplane supplies it).
    Redirect {
        /// Port range, if the rule gave one.
        ports: Option<PortRange>,
    },
}

/// Source translation decided in nat POSTROUTING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceNat {
    /// No translation.
    None,
    /// MASQUERADE: SNAT to the egress port's address.
    Masquerade {
        /// Port range, if the rule gave one.
        ports: Option<PortRange>,
        /// `--random` port allocation.
        random: bool,
    },
    /// SNAT to a pool.
    Snat {
        /// Address pool.
        addrs: AddrRange,
        /// Port range, if the rule gave one.
        ports: Option<PortRange>,
    },
}

/// The outcome of nat PREROUTING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreroutingVerdict {
    /// The translation.
    pub nat: DestNat,
    /// Index of the deciding rule in [`RuleSet::rules`]`(Chain::Prerouting)`; `None`
    /// when no rule matched.
    pub rule: Option<u32>,
}

/// The outcome of filter FORWARD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardVerdict {
    /// Whether the flow may pass.
    pub accept: bool,
    /// Index of the deciding rule (including a RETURN); `None` when the policy decided
    /// because nothing matched.
    pub rule: Option<u32>,
}

/// The outcome of raw PREROUTING: the protocol helper a new flow gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawVerdict {
    /// The helper of the first matching `CT --helper` rule, if any.
    pub helper: Option<HelperKind>,
    /// Index of that rule; `None` when no rule matched.
    pub rule: Option<u32>,
}

/// The outcome of nat POSTROUTING.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PostroutingVerdict {
    /// The translation.
    pub nat: SourceNat,
    /// Index of the deciding rule; `None` when no rule matched.
    pub rule: Option<u32>,
}

/// A rule that names an interface no configured port matches.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// `-i`/`-o` resolves to no port index.
    #[error("rule {rule} in chain {chain}: interface \"{name}\" matches no port (expected one of: {})", .known.join(", "))]
    UnknownInterface {
        /// The chain.
        chain: Chain,
        /// 1-based rule number.
        rule: usize,
        /// The interface as written.
        name: String,
        /// The configured port names.
        known: Vec<String>,
    },
    /// A rule whose target the chain cannot take (only possible if the set was built
    /// around its checks).
    #[error("rule {rule} in chain {chain}: target {target} cannot be compiled there")]
    BadTarget {
        /// The chain.
        chain: Chain,
        /// 1-based rule number.
        rule: usize,
        /// The target's name.
        target: &'static str,
    },
}

/// A set of port indices (sorted), possibly inverted.
#[derive(Clone, Debug)]
struct PortSet {
    ports: Box<[u16]>,
    negated: bool,
}

impl PortSet {
    #[inline]
    fn matches(&self, port: u16) -> bool {
        self.ports.binary_search(&port).is_ok() != self.negated
    }
}

/// `-s`/`-d` as host-order (net, mask).
#[derive(Clone, Copy, Debug)]
struct AddrMatch {
    net: u32,
    mask: u32,
    negated: bool,
}

impl AddrMatch {
    fn new(m: Negatable<Cidr>) -> AddrMatch {
        AddrMatch { net: u32::from(m.value.addr()), mask: m.value.mask(), negated: m.negated }
    }

    #[inline]
    fn matches(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) & self.mask == self.net) != self.negated
    }
}

/// A rule's matches, resolved.
#[derive(Clone, Debug)]
struct FlowFilter {
    in_port: Option<PortSet>,
    out_port: Option<PortSet>,
    src: Option<AddrMatch>,
    dst: Option<AddrMatch>,
    proto: Option<Negatable<u8>>,
    src_port: Option<Negatable<PortRange>>,
    dst_port: Option<Negatable<PortRange>>,
    icmp_type: Option<Negatable<u8>>,
}

impl FlowFilter {
    #[inline]
    fn matches(&self, f: &FlowMatch) -> bool {
        // Cheapest and most selective first.
        if let Some(p) = self.proto {
            if !p.apply(f.proto == p.value) {
                return false;
            }
        }
        if let Some(a) = self.src {
            if !a.matches(f.src) {
                return false;
            }
        }
        if let Some(a) = self.dst {
            if !a.matches(f.dst) {
                return false;
            }
        }
        if let Some(p) = self.src_port {
            if !p.apply(p.value.contains(f.src_port)) {
                return false;
            }
        }
        if let Some(p) = self.dst_port {
            if !p.apply(p.value.contains(f.dst_port)) {
                return false;
            }
        }
        if let Some(t) = self.icmp_type {
            match f.icmp_type {
                Some(ty) if t.apply(ty == t.value) => {}
                _ => return false,
            }
        }
        if let Some(s) = &self.in_port {
            if !s.matches(f.in_port) {
                return false;
            }
        }
        if let Some(s) = &self.out_port {
            match f.out_port {
                Some(port) if s.matches(port) => {}
                _ => return false,
            }
        }
        true
    }
}

#[derive(Clone, Debug)]
struct CompiledRule<A> {
    filter: FlowFilter,
    action: A,
}

/// The first rule of `rules` matching `flow`, with its index.
#[inline]
fn first_match<'a, A>(rules: &'a [CompiledRule<A>], flow: &FlowMatch) -> Option<(u32, &'a A)> {
    rules.iter().enumerate().find(|(_, r)| r.filter.matches(flow)).map(|(i, r)| (i as u32, &r.action))
}

/// A port forward: a DNAT or REDIRECT rule of nat PREROUTING that names a protocol and
/// (not negated) destination ports. The NAT keeps those external ports away from its
/// allocator while the rule is in force, so a masqueraded flow never takes them.
#[derive(Clone, Copy, Debug)]
pub struct StaticForward {
    /// The rule's number in nat PREROUTING (1-based).
    pub rule: usize,
    /// IP protocol number.
    pub proto: u8,
    /// The forwarded external ports.
    pub ports: PortRange,
    dst: Option<AddrMatch>,
}

impl StaticForward {
    /// Whether the rule's `-d` (if any) lets it forward packets to `addr`.
    pub fn covers(&self, addr: Ipv4Addr) -> bool {
        self.dst.is_none_or(|d| d.matches(addr))
    }
}

/// One worker's counters of one compiled set: `[2·i]` packets and `[2·i + 1]` bytes of
/// rule `i` (PREROUTING, then POSTROUTING, then FORWARD). Aligned, and padded to whole
/// cache lines, so two workers never write one line.
#[derive(Debug)]
#[repr(align(64))]
struct WorkerRuleCells(Box<[Counter]>);

/// Per-worker packet and byte counters of every rule of a compiled set.
#[derive(Debug, Default)]
pub struct RuleCounters {
    workers: Box<[WorkerRuleCells]>,
}

impl RuleCounters {
    fn new(workers: usize, rules: usize) -> RuleCounters {
        let cells = (2 * rules).next_multiple_of(8);
        RuleCounters {
            workers: (0..workers).map(|_| WorkerRuleCells((0..cells).map(|_| Counter::default()).collect())).collect(),
        }
    }
}

/// An immutable, evaluation-ready rule set. Build one per change and swap it in whole.
#[derive(Clone, Debug)]
pub struct CompiledRules {
    prerouting: Box<[CompiledRule<DestNat>]>,
    postrouting: Box<[CompiledRule<SourceNat>]>,
    /// FORWARD, with RETURN already resolved to the policy.
    forward: Box<[CompiledRule<bool>]>,
    forward_policy: bool,
    /// raw PREROUTING: `CT --helper` rules.
    raw: Box<[CompiledRule<HelperKind>]>,
    /// The port forwards of PREROUTING, in rule order.
    forwards: Box<[StaticForward]>,
    /// Per-rule counters (none until [`with_workers`](Self::with_workers)); shared by
    /// clones, and by [`keep_counters_of`](Self::keep_counters_of).
    counters: Arc<RuleCounters>,
}

impl Default for CompiledRules {
    /// No rules: no translation, everything forwarded.
    fn default() -> CompiledRules {
        CompiledRules {
            prerouting: Box::new([]),
            postrouting: Box::new([]),
            forward: Box::new([]),
            forward_policy: true,
            raw: Box::new([]),
            forwards: Box::new([]),
            counters: Arc::default(),
        }
    }
}

// The dataplane shares one across workers.
const _: fn() = || {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<CompiledRules>();
};

impl CompiledRules {
    /// Compile `rules`, resolving interface names with `ports` (port name, port index).
    pub fn new(rules: &RuleSet, ports: &[(&str, u16)]) -> Result<CompiledRules, CompileError> {
        let forward_policy = rules.policy(Chain::Forward) == Policy::Accept;
        let prerouting = compile_chain(rules, Chain::Prerouting, ports, |t| match *t {
            Target::Accept | Target::Return => Some(DestNat::None),
            Target::Dnat { addrs, ports } => Some(DestNat::Dnat { addrs, ports }),
            Target::Redirect { ports } => Some(DestNat::Redirect { ports }),
            _ => None,
        })?;
        let postrouting = compile_chain(rules, Chain::Postrouting, ports, |t| match *t {
            Target::Accept | Target::Return => Some(SourceNat::None),
            Target::Masquerade { ports, random } => Some(SourceNat::Masquerade { ports, random }),
            Target::Snat { addrs, ports } => Some(SourceNat::Snat { addrs, ports }),
            _ => None,
        })?;
        let forward = compile_chain(rules, Chain::Forward, ports, |t| match t {
            Target::Accept => Some(true),
            Target::Drop => Some(false),
            Target::Return => Some(forward_policy),
            _ => None,
        })?;
        let raw = compile_chain(rules, Chain::RawPrerouting, ports, |t| match *t {
            Target::Ct { helper } => Some(helper),
            _ => None,
        })?;
        let forwards = rules
            .rules(Chain::Prerouting)
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r.target, Target::Dnat { .. } | Target::Redirect { .. }))
            .filter_map(|(i, r)| {
                let m = &r.matches;
                let proto = m.proto.filter(|p| !p.negated)?.value.number();
                let ports = m.dst_port.filter(|p| !p.negated)?.value;
                Some(StaticForward { rule: i + 1, proto, ports, dst: m.dst.map(AddrMatch::new) })
            })
            .collect();
        Ok(CompiledRules { prerouting, postrouting, forward, forward_policy, raw, forwards, counters: Arc::default() })
    }

    /// The port forwards (DNAT/REDIRECT with a protocol and destination ports).
    pub fn static_forwards(&self) -> &[StaticForward] {
        &self.forwards
    }

    /// Give the set zeroed per-rule counters for `workers` workers (worker indices
    /// `0..workers`); without them [`count`](Self::count) counts nothing.
    pub fn with_workers(mut self, workers: usize) -> CompiledRules {
        let rules = self.prerouting.len() + self.postrouting.len() + self.forward.len() + self.raw.len();
        self.counters = Arc::new(RuleCounters::new(workers, rules));
        self
    }

    /// Count on in `old`'s counters instead of fresh ones — for a set compiled from the
    /// same rules as `old` (masqd's control plane taking over the set the workers started
    /// with), so nothing counted meanwhile is lost. Sets of another shape keep their own.
    pub fn keep_counters_of(mut self, old: &CompiledRules) -> CompiledRules {
        let same_shape = Chain::ALL.iter().all(|c| self.chain_len(*c) == old.chain_len(*c))
            && self.counters.workers.len() == old.counters.workers.len();
        if same_shape {
            self.counters = old.counters.clone();
        }
        self
    }

    /// Position of `chain`'s rule `rule` in the counter cells.
    #[inline]
    fn cell(&self, chain: Chain, rule: u32) -> usize {
        let base = match chain {
            Chain::Prerouting => 0,
            Chain::Postrouting => self.prerouting.len(),
            Chain::Forward => self.prerouting.len() + self.postrouting.len(),
            Chain::RawPrerouting => self.prerouting.len() + self.postrouting.len() + self.forward.len(),
        };
        2 * (base + rule as usize)
    }

    /// Count one packet of `bytes` bytes against the rule that decided a verdict (`rule`
    /// from [`PreroutingVerdict`], [`PostroutingVerdict`] or [`ForwardVerdict`]; `None`,
    /// the policy, counts nothing). Only worker `worker` may call this with its index.
    #[inline]
    pub fn count(&self, worker: u16, chain: Chain, rule: Option<u32>, bytes: usize) {
        let Some(rule) = rule else { return };
        if rule as usize >= self.chain_len(chain) {
            return;
        }
        let Some(w) = self.counters.workers.get(usize::from(worker)) else { return };
        let i = self.cell(chain, rule);
        w.0[i].inc();
        w.0[i + 1].add(bytes as u64);
    }

    /// `(packets, bytes)` of every rule of `chain`, in order, summed over workers.
    pub fn rule_counts(&self, chain: Chain) -> Vec<(u64, u64)> {
        (0..self.chain_len(chain) as u32)
            .map(|r| {
                let i = self.cell(chain, r);
                self.counters.workers.iter().fold((0, 0), |(p, b), w| (p + w.0[i].get(), b + w.0[i + 1].get()))
            })
            .collect()
    }

    /// nat PREROUTING: destination translation for a new flow (before routing).
    pub fn prerouting(&self, flow: &FlowMatch) -> PreroutingVerdict {
        match first_match(&self.prerouting, flow) {
            Some((i, &nat)) => PreroutingVerdict { nat, rule: Some(i) },
            None => PreroutingVerdict { nat: DestNat::None, rule: None },
        }
    }

    /// filter FORWARD: whether a new flow may pass.
    pub fn forward(&self, flow: &FlowMatch) -> bool {
        self.forward_verdict(flow).accept
    }

    /// filter FORWARD, with the deciding rule.
    pub fn forward_verdict(&self, flow: &FlowMatch) -> ForwardVerdict {
        match first_match(&self.forward, flow) {
            Some((i, &accept)) => ForwardVerdict { accept, rule: Some(i) },
            None => ForwardVerdict { accept: self.forward_policy, rule: None },
        }
    }

    /// nat POSTROUTING: source translation for a new flow (after routing).
    pub fn postrouting(&self, flow: &FlowMatch) -> PostroutingVerdict {
        match first_match(&self.postrouting, flow) {
            Some((i, &nat)) => PostroutingVerdict { nat, rule: Some(i) },
            None => PostroutingVerdict { nat: SourceNat::None, rule: None },
        }
    }

    /// raw PREROUTING: the protocol helper a new flow gets by rule (before nat
    /// PREROUTING, so `--dport` is the port the client asked for).
    pub fn raw_helper(&self, flow: &FlowMatch) -> RawVerdict {
        if self.raw.is_empty() {
            return RawVerdict { helper: None, rule: None };
        }
        match first_match(&self.raw, flow) {
            Some((i, &helper)) => RawVerdict { helper: Some(helper), rule: Some(i) },
            None => RawVerdict { helper: None, rule: None },
        }
    }

    /// How many rules `chain` has: the size of a per-rule counter array.
    pub fn chain_len(&self, chain: Chain) -> usize {
        match chain {
            Chain::Prerouting => self.prerouting.len(),
            Chain::Postrouting => self.postrouting.len(),
            Chain::Forward => self.forward.len(),
            Chain::RawPrerouting => self.raw.len(),
        }
    }
}

fn compile_chain<A>(
    rules: &RuleSet,
    chain: Chain,
    ports: &[(&str, u16)],
    action: impl Fn(&Target) -> Option<A>,
) -> Result<Box<[CompiledRule<A>]>, CompileError> {
    rules
        .rules(chain)
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let action = action(&rule.target).ok_or(CompileError::BadTarget {
                chain,
                rule: i + 1,
                target: rule.target.name(),
            })?;
            Ok(CompiledRule { filter: compile_filter(rule, chain, i + 1, ports)?, action })
        })
        .collect()
}

fn compile_filter(rule: &Rule, chain: Chain, number: usize, ports: &[(&str, u16)]) -> Result<FlowFilter, CompileError> {
    let resolve = |m: &Option<Negatable<Iface>>| -> Result<Option<PortSet>, CompileError> {
        let Some(m) = m else { return Ok(None) };
        let mut found: Vec<u16> =
            ports.iter().filter(|(name, _)| m.value.matches(name)).map(|&(_, index)| index).collect();
        if found.is_empty() {
            return Err(CompileError::UnknownInterface {
                chain,
                rule: number,
                name: m.value.to_string(),
                known: ports.iter().map(|(name, _)| name.to_string()).collect(),
            });
        }
        found.sort_unstable();
        found.dedup();
        Ok(Some(PortSet { ports: found.into_boxed_slice(), negated: m.negated }))
    };
    let m = &rule.matches;
    Ok(FlowFilter {
        in_port: resolve(&m.in_iface)?,
        out_port: resolve(&m.out_iface)?,
        src: m.src.map(AddrMatch::new),
        dst: m.dst.map(AddrMatch::new),
        proto: m.proto.map(|p| Negatable { negated: p.negated, value: p.value.number() }),
        src_port: m.src_port,
        dst_port: m.dst_port,
        icmp_type: m.icmp_type,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::rule::Protocol;
    use crate::policy::ruleset::tests::rule_set;
    use crate::policy::EXAMPLE_RULES;
    use proptest::prelude::*;

    const NAMES: &[&str] = &["wan", "lan", "lan2"];
    const PORTS: &[(&str, u16)] = &[("wan", 0), ("lan", 1), ("lan2", 2)];
    const WAN: u16 = 0;
    const LAN: u16 = 1;
    const LAN2: u16 = 2;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn compile(text: &str) -> CompiledRules {
        let set = RuleSet::parse_save(text, NAMES).unwrap_or_else(|e| panic!("{e}"));
        CompiledRules::new(&set, PORTS).unwrap()
    }

    fn tcp(in_port: u16, out_port: Option<u16>, src: &str, dst: &str, sport: u16, dport: u16) -> FlowMatch {
        FlowMatch {
            in_port,
            out_port,
            proto: 6,
            src: ip(src),
            dst: ip(dst),
            src_port: sport,
            dst_port: dport,
            icmp_type: None,
        }
    }

    fn forward(rules: &str) -> CompiledRules {
        compile(&format!("*filter\n{rules}\nCOMMIT\n"))
    }

    #[test]
    fn raw_table_names_the_helper() {
        let c = compile(
            "*raw\n-A PREROUTING -i wan -p tcp --dport 2121 -j CT --helper ftp\n-A PREROUTING -p udp --dport 1069 -j CT --helper tftp\nCOMMIT\n",
        )
        .with_workers(1);
        let ftp = tcp(WAN, None, "198.51.100.9", "203.0.113.1", 40000, 2121);
        assert_eq!(c.raw_helper(&ftp), RawVerdict { helper: Some(HelperKind::Ftp), rule: Some(0) });
        let mut tftp = tcp(LAN, None, "100.64.0.2", "198.51.100.9", 4000, 1069);
        tftp.proto = 17;
        assert_eq!(c.raw_helper(&tftp).helper, Some(HelperKind::Tftp));
        assert_eq!(c.raw_helper(&tcp(LAN, None, "100.64.0.2", "198.51.100.9", 40000, 2121)).helper, None, "-i wan");
        assert_eq!(compile(EXAMPLE_RULES).raw_helper(&ftp), RawVerdict { helper: None, rule: None });
        // Counted like any other chain, after the others.
        c.count(0, Chain::RawPrerouting, Some(1), 60);
        assert_eq!(c.rule_counts(Chain::RawPrerouting), [(0, 0), (1, 60)]);
    }

    #[test]
    fn example_compiles_and_decides() {
        let c = compile(EXAMPLE_RULES);
        let inbound = tcp(WAN, None, "198.51.100.9", "203.0.113.1", 40000, 2222);
        assert_eq!(
            c.prerouting(&inbound),
            PreroutingVerdict {
                nat: DestNat::Dnat { addrs: AddrRange::single(ip("100.64.0.2")), ports: Some(PortRange::single(22)) },
                rule: Some(0)
            }
        );
        assert_eq!(
            c.prerouting(&FlowMatch { dst_port: 2223, ..inbound }),
            PreroutingVerdict { nat: DestNat::None, rule: None }
        );
        assert_eq!(c.prerouting(&FlowMatch { in_port: LAN, ..inbound }).nat, DestNat::None);
        assert_eq!(c.prerouting(&FlowMatch { proto: 17, ..inbound }).nat, DestNat::None);

        let outbound = tcp(LAN, Some(WAN), "100.64.7.7", "198.51.100.9", 40000, 443);
        assert!(c.forward(&outbound));
        assert_eq!(c.forward_verdict(&outbound), ForwardVerdict { accept: true, rule: Some(0) });
        assert_eq!(
            c.forward_verdict(&FlowMatch { in_port: WAN, out_port: Some(LAN), ..outbound }),
            ForwardVerdict { accept: false, rule: None }
        );
        assert_eq!(
            c.postrouting(&outbound),
            PostroutingVerdict { nat: SourceNat::Masquerade { ports: None, random: false }, rule: Some(0) }
        );
        assert_eq!(c.postrouting(&FlowMatch { src: ip("10.0.0.1"), ..outbound }).nat, SourceNat::None);
        assert_eq!(c.postrouting(&FlowMatch { out_port: Some(LAN2), ..outbound }).nat, SourceNat::None);
        // CGNAT edge of 100.64.0.0/10.
        assert_ne!(c.postrouting(&FlowMatch { src: ip("100.127.255.255"), ..outbound }).nat, SourceNat::None);
        assert_eq!(c.postrouting(&FlowMatch { src: ip("100.128.0.0"), ..outbound }).nat, SourceNat::None);
        assert_eq!(c.chain_len(Chain::Forward), 1);
    }

    #[test]
    fn first_match_wins_return_falls_to_policy() {
        let c = forward(":FORWARD DROP [0:0]\n-A FORWARD -s 10.0.0.0/8 -j RETURN\n-A FORWARD -s 10.1.0.0/16 -j ACCEPT\n-A FORWARD -p tcp -j ACCEPT\n-A FORWARD -j DROP");
        let f = tcp(LAN, Some(WAN), "10.1.2.3", "1.1.1.1", 1, 2);
        assert_eq!(c.forward_verdict(&f), ForwardVerdict { accept: false, rule: Some(0) }, "RETURN = policy DROP");
        assert_eq!(
            c.forward_verdict(&FlowMatch { src: ip("11.0.0.1"), ..f }),
            ForwardVerdict { accept: true, rule: Some(2) }
        );
        assert_eq!(
            c.forward_verdict(&FlowMatch { src: ip("11.0.0.1"), proto: 17, ..f }),
            ForwardVerdict { accept: false, rule: Some(3) }
        );

        let c = forward(":FORWARD ACCEPT [0:0]\n-A FORWARD -s 10.0.0.0/8 -j RETURN\n-A FORWARD -j DROP");
        assert_eq!(c.forward_verdict(&f), ForwardVerdict { accept: true, rule: Some(0) }, "RETURN = policy ACCEPT");
        assert!(!c.forward(&FlowMatch { src: ip("11.0.0.1"), ..f }));

        let c = forward(":FORWARD DROP [0:0]");
        assert_eq!(c.forward_verdict(&f), ForwardVerdict { accept: false, rule: None });
        assert!(CompiledRules::default().forward(&f));
    }

    #[test]
    fn nat_accept_and_return_stop_translation() {
        let c = compile("*nat\n-A POSTROUTING -d 10.0.0.0/8 -j ACCEPT\n-A POSTROUTING -d 192.168.0.0/16 -j RETURN\n-A POSTROUTING -o wan -j MASQUERADE\n-A PREROUTING -d 1.1.1.1 -j ACCEPT\n-A PREROUTING -p tcp -j REDIRECT --to-ports 3128\nCOMMIT\n");
        let f = tcp(LAN, Some(WAN), "100.64.0.1", "10.2.3.4", 1, 80);
        assert_eq!(c.postrouting(&f), PostroutingVerdict { nat: SourceNat::None, rule: Some(0) });
        assert_eq!(
            c.postrouting(&FlowMatch { dst: ip("192.168.1.1"), ..f }),
            PostroutingVerdict { nat: SourceNat::None, rule: Some(1) }
        );
        assert_eq!(c.postrouting(&FlowMatch { dst: ip("8.8.8.8"), ..f }).rule, Some(2));
        assert_eq!(
            c.prerouting(&FlowMatch { dst: ip("1.1.1.1"), ..f }),
            PreroutingVerdict { nat: DestNat::None, rule: Some(0) }
        );
        assert_eq!(
            c.prerouting(&FlowMatch { dst: ip("8.8.8.8"), ..f }),
            PreroutingVerdict { nat: DestNat::Redirect { ports: Some(PortRange::single(3128)) }, rule: Some(1) }
        );
    }

    #[test]
    fn snat_pool_and_masquerade_options() {
        let c = compile("*nat\n-A POSTROUTING -p tcp -s 100.64.0.0/10 -j SNAT --to-source 203.0.113.1-203.0.113.4:1024-65535\n-A POSTROUTING -p udp -j MASQUERADE --to-ports 2000-3000 --random\nCOMMIT\n");
        let f = tcp(LAN, Some(WAN), "100.64.0.1", "8.8.8.8", 1, 80);
        assert_eq!(
            c.postrouting(&f).nat,
            SourceNat::Snat {
                addrs: AddrRange::new(ip("203.0.113.1"), ip("203.0.113.4")).unwrap(),
                ports: PortRange::new(1024, 65535)
            }
        );
        assert_eq!(
            c.postrouting(&FlowMatch { proto: 17, ..f }).nat,
            SourceNat::Masquerade { ports: PortRange::new(2000, 3000), random: true }
        );
    }

    #[test]
    fn every_match_and_negation_evaluates() {
        let f = tcp(LAN, Some(WAN), "10.0.0.5", "192.0.2.1", 5000, 22);
        let accepts = |rule: &str, flow: &FlowMatch| {
            forward(&format!(":FORWARD DROP [0:0]\n-A FORWARD {rule} -j ACCEPT")).forward(flow)
        };
        assert!(accepts("-i lan", &f) && !accepts("-i wan", &f) && accepts("! -i wan", &f));
        assert!(
            accepts("-i lan+", &f)
                && accepts("-i lan+", &FlowMatch { in_port: LAN2, ..f })
                && !accepts("-i lan+", &FlowMatch { in_port: WAN, ..f })
        );
        assert!(accepts("-i +", &f));
        assert!(accepts("-o wan", &f) && !accepts("! -o wan", &f) && accepts("! -o lan+", &f));
        assert!(!accepts("-o wan", &FlowMatch { out_port: None, ..f }), "-o needs a routed flow");
        assert!(!accepts("! -o lan", &FlowMatch { out_port: None, ..f }));
        assert!(accepts("-s 10.0.0.5", &f) && !accepts("-s 10.0.0.6/32", &f) && accepts("! -s 10.0.0.6", &f));
        assert!(accepts("-s 0.0.0.0/0", &f) && !accepts("! -s 0.0.0.0/0", &f));
        assert!(accepts("-d 192.0.2.0/24", &f) && !accepts("! -d 192.0.2.0/24", &f));
        assert!(
            accepts("-p tcp", &f)
                && accepts("-p 6", &f)
                && !accepts("-p udp", &f)
                && accepts("! -p udp", &f)
                && accepts("-p all", &f)
        );
        assert!(
            accepts("-p tcp --dport 22", &f)
                && !accepts("-p tcp ! --dport 22", &f)
                && accepts("-p tcp --dport 20:22", &f)
        );
        assert!(!accepts("-p tcp --dport 23:65535", &f) && accepts("-p tcp ! --dport 23:", &f));
        assert!(
            accepts("-p tcp --sport 5000", &f)
                && accepts("-p tcp --sport 1024:", &f)
                && !accepts("-p tcp --sport :4999", &f)
        );
        assert!(!accepts("-p udp --dport 22", &f));
        let ping = FlowMatch { proto: 1, src_port: 0, dst_port: 0, icmp_type: Some(8), ..f };
        assert!(
            accepts("-p icmp", &ping)
                && accepts("-p icmp --icmp-type 8", &ping)
                && accepts("-p icmp --icmp-type echo-request", &ping)
        );
        assert!(!accepts("-p icmp --icmp-type 0", &ping) && accepts("-p icmp ! --icmp-type 0", &ping));
        assert!(!accepts("-p icmp --icmp-type 8", &FlowMatch { icmp_type: None, ..ping }));
        assert!(accepts("-p 47", &FlowMatch { proto: 47, ..f }) && !accepts("-p 47", &f));
        assert!(accepts("-i lan -o wan -s 10.0.0.0/8 -d 192.0.2.1 -p tcp --sport 5000 --dport 22", &f));
        assert!(!accepts("-i lan -o wan -s 10.0.0.0/8 -d 192.0.2.1 -p tcp --sport 5000 --dport 23", &f));
    }

    #[test]
    fn unknown_interface_at_compile_time() {
        let set = RuleSet::parse_save("*filter\n-A FORWARD -i lan2 -j ACCEPT\nCOMMIT\n", NAMES).unwrap();
        let e = CompiledRules::new(&set, &[("wan", 0), ("lan", 1)]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rule 1 in chain FORWARD: interface \"lan2\" matches no port (expected one of: wan, lan)"
        );
    }

    /// The rules, read directly: a reference the compiled form must agree with.
    fn reference(rule: &Rule, f: &FlowMatch) -> bool {
        let name = |index: u16| NAMES[usize::from(index)];
        let m = &rule.matches;
        let iface = |i: &Option<Negatable<Iface>>, port: Option<u16>| match (i, port) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(i), Some(p)) => i.apply(i.value.matches(name(p))),
        };
        let cidr = |c: &Option<Negatable<Cidr>>, a| c.is_none_or(|c| c.apply(c.value.contains(a)));
        let ports = |r: &Option<Negatable<PortRange>>, p| r.is_none_or(|r| r.apply(r.value.contains(p)));
        iface(&m.in_iface, Some(f.in_port))
            && iface(&m.out_iface, f.out_port)
            && cidr(&m.src, f.src)
            && cidr(&m.dst, f.dst)
            && m.proto.is_none_or(|p| p.apply(Protocol::from_number(f.proto) == Some(p.value)))
            && ports(&m.src_port, f.src_port)
            && ports(&m.dst_port, f.dst_port)
            && m.icmp_type.is_none_or(|t| f.icmp_type.is_some_and(|ty| t.apply(ty == t.value)))
    }

    fn flow() -> impl Strategy<Value = FlowMatch> {
        let addr = prop_oneof![any::<u32>().prop_map(Ipv4Addr::from), Just(ip("10.0.0.1")), Just(ip("100.64.0.1"))];
        (
            0u16..3,
            proptest::option::of(0u16..3),
            prop_oneof![Just(6u8), Just(17), Just(1), any::<u8>()],
            addr.clone(),
            addr,
            any::<u16>(),
            prop_oneof![Just(22u16), any::<u16>()],
            proptest::option::of(any::<u8>()),
        )
            .prop_map(|(in_port, out_port, proto, src, dst, src_port, dst_port, icmp_type)| FlowMatch {
                in_port,
                out_port,
                proto,
                src,
                dst,
                src_port,
                dst_port,
                icmp_type,
            })
    }

    proptest! {
        #[test]
        fn compiled_agrees_with_the_rules_read_directly(set in rule_set(), flows in proptest::collection::vec(flow(), 1..20)) {
            let c = CompiledRules::new(&set, PORTS).unwrap();
            for f in &flows {
                let first = |chain| set.rules(chain).iter().position(|r| reference(r, f)).map(|i| i as u32);
                prop_assert_eq!(c.prerouting(f).rule, first(Chain::Prerouting));
                prop_assert_eq!(c.postrouting(f).rule, first(Chain::Postrouting));
                let v = c.forward_verdict(f);
                prop_assert_eq!(v.rule, first(Chain::Forward));
                let policy = set.policy(Chain::Forward) == Policy::Accept;
                let expected = match v.rule.map(|i| set.rules(Chain::Forward)[i as usize].target) {
                    Some(Target::Accept) => true,
                    Some(Target::Drop) => false,
                    _ => policy,
                };
                prop_assert_eq!(v.accept, expected);
                if let Some(i) = c.postrouting(f).rule {
                    let nat = c.postrouting(f).nat;
                    match set.rules(Chain::Postrouting)[i as usize].target {
                        Target::Masquerade { ports, random } => prop_assert_eq!(nat, SourceNat::Masquerade { ports, random }),
                        Target::Snat { addrs, ports } => prop_assert_eq!(nat, SourceNat::Snat { addrs, ports }),
                        _ => prop_assert_eq!(nat, SourceNat::None),
                    }
                }
            }
        }
    }
}
