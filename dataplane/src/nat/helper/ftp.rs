//! FTP (RFC 959, RFC 2428): the lines that carry an address.
//!
//! An FTP control connection tells the other side where to open the data connection.
//! Behind a NAT the address and port in that text are the inside host's and mean
//! nothing outside, so the helper rewrites them to the external endpoint it set up:
//!
//! | sender (inside)    | line                                              | rewritten                |
//! |--------------------|---------------------------------------------------|--------------------------|
//! | client (active)    | `PORT h1,h2,h3,h4,p1,p2` (RFC 959 §4.1.2)         | address and port         |
//! | client (active)    | `EPRT |1|a.b.c.d|port|` (RFC 2428 §2)             | address and port         |
//! | server (passive)   | `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)`    | address and port         |
//! | server (passive)   | `229 Entering Extended Passive Mode (|||port|)`   | port (there is no address) |
//!
//! RFC 959 §4.1.2 defines the host-port argument:
//!
//! > `PORT <SP> <host-port> <CRLF>` ... `<host-port> ::= <host-number>,<port-number>`,
//! > `<host-number> ::= <number>,<number>,<number>,<number>`,
//! > `<port-number> ::= <number>,<number>`, `<number> ::= any decimal integer 1 through 255`
//!
//! (0 is allowed in practice and here.) RFC 1123 §4.1.2.6 says of the 227 reply that
//! its format "is not specified": a client should "scan the reply for the first digit
//! of the host and port numbers", which is what [`parse_line`] does when there is no
//! parenthesis. RFC 2428 §2 gives EPRT its own delimiter:
//!
//! > `EPRT<space><d><net-prt><d><net-addr><d><tcp-port><d>` ... The network protocol
//! > (`<net-prt>`) 1 is IPv4, 2 is IPv6.
//!
//! and §3 the 229 reply: `229 Entering Extended Passive Mode (|||6446|)`.
//!
//! masq translates IPv4 only: `EPRT |2|...` is left alone and counted. Commands are
//! case-insensitive (RFC 959 §5.3: "The command codes ... may be in upper or lower
//! case"). Every function here is pure and never panics on any input; the fuzz entry
//! point is [`fuzz_lines`].

use core::ops::Range;
use std::io::Write;
use std::net::Ipv4Addr;

use super::super::key::Endpoint;

/// Who sends a line: the client sends commands, the server replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    Client,
    Server,
}

/// Which line was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FtpLine {
    /// `PORT` (active mode).
    Port,
    /// `EPRT |1|` (extended active mode, IPv4).
    Eprt,
    /// `227` (reply to `PASV`).
    Pasv,
    /// `229` (reply to `EPSV`).
    Epsv,
}

impl FtpLine {
    pub const fn name(self) -> &'static str {
        match self {
            FtpLine::Port => "PORT",
            FtpLine::Eprt => "EPRT",
            FtpLine::Pasv => "227",
            FtpLine::Epsv => "229",
        }
    }
}

/// An address-carrying line: what it says and which bytes say it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub line: FtpLine,
    /// The address in the text; `None` for 229, which names only a port.
    pub addr: Option<Ipv4Addr>,
    pub port: u16,
    /// The bytes [`format`] replaces: `h1,...,p2` (PORT, 227), `a.b.c.d<d>port`
    /// (EPRT), `port` (229).
    pub span: Range<usize>,
    /// EPRT's delimiter.
    pub delim: u8,
}

/// What a complete line is, for the helper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Nothing to translate.
    Other,
    Found(Found),
    /// Looks like one of the four but does not parse: passed unmodified, counted.
    Malformed(FtpLine),
    /// `EPRT |2|...` (IPv6): left alone, counted.
    Ipv6,
}

const fn lower(b: u8) -> u8 {
    b.to_ascii_lowercase()
}

/// `line` starts with `word` (ASCII, case-insensitive).
fn starts_with_ci(line: &[u8], word: &[u8]) -> bool {
    line.len() >= word.len() && line.iter().zip(word).all(|(a, b)| lower(*a) == lower(*b))
}

/// `partial` (a line not yet complete) is a case-insensitive prefix of `word` or
/// starts with it.
fn may_become(partial: &[u8], word: &[u8]) -> bool {
    let n = partial.len().min(word.len());
    starts_with_ci(&partial[..n], &word[..n])
}

