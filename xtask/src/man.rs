//! The man pages: `masqd(8)` and `masqctl(8)` from the clap definitions (`clap_mangen`
//! renders name, synopsis, description and options; the sections clap cannot know —
//! signals, exit status, files — are added here), and `masqd.toml(5)` from
//! `docs/configuration.md`, the configuration reference whose keys a unit test holds to
//! the parser (`dataplane::config`).

use anyhow::Result;
use clap::CommandFactory;
use clap_mangen::roff::{bold, italic, roman, Inline, Roff};
use clap_mangen::Man;

const MANUAL: &str = "masq";

fn source() -> String {
    format!("masq {}", env!("CARGO_PKG_VERSION"))
}

/// A `.SH` section of paragraphs (blank lines separate them).
fn section(roff: &mut Roff, title: &str, text: &str) {
    roff.control("SH", [title]);
    for (i, para) in text.split("\n\n").enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(para.replace('\n', " "))]);
    }
}

/// A `.SH` section of tagged paragraphs: (tag, text).
fn tagged(roff: &mut Roff, title: &str, items: &[(Vec<Inline>, &str)]) {
    roff.control("SH", [title]);
    for (tag, text) in items {
        roff.control("TP", []);
        roff.text(tag.clone());
        roff.text([roman(*text)]);
    }
}

/// Lines shown as they are (`.nf`), in a section.
fn verbatim(roff: &mut Roff, title: &str, lines: &str) {
    roff.control("SH", [title]);
    roff.control("nf", []);
    for line in lines.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
}

fn render(man: &Man, extra: impl FnOnce(&mut Roff)) -> Result<String> {
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut roff = Roff::default();
    extra(&mut roff);
    roff.to_writer(&mut out)?;
    Ok(String::from_utf8(out)?)
}

/// `masqd(8)`.
pub fn masqd() -> Result<String> {
    let cmd = dataplane::cli::Args::command().long_about(
        "masqd is masq's dataplane: a DPDK poll-mode process that answers ARP, routes IPv4 between its \
         ports and translates addresses as iptables' MASQUERADE, SNAT, DNAT and REDIRECT do, with \
         per-protocol timeouts and a listable translation table, on one pinned worker per configured core.\n\n\
         It reads and checks the configuration (masqd.toml(5)) and the rules (--rules, iptables-save text) \
         before DPDK's EAL starts, so a typo costs nothing; claims its control socket (and the metrics \
         address, if configured); starts EAL, the ports and the workers; then serves masqctl(8) on the \
         control socket and Prometheus on [metrics] listen. Under systemd (Type=notify) it reports READY \
         once all of that serves.",
    );
    let man = Man::new(cmd).section("8").manual(MANUAL).source(source());
    render(&man, |roff| {
        tagged(
            roff,
            "SIGNALS",
            &[(
                vec![bold("SIGTERM"), roman(", "), bold("SIGINT")],
                "Stop: the workers finish their pass, the control socket is removed, every counter is \
                     printed one per line (scope, name, value), and masqd checks that every packet buffer came \
                     back to its pool.",
            )],
        );
        tagged(
            roff,
            "EXIT STATUS",
            &[
                (vec![bold("0")], "Clean shutdown (or --check found the configuration good)."),
                (vec![bold("1")], "A runtime error: EAL, a port, the control socket or the metrics address."),
                (vec![bold("2")], "The configuration or the rules are wrong; the message names the field or line."),
                (vec![bold("3")], "Packet buffers leaked at shutdown."),
            ],
        );
        tagged(
            roff,
            "FILES",
            &[
                (vec![italic("/etc/masq/masqd.toml")], "The configuration the systemd unit starts masqd with."),
                (vec![italic("/etc/masq/rules.v4")], "The rules the unit loads at start and on reload."),
                (vec![italic("/run/masq/masqd.sock")], "The default control socket ([control] socket)."),
                (vec![italic("/lib/systemd/system/masqd.service")], "The systemd unit."),
            ],
        );
        section(
            roff,
            "SEE ALSO",
            "masqctl(8), masqd.toml(5), iptables-save(8), systemctl(1). The project's docs/ directory: \
             configuration.md, nat.md, operations.md, control-protocol.md.",
        );
    })
}

