//! The control protocol: every request, command, response and result type, in one place.
//!
//! # Framing
//!
//! Newline-delimited JSON over a Unix stream socket: one request per line, one response per
//! line, in order. A request is `{"id": ID, "cmd": "area.verb", "args": {...}}`; `id` is any
//! JSON value and is echoed back verbatim (absent means `null`), `args` may be omitted when a
//! command takes none. A response is `{"id": ID, "ok": true, "result": ...}` or
//! `{"id": ID, "ok": false, "error": {"code": "bad_args", "message": "...", "field": "udp"}}`.
//! `docs/control-protocol.md` has an example of every command.
//!
//! # Layers
//!
//! A line becomes a [`Request`] ([`Request::from_line`]: `bad_json`, `bad_request`), a
//! request becomes a typed [`Command`] ([`Command::parse`]: `unknown_command`, `bad_args`
//! naming the field and the type it wants), and a handler answers a command with a result
//! value or a [`ControlError`]. [`Command::to_request`] is the inverse used by clients, so
//! `masqctl` and raw JSON users go through the same door.
//!
//! The control crate does not know the rule grammar: rule specifications travel as argv
//! tokens (`["-o", "wan", "-j", "MASQUERADE"]`) and rule sets as `iptables-save` text; the
//! dataplane parses both and fills the display columns of [`RuleEntry`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{json, Map, Value};

/// Version of this protocol, reported by `version`. Bumped on incompatible changes only.
pub const PROTOCOL_VERSION: u32 = 1;

/// Where masqd listens and masqctl looks unless told otherwise (`[control] socket`).
pub const DEFAULT_SOCKET: &str = "/run/masq/masqd.sock";

/// The largest request line the server accepts, newline excluded (`too_large` beyond).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The table rule commands use when `table` is absent, as iptables does.
pub const DEFAULT_TABLE: &str = "filter";

/// `sessions.list` page size when `limit` is absent.
pub const DEFAULT_PAGE_LIMIT: u32 = 1000;

/// The largest `limit` `sessions.list` accepts.
pub const MAX_PAGE_LIMIT: u32 = 10_000;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Why a request failed. Serialized as a stable snake_case name; names not known to this
/// build (a newer server) are kept in [`ErrorCode::Unknown`] rather than failing to parse.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The line is not valid JSON (or not UTF-8).
    BadJson,
    /// Valid JSON but not a request: not an object, `cmd` missing or not a string, or a
    /// top-level field other than `id`, `cmd`, `args`.
    BadRequest,
    /// The request line exceeds [`MAX_REQUEST_BYTES`]. The rest of that line is discarded
    /// and the connection keeps serving.
    TooLarge,
    /// The stream ended in the middle of a line (no newline before end of file).
    Truncated,
    /// The client took too long to finish a request line; the connection is closed.
    Timeout,
    /// The server already serves its maximum number of clients; the connection is closed.
    Busy,
    /// `cmd` names no command.
    UnknownCommand,
    /// An argument is missing, unknown, of the wrong type or out of range; `field` names it.
    BadArgs,
    /// The command names something that does not exist (table, chain, rule number, rule).
    NotFound,
    /// The command contradicts the current state (e.g. restoring a rule set that does not
    /// compile, setting a policy on a user chain).
    Conflict,
    /// The server understands the command but does not implement it (yet).
    Unsupported,
    /// The server failed; not the client's fault.
    Internal,
    /// A code this build does not know, kept verbatim.
    Unknown(String),
}

