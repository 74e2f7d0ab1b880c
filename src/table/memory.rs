//! Tables from in-memory data (arrays, data frames) with the file reader's
//! checks and messages.
//!
//! A [`TableBuilder`] holds `n` rows of ids and a row-major matrix of feature
//! values, all missing until set, column by column or all rows at once. Each
//! cell goes through the same checks as a cell of a file (see
//! [`super::read`]): a reference refuses text, non-finite and overlarge
//! values, duplicate and empty ids and rows without any observed value; a
//! patient's defects become missing values with a note unless `strict`.
//!
//! Rows are numbered from 0 in messages; a [`crate::Position`]'s `line` is
//! the row number plus one (lines are 1-based), its path names the source
//! (e.g. `<DataFrame>`).

use std::collections::HashMap;
use std::path::PathBuf;

use super::read::{CellSite, add_note, feature_value, parse_cell, quote_value};
use super::{Role, Table};
use crate::error::{Error, ErrorKind, Position, Result};

/// One cell of an in-memory column that is not a plain float.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MemoryCell<'a> {
    /// A missing value (`None`, `NaN`, `pd.NA`, ...).
    Missing,
    /// A number (non-finite numbers are defects, as in a file).
    Number(f64),
    /// Text, parsed as a file's cell would be (`"1.5"` is a number, `"NA"` missing).
    Text(&'a str),
}

/// Builds a [`Table`] from in-memory columns; see the [module docs](self).
#[derive(Debug)]
pub struct TableBuilder {
    table: Table,
    role: Role,
    strict: bool,
    id_name: String,
    n_observed: Vec<u32>,
}

impl TableBuilder {
    /// `ids.len()` rows and one column per feature, every value missing.
    /// `source` names the table in messages, `id_name` the id column. A
    /// reference is always strict.
    ///
    /// # Errors
    /// [`ErrorKind::Schema`] when a feature name is repeated or there is no feature.
    pub fn new(
        source: impl Into<PathBuf>,
        role: Role,
        strict: bool,
        id_name: impl Into<String>,
        ids: Vec<String>,
        feature_names: Vec<String>,
    ) -> Result<TableBuilder> {
        let source = source.into();
        if feature_names.is_empty() {
            return Err(Error::schema(
                Position::file(&source),
                "no feature columns: every column is the id, the group or excluded",
            ));
        }
        let mut seen = HashMap::with_capacity(feature_names.len());
        for name in &feature_names {
            if seen.insert(name.as_str(), ()).is_some() {
                return Err(Error::schema(
                    Position::file(&source),
                    format!("duplicate column name {name:?}"),
                ));
            }
        }
        let n = ids.len();
        let p = feature_names.len();
        Ok(TableBuilder {
            table: Table {
                source,
                lines: (1..=n as u64).collect(),
                notes: vec![String::new(); n],
                values: vec![f64::NAN; n * p],
                ids,
                groups: None,
                feature_names,
            },
            role,
            strict: strict || role == Role::Reference,
            id_name: id_name.into(),
            n_observed: vec![0; n],
        })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.table.n_rows()
    }

    /// Attaches a group label to each row.
    ///
    /// # Errors
    /// [`ErrorKind::DimensionMismatch`] when there is not one label per row.
    pub fn groups(&mut self, groups: Vec<String>) -> Result<()> {
        if groups.len() != self.n_rows() {
            return Err(ErrorKind::DimensionMismatch {
                what: "group labels",
                expected: self.n_rows(),
                found: groups.len(),
            }
            .into());
        }
        self.table.groups = Some(groups);
        Ok(())
    }

    fn check(
        &mut self,
        i: usize,
        j: usize,
        cell: super::read::Cell,
        text: &dyn Fn() -> String,
    ) -> Result<f64> {
        let table = &mut self.table;
        let column = &table.feature_names[j];
        let source = &table.source;
        let value = feature_value(
            cell,
            text,
            &CellSite {
                role: self.role,
                strict: self.strict,
                position: &|| Position::cell(source, i as u64 + 1, column),
                column,
            },
            &mut table.notes[i],
        )?;
        if !value.is_nan() {
            self.n_observed[i] += 1;
        }
        Ok(value)
    }

