//! Reproducible evaluations: AUROC, the ADBench-style protocol, 1000 Genomes
//! leave-one-super-population-out and the GWAS-mix demonstration.

use std::path::Path;

use nof1::error::{Error, Result};
use nof1::model::Params;
use nof1::rng::SplitMix64;
use nof1::table::{Role, Table, TableOptions, read_table};
use nof1::verdict::{Assessment, Verdict};

/// Area under the ROC curve of `scores` for `labels` (true = positive); ties
/// count one half. Rows whose score is `NaN` (no verdict: too few features
/// observed) are left out. `NaN` when a class is empty.
pub fn auroc(scores: &[f64], labels: &[bool]) -> f64 {
    let mut idx: Vec<usize> = (0..scores.len()).filter(|&i| !scores[i].is_nan()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    let n_pos = idx.iter().filter(|&&i| labels[i]).count() as f64;
    let n_neg = idx.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    // Mid-ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let mid = (i + j) as f64 / 2.0 + 1.0;
        for &t in &idx[i..=j] {
            if labels[t] {
                rank_sum += mid;
            }
        }
        i = j + 1;
    }
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// Quality of one detector run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunQuality {
    /// Name of the data set or split.
    pub name: String,
    /// Reference size.
    pub n_reference: usize,
    /// Components kept.
    pub n_components: usize,
    /// AUROC of the `novelty` column.
    pub auroc: f64,
    /// AUROC of the kNN channel alone.
    pub auroc_knn: f64,
    /// AUROC of the residual channel alone.
    pub auroc_residual: f64,
    /// AUROC of the combined p-value (ranked by `-p_value`).
    pub auroc_p: f64,
    /// Number of held-out normal rows.
    pub n_normal: usize,
    /// Held-out normal rows without a verdict (`insufficient_data`: too few
    /// features observed, or a score that is not a number).
    pub n_insufficient: usize,
    /// Held-out normal rows called `invisible`.
    pub n_invisible: usize,
    /// Fraction of the held-out normal rows with a verdict called
    /// `invisible` (`n_invisible / (n_normal − n_insufficient)`).
    pub false_invisible: f64,
    /// Fraction of held-out normal rows flagged (invisible or low_support).
    pub false_flagged: f64,
    /// Fraction of anomalies called `invisible`.
    pub detected: f64,
    /// Fraction of anomalies flagged (invisible or low_support).
    pub flagged: f64,
}

/// `P(X > threshold · n)` for `X ~ Binomial(n, p)`: how likely a false-alarm
/// rate above `threshold` is on `n` held-out rows even when every p-value is
/// exactly valid at level `p`.
///
/// ```
/// // 36 held-out rows at alpha 0.05: a rate above 0.10 (4 or more) has
/// // probability about 0.10.
/// let t = nof1_cli::eval::binomial_rate_above(36, 0.05, 0.10);
/// assert!((t - 0.104).abs() < 0.001);
/// ```
pub fn binomial_rate_above(n: usize, p: f64, threshold: f64) -> f64 {
    if n == 0 || !(0.0..=1.0).contains(&p) {
        return 0.0;
    }
    let ln_fact = |m: usize| (1..=m).map(|i| (i as f64).ln()).sum::<f64>();
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    (0..=n)
        .filter(|&x| x as f64 > threshold * n as f64 + 1e-9)
        .map(|x| {
            let ln = ln_fact(n) - ln_fact(x) - ln_fact(n - x)
                + if x > 0 { x as f64 * ln_p } else { 0.0 }
                + if n > x { (n - x) as f64 * ln_q } else { 0.0 };
            ln.exp()
        })
        .sum()
}

