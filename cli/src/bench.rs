//! Benchmarks: wall time, peak memory and index quality, as figures.
//!
//! Not part of the assessment pipeline and not timed tests: these functions
//! measure and return numbers; the CLI prints them (see `docs/performance.md`).
//!
//! * [`run_bench`] times every stage a user goes through — read the reference,
//!   fit (with the fit's own steps, timed through [`Progress`]), save, load,
//!   read the patients, assess — with the peak resident memory of each stage.
//!   It then checks the approximate index against exact search: recall@k on
//!   in-distribution and out-of-distribution queries, queries per second, and
//!   the number of verdicts that differ between the HNSW and the exact model
//!   (which must be 0: non-supported patients are re-checked exactly).
//! * [`index_scaling`] measures [`ExactIndex`] throughput and [`HnswIndex`]
//!   build time and recall against cohort size and embedding dimension, on
//!   [`crate::synth::clustered_points`].
//!
//! **Peak memory.** Linux keeps one high-water mark per process (`VmHWM` in
//! `/proc/self/status`). Before each stage it is reset by writing `5` to
//! `/proc/self/clear_refs`, so each stage's peak is its own (it still includes
//! whatever earlier stages left allocated, e.g. the reference table during
//! fit). Where the reset is refused the figures are process peaks so far,
//! which only grow: then run fit and assess in separate processes.
//! [`BenchReport::peak_reset`] tells which applies. Off Linux memory is not
//! reported.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rayon::prelude::*;

use nof1::error::{Error, Result};
use nof1::index::{ExactIndex, HnswIndex, HnswParams, IndexKind, Neighbour, check};
use nof1::model::{Model, Params, Progress};
use nof1::table::{Role, TableOptions, read_table};
use nof1::verdict::{Assessment, Verdict, VerdictCounts};

/// Default number of recall queries of each kind.
pub const DEFAULT_RECALL_QUERIES: usize = 1000;
pub use nof1::index::check::{JITTER_FRACTION, PUSH_FACTOR};

/// Options of [`run_bench_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct BenchOptions {
    /// Worker threads; 0 means all cores (default 0).
    pub threads: usize,
    /// Also build the other index kind and compare indexes and verdicts (default true).
    pub compare_indexes: bool,
    /// Recall queries of each kind (default [`DEFAULT_RECALL_QUERIES`]).
    pub recall_queries: usize,
    /// Where to save the model; `None` writes a temporary file and removes it.
    pub model_path: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            threads: 0,
            compare_indexes: true,
            recall_queries: DEFAULT_RECALL_QUERIES,
            model_path: None,
        }
    }
}

/// One timed stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// What was done.
    pub name: String,
    /// Wall time in seconds.
    pub seconds: f64,
    /// CPU time of the process (user + system, all threads) in seconds;
    /// `seconds × threads` when the stage keeps every thread busy.
    pub cpu_seconds: Option<f64>,
    /// Peak resident memory during the stage, bytes (see the module docs).
    pub peak_rss: Option<u64>,
    /// Resident memory at the end of the stage, bytes.
    pub rss_after: Option<u64>,
    /// Nesting level: 0 for a stage, 1 for a step inside fit or load.
    pub depth: usize,
}

/// Verdicts against a `truth` column (`in`/`out`), when the patient file has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TruthCheck {
    /// Patients marked `out`.
    pub n_out: usize,
    /// Of those, called `invisible`.
    pub out_invisible: usize,
    /// Of those, called `invisible` or `low_support`.
    pub out_flagged: usize,
    /// Patients marked `in`.
    pub n_in: usize,
    /// Of those, called `invisible`.
    pub in_invisible: usize,
}

