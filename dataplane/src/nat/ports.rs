//! External ports: the per-worker partition of the port space and the allocator.
//!
//! ## Partition ([`PortPartition`])
//!
//! Every external address's ports are cut the same way: the privileged range 1–1023
//! and the configured range (default 1024–65535) are each split into `N` contiguous
//! slices, worker `i` owning `[lo + ⌊i·L/N⌋, lo + ⌊(i+1)·L/N⌋ − 1]` of both. A slice
//! never depends on the address, so a return packet's destination port alone names its
//! owner: [`PortPartition::owner_of`] is one comparison and one division. Contiguous
//! slices also map onto NIC flow rules (port ranges) for hardware steering. Port 0 is
//! never allocated.
//!
//! ## Allocation ([`PortAllocator`])
//!
//! ```text
//!  map = (external address, protocol)         bit b = port of this worker's slices:
//!                                             [0, P) privileged slice, [P, P+N) normal
//!  used:  [u64; W] per map   1 = allocated, reserved (static DNAT) or quarantined;
//!                            the pad bits after the last port are 1
//!  full:  [u64; ⌈W/64⌉]      bit w = 1 ⇔ used word w is all ones (a summary)
//!  free:  [u32; 2] per map   free ports per slice: an exhausted slice fails in O(1)
//! ```
//!
//! `W` is 1008 words for a single worker's 64 512 ports, so the summary is 16 words.
//! Choosing a port for a new mapping (RFC 4787 REQ-3, then RFC 6056 §3.3.1):
//!
//! 1. sources below 1024 draw from the privileged slice, others from the normal one
//!    (with an SNAT `--to-ports` range: the range within those slices);
//! 2. keep the source port if it lies in the span and is free (port preservation);
//! 3. else draw one uniformly random start in the span ([`PortRng`], a keyed CSPRNG, so
//!    chosen ports do not predict the next) and take the first free port at or after
//!    it, wrapping round the span — the result of RFC 6056's "simple port
//!    randomization" (Algorithm 1), found in O(1)-ish instead of port by port: the
//!    start's word, then the summary (16 words) for the next word with a free bit,
//!    then that word ([`Bitmaps::first_free`]).
//!
//! One draw and at most a few dozen word operations per allocation, however full the
//! address is: the old scheme (up to eight random probes, each a PRF call, then a
//! linear scan) cost 4× more instructions per mapping as an address filled to 93 %
//! (BENCHMARKS.md, "Microbenchmarks").
//!
//! **Port blocks** (`[nat] port_block_size`, [`super::blocks`]) use the same bitmaps:
//! the block allocator decides which subscriber owns which run of the normal slice, and
//! a mapping takes a port of one of its subscriber's blocks with
//! [`PortAllocator::alloc_in`] (the same choice as above, restricted to the block's
//! span) and gives it back with [`PortAllocator::free_now`] — no per-port quarantine,
//! because a block's ports can only reach its own subscriber; the block as a whole is
//! held back instead.
//!
//! ## Quarantine
//!
//! A freed port is not handed out again for `hold` (120 s by default), so a late
//! packet of the old flow cannot reach a new subscriber. Freed ports wait in a FIFO
//! ring of (bit, release second) — FIFO is release order because the hold is the same
//! for all — with a bounded capacity; if it ever fills, the oldest entry is released
//! early and counted (`quarantine_overflow`). Each entry is 8 bytes.

use super::hash::PortRng;
use super::key::Proto;
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;

/// An inclusive port range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    pub const fn new(lo: u16, hi: u16) -> Self {
        PortRange { lo, hi }
    }

    /// Number of ports (0 if `lo > hi`).
    pub const fn len(self) -> u32 {
        if self.lo > self.hi {
            0
        } else {
            self.hi as u32 - self.lo as u32 + 1
        }
    }

    pub const fn is_empty(self) -> bool {
        self.lo > self.hi
    }

    pub const fn contains(self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    pub fn intersect(self, o: PortRange) -> PortRange {
        PortRange::new(self.lo.max(o.lo), self.hi.min(o.hi))
    }
}

/// Ports a privileged source (port < 1024) is mapped into.
pub const PRIVILEGED: PortRange = PortRange::new(1, 1023);

/// Why a partition cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    #[error("worker count must be between 1 and 1023")]
    Workers,
    #[error("port range must satisfy 1024 <= lo <= hi and give every worker a port")]
    Range,
}

/// How the external port space is divided among workers. `Copy`, shared by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortPartition {
    workers: u16,
    normal: PortRange,
}

