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
    let files = fitted_with_blocks(
        &s,
        &OmicsParams {
            n: 120,
            n_in: 10,
            n_out: 10,
            widths: [10, 30, 8, 8],
            shift: 0.5,
            ..OmicsParams::default()
        },
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

/// A small omics cohort written to `s`, fitted with its blocks into `m.nof1`.
fn small_fitted(s: &harness::Scratch) -> nof1_cli::omics::OmicsFiles {
    fitted_with_blocks(
        s,
        &OmicsParams {
            n: 300,
            n_in: 60,
            n_out: 60,
            widths: [20, 80, 15, 12],
            shift: 0.5,
            ..OmicsParams::default()
        },
    )
}

/// The omics cohort of `params` written to `s`, fitted with its blocks into
/// `m.nof1`.
fn fitted_with_blocks(s: &harness::Scratch, params: &OmicsParams) -> nof1_cli::omics::OmicsFiles {
    let files = nof1_cli::omics::write_omics(params, s.dir()).unwrap();
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
    files
}

#[test]
fn inspect_lists_the_blocks_and_the_channels() {
    let s = harness::Scratch::new();
    small_fitted(&s);
    let run = s.run(&["inspect", "--model", "m.nof1"]);
    run.ok();
    let text = run.stdout_text();
    eprintln!("{text}");
    for (name, width) in [
        ("genome", 20),
        ("transcriptome", 80),
        ("proteome", 15),
        ("metabolome", 12),
    ] {
        let prefix = format!("block            {name}: {width} features ({width} projected); ");
        assert!(text.contains(&prefix), "{prefix:?} in {text}");
    }
    assert!(text.contains("blocks           4 (MFA"), "{text}");
    let channels = text
        .lines()
        .find_map(|l| l.strip_prefix("channels         "))
        .unwrap_or_else(|| panic!("no channels line in {text}"));
    let labels: Vec<&str> = channels
        .trim_end_matches(" (prior weights)")
        .split(", ")
        .map(|c| c.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        labels,
        [
            "knn",
            "residual",
            "value",
            "block:genome",
            "block:transcriptome",
            "block:proteome",
            "block:metabolome"
        ]
    );
    let run = s.run(&["inspect", "--model", "m.nof1", "--json"]);
    run.ok();
    let json: serde_json::Value = serde_json::from_str(&run.stdout_text()).unwrap();
    let blocks = json["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 4);
    assert_eq!(blocks[3]["block"], "metabolome");
    assert_eq!(blocks[3]["features"], 12);
    let (eig, w) = (
        blocks[3]["first_eigenvalue"].as_f64().unwrap(),
        blocks[3]["mfa_weight"].as_f64().unwrap(),
    );
    assert!(
        eig >= 1.0 && (w - 1.0 / eig.sqrt()).abs() < 1e-12,
        "{eig} {w}"
    );
    let weights: f64 = json["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["weight"].as_f64().unwrap())
        .sum();
    assert!((weights - 1.0).abs() < 1e-9, "{weights}");
    assert_eq!(json["value_support"]["features"], 127);
    assert_eq!(json["projected_features"], 127);
}

#[test]
fn audit_report_and_check_show_the_block_that_drives_the_verdicts() {
    let s = harness::Scratch::new();
    let files = small_fitted(&s);
    let patients = files.patients.to_str().unwrap();
    let run = s.run(&[
        "audit",
        "--model",
        "m.nof1",
        "--input",
        patients,
        "--group-col",
        "truth",
        "--out-dir",
        "a",
    ]);
    run.ok();
    eprintln!("{}", run.stderr);
    assert!(
        run.stderr.contains("channel block:metabolome: drove "),
        "{}",
        run.stderr
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("a/audit.json")).unwrap()).unwrap();
    let driving = |group: &serde_json::Value, channel: &str| -> f64 {
        group["channels"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["channel"] == channel)
            .unwrap_or_else(|| panic!("no channel {channel} in {group}"))["driving"]["rate"]
            .as_f64()
            .unwrap()
    };
    let groups = json["groups"].as_array().unwrap();
    let (inside, outside) = (&groups[0], &groups[1]);
    assert_eq!(
        (inside["group"].as_str(), outside["group"].as_str()),
        (Some("in"), Some("out"))
    );
    let (d_in, d_out) = (
        driving(inside, "block:metabolome"),
        driving(outside, "block:metabolome"),
    );
    eprintln!("block:metabolome drove in: {d_in:.3}, out: {d_out:.3}");
    assert!(d_out >= 0.5 && d_in <= 0.1, "in {d_in}, out {d_out}");
    for other in ["block:genome", "block:transcriptome", "block:proteome"] {
        assert!(
            driving(outside, other) <= 0.1,
            "{other}: {}",
            driving(outside, other)
        );
    }
    // The overall rates and the per-group counts agree.
    let all = driving(&json, "block:metabolome");
    assert!((all - (d_in + d_out) / 2.0).abs() < 1e-9, "{all}");
    // channels.tsv: one row per group and channel, then ALL.
    let tsv = std::fs::read_to_string(s.path("a/channels.tsv")).unwrap();
    let row = tsv
        .lines()
        .find(|l| l.starts_with("out\tblock:metabolome\t60\t"))
        .unwrap_or_else(|| panic!("{tsv}"));
    let count: usize = row.split('\t').nth(3).unwrap().parse().unwrap();
    assert_eq!(count as f64, (d_out * 60.0).round());
    assert_eq!(tsv.lines().count(), 1 + 3 * 7);
    // The report shows the blocks, the per-channel rates and the reasons.
    let html = std::fs::read_to_string(s.path("a/report.html")).unwrap();
    assert!(html.contains("<h2>By channel</h2>"));
    assert!(html.contains("<td>block metabolome</td><td>12 features (12 projected); MFA weight "));
    assert!(html.contains("<tr><td>block:metabolome</td><td class=\"num\">"));
    assert!(html.contains("reason block:metabolome: residual p = "));
    // check lines carry the reason.
    let check = s.run(&[
        "check",
        "--model",
        "m.nof1",
        "--input",
        patients,
        "--exclude",
        "truth",
    ]);
    check.no_panic();
    let lines = check.stdout_text();
    assert!(
        lines
            .lines()
            .any(|l| l.contains("\treason block:metabolome: residual p = ")),
        "{lines}"
    );
}
