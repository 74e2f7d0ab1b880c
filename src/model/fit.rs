//! Fitting: project, calibrate, index — three linfa-style stages
//! ([`ProjectionParams`], [`CalibrationParams`], [`IndexParams`]).

use rayon::prelude::*;

use super::{
    ComponentChoice, IndexCheck, Model, ModelData, NoProgress, Params, Progress, ReferenceSet,
    leading,
};
use crate::calibrate::{
    Calibration, CalibrationMember, CalibrationSet, Channel, ChannelScores, ChannelSpec,
    ChannelState, FoldModel, FoldScorer, MASK_MEMBERS, MaskedMembers, Scheme, Scorer,
};
use crate::error::{Error, Position, Result};
use crate::index::blocked::{BlockedSearch, QUERY_BLOCK};
use crate::index::{ExactIndex, HnswIndex, IndexKind, Neighbour, check};
use crate::model::IndexChoice;
use crate::project::{self, ComponentRule, Projector};
use crate::score::{KnnStatistic, knn_statistic, local_reachability};
use crate::standardise::{ColumnStats, Standardiser};

use crate::table::Table;
use crate::table::blocks::{self, Blocks};
use crate::verdict::Verdict;

impl Params {
    /// Fits a model on a reference cohort.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidParam`] for bad parameters,
    /// [`crate::ErrorKind::Schema`] when the reference has fewer than `k + 2`
    /// rows or no usable feature, [`crate::ErrorKind::FeatureDisabled`] for
    /// [`IndexChoice::Hnsw`] in a build without the `hnsw` cargo feature.
    ///
    /// # Examples
    /// ```
    /// use nof1::{Params, Table};
    /// let mut values = Vec::new();
    /// for i in 0..60 {
    ///     let t = i as f64 / 10.0;
    ///     values.extend_from_slice(&[t.sin(), t.cos(), (i % 7) as f64]);
    /// }
    /// let ids = (0..60).map(|i| format!("r{i}")).collect();
    /// let names = vec!["a".into(), "b".into(), "c".into()];
    /// let reference = Table::from_rows(ids, names, values)?;
    /// let model = Params::default().k(5).fit(&reference)?;
    /// assert_eq!(model.reference().len(), 60);
    /// # Ok::<(), nof1::Error>(())
    /// ```
    pub fn fit(&self, reference: &Table) -> Result<Model> {
        self.fit_with_progress(reference, &NoProgress)
    }

    /// As [`Params::fit`], reporting progress.
    ///
    /// # Errors
    /// As [`Params::fit`].
    pub fn fit_with_progress(&self, reference: &Table, progress: &dyn Progress) -> Result<Model> {
        // The same model for any number of threads.
        let _sequential = crate::cpu::SequentialFaer::new();
        self.check()?;
        IndexParams::from(self).check_available()?;
        let input = Input::prepare(self, reference)?;
        let plan = Plan::new(self, &input);
        let calibration_params = CalibrationParams::from(self)
            .with_channels(input.channel_spec(self), input.projected_blocks());
        // The folds' preparation (or, under split conformal, the training
        // rows' value supports) needs no projection: made alongside it.
        let (projection, (prep, split_values)) = rayon::join(
            || {
                ProjectionParams::from(self)
                    .with_blocks(input.projected_blocks())
                    .fit(
                        &input.projected,
                        input.active.len(),
                        &plan.train,
                        &plan.train_by_id,
                        progress,
                    )
            },
            || match plan.scheme {
                Scheme::CrossConformal => {
                    (Some(calibration_params.prepare_folds(&input, &plan)), None)
                }
                Scheme::Split => (
                    None,
                    calibration_params.channels.value.then(|| {
                        crate::marginal::Marginals::fit(&input.values, input.p, &plan.train)
                    }),
                ),
            },
        );
        let projection = projection?;
        let projection = input.expand(projection);
        let embeddings = std::sync::Arc::new(embed_rows(
            &projection.projector,
            &input.values,
            &plan.train,
        ));
        let (c, knn_c) = (
            projection.choice.n_components,
            projection.choice.knn_components,
        );
        let exact = ExactIndex::new(super::shared_leading(&embeddings, c, knn_c), knn_c);
        // Members in locality order, and their blocked search when it is
        // faster than the tree (for the calibration and the densities).
        let ordered = locality_order(&exact);
        let groups = Groups::of(reference);
        let mut warnings = input.warnings.clone();
        // What one member's exact search looks at, counted on seeded
        // members: it chooses the index (auto) and the density members.
        let search_cost = member_search_cost(&exact, self.k, &plan);
        let index_params = IndexParams::from(self);
        let kind = index_params.kind(exact.len(), search_cost, plan.scheme);
        let density_members = density_members(exact.len(), search_cost, &plan);
        // Nothing searches every member exactly when the graph scores the
        // calibration and the densities are a sample's.
        let blocked = if kind == IndexKind::Graph
            && plan.scheme == Scheme::Split
            && density_members.len() < exact.len()
        {
            None
        } else {
            blocked_search_if_faster(&exact, self.k, &ordered)
        };
        // Reference densities: each density member's k nearest other
        // density members, once (every member, unless each one's search
        // costs too much: then a seeded sample).
        let (kdist, lrd) = match super::density_index(&exact, &density_members) {
            None => member_densities(&exact, self.k, &ordered, blocked.as_ref(), progress),
            Some(sample) => densities_among(&sample, self.k, progress),
        };
        // nof1's own graph is built before calibration: calibration members
        // are scored by the same graph search as patients.
        let own_graph = match kind {
            IndexKind::Graph => Some(index_params.build_graph(
                &exact,
                held_out_probes(&input, &projection, &plan, exact.dim()),
                super::far_beyond(kind, &kdist),
                &mut warnings,
                progress,
            )),
            _ => None,
        };
        let calibration = calibration_params.fit(
            &input,
            &plan,
            &projection,
            &exact,
            blocked.as_ref(),
            own_graph.as_ref().map(|(g, _)| g),
            &groups,
            prep,
            split_values,
            &mut warnings,
            progress,
        )?;
        let (support_radius, group_support_radius) = support_radii(self, &calibration);
        let mut params = self.clone();
        let built = match own_graph {
            Some((graph, check)) => BuiltIndex {
                kind,
                ef_search: graph.params().ef_search,
                graph: Some(graph),
                check: Some(check),
            },
            None => index_params.build(
                kind,
                &exact,
                &calibration,
                &input,
                &projection,
                &mut warnings,
                progress,
            )?,
        };
        params.hnsw.ef_search = built.ef_search;
        let support = self.value_channel.then(|| {
            // Under split conformal the one fold model was fitted on the
            // same training rows: its supports are the model's.
            calibration
                .folds
                .first()
                .filter(|_| plan.scheme == Scheme::Split)
                .and_then(|fold| fold.state.extra.value.clone())
                .unwrap_or_else(|| {
                    crate::marginal::Marginals::fit(&input.values, input.p, &plan.train)
                })
        });
        let data = ModelData {
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            created: created_timestamp(),
            params,
            features: input.features,
            dropped_features: input.dropped,
            projector: projection.projector,
            components: projection.choice,
            reference: ReferenceSet {
                ids: plan.train.iter().map(|&r| &reference.ids[r]).collect(),
                group_names: groups.names,
                groups: groups
                    .codes
                    .map(|g| plan.train.iter().map(|&r| g[r]).collect()),
                embeddings,
                density_members,
                kdist,
                lrd,
            },
            calibration,
            support_radius,
            group_support_radius,
            index_kind: built.kind,
            index_check: built.check,
            warnings,
            variants: None,
            support,
        };
        let folds = super::fold_indexes(&data.calibration);
        Ok(Model {
            data,
            exact,
            hnsw: built.graph,
            density: None,
            folds,
            blocked: std::sync::OnceLock::new(),
            density_blocked: std::sync::OnceLock::new(),
            masks: super::assess::MaskCache::default(),
        })
    }
}

/// The reference as fit uses it: the kept features, their values and the
/// warnings raised while choosing them.
struct Input<'a> {
    /// Every kept column (model feature order), row-major.
    values: std::borrow::Cow<'a, [f64]>,
    p: usize,
    n: usize,
    features: Vec<String>,
    dropped: Vec<String>,
    ids: &'a [String],
    warnings: Vec<String>,
    /// Model features that enter the projection (they vary in the
    /// reference), ascending; the others are constant and kept for the
    /// value channel only.
    active: Vec<usize>,
    /// The active columns, row-major (the projection is fitted on them).
    projected: std::borrow::Cow<'a, [f64]>,
    /// Mean of every kept column (the centre of the inactive ones).
    mean: Vec<f64>,
    /// Feature blocks over the model features.
    blocks: Option<Blocks>,
}

