//! Statistical validity of the calibration, on seeded synthetic cohorts and
//! the bundled 1000 Genomes panel.
//!
//! False-invisible rates are compared with the one-sided binomial bound
//! `α + 3·sqrt(α(1 − α)/m)` over `m ≥ 1000` exchangeable patients, pooled
//! over several independently drawn references (conformal validity is
//! marginal over the reference draw, so pooling references is what the
//! guarantee speaks about). The p-value distribution test widens the bound by
//! the variance that comes from drawing each calibration set (see
//! `cohorts::conformal_bound`). The in-sample control shows that the
//! exchangeable test has teeth: the same check fails when the calibration
//! scores are computed on members that shaped the projection.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod cohorts;

use std::sync::OnceLock;

use cohorts::{LowRank, binomial_bound, conformal_bound, rate, table};
use nof1::calibrate::ChannelScores;
use nof1::index::ExactIndex;
use nof1::rng::SplitMix64;
use nof1::score::{KnnStatistic, knn_statistic};
use nof1::{Assessment, ComponentRule, Params, Table, Verdict};

/// One exchangeable set-up: a population, a reference size, and how many
/// references and patients per reference are drawn.
#[derive(Debug, Clone, Copy)]
struct Setup {
    name: &'static str,
    n_reference: usize,
    p: usize,
    rank: usize,
    noise: f64,
    /// Components rule: `None` for the default (parallel analysis), or the
    /// explained-variance fraction.
    variance: Option<f64>,
    n_seeds: u64,
    patients_per_seed: usize,
}

impl Setup {
    fn params(&self) -> Params {
        match self.variance {
            Some(v) => Params::default().components(ComponentRule::Variance(v)),
            None => Params::default(),
        }
    }
}

const LOW_DIM: Setup = Setup {
    name: "n=400 p=10 rank 3",
    n_reference: 400,
    p: 10,
    rank: 3,
    noise: 0.5,
    variance: None,
    n_seeds: 10,
    patients_per_seed: 120,
};

/// More features than a quarter of the reference rows.
const WIDE: Setup = Setup {
    name: "n=200 p=80 rank 5",
    n_reference: 200,
    p: 80,
    rank: 5,
    noise: 1.0,
    variance: None,
    // Fewer, larger draws: each fit of this size is slow in debug builds.
    n_seeds: 5,
    patients_per_seed: 240,
};

/// The wide case with the components chosen to explain 95% of the variance:
/// 15–26 components on 200 rows, where in-sample (leave-one-out) calibration
/// breaks down (the measurement of issue 7). The rule is fixed here so that
/// the control does not depend on the default component rule: with parallel
/// analysis (5 components) the in-sample bias is small (0.066 invisible),
/// while the default of ea0eaf8 picks the same 15–26 components as this.
const WIDE_VARIANCE: Setup = Setup {
    name: "n=200 p=80 rank 5, 95% variance",
    variance: Some(0.95),
    ..WIDE
};

/// Wider still, with a weak spectrum (no clear elbow for parallel analysis).
const WIDE_WEAK: Setup = Setup {
    name: "n=120 p=40 rank 8",
    n_reference: 120,
    p: 40,
    rank: 8,
    noise: 1.0,
    variance: None,
    n_seeds: 10,
    patients_per_seed: 120,
};

/// One reference with its exchangeable patients, fitted with the set-up's parameters.
struct Draw {
    reference: Table,
    /// Components the model kept.
    n_components: usize,
    params: Params,
    out: Vec<Assessment>,
}

fn draw(setup: &Setup, seed: u64) -> Draw {
    let pop = LowRank::new(setup.p, setup.rank, setup.noise, 1000 + seed);
    let mut rng = SplitMix64::new(seed);
    let reference = table("r", setup.p, pop.sample(&mut rng, setup.n_reference, 1.0));
    let patients = table(
        "p",
        setup.p,
        pop.sample(&mut rng, setup.patients_per_seed, 1.0),
    );
    let params = setup.params();
    let model = params.fit(&reference).expect("fit");
    let out = model.assess(&patients).expect("assess");
    assert_eq!(out.len(), patients.n_rows());
    Draw {
        reference,
        n_components: model.n_components(),
        params,
        out,
    }
}

fn draws(setup: &Setup) -> Vec<Draw> {
    (0..setup.n_seeds).map(|s| draw(setup, s)).collect()
}

/// Draws shared by several tests (fitted once per test binary).
fn cached(setup: &'static Setup, cell: &'static OnceLock<Vec<Draw>>) -> &'static [Draw] {
    cell.get_or_init(|| draws(setup))
}

static LOW_DIM_DRAWS: OnceLock<Vec<Draw>> = OnceLock::new();
static WIDE_WEAK_DRAWS: OnceLock<Vec<Draw>> = OnceLock::new();

fn pooled(draws: &[Draw]) -> Vec<&Assessment> {
    draws.iter().flat_map(|d| d.out.iter()).collect()
}

