//! Projection: principal components of the standardised reference (faer).
//!
//! Third step of the pipeline. The covariance of the standardised reference is
//! accumulated block by block (missing values count as the mean, i.e. 0), its
//! self-adjoint eigendecomposition is computed with faer, components are
//! ordered by decreasing eigenvalue and each loading vector's sign is fixed so
//! that its largest-magnitude entry is positive (ties: lowest feature index).
//! How many components to keep is decided by a [`ComponentRule`].

use faer::{Accum, Mat, MatMut, MatRef, Par, Side};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{ErrorKind, Result};
use crate::rng::SplitMix64;

/// Rows per block when accumulating the covariance.
const BLOCK_ROWS: usize = 4096;

/// Variance fraction of the projection under [`ComponentRule::Auto`].
pub const AUTO_VARIANCE: f64 = 0.95;

/// Noise-likeness at or above which [`ComponentRule::Auto`] treats the
/// spectrum beyond the parallel-analysis components as a noise floor.
pub const NOISE_FLATNESS: f64 = 0.88;

/// The same threshold against the permuted-residual null of
/// [`residual_null_flatness`], which allows each feature its own noise
/// variance. That null is the weaker one (differences in residual variance
/// between features may themselves be structure), so it must be matched more
/// closely.
pub const NOISE_FLATNESS_RESIDUAL: f64 = 0.95;

/// Spectral flatness (geometric over arithmetic mean) of the eigenvalues that
/// are not numerically zero (≤ 1e-9 of the largest); 1 for an empty list.
pub fn spectral_flatness(eigenvalues: &[f64]) -> f64 {
    let top = eigenvalues.iter().cloned().fold(0.0f64, f64::max);
    let kept: Vec<f64> = eigenvalues
        .iter()
        .copied()
        .filter(|&e| e > 1e-9 * top.max(1e-300))
        .collect();
    if kept.is_empty() {
        return 1.0;
    }
    let log_mean = kept.iter().map(|e| e.ln()).sum::<f64>() / kept.len() as f64;
    let mean = kept.iter().sum::<f64>() / kept.len() as f64;
    log_mean.exp() / mean
}

/// How noise-like the spectrum beyond the first `c` components is: its
/// spectral flatness relative to that of the parallel-analysis null
/// eigenvalues over the same indices. Near 1 for a noise floor (genotype
/// dosages, measurement noise), well below 1 for a decaying, structured
/// spectrum (correlated clinical variables).
pub fn noise_likeness(eigenvalues: &[f64], null_eigenvalues: &[f64], c: usize) -> f64 {
    if c >= eigenvalues.len() || c >= null_eigenvalues.len() {
        return 0.0;
    }
    let null = spectral_flatness(&null_eigenvalues[c..]);
    if null <= 0.0 {
        return 0.0;
    }
    spectral_flatness(&eigenvalues[c..]) / null
}

/// Number of column permutations used by parallel analysis.
pub const PARALLEL_ANALYSIS_PERMUTATIONS: usize = 19;

/// Rows subsampled for parallel analysis.
pub const PARALLEL_ANALYSIS_ROWS: usize = 4000;

/// How many principal components to keep.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum ComponentRule {
    /// The default, chosen by the data: when the spectrum parallel analysis
    /// discards is as flat as that of permuted data (a noise floor, see
    /// [`noise_likeness`] and [`NOISE_FLATNESS`]), keep the parallel-analysis
    /// components; otherwise keep components up to 95% of the variance (and at
    /// least the parallel-analysis count). The residual then carries the rest.
    Auto,
    /// Horn's parallel analysis: keep the leading components whose eigenvalue
    /// exceeds the 95th percentile of the same eigenvalue of column-permuted data.
    ParallelAnalysis,
    /// Keep the fewest leading components that explain this fraction of variance.
    Variance(f64),
    /// Keep exactly this many components.
    Fixed(usize),
}

impl std::fmt::Display for ComponentRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ComponentRule::Auto => write!(f, "auto (parallel analysis + 95% variance)"),
            ComponentRule::ParallelAnalysis => write!(f, "parallel analysis (95th percentile)"),
            ComponentRule::Variance(v) => write!(f, "explained variance >= {v}"),
            ComponentRule::Fixed(n) => write!(f, "fixed {n}"),
        }
    }
}

/// Eigen-decomposition of a standardised covariance, in decreasing order.
#[derive(Debug, Clone)]
pub struct Pca {
    /// All eigenvalues, non-increasing, clamped at 0.
    pub eigenvalues: Vec<f64>,
    /// Loadings, row-major `p × r` (column `k` is the k-th component), sign-fixed.
    pub loadings: Vec<f64>,
    /// Number of loading columns held (`r`).
    pub n_loadings: usize,
}

/// Rows of a row-major table and the standardisation applied to them.
#[derive(Debug, Clone, Copy)]
pub struct StandardisedRows<'a> {
    /// Row-major values, `p` per row (`NaN` = missing, standardised to 0).
    pub values: &'a [f64],
    /// Number of columns.
    pub p: usize,
    /// The rows used, in this order.
    pub rows: &'a [usize],
    /// Column means.
    pub mean: &'a [f64],
    /// Column scales.
    pub scale: &'a [f64],
}

/// Standardises the rows `rows` of `values` (row-major, `p` columns) with
/// `mean`/`scale`, missing as 0, into a dense `faer` matrix.
fn standardised_block(
    values: &[f64],
    p: usize,
    rows: &[usize],
    mean: &[f64],
    scale: &[f64],
) -> Mat<f64> {
    Mat::from_fn(rows.len(), p, |i, j| {
        let x = values[rows[i] * p + j];
        if x.is_nan() {
            0.0
        } else {
            ((x - mean[j]) / scale[j])
                .clamp(-crate::standardise::Z_CLAMP, crate::standardise::Z_CLAMP)
        }
    })
}

/// Covariance `ZᵀZ / (n − 1)` of the standardised rows, deterministic for any
/// thread count (block products are summed in block order).
pub fn covariance(
    values: &[f64],
    p: usize,
    rows: &[usize],
    mean: &[f64],
    scale: &[f64],
) -> Mat<f64> {
    if p >= WIDE_MIN_FEATURES {
        // Wide: each row block's product is itself parallel (column blocks),
        // blocks are summed in order; one block in memory at a time.
        let mut cov = Mat::<f64>::zeros(p, p);
        for chunk in rows.chunks(BLOCK_ROWS) {
            let z = standardised_block(values, p, chunk, mean, scale);
            cov += gram_sym(z.as_ref(), 1.0);
        }
        let denom = (rows.len().max(2) - 1) as f64;
        cov *= faer::Scale(1.0 / denom);
        return cov;
    }
    let partials: Vec<Mat<f64>> = rows
        .par_chunks(BLOCK_ROWS)
        .map(|chunk| {
            let z = standardised_block(values, p, chunk, mean, scale);
            let mut c = Mat::<f64>::zeros(p, p);
            faer::linalg::matmul::matmul(
                c.as_mut(),
                Accum::Replace,
                z.transpose(),
                z.as_ref(),
                1.0,
                Par::Seq,
            );
            c
        })
        .collect();
    let mut cov = Mat::<f64>::zeros(p, p);
    for part in &partials {
        cov += part;
    }
    let denom = (rows.len().max(2) - 1) as f64;
    cov *= faer::Scale(1.0 / denom);
    cov
}

/// Flips column `k` of row-major `p × r` loadings so that its
/// largest-magnitude entry is positive (ties: the lowest feature index).
fn fix_sign(loadings: &mut [f64], p: usize, r: usize, k: usize) {
    let mut best = 0usize;
    let mut best_abs = -1.0;
    for j in 0..p {
        let a = loadings[j * r + k].abs();
        if a > best_abs + 1e-12 {
            best_abs = a;
            best = j;
        }
    }
    if loadings[best * r + k] < 0.0 {
        for j in 0..p {
            loadings[j * r + k] = -loadings[j * r + k];
        }
    }
}

/// Eigen-decomposes a symmetric matrix; eigenvalues non-increasing, vectors sign-fixed.
pub fn eigen_desc(cov: MatRef<'_, f64>, n_keep: usize) -> Result<Pca> {
    let p = cov.nrows();
    let evd = cov
        .self_adjoint_eigen(Side::Lower)
        .map_err(|e| ErrorKind::Numerical(format!("eigendecomposition failed: {e:?}")))?;
    let s = evd.S().column_vector();
    let u = evd.U();
    let r = n_keep.min(p);
    let eigenvalues: Vec<f64> = (0..p).rev().map(|k| s[k].max(0.0)).collect();
    let mut loadings = vec![0.0; p * r];
    for (out_k, k) in (0..p).rev().take(r).enumerate() {
        for j in 0..p {
            loadings[j * r + out_k] = u[(j, k)];
        }
        fix_sign(&mut loadings, p, r, out_k);
    }
    Ok(Pca {
        eigenvalues,
        loadings,
        n_loadings: r,
    })
}

