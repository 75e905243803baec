//! ICMP for IPv4 (RFC 792), and the builder for the ICMP errors a router sends
//! (RFC 1812 §4.3).
//!
//! RFC 792, message formats (Echo, then Destination Unreachable / Time Exceeded):
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Identifier          |        Sequence Number        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Data ...
//! +-+-+-+-+-
//!
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |     Type      |     Code      |          Checksum             |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                             unused                            |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      Internet Header + 64 bits of Original Data Datagram      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! > Checksum: The checksum is the 16-bit ones's complement of the one's complement sum
//! > of the ICMP message starting with the ICMP Type. For computing the checksum, the
//! > checksum field should be zero.
//!
//! For "fragmentation needed and DF set", RFC 1191 §4 puts the Next-Hop MTU in the low
//! 16 bits of the "unused" word. ICMP has no length field: the message is the whole
//! buffer, which must be the IPv4 payload.

use core::fmt;
use std::net::Ipv4Addr;

use super::checksum::{self, Delta};
use super::ipv4::{self, IpProtocol, Ipv4Packet, Ipv4Repr};
use super::{Error, Result};

enum_with_unknown! {
    /// The ICMP Type field.
    pub enum Icmpv4Message(u8) {
        /// 0.
        EchoReply = 0,
        /// 3.
        DstUnreachable = 3,
        /// 5.
        Redirect = 5,
        /// 8.
        EchoRequest = 8,
        /// 11.
        TimeExceeded = 11,
        /// 12.
        ParamProblem = 12,
        /// 13.
        Timestamp = 13,
        /// 14.
        TimestampReply = 14,
    }
}

impl Icmpv4Message {
    /// Source Quench (4), deprecated by RFC 6633; it stays `Unknown(4)` but counts as
    /// an error.
    pub const SOURCE_QUENCH: u8 = 4;

    /// An error message, which quotes the datagram that caused it: Destination
    /// Unreachable, Source Quench, Redirect, Time Exceeded, Parameter Problem.
    pub const fn is_error(self) -> bool {
        matches!(
            self,
            Icmpv4Message::DstUnreachable
                | Icmpv4Message::Redirect
                | Icmpv4Message::TimeExceeded
                | Icmpv4Message::ParamProblem
                | Icmpv4Message::Unknown(Icmpv4Message::SOURCE_QUENCH)
        )
    }

    /// A query whose Identifier names the flow (Echo, Timestamp): what a NAT
    /// translates like a port.
    pub const fn is_query(self) -> bool {
        matches!(
            self,
            Icmpv4Message::EchoRequest
                | Icmpv4Message::EchoReply
                | Icmpv4Message::Timestamp
                | Icmpv4Message::TimestampReply
        )
    }
}

impl fmt::Display for Icmpv4Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Icmpv4Message::EchoReply => f.write_str("echo-reply"),
            Icmpv4Message::DstUnreachable => f.write_str("dst-unreachable"),
            Icmpv4Message::Redirect => f.write_str("redirect"),
            Icmpv4Message::EchoRequest => f.write_str("echo-request"),
            Icmpv4Message::TimeExceeded => f.write_str("time-exceeded"),
            Icmpv4Message::ParamProblem => f.write_str("param-problem"),
            Icmpv4Message::Timestamp => f.write_str("timestamp"),
            Icmpv4Message::TimestampReply => f.write_str("timestamp-reply"),
            Icmpv4Message::Unknown(Icmpv4Message::SOURCE_QUENCH) => f.write_str("source-quench"),
            Icmpv4Message::Unknown(t) => write!(f, "type {t}"),
        }
    }
}

