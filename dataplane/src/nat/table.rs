//! The session table: a preallocated slab of [`Session`] records plus one index that
//! reaches each session from both of its keys.
//!
//! ## Layout and byte budget
//!
//! ```text
//!  slab: [Session; max_sessions]             48 B each, allocated once
//!  index: RobinHood<IdxSlot>                 8 B slots, 2 entries per session
//!         limit 2·max_sessions, load ≤ 0.8   → 2.5 slots = 20 B per session
//!  ─────────────────────────────────────────
//!  per session                               68 B (session + its index slots)
//! ```
//!
//! The index slot holds the key hash's top 32 bits (tag, which also fixes the home
//! slot) and `session_index << 1 | side`. A lookup hashes the packet's tuple, probes a
//! few 8-byte slots (usually one cache line), and compares the candidate's fields in
//! the session record — which a hit needs anyway to translate. So a hit costs the index
//! line plus the record; a miss usually only the index line.
//!
//! The whole-NAT budget (mappings, filters, subscribers, port state) is summed in the
//! [module docs](super).

use super::hash::FlowHasher;
use super::index::{IdxSlot, RobinHood};
use super::key::{pack5, Endpoint, Proto, Side};
use super::tcp::TcpState;
use super::timers::TimerNode;
use super::Dir;
use crate::packet::checksum::Delta;
use std::net::Ipv4Addr;

/// Marks "no index" in u32 link fields.
pub(crate) const NIL: u32 = u32::MAX;

/// What a session translates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum SessionKind {
    /// Source NAT (MASQUERADE or SNAT): the inside endpoint is mapped to an external
    /// endpoint taken from this worker's port slice; backed by a mapping.
    SourceNat = 0,
    /// Destination NAT (DNAT or REDIRECT): an outside client reached a forwarded
    /// endpoint (the session's outside side) and is sent on to the inside side.
    DestNat = 1,
    /// Forwarded untranslated (nat-table ACCEPT): inside == outside.
    Identity = 2,
}

/// Per-protocol connection state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// TCP, tracked by [`TCP_TRANSITIONS`](super::tcp::TCP_TRANSITIONS).
    Tcp(TcpState),
    /// UDP or ICMP: only the initiator has sent so far.
    Unreplied,
    /// UDP or ICMP: both sides have sent.
    Replied,
}

impl ConnState {
    /// Whether inbound packets may refresh the session (RFC 7857: outbound packets
    /// always refresh; inbound ones only once the session is established).
    pub const fn is_established(self) -> bool {
        matches!(self, ConnState::Tcp(TcpState::Established) | ConnState::Replied)
    }

    pub const fn name(self) -> &'static str {
        match self {
            ConnState::Tcp(s) => s.name(),
            ConnState::Unreplied => "unreplied",
            ConnState::Replied => "replied",
        }
    }
}

// Session::flags bits.
const F_PROTO: u8 = 0b0000_0011;
const F_KIND_SHIFT: u8 = 2;
const F_KIND: u8 = 0b0000_1100;
/// The initiator was outside (DNAT, or an inbound session on a mapping).
pub(crate) const F_INBOUND: u8 = 0b0001_0000;
/// Counted in its subscriber's session total.
pub(crate) const F_COUNTED: u8 = 0b0010_0000;
/// Holds a reference in the address-dependent filter table.
pub(crate) const F_FILTER: u8 = 0b0100_0000;
/// On a session without a mapping (DNAT, untranslated): counted against its remote
/// endpoint's address (the inside subscriber that opened it) rather than its inside one.
/// The same bit as [`F_FILTER`], which only sessions with a mapping use.
pub(crate) const F_CHARGE_REMOTE: u8 = F_FILTER;
/// The slab slot is in use.
const F_LIVE: u8 = 0b1000_0000;

/// UDP/ICMP `state` values.
pub(crate) const UNREPLIED: u8 = 0;
pub(crate) const REPLIED: u8 = 1;
/// `state` bits above the connection state: the session goes through the helper
/// stage ([`super::helper`]) ...
pub(crate) const S_HELPER: u8 = 0x80;
/// ... and has a helper link (a helper session, or a data session admitted by an
/// expectation).
pub(crate) const S_LINKED: u8 = 0x40;
/// The connection-state bits of `state`.
pub(crate) const S_STATE: u8 = 0x3f;

