//! The per-worker event ring: one producer (the worker), one consumer (the logging
//! thread), bounded, lock-free and wait-free ([`rtrb`]).
//!
//! [`LogSink`] is the worker's end. [`push`](LogSink::push) copies a 40-byte
//! [`NatEvent`] into a preallocated slot: no allocation, no lock, no syscall. A full
//! ring refuses the event and counts it (`log_events_dropped`); the worker never waits
//! for the logging thread. [`LogDrain`] is the logging thread's end.
//!
//! Sizing: the ring must hold what a worker produces between two drains of the
//! logging thread (it drains every few milliseconds). At 1 M new sessions per second a
//! worker produces about 1 000 events per millisecond with session logging, so the
//! default of 65 536 slots (2.5 MiB) absorbs tens of milliseconds of stall.

use super::event::{EventKind, NatEvent};
use super::EventMask;

/// Default slots per worker ring.
pub const DEFAULT_RING: usize = 65536;

/// Counters of one worker's sink: plain integers the worker publishes with its other
/// counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SinkCounters {
    /// Events written to the ring.
    pub events: u64,
    /// Events refused because the ring was full.
    pub dropped: u64,
}

/// A worker's end of its event ring.
pub struct LogSink {
    tx: rtrb::Producer<NatEvent>,
    worker: u8,
    mask: EventMask,
    counters: SinkCounters,
}

/// The logging thread's end of one worker's ring.
pub struct LogDrain {
    rx: rtrb::Consumer<NatEvent>,
    worker: u8,
}

/// A ring of `capacity` events for worker `worker`, producing the events of `mask`.
pub fn ring(capacity: usize, worker: u8, mask: EventMask) -> (LogSink, LogDrain) {
    let (tx, rx) = rtrb::RingBuffer::new(capacity.max(1));
    (LogSink { tx, worker, mask, counters: SinkCounters::default() }, LogDrain { rx, worker })
}

impl LogSink {
    /// Which events this sink wants: check before building one.
    #[inline]
    pub fn mask(&self) -> EventMask {
        self.mask
    }

    /// Whether events of `kind` are logged.
    #[inline]
    pub fn wants(&self, kind: EventKind) -> bool {
        self.mask.wants(kind)
    }

    /// Queue `event` for the logging thread; a full ring drops it and counts the drop.
    /// Returns whether it was queued.
    #[inline]
    pub fn push(&mut self, event: NatEvent) -> bool {
        match self.tx.push(event.on_worker(self.worker)) {
            Ok(()) => {
                self.counters.events += 1;
                true
            }
            Err(_) => {
                self.counters.dropped += 1;
                false
            }
        }
    }

    pub fn counters(&self) -> SinkCounters {
        self.counters
    }

    pub fn worker(&self) -> u8 {
        self.worker
    }

    /// Whether the logging thread is gone (its end dropped).
    pub fn is_abandoned(&self) -> bool {
        self.tx.is_abandoned()
    }
}

impl LogDrain {
    /// Hand up to `max` queued events, oldest first, to `f`. Returns how many.
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&NatEvent)) -> usize {
        let n = self.rx.slots().min(max);
        if n == 0 {
            return 0;
        }
        let Ok(chunk) = self.rx.read_chunk(n) else { return 0 };
        let (a, b) = chunk.as_slices();
        a.iter().chain(b).for_each(&mut f);
        chunk.commit_all();
        n
    }

    /// Events waiting.
    pub fn pending(&self) -> usize {
        self.rx.slots()
    }

    pub fn worker(&self) -> u8 {
        self.worker
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::{Endpoint, Proto};
    use std::net::Ipv4Addr;

    fn ev(i: u16) -> NatEvent {
        let ep = |p| Endpoint::new(Ipv4Addr::new(100, 64, 0, 2), p);
        NatEvent::session(EventKind::SessionCreate, u64::from(i), Proto::Udp, ep(i), ep(i), ep(i))
    }

    #[test]
    fn full_ring_drops_and_counts_never_blocks() {
        let (mut tx, mut rx) = ring(4, 2, EventMask::SESSIONS);
        for i in 0..6 {
            tx.push(ev(i));
        }
        assert_eq!(tx.counters(), SinkCounters { events: 4, dropped: 2 });
        let mut seen = Vec::new();
        assert_eq!(rx.drain(usize::MAX, |e| seen.push((e.time_ms, e.worker))), 4);
        assert_eq!(seen, vec![(0, 2), (1, 2), (2, 2), (3, 2)], "oldest first, stamped with the worker");
        // Room again after the drain.
        assert!(tx.push(ev(9)));
        assert_eq!(rx.pending(), 1);
        assert_eq!(rx.drain(0, |_| {}), 0, "a zero budget takes nothing");
        assert_eq!(rx.drain(1, |e| assert_eq!(e.time_ms, 9)), 1);
    }

    #[test]
    fn drains_across_the_wrap() {
        let (mut tx, mut rx) = ring(3, 0, EventMask::SESSIONS);
        let mut next = 0u16;
        let mut got = Vec::new();
        for _ in 0..10 {
            while tx.push(ev(next)) {
                next += 1;
            }
            rx.drain(2, |e| got.push(e.time_ms));
        }
        rx.drain(usize::MAX, |e| got.push(e.time_ms));
        assert_eq!(got, (0..u64::from(next)).collect::<Vec<_>>(), "in order, none lost or doubled");
    }

    #[test]
    fn a_consumer_on_another_thread_sees_every_event() {
        let (mut tx, mut rx) = ring(64, 1, EventMask::SESSIONS);
        let n = 10_000u64;
        let consumer = std::thread::spawn(move || {
            let mut seen = 0u64;
            let mut expect = 0u64;
            while seen < n {
                seen += rx.drain(usize::MAX, |e| {
                    assert_eq!(e.time_ms, expect);
                    expect += 1;
                }) as u64;
                std::thread::yield_now();
            }
            seen
        });
        let mut i = 0u64;
        while i < n {
            let mut e = ev(0);
            e.time_ms = i;
            if tx.push(e) {
                i += 1;
            } else {
                std::thread::yield_now();
            }
        }
        assert_eq!(consumer.join().unwrap(), n);
        assert_eq!(tx.counters().events, n);
    }
}
