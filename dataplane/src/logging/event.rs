//! One NAT event, as a worker reports it: small, `Copy`, no pointers.
//!
//! The kinds are RFC 8158's `natEvent` values (§4.1, Table 2), so the IPFIX encoder
//! writes [`EventKind::code`] as is and the syslog formatter names them:
//!
//! | natEvent | kind                                  | fields set                                  |
//! |---------:|---------------------------------------|---------------------------------------------|
//! | 3        | [`EventKind::AddressesExhausted`]     | `outside.addr` (first pool address), `limit` = pool size |
//! | 4 / 5    | [`EventKind::SessionCreate`] / `Delete` | inside, outside, remote, proto            |
//! | 8 / 9    | [`EventKind::MappingCreate`] / `Delete` | inside, outside, proto                    |
//! | 12       | [`EventKind::PortsExhausted`]         | `inside.addr`, `outside.addr`, proto        |
//! | 13       | [`EventKind::QuotaExceeded`]          | `quota`, `limit`, `inside.addr` (per-user)  |
//! | 16 / 17  | [`EventKind::BlockAllocate`] / `Release` | `inside.addr`, `outside.addr`, `outside.port` = first port, `block` = ports |
//!
//! Deterministic NAT (RFC 7422) reports each subscriber's whole mapping once, at start,
//! as a port block allocation (16) carrying its fixed range.
//!
//! `time_ms` is the worker's monotonic millisecond clock at the event (the `now` the
//! NAT was handed); the logging thread adds the wall-clock offset of that clock's origin.

use std::net::Ipv4Addr;

use crate::nat::{Endpoint, Proto};

/// RFC 8158 `natEvent` (IANA "natEvent" registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// NAT addresses exhausted: no pool address has a free port.
    AddressesExhausted = 3,
    /// NAT44 session create.
    SessionCreate = 4,
    /// NAT44 session delete.
    SessionDelete = 5,
    /// NAT44 BIB (endpoint-independent mapping) create.
    MappingCreate = 8,
    /// NAT44 BIB delete.
    MappingDelete = 9,
    /// NAT ports exhausted on one external address.
    PortsExhausted = 12,
    /// A quota was exceeded ([`QuotaKind`] says which).
    QuotaExceeded = 13,
    /// Port block allocation.
    BlockAllocate = 16,
    /// Port block de-allocation.
    BlockRelease = 17,
}

impl EventKind {
    /// Every kind, in `natEvent` order.
    pub const ALL: [EventKind; 9] = [
        EventKind::AddressesExhausted,
        EventKind::SessionCreate,
        EventKind::SessionDelete,
        EventKind::MappingCreate,
        EventKind::MappingDelete,
        EventKind::PortsExhausted,
        EventKind::QuotaExceeded,
        EventKind::BlockAllocate,
        EventKind::BlockRelease,
    ];

    /// The `natEvent` value.
    pub const fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(code: u8) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.code() == code)
    }

    /// The stable name: the syslog MSGID (VPP's `SADD`/`SDEL`/`APMADD`/`APMDEL` where
    /// they exist).
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::AddressesExhausted => "AEXH",
            EventKind::SessionCreate => "SADD",
            EventKind::SessionDelete => "SDEL",
            EventKind::MappingCreate => "APMADD",
            EventKind::MappingDelete => "APMDEL",
            EventKind::PortsExhausted => "PEXH",
            EventKind::QuotaExceeded => "QEXC",
            EventKind::BlockAllocate => "PBADD",
            EventKind::BlockRelease => "PBDEL",
        }
    }
}

/// RFC 8158 `natQuotaExceededEvent` (IE 466).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum QuotaKind {
    /// Not a quota event.
    None = 0,
    /// Maximum session entries (the worker's session table is full).
    MaxSessions = 1,
    /// Maximum BIB entries (the mapping table is full).
    MaxMappings = 2,
    /// Maximum entries per user (a subscriber's port or session limit).
    MaxEntriesPerUser = 3,
    /// Maximum active hosts or subscribers (the subscriber table is full).
    MaxSubscribers = 4,
}

impl QuotaKind {
    pub const fn name(self) -> &'static str {
        match self {
            QuotaKind::None => "none",
            QuotaKind::MaxSessions => "max-sessions",
            QuotaKind::MaxMappings => "max-mappings",
            QuotaKind::MaxEntriesPerUser => "max-entries-per-user",
            QuotaKind::MaxSubscribers => "max-subscribers",
        }
    }

    pub fn from_code(code: u8) -> Option<QuotaKind> {
        [QuotaKind::MaxSessions, QuotaKind::MaxMappings, QuotaKind::MaxEntriesPerUser, QuotaKind::MaxSubscribers]
            .into_iter()
            .find(|q| *q as u8 == code)
    }
}

/// One NAT event (40 bytes). Addresses are host-order `u32`s so the record stays flat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatEvent {
    /// The worker's monotonic clock at the event, in milliseconds.
    pub time_ms: u64,
    pub inside_addr: u32,
    pub outside_addr: u32,
    pub remote_addr: u32,
    /// Quota limit (quota events) or pool size (addresses exhausted).
    pub limit: u32,
    pub inside_port: u16,
    /// The external port; for blocks, the first port of the block.
    pub outside_port: u16,
    pub remote_port: u16,
    /// Ports in the block (block events).
    pub block: u16,
    pub kind: EventKind,
    /// IP protocol number (0 when the event has none).
    pub proto: u8,
    pub quota: QuotaKind,
    /// The worker that reported it.
    pub worker: u8,
    /// A destination-NAT session (a port forward): `remote` is the client, `outside`
    /// the forwarded external endpoint, `inside` the server it reaches.
    pub dest_nat: bool,
}

