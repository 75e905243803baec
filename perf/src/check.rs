//! The harnesses' output check: what the worker sent must be right before its rate
//! means anything. Frames are checked as bytes (no DPDK here), in both directions:
//!
//! - **outbound** (inside → outside, out of the outside port): routed (TTL 63, to the
//!   gateway's MAC from the worker's outside MAC), IPv4 and UDP/TCP checksums valid, the
//!   source MASQUERADEd to the outside address — or, when forwarding, untouched (still in
//!   100.64.0.0/10);
//! - **return** (outside → inside, out of the inside port): routed (TTL 63, to the inside
//!   host's MAC from the worker's inside MAC), checksums valid, from the server, and the
//!   destination rewritten back to the inside host and port the flow came from (NAT) or
//!   left as sent (forwarding: it already was).

use std::net::Ipv4Addr;

use dataplane::packet::{EthernetFrame, Ipv4Packet, TcpPacket, UdpPacket};

use crate::topology::{GATEWAY_MAC, GEN_MAC, LAN_MAC, OUTSIDE, SERVER, WAN_MAC};

/// A frame the worker should not have sent like this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame {frame}: {what}")]
pub struct BadFrame {
    /// Its position in the checked batch.
    pub frame: usize,
    pub what: String,
}

/// What a checked frame must look like.
#[derive(Clone, Copy, Debug)]
pub struct Expect {
    /// Translated (the NAT lane) or plainly routed.
    pub nat: bool,
    pub tcp: bool,
}

/// The parts of a frame the checks read.
struct Parsed {
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    ttl: u8,
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    dport: u16,
}

fn parse(i: usize, frame: &[u8], tcp: bool) -> Result<Parsed, BadFrame> {
    let bad = |what: String| BadFrame { frame: i, what };
    let eth = EthernetFrame::new_checked(frame).map_err(|e| bad(format!("Ethernet {e:?}")))?;
    let ip = Ipv4Packet::new_checked(eth.payload()).map_err(|e| bad(format!("IPv4 {e:?}")))?;
    if !ip.verify_checksum() {
        return Err(bad("bad IPv4 checksum".into()));
    }
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    let ports = if tcp {
        TcpPacket::new_checked(ip.payload())
            .ok()
            .filter(|t| t.verify_checksum(src, dst))
            .map(|t| (t.src_port(), t.dst_port()))
    } else {
        UdpPacket::new_checked(ip.payload())
            .ok()
            .filter(|u| u.verify_checksum(src, dst))
            .map(|u| (u.src_port(), u.dst_port()))
    };
    let (sport, dport) =
        ports.ok_or_else(|| bad(format!("bad {} header or checksum", if tcp { "TCP" } else { "UDP" })))?;
    Ok(Parsed { dst_mac: eth.dst_addr().0, src_mac: eth.src_addr().0, ttl: ip.ttl(), src, dst, sport, dport })
}

fn is_inside(a: Ipv4Addr) -> bool {
    a.octets()[0] == 100 && a.octets()[1] & 0xc0 == 64
}

/// Check frame `i` of an outbound batch (see the module docs).
pub fn outbound(i: usize, frame: &[u8], e: Expect) -> Result<(), BadFrame> {
    let bad = |what: String| BadFrame { frame: i, what };
    let p = parse(i, frame, e.tcp)?;
    if p.dst_mac != GATEWAY_MAC || p.src_mac != WAN_MAC {
        return Err(bad("not sent from the outside port to the gateway's MAC".into()));
    }
    if p.ttl != 63 {
        return Err(bad(format!("TTL {} (expected 63)", p.ttl)));
    }
    if p.dst != SERVER {
        return Err(bad(format!("destination {} (expected the server {SERVER})", p.dst)));
    }
    if e.nat && p.src != OUTSIDE {
        return Err(bad(format!("source {} not translated to {OUTSIDE}", p.src)));
    }
    if !e.nat && !is_inside(p.src) {
        return Err(bad(format!("source {} changed", p.src)));
    }
    Ok(())
}

