//! masqctl's command line: iptables' own syntax, plus a few subcommands, turned into
//! [`Command`]s. No socket here: [`parse`] is pure, so every form is unit-tested.
//!
//! This is masq's one iptables command-line parser: masqctl uses it, and the dataplane's
//! tests that start from a command line go through it too (then through masqd's reading
//! of the request, as a live masqd would).
//!
//! iptables' argv does not fit a derive model (the meaning of a token depends on the
//! command flag, and the rule specification is an open-ended tail), so it is parsed by
//! hand: the table (`-t`), one command flag (`-A -I -D -F -P -L --list-rules -M`), its
//! chain and position, and list modifiers (`-n -v -x --line-numbers`) are taken out;
//! every other token is the rule specification, passed through verbatim for masqd to
//! parse (it owns the rule grammar). The one thing this parser knows of that grammar is
//! that a `--comment` value is free text: it goes with its option whatever it looks like,
//! so `--comment -F` is never a flush. As in iptables, flags may be clustered (`-nvL`),
//! `!` is never a chain name, and `-n`, `-x` and `--line-numbers` go only with `-L`.
//! Subcommands (`save`, `restore`, `stats`, `sessions`, `timeouts`, `config`, `version`,
//! `json`) and the global flags go through clap.
//!
//! `-S` is `--socket`, so iptables' `-S` (list rules as specifications) is spelled
//! `--list-rules`; right after `-M`, `-S` is ipchains' "set timeouts".

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};

use crate::format::{RulesView, View};
use crate::protocol::{
    Command, Ipv4Net, LookupQuery, Protocol, RuleSelector, SessionFilter, TimeoutsUpdate, COMMANDS, DEFAULT_SOCKET,
    DEFAULT_TABLE, FILTER_ARGS,
};

/// What one masqctl run does.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// The control socket.
    pub socket: PathBuf,
    /// `--json`: print results as raw JSON instead of tables.
    pub json: bool,
    pub action: Action,
}

/// The work, once the command line is understood.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send one command and print its result with `view`.
    Call { command: Command, view: View },
    /// Page through `sessions.list` and print the translation table.
    ListSessions { filter: SessionFilter, verbose: bool },
    /// Read iptables-save text from `file` (standard input when `None`) and restore it.
    Restore { file: Option<PathBuf>, noflush: bool },
    /// Send this raw request line, print the raw response line.
    Raw(String),
    /// Print this text and exit successfully.
    Help(String),
}

/// A command line masqctl cannot make sense of (exit status 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage<T>(message: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(message.into()))
}

/// masqctl's `--help`.
pub const HELP: &str = "\
masqctl: control masqd, in iptables' language

Usage:
  masqctl [-t TABLE] -A CHAIN RULE-SPEC          append a rule
  masqctl [-t TABLE] -I CHAIN [N] RULE-SPEC      insert a rule at position N (default 1)
  masqctl [-t TABLE] -D CHAIN N | RULE-SPEC      delete a rule by number or specification
  masqctl [-t TABLE] -F [CHAIN]                  flush a chain, or every chain of the table
  masqctl [-t TABLE] -P CHAIN TARGET             set a built-in chain's policy
  masqctl [-t TABLE] -L [CHAIN] [-n] [-v] [-x] [--line-numbers]
                                                 list rules (addresses are always numeric)
  masqctl [-t TABLE] --list-rules [CHAIN]        list rules as specifications (iptables -S)
  masqctl -M -L [-v]                             list translations (ipchains -M -L)
  masqctl -M -S TCP TCPFIN UDP [--icmp N] [--other N]
                                                 set timeouts in seconds; 0 leaves one unchanged
  masqctl save [-t TABLE]                        print the rules as iptables-save text
  masqctl restore [--noflush] [FILE]             replace the rules from FILE or standard input
  masqctl stats [--runtime]                      statistics; --runtime: per pipeline stage
  masqctl sessions [list|count|flush] [--proto P] [--inside A[/LEN]] [--inside-port N]
                   [--outside A[/LEN]] [--outside-port N] [--remote A[/LEN]] [--remote-port N]
                   [--state S]
  masqctl timeouts                               show the timeouts
  masqctl config                                 show masqd's configuration
  masqctl version                                masqctl's and masqd's versions (also -V)
  masqctl json 'REQUEST'                         send one raw JSON request line

Options:
  -S, --socket PATH   masqd's control socket (default /run/masq/masqd.sock); iptables'
                      own -S is --list-rules here, and -S right after -M sets timeouts
  --json              print results as JSON
  -t, --table TABLE   filter (default), nat, raw (CT --helper only)
  -h, --help          this text

Examples:
  masqctl -t nat -A POSTROUTING -o wan -j MASQUERADE
  masqctl -t nat -I PREROUTING 1 -i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80
  masqctl -t nat -L -n -v --line-numbers
  masqctl save > rules.v4 ; masqctl restore < rules.v4
";