/// Principal components of the standardised rows `rows`: eigenvalues (all
/// `p`, non-increasing) and the first `n_keep` sign-fixed loadings.
///
/// Uses the `p × p` covariance when `p ≤ n`, and the `n × n` Gram matrix
/// `Z Zᵀ/(n − 1)` for wide tables (`p > n`), whose non-zero eigenvalues are
/// the same; loadings are then `Zᵀu / √((n − 1)λ)`.
///
/// # Errors
/// [`ErrorKind::Numerical`] if the eigendecomposition fails.
pub fn fit_pca(
    values: &[f64],
    p: usize,
    rows: &[usize],
    mean: &[f64],
    scale: &[f64],
    n_keep: usize,
) -> Result<Pca> {
    let n = rows.len();
    if p <= n.max(2) {
        let cov = covariance(values, p, rows, mean, scale);
        return eigen_desc(cov.as_ref(), n_keep);
    }
    let z = standardised_block(values, p, rows, mean, scale);
    let denom = (n.max(2) - 1) as f64;
    let mut gram = Mat::<f64>::zeros(n, n);
    faer::linalg::matmul::matmul(
        gram.as_mut(),
        Accum::Replace,
        z.as_ref(),
        z.transpose(),
        1.0 / denom,
        Par::Seq,
    );
    let g = eigen_desc(gram.as_ref(), n_keep.min(n))?;
    let r = n_keep.min(n).min(p);
    let mut eigenvalues = g.eigenvalues.clone();
    eigenvalues.resize(p, 0.0);
    // Zᵀ U as one product (columns of U scaled afterwards).
    let u = Mat::<f64>::from_fn(n, r, |i, k| g.loadings[i * g.n_loadings + k]);
    let mut zu = Mat::<f64>::zeros(p, r);
    faer::linalg::matmul::matmul(
        zu.as_mut(),
        Accum::Replace,
        z.transpose(),
        u.as_ref(),
        1.0,
        Par::Seq,
    );
    let mut loadings = vec![0.0; p * r];
    for k in 0..r {
        let lambda = g.eigenvalues[k];
        if lambda <= 1e-12 {
            continue;
        }
        let norm = 1.0 / (denom * lambda).sqrt();
        for j in 0..p {
            loadings[j * r + k] = zu[(j, k)] * norm;
        }
        fix_sign(&mut loadings, p, r, k);
    }
    Ok(Pca {
        eigenvalues,
        loadings,
        n_loadings: r,
    })
}

/// Most subspace iterations [`Spectrum::loadings`] spends before it takes the
/// full decomposition instead (leading eigenvalues too close to the rest).
pub const SPECTRUM_MAX_ITERATIONS: usize = 60;

/// The eigenvalues of a reference's standardised covariance, with the
/// leading loadings computed when the component count is known.
///
/// For a wide reference (`p` from [`WIDE_MIN_FEATURES`] to
/// [`WIDE_MAX_FEATURES`], `p ≤ n`) the component rule needs every
/// eigenvalue but only a few eigenvectors: the eigenvalues come from an
/// eigenvalues-only decomposition (about 0.6 of a full one at `p` = 2,500)
/// and the loadings from [`truncated_eigen`] (the same stopping rule as the
/// fold models'; the full decomposition when it does not converge within
/// [`SPECTRUM_MAX_ITERATIONS`]). Otherwise the full [`fit_pca`] (same bits
/// as before).
#[derive(Debug)]
pub enum Spectrum {
    /// The full decomposition.
    Full(Pca),
    /// A wide reference's covariance and eigenvalues.
    Wide {
        /// The standardised covariance.
        cov: Mat<f64>,
        /// All eigenvalues, non-increasing, clamped at 0.
        eigenvalues: Vec<f64>,
        /// Seed of the truncated solver.
        seed: u64,
    },
}

impl Spectrum {
    /// The spectrum of the standardised `rows`, at most `n_keep` loadings
    /// (as [`fit_pca`]); `seed` starts the truncated solver.
    ///
    /// # Errors
    /// [`ErrorKind::Numerical`] if an eigendecomposition fails.
    pub fn fit(rows: StandardisedRows<'_>, n_keep: usize, seed: u64) -> Result<Spectrum> {
        let StandardisedRows {
            values,
            p,
            rows,
            mean,
            scale,
        } = rows;
        if !(WIDE_MIN_FEATURES..=WIDE_MAX_FEATURES).contains(&p) || p > rows.len() {
            return Ok(Spectrum::Full(fit_pca(
                values, p, rows, mean, scale, n_keep,
            )?));
        }
        let cov = covariance(values, p, rows, mean, scale);
        let mut eigenvalues: Vec<f64> = cov
            .self_adjoint_eigenvalues(Side::Lower)
            .map_err(|e| ErrorKind::Numerical(format!("eigenvalues failed: {e:?}")))?
            .iter()
            .rev()
            .map(|&v| v.max(0.0))
            .collect();
        eigenvalues.resize(p, 0.0);
        Ok(Spectrum::Wide {
            cov,
            eigenvalues,
            seed,
        })
    }

    /// All eigenvalues, non-increasing.
    pub fn eigenvalues(&self) -> &[f64] {
        match self {
            Spectrum::Full(pca) => &pca.eigenvalues,
            Spectrum::Wide { eigenvalues, .. } => eigenvalues,
        }
    }

    /// Most loadings [`Spectrum::loadings`] gives when [`Spectrum::fit`] was
    /// asked for `n_keep`.
    pub fn loadings_available(&self, n_keep: usize) -> usize {
        match self {
            Spectrum::Full(pca) => pca.n_loadings.max(1),
            Spectrum::Wide { cov, .. } => n_keep.min(cov.nrows()).max(1),
        }
    }

    /// The first `r` loadings (at most what [`Spectrum::fit`] was asked for
    /// when full), with every eigenvalue.
    ///
    /// # Errors
    /// [`ErrorKind::Numerical`] if an eigendecomposition fails.
    pub fn loadings(&self, r: usize) -> Result<Pca> {
        match self {
            Spectrum::Full(pca) => Ok(pca.clone()),
            Spectrum::Wide {
                cov,
                eigenvalues,
                seed,
            } => {
                let p = cov.nrows();
                let r = r.min(p).max(1);
                let (mut pca, residual) = if full_decomposition_pays(r, p) {
                    (eigen_desc(cov.as_ref(), r)?, 0.0)
                } else {
                    subspace_iteration(
                        p,
                        r,
                        *seed,
                        None,
                        SPECTRUM_MAX_ITERATIONS,
                        &|q: MatRef<'_, f64>, y: MatMut<'_, f64>| {
                            faer::linalg::matmul::matmul(
                                y,
                                Accum::Replace,
                                cov.as_ref(),
                                q,
                                1.0,
                                Par::rayon(0),
                            );
                        },
                    )?
                };
                if residual > SUBSPACE_TOLERANCE {
                    pca = eigen_desc(cov.as_ref(), r)?;
                }
                pca.eigenvalues = eigenvalues.clone();
                Ok(pca)
            }
        }
    }
}

/// Features from which [`FoldPca`] downdates the whole reference's
/// cross-products and [`fit_pca`] multiplies in parallel column blocks (below,
/// the row-block path is kept: outputs there are unchanged).
pub const WIDE_MIN_FEATURES: usize = 512;

/// Most features for which [`FoldPca`] keeps the `p × p` cross-products
/// (`8 p²` bytes: 128 MiB at 4,096).
pub const WIDE_MAX_FEATURES: usize = 4096;

/// Columns per block of [`gram_sym`].
const GRAM_BLOCK_COLS: usize = 128;

/// `ZᵀZ · scale` for a column-major `m × p` matrix, in parallel column blocks
/// (each block's lower part `Z[:, j0..]ᵀ Z[:, j0..j1]` is one sequential
/// product, mirrored to the upper triangle): half the work of a full product,
/// and the same bits for any number of threads.
pub fn gram_sym(z: MatRef<'_, f64>, scale: f64) -> Mat<f64> {
    let p = z.ncols();
    let starts: Vec<usize> = (0..p).step_by(GRAM_BLOCK_COLS).collect();
    let blocks: Vec<Mat<f64>> = starts
        .par_iter()
        .map(|&j0| {
            let j1 = (j0 + GRAM_BLOCK_COLS).min(p);
            let mut b = Mat::<f64>::zeros(p - j0, j1 - j0);
            faer::linalg::matmul::matmul(
                b.as_mut(),
                Accum::Replace,
                z.subcols(j0, p - j0).transpose(),
                z.subcols(j0, j1 - j0),
                scale,
                Par::Seq,
            );
            b
        })
        .collect();
    let mut c = Mat::<f64>::zeros(p, p);
    for (&j0, b) in starts.iter().zip(&blocks) {
        for jj in 0..b.ncols() {
            let j = j0 + jj;
            for ii in jj..b.nrows() {
                let i = j0 + ii;
                let v = b[(ii, jj)];
                c[(i, j)] = v;
                c[(j, i)] = v;
            }
        }
    }
    c
}

