//! See `dataplane_fuzz::helper_parsers`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataplane_fuzz::helper_parsers(data));
