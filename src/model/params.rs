//! Fit parameters: named defaults, setters and a validating `check`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::HnswParams;
use crate::project::ComponentRule;
use crate::score::KnnStatistic;

/// Default number of neighbours.
pub const DEFAULT_K: usize = 10;
/// Default significance level for `invisible`.
pub const DEFAULT_ALPHA: f64 = 0.05;
/// Default level for `low_support`.
pub const DEFAULT_WARN_ALPHA: f64 = 0.2;
/// Default cap on the number of components.
pub const DEFAULT_MAX_COMPONENTS: usize = 64;
/// Default number of cross-fitting folds.
pub const DEFAULT_FOLDS: usize = 10;
/// Default maximum number of cross-fitted calibration members.
pub const DEFAULT_CALIBRATION_SIZE: usize = 20_000;
/// Default coverage floor below which a patient is `insufficient_data`.
pub const DEFAULT_MIN_COVERAGE: f64 = 0.5;
/// Default seed.
pub const DEFAULT_SEED: u64 = 1;
/// Reference size above which `IndexChoice::Auto` builds an HNSW graph.
pub const DEFAULT_HNSW_THRESHOLD: usize = 100_000;

/// Which index to build.
///
/// Building an HNSW graph needs the library's `hnsw` cargo feature (on by
/// default); a model that stores one loads and assesses without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum IndexChoice {
    /// Exact search, except for references larger than
    /// [`Params::hnsw_threshold`] where one exact search, measured at fit,
    /// looks at more than [`crate::model::fit::GRAPH_MIN_COST`] members: then
    /// nof1's own graph ([`IndexChoice::Graph`]).
    #[default]
    Auto,
    /// Always exact.
    Exact,
    /// Always HNSW (verdicts are still exact: non-supported patients are
    /// re-checked). Without the `hnsw` feature, fit returns
    /// [`crate::ErrorKind::FeatureDisabled`].
    Hnsw,
    /// Always nof1's own graph, built in parallel (the same graph for any
    /// number of threads): calibration members and patients are scored by
    /// the same graph search, which keeps the conformal guarantee for that
    /// score; recall against exact search is measured at fit.
    Graph,
}

/// Everything `fit` needs to know. Build with [`Params::default`] and the setters;
/// `fit` validates with [`Params::check`], and so does loading a model, so a
/// model's [`crate::Model::params`] always hold checked values.
///
/// The fields are public to read (`model.params().k`); a value written
/// directly is checked by the next `fit` like a value given to its setter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Params {
    /// Number of nearest neighbours.
    pub k: usize,
    /// Level at or below which a patient is `invisible`.
    pub alpha: f64,
    /// Level at or below which a patient is `low_support`.
    pub warn_alpha: f64,
    /// How many principal components to keep.
    pub components: ComponentRule,
    /// Upper bound on the number of components.
    pub max_components: usize,
    /// Which index to build.
    pub index: IndexChoice,
    /// Reference size above which `auto` may build a graph.
    pub hnsw_threshold: usize,
    /// HNSW graph parameters (in a fitted model, `ef_search` is the beam
    /// width fit settled on, see [`crate::model::fit::EF_RAISE_LIMIT`]).
    pub hnsw: HnswParams,
    /// Number of cross-fitting folds.
    pub folds: usize,
    /// Maximum number of cross-fitted calibration members.
    pub calibration_size: usize,
    /// Coverage below which a patient is `insufficient_data`.
    pub min_coverage: f64,
    /// Seed of every random choice.
    pub seed: u64,
    /// kNN statistic of the kNN channel.
    pub knn_statistic: KnnStatistic,
    /// Keep calibration scores per reference group (Mondrian calibration).
    pub calibrate_by_group: bool,
    /// Feature blocks (multi-omic layers). Not stored: the model keeps the
    /// resolved blocks in its channels' state (see [`crate::table::blocks`]).
    #[serde(skip)]
    pub blocks: Option<crate::table::blocks::BlockSpec>,
    /// Whether to score the value channel. Not stored: a model has the
    /// channel or not ([`crate::calibrate::ChannelState::channels`]).
    #[serde(skip, default = "yes")]
    pub value_channel: bool,
}

fn yes() -> bool {
    true
}

impl Default for Params {
    fn default() -> Self {
        Params {
            k: DEFAULT_K,
            alpha: DEFAULT_ALPHA,
            warn_alpha: DEFAULT_WARN_ALPHA,
            components: ComponentRule::Auto,
            max_components: DEFAULT_MAX_COMPONENTS,
            index: IndexChoice::Auto,
            hnsw_threshold: DEFAULT_HNSW_THRESHOLD,
            hnsw: HnswParams::default(),
            folds: DEFAULT_FOLDS,
            calibration_size: DEFAULT_CALIBRATION_SIZE,
            min_coverage: DEFAULT_MIN_COVERAGE,
            seed: DEFAULT_SEED,
            knn_statistic: KnnStatistic::MeanDistance,
            calibrate_by_group: false,
            blocks: None,
            value_channel: true,
        }
    }
}

