//! Assessment: project each patient, score every channel under every fold
//! model, give a conformal p-value, a verdict and the reason for it.

use rayon::prelude::*;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::Model;
use crate::calibrate::{
    CalibrationSet, Channel, FoldScorer, KeptMembers, MaskedCalibration, PointScore, PointView,
    Scheme, conformal,
};
use crate::error::Result;
use crate::index::blocked::{BlockedSearch, QUERY_BLOCK};
use crate::index::exact::ExactResult;
use crate::index::{IndexKind, Neighbour};
use crate::marginal::SCORE_BATCH_ROWS;
use crate::model::fit::BLOCKED_PROBE_MIN;
use crate::score::{self, knn_statistic};
use crate::table::{FeatureMap, Table};
use crate::verdict::{Assessment, FeatureContribution, Verdict};

/// Patients searched in one batch from which assess weighs the blocked
/// search against the k-d tree (`Model::blocked_for`).
pub const BLOCKED_BATCH_MIN: usize = 2 * QUERY_BLOCK;

/// Per-patient time of the k-d tree in the probe below which assess keeps
/// the tree without laying out the blocks (`Model::blocked_for`): at 20,000
/// patients the tree then costs under 3 CPU-s, and the layout (about 0.1 s
/// at 1,000,000 × 8) would eat most of what the blocks could win. Chosen on
/// the biobank and default `bench synth` profiles (docs/performance.md),
/// where the tree's probe takes 30–105 µs per patient with 8 components
/// and 330–550 µs with 16.
pub const TREE_FAST_ENOUGH: std::time::Duration = std::time::Duration::from_micros(150);

/// Share of the tree's time the blocks must beat in a probe to be chosen
/// (at fit and at assess): a margin against timing noise where the two are
/// close, since a wrong choice costs more than a missed small gain.
pub const BLOCKED_MARGIN: f64 = 0.75;

/// Patients of the probe searched at once by blocks (`Model::blocked_for`).
const PROBE_PART: usize = QUERY_BLOCK / 2;

/// Number of features listed in `top_features`.
pub const TOP_FEATURES: usize = 5;

/// A patient's standardised row `z`, embedding `y`, search coordinates `q`
/// (the leading `knn_components` of `y`, as `f32`), residual and number of
/// observed features.
struct Projected {
    raw: Vec<f64>,
    z: Vec<f64>,
    y: Vec<f64>,
    q: Vec<f32>,
    residual: f64,
    n_obs: usize,
    /// The value channel's score under split conformal, when scored with
    /// the patient's batch ([`FoldScorer::outside_value_scores`]).
    value: Option<f64>,
}

impl Model {
    /// Matches a table's feature columns to the model's, by name.
    pub fn feature_map(&self, table_features: &[String]) -> FeatureMap {
        FeatureMap::new(&self.data.features, table_features)
    }

    /// Assesses every patient of `patients`, matching features by name.
    /// Returns exactly one assessment per row, in row order.
    ///
    /// A feature the patients lack counts as missing for every row, and a
    /// row with too few observed features is `insufficient_data`, not an
    /// error.
    ///
    /// # Errors
    /// None for a table built by the readers or the checked constructors of
    /// [`Table`] (they guarantee one id, group and note per row); the
    /// `Result` is that of [`Model::assess_mapped`].
    ///
    /// # Examples
    /// ```
    /// use nof1::{Params, Table, Verdict};
    /// let mut values = Vec::new();
    /// for i in 0..80 {
    ///     let t = i as f64 / 10.0;
    ///     values.extend_from_slice(&[t.sin(), t.cos()]);
    /// }
    /// let ids = (0..80).map(|i| format!("r{i}")).collect();
    /// let names = vec!["a".to_string(), "b".to_string()];
    /// let model = Params::default().k(5).fit(&Table::from_rows(ids, names.clone(), values)?)?;
    /// let far = Table::from_rows(vec!["far".into()], names, vec![40.0, -40.0])?;
    /// let out = model.assess(&far)?;
    /// assert_eq!(out[0].verdict, Verdict::Invisible);
    /// # Ok::<(), nof1::Error>(())
    /// ```
    pub fn assess(&self, patients: &Table) -> Result<Vec<Assessment>> {
        let map = self.feature_map(&patients.feature_names);
        self.assess_mapped(patients, &map)
    }

