//! Protocol helpers (ALGs): FTP, TFTP and IRC DCC through the NAT.
//!
//! Some protocols carry addresses in their payload or open a second connection the
//! other way; without help they break behind a NAT (Linux: `nf_nat_ftp`,
//! `nf_nat_tftp`, `nf_nat_irc`; the masquerade HOWTO's `ip_masq_ftp` ...). A helper
//! attaches to a session when it is created, by the session's *server port* (or a
//! `-t raw ... -j CT --helper` rule), and from then on sees that session's packets in
//! the worker's `helper` stage — the only sessions that pay for it:
//!
//! | helper | default port   | looks at                    | does                                              |
//! |--------|----------------|-----------------------------|---------------------------------------------------|
//! | `ftp`  | TCP 21         | text from the inside host   | rewrites `PORT`/`EPRT` (inside client) and `227`/`229` (inside server behind DNAT) to an external endpoint, opens an expectation for the data connection ([`ftp`]) |
//! | `tftp` | UDP 69         | the client's request        | opens an expectation for the server's reply from its new port ([`tftp`]) |
//! | `irc`  | TCP 6667 (opt-in) | text from the inside client | rewrites `DCC SEND/CHAT` offers, opens an expectation for the peer ([`irc`]) |
//!
//! ## Pieces
//!
//! - **Expectations** ([`expect`]): a pinhole for one future flow — protocol,
//!   destination (the external endpoint the peer will reach), the peer's address (or
//!   anyone), a deadline ([`EXPECT_TIMEOUT`]) and where the flow goes (the inside
//!   endpoint, through a mapping the expectation holds). The slow path asks them first
//!   ([`WorkerNat::create_expected`]), before filtering and policy, like Linux's
//!   RELATED; the flow they admit becomes a *data session* linked to the session that
//!   opened it. Bounded per worker; one per FTP/TFTP session (a new one replaces the
//!   old), eight per IRC session.
//! - **Sequence adjustment** ([`seqadj`]): a rewrite that changes the length of the
//!   text shifts every later byte; the session then moves sequence numbers of the
//!   inside host's segments, and acknowledgements and SACK blocks of the other side's,
//!   for the rest of the connection (Linux's `nf_conntrack_seqadj`).
//! - **Line streams** ([`stream`]): FTP and IRC are lines; only in-order segments are
//!   parsed, unfinished lines that may need rewriting are held back (at most
//!   [`stream::LINE_MAX`] bytes per session) and put in front of the next segment.
//!
//! ## State, bounded and counted
//!
//! All in the session's worker, sized at start ([`NatConfig`](super::NatConfig)
//! `max_helper_sessions`, `max_expectations`): a *link* per session that has a helper
//! or was admitted by an expectation (session index → helper, parent, children),
//! a *stream* (line buffer and sequence adjustment, ≈ 300 bytes) per FTP or IRC
//! session, and the expectation table. A session that finds no room simply goes
//! without its helper ([`HelperCounter::TableFull`]); nothing is ever evicted, no
//! packet is ever dropped by a helper: whatever a helper cannot handle it passes
//! unmodified and counts ([`HelperCounter`]).
//!
//! ## Data sessions and their control session
//!
//! A data session is listed with its control session (`parent`), expires by its own
//! timer, and is removed with it when an operator removes the control session. While
//! a control session has live data sessions it does not expire (a long download on
//! an idle FTP control connection keeps it), as `ip_masq_ftp` did; when it goes, its
//! unused expectations go with it.

pub mod expect;
pub mod ftp;
pub mod irc;
pub mod seqadj;
pub mod stream;
pub mod tftp;

#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;

use super::hash::FlowHasher;
use super::index::{IdxSlot, RobinHood};
use super::key::{Endpoint, Proto, Tuple};
use super::table::{Session, SessionKind, NIL, S_HELPER, S_LINKED};
use super::{CreateError, Dir, MappingId, NatAction, SessionId, SnatTarget, WorkerNat};
use crate::packet::checksum::Delta;
use crate::time::{Duration, Instant};
use expect::{ExpectTable, Expectation, Target};
use stream::{Lines, Rewrite, Stream, StreamEvent, REPL_MAX};

/// How long an expectation waits for its flow (Linux: 5 minutes for FTP, TFTP, IRC).
pub const EXPECT_TIMEOUT: Duration = Duration::from_secs(300);

/// A protocol helper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum HelperKind {
    Ftp = 1,
    Tftp = 2,
    Irc = 3,
}

impl HelperKind {
    pub const ALL: [HelperKind; 3] = [HelperKind::Ftp, HelperKind::Tftp, HelperKind::Irc];

