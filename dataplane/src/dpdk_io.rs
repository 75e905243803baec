//! [`PacketIo`] over DPDK: one RX and one TX queue per port for one worker.
//!
//! Received mbufs sit in a fixed [`Burst`]; frames to send are staged per port and sent
//! when a stage fills or at the end of the pass; what a PMD refuses is freed in bulk and
//! reported, never retried blindly or leaked. Nothing here allocates after construction.

use dpdk::{Burst, Mbuf, MbufRing, MbufRingConsumer, MbufRingProducer, Mempool, RxQueue, TxQueue};

use crate::io::{Frame, PacketIo, TxReport};
use crate::time::Instant;

/// Frames per TX stage and handoff stage, and the default RX burst.
pub const BURST: usize = 32;
/// The largest RX burst (`[workers] burst`): the pipeline's vector capacity.
pub const MAX_RX_BURST: usize = crate::pipeline::MAX_BURST;

impl Frame for Mbuf {
    #[inline]
    fn bytes(&self) -> &[u8] {
        self.data()
    }

    #[inline]
    fn room_mut(&mut self) -> &mut [u8] {
        Mbuf::room_mut(self)
    }

    #[inline]
    fn set_len(&mut self, len: usize) -> bool {
        Mbuf::set_len(self, len).is_ok()
    }

    #[inline]
    fn is_contiguous(&self) -> bool {
        Mbuf::is_contiguous(self)
    }
}

/// One worker's queues on every port, plus its staging bursts.
pub struct DpdkIo {
    rxq: Vec<RxQueue>,
    txq: Vec<TxQueue>,
    pool: Mempool,
    /// Received frames, stored in reverse so `pop` yields arrival order.
    rx: Burst<MAX_RX_BURST>,
    /// Frames per RX burst (`[workers] burst`), at most [`MAX_RX_BURST`].
    rx_max: usize,
    tx: Vec<Burst<BURST>>,
    garbage: Burst<BURST>,
    report: TxReport,
    handoff: Option<HandoffRings>,
    /// TSC cycles a partly filled TX stage may wait (0: sent every pass).
    drain_cycles: u64,
    /// TSC when each port's stage got its first frame.
    staged_at: Vec<u64>,
    /// This worker's ends of the host-interface rings (see `host::pump`).
    host: Option<HostRings>,
}

/// One worker's ends of the exception path: a single-producer ring of frames for the
/// kernel's host interfaces, and the consumer end of the ring the host thread fills with
/// the kernel's frames for this worker. The port index travels in the mbuf's `port`
/// field both ways. No system call on the worker: the host thread does the TAP I/O.
pub struct HostRings {
    out: MbufRingProducer,
    stage: Burst<BURST>,
    inbound: MbufRingConsumer,
    rx: Burst<BURST>,
}

impl HostRings {
    /// The worker's ends: `out` toward the host thread, `inbound` from it.
    pub fn new(out: MbufRingProducer, inbound: MbufRingConsumer) -> HostRings {
        HostRings { out, stage: Burst::new(), inbound, rx: Burst::new() }
    }

    fn send(&mut self, report: &mut TxReport) {
        if self.stage.is_empty() {
            return;
        }
        let staged = self.stage.len() as u64;
        let moved = self.out.enqueue_burst(&mut self.stage) as u64;
        report.punted += moved;
        report.punt_refused += staged - moved;
        self.stage.clear();
    }
}

/// Slots of every handoff ring (one per ordered worker pair) unless configured
/// (`[workers] handoff_ring`).
pub const HANDOFF_RING: u32 = 4096;

/// Frames one worker stages for another: what one poll pass hands over (at most a
/// burst per port) plus the backlog a full ring left behind.
pub const HANDOFF_STAGE: usize = 512;

struct Outbound {
    ring: MbufRingProducer,
    stage: Burst<HANDOFF_STAGE>,
}

/// One worker's ends of the handoff rings: a single-producer/single-consumer ring to
/// every other worker and the consumer ends of the rings into this one. One ring per
/// pair keeps the order in which one worker handed frames to another, whatever port
/// they came from; the port index travels in the mbuf's `port` field.
///
/// **Back-pressure.** Frames for another worker are staged during the pass and moved to
/// its ring with one bulk enqueue at the end of the pass. What a full ring does not take
/// stays staged, in order, and goes first next time; while a stage has less room than
/// one more pass of receive bursts could add, [`PacketIo::rx_paused`] tells the worker
/// to leave its receive queues alone (it still reads the rings into it, so two workers
/// waiting on each other both make progress). The frames that keep arriving then wait in
/// the NIC's queues, and if those overflow the NIC counts it (`imissed`): loss, if
/// any, is where an operator looks for it, not a silent handoff drop. Only a frame that
/// finds its stage full is dropped, as `handoff_full`.
pub struct HandoffRings {
    /// `out[to]` (`None` for this worker itself).
    out: Vec<Option<Outbound>>,
    /// Rings into this worker.
    inbound: Vec<MbufRingConsumer>,
    rx: Burst<BURST>,
}

