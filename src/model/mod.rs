//! The fitted model: fit a reference cohort, assess patients.
//!
//! [`Params::fit`] runs standardise → project → cross-fitted calibration →
//! index; [`Model::assess`] scores patients and gives verdicts. The on-disk
//! container is in [`format`].

pub mod assess;
pub mod fit;
pub mod format;
pub mod params;

pub use params::{IndexChoice, Params};

use serde::{Deserialize, Serialize};

use crate::calibrate::ChannelScores;
use crate::index::{ExactIndex, HnswIndex, IndexKind};
use crate::project::{ComponentRule, Projector};

/// Progress reporting hook for long steps (the library never prints).
pub trait Progress: Sync {
    /// A new step starts with `total` units of work.
    fn start(&self, _step: &str, _total: u64) {}
    /// `n` more units are done.
    fn advance(&self, _n: u64) {}
    /// The step is over.
    fn finish(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;
impl Progress for NoProgress {}

/// How the number of components was chosen, kept for `inspect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentChoice {
    /// The rule used.
    pub rule: ComponentRule,
    /// Components kept.
    pub n_components: usize,
    /// All eigenvalues of the standardised covariance (the scree), non-increasing.
    pub eigenvalues: Vec<f64>,
    /// Null eigenvalues of parallel analysis (empty for other rules).
    pub null_eigenvalues: Vec<f64>,
    /// Fraction of variance explained by the kept components.
    pub explained: f64,
}

/// Calibration scores of both channels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelPair {
    /// kNN channel scores.
    pub knn: ChannelScores,
    /// Residual channel scores.
    pub residual: ChannelScores,
}

/// Calibration: pooled scores, and per-group scores under Mondrian calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Scores of all cross-fitted members.
    pub pooled: ChannelPair,
    /// Per reference group (same order as [`ReferenceSet::group_names`]); `None`
    /// for a group too small to calibrate (falls back to pooled).
    pub by_group: Option<Vec<Option<ChannelPair>>>,
    /// How the calibration scores were produced (e.g. "10-fold cross-fit").
    pub method: String,
    /// Cross-fitted members (reference row) with their paired channel scores
    /// `(member, knn, residual)`, in calibration order.
    pub members: Vec<(u32, f64, f64)>,
}

/// The reference cohort as the model keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceSet {
    /// Member ids, in reference order.
    pub ids: Vec<String>,
    /// Distinct group labels, sorted; empty without groups.
    pub group_names: Vec<String>,
    /// Group of each member as an index into `group_names`.
    pub groups: Option<Vec<u32>>,
    /// Embeddings, row-major `n × c`, `f32`.
    pub embeddings: Vec<f32>,
    /// k-distance of each member among the others (for density).
    pub kdist: Vec<f32>,
    /// Local reachability density of each member.
    pub lrd: Vec<f32>,
}

impl ReferenceSet {
    /// Number of members.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    /// Group label of member `i`.
    pub fn group_of(&self, i: usize) -> Option<&str> {
        self.groups
            .as_ref()
            .and_then(|g| g.get(i))
            .and_then(|&g| self.group_names.get(g as usize))
            .map(|s| s.as_str())
    }
}

/// Everything serialised into a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelData {
    /// nof1 version that wrote the model.
    pub crate_version: String,
    /// Creation time, seconds since the Unix epoch (`SOURCE_DATE_EPOCH` if set).
    pub created: u64,
    /// The parameters used.
    pub params: Params,
    /// Model features, in order.
    pub features: Vec<String>,
    /// Reference columns dropped as constant.
    pub dropped_features: Vec<String>,
    /// Standardise + project.
    pub projector: Projector,
    /// How components were chosen.
    pub components: ComponentChoice,
    /// The reference.
    pub reference: ReferenceSet,
    /// Calibration scores.
    pub calibration: Calibration,
    /// The index kind.
    pub index_kind: IndexKind,
    /// Fraction of HNSW neighbours equal to exact ones, measured at fit (HNSW only).
    pub hnsw_recall: Option<f64>,
    /// Warnings raised while fitting.
    pub warnings: Vec<String>,
}

/// A fitted model, ready to assess patients.
#[derive(Debug)]
pub struct Model {
    data: ModelData,
    exact: ExactIndex,
    hnsw: Option<HnswIndex>,
}

impl Model {
    pub(crate) fn from_data(data: ModelData, progress: &dyn Progress) -> Model {
        let c = data.projector.n_components.max(1);
        let exact = ExactIndex::new(data.reference.embeddings.clone(), c);
        let hnsw = match data.index_kind {
            IndexKind::Exact => None,
            IndexKind::Hnsw => {
                progress.start("building HNSW graph", data.reference.len() as u64);
                let mut last = 0usize;
                let g = HnswIndex::build(exact.points(), c, data.params.hnsw, |done| {
                    progress.advance((done - last) as u64);
                    last = done;
                });
                progress.finish();
                Some(g)
            }
        };
        Model { data, exact, hnsw }
    }

    /// The serialisable contents.
    pub fn data(&self) -> &ModelData {
        &self.data
    }

    /// The parameters the model was fitted with.
    pub fn params(&self) -> &Params {
        &self.data.params
    }

    /// Model features, in order.
    pub fn features(&self) -> &[String] {
        &self.data.features
    }

    /// Number of components kept.
    pub fn n_components(&self) -> usize {
        self.data.projector.n_components
    }

    /// The reference members.
    pub fn reference(&self) -> &ReferenceSet {
        &self.data.reference
    }

    /// The index kind.
    pub fn index_kind(&self) -> IndexKind {
        self.data.index_kind
    }

    /// Radius of the kNN channel at the `invisible` level (pooled calibration).
    pub fn support_radius(&self) -> f64 {
        self.data
            .calibration
            .pooled
            .knn
            .radius(self.data.params.alpha / 2.0)
    }
}
