//! The fitted model: fit a reference cohort, assess patients.
//!
//! [`Params::fit`] runs standardise → project → cross-fitted calibration →
//! index; [`Model::assess`] scores patients and gives verdicts. The on-disk
//! container is in [`mod@format`].

mod arrays;
pub mod assess;
pub mod fit;
pub mod format;
mod ids;
pub mod params;
pub mod stream;
pub mod summary;

pub use ids::MemberIds;
pub use params::{IndexChoice, Params};
pub use stream::{PatientStream, StreamError, StreamSummary};
pub use summary::{ExactSearch, ModelSummary};

use serde::{Deserialize, Serialize};

pub use crate::calibrate::{
    Calibration, CalibrationMember, CalibrationSet, Channel, ChannelState, FoldModel, Scheme,
    Scorer,
};
use crate::index::hnsw::{GraphLoadError, StoredGraph};
use crate::index::{ExactIndex, HnswIndex, IndexKind};
use crate::project::{ComponentRule, Projector};

/// Progress reporting hook for long steps (the library never prints).
///
/// `advance` may be called from several threads at once. The steps that
/// search for every member report at least every
/// [`fit::PROGRESS_EVERY`] members, and every other step of a fit is a few
/// reports at most apart, so an implementation can also cancel the work: a
/// report that unwinds (e.g. with [`std::panic::resume_unwind`]) stops it
/// promptly, to be caught by the caller (the Python package stops a fit on
/// Ctrl-C so).
pub trait Progress: Sync {
    /// A new step starts with `total` units of work.
    fn start(&self, _step: &str, _total: u64) {}
    /// `n` more units are done (`advance(0)`: no unit is, but the work is
    /// at a point where it can stop).
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
    /// Components of the projection (the residual is what they leave out).
    pub n_components: usize,
    /// Leading components used for the neighbour search (≤ `n_components`).
    pub knn_components: usize,
    /// Components parallel analysis keeps.
    pub n_parallel: usize,
    /// Components reaching the variance fraction of the rule (95% by default).
    pub n_variance: usize,
    /// How noise-like the spectrum beyond the parallel-analysis components is
    /// (see [`crate::project::noise_likeness`]): near 1 for a noise floor.
    pub noise_likeness: f64,
    /// All eigenvalues of the standardised covariance (the scree), non-increasing.
    pub eigenvalues: Vec<f64>,
    /// Null eigenvalues of parallel analysis (95th percentile of permuted data).
    pub null_eigenvalues: Vec<f64>,
    /// Fraction of variance explained by the projection's components.
    pub explained: f64,
}

/// The reference cohort as the model keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReferenceSet {
    /// Member ids, in reference order.
    pub ids: MemberIds,
    /// Distinct group labels, sorted; empty without groups.
    pub group_names: Vec<String>,
    /// Group of each member as an index into `group_names`.
    pub groups: Option<Vec<u32>>,
    /// Embeddings, row-major `n × c` (all projection components), `f32`.
    /// Shared with the exact index when it searches all `c` components
    /// (one copy in memory; stored as a plain sequence).
    pub embeddings: std::sync::Arc<Vec<f32>>,
    /// Reference rows whose k-distance and density are kept (sorted): every
    /// member in models fitted by this version; models of earlier versions
    /// may hold a seeded sample of large references, searched separately.
    pub density_members: Vec<u32>,
    /// k-distance of each of `density_members` among them.
    pub kdist: Vec<f32>,
    /// Local reachability density of each of `density_members`.
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
    /// Calibration: fold models and members' scores.
    pub calibration: Calibration,
    /// The kNN statistic (in the model's own embedding) above which the kNN
    /// channel alone makes a patient `invisible` under the pooled
    /// calibration (docs/method.md §8); per group in `group_support_radius`.
    pub support_radius: f64,
    /// Per-group support radii under Mondrian calibration (pooled where the
    /// group falls back).
    pub group_support_radius: Option<Vec<f64>>,
    /// The index kind.
    pub index_kind: IndexKind,
    /// Agreement of the HNSW graph with exact search, measured at fit (HNSW only).
    pub index_check: Option<IndexCheck>,
    /// Warnings raised while fitting.
    pub warnings: Vec<String>,
    /// Each feature's variant identity (same order as `features`), for a
    /// model fitted on genotypes (VCF, BCF, PLINK); `None` otherwise. Stored
    /// in its own section after the model section (format version 4 on), so
    /// files of earlier versions load with `None`.
    #[serde(skip)]
    pub variants: Option<Vec<crate::table::Variant>>,
    /// What the model's reference members showed for every feature
    /// (constant columns included): the observed support `inspect` shows and
    /// the `reason` text quotes. Written in the channel section (format
    /// version 5); `None` without the value channel and in older files.
    #[serde(skip)]
    pub support: Option<crate::marginal::Marginals>,
}