/// Recall@k of an HNSW graph against exact search, per kind of query.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Recall {
    /// Reference members jittered by [`JITTER_FRACTION`] of their k-distance.
    pub jittered: f64,
    /// Members pushed [`PUSH_FACTOR`]× from the centroid.
    pub pushed: f64,
    /// Patients marked `in` (or all patients without a truth column).
    pub patients_in: Option<f64>,
    /// Patients marked `out`.
    pub patients_out: Option<f64>,
    /// Queries of each kind (at most).
    pub n_queries: usize,
}

/// The exact-versus-HNSW comparison of [`run_bench`].
#[derive(Debug, Clone, PartialEq)]
pub struct IndexCheck {
    /// Graph parameters.
    pub params: HnswParams,
    /// Seconds to build one graph over the reference embeddings.
    pub build_seconds: f64,
    /// Recall@k per kind of query.
    pub recall: Recall,
    /// Exact searches per second over the recall queries (all threads).
    pub exact_qps: f64,
    /// Graph searches per second over the recall queries (all threads).
    pub hnsw_qps: f64,
    /// Seconds to assess every patient with the exact model.
    pub assess_exact_seconds: f64,
    /// Seconds to assess every patient with the HNSW model.
    pub assess_hnsw_seconds: f64,
    /// Patients whose verdict differs between the two models (must be 0).
    pub verdicts_differ: usize,
    /// Patients whose p-value differs by more than 1e-12 between the two models.
    pub p_values_differ: usize,
    /// Fraction of patients not called supported, i.e. re-checked exactly by the HNSW model.
    pub recheck_rate: f64,
}

/// Everything [`run_bench`] measured. `Display` prints a readable table.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// Worker threads used.
    pub threads: usize,
    /// Reference rows.
    pub n_reference: usize,
    /// Model features.
    pub n_features: usize,
    /// Components kept.
    pub n_components: usize,
    /// Patient rows.
    pub n_patients: usize,
    /// Neighbours `k`.
    pub k: usize,
    /// The index the fitted model uses.
    pub index_kind: IndexKind,
    /// Timed stages, in order; fit and load steps follow their stage with depth 1.
    pub stages: Vec<Stage>,
    /// Size of the model file in bytes.
    pub model_bytes: u64,
    /// Patients assessed per second (the assess stage alone).
    pub patients_per_second: f64,
    /// Verdict counts of the assess stage.
    pub verdicts: VerdictCounts,
    /// Verdicts against the patient file's `truth` column, if any.
    pub truth: Option<TruthCheck>,
    /// Exact versus HNSW, if compared.
    pub index_check: Option<IndexCheck>,
    /// Whether per-stage peaks were reset (otherwise they are process peaks so far).
    pub peak_reset: bool,
}

impl BenchReport {
    /// The stage named `name`, if timed.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.name == name)
    }
}

fn mb(bytes: Option<u64>) -> String {
    bytes.map_or("-".into(), |b| format!("{:.0}", b as f64 / 1048576.0))
}

