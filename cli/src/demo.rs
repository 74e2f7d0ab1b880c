//! The bundled 1000 Genomes demonstration.
//!
//! The Seldin ancestry-informative SNP panel (2,504 people, 127 SNPs, MIT
//! licence, see `fixtures/1000genomes-aisnp/`) is embedded in the library so
//! that `nof1 demo` needs no files and no network. The demo fits a GWAS-like,
//! European-heavy reference and assesses everyone held out, by super-population.

use std::path::Path;

use crate::eval;
use nof1::error::Result;
use nof1::model::{Model, Params};
use nof1::table::{Role, Table, TableOptions, read_table_str};
use nof1::verdict::{Assessment, Verdict};

/// The embedded panel, as CSV text.
pub const PANEL_CSV: &str = include_str!("../../fixtures/1000genomes-aisnp/seldin_128_dosage.csv");

/// Fraction of EUR samples placed in the demo reference.
pub const DEMO_EUR_FRACTION: f64 = 0.9;
/// Samples of each non-European super-population placed in the demo reference.
pub const DEMO_PER_MINOR: usize = 18;

/// The embedded panel with `superpopulation` as the group.
///
/// # Errors
/// Only if the embedded text were corrupt.
pub fn panel() -> Result<Table> {
    let opts = TableOptions {
        id_col: Some("sample".into()),
        group_col: Some("superpopulation".into()),
        exclude: vec!["population".into(), "sex".into()],
        ..TableOptions::default()
    };
    read_table_str(
        PANEL_CSV,
        Path::new("fixtures/1000genomes-aisnp/seldin_128_dosage.csv"),
        &opts,
        Role::Reference,
    )
}

/// Per-group figures of a demo run.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRow {
    /// Super-population.
    pub group: String,
    /// Members of this group in the reference.
    pub in_reference: usize,
    /// Held-out members assessed.
    pub n: usize,
    /// Fraction called invisible.
    pub invisible: f64,
    /// Fraction called low_support.
    pub low_support: f64,
    /// Median combined p-value.
    pub median_p: f64,
}

/// The outcome of the demo.
#[derive(Debug)]
pub struct DemoRun {
    /// The fitted model.
    pub model: Model,
    /// Held-out samples, as assessed.
    pub heldout: Table,
    /// Their assessments.
    pub assessments: Vec<Assessment>,
    /// Per super-population summary, sorted by group.
    pub rows: Vec<GroupRow>,
}

/// Runs the GWAS-mix demo with the given parameters.
///
/// # Errors
/// If fitting fails.
pub fn run(params: &Params) -> Result<DemoRun> {
    let panel = panel()?;
    let seed = params.seed;
    let (ref_rows, held_rows) =
        eval::gwas_split(&panel, "EUR", DEMO_EUR_FRACTION, DEMO_PER_MINOR, seed);
    let reference = panel.select_rows(&ref_rows);
    let heldout = panel.select_rows(&held_rows);
    let model = params.fit(&reference)?;
    let assessments = model.assess(&heldout)?;
    let ref_groups = reference
        .groups()
        .map(<[String]>::to_vec)
        .unwrap_or_default();
    let held_groups = heldout.groups().map(<[String]>::to_vec).unwrap_or_default();
    let mut names = held_groups.clone();
    names.sort();
    names.dedup();
    let rows = names
        .iter()
        .map(|g| {
            let sel: Vec<&Assessment> = assessments
                .iter()
                .zip(&held_groups)
                .filter(|(_, h)| *h == g)
                .map(|(a, _)| a)
                .collect();
            let n = sel.len();
            let rate =
                |v: Verdict| sel.iter().filter(|a| a.verdict == v).count() as f64 / n.max(1) as f64;
            let mut ps: Vec<f64> = sel
                .iter()
                .map(|a| a.p_value)
                .filter(|p| !p.is_nan())
                .collect();
            ps.sort_by(f64::total_cmp);
            GroupRow {
                group: g.clone(),
                in_reference: ref_groups.iter().filter(|r| *r == g).count(),
                n,
                invisible: rate(Verdict::Invisible),
                low_support: rate(Verdict::LowSupport),
                median_p: median(&ps),
            }
        })
        .collect();
    Ok(DemoRun {
        model,
        heldout,
        assessments,
        rows,
    })
}

fn median(sorted: &[f64]) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]),
    }
}
