//! The bad-input matrix, run against the real `nof1` binary (issue 6).
//!
//! Every case ends either in a documented result or in a clear error (exit 2,
//! a message naming the file and, where it applies, the line, the column and
//! the value) — never a panic, never a partial output file. The table of cases
//! is in `docs/robustness.md`; each row names the test here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

use std::ffi::OsStr;
use std::path::Path;

use harness::{OutCsv, Run, Scratch, assert_numbers_finite, small_patients, small_reference};

// ---------------------------------------------------------------- helpers

fn ref_text() -> String {
    std::fs::read_to_string(small_reference()).expect("fixture reference")
}

fn pat_text() -> String {
    std::fs::read_to_string(small_patients()).expect("fixture patients")
}

/// `text` with line `n` (1-based; 1 = header) replaced by `with`.
fn replace_line(text: &str, n: usize, with: &str) -> String {
    let mut out = String::new();
    for (i, l) in text.lines().enumerate() {
        out.push_str(if i + 1 == n { with } else { l });
        out.push('\n');
    }
    out
}

/// Keeps the columns whose index is in `keep` (0 = id), on every line.
fn keep_columns(text: &str, keep: &[usize]) -> String {
    let mut out = String::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(',').collect();
        let kept: Vec<&str> = keep.iter().map(|&j| f[j]).collect();
        out.push_str(&kept.join(","));
        out.push('\n');
    }
    out
}

fn fit(s: &Scratch, reference: &Path, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        "fit".as_ref(),
        "--reference".as_ref(),
        reference.as_os_str(),
        "--out".as_ref(),
        "m.nof1".as_ref(),
    ];
    args.extend(extra.iter().map(|a| OsStr::new(*a)));
    s.run(&args)
}

fn assess(s: &Scratch, model: &Path, input: &Path, out: &str, extra: &[&str]) -> Run {
    let mut args: Vec<&OsStr> = vec![
        "assess".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        out.as_ref(),
    ];
    args.extend(extra.iter().map(|a| OsStr::new(*a)));
    s.run(&args)
}

/// Fits `text` as a reference and expects a clear error with `needles`; no model file.
#[track_caller]
fn fit_error(text: impl AsRef<[u8]>, needles: &[&str]) -> Run {
    let s = Scratch::new();
    let r = s.write("ref.csv", text);
    let run = fit(&s, &r, &[]);
    run.error(needles);
    assert!(
        !s.path("m.nof1").exists(),
        "a model was written after an error"
    );
    assert!(s.leftovers().is_empty(), "leftovers {:?}", s.leftovers());
    run
}

/// Fits `text` as a reference and expects success; returns the scratch and the run.
#[track_caller]
fn fit_ok(text: impl AsRef<[u8]>, extra: &[&str]) -> (Scratch, Run) {
    let s = Scratch::new();
    let r = s.write("ref.csv", text);
    let run = fit(&s, &r, extra);
    run.ok();
    assert!(s.path("m.nof1").exists());
    (s, run)
}

/// Assesses `text` against the small model; expects a clear error; no output file.
#[track_caller]
fn assess_error(text: impl AsRef<[u8]>, extra: &[&str], needles: &[&str]) -> Run {
    let s = Scratch::new();
    let m = s.small_model();
    let p = s.write("pat.csv", text);
    let run = assess(&s, &m, &p, "out.csv", extra);
    run.error(needles);
    assert!(!s.path("out.csv").exists(), "partial output after an error");
    assert!(s.leftovers().is_empty(), "leftovers {:?}", s.leftovers());
    run
}

/// Assesses `text` against the small model; expects success; returns the output.
#[track_caller]
fn assess_ok(text: impl AsRef<[u8]>, extra: &[&str]) -> (OutCsv, Run) {
    let s = Scratch::new();
    let m = s.small_model();
    let p = s.write("pat.csv", text);
    let run = assess(&s, &m, &p, "out.csv", extra);
    run.ok();
    let out = OutCsv::read(&s.path("out.csv"));
    assert_numbers_finite(&out);
    (out, run)
}

/// The output of the unmodified fixture patients against the small model.
fn baseline() -> OutCsv {
    assess_ok(pat_text(), &[]).0
}

fn verdicts(out: &OutCsv) -> Vec<String> {
    out.column("verdict")
}

// ------------------------------------------------------ the happy path

#[test]
fn fixture_fit_assess_check_inspect_work() {
    let s = Scratch::new();
    let m = s.small_model();
    let run = assess(&s, &m, &small_patients(), "out.csv", &[]);
    run.ok();
    let out = OutCsv::read(&s.path("out.csv"));
    assert_eq!(out.rows.len(), 20);
    assert_numbers_finite(&out);
    let v = verdicts(&out);
    assert!(v[15..].iter().all(|x| x == "invisible"), "{v:?}");
    let check = s.run(&[
        "check".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        small_patients().as_os_str(),
    ]);
    check.no_panic();
    assert_eq!(check.code, Some(1));
    s.run(&["inspect".as_ref(), "--model".as_ref(), m.as_os_str()])
        .ok();
}

// ------------------------------------------------- reference files (fit)

#[test]
fn ref_empty_file_is_an_error() {
    fit_error("", &["ref.csv", "empty file"]);
}

#[test]
fn ref_blank_lines_only_is_an_error() {
    fit_error("\n\n\n", &["ref.csv", "empty file"]);
}

#[test]
fn ref_header_only_is_an_error() {
    fit_error("id,f1,f2\n", &["ref.csv", "0 rows", "k + 2"]);
}

#[test]
fn ref_with_bom_fits_like_without() {
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(ref_text().as_bytes());
    let (s, _) = fit_ok(&bom, &["--id-col", "id"]);
    let run = assess(&s, &s.path("m.nof1"), &small_patients(), "out.csv", &[]);
    run.ok();
    assert_eq!(OutCsv::read(&s.path("out.csv")), baseline());
}

#[test]
fn ref_crlf_fits_like_lf() {
    let (s, _) = fit_ok(ref_text().replace('\n', "\r\n"), &[]);
    assess(&s, &s.path("m.nof1"), &small_patients(), "out.csv", &[]).ok();
    assert_eq!(OutCsv::read(&s.path("out.csv")), baseline());
}

#[test]
fn ref_quoted_fields_with_delimiters_are_read() {
    // An id holding the delimiter and a quoted number.
    let text = replace_line(
        &ref_text(),
        2,
        "\"r,1\",\"10.8279\",10.5691,10.8318,9.8705,10.3453",
    );
    let (s, _) = fit_ok(text, &[]);
    let run = s.run(&["inspect", "--model", "m.nof1", "--json"]);
    run.ok();
    assert!(run.stdout_text().contains("\"reference_size\": 60"));
    // The quoted id survives into outputs, quoted again.
    let p = s.write(
        "p.csv",
        "id,f1,f2,f3,f4,f5\nq,10.8279,10.5691,10.8318,9.8705,10.3453\n",
    );
    let out = assess(&s, &s.path("m.nof1"), &p, "-", &[]);
    out.ok();
    assert!(
        out.stdout_text().contains(",\"r,1\","),
        "{}",
        out.stdout_text()
    );
}

