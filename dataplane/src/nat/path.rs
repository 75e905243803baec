//! [`NatPath`]: one worker's NAT as the packet pipeline sees it — its [`WorkerNat`], the
//! shared rules, the role of every port, steering among workers — and the NAT's three
//! jobs in the pipeline (`crate::pipeline`), each a call per packet of a stage's vector:
//!
//! | stage          | call                                                                  |
//! |----------------|-----------------------------------------------------------------------|
//! | `nat-classify` | [`classify`] (the stage), then [`NatPath::owner`]: which worker owns it |
//! | `nat-lookup`   | [`NatPath::lookup_begin`], [`NatPath::lookup_prefetch`], [`NatPath::lookup`]: the fast path, three passes over the vector, one hash per packet |
//! | `nat-slowpath` | [`NatPath::slow_path`] (in [`super::slowpath`]): everything else      |
//! | `nat-rewrite`  | [`NatPath::apply`]: the stored deltas, then the sessions' timers      |
//!
//! ```text
//!  nat-lookup:  arrived inside ─▶ session by (inside, remote) ── hit, dst not ours ─▶ Hit: src inside → outside
//!               arrived outside ─▶ session by (outside, remote) ── hit ─────────────▶ Hit: dst outside → inside
//!               anything else (a miss, a fragment, an ICMP error, a hairpin) ─▶ nat-slowpath
//!  nat-slowpath: the whole decision (super::slowpath): policy, creation, hairpinning,
//!                DNAT, ICMP errors, fragments ─▶ a Decision with a Plan
//!  then: ip4-forward routes Plan.dst, checks TTL and MTU against the packet as it
//!        arrived (so an ICMP error quotes what its sender sent) ─▶ nat-rewrite applies
//! ```
//!
//! A [`Plan`] names at most two sessions to apply (hairpinning on one worker takes two)
//! and the destination to route. The NAT never routes, counts drops or touches frames
//! beyond the IPv4 packet it is given; the routes it needs for policy come through the
//! [`Routing`] trait.
//!
//! The only shared state is the rules ([`SharedRules`], swapped whole by the control
//! plane), the [`Timeouts`](super::Timeouts) (atomics) and the read-only port partition.

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::classify::{classify, Flow, NatPacket, L4};
use super::fastpath::{self, translated};
use super::key::Proto;
use super::static_ports::StaticPorts;
use super::steer::Steering;
use super::tcp::RST;
use super::{Dir, Out2In, RefreshMode, Session, SessionId, WorkerNat};
use crate::packet::icmp::Icmpv4Message;
use crate::policy::CompiledRules;
use crate::stats::DropReason;
use crate::time::Instant;

/// The rules every worker reads, swapped whole by the control plane (RCU style).
pub type SharedRules = Arc<ArcSwap<CompiledRules>>;

/// Expiry work per tick (sessions), so no tick stalls a burst.
pub const EXPIRE_BUDGET: usize = 256;

/// What the NAT needs to know about routing, for policy: the egress port of a
/// destination (FORWARD and POSTROUTING match on it), the router's own addresses, and
/// each port's address (MASQUERADE, REDIRECT). The router's route table implements it.
pub trait Routing {
    /// The port a packet to `dst` leaves by, or `None` (no route).
    fn egress(&self, dst: Ipv4Addr) -> Option<u16>;
    /// Whether `addr` is one of the router's own port addresses.
    fn is_local(&self, addr: Ipv4Addr) -> bool;
    /// The address of port `port`.
    fn port_address(&self, port: u16) -> Ipv4Addr;
}

/// What the slow path decided for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Route to `plan.dst`, check TTL and MTU, [`apply`](NatPath::apply), send.
    Forward(Plan),
    /// For the router itself (after `apply`): an echo request to answer.
    Local(Plan),
    /// Drop, counting the reason. `FragmentNoState` for a later fragment whose first
    /// fragment has not been seen: the worker keeps it and runs it again when that
    /// first fragment comes (RFC 4787 REQ-14; `crate::pipeline::fragwait`).
    Drop(DropReason),
    /// Drop, counting the reason, and send this ICMP error back to the source.
    Error { reason: DropReason, msg: Icmpv4Message, code: u8 },
    /// Another worker owns what this packet creates (a port forward to an inside host
    /// that worker owns): hand the packet, unmodified, to it (see [`super::steer`]).
    Handoff(u16),
    /// Hairpinning across workers: apply `plan` (the sender's own translation, done on
    /// the sender's worker), then hand the packet to `owner`, which owns its
    /// destination, for the second half ([`NatPath::slow_path`] with `hairpin` set).
    Hairpin { plan: Plan, owner: u16 },
}

