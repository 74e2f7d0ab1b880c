//! Properties of the public library API (proptest).
//!
//! Data come from seeded generators ([`cohorts::LowRank`] over
//! `nof1::rng::SplitMix64`); proptest draws the seeds and the shapes. The
//! proptest runner itself is seeded too (override with `PROPTEST_RNG_SEED`),
//! so a run is reproducible; fitting is the expensive step, so the fitting
//! properties run few cases on small cohorts.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod cohorts;

use std::path::Path;
use std::sync::OnceLock;

use cohorts::{LowRank, names, same_assessments, table};
use nof1::index::HnswParams;
use nof1::rng::SplitMix64;
use nof1::score::KnnStatistic;
use nof1::table::{TableOptions, read_table_str};
use nof1::{IndexChoice, Model, Params, Role, Table, Verdict};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;

/// A proptest configuration with `cases` cases and a fixed runner seed
/// unless `PROPTEST_RNG_SEED` is set.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::with_cases(cases);
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        c.rng_seed = RngSeed::Fixed(0x6e6f_6631);
    }
    c
}

/// A reference cohort and a generator of patients exchangeable with it.
struct Cohort {
    pop: LowRank,
    rng: SplitMix64,
    reference: Table,
}

fn cohort(seed: u64, n: usize, p: usize, rank: usize) -> Cohort {
    let pop = LowRank::new(p, rank.clamp(1, p), 0.5, seed);
    let mut rng = SplitMix64::new(seed);
    let reference = table("r", p, pop.sample(&mut rng, n, 1.0));
    Cohort {
        pop,
        rng,
        reference,
    }
}

impl Cohort {
    /// Patients: `n_in` exchangeable ones, then `n_out` drawn with `spread`.
    fn patients(&mut self, n_in: usize, n_out: usize, spread: f64) -> Table {
        let mut v = self.pop.sample(&mut self.rng, n_in, 1.0);
        v.extend(self.pop.sample(&mut self.rng, n_out, spread));
        table("p", self.pop.p, v)
    }
}

/// Sets each value to NaN with probability `rate`.
fn knock_out(values: &mut [f64], rate: f64, rng: &mut SplitMix64) {
    for v in values.iter_mut() {
        if rng.next_f64() < rate {
            *v = f64::NAN;
        }
    }
}

proptest! {
    #![proptest_config(config(24))]

    /// `p_value` is the conformal p-value of the patient's `novelty` against
    /// the calibration members' novelties, `p_novelty` and `p_residual` those
    /// of the kNN statistic and the residual against their own calibration
    /// scores; all are in (0, 1]. The verdict follows p_value, alpha and
    /// warn_alpha. `support` is the number of reference members within
    /// `support_radius` (brute force), and docs/method.md §8 holds: kNN
    /// statistic > radius ⟹ invisible and support < k; with the k-th
    /// distance statistic, support < k ⟺ kNN statistic > radius.
    #[test]
    fn p_values_are_conformal_and_verdicts_follow_them(
        seed in any::<u64>(),
        n in 40usize..160,
        p in 2usize..10,
        rank in 1usize..4,
        k in 3usize..12,
        alpha in 0.01f64..0.2,
        warn_extra in 0.0f64..0.4,
        min_coverage in 0.2f64..0.9,
        kth in any::<bool>(),
    ) {
        let warn_alpha = (alpha + warn_extra).min(0.95);
        let statistic = if kth { KnnStatistic::KthDistance } else { KnnStatistic::MeanDistance };
        let mut c = cohort(seed, n, p, rank);
        let params = Params::default()
            .k(k)
            .alpha(alpha)
            .warn_alpha(warn_alpha)
            .min_coverage(min_coverage)
            .knn_statistic(statistic)
            .index(IndexChoice::Exact);
        let model = params.fit(&c.reference).expect("fit");
        let mut patients = c.patients(30, 15, 4.0);
        let mut rng = SplitMix64::new(seed ^ 1);
        let p_all = patients.n_features();
        knock_out(&mut patients.values_mut()[35 * p_all..], 0.5, &mut rng);
        let out = model.assess(&patients).expect("assess");
        prop_assert_eq!(out.len(), patients.n_rows());
        let m = model.data().calibration.pooled.n_members;
        let (n_ref, dims) = (model.reference().len(), knn_dims(&model));
        let emb = &model.reference().embeddings;
        let c_all = emb.len() / n_ref;
        for (i, a) in out.iter().enumerate() {
            let observed = patients.row(i).iter().filter(|v| !v.is_nan()).count();
            prop_assert_eq!(a.coverage, observed as f64 / p as f64);
            if observed == 0 || a.coverage < min_coverage {
                prop_assert_eq!(a.verdict, Verdict::InsufficientData);
                prop_assert!(a.p_value.is_nan() && a.p_novelty.is_nan() && a.p_residual.is_nan());
                continue;
            }
            for (name, v) in [("p_value", a.p_value), ("p_novelty", a.p_novelty), ("p_residual", a.p_residual)] {
                prop_assert!(v > 0.0 && v <= 1.0, "{}: {} = {}", a.id, name, v);
            }
            if observed == p {
                // A count over the m calibration members (docs/method.md §6).
                for v in [a.p_value, a.p_novelty, a.p_residual] {
                    let x = v * (m + 1) as f64;
                    prop_assert!((x - x.round()).abs() < 1e-6, "{}: {} is not a count over {} members", &a.id, v, m);
                }
            }
            prop_assert!(a.verdict == Verdict::Supported || !a.reason.is_empty(), "{}: no reason", &a.id);
            let want = if a.p_value <= alpha {
                Verdict::Invisible
            } else if a.p_value <= warn_alpha {
                Verdict::LowSupport
            } else {
                Verdict::Supported
            };
            prop_assert_eq!(a.verdict, want, "{}: p_value {}", &a.id, a.p_value);
            prop_assert_eq!(a.neighbours.len(), k);
            prop_assert!(a.neighbours.windows(2).all(|w| w[0].distance <= w[1].distance));
            let distances: Vec<f64> = a.neighbours.iter().map(|nb| nb.distance as f64).collect();
            let expected_stat = if kth {
                distances[k - 1]
            } else {
                distances.iter().sum::<f64>() / k as f64
            };
            prop_assert!((a.knn_distance - expected_stat).abs() <= 1e-9 * (1.0 + expected_stat));
            prop_assert!(a.residual >= 0.0 && a.novelty >= 0.0);
            // support = members within the radius, by brute force in the kNN space.
            let r = a.support_radius as f32;
            let q = &a.embedding[..dims];
            let brute = (0..n_ref)
                .filter(|&m| {
                    let row = &emb[m * c_all..m * c_all + dims];
                    let d_sq: f32 = row.iter().zip(q).map(|(x, y)| (x - y) * (x - y)).sum();
                    d_sq <= r * r
                })
                .count();
            // Counted up to SUPPORT_CAP.
            let cap = nof1::index::exact::SUPPORT_CAP as usize;
            prop_assert_eq!(a.support as usize, brute.min(cap), "{}: radius {}", &a.id, r);
            let beyond = a.knn_distance > a.support_radius;
            if beyond {
                prop_assert!((a.support as usize) < k, "{}: support {} beyond the radius", &a.id, a.support);
            }
            if kth {
                prop_assert_eq!((a.support as usize) < k, beyond, "{}: support {}, statistic {}, radius {}", &a.id, a.support, a.knn_distance, a.support_radius);
            }
        }
    }
}

