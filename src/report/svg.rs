//! Inline SVG charts: the embedding scatter, verdict-rate bars with interval
//! whiskers, and the p-value histogram. Pure string building, no scripts.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::audit::{Audit, group_label};
use super::escape;
use crate::model::Model;
use crate::verdict::{Assessment, Verdict};

/// At most this many reference members are drawn in the scatter (every
/// `⌈n / MAX_REFERENCE_POINTS⌉`-th member, in reference order).
pub const MAX_REFERENCE_POINTS: usize = 5000;

/// Fill colour of reference members.
const REFERENCE_COLOUR: &str = "#c8c8c8";
/// Ink for axes and text.
const INK: &str = "#333333";
/// Light grid lines.
const GRID: &str = "#e6e6e6";
/// Font of every chart.
const FONT: &str = "font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif\"";

/// The colour of a verdict in every chart and badge (colour-blind-safe:
/// Dark2 teal-green and orange, a dark red that stays apart from the orange
/// under deuteranopia, and blue-violet).
pub fn verdict_colour(v: Verdict) -> &'static str {
    match v {
        Verdict::Supported => "#1b9e77",
        Verdict::LowSupport => "#d95f02",
        Verdict::Invisible => "#b2182b",
        Verdict::InsufficientData => "#7570b3",
    }
}

/// Marker shapes, cycled over groups.
const SHAPES: [&str; 8] = [
    "circle",
    "square",
    "triangle",
    "diamond",
    "cross",
    "triangle-down",
    "plus",
    "star",
];

/// Opens a marker of `shape` centred at `(x, y)` with half-size `r`, filled
/// with `colour` (line shapes use it as stroke) and `stroke` as outline; returns
/// the element name for [`close_marker`].
fn marker(
    out: &mut String,
    shape: &str,
    (x, y): (f64, f64),
    r: f64,
    colour: &str,
    stroke: &str,
) -> &'static str {
    let poly = |out: &mut String, pts: &[(f64, f64)]| {
        out.push_str("<polygon points=\"");
        for (i, (dx, dy)) in pts.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            let _ = write!(out, "{:.1},{:.1}", x + dx * r, y + dy * r);
        }
        let _ = write!(
            out,
            "\" fill=\"{colour}\" stroke=\"{stroke}\" stroke-width=\"0.7\""
        );
    };
    match shape {
        "square" => {
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" \
                 stroke=\"{stroke}\" stroke-width=\"0.7\"",
                x - 0.85 * r,
                y - 0.85 * r,
                1.7 * r,
                1.7 * r
            );
            "rect"
        }
        "triangle" => {
            poly(out, &[(0.0, -1.15), (1.05, 0.8), (-1.05, 0.8)]);
            "polygon"
        }
        "triangle-down" => {
            poly(out, &[(0.0, 1.15), (1.05, -0.8), (-1.05, -0.8)]);
            "polygon"
        }
        "diamond" => {
            poly(out, &[(0.0, -1.25), (1.1, 0.0), (0.0, 1.25), (-1.1, 0.0)]);
            "polygon"
        }
        "star" => {
            let pts: Vec<(f64, f64)> = (0..10)
                .map(|i| {
                    let a = std::f64::consts::PI * (i as f64) / 5.0 - std::f64::consts::FRAC_PI_2;
                    let rr = if i % 2 == 0 { 1.3 } else { 0.55 };
                    (rr * a.cos(), rr * a.sin())
                })
                .collect();
            poly(out, &pts);
            "polygon"
        }
        "cross" | "plus" => {
            let d = r * 0.95;
            let (a, b) = if shape == "cross" {
                (
                    [(x - d, y - d), (x + d, y + d)],
                    [(x - d, y + d), (x + d, y - d)],
                )
            } else {
                ([(x - d, y), (x + d, y)], [(x, y - d), (x, y + d)])
            };
            let _ = write!(
                out,
                "<path d=\"M{:.1} {:.1}L{:.1} {:.1}M{:.1} {:.1}L{:.1} {:.1}\" fill=\"none\" \
                 stroke=\"{colour}\" stroke-width=\"2.2\"",
                a[0].0, a[0].1, a[1].0, a[1].1, b[0].0, b[0].1, b[1].0, b[1].1
            );
            "path"
        }
        _ => {
            let _ = write!(
                out,
                "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"{r:.1}\" fill=\"{colour}\" \
                 stroke=\"{stroke}\" stroke-width=\"0.7\""
            );
            "circle"
        }
    }
}

