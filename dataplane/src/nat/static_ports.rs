//! Static-port reservation: keeping the port allocator off the external ports that the
//! port forwards (DNAT / REDIRECT rules with a protocol and destination ports) of the rule
//! set in force forward.
//!
//! Rules change live, so the worker follows them itself, from its tick (at most once per
//! millisecond, outside the burst loop), in bounded steps:
//!
//! 1. On a new compiled set, [`forward_ranges`] turns its forwards into merged ranges of
//!    (external address, protocol, ports), cut to this worker's slices of the port space:
//!    work proportional to rules × pool addresses, never to ports.
//! 2. Then, [`STATIC_STEP`] ports per tick at most: ports reserved for the old set are
//!    kept if the new set still wants them and released otherwise; then every wanted port
//!    not yet held is reserved. A port that a mapping (or the quarantine after one) still
//!    holds cannot be reserved yet: once the walk is done it is retried every
//!    [`STATIC_RETRY`], in the same bounded steps, until it can.
//!
//! So no tick does more than [`STATIC_STEP`] port operations, however large the forward,
//! and the largest rule set the control plane accepts ([`MAX_STATIC_RESERVATIONS`]
//! reservations, checked by [`check_limit`]) is in force on every worker within
//! `2 × MAX_STATIC_RESERVATIONS / STATIC_STEP` ticks (32 ms). What this worker holds is a
//! bit per wanted port, so it only ever releases what it reserved.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::key::{Endpoint, Proto};
use super::path::SharedRules;
use super::ports::PortRange;
use super::WorkerNat;
use crate::policy::CompiledRules;
use crate::time::{Duration, Instant};

/// How often a port forward whose port was busy (a mapping, or its quarantine) tries
/// again to reserve it.
pub const STATIC_RETRY: Duration = Duration::from_secs(1);

/// Ports one tick reserves, releases or looks at, at most.
pub const STATIC_STEP: u32 = 4096;

/// (External address, port, protocol) triples the port forwards of one rule set may
/// reserve in all: a rule set asking for more is refused ([`check_limit`]).
pub const MAX_STATIC_RESERVATIONS: u64 = 65536;

/// Ports of one (external address, protocol) that port forwards reserve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForwardRange {
    pub addr: Ipv4Addr,
    /// IP protocol number.
    pub proto: u8,
    pub ports: PortRange,
}

/// The port forwards of `set` on the external addresses `pool`, as sorted, merged
/// ranges; cut to `slices` (a worker's slices of the port space) if given.
pub fn forward_ranges(set: &CompiledRules, pool: &[Ipv4Addr], slices: Option<&[PortRange]>) -> Vec<ForwardRange> {
    let mut out = Vec::new();
    for f in set.static_forwards() {
        if Proto::from_ip(f.proto).is_none() {
            continue;
        }
        let ports = PortRange::new(f.ports.first(), f.ports.last());
        for &addr in pool.iter().filter(|a| f.covers(**a)) {
            match slices {
                None => out.push(ForwardRange { addr, proto: f.proto, ports }),
                Some(slices) => out.extend(
                    slices.iter().map(|s| ports.intersect(*s)).filter(|p| !p.is_empty()).map(|ports| ForwardRange {
                        addr,
                        proto: f.proto,
                        ports,
                    }),
                ),
            }
        }
    }
    out.sort_unstable_by_key(|r| (r.addr, r.proto, r.ports.lo, r.ports.hi));
    // Merge overlapping or adjacent ranges of one (address, protocol).
    let mut merged: Vec<ForwardRange> = Vec::with_capacity(out.len());
    for r in out {
        match merged.last_mut() {
            Some(m) if m.addr == r.addr && m.proto == r.proto && u32::from(r.ports.lo) <= u32::from(m.ports.hi) + 1 => {
                m.ports.hi = m.ports.hi.max(r.ports.hi);
            }
            _ => merged.push(r),
        }
    }
    merged
}

/// Why a rule set was refused: its port forwards would reserve too many ports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "PREROUTING rule {rule} forwards {ports} ports on {addrs} external address(es): the port forwards \
     of a rule set may reserve at most {MAX_STATIC_RESERVATIONS} (address, port, protocol) in all, and \
     these rules would reserve {total}; name one external address with -d, or forward fewer ports"
)]
pub struct TooManyReservations {
    /// The rule reserving the most (1-based, in PREROUTING).
    pub rule: usize,
    pub ports: u32,
    pub addrs: usize,
    pub total: u64,
}