/// The central `level` range of the rate `X / n` for `X ~ Binomial(n, p)`:
/// `(lo, hi)` with `P(X < lo·n) ≤ (1 − level)/2` and `P(X > hi·n) ≤ (1 −
/// level)/2`, both as large a range as those allow to be narrow. A rate
/// outside it is what exactly valid p-values at level `p` give less than
/// `1 − level` of the time on `n` independent rows. `(NaN, NaN)` when `n =
/// 0` or `p` is not in `[0, 1]`.
///
/// ```
/// // 1,000 rows at alpha 0.05: about 36 to 64 false alarms.
/// let (lo, hi) = nof1_cli::eval::binomial_range(1000, 0.05, 0.95);
/// assert_eq!((lo, hi), (0.037, 0.064));
/// ```
pub fn binomial_range(n: usize, p: f64, level: f64) -> (f64, f64) {
    if n == 0 || !(0.0..=1.0).contains(&p) {
        return (f64::NAN, f64::NAN);
    }
    let tail = (1.0 - level) / 2.0;
    let mut ln_fact = vec![0.0f64; n + 1];
    for i in 1..=n {
        ln_fact[i] = ln_fact[i - 1] + (i as f64).ln();
    }
    let (ln_p, ln_q) = (p.ln(), (1.0 - p).ln());
    let pmf = |x: usize| {
        let ln = ln_fact[n] - ln_fact[x] - ln_fact[n - x]
            + if x > 0 { x as f64 * ln_p } else { 0.0 }
            + if n > x { (n - x) as f64 * ln_q } else { 0.0 };
        ln.exp()
    };
    let mut cdf = 0.0;
    let mut lo = None;
    let mut hi = n;
    for x in 0..=n {
        cdf += pmf(x);
        // The smallest count whose lower tail P(X ≤ x) exceeds `tail`.
        if lo.is_none() && cdf > tail {
            lo = Some(x);
        }
        // The smallest count whose upper tail P(X > x) is at most `tail`.
        if 1.0 - cdf <= tail {
            hi = x;
            break;
        }
    }
    (lo.unwrap_or(0) as f64 / n as f64, hi as f64 / n as f64)
}

/// Scores a set of assessments against labels (true = anomaly / out-of-cohort).
pub fn quality(
    name: &str,
    n_reference: usize,
    n_components: usize,
    out: &[Assessment],
    labels: &[bool],
) -> RunQuality {
    let col = |f: &dyn Fn(&Assessment) -> f64| -> Vec<f64> { out.iter().map(f).collect() };
    let frac = |want: bool, pred: &dyn Fn(&Assessment) -> bool| -> f64 {
        let sel: Vec<&Assessment> = out
            .iter()
            .zip(labels)
            .filter(|(_, l)| **l == want)
            .map(|(a, _)| a)
            .collect();
        if sel.is_empty() {
            f64::NAN
        } else {
            sel.iter().filter(|a| pred(a)).count() as f64 / sel.len() as f64
        }
    };
    let inv = |a: &Assessment| a.verdict == Verdict::Invisible;
    let flag = |a: &Assessment| matches!(a.verdict, Verdict::Invisible | Verdict::LowSupport);
    let normal = |pred: &dyn Fn(&Assessment) -> bool| {
        out.iter()
            .zip(labels)
            .filter(|(a, l)| !**l && pred(a))
            .count()
    };
    let n_normal = labels.iter().filter(|&&l| !l).count();
    let n_insufficient = normal(&|a| a.verdict == Verdict::InsufficientData);
    let n_invisible = normal(&inv);
    let n_assessed = n_normal - n_insufficient;
    RunQuality {
        name: name.to_string(),
        n_reference,
        n_components,
        auroc: auroc(&col(&|a| a.novelty), labels),
        auroc_knn: auroc(&col(&|a| a.knn_distance), labels),
        auroc_residual: auroc(&col(&|a| a.residual), labels),
        auroc_p: auroc(&col(&|a| -a.p_value), labels),
        n_normal,
        n_insufficient,
        n_invisible,
        false_invisible: if n_assessed == 0 {
            f64::NAN
        } else {
            n_invisible as f64 / n_assessed as f64
        },
        false_flagged: frac(false, &flag),
        detected: frac(true, &inv),
        flagged: frac(true, &flag),
    }
}