#[test]
fn ref_ragged_row_is_an_error() {
    let text = replace_line(&ref_text(), 6, "rx,1,2,3");
    fit_error(
        text,
        &["ref.csv:6", "ragged row", "expected 6 fields", "found 4"],
    );
    let text = replace_line(&ref_text(), 6, "rx,1,2,3,4,5,6");
    fit_error(text, &["ref.csv:6", "ragged row", "found 7"]);
}

#[test]
fn ref_unterminated_quote_is_an_error() {
    let text = replace_line(&ref_text(), 4, "\"r3,1,2,3,4,5");
    fit_error(text, &["ref.csv:4", "unterminated quote"]);
}

#[test]
fn ref_duplicate_id_is_an_error() {
    let text = format!("{}r3,1,2,3,4,5\n", ref_text());
    fit_error(text, &["ref.csv:62:id", "duplicate id \"r3\"", "line 4"]);
}

#[test]
fn ref_duplicate_column_name_is_an_error() {
    let text = ref_text().replacen("f5", "f4", 1);
    fit_error(text, &["ref.csv:1:f4", "duplicate column name \"f4\""]);
}

#[test]
fn ref_extra_text_column_is_an_error_unless_excluded() {
    let mut text = String::new();
    for (i, l) in ref_text().lines().enumerate() {
        text.push_str(l);
        text.push_str(if i == 0 { ",site\n" } else { ",north\n" });
    }
    fit_error(
        &text,
        &[
            "ref.csv:2:site",
            "not a number: \"north\"",
            "--exclude site",
        ],
    );
    let (_, run) = fit_ok(&text, &["--exclude", "site"]);
    assert!(run.stderr.contains("5 features"), "{}", run.stderr);
}

#[test]
fn ref_text_in_numeric_cell_is_an_error() {
    let text = replace_line(&ref_text(), 4, "r3,10,abc,10,10,10");
    fit_error(text, &["ref.csv:4:f2", "not a number: \"abc\""]);
}

#[test]
fn ref_missing_tokens_are_missing_values() {
    let mut text = ref_text();
    text = replace_line(&text, 3, "r2,NaN,11.1471,9.6464,9.4368,9.6544");
    text = replace_line(&text, 4, "r3,10.1,NA,,9.4368,9.6544");
    text = replace_line(&text, 5, "r4,10.1,11,n/a,null,.");
    let (s, _) = fit_ok(text, &[]);
    assess(&s, &s.path("m.nof1"), &small_patients(), "out.csv", &[]).ok();
    let out = OutCsv::read(&s.path("out.csv"));
    assert_eq!(out.rows.len(), 20);
    assert_numbers_finite(&out);
}

#[test]
fn ref_infinite_values_are_errors() {
    for (cell, needle) in [
        ("inf", "\"inf\""),
        ("-inf", "\"-inf\""),
        ("1e400", "\"1e400\""),
    ] {
        let text = replace_line(&ref_text(), 5, &format!("r4,10,10,{cell},10,10"));
        fit_error(text, &["ref.csv:5:f3", "non-finite value", needle]);
    }
}

#[test]
fn ref_huge_value_is_an_error() {
    for cell in ["1e308", "-1e308", "1e200"] {
        let text = replace_line(&ref_text(), 5, &format!("r4,10,10,{cell},10,10"));
        fit_error(text, &["ref.csv:5:f3", "too large", cell]);
    }
    // Large but squarable values are accepted (and standardised away).
    let mut text = String::new();
    for (i, l) in ref_text().lines().enumerate() {
        if i == 0 {
            text.push_str(l);
        } else {
            let (id, rest) = l.split_once(',').expect("row");
            let (f1, tail) = rest.split_once(',').expect("row");
            text.push_str(&format!("{id},{f1}e100,{tail}"));
        }
        text.push('\n');
    }
    fit_ok(text, &[]);
}

#[test]
fn ref_all_missing_row_is_an_error() {
    let text = format!("{}rm,,NA,,NaN,\n", ref_text());
    fit_error(text, &["ref.csv:62", "no observed feature value"]);
}

#[test]
fn ref_sparse_row_is_kept_with_a_warning() {
    let text = format!("{}rs,10,,,,\n", ref_text());
    let (_, run) = fit_ok(text, &[]);
    assert!(
        run.stderr.contains("fewer than 50% of the features"),
        "{}",
        run.stderr
    );
}

#[test]
fn ref_empty_id_is_an_error() {
    let text = replace_line(&ref_text(), 4, ",1,2,3,4,5");
    fit_error(text, &["ref.csv:4:id", "empty id"]);
}

#[test]
fn ref_constant_column_is_kept_for_the_value_channel() {
    let mut text = String::new();
    for (i, l) in ref_text().lines().enumerate() {
        text.push_str(l);
        text.push_str(if i == 0 { ",c\n" } else { ",7\n" });
    }
    let (s, run) = fit_ok(text.clone(), &[]);
    assert!(
        run.stderr
            .contains("1 constant column(s) kept for the value channel, not projected: c"),
        "{}",
        run.stderr
    );
    let info = s.run(&["inspect", "--model", "m.nof1", "--json"]);
    info.ok();
    assert!(info.stdout_text().contains("\"features\": 6"));
    // Patients carrying the value every member showed keep their verdicts;
    // one carrying a value no member showed is invisible, with it named.
    let mut pats = String::new();
    for (i, l) in pat_text().lines().enumerate() {
        pats.push_str(l);
        pats.push_str(if i == 0 {
            ",c\n"
        } else if i == 1 {
            ",8\n"
        } else {
            ",7\n"
        });
    }
    let p = s.write("p.csv", pats);
    let run = assess(&s, &s.path("m.nof1"), &p, "out.csv", &[]);
    run.ok();
    assert!(!run.stderr.contains("does not know"), "{}", run.stderr);
    let out = OutCsv::read(&s.path("out.csv"));
    assert_eq!(out.column("verdict")[0], "invisible");
    assert!(
        out.column("reason")[0].starts_with("value: c=8 never seen in "),
        "{:?}",
        out.column("reason")[0]
    );
    assert_eq!(verdicts(&out)[1..], verdicts(&baseline())[1..]);

    // Without the value channel the column is dropped, as before it.
    let (s, run) = fit_ok(text, &["--no-value-channel"]);
    assert!(run.stderr.contains("dropped 1 constant"), "{}", run.stderr);
    let info = s.run(&["inspect", "--model", "m.nof1", "--json"]);
    info.ok();
    assert!(info.stdout_text().contains("\"features\": 5"));
    let run = assess(&s, &s.path("m.nof1"), &p, "out.csv", &[]);
    run.ok();
    assert!(run.stderr.contains("does not know: c"), "{}", run.stderr);
}

