//! `steer` (several workers): frames another worker owns leave before anything validates
//! them, told from a few header bytes ([`crate::nat::NatPath::frame_owner`]). See
//! "Steering early" in the module docs.

use super::{Stage, F_HANDED, HANDOFF_RAW};
use crate::io::{Frame, PacketIo};
use crate::stats::DropReason;
use crate::worker::Worker;

impl<Io: PacketIo> Worker<Io> {
    /// `steer`: a frame to our MAC that another worker owns, as far as a few header bytes
    /// tell, is handed to it as it arrived ([`HANDOFF_RAW`]: its owner runs it from
    /// `l2-input`); the rest go to `l2-input`, those the bytes showed to be this worker's marked
    /// [`F_HANDED`] so `nat-classify` does not steer them again. What a busy worker's
    /// ring cannot take yet waits in the I/O's stage, as in `handoff`.
    #[inline(never)]
    pub(crate) fn steer(&mut self) {
        let n = self.vec.queued(Stage::Steer);
        let me = self.nat.as_ref().and_then(|nat| nat.steering()).map(|s| s.me());
        let (Some(nat), Some(me)) = (self.nat.as_ref(), me) else {
            // Nothing to steer by (one worker, no NAT): the frames go on as they are.
            for k in 0..n {
                let i = self.vec.at(Stage::Steer, k);
                self.vec.send(i, Stage::L2Input);
            }
            return;
        };
        for k in 0..n {
            let i = self.vec.at(Stage::Steer, k);
            let (Some(frame), meta) = self.vec.frame_meta_mut(i) else { continue };
            // Only frames sent to us: a stray frame (flooded to our port, another MAC)
            // is dropped here by `l2-input`, not handed on.
            let bytes = frame.bytes();
            let owner = if self.l3.to_port_mac(meta.port, bytes) { nat.frame_owner(meta.port, bytes) } else { None };
            match owner {
                Some(owner) if owner != me => {
                    let port = meta.port;
                    let Some(frame) = self.vec.take(i) else { continue };
                    if let Err(frame) = self.io.handoff(owner, port | HANDOFF_RAW, frame) {
                        // No ring to that worker: a configuration the daemon never builds.
                        self.counters.count_drop(DropReason::HandoffFull);
                        self.io.free(frame);
                    }
                }
                Some(_) => {
                    meta.flags |= F_HANDED;
                    self.vec.send(i, Stage::L2Input);
                }
                None => self.vec.send(i, Stage::L2Input),
            }
        }
    }
}