    /// The name in configuration, rules and listings: `ftp`, `tftp`, `irc`.
    pub const fn name(self) -> &'static str {
        match self {
            HelperKind::Ftp => "ftp",
            HelperKind::Tftp => "tftp",
            HelperKind::Irc => "irc",
        }
    }

    pub fn from_name(name: &str) -> Option<HelperKind> {
        HelperKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The transport protocol the helper serves.
    pub const fn proto(self) -> Proto {
        match self {
            HelperKind::Tftp => Proto::Udp,
            HelperKind::Ftp | HelperKind::Irc => Proto::Tcp,
        }
    }

    /// The well-known server port.
    pub const fn default_port(self) -> u16 {
        match self {
            HelperKind::Ftp => 21,
            HelperKind::Tftp => 69,
            HelperKind::Irc => 6667,
        }
    }

    /// Expectations one session may hold at a time (Linux's `max_expected`); a new
    /// one beyond replaces the oldest.
    pub const fn max_expected(self) -> usize {
        match self {
            HelperKind::Ftp | HelperKind::Tftp => 1,
            HelperKind::Irc => 8,
        }
    }

    const fn from_u8(v: u8) -> Option<HelperKind> {
        match v {
            1 => Some(HelperKind::Ftp),
            2 => Some(HelperKind::Tftp),
            3 => Some(HelperKind::Irc),
            _ => None,
        }
    }

    /// Whether the helper parses a text stream (needs a [`Stream`]).
    const fn has_stream(self) -> bool {
        matches!(self, HelperKind::Ftp | HelperKind::Irc)
    }
}