/// Number of leading embedding coordinates the kNN search uses.
fn knn_dims(model: &Model) -> usize {
    model
        .data()
        .components
        .knn_components
        .clamp(1, model.n_components())
}

/// Assessments of the same patients by models fitted on the reference in two
/// row orders, and the number of components each model kept.
type RowOrderRuns = (Vec<nof1::Assessment>, Vec<nof1::Assessment>, usize, usize);

fn row_order_runs(seed: u64, n: usize, p: usize) -> RowOrderRuns {
    let mut c = cohort(seed, n, p, 2);
    let patients = c.patients(80, 20, 2.5);
    let mut perm: Vec<usize> = (0..n).collect();
    SplitMix64::new(seed ^ 2).shuffle(&mut perm);
    let shuffled = c.reference.select_rows(&perm);
    let a = Params::default().fit(&c.reference).expect("fit");
    let b = Params::default().fit(&shuffled).expect("fit");
    (
        a.assess(&patients).expect("assess"),
        b.assess(&patients).expect("assess"),
        a.n_components(),
        b.n_components(),
    )
}

proptest! {
    #![proptest_config(config(8))]

    /// Reference row order. Design issue: cross-fitting folds are assigned by
    /// row *position* (a seeded shuffle of `0..n`), and so are the column
    /// permutations of parallel analysis. A shuffled reference therefore gets
    /// other folds, other calibration scores and p-values that move by up to
    /// ~0.1 — the effect of changing the seed — and, in 0.5–2% of cohorts, a
    /// different number of components. Measured over 200 cohorts: verdict
    /// agreement 91–100% (mean 98%) with the same components, 75–88% when the
    /// component count changes. Until both are keyed by something row-order
    /// free (e.g. member ids), this checks that the scores of a patient do
    /// not depend on row order (up to floating-point summation order) and
    /// that verdict agreement stays high; `reference_row_order_gives_identical_results`
    /// is the strict property.
    #[test]
    fn reference_row_order_changes_scores_not_at_all_and_verdicts_little(
        seed in any::<u64>(),
        n in 80usize..200,
        p in 3usize..9,
    ) {
        let (a, b, ca, cb) = row_order_runs(seed, n, p);
        let close = |x: f64, y: f64| (x - y).abs() <= 1e-5 * (1.0 + x.abs().max(y.abs()));
        let mut agree = 0usize;
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(&x.id, &y.id);
            agree += usize::from(x.verdict == y.verdict);
            if ca != cb {
                continue;
            }
            prop_assert!(close(x.knn_distance, y.knn_distance), "{}: {} vs {}", x.id, x.knn_distance, y.knn_distance);
            prop_assert!(close(x.residual, y.residual), "{}: {} vs {}", x.id, x.residual, y.residual);
            for (u, v) in x.neighbours.iter().zip(&y.neighbours) {
                prop_assert!(close(u.distance as f64, v.distance as f64));
            }
        }
        let agreement = agree as f64 / a.len() as f64;
        let floor = if ca == cb { 0.85 } else { 0.7 };
        prop_assert!(
            agreement >= floor,
            "verdict agreement {agreement:.3} after shuffling the reference rows (components {ca} vs {cb})"
        );
    }
}