    /// Assesses the rows of `patients` with an explicit feature map (one
    /// assessment per row, in order; parallel, deterministic).
    ///
    /// Rows are searched in the order of [`crate::index::ExactIndex::locality_key`]
    /// (nearby patients one after the other, which keeps the reference points
    /// they share in cache) and returned in row order.
    ///
    /// # Errors
    /// [`crate::ErrorKind::DimensionMismatch`] when `map` was not built by
    /// [`Model::feature_map`] of this model for the columns of `patients`
    /// (it maps another number of model features or of table columns).
    pub fn assess_mapped(&self, patients: &Table, map: &FeatureMap) -> Result<Vec<Assessment>> {
        let p = self.data.features.len();
        if map.n_model_features() != p {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "model features in the feature map",
                expected: p,
                found: map.n_model_features(),
            }
            .into());
        }
        if map.n_table_features() != patients.n_features() {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "table columns in the feature map",
                expected: patients.n_features(),
                found: map.n_table_features(),
            }
            .into());
        }
        // Each row is projected once; the projection gives its search order.
        // Under split conformal, the value channel scores each batch of
        // rows together (the same scores, faster than row by row).
        let split = self.data.calibration.scheme == Scheme::Split;
        let n = patients.n_rows();
        let starts: Vec<usize> = (0..n).step_by(SCORE_BATCH_ROWS).collect();
        let mut projected: Vec<(u32, usize, Projected)> = starts
            .into_par_iter()
            .flat_map_iter(|start| {
                let mut batch: Vec<(usize, Projected)> = (start..(start + SCORE_BATCH_ROWS).min(n))
                    .map(|i| {
                        let mut raw = vec![f64::NAN; p];
                        map.gather(patients.row(i), &mut raw);
                        (i, self.project_patient(&raw))
                    })
                    .collect();
                if split {
                    let raws: Vec<&[f64]> = batch.iter().map(|(_, x)| x.raw.as_slice()).collect();
                    let values = self.fold_scorer(0).outside_value_scores(&raws);
                    for ((_, x), v) in batch.iter_mut().zip(values) {
                        x.value = v;
                    }
                }
                // The raw values are gathered again, and standardised
                // again (`Projector::project` standardises them exactly so),
                // when the row is assessed: no copy of the whole table waits
                // in memory.
                batch.into_iter().map(|(i, mut x)| {
                    x.raw = Vec::new();
                    x.z = Vec::new();
                    (self.locality_key(&x), i, x)
                })
            })
            .collect();
        projected.sort_unstable_by_key(|(key, i, _)| (*key, *i));
        let regather = |i: usize, mut x: Projected| -> Projected {
            let mut raw = vec![f64::NAN; p];
            map.gather(patients.row(i), &mut raw);
            let mut z = vec![0.0; p];
            self.data.projector.standardiser.transform(&raw, &mut z);
            x.raw = raw;
            x.z = z;
            x
        };

        let cache = MaskCache::default();
        let group_of = |i: usize| patients.groups.as_ref().map(|g| g[i].clone());
        let note_of = |i: usize| patients.notes.get(i).cloned().unwrap_or_default();
        // Batches of nearby patients: searched together in the reference by
        // blocked distance products where that is faster than the tree, or
        // answered by nof1's own graph patient by patient; either way their
        // density-sample neighbours are found by blocks.
        let batched: Option<Option<&BlockedSearch>> = if self.data.index_kind == IndexKind::Graph {
            self.density_blocked().map(|_| None)
        } else {
            self.blocked_for(&projected).map(Some)
        };
        let mut assessed: Vec<(usize, Assessment)> = match batched {
            Some(reference) => projected
                .into_par_iter()
                .chunks(QUERY_BLOCK)
                .flat_map_iter(|chunk| {
                    let begun: Vec<(usize, u32, Begun<'_>)> = chunk
                        .into_iter()
                        .map(|(key, i, x)| {
                            let b = self.begin(
                                &patients.ids[i],
                                group_of(i),
                                regather(i, x),
                                note_of(i),
                                &cache,
                            );
                            (i, key, b)
                        })
                        .collect();
                    self.search_and_complete(reference, begun)
                })
                .collect(),
            None => projected
                .into_par_iter()
                .with_min_len(64)
                .map(|(_, i, x)| {
                    let a = self.assess_projected(
                        &patients.ids[i],
                        group_of(i),
                        regather(i, x),
                        note_of(i),
                        &cache,
                    );
                    (i, a)
                })
                .collect(),
        };
        assessed.sort_unstable_by_key(|(i, _)| *i);
        Ok(assessed.into_iter().map(|(_, a)| a).collect())
    }

    /// The blocked search of the reference for a batch of patients (in
    /// locality order), when it is faster than the k-d tree: decided once
    /// per loaded model, at its first batch of at least
    /// [`BLOCKED_BATCH_MIN`] patients, by timing both on [`QUERY_BLOCK`] of
    /// them (one thread each): the blocks serve when the tree takes at least
    /// [`TREE_FAST_ENOUGH`] per patient and the blocks at most
    /// [`BLOCKED_MARGIN`] of its time. Both give the same results bit for bit
    /// ([`crate::index::blocked`]), so the choice changes the time only.
    fn blocked_for(&self, batch: &[(u32, usize, Projected)]) -> Option<&BlockedSearch> {
        if let Some(chosen) = self.blocked.get() {
            return chosen.as_ref();
        }
        if self.exact.len() < BLOCKED_PROBE_MIN || !self.exact.has_tree() {
            return None;
        }
        // The patients with a search (their key and projection).
        let searched: Vec<(u32, &Projected)> = batch
            .iter()
            .filter(|(_, _, x)| x.n_obs > 0 && x.q.iter().all(|v| v.is_finite()))
            .map(|(key, _, x)| (*key, x))
            .collect();
        let n = searched.len();
        if n < BLOCKED_BATCH_MIN {
            return None;
        }
        self.blocked
            .get_or_init(|| {
                let k = self.data.params.k;
                let radius = self.data.support_radius as f32;
                let probe = &searched[(n - QUERY_BLOCK.min(n)) / 2..][..QUERY_BLOCK.min(n)];
                let t = std::time::Instant::now();
                for (_, x) in probe {
                    std::hint::black_box(self.exact.search(&x.q, k, None, Some(radius)));
                }
                let tree = t.elapsed();
                // A tree this fast leaves the layout little to win back.
                if tree < TREE_FAST_ENOUGH * probe.len() as u32 {
                    return None;
                }
                let (points, dim) = (self.exact.points(), self.exact.dim());
                let ordered = crate::model::fit::locality_order(&self.exact);
                let blocked = BlockedSearch::new(points, dim, &ordered)?;
                let queries: Vec<f32> = probe
                    .iter()
                    .flat_map(|(_, x)| x.q.iter().copied())
                    .collect();
                let anchors: Vec<usize> =
                    probe.iter().map(|&(key, _)| blocked.anchor(key)).collect();
                let radii = vec![radius; probe.len()];
                // Half at a time, given up as soon as the blocks have
                // taken longer than [`BLOCKED_MARGIN`] of the tree's time
                // for all (where the tree wins, the probe costs about the
                // tree's time).
                let t = std::time::Instant::now();
                for part in (0..probe.len()).step_by(PROBE_PART) {
                    let end = (part + PROBE_PART).min(probe.len());
                    std::hint::black_box(blocked.search(
                        &queries[part * dim..end * dim],
                        &anchors[part..end],
                        k,
                        Some(&radii[part..end]),
                    ));
                    if t.elapsed() >= tree.mul_f64(BLOCKED_MARGIN) {
                        return None;
                    }
                }
                Some(blocked)
            })
            .as_ref()
    }

    /// Completes a batch of begun patients (nearby ones, in locality order).
    /// Those still needing a search in the reference are searched together
    /// with `reference` (its blocked search), or one by one by the exact
    /// index when it is `None` (nof1's own graph answers the others), and
    /// every one with finite search coordinates gets
    /// its neighbours in the density sample by the sample's blocked search:
    /// the same results, bit for bit, as the indexes' own searches.
    fn search_and_complete(
        &self,
        reference: Option<&BlockedSearch>,
        begun: Vec<(usize, u32, Begun<'_>)>,
    ) -> Vec<(usize, Assessment)> {
        let k = self.data.params.k;
        let pending = || {
            begun.iter().filter_map(|(_, key, b)| match b {
                Begun::Pending(p) => Some((key, p)),
                Begun::Done(_) => None,
            })
        };
        let mut found = match reference {
            Some(blocked) => {
                let waiting = pending().filter(|(_, p)| p.needs_search());
                let queries: Vec<f32> = waiting
                    .clone()
                    .flat_map(|(_, p)| p.x.q.iter().copied())
                    .collect();
                let anchors: Vec<usize> = waiting
                    .clone()
                    .map(|(&key, _)| blocked.anchor(key))
                    .collect();
                let radii: Vec<f32> = waiting.map(|(_, p)| p.radius).collect();
                blocked.search(&queries, &anchors, k, Some(&radii))
            }
            None => Vec::new(),
        }
        .into_iter();
        let searched: Vec<f32> = pending()
            .filter(|(_, p)| p.finite_q)
            .flat_map(|(_, p)| p.x.q.iter().copied())
            .collect();
        let mut density_found = self.density_search(&searched);
        begun
            .into_iter()
            .map(|(i, _, b)| match b {
                Begun::Done(a) => (i, a),
                Begun::Pending(p) => {
                    let r = match (p.needs_search(), reference) {
                        (false, _) => None,
                        (true, Some(_)) => found.next(),
                        // With nof1's own graph, a patient whose calibration
                        // set was rescored by exact search (missing features).
                        (true, None) => Some(self.exact.search(&p.x.q, k, None, Some(p.radius))),
                    };
                    let density = if p.finite_q {
                        density_found.as_mut().and_then(|d| d.next())
                    } else {
                        None
                    };
                    (i, self.complete(p, r, density.map(|d| d.neighbours)))
                }
            })
            .collect()
    }

    /// The neighbours in the density sample of the row-major `queries`, by
    /// the sample's blocked search (`None` without a sample).
    fn density_search(&self, queries: &[f32]) -> Option<std::vec::IntoIter<ExactResult>> {
        let (sample, blocked) = (self.density.as_ref()?, self.density_blocked()?);
        let anchors: Vec<usize> = queries
            .chunks_exact(self.exact.dim().max(1))
            .map(|q| blocked.anchor(sample.locality_key(q)))
            .collect();
        Some(
            blocked
                .search(queries, &anchors, self.data.params.k, None)
                .into_iter(),
        )
    }

    /// The blocked search of the density sample (built at its first use).
    fn density_blocked(&self) -> Option<&BlockedSearch> {
        let sample = self.density.as_ref()?;
        self.density_blocked
            .get_or_init(|| {
                let ordered = crate::model::fit::locality_order(sample);
                BlockedSearch::new(sample.points(), sample.dim(), &ordered)
            })
            .as_ref()
    }

    /// Standardises and projects a patient's raw values (model feature order).
    fn project_patient(&self, raw: &[f64]) -> Projected {
        let projector = &self.data.projector;
        let mut z = vec![0.0; raw.len()];
        let mut y = vec![0.0; projector.n_components];
        let (residual, n_obs) = projector.project(raw, &mut z, &mut y);
        let q = y[..self.exact.dim()].iter().map(|v| *v as f32).collect();
        Projected {
            raw: raw.to_vec(),
            z,
            y,
            q,
            residual,
            n_obs,
            value: None,
        }
    }

    /// Where a patient's embedding falls among the reference members (see
    /// [`crate::index::ExactIndex::locality_key`]).
    fn locality_key(&self, x: &Projected) -> u32 {
        if x.n_obs == 0 {
            return u32::MAX;
        }
        self.exact.locality_key(&x.q)
    }

    /// The calibration to use for a patient of `group` observing the
    /// features `mask`, whether it is a fallback to the pooled one, and a
    /// note when the mask leaves too few members to recalibrate.
    ///
    /// The set is borrowed from the model (or shared with the batch's mask
    /// cache), never copied: at 1M members a copy per patient cost more
    /// than the search.
    fn calibration_for(
        &self,
        group: Option<&str>,
        mask: Option<&[bool]>,
        cache: &MaskCache,
    ) -> (SetRef<'_>, bool, Option<String>) {
        let cal = &self.data.calibration;
        let min_group = self.min_group();
        let gi = group.and_then(|g| {
            self.data
                .reference
                .group_names
                .binary_search_by(|x| x.as_str().cmp(g))
                .ok()
        });
        // The model's set for this group: its own when it has one, else the
        // pooled set (a fallback when sets are kept per group).
        let from_model = || match cal.by_group.as_ref() {
            None => (SetRef::Model(&cal.pooled), false),
            Some(bg) => match gi.and_then(|g| bg.get(g)).and_then(|c| c.as_ref()) {
                Some(set) => (SetRef::Model(set), false),
                None => (SetRef::Model(&cal.pooled), true),
            },
        };
        let Some(mask) = mask else {
            let (set, fallback) = from_model();
            return (set, fallback, None);
        };
        let masked = self.masks.get_or(cache, mask, || {
            // Kept once per loaded model, built sequentially (see
            // KeptMembers::build): never from inside its own initialiser.
            let kept = self
                .folds
                .kept
                .get_or_init(|| KeptMembers::build(cal, |k| self.fold_scorer(k)));
            cal.masked(mask, |k| self.fold_scorer(k), min_group, Some(kept))
        });
        if masked.pooled.n_members < min_group {
            let note = format!(
                "{} calibration member(s) observe these features, fewer than {min_group}: calibrated on all members (approximate)",
                masked.pooled.n_members
            );
            let (set, fallback) = from_model();
            return (set, fallback, Some(note));
        }
        let Some(bg) = masked.by_group.as_ref().filter(|_| cal.by_group.is_some()) else {
            return (SetRef::Masked(masked, None), false, None);
        };
        match gi.filter(|&g| bg.get(g).is_some_and(|c| c.is_some())) {
            Some(g) => (SetRef::Masked(masked, Some(g)), false, None),
            None => (SetRef::Masked(masked, None), true, None),
        }
    }

    /// Fewest members a calibration set needs to reach `p ≤ alpha`.
    fn min_group(&self) -> usize {
        ((1.0 / self.data.params.alpha).ceil() as usize)
            .saturating_sub(1)
            .max(1)
    }

    /// Fold `k`'s scorer (under split conformal, the model's own index).
    fn fold_scorer(&self, k: usize) -> FoldScorer<'_> {
        let cal = &self.data.calibration;
        let index = match cal.scheme {
            Scheme::Split => &self.exact,
            Scheme::CrossConformal => {
                let folds = &self.folds.indexes;
                &folds[k.min(folds.len().saturating_sub(1))]
            }
        };
        FoldScorer {
            model: &cal.folds[k.min(cal.folds.len().saturating_sub(1))],
            index,
            k: self.data.params.k,
            statistic: self.data.params.knn_statistic,
        }
    }

    /// The support radius of a patient of `group`.
    fn radius_for(&self, group: Option<&str>, pooled_fallback: bool) -> f64 {
        let d = &self.data;
        match (&d.group_support_radius, group, pooled_fallback) {
            (Some(radii), Some(g), false) => d
                .reference
                .group_names
                .binary_search_by(|x| x.as_str().cmp(g))
                .ok()
                .and_then(|i| radii.get(i).copied())
                .unwrap_or(d.support_radius),
            _ => d.support_radius,
        }
    }

    /// Assesses one patient given its raw values in model feature order
    /// (`NaN` = missing).
    ///
    /// # Errors
    /// [`crate::ErrorKind::DimensionMismatch`] when `raw` does not hold one
    /// value per model feature.
    pub fn assess_one(
        &self,
        id: &str,
        group: Option<String>,
        raw: &[f64],
        note: String,
    ) -> Result<Assessment> {
        if raw.len() != self.data.features.len() {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "patient values",
                expected: self.data.features.len(),
                found: raw.len(),
            }
            .into());
        }
        let cache = MaskCache::default();
        Ok(self.assess_projected(id, group, self.project_patient(raw), note, &cache))
    }

    /// [`Model::assess_one`] for a patient already projected: searched by
    /// the k-d tree alone.
    fn assess_projected(
        &self,
        id: &str,
        group: Option<String>,
        x: Projected,
        note: String,
        cache: &MaskCache,
    ) -> Assessment {
        match self.begin(id, group, x, note, cache) {
            Begun::Done(a) => a,
            Begun::Pending(p) => {
                let exact = p.needs_search().then(|| {
                    self.exact
                        .search(&p.x.q, self.data.params.k, None, Some(p.radius))
                });
                self.complete(p, exact, None)
            }
        }
    }

    /// A patient's p-value and verdict from its scores under `set`.
    fn decide(&self, set: &CalibrationSet, scores: &[PointScore]) -> (f64, Verdict) {
        let params = &self.data.params;
        let novelty: Vec<f64> = scores.iter().map(|s| s.novelty).collect();
        let p = set.p_value(&novelty);
        (p, conformal::verdict(p, params.alpha, params.warn_alpha))
    }

    /// Everything before a patient's exact search: the coverage floor, its
    /// calibration set and support radius, and (with a graph) the graph's
    /// answer when it is final.
    fn begin<'a>(
        &'a self,
        id: &str,
        group: Option<String>,
        x: Projected,
        note: String,
        cache: &'a MaskCache,
    ) -> Begun<'a> {
        let d = &self.data;
        let params = &d.params;
        let cal = &d.calibration;
        let p = d.features.len();
        let k = params.k;
        let coverage = x.n_obs as f64 / p as f64;
        let mut out = Assessment {
            id: id.to_string(),
            group,
            verdict: Verdict::InsufficientData,
            p_value: f64::NAN,
            novelty: f64::NAN,
            knn_distance: f64::NAN,
            p_novelty: f64::NAN,
            residual: f64::NAN,
            p_residual: f64::NAN,
            density: f64::NAN,
            support: 0,
            coverage,
            support_radius: d.support_radius,
            neighbours: Vec::new(),
            top_features: Vec::new(),
            embedding: Vec::new(),
            note,
            pooled_fallback: false,
            reason: String::new(),
            q_value: f64::NAN,
            channel_p_values: Vec::new(),
        };
        if x.n_obs == 0 || coverage < params.min_coverage {
            out.reason = "missing".to_string();
            return Begun::Done(out);
        }
        let needs_mask = x.n_obs < p || cal.incomplete_members > 0;
        let mask: Option<Vec<bool>> =
            needs_mask.then(|| x.raw.iter().map(|v| !v.is_nan()).collect());
        let (set, pooled_fallback, mask_note) =
            self.calibration_for(out.group.as_deref(), mask.as_deref(), cache);
        if pooled_fallback {
            add_note(
                &mut out.note,
                "pooled calibration (group too small to calibrate, or not in the reference)",
            );
        }
        if let Some(m) = mask_note {
            add_note(&mut out.note, &m);
        }
        out.pooled_fallback = pooled_fallback;
        let radius = self.radius_for(out.group.as_deref(), pooled_fallback);
        out.support_radius = radius;
        let radius = if radius.is_finite() {
            radius as f32
        } else {
            f32::MAX
        };
        let split = cal.scheme == Scheme::Split;
        // Under split conformal the model's own search gives the kNN channel.
        // Graph first; anything it would not call supported is re-checked
        // exactly. Graph distances are never shorter than exact ones and
        // novelty is non-decreasing in the kNN statistic, so a graph
        // `supported` is final.
        let finite_q = x.q.iter().all(|v| v.is_finite());
        let mut found = None;
        // A set rescored for the patient's missing features was scored by
        // exact search: the patient is searched exactly too (below).
        let graph_scored_set = matches!(set, SetRef::Model(_));
        if let Some(g) = &self.hnsw
            && finite_q
            && d.index_kind == IndexKind::Graph
            && graph_scored_set
        {
            // nof1's own graph (exact search for a far query): the
            // calibration members were scored by the same search, so its
            // answer is final.
            let r = g.search_or_exact(&self.exact, &x.q, k, None, Some(radius));
            let (nb, support) = (r.neighbours, r.within);
            let scores: Vec<PointScore> = if split {
                vec![
                    self.fold_scorer(0)
                        .score_projected(&x.raw, &x.z, &x.y, x.residual, x.n_obs, &nb, x.value),
                ]
            } else {
                (0..cal.n_folds())
                    .map(|f| self.fold_scorer(f).score(&x.raw))
                    .collect()
            };
            let (p, verdict) = self.decide(set.get(), &scores);
            found = Some((nb, scores, p, verdict, support));
        } else if let Some(g) = &self.hnsw
            && finite_q
            && d.index_kind == IndexKind::Hnsw
        {
            let nb = g.search(&x.q, k);
            if nb.len() == k {
                let support = nb.iter().filter(|n| n.distance <= radius).count() as u32;
                if split {
                    let s = self
                        .fold_scorer(0)
                        .score_projected(&x.raw, &x.z, &x.y, x.residual, x.n_obs, &nb, x.value);
                    let (p, verdict) = self.decide(set.get(), std::slice::from_ref(&s));
                    if verdict == Verdict::Supported {
                        found = Some((nb, vec![s], p, verdict, support));
                    }
                } else {
                    let scores: Vec<PointScore> = (0..cal.n_folds())
                        .map(|f| self.fold_scorer(f).score(&x.raw))
                        .collect();
                    let (p, verdict) = self.decide(set.get(), &scores);
                    found = Some((nb, scores, p, verdict, support));
                }
            }
        }
        Begun::Pending(Pending {
            out,
            x,
            set,
            radius,
            finite_q,
            found,
        })
    }

    /// Everything after a patient's exact search (`exact`: its result, when
    /// [`Pending::needs_search`]).
    /// `density`: the patient's neighbours in the density sample, when
    /// already found.
    fn complete(
        &self,
        pending: Pending<'_>,
        exact: Option<ExactResult>,
        density: Option<Vec<Neighbour>>,
    ) -> Assessment {
        let d = &self.data;
        let params = &d.params;
        let cal = &d.calibration;
        let p = d.features.len();
        let Pending {
            mut out,
            x,
            set: set_ref,
            found,
            ..
        } = pending;
        let set = set_ref.get();
        let Projected {
            raw,
            z,
            y,
            q,
            residual,
            n_obs,
            value,
        } = x;
        let k = params.k;
        let split = cal.scheme == Scheme::Split;
        let (neighbours, scores, p_value, verdict, support) = match found {
            Some(f) => f,
            None => {
                let r = exact.unwrap_or(ExactResult {
                    neighbours: Vec::new(),
                    within: 0,
                });
                let scores: Vec<PointScore> = if split {
                    vec![self.fold_scorer(0).score_projected(
                        &raw,
                        &z,
                        &y,
                        residual,
                        n_obs,
                        &r.neighbours,
                        value,
                    )]
                } else {
                    (0..cal.n_folds())
                        .map(|f| self.fold_scorer(f).score(&raw))
                        .collect()
                };
                let (p, verdict) = self.decide(set, &scores);
                (r.neighbours, scores, p, verdict, r.within)
            }
        };
        let knn_distance = knn_statistic(&neighbours, params.knn_statistic);
        if verdict == Verdict::InsufficientData
            || !knn_distance.is_finite()
            || !residual.is_finite()
        {
            // Fail closed: a score that is not a number never gives a verdict.
            out.reason = "non_finite".to_string();
            add_note(&mut out.note, "a score is not a finite number: no verdict");
            out.verdict = Verdict::InsufficientData;
            return out;
        }
        let novelties: Vec<f64> = scores.iter().map(|s| s.novelty).collect();
        let channels = cal.folds[0].state.channels();
        let per_channel = |j: usize| -> Vec<f64> { scores.iter().map(|s| s.scores[j]).collect() };
        let knn_j = channels.iter().position(|&c| c == Channel::Knn);
        let res_j = channels.iter().position(|&c| c == Channel::Residual);
        out.verdict = verdict;
        out.p_value = p_value;
        out.novelty = novelties.iter().sum::<f64>() / novelties.len() as f64;
        out.knn_distance = knn_distance;
        out.p_novelty = knn_j.map_or(f64::NAN, |j| set.channel_p_value(j, &per_channel(j)));
        out.residual = residual;
        out.p_residual = res_j.map_or(f64::NAN, |j| set.channel_p_value(j, &per_channel(j)));
        out.channel_p_values = channels
            .iter()
            .enumerate()
            .map(|(j, c)| crate::verdict::ChannelPValue {
                channel: c.label(&cal.folds[0].state),
                p_value: set.channel_p_value(j, &per_channel(j)),
            })
            .collect();
        out.density = match &self.density {
            None => score::relative_density(&neighbours, &d.reference.kdist, &d.reference.lrd),
            Some(sample) => {
                let nb = density.unwrap_or_else(|| sample.search(&q, k, None, None).neighbours);
                score::relative_density(&nb, &d.reference.kdist, &d.reference.lrd)
            }
        };
        out.support = support;
        if verdict != Verdict::Supported {
            out.reason = self.reason(&raw, &scores, set);
        }
        if verdict != Verdict::Supported
            && let Some(nn) = neighbours.first()
        {
            let y_nn = self.exact.point(nn.index as usize);
            let parts = score::contributions(&z, &y, y_nn, &d.projector.loadings);
            // Largest shares first, ties by feature order (a total order, so
            // selecting the first few and sorting them is exact).
            let by_share = |&a: &usize, &b: &usize| {
                let sa = parts[a].0 + parts[a].1;
                let sb = parts[b].0 + parts[b].1;
                sb.total_cmp(&sa).then(a.cmp(&b))
            };
            let mut order: Vec<usize> = (0..p).collect();
            if p > TOP_FEATURES {
                order.select_nth_unstable_by(TOP_FEATURES - 1, by_share);
                order.truncate(TOP_FEATURES);
            }
            order.sort_unstable_by(by_share);
            out.top_features = order
                .into_iter()
                .take(TOP_FEATURES)
                .map(|j| FeatureContribution {
                    feature: d.features[j].clone(),
                    z: z[j],
                    residual: parts[j].0,
                    distance_sq: parts[j].1,
                })
                .collect();
        }
        out.neighbours = neighbours;
        out.embedding = y.iter().map(|v| *v as f32).collect();
        out
    }

    /// The channel that drove a patient's novelty: the largest term of the
    /// combination summed over the fold models, described by the channel.
    fn reason(&self, raw: &[f64], scores: &[PointScore], set: &CalibrationSet) -> String {
        let cal = &self.data.calibration;
        let Some(first) = cal.folds.first() else {
            return String::new();
        };
        let channels = first.state.channels();
        let mut total = vec![0.0f64; channels.len()];
        for (f, s) in scores.iter().enumerate() {
            let Some(fold) = cal.folds.get(f) else {
                continue;
            };
            for (t, x) in total.iter_mut().zip(fold.scorer.terms(&s.scores)) {
                *t += x;
            }
        }
        let best = (0..channels.len())
            .max_by(|&a, &b| total[a].total_cmp(&total[b]).then(b.cmp(&a)))
            .unwrap_or(0);
        // The fold whose term of that channel is largest explains it.
        let fold = (0..scores.len())
            .max_by(|&a, &b| {
                let ta = cal.folds[a].scorer.terms(&scores[a].scores)[best];
                let tb = cal.folds[b].scorer.terms(&scores[b].scores)[best];
                ta.total_cmp(&tb).then(b.cmp(&a))
            })
            .unwrap_or(0);
        let scorer = self.fold_scorer(fold);
        let projector = &scorer.model.projector;
        let mut z = vec![0.0; raw.len()];
        let mut y = vec![0.0; projector.n_components];
        let (residual, n_obs) = projector.project(raw, &mut z, &mut y);
        let view = PointView {
            raw,
            z: &z,
            y: &y,
            residual,
            n_obs,
            neighbours: &[],
            statistic: self.data.params.knn_statistic,
            projector,
            own: false,
        };
        let per_fold: Vec<f64> = scores
            .iter()
            .map(|s| s.scores.get(best).copied().unwrap_or(f64::NAN))
            .collect();
        let p = set.channel_p_value(best, &per_fold);
        let cx = crate::calibrate::Describe {
            features: &self.data.features,
            support: self.data.support.as_ref(),
            p_value: p,
        };
        channels[best].describe(&view, &scorer.model.state, &cx)
    }
}

