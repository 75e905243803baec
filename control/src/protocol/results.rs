//! What each command answers: the `result` of a successful response, one type per
//! command (see [`COMMANDS`](super::COMMANDS) for which is which).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::errors::ControlError;
use super::values::Protocol;
use super::PROTOCOL_VERSION;

/// Serialize a typed result for a handler's `Ok(...)`.
pub fn to_result<T: Serialize>(value: &T) -> Result<Value, ControlError> {
    Ok(serde_json::to_value(value)?)
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

/// One translation (a row of `masqctl -M -L`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionEntry {
    /// Transport protocol.
    pub proto: Protocol,
    /// Subscriber side, `"100.64.0.2:40000"` (ICMP: address and query id).
    pub inside: SocketAddrV4,
    /// The external address and port it is translated to.
    pub outside: SocketAddrV4,
    /// The remote peer.
    pub remote: SocketAddrV4,
    /// Tracking state as the NAT names it (`"ESTABLISHED"`, `"SYN_SENT"`, `"UDP"`, ...).
    pub state: String,
    /// Seconds until the session expires if idle.
    pub expires_in_secs: u64,
    /// The worker that owns it.
    pub worker: u32,
    /// The session's number within its worker: given for sessions with a protocol
    /// helper, which their data sessions name as `parent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// The protocol helper (`"ftp"`, `"tftp"`, `"irc"`) of a helper session or of a
    /// data session one admitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helper: Option<String>,
    /// A data session's control session (its `id`, same worker).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
}

/// `expectations.list`'s result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationList {
    pub expectations: Vec<ExpectationEntry>,
}

/// A data connection a protocol helper announced and waits for (one flow, once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectationEntry {
    /// `"ftp"`, `"tftp"` or `"irc"`.
    pub helper: String,
    /// Transport protocol of the expected flow.
    pub proto: Protocol,
    /// `"in"`: it comes from outside to `dst`; `"out"`: an inside host opens it to `dst`.
    pub direction: String,
    /// Where the flow goes: the external endpoint (`in`) or the remote one (`out`).
    pub dst: SocketAddrV4,
    /// Who may open it: an address, or `"*"` for anyone.
    pub src: String,
    /// From which port; absent: any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub src_port: Option<u16>,
    /// The inside endpoint it reaches (`in`), or the external address it leaves with
    /// (`out`, port 0).
    pub inside: SocketAddrV4,
    /// The session that announced it (`id` in `sessions.list`, same worker).
    pub parent: u32,
    pub worker: u32,
    /// Seconds left before it is dropped unused.
    pub expires_in_secs: u64,
}

/// One answer of `nat.lookup`: a deterministic mapping (a host's whole range), a port
/// block a subscriber holds, or a live session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupMatch {
    /// `"deterministic"` (computed, RFC 7422), `"block"` (a live port block) or
    /// `"session"` (live).
    pub source: String,
    /// The subscriber.
    pub inside_addr: Ipv4Addr,
    /// The subscriber's port (sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inside_port: Option<u16>,
    pub outside_addr: Ipv4Addr,
    /// The external ports: the host's range (deterministic), the block's, or the one
    /// port (session).
    pub first_port: u16,
    pub last_port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    /// The remote peer (sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddrV4>,
    /// Tracking state (sessions); `"ACTIVE"` or `"IDLE"` (no mapping left, released
    /// after `expires_in_secs`) for blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Seconds since the session's last packet that refreshed it (sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_secs: Option<u64>,
    /// Seconds until it expires if idle (sessions), or until an idle block is released.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_secs: Option<u64>,
    /// The worker that holds it (sessions, blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<u32>,
    /// When the subscriber was given the block: RFC 3339, UTC, milliseconds (blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Seconds the subscriber has held the block (blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_secs: Option<u64>,
    /// Mappings (external ports, all protocols) using the block now (blocks).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mappings: Option<u32>,
}

