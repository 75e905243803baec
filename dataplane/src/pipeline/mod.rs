//! The packet path: stages over the burst.
//!
//! A worker receives a burst (32 frames by default, `[workers] burst`) and runs it
//! through **stages**, each one loop over the packets that reached it, in the manner of
//! VPP's graph nodes and DPDK l3fwd's vector paths — not one packet through every
//! function. The worker keeps a per-burst [`Vector`]: the frames, a [`Meta`] per frame
//! (arrival port, length, the NAT's summary of the packet, the plan, next hop, drop
//! reason) and, per stage, the list of frames waiting for it. A stage reads its list in
//! arrival order and appends each frame to the list of the stage it goes to next.
//! Stages only ever send frames to stages later in the order below, so one pass over the
//! order runs the whole vector; a stage no frame reached is not called.
//!
//! ```text
//!  port-rx / handoff-rx            frames into the vector (metadata zeroed, port, length)
//!  host-rx                         frames the kernel sent on host interfaces (crate::host)
//!   ─▶ host-input    the kernel's frames: ARP requests and IPv4 out by their port as
//!                    they are (─▶ l2-output), or translated first (─▶ nat-rewrite)
//!   ─▶ l2-input      ours? (MAC), EtherType; ARP answered in place (─▶ l2-output);
//!                    multi-segment and bad frames dropped
//!   ─▶ ip4-input     one validation pass through the IPv4 view: lengths, IHL, version,
//!                    checksum, martians; Ethernet padding trimmed
//!   ─▶ nat-classify  the NAT's summary (tuple, ICMP quote, fragment), computed once;
//!                    TTL 1 answered before any state; the owning worker (─▶ handoff)
//!   ─▶ nat-lookup    whole TCP/UDP/ICMP-query packets: hash once, prefetch index slot
//!                    then session for the whole vector, hit ─▶ session + destination
//!   ─▶ nat-slowpath  everything else (misses, hairpins, ICMP errors, fragments): policy,
//!                    allocation, session creation; a later fragment before its first
//!                    ─▶ waits ([`fragwait`]) until that first fragment comes
//!   ─▶ ip4-forward   local? (─▶ ip4-local); one route lookup, one TTL check, MTU,
//!                    TTL−1; ICMP errors built in place
//!   ─▶ helper        sessions with a protocol helper only (FTP, TFTP, IRC): payload
//!                    inspection and rewrite, expectations, sequence offsets; the
//!                    egress MTU known, so a rewrite never makes a packet too big
//!   ─▶ nat-rewrite   the sessions' stored deltas, refresh
//!   ─▶ ip4-local     echo replies to the router's own addresses (translated back)
//!   ─▶ host-punt     the rest for the router, on a port with a host interface: to the
//!                    kernel, rate-limited (else dropped `local_unhandled` by ip4-local)
//!   ─▶ handoff       frames another worker owns leave here: steered by nat-classify,
//!                    new port-forward flows and cross-worker hairpins from the slow path
//!   ─▶ l2-output     neighbour, MAC fill, TX staging, or the ARP hold queue
//!   ─▶ drop          freed in bulk, each counted by reason
//!  port-tx, nat-expire            the flush, the NAT's timers (not per packet)
//! ```
//!
//! Without a NAT (a plain router) `ip4-input` sends straight to `ip4-forward`.
//!
//! ## Why this cut
//!
//! Each packet is classified once (`nat-classify`): steering, the lookup's hash and the
//! slow path reuse that summary. It is routed once and its TTL checked and decremented
//! once (`ip4-forward`); the NAT never routes a hit. The fast path (`nat-lookup`) never
//! sees rules or the port allocator, and sessions found there reach `nat-rewrite`
//! without any decision enum. `handoff` sits after `nat-rewrite`, not right after
//! `nat-classify` as a picture of the ideal graph would have it, because a hairpinned
//! packet leaves for the worker that owns its destination only once its sender's half
//! of the translation is applied; frames steered by `nat-classify` simply skip the
//! stages in between. Per-stage figures (`masqctl stats --runtime`) are in
//! `docs/pipeline.md` and `BENCHMARKS.md`.
//!
//! ## Adding a stage
//!
//! 1. a [`Stage`] variant, in the place of the order where it runs, with its name
//!    (`stages!` below): the runtime table picks it up;
//! 2. a method `fn my_stage(&mut self, now: Instant)` on [`crate::worker::Worker`] in a
//!    file of this module, looping over `self.vec.queue(Stage::MyStage)` and sending
//!    each frame on with `self.vec.send(i, next)` (or `self.vec.drop(i, reason)`);
//! 3. a line in [`crate::worker::Worker::run_stage`]'s `match`;
//! 4. the stages that feed it send frames to it. Anything per-packet it needs to hand on
//!    goes in [`Meta`] (keep it `Copy`, no heap).
//!
//! Stage methods are `#[inline(never)]`: each runs once per burst, so the call costs
//! nothing, and profiles (perf, callgrind) then show one entry per stage.
//!
//! Nothing in a stage allocates, locks, logs or makes a system call; the vector's arrays
//! are allocated once, for the largest burst ([`MAX_BURST`]).