/// Whether `r` leading eigenpairs of a `p × p` matrix are cheaper from the
/// full decomposition than from subspace iteration (its block of
/// `r + SUBSPACE_OVERSAMPLE` columns would span half the space or more).
fn full_decomposition_pays(r: usize, p: usize) -> bool {
    (r + SUBSPACE_OVERSAMPLE).min(p) >= p / 2
}

/// Oversampling of the block in [`truncated_eigen`].
pub const SUBSPACE_OVERSAMPLE: usize = 16;
/// Most iterations of [`truncated_eigen`].
pub const SUBSPACE_MAX_ITERATIONS: usize = 200;
/// [`truncated_eigen`] stops when every kept Ritz pair's residual
/// `‖C v − λ v‖` is at most this fraction of the largest eigenvalue.
pub const SUBSPACE_TOLERANCE: f64 = 1e-9;

/// The leading `n_keep` eigenpairs of a symmetric positive semi-definite
/// matrix by subspace iteration with Rayleigh–Ritz (seeded Gaussian start),
/// for when a full eigendecomposition costs too much (`p` in the thousands).
///
/// Returns a [`Pca`] whose `eigenvalues` hold only the `n_keep` leading ones
/// (non-increasing), with sign-fixed loadings, and the largest residual
/// `max_k ‖C v_k − λ_k v_k‖ / λ_1` reached: at most [`SUBSPACE_TOLERANCE`]
/// unless [`SUBSPACE_MAX_ITERATIONS`] ran out (eigenvalues whose gap to the
/// rest of the spectrum is tiny converge slowly; their span is then only as
/// precise as the residual says).
///
/// # Errors
/// [`ErrorKind::Numerical`] if an eigendecomposition of the small projected
/// matrix fails.
pub fn truncated_eigen(cov: MatRef<'_, f64>, n_keep: usize, seed: u64) -> Result<(Pca, f64)> {
    truncated_eigen_from(cov, n_keep, seed, None)
}

/// [`truncated_eigen`] started from the columns of `start` (row-major
/// `p × s`, e.g. the loadings of a nearby matrix), the rest of the block
/// seeded as there: fewer iterations to the same stopping rule when `start`
/// is close to the leading eigenvectors.
///
/// # Errors
/// As [`truncated_eigen`].
pub fn truncated_eigen_from(
    cov: MatRef<'_, f64>,
    n_keep: usize,
    seed: u64,
    start: Option<(&[f64], usize)>,
) -> Result<(Pca, f64)> {
    let p = cov.nrows();
    let r = n_keep.min(p).max(1);
    if full_decomposition_pays(r, p) {
        let pca = eigen_desc(cov, r)?;
        let mut pca = pca;
        pca.eigenvalues.truncate(r);
        return Ok((pca, 0.0));
    }
    subspace_iteration(p, r, seed, start, SUBSPACE_MAX_ITERATIONS, &|q: MatRef<
        '_,
        f64,
    >,
                                                                     y: MatMut<
        '_,
        f64,
    >| {
        faer::linalg::matmul::matmul(y, Accum::Replace, cov, q, 1.0, Par::Seq);
    })
}

/// Subspace iteration with Rayleigh–Ritz for the leading `r` eigenpairs of
/// the symmetric positive semi-definite `p × p` operator `apply` (`y ← C q`
/// for a `p × l` block), `l = r + SUBSPACE_OVERSAMPLE` (callers make sure
/// `l < p/2`); as [`truncated_eigen_from`].
fn subspace_iteration(
    p: usize,
    r: usize,
    seed: u64,
    start: Option<(&[f64], usize)>,
    max_iterations: usize,
    apply: &dyn Fn(MatRef<'_, f64>, MatMut<'_, f64>),
) -> Result<(Pca, f64)> {
    let l = (r + SUBSPACE_OVERSAMPLE).min(p);
    let mut rng = SplitMix64::new(seed ^ 0x5355_4253);
    let mut block = Mat::<f64>::from_fn(p, l, |_, _| rng.normal());
    if let Some((v, s)) = start.filter(|(v, s)| v.len() == p * s) {
        for k in 0..s.min(l) {
            for j in 0..p {
                block[(j, k)] = v[j * s + k];
            }
        }
    }
    let mut q = block.qr().compute_thin_Q();
    let mut y = Mat::<f64>::zeros(p, l);
    let mut best = f64::INFINITY;
    let mut out: Option<(Mat<f64>, Vec<f64>)> = None;
    for _ in 0..max_iterations {
        apply(q.as_ref(), y.as_mut());
        let mut t = Mat::<f64>::zeros(l, l);
        faer::linalg::matmul::matmul(
            t.as_mut(),
            Accum::Replace,
            q.transpose(),
            y.as_ref(),
            1.0,
            Par::Seq,
        );
        // Symmetrise the small matrix against rounding.
        let t = Mat::<f64>::from_fn(l, l, |i, j| 0.5 * (t[(i, j)] + t[(j, i)]));
        let evd = t
            .self_adjoint_eigen(Side::Lower)
            .map_err(|e| ErrorKind::Numerical(format!("eigendecomposition failed: {e:?}")))?;
        let theta: Vec<f64> = (0..l).rev().map(|k| evd.S().column_vector()[k]).collect();
        let w = Mat::<f64>::from_fn(l, r, |i, k| evd.U()[(i, l - 1 - k)]);
        let mut x = Mat::<f64>::zeros(p, r);
        faer::linalg::matmul::matmul(
            x.as_mut(),
            Accum::Replace,
            q.as_ref(),
            w.as_ref(),
            1.0,
            Par::Seq,
        );
        let mut yw = Mat::<f64>::zeros(p, r);
        faer::linalg::matmul::matmul(
            yw.as_mut(),
            Accum::Replace,
            y.as_ref(),
            w.as_ref(),
            1.0,
            Par::Seq,
        );
        let top = theta[0].abs().max(1e-300);
        let residual = (0..r)
            .map(|k| {
                (0..p)
                    .map(|i| (yw[(i, k)] - theta[k] * x[(i, k)]).powi(2))
                    .sum::<f64>()
                    .sqrt()
                    / top
            })
            .fold(0.0f64, f64::max);
        if residual < best || out.is_none() {
            best = residual;
            out = Some((x, theta[..r].to_vec()));
        }
        if residual <= SUBSPACE_TOLERANCE {
            break;
        }
        q = y.qr().compute_thin_Q();
    }
    let (x, theta) = out.ok_or_else(|| ErrorKind::Numerical("no iteration ran".into()))?;
    let mut loadings = vec![0.0; p * r];
    for k in 0..r {
        for j in 0..p {
            loadings[j * r + k] = x[(j, k)];
        }
        fix_sign(&mut loadings, p, r, k);
    }
    Ok((
        Pca {
            eigenvalues: theta.iter().map(|v| v.max(0.0)).collect(),
            loadings,
            n_loadings: r,
        },
        best,
    ))
}

/// Principal components of the training parts of a cross-fit (every row but
/// a fold's), at the cost of a downdate for wide references.
///
/// For `p` in [`WIDE_MIN_FEATURES`]`..=`[`WIDE_MAX_FEATURES`] with `p < n` and
/// no missing value, the cross-products `Σ (x − m₀)(x − m₀)ᵀ` of all rows are
/// formed once; a training part's standardised covariance is then that minus
/// its held-out rows' cross-products, recentred on the part's own mean and
/// scaled by its own standard deviations (exact up to rounding: no value may
/// reach the standardisation clamp, which is checked), and its leading
/// components come from [`truncated_eigen`]. Otherwise [`FoldPca::fit`] is
/// [`fit_pca`] on the training rows (the same bits as before).
#[derive(Debug)]
pub struct FoldPca<'a> {
    values: &'a [f64],
    p: usize,
    n_rows: usize,
    seed: u64,
    wide: Option<Downdate>,
    /// Start of the truncated solver: row-major `p × s` loadings of the whole
    /// reference (see [`FoldPca::starting_from`]).
    start: Option<(Vec<f64>, usize)>,
}

#[derive(Debug)]
struct Downdate {
    /// Centre of the cross-products (mean over all rows).
    centre: Vec<f64>,
    /// `Σ (x − centre)(x − centre)ᵀ` over all rows.
    gram: Mat<f64>,
    /// `max |x − centre|` per feature.
    max_dev: Vec<f64>,
}

/// The rows `rows` of `values` minus `centre`, as a dense matrix.
fn centred_block(values: &[f64], p: usize, rows: &[usize], centre: &[f64]) -> Mat<f64> {
    Mat::from_fn(rows.len(), p, |i, j| values[rows[i] * p + j] - centre[j])
}

