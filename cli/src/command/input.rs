//! Reading the reference or the patients in any input format, with labels.
//!
//! The format comes from `--format`/`--input-format`, else the file name
//! ([`InputFormat::from_path`]). CSV and TSV patients without `--labels` are
//! streamed by the library ([`Model::patient_stream`]); everything else is
//! read whole: genotypes (VCF, BCF, PLINK) are matched to the model's
//! variants, and `--labels` gives every row its group.

use std::path::Path;

use anyhow::{Context, Result, bail};
use nof1::model::{PatientStream, StreamError};
use nof1::table::labels::Labels;
use nof1::table::variants::match_variants;
use nof1::table::vcf::GenotypeOptions;
use nof1::table::{
    FeatureMap, Genotypes, InputFormat, MatchOptions, MatchReport, Role, Table, TableOptions,
    TableReader, Variant, preview_names,
};
use nof1::{Assessment, Model, VerdictCounts};

use super::args::{PatientArgs, TableArgs};
use super::progress::Bars;

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

/// The table options for a table format: TSV and CSV named by `--format`
/// get their delimiter unless `--delimiter` was given; with `--labels` the
/// group column is one of the labels file's, not of the table.
pub fn options_for(opts: &TableOptions, format: InputFormat, t: &TableArgs) -> TableOptions {
    let mut opts = opts.clone();
    if opts.delimiter.is_none() {
        match format {
            InputFormat::Tsv => opts.delimiter = Some(b'\t'),
            InputFormat::Csv => opts.delimiter = Some(b','),
            _ => {}
        }
    }
    if t.labels.is_some() {
        opts.group_col = None;
    }
    opts
}

/// Reads genotypes of any genotype format.
///
/// # Errors
/// The reader's error (naming the file and the line or record).
pub fn read_genotypes(path: &Path, format: InputFormat, use_ds: bool) -> Result<Genotypes> {
    let options = GenotypeOptions { use_ds };
    Ok(match format {
        InputFormat::Vcf => nof1::table::vcf::read_vcf(path, &options)?,
        InputFormat::Bcf => nof1::table::bcf::read_bcf(path, &options)?,
        InputFormat::Plink => nof1::table::plink::read_plink(path)?,
        _ => bail!("{}: not a genotype format", path.display()),
    })
}

/// A reference read for `fit`: the table and, for genotypes, each feature's
/// variant (feature names and variants in the same order).
pub struct ReadReference {
    /// One row per sample.
    pub table: Table,
    /// The variants of the table's features, when read from genotypes.
    pub variants: Option<(Vec<String>, Vec<Variant>)>,
}

/// Reads the reference in `format`; `opts` from [`options_for`].
pub fn read_reference(
    path: &Path,
    format: InputFormat,
    opts: &TableOptions,
    t: &TableArgs,
) -> Result<ReadReference> {
    let context = || format!("reading the reference {}", path.display());
    if format.is_genotypes() {
        let g = read_genotypes(path, format, t.use_ds).with_context(context)?;
        let table = g.to_table().with_context(context)?;
        let variants = Some((table.feature_names().to_vec(), g.variants().to_vec()));
        return Ok(ReadReference { table, variants });
    }
    let table = read_plain(path, format, opts, Role::Reference)
        .map_err(hint_format)
        .with_context(context)?;
    Ok(ReadReference {
        table,
        variants: None,
    })
}

/// Adds a hint to a table reader's error when the format was probably
/// misjudged: a VCF read as a table (standard input, or a name without the
/// extension), or a tab-separated `.txt` with empty cells read as a
/// whitespace table.
fn hint_format(e: anyhow::Error) -> anyhow::Error {
    let text = e.to_string();
    if text.contains("##fileformat=VCF") {
        e.context("this looks like a VCF: name it .vcf or give --input-format vcf")
    } else if text.contains("ragged line") {
        e.context("read as a whitespace table (runs of blanks separate fields); a tab-separated table with empty cells needs --input-format tsv")
    } else {
        e
    }
}

/// Reads a table format (CSV, TSV, whitespace) whole.
fn read_plain(path: &Path, format: InputFormat, opts: &TableOptions, role: Role) -> Result<Table> {
    Ok(match format {
        InputFormat::Whitespace => nof1::table::whitespace::read_whitespace(path, opts, role)?,
        _ => nof1::table::read_table(path, opts, role)?,
    })
}

