//! Per-feature observed support and the value channel.
//!
//! A side branch of the pipeline, beside standardise → project → index: every
//! reference column, constant ones included, keeps what the reference has
//! shown for it ([`FeatureSupport`]): the number of observed values, the range
//! and, for integer-valued columns with at most [`MAX_DISCRETE_VALUES`]
//! distinct values (genotype dosages, counts), every value seen with its
//! count; for other columns a quantile sketch of at most [`SKETCH_KNOTS`]
//! order statistics (exact up to that many members).
//!
//! A value `x` of feature `j` gets a *marginal p-value* against the others'
//! values of that feature, with add-one smoothing and a common denominator
//! `n_j + 1` (`n_j` = observed reference values):
//!
//! * integer-valued columns (rarity): `p = (1 + Σ_{v : c(v) ≤ c(x)} c(v)) / (n_j + 1)`,
//!   where `c(v)` counts the others holding `v`; a value never seen gets `1 / (n_j + 1)`;
//! * other columns (two-sided tail): `p = min(1, (1 + 2 min(L, R)) / (n_j + 1))`
//!   with `L = #{v ≤ x}`, `R = #{v ≥ x}` among the others; beyond the range, `1 / (n_j + 1)`.
//!
//! Each fold model fits its supports on its own training rows
//! ([`crate::calibrate::ChannelState::fit`]). For a patient or a calibration
//! member (neither is among those rows) the others are the `n_j` training
//! members; for a training member scored to fit the tail transforms they are
//! the other `n_j − 1` (its own value is left out: exact leave-one-out) and
//! the denominator stays `n_j + 1`, so a member that is the sole carrier of a
//! value scores exactly like a point carrying a value the rows never showed.
//!
//! The channel score of a row ([`ValueScore`]) aggregates the per-feature
//! surprisals `s_j = −ln p_j` the ECOD way (Li et al., 2022, per-feature
//! empirical tails) but by their maximum, which a single never-seen value
//! dominates: `score = max_j s_j + TIE_WEIGHT · mean_j s_j` (the mean only
//! orders rows of equal maximum). The score is turned into the one conformal
//! p-value by the calibration, like the kNN and residual channels.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Integer-valued columns with at most this many distinct values keep every
/// value seen and its count.
pub const MAX_DISCRETE_VALUES: usize = 64;

/// Continuous columns keep at most this many order statistics (all values
/// when the reference has no more observed values than this).
pub const SKETCH_KNOTS: usize = 257;

/// Weight of the mean surprisal in the row score (orders rows whose rarest
/// values are equally rare).
pub const TIE_WEIGHT: f64 = 0.01;

/// Number of `value: count` pairs an explanation lists.
const EXPLAIN_VALUES: usize = 4;

/// What the reference showed for one feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSupport {
    /// Number of observed (non-missing) reference values.
    pub n_observed: u32,
    /// Smallest observed value (`NaN` when none).
    pub min: f64,
    /// Largest observed value (`NaN` when none).
    pub max: f64,
    /// Second smallest observed value (`NaN` with fewer than two).
    pub min2: f64,
    /// Second largest observed value (`NaN` with fewer than two).
    pub max2: f64,
    /// Mean of the observed values.
    pub mean: f64,
    /// Sum of squared deviations from the mean (for leave-one-out spreads).
    pub sum_sq: f64,
    /// The values themselves, summarised.
    pub kind: SupportKind,
}

/// How a feature's observed values are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SupportKind {
    /// Integer-valued with few distinct values: each value seen (ascending)
    /// and how many reference members hold it.
    Discrete {
        /// Distinct values, ascending.
        values: Vec<f64>,
        /// Members holding each value.
        counts: Vec<u32>,
    },
    /// Any other column: ascending order statistics at evenly spaced ranks
    /// `round(i (n − 1) / (K − 1))`, `i = 0..K` (every value when `n ≤ K`).
    Continuous {
        /// The order statistics, ascending (first = min, last = max).
        knots: Vec<f64>,
    },
}