fn pct(a: usize, b: usize) -> f64 {
    if b == 0 {
        0.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "reference {} × {} features → {} components; {} patients; k = {}; index {}; {} thread(s)",
            self.n_reference,
            self.n_features,
            self.n_components,
            self.n_patients,
            self.k,
            self.index_kind,
            self.threads
        )?;
        writeln!(
            f,
            "{:<34} {:>9} {:>9} {:>12} {:>12}",
            "stage",
            "seconds",
            "CPU s",
            if self.peak_reset {
                "peak RSS MiB"
            } else {
                "proc. peak MiB"
            },
            "RSS after"
        )?;
        for s in &self.stages {
            let name = format!("{}{}", "  ".repeat(s.depth), s.name);
            writeln!(
                f,
                "{:<34} {:>9.2} {:>9} {:>12} {:>12}",
                name,
                s.seconds,
                s.cpu_seconds.map_or("-".into(), |c| format!("{c:.2}")),
                mb(s.peak_rss),
                mb(s.rss_after)
            )?;
        }
        writeln!(
            f,
            "model file {:.1} MiB; assess {:.0} patients/s",
            self.model_bytes as f64 / 1048576.0,
            self.patients_per_second
        )?;
        let v = &self.verdicts;
        writeln!(
            f,
            "verdicts: supported {}, low_support {}, invisible {}, insufficient_data {}",
            v.supported, v.low_support, v.invisible, v.insufficient_data
        )?;
        if let Some(t) = &self.truth {
            writeln!(
                f,
                "truth: out → invisible {}/{} ({:.1}%), flagged {:.1}%; in → invisible {}/{} ({:.2}%)",
                t.out_invisible,
                t.n_out,
                pct(t.out_invisible, t.n_out),
                pct(t.out_flagged, t.n_out),
                t.in_invisible,
                t.n_in,
                pct(t.in_invisible, t.n_in)
            )?;
        }
        if let Some(c) = &self.index_check {
            let opt = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.4}"));
            writeln!(
                f,
                "HNSW (M {}, ef_construction {}, ef_search {}): build {:.2} s",
                c.params.max_connections,
                c.params.ef_construction,
                c.params.ef_search,
                c.build_seconds
            )?;
            writeln!(
                f,
                "  recall@{}: jittered members {:.4}, pushed ×{} {:.4}, patients in {}, patients out {} ({} queries each)",
                self.k,
                c.recall.jittered,
                PUSH_FACTOR,
                c.recall.pushed,
                opt(c.recall.patients_in),
                opt(c.recall.patients_out),
                c.recall.n_queries
            )?;
            writeln!(
                f,
                "  queries/s: exact {:.0}, hnsw {:.0}",
                c.exact_qps, c.hnsw_qps
            )?;
            writeln!(
                f,
                "  assess: exact model {:.2} s, hnsw model {:.2} s ({:.1}% re-checked exactly)",
                c.assess_exact_seconds,
                c.assess_hnsw_seconds,
                100.0 * c.recheck_rate
            )?;
            write!(
                f,
                "  verdicts differing between exact and hnsw: {} (p-values differing: {})",
                c.verdicts_differ, c.p_values_differ
            )?;
        }
        Ok(())
    }
}

/// Resident memory figures of this process from `/proc/self/status`, bytes:
/// `(VmHWM, VmRSS)`. `None` off Linux.
pub fn rss() -> (Option<u64>, Option<u64>) {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return (None, None);
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// CPU time (user + system, all threads) of this process in seconds, from
/// `/proc/self/stat` (at 100 ticks per second, Linux's `USER_HZ`). `None` off Linux.
pub fn cpu_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some((user + system) as f64 / 100.0)
}

