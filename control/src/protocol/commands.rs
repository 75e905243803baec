//! The command table: every command of the protocol, declared once.
//!
//! `command_table!` takes, per command, its [`Command`] variant, its wire name, the
//! arguments it accepts and three lines of documentation (the arguments and the result
//! as `docs/control-protocol.md`'s command table shows them, and what it does for
//! masqctl's help), and makes of them [`Command`], [`CommandKind`] and [`COMMANDS`].
//! Everything that needs a command's name reads it from there: [`Command::parse`] (and so
//! the server), [`Command::name`], the `unknown_command` message, masqctl's help, and the
//! documentation test. The parser's `match` on [`CommandKind`] and masqd's `match` on
//! [`Command`] are exhaustive: a command added here without a parser or an answer does not
//! compile.

use std::net::SocketAddrV4;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::errors::{ControlError, ErrorCode};
use super::requests::{describe, Request};
use super::results::{SessionEntry, Timeouts};
use super::values::{Ipv4Net, Protocol};
use super::{DEFAULT_PAGE_LIMIT, DEFAULT_TABLE, MAX_PAGE_LIMIT};

/// One command of the protocol, as [`COMMANDS`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandSpec {
    /// The wire name, `area.verb`.
    pub name: &'static str,
    /// The arguments it accepts (any other is `bad_args`).
    pub args: &'static [&'static str],
    /// Its arguments, as the documentation's command table gives them (`—` for none).
    pub usage: &'static str,
    /// Its result, as the documentation's command table gives it.
    pub result: &'static str,
    /// What it does, one line (masqctl's help).
    pub about: &'static str,
    /// Whether it changes masqd's state (rules, timeouts, sessions): the server logs
    /// each one with the peer's credentials.
    pub mutates: bool,
}

/// Declares the commands: the [`Command`] enum, [`CommandKind`], [`COMMANDS`] and
/// [`Command::NAMES`], from one list. Each entry:
///
/// ```text
/// /// doc of the variant
/// Variant { field: Type, ... } = "area.verb" {
///     args: ["arg", ...], usage: "...", result: "...", about: "...", mutates: false,
/// },
/// ```
///
/// (a variant may also be a tuple, `Variant(Type)`, or a unit, `Variant`).
macro_rules! command_table {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident $({ $($field:ident: $fty:ty),* $(,)? })? $(($tty:ty))? = $name:literal {
            args: [$($arg:literal),* $(,)?],
            usage: $usage:literal,
            result: $result:literal,
            about: $about:literal,
            mutates: $mutates:literal $(,)?
        }
    ),* $(,)?) => {
        /// A request's command, typed and checked. Declared by the command table (see the
        /// module documentation); the `args` of each is documented on its variant and in
        /// `docs/control-protocol.md`; `table` always defaults to [`DEFAULT_TABLE`].
        #[derive(Debug, Clone, PartialEq)]
        pub enum Command {
            $(
                $(#[doc = $doc])*
                $kind $({ $($field: $fty),* })? $(($tty))?,
            )*
        }

        /// Which command, without its arguments: an index into [`COMMANDS`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CommandKind {
            $(
                #[doc = concat!("`", $name, "`")]
                $kind,
            )*
        }

        /// Every command, in documentation order.
        pub const COMMANDS: &[CommandSpec] = &[
            $(CommandSpec {
                name: $name,
                args: &[$($arg),*],
                usage: $usage,
                result: $result,
                about: $about,
                mutates: $mutates,
            },)*
        ];

        impl CommandKind {
            /// Every kind, in the order of [`COMMANDS`].
            pub const ALL: &'static [CommandKind] = &[$(CommandKind::$kind),*];
        }

        impl Command {
            /// Every command name, in documentation order.
            pub const NAMES: &'static [&'static str] = &[$($name),*];

            /// Which command this is.
            pub fn kind(&self) -> CommandKind {
                match self {
                    $(Command::$kind { .. } => CommandKind::$kind,)*
                }
            }
        }
    };
}

