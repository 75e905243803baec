//! masq's control plane.
//!
//! The request/response protocol spoken over masqd's Unix control socket, the server that
//! answers it, and the `masqctl` command-line client. See `docs/control-protocol.md`.
#![deny(unsafe_code)]
