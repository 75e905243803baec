//! Deterministic NAT (RFC 7422): each inside address of a table gets a fixed external
//! address and port range, computed from its position — nothing to log per session,
//! and "who had this address and port" is arithmetic.
//!
//! A table maps an inside prefix of `N` addresses onto an outside prefix of `M`
//! addresses. `r = ⌈N / M⌉` inside hosts share each external address; each gets
//! `P = ⌊64512 / r⌋` ports of the range 1024–65535:
//!
//! ```text
//!   host i (offset in the inside prefix)
//!     external address = outside base + ⌊i / r⌋
//!     ports            = 1024 + (i mod r)·P  ..=  1024 + (i mod r)·P + P − 1
//!   and back: (address a, port p ≥ 1024) → i = (a − base)·r + ⌊(p − 1024) / P⌋
//! ```
//!
//! Inside addresses outside every table use dynamic NAT as usual; the tables' external
//! addresses are theirs alone (masqd refuses one that is also in the dynamic pool).
//! Within its range a host's mappings are allocated like any other (keep the source port
//! if it is in the range and free, else the next free one), from a bitmap per external
//! address and protocol that every worker keeps for its own subscribers: a host's
//! traffic from inside reaches its worker by the usual subscriber steering, and a
//! packet from outside to a deterministic (address, port) is steered to the worker of
//! the host the arithmetic names ([`DetTables::owner_host`]), so ranges never cross
//! workers and nothing is shared.
//!
//! Freed ports are not quarantined: a range belongs to one host, so a reused port can
//! only ever reach that same host.

use std::net::Ipv4Addr;

use super::key::Proto;
use super::ports::PortRange;

/// First port of the deterministic range (RFC 7422 keeps the well-known ports out).
pub const DET_FIRST_PORT: u16 = 1024;
/// Ports per external address given out: 1024..=65535.
pub const DET_PORTS: u32 = 65536 - DET_FIRST_PORT as u32;
/// External addresses of all tables together, at most (each costs every worker 24 KiB).
pub const MAX_DET_ADDRS: u32 = 1024;

/// One `[[nat.deterministic]]` table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetTable {
    inside: u32,
    inside_len: u32,
    outside: u32,
    outside_len: u32,
    /// Hosts per external address.
    ratio: u32,
    /// Ports per host.
    ports: u32,
}

/// Why a table is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DetError {
    #[error("{hosts} inside addresses on {addrs} outside addresses leave less than one port each")]
    TooFewPorts { hosts: u32, addrs: u32 },
    #[error("the tables' outside prefixes hold more than {MAX_DET_ADDRS} addresses")]
    TooManyAddresses,
    #[error("inside prefixes overlap")]
    InsideOverlap,
    #[error("outside prefixes overlap")]
    OutsideOverlap,
}

/// A host's deterministic mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DetMapping {
    pub inside: Ipv4Addr,
    pub outside: Ipv4Addr,
    pub ports: PortRange,
}

fn prefix(addr: Ipv4Addr, len: u8) -> (u32, u32) {
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len)) };
    (u32::from(addr) & mask, 1u32.checked_shl(32 - u32::from(len)).unwrap_or(0).max(1))
}

impl DetTable {
    /// A table from an inside and an outside prefix (address and length).
    pub fn new(inside: (Ipv4Addr, u8), outside: (Ipv4Addr, u8)) -> Result<DetTable, DetError> {
        let (inside, inside_len) = prefix(inside.0, inside.1);
        let (outside, outside_len) = prefix(outside.0, outside.1);
        if outside_len > MAX_DET_ADDRS {
            return Err(DetError::TooManyAddresses);
        }
        let ratio = inside_len.div_ceil(outside_len);
        let ports = DET_PORTS / ratio;
        if ports == 0 {
            return Err(DetError::TooFewPorts { hosts: inside_len, addrs: outside_len });
        }
        Ok(DetTable { inside, inside_len, outside, outside_len, ratio, ports })
    }