impl HandoffRings {
    /// The rings among `workers` workers: element `w` is worker `w`'s ends. Needs EAL;
    /// ring names are `masq_ho_<from>_<to>`.
    pub fn mesh(workers: u16, size: u32) -> dpdk::Result<Vec<HandoffRings>> {
        let n = usize::from(workers);
        let mut all: Vec<HandoffRings> = (0..n)
            .map(|_| HandoffRings { out: (0..n).map(|_| None).collect(), inbound: Vec::new(), rx: Burst::new() })
            .collect();
        for from in 0..n {
            for to in (0..n).filter(|&t| t != from) {
                let ring = MbufRing::new(&format!("masq_ho_{from}_{to}"), size, dpdk::SOCKET_ID_ANY)?;
                let (producer, consumer) = ring.split();
                all[from].out[to] = Some(Outbound { ring: producer, stage: Burst::new() });
                all[to].inbound.push(consumer);
            }
        }
        Ok(all)
    }

    fn flush(&mut self, report: &mut TxReport) {
        for out in self.out.iter_mut().flatten() {
            out.send(report);
        }
    }

    /// Whether some stage has less room than `room` frames.
    fn backlogged(&self, room: usize) -> bool {
        self.out.iter().flatten().any(|o| o.stage.free_space() < room)
    }
}

impl Outbound {
    /// One bulk enqueue of everything staged; what the ring does not take stays staged.
    fn send(&mut self, report: &mut TxReport) {
        if self.stage.is_empty() {
            return;
        }
        report.handed_off += self.ring.enqueue_burst(&mut self.stage) as u64;
    }
}

impl DpdkIo {
    /// `rxq[i]` and `txq[i]` are this worker's queues on port `i`.
    pub fn new(rxq: Vec<RxQueue>, txq: Vec<TxQueue>, pool: Mempool) -> DpdkIo {
        assert_eq!(rxq.len(), txq.len(), "one RX and one TX queue per port");
        let ports = txq.len();
        let tx = (0..ports).map(|_| Burst::new()).collect();
        DpdkIo {
            rxq,
            txq,
            pool,
            rx: Burst::new(),
            rx_max: BURST,
            tx,
            garbage: Burst::new(),
            report: TxReport::default(),
            handoff: None,
            drain_cycles: 0,
            staged_at: vec![0; ports],
            host: None,
        }
    }

    /// Exchange frames with the kernel's host interfaces over `rings`.
    pub fn with_host(mut self, rings: HostRings) -> DpdkIo {
        self.host = Some(rings);
        self
    }

    /// Let a partly filled TX stage wait up to `us` microseconds for more frames before
    /// it is sent (`flush_due`), as DPDK's l2fwd does: PMDs that pay a system call per
    /// burst (`net_af_packet`) send fewer, fuller bursts. 0 sends every pass.
    pub fn with_tx_drain(mut self, us: u32) -> DpdkIo {
        self.drain_cycles = dpdk::cycles::tsc_hz() / 1_000_000 * u64::from(us);
        self
    }

    /// Receive up to `n` frames per burst (`[workers] burst`; clamped to
    /// 1..=[`MAX_RX_BURST`]). The default is [`BURST`].
    pub fn with_burst(mut self, n: usize) -> DpdkIo {
        self.rx_max = n.clamp(1, MAX_RX_BURST);
        self
    }

    /// Hand frames this worker does not own to their owners over `rings`.
    pub fn with_handoff(mut self, rings: HandoffRings) -> DpdkIo {
        self.handoff = Some(rings);
        self
    }

    fn flush_port(&mut self, port: usize) {
        let stage = &mut self.tx[port];
        if stage.is_empty() {
            return;
        }
        let staged = stage.len() as u64;
        let bytes: u64 = stage.iter().map(|m| m.len() as u64).sum();
        let sent = self.txq[port].tx_burst(stage) as u64;
        let unsent_bytes: u64 = stage.iter().map(|m| m.len() as u64).sum();
        self.report.packets += sent;
        self.report.bytes += bytes - unsent_bytes;
        self.report.refused += staged - sent;
        stage.clear();
    }
}

impl PacketIo for DpdkIo {
    type Frame = Mbuf;

    fn port_count(&self) -> usize {
        self.rxq.len()
    }

    #[inline]
    fn rx_burst(&mut self, port: u16) -> usize {
        let n = self.rxq[usize::from(port)].rx_burst_up_to(&mut self.rx, self.rx_max);
        self.rx.as_mut_slice().reverse();
        // The worker reads every header of the burst first (`peek_rx`): start them all.
        for m in self.rx.as_slice() {
            m.prefetch();
        }
        n
    }

    #[inline]
    fn next_rx(&mut self) -> Option<Mbuf> {
        self.rx.pop()
    }

    #[inline]
    fn peek_rx(&self, mut f: impl FnMut(&[u8])) {
        for m in self.rx.as_slice() {
            f(m.data());
        }
    }