    /// Sets every value at once from a row-major matrix (`n_rows × n_features`,
    /// `NaN` = missing), taking the buffer without copying it.
    ///
    /// # Errors
    /// [`ErrorKind::DimensionMismatch`] for a wrong length; as a file's cell
    /// for a bad value ([`ErrorKind::Parse`] naming the row and column).
    pub fn rows(&mut self, values: Vec<f64>) -> Result<()> {
        let p = self.table.n_features();
        if values.len() != self.n_rows() * p {
            return Err(ErrorKind::DimensionMismatch {
                what: "table values",
                expected: self.n_rows() * p,
                found: values.len(),
            }
            .into());
        }
        self.table.values = values;
        for i in 0..self.n_rows() {
            let mut observed = 0u32;
            for j in 0..p {
                let v = self.table.values[i * p + j];
                if v.is_nan() {
                    continue;
                }
                if v.is_finite()
                    && (self.role == Role::Patients
                        || v.abs() <= super::read::MAX_REFERENCE_MAGNITUDE)
                {
                    observed += 1;
                    continue;
                }
                let checked = self.check(i, j, float_cell(v), &|| float_text(v))?;
                self.table.values[i * p + j] = checked;
                // `check` counted an accepted value already.
                if !checked.is_nan() {
                    self.n_observed[i] -= 1;
                    observed += 1;
                }
            }
            self.n_observed[i] += observed;
        }
        Ok(())
    }

    /// Sets feature column `j` from floats (`NaN` = missing).
    ///
    /// # Errors
    /// As [`TableBuilder::rows`]; [`ErrorKind::DimensionMismatch`] when
    /// `j` is out of range or there is not one value per row.
    pub fn column(&mut self, j: usize, values: &[f64]) -> Result<()> {
        self.check_column(j, values.len())?;
        let p = self.table.n_features();
        for (i, &v) in values.iter().enumerate() {
            let value = if v.is_nan() {
                f64::NAN
            } else if v.is_finite()
                && (self.role == Role::Patients || v.abs() <= super::read::MAX_REFERENCE_MAGNITUDE)
            {
                self.n_observed[i] += 1;
                v
            } else {
                self.check(i, j, float_cell(v), &|| float_text(v))?
            };
            self.table.values[i * p + j] = value;
        }
        Ok(())
    }

