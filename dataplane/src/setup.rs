//! From masqd's configuration to the sans-I/O parts it runs: each worker's NAT
//! ([`nat_path`], [`nat_config`]), the shared timeouts ([`timeouts`]) and the rules
//! ([`load_rules`]). The NAT itself (`crate::nat`) knows nothing of the configuration
//! file; this is the one place that translates between them.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::config::{Config, Filtering as ConfigFiltering, Role};
use crate::nat::{ConfigError, Filtering, NatConfig, NatPath, SharedRules, TimeoutValues, Timeouts, WorkerNat};
use crate::policy::{Chain, CompiledRules, RuleSet, Target};

/// One worker's NAT from masqd's configuration (see [`nat_config`]), for worker `worker`
/// of `workers`. `ruleset` is the rule set `rules` holds compiled: the port forwards in
/// force are reserved from the start.
pub fn nat_path(
    config: &Config,
    ruleset: &RuleSet,
    rules: SharedRules,
    timeouts: Arc<Timeouts>,
    worker: u16,
    workers: u16,
    seed: u64,
) -> Result<NatPath, ConfigError> {
    let nat = WorkerNat::new(nat_config(config, ruleset, worker, workers, seed), timeouts)?;
    let outside = config.ports.iter().map(|p| p.role == Role::Outside).collect();
    Ok(NatPath::new(nat, rules, outside))
}

/// One worker's [`NatConfig`] from masqd's configuration: the external pool is every
/// outside port's address plus every SNAT pool address in `rules` (at most 65536 are
/// collected; a larger pool is refused by `WorkerNat::new`).
pub fn nat_config(config: &Config, rules: &RuleSet, worker: u16, workers: u16, seed: u64) -> NatConfig {
    let mut pool: Vec<Ipv4Addr> =
        config.ports.iter().filter(|p| p.role == Role::Outside).map(|p| p.address.address).collect();
    'rules: for rule in rules.rules(Chain::Postrouting) {
        if let Target::Snat { addrs, .. } = rule.target {
            let mut a = u32::from(addrs.first());
            loop {
                if pool.len() > 1 << 16 {
                    break 'rules;
                }
                pool.push(Ipv4Addr::from(a));
                if a == u32::from(addrs.last()) {
                    break;
                }
                a += 1;
            }
        }
    }
    let mut c = NatConfig::new(pool, worker, workers);
    c.max_sessions = config.nat.max_sessions;
    c.ports_per_subscriber = config.nat.ports_per_subscriber;
    c.port_block_size = config.nat.port_block_size;
    c.port_blocks_per_subscriber = config.nat.port_blocks_per_subscriber;
    c.port_hold = crate::time::Duration::from_secs(u64::from(config.nat.port_hold));
    c.sessions_per_subscriber = config.nat.sessions_per_subscriber;
    c.new_sessions_per_second = config.nat.new_sessions_per_second;
    c.new_sessions_burst = config.nat.new_sessions_burst;
    c.deterministic = config.nat.deterministic.clone();
    c.filtering = match config.nat.filtering {
        ConfigFiltering::EndpointIndependent => Filtering::EndpointIndependent,
        ConfigFiltering::AddressDependent => Filtering::AddressDependent,
        ConfigFiltering::AddressPortDependent => Filtering::AddressPortDependent,
    };
    c.helpers = config.nat.helpers.clone();
    c.max_helper_sessions = config.nat.helper_sessions;
    c.max_expectations = config.nat.helper_expectations;
    c.seed = seed;
    c
}

/// The shared live timeouts from `[timeouts]`.
pub fn timeouts(config: &Config) -> Arc<Timeouts> {
    let t = config.timeouts;
    Arc::new(Timeouts::new(TimeoutValues { tcp: t.tcp, tcpfin: t.tcpfin, udp: t.udp, icmp: t.icmp, other: t.other }))
}

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{0}")]
    Parse(#[from] crate::policy::ParseError),
    #[error("{0}")]
    Compile(#[from] crate::policy::CompileError),
    #[error("{0}")]
    StaticPorts(#[from] crate::nat::static_ports::TooManyReservations),
}

/// Parse iptables-save `text` with the configuration's port names and compile it; refuse
/// port forwards that would reserve too many external ports of the pool
/// ([`crate::nat::static_ports::check_limit`]).
pub fn load_rules(text: &str, config: &Config) -> Result<(RuleSet, CompiledRules), RulesError> {
    let names: Vec<&str> = config.ports.iter().map(|p| p.name.as_str()).collect();
    let set = RuleSet::parse_save(text, &names)?;
    let index: Vec<(&str, u16)> = names.iter().enumerate().map(|(i, n)| (*n, i as u16)).collect();
    let compiled = CompiledRules::new(&set, &index)?;
    crate::nat::static_ports::check_limit(&compiled, &nat_config(config, &set, 0, 1, 0).external_addrs)?;
    Ok((set, compiled))
}