impl<'a> Input<'a> {
    fn prepare(params: &Params, reference: &'a Table) -> Result<Input<'a>> {
        let n = reference.n_rows();
        let k = params.k;
        if n < k + 2 {
            return Err(Error::schema(
                Position::file(&reference.source),
                format!(
                    "the reference has {n} rows; at least k + 2 = {} are needed",
                    k + 2
                ),
            ));
        }
        let mut warnings = Vec::new();
        let p_all = reference.n_features();
        let stats = ColumnStats::compute(&reference.values, p_all, 0..n);
        for (j, name) in reference.feature_names.iter().enumerate() {
            if stats.n_observed[j] > 1 && !(stats.sd[j] * stats.sd[j]).is_finite() {
                return Err(Error::schema(
                    Position::cell(&reference.source, 1, name.clone()),
                    "values too large to standardise (the variance overflows)",
                ));
            }
        }
        // Constant columns stay in the model as part of what the reference
        // has shown (the value channel scores them) but not in the
        // projection; empty ones are dropped. Without the value channel,
        // constant columns are dropped too.
        let empty = |j: usize| stats.n_observed[j] == 0;
        let keep = |j: usize| {
            if params.value_channel {
                !empty(j)
            } else {
                !stats.is_constant(j)
            }
        };
        let kept: Vec<usize> = (0..p_all).filter(|&j| keep(j)).collect();
        let dropped: Vec<String> = (0..p_all)
            .filter(|&j| !keep(j))
            .map(|j| reference.feature_names[j].clone())
            .collect();
        if !dropped.is_empty() {
            warnings.push(format!(
                "{}: dropped {} {} column(s): {}",
                reference.source.display(),
                dropped.len(),
                if params.value_channel {
                    "empty"
                } else {
                    "constant or empty"
                },
                preview(&dropped)
            ));
        }
        let active: Vec<usize> = (0..kept.len())
            .filter(|&i| !stats.is_constant(kept[i]))
            .collect();
        let constant: Vec<String> = kept
            .iter()
            .filter(|&&j| stats.is_constant(j))
            .map(|&j| reference.feature_names[j].clone())
            .collect();
        if !constant.is_empty() {
            warnings.push(format!(
                "{}: {} constant column(s) kept for the value channel, not projected: {}",
                reference.source.display(),
                constant.len(),
                preview(&constant)
            ));
        }
        if active.is_empty() {
            return Err(Error::schema(
                Position::file(&reference.source),
                "no usable feature: every feature column is constant or empty",
            ));
        }
        let p = kept.len();
        let features: Vec<String> = kept
            .iter()
            .map(|&j| reference.feature_names[j].clone())
            .collect();
        let mean: Vec<f64> = kept.iter().map(|&j| stats.mean[j]).collect();
        // Borrow the table's values unless a column was dropped (saves a copy
        // of the whole reference: 147 MiB at 200,000 × 96).
        let select = |cols: &[usize]| -> std::borrow::Cow<'a, [f64]> {
            if cols.len() == p_all {
                std::borrow::Cow::Borrowed(&reference.values[..])
            } else {
                let mut v = Vec::with_capacity(n * cols.len());
                for i in 0..n {
                    let row = reference.row(i);
                    v.extend(cols.iter().map(|&j| row[j]));
                }
                std::borrow::Cow::Owned(v)
            }
        };
        let values = select(&kept);
        let active_cols: Vec<usize> = active.iter().map(|&i| kept[i]).collect();
        let projected = select(&active_cols);
        let blocks = match &params.blocks {
            Some(spec) => {
                let in_projection: Vec<bool> =
                    (0..p).map(|i| active.binary_search(&i).is_ok()).collect();
                Some(spec.resolve(&reference.feature_names, &features, &in_projection)?)
            }
            None => None,
        };
        let sparse_rows = (0..n)
            .filter(|&i| {
                let obs = values[i * p..(i + 1) * p]
                    .iter()
                    .filter(|v| !v.is_nan())
                    .count();
                (obs as f64) < params.min_coverage * p as f64
            })
            .count();
        if sparse_rows > 0 {
            warnings.push(format!(
                "{}: {sparse_rows} reference row(s) observe fewer than {:.0}% of the features",
                reference.source.display(),
                params.min_coverage * 100.0
            ));
        }
        Ok(Input {
            values,
            p,
            n,
            features,
            dropped,
            ids: &reference.ids,
            warnings,
            active,
            projected,
            mean,
            blocks,
        })
    }

    fn row(&self, r: usize) -> &[f64] {
        &self.values[r * self.p..(r + 1) * self.p]
    }

    /// The blocks of the projected features.
    fn projected_blocks(&self) -> Option<Blocks> {
        self.blocks.as_ref().map(|b| b.restrict(&self.active))
    }

    /// A projection fitted on the active columns, extended to every model
    /// feature (constant ones inactive).
    fn expand(&self, mut projection: Projection) -> Projection {
        if self.active.len() < self.p {
            projection.projector = projection
                .projector
                .expand(&self.active, self.p, &self.mean);
        }
        projection
    }

    /// The loadings of `projector` (fitted on every model feature) on the
    /// active features, row-major.
    fn active_loadings(&self, projector: &Projector) -> Vec<f64> {
        let c = projector.n_components;
        self.active
            .iter()
            .flat_map(|&j| projector.loadings[j * c..(j + 1) * c].iter().copied())
            .collect()
    }

    /// The optional channels the model fits.
    fn channel_spec(&self, params: &Params) -> ChannelSpec {
        ChannelSpec {
            value: params.value_channel,
            blocks: self.blocks.clone(),
        }
    }
}

/// Which rows train the model and which calibrate it (docs/method.md §4).
struct Plan {
    scheme: Scheme,
    /// Rows in the seeded id order.
    by_id: Vec<usize>,
    /// Rows the model's projection and index are fitted on, ascending.
    train: Vec<usize>,
    /// The same rows in id order.
    train_by_id: Vec<usize>,
    /// Calibration members, in calibration (id) order.
    scored: Vec<usize>,
    /// Cross-conformal: number of folds (member at position `i` of `scored`
    /// is in fold `i % folds`).
    folds: usize,
}

impl Plan {
    fn new(params: &Params, input: &Input<'_>) -> Plan {
        let (n, p, k) = (input.n, input.p, params.k);
        let by_id = crate::rng::id_order(input.ids, params.seed);
        if n >= LARGE_COHORT_MIN && n >= LARGE_COHORT_RATIO * p {
            let m = params.calibration_size.min(n / 5);
            let scored = by_id[..m].to_vec();
            let train_by_id = by_id[m..].to_vec();
            let mut train = train_by_id.clone();
            train.sort_unstable();
            return Plan {
                scheme: Scheme::Split,
                by_id,
                train,
                train_by_id,
                scored,
                folds: 1,
            };
        }
        let m = params.calibration_size.min(n);
        // Every fold model is trained without its fold and keeps at least
        // k + 2 rows (its members are scored among k + 1 others); at most m folds.
        let mut folds = params.folds.min(m).max(2);
        while folds < m && n.saturating_sub(m.div_ceil(folds)) < k + 2 {
            folds += 1;
        }
        Plan {
            scheme: Scheme::CrossConformal,
            train: (0..n).collect(),
            train_by_id: by_id.clone(),
            scored: by_id[..m].to_vec(),
            by_id,
            folds,
        }
    }
}

/// Group names (sorted) and each reference row's code.
struct Groups {
    names: Vec<String>,
    codes: Option<Vec<u32>>,
}

impl Groups {
    fn of(reference: &Table) -> Groups {
        match &reference.groups {
            Some(g) => {
                let mut names: Vec<String> = g.clone();
                names.sort();
                names.dedup();
                let codes: Vec<u32> = g
                    .iter()
                    .map(|x| names.binary_search(x).map_or(0, |i| i as u32))
                    .collect();
                Groups {
                    names,
                    codes: Some(codes),
                }
            }
            None => Groups {
                names: Vec::new(),
                codes: None,
            },
        }
    }
}

/// Stage 1 of fit: standardise and project, choosing the components
/// (docs/method.md §1–2). Fit on the model's training rows and, under
/// cross-conformal calibration, on each fold's.
#[derive(Debug, Clone)]
pub struct ProjectionParams {
    /// The component rule.
    pub components: ComponentRule,
    /// Cap on the number of components.
    pub max_components: usize,
    /// Seed of parallel analysis.
    pub seed: u64,
    /// Feature blocks of the projected features: each standardised block is
    /// divided by its first singular value on the rows fitted (MFA).
    pub blocks: Option<Blocks>,
}

