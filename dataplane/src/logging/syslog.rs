//! Syslog (RFC 5424) lines for NAT events, one per event, one UDP datagram each
//! (RFC 5426).
//!
//! Sans-I/O: [`SyslogFormatter::format`] writes one line into a caller's `String`.
//! The layout follows what CGN syslog carries (VPP's `nat_syslog.c`, after the
//! behave WG's NAT syslog draft): the event name is the MSGID and the translation is a
//! structured-data element, so a line is compact and machine-parsable:
//!
//! ```text
//! <134>1 2026-12-06T07:44:56.067Z cgn1 masqd 4242 SADD [nsess IATYP="IPv4" ISADDR="100.64.0.2" ISPORT="5000" XATYP="IPv4" XSADDR="203.0.113.1" XSPORT="40001" PROTO="17" XDADDR="198.51.100.7" XDPORT="53"]
//! <134>1 2026-12-06T07:44:56.067Z cgn1 masqd 4242 APMADD [napmap IATYP="IPv4" ISADDR="100.64.0.2" ISPORT="5000" XATYP="IPv4" XSADDR="203.0.113.1" XSPORT="40001" PROTO="17"]
//! <134>1 2026-12-06T07:44:56.067Z cgn1 masqd 4242 PBADD [nblock IATYP="IPv4" ISADDR="100.64.0.2" XATYP="IPv4" XSADDR="203.0.113.1" XSPORT="2048" XEPORT="2111"]
//! <132>1 2026-12-06T07:44:56.067Z cgn1 masqd 4242 QEXC [nquota QUOTA="max-entries-per-user" LIMIT="64" ISADDR="100.64.0.2"]
//! ```
//!
//! | MSGID   | natEvent | SD-ID    | parameters                                                  |
//! |---------|---------:|----------|-------------------------------------------------------------|
//! | SADD, SDEL | 4, 5  | `nsess`  | IATYP ISADDR ISPORT XATYP XSADDR XSPORT PROTO XDADDR XDPORT (+ `DNAT="1"` for a port forward: IS* is the server, XS* the forwarded endpoint, XD* the client) |
//! | APMADD, APMDEL | 8, 9 | `napmap` | IATYP ISADDR ISPORT XATYP XSADDR XSPORT PROTO          |
//! | PBADD, PBDEL | 16, 17 | `nblock` | IATYP ISADDR XATYP XSADDR XSPORT (first) XEPORT (last)     |
//! | PEXH    | 12       | `nexh`   | XSADDR PROTO ISADDR (the subscriber that found no port)     |
//! | AEXH    | 3        | `nexh`   | POOL ADDRS (pool size)                                      |
//! | QEXC    | 13       | `nquota` | QUOTA (max-sessions, max-mappings, max-entries-per-user, max-subscribers) LIMIT [ISADDR] |
//!
//! Severity is informational (6) for translations and warning (4) for exhaustion and
//! quota events; the facility is configured (`local0` by default). The timestamp is
//! the event's, in UTC with milliseconds. PROCID is masqd's process id.

use std::fmt::Write;
use std::net::Ipv4Addr;

use super::event::{EventKind, NatEvent, QuotaKind};