/// One translation: 48 bytes, preallocated, never moved.
///
/// A session joins three endpoints: **inside** (the host behind the NAT), **outside**
/// (what the rest of the world sees: external pool address and port for source NAT,
/// the forwarded address and port for DNAT) and **remote** (the peer). in2out packets
/// go inside → remote and leave as outside → remote; out2in packets arrive remote →
/// outside and leave as remote → inside. So every session rewrites exactly one
/// (address, port) pair, whichever its kind.
///
/// Times are milliseconds on the caller's [`Instant`](crate::time::Instant) line:
/// `expires` in full; `last_use` as its low 32 bits (for listings: idle time is exact
/// while under 49 days, and no timeout reaches that).
///
/// `csum` holds the translation's RFC 1624 checksum deltas for in2out, computed once
/// when the session is created (`slowpath::csum_deltas`): `[0]` for the IPv4 header
/// (address change) and `[1]` for the transport checksum (TCP/UDP: address + port,
/// pseudo-header included; ICMP query: the identifier only). out2in applies their
/// negations, since it undoes the same change. Zero (no change) until filled.
#[derive(Clone, Copy, Debug)]
pub struct Session {
    pub(crate) expires: u64,
    pub(crate) inside_addr: u32,
    pub(crate) outside_addr: u32,
    pub(crate) remote_addr: u32,
    /// Mapping index for [`SessionKind::SourceNat`], `NIL` otherwise.
    pub(crate) mapping: u32,
    pub(crate) last_use: u32,
    /// Timer-wheel links while live; `next` chains the free list while free.
    pub(crate) prev: u32,
    pub(crate) next: u32,
    pub(crate) inside_port: u16,
    pub(crate) outside_port: u16,
    pub(crate) remote_port: u16,
    pub(crate) csum: [Delta; 2],
    pub(crate) flags: u8,
    pub(crate) state: u8,
}

/// The record budget: 48 bytes (three fit in two cache lines).
pub const SESSION_BYTES: usize = 48;
const _: () = assert!(core::mem::size_of::<Session>() == SESSION_BYTES);

impl Session {
    pub(crate) const EMPTY: Session = Session {
        expires: 0,
        inside_addr: 0,
        outside_addr: 0,
        remote_addr: 0,
        mapping: NIL,
        last_use: 0,
        prev: NIL,
        next: NIL,
        inside_port: 0,
        outside_port: 0,
        remote_port: 0,
        csum: [Delta::new(); 2],
        flags: 0,
        state: 0,
    };

    /// A new (not yet inserted) session record.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        kind: SessionKind,
        proto: Proto,
        inside: Endpoint,
        outside: Endpoint,
        remote: Endpoint,
        mapping: u32,
        extra_flags: u8,
    ) -> Session {
        Session {
            inside_addr: inside.addr_u32(),
            outside_addr: outside.addr_u32(),
            remote_addr: remote.addr_u32(),
            inside_port: inside.port,
            outside_port: outside.port,
            remote_port: remote.port,
            mapping,
            flags: proto.code() as u8 | ((kind as u8) << F_KIND_SHIFT) | extra_flags,
            ..Session::EMPTY
        }
    }

    pub fn proto(&self) -> Proto {
        match self.flags & F_PROTO {
            // Address-only: the protocol number is in every port.
            3 => Proto::Other(self.remote_port as u8),
            code => Proto::from_code(code),
        }
    }

    pub fn kind(&self) -> SessionKind {
        match (self.flags & F_KIND) >> F_KIND_SHIFT {
            0 => SessionKind::SourceNat,
            1 => SessionKind::DestNat,
            _ => SessionKind::Identity,
        }
    }

    pub fn inside(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.inside_addr), self.inside_port)
    }

    pub fn outside(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.outside_addr), self.outside_port)
    }

    pub fn remote(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.remote_addr), self.remote_port)
    }

    /// Inside, outside and remote endpoints as listings and the event log show them:
    /// an address-only session's ports (its protocol number) as 0.
    pub fn shown_endpoints(&self) -> [Endpoint; 3] {
        let e = [self.inside(), self.outside(), self.remote()];
        if self.flags & F_PROTO == 3 {
            e.map(|e| Endpoint::new(e.addr, 0))
        } else {
            e
        }
    }

    /// Which direction the connection's first packet travelled.
    pub fn initiator(&self) -> Dir {
        if self.flags & F_INBOUND != 0 {
            Dir::Out2In
        } else {
            Dir::In2Out
        }
    }

    pub fn state(&self) -> ConnState {
        match self.proto() {
            Proto::Tcp => ConnState::Tcp(TcpState::from_u8(self.state)),
            _ if self.state & S_STATE == REPLIED => ConnState::Replied,
            _ => ConnState::Unreplied,
        }
    }

    /// Whether the session's packets go through the helper stage (it has a protocol
    /// helper, [`super::helper`]).
    #[inline]
    pub fn has_helper(&self) -> bool {
        self.state & S_HELPER != 0
    }

    /// When the session expires unless a packet refreshes it (ms).
    pub fn expires_ms(&self) -> u64 {
        self.expires
    }

    /// Low 32 bits of the last refresh time (ms).
    pub fn last_use_ms32(&self) -> u32 {
        self.last_use
    }

    /// The in2out checksum deltas (see the type docs).
    pub fn csum_deltas(&self) -> [Delta; 2] {
        self.csum
    }

    pub(crate) fn is_live(&self) -> bool {
        self.flags & F_LIVE != 0
    }

    #[inline]
    fn matches(&self, side: Side, local: Endpoint, remote: Endpoint, proto: Proto) -> bool {
        let (la, lp) = match side {
            Side::Inside => (self.inside_addr, self.inside_port),
            Side::Outside => (self.outside_addr, self.outside_port),
        };
        la == local.addr_u32()
            && lp == local.port
            && self.remote_addr == remote.addr_u32()
            && self.remote_port == remote.port
            && self.flags & F_PROTO == proto.code() as u8
    }
}