impl FeatureSupport {
    /// Summarises the observed values of one feature (`NaN` = missing, ignored).
    pub fn from_values(values: impl IntoIterator<Item = f64>) -> FeatureSupport {
        crate::cpu::clear_upper_vector_state();
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        sort_total(&mut v);
        let n = v.len();
        let (min, max) = match (v.first(), v.last()) {
            (Some(a), Some(b)) => (*a, *b),
            _ => (f64::NAN, f64::NAN),
        };
        let mean = if n > 0 {
            v.iter().sum::<f64>() / n as f64
        } else {
            f64::NAN
        };
        let sum_sq = v.iter().map(|x| (x - mean) * (x - mean)).sum();
        let (min2, max2) = if n >= 2 {
            (v[1], v[n - 2])
        } else {
            (f64::NAN, f64::NAN)
        };
        let integer = v.iter().all(|x| x.is_finite() && x.fract() == 0.0);
        let mut distinct: Vec<f64> = Vec::new();
        let mut counts: Vec<u32> = Vec::new();
        if integer {
            for &x in &v {
                if distinct.last() == Some(&x) {
                    if let Some(c) = counts.last_mut() {
                        *c += 1;
                    }
                } else {
                    if distinct.len() == MAX_DISCRETE_VALUES {
                        distinct.clear();
                        break;
                    }
                    distinct.push(x);
                    counts.push(1);
                }
            }
        }
        let kind = if integer && !distinct.is_empty() {
            SupportKind::Discrete {
                values: distinct,
                counts,
            }
        } else if n <= SKETCH_KNOTS {
            SupportKind::Continuous { knots: v }
        } else {
            let k = SKETCH_KNOTS;
            SupportKind::Continuous {
                knots: (0..k)
                    .map(|i| v[((i * (n - 1)) as f64 / (k - 1) as f64).round() as usize])
                    .collect(),
            }
        };
        FeatureSupport {
            n_observed: n as u32,
            min,
            max,
            min2,
            max2,
            mean,
            sum_sq,
            kind,
        }
    }

    /// Whether every observed reference value is the same (or none is observed).
    pub fn is_constant(&self) -> bool {
        self.n_observed == 0 || self.min == self.max
    }

    /// Reference members holding exactly `x` (an estimate for a continuous
    /// column with more members than sketch knots; 0 outside the range).
    fn count_equal(&self, x: f64) -> f64 {
        match &self.kind {
            SupportKind::Discrete { values, counts } => values
                .binary_search_by(|v| v.total_cmp(&x))
                .map_or(0.0, |i| counts[i] as f64),
            SupportKind::Continuous { knots } => {
                let lo = knots.partition_point(|&v| v < x);
                let hi = knots.partition_point(|&v| v <= x);
                ((hi - lo) as f64 * self.rank_step()).min(self.n_observed as f64)
            }
        }
    }

    /// Members per knot step of a continuous sketch (1 when exact).
    fn rank_step(&self) -> f64 {
        match &self.kind {
            SupportKind::Continuous { knots } if knots.len() > 1 => {
                (self.n_observed as f64 - 1.0) / (knots.len() - 1) as f64
            }
            _ => 1.0,
        }
    }

    /// `(L, R) = (#{v ≤ x}, #{v ≥ x})` over the reference (interpolated for a
    /// sketch; exact at and beyond the range).
    fn tail_counts(&self, x: f64) -> (f64, f64) {
        let n = self.n_observed as f64;
        if self.n_observed == 0 {
            return (0.0, 0.0);
        }
        if x < self.min {
            return (0.0, n);
        }
        if x > self.max {
            return (n, 0.0);
        }
        match &self.kind {
            SupportKind::Discrete { values, counts } => {
                let i = values.partition_point(|&v| v < x);
                let j = values.partition_point(|&v| v <= x);
                let below: u32 = counts[..i].iter().sum();
                let le: u32 = counts[..j].iter().sum();
                (le as f64, n - below as f64)
            }
            SupportKind::Continuous { knots } => {
                // One binary search: the knots equal to x follow the first
                // one not below it (few, for a continuous column).
                let lo = knots.partition_point(|&v| v < x);
                let hi = lo + knots[lo..].iter().take_while(|&&v| v <= x).count();
                if knots.len() as u32 == self.n_observed {
                    return (hi as f64, n - lo as f64);
                }
                // Interpolated rank of x among the order statistics.
                let step = self.rank_step();
                let rank_le = if hi == 0 {
                    0.0
                } else if hi >= knots.len() {
                    n
                } else {
                    let (a, b) = (knots[hi - 1], knots[hi]);
                    let t = if b > a { (x - a) / (b - a) } else { 0.0 };
                    ((hi - 1) as f64 + t) * step + 1.0
                };
                let rank_lt = if lo == 0 {
                    0.0
                } else {
                    let (a, b) = (knots[lo - 1], knots[lo.min(knots.len() - 1)]);
                    let t = if b > a { (x - a) / (b - a) } else { 1.0 };
                    ((lo - 1) as f64 + t) * step
                };
                (rank_le.clamp(0.0, n), (n - rank_lt).clamp(0.0, n))
            }
        }
    }

