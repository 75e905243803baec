//! The neighbour (ARP) cache, shared by every worker without locks.
//!
//! ARP replies reach whichever worker's queue the NIC picked, while every worker needs the
//! answer, so the cache is one table of atomics: a fixed, preallocated open-addressing
//! array read with plain relaxed loads on the fast path. Each slot is guarded by a
//! sequence number (a seqlock): a writer takes the slot by moving the sequence to an odd
//! value, writes key, MAC and age, and moves it to the next even value; a reader that sees
//! the sequence change under it treats the slot as unknown for this packet (it never
//! waits). So a slot can be given to another neighbour and a reader still never sees one
//! neighbour's address with another's MAC.
//!
//! Dynamic entries are *fresh* for [`FRESH_SECS`], then *stale* (still used, but the worker
//! asks again) until [`EXPIRE_SECS`], then unusable. Static entries (`[[neighbor]]` in the
//! configuration) never expire. An *incomplete* entry records that a worker asked for an
//! address (it is never used to send); the answer then finds it present.
//!
//! # What an attacker on the link can do to it
//!
//! A key lives within [`PROBE_LIMIT`] slots of its hash, so every lookup and insert looks
//! at no more than that many slots, however full the table is. What gets stored follows
//! RFC 826's "merge" rule, tightened (see [`crate::l3::router`]):
//!
//! - an ARP packet whose sender is already in the table (or incomplete, i.e. asked for)
//!   updates it ([`NeighborTable::merge`]);
//! - a sender not yet in the table is added only when the packet asks for one of our
//!   addresses, only within the router's learning rate, and only into a slot that is
//!   empty or holds an expired, stale or long-incomplete entry
//!   ([`NeighborTable::insert`] with [`Evict::NotFresh`]): a flood of spoofed senders
//!   cannot push out neighbours in use;
//! - an address a worker must resolve (it sends an ARP request) is marked incomplete
//!   ([`NeighborTable::mark_incomplete`]), and may take the slot of the least recently
//!   confirmed dynamic entry in its probe window if nothing older is there, so a
//!   neighbour we need can always be learned.
//!
//! An insert that finds no slot it may take fails with [`TableFull`]; the router counts
//! it as `neighbor_table_full`.

use std::net::Ipv4Addr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use crate::time::Instant;

/// Seconds a learned entry is used without asking again.
pub const FRESH_SECS: u32 = 240;
/// Seconds after which an unrefreshed learned entry is no longer used.
pub const EXPIRE_SECS: u32 = 600;
/// Seconds after which an unanswered incomplete entry may be replaced by anyone.
pub const INCOMPLETE_SECS: u32 = 5;
/// Slots looked at, at most, by a lookup or an insert.
pub const PROBE_LIMIT: usize = 16;

const KEY_PRESENT: u64 = 1 << 48;
const VALUE_VALID: u64 = 1 << 48;
const VALUE_STATIC: u64 = 1 << 49;
const MAC_MASK: u64 = (1 << 48) - 1;

/// Result of a neighbour lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Neighbor {
    /// Known and fresh (or static).
    Fresh([u8; 6]),
    /// Known but old: use it, and send an ARP request to refresh it.
    Stale([u8; 6]),
    /// Unknown, incomplete or expired: resolve first.
    Missing,
}

/// No slot in the address's probe window could take the entry; it was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("neighbour table full")]
pub struct TableFull;

/// Which entries an insert may replace when its probe window has no empty slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evict {
    /// Only expired, stale or long-incomplete dynamic entries (unsolicited learning).
    NotFresh,
    /// Any dynamic entry, the least recently confirmed first (addresses we need).
    Oldest,
}

#[derive(Default)]
#[repr(align(32))]
struct Slot {
    /// Even: stable; odd: a writer is in the slot.
    seq: AtomicU32,
    updated_secs: AtomicU32,
    key: AtomicU64,
    value: AtomicU64,
}

