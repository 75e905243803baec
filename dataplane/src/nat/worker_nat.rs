//! [`WorkerNat`]: all the NAT state of one worker and the operations on it — lookups,
//! creation, refresh, expiry, removal, listing, static-port reservation. The types it
//! speaks ([`SessionId`], [`NatAction`], [`Out2In`], ...) are declared in the module
//! root (`nat/mod.rs`), whose docs describe the data model and memory budget.

use super::blocks::{self, BlockCounters, BlockInfo, BlockQuery, PortBlocks};
use super::deterministic::{DetPorts, DetTables};
use super::filter::{AddrFilter, Filtering};
use super::frag::FragTable;
use super::hash::{self, FlowHasher, PortRng};
use super::key::{self, Endpoint, Proto, Tuple};
use super::mapping::MappingTable;
use super::ports::{PortAllocator, PortCounters, PortInUse, PortPartition, PortRange, PortUse};
use super::subscriber::{Subscriber, Subscribers};
use super::table::{
    self, Session, SessionKind, SessionTable, F_CHARGE_REMOTE, F_COUNTED, F_FILTER, F_INBOUND, NIL, REPLIED, S_LINKED,
    S_STATE, UNREPLIED,
};
use super::tcp::{self, RelDir, TcpState};
use super::timeouts::{TimeoutClass, Timeouts};
use super::timers::Wheel;
use super::{
    ConfigError, CreateError, Dir, MappingId, MappingRef, MemoryReport, NatAction, NatConfig, NatCounters, Out2In,
    RefreshMode, Refreshed, SessionId, SessionInfo, SessionRef, SnatTarget,
};
use crate::logging::{EventKind, LogSink, NatEvent, QuotaKind};
use crate::packet::checksum::Delta;
use crate::time::{Duration, Instant};
use std::net::Ipv4Addr;
use std::sync::Arc;

/// All NAT state of one worker.
pub struct WorkerNat {
    worker: u16,
    partition: PortPartition,
    filtering: Filtering,
    ports_per_subscriber: u32,
    sessions_per_subscriber: u32,
    blocks_per_subscriber: u32,
    pub(super) timeouts: Arc<Timeouts>,
    pub(super) sessions: SessionTable,
    pub(super) mappings: MappingTable,
    pub(super) subscribers: Subscribers,
    filter: Option<AddrFilter>,
    pub(super) ports: PortAllocator,
    /// Port block allocation: none when ports are allocated one by one.
    blocks: Option<PortBlocks>,
    pub(super) wheel: Wheel,
    frags: FragTable,
    rng: PortRng,
    counters: NatCounters,
    flush_cursor: u32,
    /// Live sessions of kind `DestNat` (the slow path looks for them only when any exist).
    dest_nat: u32,
    /// The inside keys (by their index tag's low byte) of sessions created since
    /// [`forget_created`](Self::forget_created): see [`created_since`](Self::created_since).
    created: [u64; 4],
    /// Protocol helpers' state ([`super::helper`]).
    pub(super) helpers: super::helper::Helpers,
    /// NAT event logging: none when logging is off (see [`crate::logging`]).
    log: Option<NatLog>,
    /// Deterministic NAT tables and this worker's ports on their addresses (mapping
    /// address indexes from `pool_len` on).
    det: DetTables,
    det_ports: DetPorts,
    pool_len: usize,
}

/// A worker's event sink and its alert limiter.
struct NatLog {
    sink: LogSink,
    alerts: AlertLimiter,
}

/// Alerts (exhaustion, quotas) a worker reports at most per second: a flood of refused
/// flows must not flood the ring. The rest are counted (`log_alerts_suppressed`).
pub const ALERTS_PER_SECOND: u32 = 64;

#[derive(Default)]
struct AlertLimiter {
    second: u64,
    sent: u32,
    suppressed: u64,
}

impl AlertLimiter {
    fn allow(&mut self, now: Instant) -> bool {
        if now.as_secs() != self.second {
            self.second = now.as_secs();
            self.sent = 0;
        }
        if self.sent < ALERTS_PER_SECOND {
            self.sent += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// What a worker's event logging did: plain integers it publishes with its counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogCounters {
    /// Events queued for the logging thread.
    pub events: u64,
    /// Events lost because the ring was full.
    pub dropped: u64,
    /// Alerts not reported (over [`ALERTS_PER_SECOND`]).
    pub alerts_suppressed: u64,
}

#[inline]
fn timeout_class(proto: Proto, state: u8) -> TimeoutClass {
    match proto {
        Proto::Tcp => TcpState::from_u8(state).timeout_class(),
        Proto::Udp => TimeoutClass::Udp,
        Proto::Icmp => TimeoutClass::Icmp,
        Proto::Other(_) => TimeoutClass::Other,
    }
}

#[inline]
fn ms32(t: Instant) -> u32 {
    t.as_millis() as u32
}

impl WorkerNat {
    /// Allocate every table for `config`. The only allocating call.
    pub fn new(mut config: NatConfig, timeouts: Arc<Timeouts>) -> Result<Self, ConfigError> {
        let partition = config.partition()?;
        if config.worker_index >= config.worker_count {
            return Err(ConfigError::WorkerIndex);
        }
        if config.max_sessions == 0 || config.max_sessions > 1 << 30 {
            return Err(ConfigError::MaxSessions);
        }
        config.external_addrs.sort();
        config.external_addrs.dedup();
        let addrs = &config.external_addrs;
        if addrs.len() + config.deterministic.addrs().len() > usize::from(u16::MAX) {
            return Err(ConfigError::TooManyAddresses);
        }
        if let Some(a) = config.deterministic.addrs().iter().find(|a| addrs.binary_search(a).is_ok()) {
            return Err(ConfigError::DeterministicInPool(*a));
        }
        // Mappings name their external address by index: the pool, then the
        // deterministic addresses.
        let mapping_addrs: Vec<Ipv4Addr> = addrs.iter().chain(config.deterministic.addrs()).copied().collect();
        let w = config.worker_index;
        let owned = partition.slice(w, true).len() + partition.slice(w, false).len();
        let total_ports = addrs.len() as u64 * Proto::ALL.len() as u64 * u64::from(owned);
        if total_ports >= u64::from(u32::MAX) {
            return Err(ConfigError::PortSpace);
        }
        let normal = partition.slice(w, false);
        if config.port_block_size > normal.len() {
            return Err(ConfigError::PortBlockSize { size: config.port_block_size, slice: normal.len() });
        }
        if config.port_block_size > 0 && config.port_blocks_per_subscriber == 0 {
            return Err(ConfigError::PortBlocksPerSubscriber);
        }
        let blocks = (config.port_block_size > 0).then(|| {
            let held = u64::from(config.subscribers()) * u64::from(config.port_blocks_per_subscriber);
            let capacity = held.min(u64::from(u32::MAX - 1)) as u32;
            PortBlocks::new(addrs.len(), normal, config.port_block_size, capacity, config.port_hold)
        });
        let quarantine = match config.quarantine_capacity {
            // Ports of blocks are not quarantined one by one (blocks are).
            _ if blocks.is_some() => 1,
            0 => total_ports.min(2 * u64::from(config.max_sessions)).max(1) as usize,
            n => n as usize,
        };
        // Independent keys per table from the one secret (and the worker index, so
        // workers do not share hash functions).
        let mut s = config.seed ^ (u64::from(w) << 48);
        let mut key = || hash::splitmix64(&mut s);
        let max = config.max_sessions;
        Ok(WorkerNat {
            worker: w,
            partition,
            filtering: config.filtering,
            ports_per_subscriber: config.ports_per_subscriber,
            sessions_per_subscriber: config.sessions_per_subscriber,
            blocks_per_subscriber: config.port_blocks_per_subscriber,
            timeouts,
            sessions: SessionTable::new(max, FlowHasher::new(key())),
            mappings: MappingTable::new(max, FlowHasher::new(key()), &mapping_addrs),
            subscribers: Subscribers::new(config.subscribers(), FlowHasher::new(key()))
                .with_rate(config.new_sessions_per_second, config.new_sessions_burst),
            filter: (config.filtering == Filtering::AddressDependent)
                .then(|| AddrFilter::new(max, FlowHasher::new(key()))),
            ports: PortAllocator::new(addrs, partition, w, config.port_hold, quarantine),
            blocks,
            wheel: Wheel::new(max, 0),
            frags: FragTable::new(config.max_fragments as usize, config.fragment_timeout, FlowHasher::new(key())),
            rng: PortRng::new(key()),
            counters: NatCounters::default(),
            flush_cursor: 0,
            dest_nat: 0,
            created: [0; 4],
            helpers: super::helper::Helpers::new(
                &config.helpers,
                config.helper_sessions(),
                config.max_expectations,
                FlowHasher::new(key()),
                FlowHasher::new(key()),
            ),
            log: None,
            det_ports: DetPorts::new(config.deterministic.addrs().len()),
            det: config.deterministic,
            pool_len: addrs.len(),
        })
    }

    // ----- lookups (fast path) -----

    #[inline]
    fn sref(&self, idx: u32) -> SessionRef<'_> {
        SessionRef { id: SessionId(idx), session: self.sessions.get(idx) }
    }

    fn mref(&self, idx: u32) -> MappingRef {
        let m = self.mappings.get(idx);
        MappingRef {
            id: MappingId(idx),
            proto: m.proto,
            inside: m.inside(),
            outside: self.mappings.outside(m),
            sessions: m.refs,
        }
    }

    /// The local and remote endpoints of `t`'s session key on one side: the inside
    /// (a packet that arrived inside, `src` = inside endpoint) or the outside (`dst` =
    /// outside endpoint).
    #[inline]
    fn key_of(t: &Tuple, outside: bool) -> (key::Side, Endpoint, Endpoint) {
        if outside {
            (key::Side::Outside, t.dst, Endpoint::new(t.src.addr, t.proto.remote_port(t.src.port)))
        } else {
            (key::Side::Inside, t.src, Endpoint::new(t.dst.addr, t.proto.remote_port(t.dst.port)))
        }
    }

    /// The burst lookup, first pass: the session-index tag of `t`'s key (as
    /// [`lookup_in2out`](Self::lookup_in2out) or, `outside`, the session part of
    /// [`lookup_out2in`](Self::lookup_out2in) would compute it), and start loading its
    /// index slot. Hash once: the tag serves the next two passes.
    #[inline]
    pub fn lookup_begin(&self, t: &Tuple, outside: bool) -> u32 {
        let (side, local, remote) = Self::key_of(t, outside);
        let tag = self.sessions.tag(side, local, remote, t.proto);
        self.sessions.prefetch_slot(tag);
        tag
    }

    /// Second pass, once the slot is likely cached: start loading the session record it
    /// points to. A burst's lookups overlap their memory waits instead of taking them
    /// one by one.
    #[inline]
    pub fn lookup_prefetch(&self, tag: u32) {
        self.sessions.prefetch_record(tag);
    }

    /// Third pass: the session of `t` (a session only: no mapping or filter fallback),
    /// found with the tag of [`lookup_begin`](Self::lookup_begin).
    #[inline]
    pub fn lookup_tagged(&self, t: &Tuple, outside: bool, tag: u32) -> Option<SessionRef<'_>> {
        let (side, local, remote) = Self::key_of(t, outside);
        self.sessions.find_tagged(tag, side, local, remote, t.proto).map(|i| self.sref(i))
    }

