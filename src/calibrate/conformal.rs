//! Calibration members, conformal p-values and masked recalibration.
//!
//! Each calibration member belongs to one fold and is scored by that fold's
//! model, which never saw it. A patient is scored by every fold model; its
//! p-value (docs/method.md §6) is
//!
//! `p = (1 + Σ_k #{i ∈ F_k : S_i ≥ S^(k)}) / (m + 1)`
//!
//! which is the split-conformal p-value when there is one fold (the held-out
//! calibration set) and the cross-conformal p-value otherwise.

use serde::{Deserialize, Serialize};

use super::fold::{FoldModel, FoldScorer};
use super::masked::KeptMembers;
use super::scores::ChannelScores;
use crate::verdict::Verdict;

/// How calibration members are held out of the model that scores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Scheme {
    /// Split conformal: one fold model (the model's own projection, index
    /// and tail transforms), fitted without the calibration members.
    /// `P(p ≤ α) ≤ α` for an exchangeable patient.
    Split,
    /// Cross-conformal: `K` fold models, fold `k`'s projection, index and
    /// tail transforms fitted without fold `k`'s calibration members; each
    /// patient is scored by every fold model. `P(p ≤ α) ≤ 2α`.
    CrossConformal,
}

impl std::fmt::Display for Scheme {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scheme::Split => "split conformal",
            Scheme::CrossConformal => "cross-conformal",
        })
    }
}

/// One calibration member and its scores under its fold's model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationMember {
    /// Row of the reference table the model was fitted on.
    pub row: u32,
    /// The fold whose model scored it.
    pub fold: u32,
    /// Its group (an index into the model's group names), if any.
    pub group: Option<u32>,
    /// Channel scores under its fold's model, in channel order.
    pub scores: Vec<f64>,
    /// Combined novelty under its fold's model.
    pub novelty: f64,
}

/// Calibration scores of one set of members (all, one group's, or those
/// observing a mask), per fold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CalibrationSet {
    /// Number of members `m`.
    pub n_members: usize,
    /// Sorted novelty of the members of each fold.
    pub novelty: Vec<ChannelScores>,
    /// Sorted channel scores of the members of each fold: `[fold][channel]`.
    pub channels: Vec<Vec<ChannelScores>>,
}

impl CalibrationSet {
    /// The set of `members` among `n_folds` folds and `n_channels` channels.
    pub fn new<'a>(
        members: impl IntoIterator<Item = &'a CalibrationMember>,
        n_folds: usize,
        n_channels: usize,
    ) -> Self {
        let mut nov = vec![Vec::new(); n_folds];
        let mut ch = vec![vec![Vec::new(); n_channels]; n_folds];
        let mut n = 0usize;
        for m in members {
            let f = m.fold as usize;
            if f >= n_folds {
                continue;
            }
            n += 1;
            nov[f].push(m.novelty);
            for (j, s) in m.scores.iter().enumerate().take(n_channels) {
                ch[f][j].push(*s);
            }
        }
        CalibrationSet {
            n_members: n,
            novelty: nov.into_iter().map(ChannelScores::new).collect(),
            channels: ch
                .into_iter()
                .map(|f| f.into_iter().map(ChannelScores::new).collect())
                .collect(),
        }
    }

    /// The conformal p-value of a point whose novelty under fold `k`'s model
    /// is `novelty[k]`: `(1 + Σ_k #{i ∈ F_k : S_i ≥ novelty[k]}) / (m + 1)`.
    /// `NaN` when any novelty is not a number (fail closed: never supported).
    pub fn p_value(&self, novelty: &[f64]) -> f64 {
        count_p(
            self.novelty.iter().map(ChannelScores::sorted),
            self.novelty.len(),
            novelty,
            self.n_members,
        )
    }

    /// The same p-value for channel `j` alone.
    pub fn channel_p_value(&self, j: usize, scores: &[f64]) -> f64 {
        count_p(
            self.channels
                .iter()
                .map(|f| f.get(j).map_or(&[][..], ChannelScores::sorted)),
            self.channels.len(),
            scores,
            self.n_members,
        )
    }

    /// The smallest p-value this set can give, `1/(m + 1)`.
    pub fn min_p_value(&self) -> f64 {
        1.0 / (self.n_members + 1) as f64
    }
}

