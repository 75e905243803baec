//! Port block allocation (`[nat] port_block_size`): a subscriber's mappings take their
//! external ports from runs of consecutive ports it holds — its **blocks** — so the NAT
//! log records a block once (RFC 8158 natEvent 16/17) instead of every session.
//!
//! ## Layout
//!
//! ```text
//!  this worker's normal slice of every pool address (ports.rs): [lo, hi], L ports
//!  block k of an address = [lo + k·B, lo + k·B + B − 1],   k in 0..⌊L / B⌋
//!  the L mod B ports at the top of the slice, and the privileged slice, stay unused
//! ```
//!
//! Blocks are carved from the worker's own slice, so the destination port of a return
//! packet still names the worker that owns it ([`PortPartition::owner_of`]) and workers
//! share nothing. A block is an (address, port range) for all three protocols, as the
//! IPFIX block record (template 258) has no protocol: its owner's TCP, UDP and ICMP
//! mappings all draw on it, each protocol from its own bitmap of the port allocator
//! ([`PortAllocator::alloc_in`], [`PortAllocator::free_now`]).
//!
//! ## State (fixed at construction)
//!
//! ```text
//!  taken:   [u64; ⌈K/64⌉] per address   bit k = block k is held by a subscriber
//!  free:    [u32] per address            blocks not held (an exhausted address fails in O(1))
//!  owner:   [u32; K] per address          the record of block k, or NONE: port → block in O(1)
//!  records: [Block; C]                    C = min(addresses × K, subscribers × blocks per subscriber)
//! ```
//!
//! A record is 40 bytes: the subscriber, the block, the mappings using it, when it was
//! allocated, and the links of two intrusive lists — its subscriber's blocks (the head is
//! kept in the subscriber's record) and the idle list below. Nothing is allocated after
//! [`PortBlocks::new`].
//!
//! ## Life of a block
//!
//! ```text
//!  free ──take (first need: natEvent 16)──▶ in use ──last mapping freed──▶ idle
//!    ▲                                         ▲                            │
//!    │                                         └──── its subscriber needs ──┤
//!    └────────────── `hold` passed (natEvent 17, expire) ◀──────────────────┘
//! ```
//!
//! An idle block stays its subscriber's for `hold` (`[nat] port_hold`, 120 s): the hold
//! the allocator applies to single ports, applied to the block as a whole, so no other
//! subscriber gets its ports within `hold` of their last use. Ports inside a block are
//! not quarantined one by one — they can only ever reach the block's own subscriber, as
//! with deterministic NAT. Idle blocks wait in a list in release order (the hold is the
//! same for all), unlinked in O(1) when their subscriber takes them up again.

use std::net::Ipv4Addr;

use super::hash::PortRng;
use super::ports::{scan_zero, PortRange};
use crate::time::{Duration, Instant};

/// No block (end of a list, a free owner slot).
pub(crate) const NONE: u32 = u32::MAX;

/// A block, by value: for lookups and listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// The subscriber holding it.
    pub subscriber: Ipv4Addr,
    /// Its external address.
    pub outside: Ipv4Addr,
    /// Its ports.
    pub ports: PortRange,
    /// Mappings (all protocols) using its ports now; 0: idle.
    pub mappings: u32,
    /// How long the subscriber has held it (since its allocation record).
    pub held: Duration,
    /// For an idle block: how long until it is released.
    pub release_in: Option<Duration>,
}

/// Which port blocks a lookup asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockQuery {
    /// Every block of a subscriber (inside address).
    Subscriber(Ipv4Addr),
    /// The block holding an external (address, port), or every block of the address.
    Outside(Ipv4Addr, Option<u16>),
}

/// What the block allocator did: plain integers, owned by the worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BlockCounters {
    /// Blocks given to subscribers (natEvent 16).
    pub allocated: u64,
    /// Blocks given back to the pool (natEvent 17).
    pub released: u64,
}

#[derive(Clone, Copy, Debug)]
struct Block {
    /// The subscriber (inside address, host order).
    subscriber: u32,
    addr_ix: u16,
    /// `k`: its place on the address.
    index: u16,
    /// Mappings using its ports.
    mappings: u32,
    /// The subscriber's next block, or NONE.
    next_of_sub: u32,
    /// Idle list links (`next` also links the free records).
    prev: u32,
    next: u32,
    since_ms: u64,
    /// When an idle block is released.
    release_ms: u64,
}

