//! NAT event logging: what the workers report, and how it reaches a collector.
//!
//! ```text
//!  worker 0 ── NatEvent ─▶ [ring 0] ─┐
//!  worker 1 ── NatEvent ─▶ [ring 1] ─┼─▶ logging thread (main core) ─┬─▶ IPFIX (RFC 7011/8158) ─▶ UDP collectors
//!  ...                               ┘     drains, batches, sends    └─▶ syslog (RFC 5424) ──────▶ UDP
//! ```
//!
//! - [`event`]: [`NatEvent`], one 40-byte `Copy` record per event, kinds numbered as
//!   RFC 8158's `natEvent`.
//! - [`ring`]: the per-worker bounded SPSC ring. The worker's [`LogSink::push`] never
//!   blocks or allocates; a full ring drops the event and counts it
//!   (`log_events_dropped`, per worker, in `stats` and the shutdown report).
//! - [`ipfix`]: the IPFIX encoder (templates, sequence numbers, MTU-sized messages)
//!   and a small independent decoder for tests.
//! - [`syslog`]: the RFC 5424 line formatter.
//! - [`exporter`]: the logging thread: drains every ring, encodes, sends over UDP.
//!
//! Events are produced only on the NAT's slow paths (creation, expiry, flush, refusal):
//! a packet that hits an existing session never touches the logging code, and with
//! logging off the NAT holds no sink at all (one `Option` test per creation or
//! expiry). What is logged is an [`EventMask`], resolved from `[logging] events` and
//! the port-block configuration (see `docs/logging.md`).

pub mod event;
pub mod exporter;
pub mod ipfix;
pub mod ring;
pub mod syslog;

pub use event::{EventKind, NatEvent, QuotaKind};
pub use exporter::{Exporter, ExporterSettings, ExporterStats};
pub use ring::{ring, LogDrain, LogSink, SinkCounters, DEFAULT_RING};

/// Which translation events are logged. Alerts (addresses or ports exhausted, quota
/// exceeded) are always logged when logging is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EventMask {
    /// Session create/delete (natEvent 4/5).
    pub sessions: bool,
    /// Mapping (BIB) create/delete (natEvent 8/9).
    pub mappings: bool,
    /// Port block allocate/release (natEvent 16/17).
    pub blocks: bool,
}

impl EventMask {
    pub const SESSIONS: EventMask = EventMask { sessions: true, mappings: false, blocks: false };
    pub const MAPPINGS: EventMask = EventMask { sessions: false, mappings: true, blocks: false };
    pub const BLOCKS: EventMask = EventMask { sessions: false, mappings: false, blocks: true };

    #[inline]
    pub const fn wants(self, kind: EventKind) -> bool {
        match kind {
            EventKind::SessionCreate | EventKind::SessionDelete => self.sessions,
            EventKind::MappingCreate | EventKind::MappingDelete => self.mappings,
            EventKind::BlockAllocate | EventKind::BlockRelease => self.blocks,
            EventKind::AddressesExhausted | EventKind::PortsExhausted | EventKind::QuotaExceeded => true,
        }
    }

    pub const fn union(self, o: EventMask) -> EventMask {
        EventMask {
            sessions: self.sessions || o.sessions,
            mappings: self.mappings || o.mappings,
            blocks: self.blocks || o.blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert!(EventMask::SESSIONS.wants(EventKind::SessionDelete));
        assert!(!EventMask::SESSIONS.wants(EventKind::MappingCreate));
        assert!(EventMask::MAPPINGS.wants(EventKind::QuotaExceeded), "alerts always");
        let both = EventMask::SESSIONS.union(EventMask::BLOCKS);
        assert!(both.wants(EventKind::BlockRelease) && both.wants(EventKind::SessionCreate));
        assert!(!both.wants(EventKind::MappingDelete));
    }
}
