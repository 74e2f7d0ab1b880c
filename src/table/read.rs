//! Streaming CSV/TSV reader.
//!
//! Parses straight from byte records into `f64` buffers with a fast float
//! parser; per-cell strings are never kept. Errors name the file, the 1-based
//! line, the column and the value.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::{Role, Table};
use crate::error::{Error, Position, Result};

/// Cell texts read as a missing value (compared case-insensitively, after trimming).
pub const MISSING_TOKENS: [&str; 6] = ["", "na", "nan", "n/a", "null", "."];

/// Largest magnitude accepted in a reference cell. Squares of larger values
/// overflow `f64`, so their column's variance could not be computed; patient
/// values have no such limit (standardised values are clamped).
pub const MAX_REFERENCE_MAGNITUDE: f64 = 1e150;

/// How to read a table.
#[derive(Debug, Clone, Default)]
pub struct TableOptions {
    /// Field delimiter; `None` picks tab for `.tsv`/`.tab`/`.txt` files and comma otherwise.
    pub delimiter: Option<u8>,
    /// Name of the id column; `None` means the first column.
    pub id_col: Option<String>,
    /// Name of a group column (a label, never a feature).
    pub group_col: Option<String>,
    /// Columns to ignore.
    pub exclude: Vec<String>,
    /// Turn recoverable defects in patient files into errors.
    pub strict: bool,
}

impl TableOptions {
    /// The delimiter used for `path` (a `.gz`/`.bgz` suffix ignored).
    pub fn delimiter_for(&self, path: &Path) -> u8 {
        if let Some(d) = self.delimiter {
            return d;
        }
        let path = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("gz") || e.eq_ignore_ascii_case("bgz") => {
                path.with_extension("")
            }
            _ => path.to_path_buf(),
        };
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("tsv") | Some("tab") | Some("txt") => b'\t',
            _ => b',',
        }
    }
}

/// Reads the whole table at `path` (`-` = standard input).
///
/// For [`Role::Reference`] every defect is an error, duplicate ids included.
///
/// # Errors
/// [`crate::ErrorKind::Io`] when the file cannot be opened or read,
/// [`crate::ErrorKind::Schema`] for header problems and
/// [`crate::ErrorKind::Parse`] for bad cells, each naming the line and column.
pub fn read_table(path: &Path, options: &TableOptions, role: Role) -> Result<Table> {
    collect(TableReader::open(path, options, role)?, role)
}

/// Reads a whole table from an in-memory string; `name` names it in messages.
///
/// # Errors
/// As [`read_table`].
pub fn read_table_str(
    text: &str,
    name: &Path,
    options: &TableOptions,
    role: Role,
) -> Result<Table> {
    let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
    collect(TableReader::from_reader(input, name, options, role)?, role)
}

fn collect(mut reader: TableReader, role: Role) -> Result<Table> {
    let mut table = reader.empty_table();
    // Rows are appended in place; once the first rows show the bytes per
    // row, the rest of a file of known size is reserved at once.
    let mut reserved = false;
    while reader.append_chunk(&mut table, 1 << 16)? > 0 {
        if !reserved {
            reserved = true;
            reader.reserve_rest(&mut table);
        }
    }
    if role == Role::Reference {
        let mut seen: HashMap<&str, u64> = HashMap::with_capacity(table.ids.len());
        for (id, &line) in table.ids.iter().zip(&table.lines) {
            if let Some(first) = seen.insert(id.as_str(), line) {
                return Err(Error::parse(
                    Position::cell(&table.source, line, reader.id_name()),
                    format!("duplicate id {id:?} (first seen on line {first})"),
                ));
            }
        }
    }
    Ok(table)
}

/// A reader that yields a table in chunks of rows, for bounded-memory streaming.
pub struct TableReader {
    source: PathBuf,
    reader: csv::Reader<Box<dyn Read + Send>>,
    role: Role,
    strict: bool,
    header: Vec<String>,
    id_idx: usize,
    group_idx: Option<usize>,
    feature_idx: Vec<usize>,
    /// Records of the block being parsed, reused from block to block.
    records: Vec<csv::ByteRecord>,
    /// Records of the block being split into fields meanwhile.
    spare: Vec<csv::ByteRecord>,
    /// Size of the input in bytes, when known.
    size_hint: Option<u64>,
}

