//! The NAT core (being built up): flow keys, keyed hashing and the fixed-capacity
//! index every NAT table is made of.
// The tables that use these land in the following commits.
#![allow(dead_code)]

pub mod hash;
pub(crate) mod index;
pub mod key;
