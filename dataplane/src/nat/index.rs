//! A fixed-capacity Robin Hood hash index with backward-shift deletion.
//!
//! Every table in the NAT (sessions, mappings, subscribers, filters, fragments) is one
//! of these over a small `Copy` slot type. The slot carries a 32-bit *tag* — the top
//! half of the key's hash — and the home position is derived from the tag alone
//! (`home = tag * capacity >> 32`, Lemire's reduction, so any capacity works, not only
//! powers of two). That lets the index compute every slot's probe distance without
//! touching the record it points to, and keeps slots small: the session index slot is
//! 8 bytes (tag + value) and a key comparison reads the session record, which a hit
//! reads anyway to translate.
//!
//! Capacity is fixed at construction: `limit` entries in `ceil(limit / LOAD) + 1`
//! slots with `LOAD = 0.8` ([`RobinHood::new`]), or 0.9 for tables that run far below
//! their limit in practice ([`RobinHood::new_dense`]: mappings, shared by a subscriber's
//! sessions; subscribers, sized for a worst case of four sessions each). Robin Hood
//! keeps probe sequences short at that load (expected successful probe length about
//! 2.5 slots at 0.8, 5.5 at 0.9 — one cache line of 8-byte slots either way), and
//! backward-shift deletion leaves no tombstones, so performance does not decay under
//! churn. Nothing allocates after construction.
//!
//! Because the home slot grows with the tag, a cluster is ordered by home slot, and an
//! insert is a sorted insert: find the first slot whose entry lives farther from home
//! than the newcomer would (or an empty one), move the run up to the next empty slot
//! one place along (one `copy_within`), and put the newcomer there. That is the same
//! layout, up to the order of entries sharing a home slot, as swapping the newcomer
//! forward slot by slot, at a fraction of the work when the run is long.

/// Slots are stored by value. `EMPTY` must be recognised by `is_empty`.
pub(crate) trait Slot: Copy {
    const EMPTY: Self;
    fn is_empty(&self) -> bool;
    fn tag(&self) -> u32;
}

/// Maximum load factor, in percent: `limit * 100 / LOAD` slots.
const LOAD: usize = 80;
/// The load of [`RobinHood::new_dense`].
const LOAD_DENSE: usize = 90;

/// The index is at its entry limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

pub(crate) struct RobinHood<S: Slot> {
    slots: Box<[S]>,
    len: usize,
    limit: usize,
}

impl<S: Slot> RobinHood<S> {
    /// An index for at most `limit` entries, at load 0.8 when full.
    pub fn new(limit: usize) -> Self {
        Self::with_load(limit, LOAD)
    }

    /// An index for at most `limit` entries, at load 0.9 when full: for tables whose
    /// limit is a worst case they seldom approach (see the module docs).
    pub fn new_dense(limit: usize) -> Self {
        Self::with_load(limit, LOAD_DENSE)
    }

    fn with_load(limit: usize, load_percent: usize) -> Self {
        let cap = (limit * 100).div_ceil(load_percent) + 1;
        RobinHood { slots: crate::hugemem::filled(cap.max(2), S::EMPTY), len: 0, limit }
    }

