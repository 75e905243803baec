//! One set of test frame builders and checksum-verifying parsers, for every test of masq:
//! this crate's unit tests, its integration tests (`tests/common` re-exports this module)
//! and `perf/` (whose traffic generator builds its template frame here).
//!
//! - [`frames`]: Ethernet frames and bare IPv4 packets (UDP, TCP, ICMP echo and errors,
//!   ARP, fragments) with every checksum right, built by etherparse, which is not masq's
//!   code;
//! - [`verify`]: parsers that read a frame for assertions and verify every checksum
//!   themselves ([`parse_ipv4`], [`parse_arp`], [`Ipv4Info::quoted`] for ICMP errors).
//!
//! Compiled for this crate's tests and with the `testkit` feature (the crate's own
//! dev-dependency turns it on for its integration tests; perf turns it on). masqd is built
//! without it. Everything here panics on misuse: it is test code.

pub mod frames;
pub mod verify;

pub use frames::*;
pub use verify::*;
