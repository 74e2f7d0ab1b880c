//! Why masked patients are called `invisible` less often than alpha on some
//! ADBench-style tables: a probe of the cross-conformal calibration under
//! missing features (docs/performance.md, "Patients with missing features").
//!
//! ```sh
//! cargo run --release -p nof1-cli --example masked_folds -- TABLE.csv SEED MISSING MAX_ROWS
//! ```
//!
//! Splits the table as `nof1 eval adbench` does (fit on 70% of the label-0
//! rows, seeded; the same cells hidden as `--missing`), then for the first
//! `MAX_ROWS` held-out normal rows, masked and complete:
//!
//! - the share whose combined cross-conformal p-value is `≤ alpha` (what
//!   `eval adbench` reports as false-invisible);
//! - the share whose split-conformal p-value under each fold model alone
//!   (the fold's members only) is `≤ alpha`, averaged over the folds;
//! - how far apart the folds' p-values of one row are (mean absolute
//!   deviation from their mean).
//!
//! And, for masked calibration members rescored under the first rows'
//! masks, how far the mask moves a member's search coordinates (`δ`, under
//! its fold's model) against its k-th neighbour distance unmasked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a probe: panics on bad input

use nof1::calibrate::FoldScorer;
use nof1::index::ExactIndex;
use nof1::model::Params;
use nof1_cli::eval::{AdbenchSplit, adbench_split, hide_at_random};

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if a.len() != 5 {
        eprintln!("usage: masked_folds TABLE.csv SEED MISSING MAX_ROWS");
        std::process::exit(2);
    }
    let path = std::path::Path::new(&a[1]);
    let seed: u64 = a[2].parse().expect("SEED");
    let missing: f64 = a[3].parse().expect("MISSING");
    let max: usize = a[4].parse().expect("MAX_ROWS");

    // The split and the hidden cells of nof1_cli::eval::adbench_table_masked.
    let AdbenchSplit {
        reference,
        test: complete,
        labels,
    } = adbench_split(path, seed).expect("table");
    let mut masked = complete.clone();
    hide_at_random(&mut masked, missing, seed);
    let model = Params::default().seed(seed).fit(&reference).expect("fit");

    let d = model.data();
    let cal = &d.calibration;
    let indexes: Vec<ExactIndex> = cal
        .folds
        .iter()
        .map(|f| ExactIndex::new(f.points.clone(), f.search_dims.max(1)))
        .collect();
    if cal.n_folds() < 2 || indexes.is_empty() {
        eprintln!("split conformal (one fold): nothing to compare");
        std::process::exit(2);
    }
    let scorer = |k: usize| FoldScorer {
        model: &cal.folds[k],
        index: &indexes[k],
        k: d.params.k,
        statistic: d.params.knn_statistic,
    };
    let kf = cal.n_folds();
    let p = d.features.len();
    let alpha = d.params.alpha;
    let map = model.feature_map(masked.feature_names());
    let min_group = ((1.0 / alpha).ceil() as usize).saturating_sub(1).max(1);

    // [masked, complete]: combined p ≤ alpha, per-fold p ≤ alpha, spread.
    let mut combined = [0usize; 2];
    let mut per_fold = [0usize; 2];
    let mut spread = [0.0f64; 2];
    let mut n = 0usize;
    let (mut deltas, mut kth) = (Vec::new(), Vec::new());
    for (t, &anomaly) in labels.iter().enumerate() {
        if anomaly {
            continue;
        }
        if n == max {
            break;
        }
        n += 1;
        for (which, tab) in [&masked, &complete].into_iter().enumerate() {
            let mut raw = vec![f64::NAN; p];
            map.gather(tab.row(t), &mut raw);
            let mask: Vec<bool> = raw.iter().map(|v| !v.is_nan()).collect();
            let own;
            let set = if mask.iter().all(|&o| o) {
                &cal.pooled
            } else {
                own = cal.masked(&mask, scorer, min_group, None);
                &own.pooled
            };
            let novelty: Vec<f64> = (0..kf).map(|k| scorer(k).score(&raw).novelty).collect();
            if set.p_value(&novelty) <= alpha {
                combined[which] += 1;
            }
            let pk: Vec<f64> = (0..kf)
                .map(|k| set.novelty[k].p_value(novelty[k]))
                .collect();
            per_fold[which] += pk.iter().filter(|&&x| x <= alpha).count();
            let mean = pk.iter().sum::<f64>() / kf as f64;
            spread[which] += pk.iter().map(|x| (x - mean).abs()).sum::<f64>() / kf as f64;
            // How far this mask moves masked members (first rows only).
            if which == 0 && n <= 20 {
                for (slot, &pos) in cal.masked.members.iter().enumerate().take(200) {
                    let member = &cal.members[pos as usize];
                    let s = scorer(member.fold as usize);
                    let full = &cal.masked.raw[slot * p..(slot + 1) * p];
                    let hidden: Vec<f64> = full
                        .iter()
                        .zip(&mask)
                        .map(|(&v, &o)| if o { v } else { f64::NAN })
                        .collect();
                    let coords = |r: &[f64]| {
                        let pr = &s.model.projector;
                        let (mut z, mut y) = (vec![0.0; p], vec![0.0; pr.n_components]);
                        pr.project(r, &mut z, &mut y);
                        y[..s.index.dim()]
                            .iter()
                            .map(|v| *v as f32)
                            .collect::<Vec<f32>>()
                    };
                    let (u, m) = (coords(full), coords(&hidden));
                    let delta = u
                        .iter()
                        .zip(&m)
                        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
                        .sum::<f64>()
                        .sqrt();
                    let nb = s.index.search(&u, d.params.k, None, None).neighbours;
                    if let Some(last) = nb.last() {
                        deltas.push(delta);
                        kth.push(f64::from(last.distance));
                    }
                }
            }
        }
    }
    let rate = |c: usize| c as f64 / n.max(1) as f64;
    println!(
        "{} seed {seed} missing {missing}: {n} held-out normal rows; {kf} folds, {} calibration members ({} rescored per mask); alpha {alpha}",
        path.display(),
        cal.pooled.n_members,
        cal.masked.members.len()
    );
    for (which, name) in ["masked", "complete"].into_iter().enumerate() {
        println!(
            "  {name:<8}  combined p <= alpha {:.3}   per-fold split p <= alpha {:.3} (mean over folds)   spread of fold p-values {:.3}",
            rate(combined[which]),
            per_fold[which] as f64 / (n.max(1) * kf) as f64,
            spread[which] / n.max(1) as f64
        );
    }
    if !deltas.is_empty() {
        println!(
            "  masked members ({} member-masks): delta median {:.2}, 90% {:.2}, max {:.2}; unmasked k-th neighbour distance median {:.2}",
            deltas.len(),
            quantile(&mut deltas, 0.5),
            quantile(&mut deltas, 0.9),
            quantile(&mut deltas, 1.0),
            quantile(&mut kth, 0.5)
        );
    }
}
