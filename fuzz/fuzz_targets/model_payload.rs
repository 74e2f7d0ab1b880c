//! A model payload of arbitrary bytes behind a valid header and checksum,
//! so the decoder and every structural check see the input (the checksum
//! no longer stops it). A payload that loads must assess patients without
//! panicking. The corpus is seeded with the payloads of real models
//! (`fuzz/regressions/model_payload/`).
//! The checks are in `fuzz/checks.rs`, shared with the test suite's replay
//! of `fuzz/regressions/model_payload/`.
#![no_main]

#[path = "../checks.rs"]
#[allow(dead_code)]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::model_payload(data));
