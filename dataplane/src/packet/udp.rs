//! UDP (RFC 768).
//!
//! RFC 768, "Format":
//!
//! ```text
//!  0      7 8     15 16    23 24    31
//! +--------+--------+--------+--------+
//! |     Source      |   Destination   |
//! |      Port       |      Port       |
//! +--------+--------+--------+--------+
//! |                 |                 |
//! |     Length      |    Checksum     |
//! +--------+--------+--------+--------+
//! |
//! |          data octets ...
//! +---------------- ...
//! ```
//!
//! > Length is the length in octets of this user datagram including this header and
//! > the data. (This means the minimum value of the length is eight.)
//! >
//! > Checksum is the 16-bit one's complement of the one's complement sum of a pseudo
//! > header of information from the IP header, the UDP header, and the data, padded
//! > with zero octets at the end (if necessary) to make a multiple of two octets.
//! > [...] If the computed checksum is zero, it is transmitted as all ones (the
//! > equivalent in one's complement arithmetic). An all zero transmitted checksum value
//! > means that the transmitter generated no checksum.

use std::net::Ipv4Addr;

use super::checksum::{self, Delta};
use super::{Error, IpProtocol, Result};

mod field {
    use crate::packet::field::*;

    pub const SRC_PORT: Field = 0..2;
    pub const DST_PORT: Field = 2..4;
    pub const LENGTH: Field = 4..6;
    pub const CHECKSUM: Field = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A view of a UDP datagram; the buffer is the IPv4 payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Wraps a buffer without checking it (see the module's check-once contract).
    pub const fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// [`new_unchecked`](Self::new_unchecked) then [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Proves every accessor in bounds: the 8-byte header is there
    /// ([`Error::Truncated`]), the length field is at least 8 ([`Error::Malformed`]) and
    /// no more than the buffer ([`Error::Truncated`]).
    pub fn check_len(&self) -> Result<()> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed);
        }
        if field_len > buffer_len {
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

    /// Length field: header plus data, in bytes.
    #[inline]
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH)
    }

    /// Checksum field (0: none).
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM)
    }

    /// The data, bounded by the length field.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }

    /// True when the checksum verifies, or is 0 ("the transmitter generated no
    /// checksum", RFC 768).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Udp.into(), u32::from(len)),
            checksum::data(data),
        ]) == !0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
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

    /// Sets the length field.
    #[inline]
    pub fn set_len(&mut self, value: u16) {
        self.write_u16(field::LENGTH, value);
    }

    /// Sets the checksum field.
    #[inline]
    pub fn set_checksum(&mut self, value: u16) {
        self.write_u16(field::CHECKSUM, value);
    }

    /// The data, mutable, bounded by the length field.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..end]
    }

    /// Computes and writes the checksum over the pseudo-header, header and data; a
    /// computed 0 is written as `0xffff` (RFC 768).
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, dst, IpProtocol::Udp.into(), u32::from(len)),
            checksum::data(data),
        ]);
        self.set_checksum(match !sum {
            0 => 0xffff,
            csum => csum,
        });
    }

    /// Applies a precomputed [`Delta`] (address and port rewrites) to the checksum,
    /// keeping "no checksum" as 0 ([`Delta::apply_udp`]).
    #[inline]
    pub fn apply_delta(&mut self, delta: Delta) {
        let csum = delta.apply_udp(self.checksum());
        self.set_checksum(csum);
    }

    /// Rewrites the source port, updating the checksum (RFC 1624, RFC 768's zero kept).
    #[inline]
    pub fn set_src_port_update_checksum(&mut self, value: u16) {
        let csum = checksum::update_udp(self.checksum(), self.src_port(), value);
        self.set_src_port(value);
        self.set_checksum(csum);
    }

    /// Rewrites the destination port, updating the checksum.
    #[inline]
    pub fn set_dst_port_update_checksum(&mut self, value: u16) {
        let csum = checksum::update_udp(self.checksum(), self.dst_port(), value);
        self.set_dst_port(value);
        self.set_checksum(csum);
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for UdpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    // 48896 -> 53, length 12, checksum 0x124d, data aa 00 00 ff.
    static PACKET_BYTES: [u8; 12] = [0xbf, 0x00, 0x00, 0x35, 0x00, 0x0c, 0x12, 0x4d, 0xaa, 0x00, 0x00, 0xff];
    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0x00, 0x00, 0xff];

    #[test]
    fn test_deconstruct() {
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 48896);
        assert_eq!(packet.dst_port(), 53);
        assert_eq!(packet.len(), 12);
        assert_eq!(packet.checksum(), 0x124d);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(DST, Ipv4Addr::new(192, 168, 1, 3)));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(48896);
        packet.set_dst_port(53);
        packet.set_len(12);
        packet.set_checksum(0xffff);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        packet.fill_checksum(SRC, DST);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn test_zero_checksum() {
        // No checksum verifies.
        let mut bytes = PACKET_BYTES;
        bytes[6] = 0;
        bytes[7] = 0;
        let mut packet = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        assert!(packet.verify_checksum(SRC, DST));
        packet.set_src_port_update_checksum(1);
        assert_eq!(packet.checksum(), 0);

        // A computed 0 is sent as all ones: steer the data so the sum is 0xffff.
        let mut bytes = PACKET_BYTES;
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.payload_mut()[..2].copy_from_slice(&[0, 0]);
        packet.fill_checksum(SRC, DST);
        let slack = packet.checksum();
        packet.payload_mut()[..2].copy_from_slice(&slack.to_be_bytes());
        packet.fill_checksum(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn test_port_rewrite_keeps_checksum() {
        let mut bytes = PACKET_BYTES;
        let mut packet = UdpPacket::new_checked(&mut bytes[..]).unwrap();
        packet.set_src_port_update_checksum(1024);
        packet.set_dst_port_update_checksum(5353);
        assert!(packet.verify_checksum(SRC, DST));
        let incremental = packet.checksum();
        packet.fill_checksum(SRC, DST);
        assert_eq!(packet.checksum(), incremental);
    }

    #[test]
    fn test_truncated_and_overflow() {
        for len in 0..8 {
            assert_eq!(UdpPacket::new_checked(&PACKET_BYTES[..len]), Err(Error::Truncated));
        }
        assert_eq!(UdpPacket::new_checked(&PACKET_BYTES[..11]), Err(Error::Truncated));
        let mut short = PACKET_BYTES;
        short[5] = 7;
        assert_eq!(UdpPacket::new_checked(&short[..]), Err(Error::Malformed));
        let mut huge = PACKET_BYTES;
        huge[4] = 0xff;
        assert_eq!(UdpPacket::new_checked(&huge[..]), Err(Error::Truncated));
        // A length field below the buffer bounds the payload (trailing bytes ignored).
        let mut shorter = PACKET_BYTES;
        shorter[5] = 8;
        let packet = UdpPacket::new_checked(&shorter[..]).unwrap();
        assert!(packet.payload().is_empty());
    }

    #[test]
    fn test_against_etherparse() {
        let (header, payload) = etherparse::UdpHeader::from_slice(&PACKET_BYTES).unwrap();
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), header.source_port);
        assert_eq!(packet.dst_port(), header.destination_port);
        assert_eq!(packet.len(), header.length);
        assert_eq!(packet.checksum(), header.checksum);
        assert_eq!(header.calc_checksum_ipv4_raw(SRC.octets(), DST.octets(), payload).unwrap(), packet.checksum());
        assert_eq!(packet.payload(), payload);
    }
}
