//! Policy: iptables rules for masq.
//!
//! masqd loads rules at start (`--rules FILE`, iptables-save format) and the control
//! plane edits them live with iptables' own command language (`masqctl -t nat -A
//! POSTROUTING ...`: masqctl reads the command line, masqd the table, chain and rule
//! specification it sends). This module is sans-I/O: it reads text, keeps the configuration
//! and evaluates it; it never opens a file or a socket.
//!
//! | file            | role                                                              |
//! |-----------------|-------------------------------------------------------------------|
//! | [`rule`]        | the model: [`Table`], [`Chain`], [`Policy`], [`Matches`], [`Target`], [`Rule`] |
//! | [`parse`]       | reading rules: [`tokenize`], rule specs ([`parse_rule_spec`], [`parse_rule`]), iptables-save files, the names of a rule command; typed [`ParseError`] with line numbers |
//! | [`ruleset`]     | [`RuleSet`]: both tables; save/restore; append, insert, delete, flush, policy; [`Command`] and [`RuleSet::apply`] |
//! | [`format`](mod@format) | canonical iptables-save text, `-S` and `-L` output                |
//! | [`compiled`]    | [`CompiledRules`]: immutable, `Send + Sync`, evaluated per new flow without allocating |
//!
//! Data flow: text -> [`RuleSet`] (control thread, validated on every change) ->
//! [`CompiledRules::new`] with the port name -> index map -> an `Arc` swapped into the
//! workers. A worker's slow path fills a [`FlowMatch`] for a session miss and asks
//! [`CompiledRules::forward`], [`CompiledRules::prerouting`] and
//! [`CompiledRules::postrouting`]; every verdict names the deciding rule so per-rule
//! counters can be added by the caller.
//!
//! ```
//! use dataplane::policy::{parse_rule_spec, Chain, Command, CompiledRules, FlowMatch, Policy, RuleSet, SourceNat};
//!
//! let ports = ["wan", "lan"];
//! let mut rules = RuleSet::parse_save(
//!     "*nat\n-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE\nCOMMIT\n",
//!     &ports,
//! )?;
//! // masqctl -P FORWARD DROP; masqctl -A FORWARD -i lan -j ACCEPT
//! rules.apply(Command::SetPolicy { chain: Chain::Forward, policy: Policy::Drop })?;
//! let rule = parse_rule_spec(Chain::Forward, &["-i", "lan", "-j", "ACCEPT"], &ports)?;
//! rules.apply(Command::Append { chain: Chain::Forward, rule })?;
//!
//! let compiled = CompiledRules::new(&rules, &[("wan", 0), ("lan", 1)])?;
//! let flow = FlowMatch {
//!     in_port: 1,
//!     out_port: Some(0),
//!     proto: 6,
//!     src: "100.64.0.9".parse()?,
//!     dst: "198.51.100.1".parse()?,
//!     src_port: 40000,
//!     dst_port: 443,
//!     icmp_type: None,
//! };
//! assert!(compiled.forward(&flow));
//! let verdict = compiled.postrouting(&flow);
//! assert_eq!(verdict.nat, SourceNat::Masquerade { ports: None, random: false });
//! assert_eq!(verdict.rule, Some(0));
//! assert!(rules.to_save_text().contains(":FORWARD DROP [0:0]\n-A FORWARD -i lan -j ACCEPT\n"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The rest of this page is the user documentation of the rule language (also in
//! `dataplane/src/policy/README.md`).
//!
#![doc = include_str!("README.md")]

pub mod compiled;
pub mod format;
pub mod parse;
pub mod rule;
pub mod ruleset;

pub use compiled::{
    CompileError, CompiledRules, DestNat, FlowMatch, ForwardVerdict, PostroutingVerdict, PreroutingVerdict,
    RuleCounters, SourceNat, StaticForward,
};
pub use parse::{
    parse_chain, parse_policy, parse_rule, parse_rule_spec, parse_table, tokenize, ParseError, ParseErrorKind,
};
pub use rule::{
    AddrRange, Chain, Cidr, Iface, Matches, Negatable, Policy, PortRange, Protocol, Rule, RuleProblem, Table, Target,
};
pub use ruleset::{Applied, Command, ListOptions, RuleSet, RuleSetError};

/// The example rules file of the documentation, shared by the tests.
#[cfg(test)]
pub(crate) const EXAMPLE_RULES: &str = "\
*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
*filter
:FORWARD DROP [0:0]
-A FORWARD -i lan -o wan -j ACCEPT
COMMIT
";
