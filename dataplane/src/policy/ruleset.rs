//! The whole rule configuration: both tables, their chains, policies and ordered rules,
//! and the operations the control plane performs on it.
//!
//! A [`RuleSet`] is control-plane state. The dataplane never reads it; it reads a
//! [`CompiledRules`](super::CompiledRules) built from it and swapped in whole.
//! Every mutation validates and returns a typed [`RuleSetError`]; a failed mutation
//! leaves the set unchanged.

use super::format;
use super::parse::{self, ParseError};
use super::rule::{Chain, Policy, Rule, RuleProblem, Table};

/// How `-L` prints (`-n`, `-v`, `--line-numbers`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-n`: numeric output (`0.0.0.0/0` and `*` instead of `anywhere` and `any`).
    pub numeric: bool,
    /// `-v`: interfaces and (zero) counters.
    pub verbose: bool,
    /// `--line-numbers`: a `num` column.
    pub line_numbers: bool,
}

/// One rule command, typed: what `rules.append`, `rules.insert`, `rules.delete`,
/// `rules.flush` and `rules.policy` ask for once their names and tokens are read
/// (`control_plane::rules` builds it from the request with [`super::parse::command`]'s
/// functions). Positions are 1-based, as in iptables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `-A CHAIN spec`
    Append {
        /// The chain.
        chain: Chain,
        /// The rule.
        rule: Rule,
    },
    /// `-I CHAIN [N] spec` (N defaults to 1)
    Insert {
        /// The chain.
        chain: Chain,
        /// Where the rule goes: 1 to len + 1.
        pos: usize,
        /// The rule.
        rule: Rule,
    },
    /// `-D CHAIN N`
    DeleteAt {
        /// The chain.
        chain: Chain,
        /// The rule to delete: 1 to len.
        pos: usize,
    },
    /// `-D CHAIN spec`: the first rule equal to `rule`.
    DeleteMatching {
        /// The chain.
        chain: Chain,
        /// The rule to find.
        rule: Rule,
    },
    /// `-F [CHAIN]`: one chain, or every chain of the table.
    Flush {
        /// The table (`-t`).
        table: Table,
        /// The chain, or all of the table's.
        chain: Option<Chain>,
    },
    /// `-P CHAIN POLICY`
    SetPolicy {
        /// The chain.
        chain: Chain,
        /// Its new policy.
        policy: Policy,
    },
}

/// What a [`Command`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Append or insert: the new rule's 1-based position.
    Added {
        /// Its position.
        number: usize,
    },
    /// A rule was deleted.
    Deleted {
        /// The rule removed.
        rule: Rule,
        /// Its former 1-based position.
        number: usize,
    },
    /// Flush: how many rules went.
    Flushed {
        /// Rules removed.
        rules: usize,
    },
    /// The policy is set.
    PolicySet,
}

/// Why a rule set operation was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    /// A rule number outside the chain.
    #[error("rule number {pos} is out of range for chain {chain} (expected {})", positions(*.max))]
    PositionOutOfRange {
        /// The chain.
        chain: Chain,
        /// The position asked for (1-based).
        pos: usize,
        /// The highest valid position (0: none is).
        max: usize,
    },
    /// A policy the chain may not have.
    #[error("policy {policy} is not allowed for nat chain {chain} (expected ACCEPT; drop in filter FORWARD)")]
    PolicyNotAllowed {
        /// The chain.
        chain: Chain,
        /// The policy refused.
        policy: Policy,
    },
    /// `-D CHAIN spec` found no equal rule.
    #[error(
        "no rule in chain {chain} matches \"{rule}\" (expected an existing rule; see masqctl --list-rules {chain})"
    )]
    NoMatchingRule {
        /// The chain.
        chain: Chain,
        /// The rule spec looked for.
        rule: String,
    },
    /// A chain named with the wrong table.
    #[error("chain {chain} is not in table {table} (it is in table {})", .chain.table())]
    ChainNotInTable {
        /// The table.
        table: Table,
        /// The chain.
        chain: Chain,
    },
    /// A rule that cannot live in the chain.
    #[error("rule not valid in chain {chain}: {problem}")]
    InvalidRule {
        /// The chain.
        chain: Chain,
        /// Why not.
        problem: RuleProblem,
    },
}

