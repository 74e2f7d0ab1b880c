//! Synthetic cohorts for benchmarks: reproducible, clustered, low-rank.
//!
//! Not part of the assessment pipeline. [`write_synth`] writes a reference
//! cohort and a patient file as CSV, the shape of data nof1 is built for:
//!
//! * **low-rank structure plus noise**: each row is a point `u` in a
//!   `rank`-dimensional latent space mapped through a fixed random loading
//!   matrix, plus independent noise per feature; every feature then gets its
//!   own location and scale (so standardisation matters);
//! * **clusters of very unequal size**: latent points are drawn around
//!   `clusters` centres with Zipf-like weights `1 / (j + 1)^1.5` (with 12
//!   clusters the largest holds about 45 % of the rows, the smallest about 1 %),
//!   each cluster with its own spread per latent axis;
//! * **patients off the clusters**: exactly `round(patients × outlier_fraction)`
//!   patients, at seeded positions, are outliers. Half of them (in expectation)
//!   are shifted in latent space to at least [`OUTLIER_MIN_LATENT_DISTANCE`]
//!   within-cluster standard deviations from every cluster centre; the others
//!   sit on a cluster but carry a shift in a few features of
//!   [`OUTLIER_RESIDUAL_SHIFT`] noise standard deviations (off the low-rank
//!   subspace).
//!
//! Everything is drawn from [`SplitMix64`] generators derived from
//! [`SynthParams::seed`]: the structure from one stream, every row from its own
//! stream, so the files are byte-identical for a seed whatever the number of
//! threads.
//!
//! Files: `reference.csv` with header `id,f0,…,f{p−1}` and ids `r0`, `r1`, …;
//! `patients.csv` with header `id,f0,…,f{p−1},truth` and ids `p0`, `p1`, …,
//! where `truth` is `in` or `out` (read patients with `--exclude truth`).
//! Values are written with [`DECIMALS`] decimals.
//!
//! ```
//! use nof1_cli::synth::{SynthParams, write_synth};
//! let dir = std::env::temp_dir().join(format!("nof1-synth-doc-{}", std::process::id()));
//! let params = SynthParams { n: 300, features: 12, patients: 100, ..SynthParams::default() };
//! let summary = write_synth(&params, &dir)?;
//! assert_eq!(summary.n_outliers, 3);
//! assert!(summary.reference.exists() && summary.patients.exists());
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), nof1::Error>(())
//! ```

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use nof1::error::{Error, Result};
use nof1::rng::SplitMix64;

/// Decimals written per value.
pub const DECIMALS: usize = 4;
/// Default number of reference rows.
pub const DEFAULT_N: usize = 200_000;
/// Default number of features.
pub const DEFAULT_FEATURES: usize = 96;
/// Default number of patients.
pub const DEFAULT_PATIENTS: usize = 20_000;
/// Default seed.
pub const DEFAULT_SEED: u64 = 1;
/// Default rank of the latent structure.
pub const DEFAULT_RANK: usize = 8;
/// Default number of clusters.
pub const DEFAULT_CLUSTERS: usize = 12;
/// Default fraction of patients off the clusters.
pub const DEFAULT_OUTLIER_FRACTION: f64 = 0.03;
/// Zipf exponent of the cluster weights.
pub const CLUSTER_ZIPF_EXPONENT: f64 = 1.5;
/// Standard deviation of the cluster centres in latent space.
pub const CENTRE_SPREAD: f64 = 3.0;
/// Latent outliers lie at least this many within-cluster standard deviations
/// (per axis) from every cluster centre.
pub const OUTLIER_MIN_LATENT_DISTANCE: f64 = 6.0;
/// Residual outliers are shifted by this many noise standard deviations in
/// [`OUTLIER_RESIDUAL_FEATURES`] features.
pub const OUTLIER_RESIDUAL_SHIFT: f64 = 6.0;
/// Number of features shifted in a residual outlier (at most `features`).
pub const OUTLIER_RESIDUAL_FEATURES: usize = 6;

/// Rows generated and formatted per parallel block.
const BLOCK_ROWS: usize = 2048;

