//! NAT stages: `nat-classify`, `nat-lookup` (the fast path), `nat-slowpath`,
//! `nat-rewrite`, and `handoff` (frames another worker owns leave here), plus
//! [`publish_nat`]: the NAT's counters into the worker's, once per millisecond.

use super::{Meta, Stage, F_HAIRPIN, F_HAIRPIN_OUT, F_HANDED, F_HELPER, F_LOCAL, F_MISSED, HANDOFF_HAIRPIN};
use crate::counters::WorkerCounters;
use crate::io::{Frame, PacketIo};
use crate::l3::router::IcmpErrorReq;
use crate::nat::classify::{classify_into, Frag, L4};
use crate::nat::{CreateError, Decision, Lookup, NatPath, SlowHints};
use crate::packet::ethernet::HEADER_LEN as ETH_LEN;
use crate::packet::icmp::Icmpv4Message;
use crate::stats::DropReason;
use crate::time::Instant;
use crate::worker::Worker;

impl<Io: PacketIo> Worker<Io> {
    /// `nat-classify`: the NAT's summary of the packet, computed once and kept in the
    /// metadata for every later stage; a TTL about to run out answered before any state
    /// is created (RFC 1812 §5.3.1); the owning worker found (several workers); whole
    /// TCP/UDP/ICMP-query packets to the fast path, the rest to the slow path.
    #[inline(never)]
    pub(crate) fn nat_classify(&mut self, now: Instant) {
        let Some(nat) = self.nat.as_mut() else { return };
        for k in 0..self.vec.queued(Stage::NatClassify) {
            let i = self.vec.at(Stage::NatClassify, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            if let Err(reason) = classify_into(&frame.bytes()[ETH_LEN..usize::from(meta.len)], &mut meta.pkt) {
                self.vec.drop(i, Some(reason));
                continue;
            }
            let pkt = &meta.pkt;
            meta.dst = pkt.dst;
            let next = if meta.flags & F_HAIRPIN != 0 {
                // The second half of a hairpin: its first half checked the TTL.
                Stage::NatSlowpath
            } else if pkt.ttl <= 1 && !self.l3.is_local(pkt.dst) {
                meta.error = Some(IcmpErrorReq {
                    reason: DropReason::TtlExceeded,
                    msg: Icmpv4Message::TimeExceeded,
                    code: 0,
                    rest: 0,
                });
                Stage::Ip4Forward
            } else if let Some(owner) = (meta.flags & F_HANDED == 0).then(|| nat.owner(meta.port, pkt, now)).flatten() {
                meta.owner = owner;
                if pkt.frag == Frag::First && !self.frag_wait.is_empty() {
                    // Later fragments that overtook it here follow it to its owner.
                    self.frag_wait.wake(&pkt.frag_key());
                }
                Stage::Handoff
            } else if pkt.frag == Frag::Whole && matches!(pkt.l4, L4::Flow(_)) {
                Stage::NatLookup
            } else {
                Stage::NatSlowpath
            };
            self.vec.send(i, next);
        }
    }

    /// `nat-lookup`, the fast path, in three passes over the vector so the memory
    /// waits overlap: hash each packet's key once and prefetch its index slot; prefetch
    /// the session records the slots point to; then look up. A hit goes to routing with
    /// its session and destination; everything else to the slow path.
    #[inline(never)]
    pub(crate) fn nat_lookup(&mut self) {
        let Some(nat) = self.nat.as_ref() else { return };
        let n = self.vec.queued(Stage::NatLookup);
        for k in 0..n {
            let i = self.vec.at(Stage::NatLookup, k);
            let meta = self.vec.meta_mut(i);
            if let L4::Flow(f) = meta.pkt.l4 {
                meta.tag = nat.lookup_begin(meta.port, &f);
            }
        }
        for k in 0..n {
            let i = self.vec.at(Stage::NatLookup, k);
            nat.lookup_prefetch(self.vec.meta(i).tag);
        }
        for k in 0..n {
            let i = self.vec.at(Stage::NatLookup, k);
            let meta = self.vec.meta_mut(i);
            let found = match meta.pkt.l4 {
                L4::Flow(f) => nat.lookup(meta.port, &f, meta.tag),
                _ => Lookup::Slow,
            };
            match found {
                Lookup::Hit(hit) => {
                    meta.steps[0] = Some((hit.id, hit.dir));
                    meta.dst = hit.dst;
                    if hit.helper {
                        meta.flags |= F_HELPER;
                    }
                    self.vec.send(i, Stage::Ip4Forward);
                }
                Lookup::Miss => {
                    meta.flags |= F_MISSED;
                    self.vec.send(i, Stage::NatSlowpath);
                }
                Lookup::Slow => self.vec.send(i, Stage::NatSlowpath),
            }
        }
    }

    /// `nat-slowpath`: the NAT's whole decision for what the fast path did not take
    /// ([`NatPath::slow_path`]): policy, allocation, session creation, hairpinning,
    /// DNAT, ICMP errors, fragments. A later fragment that came before its first
    /// waits, unmodified ([`super::fragwait`]); a first fragment handled here wakes the
    /// fragments of its datagram that wait.
    #[inline(never)]
    pub(crate) fn nat_slowpath(&mut self, now: Instant) {
        // What the sessions this call creates may shadow: a packet the fast path missed
        // still has no session unless one with its inside key was created since.
        if let Some(nat) = self.nat.as_mut() {
            nat.nat_mut().forget_created();
        }
        for k in 0..self.vec.queued(Stage::NatSlowpath) {
            let i = self.vec.at(Stage::NatSlowpath, k);
            let Some(nat) = self.nat.as_mut() else { return };
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            let ip = &frame.bytes()[ETH_LEN..usize::from(meta.len)];
            let no_session = meta.flags & F_MISSED != 0 && !nat.nat().created_since(meta.tag);
            let hints = SlowHints { hairpin: meta.flags & F_HAIRPIN != 0, no_session, tag: meta.tag };
            let next = match nat.slow_path(meta.port, ip, meta.pkt, self.l3.routes(), hints, now) {
                Decision::Forward(plan) | Decision::Local(plan) => {
                    meta.steps = plan.steps;
                    meta.dst = plan.dst;
                    if nat.has_helper(&plan.steps) {
                        meta.flags |= F_HELPER;
                    }
                    Stage::Ip4Forward
                }
                Decision::Error { reason, msg, code } => {
                    meta.error = Some(IcmpErrorReq { reason, msg, code, rest: 0 });
                    Stage::Ip4Forward
                }
                Decision::Handoff(owner) => {
                    meta.owner = owner;
                    Stage::Handoff
                }
                Decision::Hairpin { plan, owner } => {
                    meta.steps = plan.steps;
                    meta.owner = owner;
                    meta.flags |= F_HAIRPIN_OUT;
                    if plan.is_tracked() {
                        Stage::NatRewrite
                    } else {
                        Stage::Handoff
                    }
                }
                Decision::Drop(DropReason::FragmentNoState) => {
                    let (port, flags, key) = (meta.port, meta.flags, meta.pkt.frag_key());
                    if let Some(frame) = self.vec.take(i) {
                        self.park_fragment(frame, key, port, flags, now);
                    }
                    continue;
                }
                Decision::Drop(reason) => {
                    self.vec.drop(i, Some(reason));
                    continue;
                }
            };
            if meta.pkt.frag == Frag::First {
                let key = meta.pkt.frag_key();
                self.wake_fragments(&key);
            }
            self.vec.send(i, next);
        }
    }

    /// `nat-rewrite`: apply the sessions' stored deltas in place and refresh them; then
    /// the router's own handling, the other worker's half of a hairpin, or out.
    #[inline(never)]
    pub(crate) fn nat_rewrite(&mut self, now: Instant) {
        let Some(nat) = self.nat.as_mut() else { return };
        for k in 0..self.vec.queued(Stage::NatRewrite) {
            let i = self.vec.at(Stage::NatRewrite, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            let ip = &mut frame.room_mut()[ETH_LEN..usize::from(meta.len)];
            nat.apply(ip, &meta.pkt, &meta.steps, meta.flags & F_HAIRPIN != 0, now);
            let next = if meta.flags & F_HAIRPIN_OUT != 0 {
                Stage::Handoff
            } else if meta.flags & F_LOCAL != 0 {
                Stage::Ip4Local
            } else {
                Stage::L2Output
            };
            self.vec.send(i, next);
        }
    }

    /// `handoff`: give each frame to the worker that owns it, with its arrival port (and
    /// whether it is a hairpin's second half) for that worker's pipeline. A full ring
    /// is a counted drop (`handoff_full`).
    #[inline(never)]
    pub(crate) fn handoff(&mut self) {
        for k in 0..self.vec.queued(Stage::Handoff) {
            let i = self.vec.at(Stage::Handoff, k);
            let meta: Meta = *self.vec.meta(i);
            let Some(mut frame) = self.vec.take(i) else { continue };
            // The receiver starts at nat-classify: the frame is cut to its IPv4 length.
            let len = usize::from(meta.len);
            if len < frame.len() {
                frame.set_len(len);
            }
            let tag = meta.port | if meta.flags & F_HAIRPIN_OUT != 0 { HANDOFF_HAIRPIN } else { 0 };
            if let Err(frame) = self.io.handoff(meta.owner, tag, frame) {
                // No ring to that worker: a configuration the daemon never builds.
                self.counters.count_drop(DropReason::HandoffFull);
                self.io.free(frame);
            }
        }
    }
}

/// Publish the NAT's counters into the worker's (read by the control plane and masqd's
/// report).
pub fn publish_nat(path: &NatPath, c: &WorkerCounters) {
    let nat = path.nat();
    let n = nat.counters();
    c.nat_sessions_created.set(n.sessions_created);
    c.nat_sessions_expired.set(n.sessions_expired);
    c.nat_sessions.set(u64::from(nat.count()));
    c.nat_mappings.set(u64::from(nat.mapping_count()));
    c.nat_create_failed_session_table_full.set(n.create_failed[CreateError::SessionTableFull as usize]);
    c.nat_create_failed_subscriber_limit.set(n.create_failed[CreateError::SubscriberLimit as usize]);
    c.nat_create_failed_rate_limited.set(n.create_failed[CreateError::RateLimited as usize]);
    c.nat_create_failed_ports_exhausted.set(n.create_failed[CreateError::PortsExhausted as usize]);
    c.nat_create_failed_tuple_in_use.set(n.create_failed[CreateError::TupleInUse as usize]);
    let b = nat.block_counters();
    c.nat_blocks.set(u64::from(nat.block_count()));
    c.nat_blocks_allocated.set(b.allocated);
    c.nat_blocks_released.set(b.released);
    let p = path.counters();
    c.nat_hairpinned.set(p.hairpinned);
    c.nat_icmp_errors_translated.set(p.icmp_errors);
    c.nat_fragments_translated.set(p.fragments);
    for (cell, v) in c.helpers.iter().zip(nat.helper_counters()) {
        cell.set(*v);
    }
    let log = nat.log_counters();
    c.log_events.set(log.events);
    c.log_events_dropped.set(log.dropped);
    c.log_alerts_suppressed.set(log.alerts_suppressed);
}
