//! Model files of earlier format versions still load and assess like the
//! current version. `fixtures/small/hnsw-v2.nof1` was written by nof1 before
//! format version 3 (an HNSW model of `fixtures/small/reference.csv`, graph
//! section in hnsw_rs's records); see `fixtures/small/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::path::{Path, PathBuf};
use std::process::Command;

use nof1::model::Model;
use nof1::model::format::{FORMAT_VERSION, decode_container, encode};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures/small")
        .join(name)
}

/// Runs `nof1 assess` and returns its CSV output.
fn assess(model: &Path) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_nof1"))
        .args(["assess", "-q", "--out", "-", "--input"])
        .arg(fixture("patients.csv"))
        .arg("--model")
        .arg(model)
        .output()
        .expect("run nof1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The version-2 graph section is converted to the same graph the model's
/// embeddings build now: saving the loaded model gives, byte for byte, the
/// model whose graph is rebuilt from its data.
#[test]
fn version_2_hnsw_fixture_converts_to_the_graph_built_now() {
    let path = fixture("hnsw-v2.nof1");
    let bytes = std::fs::read(&path).expect("fixture");
    let c = decode_container(&bytes, &path).expect("decode");
    assert_eq!(c.version, 2);
    assert!(c.graph_len().is_some(), "the fixture stores its graph");
    let loaded = Model::load(&path).expect("load");
    let saved = loaded.to_bytes().expect("encode");
    let rebuilt = Model::from_bytes(&encode(loaded.data()).expect("encode"), &path)
        .expect("rebuild")
        .to_bytes()
        .expect("encode");
    assert!(
        saved == rebuilt,
        "the converted graph differs from the rebuilt one"
    );
    let c = decode_container(&saved, &path).expect("decode");
    assert_eq!(c.version, FORMAT_VERSION);
    assert!(c.graph_len().is_some());
}

/// `assess` gives the same output with the version-2 file and with the same
/// model saved in the current version.
#[test]
fn version_2_hnsw_fixture_assesses_like_the_current_version() {
    let path = fixture("hnsw-v2.nof1");
    let dir = tempfile::tempdir().expect("temp dir");
    let current = dir.path().join("m.nof1");
    Model::load(&path)
        .expect("load")
        .save(&current)
        .expect("save");
    let old = assess(&path);
    assert!(old.len() > 500);
    assert!(old == assess(&current), "outputs differ");
}
