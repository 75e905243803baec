//! ARP for IPv4 over Ethernet (RFC 826). Other hardware or protocol types are
//! [`Error::Malformed`]: masq answers ARP for its own addresses and learns neighbours,
//! nothing more.
//!
//! RFC 826, "Packet format":
//!
//! > ```text
//! > Ethernet packet data:
//! >     16.bit: (ar$hrd) Hardware address space (e.g., Ethernet, Packet Radio Net.)
//! >     16.bit: (ar$pro) Protocol address space.  For Ethernet hardware, this is from
//! >                      the set of type fields ether_typ$<protocol>.
//! >      8.bit: (ar$hln) byte length of each hardware address
//! >      8.bit: (ar$pln) byte length of each protocol address
//! >     16.bit: (ar$op)  opcode (ares_op$REQUEST | ares_op$REPLY)
//! >     nbytes: (ar$sha) Hardware address of sender of this packet, n from the ar$hln
//! >                      field.
//! >     mbytes: (ar$spa) Protocol address of sender of this packet, m from the ar$pln
//! >                      field.
//! >     nbytes: (ar$tha) Hardware address of target of this packet (if known).
//! >     mbytes: (ar$tpa) Protocol address of target.
//! > ```
//!
//! With Ethernet (hrd 1, hln 6) and IPv4 (pro 0x0800, pln 4) the packet is 28 bytes.

use core::fmt;
use std::net::Ipv4Addr;

use super::{Error, EtherType, EthernetAddress, Result};

enum_with_unknown! {
    /// `ar$op`.
    pub enum ArpOperation(u16) {
        /// `ares_op$REQUEST`.
        Request = 1,
        /// `ares_op$REPLY`.
        Reply = 2,
    }
}

impl fmt::Display for ArpOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArpOperation::Request => f.write_str("request"),
            ArpOperation::Reply => f.write_str("reply"),
            ArpOperation::Unknown(op) => write!(f, "op {op}"),
        }
    }
}

/// `ar$hrd` for Ethernet (10Mb), from the IANA hardware types.
pub const HARDWARE_ETHERNET: u16 = 1;

mod field {
    use crate::packet::field::*;

    pub const HTYPE: Field = 0..2;
    pub const PTYPE: Field = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Field = 6..8;
    pub const SHA: Field = 8..14;
    pub const SPA: Field = 14..18;
    pub const THA: Field = 18..24;
    pub const TPA: Field = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Wraps a buffer without checking it (see the module's check-once contract).
    pub const fn new_unchecked(buffer: T) -> ArpPacket<T> {
        ArpPacket { buffer }
    }

    /// [`new_unchecked`](Self::new_unchecked), [`check_len`](Self::check_len), then
    /// [`Error::Malformed`] unless the packet is Ethernet/IPv4 (hrd 1, pro 0x0800,
    /// hln 6, pln 4).
    pub fn new_checked(buffer: T) -> Result<ArpPacket<T>> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        if !packet.is_ethernet_ipv4() {
            return Err(Error::Malformed);
        }
        Ok(packet)
    }

    /// [`Error::Truncated`] when the buffer is shorter than 28 bytes. Ethernet frames
    /// pad ARP to 46 bytes; the padding is ignored.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
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

    #[inline]
    fn read_ipv4(&self, f: core::ops::Range<usize>) -> Ipv4Addr {
        let d = &self.buffer.as_ref()[f];
        Ipv4Addr::new(d[0], d[1], d[2], d[3])
    }

    /// `ar$hrd`.
    pub fn hardware_type(&self) -> u16 {
        self.read_u16(field::HTYPE)
    }

    /// `ar$pro`.
    pub fn protocol_type(&self) -> EtherType {
        EtherType::from(self.read_u16(field::PTYPE))
    }

    /// `ar$hln`.
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// `ar$pln`.
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Ethernet hardware with 6-byte addresses and IPv4 with 4-byte addresses.
    pub fn is_ethernet_ipv4(&self) -> bool {
        self.hardware_type() == HARDWARE_ETHERNET
            && self.protocol_type() == EtherType::Ipv4
            && self.hardware_len() == 6
            && self.protocol_len() == 4
    }

