//! Calibration: channels, fold models and conformal p-values.
//!
//! Fifth step of the pipeline. [`channel`] lists the scoring channels and
//! combines their scores into one novelty ([`Scorer`]); [`fold`] holds the
//! fitted functions that score calibration members and patients alike
//! ([`FoldModel`]); [`conformal`] turns those scores into p-values, under
//! split conformal for large references and cross-conformal for small ones
//! ([`Calibration`]), and recalibrates patients with missing features
//! (faster with what [`masked`] keeps of the members);
//! [`scores`] holds the sorted scores and tail transforms.

pub mod block;
pub mod channel;
pub mod conformal;
pub mod fold;
pub mod masked;
pub mod scores;

pub use block::BlockState;
pub use channel::{Channel, ChannelExtra, ChannelSpec, ChannelState, Describe, PointView, Scorer};
pub use conformal::{
    Calibration, CalibrationMember, CalibrationSet, MASK_MEMBERS, MaskedCalibration, MaskedMembers,
    Scheme, benjamini_hochberg,
};
pub use fold::{FoldModel, FoldScorer, PointScore};
pub use masked::KeptMembers;
pub use scores::{ChannelScores, TAIL_FRACTION, TailTransform};
