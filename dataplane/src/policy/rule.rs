//! The rule model: tables, chains, policies, matches and targets, named as iptables
//! names them.
//!
//! Values here are validated summaries: a [`Cidr`] is always masked, a [`PortRange`] or
//! [`AddrRange`] is never empty, and [`Rule::check`] says whether a rule may live in a
//! chain. The parser ([`super::parse`]) builds them from text, [`super::format`] prints
//! them back, [`super::compiled`] evaluates them.

use std::fmt;
use std::net::Ipv4Addr;

use crate::nat::HelperKind;

/// The longest `--comment` iptables accepts.
pub const MAX_COMMENT_LEN: usize = 256;

/// An iptables table. masq has three: `nat` (translation), `filter` (forwarding) and
/// `raw` (protocol helpers by rule: `CT --helper` only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Table {
    /// `nat`: chains PREROUTING (DNAT, REDIRECT) and POSTROUTING (SNAT, MASQUERADE).
    Nat,
    /// `filter`: chain FORWARD (ACCEPT, DROP).
    Filter,
    /// `raw`: chain PREROUTING (CT --helper), consulted first for a new flow.
    Raw,
}

impl Table {
    /// Every table, in save order (`raw` is saved only when it has rules).
    pub const ALL: [Table; 3] = [Table::Nat, Table::Filter, Table::Raw];

    /// The iptables name (`nat`, `filter`, `raw`).
    pub const fn name(self) -> &'static str {
        match self {
            Table::Nat => "nat",
            Table::Filter => "filter",
            Table::Raw => "raw",
        }
    }

    /// Look a table up by its iptables name.
    pub fn from_name(name: &str) -> Option<Table> {
        Table::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The builtin chains masq supports in this table, in save order.
    pub const fn chains(self) -> &'static [Chain] {
        match self {
            Table::Nat => &[Chain::Prerouting, Chain::Postrouting],
            Table::Filter => &[Chain::Forward],
            Table::Raw => &[Chain::RawPrerouting],
        }
    }

    /// Chain names iptables has in this table but masq refuses: it forwards only and has
    /// no local stack, so INPUT and OUTPUT would never see a packet.
    pub(crate) const fn local_chains(self) -> &'static [&'static str] {
        match self {
            Table::Nat => &["INPUT", "OUTPUT"],
            Table::Filter => &["INPUT", "OUTPUT"],
            Table::Raw => &["OUTPUT"],
        }
    }

    /// The chain of this table called `name`, if masq supports it.
    pub fn chain(self, name: &str) -> Option<Chain> {
        self.chains().iter().copied().find(|c| c.name() == name)
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A builtin chain. A chain names its table too; two chains share a name
/// (`PREROUTING` of `nat` and of `raw`), so a name alone is looked up in a table
/// ([`Table::chain`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Chain {
    /// `nat PREROUTING`: destination translation of new inbound flows.
    Prerouting,
    /// `nat POSTROUTING`: source translation of new outbound flows.
    Postrouting,
    /// `filter FORWARD`: whether a new flow may pass at all.
    Forward,
    /// `raw PREROUTING`: which protocol helper a new flow gets (`CT --helper`).
    RawPrerouting,
}

impl Chain {
    /// Every chain, in save order.
    pub const ALL: [Chain; 4] = [Chain::Prerouting, Chain::Postrouting, Chain::Forward, Chain::RawPrerouting];

    /// The iptables name.
    pub const fn name(self) -> &'static str {
        match self {
            Chain::Prerouting | Chain::RawPrerouting => "PREROUTING",
            Chain::Postrouting => "POSTROUTING",
            Chain::Forward => "FORWARD",
        }
    }

    /// The table this chain belongs to.
    pub const fn table(self) -> Table {
        match self {
            Chain::Prerouting | Chain::Postrouting => Table::Nat,
            Chain::Forward => Table::Filter,
            Chain::RawPrerouting => Table::Raw,
        }
    }

    /// Whether the chain runs before routing (no `-o`).
    pub const fn before_routing(self) -> bool {
        matches!(self, Chain::Prerouting | Chain::RawPrerouting)
    }

    /// Index into per-chain arrays (`0..Chain::ALL.len()`).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Whether `policy` may be this chain's policy: nat chains are ACCEPT only (they
    /// translate; dropping is the filter table's job).
    pub const fn allows_policy(self, policy: Policy) -> bool {
        match self.table() {
            Table::Nat | Table::Raw => matches!(policy, Policy::Accept),
            Table::Filter => true,
        }
    }
}

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A builtin chain's policy: what happens to a flow no rule decided.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Policy {
    /// Let it through (nat: without translation).
    #[default]
    Accept,
    /// Drop it (filter FORWARD only).
    Drop,
}