/// Gives each row of `table` its group from `--labels` (the column named by
/// `--group-col`), when `--labels` was given. A message counts the samples
/// labelled and the label rows for samples not in the input (ignored).
/// With `require` (Mondrian calibration), a sample without a label row is
/// an error naming it; otherwise it has no group (the empty label).
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
    let n = table.n_rows();
    let (table, m) = labels
        .attach(table, col)
        .with_context(|| format!("reading the labels {}", path.display()))?;
    if let Some(first) = m.unlabelled.first()
        && require
    {
        bail!(
            "{}: sample {first:?} has no row in the labels {} ({} of {n} sample(s) unlabelled); Mondrian calibration needs every sample's group",
            table.source().display(),
            path.display(),
            m.unlabelled.len()
        );
    }
    if !quiet {
        eprintln!(
            "nof1: {}: {} of {n} sample(s) labelled by column {col:?}; {} label row(s) name samples not in {} and are ignored",
            path.display(),
            n - m.unlabelled.len(),
            m.n_unused_rows,
            table.source().display()
        );
    }
    if let Some(first) = m.unlabelled.first() {
        eprintln!(
            "nof1: warning: {}: {} sample(s) have no row in the labels and no group (first: {first})",
            path.display(),
            m.unlabelled.len(),
        );
    }
    Ok(table)
}

/// Patients opened for assessment: streamed from a CSV/TSV file, or read
/// whole and put in the model's terms.
pub enum Patients {
    /// A CSV/TSV file read batch by batch by the library.
    Stream(PatientStream),
    /// Read whole: genotypes matched to the model's variants, a whitespace
    /// table, or any table with `--labels`.
    Table {
        /// The patients.
        table: Table,
        /// Its columns matched to the model's features.
        map: FeatureMap,
        /// The variant match, for genotype input and a model with variants.
        report: Option<MatchReport>,
    },
}

impl Patients {
    /// The variant match of genotype patients against a model with variants.
    pub fn report(&self) -> Option<&MatchReport> {
        match self {
            Patients::Stream(_) => None,
            Patients::Table { report, .. } => report.as_ref(),
        }
    }
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("nof1: warning: {msg}");
}

fn note(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("nof1: {msg}");
    }
}

/// Opens the patients of `p` for `model`, warning about unknown and absent
/// columns and printing the variant match.
/// `format` is a command's own `--format` (check, audit), used when given.
pub fn open_patients(
    model: &Model,
    p: &PatientArgs,
    format: Option<&str>,
    opts: &TableOptions,
    quiet: bool,
) -> Result<Patients> {
    let format = input_format(format.or(p.input_format.as_deref()), &p.input)?;
    let opts = options_for(opts, format, &p.table);
    let context = || format!("reading the patients {}", p.input.display());
    if !format.is_genotypes() && format != InputFormat::Whitespace && p.table.labels.is_none() {
        let reader = TableReader::open(&p.input, &opts, Role::Patients)
            .map_err(|e| hint_format(e.into()))
            .with_context(context)?;
        let stream = model.patient_stream(reader)?;
        warn_columns(model, &p.input, stream.unknown(), stream.absent());
        return Ok(Patients::Stream(stream));
    }
    let mondrian = model.params().calibrate_by_group;
    // The variant match of genotypes, or the columns a CSV/TSV read whole
    // had that the model does not know.
    let (table, (report, unknown)) = if format.is_genotypes() {
        let g = read_genotypes(&p.input, format, p.table.use_ds).with_context(context)?;
        match model.variants() {
            Some(variants) => {
                let options = MatchOptions {
                    drop_ambiguous: p.drop_ambiguous,
                };
                let (sites, report) = match_variants(variants, g.variants(), options);
                note(
                    quiet,
                    format!("{}: {}", p.input.display(), report.summary()),
                );
                if report.matched == 0 {
                    bail!(
                        "{}: none of the model's {} variants is in the file (by position and alleles, or by id); is it the right file and genome build?",
                        p.input.display(),
                        report.n_model
                    );
                }
                let covered = if p.missing_as_ref {
                    report.matched + report.missing
                } else {
                    report.matched
                };
                let min = model.params().min_coverage;
                if (covered as f64) < min * report.n_model as f64 {
                    warn(format!(
                        "{}: only {covered} of the model's {} variants can be observed (min_coverage {min}): every patient will be insufficient_data",
                        p.input.display(),
                        report.n_model
                    ));
                }
                let table = g
                    .to_model_table(model.features(), &sites, p.missing_as_ref)
                    .with_context(context)?;
                (table, (Some(report), None))
            }
            None => (g.to_table().with_context(context)?, (None, None)),
        }
    } else {
        if format == InputFormat::Whitespace {
            nof1::table::whitespace::read_whitespace(&p.input, &opts, Role::Patients)
                .map(|t| (t, (None, None)))
        } else {
            read_csv_whole(model, &p.input, &opts).map(|(t, u)| (t, (None, Some(u))))
        }
        .map_err(|e| hint_format(e.into()))
        .with_context(context)?
    };
    let table = attach_labels(table, &p.table, mondrian, quiet)?;
    let map = model.feature_map(table.feature_names());
    if map.n_matched() == 0 {
        bail!(
            "{}: none of the model's {} features ({}) is in the file; is it the right file{}?",
            p.input.display(),
            model.features().len(),
            preview_names(model.features()),
            if format.is_genotypes() {
                " (this model has no variant identities: genotypes are matched by variant id, else chrom:pos:ref:alt)"
            } else {
                " and format"
            }
        );
    }
    if report.is_none() {
        let unknown = unknown.as_deref().unwrap_or(map.unknown());
        warn_columns(model, &p.input, unknown, map.absent());
    }
    Ok(Patients::Table { table, map, report })
}