/// What to generate. Build from [`SynthParams::default`] with struct update
/// syntax; [`write_synth`] validates with [`SynthParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct SynthParams {
    /// Reference rows (default 200,000).
    pub n: usize,
    /// Feature columns (default 96).
    pub features: usize,
    /// Patient rows (default 20,000).
    pub patients: usize,
    /// Seed of every random draw (default 1).
    pub seed: u64,
    /// Rank of the latent structure (default 8).
    pub rank: usize,
    /// Number of clusters (default 12).
    pub clusters: usize,
    /// Fraction of patients off the clusters, in `[0, 1]` (default 0.03).
    pub outlier_fraction: f64,
    /// Exponent `a` of the cluster weights `1 / (j + 1)^a` (default
    /// [`CLUSTER_ZIPF_EXPONENT`]); smaller is less unequal.
    pub cluster_exponent: f64,
    /// Latent axis `a` is scaled by `1 / (1 + a)^decay` (default 0: all axes
    /// alike), so that the principal components decay as in real cohorts.
    pub latent_decay: f64,
    /// Multiplies every feature's noise standard deviation (default 1).
    pub noise: f64,
}

/// Ready-made cohort shapes for `nof1 bench synth --profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthProfile {
    /// The default [`SynthParams`]: 8 latent dimensions, 12 clusters, Zipf
    /// weights with exponent 1.5 (the easiest shape: the rule keeps 8
    /// components).
    LowRank,
    /// A biobank-like cohort: 40 clusters of Pareto-unequal sizes (exponent
    /// 1.1) near a 24-dimensional subspace whose axes decay like `1/√(1+a)`,
    /// plus noise at 1.5 times the default.
    Biobank,
    /// An omics-shaped wide reference: 3,000 members × 2,500 features, 24
    /// latent dimensions decaying like `1/√(1+a)`, 8 clusters, 300 patients.
    Omics,
}

impl SynthProfile {
    /// The profile's parameters (`seed` and sizes may then be overridden).
    pub fn params(self) -> SynthParams {
        let base = SynthParams::default();
        match self {
            SynthProfile::LowRank => base,
            SynthProfile::Biobank => SynthParams {
                rank: 24,
                clusters: 40,
                cluster_exponent: 1.1,
                latent_decay: 0.5,
                noise: 1.5,
                ..base
            },
            SynthProfile::Omics => SynthParams {
                n: 3000,
                features: 2500,
                patients: 300,
                rank: 24,
                clusters: 8,
                latent_decay: 0.5,
                ..base
            },
        }
    }
}

impl Default for SynthParams {
    fn default() -> Self {
        SynthParams {
            n: DEFAULT_N,
            features: DEFAULT_FEATURES,
            patients: DEFAULT_PATIENTS,
            seed: DEFAULT_SEED,
            rank: DEFAULT_RANK,
            clusters: DEFAULT_CLUSTERS,
            outlier_fraction: DEFAULT_OUTLIER_FRACTION,
            cluster_exponent: CLUSTER_ZIPF_EXPONENT,
            latent_decay: 0.0,
            noise: 1.0,
        }
    }
}

impl SynthParams {
    /// Validates the ranges.
    ///
    /// # Errors
    /// [`nof1::ErrorKind::InvalidParam`] naming the parameter: `n`, `features`,
    /// `rank` and `clusters` must be at least 1, `rank` at most `features`, and
    /// `outlier_fraction` in `[0, 1]`.
    pub fn check(&self) -> Result<()> {
        if self.n == 0 {
            return Err(Error::param("n", "must be at least 1"));
        }
        if self.features == 0 {
            return Err(Error::param("features", "must be at least 1"));
        }
        if self.rank == 0 || self.rank > self.features {
            return Err(Error::param(
                "rank",
                format!(
                    "must be in 1..=features ({}), got {}",
                    self.features, self.rank
                ),
            ));
        }
        if self.clusters == 0 {
            return Err(Error::param("clusters", "must be at least 1"));
        }
        if !(self.cluster_exponent >= 0.0 && self.cluster_exponent.is_finite()) {
            return Err(Error::param(
                "cluster_exponent",
                format!("must be finite and >= 0, got {}", self.cluster_exponent),
            ));
        }
        if !(self.latent_decay >= 0.0 && self.latent_decay.is_finite()) {
            return Err(Error::param(
                "latent_decay",
                format!("must be finite and >= 0, got {}", self.latent_decay),
            ));
        }
        if !(self.noise >= 0.0 && self.noise.is_finite()) {
            return Err(Error::param(
                "noise",
                format!("must be finite and >= 0, got {}", self.noise),
            ));
        }
        if !(0.0..=1.0).contains(&self.outlier_fraction) {
            return Err(Error::param(
                "outlier_fraction",
                format!("must be in [0, 1], got {}", self.outlier_fraction),
            ));
        }
        Ok(())
    }

