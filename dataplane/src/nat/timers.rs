//! Session expiry without sweeps: a hierarchical timer wheel with lazy rescheduling.
//!
//! ## Why a wheel and not per-class LRU lists
//!
//! Per-class LRU lists (VPP) keep the head oldest only if every refresh moves the
//! session to the tail — three extra cache lines per packet (prev, next, tail) — and
//! they assume one timeout per class at a time. masq's timeouts change live and apply
//! from each session's next packet (see [`timeouts`](super::timeouts)), so sessions of
//! one class can carry different timeouts and no list order stays "oldest first".
//!
//! The wheel keeps a *scheduled* time per session that is never later than its real
//! deadline (`Session::expires`). A refresh only writes `expires` in the session
//! record, which the fast path has in cache anyway: **no list work per packet**. When
//! the wheel reaches a session's slot it compares the real deadline with `now`: due →
//! expired; not due → moved to the slot of its real deadline (O(1)). A session is thus
//! touched by the wheel about once per timeout period, however many packets it sees.
//! Only a deadline that moves *earlier* (a shorter timeout class after a FIN or RST,
//! or a lowered timeout) reschedules eagerly, once.
//!
//! ## Shape
//!
//! Seven levels of 64 slots; level `k` slots span `64^k` ms, so the wheel covers
//! 2^42 ms (139 years) at 1 ms resolution — every `u32` seconds timeout fits. Each slot
//! is a circular doubly-linked list threaded through the sessions' `prev`/`next`
//! fields, with sentinel heads kept here (node indices `>= base`), so unlinking needs
//! no knowledge of the slot. A 64-bit occupancy word per level finds the next busy
//! slot with one `trailing_zeros`. The level/slot arithmetic follows tokio's timer
//! wheel (`tokio/src/runtime/time/wheel`).
//!
//! Processing a slot first splices its whole list onto a *pending* list (O(1)), then
//! pops entries one by one, so [`Wheel::poll`] can stop after any number of steps and
//! resume later without ever missing an entry.

/// Link access for nodes stored in the caller's slab.
pub(crate) trait TimerNode {
    fn prev(&self) -> u32;
    fn next(&self) -> u32;
    fn set_prev(&mut self, v: u32);
    fn set_next(&mut self, v: u32);
    /// The node's real deadline (ms).
    fn deadline(&self) -> u64;
}

const LEVEL_BITS: u32 = 6;
const SLOTS: usize = 1 << LEVEL_BITS;
const LEVELS: usize = 7;
const PENDING: usize = LEVELS * SLOTS;
const HEADS: usize = PENDING + 1;
const MAX_SPAN: u64 = 1 << (LEVEL_BITS * LEVELS as u32);
const NIL: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Link {
    prev: u32,
    next: u32,
}

pub(crate) struct Wheel {
    /// Node index of sentinel 0 (= number of nodes in the slab).
    base: u32,
    heads: Box<[Link; HEADS]>,
    occupied: [u64; LEVELS],
    /// Wheel time: all slots before it have been processed.
    elapsed: u64,
    len: usize,
}

