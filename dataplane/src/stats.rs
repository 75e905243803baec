//! Counters: every dropped packet has a named reason.
//!
//! [`DropReason`] is declared once, with a stable snake_case name (used in logs, the
//! control protocol and tests) and a one-line description. Per-worker counters index an
//! array by it, so counting a drop is one increment on memory the worker owns.

macro_rules! drop_reasons {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $text:literal; )*) => {
        /// Why a packet was dropped. Stable names: operators and tests match on them.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum DropReason {
            $( $(#[$doc])* $variant, )*
        }

        impl DropReason {
            /// Every reason, in declaration order (the counter array's order).
            pub const ALL: &'static [DropReason] = &[$(DropReason::$variant,)*];
            /// Number of reasons: the length of a per-worker drop counter array.
            pub const COUNT: usize = DropReason::ALL.len();

            /// The stable snake_case name.
            pub const fn name(self) -> &'static str {
                match self { $(DropReason::$variant => $name,)* }
            }

            /// A one-line description for operators.
            pub const fn description(self) -> &'static str {
                match self { $(DropReason::$variant => $text,)* }
            }

            /// Index into a counter array.
            pub const fn index(self) -> usize {
                self as usize
            }

            /// Look a reason up by its stable name.
            pub fn from_name(name: &str) -> Option<DropReason> {
                DropReason::ALL.iter().copied().find(|r| r.name() == name)
            }
        }
    };
}