const _: () = assert!(core::mem::size_of::<Block>() == 40);

const EMPTY: Block = Block {
    subscriber: 0,
    addr_ix: 0,
    index: 0,
    mappings: 0,
    next_of_sub: NONE,
    prev: NONE,
    next: NONE,
    since_ms: 0,
    release_ms: 0,
};

/// One worker's port blocks on every pool address.
pub(crate) struct PortBlocks {
    size: u32,
    per_addr: u32,
    /// First port of block 0.
    first: u16,
    hold: Duration,
    words: usize,
    taken: Box<[u64]>,
    free: Box<[u32]>,
    owner: Box<[u32]>,
    recs: Box<[Block]>,
    free_head: u32,
    idle_head: u32,
    idle_tail: u32,
    live: u32,
    idle: u32,
    pub counters: BlockCounters,
}

impl PortBlocks {
    /// Blocks of `size` ports (1 ≤ size ≤ the slice's length) in `slice` of each of
    /// `addrs` addresses, at most `capacity` held at once, idle ones kept `hold`.
    pub fn new(addrs: usize, slice: PortRange, size: u32, capacity: u32, hold: Duration) -> PortBlocks {
        assert!(size >= 1 && size <= slice.len(), "blocks must fit the slice");
        let per_addr = slice.len() / size;
        let words = (per_addr as usize).div_ceil(64);
        let total = addrs * per_addr as usize;
        let cap = capacity.min(u32::try_from(total).unwrap_or(u32::MAX)).clamp(1, NONE - 1) as usize;
        let mut recs = vec![EMPTY; cap].into_boxed_slice();
        for (i, r) in recs.iter_mut().enumerate() {
            r.next = if i + 1 < cap { i as u32 + 1 } else { NONE };
        }
        PortBlocks {
            size,
            per_addr,
            first: slice.lo,
            hold,
            words,
            taken: vec![0u64; addrs * words].into_boxed_slice(),
            free: vec![per_addr; addrs].into_boxed_slice(),
            owner: vec![NONE; total].into_boxed_slice(),
            recs,
            free_head: 0,
            idle_head: NONE,
            idle_tail: NONE,
            live: 0,
            idle: 0,
            counters: BlockCounters::default(),
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.taken.len() * 8 + self.free.len() * 4 + self.owner.len() * 4 + self.recs.len() * 40
    }

    /// Ports per block.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Blocks per address in this worker's slice.
    pub fn per_addr(&self) -> u32 {
        self.per_addr
    }

    /// Blocks held (in use or idle).
    pub fn live(&self) -> u32 {
        self.live
    }

    /// Of those, idle.
    #[cfg(test)]
    pub fn idle(&self) -> u32 {
        self.idle
    }

    /// Records: blocks that can be held at once.
    #[cfg(test)]
    pub fn capacity(&self) -> u32 {
        self.recs.len() as u32
    }

    fn span_of(&self, index: u32) -> PortRange {
        let lo = u32::from(self.first) + index * self.size;
        PortRange::new(lo as u16, (lo + self.size - 1) as u16)
    }

    /// Block `b`'s address index and ports.
    #[inline]
    pub fn span(&self, b: u32) -> (u16, PortRange) {
        let r = &self.recs[b as usize];
        (r.addr_ix, self.span_of(u32::from(r.index)))
    }

    /// The block index `k` holding `port`, if the port is in a block.
    #[inline]
    fn index_of(&self, port: u16) -> Option<u32> {
        let k = u32::from(port.checked_sub(self.first)?) / self.size;
        (k < self.per_addr).then_some(k)
    }

    /// The held block containing (address `addr_ix`, `port`).
    #[inline]
    pub fn block_of(&self, addr_ix: u16, port: u16) -> Option<u32> {
        let k = self.index_of(port)?;
        let b = *self.owner.get(addr_ix as usize * self.per_addr as usize + k as usize)?;
        (b != NONE).then_some(b)
    }

    /// The held block `k` of address `addr_ix` (listings).
    pub fn at(&self, addr_ix: u16, k: u32) -> Option<u32> {
        let b = *self.owner.get(addr_ix as usize * self.per_addr as usize + k as usize)?;
        (b != NONE).then_some(b)
    }

    /// The subscriber holding block `b`.
    #[inline]
    pub fn subscriber(&self, b: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.recs[b as usize].subscriber)
    }

