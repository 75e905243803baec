//! The NAT in a worker's packet path: what happens to one IPv4 packet.
//!
//! [`NatPath`] is one worker's NAT: its [`WorkerNat`], the shared rules and the role of
//! every port. The router hands it each IPv4 packet that passed its sanity checks
//! ([`NatPath::decide`]); the answer is a [`Decision`]. A [`Plan`] names at most two
//! sessions to apply (hairpinning takes two) and the destination to route; the router
//! routes it, checks TTL and MTU against the *untranslated* packet (so an ICMP error
//! it sends quotes what the sender sent), and only then calls [`NatPath::apply`],
//! which rewrites the packet in place and refreshes the sessions.
//!
//! ```text
//!  inside port ─▶ classify ─▶ lookup_in2out ── hit ─────────────────┐
//!                              │ miss                               │ (src: inside → outside)
//!                              ├ lookup_out2in (DNAT'd at the inside, REDIRECT) ── hit ─▶ dst → inside
//!                              └ slow path: PREROUTING (DNAT/REDIRECT) | route, FORWARD,
//!                                POSTROUTING (egress outside) ─▶ create ───┤
//!                                                                          ▼
//!                                     dst one of our external addresses? ── yes: hairpin, as if back in
//!                                                                          │     on the outside port ─┐
//!                                                                          ▼ no                       │
//!  outside port ─▶ classify ─▶ lookup_out2in ── Session ─▶ dst: outside → inside ◀────────────────────┘
//!                              ├ Mapping (TCP/UDP) ─▶ filter allows: create Inbound ─▶ dst → inside
//!                              ├ Filtered ─▶ drop filtered_endpoint
//!                              └ Miss ─▶ PREROUTING DNAT/REDIRECT ─▶ create ─▶ dst → inside
//!                                        else our port address ─▶ the router (echo reply)
//!                                        else our external address ─▶ drop no_session
//!                                        else route untranslated (FORWARD)
//!  then: route(dst) ─▶ TTL ─▶ MTU ─▶ apply (rewrite, refresh) ─▶ TTL−1 ─▶ transmit
//! ```
//!
//! Rules (`CompiledRules`, swapped whole by the control plane) are loaded once per new
//! flow, in Linux's order: nat PREROUTING (destination), routing, filter FORWARD (which
//! sees the translated destination and the egress port), nat POSTROUTING (source; only
//! for flows from an inside port leaving by an outside one). Established flows never
//! see the rules. Flows without translation are tracked by an identity session unless
//! the rule set is empty (then masq is a plain router and tracks nothing).
//!
//! Inbound packets that reach an endpoint-independent mapping from a new remote are
//! governed by the configured filtering (RFC 4787 REQ-8), not by FORWARD: they are
//! related to the mapping the subscriber opened.
//!
//! ICMP errors (RFC 5508) never create, end or refresh a session: an error is matched
//! to the session of the datagram it quotes and translated with it.
//!
//! Fragments: the first fragment of a datagram records its ports and whether it was
//! translated; later fragments, in any order after it, are translated by address
//! alone. A later fragment that overtakes its first is dropped (`fragment_no_state`).

use std::net::Ipv4Addr;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::classify::{classify, verify_l4, Flow, Frag, NatPacket, L4};
use super::fastpath::{self, translated};
use super::frag::FragInfo;
use super::key::{Endpoint, Proto, Tuple};
use super::slowpath::{self, dest_target, source_action, tracks_untranslated};
use super::steer::{subscriber_owner, Steering};
use super::tcp::RST;
use super::{
    ConfigError, Dir, NatAction, NatConfig, Out2In, RefreshMode, Session, SessionId, TimeoutValues, Timeouts, WorkerNat,
};
use crate::config::{Config, Filtering as ConfigFiltering, Role};
use crate::counters::WorkerCounters;
use crate::l3::route::RouteTable;
use crate::packet::icmp::Icmpv4Message;
use crate::policy::{Chain, CompiledRules, FlowMatch, RuleSet, SourceNat, Target};
use crate::stats::DropReason;
use crate::time::Instant;

/// The rules every worker reads, swapped whole by the control plane (RCU style).
pub type SharedRules = Arc<ArcSwap<CompiledRules>>;

/// Expiry work per tick (sessions), so no tick stalls a burst.
pub const EXPIRE_BUDGET: usize = 256;

const VERDICT_PASS: u32 = 1;
const VERDICT_REQUEST: u32 = 2;

/// What the NAT decided for a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Route to `plan.dst`, check TTL and MTU, [`apply`](NatPath::apply), send.
    Forward(Plan),
    /// For the router itself (after `apply`): an echo request to answer.
    Local(Plan),
    /// Drop, counting the reason.
    Drop(DropReason),
    /// Drop, counting the reason, and send this ICMP error back to the source.
    Error { reason: DropReason, msg: Icmpv4Message, code: u8 },
    /// Another worker owns what this packet creates (a port forward to an inside host
    /// that worker owns): hand the packet, unmodified, to it (see [`super::steer`]).
    Handoff(u16),
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
    fn new(pkt: NatPacket) -> Plan {
        Plan { pkt, steps: [None; 2], dst: pkt.dst }
    }

    fn push(&mut self, id: SessionId, dir: Dir) {
        if let Some(slot) = self.steps.iter_mut().find(|s| s.is_none()) {
            *slot = Some((id, dir));
        }
    }

    /// Whether any session translates (or tracks) the packet.
    pub fn is_tracked(&self) -> bool {
        self.steps[0].is_some()
    }
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

