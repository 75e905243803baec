//! The iptables-save file format, as `iptables-restore` reads it: `*table`, `:CHAIN
//! POLICY [packets:bytes]`, `-A CHAIN spec` (optionally after `[packets:bytes]`),
//! `COMMIT`, `#` comments and blank lines. Errors carry the 1-based line number.

use super::super::rule::{Chain, Policy, Table};
use super::super::ruleset::RuleSet;
use super::command::parse_chain;
use super::spec::parse_rule;
use super::tokenize::tokenize;
use super::{ParseError, ParseErrorKind};

/// Which tables a rules file contained (iptables-restore replaces only those).
pub type TablesSeen = [bool; Table::ALL.len()];

/// Read a whole iptables-save file. Errors carry the line number.
pub fn parse_save(text: &str, known_ports: &[&str]) -> Result<(RuleSet, TablesSeen), ParseError> {
    let mut rules = RuleSet::default();
    let mut seen: TablesSeen = [false; Table::ALL.len()];
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
    let chain = match parse_chain(table, name) {
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

    fn err_line(text: &str) -> (Option<usize>, String) {
        let e = RuleSet::parse_save(text, PORTS).unwrap_err();
        (e.line, e.to_string())
    }

    #[test]
    fn file_syntax_extras() {
        let text = "\
# a comment

*filter
:FORWARD ACCEPT [12:3456]
[5:600] -A FORWARD -p tcp -m tcp ! --dport 22 -m comment --comment \"no \\\"ssh\\\"\" -j DROP
   -A FORWARD -j ACCEPT   
COMMIT
";
        let set = RuleSet::parse_save(text, PORTS).unwrap();
        assert_eq!(set.rules(Chain::Forward).len(), 2);
        assert_eq!(set.rules(Chain::Forward)[0].comment.as_deref(), Some("no \"ssh\""));
        let saved = set.to_save_text();
        assert!(
            saved.contains("-A FORWARD -p tcp -m tcp ! --dport 22 -m comment --comment \"no \\\"ssh\\\"\" -j DROP\n"),
            "{saved}"
        );
        assert_eq!(RuleSet::parse_save(&saved, PORTS).unwrap(), set);
    }

    #[test]
    fn file_errors_carry_line_numbers() {
        let (line, msg) =
            err_line("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -j SANT\nCOMMIT\n");
        assert_eq!(line, Some(4));
        assert_eq!(
            msg,
            "line 4: unknown target \"SANT\" (expected one of MASQUERADE, SNAT, DNAT, REDIRECT, ACCEPT, DROP, RETURN, CT)"
        );

        let (line, msg) = err_line("*filter\n-A FORWARD --dport 22 -p tcp -j ACCEPT\nCOMMIT\n");
        assert_eq!((line, msg.as_str()), (Some(2), "line 2: --dport needs -p tcp or -p udp before it"));

        let text = "*filter\n\n# x\n\n\n\n-A FORWARD -s 10.0.0.300/8 -j DROP\nCOMMIT\n";
        let (line, msg) = err_line(text);
        assert_eq!(line, Some(7));
        assert!(msg.starts_with("line 7: bad address \"10.0.0.300/8\" (expected an IPv4 address"), "{msg}");

        let (line, msg) = err_line("*nat\n-A POSTROUTING -j MASQUERADE\n");
        assert_eq!((line, msg.as_str()), (None, "missing COMMIT for table nat"));
        let (line, msg) = err_line("*nat\n*filter\nCOMMIT\n");
        assert_eq!((line, msg.as_str()), (Some(2), "line 2: missing COMMIT for table nat"));

        let (line, msg) = err_line("*filter\n-A FORWARD -i eth0 -j ACCEPT\nCOMMIT\n");
        assert_eq!(line, Some(2));
        assert!(msg.ends_with("unknown interface \"eth0\" (expected one of the configured ports: wan, lan, lan2)"));

        let cases: &[(&str, usize, &str)] = &[
            ("*mangle\nCOMMIT\n", 1, "unknown table \"mangle\" (expected nat, filter or raw)"),
            ("*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n", 2, "chain OUTPUT is not supported: masq forwards only and has no local stack"),
            ("*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", 2, "chain INPUT is not supported"),
            ("*filter\n:MINE - [0:0]\nCOMMIT\n", 2, "user-defined chain \"MINE\" is not supported"),
            ("*filter\n-N MINE\nCOMMIT\n", 2, "user-defined chain \"MINE\""),
            ("*filter\n:FORWARD REJECT [0:0]\nCOMMIT\n", 2, "bad policy \"REJECT\" (expected ACCEPT or DROP)"),
            ("*nat\n:POSTROUTING DROP [0:0]\nCOMMIT\n", 2, "policy DROP is not allowed for nat chain POSTROUTING (expected ACCEPT"),
            ("*filter\n:FORWARD DROP [0:0\nCOMMIT\n", 2, "bad counters \"[0:0\" (expected [PACKETS:BYTES])"),
            ("*filter\n:FORWARD DROP [0:0] x\nCOMMIT\n", 2, "unexpected \"x\""),
            ("*filter\n:FORWARD DROP\n:FORWARD DROP\nCOMMIT\n", 3, "chain FORWARD declared twice"),
            ("*filter\nCOMMIT\n*filter\nCOMMIT\n", 3, "table filter appears twice"),
            ("-A FORWARD -j ACCEPT\n", 1, "\"-A\" outside a table (expected *nat or *filter before it)"),
            ("COMMIT\n", 1, "\"COMMIT\" outside a table"),
            ("*filter\n-I FORWARD -j ACCEPT\nCOMMIT\n", 2, "unexpected line starting \"-I\""),
            ("*filter\nhello\nCOMMIT\n", 2, "unexpected line starting \"hello\" (expected *TABLE, :CHAIN POLICY, -A CHAIN RULE, COMMIT or a # comment)"),
            ("*filter\n-A FORWARD -m comment --comment \"open\nCOMMIT\n", 2, "unterminated quote"),
            ("*nat\n-A FORWARD -j ACCEPT\nCOMMIT\n", 2, "chain FORWARD is not in table nat (expected PREROUTING or POSTROUTING; FORWARD is in table filter)"),
            ("*nat\n-A PREROUTING -j DROP\nCOMMIT\n", 2, "target DROP is not allowed in nat chain PREROUTING"),
        ];
        for (text, line, expected) in cases {
            let (got_line, msg) = err_line(text);
            assert_eq!(got_line, Some(*line), "{text:?}: {msg}");
            let prefix = format!("line {line}: {expected}");
            assert!(msg.starts_with(&prefix), "{text:?}:\n got  {msg}\n want {prefix}");
        }
    }

    #[test]
    fn counters_are_checked_then_ignored() {
        assert_eq!(parse_counters("[0:0]"), Ok(()));
        assert_eq!(parse_counters("[123:456789]"), Ok(()));
        for bad in ["[0:0", "0:0]", "[0]", "[a:0]", "[:0]", "[-1:0]"] {
            assert!(parse_counters(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn random_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse_save(&text, PORTS);
        }

        /// Lines made of rule-ish tokens inside a table.
        #[test]
        fn random_lines_in_a_table_never_panic(
            lines in proptest::collection::vec(proptest::collection::vec(
                proptest::sample::select(&["-A", "FORWARD", "POSTROUTING", ":FORWARD", "DROP", "-", "[0:0]", "[1:x]",
                    "-j", "ACCEPT", "-N", "X", "COMMIT", "*nat", "*filter", "#", "\"", "-o", "wan"][..]), 0..8), 0..8)
        ) {
            let body: Vec<String> = lines.iter().map(|l| l.join(" ")).collect();
            let _ = parse_save(&format!("*filter\n{}\nCOMMIT\n", body.join("\n")), PORTS);
        }
    }
}
