//! The poll loop: one per worker core, generic over [`PacketIo`] so tests run it in memory.
//!
//! Each pass receives a burst from every port, runs each frame through the [`Router`]
//! (which counts its own drops), stages what must go out per port, parks frames whose next
//! hop is still being resolved, and flushes. Nothing here allocates after construction:
//! the hold queue's capacity is fixed up front. Once per millisecond it lets the NAT
//! expire what is due, with a bounded budget ([`Router::nat_tick`]).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::control_plane::WorkerControl; // control plane
use crate::counters::WorkerCounters;
use crate::io::{Frame, PacketIo, TxReport};
use crate::l3::router::{Router, Verdict};
use crate::nat::WorkerNat; // control plane
use crate::stats::DropReason;
use crate::time::{Duration, Instant};

/// How long a packet may wait for its next hop's ARP reply.
pub const HOLD_TIMEOUT: Duration = Duration::from_millis(3000);
/// Interval between ARP requests for the same unresolved next hop.
pub const ARP_RETRY: Duration = Duration::from_millis(1000);
/// Frames one worker holds at most while resolving next hops.
pub const HOLD_CAPACITY: usize = 256;
/// Fragments one worker parks at most while waiting for their first fragment.
pub const DEFER_CAPACITY: usize = 64;
/// How long a fragment waits for its first fragment (the NAT's fragment state lifetime).
pub const DEFER_TIMEOUT: Duration = Duration::from_millis(2000);

/// A frame the router could not handle yet (see [`Verdict::Defer`]).
struct Deferred<F> {
    frame: F,
    port: u16,
    deadline: Instant,
}

/// control plane: the NAT the worker's mailbox answers from (none: a plain router, and
/// `sessions.*` answer empty).
fn router_nat(router: &mut Router) -> Option<&mut WorkerNat> {
    router.nat_mut().map(|path| path.nat_mut())
}

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

/// One poll-mode worker: its I/O, its router and its counters.
pub struct Worker<Io: PacketIo> {
    io: Io,
    router: Router,
    hold: HoldQueue<Io::Frame>,
    /// Out-of-order fragments waiting for their first fragment (fixed capacity), and an
    /// equally sized spare that retries swap with, so nothing allocates after `new`.
    deferred: Vec<Deferred<Io::Frame>>,
    deferred_spare: Vec<Deferred<Io::Frame>>,
    counters: Arc<WorkerCounters>,
    last_hold_service: Instant,
    /// control plane: mailbox and latency probe (see `with_control`).
    control: WorkerControl,
}

