//! Never lose a patient (issue 6): random patient files with random defects,
//! assessed by the real binary, give exactly one output row per input row, in
//! order, with the same ids, and verdict counts that add up. `--strict-input`
//! turns the recoverable defects into errors. Also: the table parser never
//! panics on arbitrary bytes.
//!
//! Cases are bounded for the test suite and drawn from a fixed seed; for a
//! longer run set `PROPTEST_CASES=2000 cargo test --release -p nof1-cli
//! --test never_lose`, and `PROPTEST_RNG_SEED=N` for other cases.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

#[path = "../../fuzz/checks.rs"]
#[allow(dead_code)]
mod fuzz_checks;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use harness::{OutCsv, Scratch, assert_numbers_finite, summary_counts};
use proptest::prelude::*;

const FEATURES: [&str; 5] = ["f1", "f2", "f3", "f4", "f5"];

/// One model for every case (fitted once, kept for the whole test binary).
fn model() -> &'static (Scratch, PathBuf) {
    static MODEL: OnceLock<(Scratch, PathBuf)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let s = Scratch::new();
        let m = s.small_model();
        (s, m)
    })
}

/// What goes into one cell.
#[derive(Debug, Clone)]
enum CellKind {
    Number(f64),
    Huge(bool),
    Empty,
    Na,
    NanToken,
    Text,
    Inf(bool),
}

impl CellKind {
    fn text(&self) -> String {
        match self {
            CellKind::Number(v) => format!("{v}"),
            CellKind::Huge(neg) => if *neg { "-1e308" } else { "1e308" }.into(),
            CellKind::Empty => String::new(),
            CellKind::Na => "NA".into(),
            CellKind::NanToken => "NaN".into(),
            CellKind::Text => "abc".into(),
            CellKind::Inf(neg) => if *neg { "-inf" } else { "inf" }.into(),
        }
    }

    /// A recoverable defect (noted; an error under `--strict-input`).
    fn is_defect(&self) -> bool {
        matches!(self, CellKind::Text | CellKind::Inf(_))
    }
}

fn cell() -> impl Strategy<Value = CellKind> {
    prop_oneof![
        12 => (5.0f64..15.0).prop_map(CellKind::Number),
        1 => any::<bool>().prop_map(CellKind::Huge),
        2 => Just(CellKind::Empty),
        1 => Just(CellKind::Na),
        1 => Just(CellKind::NanToken),
        2 => Just(CellKind::Text),
        1 => any::<bool>().prop_map(CellKind::Inf),
    ]
}

#[derive(Debug, Clone)]
enum IdKind {
    Plain,
    DuplicateOfPrevious,
    Empty,
    Quoted,
}

#[derive(Debug, Clone)]
enum Shape {
    Full,
    /// Drop this many trailing fields (at least one feature field stays).
    Short(usize),
    /// Append this many fields.
    Long(usize),
}

#[derive(Debug, Clone)]
struct Row {
    id: IdKind,
    cells: Vec<CellKind>,
    shape: Shape,
}

fn row() -> impl Strategy<Value = Row> {
    (
        prop_oneof![
            20 => Just(IdKind::Plain),
            2 => Just(IdKind::DuplicateOfPrevious),
            1 => Just(IdKind::Empty),
            2 => Just(IdKind::Quoted),
        ],
        proptest::collection::vec(cell(), 5),
        prop_oneof![
            12 => Just(Shape::Full),
            1 => (1usize..5).prop_map(Shape::Short),
            1 => (1usize..3).prop_map(Shape::Long),
        ],
    )
        .prop_map(|(id, cells, shape)| Row { id, cells, shape })
}

#[derive(Debug, Clone)]
struct File {
    rows: Vec<Row>,
    /// Which model features are columns of the file (at least one).
    present: Vec<bool>,
    /// Column order of the present features (a permutation key).
    order: Vec<u8>,
    extra_column: bool,
    crlf: bool,
    bom: bool,
}

fn file() -> impl Strategy<Value = File> {
    (
        proptest::collection::vec(row(), 0..40),
        proptest::collection::vec(prop_oneof![6 => Just(true), 1 => Just(false)], 5),
        proptest::collection::vec(any::<u8>(), 5),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![5 => Just(false), 1 => Just(true)],
    )
        .prop_map(|(rows, mut present, order, extra_column, crlf, bom)| {
            if !present.iter().any(|&p| p) {
                present[0] = true;
            }
            File {
                rows,
                present,
                order,
                extra_column,
                crlf,
                bom,
            }
        })
}

