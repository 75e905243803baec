//! masqctl's whole command line as clap describes it — the subcommands clap parses and
//! the iptables flags [`cli`](crate::cli) parses by hand — for its man page and its bash
//! and zsh completions (`cargo xtask dist`). Parsing never goes through this: a test
//! checks that every flag described here is one the parser takes.

use clap::{Arg, ArgAction, Command};

/// Built-in chains, for completion.
pub const CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];
/// Tables, for completion.
pub const TABLES: [&str; 2] = ["filter", "nat"];

/// One iptables flag: short, long, value name (`None`: a switch), help.
type Flag = (Option<char>, &'static str, Option<&'static str>, &'static str);

/// The iptables flags masqctl understands (see `masqctl --help`).
const IPTABLES_FLAGS: &[Flag] = &[
    (Some('t'), "table", Some("TABLE"), "The table to work on: filter (default) or nat"),
    (Some('A'), "append", Some("CHAIN"), "Append a rule to CHAIN (PREROUTING, INPUT, FORWARD, OUTPUT, POSTROUTING)"),
    (Some('I'), "insert", Some("CHAIN"), "Insert a rule into CHAIN at a position (default 1)"),
    (Some('D'), "delete", Some("CHAIN"), "Delete a rule from CHAIN, by number or specification"),
    (Some('F'), "flush", None, "Flush a chain, or every chain of the table"),
    (Some('P'), "policy", Some("CHAIN"), "Set a built-in chain's policy"),
    (Some('L'), "list", None, "List rules (addresses are always numeric)"),
    (None, "list-rules", None, "List rules as specifications (iptables -S)"),
    (Some('M'), "masquerading", None, "With -L: list translations; with -S TCP TCPFIN UDP: set timeouts"),
    (None, "icmp", Some("SECONDS"), "With -M -S: the ICMP timeout too"),
    (Some('n'), "numeric", None, "With -L: numeric output (always)"),
    (Some('v'), "verbose", None, "With -L: packet and byte counters, interfaces"),
    (Some('x'), "exact", None, "With -L -v: exact counters"),
    (None, "line-numbers", None, "With -L: rule numbers"),
    (Some('V'), "version", None, "masqctl's and masqd's versions"),
];

/// masqctl's command line for documentation and completion.
pub fn masqctl_command() -> Command {
    let mut cmd = crate::cli::subcommands()
        .version(env!("CARGO_PKG_VERSION"))
        .about("Control masqd, the masq NAT daemon, in iptables' language")
        .long_about(
            "masqctl talks to masqd over its control socket. Rules are written as iptables writes them \
             (-t nat -A POSTROUTING -o wan -j MASQUERADE); interfaces are masqd's port names. Subcommands \
             save and restore the rules, list, count and flush translations, and show statistics, \
             timeouts, the configuration and versions.",
        )
        .subcommand_required(false)
        .args_conflicts_with_subcommands(true)
        .arg(Arg::new("rule").value_name("RULE-SPEC").num_args(0..).trailing_var_arg(true).help(
            "The rule: matches (-s -d -i -o -p --sport --dport -m ...) and a target (-j MASQUERADE, SNAT, \
             DNAT, REDIRECT, ACCEPT, DROP)",
        ));
    for (short, long, value, help) in IPTABLES_FLAGS {
        let mut arg = Arg::new(*long).long(*long).help(*help);
        if let Some(c) = short {
            arg = arg.short(*c);
        }
        arg = match value {
            Some(name) => arg.value_name(*name).action(ArgAction::Set),
            None => arg.action(ArgAction::SetTrue),
        };
        // Completion offers the tables and built-in chains; the help names them once.
        arg = match *value {
            Some("TABLE") => arg.value_parser(TABLES).hide_possible_values(true),
            Some("CHAIN") => arg.value_parser(CHAINS).hide_possible_values(true),
            _ => arg,
        };
        cmd = cmd.arg(arg);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse, Action};

    #[test]
    fn the_description_is_consistent() {
        masqctl_command().debug_assert();
    }

    #[test]
    fn every_described_flag_is_one_the_parser_takes() {
        // A command line using each flag; `@` stands for its short or long form.
        let example = |flag: &str| match flag {
            "table" => "@ nat -L",
            "append" => "@ FORWARD -j ACCEPT",
            "insert" => "@ FORWARD -j ACCEPT",
            "delete" => "@ FORWARD 1",
            "flush" | "list" | "list-rules" | "version" => "@",
            "policy" => "@ FORWARD DROP",
            "numeric" | "verbose" | "line-numbers" => "-L @",
            "exact" => "-L -v @",
            "masquerading" => "@ -L",
            "icmp" => "-M -S 7200 10 160 @ 30",
            other => panic!("no example for --{other}"),
        };
        for (short, long, _, _) in IPTABLES_FLAGS {
            let mut forms = vec![format!("--{long}")];
            forms.extend(short.map(|c| format!("-{c}")));
            for form in forms {
                let args: Vec<String> =
                    example(long).split_whitespace().map(|w| if w == "@" { form.clone() } else { w.into() }).collect();
                match parse(args.clone()) {
                    Ok(i) => assert!(!matches!(i.action, Action::Help(_)), "{args:?}"),
                    Err(e) => panic!("masqctl {args:?}: {e}"),
                }
            }
        }
        // Every subcommand the description lists parses too.
        for sub in masqctl_command().get_subcommands() {
            let name = sub.get_name();
            let args: Vec<&str> = match name {
                "json" => vec![name, "{}"],
                "lookup" => vec![name, "--outside", "203.0.113.1:40001"],
                _ => vec![name],
            };
            parse(args.clone()).unwrap_or_else(|e| panic!("masqctl {args:?}: {e}"));
        }
    }
}
