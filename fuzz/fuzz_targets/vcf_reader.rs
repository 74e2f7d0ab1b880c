//! The VCF reader on arbitrary bytes (plain, gzip or BGZF; the first byte
//! picks GT or DS): genotypes of consistent shape, or an error naming the
//! file and a line that exists; never a panic.
//! The checks are in `fuzz/checks.rs`, shared with the test suite's replay
//! of `fuzz/regressions/vcf_reader/`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::vcf_reader(data));
