//! Walks every view over arbitrary bytes: every `new_checked`, every getter, every
//! `Repr::parse`, the ICMP error helpers and, on a copy, the in-place rewriters.
//!
//! Shared by the panic-freedom proptest and the `dataplane/fuzz` target
//! `packet_parser`, so both hold the views to the check-once contract: bad input is an
//! `Err`, never a panic. It also asserts what must stay true — a checksum that
//! verified still verifies after an incremental rewrite, an emitted ICMP error parses
//! back — so the fuzzer finds logic errors as well as panics.
//!
//! Test support, not data path: it allocates (copies) freely.

use std::hint::black_box;
use std::net::Ipv4Addr;

use super::arp::{ArpPacket, ArpRepr};
use super::ethernet::{EtherType, EthernetFrame};
use super::icmp::{self, Icmpv4Packet};
use super::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;
use super::{checksum, EthernetAddress};

/// Parses `data` every way masq might: as an Ethernet frame, and directly as ARP,
/// IPv4, UDP, TCP and ICMP. Panics only on a bug.
pub fn all(data: &[u8]) {
    ethernet(data);
    arp(data);
    ipv4(data);
    udp(data, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1));
    tcp(data, Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(198, 51, 100, 1));
    icmpv4(data);
    black_box(icmp::error_quote_len(data));
    black_box(icmp::error_quote_len_max(data));
    black_box(checksum::data(data));
    // Display must cope with unchecked views too.
    black_box(EthernetFrame::new_unchecked(data).to_string());
    black_box(Ipv4Packet::new_unchecked(data).to_string());
}

/// Ethernet, then ARP or IPv4 by EtherType.
pub fn ethernet(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    black_box((frame.dst_addr(), frame.src_addr(), frame.ethertype()));
    black_box(frame.dst_addr().is_broadcast() || frame.src_addr().is_multicast());
    black_box(frame.to_string());
    match frame.ethertype() {
        EtherType::Arp => arp(frame.payload()),
        EtherType::Ipv4 => ipv4(frame.payload()),
        _ => {}
    }
    let mut copy = data.to_vec();
    let mut frame = EthernetFrame::new_checked(&mut copy[..]).expect("checked once already");
    let (src, dst) = (frame.src_addr(), frame.dst_addr());
    frame.set_src_addr(dst);
    frame.set_dst_addr(src);
    frame.set_ethertype(frame.ethertype());
    black_box(frame.payload_mut().len());
}

/// ARP view, `ArpRepr` parse, reply and emit.
pub fn arp(data: &[u8]) {
    let unchecked = ArpPacket::new_unchecked(data);
    if unchecked.check_len().is_ok() {
        black_box(ArpRepr::parse(&unchecked).ok());
    }
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    black_box((
        packet.hardware_type(),
        packet.protocol_type(),
        packet.hardware_len(),
        packet.protocol_len(),
        packet.operation(),
        packet.source_hw_addr(),
        packet.source_protocol_addr(),
        packet.target_hw_addr(),
        packet.target_protocol_addr(),
    ));
    let repr = ArpRepr::parse(&packet).expect("new_checked accepted it");
    black_box(repr.to_string());
    let mut out = vec![0u8; repr.buffer_len()];
    repr.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    assert_eq!(&out[..], &data[..repr.buffer_len()], "ARP parse/emit round trip");
    let reply = repr.reply(EthernetAddress([0x02, 0, 0, 0, 0, 1]));
    reply.emit(&mut ArpPacket::new_unchecked(&mut out[..]));
    assert_eq!(ArpRepr::parse(&ArpPacket::new_checked(&out[..]).unwrap()), Ok(reply));
}