#[test]
fn ref_all_constant_is_an_error() {
    let mut text = String::from("id,a,b\n");
    for i in 0..30 {
        text.push_str(&format!("r{i},1,2\n"));
    }
    fit_error(text, &["ref.csv", "no usable feature"]);
}

#[test]
fn ref_single_row_is_an_error() {
    let text: String = ref_text()
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    fit_error(text, &["ref.csv", "1 rows", "k + 2 = 12"]);
}

#[test]
fn ref_fewer_rows_than_k_is_an_error_and_smaller_k_fits() {
    let text: String = ref_text()
        .lines()
        .take(10)
        .map(|l| format!("{l}\n"))
        .collect();
    fit_error(&text, &["ref.csv", "9 rows", "k + 2 = 12"]);
    fit_ok(&text, &["--k", "3"]);
    // k larger than the reference itself.
    let s = Scratch::new();
    let r = s.write("ref.csv", &text);
    fit(&s, &r, &["--k", "500"]).error(&["9 rows", "k + 2 = 502"]);
}

#[test]
fn ref_non_utf8_bytes_are_errors_naming_the_place() {
    let mut text = ref_text().into_bytes();
    // In the header.
    let mut h = text.clone();
    h.splice(3..3, b"\xff".iter().copied());
    fit_error(h, &["ref.csv:1", "not valid UTF-8"]);
    // In an id.
    let line4 = replace_line(&String::from_utf8_lossy(&text), 4, "r\u{1}X3,1,2,3,4,5");
    let mut bytes = line4.into_bytes();
    let at = bytes
        .windows(2)
        .position(|w| w == b"\x01X")
        .expect("marker");
    bytes[at] = 0xff;
    bytes[at + 1] = 0xfe;
    fit_error(bytes, &["ref.csv:4:id", "not valid UTF-8"]);
    // In a numeric cell.
    let pos = text
        .windows(8)
        .position(|w| w == b"10.5691,")
        .expect("a cell");
    text[pos + 1] = 0xff;
    fit_error(text, &["ref.csv:2:f2", "not a number"]);
}

#[test]
fn ref_directory_missing_or_unreadable_is_an_error() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("dir")).unwrap();
    fit(&s, &s.path("dir"), &[]).error(&["dir", "is a directory"]);
    let missing = fit(&s, &s.path("nope.csv"), &[]);
    missing.error(&["nope.csv", "No such file"]);
    // One message per error: the I/O reason is printed once.
    assert_eq!(
        missing.stderr.matches("No such file").count(),
        1,
        "{}",
        missing.stderr
    );
    fit(&s, Path::new("/proc/self/mem"), &[]).error(&["/proc/self/mem"]);
    assert!(!s.path("m.nof1").exists());
}

#[test]
fn ref_from_stdin_fits() {
    let s = Scratch::new();
    let run = s.run_with_stdin(
        &["fit", "--reference", "-", "--out", "m.nof1"],
        Some(ref_text().as_bytes()),
    );
    run.ok();
    assess(&s, &s.path("m.nof1"), &small_patients(), "out.csv", &[]).ok();
    assert_eq!(OutCsv::read(&s.path("out.csv")), baseline());
}

#[test]
fn ref_wrong_delimiter_is_an_error_with_a_hint() {
    fit_error(
        ref_text().replace(',', ";"),
        &["ref.csv:1", "no feature columns", "--delimiter"],
    );
}

// ------------------------------------------------------- fit outputs

#[test]
fn fit_out_in_missing_directory_is_an_error() {
    let s = Scratch::new();
    let run = s.run(&[
        "fit".as_ref(),
        "--reference".as_ref(),
        small_reference().as_os_str(),
        "--out".as_ref(),
        "nodir/m.nof1".as_ref(),
    ]);
    run.error(&["nodir/m.nof1", "does not exist"]);
    assert!(!s.path("nodir").exists());
}

#[test]
fn fit_out_unwritable_is_an_error_before_fitting() {
    let s = Scratch::new();
    s.write("afile", "x");
    for (out, needle) in [
        ("afile/m.nof1", "is not a directory"),
        ("/proc/m.nof1", "cannot create a file in /proc"),
        (".", "is a directory"),
    ] {
        let run = s.run(&[
            "fit".as_ref(),
            "--reference".as_ref(),
            small_reference().as_os_str(),
            "--out".as_ref(),
            out.as_ref(),
        ]);
        run.error(&[out, needle]);
        assert!(
            !run.stderr.contains("read 60 reference rows"),
            "fitted first"
        );
    }
    assert_eq!(std::fs::read(s.path("afile")).unwrap(), b"x");
    assert!(s.leftovers().is_empty());
}

#[test]
fn fit_out_over_the_reference_is_refused() {
    let s = Scratch::new();
    let r = s.write("ref.csv", ref_text());
    let run = s.run(&[
        "fit".as_ref(),
        "--reference".as_ref(),
        r.as_os_str(),
        "--out".as_ref(),
        "ref.csv".as_ref(),
    ]);
    run.error(&["would overwrite the input"]);
    assert_eq!(std::fs::read_to_string(&r).unwrap(), ref_text());
}

#[test]
fn fit_replaces_an_existing_model_atomically() {
    let s = Scratch::new();
    let m = s.small_model();
    let before = std::fs::read(&m).unwrap();
    // A failing fit leaves the old model intact.
    let bad = s.write("bad.csv", "id,a\n");
    s.run(&[
        "fit".as_ref(),
        "--reference".as_ref(),
        bad.as_os_str(),
        "--out".as_ref(),
        m.as_os_str(),
    ])
    .error(&["bad.csv"]);
    assert_eq!(std::fs::read(&m).unwrap(), before);
    // A successful fit with other parameters replaces it: the file then holds
    // exactly what the same fit writes to a fresh path, not the old bytes.
    let refit = |out: &Path| {
        s.run(&[
            "fit".as_ref(),
            "--reference".as_ref(),
            small_reference().as_os_str(),
            "--k".as_ref(),
            "5".as_ref(),
            "--seed".as_ref(),
            "7".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "-q".as_ref(),
        ])
        .ok();
    };
    refit(&m);
    let fresh = s.path("fresh.nof1");
    refit(&fresh);
    let after = std::fs::read(&m).unwrap();
    assert_ne!(after, before, "the model was not replaced");
    assert_eq!(after, std::fs::read(&fresh).unwrap());
    // The same input and seed give byte-identical models.
    s.small_model();
    assert_eq!(std::fs::read(&m).unwrap(), before);
    assert!(s.leftovers().is_empty());
}