    /// The next block of `b`'s subscriber (NONE at the end).
    #[inline]
    pub fn next_of_sub(&self, b: u32) -> u32 {
        self.recs[b as usize].next_of_sub
    }

    pub fn set_next_of_sub(&mut self, b: u32, next: u32) {
        self.recs[b as usize].next_of_sub = next;
    }

    /// The first and last block index whose ports meet `range` (every block without one).
    fn candidates(&self, range: Option<PortRange>) -> Option<(u32, u32)> {
        let all = PortRange::new(self.first, (u32::from(self.first) + self.per_addr * self.size - 1) as u16);
        let r = match range {
            Some(r) => all.intersect(r),
            None => all,
        };
        if r.is_empty() {
            return None;
        }
        Some((self.index_of(r.lo)?, self.index_of(r.hi)?))
    }

    /// Give subscriber `subscriber` a free block of address `addr_ix` whose ports meet
    /// `range` (any block without one), chosen from a random start; it is in use (with
    /// no mapping yet) and `next_of_sub` follows it in its subscriber's list. `None`
    /// when the address has no such free block.
    pub fn take(
        &mut self,
        addr_ix: u16,
        range: Option<PortRange>,
        subscriber: Ipv4Addr,
        next_of_sub: u32,
        rng: &mut PortRng,
        now: Instant,
    ) -> Option<u32> {
        if self.free[addr_ix as usize] == 0 || self.free_head == NONE {
            return None;
        }
        let (lo, hi) = self.candidates(range)?;
        let base = addr_ix as usize * self.words;
        let words = &self.taken[base..base + self.words];
        let start = lo + rng.below(hi - lo + 1);
        let k = match scan_zero(words, start, hi) {
            Some(k) => k,
            None if start > lo => scan_zero(words, lo, start - 1)?,
            None => return None,
        };
        self.taken[base + (k / 64) as usize] |= 1u64 << (k % 64);
        self.free[addr_ix as usize] -= 1;
        let b = self.free_head;
        self.free_head = self.recs[b as usize].next;
        self.recs[b as usize] = Block {
            subscriber: subscriber.into(),
            addr_ix,
            index: k as u16,
            next_of_sub,
            since_ms: now.as_millis(),
            ..EMPTY
        };
        self.owner[addr_ix as usize * self.per_addr as usize + k as usize] = b;
        self.live += 1;
        self.counters.allocated += 1;
        Some(b)
    }

    /// Give back a block [`take`](Self::take) just handed out and nothing used (the
    /// mapping it was taken for failed): not counted, nothing to log.
    pub fn undo_take(&mut self, b: u32) {
        self.counters.allocated -= 1;
        self.free_block(b);
    }

    /// A mapping took a port of block `b`: an idle block is in use again.
    #[inline]
    pub fn use_port(&mut self, b: u32) {
        if self.recs[b as usize].mappings == 0 && self.recs[b as usize].release_ms != 0 {
            self.unlink_idle(b);
        }
        self.recs[b as usize].mappings += 1;
    }

    /// A mapping gave back a port of block `b`; at the last one the block turns idle
    /// and will be released at `now + hold`.
    pub fn unuse(&mut self, b: u32, now: Instant) {
        let r = &mut self.recs[b as usize];
        debug_assert!(r.mappings > 0);
        r.mappings -= 1;
        if r.mappings == 0 {
            // `release_ms` is 0 only while in use: an idle block's is at least 1.
            r.release_ms = (now + self.hold).as_millis().max(1);
            r.prev = self.idle_tail;
            r.next = NONE;
            match self.idle_tail {
                NONE => self.idle_head = b,
                t => self.recs[t as usize].next = b,
            }
            self.idle_tail = b;
            self.idle += 1;
        }
    }

    fn unlink_idle(&mut self, b: u32) {
        let Block { prev, next, .. } = self.recs[b as usize];
        match prev {
            NONE => self.idle_head = next,
            p => self.recs[p as usize].next = next,
        }
        match next {
            NONE => self.idle_tail = prev,
            n => self.recs[n as usize].prev = prev,
        }
        let r = &mut self.recs[b as usize];
        r.prev = NONE;
        r.next = NONE;
        r.release_ms = 0;
        self.idle -= 1;
    }

