//! The control socket server: framing, limits, timeouts, concurrency and permissions.
//!
//! [`Server::bind`] claims the socket path and makes it safe before anyone can connect:
//!
//! - it creates the socket's directory (0755) if missing, and refuses a directory that
//!   group or others may write without the sticky bit, or that is owned by another user
//!   (either could swap the socket for something else);
//! - it takes an exclusive `flock` on `<socket>.lock` (created 0600, never through a
//!   symlink, kept for the server's life): a second server on the same path stops there,
//!   so two masqd can never unlink each other's socket, and a stale socket is replaced
//!   only by the holder of the lock;
//! - it binds with a restrictive umask, so the socket is created with its final mode —
//!   `0600`, or `0660` for the `[control] group` — and never exists with a wider one;
//!   the group is set with `fchownat(AT_SYMLINK_NOFOLLOW)`, which never follows a symlink,
//!   and the socket's identity (device, inode) is checked after it.
//!
//! [`Server::spawn`] starts the control thread, which
//! accepts clients and serves each on its own thread, up to
//! [`ServerOptions::max_clients`]; one more is told `busy` and closed. Each client thread
//! reads newline-delimited requests, answers each through the one door, [`respond`], and
//! writes one response line per request, in order.
//!
//! What a client cannot do:
//! - grow memory without bound: a line longer than `max_request_bytes` is answered with
//!   `too_large` and discarded up to its newline;
//! - hold a thread forever: a line not finished within `request_timeout` is answered with
//!   `timeout` and the connection closed; a connection idle for `idle_timeout` is closed;
//! - stall the server by not reading: a response that cannot be written within
//!   `write_timeout` closes the connection, nothing is queued;
//! - stall other clients or the workers: clients have their own threads, and the handler
//!   is the dataplane's to keep off the fast path;
//! - change anything unseen: every command that changes state (the table's
//!   [`CommandSpec::mutates`](crate::protocol::CommandSpec::mutates)) is logged with the
//!   peer's uid, gid and pid (`SO_PEERCRED`) and its outcome, by the client's thread
//!   ([`ServerOptions::audit`]; masqd's goes to stderr, so to the journal).
//!
//! [`ServerHandle::shutdown`] (or dropping the handle) stops accepting, lets in-flight
//! requests finish, joins every thread and removes the socket file.

use std::fs::{self, DirBuilder, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::io_reason;
use crate::protocol::{Command, ControlError, ErrorCode, Request, Response, MAX_REQUEST_BYTES};

/// Who is on the other end of a connection, as the kernel says (`SO_PEERCRED`): the
/// credentials of the process that connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub uid: u32,
    pub gid: u32,
    /// 0 when the kernel does not know (a peer in another pid namespace).
    pub pid: i32,
}

impl Peer {
    /// The credentials of `stream`'s peer.
    pub fn of(stream: &UnixStream) -> io::Result<Peer> {
        let c = rustix::net::sockopt::socket_peercred(stream)?;
        Ok(Peer { uid: c.uid.as_raw(), gid: c.gid.as_raw(), pid: c.pid.as_raw_pid() })
    }
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "uid {} gid {} pid {}", self.uid, self.gid, self.pid)
    }
}

/// Where the audit lines of state-changing commands go (one line each, no newline).
pub type AuditSink = fn(&str);

/// masqd's audit sink: standard error (the journal, under systemd), as `masqd: control: ...`.
pub fn audit_to_stderr(line: &str) {
    eprintln!("masqd: {line}");
}

/// What masqd implements to answer commands. Called from client threads, concurrently.
pub trait Handler: Send + Sync + 'static {
    /// Carry out `cmd`; the result becomes the response's `result` (an object, see each
    /// [`Command`] variant), the error its `error`. Must not block for long: other clients
    /// are served meanwhile, but this one waits.
    fn handle(&self, cmd: Command) -> Result<Value, ControlError>;
}

impl<T: Handler> Handler for Arc<T> {
    fn handle(&self, cmd: Command) -> Result<Value, ControlError> {
        (**self).handle(cmd)
    }
}