pub mod fragwait;
mod helper;
mod host;
mod ip4;
mod l2;
mod nat;
pub mod runtime;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

pub use fragwait::{FRAG_WAIT, FRAG_WAIT_CAPACITY, FRAG_WAIT_PER_DATAGRAM};
pub use nat::publish_nat;
pub use runtime::{PassFigures, StageFigures, WorkerRuntime};

use crate::l3::router::IcmpErrorReq;
use crate::nat::classify::NatPacket;
use crate::nat::{Dir, SessionId};
use crate::stats::DropReason;

/// Frames per RX burst unless `[workers] burst` says otherwise.
pub const DEFAULT_BURST: usize = 32;
/// The largest burst: the vector's capacity (frame indices fit a `u8`).
pub const MAX_BURST: usize = 256;

macro_rules! stages {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, )*) => {
        /// A stage of the pipeline, or a step of the poll loop counted with them (the
        /// `port-*`, `handoff-rx` and `nat-expire` entries). Declaration order is the
        /// order stages run in and the order `masqctl stats --runtime` lists them in.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum Stage {
            $( $(#[$doc])* $variant, )*
        }

        impl Stage {
            /// Every stage, in order.
            pub const ALL: &'static [Stage] = &[$(Stage::$variant,)*];
            /// Number of stages: the length of the runtime and queue arrays.
            pub const COUNT: usize = Stage::ALL.len();

            /// The stable name (`masqctl stats --runtime`, `stats.get`).
            pub const fn name(self) -> &'static str {
                match self { $(Stage::$variant => $name,)* }
            }

            /// Look a stage up by its name.
            pub fn from_name(name: &str) -> Option<Stage> {
                Stage::ALL.iter().copied().find(|s| s.name() == name)
            }
        }
    };
}

stages! {
    /// Frames received from the ports (calls: non-empty bursts).
    PortRx = "port-rx",
    /// Frames other workers handed to this one.
    HandoffRx = "handoff-rx",
    /// Frames the kernel sent on host interfaces (from the host thread's rings).
    HostRx = "host-rx",
    /// The kernel's frames: out by their port, translated if a session claims them.
    HostInput = "host-input",
    L2Input = "l2-input",
    Ip4Input = "ip4-input",
    NatClassify = "nat-classify",
    NatLookup = "nat-lookup",
    NatSlowpath = "nat-slowpath",
    Ip4Forward = "ip4-forward",
    /// Sessions with a protocol helper only (FTP, TFTP, IRC): payload, sequence offsets.
    Helper = "helper",
    NatRewrite = "nat-rewrite",
    Ip4Local = "ip4-local",
    /// Frames for the router that masqd does not answer: to the kernel, rate-limited.
    HostPunt = "host-punt",
    Handoff = "handoff",
    L2Output = "l2-output",
    Drop = "drop",
    /// Staged frames sent (packets: accepted by the ports).
    PortTx = "port-tx",
    /// The NAT's timers, at most once per millisecond (packets: sessions expired).
    NatExpire = "nat-expire",
}

