//! The logging thread: drains every worker's ring, encodes, sends over UDP.
//!
//! It runs on the main core (a plain thread masqd spawns, inheriting the main lcore's
//! CPU set), never on a worker core. Each pass takes at most [`DRAIN_BUDGET`] events
//! from each ring in turn, so one busy worker cannot starve the others; when every ring
//! was empty it sleeps [`IDLE_SLEEP`]. IPFIX messages go to every collector (each sees
//! the same stream, with the same sequence numbers); syslog lines go one per datagram.
//!
//! Worker timestamps are milliseconds on the workers' shared monotonic clock; the
//! exporter adds `epoch_ms`, the wall-clock time of that clock's origin, measured once
//! when masqd starts the clock.
//!
//! Sending never blocks the workers: a failed `send_to` (no route, collector port
//! closed) is counted in `send_errors` and the message is lost, as UDP export allows.
//! On stop the thread drains what is left, flushes and exits.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::event::NatEvent;
use super::ipfix::{IpfixEncoder, IpfixError};
use super::ring::LogDrain;
use super::syslog::SyslogFormatter;

/// Events taken from one ring per pass.
pub const DRAIN_BUDGET: usize = 4096;
/// Sleep when every ring was empty.
pub const IDLE_SLEEP: Duration = Duration::from_millis(2);

/// Where and how to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterSettings {
    /// IPFIX collectors (UDP).
    pub ipfix: Vec<SocketAddr>,
    /// Syslog receiver (UDP).
    pub syslog: Option<SocketAddr>,
    pub observation_domain: u32,
    /// Largest IPFIX message, bytes.
    pub mtu: usize,
    pub template_refresh_ms: u64,
    /// Syslog facility code.
    pub facility: u8,
    /// Syslog HOSTNAME.
    pub hostname: String,
}

/// What the logging thread did; shared with the control plane and the report.
#[derive(Debug, Default)]
pub struct ExporterStats {
    /// Events taken from the rings.
    pub events: AtomicU64,
    /// IPFIX messages sent (counted once per collector).
    pub ipfix_messages: AtomicU64,
    /// IPFIX data records encoded.
    pub ipfix_records: AtomicU64,
    /// Syslog datagrams sent.
    pub syslog_messages: AtomicU64,
    /// `send_to` failures (the datagram is lost).
    pub send_errors: AtomicU64,
}

impl ExporterStats {
    /// `(name, value)` of every counter, for the report.
    pub fn scalars(&self) -> [(&'static str, u64); 5] {
        [
            ("events", self.events.load(Relaxed)),
            ("ipfix_messages", self.ipfix_messages.load(Relaxed)),
            ("ipfix_records", self.ipfix_records.load(Relaxed)),
            ("syslog_messages", self.syslog_messages.load(Relaxed)),
            ("send_errors", self.send_errors.load(Relaxed)),
        ]
    }
}

/// How datagrams leave: a UDP socket in masqd, a recorder in tests.
pub trait Transport: Send {
    fn send_to(&mut self, to: SocketAddr, bytes: &[u8]) -> io::Result<()>;
}

impl Transport for UdpSocket {
    fn send_to(&mut self, to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
        UdpSocket::send_to(self, bytes, to).map(|_| ())
    }
}

/// The logging thread's state.
pub struct Exporter<T: Transport = UdpSocket> {
    drains: Vec<LogDrain>,
    epoch_ms: u64,
    settings: ExporterSettings,
    ipfix: Option<IpfixEncoder>,
    syslog: Option<SyslogFormatter>,
    transport: T,
    line: String,
    stats: Arc<ExporterStats>,
    /// Events to export once, at start (deterministic NAT mappings).
    startup: Vec<NatEvent>,
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Relaxed);
}

