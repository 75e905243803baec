//! Rule specifications: `-i wan -p tcp --dport 22 -j DNAT --to-destination ...`, the
//! part of a rule after `-A CHAIN`, read into a [`Rule`] for one chain. iptables' rules
//! apply: options in any order (matches may follow the target), `!` before the options
//! that can be inverted, `-m tcp|udp|icmp|comment` accepted as iptables-save writes them,
//! long spellings (`--source`, `--jump`, ...), each option at most once.

use std::net::Ipv4Addr;

use super::super::rule::{
    AddrRange, Chain, Cidr, Iface, Matches, Negatable, PortRange, Protocol, Rule, RuleProblem, Table, Target,
};
use super::command::parse_chain;
use super::{ParseError, ParseErrorKind, SPEC_OPTIONS};
use crate::nat::HelperKind;

/// Read one `-A CHAIN spec...` rule for `table` (one line of a rules file, tokenized).
/// Interfaces are checked against `known_ports`, the configured port names.
pub fn parse_rule(table: Table, tokens: &[&str], known_ports: &[&str]) -> Result<(Chain, Rule), ParseError> {
    match tokens {
        [] => Err(ParseErrorKind::UnexpectedLine { token: String::new() }.into()),
        ["-A" | "--append"] => {
            Err(ParseErrorKind::MissingValue { option: tokens[0].to_string(), expected: "a chain name" }.into())
        }
        ["-A" | "--append", chain, spec @ ..] => {
            let chain = parse_chain(table, chain)?;
            let rule = parse_spec(chain, spec, known_ports)?;
            Ok((chain, rule))
        }
        [other, ..] => Err(ParseErrorKind::UnexpectedToken { token: other.to_string(), expected: "-A CHAIN" }.into()),
    }
}

/// The options of a rule spec, by their short spelling.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Opt {
    InIface,
    OutIface,
    Src,
    Dst,
    Proto,
    Match,
    SrcPort,
    DstPort,
    IcmpType,
    Comment,
    Jump,
    ToPorts,
    ToSource,
    ToDestination,
    Random,
    Helper,
}

impl Opt {
    fn from_token(token: &str) -> Option<Opt> {
        Some(match token {
            "-i" | "--in-interface" => Opt::InIface,
            "-o" | "--out-interface" => Opt::OutIface,
            "-s" | "--source" | "--src" => Opt::Src,
            "-d" | "--destination" | "--dst" => Opt::Dst,
            "-p" | "--protocol" => Opt::Proto,
            "-m" | "--match" => Opt::Match,
            "--sport" | "--source-port" => Opt::SrcPort,
            "--dport" | "--destination-port" => Opt::DstPort,
            "--icmp-type" => Opt::IcmpType,
            "--comment" => Opt::Comment,
            "-j" | "--jump" => Opt::Jump,
            "--to-ports" => Opt::ToPorts,
            "--to-source" => Opt::ToSource,
            "--to-destination" => Opt::ToDestination,
            "--random" => Opt::Random,
            "--helper" => Opt::Helper,
            _ => return None,
        })
    }

    /// The canonical spelling, for messages.
    const fn name(self) -> &'static str {
        match self {
            Opt::InIface => "-i",
            Opt::OutIface => "-o",
            Opt::Src => "-s",
            Opt::Dst => "-d",
            Opt::Proto => "-p",
            Opt::Match => "-m",
            Opt::SrcPort => "--sport",
            Opt::DstPort => "--dport",
            Opt::IcmpType => "--icmp-type",
            Opt::Comment => "--comment",
            Opt::Jump => "-j",
            Opt::ToPorts => "--to-ports",
            Opt::ToSource => "--to-source",
            Opt::ToDestination => "--to-destination",
            Opt::Random => "--random",
            Opt::Helper => "--helper",
        }
    }

    const fn takes_value(self) -> bool {
        !matches!(self, Opt::Random)
    }

    const fn negatable(self) -> bool {
        matches!(
            self,
            Opt::InIface
                | Opt::OutIface
                | Opt::Src
                | Opt::Dst
                | Opt::Proto
                | Opt::SrcPort
                | Opt::DstPort
                | Opt::IcmpType
        )
    }

    /// What the value looks like, for "needs a value" messages.
    const fn value_hint(self) -> &'static str {
        match self {
            Opt::InIface | Opt::OutIface => "a port name, or a prefix ending in +",
            Opt::Src | Opt::Dst => "an IPv4 address or network",
            Opt::Proto => "tcp, udp, icmp, all or a number",
            Opt::Match => "tcp, udp, icmp or comment",
            Opt::SrcPort | Opt::DstPort => "a port or FIRST:LAST",
            Opt::IcmpType => "an ICMP type",
            Opt::Comment => "a comment text",
            Opt::Jump => "a target",
            Opt::ToPorts => "PORT or FIRST-LAST",
            Opt::ToSource | Opt::ToDestination => "ADDR[-ADDR][:PORT[-PORT]]",
            Opt::Random => "nothing",
            Opt::Helper => "ftp, tftp or irc",
        }
    }
}

/// The state of one rule spec being read.
struct SpecParser<'a> {
    chain: Chain,
    known_ports: &'a [&'a str],
    matches: Matches,
    comment_loaded: bool,
    comment: Option<String>,
    target: Option<Target>,
    /// SNAT/DNAT got their `--to-...` option.
    nat_addrs_given: bool,
    /// CT got its `--helper`.
    helper_given: bool,
}