/// A consistent copy of a slot.
#[derive(Clone, Copy)]
struct Snapshot {
    key: u64,
    value: u64,
    updated_secs: u32,
}

impl Slot {
    /// The slot's contents, or `None` if a writer was in it meanwhile.
    #[inline]
    fn read(&self) -> Option<Snapshot> {
        let s1 = self.seq.load(Ordering::Acquire);
        if s1 & 1 != 0 {
            return None;
        }
        let snap = Snapshot {
            key: self.key.load(Ordering::Relaxed),
            value: self.value.load(Ordering::Relaxed),
            updated_secs: self.updated_secs.load(Ordering::Relaxed),
        };
        fence(Ordering::Acquire);
        (self.seq.load(Ordering::Relaxed) == s1).then_some(snap)
    }

    /// Replace the contents if the slot still holds `expected` (by key and value) and no
    /// other writer is in it. Never waits.
    fn write_if(&self, expected: Snapshot, new: Snapshot) -> bool {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 != 0 || self.seq.compare_exchange(s, s | 1, Ordering::Acquire, Ordering::Relaxed).is_err() {
            return false;
        }
        fence(Ordering::Release);
        let unchanged =
            self.key.load(Ordering::Relaxed) == expected.key && self.value.load(Ordering::Relaxed) == expected.value;
        if unchanged {
            self.key.store(new.key, Ordering::Relaxed);
            self.value.store(new.value, Ordering::Relaxed);
            self.updated_secs.store(new.updated_secs, Ordering::Relaxed);
        }
        // Back to even: the next generation if we wrote, the same one if not.
        let next = if unchanged { s.wrapping_add(2) } else { s };
        self.seq.store(next, Ordering::Release);
        unchanged
    }
}

/// One row of [`NeighborTable::entries`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborEntry {
    pub port: u16,
    pub address: Ipv4Addr,
    pub mac: [u8; 6],
    pub is_static: bool,
    pub updated_secs: u32,
}

/// The shared ARP cache.
pub struct NeighborTable {
    slots: Box<[Slot]>,
    mask: usize,
}

fn key_of(port: u16, addr: Ipv4Addr) -> u64 {
    KEY_PRESENT | (u64::from(port) << 32) | u64::from(u32::from(addr))
}