    /// When the oldest idle block is due for release.
    pub fn next_release(&self) -> Option<Instant> {
        (self.idle_head != NONE).then(|| Instant::from_millis(self.recs[self.idle_head as usize].release_ms))
    }

    /// The oldest idle block if its hold has passed, taken off the idle list (still
    /// held: the caller unlinks it from its subscriber, logs it, and
    /// [`release`](Self::release)s it).
    pub fn pop_due(&mut self, now: Instant) -> Option<u32> {
        let b = self.idle_head;
        if b == NONE || self.recs[b as usize].release_ms > now.as_millis() {
            return None;
        }
        self.unlink_idle(b);
        Some(b)
    }

    /// Give block `b` (held, not idle, no mapping) back to the pool.
    pub fn release(&mut self, b: u32) {
        self.free_block(b);
        self.counters.released += 1;
    }

    fn free_block(&mut self, b: u32) {
        let r = self.recs[b as usize];
        debug_assert!(r.mappings == 0 && r.release_ms == 0);
        let k = u32::from(r.index);
        let base = r.addr_ix as usize * self.words;
        self.taken[base + (k / 64) as usize] &= !(1u64 << (k % 64));
        self.free[r.addr_ix as usize] += 1;
        self.owner[r.addr_ix as usize * self.per_addr as usize + k as usize] = NONE;
        self.recs[b as usize] = Block { next: self.free_head, ..EMPTY };
        self.free_head = b;
        self.live -= 1;
    }