/// Read the rule spec `tokens` (everything after `-A CHAIN`) for `chain`.
pub fn parse_spec(chain: Chain, tokens: &[&str], known_ports: &[&str]) -> Result<Rule, ParseErrorKind> {
    let mut p = SpecParser {
        chain,
        known_ports,
        matches: Matches::default(),
        comment_loaded: false,
        comment: None,
        target: None,
        nat_addrs_given: false,
        helper_given: false,
    };
    let mut negated = false;
    let mut rest = tokens.iter();
    while let Some(&token) = rest.next() {
        if token == "!" {
            if negated {
                return Err(ParseErrorKind::DanglingNegation);
            }
            negated = true;
            continue;
        }
        let Some(opt) = Opt::from_token(token) else {
            return Err(if token.starts_with('-') {
                ParseErrorKind::UnknownOption {
                    token: token.to_string(),
                    expected: if matches!(p.target, Some(Target::Ct { .. })) {
                        "--helper: masq's CT target sets a protocol helper and nothing else \
                         (no --notrack, zones, events or timeouts)"
                    } else if p.target.is_some() {
                        "an option of the target, or one of -i, -o, -s, -d, -p, -m, --sport, --dport, --icmp-type, --comment"
                    } else {
                        SPEC_OPTIONS
                    },
                }
            } else {
                ParseErrorKind::UnexpectedToken { token: token.to_string(), expected: "an option such as -s, -p or -j" }
            });
        };
        if negated && !opt.negatable() {
            return Err(ParseErrorKind::NegationMisplaced { token: token.to_string() });
        }
        let value = if opt.takes_value() {
            match rest.next() {
                // Only a comment may look like an option; anything else starting with
                // '-' is the next option and this one's value is missing.
                Some(&v) if opt == Opt::Comment || !v.starts_with('-') || v == "-" => v,
                _ => {
                    return Err(ParseErrorKind::MissingValue { option: token.to_string(), expected: opt.value_hint() })
                }
            }
        } else {
            ""
        };
        p.option(opt, negated, value)?;
        negated = false;
    }
    if negated {
        return Err(ParseErrorKind::DanglingNegation);
    }
    let target = p.target.ok_or(ParseErrorKind::MissingTarget)?;
    if matches!(target, Target::Ct { .. }) && !p.helper_given {
        return Err(ParseErrorKind::MissingTargetOption { target: "CT", option: "--helper" });
    }
    if !p.nat_addrs_given {
        match target {
            Target::Snat { .. } => {
                return Err(ParseErrorKind::MissingTargetOption { target: "SNAT", option: "--to-source" })
            }
            Target::Dnat { .. } => {
                return Err(ParseErrorKind::MissingTargetOption { target: "DNAT", option: "--to-destination" })
            }
            _ => {}
        }
    }
    let rule = Rule { matches: p.matches, target, comment: p.comment };
    rule.check(chain)?;
    Ok(rule)
}

/// Store a match, refusing a second one.
fn set_once<T>(slot: &mut Option<T>, opt: Opt, value: T) -> Result<(), ParseErrorKind> {
    if slot.is_some() {
        return Err(ParseErrorKind::DuplicateOption { option: opt.name() });
    }
    *slot = Some(value);
    Ok(())
}