    pub fn inside_contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a).wrapping_sub(self.inside) < self.inside_len
    }

    pub fn outside_contains(&self, a: Ipv4Addr) -> bool {
        u32::from(a).wrapping_sub(self.outside) < self.outside_len
    }

    /// Ports each host gets.
    pub fn ports_per_host(&self) -> u32 {
        self.ports
    }

    /// Inside hosts.
    pub fn hosts(&self) -> u32 {
        self.inside_len
    }

    /// The mapping of inside address `a`, if the table covers it.
    pub fn map(&self, a: Ipv4Addr) -> Option<DetMapping> {
        let i = u32::from(a).wrapping_sub(self.inside);
        if i >= self.inside_len {
            return None;
        }
        let lo = u32::from(DET_FIRST_PORT) + (i % self.ratio) * self.ports;
        Some(DetMapping {
            inside: a,
            outside: Ipv4Addr::from(self.outside + i / self.ratio),
            ports: PortRange::new(lo as u16, (lo + self.ports - 1) as u16),
        })
    }

    /// The inside host that owns external (address, port), if any.
    pub fn reverse(&self, a: Ipv4Addr, port: u16) -> Option<Ipv4Addr> {
        let x = u32::from(a).wrapping_sub(self.outside);
        if x >= self.outside_len || port < DET_FIRST_PORT {
            return None;
        }
        let slot = u32::from(port - DET_FIRST_PORT) / self.ports;
        if slot >= self.ratio {
            return None;
        }
        let i = x * self.ratio + slot;
        (i < self.inside_len).then(|| Ipv4Addr::from(self.inside + i))
    }

    /// Every host's mapping, in address order (the start-up log records).
    pub fn mappings(&self) -> impl Iterator<Item = DetMapping> + '_ {
        (0..self.inside_len).filter_map(move |i| self.map(Ipv4Addr::from(self.inside + i)))
    }

    /// The table's external addresses.
    pub fn outside_addrs(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        (0..self.outside_len).map(move |i| Ipv4Addr::from(self.outside + i))
    }
}

/// Every deterministic table, checked for overlaps; shared read-only.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DetTables {
    tables: Vec<DetTable>,
    /// All external addresses, sorted.
    addrs: Vec<Ipv4Addr>,
}

impl DetTables {
    pub fn new(tables: Vec<DetTable>) -> Result<DetTables, DetError> {
        for (i, a) in tables.iter().enumerate() {
            for b in &tables[..i] {
                let overlap = |a0: u32, al: u32, b0: u32, bl: u32| {
                    u64::from(a0) < u64::from(b0) + u64::from(bl) && u64::from(b0) < u64::from(a0) + u64::from(al)
                };
                if overlap(a.inside, a.inside_len, b.inside, b.inside_len) {
                    return Err(DetError::InsideOverlap);
                }
                if overlap(a.outside, a.outside_len, b.outside, b.outside_len) {
                    return Err(DetError::OutsideOverlap);
                }
            }
        }
        let mut addrs: Vec<Ipv4Addr> = tables.iter().flat_map(|t| t.outside_addrs().collect::<Vec<_>>()).collect();
        if addrs.len() > MAX_DET_ADDRS as usize {
            return Err(DetError::TooManyAddresses);
        }
        addrs.sort();
        Ok(DetTables { tables, addrs })
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn tables(&self) -> &[DetTable] {
        &self.tables
    }

    /// External addresses of every table, sorted.
    pub fn addrs(&self) -> &[Ipv4Addr] {
        &self.addrs
    }

    pub fn is_outside(&self, a: Ipv4Addr) -> bool {
        self.addrs.binary_search(&a).is_ok()
    }

    /// The deterministic mapping of inside address `a`.
    #[inline]
    pub fn map(&self, a: Ipv4Addr) -> Option<DetMapping> {
        self.tables.iter().find_map(|t| t.map(a))
    }

    /// The inside host owning external (address, port).
    pub fn owner_host(&self, a: Ipv4Addr, port: u16) -> Option<Ipv4Addr> {
        self.tables.iter().find_map(|t| t.reverse(a, port))
    }
}

/// A worker's port state for the deterministic external addresses: one bitmap of
/// 1024–65535 per (address, protocol).
pub(crate) struct DetPorts {
    maps: Box<[u64]>,
}

const WORDS: usize = (DET_PORTS as usize).div_ceil(64);

impl DetPorts {
    pub fn new(addrs: usize) -> DetPorts {
        DetPorts { maps: vec![0u64; addrs * Proto::ALL.len() * WORDS].into_boxed_slice() }
    }

