//! Policy: iptables rules for masq (being written).

pub mod compiled;
pub mod format;
pub mod parse;
pub mod rule;
pub mod ruleset;

pub use compiled::{
    CompileError, CompiledRules, DestNat, FlowMatch, ForwardVerdict, PostroutingVerdict,
    PreroutingVerdict, SourceNat,
};
pub use parse::{parse_command, parse_rule, tokenize, ParseError, ParseErrorKind};
pub use rule::{
    AddrRange, Chain, Cidr, Iface, Matches, Negatable, Policy, PortRange, Protocol, Rule,
    RuleProblem, Table, Target,
};
pub use ruleset::{Command, ListOptions, RuleSet, RuleSetError};

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
