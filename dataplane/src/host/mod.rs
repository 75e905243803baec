//! The router's own services: one kernel "host interface" per port (the exception path).
//!
//! A port with `host_interface = "NAME"` gets a kernel TAP interface of that name in
//! masqd's network namespace, carrying the port's MAC, address, prefix and MTU (and the
//! default route when the port has the gateway), so Linux's own stack and ordinary
//! programs — a caching resolver, sshd, a proxy behind REDIRECT — run on the router.
//! VPP's linux-cp plugin and DPDK's "exception path" are the models; the whole design,
//! the precedence and the limits are in `docs/host-interface.md`.
//!
//! ```text
//!   port rx ─▶ worker: session? ─ yes ─▶ NAT
//!                      rule (DNAT/REDIRECT)? ─ yes ─▶ NAT
//!                      ARP / ICMP echo for us? ─ yes ─▶ masqd answers (ARP mirrored to the kernel)
//!                      our address, unclaimed ─▶ punt: rate limit ─▶ ring ─┐
//!                                                                         ▼
//!                                       host thread (main core): TAP write / TAP read
//!                                                                         │
//!   port tx ◀─ worker: in2out session? (REDIRECT replies) translate ◀─ ring ◀┘
//! ```
//!
//! Pieces, by file:
//!
//! - here: what the workers and the host thread share and can test without DPDK — the
//!   punt rate limiter ([`PuntLimiter`]), which worker a kernel frame belongs to
//!   ([`kernel_frame_owner`]), the per-port facts the router needs ([`HostPorts`]),
//!   and the reservation of `[host] ports` from the NAT's pool ([`reserve_host_ports`]);
//! - `kernel`: the kernel side, set up once at start and torn down at exit by the main
//!   thread with iproute2's `ip` and `/proc/sys` (never on a worker);
//! - `counters`: per host interface counters the host thread writes and `stats` reads;
//! - `pump` (DPDK only): the host thread that moves frames between the workers' rings
//!   and the TAP devices.
//!
//! Workers never make a system call for the exception path: they put frames on a
//! single-producer ring and take the kernel's frames from another (one pair per worker),
//! and the host thread on the main core does the TAP reads and writes. See
//! `docs/host-interface.md` for the measurement behind that choice.

pub mod counters;
pub mod kernel;
#[cfg(feature = "dpdk")]
pub mod pump;

use std::net::Ipv4Addr;

use crate::nat::key::{Endpoint, Proto};
use crate::nat::steer::subscriber_owner;
use crate::nat::WorkerNat;
use crate::time::Instant;

pub use counters::{HostCounters, HostInterfaceCounters};

/// Punts a worker's limiter allows at once after an idle period, at least: a tenth of a
/// second's worth of `max_pps`, but never below this (nor above `max_pps`).
pub const MIN_PUNT_BURST: u32 = 32;

/// A token bucket over the worker's millisecond clock: at most `rate` frames per second
/// toward the kernel, bursts of `burst`.
#[derive(Debug, Clone)]
pub struct PuntLimiter {
    rate: u64,
    /// Capacity and level in thousandths of a frame, so rates below 1000/s refill.
    cap_milli: u64,
    milli: u64,
    last: Instant,
}

impl PuntLimiter {
    /// `rate` frames per second (at least 1), starting full.
    pub fn new(rate: u32) -> PuntLimiter {
        let rate = u64::from(rate.max(1));
        let burst = (rate / 10).max(u64::from(MIN_PUNT_BURST).min(rate));
        PuntLimiter { rate, cap_milli: burst * 1000, milli: burst * 1000, last: Instant::ZERO }
    }

    /// Frames allowed at once after an idle period.
    pub fn burst(&self) -> u64 {
        self.cap_milli / 1000
    }