impl<'a> FoldPca<'a> {
    /// Prepares the fold PCAs of a reference of `n_rows` rows (row-major
    /// `values`, `p` columns); `seed` drives the truncated solver's start.
    pub fn new(values: &'a [f64], p: usize, n_rows: usize, seed: u64) -> Self {
        let wide = (WIDE_MIN_FEATURES..=WIDE_MAX_FEATURES).contains(&p)
            && p < n_rows
            && !values[..n_rows * p].iter().any(|v| v.is_nan());
        let wide = wide.then(|| {
            let mut centre = vec![0.0; p];
            for row in values[..n_rows * p].chunks_exact(p) {
                for (c, v) in centre.iter_mut().zip(row) {
                    *c += v;
                }
            }
            centre.iter_mut().for_each(|c| *c /= n_rows as f64);
            let mut max_dev = vec![0.0f64; p];
            for row in values[..n_rows * p].chunks_exact(p) {
                for ((m, v), c) in max_dev.iter_mut().zip(row).zip(&centre) {
                    *m = m.max((v - c).abs());
                }
            }
            let all: Vec<usize> = (0..n_rows).collect();
            let gram = gram_sym(centred_block(values, p, &all, &centre).as_ref(), 1.0);
            Downdate {
                centre,
                gram,
                max_dev,
            }
        });
        FoldPca {
            values,
            p,
            n_rows,
            seed,
            wide,
            start: None,
        }
    }

    /// Starts each downdated part's solver from `loadings` (row-major
    /// `p × s`: the whole reference's leading loadings, which a training
    /// part's differ from only by its held-out rows), the rest of the block
    /// seeded: the same stopping rule in fewer iterations.
    pub fn starting_from(mut self, loadings: Vec<f64>, s: usize) -> Self {
        if s > 0 && loadings.len() == self.p * s {
            self.start = Some((loadings, s));
        }
        self
    }

    /// Whether training parts are downdated (else each is a full [`fit_pca`]).
    pub fn is_downdated(&self) -> bool {
        self.wide.is_some()
    }

    /// The first `n_keep` components of the rows `train`, standardised with
    /// `mean`/`scale` (the training part's own standardisation). Downdated,
    /// `eigenvalues` holds only the leading `n_keep`.
    ///
    /// # Errors
    /// [`ErrorKind::Numerical`] if an eigendecomposition fails.
    pub fn fit(&self, train: &[usize], mean: &[f64], scale: &[f64], n_keep: usize) -> Result<Pca> {
        let p = self.p;
        let Some(d) = &self.wide else {
            return fit_pca(self.values, p, train, mean, scale, n_keep);
        };
        let n_t = train.len();
        let shift: Vec<f64> = mean.iter().zip(&d.centre).map(|(m, c)| m - c).collect();
        let clamps = (0..p).any(|j| {
            scale[j].is_nan()
                || scale[j] <= 0.0
                || (d.max_dev[j] + shift[j].abs()) / scale[j] > 0.5 * crate::standardise::Z_CLAMP
        });
        if clamps || n_t < 2 {
            return fit_pca(self.values, p, train, mean, scale, n_keep);
        }
        let mut in_train = vec![false; self.n_rows];
        for &r in train {
            in_train[r] = true;
        }
        let held: Vec<usize> = (0..self.n_rows).filter(|&r| !in_train[r]).collect();
        let held = centred_block(self.values, p, &held, &d.centre);
        let denom = (n_t - 1) as f64;
        let nt = n_t as f64;
        let start = self.start.as_ref().map(|(v, s)| (v.as_slice(), *s));
        let r = n_keep.min(p).max(1);
        if full_decomposition_pays(r, p) {
            // The full decomposition of the downdated covariance.
            let mut cov = d.gram.clone();
            cov -= gram_sym(held.as_ref(), 1.0);
            let cov = Mat::<f64>::from_fn(p, p, |i, j| {
                (cov[(i, j)] - nt * shift[i] * shift[j]) / (denom * scale[i] * scale[j])
            });
            return Ok(truncated_eigen_from(cov.as_ref(), n_keep, self.seed, start)?.0);
        }
        // The training part's standardised covariance as an operator, never
        // formed: C q = S⁻¹ [(G − HᵀH) − n_t s sᵀ] S⁻¹ q / (n_t − 1), with G the
        // whole reference's cross-products, H its held-out rows (centred),
        // s the shift of the part's mean and S its scales.
        let apply = |q: MatRef<'_, f64>, mut y: MatMut<'_, f64>| {
            let l = q.ncols();
            let qs = Mat::<f64>::from_fn(p, l, |j, k| q[(j, k)] / scale[j]);
            faer::linalg::matmul::matmul(
                y.as_mut(),
                Accum::Replace,
                d.gram.as_ref(),
                qs.as_ref(),
                1.0,
                Par::Seq,
            );
            if held.nrows() > 0 {
                let mut hq = Mat::<f64>::zeros(held.nrows(), l);
                faer::linalg::matmul::matmul(
                    hq.as_mut(),
                    Accum::Replace,
                    held.as_ref(),
                    qs.as_ref(),
                    1.0,
                    Par::Seq,
                );
                faer::linalg::matmul::matmul(
                    y.as_mut(),
                    Accum::Add,
                    held.transpose(),
                    hq.as_ref(),
                    -1.0,
                    Par::Seq,
                );
            }
            for k in 0..l {
                let u: f64 = (0..p).map(|j| shift[j] * qs[(j, k)]).sum::<f64>() * nt;
                for j in 0..p {
                    y[(j, k)] = (y[(j, k)] - u * shift[j]) / (denom * scale[j]);
                }
            }
        };
        Ok(subspace_iteration(p, r, self.seed, start, SUBSPACE_MAX_ITERATIONS, &apply)?.0)
    }
}

/// Eigenvalues (non-increasing, length `p`) of `ZᵀZ/(m − 1)` for a dense `m × p`
/// matrix, through whichever of `ZᵀZ` and `ZZᵀ` is smaller.
fn eigenvalues_of(z: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let (m, p) = (z.nrows(), z.ncols());
    let denom = (m.max(2) - 1) as f64;
    let small = p.min(m);
    let c = if p >= WIDE_MIN_FEATURES && p <= m {
        // Wide: the symmetric product, half the work (as `covariance`).
        gram_sym(z, 1.0 / denom)
    } else {
        let mut c = Mat::<f64>::zeros(small, small);
        let (lhs, rhs) = if p <= m {
            (z.transpose(), z)
        } else {
            (z, z.transpose())
        };
        faer::linalg::matmul::matmul(c.as_mut(), Accum::Replace, lhs, rhs, 1.0 / denom, Par::Seq);
        c
    };
    let mut ev = c
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| ErrorKind::Numerical(format!("eigenvalues failed: {e:?}")))?;
    ev.reverse();
    ev.resize(p, 0.0);
    Ok(ev)
}

/// [`eigenvalues_of`] for a wide null sample, in single precision (the
/// product `ZᵀZ`, its lower triangle only, and the decomposition): about 0.6
/// of the time at `p` = 2,500. Its rounding, about 1e-6 of the largest eigenvalue, is far
/// below the permutation's own sampling spread (of the order of `p^(−2/3)`
/// relative at the edge of the spectrum), which the null estimates anyway.
fn null_eigenvalues_of(z: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let (m, p) = (z.nrows(), z.ncols());
    if p > m {
        return eigenvalues_of(z);
    }
    let z32 = Mat::<f32>::from_fn(m, p, |i, j| z[(i, j)] as f32);
    // The lower triangle alone: the decomposition reads no other.
    let mut c = Mat::<f32>::zeros(p, p);
    faer::linalg::matmul::triangular::matmul(
        c.as_mut(),
        faer::linalg::matmul::triangular::BlockStructure::TriangularLower,
        Accum::Replace,
        z32.transpose(),
        faer::linalg::matmul::triangular::BlockStructure::Rectangular,
        z32.as_ref(),
        faer::linalg::matmul::triangular::BlockStructure::Rectangular,
        1.0 / (m.max(2) - 1) as f32,
        Par::Seq,
    );
    let ev = c
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| ErrorKind::Numerical(format!("eigenvalues failed: {e:?}")))?;
    Ok(ev.iter().rev().map(|&v| f64::from(v).max(0.0)).collect())
}

/// Number of components kept by the variance rule.
pub fn n_for_variance(eigenvalues: &[f64], fraction: f64) -> usize {
    let total: f64 = eigenvalues.iter().sum();
    if total <= 0.0 {
        return 1;
    }
    let mut acc = 0.0;
    for (k, e) in eigenvalues.iter().enumerate() {
        acc += e;
        if acc / total >= fraction - 1e-12 {
            return k + 1;
        }
    }
    eigenvalues.len()
}

/// Permutations parallel analysis uses for a wide reference (at least
/// [`WIDE_MIN_FEATURES`] features): the first of the same seeded sequence.
///
/// Each null spectrum of a `p × p` matrix costs a full eigenvalue
/// decomposition (2 s at `p` = 2,500 on one core), and for wide data the
/// spread of an eigenvalue over permutations is small (eigenvalue rigidity:
/// of the order of the spacing at the edge, `1/p` relative in the bulk), so
/// the largest of three (the 75th percentile) stands in for that of 19.
/// Chosen on `nof1 bench synth --profile omics` (docs/performance.md): the
/// component count and the noise-likeness verdict are the same as with 19.
pub const WIDE_PARALLEL_ANALYSIS_PERMUTATIONS: usize = 3;