/// Prefixes of the lines `sender` may have to translate.
const fn words(sender: Sender) -> [&'static [u8]; 2] {
    match sender {
        Sender::Client => [b"PORT ", b"EPRT "],
        Sender::Server => [b"227 ", b"229 "],
    }
}

/// Whether an incomplete line (no end of line yet) may turn out to need translation:
/// then the helper holds it back until the rest arrives (if it fits its buffer).
pub fn candidate(sender: Sender, partial: &[u8]) -> bool {
    words(sender).iter().any(|w| may_become(partial, w))
}

/// The end of a line: optional spaces, then CRLF or LF, then nothing.
fn at_eol(rest: &[u8]) -> bool {
    let t = rest.iter().position(|b| *b != b' ').map_or(&rest[rest.len()..], |i| &rest[i..]);
    matches!(t, b"\r\n" | b"\n")
}

/// A decimal number of 1 to `max_digits` digits at `at`, no larger than `max`:
/// (value, end).
fn number(b: &[u8], at: usize, max_digits: usize, max: u32) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    let mut i = at;
    while i < b.len() && b[i].is_ascii_digit() && i - at < max_digits {
        v = v * 10 + u32::from(b[i] - b'0');
        i += 1;
    }
    // One digit more than allowed means the number is too long.
    if i == at || (i < b.len() && b[i].is_ascii_digit()) || v > max {
        return None;
    }
    Some((v, i))
}

/// Six comma-separated numbers 0-255 at `at` (RFC 959 host-port): (address, port, end).
fn host_port(b: &[u8], at: usize) -> Option<(Ipv4Addr, u16, usize)> {
    let mut n = [0u8; 6];
    let mut i = at;
    for (k, slot) in n.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b',') {
                return None;
            }
            i += 1;
        }
        let (v, end) = number(b, i, 3, 255)?;
        *slot = v as u8;
        i = end;
    }
    let port = u16::from_be_bytes([n[4], n[5]]);
    Some((Ipv4Addr::new(n[0], n[1], n[2], n[3]), port, i))
}

/// A dotted quad at `at`: (address, end).
fn dotted(b: &[u8], at: usize) -> Option<(Ipv4Addr, usize)> {
    let mut o = [0u8; 4];
    let mut i = at;
    for (k, slot) in o.iter_mut().enumerate() {
        if k > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let (v, end) = number(b, i, 3, 255)?;
        *slot = v as u8;
        i = end;
    }
    Some((Ipv4Addr::from(o), i))
}

/// Skip one or more spaces at `at`.
fn spaces(b: &[u8], at: usize) -> Option<usize> {
    let n = b[at.min(b.len())..].iter().take_while(|c| **c == b' ').count();
    (n > 0).then_some(at + n)
}

fn port_cmd(line: &[u8]) -> Parsed {
    let bad = Parsed::Malformed(FtpLine::Port);
    let Some(at) = spaces(line, 4) else { return bad };
    match host_port(line, at) {
        Some((addr, port, end)) if port != 0 && at_eol(&line[end..]) => {
            Parsed::Found(Found { line: FtpLine::Port, addr: Some(addr), port, span: at..end, delim: b',' })
        }
        _ => bad,
    }
}

fn eprt_cmd(line: &[u8]) -> Parsed {
    let bad = Parsed::Malformed(FtpLine::Eprt);
    let Some(at) = spaces(line, 4) else { return bad };
    // RFC 2428: the delimiter is any character in the range 33-126.
    let Some(&d) = line.get(at).filter(|c| (33..=126).contains(*c) && !c.is_ascii_digit()) else { return bad };
    let af = line.get(at + 1..at + 3);
    if af == Some(&[b'2', d][..]) {
        return Parsed::Ipv6;
    }
    if af != Some(&[b'1', d][..]) {
        return bad;
    }
    let start = at + 3;
    let Some((addr, end)) = dotted(line, start) else { return bad };
    if line.get(end) != Some(&d) {
        return bad;
    }
    let Some((port, pend)) = number(line, end + 1, 5, 65535) else { return bad };
    if port == 0 || line.get(pend) != Some(&d) || !at_eol(&line[pend + 1..]) {
        return bad;
    }
    Parsed::Found(Found { line: FtpLine::Eprt, addr: Some(addr), port: port as u16, span: start..pend, delim: d })
}