/// IPv4 view, `Ipv4Repr`, the L4 inside, the ICMP error helpers, then the rewriters
/// on a copy.
pub fn ipv4(data: &[u8]) {
    let unchecked = Ipv4Packet::new_unchecked(data);
    if unchecked.check_len().is_ok() {
        black_box(Ipv4Repr::parse(&unchecked).ok());
    }
    if let Ok(quote) = Ipv4Packet::new_checked_quote(data) {
        black_box((quote.src_addr(), quote.options(), quote.payload(), quote.header()));
        black_box(quote.to_string());
    }
    let Ok(packet) = Ipv4Packet::new_checked(data) else {
        return;
    };
    black_box((
        packet.version(),
        packet.header_len(),
        packet.dscp_ecn(),
        packet.dscp(),
        packet.ecn(),
        packet.total_len(),
        packet.ident(),
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
        packet.is_fragment(),
        packet.is_first_fragment(),
        packet.ttl(),
        packet.next_header(),
        packet.checksum(),
        packet.src_addr(),
        packet.dst_addr(),
    ));
    black_box((packet.options(), packet.payload(), packet.header()));
    let ip_ok = packet.verify_checksum();
    black_box(packet.to_string());
    if let Ok(repr) = Ipv4Repr::parse(&packet) {
        black_box(repr.to_string());
        let mut out = vec![0u8; repr.buffer_len()];
        let mut view = Ipv4Packet::new_unchecked(&mut out[..]);
        repr.emit(&mut view);
        view.payload_mut().copy_from_slice(packet.payload());
        let back = Ipv4Packet::new_checked(&out[..]).expect("emitted header checks");
        assert_eq!(Ipv4Repr::parse(&back), Ok(repr), "IPv4 parse/emit round trip");
    }

    let (src, dst) = (packet.src_addr(), packet.dst_addr());
    let l4 = packet.payload();
    let l4_readable = packet.frag_offset() == 0;
    let (udp_ok, tcp_ok) = match packet.next_header() {
        IpProtocol::Udp => (udp(l4, src, dst), false),
        IpProtocol::Tcp => (false, tcp(l4, src, dst)),
        IpProtocol::Icmp => {
            icmpv4(l4);
            (false, false)
        }
        IpProtocol::Unknown(_) => (false, false),
    };

    icmp_error(&packet);

    // The rewriters, on a copy: checksums that verified must still verify.
    let mut copy = data.to_vec();
    let mut ip = Ipv4Packet::new_checked(&mut copy[..]).expect("checked once already");
    let (new_src, new_dst) = (Ipv4Addr::new(203, 0, 113, 1), Ipv4Addr::new(100, 64, 0, 9));
    let l4_delta = checksum::Delta::new().replace_addr(src, new_src).replace_addr(dst, new_dst);
    ip.set_src_addr_update_checksum(new_src);
    ip.set_dst_addr_update_checksum(new_dst);
    let ttl = ip.ttl();
    assert_eq!(ip.decrement_ttl(), ttl.saturating_sub(1));
    ip.set_total_len_update_checksum(ip.total_len());
    assert!(!ip_ok || ip.verify_checksum(), "IPv4 checksum broken by a rewrite");
    if l4_readable {
        match ip.next_header() {
            IpProtocol::Udp => {
                if let Ok(mut udp) = UdpPacket::new_checked(ip.payload_mut()) {
                    udp.apply_delta(l4_delta);
                    udp.set_src_port_update_checksum(udp.src_port().wrapping_add(1));
                    udp.set_dst_port_update_checksum(1024);
                    assert!(!udp_ok || udp.verify_checksum(new_src, new_dst), "UDP rewrite");
                }
            }
            IpProtocol::Tcp => {
                if let Ok(mut tcp) = TcpPacket::new_checked(ip.payload_mut()) {
                    tcp.apply_delta(l4_delta);
                    tcp.set_src_port_update_checksum(tcp.src_port().wrapping_add(1));
                    tcp.set_dst_port_update_checksum(1024);
                    assert!(!tcp_ok || tcp.verify_checksum(new_src, new_dst), "TCP rewrite");
                }
            }
            IpProtocol::Icmp => {
                if let Ok(mut icmp) = Icmpv4Packet::new_checked(ip.payload_mut()) {
                    let ok = icmp.verify_checksum();
                    icmp.set_echo_ident_update_checksum(icmp.echo_ident() ^ 0x5a5a);
                    if let Ok(mut quoted) = icmp.quoted_ipv4_mut() {
                        quoted.set_src_addr_update_checksum(new_dst);
                        black_box(quoted.payload_mut().len());
                    }
                    icmp.fill_checksum();
                    assert!(icmp.verify_checksum());
                    black_box(ok);
                }
            }
            IpProtocol::Unknown(_) => {}
        }
    }
    ip.fill_checksum();
    assert!(ip.verify_checksum());
}