// ----------------------------------------------- patient files (assess)

#[test]
fn pat_empty_file_is_an_error() {
    assess_error("", &[], &["pat.csv", "empty file"]);
}

#[test]
fn pat_header_only_gives_a_header_only_output() {
    let (out, run) = assess_ok("id,f1,f2,f3,f4,f5\n", &[]);
    assert!(out.rows.is_empty());
    assert_eq!(out.header[0], "id");
    assert!(run.stderr.contains("assessed 0 patient(s)"));
}

#[test]
fn pat_with_bom_and_crlf_match_the_plain_file() {
    let base = baseline();
    let mut bom = b"\xef\xbb\xbf".to_vec();
    bom.extend_from_slice(pat_text().as_bytes());
    assert_eq!(assess_ok(&bom, &["--id-col", "id"]).0, base);
    assert_eq!(assess_ok(pat_text().replace('\n', "\r\n"), &[]).0, base);
}

#[test]
fn pat_quoted_id_with_delimiter_round_trips() {
    let text = replace_line(
        &pat_text(),
        2,
        "\"p,1 \"\"x\"\"\",11.0636,10.5844,\"10.4222\",9.9642,9.8007",
    );
    let (out, _) = assess_ok(text, &[]);
    assert_eq!(out.rows[0][0], "p,1 \"x\"");
    assert_eq!(out.rows[0][1..], baseline().rows[0][1..]);
    // Tabs inside a quoted TSV field.
    let tsv = pat_text().replace(',', "\t");
    let tsv = replace_line(
        &tsv,
        2,
        "\"p\t1\"\t11.0636\t10.5844\t10.4222\t9.9642\t9.8007",
    );
    let s = Scratch::new();
    let m = s.small_model();
    let p = s.write("pat.tsv", tsv);
    assess(&s, &m, &p, "out.tsv", &[]).ok();
    let text = std::fs::read_to_string(s.path("out.tsv")).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .starts_with("\"p\t1\"\tsupported"),
        "{text}"
    );
}

#[test]
fn pat_ragged_rows_are_kept_with_a_note() {
    let mut text = pat_text();
    text = replace_line(&text, 3, "p2,10.4313,10.1330,8.4781");
    text = replace_line(&text, 4, "p3,12.3131,12.1659,9.5604,8.2954,10.0749,99,98");
    let (out, run) = assess_ok(&text, &[]);
    assert_eq!(out.rows.len(), 20);
    let notes = out.column("note");
    assert!(
        notes[1].contains("ragged row (4 fields, header has 6)"),
        "{notes:?}"
    );
    assert!(notes[2].contains("ragged row (8 fields"), "{notes:?}");
    assert_eq!(out.column("coverage")[1], "0.6");
    assert_eq!(out.rows[2][1..12], baseline().rows[2][1..12]);
    assert!(run.stderr.contains("2 row(s) had recoverable defects"));
    assess_error(
        &text,
        &["--strict-input"],
        &["pat.csv:3", "ragged row", "found 4"],
    );
}

#[test]
fn pat_unterminated_quote_is_an_error_not_lost_rows() {
    let text = replace_line(&pat_text(), 4, "\"p3,12.3131,12.1659,9.5604,8.2954,10.0749");
    assess_error(text, &[], &["pat.csv:4", "unterminated quote"]);
}

#[test]
fn pat_duplicate_ids_keep_every_row() {
    let text = format!("{}p3,10,10,10,10,10\np3,10,10,10,10,10\n", pat_text());
    let (out, _) = assess_ok(text, &[]);
    assert_eq!(out.rows.len(), 22);
    let ids = out.column("id");
    assert_eq!(ids.iter().filter(|i| *i == "p3").count(), 3);
    assert_eq!(out.rows[20], out.rows[21]);
}

#[test]
fn pat_duplicate_column_name_is_an_error() {
    assess_error(
        pat_text().replacen("f5", "f4", 1),
        &[],
        &["pat.csv:1:f4", "duplicate column name"],
    );
}

#[test]
fn pat_missing_feature_column_counts_as_missing() {
    let text = keep_columns(&pat_text(), &[0, 1, 2, 3, 5]);
    let (out, run) = assess_ok(text, &[]);
    assert!(
        run.stderr
            .contains("1 of the model's 5 features are absent")
    );
    assert!(run.stderr.contains("f4"));
    assert!(out.column("coverage").iter().all(|c| c == "0.8"));
    assert_eq!(out.rows.len(), 20);
    // Below the coverage floor: every row is insufficient_data, none is lost.
    let text = keep_columns(&pat_text(), &[0, 1, 2]);
    let (out, _) = assess_ok(text, &[]);
    assert!(verdicts(&out).iter().all(|v| v == "insufficient_data"));
    assert_eq!(out.column("id"), baseline().column("id"));
}

#[test]
fn pat_without_any_model_feature_is_an_error() {
    assess_error(
        "id,a,b\nx,1,2\n",
        &[],
        &["pat.csv:1", "none of the model's 5 features"],
    );
}

#[test]
fn pat_extra_columns_are_ignored_even_with_strict_input() {
    let mut text = String::new();
    for (i, l) in pat_text().lines().enumerate() {
        text.push_str(if i == 0 { "site," } else { "north," });
        text.push_str(l);
        text.push_str(if i == 0 {
            ",comment\n"
        } else {
            ",\"free, text\"\n"
        });
    }
    let (out, run) = assess_ok(&text, &["--id-col", "id", "--strict-input"]);
    assert!(
        run.stderr.contains("does not know: site, comment"),
        "{}",
        run.stderr
    );
    assert_eq!(out, baseline());
}

#[test]
fn pat_text_in_numeric_cell_is_missing_with_a_note() {
    let text = replace_line(&pat_text(), 3, "p2,10.4313,abc,8.4781,8.9758,9.4063");
    let (out, _) = assess_ok(&text, &[]);
    assert_eq!(out.column("note")[1], "f2: text \"abc\" read as missing");
    assert_eq!(out.column("coverage")[1], "0.8");
    assess_error(
        &text,
        &["--strict-input"],
        &["pat.csv:3:f2", "not a number: \"abc\""],
    );
}

#[test]
fn pat_missing_tokens_are_missing_without_a_note() {
    let mut text = pat_text();
    text = replace_line(&text, 2, "p1,NaN,10.5844,10.4222,9.9642,9.8007");
    text = replace_line(&text, 3, "p2,NA,10.1330,8.4781,8.9758,9.4063");
    text = replace_line(&text, 4, "p3,,12.1659,9.5604,8.2954,10.0749");
    let (out, _) = assess_ok(&text, &["--strict-input"]);
    for i in 0..3 {
        assert_eq!(out.column("coverage")[i], "0.8");
        assert_eq!(out.column("note")[i], "");
    }
}