    /// Number of outlying patients: `round(patients × outlier_fraction)`.
    pub fn n_outliers(&self) -> usize {
        ((self.patients as f64 * self.outlier_fraction).round() as usize).min(self.patients)
    }
}

/// What [`write_synth`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSummary {
    /// Path of `reference.csv`.
    pub reference: PathBuf,
    /// Path of `patients.csv`.
    pub patients: PathBuf,
    /// Reference rows written.
    pub n_reference: usize,
    /// Patient rows written.
    pub n_patients: usize,
    /// Feature columns.
    pub n_features: usize,
    /// Patients with `truth = out`.
    pub n_outliers: usize,
    /// Reference rows per cluster, in cluster order (non-increasing weights).
    pub cluster_sizes: Vec<usize>,
    /// Bytes written, both files.
    pub bytes: u64,
}

impl std::fmt::Display for SynthSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "reference  {} ({} rows × {} features)",
            self.reference.display(),
            self.n_reference,
            self.n_features
        )?;
        writeln!(
            f,
            "patients   {} ({} rows, {} off the clusters; read with --exclude truth)",
            self.patients.display(),
            self.n_patients,
            self.n_outliers
        )?;
        let sizes: Vec<String> = self.cluster_sizes.iter().map(|s| s.to_string()).collect();
        writeln!(f, "clusters   {}", sizes.join(" "))?;
        write!(f, "written    {:.1} MB", self.bytes as f64 / 1e6)
    }
}

/// Writes `reference.csv` and `patients.csv` into `out_dir` (created if needed).
///
/// The output is byte-identical for the same parameters, whatever the number
/// of threads.
///
/// # Errors
/// [`nof1::ErrorKind::InvalidParam`] from [`SynthParams::check`];
/// [`nof1::ErrorKind::Io`] naming the directory or file that could not be
/// created or written.
pub fn write_synth(params: &SynthParams, out_dir: &Path) -> Result<SynthSummary> {
    params.check()?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let model = Structure::new(params);
    let reference = out_dir.join("reference.csv");
    let patients = out_dir.join("patients.csv");

    let mut cluster_sizes = vec![0usize; params.clusters];
    let ref_bytes = write_rows(&reference, params, params.n, false, |i, buf, row| {
        let mut rng = row_rng(params.seed, STREAM_REFERENCE, i);
        let cluster = model.draw_in(&mut rng, row);
        push_row(buf, 'r', i, row, None);
        cluster
    })?
    .into_iter()
    .fold(0u64, |acc, (bytes, clusters)| {
        for c in clusters {
            cluster_sizes[c] += 1;
        }
        acc + bytes
    });

    let n_out = params.n_outliers();
    let mut order: Vec<usize> = (0..params.patients).collect();
    SplitMix64::new(params.seed ^ STREAM_OUTLIER_PICK).shuffle(&mut order);
    let mut is_out = vec![false; params.patients];
    for &i in &order[..n_out] {
        is_out[i] = true;
    }
    let pat_bytes: u64 = write_rows(&patients, params, params.patients, true, |i, buf, row| {
        let mut rng = row_rng(params.seed, STREAM_PATIENTS, i);
        let cluster = if is_out[i] {
            model.draw_out(&mut rng, row)
        } else {
            model.draw_in(&mut rng, row)
        };
        push_row(buf, 'p', i, row, Some(is_out[i]));
        cluster
    })?
    .into_iter()
    .map(|(b, _)| b)
    .sum();

    Ok(SynthSummary {
        reference,
        patients,
        n_reference: params.n,
        n_patients: params.patients,
        n_features: params.features,
        n_outliers: n_out,
        cluster_sizes,
        bytes: ref_bytes + pat_bytes,
    })
}

