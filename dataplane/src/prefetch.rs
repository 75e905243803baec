//! Software prefetch for the sans-I/O core (the DPDK layer has its own). The one
//! `unsafe` block of this crate: the SSE prefetch instruction only hints the cache.
//! Elsewhere than x86_64 it is a no-op.

/// Start loading the cache line holding `*r` into every cache level.
#[inline(always)]
pub fn read<T>(r: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use core::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: SSE is part of the x86_64 baseline, so the instruction exists; a
        // prefetch never faults and reads nothing the program sees, and `r` is a valid
        // reference anyway.
        #[allow(unsafe_code)]
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>((r as *const T).cast::<i8>())
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = r;
}