/// The strict row-order property: a shuffled reference gives the same
/// p-values and verdicts. Fails today because cross-fitting folds are
/// assigned by row position (see the test above).
#[test]
fn reference_row_order_gives_identical_results() {
    for seed in 0..4 {
        let (a, b, ca, cb) = row_order_runs(seed, 150, 8);
        assert_eq!(ca, cb, "seed {seed}: components");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.verdict, y.verdict, "seed {seed}, {}", x.id);
            assert!(
                (x.p_value - y.p_value).abs() <= 1e-9,
                "seed {seed}, {}: {} vs {}",
                x.id,
                x.p_value,
                y.p_value
            );
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Patients are matched by feature name: permuting the patient columns
    /// (and adding a column the model does not know) gives bit-identical
    /// assessments.
    #[test]
    fn patient_column_order_does_not_change_results(
        seed in any::<u64>(),
        n in 40usize..120,
        p in 2usize..10,
        missing in 0.0f64..0.4,
    ) {
        let mut c = cohort(seed, n, p, 2);
        let model = Params::default().k(5).fit(&c.reference).expect("fit");
        let mut patients = c.patients(25, 10, 3.0);
        let mut rng = SplitMix64::new(seed ^ 3);
        knock_out(patients.values_mut(), missing, &mut rng);
        // Add an unknown column, then permute every column by name.
        let rows = patients.n_rows();
        let mut wide_values = Vec::with_capacity(rows * (p + 1));
        for i in 0..rows {
            wide_values.extend_from_slice(patients.row(i));
            wide_values.push(rng.normal() * 1e6);
        }
        let mut wide_names = names(p);
        wide_names.push("unknown".into());
        let wide = Table::from_rows(patients.ids().to_vec(), wide_names.clone(), wide_values).expect("table");
        let mut order = wide_names.clone();
        rng.shuffle(&mut order);
        let permuted = wide.select_features(&order);
        prop_assert_eq!(permuted.feature_names(), &order[..]);
        let a = model.assess(&patients).expect("assess");
        let b = model.assess(&permuted).expect("assess");
        if let Err(e) = same_assessments(&a, &b) {
            return Err(TestCaseError::fail(format!("column order {order:?}: {e}")));
        }
    }

    /// Multiplying a feature by a power of two (reference and patients alike)
    /// is exact in floating point and standardisation undoes it exactly: the
    /// assessments are bit-identical.
    #[test]
    fn power_of_two_rescaling_gives_identical_assessments(
        seed in any::<u64>(),
        n in 40usize..120,
        p in 2usize..8,
        exponents in proptest::collection::vec(-20i32..20, 8),
    ) {
        let mut c = cohort(seed, n, p, 2);
        let patients = c.patients(25, 10, 3.0);
        let factors: Vec<f64> = (0..p).map(|j| 2f64.powi(exponents[j])).collect();
        let rescale = |t: &Table| -> Table {
            let mut t = t.clone();
            for (i, v) in t.values_mut().iter_mut().enumerate() {
                *v *= factors[i % p];
            }
            t
        };
        let params = Params::default().k(5);
        // The value channel's reason quotes raw values, which the rescaling
        // changes by design: compare it up to the feature named.
        let unit_free = |mut out: Vec<nof1::Assessment>| {
            for x in &mut out {
                if let Some(rest) = x.reason.strip_prefix("value: ") {
                    x.reason = format!("value: {}", rest.split('=').next().unwrap_or(""));
                }
            }
            out
        };
        let a = unit_free(params.fit(&c.reference).expect("fit").assess(&patients).expect("assess"));
        let b = unit_free(params.fit(&rescale(&c.reference)).expect("fit").assess(&rescale(&patients)).expect("assess"));
        if let Err(e) = same_assessments(&a, &b) {
            return Err(TestCaseError::fail(format!("factors {factors:?}: {e}")));
        }
    }

    /// Any positive rescaling of the features (reference and patients alike)
    /// leaves the verdicts unchanged, and the scores equal up to rounding.
    #[test]
    fn positive_rescaling_does_not_change_verdicts(
        seed in any::<u64>(),
        n in 40usize..120,
        p in 2usize..8,
        log_factors in proptest::collection::vec(-6.0f64..6.0, 8),
    ) {
        let mut c = cohort(seed, n, p, 2);
        let patients = c.patients(25, 10, 3.0);
        let factors: Vec<f64> = (0..p).map(|j| log_factors[j].exp()).collect();
        let rescale = |t: &Table| -> Table {
            let mut t = t.clone();
            for (i, v) in t.values_mut().iter_mut().enumerate() {
                *v *= factors[i % p];
            }
            t
        };
        let params = Params::default().k(5);
        let ma = params.fit(&c.reference).expect("fit");
        let mb = params.fit(&rescale(&c.reference)).expect("fit");
        prop_assert_eq!(ma.n_components(), mb.n_components());
        let a = ma.assess(&patients).expect("assess");
        let b = mb.assess(&rescale(&patients)).expect("assess");
        for (x, y) in a.iter().zip(&b) {
            prop_assert_eq!(x.verdict, y.verdict, "{}: p {} vs {} (factors {:?})", &x.id, x.p_value, y.p_value, &factors);
            prop_assert!((x.novelty - y.novelty).abs() <= 1e-6 * (1.0 + x.novelty), "{}: novelty {} vs {}", x.id, x.novelty, y.novelty);
        }
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Moving a patient away from the reference centroid along a ray never
    /// lowers its novelty once it is outside the reference *along that ray*.
    ///
    /// Let `c` be the reference mean (the standardiser's centre) and
    /// `x(t) = c + t·(x − c)`. Then `z(t) = t·z(1)`, the embedding is
    /// `y(t) = t·y(1)` and the residual is `t²·residual(1)`. The distance
    /// `|t·y − r|` to a member `r` is non-decreasing in `t` for
    /// `t ≥ ⟨y, r⟩/|y|²`, so the k-th (or mean) kNN distance is non-decreasing
    /// for `t ≥ t0 = max(1, max_r ⟨y, r⟩/|y|²)` (in the coordinates the kNN
    /// search uses); both channels are, hence so is `novelty`, which is
    /// non-decreasing in each channel (docs/method.md §5): for
    /// `t2 > t1 ≥ t0`, `novelty(t2) ≥ novelty(t1)` up to f32 rounding.
    /// (Being outside the reference's bounding box is not enough: a member
    /// further out along the ray can still get closer.)
    #[test]
    fn moving_away_along_a_ray_never_lowers_novelty(
        seed in any::<u64>(),
        n in 40usize..150,
        p in 2usize..8,
        off_manifold in any::<bool>(),
        steps in proptest::collection::vec(0.01f64..1.0, 10),
    ) {
        let mut c = cohort(seed, n, p, 2);
        let model = Params::default().k(5).fit(&c.reference).expect("fit");
        prop_assert_eq!(model.features(), &names(p)[..]);
        let centre = model.data().projector.standardiser.mean().to_vec();
        let scale = model.data().projector.standardiser.scale().to_vec();
        let x1: Vec<f64> = if off_manifold {
            let mut rng = SplitMix64::new(seed ^ 4);
            (0..p).map(|j| centre[j] + 2.0 * scale[j] * rng.normal()).collect()
        } else {
            c.pop.sample(&mut c.rng, 1, 1.0)
        };
        let at = |t: f64| -> nof1::Assessment {
            let row: Vec<f64> = (0..p).map(|j| centre[j] + t * (x1[j] - centre[j])).collect();
            let one = Table::from_rows(vec![format!("t={t}")], names(p), row).expect("table");
            model.assess(&one).expect("assess").remove(0)
        };
        // The kNN search uses the leading `dims` coordinates of the embedding.
        let dims = knn_dims(&model);
        let y1: Vec<f64> = at(1.0).embedding[..dims].iter().map(|v| *v as f64).collect();
        let y_sq: f64 = y1.iter().map(|v| v * v).sum();
        prop_assume!(y_sq > 1e-6);
        let emb = &model.reference().embeddings;
        let n_ref = model.reference().len();
        let stride = emb.len() / n_ref;
        let t_emb = (0..n_ref)
            .map(|i| (0..dims).map(|d| y1[d] * emb[i * stride + d] as f64).sum::<f64>() / y_sq)
            .fold(f64::NEG_INFINITY, f64::max);
        let t0 = t_emb.max(1.0);
        // Standardised values are clamped at ±1e6 (Z_CLAMP), which bends the
        // ray; stay well inside.
        let z_max = (0..p)
            .map(|j| ((x1[j] - centre[j]) / scale[j]).abs())
            .fold(0.0, f64::max);
        let t_max = 1e5 / z_max.max(1e-12);
        prop_assume!(t0 * 4.0 < t_max);
        let mut t = t0;
        let mut last = at(t);
        for step in steps {
            if t * (1.0 + 3.0 * step) > t_max {
                break;
            }
            t *= 1.0 + 3.0 * step;
            let next = at(t);
            prop_assert!(
                next.novelty >= last.novelty * (1.0 - 1e-5) - 1e-9,
                "novelty fell from {} to {} between t = {} and t = {t} (t0 = {t0})",
                last.novelty, next.novelty, t / (1.0 + 3.0 * step)
            );
            prop_assert!(next.residual >= last.residual * (1.0 - 1e-9));
            prop_assert!(next.p_value <= last.p_value, "p_value rose from {} to {}", last.p_value, next.p_value);
            last = next;
        }
    }
}

/// Without the `hnsw` feature no graph can be built: the HNSW model of the
/// I/O properties is then the one stored in `fixtures/versions/hnsw-v5.nof1`
/// (loaded without hnsw_rs), saved in today's format, with the patients of
/// `fixtures/small/patients.csv`.
#[cfg(not(feature = "hnsw"))]
fn stored_hnsw_fixture() -> (Model, Vec<u8>, Table) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let model = Model::load(&fixtures.join("versions/hnsw-v5.nof1")).expect("load");
    assert_eq!(model.index_kind(), nof1::index::IndexKind::Hnsw);
    let bytes = model.to_bytes().expect("encode");
    let patients = nof1::table::read_table(
        &fixtures.join("small/patients.csv"),
        &TableOptions::default(),
        Role::Patients,
    )
    .expect("patients");
    (model, bytes, patients)
}