    pub fn memory_bytes(&self) -> usize {
        self.maps.len() * 8
    }

    fn base(addr_ix: usize, proto: Proto) -> usize {
        (addr_ix * Proto::ALL.len() + proto.code()) * WORDS
    }

    fn bit(port: u16) -> usize {
        usize::from(port - DET_FIRST_PORT)
    }

    /// Take `want` if it is in `range` and free, else the first free port of `range`.
    pub fn alloc(&mut self, addr_ix: usize, proto: Proto, range: PortRange, want: u16) -> Option<u16> {
        let base = Self::base(addr_ix, proto);
        let map = &mut self.maps[base..base + WORDS];
        let test = |m: &[u64], b: usize| m[b / 64] & (1 << (b % 64)) != 0;
        let pick = if range.contains(want) && !test(map, Self::bit(want)) {
            Some(want)
        } else {
            // Word at a time from the range's first bit.
            let (lo, hi) = (Self::bit(range.lo), Self::bit(range.hi));
            let mut i = lo;
            let mut found = None;
            while i <= hi {
                let w = i / 64;
                let mut word = map[w] | ((1u64 << (i % 64)) - 1);
                let top = hi.min((w * 64) + 63) - w * 64;
                if top < 63 {
                    word |= !0u64 << (top + 1);
                }
                if word != u64::MAX {
                    found = Some((w * 64 + word.trailing_ones() as usize) as u16 + DET_FIRST_PORT);
                    break;
                }
                i = w * 64 + 64;
            }
            found
        }?;
        let b = Self::bit(pick);
        map[b / 64] |= 1 << (b % 64);
        Some(pick)
    }

