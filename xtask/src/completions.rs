//! bash and zsh completions for masqd and masqctl from their clap definitions
//! (`clap_complete`). masqctl's covers its subcommands and the iptables flags with their
//! tables and built-in chains (`control::manual`). File names follow where the package
//! installs them: bash-completion's `completions/<program>`, zsh's `_<program>`.

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::{generate, Shell};

/// (file name, script) for every program and shell.
pub fn all() -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (program, cmd) in [("masqd", dataplane::cli::Args::command()), ("masqctl", control::manual::masqctl_command())]
    {
        for shell in [Shell::Bash, Shell::Zsh] {
            let mut cmd = cmd.clone();
            let mut buf = Vec::new();
            generate(shell, &mut cmd, program, &mut buf);
            let name = match shell {
                Shell::Zsh => format!("zsh/_{program}"),
                _ => format!("bash/{program}"),
            };
            out.push((name, String::from_utf8(buf)?));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_program_gets_both_shells_and_they_know_the_words() {
        let all = all().unwrap();
        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["bash/masqd", "zsh/_masqd", "bash/masqctl", "zsh/_masqctl"]);
        let get = |n: &str| &all.iter().find(|(name, _)| name == n).unwrap().1;
        assert!(get("bash/masqd").contains("--config") && get("bash/masqd").contains("complete -F"));
        assert!(get("zsh/_masqd").starts_with("#compdef masqd"));
        for word in ["--append", "POSTROUTING", "restore", "sessions", "--socket"] {
            assert!(get("bash/masqctl").contains(word), "bash masqctl completion lacks {word}");
            assert!(get("zsh/_masqctl").contains(word), "zsh masqctl completion lacks {word}");
        }
    }
}