/// A small model and some patients for the I/O properties, fitted once
/// (with an HNSW graph when `hnsw`).
fn io_fixture(hnsw: bool) -> &'static (Model, Vec<u8>, Table) {
    static EXACT: OnceLock<(Model, Vec<u8>, Table)> = OnceLock::new();
    static HNSW: OnceLock<(Model, Vec<u8>, Table)> = OnceLock::new();
    let cell = if hnsw { &HNSW } else { &EXACT };
    cell.get_or_init(|| {
        #[cfg(not(feature = "hnsw"))]
        if hnsw {
            return stored_hnsw_fixture();
        }
        let mut c = cohort(11, 40, 4, 2);
        let index = if hnsw {
            IndexChoice::Hnsw
        } else {
            IndexChoice::Exact
        };
        let model = Params::default()
            .k(5)
            .index(index)
            .fit(&c.reference)
            .expect("fit");
        let bytes = model.to_bytes().expect("encode");
        let patients = c.patients(5, 3, 4.0);
        (model, bytes, patients)
    })
}

proptest! {
    #![proptest_config(config(8))]

    /// save → load → assess is bit-identical, and the bytes round-trip.
    #[test]
    fn save_load_assess_is_bit_identical(
        seed in any::<u64>(),
        n in 40usize..150,
        p in 2usize..8,
        hnsw in any::<bool>(),
        with_groups in any::<bool>(),
    ) {
        // Building a graph needs the `hnsw` feature (tests/hnsw_feature.rs
        // covers loading one without it).
        let hnsw = hnsw && cfg!(feature = "hnsw");
        let mut c = cohort(seed, n, p, 2);
        let mut reference = c.reference.clone();
        let mut patients = c.patients(30, 10, 3.0);
        let mut params = Params::default()
            .k(5)
            .index(if hnsw { IndexChoice::Hnsw } else { IndexChoice::Exact });
        if with_groups {
            let g = |i: usize| if i.is_multiple_of(3) { "B" } else { "A" }.to_string();
            reference = reference.with_groups((0..n).map(g).collect()).expect("groups");
            let labels = (0..patients.n_rows()).map(g).collect();
            patients = patients.with_groups(labels).expect("groups");
            params = params.calibrate_by_group(true);
        }
        let mut rng = SplitMix64::new(seed ^ 5);
        let p_all = patients.n_features();
        knock_out(&mut patients.values_mut()[30 * p_all..], 0.3, &mut rng);
        let model = params.fit(&reference).expect("fit");
        let bytes = model.to_bytes().expect("encode");
        let loaded = Model::from_bytes(&bytes, Path::new("mem.nof1")).expect("decode");
        prop_assert_eq!(loaded.data(), model.data());
        prop_assert!(loaded.to_bytes().expect("encode") == bytes, "bytes differ after a round trip");
        let a = model.assess(&patients).expect("assess");
        let b = loaded.assess(&patients).expect("assess");
        if let Err(e) = same_assessments(&a, &b) {
            return Err(TestCaseError::fail(e));
        }
    }

    /// HNSW never changes a verdict: the same reference fitted with the graph
    /// and with exact search gives the same verdicts and p-values, for
    /// patients inside, at the edge of and far from the cohort. (Verdicts are
    /// guaranteed; p-values of graph-supported patients are the graph's and
    /// equal the exact ones only while the default graph finds the true
    /// neighbours, as it does on these sizes; the poor-graph test below
    /// checks what is guaranteed when it does not.)
    #[test]
    #[cfg(feature = "hnsw")]
    fn hnsw_verdicts_equal_exact_verdicts(
        seed in any::<u64>(),
        n in 100usize..400,
        p in 2usize..9,
        rank in 1usize..4,
        edge_spread in 1.5f64..3.0,
    ) {
        let (exact, graph, patients) = hnsw_and_exact(seed, n, p, rank, edge_spread, HnswParams::default());
        for (x, y) in exact.iter().zip(&graph) {
            prop_assert_eq!(&x.id, &y.id);
            prop_assert_eq!(x.verdict, y.verdict, "{}: p {} (exact) vs {} (hnsw)", &x.id, x.p_value, y.p_value);
            prop_assert_eq!(x.p_value.to_bits(), y.p_value.to_bits(), "{}: p {} vs {}", &x.id, x.p_value, y.p_value);
            prop_assert_eq!(x.p_novelty.to_bits(), y.p_novelty.to_bits());
            prop_assert_eq!(x.p_residual.to_bits(), y.p_residual.to_bits());
        }
        prop_assert_eq!(exact.len(), patients);
    }

    /// The same with a deliberately poor graph (2 links per node, tiny
    /// candidate lists), so that the graph misses neighbours and the exact
    /// re-check is what keeps the verdicts: verdicts equal; p-values equal
    /// for every patient that is not supported (re-checked exactly); for
    /// supported ones the graph's p-value can only be lower (approximate
    /// neighbours are never closer), still above `warn_alpha`.
    #[test]
    #[cfg(feature = "hnsw")]
    fn hnsw_verdicts_equal_exact_verdicts_with_a_poor_graph(
        seed in any::<u64>(),
        n in 100usize..400,
        p in 2usize..9,
        rank in 1usize..4,
        edge_spread in 1.5f64..3.0,
    ) {
        let poor = HnswParams { max_connections: 2, ef_construction: 2, ef_search: 1, max_layers: 2 };
        let (exact, graph, _) = hnsw_and_exact(seed, n, p, rank, edge_spread, poor);
        for (x, y) in exact.iter().zip(&graph) {
            prop_assert_eq!(x.verdict, y.verdict, "{}: p {} (exact) vs {} (hnsw)", &x.id, x.p_value, y.p_value);
            if x.verdict == Verdict::Supported {
                prop_assert!(y.p_value <= x.p_value, "{}: p {} (exact) vs {} (hnsw)", &x.id, x.p_value, y.p_value);
            } else {
                prop_assert_eq!(x.p_value.to_bits(), y.p_value.to_bits(), "{}: p {} vs {}", &x.id, x.p_value, y.p_value);
            }
        }
    }
}