    pub fn free(&mut self, addr_ix: usize, proto: Proto, port: u16) {
        if port < DET_FIRST_PORT {
            return;
        }
        let base = Self::base(addr_ix, proto);
        let b = Self::bit(port);
        self.maps[base + b / 64] &= !(1 << (b % 64));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn rfc7422_arithmetic_and_its_inverse() {
        // 256 hosts on one address: 252 ports each.
        let t = DetTable::new((a("100.64.0.0"), 24), (a("203.0.113.2"), 32)).unwrap();
        assert_eq!(t.ports_per_host(), 252);
        let m = t.map(a("100.64.0.0")).unwrap();
        assert_eq!((m.outside, m.ports), (a("203.0.113.2"), PortRange::new(1024, 1275)));
        let m = t.map(a("100.64.0.255")).unwrap();
        assert_eq!(m.ports, PortRange::new(1024 + 255 * 252, 65535));
        assert_eq!(t.map(a("100.64.1.0")), None);
        for (i, m) in t.mappings().enumerate() {
            assert_eq!(m.inside, Ipv4Addr::from(u32::from(a("100.64.0.0")) + i as u32));
            for p in [m.ports.lo, m.ports.hi, m.ports.lo + (m.ports.hi - m.ports.lo) / 2] {
                assert_eq!(t.reverse(m.outside, p), Some(m.inside), "{m:?} port {p}");
            }
        }
        assert_eq!(t.mappings().count(), 256);
        assert_eq!(t.reverse(a("203.0.113.2"), 80), None, "below the range");
        assert_eq!(t.reverse(a("203.0.113.2"), 65535), Some(a("100.64.0.255")), "the ranges fill the port space");
        // 2048 hosts on one address: 31 ports each, the top of the space unused.
        let big = DetTable::new((a("100.64.0.0"), 21), (a("203.0.113.2"), 32)).unwrap();
        assert_eq!(big.ports_per_host(), 31);
        assert_eq!(big.reverse(a("203.0.113.2"), 65535), None, "past the last host's range");
        assert_eq!(big.reverse(a("203.0.113.2"), 1024 + 2047 * 31), Some(a("100.64.7.255")));
        assert_eq!(t.reverse(a("203.0.113.3"), 2000), None);

        // 1024 hosts over four addresses: 256 per address, ranges repeat per address.
        let t = DetTable::new((a("10.0.0.0"), 22), (a("198.51.100.0"), 30)).unwrap();
        let m = t.map(a("10.0.1.7")).unwrap(); // host 263: address 1, slot 7
        assert_eq!(m.outside, a("198.51.100.1"));
        assert_eq!(m.ports.lo, 1024 + 7 * 252);
        assert_eq!(t.reverse(m.outside, m.ports.lo + 3), Some(a("10.0.1.7")));
        // Fewer hosts than addresses: one host per address, the whole range.
        let t = DetTable::new((a("10.0.0.0"), 31), (a("198.51.100.0"), 30)).unwrap();
        assert_eq!(t.map(a("10.0.0.1")).unwrap().ports, PortRange::new(1024, 65535));
        assert_eq!(t.reverse(a("198.51.100.3"), 5000), None, "an address no host maps to");
        assert_eq!(
            DetTable::new((a("10.0.0.0"), 8), (a("198.51.100.0"), 32)),
            Err(DetError::TooFewPorts { hosts: 1 << 24, addrs: 1 })
        );
    }

    #[test]
    fn tables_must_not_overlap() {
        let t1 = DetTable::new((a("10.0.0.0"), 24), (a("198.51.100.0"), 31)).unwrap();
        let t2 = DetTable::new((a("10.0.0.128"), 25), (a("198.51.100.8"), 32)).unwrap();
        let t3 = DetTable::new((a("10.0.1.0"), 24), (a("198.51.100.1"), 32)).unwrap();
        let t4 = DetTable::new((a("10.0.1.0"), 24), (a("198.51.100.2"), 32)).unwrap();
        assert_eq!(DetTables::new(vec![t1, t2]), Err(DetError::InsideOverlap));
        assert_eq!(DetTables::new(vec![t1, t3]), Err(DetError::OutsideOverlap));
        let ok = DetTables::new(vec![t4, t1]).unwrap();
        assert_eq!(ok.addrs(), &[a("198.51.100.0"), a("198.51.100.1"), a("198.51.100.2")]);
        assert!(ok.is_outside(a("198.51.100.2")) && !ok.is_outside(a("198.51.100.3")));
        assert_eq!(ok.map(a("10.0.1.9")).unwrap().outside, a("198.51.100.2"));
        assert_eq!(ok.owner_host(a("198.51.100.2"), 1024 + 9 * 252), Some(a("10.0.1.9")));
    }

    #[test]
    fn ports_stay_in_the_range() {
        let mut p = DetPorts::new(2);
        let r = PortRange::new(1100, 1102);
        assert_eq!(p.alloc(1, Proto::Udp, r, 1101), Some(1101), "source port kept");
        assert_eq!(p.alloc(1, Proto::Udp, r, 1101), Some(1100));
        assert_eq!(p.alloc(1, Proto::Udp, r, 5000), Some(1102));
        assert_eq!(p.alloc(1, Proto::Udp, r, 1101), None, "range full");
        assert_eq!(p.alloc(1, Proto::Tcp, r, 1101), Some(1101), "protocols apart");
        assert_eq!(p.alloc(0, Proto::Udp, r, 1101), Some(1101), "addresses apart");
        p.free(1, Proto::Udp, 1100);
        assert_eq!(p.alloc(1, Proto::Udp, r, 9), Some(1100));
        let top = PortRange::new(65400, 65535);
        for port in 65400..=65535u16 {
            assert_eq!(p.alloc(0, Proto::Icmp, top, 0), Some(port));
        }
        assert_eq!(p.alloc(0, Proto::Icmp, top, 0), None);
    }
}
