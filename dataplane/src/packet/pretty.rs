//! One-line summaries of IPv4 packets for logs and test failures, e.g.
//! `100.64.0.2 -> 203.0.113.9 udp 40000->53 len 60 ttl 63`.
//!
//! Formatting lives apart from the views. It never panics, even on a view made with
//! `new_unchecked` over garbage: every layer is checked before it is read.

use core::fmt;

use super::icmp::Icmpv4Packet;
use super::ipv4::{IpProtocol, Ipv4Packet};
use super::tcp::TcpPacket;
use super::udp::UdpPacket;

impl<T: AsRef<[u8]>> fmt::Display for Ipv4Packet<T> {
    /// `src -> dst proto [ports|icmp type] [flags] len N ttl N [frag ...]`; an ICMP
    /// error adds its quoted datagram in brackets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: &[u8] = self.as_ref();
        match Ipv4Packet::new_checked(bytes) {
            Ok(packet) => summary(f, &packet, false),
            // Cut short, e.g. the datagram quoted in an ICMP error: say so, and what
            // the header still tells.
            Err(err) => match Ipv4Packet::new_checked_quote(bytes) {
                Ok(packet) => {
                    summary(f, &packet, true)?;
                    write!(f, " ({err}: {} bytes)", bytes.len())
                }
                Err(_) => write!(f, "ipv4 {err} ({} bytes)", bytes.len()),
            },
        }
    }
}

fn summary(f: &mut fmt::Formatter<'_>, ip: &Ipv4Packet<&[u8]>, quoted: bool) -> fmt::Result {
    let proto = ip.next_header();
    write!(f, "{} -> {} {proto}", ip.src_addr(), ip.dst_addr())?;
    let payload = ip.payload();
    let icmp = Icmpv4Packet::new_checked(payload);
    let mut quote = None;
    // A non-first fragment carries no transport header.
    if ip.frag_offset() == 0 {
        match proto {
            IpProtocol::Udp if quoted => {
                if payload.len() >= 4 {
                    let udp = UdpPacket::new_unchecked(payload);
                    write!(f, " {}->{}", udp.src_port(), udp.dst_port())?;
                }
            }
            IpProtocol::Udp => match UdpPacket::new_checked(payload) {
                Ok(udp) => write!(f, " {}->{}", udp.src_port(), udp.dst_port())?,
                Err(err) => write!(f, " ({err})")?,
            },
            IpProtocol::Tcp if quoted => {
                if payload.len() >= 4 {
                    let tcp = TcpPacket::new_unchecked(payload);
                    write!(f, " {}->{}", tcp.src_port(), tcp.dst_port())?;
                }
            }
            IpProtocol::Tcp => match TcpPacket::new_checked(payload) {
                Ok(tcp) => write!(f, " {}->{} [{}]", tcp.src_port(), tcp.dst_port(), tcp.flags())?,
                Err(err) => write!(f, " ({err})")?,
            },
            IpProtocol::Icmp => match &icmp {
                Ok(icmp) => {
                    let msg = icmp.msg_type();
                    write!(f, " {msg}")?;
                    if msg.is_query() {
                        write!(f, " id {} seq {}", icmp.echo_ident(), icmp.echo_seq_no())?;
                    } else {
                        write!(f, " code {}", icmp.code())?;
                    }
                    if !quoted {
                        quote = icmp.quoted_ipv4().ok();
                    }
                }
                Err(err) if !quoted => write!(f, " ({err})")?,
                Err(_) => {}
            },
            IpProtocol::Unknown(_) => {}
        }
    }
    write!(f, " len {} ttl {}", ip.total_len(), ip.ttl())?;
    if ip.is_fragment() {
        write!(f, " frag off {}", ip.frag_offset())?;
        if ip.more_frags() {
            f.write_str(" MF")?;
        }
    }
    if let Some(inner) = quote {
        f.write_str(" [")?;
        summary(f, &inner, true)?;
        f.write_str("]")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::ipv4::Ipv4Repr;
    use crate::packet::tcp::TcpFlags;
    use std::net::Ipv4Addr;

    fn build(proto: IpProtocol, l4: &[u8], ttl: u8) -> Vec<u8> {
        let mut bytes = vec![0u8; 20 + l4.len()];
        Ipv4Repr {
            src_addr: Ipv4Addr::new(100, 64, 0, 2),
            dst_addr: Ipv4Addr::new(203, 0, 113, 9),
            next_header: proto,
            payload_len: l4.len(),
            ttl,
            ident: 0,
            dont_frag: true,
        }
        .emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
        bytes[20..].copy_from_slice(l4);
        bytes
    }

    #[test]
    fn udp_summary() {
        let mut udp = [0u8; 40];
        let mut view = UdpPacket::new_unchecked(&mut udp[..]);
        view.set_src_port(40000);
        view.set_dst_port(53);
        view.set_len(40);
        let bytes = build(IpProtocol::Udp, &udp, 63);
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..]).to_string(),
            "100.64.0.2 -> 203.0.113.9 udp 40000->53 len 60 ttl 63"
        );
        let mut bad = bytes.clone();
        bad[25] = 200;
        assert_eq!(
            Ipv4Packet::new_unchecked(&bad[..]).to_string(),
            "100.64.0.2 -> 203.0.113.9 udp (truncated packet) len 60 ttl 63"
        );
    }

    #[test]
    fn tcp_and_fragment_summary() {
        let mut tcp = [0u8; 20];
        let mut view = TcpPacket::new_unchecked(&mut tcp[..]);
        view.set_src_port(40000);
        view.set_dst_port(443);
        view.set_header_len(20);
        view.set_flags(TcpFlags::SYN | TcpFlags::ACK);
        let mut bytes = build(IpProtocol::Tcp, &tcp, 64);
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..]).to_string(),
            "100.64.0.2 -> 203.0.113.9 tcp 40000->443 [SYN|ACK] len 40 ttl 64"
        );
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[..]);
        ip.set_frag_offset(1480);
        ip.set_more_frags(true);
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..]).to_string(),
            "100.64.0.2 -> 203.0.113.9 tcp len 40 ttl 64 frag off 1480 MF"
        );
    }

    #[test]
    fn icmp_and_other_summary() {
        let echo = [8, 0, 0, 0, 0, 7, 0, 1];
        let bytes = build(IpProtocol::Icmp, &echo, 64);
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..]).to_string(),
            "100.64.0.2 -> 203.0.113.9 icmp echo-request id 7 seq 1 len 28 ttl 64"
        );
        let bytes = build(IpProtocol::Unknown(47), &[0; 4], 64);
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..]).to_string(),
            "100.64.0.2 -> 203.0.113.9 proto 47 len 24 ttl 64"
        );
    }

    #[test]
    fn cut_short_summary() {
        let mut udp = [0u8; 40];
        let mut view = UdpPacket::new_unchecked(&mut udp[..]);
        view.set_src_port(40000);
        view.set_dst_port(53);
        view.set_len(40);
        let bytes = build(IpProtocol::Udp, &udp, 63);
        assert_eq!(
            Ipv4Packet::new_unchecked(&bytes[..28]).to_string(),
            "100.64.0.2 -> 203.0.113.9 udp 40000->53 len 60 ttl 63 (truncated packet: 28 bytes)"
        );
    }

    #[test]
    fn garbage_summary() {
        assert_eq!(Ipv4Packet::new_unchecked(&[][..]).to_string(), "ipv4 truncated packet (0 bytes)");
        assert_eq!(Ipv4Packet::new_unchecked(&[0x65; 40][..]).to_string(), "ipv4 truncated packet (40 bytes)");
    }
}
