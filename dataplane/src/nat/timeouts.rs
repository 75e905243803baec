//! Idle timeouts: the one piece of NAT state shared between threads.
//!
//! The control plane changes them live (`masqctl -M -S tcp tcpfin udp`); workers read
//! them with relaxed atomic loads whenever a session is created or refreshed. A new
//! value therefore applies to each session **from its next packet**, as in Linux
//! conntrack: a session keeps the deadline it was given until a packet moves it. No
//! session is rewritten when the value changes and nothing needs stopping.
//!
//! Defaults follow the RFCs' floors: RFC 5382 REQ-5 (established ≥ 2 h 4 min,
//! transitory ≥ 4 min), RFC 4787 REQ-5 (UDP ≥ 2 min, 5 min recommended), RFC 5508
//! REQ-2 (ICMP query ≥ 60 s); `other` (protocols translated by address only: GRE,
//! ESP ...) follows Linux's generic conntrack timeout of 600 s. Lower values can be
//! set; that is the operator's call.

use crate::time::Duration;
use core::sync::atomic::{AtomicU32, Ordering};

/// Which timeout governs a session. Derived from the protocol and, for TCP, the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TimeoutClass {
    /// TCP handshake in progress, closing, or reset (`tcpfin`).
    TcpTransitory = 0,
    /// TCP established (`tcp`).
    TcpEstablished = 1,
    /// UDP (`udp`).
    Udp = 2,
    /// ICMP query (`icmp`).
    Icmp = 3,
    /// Any other IP protocol, translated by address only (`other`).
    Other = 4,
}

impl TimeoutClass {
    pub const ALL: [TimeoutClass; 5] = [
        TimeoutClass::TcpTransitory,
        TimeoutClass::TcpEstablished,
        TimeoutClass::Udp,
        TimeoutClass::Icmp,
        TimeoutClass::Other,
    ];

    /// The name used by the control protocol (`tcp`, `tcpfin`, `udp`, `icmp`, `other`).
    pub const fn name(self) -> &'static str {
        match self {
            TimeoutClass::TcpTransitory => "tcpfin",
            TimeoutClass::TcpEstablished => "tcp",
            TimeoutClass::Udp => "udp",
            TimeoutClass::Icmp => "icmp",
            TimeoutClass::Other => "other",
        }
    }
}

/// The longest idle timeout masqd accepts, in seconds (7 days), from the configuration
/// file and from the control socket alike ([`check_timeout`]).
pub const MAX_TIMEOUT_SECS: u32 = 7 * 24 * 3600;

/// A timeout outside `1..=`[`MAX_TIMEOUT_SECS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0} s is outside 1..={MAX_TIMEOUT_SECS}")]
pub struct TimeoutOutOfRange(pub u32);

/// The one check of a timeout value, wherever it comes from (`[timeouts]` in the
/// configuration, `timeouts.set` on the control socket): 1 s to 7 days.
pub fn check_timeout(secs: u32) -> Result<u32, TimeoutOutOfRange> {
    if (1..=MAX_TIMEOUT_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(TimeoutOutOfRange(secs))
    }
}

/// A plain copy of the timeouts, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutValues {
    pub tcp: u32,
    pub tcpfin: u32,
    pub udp: u32,
    pub icmp: u32,
    pub other: u32,
}

impl Default for TimeoutValues {
    fn default() -> Self {
        TimeoutValues { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60, other: 600 }
    }
}

/// The live timeouts, in seconds, shared by all workers (`Arc<Timeouts>`).
#[derive(Debug)]
pub struct Timeouts {
    secs: [AtomicU32; TimeoutClass::ALL.len()],
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts::new(TimeoutValues::default())
    }
}

impl Timeouts {
    pub fn new(v: TimeoutValues) -> Self {
        let t = Timeouts { secs: Default::default() };
        t.store(v);
        t
    }

    /// The current timeout for `class`.
    #[inline]
    pub fn get(&self, class: TimeoutClass) -> Duration {
        Duration::from_secs(u64::from(self.secs[class as usize].load(Ordering::Relaxed)))
    }

    /// Change one timeout; sessions pick it up at their next packet.
    pub fn set(&self, class: TimeoutClass, secs: u32) {
        self.secs[class as usize].store(secs, Ordering::Relaxed);
    }

    pub fn load(&self) -> TimeoutValues {
        let g = |c: TimeoutClass| self.secs[c as usize].load(Ordering::Relaxed);
        TimeoutValues {
            tcp: g(TimeoutClass::TcpEstablished),
            tcpfin: g(TimeoutClass::TcpTransitory),
            udp: g(TimeoutClass::Udp),
            icmp: g(TimeoutClass::Icmp),
            other: g(TimeoutClass::Other),
        }
    }

    pub fn store(&self, v: TimeoutValues) {
        self.set(TimeoutClass::TcpEstablished, v.tcp);
        self.set(TimeoutClass::TcpTransitory, v.tcpfin);
        self.set(TimeoutClass::Udp, v.udp);
        self.set(TimeoutClass::Icmp, v.icmp);
        self.set(TimeoutClass::Other, v.other);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_live_changes() {
        let t = Timeouts::default();
        assert_eq!(t.get(TimeoutClass::TcpEstablished), Duration::from_secs(7440));
        assert_eq!(t.get(TimeoutClass::TcpTransitory), Duration::from_secs(240));
        assert_eq!(t.get(TimeoutClass::Udp), Duration::from_secs(300));
        assert_eq!(t.get(TimeoutClass::Icmp), Duration::from_secs(60));
        assert_eq!(t.get(TimeoutClass::Other), Duration::from_secs(600));
        t.set(TimeoutClass::Udp, 30);
        assert_eq!(t.load().udp, 30);
        let names: Vec<_> = TimeoutClass::ALL.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["tcpfin", "tcp", "udp", "icmp", "other"]);
    }

    #[test]
    fn one_range_for_every_source() {
        assert_eq!(check_timeout(1), Ok(1));
        assert_eq!(check_timeout(MAX_TIMEOUT_SECS), Ok(MAX_TIMEOUT_SECS));
        assert_eq!(check_timeout(0).unwrap_err().to_string(), "0 s is outside 1..=604800");
        assert_eq!(check_timeout(MAX_TIMEOUT_SECS + 1), Err(TimeoutOutOfRange(604_801)));
    }
}
