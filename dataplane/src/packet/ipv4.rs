//! IPv4 (RFC 791), with in-place rewriters that keep the header checksum right
//! incrementally (RFC 1624).
//!
//! RFC 791 §3.1, "Internet Header Format":
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |         Identification        |Flags|      Fragment Offset    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                       Source Address                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination Address                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Options                    |    Padding    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! > IHL: 4 bits. Internet Header Length is the length of the internet header in 32 bit
//! > words, and thus points to the beginning of the data. Note that the minimum value
//! > for a correct header is 5.
//! >
//! > Total Length: 16 bits. Total Length is the length of the datagram, measured in
//! > octets, including internet header and data.
//! >
//! > Flags: 3 bits. Bit 0: reserved, must be zero; Bit 1: (DF) 0 = May Fragment,
//! > 1 = Don't Fragment; Bit 2: (MF) 0 = Last Fragment, 1 = More Fragments.
//! >
//! > Fragment Offset: 13 bits. [...] The fragment offset is measured in units of 8
//! > octets (64 bits). The first fragment has offset zero.
//! >
//! > Header Checksum: 16 bits. A checksum on the header only. [...] The checksum field
//! > is the 16 bit one's complement of the one's complement sum of all 16 bit words in
//! > the header. For purposes of computing the checksum, the value of the checksum
//! > field is zero.

use core::fmt;
use std::net::Ipv4Addr;

use super::checksum;
use super::{Error, Result};

enum_with_unknown! {
    /// The Protocol field (IANA "Assigned Internet Protocol Numbers").
    pub enum IpProtocol(u8) {
        /// 1, RFC 792.
        Icmp = 1,
        /// 6, RFC 793.
        Tcp = 6,
        /// 17, RFC 768.
        Udp = 17,
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpProtocol::Icmp => f.write_str("icmp"),
            IpProtocol::Tcp => f.write_str("tcp"),
            IpProtocol::Udp => f.write_str("udp"),
            IpProtocol::Unknown(p) => write!(f, "proto {p}"),
        }
    }
}

mod field {
    use crate::packet::field::*;

    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Field = 2..4;
    pub const IDENT: Field = 4..6;
    pub const FLG_OFF: Field = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    /// TTL and protocol, the 16-bit word the checksum sees when TTL changes.
    pub const TTL_PROTOCOL: Field = 8..10;
    /// A TTL of 1 as it weighs in the `TTL_PROTOCOL` word.
    pub const TTL_ONE: u16 = 0x0100;
    pub const CHECKSUM: Field = 10..12;
    pub const SRC_ADDR: Field = 12..16;
    pub const DST_ADDR: Field = 16..20;