impl Policy {
    /// The iptables name.
    pub const fn name(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }

    /// Look a policy up by its iptables name.
    pub fn from_name(name: &str) -> Option<Policy> {
        match name {
            "ACCEPT" => Some(Policy::Accept),
            "DROP" => Some(Policy::Drop),
            _ => None,
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A match that may be inverted with `!` (`! -s 10.0.0.0/8`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Negatable<T> {
    /// `true` when written with `!`: the rule matches when `value` does not.
    pub negated: bool,
    /// What is matched.
    pub value: T,
}

impl<T> Negatable<T> {
    /// A plain (non-inverted) match.
    pub const fn is(value: T) -> Self {
        Negatable { negated: false, value }
    }

    /// An inverted match (`! ...`).
    pub const fn not(value: T) -> Self {
        Negatable { negated: true, value }
    }

    /// Apply the inversion to the outcome of matching `value`.
    #[inline]
    pub const fn apply(&self, matched: bool) -> bool {
        matched != self.negated
    }
}

/// An interface pattern for `-i`/`-o`: a port name from the configuration, or a prefix
/// followed by `+` (`lan+` matches `lan0`, `lan1`...; `+` alone matches every port).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Iface {
    name: String,
    wildcard: bool,
}

impl Iface {
    /// An exact port name.
    pub fn exact(name: impl Into<String>) -> Iface {
        Iface { name: name.into(), wildcard: false }
    }

    /// A prefix pattern (written `prefix+`).
    pub fn prefix(prefix: impl Into<String>) -> Iface {
        Iface { name: prefix.into(), wildcard: true }
    }

    /// Parse iptables' spelling: a trailing `+` makes a prefix pattern. `None` for an
    /// empty name.
    pub fn parse(text: &str) -> Option<Iface> {
        match text.strip_suffix('+') {
            Some(prefix) => Some(Iface::prefix(prefix)),
            None if text.is_empty() => None,
            None => Some(Iface::exact(text)),
        }
    }

    /// The name, or the prefix of a pattern (without the `+`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether this is a `prefix+` pattern.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// Whether the port called `port` matches.
    pub fn matches(&self, port: &str) -> bool {
        if self.wildcard {
            port.starts_with(self.name.as_str())
        } else {
            port == self.name
        }
    }
}

/// An IPv4 network `addr/prefix`, always stored masked (`10.1.2.3/8` is `10.0.0.0/8`,
/// as iptables stores it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Cidr {
    /// `0.0.0.0/0`: every address.
    pub const ANY: Cidr = Cidr { addr: Ipv4Addr::UNSPECIFIED, prefix: 0 };

    /// The network `addr/prefix`, host bits cleared. `None` if `prefix > 32`.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Cidr> {
        (prefix <= 32).then(|| Cidr { addr: Ipv4Addr::from(u32::from(addr) & prefix_mask(prefix)), prefix })
    }

    /// A single address (`/32`).
    pub const fn host(addr: Ipv4Addr) -> Cidr {
        Cidr { addr, prefix: 32 }
    }

    /// The network address.
    pub const fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length, 0 to 32.
    pub const fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask as a host-order integer.
    pub const fn mask(&self) -> u32 {
        prefix_mask(self.prefix)
    }

    /// Whether `ip` lies in this network.
    #[inline]
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr)
    }
}

/// The netmask of a prefix length (0 to 32) as a host-order integer.
pub(crate) const fn prefix_mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix as u32)
    }
}

/// An IP protocol for `-p`. `all` is no protocol match at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// `tcp` (6).
    Tcp,
    /// `udp` (17).
    Udp,
    /// `icmp` (1).
    Icmp,
    /// Any other protocol, by number (1 to 255, never 6, 17 or 1).
    Unknown(u8),
}

