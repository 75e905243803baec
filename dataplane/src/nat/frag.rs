//! Fragment tracking: translating fragments without reassembly.
//!
//! Only the first fragment of a datagram carries the transport header, so only it
//! names a session. The table remembers, per datagram (source, destination, protocol,
//! IP identification), the first fragment's ports and an opaque verdict, so the later
//! fragments, in any order among themselves, are translated the same way.
//!
//! Only first fragments create entries: a later fragment whose first fragment has not
//! been seen is refused (`FragError::NoState`) and leaves no trace here, so a flood of
//! later fragments with made-up IP IDs can neither fill the table nor push out a real
//! datagram's entry. The worker keeps such a fragment, unmodified, in a small bounded
//! waiting area (`crate::pipeline::FragWait`) and runs it again only when the first
//! fragment of its datagram comes (RFC 4787 REQ-14); one whose first fragment does not
//! come in time is dropped as `DropReason::FragmentNoState`.
//!
//! Entries live `timeout` (2 s by default) from the first fragment. All entries share
//! one lifetime, so insertion order is expiry order: entries sit in a FIFO ring (expiry
//! pops the head, no sweep) with a hash index on top. When the ring is full and nothing
//! has expired, new datagrams are refused and counted (`DropReason::FragmentTableFull`).
//!
//! The verdict is whatever the caller needs to treat the later fragments (a policy
//! decision, say). A [`SessionId`](super::SessionId) is only stable until the next
//! `expire`/`flush`, so a caller storing one must look the session up again from the
//! recorded ports rather than trust the index.

use super::hash::FlowHasher;
use super::index::{IdxSlot, RobinHood};
use crate::stats::DropReason;
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;

/// A datagram's identity: source, destination, IP protocol number, IP identification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FragKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub id: u16,
}

/// What the first fragment left for its siblings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FragInfo {
    pub src_port: u16,
    pub dst_port: u16,
    pub verdict: u32,
}

/// Why a fragment cannot be treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragError {
    /// A non-first fragment whose first fragment has not been seen.
    NoState,
    /// No room to remember a new datagram.
    TableFull,
}