/// Answer one request line (without its newline): the one door every request goes through.
///
/// A handler must not panic. masqd is built with `panic = "abort"`, so a panic cannot be
/// caught here: masqd's panic hook reports it and exits (see `masqd.rs`).
pub fn respond<H: Handler + ?Sized>(handler: &H, line: &[u8]) -> Response {
    respond_as(handler, line, None)
}

/// [`respond`] for a known peer: a command that changes state is then written to `audit`,
/// one line with the peer's credentials, the command, its arguments (a `rules.restore`
/// text by its size) and the outcome.
pub fn respond_as<H: Handler + ?Sized>(handler: &H, line: &[u8], audit: Option<(&Peer, AuditSink)>) -> Response {
    let request = match Request::from_line(line) {
        Ok(request) => request,
        Err(e) => return Response::failure(e.id, e.error),
    };
    let command = match Command::from_request(&request) {
        Ok(command) => command,
        Err(e) => return Response::failure(request.id, e),
    };
    let logged =
        audit.filter(|_| command.kind().spec().mutates).map(|(peer, sink)| (*peer, sink, audit_args(&command)));
    let outcome = handler.handle(command);
    if let Some((peer, sink, args)) = logged {
        let result = match &outcome {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("refused ({}): {}", e.code, e.message),
        };
        sink(&format!("control: {peer}: {} {args}: {result}", request.cmd));
    }
    Response { id: request.id, outcome }
}

/// A command's arguments for the audit log: its JSON, with a restore's text given by its
/// size and the whole cut at 1000 characters.
fn audit_args(command: &Command) -> String {
    let mut args = command.args();
    if let Some(text) = args.get_mut("text") {
        let n = text.as_str().map_or(0, str::len);
        *text = Value::String(format!("<{n} bytes>"));
    }
    let mut line = args.to_string();
    if line.len() > 1000 {
        let cut = (0..=1000).rev().find(|&i| line.is_char_boundary(i)).unwrap_or(0);
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

/// Limits and timeouts.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Clients served at once; one more is answered `busy` and closed.
    pub max_clients: usize,
    /// The longest request line, newline excluded.
    pub max_request_bytes: usize,
    /// A connection with no request in progress is closed after this long.
    pub idle_timeout: Duration,
    /// A request line must be complete this long after its first byte.
    pub request_timeout: Duration,
    /// A response must be accepted by the client's socket within this long.
    pub write_timeout: Duration,
    /// Where the audit lines of state-changing commands go ([`audit_to_stderr`]).
    pub audit: AuditSink,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_clients: 64,
            max_request_bytes: MAX_REQUEST_BYTES,
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(5),
            audit: audit_to_stderr,
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot create directory {}: {}", path.display(), io_reason(source))]
    CreateDir { path: PathBuf, source: io::Error },
    /// Another server holds the socket's lock, or answers on the socket.
    #[error("masqd is already running: {reason}")]
    AlreadyRunning { path: PathBuf, reason: String },
    #[error("cannot lock {}: {}", lock.display(), io_reason(source))]
    Lock { lock: PathBuf, source: io::Error },
    #[error("refusing the control socket's directory {}: {reason}", dir.display())]
    UnsafeDirectory { dir: PathBuf, reason: String },
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket { path: PathBuf },
    #[error("cannot bind {}: {}", path.display(), io_reason(source))]
    Bind { path: PathBuf, source: io::Error },
    #[error("unknown group `{group}` for the control socket (not a gid and not in /etc/group)")]
    UnknownGroup { group: String },
    #[error("cannot set owner or mode of {}: {}", path.display(), io_reason(source))]
    Permissions { path: PathBuf, source: io::Error },
    #[error("{} changed under masqd while it was being set up (now not the socket masqd bound); refusing", path.display())]
    Replaced { path: PathBuf },
    #[error("cannot start the control thread: {}", io_reason(.0))]
    Spawn(io::Error),
}

/// A bound control socket, not yet serving.
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    socket: SocketFile,
    options: ServerOptions,
}

impl Server {
    /// Bind `path` with default [`ServerOptions`]; `group` (a name or a numeric gid) makes
    /// the socket `0660` owned by that group, otherwise it is `0600`.
    pub fn bind(path: impl AsRef<Path>, group: Option<&str>) -> Result<Server, ServerError> {
        Server::bind_with(path, group, ServerOptions::default())
    }