    /// Marginal p-value of `x` against the reference members other than
    /// `own` (the member's own value when scoring a calibration member,
    /// `None` for a patient), in `(0, 1]`; `NaN` for a missing `x` or a
    /// feature with no observed value. See the module docs for the formulas.
    pub fn p_value(&self, x: f64, own: Option<f64>) -> f64 {
        if x.is_nan() || self.n_observed == 0 {
            return f64::NAN;
        }
        let denom = self.n_observed as f64 + 1.0;
        // The member's own value leaves the counts (it is not missing: a
        // member with a missing value never scores this feature).
        let own_here = |pred: bool| if own.is_some() && pred { 1.0 } else { 0.0 };
        let p = match &self.kind {
            SupportKind::Discrete { values, counts } => {
                let own_of = |v: f64| own_here(own == Some(v));
                let c_x = (self.count_equal(x) - own_of(x)).max(0.0);
                let mut rarer = 0.0;
                for (&v, &c) in values.iter().zip(counts) {
                    let c = c as f64 - own_of(v);
                    if c <= c_x && c > 0.0 {
                        rarer += c;
                    }
                }
                // Values never seen (c = 0) add nothing; x itself is among
                // the rarer ones when seen.
                (1.0 + rarer) / denom
            }
            SupportKind::Continuous { .. } => {
                let (l, r) = self.tail_counts(x);
                let (ol, or) = match own {
                    Some(o) => (own_here(o <= x), own_here(o >= x)),
                    None => (0.0, 0.0),
                };
                let m = (l - ol).max(0.0).min((r - or).max(0.0));
                ((1.0 + 2.0 * m) / denom).min(1.0)
            }
        };
        p.clamp(1.0 / denom, 1.0)
    }

    /// The surprisal of `x`: `−ln p` ([`FeatureSupport::p_value`]) plus, for
    /// a value outside what the others showed (a value never seen in an
    /// integer-valued column, a value beyond the range otherwise), the gap
    /// bonus `ln(1 + min(gap / sd, n))`: `gap` is the distance to the nearest
    /// value the others showed and `sd` their standard deviation (a gap in a
    /// column the others never varied in gets the cap `ln(1 + n)`). The
    /// bonus separates a value off a constant column from a rare genotype in
    /// a polymorphic one. `NaN` when `x` is missing or nothing was observed.
    pub fn surprisal(&self, x: f64, own: Option<f64>) -> f64 {
        let p = self.p_value(x, own);
        if p.is_nan() {
            return f64::NAN;
        }
        let n = self.n_observed as f64;
        let mine = own.is_some();
        let others = if mine { n - 1.0 } else { n };
        if others < 1.0 {
            return -p.ln();
        }
        let gap = match &self.kind {
            SupportKind::Discrete { values, counts } => {
                let own_v = own.unwrap_or(f64::NAN);
                let seen =
                    |i: usize| counts[i] as f64 - if values[i] == own_v { 1.0 } else { 0.0 } > 0.0;
                if (0..values.len()).any(|i| values[i] == x && seen(i)) {
                    0.0
                } else {
                    (0..values.len())
                        .filter(|&i| seen(i))
                        .map(|i| (values[i] - x).abs())
                        .fold(f64::INFINITY, f64::min)
                }
            }
            SupportKind::Continuous { .. } => {
                // The others' range: the member's own extreme leaves it.
                let lo = if mine && own == Some(self.min) {
                    self.min2
                } else {
                    self.min
                };
                let hi = if mine && own == Some(self.max) {
                    self.max2
                } else {
                    self.max
                };
                if x < lo {
                    lo - x
                } else if x > hi {
                    x - hi
                } else {
                    0.0
                }
            }
        };
        if !(gap > 0.0 && gap.is_finite()) {
            return -p.ln();
        }
        // The others' standard deviation (the member's value removed).
        let (mean, sum_sq) = match own {
            Some(o) if n >= 2.0 => {
                let m2 = (n * self.mean - o) / (n - 1.0);
                (m2, (self.sum_sq - (o - self.mean) * (o - m2)).max(0.0))
            }
            _ => (self.mean, self.sum_sq),
        };
        let sd = if others >= 2.0 {
            (sum_sq / (others - 1.0)).sqrt()
        } else {
            0.0
        };
        let ratio = if sd > 1e-9 * mean.abs().max(gap).max(1e-300) {
            (gap / sd).min(n)
        } else {
            n
        };
        -p.ln() + ratio.ln_1p()
    }

