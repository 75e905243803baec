//! IRC DCC (Direct Client-to-Client, carried in CTCP): the offer that names the
//! sender's own address.
//!
//! A client offering a file or a chat sends, through the server, a PRIVMSG whose text
//! is a CTCP message (delimited by `\x01`):
//!
//! ```text
//!   PRIVMSG bob :\x01DCC SEND report.pdf 1681915906 40000 123456\x01\r\n
//!   PRIVMSG bob :\x01DCC CHAT chat 1681915906 40000\x01\r\n
//! ```
//!
//! The address is the sender's IPv4 address as one decimal integer (1681915906 is
//! 100.64.0.2), the port a decimal TCP port the sender listens on; the peer connects
//! there. Behind a NAT the helper rewrites both to an external endpoint and opens an
//! expectation for the peer's connection (from any address: the peer is another IRC
//! user, unknown to the NAT). As Linux's `nf_conntrack_irc` does, only offers in a
//! PRIVMSG are considered, only `SEND`, `CHAT`, `MOVE`, `TSEND`, `SCHAT` and `SSEND`,
//! and only when the address is the inside host's own (the caller checks). A port of 0
//! is a "reverse"/passive DCC (the peer will offer instead): nothing to do.
//!
//! The filename may be quoted (`"my file.txt"`), as mIRC does. Pure functions; the
//! fuzz entry point is [`fuzz_lines`].

use core::ops::Range;
use std::io::Write;
use std::net::Ipv4Addr;

use super::super::key::Endpoint;

/// A DCC offer found in a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dcc {
    pub addr: Ipv4Addr,
    pub port: u16,
    /// The bytes [`format`] replaces: `<address> <port>` (with the spaces between).
    pub span: Range<usize>,
}

/// What a complete line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    Other,
    Found(Dcc),
    /// A DCC offer with port 0 (passive DCC): nothing to open, counted.
    Passive,
    /// A DCC offer of a known type that does not parse: passed, counted.
    Malformed,
}

const DCC_TYPES: [&[u8]; 6] = [b"SEND", b"CHAT", b"MOVE", b"TSEND", b"SCHAT", b"SSEND"];

fn starts_with_ci(b: &[u8], w: &[u8]) -> bool {
    b.len() >= w.len() && b[..w.len()].eq_ignore_ascii_case(w)
}

/// Skip an optional `:prefix ` (RFC 1459 §2.3.1) and return where the command starts.
fn command_at(line: &[u8]) -> Option<usize> {
    if line.first() != Some(&b':') {
        return Some(0);
    }
    let sp = line.iter().position(|c| *c == b' ')?;
    Some(sp + line[sp..].iter().take_while(|c| **c == b' ').count())
}

/// Whether an incomplete line may be a DCC offer: it is, or may still become, a
/// PRIVMSG. (Held back until complete if it fits the helper's buffer.)
pub fn candidate(partial: &[u8]) -> bool {
    // A prefix still being received: `:nick!user@host PRIV`.
    if partial.first() == Some(&b':') && !partial.contains(&b' ') {
        return true;
    }
    let Some(at) = command_at(partial) else { return true };
    let rest = &partial[at..];
    let n = rest.len().min(8);
    rest[..n].eq_ignore_ascii_case(&b"PRIVMSG "[..n])
}