/// masqctl's `--help`: [`HELP`], then every command of the control protocol from the
/// command table ([`COMMANDS`]), for `masqctl json` and scripts.
pub fn help() -> String {
    let mut text = format!(
        "{HELP}\nControl protocol commands (masqctl json '{{\"id\":1,\"cmd\":\"NAME\",\"args\":{{...}}}}'; \
         docs/control-protocol.md):\n"
    );
    for c in COMMANDS {
        text.push_str(&format!("  {:<15} {}\n", c.name, c.about));
        if c.usage != "—" {
            text.push_str(&format!("  {:<15}   args: {}\n", "", c.usage.replace('`', "")));
        }
    }
    text.push_str(&format!("  (a filter is any of: {})\n", FILTER_ARGS.join(", ")));
    text
}

/// The subcommand words (anything else that does not start with `-` is an error).
const SUBCOMMANDS: &[&str] =
    &["save", "restore", "stats", "sessions", "lookup", "timeouts", "config", "version", "json", "help"];

/// Understand masqctl's arguments (without the program name).
pub fn parse<I, S>(args: I) -> Result<Invocation, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let args: Vec<String> = args.into_iter().map(Into::into).collect();
    // The first argument that is not a global flag decides: a word is a subcommand.
    let mut i = 0;
    let first = loop {
        match args.get(i).map(String::as_str) {
            Some("-S" | "--socket") => i += 2,
            Some(a) if a.starts_with("--socket=") || a == "--json" => i += 1,
            other => break other,
        }
    };
    match first {
        None => parse_iptables(&args),
        Some(word) if !word.starts_with('-') => {
            if SUBCOMMANDS.contains(&word) {
                parse_subcommand(&args)
            } else {
                usage(format!(
                    "unknown command `{word}` (subcommands: {}; or iptables options)",
                    SUBCOMMANDS.join(", ")
                ))
            }
        }
        Some(_) => parse_iptables(&args),
    }
}

// ---------------------------------------------------------------------------------------
// Subcommands (clap)
// ---------------------------------------------------------------------------------------

