//! The poll loop: one per worker core, generic over [`PacketIo`] so tests run it in memory.
//!
//! A worker owns its I/O, its layer-3 state ([`Router`]) and its NAT ([`NatPath`]) side by
//! side, and the vector the pipeline runs on. Each pass receives a burst from every port
//! and runs it through the stages ([`crate::pipeline`]: the stages themselves are
//! methods of [`Worker`] in that module's files), then the frames other workers handed
//! it, then the later fragments whose first fragment came during the pass
//! ([`crate::pipeline::fragwait`]); then it sends ARP refreshes, lets the NAT expire what
//! is due (at most once per millisecond, bounded work), releases frames whose next hop
//! got resolved, and flushes. Nothing here allocates after construction: the vector,
//! the hold queue and the fragments' waiting area have fixed capacities.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::control_plane::WorkerControl; // control plane
use crate::counters::WorkerCounters;
use crate::host::HostPorts;
use crate::io::{Frame, PacketIo, TxReport};
use crate::l3::router::Router;
use crate::nat::FragKey;
use crate::nat::NatPath;
use crate::pipeline::fragwait::FragWait;
use crate::pipeline::{Meta, Stage, Vector, WorkerRuntime, F_HAIRPIN, F_HANDED, F_RETRIED, HANDOFF_HAIRPIN};
use crate::stats::DropReason;
use crate::time::{Duration, Instant};

/// How long a packet may wait for its next hop's ARP reply.
pub const HOLD_TIMEOUT: Duration = Duration::from_millis(3000);
/// Interval between ARP requests for the same unresolved next hop.
pub const ARP_RETRY: Duration = Duration::from_millis(1000);
/// Frames one worker holds at most while resolving next hops.
pub const HOLD_CAPACITY: usize = 256;

struct Held<F> {
    frame: F,
    port: u16,
    via: Ipv4Addr,
    deadline: Instant,
}

#[derive(Clone, Copy)]
struct Resolving {
    port: u16,
    via: Ipv4Addr,
    last_request: Instant,
}

/// Frames waiting for ARP, and the next hops being asked for. Fixed capacity.
struct HoldQueue<F> {
    held: Vec<Held<F>>,
    resolving: Vec<Resolving>,
}

impl<F> HoldQueue<F> {
    fn with_capacity(n: usize) -> Self {
        HoldQueue { held: Vec::with_capacity(n), resolving: Vec::with_capacity(n) }
    }

    fn is_full(&self) -> bool {
        self.held.len() == self.held.capacity()
    }
}

/// One poll-mode worker: its I/O, its router and NAT, its vector and its counters.
pub struct Worker<Io: PacketIo> {
    pub(crate) io: Io,
    /// Layer 2 and 3: neighbours, routes, ARP, ICMP.
    pub(crate) l3: Router,
    /// The NAT (none: a plain router).
    pub(crate) nat: Option<NatPath>,
    /// The burst being run through the stages.
    pub(crate) vec: Vector<Io::Frame>,
    pub(crate) counters: Arc<WorkerCounters>,
    /// Per-stage calls, packets and cycles (shared with the control plane).
    runtime: Arc<WorkerRuntime>,
    /// Whether the stages are timed (see [`Worker::set_runtime_counting`]).
    timing: bool,
    hold: HoldQueue<Io::Frame>,
    /// Later fragments waiting for their first fragment (fixed capacity).
    pub(crate) frag_wait: FragWait<Io::Frame>,
    last_hold_service: Instant,
    /// control plane: mailbox and latency probe (see `with_control`).
    control: WorkerControl,
    /// Host interfaces (none: what is for the router and unanswered is dropped).
    pub(crate) host: Option<HostPorts>,
}

impl<Io: PacketIo> Worker<Io> {
    pub fn new(io: Io, router: Router, counters: Arc<WorkerCounters>) -> Self {
        Worker {
            io,
            l3: router,
            nat: None,
            vec: Vector::new(),
            counters,
            runtime: Arc::new(WorkerRuntime::default()),
            timing: true,
            hold: HoldQueue::with_capacity(HOLD_CAPACITY),
            frag_wait: FragWait::new(),
            last_hold_service: Instant::ZERO,
            control: WorkerControl::default(),
            host: None,
        }
    }

