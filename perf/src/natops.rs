//! Session-creation scenarios of the NAT core, shared by the criterion benchmark
//! (`benches/nat.rs`, group `allocate`) and the instruction-count driver
//! (`examples/nat-ops.rs`, run under callgrind), so both measure the same work.
//!
//! Every scenario fills a table of [`TABLE_SESSIONS`] sessions from empty to full, one
//! MASQUERADE creation per flow, and differs only in how the flows share inside
//! endpoints and external addresses:
//!
//! | scenario | flows | external ports |
//! |---|---|---|
//! | [`Scenario::NewMappingSparse`] | 60 000 subscribers × 1 flow: every session a new mapping | 16 addresses, < 6 % of each address's ports used |
//! | [`Scenario::NewMappingFilling`] | 4000 subscribers × 15 source ports: every session a new mapping | 1 address, filling to 93 % |
//! | [`Scenario::ExistingMapping`] | 4000 subscribers × 1 source port × 15 destination ports: 1 new mapping, then 14 sessions on it | 1 address, 6 % used |
//!
//! The table size is the same in all three, so their differences are the mapping and
//! port work, not the cache footprint of the session table. Subscriber capacity is set
//! to the subscriber count (the default, `max_sessions / 4`, would refuse most
//! subscribers of the sparse scenario), and every creation must succeed: a failure is
//! a broken benchmark, not a fast one.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::nat::{slowpath, Endpoint, NatAction, NatConfig, Proto, SessionId, Timeouts, Tuple, WorkerNat};
use dataplane::time::Instant;

use crate::flows::FlowSpace;

/// Sessions each scenario creates (the table's capacity).
pub const TABLE_SESSIONS: u32 = 60_000;
/// The server every flow goes to.
pub const SERVER: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 1);
/// The first external address (198.18.0.1 up).
pub const FIRST_EXTERNAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// One way of filling the session table (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    NewMappingSparse,
    NewMappingFilling,
    ExistingMapping,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::NewMappingSparse, Scenario::NewMappingFilling, Scenario::ExistingMapping];

    /// Short name (command line of `nat-ops`).
    pub fn name(self) -> &'static str {
        match self {
            Scenario::NewMappingSparse => "new-mapping-sparse",
            Scenario::NewMappingFilling => "new-mapping-filling",
            Scenario::ExistingMapping => "existing-mapping",
        }
    }

    /// The benchmark's description.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::NewMappingSparse => "new session + new mapping, ports <6% used",
            Scenario::NewMappingFilling => "new session + new mapping, ports filling to 93%",
            Scenario::ExistingMapping => "new session on an existing mapping",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// (subscribers, flows per subscriber, source ports per subscriber, external addresses)
    fn shape(self) -> (u32, u64, u32, u8) {
        match self {
            Scenario::NewMappingSparse => (TABLE_SESSIONS, 1, 1, 16),
            Scenario::NewMappingFilling => (4000, 15, 15, 1),
            Scenario::ExistingMapping => (4000, 15, 1, 1),
        }
    }

    /// The flows, in creation order: flow `g` for `g` in `0..TABLE_SESSIONS`.
    pub fn flows(self) -> FlowSpace {
        let (subs, flows, sports, _) = self.shape();
        FlowSpace::new(subs, flows, sports).expect("scenario flow space")
    }

    /// An empty NAT sized for the scenario (fixed seed: runs are reproducible).
    pub fn nat(self) -> WorkerNat {
        let (subs, _, _, addrs) = self.shape();
        let pool = (0..u32::from(addrs)).map(|i| Ipv4Addr::from(u32::from(FIRST_EXTERNAL) + i)).collect();
        let mut c = NatConfig::new(pool, 0, 1);
        c.max_sessions = TABLE_SESSIONS;
        c.max_subscribers = subs;
        c.seed = 0x6d61_7371;
        WorkerNat::new(c, Arc::new(Timeouts::default())).expect("scenario NAT config")
    }
}

/// The UDP tuple of flow `g` of `space`, to [`SERVER`].
pub fn tuple(space: &FlowSpace, g: u64) -> Tuple {
    let (src, sport, dport) = space.flow(g);
    Tuple::new(Endpoint::new(Ipv4Addr::from(src), sport), Endpoint::new(SERVER, dport), Proto::Udp)
}

/// Create the sessions of flows `from..to` of `space` in `nat`, as masqd's slow path
/// does (MASQUERADE, checksum deltas). Panics if one fails: the scenarios are sized so
/// that none does.
#[inline(never)]
pub fn create_flows(nat: &mut WorkerNat, space: &FlowSpace, from: u64, to: u64) -> Option<SessionId> {
    let mut last = None;
    for g in from..to {
        match slowpath::create(nat, &tuple(space, g), NatAction::Masquerade, 0, Instant::ZERO) {
            Ok(id) => last = Some(id),
            Err(e) => panic!("flow {g} of {from}..{to}: session creation failed: {e:?}"),
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_fills_its_table_without_a_failure() {
        for s in Scenario::ALL {
            let mut nat = s.nat();
            let flows = s.flows();
            assert!(flows.len() >= u64::from(TABLE_SESSIONS), "{s:?}");
            create_flows(&mut nat, &flows, 0, u64::from(TABLE_SESSIONS));
            assert_eq!(nat.count(), TABLE_SESSIONS, "{s:?}");
            let mappings = nat.counters().mappings_created;
            match s {
                Scenario::NewMappingSparse | Scenario::NewMappingFilling => {
                    assert_eq!(mappings, u64::from(TABLE_SESSIONS), "{s:?}")
                }
                Scenario::ExistingMapping => assert_eq!(mappings, 4000),
            }
            assert_eq!(Scenario::from_name(s.name()), Some(s));
        }
    }
}