/// A clustered point cloud of `n` points in `dim` dimensions (row-major `f32`),
/// for index benchmarks: the same Zipf-weighted mixture as [`write_synth`]'s
/// latent space, with axis spreads decaying like principal components
/// (`1/√(1 + axis)`), so it looks like an nof1 embedding.
///
/// # Panics
/// If `dim == 0` (a caller bug).
pub fn clustered_points(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    assert!(dim > 0, "dim must be positive");
    let params = SynthParams {
        n,
        features: dim,
        rank: dim,
        clusters: clusters.max(1),
        seed,
        ..SynthParams::default()
    };
    let model = Structure::new(&params);
    let mut out = vec![0f32; n * dim];
    out.par_chunks_mut(dim * BLOCK_ROWS)
        .enumerate()
        .for_each(|(b, chunk)| {
            let mut u = vec![0.0; dim];
            for (r, dst) in chunk.chunks_exact_mut(dim).enumerate() {
                let i = b * BLOCK_ROWS + r;
                let mut rng = row_rng(seed, STREAM_POINTS, i);
                model.draw_latent(&mut rng, &mut u);
                for (a, (d, v)) in dst.iter_mut().zip(&u).enumerate() {
                    *d = (*v / (1.0 + a as f64).sqrt()) as f32;
                }
            }
        });
    out
}

const STREAM_STRUCTURE: u64 = 0x5354_5255_4354;
const STREAM_REFERENCE: u64 = 0x5245_4645_5245;
const STREAM_PATIENTS: u64 = 0x5041_5449_454e;
const STREAM_OUTLIER_PICK: u64 = 0x4f55_544c_4945;
const STREAM_POINTS: u64 = 0x504f_494e_5453;

/// The generator of row `i` of a stream: independent of every other row.
fn row_rng(seed: u64, stream: u64, i: usize) -> SplitMix64 {
    let mut h = SplitMix64::new(seed ^ stream);
    let base = h.next_u64();
    SplitMix64::new(base ^ (i as u64).wrapping_mul(0xd1b5_4a32_d192_ed03))
}

/// The fixed random structure: cluster centres and spreads, loadings, noise,
/// feature locations and scales.
struct Structure {
    rank: usize,
    p: usize,
    /// `clusters × rank`.
    centres: Vec<f64>,
    /// `clusters × rank` within-cluster standard deviations.
    spreads: Vec<f64>,
    /// Cumulative cluster weights, last = 1.
    cumulative: Vec<f64>,
    /// `rank × p`, row-major.
    loadings: Vec<f64>,
    noise_sd: Vec<f64>,
    location: Vec<f64>,
    scale: Vec<f64>,
}

impl Structure {
    fn new(params: &SynthParams) -> Structure {
        let (r, p, k) = (params.rank, params.features, params.clusters);
        let mut rng = SplitMix64::new(params.seed ^ STREAM_STRUCTURE);
        // Axis a of the latent space scaled by 1/(1+a)^decay (exactly 1 at
        // decay 0, so the default cohort is unchanged).
        let axis = |i: usize| 1.0 / ((1 + i % r) as f64).powf(params.latent_decay);
        let centres: Vec<f64> = (0..k * r)
            .map(|i| CENTRE_SPREAD * rng.normal() * axis(i))
            .collect();
        let spreads: Vec<f64> = (0..k * r)
            .map(|i| (0.4 + 0.8 * rng.next_f64()) * axis(i))
            .collect();
        let weights: Vec<f64> = (0..k)
            .map(|j| 1.0 / ((j + 1) as f64).powf(params.cluster_exponent))
            .collect();
        let total: f64 = weights.iter().sum();
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        if let Some(last) = cumulative.last_mut() {
            *last = 1.0;
        }
        let inv = 1.0 / (r as f64).sqrt();
        let loadings: Vec<f64> = (0..r * p).map(|_| inv * rng.normal()).collect();
        let noise_sd: Vec<f64> = (0..p)
            .map(|_| (0.5 + 0.5 * rng.next_f64()) * params.noise)
            .collect();
        let location: Vec<f64> = (0..p).map(|_| 10.0 * rng.normal()).collect();
        let scale: Vec<f64> = (0..p).map(|_| (0.7 * rng.normal()).exp()).collect();
        Structure {
            rank: r,
            p,
            centres,
            spreads,
            cumulative,
            loadings,
            noise_sd,
            location,
            scale,
        }
    }

