//! The NAT: sessions, mappings, external ports, TCP state, timers, fragments — and the
//! packet path that applies them.
//!
//! Sans-I/O and per worker. [`WorkerNat`] owns all the state of one worker: it is
//! built from a [`NatConfig`] before the worker starts, then used by that worker alone,
//! without locks. It works on tuples and numbers, never on packet bytes, and never
//! reads a clock: every call that needs time takes the caller's `now`.
//!
//! `nat/` depends on `packet/`, `policy/` (the rules its slow path evaluates) and its
//! own types only: not on `l3/` (routing comes through the [`Routing`] trait), the
//! configuration file (`crate::setup` builds a [`NatConfig`] from it) or the worker's
//! counters (the pipeline publishes [`NatCounters`] and [`PathCounters`]).
//!
//! ## Files
//!
//! | file            | role                                                                  |
//! |-----------------|-----------------------------------------------------------------------|
//! | `mod.rs`        | the NAT's vocabulary: [`Dir`], [`SessionId`], [`NatAction`], [`Out2In`], [`CreateError`], counters |
//! | `worker_nat.rs` | [`WorkerNat`]: lookups, create, refresh, expire, listing; NAT events to the log ring |
//! | [`deterministic`] | deterministic NAT (RFC 7422): fixed address and port range per subscriber |
//! | [`key`], `hash.rs`, `index.rs`, [`table`] | tuples, keyed hashes, the session table     |
//! | `mapping.rs`, `subscriber.rs`, [`ports`], [`filter`] | EIM mappings, subscribers, port allocator, filtering |
//! | [`blocks`]      | port block allocation: a subscriber's ports from blocks it holds (logged per block) |
//! | [`tcp`], [`timeouts`], `timers.rs`, [`frag`] | TCP state table, live timeouts, timer wheel, fragments |
//! | [`classify`]    | one IPv4 packet → a `Copy` summary ([`classify::NatPacket`]): tuple, ICMP error quote, fragment |
//! | [`steer`]       | which worker owns a packet (several workers)                          |
//! | [`path`]        | [`NatPath`]: one worker's NAT in the pipeline — fast-path lookup, rewrite, timers |
//! | [`fastpath`]    | apply a session to packet bytes with its precomputed checksum deltas  |
//! | [`slowpath`]    | misses: the whole decision (policy, hairpinning, DNAT, ICMP errors, fragments), create, deltas |
//! | [`static_ports`] | keep the port allocator off the ports that port forwards use        |
//!
//! ## The packet path
//!
//! The worker's pipeline (`crate::pipeline`) runs the NAT as four stages over a burst:
//!
//! ```text
//!  ip4-input ─▶ nat-classify: classify once (tuple, ICMP quote, fragment); steer ─▶ handoff
//!            ─▶ nat-lookup:   hash once, prefetch slot then session; hit ─▶ Hit (no rules, no allocation)
//!            ─▶ nat-slowpath: misses only: PREROUTING, route, FORWARD, POSTROUTING,
//!                             create + deltas, hairpinning, ICMP errors, fragments ─▶ Plan
//!  Plan/Hit ─▶ ip4-forward: route(dst), TTL, MTU (on the packet as received), TTL−1
//!           ─▶ nat-rewrite: NatPath::apply: fastpath rewrite (in2out: src inside→outside;
//!              out2in: dst outside→inside), refresh ─▶ l2-output
//! ```
//!
//! [`slowpath`] has the full diagram (hairpinning, filtering, DNAT, ICMP errors,
//! fragments) and the rule-evaluation order.
//!
//! The only shared state is [`Timeouts`] (atomics the control plane changes live) and
//! the read-only [`PortPartition`] every worker can consult to find the owner of an
//! external port.
//!
//! ## Data model
//!
//! - A **session** ([`Session`], `table.rs`) is one flow: inside, outside and remote
//!   endpoints plus protocol, kind, state and timers. It is found from packets arriving
//!   inside by (inside, remote, proto) and from packets arriving outside by (outside,
//!   remote, proto) — one hash lookup each, in one index.
//! - A **mapping** (`mapping.rs`) is the endpoint-independent binding inside endpoint →
//!   external endpoint that all source-NAT sessions from that endpoint share (RFC 4787
//!   REQ-1). It exists while it has sessions.
//! - A **subscriber** (`subscriber.rs`) is an inside address: its paired external
//!   address and its port and session counts (limits).
//! - **Ports** (`ports.rs`): this worker's slice of every external address, a bitmap per
//!   (address, protocol), and a quarantine for freed ports. With port block allocation
//!   ([`blocks`]) a subscriber's mappings take ports of the blocks it holds, each a run
//!   of the slice for all protocols, held and released (and logged) as a whole.
//! - **Filtering** (`filter.rs`), **TCP state** (`tcp.rs`), **expiry** (`timers.rs`: a
//!   lazily rescheduled hierarchical wheel), **fragments** (`frag.rs`).
//!
//! ## Memory: fixed at construction
//!
//! Every table is a boxed slice sized from the configuration; nothing allocates after
//! [`WorkerNat::new`] on any per-packet or expiry path (listing, which fills a
//! caller's `Vec`, is a control-path call). Per session, worst case (one mapping per
//! session):
//!
//! ```text
//!   Session record                                   48 B
//!   session index: 2 entries × 8 B at load ≤ 0.8     20 B
//!   Mapping record                                   16 B
//!   mapping index: 2 entries × 8 B at load ≤ 0.9     17.8 B
//!   ─────────────────────────────────────────────────────
//!   endpoint-independent / address+port-dependent   101.8 B
//!   + address-dependent filter entry 16 B / 0.8      20 B  → 121.8 B
//! ```
//!
//! (The mapping and subscriber indexes are sized for a worst case they seldom reach —
//! a mapping per session, four sessions per subscriber — so they are filled to 0.9
//! rather than 0.8 at their limit; see `index.rs`.)
//!
//! Sized separately (see [`MemoryReport`]): subscribers (28 B / 0.9 each; default
//! `max_sessions / 4` of them, ≈ 7.8 B per session), the port quarantine (8 B per entry,
//! at most `2 × max_sessions` by default; one entry with port blocks), port bitmaps (one
//! bit per external port this worker owns, per protocol), port blocks (40 B per block a
//! subscriber can hold, 4 B per block of the pool), fragments (≈ 42 B per entry), wheel
//! heads (3.5 KiB).
//!
//! ## Life of a flow
//!
//! ```text
//! in2out:  lookup_in2out(tuple) ── hit ──▶ translate, refresh(id, In2Out, flags, ..)
//!                                └ miss ─▶ policy ─▶ create(tuple, Snat|NoNat|Dnat, ..)
//! out2in:  lookup_out2in(tuple) ── Session ─▶ translate, refresh(id, Out2In, ..)
//!                                ├ Mapping ─▶ create(tuple, Inbound(mapping), ..)
//!                                ├ Filtered ▶ drop (FilteredEndpoint)
//!                                └ Miss ────▶ DNAT rule? create(tuple, Dnat{to}, ..)
//!                                             : routed untracked / NoNatInbound, or drop (NoSession)
//! timers:  at most once per ms, if now >= next_deadline(): expire(now, 256, log)
//! ```
//!
//! MASQUERADE is `Snat` to the egress port's address; the `Masquerade` action (the
//! subscriber's paired pool address) is for callers that want the whole pool.
//!
//! **Ownership among workers** ([`steer`]). Inside traffic belongs to the subscriber's
//! worker; an outside packet to (external address, port) to `partition.owner_of(port)`;
//! a worker receiving another's packet hands it over. A new flow to a port forward is
//! handed on to the worker of its inside target, whose replies RSS brings there.
//!
//! **Hairpinning.** An inside packet to one of our external endpoints is handled as two
//! passes: in2out for the sender (its own mapping and session, on its own worker), then
//! out2in of the translated packet (on the worker that owns the destination port, which
//! may be another: the packet is handed over between the passes) —
//! [`WorkerNat::lookup_out2in`] accepts any tuple, whichever interface it came from,
//! and [`WorkerNat::lookup_outside`] resolves an external endpoint directly.

