//! masq's dataplane.
//!
//! The NAT core — [`packet`] (typed zero-copy views), [`nat`] (sessions, ports,
//! translation) and [`policy`] (iptables-style rules) — is sans-I/O: it takes bytes and a
//! [`time::Instant`] and returns verdicts. It never sees an mbuf, a port id, a clock or a
//! socket, so all of it builds and is tested without DPDK
//! (`cargo test -p dataplane --no-default-features`). Only the `dpdk` feature's I/O glue
//! and the `masqd` binary touch DPDK.
#![deny(unsafe_code)]

pub mod cli;
pub mod config;
// control plane: masqd's handler of the control protocol, worker mailboxes, latency
pub mod control_plane;
pub mod counters;
#[cfg(feature = "dpdk")]
pub mod dpdk_io;
pub mod host;
pub mod hugemem;
pub mod io;
pub mod l3;
pub mod link;
pub mod logging;
pub mod nat;
pub mod packet;
pub mod pipeline;
pub mod policy;
pub mod prefetch;
pub mod ratelimit;
pub mod report;
// systemd readiness notification (sd_notify)
pub mod service;
pub mod setup;
pub mod stats;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod time;
pub mod worker;
