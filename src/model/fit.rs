//! Fitting: standardise, project, cross-fit the calibration, index.

use rayon::prelude::*;

use super::{
    Calibration, ChannelPair, ComponentChoice, Model, ModelData, NoProgress, Params, Progress,
    ReferenceSet,
};
use crate::calibrate::ChannelScores;
use crate::error::{Error, Position, Result};
use crate::index::{ExactIndex, HnswIndex, IndexKind};
use crate::model::IndexChoice;
use crate::project::{self, ComponentRule, Projector};
use crate::rng::SplitMix64;
use crate::score::knn_statistic;
use crate::standardise::{ColumnStats, Standardiser};
use crate::table::Table;

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
        for (j, name) in reference.feature_names.iter().enumerate() {
            if !stats.is_constant(j) && !(stats.sd[j] * stats.sd[j]).is_finite() {
                return Err(Error::schema(
                    Position::cell(&reference.source, 1, name.clone()),
                    "values too large to standardise (variance overflows)",
                ));
            }
        }
        let p = kept.len();
        let features: Vec<String> = kept
            .iter()
            .map(|&j| reference.feature_names[j].clone())
            .collect();
        let mut values = Vec::with_capacity(n * p);
        for i in 0..n {
            let row = reference.row(i);
            values.extend(kept.iter().map(|&j| row[j]));
        }
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
        progress.start("projecting", 1);
        let all_rows: Vec<usize> = (0..n).collect();
        let standardiser = Standardiser::fit(&values, p, 0..n);
        let cov = project::covariance(
            &values,
            p,
            &all_rows,
            standardiser.mean(),
            standardiser.scale(),
        );
        let max_c = self.max_components.min(p).min(n - 1).max(1);
        let pca = project::eigen_desc(cov.as_ref(), max_c)?;
        let (c, null_eigenvalues) = match self.components {
            ComponentRule::Fixed(c) => (c, Vec::new()),
            ComponentRule::Variance(f) => {
                (project::n_for_variance(&pca.eigenvalues, f), Vec::new())
            }
            ComponentRule::ParallelAnalysis => {
                let (real, null) = project::parallel_analysis(
                    &values,
                    p,
                    &all_rows,
                    standardiser.mean(),
                    standardiser.scale(),
                    self.seed,
                )?;
                (project::n_for_parallel_analysis(&real, &null), null)
            }
        };
        let c = c.clamp(1, max_c);
        let total: f64 = pca.eigenvalues.iter().sum();
        let explained = if total > 0.0 {
            pca.eigenvalues[..c].iter().sum::<f64>() / total
        } else {
            1.0
        };
        let projector = Projector {
            standardiser,
            loadings: take_columns(&pca.loadings, p, pca.n_loadings, c),
            n_components: c,
            component_scale: component_scale(&pca.eigenvalues[..c], self.whiten),
        };
        let embeddings = embed_rows(&projector, &values, &all_rows);
        progress.finish();

        // Cross-fitted calibration.
        let (cal_members, cal_knn, cal_res, method) = cross_fit(self, &values, p, n, c, progress)?;

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
                let (mut kk, mut rr) = (Vec::new(), Vec::new());
                for (pos, &member) in cal_members.iter().enumerate() {
                    if codes[member] as usize == gi {
                        kk.push(cal_knn[pos]);
                        rr.push(cal_res[pos]);
                    }
                }
                if kk.len() < min_size {
                    warnings.push(format!(
                        "group {name:?} has {} calibration member(s), fewer than {min_size}: its patients use the pooled calibration",
                        kk.len()
                    ));
                    out.push(None);
                } else {
                    out.push(Some(ChannelPair {
                        knn: ChannelScores::new(kk),
                        residual: ChannelScores::new(rr),
                    }));
                }
            }
            Some(out)
        } else {
            None
        };
        let members = cal_members
            .iter()
            .zip(cal_knn.iter().zip(&cal_res))
            .map(|(&m, (&a, &b))| (m as u32, a, b))
            .collect();
        let calibration = Calibration {
            members,
            pooled: ChannelPair {
                knn: ChannelScores::new(cal_knn),
                residual: ChannelScores::new(cal_res),
            },
            by_group,
            method,
        };

        // Index and reference densities.
        let index_kind = match self.index {
            IndexChoice::Exact => IndexKind::Exact,
            IndexChoice::Hnsw => IndexKind::Hnsw,
            IndexChoice::Auto if n > self.hnsw_threshold => IndexKind::Hnsw,
            IndexChoice::Auto => IndexKind::Exact,
        };
        let exact = ExactIndex::new(embeddings, c);
        let hnsw = if index_kind == IndexKind::Hnsw {
            progress.start("building HNSW graph", n as u64);
            let mut last = 0usize;
            let g = HnswIndex::build(exact.points(), c, self.hnsw, |done| {
                progress.advance((done - last) as u64);
                last = done;
            });
            progress.finish();
            Some(g)
        } else {
            None
        };
        progress.start("reference densities", n as u64);
        let self_neighbours: Vec<Vec<crate::index::Neighbour>> = (0..n)
            .into_par_iter()
            .map(|i| {
                let q = exact.point(i);
                let r = match &hnsw {
                    Some(g) => {
                        let mut v = g.search(q, k + 1);
                        v.retain(|nb| nb.index as usize != i);
                        v.truncate(k);
                        v
                    }
                    None => exact.search(q, k, Some(i as u32), None).neighbours,
                };
                if i % 1024 == 0 {
                    progress.advance(1024);
                }
                r
            })
            .collect();
        progress.finish();
        let kdist: Vec<f32> = self_neighbours
            .iter()
            .map(|v| knn_statistic(v, crate::score::KnnStatistic::KthDistance) as f32)
            .collect();
        let lrd: Vec<f32> = self_neighbours
            .iter()
            .map(|v| crate::score::local_reachability(v, &kdist) as f32)
            .collect();

        let hnsw_recall = hnsw
            .as_ref()
            .map(|g| measure_recall(g, &exact, k, self.seed));
        if let Some(r) = hnsw_recall {
            if r < 0.95 {
                warnings.push(format!(
                    "HNSW recall@{k} measured at fit is {r:.3} (< 0.95); verdicts stay exact (re-checked), but assess will be slower"
                ));
            }
        }

        let data = ModelData {
            crate_version: env!("CARGO_PKG_VERSION").to_string(),
            created: created_timestamp(),
            params: self.clone(),
            features,
            dropped_features: dropped,
            projector,
            components: ComponentChoice {
                rule: self.components,
                n_components: c,
                eigenvalues: pca.eigenvalues,
                null_eigenvalues,
                explained,
            },
            reference: ReferenceSet {
                ids: reference.ids.clone(),
                group_names,
                groups,
                embeddings: Vec::new(),
                kdist,
                lrd,
            },
            calibration,
            index_kind,
            hnsw_recall,
            warnings,
        };
        let mut data = data;
        data.reference.embeddings = exact.points().to_vec();
        Ok(Model { data, exact, hnsw })
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

