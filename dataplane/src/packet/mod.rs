//! Typed zero-copy views over packet bytes, one protocol per file.
//!
//! Modelled on smoltcp's `src/wire/`. Each protocol has two layers:
//!
//! * a **view**, `Xxx<T: AsRef<[u8]>>` (e.g. [`Ipv4Packet`]), that wraps a buffer — a
//!   `&[u8]`, a `&mut [u8]`, an mbuf's data — and reads or writes header fields in place.
//!   Getters live in an `impl<T: AsRef<[u8]>>`, setters in an
//!   `impl<T: AsRef<[u8]> + AsMut<[u8]>>`; the view itself costs nothing;
//! * a **`...Repr`** (e.g. [`Ipv4Repr`], [`ArpRepr`]) — a small, validated summary that is
//!   `parse`d from a view and `emit`ted into one — only for the packets masq *builds*
//!   (ICMP errors, ARP replies, test fixtures). Translation rewrites on views.
//!
//! # The check-once contract
//!
//! Every view has three constructors:
//!
//! * `new_unchecked(buffer)` wraps the buffer and checks nothing;
//! * `check_len()` proves that **every accessor of the view is in bounds** (and that the
//!   header's own length fields are consistent with the buffer);
//! * `new_checked(buffer)` is `new_unchecked` followed by `check_len` (plus any cheap
//!   sanity check named in the view's docs, e.g. IPv4's version).
//!
//! The rules:
//!
//! 1. **Untrusted input goes through `new_checked`**, once, at classify time. After it
//!    returns `Ok`, every getter, setter and `payload()` of that view is panic-free, for
//!    any byte content whatsoever: bad input is an [`Error`], never a panic. A proptest
//!    and the `dataplane/fuzz` target `packet_parser` hold the views to this.
//! 2. **Emission never uses `new_checked` on a reused buffer.** A buffer about to be
//!    written still holds an old packet's length fields; checking them fails (or
//!    succeeds) at random (smoltcp-rs/smoltcp#17). Wrap with `new_unchecked`, size the
//!    buffer with `Repr::buffer_len()`, then `emit`.
//! 3. A setter that changes a length field (`set_header_len`, `set_total_len`, ...) can
//!    invalidate what `check_len` proved; re-check before reading through it again.
//!
//! Checksums are explicit: `verify_checksum`/`fill_checksum` on views, so a caller whose
//! NIC already checked (or will fill) a checksum simply doesn't call them. In-place
//! rewriters (`set_src_addr_update_checksum`, `decrement_ttl`, [`checksum::Delta`]) keep
//! checksums right incrementally, per RFC 1624.
//!
//! Addresses are [`std::net::Ipv4Addr`]; MAC addresses are [`EthernetAddress`].
//! Nothing here allocates.

use core::fmt;
use core::str::FromStr;

