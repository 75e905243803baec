//! The mailbox between the control thread and one worker: how `sessions.*` and the
//! session figures of `stats.get` reach state that only the worker may touch.
//!
//! Sessions live in the worker's own [`WorkerNat`], without locks, so the control thread
//! cannot read them; it asks. Each worker has a bounded request queue
//! (`std::sync::mpsc::sync_channel`, [`MAILBOX_DEPTH`] deep). The worker looks at it at
//! most once per millisecond of its own clock, outside the burst loop, with `try_recv` —
//! never blocking — and answers at most one request per look, on a one-shot reply channel
//! the control thread waits on with a timeout ([`WorkerLink::ask`]).
//!
//! Every request is bounded work: a summary (counts, counters), one step of a scan of at
//! most [`SCAN_CHUNK`] sessions ([`WorkerNat::sessions_after`] scans a bounded stretch of
//! its slab), one flush step of at most [`SCAN_CHUNK`] sessions, or the port use of at
//! most [`PORT_USAGE_CHUNK`] external addresses (per-address, per-protocol in-use counts
//! the worker's port allocator keeps as plain integers), or the port blocks of one
//! subscriber, one port, or up to 4096 block slots of one address. The control thread
//! loops over steps and workers, so millions of sessions list, count and flush without
//! stalling the packet path for more than one step at a time.
//!
//! The worker does not allocate for the control plane: a scan step fills the `Vec` the
//! request brought (allocated by the control thread with room for the step) and sends it
//! back with the reply. Filters travel as a `Copy` [`SessionSelector`]; the state filter
//! is resolved to a bit set by the control thread.
//!
//! A worker without a NAT (before the NAT wiring, or a configuration without one) answers
//! [`Reply::NoNat`], which the control thread reads as "no sessions here".

use std::net::SocketAddrV4;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use control::protocol::{ControlError, ExpectationEntry, Ipv4Net, Protocol, SessionEntry, SessionFilter};

use crate::nat::{
    BlockInfo, BlockQuery, ConnState, Dir, Endpoint, ExpectInfo, NatCounters, PortUse, Proto, SessionInfo, TcpState,
    WorkerNat,
};
use crate::time::Instant;

/// Requests a worker's queue holds before [`WorkerLink::ask`] has to wait.
pub const MAILBOX_DEPTH: usize = 4;

/// Sessions one scan or flush step handles at most. A step scans at most 16 slab slots
/// per session plus 1024 (`WorkerNat::sessions_after`): about 5000 slots, a few tens of
/// microseconds away from the packets.
pub const SCAN_CHUNK: u32 = 256;

// ---------------------------------------------------------------------------------------
// Filters
// ---------------------------------------------------------------------------------------

/// One endpoint condition: an address prefix and/or a port.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EndpointSelector {
    /// (network, mask), host order.
    net: Option<(u32, u32)>,
    port: Option<u16>,
}

impl EndpointSelector {
    fn new(net: Option<Ipv4Net>, port: Option<u16>) -> EndpointSelector {
        let net = net.map(|n| {
            let mask = if n.len == 0 { 0 } else { u32::MAX << (32 - u32::from(n.len)) };
            (u32::from(n.addr) & mask, mask)
        });
        EndpointSelector { net, port }
    }

    #[inline]
    fn matches(&self, e: Endpoint) -> bool {
        self.net.is_none_or(|(net, mask)| u32::from(e.addr) & mask == net) && self.port.is_none_or(|p| p == e.port)
    }
}

/// Every session state a listing shows, in a fixed order (the bit order of a state set).
pub const STATES: [ConnState; 10] = [
    ConnState::Tcp(TcpState::New),
    ConnState::Tcp(TcpState::SynSent),
    ConnState::Tcp(TcpState::SynReceived),
    ConnState::Tcp(TcpState::Established),
    ConnState::Tcp(TcpState::FinWait),
    ConnState::Tcp(TcpState::CloseWait),
    ConnState::Tcp(TcpState::TimeWait),
    ConnState::Tcp(TcpState::Closed),
    ConnState::Unreplied,
    ConnState::Replied,
];