    /// A short account of what the reference showed for this feature, and
    /// how `x` compares: e.g. `never seen in 400 reference members (all 0)`.
    pub fn explain(&self, x: f64) -> String {
        let n = self.n_observed;
        let g = crate::output::fmt_f64;
        match &self.kind {
            SupportKind::Discrete { values, counts } => {
                let c = self.count_equal(x) as u32;
                let shown = if values.len() == 1 {
                    format!("all {}", g(values[0]))
                } else {
                    let mut order: Vec<usize> = (0..values.len()).collect();
                    order.sort_by(|&a, &b| counts[b].cmp(&counts[a]).then(a.cmp(&b)));
                    let mut parts: Vec<String> = order
                        .iter()
                        .take(EXPLAIN_VALUES)
                        .map(|&i| format!("{}: {}", g(values[i]), counts[i]))
                        .collect();
                    if values.len() > EXPLAIN_VALUES {
                        parts.push(format!("{} more values", values.len() - EXPLAIN_VALUES));
                    }
                    parts.join(", ")
                };
                if c == 0 {
                    format!("never seen in {n} reference members ({shown})")
                } else {
                    format!("seen in {c} of {n} reference members ({shown})")
                }
            }
            SupportKind::Continuous { .. } => {
                let range = if self.min == self.max {
                    format!("all {}", g(self.min))
                } else {
                    format!("range {} to {}", g(self.min), g(self.max))
                };
                if x < self.min {
                    format!("below all {n} reference members ({range})")
                } else if x > self.max {
                    format!("above all {n} reference members ({range})")
                } else {
                    let (l, r) = self.tail_counts(x);
                    let (side, count) = if l <= r {
                        ("lowest", l)
                    } else {
                        ("highest", r)
                    };
                    let share = 100.0 * count / n.max(1) as f64;
                    format!("among the {side} {share:.1}% of {n} reference members ({range})")
                }
            }
        }
    }
}

/// Sorts `v` in the order of [`f64::total_cmp`]: the same result as
/// `v.sort_by(f64::total_cmp)` (values equal in that order are the same
/// bits), faster, by sorting integer keys that order like `total_cmp`
/// (a 180,000-value column: 3.6 ms instead of 5.4 ms; fit summarises every
/// column of the reference).
pub(crate) fn sort_total(v: &mut [f64]) {
    // The sign bit set flips every bit, else sets the sign bit: unsigned
    // order of the keys is `total_cmp`'s order of the values.
    let key = |x: f64| {
        let b = x.to_bits();
        if b >> 63 == 1 { !b } else { b | (1 << 63) }
    };
    let value = |k: u64| f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k });
    let mut keys: Vec<u64> = v.iter().map(|&x| key(x)).collect();
    keys.sort_unstable();
    for (x, &k) in v.iter_mut().zip(&keys) {
        *x = value(k);
    }
}

/// Every model feature's support (constant columns included), in model
/// feature order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Marginals {
    /// Support of each feature.
    pub support: Vec<FeatureSupport>,
}

/// The value channel's score of one row and the feature that drives it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueScore {
    /// `max_j s_j + TIE_WEIGHT · mean_j s_j` over observed features, with
    /// `s_j` the [`FeatureSupport::surprisal`] (0 when none is observed).
    pub score: f64,
    /// The feature of largest surprisal (lowest index among ties), if any.
    pub feature: Option<usize>,
    /// Its marginal p-value.
    pub p_value: f64,
}

/// `max_j s_j + TIE_WEIGHT · mean_j s_j` over the surprisals that are not
/// `NaN` (0 when none is), and the first feature of largest surprisal.
fn aggregate(surprisals: impl Iterator<Item = f64>) -> (f64, Option<usize>) {
    let mut running = Running::default();
    for (j, surprisal) in surprisals.enumerate() {
        running.add(j, surprisal);
    }
    running.finish()
}

/// Rows scored together by [`Marginals::score_rows`] (their values copied
/// feature by feature: 64 × 2,500 features is 1.3 MB).
pub const SCORE_BATCH_ROWS: usize = 64;

/// [`aggregate`] kept running, a feature at a time (in feature order).
#[derive(Debug, Clone, Copy)]
struct Running {
    best: f64,
    best_j: Option<usize>,
    sum: f64,
    n: usize,
}

impl Default for Running {
    fn default() -> Self {
        Running {
            best: f64::NEG_INFINITY,
            best_j: None,
            sum: 0.0,
            n: 0,
        }
    }
}

impl Running {
    #[inline]
    fn add(&mut self, j: usize, surprisal: f64) {
        if surprisal.is_nan() {
            return;
        }
        self.sum += surprisal;
        self.n += 1;
        if surprisal > self.best {
            self.best = surprisal;
            self.best_j = Some(j);
        }
    }

    fn finish(self) -> (f64, Option<usize>) {
        if self.n == 0 {
            (0.0, None)
        } else {
            (
                self.best + TIE_WEIGHT * self.sum / self.n as f64,
                self.best_j,
            )
        }
    }
}

