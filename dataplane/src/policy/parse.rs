//! Reading rules: the iptables-save file format and iptables-style command lines.
//!
//! Three doors share one rule-spec parser, so a rule means the same thing wherever it
//! is written:
//!
//! - [`tokenize`] splits a line as iptables-restore does (`"..."` groups, `\"` and `\\`
//!   escape inside quotes);
//! - [`parse_rule`] reads `-A CHAIN spec...` (one line of a rules file);
//! - [`parse_command`] reads a whole masqctl command line (`-t nat -I POSTROUTING 2 ...`);
//! - [`RuleSet::parse_save`](super::RuleSet::parse_save) reads a file, adding line numbers
//!   to errors.
//!
//! Every error is a [`ParseError`]: the line (files only; the caller adds the file name),
//! the offending token and what was expected instead.

use std::fmt;
use std::net::Ipv4Addr;

use super::rule::{
    AddrRange, Chain, Cidr, Iface, Matches, Negatable, Policy, PortRange, Protocol, Rule, RuleProblem, Table, Target,
    TARGET_NAMES,
};
use super::ruleset::{Command, ListOptions, RuleSet};

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

const SPEC_OPTIONS: &str = "-i, -o, -s, -d, -p, -m, --sport, --dport, --icmp-type, --comment or -j";
const COMMANDS: &str = "-A, -I, -D, -F, -P, -L or -S";

/// What went wrong, with the offending token and what was expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// A `"` with no closing `"`.
    #[error("unterminated quote (expected a closing \")")]
    UnterminatedQuote,
    /// `*mangle`, `-t raw`...
    #[error("unknown table \"{token}\" (expected nat or filter)")]
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
    #[error("chain {chain} is not in table {table} (expected {}; {chain} is in -t {})", chain_list(*.table), .chain.table())]
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
    /// A command line with no command.
    #[error("no command given (expected one of {COMMANDS})")]
    NoCommand,
    /// Two commands on one command line.
    #[error("cannot use {second} with {first} (expected one command: {COMMANDS})")]
    TwoCommands {
        /// The first command.
        first: &'static str,
        /// The second command.
        second: &'static str,
    },
    /// A rule number that is not a positive integer.
    #[error("bad rule number \"{token}\" (expected a position from 1)")]
    BadRuleNumber {
        /// The text given.
        token: String,
    },
    /// A list flag (`-n`, `-v`, `--line-numbers`) with a command that does not list.
    #[error("{option} is only valid with -L or -S")]
    ListFlagWithoutList {
        /// The flag.
        option: &'static str,
    },
}

fn chain_list(table: Table) -> &'static str {
    match table {
        Table::Nat => "PREROUTING or POSTROUTING",
        Table::Filter => "FORWARD",
    }
}

fn port_list(known: &[String]) -> String {
    if known.is_empty() {
        "a configured port, but none are configured".to_string()
    } else {
        format!("one of the configured ports: {}", known.join(", "))
    }
}

/// Split a line into tokens as iptables-restore does: whitespace separates, `"..."`
/// groups (so `--comment "allow ssh"` is two tokens), and inside quotes `\"` and `\\`
/// stand for `"` and `\`. `""` is an empty token.
pub fn tokenize(line: &str) -> Result<Vec<String>, ParseErrorKind> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut in_token = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' => quoted = false,
                '\\' => match chars.next() {
                    Some(e @ ('"' | '\\')) => current.push(e),
                    Some(other) => {
                        current.push('\\');
                        current.push(other);
                    }
                    None => return Err(ParseErrorKind::UnterminatedQuote),
                },
                c => current.push(c),
            }
        } else if c.is_whitespace() {
            if in_token {
                tokens.push(std::mem::take(&mut current));
                in_token = false;
            }
        } else if c == '"' {
            quoted = true;
            in_token = true;
        } else {
            current.push(c);
            in_token = true;
        }
    }
    if quoted {
        return Err(ParseErrorKind::UnterminatedQuote);
    }
    if in_token {
        tokens.push(current);
    }
    Ok(tokens)
}

/// Read one `-A CHAIN spec...` rule for `table` (one line of a rules file, tokenized).
/// Interfaces are checked against `known_ports`, the configured port names.
pub fn parse_rule(table: Table, tokens: &[&str], known_ports: &[&str]) -> Result<(Chain, Rule), ParseError> {
    match tokens {
        [] => Err(ParseErrorKind::UnexpectedLine { token: String::new() }.into()),
        ["-A" | "--append"] => {
            Err(ParseErrorKind::MissingValue { option: tokens[0].to_string(), expected: "a chain name" }.into())
        }
        ["-A" | "--append", chain, spec @ ..] => {
            let chain = resolve_chain(table, chain)?;
            let rule = parse_spec(chain, spec, known_ports)?;
            Ok((chain, rule))
        }
        [other, ..] => Err(ParseErrorKind::UnexpectedToken { token: other.to_string(), expected: "-A CHAIN" }.into()),
    }
}

/// The chain `name` of `table`, or why not.
fn resolve_chain(table: Table, name: &str) -> Result<Chain, ParseErrorKind> {
    if let Some(chain) = table.chain(name) {
        return Ok(chain);
    }
    if let Some(chain) = Chain::ALL.into_iter().find(|c| c.name() == name) {
        return Err(ParseErrorKind::ChainNotInTable { table, chain });
    }
    if table.local_chains().contains(&name) {
        return Err(ParseErrorKind::UnsupportedChain { table, token: name.to_string() });
    }
    Err(ParseErrorKind::UnknownChain { table, token: name.to_string() })
}

/// The options of a rule spec, by their short spelling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    InIface,
    OutIface,
    Src,
    Dst,
    Proto,
    Match,
    SrcPort,
    DstPort,
    IcmpType,
    Comment,
    Jump,
    ToPorts,
    ToSource,
    ToDestination,
    Random,
}

impl Opt {
    fn from_token(token: &str) -> Option<Opt> {
        Some(match token {
            "-i" | "--in-interface" => Opt::InIface,
            "-o" | "--out-interface" => Opt::OutIface,
            "-s" | "--source" | "--src" => Opt::Src,
            "-d" | "--destination" | "--dst" => Opt::Dst,
            "-p" | "--protocol" => Opt::Proto,
            "-m" | "--match" => Opt::Match,
            "--sport" | "--source-port" => Opt::SrcPort,
            "--dport" | "--destination-port" => Opt::DstPort,
            "--icmp-type" => Opt::IcmpType,
            "--comment" => Opt::Comment,
            "-j" | "--jump" => Opt::Jump,
            "--to-ports" => Opt::ToPorts,
            "--to-source" => Opt::ToSource,
            "--to-destination" => Opt::ToDestination,
            "--random" => Opt::Random,
            _ => return None,
        })
    }

    /// The canonical spelling, for messages.
    const fn name(self) -> &'static str {
        match self {
            Opt::InIface => "-i",
            Opt::OutIface => "-o",
            Opt::Src => "-s",
            Opt::Dst => "-d",
            Opt::Proto => "-p",
            Opt::Match => "-m",
            Opt::SrcPort => "--sport",
            Opt::DstPort => "--dport",
            Opt::IcmpType => "--icmp-type",
            Opt::Comment => "--comment",
            Opt::Jump => "-j",
            Opt::ToPorts => "--to-ports",
            Opt::ToSource => "--to-source",
            Opt::ToDestination => "--to-destination",
            Opt::Random => "--random",
        }
    }

    const fn takes_value(self) -> bool {
        !matches!(self, Opt::Random)
    }

    const fn negatable(self) -> bool {
        matches!(
            self,
            Opt::InIface
                | Opt::OutIface
                | Opt::Src
                | Opt::Dst
                | Opt::Proto
                | Opt::SrcPort
                | Opt::DstPort
                | Opt::IcmpType
        )
    }

    /// What the value looks like, for "needs a value" messages.
    const fn value_hint(self) -> &'static str {
        match self {
            Opt::InIface | Opt::OutIface => "a port name, or a prefix ending in +",
            Opt::Src | Opt::Dst => "an IPv4 address or network",
            Opt::Proto => "tcp, udp, icmp, all or a number",
            Opt::Match => "tcp, udp, icmp or comment",
            Opt::SrcPort | Opt::DstPort => "a port or FIRST:LAST",
            Opt::IcmpType => "an ICMP type",
            Opt::Comment => "a comment text",
            Opt::Jump => "a target",
            Opt::ToPorts => "PORT or FIRST-LAST",
            Opt::ToSource | Opt::ToDestination => "ADDR[-ADDR][:PORT[-PORT]]",
            Opt::Random => "nothing",
        }
    }
}

