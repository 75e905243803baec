//! The worker's view of packet I/O: a small, burst-shaped trait.
//!
//! The DPDK implementation (`dpdk_io`, feature `dpdk`) moves mbufs between a port's queues
//! and fixed-size bursts; [`mem::MemIo`] moves heap buffers between in-memory queues so the
//! real worker loop runs in unit tests without DPDK.

/// One packet buffer owned by the worker.
pub trait Frame {
    /// The frame's bytes.
    fn bytes(&self) -> &[u8];
    /// The frame's bytes plus the buffer's tailroom, writable, from the first byte of the
    /// frame. A pipeline that builds a longer packet in place writes here, then the
    /// worker calls [`Frame::set_len`].
    fn room_mut(&mut self) -> &mut [u8];
    /// Set the frame length (at most `room_mut().len()`); false if it does not fit.
    fn set_len(&mut self, len: usize) -> bool;
    /// Whether the frame is one contiguous segment (multi-segment frames are dropped).
    fn is_contiguous(&self) -> bool;
    /// Frame length in bytes.
    fn len(&self) -> usize {
        self.bytes().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What a flush sent and what the ports refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxReport {
    pub packets: u64,
    pub bytes: u64,
    /// Packets the port did not take (freed, to be counted as `tx_full`).
    pub refused: u64,
    /// Packets handed to other workers' rings.
    pub handed_off: u64,
    /// Packets handed off when the stage to their worker was full: its ring had taken
    /// nothing for a while (freed, to be counted as `handoff_full`).
    pub handoff_refused: u64,
    /// Frames handed toward the kernel's host interfaces.
    pub punted: u64,
    /// Frames for the kernel a full host ring did not take (freed, to be counted as
    /// `host_punt_limited`).
    pub punt_refused: u64,
}

impl TxReport {
    pub fn merge(&mut self, other: TxReport) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.refused += other.refused;
        self.handed_off += other.handed_off;
        self.handoff_refused += other.handoff_refused;
        self.punted += other.punted;
        self.punt_refused += other.punt_refused;
    }
}

/// A worker's packet I/O: its own RX/TX queue on every port, and a buffer pool.
pub trait PacketIo {
    type Frame: Frame;

    /// Number of ports.
    fn port_count(&self) -> usize;
    /// Receive up to a burst from `port` into the RX buffer; returns how many arrived.
    fn rx_burst(&mut self, port: u16) -> usize;
    /// Take the next received frame, in arrival order.
    fn next_rx(&mut self) -> Option<Self::Frame>;
    /// Look at every frame of the current burst (not yet taken), in any order.
    fn peek_rx(&self, mut f: impl FnMut(&[u8])) {
        let _ = &mut f;
    }
    /// Stage `frame` for transmission on `port` (sent when the stage fills or on flush).
    fn tx(&mut self, port: u16, frame: Self::Frame);
    /// Send everything staged; report what went and what was refused since the last flush.
    fn flush(&mut self) -> TxReport;
    /// End of a poll pass: send what is due (a backend may hold a partly filled stage
    /// back for a bounded time to send it with more); report as [`PacketIo::flush`].
    fn flush_due(&mut self) -> TxReport {
        self.flush()
    }
    /// Free a frame (drops are freed in bulk where the backend can).
    fn free(&mut self, frame: Self::Frame);
    /// A fresh empty frame for a packet the worker originates (ARP requests).
    fn alloc(&mut self) -> Option<Self::Frame>;

    /// The CPU's cycle counter (the TSC on DPDK), read between pipeline stages for the
    /// per-stage runtime table; a backend without one returns 0.
    fn cycles(&self) -> u64 {
        0
    }

    /// Stage `frame`, received on `port`, for worker `to` (sent with the next flush,
    /// counted in its [`TxReport`]; what the ring cannot take yet stays staged, see
    /// [`PacketIo::rx_paused`]). A backend without handoff gives the frame back.
    /// `port` travels with the frame untouched (the pipeline keeps a flag in its top
    /// bit, `pipeline::HANDOFF_HAIRPIN`).
    fn handoff(&mut self, to: u16, port: u16, frame: Self::Frame) -> Result<(), Self::Frame> {
        let _ = (to, port);
        Err(frame)
    }