impl ErrorCode {
    /// Every code this build knows (not [`ErrorCode::Unknown`]), in documentation order.
    pub const KNOWN: &'static [ErrorCode] = &[
        ErrorCode::BadJson,
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::Truncated,
        ErrorCode::Timeout,
        ErrorCode::Busy,
        ErrorCode::UnknownCommand,
        ErrorCode::BadArgs,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Unsupported,
        ErrorCode::Internal,
    ];

    /// The stable snake_case name used on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Truncated => "truncated",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::BadArgs => "bad_args",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown(name) => name,
        }
    }

    /// The code named `name`; unknown names give [`ErrorCode::Unknown`].
    pub fn from_name(name: &str) -> ErrorCode {
        ErrorCode::KNOWN.iter().find(|c| c.as_str() == name).cloned().unwrap_or_else(|| ErrorCode::Unknown(name.into()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(ErrorCode::from_name(&name))
    }
}

/// A failed request: the `error` object of a response, and what a [`crate::Handler`]
/// returns to refuse a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// One line for a person; names the offending field or object.
    pub message: String,
    /// For `bad_args`: the argument at fault (`"udp"`, `"spec[2]"`, `"args"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ControlError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ControlError {
        ControlError { code, message: message.into(), field: None }
    }

    /// `bad_args` about `field`.
    pub fn bad_args(field: impl Into<String>, message: impl Into<String>) -> ControlError {
        ControlError { code: ErrorCode::BadArgs, message: message.into(), field: Some(field.into()) }
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::NotFound, message)
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::Conflict, message)
    }

    /// `unsupported`.
    pub fn unsupported(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::Unsupported, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::Internal, message)
    }
}

impl From<serde_json::Error> for ControlError {
    /// A result that would not serialize is the server's fault.
    fn from(e: serde_json::Error) -> ControlError {
        ControlError::internal(format!("cannot encode result: {e}"))
    }
}

/// Serialize a typed result for a handler's `Ok(...)`.
pub fn to_result<T: Serialize>(value: &T) -> Result<Value, ControlError> {
    Ok(serde_json::to_value(value)?)
}

// ---------------------------------------------------------------------------------------
// Requests and responses
// ---------------------------------------------------------------------------------------

/// One request line, before its command is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Echoed back in the response; any JSON value (`null` when absent).
    #[serde(default)]
    pub id: Value,
    /// The command, `area.verb` (see [`Command::NAMES`]).
    pub cmd: String,
    /// The command's arguments: an object, or `null`/absent for none.
    #[serde(default)]
    pub args: Value,
}

/// A line that is not a request; the response echoes `id` if one could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError {
    /// The request's `id` when the line was an object that had one, else `null`.
    pub id: Value,
    /// `bad_json` or `bad_request`.
    pub error: ControlError,
}

impl Request {
    /// Parse one request line (without its newline).
    pub fn from_line(line: &[u8]) -> Result<Request, RequestError> {
        let fail =
            |id: Value, code: ErrorCode, message: String| RequestError { id, error: ControlError::new(code, message) };
        let value: Value = serde_json::from_slice(line)
            .map_err(|e| fail(Value::Null, ErrorCode::BadJson, format!("invalid JSON: {e}")))?;
        let Value::Object(mut object) = value else {
            return Err(fail(
                Value::Null,
                ErrorCode::BadRequest,
                format!("a request must be a JSON object, got {}", describe(&value)),
            ));
        };
        let id = object.remove("id").unwrap_or(Value::Null);
        let cmd = match object.remove("cmd") {
            Some(Value::String(cmd)) => cmd,
            Some(other) => {
                return Err(fail(
                    id,
                    ErrorCode::BadRequest,
                    format!("`cmd` must be a string, got {}", describe(&other)),
                ))
            }
            None => return Err(fail(id, ErrorCode::BadRequest, "missing `cmd`".into())),
        };
        let args = object.remove("args").unwrap_or(Value::Null);
        if let Some(field) = object.keys().next() {
            return Err(fail(
                id,
                ErrorCode::BadRequest,
                format!("unknown field `{field}` in request (expected id, cmd, args)"),
            ));
        }
        Ok(Request { id, cmd, args })
    }
}

/// One response line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "WireResponse", try_from = "WireResponse")]
pub struct Response {
    /// The request's `id`, echoed.
    pub id: Value,
    /// `ok: true` with `result`, or `ok: false` with `error`.
    pub outcome: Result<Value, ControlError>,
}

impl Response {
    /// A successful response.
    pub fn success(id: Value, result: Value) -> Response {
        Response { id, outcome: Ok(result) }
    }

    /// A failed response.
    pub fn failure(id: Value, error: ControlError) -> Response {
        Response { id, outcome: Err(error) }
    }

    /// The response as one line of JSON, newline included.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|e| {
            // A result holding a non-string map key or similar: report, never panic.
            let fallback = Response::failure(self.id.clone(), ControlError::from(e));
            serde_json::to_vec(&fallback).expect("an error response always serializes")
        });
        line.push(b'\n');
        line
    }
}