    /// Flag bits within `FLG_OFF`.
    pub const FLAG_DF: u16 = 0x4000;
    pub const FLAG_MF: u16 = 0x2000;
    pub const OFFSET_MASK: u16 = 0x1fff;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

/// RFC 791 §3.2, "Fragmentation and Reassembly": "Every internet module must be able to
/// forward a datagram of 68 octets without further fragmentation."
pub const MIN_MTU: u16 = 68;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it (see the module's check-once contract).
    pub const fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// [`new_unchecked`](Self::new_unchecked), [`check_len`](Self::check_len), then
    /// [`Error::Malformed`] unless the version is 4.
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Malformed);
        }
        Ok(packet)
    }

    /// Proves every accessor in bounds:
    ///
    /// * the buffer holds the 20-byte fixed header, else [`Error::Truncated`];
    /// * IHL ≥ 5 and header length ≤ total length, else [`Error::Malformed`];
    /// * total length ≤ buffer length, else [`Error::Truncated`].
    ///
    /// The version is not checked here (see [`new_checked`](Self::new_checked)). Bytes
    /// past the total length (Ethernet padding) are allowed and ignored by
    /// [`payload`](Self::payload).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        let total_len = usize::from(self.total_len());
        if header_len < HEADER_LEN || header_len > total_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// For the IPv4 header *quoted inside an ICMP error*, which carries the original
    /// header and only the first bytes of its payload: like
    /// [`new_checked`](Self::new_checked) except that the total length may exceed the
    /// buffer. The header and options must be whole. [`payload`](Self::payload) then
    /// returns what was quoted (cut at the buffer's end).
    pub fn new_checked_quote(buffer: T) -> Result<Ipv4Packet<T>> {
        let packet = Self::new_unchecked(buffer);
        let len = packet.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(packet.header_len());
        if packet.version() != 4 || header_len < HEADER_LEN || header_len > usize::from(packet.total_len()) {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(packet)
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

    #[inline]
    fn read_addr(&self, f: core::ops::Range<usize>) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[f];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// Version (4 for a packet from [`new_checked`](Self::new_checked)).
    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// The whole second byte: DSCP (upper 6 bits, RFC 2474) and ECN (lower 2, RFC 3168).
    #[inline]
    pub fn dscp_ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN]
    }

    /// Differentiated Services Code Point.
    #[inline]
    pub fn dscp(&self) -> u8 {
        self.dscp_ecn() >> 2
    }

    /// Explicit Congestion Notification.
    #[inline]
    pub fn ecn(&self) -> u8 {
        self.dscp_ecn() & 0x03
    }

    /// Total length in bytes, header included.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Identification.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT)
    }

    /// Don't Fragment.
    #[inline]
    pub fn dont_frag(&self) -> bool {
        self.read_u16(field::FLG_OFF) & field::FLAG_DF != 0
    }

    /// More Fragments.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.read_u16(field::FLG_OFF) & field::FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field × 8).
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        (self.read_u16(field::FLG_OFF) & field::OFFSET_MASK) << 3
    }

    /// Part of a fragmented datagram: MF set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.read_u16(field::FLG_OFF) & (field::FLAG_MF | field::OFFSET_MASK) != 0
    }

    /// The first fragment of a fragmented datagram (MF set, offset zero). It carries
    /// the transport header; a non-first fragment (`frag_offset() != 0`) does not.
    #[inline]
    pub fn is_first_fragment(&self) -> bool {
        self.more_frags() && self.frag_offset() == 0
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    #[inline]
    pub fn next_header(&self) -> IpProtocol {
        IpProtocol::from(self.buffer.as_ref()[field::PROTOCOL])
    }

    /// Header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Source address.
    #[inline]
    pub fn src_addr(&self) -> Ipv4Addr {
        self.read_addr(field::SRC_ADDR)
    }

    /// Destination address.
    #[inline]
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.read_addr(field::DST_ADDR)
    }

    /// Options (and padding): the header past its 20 fixed bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// The payload, bounded by the total length (Ethernet padding excluded). For a
    /// view from [`new_checked_quote`](Self::new_checked_quote), what was quoted.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = usize::from(self.total_len()).min(data.len());
        &data[usize::from(self.header_len())..end]
    }

    /// The header, options included.
    #[inline]
    pub fn header(&self) -> &[u8] {
        &self.buffer.as_ref()[..usize::from(self.header_len())]
    }

    /// True when the header checksum verifies (RFC 1071: the sum over the header,
    /// checksum included, is all ones).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let header = self.header();
        match <&[u8; HEADER_LEN]>::try_from(header) {
            Ok(h) => checksum::header20(h) == !0,
            Err(_) => checksum::data(header) == !0,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn write_u16(&mut self, f: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the version.
    #[inline]
    pub fn set_version(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (value << 4);
    }

    /// Sets the header length in bytes (stored as `value / 4`).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((value / 4) & 0x0f);
    }

    /// Sets DSCP and ECN at once.
    #[inline]
    pub fn set_dscp_ecn(&mut self, value: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = value;
    }

    /// Sets the total length (checksum untouched).
    #[inline]
    pub fn set_total_len(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    /// Sets the identification.
    #[inline]
    pub fn set_ident(&mut self, value: u16) {
        self.write_u16(field::IDENT, value);
    }

    /// Clears all flags and the fragment offset.
    #[inline]
    pub fn clear_flags(&mut self) {
        self.write_u16(field::FLG_OFF, 0);
    }

    /// Sets or clears Don't Fragment.
    #[inline]
    pub fn set_dont_frag(&mut self, value: bool) {
        let raw = self.read_u16(field::FLG_OFF);
        let raw = if value { raw | field::FLAG_DF } else { raw & !field::FLAG_DF };
        self.write_u16(field::FLG_OFF, raw);
    }

    /// Sets or clears More Fragments.
    #[inline]
    pub fn set_more_frags(&mut self, value: bool) {
        let raw = self.read_u16(field::FLG_OFF);
        let raw = if value { raw | field::FLAG_MF } else { raw & !field::FLAG_MF };
        self.write_u16(field::FLG_OFF, raw);
    }

    /// Sets the fragment offset in bytes (a multiple of 8; the low 3 bits are dropped).
    #[inline]
    pub fn set_frag_offset(&mut self, value: u16) {
        let raw = self.read_u16(field::FLG_OFF);
        let raw = (raw & !field::OFFSET_MASK) | (value >> 3);
        self.write_u16(field::FLG_OFF, raw);
    }

    /// Sets the TTL (checksum untouched).
    #[inline]
    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    /// Sets the protocol.
    #[inline]
    pub fn set_next_header(&mut self, value: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = value.into();
    }

    /// Sets the header checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Sets the source address (checksum untouched).
    #[inline]
    pub fn set_src_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&value.octets());
    }

    /// Sets the destination address (checksum untouched).
    #[inline]
    pub fn set_dst_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&value.octets());
    }

    /// Options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Payload, mutable, bounded like [`payload`](Self::payload).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        let end = usize::from(self.total_len());
        let data = self.buffer.as_mut();
        let end = end.min(data.len());
        &mut data[start..end]
    }

    /// Computes and writes the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let sum = checksum::data(self.header());
        self.set_checksum(!sum);
    }

    /// Applies a precomputed [`checksum::Delta`] to the header checksum.
    #[inline]
    pub fn apply_delta(&mut self, delta: checksum::Delta) {
        let csum = delta.apply(self.checksum());
        self.set_checksum(csum);
    }

    /// Rewrites the source address, updating the header checksum (RFC 1624).
    #[inline]
    pub fn set_src_addr_update_checksum(&mut self, value: Ipv4Addr) {
        let csum = checksum::update32(self.checksum(), self.src_addr().into(), value.into());
        self.set_src_addr(value);
        self.set_checksum(csum);
    }

    /// Rewrites the destination address, updating the header checksum (RFC 1624).
    #[inline]
    pub fn set_dst_addr_update_checksum(&mut self, value: Ipv4Addr) {
        let csum = checksum::update32(self.checksum(), self.dst_addr().into(), value.into());
        self.set_dst_addr(value);
        self.set_checksum(csum);
    }

    /// Decrements the TTL and updates the checksum (RFC 1624 on the TTL/protocol word),
    /// returning the new TTL. A TTL of 0 is left at 0: the caller checks
    /// `ttl() <= 1` first and answers with ICMP Time Exceeded (RFC 1812 §5.3.1).
    #[inline]
    pub fn decrement_ttl(&mut self) -> u8 {
        let old = self.read_u16(field::TTL_PROTOCOL);
        let ttl = self.ttl();
        if ttl == 0 {
            return 0;
        }
        // TTL is the high byte of the word: one less TTL is one `TTL_ONE` less.
        let new = old - field::TTL_ONE;
        let csum = checksum::update16(self.checksum(), old, new);
        self.write_u16(field::TTL_PROTOCOL, new);
        self.set_checksum(csum);
        ttl - 1
    }

    /// Sets the total length, updating the header checksum (RFC 1624).
    #[inline]
    pub fn set_total_len_update_checksum(&mut self, value: u16) {
        let csum = checksum::update16(self.checksum(), self.total_len(), value);
        self.set_total_len(value);
        self.set_checksum(csum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for Ipv4Packet<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An IPv4 header without options, summarised: what masq needs to *build* a packet
/// (ICMP errors, test fixtures). Translation rewrites the view instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub next_header: IpProtocol,
    /// Payload length in bytes (total length − header length).
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// Identification.
    pub ident: u16,
    /// Don't Fragment.
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Reads a packet. Checks the length fields, the version ([`Error::Malformed`]) and
    /// the header checksum ([`Error::BadChecksum`]). Fragments are [`Error::Malformed`]
    /// (a `Repr` has no room for fragment fields); options are skipped.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &Ipv4Packet<&T>) -> Result<Ipv4Repr> {
        packet.check_len()?;
        if packet.version() != 4 {
            return Err(Error::Malformed);
        }
        if !packet.verify_checksum() {
            return Err(Error::BadChecksum);
        }
        if packet.is_fragment() {
            return Err(Error::Malformed);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: packet.next_header(),
            payload_len: usize::from(packet.total_len()) - usize::from(packet.header_len()),
            ttl: packet.ttl(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Bytes of header [`emit`](Self::emit) writes: 20.
    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Bytes of the whole packet: header plus payload.
    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Writes a 20-byte header (DSCP/ECN 0, no options, checksum filled) into a view
    /// made with `new_unchecked` over at least [`header_len`](Self::header_len) bytes.
    /// The payload is the caller's. `payload_len` must fit the 16-bit total length
    /// (`payload_len <= 65515`); larger values are clamped.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        debug_assert!(self.buffer_len() <= usize::from(u16::MAX), "IPv4 payload too long");
        packet.set_version(4);
        packet.set_header_len(HEADER_LEN as u8);
        packet.set_dscp_ecn(0);
        packet.set_total_len(u16::try_from(self.buffer_len()).unwrap_or(u16::MAX));
        packet.set_ident(self.ident);
        packet.clear_flags();
        packet.set_dont_frag(self.dont_frag);
        packet.set_ttl(self.ttl);
        packet.set_next_header(self.next_header);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

impl fmt::Display for Ipv4Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} {} len {} ttl {}",
            self.src_addr,
            self.dst_addr,
            self.next_header,
            self.buffer_len(),
            self.ttl
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 100.64.0.2 -> 203.0.113.9, UDP, ident 0x1234, DF, ttl 64, 4 bytes of payload.
    static PACKET_BYTES: [u8; 24] = [
        0x45, 0x00, 0x00, 0x18, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 100, 64, 0, 2, 203, 0, 113, 9, 0xaa,
        0xbb, 0xcc, 0xdd,
    ];

    fn packet_bytes() -> [u8; 24] {
        let mut bytes = PACKET_BYTES;
        Ipv4Packet::new_unchecked(&mut bytes[..]).fill_checksum();
        bytes
    }

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(100, 64, 0, 2),
            dst_addr: Ipv4Addr::new(203, 0, 113, 9),
            next_header: IpProtocol::Udp,
            payload_len: 4,
            ttl: 64,
            ident: 0x1234,
            dont_frag: true,
        }
    }

    #[test]
    fn test_deconstruct() {
        let bytes = packet_bytes();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.dscp_ecn(), 0);
        assert_eq!(packet.total_len(), 24);
        assert_eq!(packet.ident(), 0x1234);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert!(!packet.is_first_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.next_header(), IpProtocol::Udp);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(203, 0, 113, 9));
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(packet.verify_checksum());
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 24];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_dscp_ecn(0);
        packet.set_total_len(24);
        packet.set_ident(0x1234);
        packet.clear_flags();
        packet.set_dont_frag(true);
        packet.set_more_frags(true);
        packet.set_more_frags(false);
        packet.set_frag_offset(0);
        packet.set_ttl(64);
        packet.set_next_header(IpProtocol::Udp);
        packet.set_src_addr(Ipv4Addr::new(100, 64, 0, 2));
        packet.set_dst_addr(Ipv4Addr::new(203, 0, 113, 9));
        packet.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        packet.fill_checksum();
        assert_eq!(bytes, packet_bytes());
    }

    #[test]
    fn test_parse_emit() {
        let bytes = packet_bytes();
        let parsed = Ipv4Repr::parse(&Ipv4Packet::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(parsed, repr());
        assert_eq!(parsed.to_string(), "100.64.0.2 -> 203.0.113.9 udp len 24 ttl 64");

        let mut out = [0xa5u8; 24];
        assert_eq!(repr().buffer_len(), 24);
        let mut packet = Ipv4Packet::new_unchecked(&mut out[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        assert_eq!(out, bytes);
    }

    #[test]
    fn test_parse_errors() {
        let mut bad = packet_bytes();
        bad[10] ^= 1;
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&bad[..])), Err(Error::BadChecksum));

        let mut frag = packet_bytes();
        let mut p = Ipv4Packet::new_unchecked(&mut frag[..]);
        p.set_more_frags(true);
        p.fill_checksum();
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&frag[..])), Err(Error::Malformed));

        let mut v6 = packet_bytes();
        v6[0] = 0x65;
        assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_unchecked(&v6[..])), Err(Error::Malformed));
        assert_eq!(Ipv4Packet::new_checked(&v6[..]), Err(Error::Malformed));
        // check_len alone does not look at the version.
        assert_eq!(Ipv4Packet::new_unchecked(&v6[..]).check_len(), Ok(()));
    }

    #[test]
    fn test_truncated_and_overflow() {
        let bytes = packet_bytes();
        // Shorter than the fixed header.
        for len in 0..20 {
            assert_eq!(Ipv4Packet::new_checked(&bytes[..len]), Err(Error::Truncated), "{len}");
        }
        // Total length beyond the buffer.
        assert_eq!(Ipv4Packet::new_checked(&bytes[..23]), Err(Error::Truncated));
        // IHL below 5.
        let mut short_ihl = bytes;
        short_ihl[0] = 0x44;
        assert_eq!(Ipv4Packet::new_checked(&short_ihl[..]), Err(Error::Malformed));
        // IHL beyond total length.
        let mut long_ihl = bytes;
        long_ihl[0] = 0x46;
        long_ihl[3] = 20;
        assert_eq!(Ipv4Packet::new_checked(&long_ihl[..]), Err(Error::Malformed));
        // Total length below the header.
        let mut short_total = bytes;
        short_total[3] = 19;
        assert_eq!(Ipv4Packet::new_checked(&short_total[..]), Err(Error::Malformed));
        // Maximum IHL with total length 0xffff on a small buffer.
        let mut huge = bytes;
        huge[0] = 0x4f;
        huge[2] = 0xff;
        huge[3] = 0xff;
        assert_eq!(Ipv4Packet::new_checked(&huge[..]), Err(Error::Truncated));
    }

    #[test]
    fn test_padding_excluded_from_payload() {
        let mut padded = [0u8; 46];
        padded[..24].copy_from_slice(&packet_bytes());
        let packet = Ipv4Packet::new_checked(&padded[..]).unwrap();
        assert_eq!(packet.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        let mut padded_mut = padded;
        let mut packet = Ipv4Packet::new_checked(&mut padded_mut[..]).unwrap();
        assert_eq!(packet.payload_mut().len(), 4);
    }

    #[test]
    fn test_options() {
        // IHL 6: one 4-byte option (NOP NOP NOP EOL), total 28.
        let mut bytes = [0u8; 28];
        bytes[..20].copy_from_slice(&packet_bytes()[..20]);
        bytes[20..24].copy_from_slice(&[1, 1, 1, 0]);
        bytes[24..].copy_from_slice(&[0xaa, 0xbb, 0xcc, 0xdd]);
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_header_len(24);
        packet.set_total_len(28);
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), &[0xaa, 0xbb, 0xcc, 0xdd]);
        assert!(packet.verify_checksum());
        let (header, payload) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
        assert_eq!(header.options.as_slice(), packet.options());
        assert_eq!(payload, packet.payload());
    }

    #[test]
    fn test_fragments() {
        let mut bytes = packet_bytes();
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_more_frags(true);
        assert!(packet.is_fragment() && packet.is_first_fragment());
        packet.set_frag_offset(1480);
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.is_fragment() && !packet.is_first_fragment());
        packet.set_more_frags(false);
        assert!(packet.is_fragment() && !packet.is_first_fragment());
        assert!(packet.dont_frag());
        packet.set_dont_frag(false);
        assert!(!packet.dont_frag());
        assert_eq!(packet.frag_offset(), 1480);
        packet.set_frag_offset(0);
        assert!(!packet.is_fragment());
        packet.set_frag_offset(0xfff8);
        assert_eq!(packet.frag_offset(), 0xfff8);
    }

    #[test]
    fn test_quote() {
        // A quoted header + 2 payload bytes: total length says 24, only 22 are here.
        let bytes = packet_bytes();
        assert_eq!(Ipv4Packet::new_checked(&bytes[..22]), Err(Error::Truncated));
        let quoted = Ipv4Packet::new_checked_quote(&bytes[..22]).unwrap();
        assert_eq!(quoted.payload(), &[0xaa, 0xbb]);
        assert_eq!(quoted.src_addr(), Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(Ipv4Packet::new_checked_quote(&bytes[..19]), Err(Error::Truncated));
        let mut long_ihl = bytes;
        long_ihl[0] = 0x46;
        assert_eq!(Ipv4Packet::new_checked_quote(&long_ihl[..22]), Err(Error::Truncated));
        long_ihl[0] = 0x56;
        assert_eq!(Ipv4Packet::new_checked_quote(&long_ihl[..]), Err(Error::Malformed));
    }

    #[test]
    fn test_rewriters_keep_checksum() {
        let mut bytes = packet_bytes();
        let mut packet = Ipv4Packet::new_checked(&mut bytes[..]).unwrap();
        packet.set_src_addr_update_checksum(Ipv4Addr::new(198, 51, 100, 1));
        assert!(packet.verify_checksum());
        packet.set_dst_addr_update_checksum(Ipv4Addr::new(10, 0, 0, 1));
        assert!(packet.verify_checksum());
        assert_eq!(packet.decrement_ttl(), 63);
        assert_eq!(packet.ttl(), 63);
        assert!(packet.verify_checksum());
        packet.set_total_len_update_checksum(22);
        assert!(packet.verify_checksum());
        let after = packet.checksum();
        packet.fill_checksum();
        assert_eq!(packet.checksum(), after);
    }

    #[test]
    fn test_decrement_ttl_edges() {
        for ttl in [0u8, 1, 2, 64, 128, 255] {
            let mut bytes = packet_bytes();
            let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
            packet.set_ttl(ttl);
            packet.fill_checksum();
            let new = packet.decrement_ttl();
            assert_eq!(new, ttl.saturating_sub(1));
            assert_eq!(packet.ttl(), new);
            let incremental = packet.checksum();
            packet.fill_checksum();
            assert_eq!(incremental, packet.checksum(), "ttl {ttl}");
        }
    }

    #[test]
    fn test_against_etherparse() {
        let bytes = packet_bytes();
        let (header, payload) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.src_addr().octets(), header.source);
        assert_eq!(packet.dst_addr().octets(), header.destination);
        assert_eq!(packet.ttl(), header.time_to_live);
        assert_eq!(packet.ident(), header.identification);
        assert_eq!(packet.dont_frag(), header.dont_fragment);
        assert_eq!(u8::from(packet.next_header()), header.protocol.0);
        assert_eq!(packet.total_len(), header.total_len);
        assert_eq!(packet.checksum(), header.header_checksum);
        assert_eq!(packet.checksum(), header.calc_header_checksum());
        assert_eq!(packet.payload(), payload);
    }
}