/// One ADBench-style table: fit on 70% of the label-0 rows (seeded), assess
/// the other 30% plus every label-1 row.
///
/// # Errors
/// When the file cannot be read or has no `label` column.
pub fn adbench_table(path: &Path, params: &Params, seed: u64) -> Result<RunQuality> {
    adbench_table_masked(path, params, seed, 0.0)
}

/// [`adbench_table`] with each feature of each assessed row hidden (set to
/// missing) with probability `missing`, independently and seeded: missing
/// completely at random.
///
/// # Errors
/// As [`adbench_table`].
pub fn adbench_table_masked(
    path: &Path,
    params: &Params,
    seed: u64,
    missing: f64,
) -> Result<RunQuality> {
    let AdbenchSplit {
        reference,
        mut test,
        labels,
    } = adbench_split(path, seed)?;
    hide_at_random(&mut test, missing, seed);
    let model = params.clone().seed(seed).fit(&reference)?;
    let out = model.assess(&test)?;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(quality(
        &name,
        reference.n_rows(),
        model.n_components(),
        &out,
        &labels,
    ))
}

/// An ADBench-style table split as [`adbench_table`] splits it.
#[derive(Debug, Clone)]
pub struct AdbenchSplit {
    /// 70% of the label-0 rows (seeded), in file order.
    pub reference: Table,
    /// The other label-0 rows and every label-1 row, in file order.
    pub test: Table,
    /// Per test row: whether it is an anomaly (label 1).
    pub labels: Vec<bool>,
}

/// Reads an ADBench-style table (`id`, features, `label`) and splits it
/// with `seed` (see [`AdbenchSplit`]).
///
/// # Errors
/// When the file cannot be read or has no `label` column.
pub fn adbench_split(path: &Path, seed: u64) -> Result<AdbenchSplit> {
    let opts = TableOptions {
        id_col: Some("id".into()),
        group_col: Some("label".into()),
        ..TableOptions::default()
    };
    let table = read_table(path, &opts, Role::Reference)?;
    let groups = table.groups().map(<[String]>::to_vec).unwrap_or_default();
    let is_anomaly: Vec<bool> = groups.iter().map(|g| g.trim() == "1").collect();
    let mut normal: Vec<usize> = (0..table.n_rows()).filter(|&i| !is_anomaly[i]).collect();
    let mut rng = SplitMix64::new(seed);
    rng.shuffle(&mut normal);
    let n_fit = (normal.len() as f64 * 0.7).round() as usize;
    let mut fit_rows = normal[..n_fit].to_vec();
    fit_rows.sort_unstable();
    let mut test_rows: Vec<usize> = normal[n_fit..].to_vec();
    test_rows.extend((0..table.n_rows()).filter(|&i| is_anomaly[i]));
    test_rows.sort_unstable();
    Ok(AdbenchSplit {
        reference: table.select_rows(&fit_rows).without_groups(),
        test: table.select_rows(&test_rows).without_groups(),
        labels: test_rows.iter().map(|&i| is_anomaly[i]).collect(),
    })
}

/// Hides each value of `table` (sets it missing) with probability
/// `missing`, independently, seeded by `seed`: missing completely at random,
/// the cells [`adbench_table_masked`] hides. Nothing when `missing ≤ 0`.
pub fn hide_at_random(table: &mut Table, missing: f64, seed: u64) {
    if missing > 0.0 {
        let mut rng = SplitMix64::new(seed ^ 0x6d61_736b);
        for v in table.values_mut().iter_mut() {
            if rng.next_f64() < missing {
                *v = f64::NAN;
            }
        }
    }
}

