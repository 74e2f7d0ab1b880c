//! Assessment: project each patient, score both channels, give a verdict.

use rayon::prelude::*;

use super::extra::{ExtraScores, fmt_p};
use super::{CalibrationSet, Model};
use crate::error::Result;
use crate::score::{self, knn_statistic};
use crate::table::{FeatureMap, Table};
use crate::verdict::{Assessment, ChannelPValue, FeatureContribution, Verdict};

/// Number of features listed in `top_features`.
pub const TOP_FEATURES: usize = 5;

/// A patient's standardised row `z`, embedding `y`, search coordinates `q`
/// (the leading `knn_components` of `y`, as `f32`), residual and number of
/// observed features.
struct Projected {
    z: Vec<f64>,
    y: Vec<f64>,
    q: Vec<f32>,
    residual: f64,
    n_obs: usize,
    extra: ExtraScores,
}

impl Model {
    /// Matches a table's feature columns to the model's, by name.
    ///
    /// Columns the model keeps only for the value channel (constant in the
    /// reference) are not counted as unknown.
    pub fn feature_map(&self, table_features: &[String]) -> FeatureMap {
        let mut map = FeatureMap::new(&self.data.features, table_features);
        if let Some(m) = &self.data.extension.marginals {
            map.forget_unknown(|f| m.features.iter().any(|x| x == f));
        }
        map
    }

    /// Every column the model reads from a patient: its features, then the
    /// columns only the value channel knows (constant in the reference).
    pub fn known_features(&self) -> Vec<String> {
        let mut out = self.data.features.clone();
        if let Some(m) = &self.data.extension.marginals {
            out.extend(
                m.features
                    .iter()
                    .filter(|f| !self.data.features.contains(f))
                    .cloned(),
            );
        }
        out
    }

    /// A patient's values in the value channel's column order.
    fn marginal_row(&self, map: Option<&FeatureMap>, row: &[f64]) -> Vec<f64> {
        match (map, &self.data.extension.marginals) {
            (Some(map), Some(_)) => {
                let mut out = vec![f64::NAN; map.n_model_features()];
                map.gather(row, &mut out);
                out
            }
            _ => Vec::new(),
        }
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
        let marginal_map = self
            .data
            .extension
            .marginals
            .as_ref()
            .map(|m| FeatureMap::new(&m.features, &patients.feature_names));
        // Each row is projected once; the projection gives its search order.
        let mut projected: Vec<(u32, usize, Projected)> = (0..patients.n_rows())
            .into_par_iter()
            .with_min_len(256)
            .map(|i| {
                let mut raw = vec![f64::NAN; p];
                map.gather(patients.row(i), &mut raw);
                let all = self.marginal_row(marginal_map.as_ref(), patients.row(i));
                let x = self.project_patient(&raw, &all);
                (self.locality_key(&x), i, x)
            })
            .collect();
        projected.sort_unstable_by_key(|(key, i, _)| (*key, *i));
        let mut assessed: Vec<(usize, Assessment)> = projected
            .into_par_iter()
            .with_min_len(64)
            .map(|(_, i, x)| {
                let group = patients.groups.as_ref().map(|g| g[i].clone());
                let note = patients.notes.get(i).cloned().unwrap_or_default();
                (i, self.assess_projected(&patients.ids[i], group, x, note))
            })
            .collect();
        assessed.sort_unstable_by_key(|(i, _)| *i);
        Ok(assessed.into_iter().map(|(_, a)| a).collect())
    }

