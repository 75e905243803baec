//! TFTP (RFC 1350): the request that makes the server answer from another port.
//!
//! RFC 1350 §4, "Initial Connection Protocol":
//!
//! > A transfer is established by sending a request (WRQ to write onto a foreign file
//! > system, or RRQ to read from it) ... The server's reply (a DATA packet or an ACK)
//! > comes from a newly chosen TID (port) to the client's port.
//!
//! §5, the request packet:
//!
//! ```text
//!   2 bytes     string    1 byte     string   1 byte
//!  ------------------------------------------------
//! | Opcode |  Filename  |   0  |    Mode    |   0  |
//!  ------------------------------------------------
//! ```
//!
//! with opcode 1 (RRQ) or 2 (WRQ). Behind a NAT the reply is a packet from a port the
//! client never sent to: endpoint-dependent filtering drops it, so the helper opens an
//! expectation for it when it sees the request. Nothing in the payload is rewritten.

/// A TFTP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// RRQ, opcode 1.
    Read,
    /// WRQ, opcode 2.
    Write,
}

/// What a datagram to the server port is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    Request(Request),
    /// Another opcode (an ERROR, or DATA/ACK to port 69 by mistake): no expectation.
    Other,
    /// Opcode 1 or 2 without a NUL-terminated filename and mode: counted, passed.
    Malformed,
}

/// Parse the UDP payload of a datagram sent to the TFTP server port.
pub fn parse(payload: &[u8]) -> Parsed {
    let request = match payload {
        [0, 1, ..] => Request::Read,
        [0, 2, ..] => Request::Write,
        _ => return Parsed::Other,
    };
    // Filename, NUL, mode, NUL; options (RFC 2347) may follow.
    let mut strings = payload[2..].split(|b| *b == 0);
    let (Some(name), Some(mode)) = (strings.next(), strings.next()) else { return Parsed::Malformed };
    // `split` yields a last piece after the final NUL; two NULs mean both pieces ended.
    let nuls = payload[2..].iter().filter(|b| **b == 0).count();
    let mode_ok = [&b"netascii"[..], b"octet", b"mail"].iter().any(|m| mode.eq_ignore_ascii_case(m));
    if name.is_empty() || nuls < 2 || !mode_ok {
        return Parsed::Malformed;
    }
    Parsed::Request(request)
}

/// Fuzz entry point: must never panic.
pub fn fuzz(data: &[u8]) {
    let _ = parse(data);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(parse(b"\0\x01hello.txt\0octet\0"), Parsed::Request(Request::Read));
        assert_eq!(parse(b"\0\x02up.bin\0NETASCII\0blksize\x001428\0"), Parsed::Request(Request::Write));
        assert_eq!(parse(b"\0\x03\0\x01data"), Parsed::Other);
        assert_eq!(parse(b"\0\x05\0\x01oops\0"), Parsed::Other);
        assert_eq!(parse(b""), Parsed::Other);
        assert_eq!(parse(b"\0"), Parsed::Other);
        for bad in [&b"\0\x01"[..], b"\0\x01file", b"\0\x01file\0octet", b"\0\x01\0octet\0", b"\0\x01f\0binary\0"] {
            assert_eq!(parse(bad), Parsed::Malformed, "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            fuzz(&data);
        }
    }
}
