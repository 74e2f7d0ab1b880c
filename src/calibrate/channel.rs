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
//! Adding a channel (docs/architecture.md):
//! 1. a variant of [`Channel`] with its [`Channel::name`] (the word written in
//!    the `reason` column) and [`Channel::weight`];
//! 2. any state it needs fitted on a fold model's training rows, as a field of
//!    [`ChannelExtra`] filled in [`ChannelState::fit`] (written in the model
//!    file's channel section);
//! 3. its score in [`Channel::score`] from the [`PointView`] (raw row,
//!    standardised row, embedding, residual, neighbours) and the state, and an
//!    explanation in [`Channel::describe`];
//! 4. the variant in the list [`ChannelState::channels`] returns.
//!
//! Nothing else changes: calibration, masking, the combination, p-values and
//! the `reason` column iterate over the list.

use serde::{Deserialize, Serialize};

use super::block::BlockState;
use super::scores::{ChannelScores, TailTransform};
use crate::index::Neighbour;
use crate::marginal::Marginals;
use crate::project::Projector;
use crate::score::{KnnStatistic, knn_statistic};
use crate::table::blocks::Blocks;

/// Prior weight of the kNN channel.
pub const KNN_WEIGHT: f64 = 0.75;
/// Prior weight of the residual channel.
pub const RESIDUAL_WEIGHT: f64 = 0.25;
/// Prior weight of the value channel (chosen on the adbench-dev tables and
/// the 1000 Genomes panel, docs/method.md §5).
pub const VALUE_WEIGHT: f64 = 0.1;
/// Prior weight of the per-block residual channels together (shared equally
/// among the blocks; chosen on the omics example, docs/method.md §5).
pub const BLOCK_WEIGHT: f64 = 0.25;

/// A scoring channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    /// kNN distance statistic in the embedding (mean or k-th distance to the
    /// `k` nearest training members).
    Knn,
    /// Squared prediction error of the projection (SPE), over the observed features.
    Residual,
    /// The rarest value: each observed value against what the fold's
    /// training rows showed for its feature ([`crate::marginal`]).
    Value,
    /// The residual of block `b` (an index into the block names) within its
    /// own coordinates ([`super::block`]).
    Block(u32),
}

impl Channel {
    /// The channel's name, as written in the `reason` column (`block` for
    /// every block; [`Channel::label`] adds the block's name).
    pub fn name(self) -> &'static str {
        match self {
            Channel::Knn => "knn",
            Channel::Residual => "residual",
            Channel::Value => "value",
            Channel::Block(_) => "block",
        }
    }

    /// The channel's label: its name, or `block:NAME` for a block.
    pub fn label(self, state: &ChannelState) -> String {
        match (self, &state.extra.blocks) {
            (Channel::Block(b), Some(bs)) => format!("block:{}", bs.name(b as usize)),
            (Channel::Block(b), None) => format!("block:{b}"),
            _ => self.name().to_string(),
        }
    }

    /// Prior weight of the channel in the combination (a weighted Bonferroni
    /// split of the tail probability; weights are renormalised to sum to 1
    /// over the channels a model uses). A block's weight is
    /// [`BLOCK_WEIGHT`], which [`Scorer::fit`] shares among the blocks.
    pub fn weight(self) -> f64 {
        match self {
            Channel::Knn => KNN_WEIGHT,
            Channel::Residual => RESIDUAL_WEIGHT,
            Channel::Value => VALUE_WEIGHT,
            Channel::Block(_) => BLOCK_WEIGHT,
        }
    }

    /// The channel's score of a point (higher = more novel). `NaN` when the
    /// channel cannot score it (no neighbour found): scoring fails closed on
    /// it (docs/method.md §6). A channel whose state the fold lacks scores 0.
    pub fn score(self, view: &PointView<'_>, state: &ChannelState) -> f64 {
        match self {
            Channel::Knn => knn_statistic(view.neighbours, view.statistic),
            Channel::Residual => view.residual,
            Channel::Value => state
                .extra
                .value
                .as_ref()
                .map_or(0.0, |m| m.score(view.raw, view.own).score),
            Channel::Block(b) => state.extra.blocks.as_ref().map_or(0.0, |bs| {
                bs.residuals(view.z, view.projector)
                    .get(b as usize)
                    .copied()
                    .unwrap_or(0.0)
            }),
        }
    }

    /// A short explanation of a channel score for the `reason` column:
    /// `knn`, `residual`, `value: rs_private=1 never seen in 400 reference
    /// members (all 0)` (the rarest value under this fold model, described
    /// by what the whole reference showed) or `block:metabolome: residual p
    /// = 0.0004` (the channel's own conformal p-value).
    pub fn describe(self, view: &PointView<'_>, state: &ChannelState, cx: &Describe<'_>) -> String {
        match self {
            Channel::Knn | Channel::Residual => self.name().to_string(),
            Channel::Value => {
                let Some(m) = &state.extra.value else {
                    return self.name().to_string();
                };
                match m.score(view.raw, false).feature {
                    Some(j) => {
                        let name = cx.features.get(j).map_or("?", |s| s.as_str());
                        let shown = cx.support.unwrap_or(m);
                        format!("value: {}", shown.explain(name, j, view.raw[j]))
                    }
                    None => self.name().to_string(),
                }
            }
            Channel::Block(_) => {
                format!("{}: residual p = {}", self.label(state), fmt_p(cx.p_value))
            }
        }
    }
}

