//! Writing assessments: CSV (fixed columns) and JSON Lines.
