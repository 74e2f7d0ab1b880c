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
    /// What drives a non-supported verdict, e.g. `rs_private=1 never seen in
    /// 400 reference members (all 0)` or `metabolome: residual p = 0.0004`
    /// (empty for supported patients).
    pub reason: String,
    /// Conformal p-values of the extra channels (`value`, `block:NAME`), each
    /// against its own calibration scores; empty for models without them.
    pub channel_p_values: Vec<ChannelPValue>,
}

/// One channel's own conformal p-value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPValue {
    /// `value` or `block:NAME`.
    pub channel: String,
    /// Its p-value, in `(0, 1]`.
    pub p_value: f64,
}