    /// Block `b` as the control plane shows it (`addrs`: the pool, by index).
    pub fn info(&self, b: u32, addrs: &[Ipv4Addr], now: Instant) -> BlockInfo {
        let r = &self.recs[b as usize];
        BlockInfo {
            subscriber: Ipv4Addr::from(r.subscriber),
            outside: addrs[r.addr_ix as usize],
            ports: self.span_of(u32::from(r.index)),
            mappings: r.mappings,
            held: Duration::from_millis(now.as_millis().saturating_sub(r.since_ms)),
            release_in: (r.release_ms != 0)
                .then(|| Duration::from_millis(r.release_ms.saturating_sub(now.as_millis()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUB: Ipv4Addr = Ipv4Addr::new(100, 64, 0, 2);

    fn blocks(addrs: usize, slice: PortRange, size: u32, cap: u32) -> PortBlocks {
        PortBlocks::new(addrs, slice, size, cap, Duration::from_secs(120))
    }

    #[test]
    fn layout_and_port_to_block() {
        // A second worker's slice of 1024-65535: 33280-65535 (32256 ports), blocks of 100.
        let slice = PortRange::new(33280, 65535);
        let mut b = blocks(2, slice, 100, 1000);
        assert_eq!(b.per_addr(), 322, "the top 56 ports are not in any block");
        let mut rng = PortRng::new(1);
        let x = b.take(1, None, SUB, NONE, &mut rng, Instant::from_secs(5)).unwrap();
        let (ix, span) = b.span(x);
        assert_eq!(ix, 1);
        assert_eq!(span.len(), 100);
        assert_eq!((u32::from(span.lo) - 33280) % 100, 0, "aligned on the slice");
        for p in [span.lo, span.hi, span.lo + 50] {
            assert_eq!(b.block_of(1, p), Some(x));
            assert_eq!(b.block_of(0, p), None, "the same ports of another address");
        }
        assert_eq!(b.block_of(1, span.lo.wrapping_sub(1)), None);
        assert_eq!(b.block_of(1, 65535), None, "past the last block");
        assert_eq!(b.block_of(1, 1000), None, "below the slice");
        let i = b.info(x, &[Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)], Instant::from_secs(65));
        assert_eq!((i.subscriber, i.outside, i.ports, i.mappings), (SUB, Ipv4Addr::new(192, 0, 2, 2), span, 0));
        assert_eq!((i.held, i.release_in), (Duration::from_secs(60), None));
    }

    #[test]
    fn takes_every_block_once_then_fails_and_respects_a_range() {
        let slice = PortRange::new(1024, 1024 + 64 * 10 - 1);
        let mut b = blocks(1, slice, 64, 100);
        let mut rng = PortRng::new(2);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10 {
            let x = b.take(0, None, SUB, NONE, &mut rng, Instant::ZERO).unwrap();
            assert!(seen.insert(b.span(x).1.lo));
        }
        assert_eq!(b.take(0, None, SUB, NONE, &mut rng, Instant::ZERO), None, "address exhausted");
        assert_eq!(b.live(), 10);

        let mut b = blocks(1, slice, 64, 100);
        // Ports 1100-1200 meet blocks 1 (1088-1151) and 2 (1152-1215) only.
        let r = Some(PortRange::new(1100, 1200));
        let x = b.take(0, r, SUB, NONE, &mut rng, Instant::ZERO).unwrap();
        let y = b.take(0, r, SUB, x, &mut rng, Instant::ZERO).unwrap();
        let mut got = [b.span(x).1.lo, b.span(y).1.lo];
        got.sort();
        assert_eq!(got, [1088, 1152]);
        assert_eq!(b.take(0, r, SUB, y, &mut rng, Instant::ZERO), None);
        assert_eq!(b.next_of_sub(y), x);
        assert_eq!(b.take(0, Some(PortRange::new(100, 900)), SUB, NONE, &mut rng, Instant::ZERO), None);
    }

    #[test]
    fn record_capacity_bounds_what_is_held() {
        let mut b = blocks(4, PortRange::new(1024, 65535), 64, 3);
        let mut rng = PortRng::new(3);
        for ix in 0..3 {
            assert!(b.take(ix, None, SUB, NONE, &mut rng, Instant::ZERO).is_some());
        }
        assert_eq!(b.take(3, None, SUB, NONE, &mut rng, Instant::ZERO), None, "no record left");
        assert_eq!(b.capacity(), 3);
    }

    #[test]
    fn idle_blocks_wait_for_the_hold_and_come_back_to_their_subscriber() {
        let mut b = blocks(1, PortRange::new(1024, 2047), 64, 16);
        let mut rng = PortRng::new(4);
        let t0 = Instant::from_secs(10);
        let x = b.take(0, None, SUB, NONE, &mut rng, t0).unwrap();
        let y = b.take(0, None, SUB, x, &mut rng, t0).unwrap();
        b.use_port(x);
        b.use_port(x);
        b.use_port(y);
        b.unuse(x, t0);
        assert_eq!((b.idle(), b.next_release()), (0, None), "x still has a mapping");
        b.unuse(x, Instant::from_secs(20));
        b.unuse(y, Instant::from_secs(30));
        assert_eq!(b.idle(), 2);
        assert_eq!(b.next_release(), Some(Instant::from_secs(140)));
        assert_eq!(b.pop_due(Instant::from_millis(139_999)), None);
        // x is taken up again before its release: off the idle list, y is next.
        b.use_port(x);
        assert_eq!(b.next_release(), Some(Instant::from_secs(150)));
        assert_eq!(b.pop_due(Instant::from_secs(149)), None);
        assert_eq!(b.pop_due(Instant::from_secs(150)), Some(y));
        assert_eq!(b.info(y, &[Ipv4Addr::LOCALHOST], Instant::from_secs(150)).release_in, None);
        b.release(y);
        assert_eq!((b.live(), b.idle(), b.counters.released), (1, 0, 1));
        assert_eq!(b.block_of(0, b.span(x).1.lo), Some(x));
        // x idle again: the release time counts from its new last use.
        b.unuse(x, Instant::from_secs(200));
        let i = b.info(x, &[Ipv4Addr::LOCALHOST], Instant::from_secs(260));
        assert_eq!(i.release_in, Some(Duration::from_secs(60)));
        assert_eq!(b.pop_due(Instant::from_secs(320)), Some(x));
        b.release(x);
        assert_eq!((b.live(), b.counters.allocated, b.counters.released), (0, 2, 2));
        // Everything is free again: all 16 blocks can be taken.
        for _ in 0..16 {
            assert!(b.take(0, None, SUB, NONE, &mut rng, Instant::ZERO).is_some());
        }
    }

    #[test]
    fn undo_take_is_not_counted() {
        let mut b = blocks(1, PortRange::new(1024, 1151), 64, 4);
        let mut rng = PortRng::new(5);
        let x = b.take(0, None, SUB, NONE, &mut rng, Instant::ZERO).unwrap();
        b.undo_take(x);
        assert_eq!((b.live(), b.counters), (0, BlockCounters::default()));
        assert!(b.take(0, None, SUB, NONE, &mut rng, Instant::ZERO).is_some());
        assert!(b.take(0, None, SUB, NONE, &mut rng, Instant::ZERO).is_some());
    }
}