const _: () = assert!(core::mem::size_of::<NatEvent>() == 40);

impl NatEvent {
    const fn blank(kind: EventKind, time_ms: u64) -> NatEvent {
        NatEvent {
            time_ms,
            inside_addr: 0,
            outside_addr: 0,
            remote_addr: 0,
            limit: 0,
            inside_port: 0,
            outside_port: 0,
            remote_port: 0,
            block: 0,
            kind,
            proto: 0,
            quota: QuotaKind::None,
            worker: 0,
            dest_nat: false,
        }
    }

    /// A session create or delete (`kind` one of the two).
    pub fn session(
        kind: EventKind,
        time_ms: u64,
        proto: Proto,
        inside: Endpoint,
        outside: Endpoint,
        remote: Endpoint,
    ) -> NatEvent {
        NatEvent {
            inside_addr: inside.addr.into(),
            inside_port: inside.port,
            outside_addr: outside.addr.into(),
            outside_port: outside.port,
            remote_addr: remote.addr.into(),
            remote_port: remote.port,
            proto: proto.number(),
            ..NatEvent::blank(kind, time_ms)
        }
    }

    /// A mapping (BIB entry) create or delete.
    pub fn mapping(kind: EventKind, time_ms: u64, proto: Proto, inside: Endpoint, outside: Endpoint) -> NatEvent {
        NatEvent {
            inside_addr: inside.addr.into(),
            inside_port: inside.port,
            outside_addr: outside.addr.into(),
            outside_port: outside.port,
            proto: proto.number(),
            ..NatEvent::blank(kind, time_ms)
        }
    }

    /// A port block allocation or release: ports `first .. first + size` of `outside`.
    pub fn block(
        kind: EventKind,
        time_ms: u64,
        inside: Ipv4Addr,
        outside: Ipv4Addr,
        first: u16,
        size: u16,
    ) -> NatEvent {
        NatEvent {
            inside_addr: inside.into(),
            outside_addr: outside.into(),
            outside_port: first,
            block: size,
            ..NatEvent::blank(kind, time_ms)
        }
    }

    /// No free port on `outside` for `inside`'s new mapping.
    pub fn ports_exhausted(time_ms: u64, proto: Proto, inside: Ipv4Addr, outside: Ipv4Addr) -> NatEvent {
        NatEvent {
            inside_addr: inside.into(),
            outside_addr: outside.into(),
            proto: proto.number(),
            ..NatEvent::blank(EventKind::PortsExhausted, time_ms)
        }
    }

    /// No address of the pool (`pool` addresses from `first`) could give a port.
    pub fn addresses_exhausted(time_ms: u64, first: Ipv4Addr, pool: u32) -> NatEvent {
        NatEvent { outside_addr: first.into(), limit: pool, ..NatEvent::blank(EventKind::AddressesExhausted, time_ms) }
    }

    /// A quota hit; `inside` is the subscriber for per-user quotas.
    pub fn quota(time_ms: u64, quota: QuotaKind, limit: u32, inside: Ipv4Addr) -> NatEvent {
        NatEvent { quota, limit, inside_addr: inside.into(), ..NatEvent::blank(EventKind::QuotaExceeded, time_ms) }
    }

    /// The same session event, marked as destination NAT (see [`NatEvent::dest_nat`]).
    pub const fn as_dest_nat(mut self) -> NatEvent {
        self.dest_nat = true;
        self
    }

    /// The same event, attributed to `worker`.
    pub const fn on_worker(mut self, worker: u8) -> NatEvent {
        self.worker = worker;
        self
    }

    pub fn inside(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.inside_addr), self.inside_port)
    }

    pub fn outside(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.outside_addr), self.outside_port)
    }

    pub fn remote(&self) -> Endpoint {
        Endpoint::new(Ipv4Addr::from(self.remote_addr), self.remote_port)
    }

    /// Last port of a block (block events); saturates at 65535.
    pub fn block_end(&self) -> u16 {
        self.outside_port.saturating_add(self.block.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::from_code(k.code()), Some(k));
        }
        assert_eq!(EventKind::from_code(6), None);
        assert_eq!(EventKind::SessionCreate.code(), 4);
        assert_eq!(EventKind::BlockRelease.code(), 17);
        assert_eq!(QuotaKind::from_code(3), Some(QuotaKind::MaxEntriesPerUser));
        assert_eq!(QuotaKind::from_code(0), None);
    }

    #[test]
    fn constructors_fill_the_documented_fields() {
        let ep = |a: [u8; 4], p| Endpoint::new(Ipv4Addr::from(a), p);
        let e = NatEvent::session(
            EventKind::SessionCreate,
            7,
            Proto::Udp,
            ep([100, 64, 0, 2], 5000),
            ep([203, 0, 113, 1], 40001),
            ep([198, 51, 100, 7], 53),
        );
        assert_eq!(e.inside(), ep([100, 64, 0, 2], 5000));
        assert_eq!(e.outside(), ep([203, 0, 113, 1], 40001));
        assert_eq!(e.remote(), ep([198, 51, 100, 7], 53));
        assert_eq!((e.proto, e.time_ms, e.kind), (17, 7, EventKind::SessionCreate));
        let b = NatEvent::block(EventKind::BlockAllocate, 1, [100, 64, 0, 2].into(), [203, 0, 113, 1].into(), 2048, 64);
        assert_eq!(b.block_end(), 2111);
        assert_eq!(b.on_worker(3).worker, 3);
        let top = NatEvent::block(EventKind::BlockAllocate, 1, [1, 1, 1, 1].into(), [2, 2, 2, 2].into(), 65500, 64);
        assert_eq!(top.block_end(), 65535);
    }
}