fn pasv_reply(line: &[u8]) -> Parsed {
    let bad = Parsed::Malformed(FtpLine::Pasv);
    let text = &line[4..];
    // The numbers follow the first '(' if there is one, else the first digit
    // (RFC 1123 §4.1.2.6).
    let at = match text.iter().position(|c| *c == b'(') {
        Some(p) => 4 + p + 1,
        None => match text.iter().position(u8::is_ascii_digit) {
            Some(p) => 4 + p,
            None => return bad,
        },
    };
    match host_port(line, at) {
        Some((addr, port, end)) if port != 0 => {
            Parsed::Found(Found { line: FtpLine::Pasv, addr: Some(addr), port, span: at..end, delim: b',' })
        }
        _ => bad,
    }
}

fn epsv_reply(line: &[u8]) -> Parsed {
    let bad = Parsed::Malformed(FtpLine::Epsv);
    let Some(open) = line[4..].iter().position(|c| *c == b'(').map(|p| 4 + p) else { return bad };
    let Some(&d) = line.get(open + 1).filter(|c| (33..=126).contains(*c) && !c.is_ascii_digit()) else { return bad };
    if line.get(open + 2) != Some(&d) || line.get(open + 3) != Some(&d) {
        return bad;
    }
    let start = open + 4;
    let Some((port, end)) = number(line, start, 5, 65535) else { return bad };
    if port == 0 || line.get(end) != Some(&d) || line.get(end + 1) != Some(&b')') {
        return bad;
    }
    Parsed::Found(Found { line: FtpLine::Epsv, addr: None, port: port as u16, span: start..end, delim: d })
}

/// Parse one complete line (terminator included) sent by `sender`.
pub fn parse_line(sender: Sender, line: &[u8]) -> Parsed {
    match sender {
        Sender::Client if starts_with_ci(line, b"PORT ") => port_cmd(line),
        Sender::Client if starts_with_ci(line, b"EPRT ") => eprt_cmd(line),
        Sender::Server if line.starts_with(b"227 ") => pasv_reply(line),
        Sender::Server if line.starts_with(b"229 ") => epsv_reply(line),
        _ => Parsed::Other,
    }
}

/// The longest replacement [`format`] writes (`255,255,255,255,255,255`: 23 bytes).
pub const FORMAT_MAX: usize = 24;

/// Write the replacement of `found.span` for external endpoint `ext` into `out`;
/// returns its length.
pub fn format(found: &Found, ext: Endpoint, out: &mut [u8; FORMAT_MAX]) -> usize {
    let mut w = &mut out[..];
    let [a, b, c, d] = ext.addr.octets();
    let [p1, p2] = ext.port.to_be_bytes();
    // Cannot fail: every form fits FORMAT_MAX.
    let r = match found.line {
        FtpLine::Port | FtpLine::Pasv => write!(w, "{a},{b},{c},{d},{p1},{p2}"),
        FtpLine::Eprt => write!(w, "{a}.{b}.{c}.{d}{}{}", found.delim as char, ext.port),
        FtpLine::Epsv => write!(w, "{}", ext.port),
    };
    debug_assert!(r.is_ok());
    FORMAT_MAX - w.len()
}