/// How well an HNSW graph agrees with exact search, measured at fit on
/// seeded probes (see docs/method.md, "Index").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IndexCheck {
    /// recall@k in distribution: on held-out calibration members (nof1's
    /// own graph under split conformal), else on reference members moved by
    /// a quarter of their k-distance in a random direction.
    pub recall_in: f64,
    /// recall@k out of distribution: for nof1's own graph, on the members
    /// moved off the reference by 0.5–3 k-distances that the graph searches
    /// itself (far ones are searched exactly); for `hnsw_rs` graphs, on
    /// members pushed 3× outward from the centroid.
    pub recall_out: f64,
    /// Fraction of calibration members the graph alone would not call
    /// `supported`: about the share of exchangeable patients that assess
    /// re-checks by exact search.
    pub recheck_rate: f64,
    /// Probes of each kind.
    pub probes: u32,
}

/// A fitted model, ready to assess patients.
#[derive(Debug)]
pub struct Model {
    data: ModelData,
    exact: ExactIndex,
    hnsw: Option<HnswIndex>,
    /// Index over the density sample, when the model keeps the densities of
    /// a sample of members rather than of every member.
    density: Option<ExactIndex>,
    /// The fold models' indexes, and what is kept of the masked calibration
    /// members once a patient needs them.
    folds: FoldIndexes,
    /// The blocked search of the reference, once a batch of patients has
    /// been large enough to time it against the k-d tree (`None` inside:
    /// the tree was faster, or the model does not qualify).
    blocked: std::sync::OnceLock<Option<crate::index::blocked::BlockedSearch>>,
    /// The blocked search of the density sample, built with the blocked
    /// search of the reference (`None` inside: no sample, or its points do
    /// not qualify).
    density_blocked: std::sync::OnceLock<Option<crate::index::blocked::BlockedSearch>>,
    /// Calibration sets rescored for missingness patterns met so far (at
    /// most [`assess::MASK_CACHE_PATTERNS`]).
    masks: assess::MaskCache,
}

/// Under cross-conformal calibration, each fold model's index over its
/// training members (empty under split conformal: the model's own exact
/// index serves); and, built at the first patient with missing features,
/// what is kept of the masked calibration members to rescore them
/// ([`crate::calibrate::KeptMembers`]).
#[derive(Debug, Default)]
pub(crate) struct FoldIndexes {
    pub(crate) indexes: Vec<ExactIndex>,
    pub(crate) kept: std::sync::OnceLock<crate::calibrate::KeptMembers>,
}

/// The indexes of a calibration's fold models (none under split conformal).
pub(crate) fn fold_indexes(cal: &Calibration) -> FoldIndexes {
    let indexes = match cal.scheme {
        Scheme::Split => Vec::new(),
        Scheme::CrossConformal => cal
            .folds
            .iter()
            .map(|f| ExactIndex::new(f.points.clone(), f.search_dims.max(1)))
            .collect(),
    };
    FoldIndexes {
        indexes,
        kept: std::sync::OnceLock::new(),
    }
}