/// Codes of Destination Unreachable (RFC 792; RFC 1812 §5.2.7.1 adds 6–15).
pub mod dst_unreachable {
    /// Net unreachable.
    pub const NET: u8 = 0;
    /// Host unreachable.
    pub const HOST: u8 = 1;
    /// Protocol unreachable.
    pub const PROTOCOL: u8 = 2;
    /// Port unreachable.
    pub const PORT: u8 = 3;
    /// Fragmentation needed and DF set (carries the next-hop MTU, RFC 1191).
    pub const FRAG_NEEDED: u8 = 4;
    /// Source route failed.
    pub const SOURCE_ROUTE_FAILED: u8 = 5;
    /// Destination network unknown.
    pub const NET_UNKNOWN: u8 = 6;
    /// Destination host unknown.
    pub const HOST_UNKNOWN: u8 = 7;
    /// Communication with destination network administratively prohibited.
    pub const NET_PROHIBITED: u8 = 9;
    /// Communication with destination host administratively prohibited.
    pub const HOST_PROHIBITED: u8 = 10;
    /// Communication administratively prohibited (by filtering).
    pub const ADMIN_PROHIBITED: u8 = 13;
}

/// Codes of Time Exceeded (RFC 792).
pub mod time_exceeded {
    /// Time to live exceeded in transit.
    pub const TTL: u8 = 0;
    /// Fragment reassembly time exceeded.
    pub const REASSEMBLY: u8 = 1;
}

mod field {
    use crate::packet::field::*;

    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: Field = 2..4;
    /// The second word: "unused", identifier + sequence, gateway, pointer, MTU.
    pub const REST_OF_HEADER: Field = 4..8;
    pub const ECHO_IDENT: Field = 4..6;
    pub const ECHO_SEQNO: Field = 6..8;
    pub const NEXT_HOP_MTU: Field = 6..8;
    pub const DATA: Rest = 8..;
}

/// Length of the ICMP header.
pub const HEADER_LEN: usize = field::DATA.start;

/// Where the quoted datagram starts in a buffer given to [`emit_error`]: after the new
/// IPv4 header and the ICMP header.
pub const ERROR_QUOTE_OFFSET: usize = ipv4::HEADER_LEN + HEADER_LEN;

/// RFC 1812 §4.3.2.3: an ICMP error should quote "as much of the original datagram as
/// possible without the length of the ICMP datagram exceeding 576 bytes".
pub const MAX_ERROR_LEN: usize = 576;

/// The quoted IPv4 header plus this many payload bytes is the RFC 792 minimum quote.
pub const MIN_QUOTED_PAYLOAD: usize = 8;

