//! IPFIX (RFC 7011) export of NAT events with RFC 8158's information elements.
//!
//! Sans-I/O: [`IpfixEncoder`] turns events into complete IPFIX messages and hands each
//! finished message to a caller's closure; the logging thread sends it over UDP to every
//! collector. It reads no clock: every call takes the wall-clock time in milliseconds.
//!
//! ## Message layout (RFC 7011 §3)
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-------------------------------+-------------------------------+
//! |       Version Number = 10     |            Length             |  message header
//! +-------------------------------+-------------------------------+  (§3.1, 16 bytes)
//! |                          Export Time (s)                      |
//! +---------------------------------------------------------------+
//! |                       Sequence Number                         |
//! +---------------------------------------------------------------+
//! |                    Observation Domain ID                      |
//! +-------------------------------+-------------------------------+
//! |        Set ID (2 | ≥256)      |            Length             |  set header (§3.3.2)
//! +-------------------------------+-------------------------------+
//! | Template ID | Field Count, then (IE id, length) per field     |  template record (§3.4.1)
//! | ... or data records: the fields' values, in template order    |  data record (§3.4.3)
//! ```
//!
//! - The sequence number is the count of data records sent before this message in
//!   this observation domain, modulo 2^32; template records do not count (§3.1).
//! - Templates are sent in a message of their own when the encoder starts and again
//!   every `template_refresh` (UDP has no session to tell a restarted collector: §8.4).
//! - Records are packed into a message until the next would exceed `mtu` bytes;
//!   consecutive records of one template share one data set. A message is flushed when
//!   full, or when its oldest record is [`FLUSH_AFTER_MS`] old.
//!
//! ## Templates (RFC 8158 §4.4)
//!
//! | ID  | natEvent       | fields (IE id / bytes)                                                 |
//! |-----|----------------|------------------------------------------------------------------------|
//! | 256 | 4, 5 session   | observationTimeMilliseconds 323/8, natEvent 230/1, sourceIPv4Address 8/4, postNATSourceIPv4Address 225/4, protocolIdentifier 4/1, sourceTransportPort 7/2, postNAPTSourceTransportPort 227/2, destinationIPv4Address 12/4, destinationTransportPort 11/2, postNATDestinationIPv4Address 226/4, postNAPTDestinationTransportPort 228/2 |
//! | 257 | 8, 9 BIB       | 323/8, 230/1, 8/4, 225/4, 4/1, 7/2, 227/2                              |
//! | 258 | 16, 17 block   | 323/8, 230/1, 8/4, 225/4, portRangeStart 361/2, portRangeEnd 362/2, portRangeStepSize 363/2, portRangeNumPorts 364/2 |
//! | 259 | 3 addresses exhausted | 323/8, 230/1, natPoolID 283/4                                   |
//! | 260 | 12 ports exhausted | 323/8, 230/1, 225/4, 4/1                                           |
//! | 261 | 13 max sessions | 323/8, 230/1, natQuotaExceededEvent 466/4, maxSessionEntries 471/4    |
//! | 262 | 13 max BIB     | 323/8, 230/1, 466/4, maxBIBEntries 472/4                               |
//! | 263 | 13 per user    | 323/8, 230/1, 466/4, maxEntriesPerUser 473/4, 8/4                      |
//! | 264 | 13 max subscribers | 323/8, 230/1, 466/4, maxSubscribers 474/4                          |
//!
//! A source-NAT session is logged from the subscriber's side: source = inside, post-NAT
//! source = external endpoint, destination = the remote (unchanged). A destination-NAT
//! session (port forward) from the client's side: source = the remote client
//! (unchanged), destination = the forwarded external endpoint, post-NAT destination =
//! the inside server.

use super::event::{EventKind, NatEvent, QuotaKind};

/// IPFIX version number.
pub const VERSION: u16 = 10;
/// Set ID of a template set.
pub const TEMPLATE_SET: u16 = 2;
/// Message header bytes.
pub const HEADER_LEN: usize = 16;
/// Set header bytes.
pub const SET_HEADER_LEN: usize = 4;
/// A message with records is sent at the latest this long after its first record.
pub const FLUSH_AFTER_MS: u64 = 1000;
/// Smallest accepted `mtu`: the template message must fit.
pub const MIN_MTU: usize = 512;
/// Largest accepted `mtu` (a UDP datagram, and the 16-bit length field).
pub const MAX_MTU: usize = 65_000;