#[derive(Parser, Debug)]
#[command(name = "masqctl", disable_version_flag = true, disable_help_subcommand = true, about = "Control masqd")]
struct SubCli {
    /// masqd's control socket.
    #[arg(short = 'S', long, value_name = "PATH", default_value = DEFAULT_SOCKET, global = true)]
    socket: PathBuf,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Sub,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Print the rules as iptables-save text.
    Save {
        /// Only this table.
        #[arg(short, long)]
        table: Option<String>,
    },
    /// Replace the rules with iptables-save text (atomic: an error changes nothing).
    Restore {
        /// Add to the tables instead of replacing them.
        #[arg(short, long)]
        noflush: bool,
        /// Read from FILE instead of standard input.
        file: Option<PathBuf>,
    },
    /// Show statistics.
    Stats {
        /// Per worker and pipeline stage: calls, packets, cycles (VPP's `show runtime`).
        #[arg(long)]
        runtime: bool,
    },
    /// List, count or flush translations.
    Sessions {
        #[arg(value_enum, default_value_t = SessionsAction::List)]
        action: SessionsAction,
        #[command(flatten)]
        filter: FilterArgs,
        /// With list: show the owning worker.
        #[arg(short, long)]
        verbose: bool,
    },
    /// Who had an external address and port, or what a subscriber is translated to
    /// (deterministic mappings, live port blocks and live sessions).
    Lookup {
        /// External address, with or without a port: a.b.c.d[:port].
        #[arg(long, value_parser = outside, value_name = "ADDR[:PORT]", conflicts_with = "inside", required_unless_present = "inside")]
        outside: Option<LookupQuery>,
        /// Subscriber address.
        #[arg(long, value_name = "ADDR")]
        inside: Option<std::net::Ipv4Addr>,
        /// tcp, udp or icmp.
        #[arg(long = "proto", value_parser = protocol)]
        protocol: Option<Protocol>,
    },
    /// Show the idle timeouts.
    Timeouts,
    /// Show masqd's configuration.
    Config,
    /// Show masqctl's and masqd's versions.
    Version,
    /// Send one raw JSON request line; print the raw response line.
    Json {
        /// The request, e.g. '{"id":1,"cmd":"version"}'.
        request: String,
    },
    /// Show usage.
    Help,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum SessionsAction {
    List,
    Count,
    Flush,
}

#[derive(ClapArgs, Debug)]
struct FilterArgs {
    /// tcp, udp or icmp.
    #[arg(long = "proto", value_parser = protocol)]
    protocol: Option<Protocol>,
    /// Subscriber address or prefix.
    #[arg(long = "inside", value_parser = net, value_name = "ADDR[/LEN]")]
    inside_addr: Option<Ipv4Net>,
    /// Subscriber port (ICMP: query id).
    #[arg(long, value_name = "PORT")]
    inside_port: Option<u16>,
    /// External address or prefix.
    #[arg(long = "outside", value_parser = net, value_name = "ADDR[/LEN]")]
    outside_addr: Option<Ipv4Net>,
    /// External port.
    #[arg(long, value_name = "PORT")]
    outside_port: Option<u16>,
    /// Remote peer address or prefix.
    #[arg(long = "remote", value_parser = net, value_name = "ADDR[/LEN]")]
    remote_addr: Option<Ipv4Net>,
    /// Remote peer port.
    #[arg(long, value_name = "PORT")]
    remote_port: Option<u16>,
    /// Session state (ESTABLISHED, ...).
    #[arg(long)]
    state: Option<String>,
}

fn protocol(s: &str) -> Result<Protocol, String> {
    s.parse().map_err(|()| "expected tcp, udp or icmp".to_string())
}

fn outside(s: &str) -> Result<LookupQuery, String> {
    LookupQuery::parse_outside(s)
        .ok_or_else(|| "expected an IPv4 address, with or without a port: a.b.c.d[:port]".into())
}

fn net(s: &str) -> Result<Ipv4Net, String> {
    s.parse().map_err(|()| "expected an IPv4 address or prefix, a.b.c.d[/len]".to_string())
}

impl From<FilterArgs> for SessionFilter {
    fn from(f: FilterArgs) -> SessionFilter {
        SessionFilter {
            protocol: f.protocol,
            inside_addr: f.inside_addr,
            inside_port: f.inside_port,
            outside_addr: f.outside_addr,
            outside_port: f.outside_port,
            remote_addr: f.remote_addr,
            remote_port: f.remote_port,
            state: f.state,
        }
    }
}

/// The subcommand half of masqctl's command line as clap describes it (for the man page
/// and completions, see [`crate::manual`]).
pub fn subcommands() -> clap::Command {
    use clap::CommandFactory;
    SubCli::command()
}

fn parse_subcommand(args: &[String]) -> Result<Invocation, UsageError> {
    let cli = match SubCli::try_parse_from(std::iter::once("masqctl".to_string()).chain(args.iter().cloned())) {
        Ok(cli) => cli,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok(Invocation {
                socket: DEFAULT_SOCKET.into(),
                json: false,
                action: Action::Help(format!("{}\n", e.to_string().trim_end())),
            })
        }
        Err(e) => {
            let text = e.to_string();
            return usage(text.trim_end().strip_prefix("error: ").unwrap_or(text.trim_end()).to_string());
        }
    };
    let call = |command, view| Action::Call { command, view };
    let action = match cli.command {
        Sub::Save { table } => call(Command::RulesSave { table }, View::Saved),
        Sub::Restore { noflush, file } => Action::Restore { file, noflush },
        Sub::Stats { runtime } => call(Command::StatsGet, if runtime { View::Runtime } else { View::Stats }),
        Sub::Sessions { action, filter, verbose } => {
            let filter = SessionFilter::from(filter);
            match action {
                SessionsAction::List => Action::ListSessions { filter, verbose },
                SessionsAction::Count => call(Command::SessionsCount { filter, cursor: None }, View::Count),
                SessionsAction::Flush => call(Command::SessionsFlush { filter, cursor: None }, View::Flushed),
            }
        }
        Sub::Lookup { outside, inside, protocol } => {
            let query = match (outside, inside) {
                (Some(q), _) => q,
                (None, Some(a)) => LookupQuery::Inside(a),
                (None, None) => return usage("lookup: give --outside ADDR[:PORT] or --inside ADDR"),
            };
            call(Command::NatLookup { query, protocol }, View::Lookup)
        }
        Sub::Timeouts => call(Command::TimeoutsGet, View::Timeouts),
        Sub::Config => call(Command::ConfigGet, View::Json),
        Sub::Version => call(Command::Version, View::Version),
        Sub::Json { request } => {
            if request.contains('\n') {
                return usage("json: the request must be one line");
            }
            Action::Raw(request)
        }
        Sub::Help => Action::Help(help()),
    };
    Ok(Invocation { socket: cli.socket, json: cli.json, action })
}

// ---------------------------------------------------------------------------------------
// iptables syntax (by hand)
// ---------------------------------------------------------------------------------------

/// The iptables command flag and what it took with it.
#[derive(Debug, Clone, PartialEq)]
enum Ipt {
    Append {
        chain: String,
    },
    Insert {
        chain: String,
        position: u32,
    },
    Delete {
        chain: String,
        number: Option<u32>,
    },
    Flush {
        chain: Option<String>,
    },
    Policy {
        chain: String,
        target: String,
    },
    List {
        chain: Option<String>,
    },
    ListRules {
        chain: Option<String>,
    },
    /// `-M -S tcp tcpfin udp`.
    MasqTimeouts {
        values: Vec<u32>,
    },
    Version,
}

/// The letters of a cluster of flags as iptables users type them (`-nvL`, `-Lnv`,
/// `-vnxL`), or `None` for any other token.
fn cluster(arg: &str) -> Option<Vec<String>> {
    let letters = arg.strip_prefix('-').filter(|l| l.len() > 1 && l.chars().all(|c| "nvxL".contains(c)))?;
    Some(letters.chars().map(|c| format!("-{c}")).collect())
}

/// Options of a rule specification whose value may look like anything, an option
/// included (`-m comment --comment "-F for now"`): the value goes with it, unread.
const FREE_TEXT_OPTIONS: &[&str] = &["--comment"];

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Walks the argv, one token at a time.
struct Cursor {
    args: Vec<String>,
    at: usize,
}