impl std::fmt::Debug for TableReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableReader")
            .field("source", &self.source)
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// Opens `path` (`-` = standard input), decompressing gzip or BGZF as its
/// first bytes say (see [`super::input::open_input`]).
fn open_input(path: &Path) -> Result<Box<dyn Read + Send>> {
    let input: Box<dyn Read + Send> = super::input::open_input(path)?;
    Ok(input)
}

impl TableReader {
    /// Opens `path` and reads its header.
    ///
    /// # Errors
    /// As [`read_table`].
    pub fn open(path: &Path, options: &TableOptions, role: Role) -> Result<TableReader> {
        let input = open_input(path)?;
        let mut reader = Self::from_reader(input, path, options, role)?;
        if path != Path::new("-") {
            reader.size_hint = std::fs::metadata(path).ok().map(|m| m.len());
        }
        Ok(reader)
    }

    /// Reads a table from any reader; `path` names it in messages and picks the
    /// default delimiter.
    ///
    /// # Errors
    /// As [`read_table`].
    pub fn from_reader(
        input: Box<dyn Read + Send>,
        path: &Path,
        options: &TableOptions,
        role: Role,
    ) -> Result<TableReader> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(options.delimiter_for(path))
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .buffer_capacity(1 << 20)
            .from_reader(input);
        let mut record = csv::ByteRecord::new();
        let has_header = reader
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(path, e))?;
        if !has_header {
            return Err(Error::schema(
                Position::file(path),
                "empty file: a header line is required",
            ));
        }
        let mut header = Vec::with_capacity(record.len());
        for (j, field) in record.iter().enumerate() {
            let name = std::str::from_utf8(field).map_err(|_| {
                Error::parse(
                    Position::line(path, 1),
                    format!(
                        "column {} of the header is not valid UTF-8: {:?}",
                        j + 1,
                        String::from_utf8_lossy(field)
                    ),
                )
            })?;
            header.push(name.to_string());
        }
        let mut first_seen: HashMap<&str, usize> = HashMap::new();
        for (j, name) in header.iter().enumerate() {
            if name.is_empty() {
                return Err(Error::schema(
                    Position::line(path, 1),
                    format!("column {} of the header has no name", j + 1),
                ));
            }
            if let Some(first) = first_seen.insert(name.as_str(), j) {
                return Err(Error::schema(
                    Position::cell(path, 1, name.clone()),
                    format!(
                        "duplicate column name {name:?} (columns {} and {})",
                        first + 1,
                        j + 1
                    ),
                ));
            }
        }
        let find = |what: &str, name: &str| -> Result<usize> {
            header.iter().position(|h| h == name).ok_or_else(|| {
                Error::schema(
                    Position::line(path, 1),
                    format!("{what} column {name:?} is not in the header"),
                )
            })
        };
        let id_idx = match &options.id_col {
            Some(name) => find("id", name)?,
            None => 0,
        };
        let group_idx = match &options.group_col {
            Some(name) => Some(find("group", name)?),
            None => None,
        };
        let mut excluded = vec![false; header.len()];
        for name in &options.exclude {
            excluded[find("excluded", name)?] = true;
        }
        let feature_idx: Vec<usize> = (0..header.len())
            .filter(|&j| j != id_idx && Some(j) != group_idx && !excluded[j])
            .collect();
        if feature_idx.is_empty() {
            let hint = if header.len() == 1 {
                format!(
                    " (the header has a single column {:?}; is the delimiter right? see --delimiter)",
                    header[0]
                )
            } else {
                String::new()
            };
            return Err(Error::schema(
                Position::line(path, 1),
                format!("no feature columns: every column is the id, the group or excluded{hint}"),
            ));
        }
        Ok(TableReader {
            source: path.to_path_buf(),
            reader,
            role,
            strict: options.strict || role == Role::Reference,
            header,
            id_idx,
            group_idx,
            feature_idx,
            records: vec![record],
            spare: Vec::new(),
            size_hint: None,
        })
    }

    /// The file being read (`-` for standard input).
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The name of the id column.
    pub fn id_name(&self) -> &str {
        &self.header[self.id_idx]
    }

    /// Feature column names, in file order.
    pub fn feature_names(&self) -> Vec<String> {
        self.feature_idx
            .iter()
            .map(|&j| self.header[j].clone())
            .collect()
    }

    /// Keeps only the feature columns named in `names` (file order is kept);
    /// the other columns are neither parsed nor checked. Used by `assess` so
    /// that columns the model does not know cannot raise notes or errors.
    /// Returns the names that are not feature columns of this file.
    pub fn retain_features(&mut self, names: &[String]) -> Vec<String> {
        let wanted: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        let header = &self.header;
        self.feature_idx
            .retain(|&j| wanted.contains(header[j].as_str()));
        let present: std::collections::HashSet<&str> = self
            .feature_idx
            .iter()
            .map(|&j| self.header[j].as_str())
            .collect();
        names
            .iter()
            .filter(|n| !present.contains(n.as_str()))
            .cloned()
            .collect()
    }

    /// An empty table with this file's columns.
    pub fn empty_table(&self) -> Table {
        Table {
            source: self.source.clone(),
            groups: self.group_idx.map(|_| Vec::new()),
            feature_names: self.feature_names(),
            ..Table::default()
        }
    }

    /// Reads up to `max_rows` rows; `Ok(None)` at the end of the file.
    ///
    /// Records are split into fields in file order, then parsed in parallel
    /// in blocks of [`PARSE_BLOCK`]; an error names the first bad row in
    /// file order, as a row-by-row reader would.
    ///
    /// # Errors
    /// As [`read_table`].
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Table>> {
        let mut table = self.empty_table();
        if self.append_chunk(&mut table, max_rows)? == 0 {
            Ok(None)
        } else {
            Ok(Some(table))
        }
    }

    /// Reserves room in `table` for the rows of the rest of the file, as
    /// estimated from the bytes per row read so far (files of known size).
    fn reserve_rest(&self, table: &mut Table) {
        let (Some(size), rows) = (self.size_hint, table.ids.len()) else {
            return;
        };
        let read = self.reader.position().byte().max(1);
        if rows == 0 || size <= read {
            return;
        }
        let rest = ((size - read) as f64 / read as f64 * rows as f64 * 1.01) as usize + 1;
        let p = self.feature_idx.len();
        table.values.reserve(rest.saturating_mul(p));
        table.ids.reserve(rest);
        table.lines.reserve(rest);
        table.notes.reserve(rest);
        if let Some(g) = table.groups.as_mut() {
            g.reserve(rest);
        }
    }

    /// [`TableReader::next_chunk`] appending to `table` (this file's
    /// columns); returns the number of rows appended, 0 at the end.
    fn append_chunk(&mut self, table: &mut Table, max_rows: usize) -> Result<usize> {
        let start = table.ids.len();
        let TableReader {
            source,
            reader,
            role,
            strict,
            header,
            id_idx,
            group_idx,
            feature_idx,
            records,
            spare,
            size_hint: _,
        } = self;
        let p = feature_idx.len();
        let parser = RowParser {
            source,
            header,
            role: *role,
            strict: *strict,
            id_idx: *id_idx,
            group_idx: *group_idx,
            feature_idx,
        };
        // Block i is parsed (in parallel) while block i + 1 is split into
        // fields; errors are reported in file order.
        let mut want = max_rows.min(PARSE_BLOCK);
        let (mut n, mut read_error) = split_records(reader, source, records, want);
        loop {
            let done = table.ids.len() - start;
            let last = read_error.is_some() || n < want || done + n >= max_rows;
            let want_next = if last {
                0
            } else {
                (max_rows - done - n).min(PARSE_BLOCK)
            };
            let first = table.values.len();
            table.values.resize(first + n * p, f64::NAN);
            let (rows, (n_next, error_next)) = rayon::join(
                || parse_block(&parser, &records[..n], &mut table.values[first..], p),
                || split_records(reader, source, spare, want_next),
            );
            for row in rows {
                let row = row?;
                table.ids.push(row.id);
                if let (Some(groups), Some(g)) = (table.groups.as_mut(), row.group) {
                    groups.push(g);
                }
                table.lines.push(row.line);
                table.notes.push(row.note);
            }
            if let Some(e) = read_error {
                return Err(e);
            }
            if last {
                break;
            }
            std::mem::swap(records, spare);
            (n, read_error, want) = (n_next, error_next, want_next);
        }
        Ok(table.ids.len() - start)
    }
}