impl SpecParser<'_> {
    fn option(&mut self, opt: Opt, negated: bool, value: &str) -> Result<(), ParseErrorKind> {
        fn neg<T>(negated: bool, value: T) -> Negatable<T> {
            Negatable { negated, value }
        }
        match opt {
            Opt::InIface | Opt::OutIface => {
                let refused = match opt {
                    Opt::InIface => self.chain == Chain::Postrouting,
                    _ => self.chain.before_routing(),
                };
                if refused {
                    return Err(RuleProblem::InterfaceNotAllowed { option: opt.name(), chain: self.chain }.into());
                }
                let iface = self.interface(value)?;
                let slot = if opt == Opt::InIface { &mut self.matches.in_iface } else { &mut self.matches.out_iface };
                set_once(slot, opt, neg(negated, iface))
            }
            Opt::Src | Opt::Dst => {
                let cidr = parse_cidr(value)?;
                let slot = if opt == Opt::Src { &mut self.matches.src } else { &mut self.matches.dst };
                if slot.is_some() {
                    return Err(ParseErrorKind::DuplicateOption { option: opt.name() });
                }
                // `-s 0.0.0.0/0` matches everything; iptables stores (and saves) it as no
                // match at all, and so does masq. `! -s 0.0.0.0/0` is kept.
                if negated || cidr.prefix() != 0 {
                    *slot = Some(neg(negated, cidr));
                }
                Ok(())
            }
            Opt::Proto => {
                if self.matches.proto.is_some() {
                    return Err(ParseErrorKind::DuplicateOption { option: "-p" });
                }
                match parse_protocol(value)? {
                    Some(proto) => self.matches.proto = Some(neg(negated, proto)),
                    None if negated => return Err(ParseErrorKind::NegatedAll),
                    None => {}
                }
                Ok(())
            }
            Opt::Match => self.load_match(value),
            Opt::SrcPort | Opt::DstPort => {
                if self.matches.port_protocol().is_none() {
                    return Err(RuleProblem::NeedsTcpOrUdp { option: opt.name() }.into());
                }
                let range = parse_match_ports(value)?;
                let slot = if opt == Opt::SrcPort { &mut self.matches.src_port } else { &mut self.matches.dst_port };
                set_once(slot, opt, neg(negated, range))
            }
            Opt::IcmpType => {
                if !self.matches.is_icmp() {
                    return Err(RuleProblem::NeedsIcmp.into());
                }
                let ty = parse_icmp_type(value)?;
                set_once(&mut self.matches.icmp_type, opt, neg(negated, ty))
            }
            Opt::Comment => {
                if !self.comment_loaded {
                    return Err(ParseErrorKind::CommentNeedsMatch);
                }
                set_once(&mut self.comment, opt, value.to_string())
            }
            Opt::Jump => {
                if self.target.is_some() {
                    return Err(ParseErrorKind::DuplicateOption { option: "-j" });
                }
                let target = parse_target_name(value)?;
                if !target.allowed_in(self.chain) {
                    // Report the chain problem now, before missing target options.
                    Rule::new(target).check(self.chain)?;
                }
                self.target = Some(target);
                Ok(())
            }
            Opt::ToPorts => {
                let ports =
                    parse_nat_ports(value).ok_or_else(|| ParseErrorKind::BadNatPorts { token: value.into() })?;
                if !matches!(self.target, Some(Target::Masquerade { .. } | Target::Redirect { .. })) {
                    return Err(ParseErrorKind::TargetOptionMisplaced {
                        option: "--to-ports",
                        expected: "-j MASQUERADE or -j REDIRECT",
                    });
                }
                self.check_port_protocol("--to-ports")?;
                match &mut self.target {
                    Some(Target::Masquerade { ports: slot, .. } | Target::Redirect { ports: slot }) => {
                        set_once(slot, opt, ports)
                    }
                    _ => Ok(()),
                }
            }
            Opt::Helper => {
                let Some(Target::Ct { helper }) = &mut self.target else {
                    return Err(ParseErrorKind::TargetOptionMisplaced { option: "--helper", expected: "-j CT" });
                };
                if self.helper_given {
                    return Err(ParseErrorKind::DuplicateOption { option: "--helper" });
                }
                *helper = HelperKind::from_name(value)
                    .ok_or_else(|| ParseErrorKind::UnknownHelper { token: value.to_string() })?;
                self.helper_given = true;
                Ok(())
            }
            Opt::Random => match &mut self.target {
                Some(Target::Masquerade { random, .. }) => {
                    if *random {
                        return Err(ParseErrorKind::DuplicateOption { option: "--random" });
                    }
                    *random = true;
                    Ok(())
                }
                _ => Err(ParseErrorKind::TargetOptionMisplaced { option: "--random", expected: "-j MASQUERADE" }),
            },
            Opt::ToSource | Opt::ToDestination => {
                let (option, expected) =
                    if opt == Opt::ToSource { ("--to-source", "-j SNAT") } else { ("--to-destination", "-j DNAT") };
                let wanted = matches!(
                    (opt, &self.target),
                    (Opt::ToSource, Some(Target::Snat { .. })) | (Opt::ToDestination, Some(Target::Dnat { .. }))
                );
                if !wanted {
                    return Err(ParseErrorKind::TargetOptionMisplaced { option, expected });
                }
                if self.nat_addrs_given {
                    return Err(ParseErrorKind::DuplicateOption { option });
                }
                let (range, range_ports) = parse_nat_range(value)
                    .ok_or_else(|| ParseErrorKind::BadNatRange { option, token: value.into() })?;
                if range_ports.is_some() {
                    self.check_port_protocol(option)?;
                }
                if let Some(Target::Snat { addrs, ports } | Target::Dnat { addrs, ports }) = &mut self.target {
                    *addrs = range;
                    *ports = range_ports;
                }
                self.nat_addrs_given = true;
                Ok(())
            }
        }
    }

    fn check_port_protocol(&self, option: &'static str) -> Result<(), ParseErrorKind> {
        match self.matches.port_protocol() {
            Some(_) => Ok(()),
            None => Err(RuleProblem::NeedsTcpOrUdp { option }.into()),
        }
    }

    fn interface(&self, value: &str) -> Result<Iface, ParseErrorKind> {
        let unknown = || ParseErrorKind::UnknownInterface {
            token: value.to_string(),
            known: self.known_ports.iter().map(|s| s.to_string()).collect(),
        };
        let iface = Iface::parse(value).ok_or_else(unknown)?;
        if self.known_ports.iter().any(|port| iface.matches(port)) {
            Ok(iface)
        } else {
            Err(unknown())
        }
    }

    fn load_match(&mut self, module: &str) -> Result<(), ParseErrorKind> {
        let needs = |proto: Protocol, module: &'static str| {
            if self.matches.proto == Some(Negatable::is(proto)) {
                Ok(())
            } else {
                Err(ParseErrorKind::MatchNeedsProtocol { module })
            }
        };
        match module {
            // iptables-save writes these after -p; the options they bring are always on.
            "tcp" => needs(Protocol::Tcp, "tcp"),
            "udp" => needs(Protocol::Udp, "udp"),
            "icmp" => needs(Protocol::Icmp, "icmp"),
            "comment" => {
                self.comment_loaded = true;
                Ok(())
            }
            other => Err(ParseErrorKind::UnknownMatch { token: other.to_string() }),
        }
    }
}

fn parse_target_name(name: &str) -> Result<Target, ParseErrorKind> {
    // SNAT/DNAT get their pool from --to-source/--to-destination; the placeholder is
    // replaced (or the rule refused) before it leaves the parser.
    let placeholder = AddrRange::single(Ipv4Addr::UNSPECIFIED);
    Ok(match name {
        "ACCEPT" => Target::Accept,
        "DROP" => Target::Drop,
        "RETURN" => Target::Return,
        "MASQUERADE" => Target::Masquerade { ports: None, random: false },
        "SNAT" => Target::Snat { addrs: placeholder, ports: None },
        "DNAT" => Target::Dnat { addrs: placeholder, ports: None },
        "REDIRECT" => Target::Redirect { ports: None },
        // The helper comes from --helper (required, checked at the end).
        "CT" => Target::Ct { helper: HelperKind::Ftp },
        other => return Err(ParseErrorKind::UnknownTarget { token: other.to_string() }),
    })
}