    /// Slots allocated (memory is `capacity * size_of::<S>()`).
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.limit
    }

    #[inline]
    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.slots.len() as u64) >> 32) as usize
    }

    #[inline]
    fn dist(&self, pos: usize, tag: u32) -> usize {
        let h = self.home(tag);
        if pos >= h {
            pos - h
        } else {
            pos + self.slots.len() - h
        }
    }

    #[inline]
    fn next(&self, pos: usize) -> usize {
        if pos + 1 == self.slots.len() {
            0
        } else {
            pos + 1
        }
    }

    /// Start loading the cache line of `tag`'s home slot (a later [`find`](Self::find)
    /// of the same tag then does not wait for memory).
    #[inline]
    pub fn prefetch(&self, tag: u32) {
        crate::prefetch::read(&self.slots[self.home(tag)]);
    }

    /// The first slot with `tag` on its probe path, without comparing keys (a likely
    /// hit, for prefetching what it points to).
    #[inline]
    pub fn first_with_tag(&self, tag: u32) -> Option<&S> {
        let mut pos = self.home(tag);
        for d in 0..4 {
            let s = &self.slots[pos];
            if s.is_empty() || self.dist(pos, s.tag()) < d {
                return None;
            }
            if s.tag() == tag {
                return Some(s);
            }
            pos = self.next(pos);
        }
        None
    }

    /// Position of the first slot with `tag` for which `eq` holds.
    #[inline]
    pub fn find(&self, tag: u32, mut eq: impl FnMut(&S) -> bool) -> Option<usize> {
        let mut pos = self.home(tag);
        let mut d = 0;
        loop {
            let s = &self.slots[pos];
            if s.is_empty() || self.dist(pos, s.tag()) < d {
                return None;
            }
            if s.tag() == tag && eq(s) {
                return Some(pos);
            }
            pos = self.next(pos);
            d += 1;
        }
    }

    #[inline]
    pub fn get(&self, pos: usize) -> &S {
        &self.slots[pos]
    }

    /// Mutable access for payload updates; the caller must not change the tag.
    #[inline]
    pub fn get_mut(&mut self, pos: usize) -> &mut S {
        &mut self.slots[pos]
    }

    /// Insert without a duplicate check (callers look up first). Returns the new
    /// entry's position (valid until the next insert or remove).
    pub fn insert(&mut self, slot: S) -> Result<usize, Full> {
        if self.len >= self.limit {
            return Err(Full);
        }
        // Where the newcomer goes: the first empty slot, or the first entry closer to
        // its home than the newcomer would be (a later home: the cluster is ordered).
        let mut at = self.home(slot.tag());
        let mut d = 0;
        loop {
            let s = &self.slots[at];
            if s.is_empty() {
                self.slots[at] = slot;
                self.len += 1;
                return Ok(at);
            }
            if self.dist(at, s.tag()) < d {
                break;
            }
            at = self.next(at);
            d += 1;
        }
        // The run from `at` to the next empty slot moves one place along.
        let mut end = self.next(at);
        while !self.slots[end].is_empty() {
            end = self.next(end);
        }
        if end > at {
            self.slots.copy_within(at..end, at + 1);
        } else {
            // The run wraps past the last slot: shift the front part, carry the last
            // slot's entry to slot 0, then shift the tail.
            self.slots.copy_within(0..end, 1);
            let last = self.slots.len() - 1;
            self.slots[0] = self.slots[last];
            self.slots.copy_within(at..last, at + 1);
        }
        self.slots[at] = slot;
        self.len += 1;
        Ok(at)
    }

    /// Remove the entry at `pos` (from [`find`](Self::find)), shifting its successors
    /// back so no tombstone is left.
    pub fn remove_at(&mut self, mut pos: usize) -> S {
        let removed = self.slots[pos];
        loop {
            let n = self.next(pos);
            let s = self.slots[n];
            if s.is_empty() || self.dist(n, s.tag()) == 0 {
                self.slots[pos] = S::EMPTY;
                break;
            }
            self.slots[pos] = s;
            pos = n;
        }
        self.len -= 1;
        removed
    }

    /// Mean and largest distance of the entries from their home slots (a successful
    /// lookup probes `distance + 1` slots).
    #[cfg(test)]
    pub fn probe_stats(&self) -> (f64, usize) {
        let (mut sum, mut max) = (0usize, 0usize);
        for (pos, s) in self.slots.iter().enumerate() {
            if !s.is_empty() {
                let d = self.dist(pos, s.tag());
                sum += d;
                max = max.max(d);
            }
        }
        (sum as f64 / self.len.max(1) as f64, max)
    }

    /// Find and remove.
    pub fn remove(&mut self, tag: u32, eq: impl FnMut(&S) -> bool) -> Option<S> {
        let pos = self.find(tag, eq)?;
        Some(self.remove_at(pos))
    }
}

/// The common slot: a tag and a 32-bit value (an index into a slab, with a side bit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IdxSlot {
    pub tag: u32,
    pub val: u32,
}

impl Slot for IdxSlot {
    const EMPTY: Self = IdxSlot { tag: 0, val: u32::MAX };
    #[inline]
    fn is_empty(&self) -> bool {
        self.val == u32::MAX
    }
    #[inline]
    fn tag(&self) -> u32 {
        self.tag
    }
}

