//! Input tables: CSV/TSV files of cohort members or patients.
//!
//! First step of the pipeline. [`read`] streams a delimited file into a
//! [`Table`] (row-major `f64` values, `NaN` for a missing cell) without keeping
//! per-cell strings; [`schema`] matches a table's feature columns to a fitted
//! model's features by name.

pub mod bcf;
pub mod blocks;
pub mod genotypes;
pub mod input;
pub mod labels;
pub mod memory;
pub mod plink;
pub mod read;
pub mod schema;
pub mod variants;
pub mod vcf;
pub mod whitespace;

pub use genotypes::{Dosages, Genotypes};
pub use input::InputFormat;
pub use memory::{MemoryCell, TableBuilder};
pub use read::{TableOptions, TableReader, read_table, read_table_str};
pub use schema::{FeatureMap, preview_names};
pub use variants::{MatchOptions, MatchReport, Variant};

use std::path::PathBuf;

/// Which kind of file is being read; decides how strict the reader is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A reference cohort: every defect is an error.
    Reference,
    /// Patients to assess: recoverable defects become missing values and a note,
    /// unless [`TableOptions::strict`] is set.
    Patients,
}

/// A parsed table: ids, optional group labels and a row-major matrix of features.
///
/// Built by the readers ([`read_table`], [`TableReader`]) or by the checked
/// constructors [`Table::from_rows`] and [`Table::with_groups`]; the fields are
/// private, so every table holds one id, line and note per row, one group
/// label per row when it has groups, and `n_rows × n_features` values.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// The file the table came from (`-` for standard input).
    pub(crate) source: PathBuf,
    /// Row ids, in file order.
    pub(crate) ids: Vec<String>,
    /// Group label of each row, when a group column was named.
    pub(crate) groups: Option<Vec<String>>,
    /// Feature column names, in file order.
    pub(crate) feature_names: Vec<String>,
    /// Row-major values, `ids.len() × feature_names.len()`; `NaN` marks a missing value.
    pub(crate) values: Vec<f64>,
    /// 1-based line number of each row in the file.
    pub(crate) lines: Vec<u64>,
    /// Per-row notes on recovered defects (empty string when none).
    pub(crate) notes: Vec<String>,
}

impl Table {
    /// The file the table came from (`-` for standard input, `<memory>` for
    /// a table built by [`Table::from_rows`]).
    pub fn source(&self) -> &std::path::Path {
        &self.source
    }

    /// Row ids, in file order.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// The group label of each row, when the table has a group column.
    pub fn groups(&self) -> Option<&[String]> {
        self.groups.as_deref()
    }

    /// Feature column names, in file order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Row-major values, `n_rows() × n_features()`; `NaN` marks a missing value.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The 1-based line number of each row in its file.
    pub fn lines(&self) -> &[u64] {
        &self.lines
    }

    /// The note on each row's recovered defects (empty when none).
    pub fn notes(&self) -> &[String] {
        &self.notes
    }

    /// The values, to change in place (the shape cannot change).
    pub fn values_mut(&mut self) -> &mut [f64] {
        &mut self.values
    }

    /// The row ids, to change in place (the number of rows cannot change).
    pub fn ids_mut(&mut self) -> &mut [String] {
        &mut self.ids
    }

    /// The same table without its group labels.
    pub fn without_groups(mut self) -> Table {
        self.groups = None;
        self
    }

    /// Appends the rows of `other` (ids, values, groups, lines and notes).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Schema`] when `other` has other feature columns
    /// (names or order), or has group labels where this table has none or
    /// the reverse; `self` is then unchanged.
    pub fn append(&mut self, other: Table) -> crate::Result<()> {
        if other.feature_names != self.feature_names {
            return Err(crate::Error::schema(
                crate::Position::file(&other.source),
                "cannot append a table with other feature columns",
            ));
        }
        if other.groups.is_some() != self.groups.is_some() {
            return Err(crate::Error::schema(
                crate::Position::file(&other.source),
                "cannot append a table with group labels to one without, or the reverse",
            ));
        }
        self.ids.extend(other.ids);
        self.values.extend(other.values);
        if let (Some(g), Some(o)) = (self.groups.as_mut(), other.groups) {
            g.extend(o);
        }
        self.lines.extend(other.lines);
        self.notes.extend(other.notes);
        Ok(())
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.ids.len()
    }

    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The values of row `i` (`NaN` = missing).
    ///
    /// # Panics
    /// If `i >= n_rows()`.
    pub fn row(&self, i: usize) -> &[f64] {
        let p = self.n_features();
        &self.values[i * p..(i + 1) * p]
    }

    /// Builds a table from in-memory values (ids, feature names and row-major values).
    ///
    /// # Errors
    /// [`crate::ErrorKind::DimensionMismatch`] when `values.len() != ids.len() * feature_names.len()`.
    pub fn from_rows(
        ids: Vec<String>,
        feature_names: Vec<String>,
        values: Vec<f64>,
    ) -> crate::Result<Table> {
        if values.len() != ids.len() * feature_names.len() {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "table values",
                expected: ids.len() * feature_names.len(),
                found: values.len(),
            }
            .into());
        }
        let n = ids.len();
        Ok(Table {
            source: PathBuf::from("<memory>"),
            lines: (2..n as u64 + 2).collect(),
            notes: vec![String::new(); n],
            ids,
            groups: None,
            feature_names,
            values,
        })
    }

    /// Names the file the table came from (used in messages).
    pub fn with_source(mut self, source: impl Into<PathBuf>) -> Table {
        self.source = source.into();
        self
    }

    /// Attaches group labels (one per row).
    ///
    /// # Errors
    /// [`crate::ErrorKind::DimensionMismatch`] when the lengths differ.
    pub fn with_groups(mut self, groups: Vec<String>) -> crate::Result<Table> {
        if groups.len() != self.n_rows() {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "group labels",
                expected: self.n_rows(),
                found: groups.len(),
            }
            .into());
        }
        self.groups = Some(groups);
        Ok(self)
    }

    /// A new table holding the given rows, in the given order.
    pub fn select_rows(&self, rows: &[usize]) -> Table {
        let p = self.n_features();
        let mut values = Vec::with_capacity(rows.len() * p);
        for &r in rows {
            values.extend_from_slice(self.row(r));
        }
        Table {
            source: self.source.clone(),
            ids: rows.iter().map(|&r| self.ids[r].clone()).collect(),
            groups: self
                .groups
                .as_ref()
                .map(|g| rows.iter().map(|&r| g[r].clone()).collect()),
            feature_names: self.feature_names.clone(),
            values,
            lines: rows.iter().map(|&r| self.lines[r]).collect(),
            notes: rows.iter().map(|&r| self.notes[r].clone()).collect(),
        }
    }

    /// A new table with only the named feature columns, in the given order.
    /// Names that are not in the table are skipped.
    pub fn select_features(&self, names: &[String]) -> Table {
        let cols: Vec<usize> = names
            .iter()
            .filter_map(|n| self.feature_names.iter().position(|f| f == n))
            .collect();
        let p = self.n_features();
        let mut values = Vec::with_capacity(self.n_rows() * cols.len());
        for i in 0..self.n_rows() {
            for &c in &cols {
                values.push(self.values[i * p + c]);
            }
        }
        Table {
            feature_names: cols
                .iter()
                .map(|&c| self.feature_names[c].clone())
                .collect(),
            values,
            ..self.clone()
        }
    }
}
