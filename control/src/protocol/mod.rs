//! The control protocol: every request, command, response and result type.
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
//! # One command table
//!
//! Every command is declared once, in [`commands`]: its variant of [`Command`], its wire
//! name, the arguments it accepts, what the documentation says about its arguments and
//! result, and a line for masqctl's help. The parser ([`Command::parse`]), the names
//! ([`Command::name`], [`Command::NAMES`], the `unknown_command` message), masqctl's help,
//! and the documentation check (`control/tests/docs.rs`: every command of the table has
//! its row and its example in `docs/control-protocol.md`) all read [`COMMANDS`]; the
//! dispatcher (masqd's handler) matches on [`Command`], so a command added to the table
//! without an answer does not compile.
//!
//! | file | what |
//! | --- | --- |
//! | [`requests`] | [`Request`] and [`Response`]: one line each, the framing's errors |
//! | [`commands`] | the command table, [`Command`] and its arguments ([`SessionFilter`], [`TimeoutsUpdate`], [`RuleSelector`]) |
//! | [`results`] | what each command answers ([`RuleListing`], [`SessionPage`], [`Stats`], ...) |
//! | [`errors`] | [`ErrorCode`] and [`ControlError`] |
//! | [`values`] | value formats shared by arguments and results: [`Protocol`], [`Ipv4Net`] |
//!
//! The control crate does not know the rule grammar: rule specifications travel as argv
//! tokens (`["-o", "wan", "-j", "MASQUERADE"]`) and rule sets as `iptables-save` text; the
//! dataplane parses both and fills the display columns of [`RuleEntry`].

pub mod commands;
pub mod errors;
pub mod requests;
pub mod results;
pub mod values;

pub use commands::{
    Command, CommandKind, CommandSpec, LookupQuery, RuleSelector, SessionFilter, TimeoutsUpdate, COMMANDS, FILTER_ARGS,
};
pub use errors::{ControlError, ErrorCode};
pub use requests::{Request, RequestError, Response};
pub use results::*;
pub use values::{Ipv4Net, Protocol};

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
