//! TCP segments (RFC 9293, which obsoletes RFC 793).
//!
//! RFC 9293 §3.1, "Header Format":
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                        Sequence Number                        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Acknowledgment Number                      |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |       |       |R|E|G|K|H|T|N|N|                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           [Options]                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! > Data Offset (DOffset): 4 bits. The number of 32-bit words in the TCP header. This
//! > indicates where the data begins. The TCP header (even one including options) is
//! > an integer multiple of 32 bits long.
//! >
//! > Checksum: 16 bits. The checksum field is the 16-bit ones' complement of the ones'
//! > complement sum of all 16-bit words in the header and text. [...] The checksum
//! > also covers a pseudo-header (Figure 2) conceptually prefixed to the TCP header.
//!
//! TCP has no length field: the segment is the whole buffer, which must be the IPv4
//! payload ([`Ipv4Packet::payload`](super::Ipv4Packet::payload)).

use core::fmt;
use core::ops::{BitAnd, BitOr, BitOrAssign};
use std::net::Ipv4Addr;

use super::checksum::{self, Delta};
use super::{Error, IpProtocol, Result};

mod field {
    use crate::packet::field::*;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const SEQ_NUM: Field = 4..8;
    pub const ACK_NUM: Field = 8..12;
    /// Data offset in the upper nibble; reserved bits below.
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Field = 14..16;
    pub const CHECKSUM: Field = 16..18;
    pub const URGENT: Field = 18..20;
}

/// Length of a TCP header without options.
pub const HEADER_LEN: usize = field::URGENT.end;

