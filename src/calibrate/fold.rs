//! Fold models: the fitted functions that score calibration members and patients.
//!
//! A [`FoldModel`] is a projection, the search coordinates of its training
//! members (indexed when the model is loaded), the channels' fitted state and
//! the [`Scorer`] that combines the channels. Under split conformal there is
//! one, the model's own projection and index; under cross-conformal there is
//! one per fold, trained without that fold (docs/method.md §4).

use serde::{Deserialize, Serialize};

use super::channel::{ChannelState, PointView, Scorer};
use crate::index::blocked::BlockedSearch;
use crate::index::{ExactIndex, HnswIndex, Neighbour};
use crate::marginal::Marginals;
use crate::project::{MaskedSolver, Projector};
use crate::score::KnnStatistic;

/// One fitted scoring function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldModel {
    /// Standardise + project, fitted on the fold's training rows.
    pub projector: Projector,
    /// Leading components used for the neighbour search.
    pub search_dims: usize,
    /// Training members' search coordinates, row-major `n_train × search_dims`
    /// (empty under split conformal: the model's own index is used).
    pub points: Vec<f32>,
    /// The channels' fitted state.
    pub state: ChannelState,
    /// The combination of the channels: tail transforms fitted on the fold's
    /// training members, each scored among the others (a symmetric function
    /// of the training rows, never of the members the fold scores).
    pub scorer: Scorer,
}

/// One point's scores under one fold model.
#[derive(Debug, Clone, PartialEq)]
pub struct PointScore {
    /// Channel scores, in the fold's channel order.
    pub scores: Vec<f64>,
    /// Combined novelty (`NaN` when a channel score is not a number).
    pub novelty: f64,
    /// Features observed.
    pub n_obs: usize,
}

/// A fold model with its index, ready to score points.
#[derive(Debug, Clone, Copy)]
pub struct FoldScorer<'a> {
    /// The fold model.
    pub model: &'a FoldModel,
    /// Its index over the training members' search coordinates.
    pub index: &'a ExactIndex,
    /// Number of neighbours.
    pub k: usize,
    /// kNN statistic.
    pub statistic: KnnStatistic,
}