    /// Put `nat` in the packet path, beside the router.
    pub fn with_nat(mut self, mut nat: NatPath) -> Self {
        if let Some(h) = self.host.as_ref() {
            nat.set_host_ports(h.ports());
        }
        self.nat = Some(nat);
        self
    }

    /// Give the ports `host` names a host interface (see [`crate::host`]): what arrives
    /// for the router's own addresses and nothing claims (no session, no DNAT/REDIRECT
    /// rule, not ARP or an echo request masqd answers) goes to the kernel (`host-punt`),
    /// rate-limited, and the kernel's frames leave by their ports (`host-input`). The
    /// I/O must carry host rings ([`PacketIo::punt`]).
    pub fn with_host(mut self, host: HostPorts) -> Self {
        if let Some(nat) = self.nat.as_mut() {
            nat.set_host_ports(host.ports());
        }
        self.host = Some(host);
        self
    }

    /// control plane: answer the control thread's mailbox and record latency.
    pub fn with_control(mut self, control: WorkerControl) -> Self {
        self.control = control;
        self
    }

    pub fn io(&self) -> &Io {
        &self.io
    }

    pub fn io_mut(&mut self) -> &mut Io {
        &mut self.io
    }

    pub fn counters(&self) -> &Arc<WorkerCounters> {
        &self.counters
    }

    /// The per-stage runtime table (clone the `Arc` to read it from elsewhere).
    pub fn runtime(&self) -> &Arc<WorkerRuntime> {
        &self.runtime
    }

    /// Time the stages (on by default). Off, the runtime table counts nothing: only for
    /// measuring what counting costs (`masq-bench --no-runtime`).
    pub fn set_runtime_counting(&mut self, on: bool) {
        self.timing = on;
    }