macro_rules! setter {
    ($(#[$doc:meta])* $name:ident: $ty:ty) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.$name = value;
            self
        }
    };
}

impl Params {
    setter!(
        /// Number of nearest neighbours (default 10).
        k: usize
    );
    setter!(
        /// Level at or below which a patient is `invisible` (default 0.05).
        alpha: f64
    );
    setter!(
        /// Level at or below which a patient is `low_support` (default 0.2).
        warn_alpha: f64
    );
    setter!(
        /// How many principal components to keep (default: [`ComponentRule::Auto`]).
        components: ComponentRule
    );
    setter!(
        /// Upper bound on the number of components (default 64).
        max_components: usize
    );
    setter!(
        /// Which index to build (default auto).
        index: IndexChoice
    );
    setter!(
        /// Reference size above which `auto` may build a graph (when one
        /// exact search, measured at fit, costs more than
        /// [`crate::model::fit::GRAPH_MIN_COST`] members; default 100,000).
        hnsw_threshold: usize
    );
    setter!(
        /// HNSW graph parameters.
        hnsw: HnswParams
    );
    setter!(
        /// Number of cross-fitting folds (default 10).
        folds: usize
    );
    setter!(
        /// Maximum number of cross-fitted calibration members (default 20000).
        calibration_size: usize
    );
    setter!(
        /// Coverage below which a patient is `insufficient_data` (default 0.5).
        min_coverage: f64
    );
    setter!(
        /// Seed of every random choice (default 1).
        seed: u64
    );
    setter!(
        /// kNN statistic of the kNN channel (default: mean distance).
        knn_statistic: KnnStatistic
    );
    setter!(
        /// Keep calibration scores per reference group (Mondrian calibration).
        calibrate_by_group: bool
    );
    setter!(
        /// Feature blocks (multi-omic layers, [`crate::table::blocks`]): MFA
        /// block weights and one residual channel per block (default none).
        blocks: Option<crate::table::blocks::BlockSpec>
    );
    setter!(
        /// Score the value channel: each value against what the reference
        /// showed for its feature ([`crate::marginal`]; default true).
        value_channel: bool
    );

    /// Validates the ranges of every parameter.
    ///
    /// # Errors
    /// [`crate::ErrorKind::InvalidParam`] naming the parameter and the value.
    pub fn check(&self) -> Result<()> {
        if self.k == 0 || self.k > 1000 {
            return Err(Error::param(
                "k",
                format!("must be in 1..=1000, got {}", self.k),
            ));
        }
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::param(
                "alpha",
                format!("must be in (0, 1), got {}", self.alpha),
            ));
        }
        if !(self.warn_alpha >= self.alpha && self.warn_alpha < 1.0) {
            return Err(Error::param(
                "warn_alpha",
                format!(
                    "must be in [alpha, 1), got {} with alpha {}",
                    self.warn_alpha, self.alpha
                ),
            ));
        }
        match self.components {
            ComponentRule::Variance(v) if !(v > 0.0 && v <= 1.0) => {
                return Err(Error::param(
                    "variance",
                    format!("must be in (0, 1], got {v}"),
                ));
            }
            ComponentRule::Fixed(0) => {
                return Err(Error::param("components", "must be at least 1"));
            }
            _ => {}
        }
        if self.max_components == 0 {
            return Err(Error::param("max_components", "must be at least 1"));
        }
        if self.folds < 2 {
            return Err(Error::param(
                "folds",
                format!("must be at least 2, got {}", self.folds),
            ));
        }
        if self.calibration_size < 20 {
            return Err(Error::param(
                "calibration_size",
                format!("must be at least 20, got {}", self.calibration_size),
            ));
        }
        if !(0.0..=1.0).contains(&self.min_coverage) {
            return Err(Error::param(
                "min_coverage",
                format!("must be in [0, 1], got {}", self.min_coverage),
            ));
        }
        if self.hnsw.max_connections < 2 || self.hnsw.max_connections > 255 {
            return Err(Error::param("hnsw.max_connections", "must be in 2..=255"));
        }
        if !(1..=100_000).contains(&self.hnsw.ef_construction) {
            return Err(Error::param(
                "hnsw.ef_construction",
                "must be in 1..=100000",
            ));
        }
        if !(1..=100_000).contains(&self.hnsw.ef_search) {
            return Err(Error::param("hnsw.ef_search", "must be in 1..=100000"));
        }
        if !(1..=16).contains(&self.hnsw.max_layers) {
            return Err(Error::param("hnsw.max_layers", "must be in 1..=16"));
        }
        if self.calibration_size > 100_000_000 || self.max_components > 100_000 {
            return Err(Error::param(
                "calibration_size",
                "calibration_size must be ≤ 1e8 and max_components ≤ 1e5",
            ));
        }
        Ok(())
    }
}