/// Resets the process's peak resident memory to the current one; `false` if
/// the kernel refused.
///
/// The peak before the reset is folded into a running maximum, so a stage
/// that contains resets (fit steps) still reports its whole peak.
pub fn reset_peak_rss() -> bool {
    if let (Some(peak), _) = rss() {
        SEEN_PEAK.fetch_max(peak, Ordering::Relaxed);
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Largest high-water mark seen before a reset since the current stage began.
static SEEN_PEAK: AtomicU64 = AtomicU64::new(0);

/// Records the wall time and peak memory of each step a fit or load reports.
struct StepTimer {
    steps: Mutex<Vec<Stage>>,
    current: Mutex<Option<(String, Instant, Option<f64>)>>,
}

impl StepTimer {
    fn new() -> Self {
        StepTimer {
            steps: Mutex::new(Vec::new()),
            current: Mutex::new(None),
        }
    }

    fn into_steps(self) -> Vec<Stage> {
        self.steps.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

impl Progress for StepTimer {
    fn start(&self, step: &str, _total: u64) {
        reset_peak_rss();
        if let Ok(mut c) = self.current.lock() {
            *c = Some((step.to_string(), Instant::now(), cpu_time()));
        }
    }

    fn finish(&self) {
        let Some((name, t0, cpu0)) = self.current.lock().ok().and_then(|mut c| c.take()) else {
            return;
        };
        let (peak, now) = rss();
        if let Ok(mut s) = self.steps.lock() {
            s.push(Stage {
                name,
                seconds: t0.elapsed().as_secs_f64(),
                cpu_seconds: cpu_time().zip(cpu0).map(|(a, b)| a - b),
                peak_rss: peak,
                rss_after: now,
                depth: 1,
            });
        }
    }
}

/// Times `f` as a top-level stage.
fn timed<T>(stages: &mut Vec<Stage>, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    reset_peak_rss();
    SEEN_PEAK.store(0, Ordering::Relaxed);
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let out = f()?;
    let seconds = t0.elapsed().as_secs_f64();
    let (peak, now) = rss();
    let peak = peak.map(|p| p.max(SEEN_PEAK.load(Ordering::Relaxed)));
    stages.push(Stage {
        name: name.to_string(),
        seconds,
        cpu_seconds: cpu_time().zip(cpu0).map(|(a, b)| a - b),
        peak_rss: peak,
        rss_after: now,
        depth: 0,
    });
    Ok(out)
}

/// Runs the whole benchmark with default options and `threads` worker
/// threads (0 = all cores). See [`run_bench_with`].
///
/// # Errors
/// As [`run_bench_with`].
pub fn run_bench(
    reference: &Path,
    patients: &Path,
    params: &Params,
    threads: usize,
) -> Result<BenchReport> {
    run_bench_with(
        reference,
        patients,
        params,
        &BenchOptions {
            threads,
            ..BenchOptions::default()
        },
    )
}

/// Reads, fits, saves, loads and assesses, timing each stage; then (unless
/// switched off) compares the exact and HNSW indexes on the same model.
///
/// The reference is read with default [`TableOptions`]; the patient file with
/// its `truth` column excluded when it has one (as written by
/// [`crate::synth::write_synth`]), which then also gives [`TruthCheck`].
/// The index comparison rebuilds the fitted model with the other index kind
/// from the same fitted data, so both share one calibration; it builds one
/// extra graph for the recall figures.
///
/// # Errors
/// Any error of reading, fitting, saving or loading; [`nof1::ErrorKind::Io`]
/// if the thread pool cannot be created.
pub fn run_bench_with(
    reference: &Path,
    patients: &Path,
    params: &Params,
    options: &BenchOptions,
) -> Result<BenchReport> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads)
        .build()
        .map_err(|e| Error::io("<thread pool>", std::io::Error::other(e.to_string())))?;
    pool.install(|| bench_inner(reference, patients, params, options))
}

fn bench_inner(
    reference_path: &Path,
    patients_path: &Path,
    params: &Params,
    options: &BenchOptions,
) -> Result<BenchReport> {
    let peak_reset = reset_peak_rss();
    let mut stages = Vec::new();
    let reference = timed(&mut stages, "read reference", || {
        read_table(reference_path, &TableOptions::default(), Role::Reference)
    })?;
    let n_reference = reference.n_rows();

    let timer = StepTimer::new();
    let fitted = timed(&mut stages, "fit", || {
        params.fit_with_progress(&reference, &timer)
    })?;
    push_steps(&mut stages, timer);
    drop(reference);

    let (model_path, temporary) = match &options.model_path {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!("nof1-bench-{}.model", std::process::id())),
            true,
        ),
    };
    timed(&mut stages, "save model", || fitted.save(&model_path))?;
    let model_bytes = std::fs::metadata(&model_path)
        .map_err(|e| Error::io(&model_path, e))?
        .len();
    drop(fitted);
    let timer = StepTimer::new();
    let loaded = timed(&mut stages, "load model", || {
        Model::load_with_progress(&model_path, &timer)
    });
    if temporary {
        let _ = std::fs::remove_file(&model_path);
    }
    let model = loaded?;
    push_steps(&mut stages, timer);

    let truth = read_truth(patients_path)?;
    let patient_options = TableOptions {
        exclude: if truth.is_some() {
            vec!["truth".to_string()]
        } else {
            Vec::new()
        },
        ..TableOptions::default()
    };
    let patients = timed(&mut stages, "read patients", || {
        read_table(patients_path, &patient_options, Role::Patients)
    })?;
    let t0 = Instant::now();
    let assessed = timed(&mut stages, "assess", || model.assess(&patients))?;
    let assess_seconds = t0.elapsed().as_secs_f64();
    let n_patients = patients.n_rows();

    let truth_check = truth.as_ref().map(|t| {
        let mut c = TruthCheck::default();
        for (a, &out) in assessed.iter().zip(t) {
            let inv = a.verdict == Verdict::Invisible;
            if out {
                c.n_out += 1;
                c.out_invisible += usize::from(inv);
                c.out_flagged += usize::from(inv || a.verdict == Verdict::LowSupport);
            } else {
                c.n_in += 1;
                c.in_invisible += usize::from(inv);
            }
        }
        c
    });

    let index_check = if options.compare_indexes {
        Some(compare_indexes(
            &model,
            &patients,
            &assessed,
            assess_seconds,
            truth.as_deref(),
            options.recall_queries,
        )?)
    } else {
        None
    };

    Ok(BenchReport {
        threads: rayon::current_num_threads(),
        n_reference,
        n_features: model.features().len(),
        n_components: model.n_components(),
        n_patients,
        k: model.params().k,
        index_kind: model.index_kind(),
        stages,
        model_bytes,
        patients_per_second: n_patients as f64 / assess_seconds.max(1e-9),
        verdicts: VerdictCounts::of(&assessed),
        truth: truth_check,
        index_check,
        peak_reset,
    })
}

