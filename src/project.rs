//! Projection: principal components of the standardised reference (faer).
//!
//! Third step of the pipeline. The covariance of the standardised reference is
//! accumulated block by block (missing values count as the mean, i.e. 0), its
//! self-adjoint eigendecomposition is computed with faer, components are
//! ordered by decreasing eigenvalue and each loading vector's sign is fixed so
//! that its largest-magnitude entry is positive (ties: lowest feature index).
//! How many components to keep is decided by a [`ComponentRule`].

use faer::{Accum, Mat, MatRef, Par, Side};
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
    let mut loadings = vec![0.0; p * r];
    for k in 0..r {
        let lambda = g.eigenvalues[k];
        if lambda <= 1e-12 {
            continue;
        }
        let norm = 1.0 / (denom * lambda).sqrt();
        for j in 0..p {
            let mut v = 0.0;
            for i in 0..n {
                v += z[(i, j)] * g.loadings[i * g.n_loadings + k];
            }
            loadings[j * r + k] = v * norm;
        }
        fix_sign(&mut loadings, p, r, k);
    }
    Ok(Pca {
        eigenvalues,
        loadings,
        n_loadings: r,
    })
}

/// Eigenvalues (non-increasing, length `p`) of `ZᵀZ/(m − 1)` for a dense `m × p`
/// matrix, through whichever of `ZᵀZ` and `ZZᵀ` is smaller.
fn eigenvalues_of(z: MatRef<'_, f64>) -> Result<Vec<f64>> {
    let (m, p) = (z.nrows(), z.ncols());
    let denom = (m.max(2) - 1) as f64;
    let small = p.min(m);
    let mut c = Mat::<f64>::zeros(small, small);
    let (lhs, rhs) = if p <= m {
        (z.transpose(), z)
    } else {
        (z, z.transpose())
    };
    faer::linalg::matmul::matmul(c.as_mut(), Accum::Replace, lhs, rhs, 1.0 / denom, Par::Seq);
    let mut ev = c
        .self_adjoint_eigenvalues(Side::Lower)
        .map_err(|e| ErrorKind::Numerical(format!("eigenvalues failed: {e:?}")))?;
    ev.reverse();
    ev.resize(p, 0.0);
    Ok(ev)
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

/// Parallel analysis: the 95th percentile of each eigenvalue of column-permuted
/// data, and the real eigenvalues on the same subsample.
///
/// Returns `(real, null95)`, both non-increasing in index.
pub fn parallel_analysis(
    values: &[f64],
    p: usize,
    rows: &[usize],
    mean: &[f64],
    scale: &[f64],
    seed: u64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut rng = SplitMix64::new(seed ^ 0x5041_5241);
    // The first rows in the given order (callers pass a seeded id order).
    let sub: Vec<usize> = rows.iter().take(PARALLEL_ANALYSIS_ROWS).copied().collect();
    let z = standardised_block(values, p, &sub, mean, scale);
    let eig = eigenvalues_of;
    let real = eig(z.as_ref())?;
    let seeds: Vec<u64> = (0..PARALLEL_ANALYSIS_PERMUTATIONS)
        .map(|_| rng.next_u64())
        .collect();
    let nulls: Vec<Vec<f64>> = seeds
        .par_iter()
        .map(|&s| {
            let zp = permuted_columns(&z, s, &vec![1.0; p]);
            eig(zp.as_ref())
        })
        .collect::<Result<Vec<_>>>()?;
    // 95th percentile over 19 permutations = the largest value.
    let null95 = (0..p)
        .map(|k| nulls.iter().map(|v| v[k]).fold(f64::NEG_INFINITY, f64::max))
        .collect();
    Ok((real, null95))
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
/// [`RESIDUAL_NULL_PERMUTATIONS`] seeded permutations. Column-permuting the
/// standardised data instead (classical parallel analysis) gives a flat null
/// even when the noise variance differs from feature to feature.
///
/// `loadings` is row-major `p × r` with `c ≤ r`. Returns 0 when `c ≥ p`.
///
/// # Errors
/// [`ErrorKind::Numerical`] if an eigendecomposition fails.
#[allow(clippy::too_many_arguments)]
pub fn residual_null_flatness(
    values: &[f64],
    p: usize,
    rows: &[usize],
    mean: &[f64],
    scale: &[f64],
    loadings: &[f64],
    r: usize,
    c: usize,
    seed: u64,
) -> Result<f64> {
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
    let seeds: Vec<u64> = (0..RESIDUAL_NULL_PERMUTATIONS)
        .map(|_| rng.next_u64())
        .collect();
    let flatness = seeds
        .par_iter()
        .map(|&s| {
            let ep = permuted_columns(&e, s, &inflate);
            let ev = eigenvalues_of(project_off(&ep).as_ref())?;
            Ok(spectral_flatness(&ev[..p - c]))
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok(flatness.iter().sum::<f64>() / flatness.len() as f64)
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
        let mut a = vec![0.0; c * c];
        let mut b = vec![0.0; c];
        for j in 0..p {
            if z[j].is_nan() {
                continue;
            }
            let wr = &w[j * c..(j + 1) * c];
            for r in 0..c {
                b[r] += wr[r] * z[j];
                for s in 0..=r {
                    a[r * c + s] += wr[r] * wr[s];
                }
            }
        }
        for r in 0..c {
            a[r * c + r] += LS_RIDGE;
        }
        cholesky_solve(&mut a, &mut b, c);
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
fn cholesky_solve(a: &mut [f64], b: &mut [f64], c: usize) {
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
    for i in 0..c {
        let mut s = b[i];
        for k in 0..i {
            s -= a[i * c + k] * b[k];
        }
        b[i] = s / a[i * c + i];
    }
    for i in (0..c).rev() {
        let mut s = b[i];
        for k in i + 1..c {
            s -= a[k * c + i] * b[k];
        }
        b[i] = s / a[i * c + i];
    }
}