/// Columns gathered together by [`Marginals::fit`] (at 1M rows, 128 MB).
const FIT_BLOCK_COLUMNS: usize = 16;

impl Marginals {
    /// Summarises every column of a row-major `n × p` matrix over the rows
    /// `rows` (parallel over columns; deterministic).
    pub fn fit(values: &[f64], p: usize, rows: &[usize]) -> Marginals {
        // Columns are gathered a block at a time in one pass over the rows
        // (a pass per column reads the whole matrix `p` times: 1M × 96 took
        // seconds of memory traffic), then summarised in parallel.
        let mut support = Vec::with_capacity(p);
        for start in (0..p).step_by(FIT_BLOCK_COLUMNS) {
            let end = (start + FIT_BLOCK_COLUMNS).min(p);
            let mut columns: Vec<Vec<f64>> = vec![Vec::with_capacity(rows.len()); end - start];
            for &r in rows {
                let row = &values[r * p + start..r * p + end];
                for (column, &v) in columns.iter_mut().zip(row) {
                    column.push(v);
                }
            }
            support.par_extend(columns.into_par_iter().map(FeatureSupport::from_values));
        }
        Marginals { support }
    }

    /// [`Marginals::fit`] of each of `row_sets` (rows of `values`): the same
    /// supports bit for bit, faster for many sets of the same rows (the
    /// training parts of a cross-fit). Each column is sorted once over every
    /// row any set holds, and each set's values are read off that order
    /// already sorted (a support depends only on the values, and
    /// `f64::total_cmp` orders equal values identically).
    pub fn fit_many(values: &[f64], p: usize, row_sets: &[Vec<usize>]) -> Vec<Marginals> {
        let n_rows = row_sets
            .iter()
            .flat_map(|s| s.iter())
            .max()
            .map_or(0, |&r| r + 1);
        let mut member = vec![vec![false; n_rows]; row_sets.len()];
        for (m, set) in member.iter_mut().zip(row_sets) {
            for &r in set {
                m[r] = true;
            }
        }
        let union: Vec<usize> = (0..n_rows)
            .filter(|&r| member.iter().any(|m| m[r]))
            .collect();
        let mut supports: Vec<Vec<FeatureSupport>> = vec![Vec::with_capacity(p); row_sets.len()];
        for start in (0..p).step_by(FIT_BLOCK_COLUMNS) {
            let end = (start + FIT_BLOCK_COLUMNS).min(p);
            let mut columns: Vec<Vec<(f64, u32)>> =
                vec![Vec::with_capacity(union.len()); end - start];
            for &r in &union {
                let row = &values[r * p + start..r * p + end];
                for (column, &v) in columns.iter_mut().zip(row) {
                    column.push((v, r as u32));
                }
            }
            let block: Vec<Vec<FeatureSupport>> = columns
                .into_par_iter()
                .map(|mut column| {
                    crate::cpu::clear_upper_vector_state();
                    column.sort_by(|a, b| a.0.total_cmp(&b.0));
                    member
                        .iter()
                        .map(|m| {
                            FeatureSupport::from_values(
                                column
                                    .iter()
                                    .filter(|&&(_, r)| m[r as usize])
                                    .map(|&(v, _)| v),
                            )
                        })
                        .collect()
                })
                .collect();
            for per_set in block {
                for (out, support) in supports.iter_mut().zip(per_set) {
                    out.push(support);
                }
            }
        }
        supports
            .into_iter()
            .map(|support| Marginals { support })
            .collect()
    }

    /// Number of features.
    pub fn len(&self) -> usize {
        self.support.len()
    }

    /// Whether there is no feature.
    pub fn is_empty(&self) -> bool {
        self.support.is_empty()
    }

    /// Scores a row (values in the order of [`Marginals::support`], `NaN` =
    /// missing). `own` is true when the row is a reference member scored for
    /// calibration: its own values leave the counts.
    ///
    /// # Panics
    /// If `row.len()` differs from the number of features.
    pub fn score(&self, row: &[f64], own: bool) -> ValueScore {
        assert_eq!(row.len(), self.support.len(), "row length");
        crate::cpu::clear_upper_vector_state();
        self.value_score(
            row,
            own,
            self.support
                .iter()
                .zip(row)
                .map(|(s, &x)| s.surprisal(x, own.then_some(x))),
        )
    }

    /// The value score of `row` from its features' surprisals (in feature
    /// order), with the p-value of the most surprising feature only (the
    /// surprisal already computed each one's).
    fn value_score(
        &self,
        row: &[f64],
        own: bool,
        surprisals: impl Iterator<Item = f64>,
    ) -> ValueScore {
        let (score, best_j) = aggregate(surprisals);
        self.value_score_of(row, own, score, best_j)
    }

