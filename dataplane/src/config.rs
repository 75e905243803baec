//! masqd's configuration file (TOML), parsed and validated before EAL starts.
//!
//! Every problem is reported as one [`ConfigError`] naming the offending field
//! (`port[1].address: ...`) so an operator can fix it without reading code. The keys, their
//! types and defaults are documented in `docs/configuration.md`.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use serde::Deserialize;

pub use crate::nat::HelperPort;

/// A configuration problem: which field, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ConfigError {
    /// Dotted path of the field, e.g. `port[1].address`, or `line 7` for syntax errors.
    pub field: String,
    pub message: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError { field: field.into(), message: message.into() }
    }
}

/// Which side of the NAT a port faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Faces the subscribers (private addresses, translated on the way out).
    Inside,
    /// Faces the Internet (carries the external addresses).
    Outside,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Inside => "inside",
            Role::Outside => "outside",
        })
    }
}

/// Inbound filtering behaviour of a mapping (RFC 4787 §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Filtering {
    /// Any remote endpoint may reach a mapping (RFC 6888 REQ-7 recommends this).
    #[default]
    EndpointIndependent,
    /// Only remote addresses the inside endpoint has sent to.
    AddressDependent,
    /// Only remote (address, port) pairs the inside endpoint has sent to.
    AddressPortDependent,
}

/// An IPv4 prefix: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Cidr {
    pub address: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    /// The network mask as a host-order integer.
    pub const fn mask(&self) -> u32 {
        if self.prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - self.prefix_len)
        }
    }

    /// Whether `addr` lies inside this prefix.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        (u32::from(addr) ^ u32::from(self.address)) & self.mask() == 0
    }

    /// The subnet broadcast address (`None` for /31 and /32, which have none).
    pub fn broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len <= 30).then(|| Ipv4Addr::from(u32::from(self.address) | !self.mask()))
    }
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| format!("\"{s}\" has no prefix length (expected A.B.C.D/N, e.g. 100.64.0.1/10)"))?;
        let address: Ipv4Addr = addr.parse().map_err(|_| format!("\"{addr}\" is not an IPv4 address"))?;
        let prefix_len: u8 = len
            .parse()
            .ok()
            .filter(|l| (1..=32).contains(l))
            .ok_or_else(|| format!("prefix length \"{len}\" is not between 1 and 32"))?;
        Ok(Ipv4Cidr { address, prefix_len })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

/// One DPDK port as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortConfig {
    pub name: String,
    pub role: Role,
    /// DPDK device: a virtual device string (`net_pcap0,rx_pcap=in.pcap`) or a PCI address.
    pub device: String,
    /// The port's own address and on-link prefix.
    pub address: Ipv4Cidr,
    /// Next hop for destinations off every port's prefix (at most one port has one).
    pub gateway: Option<Ipv4Addr>,
    /// Largest IPv4 packet sent on this port, in bytes (default 1500).
    pub mtu: u16,
    /// MAC address to set on the port; `None` keeps the device's own.
    pub mac: Option<[u8; 6]>,
    /// The kernel interface masqd creates for this port (the host's own services run
    /// on it; see `docs/host-interface.md`); `None`: no host interface.
    pub host_interface: Option<String>,
    /// Inside ports only: the source prefixes accepted on this port (RFC 2827 / BCP 38
    /// ingress filtering); anything else is dropped as `source_not_allowed`. Empty: any
    /// source (the default).
    pub allowed_sources: Vec<Ipv4Cidr>,
}

impl PortConfig {
    /// The longest Ethernet frame this port's MTU makes: the MTU, the Ethernet header and
    /// one VLAN tag (the frame check sequence never reaches an mbuf).
    pub fn max_frame(&self) -> u16 {
        self.mtu + 14 + 4
    }

    /// Whether the device string names a virtual device (as opposed to a PCI address).
    pub fn is_vdev(&self) -> bool {
        self.device.starts_with("net_")
    }

    /// The DPDK device name (the device string up to its first comma).
    pub fn device_name(&self) -> &str {
        self.device.split(',').next().unwrap_or(&self.device)
    }
}

/// A static neighbour (ARP) entry; never expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborConfig {
    /// Index into [`Config::ports`].
    pub port: usize,
    pub address: Ipv4Addr,
    pub mac: [u8; 6],
}

/// EAL and buffer settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkConfig {
    /// Extra EAL arguments, passed through after the ones masqd derives (lcores, vdevs).
    pub args: Vec<String>,
    /// The lcore for the main (control) thread; must not be a worker core.
    pub main_core: usize,
    /// Mbufs in the packet pool; 0 means a size derived from ports, queues and workers.
    pub mbufs: u32,
    pub rx_desc: u16,
    pub tx_desc: u16,
}

/// Worker threads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkersConfig {
    /// One poll-mode worker per listed core, pinned.
    pub cores: Vec<usize>,
    /// Packets per RX burst (1..=256).
    pub burst: usize,
    /// How long a frame may wait in a port's TX stage for more to send with it, in
    /// microseconds (0: send at the end of every poll pass). See `docs/configuration.md`.
    pub tx_drain_us: u32,
    /// Slots of each handoff ring between two workers (256..=65536; unused with one
    /// worker). See `docs/configuration.md`, Multi-core.
    pub handoff_ring: u32,
}

/// Default `[workers] handoff_ring`: 4096 frames, about a millisecond at 4 Mpps.
pub const DEFAULT_HANDOFF_RING: u32 = 4096;

/// NAT sizing and behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatConfig {
    /// Sessions per worker, preallocated at start.
    pub max_sessions: u32,
    /// External ports one subscriber may hold at once.
    pub ports_per_subscriber: u32,
    /// Port block allocation: ports per block; 0 = off (ports one by one).
    pub port_block_size: u32,
    /// Port blocks one subscriber may hold at once (with `port_block_size`).
    pub port_blocks_per_subscriber: u32,
    /// Seconds a freed port (or an idle port block) is held back before reuse.
    pub port_hold: u32,
    /// Sessions one subscriber may hold at once, per worker (0: no limit).
    pub sessions_per_subscriber: u32,
    /// New sessions one subscriber may open per second (0: no limit).
    pub new_sessions_per_second: u32,
    /// New sessions one subscriber may open at once before the rate applies.
    pub new_sessions_burst: u32,
    pub filtering: Filtering,
    /// Protocol helpers by server port (`helpers = ["ftp", "tftp"]`, the default).
    pub helpers: Vec<HelperPort>,
    /// FTP/IRC sessions with a helper, per worker.
    pub helper_sessions: u32,
    /// Open expectations (data connections announced, not yet arrived), per worker.
    pub helper_expectations: u32,
    /// Deterministic NAT tables (`[[nat.deterministic]]`, RFC 7422), checked.
    pub deterministic: crate::nat::deterministic::DetTables,
}

/// `[nat] sessions_per_subscriber` when not set.
pub const DEFAULT_SESSIONS_PER_SUBSCRIBER: u32 = 10_000;
/// `[nat] new_sessions_per_second` when not set.
pub const DEFAULT_NEW_SESSIONS_PER_SECOND: u32 = 2000;

/// Idle timeouts in seconds, as `ipchains -M -S tcp tcpfin udp` plus ICMP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeoutsConfig {
    /// Established TCP (RFC 5382 REQ-5: at least 2 h 4 min).
    pub tcp: u32,
    /// Transitory TCP: SYN-only, closing, reset (RFC 5382: at least 4 min).
    pub tcpfin: u32,
    /// UDP (RFC 4787 REQ-5: at least 2 min; 5 min recommended).
    pub udp: u32,
    /// ICMP query (RFC 5508 REQ-1: at least 60 s).
    pub icmp: u32,
    /// Other IP protocols, translated by address only (GRE, ESP ...; Linux: 600 s).
    pub other: u32,
}

impl Default for TimeoutsConfig {
    fn default() -> Self {
        TimeoutsConfig { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60, other: 600 }
    }
}

/// The router's own services: what the host interfaces share (`[host]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostConfig {
    /// Ports reserved for the host's own connections on every external address that is
    /// a host interface's (inclusive); the kernel's ephemeral range.
    pub ports: (u16, u16),
    /// Frames one worker hands to the kernel per second at most (the punt rate limit).
    pub max_pps: u32,
    /// Frames each direction of one worker's exception path holds at most (the queue bound).
    pub queue: u32,
    /// Whether masqd sets `net.ipv4.ip_local_port_range` in its namespace to `ports`.
    pub set_local_port_range: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig { ports: (61000, 61999), max_pps: 10_000, queue: 1024, set_local_port_range: true }
    }
}

/// The control socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlConfig {
    pub socket: String,
    /// Group allowed to use the socket (mode 0660); none means root only (0600).
    pub group: Option<String>,
    /// The most rules masqd holds, all chains together (`--rules` and every change).
    pub max_rules: usize,
}

/// `[control] max_rules` when absent.
pub const DEFAULT_MAX_RULES: usize = 10_000;

/// The largest `[control] max_rules` accepted.
pub const MAX_MAX_RULES: usize = 1_000_000;

/// Which translation events `[logging] events` asks for (see `docs/logging.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEvents {
    /// Session create/delete (natEvent 4/5).
    Sessions,
    /// Mapping (BIB) create/delete (natEvent 8/9): one record per endpoint-independent mapping.
    Mappings,
    /// Both of the above.
    Both,
    /// Port block allocate/release only (natEvent 16/17); needs `nat.port_block_size`
    /// (and is what is logged then when `events` is absent).
    Blocks,
}