impl TimerNode for Session {
    #[inline]
    fn prev(&self) -> u32 {
        self.prev
    }
    #[inline]
    fn next(&self) -> u32 {
        self.next
    }
    #[inline]
    fn set_prev(&mut self, v: u32) {
        self.prev = v;
    }
    #[inline]
    fn set_next(&mut self, v: u32) {
        self.next = v;
    }
    #[inline]
    fn deadline(&self) -> u64 {
        self.expires
    }
}

/// Slab + index. Owned by one worker.
pub(crate) struct SessionTable {
    slab: Box<[Session]>,
    free_head: u32,
    live: u32,
    index: RobinHood<IdxSlot>,
    hasher: FlowHasher,
}

impl SessionTable {
    /// Room for `max` sessions; `max` must be below 2^31 (index values carry a side bit).
    pub fn new(max: u32, hasher: FlowHasher) -> Self {
        assert!(max < (1 << 31), "max_sessions must be below 2^31");
        let mut slab = crate::hugemem::filled(max as usize, Session::EMPTY);
        for (i, s) in slab.iter_mut().enumerate() {
            s.next = if i + 1 < max as usize { i as u32 + 1 } else { NIL };
        }
        SessionTable {
            slab,
            free_head: if max > 0 { 0 } else { NIL },
            live: 0,
            index: RobinHood::new(2 * max as usize),
            hasher,
        }
    }

    pub fn len(&self) -> u32 {
        self.live
    }

    pub fn capacity(&self) -> u32 {
        self.slab.len() as u32
    }

    pub fn is_full(&self) -> bool {
        self.free_head == NIL
    }

    /// Bytes held: slab plus index.
    pub fn memory_bytes(&self) -> usize {
        self.slab.len() * core::mem::size_of::<Session>() + self.index.capacity() * core::mem::size_of::<IdxSlot>()
    }

    #[inline]
    fn find(&self, side: Side, local: Endpoint, remote: Endpoint, proto: Proto) -> Option<u32> {
        self.find_tagged(self.tag(side, local, remote, proto), side, local, remote, proto)
    }

    /// The index tag of a key: hash it once, then [`prefetch_slot`](Self::prefetch_slot),
    /// [`prefetch_record`](Self::prefetch_record) and
    /// [`find_tagged`](Self::find_tagged) with it (the burst lookup's three passes).
    #[inline]
    pub fn tag(&self, side: Side, local: Endpoint, remote: Endpoint, proto: Proto) -> u32 {
        self.hasher.tag(pack5(local, remote, proto, side))
    }

    /// [`find_inside`](Self::find_inside) / [`find_outside`](Self::find_outside) with the
    /// key's [`tag`](Self::tag) already computed.
    #[inline]
    pub fn find_tagged(&self, tag: u32, side: Side, local: Endpoint, remote: Endpoint, proto: Proto) -> Option<u32> {
        let pos = self.index.find(tag, |slot| {
            slot.val & 1 == side as u32 && self.slab[(slot.val >> 1) as usize].matches(side, local, remote, proto)
        })?;
        Some(self.index.get(pos).val >> 1)
    }

