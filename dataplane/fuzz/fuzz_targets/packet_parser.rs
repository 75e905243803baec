//! Fuzzes `dataplane::packet`: any bytes, parsed as an Ethernet frame (then ARP, or
//! IPv4 then TCP/UDP/ICMP, and the IPv4 datagram quoted in an ICMP error) and directly
//! as each protocol; the in-place rewriters run on a copy, and an ICMP error is built
//! about every valid IPv4 packet and parsed back.
//!
//! The walk itself is `dataplane::packet::exercise`, shared with the panic-freedom
//! proptest. A crash is either a panic (the check-once contract broken: a view
//! accepted by `new_checked` indexed out of bounds) or a failed assertion (a checksum
//! that verified stopped verifying after an incremental rewrite, an emitted packet
//! that does not parse back).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dataplane::packet::exercise::all(data);
});