/// Fuzz entry point: split `data` into lines and run every parser and formatter on
/// them (and the candidate check on every prefix), checking the spans they report.
/// Must never panic.
pub fn fuzz_lines(data: &[u8]) {
    for line in data.split_inclusive(|b| *b == b'\n') {
        for sender in [Sender::Client, Sender::Server] {
            for n in 0..=line.len().min(16) {
                let _ = candidate(sender, &line[..n]);
            }
            if let Parsed::Found(f) = parse_line(sender, line) {
                assert!(f.span.start <= f.span.end && f.span.end <= line.len());
                let mut out = [0u8; FORMAT_MAX];
                let n = format(&f, Endpoint::new(Ipv4Addr::BROADCAST, u16::MAX), &mut out);
                assert!(n <= FORMAT_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(sender: Sender, line: &[u8]) -> Found {
        match parse_line(sender, line) {
            Parsed::Found(f) => f,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    fn rewrite(sender: Sender, line: &[u8], ext: Endpoint) -> Vec<u8> {
        let f = found(sender, line);
        let mut out = [0u8; FORMAT_MAX];
        let n = format(&f, ext, &mut out);
        [&line[..f.span.start], &out[..n], &line[f.span.end..]].concat()
    }

    const EXT: Endpoint = Endpoint::new(Ipv4Addr::new(203, 0, 113, 1), 1025);

    #[test]
    fn port() {
        let f = found(Sender::Client, b"PORT 100,64,0,2,156,64\r\n");
        assert_eq!((f.addr, f.port), (Some(Ipv4Addr::new(100, 64, 0, 2)), 40000));
        assert_eq!(rewrite(Sender::Client, b"PORT 100,64,0,2,156,64\r\n", EXT), b"PORT 203,0,113,1,4,1\r\n");
        // Lower case, several spaces, bare LF, trailing spaces.
        assert_eq!(rewrite(Sender::Client, b"port  10,0,0,1,0,21  \n", EXT), b"port  203,0,113,1,4,1  \n");
        for bad in [
            &b"PORT 100,64,0,2,156\r\n"[..],
            b"PORT 100,64,0,2,156,64,1\r\n",
            b"PORT 256,64,0,2,156,64\r\n",
            b"PORT 100,64,0,2,1560,64\r\n",
            b"PORT 100,64,0,2,0,0\r\n",
            b"PORT 100,64,0,2,156,64 junk\r\n",
            b"PORT 100, 64,0,2,156,64\r\n",
            b"PORT  \r\n",
            b"PORT 100,64,0,2,156,64",
        ] {
            assert_eq!(parse_line(Sender::Client, bad), Parsed::Malformed(FtpLine::Port), "{bad:?}");
        }
        // Not a PORT command at all; and servers do not send PORT.
        assert_eq!(parse_line(Sender::Client, b"PORTS 1\r\n"), Parsed::Other);
        assert_eq!(parse_line(Sender::Server, b"PORT 1,2,3,4,5,6\r\n"), Parsed::Other);
    }

    #[test]
    fn eprt() {
        let f = found(Sender::Client, b"EPRT |1|100.64.0.2|40000|\r\n");
        assert_eq!((f.addr, f.port, f.delim), (Some(Ipv4Addr::new(100, 64, 0, 2)), 40000, b'|'));
        assert_eq!(rewrite(Sender::Client, b"EPRT |1|100.64.0.2|40000|\r\n", EXT), b"EPRT |1|203.0.113.1|1025|\r\n");
        // Another delimiter (RFC 2428 allows any of 33-126).
        assert_eq!(rewrite(Sender::Client, b"eprt !1!10.0.0.1!21!\r\n", EXT), b"eprt !1!203.0.113.1!1025!\r\n");
        assert_eq!(parse_line(Sender::Client, b"EPRT |2|1080::8:800:200C:417A|5282|\r\n"), Parsed::Ipv6);
        for bad in [
            &b"EPRT |3|1.2.3.4|5|\r\n"[..],
            b"EPRT |1|1.2.3|5|\r\n",
            b"EPRT |1|1.2.3.4|70000|\r\n",
            b"EPRT |1|1.2.3.4|0|\r\n",
            b"EPRT |1|1.2.3.4|5\r\n",
            b"EPRT |1!1.2.3.4!5!\r\n",
            b"EPRT 111.2.3.4151\r\n",
            b"EPRT  \r\n",
        ] {
            assert_eq!(parse_line(Sender::Client, bad), Parsed::Malformed(FtpLine::Eprt), "{bad:?}");
        }
    }

    #[test]
    fn pasv_reply() {
        let l = b"227 Entering Passive Mode (100,64,0,2,117,48).\r\n";
        let f = found(Sender::Server, l);
        assert_eq!((f.addr, f.port), (Some(Ipv4Addr::new(100, 64, 0, 2)), 30000));
        assert_eq!(rewrite(Sender::Server, l, EXT), b"227 Entering Passive Mode (203,0,113,1,4,1).\r\n");
        // No parenthesis: the first digit (RFC 1123).
        let l = b"227 Entering Passive Mode 100,64,0,2,117,48\r\n";
        assert_eq!(rewrite(Sender::Server, l, EXT), b"227 Entering Passive Mode 203,0,113,1,4,1\r\n");
        assert_eq!(parse_line(Sender::Server, b"227 Entering Passive Mode\r\n"), Parsed::Malformed(FtpLine::Pasv));
        assert_eq!(parse_line(Sender::Server, b"227 (1,2,3,4,5)\r\n"), Parsed::Malformed(FtpLine::Pasv));
        // Another reply, a multi-line reply's first line, and a client "227".
        assert_eq!(parse_line(Sender::Server, b"226 Transfer complete.\r\n"), Parsed::Other);
        assert_eq!(parse_line(Sender::Server, b"227-Entering (1,2,3,4,5,6)\r\n"), Parsed::Other);
        assert_eq!(parse_line(Sender::Client, b"227 (1,2,3,4,5,6)\r\n"), Parsed::Other);
    }

    #[test]
    fn epsv_reply() {
        let l = b"229 Entering Extended Passive Mode (|||30000|)\r\n";
        let f = found(Sender::Server, l);
        assert_eq!((f.addr, f.port), (None, 30000));
        assert_eq!(rewrite(Sender::Server, l, EXT), b"229 Entering Extended Passive Mode (|||1025|)\r\n");
        for bad in [
            &b"229 Entering Extended Passive Mode (||30000|)\r\n"[..],
            b"229 Entering Extended Passive Mode (|||30000)\r\n",
            b"229 Entering Extended Passive Mode (|||99999|)\r\n",
            b"229 Entering Extended Passive Mode (|!|30000|)\r\n",
            b"229 Entering Extended Passive Mode\r\n",
        ] {
            assert_eq!(parse_line(Sender::Server, bad), Parsed::Malformed(FtpLine::Epsv), "{bad:?}");
        }
    }

    #[test]
    fn candidates() {
        for p in [&b""[..], b"P", b"po", b"PORT", b"PORT ", b"PORT 100,64,", b"e", b"EPRT |1|"] {
            assert!(candidate(Sender::Client, p), "{p:?}");
        }
        for p in [&b"R"[..], b"RETR file", b"PASV", b"PORTS", b"227 "] {
            assert!(!candidate(Sender::Client, p), "{p:?}");
        }
        for p in [&b"2"[..], b"22", b"227", b"227 Entering", b"229 Entering Ext"] {
            assert!(candidate(Sender::Server, p), "{p:?}");
        }
        for p in [&b"226 "[..], b"150 Opening", b"2270"] {
            assert!(!candidate(Sender::Server, p), "{p:?}");
        }
    }

    #[test]
    fn longest_replacement_fits() {
        let ext = Endpoint::new(Ipv4Addr::new(255, 255, 255, 255), 65535);
        for line in [&b"PORT 1,2,3,4,5,6\r\n"[..], b"EPRT |1|1.2.3.4|5|\r\n", b"229 (|||5|)\r\n"] {
            let sender = if line[0] == b'2' { Sender::Server } else { Sender::Client };
            let f = found(sender, line);
            let mut out = [0u8; FORMAT_MAX];
            assert!(format(&f, ext, &mut out) <= FORMAT_MAX);
        }
    }

    proptest! {
        /// Whatever the bytes, parsing never panics, spans stay in the line, and a
        /// found line rewritten to its own endpoint parses back to that endpoint.
        #[test]
        fn arbitrary_lines(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_lines(&data);
        }

        #[test]
        fn rewrites_round_trip(a in any::<[u8; 4]>(), p in 1u16.., x in any::<[u8; 4]>(), q in 1u16.., which in 0usize..4) {
            let inside = Endpoint::new(Ipv4Addr::from(a), p);
            let ext = Endpoint::new(Ipv4Addr::from(x), q);
            let [p1, p2] = p.to_be_bytes();
            let (sender, line) = match which {
                0 => (Sender::Client, format!("PORT {},{},{},{},{p1},{p2}\r\n", a[0], a[1], a[2], a[3])),
                1 => (Sender::Client, format!("EPRT |1|{}|{p}|\r\n", inside.addr)),
                2 => (Sender::Server, format!("227 Entering Passive Mode ({},{},{},{},{p1},{p2})\r\n", a[0], a[1], a[2], a[3])),
                _ => (Sender::Server, format!("229 Entering Extended Passive Mode (|||{p}|)\r\n")),
            };
            let f = found(sender, line.as_bytes());
            prop_assert_eq!(f.port, p);
            if which < 3 {
                prop_assert_eq!(f.addr, Some(inside.addr));
            }
            let back = rewrite(sender, line.as_bytes(), ext);
            let g = found(sender, &back);
            prop_assert_eq!(g.port, q);
            if which < 3 {
                prop_assert_eq!(g.addr, Some(ext.addr));
            }
        }
    }
}