impl Protocol {
    /// The protocol with IP protocol number `n`. `None` for 0, which iptables reads as
    /// `all`.
    pub const fn from_number(n: u8) -> Option<Protocol> {
        match n {
            0 => None,
            6 => Some(Protocol::Tcp),
            17 => Some(Protocol::Udp),
            1 => Some(Protocol::Icmp),
            n => Some(Protocol::Unknown(n)),
        }
    }

    /// The IP protocol number.
    pub const fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Icmp => 1,
            Protocol::Unknown(n) => n,
        }
    }

    /// The iptables name for the three named protocols.
    pub const fn name(self) -> Option<&'static str> {
        match self {
            Protocol::Tcp => Some("tcp"),
            Protocol::Udp => Some("udp"),
            Protocol::Icmp => Some("icmp"),
            Protocol::Unknown(_) => None,
        }
    }

    /// Whether the protocol has ports (`--sport`, `--dport`, port translation).
    pub const fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

/// An inclusive, non-empty range of ports. Written `a:b` in matches and `a-b` in
/// targets; a single port is written alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    first: u16,
    last: u16,
}

impl PortRange {
    /// Every port, 0 to 65535.
    pub const ALL: PortRange = PortRange { first: 0, last: u16::MAX };

    /// `first..=last`; `None` if `first > last`.
    pub const fn new(first: u16, last: u16) -> Option<PortRange> {
        if first <= last {
            Some(PortRange { first, last })
        } else {
            None
        }
    }

    /// One port.
    pub const fn single(port: u16) -> PortRange {
        PortRange { first: port, last: port }
    }

    /// The lowest port in the range.
    pub const fn first(&self) -> u16 {
        self.first
    }

    /// The highest port in the range.
    pub const fn last(&self) -> u16 {
        self.last
    }

    /// Whether `port` lies in the range.
    #[inline]
    pub const fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }
}

/// An inclusive, non-empty range of IPv4 addresses, the pool of SNAT and DNAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddrRange {
    first: Ipv4Addr,
    last: Ipv4Addr,
}

impl AddrRange {
    /// `first..=last`; `None` if `first > last`.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<AddrRange> {
        (first <= last).then_some(AddrRange { first, last })
    }

    /// One address.
    pub const fn single(addr: Ipv4Addr) -> AddrRange {
        AddrRange { first: addr, last: addr }
    }

    /// The lowest address.
    pub const fn first(&self) -> Ipv4Addr {
        self.first
    }

    /// The highest address.
    pub const fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// How many addresses the pool holds (1 to 2^32).
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last) - u32::from(self.first)) + 1
    }

    /// Never empty; present for clippy's `len_without_is_empty`.
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// Whether `addr` lies in the pool.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        self.first <= addr && addr <= self.last
    }
}

/// What a rule matches. Every field `None` matches every flow.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Matches {
    /// `-i`: the port the flow came in on.
    pub in_iface: Option<Negatable<Iface>>,
    /// `-o`: the port the flow leaves by (known after routing).
    pub out_iface: Option<Negatable<Iface>>,
    /// `-s`: source network.
    pub src: Option<Negatable<Cidr>>,
    /// `-d`: destination network.
    pub dst: Option<Negatable<Cidr>>,
    /// `-p`: protocol (`None` is `all`).
    pub proto: Option<Negatable<Protocol>>,
    /// `--sport`: source port range (needs `-p tcp` or `-p udp`).
    pub src_port: Option<Negatable<PortRange>>,
    /// `--dport`: destination port range (needs `-p tcp` or `-p udp`).
    pub dst_port: Option<Negatable<PortRange>>,
    /// `--icmp-type`: ICMP type (needs `-p icmp`).
    pub icmp_type: Option<Negatable<u8>>,
}

impl Matches {
    /// The protocol if it is a positive `-p tcp` or `-p udp`: the condition for port
    /// matches and port translation.
    pub fn port_protocol(&self) -> Option<Protocol> {
        match self.proto {
            Some(Negatable { negated: false, value }) if value.has_ports() => Some(value),
            _ => None,
        }
    }

