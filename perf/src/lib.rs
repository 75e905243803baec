//! masq's benchmark harness (`masq-bench`) and microbenchmarks.
#![deny(unsafe_code)]
