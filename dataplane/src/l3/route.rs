//! The routing table: connected prefixes of every port plus one default gateway.
//!
//! Built once from the configuration before workers start and read-only afterwards, so
//! workers share it without synchronisation. Longest prefix wins; a handful of ports
//! makes a linear scan over prefixes sorted by length the fastest structure.

use std::net::Ipv4Addr;

use crate::config::{Config, Ipv4Cidr};

/// Where a packet goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Egress port index.
    pub port: u16,
    /// The address to resolve with ARP: the destination itself when on-link, else the gateway.
    pub via: Ipv4Addr,
}

#[derive(Debug, Clone, Copy)]
struct Connected {
    network: u32,
    mask: u32,
    port: u16,
}

/// Per-port facts the router needs on the fast path.
#[derive(Debug, Clone, Copy)]
pub struct PortAddr {
    pub address: Ipv4Addr,
    pub prefix: Ipv4Cidr,
    pub mtu: u16,
}

/// Connected routes and the default route.
#[derive(Debug, Clone)]
pub struct RouteTable {
    connected: Vec<Connected>,
    default: Option<NextHop>,
    ports: Vec<PortAddr>,
    /// Every port's address and its prefix's broadcast address (for the per-packet
    /// "is it ours?" checks), as integers.
    addresses: Vec<u32>,
    broadcasts: Vec<u32>,
    /// Per port, the `(network, mask)` of every prefix in its `allowed_sources`; empty:
    /// any source.
    sources: Vec<Box<[(u32, u32)]>>,
}

impl RouteTable {
    pub fn from_config(config: &Config) -> RouteTable {
        let ports: Vec<PortAddr> = config
            .ports
            .iter()
            .map(|p| PortAddr { address: p.address.address, prefix: p.address, mtu: p.mtu })
            .collect();
        let mut connected: Vec<Connected> = ports
            .iter()
            .enumerate()
            .map(|(i, p)| Connected {
                network: u32::from(p.prefix.address) & p.prefix.mask(),
                mask: p.prefix.mask(),
                port: i as u16,
            })
            .collect();
        connected.sort_by_key(|c| std::cmp::Reverse(c.mask.count_ones()));
        let default =
            config.ports.iter().enumerate().find_map(|(i, p)| p.gateway.map(|via| NextHop { port: i as u16, via }));
        let addresses = ports.iter().map(|p| u32::from(p.address)).collect();
        let broadcasts = ports.iter().filter_map(|p| p.prefix.broadcast()).map(u32::from).collect();
        let sources = config
            .ports
            .iter()
            .map(|p| p.allowed_sources.iter().map(|c| (u32::from(c.address) & c.mask(), c.mask())).collect())
            .collect();
        RouteTable { connected, default, ports, addresses, broadcasts, sources }
    }

    /// Whether a packet from `src` may arrive on `port` (RFC 2827 ingress filtering): the
    /// port lists no `allowed_sources`, or one of them covers `src`. A linear scan over
    /// at most [`crate::config::MAX_ALLOWED_SOURCES`] prefixes; nothing allocates.
    #[inline]
    pub fn source_allowed(&self, port: u16, src: Ipv4Addr) -> bool {
        let Some(list) = self.sources.get(usize::from(port)) else { return true };
        let s = u32::from(src);
        list.is_empty() || list.iter().any(|&(network, mask)| s & mask == network)
    }

    /// The next hop toward `dst`, or `None` when no prefix covers it and there is no gateway.
    #[inline]
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let d = u32::from(dst);
        for c in &self.connected {
            if d & c.mask == c.network {
                return Some(NextHop { port: c.port, via: dst });
            }
        }
        self.default
    }

    /// The port whose own address is `addr`, if any (packets for the router itself).
    #[inline]
    pub fn local_port(&self, addr: Ipv4Addr) -> Option<u16> {
        let a = u32::from(addr);
        self.addresses.iter().position(|&p| p == a).map(|i| i as u16)
    }

    /// Whether `addr` is a directed broadcast of one of our prefixes.
    #[inline]
    pub fn is_directed_broadcast(&self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        self.broadcasts.contains(&a)
    }

    pub fn port(&self, port: u16) -> &PortAddr {
        &self.ports[usize::from(port)]
    }

    pub fn port_count(&self) -> usize {
        self.ports.len()
    }
}

/// What the NAT's slow path asks of routing (policy matches on the egress port).
impl crate::nat::Routing for RouteTable {
    #[inline]
    fn egress(&self, dst: Ipv4Addr) -> Option<u16> {
        self.lookup(dst).map(|h| h.port)
    }

    #[inline]
    fn is_local(&self, addr: Ipv4Addr) -> bool {
        self.local_port(addr).is_some()
    }

