//! Used by the CLI tests that run the real `nof1` binary (`cli.rs`,
//! `behaviours.rs`, `genotypes.rs`, `never_lose.rs`, `omics.rs`,
//! `pipes_and_signals.rs`, `schema.rs`, `workflows.rs` in `cli/tests/`): a
//! scratch directory, a command builder and assertions on the exit code and
//! stderr.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nof1")
}

/// How long one command may run before the test kills it and fails:
/// `NOF1_TEST_TIMEOUT` seconds, 600 by default (generous for a loaded
/// machine; the point is that no test can hang for ever).
pub fn timeout() -> std::time::Duration {
    let secs = std::env::var("NOF1_TEST_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    std::time::Duration::from_secs(secs)
}

/// Waits for `child` at most `limit`; past it the child is killed and the
/// test fails naming `what`. Standard output and error, when piped, are read
/// on their own threads so a chatty child cannot block.
#[track_caller]
pub fn wait_with_timeout(
    mut child: std::process::Child,
    limit: std::time::Duration,
    what: &str,
) -> Output {
    use std::io::Read;
    fn drain<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    }
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for a command") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {limit:?}; killed (NOF1_TEST_TIMEOUT sets the limit)"
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Runs `cmd` with its output captured, feeding `stdin` (or closed stdin),
/// under [`timeout`].
#[track_caller]
pub fn run_command(mut cmd: Command, stdin: Option<&[u8]>) -> Run {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let what = format!("{cmd:?}");
    let out: Output = match stdin {
        None => {
            let child = cmd.stdin(Stdio::null()).spawn().expect("spawn a command");
            wait_with_timeout(child, timeout(), &what)
        }
        Some(bytes) => {
            use std::io::Write;
            let mut child = cmd.stdin(Stdio::piped()).spawn().expect("spawn a command");
            let mut pipe = child.stdin.take().expect("stdin");
            let data = bytes.to_vec();
            let feeder = std::thread::spawn(move || {
                let _ = pipe.write_all(&data);
            });
            let out = wait_with_timeout(child, timeout(), &what);
            let _ = feeder.join();
            out
        }
    };
    Run {
        code: out.status.code(),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Fails the test with a message when the external program `name` cannot be
/// run (`name --version`); a test needing it must not pass in silence.
#[track_caller]
pub fn require_program(name: &str, why: &str) {
    let ok = Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs `{name}` ({why}), which cannot be run here"
    );
}

/// Makes a FIFO at `path` with `mkfifo` (failing the test with a message if
/// it cannot).
#[track_caller]
pub fn mkfifo(path: &Path) {
    require_program("mkfifo", "to make a named pipe");
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("run mkfifo");
    assert!(st.success(), "mkfifo {} failed: {st:?}", path.display());
}

/// The crate's `fixtures/` directory.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("fixtures")
}

/// The small reference (60 members × 5 features f1..f5).
pub fn small_reference() -> PathBuf {
    fixtures().join("small/reference.csv")
}

/// The small patient file (20 patients, ids p1..p20).
pub fn small_patients() -> PathBuf {
    fixtures().join("small/patients.csv")
}

/// A scratch directory removed when dropped; commands run inside it.
pub struct Scratch {
    dir: tempfile::TempDir,
}

/// What a finished command left behind.
#[derive(Debug)]
pub struct Run {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error, lossy UTF-8.
    pub stderr: String,
}

impl Run {
    /// Standard output as (lossy) text.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Asserts exit code 0 and no panic.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        self.no_panic();
        assert_eq!(
            self.code,
            Some(0),
            "expected success; stderr:\n{}",
            self.stderr
        );
        self
    }

    /// Asserts exit code 2, no panic, and that stderr holds every needle.
    #[track_caller]
    pub fn error(&self, needles: &[&str]) -> &Self {
        self.no_panic();
        assert_eq!(
            self.code,
            Some(2),
            "expected exit 2; stderr:\n{}",
            self.stderr
        );
        assert!(
            self.stderr.contains("nof1: error:"),
            "no error line; stderr:\n{}",
            self.stderr
        );
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "stderr lacks {n:?}; stderr:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Asserts stderr does not report a panic.
    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        assert!(
            !self.stderr.contains("panicked") && self.code != Some(101),
            "panic; stderr:\n{}",
            self.stderr
        );
        self
    }
}

impl Scratch {
    /// A fresh empty directory.
    pub fn new() -> Scratch {
        Scratch {
            dir: tempfile::Builder::new()
                .prefix("nof1-cli-")
                .tempdir()
                .expect("create a scratch directory"),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `bytes` to `name` and returns its path.
    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, bytes).expect("write a scratch file");
        p
    }