/// The translation of one packet, applied once it is sure to leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub pkt: NatPacket,
    /// Sessions to apply, in order.
    pub steps: [Option<(SessionId, Dir)>; 2],
    /// The destination after translation: what to route.
    pub dst: Ipv4Addr,
}

impl Plan {
    pub(super) fn new(pkt: NatPacket) -> Plan {
        Plan { pkt, steps: [None; 2], dst: pkt.dst }
    }

    pub(super) fn push(&mut self, id: SessionId, dir: Dir) {
        if let Some(slot) = self.steps.iter_mut().find(|s| s.is_none()) {
            *slot = Some((id, dir));
        }
    }

    /// Whether any session translates (or tracks) the packet.
    pub fn is_tracked(&self) -> bool {
        self.steps[0].is_some()
    }
}

/// A fast-path hit: the session, the direction it is applied in, and the destination to
/// route (the inside host for out2in; unchanged for in2out).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hit {
    pub id: SessionId,
    pub dir: Dir,
    pub dst: Ipv4Addr,
    /// The session has a protocol helper (the `helper` stage must see the packet).
    pub helper: bool,
}

/// What [`NatPath::lookup`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A session: translate with it.
    Hit(Hit),
    /// No session has the packet's key (as of this lookup).
    Miss,
    /// A session, but the slow path must decide (a hairpin, an ICMP query travelling
    /// the wrong way for its session).
    Slow,
}

/// What the `nat-slowpath` stage knows about a packet beyond its summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlowHints {
    /// The second half of a packet another worker hairpinned (its sender's translation
    /// applied there): run only the destination side.
    pub hairpin: bool,
    /// The fast path found no session for the packet's key and none has been created
    /// with it since ([`WorkerNat::created_since`], which sees every session created,
    /// whichever key the packet that created it had): the slow path need not look
    /// again (a packet from inside).
    pub no_session: bool,
    /// The session-index tag of that key ([`WorkerNat::lookup_begin`]), with
    /// `no_session`: creating the flow's session does not hash the key again.
    pub tag: u32,
}

/// Counters of the packet path (the NAT core counts sessions itself).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathCounters {
    /// Packets translated twice: inside to an inside host's external endpoint.
    pub hairpinned: u64,
    /// ICMP errors translated.
    pub icmp_errors: u64,
    /// Non-first fragments translated.
    pub fragments: u64,
}

/// An ICMP query must travel the right way for its session: requests in the
/// initiator's direction, replies the other way (an echo request from outside is a new
/// flow, not a reply to a mapping that happens to use its identifier).
#[inline]
pub(super) fn icmp_ok(f: &Flow, s: &Session, dir: Dir) -> bool {
    f.tuple.proto != Proto::Icmp || f.request == (dir == s.initiator())
}

/// One worker's NAT in the packet pipeline.
pub struct NatPath {
    pub(super) nat: WorkerNat,
    pub(super) rules: SharedRules,
    /// The rule set in force, re-read only when the control plane swaps it.
    pub(super) rules_cache: arc_swap::Cache<SharedRules, Arc<CompiledRules>>,
    pub(super) outside: Box<[bool]>,
    pub(super) counters: PathCounters,
    last_tick: Instant,
    statics: StaticPorts,
    /// With more than one worker: which worker owns each packet.
    steering: Option<Steering>,
    /// The lowest and highest external address: most packets are rejected as "not to
    /// one of ours" by two comparisons before any search.
    ext_bounds: (Ipv4Addr, Ipv4Addr),
    /// Per port, whether it has a host interface: what arrives there for one of our
    /// addresses and nothing claims is `Local`, for the kernel (see `crate::host`).
    pub(super) host: Box<[bool]>,
}