/// The eight control bits of byte 13.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);

    const NAMES: [(TcpFlags, &'static str); 8] = [
        (TcpFlags::FIN, "FIN"),
        (TcpFlags::SYN, "SYN"),
        (TcpFlags::RST, "RST"),
        (TcpFlags::PSH, "PSH"),
        (TcpFlags::ACK, "ACK"),
        (TcpFlags::URG, "URG"),
        (TcpFlags::ECE, "ECE"),
        (TcpFlags::CWR, "CWR"),
    ];

    /// No flag set.
    pub const fn empty() -> TcpFlags {
        TcpFlags(0)
    }

    /// The raw byte.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Every flag of `other` is set.
    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// At least one flag of `other` is set.
    pub const fn intersects(self, other: TcpFlags) -> bool {
        self.0 & other.0 != 0
    }

    /// No flag set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Sets the flags of `other`.
    pub fn insert(&mut self, other: TcpFlags) {
        self.0 |= other.0;
    }

    /// Clears the flags of `other`.
    pub fn remove(&mut self, other: TcpFlags) {
        self.0 &= !other.0;
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

impl BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl BitAnd for TcpFlags {
    type Output = TcpFlags;
    fn bitand(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 & rhs.0)
    }
}

impl fmt::Display for TcpFlags {
    /// `SYN|ACK`; `none` when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        let mut first = true;
        for (flag, name) in TcpFlags::NAMES {
            if self.contains(flag) {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TcpFlags({self})")
    }
}

/// A view of a TCP segment; the buffer is the IPv4 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it (see the module's check-once contract).
    pub const fn new_unchecked(buffer: T) -> TcpPacket<T> {
        TcpPacket { buffer }
    }

    /// [`new_unchecked`](Self::new_unchecked) then [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<TcpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Proves every accessor in bounds: the 20-byte fixed header is there
    /// ([`Error::Truncated`]), the data offset is at least 5 words
    /// ([`Error::Malformed`]) and the header with options fits the buffer
    /// ([`Error::Truncated`]).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
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
    fn read_u32(&self, f: core::ops::Range<usize>) -> u32 {
        let d = &self.buffer.as_ref()[f];
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }

    /// Source port.
    #[inline]
    pub fn src_port(&self) -> u16 {
        self.read_u16(field::SRC_PORT)
    }

    /// Destination port.
    #[inline]
    pub fn dst_port(&self) -> u16 {
        self.read_u16(field::DST_PORT)
    }

    /// Sequence number.
    #[inline]
    pub fn seq_number(&self) -> u32 {
        self.read_u32(field::SEQ_NUM)
    }

    /// Acknowledgment number.
    #[inline]
    pub fn ack_number(&self) -> u32 {
        self.read_u32(field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4), options included.
    #[inline]
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFFSET] >> 4) * 4
    }

    /// Control bits.
    #[inline]
    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// Window.
    #[inline]
    pub fn window_len(&self) -> u16 {
        self.read_u16(field::WIN_SIZE)
    }

    /// Checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// Urgent pointer.
    #[inline]
    pub fn urgent_at(&self) -> u16 {
        self.read_u16(field::URGENT)
    }

    /// Options: the header past its 20 fixed bytes.
    #[inline]
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.header_len())]
    }

    /// Data after the header.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[usize::from(self.header_len())..]
    }

    /// Length of the whole segment (the buffer), as the pseudo-header counts it.
    #[inline]
    pub fn segment_len(&self) -> usize {
        self.buffer.as_ref().len()
    }

    fn sum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> u16 {
        let data = self.buffer.as_ref();
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Tcp.into(), data.len() as u32),
            checksum::data(data),
        ])
    }

    /// True when the checksum over the pseudo-header and the whole segment verifies.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        self.sum(src, dst) == !0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    #[inline]
    fn write_u16(&mut self, f: core::ops::Range<usize>, value: u16) {
        self.buffer.as_mut()[f].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the source port (checksum untouched).
    #[inline]
    pub fn set_src_port(&mut self, value: u16) {
        self.write_u16(field::SRC_PORT, value);
    }

    /// Sets the destination port (checksum untouched).
    #[inline]
    pub fn set_dst_port(&mut self, value: u16) {
        self.write_u16(field::DST_PORT, value);
    }

    /// Sets the sequence number.
    #[inline]
    pub fn set_seq_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the acknowledgment number.
    #[inline]
    pub fn set_ack_number(&mut self, value: u32) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets the header length in bytes (stored as `value / 4`; reserved bits kept).
    #[inline]
    pub fn set_header_len(&mut self, value: u8) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFFSET];
        *b = (*b & 0x0f) | (((value / 4) & 0x0f) << 4);
    }

    /// Sets the control bits.
    #[inline]
    pub fn set_flags(&mut self, value: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = value.0;
    }

    /// Sets the window.
    #[inline]
    pub fn set_window_len(&mut self, value: u16) {
        self.write_u16(field::WIN_SIZE, value);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    #[inline]
    pub fn set_urgent_at(&mut self, value: u16) {
        self.write_u16(field::URGENT, value);
    }

    /// Options, mutable.
    #[inline]
    pub fn options_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.header_len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Data after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let start = usize::from(self.header_len());
        &mut self.buffer.as_mut()[start..]
    }

    /// Computes and writes the checksum over the pseudo-header and the whole segment.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let sum = self.sum(src, dst);
        self.set_checksum(!sum);
    }

    /// Applies a precomputed [`Delta`] (address and port rewrites) to the checksum.
    #[inline]
    pub fn apply_delta(&mut self, delta: Delta) {
        let csum = delta.apply(self.checksum());
        self.set_checksum(csum);
    }

    /// Rewrites the source port, updating the checksum (RFC 1624).
    #[inline]
    pub fn set_src_port_update_checksum(&mut self, value: u16) {
        let csum = checksum::update16(self.checksum(), self.src_port(), value);
        self.set_src_port(value);
        self.set_checksum(csum);
    }

    /// Rewrites the destination port, updating the checksum (RFC 1624).
    #[inline]
    pub fn set_dst_port_update_checksum(&mut self, value: u16) {
        let csum = checksum::update16(self.checksum(), self.dst_port(), value);
        self.set_dst_port(value);
        self.set_checksum(csum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for TcpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    // 48896 -> 80, seq 0x01234567, ack 0x89abcdef, data offset 6, flags URG|ACK|RST|FIN,
    // window 0x0123, checksum 0x01b6, urgent 0x0201; one option word (window scale 12,
    // NOP) and data aa 00 00 ff. (smoltcp's TCP fixture, with the addresses below.)
    static PACKET_BYTES: [u8; 28] = [
        0xbf, 0x00, 0x00, 0x50, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, 0x60, 0x35, 0x01, 0x23, 0x01, 0xb6,
        0x02, 0x01, 0x03, 0x03, 0x0c, 0x01, 0xaa, 0x00, 0x00, 0xff,
    ];
    static OPTION_BYTES: [u8; 4] = [0x03, 0x03, 0x0c, 0x01];
    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    #[test]
    fn test_deconstruct() {
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 48896);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x0123_4567);
        assert_eq!(packet.ack_number(), 0x89ab_cdef);
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.flags(), TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK | TcpFlags::URG);
        assert!(packet.flags().contains(TcpFlags::FIN | TcpFlags::ACK));
        assert!(!packet.flags().contains(TcpFlags::SYN));
        assert_eq!(packet.window_len(), 0x0123);
        assert_eq!(packet.checksum(), 0x01b6);
        assert_eq!(packet.urgent_at(), 0x0201);
        assert_eq!(packet.options(), &OPTION_BYTES);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES);
        assert_eq!(packet.segment_len(), 28);
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(48896);
        packet.set_dst_port(80);
        packet.set_seq_number(0x0123_4567);
        packet.set_ack_number(0x89ab_cdef);
        packet.buffer[12] = 0;
        packet.set_header_len(24);
        packet.set_flags(TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK | TcpFlags::URG);
        packet.set_window_len(0x0123);
        packet.set_urgent_at(0x0201);
        packet.options_mut().copy_from_slice(&OPTION_BYTES);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum(SRC, DST);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_truncated_and_overflow() {
        for len in 0..20 {
            assert_eq!(TcpPacket::new_checked(&PACKET_BYTES[..len]), Err(Error::Truncated));
        }
        // Data offset 6 needs 24 bytes.
        assert_eq!(TcpPacket::new_checked(&PACKET_BYTES[..23]), Err(Error::Truncated));
        assert!(TcpPacket::new_checked(&PACKET_BYTES[..24]).unwrap().payload().is_empty());
        // Data offset below 5.
        let mut short = PACKET_BYTES;
        short[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&short[..]), Err(Error::Malformed));
        // Data offset 15 (60 bytes) on a 28-byte buffer.
        let mut huge = PACKET_BYTES;
        huge[12] = 0xf0;
        assert_eq!(TcpPacket::new_checked(&huge[..]), Err(Error::Truncated));
    }

    #[test]
    fn test_port_rewrite_keeps_checksum() {
        let mut bytes = PACKET_BYTES;
        let mut packet = TcpPacket::new_checked(&mut bytes[..]).unwrap();
        packet.set_src_port_update_checksum(1024);
        packet.set_dst_port_update_checksum(8080);
        assert!(packet.verify_checksum(SRC, DST));
        let delta = Delta::new().replace_addr(SRC, Ipv4Addr::new(203, 0, 113, 1));
        packet.apply_delta(delta);
        assert!(packet.verify_checksum(Ipv4Addr::new(203, 0, 113, 1), DST));
    }

    #[test]
    fn test_flags() {
        let mut flags = TcpFlags::SYN;
        flags |= TcpFlags::ACK;
        assert_eq!(flags.to_string(), "SYN|ACK");
        assert_eq!(format!("{flags:?}"), "TcpFlags(SYN|ACK)");
        assert!(flags.intersects(TcpFlags::ACK | TcpFlags::FIN));
        assert!(!flags.intersects(TcpFlags::RST | TcpFlags::FIN));
        flags.remove(TcpFlags::SYN);
        assert_eq!(flags, TcpFlags::ACK);
        flags.insert(TcpFlags::CWR | TcpFlags::ECE);
        assert_eq!(flags.bits(), 0xd0);
        assert_eq!(flags & TcpFlags::ECE, TcpFlags::ECE);
        assert_eq!(TcpFlags::empty().to_string(), "none");
        assert!(TcpFlags::default().is_empty());
    }

    #[test]
    fn test_against_etherparse() {
        let (header, payload) = etherparse::TcpHeader::from_slice(&PACKET_BYTES).unwrap();
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), header.source_port);
        assert_eq!(packet.dst_port(), header.destination_port);
        assert_eq!(packet.seq_number(), header.sequence_number);
        assert_eq!(packet.ack_number(), header.acknowledgment_number);
        assert_eq!(usize::from(packet.header_len()), header.header_len());
        assert_eq!(packet.flags().contains(TcpFlags::FIN), header.fin);
        assert_eq!(packet.flags().contains(TcpFlags::SYN), header.syn);
        assert_eq!(packet.flags().contains(TcpFlags::RST), header.rst);
        assert_eq!(packet.flags().contains(TcpFlags::ACK), header.ack);
        assert_eq!(packet.flags().contains(TcpFlags::URG), header.urg);
        assert_eq!(packet.window_len(), header.window_size);
        assert_eq!(packet.urgent_at(), header.urgent_pointer);
        assert_eq!(packet.options(), header.options.as_slice());
        assert_eq!(packet.payload(), payload);
        assert_eq!(header.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload).unwrap(), packet.checksum());
    }
}