impl From<&Params> for ProjectionParams {
    fn from(p: &Params) -> Self {
        ProjectionParams {
            components: p.components,
            max_components: p.max_components,
            seed: p.seed,
            blocks: None,
        }
    }
}

/// A fitted projection and how its components were chosen.
#[derive(Debug, Clone)]
pub struct Projection {
    /// Standardise + project.
    pub projector: Projector,
    /// The component choice.
    pub choice: ComponentChoice,
    /// Each block's first eigenvalue on the rows fitted (empty without blocks).
    pub block_eigenvalues: Vec<f64>,
}

impl ProjectionParams {
    /// The same parameters with MFA block weights over `blocks` (blocks of
    /// the projected features).
    pub fn with_blocks(mut self, blocks: Option<Blocks>) -> Self {
        self.blocks = blocks;
        self
    }

    /// The standardisation of `rows` and, with blocks, its MFA weighting:
    /// each block divided by its first singular value on these rows (the
    /// blocks' first eigenvalues are returned; empty without blocks).
    fn standardise(&self, values: &[f64], p: usize, rows: &[usize]) -> (Standardiser, Vec<f64>) {
        let standardiser = Standardiser::fit(values, p, rows.iter().copied());
        match &self.blocks {
            Some(b) => {
                let eig = blocks::mfa_eigenvalues(
                    values,
                    p,
                    rows,
                    standardiser.mean(),
                    standardiser.scale(),
                    b,
                );
                let w = b.feature_weights(&eig);
                (standardiser.weighted(&w), eig)
            }
            None => (standardiser, Vec::new()),
        }
    }

    /// A cross-conformal fold's projection on a wide reference: the
    /// standardisation, MFA weights and loadings are fitted on the fold's
    /// training rows `train`, through `fold_pca` (the training part's
    /// covariance downdated from the whole reference's, leading components
    /// by subspace iteration), keeping the component counts of `whole` (the
    /// projection of the whole reference) instead of rerunning the
    /// component rule, whose null spectra cost a full eigendecomposition
    /// each (docs/method.md §4, docs/performance.md).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Numerical`] when an eigendecomposition fails.
    pub fn fit_fold_keeping_components(
        &self,
        values: &[f64],
        p: usize,
        train: &[usize],
        whole: &ComponentChoice,
        fold_pca: &project::FoldPca<'_>,
    ) -> Result<Projection> {
        let (standardiser, block_eigenvalues) = self.standardise(values, p, train);
        let c = whole.n_components.clamp(1, p);
        let pca = fold_pca.fit(train, standardiser.mean(), standardiser.scale(), c)?;
        let c = c.min(pca.n_loadings.max(1));
        let knn_c = whole.knn_components.clamp(1, c);
        let projector = Projector::new(
            standardiser,
            take_columns(&pca.loadings, p, pca.n_loadings, c),
            c,
        );
        Ok(Projection {
            projector,
            choice: ComponentChoice {
                n_components: c,
                knn_components: knn_c,
                eigenvalues: pca.eigenvalues,
                null_eigenvalues: Vec::new(),
                ..whole.clone()
            },
            block_eigenvalues,
        })
    }

    /// Fits the standardisation and the projection on `rows` (ascending) of
    /// `values` (row-major, `p` columns); `by_id` lists the same rows in the
    /// seeded id order (parallel analysis subsamples its first rows).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Numerical`] when an eigendecomposition fails.
    pub fn fit(
        &self,
        values: &[f64],
        p: usize,
        rows: &[usize],
        by_id: &[usize],
        progress: &dyn Progress,
    ) -> Result<Projection> {
        progress.start("projecting", 4);
        let n = rows.len();
        let (standardiser, block_eigenvalues) = self.standardise(values, p, rows);
        let max_c = self.max_components.min(p).min(n.saturating_sub(1)).max(1);
        let needs_pa = matches!(
            self.components,
            ComponentRule::Auto | ComponentRule::ParallelAnalysis
        );
        // The reference's spectrum and the parallel-analysis null are
        // independent: computed side by side (a wide reference's
        // eigendecompositions are partly sequential).
        let (spectrum, null_eigenvalues) = rayon::join(
            || {
                project::Spectrum::fit(
                    project::StandardisedRows {
                        values,
                        p,
                        rows,
                        mean: standardiser.mean(),
                        scale: standardiser.scale(),
                    },
                    max_c,
                    self.seed,
                )
            },
            || {
                if needs_pa {
                    project::parallel_analysis_null(
                        project::StandardisedRows {
                            values,
                            p,
                            rows: by_id,
                            mean: standardiser.mean(),
                            scale: standardiser.scale(),
                        },
                        self.seed,
                    )
                } else {
                    Ok(Vec::new())
                }
            },
        );
        let (spectrum, null_eigenvalues) = (spectrum?, null_eigenvalues?);
        progress.advance(2);
        let eigenvalues = spectrum.eigenvalues();
        let n_parallel = if needs_pa {
            project::n_for_parallel_analysis(eigenvalues, &null_eigenvalues)
        } else {
            0
        };
        let variance_fraction = match self.components {
            ComponentRule::Variance(f) => f,
            _ => project::AUTO_VARIANCE,
        };
        let n_variance = project::n_for_variance(eigenvalues, variance_fraction);
        let total: f64 = eigenvalues.iter().sum();
        let explained_by = |c: usize| {
            if total > 0.0 {
                eigenvalues[..c.min(p)].iter().sum::<f64>() / total
            } else {
                1.0
            }
        };
        // The discarded spectrum is a noise floor if it is as flat as either
        // null: permuted data (equal noise variances) or permuted residuals
        // (each feature's own noise variance).
        // Loadings as far as the residual null needs them (a wide
        // reference's are computed here, not with the eigenvalues).
        let mut pca = spectrum.loadings(if needs_pa { n_parallel.min(max_c) } else { 1 })?;
        let noise_likeness = if needs_pa {
            let homoscedastic = project::noise_likeness(eigenvalues, &null_eigenvalues, n_parallel);
            let sample = project::StandardisedRows {
                values,
                p,
                rows: by_id,
                mean: standardiser.mean(),
                scale: standardiser.scale(),
            };
            let null = project::residual_null_flatness(sample, &pca, n_parallel, self.seed)?;
            let heteroscedastic = if null > 0.0 && n_parallel < p {
                project::spectral_flatness(&eigenvalues[n_parallel..]) / null
            } else {
                0.0
            };
            // Rescaled so that one threshold serves both nulls.
            homoscedastic
                .max(heteroscedastic * project::NOISE_FLATNESS / project::NOISE_FLATNESS_RESIDUAL)
        } else {
            0.0
        };
        progress.advance(1);
        let (c, knn_c) = match self.components {
            ComponentRule::Auto => {
                if noise_likeness >= project::NOISE_FLATNESS {
                    (n_parallel, n_parallel)
                } else {
                    let c = n_variance.max(n_parallel);
                    (c, c)
                }
            }
            ComponentRule::ParallelAnalysis => (n_parallel, n_parallel),
            ComponentRule::Variance(_) => (n_variance, n_variance),
            ComponentRule::Fixed(c) => (c, c),
        };
        let c = c.clamp(1, spectrum.loadings_available(max_c));
        if c > pca.n_loadings {
            pca = spectrum.loadings(c)?;
        }
        let knn_c = knn_c.clamp(1, c);
        let explained = explained_by(c);
        let projector = Projector::new(
            standardiser,
            take_columns(&pca.loadings, p, pca.n_loadings, c),
            c,
        );
        progress.advance(1);
        progress.finish();
        Ok(Projection {
            projector,
            choice: ComponentChoice {
                rule: self.components,
                n_components: c,
                knn_components: knn_c,
                n_parallel,
                n_variance,
                noise_likeness,
                eigenvalues: pca.eigenvalues,
                null_eigenvalues,
                explained,
            },
            block_eigenvalues,
        })
    }
}

/// The cross-conformal folds' preparation ([`CalibrationParams::prepare_folds`]).
struct FoldPrep<'a> {
    /// Each reference row's fold (`usize::MAX`: not a calibration member).
    fold_of: Vec<usize>,
    /// Each fold's training rows, ascending.
    trains: Vec<Vec<usize>>,
    /// Each fold's value-channel supports (empty without the value channel).
    fold_values: Vec<crate::marginal::Marginals>,
    /// The fold PCAs.
    fold_pca: project::FoldPca<'a>,
}

/// Stage 2 of fit: the calibration (docs/method.md §4–7).
#[derive(Debug, Clone)]
pub struct CalibrationParams {
    projection: ProjectionParams,
    channels: ChannelSpec,
    k: usize,
    statistic: KnnStatistic,
    alpha: f64,
    calibrate_by_group: bool,
}