    /// Sets feature column `j` from cells of mixed kinds (e.g. a data frame's
    /// `object` column): text is parsed as in a file.
    ///
    /// # Errors
    /// As [`TableBuilder::column`].
    pub fn cells(&mut self, j: usize, cells: &[MemoryCell<'_>]) -> Result<()> {
        self.check_column(j, cells.len())?;
        let p = self.table.n_features();
        for (i, cell) in cells.iter().enumerate() {
            let value = match *cell {
                MemoryCell::Missing => f64::NAN,
                MemoryCell::Number(v) => self.check(i, j, float_cell(v), &|| float_text(v))?,
                MemoryCell::Text(s) => {
                    let trimmed = s.trim();
                    self.check(i, j, parse_cell(trimmed.as_bytes()), &|| {
                        quote_value(trimmed.as_bytes())
                    })?
                }
            };
            self.table.values[i * p + j] = value;
        }
        Ok(())
    }

    fn check_column(&self, j: usize, len: usize) -> Result<()> {
        if j >= self.table.n_features() {
            return Err(ErrorKind::DimensionMismatch {
                what: "feature column",
                expected: self.table.n_features(),
                found: j + 1,
            }
            .into());
        }
        if len != self.n_rows() {
            return Err(ErrorKind::DimensionMismatch {
                what: "column values",
                expected: self.n_rows(),
                found: len,
            }
            .into());
        }
        Ok(())
    }

    /// The table, after the checks on whole rows: empty ids, and for a
    /// reference duplicate ids and rows without any observed value.
    ///
    /// # Errors
    /// [`ErrorKind::Parse`] naming the row (and the id column).
    pub fn finish(mut self) -> Result<Table> {
        let source = self.table.source.clone();
        for (i, id) in self.table.ids.iter().enumerate() {
            if id.is_empty() {
                if self.strict {
                    return Err(Error::parse(
                        Position::cell(&source, i as u64 + 1, &self.id_name),
                        "empty id",
                    ));
                }
                add_note(&mut self.table.notes[i], "empty id".to_string());
            }
        }
        if self.role == Role::Reference {
            for (i, &obs) in self.n_observed.iter().enumerate() {
                if obs == 0 {
                    return Err(Error::parse(
                        Position::line(&source, i as u64 + 1),
                        format!(
                            "reference row {:?} has no observed feature value (every cell is missing); remove the row",
                            self.table.ids[i]
                        ),
                    ));
                }
            }
            let mut seen: HashMap<&str, usize> = HashMap::with_capacity(self.n_rows());
            for (i, id) in self.table.ids.iter().enumerate() {
                if let Some(first) = seen.insert(id.as_str(), i) {
                    return Err(Error::parse(
                        Position::cell(&source, i as u64 + 1, &self.id_name),
                        format!("duplicate id {id:?} (first seen on row {first})"),
                    ));
                }
            }
        }
        Ok(self.table)
    }
}

fn float_cell(v: f64) -> super::read::Cell {
    if v.is_nan() {
        super::read::Cell::Missing
    } else if v.is_finite() {
        super::read::Cell::Value(v)
    } else {
        super::read::Cell::NonFinite
    }
}

fn float_text(v: f64) -> String {
    quote_value(format!("{v}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn builder(role: Role, strict: bool) -> TableBuilder {
        TableBuilder::new(
            "<DataFrame>",
            role,
            strict,
            "id",
            names(&["a", "b", "c"]),
            names(&["x", "y"]),
        )
        .expect("builder")
    }

    #[test]
    fn rows_and_columns_give_the_same_table() {
        let values = vec![1.0, 2.0, f64::NAN, 4.0, 5.0, 6.0];
        let mut by_rows = builder(Role::Reference, true);
        by_rows.rows(values.clone()).expect("rows");
        let mut by_cols = builder(Role::Reference, true);
        by_cols.column(0, &[1.0, f64::NAN, 5.0]).expect("x");
        by_cols
            .cells(
                1,
                &[
                    MemoryCell::Text(" 2 "),
                    MemoryCell::Number(4.0),
                    MemoryCell::Number(6.0),
                ],
            )
            .expect("y");
        let a = by_rows.finish().expect("table");
        let b = by_cols.finish().expect("table");
        assert_eq!(format!("{:?}", a.values), format!("{values:?}"));
        assert_eq!(format!("{:?}", a.values), format!("{:?}", b.values));
        assert_eq!(a.lines, vec![1, 2, 3]);
    }

    #[test]
    fn a_reference_names_the_cell_of_text_as_a_file_does() {
        let mut b = builder(Role::Reference, false);
        let err = b
            .cells(
                1,
                &[
                    MemoryCell::Number(1.0),
                    MemoryCell::Text("abc"),
                    MemoryCell::Missing,
                ],
            )
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "<DataFrame>:2:y: not a number: \"abc\" (a non-numeric column can be left out with --exclude y)"
        );
        let mut b = builder(Role::Reference, false);
        let err = b.column(0, &[1.0, f64::INFINITY, 2.0]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("<DataFrame>:2:x: non-finite value \"inf\""),
            "{err}"
        );
    }

    #[test]
    fn patients_defects_become_missing_with_a_note() {
        let mut b = builder(Role::Patients, false);
        b.cells(
            0,
            &[
                MemoryCell::Text("abc"),
                MemoryCell::Number(f64::INFINITY),
                MemoryCell::Text("NA"),
            ],
        )
        .expect("lenient");
        let t = b.finish().expect("table");
        assert!(t.values[0].is_nan() && t.values[2].is_nan() && t.values[4].is_nan());
        assert_eq!(t.notes[0], "x: text \"abc\" read as missing");
        assert_eq!(t.notes[1], "x: non-finite \"inf\" read as missing");
        assert_eq!(t.notes[2], "");
        let mut b = builder(Role::Patients, true);
        assert!(b.column(1, &[1.0, f64::NEG_INFINITY, 0.0]).is_err());
    }

    #[test]
    fn a_reference_refuses_duplicate_ids_and_empty_rows() {
        let mut b = TableBuilder::new(
            "<DataFrame>",
            Role::Reference,
            true,
            "id",
            names(&["a", "b", "a"]),
            names(&["x"]),
        )
        .expect("builder");
        b.rows(vec![1.0, 2.0, 3.0]).expect("rows");
        assert_eq!(
            b.finish().unwrap_err().to_string(),
            "<DataFrame>:3:id: duplicate id \"a\" (first seen on row 0)"
        );
        let mut b = builder(Role::Reference, true);
        b.rows(vec![1.0, 2.0, f64::NAN, f64::NAN, 5.0, 6.0])
            .expect("rows");
        assert!(
            b.finish()
                .unwrap_err()
                .to_string()
                .starts_with("<DataFrame>:2: reference row \"b\" has no observed")
        );
    }
}
