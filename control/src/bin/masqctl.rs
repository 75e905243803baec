//! masqctl: masqd's command line, in iptables' language. `masqctl --help` for usage.
//!
//! Exit status: 0 on success, 1 when masqd refuses or cannot be reached, 2 for a command
//! line masqctl does not understand. `masqctl version` / `-V` / `--version` print
//! masqctl's own version (exit 0) even when masqd cannot be reached, saying so on stderr.
#![deny(unsafe_code)]

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use control::cli::{self, Action, Invocation};
use control::format::{self, View};
use control::protocol::{Command, ExpectationList, Response, SessionPage, MAX_PAGE_LIMIT};
use control::{Client, ClientError};

const USAGE_EXIT: u8 = 2;

fn main() -> ExitCode {
    let args: Result<Vec<String>, _> = std::env::args_os().skip(1).map(|a| a.into_string()).collect();
    let parsed = match args {
        Ok(args) => cli::parse(args),
        Err(bad) => Err(cli::UsageError(format!("argument {bad:?} is not valid UTF-8"))),
    };
    let invocation = match parsed {
        Ok(invocation) => invocation,
        Err(e) => {
            eprintln!("masqctl: {e}");
            if !e.0.contains("--help") {
                eprintln!("Try `masqctl --help' for more information.");
            }
            return ExitCode::from(USAGE_EXIT);
        }
    };
    match run(invocation) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("masqctl: {}", describe(&e));
            ExitCode::FAILURE
        }
    }
}

/// One line for stderr; a connection failure says where masqctl looked and what to check.
fn describe(e: &anyhow::Error) -> String {
    match e.downcast_ref::<ClientError>() {
        Some(ClientError::Connect { .. }) => format!("{e} — is masqd running? (set -S/--socket)"),
        _ => format!("{e:#}"),
    }
}

/// `masqctl -M -L | head` is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

fn run(invocation: Invocation) -> Result<ExitCode> {
    let Invocation { socket, json, action } = invocation;
    let action = match action {
        Action::Help(text) => {
            io::stdout().write_all(text.as_bytes())?;
            return Ok(ExitCode::SUCCESS);
        }
        // Read the rules first: a bad file is reported without touching masqd.
        Action::Restore { file, noflush } => {
            let text = read_input(file)?;
            Action::Call { command: Command::RulesRestore { text, noflush }, view: View::Silent }
        }
        other => other,
    };

    // `masqctl --version` answers for masqctl itself even when masqd is not running.
    let is_version = matches!(&action, Action::Call { command: Command::Version, .. });
    let mut client = match Client::connect(&socket) {
        Err(e @ ClientError::Connect { .. }) if is_version && !json => {
            println!("masqctl {}", env!("CARGO_PKG_VERSION"));
            eprintln!("masqctl: masqd: {}", describe(&e.into()));
            return Ok(ExitCode::SUCCESS);
        }
        other => other?,
    };
    let text = match action {
        Action::Call { command, view } => {
            // A count or flush that masqd cuts short at its deadline goes on to the end.
            let result = client.call_to_end(&command)?;
            if json {
                format::json(&result)
            } else {
                format::render(view, result).with_context(|| format!("unexpected {} result", command.name()))?
            }
        }
        Action::ListSessions { filter, verbose } => {
            let mut sessions = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let page: SessionPage = client.call_as(&Command::SessionsList {
                    filter: filter.clone(),
                    cursor: cursor.clone(),
                    limit: MAX_PAGE_LIMIT,
                })?;
                sessions.extend(page.sessions);
                match page.next_cursor {
                    Some(next) if cursor.as_ref() == Some(&next) => bail!("masqd returned the same cursor twice"),
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
            // The protocol helpers' open expectations go with the table (a masqd that
            // does not know the command lists none).
            let expectations: ExpectationList = client.call_as(&Command::ExpectationsList).unwrap_or_default();
            if json {
                format::json(&serde_json::to_value(SessionPage { sessions, next_cursor: None })?)
            } else {
                let mut text = format::translations(&sessions, verbose);
                text.push_str(&format::expectations(&expectations.expectations));
                text
            }
        }
        Action::Raw(line) => {
            let answer = client.raw(&line)?;
            writeln!(io::stdout(), "{answer}")?;
            let ok = serde_json::from_str::<Response>(&answer).is_ok_and(|r| r.outcome.is_ok());
            return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        Action::Help(_) | Action::Restore { .. } => unreachable!("handled above"),
    };
    io::stdout().lock().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn read_input(file: Option<PathBuf>) -> Result<String> {
    match file {
        Some(path) => fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display())),
        None => {
            let mut text = String::new();
            io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
            Ok(text)
        }
    }
}
