//! Panic-freedom: any bytes, of any length, through every `new_checked`, every getter,
//! every `Repr::parse` and the rewriters ([`super::exercise`]) give `Ok` or `Err`,
//! never a panic. Random bytes rarely get past the first check, so valid frames are
//! also built and then mutated (byte flips, length fields, truncation).

use proptest::prelude::*;
use std::net::Ipv4Addr;

use super::exercise;
use super::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use super::{icmp, udp};

/// A valid Ethernet + IPv4 frame carrying `proto` with `l4` as its payload, checksums
/// filled where the protocol has them.
fn frame(proto: u8, ihl_words: u8, l4: &[u8], quote_error: bool) -> Vec<u8> {
    let header_len = usize::from(ihl_words.clamp(5, 15)) * 4;
    let mut bytes = vec![0u8; 14 + header_len + l4.len()];
    bytes[12] = 0x08;
    let ip_bytes = &mut bytes[14..];
    Ipv4Repr {
        src_addr: Ipv4Addr::new(100, 64, 0, 2),
        dst_addr: Ipv4Addr::new(203, 0, 113, 9),
        next_header: IpProtocol::from(proto),
        payload_len: header_len - 20 + l4.len(),
        ttl: 64,
        ident: 1,
        dont_frag: false,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut ip_bytes[..]));
    let mut ip = Ipv4Packet::new_unchecked(&mut ip_bytes[..]);
    ip.set_header_len(header_len as u8);
    ip.payload_mut().copy_from_slice(l4);
    ip.fill_checksum();
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let payload = ip.payload_mut();
    match proto {
        6 if payload.len() >= 20 => {
            payload[12] = 5 << 4;
            super::TcpPacket::new_unchecked(payload).fill_checksum(src, dst);
        }
        17 if payload.len() >= 8 => {
            let len = payload.len() as u16;
            let mut udp = super::UdpPacket::new_unchecked(payload);
            udp.set_len(len);
            udp.fill_checksum(src, dst);
        }
        1 if payload.len() >= 8 => {
            if quote_error {
                // An error quoting a copy of this very packet's first bytes.
                payload[0] = 3;
            }
            super::Icmpv4Packet::new_unchecked(payload).fill_checksum();
        }
        _ => {}
    }
    bytes
}

fn mutated_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(1u8), Just(6u8), Just(17u8), any::<u8>()],
        5u8..8,
        proptest::collection::vec(any::<u8>(), 0..96),
        any::<bool>(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(proto, ihl, l4, quote_error, flips, cut)| {
            let mut bytes = frame(proto, ihl, &l4, quote_error);
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        })
}

/// An ICMP error quoting a UDP datagram, possibly cut, then mutated.
fn mutated_icmp_error() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::collection::vec(any::<u8>(), 8..40),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..3),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(udp_payload, flips, quote_cut)| {
            let inner = frame(17, 5, &[vec![0u8; udp::HEADER_LEN], udp_payload].concat(), false);
            let inner = &inner[14..];
            let quote_len = quote_cut.index(icmp::error_quote_len_max(inner) + 1);
            let mut buf = vec![0u8; 14 + icmp::ERROR_QUOTE_OFFSET + quote_len];
            buf[12] = 0x08;
            buf[14 + icmp::ERROR_QUOTE_OFFSET..].copy_from_slice(&inner[..quote_len]);
            icmp::emit_error(
                &mut buf[14..],
                Ipv4Addr::new(100, 64, 0, 1),
                Ipv4Addr::new(100, 64, 0, 2),
                64,
                icmp::Icmpv4Message::DstUnreachable,
                icmp::dst_unreachable::PORT,
                0,
                quote_len,
            )
            .unwrap();
            for (at, value) in flips {
                let i = at.index(buf.len());
                buf[i] = value;
            }
            buf
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        exercise::all(&bytes);
        if bytes.len() > 14 {
            exercise::all(&bytes[14..]);
        }
    }

    #[test]
    fn mutated_frames_never_panic(bytes in mutated_frame()) {
        exercise::all(&bytes);
        if bytes.len() > 14 {
            exercise::all(&bytes[14..]);
        }
    }

    #[test]
    fn mutated_icmp_errors_never_panic(bytes in mutated_icmp_error()) {
        exercise::all(&bytes);
    }
}

#[test]
fn every_short_length_never_panics() {
    // Every length 0..=64 of a few fixed patterns, so each boundary is hit.
    let seeds: [Vec<u8>; 4] = [
        frame(17, 5, &[0u8; 40], false),
        frame(6, 6, &[0u8; 40], false),
        frame(1, 5, &[0u8; 40], true),
        vec![0xff; 80],
    ];
    for seed in &seeds {
        for len in 0..=seed.len() {
            exercise::all(&seed[..len]);
            if len > 14 {
                exercise::all(&seed[14..len]);
            }
        }
    }
}
