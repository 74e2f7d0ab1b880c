//! Behaviours that had no test through the binary (issue 18): Mondrian
//! calibration and its pooled fallback, `check --strict`, parameter
//! validation, fit determinism across `--threads`, `assess --report` and
//! `audit --out-dir`, and the streaming memory bound.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use harness::{OutCsv, Scratch, small_patients, small_reference};

fn os<'a>(items: &'a [&'a str]) -> Vec<&'a OsStr> {
    items.iter().map(OsStr::new).collect()
}

/// The small reference with a `site` column (`A` for even rows, `B` odd,
/// and the last `n_c` rows `C`).
fn grouped_reference(s: &Scratch, n_c: usize) -> PathBuf {
    let text = std::fs::read_to_string(small_reference()).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let mut out = String::from("id,f1,f2,f3,f4,f5,site\n");
    for (i, l) in rows.iter().enumerate() {
        let g = if i >= rows.len() - n_c {
            "C"
        } else if i % 2 == 0 {
            "A"
        } else {
            "B"
        };
        out.push_str(&format!("{l},{g}\n"));
    }
    s.write("gref.csv", out)
}

/// The fixture patients with a `site` column cycling through `groups`.
fn grouped_patients(s: &Scratch, groups: &[&str]) -> PathBuf {
    let text = std::fs::read_to_string(small_patients()).unwrap();
    let mut out = String::from("id,f1,f2,f3,f4,f5,site\n");
    for (i, l) in text.lines().skip(1).enumerate() {
        out.push_str(&format!("{l},{}\n", groups[i % groups.len()]));
    }
    s.write("gpat.csv", out)
}

fn jsonl_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ------------------------------------------------------------- Mondrian

#[test]
fn calibrate_by_keeps_scores_per_group_and_unknown_groups_fall_back_to_pooled() {
    let s = Scratch::new();
    // Group C has 3 members: too few for its own calibration.
    grouped_reference(&s, 3);
    let fit = s.run(&os(&[
        "fit",
        "--reference",
        "gref.csv",
        "--group-col",
        "site",
        "--calibrate-by",
        "site",
        "--k",
        "5",
        "--out",
        "m.nof1",
    ]));
    fit.ok();
    assert!(
        fit.stderr
            .contains("group \"C\" has 3 calibration member(s)"),
        "a warning names the small group: {}",
        fit.stderr
    );
    let info = s.run(&os(&["inspect", "--model", "m.nof1"]));
    info.ok();
    let text = info.stdout_text();
    assert!(text.contains("mondrian         per group"), "{text}");
    assert!(text.contains("groups           A 29, B 28, C 3"), "{text}");
    // Patients in A, B, C and an unknown group D.
    grouped_patients(&s, &["A", "B", "C", "D"]);
    let run = s.run(&os(&[
        "assess",
        "-q",
        "--model",
        "m.nof1",
        "--input",
        "gpat.csv",
        "--group-col",
        "site",
        "--out",
        "-",
        "--format",
        "jsonl",
    ]));
    run.ok();
    let rows = jsonl_lines(&run.stdout);
    assert_eq!(rows.len(), 20);
    for r in &rows {
        let g = r["group"].as_str().unwrap();
        let fallback = r["pooled_fallback"].as_bool().unwrap();
        if r["verdict"] == "insufficient_data" {
            continue;
        }
        // A and B are calibrated on their own; C (too small) and D (unknown)
        // use the pooled scores.
        assert_eq!(fallback, g == "C" || g == "D", "{r}");
    }
    // A pooled model of the same reference gives different p-values to
    // some A/B patients (the calibration sets differ) and never falls back.
    s.run(&os(&[
        "fit",
        "-q",
        "--reference",
        "gref.csv",
        "--group-col",
        "site",
        "--k",
        "5",
        "--out",
        "pooled.nof1",
    ]))
    .ok();
    let pooled = s.run(&os(&[
        "assess",
        "-q",
        "--model",
        "pooled.nof1",
        "--input",
        "gpat.csv",
        "--group-col",
        "site",
        "--out",
        "-",
        "--format",
        "jsonl",
    ]));
    pooled.ok();
    let pooled = jsonl_lines(&pooled.stdout);
    assert!(pooled.iter().all(|r| r["pooled_fallback"] == false));
    let differ = rows
        .iter()
        .zip(&pooled)
        .filter(|(m, p)| m["p_value"] != p["p_value"])
        .count();
    assert!(differ > 0, "Mondrian and pooled p-values are all equal");
}

#[test]
fn calibrate_by_needs_the_group_column() {
    let s = Scratch::new();
    grouped_reference(&s, 0);
    s.run(&os(&[
        "fit",
        "--reference",
        "gref.csv",
        "--calibrate-by",
        "site",
        "--out",
        "m.nof1",
    ]))
    .error(&["--calibrate-by site needs the same column as --group-col"]);
    s.run(&os(&[
        "fit",
        "--reference",
        "gref.csv",
        "--group-col",
        "site",
        "--calibrate-by",
        "other",
        "--out",
        "m.nof1",
    ]))
    .error(&["--calibrate-by other"]);
    assert!(!s.path("m.nof1").exists());
}

// ---------------------------------------------------------- check --strict

#[test]
fn check_strict_fails_on_low_support_and_plain_check_does_not() {
    let s = Scratch::new();
    let m = s.small_model();
    let out = s.path("all.csv");
    s.run(&[
        "assess".as_ref(),
        "-q".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        small_patients().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ])
    .ok();
    let all = OutCsv::read(&out);
    let verdicts = all.column("verdict");
    let ids = all.column("id");
    let pick = |v: &str| -> Vec<String> {
        ids.iter()
            .zip(&verdicts)
            .filter(|(_, x)| *x == v)
            .map(|(i, _)| i.clone())
            .collect()
    };
    let (supported, low) = (pick("supported"), pick("low_support"));
    assert!(!low.is_empty() && !supported.is_empty(), "{verdicts:?}");
    // Supported and low_support patients only (no invisible one).
    let text = std::fs::read_to_string(small_patients()).unwrap();
    let mut subset = String::from(text.lines().next().unwrap());
    subset.push('\n');
    for l in text.lines().skip(1) {
        let id = l.split(',').next().unwrap().to_string();
        if supported.contains(&id) || low.contains(&id) {
            subset.push_str(l);
            subset.push('\n');
        }
    }
    let p = s.write("subset.csv", subset);
    let check = |strict: bool| {
        let mut args: Vec<&OsStr> = vec![
            "check".as_ref(),
            "-q".as_ref(),
            "--model".as_ref(),
            m.as_os_str(),
            "--input".as_ref(),
            p.as_os_str(),
        ];
        if strict {
            args.push("--strict".as_ref());
        }
        s.run(&args)
    };
    let plain = check(false);
    plain.no_panic();
    assert_eq!(plain.code, Some(0), "{}", plain.stderr);
    let strict = check(true);
    strict.no_panic();
    assert_eq!(strict.code, Some(1), "{}", strict.stderr);
    // Both list exactly the low_support patients.
    for run in [&plain, &strict] {
        let listed: Vec<String> = run
            .stdout_text()
            .lines()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect();
        assert_eq!(listed, low);
    }
}

// ------------------------------------------------------ parameter checks

#[test]
fn out_of_range_parameters_are_refused_before_reading() {
    let s = Scratch::new();
    let cases: &[(&[&str], &str)] = &[
        (&["--alpha", "0"], "invalid parameter alpha"),
        (&["--alpha", "1"], "invalid parameter alpha"),
        (&["--alpha", "NaN"], "invalid parameter alpha"),
        (
            &["--alpha", "0.3", "--warn-alpha", "0.2"],
            "invalid parameter warn_alpha",
        ),
        (&["--warn-alpha", "1"], "invalid parameter warn_alpha"),
        (&["--k", "0"], "invalid parameter k"),
        (&["--k", "1001"], "invalid parameter k"),
        (&["--folds", "1"], "invalid parameter folds"),
        (&["--min-coverage", "1.5"], "invalid parameter min_coverage"),
        (&["--min-coverage=-0.1"], "invalid parameter min_coverage"),
        (&["--variance", "0"], "invalid parameter variance"),
        (&["--components", "0"], "invalid parameter components"),
        (
            &["--calibration-size", "19"],
            "invalid parameter calibration_size",
        ),
    ];
    for (extra, needle) in cases {
        // The reference does not exist: the parameters are checked first.
        let mut args = vec!["fit", "--reference", "missing.csv", "--out", "m.nof1"];
        args.extend_from_slice(extra);
        let run = s.run(&os(&args));
        run.error(&[needle]);
        assert!(
            !run.stderr.contains("missing.csv"),
            "{extra:?}: {}",
            run.stderr
        );
    }
    // Values clap itself refuses (not a number) are usage errors, also 2.
    s.run(&os(&[
        "fit",
        "--reference",
        "r.csv",
        "--out",
        "m.nof1",
        "--k",
        "x",
    ]))
    .no_panic();
    assert!(!s.path("m.nof1").exists());
    // The edges of each range are accepted.
    let ok: &[&[&str]] = &[
        &["--alpha", "0.2", "--warn-alpha", "0.2"],
        &["--min-coverage", "0"],
        &["--min-coverage", "1"],
        &["--folds", "2"],
        &["--k", "1"],
    ];
    for extra in ok {
        let mut args = vec!["fit", "-q", "--out", "m.nof1", "--reference"];
        let r = small_reference();
        let r = r.to_str().unwrap();
        args.push(r);
        args.extend_from_slice(extra);
        s.run(&os(&args)).ok();
    }
}

// ------------------------------------------------- determinism, threads

#[test]
fn fit_and_assess_are_identical_across_thread_counts() {
    let s = Scratch::new();
    // 600 members × 10 features (a stored k-d tree, parallel scoring).
    let fixture = |name: &str| harness::fixtures().join("versions").join(name);
    let mut models = Vec::new();
    let mut outputs = Vec::new();
    for threads in ["1", "2", "3"] {
        let m = s.path(&format!("m{threads}.nof1"));
        let out = s.path(&format!("o{threads}.jsonl"));
        s.run(&[
            "--threads".as_ref(),
            threads.as_ref(),
            "fit".as_ref(),
            "-q".as_ref(),
            "--reference".as_ref(),
            fixture("grouped-reference.csv").as_os_str(),
            "--group-col".as_ref(),
            "site".as_ref(),
            "--calibrate-by".as_ref(),
            "site".as_ref(),
            "--out".as_ref(),
            m.as_os_str(),
        ])
        .ok();
        s.run(&[
            "--threads".as_ref(),
            threads.as_ref(),
            "assess".as_ref(),
            "-q".as_ref(),
            "--model".as_ref(),
            m.as_os_str(),
            "--input".as_ref(),
            fixture("grouped-patients.csv").as_os_str(),
            "--group-col".as_ref(),
            "site".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
        ])
        .ok();
        models.push(std::fs::read(&m).unwrap());
        outputs.push(std::fs::read(&out).unwrap());
    }
    assert!(models.len() == 3 && models[0].len() > 10_000);
    for i in 1..3 {
        assert!(
            models[i] == models[0],
            "model with {} threads differs",
            i + 1
        );
        assert!(
            outputs[i] == outputs[0],
            "output with {} threads differs",
            i + 1
        );
    }
}

// -------------------------------------------- report and audit, via CLI

#[test]
fn assess_report_writes_a_self_contained_html_report() {
    let s = Scratch::new();
    let m = s.small_model();
    s.run(&[
        "assess".as_ref(),
        "-q".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        small_patients().as_os_str(),
        "--out".as_ref(),
        "out.csv".as_ref(),
        "--report".as_ref(),
        "report.html".as_ref(),
    ])
    .ok();
    let html = std::fs::read_to_string(s.path("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert!(html.contains("<svg"), "inline SVG");
    assert!(
        !html.contains("src=\"http") && !html.contains("href=\"http"),
        "external resource"
    );
    // The invisible patients (p16..p20 are far from the reference) are listed.
    let out = OutCsv::read(&s.path("out.csv"));
    for (id, v) in out.column("id").iter().zip(out.column("verdict")) {
        if v == "invisible" {
            assert!(html.contains(id.as_str()), "{id} missing from the report");
        }
    }
    // --report and --out on the same file is refused, before any work.
    s.run(&[
        "assess".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        small_patients().as_os_str(),
        "--out".as_ref(),
        "same.html".as_ref(),
        "--report".as_ref(),
        "same.html".as_ref(),
    ])
    .error(&["--report and --out name the same file"]);
    assert!(!s.path("same.html").exists());
    assert!(s.leftovers().is_empty());
}

#[test]
fn audit_writes_its_four_files_with_counts_that_add_up() {
    let s = Scratch::new();
    grouped_reference(&s, 0);
    s.run(&os(&[
        "fit",
        "-q",
        "--reference",
        "gref.csv",
        "--group-col",
        "site",
        "--out",
        "g.nof1",
    ]))
    .ok();
    grouped_patients(&s, &["A", "B", "X"]);
    let run = s.run(&os(&[
        "audit",
        "-q",
        "--model",
        "g.nof1",
        "--input",
        "gpat.csv",
        "--group-col",
        "site",
        "--out-dir",
        "sub/audit",
    ]));
    run.ok();
    let dir = s.path("sub/audit");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "audit.json",
            "audit.tsv",
            "channels.tsv",
            "report.html",
            "scatter.svg"
        ]
    );
    let tsv = std::fs::read_to_string(dir.join("audit.tsv")).unwrap();
    let lines: Vec<&str> = tsv.lines().collect();
    let header: Vec<&str> = lines[0].split('\t').collect();
    assert_eq!(&header[..2], ["group", "n"]);
    let groups: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(groups, ["A", "B", "X", "ALL"]);
    let n: Vec<usize> = lines[1..]
        .iter()
        .map(|l| l.split('\t').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(n, [7, 7, 6, 20]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("audit.json")).unwrap()).unwrap();
    assert!(json.is_object());
    let svg = std::fs::read_to_string(dir.join("scatter.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..40.min(svg.len())]
    );
    // Without --group-col: an error before anything is written.
    s.run(&os(&[
        "audit",
        "--model",
        "g.nof1",
        "--input",
        "gpat.csv",
        "--out-dir",
        "none",
    ]))
    .error(&["--group-col"]);
    assert!(!s.path("none").exists());
    // A failing audit (missing input) creates no directory.
    s.run(&os(&[
        "audit",
        "--model",
        "g.nof1",
        "--input",
        "missing.csv",
        "--group-col",
        "site",
        "--out-dir",
        "failed",
    ]))
    .error(&["missing.csv"]);
    assert!(!s.path("failed").exists());
}

// ------------------------------------------------ streaming memory bound

/// Peak resident memory (VmHWM, kB) of `nof1 ARGS`, polled from
/// `/proc/PID/status` until it exits (the high-water mark only grows, so the
/// last reading is the peak up to the final moments of the run).
fn peak_rss_kb(s: &Scratch, args: &[&OsStr]) -> u64 {
    let child = std::process::Command::new(harness::bin())
        .args(args)
        .current_dir(s.dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let poll = std::thread::spawn(move || {
        let mut peak = 0u64;
        while let Ok(text) = std::fs::read_to_string(&status) {
            if let Some(kb) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
            {
                peak = peak.max(kb);
            }
            if text.contains("State:\tZ") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        peak
    });
    let out = harness::wait_with_timeout(child, harness::timeout(), "nof1 assess");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    poll.join().unwrap()
}

fn patients_file(s: &Scratch, name: &str, n: usize) -> PathBuf {
    use std::io::Write;
    let path = s.path(name);
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    writeln!(f, "id,f1,f2,f3,f4,f5").unwrap();
    for i in 0..n {
        let x = (i as f64 * 0.37).sin();
        writeln!(
            f,
            "patient-{i},{:.4},{:.4},10,{:.3},10",
            10.0 + x,
            10.0 - x,
            9.0 + x * x
        )
        .unwrap();
    }
    path
}

/// `assess` streams: ten times the patients do not need more memory. Holding
/// the 200,000 assessments (with their neighbours) or the parsed input would
/// take well over 50 MB more than the 20,000-patient run; the bound allows 16 MB.
#[test]
fn assess_memory_does_not_grow_with_the_number_of_patients() {
    let s = Scratch::new();
    let m = s.small_model();
    let small = patients_file(&s, "small.csv", 20_000);
    let large = patients_file(&s, "large.csv", 200_000);
    let peak = |input: &Path| {
        peak_rss_kb(
            &s,
            &[
                "assess".as_ref(),
                "-q".as_ref(),
                "--model".as_ref(),
                m.as_os_str(),
                "--input".as_ref(),
                input.as_os_str(),
                "--out".as_ref(),
                "out.csv".as_ref(),
            ],
        )
    };
    let (a, b) = (peak(&small), peak(&large));
    assert!(a > 1000, "no memory reading ({a} kB)");
    assert!(
        b <= a + 16 * 1024,
        "peak RSS {a} kB for 20,000 patients but {b} kB for 200,000"
    );
    assert_eq!(OutCsv::read(&s.path("out.csv")).rows.len(), 200_000);
}

// --------------------------------------------------------- soak (cheap)

/// The cheap form of `bench/soak.py`: 10 concurrent `assess` processes over
/// one model, each on a tenth of 20,000 patients; all succeed, and their
/// outputs, concatenated without repeated headers, equal one run on the
/// whole file byte for byte. The heavy form (a million patients, peak
/// memory reported) is `python3 bench/soak.py` (docs/robustness.md).
#[test]
fn ten_concurrent_assess_processes_on_shards_equal_one_run() {
    let s = Scratch::new();
    let m = s.small_model();
    let all = patients_file(&s, "all.csv", 20_000);
    let text = std::fs::read_to_string(&all).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let rows: Vec<&str> = lines.collect();
    let children: Vec<_> = rows
        .chunks(2_000)
        .enumerate()
        .map(|(i, chunk)| {
            let shard = s.write(
                &format!("shard{i}.csv"),
                format!("{header}\n{}\n", chunk.join("\n")),
            );
            std::process::Command::new(harness::bin())
                .args(["assess", "-q", "--threads", "1", "--model"])
                .arg(&m)
                .arg("--input")
                .arg(&shard)
                .arg("--out")
                .arg(s.path(&format!("out{i}.csv")))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    assert_eq!(children.len(), 10);
    for c in children {
        let out = harness::wait_with_timeout(c, harness::timeout(), "concurrent assess");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    s.run(&[
        "assess".as_ref(),
        "-q".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        all.as_os_str(),
        "--out".as_ref(),
        "single.csv".as_ref(),
    ])
    .ok();
    let single = std::fs::read_to_string(s.path("single.csv")).unwrap();
    let mut gathered = String::new();
    for i in 0..10 {
        let out = std::fs::read_to_string(s.path(&format!("out{i}.csv"))).unwrap();
        let body = if i == 0 {
            out.as_str()
        } else {
            out.split_once('\n').unwrap().1
        };
        gathered.push_str(body);
    }
    assert_eq!(single.lines().count(), 20_001);
    assert!(
        gathered == single,
        "the shards do not gather to the single run"
    );
    assert!(s.leftovers().is_empty());
}

// ---------------------------------------------------------------- --fdr

/// `assess --fdr Q` adds `q_value` (Benjamini–Hochberg over the batch's
/// p-values, recomputed here), calls `invisible` exactly the patients with
/// `q_value ≤ Q`, and `check --fdr Q` exits by the same rule; a level
/// outside (0, 1) is refused.
#[test]
fn fdr_adds_bh_q_values_and_decides_invisible_by_them() {
    let s = Scratch::new();
    let m = s.small_model();
    let patients = small_patients();
    let assess = |extra: &[&str]| {
        let out = s.path("fdr.csv");
        let mut args: Vec<&OsStr> = vec![
            "assess".as_ref(),
            "-q".as_ref(),
            "--model".as_ref(),
            m.as_os_str(),
            "--input".as_ref(),
            patients.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        args.extend(os(extra));
        s.run(&args).ok();
        OutCsv::read(&out)
    };
    let plain = assess(&[]);
    assert!(!plain.header.iter().any(|h| h == "q_value"));
    let q_level = 0.1;
    let adjusted = assess(&["--fdr", "0.1"]);
    let h = &adjusted.header;
    let at = |name: &str| h.iter().position(|x| x == name).unwrap();
    assert_eq!(at("q_value") + 1, at("note"), "{h:?}");
    assert_eq!(at("reason") + 1, at("q_value"), "{h:?}");
    let p: Vec<f64> = adjusted
        .column("p_value")
        .iter()
        .map(|x| x.parse().unwrap())
        .collect();
    let q: Vec<f64> = adjusted
        .column("q_value")
        .iter()
        .map(|x| x.parse().unwrap())
        .collect();
    // Benjamini–Hochberg by hand: q_(i) = min_{j ≥ i} p_(j) m / j.
    let n = p.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let mut want = vec![0.0; n];
    let mut running = 1.0f64;
    for rank in (0..n).rev() {
        let i = order[rank];
        running = running.min(p[i] * n as f64 / (rank + 1) as f64);
        want[i] = running;
    }
    for i in 0..n {
        assert!(
            (q[i] - want[i]).abs() < 1e-12,
            "row {i}: q {} want {}",
            q[i],
            want[i]
        );
        assert!(q[i] >= p[i]);
    }
    let verdicts = adjusted.column("verdict");
    for (i, v) in verdicts.iter().enumerate() {
        assert_eq!(
            v == "invisible",
            q[i] <= q_level,
            "row {i}: {v}, q {}",
            q[i]
        );
    }
    let n_fdr = verdicts.iter().filter(|v| *v == "invisible").count();
    let n_plain = plain
        .column("verdict")
        .iter()
        .filter(|v| *v == "invisible")
        .count();
    assert!(n_fdr > 0 && n_fdr <= n_plain, "{n_fdr} vs {n_plain}");
    // check --fdr: exit 1 when some q ≤ Q; a level outside (0, 1) is an error.
    let check = |level: &str| {
        s.run(&os(&[
            "check",
            "-q",
            "--model",
            m.to_str().unwrap(),
            "--input",
            patients.to_str().unwrap(),
            "--fdr",
            level,
        ]))
    };
    let run = check("0.1");
    run.no_panic();
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    check("1.5").error(&["--fdr must be in (0, 1)"]);
}

// ------------------------------------------------- eval adbench --missing

/// An ADBench-style table (`id,label,f0,...,f5`): `normal` rows from a
/// correlated Gaussian, then `anomalies` rows shifted by 5 in every feature.
fn adbench_table(normal: usize, anomalies: usize, seed: u64) -> String {
    let mut rng = nof1::rng::SplitMix64::new(seed);
    let mut out = String::from("id,label,f0,f1,f2,f3,f4,f5\n");
    for i in 0..normal + anomalies {
        let anomaly = i >= normal;
        let shift = if anomaly { 5.0 } else { 0.0 };
        let (a, b) = (rng.normal(), rng.normal());
        let row: Vec<String> = (0..6)
            .map(|j| {
                let v = if j % 2 == 0 { a } else { b } + 0.4 * rng.normal() + shift;
                format!("{v:.4}")
            })
            .collect();
        out.push_str(&format!("r{i},{},{}\n", u8::from(anomaly), row.join(",")));
    }
    out
}

#[test]
fn eval_adbench_missing_rescores_masked_patients_and_checks_the_binomial_range() {
    let s = Scratch::new();
    std::fs::create_dir(s.path("tables")).unwrap();
    s.write("tables/a.csv", adbench_table(200, 20, 1));
    s.write("tables/b.csv", adbench_table(150, 15, 2));
    let eval = |missing: &str, threads: &str| {
        s.run(&os(&[
            "eval",
            "--threads",
            threads,
            "adbench",
            "tables",
            "--seeds",
            "1",
            "--missing",
            missing,
        ]))
    };
    let masked = eval("0.3", "1");
    masked.ok();
    let text = masked.stdout_text();
    // Per table: n_ref, c, AUROC, knn, resid, false_inv, detected.
    for name in ["a ", "b "] {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no line for table {name:?}:\n{text}"));
        let f: Vec<f64> = line
            .split_whitespace()
            .skip(1)
            .map(|x| x.parse().unwrap())
            .collect();
        assert!(
            f[2] > 0.9,
            "AUROC of shifted anomalies with 30% missing: {line}"
        );
        // 60 or 45 held-out normal rows at alpha 0.05: above 0.2 has
        // binomial probability below 1e-4.
        assert!(f[5] <= 0.2, "false-invisible rate: {line}");
    }
    assert!(
        text.contains("against the central 95% binomial range at alpha")
            && text.contains("  a                n    60 invisible")
            && text.contains("  b                n    45 invisible")
            && text.contains("tables outside the range: "),
        "{text}"
    );
    // The masked path is what ran, and it does not depend on the threads.
    assert_ne!(eval("0", "1").stdout, masked.stdout);
    assert_eq!(eval("0.3", "2").stdout, masked.stdout);
    eval("1", "1").error(&["--missing must be in [0, 1)"]);
}
