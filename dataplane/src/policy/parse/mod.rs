//! Reading rules: the iptables-save file format and the rule commands masqctl sends.
//!
//! One rule-spec parser serves every door, so a rule means the same thing wherever it is
//! written. The files, by job:
//!
//! | file | reads |
//! | --- | --- |
//! | [`tokenize`](mod@tokenize) | a line split as iptables-restore does: `"..."` groups, backslash escapes inside quotes |
//! | [`spec`] | a rule specification (`-o wan -j MASQUERADE`), and `-A CHAIN spec` lines ([`parse_rule`]) |
//! | [`save`] | a whole iptables-save file ([`RuleSet::parse_save`](super::RuleSet::parse_save)), errors with line numbers |
//! | [`command`] | the parts of a rule command as the control protocol carries them: table and chain names, a spec as argv tokens, a policy name |
//!
//! The command line itself (`masqctl -t nat -I POSTROUTING 2 ...`: which flag is the
//! command, which token its chain, which its position) is read by masqctl
//! (`control::cli`), the one command-line parser: it sends the table, the chain and the
//! spec tokens as they were typed, and masqd reads them here. Tests that start from a
//! command line go through that same parser (`control_plane::rules` has them).
//!
//! Every error is a [`ParseError`]: the line (files only; the caller adds the file name),
//! the offending token and what was expected instead. Every entry point takes text or
//! tokens and returns an error for anything it does not understand; none panics (the
//! proptests at the foot of [`spec`] and [`save`] feed them arbitrary input).

use std::fmt;

use super::rule::{Chain, Policy, RuleProblem, Table, TARGET_NAMES};

pub mod command;
pub mod save;
pub mod spec;
pub mod tokenize;

pub use command::{parse_chain, parse_policy, parse_rule_spec, parse_table};
pub use save::TablesSeen;
pub use spec::parse_rule;
pub use tokenize::tokenize;

/// A rule or file that could not be read: where, and what went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number in a rules file; `None` for command lines and end of file.
    pub line: Option<usize>,
    /// What went wrong.
    pub kind: ParseErrorKind,
}

impl ParseError {
    /// An error on `line` of a file.
    pub fn at(line: usize, kind: ParseErrorKind) -> ParseError {
        ParseError { line: Some(line), kind }
    }
}

impl From<ParseErrorKind> for ParseError {
    fn from(kind: ParseErrorKind) -> ParseError {
        ParseError { line: None, kind }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        self.kind.fmt(f)
    }
}

impl std::error::Error for ParseError {}

pub(super) const SPEC_OPTIONS: &str = "-i, -o, -s, -d, -p, -m, --sport, --dport, --icmp-type, --comment or -j";

