//! The self-contained HTML report and the plain-language explanation.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::audit::{Audit, Rate, group_label};
use super::escape;
use super::stats::CONFIDENCE;
use super::svg::{p_histogram_svg, rate_bars_svg, scatter_svg, truncate, verdict_colour};
use crate::model::Model;
use crate::verdict::{Assessment, Verdict};

/// At most this many non-supported patients are listed in the report.
pub const MAX_LISTED: usize = 200;
/// Neighbours shown per listed patient.
const NEIGHBOURS_SHOWN: usize = 3;
/// Features named in an explanation.
const FEATURES_NAMED: usize = 3;
/// |z| from which a feature is called "outside" the reference.
const EXTREME_Z: f64 = 2.0;

const CSS: &str = "\
:root{--ink:#222;--muted:#666;--line:#ddd;--bg:#fafafa}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 48px;background:#fff;min-height:100vh}
h1{font-size:26px;margin:0 0 4px}
h2{font-size:19px;margin:36px 0 8px;padding-bottom:4px;border-bottom:1px solid var(--line)}
p.sub,p.note,figcaption{color:var(--muted);font-size:13px;margin:4px 0 10px}
table{border-collapse:collapse;margin:8px 0;font-size:13.5px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:#f2f2f2;font-weight:600;white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tbody tr:nth-child(even){background:#fbfbfb}
table.model td:first-child{color:var(--muted);white-space:nowrap}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;white-space:nowrap}
.warn{border-left:4px solid #b2182b;background:#fdf0f0;padding:8px 12px;margin:10px 0;font-size:14px}
.ok{border-left:4px solid #1b9e77;background:#eef8f4;padding:8px 12px;margin:10px 0;font-size:14px}
figure{margin:10px 0 0;overflow-x:auto}
svg{max-width:none;height:auto}
td.explain{max-width:460px;font-size:12.5px}
td.nb{font-size:12.5px;color:#444}
footer{margin-top:40px;color:var(--muted);font-size:12px}
";

/// A number with about three significant digits (`–` when not finite).
fn num(x: f64) -> String {
    if !x.is_finite() {
        return "–".into();
    }
    let a = x.abs();
    if a >= 1000.0 {
        format!("{x:.0}")
    } else if a >= 100.0 {
        format!("{x:.1}")
    } else if a >= 0.01 || a == 0.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.1e}")
    }
}

/// A p-value: three decimals, or scientific below 0.001 (`–` when not finite).
fn p_fmt(p: f64) -> String {
    if !p.is_finite() {
        "–".into()
    } else if p < 0.001 {
        format!("{p:.1e}")
    } else {
        format!("{p:.3}")
    }
}

fn pct(x: f64) -> String {
    if x.is_finite() {
        format!("{:.1}%", 100.0 * x)
    } else {
        "–".into()
    }
}

fn badge(v: Verdict) -> String {
    format!(
        "<span class=\"badge\" style=\"background:{}\">{}</span>",
        verdict_colour(v),
        v.as_str()
    )
}

/// "7 EUR, 3 AFR" or "all group EUR": the reference groups of the neighbours,
/// most frequent first (ties by name). `None` when the reference has no groups.
fn neighbour_groups(model: &Model, a: &Assessment) -> Option<String> {
    let reference = model.reference();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for nb in &a.neighbours {
        let g = reference.group_of(nb.index as usize)?;
        *counts.entry(g).or_insert(0) += 1;
    }
    let mut counts: Vec<(&str, usize)> = counts.into_iter().collect();
    counts.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
    match counts.as_slice() {
        [] => None,
        [(g, _)] => Some(format!("are all group {g}")),
        many => Some(format!(
            "are {}",
            many.iter()
                .map(|(g, c)| format!("{c} {g}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// One plain-language line explaining a patient's verdict, e.g. "no
/// reference member within radius 3.21; nearest 10 are all group EUR;
/// features rs123, rs456 are 4.1–6.0 SD from the reference mean".
///
/// Parts, joined by "; ": the `reason` (`reason value: rs_private=1 never
/// seen in 400 reference members (all 0)`, `reason block:metabolome:
/// residual p = 0.0004`, `reason knn`) when the verdict is not `supported`;
/// the support (reference members within the pooled
/// support radius, [`Model::support_radius`]); the reference groups of the
/// nearest neighbours; for the kNN and residual channels, the one that
/// decided (the residual when its p-value is the smaller one, the kNN
/// distance otherwise); the features of
/// `top_features` at least 2 SD from the reference mean, or else the largest
/// contributors; a pooled-calibration fallback; the input note. For
/// `insufficient_data`, the observed coverage. The text is plain (not escaped).
pub fn explain(model: &Model, a: &Assessment) -> String {
    let text = explain_scores(model, a);
    if a.reason.is_empty() {
        text
    } else {
        format!("reason {}; {text}", a.reason)
    }
}

fn explain_scores(model: &Model, a: &Assessment) -> String {
    let n_features = model.features().len();
    if a.verdict == Verdict::InsufficientData && a.reason != "non_finite" {
        let observed = (a.coverage * n_features as f64).round() as usize;
        let mut s = format!(
            "only {observed} of {n_features} features observed ({}, minimum {}); not assessed",
            pct(a.coverage),
            pct(model.params().min_coverage)
        );
        if !a.note.is_empty() {
            let _ = write!(s, "; note: {}", a.note);
        }
        return s;
    }
    let mut parts: Vec<String> = Vec::new();
    let radius = if a.support_radius.is_nan() {
        model.support_radius()
    } else {
        a.support_radius
    };
    let radius_text = if radius.is_finite() {
        format!("radius {}", num(radius))
    } else {
        "the support radius (undefined: too few calibration scores)".to_string()
    };
    parts.push(match a.support {
        0 => format!("no reference member within {radius_text}"),
        1 => format!("1 reference member within {radius_text}"),
        s => format!("{s} reference members within {radius_text}"),
    });
    let k = a.neighbours.len();
    if k > 0 {
        let nearest = a.neighbours.first().map_or(f64::NAN, |n| n.distance as f64);
        match neighbour_groups(model, a) {
            Some(groups) => parts.push(format!(
                "nearest {k} {groups} (closest at distance {})",
                num(nearest)
            )),
            None => parts.push(format!(
                "closest reference member at distance {}",
                num(nearest)
            )),
        }
    }
    // The value and block channels explain themselves in the reason.
    let other_channel = a.reason.starts_with("value") || a.reason.starts_with("block:");
    if other_channel {
        // Nothing to add: the reason names the channel and its evidence.
    } else if a.p_residual.is_finite() && a.p_residual < a.p_novelty {
        parts.push(format!(
            "off the reference's principal components: residual {} (channel p = {})",
            num(a.residual),
            p_fmt(a.p_residual)
        ));
    } else if a.p_novelty.is_finite() && a.verdict != Verdict::Supported {
        parts.push(format!(
            "far from reference members: kNN distance {} (channel p = {})",
            num(a.knn_distance),
            p_fmt(a.p_novelty)
        ));
    }
    let extreme: Vec<_> = a
        .top_features
        .iter()
        .filter(|f| f.z.is_finite() && f.z.abs() >= EXTREME_Z)
        .take(FEATURES_NAMED)
        .collect();
    if !extreme.is_empty() {
        let names: Vec<&str> = extreme.iter().map(|f| f.feature.as_str()).collect();
        let lo = extreme
            .iter()
            .map(|f| f.z.abs())
            .fold(f64::INFINITY, f64::min);
        let hi = extreme.iter().map(|f| f.z.abs()).fold(0.0, f64::max);
        let range = if names.len() == 1 || hi - lo < 0.05 {
            format!("{lo:.1}")
        } else {
            format!("{lo:.1}–{hi:.1}")
        };
        let (noun, verb) = if names.len() == 1 {
            ("feature", "is")
        } else {
            ("features", "are")
        };
        parts.push(format!(
            "{noun} {} {verb} {range} SD from the reference mean",
            names.join(", ")
        ));
    } else if !a.top_features.is_empty() {
        let listed: Vec<String> = a
            .top_features
            .iter()
            .filter(|f| f.z.is_finite())
            .take(FEATURES_NAMED)
            .map(|f| format!("{} (z = {:.1})", f.feature, f.z))
            .collect();
        if !listed.is_empty() {
            parts.push(format!(
                "no single feature is extreme; largest contributions from {}",
                listed.join(", ")
            ));
        }
    }
    if a.pooled_fallback {
        parts.push(format!(
            "calibrated against the pooled reference (no calibration for group {})",
            group_label(a)
        ));
    }
    if !a.note.is_empty() {
        parts.push(format!("note: {}", a.note));
    }
    parts.join("; ")
}

fn write_model_summary(out: &mut String, model: &Model, n_patients: usize) {
    let d = model.data();
    let params = model.params();
    let radius = model.support_radius();
    let summary = model.summary();
    let mut features = summary.n_features.to_string();
    let mut notes = Vec::new();
    if !summary.constant_features.is_empty() {
        notes.push(format!(
            "{} constant, kept for the value channel",
            summary.constant_features.len()
        ));
    }
    if !summary.dropped_features.is_empty() {
        notes.push(format!("{} dropped", summary.dropped_features.len()));
    }
    if !notes.is_empty() {
        let _ = write!(features, " ({})", notes.join("; "));
    }
    let mut rows: Vec<(String, String)> = vec![
        (
            "reference members".into(),
            model.reference().len().to_string(),
        ),
        ("features".into(), features),
        (
            "components".into(),
            format!(
                "{} ({} of variance)",
                model.n_components(),
                pct(d.components.explained)
            ),
        ),
        (
            "channels (prior weight)".into(),
            summary
                .channels
                .iter()
                .map(|c| format!("{} {:.3}", c.channel, c.weight))
                .collect::<Vec<_>>()
                .join(", "),
        ),
    ];
    for b in &summary.blocks {
        rows.push((
            format!("block {}", b.name),
            format!(
                "{} features ({} projected); MFA weight {:.4} (first eigenvalue {:.3})",
                b.features, b.projected, b.mfa_weight, b.first_eigenvalue
            ),
        ));
    }
    rows.extend([
        ("k (neighbours)".into(), params.k.to_string()),
        ("alpha (invisible at p ≤)".into(), params.alpha.to_string()),
        (
            "warn_alpha (low_support at p ≤)".into(),
            params.warn_alpha.to_string(),
        ),
        ("calibration".into(), d.calibration.method.clone()),
        ("index".into(), model.index_kind().to_string()),
        ("support radius".into(), num(radius)),
        ("patients assessed".into(), n_patients.to_string()),
    ]);
    out.push_str("<table class=\"model\"><tbody>");
    for (k, v) in rows {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td></tr>",
            escape(&k),
            escape(&v)
        );
    }
    out.push_str("</tbody></table>");
    for w in &d.warnings {
        let _ = write!(
            out,
            "<div class=\"warn\">model warning: {}</div>",
            escape(w)
        );
    }
}

fn write_verdict_summary(out: &mut String, assessments: &[Assessment], audit: Option<&Audit>) {
    let n = assessments.len();
    out.push_str(
        "<table><thead><tr><th>verdict</th><th class=\"num\">patients</th>\
         <th class=\"num\">share</th><th class=\"num\">95% CI</th><th>meaning</th></tr></thead><tbody>",
    );
    for v in Verdict::ALL {
        let count = assessments.iter().filter(|a| a.verdict == v).count();
        let r = Rate::new(count, n);
        let meaning = match v {
            Verdict::Supported => "the reference represents the patient (p > warn_alpha)",
            Verdict::LowSupport => "thinly represented (alpha < p ≤ warn_alpha)",
            Verdict::Invisible => "not represented (p ≤ alpha)",
            Verdict::InsufficientData => "too few features observed to say",
        };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{count}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}–{}</td><td>{}</td></tr>",
            badge(v),
            pct(r.rate),
            pct(r.lo),
            pct(r.hi),
            escape(meaning)
        );
    }
    let _ = write!(
        out,
        "<tr><th>total</th><th class=\"num\">{n}</th><th></th><th></th><th></th></tr></tbody></table>"
    );
    if let Some(audit) = audit {
        let c = &audit.calibration;
        match &c.warning {
            Some(w) => {
                let class = if audit.alpha < c.invisible.lo {
                    "warn"
                } else {
                    "ok"
                };
                let _ = write!(
                    out,
                    "<div class=\"{class}\">Calibration check: {}.</div>",
                    escape(w)
                );
            }
            None if c.n_scored > 0 => {
                let _ = write!(
                    out,
                    "<div class=\"ok\">Calibration check: invisible rate {} (95% CI {}–{}, {} of {}) \
                     is consistent with alpha = {}. This check assumes the patients come from the \
                     reference population.</div>",
                    pct(c.invisible.rate),
                    pct(c.invisible.lo),
                    pct(c.invisible.hi),
                    c.invisible.count,
                    c.n_scored,
                    c.alpha
                );
            }
            None => {}
        }
        if let Some(m) = &audit.variant_match {
            let class = if m.matched < m.n_model { "warn" } else { "ok" };
            let _ = write!(
                out,
                "<div class=\"{class}\">Variant match of the patients' genotype file: {}.</div>",
                escape(&m.summary())
            );
        }
    }
}

fn rate_cell(r: &Rate) -> String {
    format!(
        "<td class=\"num\">{} <span style=\"color:#777\">({}–{})</span></td>",
        pct(r.rate),
        pct(r.lo),
        pct(r.hi)
    )
}

fn write_groups(out: &mut String, audit: &Audit) {
    out.push_str(
        "<table><thead><tr><th>group</th><th class=\"num\">n</th><th class=\"num\">invisible (95% CI)</th>\
         <th class=\"num\">low_support (95% CI)</th><th class=\"num\">insufficient</th>\
         <th class=\"num\">median p</th><th>nearest-neighbour groups</th>\
         <th class=\"num\">entropy (bits)</th><th class=\"num\">pooled fallback</th></tr></thead><tbody>",
    );
    for g in &audit.groups {
        let mut mix: Vec<_> = g.neighbour_mix.iter().collect();
        mix.sort_by(|a, b| {
            b.fraction
                .total_cmp(&a.fraction)
                .then(a.group.cmp(&b.group))
        });
        let mix_text = mix
            .iter()
            .take(4)
            .map(|s| format!("{} {}", truncate(&s.group, 20), pct(s.fraction)))
            .collect::<Vec<_>>()
            .join(", ")
            + if mix.len() > 4 { ", …" } else { "" };
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td>{}{}<td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&g.group),
            g.n,
            rate_cell(&g.verdicts.invisible),
            rate_cell(&g.verdicts.low_support),
            g.verdicts.insufficient_data.count,
            g.median_p_value.map_or("–".into(), p_fmt),
            escape(&mix_text),
            num(g.neighbour_entropy_bits),
            g.pooled_fallback
        );
    }
    out.push_str("</tbody></table>");
}

fn rate_count_cell(r: &Rate) -> String {
    format!(
        "<td class=\"num\">{} · {} <span style=\"color:#777\">({}–{})</span></td>",
        r.count,
        pct(r.rate),
        pct(r.lo),
        pct(r.hi)
    )
}

/// The per-channel rates (overall, then per group when there are several)
/// and the features the value channel named.
fn write_channels(out: &mut String, audit: &Audit) {
    if audit.channels.is_empty() {
        return;
    }
    let n = audit.channels.first().map_or(0, |c| c.n_scored);
    let _ = write!(
        out,
        "<p class=\"note\">Of the {n} scored patients: those whose verdict the channel drove (it is \
         named in their reason; not supported), and those whose own channel p-value is at most \
         alpha = {} (reported, not a verdict). Counts, shares and 95% Clopper–Pearson intervals.</p>",
        audit.alpha
    );
    out.push_str(
        "<table><thead><tr><th>channel</th><th class=\"num\">drove the verdict</th>\
         <th class=\"num\">own p ≤ alpha</th></tr></thead><tbody>",
    );
    for c in &audit.channels {
        let _ = write!(
            out,
            "<tr><td>{}</td>{}{}</tr>",
            escape(&c.channel),
            rate_count_cell(&c.driving),
            rate_count_cell(&c.p_le_alpha)
        );
    }
    out.push_str("</tbody></table>");
    if audit.groups.len() > 1 {
        out.push_str(
            "<p class=\"note\">Share of each group's scored patients whose verdict the channel drove.</p>\
             <table><thead><tr><th>channel</th>",
        );
        for g in &audit.groups {
            let _ = write!(
                out,
                "<th class=\"num\">{}</th>",
                escape(&truncate(&g.group, 20))
            );
        }
        out.push_str("</tr></thead><tbody>");
        for (i, c) in audit.channels.iter().enumerate() {
            let _ = write!(out, "<tr><td>{}</td>", escape(&c.channel));
            for g in &audit.groups {
                match g.channels.get(i) {
                    Some(r) => out.push_str(&rate_cell(&r.driving)),
                    None => out.push_str("<td class=\"num\">–</td>"),
                }
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table>");
    }
    if !audit.value_features.is_empty() {
        out.push_str(
            "<p class=\"note\">Features the value channel named in the reasons, most often first \
             (never seen: a value no reference member showed, or outside their range).</p>\
             <table><thead><tr><th>feature</th><th class=\"num\">patients</th>\
             <th class=\"num\">never seen</th></tr></thead><tbody>",
        );
        for f in &audit.value_features {
            let _ = write!(
                out,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&f.feature),
                f.named,
                f.unseen
            );
        }
        out.push_str("</tbody></table>");
    }
}

fn write_patient_list(out: &mut String, model: &Model, assessments: &[Assessment]) {
    let mut flagged: Vec<&Assessment> = assessments
        .iter()
        .filter(|a| a.verdict != Verdict::Supported)
        .collect();
    // Most novel first; NaN novelty (insufficient_data) last; stable otherwise.
    flagged.sort_by(|a, b| match (a.novelty.is_nan(), b.novelty.is_nan()) {
        (false, false) => b.novelty.total_cmp(&a.novelty),
        (x, y) => x.cmp(&y),
    });
    let total = flagged.len();
    if total == 0 {
        out.push_str("<p>Every patient is supported by the reference.</p>");
        return;
    }
    let _ = write!(
        out,
        "<p class=\"note\">{}, most novel first.</p>",
        if total > MAX_LISTED {
            format!("The {MAX_LISTED} most novel of {total} non-supported patients")
        } else {
            format!("All {total} non-supported patients")
        }
    );
    let reference = model.reference();
    out.push_str(
        "<table><thead><tr><th>id</th><th>group</th><th>verdict</th><th class=\"num\">p-value</th>\
         <th class=\"num\">novelty</th><th>nearest reference members</th><th>why</th></tr></thead><tbody>",
    );
    for a in flagged.iter().take(MAX_LISTED) {
        let mut nb: Vec<String> = a
            .neighbours
            .iter()
            .take(NEIGHBOURS_SHOWN)
            .map(|n| {
                let i = n.index as usize;
                let id = reference.ids.get(i).unwrap_or("?");
                match reference.group_of(i) {
                    Some(g) => format!("{id} ({g})"),
                    None => id.to_string(),
                }
            })
            .collect();
        if a.neighbours.len() > NEIGHBOURS_SHOWN {
            nb.push(format!("+{} more", a.neighbours.len() - NEIGHBOURS_SHOWN));
        }
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"nb\">{}</td><td class=\"explain\">{}</td></tr>",
            escape(&a.id),
            escape(group_label(a)),
            badge(a.verdict),
            p_fmt(a.p_value),
            num(a.novelty),
            escape(&nb.join(", ")),
            escape(&explain(model, a))
        );
    }
    out.push_str("</tbody></table>");
}

/// A single self-contained HTML page reporting `assessments` made with
/// `model`: a header with the model summary, the verdict summary (with the
/// calibration check when `audit` is given), per-group rates and bar charts
/// with 95% intervals (only with `audit`), the embedding scatter
/// ([`scatter_svg`]), per-channel rates (which channel or block drove the
/// verdicts, whose own p-value is at most alpha, and the features the value
/// channel named; from `audit`, or computed from `assessments` without it),
/// the p-value histogram and a table of the non-supported
/// patients (at most [`MAX_LISTED`], most novel first) with
/// [`explain`] lines.
///
/// The page has inline CSS and inline SVG only: no JavaScript and no external
/// resource. Every string from the data or `title` is [`escape`]d. Works for
/// any input, including no patients, no groups and missing group labels.
/// Deterministic: the same inputs give the same bytes.
pub fn render_html(
    model: &Model,
    assessments: &[Assessment],
    audit: Option<&Audit>,
    title: &str,
) -> String {
    let params = model.params();
    let mut out = String::with_capacity(64 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<main>\n",
        escape(title)
    );
    let _ = write!(
        out,
        "<h1>{}</h1>\n<p class=\"sub\">nof1 {} report: is each patient represented in the reference cohort?</p>\n",
        escape(title),
        escape(&model.data().crate_version)
    );
    out.push_str("<h2>Model</h2>\n");
    write_model_summary(&mut out, model, assessments.len());
    out.push_str("\n<h2>Verdicts</h2>\n");
    write_verdict_summary(&mut out, assessments, audit);
    if let Some(audit) = audit {
        out.push_str("\n<h2>By group</h2>\n");
        write_groups(&mut out, audit);
        let _ = writeln!(
            out,
            "<figure>{}<figcaption>Share of each verdict per patient group; whiskers are 95% \
             Clopper–Pearson intervals ({}% confidence); the dashed line marks alpha.</figcaption></figure>",
            rate_bars_svg(audit),
            100.0 * CONFIDENCE
        );
    }
    let own;
    let by_channel = match audit {
        Some(a) => a,
        None => {
            own = super::audit::audit(model, assessments);
            &own
        }
    };
    if !by_channel.channels.is_empty() {
        out.push_str("\n<h2>By channel</h2>\n");
        write_channels(&mut out, by_channel);
    }
    out.push_str("\n<h2>Embedding</h2>\n");
    let _ = writeln!(
        out,
        "<figure>{}<figcaption>First two principal components. Grey: reference members; \
         coloured: patients by verdict, shaped by group. Hover a patient for its id.</figcaption></figure>",
        scatter_svg(model, assessments)
    );
    out.push_str("\n<h2>p-values</h2>\n");
    let _ = writeln!(
        out,
        "<figure>{}<figcaption>Combined p-values of all assessed patients in 20 bins. Patients \
         drawn from the reference population give a roughly flat histogram (dashed line); a \
         pile-up near 0 means patients unlike the reference.</figcaption></figure>",
        p_histogram_svg(assessments, params.alpha, params.warn_alpha)
    );
    out.push_str("\n<h2>Patients not supported</h2>\n");
    write_patient_list(&mut out, model, assessments);
    out.push_str(
        "\n<footer>Generated by nof1. Self-contained: no scripts, no network resources.</footer>\n\
         </main>\n</body>\n</html>\n",
    );
    out
}