/// Closes an element opened by [`marker`] (named `name`), with an optional
/// tooltip.
fn close_marker(out: &mut String, name: &str, tooltip: Option<&str>) {
    match tooltip {
        Some(t) => {
            let _ = write!(out, "><title>{}</title></{name}>", escape(t));
        }
        None => out.push_str("/>"),
    }
}

/// "Nice" tick positions covering `[lo, hi]` (about `n` of them).
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return vec![lo];
    }
    let raw = span / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last).map(|i| i as f64 * step).collect()
}

fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.into() }
}

/// A linear map from data to pixels.
#[derive(Clone, Copy)]
struct Axis {
    lo: f64,
    hi: f64,
    p0: f64,
    p1: f64,
}

impl Axis {
    fn px(&self, v: f64) -> f64 {
        self.p0 + (v - self.lo) / (self.hi - self.lo) * (self.p1 - self.p0)
    }
}

/// The data range of `values` padded by 5% (±1 around a single value).
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (-1.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 1.0, hi + 1.0);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

/// Draws a frame, grid, ticks and axis titles.
fn axes(out: &mut String, x: Axis, y: Axis, x_title: &str, y_title: &str, x_ticks: &[f64]) {
    let y_ticks = ticks(y.lo, y.hi, 6);
    for &t in &y_ticks {
        let py = y.px(t);
        let _ = write!(
            out,
            "<line x1=\"{:.1}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"{GRID}\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"{INK}\">{}</text>",
            x.p0,
            x.p1,
            x.p0 - 6.0,
            py + 4.0,
            tick_label(t)
        );
    }
    for &t in x_ticks {
        let px = x.px(t);
        let _ = write!(
            out,
            "<line x1=\"{px:.1}\" y1=\"{:.1}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"{GRID}\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{INK}\">{}</text>",
            y.p0,
            y.p1,
            y.p0 + 16.0,
            tick_label(t)
        );
    }
    let _ = write!(
        out,
        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#999999\"/>",
        x.p0,
        y.p1,
        x.p1 - x.p0,
        y.p0 - y.p1
    );
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"{INK}\">{}</text>",
        0.5 * (x.p0 + x.p1),
        y.p0 + 36.0,
        escape(x_title)
    );
    let cy = 0.5 * (y.p0 + y.p1);
    let _ = write!(
        out,
        "<text x=\"{:.1}\" y=\"{cy:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"{INK}\" \
         transform=\"rotate(-90 {:.1} {cy:.1})\">{}</text>",
        x.p0 - 44.0,
        x.p0 - 44.0,
        escape(y_title)
    );
}

fn svg_open(out: &mut String, w: f64, h: f64, label: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {w:.0} {h:.0}\" width=\"{w:.0}\" \
         height=\"{h:.0}\" role=\"img\" aria-label=\"{}\" {FONT}>",
        escape(label)
    );
}

/// The distinct group labels of `assessments`, sorted, each with its marker shape.
pub(crate) fn group_shapes(assessments: &[Assessment]) -> BTreeMap<&str, &'static str> {
    let mut groups: BTreeMap<&str, &'static str> = assessments
        .iter()
        .map(|a| (group_label(a), SHAPES[0]))
        .collect();
    for (i, shape) in groups.values_mut().enumerate() {
        *shape = SHAPES[i % SHAPES.len()];
    }
    groups
}

