//! The control socket's safety, over real files and sockets: the lock that keeps two
//! servers apart, the mode the socket is born with, the directories refused, symlinks
//! never followed, and the audit line of every state-changing command.

mod common;

use std::mem::MaybeUninit;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Mutex;

use common::{start_handler, start_with, Mock, TempDir};
use control::protocol::{Flushed, SessionCount, SessionFilter};
use control::server::{lock_path, respond_as, Peer};
use control::{Client, ClientError, Command, ControlError, ErrorCode, Handler, Server, ServerError, ServerOptions};
use rustix::fs::{FlockOperation, Mode, OFlags};
use serde_json::{json, Value};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Hold `<socket>.lock` as a masqd in the middle of its start would.
fn hold_lock(socket: &Path) -> std::fs::File {
    let fd =
        rustix::fs::open(lock_path(socket), OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC, Mode::RUSR | Mode::WUSR)
            .unwrap();
    rustix::fs::flock(&fd, FlockOperation::NonBlockingLockExclusive).unwrap();
    std::fs::File::from(fd)
}

/// Bind `socket` again right after a server of this process on the same path was dropped.
/// Its `<socket>.lock` is released when the last descriptor of the lock's open file goes;
/// a child that another test of this binary is spawning at that moment (masqctl) holds a
/// copy of every descriptor from its fork until its exec closes them (they are CLOEXEC), so
/// the lock can outlive the drop by that window. Wait it out, bounded; any other error, or
/// a lock still held after the deadline, fails the test.
fn rebind(socket: &Path, group: Option<&str>) -> Server {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Server::bind(socket, group) {
            Err(ServerError::AlreadyRunning { .. }) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(5))
            }
            other => return other.unwrap_or_else(|e| panic!("bind {}: {e}", socket.display())),
        }
    }
}

