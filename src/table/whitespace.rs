//! Whitespace-delimited tables: plink2 `.eigenvec`, FRAPOSA `.pcs`,
//! pgsc_calc `*_popsimilarity.txt.gz` (gzip allowed).
//!
//! Fields are split on runs of spaces or tabs. The first line is a header
//! when it starts with `#` (plink2: `#FID IID PC1 ...`; the `#` is dropped)
//! or when any of its fields after the second is not a number; otherwise
//! there is no header and the columns are `FID IID PC1 PC2 ...` (plink 1.9
//! `.eigenvec`, FRAPOSA `.pcs`). The id is the `--id-col` column, else `IID`,
//! else the first column. When the header names columns `PC1`, `PC2`, ...
//! those are the features and every other column is a label (usable as
//! `--group-col`); otherwise every column but the id, the group and the
//! excluded ones is a feature. Errors name the file, line and column.

use std::collections::HashMap;
use std::path::Path;

use super::read::{Cell, parse_cell};
use super::{Role, Table, TableOptions};
use crate::error::{Error, Position, Result};

/// Reads a whitespace-delimited table.
///
/// # Errors
/// [`crate::ErrorKind::Io`] when the file cannot be read;
/// [`crate::ErrorKind::Schema`] for an unknown id, group or excluded column or
/// no feature; [`crate::ErrorKind::Parse`] for a ragged line, a cell that is
/// not a number, or (reference) a duplicate id.
pub fn read_whitespace(path: &Path, options: &TableOptions, role: Role) -> Result<Table> {
    let bytes = super::input::read_all(path)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Error::parse(Position::file(path), "the file is not valid UTF-8"))?;
    parse_whitespace(&text, path, options, role)
}