    /// The [`ValueScore`] of `row` given its aggregate and rarest feature.
    fn value_score_of(
        &self,
        row: &[f64],
        own: bool,
        score: f64,
        best_j: Option<usize>,
    ) -> ValueScore {
        let p_value = best_j.map_or(f64::NAN, |j| {
            self.support[j].p_value(row[j], own.then_some(row[j]))
        });
        ValueScore {
            score,
            feature: best_j,
            p_value,
        }
    }

    /// [`Marginals::score`] of many rows, feature by feature: one feature's
    /// support stays in cache while every row of a batch of
    /// [`SCORE_BATCH_ROWS`] is scored against it (a wide reference's supports
    /// outgrow the cache; row by row, each feature's binary search missed
    /// it). The batch's values are first copied feature by feature (the rows
    /// are scattered in memory; read a feature at a time, each value touched
    /// its own cache line), and each row's aggregate is kept running in
    /// feature order, so the scores are [`Marginals::score`]'s, bit for bit.
    ///
    /// # Panics
    /// If a row's length differs from the number of features.
    pub fn score_rows(&self, rows: &[&[f64]], own: bool) -> Vec<ValueScore> {
        let p = self.support.len();
        for row in rows {
            assert_eq!(row.len(), p, "row length");
        }
        crate::cpu::clear_upper_vector_state();
        let mut out = Vec::with_capacity(rows.len());
        let mut columns = vec![0.0f64; SCORE_BATCH_ROWS.min(rows.len()) * p];
        for batch in rows.chunks(SCORE_BATCH_ROWS) {
            let m = batch.len();
            let columns = &mut columns[..m * p];
            for (i, row) in batch.iter().enumerate() {
                for (j, &x) in row.iter().enumerate() {
                    columns[j * m + i] = x;
                }
            }
            let mut running = vec![Running::default(); m];
            for (s, (j, xs)) in self.support.iter().zip(columns.chunks_exact(m).enumerate()) {
                for (r, &x) in running.iter_mut().zip(xs) {
                    r.add(j, s.surprisal(x, own.then_some(x)));
                }
            }
            out.extend(batch.iter().zip(running).map(|(row, r)| {
                let (score, best_j) = r.finish();
                self.value_score_of(row, own, score, best_j)
            }));
        }
        out
    }

    /// Every feature's surprisal of a row that is not a reference member
    /// (`NaN` where the value is missing): what [`Marginals::score`]
    /// aggregates, kept to score the same row again with features masked
    /// ([`Marginals::score_of_surprisals`]).
    ///
    /// # Panics
    /// If `row.len()` differs from the number of features.
    pub fn surprisals(&self, row: &[f64]) -> Vec<f64> {
        assert_eq!(row.len(), self.support.len(), "row length");
        crate::cpu::clear_upper_vector_state();
        self.support
            .iter()
            .zip(row)
            .map(|(s, &x)| s.surprisal(x, None))
            .collect()
    }

    /// The score of [`Marginals::score`] (`own = false`) of a row whose
    /// [`Marginals::surprisals`] are `surprisals`, with the features where
    /// `row` is `NaN` masked: bit-identical to scoring the masked row.
    pub fn score_of_surprisals(surprisals: &[f64], row: &[f64]) -> f64 {
        aggregate(
            surprisals
                .iter()
                .zip(row)
                .map(|(&s, x)| if x.is_nan() { f64::NAN } else { s }),
        )
        .0
    }