    /// Start loading the index slot a lookup of `tag` reads first.
    #[inline]
    pub fn prefetch_slot(&self, tag: u32) {
        self.index.prefetch(tag);
    }

    /// Second pass, once the index slot is likely cached: start loading the session
    /// record the slot with `tag` points to.
    #[inline]
    pub fn prefetch_record(&self, tag: u32) {
        if let Some(slot) = self.index.first_with_tag(tag) {
            if let Some(s) = self.slab.get((slot.val >> 1) as usize) {
                crate::prefetch::read(s);
            }
        }
    }

    /// The session whose inside side is `inside` talking to `remote`.
    #[inline]
    pub fn find_inside(&self, inside: Endpoint, remote: Endpoint, proto: Proto) -> Option<u32> {
        self.find(Side::Inside, inside, remote, proto)
    }

    /// The session whose outside side is `outside` talking to `remote`.
    #[inline]
    pub fn find_outside(&self, outside: Endpoint, remote: Endpoint, proto: Proto) -> Option<u32> {
        self.find(Side::Outside, outside, remote, proto)
    }

    /// Store `s` and index it under both keys. The caller has checked neither key is
    /// present. Fails only when the slab is full.
    #[cfg(test)]
    pub fn insert(&mut self, s: Session) -> Option<u32> {
        let proto = s.proto();
        let tags = [
            self.tag(Side::Inside, s.inside(), s.remote(), proto),
            self.tag(Side::Outside, s.outside(), s.remote(), proto),
        ];
        self.insert_tagged(s, tags)
    }

    /// [`insert`](Self::insert) with the [`tag`](Self::tag)s of its inside and outside
    /// keys, which the caller computed to check that neither is present.
    pub fn insert_tagged(&mut self, mut s: Session, tags: [u32; 2]) -> Option<u32> {
        let idx = self.free_head;
        if idx == NIL {
            return None;
        }
        self.free_head = self.slab[idx as usize].next;
        // The next insert reads that slot's link: start loading it now.
        if let Some(next) = self.slab.get(self.free_head as usize) {
            crate::prefetch::read(next);
        }
        s.flags |= F_LIVE;
        s.prev = NIL;
        s.next = NIL;
        debug_assert_eq!(tags[0], self.tag(Side::Inside, s.inside(), s.remote(), s.proto()));
        debug_assert_eq!(tags[1], self.tag(Side::Outside, s.outside(), s.remote(), s.proto()));
        self.slab[idx as usize] = s;
        for (side, tag) in [(Side::Inside, tags[0]), (Side::Outside, tags[1])] {
            // Cannot fail: the index has room for two entries per slab slot.
            let r = self.index.insert(IdxSlot { tag, val: idx << 1 | side as u32 });
            debug_assert!(r.is_ok());
        }
        self.live += 1;
        Some(idx)
    }

    /// Unindex and free a live session; returns the record as it was.
    pub fn remove(&mut self, idx: u32) -> Session {
        let s = self.slab[idx as usize];
        debug_assert!(s.is_live());
        let proto = s.proto();
        let remote = s.remote();
        for (side, local) in [(Side::Inside, s.inside()), (Side::Outside, s.outside())] {
            let tag = self.hasher.tag(pack5(local, remote, proto, side));
            let want = idx << 1 | side as u32;
            let r = self.index.remove(tag, |slot| slot.val == want);
            debug_assert!(r.is_some());
        }
        let slot = &mut self.slab[idx as usize];
        *slot = Session::EMPTY;
        slot.next = self.free_head;
        self.free_head = idx;
        self.live -= 1;
        s
    }

    #[inline]
    pub fn get(&self, idx: u32) -> &Session {
        &self.slab[idx as usize]
    }

    #[inline]
    pub fn get_mut(&mut self, idx: u32) -> &mut Session {
        &mut self.slab[idx as usize]
    }

    /// Whether `idx` names a live session.
    pub fn is_live(&self, idx: u32) -> bool {
        self.slab.get(idx as usize).is_some_and(Session::is_live)
    }

    /// The slab, for the timer wheel's links.
    pub fn slab_mut(&mut self) -> &mut [Session] {
        &mut self.slab
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn ep(host: u8, port: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::new(10, 0, 0, host), port)
    }