command_table! {
    /// `rules.list {table?, chain?}` → [`RuleListing`](super::RuleListing) (every chain of
    /// the table when no chain is named).
    RulesList { table: String, chain: Option<String> } = "rules.list" {
        args: ["table", "chain"],
        usage: "`table?`, `chain?`",
        result: "`{table, chains: [{chain, policy, packets, bytes, references, rules: [RuleEntry]}]}`",
        about: "the rules of a table, or of one chain, with their counters",
        mutates: false,
    },
    /// `rules.append {table?, chain, spec}` → [`RuleAdded`](super::RuleAdded).
    RulesAppend { table: String, chain: String, spec: Vec<String> } = "rules.append" {
        args: ["table", "chain", "spec"],
        usage: "`table?`, `chain`, `spec`",
        result: "`{number}`",
        about: "append a rule (spec: argv tokens, as after iptables -A CHAIN)",
        mutates: true,
    },
    /// `rules.insert {table?, chain, position? (1-based, default 1), spec}` →
    /// [`RuleAdded`](super::RuleAdded).
    RulesInsert { table: String, chain: String, position: u32, spec: Vec<String> } = "rules.insert" {
        args: ["table", "chain", "position", "spec"],
        usage: "`table?`, `chain`, `position?` (1-based, default 1), `spec`",
        result: "`{number}`",
        about: "insert a rule at a position",
        mutates: true,
    },
    /// `rules.delete {table?, chain, number | spec}` (exactly one) → `{}`.
    RulesDelete { table: String, chain: String, rule: RuleSelector } = "rules.delete" {
        args: ["table", "chain", "number", "spec"],
        usage: "`table?`, `chain`, and `number` or `spec`",
        result: "`{}`",
        about: "delete a rule by number or by specification",
        mutates: true,
    },
    /// `rules.flush {table?, chain?}` (every chain when none is named) →
    /// [`Flushed`](super::Flushed).
    RulesFlush { table: String, chain: Option<String> } = "rules.flush" {
        args: ["table", "chain"],
        usage: "`table?`, `chain?` (all chains when absent)",
        result: "`{flushed}`",
        about: "remove the rules of a chain, or of every chain of a table",
        mutates: true,
    },
    /// `rules.policy {table?, chain, policy}` → `{}`.
    RulesPolicy { table: String, chain: String, policy: String } = "rules.policy" {
        args: ["table", "chain", "policy"],
        usage: "`table?`, `chain`, `policy`",
        result: "`{}`",
        about: "set a built-in chain's policy",
        mutates: true,
    },
    /// `rules.save {table?}` (every table when none is named) → [`SavedRules`](super::SavedRules).
    RulesSave { table: Option<String> } = "rules.save" {
        args: ["table"],
        usage: "`table?` (all tables when absent)",
        result: "`{text}`",
        about: "the rules as iptables-save text",
        mutates: false,
    },
    /// `rules.restore {text, noflush? (default false)}` →
    /// [`RestoreSummary`](super::RestoreSummary). Atomic: an error anywhere in `text`
    /// changes nothing.
    RulesRestore { text: String, noflush: bool } = "rules.restore" {
        args: ["text", "noflush"],
        usage: "`text`, `noflush?` (default false)",
        result: "`{tables, rules}`",
        about: "replace (or add to) the tables iptables-save text names; all or nothing",
        mutates: true,
    },
    /// `sessions.list {<filter>, cursor?, limit? (1..=10000, default 1000)}` →
    /// [`SessionPage`](super::SessionPage).
    SessionsList { filter: SessionFilter, cursor: Option<String>, limit: u32 } = "sessions.list" {
        args: [
            "protocol", "inside_addr", "inside_port", "outside_addr", "outside_port", "remote_addr", "remote_port",
            "state", "cursor", "limit",
        ],
        usage: "filter, `cursor?`, `limit?` (1..=10000, default 1000)",
        result: "`{sessions: [SessionEntry], next_cursor}`",
        about: "one page of the translation table",
        mutates: false,
    },
    /// `sessions.count {<filter>, cursor?}` → [`SessionCount`](super::SessionCount). A
    /// count that needs a scan stops at masqd's deadline with a `next_cursor` to go on
    /// from (the counts add up).
    SessionsCount { filter: SessionFilter, cursor: Option<String> } = "sessions.count" {
        args: [
            "protocol", "inside_addr", "inside_port", "outside_addr", "outside_port", "remote_addr", "remote_port",
            "state", "cursor",
        ],
        usage: "filter, `cursor?`",
        result: "`{count, next_cursor?}`",
        about: "how many sessions match a filter",
        mutates: false,
    },
    /// `sessions.flush {<filter>, cursor?}` (all sessions when the filter is empty) →
    /// [`Flushed`](super::Flushed). A flush that cannot finish by masqd's deadline says
    /// how far it got (`flushed`) and gives a `next_cursor` to go on from.
    SessionsFlush { filter: SessionFilter, cursor: Option<String> } = "sessions.flush" {
        args: [
            "protocol", "inside_addr", "inside_port", "outside_addr", "outside_port", "remote_addr", "remote_port",
            "state", "cursor",
        ],
        usage: "filter (everything when empty), `cursor?`",
        result: "`{flushed, next_cursor?}`",
        about: "remove the sessions that match a filter",
        mutates: true,
    },
    /// `expectations.list {}` → [`ExpectationList`](super::ExpectationList).
    ExpectationsList = "expectations.list" {
        args: [],
        usage: "—",
        result: "`{expectations: [...]}`",
        about: "data connections protocol helpers announced and wait for",
        mutates: false,
    },
    /// `stats.get {}` → [`Stats`](super::Stats).
    StatsGet = "stats.get" {
        args: [],
        usage: "—",
        result: "`Stats`",
        about: "ports, workers, drops by reason, sessions, port use, latency",
        mutates: false,
    },
    /// `timeouts.get {}` → [`Timeouts`].
    TimeoutsGet = "timeouts.get" {
        args: [],
        usage: "—",
        result: "`{tcp, tcpfin, udp, icmp, other}`",
        about: "the idle timeouts, in seconds",
        mutates: false,
    },
    /// `timeouts.set {tcp?, tcpfin?, udp?, icmp?}` (at least one, seconds > 0) → the new
    /// [`Timeouts`].
    TimeoutsSet(TimeoutsUpdate) = "timeouts.set" {
        args: ["tcp", "tcpfin", "udp", "icmp", "other"],
        usage: "at least one of `tcp`, `tcpfin`, `udp`, `icmp`, `other` (seconds, 1 to 604800)",
        result: "the new `{tcp, tcpfin, udp, icmp, other}`",
        about: "change idle timeouts",
        mutates: true,
    },
    /// `config.get {}` → masqd's configuration as a JSON object (shape owned by masqd).
    ConfigGet = "config.get" {
        args: [],
        usage: "—",
        result: "masqd's configuration (an object; its shape is masqd's)",
        about: "what is running: ports, workers, NAT, timeouts, rules file",
        mutates: false,
    },
    /// `nat.lookup {outside | inside, protocol?}` → [`LookupResult`](super::LookupResult):
    /// who had an external address (and port), or what a subscriber is translated to —
    /// from the deterministic tables (computed), the live port blocks and the live sessions.
    NatLookup { query: LookupQuery, protocol: Option<Protocol> } = "nat.lookup" {
        args: ["outside", "inside", "protocol"],
        usage: "`outside` (`\"a.b.c.d[:port]\"`) or `inside` (`\"a.b.c.d\"`), `protocol?`",
        result: "`{matches: [LookupMatch], truncated}`",
        about: "who had an external address and port, or what a subscriber maps to",
        mutates: false,
    },
    /// `version {}` → [`VersionInfo`](super::VersionInfo).
    Version = "version" {
        args: [],
        usage: "—",
        result: "`{daemon, version, protocol}`",
        about: "masqd's version and protocol version",
        mutates: false,
    },
}