/// A patient's neighbours, scores, p-value, verdict and support.
type Found = (Vec<Neighbour>, Vec<PointScore>, f64, Verdict, u32);

/// A patient after [`Model::begin`]: assessed already, or waiting for its
/// exact search. (Short-lived, one per patient, moved once: the size of
/// the variants does not matter.)
#[allow(clippy::large_enum_variant)]
enum Begun<'a> {
    Done(Assessment),
    Pending(Pending<'a>),
}

/// A patient waiting for its exact search.
struct Pending<'a> {
    out: Assessment,
    x: Projected,
    set: SetRef<'a>,
    /// Support radius (`f32::MAX` when not finite).
    radius: f32,
    finite_q: bool,
    /// The graph's answer, when final.
    found: Option<Found>,
}

impl Pending<'_> {
    /// Whether the patient needs an exact search of the reference.
    fn needs_search(&self) -> bool {
        self.found.is_none() && self.finite_q
    }
}

/// Appends `more` to a note, `; `-separated.
fn add_note(note: &mut String, more: &str) {
    if note.is_empty() {
        *note = more.to_string();
    } else {
        note.push_str("; ");
        note.push_str(more);
    }
}

/// A calibration set borrowed from the model, or one of a batch's masked
/// sets (its pooled set, or group `Some(g)`'s).
enum SetRef<'a> {
    Model(&'a CalibrationSet),
    Masked(Arc<MaskedCalibration>, Option<usize>),
}

