//! The parts of a rule command, as the control protocol carries them: a table name, a
//! chain name, a rule specification as argv tokens, a policy name (`rules.append {table:
//! "nat", chain: "POSTROUTING", spec: ["-o", "wan", "-j", "MASQUERADE"]}`).
//!
//! masqctl's command-line parser (`control::cli`) decides which token is which and sends
//! them as typed; these functions give each its meaning, with the same errors a rules
//! file gets. `control_plane::rules` puts them together into a
//! [`Command`](super::super::Command) and maps each error onto the protocol's codes.

use super::super::rule::{Chain, Policy, Rule, Table};
use super::spec::parse_spec;
use super::ParseErrorKind;

/// `nat` or `filter`.
pub fn parse_table(name: &str) -> Result<Table, ParseErrorKind> {
    Table::from_name(name).ok_or_else(|| ParseErrorKind::UnknownTable { token: name.to_string() })
}

/// The chain `name` of `table`, or why not: a chain of the other table, a chain masq does
/// not have (INPUT, OUTPUT: no local stack), or an unknown (user) chain.
pub fn parse_chain(table: Table, name: &str) -> Result<Chain, ParseErrorKind> {
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

/// A rule specification for `chain`, as argv tokens (everything after `-A CHAIN`).
/// Interfaces are checked against `known_ports`, the configured port names.
pub fn parse_rule_spec<S: AsRef<str>>(chain: Chain, spec: &[S], known_ports: &[&str]) -> Result<Rule, ParseErrorKind> {
    let tokens: Vec<&str> = spec.iter().map(AsRef::as_ref).collect();
    parse_spec(chain, &tokens, known_ports)
}

/// `-P CHAIN POLICY`: ACCEPT or DROP, and one the chain may have (nat chains: ACCEPT).
pub fn parse_policy(chain: Chain, name: &str) -> Result<Policy, ParseErrorKind> {
    let policy = Policy::from_name(name).ok_or_else(|| ParseErrorKind::BadPolicy { token: name.to_string() })?;
    if !chain.allows_policy(policy) {
        return Err(ParseErrorKind::PolicyNotAllowed { chain, policy });
    }
    Ok(policy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Target;

    const PORTS: &[&str] = &["wan", "lan"];

    #[test]
    fn tables() {
        assert_eq!(parse_table("nat"), Ok(Table::Nat));
        assert_eq!(parse_table("filter"), Ok(Table::Filter));
        assert_eq!(
            parse_table("mangle").unwrap_err().to_string(),
            "unknown table \"mangle\" (expected nat, filter or raw)"
        );
        assert!(parse_table("NAT").is_err(), "names are case-sensitive, as in iptables");
    }

    #[test]
    fn chains() {
        assert_eq!(parse_chain(Table::Nat, "POSTROUTING"), Ok(Chain::Postrouting));
        assert_eq!(parse_chain(Table::Filter, "FORWARD"), Ok(Chain::Forward));
        let e = |table, name| parse_chain(table, name).unwrap_err().to_string();
        assert_eq!(
            e(Table::Filter, "POSTROUTING"),
            "chain POSTROUTING is not in table filter (expected FORWARD; POSTROUTING is in table nat)"
        );
        assert_eq!(
            e(Table::Nat, "INPUT"),
            "chain INPUT is not supported: masq forwards only and has no local stack \
             (expected PREROUTING or POSTROUTING in table nat)"
        );
        assert_eq!(e(Table::Filter, "mychain"), "unknown chain \"mychain\" in table filter (expected FORWARD)");
        assert_eq!(
            e(Table::Nat, "postrouting"),
            "unknown chain \"postrouting\" in table nat (expected PREROUTING or POSTROUTING)"
        );
    }

    #[test]
    fn specs_from_tokens() {
        let spec = ["-o", "wan", "-j", "MASQUERADE"].map(String::from);
        let rule = parse_rule_spec(Chain::Postrouting, &spec, PORTS).unwrap();
        assert_eq!(rule.target, Target::Masquerade { ports: None, random: false });
        // A comment is one token, spaces and leading dash included.
        let spec = ["-m", "comment", "--comment", "-F now", "-j", "ACCEPT"];
        assert_eq!(parse_rule_spec(Chain::Forward, &spec, PORTS).unwrap().comment.as_deref(), Some("-F now"));
        let e = parse_rule_spec(Chain::Forward, &["-i", "eth0", "-j", "ACCEPT"], PORTS).unwrap_err();
        assert_eq!(e.token(), Some("eth0"));
        assert_eq!(parse_rule_spec::<&str>(Chain::Forward, &[], PORTS), Err(ParseErrorKind::MissingTarget));
    }

    #[test]
    fn policies() {
        assert_eq!(parse_policy(Chain::Forward, "DROP"), Ok(Policy::Drop));
        assert_eq!(parse_policy(Chain::Prerouting, "ACCEPT"), Ok(Policy::Accept));
        assert_eq!(
            parse_policy(Chain::Forward, "REJECT").unwrap_err().to_string(),
            "bad policy \"REJECT\" (expected ACCEPT or DROP)"
        );
        assert_eq!(
            parse_policy(Chain::Postrouting, "DROP"),
            Err(ParseErrorKind::PolicyNotAllowed { chain: Chain::Postrouting, policy: Policy::Drop })
        );
    }
}