/// An index over the density sample, when the sample is not the whole reference.
pub(crate) fn density_index(exact: &ExactIndex, members: &[u32]) -> Option<ExactIndex> {
    if members.len() == exact.len() {
        return None;
    }
    let dim = exact.dim();
    let mut pts = Vec::with_capacity(members.len() * dim);
    for &m in members {
        pts.extend_from_slice(exact.point(m as usize));
    }
    Some(ExactIndex::new(pts, dim))
}

/// The first `dims` coordinates of each row of a row-major `n × c` matrix.
pub(crate) fn leading(points: &[f32], c: usize, dims: usize) -> Vec<f32> {
    if dims == c {
        return points.to_vec();
    }
    points
        .chunks_exact(c)
        .flat_map(|r| r[..dims].iter().copied())
        .collect()
}

/// The search coordinates of a model (the leading `knn_components` of the
/// embeddings: the embeddings themselves, shared, when they are all of
/// them) and their number.
pub(crate) fn search_points(data: &ModelData) -> (std::sync::Arc<Vec<f32>>, usize) {
    let c = data.projector.n_components.max(1);
    let dims = data.components.knn_components.clamp(1, c);
    (shared_leading(&data.reference.embeddings, c, dims), dims)
}

/// [`leading`] without a copy when `dims == c`.
pub(crate) fn shared_leading(
    points: &std::sync::Arc<Vec<f32>>,
    c: usize,
    dims: usize,
) -> std::sync::Arc<Vec<f32>> {
    if dims == c {
        std::sync::Arc::clone(points)
    } else {
        std::sync::Arc::new(leading(points, c, dims))
    }
}

/// The `k`-th neighbour distance beyond which a query of nof1's own graph
/// is answered by exact search ([`HnswIndex::exact_beyond`]): the
/// [`FAR_QUANTILE`] quantile of the density members' `k`-distances (so
/// about 5 % of in-distribution queries, and the far ones, are searched
/// exactly). `None` for other indexes, and when no distance is finite.
pub(crate) fn far_beyond(kind: IndexKind, kdist: &[f32]) -> Option<f32> {
    if kind != IndexKind::Graph {
        return None;
    }
    let mut d: Vec<f32> = kdist.iter().copied().filter(|v| v.is_finite()).collect();
    if d.is_empty() {
        return None;
    }
    d.sort_unstable_by(f32::total_cmp);
    let at = ((d.len() as f64 * FAR_QUANTILE).ceil() as usize).clamp(1, d.len()) - 1;
    Some(d[at])
}

/// The layout of nof1's own graph: the members in the exact index's
/// locality order (its k-d tree's leaves), so nearby members sit together in
/// memory. Derived from the stored tree, so fit and load lay out alike.
pub(crate) fn graph_layout(exact: &ExactIndex) -> Vec<u32> {
    fit::locality_order(exact)
        .into_iter()
        .map(|(_, i)| i)
        .collect()
}

/// Quantile of the members' `k`-distances above which a query is searched
/// exactly instead of in the graph (chosen on the biobank `bench synth` profile, docs/performance.md).
pub const FAR_QUANTILE: f64 = 0.95;

impl Model {
    /// Assembles a model from its stored contents, its exact index and the
    /// graph section the file carried, which is loaded instead of rebuilt.
    pub(crate) fn from_stored_graph(
        data: ModelData,
        exact: ExactIndex,
        graph: StoredGraph,
        progress: &dyn Progress,
    ) -> std::result::Result<Model, GraphLoadError> {
        let n = data.reference.len() as u64;
        progress.start("loading HNSW graph", n);
        // nof1's own graph is searched laid out as fit laid it out.
        let order = (data.index_kind == IndexKind::Graph).then(|| graph_layout(&exact));
        let g = HnswIndex::from_stored_in(graph, exact.points(), data.params.hnsw, order);
        progress.advance(n);
        progress.finish();
        let mut g = g?;
        g.exact_beyond(far_beyond(data.index_kind, &data.reference.kdist));
        let density = density_index(&exact, &data.reference.density_members);
        let folds = fold_indexes(&data.calibration);
        Ok(Model {
            data,
            exact,
            hnsw: Some(g),
            density,
            folds,
            blocked: std::sync::OnceLock::new(),
            density_blocked: std::sync::OnceLock::new(),
            masks: assess::MaskCache::default(),
        })
    }