/// `(1 + #{calibration scores ≥ the patient's, fold by fold}) / (m + 1)`:
/// `per_fold` yields each fold's sorted scores (`n_folds` of them), `s` the
/// patient's score under each fold model.
fn count_p<'a>(
    per_fold: impl Iterator<Item = &'a [f64]>,
    n_folds: usize,
    s: &[f64],
    m: usize,
) -> f64 {
    if s.len() != n_folds || s.iter().any(|x| x.is_nan()) {
        return f64::NAN;
    }
    let mut count = 0usize;
    for (sorted, &x) in per_fold.zip(s) {
        count += sorted.len() - sorted.partition_point(|&c| c < x);
    }
    (1 + count) as f64 / (m + 1) as f64
}

/// Raw rows of the calibration members used to recalibrate patients with
/// missing features (the first ones in calibration order, up to
/// [`MASK_MEMBERS`]).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MaskedMembers {
    /// Positions in [`Calibration::members`].
    pub members: Vec<u32>,
    /// Their raw rows (model feature order, `NaN` = missing), row-major.
    pub raw: Vec<f64>,
}

/// Most calibration members rescored for a missingness pattern.
pub const MASK_MEMBERS: usize = 2000;

/// The calibration of a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// How members are held out.
    pub scheme: Scheme,
    /// The fold models (one under split conformal).
    pub folds: Vec<FoldModel>,
    /// Calibration members, in calibration order.
    pub members: Vec<CalibrationMember>,
    /// All members.
    pub pooled: CalibrationSet,
    /// Per reference group (same order as the group names); `None` for a
    /// group too small to calibrate (falls back to pooled).
    pub by_group: Option<Vec<Option<CalibrationSet>>>,
    /// Members kept with their raw rows for masked recalibration.
    pub masked: MaskedMembers,
    /// Members that miss at least one feature: when not 0, every patient is
    /// recalibrated on the members observing its features.
    pub incomplete_members: usize,
    /// How the calibration was made (e.g. "10-fold cross-conformal on 60 of 60 members").
    pub method: String,
}

/// Calibration sets for the members observing every feature of one mask.
#[derive(Debug, Clone, PartialEq)]
pub struct MaskedCalibration {
    /// All of them.
    pub pooled: CalibrationSet,
    /// Per group (as [`Calibration::by_group`]).
    pub by_group: Option<Vec<Option<CalibrationSet>>>,
}

impl Calibration {
    /// Number of folds.
    pub fn n_folds(&self) -> usize {
        self.folds.len()
    }

    /// Rescores the masked members under `mask` (`true` = observed): members
    /// that observe every feature of the mask, scored by their fold's model
    /// with the other features hidden. `scorer(k)` gives fold `k`'s scorer;
    /// `kept`, what was kept of the members to rescore them faster (built by
    /// [`KeptMembers::build`] on this calibration and these scorers; the
    /// result is the same with or without).
    pub fn masked<'a>(
        &self,
        mask: &[bool],
        scorer: impl Fn(usize) -> FoldScorer<'a>,
        min_group: usize,
        kept: Option<&KeptMembers>,
    ) -> MaskedCalibration {
        let p = mask.len();
        let mut rescored: Vec<CalibrationMember> = Vec::new();
        let mut row = vec![f64::NAN; p];
        // Every rescored member misses the same features: each fold model
        // factorises its projection once.
        let mut solvers = vec![crate::project::MaskedSolver::default(); self.n_folds().max(1)];
        // Fold by fold, so that one fold's index stays in cache while its
        // members are searched (the sets below do not depend on the order).
        let fold_of = |pos: u32| self.members.get(pos as usize).map_or(u32::MAX, |m| m.fold);
        let mut order: Vec<usize> = (0..self.masked.members.len()).collect();
        order.sort_by_key(|&slot| (fold_of(self.masked.members[slot]), slot));
        for slot in order {
            let pos = self.masked.members[slot];
            let Some(m) = self.members.get(pos as usize) else {
                continue;
            };
            let Some(raw) = self.masked.raw.get(slot * p..(slot + 1) * p) else {
                continue;
            };
            if mask.iter().zip(raw).any(|(&o, v)| o && v.is_nan()) {
                continue;
            }
            for j in 0..p {
                row[j] = if mask[j] { raw[j] } else { f64::NAN };
            }
            let f = m.fold as usize;
            let s = match (solvers.get_mut(f), kept.and_then(|k| k.surprisals(slot))) {
                (Some(solver), Some(kept)) => scorer(f).score_kept(&row, solver, kept),
                (Some(solver), None) => scorer(f).score_reusing(&row, solver),
                (None, _) => scorer(f).score(&row),
            };
            rescored.push(CalibrationMember {
                row: m.row,
                fold: m.fold,
                group: m.group,
                scores: s.scores,
                novelty: s.novelty,
            });
        }
        let k = self.n_folds();
        let c = self.folds.first().map_or(0, |f| f.state.channels().len());
        let by_group = self.by_group.as_ref().map(|bg| {
            (0..bg.len())
                .map(|g| {
                    let mine: Vec<&CalibrationMember> = rescored
                        .iter()
                        .filter(|m| m.group == Some(g as u32))
                        .collect();
                    (bg[g].is_some() && mine.len() >= min_group)
                        .then(|| CalibrationSet::new(mine, k, c))
                })
                .collect()
        });
        MaskedCalibration {
            pooled: CalibrationSet::new(&rescored, k, c),
            by_group,
        }
    }
}