impl Stage {
    /// The stages that run over the vector, in order (the others are poll-loop steps).
    pub const PIPELINE: [Stage; 14] = [
        Stage::HostInput,
        Stage::L2Input,
        Stage::Ip4Input,
        Stage::NatClassify,
        Stage::NatLookup,
        Stage::NatSlowpath,
        Stage::Ip4Forward,
        Stage::Helper,
        Stage::NatRewrite,
        Stage::Ip4Local,
        Stage::HostPunt,
        Stage::Handoff,
        Stage::L2Output,
        Stage::Drop,
    ];

    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// [`Meta::flags`]: the frame came from another worker (never steered again).
pub const F_HANDED: u8 = 1;
/// The second half of a hairpinned packet whose first half another worker applied.
pub const F_HAIRPIN: u8 = 2;
/// A hairpinned packet whose second half another worker owns: hand it over once its
/// first half is applied.
pub const F_HAIRPIN_OUT: u8 = 16;
/// For the router itself (`ip4-forward` found its destination local).
pub const F_LOCAL: u8 = 4;
/// The frame's MACs are written (an ARP reply): `l2-output` sends it as it is.
pub const F_L2_DONE: u8 = 8;
/// A session of the frame has a protocol helper: `ip4-forward` sends it through the
/// `helper` stage on its way to `nat-rewrite`.
pub const F_HELPER: u8 = 32;
/// `nat-lookup` found no session for the packet's key.
pub const F_MISSED: u8 = 64;
/// A later fragment that waited for its first and is run again: if it still finds no
/// state it is dropped, never kept twice.
pub const F_RETRIED: u8 = 128;

/// The top bit of the `port` value a frame travels with over a handoff ring: the frame
/// is the second half of a hairpin (the rest is its arrival port).
pub const HANDOFF_HAIRPIN: u16 = 0x8000;

/// What the stages know about one frame. `Copy` and fixed size: a vector holds
/// [`MAX_BURST`] of them, allocated once.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// The port it arrived on.
    pub port: u16,
    /// Frame length in bytes (`ip4-input` cuts Ethernet padding; ICMP errors and ARP
    /// replies built in place change it).
    pub len: u16,
    /// `F_*` bits.
    pub flags: u8,
    /// Why it is dropped (`drop`); `None`: freed without counting (already counted,
    /// or used up, like an ARP reply to our request).
    pub drop: Option<DropReason>,
    /// Egress port (`ip4-forward`, `l2-output`).
    pub out_port: u16,
    /// The next hop `l2-output` resolves on `out_port`.
    pub via: Ipv4Addr,
    /// The destination to route: the packet's, or the NAT's after translation.
    pub dst: Ipv4Addr,
    /// The worker `handoff` gives the frame to.
    pub owner: u16,
    /// `nat-lookup`: the session-index tag of the packet's key (hashed once).
    pub tag: u32,
    /// `nat-classify`'s summary of the packet.
    pub pkt: NatPacket,
    /// Sessions `nat-rewrite` applies, in order.
    pub steps: [Option<(SessionId, Dir)>; 2],
    /// The ICMP error `ip4-forward` sends instead of forwarding.
    pub error: Option<IcmpErrorReq>,
}

impl Meta {
    /// A frame of `len` bytes that arrived on `port`.
    pub const fn new(port: u16, len: u16, flags: u8) -> Meta {
        Meta {
            port,
            len,
            flags,
            drop: None,
            out_port: 0,
            via: Ipv4Addr::UNSPECIFIED,
            dst: Ipv4Addr::UNSPECIFIED,
            owner: 0,
            tag: 0,
            pkt: crate::nat::classify::NO_PACKET,
            steps: [None; 2],
            error: None,
        }
    }
}

/// One burst's frames, their metadata and each stage's list of frames to handle.
/// Allocated once, for [`MAX_BURST`] frames.
///
/// Arrays of exactly [`MAX_BURST`] (a power of two) indexed by `i & (MAX_BURST - 1)`:
/// no bounds check on the per-packet path, and no index can leave the arrays.
pub struct Vector<F> {
    frames: Box<[Option<F>; MAX_BURST]>,
    meta: Box<[Meta; MAX_BURST]>,
    /// Frames in the vector.
    len: usize,
    /// `queues[stage][..queued[stage]]`: the frames waiting for `stage`, in order.
    queues: Box<[[u8; MAX_BURST]; Stage::COUNT]>,
    queued: [u16; Stage::COUNT],
}

