//! The slow path: a packet the fast path could not translate by itself — a miss, a
//! hairpin, an ICMP error, a fragment, an ICMP query the wrong way — goes through the
//! whole decision here, in Linux's order, and may create a session.
//!
//! [`NatPath::slow_path`] is the `nat-slowpath` stage's call. It evaluates the rules
//! (`CompiledRules`, swapped whole by the control plane) once per new flow: nat
//! PREROUTING (destination), routing, filter FORWARD (which sees the translated
//! destination and the egress port), nat POSTROUTING (source; only for flows from an
//! inside port leaving by an outside one). Established flows never see the rules.
//! Flows without translation are tracked by an identity session unless the rule set is
//! empty (then masq is a plain router and tracks nothing). A new session gets its
//! checksum deltas here ([`csum_deltas`]), so this packet and every later one of the
//! flow take the [fast path](super::fastpath).
//!
//! ```text
//!  inside port ─▶ lookup_in2out ── hit ─────────────────────────────┐
//!                  │ miss                                           │ (src: inside → outside)
//!                  ├ lookup_out2in (DNAT'd at the inside, REDIRECT) ── hit ─▶ dst → inside
//!                  └ PREROUTING (DNAT/REDIRECT) | route, FORWARD,
//!                    POSTROUTING (egress outside) ─▶ create ─────────┤
//!                                                                   ▼
//!                  dst one of our external addresses? ── yes: hairpin, as if back in on the
//!                                                     │   outside port; on the worker that owns
//!                                                     │   the destination (Decision::Hairpin) ─┐
//!                                                     ▼ no                                     │
//!  outside port ─▶ lookup_out2in ── Session ─▶ dst: outside → inside ◀─────────────────────────┘
//!                  ├ Mapping (TCP/UDP) ─▶ filter allows: create Inbound ─▶ dst → inside
//!                  ├ Filtered ─▶ drop filtered_endpoint
//!                  └ Miss ─▶ PREROUTING DNAT/REDIRECT ─▶ create (on the target's worker) ─▶ dst → inside
//!                            else our port address ─▶ the router (echo reply)
//!                            else our external address ─▶ drop no_session
//!                            else route untranslated (FORWARD)
//! ```
//!
//! Inbound packets that reach an endpoint-independent mapping from a new remote are
//! governed by the configured filtering (RFC 4787 REQ-8), not by FORWARD: they are
//! related to the mapping the subscriber opened.
//!
//! **Hairpinning** (RFC 4787 REQ-9, RFC 5382 REQ-8): a packet from inside to one of our
//! external endpoints is translated twice — in2out for its sender (the sender's own
//! mapping: endpoint-independent mapping holds for hairpinned traffic too, REQ-9a),
//! then out2in as if it had left by the outside port and come back. The sender's
//! mapping lives on the sender's worker, the destination's on the worker that owns the
//! destination port (or, for a port forward not yet in use, the target's worker): when
//! that is another worker, the first half is applied here and the translated packet is
//! handed over ([`Decision::Hairpin`]); the owner runs the second half
//! (`slow_path(.., hairpin = true, ..)`) and counts it as hairpinned.
//!
//! ICMP errors (RFC 5508) never create, end or refresh a session: an error is matched
//! to the session of the datagram it quotes and translated with it.
//!
//! Fragments: the first fragment of a datagram records its ports and whether it was
//! translated ([`super::frag`]); later fragments, in any order after it, are translated
//! by address alone. A later fragment that overtakes its first leaves no state here
//! (`Decision::Drop(FragmentNoState)`): the worker keeps it, and runs it again only
//! when the first fragment of its datagram has been handled
//! (`crate::pipeline::fragwait`); if that does not happen within `FRAG_WAIT` it is
//! dropped as `fragment_no_state`.
//!
//! The pieces that do not depend on where the packet is:
//!
//! - [`source_action`]: nat POSTROUTING → `MASQUERADE` is SNAT to the egress port's
//!   address (with `--to-ports`), `SNAT` to its pool;
//! - [`dest_target`]: nat PREROUTING → the DNAT endpoint (a pool address chosen by a
//!   hash of the client address, the original port kept when the rule's range allows
//!   it); `REDIRECT` is DNAT to the inbound port's own address;
//! - [`create`]: `WorkerNat::create` plus the deltas.
//!
//! Keeping the allocator off the external ports that DNAT rules forward, as rules
//! change, is [`super::static_ports`].

