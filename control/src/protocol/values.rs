//! Value formats shared by arguments and results: protocols and IPv4 prefixes, each a
//! string on the wire.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A translated protocol: TCP, UDP and ICMP by name, any other IP protocol (GRE, ESP,
/// ..., translated by address only) by number. On the wire: `"tcp"`, `"udp"`, `"icmp"`
/// or the number as a string (`"47"`); arguments also take the names `gre`, `esp` and
/// `ah`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    /// ICMP queries; the "port" of an ICMP session is the query identifier.
    Icmp,
    /// Another IP protocol, by number (never 1, 6 or 17): no ports.
    Other(u8),
}

impl Protocol {
    /// `tcp`, `udp`, `icmp`, or the protocol number.
    pub fn as_str(self) -> std::borrow::Cow<'static, str> {
        match self {
            Protocol::Tcp => "tcp".into(),
            Protocol::Udp => "udp".into(),
            Protocol::Icmp => "icmp".into(),
            Protocol::Other(n) => n.to_string().into(),
        }
    }

    /// The protocol with IP protocol number `n`.
    pub fn from_number(n: u8) -> Protocol {
        match n {
            1 => Protocol::Icmp,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            n => Protocol::Other(n),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.as_str())
    }
}

impl FromStr for Protocol {
    type Err = ();

    /// Case-insensitive name (`tcp`, `udp`, `icmp`, `gre`, `esp`, `ah`) or a number
    /// from 1 to 255.
    fn from_str(s: &str) -> Result<Protocol, ()> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "icmp" => Ok(Protocol::Icmp),
            "gre" => Ok(Protocol::Other(47)),
            "esp" => Ok(Protocol::Other(50)),
            "ah" => Ok(Protocol::Other(51)),
            n => match n.parse::<u8>() {
                Ok(0) | Err(_) => Err(()),
                Ok(n) => Ok(Protocol::from_number(n)),
            },
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_str())
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Protocol, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|()| {
            serde::de::Error::custom(format!(
                "unknown protocol {s:?} (expected tcp, udp, icmp, gre, esp, ah or a number 1-255)"
            ))
        })
    }
}

/// An IPv4 prefix, `a.b.c.d/len`; a plain address means `/32`. Serialized as that string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Net {
    /// The address as given (host bits are ignored when matching).
    pub addr: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub len: u8,
}

impl Ipv4Net {
    /// A single address.
    pub fn host(addr: Ipv4Addr) -> Ipv4Net {
        Ipv4Net { addr, len: 32 }
    }

    /// Whether `addr` lies in the prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = if self.len == 0 { 0 } else { u32::MAX << (32 - u32::from(self.len)) };
        u32::from(addr) & mask == u32::from(self.addr) & mask
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 32 {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.len)
        }
    }
}

impl FromStr for Ipv4Net {
    type Err = ();

    fn from_str(s: &str) -> Result<Ipv4Net, ()> {
        let (addr, len) = match s.split_once('/') {
            Some((addr, len)) => (addr, len.parse::<u8>().map_err(|_| ())?),
            None => (s, 32),
        };
        if len > 32 {
            return Err(());
        }
        Ok(Ipv4Net { addr: addr.parse().map_err(|_| ())?, len })
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| serde::de::Error::custom(format!("invalid IPv4 prefix {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_nets_parse_and_print() {
        assert_eq!("10.0.0.1".parse::<Ipv4Net>().unwrap().to_string(), "10.0.0.1");
        assert_eq!("10.0.0.0/8".parse::<Ipv4Net>().unwrap().to_string(), "10.0.0.0/8");
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        // Protocols: names, numbers, address-only ones as their number on the wire.
        assert_eq!("GRE".parse::<Protocol>(), Ok(Protocol::Other(47)));
        assert_eq!("50".parse::<Protocol>(), Ok(Protocol::Other(50)));
        assert_eq!("6".parse::<Protocol>(), Ok(Protocol::Tcp));
        assert!("0".parse::<Protocol>().is_err() && "256".parse::<Protocol>().is_err());
        assert_eq!(serde_json::to_string(&Protocol::Other(47)).unwrap(), r#""47""#);
        assert_eq!(serde_json::to_string(&Protocol::Udp).unwrap(), r#""udp""#);
        assert_eq!(serde_json::from_str::<Protocol>(r#""esp""#).unwrap(), Protocol::Other(50));
        assert!(serde_json::from_str::<Protocol>(r#""sctp""#).is_err());
        assert!("10.0.0.0/8".parse::<Ipv4Net>().unwrap().contains(Ipv4Addr::new(10, 255, 0, 1)));
    }
}
