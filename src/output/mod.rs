//! Writing assessments: CSV/TSV (fixed columns) and JSON Lines.
//!
//! Last step of the pipeline. Rows are written in input order, one per
//! patient. A file output is written to a temporary file beside the target and
//! renamed into place by [`AssessmentWriter::finish`], so a failed run never
//! leaves a partial output file; `-` streams to standard output.

mod csv;
mod jsonl;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::model::Model;
use crate::verdict::Assessment;

/// CSV columns, in order (`nearest_group` is inserted after `nearest_distance`
/// when the model has groups).
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
    /// An existing special file (device, FIFO): written in place, never renamed over.
    Special(BufWriter<std::fs::File>),
    File {
        file: BufWriter<std::fs::File>,
        tmp: PathBuf,
        target: PathBuf,
    },
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Stdout(w) => w,
            Sink::Special(w) => w,
            Sink::File { file, .. } => file,
        }
    }
}

/// Streams assessments to a file or standard output.
pub struct AssessmentWriter {
    sink: Option<Sink>,
    format: OutputFormat,
    with_groups: bool,
    path: PathBuf,
    header_written: bool,
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
    pub fn create(path: &Path, format: OutputFormat, model: &Model) -> Result<Self> {
        let special = std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        let sink = if path == Path::new("-") {
            Sink::Stdout(BufWriter::new(std::io::stdout()))
        } else if special {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
            Sink::Special(BufWriter::new(file))
        } else {
            if path.is_dir() {
                return Err(Error::io(
                    path,
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, "is a directory"),
                ));
            }
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "out".into());
            let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
            let file = std::fs::File::create(&tmp).map_err(|e| Error::io(path, e))?;
            Sink::File {
                file: BufWriter::with_capacity(1 << 20, file),
                tmp,
                target: path.to_path_buf(),
            }
        };
        Ok(AssessmentWriter {
            sink: Some(sink),
            format,
            with_groups: model.reference().groups.is_some(),
            path: path.to_path_buf(),
            header_written: false,
            variant_match: None,
        })
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
        let with_groups = self.with_groups;
        let write_header = !self.header_written;
        self.header_written = true;
        let variant_match = self.variant_match.clone();
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
                    csv::write_header(w, sep, with_groups)
                } else {
                    Ok(())
                }
                .and_then(|_| csv::write_rows(w, sep, with_groups, model, rows))
            }
            OutputFormat::Jsonl => jsonl::write_rows(w, model, rows, variant_match.as_ref()),
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
            Some(Sink::Special(mut w)) => w.flush().map_err(|e| Error::io(&self.path, e)),
            Some(Sink::File { file, tmp, target }) => {
                let res = file
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .and_then(|_| std::fs::rename(&tmp, &target));
                if let Err(e) = res {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(Error::io(&target, e));
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

impl Drop for AssessmentWriter {
    fn drop(&mut self) {
        if let Some(Sink::File { tmp, .. }) = self.sink.take() {
            let _ = std::fs::remove_file(tmp);
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
