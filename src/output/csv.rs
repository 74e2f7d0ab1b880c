//! CSV/TSV rows: the columns and each assessment's values, shared by the
//! file writer and by in-memory tables (the Python data frame).

use std::borrow::Cow;
use std::io::{self, Write};

use super::{CSV_COLUMNS, fmt_f64};
use crate::model::Model;
use crate::verdict::Assessment;

/// What a column of the CSV output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// Text (ids, verdicts, notes); empty when there is nothing to say.
    Text,
    /// A floating-point number; `NaN` is written as an empty cell.
    Float,
    /// A count; `None` is written as an empty cell.
    Count,
}

/// A column of the CSV output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Header name.
    pub name: &'static str,
    /// What the column holds.
    pub kind: ColumnKind,
}

/// One cell of a CSV row, typed as its [`Column`] says.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// A [`ColumnKind::Text`] cell.
    Text(Cow<'a, str>),
    /// A [`ColumnKind::Float`] cell (`NaN` = empty).
    Float(f64),
    /// A [`ColumnKind::Count`] cell (`None` = empty).
    Count(Option<u32>),
}

const fn kind_of(name: &str) -> ColumnKind {
    match name.as_bytes() {
        b"id" | b"verdict" | b"nearest_id" | b"reason" => ColumnKind::Text,
        b"support" => ColumnKind::Count,
        _ => ColumnKind::Float,
    }
}

/// The CSV columns for `model`'s assessments, in output order:
/// [`CSV_COLUMNS`], then `nearest_group` when the model has groups, `reason`,
/// `q_value` when `with_q` (a batch adjusted by [`crate::verdict::apply_fdr`]),
/// then `note`.
///
/// [`record`] gives one value per column, in the same order.
pub fn columns(model: &Model, with_q: bool) -> Vec<Column> {
    let mut cols: Vec<Column> = CSV_COLUMNS
        .iter()
        .map(|&name| Column {
            name,
            kind: kind_of(name),
        })
        .collect();
    if model.reference().groups.is_some() {
        cols.push(Column {
            name: "nearest_group",
            kind: ColumnKind::Text,
        });
    }
    cols.push(Column {
        name: "reason",
        kind: ColumnKind::Text,
    });
    if with_q {
        cols.push(Column {
            name: "q_value",
            kind: ColumnKind::Float,
        });
    }
    cols.push(Column {
        name: "note",
        kind: ColumnKind::Text,
    });
    cols
}

/// The values of one assessment, one per column of [`columns`] (with the
/// same `with_q`), in order.
pub fn record<'a>(model: &'a Model, a: &'a Assessment, with_q: bool) -> Vec<Value<'a>> {
    let nearest = a.neighbours.first();
    let reference = model.reference();
    let nearest_id = nearest
        .and_then(|n| reference.ids.get(n.index as usize))
        .unwrap_or("");
    let nearest_distance = nearest.map_or(f64::NAN, |n| n.distance as f64);
    let support = if a.p_value.is_nan() {
        None
    } else {
        Some(a.support)
    };
    let mut row = vec![
        Value::Text(Cow::Borrowed(&a.id)),
        Value::Text(Cow::Borrowed(a.verdict.as_str())),
        Value::Float(a.p_value),
        Value::Float(a.novelty),
        Value::Float(a.p_novelty),
        Value::Float(a.residual),
        Value::Float(a.p_residual),
        Value::Float(a.density),
        Value::Count(support),
        Value::Float(a.coverage),
        Value::Text(Cow::Borrowed(nearest_id)),
        Value::Float(nearest_distance),
    ];
    if reference.groups.is_some() {
        let g = nearest
            .and_then(|n| reference.group_of(n.index as usize))
            .unwrap_or("");
        row.push(Value::Text(Cow::Borrowed(g)));
    }
    row.push(Value::Text(Cow::Borrowed(&a.reason)));
    if with_q {
        row.push(Value::Float(a.q_value));
    }
    row.push(Value::Text(Cow::Borrowed(&a.note)));
    row
}

/// Quotes a field when it contains the separator, a quote or a line break.
fn field(s: &str, sep: u8) -> Cow<'_, str> {
    if s.bytes()
        .any(|b| b == sep || b == b'"' || b == b'\n' || b == b'\r')
    {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

pub(super) fn write_header(
    w: &mut dyn Write,
    sep: u8,
    model: &Model,
    with_q: bool,
) -> io::Result<()> {
    let names: Vec<&str> = columns(model, with_q).iter().map(|c| c.name).collect();
    let sep = (sep as char).to_string();
    writeln!(w, "{}", names.join(&sep))
}

pub(super) fn write_rows(
    w: &mut dyn Write,
    sep: u8,
    model: &Model,
    rows: &[Assessment],
    with_q: bool,
) -> io::Result<()> {
    for a in rows {
        for (j, value) in record(model, a, with_q).iter().enumerate() {
            if j > 0 {
                w.write_all(&[sep])?;
            }
            match value {
                Value::Text(s) => w.write_all(field(s, sep).as_bytes())?,
                Value::Float(x) => w.write_all(fmt_f64(*x).as_bytes())?,
                Value::Count(Some(c)) => write!(w, "{c}")?,
                Value::Count(None) => {}
            }
        }
        w.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Params, Table};

    #[test]
    fn a_record_has_one_value_of_the_right_kind_per_column() {
        let mut values = Vec::new();
        for i in 0..60 {
            let t = i as f64 / 10.0;
            values.extend_from_slice(&[t.sin(), t.cos(), (i % 7) as f64]);
        }
        let ids: Vec<String> = (0..60).map(|i| format!("r{i}")).collect();
        let groups = (0..60).map(|i| format!("g{}", i % 2)).collect();
        let names: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
        let reference = Table::from_rows(ids, names.clone(), values)
            .and_then(|t| t.with_groups(groups))
            .expect("table");
        let model = Params::default().k(5).fit(&reference).expect("fit");
        let patients = Table::from_rows(
            vec!["p".into(), "empty".into()],
            names,
            vec![0.1, 0.9, 3.0, f64::NAN, f64::NAN, f64::NAN],
        )
        .expect("table");
        for with_q in [false, true] {
            let cols = columns(&model, with_q);
            assert_eq!(
                cols[..12].iter().map(|c| c.name).collect::<Vec<_>>(),
                CSV_COLUMNS
            );
            assert_eq!(cols[12].name, "nearest_group");
            assert_eq!(cols[13].name, "reason");
            assert_eq!(cols[14].name == "q_value", with_q);
            assert_eq!(cols.last().map(|c| c.name), Some("note"));
            for a in model.assess(&patients).expect("assess") {
                let row = record(&model, &a, with_q);
                assert_eq!(row.len(), cols.len());
                for (c, v) in cols.iter().zip(&row) {
                    let kind = match v {
                        Value::Text(_) => ColumnKind::Text,
                        Value::Float(_) => ColumnKind::Float,
                        Value::Count(_) => ColumnKind::Count,
                    };
                    assert_eq!(kind, c.kind, "column {}", c.name);
                }
            }
        }
    }
}
