//! The equity audit: verdict rates per patient group, with exact intervals.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use serde::Serialize;

use super::stats::{CONFIDENCE, beta_binomial_interval, clopper_pearson, entropy_bits, median};
use crate::model::Model;
use crate::verdict::{Assessment, Verdict, VerdictCounts};

/// Group label used for patients without a group (no group column).
pub const NO_GROUP: &str = "(none)";
/// Group label used for patients whose group cell is empty.
pub const MISSING_GROUP: &str = "(missing)";
/// Label of the overall row in [`Audit::to_tsv`].
pub const ALL_ROW: &str = "ALL";
/// Version tag written as the `schema` field of [`Audit::to_json`].
pub const AUDIT_SCHEMA: &str = "nof1-audit/1";

/// Columns of [`Audit::to_tsv`], in order.
pub const TSV_COLUMNS: [&str; 18] = [
    "group",
    "n",
    "invisible",
    "invisible_rate",
    "invisible_lo",
    "invisible_hi",
    "low_support",
    "low_support_rate",
    "low_support_lo",
    "low_support_hi",
    "insufficient_data",
    "insufficient_rate",
    "supported",
    "median_p_value",
    "median_novelty",
    "median_residual",
    "neighbour_entropy_bits",
    "pooled_fallback",
];

/// Columns of [`Audit::channels_tsv`], in order.
pub const CHANNEL_TSV_COLUMNS: [&str; 11] = [
    "group",
    "channel",
    "n_scored",
    "driving",
    "driving_rate",
    "driving_lo",
    "driving_hi",
    "p_le_alpha",
    "p_le_alpha_rate",
    "p_le_alpha_lo",
    "p_le_alpha_hi",
];

/// At most this many features the value channel named are listed
/// ([`Audit::value_features`]).
pub const MAX_NAMED_FEATURES: usize = 20;

/// The group label an assessment is audited under: its group, [`NO_GROUP`]
/// when it has none and [`MISSING_GROUP`] when the label is empty.
pub fn group_label(a: &Assessment) -> &str {
    match a.group.as_deref() {
        None => NO_GROUP,
        Some(g) if g.trim().is_empty() => MISSING_GROUP,
        Some(g) => g,
    }
}

/// A count out of `n` with its rate and 95% Clopper–Pearson interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    /// Number of patients with the verdict.
    pub count: usize,
    /// `count / n` (`NaN`, written `null` in JSON, when `n == 0`).
    pub rate: f64,
    /// Lower bound of the 95% Clopper–Pearson interval (`0` when `count == 0`).
    pub lo: f64,
    /// Upper bound of the 95% Clopper–Pearson interval (`1` when `count == n`).
    pub hi: f64,
}

impl Rate {
    /// The rate of `count` out of `n`; `lo ≤ rate ≤ hi`, all in `[0, 1]`.
    pub fn new(count: usize, n: usize) -> Rate {
        let (lo, hi) = clopper_pearson(count, n, CONFIDENCE);
        Rate {
            count,
            rate: if n == 0 {
                f64::NAN
            } else {
                count as f64 / n as f64
            },
            lo,
            hi,
        }
    }
}

/// The four verdict rates of a set of patients; the counts add up to its `n`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct VerdictRates {
    /// `supported`.
    pub supported: Rate,
    /// `low_support`.
    pub low_support: Rate,
    /// `invisible`.
    pub invisible: Rate,
    /// `insufficient_data`.
    pub insufficient_data: Rate,
}

impl VerdictRates {
    fn from_counts(counts: [usize; 4], n: usize) -> VerdictRates {
        VerdictRates {
            supported: Rate::new(counts[0], n),
            low_support: Rate::new(counts[1], n),
            invisible: Rate::new(counts[2], n),
            insufficient_data: Rate::new(counts[3], n),
        }
    }

    /// The rate of one verdict.
    pub fn get(&self, verdict: Verdict) -> &Rate {
        match verdict {
            Verdict::Supported => &self.supported,
            Verdict::LowSupport => &self.low_support,
            Verdict::Invisible => &self.invisible,
            Verdict::InsufficientData => &self.insufficient_data,
        }
    }

    /// Sum of the four counts.
    pub fn total(&self) -> usize {
        Verdict::ALL.iter().map(|&v| self.get(v).count).sum()
    }
}