impl From<&Params> for CalibrationParams {
    fn from(p: &Params) -> Self {
        CalibrationParams {
            projection: ProjectionParams::from(p),
            channels: ChannelSpec::default(),
            k: p.k,
            statistic: p.knn_statistic,
            alpha: p.alpha,
            calibrate_by_group: p.calibrate_by_group,
        }
    }
}

impl CalibrationParams {
    /// The same parameters scoring the optional channels of `spec`, every
    /// fold's projection weighted by `projected_blocks` (the blocks of the
    /// projected features) when given.
    pub fn with_channels(mut self, spec: ChannelSpec, projected_blocks: Option<Blocks>) -> Self {
        self.channels = spec;
        self.projection.blocks = projected_blocks;
        self
    }

    /// Fewest members a group needs for its own calibration.
    fn min_group(&self) -> usize {
        ((1.0 / self.alpha).ceil() as usize)
            .saturating_sub(1)
            .max(1)
    }

    fn scorer<'a>(&self, model: &'a FoldModel, index: &'a ExactIndex) -> FoldScorer<'a> {
        FoldScorer {
            model,
            index,
            k: self.k,
            statistic: self.statistic,
        }
    }

    /// The tail transforms of a fold model: its first [`tune_members`]
    /// training members in id order, each scored with itself left out of the search.
    /// A symmetric function of the training rows (docs/method.md §5).
    #[allow(clippy::too_many_arguments)]
    fn fit_scorer(
        &self,
        input: &Input<'_>,
        train: &[usize],
        train_by_id: &[usize],
        fold: &FoldModel,
        index: &ExactIndex,
        blocked: Option<&BlockedSearch>,
        graph: Option<&HnswIndex>,
        progress: &dyn Progress,
    ) -> Scorer {
        let tune: Vec<usize> = train_by_id
            .iter()
            .take(tune_members(input.p))
            .copied()
            .collect();
        let scorer = FoldScorer {
            model: fold,
            index,
            k: self.k,
            statistic: self.statistic,
        };
        let chunk_len = members_per_chunk(graph, blocked);
        let scores: Vec<Vec<f64>> = tune
            .par_chunks(chunk_len)
            .flat_map_iter(|chunk| {
                progress.advance(0);
                let rows: Vec<(&[f64], Option<u32>)> = chunk
                    .iter()
                    .map(|&r| {
                        let at = train.binary_search(&r).ok().map(|i| i as u32);
                        (input.row(r), at)
                    })
                    .collect();
                score_members(&scorer, &rows, graph, blocked)
                    .into_iter()
                    .map(|s| s.scores)
            })
            .collect();
        Scorer::fit(fold.state.channels(), &scores)
    }