/// Coordinates of the first two components of a row (second 0 when `c == 1`).
fn first_two(row: &[f32]) -> Option<(f64, f64)> {
    let x = *row.first()? as f64;
    let y = row.get(1).map_or(0.0, |&v| v as f64);
    (x.is_finite() && y.is_finite()).then_some((x, y))
}

/// The embedding scatter as a standalone SVG document (with `xmlns`): the
/// first two components (the second is 0 for a one-component model); the
/// reference in light grey (at most [`MAX_REFERENCE_POINTS`], every
/// `⌈n / MAX_REFERENCE_POINTS⌉`-th member); patients coloured by verdict
/// ([`verdict_colour`]) and shaped by group, drawn supported, low_support,
/// invisible, then the reference on top as small outlined dots (so a handful
/// of reference members inside a patient cloud stay visible); `insufficient_data` patients (no embedding) are
/// skipped. Includes a legend. Deterministic.
pub fn scatter_svg(model: &Model, assessments: &[Assessment]) -> String {
    let reference = model.reference();
    let n_ref = reference.len();
    // Components per row, from the layout (row-major n × c).
    let c = reference.embeddings.len().checked_div(n_ref).unwrap_or(0);
    let stride = n_ref.div_ceil(MAX_REFERENCE_POINTS).max(1);
    let ref_points: Vec<(f64, f64)> = if c == 0 {
        Vec::new()
    } else {
        reference
            .embeddings
            .chunks_exact(c)
            .step_by(stride)
            .filter_map(first_two)
            .collect()
    };
    let patient_points: Vec<(f64, f64, &Assessment)> = assessments
        .iter()
        .filter(|a| a.verdict != Verdict::InsufficientData)
        .filter_map(|a| first_two(&a.embedding).map(|(x, y)| (x, y, a)))
        .collect();
    let (x_lo, x_hi) = padded_range(
        ref_points
            .iter()
            .map(|p| p.0)
            .chain(patient_points.iter().map(|p| p.0)),
    );
    let (y_lo, y_hi) = if c == 1 {
        (-1.0, 1.0)
    } else {
        padded_range(
            ref_points
                .iter()
                .map(|p| p.1)
                .chain(patient_points.iter().map(|p| p.1)),
        )
    };
    let (w, h) = (820.0, 560.0);
    let (left, right, top, bottom) = (64.0, 220.0, 16.0, 52.0);
    let x = Axis {
        lo: x_lo,
        hi: x_hi,
        p0: left,
        p1: w - right,
    };
    let y = Axis {
        lo: y_lo,
        hi: y_hi,
        p0: h - bottom,
        p1: top,
    };
    let mut out = String::new();
    svg_open(&mut out, w, h, "embedding scatter");
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    let y_title = if c >= 2 { "PC2" } else { "(one component)" };
    axes(&mut out, x, y, "PC1", y_title, &ticks(x.lo, x.hi, 8));
    let shapes = group_shapes(assessments);
    // Layers: supported, low_support, invisible, then the reference on top
    // (small outlined dots, so sparse reference members stay visible).
    for v in [Verdict::Supported, Verdict::LowSupport, Verdict::Invisible] {
        let r = if v == Verdict::Supported { 4.0 } else { 5.0 };
        let _ = write!(out, "<g class=\"{}\">", v.as_str());
        for &(px, py, a) in patient_points.iter().filter(|p| p.2.verdict == v) {
            let shape = shapes.get(group_label(a)).copied().unwrap_or(SHAPES[0]);
            let stroke = if v == Verdict::Supported {
                "#ffffff"
            } else {
                "#222222"
            };
            let name = marker(
                &mut out,
                shape,
                (x.px(px), y.px(py)),
                r,
                verdict_colour(v),
                stroke,
            );
            let tip = format!(
                "{} ({}): {}, p = {:.3}",
                a.id,
                group_label(a),
                v.as_str(),
                a.p_value
            );
            close_marker(&mut out, name, Some(&tip));
        }
        out.push_str("</g>");
    }
    let _ = write!(
        out,
        "<g class=\"reference\" fill=\"{REFERENCE_COLOUR}\" stroke=\"#4d4d4d\" \
             stroke-width=\"0.5\">"
    );
    for &(px, py) in &ref_points {
        let _ = write!(
            out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.2\"/>",
            x.px(px),
            y.px(py)
        );
    }
    out.push_str("</g>");
    // Legend.
    let lx = w - right + 18.0;
    let mut ly = top + 14.0;
    let heading = |out: &mut String, ly: &mut f64, text: &str| {
        let _ = write!(
            out,
            "<text x=\"{lx:.1}\" y=\"{:.1}\" font-size=\"12\" font-weight=\"600\" fill=\"{INK}\">{}</text>",
            *ly,
            escape(text)
        );
        *ly += 18.0;
    };
    heading(&mut out, &mut ly, "verdict");
    let _ = write!(
        out,
        "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{REFERENCE_COLOUR}\" stroke=\"#4d4d4d\" \
         stroke-width=\"0.5\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{INK}\">reference ({}{})</text>",
        lx + 6.0,
        ly - 4.0,
        lx + 18.0,
        ly,
        ref_points.len(),
        if stride > 1 {
            format!(" of {n_ref}")
        } else {
            String::new()
        }
    );
    ly += 18.0;
    for v in [Verdict::Supported, Verdict::LowSupport, Verdict::Invisible] {
        let count = patient_points.iter().filter(|p| p.2.verdict == v).count();
        marker(
            &mut out,
            "circle",
            (lx + 6.0, ly - 4.0),
            5.0,
            verdict_colour(v),
            "#ffffff",
        );
        close_marker(&mut out, "circle", None);
        let _ = write!(
            out,
            "<text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"11\" fill=\"{INK}\">{} ({count})</text>",
            lx + 18.0,
            v.as_str()
        );
        ly += 18.0;
    }
    let skipped = assessments.len() - patient_points.len();
    if skipped > 0 {
        let _ = write!(
            out,
            "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" fill=\"#777777\">{skipped} not plotted (no embedding)</text>"
        );
        ly += 18.0;
    }
    let only_ungrouped = shapes.len() == 1 && shapes.contains_key(super::NO_GROUP);
    if !shapes.is_empty() && !only_ungrouped {
        ly += 8.0;
        heading(&mut out, &mut ly, "group");
        for (g, shape) in &shapes {
            if ly > h - bottom {
                let _ = write!(
                    out,
                    "<text x=\"{lx:.1}\" y=\"{ly:.1}\" font-size=\"11\" fill=\"#777777\">…</text>"
                );
                break;
            }
            let name = marker(
                &mut out,
                shape,
                (lx + 6.0, ly - 4.0),
                5.0,
                "#555555",
                "#ffffff",
            );
            close_marker(&mut out, name, None);
            let _ = write!(
                out,
                "<text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"11\" fill=\"{INK}\">{}</text>",
                lx + 18.0,
                escape(&truncate(g, 26))
            );
            ly += 18.0;
        }
    }
    out.push_str("</svg>");
    out
}