    /// Standardises and projects a patient's raw values (model feature
    /// order) and scores the extra channels (`all`: the values in the value
    /// channel's column order).
    fn project_patient(&self, raw: &[f64], all: &[f64]) -> Projected {
        let projector = &self.data.projector;
        let mut z = vec![0.0; raw.len()];
        let mut y = vec![0.0; projector.n_components];
        let (residual, n_obs) = projector.project(raw, &mut z, &mut y);
        let q = y[..self.exact.dim()].iter().map(|v| *v as f32).collect();
        let extra = self
            .data
            .extension
            .score(all, &z, &y, &projector.loadings, false);
        Projected {
            z,
            y,
            q,
            residual,
            n_obs,
            extra,
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

    /// The calibration to use for a patient of `group`, and whether it is a
    /// fallback to the pooled one.
    fn calibration_for(&self, group: Option<&str>) -> (&CalibrationSet, bool) {
        let cal = &self.data.calibration;
        let Some(by_group) = &cal.by_group else {
            return (&cal.pooled, false);
        };
        let found = group
            .and_then(|g| {
                self.data
                    .reference
                    .group_names
                    .binary_search_by(|x| x.as_str().cmp(g))
                    .ok()
            })
            .and_then(|gi| by_group.get(gi))
            .and_then(|c| c.as_ref());
        match found {
            Some(c) => (c, false),
            None => (&cal.pooled, true),
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
        let map = self
            .data
            .extension
            .marginals
            .as_ref()
            .map(|m| FeatureMap::new(&m.features, &self.data.features));
        let all = self.marginal_row(map.as_ref(), raw);
        Ok(self.assess_projected(id, group, self.project_patient(raw, &all), note))
    }

    /// [`Model::assess_one`] for a patient already projected.
    fn assess_projected(
        &self,
        id: &str,
        group: Option<String>,
        x: Projected,
        note: String,
    ) -> Assessment {
        let d = &self.data;
        let params = &d.params;
        let p = d.features.len();
        let k = params.k;
        let scorer = &d.calibration.scorer;
        let Projected {
            z,
            y,
            q,
            residual,
            n_obs,
            extra,
        } = x;
        let ext = &d.extension;
        let extra_novelty = ext.novelty(&extra.scores);
        let coverage = n_obs as f64 / p as f64;
        let (cal, pooled_fallback) = self.calibration_for(group.as_deref());
        let note = if pooled_fallback {
            let fallback =
                "pooled calibration (group too small to calibrate, or not in the reference)";
            if note.is_empty() {
                fallback.to_string()
            } else {
                format!("{note}; {fallback}")
            }
        } else {
            note
        };
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
            support_radius: cal.support_radius,
            neighbours: Vec::new(),
            top_features: Vec::new(),
            embedding: Vec::new(),
            note,
            pooled_fallback,
            reason: String::new(),
            channel_p_values: Vec::new(),
        };
        if n_obs == 0 || coverage < params.min_coverage {
            return out;
        }
        let radius = cal.support_radius;
        let radius_f32 = if radius.is_finite() {
            radius as f32
        } else {
            f32::MAX
        };
        let decide = |stat: f64| {
            let novelty = scorer.novelty(stat, residual).max(extra_novelty);
            let p = cal.novelty.p_value(novelty);
            (
                novelty,
                p,
                Verdict::from_p_value(p, params.alpha, params.warn_alpha),
            )
        };
        // Graph first; anything it would not call supported is re-checked exactly.
        // Graph distances are never shorter than exact ones and novelty is
        // non-decreasing in the kNN statistic, so a graph `supported` is final.
        let mut found = None;
        if let Some(g) = &self.hnsw {
            let nb = g.search(&q, k);
            if nb.len() == k {
                let stat = knn_statistic(&nb, params.knn_statistic);
                let (novelty, p, verdict) = decide(stat);
                if verdict == Verdict::Supported {
                    let support = nb.iter().filter(|x| x.distance <= radius_f32).count() as u32;
                    found = Some((nb, stat, novelty, p, verdict, support));
                }
            }
        }
        let (neighbours, stat, novelty, p_value, verdict, support) = match found {
            Some(f) => f,
            None => {
                let r = self.exact.search(&q, k, None, Some(radius_f32));
                let stat = knn_statistic(&r.neighbours, params.knn_statistic);
                let (novelty, p, verdict) = decide(stat);
                (r.neighbours, stat, novelty, p, verdict, r.within)
            }
        };
        out.verdict = verdict;
        out.p_value = p_value;
        out.novelty = novelty;
        out.knn_distance = stat;
        out.p_novelty = cal.knn.p_value(stat);
        out.residual = residual;
        out.p_residual = cal.residual.p_value(residual);
        out.density = match &self.density {
            None => score::relative_density(&neighbours, &d.reference.kdist, &d.reference.lrd),
            Some(sample) => {
                let nb = sample.search(&q, k, None, None).neighbours;
                score::relative_density(&nb, &d.reference.kdist, &d.reference.lrd)
            }
        };
        out.support = support;
        out.channel_p_values = ext
            .channels
            .iter()
            .zip(&extra.scores)
            .enumerate()
            .map(|(i, (ch, &s))| ChannelPValue {
                channel: ext.channel_name(i),
                p_value: ch.scores.p_value(s),
            })
            .collect();
        if verdict != Verdict::Supported {
            out.reason = self.reason(&extra, stat, residual, cal);
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

    /// What drives a non-supported verdict: the channel whose weighted tail
    /// probability is smallest, explained (the rarest value, or a block's
    /// residual p-value), else the kNN or residual channel's own p-value.
    fn reason(
        &self,
        extra: &ExtraScores,
        stat: f64,
        residual: f64,
        cal: &CalibrationSet,
    ) -> String {
        let d = &self.data;
        let scorer = &d.calibration.scorer;
        let knn_part = scorer.weights[0].ln() - scorer.knn.log_p(stat);
        let res_part = scorer.weights[1].ln() - scorer.residual.log_p(residual);
        let base = knn_part.max(res_part) / std::f64::consts::LN_10;
        if let Some((i, part)) = d.extension.driver(&extra.scores)
            && part > base
        {
            return d.extension.reason(i, extra);
        }
        if knn_part >= res_part {
            format!("kNN distance p = {}", fmt_p(cal.knn.p_value(stat)))
        } else {
            format!("residual p = {}", fmt_p(cal.residual.p_value(residual)))
        }
    }
}