/// Refuse a rule set whose port forwards would reserve more than
/// [`MAX_STATIC_RESERVATIONS`] triples on the external pool `pool`. Returns how many it
/// reserves.
pub fn check_limit(set: &CompiledRules, pool: &[Ipv4Addr]) -> Result<u64, TooManyReservations> {
    let total: u64 = forward_ranges(set, pool, None).iter().map(|r| u64::from(r.ports.len())).sum();
    if total <= MAX_STATIC_RESERVATIONS {
        return Ok(total);
    }
    let (rule, ports, addrs) = set
        .static_forwards()
        .iter()
        .map(|f| {
            let addrs = pool.iter().filter(|a| f.covers(**a)).count();
            (f.rule, PortRange::new(f.ports.first(), f.ports.last()).len(), addrs)
        })
        .max_by_key(|(_, ports, addrs)| u64::from(*ports) * *addrs as u64)
        .unwrap_or((0, 0, 0));
    Err(TooManyReservations { rule, ports, addrs, total })
}

/// Wanted ranges with the index of their first port's bit.
#[derive(Default)]
struct Wanted {
    ranges: Vec<ForwardRange>,
    /// `base[i]`: bit of `ranges[i]`'s first port; the last entry is the total.
    base: Vec<u32>,
    /// Bit per wanted port: reserved by this worker.
    held: Vec<u64>,
}

impl Wanted {
    fn new(ranges: Vec<ForwardRange>) -> Wanted {
        let mut base = Vec::with_capacity(ranges.len() + 1);
        let mut total = 0u32;
        for r in &ranges {
            base.push(total);
            total += r.ports.len();
        }
        base.push(total);
        Wanted { ranges, base, held: vec![0; (total as usize).div_ceil(64)] }
    }

    fn total(&self) -> u32 {
        self.base.last().copied().unwrap_or(0)
    }

    /// The (address, port, protocol) of bit `bit`.
    fn at(&self, bit: u32) -> (Endpoint, Proto) {
        let i = self.base.partition_point(|b| *b <= bit) - 1;
        let r = self.ranges[i];
        let port = r.ports.lo + (bit - self.base[i]) as u16;
        (Endpoint::new(r.addr, port), Proto::from_ip(r.proto).expect("a NAT protocol"))
    }

    /// The bit of (address, port, protocol), if wanted.
    fn find(&self, ep: Endpoint, proto: Proto) -> Option<u32> {
        let key = (ep.addr, proto.number());
        let i = self.ranges.partition_point(|r| (r.addr, r.proto, r.ports.lo) <= (key.0, key.1, ep.port));
        let r = self.ranges.get(i.checked_sub(1)?)?;
        ((r.addr, r.proto) == key && r.ports.contains(ep.port))
            .then(|| self.base[i - 1] + u32::from(ep.port - r.ports.lo))
    }

    fn is_held(&self, bit: u32) -> bool {
        self.held[(bit / 64) as usize] & (1 << (bit % 64)) != 0
    }

    fn set_held(&mut self, bit: u32) {
        self.held[(bit / 64) as usize] |= 1 << (bit % 64);
    }