    /// Back-pressure: true while a handoff stage holds frames a busy worker's ring has
    /// not taken and has too little room left for another pass of receive bursts. The
    /// worker then leaves its receive queues alone for the pass (the frames wait in the
    /// NIC's queues, which count what overflows as `imissed`) but still reads the
    /// rings into it, so workers waiting on each other all make progress.
    fn rx_paused(&self) -> bool {
        false
    }

    /// Number of rings other workers hand this one frames on.
    fn handoff_sources(&self) -> usize {
        0
    }

    /// Receive up to a burst from handoff ring `source`; returns how many arrived.
    fn handoff_burst(&mut self, source: usize) -> usize {
        let _ = source;
        0
    }

    /// Take the next frame received by [`PacketIo::handoff_burst`] with the port it
    /// arrived on.
    fn next_handoff(&mut self) -> Option<(u16, Self::Frame)> {
        None
    }

    /// Stage `frame` for the kernel's host interface of `port` (sent with the next flush,
    /// counted in its [`TxReport`]). A backend without host interfaces gives it back.
    fn punt(&mut self, port: u16, frame: Self::Frame) -> Result<(), Self::Frame> {
        let _ = port;
        Err(frame)
    }

    /// Receive up to a burst of frames the kernel sent on host interfaces; returns how
    /// many arrived.
    fn host_burst(&mut self) -> usize {
        0
    }

    /// Take the next frame received by [`PacketIo::host_burst`] with the port whose host
    /// interface sent it.
    fn next_host(&mut self) -> Option<(u16, Self::Frame)> {
        None
    }
}

/// In-memory I/O for tests: frames are `Vec<u8>`s with fixed room.
pub mod mem {
    use super::{Frame, PacketIo, TxReport};
    use std::cell::{Cell, RefCell};
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// In-memory handoff between workers driven by one test thread: one queue (the
    /// "ring" into that worker) per destination worker of `(port, frame)`.
    pub type MemRings = Rc<RefCell<Vec<VecDeque<(u16, MemFrame)>>>>;

    /// Handoff queues for `workers` workers.
    pub fn rings(workers: usize) -> MemRings {
        Rc::new(RefCell::new(vec![VecDeque::new(); workers]))
    }

    /// Room of every in-memory frame, like a 2 KiB mbuf data room.
    pub const ROOM: usize = 2048;

    /// A heap frame with mbuf-like room.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct MemFrame {
        buf: Vec<u8>,
        len: usize,
    }

    impl MemFrame {
        pub fn from_bytes(bytes: &[u8]) -> MemFrame {
            let mut buf = vec![0u8; ROOM.max(bytes.len())];
            buf[..bytes.len()].copy_from_slice(bytes);
            MemFrame { buf, len: bytes.len() }
        }
    }

    impl Frame for MemFrame {
        fn bytes(&self) -> &[u8] {
            &self.buf[..self.len]
        }
        fn room_mut(&mut self) -> &mut [u8] {
            &mut self.buf
        }
        fn set_len(&mut self, len: usize) -> bool {
            if len > self.buf.len() {
                return false;
            }
            self.len = len;
            true
        }
        fn is_contiguous(&self) -> bool {
            true
        }
    }

