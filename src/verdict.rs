//! Verdicts and per-patient assessments.
//!
//! Sixth step of the pipeline: the calibrated p-value and the coverage decide
//! one of four verdicts.

use serde::{Deserialize, Serialize};

use crate::index::Neighbour;

/// The answer for one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The reference represents this patient (`p_value > warn_alpha`).
    Supported,
    /// Thinly represented: `alpha < p_value ≤ warn_alpha`.
    LowSupport,
    /// Not represented: `p_value ≤ alpha` (support below threshold or off the manifold).
    Invisible,
    /// Too few features observed (`coverage < min_coverage`) to say.
    InsufficientData,
}

impl Verdict {
    /// All verdicts, in report order.
    pub const ALL: [Verdict; 4] = [
        Verdict::Supported,
        Verdict::LowSupport,
        Verdict::Invisible,
        Verdict::InsufficientData,
    ];

    /// The verdict's name as written in outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Supported => "supported",
            Verdict::LowSupport => "low_support",
            Verdict::Invisible => "invisible",
            Verdict::InsufficientData => "insufficient_data",
        }
    }

    /// The verdict for a combined p-value.
    pub fn from_p_value(p_value: f64, alpha: f64, warn_alpha: f64) -> Verdict {
        if p_value <= alpha {
            Verdict::Invisible
        } else if p_value <= warn_alpha {
            Verdict::LowSupport
        } else {
            Verdict::Supported
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How one feature contributes to a patient's scores (see `docs/method.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureContribution {
    /// Feature name.
    pub feature: String,
    /// The patient's standardised value (`NaN` when missing).
    pub z: f64,
    /// Share of the residual: `e_j²`, summing to `residual` over features.
    pub residual: f64,
    /// Share of the squared distance to the nearest neighbour: `(W δ)_j²`,
    /// summing to `nearest_distance²` over features.
    pub distance_sq: f64,
}

/// The assessment of one patient. Scores are `NaN` for `insufficient_data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    /// Patient id.
    pub id: String,
    /// Group label, when the input has a group column.
    pub group: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// Conformal p-value of `novelty` against the cross-fitted calibration members.
    pub p_value: f64,
    /// Ranking score, higher = more novel: minus log10 of the smallest
    /// weighted tail probability of the two channels (see `docs/method.md`).
    pub novelty: f64,
    /// The kNN distance statistic in the embedding.
    pub knn_distance: f64,
    /// p-value of the kNN channel.
    pub p_novelty: f64,
    /// Squared prediction error of the projection (SPE).
    pub residual: f64,
    /// p-value of the residual channel.
    pub p_residual: f64,
    /// Local density relative to the neighbours' (≈1 typical, <1 sparser).
    pub density: f64,
    /// Reference members within the support radius (in the search embedding).
    pub support: u32,
    /// The support radius used for this patient (its calibration's; see
    /// `docs/method.md`): a kNN statistic above it makes the patient invisible.
    pub support_radius: f64,
    /// Fraction of model features observed.
    pub coverage: f64,
    /// The k nearest reference members (row indices into the reference).
    pub neighbours: Vec<Neighbour>,
    /// Features that most explain the decision (non-supported patients).
    pub top_features: Vec<FeatureContribution>,
    /// The embedding (all projection components), for plots.
    pub embedding: Vec<f32>,
    /// Defects recovered while reading this row, and other remarks.
    pub note: String,
    /// Whether the pooled calibration was used instead of the patient's group's.
    pub pooled_fallback: bool,
    /// Why the verdict is not `supported`: the channel that drove the
    /// combined novelty (`knn`, `residual`, ...), `missing` when too few
    /// features are observed, `non_finite` when a score is not a number;
    /// empty for `supported`. See docs/method.md §8.
    pub reason: String,
    /// Benjamini–Hochberg adjusted p-value over the batch (per group under
    /// Mondrian calibration), when requested (`assess --fdr`); `NaN` otherwise.
    pub q_value: f64,
}

/// Batch control of the false discovery rate: sets each row's `q_value`
/// (Benjamini–Hochberg over the batch's p-values; within each group when
/// `by_group`, e.g. for a Mondrian model) and calls `invisible` exactly the
/// rows with `q_value ≤ level`. A row that was `invisible` by its own
/// p-value but is not rejected becomes `low_support` (its p-value is still
/// at most `alpha ≤ warn_alpha`). Rows without a p-value are unchanged.
///
/// The guarantee (docs/method.md §7): for patients exchangeable with the
/// calibration members, split-conformal p-values are PRDS and BH controls the
/// FDR at `level` (Bates, Candès, Lei, Romano & Sesia 2023).
pub fn apply_fdr(rows: &mut [Assessment], level: f64, by_group: bool) {
    let mut batches: std::collections::BTreeMap<Option<&str>, Vec<usize>> = Default::default();
    let keys: Vec<Option<String>> = rows
        .iter()
        .map(|a| if by_group { a.group.clone() } else { None })
        .collect();
    for (i, k) in keys.iter().enumerate() {
        batches.entry(k.as_deref()).or_default().push(i);
    }
    let mut q_all = vec![f64::NAN; rows.len()];
    for idx in batches.values() {
        let p: Vec<f64> = idx.iter().map(|&i| rows[i].p_value).collect();
        for (&i, q) in idx.iter().zip(crate::calibrate::benjamini_hochberg(&p)) {
            q_all[i] = q;
        }
    }
    for (a, q) in rows.iter_mut().zip(q_all) {
        a.q_value = q;
        if q.is_nan() {
            continue;
        }
        if q <= level {
            a.verdict = Verdict::Invisible;
        } else if a.verdict == Verdict::Invisible {
            a.verdict = Verdict::LowSupport;
        }
    }
}