impl CommandKind {
    /// Its entry in [`COMMANDS`].
    pub fn spec(self) -> &'static CommandSpec {
        &COMMANDS[self as usize]
    }

    /// The wire name, `area.verb`.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// The command called `name`, if any.
    pub fn from_name(name: &str) -> Option<CommandKind> {
        CommandKind::ALL.iter().copied().find(|k| k.name() == name)
    }
}

/// The arguments of a session filter (`sessions.list`, `.count`, `.flush`): the fields of
/// [`SessionFilter`], directly in `args`.
pub const FILTER_ARGS: &[&str] =
    &["protocol", "inside_addr", "inside_port", "outside_addr", "outside_port", "remote_addr", "remote_port", "state"];

/// What `nat.lookup` asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupQuery {
    /// An external address, and port (every port when `None`).
    Outside { addr: std::net::Ipv4Addr, port: Option<u16> },
    /// A subscriber (inside) address.
    Inside(std::net::Ipv4Addr),
}

impl LookupQuery {
    /// `"a.b.c.d"` or `"a.b.c.d:port"`.
    pub fn parse_outside(s: &str) -> Option<LookupQuery> {
        if let Ok(a) = s.parse::<SocketAddrV4>() {
            return Some(LookupQuery::Outside { addr: *a.ip(), port: Some(a.port()) });
        }
        s.parse().ok().map(|addr| LookupQuery::Outside { addr, port: None })
    }
}

/// Which rule `rules.delete` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSelector {
    /// By 1-based position in the chain (`"number": 3`).
    Number(u32),
    /// The first rule whose specification equals this one (`"spec": ["-o", "wan", ...]`).
    Spec(Vec<String>),
}

