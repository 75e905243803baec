//! The neighbour (ARP) cache, shared by every worker without locks.
//!
//! ARP replies reach whichever worker's queue the NIC picked, while every worker needs the
//! answer, so the cache is one table of atomics: a fixed, preallocated open-addressing
//! array written with compare-and-swap when a new neighbour appears (rare) and read with
//! plain relaxed loads on the fast path. Slots are never reused for another key, so a
//! reader can never see one neighbour's key with another's MAC; an entry is one
//! `AtomicU64` (MAC + flags), so it is never torn.
//!
//! Dynamic entries are *fresh* for [`FRESH_SECS`], then *stale* (still used, but the worker
//! asks again) until [`EXPIRE_SECS`], then unusable. Static entries (`[[neighbor]]` in the
//! configuration) never expire.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::time::Instant;

/// Seconds a learned entry is used without asking again.
pub const FRESH_SECS: u32 = 240;
/// Seconds after which an unrefreshed learned entry is no longer used.
pub const EXPIRE_SECS: u32 = 600;

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
    /// Unknown or expired: resolve first.
    Missing,
}

/// The table is full; the entry was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("neighbour table full")]
pub struct TableFull;

#[derive(Default)]
struct Slot {
    key: AtomicU64,
    value: AtomicU64,
    updated_secs: AtomicU32,
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

impl NeighborTable {
    /// A table for up to `capacity` neighbours (rounded up to a power of two, then doubled
    /// so probes stay short).
    pub fn new(capacity: usize) -> NeighborTable {
        let n = (capacity.max(8) * 2).next_power_of_two();
        let slots: Box<[Slot]> = (0..n).map(|_| Slot::default()).collect();
        NeighborTable { slots, mask: n - 1 }
    }