/// A state's bit in a state set.
fn state_bit(state: ConnState) -> u16 {
    let i = match state {
        ConnState::Tcp(s) => s as usize,
        ConnState::Unreplied => 8,
        ConnState::Replied => 9,
    };
    1 << i
}

/// A state as listings spell it: `ESTABLISHED`, `SYN_SENT`, `UNREPLIED`, ...
pub fn state_name(state: ConnState) -> String {
    state.name().to_ascii_uppercase()
}

/// A [`SessionFilter`] the worker can apply without allocating: `Copy`, states as bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionSelector {
    proto: Option<Proto>,
    inside: EndpointSelector,
    outside: EndpointSelector,
    remote: EndpointSelector,
    /// Bits of [`STATES`]; `None`: any state.
    states: Option<u16>,
}

impl SessionSelector {
    /// Check and convert a protocol filter. An unknown state is `bad_args` naming `state`.
    pub fn from_filter(f: &SessionFilter) -> Result<SessionSelector, ControlError> {
        let states = match &f.state {
            None => None,
            Some(name) => {
                let bits = STATES
                    .iter()
                    .filter(|s| s.name().eq_ignore_ascii_case(name))
                    .fold(0u16, |bits, s| bits | state_bit(*s));
                if bits == 0 {
                    let known: Vec<String> = STATES.iter().map(|s| state_name(*s)).collect();
                    return Err(ControlError::bad_args(
                        "state",
                        format!("`state`: unknown session state {name:?} (expected one of {})", known.join(", ")),
                    ));
                }
                Some(bits)
            }
        };
        Ok(SessionSelector {
            proto: f.protocol.map(proto_of),
            inside: EndpointSelector::new(f.inside_addr, f.inside_port),
            outside: EndpointSelector::new(f.outside_addr, f.outside_port),
            remote: EndpointSelector::new(f.remote_addr, f.remote_port),
            states,
        })
    }

    /// Whether every session matches.
    pub fn is_empty(&self) -> bool {
        *self == SessionSelector::default()
    }

    /// Whether `s` passes.
    #[inline]
    pub fn matches(&self, s: &SessionInfo) -> bool {
        self.proto.is_none_or(|p| p == s.proto)
            && self.inside.matches(s.inside)
            && self.outside.matches(s.outside)
            && self.remote.matches(s.remote)
            && self.states.is_none_or(|bits| bits & state_bit(s.state) != 0)
    }
}

/// The NAT's protocol for the control protocol's.
pub fn proto_of(p: Protocol) -> Proto {
    match p {
        Protocol::Tcp => Proto::Tcp,
        Protocol::Udp => Proto::Udp,
        Protocol::Icmp => Proto::Icmp,
        Protocol::Other(n) => Proto::Other(n),
    }
}

/// The control protocol's protocol for the NAT's.
pub fn protocol_of(p: Proto) -> Protocol {
    match p {
        Proto::Tcp => Protocol::Tcp,
        Proto::Udp => Protocol::Udp,
        Proto::Icmp => Protocol::Icmp,
        Proto::Other(n) => Protocol::Other(n),
    }
}

/// A session as the protocol lists it.
/// The control protocol's form of an expectation of worker `worker`.
pub fn expectation_entry(e: &ExpectInfo, worker: u32) -> ExpectationEntry {
    let sock = |e: Endpoint| SocketAddrV4::new(e.addr, e.port);
    ExpectationEntry {
        helper: e.helper.name().to_string(),
        proto: protocol_of(e.proto),
        direction: match e.dir {
            Dir::Out2In => "in",
            Dir::In2Out => "out",
        }
        .to_string(),
        dst: sock(e.dst),
        src: if e.src_addr.is_unspecified() { "*".to_string() } else { e.src_addr.to_string() },
        src_port: (e.src_port != 0).then_some(e.src_port),
        inside: sock(e.inside),
        parent: e.parent.index(),
        worker,
        expires_in_secs: e.expires_in.as_millis().div_ceil(1000),
    }
}