/// What [`Channel::describe`] needs beyond the point and the fold.
#[derive(Debug, Clone, Copy)]
pub struct Describe<'a> {
    /// The model's feature names.
    pub features: &'a [String],
    /// What the whole reference showed for each feature (the fold's own
    /// support when `None`).
    pub support: Option<&'a Marginals>,
    /// The channel's own conformal p-value.
    pub p_value: f64,
}

/// A p-value with four significant digits.
pub fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "NA".to_string()
    } else if p >= 0.001 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
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
    /// Whether the point is one of the fold's training rows, scored among
    /// the others to fit the tail transforms (its own values leave the
    /// value channel's counts, as it is left out of the kNN search).
    pub own: bool,
}

/// Which optional channels a model fits (from [`crate::Params`]).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChannelSpec {
    /// Score the value channel.
    pub value: bool,
    /// Feature blocks: one residual channel per block.
    pub blocks: Option<Blocks>,
}

/// State of the optional channels, fitted on a fold's training rows.
///
/// Stored in the model file's channel section (format version 5), not in
/// the model section: models of format version 4 have none and score the
/// kNN and residual channels only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelExtra {
    /// Every model feature's observed support (value channel).
    pub value: Option<Marginals>,
    /// Blocks and their Gram matrices (per-block residual channels).
    pub blocks: Option<BlockState>,
}

/// State the channels need from a fold model's training rows beyond its
/// projection and index (empty for the kNN and residual channels; the
/// value and per-block channels keep theirs in [`ChannelState::extra`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChannelState {
    /// The channels scored, in order (their scores are listed in this order).
    pub channels: Vec<Channel>,
    /// The optional channels' state (written in its own section of the
    /// model file, see [`ChannelExtra`]).
    #[serde(skip)]
    pub extra: ChannelExtra,
}

impl ChannelState {
    /// Fits the channels' state on the training rows `train` of `values`
    /// (row-major, `p` columns, model feature order) under `projector`:
    /// kNN and residual always; the value channel (each feature's support
    /// on `train`) and one residual channel per block as `spec` asks
    /// (`block_eigenvalues`: each block's first eigenvalue on `train`, kept
    /// for `inspect`; `block_components`: the leading components block
    /// coordinates use). Nothing is learnt from rows outside `train`.
    /// `value`: the value channel's supports on `train` when already fitted
    /// ([`Marginals::fit_many`]); fitted here when `None`.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        spec: &ChannelSpec,
        values: &[f64],
        p: usize,
        train: &[usize],
        projector: &Projector,
        block_eigenvalues: &[f64],
        block_components: usize,
        value: Option<Marginals>,
    ) -> Self {
        let mut channels = vec![Channel::Knn, Channel::Residual];
        let mut extra = ChannelExtra::default();
        if spec.value {
            extra.value = Some(value.unwrap_or_else(|| Marginals::fit(values, p, train)));
            channels.push(Channel::Value);
        }
        if let Some(b) = &spec.blocks {
            channels.extend((0..b.len() as u32).map(Channel::Block));
            extra.blocks = Some(BlockState::new(
                b.clone(),
                block_eigenvalues.to_vec(),
                projector,
                block_components,
            ));
        }
        ChannelState { channels, extra }
    }

    /// The channels scored, in order.
    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    /// Scores of every channel for one point, in [`ChannelState::channels`] order.
    pub fn score(&self, view: &PointView<'_>) -> Vec<f64> {
        self.score_given(view, None)
    }

    /// [`ChannelState::score`] with the value channel's score given when
    /// `value` is `Some` (computed by the caller, e.g. from kept surprisals:
    /// [`Marginals::score_of_surprisals`]).
    pub fn score_given(&self, view: &PointView<'_>, value: Option<f64>) -> Vec<f64> {
        let has_blocks = self.channels.iter().any(|c| matches!(c, Channel::Block(_)));
        let blocks = match (&self.extra.blocks, has_blocks) {
            (Some(bs), true) => bs.residuals(view.z, view.projector),
            _ => Vec::new(),
        };
        self.channels
            .iter()
            .map(|&c| match c {
                Channel::Block(b) => blocks.get(b as usize).copied().unwrap_or(0.0),
                Channel::Value => match (value, &self.extra.value) {
                    (Some(v), Some(_)) => v,
                    _ => c.score(view, self),
                },
                _ => c.score(view, self),
            })
            .collect()
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
        let n_blocks = channels
            .iter()
            .filter(|c| matches!(c, Channel::Block(_)))
            .count()
            .max(1) as f64;
        let prior = |c: &Channel| match c {
            Channel::Block(_) => c.weight() / n_blocks,
            _ => c.weight(),
        };
        let total: f64 = channels.iter().map(prior).sum();
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
            weights: channels.iter().map(|c| prior(c) / total).collect(),
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