/// How often one scoring channel stands out among a set of scored patients
/// (those with a p-value: every verdict but `insufficient_data`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelRate {
    /// The channel's label: `knn`, `residual`, `value` or `block:NAME`.
    pub channel: String,
    /// Scored patients (the denominator of both rates).
    pub n_scored: usize,
    /// Patients that are not `supported` and whose `reason` names this
    /// channel (it drove their combined novelty), out of the scored ones.
    pub driving: Rate,
    /// Patients whose own conformal p-value of this channel is at most
    /// `alpha`, out of the scored ones (reported, not a verdict: the
    /// channel p-values are not corrected for their number).
    pub p_le_alpha: Rate,
}

/// A feature the value channel named in the `reason` of patients who are
/// not `supported`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NamedFeature {
    /// The feature.
    pub feature: String,
    /// Patients whose reason names it.
    pub named: usize,
    /// Of those, patients whose value of it no reference member showed
    /// (`never seen`, `below all`, `above all` in the reason).
    pub unseen: usize,
}

/// One reference group's share of a patient group's nearest neighbours.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NeighbourShare {
    /// Reference group ([`NO_GROUP`] for members without a group).
    pub group: String,
    /// Mean over the group's patients of the fraction of their neighbours in
    /// this reference group; the shares of a patient group sum to 1.
    pub fraction: f64,
}

/// The audit of one patient group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupAudit {
    /// Group label (see [`group_label`]).
    pub group: String,
    /// Number of patients in the group.
    pub n: usize,
    /// Verdict counts and rates; the counts add up to `n`.
    pub verdicts: VerdictRates,
    /// Median combined p-value (`NaN` ignored; `None` when all are `NaN`).
    pub median_p_value: Option<f64>,
    /// Median novelty (`NaN` ignored).
    pub median_novelty: Option<f64>,
    /// Median residual (`NaN` ignored).
    pub median_residual: Option<f64>,
    /// Reference groups of the patients' nearest neighbours, sorted by name.
    /// Empty when no patient of the group has neighbours.
    pub neighbour_mix: Vec<NeighbourShare>,
    /// Shannon entropy of `neighbour_mix` in bits (0 for one group, `NaN`
    /// — `null` in JSON — when the mix is empty).
    pub neighbour_entropy_bits: f64,
    /// Patients whose calibration fell back to the pooled one.
    pub pooled_fallback: usize,
    /// Per scoring channel, in the model's channel order: how often it drove
    /// a verdict and how often its own p-value is at most `alpha`.
    pub channels: Vec<ChannelRate>,
}

/// Does the empirical invisible rate agree with `alpha`?
///
/// Under exchangeability with the reference, the patients share one
/// calibration set, so their invisible count is not binomial: given the set,
/// the false-alarm rate is Beta(l, m + 1 − l), and the count is
/// Beta-Binomial (exact for split conformal; the cross-conformal rate is
/// checked against the same law, see `docs/method.md` §7). The check warns
/// when the count falls outside its central 95% range, so on exchangeable
/// patients it fires about 5% of the time. It is meaningful only when the
/// patients are expected to come from the reference's population.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CalibrationCheck {
    /// Patients with a p-value (all but `insufficient_data`).
    pub n_scored: usize,
    /// Invisible patients among them, with the 95% Clopper–Pearson interval.
    pub invisible: Rate,
    /// The model's `alpha`.
    pub alpha: f64,
    /// Calibration members `m` of the model (pooled).
    pub n_calibration: usize,
    /// Central 95% range of the invisible count for exchangeable patients:
    /// Beta-Binomial(`n_scored`, `l`, `m + 1 − l`), `l = ⌊α(m + 1)⌋`, the law
    /// given one calibration set (docs/method.md §7).
    pub expected_lo: usize,
    /// Upper end of that range.
    pub expected_hi: usize,
    /// Whether the invisible count lies outside `[expected_lo, expected_hi]`
    /// (the name is kept from earlier audits).
    pub alpha_outside_interval: bool,
    /// A plain-language warning when `alpha_outside_interval`.
    pub warning: Option<String>,
}

