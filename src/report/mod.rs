//! Reports: the equity audit and the self-contained HTML report.
//!
//! After [`crate::Model::assess`]: [`audit`] tabulates verdict rates per
//! patient group with exact (Clopper–Pearson) intervals and writes them as
//! JSON or TSV; [`render_html`] writes one self-contained HTML page (inline CSS
//! and SVG, no JavaScript, nothing fetched from the network); [`scatter_svg`]
//! writes the embedding scatter on its own. Every string taken from the data
//! goes through [`escape`]. Output depends only on the inputs (no clock, no
//! hash-map order).

mod audit;
mod html;
pub mod stats;
mod svg;

pub use audit::{
    ALL_ROW, AUDIT_SCHEMA, Audit, CHANNEL_TSV_COLUMNS, CalibrationCheck, ChannelRate, GroupAudit,
    MAX_NAMED_FEATURES, MISSING_GROUP, NO_GROUP, NamedFeature, NeighbourShare, Rate, TSV_COLUMNS,
    VerdictRates, audit, group_label,
};
pub use html::{MAX_LISTED, explain, render_html};
pub use svg::{MAX_REFERENCE_POINTS, scatter_svg, verdict_colour};

/// Escapes `s` for HTML and XML text and attribute values: `&`, `<`, `>`,
/// `"` and `'` become entities; control characters other than tab, line feed
/// and carriage return (not allowed in XML) become U+FFFD.
///
/// # Examples
/// ```
/// assert_eq!(
///     nof1::report::escape("<b title=\"x\">&'</b>"),
///     "&lt;b title=&quot;x&quot;&gt;&amp;&#39;&lt;/b&gt;"
/// );
/// ```
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_markup_and_quotes() {
        assert_eq!(
            escape("<script>alert('x')</script>"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
        );
        assert_eq!(escape("a \"b\" & c"), "a &quot;b&quot; &amp; c");
        assert_eq!(escape("nul\0bell\x07"), "nul\u{FFFD}bell\u{FFFD}");
        assert_eq!(escape("tab\tok é"), "tab\tok é");
    }
}