/// IANA information element identifiers used here.
pub mod ie {
    pub const PROTOCOL_IDENTIFIER: u16 = 4;
    pub const SOURCE_TRANSPORT_PORT: u16 = 7;
    pub const SOURCE_IPV4_ADDRESS: u16 = 8;
    pub const DESTINATION_TRANSPORT_PORT: u16 = 11;
    pub const DESTINATION_IPV4_ADDRESS: u16 = 12;
    pub const POST_NAT_SOURCE_IPV4_ADDRESS: u16 = 225;
    pub const POST_NAT_DESTINATION_IPV4_ADDRESS: u16 = 226;
    pub const POST_NAPT_SOURCE_TRANSPORT_PORT: u16 = 227;
    pub const POST_NAPT_DESTINATION_TRANSPORT_PORT: u16 = 228;
    pub const NAT_EVENT: u16 = 230;
    pub const NAT_POOL_ID: u16 = 283;
    pub const OBSERVATION_TIME_MILLISECONDS: u16 = 323;
    pub const PORT_RANGE_START: u16 = 361;
    pub const PORT_RANGE_END: u16 = 362;
    pub const PORT_RANGE_STEP_SIZE: u16 = 363;
    pub const PORT_RANGE_NUM_PORTS: u16 = 364;
    pub const NAT_QUOTA_EXCEEDED_EVENT: u16 = 466;
    pub const MAX_SESSION_ENTRIES: u16 = 471;
    pub const MAX_BIB_ENTRIES: u16 = 472;
    pub const MAX_ENTRIES_PER_USER: u16 = 473;
    pub const MAX_SUBSCRIBERS: u16 = 474;
}

/// One template: its ID and `(IE, length)` fields.
#[derive(Debug)]
pub struct Template {
    pub id: u16,
    pub fields: &'static [(u16, u16)],
}

impl Template {
    /// Bytes of one data record.
    pub const fn record_len(&self) -> usize {
        let mut n = 0;
        let mut i = 0;
        while i < self.fields.len() {
            n += self.fields[i].1 as usize;
            i += 1;
        }
        n
    }
}

use ie::*;

const TIME: (u16, u16) = (OBSERVATION_TIME_MILLISECONDS, 8);
const EVENT: (u16, u16) = (NAT_EVENT, 1);

pub const SESSION: Template = Template {
    id: 256,
    fields: &[
        TIME,
        EVENT,
        (SOURCE_IPV4_ADDRESS, 4),
        (POST_NAT_SOURCE_IPV4_ADDRESS, 4),
        (PROTOCOL_IDENTIFIER, 1),
        (SOURCE_TRANSPORT_PORT, 2),
        (POST_NAPT_SOURCE_TRANSPORT_PORT, 2),
        (DESTINATION_IPV4_ADDRESS, 4),
        (DESTINATION_TRANSPORT_PORT, 2),
        (POST_NAT_DESTINATION_IPV4_ADDRESS, 4),
        (POST_NAPT_DESTINATION_TRANSPORT_PORT, 2),
    ],
};
pub const MAPPING: Template = Template {
    id: 257,
    fields: &[
        TIME,
        EVENT,
        (SOURCE_IPV4_ADDRESS, 4),
        (POST_NAT_SOURCE_IPV4_ADDRESS, 4),
        (PROTOCOL_IDENTIFIER, 1),
        (SOURCE_TRANSPORT_PORT, 2),
        (POST_NAPT_SOURCE_TRANSPORT_PORT, 2),
    ],
};
pub const BLOCK: Template = Template {
    id: 258,
    fields: &[
        TIME,
        EVENT,
        (SOURCE_IPV4_ADDRESS, 4),
        (POST_NAT_SOURCE_IPV4_ADDRESS, 4),
        (PORT_RANGE_START, 2),
        (PORT_RANGE_END, 2),
        (PORT_RANGE_STEP_SIZE, 2),
        (PORT_RANGE_NUM_PORTS, 2),
    ],
};
pub const ADDRESSES_EXHAUSTED: Template = Template { id: 259, fields: &[TIME, EVENT, (NAT_POOL_ID, 4)] };
pub const PORTS_EXHAUSTED: Template =
    Template { id: 260, fields: &[TIME, EVENT, (POST_NAT_SOURCE_IPV4_ADDRESS, 4), (PROTOCOL_IDENTIFIER, 1)] };
pub const QUOTA_SESSIONS: Template =
    Template { id: 261, fields: &[TIME, EVENT, (NAT_QUOTA_EXCEEDED_EVENT, 4), (MAX_SESSION_ENTRIES, 4)] };
pub const QUOTA_MAPPINGS: Template =
    Template { id: 262, fields: &[TIME, EVENT, (NAT_QUOTA_EXCEEDED_EVENT, 4), (MAX_BIB_ENTRIES, 4)] };
pub const QUOTA_PER_USER: Template = Template {
    id: 263,
    fields: &[TIME, EVENT, (NAT_QUOTA_EXCEEDED_EVENT, 4), (MAX_ENTRIES_PER_USER, 4), (SOURCE_IPV4_ADDRESS, 4)],
};
pub const QUOTA_SUBSCRIBERS: Template =
    Template { id: 264, fields: &[TIME, EVENT, (NAT_QUOTA_EXCEEDED_EVENT, 4), (MAX_SUBSCRIBERS, 4)] };

/// Every template, in ID order.
pub const TEMPLATES: [&Template; 9] = [
    &SESSION,
    &MAPPING,
    &BLOCK,
    &ADDRESSES_EXHAUSTED,
    &PORTS_EXHAUSTED,
    &QUOTA_SESSIONS,
    &QUOTA_MAPPINGS,
    &QUOTA_PER_USER,
    &QUOTA_SUBSCRIBERS,
];

