//! Fitting: standardise, project, cross-fit the calibration, index.

use rayon::prelude::*;

use super::{
    CHANNEL_WEIGHTS, Calibration, CalibrationMember, CalibrationSet, ComponentChoice, IndexCheck,
    Model, ModelData, NoProgress, Params, Progress, ReferenceSet, Scorer, leading,
};
use crate::calibrate::{ChannelScores, TailTransform};
use crate::error::{Error, Position, Result};
use crate::index::{ExactIndex, HnswIndex, IndexKind, Neighbour, check};
use crate::model::IndexChoice;
use crate::project::{self, ComponentRule, Projector};
use crate::score::{KnnStatistic, knn_statistic, local_reachability};
use crate::standardise::{ColumnStats, Standardiser};
use crate::table::Table;
use crate::verdict::Verdict;

impl Params {
    /// Fits a model on a reference cohort.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidParam`] for bad parameters,
    /// [`crate::ErrorKind::Schema`] when the reference has fewer than `k + 2`
    /// rows or no usable feature.
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
        self.check()?;
        let n = reference.n_rows();
        let k = self.k;
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
        let kept: Vec<usize> = (0..p_all).filter(|&j| !stats.is_constant(j)).collect();
        let dropped: Vec<String> = (0..p_all)
            .filter(|&j| stats.is_constant(j))
            .map(|j| reference.feature_names[j].clone())
            .collect();
        if !dropped.is_empty() {
            warnings.push(format!(
                "{}: dropped {} constant or empty column(s): {}",
                reference.source.display(),
                dropped.len(),
                preview(&dropped)
            ));
        }
        if kept.is_empty() {
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
        // Borrow the table's values unless a column was dropped (saves a copy
        // of the whole reference: 147 MiB at 200,000 × 96).
        let values: std::borrow::Cow<'_, [f64]> = if p == p_all {
            std::borrow::Cow::Borrowed(&reference.values[..])
        } else {
            let mut v = Vec::with_capacity(n * p);
            for i in 0..n {
                let row = reference.row(i);
                v.extend(kept.iter().map(|&j| row[j]));
            }
            std::borrow::Cow::Owned(v)
        };
        let sparse_rows = (0..n)
            .filter(|&i| {
                let obs = values[i * p..(i + 1) * p]
                    .iter()
                    .filter(|v| !v.is_nan())
                    .count();
                (obs as f64) < self.min_coverage * p as f64
            })
            .count();
        if sparse_rows > 0 {
            warnings.push(format!(
                "{}: {sparse_rows} reference row(s) observe fewer than {:.0}% of the features",
                reference.source.display(),
                self.min_coverage * 100.0
            ));
        }