/// The equity audit of a set of assessments: verdict rates overall and per
/// group, with 95% Clopper–Pearson intervals. Build with [`audit`].
///
/// Groups are sorted by label (byte order); every count adds up: the sum of
/// the groups' `n` and of each verdict's counts equals the number of
/// assessments.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Audit {
    /// Always [`AUDIT_SCHEMA`].
    pub schema: &'static str,
    /// Number of assessments.
    pub n: usize,
    /// Verdict counts and rates over all assessments.
    pub verdicts: VerdictRates,
    /// The model's `alpha` (level for `invisible`).
    pub alpha: f64,
    /// The model's `warn_alpha` (level for `low_support`).
    pub warn_alpha: f64,
    /// Confidence level of every interval (0.95).
    pub confidence: f64,
    /// Median combined p-value over all patients (`NaN` ignored).
    pub median_p_value: Option<f64>,
    /// Median novelty over all patients (`NaN` ignored).
    pub median_novelty: Option<f64>,
    /// Median residual over all patients (`NaN` ignored).
    pub median_residual: Option<f64>,
    /// Patients whose calibration fell back to the pooled one.
    pub pooled_fallback: usize,
    /// Empirical invisible rate against `alpha`.
    pub calibration: CalibrationCheck,
    /// Per scoring channel over all patients, in the model's channel order
    /// (see [`ChannelRate`]).
    pub channels: Vec<ChannelRate>,
    /// The features the value channel named most often (at most
    /// [`MAX_NAMED_FEATURES`]; most named first, then most unseen, then by
    /// name); empty without the value channel or when it drove no verdict.
    pub value_features: Vec<NamedFeature>,
    /// Per patient group, sorted by label.
    pub groups: Vec<GroupAudit>,
    /// The variant match of the patients' genotype file, when there was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant_match: Option<crate::table::MatchReport>,
}

/// Labels of the channels a model scores, in its channel order.
fn channel_labels(model: &Model) -> Vec<String> {
    model
        .data()
        .calibration
        .folds
        .first()
        .map(|f| {
            f.state
                .channels()
                .iter()
                .map(|c| c.label(&f.state))
                .collect()
        })
        .unwrap_or_default()
}

/// The channel a `reason` names: the longest label `l` with `reason == l`
/// or `reason` starting with `l:` (`value: …`, `block:NAME: …`).
pub(crate) fn reason_channel(reason: &str, labels: &[String]) -> Option<usize> {
    labels
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            reason
                .strip_prefix(l.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(':'))
        })
        .max_by_key(|(_, l)| l.len())
        .map(|(i, _)| i)
}

/// The feature a value-channel `reason` (`value: NAME=VALUE …`) names, an
/// index into `features` (by name), and whether the value was outside
/// everything the reference showed.
fn reason_feature(reason: &str, features: &HashMap<&str, usize>) -> Option<(usize, bool)> {
    let rest = reason.strip_prefix("value: ")?;
    // The longest prefix before an `=` that names a feature (names may hold `=`).
    let (j, end) = rest
        .rmatch_indices('=')
        .find_map(|(i, _)| features.get(&rest[..i]).map(|&j| (j, i)))?;
    let tail = &rest[end..];
    let unseen = [" never seen in ", " below all ", " above all "]
        .iter()
        .any(|k| tail.contains(k));
    Some((j, unseen))
}

fn channel_rates(labels: &[String], alpha: f64, members: &[&Assessment]) -> Vec<ChannelRate> {
    let scored: Vec<&&Assessment> = members
        .iter()
        .filter(|a| a.verdict != Verdict::InsufficientData)
        .collect();
    let n = scored.len();
    let mut driving = vec![0usize; labels.len()];
    let mut low_p = vec![0usize; labels.len()];
    for a in &scored {
        if a.verdict != Verdict::Supported
            && let Some(c) = reason_channel(&a.reason, labels)
        {
            driving[c] += 1;
        }
        for cp in &a.channel_p_values {
            if cp.p_value <= alpha
                && let Some(c) = labels.iter().position(|l| *l == cp.channel)
            {
                low_p[c] += 1;
            }
        }
    }
    labels
        .iter()
        .enumerate()
        .map(|(c, l)| ChannelRate {
            channel: l.clone(),
            n_scored: n,
            driving: Rate::new(driving[c], n),
            p_le_alpha: Rate::new(low_p[c], n),
        })
        .collect()
}

