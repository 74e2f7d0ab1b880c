//! Matching a table's columns to a model's features, by name.
//!
//! Patients are matched to the reference by feature name, never by position:
//! a patient file may order its columns differently, lack some features
//! (they become missing values) or carry extra columns (ignored, reported).

use std::collections::HashMap;

/// For each model feature, the table column that holds it (if any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureMap {
    /// `columns[j]` is the table's feature column holding model feature `j`.
    columns: Vec<Option<usize>>,
    /// Number of feature columns of the table the map was built for.
    n_table_features: usize,
    /// Table feature columns the model does not know, in file order.
    unknown: Vec<String>,
    /// Model features absent from the table, in model order.
    absent: Vec<String>,
}

impl FeatureMap {
    /// Matches `table_features` to `model_features` by exact name.
    pub fn new(model_features: &[String], table_features: &[String]) -> FeatureMap {
        let by_name: HashMap<&str, usize> = table_features
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let columns: Vec<Option<usize>> = model_features
            .iter()
            .map(|f| by_name.get(f.as_str()).copied())
            .collect();
        let known: HashMap<&str, ()> = model_features.iter().map(|f| (f.as_str(), ())).collect();
        let unknown = table_features
            .iter()
            .filter(|n| !known.contains_key(n.as_str()))
            .cloned()
            .collect();
        let absent = model_features
            .iter()
            .zip(&columns)
            .filter(|(_, c)| c.is_none())
            .map(|(f, _)| f.clone())
            .collect();
        FeatureMap {
            columns,
            n_table_features: table_features.len(),
            unknown,
            absent,
        }
    }

    /// For each model feature (in model order), the table column holding it.
    pub fn columns(&self) -> &[Option<usize>] {
        &self.columns
    }

    /// Number of model features the map was built for.
    pub fn n_model_features(&self) -> usize {
        self.columns.len()
    }

    /// Number of feature columns of the table the map was built for.
    pub fn n_table_features(&self) -> usize {
        self.n_table_features
    }

    /// Table feature columns the model does not know, in file order.
    pub fn unknown(&self) -> &[String] {
        &self.unknown
    }

    /// Model features absent from the table, in model order.
    pub fn absent(&self) -> &[String] {
        &self.absent
    }

    /// Number of model features found in the table.
    pub fn n_matched(&self) -> usize {
        self.columns.iter().filter(|c| c.is_some()).count()
    }

    /// Copies a table row into model feature order; absent features become `NaN`.
    ///
    /// # Panics
    /// If `out.len()` differs from the number of model features.
    pub fn gather(&self, row: &[f64], out: &mut [f64]) {
        assert_eq!(out.len(), self.columns.len(), "output length");
        for (o, c) in out.iter_mut().zip(&self.columns) {
            *o = c.and_then(|c| row.get(c).copied()).unwrap_or(f64::NAN);
        }
    }
}

/// The first five names joined by `, `, then `, ... (N more)` when there
/// are more: how messages and summaries list columns.
pub fn preview_names(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(", ... ({} more)", names.len() - 5));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn matches_by_name_not_position() {
        let map = FeatureMap::new(&names(&["a", "b", "c"]), &names(&["c", "x", "a"]));
        assert_eq!(map.columns, vec![Some(2), None, Some(0)]);
        assert_eq!(map.unknown, names(&["x"]));
        assert_eq!(map.absent, names(&["b"]));
        let mut out = [0.0; 3];
        map.gather(&[3.0, 9.0, 1.0], &mut out);
        assert_eq!(out[0], 1.0);
        assert!(out[1].is_nan());
        assert_eq!(out[2], 3.0);
    }
}
