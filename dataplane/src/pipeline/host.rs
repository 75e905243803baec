//! Host-interface stages (`crate::host`, docs/host-interface.md): `host-input` takes the
//! frames the kernel sent on a port's host interface out by that port (translated first
//! when a session claims them: REDIRECT's replies), and `host-punt` hands the frames
//! `ip4-local` does not answer to the kernel, rate-limited. Plus the ARP copy `l2-input`
//! gives the kernel ([`Worker::mirror_arp_to_host`]).

use super::{Stage, F_L2_DONE};
use crate::io::{Frame, PacketIo};
use crate::packet::ethernet::HEADER_LEN as ETH_LEN;
use crate::packet::{ArpOperation, ArpPacket, ArpRepr, EtherType, EthernetFrame};
use crate::stats::DropReason;
use crate::time::Instant;
use crate::worker::Worker;

impl<Io: PacketIo> Worker<Io> {
    /// `host-input`: a frame the kernel sent on port `meta.port`'s host interface. The
    /// kernel resolved its next hop and wrote the MACs, so it goes to `l2-output` as it
    /// is: its ARP requests; IPv4 after one validation pass, through `nat-rewrite` if a
    /// session claims it ([`crate::nat::NatPath::host_egress`]). Its ARP replies stay
    /// home (`host_arp_reply`): masqd answers ARP for its addresses itself.
    #[inline(never)]
    pub(crate) fn host_input(&mut self) {
        let n = self.vec.queued(Stage::HostInput);
        self.counters.host_from_kernel.add(n as u64);
        for k in 0..n {
            let i = self.vec.at(Stage::HostInput, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            meta.out_port = meta.port;
            meta.flags |= F_L2_DONE;
            let bytes = frame.bytes();
            let next: Result<Stage, DropReason> = if !frame.is_contiguous() {
                Err(DropReason::MultiSegment)
            } else {
                match EthernetFrame::new_checked(bytes).map(|e| e.ethertype()) {
                    Err(_) => Err(DropReason::EthTruncated),
                    Ok(EtherType::Arp) => {
                        match ArpPacket::new_checked(&bytes[ETH_LEN..]).and_then(|p| ArpRepr::parse(&p)) {
                            Ok(r) if r.operation == ArpOperation::Request => Ok(Stage::L2Output),
                            Ok(_) => Err(DropReason::HostArpReply),
                            Err(_) => Err(DropReason::ArpMalformed),
                        }
                    }
                    Ok(EtherType::Ipv4) => match self.l3.ip4_input(&bytes[ETH_LEN..]) {
                        Err(reason) => Err(reason),
                        Ok(total) => {
                            meta.len = (ETH_LEN + total) as u16;
                            let ip = &bytes[ETH_LEN..ETH_LEN + total];
                            match self.nat.as_ref().and_then(|n| n.host_egress(ip)) {
                                Some(plan) => {
                                    meta.pkt = plan.pkt;
                                    meta.steps = plan.steps;
                                    Ok(Stage::NatRewrite)
                                }
                                None => Ok(Stage::L2Output),
                            }
                        }
                    },
                    Ok(_) => Err(DropReason::EthUnsupportedType),
                }
            };
            match next {
                Ok(stage) => self.vec.send(i, stage),
                Err(reason) => self.vec.drop(i, Some(reason)),
            }
        }
    }

    /// `host-punt`: hand each frame (for one of the router's addresses, answered by
    /// nothing in masqd) to the kernel by its arrival port's host interface, within the
    /// worker's punt limit (`host_punt_limited` beyond it). The frame goes as it arrived,
    /// translated if a REDIRECT claimed it; the host ring takes it at the next flush.
    #[inline(never)]
    pub(crate) fn host_punt(&mut self, now: Instant) {
        for k in 0..self.vec.queued(Stage::HostPunt) {
            let i = self.vec.at(Stage::HostPunt, k);
            let allowed = self.host.as_mut().is_some_and(|h| h.limiter.allow(now));
            if !allowed {
                self.vec.drop(i, Some(DropReason::HostPuntLimited));
                continue;
            }
            let meta = *self.vec.meta(i);
            let Some(mut frame) = self.vec.take(i) else { continue };
            let len = usize::from(meta.len);
            if len < frame.len() {
                frame.set_len(len);
            }
            if let Err(frame) = self.io.punt(meta.port, frame) {
                // No host rings: a configuration the daemon never builds.
                self.counters.count_drop(DropReason::LocalUnhandled);
                self.io.free(frame);
            }
        }
    }

    /// Whether `frame` (arrived on `port`) is ARP the kernel behind `port`'s host
    /// interface should see too: a request or reply for the port's own address, so the
    /// kernel learns the neighbours it talks to.
    #[inline]
    pub(crate) fn arp_for_host(&self, port: u16, frame: &[u8]) -> bool {
        let Some(h) = self.host.as_ref() else { return false };
        if !h.has(port) || frame.len() < ETH_LEN + 28 || frame[12..14] != [0x08, 0x06] {
            return false;
        }
        let target = std::net::Ipv4Addr::new(frame[38], frame[39], frame[40], frame[41]);
        target == self.l3.routes().port(port).address
    }

    /// A copy of ARP frame `i` for the kernel (before `l2-input` answers it in place),
    /// within the punt limit.
    pub(crate) fn mirror_arp_to_host(&mut self, i: usize, now: Instant) {
        let port = self.vec.meta(i).port;
        let Some(frame) = self.vec.frame(i) else { return };
        if !self.arp_for_host(port, frame.bytes()) {
            return;
        }
        if !self.host.as_mut().is_some_and(|h| h.limiter.allow(now)) {
            self.counters.count_drop(DropReason::HostPuntLimited);
            return;
        }
        let Some(mut copy) = self.io.alloc() else { return };
        let Some(frame) = self.vec.frame(i) else { return };
        let bytes = frame.bytes();
        let ok = copy.room_mut().len() >= bytes.len() && {
            copy.room_mut()[..bytes.len()].copy_from_slice(bytes);
            copy.set_len(bytes.len())
        };
        if !ok {
            self.io.free(copy);
            return;
        }
        if let Err(copy) = self.io.punt(port, copy) {
            self.io.free(copy);
        }
    }
}