impl NatPath {
    /// `outside[i]`: whether port `i` faces outside. Reserves the port forwards of the
    /// rules in force.
    pub fn new(nat: WorkerNat, rules: SharedRules, outside: Vec<bool>) -> NatPath {
        let partition = *nat.partition();
        let steering = (partition.workers() > 1)
            .then(|| Steering::new(nat.worker(), partition).with_deterministic(nat.deterministic().clone()));
        let ext = nat.external_addrs();
        let ext_bounds = match (ext.first(), ext.last()) {
            (Some(&lo), Some(&hi)) => (lo, hi),
            _ => (Ipv4Addr::BROADCAST, Ipv4Addr::UNSPECIFIED),
        };
        let mut path = NatPath {
            nat,
            rules_cache: arc_swap::Cache::new(rules.clone()),
            rules,
            outside: outside.into(),
            counters: PathCounters::default(),
            last_tick: Instant::ZERO,
            statics: StaticPorts::default(),
            steering,
            ext_bounds,
            host: Box::default(),
        };
        path.statics.settle(&mut path.nat, &path.rules, Instant::ZERO);
        path
    }

    pub fn nat(&self) -> &WorkerNat {
        &self.nat
    }

    pub fn nat_mut(&mut self) -> &mut WorkerNat {
        &mut self.nat
    }

    pub fn rules(&self) -> &SharedRules {
        &self.rules
    }

    pub fn counters(&self) -> &PathCounters {
        &self.counters
    }

    /// Ports with a host interface (`host[i]` for port `i`): packets for the router's
    /// own addresses that no session or rule claims are `Local` there, for the kernel,
    /// instead of dropped.
    pub fn set_host_ports(&mut self, host: &[bool]) {
        self.host = host.into();
    }

    /// Whether port `port` has a host interface.
    #[inline]
    pub fn has_host(&self, port: u16) -> bool {
        self.host.get(usize::from(port)).copied().unwrap_or(false)
    }

    /// This worker's steering (none with one worker).
    pub fn steering(&self) -> Option<&Steering> {
        self.steering.as_ref()
    }

    #[inline]
    pub fn is_outside(&self, port: u16) -> bool {
        self.outside.get(usize::from(port)).copied().unwrap_or(false)
    }

    /// Whether `addr` is one of the NAT's external addresses.
    #[inline]
    pub fn is_external(&self, addr: Ipv4Addr) -> bool {
        (addr >= self.ext_bounds.0
            && addr <= self.ext_bounds.1
            && self.nat.external_addrs().binary_search(&addr).is_ok())
            || (!self.nat.deterministic().is_empty() && self.nat.is_external(addr))
    }

    // ----- nat-classify -----

    /// The worker that owns `pkt` (arrived on `in_port`) if not this one; always `None`
    /// with one worker. See [`super::steer`].
    #[inline]
    pub fn owner(&mut self, in_port: u16, pkt: &NatPacket, now: Instant) -> Option<u16> {
        let outside = self.is_outside(in_port);
        let s = self.steering.as_mut()?;
        let owner = s.owner(outside, pkt, self.nat.external_addrs(), now);
        (owner != s.me()).then_some(owner)
    }

    // ----- nat-lookup: the fast path -----

    /// First pass over the vector: the session-index tag of flow `f` (arrived on
    /// `in_port`), and start loading its index slot.
    #[inline]
    pub fn lookup_begin(&self, in_port: u16, f: &Flow) -> u32 {
        self.nat.lookup_begin(&f.tuple, self.is_outside(in_port))
    }

    /// Second pass: start loading the session record the slot points to.
    #[inline]
    pub fn lookup_prefetch(&self, tag: u32) {
        self.nat.lookup_prefetch(tag);
    }

    /// Third pass: the session of flow `f` (a whole packet, arrived on `in_port`), with
    /// the tag of the first pass. Anything but a hit goes to the slow path: no session,
    /// an ICMP query travelling the wrong way for its session, or a packet from inside
    /// to one of our external addresses (hairpinning).
    #[inline]
    pub fn lookup(&self, in_port: u16, f: &Flow, tag: u32) -> Lookup {
        let outside = self.is_outside(in_port);
        let Some(s) = self.nat.lookup_tagged(&f.tuple, outside, tag) else { return Lookup::Miss };
        let dir = if outside { Dir::Out2In } else { Dir::In2Out };
        if !icmp_ok(f, &s, dir) {
            return Lookup::Slow;
        }
        let dst = match dir {
            Dir::Out2In => s.inside().addr,
            Dir::In2Out if self.is_external(f.tuple.dst.addr) => return Lookup::Slow,
            Dir::In2Out => f.tuple.dst.addr,
        };
        Lookup::Hit(Hit { id: s.id, dir, dst, helper: s.has_helper() })
    }

