//! Per-block residuals: the part of a point that a block's own coordinates
//! in the projection cannot represent (the `block:NAME` channels).
//!
//! With feature blocks ([`crate::table::blocks`]) every fold model keeps,
//! for each block `b`, the Gram matrix `W_bᵀ W_b` of its loadings restricted
//! to the block's features and to the projection's leading components above
//! the noise floor (the fold's parallel-analysis count). A point's block coordinates are the least-squares
//! fit on the block's features only, `y_b = (W_bᵀ W_b + λI)⁻¹ W_bᵀ z_b`, so
//! noise in other blocks does not leak in, and its block residual is
//! `Σ_{j ∈ b} (z_j − w_j · y_b)²` (docs/method.md §3b).

use serde::{Deserialize, Serialize};

use crate::project::Projector;
use crate::table::blocks::Blocks;

/// Ridge added to a block's Gram matrix (components that do not load on
/// the block get a coordinate of about 0 instead of an unstable one).
const BLOCK_RIDGE: f64 = 1e-6;

/// What a fold model keeps for its per-block residual channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockState {
    /// The blocks (names, block of each model feature).
    pub blocks: Blocks,
    /// First eigenvalue of each block's standardised correlation matrix on
    /// the fold's training rows (the MFA weight is `1 / sqrt` of it).
    pub first_eigenvalue: Vec<f64>,
    /// Leading components of the projection that block coordinates use
    /// (the fold's parallel-analysis count: components above the noise
    /// floor; more would fit a narrow block's noise and its departures).
    pub n_components: usize,
    /// Each block's Gram matrix `W_bᵀ W_b` over those components, row-major
    /// `n_components × n_components`.
    pub grams: Vec<Vec<f64>>,
}

impl BlockState {
    /// The state of `blocks` under a fold's projection, block coordinates on
    /// its leading `n_components` components (clamped to `1..=c`).
    pub fn new(
        blocks: Blocks,
        first_eigenvalue: Vec<f64>,
        projector: &Projector,
        n_components: usize,
    ) -> BlockState {
        let c = projector.n_components;
        let cb = n_components.clamp(1, c.max(1));
        let mut grams = vec![vec![0.0; cb * cb]; blocks.len()];
        for (j, &b) in blocks.of_feature.iter().enumerate() {
            if let Some(g) = grams.get_mut(b as usize) {
                add_outer(g, &projector.loadings[j * c..j * c + cb]);
            }
        }
        BlockState {
            blocks,
            first_eigenvalue,
            n_components: cb,
            grams,
        }
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.blocks.len()
    }

    /// Whether there is no block.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Block `b`'s name.
    pub fn name(&self, b: usize) -> &str {
        self.blocks.names.get(b).map_or("?", |s| s.as_str())
    }

    /// Every block's residual of the standardised row `z` (`NaN` = missing)
    /// under `projector`. Missing features are left out (the Gram matrix is
    /// then recomputed on the observed ones) and the residual is rescaled by
    /// `q_b / q_b,observed` over the block's projected features; 0 for a
    /// block with no observed projected feature.
    pub fn residuals(&self, z: &[f64], projector: &Projector) -> Vec<f64> {
        let pc = projector.n_components;
        let c = self.n_components.min(pc);
        let w = &projector.loadings;
        let row = |j: usize| &w[j * pc..j * pc + c];
        let st = &projector.standardiser;
        let nb = self.blocks.len();
        let of = &self.blocks.of_feature;
        let mut rhs = vec![vec![0.0; c]; nb];
        let mut obs = vec![0usize; nb];
        let mut size = vec![0usize; nb];
        for (j, (&zj, &b)) in z.iter().zip(of).enumerate() {
            let b = b as usize;
            if b >= nb || !st.is_active(j) {
                continue;
            }
            size[b] += 1;
            if zj.is_nan() {
                continue;
            }
            obs[b] += 1;
            for (r, wr) in rhs[b].iter_mut().zip(row(j)) {
                *r += wr * zj;
            }
        }
        let coords: Vec<Vec<f64>> = (0..nb)
            .map(|b| {
                let mut a = match self.grams.get(b) {
                    Some(g) if obs[b] == size[b] && g.len() == c * c => g.clone(),
                    _ => {
                        let mut g = vec![0.0; c * c];
                        for (j, (&zj, &bj)) in z.iter().zip(of).enumerate() {
                            if bj as usize == b && !zj.is_nan() && st.is_active(j) {
                                add_outer(&mut g, row(j));
                            }
                        }
                        g
                    }
                };
                for r in 0..c {
                    a[r * c + r] += BLOCK_RIDGE;
                }
                let mut x = rhs[b].clone();
                crate::project::cholesky_solve(&mut a, &mut x, c);
                x
            })
            .collect();
        let mut sum = vec![0.0; nb];
        for (j, (&zj, &b)) in z.iter().zip(of).enumerate() {
            let b = b as usize;
            if b >= nb || zj.is_nan() || !st.is_active(j) {
                continue;
            }
            let fit: f64 = row(j).iter().zip(&coords[b]).map(|(a, y)| a * y).sum();
            sum[b] += (zj - fit) * (zj - fit);
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
}

fn add_outer(g: &mut [f64], wr: &[f64]) {
    let c = wr.len();
    for r in 0..c {
        for t in 0..c {
            g[r * c + t] += wr[r] * wr[t];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standardise::Standardiser;

    fn projector(w: &[f64]) -> Projector {
        // Identity standardisation of 3 features.
        let values = [-1.0, -1.0, -1.0, 1.0, 1.0, 1.0];
        let st = Standardiser::fit(&values, 3, 0..2);
        let scale = st.scale().to_vec();
        let st = st.weighted(&scale);
        Projector::new(st, w.to_vec(), 1)
    }

    #[test]
    fn block_residuals_split_the_residual() {
        let blocks = Blocks {
            names: vec!["a".into(), "b".into()],
            of_feature: vec![0, 1, 1],
        };
        // p = 3, c = 1, loading along the first feature.
        let pr = projector(&[1.0, 0.0, 0.0]);
        let st = BlockState::new(blocks.clone(), vec![1.0; 2], &pr, 1);
        let r = st.residuals(&[1.0, 2.0, 3.0], &pr);
        assert!(r[0] < 1e-9 && (r[1] - 13.0).abs() < 1e-9, "{r:?}");
        let missing = st.residuals(&[1.0, f64::NAN, 3.0], &pr);
        assert!((missing[1] - 18.0).abs() < 1e-9, "{missing:?}");
        // Each block is fitted on its own features: a row along the loading
        // within block b has no residual there, whatever block a holds.
        let pr2 = projector(&[0.0, 0.6, 0.8]);
        let st2 = BlockState::new(blocks, vec![1.0; 2], &pr2, 1);
        let r = st2.residuals(&[5.0, 1.2, 1.6], &pr2);
        assert!(r[1] < 1e-9 && (r[0] - 25.0).abs() < 1e-9, "{r:?}");
    }
}
