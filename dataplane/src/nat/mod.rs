//! The NAT core (being built up): flow keys, keyed hashing, the fixed-capacity index,
//! the session table, TCP state, live timeouts, the expiry wheel, external ports,
//! mappings, subscribers, filtering and fragments.
// The facade that ties these together lands in a following commit.
#![allow(dead_code)]

pub mod filter;
pub mod frag;
pub mod hash;
pub(crate) mod index;
pub mod key;
mod mapping;
pub mod ports;
mod subscriber;
pub mod table;
pub mod tcp;
pub mod timeouts;
pub(crate) mod timers;

/// Direction of a packet through the NAT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Arrived on the inside, leaves on the outside ("outbound").
    In2Out,
    /// Arrived on the outside, leaves on the inside ("inbound").
    Out2In,
}