impl PortPartition {
    pub fn new(workers: u16, normal: PortRange) -> Result<Self, PartitionError> {
        if workers == 0 || u32::from(workers) > PRIVILEGED.len() {
            return Err(PartitionError::Workers);
        }
        if normal.lo < 1024 || normal.is_empty() || normal.len() < u32::from(workers) {
            return Err(PartitionError::Range);
        }
        Ok(PortPartition { workers, normal })
    }

    pub fn workers(&self) -> u16 {
        self.workers
    }

    /// The configured (non-privileged) range.
    pub fn range(&self) -> PortRange {
        self.normal
    }

    fn split(r: PortRange, n: u16, i: u16) -> PortRange {
        let l = u64::from(r.len());
        let (n, i) = (u64::from(n), u64::from(i));
        let lo = u64::from(r.lo) + i * l / n;
        let hi = u64::from(r.lo) + (i + 1) * l / n - 1;
        PortRange::new(lo as u16, hi as u16)
    }

    /// Worker `worker`'s slice of the privileged or the normal range.
    pub fn slice(&self, worker: u16, privileged: bool) -> PortRange {
        let r = if privileged { PRIVILEGED } else { self.normal };
        Self::split(r, self.workers, worker)
    }

    /// The worker that owns external port `port` on every external address, or `None`
    /// for port 0 and ports outside both ranges (never allocated by anyone).
    #[inline]
    pub fn owner_of(&self, port: u16) -> Option<u16> {
        let r = if PRIVILEGED.contains(port) {
            PRIVILEGED
        } else if self.normal.contains(port) {
            self.normal
        } else {
            return None;
        };
        // Largest i with lo + ⌊i·L/N⌋ <= port, i.e. ⌊(N·(x+1) − 1) / L⌋.
        let x = u32::from(port - r.lo);
        let n = u32::from(self.workers);
        Some(((n * (x + 1) - 1) / r.len()) as u16)
    }
}

/// Counters of the allocator (plain integers, owned by the worker).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortCounters {
    /// Ports handed out.
    pub allocated: u64,
    /// Of those, ports equal to the source port.
    pub preserved: u64,
    /// Of those, ports found in another word than their random start's (that word had
    /// no free port in the span): the free-word summary located them.
    pub searched: u64,
    /// Ports returned (into quarantine).
    pub freed: u64,
    /// Ports released before their hold because the quarantine ring was full.
    pub quarantine_overflow: u64,
}

#[derive(Clone, Copy, Debug)]
struct Held {
    /// Global bit: map * bits_per_map + bit.
    bit: u32,
    /// Second (on the `Instant` line) from which the port may be reused.
    release_s: u32,
}

/// One (external address) of a worker's port space: how many ports it owns per
/// protocol and how many of them mappings use, by protocol ([`Proto::code`] order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortUse {
    pub addr: Ipv4Addr,
    /// Ports of this worker's slices (privileged and normal), per protocol.
    pub capacity: u32,
    /// Ports held by live mappings, indexed by [`Proto::code`]. Reserved (static DNAT)
    /// and quarantined ports are not counted.
    pub in_use: [u32; 3],
}

/// A port is already in use, so it cannot be reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortInUse;

/// The bitmaps of every map (external address × protocol): `used` and its `full`-word
/// summary (see the module docs). Bits are numbered within a map.
struct Bitmaps {
    used: Box<[u64]>,
    full: Box<[u64]>,
    /// `used` words per map (the last one padded with ones).
    words: usize,
    /// `full` words per map.
    summary_words: usize,
}

/// Bits `0..n` set (`n` in 0..=64).
#[inline]
fn low_bits(n: u32) -> u64 {
    if n >= 64 {
        u64::MAX
    } else {
        (1u64 << n) - 1
    }
}

/// The first zero bit in `[lo, hi]` of `words`, scanning word by word (with `lo` and
/// `hi` bits of the same array). Used on the summary and on short ranges.
#[inline]
pub(super) fn scan_zero(words: &[u64], lo: u32, hi: u32) -> Option<u32> {
    debug_assert!(lo <= hi);
    let last = (hi / 64) as usize;
    let mut w = (lo / 64) as usize;
    let mut m = words[w] | low_bits(lo % 64);
    loop {
        if w == last {
            m |= !low_bits(hi % 64 + 1);
        }
        if m != u64::MAX {
            return Some(w as u32 * 64 + m.trailing_ones());
        }
        if w == last {
            return None;
        }
        w += 1;
        m = words[w];
    }
}

