//! The `helper` stage: only frames of sessions with a protocol helper (FTP, TFTP, IRC
//! DCC, see [`crate::nat::helper`]) come here, from `ip4-forward`, on their way to
//! `nat-rewrite`. Every other session never pays for it: `nat-lookup` and
//! `nat-slowpath` mark a frame ([`super::F_HELPER`]) only when one of its sessions has
//! a helper.
//!
//! It runs after routing on purpose: the egress port's MTU is known, so a rewrite that
//! makes the packet longer can be held to it (the helper passes the packet unmodified
//! rather than send something too big), and a packet that routing drops never changes
//! a helper's state. It runs before `nat-rewrite`, which then applies the sessions'
//! stored deltas to the packet as the helper left it.

use super::Stage;
use crate::io::{Frame, PacketIo};
use crate::packet::ethernet::HEADER_LEN as ETH_LEN;
use crate::time::Instant;
use crate::worker::Worker;

impl<Io: PacketIo> Worker<Io> {
    /// `helper`: each step's helper sees the packet (it may rewrite it, change its
    /// length, open expectations, move sequence numbers); then `nat-rewrite`.
    #[inline(never)]
    pub(crate) fn helper_stage(&mut self, now: Instant) {
        let Some(nat) = self.nat.as_mut() else { return };
        for k in 0..self.vec.queued(Stage::Helper) {
            let i = self.vec.at(Stage::Helper, k);
            let mtu = usize::from(self.l3.routes().port(self.vec.meta(i).out_port).mtu);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            let room = frame.room_mut();
            let limit = room.len().min(ETH_LEN + mtu);
            let mut len = usize::from(meta.len) - ETH_LEN;
            for (id, dir) in meta.steps.into_iter().flatten() {
                len = nat.helper_packet(id, dir, &mut room[ETH_LEN..limit], len, now);
            }
            meta.len = (ETH_LEN + len) as u16;
            self.vec.send(i, Stage::NatRewrite);
        }
    }
}
