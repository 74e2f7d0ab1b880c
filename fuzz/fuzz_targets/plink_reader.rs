//! The PLINK 1 reader on an arbitrary `.fam`, `.bim` and `.bed` (split at the
//! first two NUL bytes): genotypes of consistent shape, or an error naming
//! the file (and line) at fault; never a panic.
//! The checks are in `fuzz/checks.rs`, shared with the test suite's replay
//! of `fuzz/regressions/plink_reader/`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::plink_reader(data));
