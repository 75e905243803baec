//! Ethernet II frames (IEEE 802.3 with an EtherType), without the FCS.
//!
//! RFC 894, "A Standard for the Transmission of IP Datagrams over Ethernet Networks":
//!
//! > The Ethernet packet header contains the 48-bit destination address, the 48-bit
//! > source address, and a 16-bit type field. [...] IP datagrams are sent in standard
//! > Ethernet frames with the type field set to 0x0800.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                    Destination MAC (6 octets)                 |
//! +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                               |                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
//! |                      Source MAC (6 octets)                    |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           EtherType           |  Payload ...
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! A NIC strips the FCS; short frames arrive padded to 60 bytes, so the payload can be
//! longer than the IPv4 packet inside (which is why [`Ipv4Packet::payload`] is bounded
//! by the IPv4 total length).
//!
//! [`Ipv4Packet::payload`]: super::Ipv4Packet::payload

use core::fmt;

use super::{Error, EthernetAddress, Result};

enum_with_unknown! {
    /// The EtherType field.
    pub enum EtherType(u16) {
        /// 0x0800, RFC 894.
        Ipv4 = 0x0800,
        /// 0x0806, RFC 826.
        Arp = 0x0806,
        /// 0x86DD, RFC 2464.
        Ipv6 = 0x86DD,
        /// 0x8100, IEEE 802.1Q tag.
        Vlan = 0x8100,
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("ipv4"),
            EtherType::Arp => f.write_str("arp"),
            EtherType::Ipv6 => f.write_str("ipv6"),
            EtherType::Vlan => f.write_str("vlan"),
            EtherType::Unknown(t) => write!(f, "ethertype 0x{t:04x}"),
        }
    }
}

mod field {
    use crate::packet::field::*;

    pub const DESTINATION: Field = 0..6;
    pub const SOURCE: Field = 6..12;
    pub const ETHERTYPE: Field = 12..14;
    pub const PAYLOAD: Rest = 14..;
}

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Wraps a buffer without checking it (see the module's check-once contract).
    pub const fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// [`new_unchecked`](Self::new_unchecked) then [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// [`Error::Truncated`] when the buffer is shorter than the 14-byte header.
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

    /// The header length, 14.
    pub const fn header_len() -> usize {
        HEADER_LEN
    }

    /// Buffer length needed for a frame with `payload_len` bytes of payload.
    pub const fn buffer_len(payload_len: usize) -> usize {
        HEADER_LEN + payload_len
    }

    /// Destination MAC.
    #[inline]
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::DESTINATION])
    }

    /// Source MAC.
    #[inline]
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SOURCE])
    }

    /// EtherType.
    #[inline]
    pub fn ethertype(&self) -> EtherType {
        let d = &self.buffer.as_ref()[field::ETHERTYPE];
        EtherType::from(u16::from_be_bytes([d[0], d[1]]))
    }

    /// Everything after the header (including any padding).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination MAC.
    #[inline]
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&addr.0);
    }

    /// Sets the source MAC.
    #[inline]
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    #[inline]
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&u16::from(ethertype).to_be_bytes());
    }

    /// Everything after the header, mutable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for EthernetFrame<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

impl<T: AsRef<[u8]>> fmt::Display for EthernetFrame<T> {
    /// `02:00:00:00:00:01 -> ff:ff:ff:ff:ff:ff arp len 42`; never panics, even on an
    /// unchecked view.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = self.buffer.as_ref().len();
        if self.check_len().is_err() {
            return write!(f, "truncated ethernet frame ({len} bytes)");
        }
        write!(f, "{} -> {} {} len {len}", self.src_addr(), self.dst_addr(), self.ethertype())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // dst 02:00:00:00:00:02, src 02:00:00:00:00:01, IPv4, 4 bytes of payload.
    static FRAME_BYTES: [u8; 18] =
        [0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0xaa, 0xbb, 0xcc, 0xdd];
    static PAYLOAD_BYTES: [u8; 4] = [0xaa, 0xbb, 0xcc, 0xdd];

    #[test]
    fn test_deconstruct() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress([0x02, 0, 0, 0, 0, 0x02]));
        assert_eq!(frame.src_addr(), EthernetAddress([0x02, 0, 0, 0, 0, 0x01]));
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(frame.to_string(), "02:00:00:00:00:01 -> 02:00:00:00:00:02 ipv4 len 18");
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 18];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(EthernetAddress([0x02, 0, 0, 0, 0, 0x02]));
        frame.set_src_addr(EthernetAddress([0x02, 0, 0, 0, 0, 0x01]));
        frame.set_ethertype(EtherType::Ipv4);
        frame.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(frame.into_inner(), &FRAME_BYTES[..]);
    }

    #[test]
    fn test_truncated() {
        assert_eq!(EthernetFrame::new_checked(&FRAME_BYTES[..13]), Err(Error::Truncated));
        assert_eq!(EthernetFrame::new_checked(&[][..]), Err(Error::Truncated));
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..14]).unwrap();
        assert!(frame.payload().is_empty());
        assert_eq!(EthernetFrame::new_unchecked(&FRAME_BYTES[..3]).to_string(), "truncated ethernet frame (3 bytes)");
    }

    #[test]
    fn test_ethertypes_lossless() {
        for (raw, ty) in [
            (0x0800, EtherType::Ipv4),
            (0x0806, EtherType::Arp),
            (0x86dd, EtherType::Ipv6),
            (0x8100, EtherType::Vlan),
            (0x88cc, EtherType::Unknown(0x88cc)),
        ] {
            assert_eq!(EtherType::from(raw), ty);
            assert_eq!(u16::from(ty), raw);
        }
        assert_eq!(EtherType::Unknown(0x88cc).to_string(), "ethertype 0x88cc");
    }

    #[test]
    fn test_against_etherparse() {
        let (header, rest) = etherparse::Ethernet2Header::from_slice(&FRAME_BYTES).unwrap();
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr().0, header.destination);
        assert_eq!(frame.src_addr().0, header.source);
        assert_eq!(u16::from(frame.ethertype()), header.ether_type.0);
        assert_eq!(frame.payload(), rest);
    }
}
