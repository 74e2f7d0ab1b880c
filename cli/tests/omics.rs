//! Multi-omic layers (issue 12): block weighting and per-block residual
//! channels, on a reduced version of the `nof1 eval omics` cohort.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

use nof1::Params;
use nof1_cli::omics::{OmicsParams, evaluate, generate};

/// The `eval omics` cohort at a size a debug test run affords: 800 members
/// and narrower layers (the manifold is estimated from fewer members than
/// the 3,000 of `nof1 eval omics`, so the shift is 0.15 rather than 0.1).
fn small() -> OmicsParams {
    OmicsParams {
        n: 800,
        n_in: 150,
        n_out: 150,
        widths: [60, 500, 40, 40],
        shift: 0.15,
        ..OmicsParams::default()
    }
}

#[test]
fn blocks_find_the_patients_off_the_metabolite_manifold_and_name_the_block() {
    let cohort = generate(&small()).unwrap();
    let with = evaluate(&cohort, &Params::default(), true).unwrap();
    let without = evaluate(&cohort, &Params::default(), false).unwrap();
    eprintln!(
        "omics (reduced): with blocks AUROC {:.3}, recall {:.3}, false-invisible {:.3}, metabolome named {:.3} of {} flagged; without blocks AUROC {:.3}",
        with.auroc,
        with.recall,
        with.false_invisible,
        with.block_named,
        with.n_flagged,
        without.auroc
    );
    assert!(with.auroc >= 0.95, "AUROC with blocks {:.3}", with.auroc);
    assert!(with.n_flagged > 0);
    assert!(
        with.block_named >= 0.9,
        "metabolome named for {:.3} of {} flagged",
        with.block_named,
        with.n_flagged
    );
    assert!(
        without.auroc < with.auroc,
        "without blocks {:.3}, with {:.3}",
        without.auroc,
        with.auroc
    );
}

mod harness;

#[test]
fn fit_reads_blocks_and_assess_names_the_block() {
    let s = harness::Scratch::new();
    let files = nof1_cli::omics::write_omics(
        &OmicsParams {
            n: 120,
            n_in: 10,
            n_out: 10,
            widths: [10, 30, 8, 8],
            shift: 0.5,
            ..OmicsParams::default()
        },
        s.dir(),
    )
    .unwrap();
    s.run(&[
        "fit",
        "--reference",
        files.reference.to_str().unwrap(),
        "--blocks",
        files.blocks.to_str().unwrap(),
        "--out",
        "m.nof1",
    ])
    .ok();
    s.run(&[
        "assess",
        "--model",
        "m.nof1",
        "--input",
        files.patients.to_str().unwrap(),
        "--exclude",
        "truth",
        "--out",
        "out.csv",
    ])
    .ok();
    let out = harness::OutCsv::read(&s.path("out.csv"));
    let reasons = out.column("reason");
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("block:metabolome: residual p = ")),
        "{reasons:?}"
    );
    s.run(&[
        "assess",
        "--model",
        "m.nof1",
        "--input",
        files.patients.to_str().unwrap(),
        "--exclude",
        "truth",
        "--out",
        "out.jsonl",
    ])
    .ok();
    let jsonl = std::fs::read_to_string(s.path("out.jsonl")).unwrap();
    let first = jsonl.lines().next().unwrap();
    assert!(
        first.contains("\"channel\":\"block:metabolome\""),
        "{first}"
    );
}

#[test]
fn bad_blocks_files_name_the_file_and_line() {
    let s = harness::Scratch::new();
    let reference = harness::small_reference();
    let cases = [
        ("feature,block\nnope,x\n", "b.csv:2:nope: feature \"nope\""),
        (
            "feature,block\nf1,x\nf1,y\n",
            "b.csv:3:f1: feature \"f1\" is listed under two blocks",
        ),
        (
            "feature,block\nf1,x\nf1,x\n",
            "b.csv:3:f1: feature \"f1\" is listed again",
        ),
        (
            "feature,block\nf1,\n",
            "b.csv:2:f1: feature \"f1\" has an empty block name",
        ),
        (
            "feat,blk\nf1,x\n",
            "b.csv:1: expected the header feature,block",
        ),
    ];
    for (text, expected) in cases {
        let b = s.write("b.csv", text);
        let run = s.run(&[
            "fit",
            "--reference",
            reference.to_str().unwrap(),
            "--blocks",
            b.to_str().unwrap(),
            "--out",
            "m.nof1",
        ]);
        run.error(&[expected]);
    }
}
