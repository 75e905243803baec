//! The per-worker NAT configuration, built before the worker starts and frozen after.

use super::filter::Filtering;
use super::frag::DEFAULT_FRAG_TIMEOUT;
use super::helper::HelperPort;
use super::ports::{PartitionError, PortPartition, PortRange};
use crate::time::Duration;
use std::net::Ipv4Addr;

/// Sizes, limits and behaviour of one worker's NAT. Every table is allocated from
/// these numbers in [`WorkerNat::new`](super::WorkerNat::new) and never grows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// The external pool, shared by all workers (each owns a slice of every address's
    /// ports). Sorted and de-duplicated on construction; at most 65535 addresses.
    pub external_addrs: Vec<Ipv4Addr>,
    /// Session capacity of this worker (below 2^30).
    pub max_sessions: u32,
    /// Subscriber (inside address) capacity; 0 means `max_sessions / 4`, at least 64
    /// and at most `max_sessions`.
    pub max_subscribers: u32,
    /// External ports (mappings, all protocols together) per subscriber; 0 = no limit.
    pub ports_per_subscriber: u32,
    /// Sessions per subscriber; 0 = no limit.
    pub sessions_per_subscriber: u32,
    /// Port block allocation: ports per block, 0 = off (ports one by one). At most the
    /// length of a worker's slice of `port_range`; see [`super::blocks`].
    pub port_block_size: u32,
    /// Blocks one subscriber may hold at once (with `port_block_size`), at least 1.
    pub port_blocks_per_subscriber: u32,
    /// New sessions a subscriber may open per second (a token bucket per subscriber);
    /// 0 = no limit.
    pub new_sessions_per_second: u32,
    /// The bucket's size: new sessions a subscriber may open at once (at least 1).
    pub new_sessions_burst: u32,
    /// Inbound filtering for mappings.
    pub filtering: Filtering,
    /// This worker's index, `0..worker_count`.
    pub worker_index: u16,
    /// Number of workers sharing the pool.
    pub worker_count: u16,
    /// The non-privileged external port range (inclusive, `lo >= 1024`).
    pub port_range: (u16, u16),
    /// How long a freed port is held back before reuse (120 s by default).
    pub port_hold: Duration,
    /// Capacity of the freed-port quarantine ring; 0 means
    /// `min(ports this worker owns, 2 × max_sessions)`.
    pub quarantine_capacity: u32,
    /// Datagrams tracked by the fragment table.
    pub max_fragments: u32,
    /// Lifetime of a fragment entry.
    pub fragment_timeout: Duration,
    /// Protocol helpers by server port (`[nat] helpers`); FTP on 21 and TFTP on 69 by
    /// default.
    pub helpers: Vec<HelperPort>,
    /// Sessions with a line-parsing helper (FTP, IRC) this worker can hold at once; 0
    /// means `max_sessions / 16`, at least 16 and at most 4096.
    pub max_helper_sessions: u32,
    /// Open expectations this worker can hold at once.
    pub max_expectations: u32,
    /// Deterministic NAT tables (RFC 7422); their external addresses must not be in
    /// `external_addrs`.
    pub deterministic: super::deterministic::DetTables,
    /// Secret for the table hash and the port PRF. The daemon draws it from the OS;
    /// tests fix it.
    pub seed: u64,
}

impl NatConfig {
    /// Defaults for one worker of `worker_count`: 64 Ki sessions, no per-subscriber
    /// limits (nor rate), endpoint-independent filtering, ports 1024–65535, 120 s port hold,
    /// 1024 fragment entries for 2 s, the FTP and TFTP helpers (4096 helper sessions,
    /// 1024 expectations).
    pub fn new(external_addrs: Vec<Ipv4Addr>, worker_index: u16, worker_count: u16) -> Self {
        NatConfig {
            external_addrs,
            max_sessions: 65536,
            max_subscribers: 0,
            ports_per_subscriber: 0,
            sessions_per_subscriber: 0,
            port_block_size: 0,
            port_blocks_per_subscriber: 8,
            new_sessions_per_second: 0,
            new_sessions_burst: 0,
            filtering: Filtering::EndpointIndependent,
            worker_index,
            worker_count,
            port_range: (1024, 65535),
            port_hold: Duration::from_secs(120),
            quarantine_capacity: 0,
            max_fragments: 1024,
            fragment_timeout: DEFAULT_FRAG_TIMEOUT,
            helpers: HelperPort::defaults(),
            max_helper_sessions: 0,
            max_expectations: 1024,
            deterministic: Default::default(),
            seed: 0x6d61_7371,
        }
    }

    /// The port partition this configuration implies.
    pub fn partition(&self) -> Result<PortPartition, ConfigError> {
        let (lo, hi) = self.port_range;
        Ok(PortPartition::new(self.worker_count, PortRange::new(lo, hi))?)
    }

    pub(crate) fn helper_sessions(&self) -> u32 {
        match self.max_helper_sessions {
            0 => (self.max_sessions / 16).clamp(16, 4096),
            n => n,
        }
    }

    pub(crate) fn subscribers(&self) -> u32 {
        match self.max_subscribers {
            0 => (self.max_sessions / 4).max(64).min(self.max_sessions.max(1)),
            n => n,
        }
    }
}

/// Why a configuration was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("port partition: {0}")]
    Partition(#[from] PartitionError),
    #[error("worker_index must be below worker_count")]
    WorkerIndex,
    #[error("max_sessions must be between 1 and 2^30")]
    MaxSessions,
    #[error("at most 65535 external addresses")]
    TooManyAddresses,
    #[error("the port space of one worker must stay below 2^32 ports")]
    PortSpace,
    #[error("{0} is both a deterministic NAT address and in the dynamic pool (an outside port's or an SNAT rule's)")]
    DeterministicInPool(Ipv4Addr),
    #[error("port blocks of {size} ports do not fit this worker's slice of {slice} ports")]
    PortBlockSize { size: u32, slice: u32 },
    #[error("port_blocks_per_subscriber must be at least 1")]
    PortBlocksPerSubscriber,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_make_a_partition() {
        let c = NatConfig::new(vec![Ipv4Addr::new(192, 0, 2, 1)], 0, 2);
        let p = c.partition().unwrap();
        assert_eq!(p.workers(), 2);
        assert_eq!(c.subscribers(), 16384);
        let mut bad = c.clone();
        bad.port_range = (80, 90);
        assert!(bad.partition().is_err());
    }
}
