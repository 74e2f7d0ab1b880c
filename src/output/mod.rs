//! Writing assessments: CSV/TSV (fixed columns) and JSON Lines.
//!
//! Last step of the pipeline. Rows are written in input order, one per
//! patient. A file output is written to a temporary file beside the target and
//! renamed into place by [`AssessmentWriter::finish`], so a failed run never
//! leaves a partial output file; `-` streams to standard output.

mod csv;
mod jsonl;

pub use csv::{Column, ColumnKind, Value, columns, record};
pub use jsonl::json_record;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::verdict::Assessment;

/// The first CSV columns, in order; [`columns`] gives all of them for a model
/// (`nearest_group` after `nearest_distance` when the model has groups, then
/// `reason`, `q_value` with [`AssessmentWriter::with_q_values`], and `note`).
pub const CSV_COLUMNS: [&str; 12] = [
    "id",
    "verdict",
    "p_value",
    "novelty",
    "p_novelty",
    "residual",
    "p_residual",
    "density",
    "support",
    "coverage",
    "nearest_id",
    "nearest_distance",
];

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// Comma-separated values.
    Csv,
    /// Tab-separated values.
    Tsv,
    /// One JSON object per line.
    Jsonl,
}

impl OutputFormat {
    /// The format implied by a path's extension (`.jsonl`/`.json`/`.ndjson` →
    /// JSONL, `.tsv` → TSV, anything else → CSV).
    pub fn from_path(path: &Path) -> OutputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("jsonl") | Some("json") | Some("ndjson") => OutputFormat::Jsonl,
            Some("tsv") | Some("tab") => OutputFormat::Tsv,
            _ => OutputFormat::Csv,
        }
    }
}

enum Sink {
    Stdout(BufWriter<std::io::Stdout>),
    /// A file (or an existing special file, written in place).
    File(BufWriter<AtomicFile>),
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(w) => w,
            Sink::File(w) => w,
        }
    }
}

/// Streams assessments to a file or standard output.
pub struct AssessmentWriter {
    sink: Option<Sink>,
    format: OutputFormat,
    path: PathBuf,
    header_written: bool,
    with_q: bool,
    variant_match: Option<crate::table::MatchReport>,
}

impl std::fmt::Debug for AssessmentWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssessmentWriter")
            .field("path", &self.path)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl AssessmentWriter {
    /// Opens `path` (`-` = standard output) for `model`'s assessments.
    ///
    /// A regular file is written beside the target and renamed into place by
    /// [`AssessmentWriter::finish`]; an existing special file (`/dev/null`, a
    /// FIFO, `/dev/stdout`) is written in place.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when the target directory is missing or not writable.
    pub fn create(path: &Path, format: OutputFormat, _model: &Model) -> Result<Self> {
        let sink = if path == Path::new("-") {
            Sink::Stdout(BufWriter::new(std::io::stdout()))
        } else {
            Sink::File(BufWriter::with_capacity(1 << 20, AtomicFile::create(path)?))
        };
        Ok(AssessmentWriter {
            sink: Some(sink),
            format,
            path: path.to_path_buf(),
            header_written: false,
            with_q: false,
            variant_match: None,
        })
    }

    /// Also writes each row's `q_value` (Benjamini–Hochberg over the batch,
    /// see [`crate::verdict::apply_fdr`]): a CSV column before `note`, a JSONL field.
    pub fn with_q_values(mut self, yes: bool) -> Self {
        self.with_q = yes;
        self
    }

    /// Records the variant match of the patients' genotype file: JSON Lines
    /// rows then carry it as `variant_match` (CSV and TSV do not).
    pub fn set_variant_match(&mut self, report: Option<crate::table::MatchReport>) {
        self.variant_match = report;
    }

    /// Writes a batch of assessments (in order).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] on a write failure.
    pub fn write(&mut self, model: &Model, rows: &[Assessment]) -> Result<()> {
        let format = self.format;
        let with_q = self.with_q;
        let write_header = !self.header_written;
        self.header_written = true;
        let variant_match = self.variant_match.as_ref();
        let Some(sink) = self.sink.as_mut() else {
            return Ok(());
        };
        let w = sink.writer();
        let result = match format {
            OutputFormat::Csv | OutputFormat::Tsv => {
                let sep = if format == OutputFormat::Tsv {
                    b'\t'
                } else {
                    b','
                };
                if write_header {
                    csv::write_header(w, sep, model, with_q)
                } else {
                    Ok(())
                }
                .and_then(|_| csv::write_rows(w, sep, model, rows, with_q))
            }
            OutputFormat::Jsonl => jsonl::write_rows(w, model, rows, with_q, variant_match),
        };
        result.map_err(|e| Error::io(&self.path, e))
    }

    /// Flushes and moves the output into place.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when flushing or renaming fails.
    pub fn finish(mut self, model: &Model) -> Result<()> {
        if !self.header_written {
            self.write(model, &[])?;
        }
        match self.sink.take() {
            Some(Sink::Stdout(mut w)) => w.flush().map_err(|e| Error::io(&self.path, e)),
            Some(Sink::File(w)) => w
                .into_inner()
                .map_err(|e| Error::io(&self.path, e.into_error()))?
                .commit(),
            None => Ok(()),
        }
    }
}

/// Formats a float: shortest round-trip representation, empty for `NaN`.
pub(crate) fn fmt_f64(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x.is_infinite() {
        if x > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{x}")
    }
}