/// The wire shape of [`Response`].
#[derive(Serialize, Deserialize)]
struct WireResponse {
    #[serde(default)]
    id: Value,
    ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<ControlError>,
}

impl From<Response> for WireResponse {
    fn from(r: Response) -> WireResponse {
        match r.outcome {
            Ok(result) => WireResponse { id: r.id, ok: true, result: Some(result), error: None },
            Err(error) => WireResponse { id: r.id, ok: false, result: None, error: Some(error) },
        }
    }
}

impl TryFrom<WireResponse> for Response {
    type Error = String;

    fn try_from(w: WireResponse) -> Result<Response, String> {
        match (w.ok, w.error) {
            (true, None) => Ok(Response::success(w.id, w.result.unwrap_or(Value::Null))),
            (false, Some(error)) => Ok(Response::failure(w.id, error)),
            (true, Some(_)) => Err("response has ok: true and an error".into()),
            (false, None) => Err("response has ok: false but no error".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------------------

/// Which rule `rules.delete` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSelector {
    /// By 1-based position in the chain (`"number": 3`).
    Number(u32),
    /// The first rule whose specification equals this one (`"spec": ["-o", "wan", ...]`).
    Spec(Vec<String>),
}

/// A request's command, typed and checked. The `args` of each is documented on its variant
/// and in `docs/control-protocol.md`; `table` always defaults to [`DEFAULT_TABLE`].
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `rules.list {table?, chain?}` → [`RuleListing`] (every chain of the table when no
    /// chain is named).
    RulesList { table: String, chain: Option<String> },
    /// `rules.append {table?, chain, spec}` → [`RuleAdded`].
    RulesAppend { table: String, chain: String, spec: Vec<String> },
    /// `rules.insert {table?, chain, position? (1-based, default 1), spec}` → [`RuleAdded`].
    RulesInsert { table: String, chain: String, position: u32, spec: Vec<String> },
    /// `rules.delete {table?, chain, number | spec}` (exactly one) → `{}`.
    RulesDelete { table: String, chain: String, rule: RuleSelector },
    /// `rules.flush {table?, chain?}` (every chain when none is named) → [`Flushed`].
    RulesFlush { table: String, chain: Option<String> },
    /// `rules.policy {table?, chain, policy}` → `{}`.
    RulesPolicy { table: String, chain: String, policy: String },
    /// `rules.save {table?}` (every table when none is named) → [`SavedRules`].
    RulesSave { table: Option<String> },
    /// `rules.restore {text, noflush? (default false)}` → [`RestoreSummary`]. Atomic: an
    /// error anywhere in `text` changes nothing.
    RulesRestore { text: String, noflush: bool },
    /// `sessions.list {<filter>, cursor?, limit? (1..=10000, default 1000)}` → [`SessionPage`].
    SessionsList { filter: SessionFilter, cursor: Option<String>, limit: u32 },
    /// `sessions.count {<filter>}` → [`SessionCount`].
    SessionsCount { filter: SessionFilter },
    /// `sessions.flush {<filter>}` (all sessions when the filter is empty) → [`Flushed`].
    SessionsFlush { filter: SessionFilter },
    /// `stats.get {}` → [`Stats`].
    StatsGet,
    /// `timeouts.get {}` → [`Timeouts`].
    TimeoutsGet,
    /// `timeouts.set {tcp?, tcpfin?, udp?, icmp?}` (at least one, seconds > 0) → the new
    /// [`Timeouts`].
    TimeoutsSet(TimeoutsUpdate),
    /// `config.get {}` → masqd's configuration as a JSON object (shape owned by masqd).
    ConfigGet,
    /// `version {}` → [`VersionInfo`].
    Version,
}

/// The arguments a session filter takes (shared by `sessions.list/count/flush`).
const FILTER_FIELDS: &[&str] =
    &["protocol", "inside_addr", "inside_port", "outside_addr", "outside_port", "remote_addr", "remote_port", "state"];

impl Command {
    /// Every command name, in documentation order.
    pub const NAMES: &'static [&'static str] = &[
        "rules.list",
        "rules.append",
        "rules.insert",
        "rules.delete",
        "rules.flush",
        "rules.policy",
        "rules.save",
        "rules.restore",
        "sessions.list",
        "sessions.count",
        "sessions.flush",
        "stats.get",
        "timeouts.get",
        "timeouts.set",
        "config.get",
        "version",
    ];

    /// The wire name, `area.verb`.
    pub fn name(&self) -> &'static str {
        match self {
            Command::RulesList { .. } => "rules.list",
            Command::RulesAppend { .. } => "rules.append",
            Command::RulesInsert { .. } => "rules.insert",
            Command::RulesDelete { .. } => "rules.delete",
            Command::RulesFlush { .. } => "rules.flush",
            Command::RulesPolicy { .. } => "rules.policy",
            Command::RulesSave { .. } => "rules.save",
            Command::RulesRestore { .. } => "rules.restore",
            Command::SessionsList { .. } => "sessions.list",
            Command::SessionsCount { .. } => "sessions.count",
            Command::SessionsFlush { .. } => "sessions.flush",
            Command::StatsGet => "stats.get",
            Command::TimeoutsGet => "timeouts.get",
            Command::TimeoutsSet(_) => "timeouts.set",
            Command::ConfigGet => "config.get",
            Command::Version => "version",
        }
    }

    /// Check a request's command and arguments.
    pub fn from_request(request: &Request) -> Result<Command, ControlError> {
        Command::parse(&request.cmd, request.args.clone())
    }

    /// Check `cmd` and `args` (an object, or `null` for none).
    pub fn parse(cmd: &str, args: Value) -> Result<Command, ControlError> {
        let allowed: &[&str] = match cmd {
            "rules.list" | "rules.flush" => &["table", "chain"],
            "rules.append" => &["table", "chain", "spec"],
            "rules.insert" => &["table", "chain", "position", "spec"],
            "rules.delete" => &["table", "chain", "number", "spec"],
            "rules.policy" => &["table", "chain", "policy"],
            "rules.save" => &["table"],
            "rules.restore" => &["text", "noflush"],
            "sessions.list" => &[
                "protocol",
                "inside_addr",
                "inside_port",
                "outside_addr",
                "outside_port",
                "remote_addr",
                "remote_port",
                "state",
                "cursor",
                "limit",
            ],
            "sessions.count" | "sessions.flush" => FILTER_FIELDS,
            "timeouts.set" => &["tcp", "tcpfin", "udp", "icmp"],
            "stats.get" | "timeouts.get" | "config.get" | "version" => &[],
            _ => {
                return Err(ControlError::new(
                    ErrorCode::UnknownCommand,
                    format!("unknown command `{cmd}` (known: {})", Command::NAMES.join(", ")),
                ))
            }
        };
        let mut a = Args::new(cmd, args, allowed)?;
        let command = match cmd {
            "rules.list" => Command::RulesList { table: a.table()?, chain: a.name("chain")? },
            "rules.append" => Command::RulesAppend {
                table: a.table()?,
                chain: a.required_name("chain")?,
                spec: a.required_tokens("spec")?,
            },
            "rules.insert" => Command::RulesInsert {
                table: a.table()?,
                chain: a.required_name("chain")?,
                position: a.positive("position", "a rule position (1-based)")?.unwrap_or(1),
                spec: a.required_tokens("spec")?,
            },
            "rules.delete" => {
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
            "rules.flush" => Command::RulesFlush { table: a.table()?, chain: a.name("chain")? },
            "rules.policy" => Command::RulesPolicy {
                table: a.table()?,
                chain: a.required_name("chain")?,
                policy: a.required_name("policy")?,
            },
            "rules.save" => Command::RulesSave { table: a.name("table")? },
            "rules.restore" => Command::RulesRestore {
                text: a.string("text")?.ok_or_else(|| missing("text", "a string of iptables-save text"))?,
                noflush: a.boolean("noflush")?.unwrap_or(false),
            },
            "sessions.list" => {
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
            "sessions.count" => Command::SessionsCount { filter: a.filter()? },
            "sessions.flush" => Command::SessionsFlush { filter: a.filter()? },
            "stats.get" => Command::StatsGet,
            "timeouts.get" => Command::TimeoutsGet,
            "timeouts.set" => {
                let update = TimeoutsUpdate {
                    tcp: a.positive("tcp", "a number of seconds > 0")?,
                    tcpfin: a.positive("tcpfin", "a number of seconds > 0")?,
                    udp: a.positive("udp", "a number of seconds > 0")?,
                    icmp: a.positive("icmp", "a number of seconds > 0")?,
                };
                if update.is_empty() {
                    return Err(ControlError::bad_args(
                        "args",
                        "give at least one of tcp, tcpfin, udp, icmp (seconds)",
                    ));
                }
                Command::TimeoutsSet(update)
            }
            "config.get" => Command::ConfigGet,
            "version" => Command::Version,
            _ => unreachable!("every name in the table above has an arm"),
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
            Command::SessionsCount { filter } | Command::SessionsFlush { filter } => filter.write_args(&mut m),
            Command::TimeoutsSet(u) => {
                for (k, v) in [("tcp", u.tcp), ("tcpfin", u.tcpfin), ("udp", u.udp), ("icmp", u.icmp)] {
                    if let Some(v) = v {
                        put(k, json!(v));
                    }
                }
            }
            Command::StatsGet | Command::TimeoutsGet | Command::ConfigGet | Command::Version => {}
        }
        Value::Object(m)
    }

    /// The request a client sends for this command.
    pub fn to_request(&self, id: Value) -> Request {
        Request { id, cmd: self.name().to_string(), args: self.args() }
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

/// How a value reads in an error message: its JSON type, and short values themselves.
fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.chars().count() <= 40 => format!("string {s:?}"),
        Value::String(_) => "a long string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
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

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

/// A translated transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP queries; the "port" of an ICMP session is the query identifier.
    Icmp,
}

impl Protocol {
    /// `tcp`, `udp`, `icmp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = ();

    /// Case-insensitive name.
    fn from_str(s: &str) -> Result<Protocol, ()> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmp" => Ok(Protocol::Icmp),
            _ => Err(()),
        }
    }
}

/// An IPv4 prefix, `a.b.c.d/len`; a plain address means `/32`. Serialized as that string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The address as given (host bits are ignored when matching).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Net {
    /// A single address.
    pub fn host(addr: Ipv4Addr) -> Ipv4Net {
        Ipv4Net { addr, len: 32 }
    }

    /// Whether `addr` lies in the prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
        u32::from(addr) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 32 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = ();

    fn from_str(s: &str) -> Result<Ipv4Net, ()> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, len.parse::<u8>().map_err(|_| ())?),
            None => (s, 32),
        };
        if len > 32 {
            return Err(());
        }
        Ok(Ipv4Net { addr: addr.parse().map_err(|_| ())?, len })
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| serde::de::Error::custom(format!("invalid IPv4 prefix {s:?}")))
    }
}

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