impl FoldScorer<'_> {
    /// Scores a raw row (model feature order, `NaN` = missing): projects it,
    /// searches the fold's training members and scores every channel.
    pub fn score(&self, raw: &[f64]) -> PointScore {
        self.score_skipping(raw, None)
    }

    /// As [`FoldScorer::score`], leaving index entry `skip` out of the search
    /// (a training member scored among the others, to fit the tail transforms).
    pub fn score_skipping(&self, raw: &[f64], skip: Option<u32>) -> PointScore {
        self.score_with(raw, skip, &mut MaskedSolver::default())
    }

    /// [`FoldScorer::score`] for one of many rows sharing a missingness
    /// pattern: `solver` keeps the projection's factorisation between calls
    /// (same results, see [`crate::project::Projector::project_reusing`]).
    pub fn score_reusing(&self, raw: &[f64], solver: &mut MaskedSolver) -> PointScore {
        self.score_with(raw, None, solver)
    }

    /// [`FoldScorer::score_reusing`] for a calibration member's row `raw`
    /// with some features hidden (`NaN`), given the value channel's
    /// surprisals of the member's unmasked row
    /// ([`crate::marginal::Marginals::surprisals`] under this fold, kept by
    /// [`super::KeptMembers`]): the same scores, without scoring every
    /// value again.
    pub fn score_kept(
        &self,
        raw: &[f64],
        solver: &mut MaskedSolver,
        surprisals: &[f64],
    ) -> PointScore {
        let value = (surprisals.len() == raw.len())
            .then(|| Marginals::score_of_surprisals(surprisals, raw));
        self.score_full(raw, None, solver, value)
    }

    /// [`FoldScorer::score_skipping`] of many rows (each with the index
    /// entry to leave out), the value channel scored for all of them
    /// together ([`Marginals::score_rows`]): the same scores, faster for
    /// wide references.
    pub fn score_rows_skipping(&self, rows: &[(&[f64], Option<u32>)]) -> Vec<PointScore> {
        let values = self.value_scores(rows);
        rows.iter()
            .zip(values)
            .map(|(&(raw, skip), value)| {
                self.score_full(raw, skip, &mut MaskedSolver::default(), value)
            })
            .collect()
    }

    /// [`FoldScorer::score_rows_skipping`] with the neighbours found by
    /// `blocked` (laid out from this scorer's index) for the rows together,
    /// nearby rows in one batch: the same scores, bit for bit, faster where
    /// the k-d tree prunes little. Runs on the calling thread.
    pub fn score_rows_blocked(
        &self,
        rows: &[(&[f64], Option<u32>)],
        blocked: &BlockedSearch,
    ) -> Vec<PointScore> {
        let values = self.value_scores(rows);
        let projector = &self.model.projector;
        let dims = self.index.dim();
        let projected: Vec<(Vec<f64>, Vec<f64>, f64, usize)> = rows
            .iter()
            .map(|&(raw, _)| {
                let mut z = vec![0.0; raw.len()];
                let mut y = vec![0.0; projector.n_components];
                let (residual, n_obs) =
                    projector.project_reusing(raw, &mut z, &mut y, &mut MaskedSolver::default());
                (z, y, residual, n_obs)
            })
            .collect();
        let q = |i: usize| projected[i].1[..dims].iter().map(|v| *v as f32);
        let mut searched: Vec<(u32, usize)> = (0..rows.len())
            .filter(|&i| projected[i].3 > 0 && q(i).all(f32::is_finite))
            .map(|i| (self.index.locality_key(&q(i).collect::<Vec<f32>>()), i))
            .collect();
        searched.sort_unstable();
        let queries: Vec<f32> = searched.iter().flat_map(|&(_, i)| q(i)).collect();
        let skips: Vec<Option<u32>> = searched.iter().map(|&(_, i)| rows[i].1).collect();
        let anchors: Vec<usize> = searched
            .iter()
            .zip(&skips)
            .map(|(&(key, _), s)| s.map_or_else(|| blocked.anchor(key), |s| blocked.position_of(s)))
            .collect();
        let found = blocked.search_skipping(&queries, &anchors, &skips, self.k, None);
        let mut neighbours: Vec<Vec<Neighbour>> = vec![Vec::new(); rows.len()];
        for (&(_, i), r) in searched.iter().zip(found) {
            neighbours[i] = r.neighbours;
        }
        rows.iter()
            .zip(values)
            .zip(projected.iter().zip(&neighbours))
            .map(|((&(raw, skip), value), ((z, y, residual, n_obs), nb))| {
                let view = self.view(raw, z, y, *residual, *n_obs, nb, skip.is_some());
                self.score_of(&view, value)
            })
            .collect()
    }

    /// [`FoldScorer::score_rows_skipping`] with the neighbours found by
    /// `graph` (built over this scorer's index points; exact search for the
    /// queries it finds far, [`HnswIndex::search_or_exact`]): the score an
    /// [`crate::index::IndexKind::Graph`] model gives.
    pub fn score_rows_graph(
        &self,
        rows: &[(&[f64], Option<u32>)],
        graph: &HnswIndex,
    ) -> Vec<PointScore> {
        let values = self.value_scores(rows);
        let projector = &self.model.projector;
        let dims = self.index.dim();
        rows.iter()
            .zip(values)
            .map(|(&(raw, skip), value)| {
                let mut z = vec![0.0; raw.len()];
                let mut y = vec![0.0; projector.n_components];
                let (residual, n_obs) =
                    projector.project_reusing(raw, &mut z, &mut y, &mut MaskedSolver::default());
                let q: Vec<f32> = y[..dims].iter().map(|v| *v as f32).collect();
                let nb = if n_obs == 0 || q.iter().any(|v| !v.is_finite()) {
                    Vec::new()
                } else {
                    graph
                        .search_or_exact(self.index, &q, self.k, skip, None)
                        .neighbours
                };
                let view = self.view(raw, &z, &y, residual, n_obs, &nb, skip.is_some());
                self.score_of(&view, value)
            })
            .collect()
    }

    /// The value channel's score of each row, scored together (`None`
    /// when the fold has no value channel).
    fn value_scores(&self, rows: &[(&[f64], Option<u32>)]) -> Vec<Option<f64>> {
        match &self.model.state.extra.value {
            Some(m) if self.model.state.channels().contains(&super::Channel::Value) => {
                // Own values leave the counts exactly for the rows left
                // out of the search (the fold's training members).
                let (own, other): (Vec<usize>, Vec<usize>) =
                    (0..rows.len()).partition(|&i| rows[i].1.is_some());
                let mut out = vec![None; rows.len()];
                for (subset, is_own) in [(own, true), (other, false)] {
                    let picked: Vec<&[f64]> = subset.iter().map(|&i| rows[i].0).collect();
                    for (&i, v) in subset.iter().zip(m.score_rows(&picked, is_own)) {
                        out[i] = Some(v.score);
                    }
                }
                out
            }
            _ => vec![None; rows.len()],
        }
    }

    fn score_with(&self, raw: &[f64], skip: Option<u32>, solver: &mut MaskedSolver) -> PointScore {
        self.score_full(raw, skip, solver, None)
    }

    /// Projects, searches and scores a raw row (`value`: the value
    /// channel's score when already known).
    fn score_full(
        &self,
        raw: &[f64],
        skip: Option<u32>,
        solver: &mut MaskedSolver,
        value: Option<f64>,
    ) -> PointScore {
        let projector = &self.model.projector;
        let mut z = vec![0.0; raw.len()];
        let mut y = vec![0.0; projector.n_components];
        let (residual, n_obs) = projector.project_reusing(raw, &mut z, &mut y, solver);
        let dims = self.index.dim();
        let q: Vec<f32> = y[..dims].iter().map(|v| *v as f32).collect();
        let nb = if n_obs == 0 || q.iter().any(|v| !v.is_finite()) {
            Vec::new()
        } else {
            self.index.search(&q, self.k, skip, None).neighbours
        };
        let view = self.view(raw, &z, &y, residual, n_obs, &nb, skip.is_some());
        self.score_of(&view, value)
    }

    /// Scores a point already projected by this fold's projection and searched
    /// in its index (`value`: the value channel's score when already known,
    /// as [`FoldScorer::outside_value_scores`] gives it).
    #[allow(clippy::too_many_arguments)]
    pub fn score_projected(
        &self,
        raw: &[f64],
        z: &[f64],
        y: &[f64],
        residual: f64,
        n_obs: usize,
        neighbours: &[Neighbour],
        value: Option<f64>,
    ) -> PointScore {
        let view = self.view(raw, z, y, residual, n_obs, neighbours, false);
        self.score_of(&view, value)
    }

    /// The value channel's scores of rows that are not this fold's training
    /// members (patients), scored together ([`Marginals::score_rows`]: the
    /// scores [`FoldScorer::score_projected`] computes, bit for bit, faster
    /// for many rows); `None` each when the fold has no value channel.
    pub fn outside_value_scores(&self, rows: &[&[f64]]) -> Vec<Option<f64>> {
        let rows: Vec<(&[f64], Option<u32>)> = rows.iter().map(|&r| (r, None)).collect();
        self.value_scores(&rows)
    }

    #[allow(clippy::too_many_arguments)]
    fn view<'v>(
        &'v self,
        raw: &'v [f64],
        z: &'v [f64],
        y: &'v [f64],
        residual: f64,
        n_obs: usize,
        neighbours: &'v [Neighbour],
        own: bool,
    ) -> PointView<'v> {
        PointView {
            own,
            raw,
            z,
            y,
            residual,
            n_obs,
            neighbours,
            statistic: self.statistic,
            projector: &self.model.projector,
        }
    }

    /// Every channel's score of a point and its novelty (`value`: the value
    /// channel's score when already known).
    fn score_of(&self, view: &PointView<'_>, value: Option<f64>) -> PointScore {
        let n_obs = view.n_obs;
        let scores = if n_obs == 0 {
            vec![f64::NAN; self.model.state.channels().len()]
        } else {
            self.model.state.score_given(view, value)
        };
        let novelty = if scores.iter().any(|s| !s.is_finite()) {
            f64::NAN
        } else {
            self.model.scorer.novelty(&scores)
        };
        PointScore {
            scores,
            novelty,
            n_obs,
        }
    }
}