#[test]
fn a_server_that_holds_the_lock_keeps_every_other_one_off_its_path() {
    let dir = TempDir::new("lock");
    // Another server has the lock and has not bound yet: a second one must not bind, nor
    // remove what it finds (here a stale socket the first one is about to replace).
    drop(UnixListener::bind(dir.socket()).unwrap());
    let stale = std::fs::symlink_metadata(dir.socket()).unwrap().ino();
    let held = hold_lock(&dir.socket());
    let err = Server::bind(dir.socket(), None).unwrap_err();
    assert!(matches!(err, ServerError::AlreadyRunning { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("already running") && text.contains("masqd.sock.lock"), "{text}");
    assert_eq!(std::fs::symlink_metadata(dir.socket()).unwrap().ino(), stale, "the stale socket was not touched");
    assert!(std::os::unix::net::UnixStream::connect(dir.socket()).is_err(), "and nothing serves on it");

    // Once the lock is free, the stale socket is replaced.
    drop(held);
    let server = Server::bind(dir.socket(), None).unwrap().spawn(Mock::new()).unwrap();
    Client::connect(dir.socket()).unwrap().call(&Command::Version).unwrap();
    let lock = std::fs::symlink_metadata(lock_path(&dir.socket())).unwrap();
    assert!(lock.is_file() && lock.mode() & 0o777 == 0o600, "{:o}", lock.mode());

    // While it serves, the lock is held: even with its socket gone, no one else binds.
    std::fs::remove_file(dir.socket()).unwrap();
    assert!(matches!(Server::bind(dir.socket(), None), Err(ServerError::AlreadyRunning { .. })));
    assert!(!dir.socket().exists(), "the refused server bound nothing");
    server.shutdown();
    // Released on shutdown (the lock file stays).
    drop(rebind(&dir.socket(), None));
    assert!(lock_path(&dir.socket()).exists());
}

#[test]
fn the_lock_file_is_never_reached_through_a_symlink() {
    let dir = TempDir::new("lock-link");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::symlink(&victim, lock_path(&dir.socket())).unwrap();
    let err = Server::bind(dir.socket(), None).unwrap_err();
    assert!(matches!(err, ServerError::Lock { .. }), "{err}");
    assert!(err.to_string().contains("masqd.sock.lock"), "{err}");
    assert!(!dir.socket().exists());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    assert_eq!(std::fs::metadata(&victim).unwrap().mode() & 0o777, 0o644);
}

/// inotify events on `dir` while `f` runs: (name, mask) pairs.
fn events_during(dir: &Path, f: impl FnOnce()) -> Vec<(String, rustix::fs::inotify::ReadFlags)> {
    use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
    let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).unwrap();
    inotify::add_watch(&fd, dir, WatchFlags::CREATE | WatchFlags::ATTRIB).unwrap();
    f();
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(&fd, &mut buf);
    let mut out = Vec::new();
    loop {
        match reader.next() {
            Ok(e) => {
                let name = e.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                out.push((name, e.events() & (ReadFlags::CREATE | ReadFlags::ATTRIB)));
            }
            Err(rustix::io::Errno::WOULDBLOCK) => return out,
            Err(e) => panic!("inotify: {e}"),
        }
    }
}

#[test]
fn the_socket_is_born_with_its_final_mode() {
    let dir = TempDir::new("born");
    let mut server = None;
    let events = events_during(dir.path(), || server = Some(Server::bind(dir.socket(), None).unwrap()));
    let on_socket: Vec<_> = events.iter().filter(|(name, _)| name == "masqd.sock").collect();
    assert!(!on_socket.is_empty(), "the socket's creation was seen: {events:?}");
    // No change of mode (or owner) after creation: it never had a wider mode than 0600.
    assert!(
        on_socket.iter().all(|(_, mask)| !mask.contains(rustix::fs::inotify::ReadFlags::ATTRIB)),
        "the socket's attributes changed after it was created: {events:?}"
    );
    assert_eq!(std::fs::symlink_metadata(dir.socket()).unwrap().mode() & 0o777, 0o600);
    // With a group it is born 0660; only its group changes afterwards.
    drop(server);
    let own = rustix::process::getegid().as_raw().to_string();
    let server = rebind(&dir.socket(), Some(&own));
    assert_eq!(std::fs::symlink_metadata(server.path()).unwrap().mode() & 0o777, 0o660);
}

#[test]
fn directories_others_could_write_are_refused_by_name() {
    let dir = TempDir::new("dirs");
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    for mode in [0o777, 0o775, 0o757] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        let err = Server::bind(open.join("m.sock"), None).unwrap_err();
        assert!(matches!(err, ServerError::UnsafeDirectory { .. }), "{mode:o}: {err}");
        let text = err.to_string();
        assert!(text.contains(&open.display().to_string()) && text.contains("sticky"), "{text}");
        assert!(!open.join("m.sock").exists() && !lock_path(&open.join("m.sock")).exists(), "nothing created");
    }
    // With the sticky bit (as /tmp), or writable by its owner only: fine.
    for mode in [0o1777, 0o755, 0o700] {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(mode)).unwrap();
        drop(rebind(&open.join("m.sock"), None));
    }
    // Owned by someone else: its owner could swap the socket.
    if is_root() {
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::chown(&open, Some(65534), None).unwrap();
        let err = Server::bind(open.join("m.sock"), None).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }
}

/// Audit lines, from every server of this test binary that logs into [`record`].
static AUDIT: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(line: &str) {
    AUDIT.lock().unwrap().push(line.to_string());
}

fn audit_lines(marker: &str) -> Vec<String> {
    AUDIT.lock().unwrap().iter().filter(|l| l.contains(marker)).cloned().collect()
}

#[test]
fn every_state_change_is_logged_with_the_peers_credentials() {
    let (_dir, server) = start_with("audit", ServerOptions { audit: record, ..ServerOptions::default() });
    let mut c = Client::connect(server.path()).unwrap();
    let append = |chain: &str| Command::RulesAppend {
        table: "filter".into(),
        chain: chain.into(),
        spec: vec!["-s".into(), "10.9.8.7".into(), "-j".into(), "DROP".into()],
    };
    c.call(&append("FORWARD")).unwrap();
    c.call(&Command::RulesList { table: "filter".into(), chain: Some("FORWARD".into()) }).unwrap();
    c.call(&Command::RulesSave { table: None }).unwrap();
    let refused = c.call(&Command::RulesAppend {
        table: "filter".into(),
        chain: "FORWARD".into(),
        spec: vec!["--bogus-audit".into()],
    });
    assert!(matches!(refused, Err(ClientError::Server(_))));
    let text = "*filter\n-A FORWARD -s 10.9.8.6 -j DROP\nCOMMIT\n";
    c.call(&Command::RulesRestore { text: text.into(), noflush: true }).unwrap();

    let me = format!(
        "uid {} gid {} pid {}",
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
        std::process::id()
    );
    let lines = audit_lines("10.9.8.7");
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(&format!("control: {me}: rules.append ")) && lines[0].ends_with(": ok"),
        "{}",
        lines[0]
    );
    let lines = audit_lines("--bogus-audit");
    assert_eq!(lines.len(), 1, "a refusal is logged too: {lines:?}");
    assert!(lines[0].contains("refused (bad_args)"), "{}", lines[0]);
    let restore: Vec<String> = audit_lines("rules.restore");
    assert!(
        restore.iter().any(|l| l.contains(&format!("\"text\":\"<{} bytes>\"", text.len()))),
        "the text by its size: {restore:?}"
    );
    assert!(audit_lines("rules.list").is_empty() && audit_lines("rules.save").is_empty(), "reads are not logged");
}