const _: () = assert!(core::mem::size_of::<IdxSlot>() == 8);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Clone, Copy, Debug)]
    struct KV {
        tag: u32,
        key: u32,
        val: u32,
        live: bool,
    }
    impl Slot for KV {
        const EMPTY: Self = KV { tag: 0, key: 0, val: 0, live: false };
        fn is_empty(&self) -> bool {
            !self.live
        }
        fn tag(&self) -> u32 {
            self.tag
        }
    }

    /// `bits` of tag entropy: small values force heavy collisions and long clusters.
    fn tag_of(key: u32, bits: u32) -> u32 {
        let h = key.wrapping_mul(0x9e37_79b1).rotate_left(7);
        if bits >= 32 {
            h
        } else {
            (h & ((1 << bits) - 1)) << (32 - bits)
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u32, u32),
        Remove(u32),
        Get(u32),
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![
                (0u32..64, any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
                (0u32..64).prop_map(Op::Remove),
                (0u32..64).prop_map(Op::Get),
            ],
            1..400,
        )
    }

    fn run(ops: Vec<Op>, limit: usize, bits: u32, dense: bool) {
        let mut t: RobinHood<KV> = if dense { RobinHood::new_dense(limit) } else { RobinHood::new(limit) };
        let cap = t.capacity();
        let mut model: HashMap<u32, u32> = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    let tag = tag_of(k, bits);
                    if let Some(pos) = t.find(tag, |s| s.key == k) {
                        t.get_mut(pos).val = v;
                        model.insert(k, v);
                    } else {
                        let r = t.insert(KV { tag, key: k, val: v, live: true });
                        if model.len() < limit {
                            let pos = r.expect("room left");
                            assert_eq!(t.find(tag, |s| s.key == k), Some(pos), "insert returns where the entry is");
                            model.insert(k, v);
                        } else {
                            assert_eq!(r, Err(Full));
                        }
                    }
                }
                Op::Remove(k) => {
                    let got = t.remove(tag_of(k, bits), |s| s.key == k).map(|s| s.val);
                    assert_eq!(got, model.remove(&k));
                }
                Op::Get(k) => {
                    let got = t.find(tag_of(k, bits), |s| s.key == k).map(|p| t.get(p).val);
                    assert_eq!(got, model.get(&k).copied());
                }
            }
            assert_eq!(t.len(), model.len());
        }
        for (k, v) in &model {
            let pos = t.find(tag_of(*k, bits), |s| s.key == *k).expect("present");
            assert_eq!(t.get(pos).val, *v);
        }
        assert_eq!(t.capacity(), cap, "the index never grows");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn matches_hashmap_model(ops in ops(), limit in 1usize..48, bits in prop::sample::select(vec![1u32, 3, 8, 32])) {
            run(ops, limit, bits, false);
        }

        #[test]
        fn dense_matches_hashmap_model(ops in ops(), limit in 1usize..48, bits in prop::sample::select(vec![1u32, 3, 8, 32])) {
            run(ops, limit, bits, true);
        }
    }

    /// Runs that wrap past the last slot: entries homed at the end of the table spill
    /// into its front, and inserts there shift both parts.
    #[test]
    fn inserts_into_a_run_that_wraps() {
        for dense in [false, true] {
            let mut t: RobinHood<KV> = if dense { RobinHood::new_dense(8) } else { RobinHood::new(8) };
            let cap = t.capacity();
            let last = u32::MAX;
            let first = 0;
            // Homes: the last slot (tag u32::MAX) and slot 0 (tag 0), interleaved.
            let keys: Vec<(u32, u32)> = (0..8).map(|k| (k, if k % 2 == 0 { last } else { first })).collect();
            for &(k, tag) in &keys {
                t.insert(KV { tag, key: k, val: k * 10, live: true }).unwrap();
                for &(k2, tag2) in keys.iter().take_while(|(k2, _)| *k2 <= k) {
                    let pos = t.find(tag2, |s| s.key == k2).expect("every key inserted so far is found");
                    assert_eq!(t.get(pos).val, k2 * 10);
                }
            }
            assert_eq!(t.slots[cap - 1].tag, last, "the last slot holds an entry homed there");
            let (_, max) = t.probe_stats();
            assert!(max < cap);
            for &(k, tag) in &keys {
                assert!(t.remove(tag, |s| s.key == k).is_some());
            }
            assert!(t.slots.iter().all(|s| s.is_empty()));
        }
    }

    #[test]
    fn fills_to_limit_and_drains() {
        let mut t: RobinHood<KV> = RobinHood::new(100);
        for k in 0..100 {
            t.insert(KV { tag: tag_of(k, 32), key: k, val: k, live: true }).unwrap();
        }
        assert!(t.is_full());
        assert!(t.insert(KV { tag: 1, key: 1000, val: 0, live: true }).is_err());
        for k in 0..100 {
            assert!(t.remove(tag_of(k, 32), |s| s.key == k).is_some());
        }
        assert_eq!(t.len(), 0);
        assert!(t.slots.iter().all(|s| s.is_empty()));
    }
}