fn positions(max: usize) -> String {
    if max == 0 {
        "none: the chain is empty".to_string()
    } else {
        format!("1 to {max}")
    }
}

/// One chain: its policy and its rules, in evaluation order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct ChainRules {
    policy: Policy,
    rules: Vec<Rule>,
}

/// The whole configuration: every chain of both tables, with policies and rules.
/// `Default` is empty chains, every policy ACCEPT.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSet {
    chains: [ChainRules; Chain::ALL.len()],
}

impl RuleSet {
    /// An empty rule set: no rules, every policy ACCEPT.
    pub fn new() -> RuleSet {
        RuleSet::default()
    }

    /// Read an iptables-save file (`--rules FILE`, `masqctl restore`). Interfaces are
    /// checked against `known_ports`; errors carry the line number. Tables absent from
    /// the text are empty with ACCEPT policies.
    pub fn parse_save(text: &str, known_ports: &[&str]) -> Result<RuleSet, ParseError> {
        parse::save::parse_save(text, known_ports).map(|(rules, _)| rules)
    }

    /// iptables-restore: replace the tables present in `text`, keep the others. All or
    /// nothing: on error the set is unchanged.
    pub fn restore(&mut self, text: &str, known_ports: &[&str]) -> Result<(), ParseError> {
        let (new, seen) = parse::save::parse_save(text, known_ports)?;
        for chain in Chain::ALL {
            if seen[chain.table() as usize] {
                self.chains[chain.index()] = new.chains[chain.index()].clone();
            }
        }
        Ok(())
    }

    /// Canonical iptables-save text: a `# Generated by masq` header, `nat` then `filter`,
    /// every chain declared with its policy and `[0:0]` counters, rules in order. Stable:
    /// parsing it and saving again gives the same bytes.
    pub fn to_save_text(&self) -> String {
        format::save_text(self)
    }

    /// The rules of `chain`, in evaluation order.
    pub fn rules(&self, chain: Chain) -> &[Rule] {
        &self.chains[chain.index()].rules
    }

    /// The policy of `chain`.
    pub fn policy(&self, chain: Chain) -> Policy {
        self.chains[chain.index()].policy
    }

    /// Total number of rules in every chain.
    pub fn len(&self) -> usize {
        self.chains.iter().map(|c| c.rules.len()).sum()
    }