/// Per-component embedding scale: `1/√λ_k` when whitening, else 1.
fn component_scale(eigenvalues: &[f64], whiten: bool) -> Vec<f64> {
    eigenvalues
        .iter()
        .map(|&l| if whiten { 1.0 / l.max(1e-12).sqrt() } else { 1.0 })
        .collect()
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

type CrossFit = (Vec<usize>, Vec<f64>, Vec<f64>, String);

/// Cross-fitted calibration scores: for each fold, standardisation and
/// projection (same `c`) are refitted on the other rows, and the fold's members
/// are scored against them on both channels.
fn cross_fit(
    params: &Params,
    values: &[f64],
    p: usize,
    n: usize,
    c: usize,
    progress: &dyn Progress,
) -> Result<CrossFit> {
    let k = params.k;
    let mut rng = SplitMix64::new(params.seed ^ 0xca11_b7a7);
    let mut scored: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut scored);
    scored.truncate(params.calibration_size.min(n));
    let m = scored.len();
    // Every training part must keep at least k + 1 rows.
    let min_folds = n.div_ceil(n - k - 1);
    let folds = params.folds.max(min_folds).min(m);
    let mut fold_of = vec![usize::MAX; n];
    for (pos, &r) in scored.iter().enumerate() {
        fold_of[r] = pos % folds;
    }
    let mut knn = vec![0.0; m];
    let mut res = vec![0.0; m];
    progress.start("cross-fitting calibration", folds as u64);
    for f in 0..folds {
        let train: Vec<usize> = (0..n).filter(|&r| fold_of[r] != f).collect();
        let members: Vec<usize> = (0..m).filter(|&pos| pos % folds == f).collect();
        let st = Standardiser::fit(values, p, train.iter().copied());
        let cov = project::covariance(values, p, &train, st.mean(), st.scale());
        let pca = project::eigen_desc(cov.as_ref(), c)?;
        let projector = Projector {
            standardiser: st,
            component_scale: component_scale(&pca.eigenvalues[..pca.n_loadings], params.whiten),
            loadings: pca.loadings,
            n_components: pca.n_loadings,
        };
        let index = ExactIndex::new(
            embed_rows(&projector, values, &train),
            projector.n_components,
        );
        let scores: Vec<(f64, f64)> = members
            .par_iter()
            .map(|&pos| {
                let r = scored[pos];
                let mut z = vec![0.0; p];
                let mut y = vec![0.0; projector.n_components];
                let (residual, _) = projector.project(&values[r * p..(r + 1) * p], &mut z, &mut y);
                let q: Vec<f32> = y.iter().map(|v| *v as f32).collect();
                let nb = index.search(&q, k, None, None).neighbours;
                (knn_statistic(&nb, params.knn_statistic), residual)
            })
            .collect();
        for (&pos, (a, b)) in members.iter().zip(scores) {
            knn[pos] = a;
            res[pos] = b;
        }
        progress.advance(1);
    }
    progress.finish();
    let method = format!("{folds}-fold cross-fit on {m} of {n} members");
    Ok((scored, knn, res, method))
}