/// Declares a lossless `u8`/`u16` enum: named variants plus `Unknown(raw)`, with
/// `From` both ways, so parse-then-emit never loses a protocol number (smoltcp's
/// `enum_with_unknown!`). `Unknown(v)` with `v` equal to a named variant's value is not
/// produced by `From<raw>`, and converts back to `v` unchanged.
macro_rules! enum_with_unknown {
    (
        $(#[$enum_attr:meta])*
        pub enum $name:ident($ty:ty) {
            $( $(#[$variant_attr:meta])* $variant:ident = $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$enum_attr])*
        #[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Clone, Copy, Hash)]
        pub enum $name {
            $( $(#[$variant_attr])* $variant, )+
            /// A value with no name here, kept verbatim.
            Unknown($ty),
        }

        impl ::core::convert::From<$ty> for $name {
            #[inline]
            fn from(value: $ty) -> Self {
                match value {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl ::core::convert::From<$name> for $ty {
            #[inline]
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

pub mod arp;
pub mod checksum;
pub mod ethernet;
#[doc(hidden)]
pub mod exercise;
pub mod icmp;
pub mod ipv4;
mod pretty;
pub mod tcp;
pub mod udp;

#[cfg(test)]
mod proptests;

pub use arp::{ArpOperation, ArpPacket, ArpRepr};
pub use checksum::Delta;
pub use ethernet::{EtherType, EthernetFrame};
pub use icmp::{
    dst_unreachable, emit_error, error_quote_len, may_send_error_about, time_exceeded, Icmpv4Message, Icmpv4Packet,
};
pub use ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;

pub use arp::PACKET_LEN as ARP_PACKET_LEN;
pub use ethernet::HEADER_LEN as ETHERNET_HEADER_LEN;
pub use icmp::HEADER_LEN as ICMP_HEADER_LEN;
pub use ipv4::HEADER_LEN as IPV4_HEADER_LEN;
pub use tcp::HEADER_LEN as TCP_HEADER_LEN;
pub use udp::HEADER_LEN as UDP_HEADER_LEN;

/// Range aliases for the private `mod field` of each protocol file.
mod field {
    /// A fixed byte range of a header.
    pub type Field = ::core::ops::Range<usize>;
    /// Everything from an offset to the end.
    pub type Rest = ::core::ops::RangeFrom<usize>;
}

/// Why bytes could not be read as a packet. Small and `Copy`: the data path maps it
/// onto a `DropReason` without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field says.
    Truncated,
    /// A field holds a value the protocol forbids or masq does not handle (IPv4
    /// version, IHL below 5, non-Ethernet/IPv4 ARP, ...).
    Malformed,
    /// A checksum did not verify.
    BadChecksum,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated packet",
            Error::Malformed => "malformed packet",
            Error::BadChecksum => "bad checksum",
        })
    }
}

impl std::error::Error for Error {}

/// `Result` with a packet [`Error`].
pub type Result<T> = core::result::Result<T, Error>;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// Reads an address from a 6-byte slice. Panics if `data` is not 6 bytes long.
    pub fn from_bytes(data: &[u8]) -> EthernetAddress {
        let mut bytes = [0; 6];
        bytes.copy_from_slice(data);
        EthernetAddress(bytes)
    }

    /// The six bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// All ones.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// The I/G bit (least significant bit of the first octet) is set; broadcast is
    /// multicast too.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Neither multicast nor broadcast.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }

    /// The U/L bit (second least significant bit of the first octet) is set.
    pub const fn is_local(&self) -> bool {
        self.0[0] & 0x02 != 0
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", b[0], b[1], b[2], b[3], b[4], b[5])
    }
}

impl fmt::Debug for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for EthernetAddress {
    type Err = Error;

    /// Parses six hex octets separated by `:` or `-` (`02:00:00:00:00:01`); anything
    /// else is [`Error::Malformed`].
    fn from_str(s: &str) -> Result<EthernetAddress> {
        let mut bytes = [0u8; 6];
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut parts = s.split(sep);
        for byte in bytes.iter_mut() {
            let part = parts.next().ok_or(Error::Malformed)?;
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|c| c.is_ascii_hexdigit()) {
                return Err(Error::Malformed);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| Error::Malformed)?;
        }
        if parts.next().is_some() {
            return Err(Error::Malformed);
        }
        Ok(EthernetAddress(bytes))
    }
}

impl From<[u8; 6]> for EthernetAddress {
    fn from(bytes: [u8; 6]) -> Self {
        EthernetAddress(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_address_display_and_parse() {
        let mac = EthernetAddress([0x02, 0x00, 0x00, 0xab, 0xcd, 0xef]);
        assert_eq!(mac.to_string(), "02:00:00:ab:cd:ef");
        assert_eq!(format!("{mac:?}"), "02:00:00:ab:cd:ef");
        assert_eq!("02:00:00:ab:cd:ef".parse::<EthernetAddress>(), Ok(mac));
        assert_eq!("02-00-00-AB-CD-EF".parse::<EthernetAddress>(), Ok(mac));
        assert_eq!("2:0:0:ab:cd:ef".parse::<EthernetAddress>(), Ok(mac));
        for bad in [
            "",
            "02:00:00:ab:cd",
            "02:00:00:ab:cd:ef:01",
            "02:00:00:ab:cd:eg",
            "02:00:00:ab:cd:+f",
            "002:00:00:ab:cd:ef",
            "02::00:ab:cd:ef",
            "02:00-00:ab:cd:ef",
        ] {
            assert_eq!(bad.parse::<EthernetAddress>(), Err(Error::Malformed), "{bad}");
        }
    }

    #[test]
    fn ethernet_address_classes() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        let mcast = EthernetAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]);
        assert!(mcast.is_multicast() && !mcast.is_broadcast() && !mcast.is_unicast());
        let local = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
        assert!(local.is_unicast() && local.is_local() && !local.is_multicast());
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::Truncated.to_string(), "truncated packet");
        assert_eq!(Error::Malformed.to_string(), "malformed packet");
        assert_eq!(Error::BadChecksum.to_string(), "bad checksum");
    }
}
