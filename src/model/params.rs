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
pub const DEFAULT_HNSW_THRESHOLD: usize = 2_000_000;

/// Which index to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum IndexChoice {
    /// Exact search (a k-d tree in low dimension), except for references
    /// larger than the HNSW threshold whose search embedding has more than
    /// [`crate::index::exact::KD_TREE_MAX_DIM`] components: an HNSW graph.
    #[default]
    Auto,
    /// Always exact.
    Exact,
    /// Always HNSW (verdicts are still exact: non-supported patients are re-checked).
    Hnsw,
}

/// Everything `fit` needs to know. Build with [`Params::default`] and the setters;
/// `fit` validates with [`Params::check`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Params {
    pub(crate) k: usize,
    pub(crate) alpha: f64,
    pub(crate) warn_alpha: f64,
    pub(crate) components: ComponentRule,
    pub(crate) max_components: usize,
    pub(crate) index: IndexChoice,
    pub(crate) hnsw_threshold: usize,
    pub(crate) hnsw: HnswParams,
    pub(crate) folds: usize,
    pub(crate) calibration_size: usize,
    pub(crate) min_coverage: f64,
    pub(crate) seed: u64,
    pub(crate) knn_statistic: KnnStatistic,
    pub(crate) calibrate_by_group: bool,
    /// Feature blocks (multi-omic layers). Not stored: the model keeps the
    /// resolved blocks in its channels' state (see [`crate::table::blocks`]).
    #[serde(skip)]
    pub(crate) blocks: Option<crate::table::blocks::BlockSpec>,
    /// Whether to score the value channel. Not stored: a model has the
    /// channel or not ([`crate::calibrate::ChannelState::channels`]).
    #[serde(skip, default = "yes")]
    pub(crate) value_channel: bool,
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
        /// Reference size above which `auto` builds an HNSW graph.
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

    /// Number of neighbours.
    pub fn get_k(&self) -> usize {
        self.k
    }
    /// Level for `invisible`.
    pub fn get_alpha(&self) -> f64 {
        self.alpha
    }
    /// Level for `low_support`.
    pub fn get_warn_alpha(&self) -> f64 {
        self.warn_alpha
    }
    /// Component rule.
    pub fn get_components(&self) -> ComponentRule {
        self.components
    }
    /// Coverage floor.
    pub fn get_min_coverage(&self) -> f64 {
        self.min_coverage
    }
    /// Seed.
    pub fn get_seed(&self) -> u64 {
        self.seed
    }
    /// Folds.
    pub fn get_folds(&self) -> usize {
        self.folds
    }
    /// Calibration size cap.
    pub fn get_calibration_size(&self) -> usize {
        self.calibration_size
    }
    /// Index choice.
    pub fn get_index(&self) -> IndexChoice {
        self.index
    }

    /// HNSW graph parameters (in a fitted model, `ef_search` is the beam
    /// width fit settled on, see [`crate::model::fit::EF_RAISE_LIMIT`]).
    pub fn get_hnsw(&self) -> HnswParams {
        self.hnsw
    }

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
