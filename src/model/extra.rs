//! The value channel and the per-block residual channels.
//!
//! Beside the kNN and residual channels (see [`super::Scorer`]), a model may
//! carry further calibrated channels:
//!
//! * `value`: every reference column's observed support
//!   ([`crate::marginal`]); a row scores the surprisal of its rarest value
//!   (exact leave-one-out for calibration members);
//! * `block:NAME`: with feature blocks ([`crate::table::blocks`]), the part of
//!   the projection residual that falls on the block's features, scored under
//!   the same cross-fitted projections as the residual channel.
//!
//! Each channel's calibration scores give it a [`TailTransform`]; the
//! combined novelty is `max(0, max_c (ln w_c − ln p̃_c(s_c)) / ln 10)` over
//! every channel, so the conformal p-value of novelty (against the members'
//! combined novelty) stays one calibrated p-value. Models written before the
//! format carried these channels have none and assess as before.

use serde::{Deserialize, Serialize};

use crate::calibrate::{ChannelScores, TailTransform};
use crate::marginal::Marginals;
use crate::table::blocks::Blocks;

/// Weight of the value channel in the combined novelty.
pub const VALUE_WEIGHT: f64 = 0.1;
/// Total weight of the per-block residual channels (shared equally).
pub const BLOCK_WEIGHT: f64 = 0.25;

/// What an extra channel scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExtraKind {
    /// The rarest value ([`Marginals::score`]).
    Value,
    /// The residual on one block's features (index into [`Blocks::names`]).
    BlockResidual(u32),
}

/// One extra calibrated channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtraChannel {
    /// What it scores.
    pub kind: ExtraKind,
    /// Its weight in the combined novelty.
    pub weight: f64,
    /// Tail transform fitted on the calibration members' scores.
    pub tail: TailTransform,
    /// The calibration members' scores (pooled): the channel's own conformal p-value.
    pub scores: ChannelScores,
}

/// The extra channels of a model and what they need at assessment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Extension {
    /// Every reference column's observed support (value channel), if kept.
    pub marginals: Option<Marginals>,
    /// Feature blocks, if the model was fitted with them.
    pub blocks: Option<Blocks>,
    /// The channels, value first, then blocks in block order.
    pub channels: Vec<ExtraChannel>,
}

/// A row's extra channel scores (same order as [`Extension::channels`]) and
/// the feature of its rarest value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExtraScores {
    /// One score per channel.
    pub scores: Vec<f64>,
    /// Index into [`Marginals::features`] of the rarest value, with the value.
    pub rarest: Option<(usize, f64)>,
}

/// Per-block residuals `Σ_{j ∈ b} e_j²` with `e = z − W y` (row-major `p × c`
/// loadings `w`), over the observed features of each block, rescaled by
/// `q_b / q_b,observed` so a row with missing values stays on the scale of a
/// complete one (0 for a block with no observed feature).
pub fn block_residuals(z: &[f64], y: &[f64], w: &[f64], blocks: &Blocks) -> Vec<f64> {
    let c = y.len();
    let nb = blocks.len();
    let mut sum = vec![0.0; nb];
    let mut obs = vec![0usize; nb];
    let mut size = vec![0usize; nb];
    for (j, (&zj, &b)) in z.iter().zip(&blocks.of_feature).enumerate() {
        let b = b as usize;
        size[b] += 1;
        if zj.is_nan() {
            continue;
        }
        let fit: f64 = w[j * c..(j + 1) * c]
            .iter()
            .zip(y)
            .map(|(a, b)| a * b)
            .sum();
        sum[b] += (zj - fit) * (zj - fit);
        obs[b] += 1;
    }
    (0..nb)
        .map(|b| {
            if obs[b] == 0 {
                0.0
            } else {
                sum[b] * size[b] as f64 / obs[b] as f64
            }
        })
        .collect()
}

impl Extension {
    /// Whether the model has no extra channel.
    pub fn is_empty(&self) -> bool {
        self.channels.is_empty()
    }

    /// Builds the channels from the calibration members' scores
    /// (`member_scores[channel][member]`, channels value first then blocks).
    pub fn calibrate(&mut self, member_scores: &[Vec<f64>]) {
        let mut kinds = Vec::new();
        if self.marginals.is_some() {
            kinds.push((ExtraKind::Value, VALUE_WEIGHT));
        }
        if let Some(b) = &self.blocks {
            let w = BLOCK_WEIGHT / b.len().max(1) as f64;
            for i in 0..b.len() {
                kinds.push((ExtraKind::BlockResidual(i as u32), w));
            }
        }
        self.channels = kinds
            .into_iter()
            .zip(member_scores)
            .map(|((kind, weight), s)| {
                let scores = ChannelScores::new(s.clone());
                ExtraChannel {
                    kind,
                    weight,
                    tail: TailTransform::new(&scores),
                    scores,
                }
            })
            .collect();
    }