/// `s` cut to at most `max` characters (with an ellipsis when cut).
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Grouped bars of the four verdict rates per group, with 95% interval
/// whiskers and a dashed line at `alpha`.
pub(crate) fn rate_bars_svg(audit: &Audit) -> String {
    let verdicts = [
        Verdict::Supported,
        Verdict::LowSupport,
        Verdict::Invisible,
        Verdict::InsufficientData,
    ];
    let bar = 16.0;
    let slot = bar * verdicts.len() as f64 + 28.0;
    let (left, right, top, bottom) = (64.0, 170.0, 16.0, 44.0);
    let n_groups = audit.groups.len().max(1) as f64;
    let w = (left + right + slot * n_groups).max(560.0);
    let h = 300.0;
    let x0 = left;
    let y = Axis {
        lo: 0.0,
        hi: 1.0,
        p0: h - bottom,
        p1: top,
    };
    let x = Axis {
        lo: 0.0,
        hi: 1.0,
        p0: x0,
        p1: w - right,
    };
    let mut out = String::new();
    svg_open(&mut out, w, h, "verdict rates by group");
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    axes(&mut out, x, y, "", "rate (95% CI)", &[]);
    let plot_w = x.p1 - x.p0;
    let slot = plot_w / n_groups;
    let bar = (slot - 20.0) / verdicts.len() as f64;
    for (gi, g) in audit.groups.iter().enumerate() {
        let sx = x.p0 + gi as f64 * slot + 10.0;
        for (vi, &v) in verdicts.iter().enumerate() {
            let r = g.verdicts.get(v);
            let bx = sx + vi as f64 * bar;
            let rate = if r.rate.is_finite() { r.rate } else { 0.0 };
            let top_px = y.px(rate);
            let _ = write!(
                out,
                "<rect x=\"{:.1}\" y=\"{top_px:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\">\
                 <title>{}: {} {} of {} ({:.1}%, 95% CI {:.1}–{:.1}%)</title></rect>",
                bx + 1.0,
                bar - 2.0,
                (y.p0 - top_px).max(0.0),
                verdict_colour(v),
                escape(&g.group),
                v.as_str(),
                r.count,
                g.n,
                100.0 * rate,
                100.0 * r.lo,
                100.0 * r.hi
            );
            let cx = bx + bar / 2.0;
            let (ylo, yhi) = (y.px(r.lo), y.px(r.hi));
            let _ = write!(
                out,
                "<path d=\"M{cx:.1} {ylo:.1}V{yhi:.1}M{:.1} {ylo:.1}H{:.1}M{:.1} {yhi:.1}H{:.1}\" \
                 stroke=\"{INK}\" stroke-width=\"1.2\" fill=\"none\"/>",
                cx - 3.0,
                cx + 3.0,
                cx - 3.0,
                cx + 3.0
            );
        }
        let cx = sx + (slot - 20.0) / 2.0;
        let label_y = y.p0 + 16.0;
        let _ = write!(
            out,
            "<text x=\"{cx:.1}\" y=\"{label_y:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"{INK}\">{}</text>\
             <text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#777777\">n = {}</text>",
            escape(&truncate(&g.group, ((slot / 6.5) as usize).max(4))),
            label_y + 14.0,
            g.n
        );
    }
    let ay = y.px(audit.alpha);
    let _ = write!(
        out,
        "<line x1=\"{:.1}\" y1=\"{ay:.1}\" x2=\"{:.1}\" y2=\"{ay:.1}\" stroke=\"{}\" stroke-dasharray=\"5 4\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{}\">α = {}</text>",
        x.p0,
        x.p1,
        verdict_colour(Verdict::Invisible),
        x.p1 + 4.0,
        ay + 4.0,
        verdict_colour(Verdict::Invisible),
        audit.alpha
    );
    let lx = x.p1 + 56.0;
    let mut ly = top + 14.0;
    for &v in &verdicts {
        let _ = write!(
            out,
            "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"12\" height=\"12\" fill=\"{}\"/>\
             <text x=\"{:.1}\" y=\"{ly:.1}\" font-size=\"11\" fill=\"{INK}\">{}</text>",
            ly - 10.0,
            verdict_colour(v),
            lx + 18.0,
            v.as_str()
        );
        ly += 18.0;
    }
    out.push_str("</svg>");
    out
}

