//! The Internet checksum: full computation (RFC 1071) and incremental update (RFC 1624).
//!
//! RFC 1071, "Computing the Internet Checksum", §1:
//!
//! > (1) Adjacent octets to be checksummed are paired to form 16-bit integers, and the
//! > 1's complement sum of these 16-bit integers is formed.
//! >
//! > (2) To generate a checksum, the checksum field itself is cleared, the 16-bit 1's
//! > complement sum is computed over the octets concerned, and the 1's complement of
//! > this sum is placed in the checksum field.
//! >
//! > (3) To check a checksum, the 1's complement sum is computed over the same set of
//! > octets, including the checksum field. If the result is all 1 bits (-0 in 1's
//! > complement arithmetic), the check succeeds.
//!
//! [`data`], [`combine`] and [`pseudo_header`] return the *folded sum* (not yet
//! complemented), so partial sums over disjoint pieces can be [`combine`]d; a field is
//! filled with `!combine(..)` and verifies when `combine(..) == 0xffff`.
//!
//! The incremental functions ([`update16`], [`update32`], [`Delta`]) take and return
//! the checksum *field* as it sits in the header (already complemented).

use std::net::Ipv4Addr;

/// Folds a wide sum of 16-bit words into 16 bits with end-around carry.
///
/// Keeps `sum mod 0xffff`; a non-zero input gives a result in `1..=0xffff`, so a sum of
/// non-zero data never folds to `0x0000` ("+0"), matching RFC 1071's reference code.
///
/// Four fixed steps, no loop: 64 → 33 → 18 → 17 → 16 bits (2^32 ≡ 2^16 ≡ 1).
#[inline]
const fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// [`data`] of an option-less IPv4 header (20 bytes): five 32-bit words, no loop.
#[inline]
pub fn header20(h: &[u8; 20]) -> u16 {
    let w = |i: usize| u64::from(u32::from_be_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    fold(w(0) + w(4) + w(8) + w(12) + w(16))
}

/// The RFC 1071 one's complement sum of `bytes` as big-endian 16-bit words, folded to
/// 16 bits and **not** complemented. An odd trailing byte is padded with a zero octet on
/// its right, as RFC 1071 §4.1 does.
///
/// Fast path: since 2^16 ≡ 1 (mod 2^16 − 1), big-endian 32-bit words can be summed
/// into a 64-bit accumulator and folded once at the end (RFC 1071 §2(C), "Parallel
/// Summation"); 32-byte chunks let the compiler unroll and vectorise.
pub fn data(bytes: &[u8]) -> u16 {
    let mut acc: u64 = 0;
    let mut chunks = bytes.chunks_exact(32);
    for chunk in &mut chunks {
        let mut part: u64 = 0;
        for word in chunk.chunks_exact(4) {
            part += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
        }
        acc += part;
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(4);
    for word in &mut words {
        acc += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
    }
    let tail = words.remainder();
    let mut pairs = tail.chunks_exact(2);
    for pair in &mut pairs {
        acc += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = pairs.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold(acc)
}

/// One's complement sum of already-folded partial sums (e.g. a pseudo-header sum and a
/// data sum), folded, not complemented.
pub fn combine(sums: &[u16]) -> u16 {
    fold(sums.iter().map(|&s| u64::from(s)).sum())
}

/// The folded sum of the IPv4 pseudo-header that TCP and UDP checksums cover.
///
/// RFC 768 (UDP), "Fields":
///
/// > The pseudo header conceptually prefixed to the UDP header contains the source
/// > address, the destination address, the protocol, and the UDP length.
///
/// `length` is the transport length (header + payload); it is summed as two 16-bit
/// words, so any `u32` gives the same result as the 16-bit field for lengths that fit.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, length: u32) -> u16 {
    let s = u32::from(src);
    let d = u32::from(dst);
    fold(
        u64::from(s >> 16)
            + u64::from(s & 0xffff)
            + u64::from(d >> 16)
            + u64::from(d & 0xffff)
            + u64::from(proto)
            + u64::from(length >> 16)
            + u64::from(length & 0xffff),
    )
}

/// Incrementally updates a checksum field after a 16-bit word of the covered data
/// changed from `old` to `new` (RFC 1624 eqn. 3).
///
/// RFC 1624, "Computation of the Internet Checksum via Incremental Update", §3:
///
/// > Given the following notation:
/// >
/// > ```text
/// >     HC  - old checksum in header
/// >     C   - one's complement sum of old header
/// >     HC' - new checksum in header
/// >     C'  - one's complement sum of new header
/// >     m   - old value of a 16-bit field
/// >     m'  - new value of a 16-bit field
/// > ```
/// >
/// > ```text
/// >     HC' = ~(C + (-m) + m')    --    [Eqn. 3]
/// >         = ~(~HC + ~m + m')
/// > ```
/// >
/// > This equation produces the correct checksum even if the old checksum was
/// > [0xFFFF or] the result [of Eqn. 2 would have been] -0 [...] Eqn. 3 is the
/// > recommended way to update a checksum incrementally.
///
/// The result equals full recomputation for any data that is not all zero (and an IPv4
/// header, or a TCP/UDP pseudo-header with its protocol number, never is).
#[inline]
pub fn update16(csum: u16, old: u16, new: u16) -> u16 {
    Delta::new().replace16(old, new).apply(csum)
}

/// [`update16`] for a 32-bit field (an IPv4 address): two words at once.
#[inline]
pub fn update32(csum: u16, old: u32, new: u32) -> u16 {
    Delta::new().replace32(old, new).apply(csum)
}

/// A 16- or 32-bit field that [`update_udp`] can replace.
pub trait Word: Copy + sealed::Sealed {
    /// Adds `old -> new` to `delta`.
    fn replace_in(delta: Delta, old: Self, new: Self) -> Delta;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u16 {}
    impl Sealed for u32 {}
}

impl Word for u16 {
    #[inline]
    fn replace_in(delta: Delta, old: u16, new: u16) -> Delta {
        delta.replace16(old, new)
    }
}

impl Word for u32 {
    #[inline]
    fn replace_in(delta: Delta, old: u32, new: u32) -> Delta {
        delta.replace32(old, new)
    }
}

/// [`update16`]/[`update32`] for a UDP checksum field, honouring RFC 768's zero:
///
/// > If the computed checksum is zero, it is transmitted as all ones (the equivalent
/// > in one's complement arithmetic). An all zero transmitted checksum value means that
/// > the transmitter generated no checksum.
///
/// A field of `0` ("no checksum") stays `0`; an updated checksum that comes out `0`
/// is written as `0xffff`.
#[inline]
pub fn update_udp<W: Word>(csum: u16, old: W, new: W) -> u16 {
    W::replace_in(Delta::new(), old, new).apply_udp(csum)
}

/// A precomputed RFC 1624 checksum adjustment: the folded one's complement sum of
/// `~m + m'` over every rewritten 16-bit word.
///
/// A NAT session stores one per direction and per checksum (IPv4 header: addresses;
/// TCP/UDP: addresses via the pseudo-header, plus ports), so a hit is one add and a
/// fold per checksum, with nothing recomputed:
///
/// ```
/// use dataplane::packet::checksum::{self, Delta};
/// use std::net::Ipv4Addr;
/// let (old_src, new_src) = (Ipv4Addr::new(100, 64, 0, 2), Ipv4Addr::new(203, 0, 113, 1));
/// let l4 = Delta::default()
///     .replace32(old_src.into(), new_src.into())
///     .replace16(40000, 1024);
/// let csum = 0x1c46;
/// assert_eq!(
///     l4.apply(csum),
///     checksum::update16(checksum::update32(csum, old_src.into(), new_src.into()), 40000, 1024)
/// );
/// ```
#[derive(Copy, Clone, Default, Debug, PartialEq, Eq, Hash)]
pub struct Delta(u16);

impl Delta {
    /// No change.
    pub const fn new() -> Delta {
        Delta(0)
    }

    /// Adds the replacement of the 16-bit word `old` by `new`.
    #[inline]
    #[must_use]
    pub const fn replace16(self, old: u16, new: u16) -> Delta {
        Delta(fold(self.0 as u64 + !old as u64 + new as u64))
    }

    /// Adds the replacement of the 32-bit field `old` by `new` (two 16-bit words).
    #[inline]
    #[must_use]
    pub const fn replace32(self, old: u32, new: u32) -> Delta {
        self.replace16((old >> 16) as u16, (new >> 16) as u16).replace16(old as u16, new as u16)
    }

    /// Adds the replacement of IPv4 address `old` by `new`.
    #[inline]
    #[must_use]
    pub fn replace_addr(self, old: Ipv4Addr, new: Ipv4Addr) -> Delta {
        self.replace32(old.into(), new.into())
    }

    /// Both adjustments, one after the other.
    #[inline]
    #[must_use]
    pub const fn merge(self, other: Delta) -> Delta {
        Delta(fold(self.0 as u64 + other.0 as u64))
    }

    /// The adjustment that undoes this one (every `old -> new` becomes `new -> old`):
    /// the other direction of a NAT session.
    #[inline]
    #[must_use]
    pub const fn negate(self) -> Delta {
        Delta(!self.0)
    }

    /// True when applying it changes no valid checksum.
    pub const fn is_zero(self) -> bool {
        self.0 == 0 || self.0 == 0xffff
    }

    /// Applies the adjustment to a checksum field (IPv4 header, TCP, ICMP):
    /// `HC' = ~(~HC + delta)`, RFC 1624 eqn. 3.
    #[inline]
    pub const fn apply(self, csum: u16) -> u16 {
        !fold(!csum as u64 + self.0 as u64)
    }

    /// [`apply`](Self::apply) for a UDP checksum field: `0` ("no checksum") stays `0`,
    /// a result of `0` is written `0xffff` (RFC 768).
    #[inline]
    pub const fn apply_udp(self, csum: u16) -> u16 {
        if csum == 0 {
            return 0;
        }
        match self.apply(csum) {
            0 => 0xffff,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ipv4::Ipv4Packet;
    use crate::packet::tcp::TcpPacket;
    use crate::packet::udp::UdpPacket;
    use proptest::prelude::*;

    /// A straight port of RFC 1071 §4.1's reference C code.
    fn rfc1071_reference(bytes: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < bytes.len() {
            sum += u32::from(u16::from_be_bytes([bytes[i], bytes[i + 1]]));
            i += 2;
        }
        if i < bytes.len() {
            sum += u32::from(bytes[i]) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3's numerical example: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let bytes = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(data(&bytes), 0xddf2);
        assert_eq!(rfc1071_reference(&bytes), 0xddf2);
    }

    #[test]
    fn data_edge_cases() {
        assert_eq!(data(&[]), 0);
        assert_eq!(data(&[0xab]), 0xab00);
        assert_eq!(data(&[0xff, 0xff]), 0xffff);
        assert_eq!(data(&[0xff; 1500]), 0xffff);
        assert_eq!(data(&[0; 1500]), 0);
        // 0x8000 + 0x8000 = 0x10000 -> end-around carry -> 0x0001
        assert_eq!(data(&[0x80, 0, 0x80, 0]), 1);
    }

    #[test]
    fn ipv4_header_example() {
        // A header from the wild (Wikipedia's "IPv4 header checksum" example): b861.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8,
            0x00, 0xc7,
        ];
        assert_eq!(data(&hdr), 0xffff);
        let mut zeroed = hdr;
        zeroed[10] = 0;
        zeroed[11] = 0;
        assert_eq!(!data(&zeroed), 0xb861);
    }

    #[test]
    fn combine_and_pseudo_header() {
        assert_eq!(combine(&[]), 0);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
        assert_eq!(combine(&[0x8000, 0x8000]), 0x0001);
        let src = Ipv4Addr::new(192, 168, 0, 1);
        let dst = Ipv4Addr::new(192, 168, 0, 199);
        let mut pseudo = [0u8; 12];
        pseudo[0..4].copy_from_slice(&src.octets());
        pseudo[4..8].copy_from_slice(&dst.octets());
        pseudo[9] = 17;
        pseudo[10..12].copy_from_slice(&95u16.to_be_bytes());
        assert_eq!(pseudo_header(src, dst, 17, 95), data(&pseudo));
        // A length above 16 bits sums as two words.
        assert_eq!(pseudo_header(src, dst, 6, 0x0001_0002), combine(&[pseudo_header(src, dst, 6, 0), 1, 2]));
    }

    #[test]
    fn rfc1624_examples() {
        // RFC 1624 §4: HC = 0xdd2f, m = 0x5555, m' = 0x3285 -> HC' = 0x0000.
        assert_eq!(update16(0xdd2f, 0x5555, 0x3285), 0x0000);
        // and back: the -0 / +0 case eqn. 2 gets wrong; eqn. 3 gives 0xdd2f.
        assert_eq!(update16(0x0000, 0x3285, 0x5555), 0xdd2f);
        // UDP keeps "no checksum" and turns a computed zero into all ones.
        assert_eq!(update_udp(0x0000u16, 0x5555u16, 0x3285u16), 0x0000);
        assert_eq!(update_udp(0xdd2fu16, 0x5555u16, 0x3285u16), 0xffff);
        assert_eq!(update_udp(0xffffu16, 0x3285u16, 0x5555u16), 0xdd2f);
    }

    #[test]
    fn delta_algebra() {
        let d = Delta::new().replace32(0x6440_0002, 0xcb00_7101).replace16(40000, 1024);
        let csum = 0x1234;
        assert_eq!(d.apply(csum), update16(update32(csum, 0x6440_0002, 0xcb00_7101), 40000, 1024));
        assert_eq!(d.negate().apply(d.apply(csum)), csum);
        assert!(d.merge(d.negate()).is_zero());
        assert!(Delta::default().is_zero());
        assert_eq!(Delta::new().apply(csum), csum);
        assert_eq!(
            Delta::new().replace_addr(Ipv4Addr::new(1, 2, 3, 4), Ipv4Addr::new(5, 6, 7, 8)),
            Delta::new().replace32(0x0102_0304, 0x0506_0708)
        );
    }

    /// What a NAT does to a packet: which fields it rewrites.
    #[derive(Debug, Clone)]
    struct Rewrite {
        src: Option<[u8; 4]>,
        dst: Option<[u8; 4]>,
        sport: Option<u16>,
        dport: Option<u16>,
        ttl_dec: bool,
    }

    fn rewrite_strategy() -> impl Strategy<Value = Rewrite> {
        (
            proptest::option::of(any::<[u8; 4]>()),
            proptest::option::of(any::<[u8; 4]>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
            any::<bool>(),
        )
            .prop_map(|(src, dst, sport, dport, ttl_dec)| Rewrite { src, dst, sport, dport, ttl_dec })
    }

    /// Builds IPv4 + TCP (proto 6) or UDP (17) with valid checksums. `slack` is the
    /// first payload word, used to steer the checksum onto the 0x0000/0xffff corners.
    fn build(proto: u8, src: [u8; 4], dst: [u8; 4], ttl: u8, payload: &[u8], slack: u16) -> Vec<u8> {
        let l4_hdr = if proto == 6 { 20 } else { 8 };
        let l4_len = l4_hdr + 2 + payload.len();
        let mut buf = vec![0u8; 20 + l4_len];
        buf[0] = 0x45;
        let total_len = buf.len() as u16;
        buf[2..4].copy_from_slice(&total_len.to_be_bytes());
        buf[8] = ttl;
        buf[9] = proto;
        buf[12..16].copy_from_slice(&src);
        buf[16..20].copy_from_slice(&dst);
        let l4 = &mut buf[20..];
        l4[0..2].copy_from_slice(&1234u16.to_be_bytes());
        l4[2..4].copy_from_slice(&80u16.to_be_bytes());
        if proto == 6 {
            l4[12] = 5 << 4;
            l4[13] = 0x18;
        } else {
            l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        }
        l4[l4_hdr..l4_hdr + 2].copy_from_slice(&slack.to_be_bytes());
        l4[l4_hdr + 2..].copy_from_slice(payload);
        fill(&mut buf);
        buf
    }

    /// Full recomputation of both checksums.
    fn fill(buf: &mut [u8]) {
        let mut ip = Ipv4Packet::new_unchecked(&mut *buf);
        ip.fill_checksum();
        let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), u8::from(ip.next_header()));
        let l4 = ip.payload_mut();
        if proto == 6 {
            TcpPacket::new_unchecked(l4).fill_checksum(src, dst);
        } else {
            UdpPacket::new_unchecked(l4).fill_checksum(src, dst);
        }
    }

    fn l4_csum(buf: &[u8]) -> u16 {
        u16::from_be_bytes(if buf[9] == 6 { [buf[36], buf[37]] } else { [buf[26], buf[27]] })
    }

    /// Applies `rw` by plain writes, leaving checksums stale.
    fn apply_raw(buf: &mut [u8], rw: &Rewrite) {
        if let Some(a) = rw.src {
            buf[12..16].copy_from_slice(&a);
        }
        if let Some(a) = rw.dst {
            buf[16..20].copy_from_slice(&a);
        }
        if let Some(p) = rw.sport {
            buf[20..22].copy_from_slice(&p.to_be_bytes());
        }
        if let Some(p) = rw.dport {
            buf[22..24].copy_from_slice(&p.to_be_bytes());
        }
        if rw.ttl_dec && buf[8] > 0 {
            buf[8] -= 1;
        }
    }

    /// Applies `rw` the way the NAT does: precomputed deltas plus the view rewriters.
    fn apply_incremental(buf: &mut [u8], rw: &Rewrite) {
        let proto = buf[9];
        let mut ip = Ipv4Packet::new_checked(&mut *buf).unwrap();
        let mut l4 = Delta::new();
        if let Some(a) = rw.src {
            l4 = l4.replace_addr(ip.src_addr(), a.into());
            ip.set_src_addr_update_checksum(a.into());
        }
        if let Some(a) = rw.dst {
            l4 = l4.replace_addr(ip.dst_addr(), a.into());
            ip.set_dst_addr_update_checksum(a.into());
        }
        if rw.ttl_dec && ip.ttl() > 0 {
            ip.decrement_ttl();
        }
        let payload = ip.payload_mut();
        if proto == 6 {
            let mut tcp = TcpPacket::new_checked(payload).unwrap();
            if let Some(p) = rw.sport {
                l4 = l4.replace16(tcp.src_port(), p);
                tcp.set_src_port(p);
            }
            if let Some(p) = rw.dport {
                l4 = l4.replace16(tcp.dst_port(), p);
                tcp.set_dst_port(p);
            }
            tcp.apply_delta(l4);
        } else {
            let mut udp = UdpPacket::new_checked(payload).unwrap();
            if let Some(p) = rw.sport {
                l4 = l4.replace16(udp.src_port(), p);
                udp.set_src_port(p);
            }
            if let Some(p) = rw.dport {
                l4 = l4.replace16(udp.dst_port(), p);
                udp.set_dst_port(p);
            }
            udp.apply_delta(l4);
        }
    }

    /// The slack word that makes the L4 sum of `buf` (checksum field included, as
    /// filled) land on 0xffff before filling, i.e. a computed checksum of zero.
    fn zero_slack(buf: &[u8]) -> u16 {
        let proto = buf[9];
        let ip = Ipv4Packet::new_unchecked(buf);
        let l4 = ip.payload();
        let mut zeroed = l4.to_vec();
        let (c, slack) = if proto == 6 { (16, 20) } else { (6, 8) };
        zeroed[c] = 0;
        zeroed[c + 1] = 0;
        zeroed[slack] = 0;
        zeroed[slack + 1] = 0;
        let s = combine(&[pseudo_header(ip.src_addr(), ip.dst_addr(), proto, l4.len() as u32), data(&zeroed)]);
        // s + slack must be ≡ 0 (mod 0xffff); any non-zero sum folds to 0xffff.
        !s
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn data_matches_rfc1071_reference(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(data(&bytes), rfc1071_reference(&bytes));
        }

        #[test]
        fn split_sums_combine(bytes in proptest::collection::vec(any::<u8>(), 0..600), at in 0usize..300) {
            let at = (at * 2).min(bytes.len() & !1);
            prop_assert_eq!(
                combine(&[data(&bytes[..at]), data(&bytes[at..])]),
                rfc1071_reference(&bytes)
            );
        }

        /// Eqn. 3 against recomputation for a single word, over raw data.
        #[test]
        fn update16_matches_recompute(
            mut words in proptest::collection::vec(any::<u16>(), 2..64),
            idx in any::<prop::sample::Index>(),
            new in any::<u16>(),
        ) {
            // Word 0 is the checksum field; make the data non-zero.
            words[1] |= 1;
            let bytes = |w: &[u16]| w.iter().flat_map(|x| x.to_be_bytes()).collect::<Vec<u8>>();
            words[0] = 0;
            words[0] = !data(&bytes(&words));
            let i = 1 + idx.index(words.len() - 1);
            let old = words[i];
            words[i] = new;
            let csum = words[0];
            words[0] = 0;
            let recomputed = !data(&bytes(&words));
            prop_assert_eq!(update16(csum, old, new), recomputed);
        }

        /// Random packets, random NAT rewrites: incremental == recomputed, including
        /// packets steered so the L4 checksum is zero before or after the rewrite.
        #[test]
        fn nat_rewrite_matches_recompute(
            tcp in any::<bool>(),
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            ttl in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            slack in any::<u16>(),
            corner in 0u8..3,
            rw in rewrite_strategy(),
        ) {
            let proto = if tcp { 6 } else { 17 };
            let slack = match corner {
                // Zero checksum before the rewrite.
                1 => zero_slack(&build(proto, src, dst, ttl, &payload, 0)),
                // Zero checksum after the rewrite.
                2 => {
                    let mut after = build(proto, src, dst, ttl, &payload, 0);
                    apply_raw(&mut after, &rw);
                    zero_slack(&after)
                }
                _ => slack,
            };
            let before = build(proto, src, dst, ttl, &payload, slack);
            if corner == 1 {
                // A computed zero: 0x0000 for TCP, 0xffff on the wire for UDP.
                prop_assert_eq!(l4_csum(&before), if tcp { 0 } else { 0xffff });
            }

            let mut expected = before.clone();
            apply_raw(&mut expected, &rw);
            fill(&mut expected);

            let mut got = before.clone();
            apply_incremental(&mut got, &rw);
            prop_assert_eq!(&got, &expected);
            if corner == 2 {
                prop_assert_eq!(l4_csum(&got), if tcp { 0 } else { 0xffff });
            }

            // UDP without checksum stays without.
            if !tcp {
                let mut none = before.clone();
                none[26] = 0;
                none[27] = 0;
                apply_incremental(&mut none, &rw);
                prop_assert_eq!(l4_csum(&none), 0);
            }

            // And the stored reverse delta restores the original.
            let mut back = expected.clone();
            let reverse = Rewrite {
                src: rw.src.map(|_| src),
                dst: rw.dst.map(|_| dst),
                sport: rw.sport.map(|_| 1234),
                dport: rw.dport.map(|_| 80),
                ttl_dec: false,
            };
            apply_incremental(&mut back, &reverse);
            let mut orig_ttl = before.clone();
            apply_raw(&mut orig_ttl, &Rewrite { src: None, dst: None, sport: None, dport: None, ttl_dec: rw.ttl_dec });
            fill(&mut orig_ttl);
            prop_assert_eq!(back, orig_ttl);
        }
    }
}