impl Wheel {
    /// A wheel for a slab of `nodes` nodes, starting at time `start` (ms).
    pub fn new(nodes: u32, start: u64) -> Self {
        let base = nodes;
        let mut heads = Box::new([Link { prev: NIL, next: NIL }; HEADS]);
        for (i, h) in heads.iter_mut().enumerate() {
            h.prev = base + i as u32;
            h.next = base + i as u32;
        }
        Wheel { base, heads, occupied: [0; LEVELS], elapsed: start, len: 0 }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn prev_of<N: TimerNode>(&self, nodes: &[N], i: u32) -> u32 {
        if i >= self.base {
            self.heads[(i - self.base) as usize].prev
        } else {
            nodes[i as usize].prev()
        }
    }

    #[inline]
    fn next_of<N: TimerNode>(&self, nodes: &[N], i: u32) -> u32 {
        if i >= self.base {
            self.heads[(i - self.base) as usize].next
        } else {
            nodes[i as usize].next()
        }
    }

    #[inline]
    fn set_prev<N: TimerNode>(&mut self, nodes: &mut [N], i: u32, v: u32) {
        if i >= self.base {
            self.heads[(i - self.base) as usize].prev = v;
        } else {
            nodes[i as usize].set_prev(v);
        }
    }

    #[inline]
    fn set_next<N: TimerNode>(&mut self, nodes: &mut [N], i: u32, v: u32) {
        if i >= self.base {
            self.heads[(i - self.base) as usize].next = v;
        } else {
            nodes[i as usize].set_next(v);
        }
    }

    fn push_back<N: TimerNode>(&mut self, nodes: &mut [N], head: usize, i: u32) {
        let s = self.base + head as u32;
        let last = self.prev_of(nodes, s);
        self.set_next(nodes, last, i);
        self.set_prev(nodes, i, last);
        self.set_next(nodes, i, s);
        self.set_prev(nodes, s, i);
    }

    fn unlink<N: TimerNode>(&mut self, nodes: &mut [N], i: u32) {
        let p = self.prev_of(nodes, i);
        let n = self.next_of(nodes, i);
        debug_assert!(p != NIL && n != NIL, "unlinking a node that is not scheduled");
        self.set_next(nodes, p, n);
        self.set_prev(nodes, n, p);
        nodes[i as usize].set_prev(NIL);
        nodes[i as usize].set_next(NIL);
        if p == n && p >= self.base {
            // The list is now empty; if it was a slot, clear its occupancy bit.
            let h = (p - self.base) as usize;
            if h < PENDING {
                self.occupied[h / SLOTS] &= !(1u64 << (h % SLOTS));
            }
        }
    }

    fn level_for(elapsed: u64, when: u64) -> usize {
        let mut masked = (elapsed ^ when) | (SLOTS as u64 - 1);
        if masked >= MAX_SPAN {
            masked = MAX_SPAN - 1;
        }
        ((63 - masked.leading_zeros()) / LEVEL_BITS) as usize
    }

    fn place<N: TimerNode>(&mut self, nodes: &mut [N], i: u32, when: u64) {
        if when <= self.elapsed {
            self.push_back(nodes, PENDING, i);
            return;
        }
        let level = Self::level_for(self.elapsed, when);
        let slot = ((when >> (level as u32 * LEVEL_BITS)) as usize) & (SLOTS - 1);
        self.push_back(nodes, level * SLOTS + slot, i);
        self.occupied[level] |= 1u64 << slot;
    }

    /// Schedule node `i` (not currently scheduled) at `when`.
    pub fn insert<N: TimerNode>(&mut self, nodes: &mut [N], i: u32, when: u64) {
        self.place(nodes, i, when);
        self.len += 1;
    }

    /// Unschedule node `i`.
    pub fn remove<N: TimerNode>(&mut self, nodes: &mut [N], i: u32) {
        self.unlink(nodes, i);
        self.len -= 1;
    }

    /// Move node `i` to `when` (used when its deadline moved earlier).
    pub fn reschedule<N: TimerNode>(&mut self, nodes: &mut [N], i: u32, when: u64) {
        self.unlink(nodes, i);
        self.place(nodes, i, when);
    }

    fn pending_nonempty(&self) -> bool {
        let p = self.base + PENDING as u32;
        self.heads[PENDING].next != p
    }

    /// The earliest busy slot: (level, slot, its start time).
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        for level in 0..LEVELS {
            let occ = self.occupied[level];
            if occ == 0 {
                continue;
            }
            let shift = level as u32 * LEVEL_BITS;
            let now_slot = ((self.elapsed >> shift) as u32) & (SLOTS as u32 - 1);
            let zeros = occ.rotate_right(now_slot).trailing_zeros();
            let slot = ((zeros + now_slot) as usize) % SLOTS;
            let level_range = 1u64 << (shift + LEVEL_BITS);
            let level_start = self.elapsed & !(level_range - 1);
            let mut deadline = level_start + ((slot as u64) << shift);
            if deadline < self.elapsed {
                // Only far-future entries clamped into the top level wrap around.
                deadline += level_range;
            }
            return Some((level, slot, deadline));
        }
        None
    }