fn push_steps(stages: &mut Vec<Stage>, timer: StepTimer) {
    let steps = timer.into_steps();
    if steps.is_empty() {
        return;
    }
    let total = stages.last().map_or(0.0, |s| s.seconds);
    let total_cpu = stages.last().and_then(|s| s.cpu_seconds);
    let inside: f64 = steps.iter().map(|s| s.seconds).sum();
    let inside_cpu: Option<f64> = steps.iter().map(|s| s.cpu_seconds).sum();
    stages.extend(steps);
    if total - inside > 0.005 {
        stages.push(Stage {
            name: "(rest)".into(),
            seconds: total - inside,
            cpu_seconds: total_cpu.zip(inside_cpu).map(|(a, b)| (a - b).max(0.0)),
            peak_rss: None,
            rss_after: None,
            depth: 1,
        });
    }
}

/// The `truth` column of a patient file (`out` → true), if it has one.
fn read_truth(path: &Path) -> Result<Option<Vec<bool>>> {
    if path == Path::new("-") {
        return Ok(None);
    }
    let delimiter = TableOptions::default().delimiter_for(path);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .flexible(true)
        .from_path(path)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    let header = reader
        .byte_headers()
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?;
    let Some(col) = header.iter().position(|h| h == b"truth") else {
        return Ok(None);
    };
    let mut out = Vec::new();
    let mut record = csv::ByteRecord::new();
    while reader
        .read_byte_record(&mut record)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))?
    {
        out.push(record.get(col).is_some_and(|v| v.trim_ascii() == b"out"));
    }
    Ok(Some(out))
}

