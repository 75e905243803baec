//! Later fragments waiting for their first: [`FragWait`], one per worker.
//!
//! Only a datagram's first fragment carries its ports, so a later fragment that
//! overtakes its first cannot be translated yet (RFC 4787 REQ-14 asks that such
//! fragments be handled). `nat-slowpath` keeps it here, unmodified, with its datagram's
//! key (source, destination, protocol, IP identification). Nothing here is retried on
//! a timer or on every pass: when `nat-slowpath` records a first fragment (or
//! `nat-classify` sends one to the worker that owns it), it **wakes** the fragments
//! of that datagram ([`FragWait::wake`]), and the worker runs just those through the
//! pipeline again at the end of the pass. A fragment retried and still without state
//! is dropped, never parked twice. So a flood of later fragments with made-up IP IDs
//! costs one slow-path visit each and is never looked at again; real datagrams go
//! through whole however the flood goes.
//!
//! Bounds, each refusal a counted drop:
//!
//! | bound | when reached |
//! |---|---|
//! | [`FRAG_WAIT_CAPACITY`] fragments per worker | the **oldest** waiting fragment is dropped to make room (`fragment_wait_full`): a flood cannot lock newcomers out, only shorten everyone's wait to capacity ÷ flood rate |
//! | [`FRAG_WAIT_PER_DATAGRAM`] fragments of one datagram | the newcomer is dropped (`fragment_datagram_limit`) |
//! | [`FRAG_WAIT`] per fragment | dropped (`fragment_no_state`: its first fragment did not come in time) |
//!
//! Fragments wait in arrival order, which with one fixed wait is also expiry order:
//! expiry looks at the head only. Fixed capacity: nothing allocates after `new`.

use std::collections::VecDeque;

use crate::nat::FragKey;
use crate::stats::DropReason;
use crate::time::{Duration, Instant};

/// Later fragments one worker keeps at most while they wait for their first.
pub const FRAG_WAIT_CAPACITY: usize = 64;
/// Later fragments of one datagram that may wait at once (a 1500-byte MTU path splits a
/// 24 KB datagram into 16 fragments).
pub const FRAG_WAIT_PER_DATAGRAM: usize = 16;
/// How long a later fragment waits for its first fragment. Fragments of one datagram
/// leave their sender back to back; this only has to cover reordering in the network.
pub const FRAG_WAIT: Duration = Duration::from_millis(500);

// Woken fragments are run again as one vector.
const _: () = assert!(FRAG_WAIT_CAPACITY <= super::MAX_BURST);

/// One waiting fragment and what the pipeline needs to run it again.
pub(crate) struct Waiting<F> {
    pub frame: F,
    pub key: FragKey,
    /// Arrival port and the `F_HANDED`/`F_HAIRPIN` flags it arrived with.
    pub port: u16,
    pub flags: u8,
    deadline: Instant,
    woken: bool,
}

/// The waiting area. See the module documentation.
pub(crate) struct FragWait<F> {
    queue: VecDeque<Waiting<F>>,
    /// Entries of `queue` marked by [`FragWait::wake`].
    woken: usize,
}

impl<F> Default for FragWait<F> {
    fn default() -> Self {
        FragWait::new()
    }
}

impl<F> FragWait<F> {
    pub fn new() -> Self {
        FragWait { queue: VecDeque::with_capacity(FRAG_WAIT_CAPACITY), woken: 0 }
    }

    /// Fragments waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Whether some fragments were woken and wait to be run again.
    pub fn has_woken(&self) -> bool {
        self.woken > 0
    }

    /// Keep `frame` until `now + FRAG_WAIT`. Returns a frame to drop and why, if any:
    /// the newcomer itself when its datagram already has [`FRAG_WAIT_PER_DATAGRAM`]
    /// fragments waiting, else the oldest waiting fragment when the area is full.
    pub fn park(&mut self, frame: F, key: FragKey, port: u16, flags: u8, now: Instant) -> Option<(F, DropReason)> {
        if self.queue.iter().filter(|w| w.key == key).count() >= FRAG_WAIT_PER_DATAGRAM {
            return Some((frame, DropReason::FragmentDatagramLimit));
        }
        let evicted = if self.queue.len() == FRAG_WAIT_CAPACITY {
            self.queue.pop_front().map(|w| {
                self.woken -= usize::from(w.woken);
                (w.frame, DropReason::FragmentWaitFull)
            })
        } else {
            None
        };
        self.queue.push_back(Waiting { frame, key, port, flags, deadline: now + FRAG_WAIT, woken: false });
        evicted
    }