/// The state of one rule spec being read.
struct SpecParser<'a> {
    chain: Chain,
    known_ports: &'a [&'a str],
    matches: Matches,
    comment_loaded: bool,
    comment: Option<String>,
    target: Option<Target>,
    /// SNAT/DNAT got their `--to-...` option.
    nat_addrs_given: bool,
}

/// Read the rule spec `tokens` (everything after `-A CHAIN`) for `chain`.
pub(crate) fn parse_spec(chain: Chain, tokens: &[&str], known_ports: &[&str]) -> Result<Rule, ParseErrorKind> {
    let mut p = SpecParser {
        chain,
        known_ports,
        matches: Matches::default(),
        comment_loaded: false,
        comment: None,
        target: None,
        nat_addrs_given: false,
    };
    let mut negated = false;
    let mut rest = tokens.iter();
    while let Some(&token) = rest.next() {
        if token == "!" {
            if negated {
                return Err(ParseErrorKind::DanglingNegation);
            }
            negated = true;
            continue;
        }
        let Some(opt) = Opt::from_token(token) else {
            return Err(if token.starts_with('-') {
                ParseErrorKind::UnknownOption {
                    token: token.to_string(),
                    expected: if p.target.is_some() {
                        "an option of the target, or one of -i, -o, -s, -d, -p, -m, --sport, --dport, --icmp-type, --comment"
                    } else {
                        SPEC_OPTIONS
                    },
                }
            } else {
                ParseErrorKind::UnexpectedToken { token: token.to_string(), expected: "an option such as -s, -p or -j" }
            });
        };
        if negated && !opt.negatable() {
            return Err(ParseErrorKind::NegationMisplaced { token: token.to_string() });
        }
        let value = if opt.takes_value() {
            match rest.next() {
                // Only a comment may look like an option; anything else starting with
                // '-' is the next option and this one's value is missing.
                Some(&v) if opt == Opt::Comment || !v.starts_with('-') || v == "-" => v,
                _ => {
                    return Err(ParseErrorKind::MissingValue { option: token.to_string(), expected: opt.value_hint() })
                }
            }
        } else {
            ""
        };
        p.option(opt, negated, value)?;
        negated = false;
    }
    if negated {
        return Err(ParseErrorKind::DanglingNegation);
    }
    let target = p.target.ok_or(ParseErrorKind::MissingTarget)?;
    if !p.nat_addrs_given {
        match target {
            Target::Snat { .. } => {
                return Err(ParseErrorKind::MissingTargetOption { target: "SNAT", option: "--to-source" })
            }
            Target::Dnat { .. } => {
                return Err(ParseErrorKind::MissingTargetOption { target: "DNAT", option: "--to-destination" })
            }
            _ => {}
        }
    }
    let rule = Rule { matches: p.matches, target, comment: p.comment };
    rule.check(chain)?;
    Ok(rule)
}

/// Store a match, refusing a second one.
fn set_once<T>(slot: &mut Option<T>, opt: Opt, value: T) -> Result<(), ParseErrorKind> {
    if slot.is_some() {
        return Err(ParseErrorKind::DuplicateOption { option: opt.name() });
    }
    *slot = Some(value);
    Ok(())
}

impl SpecParser<'_> {
    fn option(&mut self, opt: Opt, negated: bool, value: &str) -> Result<(), ParseErrorKind> {
        fn neg<T>(negated: bool, value: T) -> Negatable<T> {
            Negatable { negated, value }
        }
        match opt {
            Opt::InIface | Opt::OutIface => {
                let refused = match opt {
                    Opt::InIface => self.chain == Chain::Postrouting,
                    _ => self.chain == Chain::Prerouting,
                };
                if refused {
                    return Err(RuleProblem::InterfaceNotAllowed { option: opt.name(), chain: self.chain }.into());
                }
                let iface = self.interface(value)?;
                let slot = if opt == Opt::InIface { &mut self.matches.in_iface } else { &mut self.matches.out_iface };
                set_once(slot, opt, neg(negated, iface))
            }
            Opt::Src | Opt::Dst => {
                let cidr = parse_cidr(value)?;
                let slot = if opt == Opt::Src { &mut self.matches.src } else { &mut self.matches.dst };
                if slot.is_some() {
                    return Err(ParseErrorKind::DuplicateOption { option: opt.name() });
                }
                // `-s 0.0.0.0/0` matches everything; iptables stores (and saves) it as no
                // match at all, and so does masq. `! -s 0.0.0.0/0` is kept.
                if negated || cidr.prefix() != 0 {
                    *slot = Some(neg(negated, cidr));
                }
                Ok(())
            }
            Opt::Proto => {
                if self.matches.proto.is_some() {
                    return Err(ParseErrorKind::DuplicateOption { option: "-p" });
                }
                match parse_protocol(value)? {
                    Some(proto) => self.matches.proto = Some(neg(negated, proto)),
                    None if negated => return Err(ParseErrorKind::NegatedAll),
                    None => {}
                }
                Ok(())
            }
            Opt::Match => self.load_match(value),
            Opt::SrcPort | Opt::DstPort => {
                if self.matches.port_protocol().is_none() {
                    return Err(RuleProblem::NeedsTcpOrUdp { option: opt.name() }.into());
                }
                let range = parse_match_ports(value)?;
                let slot = if opt == Opt::SrcPort { &mut self.matches.src_port } else { &mut self.matches.dst_port };
                set_once(slot, opt, neg(negated, range))
            }
            Opt::IcmpType => {
                if !self.matches.is_icmp() {
                    return Err(RuleProblem::NeedsIcmp.into());
                }
                let ty = parse_icmp_type(value)?;
                set_once(&mut self.matches.icmp_type, opt, neg(negated, ty))
            }
            Opt::Comment => {
                if !self.comment_loaded {
                    return Err(ParseErrorKind::CommentNeedsMatch);
                }
                set_once(&mut self.comment, opt, value.to_string())
            }
            Opt::Jump => {
                if self.target.is_some() {
                    return Err(ParseErrorKind::DuplicateOption { option: "-j" });
                }
                let target = parse_target_name(value)?;
                if !target.allowed_in(self.chain) {
                    // Report the chain problem now, before missing target options.
                    Rule::new(target).check(self.chain)?;
                }
                self.target = Some(target);
                Ok(())
            }
            Opt::ToPorts => {
                let ports =
                    parse_nat_ports(value).ok_or_else(|| ParseErrorKind::BadNatPorts { token: value.into() })?;
                if !matches!(self.target, Some(Target::Masquerade { .. } | Target::Redirect { .. })) {
                    return Err(ParseErrorKind::TargetOptionMisplaced {
                        option: "--to-ports",
                        expected: "-j MASQUERADE or -j REDIRECT",
                    });
                }
                self.check_port_protocol("--to-ports")?;
                match &mut self.target {
                    Some(Target::Masquerade { ports: slot, .. } | Target::Redirect { ports: slot }) => {
                        set_once(slot, opt, ports)
                    }
                    _ => Ok(()),
                }
            }
            Opt::Random => match &mut self.target {
                Some(Target::Masquerade { random, .. }) => {
                    if *random {
                        return Err(ParseErrorKind::DuplicateOption { option: "--random" });
                    }
                    *random = true;
                    Ok(())
                }
                _ => Err(ParseErrorKind::TargetOptionMisplaced { option: "--random", expected: "-j MASQUERADE" }),
            },
            Opt::ToSource | Opt::ToDestination => {
                let (option, expected) =
                    if opt == Opt::ToSource { ("--to-source", "-j SNAT") } else { ("--to-destination", "-j DNAT") };
                let wanted = matches!(
                    (opt, &self.target),
                    (Opt::ToSource, Some(Target::Snat { .. })) | (Opt::ToDestination, Some(Target::Dnat { .. }))
                );
                if !wanted {
                    return Err(ParseErrorKind::TargetOptionMisplaced { option, expected });
                }
                if self.nat_addrs_given {
                    return Err(ParseErrorKind::DuplicateOption { option });
                }
                let (range, range_ports) = parse_nat_range(value)
                    .ok_or_else(|| ParseErrorKind::BadNatRange { option, token: value.into() })?;
                if range_ports.is_some() {
                    self.check_port_protocol(option)?;
                }
                if let Some(Target::Snat { addrs, ports } | Target::Dnat { addrs, ports }) = &mut self.target {
                    *addrs = range;
                    *ports = range_ports;
                }
                self.nat_addrs_given = true;
                Ok(())
            }
        }
    }

    fn check_port_protocol(&self, option: &'static str) -> Result<(), ParseErrorKind> {
        match self.matches.port_protocol() {
            Some(_) => Ok(()),
            None => Err(RuleProblem::NeedsTcpOrUdp { option }.into()),
        }
    }

    fn interface(&self, value: &str) -> Result<Iface, ParseErrorKind> {
        let unknown = || ParseErrorKind::UnknownInterface {
            token: value.to_string(),
            known: self.known_ports.iter().map(|s| s.to_string()).collect(),
        };
        let iface = Iface::parse(value).ok_or_else(unknown)?;
        if self.known_ports.iter().any(|port| iface.matches(port)) {
            Ok(iface)
        } else {
            Err(unknown())
        }
    }

    fn load_match(&mut self, module: &str) -> Result<(), ParseErrorKind> {
        let needs = |proto: Protocol, module: &'static str| {
            if self.matches.proto == Some(Negatable::is(proto)) {
                Ok(())
            } else {
                Err(ParseErrorKind::MatchNeedsProtocol { module })
            }
        };
        match module {
            // iptables-save writes these after -p; the options they bring are always on.
            "tcp" => needs(Protocol::Tcp, "tcp"),
            "udp" => needs(Protocol::Udp, "udp"),
            "icmp" => needs(Protocol::Icmp, "icmp"),
            "comment" => {
                self.comment_loaded = true;
                Ok(())
            }
            other => Err(ParseErrorKind::UnknownMatch { token: other.to_string() }),
        }
    }
}

