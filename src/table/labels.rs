//! Sample labels beside genotypes or PCs (`--labels FILE`).
//!
//! A CSV or TSV file (gzip allowed; tab for `.tsv`/`.tab`/`.txt`, else
//! comma) with a header, whose first column is the sample id; its other
//! columns can be named as the group (`--group-col`, `--calibrate-by`).
//! [`Labels::attach`] gives each row of a table its label: rows for samples
//! the table does not have are counted and ignored, and a sample without a
//! label row gets the empty label (no group).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Table;
use super::input::open_input;
use crate::error::{Error, Position, Result};

/// A labels file: a value per (sample, column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    source: PathBuf,
    header: Vec<String>,
    rows: HashMap<String, Vec<String>>,
}

/// What [`Labels::attach`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelMatch {
    /// Label rows for samples that are not in the table (ignored).
    pub n_unused_rows: usize,
    /// Table rows without a label row, in table order.
    pub unlabelled: Vec<String>,
}

impl Labels {
    /// Reads a labels file.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when it cannot be read;
    /// [`crate::ErrorKind::Parse`] for a malformed line, an empty or
    /// duplicate sample id (naming the line); [`crate::ErrorKind::Schema`]
    /// when there is no header or only the id column.
    pub fn read(path: &Path) -> Result<Labels> {
        let delimiter = super::TableOptions::default().delimiter_for(&strip_gz(path));
        let input = open_input(path)?;
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(input);
        let mut header: Vec<String> = Vec::new();
        let mut rows: HashMap<String, Vec<String>> = HashMap::new();
        let mut first_line: HashMap<String, u64> = HashMap::new();
        for record in reader.records() {
            let record = record.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                Error::parse(
                    Position::line(path, line),
                    format!("malformed labels file: {e}"),
                )
            })?;
            let line = record.position().map_or(0, |p| p.line());
            if header.is_empty() {
                header = record.iter().map(str::to_string).collect();
                if header.len() < 2 {
                    return Err(Error::schema(
                        Position::line(path, line),
                        "a labels file needs the sample id column and at least one label column (is the delimiter right?)",
                    ));
                }
                continue;
            }
            let id = record.get(0).unwrap_or("").to_string();
            if id.is_empty() {
                return Err(Error::parse(
                    Position::cell(path, line, &header[0]),
                    "empty sample id",
                ));
            }
            if let Some(first) = first_line.insert(id.clone(), line) {
                return Err(Error::parse(
                    Position::cell(path, line, &header[0]),
                    format!("duplicate sample id {id:?} (first on line {first})"),
                ));
            }
            rows.insert(id, record.iter().skip(1).map(str::to_string).collect());
        }
        if header.is_empty() {
            return Err(Error::schema(
                Position::file(path),
                "empty labels file: a header line is required",
            ));
        }
        Ok(Labels {
            source: path.to_path_buf(),
            header,
            rows,
        })
    }

    /// The file read.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Label column names (the id column excluded).
    pub fn columns(&self) -> &[String] {
        &self.header[1..]
    }

    /// Number of label rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no label rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The value of `column` for sample `id`, if it has a label row.
    pub fn get(&self, id: &str, column: &str) -> Option<&str> {
        let c = self.columns().iter().position(|h| h == column)?;
        self.rows.get(id).and_then(|r| r.get(c)).map(String::as_str)
    }

    /// Gives each row of `table` its value of `column` as its group (empty
    /// for a sample without a label row).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Schema`] when `column` is not a label column.
    pub fn attach(&self, table: Table, column: &str) -> Result<(Table, LabelMatch)> {
        let Some(c) = self.columns().iter().position(|h| h == column) else {
            return Err(Error::schema(
                Position::line(&self.source, 1),
                format!(
                    "group column {column:?} is not in the labels file (its label columns: {})",
                    self.columns().join(", ")
                ),
            ));
        };
        let mut found = 0usize;
        let mut unlabelled = Vec::new();
        let groups: Vec<String> = table
            .ids
            .iter()
            .map(|id| match self.rows.get(id) {
                Some(r) => {
                    found += 1;
                    r.get(c).cloned().unwrap_or_default()
                }
                None => {
                    unlabelled.push(id.clone());
                    String::new()
                }
            })
            .collect();
        let table = table.with_groups(groups)?;
        Ok((
            table,
            LabelMatch {
                n_unused_rows: self.rows.len().saturating_sub(found),
                unlabelled,
            },
        ))
    }
}

fn strip_gz(path: &Path) -> PathBuf {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("gz") => path.with_extension(""),
        _ => path.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_attach_by_id_and_count_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l.tsv");
        std::fs::write(
            &p,
            "sample\tpop\tsuper\nb\tGBR\tEUR\nz\tYRI\tAFR\na\tCHB\tEAS\n",
        )
        .unwrap();
        let l = Labels::read(&p).unwrap();
        assert_eq!(l.columns(), &["pop", "super"]);
        let t = Table::from_rows(
            vec!["a".into(), "b".into(), "c".into()],
            vec!["x".into()],
            vec![1.0, 2.0, 3.0],
        )
        .unwrap();
        let (t, m) = l.attach(t, "super").unwrap();
        assert_eq!(t.groups.unwrap(), vec!["EAS", "EUR", ""]);
        assert_eq!(m.n_unused_rows, 1);
        assert_eq!(m.unlabelled, vec!["c".to_string()]);
        std::fs::write(&p, "sample\tpop\nb\tGBR\nb\tYRI\n").unwrap();
        let e = Labels::read(&p).unwrap_err().to_string();
        assert!(
            e.contains("l.tsv:3:sample: duplicate sample id \"b\""),
            "{e}"
        );
    }
}