/// Fraction of exact k nearest neighbours the graph finds, over a seeded sample
/// of reference members (as queries, themselves excluded) and synthetic far-out
/// probes.
fn measure_recall(graph: &HnswIndex, exact: &ExactIndex, k: usize, seed: u64) -> f64 {
    let n = exact.len();
    let dim = exact.dim();
    let mut rng = SplitMix64::new(seed ^ 0x2ec0);
    let n_probe = 200.min(n);
    let mut queries: Vec<Vec<f32>> = Vec::new();
    for _ in 0..n_probe {
        let i = rng.below(n);
        let q: Vec<f32> = exact
            .point(i)
            .iter()
            .map(|v| v + 1e-4 * rng.normal() as f32)
            .collect();
        queries.push(q);
    }
    // Far-out probes: members pushed 3× outward from the centroid.
    for _ in 0..n_probe / 2 {
        let i = rng.below(n);
        queries.push(exact.point(i).iter().map(|v| v * 3.0).collect());
    }
    let _ = dim;
    let hits: usize = queries
        .par_iter()
        .map(|q| {
            let truth = exact.search(q, k, None, None).neighbours;
            let got = graph.search(q, k);
            let kth = truth.last().map_or(0.0, |nb| nb.distance);
            got.iter()
                .filter(|g| g.distance <= kth * (1.0 + 1e-6))
                .count()
                .min(truth.len())
        })
        .sum();
    hits as f64 / (queries.len() * k).max(1) as f64
}
