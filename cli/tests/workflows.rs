//! The scatter pattern of `workflows/`: `split.sh` cuts a patient file into
//! shards, each shard is assessed by its own `nof1 assess` run against one
//! shared model, and `gather.sh` concatenates the outputs. The result must be
//! byte for byte the output of a single run on the whole file.
//!
//! These tests run the real scripts with `bash`; where no `bash` can be
//! started they fail with a message saying so (never pass in silence).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use harness::{Run, Scratch, fixtures, run_command, small_patients};

/// `workflows/` of this crate.
fn workflows() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("workflows")
}

/// Fails the test with a message when `bash` cannot be run here: the
/// workflow scripts need it, and a test that returned early would pass
/// without checking anything.
#[track_caller]
fn require_bash() {
    match Command::new("bash")
        .args(["-c", "exit 0"])
        .stdin(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => {}
        other => panic!("the workflow tests need bash, which cannot be run here ({other:?})"),
    }
}

/// Runs `bash workflows/SCRIPT args...` in the scratch directory.
fn script<S: AsRef<OsStr>>(s: &Scratch, name: &str, args: &[S], stdin: Option<&[u8]>) -> Run {
    let mut cmd = Command::new("bash");
    cmd.arg(workflows().join(name))
        .args(args)
        .current_dir(s.dir());
    run_command(cmd, stdin)
}

fn os(items: &[&str]) -> Vec<OsString> {
    items.iter().map(OsString::from).collect()
}

/// Fits `reference` into `model.nof1` (one fit, shared by every shard).
fn fit(s: &Scratch, reference: &Path, extra: &[&str]) -> PathBuf {
    let model = s.path("model.nof1");
    let mut args = os(&["--quiet", "fit", "--reference"]);
    args.push(reference.into());
    args.extend(os(&["--out"]));
    args.push(model.clone().into());
    args.extend(os(extra));
    s.run(&args).ok();
    model
}

/// `nof1 --threads 1 --quiet assess --model M --input IN --out OUT extra...`.
fn assess(s: &Scratch, model: &Path, input: &Path, out: &Path, extra: &[&str]) {
    let mut args = os(&["--threads", "1", "--quiet", "assess", "--model"]);
    args.push(model.into());
    args.push("--input".into());
    args.push(input.into());
    args.push("--out".into());
    args.push(out.into());
    args.extend(os(extra));
    s.run(&args).ok();
}

/// What one scatter/gather round left behind.
struct Scattered {
    /// Shard files, in shard order (as printed by split.sh).
    shards: Vec<PathBuf>,
    /// Their `nof1 assess` outputs, in the same order.
    outputs: Vec<PathBuf>,
    /// The gathered result.
    gathered: Vec<u8>,
    /// The output of a single run on the whole file.
    single: Vec<u8>,
}

/// Splits `input` with `split_args`, assesses every shard with `assess_args`
/// into `.EXT` files, gathers them with `gather_args`, and runs one
/// assessment of the whole file for comparison.
fn scatter(
    s: &Scratch,
    model: &Path,
    input: &Path,
    split_args: &[&str],
    assess_args: &[&str],
    ext: &str,
    gather_args: &[&str],
) -> Scattered {
    let shard_dir = s.path("shards");
    let mut args = os(split_args);
    args.push("-o".into());
    args.push(shard_dir.clone().into());
    args.push(input.into());
    let split = script(s, "split.sh", &args, None);
    assert_eq!(split.code, Some(0), "split.sh failed:\n{}", split.stderr);
    let shards: Vec<PathBuf> = split.stdout_text().lines().map(PathBuf::from).collect();
    assert!(!shards.is_empty(), "split.sh printed no shard");

    // The printed order is the lexical order of the names, and the directory
    // holds nothing else: a glob such as shard-*.csv gives the shard order.
    let mut listed: Vec<PathBuf> = std::fs::read_dir(&shard_dir)
        .expect("list the shards")
        .map(|e| e.expect("entry").path())
        .collect();
    listed.sort();
    assert_eq!(listed, shards, "shards on disk vs printed by split.sh");
    for (k, shard) in shards.iter().enumerate() {
        let name = shard.file_name().unwrap().to_string_lossy().into_owned();
        let index: usize = name
            .trim_start_matches("shard-")
            .split('.')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("shard name {name:?} has no index"));
        assert_eq!(index, k, "shard {name} is not at position {k}");
    }

    let out_dir = s.path("assessed");
    std::fs::create_dir_all(&out_dir).expect("create the output directory");
    let mut outputs = Vec::new();
    for shard in &shards {
        let stem = shard.file_stem().unwrap().to_string_lossy().into_owned();
        let out = out_dir.join(format!("{stem}.{ext}"));
        assess(s, model, shard, &out, assess_args);
        outputs.push(out);
    }

    let result = s.path(&format!("gathered.{ext}"));
    let mut args = os(gather_args);
    args.push("-o".into());
    args.push(result.clone().into());
    args.extend(outputs.iter().map(OsString::from));
    let gather = script(s, "gather.sh", &args, None);
    assert_eq!(gather.code, Some(0), "gather.sh failed:\n{}", gather.stderr);
    let gathered = std::fs::read(&result).expect("read the gathered output");

    let single_path = s.path(&format!("single.{ext}"));
    assess(s, model, input, &single_path, assess_args);
    let single = std::fs::read(&single_path).expect("read the single output");

    Scattered {
        shards,
        outputs,
        gathered,
        single,
    }
}

