//! Printing rules: canonical iptables-save text, `-S` commands and `-L` tables.
//!
//! The canonical rule spec (`Display for Rule`) writes options in iptables-save's order:
//! `-s -d -i -o -p`, then `-m tcp|udp` with `--sport --dport`, `-m icmp` with
//! `--icmp-type`, `-m comment --comment "..."`, then `-j TARGET` and its options.
//! Addresses always carry their prefix length (`10.0.0.1/32`), comments are always
//! quoted. Because the parser normalises the same way, save -> parse -> save is
//! byte-identical.

use std::fmt::{self, Write as _};

use super::rule::{AddrRange, Chain, Cidr, Iface, Negatable, PortRange, Protocol, Rule, Table, Target};
use super::ruleset::{ListOptions, RuleSet};

/// `A` or `A-B` (translation ports).
struct NatPorts(PortRange);

impl fmt::Display for NatPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.first() == self.0.last() {
            write!(f, "{}", self.0.first())
        } else {
            write!(f, "{}-{}", self.0.first(), self.0.last())
        }
    }
}

/// `P` or `A:B` (port matches).
struct MatchPorts(PortRange);

impl fmt::Display for MatchPorts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.first() == self.0.last() {
            write!(f, "{}", self.0.first())
        } else {
            write!(f, "{}:{}", self.0.first(), self.0.last())
        }
    }
}

/// `ADDR[-ADDR][:PORT[-PORT]]` for `--to-source` / `--to-destination`.
struct NatRange(AddrRange, Option<PortRange>);

impl fmt::Display for NatRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.first())?;
        if self.0.last() != self.0.first() {
            write!(f, "-{}", self.0.last())?;
        }
        if let Some(ports) = self.1 {
            write!(f, ":{}", NatPorts(ports))?;
        }
        Ok(())
    }
}

impl fmt::Display for Cidr {
    /// `A.B.C.D/N`, always with the prefix length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix())
    }
}

impl fmt::Display for Iface {
    /// The name, with `+` for a prefix pattern.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())?;
        if self.is_wildcard() {
            f.write_char('+')?;
        }
        Ok(())
    }
}

impl fmt::Display for Protocol {
    /// `tcp`, `udp`, `icmp`, or the number.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.number()),
        }
    }
}

/// Writes ` [! ]OPT VALUE`, the separator first so the first item can drop it.
fn option<T>(
    f: &mut fmt::Formatter<'_>,
    opt: &str,
    m: &Option<Negatable<T>>,
    show: impl Fn(&T) -> String,
) -> fmt::Result {
    if let Some(m) = m {
        let bang = if m.negated { "! " } else { "" };
        write!(f, " {bang}{opt} {}", show(&m.value))?;
    }
    Ok(())
}

/// A comment quoted as iptables-save quotes strings: `"`, with `\"` and `\\` escaped.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The rule spec, without `-A CHAIN` and without a leading space.
struct Spec<'a>(&'a Rule);

