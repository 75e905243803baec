//! The HTTP side of the exporter: one blocking `TcpListener`, one thread, one connection
//! at a time, one request per connection.
//!
//! Requests are parsed with `httparse`; what a client cannot do:
//! - hold the thread: the request head must arrive within [`MetricsOptions::request_timeout`]
//!   (else `408`), the response must be taken within `write_timeout` (else the
//!   connection is dropped);
//! - grow memory: a head over `max_head_bytes` is answered `431`;
//! - reach anything but the snapshot: `GET`/`HEAD` of `/metrics` (200) and `/` (a pointer
//!   to `/metrics`); any other path is `404`, any other method `405`.
//!
//! Scrapers that arrive while one is served wait in the listen backlog; Prometheus
//! scrapes once every few seconds, so serial service is plenty and bounds the load the
//! exporter can put on the control plane (and through it on the workers' mailboxes).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::encode::{render, BuildInfo, Snapshot, CONTENT_TYPE};
use crate::io_reason;
use crate::protocol::Command;
use crate::server::Handler;

/// Limits and timeouts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsOptions {
    /// The whole request head (request line and headers) must arrive within this long.
    pub request_timeout: Duration,
    /// The response must be accepted by the client's socket within this long.
    pub write_timeout: Duration,
    /// The longest request head, bytes.
    pub max_head_bytes: usize,
}

impl Default for MetricsOptions {
    fn default() -> Self {
        MetricsOptions {
            request_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_head_bytes: 8192,
        }
    }
}

/// Why the exporter could not start.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("cannot listen on {addr}: {}", io_reason(source))]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot start the metrics thread: {}", io_reason(.0))]
    Spawn(io::Error),
}

/// A bound listener, not yet serving.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    options: MetricsOptions,
}

impl MetricsServer {
    /// Listen on `addr` (port 0: any free port; [`local_addr`](Self::local_addr) tells).
    pub fn bind(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        MetricsServer::bind_with(addr, MetricsOptions::default())
    }

    /// [`MetricsServer::bind`] with explicit limits.
    pub fn bind_with(addr: SocketAddr, options: MetricsOptions) -> Result<MetricsServer, MetricsError> {
        let listener = TcpListener::bind(addr).map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| MetricsError::Bind { addr, source })?;
        Ok(MetricsServer { listener, addr, options })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Start the metrics thread; every scrape asks `handler` for `stats.get`.
    pub fn spawn<H: Handler>(self, handler: H, build: BuildInfo) -> Result<MetricsHandle, MetricsError> {
        let stop = Arc::new(AtomicBool::new(false));
        let MetricsServer { listener, addr, options } = self;
        let thread = {
            let stop = Arc::clone(&stop);
            thread::Builder::new()
                .name("masq-metrics".into())
                .spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        match conn {
                            Ok(stream) => serve(stream, &handler, &build, &options),
                            // Out of descriptors or memory: back off instead of spinning.
                            Err(_) => thread::sleep(Duration::from_millis(50)),
                        }
                    }
                })
                .map_err(MetricsError::Spawn)?
        };
        Ok(MetricsHandle { addr, stop, thread: Some(thread) })
    }
}