impl Exporter<UdpSocket> {
    /// An exporter sending from an ephemeral UDP port (IPv4 or IPv6 to match the
    /// first destination).
    pub fn udp(settings: ExporterSettings, drains: Vec<LogDrain>, epoch_ms: u64) -> io::Result<Exporter<UdpSocket>> {
        let v6 = settings.ipfix.iter().chain(settings.syslog.as_ref()).next().is_some_and(SocketAddr::is_ipv6);
        let socket = UdpSocket::bind(if v6 { "[::]:0" } else { "0.0.0.0:0" })?;
        Exporter::new(settings, drains, epoch_ms, socket).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
    }
}

impl<T: Transport + 'static> Exporter<T> {
    pub fn new(
        settings: ExporterSettings,
        drains: Vec<LogDrain>,
        epoch_ms: u64,
        transport: T,
    ) -> Result<Exporter<T>, IpfixError> {
        let ipfix = if settings.ipfix.is_empty() {
            None
        } else {
            Some(IpfixEncoder::new(settings.observation_domain, settings.mtu, settings.template_refresh_ms)?)
        };
        let syslog =
            settings.syslog.map(|_| SyslogFormatter::new(settings.facility, &settings.hostname, std::process::id()));
        Ok(Exporter {
            drains,
            epoch_ms,
            settings,
            ipfix,
            syslog,
            transport,
            line: String::with_capacity(512),
            stats: Arc::new(ExporterStats::default()),
            startup: Vec::new(),
        })
    }

    /// Export these events first (their `time_ms` on the workers' clock).
    pub fn with_startup(mut self, events: Vec<NatEvent>) -> Self {
        self.startup = events;
        self
    }

    pub fn stats(&self) -> Arc<ExporterStats> {
        self.stats.clone()
    }

    pub fn transport(&self) -> &T {
        &self.transport
    }

    fn export(&mut self, ev: &NatEvent, now_ms: u64) {
        let event_ms = self.epoch_ms.saturating_add(ev.time_ms);
        let Exporter { ipfix, syslog, transport, settings, stats, line, .. } = self;
        if let Some(enc) = ipfix.as_mut() {
            enc.encode(ev, event_ms, now_ms, &mut |m| send_all(transport, &settings.ipfix, m, stats));
        }
        if let (Some(f), Some(to)) = (syslog.as_ref(), settings.syslog) {
            f.format(ev, event_ms, line);
            match transport.send_to(to, line.as_bytes()) {
                Ok(()) => add(&stats.syslog_messages, 1),
                Err(_) => add(&stats.send_errors, 1),
            }
        }
    }

    /// One pass at wall-clock `now_ms`: startup records, every ring (bounded), timers.
    /// Returns the number of events exported.
    pub fn run_once(&mut self, now_ms: u64) -> usize {
        let mut n = 0;
        for ev in std::mem::take(&mut self.startup) {
            self.export(&ev, now_ms);
            n += 1;
        }
        for i in 0..self.drains.len() {
            let mut batch = [None; 64];
            let mut from_ring = 0;
            // At most DRAIN_BUDGET from each ring per pass, so no worker starves another.
            while from_ring < DRAIN_BUDGET {
                // Copy out a small batch, then encode (the drain borrows the ring).
                let mut k = 0;
                self.drains[i].drain(batch.len().min(DRAIN_BUDGET - from_ring), |e| {
                    batch[k] = Some(*e);
                    k += 1;
                });
                for ev in batch[..k].iter().flatten() {
                    self.export(ev, now_ms);
                }
                from_ring += k;
                if k < batch.len() {
                    break;
                }
            }
            n += from_ring;
        }
        add(&self.stats.events, n as u64);
        self.poll(now_ms);
        n
    }

    fn poll(&mut self, now_ms: u64) {
        let Exporter { ipfix, transport, settings, stats, .. } = self;
        if let Some(enc) = ipfix.as_mut() {
            enc.poll(now_ms, &mut |m| send_all(transport, &settings.ipfix, m, stats));
            stats.ipfix_records.store(enc.counters().records, Relaxed);
        }
    }

    /// Drain everything left and send what is pending (shutdown).
    pub fn finish(&mut self, now_ms: u64) {
        while self.run_once(now_ms) > 0 {}
        let Exporter { ipfix, transport, settings, stats, .. } = self;
        if let Some(enc) = ipfix.as_mut() {
            enc.flush(now_ms, &mut |m| send_all(transport, &settings.ipfix, m, stats));
            stats.ipfix_records.store(enc.counters().records, Relaxed);
        }
    }

    /// Run on a thread of its own until `stop` is set, then [`finish`](Self::finish).
    pub fn spawn(mut self, stop: Arc<AtomicBool>) -> io::Result<JoinHandle<()>> {
        std::thread::Builder::new().name("masq-log".into()).spawn(move || {
            while !stop.load(Relaxed) {
                if self.run_once(wall_ms()) == 0 {
                    std::thread::sleep(IDLE_SLEEP);
                }
            }
            self.finish(wall_ms());
        })
    }
}

