//! Endpoint-independent mappings (RFC 4787 REQ-1, RFC 5382 REQ-1).
//!
//! A mapping binds an inside endpoint (address, port, protocol) to one external
//! endpoint, whatever remote it talks to: every source-NAT session from that inside
//! endpoint uses it, and it lives as long as it has sessions (`refs`). It is reachable
//! from its inside 3-tuple (to reuse it for a new session) and from its outside 3-tuple
//! (for inbound packets to a new remote under endpoint-independent or address-dependent
//! filtering, and for hairpinning).
//!
//! Record 16 bytes; index 2 entries of 8 bytes at load ≤ 0.9 → 17.8 bytes; at most one
//! mapping per session, so ≤ 34 bytes per session. (The index's 0.9 is reached only
//! when every session has a mapping of its own; usually a subscriber's sessions share
//! a few mappings and the index runs far emptier.)

use super::hash::FlowHasher;
use super::index::{IdxSlot, RobinHood};
use super::key::{pack3, Endpoint, Proto, Side};
use super::table::NIL;
use std::net::Ipv4Addr;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    pub inside_addr: u32,
    /// Sessions using the mapping; 0 while free (then `inside_addr` chains the free list).
    pub refs: u32,
    pub inside_port: u16,
    pub outside_port: u16,
    /// Index of the external address in the pool.
    pub outside_ix: u16,
    /// Never address-only: those sessions have no mapping.
    pub proto: Proto,
}

const _: () = assert!(core::mem::size_of::<Mapping>() == 16);

impl Mapping {
    const FREE: Mapping =
        Mapping { inside_addr: NIL, refs: 0, inside_port: 0, outside_port: 0, outside_ix: 0, proto: Proto::Icmp };

    pub fn inside(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.inside_addr), self.inside_port)
    }
}

pub(crate) struct MappingTable {
    slab: Box<[Mapping]>,
    free_head: u32,
    live: u32,
    index: RobinHood<IdxSlot>,
    hasher: FlowHasher,
    /// The pool, to resolve `outside_ix` (sorted, as the allocator's).
    addrs: Box<[Ipv4Addr]>,
}

impl MappingTable {
    pub fn new(max: u32, hasher: FlowHasher, addrs: &[Ipv4Addr]) -> Self {
        let mut slab = vec![Mapping::FREE; max as usize].into_boxed_slice();
        for (i, m) in slab.iter_mut().enumerate() {
            m.inside_addr = if i + 1 < max as usize { i as u32 + 1 } else { NIL };
        }
        MappingTable {
            slab,
            free_head: if max > 0 { 0 } else { NIL },
            live: 0,
            // Sized for one mapping per session, a worst case: a subscriber's
            // sessions share their mappings, so the index runs well below its limit.
            index: RobinHood::new_dense(2 * max as usize),
            hasher,
            addrs: addrs.into(),
        }
    }

    pub fn len(&self) -> u32 {
        self.live
    }

    pub fn memory_bytes(&self) -> usize {
        self.slab.len() * core::mem::size_of::<Mapping>() + self.index.capacity() * core::mem::size_of::<IdxSlot>()
    }

    pub fn outside(&self, m: &Mapping) -> Endpoint {
        Endpoint::new(self.addrs[m.outside_ix as usize], m.outside_port)
    }

    fn find(&self, side: Side, ep: Endpoint, proto: Proto) -> Option<u32> {
        let tag = self.hasher.tag(pack3(ep, proto, side));
        let pos = self.index.find(tag, |slot| {
            if slot.val & 1 != side as u32 {
                return false;
            }
            let m = &self.slab[(slot.val >> 1) as usize];
            let here = match side {
                Side::Inside => m.inside(),
                Side::Outside => self.outside(m),
            };
            m.proto == proto && here == ep
        })?;
        Some(self.index.get(pos).val >> 1)
    }

    pub fn find_inside(&self, ep: Endpoint, proto: Proto) -> Option<u32> {
        self.find(Side::Inside, ep, proto)
    }

    pub fn find_outside(&self, ep: Endpoint, proto: Proto) -> Option<u32> {
        self.find(Side::Outside, ep, proto)
    }

    /// Store and index a new mapping with `refs == 0`; the caller takes references.
    pub fn insert(&mut self, inside: Endpoint, outside_ix: u16, outside_port: u16, proto: Proto) -> Option<u32> {
        let idx = self.free_head;
        if idx == NIL {
            return None;
        }
        self.free_head = self.slab[idx as usize].inside_addr;
        let m = Mapping {
            inside_addr: u32::from(inside.addr),
            refs: 0,
            inside_port: inside.port,
            outside_port,
            outside_ix,
            proto,
        };
        self.slab[idx as usize] = m;
        let outside = self.outside(&m);
        for (side, ep) in [(Side::Inside, inside), (Side::Outside, outside)] {
            let tag = self.hasher.tag(pack3(ep, proto, side));
            let r = self.index.insert(IdxSlot { tag, val: idx << 1 | side as u32 });
            debug_assert!(r.is_ok());
        }
        self.live += 1;
        Some(idx)
    }

    /// Unindex and free.
    pub fn remove(&mut self, idx: u32) -> Mapping {
        let m = self.slab[idx as usize];
        let outside = self.outside(&m);
        for (side, ep) in [(Side::Inside, m.inside()), (Side::Outside, outside)] {
            let tag = self.hasher.tag(pack3(ep, m.proto, side));
            let want = idx << 1 | side as u32;
            let r = self.index.remove(tag, |s| s.val == want);
            debug_assert!(r.is_some());
        }
        self.slab[idx as usize] = Mapping { inside_addr: self.free_head, ..Mapping::FREE };
        self.free_head = idx;
        self.live -= 1;
        m
    }

    pub fn get(&self, idx: u32) -> &Mapping {
        &self.slab[idx as usize]
    }

    pub fn get_mut(&mut self, idx: u32) -> &mut Mapping {
        &mut self.slab[idx as usize]
    }

    /// Whether `idx` names a mapping in use.
    pub fn is_live(&self, idx: u32) -> bool {
        self.slab.get(idx as usize).is_some_and(|m| m.refs > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_find_and_remove_frees() {
        let pool = [Ipv4Addr::new(192, 0, 2, 1)];
        let mut t = MappingTable::new(2, FlowHasher::new(9), &pool);
        let inside = Endpoint::new(Ipv4Addr::new(10, 0, 0, 5), 5353);
        let id = t.insert(inside, 0, 40000, Proto::Udp).unwrap();
        let out = Endpoint::new(pool[0], 40000);
        assert_eq!(t.find_inside(inside, Proto::Udp), Some(id));
        assert_eq!(t.find_outside(out, Proto::Udp), Some(id));
        assert_eq!(t.find_outside(out, Proto::Tcp), None);
        assert_eq!(t.find_inside(out, Proto::Udp), None, "sides do not mix");
        let b = t.insert(Endpoint::new(inside.addr, 1), 0, 40001, Proto::Udp).unwrap();
        assert!(t.insert(Endpoint::new(inside.addr, 2), 0, 40002, Proto::Udp).is_none());
        t.remove(id);
        assert_eq!(t.find_inside(inside, Proto::Udp), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t.insert(inside, 0, 40003, Proto::Udp), Some(id), "slot reused");
        assert_ne!(b, id);
    }
}