/// Permutations of the permuted-residual null ([`residual_null_flatness`])
/// for a wide reference (see [`WIDE_PARALLEL_ANALYSIS_PERMUTATIONS`]).
pub const WIDE_RESIDUAL_NULL_PERMUTATIONS: usize = 1;

/// Permutations of parallel analysis for `p` features:
/// [`PARALLEL_ANALYSIS_PERMUTATIONS`], or
/// [`WIDE_PARALLEL_ANALYSIS_PERMUTATIONS`] from [`WIDE_MIN_FEATURES`] on.
pub fn parallel_analysis_permutations(p: usize) -> usize {
    if p >= WIDE_MIN_FEATURES {
        WIDE_PARALLEL_ANALYSIS_PERMUTATIONS
    } else {
        PARALLEL_ANALYSIS_PERMUTATIONS
    }
}

/// Permutations of the permuted-residual null for `p` features:
/// [`RESIDUAL_NULL_PERMUTATIONS`], or [`WIDE_RESIDUAL_NULL_PERMUTATIONS`]
/// from [`WIDE_MIN_FEATURES`] on.
pub fn residual_null_permutations(p: usize) -> usize {
    if p >= WIDE_MIN_FEATURES {
        WIDE_RESIDUAL_NULL_PERMUTATIONS
    } else {
        RESIDUAL_NULL_PERMUTATIONS
    }
}

/// Parallel analysis: the 95th percentile of each eigenvalue of column-permuted
/// data (the largest over [`parallel_analysis_permutations`] seeded
/// permutations of the subsample), and the real eigenvalues on the same
/// subsample.
///
/// Returns `(real, null95)`, both non-increasing in index.
///
/// # Errors
/// [`ErrorKind::Numerical`] if an eigendecomposition fails.
pub fn parallel_analysis(
    values: &[f64],
    p: usize,
    rows: &[usize],
    mean: &[f64],
    scale: &[f64],
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let z = parallel_analysis_sample(StandardisedRows {
        values,
        p,
        rows,
        mean,
        scale,
    });
    let real = eigenvalues_of(z.as_ref())?;
    Ok((real, null_spectrum(&z, seed)?))
}

/// The null half of [`parallel_analysis`] alone (fit keeps the whole
/// reference's spectrum as the real one: the subsample's would be a
/// decomposition more).
///
/// # Errors
/// [`ErrorKind::Numerical`] if an eigendecomposition fails.
pub fn parallel_analysis_null(sample: StandardisedRows<'_>, seed: u64) -> Result<Vec<f64>> {
    null_spectrum(&parallel_analysis_sample(sample), seed)
}

/// The first [`PARALLEL_ANALYSIS_ROWS`] rows in the given order (callers
/// pass a seeded id order), standardised.
fn parallel_analysis_sample(sample: StandardisedRows<'_>) -> Mat<f64> {
    let sub: Vec<usize> = sample
        .rows
        .iter()
        .take(PARALLEL_ANALYSIS_ROWS)
        .copied()
        .collect();
    standardised_block(sample.values, sample.p, &sub, sample.mean, sample.scale)
}

/// The largest of each eigenvalue over the seeded column permutations of `z`.
fn null_spectrum(z: &Mat<f64>, seed: u64) -> Result<Vec<f64>> {
    let p = z.ncols();
    let mut rng = SplitMix64::new(seed ^ 0x5041_5241);
    let seeds: Vec<u64> = (0..parallel_analysis_permutations(p))
        .map(|_| rng.next_u64())
        .collect();
    let nulls: Vec<Vec<f64>> = seeds
        .par_iter()
        .map(|&s| {
            let zp = permuted_columns(z, s, &vec![1.0; p]);
            if p >= WIDE_MIN_FEATURES {
                null_eigenvalues_of(zp.as_ref())
            } else {
                eigenvalues_of(zp.as_ref())
            }
        })
        .collect::<Result<Vec<_>>>()?;
    // 95th percentile over 19 permutations = the largest value.
    Ok((0..p)
        .map(|k| nulls.iter().map(|v| v[k]).fold(f64::NEG_INFINITY, f64::max))
        .collect())
}

/// Each column of `z` permuted independently (seeded) and multiplied by `scale[j]`.
fn permuted_columns(z: &Mat<f64>, seed: u64, scale: &[f64]) -> Mat<f64> {
    let (m, p) = (z.nrows(), z.ncols());
    let mut r = SplitMix64::new(seed);
    let mut out = z.clone();
    let mut perm: Vec<usize> = (0..m).collect();
    for (j, &sj) in scale.iter().enumerate().take(p) {
        r.shuffle(&mut perm);
        for i in 0..m {
            out[(i, j)] = z[(perm[i], j)] * sj;
        }
    }
    out
}

/// Permutations used by [`residual_null_flatness`].
pub const RESIDUAL_NULL_PERMUTATIONS: usize = 5;

