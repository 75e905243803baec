//! Static-port reservation: keeping the port allocator off the external ports that the
//! port forwards (DNAT / REDIRECT rules with a destination port) of the rule set in
//! force forward.
//!
//! Rules change live, so the worker follows them itself: once per tick (at most once per
//! millisecond, outside the burst loop) [`StaticPorts::sync`] compares the compiled set in
//! force with the one it last reserved for, and on a change reserves the forwards' ports
//! this worker owns that are new and releases those no rule forwards any more. It only
//! ever releases what it reserved. A port that a mapping (or the quarantine after one)
//! still holds cannot be reserved yet: it is retried every [`STATIC_RETRY`] until it can.
//!
//! The work (and the one allocation, the wanted list) happens only on a change or a
//! retry and is proportional to the forwarded ports this worker owns times the pool
//! addresses they cover: trivial for ordinary forwards; a forward of a huge range on a
//! large pool costs that worker a pause when it arrives.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::key::{Endpoint, Proto};
use super::path::SharedRules;
use super::WorkerNat;
use crate::policy::CompiledRules;
use crate::time::{Duration, Instant};

/// How often a port forward whose port was busy (a mapping, or its quarantine) tries
/// again to reserve it.
pub const STATIC_RETRY: Duration = Duration::from_secs(1);

/// An external (address, port, protocol) reserved for a port forward, as a sort key.
type StaticKey = (u32, u16, u8);

/// The ports this worker keeps reserved for the port forwards of the rule set in force.
#[derive(Default)]
pub struct StaticPorts {
    /// The set the reservations follow (held, so its address cannot be reused).
    set: Option<Arc<CompiledRules>>,
    /// Reserved by this worker, sorted.
    owned: Vec<StaticKey>,
    /// Some wanted port could not be reserved: retry at `retry`.
    pending: bool,
    retry: Instant,
}

impl StaticPorts {
    /// Follow the port forwards of the rule set in force: on a new set, or when a busy
    /// port is due for another try. Returns whether it looked.
    pub fn sync(&mut self, nat: &mut WorkerNat, rules: &SharedRules, now: Instant) -> bool {
        let cur = rules.load();
        let same = self.set.as_ref().is_some_and(|s| Arc::ptr_eq(s, &cur));
        if same && !(self.pending && now >= self.retry) {
            return false;
        }
        let set = arc_swap::Guard::into_inner(cur);
        let me = nat.worker();
        let mut want: Vec<StaticKey> = Vec::new();
        for f in set.static_forwards() {
            let Some(proto) = Proto::from_ip(f.proto) else { continue };
            for &addr in nat.external_addrs().iter().filter(|a| f.covers(**a)) {
                for port in f.ports.first()..=f.ports.last() {
                    if nat.partition().owner_of(port) == Some(me) {
                        want.push((u32::from(addr), port, proto.number()));
                    }
                }
            }
        }
        want.sort_unstable();
        want.dedup();
        let endpoint =
            |k: StaticKey| (Endpoint::new(Ipv4Addr::from(k.0), k.1), Proto::from_ip(k.2).expect("a NAT protocol"));
        // Release what no forward wants any more; reserve what is new.
        self.owned.retain(|k| {
            let keep = want.binary_search(k).is_ok();
            if !keep {
                let (ep, proto) = endpoint(*k);
                nat.unreserve_port(ep, proto);
            }
            keep
        });
        let mut pending = false;
        for k in want {
            if self.owned.binary_search(&k).is_ok() {
                continue;
            }
            let (ep, proto) = endpoint(k);
            match nat.reserve_port(ep, proto) {
                Ok(()) => self.owned.push(k),
                Err(_) => pending = true,
            }
        }
        self.owned.sort_unstable();
        self.pending = pending;
        self.retry = now + STATIC_RETRY;
        self.set = Some(set);
        true
    }

    /// External ports reserved for port forwards.
    pub fn reserved(&self) -> usize {
        self.owned.len()
    }
}