    /// Assembles a model from its stored contents, building its exact index
    /// and the HNSW graph (if the model uses one) from the embeddings.
    ///
    /// # Errors
    /// As [`Model::with_exact`].
    #[cfg(test)]
    pub(crate) fn from_data(data: ModelData, progress: &dyn Progress) -> crate::Result<Model> {
        let (points, dims) = search_points(&data);
        Self::with_exact(data, ExactIndex::new(points, dims), progress)
    }

    /// [`Model::from_data`] with the exact index given.
    ///
    /// # Errors
    /// [`crate::ErrorKind::FeatureDisabled`] when the model uses an HNSW
    /// graph and this build lacks the `hnsw` feature to build it.
    pub(crate) fn with_exact(
        data: ModelData,
        exact: ExactIndex,
        progress: &dyn Progress,
    ) -> crate::Result<Model> {
        let dims = exact.dim();
        let hnsw = match data.index_kind {
            IndexKind::Exact => None,
            IndexKind::Hnsw => {
                progress.start("building HNSW graph", data.reference.len() as u64);
                let mut last = 0usize;
                let g = HnswIndex::try_build(exact.points(), dims, data.params.hnsw, |done| {
                    progress.advance((done - last) as u64);
                    last = done;
                });
                progress.finish();
                Some(g?)
            }
            IndexKind::Graph => {
                progress.start("building the search graph", data.reference.len() as u64);
                let mut last = 0usize;
                let mut g = HnswIndex::build_own(
                    exact.points(),
                    dims,
                    data.params.hnsw,
                    data.params.seed,
                    Some(graph_layout(&exact)),
                    |done| {
                        progress.advance((done - last) as u64);
                        last = done;
                    },
                );
                progress.finish();
                g.exact_beyond(far_beyond(data.index_kind, &data.reference.kdist));
                Some(g)
            }
        };
        let density = density_index(&exact, &data.reference.density_members);
        let folds = fold_indexes(&data.calibration);
        Ok(Model {
            data,
            exact,
            hnsw,
            density,
            folds,
            blocked: std::sync::OnceLock::new(),
            density_blocked: std::sync::OnceLock::new(),
            masks: assess::MaskCache::default(),
        })
    }

    /// The serialisable contents.
    pub fn data(&self) -> &ModelData {
        &self.data
    }

    /// Each feature's variant identity, for a model fitted on genotypes.
    pub fn variants(&self) -> Option<&[crate::table::Variant]> {
        self.data.variants.as_deref()
    }