/// Mean recall@k of `graph` over `queries` (row-major), and the exact and
/// graph queries per second.
fn recall_over(
    exact: &ExactIndex,
    graph: &HnswIndex,
    queries: &[f32],
    k: usize,
) -> (f64, f64, f64) {
    let dim = exact.dim();
    let n_q = queries.len() / dim;
    if n_q == 0 {
        return (f64::NAN, 0.0, 0.0);
    }
    let t0 = Instant::now();
    let truth: Vec<Vec<Neighbour>> = queries
        .par_chunks_exact(dim)
        .map(|q| exact.search(q, k, None, None).neighbours)
        .collect();
    let exact_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let got: Vec<Vec<Neighbour>> = queries
        .par_chunks_exact(dim)
        .map(|q| graph.search(q, k))
        .collect();
    let hnsw_s = t0.elapsed().as_secs_f64();
    let (found, total) = truth.iter().zip(&got).fold((0, 0), |(f, t), (tr, g)| {
        (f + check::hits(tr, g), t + tr.len())
    });
    let recall = found as f64 / total.max(1) as f64;
    (
        recall,
        n_q as f64 / exact_s.max(1e-9),
        n_q as f64 / hnsw_s.max(1e-9),
    )
}

fn compare_indexes(
    model: &Model,
    patients: &nof1::Table,
    assessed: &[Assessment],
    assess_seconds: f64,
    truth: Option<&[bool]>,
    n_queries: usize,
) -> Result<IndexCheck> {
    let data = model.data();
    // The space the model searches: its leading `knn_components` components.
    let c = model.n_components().max(1);
    let dims = model.knn_components().clamp(1, c);
    let k = model.params().k;
    let hnsw_params = data.params.hnsw;
    let exact = ExactIndex::new(model.search_points().to_vec(), dims);
    let t0 = Instant::now();
    let graph = HnswIndex::build(exact.points(), dims, hnsw_params, |_| {});
    let build_seconds = t0.elapsed().as_secs_f64();

    let (inside, outside) = check::probes(&exact, k, n_queries, data.params.seed);
    let (jittered, exact_qps, hnsw_qps) = recall_over(&exact, &graph, &inside, k);
    let (pushed, _, _) = recall_over(&exact, &graph, &outside, k);
    let mut pat_in = Vec::new();
    let mut pat_out = Vec::new();
    for (i, a) in assessed.iter().enumerate() {
        if a.embedding.len() != c {
            continue;
        }
        let out = truth.and_then(|t| t.get(i).copied()).unwrap_or(false);
        let dst = if out { &mut pat_out } else { &mut pat_in };
        if dst.len() < n_queries * dims {
            dst.extend_from_slice(&a.embedding[..dims]);
        }
    }
    let patients_in = (!pat_in.is_empty()).then(|| recall_over(&exact, &graph, &pat_in, k).0);
    let patients_out = (!pat_out.is_empty()).then(|| recall_over(&exact, &graph, &pat_out, k).0);
    drop(graph);

    let other_kind = match data.index_kind {
        IndexKind::Exact => IndexKind::Hnsw,
        IndexKind::Hnsw | IndexKind::Graph => IndexKind::Exact,
    };
    let other = model.with_index_kind(other_kind, &nof1::model::NoProgress)?;
    let t0 = Instant::now();
    let other_assessed = other.assess(patients)?;
    let other_seconds = t0.elapsed().as_secs_f64();
    let (assess_exact_seconds, assess_hnsw_seconds, hnsw_assessed): (f64, f64, &[Assessment]) =
        match data.index_kind {
            IndexKind::Exact => (assess_seconds, other_seconds, &other_assessed),
            IndexKind::Hnsw | IndexKind::Graph => (other_seconds, assess_seconds, assessed),
        };
    let verdicts_differ = assessed
        .iter()
        .zip(&other_assessed)
        .filter(|(a, b)| a.verdict != b.verdict)
        .count();
    let p_values_differ = assessed
        .iter()
        .zip(&other_assessed)
        .filter(|(a, b)| {
            !(a.p_value.is_nan() && b.p_value.is_nan()) && (a.p_value - b.p_value).abs() > 1e-12
        })
        .count();
    let rechecked = hnsw_assessed
        .iter()
        .filter(|a| a.verdict != Verdict::Supported)
        .count();
    Ok(IndexCheck {
        params: hnsw_params,
        build_seconds,
        recall: Recall {
            jittered,
            pushed,
            patients_in,
            patients_out,
            n_queries,
        },
        exact_qps,
        hnsw_qps,
        assess_exact_seconds,
        assess_hnsw_seconds,
        verdicts_differ,
        p_values_differ,
        recheck_rate: rechecked as f64 / assessed.len().max(1) as f64,
    })
}