pub mod blocks;
pub mod classify;
pub mod config;
pub mod deterministic;
pub mod fastpath;
pub mod filter;
pub mod frag;
pub mod hash;
pub mod helper;
pub(crate) mod index;
pub mod key;
mod mapping;
pub mod path;
pub mod ports;
pub mod slowpath;
pub mod static_ports;
pub mod steer;
mod subscriber;
pub mod table;
pub mod tcp;
pub mod timeouts;
pub(crate) mod timers;
mod worker_nat;

pub use blocks::{BlockCounters, BlockInfo, BlockQuery};
pub use config::{ConfigError, NatConfig};
pub use filter::Filtering;
pub use frag::{FragCounters, FragError, FragInfo, FragKey, FragTable};
pub use helper::{ExpectInfo, HelperCounter, HelperKind, HelperPort};
pub use key::{Endpoint, FlowKey, Proto, Tuple};
pub use path::{Decision, Hit, Lookup, NatPath, PathCounters, Plan, Routing, SharedRules, SlowHints};
pub use ports::{PortCounters, PortInUse, PortPartition, PortRange, PortUse};
pub use subscriber::Subscriber;
pub use table::{ConnState, Session, SessionKind, SESSION_BYTES};
pub use tcp::{TcpState, TCP_TRANSITIONS};
pub use timeouts::{TimeoutClass, TimeoutValues, Timeouts};
pub use worker_nat::{LogCounters, WorkerNat, ALERTS_PER_SECOND};