/// Number of bins of the p-value histogram.
const P_BINS: usize = 20;

/// Histogram of the finite p-values on `[0, 1]` in 20 bins (1 falls in the
/// last), a dashed line at the uniform expectation `n / 20` and dotted lines
/// at `alpha` and `warn_alpha`.
pub(crate) fn p_histogram_svg(assessments: &[Assessment], alpha: f64, warn_alpha: f64) -> String {
    let mut counts = [0usize; P_BINS];
    for p in assessments.iter().map(|a| a.p_value) {
        if p.is_finite() {
            let b = ((p.clamp(0.0, 1.0) * P_BINS as f64) as usize).min(P_BINS - 1);
            counts[b] += 1;
        }
    }
    let n: usize = counts.iter().sum();
    let expected = n as f64 / P_BINS as f64;
    let max = counts
        .iter()
        .map(|&c| c as f64)
        .fold(expected, f64::max)
        .max(1.0);
    let (w, h) = (640.0, 280.0);
    let (left, right, top, bottom) = (64.0, 24.0, 16.0, 52.0);
    let x = Axis {
        lo: 0.0,
        hi: 1.0,
        p0: left,
        p1: w - right,
    };
    let y = Axis {
        lo: 0.0,
        hi: max * 1.08,
        p0: h - bottom,
        p1: top,
    };
    let mut out = String::new();
    svg_open(&mut out, w, h, "p-value histogram");
    out.push_str("<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>");
    let x_ticks = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];
    axes(&mut out, x, y, "combined p-value", "patients", &x_ticks);
    for (i, &c) in counts.iter().enumerate() {
        let a = i as f64 / P_BINS as f64;
        let b = (i + 1) as f64 / P_BINS as f64;
        let mid = 0.5 * (a + b);
        let colour = verdict_colour(Verdict::from_p_value(mid, alpha, warn_alpha));
        let top_px = y.px(c as f64);
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{top_px:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{colour}\" \
             fill-opacity=\"0.85\"><title>[{a:.2}, {b:.2}{}: {c}</title></rect>",
            x.px(a) + 0.5,
            x.px(b) - x.px(a) - 1.0,
            (y.p0 - top_px).max(0.0),
            if i + 1 == P_BINS { "]" } else { ")" }
        );
    }
    let ey = y.px(expected);
    let _ = write!(
        out,
        "<line x1=\"{:.1}\" y1=\"{ey:.1}\" x2=\"{:.1}\" y2=\"{ey:.1}\" stroke=\"{INK}\" \
         stroke-width=\"1.3\" stroke-dasharray=\"6 4\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"11\" fill=\"{INK}\">uniform: {:.1} per bin</text>",
        x.p0,
        x.p1,
        x.p1 - 4.0,
        ey - 5.0,
        expected
    );
    for (level, name) in [(alpha, "α"), (warn_alpha, "warn α")] {
        if level.is_finite() && (0.0..=1.0).contains(&level) {
            let lx = x.px(level);
            let _ = write!(
                out,
                "<line x1=\"{lx:.1}\" y1=\"{:.1}\" x2=\"{lx:.1}\" y2=\"{:.1}\" stroke=\"#777777\" \
                 stroke-dasharray=\"2 3\"/><text x=\"{:.1}\" y=\"{:.1}\" font-size=\"10\" fill=\"#777777\">{name}</text>",
                y.p0,
                y.p1,
                lx + 3.0,
                y.p1 + 11.0
            );
        }
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_inside() {
        let t = ticks(-1.3, 2.7, 6);
        assert!(t.len() >= 3 && t.len() <= 9, "{t:?}");
        assert!(t.iter().all(|&v| (-1.3..=2.7).contains(&v)));
        assert_eq!(ticks(0.0, 1.0, 4), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }

    #[test]
    fn markers_close_with_their_own_element() {
        for shape in SHAPES {
            let mut s = String::new();
            let name = marker(&mut s, shape, (10.0, 10.0), 4.0, "#000000", "#ffffff");
            assert!(s.starts_with(&format!("<{name} ")), "{s}");
            close_marker(&mut s, name, Some("a<b"));
            assert!(s.ends_with(&format!("</{name}>")), "{s}");
            assert!(s.contains("<title>a&lt;b</title>"), "{s}");
        }
    }

    #[test]
    fn verdict_colours_are_distinct() {
        let mut c: Vec<&str> = Verdict::ALL.iter().map(|&v| verdict_colour(v)).collect();
        c.sort_unstable();
        c.dedup();
        assert_eq!(c.len(), 4);
    }
}