impl Command {
    /// The wire name, `area.verb`.
    pub fn name(&self) -> &'static str {
        self.kind().name()
    }

    /// Check a request's command and arguments.
    pub fn from_request(request: &Request) -> Result<Command, ControlError> {
        Command::parse(&request.cmd, request.args.clone())
    }

    /// Check `cmd` and `args` (an object, or `null` for none).
    pub fn parse(cmd: &str, args: Value) -> Result<Command, ControlError> {
        use CommandKind as K;
        let kind = CommandKind::from_name(cmd).ok_or_else(|| {
            ControlError::new(
                ErrorCode::UnknownCommand,
                format!("unknown command `{cmd}` (known: {})", Command::NAMES.join(", ")),
            )
        })?;
        let mut a = Args::new(cmd, args, kind.spec().args)?;
        let command = match kind {
            K::RulesList => Command::RulesList { table: a.table()?, chain: a.name("chain")? },
            K::RulesAppend => Command::RulesAppend {
                table: a.table()?,
                chain: a.required_name("chain")?,
                spec: a.required_tokens("spec")?,
            },
            K::RulesInsert => Command::RulesInsert {
                table: a.table()?,
                chain: a.required_name("chain")?,
                position: a.positive("position", "a rule position (1-based)")?.unwrap_or(1),
                spec: a.required_tokens("spec")?,
            },
            K::RulesDelete => {
                let table = a.table()?;
                let chain = a.required_name("chain")?;
                let rule = match (a.positive("number", "a rule number (1-based)")?, a.tokens("spec")?) {
                    (Some(n), None) => RuleSelector::Number(n),
                    (None, Some(spec)) => RuleSelector::Spec(spec),
                    (Some(_), Some(_)) => {
                        return Err(ControlError::bad_args("number", "give either `number` or `spec`, not both"))
                    }
                    (None, None) => {
                        return Err(ControlError::bad_args(
                            "number",
                            "missing `number` (a rule number) or `spec` (an array of strings)",
                        ))
                    }
                };
                Command::RulesDelete { table, chain, rule }
            }
            K::RulesFlush => Command::RulesFlush { table: a.table()?, chain: a.name("chain")? },
            K::RulesPolicy => Command::RulesPolicy {
                table: a.table()?,
                chain: a.required_name("chain")?,
                policy: a.required_name("policy")?,
            },
            K::RulesSave => Command::RulesSave { table: a.name("table")? },
            K::RulesRestore => Command::RulesRestore {
                text: a.string("text")?.ok_or_else(|| missing("text", "a string of iptables-save text"))?,
                noflush: a.boolean("noflush")?.unwrap_or(false),
            },
            K::SessionsList => {
                let filter = a.filter()?;
                let cursor = a.string("cursor")?;
                let limit = a.positive("limit", "a page size")?.unwrap_or(DEFAULT_PAGE_LIMIT);
                if limit > MAX_PAGE_LIMIT {
                    return Err(ControlError::bad_args(
                        "limit",
                        format!("`limit`: at most {MAX_PAGE_LIMIT}, got {limit}"),
                    ));
                }
                Command::SessionsList { filter, cursor, limit }
            }
            K::SessionsCount => Command::SessionsCount { filter: a.filter()?, cursor: a.string("cursor")? },
            K::SessionsFlush => Command::SessionsFlush { filter: a.filter()?, cursor: a.string("cursor")? },
            K::StatsGet => Command::StatsGet,
            K::ExpectationsList => Command::ExpectationsList,
            K::TimeoutsGet => Command::TimeoutsGet,
            K::TimeoutsSet => {
                let update = TimeoutsUpdate {
                    tcp: a.positive("tcp", "a number of seconds > 0")?,
                    tcpfin: a.positive("tcpfin", "a number of seconds > 0")?,
                    udp: a.positive("udp", "a number of seconds > 0")?,
                    icmp: a.positive("icmp", "a number of seconds > 0")?,
                    other: a.positive("other", "a number of seconds > 0")?,
                };
                if update.is_empty() {
                    return Err(ControlError::bad_args(
                        "args",
                        "give at least one of tcp, tcpfin, udp, icmp, other (seconds)",
                    ));
                }
                Command::TimeoutsSet(update)
            }
            K::ConfigGet => Command::ConfigGet,
            K::NatLookup => {
                let protocol = a.parsed("protocol", "\"tcp\", \"udp\" or \"icmp\"")?;
                let query = match (a.string("outside")?, a.string("inside")?) {
                    (Some(o), None) => LookupQuery::parse_outside(&o).ok_or_else(|| {
                        ControlError::bad_args(
                            "outside",
                            format!("`outside`: expected \"a.b.c.d[:port]\", got \"{o}\""),
                        )
                    })?,
                    (None, Some(i)) => LookupQuery::Inside(i.parse().map_err(|_| {
                        ControlError::bad_args("inside", format!("`inside`: expected an IPv4 address, got \"{i}\""))
                    })?),
                    (Some(_), Some(_)) => {
                        return Err(ControlError::bad_args("outside", "give either `outside` or `inside`, not both"))
                    }
                    (None, None) => {
                        return Err(ControlError::bad_args(
                            "outside",
                            "missing `outside` (\"a.b.c.d[:port]\") or `inside` (\"a.b.c.d\")",
                        ))
                    }
                };
                Command::NatLookup { query, protocol }
            }
            K::Version => Command::Version,
        };
        Ok(command)
    }

    /// The arguments as they travel: an object, with defaults spelled out.
    pub fn args(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_string(), v);
        };
        match self {
            Command::RulesList { table, chain } | Command::RulesFlush { table, chain } => {
                put("table", json!(table));
                if let Some(chain) = chain {
                    put("chain", json!(chain));
                }
            }
            Command::RulesAppend { table, chain, spec } => {
                put("table", json!(table));
                put("chain", json!(chain));
                put("spec", json!(spec));
            }
            Command::RulesInsert { table, chain, position, spec } => {
                put("table", json!(table));
                put("chain", json!(chain));
                put("position", json!(position));
                put("spec", json!(spec));
            }
            Command::RulesDelete { table, chain, rule } => {
                put("table", json!(table));
                put("chain", json!(chain));
                match rule {
                    RuleSelector::Number(n) => put("number", json!(n)),
                    RuleSelector::Spec(spec) => put("spec", json!(spec)),
                }
            }
            Command::RulesPolicy { table, chain, policy } => {
                put("table", json!(table));
                put("chain", json!(chain));
                put("policy", json!(policy));
            }
            Command::RulesSave { table } => {
                if let Some(table) = table {
                    put("table", json!(table));
                }
            }
            Command::RulesRestore { text, noflush } => {
                put("text", json!(text));
                put("noflush", json!(noflush));
            }
            Command::SessionsList { filter, cursor, limit } => {
                filter.write_args(&mut m);
                if let Some(cursor) = cursor {
                    m.insert("cursor".into(), json!(cursor));
                }
                m.insert("limit".into(), json!(limit));
            }
            Command::SessionsCount { filter, cursor } | Command::SessionsFlush { filter, cursor } => {
                filter.write_args(&mut m);
                if let Some(cursor) = cursor {
                    m.insert("cursor".into(), json!(cursor));
                }
            }
            Command::TimeoutsSet(u) => {
                for (k, v) in
                    [("tcp", u.tcp), ("tcpfin", u.tcpfin), ("udp", u.udp), ("icmp", u.icmp), ("other", u.other)]
                {
                    if let Some(v) = v {
                        put(k, json!(v));
                    }
                }
            }
            Command::NatLookup { query, protocol } => {
                match query {
                    LookupQuery::Outside { addr, port: Some(p) } => put("outside", json!(format!("{addr}:{p}"))),
                    LookupQuery::Outside { addr, port: None } => put("outside", json!(addr.to_string())),
                    LookupQuery::Inside(addr) => put("inside", json!(addr.to_string())),
                }
                if let Some(p) = protocol {
                    put("protocol", json!(p.as_str()));
                }
            }
            Command::StatsGet
            | Command::ExpectationsList
            | Command::TimeoutsGet
            | Command::ConfigGet
            | Command::Version => {}
        }
        Value::Object(m)
    }

    /// The request a client sends for this command.
    pub fn to_request(&self, id: Value) -> Request {
        Request { id, cmd: self.name().to_string(), args: self.args() }
    }
}

