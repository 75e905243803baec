//! masq's benchmark harness (`masq-bench`) and microbenchmarks.
//!
//! The pieces that need no DPDK live here, so they are unit-tested and reused by the
//! criterion benches: [`flows`] (the RFC 4814-style flow space and the frame writers the
//! generator uses, both directions), [`check`] (the output check of both harnesses), [`results`] (what a run measured, its table and its JSON line) and
//! [`plot`] (the SVG of throughput and latency against active sessions) and [`topology`]
//! (the ports, addresses and rules both harnesses build), [`natops`] (the session-creation
//! scenarios of the `allocate` benchmarks and the `nat-ops` callgrind driver). The harness
//! itself, which runs masqd's worker on DPDK mbufs, is `src/bin/masq-bench.rs`.
#![deny(unsafe_code)]

pub mod check;
pub mod flows;
pub mod natops;
pub mod plot;
pub mod results;
pub mod topology;