/// A view of an ICMPv4 message; the buffer is the IPv4 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Wraps a buffer without checking it (see the module's check-once contract).
    pub const fn new_unchecked(buffer: T) -> Icmpv4Packet<T> {
        Icmpv4Packet { buffer }
    }

    /// [`new_unchecked`](Self::new_unchecked) then [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Icmpv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// [`Error::Truncated`] when the buffer is shorter than the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    /// The wrapped buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    fn read_u16(&self, f: core::ops::Range<usize>) -> u16 {
        let d = &self.buffer.as_ref()[f];
        u16::from_be_bytes([d[0], d[1]])
    }

    /// Message type.
    #[inline]
    pub fn msg_type(&self) -> Icmpv4Message {
        Icmpv4Message::from(self.buffer.as_ref()[field::TYPE])
    }

    /// An error message ([`Icmpv4Message::is_error`]).
    #[inline]
    pub fn is_error(&self) -> bool {
        self.msg_type().is_error()
    }

    /// Code.
    #[inline]
    pub fn code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The second 32-bit word, whatever the type makes of it.
    #[inline]
    pub fn rest_of_header(&self) -> u32 {
        let d = &self.buffer.as_ref()[field::REST_OF_HEADER];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Echo (and Timestamp) Identifier.
    #[inline]
    pub fn echo_ident(&self) -> u16 {
        self.read_u16(field::ECHO_IDENT)
    }

    /// Echo (and Timestamp) Sequence Number.
    #[inline]
    pub fn echo_seq_no(&self) -> u16 {
        self.read_u16(field::ECHO_SEQNO)
    }

    /// Next-Hop MTU of a "fragmentation needed" message (RFC 1191).
    #[inline]
    pub fn next_hop_mtu(&self) -> u16 {
        self.read_u16(field::NEXT_HOP_MTU)
    }

    /// Everything after the 8-byte header: echo data, or for an error the quoted
    /// original IPv4 header and the first bytes of its payload.
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA]
    }

    /// The quoted original datagram of an error message, as an IPv4 view made with
    /// [`Ipv4Packet::new_checked_quote`]: its payload is what was quoted.
    /// [`Error::Malformed`] if this is not an error message.
    pub fn quoted_ipv4(&self) -> Result<Ipv4Packet<&[u8]>> {
        if !self.is_error() {
            return Err(Error::Malformed);
        }
        Ipv4Packet::new_checked_quote(self.data())
    }

    /// True when the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == !0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    #[inline]
    fn write_u16(&mut self, f: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the message type.
    #[inline]
    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the code.
    #[inline]
    pub fn set_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Sets the second 32-bit word.
    #[inline]
    pub fn set_rest_of_header(&mut self, value: u32) {
        self.buffer.as_mut()[field::REST_OF_HEADER].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the Identifier (checksum untouched).
    #[inline]
    pub fn set_echo_ident(&mut self, value: u16) {
        self.write_u16(field::ECHO_IDENT, value);
    }

    /// Sets the Sequence Number.
    #[inline]
    pub fn set_echo_seq_no(&mut self, value: u16) {
        self.write_u16(field::ECHO_SEQNO, value);
    }

    /// Sets the Next-Hop MTU.
    #[inline]
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        self.write_u16(field::NEXT_HOP_MTU, value);
    }

    /// Everything after the header, mutable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA]
    }

    /// The quoted original datagram of an error message, mutable (see
    /// [`quoted_ipv4`](Self::quoted_ipv4)). Rewriting it changes this message's
    /// checksum: update it after.
    pub fn quoted_ipv4_mut(&mut self) -> Result<Ipv4Packet<&mut [u8]>> {
        if !self.is_error() {
            return Err(Error::Malformed);
        }
        Ipv4Packet::new_checked_quote(self.data_mut())
    }

    /// Computes and writes the checksum over the whole message.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.buffer.as_ref());
        self.set_checksum(!sum);
    }

    /// Applies a precomputed [`Delta`] to the checksum. ICMP has no pseudo-header: only
    /// words of the message itself (identifier, quoted datagram) belong in it.
    #[inline]
    pub fn apply_delta(&mut self, delta: Delta) {
        let csum = delta.apply(self.checksum());
        self.set_checksum(csum);
    }

    /// Rewrites the Identifier, updating the checksum (RFC 1624): the NAT's "port"
    /// for Echo and Timestamp.
    #[inline]
    pub fn set_echo_ident_update_checksum(&mut self, value: u16) {
        let csum = checksum::update16(self.checksum(), self.echo_ident(), value);
        self.set_echo_ident(value);
        self.set_checksum(csum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Icmpv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// How many bytes of `original_ip` (an IPv4 packet, from its first header byte) an
/// ICMP error quotes at minimum: the header with options plus 8 bytes of payload
/// (RFC 792), capped to the total length and to what is there. Never panics; a header
/// too short to read counts as 20 bytes.
pub fn error_quote_len(original_ip: &[u8]) -> usize {
    quote_len(original_ip, MIN_QUOTED_PAYLOAD)
}

/// Like [`error_quote_len`], but as much as RFC 1812 §4.3.2.3 allows: everything up to
/// the total length, cut so the ICMP error fits 576 bytes.
pub fn error_quote_len_max(original_ip: &[u8]) -> usize {
    quote_len(original_ip, usize::MAX).min(MAX_ERROR_LEN - ERROR_QUOTE_OFFSET)
}

fn quote_len(original_ip: &[u8], payload: usize) -> usize {
    let mut header_len = ipv4::HEADER_LEN;
    let mut end = original_ip.len();
    if original_ip.len() >= ipv4::HEADER_LEN {
        let packet = Ipv4Packet::new_unchecked(original_ip);
        header_len = header_len.max(usize::from(packet.header_len()));
        let total_len = usize::from(packet.total_len());
        if total_len >= header_len {
            end = end.min(total_len);
        }
    }
    end.min(header_len.saturating_add(payload))
}

/// Builds an ICMP error in place.
///
/// The caller has already put the quoted bytes — the offending IPv4 header and at
/// least 8 bytes of its payload, as [`error_quote_len`] counts them — at
/// `buf[ERROR_QUOTE_OFFSET..][..quote_len]`. This writes a 20-byte IPv4 header
/// (`src -> dst`, `ttl`, protocol ICMP, precedence 6, DF, ident 0) and the 8-byte ICMP
/// header (`msg`, `code`, `rest_of_header`: the MTU for frag-needed, the pointer for
/// param-problem, the gateway for redirect, else 0) in front, fills both checksums and
/// returns the IPv4 total length.
///
/// RFC 1812 §4.3.2.3: "the ICMP datagram SHOULD contain as much of the original
/// datagram as possible without the length of the ICMP datagram exceeding 576 bytes";
/// a longer message is [`Error::Malformed`], a buffer too short for it
/// [`Error::Truncated`]. §4.3.2.5: Destination Unreachable, Redirect, Time Exceeded and
/// Parameter Problem "SHOULD have their precedence value set to 6 (INTERNETWORK
/// CONTROL)". DF is set and the identification left 0, as RFC 6864 §4.1 allows for
/// atomic datagrams.
#[allow(clippy::too_many_arguments)]
pub fn emit_error(
    buf: &mut [u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    ttl: u8,
    msg: Icmpv4Message,
    code: u8,
    rest_of_header: u32,
    quote_len: usize,
) -> Result<usize> {
    let total_len = ERROR_QUOTE_OFFSET.saturating_add(quote_len);
    if total_len > MAX_ERROR_LEN {
        return Err(Error::Malformed);
    }
    if buf.len() < total_len {
        return Err(Error::Truncated);
    }
    let (ip_buf, icmp_buf) = buf[..total_len].split_at_mut(ipv4::HEADER_LEN);

    let mut icmp = Icmpv4Packet::new_unchecked(icmp_buf);
    icmp.set_msg_type(msg);
    icmp.set_code(code);
    icmp.set_rest_of_header(rest_of_header);
    icmp.fill_checksum();

    let mut ip = Ipv4Packet::new_unchecked(ip_buf);
    Ipv4Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmp,
        payload_len: HEADER_LEN + quote_len,
        ttl,
        ident: 0,
        dont_frag: true,
    }
    .emit(&mut ip);
    ip.set_dscp_ecn(PRECEDENCE_INTERNETWORK_CONTROL);
    ip.fill_checksum();
    Ok(total_len)
}

/// IP precedence 6 in the old TOS byte (DSCP CS6).
const PRECEDENCE_INTERNETWORK_CONTROL: u8 = 0xc0;

/// RFC 1812 §4.3.2.7: whether an ICMP error may be sent about `original`.
///
/// > An ICMP error message MUST NOT be sent as the result of receiving:
/// >
/// > o An ICMP error message, or
/// > o A packet which fails the IP header validation tests [...], or
/// > o A packet destined to an IP broadcast or IP multicast address, or
/// > o A packet sent as a Link Layer broadcast or multicast, or
/// > o A packet whose source address has a network prefix of zero or is an invalid
/// >   source address (as defined in Section [5.3.7]), or
/// > o Any fragment of a datagram other then the first fragment (i.e., a packet for
/// >   which the fragment offset in the IP header is nonzero).
///
/// Checked here: ICMP errors (and ICMP packets too short to tell), non-first
/// fragments, limited-broadcast or multicast destinations, and sources that are
/// 0.0.0.0/8, loopback, multicast, class E or broadcast. Left to the caller, who knows
/// the link and the interfaces: header validation (`original` should come from
/// `new_checked`), link-layer broadcast/multicast, directed subnet broadcasts.
pub fn may_send_error_about(original: &Ipv4Packet<&[u8]>) -> bool {
    let bytes: &[u8] = original.as_ref();
    if bytes.len() < ipv4::HEADER_LEN {
        return false;
    }
    if original.frag_offset() != 0 {
        return false;
    }
    let dst = original.dst_addr();
    if dst.is_broadcast() || dst.is_multicast() {
        return false;
    }
    let src = original.src_addr();
    if src.octets()[0] == 0 || src.is_loopback() || src.is_multicast() || src.is_broadcast() || src.octets()[0] >= 240 {
        return false;
    }
    if original.next_header() == IpProtocol::Icmp {
        let header_len = usize::from(original.header_len()).max(ipv4::HEADER_LEN);
        let end = usize::from(original.total_len()).min(bytes.len());
        match bytes.get(header_len..end).and_then(|p| p.first()) {
            Some(&msg) => return !Icmpv4Message::from(msg).is_error(),
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::udp::UdpPacket;

    // Echo request, ident 0x1234, seq 0xabcd, data "ping".
    static ECHO_BYTES: [u8; 12] = [0x08, 0x00, 0x5b, 0x2d, 0x12, 0x34, 0xab, 0xcd, 0x70, 0x69, 0x6e, 0x67];

    /// 100.64.0.2:40000 -> 203.0.113.9:53 UDP, 4 bytes of data, ttl 1.
    fn offending() -> [u8; 32] {
        let mut bytes = [0u8; 32];
        Ipv4Repr {
            src_addr: Ipv4Addr::new(100, 64, 0, 2),
            dst_addr: Ipv4Addr::new(203, 0, 113, 9),
            next_header: IpProtocol::Udp,
            payload_len: 12,
            ttl: 1,
            ident: 7,
            dont_frag: false,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        let mut udp = UdpPacket::new_unchecked(&mut bytes[20..]);
        udp.set_src_port(40000);
        udp.set_dst_port(53);
        udp.set_len(12);
        udp.payload_mut().copy_from_slice(b"dns?");
        udp.fill_checksum(Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(203, 0, 113, 9));
        bytes
    }

    #[test]
    fn test_deconstruct_echo() {
        let packet = Icmpv4Packet::new_checked(&ECHO_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), Icmpv4Message::EchoRequest);
        assert!(!packet.is_error());
        assert!(packet.msg_type().is_query());
        assert_eq!(packet.code(), 0);
        assert_eq!(packet.checksum(), 0x5b2d);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 0xabcd);
        assert_eq!(packet.rest_of_header(), 0x1234_abcd);
        assert_eq!(packet.data(), b"ping");
        assert!(packet.verify_checksum());
        assert_eq!(packet.quoted_ipv4(), Err(Error::Malformed));
    }

    #[test]
    fn test_construct_echo() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Icmpv4Message::EchoRequest);
        packet.set_code(0);
        packet.set_echo_ident(0x1234);
        packet.set_echo_seq_no(0xabcd);
        packet.data_mut().copy_from_slice(b"ping");
        packet.fill_checksum();
        assert_eq!(bytes, ECHO_BYTES);
    }

    #[test]
    fn test_echo_ident_rewrite() {
        let mut bytes = ECHO_BYTES;
        let mut packet = Icmpv4Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_echo_ident_update_checksum(0x4000);
        assert_eq!(packet.echo_ident(), 0x4000);
        assert!(packet.verify_checksum());
        packet.apply_delta(Delta::new().replace16(0x4000, 0x1234));
        packet.set_echo_ident(0x1234);
        assert_eq!(bytes, ECHO_BYTES);
    }

    #[test]
    fn test_truncated() {
        for len in 0..8 {
            assert_eq!(Icmpv4Packet::new_checked(&ECHO_BYTES[..len]), Err(Error::Truncated));
        }
        assert!(Icmpv4Packet::new_checked(&ECHO_BYTES[..8]).unwrap().data().is_empty());
    }

    #[test]
    fn test_messages_lossless() {
        for raw in 0..=255u8 {
            let msg = Icmpv4Message::from(raw);
            assert_eq!(u8::from(msg), raw);
            assert_eq!(msg.is_error(), matches!(raw, 3 | 4 | 5 | 11 | 12), "{raw}");
        }
        assert_eq!(Icmpv4Message::Unknown(4).to_string(), "source-quench");
        assert_eq!(Icmpv4Message::Unknown(42).to_string(), "type 42");
    }

    #[test]
    fn test_quote_len() {
        let original = offending();
        assert_eq!(error_quote_len(&original), 28);
        assert_eq!(error_quote_len_max(&original), 32);
        assert_eq!(error_quote_len(&original[..25]), 25);
        assert_eq!(error_quote_len(&[]), 0);
        assert_eq!(error_quote_len(&[0x45; 10]), 10);
        // Ethernet padding past the total length is not quoted.
        let mut padded = [0u8; 46];
        padded[..32].copy_from_slice(&original);
        assert_eq!(error_quote_len_max(&padded), 32);
        // Options count as header.
        let mut with_opts = [0u8; 64];
        with_opts[0] = 0x46;
        with_opts[3] = 64;
        assert_eq!(error_quote_len(&with_opts), 32);
        // A huge packet is cut to fit 576 bytes.
        let mut big = vec![0u8; 1500];
        big[0] = 0x45;
        big[2..4].copy_from_slice(&1500u16.to_be_bytes());
        assert_eq!(error_quote_len_max(&big), 576 - 28);
    }

    #[test]
    fn test_emit_error() {
        let original = offending();
        let quote_len = error_quote_len(&original);
        let mut buf = [0xa5u8; 128];
        buf[ERROR_QUOTE_OFFSET..][..quote_len].copy_from_slice(&original[..quote_len]);
        let router = Ipv4Addr::new(100, 64, 0, 1);
        let len = emit_error(
            &mut buf,
            router,
            Ipv4Addr::new(100, 64, 0, 2),
            64,
            Icmpv4Message::TimeExceeded,
            time_exceeded::TTL,
            0,
            quote_len,
        )
        .unwrap();
        assert_eq!(len, 56);

        let ip = Ipv4Packet::new_checked(&buf[..len]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.src_addr(), router);
        assert_eq!(ip.dst_addr(), Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(ip.ttl(), 64);
        assert_eq!(ip.dscp_ecn(), 0xc0);
        assert!(ip.dont_frag());
        assert_eq!(ip.next_header(), IpProtocol::Icmp);
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!(icmp.msg_type(), Icmpv4Message::TimeExceeded);
        assert_eq!(icmp.code(), time_exceeded::TTL);
        assert_eq!(icmp.rest_of_header(), 0);
        assert_eq!(icmp.data(), &original[..28]);
        let quoted = icmp.quoted_ipv4().unwrap();
        assert_eq!(quoted.src_addr(), Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(quoted.total_len(), 32);
        assert_eq!(quoted.payload().len(), 8);
        let quoted_udp = UdpPacket::new_unchecked(quoted.payload());
        assert_eq!((quoted_udp.src_port(), quoted_udp.dst_port()), (40000, 53));
        assert_eq!(
            ip.to_string(),
            "100.64.0.1 -> 100.64.0.2 icmp time-exceeded code 0 len 56 ttl 64 \
             [100.64.0.2 -> 203.0.113.9 udp 40000->53 len 32 ttl 1]"
        );

        // Cross-check with etherparse.
        let sliced = etherparse::SlicedPacket::from_ip(&buf[..len]).unwrap();
        match sliced.transport {
            Some(etherparse::TransportSlice::Icmpv4(s)) => {
                assert_eq!(s.checksum(), icmp.checksum());
                let header = s.header();
                assert_eq!(header.icmp_type.calc_checksum(s.payload()), icmp.checksum());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn test_emit_frag_needed() {
        let original = offending();
        let mut buf = [0u8; 128];
        buf[ERROR_QUOTE_OFFSET..][..28].copy_from_slice(&original[..28]);
        let len = emit_error(
            &mut buf,
            Ipv4Addr::new(100, 64, 0, 1),
            Ipv4Addr::new(100, 64, 0, 2),
            64,
            Icmpv4Message::DstUnreachable,
            dst_unreachable::FRAG_NEEDED,
            1400,
            28,
        )
        .unwrap();
        let icmp = Icmpv4Packet::new_checked(&buf[20..len]).unwrap();
        assert_eq!(icmp.next_hop_mtu(), 1400);
        assert!(icmp.verify_checksum());
    }

    #[test]
    fn test_emit_error_bounds() {
        let mut small = [0u8; 40];
        let args = (Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(2, 2, 2, 2));
        let emit = |buf: &mut [u8], quote_len| {
            emit_error(buf, args.0, args.1, 64, Icmpv4Message::DstUnreachable, 3, 0, quote_len)
        };
        assert_eq!(emit(&mut small, 28), Err(Error::Truncated));
        assert_eq!(emit(&mut small, 12), Ok(40));
        let mut big = [0u8; 2000];
        assert_eq!(emit(&mut big, 576 - 28), Ok(576));
        assert_eq!(emit(&mut big, 576 - 27), Err(Error::Malformed));
        assert_eq!(emit(&mut big, usize::MAX), Err(Error::Malformed));
    }

    #[test]
    fn test_may_send_error_about() {
        let allowed = |bytes: &[u8]| may_send_error_about(&Ipv4Packet::new_unchecked(bytes));
        let original = offending();
        assert!(allowed(&original));

        let with = |f: &dyn Fn(&mut Ipv4Packet<&mut [u8]>)| {
            let mut bytes = original;
            f(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
            bytes
        };
        // Non-first fragment: no; first fragment: yes.
        assert!(!allowed(&with(&|p| p.set_frag_offset(8))));
        assert!(allowed(&with(&|p| p.set_more_frags(true))));
        // Destinations.
        assert!(!allowed(&with(&|p| p.set_dst_addr(Ipv4Addr::BROADCAST))));
        assert!(!allowed(&with(&|p| p.set_dst_addr(Ipv4Addr::new(224, 0, 0, 1)))));
        // Sources.
        for src in [
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::new(0, 1, 2, 3),
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::new(239, 1, 1, 1),
            Ipv4Addr::new(240, 0, 0, 1),
            Ipv4Addr::BROADCAST,
        ] {
            assert!(!allowed(&with(&|p| p.set_src_addr(src))), "{src}");
        }
        // ICMP: errors no, queries yes, unreadable no.
        let icmp = |msg: u8| {
            with(&|p| {
                p.set_next_header(IpProtocol::Icmp);
                p.payload_mut()[0] = msg;
            })
        };
        assert!(allowed(&icmp(8)));
        assert!(allowed(&icmp(0)));
        for err in [3, 4, 5, 11, 12] {
            assert!(!allowed(&icmp(err)), "{err}");
        }
        let empty_icmp = with(&|p| {
            p.set_next_header(IpProtocol::Icmp);
            p.set_total_len(20);
        });
        assert!(!allowed(&empty_icmp));
        assert!(!allowed(&original[..19]));
    }
}