    #[inline]
    fn port_address(&self, port: u16) -> Ipv4Addr {
        self.port(port).address
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let cfg = Config::parse(
            r#"
[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "100.64.0.1/10"
[[port]]
name = "wan"
role = "outside"
device = "net_null1"
address = "203.0.113.1/24"
gateway = "203.0.113.254"
[[port]]
name = "dmz"
role = "inside"
device = "net_null2"
address = "100.127.1.1/24"
mtu = 1400
[workers]
cores = [1]
"#,
        )
        .unwrap_err();
        // Overlapping prefixes are refused by the config; build the table by hand instead.
        assert!(cfg.message.contains("overlaps"));
        let cfg = Config::parse(
            r#"
[[port]]
name = "lan"
role = "inside"
device = "net_null0"
address = "100.64.0.1/10"
[[port]]
name = "wan"
role = "outside"
device = "net_null1"
address = "203.0.113.1/24"
gateway = "203.0.113.254"
[[port]]
name = "dmz"
role = "inside"
device = "net_null2"
address = "192.0.2.1/28"
mtu = 1400
[workers]
cores = [1]
"#,
        )
        .unwrap();
        RouteTable::from_config(&cfg)
    }

    #[test]
    fn connected_then_default() {
        let t = table();
        let ip = Ipv4Addr::new;
        assert_eq!(t.lookup(ip(100, 64, 0, 2)), Some(NextHop { port: 0, via: ip(100, 64, 0, 2) }));
        assert_eq!(t.lookup(ip(100, 127, 255, 254)), Some(NextHop { port: 0, via: ip(100, 127, 255, 254) }));
        assert_eq!(t.lookup(ip(203, 0, 113, 9)), Some(NextHop { port: 1, via: ip(203, 0, 113, 9) }));
        assert_eq!(t.lookup(ip(192, 0, 2, 14)), Some(NextHop { port: 2, via: ip(192, 0, 2, 14) }));
        assert_eq!(t.lookup(ip(192, 0, 2, 16)), Some(NextHop { port: 1, via: ip(203, 0, 113, 254) }));
        assert_eq!(t.lookup(ip(8, 8, 8, 8)), Some(NextHop { port: 1, via: ip(203, 0, 113, 254) }));
        assert_eq!(t.local_port(ip(203, 0, 113, 1)), Some(1));
        assert_eq!(t.local_port(ip(203, 0, 113, 2)), None);
        assert!(t.is_directed_broadcast(ip(192, 0, 2, 15)));
        assert!(!t.is_directed_broadcast(ip(192, 0, 2, 14)));
        assert_eq!(t.port(2).mtu, 1400);
    }

    #[test]
    fn sources_are_checked_per_port_against_its_list() {
        let cfg = Config::parse(
            "[[port]]\nname='a'\nrole='inside'\ndevice='net_null0'\naddress='100.64.0.1/10'\n\
             allowed_sources=['100.64.0.0/10', '192.0.2.0/31']\n\
             [[port]]\nname='b'\nrole='outside'\ndevice='net_null1'\naddress='198.51.100.1/24'\n\
             [[port]]\nname='c'\nrole='inside'\ndevice='net_null2'\naddress='10.0.0.1/8'\n\
             [workers]\ncores=[1]\n",
        )
        .unwrap();
        let t = RouteTable::from_config(&cfg);
        let ip = Ipv4Addr::new;
        for ok in [ip(100, 64, 0, 2), ip(100, 127, 255, 255), ip(192, 0, 2, 0), ip(192, 0, 2, 1)] {
            assert!(t.source_allowed(0, ok), "{ok}");
        }
        for bad in [ip(100, 128, 0, 0), ip(100, 63, 255, 255), ip(192, 0, 2, 2), ip(10, 0, 0, 2), ip(8, 8, 8, 8)] {
            assert!(!t.source_allowed(0, bad), "{bad}");
        }
        // Ports without a list take any source.
        assert!(t.source_allowed(1, ip(8, 8, 8, 8)));
        assert!(t.source_allowed(2, ip(100, 128, 0, 0)));
    }

    #[test]
    fn no_gateway_means_no_default_route() {
        let cfg = Config::parse(
            "[[port]]\nname='a'\nrole='inside'\ndevice='net_null0'\naddress='10.0.0.1/8'\n\
             [[port]]\nname='b'\nrole='outside'\ndevice='net_null1'\naddress='198.51.100.1/24'\n\
             [workers]\ncores=[1]\n",
        )
        .unwrap();
        let t = RouteTable::from_config(&cfg);
        assert_eq!(t.lookup(Ipv4Addr::new(8, 8, 8, 8)), None);
        assert!(t.lookup(Ipv4Addr::new(10, 1, 2, 3)).is_some());
    }
}