/// The index mask of the vector's arrays.
const SLOT: usize = MAX_BURST - 1;
const _: () = assert!(MAX_BURST.is_power_of_two() && MAX_BURST <= 256, "indices are u8");

impl<F> Default for Vector<F> {
    fn default() -> Self {
        Vector::new()
    }
}

impl<F> Vector<F> {
    pub fn new() -> Vector<F> {
        Vector {
            frames: Box::new(std::array::from_fn(|_| None)),
            meta: Box::new([Meta::new(0, 0, 0); MAX_BURST]),
            len: 0,
            queues: Box::new([[0u8; MAX_BURST]; Stage::COUNT]),
            queued: [0; Stage::COUNT],
        }
    }

    /// Frames in the vector.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn is_full(&self) -> bool {
        self.len == MAX_BURST
    }

    /// Add `frame` with `meta`, queued for `first`. The caller runs the vector when it
    /// [`is_full`](Self::is_full) first.
    #[inline]
    pub fn push(&mut self, frame: F, meta: Meta, first: Stage) {
        debug_assert!(self.len < MAX_BURST, "push into a full vector");
        let i = self.len & SLOT;
        self.frames[i] = Some(frame);
        self.meta[i] = meta;
        self.len = i + 1;
        self.send(i, first);
    }

    /// Frames waiting for `stage`.
    #[inline]
    pub fn queued(&self, stage: Stage) -> usize {
        usize::from(self.queued[stage.index()])
    }

    /// The `k`-th frame waiting for `stage` (an index into the vector).
    #[inline]
    pub fn at(&self, stage: Stage, k: usize) -> usize {
        usize::from(self.queues[stage.index()][k & SLOT])
    }

    /// Empty `stage`'s list (the stage has handled it).
    #[inline]
    pub fn clear(&mut self, stage: Stage) {
        self.queued[stage.index()] = 0;
    }

    /// Send frame `i` to `stage`. Stages only send to stages later in the order.
    #[inline]
    pub fn send(&mut self, i: usize, stage: Stage) {
        let s = stage.index();
        let n = usize::from(self.queued[s]);
        debug_assert!(n < MAX_BURST && i < MAX_BURST);
        self.queues[s][n & SLOT] = i as u8;
        self.queued[s] = (n + 1) as u16;
    }

    /// Send frame `i` to `drop`, to be counted as `reason` (`None`: not counted).
    #[inline]
    pub fn drop(&mut self, i: usize, reason: Option<DropReason>) {
        self.meta[i & SLOT].drop = reason;
        self.send(i, Stage::Drop);
    }

    #[inline]
    pub fn meta(&self, i: usize) -> &Meta {
        &self.meta[i & SLOT]
    }

    #[inline]
    pub fn meta_mut(&mut self, i: usize) -> &mut Meta {
        &mut self.meta[i & SLOT]
    }

    /// Frame `i` (present until a terminal stage takes it).
    #[inline]
    pub fn frame(&self, i: usize) -> Option<&F> {
        self.frames[i & SLOT].as_ref()
    }

    #[inline]
    pub fn frame_mut(&mut self, i: usize) -> Option<&mut F> {
        self.frames[i & SLOT].as_mut()
    }

    /// Frame `i` and its metadata, both mutable.
    #[inline]
    pub fn frame_meta_mut(&mut self, i: usize) -> (Option<&mut F>, &mut Meta) {
        (self.frames[i & SLOT].as_mut(), &mut self.meta[i & SLOT])
    }

    /// Take frame `i` out (a terminal stage: TX, hold, handoff, drop, park).
    #[inline]
    pub fn take(&mut self, i: usize) -> Option<F> {
        self.frames[i & SLOT].take()
    }

    /// Forget the vector's frames (all taken by now) and lists: ready for the next burst.
    #[inline]
    pub fn reset(&mut self) {
        debug_assert!(self.frames[..self.len].iter().all(Option::is_none), "a frame left the pipeline untaken");
        debug_assert!(self.queued.iter().all(|&n| n == 0));
        self.len = 0;
    }
}