/// What [`index_scaling`] measures.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingParams {
    /// Cohort sizes (default 10k, 100k, 200k).
    pub sizes: Vec<usize>,
    /// Embedding dimensions (default 8, 12, 16, 20).
    pub dims: Vec<usize>,
    /// Neighbours (default 10).
    pub k: usize,
    /// Queries of each kind (default 2000).
    pub n_queries: usize,
    /// Graph parameters (default [`HnswParams::default`]).
    pub hnsw: HnswParams,
    /// Also build graphs and measure recall (default true); exact only otherwise.
    pub with_hnsw: bool,
    /// Seed (default 1).
    pub seed: u64,
}

impl Default for ScalingParams {
    fn default() -> Self {
        ScalingParams {
            sizes: vec![10_000, 100_000, 200_000],
            dims: vec![8, 12, 16, 20],
            k: 10,
            n_queries: 2000,
            hnsw: HnswParams::default(),
            with_hnsw: true,
            seed: 1,
        }
    }
}

/// One (n, dim) measurement of [`index_scaling`].
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRow {
    /// Indexed points.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Exact searches per second, all threads.
    pub exact_qps: f64,
    /// Exact searches per second, one thread.
    pub exact_qps_1t: f64,
    /// Graph build seconds (serial insertion).
    pub build_seconds: Option<f64>,
    /// Graph searches per second, all threads.
    pub hnsw_qps: Option<f64>,
    /// Recall@k on held-out points from the same mixture.
    pub recall_in: Option<f64>,
    /// Recall@k on held-out points pushed [`PUSH_FACTOR`]× from the centroid.
    pub recall_out: Option<f64>,
}

/// Exact and HNSW figures against cohort size and dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingReport {
    /// Threads used for the "all threads" figures.
    pub threads: usize,
    /// Neighbours.
    pub k: usize,
    /// Graph parameters.
    pub hnsw: HnswParams,
    /// One row per (n, dim), sizes outer, dims inner.
    pub rows: Vec<ScalingRow>,
}

impl fmt::Display for ScalingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "k = {}; {} thread(s); HNSW M {}, ef_construction {}, ef_search {}",
            self.k,
            self.threads,
            self.hnsw.max_connections,
            self.hnsw.ef_construction,
            self.hnsw.ef_search
        )?;
        writeln!(
            f,
            "{:>8} {:>4} {:>11} {:>11} {:>9} {:>10} {:>9} {:>9}",
            "n", "dim", "exact q/s", "exact 1t", "build s", "hnsw q/s", "recall in", "recall out"
        )?;
        let o = |x: Option<f64>, d: usize| x.map_or("-".to_string(), |v| format!("{v:.d$}"));
        for r in &self.rows {
            writeln!(
                f,
                "{:>8} {:>4} {:>11.0} {:>11.0} {:>9} {:>10} {:>9} {:>9}",
                r.n,
                r.dim,
                r.exact_qps,
                r.exact_qps_1t,
                o(r.build_seconds, 1),
                o(r.hnsw_qps, 0),
                o(r.recall_in, 4),
                o(r.recall_out, 4)
            )?;
        }
        Ok(())
    }
}