/// What went wrong, with the offending token and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// A `"` with no closing `"`.
    #[error("unterminated quote (expected a closing \")")]
    UnterminatedQuote,
    /// `*mangle`, `-t raw`, `"table": "raw"`...
    #[error("unknown table \"{token}\" (expected nat, filter or raw)")]
    UnknownTable {
        /// The table name given.
        token: String,
    },
    /// A chain name that exists nowhere.
    #[error("unknown chain \"{token}\" in table {table} (expected {})", chain_list(*.table))]
    UnknownChain {
        /// The table.
        table: Table,
        /// The chain name given.
        token: String,
    },
    /// A chain of the other table (`-t filter -A POSTROUTING`).
    #[error("chain {chain} is not in table {table} (expected {}; {chain} is in table {})", chain_list(*.table), .chain.table())]
    ChainNotInTable {
        /// The table.
        table: Table,
        /// The chain, which belongs to the other table.
        chain: Chain,
    },
    /// INPUT or OUTPUT: masq forwards and has no local stack.
    #[error(
        "chain {token} is not supported: masq forwards only and has no local stack \
         (expected {} in table {table})", chain_list(*.table)
    )]
    UnsupportedChain {
        /// The table.
        table: Table,
        /// `INPUT` or `OUTPUT`.
        token: String,
    },
    /// `:NAME - [0:0]`, `-N NAME`.
    #[error("user-defined chain \"{token}\" is not supported (expected a builtin chain: PREROUTING, POSTROUTING or FORWARD)")]
    UserChain {
        /// The chain name.
        token: String,
    },
    /// A chain declared twice in one table.
    #[error("chain {chain} declared twice (expected one :{chain} line per table)")]
    DuplicateChain {
        /// The chain.
        chain: Chain,
    },
    /// A policy that is neither ACCEPT nor DROP.
    #[error("bad policy \"{token}\" (expected ACCEPT or DROP)")]
    BadPolicy {
        /// The policy given.
        token: String,
    },
    /// DROP as a nat chain's policy.
    #[error("policy {policy} is not allowed for nat chain {chain} (expected ACCEPT; drop in filter FORWARD)")]
    PolicyNotAllowed {
        /// The chain.
        chain: Chain,
        /// The policy refused.
        policy: Policy,
    },
    /// `-j` names no target masq knows.
    #[error("unknown target \"{token}\" (expected one of {})", TARGET_NAMES.join(", "))]
    UnknownTarget {
        /// The target name given.
        token: String,
    },
    /// `--helper` names no helper masq has.
    #[error("unknown helper \"{token}\" (expected ftp, tftp or irc)")]
    UnknownHelper {
        /// The helper name given.
        token: String,
    },
    /// An option masq does not know.
    #[error("unknown option \"{token}\" (expected {expected})")]
    UnknownOption {
        /// The option given.
        token: String,
        /// The options valid here.
        expected: &'static str,
    },
    /// A token where none (or another) was expected.
    #[error("unexpected \"{token}\" (expected {expected})")]
    UnexpectedToken {
        /// The token.
        token: String,
        /// What was expected instead.
        expected: &'static str,
    },
    /// An option at the end of the line, or followed by another option.
    #[error("{option} needs a value (expected {expected})")]
    MissingValue {
        /// The option.
        option: String,
        /// What its value looks like.
        expected: &'static str,
    },
    /// The same match or target option twice.
    #[error("{option} given twice (expected at most one {option} per rule)")]
    DuplicateOption {
        /// The option, in its short spelling.
        option: &'static str,
    },
    /// A malformed address or network.
    #[error("bad address \"{token}\" (expected an IPv4 address or network, e.g. 10.0.0.1 or 10.0.0.0/8)")]
    BadAddress {
        /// The text given.
        token: String,
    },
    /// An unknown protocol.
    #[error("unknown protocol \"{token}\" (expected tcp, udp, icmp, all or a number 0-255)")]
    BadProtocol {
        /// The text given.
        token: String,
    },
    /// `! -p all`, which would match nothing.
    #[error("\"! -p all\" matches nothing (expected ! before a specific protocol)")]
    NegatedAll,
    /// A malformed port or port range in `--sport`/`--dport`.
    #[error("bad port \"{token}\" (expected a port 0-65535 or a range FIRST:LAST with FIRST <= LAST)")]
    BadPort {
        /// The text given.
        token: String,
    },
    /// A malformed `--to-ports`.
    #[error("bad --to-ports \"{token}\" (expected PORT or FIRST-LAST, ports 1-65535, FIRST <= LAST)")]
    BadNatPorts {
        /// The text given.
        token: String,
    },
    /// A malformed `--to-source` / `--to-destination`.
    #[error("bad {option} \"{token}\" (expected ADDR[-ADDR][:PORT[-PORT]], e.g. 203.0.113.1-203.0.113.8:1024-65535)")]
    BadNatRange {
        /// `--to-source` or `--to-destination`.
        option: &'static str,
        /// The text given.
        token: String,
    },
    /// A malformed `--icmp-type`.
    #[error("bad ICMP type \"{token}\" (expected a type number 0-255 or a name such as echo-request; codes are not matched)")]
    BadIcmpType {
        /// The text given.
        token: String,
    },
    /// `-i`/`-o` naming no configured port.
    #[error("unknown interface \"{token}\" (expected {})", port_list(.known))]
    UnknownInterface {
        /// The name or pattern given.
        token: String,
        /// The configured port names.
        known: Vec<String>,
    },
    /// `-m` naming an unsupported match module.
    #[error("unknown match \"{token}\" (expected tcp, udp, icmp or comment)")]
    UnknownMatch {
        /// The module name given.
        token: String,
    },
    /// `-m tcp` without `-p tcp` (likewise udp, icmp).
    #[error("-m {module} needs -p {module} before it")]
    MatchNeedsProtocol {
        /// The module.
        module: &'static str,
    },
    /// `--comment` without `-m comment`.
    #[error("--comment needs -m comment before it")]
    CommentNeedsMatch,
    /// `!` before an option that cannot be inverted.
    #[error("\"!\" cannot invert {token} (expected ! before -i, -o, -s, -d, -p, --sport, --dport or --icmp-type)")]
    NegationMisplaced {
        /// The option after the `!`.
        token: String,
    },
    /// `!` with nothing after it, or `! !`.
    #[error("dangling \"!\" (expected an option such as -s after it)")]
    DanglingNegation,
    /// A rule with no `-j`.
    #[error("rule has no target (expected -j TARGET)")]
    MissingTarget,
    /// SNAT without `--to-source`, DNAT without `--to-destination`.
    #[error("{target} needs {option}")]
    MissingTargetOption {
        /// The target.
        target: &'static str,
        /// The required option.
        option: &'static str,
    },
    /// A target option without its target (`--to-source` after `-j DNAT`).
    #[error("{option} is not an option of the target here (expected it after {expected})")]
    TargetOptionMisplaced {
        /// The option.
        option: &'static str,
        /// The target(s) it belongs to.
        expected: &'static str,
    },
    /// A match or target that cannot live in the chain.
    #[error(transparent)]
    Rule(#[from] RuleProblem),
    /// `[packets:bytes]` malformed.
    #[error("bad counters \"{token}\" (expected [PACKETS:BYTES])")]
    BadCounters {
        /// The text given.
        token: String,
    },
    /// A table opened twice in one file.
    #[error("table {table} appears twice (expected each table once)")]
    DuplicateTable {
        /// The table.
        table: Table,
    },
    /// A table not closed by COMMIT.
    #[error("missing COMMIT for table {table}")]
    MissingCommit {
        /// The table left open.
        table: Table,
    },
    /// A chain line, rule or COMMIT before `*table`.
    #[error("\"{token}\" outside a table (expected *nat or *filter before it)")]
    OutsideTable {
        /// The first token of the line.
        token: String,
    },
    /// A line that is none of the file's line kinds.
    #[error(
        "unexpected line starting \"{token}\" (expected *TABLE, :CHAIN POLICY, -A CHAIN RULE, COMMIT or a # comment)"
    )]
    UnexpectedLine {
        /// The first token of the line.
        token: String,
    },
}

fn chain_list(table: Table) -> &'static str {
    match table {
        Table::Nat => "PREROUTING or POSTROUTING",
        Table::Filter => "FORWARD",
        Table::Raw => "PREROUTING",
    }
}

fn port_list(known: &[String]) -> String {
    if known.is_empty() {
        "a configured port, but none are configured".to_string()
    } else {
        format!("one of the configured ports: {}", known.join(", "))
    }
}

impl ParseErrorKind {
    /// The token of the input the error is about, when it names one (a control request
    /// points its `field` at it: `spec[3]`).
    pub fn token(&self) -> Option<&str> {
        use ParseErrorKind as K;
        match self {
            K::UnknownInterface { token, .. }
            | K::UnknownTarget { token }
            | K::UnknownHelper { token }
            | K::UnknownOption { token, .. }
            | K::UnexpectedToken { token, .. }
            | K::BadAddress { token }
            | K::BadProtocol { token }
            | K::BadPort { token }
            | K::BadNatPorts { token }
            | K::BadNatRange { token, .. }
            | K::BadIcmpType { token }
            | K::UnknownMatch { token }
            | K::NegationMisplaced { token } => Some(token),
            K::MissingValue { option, .. } => Some(option),
            _ => None,
        }
    }
}