fn value_features(
    model: &Model,
    labels: &[String],
    assessments: &[Assessment],
) -> Vec<NamedFeature> {
    let Some(value) = labels.iter().position(|l| l == "value") else {
        return Vec::new();
    };
    let names = model.features();
    let by_name: HashMap<&str, usize> = names
        .iter()
        .enumerate()
        .map(|(j, f)| (f.as_str(), j))
        .collect();
    let mut counts: BTreeMap<usize, (usize, usize)> = BTreeMap::new();
    for a in assessments {
        if a.verdict == Verdict::Supported
            || a.verdict == Verdict::InsufficientData
            || reason_channel(&a.reason, labels) != Some(value)
        {
            continue;
        }
        if let Some((j, unseen)) = reason_feature(&a.reason, &by_name) {
            let e = counts.entry(j).or_insert((0, 0));
            e.0 += 1;
            e.1 += usize::from(unseen);
        }
    }
    let mut out: Vec<NamedFeature> = counts
        .into_iter()
        .map(|(j, (named, unseen))| NamedFeature {
            feature: names[j].clone(),
            named,
            unseen,
        })
        .collect();
    out.sort_by(|a, b| {
        b.named
            .cmp(&a.named)
            .then(b.unseen.cmp(&a.unseen))
            .then(a.feature.cmp(&b.feature))
    });
    out.truncate(MAX_NAMED_FEATURES);
    out
}

fn audit_group(
    model: &Model,
    labels: &[String],
    group: &str,
    members: &[&Assessment],
) -> GroupAudit {
    let n = members.len();
    let mut counts = VerdictCounts::default();
    for a in members {
        counts.push(a.verdict);
    }
    let counts = counts.to_array();
    let reference = model.reference();
    // Mean over patients (with neighbours) of each reference group's share.
    let mut mix: BTreeMap<&str, f64> = BTreeMap::new();
    let mut n_with = 0usize;
    for a in members {
        if a.neighbours.is_empty() {
            continue;
        }
        n_with += 1;
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for nb in &a.neighbours {
            let g = reference.group_of(nb.index as usize).unwrap_or(NO_GROUP);
            *counts.entry(g).or_insert(0) += 1;
        }
        for (g, c) in counts {
            *mix.entry(g).or_insert(0.0) += c as f64 / a.neighbours.len() as f64;
        }
    }
    let neighbour_mix: Vec<NeighbourShare> = mix
        .into_iter()
        .map(|(g, s)| NeighbourShare {
            group: g.to_string(),
            fraction: s / n_with as f64,
        })
        .collect();
    let neighbour_entropy_bits = if neighbour_mix.is_empty() {
        f64::NAN
    } else {
        entropy_bits(neighbour_mix.iter().map(|s| s.fraction))
    };
    GroupAudit {
        group: group.to_string(),
        n,
        verdicts: VerdictRates::from_counts(counts, n),
        median_p_value: median(members.iter().map(|a| a.p_value)),
        median_novelty: median(members.iter().map(|a| a.novelty)),
        median_residual: median(members.iter().map(|a| a.residual)),
        neighbour_mix,
        neighbour_entropy_bits,
        pooled_fallback: members.iter().filter(|a| a.pooled_fallback).count(),
        channels: channel_rates(labels, model.params().alpha, members),
    }
}

fn calibration_check(alpha: f64, m: usize, counts: [usize; 4]) -> CalibrationCheck {
    let n_scored = counts[0] + counts[1] + counts[2];
    let invisible = Rate::new(counts[2], n_scored);
    // The law of the invisible count given one calibration set of m members.
    let l = (alpha * (m + 1) as f64 + 1e-9).floor();
    let (lo, hi) = if l < 1.0 || n_scored == 0 {
        (0, 0)
    } else {
        beta_binomial_interval(n_scored, l, (m + 1) as f64 - l, CONFIDENCE)
    };
    let expected_lo = lo;
    let expected_hi = hi;
    let alpha_outside_interval = n_scored > 0 && (counts[2] < lo || counts[2] > hi);
    let warning = if !alpha_outside_interval {
        None
    } else if counts[2] > hi {
        Some(format!(
            "{} of {} patients invisible ({:.3}), above the 95% range {lo}–{hi} expected for exchangeable patients with {m} calibration members at alpha = {alpha}: \
             the patients are not exchangeable with the reference (or the calibration is off)",
            counts[2], n_scored, invisible.rate
        ))
    } else {
        Some(format!(
            "{} of {} patients invisible ({:.3}), below the 95% range {lo}–{hi} expected for exchangeable patients with {m} calibration members at alpha = {alpha}: \
             the test is conservative for these patients",
            counts[2], n_scored, invisible.rate
        ))
    };
    CalibrationCheck {
        n_scored,
        invisible,
        alpha,
        n_calibration: m,
        expected_lo,
        expected_hi,
        alpha_outside_interval,
        warning,
    }
}