    /// The session of a packet that arrived on the inside (`src` = inside endpoint).
    #[inline]
    pub fn lookup_in2out(&self, t: &Tuple) -> Option<SessionRef<'_>> {
        let remote = Endpoint::new(t.dst.addr, t.proto.remote_port(t.dst.port));
        self.sessions.find_inside(t.src, remote, t.proto).map(|i| self.sref(i))
    }

    /// The session, or mapping and filtering verdict, of a packet that arrived on the
    /// outside (`dst` = outside endpoint) — or of a hairpinned packet after its in2out
    /// translation. The filter check is at most one more lookup.
    #[inline]
    pub fn lookup_out2in(&self, t: &Tuple) -> Out2In<'_> {
        let remote = Endpoint::new(t.src.addr, t.proto.remote_port(t.src.port));
        if let Some(i) = self.sessions.find_outside(t.dst, remote, t.proto) {
            return Out2In::Session(self.sref(i));
        }
        let Some(m) = self.mappings.find_outside(t.dst, t.proto) else {
            return Out2In::Miss;
        };
        let accepted = match (self.filtering, &self.filter) {
            (Filtering::EndpointIndependent, _) => true,
            (Filtering::AddressDependent, Some(f)) => f.contains(m, u32::from(remote.addr)),
            _ => false,
        };
        if accepted {
            Out2In::Mapping(self.mref(m))
        } else {
            Out2In::Filtered(self.mref(m))
        }
    }

    /// The mapping that owns external endpoint `ext` (hairpinning, diagnostics).
    pub fn lookup_outside(&self, ext: Endpoint, proto: Proto) -> Option<MappingRef> {
        self.mappings.find_outside(ext, proto).map(|m| self.mref(m))
    }

    /// The mapping of inside endpoint `inside`, if it has one.
    pub fn mapping_of(&self, inside: Endpoint, proto: Proto) -> Option<MappingRef> {
        self.mappings.find_inside(inside, proto).map(|m| self.mref(m))
    }

    /// A live session by id.
    pub fn session(&self, id: SessionId) -> Option<SessionRef<'_>> {
        self.sessions.is_live(id.0).then(|| self.sref(id.0))
    }

    // ----- creation (slow path) -----

    /// Create the session for a new flow whose first packet is `t` (with TCP `flags`,
    /// ignored for UDP and ICMP). Never evicts anything.
    pub fn create(
        &mut self,
        t: &Tuple,
        action: NatAction,
        tcp_flags: u8,
        now: Instant,
    ) -> Result<SessionId, CreateError> {
        self.create_known(t, action, tcp_flags, None, now)
    }

    /// [`create`](Self::create) for a flow from inside whose inside key — `t.src`
    /// talking to `t.dst` — the caller looked up with session-index tag `absent` (from
    /// [`lookup_begin`](Self::lookup_begin)) and found no session for, none having been
    /// created since ([`created_since`](Self::created_since)): that lookup is not
    /// repeated, nor the key hashed again. `None`: nothing known, as `create`.
    pub fn create_known(
        &mut self,
        t: &Tuple,
        action: NatAction,
        tcp_flags: u8,
        absent: Option<u32>,
        now: Instant,
    ) -> Result<SessionId, CreateError> {
        match self.create_inner(t, action, tcp_flags, absent, now) {
            Ok(idx) => {
                self.counters.sessions_created += 1;
                if self.log.is_some() {
                    self.log_session(EventKind::SessionCreate, idx, now);
                }
                self.counters.created_by_proto[t.proto.code()] += 1;
                Ok(SessionId(idx))
            }
            Err(e) => {
                self.counters.create_failed[e as usize] += 1;
                if self.log.is_some() {
                    self.log_refusal(e, t, action, now);
                }
                Err(e)
            }
        }
    }

    // ----- event logging (slow path only) -----

    /// Log NAT events to `sink` from now on (before the worker starts).
    pub fn set_log(&mut self, sink: LogSink) {
        self.log = Some(NatLog { sink, alerts: AlertLimiter::default() });
    }

    /// What event logging did (zeros when it is off).
    pub fn log_counters(&self) -> LogCounters {
        self.log.as_ref().map_or(LogCounters::default(), |l| {
            let c = l.sink.counters();
            LogCounters { events: c.events, dropped: c.dropped, alerts_suppressed: l.alerts.suppressed }
        })
    }

    /// A deterministic subscriber: its whole mapping is logged once at start, so its
    /// sessions and mappings are not.
    fn is_deterministic(&self, inside: Ipv4Addr) -> bool {
        !self.det.is_empty() && self.det.map(inside).is_some()
    }

    #[inline]
    fn wants(&self, kind: EventKind) -> bool {
        self.log.as_ref().is_some_and(|l| l.sink.wants(kind))
    }

    fn push_event(&mut self, ev: NatEvent) {
        if let Some(l) = self.log.as_mut() {
            l.sink.push(ev);
        }
    }

    /// An alert, rate-limited.
    fn push_alert(&mut self, ev: NatEvent, now: Instant) {
        if let Some(l) = self.log.as_mut() {
            if l.alerts.allow(now) {
                l.sink.push(ev);
            }
        }
    }

    /// Whether a session create or delete of `proto` is logged. Address-only sessions
    /// (GRE, ESP, any protocol without ports) are logged whenever logging is on, whatever
    /// `events` says: no port block, mapping or deterministic range names the subscriber
    /// behind an external address used without ports, only the session record (with its
    /// remote and protocol) does.
    #[inline]
    fn wants_session(&self, kind: EventKind, proto: Proto) -> bool {
        self.log.as_ref().is_some_and(|l| l.sink.wants(kind) || proto.is_addr_only())
    }

    /// Session create or delete of a translated session (identity sessions, which
    /// translate nothing, are not logged).
    fn log_session(&mut self, kind: EventKind, idx: u32, now: Instant) {
        let s = *self.sessions.get(idx);
        if self.wants_session(kind, s.proto()) {
            self.log_session_record(kind, &s, now);
        }
    }

    fn log_session_record(&mut self, kind: EventKind, s: &Session, now: Instant) {
        // A deterministic subscriber's ports are named by its table record; its
        // address-only sessions are not (its address is shared with other subscribers).
        if !s.proto().is_addr_only() && self.is_deterministic(s.inside().addr) {
            return;
        }
        let [inside, outside, remote] = s.shown_endpoints();
        let ev = NatEvent::session(kind, now.as_millis(), s.proto(), inside, outside, remote);
        match s.kind() {
            SessionKind::SourceNat => self.push_event(ev),
            SessionKind::DestNat => self.push_event(ev.as_dest_nat()),
            SessionKind::Identity => {}
        }
    }

    /// Quota and exhaustion alerts for a refused creation (ports exhausted is
    /// reported where the allocator fails, which knows the address).
    fn log_refusal(&mut self, e: CreateError, t: &Tuple, action: NatAction, now: Instant) {
        let subscriber = match action {
            NatAction::Inbound(MappingId(m)) if self.mappings.is_live(m) => {
                Ipv4Addr::from(self.mappings.get(m).inside_addr)
            }
            NatAction::Dnat { to, from_inside: false } => to.addr,
            NatAction::NoNatInbound => t.dst.addr,
            _ => t.src.addr,
        };
        self.log_refused_for(e, subscriber, now);
    }

    /// The quota alert (natEvent 13) for creation error `e` of `subscriber`, if `e` is a
    /// quota: the slow path's refusals and a protocol helper's data endpoint refused
    /// alike. Exhaustion (3, 12) is reported where the allocator fails.
    pub(super) fn log_refused_for(&mut self, e: CreateError, subscriber: Ipv4Addr, now: Instant) {
        if self.log.is_none() {
            return;
        }
        let ms = now.as_millis();
        let ev = match e {
            CreateError::SessionTableFull if self.sessions.is_full() => {
                NatEvent::quota(ms, QuotaKind::MaxSessions, self.sessions.capacity(), Ipv4Addr::UNSPECIFIED)
            }
            CreateError::SessionTableFull => {
                NatEvent::quota(ms, QuotaKind::MaxMappings, self.sessions.capacity(), Ipv4Addr::UNSPECIFIED)
            }
            CreateError::SubscriberLimit => match self.subscribers.get(subscriber) {
                None => {
                    NatEvent::quota(ms, QuotaKind::MaxSubscribers, self.subscribers.capacity(), Ipv4Addr::UNSPECIFIED)
                }
                Some(sub) => {
                    let limit = if self.ports_per_subscriber != 0 && sub.ports >= self.ports_per_subscriber {
                        self.ports_per_subscriber
                    } else if let Some(b) =
                        self.blocks.as_ref().filter(|_| self.blocks_held(subscriber) >= self.blocks_per_subscriber)
                    {
                        // Out of blocks: the ports it may hold.
                        self.blocks_per_subscriber.saturating_mul(b.size())
                    } else {
                        self.sessions_per_subscriber
                    };
                    NatEvent::quota(ms, QuotaKind::MaxEntriesPerUser, limit, subscriber)
                }
            },
            // RFC 8158 has no event for a rate: counted (`subscriber_rate_limit`) only.
            CreateError::PortsExhausted
            | CreateError::TupleInUse
            | CreateError::NoMapping
            | CreateError::RateLimited
            | CreateError::AddressInUse => return,
        };
        self.push_alert(ev, now);
    }

    /// Whether the session index holds inside key (`inside`, `remote`) — looked up
    /// unless the caller knows it absent (`absent`, its tag) — and the key's tag.
    fn inside_key(
        &self,
        inside: Endpoint,
        remote: Endpoint,
        proto: Proto,
        absent: Option<u32>,
    ) -> Result<u32, CreateError> {
        if let Some(tag) = absent {
            debug_assert_eq!(tag, self.sessions.tag(key::Side::Inside, inside, remote, proto), "the tag of this key");
            debug_assert!(self.sessions.find_inside(inside, remote, proto).is_none(), "known absent");
            return Ok(tag);
        }
        let tag = self.sessions.tag(key::Side::Inside, inside, remote, proto);
        match self.sessions.find_tagged(tag, key::Side::Inside, inside, remote, proto) {
            Some(_) => Err(CreateError::TupleInUse),
            None => Ok(tag),
        }
    }

    /// Whether the session index holds outside key (`outside`, `remote`), and its tag.
    fn outside_key(&self, outside: Endpoint, remote: Endpoint, proto: Proto) -> Result<u32, CreateError> {
        let tag = self.sessions.tag(key::Side::Outside, outside, remote, proto);
        match self.sessions.find_tagged(tag, key::Side::Outside, outside, remote, proto) {
            Some(_) => Err(CreateError::TupleInUse),
            None => Ok(tag),
        }
    }

    fn create_inner(
        &mut self,
        t: &Tuple,
        action: NatAction,
        flags: u8,
        absent: Option<u32>,
        now: Instant,
    ) -> Result<u32, CreateError> {
        if self.sessions.is_full() {
            return Err(CreateError::SessionTableFull);
        }
        let proto = t.proto;
        self.subscribers.set_clock(now.as_millis());
        // The session keys' tags, where a branch computed them checking they are free.
        let mut tags: Option<[u32; 2]> = None;
        let session = match action {
            NatAction::Masquerade | NatAction::Snat(_) if proto.is_addr_only() => {
                let target = match action {
                    NatAction::Snat(s) => Some(s),
                    _ => None,
                };
                self.addr_only_session(t, target)?
            }
            NatAction::Masquerade | NatAction::Snat(_) => {
                let target = match action {
                    NatAction::Snat(s) => Some(s),
                    _ => None,
                };
                let inside = t.src;
                let remote = Endpoint::new(t.dst.addr, proto.remote_port(t.dst.port));
                let inside_tag = self.inside_key(inside, remote, proto, absent)?;
                let sub = self.subscribers.get(inside.addr);
                self.check_session_limit(sub)?;
                self.admit(inside.addr, now)?;
                let (m, fresh) = match self.mappings.find_inside(inside, proto) {
                    Some(m) => (m, false),
                    None if !self.det.is_empty() && self.det.map(inside.addr).is_some() => {
                        (self.new_det_mapping(inside, proto, sub, now)?, true)
                    }
                    None => (self.new_mapping(inside, proto, sub, target, now)?, true),
                };
                let outside = self.mappings.outside(self.mappings.get(m));
                let outside_tag = match self.outside_key(outside, remote, proto) {
                    Ok(tag) => tag,
                    Err(e) => {
                        if fresh {
                            self.release_mapping(m, now);
                        }
                        return Err(e);
                    }
                };
                tags = Some([inside_tag, outside_tag]);
                self.bind_mapping_session(m, inside, outside, remote, proto, 0)
            }
            NatAction::NoNat => {
                let ep = t.src;
                let remote = Endpoint::new(t.dst.addr, proto.remote_port(t.dst.port));
                let inside_tag = self.inside_key(ep, remote, proto, absent)?;
                tags = Some([inside_tag, self.outside_key(ep, remote, proto)?]);
                let sub = self.subscribers.get(ep.addr);
                self.check_session_limit(sub)?;
                self.admit(ep.addr, now)?;
                self.subscribers.adjust(ep.addr, 0, 0, 1).map_err(|_| CreateError::SubscriberLimit)?;
                table::Session::new(SessionKind::Identity, proto, ep, ep, remote, NIL, F_COUNTED)
            }
            NatAction::NoNatInbound => {
                let ep = t.dst;
                let remote = Endpoint::new(t.src.addr, proto.remote_port(t.src.port));
                self.check_free(ep, ep, remote, proto)?;
                // Counted against the inside host it reaches (not rate-limited: it did
                // not open it).
                self.charge(ep.addr, false, now)?;
                table::Session::new(SessionKind::Identity, proto, ep, ep, remote, NIL, F_INBOUND | F_COUNTED)
            }
            NatAction::Dnat { to, from_inside } => {
                let remote = Endpoint::new(t.src.addr, proto.remote_port(t.src.port));
                self.check_free(to, t.dst, remote, proto)?;
                // The subscriber: who opened it if it came from inside (a transparent
                // proxy, REDIRECT to the router), else the inside host it reaches — not
                // the router itself (REDIRECT on an outside port).
                let flags = if from_inside {
                    self.charge(t.src.addr, true, now)?;
                    F_INBOUND | F_COUNTED | F_CHARGE_REMOTE
                } else if self.ports.addr_index(to.addr).is_none() {
                    self.charge(to.addr, false, now)?;
                    F_INBOUND | F_COUNTED
                } else {
                    F_INBOUND
                };
                table::Session::new(SessionKind::DestNat, proto, to, t.dst, remote, NIL, flags)
            }
            NatAction::Inbound(MappingId(m)) => {
                if !self.mappings.is_live(m) {
                    return Err(CreateError::NoMapping);
                }
                let map = *self.mappings.get(m);
                let outside = self.mappings.outside(&map);
                if map.proto != proto || outside != t.dst {
                    return Err(CreateError::NoMapping);
                }
                let inside = map.inside();
                let remote = Endpoint::new(t.src.addr, proto.remote_port(t.src.port));
                self.check_free(inside, outside, remote, proto)?;
                self.check_session_limit(self.subscribers.get(inside.addr))?;
                self.bind_mapping_session(m, inside, outside, remote, proto, F_INBOUND)
            }
        };
        let dest_nat = session.kind() == SessionKind::DestNat;
        let tags = tags.unwrap_or_else(|| {
            let remote = session.remote();
            [
                self.sessions.tag(key::Side::Inside, session.inside(), remote, proto),
                self.sessions.tag(key::Side::Outside, session.outside(), remote, proto),
            ]
        });
        let inside_tag = tags[0];
        let idx = self.sessions.insert_tagged(session, tags).expect("checked not full");
        self.dest_nat += u32::from(dest_nat);
        self.created[usize::from(inside_tag as u8 >> 6)] |= 1 << (inside_tag & 63);
        let s = self.sessions.get_mut(idx);
        s.state = match proto {
            Proto::Tcp => tcp::next_state(TcpState::New, RelDir::Orig, flags) as u8,
            _ => UNREPLIED,
        };
        s.last_use = ms32(now);
        s.expires = (now + self.timeouts.get(timeout_class(proto, s.state))).as_millis();
        let expires = s.expires;
        self.wheel.insert(self.sessions.slab_mut(), idx, expires);
        Ok(idx)
    }

    /// Source NAT of an address-only flow (GRE, ESP, ...; see [`Proto::Other`]): no
    /// port to allocate, so the inside address takes an external address on which no
    /// other inside host has a flow to the same remote on the same protocol, as Linux
    /// and VPP do. Tried in turn from a start the inside address names: its paired
    /// address when it holds ports on this worker, else a hash of the address (every
    /// worker computes the same), then the next addresses of the target's range; a
    /// deterministic subscriber has only its fixed address. None free:
    /// [`CreateError::AddressInUse`]. No mapping backs the session; it counts against
    /// the subscriber's sessions on this worker.
    fn addr_only_session(&mut self, t: &Tuple, target: Option<SnatTarget>) -> Result<Session, CreateError> {
        let (proto, inside, remote) = (t.proto, t.src, t.dst);
        if self.sessions.find_inside(inside, remote, proto).is_some() {
            return Err(CreateError::TupleInUse);
        }
        let sub = self.subscribers.get(inside.addr);
        self.check_session_limit(sub)?;
        let free = |nat: &Self, addr: Ipv4Addr| {
            let outside = Endpoint::new(addr, inside.port);
            nat.sessions.find_outside(outside, remote, proto).is_none().then_some(outside)
        };
        let det = (!self.det.is_empty()).then(|| self.det.map(inside.addr)).flatten();
        let (outside, ix) = if let Some(dm) = det {
            let det_ix = self.det.addrs().binary_search(&dm.outside).map_err(|_| CreateError::PortsExhausted)?;
            (free(self, dm.outside).ok_or(CreateError::AddressInUse)?, (self.pool_len + det_ix) as u16)
        } else {
            let addrs = self.ports.addrs();
            let (lo, hi) = match target {
                None => (0, addrs.len()),
                Some(t) => (addrs.partition_point(|a| *a < t.addrs.0), addrs.partition_point(|a| *a <= t.addrs.1)),
            };
            if lo >= hi {
                return Err(CreateError::PortsExhausted);
            }
            let n = hi - lo;
            let start = match sub.filter(|s| s.ports > 0).map(|s| usize::from(s.ext)) {
                Some(ext) if (lo..hi).contains(&ext) => ext - lo,
                _ => super::steer::addr_hash(inside.addr) as usize % n,
            };
            (0..n)
                .map(|k| lo + (start + k) % n)
                .find_map(|ix| free(self, self.ports.addrs()[ix]).map(|o| (o, ix as u16)))
                .ok_or(CreateError::AddressInUse)?
        };
        self.subscribers.adjust(inside.addr, ix, 0, 1).map_err(|_| CreateError::SubscriberLimit)?;
        Ok(Session::new(SessionKind::SourceNat, proto, inside, outside, remote, NIL, F_COUNTED))
    }

    fn check_free(
        &self,
        inside: Endpoint,
        outside: Endpoint,
        remote: Endpoint,
        proto: Proto,
    ) -> Result<(), CreateError> {
        if self.sessions.find_inside(inside, remote, proto).is_some()
            || self.sessions.find_outside(outside, remote, proto).is_some()
        {
            return Err(CreateError::TupleInUse);
        }
        Ok(())
    }

    /// Take a new-session token from subscriber `addr` ([`Subscribers::admit`]).
    fn admit(&mut self, addr: Ipv4Addr, now: Instant) -> Result<(), CreateError> {
        if self.subscribers.admit(addr, now.as_millis()) {
            Ok(())
        } else {
            Err(CreateError::RateLimited)
        }
    }

    /// Count a session without a mapping against subscriber `addr`: its session limit,
    /// its rate if `opened` (the subscriber opened it), then its total.
    fn charge(&mut self, addr: Ipv4Addr, opened: bool, now: Instant) -> Result<(), CreateError> {
        self.check_session_limit(self.subscribers.get(addr))?;
        if opened {
            self.admit(addr, now)?;
        }
        self.subscribers.adjust(addr, 0, 0, 1).map_err(|_| CreateError::SubscriberLimit)
    }

    fn check_session_limit(&self, sub: Option<Subscriber>) -> Result<(), CreateError> {
        let limit = self.sessions_per_subscriber;
        match sub {
            Some(s) if limit != 0 && s.sessions >= limit => Err(CreateError::SubscriberLimit),
            None if self.subscribers.is_full() => Err(CreateError::SubscriberLimit),
            _ => Ok(()),
        }
    }

    /// Account a new session on mapping `m` and build its record.
    fn bind_mapping_session(
        &mut self,
        m: u32,
        inside: Endpoint,
        outside: Endpoint,
        remote: Endpoint,
        proto: Proto,
        extra: u8,
    ) -> Session {
        let mut flags = F_COUNTED | extra;
        if let Some(f) = &mut self.filter {
            // Cannot fail: one entry at most per session, sized for max_sessions.
            if f.acquire(m, u32::from(remote.addr)).is_ok() {
                flags |= F_FILTER;
            }
        }
        self.mappings.get_mut(m).refs += 1;
        let r = self.subscribers.adjust(inside.addr, 0, 0, 1);
        debug_assert!(r.is_ok(), "the mapping's subscriber exists");
        Session::new(SessionKind::SourceNat, proto, inside, outside, remote, m, flags)
    }

    /// Pick an external endpoint for `inside` and create its mapping (refs 0).
    pub(super) fn new_mapping(
        &mut self,
        inside: Endpoint,
        proto: Proto,
        sub: Option<Subscriber>,
        target: Option<SnatTarget>,
        now: Instant,
    ) -> Result<u32, CreateError> {
        if let Some(s) = sub {
            if self.ports_per_subscriber != 0 && s.ports >= self.ports_per_subscriber {
                return Err(CreateError::SubscriberLimit);
            }
        }
        if self.blocks.is_some() {
            return self.new_block_mapping(inside, proto, sub, target, now);
        }
        let (lo, hi) = self.target_addrs(target);
        if lo >= hi {
            return Err(CreateError::PortsExhausted);
        }
        let range = target.and_then(|t| t.ports);
        // Paired pooling: a subscriber holding ports keeps its address.
        let paired = sub.filter(|s| s.ports > 0).map(|s| usize::from(s.ext));
        let (ix, port) = match paired {
            Some(ext) if (lo..hi).contains(&ext) => {
                let ix = ext as u16;
                let Some(p) = self.ports.alloc(ix, proto, inside.port, range, &mut self.rng) else {
                    if self.log.is_some() {
                        let ev =
                            NatEvent::ports_exhausted(now.as_millis(), proto, inside.addr, self.ports.addrs()[ext]);
                        self.push_alert(ev, now);
                    }
                    return Err(CreateError::PortsExhausted);
                };
                (ix, p)
            }
            // First mapping (or an SNAT rule whose range excludes the paired address):
            // start at a hash of the subscriber for an even spread, then go round.
            _ => {
                let n = (hi - lo) as u64;
                let start = ((self.subscribers.spread(inside.addr) >> 32) * n) >> 32;
                let found = (0..n).find_map(|k| {
                    let ix = (lo as u64 + (start + k) % n) as u16;
                    self.ports.alloc(ix, proto, inside.port, range, &mut self.rng).map(|p| (ix, p))
                });
                let Some(found) = found else {
                    if self.log.is_some() {
                        let ev = NatEvent::addresses_exhausted(now.as_millis(), self.ports.addrs()[lo], n as u32);
                        self.push_alert(ev, now);
                    }
                    return Err(CreateError::PortsExhausted);
                };
                found
            }
        };
        let Some(m) = self.mappings.insert(inside, ix, port, proto) else {
            self.ports.undo_alloc(ix, proto, port);
            return Err(CreateError::SessionTableFull);
        };
        // Sets the paired address if this is the subscriber's first port.
        if self.subscribers.adjust(inside.addr, ix, 1, 0).is_err() {
            self.mappings.remove(m);
            self.ports.undo_alloc(ix, proto, port);
            return Err(CreateError::SubscriberLimit);
        }
        self.counters.mappings_created += 1;
        if self.wants(EventKind::MappingCreate) && !self.is_deterministic(inside.addr) {
            let outside = self.mappings.outside(self.mappings.get(m));
            self.push_event(NatEvent::mapping(EventKind::MappingCreate, now.as_millis(), proto, inside, outside));
        }
        Ok(m)
    }

    /// A new mapping for `inside` on external address `addr` (a protocol helper's data
    /// endpoint, on its control session's address): a deterministic subscriber whose
    /// fixed address `addr` is takes a port of its fixed range, so the table alone still
    /// names it; anyone else a port of `addr` as [`new_mapping`](Self::new_mapping)
    /// allocates them (from the subscriber's port blocks when they are on).
    pub(super) fn new_mapping_on(
        &mut self,
        inside: Endpoint,
        proto: Proto,
        addr: Ipv4Addr,
        now: Instant,
    ) -> Result<u32, CreateError> {
        let sub = self.subscribers.get(inside.addr);
        if !self.det.is_empty() && self.det.map(inside.addr).is_some_and(|dm| dm.outside == addr) {
            return self.new_det_mapping(inside, proto, sub, now);
        }
        self.new_mapping(inside, proto, sub, Some(SnatTarget { addrs: (addr, addr), ports: None }), now)
    }

    /// The pool indexes `lo..hi` an SNAT target may use (the whole pool without one).
    fn target_addrs(&self, target: Option<SnatTarget>) -> (usize, usize) {
        let addrs = self.ports.addrs();
        match target {
            None => (0, addrs.len()),
            Some(t) => (addrs.partition_point(|a| *a < t.addrs.0), addrs.partition_point(|a| *a <= t.addrs.1)),
        }
    }

    /// Blocks `subscriber` holds (in use or idle).
    fn blocks_held(&self, subscriber: Ipv4Addr) -> u32 {
        let Some(blocks) = &self.blocks else { return 0 };
        let mut n = 0;
        let mut b = self.subscribers.first_block(subscriber);
        while b != blocks::NONE {
            n += 1;
            b = blocks.next_of_sub(b);
        }
        n
    }

    /// With port block allocation: a port for `inside`'s new mapping from one of its
    /// subscriber's blocks that the target allows — the source port if it lies in one
    /// and is free, else a random free port of the first block (newest first) that has
    /// one — or from a new block: on the address of the subscriber's blocks (paired
    /// pooling), or for a subscriber without blocks (or whose blocks' address the SNAT
    /// target excludes) on the first target address from a hash of the subscriber with
    /// a free block. Out of blocks (`blocks_per_subscriber`) with every port of its
    /// blocks taken: `SubscriberLimit`; no free block: `PortsExhausted`.
    fn new_block_mapping(
        &mut self,
        inside: Endpoint,
        proto: Proto,
        sub: Option<Subscriber>,
        target: Option<SnatTarget>,
        now: Instant,
    ) -> Result<u32, CreateError> {
        let (lo, hi) = self.target_addrs(target);
        if lo >= hi {
            return Err(CreateError::PortsExhausted);
        }
        let range = target.and_then(|t| t.ports);
        let in_target = |ix: u16| (lo..hi).contains(&usize::from(ix));
        let head = if sub.is_some() { self.subscribers.first_block(inside.addr) } else { blocks::NONE };
        let blocks = self.blocks.as_mut().expect("port blocks are on");
        let usable = |span: PortRange| match range {
            Some(r) => span.intersect(r),
            None => span,
        };
        let mut found = None;
        // The source port, if it lies in one of the subscriber's blocks (on their address).
        if head != blocks::NONE {
            let (ix, _) = blocks.span(head);
            if let Some(b) = blocks.block_of(ix, inside.port).filter(|b| blocks.subscriber(*b) == inside.addr) {
                let want = usable(PortRange::new(inside.port, inside.port));
                if in_target(ix) && !want.is_empty() {
                    if let Some(p) = self.ports.alloc_in(ix, proto, inside.port, want, &mut self.rng) {
                        found = Some((b, ix, p));
                    }
                }
            }
        }
        // Else any free port of its blocks, newest first.
        let mut held = 0;
        let mut b = head;
        while found.is_none() && b != blocks::NONE {
            held += 1;
            let (ix, span) = blocks.span(b);
            if in_target(ix) {
                if let Some(p) = self.ports.alloc_in(ix, proto, inside.port, usable(span), &mut self.rng) {
                    found = Some((b, ix, p));
                }
            }
            b = blocks.next_of_sub(b);
        }
        let (b, ix, port, fresh) = match found {
            Some((b, ix, p)) => (b, ix, p, false),
            None => {
                if held >= self.blocks_per_subscriber {
                    return Err(CreateError::SubscriberLimit);
                }
                let paired = (head != blocks::NONE).then(|| blocks.span(head).0).filter(|ix| in_target(*ix));
                // A new block whose usable ports are all reserved for this protocol
                // (port forwards, `[host] ports`) is set aside and another taken, up to
                // `SKIP` of them; the set-aside ones go back to the free blocks after.
                const SKIP: usize = 8;
                let mut skipped = [blocks::NONE; SKIP];
                let mut n_skipped = 0;
                loop {
                    let taken = match paired {
                        Some(ix) => blocks.take(ix, range, inside.addr, head, &mut self.rng, now).map(|b| (b, ix)),
                        None => {
                            let n = (hi - lo) as u64;
                            let start = ((self.subscribers.spread(inside.addr) >> 32) * n) >> 32;
                            (0..n).find_map(|k| {
                                let ix = (lo as u64 + (start + k) % n) as u16;
                                blocks.take(ix, range, inside.addr, head, &mut self.rng, now).map(|b| (b, ix))
                            })
                        }
                    };
                    let alloc = taken.map(|(b, ix)| {
                        let (_, span) = blocks.span(b);
                        (b, ix, self.ports.alloc_in(ix, proto, inside.port, usable(span), &mut self.rng))
                    });
                    if let Some((b, ix, Some(p))) = alloc {
                        for s in &skipped[..n_skipped] {
                            blocks.undo_take(*s);
                        }
                        break (b, ix, p, true);
                    }
                    if let Some((b, _, None)) = alloc {
                        if n_skipped < SKIP {
                            skipped[n_skipped] = b;
                            n_skipped += 1;
                            continue;
                        }
                        blocks.undo_take(b);
                    }
                    for s in &skipped[..n_skipped] {
                        blocks.undo_take(*s);
                    }
                    if alloc.is_none() && self.log.is_some() {
                        let ms = now.as_millis();
                        let ev = match paired {
                            Some(ix) => {
                                NatEvent::ports_exhausted(ms, proto, inside.addr, self.ports.addrs()[ix as usize])
                            }
                            None => NatEvent::addresses_exhausted(ms, self.ports.addrs()[lo], (hi - lo) as u32),
                        };
                        self.push_alert(ev, now);
                    }
                    return Err(CreateError::PortsExhausted);
                }
            }
        };
        let undo = |nat: &mut WorkerNat| {
            nat.ports.free_now(ix, proto, port);
            if fresh {
                nat.blocks.as_mut().expect("port blocks are on").undo_take(b);
            }
        };
        let Some(m) = self.mappings.insert(inside, ix, port, proto) else {
            undo(self);
            return Err(CreateError::SessionTableFull);
        };
        if self.subscribers.adjust(inside.addr, ix, 1, 0).is_err() {
            self.mappings.remove(m);
            undo(self);
            return Err(CreateError::SubscriberLimit);
        }
        let blocks = self.blocks.as_mut().expect("port blocks are on");
        blocks.use_port(b);
        if fresh {
            self.subscribers.set_first_block(inside.addr, b);
        }
        self.counters.mappings_created += 1;
        if fresh && self.wants(EventKind::BlockAllocate) {
            let (ix, span) = self.blocks.as_ref().expect("port blocks are on").span(b);
            let ev = NatEvent::block(
                EventKind::BlockAllocate,
                now.as_millis(),
                inside.addr,
                self.ports.addrs()[usize::from(ix)],
                span.lo,
                span.len() as u16,
            );
            self.push_event(ev);
        }
        if self.wants(EventKind::MappingCreate) {
            let outside = self.mappings.outside(self.mappings.get(m));
            self.push_event(NatEvent::mapping(EventKind::MappingCreate, now.as_millis(), proto, inside, outside));
        }
        Ok(m)
    }

    /// Release the idle blocks whose hold has passed (at most `budget`): each leaves
    /// its subscriber's list and is logged (natEvent 17).
    fn release_blocks(&mut self, now: Instant, budget: usize) {
        let log = self.wants(EventKind::BlockRelease);
        let Some(blocks) = self.blocks.as_mut() else { return };
        for _ in 0..budget {
            let Some(b) = blocks.pop_due(now) else { break };
            let sub = blocks.subscriber(b);
            let next = blocks.next_of_sub(b);
            let head = self.subscribers.first_block(sub);
            if head == b {
                self.subscribers.set_first_block(sub, next);
            } else {
                let mut p = head;
                while p != blocks::NONE {
                    let n = blocks.next_of_sub(p);
                    if n == b {
                        blocks.set_next_of_sub(p, next);
                        break;
                    }
                    p = n;
                }
            }
            let (ix, span) = blocks.span(b);
            blocks.release(b);
            if log {
                let outside = self.ports.addrs()[usize::from(ix)];
                let ev =
                    NatEvent::block(EventKind::BlockRelease, now.as_millis(), sub, outside, span.lo, span.len() as u16);
                if let Some(l) = self.log.as_mut() {
                    l.sink.push(ev);
                }
            }
        }
    }

    /// A deterministic subscriber's mapping: a port of its fixed range on its fixed
    /// address (RFC 7422), whatever the rule's target.
    fn new_det_mapping(
        &mut self,
        inside: Endpoint,
        proto: Proto,
        sub: Option<Subscriber>,
        now: Instant,
    ) -> Result<u32, CreateError> {
        if let Some(s) = sub {
            if self.ports_per_subscriber != 0 && s.ports >= self.ports_per_subscriber {
                return Err(CreateError::SubscriberLimit);
            }
        }
        let dm = self.det.map(inside.addr).ok_or(CreateError::PortsExhausted)?;
        let det_ix = self.det.addrs().binary_search(&dm.outside).map_err(|_| CreateError::PortsExhausted)?;
        let Some(port) = self.det_ports.alloc(det_ix, proto, dm.ports, inside.port) else {
            if self.log.is_some() {
                self.push_alert(NatEvent::ports_exhausted(now.as_millis(), proto, inside.addr, dm.outside), now);
            }
            return Err(CreateError::PortsExhausted);
        };
        let ix = (self.pool_len + det_ix) as u16;
        let Some(m) = self.mappings.insert(inside, ix, port, proto) else {
            self.det_ports.free(det_ix, proto, port);
            return Err(CreateError::SessionTableFull);
        };
        if self.subscribers.adjust(inside.addr, ix, 1, 0).is_err() {
            self.mappings.remove(m);
            self.det_ports.free(det_ix, proto, port);
            return Err(CreateError::SubscriberLimit);
        }
        self.counters.mappings_created += 1;
        Ok(m)
    }

    /// Whether `addr` is one of this NAT's external addresses: the dynamic pool or a
    /// deterministic table's.
    #[inline]
    pub fn is_external(&self, addr: Ipv4Addr) -> bool {
        self.ports.addrs().binary_search(&addr).is_ok() || (!self.det.is_empty() && self.det.is_outside(addr))
    }

    /// The deterministic NAT tables.
    pub fn deterministic(&self) -> &DetTables {
        &self.det
    }

    pub(super) fn release_mapping(&mut self, m: u32, now: Instant) {
        if self.wants(EventKind::MappingDelete)
            && !self.is_deterministic(Ipv4Addr::from(self.mappings.get(m).inside_addr))
        {
            let map = *self.mappings.get(m);
            let outside = self.mappings.outside(&map);
            self.push_event(NatEvent::mapping(
                EventKind::MappingDelete,
                now.as_millis(),
                map.proto,
                map.inside(),
                outside,
            ));
        }
        let map = self.mappings.remove(m);
        let r = self.subscribers.adjust(Ipv4Addr::from(map.inside_addr), 0, -1, 0);
        debug_assert!(r.is_ok());
        match usize::from(map.outside_ix).checked_sub(self.pool_len) {
            Some(det_ix) => self.det_ports.free(det_ix, map.proto, map.outside_port),
            None => match self.blocks.as_mut() {
                Some(blocks) => {
                    self.ports.free_now(map.outside_ix, map.proto, map.outside_port);
                    match blocks.block_of(map.outside_ix, map.outside_port) {
                        Some(b) => blocks.unuse(b, now),
                        None => debug_assert!(false, "a mapping's port outside every block"),
                    }
                }
                None => self.ports.free(map.outside_ix, map.proto, map.outside_port, now),
            },
        }
        self.counters.mappings_freed += 1;
    }

    /// Free an unscheduled session and everything only it held.
    fn free_session(&mut self, idx: u32, now: Instant) -> Session {
        if self.sessions.get(idx).state & S_LINKED != 0 {
            self.helper_release(idx, now);
        }
        let s = self.sessions.remove(idx);
        self.dest_nat -= u32::from(s.kind() == SessionKind::DestNat);
        if self.wants_session(EventKind::SessionDelete, s.proto()) {
            self.log_session_record(EventKind::SessionDelete, &s, now);
        }
        self.counters.ended_by_proto[s.proto().code()] += 1;
        // F_FILTER means F_CHARGE_REMOTE on a session without a mapping.
        if s.flags & F_FILTER != 0 && s.mapping != NIL {
            if let Some(f) = &mut self.filter {
                f.release(s.mapping, s.remote_addr);
            }
        }
        if s.flags & F_COUNTED != 0 {
            let charged =
                if s.mapping == NIL && s.flags & F_CHARGE_REMOTE != 0 { s.remote_addr } else { s.inside_addr };
            let r = self.subscribers.adjust(Ipv4Addr::from(charged), 0, 0, -1);
            debug_assert!(r.is_ok());
        }
        if s.mapping != NIL {
            let m = self.mappings.get_mut(s.mapping);
            m.refs -= 1;
            if m.refs == 0 {
                self.release_mapping(s.mapping, now);
            }
        }
        s
    }

    // ----- per packet -----

    /// Account a packet of session `id` travelling `dir`: advance its state and, per
    /// `mode`, refresh its timer. Reads the live timeout for the session's class, so a
    /// changed timeout applies from this packet on.
    #[inline]
    pub fn refresh(&mut self, id: SessionId, dir: Dir, tcp_flags: u8, mode: RefreshMode, now: Instant) -> Refreshed {
        let s = self.sessions.get_mut(id.0);
        debug_assert!(s.is_live());
        let proto = s.proto();
        let before = s.state();
        let rel = if dir == s.initiator() { RelDir::Orig } else { RelDir::Reply };
        let old_state = s.state & S_STATE;
        s.state = match proto {
            Proto::Tcp => tcp::next_state(TcpState::from_u8(old_state), rel, tcp_flags) as u8,
            _ if rel == RelDir::Reply => REPLIED,
            _ => old_state,
        } | (s.state & !S_STATE);
        let refresh = match mode {
            RefreshMode::Default => dir == Dir::In2Out || before.is_established(),
            RefreshMode::Force => true,
            RefreshMode::Suppress => false,
        };
        let class = timeout_class(proto, s.state & S_STATE);
        let mut earlier = false;
        if refresh || class != timeout_class(proto, old_state) {
            let base = if refresh {
                s.last_use = ms32(now);
                now
            } else {
                // Class changed without a refresh: count from the last refresh.
                Instant::from_millis(now.as_millis().saturating_sub(u64::from(ms32(now).wrapping_sub(s.last_use))))
            };
            let expires = (base + self.timeouts.get(class)).as_millis();
            earlier = expires < s.expires;
            s.expires = expires;
        }
        let out = Refreshed { refreshed: refresh, state: s.state(), expires: Instant::from_millis(s.expires) };
        if earlier {
            // Deadlines only move earlier on a shorter class or a lowered timeout.
            let e = out.expires.as_millis();
            self.wheel.reschedule(self.sessions.slab_mut(), id.0, e);
        }
        out
    }

    /// Store the precomputed checksum deltas of a session (the slow path's job; see
    /// [`Session`]).
    pub fn set_csum_deltas(&mut self, id: SessionId, deltas: [Delta; 2]) {
        self.sessions.get_mut(id.0).csum = deltas;
    }

    // ----- timers -----

    /// The earliest time `expire` may have work (sessions, port quarantine, fragments).
    /// Never later than a real deadline; may be earlier (the wheel cascades).
    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.wheel.next_deadline().map(Instant::from_millis),
            self.ports.next_release(),
            self.frags.next_deadline(),
            self.blocks.as_ref().and_then(PortBlocks::next_release),
            self.helper_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn info(&self, idx: u32, now: Instant) -> SessionInfo {
        let s = self.sessions.get(idx);
        let [inside, outside, remote] = s.shown_endpoints();
        let mut info = SessionInfo {
            id: SessionId(idx),
            proto: s.proto(),
            kind: s.kind(),
            initiator: s.initiator(),
            inside,
            outside,
            remote,
            state: s.state(),
            idle: Duration::from_millis(u64::from(ms32(now).wrapping_sub(s.last_use))),
            expires_in: Duration::from_millis(s.expires.saturating_sub(now.as_millis())),
            helper: None,
            parent: None,
        };
        if let Some((h, parent)) = self.helper_of(SessionId(idx)) {
            info.helper = Some(h);
            info.parent = parent;
        }
        info
    }

    /// Free up to `budget` sessions whose deadline is `<= now`, reporting each to
    /// `on_expired` (the session log) before it goes; also releases quarantined ports
    /// and fragment entries that are due. Work per call is bounded by `budget`.
    /// Returns the number of sessions expired.
    pub fn expire(&mut self, now: Instant, budget: usize, mut on_expired: impl FnMut(&SessionInfo)) -> usize {
        let mut work = budget.saturating_mul(4).saturating_add(64);
        let mut n = 0;
        while n < budget {
            let Some(idx) = self.wheel.poll(self.sessions.slab_mut(), now.as_millis(), &mut work) else {
                break;
            };
            if self.helper_defer_expiry(idx) {
                // A control session with live data sessions: its timer starts again.
                let s = self.sessions.get_mut(idx);
                let expires = (now + self.timeouts.get(timeout_class(s.proto(), s.state & S_STATE))).as_millis();
                s.expires = expires;
                self.wheel.insert(self.sessions.slab_mut(), idx, expires);
                continue;
            }
            let info = self.info(idx, now);
            self.free_session(idx, now);
            on_expired(&info);
            n += 1;
        }
        debug_assert_eq!(self.wheel.len(), self.sessions.len() as usize);
        self.counters.sessions_expired += n as u64;
        self.ports.release_due(now, budget);
        self.release_blocks(now, budget);
        self.frags.expire(now, budget);
        self.helper_expire(now);
        n
    }

    /// Remove one session now (control plane).
    /// A control session's data sessions go with it (helpers).
    pub fn remove(&mut self, id: SessionId, now: Instant) -> Option<SessionInfo> {
        if !self.sessions.is_live(id.0) {
            return None;
        }
        while let Some(child) = self.helper_first_child(id) {
            self.remove(child, now);
        }
        let info = self.info(id.0, now);
        self.wheel.remove(self.sessions.slab_mut(), id.0);
        self.free_session(id.0, now);
        self.counters.sessions_removed += 1;
        Some(info)
    }

    /// Remove up to `budget` sessions (control plane "flush"), scanning a bounded
    /// stretch of the slab per call; call again until [`count`](Self::count) is 0.
    pub fn flush(&mut self, now: Instant, budget: usize, mut on_removed: impl FnMut(&SessionInfo)) -> usize {
        let cap = self.sessions.capacity();
        let mut scan = budget.saturating_mul(16).saturating_add(1024).min(cap as usize);
        let mut n = 0;
        while n < budget && scan > 0 && self.sessions.len() > 0 {
            let i = self.flush_cursor;
            self.flush_cursor = if i + 1 == cap { 0 } else { i + 1 };
            scan -= 1;
            if let Some(info) = self.remove(SessionId(i), now) {
                on_removed(&info);
                n += 1;
            }
        }
        n
    }

    /// List live sessions from slab index `cursor` on: appends up to `limit` to `out`
    /// and returns the cursor to continue from, or `None` at the end. Scans a bounded
    /// number of slots per call, so a page may be short; millions list without stalls.
    pub fn sessions_after(&self, cursor: u32, limit: usize, now: Instant, out: &mut Vec<SessionInfo>) -> Option<u32> {
        let cap = self.sessions.capacity();
        let mut scan = limit.saturating_mul(16).saturating_add(1024);
        let mut i = cursor;
        let mut added = 0;
        while i < cap && added < limit && scan > 0 {
            if self.sessions.is_live(i) {
                out.push(self.info(i, now));
                added += 1;
            }
            i += 1;
            scan -= 1;
        }
        (i < cap).then_some(i)
    }

    // ----- static ports -----

    /// Keep the allocator away from a statically forwarded external port (a DNAT
    /// rule's). Addresses outside the pool and ports outside this worker's slices
    /// need no reservation and succeed.
    pub fn reserve_port(&mut self, ext: Endpoint, proto: Proto) -> Result<(), PortInUse> {
        match self.ports.addr_index(ext.addr) {
            Some(ix) => self.ports.reserve(ix, proto, ext.port),
            None => Ok(()),
        }
    }

    /// Undo [`reserve_port`](Self::reserve_port).
    pub fn unreserve_port(&mut self, ext: Endpoint, proto: Proto) {
        if let Some(ix) = self.ports.addr_index(ext.addr) {
            self.ports.unreserve(ix, proto, ext.port);
        }
    }

    // ----- introspection -----

    /// Live sessions.
    pub fn count(&self) -> u32 {
        self.sessions.len()
    }

    /// Live sessions that translate a destination (DNAT, REDIRECT): while there are
    /// none, a packet from inside cannot belong to one by its outside key.
    pub fn dest_nat_sessions(&self) -> u32 {
        self.dest_nat
    }

    /// Start a new record of the sessions created (see
    /// [`created_since`](Self::created_since)): the `nat-slowpath` stage, once per burst.
    #[inline]
    pub fn forget_created(&mut self) {
        self.created = [0; 4];
    }

    /// Whether a session may have been created since
    /// [`forget_created`](Self::forget_created) whose inside key has the index tag `tag`
    /// ([`lookup_begin`](Self::lookup_begin) of a packet from inside). `false` is certain:
    /// a packet from inside the fast path missed still has no session, whatever the
    /// burst created before it — its own flow, a hairpin's session on the destination's
    /// mapping, a helper's expected connection. `true` may be another key (256 bits).
    #[inline]
    pub fn created_since(&self, tag: u32) -> bool {
        self.created[usize::from(tag as u8 >> 6)] & 1 << (tag & 63) != 0
    }

    /// Live mappings (external ports in use).
    pub fn mapping_count(&self) -> u32 {
        self.mappings.len()
    }

    /// Port use per external address, from pool index `from` on: appends to `out` as
    /// many as its spare capacity holds (no allocation) and returns the index to go on
    /// from, or `None` when every address was reported.
    pub fn port_usage(&self, from: usize, out: &mut Vec<PortUse>) -> Option<usize> {
        let mut i = from;
        while out.len() < out.capacity() {
            match self.ports.usage(i) {
                Some(u) => out.push(u),
                None => return None,
            }
            i += 1;
        }
        (i < self.ports.addrs().len()).then_some(i)
    }

    /// Port block allocation: (ports per block, blocks per subscriber), or `None` when
    /// ports are allocated one by one.
    pub fn port_blocks(&self) -> Option<(u32, u32)> {
        self.blocks.as_ref().map(|b| (b.size(), self.blocks_per_subscriber))
    }

    /// Port blocks held now (in use or idle; 0 without port blocks).
    pub fn block_count(&self) -> u32 {
        self.blocks.as_ref().map_or(0, PortBlocks::live)
    }

    /// What the block allocator did (zeros without port blocks).
    pub fn block_counters(&self) -> BlockCounters {
        self.blocks.as_ref().map_or(BlockCounters::default(), |b| b.counters)
    }

    /// The port blocks `query` names, from `from` on: appends as many as `out`'s spare
    /// capacity holds (no allocation) and returns where to go on, or `None` when done.
    /// Bounded work: a subscriber's list, one block, or at most 4096 block slots of an
    /// address per call.
    pub fn blocks_matching(&self, query: BlockQuery, from: u32, now: Instant, out: &mut Vec<BlockInfo>) -> Option<u32> {
        let blocks = self.blocks.as_ref()?;
        let addrs = self.ports.addrs();
        match query {
            BlockQuery::Subscriber(a) => {
                let mut b = self.subscribers.first_block(a);
                let mut i = 0;
                while b != blocks::NONE {
                    if i >= from {
                        if out.len() == out.capacity() {
                            return Some(i);
                        }
                        out.push(blocks.info(b, addrs, now));
                    }
                    i += 1;
                    b = blocks.next_of_sub(b);
                }
                None
            }
            BlockQuery::Outside(a, port) => {
                let ix = self.ports.addr_index(a)?;
                if let Some(p) = port {
                    if let Some(b) = blocks.block_of(ix, p) {
                        if out.len() < out.capacity() {
                            out.push(blocks.info(b, addrs, now));
                        }
                    }
                    return None;
                }
                let end = blocks.per_addr().min(from.saturating_add(4096));
                for k in from..end {
                    if let Some(b) = blocks.at(ix, k) {
                        if out.len() == out.capacity() {
                            return Some(k);
                        }
                        out.push(blocks.info(b, addrs, now));
                    }
                }
                (end < blocks.per_addr()).then_some(end)
            }
        }
    }

    /// A subscriber's accounting.
    pub fn subscriber(&self, inside: Ipv4Addr) -> Option<Subscriber> {
        self.subscribers.get(inside)
    }

    pub fn subscriber_count(&self) -> usize {
        self.subscribers.len()
    }

    pub fn counters(&self) -> &NatCounters {
        &self.counters
    }

    pub fn port_counters(&self) -> &PortCounters {
        &self.ports.counters
    }

    /// Ports currently held in quarantine.
    pub fn ports_held(&self) -> usize {
        self.ports.held()
    }

    pub fn worker(&self) -> u16 {
        self.worker
    }

    pub fn partition(&self) -> &PortPartition {
        &self.partition
    }

    /// The sorted external pool.
    pub fn external_addrs(&self) -> &[Ipv4Addr] {
        self.ports.addrs()
    }

    pub fn timeouts(&self) -> &Arc<Timeouts> {
        &self.timeouts
    }

    pub fn fragments(&mut self) -> &mut FragTable {
        &mut self.frags
    }

    pub fn memory(&self) -> MemoryReport {
        MemoryReport {
            sessions: self.sessions.memory_bytes(),
            mappings: self.mappings.memory_bytes(),
            filter: self.filter.as_ref().map_or(0, AddrFilter::memory_bytes),
            subscribers: self.subscribers.memory_bytes(),
            ports: self.ports.memory_bytes()
                + self.det_ports.memory_bytes()
                + self.blocks.as_ref().map_or(0, PortBlocks::memory_bytes),
            fragments: self.frags.memory_bytes(),
            helpers: self.helpers.memory_bytes(),
            max_sessions: self.sessions.capacity(),
        }
    }
}