    #[inline]
    fn start(&self, key: u64) -> usize {
        // Fibonacci hashing of the key.
        (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize & self.mask
    }

    #[inline]
    fn find(&self, key: u64) -> Option<&Slot> {
        let mut i = self.start(key);
        for _ in 0..=self.mask {
            let slot = &self.slots[i];
            match slot.key.load(Relaxed) {
                0 => return None,
                k if k == key => return Some(slot),
                _ => i = (i + 1) & self.mask,
            }
        }
        None
    }

    fn find_or_insert(&self, key: u64) -> Result<&Slot, TableFull> {
        let mut i = self.start(key);
        for _ in 0..=self.mask {
            let slot = &self.slots[i];
            match slot.key.compare_exchange(0, key, Relaxed, Relaxed) {
                Ok(_) => return Ok(slot),
                Err(k) if k == key => return Ok(slot),
                Err(_) => i = (i + 1) & self.mask,
            }
        }
        Err(TableFull)
    }

    /// Look up the MAC of `addr` on `port`.
    #[inline]
    pub fn lookup(&self, port: u16, addr: Ipv4Addr, now: Instant) -> Neighbor {
        let Some(slot) = self.find(key_of(port, addr)) else { return Neighbor::Missing };
        let v = slot.value.load(Relaxed);
        if v & VALUE_VALID == 0 {
            return Neighbor::Missing;
        }
        let mac = u64_to_mac(v);
        if v & VALUE_STATIC != 0 {
            return Neighbor::Fresh(mac);
        }
        let age = (now.as_secs() as u32).wrapping_sub(slot.updated_secs.load(Relaxed));
        if age < FRESH_SECS {
            Neighbor::Fresh(mac)
        } else if age < EXPIRE_SECS {
            Neighbor::Stale(mac)
        } else {
            Neighbor::Missing
        }
    }

    /// Record what an ARP packet told us. Static entries are never overwritten.
    pub fn learn(&self, port: u16, addr: Ipv4Addr, mac: [u8; 6], now: Instant) -> Result<(), TableFull> {
        let slot = self.find_or_insert(key_of(port, addr))?;
        if slot.value.load(Relaxed) & VALUE_STATIC != 0 {
            return Ok(());
        }
        slot.updated_secs.store(now.as_secs() as u32, Relaxed);
        slot.value.store(VALUE_VALID | mac_to_u64(mac), Relaxed);
        Ok(())
    }

    /// Update `addr` only if it is already known (RFC 826's merge step for ARP packets
    /// that are not addressed to us).
    pub fn refresh_if_known(&self, port: u16, addr: Ipv4Addr, mac: [u8; 6], now: Instant) {
        if let Some(slot) = self.find(key_of(port, addr)) {
            let v = slot.value.load(Relaxed);
            if v & VALUE_VALID != 0 && v & VALUE_STATIC == 0 {
                slot.updated_secs.store(now.as_secs() as u32, Relaxed);
                slot.value.store(VALUE_VALID | mac_to_u64(mac), Relaxed);
            }
        }
    }

    /// Add a permanent entry (from `[[neighbor]]`).
    pub fn add_static(&self, port: u16, addr: Ipv4Addr, mac: [u8; 6]) -> Result<(), TableFull> {
        let slot = self.find_or_insert(key_of(port, addr))?;
        slot.value.store(VALUE_VALID | VALUE_STATIC | mac_to_u64(mac), Relaxed);
        Ok(())
    }

    /// Every valid entry, for reports and the control plane (not for the fast path).
    pub fn entries(&self) -> Vec<NeighborEntry> {
        self.slots
            .iter()
            .filter_map(|s| {
                let k = s.key.load(Relaxed);
                let v = s.value.load(Relaxed);
                (k != 0 && v & VALUE_VALID != 0).then(|| NeighborEntry {
                    port: ((k >> 32) & 0xffff) as u16,
                    address: Ipv4Addr::from(k as u32),
                    mac: u64_to_mac(v),
                    is_static: v & VALUE_STATIC != 0,
                    updated_secs: s.updated_secs.load(Relaxed),
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

    #[test]
    fn learn_age_and_expire() {
        let t = NeighborTable::new(16);
        let ip = Ipv4Addr::new(203, 0, 113, 254);
        let t0 = Instant::from_secs(1000);
        assert_eq!(t.lookup(1, ip, t0), Neighbor::Missing);
        t.learn(1, ip, MAC_A, t0).unwrap();
        assert_eq!(t.lookup(1, ip, t0), Neighbor::Fresh(MAC_A));
        assert_eq!(t.lookup(0, ip, t0), Neighbor::Missing, "keyed by port too");
        let later = |s| Instant::from_secs(1000 + s);
        assert_eq!(t.lookup(1, ip, later(u64::from(FRESH_SECS) - 1)), Neighbor::Fresh(MAC_A));
        assert_eq!(t.lookup(1, ip, later(u64::from(FRESH_SECS))), Neighbor::Stale(MAC_A));
        assert_eq!(t.lookup(1, ip, later(u64::from(EXPIRE_SECS))), Neighbor::Missing);
        t.refresh_if_known(1, ip, MAC_B, later(700));
        assert_eq!(t.lookup(1, ip, later(700)), Neighbor::Fresh(MAC_B));
        t.refresh_if_known(1, Ipv4Addr::new(1, 2, 3, 4), MAC_B, t0);
        assert_eq!(t.lookup(1, Ipv4Addr::new(1, 2, 3, 4), t0), Neighbor::Missing);
    }

    #[test]
    fn static_entries_never_expire_nor_change() {
        let t = NeighborTable::new(4);
        let ip = Ipv4Addr::new(10, 0, 0, 1);
        t.add_static(0, ip, MAC_A).unwrap();
        t.learn(0, ip, MAC_B, Instant::from_secs(5)).unwrap();
        assert_eq!(t.lookup(0, ip, Instant::from_secs(1_000_000)), Neighbor::Fresh(MAC_A));
        let e = t.entries();
        assert_eq!(e.len(), 1);
        assert!(e[0].is_static && e[0].mac == MAC_A && e[0].address == ip && e[0].port == 0);
    }

    #[test]
    fn full_table_is_an_error_not_a_panic() {
        let t = NeighborTable::new(4); // 16 slots
        let now = Instant::ZERO;
        let mut stored = 0;
        for i in 0..100u32 {
            if t.learn(0, Ipv4Addr::from(i + 1), MAC_A, now).is_ok() {
                stored += 1;
            }
        }
        assert_eq!(stored, 16);
        assert_eq!(t.learn(0, Ipv4Addr::from(9999), MAC_A, now), Err(TableFull));
        for i in 0..16u32 {
            assert_eq!(t.lookup(0, Ipv4Addr::from(i + 1), now), Neighbor::Fresh(MAC_A));
        }
        assert_eq!(t.lookup(0, Ipv4Addr::from(9999), now), Neighbor::Missing);
    }

    #[test]
    fn concurrent_learners_agree() {
        let t = std::sync::Arc::new(NeighborTable::new(256));
        let handles: Vec<_> = (0..4u8)
            .map(|w| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for i in 0..200u32 {
                        t.learn(0, Ipv4Addr::from(i), [2, 0, 0, 0, w, 1], Instant::ZERO).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(t.entries().len(), 200, "each address stored once");
    }
}
