//! Numerical edge cases (issue 6): duplicated reference rows, perfectly
//! collinear features, a patient identical to a reference member.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use nof1::rng::SplitMix64;
use nof1::{Params, Table, Verdict};

fn names(p: usize) -> Vec<String> {
    (0..p).map(|j| format!("f{j}")).collect()
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

/// Two latent factors, `p` noisy features.
fn cohort(n: usize, p: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    let mut v = Vec::with_capacity(n * p);
    for _ in 0..n {
        let (a, b) = (rng.normal(), rng.normal());
        for j in 0..p {
            let w = (j as f64 + 1.0) / p as f64;
            v.push(w * a + (1.0 - w) * b + 0.3 * rng.normal());
        }
    }
    v
}

#[test]
fn many_identical_reference_rows_do_not_break_calibration() {
    let p = 5;
    let mut values = cohort(150, p, 1);
    let dup: Vec<f64> = values[..p].to_vec();
    for _ in 0..60 {
        values.extend_from_slice(&dup);
    }
    let n = values.len() / p;
    let model = Params::default()
        .fit(&Table::from_rows(ids("r", n), names(p), values).expect("table"))
        .expect("fit with 60 duplicated rows");
    let mut pv = dup.clone();
    pv.extend(dup.iter().map(|x| x + 40.0));
    pv.extend(cohort(200, p, 2));
    let patients = Table::from_rows(ids("p", 202), names(p), pv).expect("table");
    let out = model.assess(&patients).expect("assess");
    // The duplicated point itself sits on 60 members: distance 0, not invisible.
    assert_eq!(out[0].knn_distance, 0.0);
    assert_ne!(out[0].verdict, Verdict::Invisible);
    assert_eq!(out[1].verdict, Verdict::Invisible);
    for a in &out {
        assert!(
            a.p_value > 0.0 && a.p_value <= 1.0,
            "{}: {}",
            a.id,
            a.p_value
        );
        assert!(a.novelty.is_finite() && a.density.is_finite());
    }
    // Ties count against the patient: exchangeable patients are not flagged
    // more often because of the tied calibration scores.
    let inv = out[2..]
        .iter()
        .filter(|a| a.verdict == Verdict::Invisible)
        .count();
    // Valid p-values make the count at most Binomial(200, alpha) (given the
    // seed, the count is fixed); the bound is that law's 1 - 1e-3 quantile
    // (21 for alpha = 0.05), not a loose guess.
    let alpha = model.params().alpha;
    let bound = binomial_quantile(200, alpha, 1e-3);
    assert!(
        inv <= bound,
        "{inv} of 200 exchangeable patients invisible; P(Binomial(200, {alpha}) > {bound}) <= 1e-3"
    );
}

/// The smallest `c` with `P(X > c) ≤ tail` for `X ~ Binomial(n, p)`.
fn binomial_quantile(n: usize, p: f64, tail: f64) -> usize {
    // pmf(k + 1) = pmf(k) (n - k) / (k + 1) p / (1 - p).
    let mut pmf = (1.0 - p).powi(n as i32);
    let mut cdf = pmf;
    let mut c = 0;
    while 1.0 - cdf > tail && c < n {
        pmf *= (n - c) as f64 / (c + 1) as f64 * p / (1.0 - p);
        cdf += pmf;
        c += 1;
    }
    c
}

#[test]
fn binomial_quantile_matches_known_values() {
    // Exact quantiles of Binomial(200, 0.05) (by exact summation elsewhere):
    // P(X > c) <= 1e-2, 1e-3, 1e-4 first at c = 18, 21, 23.
    assert_eq!(binomial_quantile(200, 0.05, 1e-2), 18);
    assert_eq!(binomial_quantile(200, 0.05, 1e-3), 21);
    assert_eq!(binomial_quantile(200, 0.05, 1e-4), 23);
    // Binomial(10, 1/2): P(X > 5) = 0.377, P(X > 4) = 0.623.
    assert_eq!(binomial_quantile(10, 0.5, 0.5), 5);
    assert_eq!(binomial_quantile(200, 0.0, 1e-4), 0);
}

#[test]
fn perfectly_collinear_features_fit_and_off_plane_patients_are_caught() {
    let n = 200;
    let mut rng = SplitMix64::new(3);
    let mut values = Vec::new();
    for _ in 0..n {
        let (a, b) = (rng.normal(), rng.normal());
        // f1 = 2·f0 and f3 = f0 + f2 exactly.
        values.extend_from_slice(&[a, 2.0 * a, b, a + b]);
    }
    let model = Params::default()
        .fit(&Table::from_rows(ids("r", n), names(4), values).expect("table"))
        .expect("fit on collinear features");
    let patients = Table::from_rows(
        ids("p", 3),
        names(4),
        vec![
            0.3, 0.6, -0.2, 0.1, // on the plane
            0.3, -0.6, -0.2, 0.1, // breaks f1 = 2·f0
            9.0, 18.0, 9.0, 18.0, // on the plane, far out
        ],
    )
    .expect("table");
    let out = model.assess(&patients).expect("assess");
    assert_ne!(out[0].verdict, Verdict::Invisible);
    assert_eq!(
        out[1].verdict,
        Verdict::Invisible,
        "off the collinear plane"
    );
    assert!(out[1].residual > 100.0 * out[0].residual.max(1e-12));
    assert_eq!(out[2].verdict, Verdict::Invisible, "far along the plane");
    for a in &out {
        assert!(a.novelty.is_finite() && a.residual.is_finite());
    }
}

#[test]
fn a_patient_identical_to_a_member_finds_it_at_distance_zero() {
    let (n, p) = (120, 6);
    let values = cohort(n, p, 4);
    let member = 17;
    let row = values[member * p..(member + 1) * p].to_vec();
    let model = Params::default()
        .fit(&Table::from_rows(ids("r", n), names(p), values).expect("table"))
        .expect("fit");
    let out = model
        .assess(&Table::from_rows(vec!["twin".into()], names(p), row).expect("table"))
        .expect("assess");
    let a = &out[0];
    assert_eq!(a.neighbours[0].index as usize, member);
    assert_eq!(a.neighbours[0].distance, 0.0);
    assert_ne!(a.verdict, Verdict::Invisible);
    assert!(a.support >= 1);
}

/// Rank-`rank` structure through random loadings, plus independent noise whose
/// standard deviation differs from feature to feature (0.5 to 1.5).
fn heteroscedastic_cohort(n: usize, p: usize, rank: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    let loadings: Vec<f64> = (0..p * rank).map(|_| rng.normal()).collect();
    let noise_sd: Vec<f64> = (0..p)
        .map(|j| 0.5 + 1.0 * ((j * 37) % p) as f64 / p as f64)
        .collect();
    let mut v = Vec::with_capacity(n * p);
    for _ in 0..n {
        let u: Vec<f64> = (0..rank).map(|_| rng.normal()).collect();
        for j in 0..p {
            let signal: f64 = (0..rank).map(|r| loadings[j * rank + r] * u[r]).sum();
            v.push(signal + noise_sd[j] * rng.normal());
        }
    }
    v
}

#[test]
fn a_heteroscedastic_noise_floor_is_recognised() {
    // Standardising gives each feature its own share of noise, so the spectrum
    // beyond the signal decays instead of being flat: the permuted-residual
    // null must still call it noise and keep the true rank, where the 95%
    // variance rule keeps many more components.
    let (n, p, rank) = (3000, 40, 4);
    let table = Table::from_rows(ids("r", n), names(p), heteroscedastic_cohort(n, p, rank, 5))
        .expect("table");
    let model = Params::default().fit(&table).expect("fit");
    let c = &model.data().components;
    assert_eq!(c.n_parallel, rank, "parallel analysis");
    assert!(
        c.n_variance > rank + 5,
        "variance rule keeps {}",
        c.n_variance
    );
    let homoscedastic =
        nof1::project::noise_likeness(&c.eigenvalues, &c.null_eigenvalues, c.n_parallel);
    assert!(
        homoscedastic < nof1::project::NOISE_FLATNESS,
        "the permuted-data null alone would reject the floor ({homoscedastic:.3})"
    );
    assert_eq!(
        c.n_components, rank,
        "noise-likeness {:.3}",
        c.noise_likeness
    );
}

#[test]
fn hnsw_models_record_recall_and_recheck_rate_exact_models_do_not() {
    let (n, p) = (600, 6);
    let table = Table::from_rows(ids("r", n), names(p), cohort(n, p, 11)).expect("table");
    let graph = Params::default()
        .index(nof1::IndexChoice::Hnsw)
        .fit(&table)
        .expect("fit hnsw");
    let chk = graph
        .data()
        .index_check
        .expect("an HNSW model records its check");
    assert_eq!(chk.probes, 600);
    // A 600-point graph in a few dimensions finds the exact neighbours.
    assert!(chk.recall_in > 0.99, "recall in {}", chk.recall_in);
    assert!(chk.recall_out > 0.95, "recall out {}", chk.recall_out);
    // 600 members are calibrated cross-conformally: every verdict comes from
    // the fold models' exact searches, so the graph never decides one and
    // nothing is re-checked (the re-check rate is measured under split
    // conformal, from 50,000 members).
    assert_eq!(
        graph.data().calibration.scheme,
        nof1::calibrate::Scheme::CrossConformal
    );
    assert_eq!(chk.recheck_rate, 0.0, "re-check rate {}", chk.recheck_rate);
    let exact = Params::default().fit(&table).expect("fit exact");
    assert!(exact.data().index_check.is_none());
}

#[test]
fn fit_widens_a_narrow_hnsw_beam_until_recall_is_reached() {
    let (n, p, k) = (4000, 8, 10);
    let values: Vec<f64> = nof1_cli::synth::clustered_points(n, p, 12, 4)
        .iter()
        .map(|&v| v as f64)
        .collect();
    let table = Table::from_rows(ids("r", n), names(p), values).expect("table");
    // A graph with two links per point, searched with the narrowest beam.
    let narrow = nof1::index::HnswParams {
        max_connections: 2,
        ef_construction: 2,
        ef_search: 1,
        max_layers: 2,
    };
    let model = Params::default()
        .k(k)
        .index(nof1::IndexChoice::Hnsw)
        .hnsw(narrow)
        .fit(&table)
        .expect("fit hnsw");
    let chk = model.data().index_check.expect("a check");
    let ef = model.params().hnsw.ef_search;
    let limit = k * nof1::model::fit::EF_RAISE_LIMIT;
    // Widened by doublings from k, and only as far as needed: either the
    // recall is reached or the limit is.
    assert!(
        ef > k && ef <= limit && (ef / k).is_power_of_two(),
        "ef_search {ef}"
    );
    let reached = chk.recall_in.min(chk.recall_out) >= nof1::model::fit::MIN_RECALL;
    assert!(reached || ef == limit, "ef {ef}, check {chk:?}");
    // The width is stored: the loaded model searches with it.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("m.nof1");
    model.save(&path).expect("save");
    let loaded = nof1::Model::load(&path).expect("load");
    assert_eq!(loaded.params().hnsw.ef_search, ef);
}