/// A running exporter. Dropping it shuts it down.
#[derive(Debug)]
pub struct MetricsHandle {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsHandle {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, finish the scrape in progress, join the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept with a connection of our own. If that fails, leave the
        // thread parked rather than hang the caller; it ends with the process.
        let mut wake = self.addr;
        if wake.ip().is_unspecified() {
            wake.set_ip(match wake {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&wake, Duration::from_secs(1)).is_ok() {
            let _ = thread.join();
        }
    }
}

impl Drop for MetricsHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP answer.
struct Reply {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    extra_header: Option<&'static str>,
    body: String,
}

impl Reply {
    fn text(status: u16, reason: &'static str, body: impl Into<String>) -> Reply {
        Reply { status, reason, content_type: "text/plain; charset=utf-8", extra_header: None, body: body.into() }
    }
}

/// What the head of a request asks for, or why it cannot be answered.
#[derive(Debug, PartialEq, Eq)]
enum Head {
    Get {
        path: String,
        head_only: bool,
    },
    Unsupported(String),
    Malformed(String),
    TooLarge,
    TimedOut,
    /// Closed before a complete head (the shutdown wake-up, or a port scanner).
    Closed,
}

fn serve<H: Handler>(mut stream: TcpStream, handler: &H, build: &BuildInfo, options: &MetricsOptions) {
    if stream.set_write_timeout(Some(options.write_timeout)).is_err() {
        return;
    }
    let head = read_head(&mut stream, options);
    let (reply, head_only) = match head {
        Head::Closed => return,
        Head::Get { path, head_only } => (route(&path, handler, build), head_only),
        Head::Unsupported(method) => (
            Reply {
                extra_header: Some("Allow: GET, HEAD\r\n"),
                ..Reply::text(405, "Method Not Allowed", format!("{method} is not supported; GET /metrics\n"))
            },
            false,
        ),
        Head::Malformed(why) => (Reply::text(400, "Bad Request", format!("malformed request: {why}\n")), false),
        Head::TooLarge => (
            Reply::text(
                431,
                "Request Header Fields Too Large",
                format!("request head exceeds {} bytes\n", options.max_head_bytes),
            ),
            false,
        ),
        Head::TimedOut => (
            Reply::text(
                408,
                "Request Timeout",
                format!("request head not complete within {} s\n", options.request_timeout.as_secs_f64()),
            ),
            false,
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{}\r\n",
        reply.status,
        reply.reason,
        reply.content_type,
        reply.body.len(),
        reply.extra_header.unwrap_or("")
    );
    if !head_only {
        response.push_str(&reply.body);
    }
    // A client that does not read is cut off by the write timeout.
    let _ = stream.write_all(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Both);
}

fn route<H: Handler>(path: &str, handler: &H, build: &BuildInfo) -> Reply {
    match path.split('?').next().unwrap_or(path) {
        "/metrics" => match scrape(handler) {
            Ok(snapshot) => Reply {
                status: 200,
                reason: "OK",
                content_type: CONTENT_TYPE,
                extra_header: None,
                body: render(&snapshot, build),
            },
            Err(why) => Reply::text(503, "Service Unavailable", format!("masqd could not gather statistics: {why}\n")),
        },
        "/" => Reply::text(200, "OK", "masqd metrics exporter: GET /metrics\n"),
        other => Reply::text(404, "Not Found", format!("{other}: not found; metrics are at /metrics\n")),
    }
}

/// The snapshot, through the control plane's own door. A panic in the handler is not
/// caught: masqd is built with `panic = "abort"`, and a panic there is a bug that its
/// panic hook reports before the process exits (docs/configuration.md, exit codes).
fn scrape<H: Handler>(handler: &H) -> Result<Snapshot, String> {
    let value = handler.handle(Command::StatsGet).map_err(|e| e.message)?;
    Snapshot::from_result(&value).map_err(|e| format!("unexpected stats.get result: {e}"))
}

/// Read until the request head is complete, within the limits.
fn read_head(stream: &mut TcpStream, options: &MetricsOptions) -> Head {
    let deadline = Instant::now() + options.request_timeout;
    let mut buf = vec![0u8; options.max_head_bytes];
    let mut len = 0;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buf[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let method = request.method.unwrap_or_default();
                let path = request.path.unwrap_or("/").to_string();
                return match method {
                    "GET" => Head::Get { path, head_only: false },
                    "HEAD" => Head::Get { path, head_only: true },
                    other => Head::Unsupported(other.to_string()),
                };
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => return Head::TooLarge,
            Err(e) => return Head::Malformed(e.to_string()),
        }
        if len == buf.len() {
            return Head::TooLarge;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return Head::TimedOut;
        }
        match stream.read(&mut buf[len..]) {
            Ok(0) => return Head::Closed,
            Ok(n) => len += n,
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => return Head::TimedOut,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Head::Closed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ControlError, Stats, WorkerStats};
    use serde_json::Value;
    use std::sync::atomic::AtomicU64;

    /// A handler whose worker 0 has received as many packets as it has been asked.
    #[derive(Default)]
    struct Counting(AtomicU64);

    impl Handler for Counting {
        fn handle(&self, cmd: Command) -> Result<Value, ControlError> {
            assert!(matches!(cmd, Command::StatsGet), "the exporter only reads stats");
            let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
            let stats = Stats {
                workers: vec![WorkerStats { worker: 0, rx_packets: n, ..Default::default() }],
                ..Default::default()
            };
            Ok(serde_json::to_value(stats).unwrap())
        }
    }

    struct Failing;

    impl Handler for Failing {
        fn handle(&self, _: Command) -> Result<Value, ControlError> {
            Err(ControlError::internal("worker 0 did not answer"))
        }
    }

    fn start<H: Handler>(handler: H, options: MetricsOptions) -> MetricsHandle {
        MetricsServer::bind_with("127.0.0.1:0".parse().unwrap(), options)
            .unwrap()
            .spawn(handler, BuildInfo { version: "9.9.9".into() })
            .unwrap()
    }

    /// Send `request` raw; (status line, whole response).
    fn exchange(addr: SocketAddr, request: &[u8]) -> (String, String) {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        (out.lines().next().unwrap_or_default().to_string(), out)
    }

    fn get(addr: SocketAddr, path: &str) -> (String, String) {
        exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").as_bytes())
    }

    #[test]
    fn scrapes_read_a_fresh_snapshot_each_time() {
        let h = start(Counting::default(), MetricsOptions::default());
        let (status, first) = get(h.local_addr(), "/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(first.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), "{first}");
        assert!(first.contains("\nmasq_worker_rx_packets_total{worker=\"0\"} 1\n"), "{first}");
        let (_, second) = get(h.local_addr(), "/metrics?x=1");
        assert!(second.contains("masq_worker_rx_packets_total{worker=\"0\"} 2\n"), "{second}");
        let body = second.split("\r\n\r\n").nth(1).unwrap();
        let length: usize = line_value(&second, "Content-Length: ").parse().unwrap();
        assert_eq!(length, body.len());
        assert!(body.contains("masq_build_info{version=\"9.9.9\"} 1"));
        h.shutdown();
    }

    fn line_value<'a>(text: &'a str, header: &str) -> &'a str {
        text.lines().find_map(|l| l.strip_prefix(header)).unwrap().trim_end()
    }

    #[test]
    fn other_paths_methods_and_bad_requests_get_clear_statuses() {
        let h = start(Counting::default(), MetricsOptions::default());
        let addr = h.local_addr();
        assert_eq!(get(addr, "/").0, "HTTP/1.1 200 OK");
        assert_eq!(get(addr, "/metricz").0, "HTTP/1.1 404 Not Found");
        let (status, out) = exchange(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
        assert!(out.contains("Allow: GET, HEAD\r\n"));
        assert_eq!(exchange(addr, b"GET /metrics HTTP/9\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
        assert_eq!(exchange(addr, b"\x00\x01garbage\r\n\r\n").0, "HTTP/1.1 400 Bad Request");
        let (status, out) = exchange(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(out.ends_with("\r\n\r\n"), "HEAD has no body: {out}");
        let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
        assert_eq!(exchange(addr, huge.as_bytes()).0, "HTTP/1.1 431 Request Header Fields Too Large");
        // After all that, scrapes still work, and only real ones asked for the snapshot:
        // the 200 from HEAD asked too (its body was left out).
        let (_, out) = get(addr, "/metrics");
        assert!(out.contains("masq_worker_rx_packets_total{worker=\"0\"} 2\n"), "{out}");
        h.shutdown();
    }

    #[test]
    fn a_silent_client_is_cut_off_and_the_next_is_served() {
        let h = start(
            Counting::default(),
            MetricsOptions { request_timeout: Duration::from_millis(300), ..Default::default() },
        );
        let addr = h.local_addr();
        let started = Instant::now();
        let (status, _) = exchange(addr, b"GET /metrics HTTP/1.1\r\n");
        assert_eq!(status, "HTTP/1.1 408 Request Timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(get(addr, "/metrics").0, "HTTP/1.1 200 OK");
        h.shutdown();
    }

    #[test]
    fn a_failing_snapshot_is_a_503_with_the_reason() {
        let h = start(Failing, MetricsOptions::default());
        let (status, out) = get(h.local_addr(), "/metrics");
        assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
        assert!(out.ends_with("masqd could not gather statistics: worker 0 did not answer\n"), "{out}");
        h.shutdown();
    }

    #[test]
    fn a_taken_address_is_an_error_naming_it_and_shutdown_frees_it() {
        let h = start(Counting::default(), MetricsOptions::default());
        let addr = h.local_addr();
        let e = MetricsServer::bind(addr).unwrap_err();
        assert!(e.to_string().starts_with(&format!("cannot listen on {addr}: ")), "{e}");
        h.shutdown();
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(), "no longer listening");
        MetricsServer::bind(addr).expect("the address is free again");
    }
}