/// `masqctl(8)`.
pub fn masqctl() -> Result<String> {
    let cmd = control::manual::masqctl_command();
    let subcommands: Vec<clap::Command> = cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned().collect();
    let man = Man::new(cmd.override_usage(
        "masqctl [-S PATH] [--json] [-t TABLE] -A|-I|-D|-F|-P|-L|--list-rules [CHAIN] [RULE-SPEC]\n\
         masqctl [-S PATH] [--json] -M -L [-v] | -M -S TCP TCPFIN UDP [--icmp N]\n\
         masqctl [-S PATH] [--json] COMMAND [ARGS]",
    ))
    .section("8")
    .manual(MANUAL)
    .source(source());
    let help = match control::cli::parse(["--help"]).map(|i| i.action) {
        Ok(control::cli::Action::Help(text)) => text,
        _ => String::new(),
    };
    render(&man, |roff| {
        roff.control("SH", ["COMMANDS"]);
        for sub in &subcommands {
            roff.control("TP", []);
            let args: Vec<&clap::Arg> =
                sub.get_arguments().filter(|a| !a.is_hide_set() && !a.is_global_set()).collect();
            let mut tag = vec![bold(format!("masqctl {}", sub.get_name()))];
            for arg in args.iter().filter(|a| a.is_positional()) {
                let values: Vec<String> = arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect();
                let name = if values.is_empty() {
                    arg.get_value_names()
                        .and_then(|v| v.first())
                        .map_or_else(|| arg.get_id().as_str().to_uppercase(), |v| v.to_string())
                } else {
                    values.join("|")
                };
                tag.push(roman(format!(" [{name}]")));
            }
            if args.iter().any(|a| !a.is_positional()) {
                tag.push(roman(" [OPTIONS]"));
            }
            roff.text(tag);
            if let Some(about) = sub.get_about() {
                roff.text([roman(about.to_string())]);
            }
            for arg in args.iter().filter(|a| !a.is_positional()) {
                let mut flag = arg.get_long().map(|l| format!("--{l}")).unwrap_or_default();
                if let Some(c) = arg.get_short() {
                    flag = format!("-{c}, {flag}");
                }
                if arg.get_action().takes_values() {
                    let value = arg.get_value_names().and_then(|v| v.first()).map_or("VALUE", |v| v.as_str());
                    flag.push_str(&format!(" {value}"));
                }
                roff.control("RS", []);
                roff.control("TP", []);
                roff.text([bold(flag)]);
                roff.text([roman(arg.get_help().map(|h| h.to_string()).unwrap_or_default())]);
                roff.control("RE", []);
            }
        }
        if !help.is_empty() {
            verbatim(roff, "USAGE SUMMARY", help.trim_end());
        }
        tagged(
            roff,
            "EXIT STATUS",
            &[
                (vec![bold("0")], "Success (and for --version, even when masqd cannot be reached)."),
                (vec![bold("1")], "masqd refused the command (its message is printed) or is not running."),
                (vec![bold("2")], "The command line is not understood."),
            ],
        );
        tagged(
            roff,
            "FILES",
            &[(vec![italic("/run/masq/masqd.sock")], "masqd's default control socket (-S to use another).")],
        );
        section(
            roff,
            "SEE ALSO",
            "masqd(8), masqd.toml(5), iptables(8), iptables-save(8). The JSON protocol under masqctl: \
             docs/control-protocol.md.",
        );
    })
}

/// `masqd.toml(5)` from `docs/configuration.md`: its headings one level up under NAME,
/// SYNOPSIS and DESCRIPTION, each key table as a list, links as their text.
pub fn masqd_toml(markdown: &str) -> String {
    let body = markdown.lines().skip_while(|l| !l.starts_with("# ")).skip(1).collect::<Vec<_>>().join("\n");
    let body = tables_to_lists(&strip_links(&body));
    let body: String = body
        .lines()
        .map(|l| if l.starts_with("##") { l[1..].to_string() } else { l.to_string() })
        .collect::<Vec<_>>()
        .join("\n");
    let page = format!(
        "# NAME\n\nmasqd.toml - configuration file of masqd, the masq NAT daemon\n\n\
         # SYNOPSIS\n\n/etc/masq/masqd.toml\n\n\
         # DESCRIPTION\n{body}\n\n\
         # SEE ALSO\n\nmasqd(8), masqctl(8); docs/nat.md for the rules file.\n"
    );
    // mandown keeps Markdown's backticks around code; man pages show literals in bold.
    mandown::convert(&page, "MASQD.TOML", 5).replace("`\\f[CR]", "\\fB").replace("\\fP`", "\\fP")
}