/// The pool ID reported with "addresses exhausted" (masq has one external pool).
pub const POOL_ID: u32 = 1;

/// The template an event is encoded with (`None`: a quota event without a kind).
pub fn template_of(ev: &NatEvent) -> Option<&'static Template> {
    Some(match ev.kind {
        EventKind::SessionCreate | EventKind::SessionDelete => &SESSION,
        EventKind::MappingCreate | EventKind::MappingDelete => &MAPPING,
        EventKind::BlockAllocate | EventKind::BlockRelease => &BLOCK,
        EventKind::AddressesExhausted => &ADDRESSES_EXHAUSTED,
        EventKind::PortsExhausted => &PORTS_EXHAUSTED,
        EventKind::QuotaExceeded => match ev.quota {
            QuotaKind::MaxSessions => &QUOTA_SESSIONS,
            QuotaKind::MaxMappings => &QUOTA_MAPPINGS,
            QuotaKind::MaxEntriesPerUser => &QUOTA_PER_USER,
            QuotaKind::MaxSubscribers => &QUOTA_SUBSCRIBERS,
            QuotaKind::None => return None,
        },
    })
}

/// Append the data record of `ev` (template [`template_of`]) stamped `time_ms`.
fn put_record(out: &mut Vec<u8>, ev: &NatEvent, time_ms: u64) {
    out.extend_from_slice(&time_ms.to_be_bytes());
    out.push(ev.kind.code());
    let u32be = |out: &mut Vec<u8>, v: u32| out.extend_from_slice(&v.to_be_bytes());
    let u16be = |out: &mut Vec<u8>, v: u16| out.extend_from_slice(&v.to_be_bytes());
    match ev.kind {
        EventKind::SessionCreate | EventKind::SessionDelete => {
            let (src, post_src, dst, post_dst) = if ev.dest_nat {
                (ev.remote(), ev.remote(), ev.outside(), ev.inside())
            } else {
                (ev.inside(), ev.outside(), ev.remote(), ev.remote())
            };
            u32be(out, src.addr.into());
            u32be(out, post_src.addr.into());
            out.push(ev.proto);
            u16be(out, src.port);
            u16be(out, post_src.port);
            u32be(out, dst.addr.into());
            u16be(out, dst.port);
            u32be(out, post_dst.addr.into());
            u16be(out, post_dst.port);
        }
        EventKind::MappingCreate | EventKind::MappingDelete => {
            u32be(out, ev.inside_addr);
            u32be(out, ev.outside_addr);
            out.push(ev.proto);
            u16be(out, ev.inside_port);
            u16be(out, ev.outside_port);
        }
        EventKind::BlockAllocate | EventKind::BlockRelease => {
            u32be(out, ev.inside_addr);
            u32be(out, ev.outside_addr);
            u16be(out, ev.outside_port);
            u16be(out, ev.block_end());
            u16be(out, 1);
            u16be(out, ev.block);
        }
        EventKind::AddressesExhausted => u32be(out, POOL_ID),
        EventKind::PortsExhausted => {
            u32be(out, ev.outside_addr);
            out.push(ev.proto);
        }
        EventKind::QuotaExceeded => {
            u32be(out, ev.quota as u32);
            u32be(out, ev.limit);
            if ev.quota == QuotaKind::MaxEntriesPerUser {
                u32be(out, ev.inside_addr);
            }
        }
    }
}

/// Why an encoder cannot be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IpfixError {
    #[error("mtu {0} is outside {MIN_MTU}..={MAX_MTU} bytes")]
    Mtu(usize),
}

/// Counters of the encoder.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpfixCounters {
    /// Messages produced (data and template).
    pub messages: u64,
    /// Data records produced.
    pub records: u64,
    /// Template messages produced.
    pub template_messages: u64,
}

/// Builds IPFIX messages from NAT events for one observation domain.
pub struct IpfixEncoder {
    domain: u32,
    mtu: usize,
    refresh_ms: u64,
    /// Data records exported before the message being built (RFC 7011 §3.1).
    seq: u32,
    buf: Vec<u8>,
    /// The open data set: its template ID and where its header starts.
    set: Option<(u16, usize)>,
    /// Records in the message being built.
    pending: u32,
    /// Wall-clock ms of the first record of the message being built.
    opened_ms: u64,
    /// When templates are next due (`None`: now).
    templates_due: Option<u64>,
    counters: IpfixCounters,
}