    /// Per-port input queues and output lists.
    #[derive(Debug, Default)]
    pub struct MemIo {
        pub input: Vec<VecDeque<MemFrame>>,
        pub output: Vec<Vec<MemFrame>>,
        pub burst: usize,
        /// Frames that may still be allocated (simulates pool exhaustion).
        pub alloc_budget: usize,
        /// Accept at most this many frames per flush per port (simulates a full TX ring).
        pub tx_limit: usize,
        rx: VecDeque<MemFrame>,
        staged: Vec<Vec<MemFrame>>,
        pub freed: usize,
        /// This worker's index and the shared handoff queues (see [`rings`]).
        pub handoff: Option<(u16, MemRings)>,
        /// Frames a destination's queue holds at most (its ring; 0: a worker that never
        /// reads it). What does not fit stays staged, as on DPDK.
        pub handoff_ring: usize,
        /// Frames staged per destination at most; a frame beyond is `handoff_refused`.
        pub handoff_stage: usize,
        /// Frames staged for each destination, oldest first.
        staged_handoff: Vec<VecDeque<(u16, MemFrame)>>,
        refused_handoffs: u64,
        handed_total: u64,
        handoff_rx: VecDeque<(u16, MemFrame)>,
        /// Host interfaces: whether punting works at all (none: `punt` gives frames back).
        pub host: bool,
        /// Frames punted to the kernel, with their port (what the kernel received).
        pub host_out: Vec<(u16, MemFrame)>,
        /// Frames the kernel sends, with the port whose host interface sent them.
        pub host_in: VecDeque<(u16, MemFrame)>,
        /// Frames punted per flush at most (simulates a full host ring); the rest are freed.
        pub punt_limit: usize,
        punt_staged: Vec<(u16, MemFrame)>,
        host_rx: VecDeque<(u16, MemFrame)>,
        /// A fake cycle counter: advances by `cycle_step` at every read.
        clock: Cell<u64>,
        pub cycle_step: u64,
    }

    impl MemIo {
        pub fn new(ports: usize) -> MemIo {
            MemIo {
                input: vec![VecDeque::new(); ports],
                output: vec![Vec::new(); ports],
                burst: 32,
                alloc_budget: usize::MAX,
                tx_limit: usize::MAX,
                rx: VecDeque::new(),
                staged: vec![Vec::new(); ports],
                freed: 0,
                handoff: None,
                handoff_ring: usize::MAX,
                handoff_stage: 512,
                staged_handoff: Vec::new(),
                refused_handoffs: 0,
                handed_total: 0,
                handoff_rx: VecDeque::new(),
                host: false,
                host_out: Vec::new(),
                host_in: VecDeque::new(),
                punt_limit: usize::MAX,
                punt_staged: Vec::new(),
                host_rx: VecDeque::new(),
                clock: Cell::new(0),
                cycle_step: 100,
            }
        }

        /// With host interfaces: `punt` takes frames into [`MemIo::host_out`].
        pub fn with_host(mut self) -> MemIo {
            self.host = true;
            self
        }

        /// Queue a frame as if the kernel sent it on `port`'s host interface.
        pub fn inject_host(&mut self, port: u16, bytes: &[u8]) {
            self.host_in.push_back((port, MemFrame::from_bytes(bytes)));
        }

        /// Take everything punted to `port`'s host interface so far.
        pub fn take_host_output(&mut self, port: u16) -> Vec<Vec<u8>> {
            let (mine, rest): (Vec<_>, Vec<_>) = self.host_out.drain(..).partition(|(p, _)| *p == port);
            self.host_out = rest;
            mine.into_iter().map(|(_, f)| f.bytes().to_vec()).collect()
        }

        /// Join worker `me` to the handoff queues `rings`.
        pub fn with_handoff(mut self, me: u16, rings: MemRings) -> MemIo {
            self.staged_handoff = (0..rings.borrow().len()).map(|_| VecDeque::new()).collect();
            self.handoff = Some((me, rings));
            self
        }

        /// Frames staged for worker `to` that its queue has not taken yet.
        pub fn handoff_backlog(&self, to: u16) -> usize {
            self.staged_handoff.get(usize::from(to)).map_or(0, VecDeque::len)
        }

        /// Queue a frame as if it arrived on `port`.
        pub fn inject(&mut self, port: u16, bytes: &[u8]) {
            self.input[usize::from(port)].push_back(MemFrame::from_bytes(bytes));
        }

        /// Take everything sent on `port` so far.
        pub fn take_output(&mut self, port: u16) -> Vec<Vec<u8>> {
            self.output[usize::from(port)].drain(..).map(|f| f.bytes().to_vec()).collect()
        }
    }

    impl PacketIo for MemIo {
        type Frame = MemFrame;

