//! Replays every input under `tests/fuzz_regressions/<target>/` through the very harness the
//! cargo-fuzz target of that name runs (`fuzz/harness.rs`): inputs that once crashed, and a
//! few nasty seeds. Add a crashing input from `fuzz/artifacts/<target>/` here when fixing it.
#![allow(clippy::unwrap_used)]

#[path = "../../../fuzz/harness.rs"]
mod harness;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_regressions")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no inputs in {}", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let bytes = std::fs::read(path).unwrap();
            catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target} fails on: {failed:#?}");
}

#[test]
fn decode_inputs() {
    replay("decode", harness::decode);
}

#[test]
fn h2_inputs() {
    replay("h2", harness::h2);
}

#[test]
fn http_engine_inputs() {
    replay("http_engine", harness::http_engine);
}

#[test]
fn eventlog_inputs() {
    replay("eventlog", harness::eventlog);
}