/// One translation (a row of `masqctl -M -L`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// Transport protocol.
    pub proto: Protocol,
    /// Subscriber side, `"100.64.0.2:40000"` (ICMP: address and query id).
    pub inside: SocketAddrV4,
    /// The external address and port it is translated to.
    pub outside: SocketAddrV4,
    /// The remote peer.
    pub remote: SocketAddrV4,
    /// Tracking state as the NAT names it (`"ESTABLISHED"`, `"SYN_SENT"`, `"UDP"`, ...).
    pub state: String,
    /// Seconds until the session expires if idle.
    pub expires_in_secs: u64,
    /// The worker that owns it.
    pub worker: u32,
}

/// One page of `sessions.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPage {
    /// At most `limit` sessions.
    pub sessions: Vec<SessionEntry>,
    /// Pass as `cursor` to get the next page; `null` on the last page. Opaque.
    pub next_cursor: Option<String>,
}

/// `sessions.count`'s result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCount {
    /// Sessions matching the filter.
    pub count: u64,
}

// ---------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------

/// `rules.list`'s result: one table's chains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleListing {
    /// The table listed.
    pub table: String,
    /// The chains, in the table's order (or the one chain asked for).
    pub chains: Vec<ChainListing>,
}

/// One chain of a [`RuleListing`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainListing {
    /// Chain name.
    pub chain: String,
    /// Built-in chains: the policy (`"ACCEPT"`, `"DROP"`); user chains: `null`.
    #[serde(default)]
    pub policy: Option<String>,
    /// Packets that met the policy.
    #[serde(default)]
    pub packets: u64,
    /// Bytes that met the policy.
    #[serde(default)]
    pub bytes: u64,
    /// User chains: rules that jump to this chain.
    #[serde(default)]
    pub references: u32,
    /// The rules, in order.
    pub rules: Vec<RuleEntry>,
}

