//! IPv4 stages: `ip4-input` (one validation pass), `ip4-forward` (local or routed: one
//! route lookup, one TTL check and decrement, MTU; ICMP errors built in place) and
//! `ip4-local` (the router's own addresses: echo replies; the rest to `host-punt` on ports
//! with a host interface).

use super::{Stage, F_HAIRPIN, F_HELPER, F_LOCAL};
use crate::io::{Frame, PacketIo};
use crate::l3::router::{IcmpErrorReq, NotForwarded};
use crate::packet::ethernet::HEADER_LEN as ETH_LEN;
use crate::packet::ipv4::Ipv4Packet;
use crate::stats::DropReason;
use crate::time::Instant;
use crate::worker::Worker;

impl<Io: PacketIo> Worker<Io> {
    /// `ip4-input`: validate the IPv4 header once ([`crate::l3::router::Router::ip4_input`]),
    /// check the source against the arrival port's `allowed_sources` (RFC 2827; inside
    /// ports that list some), cut Ethernet padding, note the destination; then the NAT,
    /// or straight to routing.
    #[inline(never)]
    pub(crate) fn ip4_input(&mut self) {
        let next = if self.nat.is_some() { Stage::NatClassify } else { Stage::Ip4Forward };
        for k in 0..self.vec.queued(Stage::Ip4Input) {
            let i = self.vec.at(Stage::Ip4Input, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            let ip = &frame.bytes()[ETH_LEN..];
            match self.l3.ip4_input(ip) {
                Ok(total_len) => {
                    let p = Ipv4Packet::new_unchecked(ip);
                    if !self.l3.routes().source_allowed(meta.port, p.src_addr()) {
                        self.vec.drop(i, Some(DropReason::SourceNotAllowed));
                        continue;
                    }
                    meta.len = (ETH_LEN + total_len) as u16;
                    meta.dst = p.dst_addr();
                    self.vec.send(i, next);
                }
                Err(reason) => self.vec.drop(i, Some(reason)),
            }
        }
    }

    /// `ip4-forward`: an ICMP error a stage before asked for is built here; a packet for
    /// one of the router's addresses goes to `ip4-local` (through `nat-rewrite` if it was
    /// translated); anything else is routed toward its destination (after translation),
    /// its TTL and MTU checked against the packet as it arrived and its TTL decremented,
    /// then translated (`nat-rewrite`) or sent (`l2-output`).
    #[inline(never)]
    pub(crate) fn ip4_forward(&mut self, now: Instant) {
        let mut forwarded = 0;
        for k in 0..self.vec.queued(Stage::Ip4Forward) {
            let i = self.vec.at(Stage::Ip4Forward, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            let translated = meta.steps[0].is_some();
            let error = match meta.error {
                Some(err) => err,
                None if self.l3.is_local(meta.dst) => {
                    meta.flags |= F_LOCAL;
                    self.vec.send(i, if translated { Stage::NatRewrite } else { Stage::Ip4Local });
                    continue;
                }
                None => {
                    let len = usize::from(meta.len);
                    let ip = Ipv4Packet::new_unchecked(&frame.bytes()[ETH_LEN..len]);
                    match self.l3.forward(&ip, meta.dst) {
                        Ok(hop) => {
                            Ipv4Packet::new_unchecked(&mut frame.room_mut()[ETH_LEN..len]).decrement_ttl();
                            meta.out_port = hop.port;
                            meta.via = hop.via;
                            forwarded += 1;
                            let next = match translated {
                                true if meta.flags & F_HELPER != 0 => Stage::Helper,
                                true => Stage::NatRewrite,
                                false => Stage::L2Output,
                            };
                            self.vec.send(i, next);
                            continue;
                        }
                        Err(NotForwarded::Drop(reason)) => {
                            self.vec.drop(i, Some(reason));
                            continue;
                        }
                        Err(NotForwarded::Icmp(err)) => err,
                    }
                }
            };
            self.icmp_error(i, error, now);
        }
        self.counters.forwarded.add(forwarded);
    }

    /// Turn frame `i` into the ICMP error `err` (or drop it: rate limit, unsuitable).
    /// The second half of a hairpin handed over by another worker gets no error: its
    /// source is already translated, so the error could not reach its sender.
    fn icmp_error(&mut self, i: usize, err: IcmpErrorReq, now: Instant) {
        let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { return };
        if meta.flags & F_HAIRPIN != 0 {
            self.counters.count_drop(err.reason);
            self.vec.drop(i, Some(DropReason::IcmpErrorSuppressed));
            return;
        }
        match self.l3.icmp_error(frame.room_mut(), usize::from(meta.len), now, err) {
            Some((len, hop)) => {
                meta.len = len as u16;
                meta.out_port = hop.port;
                meta.via = hop.via;
                // The error is the router's own packet: nothing of the NAT applies to it.
                meta.steps = [None; 2];
                self.vec.send(i, Stage::L2Output);
            }
            // Counted by the router (the cause and `icmp_error_suppressed`).
            None => self.vec.drop(i, None),
        }
    }

    /// `ip4-local`: answer echo requests to the router's addresses in place; a reply to a
    /// request that was translated on its way in (REDIRECT, hairpin) is translated back.
    #[inline(never)]
    pub(crate) fn ip4_local(&mut self, now: Instant) {
        for k in 0..self.vec.queued(Stage::Ip4Local) {
            let i = self.vec.at(Stage::Ip4Local, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            let ip = &mut frame.room_mut()[ETH_LEN..usize::from(meta.len)];
            if let Err(reason) = self.l3.answer_local(ip) {
                // Not for masqd: for the kernel, if the port has a host interface.
                if reason == DropReason::LocalUnhandled && self.host.as_ref().is_some_and(|h| h.has(meta.port)) {
                    self.vec.send(i, Stage::HostPunt);
                } else {
                    self.vec.drop(i, Some(reason));
                }
                continue;
            }
            let mut to = Ipv4Packet::new_unchecked(&*ip).dst_addr();
            if let Some(nat) = self.nat.as_mut() {
                if let Some(plan) = nat.local_reply(ip) {
                    nat.apply(ip, &plan.pkt, &plan.steps, false, now);
                    to = plan.dst;
                }
            }
            let Some(hop) = self.l3.route(to) else {
                self.vec.drop(i, Some(DropReason::NoRoute));
                continue;
            };
            self.l3.count_icmp_sent();
            meta.out_port = hop.port;
            meta.via = hop.via;
            meta.flags &= !F_LOCAL;
            self.vec.send(i, Stage::L2Output);
        }
    }
}