    pub fn router(&self) -> &Router {
        &self.l3
    }

    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.l3
    }

    pub fn nat(&self) -> Option<&NatPath> {
        self.nat.as_ref()
    }

    pub fn nat_mut(&mut self) -> Option<&mut NatPath> {
        self.nat.as_mut()
    }

    /// Replace the NAT (none: a plain router). Benchmarks swap tables between phases.
    pub fn set_nat(&mut self, nat: Option<NatPath>) {
        self.nat = nat;
    }

    /// Frames currently waiting for ARP resolution.
    pub fn held(&self) -> usize {
        self.hold.held.len()
    }

    /// Later fragments waiting for their first fragment now.
    pub fn deferred(&self) -> usize {
        self.frag_wait.len()
    }

    /// Poll until `stop` is set, reading the time from `clock` once per pass.
    pub fn run(&mut self, stop: &AtomicBool, mut clock: impl FnMut() -> Instant) {
        while !stop.load(Ordering::Relaxed) {
            self.poll(clock());
        }
        self.shutdown();
    }

    /// The cycle counter, if the stages are timed.
    #[inline]
    fn cycles(&self) -> u64 {
        if self.timing {
            self.io.cycles()
        } else {
            0
        }
    }

    /// Charge `stage` with `packets` and the cycles since `since`; returns the time now
    /// (the next stage's start: one counter read per stage).
    #[inline]
    fn record(&self, stage: Stage, packets: usize, since: u64) -> u64 {
        if !self.timing {
            return 0;
        }
        let now = self.io.cycles();
        self.runtime.record(stage, packets, now.wrapping_sub(since));
        now
    }

    /// One pass over every port. Returns the number of frames received.
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut received = 0;
        let start = self.cycles();
        let mut t = start;
        // Back-pressure: while a handoff stage to a busy worker is backlogged, new frames
        // wait in the NIC's queues (see `PacketIo::rx_paused`).
        let rx_ports = if self.io.rx_paused() {
            self.counters.handoff_paused.inc();
            0
        } else {
            self.io.port_count() as u16
        };
        for port in 0..rx_ports {
            if self.io.rx_burst(port) == 0 {
                continue;
            }
            if received == 0 {
                self.control.burst_begin(); // control plane: latency of this pass
            }
            let (mut n, mut bytes) = (0, 0);
            while let Some(frame) = self.io.next_rx() {
                if self.vec.is_full() {
                    // A burst larger than the vector: run it in vector-sized parts.
                    t = self.record(Stage::PortRx, 0, t);
                    t = self.run_vector(now, t);
                }
                n += 1;
                bytes += frame.len() as u64;
                let meta = Meta::new(port, frame_len(&frame), 0);
                self.vec.push(frame, meta, Stage::L2Input);
            }
            received += n;
            self.counters.rx_packets.add(n as u64);
            self.counters.rx_bytes.add(bytes);
            t = self.record(Stage::PortRx, n, t);
            t = self.run_vector(now, t);
        }
        // Frames other workers received but this one owns (multi-worker only).
        for source in 0..self.io.handoff_sources() {
            if self.io.handoff_burst(source) == 0 {
                continue;
            }
            if received == 0 {
                self.control.burst_begin();
            }
            let mut n = 0;
            let first = if self.nat.is_some() { Stage::NatClassify } else { Stage::L2Input };
            while let Some((tag, frame)) = self.io.next_handoff() {
                if self.vec.is_full() {
                    t = self.record(Stage::HandoffRx, 0, t);
                    t = self.run_vector(now, t);
                }
                n += 1;
                let flags = F_HANDED | if tag & HANDOFF_HAIRPIN != 0 { F_HAIRPIN } else { 0 };
                let meta = Meta::new(tag & !HANDOFF_HAIRPIN, frame_len(&frame), flags);
                self.vec.push(frame, meta, first);
            }
            received += n;
            self.counters.handoff_in.add(n as u64);
            t = self.record(Stage::HandoffRx, n, t);
            t = self.run_vector(now, t);
        }
        // Frames the kernel sent on host interfaces (none without them).
        if self.io.host_burst() > 0 {
            let mut n = 0;
            while let Some((port, frame)) = self.io.next_host() {
                if self.vec.is_full() {
                    t = self.record(Stage::HostRx, 0, t);
                    t = self.run_vector(now, t);
                }
                n += 1;
                let meta = Meta::new(port, frame_len(&frame), 0);
                self.vec.push(frame, meta, Stage::HostInput);
            }
            t = self.record(Stage::HostRx, n, t);
            t = self.run_vector(now, t);
        }
        if !self.frag_wait.is_empty() {
            t = self.service_frag_wait(now, t);
        }
        self.send_refreshes(now);
        // NAT expiry, amortised: at most once per millisecond, bounded work.
        if let Some(nat) = self.nat.as_mut() {
            if let Some(expired) = nat.tick(now) {
                crate::pipeline::publish_nat(nat, &self.counters);
                t = self.record(Stage::NatExpire, expired, t);
            }
        }
        if !self.hold.held.is_empty() && now != self.last_hold_service {
            self.last_hold_service = now;
            self.service_hold(now);
        }
        let report = self.io.flush_due();
        if report.packets + report.refused > 0 {
            t = self.record(Stage::PortTx, report.packets as usize, t);
        }
        self.account(report);
        self.counters.polls.inc();
        // control plane: latency per packet of this pass; the mailbox once per millisecond.
        if received > 0 {
            self.control.burst_end(received);
        }
        let served = self.control.mailbox_due(now);
        if served {
            self.control.serve_mailbox(self.nat.as_mut().map(NatPath::nat_mut), now);
        }
        // The whole pass, if it did anything (idle passes cost no extra counter read).
        if self.timing && (t != start || served) {
            self.runtime.record_pass(self.io.cycles().wrapping_sub(start));
        }
        received
    }

    /// Run the vector through the stages, in order, each over the frames that reached
    /// it; `t` is the cycle count at the start. Returns the cycle count at the end.
    fn run_vector(&mut self, now: Instant, mut t: u64) -> u64 {
        for stage in Stage::PIPELINE {
            let n = self.vec.queued(stage);
            if n == 0 {
                continue;
            }
            self.run_stage(stage, now);
            self.vec.clear(stage);
            t = self.record(stage, n, t);
        }
        self.vec.reset();
        t
    }

    /// The dispatch: one line per stage.
    #[inline]
    fn run_stage(&mut self, stage: Stage, now: Instant) {
        match stage {
            Stage::L2Input => self.l2_input(now),
            Stage::Ip4Input => self.ip4_input(),
            Stage::NatClassify => self.nat_classify(now),
            Stage::NatLookup => self.nat_lookup(),
            Stage::NatSlowpath => self.nat_slowpath(now),
            Stage::Ip4Forward => self.ip4_forward(now),
            Stage::Helper => self.helper_stage(now),
            Stage::NatRewrite => self.nat_rewrite(now),
            Stage::Ip4Local => self.ip4_local(now),
            Stage::HostPunt => self.host_punt(now),
            Stage::HostInput => self.host_input(),
            Stage::Handoff => self.handoff(),
            Stage::L2Output => self.l2_output(now),
            Stage::Drop => self.drop_stage(),
            // Poll-loop steps, not stages over the vector: nothing is ever queued there.
            Stage::PortRx | Stage::HandoffRx | Stage::HostRx | Stage::PortTx | Stage::NatExpire => {}
        }
    }

    /// Keep a later fragment that came before its first fragment until that first
    /// fragment comes (see [`crate::pipeline::fragwait`]). A fragment already run again
    /// once is dropped instead (`fragment_no_state`). Every refusal is a counted drop.
    pub(crate) fn park_fragment(&mut self, frame: Io::Frame, key: FragKey, port: u16, flags: u8, now: Instant) {
        if flags & F_RETRIED != 0 {
            self.counters.count_drop(DropReason::FragmentNoState);
            self.io.free(frame);
            return;
        }
        match self.frag_wait.park(frame, key, port, flags & (F_HANDED | F_HAIRPIN), now) {
            None => self.counters.fragments_waited.inc(),
            Some((frame, reason)) => {
                if reason != DropReason::FragmentDatagramLimit {
                    // The oldest made room: this one waits.
                    self.counters.fragments_waited.inc();
                }
                self.counters.count_drop(reason);
                self.io.free(frame);
            }
        }
        self.counters.fragments_waiting.set(self.frag_wait.len() as u64);
    }

    /// The first fragment of datagram `key` was handled (recorded here, or sent to the
    /// worker that owns it): its waiting fragments run again at the end of this pass.
    #[inline]
    pub(crate) fn wake_fragments(&mut self, key: &FragKey) {
        if !self.frag_wait.is_empty() {
            self.frag_wait.wake(key);
        }
    }

    /// Waiting fragments: those whose wait is over are dropped (`fragment_no_state`);
    /// those woken during the pass run through the pipeline again, from `nat-classify`
    /// (so a fragment whose first was sent to another worker follows it), once.
    fn service_frag_wait(&mut self, now: Instant, mut t: u64) -> u64 {
        while let Some(frame) = self.frag_wait.expired(now) {
            self.counters.count_drop(DropReason::FragmentNoState);
            self.io.free(frame);
        }
        if self.frag_wait.has_woken() {
            let mut retried = 0;
            let (wait, vec) = (&mut self.frag_wait, &mut self.vec);
            wait.take_woken(|w| {
                // FRAG_WAIT_CAPACITY (64) is below the vector's capacity: they all fit.
                debug_assert!(!vec.is_full());
                let meta = Meta::new(w.port, frame_len(&w.frame), w.flags | F_RETRIED);
                vec.push(w.frame, meta, Stage::NatClassify);
                retried += 1;
            });
            self.counters.fragments_retried.add(retried);
            t = self.run_vector(now, t);
        }
        self.counters.fragments_waiting.set(self.frag_wait.len() as u64);
        t
    }

    pub(crate) fn hold_frame(&mut self, frame: Io::Frame, port: u16, via: Ipv4Addr, now: Instant) {
        if self.hold.is_full() {
            self.counters.count_drop(DropReason::ArpHoldFull);
            self.io.free(frame);
            return;
        }
        self.counters.arp_held.inc();
        self.hold.held.push(Held { frame, port, via, deadline: now + HOLD_TIMEOUT });
        if !self.hold.resolving.iter().any(|r| r.port == port && r.via == via) {
            self.hold.resolving.push(Resolving { port, via, last_request: now });
            self.send_arp_request(port, via, now);
        }
    }

    fn send_arp_request(&mut self, port: u16, via: Ipv4Addr, now: Instant) {
        let Some(mut frame) = self.io.alloc() else { return };
        let len = self.l3.emit_arp_request(port, via, frame.room_mut(), now);
        if len > 0 && frame.set_len(len) {
            self.counters.arp_requests_sent.inc();
            self.io.tx(port, frame);
        } else {
            self.io.free(frame);
        }
    }

    /// Ask again for neighbours the router found stale while forwarding.
    fn send_refreshes(&mut self, now: Instant) {
        while let Some((port, via)) = self.l3.take_refresh() {
            self.send_arp_request(port, via, now);
        }
    }

    /// Release frames whose next hop is now known, expire the rest, re-ask on schedule.
    fn service_hold(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.hold.held.len() {
            let h = &self.hold.held[i];
            if let Some(mac) = self.l3.resolved(h.port, h.via, now) {
                let mut h = self.hold.held.remove(i);
                self.l3.fill_l2(h.port, mac, h.frame.room_mut());
                self.io.tx(h.port, h.frame);
            } else if now >= h.deadline {
                let h = self.hold.held.remove(i);
                self.counters.count_drop(DropReason::ArpUnresolved);
                self.io.free(h.frame);
            } else {
                i += 1;
            }
        }
        let held = &self.hold.held;
        self.hold.resolving.retain(|r| held.iter().any(|h| h.port == r.port && h.via == r.via));
        for k in 0..self.hold.resolving.len() {
            let r = self.hold.resolving[k];
            if now.millis_since(r.last_request) >= ARP_RETRY.as_millis() {
                self.hold.resolving[k].last_request = now;
                self.send_arp_request(r.port, r.via, now);
            }
        }
    }

    /// Free everything still held and send what is staged. Called when the loop stops.
    pub fn shutdown(&mut self) {
        for frame in self.frag_wait.drain() {
            self.counters.count_drop(DropReason::FragmentNoState);
            self.io.free(frame);
        }
        self.counters.fragments_waiting.set(0);
        if let Some(nat) = self.nat.as_ref() {
            crate::pipeline::publish_nat(nat, &self.counters);
        }
        for h in self.hold.held.drain(..) {
            self.counters.count_drop(DropReason::ArpUnresolved);
            self.io.free(h.frame);
        }
        self.hold.resolving.clear();
        let report = self.io.flush();
        self.account(report);
    }

    fn account(&self, report: TxReport) {
        self.counters.tx_packets.add(report.packets);
        self.counters.tx_bytes.add(report.bytes);
        self.counters.drops[DropReason::TxFull.index()].add(report.refused);
        self.counters.handoff_out.add(report.handed_off);
        self.counters.drops[DropReason::HandoffFull.index()].add(report.handoff_refused);
        self.counters.host_punted.add(report.punted);
        self.counters.drops[DropReason::HostPuntLimited.index()].add(report.punt_refused);
    }
}

/// A frame's length for [`Meta::len`] (frames are at most an mbuf's room, far below
/// 64 KiB; anything longer is cut to a length `l2-input` refuses).
#[inline]
fn frame_len<F: Frame>(frame: &F) -> u16 {
    u16::try_from(frame.len()).unwrap_or(0)
}