impl fmt::Display for Spec<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.0.matches;
        option(f, "-s", &m.src, Cidr::to_string)?;
        option(f, "-d", &m.dst, Cidr::to_string)?;
        option(f, "-i", &m.in_iface, Iface::to_string)?;
        option(f, "-o", &m.out_iface, Iface::to_string)?;
        option(f, "-p", &m.proto, Protocol::to_string)?;
        if m.src_port.is_some() || m.dst_port.is_some() {
            if let Some(proto) = m.port_protocol() {
                write!(f, " -m {proto}")?;
            }
            option(f, "--sport", &m.src_port, |p| MatchPorts(*p).to_string())?;
            option(f, "--dport", &m.dst_port, |p| MatchPorts(*p).to_string())?;
        }
        if m.icmp_type.is_some() {
            f.write_str(" -m icmp")?;
            option(f, "--icmp-type", &m.icmp_type, u8::to_string)?;
        }
        if let Some(comment) = &self.0.comment {
            write!(f, " -m comment --comment {}", quoted(comment))?;
        }
        write!(f, " -j {}", self.0.target.name())?;
        match self.0.target {
            Target::Accept | Target::Drop | Target::Return => {}
            Target::Masquerade { ports, random } => {
                if let Some(ports) = ports {
                    write!(f, " --to-ports {}", NatPorts(ports))?;
                }
                if random {
                    f.write_str(" --random")?;
                }
            }
            Target::Snat { addrs, ports } => write!(f, " --to-source {}", NatRange(addrs, ports))?,
            Target::Dnat { addrs, ports } => write!(f, " --to-destination {}", NatRange(addrs, ports))?,
            Target::Ct { helper } => write!(f, " --helper {helper}")?,
            Target::Redirect { ports } => {
                if let Some(ports) = ports {
                    write!(f, " --to-ports {}", NatPorts(ports))?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Rule {
    /// The canonical rule spec as iptables-save writes it after `-A CHAIN`:
    /// `-s 10.0.0.0/8 -o wan -j MASQUERADE`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let spec = Spec(self).to_string();
        f.write_str(spec.strip_prefix(' ').unwrap_or(&spec))
    }
}

/// Canonical iptables-save text of the whole set.
pub(crate) fn save_text(set: &RuleSet) -> String {
    let mut out = String::from("# Generated by masq\n");
    for table in Table::ALL {
        // iptables-save lists the tables the kernel has loaded; masq's raw table is
        // there once it has a rule (so files without one stay as they were).
        if table == Table::Raw && table.chains().iter().all(|&c| set.rules(c).is_empty()) {
            continue;
        }
        let _ = writeln!(out, "*{table}");
        for &chain in table.chains() {
            let _ = writeln!(out, ":{chain} {} [0:0]", set.policy(chain));
        }
        for &chain in table.chains() {
            for rule in set.rules(chain) {
                let _ = writeln!(out, "-A {chain} {rule}");
            }
        }
        out.push_str("COMMIT\n# Completed by masq\n");
    }
    out
}

/// `-S`: the policies, then the rules, as commands.
pub(crate) fn list_rules(set: &RuleSet, chains: &[Chain]) -> String {
    let mut out = String::new();
    for &chain in chains {
        let _ = writeln!(out, "-P {chain} {}", set.policy(chain));
    }
    for &chain in chains {
        for rule in set.rules(chain) {
            let _ = writeln!(out, "-A {chain} {rule}");
        }
    }
    out
}

/// `-L`: a table per chain, column for column as `iptables -L` prints one (counters
/// are zero: per-rule counters are not kept yet).
pub(crate) fn list(set: &RuleSet, chains: &[Chain], options: ListOptions) -> String {
    let mut out = String::new();
    for (n, &chain) in chains.iter().enumerate() {
        if n > 0 {
            out.push('\n');
        }
        list_chain(&mut out, set, chain, options);
    }
    out
}

fn list_chain(out: &mut String, set: &RuleSet, chain: Chain, o: ListOptions) {
    let _ = write!(out, "Chain {chain} (policy {}", set.policy(chain));
    if o.verbose {
        out.push_str(" 0 packets, 0 bytes");
    }
    out.push_str(")\n");

    if o.line_numbers {
        let _ = write!(out, "{:<4} ", "num");
    }
    if o.verbose {
        let _ = write!(out, "{:>5} {:>5} ", "pkts", "bytes");
    }
    let _ = write!(out, "{:<9}  prot opt", "target");
    if o.verbose {
        let _ = write!(out, " {:<6} {:<6} ", "in", "out");
    }
    let _ = writeln!(out, " {:<19}  {:<19} ", "source", "destination");

    for (i, rule) in set.rules(chain).iter().enumerate() {
        list_rule(out, i + 1, rule, o);
    }
}

fn bang<T>(m: &Option<Negatable<T>>) -> char {
    match m {
        Some(m) if m.negated => '!',
        _ => ' ',
    }
}

fn list_rule(out: &mut String, num: usize, rule: &Rule, o: ListOptions) {
    let m = &rule.matches;
    if o.line_numbers {
        let _ = write!(out, "{num:<4} ");
    }
    if o.verbose {
        let _ = write!(out, "{:>5} {:>5} ", 0, 0);
    }
    let proto = m.proto.map_or("all".to_string(), |p| p.value.to_string());
    let _ = write!(out, "{:<9} {}{proto:<5}-- ", rule.target.name(), bang(&m.proto));
    if o.verbose {
        let iface = |i: &Option<Negatable<Iface>>| match i {
            Some(i) => format!("{}{}", if i.negated { "!" } else { "" }, i.value),
            None if o.numeric => "*".to_string(),
            None => "any".to_string(),
        };
        let _ = write!(out, " {:<6} {:<6} ", iface(&m.in_iface), iface(&m.out_iface));
    }
    let addr = |c: &Option<Negatable<Cidr>>| {
        let c = c.map_or(Cidr::ANY, |c| c.value);
        match c.prefix() {
            0 if !o.numeric => "anywhere".to_string(),
            32 => c.addr().to_string(),
            _ => c.to_string(),
        }
    };
    let _ = write!(out, "{}{:<19} {}{:<19} ", bang(&m.src), addr(&m.src), bang(&m.dst), addr(&m.dst));

    if let Some(proto) = m.port_protocol().filter(|_| m.src_port.is_some() || m.dst_port.is_some()) {
        let _ = write!(out, " {proto}");
        for (name, port) in [("spt", &m.src_port), ("dpt", &m.dst_port)] {
            if let Some(p) = port {
                let inv = if p.negated { "!" } else { "" };
                if p.value.first() == p.value.last() {
                    let _ = write!(out, " {name}:{inv}{}", p.value.first());
                } else {
                    let _ = write!(out, " {name}s:{inv}{}:{}", p.value.first(), p.value.last());
                }
            }
        }
    }
    if let Some(t) = m.icmp_type {
        let inv = if t.negated { " !" } else { "" };
        let _ = write!(out, " icmp{inv}type {}", t.value);
    }
    if let Some(comment) = &rule.comment {
        let _ = write!(out, " /* {comment} */");
    }
    match rule.target {
        Target::Accept | Target::Drop | Target::Return => {}
        Target::Masquerade { ports, random } => {
            if let Some(ports) = ports {
                let _ = write!(out, " masq ports: {}", NatPorts(ports));
            }
            if random {
                out.push_str(" random");
            }
        }
        Target::Snat { addrs, ports } | Target::Dnat { addrs, ports } => {
            let _ = write!(out, " to:{}", NatRange(addrs, ports));
        }
        Target::Redirect { ports } => {
            if let Some(ports) = ports {
                let _ = write!(out, " redir ports {}", NatPorts(ports));
            }
        }
        Target::Ct { helper } => {
            let _ = write!(out, " CT helper {helper}");
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    const PORTS: &[&str] = &["wan", "lan", "lan2"];

    fn set(text: &str) -> RuleSet {
        RuleSet::parse_save(text, PORTS).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn canonical_spec_for_every_match_and_target() {
        let s = set(r#"*nat
-A PREROUTING ! -i lan+ -p tcp --sport 1:1023 ! --dport 80 -j REDIRECT --to-ports 8080-8081
-A PREROUTING -d 198.51.100.7 -j DNAT --to-destination 10.0.0.1-10.0.0.9
-A PREROUTING -p udp -j DNAT --to-destination 10.0.0.1:53
-A POSTROUTING -p udp -j MASQUERADE --random --to-ports 1024-65535
-A POSTROUTING -s 10.0.0.0/255.0.0.0 -j SNAT --to-source 203.0.113.1-203.0.113.4
-A POSTROUTING -p tcp -j SNAT --to-source 203.0.113.1:1024
-A POSTROUTING ! -s 0.0.0.0/0 -j RETURN
COMMIT
*filter
-A FORWARD -p icmp -m icmp ! --icmp-type 8 -m comment --comment "say \"hi\" \\ bye" -j DROP
-A FORWARD -p 47 -j ACCEPT
COMMIT
"#);
        let specs: Vec<String> =
            Chain::ALL.iter().flat_map(|&c| s.rules(c).iter().map(move |r| format!("{c} {r}"))).collect();
        assert_eq!(
            specs,
            [
                "PREROUTING ! -i lan+ -p tcp -m tcp --sport 1:1023 ! --dport 80 -j REDIRECT --to-ports 8080-8081",
                "PREROUTING -d 198.51.100.7/32 -j DNAT --to-destination 10.0.0.1-10.0.0.9",
                "PREROUTING -p udp -j DNAT --to-destination 10.0.0.1:53",
                "POSTROUTING -p udp -j MASQUERADE --to-ports 1024-65535 --random",
                "POSTROUTING -s 10.0.0.0/8 -j SNAT --to-source 203.0.113.1-203.0.113.4",
                "POSTROUTING -p tcp -j SNAT --to-source 203.0.113.1:1024",
                "POSTROUTING ! -s 0.0.0.0/0 -j RETURN",
                r#"FORWARD -p icmp -m icmp ! --icmp-type 8 -m comment --comment "say \"hi\" \\ bye" -j DROP"#,
                "FORWARD -p 47 -j ACCEPT",
            ]
        );
    }

    #[test]
    fn list_mimics_iptables_numeric_verbose_line_numbers() {
        let s = set(crate::policy::EXAMPLE_RULES);
        let out = s.list(Table::Nat, None, ListOptions { numeric: true, verbose: true, line_numbers: true }).unwrap();
        let expected = "\
Chain PREROUTING (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 DNAT       tcp  --  wan    *       0.0.0.0/0            0.0.0.0/0            tcp dpt:2222 to:100.64.0.2:22

Chain POSTROUTING (policy ACCEPT 0 packets, 0 bytes)
num   pkts bytes target     prot opt in     out     source               destination         
1        0     0 MASQUERADE  all  --  *      wan     100.64.0.0/10        0.0.0.0/0           
";
        assert_eq!(out, expected);
    }

    #[test]
    fn list_plain_and_details() {
        let s = set("*filter\n:FORWARD DROP [0:0]\n-A FORWARD -i lan -o wan -j ACCEPT\n-A FORWARD ! -s 10.0.0.1 -p tcp --sport 1:2 ! --dport 22 -m comment --comment hi -j DROP\n-A FORWARD -p icmp --icmp-type 8 -j ACCEPT\n-A FORWARD -p icmp ! --icmp-type 0 -j ACCEPT\nCOMMIT\n*nat\n-A PREROUTING -p tcp -j REDIRECT --to-ports 8080\n-A POSTROUTING -p tcp -j MASQUERADE --to-ports 1000-2000 --random\n-A POSTROUTING -j SNAT --to-source 1.2.3.4-1.2.3.5\nCOMMIT\n");
        let out = s.list(Table::Filter, None, ListOptions::default()).unwrap();
        let expected = "\
Chain FORWARD (policy DROP)
target     prot opt source               destination         
ACCEPT     all  --  anywhere             anywhere            
DROP       tcp  -- !10.0.0.1             anywhere             tcp spts:1:2 dpt:!22 /* hi */
ACCEPT     icmp --  anywhere             anywhere             icmptype 8
ACCEPT     icmp --  anywhere             anywhere             icmp !type 0
";
        assert_eq!(out, expected);
        let out = s.list(Table::Nat, None, ListOptions { numeric: true, ..ListOptions::default() }).unwrap();
        assert!(out.contains("0.0.0.0/0            0.0.0.0/0            redir ports 8080\n"), "{out}");
        assert!(out.contains(" masq ports: 1000-2000 random\n"), "{out}");
        assert!(out.contains(" to:1.2.3.4-1.2.3.5\n"), "{out}");
        let out = s
            .list(Table::Filter, Some(Chain::Forward), ListOptions { verbose: true, ..ListOptions::default() })
            .unwrap();
        assert!(out.contains("ACCEPT     all  --  lan    wan     anywhere"), "{out}");
        assert!(out.contains("DROP       tcp  --  any    any    !10.0.0.1"), "{out}");
        assert!(s.list(Table::Nat, Some(Chain::Forward), ListOptions::default()).is_err());
    }

    #[test]
    fn raw_table_saved_only_with_rules_and_listed() {
        let s = set(crate::policy::EXAMPLE_RULES);
        assert!(!s.to_save_text().contains("*raw"), "no raw rules, no raw table");
        let text = "*raw\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -i wan -p tcp -m tcp --dport 2121 -j CT --helper ftp\nCOMMIT\n";
        let s = set(text);
        let saved = s.to_save_text();
        assert!(saved.contains(text), "{saved}");
        assert_eq!(set(&saved).to_save_text(), saved, "save, restore, save: the same bytes");
        let out = s.list(Table::Raw, None, ListOptions { numeric: true, ..ListOptions::default() }).unwrap();
        assert!(out.starts_with("Chain PREROUTING (policy ACCEPT)\n"), "{out}");
        assert!(
            out.contains("CT         tcp  --  0.0.0.0/0            0.0.0.0/0            tcp dpt:2121 CT helper ftp\n"),
            "{out}"
        );
        assert_eq!(
            s.list_rules(Table::Raw, None).unwrap(),
            "-P PREROUTING ACCEPT\n-A PREROUTING -i wan -p tcp -m tcp --dport 2121 -j CT --helper ftp\n"
        );
    }

    #[test]
    fn list_rules_is_policies_then_rules() {
        let s = set(crate::policy::EXAMPLE_RULES);
        assert_eq!(
            s.list_rules(Table::Nat, None).unwrap(),
            "-P PREROUTING ACCEPT\n-P POSTROUTING ACCEPT\n\
             -A PREROUTING -i wan -p tcp -m tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22\n\
             -A POSTROUTING -s 100.64.0.0/10 -o wan -j MASQUERADE\n"
        );
        assert_eq!(
            s.list_rules(Table::Filter, Some(Chain::Forward)).unwrap(),
            "-P FORWARD DROP\n-A FORWARD -i lan -o wan -j ACCEPT\n"
        );
    }
}
