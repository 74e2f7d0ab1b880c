//! A model file of arbitrary bytes: `Model::from_bytes` refuses it with a
//! format or I/O error (the checksum catches nearly every change), or loads
//! a model; never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = nof1::Model::from_bytes(data, Path::new("fuzz.nof1")) {
        assert!(e.to_string().starts_with("fuzz.nof1"), "{e}");
    }
});