/// One rule. `spec` is canonical; the display columns (as `iptables -L -n` shows them) are
/// filled by the dataplane, which owns the grammar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// 1-based position in the chain.
    pub number: u32,
    /// Packets matched.
    pub packets: u64,
    /// Bytes matched.
    pub bytes: u64,
    /// The rule as argv tokens, without `-A CHAIN` (what `iptables -S` prints after it).
    pub spec: Vec<String>,
    /// `target` column: `"MASQUERADE"`, `"DNAT"`, a chain name, or `""` for none.
    #[serde(default)]
    pub target: String,
    /// `prot` column: `"all"`, `"tcp"`, ...; a leading `!` marks negation.
    #[serde(default)]
    pub protocol: String,
    /// `in` column: interface, or `"*"` for any.
    #[serde(default)]
    pub in_iface: String,
    /// `out` column: interface, or `"*"` for any.
    #[serde(default)]
    pub out_iface: String,
    /// `source` column: `"0.0.0.0/0"`, `"100.64.0.0/10"`, `"!10.0.0.0/8"`.
    #[serde(default)]
    pub source: String,
    /// `destination` column.
    #[serde(default)]
    pub destination: String,
    /// The free-form tail: matches and target options (`"tcp dpt:8080 to:100.64.0.2:80"`).
    #[serde(default)]
    pub options: String,
}

