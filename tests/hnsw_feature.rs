//! The library's `hnsw` cargo feature (on by default): only *building* an
//! HNSW graph needs it. These tests run with and without it
//! (`cargo test -p nof1 --no-default-features --test hnsw_feature`, in
//! `.ci/run`): a model file holding a graph loads and assesses either way;
//! without the feature, an explicit `hnsw` index is a typed error and `auto`
//! builds the exact index.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use std::path::{Path, PathBuf};

use nof1::index::IndexKind;
use nof1::model::format::decode_container;
use nof1::rng::SplitMix64;
use nof1::{ComponentRule, IndexChoice, Model, Params, Role, Table, TableOptions};

/// A file under `fixtures/`.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// `fixtures/versions/hnsw-v5.nof1` (an HNSW model with its stored graph,
/// written by an earlier build) loads, searches its graph and assesses
/// `fixtures/small/patients.csv` as that build did: verdicts and p-values of
/// `hnsw-v5.expected.csv`. Saved again, it keeps its graph section.
#[test]
fn a_stored_graph_loads_and_assesses() {
    let model = Model::load(&fixture("versions/hnsw-v5.nof1")).expect("load");
    assert_eq!(model.index_kind(), IndexKind::Hnsw);
    let patients = nof1::table::read_table(
        &fixture("small/patients.csv"),
        &TableOptions::default(),
        Role::Patients,
    )
    .expect("patients");
    let got = model.assess(&patients).expect("assess");

    let expected = std::fs::read_to_string(fixture("versions/hnsw-v5.expected.csv")).unwrap();
    let mut lines = expected.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (id, verdict, p) = (col("id"), col("verdict"), col("p_value"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), got.len());
    assert!(rows.len() >= 10, "a real comparison");
    for (row, a) in rows.iter().zip(&got) {
        assert_eq!(row[id], a.id);
        assert_eq!(row[verdict], a.verdict.to_string(), "{}", a.id);
        let want: f64 = row[p].parse().unwrap();
        assert!(
            (a.p_value - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{}: p {} vs stored {want}",
            a.id,
            a.p_value
        );
    }

    let bytes = model.to_bytes().expect("encode");
    let c = decode_container(&bytes, Path::new("again.nof1")).expect("decode");
    assert!(c.graph_len().is_some_and(|n| n > 0), "graph section kept");
    let again = Model::from_bytes(&bytes, Path::new("again.nof1")).expect("reload");
    let b = again.assess(&patients).expect("assess");
    for (x, y) in got.iter().zip(&b) {
        assert_eq!(x.verdict, y.verdict);
        assert_eq!(x.p_value.to_bits(), y.p_value.to_bits());
    }
}

/// A reference whose search embedding has more than
/// [`nof1::index::exact::KD_TREE_MAX_DIM`] components, so that `auto` with a
/// low threshold would choose a graph.
fn wide_reference() -> Table {
    let (n, p) = (120, 72);
    let mut rng = SplitMix64::new(3);
    let values = (0..n * p).map(|_| rng.normal()).collect();
    Table::from_rows(
        (0..n).map(|i| format!("r{i}")).collect(),
        (0..p).map(|j| format!("f{j}")).collect(),
        values,
    )
    .expect("table")
}

fn wide_params(index: IndexChoice) -> Params {
    Params::default()
        .k(5)
        .components(ComponentRule::Fixed(68))
        .max_components(68)
        .hnsw_threshold(10)
        .index(index)
}

/// `auto` never builds the `hnsw_rs` graph, with or without the feature: it
/// chooses by a measured search cost, under split conformal only, and this
/// small (cross-conformal) reference stays exact even above the threshold.
#[test]
fn auto_keeps_a_small_reference_exact() {
    let model = wide_params(IndexChoice::Auto)
        .fit(&wide_reference())
        .expect("fit");
    assert!(model.knn_components() > nof1::index::exact::KD_TREE_MAX_DIM);
    assert_eq!(model.index_kind(), IndexKind::Exact);
}

/// `auto` builds nof1's own graph (no feature needed) where a large
/// reference's exact search looks at many members (24 independent
/// dimensions), and keeps the exact index where the tree prunes well (3).
#[test]
fn auto_builds_the_own_graph_where_exact_search_costs_most() {
    let n = 60_000;
    for (p, want) in [(3usize, IndexKind::Exact), (24, IndexKind::Graph)] {
        let mut rng = SplitMix64::new(7);
        let values = (0..n * p).map(|_| rng.normal()).collect();
        let table = Table::from_rows(
            (0..n).map(|i| format!("r{i}")).collect(),
            (0..p).map(|j| format!("f{j}")).collect(),
            values,
        )
        .expect("table");
        let model = Params::default()
            .components(ComponentRule::Fixed(p))
            .hnsw_threshold(10_000)
            .fit(&table)
            .expect("fit");
        assert_eq!(model.index_kind(), want, "{p} dimensions");
    }
}

/// Without the feature, an explicit HNSW index, at fit or on a loaded model,
/// is a typed error naming the feature.
#[cfg(not(feature = "hnsw"))]
#[test]
fn explicit_hnsw_is_a_typed_error_without_the_feature() {
    let check = |e: nof1::Error| match e.kind() {
        nof1::ErrorKind::FeatureDisabled { feature, .. } => {
            assert_eq!(*feature, "hnsw");
            assert!(e.to_string().contains("cargo feature `hnsw`"), "{e}");
        }
        other => panic!("{other:?}"),
    };
    check(
        wide_params(IndexChoice::Hnsw)
            .fit(&wide_reference())
            .expect_err("fit"),
    );
    let exact = wide_params(IndexChoice::Exact)
        .fit(&wide_reference())
        .expect("fit");
    check(
        exact
            .with_index_kind(IndexKind::Hnsw, &nof1::model::NoProgress)
            .expect_err("graph"),
    );
    // The other way needs no graph.
    let model = Model::load(&fixture("versions/hnsw-v5.nof1")).expect("load");
    let exact = model
        .with_index_kind(IndexKind::Exact, &nof1::model::NoProgress)
        .expect("exact");
    assert_eq!(exact.index_kind(), IndexKind::Exact);
}