/// How often a port forward whose port was busy (a mapping, or its quarantine) tries
/// again to reserve it.
pub const STATIC_RETRY: crate::time::Duration = crate::time::Duration::from_secs(1);

/// An external (address, port, protocol) reserved for a port forward, as a sort key.
type StaticKey = (u32, u16, u8);

/// The ports this worker keeps reserved for the port forwards of the rule set in force.
///
/// Rules change live, so the worker follows them itself: once per tick (at most once per
/// millisecond, outside the burst loop) it compares the compiled set in force with the
/// one it last reserved for, and on a change reserves the forwards' ports it owns that
/// are new and releases those no rule forwards any more. It only ever releases what it
/// reserved. A port that a mapping (or the quarantine after one) still holds cannot be
/// reserved yet: it is retried every [`STATIC_RETRY`] until it can.
///
/// The work (and the one allocation, the wanted list) happens only on a change or a
/// retry and is proportional to the forwarded ports this worker owns times the pool
/// addresses they cover: trivial for ordinary forwards; a forward of a huge range on a
/// large pool costs that worker a pause when it arrives.
#[derive(Default)]
struct StaticPorts {
    /// The set the reservations follow (held, so its address cannot be reused).
    set: Option<Arc<CompiledRules>>,
    /// Reserved by this worker, sorted.
    owned: Vec<StaticKey>,
    /// Some wanted port could not be reserved: retry at `retry`.
    pending: bool,
    retry: Instant,
}

/// One worker's NAT, attached to its router.
pub struct NatPath {
    nat: WorkerNat,
    rules: SharedRules,
    outside: Box<[bool]>,
    counters: PathCounters,
    last_tick: Instant,
    statics: StaticPorts,
    /// With more than one worker: which worker owns each packet.
    steering: Option<Steering>,
    /// Per port, whether it has a host interface: what arrives there for one of our
    /// addresses and nothing claims goes to the kernel (see [`crate::host`]).
    host: Box<[bool]>,
}

/// One decision's context: disjoint borrows of the path's parts.
struct Ctx<'a> {
    nat: &'a mut WorkerNat,
    rules: &'a ArcSwap<CompiledRules>,
    outside: &'a [bool],
    routes: &'a RouteTable,
    in_port: u16,
    outside_in: bool,
    now: Instant,
    /// The packet's IPv4 length: what a rule it matches counts in bytes.
    bytes: usize,
    /// Whether the arrival port has a host interface (unclaimed packets for our own
    /// addresses are then `Local`, for the kernel, instead of dropped).
    host_in: bool,
}

/// An ICMP query must travel the right way for its session: requests in the
/// initiator's direction, replies the other way (an echo request from outside is a new
/// flow, not a reply to a mapping that happens to use its identifier).
#[inline]
fn icmp_ok(f: &Flow, s: &Session, dir: Dir) -> bool {
    f.tuple.proto != Proto::Icmp || f.request == (dir == s.initiator())
}

impl NatPath {
    /// `outside[i]`: whether port `i` faces outside.
    pub fn new(nat: WorkerNat, rules: SharedRules, outside: Vec<bool>) -> NatPath {
        let partition = *nat.partition();
        let steering = (partition.workers() > 1).then(|| Steering::new(nat.worker(), partition));
        let mut path = NatPath {
            nat,
            rules,
            outside: outside.into(),
            counters: PathCounters::default(),
            last_tick: Instant::ZERO,
            statics: StaticPorts::default(),
            steering,
            host: Box::default(),
        };
        path.sync_static_ports(Instant::ZERO);
        path
    }

    /// The worker that owns `frame` (an Ethernet frame that arrived on `in_port`), if
    /// not this one; always `None` with one worker. See [`super::steer`].
    #[inline]
    pub fn steer(&mut self, in_port: u16, frame: &[u8], now: Instant) -> Option<u16> {
        let s = self.steering.as_mut()?;
        let outside = self.outside.get(usize::from(in_port)).copied().unwrap_or(false);
        let owner = s.owner(outside, frame, self.nat.external_addrs(), now);
        (owner != s.me()).then_some(owner)
    }

    /// Prefetch the session lookup of `ip` (an IPv4 packet as received on `in_port`,
    /// not yet checked): TCP and UDP only, cheaply parsed; anything odd is skipped.
    #[inline]
    pub fn prefetch(&self, in_port: u16, ip: &[u8], record: bool) {
        let Some(t) = quick_tuple(ip) else { return };
        self.nat.prefetch(&t, self.is_outside(in_port), record);
    }

