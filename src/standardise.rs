//! Standardisation: centre and scale each feature on the reference.
//!
//! Second step of the pipeline. Means and standard deviations are computed over
//! the observed (non-missing) values of each feature. Standardised values are
//! clamped to ±[`Z_CLAMP`] so that absurd inputs (1e308 in a cell) stay finite
//! through every later distance computation.

use serde::{Deserialize, Serialize};

/// Standardised values are clamped to this magnitude (in standard deviations).
pub const Z_CLAMP: f64 = 1.0e6;

/// Relative standard deviation below which a feature counts as constant.
pub const MIN_RELATIVE_SD: f64 = 1.0e-12;

/// Per-feature location and scale of a reference cohort.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Standardiser {
    mean: Vec<f64>,
    scale: Vec<f64>,
}

/// Column statistics of a table: used to fit a [`Standardiser`] and to find
/// constant columns.
#[derive(Debug, Clone)]
pub struct ColumnStats {
    /// Mean of the observed values of each column (`NaN` when none is observed).
    pub mean: Vec<f64>,
    /// Sample standard deviation of the observed values (0 with fewer than two).
    pub sd: Vec<f64>,
    /// Number of observed values of each column.
    pub n_observed: Vec<usize>,
}

impl ColumnStats {
    /// Computes column statistics of the rows `rows` of a row-major `n × p` matrix
    /// (two passes, numerically stable).
    pub fn compute(values: &[f64], p: usize, rows: impl Iterator<Item = usize> + Clone) -> Self {
        let mut sum = vec![0.0; p];
        let mut count = vec![0usize; p];
        for r in rows.clone() {
            let row = &values[r * p..(r + 1) * p];
            for j in 0..p {
                if !row[j].is_nan() {
                    sum[j] += row[j];
                    count[j] += 1;
                }
            }
        }
        let mean: Vec<f64> = (0..p)
            .map(|j| {
                if count[j] > 0 {
                    sum[j] / count[j] as f64
                } else {
                    f64::NAN
                }
            })
            .collect();
        let mut ss = vec![0.0; p];
        for r in rows {
            let row = &values[r * p..(r + 1) * p];
            for j in 0..p {
                if !row[j].is_nan() {
                    let d = row[j] - mean[j];
                    ss[j] += d * d;
                }
            }
        }
        let sd = (0..p)
            .map(|j| {
                if count[j] > 1 {
                    (ss[j] / (count[j] - 1) as f64).sqrt()
                } else {
                    0.0
                }
            })
            .collect();
        ColumnStats {
            mean,
            sd,
            n_observed: count,
        }
    }

    /// Whether column `j` is constant (or unobserved) and cannot be standardised.
    pub fn is_constant(&self, j: usize) -> bool {
        let sd = self.sd[j];
        !(sd.is_finite() && sd > MIN_RELATIVE_SD * self.mean[j].abs().max(1e-300))
    }
}

impl Standardiser {
    /// A standardiser from column statistics.
    ///
    /// Constant columns get scale 1 (callers drop them before fitting).
    pub fn from_stats(stats: &ColumnStats) -> Self {
        let p = stats.mean.len();
        Standardiser {
            mean: stats
                .mean
                .iter()
                .map(|m| if m.is_finite() { *m } else { 0.0 })
                .collect(),
            scale: (0..p)
                .map(|j| {
                    if stats.is_constant(j) {
                        1.0
                    } else {
                        stats.sd[j]
                    }
                })
                .collect(),
        }
    }

    /// Fits on the rows `rows` of a row-major `n × p` matrix.
    pub fn fit(values: &[f64], p: usize, rows: impl Iterator<Item = usize> + Clone) -> Self {
        Self::from_stats(&ColumnStats::compute(values, p, rows))
    }

    /// The same standardisation with feature `j` further multiplied by
    /// `weights[j]` (block weights: its scale is divided by the weight).
    ///
    /// # Panics
    /// If the lengths differ (a caller bug).
    pub fn weighted(mut self, weights: &[f64]) -> Self {
        assert_eq!(weights.len(), self.scale.len(), "weights length");
        for (s, w) in self.scale.iter_mut().zip(weights) {
            *s /= w;
        }
        self
    }

    /// This standardisation of the features `kept` (ascending indices into
    /// `0..p`) extended to all `p` features: the others are *inactive*
    /// (infinite scale), standardised to 0 whatever their value, so they
    /// never move a projection; `mean` gives their centre (kept for display).
    ///
    /// # Panics
    /// If `kept.len()` differs from [`Self::n_features`] or `mean.len()` from `p`.
    pub fn expand(&self, kept: &[usize], p: usize, mean: &[f64]) -> Self {
        assert_eq!(kept.len(), self.mean.len(), "kept length");
        assert_eq!(mean.len(), p, "mean length");
        let mut out = Standardiser {
            mean: mean
                .iter()
                .map(|m| if m.is_finite() { *m } else { 0.0 })
                .collect(),
            scale: vec![f64::INFINITY; p],
        };
        for (i, &j) in kept.iter().enumerate() {
            out.mean[j] = self.mean[i];
            out.scale[j] = self.scale[i];
        }
        out
    }

    /// Whether feature `j` enters the projection (finite scale; see
    /// [`Self::expand`]).
    pub fn is_active(&self, j: usize) -> bool {
        self.scale[j].is_finite()
    }

    /// Number of features that enter the projection.
    pub fn n_active(&self) -> usize {
        self.scale.iter().filter(|s| s.is_finite()).count()
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.mean.len()
    }

    /// The feature means.
    pub fn mean(&self) -> &[f64] {
        &self.mean
    }

    /// The feature standard deviations.
    pub fn scale(&self) -> &[f64] {
        &self.scale
    }

    /// Standardises `row` into `out`; missing values stay `NaN`, inactive
    /// features (see [`Self::expand`]) give 0, the rest are clamped to
    /// ±[`Z_CLAMP`].
    ///
    /// # Panics
    /// If the lengths differ from [`Self::n_features`].
    pub fn transform(&self, row: &[f64], out: &mut [f64]) {
        assert_eq!(row.len(), self.mean.len(), "row length");
        assert_eq!(out.len(), self.mean.len(), "output length");
        for j in 0..row.len() {
            let x = row[j];
            out[j] = if x.is_nan() {
                f64::NAN
            } else if self.scale[j] == f64::INFINITY {
                0.0
            } else {
                ((x - self.mean[j]) / self.scale[j]).clamp(-Z_CLAMP, Z_CLAMP)
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standardised_columns_have_mean_zero_and_sd_one() {
        let values = vec![1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0];
        let s = Standardiser::fit(&values, 2, 0..4);
        let mut z = [0.0; 8];
        for i in 0..4 {
            s.transform(&values[i * 2..i * 2 + 2], &mut z[i * 2..i * 2 + 2]);
        }
        for j in 0..2 {
            let col: Vec<f64> = (0..4).map(|i| z[i * 2 + j]).collect();
            let m: f64 = col.iter().sum::<f64>() / 4.0;
            let v: f64 = col.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / 3.0;
            assert!(m.abs() < 1e-12);
            assert!((v - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn constant_and_missing_columns_are_detected() {
        let values = vec![5.0, f64::NAN, 5.0, f64::NAN, 5.0, 1.0];
        let stats = ColumnStats::compute(&values, 2, 0..3);
        assert!(stats.is_constant(0));
        assert!(stats.is_constant(1));
        assert_eq!(stats.n_observed, vec![3, 1]);
    }
}