fn parse_target_name(name: &str) -> Result<Target, ParseErrorKind> {
    // SNAT/DNAT get their pool from --to-source/--to-destination; the placeholder is
    // replaced (or the rule refused) before it leaves the parser.
    let placeholder = AddrRange::single(Ipv4Addr::UNSPECIFIED);
    Ok(match name {
        "ACCEPT" => Target::Accept,
        "DROP" => Target::Drop,
        "RETURN" => Target::Return,
        "MASQUERADE" => Target::Masquerade { ports: None, random: false },
        "SNAT" => Target::Snat { addrs: placeholder, ports: None },
        "DNAT" => Target::Dnat { addrs: placeholder, ports: None },
        "REDIRECT" => Target::Redirect { ports: None },
        other => return Err(ParseErrorKind::UnknownTarget { token: other.to_string() }),
    })
}

/// `A.B.C.D`, `A.B.C.D/N` or `A.B.C.D/M.M.M.M` (a contiguous netmask).
fn parse_cidr(text: &str) -> Result<Cidr, ParseErrorKind> {
    let bad = || ParseErrorKind::BadAddress { token: text.to_string() };
    let (addr, prefix) = match text.split_once('/') {
        None => (text, 32),
        Some((addr, len)) => {
            let prefix = if len.contains('.') {
                let mask = u32::from(len.parse::<Ipv4Addr>().map_err(|_| bad())?);
                if mask.leading_ones() + mask.trailing_zeros() != 32 {
                    return Err(bad());
                }
                mask.leading_ones() as u8
            } else {
                parse_decimal(len).filter(|&n| n <= 32).ok_or_else(bad)? as u8
            };
            (addr, prefix)
        }
    };
    let addr = addr.parse::<Ipv4Addr>().map_err(|_| bad())?;
    Cidr::new(addr, prefix).ok_or_else(bad)
}

/// Plain decimal digits only (no sign, no spaces), at most 10 of them.
fn parse_decimal(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_u16(text: &str) -> Option<u16> {
    parse_decimal(text).and_then(|n| u16::try_from(n).ok())
}

/// `tcp`, `udp`, `icmp`, `all` (any case) or a number; `None` means all.
fn parse_protocol(text: &str) -> Result<Option<Protocol>, ParseErrorKind> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Some(Protocol::Tcp)),
        "udp" => Ok(Some(Protocol::Udp)),
        "icmp" => Ok(Some(Protocol::Icmp)),
        "all" => Ok(None),
        n => parse_decimal(n)
            .and_then(|n| u8::try_from(n).ok())
            .map(Protocol::from_number)
            .ok_or_else(|| ParseErrorKind::BadProtocol { token: text.to_string() }),
    }
}

/// `--sport`/`--dport`: `P`, `A:B`, `A:` (to 65535) or `:B` (from 0).
fn parse_match_ports(text: &str) -> Result<PortRange, ParseErrorKind> {
    let range = match text.split_once(':') {
        None => parse_u16(text).map(PortRange::single),
        Some((a, b)) => {
            let first = if a.is_empty() { Some(0) } else { parse_u16(a) };
            let last = if b.is_empty() { Some(u16::MAX) } else { parse_u16(b) };
            match (first, last, a.is_empty() && b.is_empty()) {
                (Some(first), Some(last), false) => PortRange::new(first, last),
                _ => None,
            }
        }
    };
    range.ok_or_else(|| ParseErrorKind::BadPort { token: text.to_string() })
}

/// A translation port range `P` or `A-B`, ports 1 to 65535.
fn parse_nat_ports(text: &str) -> Option<PortRange> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (first, last) = (parse_u16(a)?, parse_u16(b)?);
    if first == 0 {
        return None;
    }
    PortRange::new(first, last)
}

/// `ADDR[-ADDR][:PORT[-PORT]]`.
fn parse_nat_range(text: &str) -> Option<(AddrRange, Option<PortRange>)> {
    let (addrs, ports) = match text.split_once(':') {
        Some((addrs, ports)) => (addrs, Some(parse_nat_ports(ports)?)),
        None => (text, None),
    };
    let (a, b) = addrs.split_once('-').unwrap_or((addrs, addrs));
    let range = AddrRange::new(a.parse().ok()?, b.parse().ok()?)?;
    Some((range, ports))
}

/// ICMP type names iptables knows that name a whole type (no code).
const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("pong", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("ping", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("ttl-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];

/// `--icmp-type`: a number 0-255 or a name from [`ICMP_TYPES`].
fn parse_icmp_type(text: &str) -> Result<u8, ParseErrorKind> {
    parse_decimal(text)
        .and_then(|n| u8::try_from(n).ok())
        .or_else(|| ICMP_TYPES.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)).map(|&(_, ty)| ty))
        .ok_or_else(|| ParseErrorKind::BadIcmpType { token: text.to_string() })
}

/// The command-level options of a masqctl command line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CommandKind {
    Append,
    Insert,
    Delete,
    Flush,
    Policy,
    List,
    ListRules,
}