/// The file's bytes, the expected ids in order, and for each row whether it
/// carries a recoverable defect.
fn render(f: &File) -> (Vec<u8>, Vec<String>, Vec<bool>) {
    let mut cols: Vec<usize> = (0..5).filter(|&j| f.present[j]).collect();
    cols.sort_by_key(|&j| (f.order[j], j));
    let nl = if f.crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    let mut header: Vec<String> = vec!["id".into()];
    header.extend(cols.iter().map(|&j| FEATURES[j].to_string()));
    if f.extra_column {
        header.push("site".into());
    }
    out.push_str(&header.join(","));
    out.push_str(nl);
    let mut ids = Vec::new();
    let mut defects = Vec::new();
    for (i, r) in f.rows.iter().enumerate() {
        let (id_field, id) = match r.id {
            IdKind::Plain => (format!("p{i}"), format!("p{i}")),
            IdKind::DuplicateOfPrevious => {
                let prev = ids.last().cloned().unwrap_or_else(|| "p0".to_string());
                let field = if prev.contains(',') || prev.contains('"') {
                    format!("\"{}\"", prev.replace('"', "\"\""))
                } else {
                    prev.clone()
                };
                (field, prev)
            }
            IdKind::Empty => (String::new(), String::new()),
            IdKind::Quoted => (format!("\"p{i}, \"\"q\"\"\""), format!("p{i}, \"q\"")),
        };
        let mut fields = vec![id_field];
        fields.extend(cols.iter().map(|&j| r.cells[j].text()));
        if f.extra_column {
            fields.push("north".into());
        }
        let n_header = fields.len();
        let mut defect = id.is_empty();
        match r.shape {
            Shape::Full => {}
            Shape::Short(k) => {
                let keep = n_header.saturating_sub(k).max(2).min(n_header);
                if keep < n_header {
                    fields.truncate(keep);
                    defect = true;
                }
            }
            Shape::Long(k) => {
                fields.extend((0..k).map(|x| format!("x{x}")));
                defect = true;
            }
        }
        // Cell defects count only in the model columns the row still has.
        for (pos, &j) in cols.iter().enumerate() {
            if pos + 1 < fields.len() && r.cells[j].is_defect() {
                defect = true;
            }
        }
        out.push_str(&fields.join(","));
        out.push_str(nl);
        ids.push(id);
        defects.push(defect);
    }
    let mut bytes = Vec::new();
    if f.bom {
        bytes.extend_from_slice(b"\xef\xbb\xbf");
    }
    bytes.extend_from_slice(out.as_bytes());
    (bytes, ids, defects)
}

fn run_assess(s: &Scratch, m: &Path, input: &Path, out: &str, strict: bool) -> harness::Run {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "assess".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        out.as_ref(),
        "--id-col".as_ref(),
        "id".as_ref(),
    ];
    if strict {
        args.push("--strict-input".as_ref());
    }
    s.run(&args)
}

/// 48 cases (`PROPTEST_CASES` overrides) from a fixed runner seed unless
/// `PROPTEST_RNG_SEED` is set, so a run is reproducible; failures are kept
/// in `never_lose.proptest-regressions` beside this file and replayed first.
fn config() -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(48);
    if let Some(n) = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        c.cases = n;
    }
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = proptest::test_runner::RngSeed::Fixed(0x6e6f_6632);
    }
    c
}