    /// Whether the rule matches a positive `-p icmp`.
    pub fn is_icmp(&self) -> bool {
        self.proto == Some(Negatable::is(Protocol::Icmp))
    }
}

/// What a matching rule does (`-j`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Stop here: the flow passes (filter), or passes untranslated (nat).
    Accept,
    /// Stop here: the flow is dropped. filter FORWARD only.
    Drop,
    /// Leave the chain; in a builtin chain the policy decides.
    Return,
    /// Source-translate to the egress port's address. nat POSTROUTING only.
    Masquerade {
        /// `--to-ports`: source ports to use.
        ports: Option<PortRange>,
        /// `--random`: randomise source port allocation.
        random: bool,
    },
    /// Source-translate to a fixed pool. nat POSTROUTING only.
    Snat {
        /// Address pool from `--to-source`.
        addrs: AddrRange,
        /// Port range from `--to-source`.
        ports: Option<PortRange>,
    },
    /// Destination-translate to a fixed pool. nat PREROUTING only.
    Dnat {
        /// Address pool from `--to-destination`.
        addrs: AddrRange,
        /// Port range from `--to-destination`.
        ports: Option<PortRange>,
    },
    /// Destination-translate to the inbound port's own address. nat PREROUTING only.
    Redirect {
        /// `--to-ports`: destination ports to use.
        ports: Option<PortRange>,
    },
    /// Give the flow a protocol helper (`-j CT --helper ftp`). raw PREROUTING only,
    /// and the only target there.
    Ct {
        /// `--helper`: which helper.
        helper: HelperKind,
    },
}

/// Every target name, in the order error messages list them.
pub const TARGET_NAMES: [&str; 8] = ["MASQUERADE", "SNAT", "DNAT", "REDIRECT", "ACCEPT", "DROP", "RETURN", "CT"];

impl Target {
    /// The iptables name.
    pub const fn name(&self) -> &'static str {
        match self {
            Target::Accept => "ACCEPT",
            Target::Drop => "DROP",
            Target::Return => "RETURN",
            Target::Masquerade { .. } => "MASQUERADE",
            Target::Snat { .. } => "SNAT",
            Target::Dnat { .. } => "DNAT",
            Target::Redirect { .. } => "REDIRECT",
            Target::Ct { .. } => "CT",
        }
    }

    /// The port range the target translates to, if any.
    pub const fn nat_ports(&self) -> Option<PortRange> {
        match *self {
            Target::Masquerade { ports, .. }
            | Target::Snat { ports, .. }
            | Target::Dnat { ports, .. }
            | Target::Redirect { ports } => ports,
            Target::Accept | Target::Drop | Target::Return | Target::Ct { .. } => None,
        }
    }

    /// Whether the target may be used in `chain`, as iptables allows.
    pub const fn allowed_in(&self, chain: Chain) -> bool {
        match self {
            // The raw table takes CT --helper and nothing else.
            _ if matches!(chain, Chain::RawPrerouting) => matches!(self, Target::Ct { .. }),
            Target::Ct { .. } => false,
            Target::Accept | Target::Return => true,
            Target::Drop => matches!(chain, Chain::Forward),
            Target::Masquerade { .. } | Target::Snat { .. } => matches!(chain, Chain::Postrouting),
            Target::Dnat { .. } | Target::Redirect { .. } => matches!(chain, Chain::Prerouting),
        }
    }

    /// The option that carries the target's ports, for messages.
    const fn ports_option(&self) -> &'static str {
        match self {
            Target::Snat { .. } => "--to-source",
            Target::Dnat { .. } => "--to-destination",
            _ => "--to-ports",
        }
    }
}

/// One rule: matches, a target, and an optional `-m comment --comment`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// What the rule matches.
    pub matches: Matches,
    /// What it does when it matches.
    pub target: Target,
    /// `-m comment --comment TEXT` (at most [`MAX_COMMENT_LEN`] bytes, no newline).
    pub comment: Option<String>,
}

impl Rule {
    /// A rule matching every flow.
    pub fn new(target: Target) -> Rule {
        Rule { matches: Matches::default(), target, comment: None }
    }