#[test]
fn pat_infinite_values_are_missing_with_a_note() {
    let mut text = pat_text();
    text = replace_line(&text, 2, "p1,inf,10.5844,10.4222,9.9642,9.8007");
    text = replace_line(&text, 3, "p2,10.4,-inf,8.4781,8.9758,9.4063");
    text = replace_line(&text, 4, "p3,10.4,1e400,9.5604,8.2954,10.0749");
    let (out, _) = assess_ok(&text, &[]);
    let notes = out.column("note");
    assert_eq!(notes[0], "f1: non-finite \"inf\" read as missing");
    assert_eq!(notes[1], "f2: non-finite \"-inf\" read as missing");
    assert_eq!(notes[2], "f2: non-finite \"1e400\" read as missing");
    assess_error(
        &text,
        &["--strict-input"],
        &["pat.csv:2:f1", "non-finite value \"inf\""],
    );
}

#[test]
fn pat_huge_values_give_finite_numbers() {
    let mut text = pat_text();
    text = replace_line(&text, 2, "p1,1e308,10.5844,10.4222,9.9642,9.8007");
    text = replace_line(&text, 3, "p2,-1e308,1e308,-1e308,1e308,-1e308");
    text = replace_line(&text, 4, "p3,1e-308,5e-324,0,-0,9");
    let (out, _) = assess_ok(&text, &[]);
    let v = verdicts(&out);
    assert_eq!(v[0], "invisible");
    assert_eq!(v[1], "invisible");
    // JSONL: every numeric field of an assessed row is a number, never null.
    let s = Scratch::new();
    let m = s.small_model();
    let p = s.write("pat.csv", &text);
    let run = assess(&s, &m, &p, "out.jsonl", &[]);
    run.ok();
    let jsonl = std::fs::read_to_string(s.path("out.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 20);
    for line in jsonl.lines() {
        let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        for f in [
            "p_value",
            "novelty",
            "knn_distance",
            "p_novelty",
            "residual",
            "p_residual",
            "density",
            "coverage",
            "nearest_distance",
        ] {
            let x = row[f]
                .as_f64()
                .unwrap_or_else(|| panic!("{f} is not a number: {line}"));
            assert!(x.is_finite(), "{f} = {x}");
        }
        for n in row["neighbours"].as_array().expect("neighbours") {
            assert!(n["distance"].as_f64().is_some_and(f64::is_finite), "{line}");
        }
    }
}

#[test]
fn pat_all_missing_row_is_insufficient_data() {
    let text = format!("{}pm,,NA,,NaN,\npe,,,,,\n", pat_text());
    let (out, _) = assess_ok(text, &["--strict-input"]);
    assert_eq!(out.rows.len(), 22);
    assert_eq!(verdicts(&out)[20], "insufficient_data");
    assert_eq!(verdicts(&out)[21], "insufficient_data");
    assert_eq!(out.column("coverage")[20], "0");
    assert_eq!(out.column("p_value")[20], "");
}

#[test]
fn pat_empty_id_is_kept_with_a_note() {
    let text = replace_line(&pat_text(), 3, ",10.4313,10.1330,8.4781,8.9758,9.4063");
    let (out, _) = assess_ok(&text, &[]);
    assert_eq!(out.column("id")[1], "");
    assert_eq!(out.column("note")[1], "empty id");
    assess_error(&text, &["--strict-input"], &["pat.csv:3:id", "empty id"]);
}

#[test]
fn pat_non_utf8_bytes_are_kept_with_a_note() {
    let mut text = pat_text().into_bytes();
    let pos = text.windows(3).position(|w| w == b"p2,").expect("p2");
    text.splice(pos + 1..pos + 1, b"\xff".iter().copied());
    let cell = text
        .windows(8)
        .position(|w| w == b"12.3131,")
        .expect("a cell");
    text[cell + 2] = 0xfe;
    let (out, _) = assess_ok(&text, &[]);
    assert_eq!(out.rows.len(), 20);
    assert_eq!(out.column("id")[1], "p\u{fffd}2");
    assert_eq!(out.column("note")[1], "id is not valid UTF-8");
    assert!(
        out.column("note")[2].starts_with("f1: text"),
        "{:?}",
        out.column("note")
    );
    assess_error(
        &text,
        &["--strict-input"],
        &["pat.csv:3:id", "not valid UTF-8"],
    );
}

#[test]
fn pat_directory_or_missing_is_an_error() {
    let s = Scratch::new();
    let m = s.small_model();
    std::fs::create_dir(s.path("dir")).unwrap();
    assess(&s, &m, &s.path("dir"), "out.csv", &[]).error(&["dir", "is a directory"]);
    assess(&s, &m, &s.path("nope.csv"), "out.csv", &[]).error(&["nope.csv", "No such file"]);
    assert!(!s.path("out.csv").exists());
    assert!(s.leftovers().is_empty());
}

#[test]
fn pat_from_stdin_to_stdout() {
    let s = Scratch::new();
    let m = s.small_model();
    let run = s.run_with_stdin(
        &[
            "assess".as_ref(),
            "--model".as_ref(),
            m.as_os_str(),
            "--input".as_ref(),
            "-".as_ref(),
        ],
        Some(pat_text().as_bytes()),
    );
    run.ok();
    assert_eq!(OutCsv::parse(&run.stdout), baseline());
}

#[test]
fn pat_strict_error_late_in_a_large_file_leaves_no_output() {
    // More rows than one streaming chunk, so earlier rows were already written.
    let mut text = String::from("id,f1,f2,f3,f4,f5\n");
    for i in 0..20_000 {
        text.push_str(&format!("q{i},10,10.1,9.9,10,10\n"));
    }
    text.push_str("last,10,oops,10,10,10\n");
    let run = assess_error(
        &text,
        &["--strict-input"],
        &["pat.csv:20002:f2", "\"oops\""],
    );
    run.no_panic();
}

// ---------------------------------------------------- assess outputs

#[test]
fn assess_out_in_missing_directory_is_an_error() {
    let s = Scratch::new();
    let m = s.small_model();
    assess(&s, &m, &small_patients(), "nodir/out.csv", &[])
        .error(&["nodir/out.csv", "does not exist"]);
    assert!(!s.path("nodir").exists());
}

#[test]
fn assess_out_unwritable_is_an_error() {
    let s = Scratch::new();
    let m = s.small_model();
    s.write("afile", "x");
    std::fs::create_dir(s.path("dir")).unwrap();
    for (out, needle) in [
        ("afile/out.csv", "is not a directory"),
        ("/proc/out.csv", "cannot create a file in /proc"),
        ("/proc/self/status", "cannot create a file"),
        ("dir", "is a directory"),
    ] {
        assess(&s, &m, &small_patients(), out, &[]).error(&[out, needle]);
    }
    assert!(s.leftovers().is_empty());
}

#[test]
fn assess_out_over_an_input_is_refused() {
    let s = Scratch::new();
    let m = s.small_model();
    let before = std::fs::read(&m).unwrap();
    let p = s.write("pat.csv", pat_text());
    assess(&s, &m, &p, "model.nof1", &[]).error(&["would overwrite the input"]);
    assess(&s, &m, &p, "pat.csv", &[]).error(&["would overwrite the input"]);
    assert_eq!(std::fs::read(&m).unwrap(), before);
    assert_eq!(std::fs::read_to_string(&p).unwrap(), pat_text());
}

/// Special files (FIFO, `/dev/full`) are written in place, never renamed over.
#[test]
fn assess_to_special_files() {
    use std::process::{Command, Stdio};
    let s = Scratch::new();
    let m = s.small_model();
    let fifo = s.path("fifo");
    harness::mkfifo(&fifo);
    let reader = Command::new("cat")
        .arg(&fifo)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn cat");
    let run = assess(&s, &m, &small_patients(), "fifo", &[]);
    // Whatever assess did, `cat` must not block for ever in its open(): a
    // read-write open of a FIFO never blocks on Linux and gives `cat` a
    // writer, whose close then ends it.
    drop(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .expect("open the FIFO"),
    );
    let got = harness::wait_with_timeout(reader, harness::timeout(), "cat FIFO");
    run.ok();
    use std::os::unix::fs::FileTypeExt;
    let ft = std::fs::metadata(&fifo).unwrap().file_type();
    assert!(ft.is_fifo(), "the FIFO was replaced by a regular file");
    assert_eq!(OutCsv::parse(&got.stdout), baseline());
    // Only now (the in-place path works) try a full device: a clear error.
    if std::fs::metadata("/dev/full").is_ok_and(|m| m.file_type().is_char_device()) {
        assess(&s, &m, &small_patients(), "/dev/full", &[]).error(&["/dev/full", "No space left"]);
        assert!(
            std::fs::metadata("/dev/full")
                .unwrap()
                .file_type()
                .is_char_device()
        );
    }
}

// ------------------------------------------------------------ model files

fn small_model_bytes() -> (Scratch, Vec<u8>) {
    let s = Scratch::new();
    let m = s.small_model();
    let bytes = std::fs::read(m).unwrap();
    (s, bytes)
}

#[test]
fn model_truncated_at_every_offset_is_an_error() {
    let (_s, bytes) = small_model_bytes();
    assert!(nof1::Model::from_bytes(&bytes, Path::new("m.nof1")).is_ok());
    for cut in 0..bytes.len() {
        let err = nof1::Model::from_bytes(&bytes[..cut], Path::new("m.nof1"))
            .expect_err("a truncated model must be refused");
        let msg = err.to_string();
        assert!(
            msg.starts_with("m.nof1: ")
                && (msg.contains("truncated")
                    || msg.contains("empty")
                    || msg.contains("not a nof1 model")),
            "cut {cut}: {msg}"
        );
    }
}

#[test]
fn model_single_byte_changes_are_errors() {
    let (_s, bytes) = small_model_bytes();
    // Every offset, a seeded non-zero XOR mask (plus every bit of the header).
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut masks = Vec::new();
    for at in 0..bytes.len() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        masks.push((at, (state as u8).max(1)));
    }
    for at in 0..util_header_len() {
        for bit in 0..8 {
            masks.push((at, 1 << bit));
        }
    }
    for (at, mask) in masks {
        let mut b = bytes.clone();
        b[at] ^= mask;
        let r = nof1::Model::from_bytes(&b, Path::new("m.nof1"));
        assert!(r.is_err(), "flip {mask:#04x} at {at} was accepted");
    }
}

fn util_header_len() -> usize {
    nof1::model::format::HEADER_LEN
}

#[test]
fn model_extra_bytes_are_an_error() {
    let (_s, mut bytes) = small_model_bytes();
    bytes.push(0);
    let err = nof1::Model::from_bytes(&bytes, Path::new("m.nof1")).unwrap_err();
    assert!(err.to_string().contains("unexpected bytes"), "{err}");
}

/// Runs assess, check and inspect on a bad model file; each exits 2 with `needles`.
#[track_caller]
fn bad_model(bytes: &[u8], needles: &[&str]) {
    let s = Scratch::new();
    let m = s.write("bad.nof1", bytes);
    let mut all = vec!["bad.nof1"];
    all.extend_from_slice(needles);
    assess(&s, &m, &small_patients(), "out.csv", &[]).error(&all);
    assert!(!s.path("out.csv").exists());
    s.run(&[
        "check".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        small_patients().as_os_str(),
    ])
    .error(&all);
    s.run(&["inspect".as_ref(), "--model".as_ref(), m.as_os_str()])
        .error(&all);
    assert!(s.leftovers().is_empty());
}

#[test]
fn model_truncated_files_via_the_binary() {
    let (_s, bytes) = small_model_bytes();
    bad_model(&bytes[..0], &["empty file"]);
    bad_model(&bytes[..5], &["not a nof1 model"]);
    bad_model(&bytes[..20], &["truncated model", "header"]);
    bad_model(
        &bytes[..bytes.len() / 2],
        &["truncated model", "payload has"],
    );
    bad_model(&bytes[..bytes.len() - 1], &["truncated model"]);
}

/// A model read from a pipe (`--model <(…)`, here `/dev/stdin`), which has
/// no size to check the header against, assesses as the file does.
#[test]
#[cfg(unix)]
fn a_model_read_from_a_pipe_assesses_as_the_file_does() {
    let (s, bytes) = small_model_bytes();
    let args = |model: &OsStr| {
        vec![
            OsStr::new("assess").to_os_string(),
            "--model".into(),
            model.to_os_string(),
            "--input".into(),
            small_patients().into_os_string(),
            "--out".into(),
            "-".into(),
            "-q".into(),
        ]
    };
    let from_file = s.run(&args(s.path("model.nof1").as_os_str()));
    from_file.ok();
    let from_pipe = s.run_with_stdin(&args(OsStr::new("/dev/stdin")), Some(&bytes));
    from_pipe.ok();
    assert_eq!(from_pipe.stdout, from_file.stdout);
    assert!(from_file.stdout_text().lines().count() > 1);
}

#[test]
fn model_byte_flip_via_the_binary() {
    let (_s, mut bytes) = small_model_bytes();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    bad_model(&bytes, &["corrupt model", "checksum mismatch"]);
}

/// An HNSW model stores its graph; a graph section truncated or edited
/// behind a recomputed checksum is refused by assess, check and inspect.
#[test]
fn model_with_a_corrupt_graph_section_via_the_binary() {
    let s = Scratch::new();
    let m = s.path("hnsw.nof1");
    s.run(&[
        "fit".as_ref(),
        "--reference".as_ref(),
        small_reference().as_os_str(),
        "--out".as_ref(),
        m.as_os_str(),
        "--index".as_ref(),
        "hnsw".as_ref(),
        "-q".as_ref(),
    ])
    .ok();
    let bytes = std::fs::read(&m).unwrap();
    let graph_len = nof1::model::format::decode_container(&bytes, &m)
        .unwrap()
        .graph_len()
        .expect("an HNSW model stores its graph");
    let inspect = s.run(&["inspect", "--model", "hnsw.nof1"]);
    let text = inspect.ok().stdout_text();
    assert!(
        text.contains(&format!("graph stored ({graph_len} bytes)")),
        "{text}"
    );
    assess(&s, &m, &small_patients(), "out.csv", &[]).ok();
    let header = nof1::model::format::HEADER_LEN;
    let repack = |payload: &[u8]| {
        let mut out = bytes[..header].to_vec();
        out[12..20].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        let mut h = crc32fast::Hasher::new();
        h.update(&out[..20]);
        h.update(payload);
        out[20..24].copy_from_slice(&h.finalize().to_le_bytes());
        out.extend_from_slice(payload);
        out
    };
    let payload = &bytes[header..];
    let cut = payload.len() - graph_len / 2;
    bad_model(
        &repack(&payload[..cut]),
        &["corrupt HNSW graph section: truncated"],
    );
    let mut edited = payload.to_vec();
    let levels_at = payload.len() - graph_len + nof1::index::hnsw::GRAPH_HEADER_LEN;
    edited[levels_at] = 200;
    bad_model(
        &repack(&edited),
        &["corrupt HNSW graph section", "layer 200"],
    );
}

#[test]
fn model_newer_format_version_is_an_error() {
    let (_s, mut bytes) = small_model_bytes();
    let next = nof1::model::format::FORMAT_VERSION + 1;
    bytes[8..12].copy_from_slice(&next.to_le_bytes());
    bad_model(
        &bytes,
        &[&format!("format version {next} is newer"), "upgrade nof1"],
    );
    bytes[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    bad_model(&bytes, &["newer"]);
    bytes[8..12].copy_from_slice(&0u32.to_le_bytes());
    bad_model(&bytes, &["version 0"]);
}

#[test]
fn model_from_another_program_is_an_error() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
    bad_model(png, &["not a nof1 model"]);
    bad_model(pat_text().as_bytes(), &["not a nof1 model"]);
    // A CSV passed as --model by mistake, and a model passed as --input.
    let s = Scratch::new();
    let m = s.small_model();
    assess(&s, &small_patients(), &small_patients(), "out.csv", &[]).error(&["not a nof1 model"]);
    let run = assess(&s, &m, &m, "out.csv", &[]);
    run.error(&["model.nof1"]);
    assert!(!s.path("out.csv").exists());
}

#[test]
fn model_directory_or_missing_is_an_error() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("dir.nof1")).unwrap();
    assess(&s, &s.path("dir.nof1"), &small_patients(), "out.csv", &[])
        .error(&["dir.nof1", "is a directory"]);
    assess(&s, &s.path("none.nof1"), &small_patients(), "out.csv", &[])
        .error(&["none.nof1", "No such file"]);
    s.run(&["inspect", "--model", "dir.nof1"])
        .error(&["dir.nof1"]);
    assert!(!s.path("out.csv").exists());
}