/// Splits up to `want` records into fields, into `pool` (grown as needed);
/// returns how many were read and the error that stopped reading, if any.
fn split_records(
    reader: &mut csv::Reader<Box<dyn Read + Send>>,
    source: &Path,
    pool: &mut Vec<csv::ByteRecord>,
    want: usize,
) -> (usize, Option<Error>) {
    let mut n = 0;
    while n < want {
        if n == pool.len() {
            pool.push(csv::ByteRecord::new());
        }
        match reader.read_byte_record(&mut pool[n]) {
            Ok(true) => n += 1,
            Ok(false) => break,
            Err(e) => return (n, Some(csv_error(source, e))),
        }
    }
    (n, None)
}

/// Parses records in parallel, writing `p` values per record into `values`.
fn parse_block(
    parser: &RowParser<'_>,
    records: &[csv::ByteRecord],
    values: &mut [f64],
    p: usize,
) -> Vec<Result<Row>> {
    if p == 0 {
        return records
            .par_iter()
            .with_min_len(256)
            .map(|r| parser.parse(r, &mut []))
            .collect();
    }
    records
        .par_iter()
        .zip(values.par_chunks_mut(p))
        .with_min_len(256)
        .map(|(r, out)| parser.parse(r, out))
        .collect()
}

/// Records parsed per parallel block.
pub const PARSE_BLOCK: usize = 4096;