    fn pick_cluster(&self, rng: &mut SplitMix64) -> usize {
        let u = rng.next_f64();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.cumulative.len() - 1)
    }

    /// A latent point on a cluster; returns the cluster.
    fn draw_latent(&self, rng: &mut SplitMix64, u: &mut [f64]) -> usize {
        let c = self.pick_cluster(rng);
        let r = self.rank;
        let centre = &self.centres[c * r..(c + 1) * r];
        let spread = &self.spreads[c * r..(c + 1) * r];
        for ((x, m), s) in u.iter_mut().zip(centre).zip(spread) {
            *x = m + s * rng.normal();
        }
        c
    }

    /// Maps a latent point to a raw feature row, with noise; `shift` is added
    /// to the noise-free standardised row before scaling.
    fn emit(&self, rng: &mut SplitMix64, u: &[f64], shift: &[(usize, f64)], row: &mut [f64]) {
        let p = self.p;
        for (j, (x, sd)) in row.iter_mut().zip(&self.noise_sd).enumerate() {
            let s: f64 = u
                .iter()
                .enumerate()
                .map(|(a, ua)| ua * self.loadings[a * p + j])
                .sum();
            *x = s + sd * rng.normal();
        }
        for &(j, d) in shift {
            row[j] += d;
        }
        for ((x, m), s) in row.iter_mut().zip(&self.location).zip(&self.scale) {
            *x = m + s * *x;
        }
    }

    /// An in-distribution row; returns its cluster.
    fn draw_in(&self, rng: &mut SplitMix64, row: &mut [f64]) -> usize {
        let mut u = vec![0.0; self.rank];
        let c = self.draw_latent(rng, &mut u);
        self.emit(rng, &u, &[], row);
        c
    }

    /// An outlying row; returns the cluster it was drawn from.
    fn draw_out(&self, rng: &mut SplitMix64, row: &mut [f64]) -> usize {
        let r = self.rank;
        let mut u = vec![0.0; r];
        let c = self.draw_latent(rng, &mut u);
        if rng.next_f64() < 0.5 {
            // Latent shift: walk away from the cluster along a random direction
            // until every centre is far in its own spread units.
            let mut dir: Vec<f64> = (0..r).map(|_| rng.normal()).collect();
            let norm = dir.iter().map(|d| d * d).sum::<f64>().sqrt().max(1e-12);
            dir.iter_mut().for_each(|d| *d /= norm);
            let max_spread = self.spreads[c * r..(c + 1) * r]
                .iter()
                .fold(0.0f64, |m, &s| m.max(s));
            let mut t = OUTLIER_MIN_LATENT_DISTANCE * max_spread;
            for _ in 0..64 {
                for a in 0..r {
                    u[a] = self.centres[c * r + a] + t * dir[a];
                }
                if self.min_scaled_distance(&u) >= OUTLIER_MIN_LATENT_DISTANCE {
                    break;
                }
                t *= 1.15;
            }
            self.emit(rng, &u, &[], row);
        } else {
            // Residual shift: a few features moved off the low-rank subspace.
            let m = OUTLIER_RESIDUAL_FEATURES.min(self.p);
            let shift: Vec<(usize, f64)> = (0..m)
                .map(|_| {
                    let j = rng.below(self.p);
                    let sign = if rng.next_f64() < 0.5 { -1.0 } else { 1.0 };
                    (j, sign * OUTLIER_RESIDUAL_SHIFT * self.noise_sd[j])
                })
                .collect();
            self.emit(rng, &u, &shift, row);
        }
        c
    }

    /// Smallest distance from `u` to a cluster centre, in that cluster's
    /// per-axis spreads.
    fn min_scaled_distance(&self, u: &[f64]) -> f64 {
        let r = self.rank;
        (0..self.cumulative.len())
            .map(|c| {
                (0..r)
                    .map(|a| {
                        let d = (u[a] - self.centres[c * r + a]) / self.spreads[c * r + a];
                        d * d
                    })
                    .sum::<f64>()
                    .sqrt()
            })
            .fold(f64::INFINITY, f64::min)
    }
}