impl CommandKind {
    fn from_token(token: &str) -> Option<CommandKind> {
        Some(match token {
            "-A" | "--append" => CommandKind::Append,
            "-I" | "--insert" => CommandKind::Insert,
            "-D" | "--delete" => CommandKind::Delete,
            "-F" | "--flush" => CommandKind::Flush,
            "-P" | "--policy" => CommandKind::Policy,
            "-L" | "--list" => CommandKind::List,
            "-S" | "--list-rules" => CommandKind::ListRules,
            _ => return None,
        })
    }

    const fn name(self) -> &'static str {
        match self {
            CommandKind::Append => "-A",
            CommandKind::Insert => "-I",
            CommandKind::Delete => "-D",
            CommandKind::Flush => "-F",
            CommandKind::Policy => "-P",
            CommandKind::List => "-L",
            CommandKind::ListRules => "-S",
        }
    }
}

/// Expand grouped short flags as getopt does: `-nvL` is `-n -v -L`. Only the flag
/// letters that take no value may be grouped, and an option's value (a comment) is
/// never expanded.
fn expand_flags(args: &[String]) -> Vec<&str> {
    const GROUPABLE: [&str; 5] = ["-n", "-v", "-L", "-S", "-F"];
    let mut out = Vec::with_capacity(args.len());
    let mut is_value = false;
    for arg in args {
        let letters = arg.strip_prefix('-').filter(|rest| {
            !is_value && rest.len() > 1 && !rest.starts_with('-') && rest.bytes().all(|b| b"nvLSF".contains(&b))
        });
        is_value = Opt::from_token(arg).is_some_and(Opt::takes_value);
        match letters {
            Some(letters) => out.extend(
                letters.bytes().map(|b| GROUPABLE.iter().copied().find(|flag| flag.as_bytes()[1] == b).unwrap_or("-n")),
            ),
            None => out.push(arg.as_str()),
        }
    }
    out
}

fn is_chain_arg(token: Option<&&str>) -> bool {
    token.is_some_and(|t| !t.starts_with('-') && *t != "!")
}

fn parse_position(token: &str) -> Result<usize, ParseErrorKind> {
    parse_decimal(token)
        .filter(|&n| n >= 1)
        .map(|n| n as usize)
        .ok_or_else(|| ParseErrorKind::BadRuleNumber { token: token.to_string() })
}

fn is_number(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit())
}

/// Read a masqctl command line in iptables' language (without the program name):
/// `-t TABLE` (default `filter`) and one of `-A CHAIN spec`, `-I CHAIN [N] spec`,
/// `-D CHAIN N`, `-D CHAIN spec`, `-F [CHAIN]`, `-P CHAIN POLICY`, `-L [CHAIN]` (with
/// `-n`, `-v`, `--line-numbers`), `-S [CHAIN]`. Options may come in any order, and
/// short flags may be grouped (`-nvL`). Interfaces are checked against `known_ports`.
pub fn parse_command(args: &[String], known_ports: &[&str]) -> Result<Command, ParseError> {
    parse_command_kind(args, known_ports).map_err(ParseError::from)
}

fn parse_command_kind(args: &[String], known_ports: &[&str]) -> Result<Command, ParseErrorKind> {
    let args = expand_flags(args);
    let mut table: Option<Table> = None;
    let mut command: Option<CommandKind> = None;
    let mut chain_arg: Option<&str> = None;
    let mut number: Option<&str> = None;
    let mut policy_arg: Option<&str> = None;
    let mut options = ListOptions::default();
    let mut list_flag: Option<&'static str> = None;
    let mut spec: Vec<&str> = Vec::new();

    let mut i = 0;
    while i < args.len() {
        let token = args[i];
        i += 1;
        let next = args.get(i);
        if let Some(kind) = CommandKind::from_token(token) {
            if let Some(first) = command {
                return Err(ParseErrorKind::TwoCommands { first: first.name(), second: kind.name() });
            }
            command = Some(kind);
            let chain_required =
                matches!(kind, CommandKind::Append | CommandKind::Insert | CommandKind::Delete | CommandKind::Policy);
            if is_chain_arg(next) {
                chain_arg = next.copied();
                i += 1;
            } else if chain_required {
                return Err(ParseErrorKind::MissingValue { option: token.to_string(), expected: "a chain name" });
            }
            match kind {
                CommandKind::Insert | CommandKind::Delete => {
                    if let Some(&n) = args.get(i).filter(|t| is_number(t)) {
                        number = Some(n);
                        i += 1;
                    }
                }
                CommandKind::Policy => match args.get(i) {
                    Some(&p) if !p.starts_with('-') => {
                        policy_arg = Some(p);
                        i += 1;
                    }
                    _ => {
                        return Err(ParseErrorKind::MissingValue {
                            option: token.to_string(),
                            expected: "a chain and a policy, ACCEPT or DROP",
                        })
                    }
                },
                _ => {}
            }
            continue;
        }
        match token {
            "-t" | "--table" => {
                let name = next.filter(|t| !t.starts_with('-')).ok_or_else(|| ParseErrorKind::MissingValue {
                    option: token.to_string(),
                    expected: "nat or filter",
                })?;
                if table.is_some() {
                    return Err(ParseErrorKind::DuplicateOption { option: "-t" });
                }
                table = Some(
                    Table::from_name(name).ok_or_else(|| ParseErrorKind::UnknownTable { token: name.to_string() })?,
                );
                i += 1;
            }
            "-n" | "--numeric" => {
                options.numeric = true;
                list_flag = Some("-n");
            }
            "-v" | "--verbose" => {
                options.verbose = true;
                list_flag = Some("-v");
            }
            "--line-numbers" => {
                options.line_numbers = true;
                list_flag = Some("--line-numbers");
            }
            _ => {
                // Part of the rule spec: keep an option's value with it, so a value is
                // never mistaken for a command option.
                spec.push(token);
                if let (Some(opt), Some(&value)) = (Opt::from_token(token), next) {
                    if opt.takes_value() && (opt == Opt::Comment || !value.starts_with('-')) {
                        spec.push(value);
                        i += 1;
                    }
                }
            }
        }
    }

    let kind = command.ok_or(ParseErrorKind::NoCommand)?;
    let table = table.unwrap_or(Table::Filter);
    let chain = chain_arg.map(|name| resolve_chain(table, name)).transpose()?;
    if let Some(option) = list_flag {
        if !matches!(kind, CommandKind::List | CommandKind::ListRules) {
            return Err(ParseErrorKind::ListFlagWithoutList { option });
        }
    }
    let no_spec = |spec: &[&str]| match spec.first() {
        None => Ok(()),
        Some(token) => Err(ParseErrorKind::UnexpectedToken {
            token: token.to_string(),
            expected: "nothing more after this command",
        }),
    };
    // `chain` is Some for every command whose chain_required is set above.
    let need_chain = || chain.ok_or(ParseErrorKind::NoCommand);
    Ok(match kind {
        CommandKind::Append => {
            Command::Append { chain: need_chain()?, rule: parse_spec(need_chain()?, &spec, known_ports)? }
        }
        CommandKind::Insert => Command::Insert {
            chain: need_chain()?,
            pos: number.map(parse_position).transpose()?.unwrap_or(1),
            rule: parse_spec(need_chain()?, &spec, known_ports)?,
        },
        CommandKind::Delete => match number {
            Some(n) => {
                no_spec(&spec)?;
                Command::DeleteAt { chain: need_chain()?, pos: parse_position(n)? }
            }
            None => {
                Command::DeleteMatching { chain: need_chain()?, rule: parse_spec(need_chain()?, &spec, known_ports)? }
            }
        },
        CommandKind::Flush => {
            no_spec(&spec)?;
            Command::Flush { table, chain }
        }
        CommandKind::Policy => {
            no_spec(&spec)?;
            let chain = need_chain()?;
            let token = policy_arg.unwrap_or_default();
            let policy =
                Policy::from_name(token).ok_or_else(|| ParseErrorKind::BadPolicy { token: token.to_string() })?;
            if !chain.allows_policy(policy) {
                return Err(ParseErrorKind::PolicyNotAllowed { chain, policy });
            }
            Command::SetPolicy { chain, policy }
        }
        CommandKind::List => {
            no_spec(&spec)?;
            Command::List { table, chain, options }
        }
        CommandKind::ListRules => {
            no_spec(&spec)?;
            Command::ListRules { table, chain }
        }
    })
}