/// Builds the ICMP error a router would send about `packet` and parses it back.
fn icmp_error(packet: &Ipv4Packet<&[u8]>) {
    black_box(icmp::may_send_error_about(packet));
    let original: &[u8] = packet.as_ref();
    for quote_len in [icmp::error_quote_len(original), icmp::error_quote_len_max(original)] {
        let mut buf = vec![0u8; icmp::ERROR_QUOTE_OFFSET + quote_len];
        buf[icmp::ERROR_QUOTE_OFFSET..].copy_from_slice(&original[..quote_len]);
        let len = icmp::emit_error(
            &mut buf,
            Ipv4Addr::new(100, 64, 0, 1),
            packet.src_addr(),
            64,
            icmp::Icmpv4Message::DstUnreachable,
            icmp::dst_unreachable::FRAG_NEEDED,
            1400,
            quote_len,
        )
        .expect("a quote of error_quote_len fits");
        let ip = Ipv4Packet::new_checked(&buf[..len]).expect("emitted error checks");
        assert!(ip.verify_checksum());
        let msg = Icmpv4Packet::new_checked(ip.payload()).expect("emitted ICMP checks");
        assert!(msg.verify_checksum());
        assert_eq!(msg.next_hop_mtu(), 1400);
        let quoted = msg.quoted_ipv4().expect("a quote of a checked packet parses");
        assert_eq!(quoted.src_addr(), packet.src_addr());
        black_box(ip.to_string());
    }
}

/// UDP view and checksum; returns whether the checksum verified.
pub fn udp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let Ok(packet) = UdpPacket::new_checked(data) else {
        return false;
    };
    black_box((packet.src_port(), packet.dst_port(), packet.len(), packet.checksum()));
    black_box(packet.payload());
    let ok = packet.verify_checksum(src, dst);
    let mut copy = data.to_vec();
    let mut view = UdpPacket::new_checked(&mut copy[..]).expect("checked once already");
    view.fill_checksum(src, dst);
    assert!(view.verify_checksum(src, dst));
    black_box(view.payload_mut().len());
    ok
}

/// TCP view and checksum; returns whether the checksum verified.
pub fn tcp(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) -> bool {
    let Ok(packet) = TcpPacket::new_checked(data) else {
        return false;
    };
    black_box((
        packet.src_port(),
        packet.dst_port(),
        packet.seq_number(),
        packet.ack_number(),
        packet.header_len(),
        packet.flags(),
        packet.window_len(),
        packet.checksum(),
        packet.urgent_at(),
    ));
    black_box((packet.options(), packet.payload(), packet.flags().to_string()));
    let ok = packet.verify_checksum(src, dst);
    let mut copy = data.to_vec();
    let mut view = TcpPacket::new_checked(&mut copy[..]).expect("checked once already");
    view.fill_checksum(src, dst);
    assert!(view.verify_checksum(src, dst));
    black_box((view.options_mut().len(), view.payload_mut().len()));
    ok
}

/// ICMP view, and for errors the quoted datagram and its first transport bytes.
pub fn icmpv4(data: &[u8]) {
    let Ok(packet) = Icmpv4Packet::new_checked(data) else {
        return;
    };
    let msg = packet.msg_type();
    black_box((
        msg,
        msg.to_string(),
        packet.is_error(),
        packet.code(),
        packet.checksum(),
        packet.rest_of_header(),
        packet.echo_ident(),
        packet.echo_seq_no(),
        packet.next_hop_mtu(),
        packet.data(),
        packet.verify_checksum(),
    ));
    if let Ok(quoted) = packet.quoted_ipv4() {
        black_box((quoted.src_addr(), quoted.dst_addr(), quoted.next_header()));
        black_box(quoted.to_string());
        let inner = quoted.payload();
        if quoted.frag_offset() == 0 && inner.len() >= 4 {
            let ports = UdpPacket::new_unchecked(inner);
            black_box((ports.src_port(), ports.dst_port()));
        }
        if quoted.next_header() == IpProtocol::Icmp {
            icmpv4(inner);
        }
    }
}