impl Bitmaps {
    /// `maps` bitmaps of `bits` bits each, all free.
    fn new(maps: usize, bits: u32) -> Self {
        let words = (bits as usize).div_ceil(64).max(1);
        let summary_words = words.div_ceil(64);
        let mut used = vec![0u64; maps * words].into_boxed_slice();
        let pad = bits % 64;
        if pad != 0 {
            for m in 0..maps {
                used[m * words + words - 1] = !low_bits(pad);
            }
        }
        Bitmaps { used, full: vec![0u64; maps * summary_words].into_boxed_slice(), words, summary_words }
    }

    fn memory_bytes(&self) -> usize {
        (self.used.len() + self.full.len()) * 8
    }

    /// The `used` words of a map.
    #[inline]
    fn words_of(&self, map: usize) -> &[u64] {
        &self.used[map * self.words..(map + 1) * self.words]
    }

    #[inline]
    fn test(&self, map: usize, bit: u32) -> bool {
        self.used[map * self.words + (bit / 64) as usize] & (1u64 << (bit % 64)) != 0
    }

    #[inline]
    fn set(&mut self, map: usize, bit: u32) {
        let w = (bit / 64) as usize;
        let word = &mut self.used[map * self.words + w];
        debug_assert!(*word & (1u64 << (bit % 64)) == 0);
        *word |= 1u64 << (bit % 64);
        if *word == u64::MAX {
            self.full[map * self.summary_words + w / 64] |= 1u64 << (w % 64);
        }
    }

    #[inline]
    fn clear(&mut self, map: usize, bit: u32) {
        let w = (bit / 64) as usize;
        let word = &mut self.used[map * self.words + w];
        debug_assert!(*word & (1u64 << (bit % 64)) != 0);
        *word &= !(1u64 << (bit % 64));
        self.full[map * self.summary_words + w / 64] &= !(1u64 << (w % 64));
    }

    /// The first free bit in `[lo, hi]` of a map: the first word (masked), then the
    /// summary for the next word that is not full, strictly inside the range (any of its
    /// free bits is in range), then the last word (masked).
    fn first_free(&self, map: usize, lo: u32, hi: u32) -> Option<u32> {
        if lo > hi {
            return None;
        }
        let used = self.words_of(map);
        let (first, last) = (lo / 64, hi / 64);
        if first == last {
            return scan_zero(used, lo, hi);
        }
        if let Some(bit) = scan_zero(used, lo, first * 64 + 63) {
            return Some(bit);
        }
        if first + 1 < last {
            let full = &self.full[map * self.summary_words..(map + 1) * self.summary_words];
            if let Some(w) = scan_zero(full, first + 1, last - 1) {
                let word = used[w as usize];
                debug_assert!(word != u64::MAX, "the summary says word {w} has a free bit");
                return Some(w * 64 + word.trailing_ones());
            }
        }
        scan_zero(used, last * 64, hi)
    }
}

/// Port state of one worker for all external addresses and protocols.
pub(crate) struct PortAllocator {
    addrs: Box<[Ipv4Addr]>,
    /// This worker's slices: [privileged, normal].
    slices: [PortRange; 2],
    bits_per_map: u32,
    maps: Bitmaps,
    /// Free ports per map and slice.
    free: Box<[[u32; 2]]>,
    /// Ports held by mappings per map (allocated and not yet freed): plain integers,
    /// updated on `alloc`/`free`, read by the control plane through the mailbox.
    in_use: Box<[u32]>,
    ring: Box<[Held]>,
    head: usize,
    held: usize,
    hold: Duration,
    pub counters: PortCounters,
}

impl PortAllocator {
    /// `addrs` sorted and unique; `quarantine` ring capacity (≥ 1).
    pub fn new(addrs: &[Ipv4Addr], partition: PortPartition, worker: u16, hold: Duration, quarantine: usize) -> Self {
        let slices = [partition.slice(worker, true), partition.slice(worker, false)];
        let bits_per_map = slices[0].len() + slices[1].len();
        let nmaps = addrs.len() * Proto::ALL.len();
        assert!(
            (nmaps as u64) * u64::from(bits_per_map) < u64::from(u32::MAX),
            "port space of this worker exceeds 2^32 ports"
        );
        let free = vec![[slices[0].len(), slices[1].len()]; nmaps].into_boxed_slice();
        PortAllocator {
            addrs: addrs.into(),
            slices,
            bits_per_map,
            maps: Bitmaps::new(nmaps, bits_per_map),
            free,
            in_use: vec![0u32; nmaps].into_boxed_slice(),
            ring: vec![Held { bit: 0, release_s: 0 }; quarantine.max(1)].into_boxed_slice(),
            head: 0,
            held: 0,
            hold,
            counters: PortCounters::default(),
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.maps.memory_bytes()
            + self.free.len() * 8
            + self.in_use.len() * 4
            + self.ring.len() * core::mem::size_of::<Held>()
    }

    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }

    /// Index of an external address in the pool.
    pub fn addr_index(&self, a: Ipv4Addr) -> Option<u16> {
        self.addrs.binary_search(&a).ok().map(|i| i as u16)
    }

    #[inline]
    fn map_of(addr_ix: u16, proto: Proto) -> usize {
        addr_ix as usize * Proto::ALL.len() + proto.code()
    }

    /// (slice class, bit) of a port in this worker's slices.
    #[inline]
    fn bit_of(&self, port: u16) -> Option<(usize, u32)> {
        if self.slices[0].contains(port) {
            Some((0, u32::from(port - self.slices[0].lo)))
        } else if self.slices[1].contains(port) {
            Some((1, self.slices[0].len() + u32::from(port - self.slices[1].lo)))
        } else {
            None
        }
    }

    fn port_of(&self, bit: u32) -> u16 {
        let p = self.slices[0].len();
        if bit < p {
            self.slices[0].lo + bit as u16
        } else {
            self.slices[1].lo + (bit - p) as u16
        }
    }

    #[inline]
    fn test(&self, map: usize, bit: u32) -> bool {
        self.maps.test(map, bit)
    }

    fn set(&mut self, map: usize, class: usize, bit: u32) {
        self.maps.set(map, bit);
        self.free[map][class] -= 1;
    }

    fn clear(&mut self, map: usize, class: usize, bit: u32) {
        self.maps.clear(map, bit);
        self.free[map][class] += 1;
    }

    /// Whether `port` is free (in this worker's slices, not used, reserved or held).
    #[cfg(test)]
    pub fn is_free(&self, addr_ix: u16, proto: Proto, port: u16) -> bool {
        match self.bit_of(port) {
            Some((_, bit)) => !self.test(Self::map_of(addr_ix, proto), bit),
            None => false,
        }
    }

    /// Pick and take a port for a mapping whose source port is `want`.
    ///
    /// `range` restricts the choice (SNAT `--to-source a:lo-hi`); without it the source
    /// port's class decides the slice (privileged below 1024).
    pub fn alloc(
        &mut self,
        addr_ix: u16,
        proto: Proto,
        want: u16,
        range: Option<PortRange>,
        rng: &mut PortRng,
    ) -> Option<u16> {
        let map = Self::map_of(addr_ix, proto);
        let first = usize::from(want >= 1024);
        // Without a range the source's class decides; with one, try it first.
        let tries = if range.is_some() { 2 } else { 1 };
        for class in [first, 1 - first].into_iter().take(tries) {
            if self.free[map][class] == 0 {
                continue;
            }
            let span = match range {
                Some(r) => self.slices[class].intersect(r),
                None => self.slices[class],
            };
            if span.is_empty() {
                continue;
            }
            if let Some(port) = self.pick(map, class, span, want, rng) {
                self.counters.allocated += 1;
                self.in_use[map] += 1;
                return Some(port);
            }
        }
        None
    }

    fn pick(&mut self, map: usize, class: usize, span: PortRange, want: u16, rng: &mut PortRng) -> Option<u16> {
        if span.contains(want) {
            let (_, bit) = self.bit_of(want).expect("span is inside a slice");
            if !self.test(map, bit) {
                self.set(map, class, bit);
                self.counters.preserved += 1;
                return Some(want);
            }
        }
        let (_, b0) = self.bit_of(span.lo).expect("span is inside a slice");
        let end = b0 + span.len() - 1;
        let start = b0 + rng.below(span.len());
        // Most of the time the start's own word has a free port at or after it.
        let next_word = (start / 64 + 1) * 64;
        let bit = match scan_zero(self.maps.words_of(map), start, end.min(next_word - 1)) {
            Some(bit) => bit,
            None => {
                self.counters.searched += 1;
                let after = if next_word <= end { self.maps.first_free(map, next_word, end) } else { None };
                match after {
                    Some(bit) => bit,
                    None => self.maps.first_free(map, b0, start.checked_sub(1)?)?,
                }
            }
        };
        self.set(map, class, bit);
        Some(self.port_of(bit))
    }