/// Generates `rows` rows in parallel blocks and writes them in order.
/// Returns, per block, the bytes written and the cluster of each row.
fn write_rows<F>(
    path: &Path,
    params: &SynthParams,
    rows: usize,
    truth: bool,
    make: F,
) -> Result<Vec<(u64, Vec<usize>)>>
where
    F: Fn(usize, &mut Vec<u8>, &mut [f64]) -> usize + Sync,
{
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut header = String::from("id");
    for j in 0..params.features {
        header.push_str(&format!(",f{j}"));
    }
    if truth {
        header.push_str(",truth");
    }
    header.push('\n');
    out.write_all(header.as_bytes())
        .map_err(|e| Error::io(path, e))?;
    let mut result = vec![(header.len() as u64, Vec::new())];
    let n_blocks = rows.div_ceil(BLOCK_ROWS);
    let batch = 4 * rayon::current_num_threads().max(1);
    for first in (0..n_blocks).step_by(batch) {
        let blocks: Vec<(Vec<u8>, Vec<usize>)> = (first..(first + batch).min(n_blocks))
            .into_par_iter()
            .map(|b| {
                let start = b * BLOCK_ROWS;
                let end = (start + BLOCK_ROWS).min(rows);
                let mut buf = Vec::with_capacity((end - start) * params.features * 10);
                let mut row = vec![0.0; params.features];
                let clusters = (start..end).map(|i| make(i, &mut buf, &mut row)).collect();
                (buf, clusters)
            })
            .collect();
        for (buf, clusters) in blocks {
            out.write_all(&buf).map_err(|e| Error::io(path, e))?;
            result.push((buf.len() as u64, clusters));
        }
    }
    out.flush().map_err(|e| Error::io(path, e))?;
    Ok(result)
}

/// Appends one CSV line: `{prefix}{i},v0,…[,in|out]\n`.
fn push_row(buf: &mut Vec<u8>, prefix: char, i: usize, row: &[f64], truth: Option<bool>) {
    buf.push(prefix as u8);
    push_uint(buf, i as u64);
    for &v in row {
        buf.push(b',');
        push_fixed(buf, v);
    }
    match truth {
        Some(true) => buf.extend_from_slice(b",out"),
        Some(false) => buf.extend_from_slice(b",in"),
        None => {}
    }
    buf.push(b'\n');
}