/// Assessments by an exact and an HNSW model of the same reference, of
/// patients inside (60), at the edge of (20) and far from (20) the cohort.
#[cfg(feature = "hnsw")]
fn hnsw_and_exact(
    seed: u64,
    n: usize,
    p: usize,
    rank: usize,
    edge_spread: f64,
    hnsw: HnswParams,
) -> (Vec<nof1::Assessment>, Vec<nof1::Assessment>, usize) {
    let mut c = cohort(seed, n, p, rank);
    let mut patients = c.patients(60, 20, edge_spread);
    let mut far = c.patients(0, 20, 8.0);
    for id in far.ids_mut() {
        *id = format!("far-{id}");
    }
    patients.append(far).expect("same columns");
    let exact = Params::default()
        .index(IndexChoice::Exact)
        .fit(&c.reference)
        .expect("fit");
    let graph = Params::default()
        .index(IndexChoice::Hnsw)
        .hnsw(hnsw)
        .fit(&c.reference)
        .expect("fit");
    assert_eq!(graph.index_kind(), nof1::index::IndexKind::Hnsw);
    (
        exact.assess(&patients).expect("assess"),
        graph.assess(&patients).expect("assess"),
        patients.n_rows(),
    )
}

/// `support` is "reference members within the calibrated radius" whatever
/// the index. With HNSW, a patient the graph calls supported gets the count
/// among its k graph neighbours only (capped at k), while exact search counts
/// every member within the radius.
#[test]
#[cfg(feature = "hnsw")]
#[ignore = "documented limitation (docs/method.md): with an HNSW index, support of graph-supported patients is counted among the graph neighbours only (a lower bound, at least k)"]
fn hnsw_support_equals_exact_support() {
    let mut c = cohort(3, 300, 6, 2);
    let patients = c.patients(100, 0, 1.0);
    let exact = Params::default()
        .index(IndexChoice::Exact)
        .fit(&c.reference)
        .expect("fit");
    let graph = Params::default()
        .index(IndexChoice::Hnsw)
        .fit(&c.reference)
        .expect("fit");
    let a = exact.assess(&patients).expect("assess");
    let b = graph.assess(&patients).expect("assess");
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(
            x.support, y.support,
            "{} ({}): exact support {} vs hnsw {}",
            x.id, x.verdict, x.support, y.support
        );
    }
}