fn digits(b: &[u8], at: usize) -> usize {
    b[at.min(b.len())..].iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Parse a complete line (terminator included).
pub fn parse_line(line: &[u8]) -> Parsed {
    let Some(at) = command_at(line) else { return Parsed::Other };
    if !starts_with_ci(&line[at..], b"PRIVMSG ") {
        return Parsed::Other;
    }
    let Some(ctcp) = line.windows(5).position(|w| w == b"\x01DCC ").map(|p| p + 5) else {
        return Parsed::Other;
    };
    let rest = &line[ctcp..];
    let Some(ty) = DCC_TYPES.iter().find(|t| starts_with_ci(rest, t) && rest.get(t.len()) == Some(&b' ')) else {
        return Parsed::Other;
    };
    // The argument (filename or "chat"), quoted or up to the next space.
    let mut i = ctcp + ty.len() + 1;
    i += line[i..].iter().take_while(|c| **c == b' ').count();
    if line.get(i) == Some(&b'"') {
        match line[i + 1..].iter().position(|c| *c == b'"') {
            Some(q) => i += q + 2,
            None => return Parsed::Malformed,
        }
    } else {
        i += line[i..].iter().take_while(|c| !matches!(**c, b' ' | b'\x01' | b'\r' | b'\n')).count();
    }
    let sp = line[i..].iter().take_while(|c| **c == b' ').count();
    if sp == 0 {
        return Parsed::Malformed;
    }
    let start = i + sp;
    let n = digits(line, start);
    let addr = match core::str::from_utf8(&line[start..start + n]).ok().and_then(|s| s.parse::<u32>().ok()) {
        Some(a) if n > 0 => a,
        _ => return Parsed::Malformed,
    };
    let mut j = start + n;
    let sp = line[j..].iter().take_while(|c| **c == b' ').count();
    j += sp;
    let m = digits(line, j);
    let port = match core::str::from_utf8(&line[j..j + m]).ok().and_then(|s| s.parse::<u16>().ok()) {
        Some(p) if sp > 0 && m > 0 => p,
        _ => return Parsed::Malformed,
    };
    let end = j + m;
    // The port ends at a space (size, token), the CTCP delimiter or the line's end.
    if !matches!(line.get(end), Some(b' ' | b'\x01' | b'\r' | b'\n')) {
        return Parsed::Malformed;
    }
    if port == 0 {
        return Parsed::Passive;
    }
    Parsed::Found(Dcc { addr: Ipv4Addr::from(addr), port, span: start..end })
}

/// The longest replacement [`format`] writes: `4294967295 65535`.
pub const FORMAT_MAX: usize = 16;

/// Write the replacement of `dcc.span` for external endpoint `ext`; returns its length.
pub fn format(ext: Endpoint, out: &mut [u8; FORMAT_MAX]) -> usize {
    let mut w = &mut out[..];
    let r = write!(w, "{} {}", u32::from(ext.addr), ext.port);
    debug_assert!(r.is_ok());
    FORMAT_MAX - w.len()
}

/// Fuzz entry point: must never panic; spans stay inside the line.
pub fn fuzz_lines(data: &[u8]) {
    for line in data.split_inclusive(|b| *b == b'\n') {
        let _ = candidate(line);
        if let Parsed::Found(d) = parse_line(line) {
            assert!(d.span.start <= d.span.end && d.span.end <= line.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn found(line: &[u8]) -> Dcc {
        match parse_line(line) {
            Parsed::Found(d) => d,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
        }
    }

    fn rewrite(line: &[u8], ext: Endpoint) -> Vec<u8> {
        let d = found(line);
        let mut out = [0u8; FORMAT_MAX];
        let n = format(ext, &mut out);
        [&line[..d.span.start], &out[..n], &line[d.span.end..]].concat()
    }

    const EXT: Endpoint = Endpoint::new(Ipv4Addr::new(203, 0, 113, 1), 1025);

    #[test]
    fn send_and_chat() {
        let l = b"PRIVMSG bob :\x01DCC SEND report.pdf 1681915906 40000 123456\x01\r\n";
        let d = found(l);
        assert_eq!((d.addr, d.port), (Ipv4Addr::new(100, 64, 0, 2), 40000));
        assert_eq!(rewrite(l, EXT), b"PRIVMSG bob :\x01DCC SEND report.pdf 3405803777 1025 123456\x01\r\n");
        let l = b":alice!a@h privmsg bob :\x01DCC CHAT chat 1681915906 40000\x01\r\n";
        assert_eq!(rewrite(l, EXT), b":alice!a@h privmsg bob :\x01DCC CHAT chat 3405803777 1025\x01\r\n");
        let l = b"PRIVMSG bob :\x01DCC SEND \"my report.pdf\" 1681915906 40000 9\x01\r\n";
        assert_eq!(found(l).port, 40000);
        assert_eq!(parse_line(b"PRIVMSG bob :\x01DCC SEND f 1681915906 0 9 77\x01\r\n"), Parsed::Passive);
    }

    #[test]
    fn not_offers() {
        for l in [
            &b"PRIVMSG bob :hello\r\n"[..],
            b"NOTICE bob :\x01DCC SEND f 1681915906 40000\x01\r\n",
            b"PRIVMSG bob :\x01DCC RESUME f 40000 100\x01\r\n",
            b"PRIVMSG bob :\x01VERSION\x01\r\n",
            b"PING :server\r\n",
            b":prefixonly\r\n",
        ] {
            assert_eq!(parse_line(l), Parsed::Other, "{l:?}");
        }
        for l in [
            &b"PRIVMSG bob :\x01DCC SEND f\x01\r\n"[..],
            b"PRIVMSG bob :\x01DCC SEND f 99999999999 1\x01\r\n",
            b"PRIVMSG bob :\x01DCC SEND f 1681915906 70000\x01\r\n",
            b"PRIVMSG bob :\x01DCC SEND f 1681915906 4x\x01\r\n",
            b"PRIVMSG bob :\x01DCC SEND \"unterminated 1 2\x01\r\n",
            b"PRIVMSG bob :\x01DCC CHAT chat ::1 40000\x01\r\n",
        ] {
            assert_eq!(parse_line(l), Parsed::Malformed, "{l:?}");
        }
    }

    #[test]
    fn candidates() {
        for p in [&b"P"[..], b"priv", b"PRIVMSG bob :\x01DC", b":nick!u@h", b":nick!u@h PRIVM"] {
            assert!(candidate(p), "{p:?}");
        }
        for p in [&b"PING"[..], b"JOIN #c", b":nick!u@h JOIN"] {
            assert!(!candidate(p), "{p:?}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_lines(data in prop::collection::vec(any::<u8>(), 0..200)) {
            fuzz_lines(&data);
        }

        #[test]
        fn round_trip(a in any::<u32>(), p in 1u16.., x in any::<u32>(), q in 1u16.., chat in any::<bool>()) {
            let line = if chat {
                format!("PRIVMSG bob :\x01DCC CHAT chat {a} {p}\x01\r\n")
            } else {
                format!("PRIVMSG bob :\x01DCC SEND file.bin {a} {p} 1000\x01\r\n")
            };
            let d = found(line.as_bytes());
            prop_assert_eq!((u32::from(d.addr), d.port), (a, p));
            let back = rewrite(line.as_bytes(), Endpoint::new(Ipv4Addr::from(x), q));
            let e = found(&back);
            prop_assert_eq!((u32::from(e.addr), e.port), (x, q));
        }
    }
}
