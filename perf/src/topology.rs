//! The benchmark topology both harnesses build: an inside port (100.64.0.0/10, RFC 6598's
//! shared space; the worker at its top, 100.127.255.254, the subscribers from 100.64.0.1
//! up) and an outside port on RFC 2544's benchmarking network (198.18.0.0/15), a static
//! gateway neighbour, static neighbours for the subscribers (the return traffic's
//! destinations: [`add_inside_hosts`]), and one MASQUERADE rule.

use std::net::Ipv4Addr;

/// The worker's inside port MAC (the generator's frames are addressed to it).
pub const LAN_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 0, 1];
/// The worker's outside port MAC.
pub const WAN_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 0, 2];
/// The generator's MAC (the frames' source), and the inside hosts' (static neighbours
/// of the inside port, for return traffic: [`inside_neighbors`]).
pub const GEN_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 0, 0x10];
/// The outside gateway's MAC (a static neighbour in [`config_text`]).
pub const GATEWAY_MAC: [u8; 6] = [0x02, 0x6d, 0x71, 0, 0, 0x20];
/// Where every generated flow goes.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The worker's outside address: MASQUERADE's external address.
pub const OUTSIDE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// masqd's configuration of the topology, with the NAT sized as given.
pub fn config_text(max_sessions: u64, ports_per_subscriber: u32) -> String {
    format!(
        r#"
[[port]]
name = "lan"
role = "inside"
device = "net_ring0"
address = "100.127.255.254/10"

[[port]]
name = "wan"
role = "outside"
device = "net_ring1"
address = "198.18.0.1/24"
gateway = "198.18.0.254"

[workers]
cores = [1]

[[neighbor]]
port = "wan"
address = "198.18.0.254"
mac = "02:6d:71:00:00:20"

[nat]
max_sessions = {max_sessions}
ports_per_subscriber = {ports_per_subscriber}
# The benchmark's few subscribers open sessions far faster than a real one may: no
# session limit, the highest rate (the token bucket is still taken on every creation).
sessions_per_subscriber = 0
new_sessions_per_second = 1000000
new_sessions_burst = 1000000
"#
    )
}

/// Make every subscriber of `space` a static neighbour of the inside port (port 0), with
/// the generator's MAC, so return traffic to them needs no ARP.
pub fn add_inside_hosts(
    neighbors: &dataplane::l3::neighbor::NeighborTable,
    space: &crate::flows::FlowSpace,
) -> Result<(), dataplane::l3::neighbor::TableFull> {
    for s in 0..space.subscribers() {
        neighbors.add_static(0, space.subscriber(s), GEN_MAC)?;
    }
    Ok(())
}

/// Masquerade everything from inside that leaves by the outside port.
pub const RULES: &str = "*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o wan -s 100.64.0.0/10 -j MASQUERADE
COMMIT
";

#[cfg(test)]
mod tests {
    #[test]
    fn the_topology_parses_with_its_rules() {
        let config = dataplane::config::Config::parse(&super::config_text(1000, 64)).unwrap();
        assert_eq!(config.ports.len(), 2);
        dataplane::setup::load_rules(super::RULES, &config).unwrap();
    }
}