use crate::stats::DropReason;
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;

/// Direction of a packet through the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Arrived on the inside, leaves on the outside ("outbound").
    In2Out,
    /// Arrived on the outside, leaves on the inside ("inbound").
    Out2In,
}

/// A session's slab index. Valid until the next `expire`, `flush` or `remove` call on
/// the same [`WorkerNat`] (so: for the rest of a burst).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u32);

impl SessionId {
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// A mapping's slab index; same validity as [`SessionId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MappingId(u32);

/// A session found by a lookup.
#[derive(Clone, Copy, Debug)]
pub struct SessionRef<'a> {
    pub id: SessionId,
    pub session: &'a Session,
}

impl core::ops::Deref for SessionRef<'_> {
    type Target = Session;
    fn deref(&self) -> &Session {
        self.session
    }
}

/// A mapping, by value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappingRef {
    pub id: MappingId,
    pub proto: Proto,
    pub inside: Endpoint,
    pub outside: Endpoint,
    /// Sessions using it.
    pub sessions: u32,
}

/// Result of an out2in lookup.
#[derive(Clone, Copy, Debug)]
pub enum Out2In<'a> {
    /// An existing session: translate.
    Session(SessionRef<'a>),
    /// No session, but a mapping whose filter accepts this remote: the caller may
    /// [`create`](WorkerNat::create) a session with [`NatAction::Inbound`].
    Mapping(MappingRef),
    /// A mapping exists but its filter refuses this remote (`FilteredEndpoint`).
    Filtered(MappingRef),
    /// Nothing: a static DNAT rule may apply, else `NoSession`.
    Miss,
}

/// An SNAT target: pool addresses in `addrs` (inclusive; addresses outside the pool
/// are not ours and are skipped), ports in `ports` if given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnatTarget {
    pub addrs: (Ipv4Addr, Ipv4Addr),
    pub ports: Option<PortRange>,
}

/// What to do with a new flow — the policy's choice, or an inbound session on a
/// mapping. The first three take a tuple from the inside, the last three from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NatAction {
    /// Source NAT to this subscriber's paired pool address (MASQUERADE).
    Masquerade,
    /// Source NAT to a given address/port range (SNAT).
    Snat(SnatTarget),
    /// Forward untranslated, but track (nat-table ACCEPT).
    NoNat,
    /// Forward untranslated, but track, a flow whose first packet came from outside
    /// (`t.dst` is the inside side). Counted against the inside host.
    NoNatInbound,
    /// Packet to (addr, port), sent on to `to` (DNAT; REDIRECT is DNAT to the address
    /// the packet arrived on, see [`NatAction::redirect`]). Counted against the inside
    /// subscriber that opened it if it came `from_inside` (a transparent proxy), else
    /// against `to` (a port forward) unless `to` is one of our external addresses.
    Dnat { to: Endpoint, from_inside: bool },
    /// Outside packet accepted by a mapping (from [`Out2In::Mapping`]).
    Inbound(MappingId),
}

impl NatAction {
    /// REDIRECT: DNAT to the router's own address on the inbound interface.
    pub const fn redirect(inbound_addr: Ipv4Addr, port: u16, from_inside: bool) -> NatAction {
        NatAction::Dnat { to: Endpoint::new(inbound_addr, port), from_inside }
    }
}