/// `A.B.C.D`, `A.B.C.D/N` or `A.B.C.D/M.M.M.M` (a contiguous netmask).
fn parse_cidr(text: &str) -> Result<Cidr, ParseErrorKind> {
    let bad = || ParseErrorKind::BadAddress { token: text.to_string() };
    let (addr, prefix) = match text.split_once('/') {
        None => (text, 32),
        Some((addr, len)) => {
            let prefix = if len.contains('.') {
                let mask = u32::from(len.parse::<Ipv4Addr>().map_err(|_| bad())?);
                if mask.leading_ones() + mask.trailing_zeros() != 32 {
                    return Err(bad());
                }
                mask.leading_ones() as u8
            } else {
                parse_decimal(len).filter(|&n| n <= 32).ok_or_else(bad)? as u8
            };
            (addr, prefix)
        }
    };
    let addr = addr.parse::<Ipv4Addr>().map_err(|_| bad())?;
    Cidr::new(addr, prefix).ok_or_else(bad)
}

/// Plain decimal digits only (no sign, no spaces), at most 10 of them.
fn parse_decimal(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_u16(text: &str) -> Option<u16> {
    parse_decimal(text).and_then(|n| u16::try_from(n).ok())
}

/// `tcp`, `udp`, `icmp`, `all` (any case) or a number; `None` means all.
fn parse_protocol(text: &str) -> Result<Option<Protocol>, ParseErrorKind> {
    match text.to_ascii_lowercase().as_str() {
        "tcp" => Ok(Some(Protocol::Tcp)),
        "udp" => Ok(Some(Protocol::Udp)),
        "icmp" => Ok(Some(Protocol::Icmp)),
        "all" => Ok(None),
        n => parse_decimal(n)
            .and_then(|n| u8::try_from(n).ok())
            .map(Protocol::from_number)
            .ok_or_else(|| ParseErrorKind::BadProtocol { token: text.to_string() }),
    }
}

/// `--sport`/`--dport`: `P`, `A:B`, `A:` (to 65535) or `:B` (from 0).
fn parse_match_ports(text: &str) -> Result<PortRange, ParseErrorKind> {
    let range = match text.split_once(':') {
        None => parse_u16(text).map(PortRange::single),
        Some((a, b)) => {
            let first = if a.is_empty() { Some(0) } else { parse_u16(a) };
            let last = if b.is_empty() { Some(u16::MAX) } else { parse_u16(b) };
            match (first, last, a.is_empty() && b.is_empty()) {
                (Some(first), Some(last), false) => PortRange::new(first, last),
                _ => None,
            }
        }
    };
    range.ok_or_else(|| ParseErrorKind::BadPort { token: text.to_string() })
}

/// A translation port range `P` or `A-B`, ports 1 to 65535.
fn parse_nat_ports(text: &str) -> Option<PortRange> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let (first, last) = (parse_u16(a)?, parse_u16(b)?);
    if first == 0 {
        return None;
    }
    PortRange::new(first, last)
}

/// `ADDR[-ADDR][:PORT[-PORT]]`.
fn parse_nat_range(text: &str) -> Option<(AddrRange, Option<PortRange>)> {
    let (addrs, ports) = match text.split_once(':') {
        Some((addrs, ports)) => (addrs, Some(parse_nat_ports(ports)?)),
        None => (text, None),
    };
    let (a, b) = addrs.split_once('-').unwrap_or((addrs, addrs));
    let range = AddrRange::new(a.parse().ok()?, b.parse().ok()?)?;
    Some((range, ports))
}

/// ICMP type names iptables knows that name a whole type (no code).
const ICMP_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("pong", 0),
    ("destination-unreachable", 3),
    ("source-quench", 4),
    ("redirect", 5),
    ("echo-request", 8),
    ("ping", 8),
    ("router-advertisement", 9),
    ("router-solicitation", 10),
    ("time-exceeded", 11),
    ("ttl-exceeded", 11),
    ("parameter-problem", 12),
    ("timestamp-request", 13),
    ("timestamp-reply", 14),
    ("address-mask-request", 17),
    ("address-mask-reply", 18),
];

/// `--icmp-type`: a number 0-255 or a name from [`ICMP_TYPES`].
fn parse_icmp_type(text: &str) -> Result<u8, ParseErrorKind> {
    parse_decimal(text)
        .and_then(|n| u8::try_from(n).ok())
        .or_else(|| ICMP_TYPES.iter().find(|(name, _)| name.eq_ignore_ascii_case(text)).map(|&(_, ty)| ty))
        .ok_or_else(|| ParseErrorKind::BadIcmpType { token: text.to_string() })
}

#[cfg(test)]
mod tests {
    use super::super::tokenize;
    use super::*;
    use proptest::prelude::*;

    const PORTS: &[&str] = &["wan", "lan", "lan2"];

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn rule(table: Table, line: &str) -> Result<(Chain, Rule), ParseError> {
        let tokens = tokenize(line).unwrap();
        let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
        parse_rule(table, &tokens, PORTS)
    }

    fn ok(table: Table, line: &str) -> Rule {
        rule(table, line).unwrap_or_else(|e| panic!("{line}: {e}")).1
    }