    /// [`Server::bind`] with explicit limits.
    pub fn bind_with(
        path: impl AsRef<Path>,
        group: Option<&str>,
        options: ServerOptions,
    ) -> Result<Server, ServerError> {
        let path = path.as_ref().to_path_buf();
        let gid = group.map(resolve_group).transpose()?;
        let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(dir) => dir.to_path_buf(),
            None => PathBuf::from("."),
        };
        if !dir.exists() {
            DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(&dir)
                .map_err(|source| ServerError::CreateDir { path: dir.clone(), source })?;
        }
        check_directory(&dir)?;
        let lock = take_lock(&path)?;
        clear_stale(&path)?;
        let mode = if gid.is_some() { 0o660 } else { 0o600 };
        let listener = bind_with_mode(&path, mode)?;
        // From here on the file is ours: remove it again if anything below fails.
        let mut socket = SocketFile { path, identity: None, _lock: Some(lock) };
        socket.restrict(gid)?;
        Ok(Server { listener, socket, options })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.socket.path
    }

    /// Start the control thread.
    pub fn spawn<H: Handler>(self, handler: H) -> Result<ServerHandle, ServerError> {
        let shared =
            Arc::new(Shared { options: self.options, stop: AtomicBool::new(false), active: AtomicUsize::new(0) });
        let handler = Arc::new(handler);
        let listener = self.listener;
        let thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("masq-control".into())
                .spawn(move || accept_loop(listener, handler, shared))
                .map_err(ServerError::Spawn)?
        };
        Ok(ServerHandle { socket: self.socket, shared, thread: Some(thread) })
    }
}

/// A running server. Dropping it shuts it down.
#[derive(Debug)]
pub struct ServerHandle {
    socket: SocketFile,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.socket.path
    }

    /// Clients connected now.
    pub fn active_clients(&self) -> usize {
        self.shared.active.load(Ordering::Acquire)
    }

    /// Stop accepting, let in-flight requests finish, join every thread, remove the socket.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.shared.stop.store(true, Ordering::Release);
        // Wake the blocking accept. If the socket file has gone (removed by hand), nothing
        // can wake it: leave that thread parked rather than hang the caller.
        if UnixStream::connect(&self.socket.path).is_ok() {
            let _ = thread.join();
        }
        self.socket.remove();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------------------
// The socket file
// ---------------------------------------------------------------------------------------

/// The bound socket's path, its (device, inode) so that we only ever remove our own, and
/// the lock that makes it ours (released after the socket is removed).
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    identity: Option<(u64, u64)>,
    /// `<socket>.lock`, locked: held, never read, for as long as the socket is ours.
    _lock: Option<File>,
}

impl SocketFile {
    /// Record the socket's identity and, for a group, give it to that group — without
    /// following a symlink, and checking the file is still the socket bound.
    fn restrict(&mut self, gid: Option<u32>) -> Result<(), ServerError> {
        let path = self.path.clone();
        let identity = |path: &Path| -> Result<(u64, u64), ServerError> {
            let meta = fs::symlink_metadata(path)
                .map_err(|source| ServerError::Permissions { path: path.to_path_buf(), source })?;
            if !meta.file_type().is_socket() {
                return Err(ServerError::Replaced { path: path.to_path_buf() });
            }
            Ok((meta.dev(), meta.ino()))
        };
        let result = (|| {
            let bound = identity(&path)?;
            self.identity = Some(bound);
            if let Some(gid) = gid {
                chown_no_follow(&path, gid)
                    .map_err(|source| ServerError::Permissions { path: path.clone(), source })?;
                if identity(&path)? != bound {
                    return Err(ServerError::Replaced { path: path.clone() });
                }
            }
            Ok(())
        })();
        result.inspect_err(|_| self.remove())
    }

    fn remove(&mut self) {
        if let Some(identity) = self.identity.take() {
            let ours = fs::symlink_metadata(&self.path).map(|m| (m.dev(), m.ino()) == identity).unwrap_or(false);
            if ours {
                let _ = fs::remove_file(&self.path);
            }
        }
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        self.remove();
        // `_lock` is dropped after this: the lock outlives the socket file.
    }
}