impl IpfixEncoder {
    /// An encoder for `domain`, messages of at most `mtu` bytes, templates resent
    /// every `refresh_ms`.
    pub fn new(domain: u32, mtu: usize, refresh_ms: u64) -> Result<IpfixEncoder, IpfixError> {
        if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
            return Err(IpfixError::Mtu(mtu));
        }
        let mut buf = Vec::with_capacity(mtu);
        buf.resize(HEADER_LEN, 0);
        Ok(IpfixEncoder {
            domain,
            mtu,
            refresh_ms: refresh_ms.max(1),
            seq: 0,
            buf,
            set: None,
            pending: 0,
            opened_ms: 0,
            templates_due: None,
            counters: IpfixCounters::default(),
        })
    }

    pub fn counters(&self) -> IpfixCounters {
        self.counters
    }

    /// The sequence number the next message will carry.
    pub fn sequence(&self) -> u32 {
        self.seq
    }

    /// Records waiting in the message being built.
    pub fn pending(&self) -> u32 {
        self.pending
    }

    fn finish(&mut self, now_ms: u64, seq: u32, out: &mut impl FnMut(&[u8])) {
        if let Some((_, start)) = self.set.take() {
            let len = (self.buf.len() - start) as u16;
            self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
        }
        let len = self.buf.len() as u16;
        self.buf[0..2].copy_from_slice(&VERSION.to_be_bytes());
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        self.buf[4..8].copy_from_slice(&((now_ms / 1000) as u32).to_be_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_be_bytes());
        self.buf[12..16].copy_from_slice(&self.domain.to_be_bytes());
        out(&self.buf);
        self.counters.messages += 1;
        self.buf.truncate(HEADER_LEN);
    }

    /// Send the message being built, if it holds records.
    pub fn flush(&mut self, now_ms: u64, out: &mut impl FnMut(&[u8])) {
        if self.pending == 0 {
            return;
        }
        let seq = self.seq;
        self.finish(now_ms, seq, out);
        self.seq = self.seq.wrapping_add(self.pending);
        self.pending = 0;
    }

    /// Send the templates now (in a message of their own, after flushing records).
    pub fn send_templates(&mut self, now_ms: u64, out: &mut impl FnMut(&[u8])) {
        self.flush(now_ms, out);
        let start = self.buf.len();
        self.buf.extend_from_slice(&TEMPLATE_SET.to_be_bytes());
        self.buf.extend_from_slice(&[0, 0]);
        for t in TEMPLATES {
            self.buf.extend_from_slice(&t.id.to_be_bytes());
            self.buf.extend_from_slice(&(t.fields.len() as u16).to_be_bytes());
            for (id, len) in t.fields {
                self.buf.extend_from_slice(&id.to_be_bytes());
                self.buf.extend_from_slice(&len.to_be_bytes());
            }
        }
        self.set = Some((TEMPLATE_SET, start));
        let seq = self.seq;
        self.finish(now_ms, seq, out);
        self.counters.template_messages += 1;
        self.templates_due = Some(now_ms.saturating_add(self.refresh_ms));
    }

    /// Timers: templates when due, and the message being built once its first record
    /// is [`FLUSH_AFTER_MS`] old. Call at least every few hundred milliseconds.
    pub fn poll(&mut self, now_ms: u64, out: &mut impl FnMut(&[u8])) {
        if self.templates_due.is_none_or(|due| now_ms >= due) {
            self.send_templates(now_ms, out);
        }
        if self.pending > 0 && now_ms.saturating_sub(self.opened_ms) >= FLUSH_AFTER_MS {
            self.flush(now_ms, out);
        }
    }

    /// Add `ev` (which happened at wall-clock `event_ms`) to the message being built,
    /// sending that message first if the record would not fit. Templates go first if
    /// they were never sent. Returns whether the event had a template.
    pub fn encode(&mut self, ev: &NatEvent, event_ms: u64, now_ms: u64, out: &mut impl FnMut(&[u8])) -> bool {
        let Some(t) = template_of(ev) else { return false };
        if self.templates_due.is_none() {
            self.send_templates(now_ms, out);
        }
        let same_set = matches!(self.set, Some((id, _)) if id == t.id);
        let need = t.record_len() + if same_set { 0 } else { SET_HEADER_LEN };
        if self.buf.len() + need > self.mtu {
            self.flush(now_ms, out);
        }
        if !matches!(self.set, Some((id, _)) if id == t.id) {
            if let Some((_, start)) = self.set.take() {
                let len = (self.buf.len() - start) as u16;
                self.buf[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
            }
            self.set = Some((t.id, self.buf.len()));
            self.buf.extend_from_slice(&t.id.to_be_bytes());
            self.buf.extend_from_slice(&[0, 0]);
        }
        if self.pending == 0 {
            self.opened_ms = now_ms;
        }
        let before = self.buf.len();
        put_record(&mut self.buf, ev, event_ms);
        debug_assert_eq!(self.buf.len() - before, t.record_len());
        self.pending += 1;
        self.counters.records += 1;
        true
    }
}

/// A minimal IPFIX reader, written apart from the encoder (it learns templates from the
/// wire), for tests and the test collector.
pub mod decode {
    use std::collections::HashMap;