/// NAT event logging (`[logging]`). Off unless a collector is named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggingConfig {
    /// IPFIX collectors (UDP).
    pub ipfix: Vec<SocketAddr>,
    /// Syslog receiver (UDP).
    pub syslog: Option<SocketAddr>,
    /// `events` as written; `None`: sessions, or blocks with port-block allocation.
    pub events: Option<LogEvents>,
    /// IPFIX observation domain ID.
    pub observation_domain: u32,
    /// Largest IPFIX message, bytes.
    pub mtu: u16,
    /// Seconds between IPFIX template retransmissions.
    pub template_refresh: u32,
    /// Events each worker's ring holds.
    pub ring: u32,
    /// Syslog facility code (`local0` = 16 by default).
    pub syslog_facility: u8,
    /// Syslog HOSTNAME; `None`: the machine's host name.
    pub syslog_hostname: Option<String>,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            ipfix: Vec::new(),
            syslog: None,
            events: None,
            observation_domain: 1,
            mtu: 1400,
            template_refresh: 60,
            ring: crate::logging::DEFAULT_RING as u32,
            syslog_facility: 16,
            syslog_hostname: None,
        }
    }
}

impl LoggingConfig {
    /// Whether any collector is configured.
    pub fn enabled(&self) -> bool {
        !self.ipfix.is_empty() || self.syslog.is_some()
    }

    /// The translation events to produce, given whether port blocks are allocated:
    /// block records replace per-session ones unless `events` asks for those too.
    pub fn mask(&self, port_blocks: bool) -> crate::logging::EventMask {
        use crate::logging::EventMask;
        let blocks = if port_blocks { EventMask::BLOCKS } else { EventMask::default() };
        let asked = match self.events {
            None if port_blocks => EventMask::default(),
            None | Some(LogEvents::Sessions) => EventMask::SESSIONS,
            Some(LogEvents::Mappings) => EventMask::MAPPINGS,
            Some(LogEvents::Both) => EventMask::SESSIONS.union(EventMask::MAPPINGS),
            Some(LogEvents::Blocks) => EventMask::default(),
        };
        asked.union(blocks)
    }
}

/// The Prometheus exporter: `GET /metrics` over HTTP on `listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address and port to listen on (port 0: any free port, printed at start).
    pub listen: std::net::SocketAddr,
}

/// masqd's whole, validated configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub dpdk: DpdkConfig,
    pub ports: Vec<PortConfig>,
    pub workers: WorkersConfig,
    pub neighbors: Vec<NeighborConfig>,
    pub nat: NatConfig,
    pub timeouts: TimeoutsConfig,
    pub control: ControlConfig,
    pub host: HostConfig,
    pub logging: LoggingConfig,
    /// `None` when there is no `[metrics]` section: no exporter.
    pub metrics: Option<MetricsConfig>,
}

impl Config {
    /// Read and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(path.display().to_string(), format!("cannot read: {e}")))?;
        Config::parse(&text)
    }

    /// Parse and validate configuration text.
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        raw.validate()
    }

    /// Index of the port named `name`.
    pub fn port_index(&self, name: &str) -> Option<usize> {
        self.ports.iter().position(|p| p.name == name)
    }

    /// Whether any port has a host interface.
    pub fn has_host_interfaces(&self) -> bool {
        self.ports.iter().any(|p| p.host_interface.is_some())
    }
}

/// External ports dynamic NAT shares among the workers: 1024-65535.
pub const DYNAMIC_PORTS: u32 = 65536 - 1024;

/// Virtual-device drivers of DPDK 22.11 that masq can name in `device`.
pub const KNOWN_VDEV_DRIVERS: &[&str] = &[
    "af_packet",
    "af_xdp",
    "bonding",
    "failsafe",
    "memif",
    "null",
    "pcap",
    "ring",
    "tap",
    "tun",
    "vhost",
    "virtio_user",
];

/// One line per error: TOML's own message, with its line number, without the snippet.
fn toml_error(text: &str, e: &toml::de::Error) -> ConfigError {
    let field = match e.span() {
        Some(span) => format!("line {}", text[..span.start.min(text.len())].matches('\n').count() + 1),
        None => "config".to_string(),
    };
    ConfigError::new(field, e.message().trim().replace('\n', " "))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    dpdk: RawDpdk,
    #[serde(default)]
    port: Vec<RawPort>,
    workers: Option<RawWorkers>,
    #[serde(default)]
    neighbor: Vec<RawNeighbor>,
    #[serde(default)]
    nat: RawNat,
    #[serde(default)]
    timeouts: RawTimeouts,
    #[serde(default)]
    control: RawControl,
    #[serde(default)]
    host: RawHost,
    #[serde(default)]
    logging: RawLogging,
    metrics: Option<RawMetrics>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLogging {
    #[serde(default)]
    ipfix: Vec<String>,
    syslog: Option<String>,
    events: Option<String>,
    observation_domain: Option<u32>,
    mtu: Option<u16>,
    template_refresh: Option<u32>,
    ring: Option<u32>,
    syslog_facility: Option<String>,
    syslog_hostname: Option<String>,
}

/// A collector address: `A.B.C.D:PORT`, `[v6]:PORT`, or an address alone (`default_port`).
fn collector(field: &str, s: &str, default_port: u16) -> Result<SocketAddr, ConfigError> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        if a.port() == 0 {
            return Err(ConfigError::new(field, format!("\"{s}\": port 0")));
        }
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<std::net::IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(ConfigError::new(
        field,
        format!(
            "\"{s}\" is not an address and port (expected e.g. \"127.0.0.1:{default_port}\"; names are not resolved)"
        ),
    ))
}

