//! Exit codes that survive a closed pipe, and kills that lose nothing.
//!
//! - `check` exits 1 when a patient is invisible even if the reader of its
//!   stdout stops early (`| head` under `set -o pipefail`); the same with
//!   `--strict` for low_support. `assess --out -` into a closed pipe exits
//!   non-zero: never 0 with output lost.
//! - `fit`, `assess` and `audit` fed through a FIFO and killed mid-stream
//!   (SIGTERM, SIGINT) leave nothing at their output path and no temporary
//!   file; a run killed outright (SIGKILL) leaves a temporary file that the
//!   next run beside it removes.
//!
//! Everything runs under the harness timeout; the FIFOs are opened read-write
//! by the test, which never blocks, and are written less than a pipe buffer,
//! so the test cannot hang whatever the binary does.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harness::{OutCsv, Scratch, small_patients};

/// Runs `bash -c 'set -o pipefail; "$NOF1" ARGS | head -1'` in the scratch
/// directory; returns the pipeline's exit code and stderr.
fn through_head(s: &Scratch, args: &str) -> (Option<i32>, String) {
    harness::require_program("bash", "for a pipeline under pipefail");
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "set -o pipefail; \"$NOF1\" {args} | head -1 >/dev/null"
        ))
        .env("NOF1", harness::bin())
        .current_dir(s.dir());
    let run = harness::run_command(cmd, None);
    run.no_panic();
    (run.code, run.stderr)
}

/// A patient file: `before` rows the model cannot assess (every feature
/// missing: `insufficient_data`, listed by `check` but never failing it),
/// then the `last` row. The listing is far larger than a pipe buffer, so
/// `head -1` closes the pipe long before `check` reaches `last`.
fn listing_then(s: &Scratch, name: &str, before: usize, last: &str) -> PathBuf {
    let mut text = String::from("id,f1,f2,f3,f4,f5\n");
    for i in 0..before {
        text.push_str(&format!("na{i},NA,NA,NA,NA,NA\n"));
    }
    text.push_str(last);
    text.push('\n');
    s.write(name, text)
}

/// The fixture row (`id,f1,..,f5`) of the first patient with `verdict`
/// against the small model.
fn fixture_row_with(s: &Scratch, model: &Path, verdict: &str) -> String {
    let out = s.path("baseline.csv");
    s.run(&[
        "assess".as_ref(),
        "--model".as_ref(),
        model.as_os_str(),
        "--input".as_ref(),
        small_patients().as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
        "-q".as_ref(),
    ])
    .ok();
    let out = OutCsv::read(&out);
    let (ids, verdicts) = (out.column("id"), out.column("verdict"));
    let id = ids
        .iter()
        .zip(&verdicts)
        .find(|(_, v)| *v == verdict)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no {verdict} patient in the fixture"));
    std::fs::read_to_string(small_patients())
        .unwrap()
        .lines()
        .find(|l| l.split(',').next() == Some(id.as_str()))
        .unwrap()
        .to_string()
}

#[test]
fn check_exits_1_for_an_invisible_patient_after_the_reader_stopped() {
    let s = Scratch::new();
    let m = s.small_model();
    let p = listing_then(&s, "p.csv", 20_000, "far,90,-90,90,-90,90");
    let (code, stderr) = through_head(
        &s,
        &format!("check -q --model {} --input p.csv", m.display()),
    );
    assert_eq!(code, Some(1), "stderr:\n{stderr}");
    // Without the invisible patient: 0 (the listing was cut, the verdict is complete).
    let q = listing_then(&s, "q.csv", 20_000, "na-last,NA,NA,NA,NA,NA");
    let (code, stderr) = through_head(
        &s,
        &format!("check -q --model {} --input q.csv", m.display()),
    );
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
    assert!(p.exists() && q.exists());
}

#[test]
fn check_strict_exits_1_for_a_low_support_patient_after_the_reader_stopped() {
    let s = Scratch::new();
    let m = s.small_model();
    let low = fixture_row_with(&s, &m, "low_support");
    listing_then(&s, "p.csv", 20_000, &low);
    let args = format!("check -q --model {} --input p.csv", m.display());
    let (code, stderr) = through_head(&s, &format!("{args} --strict"));
    assert_eq!(code, Some(1), "--strict; stderr:\n{stderr}");
    // Not strict, low_support does not fail the check.
    let (code, stderr) = through_head(&s, &args);
    assert_eq!(code, Some(0), "stderr:\n{stderr}");
}

