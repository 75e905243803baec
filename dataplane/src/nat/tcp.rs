//! TCP connection tracking, as a table.
//!
//! The NAT does not validate sequence numbers; it follows the flags closely enough to
//! pick the right idle timeout (RFC 5382 REQ-5, RFC 7857 §2.1): *transitory*
//! (`tcpfin`, 4 min) while a connection is opening, closing or reset, *established*
//! (`tcp`, 2 h 4 min) once the handshake completed and until a FIN or RST.
//!
//! Directions are relative to the connection's initiator: `Orig` is the side that
//! sent the first packet (the inside host for MASQUERADE/SNAT, the outside client for
//! DNAT and for inbound connections accepted by endpoint-independent filtering),
//! `Reply` the other. Flags are reduced to five classes, RST winning over SYN over FIN.
//!
//! ```text
//!                     orig SYN                reply SYN / SYN-ACK           orig ACK
//!   New ────────────────────────▶ SynSent ─────────────────────▶ SynReceived ───────▶ Established
//!    │ orig non-SYN: stays New                                                          │
//!    │ reply ACK (mid-stream pickup, both sides talking) ─────────────────────────────▶ │
//!    │                                                             orig FIN ┌───────────┤ reply FIN
//!    │                                                                      ▼           ▼
//!    │                                                                  FinWait     CloseWait
//!    │                                                        reply FIN │           │ orig FIN
//!    │                                                                  └─▶ TimeWait ◀┘
//!    │  RST from either side, in any state ─────────────────────────────▶ Closed
//!    └─ TimeWait / Closed + orig SYN: the 5-tuple is reused, back to SynSent
//!
//!   timeout: Established → established (`tcp`); every other state → transitory (`tcpfin`)
//! ```
//!
//! A session whose first packet is not a SYN (a connection picked up mid-stream, or an
//! ACK scan) stays `New` on the transitory timer until the other side answers, so an
//! inside host cannot fill the table with two-hour sessions by sending bare ACKs.

use super::timeouts::TimeoutClass;

/// Connection state of a TCP session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TcpState {
    /// Created by a non-SYN packet; nothing seen from the other side yet.
    New = 0,
    /// The initiator's SYN was seen.
    SynSent = 1,
    /// The responder's SYN (or SYN-ACK) was seen.
    SynReceived = 2,
    /// Handshake complete, no FIN or RST yet.
    Established = 3,
    /// The initiator sent a FIN.
    FinWait = 4,
    /// The responder sent a FIN.
    CloseWait = 5,
    /// Both sides sent a FIN.
    TimeWait = 6,
    /// A RST was seen.
    Closed = 7,
}

impl TcpState {
    pub const ALL: [TcpState; 8] = [
        TcpState::New,
        TcpState::SynSent,
        TcpState::SynReceived,
        TcpState::Established,
        TcpState::FinWait,
        TcpState::CloseWait,
        TcpState::TimeWait,
        TcpState::Closed,
    ];

    pub(crate) const fn from_u8(v: u8) -> TcpState {
        TcpState::ALL[(v & 7) as usize]
    }

    /// The timeout class of a session in this state.
    pub const fn timeout_class(self) -> TimeoutClass {
        match self {
            TcpState::Established => TimeoutClass::TcpEstablished,
            _ => TimeoutClass::TcpTransitory,
        }
    }

    /// Stable lowercase name (session listings).
    pub const fn name(self) -> &'static str {
        match self {
            TcpState::New => "new",
            TcpState::SynSent => "syn_sent",
            TcpState::SynReceived => "syn_received",
            TcpState::Established => "established",
            TcpState::FinWait => "fin_wait",
            TcpState::CloseWait => "close_wait",
            TcpState::TimeWait => "time_wait",
            TcpState::Closed => "closed",
        }
    }
}

/// A packet's direction relative to the connection's initiator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RelDir {
    Orig = 0,
    Reply = 1,
}

/// TCP flags reduced to what the state machine looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FlagClass {
    Syn = 0,
    SynAck = 1,
    Fin = 2,
    Rst = 3,
    /// Anything else: ACK, data, PSH, URG, no flags.
    Ack = 4,
}

pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const RST: u8 = 0x04;
pub const ACK: u8 = 0x10;

impl FlagClass {
    /// Classify the TCP flags byte: RST, then SYN (with or without ACK), then FIN.
    #[inline]
    pub const fn of(flags: u8) -> FlagClass {
        if flags & RST != 0 {
            FlagClass::Rst
        } else if flags & SYN != 0 {
            if flags & ACK != 0 {
                FlagClass::SynAck
            } else {
                FlagClass::Syn
            }
        } else if flags & FIN != 0 {
            FlagClass::Fin
        } else {
            FlagClass::Ack
        }
    }
}

use TcpState::{
    CloseWait as CW, Closed as CL, Established as ES, FinWait as FW, New as NW, SynReceived as SR, SynSent as SS,
    TimeWait as TW,
};