/// The lock file of the socket at `path`: `<path>.lock`.
pub fn lock_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Open `<path>.lock` (created 0600; never through a symlink; ours) and take an exclusive
/// `flock` on it without waiting. The lock file is left in place when masqd stops
/// (removing it would let a third masqd lock a new file while a second holds the old one).
fn take_lock(path: &Path) -> Result<File, ServerError> {
    use rustix::fs::{FlockOperation, Mode, OFlags};
    let lock = lock_path(path);
    let fail = |source: io::Error| ServerError::Lock { lock: lock.clone(), source };
    let fd = rustix::fs::open(
        &lock,
        OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY,
        Mode::RUSR | Mode::WUSR,
    )
    .map_err(|e| fail(e.into()))?;
    let file = File::from(fd);
    let meta = file.metadata().map_err(fail)?;
    if !meta.file_type().is_file() || meta.uid() != rustix::process::geteuid().as_raw() {
        return Err(fail(io::Error::other(format!(
            "not a regular file owned by masqd's user (uid {}); remove it",
            rustix::process::geteuid().as_raw()
        ))));
    }
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(ServerError::AlreadyRunning {
            path: path.to_path_buf(),
            reason: format!("another masqd holds {} (the lock of {})", lock.display(), path.display()),
        }),
        Err(e) => Err(fail(e.into())),
    }
}

/// Refuse a directory others could use to swap the socket: writable by group or others
/// without the sticky bit, or owned by someone other than root or masqd's user.
fn check_directory(dir: &Path) -> Result<(), ServerError> {
    let unsafe_dir = |reason: String| ServerError::UnsafeDirectory { dir: dir.to_path_buf(), reason };
    let meta = fs::metadata(dir).map_err(|e| unsafe_dir(io_reason(&e)))?;
    if !meta.is_dir() {
        return Err(unsafe_dir("not a directory".into()));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 && mode & 0o1000 == 0 {
        return Err(unsafe_dir(format!(
            "it is writable by {} (mode {:04o}) without the sticky bit, so another user could replace the \
             socket; use a directory only root can write (e.g. /run/masq), or chmod g-w,o-w it",
            match (mode & 0o020 != 0, mode & 0o002 != 0) {
                (true, true) => "group and others",
                (true, false) => "its group",
                _ => "others",
            },
            mode & 0o7777
        )));
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(unsafe_dir(format!(
            "it is owned by uid {}, not by root or masqd's user (uid {me}), so its owner could replace the socket",
            meta.uid()
        )));
    }
    Ok(())
}

/// The process umask is process-wide: binds in this process take turns.
static UMASK: Mutex<()> = Mutex::new(());

/// Bind `path` with the umask set so that the socket is created with `mode` (no wider
/// mode ever exists), then restore the umask. masqd binds before it starts other threads;
/// in tests, binds of this crate take turns, and a file another thread creates meanwhile
/// gets the narrow umask too (test fixtures set their directories' modes explicitly).
fn bind_with_mode(path: &Path, mode: u32) -> Result<UnixListener, ServerError> {
    use rustix::fs::Mode;
    let _turn = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    let old = rustix::process::umask(Mode::from_bits_truncate(0o777 & !mode));
    let bound = UnixListener::bind(path);
    rustix::process::umask(old);
    bound.map_err(|source| ServerError::Bind { path: path.to_path_buf(), source })
}

/// `chown :gid path`, never following a symlink (`fchownat` with `AT_SYMLINK_NOFOLLOW`).
fn chown_no_follow(path: &Path, gid: u32) -> io::Result<()> {
    use rustix::fs::{AtFlags, Gid, CWD};
    rustix::fs::chownat(CWD, path, None, Some(Gid::from_raw(gid)), AtFlags::SYMLINK_NOFOLLOW).map_err(io::Error::from)
}

/// Remove a socket nobody answers on; refuse a live one or a file that is not a socket.
fn clear_stale(path: &Path) -> Result<(), ServerError> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(ServerError::Bind { path: path.to_path_buf(), source }),
    };
    if !meta.file_type().is_socket() {
        return Err(ServerError::NotASocket { path: path.to_path_buf() });
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(ServerError::AlreadyRunning {
            path: path.to_path_buf(),
            reason: format!("another server answers on {}", path.display()),
        }),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(|source| ServerError::Bind { path: path.to_path_buf(), source })
        }
        Err(source) => Err(ServerError::Bind { path: path.to_path_buf(), source }),
    }
}

