//! CSV/TSV rows with the fixed column order of [`super::CSV_COLUMNS`].

use std::io::{self, Write};

use super::{CSV_COLUMNS, fmt_f64};
use crate::model::Model;
use crate::verdict::Assessment;

/// Quotes a field when it contains the separator, a quote or a line break.
fn field(s: &str, sep: u8) -> String {
    if s.bytes()
        .any(|b| b == sep || b == b'"' || b == b'\n' || b == b'\r')
    {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub(super) fn write_header(w: &mut dyn Write, sep: u8, with_groups: bool) -> io::Result<()> {
    let mut cols: Vec<&str> = CSV_COLUMNS.to_vec();
    if with_groups {
        cols.push("nearest_group");
    }
    cols.push("reason");
    cols.push("note");
    let sep = (sep as char).to_string();
    writeln!(w, "{}", cols.join(&sep))
}

pub(super) fn write_rows(
    w: &mut dyn Write,
    sep: u8,
    with_groups: bool,
    model: &Model,
    rows: &[Assessment],
) -> io::Result<()> {
    let s = sep as char;
    for a in rows {
        let nearest = a.neighbours.first();
        let nearest_id = nearest
            .and_then(|n| model.reference().ids.get(n.index as usize))
            .map(String::as_str)
            .unwrap_or("");
        let nearest_distance = nearest.map_or(f64::NAN, |n| n.distance as f64);
        let support = if a.p_value.is_nan() {
            String::new()
        } else {
            a.support.to_string()
        };
        write!(
            w,
            "{}{s}{}{s}{}{s}{}{s}{}{s}{}{s}{}{s}{}{s}{}{s}{}{s}{}{s}{}",
            field(&a.id, sep),
            a.verdict.as_str(),
            fmt_f64(a.p_value),
            fmt_f64(a.novelty),
            fmt_f64(a.p_novelty),
            fmt_f64(a.residual),
            fmt_f64(a.p_residual),
            fmt_f64(a.density),
            support,
            fmt_f64(a.coverage),
            field(nearest_id, sep),
            fmt_f64(nearest_distance),
        )?;
        if with_groups {
            let g = nearest
                .and_then(|n| model.reference().group_of(n.index as usize))
                .unwrap_or("");
            write!(w, "{s}{}", field(g, sep))?;
        }
        writeln!(w, "{s}{}{s}{}", field(&a.reason, sep), field(&a.note, sep))?;
    }
    Ok(())
}