/// Which tables a rules file contained (iptables-restore replaces only those).
pub(crate) type TablesSeen = [bool; 2];

/// Read a whole iptables-save file. Errors carry the line number.
pub(crate) fn parse_save(text: &str, known_ports: &[&str]) -> Result<(RuleSet, TablesSeen), ParseError> {
    let mut rules = RuleSet::default();
    let mut seen: TablesSeen = [false; 2];
    let mut open: Option<Table> = None;
    let mut declared = [false; Chain::ALL.len()];

    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let at = |kind| ParseError::at(line, kind);
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if let Some(name) = trimmed.strip_prefix('*') {
            if let Some(table) = open {
                return Err(at(ParseErrorKind::MissingCommit { table }));
            }
            let table = Table::from_name(name.trim())
                .ok_or_else(|| at(ParseErrorKind::UnknownTable { token: name.trim().to_string() }))?;
            if std::mem::replace(&mut seen[table as usize], true) {
                return Err(at(ParseErrorKind::DuplicateTable { table }));
            }
            open = Some(table);
            continue;
        }
        let owned = tokenize(trimmed).map_err(at)?;
        let mut tokens: Vec<&str> = owned.iter().map(String::as_str).collect();
        let first = tokens.first().copied().unwrap_or_default();
        if first.starts_with('[') {
            // `iptables-save -c` puts [packets:bytes] before each rule.
            parse_counters(first).map_err(at)?;
            tokens.remove(0);
        }
        let first = tokens.first().copied().unwrap_or_default();
        let Some(table) = open else {
            return Err(at(ParseErrorKind::OutsideTable { token: first.to_string() }));
        };
        if tokens == ["COMMIT"] {
            open = None;
            continue;
        }
        if let Some(name) = first.strip_prefix(':') {
            let chain = parse_chain_line(table, name, &tokens[1..]).map_err(at)?;
            let (chain, policy) = chain;
            if std::mem::replace(&mut declared[chain.index()], true) {
                return Err(at(ParseErrorKind::DuplicateChain { chain }));
            }
            rules.set_policy(chain, policy).map_err(|_| at(ParseErrorKind::PolicyNotAllowed { chain, policy }))?;
            continue;
        }
        match first {
            "-A" | "--append" => {
                let (chain, rule) = parse_rule(table, &tokens, known_ports).map_err(|e| at(e.kind))?;
                rules.push_checked(chain, rule).map_err(|p| at(p.into()))?;
            }
            "-N" | "--new-chain" => {
                return Err(at(ParseErrorKind::UserChain {
                    token: tokens.get(1).copied().unwrap_or_default().to_string(),
                }))
            }
            _ => return Err(at(ParseErrorKind::UnexpectedLine { token: first.to_string() })),
        }
    }
    if let Some(table) = open {
        return Err(ParseErrorKind::MissingCommit { table }.into());
    }
    Ok((rules, seen))
}

/// `:CHAIN POLICY [packets:bytes]`, the tokens after `:CHAIN`.
fn parse_chain_line(table: Table, name: &str, rest: &[&str]) -> Result<(Chain, Policy), ParseErrorKind> {
    let policy_token = rest.first().copied().unwrap_or_default();
    let chain = match resolve_chain(table, name) {
        Ok(chain) => chain,
        Err(ParseErrorKind::UnknownChain { .. }) if policy_token == "-" => {
            return Err(ParseErrorKind::UserChain { token: name.to_string() })
        }
        Err(e) => return Err(e),
    };
    let policy =
        Policy::from_name(policy_token).ok_or_else(|| ParseErrorKind::BadPolicy { token: policy_token.to_string() })?;
    if !chain.allows_policy(policy) {
        return Err(ParseErrorKind::PolicyNotAllowed { chain, policy });
    }
    match rest {
        [] | [_] => {}
        [_, counters] => parse_counters(counters)?,
        [_, _, extra, ..] => {
            return Err(ParseErrorKind::UnexpectedToken {
                token: extra.to_string(),
                expected: "end of line after :CHAIN POLICY [PACKETS:BYTES]",
            })
        }
    }
    Ok((chain, policy))
}