/// Syslog facilities by name (RFC 5424 §6.2.1).
pub const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The facility code for a name such as `local0`.
pub fn facility(name: &str) -> Option<u8> {
    FACILITIES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

const SEVERITY_WARNING: u8 = 4;
const SEVERITY_INFO: u8 = 6;

/// Formats NAT events as RFC 5424 lines.
#[derive(Clone, Debug)]
pub struct SyslogFormatter {
    facility: u8,
    hostname: String,
    procid: u32,
}

impl SyslogFormatter {
    /// `hostname` is sanitised to RFC 5424's PRINTUSASCII (at most 255 characters;
    /// empty becomes `-`).
    pub fn new(facility: u8, hostname: &str, procid: u32) -> SyslogFormatter {
        let mut h: String = hostname.chars().filter(|c| ('!'..='~').contains(c)).take(255).collect();
        if h.is_empty() {
            h.push('-');
        }
        SyslogFormatter { facility: facility.min(23), hostname: h, procid }
    }

    /// Write the line of `ev`, which happened at wall-clock `event_ms`, into `out`
    /// (cleared first). No trailing newline: one datagram is one message.
    pub fn format(&self, ev: &NatEvent, event_ms: u64, out: &mut String) {
        out.clear();
        let severity = match ev.kind {
            EventKind::AddressesExhausted | EventKind::PortsExhausted | EventKind::QuotaExceeded => SEVERITY_WARNING,
            _ => SEVERITY_INFO,
        };
        let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(event_ms);
        let _ = write!(
            out,
            "<{}>1 {} {} masqd {} {} ",
            u32::from(self.facility) * 8 + u32::from(severity),
            humantime::format_rfc3339_millis(time),
            self.hostname,
            self.procid,
            ev.kind.name()
        );
        let a = |v: u32| Ipv4Addr::from(v);
        let _ = match ev.kind {
            EventKind::SessionCreate | EventKind::SessionDelete => write!(
                out,
                "[nsess IATYP=\"IPv4\" ISADDR=\"{}\" ISPORT=\"{}\" XATYP=\"IPv4\" XSADDR=\"{}\" XSPORT=\"{}\" PROTO=\"{}\" \
                 XDADDR=\"{}\" XDPORT=\"{}\"{}]",
                a(ev.inside_addr),
                ev.inside_port,
                a(ev.outside_addr),
                ev.outside_port,
                ev.proto,
                a(ev.remote_addr),
                ev.remote_port,
                if ev.dest_nat { " DNAT=\"1\"" } else { "" }
            ),
            EventKind::MappingCreate | EventKind::MappingDelete => write!(
                out,
                "[napmap IATYP=\"IPv4\" ISADDR=\"{}\" ISPORT=\"{}\" XATYP=\"IPv4\" XSADDR=\"{}\" XSPORT=\"{}\" PROTO=\"{}\"]",
                a(ev.inside_addr),
                ev.inside_port,
                a(ev.outside_addr),
                ev.outside_port,
                ev.proto
            ),
            EventKind::BlockAllocate | EventKind::BlockRelease => write!(
                out,
                "[nblock IATYP=\"IPv4\" ISADDR=\"{}\" XATYP=\"IPv4\" XSADDR=\"{}\" XSPORT=\"{}\" XEPORT=\"{}\"]",
                a(ev.inside_addr),
                a(ev.outside_addr),
                ev.outside_port,
                ev.block_end()
            ),
            EventKind::PortsExhausted => write!(
                out,
                "[nexh XSADDR=\"{}\" PROTO=\"{}\" ISADDR=\"{}\"]",
                a(ev.outside_addr),
                ev.proto,
                a(ev.inside_addr)
            ),
            EventKind::AddressesExhausted => {
                write!(out, "[nexh POOL=\"{}\" ADDRS=\"{}\"]", super::ipfix::POOL_ID, ev.limit)
            }
            EventKind::QuotaExceeded => {
                let _ = write!(out, "[nquota QUOTA=\"{}\" LIMIT=\"{}\"", ev.quota.name(), ev.limit);
                if ev.quota == QuotaKind::MaxEntriesPerUser {
                    let _ = write!(out, " ISADDR=\"{}\"", a(ev.inside_addr));
                }
                write!(out, "]")
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::{Endpoint, Proto};
    use syslog_loose::{parse_message, ProcId, Protocol, SyslogFacility, SyslogSeverity, Variant};

    const T: u64 = 1_796_543_096_067; // 2026-12-06T07:44:56.067Z

    fn ep(a: [u8; 4], p: u16) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(a), p)
    }

    fn params(line: &str) -> (String, Vec<(String, String)>) {
        let m = parse_message(line, Variant::RFC5424);
        assert_eq!(m.protocol, Protocol::RFC5424(1), "{line}");
        let sd = m.structured_data.first().unwrap_or_else(|| panic!("no SD in {line}"));
        (sd.id.to_string(), sd.params().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn session_line_parses_back() {
        let f = SyslogFormatter::new(facility("local0").unwrap(), "cgn1", 4242);
        let ev = NatEvent::session(
            EventKind::SessionCreate,
            0,
            Proto::Udp,
            ep([100, 64, 0, 2], 5000),
            ep([203, 0, 113, 1], 40001),
            ep([198, 51, 100, 7], 53),
        );
        let mut line = String::new();
        f.format(&ev, T, &mut line);
        assert_eq!(
            line,
            "<134>1 2026-12-06T07:44:56.067Z cgn1 masqd 4242 SADD [nsess IATYP=\"IPv4\" ISADDR=\"100.64.0.2\" \
             ISPORT=\"5000\" XATYP=\"IPv4\" XSADDR=\"203.0.113.1\" XSPORT=\"40001\" PROTO=\"17\" \
             XDADDR=\"198.51.100.7\" XDPORT=\"53\"]"
        );
        let m = parse_message(&line, Variant::RFC5424);
        assert_eq!(m.facility, Some(SyslogFacility::LOG_LOCAL0));
        assert_eq!(m.severity, Some(SyslogSeverity::SEV_INFO));
        assert_eq!(m.hostname, Some("cgn1"));
        assert_eq!(m.appname, Some("masqd"));
        assert_eq!(m.procid, Some(ProcId::PID(4242)));
        assert_eq!(m.msgid, Some("SADD"));
        assert_eq!(m.timestamp.unwrap().timestamp_millis(), T as i64);
        let (id, p) = params(&line);
        assert_eq!(id, "nsess");
        let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("ISADDR"), Some("100.64.0.2"));
        assert_eq!(get("XSPORT"), Some("40001"));
        assert_eq!(get("DNAT"), None);
        let mut dnat = String::new();
        f.format(&ev.as_dest_nat(), T, &mut dnat);
        assert!(params(&dnat).1.contains(&("DNAT".into(), "1".into())), "{dnat}");
    }

    #[test]
    fn every_kind_has_a_parsable_line() {
        let f = SyslogFormatter::new(facility("daemon").unwrap(), "host with spaces", 1);
        let in_a = Ipv4Addr::new(100, 64, 0, 9);
        let out_a = Ipv4Addr::new(203, 0, 113, 1);
        type Case<'a> = (NatEvent, &'a str, &'a str, Vec<(&'a str, &'a str)>);
        let cases: Vec<Case> = vec![
            (
                NatEvent::session(
                    EventKind::SessionDelete,
                    0,
                    Proto::Tcp,
                    ep([1, 2, 3, 4], 1),
                    ep([5, 6, 7, 8], 2),
                    ep([9, 9, 9, 9], 3),
                ),
                "SDEL",
                "nsess",
                vec![("PROTO", "6"), ("XDPORT", "3")],
            ),
            (
                NatEvent::mapping(
                    EventKind::MappingCreate,
                    0,
                    Proto::Udp,
                    ep([100, 64, 0, 2], 5000),
                    ep([203, 0, 113, 1], 40001),
                ),
                "APMADD",
                "napmap",
                vec![("ISPORT", "5000"), ("XSADDR", "203.0.113.1")],
            ),
            (
                NatEvent::mapping(
                    EventKind::MappingDelete,
                    0,
                    Proto::Udp,
                    ep([100, 64, 0, 2], 5000),
                    ep([203, 0, 113, 1], 40001),
                ),
                "APMDEL",
                "napmap",
                vec![("PROTO", "17")],
            ),
            (
                NatEvent::block(EventKind::BlockAllocate, 0, in_a, out_a, 2048, 64),
                "PBADD",
                "nblock",
                vec![("ISADDR", "100.64.0.9"), ("XSPORT", "2048"), ("XEPORT", "2111")],
            ),
            (NatEvent::block(EventKind::BlockRelease, 0, in_a, out_a, 2048, 64), "PBDEL", "nblock", vec![]),
            (NatEvent::ports_exhausted(0, Proto::Udp, in_a, out_a), "PEXH", "nexh", vec![("XSADDR", "203.0.113.1")]),
            (NatEvent::addresses_exhausted(0, out_a, 4), "AEXH", "nexh", vec![("ADDRS", "4")]),
            (
                NatEvent::quota(0, QuotaKind::MaxEntriesPerUser, 64, in_a),
                "QEXC",
                "nquota",
                vec![("QUOTA", "max-entries-per-user"), ("LIMIT", "64"), ("ISADDR", "100.64.0.9")],
            ),
            (NatEvent::quota(0, QuotaKind::MaxSessions, 1000, in_a), "QEXC", "nquota", vec![("QUOTA", "max-sessions")]),
        ];
        let mut line = String::new();
        for (ev, msgid, sd, want) in cases {
            f.format(&ev, T, &mut line);
            assert!(!line.contains('\n'));
            let m = parse_message(&line, Variant::RFC5424);
            assert_eq!(m.msgid, Some(msgid), "{line}");
            assert_eq!(m.hostname, Some("hostwithspaces"));
            assert_eq!(m.facility, Some(SyslogFacility::LOG_DAEMON));
            let warn =
                matches!(ev.kind, EventKind::QuotaExceeded | EventKind::PortsExhausted | EventKind::AddressesExhausted);
            assert_eq!(m.severity, Some(if warn { SyslogSeverity::SEV_WARNING } else { SyslogSeverity::SEV_INFO }));
            let (id, p) = params(&line);
            assert_eq!(id, sd, "{line}");
            for (k, v) in want {
                assert!(p.contains(&(k.to_string(), v.to_string())), "{k}={v} in {line}");
            }
        }
        // A quota that is not per user names no subscriber.
        f.format(&NatEvent::quota(0, QuotaKind::MaxSubscribers, 9, in_a), T, &mut line);
        assert!(!line.contains("ISADDR"), "{line}");
    }

    #[test]
    fn facilities_and_hostnames() {
        assert_eq!(facility("local7"), Some(23));
        assert_eq!(facility("nope"), None);
        let f = SyslogFormatter::new(16, "", 1);
        let mut line = String::new();
        f.format(&NatEvent::addresses_exhausted(0, Ipv4Addr::UNSPECIFIED, 1), 0, &mut line);
        assert!(line.starts_with("<132>1 1970-01-01T00:00:00.000Z - masqd 1 AEXH "), "{line}");
    }
}
