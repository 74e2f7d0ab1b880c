//! Scoring channels: each gives one score per point under a fitted fold model.
//!
//! A *channel* measures one way a point can be unlike the reference (its
//! distance to its nearest members, what the projection cannot represent,
//! ...). Under a fitted [`super::FoldModel`] (a projection and an index over
//! that model's training members) every channel maps a raw row to a score,
//! higher = more novel. Calibration members and patients are scored by the
//! same function ([`super::FoldScorer::score`]); the [`Scorer`] turns the
//! list of channel scores into one `novelty`, and the conformal p-value is
//! taken on that novelty (docs/method.md §5–7).
//!
//! Adding a channel (docs/architecture.md, /work/notes/core.md):
//! 1. a variant of [`Channel`] with its [`Channel::name`] (the word written in
//!    the `reason` column) and [`Channel::weight`];
//! 2. any state it needs fitted on a fold model's training rows, as a field of
//!    [`ChannelState`] filled in [`ChannelState::fit`];
//! 3. its score in [`Channel::score`] from the [`PointView`] (raw row,
//!    standardised row, embedding, residual, neighbours) and the state, and an
//!    explanation in [`Channel::describe`];
//! 4. the variant in the list [`ChannelState::channels`] returns.
//!
//! Nothing else changes: calibration, masking, the combination, p-values and
//! the `reason` column iterate over the list.

use serde::{Deserialize, Serialize};

use super::scores::{ChannelScores, TailTransform};
use crate::index::Neighbour;
use crate::project::Projector;
use crate::score::{KnnStatistic, knn_statistic};

/// A scoring channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    /// kNN distance statistic in the embedding (mean or k-th distance to the
    /// `k` nearest training members).
    Knn,
    /// Squared prediction error of the projection (SPE), over the observed features.
    Residual,
}

impl Channel {
    /// The channel's name, as written in the `reason` column.
    pub fn name(self) -> &'static str {
        match self {
            Channel::Knn => "knn",
            Channel::Residual => "residual",
        }
    }

    /// Prior weight of the channel in the combination (a weighted Bonferroni
    /// split of the tail probability; weights are renormalised to sum to 1
    /// over the channels a model uses).
    pub fn weight(self) -> f64 {
        match self {
            Channel::Knn => 0.75,
            Channel::Residual => 0.25,
        }
    }

    /// The channel's score of a point (higher = more novel). `NaN` when the
    /// channel cannot score it (no neighbour found): scoring fails closed on
    /// it (docs/method.md §6).
    pub fn score(self, view: &PointView<'_>, _state: &ChannelState) -> f64 {
        match self {
            Channel::Knn => knn_statistic(view.neighbours, view.statistic),
            Channel::Residual => view.residual,
        }
    }

    /// A short explanation of a channel score for the `reason` column, e.g.
    /// `knn` (the name alone for the two geometric channels).
    pub fn describe(self, _view: &PointView<'_>, _state: &ChannelState) -> String {
        self.name().to_string()
    }
}

/// What a channel sees of one point scored under one fold model.
#[derive(Debug, Clone, Copy)]
pub struct PointView<'a> {
    /// Raw values in model feature order (`NaN` = missing or masked).
    pub raw: &'a [f64],
    /// Standardised values under the fold model (`NaN` = missing).
    pub z: &'a [f64],
    /// Embedding under the fold model (all its components).
    pub y: &'a [f64],
    /// Residual (SPE) under the fold model.
    pub residual: f64,
    /// Number of observed features.
    pub n_obs: usize,
    /// The `k` nearest training members of the fold model, nearest first.
    pub neighbours: &'a [Neighbour],
    /// The kNN statistic the model uses.
    pub statistic: KnnStatistic,
    /// The fold model's projection (loadings for per-block residuals).
    pub projector: &'a Projector,
}

/// State the channels need from a fold model's training rows beyond its
/// projection and index (empty for the kNN and residual channels; the
/// value and per-block channels add theirs here).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelState {
    /// The channels scored, in order (their scores are listed in this order).
    pub channels: Vec<Channel>,
}