    /// Whether one more frame may go to the kernel at `now`; takes its token if so.
    #[inline]
    pub fn allow(&mut self, now: Instant) -> bool {
        if now != self.last {
            let ms = now.millis_since(self.last);
            self.last = now;
            self.milli = self.milli.saturating_add(ms.saturating_mul(self.rate)).min(self.cap_milli);
        }
        if self.milli >= 1000 {
            self.milli -= 1000;
            true
        } else {
            false
        }
    }
}

/// What the router needs to know about host interfaces: which ports have one, and the
/// worker's punt limiter.
#[derive(Debug, Clone)]
pub struct HostPorts {
    has: Box<[bool]>,
    pub limiter: PuntLimiter,
}

impl HostPorts {
    /// `has[i]`: whether port `i` has a host interface; `max_pps` per worker.
    pub fn new(has: Vec<bool>, max_pps: u32) -> HostPorts {
        HostPorts { has: has.into(), limiter: PuntLimiter::new(max_pps) }
    }

    /// From masqd's configuration; `None` when no port has a host interface.
    pub fn from_config(config: &crate::config::Config) -> Option<HostPorts> {
        config.has_host_interfaces().then(|| {
            HostPorts::new(config.ports.iter().map(|p| p.host_interface.is_some()).collect(), config.host.max_pps)
        })
    }

    /// Whether port `port` has a host interface.
    #[inline]
    pub fn has(&self, port: u16) -> bool {
        self.has.get(usize::from(port)).copied().unwrap_or(false)
    }

    /// Per port, whether it has a host interface.
    pub fn ports(&self) -> &[bool] {
        &self.has
    }
}

/// The worker that handles a frame the kernel sent (an Ethernet frame from a TAP), among
/// `workers`: the subscriber's worker of its IPv4 destination, because the only state a
/// kernel frame can need — the session of a REDIRECT'd flow whose reply it is — lives
/// with the worker of the flow's client (see `docs/host-interface.md`). ARP and anything
/// else: worker 0.
pub fn kernel_frame_owner(frame: &[u8], workers: u16) -> u16 {
    if workers <= 1 || frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return 0;
    }
    let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
    subscriber_owner(dst, workers)
}

/// Reserve `[host] ports` (`range`, inclusive) on each of `addrs` for TCP and UDP in
/// `nat`, where this worker owns the port (the NAT's partition), so no mapping ever takes
/// a port the kernel may use for its own connections. Addresses not in the NAT's pool
/// are skipped. Returns how many (address, port, protocol) were reserved; a port that
/// cannot be reserved (already taken: impossible before the first packet) is skipped.
pub fn reserve_host_ports(nat: &mut WorkerNat, addrs: &[Ipv4Addr], range: (u16, u16)) -> usize {
    let me = nat.worker();
    let partition = *nat.partition();
    let mut reserved = 0;
    for &addr in addrs {
        if nat.external_addrs().binary_search(&addr).is_err() {
            continue;
        }
        for port in range.0..=range.1 {
            if partition.owner_of(port) != Some(me) {
                continue;
            }
            for proto in [Proto::Tcp, Proto::Udp] {
                if nat.reserve_port(Endpoint::new(addr, port), proto).is_ok() {
                    reserved += 1;
                }
            }
        }
    }
    reserved
}