pub fn session_entry(s: &SessionInfo, worker: u32) -> SessionEntry {
    let sock = |e: Endpoint| SocketAddrV4::new(e.addr, e.port);
    SessionEntry {
        proto: protocol_of(s.proto),
        inside: sock(s.inside),
        outside: sock(s.outside),
        remote: sock(s.remote),
        state: state_name(s.state),
        // Whole seconds, rounded up: 0 only when the session is due.
        expires_in_secs: s.expires_in.as_millis().div_ceil(1000),
        worker,
        id: s.helper.map(|_| s.id.index()),
        helper: s.helper.map(|h| h.name().to_string()),
        parent: s.parent.map(|p| p.index()),
    }
}

// ---------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------

/// What a scan step does with the sessions that match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanOp {
    /// Return them.
    List,
    /// Count them.
    Count,
    /// Remove them.
    Remove,
}

/// A question for one worker.
#[derive(Debug)]
pub enum Request {
    /// Session count and NAT counters.
    Summary,
    /// Visit up to `limit` live sessions from `from` on (bounded work), and do `op` with
    /// those `selector` matches. `buf` comes back in the reply, holding the matches for
    /// [`ScanOp::List`]; it should have room for `limit` sessions.
    Scan { selector: SessionSelector, from: Walk, limit: u32, op: ScanOp, buf: Vec<SessionInfo> },
    /// Remove up to `budget` sessions, whatever they are.
    FlushStep { budget: u32 },
    /// Port use of the external addresses from pool index `from` on, as many as `buf`
    /// has room for (at most [`PORT_USAGE_CHUNK`]); `buf` comes back in the reply.
    PortUsage { from: u32, buf: Vec<PortUse> },
    /// Port blocks `query` names, from `from` on (bounded work, see
    /// [`WorkerNat::blocks_matching`]), as many as `buf` has room for; `buf` comes back.
    Blocks { query: BlockQuery, from: u32, buf: Vec<BlockInfo> },
    /// The protocol helpers' open expectations, as many as `buf` has room for.
    Expectations { buf: Vec<ExpectInfo> },
}

/// External addresses one [`Request::PortUsage`] step reports at most.
pub const PORT_USAGE_CHUNK: usize = 1024;

/// Where a walk over one worker's sessions stands: the next slab slot, and how many
/// sessions still live were visited before it. A walk ends at the end of the slab, or as
/// soon as it has visited as many live sessions as the table holds — so an empty or
/// small table is walked in one step, not slot by slot to the end of its capacity. (A
/// walk is not a snapshot: sessions created or freed meanwhile may or may not be seen.)
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Walk {
    pub slot: u32,
    pub seen: u32,
}

/// A worker's NAT figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatSummary {
    /// Live sessions.
    pub sessions: u32,
    /// Live mappings: external ports in use, all protocols.
    pub mappings: u32,
    pub counters: NatCounters,
}

/// A worker's answer.
// A summary is the largest (the NAT's counters); moved once per control request, and
// boxing it would make the worker allocate.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Reply {
    /// This worker has no NAT: no sessions, nothing to do.
    NoNat,
    Summary(NatSummary),
    /// A scan step: the buffer (matches, for `List`), how many matched (and were removed,
    /// for `Remove`), and where to go on (`None`: this worker is done).
    Scanned {
        buf: Vec<SessionInfo>,
        matched: u32,
        next: Option<Walk>,
    },
    /// A flush step: sessions removed, and sessions left.
    Flushed {
        removed: u32,
        remaining: u32,
    },
    /// A port-use step: the addresses reported, and where to go on (`None`: done).
    PortUsage {
        buf: Vec<PortUse>,
        next: Option<u32>,
    },
    /// A port-block step: the blocks found, and where to go on (`None`: done).
    Blocks {
        buf: Vec<BlockInfo>,
        next: Option<u32>,
    },
    /// The open expectations (all of them if `buf` had room).
    Expectations {
        buf: Vec<ExpectInfo>,
    },
}

/// A request and where to answer it.
#[derive(Debug)]
pub struct Envelope {
    request: Request,
    reply: SyncSender<Reply>,
}