#[test]
fn assess_into_a_closed_pipe_exits_non_zero() {
    let s = Scratch::new();
    let m = s.small_model();
    let mut text = String::from("id,f1,f2,f3,f4,f5\n");
    for i in 0..20_000 {
        text.push_str(&format!("c{i},10,10,{},10,10\n", 9 + i % 3));
    }
    s.write("p.csv", text);
    for format in ["csv", "jsonl"] {
        let (code, stderr) = through_head(
            &s,
            &format!(
                "assess -q --model {} --input p.csv --out - --format {format}",
                m.display()
            ),
        );
        assert_eq!(code, Some(2), "{format}: stderr:\n{stderr}");
        assert!(
            stderr.contains("nof1: error:") && stderr.contains("Broken pipe"),
            "{format}: {stderr}"
        );
    }
}

// ------------------------------------------------------------------ kills

/// A FIFO the test holds open read-write (an open that never blocks) and
/// has written `text` into; `text` must fit in a pipe buffer (64 KiB).
struct Feed {
    _file: std::fs::File,
}

fn feed(path: &Path, text: &str) -> Feed {
    assert!(text.len() < 60_000, "would block on a full pipe");
    harness::mkfifo(path);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .expect("open the FIFO");
    file.write_all(text.as_bytes()).expect("write to the FIFO");
    Feed { _file: file }
}

/// Whether process `pid` has `path` open (Linux `/proc/PID/fd`).
fn has_open(pid: u32, path: &Path) -> bool {
    let want = path.canonicalize().unwrap();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten()
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == want))
        })
        .unwrap_or(false)
}

/// Polls `cond` until it holds, failing the test after the harness timeout.
#[track_caller]
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < harness::timeout(),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends signal `sig` (`TERM`, `INT`, `KILL`) to `pid` with kill(1).
fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -s {sig} {pid}: {st:?}");
}

/// 1,000 patient rows (about 40 KB): less than a pipe buffer.
fn rows(with_group: bool) -> String {
    let mut text = String::from(if with_group {
        "id,f1,f2,f3,f4,f5,site\n"
    } else {
        "id,f1,f2,f3,f4,f5\n"
    });
    for i in 0..1000 {
        let x = (i as f64 * 0.37).sin();
        text.push_str(&format!("c{i},{:.4},{:.4},10,10,10", 10.0 + x, 10.0 - x));
        text.push_str(if with_group {
            if i % 2 == 0 { ",A\n" } else { ",B\n" }
        } else {
            "\n"
        });
    }
    text
}