    #[inline]
    fn tx(&mut self, port: u16, frame: Mbuf) {
        let p = usize::from(port);
        if self.tx[p].is_full() {
            self.flush_port(p);
        }
        if self.drain_cycles != 0 && self.tx[p].is_empty() {
            self.staged_at[p] = dpdk::cycles::rdtsc();
        }
        if let Err(m) = self.tx[p].push(frame) {
            // Unreachable after the flush above; count rather than lose track.
            self.report.refused += 1;
            drop(m);
        }
    }

    fn flush_due(&mut self) -> TxReport {
        if self.drain_cycles == 0 {
            return self.flush();
        }
        let now = dpdk::cycles::rdtsc();
        for p in 0..self.tx.len() {
            if !self.tx[p].is_empty() && now.wrapping_sub(self.staged_at[p]) >= self.drain_cycles {
                self.flush_port(p);
            }
        }
        if let Some(h) = self.handoff.as_mut() {
            h.flush(&mut self.report);
        }
        if let Some(h) = self.host.as_mut() {
            h.send(&mut self.report);
        }
        self.garbage.clear();
        std::mem::take(&mut self.report)
    }

    fn flush(&mut self) -> TxReport {
        for p in 0..self.tx.len() {
            self.flush_port(p);
        }
        if let Some(h) = self.handoff.as_mut() {
            h.flush(&mut self.report);
        }
        if let Some(h) = self.host.as_mut() {
            h.send(&mut self.report);
        }
        self.garbage.clear();
        std::mem::take(&mut self.report)
    }

    #[inline]
    fn free(&mut self, frame: Mbuf) {
        if self.garbage.is_full() {
            self.garbage.clear();
        }
        if let Err(m) = self.garbage.push(frame) {
            drop(m);
        }
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        self.pool.alloc()
    }

    #[inline]
    fn cycles(&self) -> u64 {
        dpdk::cycles::rdtsc()
    }

    #[inline]
    fn handoff(&mut self, to: u16, port: u16, mut frame: Mbuf) -> Result<(), Mbuf> {
        let Some(out) = self.handoff.as_mut().and_then(|h| h.out.get_mut(usize::from(to))).and_then(Option::as_mut)
        else {
            return Err(frame);
        };
        if out.stage.is_full() {
            out.send(&mut self.report);
        }
        frame.set_port(port);
        if let Err(frame) = out.stage.push(frame) {
            // The ring and the stage are both full (RX should have paused before this).
            self.report.handoff_refused += 1;
            self.free(frame);
        }
        Ok(())
    }

    #[inline]
    fn rx_paused(&self) -> bool {
        // Room for one more pass of receive bursts (every port's), or half the stage.
        let room = (self.rxq.len() * BURST).min(HANDOFF_STAGE / 2);
        self.handoff.as_ref().is_some_and(|h| h.backlogged(room))
    }

    fn handoff_sources(&self) -> usize {
        self.handoff.as_ref().map_or(0, |h| h.inbound.len())
    }

    #[inline]
    fn handoff_burst(&mut self, source: usize) -> usize {
        let Some(h) = self.handoff.as_mut() else { return 0 };
        let Some(ring) = h.inbound.get_mut(source) else { return 0 };
        let n = ring.dequeue_burst(&mut h.rx);
        h.rx.as_mut_slice().reverse();
        // As for RX bursts: the stages read every header of the burst first.
        for m in h.rx.as_slice() {
            m.prefetch();
        }
        n
    }

    #[inline]
    fn next_handoff(&mut self) -> Option<(u16, Mbuf)> {
        let m = self.handoff.as_mut()?.rx.pop()?;
        Some((m.port(), m))
    }

    fn punt(&mut self, port: u16, mut frame: Mbuf) -> Result<(), Mbuf> {
        let Some(h) = self.host.as_mut() else { return Err(frame) };
        if h.stage.is_full() {
            h.send(&mut self.report);
        }
        frame.set_port(port);
        h.stage.push(frame)
    }

    #[inline]
    fn host_burst(&mut self) -> usize {
        let Some(h) = self.host.as_mut() else { return 0 };
        let n = h.inbound.dequeue_burst(&mut h.rx);
        h.rx.as_mut_slice().reverse();
        n
    }

    fn next_host(&mut self) -> Option<(u16, Mbuf)> {
        let m = self.host.as_mut()?.rx.pop()?;
        Some((m.port(), m))
    }
}

/// Milliseconds since start from the TSC, for the worker loop: one multiply and a shift
/// per call (no division on the poll path).
#[derive(Clone, Copy)]
pub struct TscClock {
    start: u64,
    /// Milliseconds per TSC tick, as a 64.64 fixed-point number.
    ms_per_tick: u128,
}

impl TscClock {
    pub fn new() -> TscClock {
        let hz = dpdk::cycles::tsc_hz().max(1);
        TscClock { start: dpdk::cycles::rdtsc(), ms_per_tick: (1000u128 << 64) / u128::from(hz) }
    }

    #[inline]
    pub fn now(&self) -> Instant {
        let ticks = dpdk::cycles::rdtsc().wrapping_sub(self.start);
        Instant::from_millis(((u128::from(ticks) * self.ms_per_tick) >> 64) as u64)
    }
}

impl Default for TscClock {
    fn default() -> Self {
        TscClock::new()
    }
}