impl RawLogging {
    fn validate(self) -> Result<LoggingConfig, ConfigError> {
        let d = LoggingConfig::default();
        let mut ipfix = Vec::new();
        for (i, c) in self.ipfix.iter().enumerate() {
            let a = collector(&format!("logging.ipfix[{i}]"), c, 4739)?;
            if ipfix.contains(&a) {
                return Err(ConfigError::new(format!("logging.ipfix[{i}]"), format!("{a} is listed twice")));
            }
            ipfix.push(a);
        }
        let syslog = self.syslog.as_deref().map(|s| collector("logging.syslog", s, 514)).transpose()?;
        // One socket sends to all of them.
        let mut all = ipfix.iter().chain(syslog.as_ref());
        if let Some(first) = all.next() {
            if let Some(other) = all.find(|a| a.is_ipv4() != first.is_ipv4()) {
                return Err(ConfigError::new(
                    "logging",
                    format!("{first} and {other}: the IPFIX and syslog receivers must be all IPv4 or all IPv6"),
                ));
            }
        }
        let events = match self.events.as_deref() {
            None => None,
            Some("sessions") => Some(LogEvents::Sessions),
            Some("mappings") => Some(LogEvents::Mappings),
            Some("both") => Some(LogEvents::Both),
            Some("blocks") => Some(LogEvents::Blocks),
            Some(other) => {
                return Err(ConfigError::new(
                    "logging.events",
                    format!("unknown events \"{other}\" (expected sessions, mappings, both or blocks)"),
                ))
            }
        };
        let mtu = self.mtu.unwrap_or(d.mtu);
        let (lo, hi) = (crate::logging::ipfix::MIN_MTU, crate::logging::ipfix::MAX_MTU);
        if !(lo..=hi).contains(&usize::from(mtu)) {
            return Err(ConfigError::new("logging.mtu", format!("{mtu} is outside {lo}..={hi}")));
        }
        let template_refresh = self.template_refresh.unwrap_or(d.template_refresh);
        if !(1..=86_400).contains(&template_refresh) {
            return Err(ConfigError::new(
                "logging.template_refresh",
                format!("{template_refresh} s is outside 1..=86400"),
            ));
        }
        let ring = self.ring.unwrap_or(d.ring);
        if !(64..=(1 << 24)).contains(&ring) {
            return Err(ConfigError::new("logging.ring", format!("{ring} is outside 64..=16777216")));
        }
        let syslog_facility = match self.syslog_facility.as_deref() {
            None => d.syslog_facility,
            Some(name) => crate::logging::syslog::facility(name).ok_or_else(|| {
                ConfigError::new(
                    "logging.syslog_facility",
                    format!("unknown facility \"{name}\" (expected e.g. local0..local7, daemon, user)"),
                )
            })?,
        };
        if let Some(h) = &self.syslog_hostname {
            if h.is_empty() || h.len() > 255 || !h.chars().all(|c| ('!'..='~').contains(&c)) {
                return Err(ConfigError::new(
                    "logging.syslog_hostname",
                    format!("\"{h}\": use 1-255 printable ASCII characters without spaces"),
                ));
            }
        }
        Ok(LoggingConfig {
            ipfix,
            syslog,
            events,
            observation_domain: self.observation_domain.unwrap_or(d.observation_domain),
            mtu,
            template_refresh,
            ring,
            syslog_facility,
            syslog_hostname: self.syslog_hostname,
        })
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDpdk {
    #[serde(default)]
    args: Vec<String>,
    main_core: Option<usize>,
    mbufs: Option<u32>,
    rx_desc: Option<u16>,
    tx_desc: Option<u16>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    name: Option<String>,
    role: Option<String>,
    device: Option<String>,
    address: Option<String>,
    gateway: Option<String>,
    mtu: Option<u16>,
    mac: Option<String>,
    host_interface: Option<String>,
    allowed_sources: Option<Vec<String>>,
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawWorkers {
    cores: Option<Vec<usize>>,
    burst: Option<usize>,
    tx_drain_us: Option<u32>,
    handoff_ring: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNeighbor {
    port: Option<String>,
    address: Option<String>,
    mac: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawNat {
    max_sessions: Option<u32>,
    ports_per_subscriber: Option<u32>,
    port_block_size: Option<u32>,
    port_blocks_per_subscriber: Option<u32>,
    port_hold: Option<u32>,
    sessions_per_subscriber: Option<u32>,
    new_sessions_per_second: Option<u32>,
    new_sessions_burst: Option<u32>,
    filtering: Option<String>,
    helpers: Option<Vec<String>>,
    helper_sessions: Option<u32>,
    helper_expectations: Option<u32>,
    #[serde(default)]
    deterministic: Vec<RawDeterministic>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeterministic {
    inside: Option<String>,
    outside: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    tcp: Option<u32>,
    tcpfin: Option<u32>,
    udp: Option<u32>,
    icmp: Option<u32>,
    other: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHost {
    ports: Option<String>,
    max_pps: Option<u32>,
    queue: Option<u32>,
    set_local_port_range: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawControl {
    socket: Option<String>,
    group: Option<String>,
    max_rules: Option<usize>,
}

/// `[[nat.deterministic]]`: prefixes parsed, tables built and checked against each other
/// and against the outside ports' addresses (which dynamic NAT uses).
fn deterministic_tables(
    raw: &[RawDeterministic],
    ports: &[PortConfig],
) -> Result<crate::nat::deterministic::DetTables, ConfigError> {
    use crate::nat::deterministic::{DetError, DetTable, DetTables};
    let mut tables = Vec::with_capacity(raw.len());
    for (i, d) in raw.iter().enumerate() {
        let f = |k: &str| format!("nat.deterministic[{i}].{k}");
        let cidr = |k: &str, v: &Option<String>, hint: &str| -> Result<Ipv4Cidr, ConfigError> {
            required(v, &f(k), hint)?.parse::<Ipv4Cidr>().map_err(|m| ConfigError::new(f(k), m))
        };
        let inside = cidr("inside", &d.inside, "the subscribers' prefix, e.g. \"100.64.0.0/24\"")?;
        let outside = cidr("outside", &d.outside, "the external prefix, e.g. \"203.0.113.2/32\"")?;
        let t = DetTable::new((inside.address, inside.prefix_len), (outside.address, outside.prefix_len))
            .map_err(|e| ConfigError::new(format!("nat.deterministic[{i}]"), e.to_string()))?;
        for p in ports.iter().filter(|p| p.role == Role::Outside) {
            if t.outside_contains(p.address.address) {
                return Err(ConfigError::new(
                    f("outside"),
                    format!(
                        "{outside} holds {}, port \"{}\"'s address, which dynamic NAT uses: give deterministic NAT \
                         addresses of its own",
                        p.address.address, p.name
                    ),
                ));
            }
        }
        tables.push(t);
    }
    DetTables::new(tables).map_err(|e| {
        let what = match e {
            DetError::InsideOverlap => "inside prefixes of two tables overlap",
            DetError::OutsideOverlap => "outside prefixes of two tables overlap",
            _ => "",
        };
        ConfigError::new("nat.deterministic", if what.is_empty() { e.to_string() } else { what.to_string() })
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    listen: Option<String>,
}

impl RawMetrics {
    fn validate(&self) -> Result<MetricsConfig, ConfigError> {
        let hint = "an address and port such as \"127.0.0.1:9469\"";
        let listen = required(&self.listen, "metrics.listen", hint)?;
        let listen = listen.parse().map_err(|_| {
            ConfigError::new(
                "metrics.listen",
                format!(
                    "\"{listen}\" is not an address and port (e.g. \"127.0.0.1:9469\", \"0.0.0.0:9469\" or \"[::1]:9469\"; \
                     host names are not resolved)"
                ),
            )
        })?;
        Ok(MetricsConfig { listen })
    }
}

fn required<T: Clone>(v: &Option<T>, field: &str, hint: &str) -> Result<T, ConfigError> {
    v.clone().ok_or_else(|| ConfigError::new(field, format!("missing ({hint})")))
}

/// Parse `02:00:00:00:02:01` (or with `-`).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split([':', '-']);
    for byte in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn is_pci_address(s: &str) -> bool {
    // [domain:]bus:device.function, hex: 0000:03:00.0 or 03:00.0
    let s = s.split(',').next().unwrap_or(s);
    let (head, func) = match s.rsplit_once('.') {
        Some(x) => x,
        None => return false,
    };
    let hex = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit());
    let parts: Vec<&str> = head.split(':').collect();
    let ok_head = match parts.as_slice() {
        [bus, dev] => hex(bus, 2) && hex(dev, 2),
        [dom, bus, dev] => hex(dom, 4) && hex(bus, 2) && hex(dev, 2),
        _ => false,
    };
    ok_head && func.len() == 1 && func.chars().all(|c| c.is_digit(8))
}

/// The most prefixes one port's `allowed_sources` may list: the check is a linear scan
/// per packet.
pub const MAX_ALLOWED_SOURCES: usize = 64;

/// Validate an inside port's `allowed_sources`: network prefixes (no host bits), at
/// least one, at most [`MAX_ALLOWED_SOURCES`], none listed twice.
fn allowed_sources(field: &str, role: Role, list: &[String]) -> Result<Vec<Ipv4Cidr>, ConfigError> {
    if role == Role::Outside {
        return Err(ConfigError::new(
            field,
            "only inside ports validate sources (RFC 2827 ingress filtering of subscribers); \
             an outside port receives from the whole Internet: remove the key",
        ));
    }
    if list.is_empty() {
        return Err(ConfigError::new(
            field,
            "empty: every packet on the port would be dropped (remove the key to accept any source)",
        ));
    }
    if list.len() > MAX_ALLOWED_SOURCES {
        return Err(ConfigError::new(
            field,
            format!("{} prefixes, at most {MAX_ALLOWED_SOURCES} (aggregate them)", list.len()),
        ));
    }
    let mut out: Vec<Ipv4Cidr> = Vec::with_capacity(list.len());
    for (j, s) in list.iter().enumerate() {
        let fj = format!("{field}[{j}]");
        let c: Ipv4Cidr = s.parse().map_err(|m| ConfigError::new(&fj, m))?;
        let network = Ipv4Addr::from(u32::from(c.address) & c.mask());
        if network != c.address {
            return Err(ConfigError::new(
                fj,
                format!("{c} has host bits set (did you mean {network}/{}?)", c.prefix_len),
            ));
        }
        if let Some(k) = out.iter().position(|o| *o == c) {
            return Err(ConfigError::new(fj, format!("{c} is listed twice (also at [{k}])")));
        }
        out.push(c);
    }
    Ok(out)
}

fn check_device(field: &str, device: &str) -> Result<(), ConfigError> {
    if is_pci_address(device) {
        return Ok(());
    }
    let name = device.split(',').next().unwrap_or(device);
    let driver = name.strip_prefix("net_").map(|d| d.trim_end_matches(|c: char| c.is_ascii_digit()));
    match driver {
        Some(d) if KNOWN_VDEV_DRIVERS.contains(&d) && name.len() > 4 + d.len() => Ok(()),
        Some(d) if KNOWN_VDEV_DRIVERS.contains(&d) => Err(ConfigError::new(
            field,
            format!("\"{device}\": a virtual device name needs an instance number, e.g. net_{d}0"),
        )),
        _ => Err(ConfigError::new(
            field,
            format!(
                "unknown device \"{device}\" (expected a PCI address like 0000:03:00.0 or a virtual device \
                 net_<driver><n>[,args] with driver one of {})",
                KNOWN_VDEV_DRIVERS.join(", ")
            ),
        )),
    }
}

impl RawConfig {
    fn validate(self) -> Result<Config, ConfigError> {
        if self.port.is_empty() {
            return Err(ConfigError::new("port", "no [[port]] sections (at least one inside and one outside port)"));
        }
        let mut ports = Vec::with_capacity(self.port.len());
        let mut names = HashSet::new();
        let mut devices = HashSet::new();
        for (i, p) in self.port.iter().enumerate() {
            let f = |k: &str| format!("port[{i}].{k}");
            let name = required(&p.name, &f("name"), "a short name such as \"lan\" or \"wan\"")?;
            let valid_name = !name.is_empty()
                && name.len() <= 15
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !valid_name {
                return Err(ConfigError::new(
                    f("name"),
                    format!("\"{name}\": use 1-15 characters of a-z, 0-9, _ or -"),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(ConfigError::new(f("name"), format!("\"{name}\" is used by another port")));
            }
            let role = match required(&p.role, &f("role"), "\"inside\" or \"outside\"")?.as_str() {
                "inside" => Role::Inside,
                "outside" => Role::Outside,
                other => {
                    return Err(ConfigError::new(
                        f("role"),
                        format!("unknown role \"{other}\" (expected \"inside\" or \"outside\")"),
                    ))
                }
            };
            let device = required(&p.device, &f("device"), "a DPDK device such as \"net_af_packet0,iface=eth1\"")?;
            check_device(&f("device"), &device)?;
            if !devices.insert(device.split(',').next().unwrap_or_default().to_string()) {
                return Err(ConfigError::new(f("device"), format!("\"{device}\" is used by another port")));
            }
            let address: Ipv4Cidr =
                required(&p.address, &f("address"), "the port's address and prefix, e.g. 100.64.0.1/10")?
                    .parse()
                    .map_err(|m| ConfigError::new(f("address"), m))?;
            let gateway = match &p.gateway {
                None => None,
                Some(g) => {
                    let gw: Ipv4Addr = g
                        .parse()
                        .map_err(|_| ConfigError::new(f("gateway"), format!("\"{g}\" is not an IPv4 address")))?;
                    if !address.contains(gw) || gw == address.address {
                        return Err(ConfigError::new(
                            f("gateway"),
                            format!("{gw} is not a host on this port's prefix {address}"),
                        ));
                    }
                    Some(gw)
                }
            };
            let mtu = p.mtu.unwrap_or(1500);
            if !(576..=9000).contains(&mtu) {
                return Err(ConfigError::new(f("mtu"), format!("{mtu} is outside 576..=9000")));
            }
            let mac = match &p.mac {
                None => None,
                Some(m) => {
                    let mac = parse_mac(m).ok_or_else(|| {
                        ConfigError::new(f("mac"), format!("\"{m}\" is not a MAC address (expected 02:00:00:00:01:01)"))
                    })?;
                    if mac[0] & 1 != 0 || mac == [0; 6] {
                        return Err(ConfigError::new(f("mac"), format!("{m} is not a unicast address")));
                    }
                    Some(mac)
                }
            };
            let host_interface = match &p.host_interface {
                None => None,
                Some(h) => Some(check_host_interface(&f("host_interface"), h)?),
            };
            let allowed_sources = match &p.allowed_sources {
                None => Vec::new(),
                Some(list) => allowed_sources(&f("allowed_sources"), role, list)?,
            };
            ports.push(PortConfig { name, role, device, address, gateway, mtu, mac, host_interface, allowed_sources });
        }
        for role in [Role::Inside, Role::Outside] {
            if !ports.iter().any(|p| p.role == role) {
                return Err(ConfigError::new("port", format!("no port has role = \"{role}\"")));
            }
        }
        let gateways: Vec<&PortConfig> = ports.iter().filter(|p| p.gateway.is_some()).collect();
        if gateways.len() > 1 {
            return Err(ConfigError::new(
                format!("port[{}].gateway", ports.iter().rposition(|p| p.gateway.is_some()).unwrap_or(0)),
                format!(
                    "only one port may have a gateway (the default route); \"{}\" has one already",
                    gateways[0].name
                ),
            ));
        }
        for (i, a) in ports.iter().enumerate() {
            for b in &ports[..i] {
                if a.address.contains(b.address.address) || b.address.contains(a.address.address) {
                    return Err(ConfigError::new(
                        format!("port[{i}].address"),
                        format!("{} overlaps port \"{}\" ({})", a.address, b.name, b.address),
                    ));
                }
            }
        }

        for (i, a) in ports.iter().enumerate() {
            let Some(h) = &a.host_interface else { continue };
            for (j, b) in ports.iter().enumerate() {
                if j < i && b.host_interface.as_ref() == Some(h) {
                    return Err(ConfigError::new(
                        format!("port[{i}].host_interface"),
                        format!("\"{h}\" is port \"{}\"'s host interface already", b.name),
                    ));
                }
                if device_iface(&b.device) == Some(h.as_str()) {
                    return Err(ConfigError::new(
                        format!("port[{i}].host_interface"),
                        format!("\"{h}\" is the interface port \"{}\" attaches to (device \"{}\")", b.name, b.device),
                    ));
                }
            }
        }
        let host = self.host.validate()?;

        let raw_workers = required(&self.workers, "workers", "a [workers] section with cores = [..]")?;
        let cores = required(&raw_workers.cores, "workers.cores", "one core per worker, e.g. cores = [1]")?;
        if cores.is_empty() {
            return Err(ConfigError::new("workers.cores", "empty (list at least one core)"));
        }
        let mut seen = HashSet::new();
        for c in &cores {
            if !seen.insert(*c) {
                return Err(ConfigError::new("workers.cores", format!("core {c} is listed twice")));
            }
            if *c >= 128 {
                return Err(ConfigError::new("workers.cores", format!("core {c} is beyond 127")));
            }
        }
        let burst = raw_workers.burst.unwrap_or(32);
        if !(1..=256).contains(&burst) {
            return Err(ConfigError::new("workers.burst", format!("{burst} is outside 1..=256")));
        }
        let tx_drain_us = raw_workers.tx_drain_us.unwrap_or(0);
        if tx_drain_us > 1000 {
            return Err(ConfigError::new("workers.tx_drain_us", format!("{tx_drain_us} is outside 0..=1000")));
        }
        let handoff_ring = raw_workers.handoff_ring.unwrap_or(DEFAULT_HANDOFF_RING);
        if !(256..=65536).contains(&handoff_ring) {
            return Err(ConfigError::new("workers.handoff_ring", format!("{handoff_ring} is outside 256..=65536")));
        }

        // The main thread sleeps between control requests: it may share a worker's core
        // (masqd then pins it there under another lcore id), so every core of a small
        // machine can run a worker.
        let main_core = match self.dpdk.main_core {
            Some(m) if m > 127 => return Err(ConfigError::new("dpdk.main_core", format!("core {m} is beyond 127"))),
            Some(m) => m,
            None => {
                let online = std::thread::available_parallelism().map_or(1, usize::from);
                (0..online).find(|c| !cores.contains(c)).unwrap_or(cores[0])
            }
        };
        for (i, a) in self.dpdk.args.iter().enumerate() {
            let a = a.as_str();
            if matches!(a, "-l" | "-c" | "--lcores" | "--main-lcore" | "--master-lcore")
                || a.starts_with("--lcores=")
                || a.starts_with("--main-lcore=")
            {
                return Err(ConfigError::new(
                    format!("dpdk.args[{i}]"),
                    format!("\"{a}\": masqd derives lcores from workers.cores and dpdk.main_core"),
                ));
            }
            if a == "--vdev" || a.starts_with("--vdev=") {
                return Err(ConfigError::new(
                    format!("dpdk.args[{i}]"),
                    format!("\"{a}\": declare devices as [[port]] device = \"...\""),
                ));
            }
        }
        let rx_desc = self.dpdk.rx_desc.unwrap_or(1024);
        let tx_desc = self.dpdk.tx_desc.unwrap_or(1024);
        for (k, v) in [("dpdk.rx_desc", rx_desc), ("dpdk.tx_desc", tx_desc)] {
            if !(32..=16384).contains(&v) || !v.is_power_of_two() {
                return Err(ConfigError::new(k, format!("{v} is not a power of two in 32..=16384")));
            }
        }
        let dpdk =
            DpdkConfig { args: self.dpdk.args, main_core, mbufs: self.dpdk.mbufs.unwrap_or(0), rx_desc, tx_desc };

        let mut neighbors = Vec::with_capacity(self.neighbor.len());
        for (i, n) in self.neighbor.iter().enumerate() {
            let f = |k: &str| format!("neighbor[{i}].{k}");
            let pname = required(&n.port, &f("port"), "the name of a [[port]]")?;
            let port = ports.iter().position(|p| p.name == pname).ok_or_else(|| {
                let known: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
                ConfigError::new(f("port"), format!("no port named \"{pname}\" (known: {})", known.join(", ")))
            })?;
            let a = required(&n.address, &f("address"), "the neighbour's IPv4 address")?;
            let address: Ipv4Addr =
                a.parse().map_err(|_| ConfigError::new(f("address"), format!("\"{a}\" is not an IPv4 address")))?;
            if !ports[port].address.contains(address) {
                return Err(ConfigError::new(
                    f("address"),
                    format!("{address} is not on port \"{pname}\"'s prefix {}", ports[port].address),
                ));
            }
            let m = required(&n.mac, &f("mac"), "a MAC address such as 02:00:00:00:02:01")?;
            let mac = parse_mac(&m).ok_or_else(|| {
                ConfigError::new(f("mac"), format!("\"{m}\" is not a MAC address (expected 02:00:00:00:02:01)"))
            })?;
            neighbors.push(NeighborConfig { port, address, mac });
        }

        let filtering = match self.nat.filtering.as_deref() {
            None | Some("endpoint-independent") => Filtering::EndpointIndependent,
            Some("address-dependent") => Filtering::AddressDependent,
            Some("address-port-dependent") => Filtering::AddressPortDependent,
            Some(other) => {
                return Err(ConfigError::new(
                    "nat.filtering",
                    format!(
                        "unknown filtering \"{other}\" (expected endpoint-independent, address-dependent or \
                         address-port-dependent)"
                    ),
                ))
            }
        };
        let max_sessions = self.nat.max_sessions.unwrap_or(1 << 20);
        if !(16..=(1 << 27)).contains(&max_sessions) {
            return Err(ConfigError::new("nat.max_sessions", format!("{max_sessions} is outside 16..=134217728")));
        }
        let ports_per_subscriber = self.nat.ports_per_subscriber.unwrap_or(4096);
        if !(1..=64512).contains(&ports_per_subscriber) {
            return Err(ConfigError::new(
                "nat.ports_per_subscriber",
                format!("{ports_per_subscriber} is outside 1..=64512"),
            ));
        }
        // Unset: the default, or the whole table if that is smaller.
        let sessions_per_subscriber =
            self.nat.sessions_per_subscriber.unwrap_or(DEFAULT_SESSIONS_PER_SUBSCRIBER.min(max_sessions));
        if sessions_per_subscriber > max_sessions {
            return Err(ConfigError::new(
                "nat.sessions_per_subscriber",
                format!("{sessions_per_subscriber} is more than nat.max_sessions ({max_sessions}); 0 means no limit"),
            ));
        }
        let new_sessions_per_second = self.nat.new_sessions_per_second.unwrap_or(DEFAULT_NEW_SESSIONS_PER_SECOND);
        if new_sessions_per_second > 1_000_000 {
            return Err(ConfigError::new(
                "nat.new_sessions_per_second",
                format!("{new_sessions_per_second} is outside 0..=1000000 (0 means no limit)"),
            ));
        }
        let new_sessions_burst = self.nat.new_sessions_burst.unwrap_or(new_sessions_per_second.max(1));
        if !(1..=1_000_000).contains(&new_sessions_burst) {
            return Err(ConfigError::new(
                "nat.new_sessions_burst",
                format!("{new_sessions_burst} is outside 1..=1000000"),
            ));
        }
        let helpers = match self.nat.helpers {
            None => HelperPort::defaults(),
            Some(list) => {
                let mut helpers: Vec<HelperPort> = Vec::new();
                for (i, s) in list.iter().enumerate() {
                    let h = HelperPort::parse(s).map_err(|e| ConfigError::new(format!("nat.helpers[{i}]"), e))?;
                    if let Some(o) = helpers.iter().find(|o| o.port == h.port && o.kind.proto() == h.kind.proto()) {
                        return Err(ConfigError::new(
                            format!("nat.helpers[{i}]"),
                            format!(
                                "\"{s}\": {} port {} already has helper \"{o}\" (one helper per port)",
                                if h.kind.proto() == crate::nat::Proto::Tcp { "TCP" } else { "UDP" },
                                h.port
                            ),
                        ));
                    }
                    helpers.push(h);
                }
                helpers
            }
        };
        let helper_sessions = self.nat.helper_sessions.unwrap_or(4096);
        if !(1..=65000).contains(&helper_sessions) {
            return Err(ConfigError::new("nat.helper_sessions", format!("{helper_sessions} is outside 1..=65000")));
        }
        let helper_expectations = self.nat.helper_expectations.unwrap_or(1024);
        if !(1..=(1 << 20)).contains(&helper_expectations) {
            return Err(ConfigError::new(
                "nat.helper_expectations",
                format!("{helper_expectations} is outside 1..=1048576"),
            ));
        }
        let deterministic = deterministic_tables(&self.nat.deterministic, &ports)?;
        let port_block_size = self.nat.port_block_size.unwrap_or(0);
        // Each worker's slice of 1024-65535 (the smallest, when they differ by one).
        let slice = DYNAMIC_PORTS / cores.len() as u32;
        if port_block_size > slice {
            return Err(ConfigError::new(
                "nat.port_block_size",
                format!(
                    "{port_block_size} ports do not fit a worker's slice: with {} worker(s) each owns {slice} \
                     ports of every external address (1024-65535 split evenly)",
                    cores.len()
                ),
            ));
        }
        let port_blocks_per_subscriber = self.nat.port_blocks_per_subscriber.unwrap_or(8);
        if !(1..=1024).contains(&port_blocks_per_subscriber) {
            return Err(ConfigError::new(
                "nat.port_blocks_per_subscriber",
                format!("{port_blocks_per_subscriber} is outside 1..=1024"),
            ));
        }
        let port_hold = self.nat.port_hold.unwrap_or(120);
        if !(1..=3600).contains(&port_hold) {
            return Err(ConfigError::new("nat.port_hold", format!("{port_hold} s is outside 1..=3600")));
        }
        let nat = NatConfig {
            max_sessions,
            ports_per_subscriber,
            port_block_size,
            port_blocks_per_subscriber,
            port_hold,
            sessions_per_subscriber,
            new_sessions_per_second,
            new_sessions_burst,
            filtering,
            helpers,
            helper_sessions,
            helper_expectations,
            deterministic,
        };

        let d = TimeoutsConfig::default();
        let timeouts = TimeoutsConfig {
            tcp: self.timeouts.tcp.unwrap_or(d.tcp),
            tcpfin: self.timeouts.tcpfin.unwrap_or(d.tcpfin),
            udp: self.timeouts.udp.unwrap_or(d.udp),
            icmp: self.timeouts.icmp.unwrap_or(d.icmp),
            other: self.timeouts.other.unwrap_or(d.other),
        };
        for (k, v) in [
            ("timeouts.tcp", timeouts.tcp),
            ("timeouts.tcpfin", timeouts.tcpfin),
            ("timeouts.udp", timeouts.udp),
            ("timeouts.icmp", timeouts.icmp),
            ("timeouts.other", timeouts.other),
        ] {
            crate::nat::timeouts::check_timeout(v).map_err(|e| ConfigError::new(k, e.to_string()))?;
        }

        let control = ControlConfig {
            socket: self.control.socket.unwrap_or_else(|| "/run/masq/masqd.sock".to_string()),
            group: self.control.group,
            max_rules: self.control.max_rules.unwrap_or(DEFAULT_MAX_RULES),
        };
        let metrics = self.metrics.as_ref().map(RawMetrics::validate).transpose()?;
        if control.socket.is_empty() {
            return Err(ConfigError::new("control.socket", "empty path"));
        }
        if !(1..=MAX_MAX_RULES).contains(&control.max_rules) {
            return Err(ConfigError::new(
                "control.max_rules",
                format!("{} is outside 1..={MAX_MAX_RULES}", control.max_rules),
            ));
        }

        let logging = self.logging.validate()?;
        if logging.events == Some(LogEvents::Blocks) && nat.port_block_size == 0 {
            return Err(ConfigError::new(
                "logging.events",
                "\"blocks\" logs port block records, and needs port block allocation (set nat.port_block_size)",
            ));
        }

        Ok(Config {
            dpdk,
            ports,
            workers: WorkersConfig { cores, burst, tx_drain_us, handoff_ring },
            neighbors,
            nat,
            timeouts,
            control,
            host,
            logging,
            metrics,
        })
    }
}

/// The Linux interface a device string attaches to (`iface=NAME` of af_packet, tap,
/// af_xdp...), if it names one.
fn device_iface(device: &str) -> Option<&str> {
    device.split(',').skip(1).find_map(|kv| kv.strip_prefix("iface="))
}

/// A Linux interface name: 1-15 bytes (IFNAMSIZ), no `/`, `:`, whitespace, not `.`/`..`.
fn check_host_interface(field: &str, name: &str) -> Result<String, ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        return Err(ConfigError::new(
            field,
            format!("\"{name}\": a Linux interface name is 1-15 characters of a-z, A-Z, 0-9, _, - or ."),
        ));
    }
    if name == "lo" {
        return Err(ConfigError::new(field, "\"lo\" is the loopback interface"));
    }
    Ok(name.to_string())
}

impl RawHost {
    fn validate(self) -> Result<HostConfig, ConfigError> {
        let d = HostConfig::default();
        let ports = match self.ports {
            None => d.ports,
            Some(text) => parse_port_range(&text).ok_or_else(|| {
                ConfigError::new(
                    "host.ports",
                    format!("\"{text}\": expected \"LOW-HIGH\", two ports with 1024 <= LOW < HIGH <= 65535, e.g. \"61000-61999\""),
                )
            })?,
        };
        let max_pps = self.max_pps.unwrap_or(d.max_pps);
        if !(1..=10_000_000).contains(&max_pps) {
            return Err(ConfigError::new("host.max_pps", format!("{max_pps} is outside 1..=10000000")));
        }
        let queue = self.queue.unwrap_or(d.queue);
        if !(32..=16384).contains(&queue) {
            return Err(ConfigError::new("host.queue", format!("{queue} is outside 32..=16384")));
        }
        Ok(HostConfig {
            ports,
            max_pps,
            queue,
            set_local_port_range: self.set_local_port_range.unwrap_or(d.set_local_port_range),
        })
    }
}

/// `"61000-61999"`: two ports, 1024 <= LOW < HIGH (the kernel's ephemeral range needs two).
fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (lo, hi) = text.split_once('-')?;
    let lo: u16 = lo.trim().parse().ok()?;
    let hi: u16 = hi.trim().parse().ok()?;
    (1024 <= lo && lo < hi).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
[dpdk]
args = ["--no-huge", "-m", "1024", "--file-prefix", "masq"]

[[port]]
name = "lan"
role = "inside"
device = "net_af_packet0,iface=veth-lan"
address = "100.64.0.1/10"

[[port]]
name = "wan"
role = "outside"
device = "net_af_packet1,iface=veth-wan"
address = "203.0.113.1/24"
gateway = "203.0.113.254"

[workers]
cores = [1]

[[neighbor]]
port = "wan"
address = "203.0.113.254"
mac = "02:00:00:00:02:01"
"#;

    fn err(text: &str) -> ConfigError {
        Config::parse(text).expect_err("config should be rejected")
    }

    fn replace(from: &str, to: &str) -> String {
        assert!(EXAMPLE.contains(from), "{from}");
        EXAMPLE.replacen(from, to, 1)
    }

    #[test]
    fn example_parses_with_defaults() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.ports.len(), 2);
        assert_eq!(c.ports[0].role, Role::Inside);
        assert_eq!(c.ports[0].address, Ipv4Cidr { address: Ipv4Addr::new(100, 64, 0, 1), prefix_len: 10 });
        assert_eq!(c.ports[1].gateway, Some(Ipv4Addr::new(203, 0, 113, 254)));
        assert_eq!(c.ports[1].device_name(), "net_af_packet1");
        assert_eq!(c.ports[1].mtu, 1500);
        assert_eq!(c.ports[1].mac, None);
        assert_eq!(c.workers.cores, vec![1]);
        assert_eq!(c.workers.burst, 32);
        assert_eq!(c.workers.tx_drain_us, 0);
        let e = err(&replace("cores = [1]", "cores = [1]\ntx_drain_us = 5000"));
        assert_eq!(e.field, "workers.tx_drain_us");
        assert_eq!(c.workers.handoff_ring, DEFAULT_HANDOFF_RING);
        let c2 = Config::parse(&replace("cores = [1]", "cores = [1]\nhandoff_ring = 16384")).unwrap();
        assert_eq!(c2.workers.handoff_ring, 16384);
        for bad in ["100", "100000"] {
            let e = err(&replace("cores = [1]", &format!("cores = [1]\nhandoff_ring = {bad}")));
            assert_eq!(e.field, "workers.handoff_ring");
            assert!(e.to_string().contains("256..=65536"), "{e}");
        }
        assert_eq!(c.dpdk.main_core, 0);
        assert_eq!(
            c.neighbors,
            vec![NeighborConfig { port: 1, address: Ipv4Addr::new(203, 0, 113, 254), mac: [2, 0, 0, 0, 2, 1] }]
        );
        assert_eq!(c.timeouts, TimeoutsConfig { tcp: 7440, tcpfin: 240, udp: 300, icmp: 60, other: 600 });
        assert_eq!(c.nat.filtering, Filtering::EndpointIndependent);
        assert_eq!(c.control.socket, "/run/masq/masqd.sock");
        assert_eq!(c.control.max_rules, DEFAULT_MAX_RULES);
        assert_eq!(c.port_index("wan"), Some(1));
    }

    #[test]
    fn control_section() {
        let c = Config::parse(&format!("{EXAMPLE}\n[control]\nsocket = \"/tmp/m.sock\"\nmax_rules = 5\n")).unwrap();
        assert_eq!((c.control.socket.as_str(), c.control.max_rules), ("/tmp/m.sock", 5));
        for bad in ["0", "1000001"] {
            let e = err(&format!("{EXAMPLE}\n[control]\nmax_rules = {bad}\n"));
            assert_eq!(e.field, "control.max_rules");
            assert_eq!(e.message, format!("{bad} is outside 1..=1000000"));
        }
    }

    #[test]
    fn allowed_sources_on_inside_ports() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert!(c.ports[0].allowed_sources.is_empty(), "any source by default");
        let lan = "address = \"100.64.0.1/10\"";
        let with = |list: &str| replace(lan, &format!("{lan}\nallowed_sources = {list}"));
        let c = Config::parse(&with(r#"["100.64.0.0/10", "192.0.2.128/25", "198.51.100.7/32"]"#)).unwrap();
        assert_eq!(
            c.ports[0].allowed_sources.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
            ["100.64.0.0/10", "192.0.2.128/25", "198.51.100.7/32"]
        );

        let e = err(&with(r#"["100.64.0.1/10"]"#));
        assert_eq!(
            e.to_string(),
            "port[0].allowed_sources[0]: 100.64.0.1/10 has host bits set (did you mean 100.64.0.0/10?)"
        );
        let e = err(&with(r#"["100.64.0.0/10", "10.0.0.0"]"#));
        assert_eq!(e.field, "port[0].allowed_sources[1]");
        assert!(e.message.contains("no prefix length"), "{e}");
        let e = err(&with(r#"["10.0.0.0/33"]"#));
        assert!(e.message.contains("between 1 and 32"), "{e}");
        let e = err(&with(r#"["10.0.0.0/8", "10.0.0.0/8"]"#));
        assert_eq!(e.to_string(), "port[0].allowed_sources[1]: 10.0.0.0/8 is listed twice (also at [0])");
        let e = err(&with("[]"));
        assert_eq!(e.field, "port[0].allowed_sources");
        assert!(e.message.contains("every packet on the port would be dropped"), "{e}");
        let many: Vec<String> = (0..=MAX_ALLOWED_SOURCES).map(|i| format!("\"10.0.{i}.0/24\"")).collect();
        let e = err(&with(&format!("[{}]", many.join(", "))));
        assert_eq!(e.to_string(), "port[0].allowed_sources: 65 prefixes, at most 64 (aggregate them)");
        let e = err(&with("\"100.64.0.0/10\""));
        assert_eq!(e.field, "line 10", "a string, not a list: a TOML type error");

        let wan = "gateway = \"203.0.113.254\"";
        let e = err(&replace(wan, &format!("{wan}\nallowed_sources = [\"0.0.0.0/1\"]")));
        assert_eq!(e.field, "port[1].allowed_sources");
        assert!(e.message.contains("only inside ports"), "{e}");
    }

    #[test]
    fn errors_name_the_field() {
        let e = err(&replace("device = \"net_af_packet0,iface=veth-lan\"\n", ""));
        assert_eq!(e.field, "port[0].device");
        assert!(e.message.starts_with("missing"), "{e}");

        let e = err(&replace("100.64.0.1/10", "100.64.0.300/10"));
        assert_eq!(e.field, "port[0].address");
        assert!(e.message.contains("100.64.0.300"), "{e}");

        let e = err(&replace("100.64.0.1/10", "100.64.0.1"));
        assert_eq!(e.field, "port[0].address");
        assert!(e.message.contains("prefix length"), "{e}");

        let e = err(&replace("role = \"outside\"", "role = \"outsidee\""));
        assert_eq!(e.to_string(), "port[1].role: unknown role \"outsidee\" (expected \"inside\" or \"outside\")");

        let e = err(&replace("net_af_packet1,iface=veth-wan", "net_bogus0"));
        assert_eq!(e.field, "port[1].device");
        assert!(e.message.contains("unknown device \"net_bogus0\""), "{e}");

        let e = err(&replace("net_af_packet1,iface=veth-wan", "net_af_packet,iface=x"));
        assert!(e.message.contains("instance number"), "{e}");

        let e = err(&replace("gateway = \"203.0.113.254\"", "gateway = \"198.51.100.1\""));
        assert_eq!(e.field, "port[1].gateway");

        let e = err(&replace("mac = \"02:00:00:00:02:01\"", "mac = \"02:00:00:00:02\""));
        assert_eq!(e.field, "neighbor[0].mac");

        let e =
            err(&replace("gateway = \"203.0.113.254\"", "gateway = \"203.0.113.254\"\nmac = \"03:00:00:00:00:01\""));
        assert_eq!(e.field, "port[1].mac");
        assert!(e.message.contains("unicast"), "{e}");
        let c = Config::parse(&replace(
            "gateway = \"203.0.113.254\"",
            "gateway = \"203.0.113.254\"\nmac = \"02:00:00:00:02:02\"",
        ))
        .unwrap();
        assert_eq!(c.ports[1].mac, Some([2, 0, 0, 0, 2, 2]));

        let e = err(&replace("port = \"wan\"", "port = \"wan0\""));
        assert_eq!(e.to_string(), "neighbor[0].port: no port named \"wan0\" (known: lan, wan)");

        let e = err(&replace("cores = [1]", "cores = []"));
        assert_eq!(e.field, "workers.cores");

        let e = err(&replace("cores = [1]", "cores = [1, 1]"));
        assert!(e.message.contains("twice"), "{e}");

        let e = err(&replace("\"--file-prefix\", \"masq\"", "\"-l\", \"0-1\""));
        assert_eq!(e.field, "dpdk.args[3]");

        let e = err(&replace("name = \"wan\"", "name = \"lan\""));
        assert_eq!(e.field, "port[1].name");
        assert!(e.message.contains("another port"), "{e}");

        let e = err(&replace("iface=veth-wan", "iface=veth-lan").replace("net_af_packet1", "net_af_packet0"));
        assert_eq!(e.field, "port[1].device");

        let e = err(&replace("role = \"outside\"", "role = \"inside\""));
        assert_eq!(e.to_string(), "port: no port has role = \"outside\"");

        let e = err(&replace("203.0.113.1/24", "100.64.0.9/24").replace("203.0.113.254", "100.64.0.254"));
        assert_eq!(e.field, "port[1].address");
        assert!(e.message.contains("overlaps"), "{e}");
    }

    #[test]
    fn syntax_and_unknown_keys_give_one_line_with_a_line_number() {
        let e = err(&replace("address = \"100.64.0.1/10\"", "adress = \"100.64.0.1/10\""));
        assert!(e.field.starts_with("line "), "{e}");
        assert!(e.message.contains("adress"), "{e}");
        assert!(!e.to_string().contains('\n'));

        let e = err("[[port]\nname = 1");
        assert!(e.field.starts_with("line 1"), "{e}");

        let e = err(&replace("cores = [1]", "cores = \"1\""));
        assert!(e.field.starts_with("line "), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn nat_and_timeouts_sections() {
        let text = format!(
            "{EXAMPLE}\n[nat]\nmax_sessions = 1000\nports_per_subscriber = 64\nfiltering = \
             \"address-port-dependent\"\n[timeouts]\ntcp = 7200\ntcpfin = 10\nudp = 160\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!(
            c.nat,
            NatConfig {
                max_sessions: 1000,
                ports_per_subscriber: 64,
                port_block_size: 0,
                port_blocks_per_subscriber: 8,
                port_hold: 120,
                sessions_per_subscriber: 1000,
                new_sessions_per_second: 2000,
                new_sessions_burst: 2000,
                filtering: Filtering::AddressPortDependent,
                helpers: HelperPort::defaults(),
                helper_sessions: 4096,
                helper_expectations: 1024,
                deterministic: Default::default(),
            }
        );
        assert_eq!(c.timeouts, TimeoutsConfig { tcp: 7200, tcpfin: 10, udp: 160, icmp: 60, other: 600 });
        let e = err(&format!("{EXAMPLE}\n[nat]\nfiltering = \"strict\"\n"));
        assert_eq!(e.field, "nat.filtering");
        let limits = format!(
            "{EXAMPLE}\n[nat]\nsessions_per_subscriber = 500\nnew_sessions_per_second = 100\nnew_sessions_burst = 20\n"
        );
        let c = Config::parse(&limits).unwrap();
        assert_eq!(
            (c.nat.sessions_per_subscriber, c.nat.new_sessions_per_second, c.nat.new_sessions_burst),
            (500, 100, 20)
        );
        let c = Config::parse(&format!("{EXAMPLE}\n[nat]\nnew_sessions_per_second = 300\n")).unwrap();
        assert_eq!(c.nat.new_sessions_burst, 300, "the burst defaults to one second's worth");
        let c = Config::parse(&format!("{EXAMPLE}\n[nat]\nsessions_per_subscriber = 0\nnew_sessions_per_second = 0\n"))
            .unwrap();
        assert_eq!((c.nat.sessions_per_subscriber, c.nat.new_sessions_per_second), (0, 0), "0: no limit");
        let e = err(&format!("{EXAMPLE}\n[nat]\nmax_sessions = 1000\nsessions_per_subscriber = 2000\n"));
        assert_eq!(e.field, "nat.sessions_per_subscriber");
        assert!(e.to_string().contains("more than nat.max_sessions (1000)"), "{e}");
        let e = err(&format!("{EXAMPLE}\n[nat]\nnew_sessions_burst = 0\n"));
        assert_eq!(e.field, "nat.new_sessions_burst");
        let e = err(&format!("{EXAMPLE}\n[timeouts]\nudp = 0\n"));
        assert_eq!(e.field, "timeouts.udp");
        let e = err(&format!("{EXAMPLE}\n[timeouts]\ntcp = 604801\n"));
        assert_eq!((e.field.as_str(), e.message.as_str()), ("timeouts.tcp", "604801 s is outside 1..=604800"));
    }

    #[test]
    fn port_blocks() {
        let text = format!(
            "{EXAMPLE}\n[nat]\nport_block_size = 100\nport_blocks_per_subscriber = 4\nport_hold = 30\n\
             [logging]\nipfix = [\"127.0.0.1\"]\nevents = \"blocks\"\n"
        );
        let c = Config::parse(&text).unwrap();
        assert_eq!((c.nat.port_block_size, c.nat.port_blocks_per_subscriber, c.nat.port_hold), (100, 4, 30));
        assert_eq!(c.logging.events, Some(LogEvents::Blocks));
        assert_eq!(c.logging.mask(true), crate::logging::EventMask::BLOCKS);
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!((c.nat.port_block_size, c.nat.port_blocks_per_subscriber, c.nat.port_hold), (0, 8, 120));
        // A whole worker's slice is one block; one port more does not fit, nor with two
        // workers half of it.
        assert!(Config::parse(&format!("{EXAMPLE}\n[nat]\nport_block_size = 64512\n")).is_ok());
        let e = err(&format!("{EXAMPLE}\n[nat]\nport_block_size = 64513\n"));
        assert_eq!(e.field, "nat.port_block_size");
        assert!(e.message.contains("64512"), "{e}");
        let two = replace("cores = [1]", "cores = [1, 2]");
        let e = err(&format!("{two}\n[nat]\nport_block_size = 32257\n"));
        assert!(e.message.contains("2 worker(s) each owns 32256"), "{e}");
        for (bad, field) in [
            ("port_blocks_per_subscriber = 0", "nat.port_blocks_per_subscriber"),
            ("port_blocks_per_subscriber = 1025", "nat.port_blocks_per_subscriber"),
            ("port_hold = 0", "nat.port_hold"),
            ("port_hold = 3601", "nat.port_hold"),
        ] {
            let e = err(&format!("{EXAMPLE}\n[nat]\nport_block_size = 64\n{bad}\n"));
            assert_eq!(e.field, field, "{bad}: {e}");
        }
        let e = err(&format!("{EXAMPLE}\n[logging]\nipfix = [\"127.0.0.1\"]\nevents = \"blocks\"\n"));
        assert_eq!(e.field, "logging.events");
        assert!(e.message.contains("nat.port_block_size"), "{e}");
    }

    #[test]
    fn host_interfaces_and_the_host_section() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.ports[0].host_interface, None);
        assert!(!c.has_host_interfaces());
        assert_eq!(
            c.host,
            HostConfig { ports: (61000, 61999), max_pps: 10_000, queue: 1024, set_local_port_range: true }
        );

        let text = replace("address = \"203.0.113.1/24\"", "address = \"203.0.113.1/24\"\nhost_interface = \"wan0\"");
        let c = Config::parse(&format!(
            "{text}\n[host]\nports = \"50000-50999\"\nmax_pps = 500\nqueue = 64\nset_local_port_range = false\n"
        ))
        .unwrap();
        assert_eq!(c.ports[1].host_interface.as_deref(), Some("wan0"));
        assert!(c.has_host_interfaces());
        assert_eq!(c.host, HostConfig { ports: (50000, 50999), max_pps: 500, queue: 64, set_local_port_range: false });

        for bad in ["", "a/b", "this-name-is-too-long", "eth 0", "..", "lo", "wan:1"] {
            let e = err(&replace(
                "address = \"203.0.113.1/24\"",
                &format!("address = \"203.0.113.1/24\"\nhost_interface = {bad:?}"),
            ));
            assert_eq!(e.field, "port[1].host_interface", "{bad}: {e}");
        }
        // Two ports, one name; the interface a port attaches to.
        let text = replace("address = \"100.64.0.1/10\"", "address = \"100.64.0.1/10\"\nhost_interface = \"h0\"")
            .replacen("address = \"203.0.113.1/24\"", "address = \"203.0.113.1/24\"\nhost_interface = \"h0\"", 1);
        let e = err(&text);
        assert_eq!(e.to_string(), "port[1].host_interface: \"h0\" is port \"lan\"'s host interface already");
        let e =
            err(&replace("address = \"100.64.0.1/10\"", "address = \"100.64.0.1/10\"\nhost_interface = \"veth-wan\""));
        assert_eq!(e.field, "port[0].host_interface");
        assert!(e.message.contains("port \"wan\" attaches to"), "{e}");

        for (key, bad) in [
            ("ports", "\"61999-61000\""),
            ("ports", "\"80-90\""),
            ("ports", "\"61000\""),
            ("ports", "\"61000-70000\""),
            ("max_pps", "0"),
            ("queue", "8"),
        ] {
            let e = err(&format!("{EXAMPLE}\n[host]\n{key} = {bad}\n"));
            assert_eq!(e.field, format!("host.{key}"), "{e}");
        }
        let e = err(&format!("{EXAMPLE}\n[host]\nport = \"61000-61999\"\n"));
        assert!(e.message.contains("port"), "{e}");
    }

    #[test]
    fn helpers() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert_eq!(c.nat.helpers, HelperPort::defaults());
        let c = Config::parse(&format!("{EXAMPLE}\n[nat]\nhelpers = []\n")).unwrap();
        assert!(c.nat.helpers.is_empty(), "[] turns them off");
        let c = Config::parse(&format!(
            "{EXAMPLE}\n[nat]\nhelpers = [\"ftp\", \"ftp:2121\", \"irc\"]\nhelper_sessions = 10\nhelper_expectations = 20\n"
        ))
        .unwrap();
        let names: Vec<String> = c.nat.helpers.iter().map(|h| h.to_string()).collect();
        assert_eq!(names, ["ftp", "ftp:2121", "irc"]);
        assert_eq!((c.nat.helper_sessions, c.nat.helper_expectations), (10, 20));
        let e = err(&format!("{EXAMPLE}\n[nat]\nhelpers = [\"ftp\", \"sip\"]\n"));
        assert_eq!(e.to_string(), "nat.helpers[1]: unknown helper \"sip\" (expected \"ftp\", \"tftp\" or \"irc\")");
        let e = err(&format!("{EXAMPLE}\n[nat]\nhelpers = [\"ftp:99999\"]\n"));
        assert_eq!(e.field, "nat.helpers[0]");
        let e = err(&format!("{EXAMPLE}\n[nat]\nhelpers = [\"irc\", \"ftp:6667\"]\n"));
        assert_eq!(
            e.to_string(),
            "nat.helpers[1]: \"ftp:6667\": TCP port 6667 already has helper \"irc\" (one helper per port)"
        );
        // Another protocol on the same port number is fine.
        Config::parse(&format!("{EXAMPLE}\n[nat]\nhelpers = [\"tftp:21\", \"ftp\"]\n")).unwrap();
        let e = err(&format!("{EXAMPLE}\n[nat]\nhelper_sessions = 0\n"));
        assert_eq!(e.field, "nat.helper_sessions");
    }

    #[test]
    fn deterministic_tables() {
        let text = format!(
            "{EXAMPLE}\n[[nat.deterministic]]\ninside = \"100.64.0.0/24\"\noutside = \"203.0.113.2/32\"\n\
             [[nat.deterministic]]\ninside = \"100.64.1.0/24\"\noutside = \"203.0.113.3/32\"\n"
        );
        let c = Config::parse(&text).unwrap();
        let d = &c.nat.deterministic;
        assert_eq!(d.tables().len(), 2);
        let m = d.map(Ipv4Addr::new(100, 64, 1, 1)).unwrap();
        assert_eq!((m.outside, m.ports.lo), (Ipv4Addr::new(203, 0, 113, 3), 1024 + 252));
        for (bad, field, says) in [
            ("inside = \"100.64.0.0/24\"\noutside = \"203.0.113.1/32\"", "nat.deterministic[0].outside", "dynamic NAT"),
            ("inside = \"100.64.0.0\"\noutside = \"203.0.113.2/32\"", "nat.deterministic[0].inside", "prefix length"),
            ("outside = \"203.0.113.2/32\"", "nat.deterministic[0].inside", "missing"),
            ("inside = \"10.0.0.0/8\"\noutside = \"203.0.113.2/32\"", "nat.deterministic[0]", "less than one port"),
        ] {
            let e = err(&format!("{EXAMPLE}\n[[nat.deterministic]]\n{bad}\n"));
            assert_eq!(e.field, field, "{bad}: {e}");
            assert!(e.message.contains(says), "{e}");
        }
        let e = err(&format!(
            "{EXAMPLE}\n[[nat.deterministic]]\ninside = \"100.64.0.0/24\"\noutside = \"203.0.113.2/32\"\n\
             [[nat.deterministic]]\ninside = \"100.64.0.128/25\"\noutside = \"203.0.113.3/32\"\n"
        ));
        assert_eq!(e.to_string(), "nat.deterministic: inside prefixes of two tables overlap");
    }

    #[test]
    fn logging_section() {
        let c = Config::parse(EXAMPLE).unwrap();
        assert!(!c.logging.enabled(), "off by default");
        assert_eq!(c.logging.mask(false), crate::logging::EventMask::SESSIONS);
        let text = format!(
            "{EXAMPLE}\n[logging]\nipfix = [\"127.0.0.1:4739\", \"192.0.2.9\"]\nsyslog = \"127.0.0.1\"\nevents = \"both\"\n\
             observation_domain = 9\nmtu = 1200\ntemplate_refresh = 30\nsyslog_facility = \"local3\"\n"
        );
        let c = Config::parse(&text).unwrap();
        let l = &c.logging;
        assert!(l.enabled());
        assert_eq!(l.ipfix, vec!["127.0.0.1:4739".parse().unwrap(), "192.0.2.9:4739".parse().unwrap()]);
        assert_eq!(l.syslog, Some("127.0.0.1:514".parse().unwrap()));
        assert_eq!((l.observation_domain, l.mtu, l.template_refresh, l.syslog_facility), (9, 1200, 30, 19));
        let m = l.mask(false);
        assert!(m.sessions && m.mappings && !m.blocks);
        // With port blocks: blocks replace sessions unless asked for.
        let blocks = LoggingConfig::default();
        assert_eq!(blocks.mask(true), crate::logging::EventMask::BLOCKS);
        let m = LoggingConfig { events: Some(LogEvents::Sessions), ..LoggingConfig::default() }.mask(true);
        assert!(m.sessions && m.blocks && !m.mappings);

        for (bad, field) in [
            ("ipfix = [\"collector.example:4739\"]", "logging.ipfix[0]"),
            ("ipfix = [\"127.0.0.1:0\"]", "logging.ipfix[0]"),
            ("ipfix = [\"127.0.0.1\", \"127.0.0.1:4739\"]", "logging.ipfix[1]"),
            ("syslog = \"nowhere\"", "logging.syslog"),
            ("ipfix = [\"127.0.0.1\"]\nsyslog = \"[::1]:514\"", "logging"),
            ("events = \"everything\"", "logging.events"),
            ("events = \"blocks\"", "logging.events"),
            ("events = \"blocks\"\nipfix = [\"127.0.0.1\"]", "logging.events"),
            ("mtu = 100", "logging.mtu"),
            ("template_refresh = 0", "logging.template_refresh"),
            ("ring = 1", "logging.ring"),
            ("syslog_facility = \"local9\"", "logging.syslog_facility"),
            ("syslog_hostname = \"a b\"", "logging.syslog_hostname"),
        ] {
            let e = err(&format!("{EXAMPLE}\n[logging]\n{bad}\n"));
            assert_eq!(e.field, field, "{bad}: {e}");
        }
        let e = err(&format!("{EXAMPLE}\n[logging]\nipfx = []\n"));
        assert!(e.message.contains("ipfx"), "{e}");
    }

    #[test]
    fn metrics_section_is_optional_and_its_address_checked() {
        assert_eq!(Config::parse(EXAMPLE).unwrap().metrics, None, "off when absent");
        let c = Config::parse(&format!("{EXAMPLE}\n[metrics]\nlisten = \"127.0.0.1:9469\"\n")).unwrap();
        assert_eq!(c.metrics, Some(MetricsConfig { listen: "127.0.0.1:9469".parse().unwrap() }));
        let c = Config::parse(&format!("{EXAMPLE}\n[metrics]\nlisten = \"[::]:9469\"\n")).unwrap();
        assert_eq!(c.metrics.unwrap().listen.port(), 9469);
        for bad in ["localhost:9469", "127.0.0.1", "127.0.0.1:99999", ":9469", ""] {
            let e = err(&format!("{EXAMPLE}\n[metrics]\nlisten = \"{bad}\"\n"));
            assert_eq!(e.field, "metrics.listen", "{bad}: {e}");
            assert!(e.message.contains(&format!("\"{bad}\" is not an address and port")), "{e}");
        }
        let e = err(&format!("{EXAMPLE}\n[metrics]\n"));
        assert_eq!((e.field.as_str(), e.message.starts_with("missing")), ("metrics.listen", true), "{e}");
        let e = err(&format!("{EXAMPLE}\n[metrics]\nlisten = \"127.0.0.1:9469\"\nport = 1\n"));
        assert!(e.field.starts_with("line ") && e.message.contains("port"), "{e}");
    }

    /// The names serde's "unknown field `zz_unknown`, expected ..." message lists.
    fn expected_names(message: &str) -> Option<Vec<String>> {
        let list = message.strip_prefix("unknown field `zz_unknown`, expected")?;
        Some(list.split('`').skip(1).step_by(2).map(String::from).collect())
    }

    /// The keys serde accepts in a section: `(is_array, keys)`, or `None` if `name` is no
    /// section.
    fn accepted_keys(name: &str) -> Option<(bool, Vec<String>)> {
        for (array, text) in
            [(false, format!("[{name}]\nzz_unknown = 1\n")), (true, format!("[[{name}]]\nzz_unknown = 1\n"))]
        {
            if let Err(e) = toml::from_str::<RawConfig>(&text) {
                if let Some(keys) = expected_names(e.message()) {
                    return Some((array, keys));
                }
            }
        }
        None
    }

    /// docs/configuration.md documents every section and key the parser accepts, and
    /// nothing else: its `## \`[section]\`` headings and the first column of each key table.
    /// (masqd.toml(5) is generated from that file.)
    #[test]
    fn the_configuration_reference_documents_exactly_the_accepted_keys() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/configuration.md")).unwrap();
        // `### \`[[nat.deterministic]]\`` documents a sub-table: its keys are checked as
        // that table's, not its parent's, and it is no top-level section.
        let mut documented: Vec<(String, bool, Vec<String>)> = Vec::new();
        for line in doc.lines() {
            if let Some(head) = line.strip_prefix("## `[").or_else(|| line.strip_prefix("### `[")) {
                let array = head.starts_with('[');
                let name = head.trim_start_matches('[').split(']').next().unwrap().to_string();
                documented.push((name, array, Vec::new()));
            } else if let Some(head) = line.strip_prefix("### `[") {
                // A table nested in a section (`[[nat.deterministic]]`): a key of its parent
                // with a key table of its own.
                let array = head.starts_with('[');
                let name = head.trim_start_matches('[').split(']').next().unwrap().to_string();
                let (parent, key) = name.rsplit_once('.').expect("a nested table is named parent.key");
                let parent = documented.iter_mut().rev().find(|(n, _, _)| n == parent).expect("parent section first");
                parent.2.push(key.to_string());
                documented.push((name, array, Vec::new()));
            } else if let (Some(key), Some(current)) = (line.strip_prefix("| `"), documented.last_mut()) {
                current.2.push(key.split('`').next().unwrap().to_string());
            }
        }
        // A documented sub-table `a.b` is key `b` of section `a`.
        let subs: Vec<(String, String)> = documented
            .iter()
            .filter_map(|(n, _, _)| n.split_once('.').map(|(a, b)| (a.to_string(), b.to_string())))
            .collect();
        for (parent, key) in subs {
            if let Some(p) = documented.iter_mut().find(|(n, _, _)| *n == parent) {
                p.2.push(key);
            }
        }
        let top = toml::from_str::<RawConfig>("zz_unknown = 1\n").err().expect("unknown keys are refused");
        let sections = expected_names(top.message()).unwrap_or_else(|| panic!("{top}"));
        let mut names: Vec<&str> = documented.iter().map(|(n, _, _)| n.as_str()).filter(|n| !n.contains('.')).collect();
        names.sort_unstable();
        let mut expected: Vec<&str> = sections.iter().map(String::as_str).collect();
        expected.sort_unstable();
        assert_eq!(names, expected, "docs/configuration.md needs one `## `[section]`` heading per config section");
        for (name, array, mut keys) in documented {
            let (is_array, mut accepted) = accepted_keys(&name).unwrap_or_else(|| panic!("[{name}] is no section"));
            assert_eq!(array, is_array, "[{name}]: documented as {}", if array { "[[array]]" } else { "[table]" });
            keys.sort_unstable();
            accepted.sort_unstable();
            assert_eq!(keys, accepted, "docs/configuration.md's [{name}] table vs the keys masqd accepts");
        }
    }

    #[test]
    fn device_forms() {
        for ok in ["0000:03:00.0", "03:00.1", "net_pcap0,rx_pcap=a.pcap,tx_pcap=b.pcap", "net_null12", "net_ring0"] {
            assert!(check_device("d", ok).is_ok(), "{ok}");
        }
        for bad in ["eth0", "03:00", "0000:03:00.9", "net_", "net_foo0", ""] {
            assert!(check_device("d", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cidr_helpers() {
        let c: Ipv4Cidr = "203.0.113.1/24".parse().unwrap();
        assert!(c.contains(Ipv4Addr::new(203, 0, 113, 200)));
        assert!(!c.contains(Ipv4Addr::new(203, 0, 114, 1)));
        assert_eq!(c.broadcast(), Some(Ipv4Addr::new(203, 0, 113, 255)));
        let h: Ipv4Cidr = "10.0.0.1/32".parse().unwrap();
        assert!(h.contains(Ipv4Addr::new(10, 0, 0, 1)) && !h.contains(Ipv4Addr::new(10, 0, 0, 2)));
        assert!("10.0.0.1/0".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.1/33".parse::<Ipv4Cidr>().is_err());
        assert_eq!(parse_mac("02-00-00-00-02-0a"), Some([2, 0, 0, 0, 2, 10]));
        assert_eq!(parse_mac("02:00:00:00:02:01:03"), None);
    }
}
