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

use dataplane::testkit::{parse_ipv4, PROTO_TCP, PROTO_UDP};

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
    // The shared test parser: it verifies every checksum apart from masq's own code.
    let p = parse_ipv4(frame).ok_or_else(|| bad("not an IPv4 frame".into()))?;
    if !p.ip_checksum_ok {
        return Err(bad("bad IPv4 checksum".into()));
    }
    let (proto, name) = if tcp { (PROTO_TCP, "TCP") } else { (PROTO_UDP, "UDP") };
    if p.proto != proto {
        return Err(bad(format!("protocol {} (expected {name})", p.proto)));
    }
    if !p.l4_checksum_ok {
        return Err(bad(format!("bad {name} checksum")));
    }
    let (Some(sport), Some(dport)) = (p.sport, p.dport) else {
        return Err(bad(format!("no {name} ports")));
    };
    Ok(Parsed { dst_mac: p.dst_mac, src_mac: p.src_mac, ttl: p.ttl, src: p.src, dst: p.dst, sport, dport })
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
    use crate::flows::{FlowSpace, ReturnFlows};
    use dataplane::testkit::udp_frame;

    const PAYLOAD: [u8; 18] = [0; 18];

    #[test]
    fn return_frames_must_reach_the_inside_host_translated_back() {
        let space = FlowSpace::new(4, 8, 2).unwrap();
        let rf = ReturnFlows::translated(&space, OUTSIDE, |_, p| Some(p + 30_000)).unwrap();
        let e = Expect { nat: true, tcp: false };
        let g = 5;
        let (host, port) = rf.inside(&space, g);
        let (_, server_port, ext_port) = rf.flow(&space, g);
        let tuple = (host, port, server_port);
        let want = Some(tuple);
        // As the NAT sends it: translated back and routed.
        let good = udp_frame(LAN_MAC, GEN_MAC, SERVER, host, server_port, port, 63, &PAYLOAD);
        assert_eq!(inbound(0, &good, e, want), Ok(tuple));
        assert_eq!(inbound(0, &good, e, None), Ok(tuple));
        // Not translated back: still addressed to the outside endpoint.
        let untranslated = udp_frame(LAN_MAC, GEN_MAC, SERVER, OUTSIDE, server_port, ext_port, 63, &PAYLOAD);
        assert!(inbound(1, &untranslated, e, want).unwrap_err().what.contains("expected"));
        assert!(inbound(1, &untranslated, e, None).unwrap_err().what.contains("not an inside host"));
        // Translated to the wrong port; not routed (TTL, MACs); a broken checksum.
        let wrong = udp_frame(LAN_MAC, GEN_MAC, SERVER, host, server_port, port + 1, 63, &PAYLOAD);
        assert!(inbound(2, &wrong, e, want).is_err());
        let unrouted = udp_frame(LAN_MAC, GEN_MAC, SERVER, host, server_port, port, 64, &PAYLOAD);
        assert!(inbound(3, &unrouted, e, want).unwrap_err().what.contains("TTL"));
        let wrong_mac = udp_frame(WAN_MAC, GATEWAY_MAC, SERVER, host, server_port, port, 63, &PAYLOAD);
        assert!(inbound(4, &wrong_mac, e, want).unwrap_err().what.contains("MAC"));
        let mut broken = good.clone();
        broken[50] ^= 1;
        let err = inbound(5, &broken, e, want).unwrap_err();
        assert!(err.what.contains("checksum") && err.frame == 5, "{err}");
    }

    #[test]
    fn outbound_frames_must_be_masqueraded_or_untouched() {
        let inside = Ipv4Addr::new(100, 64, 0, 3);
        let fwd = udp_frame(WAN_MAC, GATEWAY_MAC, inside, SERVER, 2024, 53, 63, &PAYLOAD);
        assert_eq!(outbound(0, &fwd, Expect { nat: false, tcp: false }), Ok(()));
        assert!(outbound(0, &fwd, Expect { nat: true, tcp: false }).unwrap_err().what.contains("not translated"));
        assert!(outbound(0, &fwd, Expect { nat: false, tcp: true }).unwrap_err().what.contains("protocol"));
        let nat = udp_frame(WAN_MAC, GATEWAY_MAC, OUTSIDE, SERVER, 40_000, 53, 63, &PAYLOAD);
        assert_eq!(outbound(1, &nat, Expect { nat: true, tcp: false }), Ok(()));
        assert!(outbound(1, &nat, Expect { nat: false, tcp: false }).is_err());
        let to_elsewhere = udp_frame(WAN_MAC, GATEWAY_MAC, OUTSIDE, OUTSIDE, 40_000, 53, 63, &PAYLOAD);
        assert!(outbound(2, &to_elsewhere, Expect { nat: true, tcp: false }).unwrap_err().what.contains("server"));
    }
}