/// Check frame `i` of a return batch. `want`: the inside host and port the reply
/// belongs to (as [`crate::flows::ReturnFlows::inside`] gives it) and the server port it
/// comes from; `None` checks only that it reaches some inside host. Returns what the
/// frame carries: (inside host, its port, the server's port).
pub fn inbound(
    i: usize,
    frame: &[u8],
    e: Expect,
    want: Option<(Ipv4Addr, u16, u16)>,
) -> Result<(Ipv4Addr, u16, u16), BadFrame> {
    let bad = |what: String| BadFrame { frame: i, what };
    let p = parse(i, frame, e.tcp)?;
    if p.dst_mac != GEN_MAC || p.src_mac != LAN_MAC {
        return Err(bad("not sent from the inside port to the inside host's MAC".into()));
    }
    if p.ttl != 63 {
        return Err(bad(format!("TTL {} (expected 63)", p.ttl)));
    }
    if p.src != SERVER {
        return Err(bad(format!("source {} (expected the server {SERVER})", p.src)));
    }
    match want {
        Some((host, port, server_port)) if (p.dst, p.dport, p.sport) != (host, port, server_port) => {
            return Err(bad(format!(
                "{}:{} -> {}:{}, expected {SERVER}:{server_port} -> {host}:{port}",
                p.src, p.sport, p.dst, p.dport
            )));
        }
        None if !is_inside(p.dst) => return Err(bad(format!("destination {} is not an inside host", p.dst))),
        _ => {}
    }
    Ok((p.dst, p.dport, p.sport))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flows::{FlowSpace, FrameWriter, ReturnFlows, L4};

    /// Route a frame as the worker would: new MACs, TTL − 1 (checksum fixed up).
    fn routed(mut f: Vec<u8>, src_mac: [u8; 6], dst_mac: [u8; 6]) -> Vec<u8> {
        f[0..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&src_mac);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        ip.set_ttl(ip.ttl() - 1);
        ip.fill_checksum();
        f
    }

    /// Rewrite the destination (address, port) and fix both checksums.
    fn rewrite_dst(mut f: Vec<u8>, to: Ipv4Addr, port: u16) -> Vec<u8> {
        let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
        let src = ip.src_addr();
        ip.set_dst_addr(to);
        ip.fill_checksum();
        let mut u = UdpPacket::new_unchecked(ip.payload_mut());
        u.set_dst_port(port);
        u.fill_checksum(src, to);
        f
    }

    #[test]
    fn return_frames_must_reach_the_inside_host_translated_back() {
        let space = FlowSpace::new(4, 8, 2).unwrap();
        let rf = ReturnFlows::translated(&space, OUTSIDE, |_, p| Some(p + 30_000)).unwrap();
        let w = FrameWriter::inbound(L4::Udp, 64, GATEWAY_MAC, WAN_MAC, SERVER).unwrap();
        let e = Expect { nat: true, tcp: false };
        let g = 5;
        let mut f = vec![0u8; w.len()];
        w.write(&mut f, true, rf.flow(&space, g), 1, false);
        let (host, port) = rf.inside(&space, g);
        let server_port = space.flow(g).2;
        let tuple = (host, port, server_port);
        let want = Some(tuple);
        // As the NAT sends it: translated back and routed.
        let good = routed(rewrite_dst(f.clone(), host, port), LAN_MAC, GEN_MAC);
        assert_eq!(inbound(0, &good, e, want), Ok(tuple));
        assert_eq!(inbound(0, &good, e, None), Ok(tuple));
        // Not translated back: still addressed to the outside endpoint.
        let untranslated = routed(f.clone(), LAN_MAC, GEN_MAC);
        assert!(inbound(1, &untranslated, e, want).unwrap_err().what.contains("expected"));
        assert!(inbound(1, &untranslated, e, None).unwrap_err().what.contains("not an inside host"));
        // Translated to the wrong port.
        let wrong = routed(rewrite_dst(f.clone(), host, port + 1), LAN_MAC, GEN_MAC);
        assert!(inbound(2, &wrong, e, want).is_err());
        // A broken checksum, a TTL not decremented.
        let mut broken = good.clone();
        broken[50] ^= 1;
        assert!(inbound(3, &broken, e, want).unwrap_err().what.contains("checksum"));
        let unrouted = rewrite_dst(f, host, port);
        assert!(inbound(4, &unrouted, e, want).is_err());
    }

    #[test]
    fn outbound_frames_must_be_masqueraded_or_untouched() {
        let space = FlowSpace::new(4, 8, 2).unwrap();
        let w = FrameWriter::new(L4::Udp, 64, GEN_MAC, LAN_MAC, SERVER).unwrap();
        let mut f = vec![0u8; w.len()];
        w.write(&mut f, true, space.flow(3), 1, false);
        let fwd = routed(f.clone(), WAN_MAC, GATEWAY_MAC);
        assert_eq!(outbound(0, &fwd, Expect { nat: false, tcp: false }), Ok(()));
        assert!(outbound(0, &fwd, Expect { nat: true, tcp: false }).unwrap_err().what.contains("not translated"));
        let mut raw = f.clone();
        let mut ip = Ipv4Packet::new_unchecked(&mut raw[14..]);
        ip.set_src_addr(OUTSIDE);
        ip.fill_checksum();
        let mut u = UdpPacket::new_unchecked(ip.payload_mut());
        u.fill_checksum(OUTSIDE, SERVER);
        let nat = routed(raw, WAN_MAC, GATEWAY_MAC);
        assert_eq!(outbound(1, &nat, Expect { nat: true, tcp: false }), Ok(()));
        assert!(outbound(1, &nat, Expect { nat: false, tcp: false }).is_err());
    }
}
