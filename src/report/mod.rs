//! Reports: the equity audit and the self-contained HTML report.