fn any_options() -> impl Strategy<Value = (TableOptions, Role)> {
    (
        prop_oneof![
            Just(None),
            Just(Some(b',')),
            Just(Some(b'\t')),
            Just(Some(b';'))
        ],
        prop_oneof![
            Just(None),
            Just(Some("id".to_string())),
            Just(Some("a".to_string()))
        ],
        prop_oneof![Just(None), Just(Some("g".to_string()))],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(delimiter, id_col, group_col, strict, reference)| {
            let options = TableOptions {
                delimiter,
                id_col,
                group_col,
                exclude: Vec::new(),
                strict,
            };
            (
                options,
                if reference {
                    Role::Reference
                } else {
                    Role::Patients
                },
            )
        })
}

/// Checks a parsed table's shape invariants.
fn check_table(t: &Table) -> Result<(), TestCaseError> {
    let n = t.n_rows();
    prop_assert_eq!(t.values().len(), n * t.n_features());
    prop_assert_eq!(t.lines().len(), n);
    prop_assert_eq!(t.notes().len(), n);
    if let Some(g) = t.groups() {
        prop_assert_eq!(g.len(), n);
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(512))]

    /// The table reader returns Ok or Err on arbitrary bytes, never panics,
    /// and what it returns is well-formed.
    #[test]
    fn table_reader_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..400),
        (options, role) in any_options(),
    ) {
        let text = String::from_utf8_lossy(&bytes);
        if let Ok(t) = read_table_str(&text, Path::new("fuzz.csv"), &options, role) {
            check_table(&t)?;
        }
    }

    /// The same on CSV-like text (headers, quotes, missing tokens, odd numbers).
    #[test]
    fn table_reader_never_panics_on_csv_like_text(
        text in "(id,a,g,b\n|a\tid\tg\n)?([0-9a-gA-F.eE+\\-,\t;\"\n\r ]|NA|NaN|inf|-inf|1e999|0x1|\u{feff}|é){0,120}",
        (options, role) in any_options(),
    ) {
        if let Ok(t) = read_table_str(&text, Path::new("fuzz.csv"), &options, role) {
            check_table(&t)?;
        }
    }

    /// The model loader returns Ok or Err on arbitrary bytes, with or without
    /// a valid header in front, and never panics.
    #[test]
    fn model_loader_never_panics_on_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        with_header in any::<bool>(),
    ) {
        let input = if with_header { with_valid_header(&bytes) } else { bytes };
        let _ = Model::from_bytes(&input, Path::new("fuzz.nof1"));
    }
}