/// A group name or numeric gid to a gid, by `/etc/group` (no NSS: name service groups must
/// be given as numbers).
fn resolve_group(group: &str) -> Result<u32, ServerError> {
    if let Ok(gid) = group.parse::<u32>() {
        if gid == u32::MAX {
            return Err(ServerError::UnknownGroup { group: group.to_string() });
        }
        return Ok(gid);
    }
    fs::read_to_string("/etc/group")
        .ok()
        .and_then(|text| gid_in_etc_group(&text, group))
        .ok_or_else(|| ServerError::UnknownGroup { group: group.to_string() })
}

/// Look `name` up in `/etc/group` text (`name:password:gid:members`).
fn gid_in_etc_group(text: &str, name: &str) -> Option<u32> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.trim().parse().ok()
    })
}

// ---------------------------------------------------------------------------------------
// Threads
// ---------------------------------------------------------------------------------------

/// What the control thread and the client threads share.
#[derive(Debug)]
struct Shared {
    options: ServerOptions,
    stop: AtomicBool,
    /// Client threads alive.
    active: AtomicUsize,
}

/// Decrements the client count when a client thread ends, however it ends.
struct ActiveClient(Arc<Shared>);

impl Drop for ActiveClient {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How often a blocked client read looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);

fn accept_loop<H: Handler>(listener: UnixListener, handler: Arc<H>, shared: Arc<Shared>) {
    let mut clients: Vec<JoinHandle<()>> = Vec::new();
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        let stream = match conn {
            Ok(stream) => stream,
            Err(_) => {
                // Out of descriptors or memory: back off instead of spinning.
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        clients.retain(|c| !c.is_finished());
        if shared.active.load(Ordering::Acquire) >= shared.options.max_clients {
            refuse(stream, &shared.options);
            continue;
        }
        shared.active.fetch_add(1, Ordering::AcqRel);
        let guard = ActiveClient(Arc::clone(&shared));
        let handler = Arc::clone(&handler);
        let spawned = thread::Builder::new().name("masq-control-client".into()).spawn(move || {
            let guard = guard;
            serve_client(stream, &*handler, &guard.0);
        });
        // On failure the closure, and with it the guard, is dropped: the count is right.
        if let Ok(client) = spawned {
            clients.push(client);
        }
    }
    for client in clients {
        let _ = client.join();
    }
}

/// Tell a client over the limit why it is turned away, without ever blocking on it.
fn refuse(mut stream: UnixStream, options: &ServerOptions) {
    let error = ControlError::new(
        ErrorCode::Busy,
        format!("masqd is serving its maximum of {} control clients; try again", options.max_clients),
    );
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(&Response::failure(Value::Null, error).to_line());
}

fn serve_client<H: Handler>(mut stream: UnixStream, handler: &H, shared: &Shared) {
    let options = &shared.options;
    if stream.set_write_timeout(Some(options.write_timeout)).is_err() {
        return;
    }
    // Unknown credentials (they are always known on Linux) are logged as such.
    let peer = Peer::of(&stream).unwrap_or(Peer { uid: u32::MAX, gid: u32::MAX, pid: 0 });
    let mut reader = LineReader::new(options.max_request_bytes);
    loop {
        let (response, last) = match reader.next(&mut stream, shared) {
            Event::Line(line) if line.iter().all(u8::is_ascii_whitespace) => continue,
            Event::Line(line) => (respond_as(handler, &line, Some((&peer, options.audit))), false),
            Event::TooLarge => {
                let message = format!(
                    "request line exceeds {} bytes; it was discarded up to its newline",
                    options.max_request_bytes
                );
                (Response::failure(Value::Null, ControlError::new(ErrorCode::TooLarge, message)), false)
            }
            Event::Truncated(partial) => {
                let id = Request::from_line(&partial).map(|r| r.id).unwrap_or(Value::Null);
                let message = "connection closed in the middle of a request (no newline)";
                (Response::failure(id, ControlError::new(ErrorCode::Truncated, message)), true)
            }
            Event::Timeout => {
                let message =
                    format!("request line not finished within {} s; closing", options.request_timeout.as_secs_f64());
                (Response::failure(Value::Null, ControlError::new(ErrorCode::Timeout, message)), true)
            }
            Event::Closed => break,
        };
        // A client that does not read its responses is cut off here by the write timeout.
        if stream.write_all(&response.to_line()).is_err() || last {
            break;
        }
    }
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// What the next read of a client brings.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    /// A complete line, newline removed.
    Line(Vec<u8>),
    /// A line over the limit (it will be discarded up to its newline).
    TooLarge,
    /// End of stream after part of a line.
    Truncated(Vec<u8>),
    /// A line took too long to arrive.
    Timeout,
    /// End of stream between lines, idle timeout, read error or server stopping.
    Closed,
}

/// Splits a byte stream into bounded lines, with deadlines.
struct LineReader {
    buf: Vec<u8>,
    /// Bytes of `buf` already searched for a newline.
    scanned: usize,
    /// Skipping the rest of an oversized line.
    discarding: bool,
    max: usize,
    /// When the line now being read began.
    line_started: Option<Instant>,
    last_activity: Instant,
}

impl LineReader {
    fn new(max: usize) -> LineReader {
        LineReader {
            buf: Vec::new(),
            scanned: 0,
            discarding: false,
            max,
            line_started: None,
            last_activity: Instant::now(),
        }
    }

    fn next(&mut self, stream: &mut impl ReadTimeout, shared: &Shared) -> Event {
        let options = &shared.options;
        loop {
            if let Some(at) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                self.scanned = 0;
                self.line_started = (!self.buf.is_empty()).then(Instant::now);
                if std::mem::take(&mut self.discarding) {
                    continue;
                }
                return if line.len() > self.max { Event::TooLarge } else { Event::Line(line) };
            }
            self.scanned = self.buf.len();
            if self.discarding {
                self.buf.clear();
                self.scanned = 0;
            } else if self.buf.len() > self.max {
                self.buf.clear();
                self.scanned = 0;
                self.discarding = true;
                return Event::TooLarge;
            }

            if shared.stop.load(Ordering::Acquire) {
                return Event::Closed;
            }
            let now = Instant::now();
            let deadline = match self.line_started {
                Some(started) => started + options.request_timeout,
                None => self.last_activity + options.idle_timeout,
            };
            if now >= deadline {
                return if self.line_started.is_some() { Event::Timeout } else { Event::Closed };
            }
            let wait = (deadline - now).min(STOP_POLL).max(Duration::from_millis(1));
            let mut chunk = [0u8; 16 * 1024];
            match stream.read_within(&mut chunk, wait) {
                Ok(0) if self.buf.is_empty() || self.discarding => return Event::Closed,
                Ok(0) => return Event::Truncated(std::mem::take(&mut self.buf)),
                Ok(n) => {
                    self.line_started.get_or_insert(now);
                    self.last_activity = now;
                    self.buf.extend_from_slice(&chunk[..n]);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return Event::Closed,
            }
        }
    }
}

/// A stream read with a timeout (a Unix stream; a byte slice in tests).
trait ReadTimeout {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize>;
}

impl ReadTimeout for UnixStream {
    fn read_within(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        self.set_read_timeout(Some(timeout))?;
        self.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serves chunks as given, then end of stream.
    struct Chunks(Vec<Vec<u8>>);

    impl ReadTimeout for Chunks {
        fn read_within(&mut self, buf: &mut [u8], _: Duration) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let chunk = self.0.remove(0);
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            if n < chunk.len() {
                self.0.insert(0, chunk[n..].to_vec());
            }
            Ok(n)
        }
    }

    fn shared(max: usize) -> Shared {
        Shared {
            options: ServerOptions { max_request_bytes: max, ..ServerOptions::default() },
            stop: AtomicBool::new(false),
            active: AtomicUsize::new(0),
        }
    }

    fn events(max: usize, chunks: &[&[u8]]) -> Vec<Event> {
        let shared = shared(max);
        let mut stream = Chunks(chunks.iter().map(|c| c.to_vec()).collect());
        let mut reader = LineReader::new(max);
        let mut out = Vec::new();
        loop {
            let e = reader.next(&mut stream, &shared);
            let done = matches!(e, Event::Closed | Event::Truncated(_) | Event::Timeout);
            out.push(e);
            if done {
                return out;
            }
        }
    }

    fn line(s: &str) -> Event {
        Event::Line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_split_across_and_within_reads() {
        assert_eq!(
            events(100, &[b"ab", b"c\nde", b"f\n\ng\n"]),
            [line("abc"), line("def"), line(""), line("g"), Event::Closed]
        );
    }

    #[test]
    fn a_partial_line_at_end_of_stream_is_truncated() {
        assert_eq!(events(100, &[b"ok\n{\"id\":1"]), [line("ok"), Event::Truncated(b"{\"id\":1".to_vec())]);
    }

    #[test]
    fn an_oversized_line_is_reported_once_and_skipped() {
        let big = vec![b'x'; 40];
        assert_eq!(events(10, &[&big, &big, b"xx\nnext\n"]), [Event::TooLarge, line("next"), Event::Closed]);
        // Over the limit but arriving with its newline in one read.
        assert_eq!(events(10, &[b"0123456789A\nok\n"]), [Event::TooLarge, line("ok"), Event::Closed]);
        // Exactly the limit is fine.
        assert_eq!(events(10, &[b"0123456789\n"]), [line("0123456789"), Event::Closed]);
        // End of stream while discarding is a plain close: too_large was already said.
        assert_eq!(events(10, &[&big]), [Event::TooLarge, Event::Closed]);
    }

    #[test]
    fn groups_resolve_from_etc_group_text() {
        let text = "root:x:0:\n# comment\nmasq:x:998:alice,bob\nbroken\n";
        assert_eq!(gid_in_etc_group(text, "masq"), Some(998));
        assert_eq!(gid_in_etc_group(text, "root"), Some(0));
        assert_eq!(gid_in_etc_group(text, "nobody"), None);
        assert_eq!(gid_in_etc_group(text, "broken"), None);
        assert_eq!(resolve_group("1234").unwrap(), 1234);
        assert!(matches!(resolve_group("no-such-group-xyz"), Err(ServerError::UnknownGroup { .. })));
    }

    /// A scratch directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("masq-server-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_symlink_in_place_of_the_socket_is_never_followed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = Scratch::new("link");
        let victim = dir.0.join("victim");
        fs::write(&victim, "keep").unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
        let before = fs::metadata(&victim).unwrap();
        let link = dir.0.join("masqd.sock");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        // Something swapped the socket for a symlink before its group was set: refused,
        // and the file it points to keeps its mode and owner.
        let mut socket = SocketFile { path: link.clone(), identity: None, _lock: None };
        let gid = before.gid().wrapping_add(1);
        assert!(matches!(socket.restrict(Some(gid)), Err(ServerError::Replaced { .. })));
        // The chown itself never follows a link either (as root it may change the link's).
        let _ = chown_no_follow(&link, gid);
        let after = fs::metadata(&victim).unwrap();
        assert_eq!((after.mode(), after.uid(), after.gid()), (before.mode(), before.uid(), before.gid()));
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert!(fs::symlink_metadata(&link).is_ok(), "not ours: not removed");
    }

    struct Echo;

    impl Handler for Echo {
        fn handle(&self, cmd: Command) -> Result<Value, ControlError> {
            match cmd {
                Command::Version => Ok(serde_json::json!({"cmd": "version"})),
                Command::ConfigGet => Err(ControlError::internal("no config here")),
                _ => Err(ControlError::unsupported("no")),
            }
        }
    }

    #[test]
    fn respond_goes_through_parsing_and_the_handler() {
        let r = respond(&Echo, br#"{"id": 3, "cmd": "version"}"#);
        assert_eq!(r, Response::success(3.into(), serde_json::json!({"cmd": "version"})));
        let r = respond(&Echo, br#"{"id": 4, "cmd": "config.get"}"#);
        assert_eq!(r.outcome.unwrap_err().code, ErrorCode::Internal);
        let r = respond(&Echo, br#"{"id": 5, "cmd": "nope"}"#);
        assert_eq!((r.id, r.outcome.unwrap_err().code), (5.into(), ErrorCode::UnknownCommand));
        let r = respond(&Echo, b"\xff");
        assert_eq!((r.id, r.outcome.unwrap_err().code), (Value::Null, ErrorCode::BadJson));
    }
}
