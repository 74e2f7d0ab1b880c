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
    /// [`block_grams`] of the model's projection (empty without blocks).
    pub grams: Vec<Vec<f64>>,
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

/// Ridge added to a block's Gram matrix (components that do not load on
/// the block get a coordinate of about 0 instead of an unstable one).
const BLOCK_RIDGE: f64 = 1e-6;

/// Each block's Gram matrix `W_bᵀ W_b` (row-major `c × c`) of the loadings
/// `w` (row-major `p × c`) restricted to the block's features.
pub fn block_grams(w: &[f64], c: usize, blocks: &Blocks) -> Vec<Vec<f64>> {
    let mut grams = vec![vec![0.0; c * c]; blocks.len()];
    for (j, &b) in blocks.of_feature.iter().enumerate() {
        add_outer(&mut grams[b as usize], &w[j * c..(j + 1) * c]);
    }
    grams
}

fn add_outer(g: &mut [f64], wr: &[f64]) {
    let c = wr.len();
    for r in 0..c {
        for t in 0..c {
            g[r * c + t] += wr[r] * wr[t];
        }
    }
}

/// Per-block residuals: for each block `b`, the block's own coordinates
/// `y_b = (W_bᵀ W_b + λI)⁻¹ W_bᵀ z_b` (least squares on the block's features
/// only, so noise in other blocks does not leak in) and the residual
/// `Σ_{j ∈ b} (z_j − w_j · y_b)²`. Missing features are left out (the Gram
/// matrix is then recomputed on the observed ones) and the residual rescaled
/// by `q_b / q_b,observed`; 0 for a block with no observed feature. `grams`
/// are [`block_grams`] of the same loadings.
pub fn block_residuals(
    z: &[f64],
    w: &[f64],
    c: usize,
    blocks: &Blocks,
    grams: &[Vec<f64>],
) -> Vec<f64> {
    let nb = blocks.len();
    let mut rhs = vec![vec![0.0; c]; nb];
    let mut obs = vec![0usize; nb];
    let mut size = vec![0usize; nb];
    for (j, (&zj, &b)) in z.iter().zip(&blocks.of_feature).enumerate() {
        let b = b as usize;
        size[b] += 1;
        if zj.is_nan() {
            continue;
        }
        obs[b] += 1;
        for (r, wr) in rhs[b].iter_mut().zip(&w[j * c..(j + 1) * c]) {
            *r += wr * zj;
        }
    }
    let coords: Vec<Vec<f64>> = (0..nb)
        .map(|b| {
            let mut a = match grams.get(b) {
                Some(g) if obs[b] == size[b] && g.len() == c * c => g.clone(),
                _ => {
                    let mut g = vec![0.0; c * c];
                    for (j, (&zj, &bj)) in z.iter().zip(&blocks.of_feature).enumerate() {
                        if bj as usize == b && !zj.is_nan() {
                            add_outer(&mut g, &w[j * c..(j + 1) * c]);
                        }
                    }
                    g
                }
            };
            for r in 0..c {
                a[r * c + r] += BLOCK_RIDGE;
            }
            let mut x = rhs[b].clone();
            solve_spd(&mut a, &mut x, c);
            x
        })
        .collect();
    let mut sum = vec![0.0; nb];
    for (j, (&zj, &b)) in z.iter().zip(&blocks.of_feature).enumerate() {
        if zj.is_nan() {
            continue;
        }
        let y = &coords[b as usize];
        let fit: f64 = w[j * c..(j + 1) * c]
            .iter()
            .zip(y)
            .map(|(a, b)| a * b)
            .sum();
        sum[b as usize] += (zj - fit) * (zj - fit);
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

/// Solves `A x = b` for a symmetric positive-definite `c × c` `A` (Cholesky,
/// in place; `b` receives `x`).
fn solve_spd(a: &mut [f64], b: &mut [f64], c: usize) {
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
            out.scores
                .extend(block_residuals(z, w, y.len(), b, &self.grams));
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
        let g = block_grams(&w, 1, &blocks);
        let r = block_residuals(&[1.0, 2.0, 3.0], &w, 1, &blocks, &g);
        assert!(r[0] < 1e-9 && (r[1] - 13.0).abs() < 1e-9, "{r:?}");
        let missing = block_residuals(&[1.0, f64::NAN, 3.0], &w, 1, &blocks, &g);
        assert!((missing[1] - 18.0).abs() < 1e-9, "{missing:?}");
        // Each block is fitted on its own features: a row along the loading
        // within block b has no residual there, whatever block a holds.
        let w2 = [0.0, 0.6, 0.8];
        let g2 = block_grams(&w2, 1, &blocks);
        let r = block_residuals(&[5.0, 1.2, 1.6], &w2, 1, &blocks, &g2);
        assert!(r[1] < 1e-9 && (r[0] - 25.0).abs() < 1e-9, "{r:?}");
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
            grams: Vec::new(),
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
