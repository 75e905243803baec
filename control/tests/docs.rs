//! docs/control-protocol.md is a contract: every example request parses to its command,
//! every example response has exactly the shape of that command's result type, and every
//! example of a request-level error is the error masqd really gives, word for word.

use control::protocol::{
    ExpectationList, Flushed, RestoreSummary, RuleAdded, RuleListing, SavedRules, SessionCount, SessionPage, Stats,
    Timeouts, VersionInfo,
};
use control::server::respond;
use control::{Command, ControlError, ErrorCode, Handler, Request, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

struct Refuse;

impl Handler for Refuse {
    fn handle(&self, _: Command) -> Result<Value, ControlError> {
        Err(ControlError::unsupported("documentation check"))
    }
}

/// (request line, response JSON) for every ```json block holding a → / ← pair.
fn examples() -> Vec<(String, Value)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control-protocol.md");
    let text = std::fs::read_to_string(path).expect("docs/control-protocol.md");
    let mut out = Vec::new();
    for block in text.split("```json\n").skip(1) {
        let block = block.split("```").next().unwrap();
        let (request, response) = block.split_once("\n← ").expect("a ← line");
        let request = request.strip_prefix("→ ").expect("a → line first");
        let response: Value = serde_json::from_str(response).unwrap_or_else(|e| panic!("{e}: {response}"));
        out.push((request.to_string(), response));
    }
    out
}

/// `result` decodes as `T` and encodes back to itself: no missing, extra or misnamed field.
fn same_shape<T: Serialize + DeserializeOwned>(result: &Value) {
    let typed: T = serde_json::from_value(result.clone()).unwrap_or_else(|e| panic!("{e}: {result}"));
    assert_eq!(&serde_json::to_value(&typed).unwrap(), result);
}

#[test]
fn every_documented_example_is_true() {
    let examples = examples();
    let mut documented = std::collections::BTreeSet::new();
    for (line, response) in &examples {
        let response: Response = serde_json::from_value(response.clone()).unwrap_or_else(|e| panic!("{e}: {response}"));
        let parsed = Request::from_line(line.as_bytes()).map_err(|e| e.error).and_then(|r| Command::from_request(&r));
        match (&parsed, &response.outcome) {
            (Ok(command), Ok(result)) => {
                documented.insert(command.name());
                assert_eq!(response.id, serde_json::from_str::<Value>(line).unwrap()["id"], "{line}");
                match command {
                    Command::RulesList { .. } => same_shape::<RuleListing>(result),
                    Command::RulesAppend { .. } | Command::RulesInsert { .. } => same_shape::<RuleAdded>(result),
                    Command::RulesDelete { .. } | Command::RulesPolicy { .. } => assert_eq!(result, &json!({})),
                    Command::RulesFlush { .. } | Command::SessionsFlush { .. } => same_shape::<Flushed>(result),
                    Command::RulesSave { .. } => same_shape::<SavedRules>(result),
                    Command::RulesRestore { .. } => same_shape::<RestoreSummary>(result),
                    Command::SessionsList { .. } => same_shape::<SessionPage>(result),
                    Command::SessionsCount { .. } => same_shape::<SessionCount>(result),
                    Command::StatsGet => same_shape::<Stats>(result),
                    Command::ExpectationsList => same_shape::<ExpectationList>(result),
                    Command::TimeoutsGet | Command::TimeoutsSet(_) => same_shape::<Timeouts>(result),
                    Command::ConfigGet => assert!(result.is_object()),
                    Command::NatLookup { .. } => same_shape::<control::protocol::LookupResult>(result),
                    Command::Version => same_shape::<VersionInfo>(result),
                }
            }
            // A handler's refusal (not_found, conflict): the request itself must be valid.
            (Ok(command), Err(error)) => {
                documented.insert(command.name());
                assert!(matches!(error.code, ErrorCode::NotFound | ErrorCode::Conflict), "{line}");
            }
            // A request-level error: exactly what the server answers.
            (Err(_), _) => assert_eq!(respond(&Refuse, line.as_bytes()), response, "{line}"),
        }
    }
    let missing: Vec<_> = Command::NAMES.iter().filter(|n| !documented.contains(*n)).collect();
    assert!(missing.is_empty(), "commands without an example: {missing:?}");
}

/// The command table of docs/control-protocol.md is the protocol's command table
/// (`control::protocol::COMMANDS`): the same commands, in the same order, with the same
/// arguments and results; and each command has its own section.
#[test]
fn the_documented_command_table_is_the_command_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/control-protocol.md");
    let text = std::fs::read_to_string(path).expect("docs/control-protocol.md");
    let section = text.split("\n## Commands\n").nth(1).expect("a ## Commands section");
    let rows: Vec<&str> = section
        .lines()
        .skip_while(|l| !l.starts_with("| command |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .collect();
    let expected: Vec<String> =
        control::protocol::COMMANDS.iter().map(|c| format!("| `{}` | {} | {} |", c.name, c.usage, c.result)).collect();
    assert_eq!(rows, expected, "docs/control-protocol.md's command table and COMMANDS differ");
    for c in control::protocol::COMMANDS {
        assert!(text.contains(&format!("\n### {}\n", c.name)), "no section for {}", c.name);
    }
}
