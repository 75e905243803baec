//! Per-queue handles for multi-core polling.
//!
//! DPDK RX/TX queues are not thread-safe: exactly one thread may poll a
//! queue. [`Port::rx_queue`](crate::Port::rx_queue) and
//! [`Port::tx_queue`](crate::Port::tx_queue) hand each queue id out at most
//! once; the handle is `Send`, so it can move into a closure launched on a
//! worker lcore, and its `&mut self` burst methods keep it single-threaded.
//! A handle keeps the port's state (and RX mempool) alive; while any handle
//! exists the port cannot be reconfigured, stopped or closed.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::burst::Burst;
use crate::error::{Error, Result};
use crate::port::{rx_burst_raw, tx_burst_raw, PortShared};

fn claim(shared: &Arc<PortShared>, queue: u16, configured: u16, rx: bool) -> Result<Arc<PortShared>> {
    if queue >= configured {
        return Err(Error::OutOfRange {
            what: "queue id",
            requested: usize::from(queue),
            max: usize::from(configured).saturating_sub(1),
        });
    }
    let bits = if rx { &shared.rx_claimed } else { &shared.tx_claimed };
    let q = usize::from(queue);
    let bit = 1u64 << (q % 64);
    let old = bits[q / 64].fetch_or(bit, Ordering::AcqRel);
    if old & bit != 0 {
        return Err(Error::Busy("queue already handed out"));
    }
    Ok(Arc::clone(shared))
}

/// Exclusive handle to one RX queue of a port.
pub struct RxQueue {
    shared: Arc<PortShared>,
    queue: u16,
}

impl RxQueue {
    pub(crate) fn claim(shared: &Arc<PortShared>, queue: u16) -> Result<RxQueue> {
        let shared = claim(shared, queue, shared.nb_rx, true)?;
        Ok(RxQueue { shared, queue })
    }

    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.shared.id
    }

    /// Queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Receive into the free space of `burst`; returns how many mbufs were
    /// added (0 while the port is stopped).
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        self.rx_burst_up_to(burst, N)
    }

    /// As [`rx_burst`](Self::rx_burst), receiving at most `max` mbufs (a burst size
    /// chosen at run time below the burst's capacity).
    #[inline]
    pub fn rx_burst_up_to<const N: usize>(&mut self, burst: &mut Burst<N>, max: usize) -> usize {
        // SAFETY: the queue was configured when claimed, cannot be
        // reconfigured while this handle lives, and this handle is its only
        // user (`&mut self`, claimed once).
        unsafe { rx_burst_raw(self.shared.id, self.queue, burst, max) }
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        PortShared::release(&self.shared.rx_claimed, self.queue);
    }
}

impl fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RxQueue").field("port", &self.shared.id).field("queue", &self.queue).finish()
    }
}

/// Exclusive handle to one TX queue of a port.
pub struct TxQueue {
    shared: Arc<PortShared>,
    queue: u16,
}

impl TxQueue {
    pub(crate) fn claim(shared: &Arc<PortShared>, queue: u16) -> Result<TxQueue> {
        let shared = claim(shared, queue, shared.nb_tx, false)?;
        Ok(TxQueue { shared, queue })
    }

    /// Port id.
    pub fn port_id(&self) -> u16 {
        self.shared.id
    }

    /// Queue id.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Send from the front of `burst`; returns how many the driver took.
    /// The refused rest stays in `burst`, owned.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        // SAFETY: as `RxQueue::rx_burst`.
        unsafe { tx_burst_raw(self.shared.id, self.queue, burst) }
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        PortShared::release(&self.shared.tx_claimed, self.queue);
    }
}

impl fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxQueue").field("port", &self.shared.id).field("queue", &self.queue).finish()
    }
}