use std::net::Ipv4Addr;

use super::classify::{verify_l4, Flow, Frag, NatPacket, L4};
use super::fastpath::translated;
use super::frag::FragInfo;
use super::key::{Endpoint, Proto, Tuple};
use super::path::{icmp_ok, Decision, NatPath, Plan, Routing, SlowHints};
use super::ports::PortRange as NatPortRange;
use super::steer::subscriber_owner;
use super::table::Session;
use super::{CreateError, Dir, HelperKind, NatAction, Out2In, SessionId, SnatTarget, WorkerNat};
use crate::packet::checksum::Delta;
use crate::packet::icmp::Icmpv4Message;
use crate::policy::{Chain, CompiledRules, DestNat, FlowMatch, PortRange, SourceNat};
use crate::stats::DropReason;
use crate::time::Instant;

const VERDICT_PASS: u32 = 1;
const VERDICT_REQUEST: u32 = 2;

impl NatPath {
    /// Decide what to do with `ip` (an IPv4 packet cut at its total length, checked by
    /// `ip4-input`) that arrived on `in_port`, summarised by `pkt`. May create sessions;
    /// never modifies the packet. See [`SlowHints`] for what the caller may know.
    pub fn slow_path(
        &mut self,
        in_port: u16,
        ip: &[u8],
        pkt: NatPacket,
        routes: &dyn Routing,
        hints: SlowHints,
        now: Instant,
    ) -> Decision {
        let hairpin = hints.hairpin;
        let mut c = Ctx {
            nat: &mut self.nat,
            // One atomic load when the rule set has not changed (the cache's check),
            // where `ArcSwap::load` costs about a hundred instructions.
            rules: self.rules_cache.load(),
            outside: &self.outside,
            routes,
            in_port,
            outside_in: self.outside.get(usize::from(in_port)).copied().unwrap_or(false),
            hairpin_in: hairpin,
            no_session: hints.no_session,
            tag: hints.tag,
            now,
            bytes: ip.len(),
            host_in: self.host.get(usize::from(in_port)).copied().unwrap_or(false),
            raw_helper: None,
        };
        let d = if hairpin {
            c.hairpin_in(ip, pkt)
        } else {
            match pkt.l4 {
                L4::Flow(f) => c.flow(ip, pkt, f, true),
                L4::Fragment => c.later_fragment(ip, pkt),
                L4::IcmpError(_) => c.icmp_error(pkt),
                L4::Other => c.other(pkt),
            }
        };
        match (pkt.frag, pkt.l4, d) {
            // An address-only flow's later fragments need nothing from its first.
            (Frag::First, L4::Flow(f), _) if f.tuple.proto.is_addr_only() => d,
            (
                Frag::First,
                L4::Flow(f),
                Decision::Forward(p) | Decision::Local(p) | Decision::Hairpin { plan: p, .. },
            ) => {
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
}

/// One decision's context: disjoint borrows of the path's parts.
struct Ctx<'a> {
    nat: &'a mut WorkerNat,
    /// The rule set in force, as of this packet.
    rules: &'a CompiledRules,
    outside: &'a [bool],
    routes: &'a dyn Routing,
    in_port: u16,
    outside_in: bool,
    /// The second half of a packet another worker hairpinned.
    hairpin_in: bool,
    /// The fast path found no session for the packet's (inside) key ...
    no_session: bool,
    /// ... whose session-index tag is this.
    tag: u32,
    now: Instant,
    /// The packet's IPv4 length: what a rule it matches counts in bytes.
    bytes: usize,
    /// Whether the arrival port has a host interface (unclaimed packets for the
    /// router's own addresses are then `Local`, for the kernel, instead of dropped).
    host_in: bool,
    /// The helper a raw-table `CT --helper` rule gives the flow being created.
    raw_helper: Option<HelperKind>,
}

impl Ctx<'_> {
    /// nat POSTROUTING, counted against the deciding rule.
    /// raw PREROUTING for a new flow (the packet as it arrived): the helper a
    /// `CT --helper` rule gives it, counted against that rule.
    fn raw(&mut self, rules: &CompiledRules, fm: &FlowMatch) {
        let v = rules.raw_helper(fm);
        rules.count(self.nat.worker(), Chain::RawPrerouting, v.rule, self.bytes);
        self.raw_helper = v.helper;
    }

    /// Create a session with its deltas ([`create`]) and give it its protocol helper:
    /// a raw rule's, else the one `[nat] helpers` names for its server port.
    fn create(&mut self, t: &Tuple, action: NatAction, tcp_flags: u8) -> Result<SessionId, CreateError> {
        self.create_known(t, action, tcp_flags, None)
    }

    /// [`create`](Self::create) with what the fast path knows of `t`'s inside key
    /// ([`WorkerNat::create_known`]).
    fn create_known(
        &mut self,
        t: &Tuple,
        action: NatAction,
        tcp_flags: u8,
        absent: Option<u32>,
    ) -> Result<SessionId, CreateError> {
        let id = nat_create(self.nat, t, action, tcp_flags, absent, self.now)?;
        let s = self.session(id);
        if let Some(kind) = self.raw_helper.or_else(|| self.nat.helper_for(&s)) {
            self.nat.attach_helper(id, kind);
        }
        Ok(id)
    }

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
        self.nat.is_external(addr)
    }

