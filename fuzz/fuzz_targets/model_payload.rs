//! A model payload of arbitrary bytes behind a valid header and checksum,
//! so the decoder and every structural check see the input (the checksum
//! no longer stops it). A payload that loads must assess patients without
//! panicking. Seed the corpus with the payloads of real models
//! (`fuzz/regressions/model_payload/`, from `fixtures/`).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nof1::model::format::{FORMAT_VERSION, HEADER_LEN, MAGIC};

/// A version-3 container around `payload`, with its length and CRC.
fn container(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[..20]);
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fuzz_target!(|data: &[u8]| {
    let bytes = container(data);
    match nof1::Model::from_bytes(&bytes, Path::new("fuzz.nof1")) {
        Err(e) => assert!(e.to_string().starts_with("fuzz.nof1"), "{e}"),
        Ok(model) => {
            // Assess a few patients over the model's own features.
            let p = model.features().len();
            if p == 0 || p > 10_000 {
                return;
            }
            let mut text = String::from("id");
            for f in model.features() {
                text.push(',');
                text.push_str(&f.replace([',', '"', '\n', '\r'], "_"));
            }
            text.push('\n');
            for (i, v) in [0.0, 1.0, -3.5, 1e6].iter().enumerate() {
                text.push_str(&format!("p{i}"));
                for _ in 0..p {
                    text.push_str(&format!(",{v}"));
                }
                text.push('\n');
            }
            let opts = nof1::TableOptions::default();
            if let Ok(table) =
                nof1::table::read_table_str(&text, Path::new("p.csv"), &opts, nof1::Role::Patients)
            {
                let _ = model.assess(&table);
            }
        }
    }
});