/// Spectral flatness expected of the discarded spectrum if it were independent
/// noise with each feature's own residual variance (a heteroscedastic noise
/// floor).
///
/// On the parallel-analysis subsample (the first [`PARALLEL_ANALYSIS_ROWS`] of
/// `rows`), the standardised rows are reduced to their residuals `E = Z − Z V Vᵀ`
/// off the first `c` loadings `V`; each residual column is permuted
/// independently (keeping its variance and distribution, breaking every
/// correlation), the permuted residuals are projected off `V` again, and the
/// flatness of the `p − c` leading eigenvalues is averaged over
/// [`residual_null_permutations`] seeded permutations. Column-permuting the
/// standardised data instead (classical parallel analysis) gives a flat null
/// even when the noise variance differs from feature to feature.
///
/// `c` counts the leading loadings of `pca` projected off (`c ≤ pca.n_loadings`).
/// Returns 0 when `c ≥ p`.
///
/// # Errors
/// [`ErrorKind::Numerical`] if an eigendecomposition fails.
pub fn residual_null_flatness(
    sample: StandardisedRows<'_>,
    pca: &Pca,
    c: usize,
    seed: u64,
) -> Result<f64> {
    let StandardisedRows {
        values,
        p,
        rows,
        mean,
        scale,
    } = sample;
    let (loadings, r) = (pca.loadings.as_slice(), pca.n_loadings);
    if c >= p || c > r {
        return Ok(0.0);
    }
    let sub: Vec<usize> = rows.iter().take(PARALLEL_ANALYSIS_ROWS).copied().collect();
    let z = standardised_block(values, p, &sub, mean, scale);
    let v = Mat::from_fn(p, c, |j, k| loadings[j * r + k]);
    let project_off = |m: &Mat<f64>| -> Mat<f64> {
        let mut scores = Mat::<f64>::zeros(m.nrows(), c);
        faer::linalg::matmul::matmul(
            scores.as_mut(),
            Accum::Replace,
            m.as_ref(),
            v.as_ref(),
            1.0,
            Par::Seq,
        );
        let mut out = m.clone();
        faer::linalg::matmul::matmul(
            out.as_mut(),
            Accum::Add,
            scores.as_ref(),
            v.transpose(),
            -1.0,
            Par::Seq,
        );
        out
    };
    let e = project_off(&z);
    // Projecting off `V` removes a share `h_j = Σ_k V_jk²` of feature j's
    // noise variance (exactly so for equal variances): undo it before the
    // permuted residuals are projected again.
    let inflate: Vec<f64> = (0..p)
        .map(|j| {
            let h: f64 = (0..c).map(|k| loadings[j * r + k].powi(2)).sum();
            1.0 / (1.0 - h.min(0.99)).sqrt()
        })
        .collect();
    let mut rng = SplitMix64::new(seed ^ 0x5245_5344);
    let seeds: Vec<u64> = (0..residual_null_permutations(p))
        .map(|_| rng.next_u64())
        .collect();
    let flatness = seeds
        .par_iter()
        .map(|&s| {
            let ep = project_off(&permuted_columns(&e, s, &inflate));
            if let Some(f) = complement_flatness(ep.as_ref(), &v) {
                return Ok(f);
            }
            let ev = eigenvalues_of(ep.as_ref())?;
            Ok(spectral_flatness(&ev[..p - c]))
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(flatness.iter().sum::<f64>() / flatness.len() as f64)
}

/// Spectral flatness of the `p − c` eigenvalues of `C = EᵀE/(m − 1)` left
/// when `E` (`m × p`, `m > p`) has been projected off the orthonormal columns
/// of `V` (`p × c`), from a log-determinant instead of an eigendecomposition:
/// `C + s VVᵀ` has the eigenvalues of `C` on the complement of `V` and `s` on
/// `V`, so `Σ log λ = log det(C + s VVᵀ) − c log s` (one Cholesky
/// factorisation, a fifteenth of the eigenvalues' cost at `p` = 2,500), and
/// `Σ λ = tr C`.
///
/// `None` (the caller then takes the eigenvalues) below
/// [`WIDE_MIN_FEATURES`] features, when `m ≤ p` (the complement can hold
/// numerically zero eigenvalues, which [`spectral_flatness`] leaves out), and
/// when the factorisation fails or a pivot is below 1e-9 of the mean
/// eigenvalue (a rank-deficient residual: duplicated or dependent features).
fn complement_flatness(e: MatRef<'_, f64>, v: &Mat<f64>) -> Option<f64> {
    let (m, p, c) = (e.nrows(), e.ncols(), v.ncols());
    if p < WIDE_MIN_FEATURES || m <= p || c >= p {
        return None;
    }
    let mut a = gram_sym(e, 1.0 / (m - 1) as f64);
    let trace: f64 = (0..p).map(|j| a[(j, j)]).sum();
    let s = trace / (p - c) as f64;
    if !(s > 0.0 && s.is_finite()) {
        return None;
    }
    faer::linalg::matmul::matmul(
        a.as_mut(),
        Accum::Add,
        v.as_ref(),
        v.transpose(),
        s,
        Par::Seq,
    );
    let llt = a.llt(Side::Lower).ok()?;
    let l = llt.L();
    let mut log_det = 0.0;
    for j in 0..p {
        let pivot = l[(j, j)] * l[(j, j)];
        if pivot.is_nan() || pivot <= 1e-9 * s {
            return None;
        }
        log_det += pivot.ln();
    }
    let log_mean = (log_det - c as f64 * s.ln()) / (p - c) as f64;
    let flatness = log_mean.exp() / s;
    flatness.is_finite().then_some(flatness)
}

/// Number of leading components whose real eigenvalue beats the null one (at least 1).
pub fn n_for_parallel_analysis(real: &[f64], null95: &[f64]) -> usize {
    real.iter()
        .zip(null95)
        .take_while(|(r, n)| r > n)
        .count()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadings_are_orthonormal_and_sign_fixed() {
        let mut rng = SplitMix64::new(3);
        let (n, p) = (200, 6);
        let mut values = vec![0.0; n * p];
        for i in 0..n {
            let f = rng.normal();
            for j in 0..p {
                values[i * p + j] = f * (j as f64 + 1.0) + rng.normal();
            }
        }
        let rows: Vec<usize> = (0..n).collect();
        let mean = vec![0.0; p];
        let scale = vec![1.0; p];
        let cov = covariance(&values, p, &rows, &mean, &scale);
        let pca = eigen_desc(cov.as_ref(), p).unwrap();
        for a in 0..p {
            for b in 0..p {
                let dot: f64 = (0..p)
                    .map(|j| pca.loadings[j * p + a] * pca.loadings[j * p + b])
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-9);
            }
            let col: Vec<f64> = (0..p).map(|j| pca.loadings[j * p + a]).collect();
            let big = col
                .iter()
                .cloned()
                .fold(0.0f64, |m, x| if x.abs() > m.abs() { x } else { m });
            assert!(big > 0.0);
        }
        assert!(pca.eigenvalues.windows(2).all(|w| w[0] >= w[1]));
    }

    proptest::proptest! {
        /// Reusing the factorisation across rows with one missingness
        /// pattern gives bit-identical projections, and a changed pattern
        /// is noticed.
        #[test]
        fn reused_masked_projection_is_bit_identical(
            cells in proptest::collection::vec(-50i32..50, 12 * 8),
            missing in proptest::collection::vec(proptest::bool::weighted(0.3), 8),
            other in 0usize..8,
        ) {
            let (n, p, c) = (12, 8, 3);
            let values: Vec<f64> = cells.iter().map(|&v| f64::from(v) / 7.0).collect();
            let rows: Vec<usize> = (0..n).collect();
            let st = crate::standardise::Standardiser::fit(&values, p, rows.iter().copied());
            let pca = fit_pca(&values, p, &rows, st.mean(), st.scale(), c).map_err(|e| {
                proptest::test_runner::TestCaseError::fail(e.to_string())
            })?;
            let projector = Projector::new(st, take_loadings(&pca, p, c), c);
            let mut solver = MaskedSolver::default();
            for (i, row) in values.chunks_exact(p).enumerate() {
                let mut raw = row.to_vec();
                for j in 0..p {
                    // Every other row also misses feature `other`.
                    if missing[j] || (i % 2 == 1 && j == other) {
                        raw[j] = f64::NAN;
                    }
                }
                let (mut z1, mut y1) = (vec![0.0; p], vec![0.0; c]);
                let (mut z2, mut y2) = (vec![0.0; p], vec![0.0; c]);
                let a = projector.project(&raw, &mut z1, &mut y1);
                let b = projector.project_reusing(&raw, &mut z2, &mut y2, &mut solver);
                proptest::prop_assert_eq!(a.0.to_bits(), b.0.to_bits());
                proptest::prop_assert_eq!(a.1, b.1);
                let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                proptest::prop_assert_eq!(bits(&y1), bits(&y2));
                // The embedding alone: the same bits, complete or not.
                let (mut z3, mut y3) = (vec![0.0; p], vec![7.0; c]);
                for r in [row, raw.as_slice()] {
                    projector.embed(r, &mut z3, &mut y3);
                    projector.project(r, &mut z1, &mut y1);
                    proptest::prop_assert_eq!(bits(&y1), bits(&y3));
                }
            }
        }
    }

    fn take_loadings(pca: &Pca, p: usize, c: usize) -> Vec<f64> {
        (0..p)
            .flat_map(|j| (0..c).map(move |k| (j, k)))
            .map(|(j, k)| pca.loadings[j * pca.n_loadings + k])
            .collect()
    }

    /// A wide low-rank table: `rank` factors plus noise, `n × p`.
    fn wide_table(n: usize, p: usize, rank: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        let load: Vec<f64> = (0..rank * p).map(|_| rng.normal()).collect();
        let mut values = vec![0.0; n * p];
        for i in 0..n {
            let f: Vec<f64> = (0..rank)
                .map(|a| rng.normal() * (rank - a) as f64)
                .collect();
            for j in 0..p {
                let s: f64 = (0..rank).map(|a| f[a] * load[a * p + j]).sum();
                values[i * p + j] = 5.0 + s + rng.normal();
            }
        }
        values
    }

    #[test]
    fn truncated_eigen_matches_the_full_decomposition() {
        let (n, p, rank) = (300, 120, 4);
        let values = wide_table(n, p, rank, 11);
        let rows: Vec<usize> = (0..n).collect();
        let st = crate::standardise::Standardiser::fit(&values, p, 0..n);
        let cov = covariance(&values, p, &rows, st.mean(), st.scale());
        let full = eigen_desc(cov.as_ref(), rank).unwrap();
        let (trunc, residual) = truncated_eigen(cov.as_ref(), rank, 3).unwrap();
        assert!(residual <= SUBSPACE_TOLERANCE, "residual {residual}");
        for k in 0..rank {
            let rel = (full.eigenvalues[k] - trunc.eigenvalues[k]).abs() / full.eigenvalues[0];
            assert!(rel < 1e-9, "eigenvalue {k}: {rel}");
            for j in 0..p {
                let d = (full.loadings[j * rank + k] - trunc.loadings[j * rank + k]).abs();
                assert!(d < 1e-6, "loading {j},{k}: {d}");
            }
        }
    }

    #[test]
    fn downdated_fold_pca_matches_a_refit_on_the_training_rows() {
        let (n, p, rank) = (600, WIDE_MIN_FEATURES + 8, 3);
        let values = wide_table(n, p, rank, 12);
        let folds = FoldPca::new(&values, p, n, 1);
        assert!(folds.is_downdated());
        let train: Vec<usize> = (0..n).filter(|r| r % 10 != 3).collect();
        let st = crate::standardise::Standardiser::fit(&values, p, train.iter().copied());
        let down = folds.fit(&train, st.mean(), st.scale(), rank).unwrap();
        let refit = fit_pca(&values, p, &train, st.mean(), st.scale(), rank).unwrap();
        assert_eq!(down.n_loadings, rank);
        for k in 0..rank {
            let rel = (down.eigenvalues[k] - refit.eigenvalues[k]).abs() / refit.eigenvalues[0];
            assert!(rel < 1e-9, "eigenvalue {k}: {rel}");
            for j in 0..p {
                let d = (down.loadings[j * rank + k] - refit.loadings[j * rank + k]).abs();
                assert!(d < 1e-6, "loading {j},{k}: {d}");
            }
        }
        // A missing value: every training part is refitted (same bits).
        let mut holey = values.clone();
        holey[5] = f64::NAN;
        assert!(!FoldPca::new(&holey, p, n, 1).is_downdated());
    }

    #[test]
    fn wide_spectrum_gives_the_full_decompositions_eigenvalues_and_loadings() {
        let (n, p, rank) = (WIDE_MIN_FEATURES + 100, WIDE_MIN_FEATURES + 4, 4);
        // Structured (a clear gap after `rank`) and pure noise (leading
        // eigenvalues close together: slow or no convergence, then the full
        // decomposition).
        for (values, r) in [
            (wide_table(n, p, rank, 21), rank),
            (wide_table(n, p, 0, 22), 3),
        ] {
            let rows: Vec<usize> = (0..n).collect();
            let st = crate::standardise::Standardiser::fit(&values, p, 0..n);
            let full = fit_pca(&values, p, &rows, st.mean(), st.scale(), 64).unwrap();
            let sample = StandardisedRows {
                values: &values,
                p,
                rows: &rows,
                mean: st.mean(),
                scale: st.scale(),
            };
            let spectrum = Spectrum::fit(sample, 64, 5).unwrap();
            assert!(matches!(spectrum, Spectrum::Wide { .. }));
            assert_eq!(spectrum.loadings_available(64), 64);
            for (a, b) in spectrum.eigenvalues().iter().zip(&full.eigenvalues) {
                assert!((a - b).abs() <= 1e-9 * full.eigenvalues[0], "{a} vs {b}");
            }
            let pca = spectrum.loadings(r).unwrap();
            assert_eq!((pca.n_loadings, pca.eigenvalues.len()), (r, p));
            for k in 0..r {
                let gap = (full.eigenvalues[k] - full.eigenvalues[k + 1]) / full.eigenvalues[0];
                if gap < 1e-3 {
                    continue; // a near-degenerate pair: the span is what is defined
                }
                for j in 0..p {
                    let d = (pca.loadings[j * r + k] - full.loadings[j * 64 + k]).abs();
                    assert!(d < 1e-6, "loading {j},{k}: {d}");
                }
            }
        }
        // Narrow: the full decomposition itself.
        let values = wide_table(200, 30, 2, 23);
        let rows: Vec<usize> = (0..200).collect();
        let st = crate::standardise::Standardiser::fit(&values, 30, 0..200);
        let full = fit_pca(&values, 30, &rows, st.mean(), st.scale(), 8).unwrap();
        let sample = StandardisedRows {
            values: &values,
            p: 30,
            rows: &rows,
            mean: st.mean(),
            scale: st.scale(),
        };
        let spectrum = Spectrum::fit(sample, 8, 5).unwrap();
        assert_eq!(spectrum.loadings(8).unwrap().loadings, full.loadings);
    }

    #[test]
    fn embeddings_by_product_equal_those_row_by_row() {
        let (n, p, c) = (300, 40, 5);
        let mut values = wide_table(n, p, c, 24);
        values[7 * p + 3] = f64::NAN;
        let rows: Vec<usize> = (0..n).collect();
        let st = crate::standardise::Standardiser::fit(&values, p, 0..n);
        let pca = fit_pca(&values, p, &rows, st.mean(), st.scale(), c).unwrap();
        let projector = Projector::new(st, take_loadings(&pca, p, c), c);
        let some: Vec<usize> = (0..n).filter(|r| r % 3 != 1).collect();
        let mut out = vec![0f32; some.len() * c];
        projector.embed_block(&values, &some, &mut out);
        let (mut z, mut y) = (vec![0.0; p], vec![0.0; c]);
        for (i, &r) in some.iter().enumerate() {
            projector.embed(&values[r * p..(r + 1) * p], &mut z, &mut y);
            for k in 0..c {
                let d = (f64::from(out[i * c + k]) - y[k]).abs();
                assert!(
                    d <= 1e-6 * (1.0 + y[k].abs()),
                    "row {r}, component {k}: {d}"
                );
            }
        }
    }

    #[test]
    fn complement_flatness_equals_the_flatness_of_the_eigenvalues() {
        let (m, p, c) = (WIDE_MIN_FEATURES + 90, WIDE_MIN_FEATURES + 10, 5);
        let values = wide_table(m, p, c, 13);
        let st = crate::standardise::Standardiser::fit(&values, p, 0..m);
        let rows: Vec<usize> = (0..m).collect();
        let z = standardised_block(&values, p, &rows, st.mean(), st.scale());
        let pca = eigen_desc(
            covariance(&values, p, &rows, st.mean(), st.scale()).as_ref(),
            c,
        )
        .unwrap();
        let v = Mat::from_fn(p, c, |j, k| pca.loadings[j * c + k]);
        let mut e = z.clone();
        let mut scores = Mat::<f64>::zeros(m, c);
        faer::linalg::matmul::matmul(
            scores.as_mut(),
            Accum::Replace,
            z.as_ref(),
            v.as_ref(),
            1.0,
            Par::Seq,
        );
        faer::linalg::matmul::matmul(
            e.as_mut(),
            Accum::Add,
            scores.as_ref(),
            v.transpose(),
            -1.0,
            Par::Seq,
        );
        let by_logdet = complement_flatness(e.as_ref(), &v).expect("full-rank complement");
        let ev = eigenvalues_of(e.as_ref()).unwrap();
        let by_eigen = spectral_flatness(&ev[..p - c]);
        assert!(
            (by_logdet - by_eigen).abs() < 1e-9 * by_eigen,
            "{by_logdet} vs {by_eigen}"
        );
        assert!(by_eigen > 0.05 && by_eigen < 1.0, "{by_eigen}");
        // A constant feature (zero residual, zero loadings) leaves a zero
        // eigenvalue on the complement: the eigenvalues decide.
        let mut v0 = v.clone();
        (0..c).for_each(|k| v0[(1, k)] = 0.0);
        let v0 = v0.qr().compute_thin_Q();
        let mut z0 = z.clone();
        (0..m).for_each(|i| z0[(i, 1)] = 0.0);
        faer::linalg::matmul::matmul(
            scores.as_mut(),
            Accum::Replace,
            z0.as_ref(),
            v0.as_ref(),
            1.0,
            Par::Seq,
        );
        faer::linalg::matmul::matmul(
            z0.as_mut(),
            Accum::Add,
            scores.as_ref(),
            v0.transpose(),
            -1.0,
            Par::Seq,
        );
        assert!(complement_flatness(z0.as_ref(), &v0).is_none());
        // Fewer rows than features, or a narrow table: the eigenvalues decide.
        assert!(complement_flatness(e.subrows(0, p - 1), &v).is_none());
    }

    #[test]
    fn parallel_analysis_finds_one_factor() {
        let mut rng = SplitMix64::new(5);
        let (n, p) = (500, 10);
        let mut values = vec![0.0; n * p];
        for i in 0..n {
            let f = rng.normal();
            for j in 0..p {
                values[i * p + j] = 2.0 * f + rng.normal();
            }
        }
        let rows: Vec<usize> = (0..n).collect();
        let st = crate::standardise::Standardiser::fit(&values, p, 0..n);
        let (real, null) = parallel_analysis(&values, p, &rows, st.mean(), st.scale(), 1).unwrap();
        assert_eq!(n_for_parallel_analysis(&real, &null), 1);
    }
}

/// A fitted standardise-and-project map: raw feature row → embedding + residual.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projector {
    /// The standardisation.
    pub standardiser: crate::standardise::Standardiser,
    /// Loadings, row-major `p × c`.
    pub loadings: Vec<f64>,
    /// Number of components `c`.
    pub n_components: usize,
}

