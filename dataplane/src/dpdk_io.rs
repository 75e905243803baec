//! [`PacketIo`] over DPDK: one RX and one TX queue per port for one worker.
//!
//! Received mbufs sit in a fixed [`Burst`]; frames to send are staged per port and sent
//! when a stage fills or at the end of the pass; what a PMD refuses is freed in bulk and
//! reported, never retried blindly or leaked. Nothing here allocates after construction.

use dpdk::{Burst, Mbuf, Mempool, RxQueue, TxQueue};

use crate::io::{Frame, PacketIo, TxReport};
use crate::time::Instant;

/// Frames per RX burst and per TX stage.
pub const BURST: usize = 32;

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
    rx: Burst<BURST>,
    tx: Vec<Burst<BURST>>,
    garbage: Burst<BURST>,
    report: TxReport,
}

impl DpdkIo {
    /// `rxq[i]` and `txq[i]` are this worker's queues on port `i`.
    pub fn new(rxq: Vec<RxQueue>, txq: Vec<TxQueue>, pool: Mempool) -> DpdkIo {
        assert_eq!(rxq.len(), txq.len(), "one RX and one TX queue per port");
        let tx = (0..txq.len()).map(|_| Burst::new()).collect();
        DpdkIo { rxq, txq, pool, rx: Burst::new(), tx, garbage: Burst::new(), report: TxReport::default() }
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
        let n = self.rxq[usize::from(port)].rx_burst(&mut self.rx);
        self.rx.as_mut_slice().reverse();
        if let Some(first) = self.rx.as_slice().last() {
            first.prefetch();
        }
        n
    }

    #[inline]
    fn next_rx(&mut self) -> Option<Mbuf> {
        let m = self.rx.pop();
        // Prefetch one ahead while this one is processed.
        if let Some(next) = self.rx.as_slice().last() {
            next.prefetch();
        }
        m
    }

    #[inline]
    fn tx(&mut self, port: u16, frame: Mbuf) {
        let p = usize::from(port);
        if self.tx[p].is_full() {
            self.flush_port(p);
        }
        if let Err(m) = self.tx[p].push(frame) {
            // Unreachable after the flush above; count rather than lose track.
            self.report.refused += 1;
            drop(m);
        }
    }

    fn flush(&mut self) -> TxReport {
        for p in 0..self.tx.len() {
            self.flush_port(p);
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
}

/// Milliseconds since start from the TSC, for the worker loop.
#[derive(Clone, Copy)]
pub struct TscClock {
    start: u64,
    hz: u64,
}

impl TscClock {
    pub fn new() -> TscClock {
        TscClock { start: dpdk::cycles::rdtsc(), hz: dpdk::cycles::tsc_hz().max(1) }
    }

    #[inline]
    pub fn now(&self) -> Instant {
        let ticks = dpdk::cycles::rdtsc().wrapping_sub(self.start);
        Instant::from_millis((u128::from(ticks) * 1000 / u128::from(self.hz)) as u64)
    }
}

impl Default for TscClock {
    fn default() -> Self {
        TscClock::new()
    }
}