/// `rules.append` / `rules.insert` result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleAdded {
    /// The new rule's 1-based position.
    pub number: u32,
}

/// `rules.flush` / `sessions.flush` result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    /// Rules or sessions removed.
    pub flushed: u64,
}

/// `rules.save` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRules {
    /// `iptables-save` text: `*table`, `:CHAIN POLICY [packets:bytes]`, `-A ...`, `COMMIT`.
    pub text: String,
}

/// `rules.restore` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// Tables the text replaced (or added to, with `noflush`).
    pub tables: Vec<String>,
    /// Rules the text added.
    pub rules: u64,
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

/// Idle timeouts in seconds, as `ipchains -M -S tcp tcpfin udp`, plus ICMP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: u32,
    /// Transitory TCP (opening, closing, reset).
    pub tcpfin: u32,
    /// UDP.
    pub udp: u32,
    /// ICMP queries.
    pub icmp: u32,
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
        }
    }
}

// ---------------------------------------------------------------------------------------
// Statistics and version
// ---------------------------------------------------------------------------------------

/// `stats.get`'s result: a snapshot read without stopping the workers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Per port.
    pub ports: Vec<PortStats>,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// Dropped packets by reason (the dataplane's stable `DropReason` names), all workers.
    pub drops: BTreeMap<String, u64>,
    /// Sessions now in the tables, all workers.
    #[serde(default)]
    pub sessions_active: u64,
    /// Sessions created since start.
    pub sessions_created: u64,
    /// Sessions expired (or flushed) since start.
    pub sessions_expired: u64,
    /// External port use per external address.
    pub port_utilisation: Vec<PortUtilisation>,
    /// Per-packet processing latency, microseconds.
    pub latency_us: Percentiles,
    /// Per host interface (the kernel TAPs of `[[port]] host_interface`); empty without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_interfaces: Vec<HostInterfaceStats>,
}

/// One host interface's counters, named as `ip -s link show NAME` names them: `rx` is
/// what masqd delivered to the kernel, `tx` what the kernel sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInterfaceStats {
    /// The kernel interface's name.
    pub name: String,
    /// The port it belongs to.
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames for the kernel the interface did not take.
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames from the kernel a worker's full ring did not take.
    pub tx_dropped: u64,
    /// Frames from the kernel that are neither IPv4 nor ARP (dropped).
    pub tx_unsupported: u64,
}

/// One port's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    /// DPDK port id.
    pub port: u16,
    /// Configured name (`"inside"`, `"wan"`).
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Packets the NIC dropped on receive (no descriptor / no mbuf: `imissed` + `rx_nombuf`).
    pub rx_drops: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the TX queue refused and masq freed.
    pub tx_drops: u64,
    /// Raw PMD counters (`ierrors`, `oerrors`, `imissed`, `rx_nombuf`, xstats ...).
    #[serde(default)]
    pub pmd: BTreeMap<String, u64>,
}