        fn port_count(&self) -> usize {
            self.input.len()
        }
        fn rx_burst(&mut self, port: u16) -> usize {
            let q = &mut self.input[usize::from(port)];
            let n = q.len().min(self.burst);
            self.rx.extend(q.drain(..n));
            n
        }
        fn next_rx(&mut self) -> Option<MemFrame> {
            self.rx.pop_front()
        }
        fn peek_rx(&self, mut f: impl FnMut(&[u8])) {
            for frame in &self.rx {
                f(frame.bytes());
            }
        }
        fn tx(&mut self, port: u16, frame: MemFrame) {
            self.staged[usize::from(port)].push(frame);
        }
        fn flush(&mut self) -> TxReport {
            let mut r = TxReport::default();
            for (port, staged) in self.staged.iter_mut().enumerate() {
                for (i, f) in staged.drain(..).enumerate() {
                    if i < self.tx_limit {
                        r.packets += 1;
                        r.bytes += f.len() as u64;
                        self.output[port].push(f);
                    } else {
                        r.refused += 1;
                        self.freed += 1;
                    }
                }
            }
            if let Some((_, rings)) = &self.handoff {
                let mut rings = rings.borrow_mut();
                for (q, stage) in rings.iter_mut().zip(&mut self.staged_handoff) {
                    let n = stage.len().min(self.handoff_ring.saturating_sub(q.len()));
                    q.extend(stage.drain(..n));
                    self.handed_total += n as u64;
                }
            }
            r.handed_off = std::mem::take(&mut self.handed_total);
            r.handoff_refused = std::mem::take(&mut self.refused_handoffs);
            for (i, (port, f)) in self.punt_staged.drain(..).enumerate() {
                if i < self.punt_limit {
                    r.punted += 1;
                    self.host_out.push((port, f));
                } else {
                    r.punt_refused += 1;
                    self.freed += 1;
                }
            }
            r
        }
        fn free(&mut self, _frame: MemFrame) {
            self.freed += 1;
        }
        fn cycles(&self) -> u64 {
            let now = self.clock.get().wrapping_add(self.cycle_step);
            self.clock.set(now);
            now
        }
        fn alloc(&mut self) -> Option<MemFrame> {
            if self.alloc_budget == 0 {
                return None;
            }
            self.alloc_budget -= 1;
            Some(MemFrame { buf: vec![0u8; ROOM], len: 0 })
        }
        fn handoff(&mut self, to: u16, port: u16, frame: MemFrame) -> Result<(), MemFrame> {
            let Some(stage) = self.staged_handoff.get_mut(usize::from(to)) else { return Err(frame) };
            if stage.len() >= self.handoff_stage {
                self.refused_handoffs += 1;
                self.freed += 1;
                return Ok(());
            }
            stage.push_back((port, frame));
            Ok(())
        }
        fn rx_paused(&self) -> bool {
            let room = (self.input.len() * self.burst).min(self.handoff_stage / 2);
            self.staged_handoff.iter().any(|s| self.handoff_stage - s.len().min(self.handoff_stage) < room)
        }
        fn handoff_sources(&self) -> usize {
            usize::from(self.handoff.is_some())
        }
        fn handoff_burst(&mut self, _source: usize) -> usize {
            let Some((me, rings)) = &self.handoff else { return 0 };
            let mut rings = rings.borrow_mut();
            let q = &mut rings[usize::from(*me)];
            let n = q.len().min(self.burst);
            self.handoff_rx.extend(q.drain(..n));
            n
        }
        fn next_handoff(&mut self) -> Option<(u16, MemFrame)> {
            self.handoff_rx.pop_front()
        }
        fn punt(&mut self, port: u16, frame: MemFrame) -> Result<(), MemFrame> {
            if !self.host {
                return Err(frame);
            }
            self.punt_staged.push((port, frame));
            Ok(())
        }
        fn host_burst(&mut self) -> usize {
            let n = self.host_in.len().min(self.burst);
            let drained: Vec<_> = self.host_in.drain(..n).collect();
            self.host_rx.extend(drained);
            n
        }
        fn next_host(&mut self) -> Option<(u16, MemFrame)> {
            self.host_rx.pop_front()
        }
    }
}
