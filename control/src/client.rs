//! A blocking client for the control socket: what masqctl and the tests speak through.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::io_reason;
use crate::protocol::{Command, ControlError, Request, Response};

/// How long a request may take before the client gives up, unless changed.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a request got no result.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answers on the socket (masqd not running, wrong path, no permission).
    #[error("cannot connect to {}: {}", path.display(), io_reason(source))]
    Connect { path: PathBuf, source: io::Error },
    /// The connection failed or timed out mid-request.
    #[error("talking to masqd on {}: {}", path.display(), io_reason(source))]
    Io { path: PathBuf, source: io::Error },
    /// The server closed the connection without answering.
    #[error("masqd closed the connection without answering")]
    Closed,
    /// The server's answer is not a response to this request.
    #[error("malformed response from masqd: {0}")]
    BadResponse(String),
    /// The server answered with an error.
    #[error(transparent)]
    Server(#[from] ControlError),
}

/// One connection to masqd; requests go one at a time, in order.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connect to the socket at `path`, with [`DEFAULT_TIMEOUT`].
    pub fn connect(path: impl AsRef<Path>) -> Result<Client, ClientError> {
        let path = path.as_ref().to_path_buf();
        let connect = || -> io::Result<(UnixStream, UnixStream)> {
            let stream = UnixStream::connect(&path)?;
            stream.set_read_timeout(Some(DEFAULT_TIMEOUT))?;
            stream.set_write_timeout(Some(DEFAULT_TIMEOUT))?;
            Ok((stream.try_clone()?, stream))
        };
        let (read_half, writer) = connect().map_err(|source| ClientError::Connect { path: path.clone(), source })?;
        Ok(Client { path, reader: BufReader::new(read_half), writer, next_id: 1 })
    }

    /// The socket this client talks to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long to wait for the server to take a request or answer it (`None`: forever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> Result<(), ClientError> {
        self.writer
            .set_read_timeout(timeout)
            .and_then(|()| self.writer.set_write_timeout(timeout))
            .map_err(|e| self.io_error(e))
    }

    /// Send `cmd` with `args` (an object, or `null`) and wait for its result.
    pub fn request(&mut self, cmd: &str, args: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let request = Request { id: id.into(), cmd: cmd.to_string(), args };
        let line = serde_json::to_string(&request).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let answer = self.raw(&line)?;
        let response: Response =
            serde_json::from_str(&answer).map_err(|e| ClientError::BadResponse(format!("{e}: {answer}")))?;
        if response.id != id {
            return match (response.id, response.outcome) {
                // Errors the server sends before reading a request (`busy`) carry no id.
                (Value::Null, Err(error)) => Err(ClientError::Server(error)),
                (other, _) => {
                    Err(ClientError::BadResponse(format!("answer to request {other} arrived for request {id}")))
                }
            };
        }
        Ok(response.outcome?)
    }

    /// Send a typed command and wait for its result.
    pub fn call(&mut self, command: &Command) -> Result<Value, ClientError> {
        self.request(command.name(), command.args())
    }

    /// [`Client::call`], and for `sessions.count` and `sessions.flush`, which masqd may cut
    /// short at its deadline with a `next_cursor`, the same command again from each cursor
    /// until done: one result with the counts added up (`{"count": N}`, `{"flushed": N}`).
    pub fn call_to_end(&mut self, command: &Command) -> Result<Value, ClientError> {
        let key = match command {
            Command::SessionsCount { .. } => "count",
            Command::SessionsFlush { .. } => "flushed",
            other => return self.call(other),
        };
        let mut command = command.clone();
        let mut total = 0u64;
        loop {
            let result = self.call(&command)?;
            total += result.get(key).and_then(Value::as_u64).ok_or_else(|| {
                ClientError::BadResponse(format!("{} result without a number `{key}`: {result}", command.name()))
            })?;
            let next = match result.get("next_cursor") {
                None | Some(Value::Null) => return Ok(serde_json::json!({ key: total })),
                Some(Value::String(next)) => next.clone(),
                Some(other) => return Err(ClientError::BadResponse(format!("`next_cursor` is not a string: {other}"))),
            };
            if let Command::SessionsCount { cursor, .. } | Command::SessionsFlush { cursor, .. } = &mut command {
                if cursor.as_deref() == Some(next.as_str()) {
                    return Err(ClientError::BadResponse(format!("masqd returned the cursor {next:?} twice")));
                }
                *cursor = Some(next);
            }
        }
    }

    /// [`Client::call`], decoding the result as `T`.
    pub fn call_as<T: DeserializeOwned>(&mut self, command: &Command) -> Result<T, ClientError> {
        let value = self.call(command)?;
        serde_json::from_value(value).map_err(|e| ClientError::BadResponse(format!("{} result: {e}", command.name())))
    }

    /// Send one raw request line (no newline) and return the raw response line, unparsed.
    pub fn raw(&mut self, line: &str) -> Result<String, ClientError> {
        let mut out = Vec::with_capacity(line.len() + 1);
        out.extend_from_slice(line.as_bytes());
        out.push(b'\n');
        let sent = match self.writer.write_all(&out) {
            Err(e) if !matches!(e.kind(), io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset) => {
                return Err(self.io_error(e))
            }
            sent => sent,
        };
        let mut answer = String::new();
        let read = self.reader.read_line(&mut answer);
        match (sent, read) {
            // A server that hung up on us may have said why first (`busy`): that line wins.
            (_, Ok(_)) if answer.ends_with('\n') => {
                answer.pop();
                Ok(answer)
            }
            (Err(e), _) => Err(self.io_error(e)),
            (Ok(()), Ok(_)) => Err(ClientError::Closed),
            (Ok(()), Err(e)) => Err(self.io_error(e)),
        }
    }

    fn io_error(&self, source: io::Error) -> ClientError {
        ClientError::Io { path: self.path.clone(), source }
    }
}