    fn is_local(&self, addr: Ipv4Addr) -> bool {
        self.routes.is_local(addr)
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
        let (sp, dp) = match t.proto {
            Proto::Tcp | Proto::Udp => (t.src.port, t.dst.port),
            Proto::Icmp | Proto::Other(_) => (0, 0),
        };
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
    /// they reach `to`'s worker ([`super::steer`]). REDIRECT to the router itself, on a
    /// port with a host interface: the kernel's replies go to the worker of the client,
    /// `from` (`crate::host::kernel_frame_owner`), so the session lives there. An
    /// address-only flow (`t`'s protocol GRE, ESP, ...) stays: its owner is named by the
    /// remote, whichever side.
    fn dnat_owner(&self, to: Ipv4Addr, t: &Tuple) -> Option<u16> {
        let (from, workers) = (t.src.addr, self.nat.partition().workers());
        if workers <= 1 || t.proto.is_addr_only() {
            return None;
        }
        if self.is_local(to) {
            let owner = subscriber_owner(from, workers);
            return (self.host_in && owner != self.nat.worker()).then_some(owner);
        }
        let hop = self.routes.egress(to)?;
        if self.is_outside(hop) {
            return None;
        }
        let owner = subscriber_owner(to, workers);
        (owner != self.nat.worker()).then_some(owner)
    }

    /// With several workers, the worker that owns the destination of a hairpinned
    /// packet `t2` (after its sender's translation) when it is not this one: the owner of
    /// the external port, where its mapping lives.
    fn hairpin_owner(&self, t2: &Tuple) -> Option<u16> {
        let partition = self.nat.partition();
        if partition.workers() <= 1 {
            return None;
        }
        let det = self.nat.deterministic();
        let owner = if let Proto::Other(n) = t2.proto {
            // Address-only: the owner of (remote, protocol); the remote is the sender's
            // external address.
            super::steer::addr_only_owner(t2.src.addr, n, partition.workers())
        } else if !det.is_empty() && det.is_outside(t2.dst.addr) {
            // Deterministic NAT: the worker of the host that owns the port.
            super::steer::subscriber_owner(det.owner_host(t2.dst.addr, t2.dst.port)?, partition.workers())
        } else {
            partition.owner_of(t2.dst.port)?
        };
        (owner != self.nat.worker()).then_some(owner)
    }

    /// Hand a hairpinned packet to `owner` once `plan` (its first half, perhaps empty)
    /// is applied. A TTL that runs out is answered here, where the error can still
    /// quote what the sender sent.
    fn hairpin(&self, pkt: &NatPacket, plan: Plan, owner: u16) -> Decision {
        if pkt.ttl <= 1 && !self.hairpin_in {
            return Decision::Error { reason: DropReason::TtlExceeded, msg: Icmpv4Message::TimeExceeded, code: 0 };
        }
        Decision::Hairpin { plan, owner }
    }

    /// The second half of a packet another worker hairpinned (its sender's translation
    /// applied there): out2in, as if it came back in by the port it would leave by.
    fn hairpin_in(&mut self, ip: &[u8], pkt: NatPacket) -> Decision {
        let arrival = |c: &Self, dst: Ipv4Addr| c.routes.egress(dst).unwrap_or(c.in_port);
        match pkt.l4 {
            L4::Flow(f) => {
                let egress = arrival(self, f.tuple.dst.addr);
                self.dst_side(ip, pkt, f, f.tuple, egress, Plan::new(pkt), false, true)
            }
            L4::Fragment => {
                let info = match self.nat.fragments().later_fragment(&pkt.frag_key(), self.now) {
                    Ok(i) => i,
                    Err(e) => return Decision::Drop(e.drop_reason()),
                };
                let Some(proto) = Proto::from_ip(pkt.ip_proto).filter(|_| info.verdict & VERDICT_PASS == 0) else {
                    return self.deliver(Plan::new(pkt));
                };
                let tuple =
                    Tuple::new(Endpoint::new(pkt.src, info.src_port), Endpoint::new(pkt.dst, info.dst_port), proto);
                let f = Flow { tuple, tcp_flags: 0, request: info.verdict & VERDICT_REQUEST != 0 };
                let egress = arrival(self, pkt.dst);
                self.dst_side(ip, pkt, f, tuple, egress, Plan::new(pkt), false, false)
            }
            L4::IcmpError(q) => match self.nat.lookup_out2in(&q.lookup_tuple()) {
                Out2In::Session(s) => {
                    let mut plan = Plan::new(pkt);
                    plan.push(s.id, Dir::Out2In);
                    plan.dst = s.inside().addr;
                    self.deliver(plan)
                }
                _ => Decision::Drop(DropReason::NoSession),
            },
            L4::Other => Decision::Drop(DropReason::NoSession),
        }
    }

    /// Whether a new flow from inside to `t.dst`, one of the router's own outside
    /// addresses, is for the kernel: the arrival port has a host interface, and neither
    /// a mapping on that endpoint nor a PREROUTING rule (evaluated as if the packet came
    /// in by the port the address belongs to, as hairpinning does) claims it. Echo
    /// requests stay with masqd, which answers them.
    fn host_for_kernel(&self, rules: &CompiledRules, t: &Tuple, fm: &FlowMatch) -> bool {
        if !self.host_in || t.proto == Proto::Icmp || !self.is_local(t.dst.addr) {
            return false;
        }
        if self.nat.lookup_outside(t.dst, t.proto).is_some() {
            return false;
        }
        let Some(arrival) = self.routes.egress(t.dst.addr) else { return false };
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
        let found = if self.no_session && create { None } else { self.find_in2out(&t, &f) };
        if let Some((id, s)) = found {
            let mut plan = Plan::new(pkt);
            plan.push(id, Dir::In2Out);
            let t2 = translated(t, &s, Dir::In2Out);
            let egress = self.routes.egress(t2.dst.addr).unwrap_or(self.in_port);
            return self.after_src(ip, pkt, f, t2, plan, egress, create);
        }
        // Forward packets of a flow DNAT'd at the inside (REDIRECT, DNAT from inside):
        // looked for only while such sessions exist (a lookup saved per new flow).
        if let Some((id, s)) = (self.nat.dest_nat_sessions() > 0).then(|| self.find_out2in(&t, &f)).flatten() {
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
        let t = f.tuple;
        // A flow a helper announced (an inside server's data connection): before the rules.
        if self.nat.has_expectations() {
            if let Some(r) = create_expected(self.nat, &t, Dir::In2Out, f.tcp_flags, self.now) {
                return match r {
                    Ok(id) => {
                        let mut plan = Plan::new(pkt);
                        plan.push(id, Dir::In2Out);
                        let t2 = translated(t, &self.session(id), Dir::In2Out);
                        let egress = self.routes.egress(t2.dst.addr).unwrap_or(self.in_port);
                        self.after_src(ip, pkt, f, t2, plan, egress, true)
                    }
                    Err(e) => Self::refused(e.drop_reason()),
                };
            }
        }
        let rules = self.rules;
        let mut fm = Self::flow_match(self.in_port, &t, &pkt);
        self.raw(rules, &fm);
        let hairpin = self.is_external(pkt.dst);
        // To the router's own outside address from inside, claimed by no mapping and no
        // rule: for the kernel, untranslated (Linux delivers it locally, no SNAT).
        if hairpin && self.host_for_kernel(rules, &t, &fm) {
            return Decision::Local(Plan::new(pkt));
        }
        // To one of our external addresses: hairpinning; PREROUTING is evaluated on the
        // second pass, as if the packet came back in by the outside port.
        if !hairpin {
            let inbound_addr = self.routes.port_address(self.in_port);
            let pre = rules.prerouting(&fm);
            let target = dest_target(pre.nat, &t, inbound_addr);
            // Another worker owns the flow this creates: it evaluates and counts.
            if let Some(w) = target.and_then(|to| self.dnat_owner(to.addr, &t)) {
                return Decision::Handoff(w);
            }
            rules.count(self.nat.worker(), Chain::Prerouting, pre.rule, self.bytes);
            if let Some(to) = target {
                return self.dnat(rules, Plan::new(pkt), f, t, fm, to);
            }
            if self.is_local(pkt.dst) {
                return Decision::Local(Plan::new(pkt));
            }
        }
        let Some(hop) = self.routes.egress(pkt.dst) else {
            return Self::no_route();
        };
        fm.out_port = Some(hop);
        if !self.forward(rules, &fm) {
            return Decision::Drop(DropReason::PolicyDrop);
        }
        let action = if self.is_outside(hop) {
            source_action(self.postrouting(rules, &fm), self.routes.port_address(hop))
        } else {
            None
        };
        let action = action.or_else(|| tracks_untranslated(rules, &fm).then_some(NatAction::NoNat));
        let mut plan = Plan::new(pkt);
        let mut t2 = t;
        if let Some(a) = action {
            // The fast path's miss stands for `t`'s inside key, which this creates (its
            // source from inside; address-only flows look their keys up themselves).
            let absent = (self.no_session && !t.proto.is_addr_only()).then_some(self.tag);
            match self.create_known(&t, a, f.tcp_flags, absent) {
                Ok(id) => {
                    plan.push(id, Dir::In2Out);
                    t2 = translated(t, &self.session(id), Dir::In2Out);
                }
                Err(e) => return Self::refused(e.drop_reason()),
            }
        }
        self.after_src(ip, pkt, f, t2, plan, hop, true)
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
            // Back in as if it had left by the outside port and returned: here, or on
            // the worker that owns the destination.
            if let Some(owner) = self.hairpin_owner(&t2) {
                return self.hairpin(&pkt, plan, owner);
            }
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
        let found = match self.nat.lookup_out2in(&t) {
            Out2In::Session(s) if icmp_ok(&f, &s, Dir::Out2In) => {
                plan.push(s.id, Dir::Out2In);
                plan.dst = s.inside().addr;
                return self.deliver(plan);
            }
            Out2In::Session(_) => Out2In::Miss,
            Out2In::Mapping(m) => Out2In::Mapping(m),
            Out2In::Filtered(m) => Out2In::Filtered(m),
            Out2In::Miss => Out2In::Miss,
        };
        // A flow a helper announced (a data connection): before filtering and rules.
        if create && self.nat.has_expectations() && t.proto != Proto::Icmp {
            if !verify_l4(ip, &pkt) {
                return Decision::Drop(DropReason::L4BadChecksum);
            }
            if let Some(r) = create_expected(self.nat, &t, Dir::Out2In, f.tcp_flags, self.now) {
                return match r {
                    Ok(id) => {
                        plan.push(id, Dir::Out2In);
                        plan.dst = self.session(id).inside().addr;
                        self.deliver(plan)
                    }
                    Err(e) => Decision::Drop(e.drop_reason()),
                };
            }
        }
        match found {
            Out2In::Mapping(m) if t.proto != Proto::Icmp => {
                if !create {
                    return Decision::Drop(DropReason::NoSession);
                }
                if !verify_l4(ip, &pkt) {
                    return Decision::Drop(DropReason::L4BadChecksum);
                }
                return match self.create(&t, NatAction::Inbound(m.id), f.tcp_flags).map_err(|e| e.drop_reason()) {
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
        let rules = self.rules;
        let mut fm = Self::flow_match(arrival, &t, &pkt);
        if from_outside {
            self.raw(rules, &fm);
        }
        let inbound_addr = self.routes.port_address(arrival);
        let pre = rules.prerouting(&fm);
        let target = dest_target(pre.nat, &t, inbound_addr);
        // Another worker owns the flow this creates: it evaluates and counts. A
        // hairpinned packet goes on with its first half applied (its source session
        // lives here, or on the worker that handed it here).
        if let Some(w) = target.and_then(|to| self.dnat_owner(to.addr, &t)) {
            if from_outside {
                return Decision::Handoff(w);
            }
            return self.hairpin(&pkt, plan, w);
        }
        rules.count(self.nat.worker(), Chain::Prerouting, pre.rule, self.bytes);
        if let Some(to) = target {
            return self.dnat(rules, plan, f, t, fm, to);
        }
        // The router answers pings; anything else for an external address needed a
        // session or a forward — or goes to the kernel, if it is the router's own address
        // and a host interface is there.
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
        let Some(hop) = self.routes.egress(t.dst.addr) else {
            return Self::no_route();
        };
        fm.out_port = Some(hop);
        if !self.forward(rules, &fm) {
            return Decision::Drop(DropReason::PolicyDrop);
        }
        if tracks_untranslated(rules, &fm) {
            match self.create(&t, NatAction::NoNatInbound, f.tcp_flags) {
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
            let Some(hop) = self.routes.egress(to.addr) else {
                return Self::no_route();
            };
            fm.out_port = Some(hop);
            fm.dst = to.addr;
            if matches!(t.proto, Proto::Tcp | Proto::Udp) {
                fm.dst_port = to.port;
            }
            if !self.forward(rules, &fm) {
                return Decision::Drop(DropReason::PolicyDrop);
            }
        }
        match self.create(&t, NatAction::Dnat { to, from_inside: !self.outside_in }, f.tcp_flags) {
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
                    // Hairpinned: now find the session of the packet's sender, here or
                    // on the worker that owns it.
                    let t2 = translated(t, &s, Dir::In2Out);
                    if let Some(owner) = self.hairpin_owner(&t2) {
                        return self.hairpin(&pkt, plan, owner);
                    }
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

    /// Something the NAT cannot translate: DCCP, UDP-Lite, other ICMP types, ICMP
    /// errors quoting what it does not translate.
    fn other(&mut self, pkt: NatPacket) -> Decision {
        if self.is_local(pkt.dst) && (self.outside_in || self.host_in || !self.is_external(pkt.dst)) {
            return Decision::Local(Plan::new(pkt));
        }
        if self.is_external(pkt.dst) {
            return Decision::Drop(unsupported(&pkt));
        }
        self.untranslated(pkt, !self.outside_in)
    }

    /// Route untranslated if FORWARD allows, statelessly. `refuse_snat`: drop
    /// (`l4_unsupported`, or `icmp_unsupported` for ICMP) when POSTROUTING would
    /// translate what we cannot.
    fn untranslated(&mut self, pkt: NatPacket, refuse_snat: bool) -> Decision {
        let Some(hop) = self.routes.egress(pkt.dst) else {
            return Self::no_route();
        };
        let rules = self.rules;
        let (sp, dp) = pkt.ports();
        let fm = FlowMatch {
            in_port: self.in_port,
            out_port: Some(hop),
            proto: pkt.ip_proto,
            src: pkt.src,
            dst: pkt.dst,
            src_port: sp,
            dst_port: dp,
            icmp_type: pkt.icmp_type,
        };
        if !self.forward(rules, &fm) {
            return Decision::Drop(DropReason::PolicyDrop);
        }
        if refuse_snat
            && self.is_outside(hop)
            && source_action(self.postrouting(rules, &fm), Ipv4Addr::UNSPECIFIED).is_some()
        {
            return Decision::Drop(unsupported(&pkt));
        }
        Decision::Forward(Plan::new(pkt))
    }
}

/// Why a packet the NAT cannot translate is dropped: an ICMP message that is neither a
/// query nor an error about a flow it tracks (a router advertisement, an error inside
/// a fragment or about an error, ...) is `icmp_unsupported`; anything else
/// `l4_unsupported`.
fn unsupported(pkt: &NatPacket) -> DropReason {
    if pkt.ip_proto == 1 {
        DropReason::IcmpUnsupported
    } else {
        DropReason::L4Unsupported
    }
}

/// The session an expectation waits for, if `t` is its first packet travelling `dir`,
/// with its deltas (see [`WorkerNat::create_expected`]).
fn create_expected(
    nat: &mut WorkerNat,
    t: &Tuple,
    dir: Dir,
    tcp_flags: u8,
    now: Instant,
) -> Option<Result<SessionId, CreateError>> {
    let r = nat.create_expected(t, dir, tcp_flags, now)?;
    if let Ok(id) = r {
        let s = *nat.session(id).expect("just created").session;
        nat.set_csum_deltas(id, csum_deltas(&s));
    }
    Some(r)
}

/// The in2out checksum deltas of a session: `[0]` for the IPv4 header (address),
/// `[1]` for the transport checksum (TCP/UDP: address and port, since the
/// pseudo-header covers the address; ICMP query: the identifier only).
pub fn csum_deltas(s: &Session) -> [Delta; 2] {
    let (i, o) = (s.inside(), s.outside());
    let ip = Delta::new().replace_addr(i.addr, o.addr);
    let l4 = match s.proto() {
        Proto::Icmp => Delta::new().replace16(i.port, o.port),
        Proto::Tcp | Proto::Udp => ip.replace16(i.port, o.port),
        // No transport checksum covers anything translated.
        Proto::Other(_) => Delta::new(),
    };
    [ip, l4]
}

/// Create the session for `t` and store its deltas. `t` is the packet's tuple as on
/// the wire (ICMP: identifier in both ports).
pub fn create(
    nat: &mut WorkerNat,
    t: &Tuple,
    action: NatAction,
    tcp_flags: u8,
    now: Instant,
) -> Result<SessionId, CreateError> {
    nat_create(nat, t, action, tcp_flags, None, now)
}

/// [`create`] through [`WorkerNat::create_known`].
fn nat_create(
    nat: &mut WorkerNat,
    t: &Tuple,
    action: NatAction,
    tcp_flags: u8,
    absent: Option<u32>,
    now: Instant,
) -> Result<SessionId, CreateError> {
    let id = nat.create_known(t, action, tcp_flags, absent, now)?;
    let s = *nat.session(id).expect("just created").session;
    nat.set_csum_deltas(id, csum_deltas(&s));
    Ok(id)
}

fn nat_ports(p: Option<PortRange>) -> Option<NatPortRange> {
    p.map(|r| NatPortRange::new(r.first(), r.last()))
}

/// The source translation nat POSTROUTING asks for, for a flow leaving by a port
/// whose address is `egress_addr`. `None`: no translation.
pub fn source_action(nat: SourceNat, egress_addr: Ipv4Addr) -> Option<NatAction> {
    match nat {
        SourceNat::None => None,
        // `--random` changes nothing: the allocator already picks at random when the
        // source port is taken, and keeping a free source port is RFC 4787 REQ-3.
        SourceNat::Masquerade { ports, random: _ } => {
            Some(NatAction::Snat(SnatTarget { addrs: (egress_addr, egress_addr), ports: nat_ports(ports) }))
        }
        SourceNat::Snat { addrs, ports } => {
            Some(NatAction::Snat(SnatTarget { addrs: (addrs.first(), addrs.last()), ports: nat_ports(ports) }))
        }
    }
}

/// The DNAT endpoint for a flow `t` (as on the wire) decided by nat PREROUTING;
/// `inbound_addr` is the address of the port it arrived on (REDIRECT). ICMP keeps
/// its identifier.
pub fn dest_target(nat: DestNat, t: &Tuple, inbound_addr: Ipv4Addr) -> Option<Endpoint> {
    let port = |ports: Option<PortRange>| match (t.proto, ports) {
        (Proto::Icmp | Proto::Other(_), _) | (_, None) => t.dst.port,
        (_, Some(r)) if r.contains(t.dst.port) => t.dst.port,
        (_, Some(r)) => r.first(),
    };
    match nat {
        DestNat::None => None,
        DestNat::Dnat { addrs, ports } => {
            // A stable choice per client, spread over the pool.
            let h = u64::from(u32::from(t.src.addr).wrapping_mul(0x9e37_79b9));
            let k = (h * addrs.len()) >> 32;
            let addr = Ipv4Addr::from(u32::from(addrs.first()).wrapping_add(k as u32));
            Some(Endpoint::new(addr, port(ports)))
        }
        DestNat::Redirect { ports } => Some(Endpoint::new(inbound_addr, port(ports))),
    }
}

/// Whether untranslated flows must be tracked: yes unless the rules are empty and
/// FORWARD accepts everything (plain routing, where a session would change nothing).
pub fn tracks_untranslated(rules: &CompiledRules, any_flow: &FlowMatch) -> bool {
    let empty = rules.chain_len(Chain::Prerouting) == 0
        && rules.chain_len(Chain::Postrouting) == 0
        && rules.chain_len(Chain::Forward) == 0;
    !(empty && rules.forward(any_flow))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::AddrRange;

    fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> Tuple {
        Tuple::new(Endpoint::new(src.into(), sp), Endpoint::new(dst.into(), dp), Proto::Udp)
    }

    #[test]
    fn masquerade_is_snat_to_the_egress_address() {
        let wan = Ipv4Addr::new(203, 0, 113, 1);
        let a = source_action(SourceNat::Masquerade { ports: PortRange::new(2000, 2999), random: true }, wan);
        assert_eq!(
            a,
            Some(NatAction::Snat(SnatTarget { addrs: (wan, wan), ports: Some(NatPortRange::new(2000, 2999)) }))
        );
        assert_eq!(source_action(SourceNat::None, wan), None);
    }

    #[test]
    fn dnat_targets() {
        let t = udp([198, 51, 100, 9], 5000, [203, 0, 113, 1], 2222);
        let one = AddrRange::single(Ipv4Addr::new(100, 64, 0, 2));
        let to = dest_target(DestNat::Dnat { addrs: one, ports: PortRange::new(22, 22) }, &t, Ipv4Addr::UNSPECIFIED);
        assert_eq!(to, Some(Endpoint::new(Ipv4Addr::new(100, 64, 0, 2), 22)));
        let to = dest_target(DestNat::Dnat { addrs: one, ports: None }, &t, Ipv4Addr::UNSPECIFIED);
        assert_eq!(to.unwrap().port, 2222);
        let keep = dest_target(DestNat::Dnat { addrs: one, ports: PortRange::new(2000, 3000) }, &t, 0.into());
        assert_eq!(keep.unwrap().port, 2222);
        let pool = AddrRange::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 4)).unwrap();
        for s in 0..50u8 {
            let t = udp([198, 51, 100, s], 1, [203, 0, 113, 1], 80);
            let a = dest_target(DestNat::Dnat { addrs: pool, ports: None }, &t, 0.into()).unwrap().addr;
            assert!((Ipv4Addr::new(10, 0, 0, 1)..=Ipv4Addr::new(10, 0, 0, 4)).contains(&a));
        }
        let r = dest_target(DestNat::Redirect { ports: PortRange::new(8080, 8080) }, &t, Ipv4Addr::new(1, 2, 3, 4));
        assert_eq!(r, Some(Endpoint::new(Ipv4Addr::new(1, 2, 3, 4), 8080)));
        assert_eq!(dest_target(DestNat::None, &t, 0.into()), None);
    }
}
