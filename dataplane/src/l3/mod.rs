//! Layer 3 around the NAT: neighbour resolution, routing, and the router's own packets
//! (ARP replies, ICMP errors, echo replies to its addresses).

pub mod neighbor;
pub mod route;
pub mod router;