    /// `ar$op`.
    pub fn operation(&self) -> ArpOperation {
        ArpOperation::from(self.read_u16(field::OPER))
    }

    /// `ar$sha`.
    pub fn source_hw_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::SHA])
    }

    /// `ar$spa`.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        self.read_ipv4(field::SPA)
    }

    /// `ar$tha`.
    pub fn target_hw_addr(&self) -> EthernetAddress {
        EthernetAddress::from_bytes(&self.buffer.as_ref()[field::THA])
    }

    /// `ar$tpa`.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        self.read_ipv4(field::TPA)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets `ar$hrd`.
    pub fn set_hardware_type(&mut self, value: u16) {
        self.buffer.as_mut()[field::HTYPE].copy_from_slice(&value.to_be_bytes());
    }

    /// Sets `ar$pro`.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        self.buffer.as_mut()[field::PTYPE].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    /// Sets `ar$hln`.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets `ar$pln`.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets `ar$op`.
    pub fn set_operation(&mut self, value: ArpOperation) {
        self.buffer.as_mut()[field::OPER].copy_from_slice(&u16::from(value).to_be_bytes());
    }

    /// Sets `ar$sha`.
    pub fn set_source_hw_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&value.0);
    }

    /// Sets `ar$spa`.
    pub fn set_source_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&value.octets());
    }

    /// Sets `ar$tha`.
    pub fn set_target_hw_addr(&mut self, value: EthernetAddress) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&value.0);
    }

    /// Sets `ar$tpa`.
    pub fn set_target_protocol_addr(&mut self, value: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&value.octets());
    }
}

impl<T: AsRef<[u8]>> AsRef<[u8]> for ArpPacket<T> {
    fn as_ref(&self) -> &[u8] {
        self.buffer.as_ref()
    }
}

/// An Ethernet/IPv4 ARP packet, summarised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ArpRepr {
    /// Request, reply, or another opcode.
    pub operation: ArpOperation,
    /// Sender MAC.
    pub source_hw_addr: EthernetAddress,
    /// Sender IPv4 address.
    pub source_protocol_addr: Ipv4Addr,
    /// Target MAC (zero in a request).
    pub target_hw_addr: EthernetAddress,
    /// Target IPv4 address.
    pub target_protocol_addr: Ipv4Addr,
}

impl ArpRepr {
    /// Reads a packet; [`Error::Malformed`] unless it is Ethernet/IPv4.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(packet: &ArpPacket<&T>) -> Result<ArpRepr> {
        packet.check_len()?;
        if !packet.is_ethernet_ipv4() {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr {
            operation: packet.operation(),
            source_hw_addr: packet.source_hw_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hw_addr: packet.target_hw_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// The reply to this request from `our_hw_addr` (RFC 826, "Packet Reception": swap
    /// sender and target, put our addresses in the sender fields, opcode REPLY).
    pub fn reply(&self, our_hw_addr: EthernetAddress) -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Reply,
            source_hw_addr: our_hw_addr,
            source_protocol_addr: self.target_protocol_addr,
            target_hw_addr: self.source_hw_addr,
            target_protocol_addr: self.source_protocol_addr,
        }
    }

    /// Bytes [`emit`](Self::emit) writes: 28.
    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Writes the whole packet into a view made with `new_unchecked` over at least
    /// [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        packet.set_hardware_type(HARDWARE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(self.operation);
        packet.set_source_hw_addr(self.source_hw_addr);
        packet.set_source_protocol_addr(self.source_protocol_addr);
        packet.set_target_hw_addr(self.target_hw_addr);
        packet.set_target_protocol_addr(self.target_protocol_addr);
    }
}

impl fmt::Display for ArpRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operation {
            ArpOperation::Request => write!(
                f,
                "arp who-has {} tell {} ({})",
                self.target_protocol_addr, self.source_protocol_addr, self.source_hw_addr
            ),
            ArpOperation::Reply => write!(f, "arp reply {} is-at {}", self.source_protocol_addr, self.source_hw_addr),
            op => write!(
                f,
                "arp {op} {} ({}) -> {} ({})",
                self.source_protocol_addr, self.source_hw_addr, self.target_protocol_addr, self.target_hw_addr
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // who-has 100.64.0.1 tell 100.64.0.2, from 02:00:00:00:00:02.
    static REQUEST_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 100, 64, 0, 2, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 100, 64, 0, 1,
    ];