    /// Whether no chain has a rule.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(chain: Chain, rule: &Rule) -> Result<(), RuleSetError> {
        rule.check(chain).map_err(|problem| RuleSetError::InvalidRule { chain, problem })
    }

    /// `-A`: add `rule` at the end of `chain`.
    pub fn append(&mut self, chain: Chain, rule: Rule) -> Result<(), RuleSetError> {
        Self::check(chain, &rule)?;
        self.chains[chain.index()].rules.push(rule);
        Ok(())
    }

    /// Append a rule the parser has already checked.
    pub(crate) fn push_checked(&mut self, chain: Chain, rule: Rule) -> Result<(), RuleProblem> {
        rule.check(chain)?;
        self.chains[chain.index()].rules.push(rule);
        Ok(())
    }

    /// `-I`: put `rule` at 1-based position `pos` of `chain` (1 to len + 1; len + 1
    /// appends).
    pub fn insert(&mut self, chain: Chain, pos: usize, rule: Rule) -> Result<(), RuleSetError> {
        Self::check(chain, &rule)?;
        let rules = &mut self.chains[chain.index()].rules;
        let max = rules.len() + 1;
        if pos == 0 || pos > max {
            return Err(RuleSetError::PositionOutOfRange { chain, pos, max });
        }
        rules.insert(pos - 1, rule);
        Ok(())
    }

    /// `-D CHAIN N`: remove and return the rule at 1-based position `pos`.
    pub fn delete_at(&mut self, chain: Chain, pos: usize) -> Result<Rule, RuleSetError> {
        let rules = &mut self.chains[chain.index()].rules;
        if pos == 0 || pos > rules.len() {
            return Err(RuleSetError::PositionOutOfRange { chain, pos, max: rules.len() });
        }
        Ok(rules.remove(pos - 1))
    }

    /// `-D CHAIN spec`: remove the first rule of `chain` equal to `rule`; returns its
    /// former 1-based position.
    pub fn delete_matching(&mut self, chain: Chain, rule: &Rule) -> Result<usize, RuleSetError> {
        let rules = &mut self.chains[chain.index()].rules;
        match rules.iter().position(|r| r == rule) {
            Some(i) => {
                rules.remove(i);
                Ok(i + 1)
            }
            None => Err(RuleSetError::NoMatchingRule { chain, rule: rule.to_string() }),
        }
    }

    /// `-F [CHAIN]`: remove every rule of `chain`, or of every chain of `table`.
    /// Policies are kept. Returns how many rules were removed.
    pub fn flush(&mut self, table: Table, chain: Option<Chain>) -> Result<usize, RuleSetError> {
        let chains = self.chains_of(table, chain)?;
        Ok(chains.iter().map(|c| std::mem::take(&mut self.chains[c.index()].rules).len()).sum())
    }

    /// `-P CHAIN POLICY`. nat chains accept only ACCEPT.
    pub fn set_policy(&mut self, chain: Chain, policy: Policy) -> Result<(), RuleSetError> {
        if !chain.allows_policy(policy) {
            return Err(RuleSetError::PolicyNotAllowed { chain, policy });
        }
        self.chains[chain.index()].policy = policy;
        Ok(())
    }

    /// `-L [CHAIN]`: the table or one chain, as `iptables -L` prints it.
    pub fn list(&self, table: Table, chain: Option<Chain>, options: ListOptions) -> Result<String, RuleSetError> {
        Ok(format::list(self, self.chains_of(table, chain)?, options))
    }

    /// `-S [CHAIN]`: the table or one chain as `-P` and `-A` commands.
    pub fn list_rules(&self, table: Table, chain: Option<Chain>) -> Result<String, RuleSetError> {
        Ok(format::list_rules(self, self.chains_of(table, chain)?))
    }

    /// Perform a command: the one door every rule change goes through (the control
    /// server's `rules.*`, and tests). All or nothing: on error the set is unchanged.
    pub fn apply(&mut self, command: Command) -> Result<Applied, RuleSetError> {
        Ok(match command {
            Command::Append { chain, rule } => {
                self.append(chain, rule)?;
                Applied::Added { number: self.rules(chain).len() }
            }
            Command::Insert { chain, pos, rule } => {
                self.insert(chain, pos, rule)?;
                Applied::Added { number: pos }
            }
            Command::DeleteAt { chain, pos } => Applied::Deleted { rule: self.delete_at(chain, pos)?, number: pos },
            Command::DeleteMatching { chain, rule } => {
                let number = self.delete_matching(chain, &rule)?;
                Applied::Deleted { rule, number }
            }
            Command::Flush { table, chain } => Applied::Flushed { rules: self.flush(table, chain)? },
            Command::SetPolicy { chain, policy } => {
                self.set_policy(chain, policy)?;
                Applied::PolicySet
            }
        })
    }

    fn chains_of(&self, table: Table, chain: Option<Chain>) -> Result<&'static [Chain], RuleSetError> {
        match chain {
            None => Ok(table.chains()),
            Some(chain) if chain.table() == table => Ok(match chain {
                Chain::Prerouting => &[Chain::Prerouting],
                Chain::Postrouting => &[Chain::Postrouting],
                Chain::Forward => &[Chain::Forward],
                Chain::RawPrerouting => &[Chain::RawPrerouting],
            }),
            Some(chain) => Err(RuleSetError::ChainNotInTable { table, chain }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::control_plane::rules::masqctl_command;
    use crate::policy::parse::{parse_rule, tokenize};
    use crate::policy::rule::{AddrRange, Cidr, Iface, Matches, Negatable, PortRange, Protocol, Target};
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const PORTS: &[&str] = &["wan", "lan", "lan2"];

    use crate::policy::EXAMPLE_RULES as EXAMPLE;

    fn rule(table: Table, line: &str) -> (Chain, Rule) {
        let tokens = tokenize(line).unwrap();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        parse_rule(table, &tokens, PORTS).unwrap()
    }

    /// A masqctl command line, read as masqctl and masqd read it, applied to `set`.
    fn run(set: &mut RuleSet, line: &str) -> Result<Applied, RuleSetError> {
        set.apply(masqctl_command(line, PORTS).unwrap_or_else(|e| panic!("{line}: {e}")))
    }

    #[test]
    fn example_parses() {
        let set = RuleSet::parse_save(EXAMPLE, PORTS).unwrap();
        assert_eq!(set.rules(Chain::Prerouting).len(), 1);
        assert_eq!(set.rules(Chain::Postrouting).len(), 1);
        assert_eq!(set.rules(Chain::Forward).len(), 1);
        assert_eq!(set.policy(Chain::Forward), Policy::Drop);
        assert_eq!(set.policy(Chain::Prerouting), Policy::Accept);
        assert_eq!(set.len(), 3);
        assert_eq!(set.rules(Chain::Postrouting)[0].target, Target::Masquerade { ports: None, random: false });
    }

    #[test]
    fn save_is_canonical_and_round_trips_byte_identical() {
        let set = RuleSet::parse_save(EXAMPLE, PORTS).unwrap();
        let saved = set.to_save_text();
        assert_eq!(
            saved,
            "\
# Generated by masq
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan -p tcp -m tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22
-A POSTROUTING -s 100.64.0.0/10 -o wan -j MASQUERADE
COMMIT
# Completed by masq
*filter
:FORWARD DROP [0:0]
-A FORWARD -i lan -o wan -j ACCEPT
COMMIT
# Completed by masq
"
        );
        let again = RuleSet::parse_save(&saved, PORTS).unwrap();
        assert_eq!(again, set);
        assert_eq!(again.to_save_text(), saved);
        assert_eq!(RuleSet::new().to_save_text(), RuleSet::parse_save("", PORTS).unwrap().to_save_text());
    }

    #[test]
    fn restore_replaces_only_the_tables_given() {
        let mut set = RuleSet::parse_save(EXAMPLE, PORTS).unwrap();
        set.restore("*filter\n:FORWARD ACCEPT [0:0]\nCOMMIT\n", PORTS).unwrap();
        assert_eq!(set.policy(Chain::Forward), Policy::Accept);
        assert!(set.rules(Chain::Forward).is_empty());
        assert_eq!(set.rules(Chain::Postrouting).len(), 1, "nat untouched");
        let before = set.clone();
        assert!(set.restore("*nat\n-A POSTROUTING -j SANT\nCOMMIT\n", PORTS).is_err());
        assert_eq!(set, before, "a failed restore changes nothing");
    }

    #[test]
    fn insert_positions() {
        let mut set = RuleSet::new();
        let r = |s: &str| rule(Table::Filter, &format!("-A FORWARD -s {s} -j DROP")).1;
        set.insert(Chain::Forward, 1, r("1.0.0.1")).unwrap(); // [1]
        set.insert(Chain::Forward, 2, r("1.0.0.3")).unwrap(); // [1, 3]: len + 1 appends
        set.insert(Chain::Forward, 2, r("1.0.0.2")).unwrap(); // [1, 2, 3]
        set.insert(Chain::Forward, 1, r("1.0.0.0")).unwrap(); // [0, 1, 2, 3]
        let srcs: Vec<String> =
            set.rules(Chain::Forward).iter().map(|r| r.matches.src.unwrap().value.addr().to_string()).collect();
        assert_eq!(srcs, ["1.0.0.0", "1.0.0.1", "1.0.0.2", "1.0.0.3"]);
        assert_eq!(
            set.insert(Chain::Forward, 6, r("9.9.9.9")),
            Err(RuleSetError::PositionOutOfRange { chain: Chain::Forward, pos: 6, max: 5 })
        );
        assert!(set.insert(Chain::Forward, 0, r("9.9.9.9")).is_err());
        assert_eq!(
            set.insert(Chain::Forward, 6, r("9.9.9.9")).unwrap_err().to_string(),
            "rule number 6 is out of range for chain FORWARD (expected 1 to 5)"
        );
        // Through the command line: -I without a number inserts first.
        run(&mut set, "-I FORWARD -s 2.0.0.0 -j ACCEPT").unwrap();
        assert_eq!(set.rules(Chain::Forward)[0].target, Target::Accept);
        run(&mut set, "-I FORWARD 6 -s 2.0.0.6 -j ACCEPT").unwrap();
        assert_eq!(set.rules(Chain::Forward)[5].matches.src.unwrap().value.addr(), Ipv4Addr::new(2, 0, 0, 6));
        assert_eq!(set.rules(Chain::Forward).len(), 6);
    }

    #[test]
    fn delete_by_number_and_by_spec() {
        let mut set = RuleSet::new();
        for line in [
            "-A FORWARD -s 10.0.0.1 -j DROP",
            "-A FORWARD -p tcp --dport 22 -j ACCEPT",
            "-A FORWARD -s 10.0.0.1 -j DROP",
        ] {
            run(&mut set, line).unwrap();
        }
        assert_eq!(
            run(&mut set, "-D FORWARD 4"),
            Err(RuleSetError::PositionOutOfRange { chain: Chain::Forward, pos: 4, max: 3 })
        );
        // By spec: equal after normalisation (10.0.0.1 is 10.0.0.1/32, -m tcp implied).
        assert_eq!(
            set.delete_matching(Chain::Forward, &rule(Table::Filter, "-A FORWARD -s 10.0.0.1/32 -j DROP").1),
            Ok(1)
        );
        assert_eq!(set.rules(Chain::Forward).len(), 2);
        run(&mut set, "-D FORWARD -p tcp -m tcp --dport 22 -j ACCEPT").unwrap();
        assert_eq!(set.rules(Chain::Forward).len(), 1);
        let e = run(&mut set, "-D FORWARD -p tcp --dport 23 -j ACCEPT").unwrap_err();
        assert_eq!(
            e.to_string(),
            "no rule in chain FORWARD matches \"-p tcp -m tcp --dport 23 -j ACCEPT\" (expected an existing rule; see masqctl --list-rules FORWARD)"
        );
        run(&mut set, "-D FORWARD 1").unwrap();
        assert!(set.is_empty());
        assert_eq!(
            set.delete_at(Chain::Forward, 1).unwrap_err().to_string(),
            "rule number 1 is out of range for chain FORWARD (expected none: the chain is empty)"
        );
    }

    #[test]
    fn flush_and_policy() {
        let mut set = RuleSet::parse_save(EXAMPLE, PORTS).unwrap();
        assert_eq!(set.flush(Table::Nat, Some(Chain::Prerouting)), Ok(1));
        assert_eq!(set.rules(Chain::Postrouting).len(), 1);
        assert_eq!(
            set.flush(Table::Filter, Some(Chain::Postrouting)),
            Err(RuleSetError::ChainNotInTable { table: Table::Filter, chain: Chain::Postrouting })
        );
        run(&mut set, "-t nat -F").unwrap();
        assert_eq!(set.rules(Chain::Postrouting).len(), 0);
        assert_eq!(set.rules(Chain::Forward).len(), 1, "-t nat -F leaves filter alone");
        assert_eq!(set.policy(Chain::Forward), Policy::Drop, "flush keeps policies");
        run(&mut set, "-F").unwrap();
        assert!(set.is_empty());

        run(&mut set, "-P FORWARD ACCEPT").unwrap();
        assert_eq!(set.policy(Chain::Forward), Policy::Accept);
        assert_eq!(
            set.set_policy(Chain::Prerouting, Policy::Drop),
            Err(RuleSetError::PolicyNotAllowed { chain: Chain::Prerouting, policy: Policy::Drop })
        );
        assert_eq!(set.set_policy(Chain::Prerouting, Policy::Accept), Ok(()));
    }

    #[test]
    fn mutations_validate_rules_built_in_code() {
        let mut set = RuleSet::new();
        let dnat = Rule::new(Target::Dnat { addrs: AddrRange::single(Ipv4Addr::new(1, 2, 3, 4)), ports: None });
        let e = set.append(Chain::Postrouting, dnat.clone()).unwrap_err();
        assert!(e.to_string().starts_with("rule not valid in chain POSTROUTING: target DNAT is not allowed"), "{e}");
        assert!(set.insert(Chain::Forward, 1, dnat.clone()).is_err());
        assert!(set.append(Chain::Prerouting, Rule::new(Target::Drop)).is_err());
        assert!(set.is_empty());
        assert_eq!(set.append(Chain::Prerouting, dnat), Ok(()));
    }

    #[test]
    fn apply_says_what_it_did() {
        let mut set = RuleSet::parse_save(EXAMPLE, PORTS).unwrap();
        assert_eq!(run(&mut set, "-A FORWARD -i wan -j DROP"), Ok(Applied::Added { number: 2 }));
        assert_eq!(run(&mut set, "-I FORWARD 2 -i lan2 -j DROP"), Ok(Applied::Added { number: 2 }));
        let (_, dropped) = rule(Table::Filter, "-A FORWARD -i wan -j DROP");
        assert_eq!(run(&mut set, "-D FORWARD -i wan -j DROP"), Ok(Applied::Deleted { rule: dropped, number: 3 }));
        assert!(matches!(run(&mut set, "-D FORWARD 1"), Ok(Applied::Deleted { number: 1, .. })));
        assert_eq!(run(&mut set, "-t nat -F"), Ok(Applied::Flushed { rules: 2 }));
        assert_eq!(run(&mut set, "-P FORWARD ACCEPT"), Ok(Applied::PolicySet));
        assert_eq!(set.list_rules(Table::Filter, None).unwrap(), "-P FORWARD ACCEPT\n-A FORWARD -i lan2 -j DROP\n");
    }

    // --- round trip property ---------------------------------------------------------

    fn cidr() -> impl Strategy<Value = Cidr> {
        (any::<u32>(), 0u8..=32).prop_map(|(a, p)| Cidr::new(Ipv4Addr::from(a), p).unwrap())
    }

    fn negatable<T: std::fmt::Debug + Clone>(s: impl Strategy<Value = T>) -> impl Strategy<Value = Negatable<T>> {
        (any::<bool>(), s).prop_map(|(negated, value)| Negatable { negated, value })
    }

    fn port_range() -> impl Strategy<Value = PortRange> {
        (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange::new(a.min(b), a.max(b)).unwrap())
    }

    fn nat_ports() -> impl Strategy<Value = PortRange> {
        (1u16.., 1u16..).prop_map(|(a, b)| PortRange::new(a.min(b), a.max(b)).unwrap())
    }

    fn addr_range() -> impl Strategy<Value = AddrRange> {
        (any::<u32>(), any::<u32>())
            .prop_map(|(a, b)| AddrRange::new(Ipv4Addr::from(a.min(b)), Ipv4Addr::from(a.max(b))).unwrap())
    }

    fn iface() -> impl Strategy<Value = Iface> {
        prop_oneof![
            proptest::sample::select(PORTS).prop_map(Iface::exact),
            proptest::sample::select(&["", "l", "lan", "w"][..]).prop_map(Iface::prefix),
        ]
    }

    /// Mostly the protocols that carry port and ICMP matches, so those get exercised.
    fn protocol() -> impl Strategy<Value = Protocol> {
        prop_oneof![
            3 => Just(Protocol::Tcp),
            3 => Just(Protocol::Udp),
            2 => Just(Protocol::Icmp),
            1 => (1u8..=255).prop_map(|n| Protocol::from_number(n).unwrap()),
        ]
    }

    /// A valid rule for `chain`: generate freely, then drop what the chain refuses.
    fn rule_for(chain: Chain) -> impl Strategy<Value = Rule> {
        let matches = (
            proptest::option::of(negatable(iface())),
            proptest::option::of(negatable(iface())),
            proptest::option::of(negatable(cidr())),
            proptest::option::of(negatable(cidr())),
            proptest::option::of(negatable(protocol())),
            proptest::option::of(negatable(port_range())),
            proptest::option::of(negatable(port_range())),
            proptest::option::of(negatable(any::<u8>())),
        )
            .prop_map(|(i, o, s, d, p, sp, dp, it)| Matches {
                in_iface: i,
                out_iface: o,
                src: s,
                dst: d,
                proto: p,
                src_port: sp,
                dst_port: dp,
                icmp_type: it,
            });
        let target = prop_oneof![
            Just(Target::Accept),
            Just(Target::Drop),
            Just(Target::Return),
            (proptest::option::of(nat_ports()), any::<bool>())
                .prop_map(|(ports, random)| Target::Masquerade { ports, random }),
            (addr_range(), proptest::option::of(nat_ports())).prop_map(|(addrs, ports)| Target::Snat { addrs, ports }),
            (addr_range(), proptest::option::of(nat_ports())).prop_map(|(addrs, ports)| Target::Dnat { addrs, ports }),
            proptest::option::of(nat_ports()).prop_map(|ports| Target::Redirect { ports }),
        ];
        let comment = proptest::option::of("[ -~]{0,40}");
        (matches, target, comment).prop_map(move |(mut m, target, comment)| {
            if chain == Chain::Postrouting {
                m.in_iface = None;
            }
            if chain == Chain::Prerouting {
                m.out_iface = None;
            }
            // /0 without ! is stored as no match at all.
            m.src = m.src.filter(|c| c.negated || c.value.prefix() != 0);
            m.dst = m.dst.filter(|c| c.negated || c.value.prefix() != 0);
            if m.port_protocol().is_none() {
                m.src_port = None;
                m.dst_port = None;
            }
            if !m.is_icmp() {
                m.icmp_type = None;
            }
            let mut target = if target.allowed_in(chain) { target } else { Target::Accept };
            if m.port_protocol().is_none() {
                match &mut target {
                    Target::Masquerade { ports, .. }
                    | Target::Snat { ports, .. }
                    | Target::Dnat { ports, .. }
                    | Target::Redirect { ports } => *ports = None,
                    _ => {}
                }
            }
            Rule { matches: m, target, comment }
        })
    }

    /// Random valid rule sets over the ports wan, lan, lan2.
    pub(crate) fn rule_set() -> impl Strategy<Value = RuleSet> {
        (
            proptest::collection::vec(rule_for(Chain::Prerouting), 0..5),
            proptest::collection::vec(rule_for(Chain::Postrouting), 0..5),
            proptest::collection::vec(rule_for(Chain::Forward), 0..5),
            any::<bool>(),
        )
            .prop_map(|(pre, post, fwd, drop)| {
                let mut set = RuleSet::new();
                for (chain, rules) in [(Chain::Prerouting, pre), (Chain::Postrouting, post), (Chain::Forward, fwd)] {
                    for rule in rules {
                        set.append(chain, rule).unwrap();
                    }
                }
                set.set_policy(Chain::Forward, if drop { Policy::Drop } else { Policy::Accept }).unwrap();
                set
            })
    }

    proptest! {
        #[test]
        fn save_parse_round_trip(set in rule_set()) {
            let text = set.to_save_text();
            let parsed = RuleSet::parse_save(&text, PORTS).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(&parsed, &set);
            prop_assert_eq!(parsed.to_save_text(), text);
        }

        #[test]
        fn list_rules_lines_parse_back_as_commands(set in rule_set()) {
            for table in Table::ALL {
                let mut rebuilt = RuleSet::new();
                for line in set.list_rules(table, None).unwrap().lines() {
                    let command = masqctl_command(&format!("-t {table} {line}"), PORTS)
                        .map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
                    rebuilt.apply(command).unwrap();
                }
                for &chain in table.chains() {
                    prop_assert_eq!(rebuilt.rules(chain), set.rules(chain));
                    prop_assert_eq!(rebuilt.policy(chain), set.policy(chain));
                }
            }
        }
    }
}