// ---------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------

/// Which sessions `sessions.list/count/flush` address; every field set must match, and the
/// empty filter matches everything. On the wire the fields sit directly in `args`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFilter {
    /// `"tcp"`, `"udp"` or `"icmp"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// Subscriber (private) address or prefix, `"100.64.0.2"` or `"100.64.0.0/10"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside_addr: Option<Ipv4Net>,
    /// Subscriber port (ICMP: query id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside_port: Option<u16>,
    /// External (public) address or prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_addr: Option<Ipv4Net>,
    /// External port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outside_port: Option<u16>,
    /// Remote peer address or prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_addr: Option<Ipv4Net>,
    /// Remote peer port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_port: Option<u16>,
    /// Session state as [`SessionEntry::state`] spells it, compared case-insensitively.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

impl SessionFilter {
    /// Whether no field is set (the filter matches every session).
    pub fn is_empty(&self) -> bool {
        *self == SessionFilter::default()
    }

    /// Whether `session` passes the filter.
    pub fn matches(&self, session: &SessionEntry) -> bool {
        fn endpoint(net: Option<Ipv4Net>, port: Option<u16>, at: SocketAddrV4) -> bool {
            net.is_none_or(|n| n.contains(*at.ip())) && port.is_none_or(|p| p == at.port())
        }
        self.protocol.is_none_or(|p| p == session.proto)
            && endpoint(self.inside_addr, self.inside_port, session.inside)
            && endpoint(self.outside_addr, self.outside_port, session.outside)
            && endpoint(self.remote_addr, self.remote_port, session.remote)
            && self.state.as_ref().is_none_or(|s| s.eq_ignore_ascii_case(&session.state))
    }

    fn write_args(&self, m: &mut Map<String, Value>) {
        if let Value::Object(fields) = serde_json::to_value(self).expect("a filter always serializes") {
            m.extend(fields);
        }
    }
}

/// `timeouts.set`'s arguments: the timeouts to change, each > 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutsUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcpfin: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub icmp: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other: Option<u32>,
}

