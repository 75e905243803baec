//! Policy: iptables rules for masq (being written).

pub mod rule;

pub use rule::{
    AddrRange, Chain, Cidr, Iface, Matches, Negatable, Policy, PortRange, Protocol, Rule,
    RuleProblem, Table, Target,
};