        // Standardise and project.
        progress.start("projecting", 4);
        let all_rows: Vec<usize> = (0..n).collect();
        let standardiser = Standardiser::fit(&values, p, 0..n);
        let max_c = self.max_components.min(p).min(n - 1).max(1);
        let pca = project::fit_pca(
            &values,
            p,
            &all_rows,
            standardiser.mean(),
            standardiser.scale(),
            max_c,
        )?;
        progress.advance(1);
        let needs_pa = matches!(
            self.components,
            ComponentRule::Auto | ComponentRule::ParallelAnalysis
        );
        let id_rows = crate::rng::id_order(&reference.ids, self.seed);
        let null_eigenvalues = if needs_pa {
            project::parallel_analysis(
                &values,
                p,
                &id_rows,
                standardiser.mean(),
                standardiser.scale(),
                self.seed,
            )?
            .1
        } else {
            Vec::new()
        };
        progress.advance(1);
        let n_parallel = if needs_pa {
            project::n_for_parallel_analysis(&pca.eigenvalues, &null_eigenvalues)
        } else {
            0
        };
        let variance_fraction = match self.components {
            ComponentRule::Variance(f) => f,
            _ => project::AUTO_VARIANCE,
        };
        let n_variance = project::n_for_variance(&pca.eigenvalues, variance_fraction);
        let total: f64 = pca.eigenvalues.iter().sum();
        let explained_by = |c: usize| {
            if total > 0.0 {
                pca.eigenvalues[..c.min(p)].iter().sum::<f64>() / total
            } else {
                1.0
            }
        };
        // The discarded spectrum is a noise floor if it is as flat as either
        // null: permuted data (equal noise variances) or permuted residuals
        // (each feature's own noise variance).
        let noise_likeness = if needs_pa {
            let homoscedastic =
                project::noise_likeness(&pca.eigenvalues, &null_eigenvalues, n_parallel);
            let sample = project::StandardisedRows {
                values: &values,
                p,
                rows: &id_rows,
                mean: standardiser.mean(),
                scale: standardiser.scale(),
            };
            let null = project::residual_null_flatness(sample, &pca, n_parallel, self.seed)?;
            let heteroscedastic = if null > 0.0 && n_parallel < p {
                project::spectral_flatness(&pca.eigenvalues[n_parallel..]) / null
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
        let c = c.clamp(1, max_c.min(pca.n_loadings.max(1)));
        let knn_c = knn_c.clamp(1, c);
        let explained = explained_by(c);
        let projector = Projector::new(
            standardiser,
            take_columns(&pca.loadings, p, pca.n_loadings, c),
            c,
        );
        let embeddings = embed_rows(&projector, &values, &all_rows);
        progress.advance(1);
        progress.finish();

        // Cross-fitted calibration.
        let exact = ExactIndex::new(leading(&embeddings, c, knn_c), knn_c);
        let (members, method) = if n >= LARGE_COHORT_MIN && n >= LARGE_COHORT_RATIO * p {
            leave_one_out(self, &values, &id_rows, &projector, &exact, progress)
        } else {
            cross_fit(self, &values, p, &id_rows, c, knn_c, progress)?
        };

        // Groups.
        let (group_names, groups) = match &reference.groups {
            Some(g) => {
                let mut names: Vec<String> = g.clone();
                names.sort();
                names.dedup();
                let codes: Vec<u32> = g
                    .iter()
                    .map(|x| names.binary_search(x).map_or(0, |i| i as u32))
                    .collect();
                (names, Some(codes))
            }
            None => (Vec::new(), None),
        };
        let scorer = Scorer {
            knn: TailTransform::new(&ChannelScores::new(members.iter().map(|m| m.knn).collect())),
            residual: TailTransform::new(&ChannelScores::new(
                members.iter().map(|m| m.residual).collect(),
            )),
            weights: CHANNEL_WEIGHTS,
        };
        let by_group = if self.calibrate_by_group {
            let codes = groups.as_ref().ok_or_else(|| {
                Error::param(
                    "calibrate_by_group",
                    "needs a group column in the reference",
                )
            })?;
            let min_size = ((1.0 / self.alpha).ceil() as usize)
                .saturating_sub(1)
                .max(1);
            let mut out = Vec::with_capacity(group_names.len());
            for (gi, name) in group_names.iter().enumerate() {
                let mine: Vec<CalibrationMember> = members
                    .iter()
                    .filter(|m| codes[m.index as usize] as usize == gi)
                    .copied()
                    .collect();
                if mine.len() < min_size {
                    warnings.push(format!(
                        "group {name:?} has {} calibration member(s), fewer than {min_size}: its patients use the pooled calibration",
                        mine.len()
                    ));
                    out.push(None);
                } else {
                    out.push(Some(CalibrationSet::new(&scorer, &mine, self.alpha)));
                }
            }
            Some(out)
        } else {
            None
        };
        let calibration = Calibration {
            pooled: CalibrationSet::new(&scorer, &members, self.alpha),
            members,
            scorer,
            by_group,
            method,
        };

        // Index and reference densities.
        let index_kind = match self.index {
            IndexChoice::Exact => IndexKind::Exact,
            IndexChoice::Hnsw => IndexKind::Hnsw,
            IndexChoice::Auto
                if n > self.hnsw_threshold && knn_c > crate::index::exact::KD_TREE_MAX_DIM =>
            {
                IndexKind::Hnsw
            }
            IndexChoice::Auto => IndexKind::Exact,
        };
        let mut hnsw = if index_kind == IndexKind::Hnsw {
            progress.start("building HNSW graph", n as u64);
            let mut last = 0usize;
            let g = HnswIndex::build(exact.points(), knn_c, self.hnsw, |done| {
                progress.advance((done - last) as u64);
                last = done;
            });
            progress.finish();
            Some(g)
        } else {
            None
        };
        // Reference densities: every member's k nearest other members, once.
        let (kdist, lrd) = member_densities(&exact, k, progress);
        let density_members: Vec<u32> = (0..n as u32).collect();

        // The graph's search beam is widened (the graph is unchanged) until
        // the recall measured at fit reaches MIN_RECALL on both kinds of
        // probes, up to EF_RAISE_LIMIT times the requested width; the width
        // reached is stored with the model.
        let mut params = self.clone();
        let index_check = hnsw.as_mut().map(|g| {
            progress.start("checking HNSW recall", 1);
            let mut chk = check_index(g, &exact, &calibration, &embeddings, c, self);
            // The search uses a beam of at least k.
            let limit = self.hnsw.ef_search.max(k) * EF_RAISE_LIMIT;
            while chk.recall_in.min(chk.recall_out) < MIN_RECALL && g.params().ef_search < limit {
                progress.advance(0);
                g.set_ef_search((2 * g.params().ef_search.max(k)).min(limit));
                chk = check_index(g, &exact, &calibration, &embeddings, c, self);
            }
            progress.advance(1);
            progress.finish();
            params.hnsw.ef_search = g.params().ef_search;
            chk
        });
        if let Some(chk) = index_check
            && chk.recall_in.min(chk.recall_out) < MIN_RECALL
        {
            warnings.push(format!(
                "HNSW recall@{k} measured at fit is {:.3} in distribution and {:.3} out of it (< {MIN_RECALL}) even with the search beam widened to ef_search {}; verdicts stay exact (re-checked), but assess will be slower",
                chk.recall_in, chk.recall_out, params.hnsw.ef_search
            ));
        }

        let data = ModelData {
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            created: created_timestamp(),
            params,
            features,
            dropped_features: dropped,
            projector,
            components: ComponentChoice {
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
            reference: ReferenceSet {
                ids: reference.ids.clone(),
                group_names,
                groups,
                embeddings,
                density_members,
                kdist,
                lrd,
            },
            calibration,
            index_kind,
            index_check,
            warnings,
            variants: None,
        };
        Ok(Model {
            data,
            exact,
            hnsw,
            density: None,
        })
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
    out.par_chunks_mut(c * 256)
        .zip(rows.par_chunks(256))
        .for_each(|(dst, chunk)| {
            let mut z = vec![0.0; p];
            let mut y = vec![0.0; c];
            for (d, &r) in dst.chunks_exact_mut(c).zip(chunk) {
                projector.project(&values[r * p..(r + 1) * p], &mut z, &mut y);
                for (o, v) in d.iter_mut().zip(&y) {
                    *o = *v as f32;
                }
            }
        });
    out
}

/// Scores reference row `r` on both channels: projects it with `projector`
/// and searches `index` (whose dimension is the number of leading components
/// used for the search), leaving out index entry `skip`.
fn score_member(
    params: &Params,
    projector: &Projector,
    index: &ExactIndex,
    values: &[f64],
    r: usize,
    skip: Option<u32>,
) -> CalibrationMember {
    let p = projector.n_features();
    let mut z = vec![0.0; p];
    let mut y = vec![0.0; projector.n_components];
    let (residual, _) = projector.project(&values[r * p..(r + 1) * p], &mut z, &mut y);
    let q: Vec<f32> = y[..index.dim()].iter().map(|v| *v as f32).collect();
    let nb = index.search(&q, params.k, skip, None).neighbours;
    CalibrationMember {
        index: r as u32,
        knn: knn_statistic(&nb, params.knn_statistic),
        residual,
    }
}

/// Probes of each kind in the HNSW check at fit.
pub const INDEX_CHECK_PROBES: usize = 1000;
/// recall@k that fit widens the graph's search beam to reach, and below
/// which it warns (verdicts stay exact).
pub const MIN_RECALL: f64 = 0.95;
/// Most times fit widens the requested HNSW search beam (`ef_search`, at
/// least `k`), doubling it, to reach [`MIN_RECALL`].
pub const EF_RAISE_LIMIT: usize = 8;

/// The members scored for calibration: the first `calibration_size` rows in
/// the seeded id order (docs/method.md §4).
fn scored_members(params: &Params, id_rows: &[usize]) -> Vec<usize> {
    id_rows
        .iter()
        .take(params.calibration_size)
        .copied()
        .collect()
}

/// Every member's k-distance and local reachability density among the other
/// members (exact; members searched in tree order, which keeps the points
/// they share in cache).
fn member_densities(exact: &ExactIndex, k: usize, progress: &dyn Progress) -> (Vec<f32>, Vec<f32>) {
    let n = exact.len();
    let mut order: Vec<(u32, u32)> = (0..n as u32)
        .into_par_iter()
        .map(|i| (exact.locality_key(exact.point(i as usize)), i))
        .collect();
    order.sort_unstable();
    // Fit refuses references of fewer than k + 2 rows, so every member has
    // exactly k neighbours.
    let blank = Neighbour {
        index: 0,
        distance: f32::NAN,
    };
    let mut found = vec![blank; n * k];
    progress.start("reference densities", n as u64);
    // In chunks of PROGRESS_EVERY members, each reported before it is
    // searched (so a cancelling report stops every thread within a chunk).
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
    progress.finish();
    let mut kdist = vec![f32::NAN; n];
    for (nb, &(_, i)) in found.chunks_exact(k.max(1)).zip(&order) {
        kdist[i as usize] = knn_statistic(nb, KnnStatistic::KthDistance) as f32;
    }
    let by_pos: Vec<f32> = found
        .par_chunks_exact(k.max(1))
        .map(|nb| local_reachability(nb, &kdist) as f32)
        .collect();
    let mut lrd = vec![f32::NAN; n];
    for (&l, &(_, i)) in by_pos.iter().zip(&order) {
        lrd[i as usize] = l;
    }
    (kdist, lrd)
}

/// Members searched between two progress reports in the steps that search
/// for every member (calibration, reference densities): they are searched in
/// chunks of this many, each reported before it starts. A report is also
/// where a [`Progress`] that cancels can stop the work (the Python package
/// does): every thread stops within its current chunk.
pub const PROGRESS_EVERY: usize = 64;

/// Reference size from which calibration may skip refitting the projection.
pub const LARGE_COHORT_MIN: usize = 50_000;
/// Rows per feature from which calibration may skip refitting the projection.
pub const LARGE_COHORT_RATIO: usize = 100;

/// Calibration scores for large cohorts (`n ≥ LARGE_COHORT_MIN` and
/// `n ≥ LARGE_COHORT_RATIO · p`): the projection fitted on all members is
/// kept, and each scored member's kNN statistic is computed with the member
/// itself left out of the search. With so many rows per feature, one member
/// moves the standardisation and the principal subspace by O(p/n), which is
/// what cross-fitting guards against at small n (see docs/method.md).
fn leave_one_out(
    params: &Params,
    values: &[f64],
    id_rows: &[usize],
    projector: &Projector,
    exact: &ExactIndex,
    progress: &dyn Progress,
) -> (Vec<CalibrationMember>, String) {
    let n = id_rows.len();
    let scored = scored_members(params, id_rows);
    let m = scored.len();
    progress.start("calibrating (leave-one-out)", m as u64);
    let members: Vec<CalibrationMember> = scored
        .par_chunks(PROGRESS_EVERY)
        .with_min_len(4)
        .flat_map_iter(|chunk| {
            progress.advance(chunk.len() as u64);
            chunk
                .iter()
                .map(|&r| score_member(params, projector, exact, values, r, Some(r as u32)))
        })
        .collect();
    progress.finish();
    let method =
        format!("leave-one-out on {m} of {n} members (large cohort: projection not refitted)");
    (members, method)
}

/// Cross-fitted calibration scores: for each fold, standardisation and
/// projection (same number of components) are refitted on the other rows, and
/// the fold's members are scored against them on both channels.
fn cross_fit(
    params: &Params,
    values: &[f64],
    p: usize,
    id_rows: &[usize],
    c: usize,
    knn_c: usize,
    progress: &dyn Progress,
) -> Result<(Vec<CalibrationMember>, String)> {
    let k = params.k;
    let n = id_rows.len();
    let scored = scored_members(params, id_rows);
    let m = scored.len();
    // Every training part must keep at least k + 1 rows.
    let min_folds = n.div_ceil(n - k - 1);
    let folds = params.folds.max(min_folds).min(m);
    let mut fold_of = vec![usize::MAX; n];
    for (pos, &r) in scored.iter().enumerate() {
        fold_of[r] = pos % folds;
    }
    let blank = CalibrationMember {
        index: 0,
        knn: 0.0,
        residual: 0.0,
    };
    let mut members = vec![blank; m];
    progress.start("cross-fitting calibration", m as u64);
    let fold_pca = project::FoldPca::new(values, p, n, params.seed);
    for f in 0..folds {
        let train: Vec<usize> = (0..n).filter(|&r| fold_of[r] != f).collect();
        let fold: Vec<usize> = (0..m).filter(|&pos| pos % folds == f).collect();
        let st = Standardiser::fit(values, p, train.iter().copied());
        let pca = fold_pca.fit(&train, st.mean(), st.scale(), c)?;
        let cf = pca.n_loadings.clamp(1, c);
        let projector = Projector::new(st, take_columns(&pca.loadings, p, pca.n_loadings, cf), cf);
        let dims = knn_c.min(cf);
        let index = ExactIndex::new(
            leading(&embed_rows(&projector, values, &train), cf, dims),
            dims,
        );
        let scores: Vec<CalibrationMember> = fold
            .par_chunks(PROGRESS_EVERY)
            .flat_map_iter(|chunk| {
                progress.advance(chunk.len() as u64);
                chunk
                    .iter()
                    .map(|&pos| score_member(params, &projector, &index, values, scored[pos], None))
            })
            .collect();
        for (&pos, s) in fold.iter().zip(scores) {
            members[pos] = s;
        }
    }
    progress.finish();
    let method = format!("{folds}-fold cross-fit on {m} of {n} members");
    Ok((members, method))
}

/// Fraction of exact k nearest neighbours the graph finds, over a seeded sample
/// of reference members (as queries, themselves excluded) and synthetic far-out
/// probes.
/// recall@k of the graph against exact search on seeded in- and
/// out-of-distribution probes, and its re-check rate on calibration members.
fn check_index(
    graph: &HnswIndex,
    exact: &ExactIndex,
    calibration: &Calibration,
    embeddings: &[f32],
    c: usize,
    params: &Params,
) -> IndexCheck {
    let dim = exact.dim();
    let k = params.k;
    let probes = INDEX_CHECK_PROBES.min(exact.len());
    let (inside, outside) = check::probes(exact, k, probes, params.seed);
    // Re-checks: calibration members searched in the graph (themselves left
    // out), scored with their own residual against the pooled calibration.
    let cal = &calibration.members;
    let step = (cal.len() / probes.max(1)).max(1);
    let sampled: Vec<&CalibrationMember> = cal.iter().step_by(step).take(probes).collect();
    let rechecks: usize = sampled
        .par_iter()
        .filter(|m| {
            let i = m.index as usize;
            let q = &embeddings[i * c..i * c + dim];
            let nb: Vec<_> = graph
                .search(q, k + 1)
                .into_iter()
                .filter(|x| x.index != m.index)
                .take(k)
                .collect();
            if nb.len() < k {
                return true;
            }
            let stat = knn_statistic(&nb, params.knn_statistic);
            let novelty = calibration.scorer.novelty(stat, m.residual);
            let p = calibration.pooled.novelty.p_value(novelty);
            Verdict::from_p_value(p, params.alpha, params.warn_alpha) != Verdict::Supported
        })
        .count();
    IndexCheck {
        recall_in: check::recall(exact, graph, &inside, k),
        recall_out: check::recall(exact, graph, &outside, k),
        recheck_rate: rechecks as f64 / sampled.len().max(1) as f64,
        probes: probes as u32,
    }
}