impl SetRef<'_> {
    fn get(&self) -> &CalibrationSet {
        match self {
            SetRef::Model(set) => set,
            SetRef::Masked(m, None) => &m.pooled,
            SetRef::Masked(m, Some(g)) => m
                .by_group
                .as_ref()
                .and_then(|bg| bg.get(*g))
                .and_then(|c| c.as_ref())
                .unwrap_or(&m.pooled),
        }
    }
}

/// Most missingness patterns whose calibration sets a loaded model keeps
/// from batch to batch (and call to call): a few megabytes at most (a set
/// holds the scores of at most [`crate::calibrate::MASK_MEMBERS`] members).
/// Patterns met once it is full are kept for their batch only.
pub const MASK_CACHE_PATTERNS: usize = 64;

/// Calibration sets recomputed for missingness patterns: those of one
/// batch, or (a model's, [`MASK_CACHE_PATTERNS`] at most) of every batch.
#[derive(Debug, Default)]
pub(crate) struct MaskCache {
    sets: Mutex<HashMap<Vec<bool>, Arc<MaskedCalibration>>>,
}

impl MaskCache {
    fn lookup(&self, mask: &[bool]) -> Option<Arc<MaskedCalibration>> {
        self.sets.lock().ok()?.get(mask).map(Arc::clone)
    }