fn fraction(out: &[&Assessment], pred: impl Fn(&Assessment) -> bool) -> f64 {
    out.iter().filter(|a| pred(a)).count() as f64 / out.len() as f64
}

/// The false-invisible rate on exchangeable patients stays within the binomial
/// bound of α; returns the pooled rate.
fn check_false_invisible(setup: &Setup, draws: &[Draw]) -> f64 {
    let out = pooled(draws);
    assert!(
        out.len() >= 1000,
        "{}: only {} patients",
        setup.name,
        out.len()
    );
    assert!(out.iter().all(|a| a.verdict != Verdict::InsufficientData));
    let alpha = draws[0].params.alpha;
    let got = fraction(&out, |a| a.verdict == Verdict::Invisible);
    let bound = binomial_bound(alpha, out.len());
    let components: Vec<usize> = draws.iter().map(|d| d.n_components).collect();
    eprintln!(
        "{}: false-invisible {got:.4} over {} patients (bound {bound:.4}), components {components:?}",
        setup.name,
        out.len()
    );
    assert!(
        got <= bound,
        "{}: {got:.4} of exchangeable patients called invisible, above {bound:.4} (alpha {alpha})",
        setup.name
    );
    got
}

#[test]
fn exchangeable_patients_are_rarely_invisible_low_dimension() {
    check_false_invisible(&LOW_DIM, cached(&LOW_DIM, &LOW_DIM_DRAWS));
}

#[test]
fn exchangeable_patients_are_rarely_invisible_with_more_features_than_a_quarter_of_the_rows() {
    check_false_invisible(&WIDE, &draws(&WIDE));
}

#[test]
fn exchangeable_patients_are_rarely_invisible_with_a_weak_spectrum() {
    check_false_invisible(&WIDE_WEAK, cached(&WIDE_WEAK, &WIDE_WEAK_DRAWS));
}

/// In-sample calibration, done by hand on the fitted model: each reference
/// member is scored in the model's own embedding, which it helped fit — its
/// leave-one-out kNN statistic among the stored reference embeddings (in the
/// coordinates the kNN search uses) and its residual from the model's
/// projection — and patients get conformal p-values against those scores
/// instead of the cross-fitted ones, the two channels combined by
/// Bonferroni (more conservative than the model's own combination, so a
/// failure here is not an artefact of the combination). Returns the combined
/// p-value of each patient.
fn in_sample_p_values(d: &Draw) -> Vec<f64> {
    let model = d.params.fit(&d.reference).expect("fit");
    let k = d.params.k;
    let n = model.reference().len();
    let c = model.reference().embeddings.len() / n;
    let dims = model.data().components.knn_components.clamp(1, c);
    let leading: Vec<f32> = model
        .reference()
        .embeddings
        .chunks_exact(c)
        .flat_map(|r| r[..dims].iter().copied())
        .collect();
    let index = ExactIndex::new(leading, dims);
    // The model's kNN statistic, recognised on the first patient.
    let first = &d.out[0];
    let nb = index
        .search(&first.embedding[..dims], k, None, None)
        .neighbours;
    let statistic = [KnnStatistic::KthDistance, KnnStatistic::MeanDistance]
        .into_iter()
        .find(|s| close(knn_statistic(&nb, *s), first.knn_distance))
        .expect("the model's kNN statistic is the k-th or the mean distance");
    let members = model.assess(&d.reference).expect("assess");
    let mut knn = Vec::with_capacity(n);
    let mut res = Vec::with_capacity(n);
    for (i, a) in members.iter().enumerate() {
        let nb = index
            .search(&a.embedding[..dims], k, Some(i as u32), None)
            .neighbours;
        knn.push(knn_statistic(&nb, statistic));
        res.push(a.residual);
    }
    let knn = ChannelScores::new(knn);
    let res = ChannelScores::new(res);
    d.out
        .iter()
        .map(|a| {
            // Same search as the model's: only the calibration differs.
            let nb = index.search(&a.embedding[..dims], k, None, None).neighbours;
            let stat = knn_statistic(&nb, statistic);
            assert!(
                close(stat, a.knn_distance),
                "{}: kNN statistic {stat} vs the model's {}",
                a.id,
                a.knn_distance
            );
            (2.0 * knn.p_value(stat).min(res.p_value(a.residual))).min(1.0)
        })
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * (1.0 + a.abs().max(b.abs()))
}

/// The wide case with many components passes with cross-fitted calibration
/// and fails with in-sample calibration: the exchangeable test has teeth.
#[test]
fn wide_case_holds_with_cross_fitting_and_fails_in_sample() {
    let draws = draws(&WIDE_VARIANCE);
    let cross_fitted = check_false_invisible(&WIDE_VARIANCE, &draws);
    let alpha = draws[0].params.alpha;
    let mut n = 0usize;
    let mut invisible = 0usize;
    for d in &draws {
        for p in in_sample_p_values(d) {
            n += 1;
            if p <= alpha {
                invisible += 1;
            }
        }
    }
    let in_sample = invisible as f64 / n as f64;
    let bound = binomial_bound(alpha, n);
    eprintln!(
        "{}: in-sample calibration calls {in_sample:.4} invisible (cross-fitted {cross_fitted:.4}, bound {bound:.4})",
        WIDE_VARIANCE.name
    );
    assert!(
        in_sample > bound && in_sample > 4.0 * alpha,
        "in-sample calibration gave {in_sample:.4}: the exchangeable test would not catch it"
    );
}