drop_reasons! {
    // --- link layer ---
    /// Frame shorter than an Ethernet header.
    EthTruncated = "eth_truncated", "frame shorter than an Ethernet header";
    /// Destination MAC is neither ours nor broadcast.
    EthNotForUs = "eth_not_for_us", "destination MAC is not this port's nor broadcast";
    /// EtherType we do not handle (IPv6, VLAN, LLDP, ...).
    EthUnsupportedType = "eth_unsupported_type", "EtherType not handled (not IPv4 or ARP)";
    /// Mbuf chained over several segments (not supported yet).
    MultiSegment = "multi_segment", "multi-segment mbuf";
    // --- ARP ---
    /// ARP packet too short or not Ethernet/IPv4.
    ArpMalformed = "arp_malformed", "ARP packet malformed or not Ethernet/IPv4";
    /// ARP request for an address that is not ours, or an ARP we have no use for.
    ArpIgnored = "arp_ignored", "ARP packet not for one of our addresses";
    /// Packet waited for next-hop resolution and the ARP request went unanswered.
    ArpUnresolved = "arp_unresolved", "next hop did not answer ARP in time";
    /// Packet needed resolution but the hold queue was full.
    ArpHoldFull = "arp_hold_full", "no room to hold a packet awaiting ARP resolution";
    // --- IPv4 sanity ---
    /// Shorter than an IPv4 header, or shorter than its total length claims.
    Ipv4Truncated = "ipv4_truncated", "IPv4 packet truncated";
    /// Version is not 4.
    Ipv4BadVersion = "ipv4_bad_version", "IP version is not 4";
    /// IHL below 5 or beyond the packet.
    Ipv4BadIhl = "ipv4_bad_ihl", "IPv4 header length invalid";
    /// Total length smaller than the header.
    Ipv4BadLength = "ipv4_bad_length", "IPv4 total length invalid";
    /// Header checksum does not verify.
    Ipv4BadChecksum = "ipv4_bad_checksum", "IPv4 header checksum wrong";
    /// Source or destination address that must never be routed (0/8, 127/8, multicast, broadcast).
    Ipv4BadAddress = "ipv4_bad_address", "IPv4 martian source or destination";
    /// Source outside the arrival port's `allowed_sources` (RFC 2827 / BCP 38 ingress
    /// filtering on inside ports).
    SourceNotAllowed = "source_not_allowed", "source address not in the inside port's allowed_sources";
    /// TTL ran out; an ICMP time exceeded was sent back instead.
    TtlExceeded = "ttl_exceeded", "TTL expired in transit (ICMP time exceeded sent)";
    /// No port's prefix covers the destination and no gateway is configured.
    NoRoute = "no_route", "no route to destination";
    /// Addressed to this router but not something it answers.
    LocalUnhandled = "local_unhandled", "addressed to the router and not handled";
    /// DF set and larger than the egress MTU; ICMP fragmentation-needed sent back.
    NeedFragmentation = "need_fragmentation", "DF set and larger than egress MTU (ICMP sent)";
    /// Larger than the egress MTU without DF; masq does not fragment.
    TooBig = "too_big", "larger than egress MTU without DF (masq does not fragment)";
    /// Could not build an ICMP error (no buffer or packet unsuitable).
    IcmpErrorSuppressed = "icmp_error_suppressed", "ICMP error not generated (rate limit or unsuitable)";
    // --- transport ---
    /// TCP/UDP/ICMP header truncated or malformed.
    L4Malformed = "l4_malformed", "transport header truncated or malformed";
    /// TCP, UDP or ICMP checksum wrong.
    L4BadChecksum = "l4_bad_checksum", "transport checksum wrong";
    /// Protocol not translated (not TCP, UDP or ICMP) on a NAT path.
    L4Unsupported = "l4_unsupported", "protocol not supported for translation";
    /// ICMP type the NAT does not translate.
    IcmpUnsupported = "icmp_unsupported", "ICMP type not translated";
    // --- policy and NAT ---
    /// FORWARD chain (or its policy) dropped the packet.
    PolicyDrop = "policy_drop", "dropped by the filter FORWARD chain";
    /// Inbound packet with no session and no static mapping.
    NoSession = "no_session", "inbound packet matches no session";
    /// Inbound packet refused by address- or port-dependent filtering.
    FilteredEndpoint = "filtered_endpoint", "inbound packet from an endpoint the mapping does not accept";
    /// No free external port for the subscriber (ICMP host unreachable sent).
    PortsExhausted = "ports_exhausted", "no free external port";
    /// Subscriber reached its port or session limit (ICMP host unreachable sent).
    SubscriberLimit = "subscriber_limit", "subscriber reached its port or session limit";
    /// Subscriber opens new sessions faster than `[nat] new_sessions_per_second` (ICMP
    /// host unreachable sent).
    SubscriberRateLimit = "subscriber_rate_limit", "subscriber opens new sessions too fast";
    /// Address-only protocol (GRE, ESP, ...): every external address the flow may take
    /// already carries another inside host's flow to the same remote on the same
    /// protocol (ICMP host unreachable sent).
    AddrOnlyInUse = "addr_only_in_use", "no external address free for this remote and protocol (GRE, ESP...)";
    /// Session table full (ICMP host unreachable sent).
    SessionTableFull = "session_table_full", "session table full";
    /// Non-first fragment whose first fragment did not come while it waited
    /// (`pipeline::FRAG_WAIT`), or came and left no state for it.
    FragmentNoState = "fragment_no_state", "later fragment whose first fragment did not come in time";
    /// The oldest later fragment waiting for its first, dropped to make room for a newer
    /// one (`pipeline::FRAG_WAIT_CAPACITY` per worker).
    FragmentWaitFull = "fragment_wait_full", "later fragment waiting for its first pushed out by a newer one";
    /// A later fragment of a datagram that already has `pipeline::FRAG_WAIT_PER_DATAGRAM`
    /// fragments waiting for their first.
    FragmentDatagramLimit = "fragment_datagram_limit", "too many fragments of one datagram waiting for its first";
    /// Fragment state table full.
    FragmentTableFull = "fragment_table_full", "fragment tracking table full";
    /// Handoff ring to the owning worker was full.
    HandoffFull = "handoff_full", "handoff ring to the owning worker full";
    // --- host interfaces ---
    /// For the kernel, over the punt rate limit (`[host] max_pps`) or its queue bound.
    HostPuntLimited = "host_punt_limited", "for the kernel's host interface, over its rate limit or queue bound";
    /// An ARP reply the kernel sent (masqd answers ARP for its addresses itself).
    HostArpReply = "host_arp_reply", "ARP reply from the kernel (masqd answers ARP itself)";
    // --- transmit ---
    /// The PMD did not take the packet on transmit.
    TxFull = "tx_full", "transmit queue full";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(seen.insert(r.name()), "duplicate name {}", r.name());
            assert!(r.name().chars().all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()));
            assert_eq!(DropReason::from_name(r.name()), Some(*r));
            assert!(!r.description().is_empty());
        }
        assert_eq!(DropReason::from_name("nonsense"), None);
    }
}
