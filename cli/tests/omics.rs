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