// ---------------------------------------------------- wide tables

/// A patient file with the five model features plus 9,995 unknown columns.
#[test]
fn pat_with_10000_columns_is_assessed() {
    let extra = 9_995;
    let mut text = String::from("id,f1,f2,f3,f4,f5");
    for j in 0..extra {
        text.push_str(&format!(",g{j}"));
    }
    text.push('\n');
    for l in pat_text().lines().skip(1) {
        text.push_str(l);
        for j in 0..extra {
            text.push_str(if j % 7 == 0 { ",x" } else { ",1.5" });
        }
        text.push('\n');
    }
    let (out, run) = assess_ok(&text, &["--strict-input"]);
    assert!(
        run.stderr.contains("ignoring 9995 column(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(out, baseline());
}

/// More features than rows (p = 300, n = 40): the covariance is rank-deficient.
#[test]
fn ref_wider_than_tall_fits() {
    let p = 300;
    let mut text = String::from("id");
    for j in 0..p {
        text.push_str(&format!(",g{j}"));
    }
    text.push('\n');
    for i in 0..40 {
        text.push_str(&format!("r{i}"));
        for j in 0..p {
            let x = ((i * 7919 + j * 104_729 + 13) as f64 * 0.618_033_988_7).fract();
            text.push_str(&format!(",{x:.4}"));
        }
        text.push('\n');
    }
    let (s, _) = fit_ok(&text, &["--k", "5"]);
    let pats: String = text.lines().take(4).map(|l| format!("{l}\n")).collect();
    let p = s.write("p.csv", pats);
    assess(&s, &s.path("m.nof1"), &p, "out.csv", &[]).ok();
    let out = OutCsv::read(&s.path("out.csv"));
    assert_eq!(out.rows.len(), 3);
    assert_numbers_finite(&out);
}

/// A wide reference: 10,000 features, 40 rows. With p > n the projection goes
/// through the n × n Gram matrix instead of the p × p covariance (which took
/// hours at p = 10,000), so this fits in well under a second.
#[test]
fn ref_with_10000_features_fits() {
    let p = 10_000;
    let mut text = String::from("id");
    for j in 0..p {
        text.push_str(&format!(",g{j}"));
    }
    text.push('\n');
    let mut state = 1u64;
    for i in 0..40 {
        text.push_str(&format!("r{i}"));
        for _ in 0..p {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            text.push_str(&format!(
                ",{:.3}",
                (state >> 11) as f64 / (1u64 << 53) as f64
            ));
        }
        text.push('\n');
    }
    // Wide and short: the projection goes through the n × n Gram matrix. The
    // harness timeout (NOF1_TEST_TIMEOUT) fails the test, rather than hanging
    // CI, should a regression send it through the p × p covariance.
    let (s, _) = fit_ok(&text, &["--k", "5"]);
    let p = s.write("p.csv", text.lines().take(3).collect::<Vec<_>>().join("\n"));
    assess(&s, &s.path("m.nof1"), &p, "out.csv", &[]).ok();
    // Each patient is a reference member: found at distance 0, supported.
    let out = OutCsv::read(&s.path("out.csv"));
    assert_eq!(out.column("id"), ["r0", "r1"]);
    assert_eq!(out.column("nearest_id"), ["r0", "r1"]);
    for d in out.column("nearest_distance") {
        assert!(
            d.parse::<f64>().unwrap().abs() < 1e-6,
            "nearest distance {d}"
        );
    }
    assert_numbers_finite(&out);
    // The model holds every feature and at most n - 1 = 39 components.
    let info = s.run(&["inspect", "--model", "m.nof1"]);
    info.ok();
    let text = info.stdout_text();
    assert!(text.contains("features         10000 "), "{text}");
    let components: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("components"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no component count in {text}"));
    assert!((1..=39).contains(&components), "{components} components");
}

// ------------------------------------------------- concurrency, shards

#[test]
fn concurrent_assess_processes_agree() {
    use std::process::{Command, Stdio};
    let s = Scratch::new();
    let m = s.small_model();
    let mut text = String::from("id,f1,f2,f3,f4,f5\n");
    for i in 0..3000 {
        let x = (i as f64 * 0.37).sin();
        text.push_str(&format!(
            "c{i},{},{},{},10,{}\n",
            10.0 + x,
            10.0 - x,
            10.0 + 2.0 * x,
            9.0 + x * x
        ));
    }
    let p = s.write("p.csv", text);
    let children: Vec<_> = (0..8)
        .map(|i| {
            Command::new(harness::bin())
                .args([
                    "assess".as_ref(),
                    "--model".as_ref(),
                    m.as_os_str(),
                    "--input".as_ref(),
                    p.as_os_str(),
                ])
                .arg("--out")
                .arg(s.path(&format!("out{i}.csv")))
                .args(["--threads", "1", "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let first = std::fs::read(s.path("out0.csv")).unwrap();
    assert_eq!(first.iter().filter(|&&b| b == b'\n').count(), 3001);
    for i in 1..8 {
        assert_eq!(
            std::fs::read(s.path(&format!("out{i}.csv"))).unwrap(),
            first,
            "out{i}"
        );
    }
}

#[test]
fn sharded_assess_equals_a_single_run() {
    let s = Scratch::new();
    let m = s.small_model();
    let text = pat_text();
    let lines: Vec<&str> = text.lines().collect();
    let header = lines[0];
    let single = assess(&s, &m, &small_patients(), "-", &[]);
    single.ok();
    let mut joined = Vec::new();
    for (k, chunk) in lines[1..].chunks(7).enumerate() {
        let shard = format!("{header}\n{}\n", chunk.join("\n"));
        let p = s.write(&format!("shard{k}.csv"), shard);
        let run = assess(&s, &m, &p, "-", &[]);
        run.ok();
        let out = run.stdout_text();
        let mut it = out.lines();
        let h = it.next().expect("header");
        if k == 0 {
            joined.push(h.to_string());
        }
        joined.extend(it.map(String::from));
    }
    let single_lines: Vec<String> = single.stdout_text().lines().map(String::from).collect();
    assert_eq!(joined, single_lines);
}

#[test]
fn batch_borders_and_threads_change_nothing() {
    // 9,000 patients cross the 4,096-row batches of `assess` at other places
    // than a split into two files of 4,500 does; one and four threads.
    let s = Scratch::new();
    let m = s.small_model();
    let text = pat_text();
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let rows: Vec<&str> = lines.collect();
    let mut all = format!("{header}\n");
    let mut halves = [format!("{header}\n"), format!("{header}\n")];
    for i in 0..9000 {
        let row = rows[i % rows.len()];
        let rest = row.split_once(',').map_or("", |r| r.1);
        let line = format!("q{i},{rest}\n");
        all.push_str(&line);
        halves[i / 4500].push_str(&line);
    }
    let all = s.write("all.csv", all);
    let a = s.write("a.csv", &halves[0]);
    let b = s.write("b.csv", &halves[1]);
    let single = assess(&s, &m, &all, "-", &[]);
    single.ok();
    let mut joined = assess(&s, &m, &a, "-", &[]).stdout_text();
    let second = assess(&s, &m, &b, "-", &[]).stdout_text();
    joined.push_str(second.split_once('\n').map_or("", |r| r.1));
    assert_eq!(single.stdout_text().lines().count(), 9001);
    assert_eq!(joined, single.stdout_text());
    for threads in ["1", "4"] {
        let run = s.run(&[
            OsStr::new("--threads"),
            OsStr::new(threads),
            OsStr::new("assess"),
            OsStr::new("--model"),
            m.as_os_str(),
            OsStr::new("--input"),
            all.as_os_str(),
        ]);
        run.ok();
        assert_eq!(run.stdout_text(), single.stdout_text(), "{threads} threads");
    }
}

#[test]
fn errors_past_the_first_parse_block_name_the_first_bad_row() {
    // 9,000 reference rows are parsed in blocks of 4,096 in parallel, the
    // next block split into fields meanwhile: the error reported must still
    // be the first bad row in file order (line 5,001), not a later one.
    let text = std::fs::read_to_string(small_reference()).expect("fixture reference");
    let mut lines = text.lines();
    let header = lines.next().expect("header");
    let rows: Vec<&str> = lines.collect();
    let mut big = format!("{header}\n");
    for i in 0..9000 {
        let rest = rows[i % rows.len()].split_once(',').map_or("", |r| r.1);
        let rest = match i {
            4999 => rest.replacen(|c: char| c.is_ascii_digit(), "x", 1),
            7999 => "\"unterminated".to_string(),
            _ => rest.to_string(),
        };
        big.push_str(&format!("r{i},{rest}\n"));
    }
    let s = Scratch::new();
    let r = s.write("big.csv", &big);
    let run = fit(&s, &r, &[]);
    run.error(&["big.csv:5001"]);
    assert!(!run.stderr.contains("8001"), "{}", run.stderr);
}

// ---------------------------------------------------- check exit codes

#[test]
fn check_exit_codes() {
    let s = Scratch::new();
    let m = s.small_model();
    let head: String = pat_text()
        .lines()
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let ok = s.write("ok.csv", head);
    let run = s.run(&[
        "check".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        ok.as_os_str(),
    ]);
    run.no_panic();
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let run = s.run(&[
        "check".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        small_patients().as_os_str(),
    ]);
    assert_eq!(run.code, Some(1));
    // The five shifted patients are invisible (exchangeable ones may be too,
    // at about the rate alpha; that is tested statistically elsewhere).
    let invisible: Vec<String> = run
        .stdout_text()
        .lines()
        .filter(|l| l.contains("\tinvisible\t"))
        .filter_map(|l| l.split('\t').next().map(str::to_string))
        .collect();
    for id in ["p16", "p17", "p18", "p19", "p20"] {
        assert!(
            invisible.iter().any(|x| x == id),
            "{id} not invisible: {invisible:?}"
        );
    }
    let bad = s.write("bad.csv", "");
    s.run(&[
        "check".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        bad.as_os_str(),
    ])
    .error(&["bad.csv", "empty file"]);
}