/// Lines of a file (LF-terminated text).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .expect("read a text file")
        .lines()
        .map(String::from)
        .collect()
}

/// Asserts the gathered bytes equal the single run, with a readable diff.
#[track_caller]
fn assert_same(sc: &Scattered) {
    assert!(
        sc.gathered == sc.single,
        "gathered output differs from a single run\n--- gathered\n{}\n--- single\n{}",
        String::from_utf8_lossy(&sc.gathered),
        String::from_utf8_lossy(&sc.single)
    );
}

/// Asserts every shard starts with `header` and holds `sizes[k]` rows, and
/// that its output has one header plus one line per row.
#[track_caller]
fn assert_shards(sc: &Scattered, header: &str, sizes: &[usize], output_has_header: bool) {
    let got: Vec<usize> = sc.shards.iter().map(|p| lines(p).len() - 1).collect();
    assert_eq!(got, sizes, "rows per shard");
    for (shard, out) in sc.shards.iter().zip(&sc.outputs) {
        let shard_lines = lines(shard);
        assert_eq!(shard_lines[0], header, "header of {}", shard.display());
        let extra = usize::from(output_has_header);
        assert_eq!(
            lines(out).len(),
            shard_lines.len() - 1 + extra,
            "output rows of {}",
            shard.display()
        );
    }
}

fn small_header() -> String {
    std::fs::read_to_string(small_patients())
        .expect("read the small patients")
        .lines()
        .next()
        .expect("header")
        .to_string()
}

#[test]
fn balanced_shards_gather_to_the_single_run() {
    require_bash();
    let s = Scratch::new();
    let model = s.small_model();
    let sc = scatter(&s, &model, &small_patients(), &["-n", "3"], &[], "csv", &[]);
    assert_shards(&sc, &small_header(), &[7, 7, 6], true);
    assert_same(&sc);
    let text = String::from_utf8(sc.gathered.clone()).expect("UTF-8");
    assert_eq!(text.matches("id,verdict,").count(), 1, "one header line");
    assert_eq!(text.lines().count(), 21);
}

#[test]
fn real_genotypes_tsv_in_shards_of_400_rows_with_an_uneven_last_one() {
    require_bash();
    let s = Scratch::new();
    // 1000 Genomes panel as TSV: every fourth person is the reference, and
    // all 2,504 are assessed, in shards of 400 (the last one holds 104).
    let csv = std::fs::read_to_string(fixtures().join("1000genomes-aisnp/seldin_128_dosage.csv"))
        .expect("read the 1000 Genomes fixture");
    let tsv: Vec<String> = csv.lines().map(|l| l.replace(',', "\t")).collect();
    let reference: String = tsv
        .iter()
        .enumerate()
        .filter(|(i, _)| *i == 0 || i % 4 == 1)
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let reference = s.write("reference.tsv", reference);
    let patients = s.write("patients.tsv", tsv.join("\n") + "\n");
    let exclude = ["--exclude", "population,superpopulation,sex"];
    let model = fit(&s, &reference, &exclude);
    let sc = scatter(&s, &model, &patients, &["-l", "400"], &exclude, "tsv", &[]);
    assert_shards(&sc, &tsv[0], &[400, 400, 400, 400, 400, 400, 104], true);
    assert_same(&sc);
    assert_eq!(sc.gathered.iter().filter(|&&b| b == b'\n').count(), 2505);
}