fn push_uint(buf: &mut Vec<u8>, mut v: u64) {
    let mut digits = [0u8; 20];
    let mut pos = digits.len();
    loop {
        pos -= 1;
        digits[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[pos..]);
}

/// Appends `v` with exactly [`DECIMALS`] decimals (as `format!("{v:.4}")`
/// would, up to the rounding of halves), much faster than `std` formatting.
fn push_fixed(buf: &mut Vec<u8>, v: f64) {
    const POW: u64 = 10u64.pow(DECIMALS as u32);
    let scaled = (v * POW as f64).round();
    if !scaled.is_finite() || scaled.abs() >= 9.0e15 {
        buf.extend_from_slice(format!("{v:.DECIMALS$}").as_bytes());
        return;
    }
    let m = scaled as i64;
    if m < 0 {
        buf.push(b'-');
    }
    let a = m.unsigned_abs();
    push_uint(buf, a / POW);
    buf.push(b'.');
    let mut frac = a % POW;
    let mut digits = [b'0'; DECIMALS];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (frac % 10) as u8;
        frac /= 10;
    }
    buf.extend_from_slice(&digits);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "nof1-synth-test-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn small() -> SynthParams {
        SynthParams {
            n: 3000,
            features: 16,
            patients: 2000,
            seed: 7,
            rank: 4,
            clusters: 6,
            outlier_fraction: 0.03,
            ..SynthParams::default()
        }
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (a, b, c) = (scratch("a"), scratch("b"), scratch("c"));
        write_synth(&small(), &a).unwrap();
        // A different thread count must not change the bytes.
        rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| write_synth(&small(), &b))
            .unwrap();
        write_synth(&SynthParams { seed: 8, ..small() }, &c).unwrap();
        for f in ["reference.csv", "patients.csv"] {
            let x = std::fs::read(a.join(f)).unwrap();
            assert_eq!(x, std::fs::read(b.join(f)).unwrap(), "{f}");
            assert_ne!(x, std::fs::read(c.join(f)).unwrap(), "{f}");
        }
        for d in [a, b, c] {
            std::fs::remove_dir_all(d).ok();
        }
    }

    #[test]
    fn shapes_headers_and_outlier_fraction() {
        let dir = scratch("shape");
        let p = small();
        let s = write_synth(&p, &dir).unwrap();
        assert_eq!(s.cluster_sizes.iter().sum::<usize>(), p.n);
        assert!(s.cluster_sizes[0] > 10 * s.cluster_sizes[p.clusters - 1]);
        let reference = std::fs::read_to_string(&s.reference).unwrap();
        let lines: Vec<&str> = reference.lines().collect();
        assert_eq!(lines.len(), p.n + 1);
        assert!(lines[0].starts_with("id,f0,f1,"));
        assert!(lines[0].ends_with(",f15"));
        assert!(lines[1..].iter().all(|l| l.split(',').count() == 17));
        assert!(lines[1].starts_with("r0,"));
        let patients = std::fs::read_to_string(&s.patients).unwrap();
        let lines: Vec<&str> = patients.lines().collect();
        assert_eq!(lines.len(), p.patients + 1);
        assert!(lines[0].ends_with(",f15,truth"));
        let out = lines[1..].iter().filter(|l| l.ends_with(",out")).count();
        let inn = lines[1..].iter().filter(|l| l.ends_with(",in")).count();
        assert_eq!(out, 60);
        assert_eq!(out, s.n_outliers);
        assert_eq!(out + inn, p.patients);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn outliers_are_assessed_far_more_often_invisible() {
        let dir = scratch("fit");
        let p = SynthParams {
            outlier_fraction: 0.1,
            ..small()
        };
        let s = write_synth(&p, &dir).unwrap();
        let opts = nof1::TableOptions {
            exclude: vec!["truth".into()],
            ..Default::default()
        };
        let reference = nof1::table::read_table(
            &s.reference,
            &nof1::TableOptions::default(),
            nof1::Role::Reference,
        )
        .unwrap();
        let patients = nof1::table::read_table(&s.patients, &opts, nof1::Role::Patients).unwrap();
        let text = std::fs::read_to_string(&s.patients).unwrap();
        let truth: Vec<bool> = text.lines().skip(1).map(|l| l.ends_with(",out")).collect();
        let model = nof1::Params::default().fit(&reference).unwrap();
        let out = model.assess(&patients).unwrap();
        let flagged = |want: bool| {
            let rows: Vec<_> = out
                .iter()
                .zip(&truth)
                .filter(|(_, t)| **t == want)
                .collect();
            rows.iter()
                .filter(|(a, _)| a.verdict == nof1::Verdict::Invisible)
                .count() as f64
                / rows.len() as f64
        };
        assert!(flagged(true) > 0.9, "outliers detected {}", flagged(true));
        assert!(flagged(false) < 0.1, "inliers flagged {}", flagged(false));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn fixed_formatting_matches_std() {
        for v in [
            0.0,
            -0.0,
            1.5,
            -1.23456,
            12345.67891,
            -0.00004,
            0.00005,
            1e-9,
            99.99999,
        ] {
            let mut b = Vec::new();
            push_fixed(&mut b, v);
            let got = String::from_utf8(b).unwrap();
            let want: f64 = format!("{v:.4}").parse().unwrap();
            assert!(
                (got.parse::<f64>().unwrap() - want).abs() < 1.5e-4,
                "{v}: {got}"
            );
        }
        let mut b = Vec::new();
        push_fixed(&mut b, -3.5);
        assert_eq!(b, b"-3.5000");
    }

    #[test]
    fn clustered_points_are_reproducible() {
        let a = clustered_points(5000, 8, 12, 3);
        assert_eq!(a.len(), 5000 * 8);
        assert_eq!(a, clustered_points(5000, 8, 12, 3));
        assert_ne!(a, clustered_points(5000, 8, 12, 4));
    }

    #[test]
    fn bad_params_are_refused() {
        let dir = scratch("bad");
        let e = write_synth(&SynthParams { rank: 0, ..small() }, &dir).unwrap_err();
        assert!(e.to_string().contains("rank"));
        let e = SynthParams {
            outlier_fraction: 1.5,
            ..small()
        }
        .check()
        .unwrap_err();
        assert!(e.to_string().contains("outlier_fraction"));
    }
}