    fn err(table: Table, line: &str) -> String {
        match rule(table, line) {
            Ok(r) => panic!("{line} parsed as {r:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn every_match() {
        let r = ok(
            Table::Filter,
            "-A FORWARD -i lan -o wan -s 10.0.0.0/8 -d 192.0.2.1 -p tcp -m tcp --sport 1024:65535 --dport 22 -j ACCEPT",
        );
        let m = &r.matches;
        assert_eq!(m.in_iface, Some(Negatable::is(Iface::exact("lan"))));
        assert_eq!(m.out_iface, Some(Negatable::is(Iface::exact("wan"))));
        assert_eq!(m.src, Some(Negatable::is(Cidr::new(ip("10.0.0.0"), 8).unwrap())));
        assert_eq!(m.dst, Some(Negatable::is(Cidr::host(ip("192.0.2.1")))));
        assert_eq!(m.proto, Some(Negatable::is(Protocol::Tcp)));
        assert_eq!(m.src_port, Some(Negatable::is(PortRange::new(1024, 65535).unwrap())));
        assert_eq!(m.dst_port, Some(Negatable::is(PortRange::single(22))));
        assert_eq!(r.target, Target::Accept);

        let r = ok(Table::Filter, "-A FORWARD -p icmp -m icmp --icmp-type 8 -j ACCEPT");
        assert_eq!(r.matches.icmp_type, Some(Negatable::is(8)));
        let r = ok(Table::Filter, "-A FORWARD -p icmp ! --icmp-type echo-reply -j DROP");
        assert_eq!(r.matches.icmp_type, Some(Negatable::not(0)));
        let r = ok(Table::Filter, "-A FORWARD -p udp --dport :1023 -j DROP");
        assert_eq!(r.matches.dst_port, Some(Negatable::is(PortRange::new(0, 1023).unwrap())));
        let r = ok(Table::Filter, "-A FORWARD -p 17 --sport 5000: -j DROP");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Udp)));
        assert_eq!(r.matches.src_port, Some(Negatable::is(PortRange::new(5000, 65535).unwrap())));
        let r = ok(Table::Filter, "-A FORWARD -p 47 -j ACCEPT");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Unknown(47))));
        let r = ok(Table::Filter, "-A FORWARD -p 6 -j ACCEPT");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Tcp)));
        let r = ok(Table::Filter, "-A FORWARD -p ICMP -j ACCEPT");
        assert_eq!(r.matches.proto, Some(Negatable::is(Protocol::Icmp)));
        let r = ok(Table::Filter, "-A FORWARD -p all -j ACCEPT");
        assert_eq!(r.matches.proto, None);
        let r = ok(Table::Filter, "-A FORWARD -i lan+ -j ACCEPT");
        assert_eq!(r.matches.in_iface, Some(Negatable::is(Iface::prefix("lan"))));
        let r = ok(Table::Filter, r#"-A FORWARD -m comment --comment "a \"b\"" -j ACCEPT"#);
        assert_eq!(r.comment.as_deref(), Some(r#"a "b""#));
        let r = ok(Table::Filter, "-A FORWARD -m comment --comment -j -j ACCEPT");
        assert_eq!(r.comment.as_deref(), Some("-j"));
        // Long spellings, and matches after the target as iptables allows.
        let r = ok(
            Table::Filter,
            "--append FORWARD --jump DROP --in-interface wan --source 1.2.3.4/255.255.255.0 --protocol udp --destination-port 53",
        );
        assert_eq!(r.matches.src, Some(Negatable::is(Cidr::new(ip("1.2.3.0"), 24).unwrap())));
        assert_eq!(r.matches.dst_port, Some(Negatable::is(PortRange::single(53))));
        assert_eq!(r.target, Target::Drop);
    }

    #[test]
    fn negation() {
        let r = ok(Table::Filter, "-A FORWARD ! -i wan ! -o lan ! -s 10.0.0.0/8 ! -d 10.1.0.0/16 ! -p udp -j DROP");
        let m = &r.matches;
        assert!(m.in_iface.as_ref().unwrap().negated && m.out_iface.as_ref().unwrap().negated);
        assert!(m.src.unwrap().negated && m.dst.unwrap().negated && m.proto.unwrap().negated);
        let r = ok(Table::Filter, "-A FORWARD -p tcp ! --sport 80 ! --dport 1:1023 -j DROP");
        assert_eq!(r.matches.src_port, Some(Negatable::not(PortRange::single(80))));
        assert_eq!(r.matches.dst_port, Some(Negatable::not(PortRange::new(1, 1023).unwrap())));
        assert!(err(Table::Filter, "-A FORWARD ! -j DROP").contains("\"!\" cannot invert -j"));
        assert!(err(Table::Filter, "-A FORWARD -j DROP !").starts_with("dangling \"!\""));
        assert!(err(Table::Filter, "-A FORWARD ! ! -s 1.2.3.4 -j DROP").starts_with("dangling"));
        assert!(err(Table::Filter, "-A FORWARD ! -p all -j DROP").contains("matches nothing"));
    }

    #[test]
    fn cidr_edges() {
        // -s 0.0.0.0/0 is no match at all, as iptables stores it; negated it is kept.
        assert_eq!(ok(Table::Filter, "-A FORWARD -s 0.0.0.0/0 -j DROP").matches.src, None);
        assert_eq!(ok(Table::Filter, "-A FORWARD -s 9.9.9.9/0 -j DROP").matches.src, None);
        assert_eq!(ok(Table::Filter, "-A FORWARD ! -s 0.0.0.0/0 -j DROP").matches.src, Some(Negatable::not(Cidr::ANY)));
        assert_eq!(
            ok(Table::Filter, "-A FORWARD -d 10.0.0.7/32 -j DROP").matches.dst,
            Some(Negatable::is(Cidr::host(ip("10.0.0.7"))))
        );
        assert_eq!(
            ok(Table::Filter, "-A FORWARD -d 10.9.8.7/8 -j DROP").matches.dst,
            Some(Negatable::is(Cidr::new(ip("10.0.0.0"), 8).unwrap()))
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.300",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/255.0.255.0",
            "host.example",
            "10.0.0.0/+8",
            "",
        ] {
            let e = err(Table::Filter, &format!("-A FORWARD -s \"{bad}\" -j DROP"));
            assert!(e.starts_with(&format!("bad address \"{bad}\"")), "{e}");
        }
    }

    #[test]
    fn every_target() {
        let r = ok(Table::Nat, "-A POSTROUTING -o wan -j MASQUERADE");
        assert_eq!(r.target, Target::Masquerade { ports: None, random: false });
        let r = ok(Table::Nat, "-A POSTROUTING -p udp -j MASQUERADE --to-ports 1024-65535 --random");
        assert_eq!(r.target, Target::Masquerade { ports: PortRange::new(1024, 65535), random: true });
        let r = ok(Table::Nat, "-A POSTROUTING -j SNAT --to-source 203.0.113.1-203.0.113.8");
        assert_eq!(
            r.target,
            Target::Snat { addrs: AddrRange::new(ip("203.0.113.1"), ip("203.0.113.8")).unwrap(), ports: None }
        );
        let r = ok(Table::Nat, "-A POSTROUTING -p tcp -j SNAT --to-source 203.0.113.1:1024-2047");
        assert_eq!(
            r.target,
            Target::Snat { addrs: AddrRange::single(ip("203.0.113.1")), ports: PortRange::new(1024, 2047) }
        );
        let r = ok(Table::Nat, "-A PREROUTING -i wan -p tcp --dport 2222 -j DNAT --to-destination 100.64.0.2:22");
        assert_eq!(
            r.target,
            Target::Dnat { addrs: AddrRange::single(ip("100.64.0.2")), ports: Some(PortRange::single(22)) }
        );
        let r = ok(Table::Nat, "-A PREROUTING -j DNAT --to-destination 100.64.0.2-100.64.0.3");
        assert_eq!(r.target.nat_ports(), None);
        let r = ok(Table::Nat, "-A PREROUTING -p tcp --dport 80 -j REDIRECT --to-ports 8080");
        assert_eq!(r.target, Target::Redirect { ports: Some(PortRange::single(8080)) });
        assert_eq!(ok(Table::Nat, "-A PREROUTING -j REDIRECT").target, Target::Redirect { ports: None });
        assert_eq!(ok(Table::Nat, "-A PREROUTING -j RETURN").target, Target::Return);
        assert_eq!(ok(Table::Nat, "-A POSTROUTING -j ACCEPT").target, Target::Accept);
        assert_eq!(ok(Table::Filter, "-A FORWARD -j RETURN").target, Target::Return);
    }

    #[test]
    fn target_errors() {
        let e = err(Table::Nat, "-A POSTROUTING -j SANT");
        assert_eq!(
            e,
            "unknown target \"SANT\" (expected one of MASQUERADE, SNAT, DNAT, REDIRECT, ACCEPT, DROP, RETURN, CT)"
        );
        assert!(err(Table::Nat, "-A POSTROUTING -j SNAT").starts_with("SNAT needs --to-source"));
        assert!(err(Table::Nat, "-A PREROUTING -j DNAT").starts_with("DNAT needs --to-destination"));
        assert!(err(Table::Nat, "-A PREROUTING -j DNAT --to-source 1.2.3.4")
            .starts_with("--to-source is not an option of the target here (expected it after -j SNAT)"));
        assert!(err(Table::Nat, "-A POSTROUTING -j SNAT --to-source 1.2.3.4 --random")
            .contains("expected it after -j MASQUERADE"));
        assert!(err(Table::Nat, "-A POSTROUTING --to-ports 80 -j MASQUERADE")
            .contains("expected it after -j MASQUERADE or -j REDIRECT"));
        assert!(err(Table::Nat, "-A POSTROUTING -j MASQUERADE --to-ports 80")
            .starts_with("--to-ports needs -p tcp or -p udp before it"));
        assert!(err(Table::Nat, "-A PREROUTING -j DNAT --to-destination 1.2.3.4:80")
            .starts_with("--to-destination needs -p tcp or -p udp before it"));
        for bad in ["1.2.3.4-1.2.3.3", "1.2.3.4:0", "1.2.3.4:9-8", ":80", "1.2.3.4:", "1.2.3.4/24", "1.2.3.4:1:2"] {
            let e = err(Table::Nat, &format!("-A PREROUTING -p tcp -j DNAT --to-destination {bad}"));
            assert!(e.starts_with(&format!("bad --to-destination \"{bad}\" (expected ADDR[-ADDR]")), "{e}");
        }
        for bad in ["0", "9-8", "a", "1:2", "65536"] {
            let e = err(Table::Nat, &format!("-A POSTROUTING -p tcp -j MASQUERADE --to-ports {bad}"));
            assert!(e.starts_with(&format!("bad --to-ports \"{bad}\"")), "{e}");
        }
        assert!(err(Table::Filter, "-A FORWARD -s 1.2.3.4").starts_with("rule has no target"));
        assert!(err(Table::Filter, "-A FORWARD -j ACCEPT -j DROP").starts_with("-j given twice"));
        assert!(err(Table::Nat, "-A POSTROUTING -j MASQUERADE --random --random").starts_with("--random given twice"));
    }

    #[test]
    fn illegal_target_per_chain() {
        assert!(err(Table::Nat, "-A POSTROUTING -j DNAT --to-destination 1.2.3.4").starts_with(
            "target DNAT is not allowed in chain POSTROUTING (expected SNAT, MASQUERADE, ACCEPT or RETURN"
        ));
        assert!(err(Table::Nat, "-A PREROUTING -j MASQUERADE")
            .starts_with("target MASQUERADE is not allowed in chain PREROUTING"));
        assert!(err(Table::Nat, "-A PREROUTING -j SNAT --to-source 1.2.3.4").starts_with("target SNAT is not allowed"));
        assert!(err(Table::Nat, "-A POSTROUTING -j REDIRECT").starts_with("target REDIRECT is not allowed"));
        assert!(err(Table::Filter, "-A FORWARD -j MASQUERADE")
            .contains("expected ACCEPT, DROP or RETURN in filter FORWARD"));
        assert!(
            err(Table::Nat, "-A PREROUTING -j DROP").starts_with("target DROP is not allowed in nat chain PREROUTING")
        );
        assert!(err(Table::Nat, "-A POSTROUTING -i lan -j MASQUERADE")
            .starts_with("-i cannot be used in chain POSTROUTING"));
        assert!(err(Table::Nat, "-A PREROUTING -o wan -j ACCEPT").starts_with("-o cannot be used in chain PREROUTING"));
    }

    #[test]
    fn match_errors() {
        assert_eq!(
            err(Table::Filter, "-A FORWARD --dport 22 -p tcp -j ACCEPT"),
            "--dport needs -p tcp or -p udp before it"
        );
        assert_eq!(
            err(Table::Filter, "-A FORWARD -p icmp --sport 22 -j ACCEPT"),
            "--sport needs -p tcp or -p udp before it"
        );
        assert!(err(Table::Filter, "-A FORWARD ! -p tcp --dport 22 -j ACCEPT").starts_with("--dport needs"));
        assert_eq!(
            err(Table::Filter, "-A FORWARD -p tcp --icmp-type 8 -j ACCEPT"),
            "--icmp-type needs -p icmp before it"
        );
        assert_eq!(err(Table::Filter, "-A FORWARD -m tcp --dport 22 -j ACCEPT"), "-m tcp needs -p tcp before it");
        assert_eq!(err(Table::Filter, "-A FORWARD -p tcp -m udp -j ACCEPT"), "-m udp needs -p udp before it");
        assert!(err(Table::Filter, "-A FORWARD -m conntrack --ctstate NEW -j ACCEPT")
            .starts_with("unknown match \"conntrack\""));
        assert!(err(Table::Filter, "-A FORWARD --comment x -j ACCEPT").starts_with("--comment needs -m comment"));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport 70000 -j ACCEPT").starts_with("bad port \"70000\""));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport 9:8 -j ACCEPT").starts_with("bad port \"9:8\""));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport : -j ACCEPT").starts_with("bad port \":\""));
        assert!(err(Table::Filter, "-A FORWARD -p tcp --dport ssh -j ACCEPT").starts_with("bad port \"ssh\""));
        assert!(err(Table::Filter, "-A FORWARD -p sctp -j ACCEPT")
            .starts_with("unknown protocol \"sctp\" (expected tcp, udp, icmp, all"));
        assert!(err(Table::Filter, "-A FORWARD -p 256 -j ACCEPT").starts_with("unknown protocol \"256\""));
        assert!(err(Table::Filter, "-A FORWARD -p icmp --icmp-type 3/1 -j ACCEPT").starts_with("bad ICMP type \"3/1\""));
        assert!(err(Table::Filter, "-A FORWARD -s 1.2.3.4 -s 1.2.3.5 -j ACCEPT").starts_with("-s given twice"));
        assert!(err(Table::Filter, "-A FORWARD -p tcp -p udp -j ACCEPT").starts_with("-p given twice"));
        assert!(err(Table::Filter, "-A FORWARD -s -j ACCEPT").starts_with("-s needs a value (expected an IPv4 address"));
        assert!(err(Table::Filter, "-A FORWARD -j").starts_with("-j needs a value"));
        assert!(
            err(Table::Filter, "-A FORWARD --syn -j ACCEPT").starts_with("unknown option \"--syn\" (expected -i, -o")
        );
        assert!(err(Table::Filter, "-A FORWARD -j ACCEPT --to-ports").starts_with("--to-ports needs a value"));
        assert!(err(Table::Filter, "-A FORWARD -j ACCEPT --bogus").contains("an option of the target"));
        assert!(err(Table::Filter, "-A FORWARD junk -j ACCEPT").starts_with("unexpected \"junk\" (expected an option"));
        let long = "x".repeat(300);
        assert!(err(Table::Filter, &format!("-A FORWARD -m comment --comment {long} -j ACCEPT"))
            .starts_with("comment too long"));
    }

    #[test]
    fn interfaces_are_checked_against_the_configuration() {
        assert_eq!(
            err(Table::Filter, "-A FORWARD -i eth0 -j ACCEPT"),
            "unknown interface \"eth0\" (expected one of the configured ports: wan, lan, lan2)"
        );
        assert!(err(Table::Filter, "-A FORWARD -o eth+ -j ACCEPT").starts_with("unknown interface \"eth+\""));
        assert!(err(Table::Filter, "-A FORWARD -o \"\" -j ACCEPT").starts_with("unknown interface \"\""));
        ok(Table::Filter, "-A FORWARD -i + -j ACCEPT");
        let e = parse_rule(Table::Filter, &["-A", "FORWARD", "-i", "wan", "-j", "ACCEPT"], &[]).unwrap_err();
        assert!(e.to_string().contains("none are configured"), "{e}");
    }

    #[test]
    fn raw_table_ct_helper_only() {
        let r = ok(Table::Raw, "-A PREROUTING -i wan -p tcp --dport 2121 -j CT --helper ftp");
        assert_eq!(r.target, Target::Ct { helper: HelperKind::Ftp });
        assert_eq!(r.matches.dst_port, Some(Negatable::is(PortRange::single(2121))));
        assert_eq!(
            ok(Table::Raw, "-A PREROUTING -p udp -j CT --helper tftp").target,
            Target::Ct { helper: HelperKind::Tftp }
        );
        assert_eq!(
            err(Table::Raw, "-A PREROUTING -p tcp -j ACCEPT"),
            "target ACCEPT is not allowed in chain PREROUTING (expected only CT --helper in raw PREROUTING)"
        );
        assert!(err(Table::Raw, "-A PREROUTING -p tcp -j DNAT --to-destination 1.2.3.4")
            .starts_with("target DNAT is not allowed in chain PREROUTING (expected only CT --helper"));
        assert_eq!(err(Table::Raw, "-A PREROUTING -p tcp -j CT"), "CT needs --helper");
        assert_eq!(
            err(Table::Raw, "-A PREROUTING -p tcp -j CT --helper sip"),
            "unknown helper \"sip\" (expected ftp, tftp or irc)"
        );
        assert_eq!(
            err(Table::Raw, "-A PREROUTING -p udp -j CT --helper ftp"),
            "CT --helper ftp needs -p tcp before it"
        );
        assert_eq!(err(Table::Raw, "-A PREROUTING -j CT --helper tftp"), "CT --helper tftp needs -p udp before it");
        assert!(err(Table::Raw, "-A PREROUTING -p tcp -j CT --notrack")
            .starts_with("unknown option \"--notrack\" (expected --helper: masq's CT target sets a protocol helper"));
        assert!(
            err(Table::Raw, "-A PREROUTING -p tcp -j CT --helper ftp --helper irc").starts_with("--helper given twice")
        );
        assert!(err(Table::Raw, "-A PREROUTING -p tcp -o wan -j CT --helper ftp").starts_with("-o cannot be used"));
        assert!(err(Table::Nat, "-A PREROUTING -p tcp -j CT --helper ftp").starts_with("target CT is not allowed"));
        assert!(err(Table::Nat, "-A PREROUTING -p tcp -j DNAT --helper ftp").starts_with("--helper is not an option"));
        assert!(err(Table::Raw, "-A OUTPUT -p tcp -j CT --helper ftp").starts_with("chain OUTPUT is not supported"));
    }

    #[test]
    fn chains_and_tables() {
        assert!(err(Table::Nat, "-A OUTPUT -j ACCEPT")
            .starts_with("chain OUTPUT is not supported: masq forwards only and has no local stack"));
        assert!(err(Table::Filter, "-A INPUT -j ACCEPT").starts_with("chain INPUT is not supported"));
        assert_eq!(
            err(Table::Filter, "-A POSTROUTING -j ACCEPT"),
            "chain POSTROUTING is not in table filter (expected FORWARD; POSTROUTING is in table nat)"
        );
        assert!(err(Table::Filter, "-A MYCHAIN -j ACCEPT")
            .starts_with("unknown chain \"MYCHAIN\" in table filter (expected FORWARD)"));
        assert!(err(Table::Filter, "-I FORWARD -j ACCEPT").starts_with("unexpected \"-I\" (expected -A CHAIN)"));
        assert!(err(Table::Filter, "-A").starts_with("-A needs a value"));
    }

    /// Tokens a fuzzer should combine: options, values good and bad, junk.
    fn fuzz_token() -> impl Strategy<Value = String> {
        const WORDS: &[&str] = &[
            "-A",
            "-I",
            "-D",
            "-F",
            "-P",
            "-L",
            "-S",
            "-t",
            "nat",
            "filter",
            "mangle",
            "PREROUTING",
            "POSTROUTING",
            "FORWARD",
            "INPUT",
            "-i",
            "-o",
            "wan",
            "lan+",
            "+",
            "-s",
            "-d",
            "10.0.0.0/8",
            "1.2.3.4",
            "0.0.0.0/0",
            "-p",
            "tcp",
            "udp",
            "icmp",
            "all",
            "0",
            "6",
            "-m",
            "comment",
            "--comment",
            "--sport",
            "--dport",
            "1:2",
            ":",
            "65535:",
            "--icmp-type",
            "8",
            "-j",
            "ACCEPT",
            "DROP",
            "RETURN",
            "MASQUERADE",
            "SNAT",
            "DNAT",
            "REDIRECT",
            "--to-ports",
            "1-2",
            "--to-source",
            "--to-destination",
            "1.2.3.4-1.2.3.9:1-9",
            "--random",
            "!",
            "-n",
            "-v",
            "--line-numbers",
            "1",
            "",
            "[0:0]",
            "\"",
        ];
        prop_oneof![
            3 => proptest::sample::select(WORDS).prop_map(str::to_string),
            1 => "\\PC{0,12}",
        ]
    }

    proptest! {
        #[test]
        fn random_token_streams_never_panic(tokens in proptest::collection::vec(fuzz_token(), 0..14)) {
            let strs: Vec<&str> = tokens.iter().map(String::as_str).collect();
            for table in Table::ALL {
                let _ = parse_rule(table, &strs, PORTS);
                for &chain in table.chains() {
                    let _ = parse_spec(chain, &strs, PORTS);
                }
            }
        }
    }
}
