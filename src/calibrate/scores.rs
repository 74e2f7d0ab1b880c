//! Sorted calibration scores, conformal counts and smoothed tail transforms.
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
}

/// Fraction of the largest calibration scores modelled by the exponential tail.
pub const TAIL_FRACTION: f64 = 0.05;

/// A smooth, strictly decreasing estimate of a channel's tail probability,
/// used to put channels on one scale for the combined `novelty` score.
///
/// Below the `1 − TAIL_FRACTION` calibration quantile `t` it interpolates the
/// conformal count `(1 + #{c_i ≥ s}) / (m + 1)` linearly between calibration
/// scores; above `t` it continues with an exponential tail whose scale is the
/// mean excess of the calibration scores over `t` (a peaks-over-threshold fit),
/// so that patients beyond every reference member are still ranked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TailTransform {
    sorted: Vec<f64>,
    t: f64,
    log_pt: f64,
    scale: f64,
}

impl TailTransform {
    /// Fits the transform on calibration scores.
    pub fn new(scores: &ChannelScores) -> Self {
        let sorted = scores.sorted().to_vec();
        let m = sorted.len();
        if m == 0 {
            return TailTransform {
                sorted,
                t: 0.0,
                log_pt: 0.0,
                scale: 1.0,
            };
        }
        let ti = (((1.0 - TAIL_FRACTION) * m as f64).floor() as usize).clamp(1, m) - 1;
        let t = sorted[ti];
        let excess: Vec<f64> = sorted.iter().filter(|&&c| c > t).map(|c| c - t).collect();
        let spread = (sorted[m - 1] - sorted[0]).abs().max(t.abs()).max(1e-12);
        let scale = if excess.is_empty() {
            1e-6 * spread
        } else {
            (excess.iter().sum::<f64>() / excess.len() as f64).max(1e-6 * spread)
        };
        let mut tr = TailTransform {
            sorted,
            t,
            log_pt: 0.0,
            scale,
        };
        tr.log_pt = tr.log_p_empirical(t);
        tr
    }

    fn log_p_empirical(&self, s: f64) -> f64 {
        let c = &self.sorted;
        let m = c.len();
        let i = c.partition_point(|&x| x < s);
        let count = if i == 0 {
            m as f64
        } else if i >= m {
            1.0
        } else {
            let (lo, hi) = (c[i - 1], c[i]);
            (m - i + 1) as f64 - (s - lo) / (hi - lo)
        };
        ((1.0 + count) / (m + 1) as f64).ln()
    }

    /// Natural log of the smoothed tail probability of `s` (non-increasing in `s`).
    pub fn log_p(&self, s: f64) -> f64 {
        if self.sorted.is_empty() || s.is_nan() {
            return 0.0;
        }
        if s > self.t {
            self.log_pt - (s - self.t) / self.scale
        } else {
            self.log_p_empirical(s)
        }
    }

    /// The score `s` at which `log_p(s)` falls to `level` (the smallest such `s`,
    /// found by bisection; `+∞` when never reached).
    pub fn score_at(&self, level: f64) -> f64 {
        if self.sorted.is_empty() || !level.is_finite() {
            return f64::INFINITY;
        }
        if level >= 0.0 {
            return f64::NEG_INFINITY;
        }
        let mut lo = self.sorted[0].min(0.0);
        let mut hi = self.t.abs().max(1.0);
        while self.log_p(hi) > level {
            hi = hi * 2.0 + 1.0;
            if hi > 1e300 {
                return f64::INFINITY;
            }
        }
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if self.log_p(mid) > level {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi
    }
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