/// Benjamini–Hochberg adjusted p-values (q-values) of a batch, in input
/// order; `NaN` p-values stay `NaN` and do not count in the batch size.
///
/// Rejecting every patient with `q ≤ Q` controls the false discovery rate
/// at `Q` for conformal p-values sharing one split-conformal calibration set
/// (Bates, Candès, Lei, Romano & Sesia 2023, PRDS).
pub fn benjamini_hochberg(p: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..p.len()).filter(|&i| !p[i].is_nan()).collect();
    idx.sort_by(|&a, &b| p[a].total_cmp(&p[b]).then(a.cmp(&b)));
    let n = idx.len() as f64;
    let mut q = vec![f64::NAN; p.len()];
    let mut running = 1.0f64;
    for (r, &i) in idx.iter().enumerate().rev() {
        running = running.min(p[i] * n / (r + 1) as f64).min(1.0);
        q[i] = running;
    }
    q
}

/// The verdict for a combined p-value (`NaN` fails closed: `insufficient_data`).
pub fn verdict(p_value: f64, alpha: f64, warn_alpha: f64) -> Verdict {
    if p_value.is_nan() {
        Verdict::InsufficientData
    } else {
        Verdict::from_p_value(p_value, alpha, warn_alpha)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(fold: u32, novelty: f64) -> CalibrationMember {
        CalibrationMember {
            row: 0,
            fold,
            group: None,
            scores: vec![novelty],
            novelty,
        }
    }

    #[test]
    fn cross_conformal_p_value_counts_each_fold_against_its_own_score() {
        let members = [
            member(0, 1.0),
            member(0, 3.0),
            member(1, 2.0),
            member(1, 4.0),
        ];
        let set = CalibrationSet::new(&members, 2, 1);
        // fold 0: #{≥ 2.5} = 1; fold 1: #{≥ 2.5} = 1.
        assert_eq!(set.p_value(&[2.5, 2.5]), 3.0 / 5.0);
        // fold 0: #{≥ 0} = 2; fold 1: #{≥ 5} = 0.
        assert_eq!(set.p_value(&[0.0, 5.0]), 3.0 / 5.0);
        assert_eq!(set.p_value(&[9.0, 9.0]), 1.0 / 5.0);
        assert!(set.p_value(&[f64::NAN, 1.0]).is_nan());
        assert_eq!(set.channel_p_value(0, &[9.0, 0.0]), 3.0 / 5.0);
    }

    #[test]
    fn bh_matches_a_hand_computed_example() {
        let q = benjamini_hochberg(&[0.01, 0.04, 0.03, f64::NAN, 0.5]);
        // sorted: 0.01 (r1), 0.03 (r2), 0.04 (r3), 0.5 (r4); n = 4.
        assert!((q[0] - 0.04).abs() < 1e-12);
        assert!((q[2] - 0.04 * 4.0 / 3.0).abs() < 1e-12);
        assert!((q[1] - 0.04 * 4.0 / 3.0).abs() < 1e-12);
        assert!(q[3].is_nan());
        assert_eq!(q[4], 0.5);
    }

    #[test]
    fn nan_fails_closed() {
        assert_eq!(verdict(f64::NAN, 0.05, 0.2), Verdict::InsufficientData);
    }
}