/// [`read_whitespace`] on text in memory; `path` names it in messages.
///
/// # Errors
/// As [`read_whitespace`].
pub fn parse_whitespace(
    text: &str,
    path: &Path,
    options: &TableOptions,
    role: Role,
) -> Result<Table> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l))
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((first_no, first)) = lines.next() else {
        return Err(Error::schema(Position::file(path), "empty file"));
    };
    let first_fields: Vec<&str> = first.trim_start_matches('#').split_whitespace().collect();
    let is_header = first.starts_with('#')
        || first_fields
            .iter()
            .skip(2)
            .any(|f| !matches!(parse_cell(f.as_bytes()), Cell::Value(_) | Cell::Missing));
    let header: Vec<String> = if is_header {
        first_fields.iter().map(|s| s.to_string()).collect()
    } else {
        let mut h = vec!["FID".to_string(), "IID".to_string()];
        h.extend((1..first_fields.len().saturating_sub(1)).map(|k| format!("PC{k}")));
        h
    };
    if header.len() < 2 {
        return Err(Error::schema(
            Position::line(path, first_no),
            "a PC table needs an id column and at least one value column",
        ));
    }
    let find = |what: &str, name: &str| -> Result<usize> {
        header.iter().position(|h| h == name).ok_or_else(|| {
            Error::schema(
                Position::line(path, first_no),
                format!(
                    "{what} column {name:?} is not in the header ({})",
                    header.join(" ")
                ),
            )
        })
    };
    let id_idx = match &options.id_col {
        Some(n) => find("id", n)?,
        None => header.iter().position(|h| h == "IID").unwrap_or(0),
    };
    let group_idx = match &options.group_col {
        Some(n) => Some(find("group", n)?),
        None => None,
    };
    let mut excluded = vec![false; header.len()];
    for n in &options.exclude {
        excluded[find("excluded", n)?] = true;
    }
    // `get`, not slicing: a header field may start with a multi-byte character.
    let is_pc = |h: &str| {
        h.len() > 2
            && h.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("PC"))
            && h.bytes().skip(2).all(|b| b.is_ascii_digit())
    };
    let has_pcs = header.iter().any(|h| is_pc(h));
    let features: Vec<usize> = (0..header.len())
        .filter(|&j| j != id_idx && Some(j) != group_idx && !excluded[j])
        .filter(|&j| {
            if has_pcs {
                is_pc(&header[j])
            } else {
                header[j] != "FID"
            }
        })
        .collect();
    if features.is_empty() {
        return Err(Error::schema(
            Position::line(path, first_no),
            "no feature columns: every column is the id, the group or excluded",
        ));
    }
    let mut ids = Vec::new();
    let mut groups = Vec::new();
    let mut values = Vec::new();
    let mut seen: HashMap<String, u64> = HashMap::new();
    let body: Box<dyn Iterator<Item = (u64, &str)>> = if is_header {
        Box::new(lines)
    } else {
        Box::new(std::iter::once((first_no, first)).chain(lines))
    };
    for (no, line) in body {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != header.len() {
            return Err(Error::parse(
                Position::line(path, no),
                format!(
                    "ragged line: {} fields, the header has {}",
                    f.len(),
                    header.len()
                ),
            ));
        }
        let id = f[id_idx].to_string();
        if role == Role::Reference
            && let Some(prev) = seen.insert(id.clone(), no)
        {
            return Err(Error::parse(
                Position::cell(path, no, &header[id_idx]),
                format!("duplicate id {id:?} (first on line {prev})"),
            ));
        }
        for &j in &features {
            values.push(match parse_cell(f[j].as_bytes()) {
                Cell::Value(v) => v,
                Cell::Missing => f64::NAN,
                _ => {
                    return Err(Error::parse(
                        Position::cell(path, no, &header[j]),
                        format!("not a number: {:?}", f[j]),
                    ));
                }
            });
        }
        if let Some(g) = group_idx {
            groups.push(f[g].to_string());
        }
        ids.push(id);
    }
    let names = features.iter().map(|&j| header[j].clone()).collect();
    let table = Table::from_rows(ids, names, values)?.with_source(path);
    if group_idx.is_some() {
        table.with_groups(groups)
    } else {
        Ok(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, opts: &TableOptions) -> Result<Table> {
        parse_whitespace(text, Path::new("x.eigenvec"), opts, Role::Reference)
    }

    /// Found by fuzzing (`whitespace_reader`, kept as
    /// `fuzz/regressions/whitespace_reader/crash-multibyte-header-field`):
    /// a header field whose second byte is inside a multi-byte character
    /// panicked ("byte index 2 is not a char boundary") while checking for
    /// `PC1`, `PC2`, ... names.
    #[test]
    fn a_header_field_starting_with_a_multibyte_character_is_no_panic() {
        let o = TableOptions::default();
        let t = read("IID g x\u{71c}\u{7c7} z\u{e9}\na 0 1 2\nc 0 3 4\n", &o).unwrap();
        assert_eq!(t.feature_names, vec!["g", "x\u{71c}\u{7c7}", "z\u{e9}"]);
        let e = read("IID x \u{e9}PC1\na 1 2\nb 3 x\n", &o)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.eigenvec:3:"), "{e}");
        let t = read("IID PC1 \u{e9}PC2 P\u{e9}1\na 1 2 3\nb 4 5 6\n", &o).unwrap();
        assert_eq!(t.feature_names, vec!["PC1"]);
    }

    #[test]
    fn plink2_fraposa_and_pgsc_calc_layouts() {
        let o = TableOptions::default();
        let t = read("#FID\tIID\tPC1\tPC2\n0 a 0.1 0.2\n0  b\t-0.3 0.4\n", &o).unwrap();
        assert_eq!(t.ids, vec!["a", "b"]);
        assert_eq!(t.feature_names, vec!["PC1", "PC2"]);
        assert_eq!(t.row(1), &[-0.3, 0.4]);
        let t = read("f a 1 2 3\nf b 4 5 6\n", &o).unwrap();
        assert_eq!(t.feature_names, vec!["PC1", "PC2", "PC3"]);
        assert_eq!(t.ids, vec!["a", "b"]);
        let opts = TableOptions {
            group_col: Some("SuperPop".into()),
            ..TableOptions::default()
        };
        let t = read(
            "sampleset IID PC1 PC2 SuperPop RF_P_EUR\nref a 1 2 EUR 0.9\nref b 3 4 AFR 0.1\n",
            &opts,
        )
        .unwrap();
        assert_eq!(t.feature_names, vec!["PC1", "PC2"]);
        assert_eq!(t.groups.unwrap(), vec!["EUR", "AFR"]);
    }

    #[test]
    fn errors_name_line_and_column() {
        let o = TableOptions::default();
        let e = read("#FID IID PC1\n0 a x\n", &o).unwrap_err().to_string();
        assert_eq!(e, "x.eigenvec:2:PC1: not a number: \"x\"");
        let e = read("#FID IID PC1\n0 a 1 2\n", &o).unwrap_err().to_string();
        assert!(e.starts_with("x.eigenvec:2: ragged line"), "{e}");
    }
}