    fn count(&self) -> usize {
        self.held.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The ports this worker keeps reserved for the port forwards of the rule set in force.
#[derive(Default)]
pub struct StaticPorts {
    /// The set `want` follows (held, so its address cannot be reused).
    set: Option<Arc<CompiledRules>>,
    want: Wanted,
    /// Reservations made for the sets before, being kept or released.
    old: Wanted,
    /// Next bit of `old` to keep or release.
    release_at: u32,
    /// Next bit of `want` to reserve.
    reserve_at: u32,
    /// Some wanted port could not be reserved in the last walk: walk again at `retry`.
    pending: bool,
    retry: Instant,
}

impl StaticPorts {
    /// Follow the port forwards of the rule set in force: start over on a new set, then
    /// do at most [`STATIC_STEP`] ports of what is left to do. Returns the ports it
    /// looked at (0: nothing to do).
    pub fn sync(&mut self, nat: &mut WorkerNat, rules: &SharedRules, now: Instant) -> u32 {
        let cur = rules.load();
        if !self.set.as_ref().is_some_and(|s| Arc::ptr_eq(s, &cur)) {
            let set = arc_swap::Guard::into_inner(cur);
            self.start(nat, set);
        }
        if self.pending && self.reserve_at >= self.want.total() && now >= self.retry {
            self.pending = false;
            self.reserve_at = 0;
        }
        let mut budget = STATIC_STEP;
        // Keep or release what the sets before had reserved.
        while self.release_at < self.old.total() && budget > 0 {
            let bit = self.release_at;
            self.release_at += 1;
            // A word with nothing held costs one step.
            if bit & 63 == 0 && self.old.held[(bit / 64) as usize] == 0 {
                self.release_at = (bit + 64).min(self.old.total());
                budget -= 1;
                continue;
            }
            if !self.old.is_held(bit) {
                continue;
            }
            budget -= 1;
            let (ep, proto) = self.old.at(bit);
            match self.want.find(ep, proto) {
                Some(kept) => self.want.set_held(kept),
                None => nat.unreserve_port(ep, proto),
            }
        }
        if self.release_at >= self.old.total() && self.old.total() > 0 {
            self.old = Wanted::default();
            self.release_at = 0;
        }
        // Reserve what is wanted and not held yet.
        let walking = self.reserve_at < self.want.total();
        while self.old.total() == 0 && self.reserve_at < self.want.total() && budget > 0 {
            let bit = self.reserve_at;
            self.reserve_at += 1;
            budget -= 1;
            if self.want.is_held(bit) {
                continue;
            }
            let (ep, proto) = self.want.at(bit);
            match nat.reserve_port(ep, proto) {
                Ok(()) => self.want.set_held(bit),
                Err(_) => self.pending = true,
            }
        }
        if walking && self.reserve_at >= self.want.total() {
            self.retry = now + STATIC_RETRY;
        }
        STATIC_STEP - budget
    }

    /// A new set: what was held moves to `old` (kept or released, step by step), and the
    /// new set's ranges on this worker's slices become `want`.
    fn start(&mut self, nat: &WorkerNat, set: Arc<CompiledRules>) {
        let me = nat.worker();
        let slices = [nat.partition().slice(me, true), nat.partition().slice(me, false)];
        let want = Wanted::new(forward_ranges(&set, nat.external_addrs(), Some(&slices)));
        let before = std::mem::replace(&mut self.want, want);
        if self.old.total() == 0 {
            self.old = before;
            self.release_at = 0;
        } else {
            // A change during a change: what the unfinished set held joins what is still
            // to be released (rare; both lists are short for ordinary forwards).
            let mut bits = Vec::new();
            for bit in 0..before.total() {
                if before.is_held(bit) {
                    bits.push(before.at(bit));
                }
            }
            for bit in self.release_at..self.old.total() {
                if self.old.is_held(bit) {
                    bits.push(self.old.at(bit));
                }
            }
            self.old = Wanted::from_held(bits);
            self.release_at = 0;
        }
        self.reserve_at = 0;
        self.pending = false;
        self.set = Some(set);
    }

    /// Work left: a change still being applied or busy ports to retry.
    pub fn busy(&self) -> bool {
        self.old.total() > 0 || self.reserve_at < self.want.total() || self.pending
    }

    /// Apply the set in force completely, now (start-up, before the worker runs).
    pub fn settle(&mut self, nat: &mut WorkerNat, rules: &SharedRules, now: Instant) {
        while self.sync(nat, rules, now) > 0 && (self.old.total() > 0 || self.reserve_at < self.want.total()) {}
    }

    /// External ports reserved for port forwards.
    pub fn reserved(&self) -> usize {
        self.want.count() + (self.release_at..self.old.total()).filter(|b| self.old.is_held(*b)).count()
    }
}

impl Wanted {
    /// A list of single held ports (for a change during a change).
    fn from_held(mut ports: Vec<(Endpoint, Proto)>) -> Wanted {
        ports.sort_unstable_by_key(|(ep, p)| (ep.addr, p.number(), ep.port));
        ports.dedup();
        let ranges = ports
            .iter()
            .map(|(ep, p)| ForwardRange { addr: ep.addr, proto: p.number(), ports: PortRange::new(ep.port, ep.port) })
            .collect();
        let mut w = Wanted::new(ranges);
        for bit in 0..w.total() {
            w.set_held(bit);
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::{NatAction, NatConfig, Timeouts, Tuple};
    use arc_swap::ArcSwap;

    const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);

    fn compiled(rules: &str) -> Arc<CompiledRules> {
        let set = crate::policy::RuleSet::parse_save(rules, &["lan", "wan"]).unwrap();
        Arc::new(CompiledRules::new(&set, &[("lan", 0), ("wan", 1)]).unwrap())
    }

    fn nat(pool: Vec<Ipv4Addr>) -> WorkerNat {
        WorkerNat::new(NatConfig::new(pool, 0, 1), Arc::new(Timeouts::default())).unwrap()
    }

    const ALL_HIGH_TCP: &str =
        "*nat\n-A PREROUTING -i wan -p tcp --dport 1024:65535 -j DNAT --to-destination 100.64.0.2\nCOMMIT\n";
    const NONE: &str = "*nat\nCOMMIT\n";

    /// Run `sync` until there is nothing left to do; every call looks at no more than
    /// STATIC_STEP ports. Returns the number of calls that did something.
    fn apply(s: &mut StaticPorts, n: &mut WorkerNat, rules: &SharedRules, now: Instant) -> u32 {
        let mut calls = 0;
        loop {
            let looked = s.sync(n, rules, now);
            assert!(looked <= STATIC_STEP, "one tick looked at {looked} ports");
            if looked == 0 {
                return calls;
            }
            calls += 1;
            assert!(calls < 1000, "never done");
        }
    }

    fn tcp_from(port: u16) -> Tuple {
        Tuple::new(
            Endpoint::new(Ipv4Addr::new(100, 64, 0, 9), port),
            Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), 443),
            Proto::Tcp,
        )
    }

    /// Issue 11 item 2: a forward of every port above 1023 is applied a bounded step per
    /// tick (it used to be built, sorted and reserved in one tick, and again every second
    /// while a port was busy), and released the same way.
    #[test]
    fn a_forward_of_every_high_port_is_applied_in_bounded_steps() {
        let mut n = nat(vec![EXT]);
        let rules: SharedRules = Arc::new(ArcSwap::new(compiled(NONE)));
        let mut s = StaticPorts::default();
        let t = Instant::from_secs(1);
        // A masqueraded flow holds port 40000 before the forward comes.
        let held = n.create(&tcp_from(40000), NatAction::Masquerade, 0x02, t).unwrap();
        assert_eq!(n.session(held).map(|x| x.session.outside().port), Some(40000));
        assert_eq!(apply(&mut s, &mut n, &rules, t), 0);

        rules.store(compiled(ALL_HIGH_TCP));
        let calls = apply(&mut s, &mut n, &rules, t);
        assert!(calls >= 64512 / STATIC_STEP, "{calls} ticks");
        assert_eq!(s.reserved(), 64512 - 1, "every high TCP port but the one a mapping holds");
        assert!(s.busy(), "the busy port is retried");
        // Masquerade cannot take a forwarded port: new TCP flows find none.
        assert!(n.create(&tcp_from(50000), NatAction::Masquerade, 0x02, t).is_err());
        // Retries happen once per STATIC_RETRY, in bounded steps too.
        assert_eq!(s.sync(&mut n, &rules, t + Duration::from_millis(500)), 0);
        assert!(s.sync(&mut n, &rules, t + STATIC_RETRY) > 0);

        // Deleted: released step by step; masquerade gets high ports again.
        rules.store(compiled(NONE));
        let calls = apply(&mut s, &mut n, &rules, t + STATIC_RETRY);
        assert!(calls >= 64511 / STATIC_STEP, "{calls} ticks");
        assert_eq!(s.reserved(), 0);
        assert!(!s.busy());
        let id = n.create(&tcp_from(50001), NatAction::Masquerade, 0x02, t).unwrap();
        assert_eq!(n.session(id).map(|x| x.session.outside().port), Some(50001));
    }

    /// A new set while the last one is still being applied: the worker ends up holding
    /// exactly the new set's ports, and gives back every other port it took.
    #[test]
    fn a_change_during_a_change_ends_with_exactly_the_new_set() {
        let mut n = nat(vec![EXT]);
        let rules: SharedRules = Arc::new(ArcSwap::new(compiled(ALL_HIGH_TCP)));
        let mut s = StaticPorts::default();
        let t = Instant::from_secs(1);
        for _ in 0..3 {
            s.sync(&mut n, &rules, t);
        }
        assert!(s.busy());
        let small = "*nat\n-A PREROUTING -i wan -p tcp --dport 2000:2999 -j DNAT --to-destination 100.64.0.2\n\
                     -A PREROUTING -i wan -p udp --dport 53 -j DNAT --to-destination 100.64.0.3\nCOMMIT\n";
        rules.store(compiled(small));
        s.sync(&mut n, &rules, t);
        rules.store(compiled(small)); // the same rules again: a new set all the same
        apply(&mut s, &mut n, &rules, t);
        assert_eq!(s.reserved(), 1001);
        for port in [1024, 1999, 3000, 9000, 65535] {
            assert!(n.reserve_port(Endpoint::new(EXT, port), Proto::Tcp).is_ok(), "port {port} was given back");
            n.unreserve_port(Endpoint::new(EXT, port), Proto::Tcp);
        }
        for port in [2000, 2500, 2999] {
            assert!(n.reserve_port(Endpoint::new(EXT, port), Proto::Tcp).is_err(), "port {port} is held");
        }
        assert!(n.reserve_port(Endpoint::new(EXT, 53), Proto::Udp).is_err());
    }

    #[test]
    fn ranges_are_merged_and_cut_to_the_slices() {
        let set = compiled(
            "*nat\n-A PREROUTING -i wan -p tcp --dport 100:200 -j DNAT --to-destination 100.64.0.2\n\
             -A PREROUTING -i wan -p tcp --dport 150:300 -j DNAT --to-destination 100.64.0.2\n\
             -A PREROUTING -i wan -d 203.0.113.2 -p udp --dport 5000 -j REDIRECT\n\
             -A PREROUTING -i wan -p tcp -j DNAT --to-destination 100.64.0.9\nCOMMIT\n",
        );
        let pool = [EXT, Ipv4Addr::new(203, 0, 113, 2)];
        let r = forward_ranges(&set, &pool, None);
        let tcp = |a, lo, hi| ForwardRange { addr: a, proto: 6, ports: PortRange::new(lo, hi) };
        assert_eq!(
            r,
            vec![
                tcp(EXT, 100, 300),
                tcp(pool[1], 100, 300),
                ForwardRange { addr: pool[1], proto: 17, ports: PortRange::new(5000, 5000) }
            ]
        );
        let cut = forward_ranges(&set, &pool[..1], Some(&[PortRange::new(1, 127), PortRange::new(1024, 32000)]));
        assert_eq!(cut, vec![tcp(EXT, 100, 127)]);
        assert_eq!(check_limit(&set, &pool), Ok(2 * 201 + 1));
    }

    /// Issue 11 item 2: `--dport 1024:65535` on a pool of 16 addresses is refused, with a
    /// message that says why and what to do; on one address (or with `-d`) it is accepted.
    #[test]
    fn a_rule_set_reserving_too_many_ports_is_refused() {
        let pool: Vec<Ipv4Addr> = (1..=16).map(|i| Ipv4Addr::new(203, 0, 113, i)).collect();
        let set = compiled(ALL_HIGH_TCP);
        let e = check_limit(&set, &pool).unwrap_err();
        assert_eq!(e, TooManyReservations { rule: 1, ports: 64512, addrs: 16, total: 64512 * 16 });
        let msg = e.to_string();
        for needle in ["PREROUTING rule 1", "64512 ports on 16 external address", "at most 65536", "-d"] {
            assert!(msg.contains(needle), "{msg}");
        }
        assert_eq!(check_limit(&set, &pool[..1]), Ok(64512));
        let narrowed = compiled(
            "*nat\n-A PREROUTING -i wan -d 203.0.113.5 -p tcp --dport 1024:65535 -j DNAT --to-destination 100.64.0.2\nCOMMIT\n",
        );
        assert_eq!(check_limit(&narrowed, &pool), Ok(64512));
        // Two forwards of the same ports count once.
        let twice = compiled(
            "*nat\n-A PREROUTING -i wan -p tcp --dport 1024:65535 -j DNAT --to-destination 100.64.0.2\n\
             -A PREROUTING -i wan -p tcp --dport 1024:65535 -j DNAT --to-destination 100.64.0.3\nCOMMIT\n",
        );
        assert_eq!(check_limit(&twice, &pool[..1]), Ok(64512));
    }
}
