//! Reading the reference or the patients in any input format, with labels.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nof1::Model;
use nof1::table::genotypes::Genotypes;
use nof1::table::labels::Labels;
use nof1::table::variants::{MatchOptions, MatchReport, match_variants};
use nof1::table::vcf::GenotypeOptions;
use nof1::table::{InputFormat, Role, Table, TableOptions};

use super::args::TableArgs;

/// The format of `path`: `name` if given, else by extension.
pub fn input_format(name: Option<&str>, path: &Path) -> Result<InputFormat> {
    match name {
        None => Ok(InputFormat::from_path(path)),
        Some(n) => InputFormat::from_name(n).with_context(|| {
            let names: Vec<&str> = InputFormat::NAMES.iter().map(|(n, _)| *n).collect();
            format!("unknown input format {n:?} (one of {})", names.join(", "))
        }),
    }
}

/// Reads genotypes of any genotype format.
pub fn read_genotypes(path: &Path, format: InputFormat, t: &TableArgs) -> Result<Genotypes> {
    let options = GenotypeOptions { use_ds: t.use_ds };
    let g = match format {
        InputFormat::Vcf => nof1::table::vcf::read_vcf(path, &options)?,
        InputFormat::Bcf => nof1::table::bcf::read_bcf(path, &options)?,
        InputFormat::Plink => nof1::table::plink::read_plink(path)?,
        _ => bail!("{}: not a genotype format", path.display()),
    };
    Ok(g)
}

/// Reads a table format (CSV, TSV, whitespace) whole.
pub fn read_plain(
    path: &Path,
    format: InputFormat,
    opts: &TableOptions,
    role: Role,
) -> Result<Table> {
    let mut opts = opts.clone();
    if format == InputFormat::Tsv && opts.delimiter.is_none() {
        opts.delimiter = Some(b'\t');
    }
    Ok(match format {
        InputFormat::Whitespace => nof1::table::whitespace::read_whitespace(path, &opts, role)?,
        _ => nof1::table::read_table(path, &opts, role)?,
    })
}

/// Attaches the labels file's `group_col` to `table` when `--labels` was
/// given; messages on stderr count label rows for samples not in the table.
/// With `require` (Mondrian calibration), a sample without a label is an error.
pub fn attach_labels(table: Table, t: &TableArgs, require: bool, quiet: bool) -> Result<Table> {
    let Some(path) = &t.labels else {
        return Ok(table);
    };
    let labels =
        Labels::read(path).with_context(|| format!("reading the labels {}", path.display()))?;
    let Some(col) = &t.group_col else {
        bail!(
            "--labels {} needs --group-col to name one of its columns ({})",
            path.display(),
            labels.columns().join(", ")
        );
    };
    let (table, m) = labels.attach(table, col)?;
    if m.n_unused_rows > 0 && !quiet {
        eprintln!(
            "nof1: {}: {} label row(s) name samples that are not in the input; ignored",
            path.display(),
            m.n_unused_rows
        );
    }
    if let Some(first) = m.unlabelled.first() {
        if require {
            bail!(
                "sample {first:?} has no row in the labels {} ({} sample(s) unlabelled); Mondrian calibration needs every sample's group",
                path.display(),
                m.unlabelled.len()
            );
        }
        if !quiet {
            eprintln!(
                "nof1: warning: {} sample(s) have no row in the labels {} and no group (first: {first})",
                m.unlabelled.len(),
                path.display()
            );
        }
    }
    Ok(table)
}

/// Patients read whole and put in the model's terms: genotypes matched to
/// the model's variants (or by feature name when the model has none).
pub struct Patients {
    /// The table to assess.
    pub table: Table,
    /// The variant match, for genotype input and a model with variants.
    pub report: Option<MatchReport>,
}

/// Reads patients of a genotype format and matches them to `model`.
pub fn read_genotype_patients(
    model: &Model,
    path: &Path,
    format: InputFormat,
    t: &TableArgs,
    missing_as_ref: bool,
    drop_ambiguous: bool,
) -> Result<Patients> {
    let g = read_genotypes(path, format, t)
        .with_context(|| format!("reading the patients {}", path.display()))?;
    match model.variants() {
        Some(variants) => {
            let (sites, report) =
                match_variants(variants, g.variants(), MatchOptions { drop_ambiguous });
            let table = g.to_model_table(model.features(), &sites, missing_as_ref)?;
            Ok(Patients {
                table,
                report: Some(report),
            })
        }
        None => Ok(Patients {
            table: g.to_table()?,
            report: None,
        }),
    }
}