    #[test]
    fn session_is_48_bytes() {
        assert_eq!(core::mem::size_of::<Session>(), 48);
    }

    #[test]
    fn accessors_round_trip() {
        let s = Session::new(SessionKind::DestNat, Proto::Udp, ep(1, 10), ep(2, 20), ep(3, 30), NIL, F_INBOUND);
        assert_eq!(s.proto(), Proto::Udp);
        assert_eq!(s.kind(), SessionKind::DestNat);
        assert_eq!((s.inside(), s.outside(), s.remote()), (ep(1, 10), ep(2, 20), ep(3, 30)));
        assert_eq!(s.initiator(), Dir::Out2In);
        assert_eq!(s.state(), ConnState::Unreplied);
    }

    #[test]
    fn both_keys_find_the_session_and_identity_keys_do_not_clash() {
        let mut t = SessionTable::new(4, FlowHasher::new(1));
        let id =
            t.insert(Session::new(SessionKind::Identity, Proto::Tcp, ep(1, 10), ep(1, 10), ep(9, 80), NIL, 0)).unwrap();
        assert_eq!(t.find_inside(ep(1, 10), ep(9, 80), Proto::Tcp), Some(id));
        assert_eq!(t.find_outside(ep(1, 10), ep(9, 80), Proto::Tcp), Some(id));
        assert_eq!(t.find_inside(ep(1, 10), ep(9, 80), Proto::Udp), None);
        t.remove(id);
        assert_eq!(t.find_inside(ep(1, 10), ep(9, 80), Proto::Tcp), None);
        assert_eq!(t.len(), 0);
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u16, u8, u16, bool),
        Remove(usize),
        Find(u8, u16, u8, u16, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..4, 0u16..4, 0u8..3, 0u16..3, any::<bool>()).prop_map(|(a, b, c, d, u)| Op::Insert(a, b, c, d, u)),
            (0usize..64).prop_map(Op::Remove),
            (0u8..4, 0u16..4, 0u8..3, 0u16..3, any::<bool>()).prop_map(|(a, b, c, d, u)| Op::Find(a, b, c, d, u)),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// Random inserts, removes and lookups agree with a HashMap keyed by both keys.
        #[test]
        fn matches_model(ops in prop::collection::vec(op(), 1..300), max in 1u32..24, seed in any::<u64>()) {
            let mut t = SessionTable::new(max, FlowHasher::new(seed));
            let mem = t.memory_bytes();
            // inside key -> (idx, outside key)
            let mut model: HashMap<(Endpoint, Endpoint, Proto), (u32, Endpoint)> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(ih, ip, rh, rp, udp) => {
                        let proto = if udp { Proto::Udp } else { Proto::Tcp };
                        let inside = ep(ih, ip);
                        let remote = ep(100 + rh, rp);
                        // outside derived injectively from inside (like a mapping).
                        let outside = ep(200 + ih, 1000 + ip);
                        if model.contains_key(&(inside, remote, proto)) {
                            continue;
                        }
                        let s = Session::new(SessionKind::SourceNat, proto, inside, outside, remote, 0, 0);
                        match t.insert(s) {
                            Some(id) => { model.insert((inside, remote, proto), (id, outside)); }
                            None => prop_assert_eq!(model.len() as u32, max),
                        }
                    }
                    Op::Remove(n) => {
                        if model.is_empty() { continue; }
                        let key = *model.keys().nth(n % model.len()).unwrap();
                        let (id, _) = model.remove(&key).unwrap();
                        let s = t.remove(id);
                        prop_assert_eq!(s.inside(), key.0);
                    }
                    Op::Find(ih, ip, rh, rp, udp) => {
                        let proto = if udp { Proto::Udp } else { Proto::Tcp };
                        let (inside, remote) = (ep(ih, ip), ep(100 + rh, rp));
                        let want = model.get(&(inside, remote, proto)).copied();
                        prop_assert_eq!(t.find_inside(inside, remote, proto), want.map(|w| w.0));
                        let outside = ep(200 + ih, 1000 + ip);
                        prop_assert_eq!(t.find_outside(outside, remote, proto), want.map(|w| w.0));
                    }
                }
                prop_assert_eq!(t.len() as usize, model.len());
            }
            prop_assert_eq!(t.memory_bytes(), mem);
        }
    }
}