    /// A decoded message header.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Header {
        pub version: u16,
        pub length: u16,
        pub export_time: u32,
        pub sequence: u32,
        pub domain: u32,
    }

    /// A data record: its template and `(IE, value bytes)` in order.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct Record {
        pub template: u16,
        pub fields: Vec<(u16, Vec<u8>)>,
    }

    impl Record {
        /// The value of IE `ie` as a big-endian unsigned integer.
        pub fn uint(&self, ie: u16) -> Option<u64> {
            let (_, v) = self.fields.iter().find(|(id, _)| *id == ie)?;
            Some(v.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
        }

        pub fn ipv4(&self, ie: u16) -> Option<std::net::Ipv4Addr> {
            let (_, v) = self.fields.iter().find(|(id, _)| *id == ie)?;
            let b: [u8; 4] = v.as_slice().try_into().ok()?;
            Some(b.into())
        }
    }

    /// Templates learnt so far (per observation domain).
    #[derive(Default)]
    pub struct Collector {
        pub templates: HashMap<(u32, u16), Vec<(u16, u16)>>,
    }

    impl Collector {
        /// Parse one message: its header, and its data records (templates remembered).
        pub fn message(&mut self, msg: &[u8]) -> Result<(Header, Vec<Record>), String> {
            let be16 = |b: &[u8], i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
            let be32 = |b: &[u8], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            if msg.len() < 16 {
                return Err(format!("message of {} bytes", msg.len()));
            }
            let h = Header {
                version: be16(msg, 0),
                length: be16(msg, 2),
                export_time: be32(msg, 4),
                sequence: be32(msg, 8),
                domain: be32(msg, 12),
            };
            if h.version != 10 || usize::from(h.length) != msg.len() {
                return Err(format!("bad header {h:?} for {} bytes", msg.len()));
            }
            let mut records = Vec::new();
            let mut i = 16;
            while i < msg.len() {
                if i + 4 > msg.len() {
                    return Err("truncated set header".into());
                }
                let (id, len) = (be16(msg, i), usize::from(be16(msg, i + 2)));
                if len < 4 || i + len > msg.len() {
                    return Err(format!("set {id} of length {len} at {i}"));
                }
                let body = &msg[i + 4..i + len];
                if id == 2 {
                    let mut j = 0;
                    while j + 4 <= body.len() {
                        let (tid, n) = (be16(body, j), usize::from(be16(body, j + 2)));
                        j += 4;
                        let mut fields = Vec::new();
                        for _ in 0..n {
                            if j + 4 > body.len() {
                                return Err("truncated template".into());
                            }
                            let (ie, flen) = (be16(body, j), be16(body, j + 2));
                            if ie & 0x8000 != 0 {
                                return Err("enterprise IE not expected".into());
                            }
                            fields.push((ie, flen));
                            j += 4;
                        }
                        self.templates.insert((h.domain, tid), fields);
                    }
                } else if id >= 256 {
                    let t = self.templates.get(&(h.domain, id)).ok_or(format!("data set {id} before its template"))?;
                    let rec: usize = t.iter().map(|f| usize::from(f.1)).sum();
                    let mut j = 0;
                    while j + rec <= body.len() {
                        let mut fields = Vec::new();
                        for (ie, flen) in t {
                            fields.push((*ie, body[j..j + usize::from(*flen)].to_vec()));
                            j += usize::from(*flen);
                        }
                        records.push(Record { template: id, fields });
                    }
                    if body.len() - j >= 4 {
                        return Err(format!("{} stray bytes in set {id}", body.len() - j));
                    }
                } else {
                    return Err(format!("unexpected set id {id}"));
                }
                i += len;
            }
            Ok((h, records))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::decode::Collector;
    use super::*;
    use crate::nat::{Endpoint, Proto};
    use std::net::Ipv4Addr;

    fn ep(a: [u8; 4], p: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(a), p)
    }

    fn session(kind: EventKind) -> NatEvent {
        NatEvent::session(
            kind,
            0,
            Proto::Udp,
            ep([100, 64, 0, 2], 5000),
            ep([203, 0, 113, 1], 40001),
            ep([198, 51, 100, 7], 53),
        )
    }

    fn collect(enc: &mut IpfixEncoder, f: impl FnOnce(&mut IpfixEncoder, &mut dyn FnMut(&[u8]))) -> Vec<Vec<u8>> {
        let mut msgs = Vec::new();
        f(enc, &mut |m: &[u8]| msgs.push(m.to_vec()));
        msgs
    }

    const T0: u64 = 1_765_000_000_123;

    #[test]
    fn template_message_bytes() {
        let mut enc = IpfixEncoder::new(7, 1400, 60_000).unwrap();
        let msgs = collect(&mut enc, |e, out| e.send_templates(T0, &mut |m| out(m)));
        assert_eq!(msgs.len(), 1);
        let m = &msgs[0];
        // Header: version 10, length, export time (s), sequence 0, domain 7.
        assert_eq!(&m[0..2], &[0, 10]);
        assert_eq!(usize::from(u16::from_be_bytes([m[2], m[3]])), m.len());
        assert_eq!(u32::from_be_bytes(m[4..8].try_into().unwrap()), (T0 / 1000) as u32);
        assert_eq!(&m[8..16], &[0, 0, 0, 0, 0, 0, 0, 7]);
        // One template set holding all nine templates.
        assert_eq!(&m[16..18], &[0, 2]);
        assert_eq!(usize::from(u16::from_be_bytes([m[18], m[19]])), m.len() - 16);
        // The session template, field by field (RFC 7011 §3.4.1: ID, count, then
        // (IE, length) pairs).
        #[rustfmt::skip]
        let session: &[u8] = &[
            1, 0, 0, 11,          // template 256, 11 fields
            0x01, 0x43, 0, 8,     // observationTimeMilliseconds (323), 8
            0, 230, 0, 1,         // natEvent, 1
            0, 8, 0, 4,           // sourceIPv4Address, 4
            0, 225, 0, 4,         // postNATSourceIPv4Address, 4
            0, 4, 0, 1,           // protocolIdentifier, 1
            0, 7, 0, 2,           // sourceTransportPort, 2
            0, 227, 0, 2,         // postNAPTSourceTransportPort, 2
            0, 12, 0, 4,          // destinationIPv4Address, 4
            0, 11, 0, 2,          // destinationTransportPort, 2
            0, 226, 0, 4,         // postNATDestinationIPv4Address, 4
            0, 228, 0, 2,         // postNAPTDestinationTransportPort, 2
        ];
        assert_eq!(&m[20..20 + session.len()], session);
        #[rustfmt::skip]
        let bib: &[u8] = &[1, 1, 0, 7, 0x01, 0x43, 0, 8, 0, 230, 0, 1, 0, 8, 0, 4, 0, 225, 0, 4, 0, 4, 0, 1, 0, 7, 0, 2, 0, 227, 0, 2];
        let at = 20 + session.len();
        assert_eq!(&m[at..at + bib.len()], bib);
        #[rustfmt::skip]
        let block: &[u8] = &[
            1, 2, 0, 8, 0x01, 0x43, 0, 8, 0, 230, 0, 1, 0, 8, 0, 4, 0, 225, 0, 4,
            0x01, 0x69, 0, 2,     // portRangeStart (361)
            0x01, 0x6a, 0, 2,     // portRangeEnd (362)
            0x01, 0x6b, 0, 2,     // portRangeStepSize (363)
            0x01, 0x6c, 0, 2,     // portRangeNumPorts (364)
        ];
        let at = at + bib.len();
        assert_eq!(&m[at..at + block.len()], block);
        // The rest, checked through the independent decoder.
        let mut c = Collector::default();
        let (h, recs) = c.message(m).unwrap();
        assert!(recs.is_empty());
        assert_eq!(h.sequence, 0);
        for t in TEMPLATES {
            assert_eq!(c.templates[&(7, t.id)], t.fields.to_vec(), "template {}", t.id);
        }
        assert_eq!(c.templates[&(7, 263)], vec![(323, 8), (230, 1), (466, 4), (473, 4), (8, 4)]);
        assert_eq!(c.templates[&(7, 259)], vec![(323, 8), (230, 1), (283, 4)]);
        assert_eq!(c.templates[&(7, 260)], vec![(323, 8), (230, 1), (225, 4), (4, 1)]);
    }

    #[test]
    fn session_record_bytes() {
        let mut enc = IpfixEncoder::new(7, 1400, 60_000).unwrap();
        let msgs = collect(&mut enc, |e, out| {
            e.encode(&session(EventKind::SessionCreate), T0 - 5, T0, &mut |m| out(m));
            e.flush(T0 + 1, &mut |m| out(m));
        });
        assert_eq!(msgs.len(), 2, "templates first, then the data");
        let m = &msgs[1];
        #[rustfmt::skip]
        let expect: Vec<u8> = [
            &[0u8, 10, 0, 54][..],                  // version, length 16 + 4 + 34
            &((T0 / 1000) as u32).to_be_bytes(),    // export time
            &[0, 0, 0, 0, 0, 0, 0, 7],              // sequence 0, domain 7
            &[1, 0, 0, 38],                         // data set 256, length 4 + 34
            &(T0 - 5).to_be_bytes(),                // observationTimeMilliseconds
            &[4],                                   // natEvent: session create
            &[100, 64, 0, 2, 203, 0, 113, 1],       // source, post-NAT source
            &[17],                                  // UDP
            &[0x13, 0x88, 0x9c, 0x41],              // ports 5000, 40001
            &[198, 51, 100, 7, 0, 53],              // destination 198.51.100.7:53
            &[198, 51, 100, 7, 0, 53],              // post-NAT destination: unchanged
        ]
        .concat();
        assert_eq!(m, &expect);
    }

    #[test]
    fn every_kind_round_trips_through_the_decoder() {
        let out_a = Ipv4Addr::new(203, 0, 113, 1);
        let in_a = Ipv4Addr::new(100, 64, 0, 9);
        let events = [
            session(EventKind::SessionCreate),
            session(EventKind::SessionDelete),
            session(EventKind::SessionCreate).as_dest_nat(),
            NatEvent::mapping(
                EventKind::MappingCreate,
                0,
                Proto::Tcp,
                ep([100, 64, 0, 2], 80),
                ep([203, 0, 113, 1], 1080),
            ),
            NatEvent::mapping(
                EventKind::MappingDelete,
                0,
                Proto::Tcp,
                ep([100, 64, 0, 2], 80),
                ep([203, 0, 113, 1], 1080),
            ),
            NatEvent::block(EventKind::BlockAllocate, 0, in_a, out_a, 2048, 64),
            NatEvent::block(EventKind::BlockRelease, 0, in_a, out_a, 2048, 64),
            NatEvent::addresses_exhausted(0, out_a, 4),
            NatEvent::ports_exhausted(0, Proto::Udp, in_a, out_a),
            NatEvent::quota(0, QuotaKind::MaxSessions, 1000, Ipv4Addr::UNSPECIFIED),
            NatEvent::quota(0, QuotaKind::MaxMappings, 900, Ipv4Addr::UNSPECIFIED),
            NatEvent::quota(0, QuotaKind::MaxEntriesPerUser, 64, in_a),
            NatEvent::quota(0, QuotaKind::MaxSubscribers, 16, Ipv4Addr::UNSPECIFIED),
        ];
        let mut enc = IpfixEncoder::new(42, 1400, 60_000).unwrap();
        let msgs = collect(&mut enc, |e, out| {
            for (i, ev) in events.iter().enumerate() {
                assert!(e.encode(ev, T0 + i as u64, T0, &mut |m| out(m)));
            }
            e.flush(T0, &mut |m| out(m));
        });
        let mut c = Collector::default();
        let recs: Vec<_> = msgs.iter().flat_map(|m| c.message(m).unwrap().1).collect();
        assert_eq!(recs.len(), events.len());
        for (i, (ev, r)) in events.iter().zip(&recs).enumerate() {
            assert_eq!(r.uint(ie::OBSERVATION_TIME_MILLISECONDS), Some(T0 + i as u64));
            assert_eq!(r.uint(ie::NAT_EVENT), Some(u64::from(ev.kind.code())), "{ev:?}");
        }
        let s = &recs[0];
        assert_eq!(s.template, 256);
        assert_eq!(s.ipv4(ie::SOURCE_IPV4_ADDRESS), Some(Ipv4Addr::new(100, 64, 0, 2)));
        assert_eq!(s.ipv4(ie::POST_NAT_SOURCE_IPV4_ADDRESS), Some(out_a));
        assert_eq!(s.uint(ie::SOURCE_TRANSPORT_PORT), Some(5000));
        assert_eq!(s.uint(ie::POST_NAPT_SOURCE_TRANSPORT_PORT), Some(40001));
        assert_eq!(s.uint(ie::PROTOCOL_IDENTIFIER), Some(17));
        // A port forward: the client is the source; the destination is translated.
        let d = &recs[2];
        assert_eq!(d.ipv4(ie::SOURCE_IPV4_ADDRESS), Some(Ipv4Addr::new(198, 51, 100, 7)));
        assert_eq!(d.ipv4(ie::POST_NAT_SOURCE_IPV4_ADDRESS), Some(Ipv4Addr::new(198, 51, 100, 7)));
        assert_eq!(d.ipv4(ie::DESTINATION_IPV4_ADDRESS), Some(out_a));
        assert_eq!(d.uint(ie::DESTINATION_TRANSPORT_PORT), Some(40001));
        assert_eq!(d.ipv4(ie::POST_NAT_DESTINATION_IPV4_ADDRESS), Some(Ipv4Addr::new(100, 64, 0, 2)));
        assert_eq!(d.uint(ie::POST_NAPT_DESTINATION_TRANSPORT_PORT), Some(5000));
        let m = &recs[3];
        assert_eq!(
            (m.template, m.uint(ie::SOURCE_TRANSPORT_PORT), m.uint(ie::POST_NAPT_SOURCE_TRANSPORT_PORT)),
            (257, Some(80), Some(1080))
        );
        let b = &recs[5];
        assert_eq!(b.template, 258);
        assert_eq!(b.ipv4(ie::SOURCE_IPV4_ADDRESS), Some(in_a));
        assert_eq!(b.uint(ie::PORT_RANGE_START), Some(2048));
        assert_eq!(b.uint(ie::PORT_RANGE_END), Some(2111));
        assert_eq!(b.uint(ie::PORT_RANGE_STEP_SIZE), Some(1));
        assert_eq!(b.uint(ie::PORT_RANGE_NUM_PORTS), Some(64));
        assert_eq!((recs[7].template, recs[7].uint(ie::NAT_POOL_ID)), (259, Some(1)));
        assert_eq!((recs[8].template, recs[8].ipv4(ie::POST_NAT_SOURCE_IPV4_ADDRESS)), (260, Some(out_a)));
        assert_eq!(
            (recs[9].template, recs[9].uint(ie::NAT_QUOTA_EXCEEDED_EVENT), recs[9].uint(ie::MAX_SESSION_ENTRIES)),
            (261, Some(1), Some(1000))
        );
        assert_eq!((recs[10].template, recs[10].uint(ie::MAX_BIB_ENTRIES)), (262, Some(900)));
        let u = &recs[11];
        assert_eq!(
            (u.template, u.uint(ie::NAT_QUOTA_EXCEEDED_EVENT), u.uint(ie::MAX_ENTRIES_PER_USER)),
            (263, Some(3), Some(64))
        );
        assert_eq!(u.ipv4(ie::SOURCE_IPV4_ADDRESS), Some(in_a));
        assert_eq!((recs[12].template, recs[12].uint(ie::MAX_SUBSCRIBERS)), (264, Some(16)));
        assert!(!enc.encode(&NatEvent::quota(0, QuotaKind::None, 0, in_a), T0, T0, &mut |_| {}));
    }

    #[test]
    fn messages_stay_under_the_mtu_and_sequence_counts_records() {
        let mtu = 512;
        let mut enc = IpfixEncoder::new(1, mtu, 60_000).unwrap();
        let n = 1000u64;
        let msgs = collect(&mut enc, |e, out| {
            for i in 0..n {
                // Alternate templates now and then so sets open and close.
                let ev = if i % 7 == 0 {
                    NatEvent::block(
                        EventKind::BlockAllocate,
                        0,
                        [10, 0, 0, 1].into(),
                        [203, 0, 113, 1].into(),
                        1024,
                        64,
                    )
                } else {
                    session(EventKind::SessionCreate)
                };
                e.encode(&ev, T0 + i, T0, &mut |m| out(m));
            }
            e.flush(T0, &mut |m| out(m));
        });
        let mut c = Collector::default();
        let mut expected_seq = 0u64;
        let mut total = 0u64;
        for m in &msgs {
            assert!(m.len() <= mtu, "{} > {mtu}", m.len());
            let (h, recs) = c.message(m).unwrap();
            if !recs.is_empty() {
                assert_eq!(u64::from(h.sequence), expected_seq, "sequence = records sent before");
                // Full: another session record would not have fitted.
                expected_seq += recs.len() as u64;
            }
            for r in &recs {
                assert_eq!(r.uint(ie::OBSERVATION_TIME_MILLISECONDS), Some(T0 + total), "order kept");
                total += 1;
            }
        }
        assert_eq!(total, n);
        assert_eq!(enc.sequence() as u64, n);
        let data_msgs = msgs.len() - 1;
        assert!(data_msgs <= (n as usize * 38).div_ceil(mtu - 16 - 4 * 20), "messages are filled: {data_msgs}");
    }

    #[test]
    fn timers_send_templates_and_flush_within_a_second() {
        let mut enc = IpfixEncoder::new(1, 1400, 10_000).unwrap();
        let mut msgs = Vec::new();
        enc.poll(T0, &mut |m| msgs.push(m.to_vec()));
        assert_eq!(msgs.len(), 1, "templates at start");
        enc.encode(&session(EventKind::SessionCreate), T0, T0 + 100, &mut |m| msgs.push(m.to_vec()));
        enc.poll(T0 + 1099, &mut |m| msgs.push(m.to_vec()));
        assert_eq!(msgs.len(), 1, "not yet a second old");
        enc.poll(T0 + 1100, &mut |m| msgs.push(m.to_vec()));
        assert_eq!(msgs.len(), 2, "flushed after a second");
        enc.poll(T0 + 9_999, &mut |m| msgs.push(m.to_vec()));
        assert_eq!(msgs.len(), 2);
        enc.poll(T0 + 10_000, &mut |m| msgs.push(m.to_vec()));
        assert_eq!(msgs.len(), 3, "templates refreshed");
        assert_eq!(&msgs[2][16..18], &[0, 2]);
        assert_eq!(enc.counters().template_messages, 2);
        // A template refresh does not move the sequence.
        let mut c = Collector::default();
        assert_eq!(c.message(&msgs[2]).unwrap().0.sequence, 1);
    }

    /// docs/logging.md's figure: IPFIX bytes per 1 000 sessions (create + delete each).
    #[test]
    fn volume_per_1000_sessions() {
        let mut enc = IpfixEncoder::new(1, 1400, 60_000).unwrap();
        enc.send_templates(T0, &mut |_| {});
        let (mut bytes, mut msgs) = (0usize, 0usize);
        for kind in [EventKind::SessionCreate, EventKind::SessionDelete] {
            for _ in 0..1000 {
                enc.encode(&session(kind), T0, T0, &mut |m| {
                    bytes += m.len();
                    msgs += 1;
                });
            }
        }
        enc.flush(T0, &mut |m| {
            bytes += m.len();
            msgs += 1;
        });
        println!("IPFIX per 1000 sessions: {bytes} bytes in {msgs} messages");
        assert_eq!(msgs, 2000usize.div_ceil((1400 - 16 - 4) / 34));
        assert!((68_000..=70_000).contains(&bytes), "{bytes}");
    }

    #[test]
    fn mtu_is_checked() {
        assert_eq!(IpfixEncoder::new(1, 100, 1).err(), Some(IpfixError::Mtu(100)));
        assert!(IpfixEncoder::new(1, MIN_MTU, 1).is_ok());
        // The template message fits the smallest MTU.
        let mut enc = IpfixEncoder::new(1, MIN_MTU, 1).unwrap();
        enc.send_templates(0, &mut |m| assert!(m.len() <= MIN_MTU, "{}", m.len()));
    }
}