impl ChannelState {
    /// Fits the channels' state on the training rows `train` of `values`
    /// (row-major, `p` columns, model feature order) under `projector`.
    pub fn fit(_values: &[f64], _p: usize, _train: &[usize], _projector: &Projector) -> Self {
        ChannelState {
            channels: vec![Channel::Knn, Channel::Residual],
        }
    }

    /// The channels scored, in order.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Scores of every channel for one point, in [`ChannelState::channels`] order.
    pub fn score(&self, view: &PointView<'_>) -> Vec<f64> {
        self.channels.iter().map(|c| c.score(view, self)).collect()
    }
}

/// Maps a list of channel scores to the combined `novelty` score.
///
/// `novelty = max(0, max_j (ln w_j − ln p̃_j(s_j)) / ln 10)`: minus log10 of
/// the smallest weighted smoothed tail probability (see [`TailTransform`]).
/// It is continuous and non-decreasing in each channel. `NaN` in any channel
/// gives `NaN` (never a small novelty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorer {
    /// The channels, in order.
    pub channels: Vec<Channel>,
    /// One tail transform per channel.
    pub transforms: Vec<TailTransform>,
    /// Channel weights (sum to 1).
    pub weights: Vec<f64>,
}

impl Scorer {
    /// Fits the transforms on tuning scores: `scores[i]` lists one point's
    /// channel scores in `channels` order. Non-finite scores are left out of
    /// the fit (they are refused at scoring).
    pub fn fit(channels: &[Channel], scores: &[Vec<f64>]) -> Scorer {
        let total: f64 = channels.iter().map(|c| c.weight()).sum();
        let transforms = (0..channels.len())
            .map(|j| {
                TailTransform::new(&ChannelScores::new(
                    scores
                        .iter()
                        .filter_map(|s| s.get(j).copied())
                        .filter(|s| s.is_finite())
                        .collect(),
                ))
            })
            .collect();
        Scorer {
            channels: channels.to_vec(),
            transforms,
            weights: channels.iter().map(|c| c.weight() / total).collect(),
        }
    }

    /// Each channel's term `(ln w_j − ln p̃_j(s_j)) / ln 10` (`NaN` for a `NaN` score).
    pub fn terms(&self, scores: &[f64]) -> Vec<f64> {
        self.transforms
            .iter()
            .zip(&self.weights)
            .zip(scores)
            .map(|((t, w), &s)| {
                if s.is_nan() {
                    f64::NAN
                } else {
                    (w.ln() - t.log_p(s)) / std::f64::consts::LN_10
                }
            })
            .collect()
    }

    /// The combined novelty of one point's channel scores (`NaN` if any is `NaN`).
    pub fn novelty(&self, scores: &[f64]) -> f64 {
        let mut best = 0.0f64;
        for t in self.terms(scores) {
            if t.is_nan() {
                return f64::NAN;
            }
            best = best.max(t);
        }
        best
    }

    /// The score of channel `j` above which that channel alone pushes novelty
    /// above `novelty` (`+∞` when never).
    pub fn threshold(&self, j: usize, novelty: f64) -> f64 {
        match (self.transforms.get(j), self.weights.get(j)) {
            (Some(t), Some(w)) => t.score_at(w.ln() - novelty * std::f64::consts::LN_10),
            _ => f64::INFINITY,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn novelty_is_nan_when_a_channel_is() {
        let s = Scorer::fit(
            &[Channel::Knn, Channel::Residual],
            &(0..50)
                .map(|i| vec![i as f64, (i % 7) as f64])
                .collect::<Vec<_>>(),
        );
        assert!(s.novelty(&[f64::NAN, 1.0]).is_nan());
        assert!(s.novelty(&[1.0, f64::NAN]).is_nan());
        assert!(s.novelty(&[1.0, 1.0]).is_finite());
        assert!(s.novelty(&[100.0, 1.0]) > s.novelty(&[10.0, 1.0]));
        let w: f64 = s.weights.iter().sum();
        assert!((w - 1.0).abs() < 1e-12);
    }
}