/// One parsed row (its values are written in place).
struct Row {
    id: String,
    group: Option<String>,
    line: u64,
    note: String,
}

/// What parsing a record needs of its reader (shared by the parsing threads).
struct RowParser<'a> {
    source: &'a Path,
    header: &'a [String],
    role: Role,
    strict: bool,
    id_idx: usize,
    group_idx: Option<usize>,
    feature_idx: &'a [usize],
}

impl RowParser<'_> {
    fn column_name(&self, j: usize) -> String {
        self.header
            .get(j)
            .cloned()
            .unwrap_or_else(|| format!("column {}", j + 1))
    }

    fn id_name(&self) -> &str {
        &self.header[self.id_idx]
    }

    /// Parses one record: its feature values into `values` (one per feature),
    /// and its id, group and the note of recoverable defects.
    fn parse(&self, record: &csv::ByteRecord, values: &mut [f64]) -> Result<Row> {
        let n_fields = self.header.len();
        let line = record.position().map_or(0, |pos| pos.line());
        let mut note = String::new();
        // A line break inside a field is almost always an unterminated quote
        // that swallowed the following lines: refuse rather than lose rows.
        if let Some((j, field)) = record
            .iter()
            .enumerate()
            .find(|(_, f)| f.contains(&b'\n') || f.contains(&b'\r'))
        {
            return Err(Error::parse(
                Position::cell(self.source, line, self.column_name(j)),
                format!(
                    "a quoted field spans several lines (unterminated quote?): {}",
                    quote_value(field)
                ),
            ));
        }
        if record.len() != n_fields {
            if self.strict {
                return Err(Error::parse(
                    Position::line(self.source, line),
                    format!(
                        "ragged row: expected {n_fields} fields as in the header, found {}",
                        record.len()
                    ),
                ));
            }
            add_note(
                &mut note,
                format!(
                    "ragged row ({} fields, header has {n_fields})",
                    record.len()
                ),
            );
        }
        let raw_id = record.get(self.id_idx).unwrap_or(b"");
        let id = match std::str::from_utf8(raw_id) {
            Ok(s) => s.to_string(),
            Err(_) => {
                if self.strict {
                    return Err(Error::parse(
                        Position::cell(self.source, line, self.id_name()),
                        format!("id is not valid UTF-8: {}", quote_value(raw_id)),
                    ));
                }
                add_note(&mut note, "id is not valid UTF-8".to_string());
                String::from_utf8_lossy(raw_id).into_owned()
            }
        };
        if id.is_empty() {
            if self.strict {
                return Err(Error::parse(
                    Position::cell(self.source, line, self.id_name()),
                    "empty id",
                ));
            }
            add_note(&mut note, "empty id".to_string());
        }
        let group = self.group_idx.map(|gi| {
            record
                .get(gi)
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default()
        });
        let mut n_observed = 0usize;
        for (out, &j) in values.iter_mut().zip(self.feature_idx) {
            let cell = record.get(j).unwrap_or(b"");
            let value = feature_value(
                parse_cell(cell),
                &|| quote_value(cell),
                &CellSite {
                    role: self.role,
                    strict: self.strict,
                    position: &|| Position::cell(self.source, line, &self.header[j]),
                    column: &self.header[j],
                },
                &mut note,
            )?;
            if !value.is_nan() {
                n_observed += 1;
            }
            *out = value;
        }
        if n_observed == 0 && self.role == Role::Reference {
            return Err(Error::parse(
                Position::line(self.source, line),
                format!(
                    "reference row {id:?} has no observed feature value (every cell is missing); remove the row"
                ),
            ));
        }
        Ok(Row {
            id,
            group,
            line,
            note,
        })
    }
}