    /// Runs `nof1 args...` in the directory (stdin closed).
    pub fn run<S: AsRef<std::ffi::OsStr>>(&self, args: &[S]) -> Run {
        self.run_with_stdin(args, None)
    }

    /// Runs `nof1 args...` feeding `stdin`.
    pub fn run_with_stdin<S: AsRef<std::ffi::OsStr>>(
        &self,
        args: &[S],
        stdin: Option<&[u8]>,
    ) -> Run {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .current_dir(self.dir())
            .env("SOURCE_DATE_EPOCH", "1700000000");
        run_command(cmd, stdin)
    }

    /// Fits the small fixture reference into `model.nof1` and returns its path.
    pub fn small_model(&self) -> PathBuf {
        let out = self.path("model.nof1");
        self.run(&[
            "fit".as_ref(),
            "--reference".as_ref(),
            small_reference().as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "-q".as_ref(),
        ])
        .ok();
        out
    }

    /// File names in the directory that look like leftovers of an aborted write.
    pub fn leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.dir())
            .expect("list the scratch directory")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-") || n.starts_with(".nof1-probe"))
            .collect()
    }
}

/// A parsed assessment CSV: header and rows of fields.
#[derive(Debug, Clone, PartialEq)]
pub struct OutCsv {
    /// Column names.
    pub header: Vec<String>,
    /// Rows, in file order.
    pub rows: Vec<Vec<String>>,
}

impl OutCsv {
    /// Parses CSV text (quoted fields allowed).
    pub fn parse(bytes: &[u8]) -> OutCsv {
        let mut r = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes);
        let header = r
            .headers()
            .expect("output header")
            .iter()
            .map(String::from)
            .collect();
        let rows = r
            .records()
            .map(|rec| rec.expect("output row").iter().map(String::from).collect())
            .collect();
        OutCsv { header, rows }
    }

    /// Reads and parses a CSV output file.
    pub fn read(path: &Path) -> OutCsv {
        OutCsv::parse(&std::fs::read(path).expect("read the output"))
    }

    /// Index of column `name`.
    pub fn col(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("no column {name}"))
    }

    /// The values of column `name`.
    pub fn column(&self, name: &str) -> Vec<String> {
        let c = self.col(name);
        self.rows.iter().map(|r| r[c].clone()).collect()
    }
}

/// Columns of the assessment CSV that hold a number for every assessed
/// (not `insufficient_data`) patient.
pub const NUMERIC_COLUMNS: [&str; 9] = [
    "p_value",
    "novelty",
    "p_novelty",
    "residual",
    "p_residual",
    "density",
    "support",
    "coverage",
    "nearest_distance",
];

/// Asserts every numeric cell of an assessed row is a finite number, and that
/// p-values lie in (0, 1].
#[track_caller]
pub fn assert_numbers_finite(out: &OutCsv) {
    let verdict = out.col("verdict");
    for row in &out.rows {
        if row[verdict] == "insufficient_data" {
            let cov: f64 = row[out.col("coverage")].parse().expect("coverage");
            assert!(cov.is_finite(), "coverage {cov}");
            continue;
        }
        for name in NUMERIC_COLUMNS {
            let cell = &row[out.col(name)];
            let v: f64 = cell
                .parse()
                .unwrap_or_else(|_| panic!("{name} = {cell:?} is not a number in {row:?}"));
            assert!(v.is_finite(), "{name} = {v} in {row:?}");
        }
        for name in ["p_value", "p_novelty", "p_residual"] {
            let v: f64 = row[out.col(name)].parse().expect("p");
            assert!(v > 0.0 && v <= 1.0, "{name} = {v} out of (0, 1]");
        }
    }
}

/// Verdict counts from the `assessed N patient(s): supported a (..), ...`
/// summary line on stderr: `(N, [supported, low_support, invisible, insufficient_data])`.
pub fn summary_counts(stderr: &str) -> Option<(usize, [usize; 4])> {
    let line = stderr
        .lines()
        .find(|l| l.starts_with("nof1: assessed ") || l.starts_with("nof1: checked "))?;
    let total = line.split_whitespace().nth(2)?.parse().ok()?;
    let mut counts = [0usize; 4];
    for (i, name) in ["supported", "low_support", "invisible", "insufficient_data"]
        .iter()
        .enumerate()
    {
        let pos = line.find(&format!(" {name} "))?;
        let rest = &line[pos + name.len() + 2..];
        counts[i] = rest.split_whitespace().next()?.parse().ok()?;
    }
    Some((total, counts))
}