    /// A row's extra scores: `all_raw` holds the row's values in
    /// [`Marginals::features`] order (ignored without a value channel), `z`
    /// and `y` its standardised values and embedding, `w` the loadings; `own`
    /// is true for a calibration member (its own values leave the counts).
    pub fn score(
        &self,
        all_raw: &[f64],
        z: &[f64],
        y: &[f64],
        w: &[f64],
        own: bool,
    ) -> ExtraScores {
        let mut out = ExtraScores::default();
        if let Some(m) = &self.marginals {
            let v = m.score(all_raw, own);
            out.scores.push(v.score);
            out.rarest = v.feature.map(|j| (j, all_raw[j]));
        }
        if let Some(b) = &self.blocks {
            out.scores.extend(block_residuals(z, y, w, b));
        }
        out
    }

    /// The channels' part of the combined novelty:
    /// `max(0, max_c (ln w_c − ln p̃_c(s_c)) / ln 10)` (0 without channels).
    pub fn novelty(&self, scores: &[f64]) -> f64 {
        self.driver(scores).map_or(0.0, |(_, v)| v.max(0.0))
    }

    /// The channel of largest weighted surprise and its part of the novelty
    /// (`None` without channels).
    pub fn driver(&self, scores: &[f64]) -> Option<(usize, f64)> {
        self.channels
            .iter()
            .zip(scores)
            .enumerate()
            .map(|(i, (ch, &s))| {
                (
                    i,
                    (ch.weight.ln() - ch.tail.log_p(s)) / std::f64::consts::LN_10,
                )
            })
            .fold(None, |best: Option<(usize, f64)>, (i, v)| match best {
                Some((_, b)) if b >= v => best,
                _ => Some((i, v)),
            })
    }

    /// A channel's name: `value` or `block:NAME`.
    pub fn channel_name(&self, i: usize) -> String {
        match self.channels.get(i).map(|c| c.kind) {
            Some(ExtraKind::Value) => "value".to_string(),
            Some(ExtraKind::BlockResidual(b)) => format!(
                "block:{}",
                self.blocks
                    .as_ref()
                    .and_then(|x| x.names.get(b as usize))
                    .map_or("?", |s| s.as_str())
            ),
            None => String::new(),
        }
    }

    /// Why channel `i` flags a row: the rarest value explained, or
    /// `BLOCK: residual p = P` with the block channel's own conformal p-value.
    pub fn reason(&self, i: usize, scores: &ExtraScores) -> String {
        let Some(ch) = self.channels.get(i) else {
            return String::new();
        };
        match ch.kind {
            ExtraKind::Value => match (&self.marginals, scores.rarest) {
                (Some(m), Some((j, x))) => m.explain(j, x),
                _ => String::new(),
            },
            ExtraKind::BlockResidual(b) => {
                let name = self
                    .blocks
                    .as_ref()
                    .and_then(|x| x.names.get(b as usize))
                    .map_or("?", |s| s.as_str());
                let p = ch.scores.p_value(scores.scores[i]);
                format!("{name}: residual p = {}", fmt_p(p))
            }
        }
    }
}

/// A p-value with four significant digits.
pub(crate) fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        String::new()
    } else if p >= 0.001 {
        format!("{p:.4}")
    } else {
        format!("{p:.2e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_residuals_split_the_residual() {
        // p = 3, c = 1, loading along the first feature.
        let w = [1.0, 0.0, 0.0];
        let blocks = Blocks {
            names: vec!["a".into(), "b".into()],
            of_feature: vec![0, 1, 1],
            first_eigenvalue: vec![1.0, 1.0],
        };
        let r = block_residuals(&[1.0, 2.0, 3.0], &[1.0], &w, &blocks);
        assert_eq!(r, vec![0.0, 13.0]);
        let missing = block_residuals(&[1.0, f64::NAN, 3.0], &[1.0], &w, &blocks);
        assert_eq!(missing, vec![0.0, 18.0]);
    }

    #[test]
    fn the_driver_is_the_most_surprising_weighted_channel() {
        let mut ext = Extension {
            marginals: Some(Marginals::default()),
            blocks: Some(Blocks {
                names: vec!["m".into()],
                of_feature: vec![0],
                first_eigenvalue: vec![1.0],
            }),
            channels: Vec::new(),
        };
        let cal: Vec<f64> = (0..100).map(|i| i as f64 / 100.0).collect();
        ext.calibrate(&[cal.clone(), cal]);
        assert_eq!(ext.channels.len(), 2);
        assert_eq!(ext.channel_name(1), "block:m");
        let (i, _) = ext.driver(&[0.5, 50.0]).unwrap();
        assert_eq!(i, 1);
        assert!(ext.novelty(&[0.5, 50.0]) > ext.novelty(&[0.5, 0.5]));
        assert_eq!(ext.novelty(&[]), 0.0);
    }
}