    // 100.64.0.1 is-at 02:00:00:00:00:01, to 02:00:00:00:00:02.
    static REPLY_BYTES: [u8; 28] = [
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 100, 64, 0, 1, 0x02, 0x00,
        0x00, 0x00, 0x00, 0x02, 100, 64, 0, 2,
    ];

    const OURS: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
    const THEIRS: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);

    fn request_repr() -> ArpRepr {
        ArpRepr {
            operation: ArpOperation::Request,
            source_hw_addr: THEIRS,
            source_protocol_addr: Ipv4Addr::new(100, 64, 0, 2),
            target_hw_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(100, 64, 0, 1),
        }
    }

    #[test]
    fn test_deconstruct() {
        let packet = ArpPacket::new_checked(&REQUEST_BYTES[..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), ArpOperation::Request);
        assert_eq!(packet.source_hw_addr(), THEIRS);
        assert_eq!(packet.source_protocol_addr(), Ipv4Addr::new(100, 64, 0, 2));
        assert_eq!(packet.target_hw_addr(), EthernetAddress([0; 6]));
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(100, 64, 0, 1));
    }

    #[test]
    fn test_construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = ArpPacket::new_unchecked(&mut bytes[..]);
        packet.set_hardware_type(1);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(ArpOperation::Request);
        packet.set_source_hw_addr(THEIRS);
        packet.set_source_protocol_addr(Ipv4Addr::new(100, 64, 0, 2));
        packet.set_target_hw_addr(EthernetAddress([0; 6]));
        packet.set_target_protocol_addr(Ipv4Addr::new(100, 64, 0, 1));
        assert_eq!(bytes, REQUEST_BYTES);
    }

    #[test]
    fn test_parse_and_reply() {
        // Padded to the Ethernet minimum: padding is ignored.
        let mut padded = [0u8; 46];
        padded[..28].copy_from_slice(&REQUEST_BYTES);
        let repr = ArpRepr::parse(&ArpPacket::new_checked(&padded[..]).unwrap()).unwrap();
        assert_eq!(repr, request_repr());
        assert_eq!(repr.to_string(), "arp who-has 100.64.0.1 tell 100.64.0.2 (02:00:00:00:00:02)");

        let reply = repr.reply(OURS);
        let mut bytes = [0xa5u8; 28];
        assert_eq!(reply.buffer_len(), 28);
        reply.emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, REPLY_BYTES);
        assert_eq!(reply.to_string(), "arp reply 100.64.0.1 is-at 02:00:00:00:00:01");
    }

    #[test]
    fn test_truncated_and_malformed() {
        assert_eq!(ArpPacket::new_checked(&REQUEST_BYTES[..27]), Err(Error::Truncated));
        assert_eq!(ArpPacket::new_checked(&[][..]), Err(Error::Truncated));
        for (offset, value) in [(1, 6), (2, 0x86), (4, 8), (5, 16)] {
            let mut bytes = REQUEST_BYTES;
            bytes[offset] = value;
            assert_eq!(ArpPacket::new_checked(&bytes[..]), Err(Error::Malformed), "{offset}");
            let packet = ArpPacket::new_unchecked(&bytes[..]);
            assert_eq!(ArpRepr::parse(&packet), Err(Error::Malformed));
        }
        assert_eq!(ArpRepr::parse(&ArpPacket::new_unchecked(&REQUEST_BYTES[..20])), Err(Error::Truncated));
    }

    #[test]
    fn test_unknown_operation_lossless() {
        let mut bytes = REQUEST_BYTES;
        bytes[7] = 9;
        let repr = ArpRepr::parse(&ArpPacket::new_checked(&bytes[..]).unwrap()).unwrap();
        assert_eq!(repr.operation, ArpOperation::Unknown(9));
        let mut out = [0u8; 28];
        repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
        assert_eq!(out, bytes);
    }
}