    /// Ports with a host interface (`host[i]` for port `i`): packets for our own
    /// addresses that no session or rule claims are `Local` there, for the kernel.
    pub fn set_host_ports(&mut self, host: &[bool]) {
        self.host = host.into();
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

    /// This worker's steering (none with one worker).
    pub fn steering(&self) -> Option<&Steering> {
        self.steering.as_ref()
    }

    /// Build one worker's NAT from masqd's configuration (see [`nat_config`]).
    pub fn from_config(
        config: &Config,
        ruleset: &RuleSet,
        rules: SharedRules,
        timeouts: Arc<Timeouts>,
        worker: u16,
        workers: u16,
        seed: u64,
    ) -> Result<NatPath, ConfigError> {
        // The port forwards of `rules` (in force: `ruleset` compiled) are reserved by `new`.
        let nat = WorkerNat::new(nat_config(config, ruleset, worker, workers, seed), timeouts)?;
        let outside = config.ports.iter().map(|p| p.role == Role::Outside).collect();
        Ok(NatPath::new(nat, rules, outside))
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

    pub fn is_outside(&self, port: u16) -> bool {
        self.outside.get(usize::from(port)).copied().unwrap_or(false)
    }

    /// Decide what to do with `ip` (an IPv4 packet cut at its total length, sane and
    /// with a verified header checksum) that arrived on `in_port`. May create sessions
    /// (the slow path); never modifies the packet.
    pub fn decide(&mut self, in_port: u16, ip: &[u8], routes: &RouteTable, now: Instant) -> Decision {
        let pkt = match classify(ip) {
            Ok(p) => p,
            Err(r) => return Decision::Drop(r),
        };
        // Anything not addressed to one of our ports is forwarded: answer an expiring
        // TTL before any state is created (RFC 1812 §5.3.1).
        if pkt.ttl <= 1 && routes.local_port(pkt.dst).is_none() {
            return Decision::Error { reason: DropReason::TtlExceeded, msg: Icmpv4Message::TimeExceeded, code: 0 };
        }
        let mut c = Ctx {
            nat: &mut self.nat,
            rules: &self.rules,
            outside: &self.outside,
            routes,
            in_port,
            outside_in: self.outside.get(usize::from(in_port)).copied().unwrap_or(false),
            now,
            bytes: ip.len(),
            host_in: self.host.get(usize::from(in_port)).copied().unwrap_or(false),
        };
        let d = match pkt.l4 {
            L4::Flow(f) => c.flow(ip, pkt, f, true),
            L4::Fragment => c.later_fragment(ip, pkt),
            L4::IcmpError(_) => c.icmp_error(pkt),
            L4::Other => c.other(pkt),
        };
        match (pkt.frag, pkt.l4, d) {
            (Frag::First, L4::Flow(f), Decision::Forward(p) | Decision::Local(p)) => {
                let verdict =
                    if p.is_tracked() { 0 } else { VERDICT_PASS } | if f.request { VERDICT_REQUEST } else { 0 };
                let info = FragInfo { src_port: f.tuple.src.port, dst_port: f.tuple.dst.port, verdict };
                match self.nat.fragments().first_fragment(&pkt.frag_key(), info, now) {
                    Ok(()) => d,
                    Err(e) => Decision::Drop(e.drop_reason()),
                }
            }
            _ => d,
        }
    }

    /// Translate `ip` (the same packet `decide` saw, unmodified) as `plan` says and
    /// refresh its sessions. ICMP errors refresh nothing: they are not traffic of the
    /// flow (RFC 5508, RFC 7857). An RST from inside does not extend its session
    /// (`RefreshMode::Suppress`); its state still moves to closed, on the transitory
    /// timer.
    pub fn apply(&mut self, ip: &mut [u8], plan: &Plan, now: Instant) {
        let mut n = 0;
        for &(id, dir) in plan.steps.iter().flatten() {
            let Some(s) = self.nat.session(id).map(|r| *r.session) else { continue };
            match plan.pkt.l4 {
                L4::Flow(f) => {
                    fastpath::translate(ip, f.tuple.proto, &s, dir);
                    let rst = f.tuple.proto == Proto::Tcp && f.tcp_flags & RST != 0;
                    let mode = if rst && dir == Dir::In2Out { RefreshMode::Suppress } else { RefreshMode::Default };
                    self.nat.refresh(id, dir, f.tcp_flags, mode, now);
                }
                L4::Fragment => {
                    fastpath::translate_fragment(ip, &s, dir);
                    self.nat.refresh(id, dir, 0, RefreshMode::Default, now);
                    if n == 0 {
                        self.counters.fragments += 1;
                    }
                }
                L4::IcmpError(q) => {
                    fastpath::translate_icmp_error(ip, &q, &s, dir);
                    if n == 0 {
                        self.counters.icmp_errors += 1;
                    }
                }
                L4::Other => {}
            }
            n += 1;
        }
        if n == 2 {
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

    /// Follow the port forwards of the rule set in force (see [`StaticPorts`]): on a new
    /// set, or when a busy port is due for another try. Returns whether it looked.
    pub fn sync_static_ports(&mut self, now: Instant) -> bool {
        let cur = self.rules.load();
        let same = self.statics.set.as_ref().is_some_and(|s| Arc::ptr_eq(s, &cur));
        if same && !(self.statics.pending && now >= self.statics.retry) {
            return false;
        }
        let set = arc_swap::Guard::into_inner(cur);
        let me = self.nat.worker();
        let mut want: Vec<StaticKey> = Vec::new();
        for f in set.static_forwards() {
            let Some(proto) = Proto::from_ip(f.proto) else { continue };
            for &addr in self.nat.external_addrs().iter().filter(|a| f.covers(**a)) {
                for port in f.ports.first()..=f.ports.last() {
                    if self.nat.partition().owner_of(port) == Some(me) {
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
        let nat = &mut self.nat;
        self.statics.owned.retain(|k| {
            let keep = want.binary_search(k).is_ok();
            if !keep {
                let (ep, proto) = endpoint(*k);
                nat.unreserve_port(ep, proto);
            }
            keep
        });
        let mut pending = false;
        for k in want {
            if self.statics.owned.binary_search(&k).is_ok() {
                continue;
            }
            let (ep, proto) = endpoint(k);
            match self.nat.reserve_port(ep, proto) {
                Ok(()) => self.statics.owned.push(k),
                Err(_) => pending = true,
            }
        }
        self.statics.owned.sort_unstable();
        self.statics.pending = pending;
        self.statics.retry = now + STATIC_RETRY;
        self.statics.set = Some(set);
        true
    }

    /// External ports this worker holds reserved for port forwards.
    pub fn static_ports_reserved(&self) -> usize {
        self.statics.owned.len()
    }

    /// Whether `addr` is one of the NAT's external addresses.
    pub fn is_external(&self, addr: Ipv4Addr) -> bool {
        self.nat.external_addrs().binary_search(&addr).is_ok()
    }

    /// Expire due sessions, quarantined ports and fragment entries, then publish the
    /// counters into `c`: at most once per millisecond, at most [`EXPIRE_BUDGET`]
    /// sessions per call, and the expiry only if something is due. Returns the number
    /// of sessions expired.
    pub fn tick(&mut self, now: Instant, c: &WorkerCounters) -> usize {
        if now == self.last_tick {
            return 0;
        }
        self.last_tick = now;
        self.sync_static_ports(now);
        let n = match self.nat.next_deadline() {
            Some(d) if d <= now => self.nat.expire(now, EXPIRE_BUDGET, |_| {}),
            _ => 0,
        };
        self.publish(c);
        n
    }

    /// Publish the NAT's counters into the worker's (read by masqd's report).
    pub fn publish(&self, c: &WorkerCounters) {
        let n = self.nat.counters();
        c.nat_sessions_created.set(n.sessions_created);
        c.nat_sessions_expired.set(n.sessions_expired);
        c.nat_sessions.set(u64::from(self.nat.count()));
        c.nat_mappings.set(u64::from(self.nat.mapping_count()));
        c.nat_create_failed_session_table_full.set(n.create_failed[super::CreateError::SessionTableFull as usize]);
        c.nat_create_failed_subscriber_limit.set(n.create_failed[super::CreateError::SubscriberLimit as usize]);
        c.nat_create_failed_ports_exhausted.set(n.create_failed[super::CreateError::PortsExhausted as usize]);
        c.nat_create_failed_tuple_in_use.set(n.create_failed[super::CreateError::TupleInUse as usize]);
        c.nat_hairpinned.set(self.counters.hairpinned);
        c.nat_icmp_errors_translated.set(self.counters.icmp_errors);
        c.nat_fragments_translated.set(self.counters.fragments);
    }
}

impl Ctx<'_> {
    /// nat POSTROUTING, counted against the deciding rule.
    fn postrouting(&self, rules: &CompiledRules, fm: &FlowMatch) -> SourceNat {
        let v = rules.postrouting(fm);
        rules.count(self.nat.worker(), Chain::Postrouting, v.rule, self.bytes);
        v.nat
    }

    /// filter FORWARD, counted against the deciding rule.
    fn forward(&self, rules: &CompiledRules, fm: &FlowMatch) -> bool {
        let v = rules.forward_verdict(fm);
        rules.count(self.nat.worker(), Chain::Forward, v.rule, self.bytes);
        v.accept
    }

    fn is_outside(&self, port: u16) -> bool {
        self.outside.get(usize::from(port)).copied().unwrap_or(false)
    }

    fn is_external(&self, addr: Ipv4Addr) -> bool {
        self.nat.external_addrs().binary_search(&addr).is_ok()
    }

    fn is_local(&self, addr: Ipv4Addr) -> bool {
        self.routes.local_port(addr).is_some()
    }

    /// `Local` if `plan.dst` is one of our port addresses, else `Forward`.
    fn deliver(&self, plan: Plan) -> Decision {
        if self.is_local(plan.dst) {
            Decision::Local(plan)
        } else {
            Decision::Forward(plan)
        }
    }

    fn session(&self, id: SessionId) -> Session {
        *self.nat.session(id).expect("live session").session
    }

    fn find_in2out(&self, t: &Tuple, f: &Flow) -> Option<(SessionId, Session)> {
        let s = self.nat.lookup_in2out(t)?;
        icmp_ok(f, &s, Dir::In2Out).then_some((s.id, *s.session))
    }

    fn find_out2in(&self, t: &Tuple, f: &Flow) -> Option<(SessionId, Session)> {
        match self.nat.lookup_out2in(t) {
            Out2In::Session(s) if icmp_ok(f, &s, Dir::Out2In) => Some((s.id, *s.session)),
            _ => None,
        }
    }

    fn flow_match(in_port: u16, t: &Tuple, pkt: &NatPacket) -> FlowMatch {
        let (sp, dp) = if t.proto == Proto::Icmp { (0, 0) } else { (t.src.port, t.dst.port) };
        FlowMatch {
            in_port,
            out_port: None,
            proto: pkt.ip_proto,
            src: t.src.addr,
            dst: t.dst.addr,
            src_port: sp,
            dst_port: dp,
            icmp_type: pkt.icmp_type,
        }
    }

    /// With several workers, the worker that must own a session DNAT'd to `to` when it
    /// is not this one: the replies come from `to`, so if it lies behind an inside port
    /// they reach `to`'s worker ([`super::steer`]).
    fn dnat_owner(&self, to: Ipv4Addr) -> Option<u16> {
        let workers = self.nat.partition().workers();
        if workers <= 1 || self.is_local(to) {
            return None;
        }
        let hop = self.routes.lookup(to)?;
        if self.is_outside(hop.port) {
            return None;
        }
        let owner = subscriber_owner(to, workers);
        (owner != self.nat.worker()).then_some(owner)
    }

    /// Whether a new flow from inside to `t.dst`, one of the router's own outside
    /// addresses, is for the kernel: the arrival port has a host interface, and neither
    /// a mapping on that endpoint nor a PREROUTING rule (evaluated as if the packet came
    /// in by the outside port, as hairpinning does) claims it. Echo requests stay with
    /// masqd, which answers them.
    fn host_for_kernel(&self, rules: &CompiledRules, t: &Tuple, fm: &FlowMatch) -> bool {
        if !self.host_in || t.proto == Proto::Icmp || !self.is_local(t.dst.addr) {
            return false;
        }
        if self.nat.lookup_outside(t.dst, t.proto).is_some() {
            return false;
        }
        let Some(arrival) = self.routes.local_port(t.dst.addr) else { return false };
        let fm = FlowMatch { in_port: arrival, ..*fm };
        dest_target(rules.prerouting(&fm).nat, t, t.dst.addr).is_none()
    }

    fn no_route() -> Decision {
        Decision::Error { reason: DropReason::NoRoute, msg: Icmpv4Message::DstUnreachable, code: 0 }
    }

    /// RFC 6888 REQ-8 / RFC 5508: a subscriber whose flow gets no mapping hears
    /// "host unreachable".
    fn refused(reason: DropReason) -> Decision {
        Decision::Error { reason, msg: Icmpv4Message::DstUnreachable, code: 1 }
    }

    /// TCP, UDP or an ICMP query (whole, first fragment, or a later fragment with the
    /// first fragment's ports when `create` is false).
    fn flow(&mut self, ip: &[u8], pkt: NatPacket, f: Flow, create: bool) -> Decision {
        let t = f.tuple;
        if self.outside_in {
            return self.dst_side(ip, pkt, f, t, self.in_port, Plan::new(pkt), true, create);
        }
        if let Some((id, s)) = self.find_in2out(&t, &f) {
            let mut plan = Plan::new(pkt);
            plan.push(id, Dir::In2Out);
            let t2 = translated(t, &s, Dir::In2Out);
            let egress = self.routes.lookup(t2.dst.addr).map_or(self.in_port, |h| h.port);
            return self.after_src(ip, pkt, f, t2, plan, egress, create);
        }
        // Forward packets of a flow DNAT'd at the inside (REDIRECT, DNAT from inside).
        if let Some((id, s)) = self.find_out2in(&t, &f) {
            let mut plan = Plan::new(pkt);
            plan.push(id, Dir::Out2In);
            plan.dst = s.inside().addr;
            return self.deliver(plan);
        }
        if !create {
            return Decision::Drop(DropReason::NoSession);
        }
        self.new_from_inside(ip, pkt, f)
    }

    /// A new flow from an inside port.
    fn new_from_inside(&mut self, ip: &[u8], pkt: NatPacket, f: Flow) -> Decision {
        if !verify_l4(ip, &pkt) {
            return Decision::Drop(DropReason::L4BadChecksum);
        }
        let rules = self.rules.load();
        let t = f.tuple;
        let mut fm = Self::flow_match(self.in_port, &t, &pkt);
        let hairpin = self.is_external(pkt.dst);
        // To the router's own outside address from inside, claimed by no mapping and no
        // rule: for the kernel, untranslated (Linux delivers it locally, no SNAT).
        if hairpin && self.host_for_kernel(&rules, &t, &fm) {
            return Decision::Local(Plan::new(pkt));
        }
        // To one of our external addresses: hairpinning; PREROUTING is evaluated on the
        // second pass, as if the packet came back in by the outside port.
        if !hairpin {
            let inbound_addr = self.routes.port(self.in_port).address;
            let pre = rules.prerouting(&fm);
            let target = dest_target(pre.nat, &t, inbound_addr);
            // Another worker owns the flow this creates: it evaluates and counts.
            if let Some(w) = target.and_then(|to| self.dnat_owner(to.addr)) {
                return Decision::Handoff(w);
            }
            rules.count(self.nat.worker(), Chain::Prerouting, pre.rule, self.bytes);
            if let Some(to) = target {
                return self.dnat(&rules, Plan::new(pkt), f, t, fm, to);
            }
            if self.is_local(pkt.dst) {
                return Decision::Local(Plan::new(pkt));
            }
        }
        let Some(hop) = self.routes.lookup(pkt.dst) else {
            return Self::no_route();
        };
        fm.out_port = Some(hop.port);
        if !self.forward(&rules, &fm) {
            return Decision::Drop(DropReason::PolicyDrop);
        }
        let action = if self.is_outside(hop.port) {
            source_action(self.postrouting(&rules, &fm), self.routes.port(hop.port).address)
        } else {
            None
        };
        let action = action.or_else(|| tracks_untranslated(&rules, &fm).then_some(NatAction::NoNat));
        let mut plan = Plan::new(pkt);
        let mut t2 = t;
        if let Some(a) = action {
            match slowpath::create(self.nat, &t, a, f.tcp_flags, self.now) {
                Ok(id) => {
                    plan.push(id, Dir::In2Out);
                    t2 = translated(t, &self.session(id), Dir::In2Out);
                }
                Err(e) => return Self::refused(e.drop_reason()),
            }
        }
        self.after_src(ip, pkt, f, t2, plan, hop.port, true)
    }

    /// After the source side of a packet from inside: hairpin if it is addressed to
    /// one of our external endpoints (RFC 4787 REQ-9, RFC 5382 REQ-8), else send.
    #[allow(clippy::too_many_arguments)]
    fn after_src(
        &mut self,
        ip: &[u8],
        pkt: NatPacket,
        f: Flow,
        t2: Tuple,
        plan: Plan,
        egress: u16,
        create: bool,
    ) -> Decision {
        if self.is_external(t2.dst.addr) {
            // Back in as if it had left by the outside port and returned.
            return self.dst_side(ip, pkt, f, t2, egress, plan, false, create);
        }
        let mut plan = plan;
        plan.dst = t2.dst.addr;
        self.deliver(plan)
    }

    /// The destination side: a packet from outside (`from_outside`), or the second
    /// pass of a hairpinned one; `t` as it is now, `arrival` the port PREROUTING sees.
    #[allow(clippy::too_many_arguments)]
    fn dst_side(
        &mut self,
        ip: &[u8],
        pkt: NatPacket,
        f: Flow,
        t: Tuple,
        arrival: u16,
        mut plan: Plan,
        from_outside: bool,
        create: bool,
    ) -> Decision {
        match self.nat.lookup_out2in(&t) {
            Out2In::Session(s) if icmp_ok(&f, &s, Dir::Out2In) => {
                plan.push(s.id, Dir::Out2In);
                plan.dst = s.inside().addr;
                return self.deliver(plan);
            }
            Out2In::Mapping(m) if t.proto != Proto::Icmp => {
                if !create {
                    return Decision::Drop(DropReason::NoSession);
                }
                if !verify_l4(ip, &pkt) {
                    return Decision::Drop(DropReason::L4BadChecksum);
                }
                return match create_inbound(self.nat, &t, m.id, f.tcp_flags, self.now) {
                    Ok(id) => {
                        plan.push(id, Dir::Out2In);
                        plan.dst = m.inside.addr;
                        self.deliver(plan)
                    }
                    Err(r) => Decision::Drop(r),
                };
            }
            Out2In::Filtered(_) if t.proto != Proto::Icmp => return Decision::Drop(DropReason::FilteredEndpoint),
            _ => {}
        }
        if from_outside {
            // Replies of a flow DNAT'd at the inside whose target is outside.
            if let Some((id, _)) = self.find_in2out(&t, &f) {
                plan.push(id, Dir::In2Out);
                return Decision::Forward(plan);
            }
        }
        if !create {
            return Decision::Drop(DropReason::NoSession);
        }
        if !verify_l4(ip, &pkt) {
            return Decision::Drop(DropReason::L4BadChecksum);
        }
        let rules = self.rules.load();
        let mut fm = Self::flow_match(arrival, &t, &pkt);
        let inbound_addr = self.routes.port(arrival).address;
        let pre = rules.prerouting(&fm);
        let target = dest_target(pre.nat, &t, inbound_addr);
        // Another worker owns the flow this creates: it evaluates and counts. (A
        // hairpinned packet's first pass already created its source session here.)
        if let Some(w) = target.and_then(|to| self.dnat_owner(to.addr)).filter(|_| from_outside) {
            return Decision::Handoff(w);
        }
        rules.count(self.nat.worker(), Chain::Prerouting, pre.rule, self.bytes);
        if let Some(to) = target {
            return self.dnat(&rules, plan, f, t, fm, to);
        }
        // The router answers pings; anything else for an external address needed a
        // session or a forward — or goes to the kernel, if it is our own address and a
        // host interface is there.
        let echo = t.proto == Proto::Icmp && f.request;
        if self.is_external(t.dst.addr) && !(echo && self.is_local(t.dst.addr)) {
            if self.host_in && from_outside && self.is_local(t.dst.addr) {
                plan.dst = t.dst.addr;
                return Decision::Local(plan);
            }
            return Decision::Drop(DropReason::NoSession);
        }
        if self.is_local(t.dst.addr) {
            plan.dst = t.dst.addr;
            return Decision::Local(plan);
        }
        // Not ours: routed untranslated (only from outside; hairpins are external).
        let Some(hop) = self.routes.lookup(t.dst.addr) else {
            return Self::no_route();
        };
        fm.out_port = Some(hop.port);
        if !self.forward(&rules, &fm) {
            return Decision::Drop(DropReason::PolicyDrop);
        }
        if tracks_untranslated(&rules, &fm) {
            match slowpath::create(self.nat, &t, NatAction::NoNatInbound, f.tcp_flags, self.now) {
                Ok(id) => plan.push(id, Dir::Out2In),
                Err(e) => return Decision::Drop(e.drop_reason()),
            }
        }
        plan.dst = t.dst.addr;
        Decision::Forward(plan)
    }

    /// DNAT (or REDIRECT) flow `t` to `to`: FORWARD sees the new destination and its
    /// egress port (unless `to` is the router itself), then the session is created.
    fn dnat(
        &mut self,
        rules: &CompiledRules,
        mut plan: Plan,
        f: Flow,
        t: Tuple,
        mut fm: FlowMatch,
        to: Endpoint,
    ) -> Decision {
        if !self.is_local(to.addr) {
            let Some(hop) = self.routes.lookup(to.addr) else {
                return Self::no_route();
            };
            fm.out_port = Some(hop.port);
            fm.dst = to.addr;
            if t.proto != Proto::Icmp {
                fm.dst_port = to.port;
            }
            if !self.forward(rules, &fm) {
                return Decision::Drop(DropReason::PolicyDrop);
            }
        }
        match slowpath::create(self.nat, &t, NatAction::Dnat { to }, f.tcp_flags, self.now) {
            Ok(id) => {
                plan.push(id, Dir::Out2In);
                plan.dst = to.addr;
                self.deliver(plan)
            }
            Err(e) if !self.outside_in => Self::refused(e.drop_reason()),
            Err(e) => Decision::Drop(e.drop_reason()),
        }
    }

    /// A non-first fragment: translated like its first fragment, by address.
    fn later_fragment(&mut self, ip: &[u8], pkt: NatPacket) -> Decision {
        let info = match self.nat.fragments().later_fragment(&pkt.frag_key(), self.now) {
            Ok(i) => i,
            Err(e) => return Decision::Drop(e.drop_reason()),
        };
        let Some(proto) = Proto::from_ip(pkt.ip_proto).filter(|_| info.verdict & VERDICT_PASS == 0) else {
            return self.deliver(Plan::new(pkt));
        };
        let tuple = Tuple::new(Endpoint::new(pkt.src, info.src_port), Endpoint::new(pkt.dst, info.dst_port), proto);
        let f = Flow { tuple, tcp_flags: 0, request: info.verdict & VERDICT_REQUEST != 0 };
        self.flow(ip, pkt, f, false)
    }

    /// An ICMP error: found by the quoted datagram's session, never creating one.
    fn icmp_error(&mut self, pkt: NatPacket) -> Decision {
        let L4::IcmpError(q) = pkt.l4 else { return Decision::Drop(DropReason::L4Malformed) };
        let t = q.lookup_tuple();
        let mut plan = Plan::new(pkt);
        let out2in = |nat: &WorkerNat, t: &Tuple| match nat.lookup_out2in(t) {
            Out2In::Session(s) => Some((s.id, *s.session)),
            _ => None,
        };
        let in2out = |nat: &WorkerNat, t: &Tuple| nat.lookup_in2out(t).map(|s| (s.id, *s.session));
        if !self.outside_in {
            if let Some((id, s)) = in2out(self.nat, &t) {
                // About a packet delivered inside: the quote's destination and the outer
                // source become the outside endpoint.
                plan.push(id, Dir::In2Out);
                if self.is_external(pkt.dst) {
                    // Hairpinned: now find the session of the packet's sender.
                    let t2 = translated(t, &s, Dir::In2Out);
                    let Some((id2, s2)) = out2in(self.nat, &t2) else {
                        return Decision::Drop(DropReason::NoSession);
                    };
                    plan.push(id2, Dir::Out2In);
                    plan.dst = s2.inside().addr;
                }
                return self.deliver(plan);
            }
            if let Some((id, s)) = out2in(self.nat, &t) {
                plan.push(id, Dir::Out2In);
                plan.dst = s.inside().addr;
                return self.deliver(plan);
            }
        } else {
            if let Some((id, s)) = out2in(self.nat, &t) {
                // About a packet we sent out: the quote's source and the outer
                // destination become the inside endpoint.
                plan.push(id, Dir::Out2In);
                plan.dst = s.inside().addr;
                return self.deliver(plan);
            }
            if let Some((id, _)) = in2out(self.nat, &t) {
                plan.push(id, Dir::In2Out);
                return Decision::Forward(plan);
            }
        }
        if self.host_in && self.is_local(pkt.dst) {
            // About something the kernel sent (its own connections are no sessions).
            return Decision::Local(plan);
        }
        if self.is_external(pkt.dst) || self.is_local(pkt.dst) {
            return Decision::Drop(DropReason::NoSession);
        }
        self.untranslated(pkt, false)
    }

    /// Something the NAT cannot translate: other protocols, other ICMP types.
    fn other(&mut self, pkt: NatPacket) -> Decision {
        if self.is_local(pkt.dst) && (self.outside_in || self.host_in || !self.is_external(pkt.dst)) {
            return Decision::Local(Plan::new(pkt));
        }
        if self.is_external(pkt.dst) {
            return Decision::Drop(DropReason::L4Unsupported);
        }
        self.untranslated(pkt, !self.outside_in)
    }

    /// Route untranslated if FORWARD allows, statelessly. `refuse_snat`: drop
    /// (`l4_unsupported`) when POSTROUTING would translate what we cannot.
    fn untranslated(&mut self, pkt: NatPacket, refuse_snat: bool) -> Decision {
        let Some(hop) = self.routes.lookup(pkt.dst) else {
            return Self::no_route();
        };
        let rules = self.rules.load();
        let (sp, dp) = pkt.ports();
        let fm = FlowMatch {
            in_port: self.in_port,
            out_port: Some(hop.port),
            proto: pkt.ip_proto,
            src: pkt.src,
            dst: pkt.dst,
            src_port: sp,
            dst_port: dp,
            icmp_type: pkt.icmp_type,
        };
        if !self.forward(&rules, &fm) {
            return Decision::Drop(DropReason::PolicyDrop);
        }
        if refuse_snat
            && self.is_outside(hop.port)
            && source_action(self.postrouting(&rules, &fm), Ipv4Addr::UNSPECIFIED).is_some()
        {
            return Decision::Drop(DropReason::L4Unsupported);
        }
        Decision::Forward(Plan::new(pkt))
    }
}

/// The TCP/UDP tuple of an unfragmented IPv4 packet, read without any checks beyond
/// bounds (for prefetching only: the real classification follows).
#[inline]
fn quick_tuple(ip: &[u8]) -> Option<Tuple> {
    let ihl = usize::from(ip.first()? & 0x0f) * 4;
    let l4 = ip.get(ihl..ihl + 4)?;
    if ihl < 20 || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
        return None;
    }
    let proto = match ip[9] {
        6 => Proto::Tcp,
        17 => Proto::Udp,
        _ => return None,
    };
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    Some(Tuple::new(Endpoint::new(addr(12), port(0)), Endpoint::new(addr(16), port(2)), proto))
}

/// An inbound session on mapping `m`, with its deltas.
fn create_inbound(
    nat: &mut WorkerNat,
    t: &Tuple,
    m: super::MappingId,
    tcp_flags: u8,
    now: Instant,
) -> Result<SessionId, DropReason> {
    slowpath::create(nat, t, NatAction::Inbound(m), tcp_flags, now).map_err(|e| e.drop_reason())
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
    c.filtering = match config.nat.filtering {
        ConfigFiltering::EndpointIndependent => super::Filtering::EndpointIndependent,
        ConfigFiltering::AddressDependent => super::Filtering::AddressDependent,
        ConfigFiltering::AddressPortDependent => super::Filtering::AddressPortDependent,
    };
    c.seed = seed;
    c
}

/// The shared live timeouts from `[timeouts]`.
pub fn timeouts(config: &Config) -> Arc<Timeouts> {
    let t = config.timeouts;
    Arc::new(Timeouts::new(TimeoutValues { tcp: t.tcp, tcpfin: t.tcpfin, udp: t.udp, icmp: t.icmp }))
}

/// Why a rules file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{0}")]
    Parse(#[from] crate::policy::ParseError),
    #[error("{0}")]
    Compile(#[from] crate::policy::CompileError),
}

/// Parse iptables-save `text` with the configuration's port names and compile it.
pub fn load_rules(text: &str, config: &Config) -> Result<(RuleSet, CompiledRules), RulesError> {
    let names: Vec<&str> = config.ports.iter().map(|p| p.name.as_str()).collect();
    let set = RuleSet::parse_save(text, &names)?;
    let index: Vec<(&str, u16)> = names.iter().enumerate().map(|(i, n)| (*n, i as u16)).collect();
    let compiled = CompiledRules::new(&set, &index)?;
    Ok((set, compiled))
}

#[cfg(test)]
mod tests;
