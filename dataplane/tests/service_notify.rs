//! masqd under systemd's `Type=notify`: started with `$NOTIFY_SOCKET` naming a datagram
//! socket (as systemd does), it sends `READY=1` only once its control socket answers and
//! its metrics listener serves, and `STOPPING=1` when SIGTERM tells it to stop. Its own
//! binary, because the variable is set for the test process (and so for every masqd it
//! starts).

mod common;

use std::os::unix::net::{UnixDatagram, UnixStream};
use std::time::{Duration, Instant};

use common::*;

/// The next notification, or `None` after `timeout`.
fn next_message(socket: &UnixDatagram, timeout: Duration) -> Option<String> {
    socket.set_read_timeout(Some(timeout)).expect("timeout");
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
fn ready_once_serving_and_stopping_on_sigterm() {
    let dir = TempDir::new("notify");
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notification socket");
    // Set before any masqd starts; this binary has no other test.
    std::env::set_var("NOTIFY_SOCKET", &path);

    let listen = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cfg = MasqdConfig::new()
        .inside("lan", "net_null0", "100.64.0.1/10")
        .outside("wan", "net_null1", "203.0.113.1/24", Some("203.0.113.254"))
        .extra_toml(&format!("[metrics]\nlisten = \"{listen}\""));
    let mut masqd = Masqd::start(&cfg);
    let started = Instant::now();
    let ready = next_message(&socket, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("no notification within 30 s:\n{}", masqd.log()));
    let lines: Vec<&str> = ready.lines().collect();
    assert_eq!(lines[0], "READY=1", "{ready}");
    assert!(lines.iter().any(|l| l.starts_with("STATUS=2 ports, 1 workers")), "{ready}");
    // READY means it serves: masqctl and a scraper get through at once, no retry.
    UnixStream::connect(masqd.socket()).unwrap_or_else(|e| panic!("control socket at READY: {e}\n{}", masqd.log()));
    std::net::TcpStream::connect(listen).unwrap_or_else(|e| panic!("metrics at READY: {e}\n{}", masqd.log()));
    masqd.expect_ready(Duration::from_secs(1));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(next_message(&socket, Duration::from_millis(300)).is_none(), "one READY, nothing more while running");

    masqd.signal("TERM");
    let stopping = next_message(&socket, Duration::from_secs(10)).expect("STOPPING within 10 s");
    assert_eq!(stopping.lines().next(), Some("STOPPING=1"), "{stopping}");
    masqd.wait_exit(Duration::from_secs(10)).assert_clean();
}