/// Ridge added to the normal equations when projecting with missing features.
const LS_RIDGE: f64 = 1e-9;

impl Projector {
    /// A projector from a standardisation and row-major `p × c` loadings.
    ///
    /// # Panics
    /// If `loadings.len() != p * n_components` (a caller bug).
    pub fn new(
        standardiser: crate::standardise::Standardiser,
        loadings: Vec<f64>,
        n_components: usize,
    ) -> Self {
        assert_eq!(
            loadings.len(),
            standardiser.n_features() * n_components,
            "loadings shape"
        );
        Projector {
            standardiser,
            loadings,
            n_components,
        }
    }

    /// Number of features `p`.
    pub fn n_features(&self) -> usize {
        self.standardiser.n_features()
    }

    /// This projection of the features `kept` (ascending indices into
    /// `0..p`) extended to all `p` features: the others are inactive
    /// (standardised to 0, zero loadings; see
    /// [`crate::standardise::Standardiser::expand`]), centred at `mean`.
    ///
    /// # Panics
    /// If `kept.len()` differs from [`Self::n_features`] (a caller bug).
    pub fn expand(&self, kept: &[usize], p: usize, mean: &[f64]) -> Projector {
        let c = self.n_components;
        let mut loadings = vec![0.0; p * c];
        for (i, &j) in kept.iter().enumerate() {
            loadings[j * c..(j + 1) * c].copy_from_slice(&self.loadings[i * c..(i + 1) * c]);
        }
        Projector {
            standardiser: self.standardiser.expand(kept, p, mean),
            loadings,
            n_components: c,
        }
    }

    /// Projects a raw row (model feature order, `NaN` = missing).
    ///
    /// Writes the standardised row to `z` and the embedding to `y`, and returns
    /// `(residual_sq, n_observed)`. With every feature observed the embedding is
    /// `Wᵀz` and the residual `‖z − W Wᵀ z‖²`. With missing features the embedding
    /// is the least-squares fit on the observed rows of `W`, and the residual over
    /// the observed features is rescaled by `(p − c)/(p_o − c)` so it stays on the
    /// scale of a complete row (0 when `p_o ≤ c`).
    pub fn project(&self, row: &[f64], z: &mut [f64], y: &mut [f64]) -> (f64, usize) {
        self.project_reusing(row, z, y, &mut MaskedSolver::default())
    }