/// Measures exact search throughput, graph build time and recall for every
/// size × dimension of `params`, on [`crate::synth::clustered_points`]
/// (12 clusters); held-out points of the same mixture are the in-distribution
/// queries.
pub fn index_scaling(params: &ScalingParams) -> ScalingReport {
    let mut rows = Vec::new();
    let k = params.k;
    for &n in &params.sizes {
        for &dim in &params.dims {
            let q = params.n_queries;
            let all = crate::synth::clustered_points(n + q, dim, 12, params.seed);
            let (points, held) = all.split_at(n * dim);
            let exact = ExactIndex::new(points.to_vec(), dim);
            let mut centroid = vec![0f32; dim];
            for p in points.chunks_exact(dim) {
                for (c, v) in centroid.iter_mut().zip(p) {
                    *c += v / n as f32;
                }
            }
            let pushed: Vec<f32> = held
                .chunks_exact(dim)
                .flat_map(|p| {
                    p.iter()
                        .zip(&centroid)
                        .map(|(v, c)| c + PUSH_FACTOR * (v - c))
                        .collect::<Vec<_>>()
                })
                .collect();
            let t0 = Instant::now();
            let _: Vec<_> = held
                .par_chunks_exact(dim)
                .map(|x| exact.search(x, k, None, None))
                .collect();
            let exact_qps = q as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let n1 = (q / 4).max(1);
            let t0 = Instant::now();
            for x in held.chunks_exact(dim).take(n1) {
                std::hint::black_box(exact.search(x, k, None, None));
            }
            let exact_qps_1t = n1 as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            let mut row = ScalingRow {
                n,
                dim,
                exact_qps,
                exact_qps_1t,
                build_seconds: None,
                hnsw_qps: None,
                recall_in: None,
                recall_out: None,
            };
            if params.with_hnsw {
                let t0 = Instant::now();
                let graph = HnswIndex::build(points, dim, params.hnsw, |_| {});
                row.build_seconds = Some(t0.elapsed().as_secs_f64());
                let (r_in, _, qps) = recall_over(&exact, &graph, held, k);
                let (r_out, _, _) = recall_over(&exact, &graph, &pushed, k);
                row.hnsw_qps = Some(qps);
                row.recall_in = Some(r_in);
                row.recall_out = Some(r_out);
            }
            rows.push(row);
        }
    }
    ScalingReport {
        threads: rayon::current_num_threads(),
        k,
        hnsw: params.hnsw,
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{SynthParams, write_synth};

    #[test]
    fn bench_runs_end_to_end_with_zero_differing_verdicts() {
        let dir = std::env::temp_dir().join(format!("nof1-bench-test-{}", std::process::id()));
        let s = write_synth(
            &SynthParams {
                n: 2000,
                features: 12,
                patients: 300,
                rank: 3,
                clusters: 5,
                ..SynthParams::default()
            },
            &dir,
        )
        .unwrap();
        let params = Params::default().index(nof1::IndexChoice::Hnsw);
        let options = BenchOptions {
            threads: 2,
            recall_queries: 100,
            ..BenchOptions::default()
        };
        let r = run_bench_with(&s.reference, &s.patients, &params, &options).unwrap();
        assert_eq!(r.n_reference, 2000);
        assert_eq!(r.n_patients, 300);
        assert_eq!(r.index_kind, IndexKind::Hnsw);
        let t = r.truth.unwrap();
        assert_eq!(t.n_out, 9);
        let c = r.index_check.as_ref().unwrap();
        assert_eq!(c.verdicts_differ, 0);
        assert!(c.recall.jittered > 0.9);
        for name in [
            "read reference",
            "fit",
            "save model",
            "load model",
            "assess",
        ] {
            assert!(r.stage(name).is_some(), "{name}");
        }
        let text = r.to_string();
        assert!(text.contains("verdicts differing between exact and hnsw: 0"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn scaling_report_has_one_row_per_size_and_dim() {
        let r = index_scaling(&ScalingParams {
            sizes: vec![500, 1000],
            dims: vec![4, 8],
            n_queries: 50,
            ..ScalingParams::default()
        });
        assert_eq!(r.rows.len(), 4);
        assert!(r.rows.iter().all(|x| x.recall_in.unwrap() > 0.8));
        assert!(r.to_string().lines().count() == 6);
    }
}
