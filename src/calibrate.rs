//! Conformal calibration: from calibration scores to p-values and radii.
//!
//! Fifth step of the pipeline. The model keeps, for each channel, the sorted
//! scores of cross-fitted reference members (see [`crate::model`] for how they
//! are produced). A new score `s` gets the conformal p-value
//! `(1 + #{c_i ≥ s}) / (m + 1)`. Ties count against the patient (`≥`), so
//! many identical reference members never make a p-value smaller.

use serde::{Deserialize, Serialize};

/// Sorted calibration scores of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelScores {
    sorted: Vec<f64>,
}

impl ChannelScores {
    /// From unsorted scores (NaN scores are dropped).
    pub fn new(mut scores: Vec<f64>) -> Self {
        scores.retain(|s| !s.is_nan());
        scores.sort_by(f64::total_cmp);
        ChannelScores { sorted: scores }
    }

    /// Number of calibration scores `m`.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are no scores.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The scores, ascending.
    pub fn sorted(&self) -> &[f64] {
        &self.sorted
    }

    /// Conformal p-value of `score`: `(1 + #{c_i ≥ score}) / (m + 1)`, in `(0, 1]`,
    /// non-increasing in `score`.
    pub fn p_value(&self, score: f64) -> f64 {
        let m = self.sorted.len();
        let below = self.sorted.partition_point(|&c| c < score);
        (1 + m - below) as f64 / (m + 1) as f64
    }

    /// The radius `R` such that `p_value(s) ≤ level ⟺ s > R` (infinite when no
    /// score can reach `level`).
    pub fn radius(&self, level: f64) -> f64 {
        let m = self.sorted.len();
        let t = level * (m + 1) as f64 - 1.0;
        if t < 0.0 || m == 0 {
            return f64::INFINITY;
        }
        let q = (t + 1e-9).floor() as usize;
        if q >= m {
            return f64::NEG_INFINITY;
        }
        self.sorted[m - 1 - q]
    }

    /// The empirical quantile at `f` in `[0, 1]` (nearest rank).
    pub fn quantile(&self, f: f64) -> f64 {
        if self.sorted.is_empty() {
            return f64::NAN;
        }
        let i = ((f * self.sorted.len() as f64).ceil() as usize).clamp(1, self.sorted.len());
        self.sorted[i - 1]
    }
}

/// Bonferroni combination of two channel p-values: `min(1, 2·min(p₁, p₂))`.
pub fn combine_bonferroni(p_a: f64, p_b: f64) -> f64 {
    (2.0 * p_a.min(p_b)).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_values_and_radius_agree() {
        let cal = ChannelScores::new((1..=99).map(|i| i as f64).collect());
        assert_eq!(cal.p_value(1000.0), 0.01);
        assert_eq!(cal.p_value(0.0), 1.0);
        for level in [0.01, 0.025, 0.05, 0.1, 0.5] {
            let r = cal.radius(level);
            for s in [r - 0.5, r, r + 0.5, r + 1.0] {
                assert_eq!(cal.p_value(s) <= level, s > r, "level {level} s {s} r {r}");
            }
        }
        assert_eq!(cal.radius(0.001), f64::INFINITY);
    }

    #[test]
    fn ties_count_against_the_patient() {
        let cal = ChannelScores::new(vec![1.0; 50]);
        assert_eq!(cal.p_value(1.0), 1.0);
        assert!(cal.p_value(1.0 + 1e-9) < 0.05);
    }
}
