//! masqd's command line, in the library so that the packaging task (`cargo xtask dist`)
//! renders its man page and shell completions from the same definition.

use std::path::PathBuf;

use clap::Parser;

/// masq carrier-grade NAT daemon: a DPDK poll-mode dataplane that routes and translates
/// IPv4 (MASQUERADE, SNAT, DNAT, REDIRECT) between its ports.
#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(name = "masqd", version)]
pub struct Args {
    /// Configuration file (TOML; see masqd.toml(5)).
    #[arg(short, long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub config: PathBuf,
    /// NAT and filter rules (iptables-save format; interfaces are port names).
    /// Without it: no rules, plain routing.
    #[arg(long, value_name = "FILE", value_hint = clap::ValueHint::FilePath)]
    pub rules: Option<PathBuf>,
    /// Validate the configuration (and rules) and exit.
    #[arg(long)]
    pub check: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_definition_is_consistent_and_named_masqd() {
        Args::command().debug_assert();
        assert_eq!(Args::command().get_name(), "masqd");
        let a = Args::try_parse_from(["masqd", "-c", "/etc/masq/masqd.toml", "--rules", "r.v4", "--check"]).unwrap();
        assert_eq!((a.config.to_str(), a.rules.is_some(), a.check), (Some("/etc/masq/masqd.toml"), true, true));
        assert!(Args::try_parse_from(["masqd"]).is_err(), "--config is required");
    }
}