/// Audits `assessments` made with `model`: verdict rates overall and per
/// group (see [`group_label`]), medians, the group mix of the nearest
/// reference neighbours and a calibration check.
///
/// Postconditions: `groups` sorted by label; `n == assessments.len()`;
/// per group and overall, the four verdict counts add up to `n`; every
/// interval contains its rate and lies in `[0, 1]`.
///
/// # Examples
/// ```
/// use nof1::{Params, Table};
/// use nof1::report::audit;
/// let mut values = Vec::new();
/// for i in 0..80 {
///     let t = i as f64 / 10.0;
///     values.extend_from_slice(&[t.sin(), t.cos()]);
/// }
/// let ids = (0..80).map(|i| format!("r{i}")).collect();
/// let names = vec!["a".to_string(), "b".to_string()];
/// let model = Params::default().k(5).fit(&Table::from_rows(ids, names.clone(), values)?)?;
/// let patients = Table::from_rows(vec!["p".into(), "q".into()], names, vec![0.0, 1.0, 40.0, -40.0])?
///     .with_groups(vec!["A".into(), "B".into()])?;
/// let report = audit(&model, &model.assess(&patients)?);
/// assert_eq!(report.n, 2);
/// assert_eq!(report.groups.len(), 2);
/// assert_eq!(report.groups[1].verdicts.invisible.count, 1);
/// # Ok::<(), nof1::Error>(())
/// ```
pub fn audit(model: &Model, assessments: &[Assessment]) -> Audit {
    let mut by_group: BTreeMap<&str, Vec<&Assessment>> = BTreeMap::new();
    let mut counts = VerdictCounts::default();
    for a in assessments {
        by_group.entry(group_label(a)).or_default().push(a);
        counts.push(a.verdict);
    }
    let counts = counts.to_array();
    let labels = channel_labels(model);
    let groups = by_group
        .iter()
        .map(|(g, members)| audit_group(model, &labels, g, members))
        .collect();
    let alpha = model.params().alpha;
    let all: Vec<&Assessment> = assessments.iter().collect();
    Audit {
        schema: AUDIT_SCHEMA,
        n: assessments.len(),
        verdicts: VerdictRates::from_counts(counts, assessments.len()),
        alpha,
        warn_alpha: model.params().warn_alpha,
        confidence: CONFIDENCE,
        median_p_value: median(assessments.iter().map(|a| a.p_value)),
        median_novelty: median(assessments.iter().map(|a| a.novelty)),
        median_residual: median(assessments.iter().map(|a| a.residual)),
        pooled_fallback: assessments.iter().filter(|a| a.pooled_fallback).count(),
        calibration: calibration_check(alpha, model.data().calibration.pooled.n_members, counts),
        channels: channel_rates(&labels, alpha, &all),
        value_features: value_features(model, &labels, assessments),
        groups,
        variant_match: None,
    }
}

fn tsv_float(out: &mut String, x: f64) {
    out.push('\t');
    if x.is_finite() {
        let _ = write!(out, "{x:.6}");
    } else {
        out.push_str("NA");
    }
}

fn tsv_text(out: &mut String, s: &str) {
    // Tabs and line breaks would break the row; replace them.
    out.extend(s.chars().map(|c| {
        if matches!(c, '\t' | '\n' | '\r') {
            ' '
        } else {
            c
        }
    }));
}

fn tsv_row(
    out: &mut String,
    group: &str,
    n: usize,
    v: &VerdictRates,
    medians: [Option<f64>; 3],
    entropy: f64,
    pooled: usize,
) {
    tsv_text(out, group);
    let _ = write!(out, "\t{n}");
    for r in [&v.invisible, &v.low_support] {
        let _ = write!(out, "\t{}", r.count);
        tsv_float(out, r.rate);
        tsv_float(out, r.lo);
        tsv_float(out, r.hi);
    }
    let _ = write!(out, "\t{}", v.insufficient_data.count);
    tsv_float(out, v.insufficient_data.rate);
    let _ = write!(out, "\t{}", v.supported.count);
    for m in medians {
        tsv_float(out, m.unwrap_or(f64::NAN));
    }
    tsv_float(out, entropy);
    let _ = write!(out, "\t{pooled}");
    out.push('\n');
}

