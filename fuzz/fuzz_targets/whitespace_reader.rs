//! The whitespace-delimited table reader (plink2 `.eigenvec`, FRAPOSA
//! `.pcs`) on arbitrary text, both roles, strict and lenient (the first byte
//! picks): a table of consistent shape or an error naming the file and a
//! line that exists; never a panic.
//! The checks are in `fuzz/checks.rs`, shared with the test suite's replay
//! of `fuzz/regressions/whitespace_reader/`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::whitespace_reader(data));
