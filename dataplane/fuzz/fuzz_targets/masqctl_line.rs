//! See `dataplane_fuzz::masqctl_line`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dataplane_fuzz::masqctl_line(data));