    /// Whether the rule may be placed in `chain`: the target is legal there, `-i`/`-o`
    /// are allowed there, port and ICMP matches have the protocol they need. The parser
    /// reports these as it reads; [`super::RuleSet`] checks again for rules built in
    /// code.
    pub fn check(&self, chain: Chain) -> Result<(), RuleProblem> {
        let m = &self.matches;
        if m.in_iface.is_some() && chain == Chain::Postrouting {
            return Err(RuleProblem::InterfaceNotAllowed { option: "-i", chain });
        }
        if m.out_iface.is_some() && chain.before_routing() {
            return Err(RuleProblem::InterfaceNotAllowed { option: "-o", chain });
        }
        if m.port_protocol().is_none() {
            if m.src_port.is_some() {
                return Err(RuleProblem::NeedsTcpOrUdp { option: "--sport" });
            }
            if m.dst_port.is_some() {
                return Err(RuleProblem::NeedsTcpOrUdp { option: "--dport" });
            }
        }
        if m.icmp_type.is_some() && !m.is_icmp() {
            return Err(RuleProblem::NeedsIcmp);
        }
        if let Some(comment) = &self.comment {
            if comment.len() > MAX_COMMENT_LEN || comment.contains(['\n', '\r']) {
                return Err(RuleProblem::BadComment);
            }
        }
        let target = &self.target;
        if !target.allowed_in(chain) {
            return Err(match target {
                Target::Drop => RuleProblem::DropInNat { chain },
                _ => RuleProblem::TargetNotAllowed { target: target.name(), chain },
            });
        }
        if target.nat_ports().is_some() && m.port_protocol().is_none() {
            return Err(RuleProblem::NeedsTcpOrUdp { option: target.ports_option() });
        }
        if let Target::Ct { helper } = *target {
            let want = match helper.proto() {
                crate::nat::Proto::Tcp => Protocol::Tcp,
                _ => Protocol::Udp,
            };
            if m.proto != Some(Negatable::is(want)) {
                return Err(RuleProblem::HelperNeedsProtocol { helper, proto: want.name().unwrap_or("tcp") });
            }
        }
        Ok(())
    }
}

/// Why a rule may not live in a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleProblem {
    /// The target is not legal in this chain.
    #[error("target {target} is not allowed in chain {chain} (expected {})", allowed_targets(*.chain))]
    TargetNotAllowed {
        /// The target's name.
        target: &'static str,
        /// The chain it was put in.
        chain: Chain,
    },
    /// DROP in a nat chain: modern iptables refuses it.
    #[error(
        "target DROP is not allowed in nat chain {chain} (iptables forbids filtering in nat; \
         drop in the filter FORWARD chain instead)"
    )]
    DropInNat {
        /// The nat chain.
        chain: Chain,
    },
    /// `-i` in POSTROUTING or `-o` in PREROUTING, as iptables refuses.
    #[error("{option} cannot be used in chain {chain} (expected {})", interface_options(*.chain))]
    InterfaceNotAllowed {
        /// `-i` or `-o`.
        option: &'static str,
        /// The chain.
        chain: Chain,
    },
    /// A port match or port translation without a positive `-p tcp`/`-p udp`.
    #[error("{option} needs -p tcp or -p udp before it")]
    NeedsTcpOrUdp {
        /// The option (`--sport`, `--dport`, `--to-ports`, `--to-source`...).
        option: &'static str,
    },
    /// `--icmp-type` without a positive `-p icmp`.
    #[error("--icmp-type needs -p icmp before it")]
    NeedsIcmp,
    /// A comment that is too long or spans lines.
    #[error("comment too long or with a line break (expected at most 256 bytes on one line)")]
    BadComment,
    /// `CT --helper` without the helper's protocol (`-p tcp` for ftp and irc, `-p udp`
    /// for tftp), as iptables requires a protocol for a helper.
    #[error("CT --helper {helper} needs -p {proto} before it")]
    HelperNeedsProtocol {
        /// The helper.
        helper: HelperKind,
        /// The protocol it serves.
        proto: &'static str,
    },
}