/// `nat.lookup`'s result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LookupResult {
    pub matches: Vec<LookupMatch>,
    /// More live sessions matched than were returned (at most 1000).
    pub truncated: bool,
}

/// One page of `sessions.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionPage {
    /// At most `limit` sessions.
    pub sessions: Vec<SessionEntry>,
    /// Pass as `cursor` to get the next page; `null` on the last page. Opaque.
    pub next_cursor: Option<String>,
}

/// `sessions.count`'s result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCount {
    /// Sessions matching the filter (from the cursor on, when one was given).
    pub count: u64,
    /// Present when masqd's deadline cut the scan short: pass it as `cursor` to count the
    /// rest, and add the counts. Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------------

/// `rules.list`'s result: one table's chains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleListing {
    /// The table listed.
    pub table: String,
    /// The chains, in the table's order (or the one chain asked for).
    pub chains: Vec<ChainListing>,
}

/// One chain of a [`RuleListing`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainListing {
    /// Chain name.
    pub chain: String,
    /// Built-in chains: the policy (`"ACCEPT"`, `"DROP"`); user chains: `null`.
    #[serde(default)]
    pub policy: Option<String>,
    /// Packets that met the policy.
    #[serde(default)]
    pub packets: u64,
    /// Bytes that met the policy.
    #[serde(default)]
    pub bytes: u64,
    /// User chains: rules that jump to this chain.
    #[serde(default)]
    pub references: u32,
    /// The rules, in order.
    pub rules: Vec<RuleEntry>,
}

/// One rule. `spec` is canonical; the display columns (as `iptables -L -n` shows them) are
/// filled by the dataplane, which owns the grammar.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleEntry {
    /// 1-based position in the chain.
    pub number: u32,
    /// Packets matched.
    pub packets: u64,
    /// Bytes matched.
    pub bytes: u64,
    /// The rule as argv tokens, without `-A CHAIN` (what `iptables -S` prints after it).
    pub spec: Vec<String>,
    /// `target` column: `"MASQUERADE"`, `"DNAT"`, a chain name, or `""` for none.
    #[serde(default)]
    pub target: String,
    /// `prot` column: `"all"`, `"tcp"`, ...; a leading `!` marks negation.
    #[serde(default)]
    pub protocol: String,
    /// `in` column: interface, or `"*"` for any.
    #[serde(default)]
    pub in_iface: String,
    /// `out` column: interface, or `"*"` for any.
    #[serde(default)]
    pub out_iface: String,
    /// `source` column: `"0.0.0.0/0"`, `"100.64.0.0/10"`, `"!10.0.0.0/8"`.
    #[serde(default)]
    pub source: String,
    /// `destination` column.
    #[serde(default)]
    pub destination: String,
    /// The free-form tail: matches and target options (`"tcp dpt:8080 to:100.64.0.2:80"`).
    #[serde(default)]
    pub options: String,
}

/// `rules.append` / `rules.insert` result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleAdded {
    /// The new rule's 1-based position.
    pub number: u32,
}

/// `rules.flush` / `sessions.flush` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flushed {
    /// Rules or sessions removed.
    pub flushed: u64,
    /// `sessions.flush` only, present when masqd's deadline cut the flush short: pass it
    /// as `cursor` to go on (`flushed` says how far this step got). Opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `rules.save` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedRules {
    /// `iptables-save` text: `*table`, `:CHAIN POLICY [packets:bytes]`, `-A ...`, `COMMIT`.
    pub text: String,
}

/// `rules.restore` result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// Tables the text replaced (or added to, with `noflush`).
    pub tables: Vec<String>,
    /// Rules the text added.
    pub rules: u64,
}

// ---------------------------------------------------------------------------------------
// Timeouts
// ---------------------------------------------------------------------------------------

/// Idle timeouts in seconds, as `ipchains -M -S tcp tcpfin udp`, plus ICMP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// Established TCP.
    pub tcp: u32,
    /// Transitory TCP (opening, closing, reset).
    pub tcpfin: u32,
    /// UDP.
    pub udp: u32,
    /// ICMP queries.
    pub icmp: u32,
    /// Other IP protocols, translated by address only (GRE, ESP ...). Absent from an
    /// older masqd's answer: 0.
    #[serde(default)]
    pub other: u32,
}

