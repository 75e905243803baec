//! See `dataplane_fuzz::frames`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataplane_fuzz::frames(data));