fn allowed_targets(chain: Chain) -> &'static str {
    match chain {
        Chain::Prerouting => "DNAT, REDIRECT, ACCEPT or RETURN in nat PREROUTING",
        Chain::Postrouting => "SNAT, MASQUERADE, ACCEPT or RETURN in nat POSTROUTING",
        Chain::Forward => "ACCEPT, DROP or RETURN in filter FORWARD",
        Chain::RawPrerouting => "only CT --helper in raw PREROUTING",
    }
}

fn interface_options(chain: Chain) -> &'static str {
    match chain {
        Chain::Prerouting | Chain::RawPrerouting => {
            "only -i in PREROUTING: the output port is not known before routing"
        }
        Chain::Postrouting => "only -o in POSTROUTING, as iptables",
        Chain::Forward => "-i and -o",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_masks_and_contains_at_the_edges() {
        let any = Cidr::new(ip("1.2.3.4"), 0).unwrap();
        assert_eq!(any, Cidr::ANY);
        assert!(any.contains(ip("0.0.0.0")) && any.contains(ip("255.255.255.255")));
        let host = Cidr::new(ip("10.0.0.1"), 32).unwrap();
        assert_eq!(host, Cidr::host(ip("10.0.0.1")));
        assert!(host.contains(ip("10.0.0.1")) && !host.contains(ip("10.0.0.2")));
        let net = Cidr::new(ip("100.100.1.2"), 10).unwrap();
        assert_eq!(net.addr(), ip("100.64.0.0"));
        assert!(net.contains(ip("100.127.255.255")) && !net.contains(ip("100.128.0.0")));
        assert!(Cidr::new(ip("1.2.3.4"), 33).is_none());
    }

    #[test]
    fn ranges_are_never_empty() {
        assert!(PortRange::new(2, 1).is_none());
        assert!(PortRange::new(1, 1).unwrap().contains(1));
        assert!(PortRange::ALL.contains(0) && PortRange::ALL.contains(65535));
        assert!(AddrRange::new(ip("1.0.0.2"), ip("1.0.0.1")).is_none());
        let pool = AddrRange::new(ip("0.0.0.0"), ip("255.255.255.255")).unwrap();
        assert_eq!(pool.len(), 1 << 32);
        assert!(AddrRange::single(ip("1.2.3.4")).contains(ip("1.2.3.4")));
    }

    #[test]
    fn interface_patterns() {
        let lan = Iface::parse("lan+").unwrap();
        assert!(lan.is_wildcard() && lan.matches("lan0") && lan.matches("lan") && !lan.matches("wan"));
        assert!(Iface::parse("+").unwrap().matches("anything"));
        assert!(Iface::parse("wan").unwrap().matches("wan"));
        assert!(!Iface::parse("wan").unwrap().matches("wan0"));
        assert!(Iface::parse("").is_none());
    }

    #[test]
    fn protocol_numbers() {
        assert_eq!(Protocol::from_number(6), Some(Protocol::Tcp));
        assert_eq!(Protocol::from_number(17), Some(Protocol::Udp));
        assert_eq!(Protocol::from_number(1), Some(Protocol::Icmp));
        assert_eq!(Protocol::from_number(47), Some(Protocol::Unknown(47)));
        assert_eq!(Protocol::from_number(0), None);
        assert_eq!(Protocol::Unknown(47).number(), 47);
    }

    #[test]
    fn targets_per_chain_as_iptables() {
        let dnat = Target::Dnat { addrs: AddrRange::single(ip("10.0.0.1")), ports: None };
        let masq = Target::Masquerade { ports: None, random: false };
        let redirect = Target::Redirect { ports: None };
        assert!(dnat.allowed_in(Chain::Prerouting) && !dnat.allowed_in(Chain::Postrouting));
        assert!(redirect.allowed_in(Chain::Prerouting) && !redirect.allowed_in(Chain::Forward));
        assert!(masq.allowed_in(Chain::Postrouting) && !masq.allowed_in(Chain::Prerouting));
        assert!(!Target::Drop.allowed_in(Chain::Prerouting));
        for chain in [Chain::Prerouting, Chain::Postrouting, Chain::Forward] {
            assert!(Target::Accept.allowed_in(chain) && Target::Return.allowed_in(chain));
        }
        let ct = Target::Ct { helper: HelperKind::Ftp };
        assert!(ct.allowed_in(Chain::RawPrerouting) && !ct.allowed_in(Chain::Prerouting));
        assert!(!Target::Accept.allowed_in(Chain::RawPrerouting) && !Target::Return.allowed_in(Chain::RawPrerouting));
        assert_eq!(
            Rule::new(Target::Drop).check(Chain::Postrouting),
            Err(RuleProblem::DropInNat { chain: Chain::Postrouting })
        );
        assert_eq!(
            Rule::new(dnat).check(Chain::Forward),
            Err(RuleProblem::TargetNotAllowed { target: "DNAT", chain: Chain::Forward })
        );
    }

    #[test]
    fn rule_check_needs_protocols() {
        let mut rule = Rule::new(Target::Accept);
        rule.matches.dst_port = Some(Negatable::is(PortRange::single(22)));
        assert_eq!(rule.check(Chain::Forward), Err(RuleProblem::NeedsTcpOrUdp { option: "--dport" }));
        rule.matches.proto = Some(Negatable::not(Protocol::Tcp));
        assert!(rule.check(Chain::Forward).is_err(), "! -p tcp has no ports");
        rule.matches.proto = Some(Negatable::is(Protocol::Udp));
        assert_eq!(rule.check(Chain::Forward), Ok(()));

        let mut rule = Rule::new(Target::Redirect { ports: Some(PortRange::single(8080)) });
        assert_eq!(rule.check(Chain::Prerouting), Err(RuleProblem::NeedsTcpOrUdp { option: "--to-ports" }));
        rule.matches.proto = Some(Negatable::is(Protocol::Tcp));
        assert_eq!(rule.check(Chain::Prerouting), Ok(()));
        rule.matches.out_iface = Some(Negatable::is(Iface::exact("wan")));
        let err = rule.check(Chain::Prerouting).unwrap_err();
        assert!(err.to_string().starts_with("-o cannot be used in chain PREROUTING"));

        let mut rule = Rule::new(Target::Accept);
        rule.matches.icmp_type = Some(Negatable::is(8));
        assert_eq!(rule.check(Chain::Forward), Err(RuleProblem::NeedsIcmp));
        rule.comment = Some("x".repeat(MAX_COMMENT_LEN + 1));
        rule.matches.proto = Some(Negatable::is(Protocol::Icmp));
        assert_eq!(rule.check(Chain::Forward), Err(RuleProblem::BadComment));
    }

    #[test]
    fn nat_chains_accept_only() {
        assert!(Chain::Prerouting.allows_policy(Policy::Accept));
        assert!(!Chain::Postrouting.allows_policy(Policy::Drop));
        assert!(Chain::Forward.allows_policy(Policy::Drop));
        assert_eq!(Table::Nat.chain("POSTROUTING"), Some(Chain::Postrouting));
        assert_eq!(Table::Filter.chain("POSTROUTING"), None);
        assert_eq!(Table::Raw.chain("PREROUTING"), Some(Chain::RawPrerouting));
        assert!(!Chain::RawPrerouting.allows_policy(Policy::Drop));
    }

    #[test]
    fn ct_helper_needs_its_protocol() {
        let mut rule = Rule::new(Target::Ct { helper: HelperKind::Ftp });
        let e = rule.check(Chain::RawPrerouting).unwrap_err();
        assert_eq!(e.to_string(), "CT --helper ftp needs -p tcp before it");
        rule.matches.proto = Some(Negatable::is(Protocol::Udp));
        assert!(rule.check(Chain::RawPrerouting).is_err());
        rule.matches.proto = Some(Negatable::is(Protocol::Tcp));
        assert_eq!(rule.check(Chain::RawPrerouting), Ok(()));
        let mut tftp = Rule::new(Target::Ct { helper: HelperKind::Tftp });
        tftp.matches.proto = Some(Negatable::is(Protocol::Udp));
        assert_eq!(tftp.check(Chain::RawPrerouting), Ok(()));
        assert_eq!(
            Rule::new(Target::Accept).check(Chain::RawPrerouting),
            Err(RuleProblem::TargetNotAllowed { target: "ACCEPT", chain: Chain::RawPrerouting })
        );
    }
}
