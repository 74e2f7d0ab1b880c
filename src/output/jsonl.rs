//! JSON Lines: one object per patient, fields in a fixed order; `NaN` → `null`.

use std::io::{self, Write};

use serde::Serialize;

use crate::model::Model;
use crate::table::MatchReport;
use crate::verdict::Assessment;

fn num(x: f64) -> Option<f64> {
    if x.is_finite() { Some(x) } else { None }
}

#[derive(Serialize)]
struct NeighbourOut<'a> {
    id: &'a str,
    distance: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
}

#[derive(Serialize)]
struct FeatureOut<'a> {
    feature: &'a str,
    z: Option<f64>,
    residual: Option<f64>,
    distance_sq: Option<f64>,
}

#[derive(Serialize)]
struct Row<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    verdict: &'a str,
    p_value: Option<f64>,
    novelty: Option<f64>,
    knn_distance: Option<f64>,
    p_novelty: Option<f64>,
    residual: Option<f64>,
    p_residual: Option<f64>,
    density: Option<f64>,
    support: Option<u32>,
    coverage: Option<f64>,
    nearest_id: Option<&'a str>,
    nearest_distance: Option<f64>,
    neighbours: Vec<NeighbourOut<'a>>,
    top_features: Vec<FeatureOut<'a>>,
    pooled_fallback: bool,
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    q_value: Option<Option<f64>>,
    channels: Vec<ChannelOut<'a>>,
    note: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant_match: Option<&'a MatchReport>,
}

#[derive(Serialize)]
struct ChannelOut<'a> {
    channel: &'a str,
    p_value: Option<f64>,
}

/// One assessment as its JSON Lines object (one line, no line break), with
/// the fields in the fixed order of the JSONL output: neighbours, top
/// features and everything else the CSV leaves out. `q_value` is present
/// when `with_q` (a batch adjusted by [`crate::verdict::apply_fdr`]).
///
/// # Errors
/// Never in practice (the fields are plain values); a serialisation error is passed on.
pub fn json_record(model: &Model, a: &Assessment, with_q: bool) -> serde_json::Result<String> {
    serde_json::to_string(&row(model, a, with_q, None))
}

/// Writes one line per assessment; `variant_match` (the patients' variant
/// match, for genotype input) is repeated on every line.
pub(super) fn write_rows(
    w: &mut dyn Write,
    model: &Model,
    rows: &[Assessment],
    with_q: bool,
    variant_match: Option<&MatchReport>,
) -> io::Result<()> {
    for a in rows {
        serde_json::to_writer(&mut *w, &row(model, a, with_q, variant_match))
            .map_err(io::Error::other)?;
        w.write_all(b"\n")?;
    }
    Ok(())
}

fn row<'a>(
    model: &'a Model,
    a: &'a Assessment,
    with_q: bool,
    variant_match: Option<&'a MatchReport>,
) -> Row<'a> {
    let reference = model.reference();
    let neighbours: Vec<NeighbourOut> = a
        .neighbours
        .iter()
        .map(|n| NeighbourOut {
            id: reference.ids.get(n.index as usize).unwrap_or(""),
            distance: n.distance as f64,
            group: reference.group_of(n.index as usize),
        })
        .collect();
    Row {
        id: &a.id,
        group: a.group.as_deref(),
        verdict: a.verdict.as_str(),
        p_value: num(a.p_value),
        novelty: num(a.novelty),
        knn_distance: num(a.knn_distance),
        p_novelty: num(a.p_novelty),
        residual: num(a.residual),
        p_residual: num(a.p_residual),
        density: num(a.density),
        support: if a.p_value.is_nan() {
            None
        } else {
            Some(a.support)
        },
        coverage: num(a.coverage),
        nearest_id: neighbours.first().map(|n| n.id),
        nearest_distance: neighbours.first().map(|n| n.distance),
        top_features: a
            .top_features
            .iter()
            .map(|f| FeatureOut {
                feature: &f.feature,
                z: num(f.z),
                residual: num(f.residual),
                distance_sq: num(f.distance_sq),
            })
            .collect(),
        neighbours,
        pooled_fallback: a.pooled_fallback,
        reason: &a.reason,
        q_value: with_q.then(|| num(a.q_value)),
        channels: a
            .channel_p_values
            .iter()
            .map(|c| ChannelOut {
                channel: &c.channel,
                p_value: num(c.p_value),
            })
            .collect(),
        note: &a.note,
        variant_match,
    }
}