    // ----- helper -----

    /// Whether a session of `steps` has a protocol helper.
    pub fn has_helper(&self, steps: &[Option<(SessionId, Dir)>; 2]) -> bool {
        steps.iter().flatten().any(|(id, _)| self.nat.session(*id).is_some_and(|s| s.has_helper()))
    }

    /// The `helper` stage for one step of a packet (see
    /// [`WorkerNat::helper_packet`]): `ip` holds the packet in its first `len` bytes and
    /// may grow up to its end; returns the new length.
    pub fn helper_packet(&mut self, id: SessionId, dir: Dir, ip: &mut [u8], len: usize, now: Instant) -> usize {
        if !self.nat.session(id).is_some_and(|s| s.has_helper()) {
            return len;
        }
        self.nat.helper_packet(id, dir, ip, len, now)
    }

    // ----- nat-rewrite -----

    /// Translate `ip` (the packet the plan was made for, unmodified since) by `steps`
    /// and refresh their sessions. ICMP errors refresh nothing: they are not traffic of
    /// the flow (RFC 5508, RFC 7857). An RST from inside does not extend its session
    /// (`RefreshMode::Suppress`); its state still moves to closed, on the transitory
    /// timer. `hairpin_in`: the second half of a packet hairpinned on another worker
    /// (counted as hairpinned here, its first half's counters there).
    pub fn apply(
        &mut self,
        ip: &mut [u8],
        pkt: &NatPacket,
        steps: &[Option<(SessionId, Dir)>; 2],
        hairpin_in: bool,
        now: Instant,
    ) {
        let mut n = 0;
        for &(id, dir) in steps.iter().flatten() {
            let Some(s) = self.nat.session(id).map(|r| r.session) else { continue };
            match pkt.l4 {
                L4::Flow(f) => {
                    fastpath::translate(ip, f.tuple.proto, s, dir);
                    let rst = f.tuple.proto == Proto::Tcp && f.tcp_flags & RST != 0;
                    let mode = if rst && dir == Dir::In2Out { RefreshMode::Suppress } else { RefreshMode::Default };
                    self.nat.refresh(id, dir, f.tcp_flags, mode, now);
                }
                L4::Fragment => {
                    fastpath::translate_fragment(ip, s, dir);
                    self.nat.refresh(id, dir, 0, RefreshMode::Default, now);
                    if n == 0 && !hairpin_in {
                        self.counters.fragments += 1;
                    }
                }
                L4::IcmpError(q) => {
                    fastpath::translate_icmp_error(ip, &q, s, dir);
                    if n == 0 && !hairpin_in {
                        self.counters.icmp_errors += 1;
                    }
                }
                L4::Other => {}
            }
            n += 1;
        }
        if n == 2 || (hairpin_in && n == 1) {
            self.counters.hairpinned += 1;
        }
    }

    /// The translation of a reply the router itself built (an echo reply) in answer to
    /// a packet that was translated on its way in: REDIRECT sessions (the router is
    /// their inside) and hairpinned requests (the requester is an external endpoint).
    pub fn local_reply(&self, ip: &[u8]) -> Option<Plan> {
        let pkt = classify(ip).ok()?;
        let L4::Flow(f) = pkt.l4 else { return None };
        let mut plan = Plan::new(pkt);
        let mut t = f.tuple;
        if let Some(s) = self.nat.lookup_in2out(&t).filter(|s| icmp_ok(&f, s, Dir::In2Out)) {
            plan.push(s.id, Dir::In2Out);
            t = translated(t, &s, Dir::In2Out);
        }
        if self.is_external(t.dst.addr) {
            if let Out2In::Session(s) = self.nat.lookup_out2in(&t) {
                if icmp_ok(&f, &s, Dir::Out2In) {
                    plan.push(s.id, Dir::Out2In);
                    plan.dst = s.inside().addr;
                }
            }
        }
        Some(plan)
    }