fn send_all<T: Transport>(t: &mut T, to: &[SocketAddr], msg: &[u8], stats: &ExporterStats) {
    for addr in to {
        match t.send_to(*addr, msg) {
            Ok(()) => add(&stats.ipfix_messages, 1),
            Err(_) => add(&stats.send_errors, 1),
        }
    }
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::super::ipfix::{decode::Collector, ie};
    use super::super::{ring, EventKind, EventMask};
    use super::*;
    use crate::nat::{Endpoint, Proto};
    use std::net::Ipv4Addr;

    #[derive(Default)]
    struct Recorder(Vec<(SocketAddr, Vec<u8>)>);

    impl Transport for Recorder {
        fn send_to(&mut self, to: SocketAddr, bytes: &[u8]) -> io::Result<()> {
            if to.port() == 9 {
                return Err(io::Error::other("refused"));
            }
            self.0.push((to, bytes.to_vec()));
            Ok(())
        }
    }

    fn settings() -> ExporterSettings {
        ExporterSettings {
            ipfix: vec!["127.0.0.1:4739".parse().unwrap(), "127.0.0.2:4739".parse().unwrap()],
            syslog: Some("127.0.0.1:514".parse().unwrap()),
            observation_domain: 3,
            mtu: 1400,
            template_refresh_ms: 60_000,
            facility: 16,
            hostname: "cgn".into(),
        }
    }

    fn ev(port: u16, t: u64) -> NatEvent {
        let ep = |a: [u8; 4], p| Endpoint::new(Ipv4Addr::from(a), p);
        NatEvent::session(
            EventKind::SessionCreate,
            t,
            Proto::Udp,
            ep([100, 64, 0, 2], port),
            ep([203, 0, 113, 1], port),
            ep([1, 1, 1, 1], 53),
        )
    }

    #[test]
    fn drains_every_worker_to_every_collector() {
        let (mut a, ra) = ring(16, 0, EventMask::SESSIONS);
        let (mut b, rb) = ring(16, 1, EventMask::SESSIONS);
        let epoch = 1_765_000_000_000;
        let mut x = Exporter::new(settings(), vec![ra, rb], epoch, Recorder::default()).unwrap();
        a.push(ev(1000, 5));
        b.push(ev(2000, 6));
        a.push(ev(1001, 7));
        assert_eq!(x.run_once(epoch + 10), 3);
        assert_eq!(x.run_once(epoch + 20), 0);
        x.finish(epoch + 30);
        let sent = &x.transport().0;
        let ipfix: Vec<_> = sent.iter().filter(|(to, _)| to.port() == 4739).collect();
        let syslog: Vec<_> = sent.iter().filter(|(to, _)| to.port() == 514).collect();
        assert_eq!(syslog.len(), 3, "one datagram per event");
        assert!(std::str::from_utf8(&syslog[0].1).unwrap().contains("ISPORT=\"1000\""));
        // Each collector: templates, then one data message with all three records.
        for c in ["127.0.0.1:4739", "127.0.0.2:4739"] {
            let to: SocketAddr = c.parse().unwrap();
            let msgs: Vec<_> = ipfix.iter().filter(|(t, _)| *t == to).collect();
            assert_eq!(msgs.len(), 2, "{c}");
            let mut col = Collector::default();
            let recs: Vec<_> = msgs.iter().flat_map(|(_, m)| col.message(m).unwrap().1).collect();
            let ports: Vec<_> = recs.iter().map(|r| r.uint(ie::SOURCE_TRANSPORT_PORT).unwrap()).collect();
            assert_eq!(ports, vec![1000, 1001, 2000], "worker 0's, then worker 1's");
            let times: Vec<_> = recs.iter().map(|r| r.uint(ie::OBSERVATION_TIME_MILLISECONDS).unwrap()).collect();
            assert_eq!(times, vec![epoch + 5, epoch + 7, epoch + 6], "the event's own time, on the wall clock");
        }
        let s = x.stats();
        assert_eq!(s.events.load(Relaxed), 3);
        assert_eq!(s.ipfix_messages.load(Relaxed), 4);
        assert_eq!(s.syslog_messages.load(Relaxed), 3);
        assert_eq!(s.ipfix_records.load(Relaxed), 3);
        assert_eq!(s.send_errors.load(Relaxed), 0);
    }

    #[test]
    fn one_pass_takes_at_most_the_budget_from_each_ring() {
        let (mut a, ra) = ring(2 * DRAIN_BUDGET, 0, EventMask::SESSIONS);
        let (mut b, rb) = ring(16, 1, EventMask::SESSIONS);
        for i in 0..(DRAIN_BUDGET + 10) {
            assert!(a.push(ev(1, i as u64)));
        }
        b.push(ev(2, 0));
        let mut st = settings();
        st.syslog = None;
        let mut x = Exporter::new(st, vec![ra, rb], 0, Recorder::default()).unwrap();
        assert_eq!(x.run_once(0), DRAIN_BUDGET + 1, "the budget from worker 0, and worker 1's event");
        assert_eq!(x.run_once(0), 10);
    }

    #[test]
    fn startup_records_and_send_errors() {
        let mut st = settings();
        st.ipfix = vec!["127.0.0.1:9".parse().unwrap()];
        st.syslog = None;
        let mut x = Exporter::new(st, vec![], 0, Recorder::default()).unwrap().with_startup(vec![NatEvent::block(
            EventKind::BlockAllocate,
            0,
            [100, 64, 0, 1].into(),
            [203, 0, 113, 1].into(),
            1024,
            252,
        )]);
        assert_eq!(x.run_once(1000), 1);
        x.finish(2000);
        let s = x.stats();
        assert_eq!(s.send_errors.load(Relaxed), 2, "templates and data, both refused");
        assert_eq!(s.ipfix_messages.load(Relaxed), 0);
        assert_eq!(x.run_once(3000), 0, "startup records go once");
    }

    #[test]
    fn a_real_socket_reaches_a_local_listener() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut st = settings();
        st.ipfix = vec![listener.local_addr().unwrap()];
        st.syslog = None;
        let (mut tx, rx) = ring(8, 0, EventMask::SESSIONS);
        let x = Exporter::udp(st, vec![rx], wall_ms()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let h = x.spawn(stop.clone()).unwrap();
        tx.push(ev(4242, 0));
        stop.store(true, Relaxed);
        h.join().unwrap();
        let mut col = Collector::default();
        let mut recs = Vec::new();
        let mut buf = [0u8; 2048];
        while recs.is_empty() {
            let n = listener.recv(&mut buf).expect("a message within 5 s");
            recs.extend(col.message(&buf[..n]).unwrap().1);
        }
        assert_eq!(recs[0].uint(ie::SOURCE_TRANSPORT_PORT), Some(4242));
    }
}
