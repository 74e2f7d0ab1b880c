//! What a model keeps of its masked calibration members to rescore them
//! under each patient's missingness pattern.
//!
//! A patient with missing features is calibrated against up to
//! [`super::MASK_MEMBERS`] calibration members rescored with the same
//! features hidden ([`super::Calibration::masked`]). With values missing at
//! random every patient has its own pattern, and the rescoring is the cost
//! of the assessment: one projection, one nearest-neighbour search of the
//! fold's training members and one value-channel score per member.
//!
//! The value channel's surprisal of each of a member's values does not
//! depend on the pattern: it is kept per member, once per loaded model
//! ([`KeptMembers::build`]), and the masked row's score aggregates those of
//! the features it keeps ([`crate::marginal::Marginals::score_of_surprisals`]:
//! the same sums in the same order, so the scores are bit-identical).
//!
//! Tried and left out: a pivot for the search (the member's unmasked search
//! coordinates, its nearest training members and the triangle inequality).
//! On the adbench-dev tables a masked member's projection lands too far from
//! its unmasked one (on 24_mnist, 18–530 against a 128th-neighbour distance
//! of 5.4) for the bound to ever prove the kept neighbours nearest.

use super::conformal::Calibration;
use super::fold::FoldScorer;

/// Most surprisal values kept in all (members × features; 32 MB of `f64`):
/// above it, the value channel is scored from the row each time.
pub const MAX_KEPT_SURPRISALS: usize = 1 << 22;

/// The value channel's surprisals of each masked calibration member's
/// values under its fold, by slot of [`super::MaskedMembers::members`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeptMembers {
    /// `p` per kept member, or empty (nothing kept).
    surprisals: Vec<f64>,
    /// Features per member.
    p: usize,
}

impl KeptMembers {
    /// Builds what is kept for every masked member of `cal` (nothing when
    /// the model has no value channel or when it would exceed
    /// [`MAX_KEPT_SURPRISALS`]); `scorer(k)` gives fold `k`'s scorer.
    /// Sequential: it runs once per loaded model, at the first patient that
    /// needs masked recalibration, possibly from within a parallel
    /// assessment.
    pub fn build<'a>(cal: &Calibration, scorer: impl Fn(usize) -> FoldScorer<'a>) -> KeptMembers {
        let slots = cal.masked.members.len();
        if slots == 0 || !cal.masked.raw.len().is_multiple_of(slots) {
            return KeptMembers::default();
        }
        let p = cal.masked.raw.len() / slots;
        if slots.saturating_mul(p) > MAX_KEPT_SURPRISALS {
            return KeptMembers::default();
        }
        let mut surprisals = Vec::with_capacity(slots * p);
        for (slot, &pos) in cal.masked.members.iter().enumerate() {
            let raw = &cal.masked.raw[slot * p..(slot + 1) * p];
            let fold = cal.members.get(pos as usize).map(|m| m.fold as usize);
            let marginals = fold.and_then(|f| scorer(f).model.state.extra.value.as_ref());
            match marginals {
                Some(v) if v.len() == p => surprisals.extend(v.surprisals(raw)),
                // No value channel (or a member out of range): keep nothing.
                _ => return KeptMembers::default(),
            }
        }
        KeptMembers { surprisals, p }
    }

    /// The kept surprisals of the member in `slot`, if any.
    pub fn surprisals(&self, slot: usize) -> Option<&[f64]> {
        if self.p == 0 {
            return None;
        }
        self.surprisals.get(slot * self.p..(slot + 1) * self.p)
    }
}