/// `[packets:bytes]`: checked, then ignored (masq counts in its own statistics).
fn parse_counters(token: &str) -> Result<(), ParseErrorKind> {
    let ok = token.strip_prefix('[').and_then(|t| t.strip_suffix(']')).and_then(|t| t.split_once(':')).is_some_and(
        |(p, b)| [p, b].iter().all(|n| !n.is_empty() && n.len() <= 20 && n.bytes().all(|c| c.is_ascii_digit())),
    );
    if ok {
        Ok(())
    } else {
        Err(ParseErrorKind::BadCounters { token: token.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PORTS: &[&str] = &["wan", "lan", "lan2"];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn rule(table: Table, line: &str) -> Result<(Chain, Rule), ParseError> {
        let tokens = tokenize(line).unwrap();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        parse_rule(table, &tokens, PORTS)
    }

    fn ok(table: Table, line: &str) -> Rule {
        rule(table, line).unwrap_or_else(|e| panic!("{line}: {e}")).1
    }

    fn err(table: Table, line: &str) -> String {
        match rule(table, line) {
            Ok(r) => panic!("{line} parsed as {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn cmd(line: &str) -> Result<Command, ParseError> {
        let args: Vec<String> = tokenize(line).unwrap();
        parse_command(&args, PORTS)
    }

    #[test]
    fn tokenizer_handles_quotes_and_escapes() {
        assert_eq!(tokenize("  -A  FORWARD\t-j ACCEPT ").unwrap(), ["-A", "FORWARD", "-j", "ACCEPT"]);
        assert_eq!(
            tokenize(r#"--comment "allow \"ssh\" \\ now" -j X"#).unwrap(),
            ["--comment", r#"allow "ssh" \ now"#, "-j", "X"]
        );
        assert_eq!(tokenize(r#"a "" b"#).unwrap(), ["a", "", "b"]);
        assert_eq!(tokenize(r#"x"y z"w"#).unwrap(), ["xy zw"]);
        assert_eq!(tokenize(r#""\n""#).unwrap(), [r"\n"]);
        assert_eq!(tokenize(r#"a "b"#), Err(ParseErrorKind::UnterminatedQuote));
        assert_eq!(tokenize(r#"a "b\"#), Err(ParseErrorKind::UnterminatedQuote));
        assert!(tokenize("").unwrap().is_empty());
    }

    #[test]
    fn every_match() {
        let r = ok(
            Table::Filter,
            "-A FORWARD -i lan -o wan -s 10.0.0.0/8 -d 192.0.2.1 -p tcp -m tcp --sport 1024:65535 --dport 22 -j ACCEPT",
        );
        let m = &r.matches;
        assert_eq!(m.in_iface, Some(Negatable::is(Iface::exact("lan"))));
        assert_eq!(m.out_iface, Some(Negatable::is(Iface::exact("wan"))));
        assert_eq!(m.src, Some(Negatable::is(Cidr::new(ip("10.0.0.0"), 8).unwrap())));
        assert_eq!(m.dst, Some(Negatable::is(Cidr::host(ip("192.0.2.1")))));
        assert_eq!(m.proto, Some(Negatable::is(Protocol::Tcp)));
        assert_eq!(m.src_port, Some(Negatable::is(PortRange::new(1024, 65535).unwrap())));
        assert_eq!(m.dst_port, Some(Negatable::is(PortRange::single(22))));
        assert_eq!(r.target, Target::Accept);

        let r = ok(Table::Filter, "-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT");
        assert_eq!(r.matches.icmp_type, Some(Negatable::is(8)));
        let r = ok(Table::Filter, "-A FORWARD -p icmp ! --icmp-type echo-reply -j DROP");
        assert_eq!(r.matches.icmp_type, Some(Negatable::not(0)));
        let r = ok(Table::Filter, "-A FORWARD -p udp --dport :1023 -j DROP");
        assert_eq!(r.matches.dst_port, Some(Negatable::is(PortRange::new(0, 1023).unwrap())));
        let r = ok(Table::Filter, "-A FORWARD -p 17 --sport 5000: -j DROP");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Udp)));
        assert_eq!(r.matches.src_port, Some(Negatable::is(PortRange::new(5000, 65535).unwrap())));
        let r = ok(Table::Filter, "-A FORWARD -p 47 -j ACCEPT");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Unknown(47))));
        let r = ok(Table::Filter, "-A FORWARD -p 6 -j ACCEPT");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Tcp)));
        let r = ok(Table::Filter, "-A FORWARD -p ICMP -j ACCEPT");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Icmp)));
        let r = ok(Table::Filter, "-A FORWARD -p all -j ACCEPT");
        assert_eq!(r.matches.proto, None);
        let r = ok(Table::Filter, "-A FORWARD -i lan+ -j ACCEPT");
        assert_eq!(r.matches.in_iface, Some(Negatable::is(Iface::prefix("lan"))));
        let r = ok(Table::Filter, r#"-A FORWARD -m comment --comment "a \"b\"" -j ACCEPT"#);
        assert_eq!(r.comment.as_deref(), Some(r#"a "b""#));
        let r = ok(Table::Filter, "-A FORWARD -m comment --comment -j -j ACCEPT");
        assert_eq!(r.comment.as_deref(), Some("-j"));
        // Long spellings, and matches after the target as iptables allows.
        let r = ok(
            Table::Filter,
            "--append FORWARD --jump DROP --in-interface wan --source 1.2.3.4/255.255.255.0 --protocol udp --destination-port 53",
        );
        assert_eq!(r.matches.src, Some(Negatable::is(Cidr::new(ip("1.2.3.0"), 24).unwrap())));
        assert_eq!(r.matches.dst_port, Some(Negatable::is(PortRange::single(53))));
        assert_eq!(r.target, Target::Drop);
    }

    #[test]
    fn negation() {
        let r = ok(Table::Filter, "-A FORWARD ! -i wan ! -o lan ! -s 10.0.0.0/8 ! -d 10.1.0.0/16 ! -p udp -j DROP");
        let m = &r.matches;
        assert!(m.in_iface.as_ref().unwrap().negated && m.out_iface.as_ref().unwrap().negated);
        assert!(m.src.unwrap().negated && m.dst.unwrap().negated && m.proto.unwrap().negated);
        let r = ok(Table::Filter, "-A FORWARD -p tcp ! --sport 80 ! --dport 1:1023 -j DROP");
        assert_eq!(r.matches.src_port, Some(Negatable::not(PortRange::single(80))));
        assert_eq!(r.matches.dst_port, Some(Negatable::not(PortRange::new(1, 1023).unwrap())));
        assert!(err(Table::Filter, "-A FORWARD ! -j DROP").contains("\"!\" cannot invert -j"));
        assert!(err(Table::Filter, "-A FORWARD -j DROP !").starts_with("dangling \"!\""));
        assert!(err(Table::Filter, "-A FORWARD ! ! -s 1.2.3.4 -j DROP").starts_with("dangling"));
        assert!(err(Table::Filter, "-A FORWARD ! -p all -j DROP").contains("matches nothing"));
    }

    #[test]
    fn cidr_edges() {
        // -s 0.0.0.0/0 is no match at all, as iptables stores it; negated it is kept.
        assert_eq!(ok(Table::Filter, "-A FORWARD -s 0.0.0.0/0 -j DROP").matches.src, None);
        assert_eq!(ok(Table::Filter, "-A FORWARD -s 9.9.9.9/0 -j DROP").matches.src, None);
        assert_eq!(ok(Table::Filter, "-A FORWARD ! -s 0.0.0.0/0 -j DROP").matches.src, Some(Negatable::not(Cidr::ANY)));
        assert_eq!(
            ok(Table::Filter, "-A FORWARD -d 10.0.0.7/32 -j DROP").matches.dst,
            Some(Negatable::is(Cidr::host(ip("10.0.0.7"))))
        );
        assert_eq!(
            ok(Table::Filter, "-A FORWARD -d 10.9.8.7/8 -j DROP").matches.dst,
            Some(Negatable::is(Cidr::new(ip("10.0.0.0"), 8).unwrap()))
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.300",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/255.0.255.0",
            "host.example",
            "10.0.0.0/+8",
            "",
        ] {
            let e = err(Table::Filter, &format!("-A FORWARD -s \"{bad}\" -j DROP"));
            assert!(e.starts_with(&format!("bad address \"{bad}\"")), "{e}");
        }
    }

    #[test]
    fn every_target() {
        let r = ok(Table::Nat, "-A POSTROUTING -o wan -j MASQUERADE");
        assert_eq!(r.target, Target::Masquerade { ports: None, random: false });
        let r = ok(Table::Nat, "-A POSTROUTING -p udp -j MASQUERADE --to-ports 1024-65535 --random");
        assert_eq!(r.target, Target::Masquerade { ports: PortRange::new(1024, 65535), random: true });
        let r = ok(Table::Nat, "-A POSTROUTING -j SNAT --to-source 203.0.113.1-203.0.113.8");
        assert_eq!(
            r.target,
            Target::Snat { addrs: AddrRange::new(ip("203.0.113.1"), ip("203.0.113.8")).unwrap(), ports: None }
        );
        let r = ok(Table::Nat, "-A POSTROUTING -p tcp -j SNAT --to-source 203.0.113.1:1024-2047");
        assert_eq!(
            r.target,
            Target::Snat { addrs: AddrRange::single(ip("203.0.113.1")), ports: PortRange::new(1024, 2047) }
        );
        let r = ok(Table::Nat, "-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22");
        assert_eq!(
            r.target,
            Target::Dnat { addrs: AddrRange::single(ip("100.64.0.2")), ports: Some(PortRange::single(22)) }
        );
        let r = ok(Table::Nat, "-A PREROUTING -j DNAT --to-destination 100.64.0.2-100.64.0.3");
        assert_eq!(r.target.nat_ports(), None);
        let r = ok(Table::Nat, "-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080");
        assert_eq!(r.target, Target::Redirect { ports: Some(PortRange::single(8080)) });
        assert_eq!(ok(Table::Nat, "-A PREROUTING -j REDIRECT").target, Target::Redirect { ports: None });
        assert_eq!(ok(Table::Nat, "-A PREROUTING -j RETURN").target, Target::Return);
        assert_eq!(ok(Table::Nat, "-A POSTROUTING -j ACCEPT").target, Target::Accept);
        assert_eq!(ok(Table::Filter, "-A FORWARD -j RETURN").target, Target::Return);
    }

    #[test]
    fn target_errors() {
        let e = err(Table::Nat, "-A POSTROUTING -j SANT");
        assert_eq!(
            e,
            "unknown target \"SANT\" (expected one of MASQUERADE, SNAT, DNAT, REDIRECT, ACCEPT, DROP, RETURN)"
        );
        assert!(err(Table::Nat, "-A POSTROUTING -j SNAT").starts_with("SNAT needs --to-source"));
        assert!(err(Table::Nat, "-A PREROUTING -j DNAT").starts_with("DNAT needs --to-destination"));
        assert!(err(Table::Nat, "-A PREROUTING -j DNAT --to-source 1.2.3.4")
            .starts_with("--to-source is not an option of the target here (expected it after -j SNAT)"));
        assert!(err(Table::Nat, "-A POSTROUTING -j SNAT --to-source 1.2.3.4 --random")
            .contains("expected it after -j MASQUERADE"));
        assert!(err(Table::Nat, "-A POSTROUTING --to-ports 80 -j MASQUERADE")
            .contains("expected it after -j MASQUERADE or -j REDIRECT"));
        assert!(err(Table::Nat, "-A POSTROUTING -j MASQUERADE --to-ports 80")
            .starts_with("--to-ports needs -p tcp or -p udp before it"));
        assert!(err(Table::Nat, "-A PREROUTING -j DNAT --to-destination 1.2.3.4:80")
            .starts_with("--to-destination needs -p tcp or -p udp before it"));
        for bad in ["1.2.3.4-1.2.3.3", "1.2.3.4:0", "1.2.3.4:9-8", ":80", "1.2.3.4:", "1.2.3.4/24", "1.2.3.4:1:2"] {
            let e = err(Table::Nat, &format!("-A PREROUTING -p tcp -j DNAT --to-destination {bad}"));
            assert!(e.starts_with(&format!("bad --to-destination \"{bad}\" (expected ADDR[-ADDR]")), "{e}");
        }
        for bad in ["0", "9-8", "a", "1:2", "65536"] {
            let e = err(Table::Nat, &format!("-A POSTROUTING -p tcp -j MASQUERADE --to-ports {bad}"));
            assert!(e.starts_with(&format!("bad --to-ports \"{bad}\"")), "{e}");
        }
        assert!(err(Table::Filter, "-A FORWARD -s 1.2.3.4").starts_with("rule has no target"));
        assert!(err(Table::Filter, "-A FORWARD -j ACCEPT -j DROP").starts_with("-j given twice"));
        assert!(err(Table::Nat, "-A POSTROUTING -j MASQUERADE --random --random").starts_with("--random given twice"));
    }

    #[test]
    fn illegal_target_per_chain() {
        assert!(err(Table::Nat, "-A POSTROUTING -j DNAT --to-destination 1.2.3.4").starts_with(
            "target DNAT is not allowed in chain POSTROUTING (expected SNAT, MASQUERADE, ACCEPT or RETURN"
        ));
        assert!(err(Table::Nat, "-A PREROUTING -j MASQUERADE")
            .starts_with("target MASQUERADE is not allowed in chain PREROUTING"));
        assert!(err(Table::Nat, "-A PREROUTING -j SNAT --to-source 1.2.3.4").starts_with("target SNAT is not allowed"));
        assert!(err(Table::Nat, "-A POSTROUTING -j REDIRECT").starts_with("target REDIRECT is not allowed"));
        assert!(err(Table::Filter, "-A FORWARD -j MASQUERADE")
            .contains("expected ACCEPT, DROP or RETURN in filter FORWARD"));
        assert!(
            err(Table::Nat, "-A PREROUTING -j DROP").starts_with("target DROP is not allowed in nat chain PREROUTING")
        );
        assert!(err(Table::Nat, "-A POSTROUTING -i lan -j MASQUERADE")
            .starts_with("-i cannot be used in chain POSTROUTING"));
        assert!(err(Table::Nat, "-A PREROUTING -o wan -j ACCEPT").starts_with("-o cannot be used in chain PREROUTING"));
    }

    #[test]
    fn match_errors() {
        assert_eq!(
            err(Table::Filter, "-A FORWARD --dport 22 -p tcp -j ACCEPT"),
            "--dport needs -p tcp or -p udp before it"
        );
        assert_eq!(
            err(Table::Filter, "-A FORWARD -p icmp --sport 22 -j ACCEPT"),
            "--sport needs -p tcp or -p udp before it"
        );
        assert!(err(Table::Filter, "-A FORWARD ! -p tcp --dport 22 -j ACCEPT").starts_with("--dport needs"));
        assert_eq!(
            err(Table::Filter, "-A FORWARD -p tcp --icmp-type 8 -j ACCEPT"),
            "--icmp-type needs -p icmp before it"
        );
        assert_eq!(err(Table::Filter, "-A FORWARD -m tcp --dport 22 -j ACCEPT"), "-m tcp needs -p tcp before it");
        assert_eq!(err(Table::Filter, "-A FORWARD -p tcp -m udp -j ACCEPT"), "-m udp needs -p udp before it");
        assert!(err(Table::Filter, "-A FORWARD -m conntrack --ctstate NEW -j ACCEPT")
            .starts_with("unknown match \"conntrack\""));
        assert!(err(Table::Filter, "-A FORWARD --comment x -j ACCEPT").starts_with("--comment needs -m comment"));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport 70000 -j ACCEPT").starts_with("bad port \"70000\""));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport 9:8 -j ACCEPT").starts_with("bad port \"9:8\""));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport : -j ACCEPT").starts_with("bad port \":\""));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport ssh -j ACCEPT").starts_with("bad port \"ssh\""));
        assert!(err(Table::Filter, "-A FORWARD -p sctp -j ACCEPT")
            .starts_with("unknown protocol \"sctp\" (expected tcp, udp, icmp, all"));
        assert!(err(Table::Filter, "-A FORWARD -p 256 -j ACCEPT").starts_with("unknown protocol \"256\""));
        assert!(err(Table::Filter, "-A FORWARD -p icmp --icmp-type 3/1 -j ACCEPT").starts_with("bad ICMP type \"3/1\""));
        assert!(err(Table::Filter, "-A FORWARD -s 1.2.3.4 -s 1.2.3.5 -j ACCEPT").starts_with("-s given twice"));
        assert!(err(Table::Filter, "-A FORWARD -p tcp -p udp -j ACCEPT").starts_with("-p given twice"));
        assert!(err(Table::Filter, "-A FORWARD -s -j ACCEPT").starts_with("-s needs a value (expected an IPv4 address"));
        assert!(err(Table::Filter, "-A FORWARD -j").starts_with("-j needs a value"));
        assert!(
            err(Table::Filter, "-A FORWARD --syn -j ACCEPT").starts_with("unknown option \"--syn\" (expected -i, -o")
        );
        assert!(err(Table::Filter, "-A FORWARD -j ACCEPT --to-ports").starts_with("--to-ports needs a value"));
        assert!(err(Table::Filter, "-A FORWARD -j ACCEPT --bogus").contains("an option of the target"));
        assert!(err(Table::Filter, "-A FORWARD junk -j ACCEPT").starts_with("unexpected \"junk\" (expected an option"));
        let long = "x".repeat(300);
        assert!(err(Table::Filter, &format!("-A FORWARD -m comment --comment {long} -j ACCEPT"))
            .starts_with("comment too long"));
    }

    #[test]
    fn interfaces_are_checked_against_the_configuration() {
        assert_eq!(
            err(Table::Filter, "-A FORWARD -i eth0 -j ACCEPT"),
            "unknown interface \"eth0\" (expected one of the configured ports: wan, lan, lan2)"
        );
        assert!(err(Table::Filter, "-A FORWARD -o eth+ -j ACCEPT").starts_with("unknown interface \"eth+\""));
        assert!(err(Table::Filter, "-A FORWARD -o \"\" -j ACCEPT").starts_with("unknown interface \"\""));
        ok(Table::Filter, "-A FORWARD -i + -j ACCEPT");
        let e = parse_rule(Table::Filter, &["-A", "FORWARD", "-i", "wan", "-j", "ACCEPT"], &[]).unwrap_err();
        assert!(e.to_string().contains("none are configured"), "{e}");
    }

    #[test]
    fn chains_and_tables() {
        assert!(err(Table::Nat, "-A OUTPUT -j ACCEPT")
            .starts_with("chain OUTPUT is not supported: masq forwards only and has no local stack"));
        assert!(err(Table::Filter, "-A INPUT -j ACCEPT").starts_with("chain INPUT is not supported"));
        assert_eq!(
            err(Table::Filter, "-A POSTROUTING -j ACCEPT"),
            "chain POSTROUTING is not in table filter (expected FORWARD; POSTROUTING is in -t nat)"
        );
        assert!(err(Table::Filter, "-A MYCHAIN -j ACCEPT")
            .starts_with("unknown chain \"MYCHAIN\" in table filter (expected FORWARD)"));
        assert!(err(Table::Filter, "-I FORWARD -j ACCEPT").starts_with("unexpected \"-I\" (expected -A CHAIN)"));
        assert!(err(Table::Filter, "-A").starts_with("-A needs a value"));
    }

    #[test]
    fn commands() {
        assert_eq!(
            cmd("-t nat -A POSTROUTING -o wan -j MASQUERADE").unwrap(),
            Command::Append { chain: Chain::Postrouting, rule: ok(Table::Nat, "-A POSTROUTING -o wan -j MASQUERADE") }
        );
        // -t anywhere; table defaults to filter.
        assert!(matches!(
            cmd("-A POSTROUTING -j MASQUERADE -t nat").unwrap(),
            Command::Append { chain: Chain::Postrouting, .. }
        ));
        assert!(matches!(cmd("-A FORWARD -j DROP").unwrap(), Command::Append { chain: Chain::Forward, .. }));
        assert!(matches!(cmd("-I FORWARD -j DROP").unwrap(), Command::Insert { pos: 1, .. }));
        assert!(matches!(cmd("-I FORWARD 3 -s 1.2.3.4 -j DROP").unwrap(), Command::Insert { pos: 3, .. }));
        assert_eq!(cmd("-D FORWARD 2").unwrap(), Command::DeleteAt { chain: Chain::Forward, pos: 2 });
        assert_eq!(
            cmd("-D FORWARD -s 1.2.3.4 -j DROP").unwrap(),
            Command::DeleteMatching {
                chain: Chain::Forward,
                rule: ok(Table::Filter, "-A FORWARD -s 1.2.3.4/32 -j DROP")
            }
        );
        assert_eq!(cmd("-F").unwrap(), Command::Flush { table: Table::Filter, chain: None });
        assert_eq!(
            cmd("-t nat -F PREROUTING").unwrap(),
            Command::Flush { table: Table::Nat, chain: Some(Chain::Prerouting) }
        );
        assert_eq!(cmd("-P FORWARD DROP").unwrap(), Command::SetPolicy { chain: Chain::Forward, policy: Policy::Drop });
        assert_eq!(
            cmd("-t nat -L -n -v --line-numbers").unwrap(),
            Command::List {
                table: Table::Nat,
                chain: None,
                options: ListOptions { numeric: true, verbose: true, line_numbers: true }
            }
        );
        assert_eq!(
            cmd("-nvL FORWARD").unwrap(),
            Command::List {
                table: Table::Filter,
                chain: Some(Chain::Forward),
                options: ListOptions { numeric: true, verbose: true, line_numbers: false }
            }
        );
        assert_eq!(cmd("-S").unwrap(), Command::ListRules { table: Table::Filter, chain: None });
        assert_eq!(
            cmd("--table nat --list-rules POSTROUTING").unwrap(),
            Command::ListRules { table: Table::Nat, chain: Some(Chain::Postrouting) }
        );
        // A comment that looks like a command option stays in the spec.
        let c = cmd(r#"-A FORWARD -m comment --comment "-F" -j ACCEPT"#).unwrap();
        assert!(matches!(c, Command::Append { rule: Rule { comment: Some(ref c), .. }, .. } if c == "-F"));
    }

    #[test]
    fn command_errors() {
        let e = |line: &str| cmd(line).unwrap_err().to_string();
        assert_eq!(e(""), "no command given (expected one of -A, -I, -D, -F, -P, -L or -S)");
        assert_eq!(e("-s 1.2.3.4"), "no command given (expected one of -A, -I, -D, -F, -P, -L or -S)");
        assert!(e("-A FORWARD -j DROP -D FORWARD 1").starts_with("cannot use -D with -A"));
        assert!(e("-t mangle -L").starts_with("unknown table \"mangle\" (expected nat or filter)"));
        assert!(e("-t").starts_with("-t needs a value"));
        assert!(e("-t nat -t filter -L").starts_with("-t given twice"));
        assert!(e("-A").starts_with("-A needs a value (expected a chain name)"));
        assert!(e("-A -j DROP").starts_with("-A needs a value"));
        assert!(e("-I FORWARD 0 -j DROP").starts_with("bad rule number \"0\" (expected a position from 1)"));
        assert!(e("-D FORWARD 0").starts_with("bad rule number \"0\""));
        assert!(e("-D FORWARD 1 -j DROP").starts_with("unexpected \"-j\" (expected nothing more"));
        assert!(e("-D FORWARD").starts_with("rule has no target"));
        assert!(e("-P FORWARD").starts_with("-P needs a value (expected a chain and a policy"));
        assert!(e("-P FORWARD REJECT").starts_with("bad policy \"REJECT\" (expected ACCEPT or DROP)"));
        assert!(e("-t nat -P POSTROUTING DROP")
            .starts_with("policy DROP is not allowed for nat chain POSTROUTING (expected ACCEPT"));
        assert!(e("-L INPUT").starts_with("chain INPUT is not supported"));
        assert!(e("-L -s 1.2.3.4").starts_with("unexpected \"-s\""));
        assert!(e("-n -A FORWARD -j DROP").starts_with("-n is only valid with -L or -S"));
        assert!(e("-A FORWARD -j DROP --line-numbers").starts_with("--line-numbers is only valid"));
        assert!(e("-t nat -A POSTROUTING -j DNAT --to-destination 1.2.3.4").starts_with("target DNAT is not allowed"));
    }

    #[test]
    fn counters_are_checked_then_ignored() {
        assert_eq!(parse_counters("[0:0]"), Ok(()));
        assert_eq!(parse_counters("[123:456789]"), Ok(()));
        for bad in ["[0:0", "0:0]", "[0]", "[a:0]", "[:0]", "[-1:0]"] {
            assert!(parse_counters(bad).is_err(), "{bad}");
        }
    }

    /// Tokens a fuzzer should combine: options, values good and bad, junk.
    fn fuzz_token() -> impl Strategy<Value = String> {
        const WORDS: &[&str] = &[
            "-A",
            "-I",
            "-D",
            "-F",
            "-P",
            "-L",
            "-S",
            "-t",
            "nat",
            "filter",
            "mangle",
            "PREROUTING",
            "POSTROUTING",
            "FORWARD",
            "INPUT",
            "-i",
            "-o",
            "wan",
            "lan+",
            "+",
            "-s",
            "-d",
            "10.0.0.0/8",
            "1.2.3.4",
            "0.0.0.0/0",
            "-p",
            "tcp",
            "udp",
            "icmp",
            "all",
            "0",
            "6",
            "-m",
            "comment",
            "--comment",
            "--sport",
            "--dport",
            "1:2",
            ":",
            "65535:",
            "--icmp-type",
            "8",
            "-j",
            "ACCEPT",
            "DROP",
            "RETURN",
            "MASQUERADE",
            "SNAT",
            "DNAT",
            "REDIRECT",
            "--to-ports",
            "1-2",
            "--to-source",
            "--to-destination",
            "1.2.3.4-1.2.3.9:1-9",
            "--random",
            "!",
            "-n",
            "-v",
            "-nvL",
            "--line-numbers",
            "1",
            "",
            "[0:0]",
            "\"",
        ];
        prop_oneof![
            3 => proptest::sample::select(WORDS).prop_map(str::to_string),
            1 => "\\PC{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn random_token_streams_never_panic(tokens in proptest::collection::vec(fuzz_token(), 0..14)) {
            let strs: Vec<&str> = tokens.iter().map(String::as_str).collect();
            for table in Table::ALL {
                let _ = parse_rule(table, &strs, PORTS);
            }
            let _ = parse_command(&tokens, PORTS);
            let _ = tokenize(&tokens.join(" "));
            let _ = parse_save(&format!("*nat\n{}\nCOMMIT\n", tokens.join(" ")), PORTS);
        }

        #[test]
        fn random_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_save(&text, PORTS);
            let _ = tokenize(&text);
        }
    }
}
