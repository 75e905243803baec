//! Errors: the stable codes of the protocol and the error object of a failed response.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a request failed. Serialized as a stable snake_case name; names not known to this
/// build (a newer server) are kept in [`ErrorCode::Unknown`] rather than failing to parse.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The line is not valid JSON (or not UTF-8).
    BadJson,
    /// Valid JSON but not a request: not an object, `cmd` missing or not a string, or a
    /// top-level field other than `id`, `cmd`, `args`.
    BadRequest,
    /// The request line exceeds [`MAX_REQUEST_BYTES`](super::MAX_REQUEST_BYTES). The rest of that line is discarded
    /// and the connection keeps serving.
    TooLarge,
    /// The stream ended in the middle of a line (no newline before end of file).
    Truncated,
    /// The client took too long to finish a request line; the connection is closed.
    Timeout,
    /// The server already serves its maximum number of clients; the connection is closed.
    Busy,
    /// `cmd` names no command.
    UnknownCommand,
    /// An argument is missing, unknown, of the wrong type or out of range; `field` names it.
    BadArgs,
    /// The command names something that does not exist (table, chain, rule number, rule).
    NotFound,
    /// The command contradicts the current state (e.g. restoring a rule set that does not
    /// compile, setting a policy on a user chain).
    Conflict,
    /// The server understands the command but does not implement it (yet).
    Unsupported,
    /// The server failed; not the client's fault.
    Internal,
    /// A code this build does not know, kept verbatim.
    Unknown(String),
}

impl ErrorCode {
    /// Every code this build knows (not [`ErrorCode::Unknown`]), in documentation order.
    pub const KNOWN: &'static [ErrorCode] = &[
        ErrorCode::BadJson,
        ErrorCode::BadRequest,
        ErrorCode::TooLarge,
        ErrorCode::Truncated,
        ErrorCode::Timeout,
        ErrorCode::Busy,
        ErrorCode::UnknownCommand,
        ErrorCode::BadArgs,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Unsupported,
        ErrorCode::Internal,
    ];

    /// The stable snake_case name used on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::Truncated => "truncated",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Busy => "busy",
            ErrorCode::UnknownCommand => "unknown_command",
            ErrorCode::BadArgs => "bad_args",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown(name) => name,
        }
    }

    /// The code named `name`; unknown names give [`ErrorCode::Unknown`].
    pub fn from_name(name: &str) -> ErrorCode {
        ErrorCode::KNOWN.iter().find(|c| c.as_str() == name).cloned().unwrap_or_else(|| ErrorCode::Unknown(name.into()))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(ErrorCode::from_name(&name))
    }
}

/// A failed request: the `error` object of a response, and what a [`crate::Handler`]
/// returns to refuse a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// One line for a person; names the offending field or object.
    pub message: String,
    /// For `bad_args`: the argument at fault (`"udp"`, `"spec[2]"`, `"args"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ControlError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ControlError {
        ControlError { code, message: message.into(), field: None }
    }

    /// `bad_args` about `field`.
    pub fn bad_args(field: impl Into<String>, message: impl Into<String>) -> ControlError {
        ControlError { code: ErrorCode::BadArgs, message: message.into(), field: Some(field.into()) }
    }

    /// `not_found`.
    pub fn not_found(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::NotFound, message)
    }

    /// `conflict`.
    pub fn conflict(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::Conflict, message)
    }

    /// `unsupported`.
    pub fn unsupported(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::Unsupported, message)
    }

    /// `internal`.
    pub fn internal(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::Internal, message)
    }
}

impl From<serde_json::Error> for ControlError {
    /// A result that would not serialize is the server's fault.
    fn from(e: serde_json::Error) -> ControlError {
        ControlError::internal(format!("cannot encode result: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_have_stable_names() {
        let names: Vec<&str> = ErrorCode::KNOWN.iter().map(ErrorCode::as_str).collect();
        assert_eq!(
            names,
            [
                "bad_json",
                "bad_request",
                "too_large",
                "truncated",
                "timeout",
                "busy",
                "unknown_command",
                "bad_args",
                "not_found",
                "conflict",
                "unsupported",
                "internal"
            ]
        );
        for code in ErrorCode::KNOWN {
            assert_eq!(&ErrorCode::from_name(code.as_str()), code);
        }
    }
}