/// The addresses the kernel holds on host interfaces of outside ports (those the NAT
/// allocates from, and so the ones whose `[host] ports` must be reserved).
pub fn host_external_addrs(config: &crate::config::Config) -> Vec<Ipv4Addr> {
    config
        .ports
        .iter()
        .filter(|p| p.host_interface.is_some() && p.role == crate::config::Role::Outside)
        .map(|p| p.address.address)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::{NatConfig, Timeouts};
    use std::sync::Arc;

    #[test]
    fn limiter_allows_a_burst_then_the_rate() {
        let mut l = PuntLimiter::new(10_000);
        assert_eq!(l.burst(), 1000);
        let t = Instant::from_secs(1);
        let first = (0..5000).filter(|_| l.allow(t)).count();
        assert_eq!(first, 1000, "a full bucket gives its burst, then nothing in the same millisecond");
        // One millisecond refills ten frames at 10 000/s.
        let t2 = Instant::from_millis(1001);
        assert_eq!((0..100).filter(|_| l.allow(t2)).count(), 10);
        // Over a second of steady offers, about the rate gets through.
        let mut passed = 0;
        for ms in 2..1002 {
            let now = Instant::from_millis(1000 + ms);
            passed += (0..100).filter(|_| l.allow(now)).count();
        }
        assert_eq!(passed, 10_000);
    }

    #[test]
    fn limiter_refills_slow_rates_and_caps_the_bucket() {
        let mut l = PuntLimiter::new(5);
        assert_eq!(l.burst(), 5);
        let t = Instant::from_secs(10);
        assert_eq!((0..10).filter(|_| l.allow(t)).count(), 5);
        // 5/s: one token every 200 ms, even though no single millisecond makes one.
        let mut got = 0;
        for ms in 1..=1000 {
            got += usize::from(l.allow(Instant::from_millis(10_000 + ms)));
        }
        assert_eq!(got, 5);
        // A long idle period refills to the cap, not beyond.
        let later = Instant::from_secs(100);
        assert_eq!((0..100).filter(|_| l.allow(later)).count(), 5);
        assert_eq!(PuntLimiter::new(1).burst(), 1);
        assert_eq!(PuntLimiter::new(100).burst(), 32);
    }

    #[test]
    fn kernel_frames_go_to_their_destination_subscribers_worker() {
        let mut frame = vec![0u8; 60];
        frame[12] = 0x08;
        frame[13] = 0x00;
        frame[14] = 0x45;
        let mut seen = [false; 4];
        for last in 0..64u8 {
            let dst = Ipv4Addr::new(100, 64, 0, last);
            frame[30..34].copy_from_slice(&dst.octets());
            let w = kernel_frame_owner(&frame, 4);
            assert_eq!(w, subscriber_owner(dst, 4));
            seen[usize::from(w)] = true;
            assert_eq!(kernel_frame_owner(&frame, 1), 0);
        }
        assert!(seen.iter().all(|s| *s), "destinations spread over every worker");
        // ARP and short frames: worker 0.
        frame[13] = 0x06;
        assert_eq!(kernel_frame_owner(&frame, 4), 0);
        assert_eq!(kernel_frame_owner(&frame[..20], 4), 0);
    }

    #[test]
    fn host_ports_are_reserved_on_host_addresses_only_where_the_worker_owns_them() {
        let wan = Ipv4Addr::new(203, 0, 113, 1);
        let pool = Ipv4Addr::new(198, 51, 100, 7);
        let timeouts = Arc::new(Timeouts::default());
        let mut reserved = 0;
        for w in 0..2u16 {
            let mut nat = WorkerNat::new(NatConfig::new(vec![wan, pool], w, 2), timeouts.clone()).unwrap();
            let n = reserve_host_ports(&mut nat, &[wan, Ipv4Addr::new(10, 9, 9, 9)], (61000, 61999));
            reserved += n;
            let part = *nat.partition();
            for port in [61000, 61500, 61999] {
                let mine = part.owner_of(port) == Some(w);
                for proto in [Proto::Tcp, Proto::Udp] {
                    // A reserved port cannot be reserved again; a port of another worker's
                    // slice was left alone.
                    let again = nat.reserve_port(Endpoint::new(wan, port), proto);
                    assert_eq!(again.is_err(), mine, "worker {w} port {port} {proto:?}");
                    if again.is_ok() {
                        nat.unreserve_port(Endpoint::new(wan, port), proto);
                    }
                }
                // The pool address that is no host interface's keeps its ports.
                assert!(nat.reserve_port(Endpoint::new(pool, port), Proto::Tcp).is_ok());
            }
        }
        assert_eq!(reserved, 2 * 1000, "every port of the range, TCP and UDP, exactly once over the workers");
    }
}

#[cfg(test)]
mod path_tests;
