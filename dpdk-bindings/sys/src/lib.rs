//! Raw bindings to DPDK 22.11 as packaged by Debian (`libdpdk-dev`).
//!
//! Generated at build time by bindgen from `wrapper.h` into `OUT_DIR` (never
//! checked in), plus `shim_*` functions from `src/shim.c`: out-of-line copies
//! of DPDK's static-inline fast-path functions (rx/tx burst, mbuf alloc/free,
//! rdtsc, `rte_lcore_id()`, `rte_errno`, ring bursts, ...).
//!
//! Everything here is `unsafe` and unchecked; use the `dpdk` crate instead.
//! Notes on the generated items:
//! - enums are newtypes (`rte_eth_rx_mq_mode::RTE_ETH_MQ_RX_RSS`), so an
//!   unknown value from C is never undefined behaviour;
//! - `RTE_MBUF_F_*`, `RTE_ETH_{RX,TX}_OFFLOAD_*` and `RTE_ETH_RSS_*` are `u64`;
//! - DPDK's thread-local variables (`per_lcore_*`) are deliberately absent:
//!   read them through `shim_rte_errno()` / `shim_rte_lcore_id()`;
//! - `rte_arp_hdr` / `rte_arp_ipv4` are opaque (their packed layout does not
//!   translate to Rust).

#[allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    improper_ctypes,
    unpredictable_function_pointer_comparisons,
    unsafe_op_in_unsafe_fn,
    clippy::all,
    clippy::pedantic,
    rustdoc::all
)]
mod bindings {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

pub use bindings::*;

/// `RTE_BIT64(63)`: bindgen's macro evaluation goes through `i64`, so the
/// one DPDK flag with bit 63 set is missing from the generated bindings.
pub const RTE_ETH_RSS_L3_SRC_ONLY: u64 = 1 << 63;