/// One worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Worker index.
    pub worker: u32,
    /// The lcore it runs on.
    pub lcore: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets this worker dropped, all reasons.
    pub drops: u64,
    /// Sessions in this worker's table.
    pub sessions_active: u64,
}

/// How much of one external address's port space is in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortUtilisation {
    /// The external address.
    pub address: Ipv4Addr,
    /// Ports available for translation per protocol on this address.
    pub capacity: u32,
    /// TCP ports in use.
    pub tcp: u32,
    /// UDP ports in use.
    pub udp: u32,
    /// ICMP identifiers in use.
    pub icmp: u32,
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples behind the figures.
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// The 99.9th percentile.
    pub p99_9: f64,
    pub max: f64,
}

/// `version`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The daemon's name, `"masqd"`.
    pub daemon: String,
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// [`PROTOCOL_VERSION`] the daemon speaks.
    pub protocol: u32,
}

impl VersionInfo {
    /// masqd's own answer: this build's version and protocol.
    pub fn masqd() -> VersionInfo {
        VersionInfo { daemon: "masqd".into(), version: env!("CARGO_PKG_VERSION").into(), protocol: PROTOCOL_VERSION }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Command::SessionsCount { filter: SessionFilter { protocol: Some(Protocol::Udp), ..Default::default() } },
            Command::SessionsFlush { filter: SessionFilter::default() },
            Command::StatsGet,
            Command::TimeoutsGet,
            Command::TimeoutsSet(TimeoutsUpdate { tcp: Some(7200), tcpfin: None, udp: Some(160), icmp: None }),
            Command::ConfigGet,
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
    fn responses_have_the_documented_shape() {
        let ok = Response::success(json!(7), json!({"udp": 120}));
        assert_eq!(String::from_utf8(ok.to_line()).unwrap(), "{\"id\":7,\"ok\":true,\"result\":{\"udp\":120}}\n");
        let err = Response::failure(json!(7), ControlError::bad_args("udp", "nope"));
        let line = String::from_utf8(err.to_line()).unwrap();
        assert_eq!(
            line,
            "{\"id\":7,\"ok\":false,\"error\":{\"code\":\"bad_args\",\"message\":\"nope\",\"field\":\"udp\"}}\n"
        );
        let back: Response = serde_json::from_str(&line).unwrap();
        assert_eq!(back, err);
        assert!(serde_json::from_str::<Response>(r#"{"id":1,"ok":false}"#).is_err());
        let unknown: Response =
            serde_json::from_str(r#"{"id":1,"ok":false,"error":{"code":"rate_limited","message":"slow down"}}"#)
                .unwrap();
        assert_eq!(unknown.outcome.unwrap_err().code, ErrorCode::Unknown("rate_limited".into()));
    }

    #[test]
    fn error_codes_have_stable_names() {
        let names: Vec<&str> = ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
        assert_eq!(
            names,
            [
                "bad_json",
                "bad_request",
                "too_large",
                "truncated",
                "timeout",
                "busy",
                "unknown_command",
                "bad_args",
                "not_found",
                "conflict",
                "unsupported",
                "internal"
            ]
        );
        for code in ErrorCode::KNOWN {
            assert_eq!(&ErrorCode::from_name(code.as_str()), code);
        }
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
        };
        assert!(SessionFilter::default().matches(&s));
        let f = |json: Value| match Command::parse("sessions.count", json).unwrap() {
            Command::SessionsCount { filter } => filter,
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
    fn ipv4_nets_parse_and_print() {
        assert_eq!("10.0.0.1".parse::<Ipv4Net>().unwrap().to_string(), "10.0.0.1");
        assert_eq!("10.0.0.0/8".parse::<Ipv4Net>().unwrap().to_string(), "10.0.0.0/8");
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        assert!("10.0.0.0/8".parse::<Ipv4Net>().unwrap().contains(Ipv4Addr::new(10, 255, 0, 1)));
    }

    #[test]
    fn timeouts_update_applies_only_what_it_names() {
        let now = Timeouts { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60 };
        let update = TimeoutsUpdate { udp: Some(120), ..Default::default() };
        assert_eq!(update.apply(now), Timeouts { udp: 120, ..now });
    }
}