    /// Pick and take a port of `span`, a run of this worker's normal slice (a port
    /// block's ports, or part of them): `want` if it lies in the span and is free, else
    /// the first free port from a random start, wrapping round the span — the choice
    /// [`alloc`](Self::alloc) makes, restricted to the span.
    pub fn alloc_in(
        &mut self,
        addr_ix: u16,
        proto: Proto,
        want: u16,
        span: PortRange,
        rng: &mut PortRng,
    ) -> Option<u16> {
        let map = Self::map_of(addr_ix, proto);
        debug_assert!(span.is_empty() || (self.slices[1].contains(span.lo) && self.slices[1].contains(span.hi)));
        if self.free[map][1] == 0 || span.is_empty() {
            return None;
        }
        let port = self.pick(map, 1, span, want, rng)?;
        self.counters.allocated += 1;
        self.in_use[map] += 1;
        Some(port)
    }

    /// Return a port at once, without quarantine (a port block's port: it can only
    /// be handed out again to the block's own subscriber).
    pub fn free_now(&mut self, addr_ix: u16, proto: Proto, port: u16) {
        let map = Self::map_of(addr_ix, proto);
        let Some((class, bit)) = self.bit_of(port) else {
            debug_assert!(false, "freeing a port outside this worker's slices");
            return;
        };
        debug_assert!(self.test(map, bit));
        self.clear(map, class, bit);
        self.counters.freed += 1;
        self.in_use[map] = self.in_use[map].saturating_sub(1);
    }

    /// Return a port: it stays unavailable until `now + hold`.
    pub fn free(&mut self, addr_ix: u16, proto: Proto, port: u16, now: Instant) {
        let map = Self::map_of(addr_ix, proto);
        let Some((_, bit)) = self.bit_of(port) else {
            debug_assert!(false, "freeing a port outside this worker's slices");
            return;
        };
        debug_assert!(self.test(map, bit));
        self.counters.freed += 1;
        self.in_use[map] = self.in_use[map].saturating_sub(1);
        if self.held == self.ring.len() {
            // Full: release the oldest early rather than lose track of this one.
            self.pop_held();
            self.counters.quarantine_overflow += 1;
        }
        let release_ms = now.as_millis() + self.hold.as_millis();
        let tail = (self.head + self.held) % self.ring.len();
        self.ring[tail] = Held {
            bit: map as u32 * self.bits_per_map + bit,
            release_s: release_ms.div_ceil(1000).min(u64::from(u32::MAX)) as u32,
        };
        self.held += 1;
    }

    fn pop_held(&mut self) {
        let h = self.ring[self.head];
        self.head = (self.head + 1) % self.ring.len();
        self.held -= 1;
        let map = (h.bit / self.bits_per_map) as usize;
        let bit = h.bit % self.bits_per_map;
        let class = usize::from(bit >= self.slices[0].len());
        self.clear(map, class, bit);
    }

    /// Make ports whose hold has passed available again; at most `budget`.
    pub fn release_due(&mut self, now: Instant, budget: usize) -> usize {
        let mut n = 0;
        while n < budget && self.held > 0 {
            if u64::from(self.ring[self.head].release_s) * 1000 > now.as_millis() {
                break;
            }
            self.pop_held();
            n += 1;
        }
        n
    }

    /// Ports currently in quarantine.
    pub fn held(&self) -> usize {
        self.held
    }

    /// When the oldest held port becomes available.
    pub fn next_release(&self) -> Option<Instant> {
        (self.held > 0).then(|| Instant::from_secs(u64::from(self.ring[self.head].release_s)))
    }

    /// Take a specific port out of the pool (a static DNAT port). Ports outside this
    /// worker's slices are not ours to guard and succeed trivially.
    pub fn reserve(&mut self, addr_ix: u16, proto: Proto, port: u16) -> Result<(), PortInUse> {
        let map = Self::map_of(addr_ix, proto);
        match self.bit_of(port) {
            None => Ok(()),
            Some((_, bit)) if self.test(map, bit) => Err(PortInUse),
            Some((class, bit)) => {
                self.set(map, class, bit);
                Ok(())
            }
        }
    }

    /// Give back a port [`alloc`](Self::alloc) just handed out, at once (no quarantine:
    /// it was never used on the wire).
    pub fn undo_alloc(&mut self, addr_ix: u16, proto: Proto, port: u16) {
        let map = Self::map_of(addr_ix, proto);
        if let Some((class, bit)) = self.bit_of(port) {
            if self.test(map, bit) {
                self.clear(map, class, bit);
                self.in_use[map] = self.in_use[map].saturating_sub(1);
                self.counters.allocated = self.counters.allocated.saturating_sub(1);
            }
        }
    }