    /// What the cross-conformal folds need before the projection is known:
    /// each member's fold, each fold's training rows, their value-channel
    /// supports (each column sorted once for all folds: the same supports as
    /// fold by fold) and, for wide references, the cross-products the fold
    /// covariances are downdated from. Fit prepares it while the projection
    /// is fitted.
    fn prepare_folds<'a>(&self, input: &'a Input<'_>, plan: &Plan) -> FoldPrep<'a> {
        let kf = plan.folds.max(1);
        let mut fold_of = vec![usize::MAX; input.n];
        for (pos, &r) in plan.scored.iter().enumerate() {
            fold_of[r] = pos % kf;
        }
        let trains: Vec<Vec<usize>> = (0..kf)
            .map(|f| (0..input.n).filter(|&r| fold_of[r] != f).collect())
            .collect();
        let (fold_values, fold_pca) = rayon::join(
            || {
                if self.channels.value {
                    crate::marginal::Marginals::fit_many(&input.values, input.p, &trains)
                } else {
                    Vec::new()
                }
            },
            // Wide references: fold covariances downdated from the whole
            // one, component counts kept (see fit_fold_keeping_components).
            || {
                project::FoldPca::new(
                    &input.projected,
                    input.active.len(),
                    input.n,
                    self.projection.seed,
                )
            },
        );
        FoldPrep {
            fold_of,
            trains,
            fold_values,
            fold_pca,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn fit(
        &self,
        input: &Input<'_>,
        plan: &Plan,
        projection: &Projection,
        exact: &ExactIndex,
        blocked: Option<&BlockedSearch>,
        graph: Option<&HnswIndex>,
        groups: &Groups,
        prep: Option<FoldPrep<'_>>,
        split_values: Option<crate::marginal::Marginals>,
        warnings: &mut Vec<String>,
        progress: &dyn Progress,
    ) -> Result<Calibration> {
        let (values, p) = (&input.values[..], input.p);
        let scorer_of = |fold, index| self.scorer(fold, index);
        let group_of = |r: usize| groups.codes.as_ref().map(|g| g[r]);
        let (folds, mut members, method) = match plan.scheme {
            Scheme::Split => {
                let state = ChannelState::fit(
                    &self.channels,
                    values,
                    p,
                    &plan.train,
                    &projection.projector,
                    &projection.block_eigenvalues,
                    block_components(&projection.choice),
                    split_values,
                );
                let mut fold = FoldModel {
                    projector: projection.projector.clone(),
                    search_dims: exact.dim(),
                    points: Vec::new(),
                    scorer: Scorer::fit(state.channels(), &[]),
                    state,
                };
                progress.start("calibrating (split conformal)", plan.scored.len() as u64);
                fold.scorer = self.fit_scorer(
                    input,
                    &plan.train,
                    &plan.train_by_id,
                    &fold,
                    exact,
                    blocked,
                    graph,
                    progress,
                );
                let chunk_len = members_per_chunk(graph, blocked);
                let members: Vec<CalibrationMember> = plan
                    .scored
                    .par_chunks(chunk_len)
                    .flat_map_iter(|chunk| {
                        progress.advance(chunk.len() as u64);
                        let rows: Vec<(&[f64], Option<u32>)> =
                            chunk.iter().map(|&r| (input.row(r), None)).collect();
                        let scorer = scorer_of(&fold, exact);
                        let scored = score_members(&scorer, &rows, graph, blocked);
                        chunk.iter().zip(scored).map(|(&r, s)| CalibrationMember {
                            row: r as u32,
                            fold: 0,
                            group: group_of(r),
                            scores: s.scores,
                            novelty: s.novelty,
                        })
                    })
                    .collect();
                progress.finish();
                let method = format!(
                    "split conformal: {} calibration members held out of {} (the projection and index use the other {})",
                    plan.scored.len(),
                    input.n,
                    plan.train.len()
                );
                (vec![fold], members, method)
            }
            Scheme::CrossConformal => {
                let kf = plan.folds;
                let m = plan.scored.len();
                let mut folds = Vec::with_capacity(kf);
                let mut members = Vec::with_capacity(m);
                progress.start("cross-conformal folds", kf as u64);
                let FoldPrep {
                    fold_of,
                    trains,
                    fold_values,
                    fold_pca,
                } = match prep {
                    Some(prep) => prep,
                    None => self.prepare_folds(input, plan),
                };
                let fold_values: Vec<std::sync::Mutex<Option<crate::marginal::Marginals>>> =
                    fold_values
                        .into_iter()
                        .map(|m| std::sync::Mutex::new(Some(m)))
                        .collect();
                let fold_pca = fold_pca.starting_from(
                    input.active_loadings(&projection.projector),
                    projection.projector.n_components,
                );
                // One fold model fitted, and its held-out members scored.
                let fit_fold = |f: usize| -> Result<(FoldModel, Vec<CalibrationMember>)> {
                    let train = &trains[f];
                    let train_by_id: Vec<usize> = plan
                        .by_id
                        .iter()
                        .copied()
                        .filter(|&r| fold_of[r] != f)
                        .collect();
                    progress.advance(0);
                    let proj = if fold_pca.is_downdated() {
                        self.projection.fit_fold_keeping_components(
                            &input.projected,
                            input.active.len(),
                            train,
                            &projection.choice,
                            &fold_pca,
                        )?
                    } else {
                        self.projection.fit(
                            &input.projected,
                            input.active.len(),
                            train,
                            &train_by_id,
                            &NoProgress,
                        )?
                    };
                    let proj = input.expand(proj);
                    progress.advance(0);
                    let (c, dims) = (proj.choice.n_components, proj.choice.knn_components);
                    let points = leading(&embed_rows(&proj.projector, values, train), c, dims);
                    let index = ExactIndex::new(points.clone(), dims);
                    let value = fold_values
                        .get(f)
                        .and_then(|m| m.lock().ok().and_then(|mut m| m.take()));
                    let state = ChannelState::fit(
                        &self.channels,
                        values,
                        p,
                        train,
                        &proj.projector,
                        &proj.block_eigenvalues,
                        block_components(&proj.choice),
                        value,
                    );
                    let mut fold = FoldModel {
                        projector: proj.projector,
                        search_dims: dims,
                        points,
                        scorer: Scorer::fit(state.channels(), &[]),
                        state,
                    };
                    let rows_of = |g: usize| -> Vec<usize> {
                        (0..m)
                            .filter(|pos| pos % kf == g)
                            .map(|pos| plan.scored[pos])
                            .collect()
                    };
                    fold.scorer = self.fit_scorer(
                        input,
                        train,
                        &train_by_id,
                        &fold,
                        &index,
                        None,
                        None,
                        progress,
                    );
                    let sc = self.scorer(&fold, &index);
                    let mine: Vec<CalibrationMember> = rows_of(f)
                        .par_chunks(PROGRESS_EVERY)
                        .flat_map_iter(|chunk| {
                            progress.advance(0);
                            let rows: Vec<(&[f64], Option<u32>)> =
                                chunk.iter().map(|&r| (input.row(r), None)).collect();
                            let scored = sc.score_rows_skipping(&rows);
                            chunk.iter().zip(scored).map(|(&r, s)| CalibrationMember {
                                row: r as u32,
                                fold: f as u32,
                                group: group_of(r),
                                scores: s.scores,
                                novelty: s.novelty,
                            })
                        })
                        .collect();
                    Ok((fold, mine))
                };
                // As many folds at once as there are threads (each fold's own
                // steps are partly sequential: its eigensolver, its sorts),
                // no more, so that memory holds that many fold covariances.
                let batch = rayon::current_num_threads().max(1);
                let order: Vec<usize> = (0..kf).collect();
                for fs in order.chunks(batch) {
                    let fitted: Vec<Result<(FoldModel, Vec<CalibrationMember>)>> =
                        fs.par_iter().map(|&f| fit_fold(f)).collect();
                    for one in fitted {
                        let (fold, mine) = one?;
                        members.extend(mine);
                        folds.push(fold);
                        progress.advance(1);
                    }
                }
                progress.finish();
                // Calibration order: the members' id order.
                let pos_of: std::collections::HashMap<u32, usize> = plan
                    .scored
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| (r as u32, i))
                    .collect();
                members.sort_by_key(|m| pos_of.get(&m.row).copied().unwrap_or(usize::MAX));
                let method = format!("{kf}-fold cross-conformal on {m} of {} members", input.n);
                (folds, members, method)
            }
        };
        // Members the fold model could not score (no observed feature) are
        // left out: which rows they are depends on missingness only.
        let before = members.len();
        members.retain(|m| m.novelty.is_finite());
        if members.len() < before {
            warnings.push(format!(
                "{} calibration member(s) could not be scored (no observed feature, or a non-finite score) and were left out",
                before - members.len()
            ));
        }
        if members.is_empty() {
            return Err(Error::from(crate::ErrorKind::Numerical(
                "no calibration member could be scored".into(),
            )));
        }
        let n_folds = folds.len();
        let n_channels = folds.first().map_or(0, |f| f.state.channels().len());
        let pooled = CalibrationSet::new(&members, n_folds, n_channels);
        let by_group = if self.calibrate_by_group {
            if groups.codes.is_none() {
                return Err(Error::param(
                    "calibrate_by_group",
                    "needs a group column in the reference",
                ));
            }
            let min_size = self.min_group();
            let mut out = Vec::with_capacity(groups.names.len());
            for (gi, name) in groups.names.iter().enumerate() {
                let mine: Vec<&CalibrationMember> = members
                    .iter()
                    .filter(|m| m.group == Some(gi as u32))
                    .collect();
                if mine.len() < min_size {
                    warnings.push(format!(
                        "group {name:?} has {} calibration member(s), fewer than {min_size}: its patients use the pooled calibration",
                        mine.len()
                    ));
                    out.push(None);
                } else {
                    out.push(Some(CalibrationSet::new(mine, n_folds, n_channels)));
                }
            }
            Some(out)
        } else {
            None
        };
        let kept: Vec<u32> = (0..members.len().min(MASK_MEMBERS) as u32).collect();
        let mut raw = Vec::with_capacity(kept.len() * p);
        for &pos in &kept {
            raw.extend_from_slice(input.row(members[pos as usize].row as usize));
        }
        let incomplete_members = members
            .iter()
            .filter(|m| input.row(m.row as usize).iter().any(|v| v.is_nan()))
            .count();
        Ok(Calibration {
            incomplete_members,
            scheme: plan.scheme,
            folds,
            members,
            pooled,
            by_group,
            masked: MaskedMembers { members: kept, raw },
            method,
        })
    }
}

/// Leading components block coordinates use: the parallel-analysis count
/// (components above the noise floor) when the rule computed it, else all.
fn block_components(choice: &ComponentChoice) -> usize {
    if choice.n_parallel > 0 {
        choice.n_parallel.min(choice.n_components)
    } else {
        choice.n_components
    }
}

/// The support radius of the pooled calibration and of each group's: the
/// kNN statistic at which the kNN channel alone reaches the `invisible`
/// level (docs/method.md §8).
fn support_radii(params: &Params, cal: &Calibration) -> (f64, Option<Vec<f64>>) {
    let knn = cal
        .folds
        .first()
        .and_then(|f| f.state.channels().iter().position(|&c| c == Channel::Knn));
    let radius = |set: &CalibrationSet| -> f64 {
        // The kNN statistic beyond which the kNN channel alone gives
        // p ≤ α: the conformal radius of the members' kNN scores, each under
        // the model that did not see it. Exact under split conformal; under
        // cross-conformal the patient's statistic differs a little between
        // fold models, so the relation holds for their typical value.
        let Some(j) = knn else {
            return f64::INFINITY;
        };
        let mut all: Vec<f64> = set
            .channels
            .iter()
            .filter_map(|f| f.get(j))
            .flat_map(|s| s.sorted().iter().copied())
            .collect();
        all.sort_by(f64::total_cmp);
        ChannelScores::new(all).radius(params.alpha)
    };
    let pooled = radius(&cal.pooled);
    let groups = cal.by_group.as_ref().map(|bg| {
        bg.iter()
            .map(|g| g.as_ref().map_or(pooled, &radius))
            .collect()
    });
    (pooled, groups)
}

/// Stage 3 of fit: the index over the model's members (docs/method.md §9).
#[derive(Debug, Clone)]
pub struct IndexParams {
    choice: IndexChoice,
    hnsw_threshold: usize,
    hnsw: crate::index::HnswParams,
    k: usize,
    seed: u64,
    statistic: KnnStatistic,
    alpha: f64,
    warn_alpha: f64,
}

impl From<&Params> for IndexParams {
    fn from(p: &Params) -> Self {
        IndexParams {
            choice: p.index,
            hnsw_threshold: p.hnsw_threshold,
            hnsw: p.hnsw,
            k: p.k,
            seed: p.seed,
            statistic: p.knn_statistic,
            alpha: p.alpha,
            warn_alpha: p.warn_alpha,
        }
    }
}

/// The index fit built.
struct BuiltIndex {
    kind: IndexKind,
    graph: Option<HnswIndex>,
    check: Option<IndexCheck>,
    ef_search: usize,
}

impl IndexParams {
    /// Refuses [`IndexChoice::Hnsw`] when this build cannot build a graph
    /// (no `hnsw` cargo feature); `Auto` then builds the exact index.
    fn check_available(&self) -> Result<()> {
        if self.choice == IndexChoice::Hnsw && !cfg!(feature = "hnsw") {
            return Err(Error::feature_disabled("hnsw", "index = hnsw"));
        }
        Ok(())
    }

    /// The index to build for `n` members whose exact search looks at
    /// `search_cost` members on average (measured at fit): `auto` builds
    /// the graph above [`Params::hnsw_threshold`] members when that cost is
    /// above [`GRAPH_MIN_COST`] and the calibration is split conformal (the
    /// only scheme whose scores use the model's own index).
    fn kind(&self, n: usize, search_cost: f64, scheme: Scheme) -> IndexKind {
        match self.choice {
            IndexChoice::Exact => IndexKind::Exact,
            IndexChoice::Hnsw => IndexKind::Hnsw,
            IndexChoice::Graph => IndexKind::Graph,
            IndexChoice::Auto
                if n > self.hnsw_threshold
                    && search_cost > GRAPH_MIN_COST
                    && scheme == Scheme::Split =>
            {
                IndexKind::Graph
            }
            IndexChoice::Auto => IndexKind::Exact,
        }
    }

