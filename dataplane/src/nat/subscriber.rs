//! Per-subscriber accounting: paired pooling and limits.
//!
//! A subscriber is an inside address. Its record remembers the external address its
//! first mapping took — **paired pooling** (RFC 4787 REQ-2): all its
//! mappings, TCP, UDP and ICMP, use that one address — and counts its external ports
//! (mappings; limit `ports_per_subscriber`, RFC 6888 REQ-4) and sessions (limit
//! `sessions_per_subscriber`). With port block allocation it also heads the list of the
//! subscriber's port blocks ([`super::blocks`]). The record exists while either count is
//! non-zero or it holds a block.
//!
//! It also holds the subscriber's **new-session token bucket** (`new_sessions_per_second`,
//! `new_sessions_burst`): [`Subscribers::admit`] takes a token for each session the
//! subscriber opens. A record starts with a full bucket less the token of the session
//! that creates it; a subscriber whose record went away (nothing held) starts afresh.
//!
//! Inline Robin Hood slots of 28 bytes at load ≤ 0.9 (`RobinHood::new_dense`: the
//! table is sized for a worst case of four sessions per subscriber); sized by
//! `max_subscribers`. The slot keeps no address: its tag is a keyed *bijection* of the
//! address ([`AddrTag`]), so equal tags mean equal addresses and a lookup compares tags
//! only.
//!
//! Creating a session reads its subscriber ([`Subscribers::get`], limits and paired
//! address) and then updates it ([`Subscribers::adjust`]): the position `get` found is
//! kept as a hint, and `adjust` uses it when the slot there still holds the same
//! address — checked by content, so a hint made stale by an insert or removal in
//! between costs one comparison, never a wrong answer.

use super::blocks;
use super::hash::FlowHasher;
use super::index::{Full, RobinHood, Slot};
use std::cell::Cell;
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug)]
pub(crate) struct SubSlot {
    /// [`AddrTag::tag`] of the subscriber's address (which it stands for).
    tag: u32,
    ports: u32,
    sessions: u32,
    /// Its first port block ([`blocks::NONE`] without).
    block: u32,
    /// Thousandths of a new-session token.
    tokens: u32,
    /// When `tokens` was last refilled (milliseconds, wrapping).
    refilled: u32,
    ext: u16,
    live: bool,
}

impl Slot for SubSlot {
    const EMPTY: Self =
        SubSlot { tag: 0, ports: 0, sessions: 0, block: blocks::NONE, tokens: 0, refilled: 0, ext: 0, live: false };
    fn is_empty(&self) -> bool {
        !self.live
    }
    fn tag(&self) -> u32 {
        self.tag
    }
}

const _: () = assert!(core::mem::size_of::<SubSlot>() == 28);

/// A keyed permutation of the 32-bit addresses: two rounds of MurmurHash3's finalizer
/// (xor-shifts and odd multiplies, each invertible) around xors with two secret words.
/// Being a bijection, the tag identifies the address, so the subscriber table stores and
/// compares tags alone; its output spreads sequential addresses like a hash (the home
/// slot is taken from its high bits).
#[derive(Clone, Copy, Debug)]
pub(crate) struct AddrTag {
    k0: u32,
    k1: u32,
}

impl AddrTag {
    pub fn new(hasher: &FlowHasher) -> Self {
        let k = hasher.hash2(0x7375_6273, 0x006b_6579);
        AddrTag { k0: k as u32, k1: (k >> 32) as u32 }
    }

    #[inline]
    fn fmix(mut x: u32) -> u32 {
        x ^= x >> 16;
        x = x.wrapping_mul(0x85eb_ca6b);
        x ^= x >> 13;
        x = x.wrapping_mul(0xc2b2_ae35);
        x ^ (x >> 16)
    }

    #[inline]
    pub fn tag(&self, addr: u32) -> u32 {
        Self::fmix(Self::fmix(addr ^ self.k0) ^ self.k1)
    }
}

/// A subscriber's accounting, as read by the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// Pool index of its paired external address.
    pub ext: u16,
    /// External ports (mappings) held.
    pub ports: u32,
    /// Sessions held.
    pub sessions: u32,
}

pub(crate) struct Subscribers {
    index: RobinHood<SubSlot>,
    hasher: FlowHasher,
    tagger: AddrTag,
    max: u32,
    /// Where the last `get` or `adjust` found its subscriber (see the module docs).
    hint: Cell<usize>,
    /// New sessions per second per subscriber (0: no limit) and the bucket's size.
    rate: u32,
    burst: u32,
    /// The time of the session being created (milliseconds): new records' refill time.
    clock: u64,
}

impl Subscribers {
    pub fn new(max: u32, hasher: FlowHasher) -> Self {
        Subscribers {
            index: RobinHood::new_dense(max as usize),
            tagger: AddrTag::new(&hasher),
            hasher,
            max,
            hint: Cell::new(0),
            rate: 0,
            burst: 0,
            clock: 0,
        }
    }

    /// The time new records start their bucket at (milliseconds).
    pub fn set_clock(&mut self, now_ms: u64) {
        self.clock = now_ms;
    }

