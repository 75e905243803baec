//! Time stamp counter and prefetch: safe from any thread, EAL or not.

use dpdk_sys as sys;

/// Read the time stamp counter (`rte_rdtsc`).
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the TSC; no memory access.
    unsafe { sys::shim_rte_rdtsc() }
}

/// TSC ticks per second (`rte_get_tsc_hz`); 0 before the EAL is initialised.
pub fn tsc_hz() -> u64 {
    // SAFETY: returns a value EAL measured at init (0 before).
    unsafe { sys::rte_get_tsc_hz() }
}

/// Hint the CPU to load the cache line holding `ptr` into all cache levels
/// (`rte_prefetch0`). Never faults, whatever the address, so it is safe.
#[inline]
pub fn prefetch0<T>(ptr: *const T) {
    // SAFETY: a prefetch instruction never dereferences architecturally:
    // invalid addresses are ignored, nothing is read into Rust.
    unsafe { sys::shim_rte_prefetch0(ptr.cast()) }
}

/// Spin-loop hint (`rte_pause`).
#[inline]
pub fn pause() {
    // SAFETY: a PAUSE instruction.
    unsafe { sys::shim_rte_pause() }
}