    /// nof1's own graph over the members, with the search beam widened (the
    /// graph unchanged) until recall@k on seeded probes reaches
    /// [`MIN_RECALL`] in and out of distribution, up to [`EF_RAISE_LIMIT`]
    /// times the requested width.
    fn build_graph(
        &self,
        exact: &ExactIndex,
        held_out: Option<Vec<f32>>,
        exact_beyond: Option<f32>,
        warnings: &mut Vec<String>,
        progress: &dyn Progress,
    ) -> (HnswIndex, IndexCheck) {
        let (n, k) = (exact.len(), self.k);
        progress.start("building the search graph", n as u64);
        let mut last = 0usize;
        let mut g = HnswIndex::build_own(
            exact.points(),
            exact.dim(),
            self.hnsw,
            self.seed,
            Some(super::graph_layout(exact)),
            |done| {
                progress.advance((done - last) as u64);
                last = done;
            },
        );
        progress.finish();
        g.exact_beyond(exact_beyond);
        progress.start("checking the graph's recall", 1);
        let probes = INDEX_CHECK_PROBES.min(n);
        // In distribution: held-out members (searched exactly like
        // patients; up to INDEX_CHECK_PROBES) under split conformal, else
        // jittered members. Out of it: members moved off the reference by
        // up to a few k-distances, counting those the graph searches itself
        // (members pushed far out would all be handed to exact search, and
        // say nothing of the graph): a floor on the recall of any
        // out-of-distribution patients.
        let inside = match held_out {
            Some(q) if !q.is_empty() => q,
            _ => check::probes(exact, k, probes, self.seed).0,
        };
        // Each probe member's k-distance from the graph (itself found first).
        let graph_kdist = |i: usize| {
            g.search(exact.point(i), k + 1)
                .last()
                .map_or(0.0, |nb| nb.distance)
        };
        let outside = check::spread_probes(exact, graph_kdist, probes, self.seed);
        let mut check_in = check::GraphRecall::new(exact, &inside, k);
        let mut check_out = check::GraphRecall::graph_answered(exact, &outside, k);
        let mut measure = |g: &HnswIndex| {
            let (r_in, r_out) = (check_in.measure_bounded(g), check_out.measure_bounded(g));
            // (recall in, recall out, the lower of their confidence bounds)
            (r_in.0, r_out.0, r_in.1.min(r_out.1))
        };
        let mut recall = measure(&g);
        let limit = self.hnsw.ef_search.max(k) * EF_RAISE_LIMIT;
        while recall.2 < MIN_RECALL && g.params().ef_search < limit {
            progress.advance(0);
            g.set_ef_search(wider_beam(g.params().ef_search.max(k)).min(limit));
            recall = measure(&g);
        }
        progress.advance(1);
        progress.finish();
        if recall.2 < MIN_RECALL {
            warnings.push(format!(
                "graph recall@{k} measured at fit is {:.3} in distribution and {:.3} out of it (not surely >= {MIN_RECALL}) even with the search beam widened to ef_search {}; the guarantee holds for the graph's scores, but they are further from exact search",
                recall.0,
                recall.1,
                g.params().ef_search
            ));
        }
        let chk = IndexCheck {
            recall_in: recall.0,
            recall_out: recall.1,
            recheck_rate: 0.0,
            probes: probes as u32,
        };
        (g, chk)
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        kind: IndexKind,
        exact: &ExactIndex,
        calibration: &Calibration,
        input: &Input<'_>,
        projection: &Projection,
        warnings: &mut Vec<String>,
        progress: &dyn Progress,
    ) -> Result<BuiltIndex> {
        let n = exact.len();
        let knn_c = exact.dim();
        let k = self.k;
        if kind != IndexKind::Hnsw {
            return Ok(BuiltIndex {
                kind,
                graph: None,
                check: None,
                ef_search: self.hnsw.ef_search,
            });
        }
        progress.start("building HNSW graph", n as u64);
        let mut last = 0usize;
        let g = HnswIndex::try_build(exact.points(), knn_c, self.hnsw, |done| {
            progress.advance((done - last) as u64);
            last = done;
        });
        progress.finish();
        let mut g = g?;
        // The graph's search beam is widened (the graph is unchanged) until
        // the recall measured at fit reaches MIN_RECALL on both kinds of
        // probes, up to EF_RAISE_LIMIT times the requested width; the width
        // reached is stored with the model.
        progress.start("checking HNSW recall", 1);
        let mut chk = self.check_index(&g, exact, calibration, input, projection);
        let limit = self.hnsw.ef_search.max(k) * EF_RAISE_LIMIT;
        while chk.recall_in.min(chk.recall_out) < MIN_RECALL && g.params().ef_search < limit {
            progress.advance(0);
            g.set_ef_search((2 * g.params().ef_search.max(k)).min(limit));
            chk = self.check_index(&g, exact, calibration, input, projection);
        }
        progress.advance(1);
        progress.finish();
        let ef_search = g.params().ef_search;
        if chk.recall_in.min(chk.recall_out) < MIN_RECALL {
            warnings.push(format!(
                "HNSW recall@{k} measured at fit is {:.3} in distribution and {:.3} out of it (< {MIN_RECALL}) even with the search beam widened to ef_search {ef_search}; verdicts stay exact (re-checked), but assess will be slower",
                chk.recall_in, chk.recall_out
            ));
        }
        Ok(BuiltIndex {
            kind,
            graph: Some(g),
            check: Some(chk),
            ef_search,
        })
    }

    /// recall@k of the graph against exact search on seeded in- and
    /// out-of-distribution probes, and its re-check rate on calibration
    /// members (split conformal; 0 under cross-conformal, where the verdict
    /// never depends on the graph).
    fn check_index(
        &self,
        graph: &HnswIndex,
        exact: &ExactIndex,
        calibration: &Calibration,
        input: &Input<'_>,
        projection: &Projection,
    ) -> IndexCheck {
        let k = self.k;
        let probes = INDEX_CHECK_PROBES.min(exact.len());
        let (inside, outside) = check::probes(exact, k, probes, self.seed);
        let mut rechecks = 0usize;
        let mut sampled = 0usize;
        if calibration.scheme == Scheme::Split
            && let Some(fold) = calibration.folds.first()
        {
            let rows: Vec<u32> = calibration
                .members
                .iter()
                .take(probes)
                .map(|m| m.row)
                .collect();
            sampled = rows.len();
            rechecks = rows
                .par_iter()
                .filter(|&&r| {
                    let raw = input.row(r as usize);
                    let mut z = vec![0.0; raw.len()];
                    let mut y = vec![0.0; projection.projector.n_components];
                    let (residual, n_obs) = projection.projector.project(raw, &mut z, &mut y);
                    let q: Vec<f32> = y[..exact.dim()].iter().map(|v| *v as f32).collect();
                    let nb = graph.search(&q, k);
                    if nb.len() < k {
                        return true;
                    }
                    let s = FoldScorer {
                        model: fold,
                        index: exact,
                        k,
                        statistic: self.statistic,
                    }
                    .score_projected(raw, &z, &y, residual, n_obs, &nb, None);
                    let p = calibration.pooled.p_value(&[s.novelty]);
                    crate::calibrate::conformal::verdict(p, self.alpha, self.warn_alpha)
                        != Verdict::Supported
                })
                .count();
        }
        IndexCheck {
            recall_in: check::recall(exact, graph, &inside, k),
            recall_out: check::recall(exact, graph, &outside, k),
            recheck_rate: rechecks as f64 / sampled.max(1) as f64,
            probes: probes as u32,
        }
    }
}

fn preview(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(", ... ({} more)", names.len() - 5));
    }
    s
}