    /// The translation of a frame the kernel sent (an IPv4 packet from a host
    /// interface), if a session claims it: the reply of a REDIRECT'd flow (the router is
    /// the session's inside), or an ICMP error about one. `None`: it leaves as it is.
    pub fn host_egress(&self, ip: &[u8]) -> Option<Plan> {
        let pkt = classify(ip).ok()?;
        match pkt.l4 {
            L4::IcmpError(q) => {
                let s = self.nat.lookup_in2out(&q.lookup_tuple())?;
                let mut plan = Plan::new(pkt);
                plan.push(s.id, Dir::In2Out);
                Some(plan)
            }
            L4::Flow(_) => self.local_reply(ip).filter(Plan::is_tracked),
            _ => None,
        }
    }

    // ----- timers -----

    /// Follow the port forwards of the rule set in force (see [`StaticPorts`]), one
    /// bounded step: at most [`super::static_ports::STATIC_STEP`] ports. Returns the
    /// ports it looked at (0: nothing to do).
    pub fn sync_static_ports(&mut self, now: Instant) -> u32 {
        self.statics.sync(&mut self.nat, &self.rules, now)
    }

    /// External ports this worker holds reserved for port forwards.
    pub fn static_ports_reserved(&self) -> usize {
        self.statics.reserved()
    }

    /// Follow the port forwards, then expire due sessions, quarantined ports and
    /// fragment entries: at most once per millisecond, at most [`EXPIRE_BUDGET`]
    /// sessions per call, and the expiry only if something is due. Returns the number
    /// of sessions expired, or `None` when it did not run (same millisecond).
    pub fn tick(&mut self, now: Instant) -> Option<usize> {
        if now == self.last_tick {
            return None;
        }
        self.last_tick = now;
        self.sync_static_ports(now);
        Some(match self.nat.next_deadline() {
            Some(d) if d <= now => self.nat.expire(now, EXPIRE_BUDGET, |_| {}),
            _ => 0,
        })
    }
}