/// Each channel's p-value and the combined one are super-uniform on held-out
/// exchangeable patients: P(p ≤ level) ≤ level + 3 SE, where the SE accounts
/// for the draw of each calibration set as well as the patients
/// ([`conformal_bound`]): at level 0.01 a 120-member calibration set has as
/// much between-reference variance as 2400 patients have binomial variance.
#[test]
fn p_values_are_super_uniform_on_exchangeable_patients() {
    let draws: Vec<&Draw> = cached(&LOW_DIM, &LOW_DIM_DRAWS)
        .iter()
        .chain(cached(&WIDE_WEAK, &WIDE_WEAK_DRAWS))
        .collect();
    let sizes: Vec<(usize, usize)> = draws
        .iter()
        .map(|d| (d.out.len(), d.reference.n_rows()))
        .collect();
    let out: Vec<&Assessment> = draws.iter().flat_map(|d| d.out.iter()).collect();
    type Channel = (&'static str, fn(&Assessment) -> f64);
    let channels: [Channel; 3] = [
        ("p_value", |a| a.p_value),
        ("p_novelty", |a| a.p_novelty),
        ("p_residual", |a| a.p_residual),
    ];
    for (name, get) in channels {
        for level in [0.01, 0.05, 0.1, 0.2, 0.5] {
            let got = fraction(&out, |a| get(a) <= level);
            let bound = conformal_bound(level, &sizes);
            eprintln!("{name} <= {level}: {got:.4} (bound {bound:.4})");
            assert!(
                got <= bound,
                "{name}: {got:.4} of {} exchangeable patients have {name} <= {level} (bound {bound:.4})",
                out.len()
            );
        }
    }
}

/// Mondrian calibration: a group much more spread than the rest (and 15% of
/// the reference) is flagged far above α under pooled calibration, and within
/// the binomial bound of α under per-group calibration, in every group.
#[test]
fn mondrian_calibration_holds_per_group_where_pooled_does_not() {
    let p = 6;
    let (n_a, n_b) = (340, 60);
    let per_group = 125;
    let n_seeds = 8u64;
    let mut pooled_out: Vec<Assessment> = Vec::new();
    let mut mondrian_out: Vec<Assessment> = Vec::new();
    for seed in 0..n_seeds {
        let pop = LowRank::new(p, 2, 0.5, 2000 + seed);
        let mut rng = SplitMix64::new(seed);
        let mut values = pop.sample(&mut rng, n_a, 1.0);
        values.extend(pop.sample(&mut rng, n_b, 3.0));
        let groups: Vec<String> = (0..n_a + n_b)
            .map(|i| if i < n_a { "A" } else { "B" }.to_string())
            .collect();
        let reference = table("r", p, values).with_groups(groups).expect("groups");
        let mut pv = pop.sample(&mut rng, per_group, 1.0);
        pv.extend(pop.sample(&mut rng, per_group, 3.0));
        let labels: Vec<String> = (0..2 * per_group)
            .map(|i| if i < per_group { "A" } else { "B" }.to_string())
            .collect();
        let patients = table("p", p, pv).with_groups(labels).expect("groups");
        let pooled_model = Params::default().fit(&reference).expect("fit");
        let mondrian_model = Params::default()
            .calibrate_by_group(true)
            .fit(&reference)
            .expect("fit");
        pooled_out.extend(pooled_model.assess(&patients).expect("assess"));
        let out = mondrian_model.assess(&patients).expect("assess");
        assert!(
            out.iter().all(|a| !a.pooled_fallback),
            "no group falls back"
        );
        mondrian_out.extend(out);
    }
    let alpha = Params::default().alpha;
    let in_group = |out: &[Assessment], g: &str| -> Vec<Assessment> {
        out.iter()
            .filter(|a| a.group.as_deref() == Some(g))
            .cloned()
            .collect()
    };
    let m = per_group * n_seeds as usize;
    let bound = binomial_bound(alpha, m);
    let pooled_b = rate(&in_group(&pooled_out, "B"), Verdict::Invisible);
    eprintln!("pooled calibration: group B false-invisible {pooled_b:.4}");
    assert!(
        pooled_b > 4.0 * alpha,
        "pooled calibration should fail group B, got {pooled_b:.4}"
    );
    for g in ["A", "B"] {
        let sel = in_group(&mondrian_out, g);
        assert_eq!(sel.len(), m);
        let got = rate(&sel, Verdict::Invisible);
        eprintln!("Mondrian calibration: group {g} false-invisible {got:.4} (bound {bound:.4})");
        assert!(
            got <= bound,
            "group {g}: {got:.4} called invisible under per-group calibration (bound {bound:.4})"
        );
    }
}
