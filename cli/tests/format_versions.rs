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

// ------------------------------------------------ stored files and outputs

/// A model file written by an earlier nof1, with the output that nof1 gave
/// (`fixtures/versions/README.md` says which commit and command).
struct Stored {
    model: &'static str,
    version: u32,
    patients: &'static str,
    extra: &'static [&'static str],
    expected: &'static str,
}

const STORED: &[Stored] = &[
    Stored {
        model: "exact-v1.nof1",
        version: 1,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "exact-v1.expected.csv",
    },
    Stored {
        model: "hnsw-v1.nof1",
        version: 1,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "hnsw-v1.expected.csv",
    },
    Stored {
        model: "exact-v3.nof1",
        version: 3,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "exact-v3.expected.csv",
    },
    Stored {
        model: "hnsw-v3.nof1",
        version: 3,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "hnsw-v3.expected.csv",
    },
    Stored {
        model: "kdtree-v3.nof1",
        version: 3,
        patients: "grouped-patients.csv",
        extra: &["--group-col", "site"],
        expected: "kdtree-v3.expected.csv",
    },
    Stored {
        model: "kdtree-v3.nof1",
        version: 3,
        patients: "grouped-patients.csv",
        extra: &["--group-col", "site"],
        expected: "kdtree-v3.expected.jsonl",
    },
];

fn versions(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures/versions")
        .join(name)
}

/// Runs today's `nof1 assess` on a stored model; returns its output.
fn assess_stored(s: &Stored) -> Vec<u8> {
    let format = if s.expected.ends_with(".jsonl") {
        "jsonl"
    } else {
        "csv"
    };
    let out = Command::new(env!("CARGO_BIN_EXE_nof1"))
        .args(["assess", "-q", "--out", "-", "--format", format, "--input"])
        .arg(versions(s.patients))
        .arg("--model")
        .arg(versions(s.model))
        .args(s.extra)
        .output()
        .expect("run nof1");
    assert!(
        out.status.success(),
        "{}: {}",
        s.model,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Two cells agree: equal text, or numbers within 1e-9 (relative).
fn same_cell(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
        _ => false,
    }
}

/// Every column of the stored CSV is in today's output with the same cells
/// (today's output may add columns: a new column is not a regression).
fn compare_csv(name: &str, want: &[u8], got: &[u8]) {
    let parse = |b: &[u8]| {
        let mut r = csv::Reader::from_reader(b);
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<Vec<String>> = r
            .records()
            .map(|x| x.unwrap().iter().map(String::from).collect())
            .collect();
        (header, rows)
    };
    let (wh, wr) = parse(want);
    let (gh, gr) = parse(got);
    assert_eq!(wr.len(), gr.len(), "{name}: row count");
    for (wc, col) in wh.iter().enumerate() {
        let gc = gh
            .iter()
            .position(|h| h == col)
            .unwrap_or_else(|| panic!("{name}: column {col} is gone"));
        for (w, g) in wr.iter().zip(&gr) {
            assert!(
                same_cell(&w[wc], &g[gc]),
                "{name}: row {} column {col}: stored {:?}, now {:?}",
                w[0],
                w[wc],
                g[gc]
            );
        }
    }
}

/// The same for JSON Lines: every stored key, recursively, with equal values.
fn compare_json(name: &str, path: &str, want: &serde_json::Value, got: &serde_json::Value) {
    use serde_json::Value;
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let gv = g
                    .get(k)
                    .unwrap_or_else(|| panic!("{name}: {path}.{k} is gone"));
                compare_json(name, &format!("{path}.{k}"), wv, gv);
            }
        }
        (Value::Array(w), Value::Array(g)) => {
            assert_eq!(w.len(), g.len(), "{name}: {path} length");
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                compare_json(name, &format!("{path}[{i}]"), wv, gv);
            }
        }
        (Value::Number(w), Value::Number(g)) => {
            let (x, y) = (w.as_f64().unwrap(), g.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                "{name}: {path}: stored {x}, now {y}"
            );
        }
        _ => assert_eq!(want, got, "{name}: {path}"),
    }
}

/// Model files written by earlier nof1 versions (an exact one with a scan, an
/// exact one with a stored k-d tree and Mondrian groups, an HNSW one; format
/// versions 1 and 3) load, and today's `assess` gives the outputs stored
/// with them. A deliberate change of scores regenerates the `*.expected.*`
/// files (README in the fixture directory); the model files stay.
#[test]
fn stored_models_of_earlier_versions_assess_as_they_did() {
    for s in STORED {
        let path = versions(s.model);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", s.model));
        let c = decode_container(&bytes, &path).expect("decode");
        assert_eq!(c.version, s.version, "{}", s.model);
        let got = assess_stored(s);
        let want = std::fs::read(versions(s.expected)).expect("stored output");
        if s.expected.ends_with(".jsonl") {
            let lines = |b: &[u8]| -> Vec<serde_json::Value> {
                String::from_utf8(b.to_vec())
                    .unwrap()
                    .lines()
                    .map(|l| serde_json::from_str(l).unwrap())
                    .collect()
            };
            let (w, g) = (lines(&want), lines(&got));
            assert_eq!(w.len(), g.len(), "{}: line count", s.expected);
            for (i, (w, g)) in w.iter().zip(&g).enumerate() {
                compare_json(s.expected, &format!("line {}", i + 1), w, g);
            }
        } else {
            compare_csv(s.expected, &want, &got);
        }
    }
}

/// Loading a stored file and saving it writes the current version, which
/// loads to the same model data.
#[test]
fn stored_models_upgrade_to_the_current_version() {
    for s in STORED {
        let path = versions(s.model);
        let loaded = Model::load(&path).unwrap_or_else(|e| panic!("{}: {e}", s.model));
        let saved = loaded.to_bytes().expect("encode");
        let c = decode_container(&saved, &path).expect("decode");
        assert_eq!(c.version, FORMAT_VERSION);
        let again = Model::from_bytes(&saved, &path).expect("reload");
        if s.version > 1 {
            assert!(again.data() == loaded.data(), "{}: data changed", s.model);
        }
        assert_eq!(again.to_bytes().expect("encode"), saved, "{}", s.model);
    }
}