    /// `feature=value explanation` for feature `j` (named `name`) holding
    /// `x`, e.g. `rs_private=1 never seen in 400 reference members (all 0)`.
    pub fn explain(&self, name: &str, j: usize, x: f64) -> String {
        match self.support.get(j) {
            Some(s) => format!("{name}={} {}", crate::output::fmt_f64(x), s.explain(x)),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn support(v: &[f64]) -> FeatureSupport {
        FeatureSupport::from_values(v.iter().copied())
    }

    proptest::proptest! {
        /// `sort_total` orders like a comparison sort by `total_cmp`, bit
        /// for bit: signed zeros, infinities, NaNs of both signs, ties.
        #[test]
        fn sort_total_is_the_total_order(
            v in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::num::f64::ANY,
                    (-3i32..3).prop_map(|a| a as f64),
                    proptest::prop_oneof![
                        proptest::strategy::Just(-0.0f64),
                        proptest::strategy::Just(f64::NAN),
                        proptest::strategy::Just(-f64::NAN),
                        proptest::strategy::Just(f64::NEG_INFINITY),
                    ],
                ],
                0..2000,
            ),
            sorted_first in proptest::bool::ANY,
        ) {
            let mut want = v.clone();
            want.sort_by(f64::total_cmp);
            let mut got = if sorted_first { want.clone() } else { v.clone() };
            sort_total(&mut got);
            let bits = |s: &[f64]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            proptest::prop_assert_eq!(bits(&got), bits(&want));
        }

        /// Scoring rows feature by feature gives each row's own score bit for
        /// bit: integer, continuous (exact and sketched) and constant columns,
        /// missing values, members (`own`) and patients.
        #[test]
        fn rows_scored_together_equal_rows_scored_alone(
            p in 1usize..12,
            n in 2usize..400,
            seed in 0u64..1000,
            own in proptest::bool::ANY,
        ) {
            let mut rng = crate::rng::SplitMix64::new(seed);
            let cell = |rng: &mut crate::rng::SplitMix64, j: usize| match j % 4 {
                0 => (rng.next_u64() % 3) as f64,
                1 => rng.normal(),
                2 => 0.0,
                _ => if rng.next_u64().is_multiple_of(5) { f64::NAN } else { rng.normal().round() * 0.5 },
            };
            let values: Vec<f64> = (0..n * p).map(|i| cell(&mut rng, i % p)).collect();
            let rows: Vec<usize> = (0..n).collect();
            let m = Marginals::fit(&values, p, &rows);
            let scored: Vec<Vec<f64>> = (0..20)
                .map(|_| (0..p).map(|j| cell(&mut rng, j) * 1.5).collect())
                .collect();
            let views: Vec<&[f64]> = scored.iter().map(|r| r.as_slice()).collect();
            let together = m.score_rows(&views, own);
            for (row, t) in views.iter().zip(&together) {
                let alone = m.score(row, own);
                proptest::prop_assert_eq!(alone.score.to_bits(), t.score.to_bits());
                proptest::prop_assert_eq!(alone.feature, t.feature);
                proptest::prop_assert_eq!(alone.p_value.to_bits(), t.p_value.to_bits());
            }
        }

        /// Gathering columns a block at a time gives each column's own support,
        /// whatever the width (blocks of 16 and a remainder) and row subset.
        #[test]
        fn blockwise_fit_equals_column_by_column(
            p in 1usize..40,
            cells in proptest::collection::vec(-3i32..4, 40 * 30),
            keep in proptest::collection::vec(proptest::bool::weighted(0.7), 30),
        ) {
            let n = 30;
            let values: Vec<f64> = cells[..n * p]
                .iter()
                .enumerate()
                .map(|(i, &c)| match (c, i % 3) {
                    (-3, _) => f64::NAN,
                    (_, 0) => f64::from(c) * 0.37,
                    _ => f64::from(c),
                })
                .collect();
            let rows: Vec<usize> = (0..n).filter(|&r| keep[r]).collect();
            let fitted = Marginals::fit(&values, p, &rows);
            // Many sets at once: each equals its own fit (the complement and
            // an empty set beside the kept rows).
            let others: Vec<usize> = (0..n).filter(|&r| !keep[r]).collect();
            let sets = vec![rows.clone(), others, Vec::new()];
            let many = Marginals::fit_many(&values, p, &sets);
            proptest::prop_assert_eq!(many.len(), sets.len());
            for (set, m) in sets.iter().zip(&many) {
                let alone = Marginals::fit(&values, p, set);
                proptest::prop_assert_eq!(format!("{:?}", m.support), format!("{:?}", alone.support));
            }
            proptest::prop_assert_eq!(fitted.len(), p);
            for j in 0..p {
                let one = FeatureSupport::from_values(rows.iter().map(|&r| values[r * p + j]));
                // Debug strings: equal supports with a NaN field (fewer than
                // two values) compare equal.
                proptest::prop_assert_eq!(format!("{:?}", fitted.support[j]), format!("{one:?}"));
            }
        }
    }

    #[test]
    fn a_never_seen_value_gets_one_over_n_plus_one() {
        let s = support(&[0.0; 400]);
        assert!(s.is_constant());
        assert_eq!(s.p_value(1.0, None), 1.0 / 401.0);
        assert_eq!(s.p_value(0.0, None), 1.0);
        assert_eq!(
            s.explain(1.0),
            "never seen in 400 reference members (all 0)"
        );
    }

    #[test]
    fn a_sole_carrier_left_out_ties_with_a_never_seen_patient() {
        let mut v = vec![0.0; 399];
        v.push(1.0);
        let s = support(&v);
        assert_eq!(s.p_value(1.0, Some(1.0)), 1.0 / 401.0);
        assert_eq!(s.p_value(2.0, None), 1.0 / 401.0);
        // A patient carrying the value one member showed is rare, not unseen.
        assert_eq!(s.p_value(1.0, None), 2.0 / 401.0);
        // Non-carrier members are ordinary.
        assert_eq!(s.p_value(0.0, Some(0.0)), 400.0 / 401.0);
    }