/// Starts `nof1 ARGS` reading `fifo` (fed with `text`), waits until it has
/// the FIFO open, and, if `tmp` is given, until that temporary output
/// exists; then sends `sig` and returns the exit code.
fn kill_mid_stream(
    s: &Scratch,
    args: &[&OsStr],
    fifo: &Path,
    text: &str,
    tmp_of: Option<&Path>,
    sig: &str,
) -> Option<i32> {
    let _feed = feed(fifo, text);
    let child = Command::new(harness::bin())
        .args(args)
        .current_dir(s.dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nof1");
    let pid = child.id();
    wait_until("nof1 to open the FIFO", || has_open(pid, fifo));
    if let Some(target) = tmp_of {
        let tmp = target.with_file_name(format!(
            ".{}.tmp-{pid}",
            target.file_name().unwrap().to_string_lossy()
        ));
        wait_until("the temporary output", || tmp.exists());
    }
    signal(pid, sig);
    let out = harness::wait_with_timeout(child, harness::timeout(), "killed nof1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    if sig != "KILL" {
        assert!(stderr.contains("nof1: interrupted"), "{stderr}");
    }
    out.status.code()
}

fn os<'a>(items: &'a [&'a str]) -> Vec<&'a OsStr> {
    items.iter().map(OsStr::new).collect()
}

const SIGNALS: [(&str, i32); 2] = [("TERM", 143), ("INT", 130)];

/// `assess --model model.nof1 --input fifo --out out.csv EXTRA...` killed by
/// SIG`sig` once it has opened the FIFO and created its temporary output.
fn kill_assess_mid_stream(s: &Scratch, extra: &[&str], sig: &str) -> Option<i32> {
    let mut args = vec![
        "assess",
        "--model",
        "model.nof1",
        "--input",
        "fifo",
        "--out",
        "out.csv",
    ];
    args.extend_from_slice(extra);
    kill_mid_stream(
        s,
        &os(&args),
        &s.path("fifo"),
        &rows(false),
        Some(&s.path("out.csv")),
        sig,
    )
}

#[test]
fn assess_killed_mid_stream_leaves_nothing() {
    for (sig, code) in SIGNALS {
        let s = Scratch::new();
        let m = s.small_model();
        let got = kill_assess_mid_stream(&s, &["--report", "r.html"], sig);
        assert_eq!(got, Some(code), "SIG{sig}");
        assert!(
            !s.path("out.csv").exists() && !s.path("r.html").exists(),
            "SIG{sig}"
        );
        assert_eq!(s.leftovers(), Vec::<String>::new(), "SIG{sig}");
        assert!(m.exists());
    }
}

#[test]
fn fit_killed_mid_stream_leaves_nothing_and_keeps_an_old_model() {
    for (sig, code) in SIGNALS {
        let s = Scratch::new();
        // An existing model at --out stays byte-identical.
        let m = s.small_model();
        let before = std::fs::read(&m).unwrap();
        let reference = std::fs::read_to_string(harness::small_reference()).unwrap();
        let args = ["fit", "--reference", "fifo", "--out", "model.nof1"];
        let got = kill_mid_stream(&s, &os(&args), &s.path("fifo"), &reference, None, sig);
        assert_eq!(got, Some(code), "SIG{sig}");
        assert_eq!(std::fs::read(&m).unwrap(), before);
        let args = ["fit", "--reference", "fifo2", "--out", "new.nof1"];
        let got = kill_mid_stream(&s, &os(&args), &s.path("fifo2"), &reference, None, sig);
        assert_eq!(got, Some(code), "SIG{sig}");
        assert!(!s.path("new.nof1").exists());
        assert_eq!(s.leftovers(), Vec::<String>::new(), "SIG{sig}");
    }
}

#[test]
fn audit_killed_mid_stream_leaves_no_directory() {
    let s = Scratch::new();
    let r = s.path("ref.csv");
    let mut text = String::from("id,f1,f2,f3,f4,f5,site\n");
    for (i, l) in std::fs::read_to_string(harness::small_reference())
        .unwrap()
        .lines()
        .skip(1)
        .enumerate()
    {
        text.push_str(&format!("{l},{}\n", if i % 2 == 0 { "A" } else { "B" }));
    }
    std::fs::write(&r, text).unwrap();
    s.run(&[
        "fit",
        "--reference",
        "ref.csv",
        "--group-col",
        "site",
        "--out",
        "g.nof1",
        "-q",
    ])
    .ok();
    for (sig, code) in SIGNALS {
        let fifo = s.path(&format!("fifo-{sig}"));
        let dir = format!("audit-{sig}");
        let args = [
            "audit",
            "--model",
            "g.nof1",
            "--input",
            fifo.to_str().unwrap(),
            "--group-col",
            "site",
            "--out-dir",
            &dir,
        ];
        let got = kill_mid_stream(&s, &os(&args), &fifo, &rows(true), None, sig);
        assert_eq!(got, Some(code), "SIG{sig}");
        assert!(!s.path(&dir).exists(), "SIG{sig}: {dir} was created");
    }
    assert_eq!(s.leftovers(), Vec::<String>::new());
}

/// SIGKILL cannot be caught: the temporary file stays, never the target,
/// and the next run writing beside it removes it.
#[test]
fn a_stray_of_a_killed_run_is_removed_by_the_next_run() {
    let s = Scratch::new();
    s.small_model();
    let got = kill_assess_mid_stream(&s, &[], "KILL");
    assert_eq!(got, None, "killed by a signal");
    assert!(!s.path("out.csv").exists());
    let strays = s.leftovers();
    assert_eq!(strays.len(), 1, "{strays:?}");
    s.write("p.csv", rows(false));
    s.run(&[
        "assess",
        "--model",
        "model.nof1",
        "--input",
        "p.csv",
        "--out",
        "out.csv",
        "-q",
    ])
    .ok();
    assert_eq!(OutCsv::read(&s.path("out.csv")).rows.len(), 1000);
    assert_eq!(s.leftovers(), Vec::<String>::new());
}