    /// Keeps `set` for `mask` unless the cache holds `limit` patterns
    /// already; whether it is (now) kept.
    fn keep(&self, mask: &[bool], set: &Arc<MaskedCalibration>, limit: usize) -> bool {
        let Ok(mut sets) = self.sets.lock() else {
            return false;
        };
        if !sets.contains_key(mask) && sets.len() >= limit {
            return false;
        }
        sets.entry(mask.to_vec()).or_insert_with(|| Arc::clone(set));
        true
    }

    /// The set for `mask`: from this (the model's) cache, else from the
    /// batch's, else made and kept here while there is room, else in the
    /// batch's.
    fn get_or(
        &self,
        batch: &MaskCache,
        mask: &[bool],
        make: impl FnOnce() -> MaskedCalibration,
    ) -> Arc<MaskedCalibration> {
        if let Some(s) = self.lookup(mask).or_else(|| batch.lookup(mask)) {
            return s;
        }
        let made = Arc::new(make());
        if !self.keep(mask, &made, MASK_CACHE_PATTERNS) {
            batch.keep(mask, &made, usize::MAX);
        }
        made
    }
}

#[cfg(test)]
mod tests {
    use crate::calibrate::KeptMembers;
    use crate::model::Params;
    use crate::rng::SplitMix64;
    use crate::table::Table;