/// Every `*.csv` in `dir`, sorted by name.
///
/// # Errors
/// When the directory cannot be read.
pub fn csv_files(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("csv"))
        .collect();
    files.sort();
    Ok(files)
}

/// The bundled 1000 Genomes AISNP panel with `superpopulation` as the group.
///
/// # Errors
/// When the file cannot be read.
pub fn read_panel(path: &Path) -> Result<Table> {
    let opts = TableOptions {
        id_col: Some("sample".into()),
        group_col: Some("superpopulation".into()),
        exclude: vec!["population".into(), "sex".into()],
        ..TableOptions::default()
    };
    read_table(path, &opts, Role::Reference)
}

/// Leave-one-super-population-out on the panel: fit on 70% of the other four
/// (seeded), assess the other 30% (label false) plus the left-out one (label true).
///
/// # Errors
/// When fitting fails.
pub fn loso(panel: &Table, params: &Params, seed: u64) -> Result<Vec<RunQuality>> {
    let groups = panel.groups().map(<[String]>::to_vec).unwrap_or_default();
    let mut names = groups.clone();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for left in &names {
        let mut inside: Vec<usize> = (0..panel.n_rows())
            .filter(|&i| &groups[i] != left)
            .collect();
        let mut rng = SplitMix64::new(seed);
        rng.shuffle(&mut inside);
        let n_fit = (inside.len() as f64 * 0.7).round() as usize;
        let mut fit_rows = inside[..n_fit].to_vec();
        fit_rows.sort_unstable();
        let mut test_rows = inside[n_fit..].to_vec();
        test_rows.extend((0..panel.n_rows()).filter(|&i| &groups[i] == left));
        test_rows.sort_unstable();
        let reference = panel.select_rows(&fit_rows);
        let test = panel.select_rows(&test_rows);
        let labels: Vec<bool> = test_rows.iter().map(|&i| &groups[i] == left).collect();
        let model = params.clone().seed(seed).fit(&reference)?;
        let res = model.assess(&test)?;
        out.push(quality(
            &format!("without {left}"),
            reference.n_rows(),
            model.n_components(),
            &res,
            &labels,
        ));
    }
    Ok(out)
}

/// GWAS-like split of the panel: most of the `major` group plus `per_minor`
/// members of every other group form the reference; the rest are held out.
/// Returns `(reference_rows, heldout_rows)`, both sorted.
pub fn gwas_split(
    panel: &Table,
    major: &str,
    major_fraction: f64,
    per_minor: usize,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let groups = panel.groups().map(<[String]>::to_vec).unwrap_or_default();
    let mut names = groups.clone();
    names.sort();
    names.dedup();
    let mut rng = SplitMix64::new(seed);
    let mut reference = Vec::new();
    let mut held = Vec::new();
    for g in &names {
        let mut rows: Vec<usize> = (0..panel.n_rows()).filter(|&i| &groups[i] == g).collect();
        rng.shuffle(&mut rows);
        let take = if g == major {
            (rows.len() as f64 * major_fraction).round() as usize
        } else {
            per_minor.min(rows.len())
        };
        reference.extend_from_slice(&rows[..take]);
        held.extend_from_slice(&rows[take..]);
    }
    reference.sort_unstable();
    held.sort_unstable();
    (reference, held)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_of_perfect_random_and_tied_scores() {
        let labels = [false, false, true, true];
        assert_eq!(auroc(&[0.1, 0.2, 0.8, 0.9], &labels), 1.0);
        assert_eq!(auroc(&[0.9, 0.8, 0.2, 0.1], &labels), 0.0);
        assert_eq!(auroc(&[1.0, 1.0, 1.0, 1.0], &labels), 0.5);
        // Rows without a score (insufficient_data) are left out.
        let nan = f64::NAN;
        assert_eq!(auroc(&[0.1, nan, 0.8, nan], &labels), 1.0);
        assert!(auroc(&[0.1, 0.2, nan, nan], &labels).is_nan());
    }
}