/// Why a session could not be created. The caller drops the packet, counts
/// [`drop_reason`](Self::drop_reason), and for a flow from inside sends ICMP host
/// unreachable (RFC 6888 REQ-8). An existing mapping or session is never evicted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum CreateError {
    /// The session table (or the mapping table) is full.
    SessionTableFull = 0,
    /// The subscriber is at its port or session limit, or the subscriber table is full.
    SubscriberLimit = 1,
    /// No free port in this worker's slice of the subscriber's address.
    PortsExhausted = 2,
    /// A session already uses the inside or outside tuple (two DNAT rules to one
    /// target, or a caller that did not look up first).
    TupleInUse = 3,
    /// The mapping of an `Inbound` action is gone or does not match the tuple.
    NoMapping = 4,
    /// The subscriber opens new sessions faster than `new_sessions_per_second`.
    RateLimited = 5,
    /// An address-only flow (GRE, ESP, ...): every external address it may take
    /// already carries another inside host's flow to the same remote on the same
    /// protocol.
    AddressInUse = 6,
}

impl CreateError {
    pub const COUNT: usize = 7;

    pub const fn drop_reason(self) -> DropReason {
        match self {
            CreateError::SessionTableFull => DropReason::SessionTableFull,
            CreateError::SubscriberLimit => DropReason::SubscriberLimit,
            // No dedicated reason yet: the flow cannot get a distinct translation.
            CreateError::PortsExhausted | CreateError::TupleInUse => DropReason::PortsExhausted,
            CreateError::NoMapping => DropReason::NoSession,
            CreateError::RateLimited => DropReason::SubscriberRateLimit,
            CreateError::AddressInUse => DropReason::AddrOnlyInUse,
        }
    }
}

/// Whether a packet refreshes its session's timer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RefreshMode {
    /// Outbound packets refresh; inbound ones only established sessions (RFC 4787
    /// REQ-6, RFC 5382, RFC 7857 mapping refresh).
    #[default]
    Default,
    /// Refresh regardless.
    Force,
    /// Do not refresh: an ICMP error or RST sent from inside in reply to inbound
    /// packets (RFC 7857), which the caller recognises. State still advances.
    Suppress,
}

/// What [`WorkerNat::refresh`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refreshed {
    pub refreshed: bool,
    pub state: ConnState,
    pub expires: Instant,
}

/// A session, by value: for listings and the session log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionInfo {
    pub id: SessionId,
    pub proto: Proto,
    pub kind: SessionKind,
    pub initiator: Dir,
    pub inside: Endpoint,
    pub outside: Endpoint,
    pub remote: Endpoint,
    pub state: ConnState,
    /// Since the last refreshing packet.
    pub idle: Duration,
    /// Until expiry (zero if due).
    pub expires_in: Duration,
    /// The protocol helper of a helper session or of a data session it admitted.
    pub helper: Option<HelperKind>,
    /// A data session's control session.
    pub parent: Option<SessionId>,
}

/// Per-worker NAT counters: plain integers written by the worker only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(align(64))]
pub struct NatCounters {
    pub sessions_created: u64,
    pub sessions_expired: u64,
    /// Flushed or removed by the control plane.
    pub sessions_removed: u64,
    pub mappings_created: u64,
    pub mappings_freed: u64,
    /// Failed creations by [`CreateError`].
    pub create_failed: [u64; CreateError::COUNT],
    /// Sessions created, by [`Proto::code`] (3: every address-only protocol).
    pub created_by_proto: [u64; Proto::CODES],
    /// Sessions ended (expired or removed), by [`Proto::code`]: created minus ended is
    /// what each protocol has live.
    pub ended_by_proto: [u64; Proto::CODES],
}

/// Bytes held by each table of a [`WorkerNat`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryReport {
    pub sessions: usize,
    pub mappings: usize,
    pub filter: usize,
    pub subscribers: usize,
    pub ports: usize,
    pub fragments: usize,
    /// Helper links, line streams and expectations.
    pub helpers: usize,
    pub max_sessions: u32,
}

impl MemoryReport {
    pub fn total(&self) -> usize {
        self.sessions + self.mappings + self.filter + self.subscribers + self.ports + self.fragments + self.helpers
    }

    /// Session, mapping and filter tables (records and index slots) per session.
    pub fn per_session_tables(&self) -> f64 {
        (self.sessions + self.mappings + self.filter) as f64 / f64::from(self.max_sessions.max(1))
    }
}

#[cfg(test)]
mod blocks_tests;
#[cfg(test)]
mod deterministic_tests;
#[cfg(test)]
mod events_tests;
#[cfg(test)]
mod tests;