    /// A lower bound on the earliest deadline: `poll` at or after it may have work.
    /// Exact for entries in level 0 (the last 64 ms before a deadline); earlier for
    /// entries further out, which costs a cascade step, not a missed expiry.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.pending_nonempty() {
            return Some(self.elapsed);
        }
        self.next_expiration().map(|e| e.2)
    }

    fn splice_to_pending<N: TimerNode>(&mut self, nodes: &mut [N], head: usize) {
        let s = self.base + head as u32;
        let p = self.base + PENDING as u32;
        let first = self.next_of(nodes, s);
        let last = self.prev_of(nodes, s);
        debug_assert!(first != s && !self.pending_nonempty());
        self.set_next(nodes, p, first);
        self.set_prev(nodes, first, p);
        self.set_prev(nodes, p, last);
        self.set_next(nodes, last, p);
        self.heads[head] = Link { prev: s, next: s };
        self.occupied[head / SLOTS] &= !(1u64 << (head % SLOTS));
    }

    /// Return one node whose deadline is `<= now`, unscheduled, or `None` when no node
    /// is due or `work` ran out. Each step (an expiry, a lazy reschedule, a slot
    /// cascade) costs one unit of `work`.
    pub fn poll<N: TimerNode>(&mut self, nodes: &mut [N], now: u64, work: &mut usize) -> Option<u32> {
        let now = now.max(self.elapsed);
        loop {
            if *work == 0 {
                return None;
            }
            let p = self.base + PENDING as u32;
            let first = self.heads[PENDING].next;
            if first != p {
                *work -= 1;
                self.unlink(nodes, first);
                let d = nodes[first as usize].deadline();
                if d <= now {
                    self.len -= 1;
                    return Some(first);
                }
                // Refreshed since it was scheduled: move it to its real deadline.
                self.place(nodes, first, d);
                continue;
            }
            let (level, slot, deadline) = self.next_expiration()?;
            if deadline > now {
                return None;
            }
            *work -= 1;
            debug_assert!(deadline >= self.elapsed);
            self.elapsed = deadline;
            self.splice_to_pending(nodes, level * SLOTS + slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[derive(Clone, Copy, Debug)]
    struct N {
        prev: u32,
        next: u32,
        deadline: u64,
    }
    impl TimerNode for N {
        fn prev(&self) -> u32 {
            self.prev
        }
        fn next(&self) -> u32 {
            self.next
        }
        fn set_prev(&mut self, v: u32) {
            self.prev = v;
        }
        fn set_next(&mut self, v: u32) {
            self.next = v;
        }
        fn deadline(&self) -> u64 {
            self.deadline
        }
    }

    fn nodes(n: usize) -> Vec<N> {
        vec![N { prev: NIL, next: NIL, deadline: 0 }; n]
    }

    fn drain(w: &mut Wheel, ns: &mut [N], now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        let mut work = usize::MAX;
        while let Some(i) = w.poll(ns, now, &mut work) {
            out.push(i);
        }
        out.sort();
        out
    }

    #[test]
    fn fires_exactly_at_deadline() {
        let mut ns = nodes(4);
        let mut w = Wheel::new(4, 0);
        for (i, d) in [(0u32, 1u64), (1, 300_000), (2, 7_440_000), (3, 64)].into_iter() {
            ns[i as usize].deadline = d;
            w.insert(&mut ns, i, d);
        }
        assert_eq!(drain(&mut w, &mut ns, 0), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut ns, 1), vec![0]);
        assert_eq!(drain(&mut w, &mut ns, 63), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut ns, 64), vec![3]);
        assert_eq!(drain(&mut w, &mut ns, 299_999), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut ns, 300_000), vec![1]);
        assert_eq!(drain(&mut w, &mut ns, 7_439_999), Vec::<u32>::new());
        assert_eq!(drain(&mut w, &mut ns, 7_440_000), vec![2]);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn lazy_extension_and_budget() {
        let mut ns = nodes(100);
        let mut w = Wheel::new(100, 0);
        for i in 0..100u32 {
            ns[i as usize].deadline = 1000;
            w.insert(&mut ns, i, 1000);
        }
        // Half are refreshed without touching the wheel.
        for n in &mut ns[..50] {
            n.deadline = 5000;
        }
        let mut work = 10;
        let mut got = 0;
        while w.poll(&mut ns, 1000, &mut work).is_some() {
            got += 1;
        }
        assert!(got < 10, "work bounds the steps");
        let rest = drain(&mut w, &mut ns, 1000);
        assert_eq!(got + rest.len(), 50);
        assert!(w.next_deadline().unwrap() <= 5000);
        assert_eq!(drain(&mut w, &mut ns, 4999).len(), 0);
        assert_eq!(drain(&mut w, &mut ns, 5000), (0..50).collect::<Vec<_>>());
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, u64),
        Extend(u32, u64),
        Shorten(u32, u64),
        Remove(u32),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let dt = prop_oneof![0u64..100, 0u64..5000, 0u64..2_000_000];
        prop_oneof![
            (0u32..16, dt.clone()).prop_map(|(i, d)| Op::Insert(i, d)),
            (0u32..16, dt.clone()).prop_map(|(i, d)| Op::Extend(i, d)),
            (0u32..16, dt.clone()).prop_map(|(i, d)| Op::Shorten(i, d)),
            (0u32..16).prop_map(Op::Remove),
            dt.prop_map(Op::Advance),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Against a model: after every advance, exactly the nodes with deadline <= now
        /// have fired, whatever mix of lazy extensions and eager shortenings happened.
        #[test]
        fn matches_model(ops in prop::collection::vec(op(), 1..200), start in 0u64..1_000_000) {
            let mut ns = nodes(16);
            let mut w = Wheel::new(16, start);
            let mut now = start;
            let mut model: BTreeMap<u32, u64> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(i, d) => if let std::collections::btree_map::Entry::Vacant(e) = model.entry(i) {
                        ns[i as usize].deadline = now + d;
                        w.insert(&mut ns, i, now + d);
                        e.insert(now + d);
                    },
                    Op::Extend(i, d) => if let Some(dl) = model.get_mut(&i) {
                        // A refresh: later deadline, no wheel call.
                        let nd = (now + d).max(*dl);
                        ns[i as usize].deadline = nd;
                        *dl = nd;
                    },
                    Op::Shorten(i, d) => if let Some(dl) = model.get_mut(&i) {
                        let nd = now + d;
                        if nd < *dl {
                            ns[i as usize].deadline = nd;
                            w.reschedule(&mut ns, i, nd);
                        } else {
                            ns[i as usize].deadline = nd;
                        }
                        *dl = nd;
                    },
                    Op::Remove(i) => if model.remove(&i).is_some() {
                        w.remove(&mut ns, i);
                    },
                    Op::Advance(d) => {
                        now += d;
                        if let Some(nd) = w.next_deadline() {
                            let earliest = model.values().min().copied().unwrap();
                            prop_assert!(nd <= earliest, "next_deadline is a lower bound");
                        } else {
                            prop_assert!(model.is_empty());
                        }
                        let fired = drain(&mut w, &mut ns, now);
                        let due: Vec<u32> = model.iter().filter(|(_, &d)| d <= now).map(|(&i, _)| i).collect();
                        prop_assert_eq!(&fired, &due);
                        for i in due { model.remove(&i); }
                    }
                }
                prop_assert_eq!(w.len(), model.len());
            }
        }
    }
}