/// Answer one request from the worker's NAT. Bounded work; allocates nothing (a scan
/// fills the buffer the request brought, within its capacity).
pub fn answer(request: Request, nat: Option<&mut WorkerNat>, now: Instant) -> Reply {
    let Some(nat) = nat else {
        return Reply::NoNat;
    };
    match request {
        Request::Summary => Reply::Summary(NatSummary {
            sessions: nat.count(),
            mappings: nat.mapping_count(),
            counters: *nat.counters(),
        }),
        Request::Scan { selector, from, limit, op, mut buf } => {
            buf.clear();
            let limit = limit.min(SCAN_CHUNK) as usize;
            let next_slot = nat.sessions_after(from.slot, limit, now, &mut buf);
            let visited = buf.len() as u32;
            buf.retain(|s| selector.matches(s));
            let matched = buf.len() as u32;
            let mut still_live = visited;
            match op {
                ScanOp::List => {}
                ScanOp::Count => buf.clear(),
                ScanOp::Remove => {
                    for s in buf.drain(..) {
                        nat.remove(s.id, now);
                    }
                    still_live -= matched;
                }
            }
            let seen = from.seen.saturating_add(still_live);
            let next = next_slot.filter(|_| seen < nat.count()).map(|slot| Walk { slot, seen });
            Reply::Scanned { buf, matched, next }
        }
        Request::FlushStep { budget } => {
            let removed = nat.flush(now, budget.min(SCAN_CHUNK) as usize, |_| {}) as u32;
            Reply::Flushed { removed, remaining: nat.count() }
        }
        Request::PortUsage { from, mut buf } => {
            buf.clear();
            // Bounded by the buffer's room (the control thread sizes it); never grows it.
            let next = nat.port_usage(from as usize, &mut buf).map(|n| n as u32);
            Reply::PortUsage { buf, next }
        }
        Request::Blocks { query, from, mut buf } => {
            buf.clear();
            let next = nat.blocks_matching(query, from, now, &mut buf);
            Reply::Blocks { buf, next }
        }
        Request::Expectations { mut buf } => {
            buf.clear();
            nat.expectations(now, &mut buf);
            Reply::Expectations { buf }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The two ends
// ---------------------------------------------------------------------------------------

/// The worker's end: polled at most once per millisecond, outside the burst loop.
pub struct WorkerMailbox {
    requests: Receiver<Envelope>,
    last_poll: Instant,
}

impl WorkerMailbox {
    /// Whether the mailbox has not been looked at during millisecond `now` yet.
    #[inline]
    pub fn due(&self, now: Instant) -> bool {
        now != self.last_poll
    }

    /// Look for one request and answer it. Never blocks: `try_recv`, then `try_send` on
    /// the reply channel (which has room for exactly the one reply). Returns whether a
    /// request was answered.
    pub fn serve(&mut self, nat: Option<&mut WorkerNat>, now: Instant) -> bool {
        self.last_poll = now;
        match self.requests.try_recv() {
            Ok(Envelope { request, reply }) => {
                // The asker may have given up (timeout); then the answer is dropped.
                let _ = reply.try_send(answer(request, nat, now));
                true
            }
            Err(_) => false,
        }
    }
}

/// Why a worker gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("worker {0} has stopped")]
    Stopped(u32),
    #[error("worker {0} did not answer in time")]
    Timeout(u32),
    #[error("worker {0} is busy (its mailbox stayed full)")]
    Busy(u32),
}

impl From<MailError> for ControlError {
    fn from(e: MailError) -> ControlError {
        ControlError::internal(e.to_string())
    }
}

/// An answer on its way: [`Pending::wait`] for it.
pub struct Pending {
    worker: u32,
    reply: Receiver<Reply>,
}

impl Pending {
    /// Wait for the answer until `deadline`.
    pub fn wait(self, deadline: StdInstant) -> Result<Reply, MailError> {
        let left = deadline.saturating_duration_since(StdInstant::now());
        self.reply.recv_timeout(left).map_err(|e| match e {
            RecvTimeoutError::Timeout => MailError::Timeout(self.worker),
            RecvTimeoutError::Disconnected => MailError::Stopped(self.worker),
        })
    }
}

/// The control thread's end for one worker. `Sync`: client threads share it.
#[derive(Clone)]
pub struct WorkerLink {
    worker: u32,
    requests: SyncSender<Envelope>,
}

impl WorkerLink {
    /// The worker's index.
    pub fn worker(&self) -> u32 {
        self.worker
    }

    /// Queue `request`, waiting until `deadline` for room.
    pub fn post(&self, request: Request, deadline: StdInstant) -> Result<Pending, MailError> {
        let (tx, rx) = mpsc::sync_channel(1);
        let mut envelope = Envelope { request, reply: tx };
        loop {
            match self.requests.try_send(envelope) {
                Ok(()) => return Ok(Pending { worker: self.worker, reply: rx }),
                Err(TrySendError::Disconnected(_)) => return Err(MailError::Stopped(self.worker)),
                Err(TrySendError::Full(back)) => {
                    if StdInstant::now() >= deadline {
                        return Err(MailError::Busy(self.worker));
                    }
                    envelope = back;
                    std::thread::sleep(StdDuration::from_micros(200));
                }
            }
        }
    }

    /// Ask and wait for the answer, `timeout` in all.
    pub fn ask(&self, request: Request, timeout: StdDuration) -> Result<Reply, MailError> {
        let deadline = StdInstant::now() + timeout;
        self.post(request, deadline)?.wait(deadline)
    }
}

/// A mailbox for worker `worker`: its end, and the control thread's.
pub fn channel(worker: u32) -> (WorkerMailbox, WorkerLink) {
    let (tx, rx) = mpsc::sync_channel(MAILBOX_DEPTH);
    // `last_poll` starts at a time no clock reads first, so the first pass looks.
    (WorkerMailbox { requests: rx, last_poll: Instant::from_millis(u64::MAX) }, WorkerLink { worker, requests: tx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::{NatAction, NatConfig, Timeouts, Tuple};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn nat_with(n: u16) -> WorkerNat {
        let mut nat =
            WorkerNat::new(NatConfig::new(vec![Ipv4Addr::new(203, 0, 113, 1)], 0, 1), Arc::new(Timeouts::default()))
                .unwrap();
        for i in 0..n {
            let t = Tuple::new(
                Endpoint::new(Ipv4Addr::new(100, 64, 0, (i % 200) as u8 + 1), 40000 + i),
                Endpoint::new(Ipv4Addr::new(198, 51, 100, 7), if i % 2 == 0 { 443 } else { 53 }),
                if i % 2 == 0 { Proto::Tcp } else { Proto::Udp },
            );
            nat.create(&t, NatAction::Masquerade, 0x02, Instant::from_secs(1)).unwrap();
        }
        nat
    }

    fn filter(json: serde_json::Value) -> SessionSelector {
        let f: SessionFilter = serde_json::from_value(json).unwrap();
        SessionSelector::from_filter(&f).unwrap()
    }

    #[test]
    fn no_nat_answers_no_nat() {
        assert!(matches!(answer(Request::Summary, None, Instant::ZERO), Reply::NoNat));
    }

    #[test]
    fn scan_steps_cover_every_session_once() {
        let mut nat = nat_with(3000);
        let now = Instant::from_secs(2);
        let mut cursor = Some(Walk::default());
        let mut seen = 0;
        let mut steps = 0;
        let mut buf = Vec::with_capacity(SCAN_CHUNK as usize);
        while let Some(c) = cursor {
            let cap = buf.capacity();
            let request =
                Request::Scan { selector: SessionSelector::default(), from: c, limit: 700, op: ScanOp::List, buf };
            let Reply::Scanned { buf: back, matched, next } = answer(request, Some(&mut nat), now) else { panic!() };
            assert_eq!(back.capacity(), cap, "the worker does not reallocate");
            assert!(matched <= 700);
            seen += back.len();
            buf = back;
            cursor = next;
            steps += 1;
        }
        assert_eq!(seen, 3000);
        assert!(steps >= 5);
    }

    #[test]
    fn a_walk_ends_once_every_live_session_was_seen() {
        let now = Instant::from_secs(2);
        for n in [0, 10] {
            let mut nat = nat_with(n);
            let request = Request::Scan {
                selector: SessionSelector::default(),
                from: Walk::default(),
                limit: SCAN_CHUNK,
                op: ScanOp::List,
                buf: Vec::with_capacity(SCAN_CHUNK as usize),
            };
            let Reply::Scanned { buf, next, .. } = answer(request, Some(&mut nat), now) else { panic!() };
            assert_eq!((buf.len(), next), (n as usize, None), "one step, not {} slots", 1 << 16);
        }
    }

    #[test]
    fn filters_count_and_remove() {
        let mut nat = nat_with(100);
        let now = Instant::from_secs(2);
        let tcp = filter(serde_json::json!({"protocol": "tcp", "remote_port": 443, "state": "syn_sent"}));
        // Steps until the end of the slab (a step scans a bounded stretch of it).
        let scan = |nat: &mut WorkerNat, selector, op| {
            let (mut total, mut cursor) = (0, Some(Walk::default()));
            while let Some(c) = cursor {
                let buf = Vec::with_capacity(1024);
                let request = Request::Scan { selector, from: c, limit: SCAN_CHUNK, op, buf };
                let Reply::Scanned { matched, next, .. } = answer(request, Some(nat), now) else { panic!() };
                total += matched;
                cursor = next;
            }
            total
        };
        assert_eq!(scan(&mut nat, tcp, ScanOp::Count), 50);
        let udp_state = filter(serde_json::json!({"protocol": "udp", "state": "UNREPLIED"}));
        assert_eq!(scan(&mut nat, udp_state, ScanOp::Count), 50);
        let one_host = filter(serde_json::json!({"inside_addr": "100.64.0.0/30"}));
        assert_eq!(scan(&mut nat, one_host, ScanOp::Count), 3, ".1 .2 .3");
        assert_eq!(scan(&mut nat, tcp, ScanOp::Remove), 50);
        assert_eq!(nat.count(), 50);
        let Reply::Flushed { removed, remaining } = answer(Request::FlushStep { budget: 30 }, Some(&mut nat), now)
        else {
            panic!()
        };
        assert_eq!((removed, remaining), (30, 20));
        let Reply::Summary(s) = answer(Request::Summary, Some(&mut nat), now) else { panic!() };
        assert_eq!(s.sessions, 20);
        assert_eq!(s.counters.sessions_created, 100);
        assert_eq!(s.counters.sessions_removed, 80);
    }

    #[test]
    fn unknown_states_are_refused_by_name() {
        let f = SessionFilter { state: Some("dancing".into()), ..Default::default() };
        let e = SessionSelector::from_filter(&f).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("state"));
        assert!(e.message.contains("ESTABLISHED"), "{e}");
    }

    #[test]
    fn entries_look_like_the_protocol_says() {
        let mut nat = nat_with(1);
        let mut out = Vec::new();
        nat.sessions_after(0, 1, Instant::from_millis(1500), &mut out);
        let e = session_entry(&out[0], 3);
        assert_eq!(e.proto, Protocol::Tcp);
        assert_eq!(e.inside.to_string(), "100.64.0.1:40000");
        assert_eq!(*e.outside.ip(), Ipv4Addr::new(203, 0, 113, 1));
        assert_eq!(e.remote.to_string(), "198.51.100.7:443");
        assert_eq!(e.state, "SYN_SENT");
        assert_eq!(e.worker, 3);
        assert_eq!(e.expires_in_secs, 240, "tcpfin 240 s from t=1 s, asked at 1.5 s: 239.5 rounds up");
        let _ = nat.flush(Instant::ZERO, 10, |_| {});
    }

    #[test]
    fn the_worker_answers_through_the_channel_once_per_millisecond() {
        let (mut mailbox, link) = channel(0);
        let t = std::thread::spawn(move || link.ask(Request::Summary, StdDuration::from_secs(5)));
        // Serve until the request has arrived and been answered.
        let mut ms = 0;
        while !mailbox.serve(None, Instant::from_millis(ms)) {
            ms += 1;
            assert!(!mailbox.due(Instant::from_millis(ms - 1)), "looked at once per millisecond");
            std::thread::sleep(StdDuration::from_millis(1));
        }
        assert!(matches!(t.join().unwrap(), Ok(Reply::NoNat)));
        drop(mailbox);
        let (_, link) = channel(7);
        assert_eq!(link.ask(Request::Summary, StdDuration::from_millis(10)).unwrap_err(), MailError::Stopped(7));
        let (_mailbox, link) = channel(2);
        assert_eq!(link.ask(Request::Summary, StdDuration::from_millis(10)).unwrap_err(), MailError::Timeout(2));
    }
}