impl core::fmt::Display for HelperKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A helper on a server port (`[nat] helpers`: `"ftp"`, `"ftp:2121"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HelperPort {
    pub kind: HelperKind,
    pub port: u16,
}

impl HelperPort {
    pub const fn new(kind: HelperKind, port: u16) -> Self {
        HelperPort { kind, port }
    }

    /// The default set: FTP on 21 and TFTP on 69 (IRC is opt-in).
    pub fn defaults() -> Vec<HelperPort> {
        vec![HelperPort::new(HelperKind::Ftp, 21), HelperPort::new(HelperKind::Tftp, 69)]
    }

    /// Parse `name` or `name:port`.
    pub fn parse(s: &str) -> Result<HelperPort, String> {
        let (name, port) = match s.split_once(':') {
            Some((n, p)) => {
                let port = p
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("bad port {p:?} in helper {s:?} (expected 1-65535)"))?;
                (n, Some(port))
            }
            None => (s, None),
        };
        let kind = HelperKind::from_name(name)
            .ok_or_else(|| format!("unknown helper {name:?} (expected \"ftp\", \"tftp\" or \"irc\")"))?;
        Ok(HelperPort::new(kind, port.unwrap_or(kind.default_port())))
    }
}

impl core::fmt::Display for HelperPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.port == self.kind.default_port() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}:{}", self.kind, self.port)
        }
    }
}

macro_rules! helper_counters {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $text:literal; )*) => {
        /// What the helpers count, per worker. Stable names (`masqd`'s report, `stats`).
        /// No helper drops a packet: each "skip" counter is a packet passed unmodified.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum HelperCounter {
            $( $(#[$doc])* $variant, )*
        }

        impl HelperCounter {
            pub const ALL: &'static [HelperCounter] = &[$(HelperCounter::$variant,)*];
            pub const COUNT: usize = HelperCounter::ALL.len();

            pub const fn name(self) -> &'static str {
                match self { $(HelperCounter::$variant => $name,)* }
            }

            pub const fn description(self) -> &'static str {
                match self { $(HelperCounter::$variant => $text,)* }
            }
        }
    };
}

helper_counters! {
    /// Sessions given a helper.
    Attached = "helper_sessions", "sessions given a helper";
    /// Sessions that should have had a helper but found the helper table full.
    TableFull = "helper_table_full", "helper table full: session left without its helper";
    /// Data sessions admitted by an expectation that could not be linked to their control session.
    LinkFull = "helper_link_full", "data session not linked to its control session (table full)";
    /// Expectations opened.
    ExpectCreated = "helper_expect_created", "expectations opened";
    /// Expectations that admitted their flow.
    ExpectUsed = "helper_expect_used", "expectations used by their flow";
    /// Expectations that timed out unused.
    ExpectExpired = "helper_expect_expired", "expectations timed out unused";
    /// Expectations replaced by a newer one of the same session.
    ExpectReplaced = "helper_expect_replaced", "expectations replaced by a newer one of their session";
    /// Expectations removed with their session.
    ExpectRemoved = "helper_expect_removed", "expectations removed with their session";
    /// No room for an expectation: the line was passed unmodified.
    ExpectTableFull = "helper_expect_table_full", "expectation table full (passed unmodified)";
    /// No external port for a data connection: passed unmodified.
    NoPort = "helper_no_port", "no external port for a data connection (passed unmodified)";
    /// The text names another address than the inside host's: passed unmodified.
    ForeignAddress = "helper_foreign_address", "address in the payload is not the inside host's (passed unmodified)";
    /// A rewrite would not fit the packet buffer or the MTU: passed unmodified.
    NoRoom = "helper_no_room", "rewrite does not fit the packet (passed unmodified)";
    /// Unfinished lines held back for the next segment.
    LineHeld = "helper_line_held", "unfinished lines held back for the next segment";
    /// A held line's bytes were resent alone: passed unmodified.
    LineGivenUp = "helper_line_given_up", "split line resent alone by its sender (passed unmodified)";
    /// An unfinished line longer than the line buffer: passed unmodified.
    LineTooLong = "helper_line_too_long", "split line longer than the line buffer (passed unmodified)";
    /// Segments after a gap: parsing resumes at the next line.
    Resync = "helper_resync", "segments after a gap (parsing resumes at the next line)";
    /// Retransmissions rewritten again the same way.
    Replayed = "helper_replayed", "retransmitted segments rewritten again";
    /// A second address line in one segment: passed unmodified.
    SecondRewrite = "helper_second_rewrite", "second address line in one segment (passed unmodified)";
    /// Fragmented packets of helper sessions: passed unmodified.
    Fragment = "helper_fragment", "fragmented packets of helper sessions (passed unmodified)";
    /// Segments whose sequence or acknowledgement numbers were adjusted.
    SeqAdjusted = "helper_seq_adjusted", "segments with sequence/acknowledgement numbers adjusted";
    /// FTP PORT commands rewritten.
    FtpPort = "ftp_port", "FTP PORT commands rewritten";
    /// FTP EPRT commands rewritten.
    FtpEprt = "ftp_eprt", "FTP EPRT commands rewritten";
    /// FTP 227 replies rewritten.
    FtpPasv = "ftp_pasv", "FTP 227 (PASV) replies rewritten";
    /// FTP 229 replies rewritten.
    FtpEpsv = "ftp_epsv", "FTP 229 (EPSV) replies rewritten";
    /// FTP EPRT with an IPv6 address: left alone.
    FtpEprtIpv6 = "ftp_eprt_ipv6", "FTP EPRT |2| (IPv6) left alone";
    /// Malformed FTP PORT/EPRT/227/229 lines: passed unmodified.
    FtpMalformed = "ftp_malformed", "malformed FTP PORT/EPRT/227/229 lines (passed unmodified)";
    /// TFTP read and write requests seen.
    TftpRequest = "tftp_request", "TFTP read/write requests (expectation opened)";
    /// Malformed TFTP requests: passed, no expectation.
    TftpMalformed = "tftp_malformed", "malformed TFTP requests (passed, no expectation)";
    /// IRC DCC offers rewritten.
    IrcDcc = "irc_dcc", "IRC DCC offers rewritten";
    /// IRC DCC offers with port 0 (passive DCC): nothing to open.
    IrcDccPassive = "irc_dcc_passive", "IRC passive DCC offers (nothing to open)";
    /// Malformed IRC DCC offers: passed unmodified.
    IrcMalformed = "irc_malformed", "malformed IRC DCC offers (passed unmodified)";
    /// Control sessions kept past their timeout because data sessions were still live.
    ExpiryDeferred = "helper_expiry_deferred", "control sessions kept alive by live data sessions";
}

/// One session's place in the helper framework.
#[derive(Clone, Copy, Debug)]
struct Link {
    /// Session slab index; `NIL` while the link slot is free.
    session: u32,
    /// The control session of a data session; `NIL` for a control session.
    parent: u32,
    /// Live data sessions of a control session.
    children: u32,
    /// Stream slot (FTP, IRC), `NIL16` if none.
    stream: u16,
    helper: u8,
}

const NIL16: u16 = u16::MAX;

impl Link {
    const FREE: Link = Link { session: NIL, parent: NIL, children: 0, stream: NIL16, helper: 0 };
}

/// An expectation, by value: for listings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpectInfo {
    pub helper: HelperKind,
    pub proto: Proto,
    /// Direction of the expected flow's first packet.
    pub dir: Dir,
    /// Where it will be sent: the external endpoint (out2in) or the remote (in2out).
    pub dst: Endpoint,
    /// Who may send it; `0.0.0.0` is anyone.
    pub src_addr: Ipv4Addr,
    /// From which port; 0 is any.
    pub src_port: u16,
    /// The inside endpoint it reaches (out2in), or the external address it leaves
    /// with (in2out, port 0).
    pub inside: Endpoint,
    /// The session that opened it.
    pub parent: SessionId,
    pub expires_in: Duration,
}

/// The helpers' share of a worker's NAT state (see the module docs).
pub(crate) struct Helpers {
    ports: Box<[HelperPort]>,
    links: Box<[Link]>,
    link_free: Vec<u32>,
    link_index: RobinHood<IdxSlot>,
    hasher: FlowHasher,
    streams: Box<[Stream]>,
    stream_free: Vec<u16>,
    pub(crate) expects: ExpectTable,
    counters: [u64; HelperCounter::COUNT],
}

impl Helpers {
    /// Room for `sessions` helper sessions (streams), four times as many links (data
    /// sessions included), and `expectations` expectations.
    pub fn new(
        ports: &[HelperPort],
        sessions: u32,
        expectations: u32,
        hasher: FlowHasher,
        expect_hasher: FlowHasher,
    ) -> Self {
        let sessions = sessions.min(u32::from(NIL16 - 1));
        let links = sessions.saturating_mul(4).max(1);
        Helpers {
            ports: ports.into(),
            links: vec![Link::FREE; links as usize].into_boxed_slice(),
            link_free: (0..links).rev().collect(),
            link_index: RobinHood::new(links as usize),
            hasher,
            streams: vec![Stream::EMPTY; sessions as usize].into_boxed_slice(),
            stream_free: (0..sessions as u16).rev().collect(),
            expects: ExpectTable::new(expectations, expect_hasher),
            counters: [0; HelperCounter::COUNT],
        }
    }

    pub fn memory_bytes(&self) -> usize {
        self.links.len() * (core::mem::size_of::<Link>() + 4)
            + self.link_index.capacity() * core::mem::size_of::<IdxSlot>()
            + self.streams.len() * (core::mem::size_of::<Stream>() + 2)
            + self.expects.memory_bytes()
    }

    #[inline]
    fn count(&mut self, c: HelperCounter) {
        self.counters[c as usize] += 1;
    }

    fn tag(&self, session: u32) -> u32 {
        self.hasher.tag((u64::from(session), 0x6865_6c70))
    }

    fn link_pos(&self, session: u32) -> Option<u32> {
        let pos = self.link_index.find(self.tag(session), |s| self.links[s.val as usize].session == session)?;
        Some(self.link_index.get(pos).val)
    }

    fn link(&self, session: u32) -> Option<Link> {
        self.link_pos(session).map(|i| self.links[i as usize])
    }

    fn add_link(&mut self, l: Link) -> bool {
        let Some(i) = self.link_free.pop() else { return false };
        let tag = self.tag(l.session);
        if self.link_index.insert(IdxSlot { tag, val: i }).is_err() {
            self.link_free.push(i);
            return false;
        }
        self.links[i as usize] = l;
        true
    }

    fn remove_link(&mut self, session: u32) -> Option<Link> {
        let tag = self.tag(session);
        let links = &self.links;
        let slot = self.link_index.remove(tag, |s| links[s.val as usize].session == session)?;
        let l = core::mem::replace(&mut self.links[slot.val as usize], Link::FREE);
        self.link_free.push(slot.val);
        Some(l)
    }

    fn link_mut(&mut self, session: u32) -> Option<&mut Link> {
        let i = self.link_pos(session)?;
        Some(&mut self.links[i as usize])
    }

    /// A data session of `parent`, if it has any left.
    fn first_child(&self, parent: u32) -> Option<u32> {
        self.links.iter().find(|l| l.session != NIL && l.parent == parent).map(|l| l.session)
    }
}

/// Why a helper could not set up a data connection.
type Refusal = HelperCounter;

impl WorkerNat {
    // ----- attaching -----

    /// The helper `[nat] helpers` assigns to a new session: by its server port — the
    /// remote's for a flow the inside host opened, the inside (post-DNAT) port for one
    /// from outside. Identity (untranslated) sessions get none.
    pub fn helper_for(&self, s: &Session) -> Option<HelperKind> {
        if s.kind() == SessionKind::Identity {
            return None;
        }
        let port = match s.initiator() {
            Dir::In2Out => s.remote().port,
            Dir::Out2In => s.inside().port,
        };
        self.helpers.ports.iter().find(|h| h.port == port && h.kind.proto() == s.proto()).map(|h| h.kind)
    }

    /// Give session `id` helper `kind` (from [`helper_for`](Self::helper_for) or a
    /// raw-table `CT --helper` rule). False (nothing changes) when it does not apply
    /// — another protocol, an untranslated session, IRC from outside — or the helper
    /// table is full (counted).
    pub fn attach_helper(&mut self, id: SessionId, kind: HelperKind) -> bool {
        let Some(s) = self.session(id).map(|r| *r.session) else { return false };
        if s.proto() != kind.proto()
            || s.kind() == SessionKind::Identity
            || (kind == HelperKind::Irc && s.initiator() != Dir::In2Out)
            || s.state & (S_HELPER | S_LINKED) != 0
        {
            return false;
        }
        let h = &mut self.helpers;
        let stream = if kind.has_stream() {
            match h.stream_free.pop() {
                Some(i) => i,
                None => {
                    h.count(HelperCounter::TableFull);
                    return false;
                }
            }
        } else {
            NIL16
        };
        if !h.add_link(Link { session: id.0, parent: NIL, children: 0, stream, helper: kind as u8 }) {
            if stream != NIL16 {
                h.stream_free.push(stream);
            }
            h.count(HelperCounter::TableFull);
            return false;
        }
        if stream != NIL16 {
            h.streams[usize::from(stream)] = Stream::EMPTY;
        }
        h.count(HelperCounter::Attached);
        self.sessions.get_mut(id.0).state |= S_HELPER | S_LINKED;
        true
    }

    /// The helper of a session, and its control session if it is a data session.
    pub fn helper_of(&self, id: SessionId) -> Option<(HelperKind, Option<SessionId>)> {
        let s = self.sessions.get(id.0);
        if !s.is_live() || s.state & S_LINKED == 0 {
            return None;
        }
        let l = self.helpers.link(id.0)?;
        let kind = HelperKind::from_u8(l.helper)?;
        Some((kind, (l.parent != NIL).then_some(SessionId(l.parent))))
    }

    // ----- expectations (slow path) -----

    /// Whether any expectation is open (the slow path's cheap first check).
    #[inline]
    pub fn has_expectations(&self) -> bool {
        !self.helpers.expects.is_empty()
    }

    /// If an expectation waits for the flow whose first packet is `t` travelling
    /// `dir`, create its session (bypassing filtering and policy, as Linux's RELATED),
    /// link it to the session that opened it, and use the expectation up. `None`: no
    /// expectation; the caller goes on with the normal slow path.
    pub fn create_expected(
        &mut self,
        t: &Tuple,
        dir: Dir,
        tcp_flags: u8,
        now: Instant,
    ) -> Option<Result<SessionId, CreateError>> {
        let id = self.helpers.expects.find(dir, t.proto, t.src, t.dst, now.as_millis())?;
        let e = self.helpers.expects.remove(id)?;
        let action = match e.target {
            Target::Mapping(m) => NatAction::Inbound(MappingId(m)),
            Target::Snat(a) => NatAction::Snat(SnatTarget { addrs: (a, a), ports: None }),
        };
        let r = self.create(t, action, tcp_flags, now);
        // The expectation's mapping reference: the session took its own.
        self.drop_expectation_ref(&e, now);
        if let Ok(sid) = r {
            self.helpers.count(HelperCounter::ExpectUsed);
            let linked = self.sessions.is_live(e.parent)
                && self.helpers.add_link(Link {
                    session: sid.0,
                    parent: e.parent,
                    children: 0,
                    stream: NIL16,
                    helper: e.helper as u8,
                });
            if linked {
                if let Some(p) = self.helpers.link_mut(e.parent) {
                    p.children += 1;
                }
                self.sessions.get_mut(sid.0).state |= S_LINKED;
            } else {
                self.helpers.count(HelperCounter::LinkFull);
            }
        }
        Some(r)
    }

    /// Release what an expectation holds (a reference on its mapping).
    fn drop_expectation_ref(&mut self, e: &Expectation, now: Instant) {
        if let Target::Mapping(m) = e.target {
            if self.mappings.is_live(m) {
                let map = self.mappings.get_mut(m);
                map.refs -= 1;
                if map.refs == 0 {
                    self.release_mapping(m, now);
                }
            }
        }
    }

    /// Add `e`, replacing the oldest of its parent's when at the helper's limit.
    fn open_expectation(&mut self, e: Expectation, now: Instant) -> Result<(), Refusal> {
        let (n, oldest) = self.helpers.expects.of_parent(e.parent);
        let replaced = match oldest {
            Some(o) if n >= e.helper.max_expected() => self.helpers.expects.remove(o),
            _ => None,
        };
        let r = match self.helpers.expects.insert(e) {
            Some(_) => {
                if let Target::Mapping(m) = e.target {
                    self.mappings.get_mut(m).refs += 1;
                }
                self.helpers.count(HelperCounter::ExpectCreated);
                Ok(())
            }
            None => Err(HelperCounter::ExpectTableFull),
        };
        if let Some(old) = replaced {
            self.helpers.count(HelperCounter::ExpectReplaced);
            self.drop_expectation_ref(&old, now);
        }
        r
    }

    /// Set up the external endpoint for a data connection to inside endpoint `inside`
    /// (TCP), as seen from outside at address `ext_addr`, from `peer` (or anyone):
    /// the inside endpoint's mapping (created if needed, on `ext_addr`) and an
    /// expectation holding it.
    fn offer(
        &mut self,
        parent: u32,
        kind: HelperKind,
        inside: Endpoint,
        peer: Ipv4Addr,
        ext_addr: Ipv4Addr,
        now: Instant,
    ) -> Result<Endpoint, Refusal> {
        let proto = Proto::Tcp;
        let (m, fresh) = match self.mappings.find_inside(inside, proto) {
            Some(m) => (m, false),
            None => {
                let m = match self.new_mapping_on(inside, proto, ext_addr, now) {
                    Ok(m) => m,
                    Err(e) => {
                        // Logged as the slow path logs a refused flow: a quota alert
                        // (13) here, exhaustion (3, 12) by the allocator.
                        self.log_refused_for(e, inside.addr, now);
                        return Err(HelperCounter::NoPort);
                    }
                };
                (m, true)
            }
        };
        let ext = self.mappings.outside(self.mappings.get(m));
        let e = Expectation {
            dir: Dir::Out2In,
            proto,
            dst: ext,
            src_addr: peer,
            src_port: 0,
            target: Target::Mapping(m),
            parent,
            helper: kind,
            deadline: (now + EXPECT_TIMEOUT).as_millis(),
        };
        match self.open_expectation(e, now) {
            Ok(()) => Ok(ext),
            Err(r) => {
                if fresh && self.mappings.get(m).refs == 0 {
                    self.release_mapping(m, now);
                }
                Err(r)
            }
        }
    }

    // ----- the helper stage -----

    /// The helper stage for one packet of session `id` (whose
    /// [`has_helper`](Session::has_helper) is set), travelling `dir`, **before** its
    /// NAT rewrite: `ip` holds the IPv4 packet (as `classify` accepted it) in its first
    /// `len` bytes and may grow into the rest of the slice — the caller makes that no
    /// longer than the egress MTU and the buffer allow. Returns the packet's new
    /// length; never drops (what it cannot handle passes unmodified, counted).
    pub fn helper_packet(&mut self, id: SessionId, dir: Dir, ip: &mut [u8], len: usize, now: Instant) -> usize {
        let Some(s) = self.session(id).map(|r| *r.session) else { return len };
        if s.state & S_HELPER == 0 || len < 20 || len > ip.len() {
            return len;
        }
        let Some(link) = self.helpers.link(id.0) else { return len };
        let Some(kind) = HelperKind::from_u8(link.helper) else { return len };
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
            self.helpers.count(HelperCounter::Fragment);
            return len;
        }
        match kind {
            HelperKind::Tftp => {
                if dir == s.initiator() && ip.get(ihl + 8..len).is_some() {
                    self.tftp_request(id.0, &s, &ip[ihl + 8..len], now);
                }
                len
            }
            HelperKind::Ftp | HelperKind::Irc => {
                if link.stream == NIL16 || ihl + 20 > len {
                    return len;
                }
                let thl = usize::from(ip[ihl + 12] >> 4) * 4;
                if thl < 20 || ihl + thl > len {
                    return len;
                }
                match dir {
                    Dir::In2Out => self.stream_in2out(id.0, &s, kind, link.stream, ip, len, ihl, thl, now),
                    Dir::Out2In => {
                        let adj = self.helpers.streams[usize::from(link.stream)].adj;
                        if adj.is_active() {
                            let d = seqadj::adjust_segment(&mut ip[ihl..len], None, Some(&adj));
                            if !d.is_zero() {
                                self.helpers.count(HelperCounter::SeqAdjusted);
                            }
                        }
                        len
                    }
                }
            }
        }
    }

    fn tftp_request(&mut self, parent: u32, s: &Session, payload: &[u8], now: Instant) {
        match tftp::parse(payload) {
            tftp::Parsed::Request(_) => {}
            tftp::Parsed::Other => return,
            tftp::Parsed::Malformed => {
                self.helpers.count(HelperCounter::TftpMalformed);
                return;
            }
        }
        let deadline = (now + EXPECT_TIMEOUT).as_millis();
        let e = match s.initiator() {
            // Client inside: the server answers from a new port to the client's
            // external endpoint.
            Dir::In2Out => Expectation {
                dir: Dir::Out2In,
                proto: Proto::Udp,
                dst: s.outside(),
                src_addr: s.remote().addr,
                src_port: 0,
                target: Target::Mapping(s.mapping),
                parent,
                helper: HelperKind::Tftp,
                deadline,
            },
            // Server inside (DNAT): it answers from a new port, leaving with the
            // forwarded address.
            Dir::Out2In => {
                if self.ports.addr_index(s.outside().addr).is_none() {
                    self.helpers.count(HelperCounter::NoPort);
                    return;
                }
                Expectation {
                    dir: Dir::In2Out,
                    proto: Proto::Udp,
                    dst: s.remote(),
                    src_addr: s.inside().addr,
                    src_port: 0,
                    target: Target::Snat(s.outside().addr),
                    parent,
                    helper: HelperKind::Tftp,
                    deadline,
                }
            }
        };
        if matches!(e.target, Target::Mapping(m) if m == NIL || !self.mappings.is_live(m)) {
            return;
        }
        self.helpers.count(HelperCounter::TftpRequest);
        if let Err(c) = self.open_expectation(e, now) {
            self.helpers.count(c);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn stream_in2out(
        &mut self,
        session: u32,
        s: &Session,
        kind: HelperKind,
        slot: u16,
        ip: &mut [u8],
        len: usize,
        ihl: usize,
        thl: usize,
        now: Instant,
    ) -> usize {
        let at = ihl + thl;
        let seq = u32::from_be_bytes([ip[ihl + 4], ip[ihl + 5], ip[ihl + 6], ip[ihl + 7]]);
        let flags = ip[ihl + 13];
        // The stream leaves its slot while this packet is handled (the line handlers
        // need the rest of the NAT): a copy of ≈ 300 bytes, for helper sessions only.
        let mut st = core::mem::replace(&mut self.helpers.streams[usize::from(slot)], Stream::EMPTY);
        let mut events = [None::<StreamEvent>; 4];
        let mut n_ev = 0;
        let out = {
            let mut lines = SessionLines { nat: self, session, s: *s, kind, now };
            st.segment(seq, flags, &mut ip[at..], len - at, &mut lines, &mut |e| {
                if n_ev < events.len() {
                    events[n_ev] = Some(e);
                    n_ev += 1;
                }
            })
        };
        let adj = st.adj;
        self.helpers.streams[usize::from(slot)] = st;
        for e in events.into_iter().flatten() {
            self.helpers.count(match e {
                StreamEvent::Held => HelperCounter::LineHeld,
                StreamEvent::SplitGivenUp => HelperCounter::LineGivenUp,
                StreamEvent::LineTooLong => HelperCounter::LineTooLong,
                StreamEvent::NoRoom => HelperCounter::NoRoom,
                StreamEvent::Resync => HelperCounter::Resync,
                StreamEvent::Replayed => HelperCounter::Replayed,
                StreamEvent::SecondRewrite => HelperCounter::SecondRewrite,
            });
        }
        let new_len = at + out.len;
        let tcp = &mut ip[ihl..new_len];
        if out.clear_fin {
            tcp[13] &= !0x01;
        }
        let d = seqadj::adjust_segment(tcp, Some((&adj, out.seq_of)), None);
        if out.changed || out.clear_fin || new_len != len {
            // IPv4 total length (and its checksum), then the whole TCP checksum.
            let old_total = u16::from_be_bytes([ip[2], ip[3]]);
            let total = new_len as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            let c = u16::from_be_bytes([ip[10], ip[11]]);
            ip[10..12].copy_from_slice(&Delta::new().replace16(old_total, total).apply(c).to_be_bytes());
            let src = Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            crate::packet::tcp::TcpPacket::new_unchecked(&mut ip[ihl..new_len]).fill_checksum(src, dst);
        }
        if !d.is_zero() || out.changed {
            self.helpers.count(HelperCounter::SeqAdjusted);
        }
        new_len
    }

    // ----- timers, removal -----

    /// The earliest expectation deadline.
    pub(crate) fn helper_deadline(&self) -> Option<Instant> {
        self.helpers.expects.next_deadline().map(Instant::from_millis)
    }

    /// Drop expectations that timed out, releasing what they hold.
    pub(crate) fn helper_expire(&mut self, now: Instant) {
        let now_ms = now.as_millis();
        if self.helpers.expects.next_deadline().is_none_or(|d| d > now_ms) {
            return;
        }
        loop {
            let mut batch = [None::<Expectation>; 32];
            let n = self.helpers.expects.take(|e| e.deadline <= now_ms, &mut batch);
            for e in batch.into_iter().flatten() {
                self.helpers.count(HelperCounter::ExpectExpired);
                self.drop_expectation_ref(&e, now);
            }
            if n < batch.len() {
                break;
            }
        }
        self.helpers.expects.recompute_deadline();
    }

    /// A control session due to expire that still has live data sessions stays (its
    /// timer restarts). Returns whether it was kept.
    pub(crate) fn helper_defer_expiry(&mut self, idx: u32) -> bool {
        let s = self.sessions.get(idx);
        if s.state & S_LINKED == 0 {
            return false;
        }
        match self.helpers.link(idx) {
            Some(l) if l.parent == NIL && l.children > 0 => {
                self.helpers.count(HelperCounter::ExpiryDeferred);
                true
            }
            _ => false,
        }
    }

    /// A data session of `id`, if it has any (the control plane removes them with it).
    pub(crate) fn helper_first_child(&self, id: SessionId) -> Option<SessionId> {
        let s = self.sessions.get(id.0);
        if s.state & S_LINKED == 0 {
            return None;
        }
        match self.helpers.link(id.0) {
            Some(l) if l.parent == NIL && l.children > 0 => self.helpers.first_child(id.0).map(SessionId),
            _ => None,
        }
    }

    /// Session `idx` is being freed: drop its link, its stream, its expectations; a
    /// control session's data sessions are unlinked (they live on by their timers).
    pub(crate) fn helper_release(&mut self, idx: u32, now: Instant) {
        let Some(l) = self.helpers.remove_link(idx) else { return };
        if l.stream != NIL16 {
            self.helpers.streams[usize::from(l.stream)] = Stream::EMPTY;
            self.helpers.stream_free.push(l.stream);
        }
        if l.parent != NIL {
            if let Some(p) = self.helpers.link_mut(l.parent) {
                p.children = p.children.saturating_sub(1);
            }
            return;
        }
        if l.children > 0 {
            while let Some(c) = self.helpers.first_child(idx) {
                self.helpers.remove_link(c);
                self.sessions.get_mut(c).state &= !S_LINKED;
            }
        }
        loop {
            let mut batch = [None::<Expectation>; 8];
            let n = self.helpers.expects.take(|e| e.parent == idx, &mut batch);
            for e in batch.into_iter().flatten() {
                self.helpers.count(HelperCounter::ExpectRemoved);
                self.drop_expectation_ref(&e, now);
            }
            if n < batch.len() {
                break;
            }
        }
    }

    // ----- introspection -----

    /// Open expectations, appended to `out` as far as its spare capacity goes (no
    /// allocation: a control-path call on the worker).
    pub fn expectations(&self, now: Instant, out: &mut Vec<ExpectInfo>) {
        for (_, e) in self.helpers.expects.iter() {
            if out.len() == out.capacity() {
                break;
            }
            let inside = match e.target {
                Target::Mapping(m) if self.mappings.is_live(m) => self.mappings.get(m).inside(),
                Target::Mapping(_) => Endpoint::new(Ipv4Addr::UNSPECIFIED, 0),
                Target::Snat(a) => Endpoint::new(a, 0),
            };
            out.push(ExpectInfo {
                helper: e.helper,
                proto: e.proto,
                dir: e.dir,
                dst: e.dst,
                src_addr: e.src_addr,
                src_port: e.src_port,
                inside,
                parent: SessionId(e.parent),
                expires_in: Duration::from_millis(e.deadline.saturating_sub(now.as_millis())),
            });
        }
    }

    /// Open expectations.
    pub fn expectation_count(&self) -> usize {
        self.helpers.expects.len()
    }

    /// The helpers' counters, indexed by [`HelperCounter`].
    pub fn helper_counters(&self) -> &[u64; HelperCounter::COUNT] {
        &self.helpers.counters
    }

    /// The helper ports in force.
    pub fn helper_ports(&self) -> &[HelperPort] {
        &self.helpers.ports
    }
}

/// The line handler of one FTP or IRC session: parses, sets up, formats.
struct SessionLines<'a> {
    nat: &'a mut WorkerNat,
    session: u32,
    s: Session,
    kind: HelperKind,
    now: Instant,
}

impl SessionLines<'_> {
    fn ftp_sender(&self) -> ftp::Sender {
        match self.s.initiator() {
            Dir::In2Out => ftp::Sender::Client,
            Dir::Out2In => ftp::Sender::Server,
        }
    }

    /// The external endpoint for a data connection to `inside`: `replay`'s, or a new
    /// mapping and expectation. Counts refusals.
    fn endpoint(&mut self, inside: Endpoint, peer: Ipv4Addr, replay: Option<Endpoint>) -> Option<Endpoint> {
        if let Some(e) = replay {
            return Some(e);
        }
        match self.nat.offer(self.session, self.kind, inside, peer, self.s.outside().addr, self.now) {
            Ok(e) => Some(e),
            Err(c) => {
                self.nat.helpers.count(c);
                None
            }
        }
    }

    fn ftp_line(&mut self, line: &[u8], replay: Option<Endpoint>, out: &mut [u8; REPL_MAX]) -> Option<Rewrite> {
        let f = match ftp::parse_line(self.ftp_sender(), line) {
            ftp::Parsed::Other => return None,
            ftp::Parsed::Found(f) => f,
            ftp::Parsed::Malformed(_) => {
                self.nat.helpers.count(HelperCounter::FtpMalformed);
                return None;
            }
            ftp::Parsed::Ipv6 => {
                self.nat.helpers.count(HelperCounter::FtpEprtIpv6);
                return None;
            }
        };
        let inside_addr = self.s.inside().addr;
        if f.addr.is_some_and(|a| a != inside_addr) {
            self.nat.helpers.count(HelperCounter::ForeignAddress);
            return None;
        }
        let ext = self.endpoint(Endpoint::new(inside_addr, f.port), self.s.remote().addr, replay)?;
        let mut buf = [0u8; ftp::FORMAT_MAX];
        let n = ftp::format(&f, ext, &mut buf);
        out[..n].copy_from_slice(&buf[..n]);
        if replay.is_none() {
            self.nat.helpers.count(match f.line {
                ftp::FtpLine::Port => HelperCounter::FtpPort,
                ftp::FtpLine::Eprt => HelperCounter::FtpEprt,
                ftp::FtpLine::Pasv => HelperCounter::FtpPasv,
                ftp::FtpLine::Epsv => HelperCounter::FtpEpsv,
            });
        }
        Some(Rewrite { span: f.span, len: n, ext })
    }

    fn irc_line(&mut self, line: &[u8], replay: Option<Endpoint>, out: &mut [u8; REPL_MAX]) -> Option<Rewrite> {
        let d = match irc::parse_line(line) {
            irc::Parsed::Other => return None,
            irc::Parsed::Found(d) => d,
            irc::Parsed::Passive => {
                self.nat.helpers.count(HelperCounter::IrcDccPassive);
                return None;
            }
            irc::Parsed::Malformed => {
                self.nat.helpers.count(HelperCounter::IrcMalformed);
                return None;
            }
        };
        let inside_addr = self.s.inside().addr;
        if d.addr != inside_addr {
            self.nat.helpers.count(HelperCounter::ForeignAddress);
            return None;
        }
        let ext = self.endpoint(Endpoint::new(inside_addr, d.port), Ipv4Addr::UNSPECIFIED, replay)?;
        let mut buf = [0u8; irc::FORMAT_MAX];
        let n = irc::format(ext, &mut buf);
        out[..n].copy_from_slice(&buf[..n]);
        if replay.is_none() {
            self.nat.helpers.count(HelperCounter::IrcDcc);
        }
        Some(Rewrite { span: d.span, len: n, ext })
    }
}

impl Lines for SessionLines<'_> {
    fn candidate(&self, partial: &[u8]) -> bool {
        match self.kind {
            HelperKind::Ftp => ftp::candidate(self.ftp_sender(), partial),
            HelperKind::Irc => irc::candidate(partial),
            HelperKind::Tftp => false,
        }
    }

    fn line(&mut self, line: &[u8], replay: Option<Endpoint>, out: &mut [u8; REPL_MAX]) -> Option<Rewrite> {
        match self.kind {
            HelperKind::Ftp => self.ftp_line(line, replay, out),
            HelperKind::Irc => self.irc_line(line, replay, out),
            HelperKind::Tftp => None,
        }
    }
}