fn created_timestamp() -> u64 {
    if let Some(t) = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return t;
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The first `c` columns of a row-major `p × r` matrix.
fn take_columns(m: &[f64], p: usize, r: usize, c: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(p * c);
    for j in 0..p {
        out.extend_from_slice(&m[j * r..j * r + c]);
    }
    out
}

/// Embeds the given rows (f32, row-major).
pub(crate) fn embed_rows(projector: &Projector, values: &[f64], rows: &[usize]) -> Vec<f32> {
    let p = projector.n_features();
    let c = projector.n_components;
    let mut out = vec![0f32; rows.len() * c];
    // Wide references: one product per 256 rows (the same up to rounding).
    let by_product = p >= project::WIDE_MIN_FEATURES;
    out.par_chunks_mut(c * 256)
        .zip(rows.par_chunks(256))
        .for_each(|(dst, chunk)| {
            if by_product {
                projector.embed_block(values, chunk, dst);
                return;
            }
            let mut z = vec![0.0; p];
            let mut y = vec![0.0; c];
            for (d, &r) in dst.chunks_exact_mut(c).zip(chunk) {
                projector.embed(&values[r * p..(r + 1) * p], &mut z, &mut y);
                for (o, v) in d.iter_mut().zip(&y) {
                    *o = *v as f32;
                }
            }
        });
    out
}

/// Rows scored together when the search is by blocks (sorted by locality
/// and searched [`QUERY_BLOCK`] at a time): between two progress reports.
pub const BLOCKED_CHUNK: usize = 8 * QUERY_BLOCK;

/// Probes of each kind in the HNSW check at fit.
pub const INDEX_CHECK_PROBES: usize = 2000;
/// recall@k that fit widens the graph's search beam to reach, and below
/// which it warns: the measured recall for `hnsw_rs` graphs (verdicts stay
/// exact), its lower confidence bound for nof1's own graph.
pub const MIN_RECALL: f64 = 0.95;
/// The widest search beam fit may give an HNSW graph to reach
/// [`MIN_RECALL`], as a multiple of the requested one (`ef_search`, at
/// least `k`): widened by doubling for `hnsw_rs` graphs, by a quarter for
/// nof1's own.
pub const EF_RAISE_LIMIT: usize = 16;

/// The next search beam fit tries on its own graph when recall falls short:
/// a quarter wider (at least 8 more), since a search costs about in
/// proportion to its beam, doubling would overshoot the width needed by up
/// to half of it.
fn wider_beam(ef: usize) -> usize {
    ef + (ef / 4).max(8)
}

/// Members searched between two progress reports in the steps that search
/// for every member (calibration, its tail fits, reference densities): they
/// are searched in chunks of this many, each reported before it starts
/// (`advance(0)` where the step counts other units). A report is also where
/// a [`Progress`] that cancels can stop the work (the Python package does):
/// every thread stops within its current chunk.
pub const PROGRESS_EVERY: usize = 64;

/// Scores rows (each with the member to leave out of its search) by the
/// search the model's scores use: nof1's own graph when the model has one,
/// else the members' blocked search when it is faster than the tree, else
/// the tree.
fn score_members(
    scorer: &FoldScorer<'_>,
    rows: &[(&[f64], Option<u32>)],
    graph: Option<&HnswIndex>,
    blocked: Option<&BlockedSearch>,
) -> Vec<crate::calibrate::PointScore> {
    match (graph, blocked) {
        (Some(g), _) => scorer.score_rows_graph(rows, g),
        (None, Some(b)) => scorer.score_rows_blocked(rows, b),
        (None, None) => scorer.score_rows_skipping(rows),
    }
}

/// Members scored together by [`score_members`]: [`BLOCKED_CHUNK`] when
/// they are searched by blocks (nearby ones share the products), else
/// [`PROGRESS_EVERY`]; each chunk is a point where the work can stop.
fn members_per_chunk(graph: Option<&HnswIndex>, blocked: Option<&BlockedSearch>) -> usize {
    match (graph, blocked) {
        (None, Some(_)) => BLOCKED_CHUNK,
        _ => PROGRESS_EVERY,
    }
}

/// Members whose searches fit measures to estimate what each member's
/// search for the densities costs.
pub const DENSITY_PROBES: usize = 256;
/// Most points each member's search for the densities may look at
/// ([`ExactIndex::search_cost`], the mean over [`DENSITY_PROBES`] members):
/// above it, where the embedding has too many dimensions for the tree to
/// prune well, the densities are those of a seeded sample of
/// [`DENSITY_SAMPLE`] members. Chosen on `nof1 bench synth` cohorts of
/// 200,000 members (docs/method.md §10): 2,577 points in the default profile
/// (8 components; every member kept), 16,000 and 37,900 in the biobank
/// profile at 16 and 32 components (sampled).
pub const DENSITY_MEMBER_COST: f64 = 8192.0;
/// Members in a density sample: the first of the seeded id order.
pub const DENSITY_SAMPLE: usize = 5_000;

/// Mean members looked at by one exact search (measured at fit, as for
/// [`DENSITY_MEMBER_COST`]) above which `auto` builds a graph for references
/// larger than [`Params::hnsw_threshold`]: a graph search computes about
/// this many distances' worth of work (chosen on the biobank and default
/// `bench synth` profiles, docs/performance.md).
pub const GRAPH_MIN_COST: f64 = 8192.0;

/// The members whose k-distances and densities the model keeps (indices
/// into the model's members, ascending): every member when the probed cost
/// of one member's search is at most [`DENSITY_MEMBER_COST`], else the
/// first [`DENSITY_SAMPLE`] members of the seeded id order. So the
/// densities' searches look at no more than `n ×` [`DENSITY_MEMBER_COST`]
/// points, and at assess a patient's density costs one search among at
/// most [`DENSITY_SAMPLE`] members when the reference is sampled.
/// Deterministic: the cost is counted in points, not timed.
fn density_members(n: usize, search_cost: f64, plan: &Plan) -> Vec<u32> {
    if n <= DENSITY_SAMPLE || search_cost <= DENSITY_MEMBER_COST {
        return (0..n as u32).collect();
    }
    let mut members: Vec<u32> = members_by_id(plan).take(DENSITY_SAMPLE).collect();
    members.sort_unstable();
    members
}

/// Search coordinates of the first [`INDEX_CHECK_PROBES`] calibration
/// members under split conformal (held out of the index, so searched exactly
/// as patients are), row-major; `None` under cross-conformal.
fn held_out_probes(
    input: &Input<'_>,
    projection: &Projection,
    plan: &Plan,
    dims: usize,
) -> Option<Vec<f32>> {
    if plan.scheme != Scheme::Split {
        return None;
    }
    let projector = &projection.projector;
    let rows: Vec<usize> = plan
        .scored
        .iter()
        .take(INDEX_CHECK_PROBES)
        .copied()
        .collect();
    let q: Vec<Vec<f32>> = rows
        .par_iter()
        .map(|&r| {
            let raw = input.row(r);
            let mut z = vec![0.0; raw.len()];
            let mut y = vec![0.0; projector.n_components];
            projector.project(raw, &mut z, &mut y);
            y[..dims].iter().map(|v| *v as f32).collect()
        })
        .collect();
    // Rows whose projection is not finite (too few values) are left out.
    Some(
        q.into_iter()
            .filter(|v| v.iter().all(|x| x.is_finite()))
            .flatten()
            .collect(),
    )
}

/// The members in the seeded id order, as positions among the members.
fn members_by_id(plan: &Plan) -> impl DoubleEndedIterator<Item = u32> + '_ {
    plan.train_by_id
        .iter()
        .filter_map(|&r| plan.train.binary_search(&r).ok().map(|p| p as u32))
}

/// The mean number of members one member's exact search looks at
/// ([`ExactIndex::search_cost`]), over the last [`DENSITY_PROBES`] members
/// of the seeded id order (0 for references of at most [`DENSITY_SAMPLE`]
/// members, which need no measure). Counted, not timed: deterministic.
fn member_search_cost(exact: &ExactIndex, k: usize, plan: &Plan) -> f64 {
    if exact.len() <= DENSITY_SAMPLE {
        return 0.0;
    }
    let probes: Vec<u32> = members_by_id(plan).rev().take(DENSITY_PROBES).collect();
    let cost: u64 = probes
        .par_iter()
        .map(|&i| exact.search_cost(exact.point(i as usize), k, Some(i)))
        .sum();
    cost as f64 / probes.len().max(1) as f64
}

/// Every member's k-distance and local reachability density among the other
/// members (exact; members searched in tree order, which keeps the points
/// they share in cache).
fn member_densities(
    exact: &ExactIndex,
    k: usize,
    order: &[(u32, u32)],
    blocked: Option<&BlockedSearch>,
    progress: &dyn Progress,
) -> (Vec<f32>, Vec<f32>) {
    let n = exact.len();
    // Fit refuses references of fewer than k + 2 rows, so every member has
    // exactly k neighbours.
    let blank = Neighbour {
        index: 0,
        distance: f32::NAN,
    };
    progress.start("reference densities", n as u64);
    let found = match blocked {
        Some(blocked) => blocked.all_knn(k, &|m| progress.advance(m as u64)),
        None => {
            let mut found = vec![blank; n * k];
            // In chunks of PROGRESS_EVERY members, each reported before it
            // is searched (so a cancelling report stops every thread
            // within a chunk).
            found
                .par_chunks_mut(k.max(1) * PROGRESS_EVERY)
                .zip(order.par_chunks(PROGRESS_EVERY))
                .with_min_len(4)
                .for_each(|(out, chunk)| {
                    progress.advance(chunk.len() as u64);
                    for (out, &(_, i)) in out.chunks_mut(k.max(1)).zip(chunk) {
                        let nb = exact
                            .search(exact.point(i as usize), k, Some(i), None)
                            .neighbours;
                        out[..nb.len()].copy_from_slice(&nb);
                    }
                });
            found
        }
    };
    progress.finish();
    let mut kdist = vec![f32::NAN; n];
    for (nb, &(_, i)) in found.chunks_exact(k.max(1)).zip(order) {
        kdist[i as usize] = knn_statistic(nb, KnnStatistic::KthDistance) as f32;
    }
    let by_pos: Vec<f32> = found
        .par_chunks_exact(k.max(1))
        .map(|nb| local_reachability(nb, &kdist) as f32)
        .collect();
    let mut lrd = vec![f32::NAN; n];
    for (&l, &(_, i)) in by_pos.iter().zip(order) {
        lrd[i as usize] = l;
    }
    (kdist, lrd)
}

