//! Cross-conformal fold models on a wide reference (512 or more features):
//! the component rule runs once on the whole reference and each fold keeps
//! its counts, with loadings from the whole covariance downdated by the
//! fold's rows (docs/method.md §4). Checked against refitting the fold's
//! training rows with the same number of components.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use nof1::model::NoProgress;
use nof1::model::fit::ProjectionParams;
use nof1::project::FoldPca;
use nof1::rng::SplitMix64;
use nof1::{ComponentRule, Params, Table};

/// `rank` Gaussian-ish factors plus independent noise, row-major `n × p`.
fn wide(n: usize, p: usize, rank: usize, seed: u64) -> Vec<f64> {
    let mut rng = SplitMix64::new(seed);
    let mut u = || rng.next_u64() as f64 / u64::MAX as f64 - 0.5;
    let load: Vec<f64> = (0..rank * p).map(|_| u()).collect();
    let mut values = Vec::with_capacity(n * p);
    for _ in 0..n {
        let f: Vec<f64> = (0..rank).map(|_| 3.0 * (u() + u() + u())).collect();
        for j in 0..p {
            let signal: f64 = (0..rank).map(|r| f[r] * load[r * p + j]).sum();
            values.push(signal + 0.5 * (u() + u()));
        }
    }
    values
}

#[test]
fn a_wide_fold_equals_a_refit_of_its_rows_with_the_whole_component_count() {
    let (n, p) = (640, 520);
    let values = wide(n, p, 4, 7);
    let all: Vec<usize> = (0..n).collect();
    let params = ProjectionParams::from(&Params::default());
    let whole = params.fit(&values, p, &all, &all, &NoProgress).unwrap();
    let c = whole.choice.n_components;
    assert!(c >= 4, "the rule finds the 4 factors, kept {c}");

    let fold_pca = FoldPca::new(&values, p, n, 1);
    assert!(fold_pca.is_downdated(), "520 features, 640 rows: downdated");
    let train: Vec<usize> = (0..n).filter(|r| r % 10 != 3).collect();
    let fold = params
        .fit_fold_keeping_components(&values, p, &train, &whole.choice, &fold_pca)
        .unwrap();
    assert_eq!(fold.choice.n_components, c);
    assert_eq!(fold.choice.knn_components, whole.choice.knn_components);

    let fixed = ProjectionParams {
        components: ComponentRule::Fixed(c),
        ..params.clone()
    };
    let refit = fixed.fit(&values, p, &train, &train, &NoProgress).unwrap();
    let (a, b) = (&fold.projector, &refit.projector);
    assert_eq!(a.n_components, b.n_components);
    for (x, y) in a.standardiser.mean().iter().zip(b.standardiser.mean()) {
        assert!((x - y).abs() <= 1e-12 * (1.0 + y.abs()), "{x} vs {y}");
    }
    // Loadings agree up to rounding (signs are fixed by the same rule). The
    // downdated fold and the refit differ from the whole reference's.
    let mut largest_gap = 0.0f64;
    let mut from_whole = 0.0f64;
    for j in 0..p {
        for k in 0..c {
            let (x, y) = (a.loadings[j * c + k], b.loadings[j * c + k]);
            largest_gap = largest_gap.max((x - y).abs());
            let w = whole.projector.loadings[j * c + k];
            from_whole = from_whole.max((x - w).abs());
        }
    }
    assert!(largest_gap < 1e-6, "fold loadings off by {largest_gap}");
    assert!(from_whole > 1e-6, "the fold was fitted on its own rows");
}

#[test]
fn every_fold_model_of_a_wide_reference_keeps_the_model_components() {
    let (n, p) = (600, 512);
    let values = wide(n, p, 3, 11);
    let ids = (0..n).map(|i| format!("m{i}")).collect();
    let names = (0..p).map(|j| format!("f{j}")).collect();
    let reference = Table::from_rows(ids, names, values).unwrap();
    let model = Params::default().fit(&reference).unwrap();
    let folds = &model.data().calibration.folds;
    assert!(folds.len() >= 2, "cross-conformal: {} folds", folds.len());
    for (k, fold) in folds.iter().enumerate() {
        assert_eq!(
            fold.projector.n_components,
            model.n_components(),
            "fold {k} keeps the whole reference's components"
        );
    }
}

/// A model does not depend on the number of threads it was fitted with
/// (faer's decompositions run one thread each during fit; their parallel
/// versions round differently for different thread counts).
#[test]
fn a_model_is_the_same_for_any_thread_count() {
    for (n, p) in [(600, 512), (300, 40)] {
        let values = wide(n, p, 3, 13);
        let ids: Vec<String> = (0..n).map(|i| format!("m{i}")).collect();
        let names: Vec<String> = (0..p).map(|j| format!("f{j}")).collect();
        let reference = Table::from_rows(ids, names, values).unwrap();
        let fit_with = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| Params::default().fit(&reference).unwrap())
        };
        let (one, two) = (fit_with(1), fit_with(2));
        let (a, b) = (one.data(), two.data());
        assert_eq!(a.projector, b.projector, "{n} x {p}: projection");
        assert_eq!(a.reference.embeddings, b.reference.embeddings);
        assert_eq!(a.calibration, b.calibration, "{n} x {p}: calibration");
    }
}