impl Audit {
    /// Findings worth a warning, in a fixed order: the calibration warning
    /// when the overall invisible rate is significantly above `alpha`; then,
    /// per group in label order, an invisible rate whose 95% interval lies
    /// above `alpha`, and patients calibrated against the pooled reference.
    /// Empty when nothing stands out.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let c = &self.calibration;
        if let Some(w) = &c.warning
            && self.alpha < c.invisible.lo
        {
            out.push(w.clone());
        }
        for g in &self.groups {
            let r = &g.verdicts.invisible;
            if g.n > 0 && r.lo > self.alpha {
                out.push(format!(
                    "group {}: invisible rate {:.3} (95% CI {:.3}–{:.3}, {} of {}) is above alpha = {}",
                    g.group, r.rate, r.lo, r.hi, r.count, g.n, self.alpha
                ));
            }
            if g.pooled_fallback > 0 {
                out.push(format!(
                    "group {}: {} of {} patients calibrated against the pooled reference \
                     (no calibration for this group)",
                    g.group, g.pooled_fallback, g.n
                ));
            }
        }
        out
    }

    /// The audit as pretty-printed JSON, fields in this fixed order:
    ///
    /// ```text
    /// {
    ///   "schema": "nof1-audit/1",
    ///   "n": <patients>,
    ///   "verdicts": {                      // overall; counts add up to n
    ///     "supported":         {"count", "rate", "lo", "hi"},
    ///     "low_support":       {…}, "invisible": {…}, "insufficient_data": {…}
    ///   },
    ///   "alpha": <f64>, "warn_alpha": <f64>, "confidence": 0.95,
    ///   "median_p_value", "median_novelty", "median_residual",     // null if none
    ///   "pooled_fallback": <patients>,
    ///   "calibration": {
    ///     "n_scored": <patients with a p-value>,
    ///     "invisible": {"count", "rate", "lo", "hi"},
    ///     "alpha": <f64>, "alpha_outside_interval": <bool>,
    ///     "warning": <string or null>
    ///   },
    ///   "channels": [                      // model channel order
    ///     {"channel", "n_scored", "driving": {"count", "rate", "lo", "hi"},
    ///      "p_le_alpha": {…}}
    ///   ],
    ///   "value_features": [{"feature", "named", "unseen"}, …],
    ///   "groups": [                        // sorted by group label
    ///     {"group", "n", "verdicts": {…as above…},
    ///      "median_p_value", "median_novelty", "median_residual",   // null if none
    ///      "neighbour_mix": [{"group", "fraction"}, …],             // sorted by group
    ///      "neighbour_entropy_bits", "pooled_fallback",
    ///      "channels": [… as above, over the group's patients …]}
    ///   ]
    /// }
    /// ```
    ///
    /// `rate`, `lo` and `hi` are in `[0, 1]` with `lo ≤ rate ≤ hi`; a rate
    /// that is undefined (no patients) and a non-finite number are `null`.
    pub fn to_json(&self) -> String {
        // Plain structs with string keys and `Option`s: serialisation cannot fail.
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()))
    }

    /// Per-channel rates as a tab-separated table with a header
    /// ([`CHANNEL_TSV_COLUMNS`]): for each group in label order, then
    /// [`ALL_ROW`], one row per channel in the model's channel order. Rates
    /// and bounds have six decimals; undefined values are `NA`.
    pub fn channels_tsv(&self) -> String {
        let mut out = CHANNEL_TSV_COLUMNS.join("\t");
        out.push('\n');
        let rows = self
            .groups
            .iter()
            .map(|g| (g.group.as_str(), &g.channels))
            .chain(std::iter::once((ALL_ROW, &self.channels)));
        for (group, channels) in rows {
            for c in channels {
                tsv_text(&mut out, group);
                out.push('\t');
                tsv_text(&mut out, &c.channel);
                let _ = write!(out, "\t{}", c.n_scored);
                for r in [&c.driving, &c.p_le_alpha] {
                    let _ = write!(out, "\t{}", r.count);
                    tsv_float(&mut out, r.rate);
                    tsv_float(&mut out, r.lo);
                    tsv_float(&mut out, r.hi);
                }
                out.push('\n');
            }
        }
        out
    }

    /// The per-channel rates over all patients as lines of plain text (the
    /// lines `nof1 audit` prints on stderr), then the features the value
    /// channel named most often. Empty when no patient was scored.
    pub fn channel_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        let n = self.calibration.n_scored;
        if n == 0 {
            return out;
        }
        for c in &self.channels {
            out.push(format!(
                "channel {}: drove {} of {n} scored patients ({:.1}%, 95% CI {:.1}–{:.1}%); own p ≤ alpha for {} ({:.1}%)",
                c.channel,
                c.driving.count,
                100.0 * c.driving.rate,
                100.0 * c.driving.lo,
                100.0 * c.driving.hi,
                c.p_le_alpha.count,
                100.0 * c.p_le_alpha.rate
            ));
        }
        if !self.value_features.is_empty() {
            let named: Vec<String> = self
                .value_features
                .iter()
                .take(5)
                .map(|f| {
                    format!(
                        "{} ({} patient{}, {} never seen)",
                        f.feature,
                        f.named,
                        if f.named == 1 { "" } else { "s" },
                        f.unseen
                    )
                })
                .collect();
            out.push(format!(
                "value channel named: {}{}",
                named.join(", "),
                if self.value_features.len() > 5 {
                    ", …"
                } else {
                    ""
                }
            ));
        }
        out
    }

    /// The audit as a tab-separated table with a header ([`TSV_COLUMNS`]),
    /// one row per group in label order, then the [`ALL_ROW`] row. Rates and
    /// bounds have six decimals; undefined values are `NA`. The `ALL` row's
    /// medians are over every patient and its entropy is `NA`.
    pub fn to_tsv(&self) -> String {
        let mut out = TSV_COLUMNS.join("\t");
        out.push('\n');
        for g in &self.groups {
            tsv_row(
                &mut out,
                &g.group,
                g.n,
                &g.verdicts,
                [g.median_p_value, g.median_novelty, g.median_residual],
                g.neighbour_entropy_bits,
                g.pooled_fallback,
            );
        }
        tsv_row(
            &mut out,
            ALL_ROW,
            self.n,
            &self.verdicts,
            [
                self.median_p_value,
                self.median_novelty,
                self.median_residual,
            ],
            f64::NAN,
            self.pooled_fallback,
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_names_its_channel_and_the_value_channel_its_feature() {
        let labels: Vec<String> = [
            "knn",
            "residual",
            "value",
            "block:a",
            "block:a: b",
            "block:ab",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let at = |r: &str| reason_channel(r, &labels);
        assert_eq!(at("knn"), Some(0));
        assert_eq!(at("residual"), Some(1));
        assert_eq!(
            at("value: x=1 never seen in 4 reference members (all 0)"),
            Some(2)
        );
        assert_eq!(at("block:a: residual p = 0.0004"), Some(3));
        assert_eq!(at("block:ab: residual p = 0.0004"), Some(5));
        // The longest label wins when a block name holds ": ".
        assert_eq!(at("block:a: b: residual p = 0.01"), Some(4));
        assert_eq!(at("missing"), None);
        assert_eq!(at("knnx"), None);
        assert_eq!(at(""), None);

        let names = ["x", "x=y", "rs1"];
        let by: HashMap<&str, usize> = names.iter().enumerate().map(|(j, n)| (*n, j)).collect();
        let f = |r: &str| reason_feature(r, &by);
        assert_eq!(
            f("value: rs1=2 never seen in 400 reference members (0: 399, 1: 1)"),
            Some((2, true))
        );
        assert_eq!(
            f("value: x=1 seen in 3 of 400 reference members (0: 397, 1: 3)"),
            Some((0, false))
        );
        assert_eq!(
            f("value: x=y=3 above all 40 reference members (range 0 to 1)"),
            Some((1, true))
        );
        assert_eq!(
            f("value: x=0.5 among the lowest 1.0% of 400 reference members"),
            Some((0, false))
        );
        assert_eq!(f("value: z=1 never seen"), None);
        assert_eq!(f("knn"), None);
    }
}