    #[test]
    fn a_value_off_a_constant_column_outranks_a_rare_genotype() {
        let constant = support(&[0.0; 400]);
        let mut snp = vec![0.0; 300];
        snp.extend(vec![1.0; 99]);
        snp.push(2.0);
        let snp = support(&snp);
        // Both are unseen among the others, with the same p-value ...
        assert_eq!(constant.p_value(1.0, None), snp.p_value(2.0, Some(2.0)));
        // ... but the constant column never varied.
        let off = constant.surprisal(1.0, None);
        let rare = snp.surprisal(2.0, Some(2.0));
        assert!((off - 2.0 * 401f64.ln()).abs() < 1e-9, "{off}");
        assert!(rare < 401f64.ln() + 2.0, "{rare}");
        // A sole carrier in an otherwise constant column, left out, ties
        // with a patient carrying a value the column never showed.
        let mut v = vec![0.0; 399];
        v.push(1.0);
        let sole = support(&v).surprisal(1.0, Some(1.0));
        assert!((sole - off).abs() < 1e-9, "{sole} vs {off}");
        // Inside what was seen: no bonus.
        assert_eq!(snp.surprisal(0.0, None), -snp.p_value(0.0, None).ln());
    }

    #[test]
    fn dosage_rarity_orders_values_by_count() {
        // 0: 100, 1: 200, 2: 100 (allele frequency 0.5).
        let mut v = vec![0.0; 100];
        v.extend(vec![1.0; 200]);
        v.extend(vec![2.0; 100]);
        let s = support(&v);
        assert!(matches!(s.kind, SupportKind::Discrete { .. }));
        assert_eq!(s.p_value(0.0, None), 201.0 / 401.0);
        assert_eq!(s.p_value(1.0, None), 1.0);
        assert!(s.explain(2.0).starts_with("seen in 100 of 400"));
    }

    #[test]
    fn continuous_tails_are_two_sided_and_exact_for_small_references() {
        let v: Vec<f64> = (0..100).map(|i| i as f64 + 0.5).collect();
        let s = support(&v);
        assert!(matches!(s.kind, SupportKind::Continuous { .. }));
        assert_eq!(s.p_value(1000.0, None), 1.0 / 101.0);
        assert_eq!(s.p_value(-5.0, None), 1.0 / 101.0);
        assert_eq!(s.p_value(0.5, None), 3.0 / 101.0);
        assert_eq!(s.p_value(50.0, None), 1.0);
        // Member at the maximum, left out: nothing beyond it among the others.
        assert_eq!(s.p_value(99.5, Some(99.5)), 1.0 / 101.0);
        assert!(s.explain(1000.0).starts_with("above all 100"));
    }

    #[test]
    fn sketches_interpolate_ranks() {
        let v: Vec<f64> = (0..10_000).map(|i| i as f64 * 0.1 + 0.05).collect();
        let s = support(&v);
        let SupportKind::Continuous { knots } = &s.kind else {
            panic!("continuous expected")
        };
        assert_eq!(knots.len(), SKETCH_KNOTS);
        let (l, r) = s.tail_counts(100.0);
        assert!((l - 1000.0).abs() < 2.0, "L = {l}");
        assert!((r - 9000.0).abs() < 2.0, "R = {r}");
        assert_eq!(s.p_value(1e9, None), 1.0 / 10_001.0);
    }

    #[test]
    fn row_scores_name_the_rarest_feature() {
        let mut values = Vec::new();
        for i in 0..400 {
            values.extend_from_slice(&[(i % 3) as f64, 0.0]);
        }
        let rows: Vec<usize> = (0..400).collect();
        let m = Marginals::fit(&values, 2, &rows);
        let carrier = m.score(&[1.0, 1.0], false);
        assert_eq!(carrier.feature, Some(1));
        assert_eq!(carrier.p_value, 1.0 / 401.0);
        let ordinary = m.score(&[1.0, 0.0], false);
        assert!(carrier.score > ordinary.score + 5.0);
        assert_eq!(
            m.explain("rs_private", 1, 1.0),
            "rs_private=1 never seen in 400 reference members (all 0)"
        );
        let missing = m.score(&[f64::NAN, f64::NAN], false);
        assert_eq!(missing.score, 0.0);
        assert_eq!(missing.feature, None);
    }

    #[test]
    fn many_distinct_integers_are_continuous() {
        let v: Vec<f64> = (0..500).map(|i| (i % 200) as f64).collect();
        assert!(matches!(support(&v).kind, SupportKind::Continuous { .. }));
    }
}