impl<Io: PacketIo> Worker<Io> {
    pub fn new(io: Io, router: Router, counters: Arc<WorkerCounters>) -> Self {
        Worker {
            io,
            router,
            hold: HoldQueue::with_capacity(HOLD_CAPACITY),
            deferred: Vec::with_capacity(DEFER_CAPACITY),
            deferred_spare: Vec::with_capacity(DEFER_CAPACITY),
            counters,
            last_hold_service: Instant::ZERO,
            control: WorkerControl::default(),
        }
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

    pub fn router(&self) -> &Router {
        &self.router
    }

    pub fn router_mut(&mut self) -> &mut Router {
        &mut self.router
    }

    /// Frames currently waiting for ARP resolution.
    pub fn held(&self) -> usize {
        self.hold.held.len()
    }

    /// Fragments currently parked waiting for their first fragment.
    pub fn deferred(&self) -> usize {
        self.deferred.len()
    }

    /// Poll until `stop` is set, reading the time from `clock` once per pass.
    pub fn run(&mut self, stop: &AtomicBool, mut clock: impl FnMut() -> Instant) {
        while !stop.load(Ordering::Relaxed) {
            self.poll(clock());
        }
        self.shutdown();
    }

    /// One pass over every port. Returns the number of frames received.
    pub fn poll(&mut self, now: Instant) -> usize {
        let mut received = 0;
        for port in 0..self.io.port_count() as u16 {
            if self.io.rx_burst(port) == 0 {
                continue;
            }
            if received == 0 {
                self.control.burst_begin(); // control plane: latency of this pass
            }
            // Start every session lookup of the burst before handling the first packet:
            // the index slots, then the session records they point to.
            if self.router.has_nat() {
                let (io, router) = (&self.io, &self.router);
                io.peek_rx(|frame| router.prefetch(port, frame, false));
                io.peek_rx(|frame| router.prefetch(port, frame, true));
            }
            while let Some(frame) = self.io.next_rx() {
                received += 1;
                self.handle(port, frame, now);
            }
        }
        // Frames other workers received but this one owns (multi-worker only).
        for source in 0..self.io.handoff_sources() {
            if self.io.handoff_burst(source) == 0 {
                continue;
            }
            if received == 0 {
                self.control.burst_begin();
            }
            while let Some((port, frame)) = self.io.next_handoff() {
                received += 1;
                self.counters.handoff_in.inc();
                if let Some(frame) = self.dispatch(port, frame, now) {
                    self.park(Deferred { frame, port, deadline: now + DEFER_TIMEOUT });
                }
            }
        }
        if !self.deferred.is_empty() {
            self.retry_deferred(received > 0, now);
        }
        self.send_refreshes(now);
        // NAT expiry, amortised: at most once per millisecond, bounded work.
        self.router.nat_tick(now);
        if !self.hold.held.is_empty() && now != self.last_hold_service {
            self.last_hold_service = now;
            self.service_hold(now);
        }
        let report = self.io.flush_due();
        self.account(report);
        self.counters.polls.inc();
        // control plane: latency per packet of this pass; the mailbox once per millisecond.
        if received > 0 {
            self.control.burst_end(received);
        }
        if self.control.mailbox_due(now) {
            self.control.serve_mailbox(router_nat(&mut self.router), now);
        }
        received
    }

    #[inline]
    fn handle(&mut self, port: u16, frame: Io::Frame, now: Instant) {
        self.counters.rx_packets.inc();
        self.counters.rx_bytes.add(frame.len() as u64);
        if !frame.is_contiguous() {
            self.counters.count_drop(DropReason::MultiSegment);
            self.io.free(frame);
            return;
        }
        // With several workers: the owner of the packet's session handles it.
        if let Some(owner) = self.router.steer(port, frame.bytes(), now) {
            self.hand_off(owner, port, frame);
            return;
        }
        if let Some(frame) = self.dispatch(port, frame, now) {
            self.park(Deferred { frame, port, deadline: now + DEFER_TIMEOUT });
        }
    }

    /// Run one frame through the router and act on the verdict. A frame the router
    /// defers is handed back, unmodified, for the caller to park.
    #[inline]
    fn dispatch(&mut self, port: u16, mut frame: Io::Frame, now: Instant) -> Option<Io::Frame> {
        let len = frame.len();
        match self.router.process(port, frame.room_mut(), len, now) {
            Verdict::Tx { port, len } => {
                if frame.set_len(len) {
                    self.io.tx(port, frame);
                } else {
                    self.counters.count_drop(DropReason::IcmpErrorSuppressed);
                    self.io.free(frame);
                }
            }
            Verdict::Resolve { port, via, len } => {
                if !frame.set_len(len) {
                    self.counters.count_drop(DropReason::IcmpErrorSuppressed);
                    self.io.free(frame);
                } else {
                    self.hold_frame(frame, port, via, now);
                }
            }
            Verdict::Drop => self.io.free(frame),
            Verdict::Defer => return Some(frame),
            Verdict::Handoff { worker } => self.hand_off(worker, port, frame),
        }
        None
    }

    fn park(&mut self, d: Deferred<Io::Frame>) {
        if self.deferred.len() < self.deferred.capacity() {
            self.deferred.push(d);
        } else {
            self.counters.count_drop(DropReason::FragmentNoState);
            self.io.free(d.frame);
        }
    }

    /// Parked fragments: offered to the router again after a pass that received frames
    /// (their first fragment may have come), dropped as `fragment_no_state` when their
    /// time is up. Order is kept.
    fn retry_deferred(&mut self, received: bool, now: Instant) {
        let mut pending = std::mem::take(&mut self.deferred);
        std::mem::swap(&mut self.deferred, &mut self.deferred_spare);
        for d in pending.drain(..) {
            if now >= d.deadline {
                self.counters.count_drop(DropReason::FragmentNoState);
                self.io.free(d.frame);
            } else if !received {
                self.park(d);
            } else if let Some(frame) = self.dispatch(d.port, d.frame, now) {
                self.park(Deferred { frame, ..d });
            }
        }
        self.deferred_spare = pending;
    }

    fn hold_frame(&mut self, frame: Io::Frame, port: u16, via: Ipv4Addr, now: Instant) {
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
        let len = self.router.emit_arp_request(port, via, frame.room_mut(), now);
        if len > 0 && frame.set_len(len) {
            self.counters.arp_requests_sent.inc();
            self.io.tx(port, frame);
        } else {
            self.io.free(frame);
        }
    }

    /// Ask again for neighbours the router found stale while forwarding.
    fn send_refreshes(&mut self, now: Instant) {
        while let Some((port, via)) = self.router.take_refresh() {
            self.send_arp_request(port, via, now);
        }
    }

    /// Release frames whose next hop is now known, expire the rest, re-ask on schedule.
    fn service_hold(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.hold.held.len() {
            let h = &self.hold.held[i];
            if let Some(mac) = self.router.resolved(h.port, h.via, now) {
                let mut h = self.hold.held.remove(i);
                self.router.fill_l2(h.port, mac, h.frame.room_mut());
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
        for d in self.deferred.drain(..) {
            self.counters.count_drop(DropReason::FragmentNoState);
            self.io.free(d.frame);
        }
        self.router.nat_publish();
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
    }

    /// Give `frame` (received on `port`) to worker `to`, which owns it.
    fn hand_off(&mut self, to: u16, port: u16, frame: Io::Frame) {
        if let Err(frame) = self.io.handoff(to, port, frame) {
            // No ring to that worker: a configuration the daemon never builds.
            self.counters.count_drop(DropReason::HandoffFull);
            self.io.free(frame);
        }
    }
}
