//! Model files written by earlier nof1 builds. Files of format versions 1–4
//! were calibrated without the guarantee of docs/method.md §7 (calibration
//! members and patients were scored by different models) and are refused
//! with a message that names their version and says to refit; files of
//! version 5 (before the channel section of version 6) and of version 6
//! (before the plain arrays of version 7) are kept with the outputs they
//! gave, and must keep giving them. See `fixtures/versions/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::path::{Path, PathBuf};
use std::process::Command;

use nof1::model::Model;
use nof1::model::format::{FORMAT_VERSION, OLDEST_READABLE_VERSION, decode_container};

/// A file under `fixtures/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
        .join(name)
}

/// Model files written by earlier builds, with their format version.
const REFUSED: &[(&str, u32)] = &[
    ("versions/exact-v1.nof1", 1),
    ("versions/hnsw-v1.nof1", 1),
    ("small/hnsw-v2.nof1", 2),
    ("versions/exact-v3.nof1", 3),
    ("versions/hnsw-v3.nof1", 3),
    ("versions/kdtree-v3.nof1", 3),
    ("versions/exact-v4.nof1", 4),
];

/// The library refuses each earlier file with a format error naming its
/// version and saying to refit, and the header says the same version.
#[test]
fn earlier_versions_are_refused_by_the_library_naming_the_version() {
    // Version 6 added the channel section, version 7 the plain arrays;
    // version 5 and 6 files are still read.
    assert_eq!((OLDEST_READABLE_VERSION, FORMAT_VERSION), (5, 7));
    for &(name, version) in REFUSED {
        let path = fixture(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        let stored = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        assert_eq!(stored, version, "{name}: header version");
        let err = Model::load(&path).expect_err(name);
        assert!(
            matches!(err.kind(), nof1::ErrorKind::Format { .. }),
            "{name}: {err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("model format version {version}")) && msg.contains("refit"),
            "{name}: {msg}"
        );
    }
}

/// Through the CLI: `assess` exits 2 with the same message on standard
/// error and leaves no output file.
#[test]
fn earlier_versions_are_refused_by_assess_with_exit_code_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    for &(name, version) in REFUSED {
        let out_path = dir.path().join("out.csv");
        let out = Command::new(env!("CARGO_BIN_EXE_nof1"))
            .args(["assess", "-q", "--input"])
            .arg(fixture("small/patients.csv"))
            .arg("--model")
            .arg(fixture(name))
            .arg("--out")
            .arg(&out_path)
            .output()
            .expect("run nof1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("model format version {version}")) && stderr.contains("refit"),
            "{name}: {stderr}"
        );
        assert!(!out_path.exists(), "{name}: an output was written");
    }
}

// ------------------------------------------------ stored files and outputs

/// A model file written by an earlier build, with the output that build gave
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
        model: "exact-v5.nof1",
        version: 5,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "exact-v5.expected.csv",
    },
    Stored {
        model: "hnsw-v5.nof1",
        version: 5,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "hnsw-v5.expected.csv",
    },
    Stored {
        model: "kdtree-v5.nof1",
        version: 5,
        patients: "grouped-patients.csv",
        extra: &["--group-col", "site"],
        expected: "kdtree-v5.expected.csv",
    },
    Stored {
        model: "kdtree-v5.nof1",
        version: 5,
        patients: "grouped-patients.csv",
        extra: &["--group-col", "site"],
        expected: "kdtree-v5.expected.jsonl",
    },
    Stored {
        model: "exact-v6.nof1",
        version: 6,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "exact-v6.expected.csv",
    },
    Stored {
        model: "hnsw-v6.nof1",
        version: 6,
        patients: "../small/patients.csv",
        extra: &[],
        expected: "hnsw-v6.expected.csv",
    },
    Stored {
        model: "kdtree-v6.nof1",
        version: 6,
        patients: "grouped-patients.csv",
        extra: &["--group-col", "site"],
        expected: "kdtree-v6.expected.csv",
    },
    Stored {
        model: "kdtree-v6.nof1",
        version: 6,
        patients: "grouped-patients.csv",
        extra: &["--group-col", "site"],
        expected: "kdtree-v6.expected.jsonl",
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

/// Model files of the current format version (an exact one with a scan, an
/// exact one with a stored k-d tree and Mondrian groups, an HNSW one) load,
/// and today's `assess` gives the outputs stored
/// with them. A deliberate change of scores regenerates the `*.expected.*`
/// files (README in the fixture directory); the model files stay.
#[test]
fn stored_models_of_the_current_version_assess_as_they_did() {
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
/// loads to the same model data and the same bytes again.
#[test]
fn stored_models_round_trip_in_the_current_version() {
    for s in STORED {
        let path = versions(s.model);
        let loaded = Model::load(&path).unwrap_or_else(|e| panic!("{}: {e}", s.model));
        let saved = loaded.to_bytes().expect("encode");
        let c = decode_container(&saved, &path).expect("decode");
        assert_eq!(c.version, FORMAT_VERSION);
        let again = Model::from_bytes(&saved, &path).expect("reload");
        assert!(again.data() == loaded.data(), "{}: data changed", s.model);
        assert_eq!(again.to_bytes().expect("encode"), saved, "{}", s.model);
    }
}
