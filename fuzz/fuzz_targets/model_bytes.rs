//! A model file of arbitrary bytes: `Model::from_bytes` refuses it with a
//! format or I/O error (the checksum catches nearly every change), or loads
//! a model; never a panic.
//! The checks are in `fuzz/checks.rs`, shared with the test suite's replay
//! of `fuzz/regressions/model_bytes/`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::model_bytes(data));
