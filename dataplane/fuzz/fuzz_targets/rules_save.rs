//! See `dataplane_fuzz::rules_save`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataplane_fuzz::rules_save(data));