#[test]
fn crlf_input_with_bom_blank_lines_and_no_final_newline() {
    require_bash();
    let s = Scratch::new();
    let model = s.small_model();
    let text = std::fs::read_to_string(small_patients()).expect("read the small patients");
    let rows: Vec<&str> = text.lines().collect();
    // BOM, CRLF, an empty line after row 5 (nof1 skips it), no final newline.
    let mut crlf = String::from("\u{feff}");
    for (i, line) in rows.iter().enumerate() {
        if i > 0 {
            crlf.push_str("\r\n");
        }
        crlf.push_str(line);
        if i == 5 {
            crlf.push_str("\r\n");
        }
    }
    assert!(!crlf.ends_with('\n'));
    let input = s.write("patients.csv", &crlf);
    let sc = scatter(&s, &model, &input, &["-n", "4"], &[], "csv", &[]);
    // Shards are LF text with the header (BOM kept) repeated.
    let header = format!("\u{feff}{}", rows[0]);
    assert_shards(&sc, &header, &[5, 5, 5, 5], true);
    for shard in &sc.shards {
        let bytes = std::fs::read(shard).expect("read a shard");
        assert!(!bytes.contains(&b'\r'), "CR left in {}", shard.display());
        assert!(bytes.ends_with(b"\n"));
    }
    assert_same(&sc);

    // The same file through standard input gives the same shards.
    let stdin_dir = s.path("from-stdin");
    let run = script(
        &s,
        "split.sh",
        &os(&["-n", "4", "-o", stdin_dir.to_str().unwrap(), "-"]),
        Some(crlf.as_bytes()),
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    for shard in &sc.shards {
        let twin = stdin_dir.join(shard.file_name().unwrap());
        assert_eq!(std::fs::read(&twin).ok(), std::fs::read(shard).ok());
    }
    let leftovers: Vec<_> = std::fs::read_dir(&stdin_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn more_shards_than_rows_and_json_lines() {
    require_bash();
    let s = Scratch::new();
    let model = s.small_model();
    // 20 rows into 25 shards: the last 5 are header-only, and their JSONL
    // outputs are empty files.
    let sc = scatter(
        &s,
        &model,
        &small_patients(),
        &["-n", "25"],
        &["--format", "jsonl"],
        "jsonl",
        &["-H"],
    );
    let mut sizes = vec![1; 20];
    sizes.extend([0; 5]);
    assert_shards(&sc, &small_header(), &sizes, false);
    assert_same(&sc);
    assert_eq!(String::from_utf8_lossy(&sc.gathered).lines().count(), 20);
}

#[test]
fn a_wrong_gather_is_caught() {
    require_bash();
    let s = Scratch::new();
    let model = s.small_model();
    let sc = scatter(&s, &model, &small_patients(), &["-l", "8"], &[], "csv", &[]);
    assert_shards(&sc, &small_header(), &[8, 8, 4], true);
    assert_same(&sc);

    // What the tests above would catch: a plain `cat` keeps every header,
    // and gathering in another order (e.g. by completion) moves rows.
    let cat: Vec<u8> = sc
        .outputs
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_ne!(cat, sc.single);
    let mut reversed = sc.outputs.clone();
    reversed.reverse();
    let run = script(&s, "gather.sh", &reversed, None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_ne!(run.stdout, sc.single);

    // gather.sh refuses outputs whose headers differ, and empty ones, before
    // writing anything.
    let tsv = s.path("other.tsv");
    assess(&s, &model, &sc.shards[1], &tsv, &[]);
    let mut mixed: Vec<PathBuf> = sc.outputs.clone();
    mixed[1] = tsv;
    let run = script(&s, "gather.sh", &mixed, None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("header"), "{}", run.stderr);
    assert!(run.stdout.is_empty());
    let empty = s.write("empty.csv", "");
    let run = script(&s, "gather.sh", &[&sc.outputs[0], &empty], None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);

    // split.sh refuses to mix with the shards of an earlier run unless -f.
    let shard_dir = s.path("shards");
    let args = |force: bool| {
        let mut a = os(&["-n", "2", "-o", shard_dir.to_str().unwrap()]);
        if force {
            a.push("-f".into());
        }
        a.push(small_patients().into());
        a
    };
    let run = script(&s, "split.sh", &args(false), None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let run = script(&s, "split.sh", &args(true), None);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert_eq!(std::fs::read_dir(&shard_dir).unwrap().count(), 2);
}

#[test]
fn bad_arguments_exit_2_with_usage() {
    require_bash();
    let s = Scratch::new();
    let patients = small_patients();
    let p = patients.to_str().unwrap();
    for args in [
        vec![p],
        vec!["-n", "0", p],
        vec!["-l", "x", p],
        vec!["-n", "2", "-l", "3", p],
        vec!["-n", "2"],
        vec!["-q", p],
    ] {
        let run = script(&s, "split.sh", &args, None);
        assert_eq!(run.code, Some(2), "split.sh {args:?}: {}", run.stderr);
        assert!(run.stderr.contains("-h"), "{}", run.stderr);
    }
    for args in [vec![], vec!["-x", p], vec!["-o"]] {
        let run = script(&s, "gather.sh", &args, None);
        assert_eq!(run.code, Some(2), "gather.sh {args:?}: {}", run.stderr);
    }
    for name in ["split.sh", "gather.sh"] {
        let run = script(&s, name, &["-h"], None);
        assert_eq!(run.code, Some(0));
        assert!(run.stdout_text().starts_with("Usage: "), "{name}");
    }
    // Not a usage error, but no input: exit 1.
    let run = script(&s, "split.sh", &["-n", "2", "missing.csv"], None);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let empty = s.write("empty.csv", "\n\r\n");
    let run = script(
        &s,
        "split.sh",
        &[OsStr::new("-n"), "2".as_ref(), empty.as_os_str()],
        None,
    );
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    assert!(run.stderr.contains("header"), "{}", run.stderr);
}