/// Reads a CSV/TSV patient file whole, parsing only the model's columns
/// (as the stream does); also returns the columns the model does not know.
fn read_csv_whole(
    model: &Model,
    path: &Path,
    opts: &TableOptions,
) -> nof1::Result<(Table, Vec<String>)> {
    let mut reader = TableReader::open(path, opts, Role::Patients)?;
    let unknown = model
        .feature_map(&reader.feature_names())
        .unknown()
        .to_vec();
    reader.retain_features(model.features());
    let mut table = reader.empty_table();
    while let Some(chunk) = reader.next_chunk(nof1::model::stream::CHUNK_ROWS)? {
        table.append(chunk)?;
    }
    Ok((table, unknown))
}

fn warn_columns(model: &Model, input: &Path, unknown: &[String], absent: &[String]) {
    if !unknown.is_empty() {
        warn(format!(
            "{}: ignoring {} column(s) the model does not know: {}",
            input.display(),
            unknown.len(),
            preview_names(unknown)
        ));
    }
    if !absent.is_empty() {
        warn(format!(
            "{}: {} of the model's {} features are absent and count as missing: {}",
            input.display(),
            absent.len(),
            model.features().len(),
            preview_names(absent)
        ));
    }
}

/// Assesses every patient, batch by batch in input order, handing each
/// batch to `sink`; warns about rows with recovered defects.
pub fn assess_patients(
    model: &Model,
    patients: Patients,
    input: &Path,
    quiet: bool,
    mut sink: impl FnMut(&[Assessment]) -> Result<()>,
) -> Result<VerdictCounts> {
    let bars = Bars::new(quiet);
    let (verdicts, n_noted) = match patients {
        Patients::Stream(stream) => {
            let summary = model
                .assess_stream(stream, &bars, sink)
                .map_err(|e| match e {
                    StreamError::Input(e) => anyhow::Error::new(e)
                        .context(format!("reading the patients {}", input.display())),
                    StreamError::Sink(e) => e,
                })?;
            (summary.verdicts, summary.n_noted)
        }
        Patients::Table { table, map, .. } => {
            let n_noted = table.notes().iter().filter(|n| !n.is_empty()).count();
            let mut verdicts = VerdictCounts::default();
            nof1::Progress::start(&bars, "assessing", table.n_rows() as u64);
            let rows: Vec<usize> = (0..table.n_rows()).collect();
            for chunk in rows.chunks(nof1::model::stream::CHUNK_ROWS) {
                let sub = table.select_rows(chunk);
                let out = model.assess_mapped(&sub, &map)?;
                verdicts.add(&out);
                sink(&out)?;
                nof1::Progress::advance(&bars, out.len() as u64);
            }
            nof1::Progress::finish(&bars);
            (verdicts, n_noted)
        }
    };
    if n_noted > 0 {
        warn(format!(
            "{}: {} row(s) had recoverable defects, recorded in the note column (--strict-input makes them errors)",
            input.display(),
            n_noted
        ));
    }
    Ok(verdicts)
}
