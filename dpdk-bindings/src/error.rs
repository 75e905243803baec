//! The one error type of the crate.
//!
//! DPDK reports failures either as a negative return code (`-EINVAL`) or as
//! `NULL`/`-1` plus `rte_errno`. Both end up in [`Error::Rte`] with the
//! positive errno value and DPDK's own text for it (`rte_strerror`), which
//! also knows DPDK's private codes (`E_RTE_SECONDARY`, `E_RTE_NO_CONFIG`).
//!
//! Errors are for the control path (setup, configuration, statistics). The
//! fast path (`rx_burst`, `tx_burst`, ring bursts) returns counts, never
//! errors.

use std::ffi::CStr;

use dpdk_sys as sys;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the safe layer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A DPDK call failed. `errno` is positive (`libc::EINVAL`, ...).
    #[error("{op}: {text} (errno {errno})")]
    Rte {
        /// The DPDK function that failed, e.g. `"rte_eth_dev_configure"`.
        op: &'static str,
        /// Positive errno value (from `rte_errno` or a negative return code).
        errno: i32,
        /// `rte_strerror(errno)`.
        text: String,
    },
    /// `Eal::init` was already called in this process (EAL initialises
    /// once per process, even after `rte_eal_cleanup`).
    #[error("the EAL was already initialised in this process")]
    AlreadyInitialized,
    /// The EAL is not running (never initialised, or already cleaned up).
    #[error("the EAL is not initialised")]
    NotInitialized,
    /// An argument was rejected before reaching DPDK.
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// The object is in use: e.g. a port whose queues are handed out, or a
    /// port already claimed by another `Port` handle.
    #[error("busy: {0}")]
    Busy(&'static str),
    /// A length or count beyond what the buffer or object can hold.
    #[error("{what}: {requested} is more than the maximum {max}")]
    OutOfRange {
        /// Which quantity.
        what: &'static str,
        /// What was asked for.
        requested: usize,
        /// The most that is allowed.
        max: usize,
    },
    /// The operation supports single-segment mbufs only.
    #[error("multi-segment mbufs are not supported by this operation")]
    MultiSegment,
}

impl Error {
    /// Build an [`Error::Rte`] from a DPDK error number (sign ignored).
    pub fn rte(op: &'static str, errno: i32) -> Self {
        let errno = errno.saturating_abs();
        Error::Rte { op, errno, text: strerror(errno) }
    }

    /// Build an [`Error::Rte`] from the calling thread's `rte_errno`.
    pub fn from_rte_errno(op: &'static str) -> Self {
        Error::rte(op, rte_errno())
    }

    /// The errno value, for [`Error::Rte`].
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Rte { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

/// Map a DPDK return code (`0` or positive success value, negative errno on
/// failure) to a `Result`.
pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32> {
    if ret < 0 {
        Err(Error::rte(op, ret))
    } else {
        Ok(ret)
    }
}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int through the C shim (the Rust-side
    // binding of the TLS variable is blocklisted because it segfaults).
    unsafe { sys::shim_rte_errno() }
}

/// DPDK's text for an errno value (`rte_strerror`).
pub fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror accepts any int and returns a pointer to a
    // NUL-terminated string, either static or in a thread-local buffer that
    // stays valid until the next call on this thread; we copy it at once.
    unsafe {
        let p = sys::rte_strerror(errno);
        if p.is_null() {
            return format!("error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