    /// The first fragment of datagram `key` has been handled: its waiting fragments are
    /// to be run again. Returns how many were woken.
    pub fn wake(&mut self, key: &FragKey) -> usize {
        let mut n = 0;
        for w in self.queue.iter_mut().filter(|w| !w.woken && w.key == *key) {
            w.woken = true;
            n += 1;
        }
        self.woken += n;
        n
    }

    /// The oldest fragment, if its wait is over (call until `None`).
    pub fn expired(&mut self, now: Instant) -> Option<F> {
        if self.queue.front().is_some_and(|w| w.deadline <= now) {
            let w = self.queue.pop_front()?;
            self.woken -= usize::from(w.woken);
            return Some(w.frame);
        }
        None
    }

    /// Take every woken fragment out, in arrival order, to `out`; the others keep their
    /// place.
    pub fn take_woken(&mut self, mut out: impl FnMut(Waiting<F>)) {
        if self.woken == 0 {
            return;
        }
        for _ in 0..self.queue.len() {
            let Some(w) = self.queue.pop_front() else { break };
            if w.woken {
                out(w);
            } else {
                self.queue.push_back(w);
            }
        }
        self.woken = 0;
    }

    /// Everything still waiting (shutdown).
    pub fn drain(&mut self) -> impl Iterator<Item = F> + '_ {
        self.woken = 0;
        self.queue.drain(..).map(|w| w.frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u16) -> FragKey {
        FragKey { src: Ipv4Addr::new(100, 64, 0, 2), dst: Ipv4Addr::new(198, 51, 100, 7), proto: 17, id }
    }

    const T0: Instant = Instant::from_secs(10);

    #[test]
    fn woken_fragments_come_out_in_order_and_the_rest_stay() {
        let mut w = FragWait::new();
        for (frame, id) in [(1u32, 7u16), (2, 8), (3, 7), (4, 9)] {
            assert!(w.park(frame, key(id), 0, 0, T0).is_none());
        }
        assert!(!w.has_woken());
        assert_eq!(w.wake(&key(5)), 0);
        assert_eq!(w.wake(&key(7)), 2);
        assert_eq!(w.wake(&key(7)), 0, "already woken");
        let mut out = Vec::new();
        w.take_woken(|x| out.push(x.frame));
        assert_eq!(out, vec![1, 3]);
        assert_eq!(w.len(), 2);
        assert!(!w.has_woken());
        w.take_woken(|x| out.push(x.frame));
        assert_eq!(out.len(), 2, "nothing more until woken");
    }

    #[test]
    fn full_drops_the_oldest_and_one_datagram_is_bounded() {
        let mut w = FragWait::new();
        for i in 0..FRAG_WAIT_PER_DATAGRAM as u32 {
            assert!(w.park(i, key(1), 0, 0, T0).is_none());
        }
        assert_eq!(w.park(99, key(1), 0, 0, T0), Some((99, DropReason::FragmentDatagramLimit)));
        w.wake(&key(1));
        for i in 0..(FRAG_WAIT_CAPACITY - FRAG_WAIT_PER_DATAGRAM) as u32 {
            assert!(w.park(1000 + i, key(1000 + i as u16), 0, 0, T0).is_none());
        }
        assert_eq!(w.len(), FRAG_WAIT_CAPACITY);
        // Full: the oldest (woken, of datagram 1) makes room.
        assert_eq!(w.park(5000, key(5000), 0, 0, T0), Some((0, DropReason::FragmentWaitFull)));
        let mut out = Vec::new();
        w.take_woken(|x| out.push(x.frame));
        assert_eq!(out, (1..FRAG_WAIT_PER_DATAGRAM as u32).collect::<Vec<_>>());
        assert_eq!(w.len(), FRAG_WAIT_CAPACITY - FRAG_WAIT_PER_DATAGRAM + 1);
    }

    #[test]
    fn the_wait_is_bounded() {
        let mut w = FragWait::new();
        w.park(1u32, key(1), 0, 0, T0);
        w.park(2, key(2), 0, 0, T0 + Duration::from_millis(100));
        w.wake(&key(2));
        assert_eq!(w.expired(Instant::from_millis(T0.as_millis() + FRAG_WAIT.as_millis() - 1)), None);
        assert_eq!(w.expired(T0 + FRAG_WAIT), Some(1));
        assert_eq!(w.expired(T0 + FRAG_WAIT), None);
        assert!(w.has_woken());
        assert_eq!(w.expired(T0 + FRAG_WAIT + Duration::from_millis(100)), Some(2));
        assert!(!w.has_woken() && w.is_empty());
    }
}
