//! Inbound filtering (RFC 4787 §5, REQ-8; RFC 5382 REQ-3).
//!
//! An inbound packet that matches a session's outside 5-tuple is always accepted. One
//! that matches only a mapping (a new remote talking to an existing external
//! endpoint) is judged by the configured [`Filtering`]:
//!
//! - `EndpointIndependent`: accepted (and gets its own session).
//! - `AddressPortDependent`: refused — the inside endpoint has sent to that remote
//!   address and port iff a session with that outside 5-tuple exists, and the lookup
//!   just missed it. No extra state.
//! - `AddressDependent`: accepted iff the inside endpoint has a live session with that
//!   remote *address*. [`AddrFilter`] keeps a reference count per (mapping, remote
//!   address), so the check is one lookup. Only allocated in this mode: 16-byte inline
//!   slots, at most one per session → ≤ 20 bytes per session at load 0.8.

use super::hash::FlowHasher;
use super::index::{Full, RobinHood, Slot};

/// Which inbound packets a mapping accepts from remotes it has no session with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Filtering {
    /// Any remote may reach a mapping (RFC 4787 "endpoint-independent filtering").
    #[default]
    EndpointIndependent,
    /// Only remote addresses the inside endpoint has sent to.
    AddressDependent,
    /// Only remote address-and-port pairs the inside endpoint has sent to.
    AddressPortDependent,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct FilterSlot {
    tag: u32,
    refs: u32,
    mapping: u32,
    remote: u32,
}

impl Slot for FilterSlot {
    const EMPTY: Self = FilterSlot { tag: 0, refs: 0, mapping: 0, remote: 0 };
    fn is_empty(&self) -> bool {
        self.refs == 0
    }
    fn tag(&self) -> u32 {
        self.tag
    }
}

const _: () = assert!(core::mem::size_of::<FilterSlot>() == 16);

/// (mapping, remote address) → number of sessions.
pub(crate) struct AddrFilter {
    index: RobinHood<FilterSlot>,
    hasher: FlowHasher,
}

impl AddrFilter {
    pub fn new(max: u32, hasher: FlowHasher) -> Self {
        AddrFilter { index: RobinHood::new(max as usize), hasher }
    }

    fn tag(&self, mapping: u32, remote: u32) -> u32 {
        (self.hasher.hash2(u64::from(mapping) << 32 | u64::from(remote), 0xf17) >> 32) as u32
    }

    pub fn memory_bytes(&self) -> usize {
        self.index.capacity() * core::mem::size_of::<FilterSlot>()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn contains(&self, mapping: u32, remote: u32) -> bool {
        let tag = self.tag(mapping, remote);
        self.index.find(tag, |s| s.mapping == mapping && s.remote == remote).is_some()
    }

    pub fn acquire(&mut self, mapping: u32, remote: u32) -> Result<(), Full> {
        let tag = self.tag(mapping, remote);
        match self.index.find(tag, |s| s.mapping == mapping && s.remote == remote) {
            Some(pos) => {
                self.index.get_mut(pos).refs += 1;
                Ok(())
            }
            None => self.index.insert(FilterSlot { tag, refs: 1, mapping, remote }).map(|_| ()),
        }
    }

    pub fn release(&mut self, mapping: u32, remote: u32) {
        let tag = self.tag(mapping, remote);
        if let Some(pos) = self.index.find(tag, |s| s.mapping == mapping && s.remote == remote) {
            let s = self.index.get_mut(pos);
            s.refs -= 1;
            if s.refs == 0 {
                self.index.remove_at(pos);
            }
        } else {
            debug_assert!(false, "releasing an unknown filter entry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refcounts() {
        let mut f = AddrFilter::new(4, FlowHasher::new(1));
        f.acquire(1, 0x08080808).unwrap();
        f.acquire(1, 0x08080808).unwrap();
        assert!(f.contains(1, 0x08080808));
        assert!(!f.contains(2, 0x08080808));
        f.release(1, 0x08080808);
        assert!(f.contains(1, 0x08080808));
        f.release(1, 0x08080808);
        assert!(!f.contains(1, 0x08080808));
        assert_eq!(f.len(), 0);
    }
}