/// Where a feature cell is, for [`feature_value`]'s checks and messages.
pub(crate) struct CellSite<'a> {
    /// The table's role (a reference refuses every defect).
    pub role: Role,
    /// Recoverable defects are errors.
    pub strict: bool,
    /// The cell's position, built only for an error.
    pub position: &'a dyn Fn() -> Position,
    /// The column's name.
    pub column: &'a str,
}

/// A feature cell's value (`NaN` = missing) with the reader's checks: a
/// reference refuses text, non-finite and overlarge values; a patient's
/// text or non-finite value is read as missing with a note unless `strict`.
/// `text` gives the cell's text, quoted, for a message.
pub(crate) fn feature_value(
    cell: Cell,
    text: &dyn Fn() -> String,
    at: &CellSite<'_>,
    note: &mut String,
) -> Result<f64> {
    let column = at.column;
    match cell {
        Cell::Value(v) => {
            if at.role == Role::Reference && v.abs() > MAX_REFERENCE_MAGNITUDE {
                return Err(Error::parse(
                    (at.position)(),
                    format!(
                        "value {} is too large for a reference feature (|x| > {MAX_REFERENCE_MAGNITUDE:e}: its variance would overflow)",
                        text()
                    ),
                ));
            }
            Ok(v)
        }
        Cell::Missing => Ok(f64::NAN),
        Cell::NonFinite => {
            if at.strict {
                return Err(Error::parse(
                    (at.position)(),
                    format!(
                        "non-finite value {}; use an empty cell or NA for a missing value",
                        text()
                    ),
                ));
            }
            add_note(
                note,
                format!("{column}: non-finite {} read as missing", text()),
            );
            Ok(f64::NAN)
        }
        Cell::Text => {
            if at.strict {
                let hint = if at.role == Role::Reference {
                    format!(" (a non-numeric column can be left out with --exclude {column})")
                } else {
                    String::new()
                };
                return Err(Error::parse(
                    (at.position)(),
                    format!("not a number: {}{hint}", text()),
                ));
            }
            add_note(note, format!("{column}: text {} read as missing", text()));
            Ok(f64::NAN)
        }
    }
}

/// A cell's text for a message: quoted, lossy UTF-8, cut after 60 characters.
pub(crate) fn quote_value(cell: &[u8]) -> String {
    const MAX: usize = 60;
    let text = String::from_utf8_lossy(cell);
    if text.chars().count() > MAX {
        let cut: String = text.chars().take(MAX).collect();
        format!("{cut:?}... ({} bytes)", cell.len())
    } else {
        format!("{text:?}")
    }
}

pub(crate) fn add_note(note: &mut String, text: String) {
    if !note.is_empty() {
        note.push_str("; ");
    }
    note.push_str(&text);
}

/// What a cell holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A finite number.
    Value(f64),
    /// A missing-value token (see [`MISSING_TOKENS`]).
    Missing,
    /// `inf`, `-inf` or a number too large for `f64`.
    NonFinite,
    /// Anything else.
    Text,
}