/// Wraps `payload` in a header with the right magic, version, length and
/// checksum, so that decoding reaches the payload.
fn with_valid_header(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + payload.len());
    out.extend_from_slice(nof1::model::format::MAGIC);
    out.extend_from_slice(&nof1::model::format::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(payload);
    let crc = container_crc(&out);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The checksum of a version-2 container: CRC-32 of the header's first 20
/// bytes followed by the payload.
fn container_crc(bytes: &[u8]) -> u32 {
    let mut covered = bytes[..20].to_vec();
    covered.extend_from_slice(&bytes[24..]);
    crc32fast_hash(&covered)
}

/// CRC-32 (IEEE, reflected, polynomial 0xEDB88320), bit by bit: the checksum
/// of the model container, written out so the tests need no extra crate.
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// `Model::save` then `Model::load` through a file gives the same bytes and
/// bit-identical assessments; saving over an existing model replaces it.
#[test]
fn save_and_load_through_a_file_round_trip() {
    for hnsw in [false, true] {
        let (model, bytes, patients) = io_fixture(hnsw);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("model.nof1");
        std::fs::write(&path, b"an older file").expect("write");
        model.save(&path).expect("save");
        assert_eq!(&std::fs::read(&path).expect("read"), bytes);
        let loaded = Model::load(&path).expect("load");
        let a = model.assess(patients).expect("assess");
        let b = loaded.assess(patients).expect("assess");
        if let Err(e) = same_assessments(&a, &b) {
            panic!("hnsw = {hnsw}: {e}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(
            leftovers.len(),
            1,
            "temporary files left behind: {leftovers:?}"
        );
    }
}

#[test]
fn crc_matches_the_container() {
    for hnsw in [false, true] {
        let (_, bytes, _) = io_fixture(hnsw);
        let stored = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        assert_eq!(container_crc(bytes), stored);
        // The helper above re-creates exactly the header of a valid model.
        assert_eq!(&with_valid_header(&bytes[24..]), bytes);
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// Any single-byte change of a valid model is detected (header fields are
    /// checked, CRC-32 catches every burst error up to 32 bits), and so is
    /// any truncation or extension.
    #[test]
    fn corrupt_or_truncated_models_are_rejected(
        pos in any::<prop::sample::Index>(),
        xor in 1u8..=255,
        cut in any::<prop::sample::Index>(),
        extra in proptest::collection::vec(any::<u8>(), 1..8),
        hnsw in any::<bool>(),
    ) {
        let (_, bytes, _) = io_fixture(hnsw);
        let path = Path::new("corrupt.nof1");
        let mut flipped = bytes.clone();
        let i = pos.index(bytes.len());
        flipped[i] ^= xor;
        prop_assert!(Model::from_bytes(&flipped, path).is_err(), "byte {i} ^ {xor:#04x} accepted");
        let cut = cut.index(bytes.len());
        prop_assert!(Model::from_bytes(&bytes[..cut], path).is_err(), "truncated to {cut} bytes accepted");
        let mut longer = bytes.clone();
        longer.extend_from_slice(&extra);
        prop_assert!(Model::from_bytes(&longer, path).is_err(), "{} trailing bytes accepted", extra.len());
    }

    /// A payload corrupted *behind a recomputed checksum* (what a buggy
    /// writer or a deliberate edit produces) is either rejected or loads into
    /// a model that assesses patients without panicking (exact-index model).
    #[test]
    fn rechecksummed_corrupt_payloads_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_edited_model(false, &edits)?;
    }
}

proptest! {
    #![proptest_config(config(256))]

    /// The same with an HNSW model, whose payload ends with the stored graph
    /// section (layers and neighbour lists, handed to hnsw_rs only once
    /// checked).
    #[test]
    fn rechecksummed_corrupt_hnsw_payloads_never_panic(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        check_edited_model(true, &edits)?;
    }
}

/// Applies `edits` to the payload of the fixture model, re-checksums it and
/// loads it; a model that loads must assess the fixture patients.
fn check_edited_model(
    hnsw: bool,
    edits: &[(prop::sample::Index, u8)],
) -> Result<(), TestCaseError> {
    let (_, bytes, patients) = io_fixture(hnsw);
    let mut payload = bytes[24..].to_vec();
    for (pos, value) in edits {
        let i = pos.index(payload.len());
        payload[i] = *value;
    }
    if let Ok(model) = Model::from_bytes(&with_valid_header(&payload), Path::new("edited.nof1")) {
        let out = model.assess(patients).expect("assess");
        prop_assert_eq!(out.len(), patients.n_rows());
    }
    Ok(())
}

/// Regression: the size checks of the loader multiply counts read from the
/// file (`n · c`, `p · c`). With `c' = c + 2^(64 − t)`, `t` the smaller
/// number of trailing zero bits of `n` and `p` (2 for the 40 × 4 fixture),
/// both products wrap to the stored lengths in release builds (and
/// overflow-panic in debug builds) and the model passes validation; it then
/// panics in `ExactIndex::new` ("points shape", 18e8bf8) or, when the kNN
/// search uses fewer coordinates, in `assess` ("capacity overflow", ea0eaf8).
#[test]
fn crafted_model_with_overflowing_sizes_is_rejected() {
    let (model, _, _) = io_fixture(false);
    let mut data = model.data().clone();
    let (n, p, c) = (
        data.reference.len(),
        data.features.len(),
        data.projector.n_components,
    );
    let t = n.trailing_zeros().min(p.trailing_zeros());
    assert!(t >= 1, "fixture shape {n} x {p}: needs even sizes");
    let crafted = c + (1usize << (64 - t));
    assert_eq!(n.wrapping_mul(crafted), n * c);
    assert_eq!(p.wrapping_mul(crafted), p * c);
    data.projector.n_components = crafted;
    data.components.n_components = crafted;
    let bytes = nof1::model::format::encode(&data).expect("encode");
    let loaded =
        std::panic::catch_unwind(|| Model::from_bytes(&bytes, Path::new("crafted.nof1")).is_err());
    assert!(
        matches!(loaded, Ok(true)),
        "a model with n_components = {crafted} was not rejected cleanly: {loaded:?}"
    );
}

/// Regression: `Params::check` validates only `hnsw.max_connections`. An
/// `ef_search` or `ef_construction` of 2⁴⁰ makes hnsw_rs allocate terabytes
/// (the process aborts, it cannot be caught), and `max_layers = 0` makes it
/// panic without unwinding. Such parameters reach the graph both through
/// `Params::hnsw` and through a CRC-valid model file (`validate` relies on
/// `check`).
#[test]
fn hnsw_params_out_of_range_are_rejected() {
    let base = HnswParams::default();
    let bad = [
        (
            "ef_search",
            HnswParams {
                ef_search: 1 << 40,
                ..base
            },
        ),
        (
            "ef_construction",
            HnswParams {
                ef_construction: 1 << 40,
                ..base
            },
        ),
        (
            "max_layers",
            HnswParams {
                max_layers: 0,
                ..base
            },
        ),
    ];
    for (name, hnsw) in bad {
        let params = Params::default().index(IndexChoice::Hnsw).hnsw(hnsw);
        assert!(
            params.check().is_err(),
            "{name}: {hnsw:?} accepted by Params::check"
        );
    }
}

proptest! {
    #![proptest_config(config(16))]

    /// Exactly one assessment per patient row, in row order, with the row's
    /// id and group (duplicate and empty ids included), coverage = observed
    /// fraction, `insufficient_data` exactly below the coverage floor, and
    /// verdict counts adding up.
    #[test]
    fn one_assessment_per_patient_row_in_order(
        seed in any::<u64>(),
        n in 30usize..100,
        p in 2usize..9,
        rows in 0usize..60,
        missing in 0.0f64..1.0,
        min_coverage in 0.0f64..1.0,
        drop_column in any::<bool>(),
    ) {
        let mut c = cohort(seed, n, p, 2);
        let model = Params::default().k(5).min_coverage(min_coverage).fit(&c.reference).expect("fit");
        let mut patients = c.patients(rows / 2, rows - rows / 2, 3.0);
        let mut rng = SplitMix64::new(seed ^ 6);
        knock_out(patients.values_mut(), missing, &mut rng);
        for i in 0..rows {
            match rng.below(4) {
                0 => patients.ids_mut()[i] = String::new(),
                1 if i > 0 => {
                    let previous = patients.ids()[i - 1].clone();
                    patients.ids_mut()[i] = previous;
                }
                _ => {}
            }
        }
        let groups: Vec<String> = (0..rows).map(|i| format!("g{}", i % 3)).collect();
        patients = patients.with_groups(groups.clone()).expect("groups");
        if drop_column && p > 2 {
            // A model feature absent from the patient file counts as missing.
            let keep: Vec<String> = names(p).into_iter().skip(1).collect();
            patients = patients.select_features(&keep);
        }
        let out = model.assess(&patients).expect("assess");
        prop_assert_eq!(out.len(), rows);
        let mut counts = [0usize; 4];
        for (i, a) in out.iter().enumerate() {
            prop_assert_eq!(&a.id, &patients.ids()[i]);
            prop_assert_eq!(a.group.as_deref(), Some(groups[i].as_str()));
            let observed = patients.row(i).iter().filter(|v| !v.is_nan()).count();
            prop_assert_eq!(a.coverage, observed as f64 / p as f64);
            let insufficient = observed == 0 || a.coverage < min_coverage;
            prop_assert_eq!(a.verdict == Verdict::InsufficientData, insufficient, "{}: coverage {}", &a.id, a.coverage);
            if insufficient {
                prop_assert!(a.p_value.is_nan() && a.novelty.is_nan());
            } else {
                prop_assert!(a.p_value > 0.0 && a.p_value <= 1.0);
            }
            let slot = Verdict::ALL.iter().position(|v| *v == a.verdict).expect("known verdict");
            counts[slot] += 1;
        }
        prop_assert_eq!(counts.iter().sum::<usize>(), rows);
    }
}

// ------------------------------------------- Gram path, HNSW at scale

proptest! {
    #![proptest_config(config(12))]

    /// For a table wider than tall (p > n), `fit_pca` goes through the n × n
    /// Gram matrix; the p × p covariance path must give the same non-zero
    /// eigenvalues and, for well-separated ones, the same sign-fixed
    /// loadings.
    #[test]
    fn gram_path_equals_covariance_path(seed in any::<u64>(), n in 6usize..20, extra in 1usize..30) {
        let p = n + extra;
        let mut rng = SplitMix64::new(seed);
        let values: Vec<f64> = (0..n * p).map(|_| rng.normal()).collect();
        let rows: Vec<usize> = (0..n).collect();
        let mean: Vec<f64> = (0..p)
            .map(|j| (0..n).map(|i| values[i * p + j]).sum::<f64>() / n as f64)
            .collect();
        let scale = vec![1.0; p];
        let keep = n - 1;
        let gram = nof1::project::fit_pca(&values, p, &rows, &mean, &scale, keep).expect("gram");
        let cov = nof1::project::covariance(&values, p, &rows, &mean, &scale);
        let full = nof1::project::eigen_desc(cov.as_ref(), keep).expect("covariance");
        prop_assert_eq!(gram.eigenvalues.len(), p);
        let top = full.eigenvalues[0];
        for k in 0..p {
            prop_assert!(
                (gram.eigenvalues[k] - full.eigenvalues[k]).abs() <= 1e-9 * top,
                "eigenvalue {}: gram {} vs covariance {}", k, gram.eigenvalues[k], full.eigenvalues[k]
            );
        }
        prop_assert_eq!(gram.n_loadings, keep);
        for k in 0..keep {
            let gap = |a: usize, b: usize| (full.eigenvalues[a] - full.eigenvalues[b]).abs() / top;
            let separated = full.eigenvalues[k] > 1e-6 * top
                && gap(k, k + 1) > 1e-3
                && (k == 0 || gap(k - 1, k) > 1e-3);
            if !separated {
                continue;
            }
            for j in 0..p {
                let (a, b) = (gram.loadings[j * keep + k], full.loadings[j * keep + k]);
                prop_assert!((a - b).abs() <= 1e-6, "component {} feature {}: {} vs {}", k, j, a, b);
            }
        }
    }
}

/// Above 2,000 members (where the HNSW graph has several layers and the
/// exact side a stored k-d tree), the graph still never changes a verdict
/// and gives the exact p-values, with the default graph and with a poor one.
#[test]
#[cfg(feature = "hnsw")]
fn hnsw_verdicts_equal_exact_verdicts_above_2000_members() {
    for (seed, n) in [(11u64, 2_500usize), (12, 4_000)] {
        let (exact, graph, patients) = hnsw_and_exact(seed, n, 6, 3, 2.0, HnswParams::default());
        assert_eq!(exact.len(), patients);
        for (x, y) in exact.iter().zip(&graph) {
            assert_eq!(
                x.verdict, y.verdict,
                "{}: p {} vs {}",
                x.id, x.p_value, y.p_value
            );
            assert_eq!(x.p_value.to_bits(), y.p_value.to_bits(), "{}", x.id);
        }
        let mut verdicts: Vec<Verdict> = exact.iter().map(|a| a.verdict).collect();
        verdicts.dedup();
        assert!(verdicts.len() > 1, "only {verdicts:?}");
        let poor = HnswParams {
            max_connections: 2,
            ef_construction: 2,
            ef_search: 1,
            max_layers: 2,
        };
        let (exact, graph, _) = hnsw_and_exact(seed, n, 6, 3, 2.0, poor);
        for (x, y) in exact.iter().zip(&graph) {
            assert_eq!(x.verdict, y.verdict, "{} (poor graph)", x.id);
        }
    }
}