/// `[text](target)` -> `text`.
fn strip_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let (before, from) = rest.split_at(open);
        out.push_str(before);
        let link = from.find("](").and_then(|mid| {
            let close = from[mid..].find(')')? + mid;
            // A link's text has no newline or nested bracket.
            (!from[1..mid].contains(['\n', '['])).then_some((mid, close))
        });
        match link {
            Some((mid, close)) => {
                out.push_str(&from[1..mid]);
                rest = &from[close + 1..];
            }
            None => {
                out.push('[');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Markdown tables -> bullet lists: the first column in bold, the others as
/// `header: value` (a column named "meaning" or "description" as plain text).
fn tables_to_lists(text: &str) -> String {
    let cells = |line: &str| -> Vec<String> {
        line.trim().trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect()
    };
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let is_table = lines[i].trim_start().starts_with('|')
            && lines
                .get(i + 1)
                .is_some_and(|l| l.trim_start().starts_with("|---") || l.trim_start().starts_with("| ---"));
        if !is_table {
            out.push(lines[i].to_string());
            i += 1;
            continue;
        }
        let header = cells(lines[i]);
        i += 2;
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            let row = cells(lines[i]);
            let mut item = format!("- **{}**", row.first().cloned().unwrap_or_default());
            let mut facts = Vec::new();
            let mut prose = String::new();
            for (h, v) in header.iter().zip(&row).skip(1) {
                match h.to_ascii_lowercase().as_str() {
                    "meaning" | "description" => prose = v.clone(),
                    h => facts.push(format!("{h}: {v}")),
                }
            }
            if !facts.is_empty() {
                item.push_str(&format!(" ({})", facts.join("; ")));
            }
            if !prose.is_empty() {
                item.push_str(&format!(" — {prose}"));
            }
            out.push(item);
            i += 1;
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_become_their_text() {
        assert_eq!(strip_links("see [nat.md](nat.md) and [x]"), "see nat.md and [x]");
        assert_eq!(strip_links("`a[0]` [Multi-core](#multi-core)."), "`a[0]` Multi-core.");
    }

    #[test]
    fn tables_become_lists() {
        let md =
            "intro\n\n| key | type | default | meaning |\n|---|---|---|---|\n| `a` | integer | `1` | The a. |\n\nafter";
        assert_eq!(tables_to_lists(md), "intro\n\n- **`a`** (type: integer; default: `1`) — The a.\n\nafter");
    }

    #[test]
    fn the_config_page_has_every_section_and_key_of_the_reference() {
        let md = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
        let page = masqd_toml(&md);
        assert!(page.starts_with(".TH") || page.contains("\n.TH"), "{page}");
        for needle in
            ["NAME", "SYNOPSIS", "DESCRIPTION", "SEE ALSO", "max_sessions", "ports_per_subscriber", "[control]"]
        {
            assert!(page.contains(needle), "{needle} missing from masqd.toml(5)");
        }
        assert!(!page.contains("](") && !page.contains("|---"), "links and tables are converted:\n{page}");
        assert!(!page.contains("`\\f[CR]"), "code is bold, not quoted:\n{page}");
    }

    #[test]
    fn the_program_pages_render() {
        let masqd = masqd().unwrap();
        assert!(masqd.contains(".TH masqd 8"), "{masqd}");
        assert!(masqd.contains("\\-\\-rules") && masqd.contains("EXIT STATUS"), "{masqd}");
        let masqctl = masqctl().unwrap();
        for needle in ["\\-\\-append", "\\-\\-socket", "masqctl restore", "USAGE SUMMARY", "MASQUERADE"] {
            assert!(masqctl.contains(needle), "{needle} missing:\n{masqctl}");
        }
    }
}