    /// Port use of the address with index `addr_ix` (`None` past the end of the pool).
    pub fn usage(&self, addr_ix: usize) -> Option<PortUse> {
        let addr = *self.addrs.get(addr_ix)?;
        let mut in_use = [0u32; 3];
        for p in Proto::ALL {
            in_use[p.code()] = self.in_use[Self::map_of(addr_ix as u16, p)];
        }
        Some(PortUse { addr, capacity: self.bits_per_map, in_use })
    }

    /// Undo [`reserve`](Self::reserve). Only for ports this caller reserved.
    pub fn unreserve(&mut self, addr_ix: u16, proto: Proto, port: u16) {
        let map = Self::map_of(addr_ix, proto);
        if let Some((class, bit)) = self.bit_of(port) {
            if self.test(map, bit) {
                self.clear(map, class, bit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pool() -> Vec<Ipv4Addr> {
        vec![Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)]
    }

    fn alloc1(workers: u16, worker: u16, range: PortRange, quarantine: usize) -> PortAllocator {
        let part = PortPartition::new(workers, range).unwrap();
        PortAllocator::new(&pool(), part, worker, Duration::from_secs(120), quarantine)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Slices of N workers are disjoint, cover both ranges, and owner_of agrees.
        #[test]
        fn partition_is_disjoint_cover(n in 1u16..=8, lo in 1024u16..30000, len in 8u16..35000) {
            let hi = lo.saturating_add(len);
            let p = PortPartition::new(n, PortRange::new(lo, hi)).unwrap();
            for privileged in [true, false] {
                let whole = if privileged { PRIVILEGED } else { PortRange::new(lo, hi) };
                let mut next = whole.lo;
                for w in 0..n {
                    let s = p.slice(w, privileged);
                    prop_assert!(!s.is_empty());
                    prop_assert_eq!(s.lo, next, "slices are contiguous and disjoint");
                    prop_assert_eq!(p.owner_of(s.lo), Some(w));
                    prop_assert_eq!(p.owner_of(s.hi), Some(w));
                    prop_assert_eq!(p.owner_of(s.lo + (s.hi - s.lo) / 2), Some(w));
                    next = s.hi.wrapping_add(1);
                }
                prop_assert_eq!(next.wrapping_sub(1), whole.hi, "slices cover the range");
            }
            prop_assert_eq!(p.owner_of(0), None);
            if lo > 1024 { prop_assert_eq!(p.owner_of(lo - 1), None); }
        }
    }

    #[test]
    fn owner_of_every_port_matches_slices() {
        let p = PortPartition::new(3, PortRange::new(1024, 65535)).unwrap();
        for port in 1..=65535u16 {
            let w = p.owner_of(port).unwrap();
            assert!(p.slice(w, port < 1024).contains(port), "port {port}");
        }
    }

    #[test]
    fn partition_rejects_bad_configs() {
        assert_eq!(PortPartition::new(0, PortRange::new(1024, 65535)), Err(PartitionError::Workers));
        assert_eq!(PortPartition::new(2, PortRange::new(1000, 65535)), Err(PartitionError::Range));
        assert_eq!(PortPartition::new(4, PortRange::new(2000, 2001)), Err(PartitionError::Range));
    }

    #[test]
    fn keeps_source_port_in_slice_else_random_in_slice() {
        let mut a = alloc1(2, 1, PortRange::new(1024, 65535), 64);
        let mut rng = PortRng::new(1);
        let slice = PortPartition::new(2, PortRange::new(1024, 65535)).unwrap().slice(1, false);
        assert!(slice.contains(40000));
        assert_eq!(a.alloc(0, Proto::Udp, 40000, None, &mut rng), Some(40000));
        // Taken: another source on 40000 gets something else in the slice.
        let p = a.alloc(0, Proto::Udp, 40000, None, &mut rng).unwrap();
        assert!(p != 40000 && slice.contains(p));
        // Same port on another protocol or address is independent.
        assert_eq!(a.alloc(0, Proto::Tcp, 40000, None, &mut rng), Some(40000));
        assert_eq!(a.alloc(1, Proto::Udp, 40000, None, &mut rng), Some(40000));
        // Source outside our slice: random within it.
        let q = a.alloc(0, Proto::Udp, 2000, None, &mut rng).unwrap();
        assert!(slice.contains(q));
        assert_eq!(a.counters.preserved, 3);
    }

    #[test]
    fn privileged_sources_stay_below_1024() {
        let mut a = alloc1(4, 2, PortRange::new(1024, 65535), 64);
        let mut rng = PortRng::new(2);
        let mine = PortPartition::new(4, PortRange::new(1024, 65535)).unwrap().slice(2, true);
        for src in [22u16, 80, 123, 1023, 600] {
            let p = a.alloc(0, Proto::Tcp, src, None, &mut rng).unwrap();
            assert!(PRIVILEGED.contains(p) && mine.contains(p), "{src} -> {p}");
        }
        let p = a.alloc(0, Proto::Tcp, 5000, None, &mut rng).unwrap();
        assert!(p >= 1024);
    }

    #[test]
    fn exhausts_then_fails_and_scan_finds_the_last_port() {
        let part = PortPartition::new(1, PortRange::new(1024, 1087)).unwrap();
        let mut a = PortAllocator::new(&pool()[..1], part, 0, Duration::from_secs(120), 256);
        let mut rng = PortRng::new(3);
        let mut got = std::collections::HashSet::new();
        for _ in 0..64 {
            let p = a.alloc(0, Proto::Udp, 5000, None, &mut rng).unwrap();
            assert!(got.insert(p), "no port handed out twice");
        }
        assert_eq!(a.alloc(0, Proto::Udp, 5000, None, &mut rng), None);
        assert_eq!(a.free[Proto::Udp.code()][1], 0);
        assert_eq!(got.len(), 64);
    }

    #[test]
    fn fills_a_whole_address_with_distinct_ports_then_fails() {
        // A single worker's whole normal slice (64 512 ports, 1008 words): every
        // allocation succeeds until none is left, each port once, all from the slice.
        let mut a = alloc1(1, 0, PortRange::new(1024, 65535), 16);
        let mut rng = PortRng::new(11);
        let mut seen = vec![false; 65536];
        for i in 0..64_512u32 {
            let p = a.alloc(0, Proto::Tcp, 2024, None, &mut rng).unwrap_or_else(|| panic!("allocation {i} failed"));
            assert!(p >= 1024 && !seen[usize::from(p)], "port {p} twice or out of the slice");
            seen[usize::from(p)] = true;
        }
        assert_eq!(a.alloc(0, Proto::Tcp, 2024, None, &mut rng), None);
        assert_eq!(a.counters.allocated, 64_512);
        assert!(a.counters.searched > 0, "a nearly full address needs the summary");
        // Free one port: it is found again, wherever the random start falls.
        a.free(0, Proto::Tcp, 33_333, Instant::ZERO);
        a.release_due(Instant::from_secs(1000), 16);
        assert_eq!(a.alloc(0, Proto::Tcp, 2024, None, &mut rng), Some(33_333));
    }

    #[test]
    fn random_choices_spread_over_the_slice() {
        // Port preservation aside, choices are uniform: 4096 allocations in an empty
        // slice fall evenly into 16 equal parts of it (each expects 256).
        let mut a = alloc1(1, 0, PortRange::new(1024, 65535), 16);
        let mut rng = PortRng::new(12);
        let mut parts = [0u32; 16];
        for _ in 0..4096 {
            let p = a.alloc(0, Proto::Udp, 2024, None, &mut rng).unwrap();
            if p != 2024 {
                parts[(u32::from(p - 1024) * 16 / 64_512) as usize] += 1;
            }
        }
        for n in parts {
            assert!((190..330).contains(&n), "uneven: {parts:?}");
        }
    }

    #[test]
    fn explicit_range_on_a_nearly_full_slice_finds_the_last_ports() {
        // SNAT --to-ports on a span that starts and ends inside words: only the span's
        // free ports count, whatever lies free around it.
        let mut a = alloc1(1, 0, PortRange::new(1024, 65535), 16);
        let mut rng = PortRng::new(13);
        let span = PortRange::new(5000, 5199);
        let mut got = std::collections::HashSet::new();
        for _ in 0..200 {
            let p = a.alloc(0, Proto::Udp, 1, Some(span), &mut rng).expect("a port of the span is free");
            assert!(span.contains(p) && got.insert(p));
        }
        assert_eq!(a.alloc(0, Proto::Udp, 1, Some(span), &mut rng), None);
        assert!(a.is_free(0, Proto::Udp, 4999) && a.is_free(0, Proto::Udp, 5200));
    }

    #[test]
    fn quarantine_holds_for_120s_then_releases() {
        let part = PortPartition::new(1, PortRange::new(1024, 1024)).unwrap();
        let mut a = PortAllocator::new(&pool()[..1], part, 0, Duration::from_secs(120), 16);
        let mut rng = PortRng::new(4);
        assert_eq!(a.alloc(0, Proto::Tcp, 1024, None, &mut rng), Some(1024));
        a.free(0, Proto::Tcp, 1024, Instant::from_secs(10));
        assert_eq!(a.held(), 1);
        assert_eq!(a.next_release(), Some(Instant::from_secs(130)));
        a.release_due(Instant::from_millis(129_999), 16);
        assert_eq!(a.alloc(0, Proto::Tcp, 1024, None, &mut rng), None, "held");
        a.release_due(Instant::from_secs(130), 16);
        assert_eq!(a.alloc(0, Proto::Tcp, 1024, None, &mut rng), Some(1024), "available again");
    }

    #[test]
    fn quarantine_overflow_releases_oldest_and_counts() {
        let part = PortPartition::new(1, PortRange::new(1024, 1027)).unwrap();
        let mut a = PortAllocator::new(&pool()[..1], part, 0, Duration::from_secs(120), 2);
        let mut rng = PortRng::new(5);
        let ports: Vec<u16> = (0..4).map(|i| a.alloc(0, Proto::Udp, 1024 + i, None, &mut rng).unwrap()).collect();
        for p in &ports[..3] {
            a.free(0, Proto::Udp, *p, Instant::ZERO);
        }
        assert_eq!(a.counters.quarantine_overflow, 1);
        assert_eq!(a.held(), 2);
        assert!(a.is_free(0, Proto::Udp, ports[0]));
    }

    #[test]
    fn explicit_range_and_reservation() {
        let mut a = alloc1(1, 0, PortRange::new(1024, 65535), 16);
        let mut rng = PortRng::new(6);
        for _ in 0..20 {
            let p = a.alloc(0, Proto::Udp, 40000, Some(PortRange::new(5000, 5009)), &mut rng);
            if let Some(p) = p {
                assert!((5000..=5009).contains(&p));
            }
        }
        assert_eq!(a.alloc(0, Proto::Udp, 1, Some(PortRange::new(5000, 5009)), &mut rng), None);
        assert_eq!(a.reserve(0, Proto::Tcp, 2222), Ok(()));
        assert_eq!(a.reserve(0, Proto::Tcp, 2222), Err(PortInUse));
        assert_eq!(a.alloc(0, Proto::Tcp, 2222, Some(PortRange::new(2222, 2222)), &mut rng), None);
        a.unreserve(0, Proto::Tcp, 2222);
        assert!(a.is_free(0, Proto::Tcp, 2222));
    }

    #[test]
    fn scan_zero_edges() {
        let words = [u64::MAX, !(1u64 << 5), u64::MAX];
        assert_eq!(scan_zero(&words, 0, 191), Some(69));
        assert_eq!(scan_zero(&words, 70, 191), None);
        assert_eq!(scan_zero(&words, 0, 68), None);
        assert_eq!(scan_zero(&[0], 63, 63), Some(63));
    }

    /// The first free bit of `[lo, hi]`, one bit at a time.
    fn naive_first_free(b: &Bitmaps, map: usize, lo: u32, hi: u32) -> Option<u32> {
        (lo..=hi).find(|&i| !b.test(map, i))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        /// `first_free` (word, summary, word) agrees with a bit-by-bit search, and the
        /// summary stays exact, over random sets, clears and ranges.
        #[test]
        fn first_free_matches_a_bit_by_bit_search(
            bits in 1u32..5000,
            density in 0u32..=100,
            clears in prop::collection::vec(any::<u32>(), 0..40),
            ranges in prop::collection::vec((any::<u32>(), any::<u32>()), 1..20),
            seed in any::<u64>(),
        ) {
            let mut b = Bitmaps::new(2, bits);
            let mut rng = PortRng::new(seed);
            for i in 0..bits {
                if rng.below(100) < density {
                    b.set(1, i);
                }
            }
            for c in clears {
                let i = c % bits;
                if b.test(1, i) {
                    b.clear(1, i);
                }
            }
            for w in 0..b.words {
                let full = b.full[b.summary_words + w / 64] & (1u64 << (w % 64)) != 0;
                prop_assert_eq!(full, b.used[b.words + w] == u64::MAX, "summary of word {}", w);
            }
            for (x, y) in ranges {
                let (lo, hi) = (x % bits, y % bits);
                prop_assert_eq!(b.first_free(1, lo, hi), naive_first_free(&b, 1, lo, hi), "[{}, {}]", lo, hi);
                // map 0 is untouched: everything free
                prop_assert_eq!(b.first_free(0, lo, hi), (lo <= hi).then_some(lo));
            }
        }
    }
}