    /// The embedding of a raw row alone, written to `y` (`z` receives the
    /// standardised row): the same bits as [`Projector::project`]'s, without
    /// the residual's second pass over the loadings when every feature is
    /// observed (fit embeds every member of the reference and of each fold).
    pub fn embed(&self, row: &[f64], z: &mut [f64], y: &mut [f64]) {
        crate::cpu::clear_upper_vector_state();
        let p = self.n_features();
        let c = self.n_components;
        self.standardiser.transform(row, z);
        if self.standardiser.n_active() != p || z.iter().any(|v| v.is_nan()) || p == 0 {
            self.project(row, z, y);
            return;
        }
        let w = &self.loadings;
        y[..c].fill(0.0);
        for (j, &zj) in z.iter().enumerate() {
            let wr = &w[j * c..(j + 1) * c];
            for (yk, wk) in y[..c].iter_mut().zip(wr) {
                *yk += wk * zj;
            }
        }
    }

    /// The embeddings of the rows `rows` of the row-major `values` (`p`
    /// columns) as one product `Z W` (faer), written to `out` (row-major,
    /// `rows.len() × c`, `f32`): for wide references, where the row-by-row
    /// sums of [`Projector::embed`] cost more than the rest of a fold. Equal
    /// to them up to rounding (the sums run in another order); rows with a
    /// missing value are embedded one by one.
    ///
    /// # Panics
    /// If `out` does not hold `rows.len() × c` values (a caller bug).
    pub fn embed_block(&self, values: &[f64], rows: &[usize], out: &mut [f32]) {
        let p = self.n_features();
        let c = self.n_components;
        assert_eq!(out.len(), rows.len() * c, "output length");
        crate::cpu::clear_upper_vector_state();
        let m = rows.len();
        let mut z = vec![0.0; m * p];
        let mut incomplete = Vec::new();
        for (i, &r) in rows.iter().enumerate() {
            let zi = &mut z[i * p..(i + 1) * p];
            self.standardiser.transform(&values[r * p..(r + 1) * p], zi);
            if zi.iter().any(|v| v.is_nan()) {
                zi.fill(0.0);
                incomplete.push(i);
            }
        }
        let mut y = Mat::<f64>::zeros(m, c);
        faer::linalg::matmul::matmul(
            y.as_mut(),
            Accum::Replace,
            MatRef::from_row_major_slice(&z, m, p),
            MatRef::from_row_major_slice(&self.loadings, p, c),
            1.0,
            Par::Seq,
        );
        crate::cpu::clear_upper_vector_state();
        for (i, o) in out.chunks_exact_mut(c).enumerate() {
            for (k, v) in o.iter_mut().enumerate() {
                *v = y[(i, k)] as f32;
            }
        }
        let (mut zr, mut yr) = (vec![0.0; p], vec![0.0; c]);
        for i in incomplete {
            let r = rows[i];
            self.embed(&values[r * p..(r + 1) * p], &mut zr, &mut yr);
            for (o, v) in out[i * c..(i + 1) * c].iter_mut().zip(&yr) {
                *o = *v as f32;
            }
        }
    }

    /// [`Projector::project`], keeping the factorised normal equations of a
    /// row with missing features in `solver` and reusing them for the next
    /// row with the same missing features (bit-identical results: the same
    /// operations in the same order). Rescoring many members under one
    /// patient's mask factorises once instead of once per member.
    pub fn project_reusing(
        &self,
        row: &[f64],
        z: &mut [f64],
        y: &mut [f64],
        solver: &mut MaskedSolver,
    ) -> (f64, usize) {
        crate::cpu::clear_upper_vector_state();
        let p = self.n_features();
        let c = self.n_components;
        self.standardiser.transform(row, z);
        let n_obs = z.iter().filter(|v| !v.is_nan()).count();
        // Inactive features (constant in the reference, kept for the value
        // channel) have zero loadings and z = 0: they count as observed for
        // coverage but not in the projection's own counts.
        let (p_act, n_act) = if n_obs == p && self.standardiser.n_active() == p {
            (p, p)
        } else {
            let st = &self.standardiser;
            let p_act = st.n_active();
            let n_act = (0..p)
                .filter(|&j| st.is_active(j) && !z[j].is_nan())
                .count();
            (p_act, n_act)
        };
        let w = &self.loadings;
        let full_rank = c >= p_act;
        if n_act == p_act && n_obs > 0 {
            y[..c].fill(0.0);
            for (j, &zj) in z.iter().enumerate() {
                if zj.is_nan() {
                    continue;
                }
                let wr = &w[j * c..(j + 1) * c];
                for (yk, wk) in y[..c].iter_mut().zip(wr) {
                    *yk += wk * zj;
                }
            }
            let mut res = 0.0;
            for j in 0..p {
                if z[j].is_nan() {
                    continue;
                }
                let wr = &w[j * c..(j + 1) * c];
                let mut fit = 0.0;
                for k in 0..c {
                    fit += wr[k] * y[k];
                }
                let d = z[j] - fit;
                res += d * d;
            }
            if full_rank {
                res = 0.0;
            }
            return (res, n_obs);
        }
        if n_obs == 0 {
            y[..c].fill(0.0);
            return (0.0, 0);
        }
        // Normal equations on the observed rows: (W_oᵀ W_o + λI) y = W_oᵀ z_o.
        let same_pattern = solver.factor.len() == c * c
            && solver.missing.len() == p
            && solver
                .missing
                .iter()
                .zip(z.iter())
                .all(|(&m, v)| m == v.is_nan());
        if !same_pattern {
            solver.missing.clear();
            solver.missing.extend(z.iter().map(|v| v.is_nan()));
            let a = &mut solver.factor;
            a.clear();
            a.resize(c * c, 0.0);
            for j in 0..p {
                if z[j].is_nan() {
                    continue;
                }
                let wr = &w[j * c..(j + 1) * c];
                for r in 0..c {
                    for s in 0..=r {
                        a[r * c + s] += wr[r] * wr[s];
                    }
                }
            }
            for r in 0..c {
                a[r * c + r] += LS_RIDGE;
            }
            cholesky_factor(a, c);
        }
        let mut b = vec![0.0; c];
        for j in 0..p {
            if z[j].is_nan() {
                continue;
            }
            let wr = &w[j * c..(j + 1) * c];
            for r in 0..c {
                b[r] += wr[r] * z[j];
            }
        }
        cholesky_substitute(&solver.factor, &mut b, c);
        y[..c].copy_from_slice(&b);
        let mut res = 0.0;
        for j in 0..p {
            if z[j].is_nan() {
                continue;
            }
            let wr = &w[j * c..(j + 1) * c];
            let mut fit = 0.0;
            for k in 0..c {
                fit += wr[k] * y[k];
            }
            let d = z[j] - fit;
            res += d * d;
        }
        let res = if n_act > c {
            res * (p_act - c) as f64 / (n_act - c) as f64
        } else {
            0.0
        };
        (res, n_obs)
    }
}

/// Solves `A x = b` in place for a symmetric positive-definite `A` given by its
/// lower triangle (row-major `c × c`); `b` receives `x`.
pub(crate) fn cholesky_solve(a: &mut [f64], b: &mut [f64], c: usize) {
    cholesky_factor(a, c);
    cholesky_substitute(a, b, c);
}

/// Overwrites the lower triangle of `A` (row-major `c × c`) with its Cholesky
/// factor `L` (`A = L Lᵀ`; pivots floored at `1e-300`).
fn cholesky_factor(a: &mut [f64], c: usize) {
    for j in 0..c {
        let mut d = a[j * c + j];
        for k in 0..j {
            d -= a[j * c + k] * a[j * c + k];
        }
        let d = d.max(1e-300).sqrt();
        a[j * c + j] = d;
        for i in j + 1..c {
            let mut s = a[i * c + j];
            for k in 0..j {
                s -= a[i * c + k] * a[j * c + k];
            }
            a[i * c + j] = s / d;
        }
    }
}

/// Solves `L Lᵀ x = b` in place given the factor of [`cholesky_factor`].
fn cholesky_substitute(l: &[f64], b: &mut [f64], c: usize) {
    for i in 0..c {
        let mut s = b[i];
        for k in 0..i {
            s -= l[i * c + k] * b[k];
        }
        b[i] = s / l[i * c + i];
    }
    for i in (0..c).rev() {
        let mut s = b[i];
        for k in i + 1..c {
            s -= l[k * c + i] * b[k];
        }
        b[i] = s / l[i * c + i];
    }
}

/// The factorised normal equations of the last missingness pattern
/// [`Projector::project_reusing`] met (start with `MaskedSolver::default()`).
#[derive(Debug, Clone, Default)]
pub struct MaskedSolver {
    /// Which standardised values were missing.
    missing: Vec<bool>,
    /// Cholesky factor of `W_oᵀ W_o + λI` (row-major lower triangle).
    factor: Vec<f64>,
}