    /// `n` rows of 9 features: 6 continuous (two clusters), 3 integer-valued.
    fn cohort(n: usize, seed: u64) -> Table {
        let mut rng = SplitMix64::new(seed);
        let mut values = Vec::with_capacity(n * 9);
        for i in 0..n {
            let c = if i % 3 == 0 { 3.0 } else { 0.0 };
            for j in 0..6 {
                values.push(c + rng.normal() * (1.0 + j as f64 * 0.2));
            }
            for _ in 0..3 {
                values.push((rng.next_f64() * 3.0).floor());
            }
        }
        let ids = (0..n).map(|i| format!("r{i}")).collect();
        let names = (0..9).map(|j| format!("f{j}")).collect();
        Table::from_rows(ids, names, values).expect("a valid table")
    }

    /// The model keeps the calibration sets of the first
    /// `MASK_CACHE_PATTERNS` missingness patterns across calls, and
    /// patterns beyond them per batch: assessments are the same as a fresh
    /// model's, patient by patient, whatever the cache held before.
    #[test]
    fn kept_mask_sets_do_not_change_assessments() {
        let model = Params::default().k(7).fit(&cohort(900, 21)).expect("fit");
        let mut patients = cohort(260, 22);
        let p = patients.n_features();
        // Three missing features out of nine per patient, a pattern per
        // patient (84 distinct: more than the model keeps), some twice.
        let triples: Vec<[usize; 3]> = (0..p)
            .flat_map(|a| (a + 1..p).flat_map(move |b| (b + 1..p).map(move |c| [a, b, c])))
            .collect();
        assert!(triples.len() > super::MASK_CACHE_PATTERNS);
        for i in 0..patients.n_rows() {
            for &j in &triples[i % triples.len()] {
                patients.values[i * p + j] = f64::NAN;
            }
        }
        let first = model.assess(&patients).expect("assess");
        let kept = model.masks.sets.lock().map(|s| s.len()).unwrap_or(0);
        assert_eq!(kept, super::MASK_CACHE_PATTERNS);
        let again = model.assess(&patients).expect("assess");
        // A fresh model, its cache filled by other patterns first.
        let fresh = Params::default().k(7).fit(&cohort(900, 21)).expect("fit");
        let mut others = patients.clone();
        others.values.iter_mut().for_each(|v| {
            if v.is_nan() {
                *v = 0.5;
            }
        });
        for i in 0..others.n_rows() {
            others.values[i * p + i % p] = f64::NAN;
            others.values[i * p + (i + 4) % p] = f64::NAN;
        }
        fresh.assess(&others).expect("assess");
        for (i, (a, b)) in first.iter().zip(&again).enumerate() {
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "row {i}");
            let row = &patients.values[i * p..(i + 1) * p];
            let one = fresh
                .assess_one(&patients.ids[i], None, row, String::new())
                .expect("assess");
            assert_eq!(format!("{a:?}"), format!("{one:?}"), "row {i}");
        }
    }

    /// Patients searched in batches by blocked distance products get the
    /// assessments the k-d tree gives, bit for bit: near and far patients,
    /// patients with missing values and one with no values, under split
    /// and cross-conformal calibration.
    #[test]
    fn blocked_batches_assess_as_the_tree_does() {
        for n in [600, 2000] {
            let model = Params::default().k(7).fit(&cohort(n, 11)).expect("fit");
            let mut patients = cohort(400, 12);
            let mut rng = SplitMix64::new(5);
            let p = patients.n_features();
            for i in 0..patients.n_rows() {
                for j in 0..p {
                    let v = &mut patients.values[i * p + j];
                    match i % 5 {
                        1 => *v += 4.0 * rng.normal(),
                        2 if rng.next_f64() < 0.3 => *v = f64::NAN,
                        3 if i % 50 == 3 => *v = f64::NAN,
                        _ => {}
                    }
                }
            }
            let by_tree = model.assess(&patients).expect("assess");
            assert!(model.blocked.get().is_none(), "too few members to weigh");
            let ordered = crate::model::fit::locality_order(&model.exact);
            let blocked = crate::index::blocked::BlockedSearch::new(
                model.exact.points(),
                model.exact.dim(),
                &ordered,
            );
            assert!(blocked.is_some());
            model.blocked.set(blocked).expect("unset");
            let by_blocks = model.assess(&patients).expect("assess");
            assert!(
                by_tree
                    .iter()
                    .any(|a| a.verdict == crate::verdict::Verdict::Invisible)
            );
            for (a, b) in by_tree.iter().zip(&by_blocks) {
                // Debug formatting tells every f64 apart (NaN included).
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "n {n}");
            }
            let by_blocks_all = by_blocks;
            // With the densities of a sample of members, searched by blocks
            // alongside the reference: the sample's own index's densities.
            let mut data = model.data().clone();
            let members: Vec<u32> = (0..model.exact.len() as u32)
                .filter(|i| i % 4 != 1)
                .collect();
            let sample = crate::model::density_index(&model.exact, &members).expect("a sample");
            let (kdist, lrd) =
                crate::model::fit::densities_among(&sample, 7, &crate::model::NoProgress);
            data.reference.density_members = members;
            data.reference.kdist = kdist;
            data.reference.lrd = lrd;
            let sampled =
                crate::model::Model::from_data(data, &crate::model::NoProgress).expect("model");
            let by_tree = sampled.assess(&patients).expect("assess");
            let blocked = crate::index::blocked::BlockedSearch::new(
                sampled.exact.points(),
                sampled.exact.dim(),
                &ordered,
            );
            sampled.blocked.set(blocked).expect("unset");
            let by_blocks = sampled.assess(&patients).expect("assess");
            assert!(sampled.density_blocked.get().is_some_and(|d| d.is_some()));
            for ((a, b), c) in by_tree.iter().zip(&by_blocks).zip(&by_blocks_all) {
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "n {n}, sampled");
                assert_eq!(a.p_value.to_bits(), c.p_value.to_bits());
            }
        }
    }

    #[test]
    fn kept_surprisals_rescore_masked_members_bit_identically() {
        for n in [150, 700] {
            let model = Params::default().k(5).fit(&cohort(n, 7)).expect("fit");
            let cal = &model.data.calibration;
            let kept = KeptMembers::build(cal, |k| model.fold_scorer(k));
            assert!(kept.surprisals(0).is_some(), "the value channel is kept");
            let mut rng = SplitMix64::new(3);
            for _ in 0..20 {
                let mask: Vec<bool> = (0..9).map(|_| rng.next_f64() >= 0.4).collect();
                let with = cal.masked(&mask, |k| model.fold_scorer(k), 19, Some(&kept));
                let without = cal.masked(&mask, |k| model.fold_scorer(k), 19, None);
                // Debug formatting tells every f64 apart (NaN included).
                assert_eq!(format!("{with:?}"), format!("{without:?}"), "mask {mask:?}");
            }
        }
    }
}