/// The k-distances and densities of a density sample's members among
/// themselves (`sample` indexes their points), as [`member_densities`].
pub(crate) fn densities_among(
    sample: &ExactIndex,
    k: usize,
    progress: &dyn Progress,
) -> (Vec<f32>, Vec<f32>) {
    let ordered = locality_order(sample);
    let blocked = blocked_search_if_faster(sample, k, &ordered);
    member_densities(sample, k, &ordered, blocked.as_ref(), progress)
}

/// Every member's `(locality key, index)`, sorted: the k-d tree's leaf
/// order, nearby members adjacent.
pub(crate) fn locality_order(exact: &ExactIndex) -> Vec<(u32, u32)> {
    exact
        .leaf_order()
        .unwrap_or_else(|| (0..exact.len() as u32).map(|i| (0, i)).collect())
}

/// Members from which fit times the k-d tree against blocked distance
/// products for the member densities (`blocked_search_if_faster`).
pub const BLOCKED_PROBE_MIN: usize = 20_000;
/// Runs of [`QUERY_BLOCK`] nearby members the probe searches each way, one
/// in each part of the locality order (whole batches: shorter runs made
/// the blocks look slower than they are, as their products and pruning are
/// shared by a batch).
const BLOCKED_PROBE_RUNS: usize = 4;

/// The blocked search ([`crate::index::blocked`]) of every member's
/// neighbours, when it is faster than one k-d tree search per member: both
/// are timed, on one thread, on the same members ([`BLOCKED_PROBE_RUNS`]
/// runs of [`QUERY_BLOCK`] nearby members spread over the locality order),
/// the members laid out once; the blocks serve if they take at most
/// [`crate::model::assess::BLOCKED_MARGIN`] of the tree's time. Both give the same lists, bit for
/// bit, so the choice changes the time only. In few dimensions the tree
/// prunes almost everything and wins; from about 16 the blocks do
/// (docs/performance.md).
fn blocked_search_if_faster(
    exact: &ExactIndex,
    k: usize,
    ordered: &[(u32, u32)],
) -> Option<BlockedSearch> {
    let n = ordered.len();
    if n < BLOCKED_PROBE_MIN || !exact.has_tree() {
        return None;
    }
    // Runs of nearby members in each part of the order (the blocks' cost
    // depends on where they search: dense regions prune less).
    let runs: Vec<(usize, usize)> = (0..BLOCKED_PROBE_RUNS)
        .map(|r| ((2 * r + 1) * n / (2 * BLOCKED_PROBE_RUNS), QUERY_BLOCK))
        .collect();
    let t = std::time::Instant::now();
    for &(start, len) in &runs {
        for &(_, i) in &ordered[start..(start + len).min(n)] {
            std::hint::black_box(exact.search(exact.point(i as usize), k, Some(i), None));
        }
    }
    let tree = t.elapsed();
    let blocked = BlockedSearch::new(exact.points(), exact.dim(), ordered)?;
    blocked
        .time_runs(k, &runs, tree.mul_f64(crate::model::assess::BLOCKED_MARGIN))
        .map(|_| blocked)
}

/// Reference size from which calibration is split conformal (docs/method.md §4).
pub const LARGE_COHORT_MIN: usize = 50_000;
/// Rows per feature from which calibration is split conformal.
pub const LARGE_COHORT_RATIO: usize = 100;
/// Most training members each fold model scores (among the others) to fit
/// its tail transforms: the first in the seeded id order.
pub const TUNE_MAX: usize = 5000;
/// Feature values the tuning members of one fold model may hold: from
/// `TUNE_VALUES / TUNE_MAX` = 512 features on, fewer members than
/// [`TUNE_MAX`] tune (see [`tune_members`]).
pub const TUNE_VALUES: usize = TUNE_MAX * 512;
/// Fewest members a fold model tunes on, however wide the reference.
pub const TUNE_MIN: usize = 1000;

/// Training members each fold model scores to fit its tail transforms, for
/// `p` features: [`TUNE_MAX`] up to 512 features, then `TUNE_VALUES / p`
/// (at least [`TUNE_MIN`]), so that tuning a wide reference's fold costs
/// about as much as a 512-feature one's: each member scored costs `p`
/// value-channel surprisals and a projection of `p` features. The
/// transforms model their top 5% (`TAIL_FRACTION`), 50 points from 1,000
/// members. Chosen on `nof1 bench synth --profile omics` and
/// `nof1 eval omics` (docs/performance.md).
pub fn tune_members(p: usize) -> usize {
    (TUNE_VALUES / p.max(1)).clamp(TUNE_MIN, TUNE_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// References narrower than 512 features tune on [`TUNE_MAX`]
        /// members as before; wider ones on fewer, never below
        /// [`TUNE_MIN`], and a wider reference never on more.
        #[test]
        fn tuning_members_shrink_with_width_within_bounds(p in 1usize..20_000, q in 1usize..20_000) {
            let (t_p, t_q) = (tune_members(p), tune_members(q));
            prop_assert!((TUNE_MIN..=TUNE_MAX).contains(&t_p));
            if p <= 512 {
                prop_assert_eq!(t_p, TUNE_MAX);
            } else {
                prop_assert!(t_p < TUNE_MAX);
                prop_assert!(t_p == TUNE_MIN || t_p * p <= TUNE_VALUES);
            }
            if p <= q {
                prop_assert!(t_p >= t_q);
            }
        }

        /// Each widening of the graph's beam adds a quarter (at least 8):
        /// never more than doubling would from 8 up, and the widest beam
        /// allowed ([`EF_RAISE_LIMIT`] times the start) is reached within a
        /// bounded number of checks.
        #[test]
        fn beam_widens_by_a_quarter_and_reaches_the_limit(start in 1usize..5_000) {
            let next = wider_beam(start);
            prop_assert!(next >= start + 8);
            prop_assert!(next <= start + start / 4 + 8);
            prop_assert!(start < 8 || next <= 2 * start);
            let limit = start * EF_RAISE_LIMIT;
            let (mut ef, mut checks) = (start, 0);
            while ef < limit {
                ef = wider_beam(ef).min(limit);
                checks += 1;
            }
            // A quarter more each time: about log(limit / start) / log(1.25).
            let bound = ((EF_RAISE_LIMIT as f64).ln() / 1.25f64.ln()).ceil() as usize + 1;
            prop_assert!(checks <= bound, "{} checks from {}", checks, start);
        }
    }
    /// A plan whose members are rows `0..n`, in a seeded id order.
    fn plan_of(n: usize, seed: u64) -> Plan {
        let ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let by_id = crate::rng::id_order(&ids, seed);
        Plan {
            scheme: Scheme::Split,
            train: (0..n).collect(),
            train_by_id: by_id.clone(),
            by_id,
            scored: Vec::new(),
            folds: 1,
        }
    }

    /// Where the tree prunes well every member keeps its density; where it
    /// prunes little (many independent dimensions) a seeded sample of
    /// [`DENSITY_SAMPLE`] members does, the first of the id order, and the
    /// choice repeats exactly.
    #[test]
    fn densities_are_sampled_only_where_each_search_costs_too_much() {
        let n = 12_000;
        let mut rng = crate::rng::SplitMix64::new(2);
        for (dim, sampled) in [(3usize, false), (24, true)] {
            let points: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
            let exact = ExactIndex::new(points, dim);
            let plan = plan_of(n, 9);
            let cost = member_search_cost(&exact, 10, &plan);
            assert_eq!(cost, member_search_cost(&exact, 10, &plan), "dim {dim}");
            assert_eq!(
                cost > DENSITY_MEMBER_COST,
                sampled,
                "dim {dim}: cost {cost}"
            );
            let members = density_members(n, cost, &plan);
            if sampled {
                let mut first: Vec<u32> = plan.train_by_id[..DENSITY_SAMPLE]
                    .iter()
                    .map(|&r| r as u32)
                    .collect();
                first.sort_unstable();
                assert_eq!(members, first, "dim {dim}");
            } else {
                assert_eq!(members.len(), n, "dim {dim}");
            }
        }
    }
}