/// `TCP_TRANSITIONS[state][dir][flag_class]` → next state. See the module diagram.
///
/// Columns: SYN, SYN-ACK, FIN, RST, other.
pub const TCP_TRANSITIONS: [[[TcpState; 5]; 2]; 8] = [
    // New
    [/* orig  */ [SS, NW, NW, CL, NW], /* reply */ [NW, NW, NW, CL, ES]],
    // SynSent
    [/* orig  */ [SS, SS, SS, CL, SS], /* reply */ [SR, SR, SS, CL, SS]],
    // SynReceived
    [/* orig  */ [SR, SR, FW, CL, ES], /* reply */ [SR, SR, CW, CL, SR]],
    // Established
    [/* orig  */ [ES, ES, FW, CL, ES], /* reply */ [ES, ES, CW, CL, ES]],
    // FinWait: the initiator closed
    [/* orig  */ [FW, FW, FW, CL, FW], /* reply */ [FW, FW, TW, CL, FW]],
    // CloseWait: the responder closed
    [/* orig  */ [CW, CW, TW, CL, CW], /* reply */ [CW, CW, CW, CL, CW]],
    // TimeWait: both closed; an orig SYN reuses the tuple
    [/* orig  */ [SS, TW, TW, CL, TW], /* reply */ [TW, TW, TW, CL, TW]],
    // Closed: reset; an orig SYN reuses the tuple
    [/* orig  */ [SS, CL, CL, CL, CL], /* reply */ [CL, CL, CL, CL, CL]],
];

/// The next state after a packet with `flags` travelling in `dir`.
#[inline]
pub const fn next_state(state: TcpState, dir: RelDir, flags: u8) -> TcpState {
    TCP_TRANSITIONS[state as usize][dir as usize][FlagClass::of(flags) as usize]
}

#[cfg(test)]
mod tests {
    use super::*;
    use RelDir::*;

    fn run(steps: &[(RelDir, u8)]) -> TcpState {
        steps.iter().fold(TcpState::New, |s, &(d, f)| next_state(s, d, f))
    }

    #[test]
    fn classify_flags() {
        assert_eq!(FlagClass::of(SYN), FlagClass::Syn);
        assert_eq!(FlagClass::of(SYN | ACK), FlagClass::SynAck);
        assert_eq!(FlagClass::of(FIN | ACK), FlagClass::Fin);
        assert_eq!(FlagClass::of(RST | ACK), FlagClass::Rst);
        assert_eq!(FlagClass::of(RST | SYN), FlagClass::Rst);
        assert_eq!(FlagClass::of(ACK | 0x08), FlagClass::Ack);
        assert_eq!(FlagClass::of(0), FlagClass::Ack);
    }

    #[test]
    fn handshake_and_close() {
        assert_eq!(run(&[(Orig, SYN)]), TcpState::SynSent);
        assert_eq!(run(&[(Orig, SYN), (Reply, SYN | ACK)]), TcpState::SynReceived);
        let est = [(Orig, SYN), (Reply, SYN | ACK), (Orig, ACK)];
        assert_eq!(run(&est), TcpState::Established);
        let mut s = est.to_vec();
        s.push((Orig, FIN | ACK));
        assert_eq!(run(&s), TcpState::FinWait);
        s.push((Reply, ACK));
        assert_eq!(run(&s), TcpState::FinWait);
        s.push((Reply, FIN | ACK));
        assert_eq!(run(&s), TcpState::TimeWait);
        s.push((Orig, ACK));
        assert_eq!(run(&s), TcpState::TimeWait);
        // The responder closes first.
        let mut r = est.to_vec();
        r.extend([(Reply, FIN), (Orig, FIN)]);
        assert_eq!(run(&r), TcpState::TimeWait);
    }

    #[test]
    fn rst_closes_from_every_state_and_syn_reopens() {
        for s in TcpState::ALL {
            for d in [Orig, Reply] {
                assert_eq!(next_state(s, d, RST), TcpState::Closed, "{s:?} {d:?}");
            }
        }
        assert_eq!(next_state(TcpState::Closed, Orig, SYN), TcpState::SynSent);
        assert_eq!(next_state(TcpState::TimeWait, Orig, SYN), TcpState::SynSent);
        assert_eq!(next_state(TcpState::Closed, Reply, SYN), TcpState::Closed);
    }

    #[test]
    fn pickup_needs_both_sides() {
        assert_eq!(run(&[(Orig, ACK), (Orig, ACK)]), TcpState::New);
        assert_eq!(run(&[(Orig, ACK), (Reply, ACK)]), TcpState::Established);
    }

    #[test]
    fn only_established_uses_the_long_timer() {
        for s in TcpState::ALL {
            let long = s.timeout_class() == TimeoutClass::TcpEstablished;
            assert_eq!(long, s == TcpState::Established);
            assert_eq!(TcpState::from_u8(s as u8), s);
        }
    }
}