impl Cursor {
    fn next(&mut self) -> Option<String> {
        let arg = self.args.get(self.at).cloned();
        self.at += 1;
        arg
    }

    fn peek(&self) -> Option<&str> {
        self.args.get(self.at).map(String::as_str)
    }

    /// The value of `flag` (the next token, whatever it looks like).
    fn value(&mut self, flag: &str, what: &str) -> Result<String, UsageError> {
        self.next().map_or_else(|| usage(format!("{flag} requires {what}")), Ok)
    }

    /// Whether the next token can be a chain name: not an option, not `!`.
    fn chain_next(&self) -> bool {
        self.peek().is_some_and(|p| !p.starts_with('-') && p != "!")
    }

    /// A required chain name after `flag`.
    fn chain(&mut self, flag: &str) -> Result<String, UsageError> {
        if self.chain_next() {
            Ok(self.next().unwrap_or_default())
        } else {
            usage(format!("{flag} requires a chain name"))
        }
    }

    /// An optional chain name after `flag`.
    fn optional_chain(&mut self) -> Option<String> {
        self.chain_next().then(|| self.next()).flatten()
    }

    /// Put `tokens` in place of the token just read (a cluster of flags, expanded).
    fn replace_last(&mut self, tokens: Vec<String>) {
        self.at -= 1;
        self.args.splice(self.at..=self.at, tokens);
    }

    /// An optional rule number (≥ 1).
    fn optional_number(&mut self, flag: &str) -> Result<Option<u32>, UsageError> {
        match self.peek() {
            Some(p) if is_number(p) => {
                let token = self.next().unwrap_or_default();
                match token.parse::<u32>() {
                    Ok(n) if n >= 1 => Ok(Some(n)),
                    _ => usage(format!("{flag}: invalid rule number `{token}` (rules count from 1)")),
                }
            }
            _ => Ok(None),
        }
    }
}

fn seconds(flag: &str, token: &str) -> Result<u32, UsageError> {
    token.parse().map_err(|_| UsageError(format!("{flag}: `{token}` is not a number of seconds")))
}