#[test]
fn respond_as_logs_only_what_changes_state() {
    let mock = Mock::new();
    let peer = Peer { uid: 1000, gid: 1000, pid: 4242 };
    let r = respond_as(&mock, br#"{"id":1,"cmd":"timeouts.set","args":{"udp":4242}}"#, Some((&peer, record)));
    assert!(r.outcome.is_ok());
    let lines = audit_lines("pid 4242: timeouts.set");
    assert_eq!(lines, [r#"control: uid 1000 gid 1000 pid 4242: timeouts.set {"udp":4242}: ok"#]);
    respond_as(&mock, br#"{"id":2,"cmd":"timeouts.get","args":{"x":4242}}"#, Some((&peer, record)));
    respond_as(&mock, br#"{"id":3,"cmd":"stats.get"}"#, Some((&peer, record)));
    assert_eq!(audit_lines("4242").len(), 1, "bad requests and reads are not logged");
}

/// A masqd whose tables are too big for one request: counts and flushes come in steps of
/// at most three sessions, each with a cursor to go on from.
struct Chunky {
    left: Mutex<u64>,
}

impl Handler for Chunky {
    fn handle(&self, cmd: Command) -> Result<Value, ControlError> {
        let mut left = self.left.lock().unwrap();
        let step = |n: u64| (n.min(3), (n > 3).then(|| format!("after-{}", n - 3)));
        match cmd {
            Command::SessionsCount { cursor, .. } => {
                let from = cursor.map_or(*left, |c| c.trim_start_matches("after-").parse().unwrap());
                let (count, next_cursor) = step(from);
                control::protocol::to_result(&SessionCount { count, next_cursor })
            }
            Command::SessionsFlush { .. } => {
                let (flushed, next_cursor) = step(*left);
                *left -= flushed;
                control::protocol::to_result(&Flushed { flushed, next_cursor })
            }
            _ => Err(ControlError::new(ErrorCode::Unsupported, "chunky")),
        }
    }
}

#[test]
fn a_client_goes_on_from_each_cursor_to_the_end() {
    let (_dir, server) = start_handler("chunky", ServerOptions::default(), Chunky { left: Mutex::new(8) });
    let mut c = Client::connect(server.path()).unwrap();
    let count = Command::SessionsCount { filter: SessionFilter::default(), cursor: None };
    let first: SessionCount = c.call_as(&count).unwrap();
    assert_eq!((first.count, first.next_cursor.as_deref()), (3, Some("after-5")), "one step at a time");
    assert_eq!(c.call_to_end(&count).unwrap(), json!({"count": 8}));
    let flush = Command::SessionsFlush { filter: SessionFilter::default(), cursor: None };
    assert_eq!(c.call_to_end(&flush).unwrap(), json!({"flushed": 8}));
    assert_eq!(c.call_to_end(&count).unwrap(), json!({"count": 0}));
}

#[test]
fn masqctl_counts_and_flushes_to_the_end() {
    let (_dir, server) = start_handler("chunky-cli", ServerOptions::default(), Chunky { left: Mutex::new(7) });
    let masqctl = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_masqctl"))
            .arg("-S")
            .arg(server.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "masqctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(masqctl(&["sessions", "count"]), "7\n");
    assert_eq!(masqctl(&["sessions", "flush"]), "flushed 7\n");
    assert_eq!(masqctl(&["sessions", "count"]), "0\n");
}