impl TimeoutsUpdate {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == TimeoutsUpdate::default()
    }

    /// `current` with this update applied.
    pub fn apply(&self, current: Timeouts) -> Timeouts {
        Timeouts {
            tcp: self.tcp.unwrap_or(current.tcp),
            tcpfin: self.tcpfin.unwrap_or(current.tcpfin),
            udp: self.udp.unwrap_or(current.udp),
            icmp: self.icmp.unwrap_or(current.icmp),
            other: self.other.unwrap_or(current.other),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Argument checking
// ---------------------------------------------------------------------------------------

/// A command's argument object, consumed field by field; every error names its field.
struct Args {
    map: Map<String, Value>,
}

fn missing(field: &str, wants: &str) -> ControlError {
    ControlError::bad_args(field, format!("missing `{field}` ({wants})"))
}

fn wrong(field: &str, wants: &str, got: &Value) -> ControlError {
    ControlError::bad_args(field, format!("`{field}`: expected {wants}, got {}", describe(got)))
}

impl Args {
    fn new(cmd: &str, args: Value, allowed: &[&str]) -> Result<Args, ControlError> {
        let map = match args {
            Value::Null => Map::new(),
            Value::Object(map) => map,
            other => return Err(wrong("args", "an object", &other)),
        };
        if let Some(field) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
            let expected = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
            return Err(ControlError::bad_args(
                field.clone(),
                format!("unknown argument `{field}` for {cmd} (expected: {expected})"),
            ));
        }
        Ok(Args { map })
    }

    /// The field's value; `null` counts as absent.
    fn take(&mut self, field: &str) -> Option<Value> {
        self.map.remove(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Result<Option<String>, ControlError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(wrong(field, "a string", &other)),
        }
    }

    /// A non-empty string without whitespace (table, chain, policy names).
    fn name(&mut self, field: &str) -> Result<Option<String>, ControlError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && !s.chars().any(char::is_whitespace) => Ok(Some(s)),
            Some(other) => Err(wrong(field, "a non-empty name without spaces", &other)),
        }
    }

    fn required_name(&mut self, field: &str) -> Result<String, ControlError> {
        self.name(field)?.ok_or_else(|| missing(field, "a name"))
    }

    fn table(&mut self) -> Result<String, ControlError> {
        Ok(self.name("table")?.unwrap_or_else(|| DEFAULT_TABLE.to_string()))
    }

    fn boolean(&mut self, field: &str) -> Result<Option<bool>, ControlError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(other) => Err(wrong(field, "a boolean", &other)),
        }
    }

    /// An integer in 1..=u32::MAX.
    fn positive(&mut self, field: &str, wants: &str) -> Result<Option<u32>, ControlError> {
        match self.take(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 && n <= u64::from(u32::MAX) => Ok(Some(n as u32)),
                _ => Err(wrong(field, &format!("{wants}, an integer from 1 to {}", u32::MAX), &v)),
            },
        }
    }

    fn port(&mut self, field: &str) -> Result<Option<u16>, ControlError> {
        match self.take(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n <= u64::from(u16::MAX) => Ok(Some(n as u16)),
                _ => Err(wrong(field, "a port number (0..=65535)", &v)),
            },
        }
    }

    /// An array of strings (argv tokens).
    fn tokens(&mut self, field: &str) -> Result<Option<Vec<String>>, ControlError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s),
                    other => Err(ControlError::bad_args(
                        format!("{field}[{i}]"),
                        format!("`{field}[{i}]`: expected a string, got {}", describe(&other)),
                    )),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(wrong(field, "an array of strings (argv tokens)", &other)),
        }
    }

    fn required_tokens(&mut self, field: &str) -> Result<Vec<String>, ControlError> {
        self.tokens(field)?.ok_or_else(|| missing(field, "an array of strings (argv tokens)"))
    }

    fn parsed<T: FromStr>(&mut self, field: &str, wants: &str) -> Result<Option<T>, ControlError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(s)) => s.parse().map(Some).map_err(|_| wrong(field, wants, &Value::String(s))),
            Some(other) => Err(wrong(field, wants, &other)),
        }
    }

    fn filter(&mut self) -> Result<SessionFilter, ControlError> {
        Ok(SessionFilter {
            protocol: self.parsed("protocol", "\"tcp\", \"udp\" or \"icmp\"")?,
            inside_addr: self.parsed("inside_addr", "an IPv4 address or prefix (\"a.b.c.d[/len]\")")?,
            inside_port: self.port("inside_port")?,
            outside_addr: self.parsed("outside_addr", "an IPv4 address or prefix (\"a.b.c.d[/len]\")")?,
            outside_port: self.port("outside_port")?,
            remote_addr: self.parsed("remote_addr", "an IPv4 address or prefix (\"a.b.c.d[/len]\")")?,
            remote_port: self.port("remote_port")?,
            state: self.name("state")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn parse_line(line: &str) -> Result<Command, ControlError> {
        let request = Request::from_line(line.as_bytes()).map_err(|e| e.error)?;
        Command::from_request(&request)
    }

    fn every_command() -> Vec<Command> {
        let spec = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        vec![
            Command::RulesList { table: "nat".into(), chain: None },
            Command::RulesList { table: "filter".into(), chain: Some("FORWARD".into()) },
            Command::RulesAppend {
                table: "nat".into(),
                chain: "POSTROUTING".into(),
                spec: spec("-o wan -j MASQUERADE"),
            },
            Command::RulesInsert {
                table: "nat".into(),
                chain: "PREROUTING".into(),
                position: 3,
                spec: spec("-i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80"),
            },
            Command::RulesDelete { table: "nat".into(), chain: "POSTROUTING".into(), rule: RuleSelector::Number(1) },
            Command::RulesDelete {
                table: "nat".into(),
                chain: "POSTROUTING".into(),
                rule: RuleSelector::Spec(spec("-o wan -j MASQUERADE")),
            },
            Command::RulesFlush { table: "filter".into(), chain: None },
            Command::RulesPolicy { table: "filter".into(), chain: "FORWARD".into(), policy: "DROP".into() },
            Command::RulesSave { table: None },
            Command::RulesSave { table: Some("nat".into()) },
            Command::RulesRestore { text: "*nat\nCOMMIT\n".into(), noflush: true },
            Command::SessionsList { filter: SessionFilter::default(), cursor: None, limit: DEFAULT_PAGE_LIMIT },
            Command::SessionsList {
                filter: SessionFilter {
                    protocol: Some(Protocol::Tcp),
                    inside_addr: Some("100.64.0.0/10".parse().unwrap()),
                    inside_port: Some(0),
                    outside_addr: Some(Ipv4Net::host(Ipv4Addr::new(203, 0, 113, 1))),
                    outside_port: Some(61000),
                    remote_addr: Some("198.51.100.7".parse().unwrap()),
                    remote_port: Some(443),
                    state: Some("ESTABLISHED".into()),
                },
                cursor: Some("abc".into()),
                limit: 5,
            },
            Command::SessionsCount {
                filter: SessionFilter { protocol: Some(Protocol::Udp), ..Default::default() },
                cursor: None,
            },
            Command::SessionsCount { filter: SessionFilter::default(), cursor: Some("1:2:3".into()) },
            Command::SessionsFlush { filter: SessionFilter::default(), cursor: None },
            Command::SessionsFlush { filter: SessionFilter::default(), cursor: Some("0:0:0".into()) },
            Command::ExpectationsList,
            Command::StatsGet,
            Command::TimeoutsGet,
            Command::TimeoutsSet(TimeoutsUpdate { tcp: Some(7200), udp: Some(160), ..Default::default() }),
            Command::ConfigGet,
            Command::NatLookup {
                query: LookupQuery::Outside { addr: Ipv4Addr::new(203, 0, 113, 1), port: Some(40001) },
                protocol: Some(Protocol::Udp),
            },
            Command::NatLookup {
                query: LookupQuery::Outside { addr: Ipv4Addr::new(203, 0, 113, 1), port: None },
                protocol: None,
            },
            Command::NatLookup { query: LookupQuery::Inside(Ipv4Addr::new(100, 64, 0, 2)), protocol: None },
            Command::Version,
        ]
    }

    #[test]
    fn every_command_round_trips_through_json() {
        let mut seen = std::collections::BTreeSet::new();
        for command in every_command() {
            let line = serde_json::to_string(&command.to_request(json!(9))).unwrap();
            assert_eq!(parse_line(&line), Ok(command.clone()), "{line}");
            seen.insert(command.name());
        }
        assert_eq!(seen.len(), Command::NAMES.len(), "every command is exercised");
    }

    #[test]
    fn the_example_request_parses() {
        let cmd = parse_line(r#"{"id": 7, "cmd": "timeouts.set", "args": {"udp": 120}}"#).unwrap();
        assert_eq!(cmd, Command::TimeoutsSet(TimeoutsUpdate { udp: Some(120), ..Default::default() }));
    }

    #[test]
    fn defaults_apply() {
        let cmd = parse_line(r#"{"cmd": "rules.insert", "args": {"chain": "INPUT", "spec": []}}"#).unwrap();
        assert_eq!(
            cmd,
            Command::RulesInsert { table: "filter".into(), chain: "INPUT".into(), position: 1, spec: vec![] }
        );
        let cmd = parse_line(r#"{"cmd": "sessions.list"}"#).unwrap();
        assert_eq!(
            cmd,
            Command::SessionsList { filter: SessionFilter::default(), cursor: None, limit: DEFAULT_PAGE_LIMIT }
        );
        assert_eq!(parse_line(r#"{"cmd": "version", "args": null}"#), Ok(Command::Version));
    }

    fn error_of(line: &str) -> ControlError {
        parse_line(line).unwrap_err()
    }

    #[test]
    fn framing_errors_have_their_codes_and_keep_the_id() {
        assert_eq!(error_of("{nope").code, ErrorCode::BadJson);
        assert_eq!(error_of("[1,2]").code, ErrorCode::BadRequest);
        assert_eq!(error_of(r#"{"id": 1}"#).code, ErrorCode::BadRequest);
        assert_eq!(error_of(r#"{"id": 1, "cmd": 5}"#).code, ErrorCode::BadRequest);
        assert_eq!(error_of(r#"{"id": 1, "cmd": "version", "extra": 1}"#).code, ErrorCode::BadRequest);
        let e = Request::from_line(br#"{"id": "abc", "cmd": 5}"#).unwrap_err();
        assert_eq!(e.id, json!("abc"));
        assert_eq!(error_of(r#"{"cmd": "rules.explode"}"#).code, ErrorCode::UnknownCommand);
        assert!(error_of(r#"{"cmd": "rules.explode"}"#).message.contains("rules.list"));
    }

    #[test]
    fn bad_args_name_the_field_and_the_type() {
        let e = error_of(r#"{"cmd": "timeouts.set", "args": {"udp": "120"}}"#);
        assert_eq!((&e.code, e.field.as_deref()), (&ErrorCode::BadArgs, Some("udp")));
        assert!(e.message.contains("`udp`") && e.message.contains("seconds") && e.message.contains("string"), "{e}");

        let e = error_of(r#"{"cmd": "timeouts.set", "args": {"udp": 0}}"#);
        assert_eq!(e.field.as_deref(), Some("udp"));
        let e = error_of(r#"{"cmd": "timeouts.set", "args": {"udp": 1.5}}"#);
        assert_eq!(e.field.as_deref(), Some("udp"));
        let e = error_of(r#"{"cmd": "timeouts.set", "args": {}}"#);
        assert_eq!(e.code, ErrorCode::BadArgs);
        let e = error_of(r#"{"cmd": "timeouts.set", "args": {"udpp": 5}}"#);
        assert!(e.message.contains("unknown argument `udpp`") && e.message.contains("tcpfin"), "{e}");

        let e = error_of(r#"{"cmd": "rules.append", "args": {"chain": "X", "spec": ["-j", 5]}}"#);
        assert_eq!(e.field.as_deref(), Some("spec[1]"));
        let e = error_of(r#"{"cmd": "rules.append", "args": {"chain": "X", "spec": "-j DROP"}}"#);
        assert!(e.message.contains("array of strings"), "{e}");
        let e = error_of(r#"{"cmd": "rules.append", "args": {"spec": []}}"#);
        assert_eq!((e.field.as_deref(), e.message.as_str()), (Some("chain"), "missing `chain` (a name)"));
        let e = error_of(r#"{"cmd": "rules.list", "args": {"chain": "has space"}}"#);
        assert_eq!(e.field.as_deref(), Some("chain"));
        let e = error_of(r#"{"cmd": "rules.list", "args": [1]}"#);
        assert_eq!(e.field.as_deref(), Some("args"));

        let e = error_of(r#"{"cmd": "rules.delete", "args": {"chain": "X"}}"#);
        assert_eq!(e.code, ErrorCode::BadArgs);
        let e = error_of(r#"{"cmd": "rules.delete", "args": {"chain": "X", "number": 1, "spec": []}}"#);
        assert!(e.message.contains("not both"));

        let e = error_of(r#"{"cmd": "sessions.list", "args": {"limit": 10001}}"#);
        assert_eq!(e.field.as_deref(), Some("limit"));
        let e = error_of(r#"{"cmd": "sessions.count", "args": {"inside_addr": "300.1.1.1"}}"#);
        assert_eq!(e.field.as_deref(), Some("inside_addr"));
        let e = error_of(r#"{"cmd": "sessions.count", "args": {"remote_port": 70000}}"#);
        assert_eq!(e.field.as_deref(), Some("remote_port"));
        let e = error_of(r#"{"cmd": "sessions.flush", "args": {"protocol": "sctp"}}"#);
        assert_eq!(e.field.as_deref(), Some("protocol"));
        let e = error_of(r#"{"cmd": "version", "args": {"verbose": true}}"#);
        assert!(e.message.contains("expected: none"), "{e}");
    }

    #[test]
    fn filters_match_sessions() {
        let s = SessionEntry {
            proto: Protocol::Tcp,
            inside: "100.64.0.2:40000".parse().unwrap(),
            outside: "203.0.113.1:61000".parse().unwrap(),
            remote: "198.51.100.7:443".parse().unwrap(),
            state: "ESTABLISHED".into(),
            expires_in_secs: 7000,
            worker: 1,
            id: None,
            helper: None,
            parent: None,
        };
        assert!(SessionFilter::default().matches(&s));
        let f = |json: Value| match Command::parse("sessions.count", json).unwrap() {
            Command::SessionsCount { filter, .. } => filter,
            _ => unreachable!(),
        };
        assert!(f(json!({"inside_addr": "100.64.0.0/10", "state": "established"})).matches(&s));
        assert!(f(json!({"protocol": "TCP", "remote_port": 443, "outside_addr": "203.0.113.1"})).matches(&s));
        assert!(!f(json!({"protocol": "udp"})).matches(&s));
        assert!(!f(json!({"inside_addr": "100.64.0.3"})).matches(&s));
        assert!(!f(json!({"outside_port": 61001})).matches(&s));
        assert!(f(json!({"remote_addr": "0.0.0.0/0"})).matches(&s));
    }

    #[test]
    fn timeouts_update_applies_only_what_it_names() {
        let now = Timeouts { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60, other: 600 };
        let update = TimeoutsUpdate { udp: Some(120), ..Default::default() };
        assert_eq!(update.apply(now), Timeouts { udp: 120, ..now });
    }

    #[test]
    fn the_table_and_the_parser_agree() {
        assert_eq!(COMMANDS.len(), CommandKind::ALL.len());
        assert_eq!(Command::NAMES, COMMANDS.iter().map(|c| c.name).collect::<Vec<_>>());
        for (i, &kind) in CommandKind::ALL.iter().enumerate() {
            let spec = kind.spec();
            assert_eq!(spec, &COMMANDS[i]);
            assert_eq!(CommandKind::from_name(spec.name), Some(kind));
            assert!(!spec.usage.is_empty() && !spec.result.is_empty() && !spec.about.is_empty(), "{}", spec.name);
            // Every argument the table lists is one the parser knows (a null is "absent").
            for arg in spec.args {
                let e = Command::parse(spec.name, json!({ *arg: null })).err();
                assert!(
                    e.as_ref().is_none_or(|e| !e.message.contains("unknown argument")),
                    "{}: {arg}: {e:?}",
                    spec.name
                );
            }
            // And no other.
            let e = Command::parse(spec.name, json!({"no_such_argument": 1})).unwrap_err();
            assert_eq!((e.code, e.field.as_deref()), (ErrorCode::BadArgs, Some("no_such_argument")), "{}", spec.name);
        }
        assert_eq!(CommandKind::from_name("rules.explode"), None);
        // The session commands take the filter's fields, and sessions.list its paging.
        assert_eq!(CommandKind::SessionsCount.spec().args, [FILTER_ARGS, &["cursor"]].concat());
        assert_eq!(CommandKind::SessionsFlush.spec().args, [FILTER_ARGS, &["cursor"]].concat());
        assert_eq!(CommandKind::SessionsList.spec().args, [FILTER_ARGS, &["cursor", "limit"]].concat());
        let fields = serde_json::to_value(SessionFilter {
            protocol: Some(Protocol::Tcp),
            inside_addr: Some(Ipv4Net::host(Ipv4Addr::LOCALHOST)),
            inside_port: Some(1),
            outside_addr: Some(Ipv4Net::host(Ipv4Addr::LOCALHOST)),
            outside_port: Some(1),
            remote_addr: Some(Ipv4Net::host(Ipv4Addr::LOCALHOST)),
            remote_port: Some(1),
            state: Some("x".into()),
        })
        .unwrap();
        let mut names: Vec<&str> = fields.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want = FILTER_ARGS.to_vec();
        names.sort_unstable();
        want.sort_unstable();
        assert_eq!(names, want);
    }

    #[test]
    fn every_parsed_command_knows_its_kind() {
        for command in every_command() {
            let back = Command::parse(command.name(), command.args()).unwrap();
            assert_eq!(back.kind(), command.kind());
            assert_eq!(back.kind().name(), command.name());
        }
    }
}