/// An error from reading `bytes` as `fuzz.csv` must name that file, and any
/// line it names must exist (1-based; `\r` counted as a line break too, so
/// this is an upper bound), and it must be a parse, schema or I/O error:
/// never a numerical or internal one.
fn check_error(err: &nof1::Error, bytes: &[u8]) -> Result<(), TestCaseError> {
    let breaks = bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64;
    let msg = err.to_string();
    prop_assert!(msg.starts_with("fuzz.csv"), "{}", msg);
    match err.kind() {
        nof1::ErrorKind::Parse { position, .. } | nof1::ErrorKind::Schema { position, .. } => {
            prop_assert_eq!(position.path.as_path(), Path::new("fuzz.csv"));
            if let Some(line) = position.line {
                prop_assert!(
                    (1..=breaks + 1).contains(&line),
                    "line {} of a file with {} line break(s): {}",
                    line,
                    breaks,
                    msg
                );
            }
        }
        nof1::ErrorKind::Io { path, .. } => {
            prop_assert_eq!(path.as_path(), Path::new("fuzz.csv"));
        }
        other => prop_assert!(false, "unexpected error kind {:?}", other),
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn every_patient_gets_exactly_one_row_in_order(f in file()) {
        let (_keep, m) = model();
        let s = Scratch::new();
        let (bytes, ids, defects) = render(&f);
        let input = s.write("patients.csv", &bytes);
        let run = run_assess(&s, m, &input, "out.csv", false);
        run.ok();
        let out = OutCsv::read(&s.path("out.csv"));
        prop_assert_eq!(out.rows.len(), ids.len());
        prop_assert_eq!(out.column("id"), ids.clone());
        assert_numbers_finite(&out);
        // Verdict counts add up, and agree with the summary on stderr.
        let verdicts = out.column("verdict");
        let mut counts = [0usize; 4];
        for v in &verdicts {
            let i = ["supported", "low_support", "invisible", "insufficient_data"]
                .iter()
                .position(|x| x == v)
                .unwrap_or_else(|| panic!("unknown verdict {v}"));
            counts[i] += 1;
        }
        prop_assert_eq!(counts.iter().sum::<usize>(), ids.len());
        let (total, summary) = summary_counts(&run.stderr).expect("a summary line");
        prop_assert_eq!(total, ids.len());
        prop_assert_eq!(summary, counts);
        // A row has a note exactly when it carries a recoverable defect.
        let notes = out.column("note");
        for (i, (note, &defect)) in notes.iter().zip(&defects).enumerate() {
            prop_assert_eq!(!note.is_empty(), defect, "row {} note {:?}", i, note);
        }
        // --strict-input: an error (and no output file) iff a row is defective.
        let strict = run_assess(&s, m, &input, "strict.csv", true);
        if defects.iter().any(|&d| d) {
            strict.error(&["patients.csv:"]);
            prop_assert!(!s.path("strict.csv").exists());
        } else {
            strict.ok();
            prop_assert_eq!(OutCsv::read(&s.path("strict.csv")), out);
        }
        prop_assert!(s.leftovers().is_empty());
    }

    /// Arbitrary bytes through the table reader, both roles: `Ok` or `Err`, never a panic.
    #[test]
    fn table_parser_never_panics(
        bytes in proptest::collection::vec(
            prop_oneof![
                4 => prop::sample::select(b"0123456789.,-e\"\n\r\t aNA".to_vec()),
                1 => any::<u8>(),
            ],
            0..600,
        ),
        strict in any::<bool>(),
    ) {
        for role in [nof1::Role::Reference, nof1::Role::Patients] {
            let opts = nof1::TableOptions { strict, ..Default::default() };
            let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(bytes.clone()));
            match nof1::table::TableReader::from_reader(input, Path::new("fuzz.csv"), &opts, role) {
                Err(e) => check_error(&e, &bytes)?,
                Ok(mut reader) => {
                    let mut rows = 0usize;
                    loop {
                        match reader.next_chunk(7) {
                            Ok(Some(chunk)) => {
                                prop_assert_eq!(chunk.values().len(), chunk.n_rows() * chunk.n_features());
                                prop_assert_eq!(chunk.notes().len(), chunk.n_rows());
                                rows += chunk.n_rows();
                            }
                            Ok(None) => break,
                            Err(e) => {
                                check_error(&e, &bytes)?;
                                break;
                            }
                        }
                    }
                    prop_assert!(rows <= bytes.len());
                }
            }
        }
    }
}

fn fuzz_inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/regressions")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Every input kept in `fuzz/regressions/` (crashes the fuzzers found, once
/// fixed, and the seeds) goes through the checks of its fuzz target: the
/// same functions the fuzz targets call (`fuzz/checks.rs`). Each target has
/// at least one input.
#[test]
fn fuzz_regressions_replay() {
    let mut n = 0;
    for (target, check) in fuzz_checks::TARGETS {
        let inputs = fuzz_inputs(target);
        assert!(!inputs.is_empty(), "no regression input for {target}");
        for (name, data) in inputs {
            let result = std::panic::catch_unwind(|| check(&data));
            assert!(
                result.is_ok(),
                "fuzz/regressions/{target}/{name} breaks its check (replay: \
                 cargo test -p nof1-cli --test never_lose fuzz_regressions_replay)"
            );
            n += 1;
        }
    }
    assert!(n >= 16, "only {n} regression inputs");
}
