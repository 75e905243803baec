//! Expectations: pinholes for one future flow, opened by a helper.
//!
//! An expectation says "a connection of `proto` to `dst`, from `src_addr` (or anyone)
//! and `src_port` (or any port), travelling `dir`, before `deadline`, belongs to
//! session `parent` and goes to `target`". The slow path asks [`ExpectTable::find`]
//! before policy for every packet that missed the session table (only when the table
//! holds anything); a match is used once and removed.
//!
//! Fixed capacity, allocated once: a slab with a free list and a [`RobinHood`] index on
//! `(dir, proto, dst)`. Lookups compare the full key, so two expectations may share a
//! destination (two DCC offers of one port) and a wildcard source matches anyone.
//! Expiry scans the slab, at most once per deadline, from the worker's tick.

use std::net::Ipv4Addr;

use super::super::hash::FlowHasher;
use super::super::index::{IdxSlot, RobinHood};
use super::super::key::{Endpoint, Proto};
use super::super::table::NIL;
use super::super::Dir;
use super::HelperKind;

/// Where an expected flow goes once it arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// out2in: an inbound session on this mapping (the expectation holds one of its
    /// references until it is used or dropped).
    Mapping(u32),
    /// in2out: source NAT to this external address (a pool address).
    Snat(Ipv4Addr),
}

/// One expectation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expectation {
    /// The direction of the expected flow's first packet.
    pub dir: Dir,
    pub proto: Proto,
    /// Its destination: the external endpoint (out2in) or the remote endpoint (in2out).
    pub dst: Endpoint,
    /// Its source address; `0.0.0.0` matches any.
    pub src_addr: Ipv4Addr,
    /// Its source port; 0 matches any.
    pub src_port: u16,
    pub target: Target,
    /// The session whose helper opened it (slab index).
    pub parent: u32,
    pub helper: HelperKind,
    /// Milliseconds on the caller's clock.
    pub deadline: u64,
}

impl Expectation {
    fn matches(&self, dir: Dir, proto: Proto, src: Endpoint, dst: Endpoint) -> bool {
        self.dir == dir
            && self.proto == proto
            && self.dst == dst
            && (self.src_addr.is_unspecified() || self.src_addr == src.addr)
            && (self.src_port == 0 || self.src_port == src.port)
    }
}

/// An expectation's slab index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpectId(pub(crate) u32);

pub(crate) struct ExpectTable {
    slab: Box<[Option<Expectation>]>,
    free: Vec<u32>,
    index: RobinHood<IdxSlot>,
    hasher: FlowHasher,
    /// No deadline is earlier (ms); `u64::MAX` when empty.
    next_deadline: u64,
}

fn pack(dir: Dir, proto: Proto, dst: Endpoint) -> (u64, u64) {
    let d = match dir {
        Dir::In2Out => 0,
        Dir::Out2In => 1,
    };
    (u64::from(dst.addr_u32()), u64::from(dst.port) << 16 | u64::from(proto.number()) << 8 | 0x20 | d)
}