impl FragError {
    pub const fn drop_reason(self) -> DropReason {
        match self {
            FragError::NoState => DropReason::FragmentNoState,
            FragError::TableFull => DropReason::FragmentTableFull,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragCounters {
    /// First fragments recorded.
    pub recorded: u64,
    /// Later fragments that found their first fragment's ports.
    pub hits: u64,
    /// Later fragments refused for lack of state (their first fragment not seen).
    pub no_state: u64,
    /// Datagrams not recorded because the table was full.
    pub table_full: u64,
    /// Entries expired.
    pub expired: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    created: u64,
    src: u32,
    dst: u32,
    verdict: u32,
    id: u16,
    src_port: u16,
    dst_port: u16,
    proto: u8,
}

const _: () = assert!(core::mem::size_of::<Entry>() == 32);

impl Entry {
    fn matches(&self, k: &FragKey) -> bool {
        self.src == u32::from(k.src) && self.dst == u32::from(k.dst) && self.id == k.id && self.proto == k.proto
    }
}

/// Default lifetime of a fragment entry.
pub const DEFAULT_FRAG_TIMEOUT: Duration = Duration::from_secs(2);

/// Per-worker fragment table: fixed ring plus index.
pub struct FragTable {
    ring: Box<[Entry]>,
    head: usize,
    len: usize,
    index: RobinHood<IdxSlot>,
    hasher: FlowHasher,
    timeout: Duration,
    pub counters: FragCounters,
}

impl FragTable {
    pub fn new(capacity: usize, timeout: Duration, hasher: FlowHasher) -> Self {
        let capacity = capacity.max(1);
        let empty = Entry { created: 0, src: 0, dst: 0, verdict: 0, id: 0, src_port: 0, dst_port: 0, proto: 0 };
        FragTable {
            ring: vec![empty; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
            index: RobinHood::new(capacity),
            hasher,
            timeout,
            counters: FragCounters::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn memory_bytes(&self) -> usize {
        self.ring.len() * core::mem::size_of::<Entry>() + self.index.capacity() * 8
    }

    fn tag(&self, k: &FragKey) -> u32 {
        let a = u64::from(u32::from(k.src)) << 32 | u64::from(u32::from(k.dst));
        let b = u64::from(k.id) << 16 | u64::from(k.proto) << 8 | 0xf;
        self.hasher.tag((a, b))
    }

    fn find(&self, k: &FragKey) -> Option<usize> {
        let pos = self.index.find(self.tag(k), |s| self.ring[s.val as usize].matches(k))?;
        Some(self.index.get(pos).val as usize)
    }

    fn push(&mut self, k: &FragKey, i: FragInfo, now: Instant) -> Result<(), FragError> {
        if self.len == self.ring.len() {
            self.counters.table_full += 1;
            return Err(FragError::TableFull);
        }
        let pos = (self.head + self.len) % self.ring.len();
        self.ring[pos] = Entry {
            created: now.as_millis(),
            src: u32::from(k.src),
            dst: u32::from(k.dst),
            verdict: i.verdict,
            id: k.id,
            src_port: i.src_port,
            dst_port: i.dst_port,
            proto: k.proto,
        };
        let r = self.index.insert(IdxSlot { tag: self.tag(k), val: pos as u32 });
        debug_assert!(r.is_ok());
        self.len += 1;
        Ok(())
    }

    /// Record a first fragment (offset 0, more-fragments set) and its ports.
    pub fn first_fragment(&mut self, k: &FragKey, info: FragInfo, now: Instant) -> Result<(), FragError> {
        self.expire(now, usize::MAX);
        if let Some(pos) = self.find(k) {
            // A duplicate first fragment: the latest decision holds.
            let e = &mut self.ring[pos];
            e.src_port = info.src_port;
            e.dst_port = info.dst_port;
            e.verdict = info.verdict;
            self.counters.recorded += 1;
            return Ok(());
        }
        self.push(k, info, now)?;
        self.counters.recorded += 1;
        Ok(())
    }

    /// A non-first fragment: the first fragment's ports and verdict, or `NoState`
    /// (nothing is recorded for a fragment whose first has not been seen).
    pub fn later_fragment(&mut self, k: &FragKey, now: Instant) -> Result<FragInfo, FragError> {
        self.expire(now, usize::MAX);
        match self.find(k) {
            Some(pos) => {
                let e = &self.ring[pos];
                self.counters.hits += 1;
                Ok(FragInfo { src_port: e.src_port, dst_port: e.dst_port, verdict: e.verdict })
            }
            None => {
                self.counters.no_state += 1;
                Err(FragError::NoState)
            }
        }
    }

    /// Drop entries older than the timeout; at most `budget`.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let mut n = 0;
        while n < budget && self.len > 0 {
            let e = self.ring[self.head];
            if e.created + self.timeout.as_millis() > now.as_millis() {
                break;
            }
            let k = FragKey { src: Ipv4Addr::from(e.src), dst: Ipv4Addr::from(e.dst), proto: e.proto, id: e.id };
            let head = self.head as u32;
            let r = self.index.remove(self.tag(&k), |s| s.val == head);
            debug_assert!(r.is_some());
            self.head = (self.head + 1) % self.ring.len();
            self.len -= 1;
            n += 1;
        }
        self.counters.expired += n as u64;
        n
    }

    /// When the oldest entry expires.
    pub fn next_deadline(&self) -> Option<Instant> {
        (self.len > 0).then(|| Instant::from_millis(self.ring[self.head].created) + self.timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey { src: Ipv4Addr::new(10, 0, 0, 1), dst: Ipv4Addr::new(8, 8, 8, 8), proto: 17, id }
    }

    fn info(p: u16) -> FragInfo {
        FragInfo { src_port: p, dst_port: 53, verdict: 7 }
    }

    fn table(cap: usize) -> FragTable {
        FragTable::new(cap, DEFAULT_FRAG_TIMEOUT, FlowHasher::new(5))
    }

    #[test]
    fn first_records_later_find() {
        let mut t = table(8);
        let now = Instant::from_secs(1);
        t.first_fragment(&key(1), info(4000), now).unwrap();
        assert_eq!(t.later_fragment(&key(1), now), Ok(info(4000)));
        assert_eq!(t.later_fragment(&key(1), now), Ok(info(4000)));
        assert_eq!(t.later_fragment(&key(2), now), Err(FragError::NoState));
        assert_eq!(t.counters.hits, 2);
    }

    #[test]
    fn out_of_order_is_refused_until_the_first_arrives_and_leaves_no_entry() {
        let mut t = table(8);
        let now = Instant::from_secs(1);
        assert_eq!(t.later_fragment(&key(3), now), Err(FragError::NoState));
        assert_eq!(t.len(), 0, "nothing recorded for a fragment without its first");
        assert_eq!(t.later_fragment(&key(3), now), Err(FragError::NoState));
        t.first_fragment(&key(3), info(5000), now).unwrap();
        assert_eq!(t.later_fragment(&key(3), now), Ok(info(5000)));
        assert_eq!(t.len(), 1);
        assert_eq!(t.counters.no_state, 2);
    }

    #[test]
    fn a_flood_of_unknown_later_fragments_does_not_crowd_out_first_fragments() {
        let mut t = table(4);
        let now = Instant::from_secs(1);
        for id in 100..10_000u16 {
            assert_eq!(t.later_fragment(&key(id), now), Err(FragError::NoState));
        }
        assert!(t.is_empty());
        for id in 0..4u16 {
            t.first_fragment(&key(id), info(id), now).unwrap();
        }
        assert_eq!(t.later_fragment(&key(2), now), Ok(info(2)));
        assert_eq!(t.counters.table_full, 0);
    }

    #[test]
    fn entries_time_out() {
        let mut t = table(8);
        t.first_fragment(&key(1), info(1), Instant::from_millis(0)).unwrap();
        t.first_fragment(&key(2), info(2), Instant::from_millis(500)).unwrap();
        assert_eq!(t.next_deadline(), Some(Instant::from_millis(2000)));
        assert_eq!(t.later_fragment(&key(1), Instant::from_millis(1999)), Ok(info(1)));
        assert_eq!(t.expire(Instant::from_millis(2000), 10), 1);
        assert_eq!(t.later_fragment(&key(1), Instant::from_millis(2000)), Err(FragError::NoState));
        assert_eq!(t.later_fragment(&key(2), Instant::from_millis(2499)), Ok(info(2)));
        assert_eq!(t.later_fragment(&key(2), Instant::from_millis(2500)), Err(FragError::NoState));
    }

    #[test]
    fn table_full_is_counted_and_clears_with_time() {
        let mut t = table(2);
        let now = Instant::from_secs(10);
        t.first_fragment(&key(1), info(1), now).unwrap();
        t.first_fragment(&key(2), info(2), now).unwrap();
        assert_eq!(t.first_fragment(&key(3), info(3), now), Err(FragError::TableFull));
        assert_eq!(FragError::TableFull.drop_reason(), DropReason::FragmentTableFull);
        assert_eq!(t.later_fragment(&key(4), now), Err(FragError::NoState));
        assert_eq!(t.counters.table_full, 1);
        let later = now + DEFAULT_FRAG_TIMEOUT;
        t.first_fragment(&key(3), info(3), later).unwrap();
        assert_eq!(t.later_fragment(&key(3), later), Ok(info(3)));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn ring_wraps_many_times() {
        let mut t = table(3);
        for i in 0..50u16 {
            let now = Instant::from_secs(u64::from(i) * 3);
            t.first_fragment(&key(i), info(i), now).unwrap();
            assert_eq!(t.later_fragment(&key(i), now), Ok(info(i)));
        }
        assert_eq!(t.len(), 1);
    }
}
