//! cargo-fuzz target `h2`: see harness.rs (shared with crates/httpscope-core/tests/fuzz_regressions.rs).
#![no_main]

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::h2(data));