impl ExpectTable {
    pub fn new(capacity: u32, hasher: FlowHasher) -> Self {
        let cap = capacity as usize;
        ExpectTable {
            slab: vec![None; cap].into_boxed_slice(),
            free: (0..capacity).rev().collect(),
            index: RobinHood::new(cap),
            hasher,
            next_deadline: u64::MAX,
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    pub fn memory_bytes(&self) -> usize {
        self.slab.len() * (core::mem::size_of::<Option<Expectation>>() + 4)
            + self.index.capacity() * core::mem::size_of::<IdxSlot>()
    }

    fn tag(&self, dir: Dir, proto: Proto, dst: Endpoint) -> u32 {
        self.hasher.tag(pack(dir, proto, dst))
    }

    /// Add `e`; `None` when the table is full.
    pub fn insert(&mut self, e: Expectation) -> Option<ExpectId> {
        let i = self.free.pop()?;
        let tag = self.tag(e.dir, e.proto, e.dst);
        // Cannot fail: the index has room for every slab slot.
        let r = self.index.insert(IdxSlot { tag, val: i });
        debug_assert!(r.is_ok());
        self.slab[i as usize] = Some(e);
        self.next_deadline = self.next_deadline.min(e.deadline);
        Some(ExpectId(i))
    }

    /// The live expectation matching a first packet `src → dst` of `proto` travelling
    /// `dir`, if any (expired ones do not match).
    #[inline]
    pub fn find(&self, dir: Dir, proto: Proto, src: Endpoint, dst: Endpoint, now_ms: u64) -> Option<ExpectId> {
        if self.is_empty() {
            return None;
        }
        let tag = self.tag(dir, proto, dst);
        let pos = self.index.find(tag, |s| {
            self.slab[s.val as usize].is_some_and(|e| e.deadline > now_ms && e.matches(dir, proto, src, dst))
        })?;
        Some(ExpectId(self.index.get(pos).val))
    }

    /// Remove one; returns it.
    pub fn remove(&mut self, id: ExpectId) -> Option<Expectation> {
        let e = self.slab.get_mut(id.0 as usize)?.take()?;
        let tag = self.tag(e.dir, e.proto, e.dst);
        let r = self.index.remove(tag, |s| s.val == id.0);
        debug_assert!(r.is_some());
        self.free.push(id.0);
        Some(e)
    }

    /// The earliest deadline, if any expectation is held (may be earlier than the real
    /// one after removals; never later).
    pub fn next_deadline(&self) -> Option<u64> {
        (!self.is_empty()).then_some(self.next_deadline)
    }

    /// Remove up to `out.len()` expectations matching `pred` into `out` (a scan of the
    /// slab: expiry, a session's end, rare helper events); returns how many. Call
    /// again while it fills `out`.
    pub fn take(&mut self, mut pred: impl FnMut(&Expectation) -> bool, out: &mut [Option<Expectation>]) -> usize {
        let mut n = 0;
        if self.is_empty() {
            return 0;
        }
        for i in 0..self.slab.len() as u32 {
            if n == out.len() {
                break;
            }
            if self.slab[i as usize].is_some_and(|e| pred(&e)) {
                out[n] = self.remove(ExpectId(i));
                n += 1;
            }
        }
        n
    }

    /// Make [`next_deadline`](Self::next_deadline) exact again (after expiry).
    pub fn recompute_deadline(&mut self) {
        self.next_deadline = self.slab.iter().flatten().map(|e| e.deadline).min().unwrap_or(u64::MAX);
    }

    /// Every live expectation with its id, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = (ExpectId, &Expectation)> {
        self.slab.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (ExpectId(i as u32), e)))
    }

    /// The oldest-deadline expectation of `parent` opened by `helper`, and how many that
    /// parent holds (for the per-session limit).
    pub fn of_parent(&self, parent: u32) -> (usize, Option<ExpectId>) {
        if self.is_empty() || parent == NIL {
            return (0, None);
        }
        let mut n = 0;
        let mut oldest: Option<(u64, ExpectId)> = None;
        for (id, e) in self.iter() {
            if e.parent == parent {
                n += 1;
                if oldest.is_none_or(|(d, _)| e.deadline < d) {
                    oldest = Some((e.deadline, id));
                }
            }
        }
        (n, oldest.map(|o| o.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(d: u8, p: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(203, 0, 113, d), p)
    }

    fn exp(dst: Endpoint, src_addr: Ipv4Addr, src_port: u16, deadline: u64) -> Expectation {
        Expectation {
            dir: Dir::Out2In,
            proto: Proto::Tcp,
            dst,
            src_addr,
            src_port,
            target: Target::Mapping(7),
            parent: 3,
            helper: HelperKind::Ftp,
            deadline,
        }
    }

    #[test]
    fn find_use_and_expire() {
        let mut t = ExpectTable::new(4, FlowHasher::new(1));
        let server = Ipv4Addr::new(198, 51, 100, 7);
        let a = t.insert(exp(ep(1, 1025), server, 0, 100)).unwrap();
        let any = t.insert(exp(ep(1, 1026), Ipv4Addr::UNSPECIFIED, 0, 200)).unwrap();
        let src = Endpoint::new(server, 20);
        assert_eq!(t.find(Dir::Out2In, Proto::Tcp, src, ep(1, 1025), 50), Some(a));
        // Wrong source, protocol, direction, or too late.
        let other = Endpoint::new(Ipv4Addr::new(198, 51, 100, 8), 20);
        assert_eq!(t.find(Dir::Out2In, Proto::Tcp, other, ep(1, 1025), 50), None);
        assert_eq!(t.find(Dir::Out2In, Proto::Udp, src, ep(1, 1025), 50), None);
        assert_eq!(t.find(Dir::In2Out, Proto::Tcp, src, ep(1, 1025), 50), None);
        assert_eq!(t.find(Dir::Out2In, Proto::Tcp, src, ep(1, 1025), 100), None);
        // Wildcard source.
        assert_eq!(t.find(Dir::Out2In, Proto::Tcp, other, ep(1, 1026), 50), Some(any));
        assert_eq!(t.of_parent(3), (2, Some(a)));
        assert_eq!(t.next_deadline(), Some(100));
        let mut gone = [None; 4];
        assert_eq!(t.take(|e| e.deadline <= 150, &mut gone), 1);
        assert_eq!(gone[0].map(|e| e.dst), Some(ep(1, 1025)));
        assert_eq!(t.next_deadline(), Some(100), "a lower bound until recomputed");
        t.recompute_deadline();
        assert_eq!(t.next_deadline(), Some(200));
        assert_eq!(t.remove(any).map(|e| e.dst), Some(ep(1, 1026)));
        assert!(t.is_empty());
        assert_eq!(t.next_deadline(), None);
        assert_eq!(t.remove(any), None);
    }

    #[test]
    fn bounded() {
        let mut t = ExpectTable::new(2, FlowHasher::new(9));
        let s = Ipv4Addr::new(1, 2, 3, 4);
        assert!(t.insert(exp(ep(1, 1), s, 0, 10)).is_some());
        assert!(t.insert(exp(ep(1, 1), s, 5, 10)).is_some(), "same destination twice");
        assert!(t.insert(exp(ep(1, 2), s, 0, 10)).is_none());
        assert_eq!(t.len(), 2);
        // The port-specific one and the any-port one are both found by their source.
        assert!(t.find(Dir::Out2In, Proto::Tcp, Endpoint::new(s, 5), ep(1, 1), 0).is_some());
        let mut one = [None];
        assert_eq!(t.take(|e| e.src_port == 5, &mut one), 1);
        assert!(t.find(Dir::Out2In, Proto::Tcp, Endpoint::new(s, 5), ep(1, 1), 0).is_some());
        assert!(t.insert(exp(ep(1, 2), s, 0, 10)).is_some(), "room again");
    }
}