fn mac_to_u64(mac: [u8; 6]) -> u64 {
    mac.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

fn u64_to_mac(v: u64) -> [u8; 6] {
    let b = (v & MAC_MASK).to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

fn secs(now: Instant) -> u32 {
    now.as_secs() as u32
}

/// How willingly a slot is given to a new key: lower is better; `None`: never.
fn victim_rank(s: &Snapshot, now: u32, evict: Evict) -> Option<(u8, u32)> {
    if s.key == 0 {
        return Some((0, 0));
    }
    if s.value & VALUE_STATIC != 0 {
        return None;
    }
    let age = now.wrapping_sub(s.updated_secs);
    let valid = s.value & VALUE_VALID != 0;
    // Older first within a class (larger age, smaller rank key).
    let order = u32::MAX - age;
    if (valid && age >= EXPIRE_SECS) || (!valid && age >= INCOMPLETE_SECS) {
        Some((1, order))
    } else if valid && age >= FRESH_SECS {
        Some((2, order))
    } else if evict == Evict::Oldest {
        Some((3, order))
    } else {
        None
    }
}

impl NeighborTable {
    /// A table for up to `capacity` neighbours (rounded up to a power of two, then doubled
    /// so probe windows stay mostly empty).
    pub fn new(capacity: usize) -> NeighborTable {
        let n = (capacity.max(8) * 2).next_power_of_two();
        let slots: Box<[Slot]> = (0..n).map(|_| Slot::default()).collect();
        NeighborTable { slots, mask: n - 1 }
    }

    /// Slots in the table.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        // Fibonacci hashing of the key.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & self.mask
    }

    /// The probe window of `key`: at most [`PROBE_LIMIT`] slots from its hash on.
    #[inline]
    fn window(&self, key: u64) -> impl Iterator<Item = &Slot> {
        let start = self.start(key);
        (0..PROBE_LIMIT.min(self.slots.len())).map(move |i| &self.slots[(start + i) & self.mask])
    }

    /// The slot holding `key` and a consistent copy of it. A key sits before the first
    /// empty slot of its window (slots are never emptied), so the search stops there.
    #[inline]
    fn find(&self, key: u64) -> Option<(&Slot, Snapshot)> {
        for slot in self.window(key) {
            match slot.key.load(Ordering::Relaxed) {
                0 => return None,
                k if k == key => return slot.read().filter(|s| s.key == key).map(|s| (slot, s)),
                _ => {}
            }
        }
        None
    }

    /// Look up the MAC of `addr` on `port`.
    #[inline]
    pub fn lookup(&self, port: u16, addr: Ipv4Addr, now: Instant) -> Neighbor {
        let Some((_, s)) = self.find(key_of(port, addr)) else { return Neighbor::Missing };
        if s.value & VALUE_VALID == 0 {
            return Neighbor::Missing;
        }
        let mac = u64_to_mac(s.value);
        if s.value & VALUE_STATIC != 0 {
            return Neighbor::Fresh(mac);
        }
        let age = secs(now).wrapping_sub(s.updated_secs);
        if age < FRESH_SECS {
            Neighbor::Fresh(mac)
        } else if age < EXPIRE_SECS {
            Neighbor::Stale(mac)
        } else {
            Neighbor::Missing
        }
    }

    /// RFC 826's merge step: if `addr` is in the table (learned, expired or incomplete),
    /// record `mac` for it now. Static entries are never changed. Returns whether `addr`
    /// was there.
    pub fn merge(&self, port: u16, addr: Ipv4Addr, mac: [u8; 6], now: Instant) -> bool {
        let key = key_of(port, addr);
        let Some((slot, s)) = self.find(key) else { return false };
        if s.value & VALUE_STATIC == 0 {
            let new = Snapshot { key, value: VALUE_VALID | mac_to_u64(mac), updated_secs: secs(now) };
            // A concurrent writer wins; what it wrote is as recent as this.
            slot.write_if(s, new);
        }
        true
    }

    /// Store `mac` for `addr`: merged if present, else in an empty slot of its probe
    /// window or in place of an entry `evict` allows. Static entries are never changed.
    pub fn insert(&self, port: u16, addr: Ipv4Addr, mac: [u8; 6], now: Instant, evict: Evict) -> Result<(), TableFull> {
        if self.merge(port, addr, mac, now) {
            return Ok(());
        }
        self.claim(key_of(port, addr), VALUE_VALID | mac_to_u64(mac), now, evict)
    }

    /// Note that a worker is asking for `addr` (an ARP request goes out), so that its
    /// answer is merged. Does nothing if `addr` is already there.
    pub fn mark_incomplete(&self, port: u16, addr: Ipv4Addr, now: Instant) -> Result<(), TableFull> {
        let key = key_of(port, addr);
        if self.find(key).is_some() {
            return Ok(());
        }
        self.claim(key, 0, now, Evict::Oldest)
    }

    /// Add a permanent entry (from `[[neighbor]]`).
    pub fn add_static(&self, port: u16, addr: Ipv4Addr, mac: [u8; 6]) -> Result<(), TableFull> {
        let key = key_of(port, addr);
        let value = VALUE_VALID | VALUE_STATIC | mac_to_u64(mac);
        for _ in 0..4 {
            if let Some((slot, s)) = self.find(key) {
                if slot.write_if(s, Snapshot { key, value, updated_secs: 0 }) {
                    return Ok(());
                }
                continue;
            }
            return self.claim(key, value, Instant::ZERO, Evict::Oldest);
        }
        Err(TableFull)
    }

    /// Put `key` into the best slot of its window that `evict` allows. A few attempts if
    /// other writers race for the same slot (never a wait).
    fn claim(&self, key: u64, value: u64, now: Instant, evict: Evict) -> Result<(), TableFull> {
        let now_secs = secs(now);
        for _ in 0..4 {
            let mut best: Option<(&Slot, Snapshot, (u8, u32))> = None;
            let mut raced = false;
            for slot in self.window(key) {
                let Some(s) = slot.read() else {
                    raced = true;
                    continue;
                };
                if s.key == key {
                    // Someone stored it meanwhile.
                    return Ok(());
                }
                if let Some(rank) = victim_rank(&s, now_secs, evict) {
                    if best.is_none_or(|(_, _, r)| rank < r) {
                        best = Some((slot, s, rank));
                    }
                }
                if s.key == 0 {
                    break;
                }
            }
            match best {
                Some((slot, s, _)) if slot.write_if(s, Snapshot { key, value, updated_secs: now_secs }) => {
                    return Ok(());
                }
                None if !raced => return Err(TableFull),
                _ => {}
            }
        }
        Err(TableFull)
    }

    /// Every valid entry, for reports and the control plane (not for the fast path).
    pub fn entries(&self) -> Vec<NeighborEntry> {
        self.slots
            .iter()
            .filter_map(|slot| {
                let s = slot.read()?;
                (s.key != 0 && s.value & VALUE_VALID != 0).then(|| NeighborEntry {
                    port: ((s.key >> 32) & 0xffff) as u16,
                    address: Ipv4Addr::from(s.key as u32),
                    mac: u64_to_mac(s.value),
                    is_static: s.value & VALUE_STATIC != 0,
                    updated_secs: s.updated_secs,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 0xa];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 0xb];

    fn at(s: u64) -> Instant {
        Instant::from_secs(s)
    }

    #[test]
    fn learn_age_and_expire() {
        let t = NeighborTable::new(16);
        let ip = Ipv4Addr::new(203, 0, 113, 254);
        let t0 = at(1000);
        assert_eq!(t.lookup(1, ip, t0), Neighbor::Missing);
        assert!(!t.merge(1, ip, MAC_A, t0), "merge never adds");
        assert_eq!(t.lookup(1, ip, t0), Neighbor::Missing);
        t.insert(1, ip, MAC_A, t0, Evict::NotFresh).unwrap();
        assert_eq!(t.lookup(1, ip, t0), Neighbor::Fresh(MAC_A));
        assert_eq!(t.lookup(0, ip, t0), Neighbor::Missing, "keyed by port too");
        let later = |s| at(1000 + s);
        assert_eq!(t.lookup(1, ip, later(u64::from(FRESH_SECS) - 1)), Neighbor::Fresh(MAC_A));
        assert_eq!(t.lookup(1, ip, later(u64::from(FRESH_SECS))), Neighbor::Stale(MAC_A));
        assert_eq!(t.lookup(1, ip, later(u64::from(EXPIRE_SECS))), Neighbor::Missing);
        assert!(t.merge(1, ip, MAC_B, later(700)), "an expired entry is still there to merge");
        assert_eq!(t.lookup(1, ip, later(700)), Neighbor::Fresh(MAC_B));
    }

    #[test]
    fn static_entries_never_expire_nor_change() {
        let t = NeighborTable::new(4);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        t.add_static(0, ip, MAC_A).unwrap();
        t.insert(0, ip, MAC_B, at(5), Evict::Oldest).unwrap();
        assert!(t.merge(0, ip, MAC_B, at(6)));
        assert_eq!(t.lookup(0, ip, at(1_000_000)), Neighbor::Fresh(MAC_A));
        let e = t.entries();
        assert_eq!(e.len(), 1);
        assert!(e[0].is_static && e[0].mac == MAC_A && e[0].address == ip && e[0].port == 0);
        // Replacing a static entry's MAC (configuration) is allowed.
        t.add_static(0, ip, MAC_B).unwrap();
        assert_eq!(t.lookup(0, ip, at(7)), Neighbor::Fresh(MAC_B));
    }

    #[test]
    fn an_incomplete_entry_is_missing_until_its_answer_merges() {
        let t = NeighborTable::new(16);
        let ip = Ipv4Addr::new(100, 64, 0, 9);
        t.mark_incomplete(0, ip, at(1)).unwrap();
        assert_eq!(t.lookup(0, ip, at(1)), Neighbor::Missing);
        assert!(t.entries().is_empty(), "incomplete entries are not listed");
        assert!(t.merge(0, ip, MAC_A, at(2)), "the answer finds it");
        assert_eq!(t.lookup(0, ip, at(2)), Neighbor::Fresh(MAC_A));
        // Marking a known address changes nothing.
        t.mark_incomplete(0, ip, at(3)).unwrap();
        assert_eq!(t.lookup(0, ip, at(3)), Neighbor::Fresh(MAC_A));
    }

    /// Fill a small table with fresh unsolicited entries: more are refused (fresh entries
    /// are never pushed out by them), a neighbour we ask for still gets a slot, and once
    /// the flood's entries go stale new ones reuse their slots.
    #[test]
    fn slots_are_reused_and_fresh_entries_survive_a_flood() {
        let t = NeighborTable::new(8); // 16 slots: one probe window is the whole table
        assert_eq!(t.slots(), 16);
        let flood = |i: u32| Ipv4Addr::from(0x6440_0000 + i);
        let mut stored = 0;
        for i in 0..100u32 {
            if t.insert(0, flood(i), MAC_A, at(10), Evict::NotFresh).is_ok() {
                stored += 1;
            }
        }
        assert_eq!(stored, 16);
        assert_eq!(t.insert(0, flood(1000), MAC_A, at(11), Evict::NotFresh), Err(TableFull));
        for i in 0..16u32 {
            assert_eq!(t.lookup(0, flood(i), at(11)), Neighbor::Fresh(MAC_A), "{i}");
        }
        // A next hop we resolve takes the least recently confirmed entry's slot.
        t.merge(0, flood(3), MAC_B, at(12)); // refreshed: not the victim
        let gw = Ipv4Addr::new(100, 64, 0, 1);
        t.mark_incomplete(0, gw, at(12)).unwrap();
        assert!(t.merge(0, gw, MAC_B, at(12)));
        assert_eq!(t.lookup(0, gw, at(12)), Neighbor::Fresh(MAC_B));
        assert_eq!(t.lookup(0, flood(3), at(12)), Neighbor::Fresh(MAC_B));
        assert_eq!(t.entries().len(), 16);
        // The flood goes stale; a new sender reuses a slot, the refreshed entries stay.
        let later = at(10 + u64::from(FRESH_SECS));
        let newcomer = Ipv4Addr::new(100, 64, 7, 7);
        t.insert(0, newcomer, MAC_B, later, Evict::NotFresh).unwrap();
        assert_eq!(t.lookup(0, newcomer, later), Neighbor::Fresh(MAC_B));
        assert_eq!(t.lookup(0, gw, later), Neighbor::Fresh(MAC_B));
        assert_eq!(t.lookup(0, flood(3), later), Neighbor::Fresh(MAC_B));
        assert_eq!(t.entries().len(), 16);
    }

    #[test]
    fn static_entries_are_never_victims() {
        let t = NeighborTable::new(8);
        for i in 0..16u32 {
            t.add_static(0, Ipv4Addr::from(i + 1), MAC_A).unwrap();
        }
        assert_eq!(t.add_static(0, Ipv4Addr::from(99), MAC_A), Err(TableFull));
        assert_eq!(t.mark_incomplete(0, Ipv4Addr::from(99), at(1)), Err(TableFull));
        assert_eq!(t.insert(0, Ipv4Addr::from(99), MAC_B, at(1), Evict::Oldest), Err(TableFull));
        assert_eq!(t.entries().len(), 16);
    }

    /// However full the table, a lookup reads at most PROBE_LIMIT slots: a miss in a table
    /// that is full everywhere costs the same as in one that is empty.
    #[test]
    fn probes_are_bounded_in_a_full_table() {
        let t = NeighborTable::new(4096);
        let mut i = 0u32;
        // Fill every slot (neighbours we asked for may evict; they fill all windows).
        while i < 1_000_000 && (i & 4095 != 0 || t.entries().len() < t.slots()) {
            let ip = Ipv4Addr::from(0x0a00_0000 + i);
            if t.mark_incomplete(0, ip, at(1)).is_ok() {
                t.merge(0, ip, MAC_A, at(1));
            }
            i += 1;
        }
        assert!(t.entries().len() > t.slots() * 9 / 10, "table nearly full: {}", t.entries().len());
        // The window of any key is PROBE_LIMIT slots; a miss walks it and stops.
        let key = key_of(0, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(t.window(key).count(), PROBE_LIMIT);
        assert_eq!(t.lookup(0, Ipv4Addr::new(192, 0, 2, 1), at(1)), Neighbor::Missing);
    }

    #[test]
    fn concurrent_learners_agree() {
        let t = std::sync::Arc::new(NeighborTable::new(256));
        let handles: Vec<_> = (0..4u8)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        t.insert(0, Ipv4Addr::from(i), [2, 0, 0, 0, w, 1], Instant::ZERO, Evict::NotFresh).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let mut seen: Vec<_> = t.entries().iter().map(|e| e.address).collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 200, "every address stored");
        assert_eq!(t.entries().len(), 200, "each address stored once");
    }

    /// Readers never see one key with another key's MAC while writers reuse slots.
    #[test]
    fn readers_never_see_a_torn_entry() {
        use std::sync::atomic::{AtomicBool, AtomicU64};
        let t = std::sync::Arc::new(NeighborTable::new(8));
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        // Full passes of the writer over its 64 addresses (16 slots: every pass replaces).
        let passes = std::sync::Arc::new(AtomicU64::new(0));
        // The MAC encodes the address, so a mismatch is visible.
        let mac_of = |ip: u32| [2, 0, (ip >> 24) as u8, (ip >> 16) as u8, (ip >> 8) as u8, ip as u8];
        let writer = {
            let (t, stop, passes) = (t.clone(), stop.clone(), passes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    for ip in 0..64u32 {
                        let _ = t.insert(0, Ipv4Addr::from(ip), mac_of(ip), at(1), Evict::Oldest);
                    }
                    passes.fetch_add(1, Ordering::Release);
                }
            })
        };
        // Read only once the table is full, and until the writer has kept replacing
        // entries for many passes while we read: on a loaded machine the writer thread may
        // not even have started within a fixed number of reads. Bounded by a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let waited = |what: &str| assert!(std::time::Instant::now() < deadline, "gave up waiting for {what}");
        while passes.load(Ordering::Acquire) == 0 {
            waited("the writer's first pass");
            std::thread::yield_now();
        }
        let first = passes.load(Ordering::Acquire);
        let (mut hits, mut rounds) = (0u64, 0u64);
        while rounds < 20_000 || passes.load(Ordering::Acquire) < first + 2_000 {
            if rounds % 1024 == 0 {
                waited("2000 writer passes during the reads");
            }
            for ip in 0..64u32 {
                if let Neighbor::Fresh(mac) | Neighbor::Stale(mac) = t.lookup(0, Ipv4Addr::from(ip), at(1)) {
                    assert_eq!(mac, mac_of(ip), "address {ip} read with another's MAC");
                    hits += 1;
                }
            }
            rounds += 1;
        }
        stop.store(true, Ordering::Relaxed);
        writer.join().unwrap();
        assert!(hits > 0, "a full table read {rounds} times without one hit");
    }
}
