//! Never-seen and rare values (issue 12): the value channel is calibrated,
//! not a tripwire.
//!
//! * The private variant on the bundled 1000 Genomes panel: 400 Europeans
//!   with a column `rs_private` that is 0 for all of them; held-out European
//!   carriers of `rs_private = 1` are `invisible` with the feature named, the
//!   non-carriers stay within binomial bounds of alpha.
//! * Many rare columns (carrier frequencies 0.1–1%): exchangeable patients,
//!   a good share of whom carry a variant the reference never showed, are
//!   `invisible` at a rate within binomial bounds of alpha.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod cohorts;
use cohorts as common;

use std::path::Path;

use nof1::calibrate::Channel;
use nof1::rng::SplitMix64;
use nof1::table::{Role, TableOptions, read_table};
use nof1::{Params, Table, Verdict};

const ALPHA: f64 = 0.05;

/// The bundled panel's Europeans, in a seeded order, with `rs_private` appended.
fn europeans(seed: u64) -> (Vec<String>, Vec<String>, Vec<Vec<f64>>) {
    let opts = TableOptions {
        id_col: Some("sample".into()),
        group_col: Some("superpopulation".into()),
        exclude: vec!["population".into(), "sex".into()],
        ..TableOptions::default()
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/1000genomes-aisnp/seldin_128_dosage.csv");
    let panel = read_table(&path, &opts, Role::Reference).unwrap();
    let groups = panel.groups().unwrap().to_vec();
    let mut rows: Vec<usize> = (0..panel.n_rows())
        .filter(|&i| groups[i] == "EUR")
        .collect();
    SplitMix64::new(seed).shuffle(&mut rows);
    let mut names = panel.feature_names().to_vec();
    names.push("rs_private".into());
    let ids = rows.iter().map(|&i| panel.ids()[i].clone()).collect();
    let values = rows.iter().map(|&i| panel.row(i).to_vec()).collect();
    (ids, names, values)
}

fn build(ids: &[String], names: &[String], rows: &[Vec<f64>], private: f64) -> Table {
    let values = rows
        .iter()
        .flat_map(|r| r.iter().copied().chain([private]))
        .collect();
    Table::from_rows(ids.to_vec(), names.to_vec(), values).unwrap()
}

#[test]
fn private_variant_carriers_are_invisible_with_the_feature_named() {
    let (ids, names, rows) = europeans(12);
    assert_eq!(rows.len(), 503);
    let reference = build(&ids[..400], &names, &rows[..400], 0.0);
    let model = Params::default().alpha(ALPHA).fit(&reference).unwrap();
    // The constant column is kept in what the reference showed.
    let d = model.data();
    assert!(d.features.iter().any(|f| f == "rs_private"));
    assert!(!d.dropped_features.iter().any(|f| f == "rs_private"));
    let state = &d.calibration.folds[0].state;
    assert!(state.channels().contains(&Channel::Value));

    let carriers = build(&ids[400..452], &names, &rows[400..452], 1.0);
    let out = model.assess(&carriers).unwrap();
    let named = out
        .iter()
        .filter(|a| {
            a.verdict == Verdict::Invisible
                && a.reason == "value: rs_private=1 never seen in 400 reference members (all 0)"
        })
        .count();
    eprintln!(
        "private variant: {named} of {} carriers invisible with rs_private named; first reason {:?}",
        out.len(),
        out[0].reason
    );
    assert!(
        named as f64 >= 0.99 * out.len() as f64,
        "{named} of {} carriers invisible with the feature named; first reason {:?}",
        out.len(),
        out[0].reason
    );

    let others = build(&ids[452..], &names, &rows[452..], 0.0);
    let out = model.assess(&others).unwrap();
    let rate = common::rate(&out, Verdict::Invisible);
    let bound = common::conformal_bound(ALPHA, &[(out.len(), 400)]);
    eprintln!(
        "private variant: non-carriers invisible {rate:.3} of {} (bound {bound:.3})",
        out.len()
    );
    assert!(
        rate <= bound,
        "non-carriers invisible at {rate:.3} > bound {bound:.3}"
    );
    // A carrier seen once in the reference is rare, not unseen: no reason
    // names a never-seen value.
    let mut once = build(&ids[..400], &names, &rows[..400], 0.0);
    let p = once.n_features();
    once.values_mut()[p - 1] = 1.0;
    let model_once = Params::default().alpha(ALPHA).fit(&once).unwrap();
    let out = model_once.assess(&carriers).unwrap();
    assert!(out.iter().all(|a| !a.reason.contains("never seen")));

    // The model file keeps the channel: a saved and reloaded model gives
    // the same verdicts and reasons.
    let bytes = model.to_bytes().unwrap();
    let loaded = nof1::Model::from_bytes(&bytes, Path::new("m.nof1")).unwrap();
    let again = loaded.assess(&carriers).unwrap();
    let before = model.assess(&carriers).unwrap();
    for (a, b) in before.iter().zip(&again) {
        assert_eq!(a.verdict, b.verdict);
        assert_eq!(a.reason, b.reason);
        assert_eq!(a.p_value.to_bits(), b.p_value.to_bits());
    }
}

/// A reference of `n` members: 10 correlated common features plus
/// `n_rare` dosage columns with carrier frequencies in 0.1–1%.
fn rare_cohort(n: usize, n_rare: usize, seed: u64, row_seed: u64) -> Table {
    let mut structure = SplitMix64::new(seed);
    let freq: Vec<f64> = (0..n_rare)
        .map(|_| 0.001 + 0.009 * structure.next_f64())
        .collect();
    let load: Vec<f64> = (0..10).map(|_| structure.normal()).collect();
    let mut rng = SplitMix64::new(row_seed);
    let p = 10 + n_rare;
    let mut values = Vec::with_capacity(n * p);
    for _ in 0..n {
        let f = rng.normal();
        for l in &load {
            values.push(l * f + 0.5 * rng.normal());
        }
        for &q in &freq {
            values.push(if rng.next_f64() < q { 1.0 } else { 0.0 });
        }
    }
    let names = (0..10)
        .map(|j| format!("c{j}"))
        .chain((0..n_rare).map(|j| format!("rare{j}")))
        .collect();
    Table::from_rows(common::ids("x", n), names, values).unwrap()
}

#[test]
fn exchangeable_carriers_of_never_seen_rare_variants_stay_within_alpha() {
    let (n, n_rare, patients) = (400, 400, 600);
    let mut draws = Vec::new();
    let (mut invisible, mut total) = (0usize, 0usize);
    let (mut carriers, mut carriers_invisible) = (0usize, 0usize);
    for seed in 1..=3u64 {
        let reference = rare_cohort(n, n_rare, seed, 100 + seed);
        let model = Params::default().alpha(ALPHA).fit(&reference).unwrap();
        let batch = rare_cohort(patients, n_rare, seed, 200 + seed);
        let features = &model.data().features;
        let out = model.assess(&batch).unwrap();
        for (i, a) in out.iter().enumerate() {
            let row = batch.row(i);
            // A variant no reference member carries.
            let unseen = (10..row.len()).any(|j| {
                row[j] == 1.0 && {
                    let name = &batch.feature_names()[j];
                    let col = features.iter().position(|f| f == name).unwrap();
                    (0..n).all(|r| reference.row(r)[col] == 0.0)
                }
            });
            let inv = a.verdict == Verdict::Invisible;
            carriers += unseen as usize;
            carriers_invisible += (unseen && inv) as usize;
            invisible += inv as usize;
        }
        total += out.len();
        draws.push((out.len(), n));
    }
    let share = carriers as f64 / total as f64;
    let rate = invisible as f64 / total as f64;
    let bound = common::conformal_bound(ALPHA, &draws);
    eprintln!(
        "many rare columns: {carriers} of {total} patients carry a never-seen variant; invisible {rate:.3} overall, {:.3} of carriers (bound {bound:.3})",
        carriers_invisible as f64 / carriers.max(1) as f64
    );
    assert!(
        (0.08..0.5).contains(&share),
        "carriers of a never-seen variant: {share:.3} of patients"
    );
    assert!(
        rate <= bound,
        "false-invisible {rate:.3} > bound {bound:.3}"
    );
    // Not a tripwire: carriers are not flagged wholesale either.
    let carrier_rate = carriers_invisible as f64 / carriers as f64;
    assert!(
        carrier_rate <= 0.5,
        "carriers of never-seen variants invisible at {carrier_rate:.3}"
    );
}

#[test]
fn a_panel_absent_from_the_reference_flags_its_carriers() {
    // Pharmacogene-style: 20 variant columns all 0 in the reference.
    let n = 300;
    let mut rng = SplitMix64::new(5);
    let mut values = Vec::new();
    for _ in 0..n {
        let f = rng.normal();
        values.extend((0..5).map(|j| f * j as f64 + rng.normal()));
        values.extend([0.0; 20]);
    }
    let reference = common::table("r", 25, values);
    let model = Params::default().fit(&reference).unwrap();
    let mut patient = vec![0.1, 0.2, 0.0, -0.3, 0.5];
    patient.extend([0.0; 20]);
    let typical = common::table("p", 25, patient.clone());
    patient[5 + 7] = 2.0;
    let carrier = common::table("p", 25, patient);
    let a = &model.assess(&typical).unwrap()[0];
    let b = &model.assess(&carrier).unwrap()[0];
    assert_ne!(a.verdict, Verdict::Invisible);
    assert_eq!(b.verdict, Verdict::Invisible);
    assert_eq!(
        b.reason,
        "value: f12=2 never seen in 300 reference members (all 0)"
    );
}