    /// Records the variant identity of each model feature, looked up by name
    /// among `names` (the fitted table's feature names) and `variants` (same
    /// order). Used after fitting on genotypes, so that assess can match a
    /// patient file's variants by position and alleles.
    ///
    /// # Errors
    /// [`crate::ErrorKind::DimensionMismatch`] when `names` and `variants`
    /// differ in length; [`crate::ErrorKind::InvalidParam`] when a model
    /// feature is not among `names`.
    pub fn set_variants(
        &mut self,
        names: &[String],
        variants: &[crate::table::Variant],
    ) -> crate::Result<()> {
        if names.len() != variants.len() {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "variant names",
                expected: variants.len(),
                found: names.len(),
            }
            .into());
        }
        let by_name: std::collections::HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut out = Vec::with_capacity(self.data.features.len());
        for f in &self.data.features {
            let Some(&i) = by_name.get(f.as_str()) else {
                return Err(crate::Error::param(
                    "variants",
                    format!("model feature {f:?} has no variant"),
                ));
            };
            out.push(variants[i].clone());
        }
        self.data.variants = Some(out);
        Ok(())
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
        self.data.support_radius
    }

    /// Leading components used for the neighbour search.
    pub fn knn_components(&self) -> usize {
        self.exact.dim()
    }

    /// The reference members' search coordinates (row-major, `n ×`
    /// [`Model::knn_components`]), as the exact index holds them.
    pub fn search_points(&self) -> &[f32] {
        self.exact.points()
    }

    /// The same model searched by another index kind (the HNSW graph is
    /// built when `kind` needs it; verdicts and p-values do not change).
    ///
    /// # Errors
    /// [`crate::ErrorKind::FeatureDisabled`] for [`IndexKind::Hnsw`] when
    /// this build lacks the `hnsw` cargo feature.
    pub fn with_index_kind(
        &self,
        kind: IndexKind,
        progress: &dyn Progress,
    ) -> crate::Result<Model> {
        let mut data = self.data.clone();
        data.index_kind = kind;
        let exact = ExactIndex::new(self.exact.points().to_vec(), self.exact.dim());
        Self::with_exact(data, exact, progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;
    use crate::score::{KnnStatistic, knn_statistic, local_reachability, relative_density};
    use crate::table::Table;

    /// Two clusters in 4 features.
    fn cohort(n: usize, seed: u64, shift: f64) -> Table {
        let mut rng = SplitMix64::new(seed);
        let mut values = Vec::with_capacity(n * 4);
        for i in 0..n {
            let c = if i % 3 == 0 { 4.0 } else { 0.0 } + shift;
            for j in 0..4 {
                values.push(c + rng.normal() * (1.0 + j as f64 * 0.3));
            }
        }
        let ids = (0..n).map(|i| format!("r{i}")).collect();
        let names = (0..4).map(|j| format!("f{j}")).collect();
        Table::from_rows(ids, names, values).expect("a valid table")
    }

    #[test]
    fn density_uses_the_whole_reference_and_older_samples_still_assess() {
        let k = 5;
        let model = Params::default()
            .k(k)
            .fit(&cohort(900, 3, 0.0))
            .expect("fit");
        let n = model.reference().len();
        assert_eq!(model.reference().density_members.len(), n);
        assert!(model.density.is_none());
        let patients = cohort(60, 11, 0.5);
        let fresh = model.assess(&patients).expect("assess");
        // density from the patient's own neighbours against every member
        for a in &fresh {
            let d = relative_density(
                &a.neighbours,
                &model.reference().kdist,
                &model.reference().lrd,
            );
            assert_eq!(a.density.to_bits(), d.to_bits(), "patient {}", a.id);
        }

        // A model as earlier builds wrote it: densities of a sample of members.
        let mut data = model.data().clone();
        let members: Vec<u32> = (0..n as u32).filter(|i| i % 3 != 1).collect();
        let sample = density_index(&model.exact, &members).expect("a proper sample");
        let found: Vec<Vec<crate::index::Neighbour>> = (0..members.len())
            .map(|i| {
                sample
                    .search(sample.point(i), k, Some(i as u32), None)
                    .neighbours
            })
            .collect();
        let kdist: Vec<f32> = found
            .iter()
            .map(|v| knn_statistic(v, KnnStatistic::KthDistance) as f32)
            .collect();
        let lrd: Vec<f32> = found
            .iter()
            .map(|v| local_reachability(v, &kdist) as f32)
            .collect();
        data.reference.density_members = members;
        data.reference.kdist = kdist.clone();
        data.reference.lrd = lrd.clone();
        let older = Model::from_data(data, &NoProgress).expect("model");
        let old = older.assess(&patients).expect("assess");
        for (a, b) in fresh.iter().zip(&old) {
            // Same verdicts and p-values; density from the sample's neighbours.
            assert_eq!(a.verdict, b.verdict);
            assert_eq!(a.p_value.to_bits(), b.p_value.to_bits());
            assert_eq!(a.support, b.support);
            let q: Vec<f32> = a.embedding[..older.exact.dim()].to_vec();
            let nb = sample.search(&q, k, None, None).neighbours;
            let d = relative_density(&nb, &kdist, &lrd);
            assert_eq!(b.density.to_bits(), d.to_bits(), "patient {}", b.id);
        }
    }
}
