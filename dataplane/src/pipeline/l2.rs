//! Layer-2 stages: `l2-input` (which frames are ours, ARP) and `l2-output` (neighbour,
//! MACs, TX staging or the ARP hold queue), and `drop`, where every frame the pipeline
//! does not send ends: freed in bulk, counted by reason.

use super::{Stage, F_L2_DONE};
use crate::io::{Frame, PacketIo};
use crate::l3::router::{ArpOutcome, L2Kind};
use crate::stats::DropReason;
use crate::time::Instant;
use crate::worker::Worker;

impl<Io: PacketIo> Worker<Io> {
    /// `l2-input`: multi-segment frames and frames not for us are dropped; IPv4 goes on
    /// to `ip4-input`; ARP is handled here, a reply built in place going to `l2-output`
    /// (and a copy of ARP for a port's own address to its host interface, if it has one).
    #[inline(never)]
    pub(crate) fn l2_input(&mut self, now: Instant) {
        // With host interfaces: the kernel gets a copy of ARP for its addresses first
        // (answering a request overwrites the frame).
        if self.host.is_some() {
            for k in 0..self.vec.queued(Stage::L2Input) {
                let i = self.vec.at(Stage::L2Input, k);
                self.mirror_arp_to_host(i, now);
            }
        }
        let nat = self.nat.as_ref();
        for k in 0..self.vec.queued(Stage::L2Input) {
            let i = self.vec.at(Stage::L2Input, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            // Err(None): used up, freed without a drop to count.
            let next: Result<Stage, Option<DropReason>> = if !frame.is_contiguous() {
                Err(Some(DropReason::MultiSegment))
            } else {
                match self.l3.l2_input(meta.port, frame.bytes()) {
                    Err(reason) => Err(Some(reason)),
                    Ok(L2Kind::Ipv4) => Ok(Stage::Ip4Input),
                    Ok(L2Kind::Arp) => {
                        let port = meta.port;
                        let len = frame.len();
                        // Addresses of the NAT's pool on an outside link are ours too.
                        let claims = |a| nat.is_some_and(|n| n.is_outside(port) && n.is_external(a));
                        match self.l3.arp(port, frame.room_mut(), len, now, claims) {
                            ArpOutcome::Reply { len } => {
                                meta.len = len as u16;
                                meta.out_port = port;
                                meta.flags |= F_L2_DONE;
                                Ok(Stage::L2Output)
                            }
                            ArpOutcome::Consumed => Err(None),
                            ArpOutcome::Drop(reason) => Err(Some(reason)),
                        }
                    }
                }
            };
            match next {
                Ok(stage) => self.vec.send(i, stage),
                Err(reason) => self.vec.drop(i, reason),
            }
        }
    }

    /// `l2-output`: the frame's final length, then its MACs — written already (ARP
    /// replies), or the next hop's from the neighbour table — and TX staging; a next hop
    /// not yet resolved parks the frame in the hold queue and asks for it.
    #[inline(never)]
    pub(crate) fn l2_output(&mut self, now: Instant) {
        // Most of a burst goes to one next hop (the gateway): look each up once per burst.
        let mut last: Option<(u16, std::net::Ipv4Addr, [u8; 6])> = None;
        for k in 0..self.vec.queued(Stage::L2Output) {
            let i = self.vec.at(Stage::L2Output, k);
            let meta = *self.vec.meta(i);
            let Some(mut frame) = self.vec.take(i) else { continue };
            let len = usize::from(meta.len);
            if len != frame.len() && !frame.set_len(len) {
                self.counters.count_drop(DropReason::IcmpErrorSuppressed);
                self.io.free(frame);
                continue;
            }
            if meta.flags & F_L2_DONE != 0 {
                self.io.tx(meta.out_port, frame);
                continue;
            }
            let mac = match last {
                Some((port, via, mac)) if port == meta.out_port && via == meta.via => Some(mac),
                _ => {
                    let mac = self.l3.neighbor(meta.out_port, meta.via, now);
                    last = mac.map(|m| (meta.out_port, meta.via, m));
                    mac
                }
            };
            match mac {
                Some(mac) => {
                    self.l3.fill_l2(meta.out_port, mac, frame.room_mut());
                    self.io.tx(meta.out_port, frame);
                }
                None => self.hold_frame(frame, meta.out_port, meta.via, now),
            }
        }
    }

    /// `drop`: count each frame's reason (if it has one left to count) and free it.
    #[inline(never)]
    pub(crate) fn drop_stage(&mut self) {
        for k in 0..self.vec.queued(Stage::Drop) {
            let i = self.vec.at(Stage::Drop, k);
            if let Some(reason) = self.vec.meta(i).drop {
                self.counters.count_drop(reason);
            }
            if let Some(frame) = self.vec.take(i) {
                self.io.free(frame);
            }
        }
    }
}