    /// Limit each subscriber to `rate` new sessions per second, `burst` at once.
    pub fn with_rate(mut self, rate: u32, burst: u32) -> Self {
        self.rate = rate;
        self.burst = burst.max(1);
        self
    }

    /// Take a new-session token from `addr`'s bucket at `now_ms` (refilled first):
    /// false if it has none. A subscriber without a record has a full bucket (its
    /// record, created with the session, starts one token short).
    pub fn admit(&mut self, addr: Ipv4Addr, now_ms: u64) -> bool {
        self.clock = now_ms;
        if self.rate == 0 {
            return true;
        }
        let Some(pos) = self.position(self.tag(addr)) else { return true };
        let (rate, cap) = (u64::from(self.rate), u64::from(self.burst) * 1000);
        let s = self.index.get_mut(pos);
        let now = now_ms as u32;
        let elapsed = u64::from(now.wrapping_sub(s.refilled));
        // A clock that went back (or 49 days of wrap) refills nothing.
        if elapsed > 0 && elapsed < 1 << 31 {
            s.tokens = (u64::from(s.tokens) + elapsed * rate).min(cap) as u32;
            s.refilled = now;
        }
        if s.tokens < 1000 {
            return false;
        }
        s.tokens -= 1000;
        true
    }

    #[inline]
    fn tag(&self, addr: Ipv4Addr) -> u32 {
        self.tagger.tag(u32::from(addr))
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_full(&self) -> bool {
        self.index.is_full()
    }

    /// The configured subscriber capacity.
    pub fn capacity(&self) -> u32 {
        self.max
    }

    pub fn memory_bytes(&self) -> usize {
        self.index.capacity() * core::mem::size_of::<SubSlot>()
    }

    /// A 64-bit hash of the subscriber (to spread first picks over the pool).
    pub fn spread(&self, addr: Ipv4Addr) -> u64 {
        self.hasher.hash2(u64::from(u32::from(addr)), 0x9001)
    }

    /// The position of the record of the address whose tag is `tag`: the hint if it
    /// still holds it, else a lookup.
    #[inline]
    fn position(&self, tag: u32) -> Option<usize> {
        let h = self.hint.get();
        if h < self.index.capacity() {
            let s = self.index.get(h);
            if !s.is_empty() && s.tag == tag {
                return Some(h);
            }
        }
        let pos = self.index.find(tag, |_| true)?;
        self.hint.set(pos);
        Some(pos)
    }

    pub fn get(&self, addr: Ipv4Addr) -> Option<Subscriber> {
        let pos = self.position(self.tag(addr))?;
        let s = self.index.get(pos);
        Some(Subscriber { ext: s.ext, ports: s.ports, sessions: s.sessions })
    }

    /// Add `ports` and `sessions` (each −1, 0 or +1) to a subscriber, creating it if
    /// needed and dropping it when both counts reach zero. `ext` becomes the paired
    /// address when the subscriber takes its first port.
    /// A new record starts with a full new-session bucket less one token, as of the
    /// last [`admit`](Self::admit) or [`set_clock`](Self::set_clock).
    pub fn adjust(&mut self, addr: Ipv4Addr, ext: u16, ports: i32, sessions: i32) -> Result<(), Full> {
        let now_ms = self.clock;
        let tag = self.tag(addr);
        let pos = match self.position(tag) {
            Some(p) => p,
            None => {
                debug_assert!(ports >= 0 && sessions >= 0);
                let tokens = self.burst.saturating_sub(1).saturating_mul(1000);
                let slot = SubSlot {
                    tag,
                    ports: 0,
                    sessions: 0,
                    block: blocks::NONE,
                    tokens,
                    refilled: now_ms as u32,
                    ext,
                    live: true,
                };
                let p = self.index.insert(slot)?;
                self.hint.set(p);
                p
            }
        };
        let s = self.index.get_mut(pos);
        if s.ports == 0 && ports > 0 {
            // First port: this is the paired address from now on.
            s.ext = ext;
        }
        s.ports = s.ports.wrapping_add_signed(ports);
        s.sessions = s.sessions.wrapping_add_signed(sessions);
        if s.ports == 0 && s.sessions == 0 && s.block == blocks::NONE {
            self.index.remove_at(pos);
        }
        Ok(())
    }

    /// The first of `addr`'s port blocks ([`blocks::NONE`] if it holds none or is
    /// unknown).
    #[inline]
    pub fn first_block(&self, addr: Ipv4Addr) -> u32 {
        self.position(self.tag(addr)).map_or(blocks::NONE, |p| self.index.get(p).block)
    }

    /// Make `block` the first of `addr`'s port blocks (the subscriber exists); a
    /// subscriber left with no block, port or session goes.
    pub fn set_first_block(&mut self, addr: Ipv4Addr, block: u32) {
        let Some(pos) = self.position(self.tag(addr)) else {
            debug_assert!(false, "a block for an unknown subscriber");
            return;
        };
        let s = self.index.get_mut(pos);
        s.block = block;
        if s.ports == 0 && s.sessions == 0 && s.block == blocks::NONE {
            self.index.remove_at(pos);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        /// Gets and adjusts in any order (the position hint going stale as records come
        /// and go, moved by Robin Hood's shifts) agree with a map.
        #[test]
        fn matches_a_model(ops in prop::collection::vec((0u32..24, 0u8..4, any::<bool>()), 1..300)) {
            let mut t = Subscribers::new(16, FlowHasher::new(9));
            let mut model: HashMap<u32, Subscriber> = HashMap::new();
            for (a, op, port) in ops {
                let addr = Ipv4Addr::from(0x6440_0000 + a);
                match op {
                    0 => {
                        prop_assert_eq!(t.get(addr), model.get(&a).copied());
                    }
                    1 => {
                        let (p, s) = if port { (1, 0) } else { (0, 1) };
                        let r = t.adjust(addr, a as u16, p, s);
                        if model.contains_key(&a) || model.len() < 16 {
                            prop_assert!(r.is_ok());
                            let e = model.entry(a).or_insert(Subscriber { ext: a as u16, ports: 0, sessions: 0 });
                            if e.ports == 0 && p > 0 {
                                e.ext = a as u16;
                            }
                            e.ports += p as u32;
                            e.sessions += s as u32;
                        } else {
                            prop_assert_eq!(r, Err(Full));
                        }
                    }
                    _ => {
                        // take back one port or session, if it has one
                        let Some(e) = model.get_mut(&a) else { continue };
                        let (p, s) = if port && e.ports > 0 { (-1, 0) } else if e.sessions > 0 { (0, -1) } else { (-1, 0) };
                        t.adjust(addr, 0, p, s).unwrap();
                        e.ports = e.ports.wrapping_add_signed(p);
                        e.sessions = e.sessions.wrapping_add_signed(s);
                        if e.ports == 0 && e.sessions == 0 {
                            model.remove(&a);
                        }
                    }
                }
                prop_assert_eq!(t.len(), model.len());
            }
        }
    }

    /// The tag is a permutation: distinct addresses (here a /16 of subscribers and a
    /// sample of the rest) never share one, and one key's tags differ from another's.
    #[test]
    fn address_tags_are_a_keyed_bijection() {
        let t = AddrTag::new(&FlowHasher::new(1));
        let seen: std::collections::HashSet<u32> =
            (0x6440_0000u32..0x6441_0000).chain((0..1u32 << 16).map(|i| i.wrapping_mul(0x9e37_79b9))).collect();
        let tags: std::collections::HashSet<u32> = seen.iter().map(|&a| t.tag(a)).collect();
        assert_eq!(tags.len(), seen.len(), "no two addresses share a tag");
        let other = AddrTag::new(&FlowHasher::new(2));
        let differ = (0x6440_0000u32..0x6440_0100).filter(|&a| t.tag(a) != other.tag(a)).count();
        assert!(differ >= 250, "another key, another permutation ({differ} of 256 differ)");
        // Sequential addresses spread over the table like a hash: each of 16 home
        // buckets (the top 4 bits) gets close to a sixteenth of a /16.
        let mut buckets = [0u32; 16];
        for a in 0x6440_0000u32..0x6441_0000 {
            buckets[(t.tag(a) >> 28) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (3800..4400).contains(&b)), "{buckets:?}");
    }

    #[test]
    fn counts_and_disappears_at_zero() {
        let mut t = Subscribers::new(2, FlowHasher::new(3));
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(t.get(a), None);
        t.adjust(a, 4, 1, 1).unwrap();
        t.adjust(a, 9, 0, 1).unwrap();
        assert_eq!(t.get(a), Some(Subscriber { ext: 4, ports: 1, sessions: 2 }));
        t.adjust(a, 0, -1, -1).unwrap();
        t.adjust(a, 0, 0, -1).unwrap();
        assert_eq!(t.get(a), None);
        t.adjust(Ipv4Addr::new(10, 0, 0, 2), 0, 1, 0).unwrap();
        t.adjust(Ipv4Addr::new(10, 0, 0, 3), 0, 1, 0).unwrap();
        assert!(t.is_full());
        assert_eq!(t.adjust(Ipv4Addr::new(10, 0, 0, 4), 0, 1, 0), Err(Full));
    }

    #[test]
    fn a_subscriber_holding_a_block_stays_until_it_lets_go() {
        let mut t = Subscribers::new(4, FlowHasher::new(4));
        let a = Ipv4Addr::new(10, 0, 0, 1);
        assert_eq!(t.first_block(a), blocks::NONE);
        t.adjust(a, 2, 1, 1).unwrap();
        t.set_first_block(a, 7);
        t.adjust(a, 0, -1, -1).unwrap();
        assert_eq!(t.get(a), Some(Subscriber { ext: 2, ports: 0, sessions: 0 }), "kept by its block");
        assert_eq!(t.first_block(a), 7);
        t.set_first_block(a, 3);
        assert_eq!(t.first_block(a), 3);
        t.set_first_block(a, blocks::NONE);
        assert_eq!(t.get(a), None, "nothing left: gone");
        assert_eq!(t.len(), 0);
    }
}