/// NAT decisions on their own: a [`NatPath`] (or two, as two workers) fed classified
/// packets and a stand-in for routing — no worker, router or frames.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::classify::classify;
    use crate::nat::{NatConfig, Timeouts};
    use crate::policy::RuleSet;
    use etherparse::PacketBuilder;

    const LAN: u16 = 0;
    const WAN: u16 = 1;
    const EXT: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
    const A: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);
    const B: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 3);
    const SERVER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);

    /// lan 100.64.0.0/10 (our address .1), wan 203.0.113.0/24 (ours .1), default via wan.
    struct Routes;

    impl Routing for Routes {
        fn egress(&self, dst: Ipv4Addr) -> Option<u16> {
            Some(if dst.octets()[0] == 100 { LAN } else { WAN })
        }
        fn is_local(&self, addr: Ipv4Addr) -> bool {
            addr == EXT || addr == Ipv4Addr::new(100, 64, 0, 1)
        }
        fn port_address(&self, port: u16) -> Ipv4Addr {
            if port == LAN {
                Ipv4Addr::new(100, 64, 0, 1)
            } else {
                EXT
            }
        }
    }

    /// Worker `w` of `workers`, with `rules` (iptables-save text; ports lan and wan).
    fn path(rules: &str, w: u16, workers: u16) -> NatPath {
        let set = RuleSet::parse_save(rules, &["lan", "wan"]).unwrap();
        let compiled = CompiledRules::new(&set, &[("lan", LAN), ("wan", WAN)]).unwrap().with_workers(2);
        let mut config = NatConfig::new(vec![EXT], w, workers);
        config.max_sessions = 256;
        let nat = WorkerNat::new(config, Arc::new(Timeouts::default())).unwrap();
        NatPath::new(nat, Arc::new(ArcSwap::from_pointee(compiled)), vec![false, true])
    }

    const MASQ: &str = "*nat\n-A POSTROUTING -o wan -j MASQUERADE\nCOMMIT\n";

    fn udp(src: Ipv4Addr, sport: u16, dst: Ipv4Addr, dport: u16, ttl: u8) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4(src.octets(), dst.octets(), ttl).udp(sport, dport).write(&mut v, b"data").unwrap();
        v
    }

    /// The fast path for `ip` arriving on `port`: its three passes, as the stage runs them.
    fn fast(p: &NatPath, port: u16, ip: &[u8]) -> Option<Hit> {
        let L4::Flow(f) = classify(ip).unwrap().l4 else { panic!("not a flow") };
        let tag = p.lookup_begin(port, &f);
        p.lookup_prefetch(tag);
        match p.lookup(port, &f, tag) {
            Lookup::Hit(hit) => Some(hit),
            Lookup::Miss | Lookup::Slow => None,
        }
    }

    fn slow(p: &mut NatPath, port: u16, ip: &[u8], hairpin: bool) -> Decision {
        let hints = SlowHints { hairpin, no_session: false, tag: 0 };
        p.slow_path(port, ip, classify(ip).unwrap(), &Routes, hints, Instant::from_secs(1))
    }

    /// Apply `plan` to `ip`, as nat-rewrite does; returns (src, sport, dst, dport).
    fn apply(p: &mut NatPath, ip: &mut [u8], plan: &Plan, hairpin_in: bool) -> (Ipv4Addr, u16, Ipv4Addr, u16) {
        p.apply(ip, &plan.pkt, &plan.steps, hairpin_in, Instant::from_secs(1));
        let pkt = classify(ip).unwrap();
        let L4::Flow(f) = pkt.l4 else { panic!() };
        (f.tuple.src.addr, f.tuple.src.port, f.tuple.dst.addr, f.tuple.dst.port)
    }

    #[test]
    fn a_new_flow_misses_the_fast_path_is_created_by_the_slow_path_then_hits() {
        let mut p = path(MASQ, 0, 1);
        let mut out = udp(A, 40000, SERVER, 53, 64);
        assert_eq!(fast(&p, LAN, &out), None, "no session yet");
        let Decision::Forward(plan) = slow(&mut p, LAN, &out, false) else { panic!() };
        assert_eq!(plan.dst, SERVER);
        let (src, sport, _, _) = apply(&mut p, &mut out, &plan, false);
        assert_eq!((src, sport), (EXT, 40000), "masqueraded, source port kept");
        // The next packet of the flow, and the reply, are fast-path hits.
        let hit = fast(&p, LAN, &udp(A, 40000, SERVER, 53, 64)).unwrap();
        assert_eq!((hit.dir, hit.dst), (Dir::In2Out, SERVER));
        assert_eq!(Some((hit.id, hit.dir)), plan.steps[0]);
        let hit = fast(&p, WAN, &udp(SERVER, 53, EXT, 40000, 60)).unwrap();
        assert_eq!((hit.dir, hit.dst), (Dir::Out2In, A));
        // Unsolicited, or to a port nobody holds: the slow path drops it.
        let stranger = udp(SERVER, 53, EXT, 40999, 60);
        assert_eq!(fast(&p, WAN, &stranger), None);
        assert_eq!(slow(&mut p, WAN, &stranger, false), Decision::Drop(DropReason::NoSession));
        assert_eq!(p.nat().count(), 1);
    }

    #[test]
    fn an_echo_request_from_outside_is_not_a_hit_on_a_mapping_with_its_identifier() {
        let mut p = path(MASQ, 0, 1);
        let mut ping = Vec::new();
        PacketBuilder::ipv4(A.octets(), SERVER.octets(), 64).icmpv4_echo_request(7, 1).write(&mut ping, b"p").unwrap();
        let Decision::Forward(plan) = slow(&mut p, LAN, &ping, false) else { panic!() };
        p.apply(&mut ping, &plan.pkt, &plan.steps, false, Instant::from_secs(1));
        let ident = u16::from_be_bytes([ping[24], ping[25]]);
        let mut reply = Vec::new();
        PacketBuilder::ipv4(SERVER.octets(), EXT.octets(), 60)
            .icmpv4_echo_reply(ident, 1)
            .write(&mut reply, b"p")
            .unwrap();
        assert_eq!(fast(&p, WAN, &reply).map(|h| h.dst), Some(A));
        let mut request = Vec::new();
        PacketBuilder::ipv4(SERVER.octets(), EXT.octets(), 60)
            .icmpv4_echo_request(ident, 1)
            .write(&mut request, b"p")
            .unwrap();
        assert_eq!(fast(&p, WAN, &request), None, "a request travels the initiator's way only");
    }

    /// RFC 4787 REQ-9a across workers: A (worker 0) sends to B's external endpoint (a
    /// port of worker 1); worker 0 applies A's own mapping and hands the packet over,
    /// worker 1 delivers it to B; B's answer takes the mirror way.
    #[test]
    fn a_hairpin_to_another_workers_mapping_takes_the_senders_mapping_then_is_handed_over() {
        use crate::nat::steer::subscriber_owner;
        assert_eq!((subscriber_owner(A, 2), subscriber_owner(B, 2)), (0, 1));
        let mut w = [path(MASQ, 0, 2), path(MASQ, 1, 2)];
        // B's mapping, on worker 1, and A's, on worker 0.
        let mut b_out = udp(B, 6000, SERVER, 3478, 64);
        let Decision::Forward(plan) = slow(&mut w[1], LAN, &b_out, false) else { panic!() };
        let (_, b_port, _, _) = apply(&mut w[1], &mut b_out, &plan, false);
        assert_eq!(w[1].nat().partition().owner_of(b_port), Some(1));
        let mut a_out = udp(A, 41010, SERVER, 3478, 64);
        let Decision::Forward(plan) = slow(&mut w[0], LAN, &a_out, false) else { panic!() };
        let (_, a_port, _, _) = apply(&mut w[0], &mut a_out, &plan, false);
        // A to B's external endpoint: not a fast-path hit (hairpin), and no hit either
        // once its session exists; the slow path translates A's half and hands it over.
        let mut hairpin = udp(A, 41010, EXT, b_port, 64);
        assert_eq!(fast(&w[0], LAN, &hairpin), None);
        let Decision::Hairpin { plan, owner } = slow(&mut w[0], LAN, &hairpin, false) else { panic!() };
        assert_eq!(owner, 1);
        assert_eq!(apply(&mut w[0], &mut hairpin, &plan, false), (EXT, a_port, EXT, b_port), "A's mapping");
        assert_eq!(w[0].nat().count(), 2, "A's two sessions live on A's worker");
        let Decision::Forward(plan) = slow(&mut w[1], LAN, &hairpin, true) else { panic!() };
        assert_eq!(plan.dst, B);
        assert_eq!(apply(&mut w[1], &mut hairpin, &plan, true), (EXT, a_port, B, 6000));
        assert_eq!(w[1].counters().hairpinned, 1);
        // B answers A's external endpoint: B's worker translates B's half, A's worker delivers.
        let mut back = udp(B, 6000, EXT, a_port, 64);
        let Decision::Hairpin { plan, owner } = slow(&mut w[1], LAN, &back, false) else { panic!() };
        assert_eq!((owner, apply(&mut w[1], &mut back, &plan, false)), (0, (EXT, b_port, EXT, a_port)));
        let Decision::Forward(plan) = slow(&mut w[0], LAN, &back, true) else { panic!() };
        assert_eq!(apply(&mut w[0], &mut back, &plan, true), (EXT, b_port, A, 41010));
        // A TTL that runs out is answered on the sender's worker, before the handoff.
        let expiring = udp(A, 41010, EXT, b_port, 1);
        assert!(matches!(
            slow(&mut w[0], LAN, &expiring, false),
            Decision::Error { reason: DropReason::TtlExceeded, .. }
        ));
    }

    #[test]
    fn a_new_port_forward_flow_is_handed_to_the_worker_of_its_inside_target() {
        use crate::nat::steer::subscriber_owner;
        let rules = "*nat\n-A PREROUTING -i wan -p udp --dport 5000 -j DNAT --to-destination 100.64.0.3:5000\nCOMMIT\n";
        let mut w = [path(rules, 0, 2), path(rules, 1, 2)];
        let target = usize::from(subscriber_owner(B, 2));
        let inbound = udp(SERVER, 1234, EXT, 5000, 60);
        assert_eq!(slow(&mut w[1 - target], WAN, &inbound, false), Decision::Handoff(target as u16));
        assert_eq!(w[1 - target].nat().count(), 0, "nothing created where the flow does not live");
        let Decision::Forward(plan) = slow(&mut w[target], WAN, &inbound, false) else { panic!() };
        assert_eq!(plan.dst, B);
        // The target's reply is a fast-path hit on its own worker.
        let hit = fast(&w[target], LAN, &udp(B, 5000, SERVER, 1234, 64)).unwrap();
        assert_eq!((hit.dir, hit.dst), (Dir::In2Out, SERVER));
    }
}