// ---------------------------------------------------------------------------------------
// Statistics and version
// ---------------------------------------------------------------------------------------

/// `stats.get`'s result: a snapshot read without stopping the workers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Per port.
    pub ports: Vec<PortStats>,
    /// Per worker.
    pub workers: Vec<WorkerStats>,
    /// Dropped packets by reason (the dataplane's stable `DropReason` names), all workers.
    pub drops: BTreeMap<String, u64>,
    /// Sessions now in the tables, all workers.
    #[serde(default)]
    pub sessions_active: u64,
    /// Sessions created since start.
    pub sessions_created: u64,
    /// Sessions expired (or flushed) since start.
    pub sessions_expired: u64,
    /// External port use per external address.
    pub port_utilisation: Vec<PortUtilisation>,
    /// Per-packet processing latency, microseconds.
    pub latency_us: Percentiles,
    /// TSC ticks per second of the workers' cores: what the `cycles` of
    /// [`WorkerStats::runtime`] count in.
    #[serde(default)]
    pub tsc_hz: u64,
    /// Every counter of [`WorkerStats::counters`], summed over the workers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
    /// Sessions by protocol (`"tcp"`, `"udp"`, `"icmp"`), all workers.
    #[serde(default)]
    pub sessions_by_protocol: BTreeMap<String, ProtocolSessions>,
    /// The same latency samples as `latency_us`, as a histogram (Prometheus' shape).
    #[serde(default)]
    pub latency_histogram: LatencyHistogram,
    /// The packet-buffer pool, read live (absent when the daemon has none to report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mempool: Option<MempoolStats>,
    /// Per host interface (the kernel TAPs of `[[port]] host_interface`); empty without.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_interfaces: Vec<HostInterfaceStats>,
}

/// The packet-buffer (mbuf) pool: `in_use` counts the buffers held anywhere (device
/// queues, rings between workers, frames waiting for ARP or a first fragment); the rest
/// are free. With no traffic in flight it returns to its idle level: a figure that keeps
/// rising is a leak.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolStats {
    /// Buffers in the pool.
    pub size: u64,
    /// Buffers allocated from it now.
    pub in_use: u64,
}

/// One host interface's counters, named as `ip -s link show NAME` names them: `rx` is
/// what masqd delivered to the kernel, `tx` what the kernel sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInterfaceStats {
    /// The kernel interface's name.
    pub name: String,
    /// The port it belongs to.
    pub port: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames for the kernel the interface did not take.
    pub rx_dropped: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames from the kernel a worker's full ring did not take.
    pub tx_dropped: u64,
    /// Frames from the kernel that are neither IPv4 nor ARP (dropped).
    pub tx_unsupported: u64,
}

/// One port's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortStats {
    /// DPDK port id.
    pub port: u16,
    /// Configured name (`"inside"`, `"wan"`).
    pub name: String,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Packets the NIC dropped on receive (no descriptor / no mbuf: `imissed` + `rx_nombuf`).
    pub rx_drops: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets the TX queue refused and masq freed.
    pub tx_drops: u64,
    /// Raw PMD counters (`ierrors`, `oerrors`, `imissed`, `rx_nombuf`, xstats ...).
    #[serde(default)]
    pub pmd: BTreeMap<String, u64>,
    /// Carrier up, as masqd's main thread last polled it (the PMD's report, and for
    /// `net_af_packet` the kernel interface's state); `null` when the PMD cannot tell.
    #[serde(default)]
    pub link_up: Option<bool>,
    /// Link speed in Mbit/s when up and known.
    #[serde(default)]
    pub link_speed_mbps: Option<u32>,
    /// Times the link went down or came back up since masqd started.
    #[serde(default)]
    pub link_changes: u64,
}

