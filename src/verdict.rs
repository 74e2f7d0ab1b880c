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
    /// Each channel's own conformal p-value, in the model's channel order
    /// (`knn`, `residual`, `value`, `block:NAME`, ...): reported, not used
    /// for the verdict; empty when no verdict was reached.
    pub channel_p_values: Vec<ChannelPValue>,
}

/// One channel's own conformal p-value for a patient.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelPValue {
    /// The channel's label (`knn`, `residual`, `value`, `block:NAME`).
    pub channel: String,
    /// Its conformal p-value.
    pub p_value: f64,
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

/// How many patients got each verdict.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    /// `supported`.
    pub supported: usize,
    /// `low_support`.
    pub low_support: usize,
    /// `invisible`.
    pub invisible: usize,
    /// `insufficient_data`.
    pub insufficient_data: usize,
}

impl VerdictCounts {
    /// Counts the verdicts of `assessments`.
    pub fn of(assessments: &[Assessment]) -> Self {
        let mut c = VerdictCounts::default();
        c.add(assessments);
        c
    }

    /// Adds the verdicts of `assessments`.
    pub fn add(&mut self, assessments: &[Assessment]) {
        for a in assessments {
            self.push(a.verdict);
        }
    }

    /// Counts one more patient with verdict `v`.
    pub fn push(&mut self, v: Verdict) {
        *self.slot(v) += 1;
    }

    fn slot(&mut self, v: Verdict) -> &mut usize {
        match v {
            Verdict::Supported => &mut self.supported,
            Verdict::LowSupport => &mut self.low_support,
            Verdict::Invisible => &mut self.invisible,
            Verdict::InsufficientData => &mut self.insufficient_data,
        }
    }

    /// The number of patients with verdict `v`.
    pub fn get(&self, v: Verdict) -> usize {
        match v {
            Verdict::Supported => self.supported,
            Verdict::LowSupport => self.low_support,
            Verdict::Invisible => self.invisible,
            Verdict::InsufficientData => self.insufficient_data,
        }
    }

    /// The counts in the order of [`Verdict::ALL`].
    pub fn to_array(&self) -> [usize; 4] {
        Verdict::ALL.map(|v| self.get(v))
    }

    /// Number of patients counted.
    pub fn total(&self) -> usize {
        self.to_array().iter().sum()
    }
}

/// `supported 8 (80.0%), low_support 1 (10.0%), invisible 1 (10.0%),
/// insufficient_data 0 (0.0%)`: each verdict in report order, with its share.
impl std::fmt::Display for VerdictCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.total().max(1) as f64;
        for (i, v) in Verdict::ALL.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            let c = self.get(*v);
            write!(f, "{v} {c} ({:.1}%)", 100.0 * c as f64 / n)?;
        }
        Ok(())
    }
}
