//! The BCF reader on arbitrary bytes (plain or BGZF; the first byte picks GT
//! or DS): genotypes of consistent shape, or an error naming the file; never
//! a panic.
//! The checks are in `fuzz/checks.rs`, shared with the test suite's replay
//! of `fuzz/regressions/bcf_reader/`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::bcf_reader(data));