/// Parses one (already trimmed) cell.
pub fn parse_cell(cell: &[u8]) -> Cell {
    if let Ok(v) = fast_float2::parse::<f64, _>(cell) {
        return if v.is_finite() {
            Cell::Value(v)
        } else if v.is_nan() {
            Cell::Missing
        } else {
            Cell::NonFinite
        };
    }
    if cell.len() <= 4 {
        let lower = cell.to_ascii_lowercase();
        if MISSING_TOKENS
            .iter()
            .any(|t| t.as_bytes() == lower.as_slice())
        {
            return Cell::Missing;
        }
    }
    Cell::Text
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map(|p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => Error::parse(
            Position {
                path: path.to_path_buf(),
                line,
                column: None,
            },
            format!("malformed table: {other:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_parse_as_expected() {
        assert_eq!(parse_cell(b"1.5"), Cell::Value(1.5));
        assert_eq!(parse_cell(b"-2e3"), Cell::Value(-2000.0));
        assert_eq!(parse_cell(b""), Cell::Missing);
        assert_eq!(parse_cell(b"NA"), Cell::Missing);
        assert_eq!(parse_cell(b"NaN"), Cell::Missing);
        assert_eq!(parse_cell(b"inf"), Cell::NonFinite);
        assert_eq!(parse_cell(b"-inf"), Cell::NonFinite);
        assert_eq!(parse_cell(b"1e400"), Cell::NonFinite);
        assert_eq!(parse_cell(b"1e308"), Cell::Value(1e308));
        assert_eq!(parse_cell(b"abc"), Cell::Text);
        assert_eq!(parse_cell(b"1.2.3"), Cell::Text);
    }

    fn read(text: &str, role: Role, strict: bool) -> Result<Table> {
        let opts = TableOptions {
            strict,
            ..TableOptions::default()
        };
        read_table_str(text, Path::new("t.csv"), &opts, role)
    }

    #[test]
    fn gzip_tables_are_read_by_content_with_the_name_s_delimiter() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let tsv = dir.path().join("t.tsv.gz");
        std::fs::write(&tsv, gz("id\ta\tb\nx\t1\t2\n")).unwrap();
        let t = read_table(&tsv, &TableOptions::default(), Role::Reference).unwrap();
        assert_eq!(
            (t.feature_names(), t.row(0)),
            (&["a".into(), "b".into()][..], &[1.0, 2.0][..])
        );
        // A gzip file whose name does not say so.
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, gz("id,a\nx,3\n")).unwrap();
        let t = read_table(&csv, &TableOptions::default(), Role::Reference).unwrap();
        assert_eq!(t.row(0), &[3.0]);
        assert_eq!(
            TableOptions::default().delimiter_for(Path::new("x.TAB.bgz")),
            b'\t'
        );
        assert_eq!(
            TableOptions::default().delimiter_for(Path::new("x.csv.gz")),
            b','
        );
    }

    #[test]
    fn a_field_spanning_lines_is_refused() {
        let err = read("id,a\n\"x,1\ny,2\n", Role::Patients, false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.csv:2:id: a quoted field spans")
        );
    }

    #[test]
    fn strict_patients_refuse_non_finite_and_lenient_note_it() {
        let t = read("id,a,b\nx,inf,1\n", Role::Patients, false).unwrap();
        assert!(t.values[0].is_nan());
        assert_eq!(t.notes[0], "a: non-finite \"inf\" read as missing");
        let err = read("id,a,b\nx,inf,1\n", Role::Patients, true).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.csv:2:a: non-finite value \"inf\"")
        );
    }

    #[test]
    fn reference_refuses_huge_values_and_empty_rows() {
        let err = read("id,a\nx,1e200\ny,2\n", Role::Reference, false).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.csv:2:a: value \"1e200\" is too large")
        );
        let err = read("id,a,b\nx,1,2\ny,,NA\n", Role::Reference, false).unwrap_err();
        assert!(err.to_string().starts_with("t.csv:3: reference row \"y\""));
    }

    #[test]
    fn retained_features_skip_other_columns() {
        let opts = TableOptions::default();
        let input: Box<dyn Read + Send> =
            Box::new(std::io::Cursor::new(b"id,a,junk,b\nx,1,zz,2\n".to_vec()));
        let mut r =
            TableReader::from_reader(input, Path::new("t.csv"), &opts, Role::Patients).unwrap();
        let missing = r.retain_features(&["b".to_string(), "a".to_string(), "c".to_string()]);
        assert_eq!(missing, vec!["c".to_string()]);
        assert_eq!(r.feature_names(), vec!["a".to_string(), "b".to_string()]);
        let t = r.next_chunk(10).unwrap().unwrap();
        assert_eq!(t.values, vec![1.0, 2.0]);
        assert_eq!(t.notes[0], "");
    }

    #[test]
    fn long_values_are_cut_in_messages() {
        let long = "x".repeat(500);
        let q = quote_value(long.as_bytes());
        assert!(q.len() < 100 && q.ends_with("(500 bytes)"), "{q}");
    }
}
