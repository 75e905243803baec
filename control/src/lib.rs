//! masq's control plane.
//!
//! The request/response protocol spoken over masqd's Unix control socket ([`protocol`]),
//! the server that answers it ([`server`]: masqd implements [`Handler`]), the client that
//! speaks it ([`client`]), and the `masqctl` command line on top ([`cli`] turns iptables'
//! syntax into commands, [`format`](mod@format) prints results). See `docs/control-protocol.md`.
//! [`metrics`] serves the same statistics to Prometheus over HTTP.
//!
//! This crate knows nothing of the rule grammar or of the NAT: rule specifications travel
//! as argv tokens and `iptables-save` text, and the dataplane (which depends on this crate,
//! never the reverse) parses them.
#![deny(unsafe_code)]

pub mod cli;
pub mod client;
pub mod format;
pub mod manual;
pub mod metrics;
pub mod protocol;
pub mod server;

pub use client::{Client, ClientError};
pub use protocol::{Command, ControlError, ErrorCode, Request, Response};
pub use server::{Handler, Server, ServerError, ServerHandle, ServerOptions};

/// An I/O error's reason without the " (os error N)" suffix, for one-line messages.
pub(crate) fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}