/// One worker's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStats {
    /// Worker index.
    pub worker: u32,
    /// The lcore it runs on.
    pub lcore: u32,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Packets this worker dropped, all reasons.
    pub drops: u64,
    /// Sessions in this worker's table.
    pub sessions_active: u64,
    /// Every counter the worker keeps, by the name masqd's shutdown report gives it
    /// (`forwarded`, `nat_hairpinned`, `nat_icmp_errors_translated`,
    /// `nat_fragments_translated`, `nat_mappings`, `handoff_out`, `handoff_in`, the
    /// `nat_create_failed_*` refusals, ...): the report's `worker:N` lines, live.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
    /// Poll-loop passes (idle ones included: a busy-polling worker makes millions a second).
    #[serde(default)]
    pub polls: u64,
    /// Packets this worker received but another owns, handed to the owner over a ring.
    #[serde(default)]
    pub handoff_out: u64,
    /// Packets other workers handed to this one.
    #[serde(default)]
    pub handoff_in: u64,
    /// Per pipeline stage, in pipeline order, since start: VPP's `show runtime`.
    #[serde(default)]
    pub runtime: Vec<StageRuntime>,
    /// The longest pass of this worker's poll loop since start, in TSC cycles (see
    /// [`Stats::tsc_hz`]): receive, stages, timers, transmit and the control plane's
    /// mailbox. Wall-clock: time the kernel took the core away counts too.
    #[serde(default)]
    pub max_pass_cycles: u64,
    /// Passes that took longer than 1 ms, since start.
    #[serde(default)]
    pub slow_passes: u64,
}

/// One pipeline stage of one worker, since start (see docs/pipeline.md).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRuntime {
    /// The stage's stable name (`l2-input`, `nat-lookup`, ...).
    pub stage: String,
    /// Times it ran (each time over the packets of one burst that reached it).
    pub calls: u64,
    /// Packets it handled.
    pub packets: u64,
    /// TSC cycles it took (see [`Stats::tsc_hz`]).
    pub cycles: u64,
    /// Its longest single call since start, in TSC cycles.
    #[serde(default)]
    pub max_cycles: u64,
    /// Its calls that took longer than 1 ms, since start.
    #[serde(default)]
    pub slow_calls: u64,
}

/// One protocol's sessions, all workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolSessions {
    /// In the tables now.
    pub active: u64,
    /// Created since start.
    pub created: u64,
    /// Ended since start: expired, or removed by `sessions.flush`.
    pub expired: u64,
}

/// A latency histogram: cumulative counts at fixed upper bounds, as Prometheus has them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    /// Ascending bounds; the last bucket's count is not `count` (that is the `+Inf` one).
    pub buckets: Vec<LatencyBucket>,
    /// Samples (packets) in all.
    pub count: u64,
    /// Their sum, microseconds.
    pub sum_us: f64,
}

/// Samples at or below `le_us` microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyBucket {
    pub le_us: f64,
    pub count: u64,
}

/// How much of one external address's port space is in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortUtilisation {
    /// The external address.
    pub address: Ipv4Addr,
    /// Ports available for translation per protocol on this address.
    pub capacity: u32,
    /// TCP ports in use.
    pub tcp: u32,
    /// UDP ports in use.
    pub udp: u32,
    /// ICMP identifiers in use.
    pub icmp: u32,
}

/// Latency percentiles, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples behind the figures.
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    /// The 99.9th percentile.
    pub p99_9: f64,
    pub max: f64,
}

/// `version`'s result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// The daemon's name, `"masqd"`.
    pub daemon: String,
    /// The daemon's version (`CARGO_PKG_VERSION`).
    pub version: String,
    /// [`PROTOCOL_VERSION`] the daemon speaks.
    pub protocol: u32,
}

impl VersionInfo {
    /// masqd's own answer: this build's version and protocol.
    pub fn masqd() -> VersionInfo {
        VersionInfo { daemon: "masqd".into(), version: env!("CARGO_PKG_VERSION").into(), protocol: PROTOCOL_VERSION }
    }
}
