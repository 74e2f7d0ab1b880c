//! The table reader on arbitrary bytes, both roles, strict and lenient, with
//! and without a group column (the first byte picks): `Ok` rows of consistent
//! shape or an error that names the file; never a panic.
//! The checks are in `fuzz/checks.rs`, shared with the test suite's replay
//! of `fuzz/regressions/table_reader/`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::table_reader(data));