fn parse_iptables(args: &[String]) -> Result<Invocation, UsageError> {
    let mut c = Cursor { args: args.to_vec(), at: 0 };
    let mut socket: Option<PathBuf> = None;
    let mut json = false;
    let mut table: Option<String> = None;
    let mut masq = false;
    let mut command: Option<(String, Ipt)> = None;
    let mut view = RulesView::default();
    let mut icmp: Option<u32> = None;
    let mut other: Option<u32> = None;
    let mut spec: Vec<String> = Vec::new();
    let mut list_only: Option<String> = None;

    let set = |command: &mut Option<(String, Ipt)>, flag: &str, ipt: Ipt| match command {
        Some((previous, _)) => usage(format!("only one command at a time: {previous} and {flag}")),
        None => {
            *command = Some((flag.to_string(), ipt));
            Ok(())
        }
    };

    while let Some(arg) = c.next() {
        if let Some(flags) = cluster(&arg) {
            c.replace_last(flags);
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f @ ("--table" | "--socket" | "--icmp" | "--other"), v)) => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let value = |c: &mut Cursor, what: &str| match &inline {
            Some(v) => Ok(v.clone()),
            None => c.value(&flag, what),
        };
        match flag.as_str() {
            "-h" | "--help" => {
                return Ok(Invocation { socket: DEFAULT_SOCKET.into(), json, action: Action::Help(help()) })
            }
            "-t" | "--table" => {
                if table.is_some() {
                    return usage("-t given twice");
                }
                let name = match &inline {
                    Some(v) => v.clone(),
                    None if c.peek().is_some_and(|p| !p.starts_with('-')) => c.next().unwrap_or_default(),
                    None => return usage(format!("{flag} requires a table name")),
                };
                table = Some(name);
            }
            "-S" if masq && command.is_none() => {
                let mut values = Vec::new();
                while values.len() < 3 && c.peek().is_some_and(is_number) {
                    let token = c.next().unwrap_or_default();
                    values.push(seconds("-M -S", &token)?);
                }
                set(&mut command, "-M -S", Ipt::MasqTimeouts { values })?;
            }
            "-S" | "--socket" => socket = Some(value(&mut c, "a socket path")?.into()),
            "--json" => json = true,
            "-V" | "--version" => set(&mut command, &flag, Ipt::Version)?,
            "-A" | "--append" => {
                let chain = c.chain(&flag)?;
                set(&mut command, &flag, Ipt::Append { chain })?;
            }
            "-I" | "--insert" => {
                let chain = c.chain(&flag)?;
                let position = c.optional_number(&flag)?.unwrap_or(1);
                set(&mut command, &flag, Ipt::Insert { chain, position })?;
            }
            "-D" | "--delete" => {
                let chain = c.chain(&flag)?;
                let number = c.optional_number(&flag)?;
                set(&mut command, &flag, Ipt::Delete { chain, number })?;
            }
            "-F" | "--flush" => {
                let chain = c.optional_chain();
                set(&mut command, &flag, Ipt::Flush { chain })?;
            }
            "-P" | "--policy" => {
                let chain = c.chain(&flag)?;
                let target = match c.peek() {
                    Some(p) if !p.starts_with('-') => c.next().unwrap_or_default(),
                    _ => return usage(format!("{flag} {chain} requires a target (ACCEPT or DROP)")),
                };
                set(&mut command, &flag, Ipt::Policy { chain, target })?;
            }
            "-L" | "--list" => {
                let chain = c.optional_chain();
                set(&mut command, &flag, Ipt::List { chain })?;
            }
            "--list-rules" => {
                let chain = c.optional_chain();
                set(&mut command, &flag, Ipt::ListRules { chain })?;
            }
            "-M" | "--masquerading" => masq = true,
            "--icmp" => icmp = Some(seconds("--icmp", &value(&mut c, "a number of seconds")?)?),
            "--other" => other = Some(seconds("--other", &value(&mut c, "a number of seconds")?)?),
            "-n" | "--numeric" | "-x" | "--exact" | "--line-numbers" => {
                list_only.get_or_insert_with(|| flag.clone());
                match flag.as_str() {
                    "-x" | "--exact" => view.exact = true,
                    "--line-numbers" => view.line_numbers = true,
                    _ => {} // addresses are always numeric
                }
            }
            "-v" | "--verbose" => view.verbose = true,
            "-N" | "--new-chain" | "-X" | "--delete-chain" | "-E" | "--rename-chain" | "-Z" | "--zero" | "-C"
            | "--check" | "-R" | "--replace" => {
                return usage(format!("{flag} is not supported by masqd (use save, edit, restore)"))
            }
            _ if FREE_TEXT_OPTIONS.contains(&flag.as_str()) => {
                spec.push(arg);
                spec.extend(c.next());
            }
            _ => spec.push(arg),
        }
    }

    let Some((flag, ipt)) = command else {
        let hint = if socket.is_some() { " (note: -S is --socket here; iptables' -S is --list-rules)" } else { "" };
        return usage(format!("no command given: use -A, -I, -D, -F, -P, -L or -M{hint}"));
    };
    if icmp.is_some() && !matches!(ipt, Ipt::MasqTimeouts { .. }) {
        return usage("--icmp only goes with -M -S");
    }
    if other.is_some() && !matches!(ipt, Ipt::MasqTimeouts { .. }) {
        return usage("--other only goes with -M -S");
    }
    if let Some(option) = list_only.filter(|_| !matches!(ipt, Ipt::List { .. })) {
        return usage(format!("{option} only goes with -L (it changes how rules are listed)"));
    }
    let takes_spec = matches!(ipt, Ipt::Append { .. } | Ipt::Insert { .. } | Ipt::Delete { number: None, .. });
    if !takes_spec {
        if let Some(extra) = spec.first() {
            return usage(format!("unexpected argument `{extra}` with {flag}"));
        }
    }
    let named_table = table.is_some();
    let table = table.unwrap_or_else(|| DEFAULT_TABLE.to_string());
    let call = |command, view| Action::Call { command, view };

    let action = if masq {
        if named_table {
            return usage("-M does not take -t");
        }
        match ipt {
            Ipt::List { chain: None } => {
                Action::ListSessions { filter: SessionFilter::default(), verbose: view.verbose }
            }
            Ipt::MasqTimeouts { values } => {
                let set = |v: u32| (v > 0).then_some(v);
                let mut update =
                    TimeoutsUpdate { icmp: icmp.and_then(set), other: other.and_then(set), ..Default::default() };
                match values[..] {
                    [tcp, tcpfin, udp] => {
                        update.tcp = set(tcp);
                        update.tcpfin = set(tcpfin);
                        update.udp = set(udp);
                    }
                    [] if icmp.is_some() || other.is_some() => {}
                    _ => {
                        return usage("-M -S takes three timeouts, TCP TCPFIN UDP, in seconds (0 leaves one unchanged)")
                    }
                }
                if update.is_empty() {
                    return usage("-M -S: nothing to change (every timeout is 0)");
                }
                call(Command::TimeoutsSet(update), View::Silent)
            }
            _ => return usage("-M goes with -L (list translations) or -S (set timeouts)"),
        }
    } else {
        match ipt {
            Ipt::Append { chain } => call(Command::RulesAppend { table, chain, spec }, View::Silent),
            Ipt::Insert { chain, position } => {
                call(Command::RulesInsert { table, chain, position, spec }, View::Silent)
            }
            Ipt::Delete { chain, number } => {
                let rule = match number {
                    Some(n) => RuleSelector::Number(n),
                    None if spec.is_empty() => {
                        return usage(format!("{flag} {chain} requires a rule number or a rule"))
                    }
                    None => RuleSelector::Spec(spec),
                };
                call(Command::RulesDelete { table, chain, rule }, View::Silent)
            }
            Ipt::Flush { chain } => call(Command::RulesFlush { table, chain }, View::Silent),
            Ipt::Policy { chain, target } => call(Command::RulesPolicy { table, chain, policy: target }, View::Silent),
            Ipt::List { chain } => call(Command::RulesList { table, chain }, View::Rules(view)),
            Ipt::ListRules { chain } => call(Command::RulesList { table, chain }, View::RuleSpecs),
            Ipt::Version => call(Command::Version, View::Version),
            Ipt::MasqTimeouts { .. } => unreachable!("-S means timeouts only after -M"),
        }
    };
    Ok(Invocation { socket: socket.unwrap_or_else(|| DEFAULT_SOCKET.into()), json, action })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn parse_line(line: &str) -> Result<Invocation, UsageError> {
        parse(line.split_whitespace())
    }

    fn action(line: &str) -> Action {
        parse_line(line).unwrap_or_else(|e| panic!("{line}: {e}")).action
    }

    fn command(line: &str) -> (Command, View) {
        match action(line) {
            Action::Call { command, view } => (command, view),
            other => panic!("{line}: not a call: {other:?}"),
        }
    }

    fn error(line: &str) -> String {
        parse_line(line).expect_err(line).0
    }

    fn tokens(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn append() {
        assert_eq!(
            command("-t nat -A POSTROUTING -o wan -j MASQUERADE"),
            (
                Command::RulesAppend {
                    table: "nat".into(),
                    chain: "POSTROUTING".into(),
                    spec: tokens("-o wan -j MASQUERADE")
                },
                View::Silent
            )
        );
    }

    #[test]
    fn insert_with_position_and_spec_passed_verbatim() {
        assert_eq!(
            command("-t nat -I PREROUTING 1 -i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80").0,
            Command::RulesInsert {
                table: "nat".into(),
                chain: "PREROUTING".into(),
                position: 1,
                spec: tokens("-i wan -p tcp --dport 8080 -j DNAT --to-destination 100.64.0.2:80"),
            }
        );
        // Without a position, iptables inserts at the head.
        assert_eq!(
            command("-I FORWARD ! -s 10.0.0.0/8 -j DROP").0,
            Command::RulesInsert {
                table: "filter".into(),
                chain: "FORWARD".into(),
                position: 1,
                spec: tokens("! -s 10.0.0.0/8 -j DROP")
            }
        );
        assert!(error("-I FORWARD 0 -j DROP").contains("rules count from 1"));
    }

    #[test]
    fn delete_by_number_or_spec() {
        assert_eq!(
            command("-t nat -D POSTROUTING 1").0,
            Command::RulesDelete { table: "nat".into(), chain: "POSTROUTING".into(), rule: RuleSelector::Number(1) }
        );
        assert_eq!(
            command("-t nat -D POSTROUTING -o wan -j MASQUERADE").0,
            Command::RulesDelete {
                table: "nat".into(),
                chain: "POSTROUTING".into(),
                rule: RuleSelector::Spec(tokens("-o wan -j MASQUERADE"))
            }
        );
        assert!(error("-D POSTROUTING 1 -j DROP").contains("unexpected argument `-j`"));
        assert!(error("-D POSTROUTING").contains("requires a rule number or a rule"));
    }

    #[test]
    fn policy() {
        assert_eq!(
            command("-P FORWARD DROP"),
            (
                Command::RulesPolicy { table: "filter".into(), chain: "FORWARD".into(), policy: "DROP".into() },
                View::Silent
            )
        );
        assert!(error("-P FORWARD").contains("requires a target"));
    }

    #[test]
    fn list_with_modifiers_in_any_order_and_clustered() {
        let expected = (
            Command::RulesList { table: "nat".into(), chain: None },
            View::Rules(RulesView { verbose: true, line_numbers: true, exact: false }),
        );
        assert_eq!(command("-t nat -L -n -v --line-numbers"), expected);
        assert_eq!(command("--line-numbers -nvL -t nat"), expected);
        assert_eq!(
            command("-L FORWARD -x"),
            (
                Command::RulesList { table: "filter".into(), chain: Some("FORWARD".into()) },
                View::Rules(RulesView { exact: true, ..Default::default() })
            )
        );
        assert_eq!(command("--list-rules").1, View::RuleSpecs);
        assert!(error("-L FORWARD -j DROP").contains("unexpected argument `-j` with -L"));
    }

    #[test]
    fn flush_defaults_to_the_filter_table() {
        assert_eq!(command("-F"), (Command::RulesFlush { table: "filter".into(), chain: None }, View::Silent));
        assert_eq!(
            command("-t nat -F POSTROUTING").0,
            Command::RulesFlush { table: "nat".into(), chain: Some("POSTROUTING".into()) }
        );
    }

    #[test]
    fn masquerade_list_and_timeouts() {
        assert_eq!(action("-M -L"), Action::ListSessions { filter: SessionFilter::default(), verbose: false });
        assert_eq!(action("-M -L -n -v"), Action::ListSessions { filter: SessionFilter::default(), verbose: true });
        assert_eq!(
            command("-M -S 7200 10 160"),
            (
                Command::TimeoutsSet(TimeoutsUpdate {
                    tcp: Some(7200),
                    tcpfin: Some(10),
                    udp: Some(160),
                    ..Default::default()
                }),
                View::Silent
            )
        );
        assert_eq!(
            command("-M -S 0 0 60 --icmp 30").0,
            Command::TimeoutsSet(TimeoutsUpdate { udp: Some(60), icmp: Some(30), ..Default::default() })
        );
        assert_eq!(
            command("-M -S --icmp=45").0,
            Command::TimeoutsSet(TimeoutsUpdate { icmp: Some(45), ..Default::default() })
        );
        assert!(error("-M -S 7200 10").contains("three timeouts"));
        assert!(error("-M -S 0 0 0").contains("nothing to change"));
        assert!(error("-M -S 1 2 x").contains("unexpected argument `x`"));
        assert!(error("-M -A POSTROUTING").contains("-M goes with -L"));
        assert!(error("-t nat -M -L").contains("-M does not take -t"));
        assert!(error("-L --icmp 5").contains("--icmp only goes with -M -S"));
        assert_eq!(
            command("-M -S --other 900").0,
            Command::TimeoutsSet(TimeoutsUpdate { other: Some(900), ..Default::default() })
        );
        assert!(error("-L --other 5").contains("--other only goes with -M -S"));
    }

    #[test]
    fn socket_flag_everywhere() {
        let inv = parse_line("-S /tmp/m.sock -M -S 1 2 3").unwrap();
        assert_eq!(inv.socket, PathBuf::from("/tmp/m.sock"));
        assert!(matches!(inv.action, Action::Call { command: Command::TimeoutsSet(_), .. }));
        let inv = parse_line("-M -L -S /tmp/m.sock").unwrap();
        assert_eq!(
            (inv.socket, inv.action),
            ("/tmp/m.sock".into(), Action::ListSessions { filter: SessionFilter::default(), verbose: false })
        );
        let inv = parse_line("--socket=/tmp/x -F").unwrap();
        assert_eq!(inv.socket, PathBuf::from("/tmp/x"));
        let inv = parse_line("-S /tmp/y stats").unwrap();
        assert_eq!(
            (inv.socket, inv.action),
            ("/tmp/y".into(), Action::Call { command: Command::StatsGet, view: View::Stats })
        );
        let inv = parse_line("stats --socket /tmp/z --json").unwrap();
        assert_eq!((inv.socket, inv.json), ("/tmp/z".into(), true));
        assert_eq!(parse_line("-F").unwrap().socket, PathBuf::from(DEFAULT_SOCKET));
        assert!(error("-S /tmp/y").contains("no command given"));
        assert!(error("-S /tmp/y").contains("--list-rules"));
    }

    #[test]
    fn json_flag_on_listings() {
        let inv = parse_line("-t nat -L --json").unwrap();
        assert!(inv.json);
        assert!(parse_line("--json -M -L").unwrap().json);
    }

    #[test]
    fn subcommands() {
        assert_eq!(command("save"), (Command::RulesSave { table: None }, View::Saved));
        assert_eq!(command("save -t nat").0, Command::RulesSave { table: Some("nat".into()) });
        assert_eq!(action("restore"), Action::Restore { file: None, noflush: false });
        assert_eq!(
            action("restore --noflush rules.v4"),
            Action::Restore { file: Some("rules.v4".into()), noflush: true }
        );
        assert_eq!(command("stats"), (Command::StatsGet, View::Stats));
        assert_eq!(command("stats --runtime"), (Command::StatsGet, View::Runtime));
        assert_eq!(command("timeouts"), (Command::TimeoutsGet, View::Timeouts));
        assert_eq!(command("config"), (Command::ConfigGet, View::Json));
        assert_eq!(command("version"), (Command::Version, View::Version));
        let ip = |s: &str| s.parse::<std::net::Ipv4Addr>().unwrap();
        assert_eq!(
            command("lookup --outside 203.0.113.1:40001 --proto udp"),
            (
                Command::NatLookup {
                    query: LookupQuery::Outside { addr: ip("203.0.113.1"), port: Some(40001) },
                    protocol: Some(Protocol::Udp)
                },
                View::Lookup
            )
        );
        assert_eq!(
            command("lookup --outside 203.0.113.1"),
            (
                Command::NatLookup {
                    query: LookupQuery::Outside { addr: ip("203.0.113.1"), port: None },
                    protocol: None
                },
                View::Lookup
            )
        );
        assert_eq!(
            command("lookup --inside 100.64.0.2"),
            (Command::NatLookup { query: LookupQuery::Inside(ip("100.64.0.2")), protocol: None }, View::Lookup)
        );
        for bad in [
            "lookup",
            "lookup --outside 203.0.113.1:x",
            "lookup --outside 1.2.3.4 --inside 5.6.7.8",
            "lookup --inside 10.0.0.0/8",
        ] {
            assert!(parse(bad.split(' ')).is_err(), "{bad}");
        }
        assert_eq!(command("-V"), (Command::Version, View::Version));
        assert_eq!(
            parse(["json", r#"{"id":1,"cmd":"version"}"#]).unwrap().action,
            Action::Raw(r#"{"id":1,"cmd":"version"}"#.into())
        );
        assert!(parse(["json", "{\n}"]).is_err());
        assert_eq!(
            action("sessions --proto udp --inside 100.64.0.0/10 --remote-port 53"),
            Action::ListSessions {
                filter: SessionFilter {
                    protocol: Some(Protocol::Udp),
                    inside_addr: Some("100.64.0.0/10".parse().unwrap()),
                    remote_port: Some(53),
                    ..Default::default()
                },
                verbose: false
            }
        );
        assert_eq!(
            command("sessions count --state ESTABLISHED").0,
            Command::SessionsCount {
                filter: SessionFilter { state: Some("ESTABLISHED".into()), ..Default::default() },
                cursor: None
            }
        );
        assert_eq!(
            command("sessions flush --outside 203.0.113.1"),
            (
                Command::SessionsFlush {
                    filter: SessionFilter {
                        outside_addr: Some(Ipv4Net::host(Ipv4Addr::new(203, 0, 113, 1))),
                        ..Default::default()
                    },
                    cursor: None
                },
                View::Flushed
            )
        );
        assert!(error("sessions --proto sctp").contains("tcp, udp or icmp"));
        assert!(error("frobnicate").contains("unknown command `frobnicate`"));
        assert!(error("stats extra").contains("extra"));
    }

    #[test]
    fn a_comment_is_one_value_whatever_it_looks_like() {
        for comment in ["-F", "-S", "-nvL", "--json", "-h", "-A", "!", "-t", "", "two words"] {
            let args = ["-A", "FORWARD", "-m", "comment", "--comment", comment, "-j", "ACCEPT"];
            let inv = parse(args).unwrap_or_else(|e| panic!("{comment:?}: {e}"));
            assert_eq!(inv.socket, PathBuf::from(DEFAULT_SOCKET), "{comment:?}");
            assert!(!inv.json, "{comment:?}");
            assert_eq!(
                inv.action,
                Action::Call {
                    command: Command::RulesAppend {
                        table: "filter".into(),
                        chain: "FORWARD".into(),
                        spec: ["-m", "comment", "--comment", comment, "-j", "ACCEPT"].map(String::from).to_vec(),
                    },
                    view: View::Silent
                },
                "{comment:?}"
            );
        }
        // At the end of the line, --comment goes to masqd, which says what is missing.
        assert_eq!(
            command("-A FORWARD -j ACCEPT --comment").0,
            Command::RulesAppend {
                table: "filter".into(),
                chain: "FORWARD".into(),
                spec: tokens("-j ACCEPT --comment"),
            }
        );
    }

    #[test]
    fn negation_is_never_a_chain() {
        assert!(error("-A ! -s 10.0.0.0/8 -j DROP").contains("-A requires a chain name"));
        assert!(error("-F ! -s 1.2.3.4").contains("unexpected argument `!` with -F"));
    }

    #[test]
    fn list_flags_only_with_list() {
        assert!(error("-n -A FORWARD -j DROP").contains("-n only goes with -L"));
        assert!(error("-A FORWARD -j DROP --line-numbers").contains("--line-numbers only goes with -L"));
        assert!(error("-x -F").contains("-x only goes with -L"));
        assert!(error("--list-rules -n").contains("-n only goes with -L"));
        assert!(error("-M -S 1 2 3 -n").contains("-n only goes with -L"));
        // -v is iptables' verbose mode, accepted with every command.
        assert!(matches!(action("-v -A FORWARD -j DROP"), Action::Call { command: Command::RulesAppend { .. }, .. }));
        assert!(matches!(action("-M -L -n"), Action::ListSessions { .. }));
    }

    #[test]
    fn the_table_is_a_name() {
        assert!(error("-t -L").contains("-t requires a table name"));
        assert_eq!(command("--table=nat -L").0, Command::RulesList { table: "nat".into(), chain: None });
    }

    #[test]
    fn help_and_usage_errors() {
        assert!(matches!(action("--help"), Action::Help(text) if text.contains("-M -S")));
        // The protocol's commands, from the command table.
        let Action::Help(text) = action("help") else { panic!("help") };
        for c in COMMANDS {
            assert!(text.contains(&format!("  {:<15} {}\n", c.name, c.about)), "{}", c.name);
        }
        assert!(text.contains("args: table?, chain, position? (1-based, default 1), spec\n"), "{text}");
        assert!(matches!(action("-h"), Action::Help(_)));
        assert!(matches!(action("help"), Action::Help(_)));
        assert!(matches!(action("save --help"), Action::Help(text) if text.contains("--table")));
        assert!(error("").contains("no command given"));
        assert!(error("-A").contains("-A requires a chain name"));
        assert!(error("-A -j DROP").contains("-A requires a chain name"));
        assert!(error("-A X -j DROP -L").contains("only one command at a time: -A and -L"));
        assert!(error("-t nat -t filter -L").contains("-t given twice"));
        assert!(error("-t").contains("-t requires a table name"));
        assert!(error("-N mychain").contains("not supported"));
        assert!(error("-Z").contains("not supported"));
    }
}
