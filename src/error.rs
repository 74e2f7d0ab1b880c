//! Typed errors of the library.
//!
//! Every error that comes from user data names where it came from: the file, the
//! 1-based line, the column and the offending value. `Display` reads
//! `path:line:column: message`, the way compilers and `grep -n` do.

use std::fmt;
use std::path::PathBuf;

/// A result whose error is [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Where in an input file something went wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    /// The file (or `-` for standard input).
    pub path: PathBuf,
    /// 1-based line number, when known.
    pub line: Option<u64>,
    /// Column name, when known.
    pub column: Option<String>,
}

impl Position {
    /// A position that names only a file.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Position {
            path: path.into(),
            line: None,
            column: None,
        }
    }

    /// A position with a line.
    pub fn line(path: impl Into<PathBuf>, line: u64) -> Self {
        Position {
            path: path.into(),
            line: Some(line),
            column: None,
        }
    }

    /// A position with a line and a column.
    pub fn cell(path: impl Into<PathBuf>, line: u64, column: impl Into<String>) -> Self {
        Position {
            path: path.into(),
            line: Some(line),
            column: Some(column.into()),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if let Some(column) = &self.column {
            write!(f, ":{column}")?;
        }
        Ok(())
    }
}

/// The kinds of error the library reports.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing a file failed. `Display` names the file; the
    /// reason is the [`std::error::Error::source`] (print the chain, e.g.
    /// `{:#}` with anyhow, to see both once).
    #[error("{path}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A cell or line of an input table could not be parsed.
    #[error("{position}: {message}")]
    Parse {
        /// Where.
        position: Position,
        /// What is wrong, quoting the value.
        message: String,
    },
    /// The table's columns do not fit what was asked (missing id column, no features, ...).
    #[error("{position}: {message}")]
    Schema {
        /// Where.
        position: Position,
        /// What is wrong.
        message: String,
    },
    /// A parameter is out of range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter.
        name: &'static str,
        /// Why it is refused.
        reason: String,
    },
    /// Arrays of incompatible shapes were combined.
    #[error("dimension mismatch: expected {expected}, found {found} ({what})")]
    DimensionMismatch {
        /// What was compared.
        what: &'static str,
        /// The expected size.
        expected: usize,
        /// The size found.
        found: usize,
    },
    /// A model file is not a valid nof1 model.
    #[error("{path}: {message}", path = .path.display())]
    Format {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A numerical routine failed (e.g. the eigendecomposition did not converge).
    #[error("numerical failure: {0}")]
    Numerical(String),
    /// What was asked needs a cargo feature of `nof1` that this build was
    /// compiled without (e.g. building an HNSW graph needs `hnsw`).
    #[error("{what} needs nof1's cargo feature `{feature}`, which this build was compiled without")]
    FeatureDisabled {
        /// The cargo feature.
        feature: &'static str,
        /// What needed it.
        what: String,
    },
}

/// The error type of the library: a boxed [`ErrorKind`] so results stay small.
#[derive(Debug)]
pub struct Error(Box<ErrorKind>);

impl Error {
    /// The kind of error.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Consumes the error, returning its kind.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ErrorKind::Io {
            path: path.into(),
            source,
        }
        .into()
    }

    pub(crate) fn parse(position: Position, message: impl Into<String>) -> Self {
        ErrorKind::Parse {
            position,
            message: message.into(),
        }
        .into()
    }

    pub(crate) fn schema(position: Position, message: impl Into<String>) -> Self {
        ErrorKind::Schema {
            position,
            message: message.into(),
        }
        .into()
    }

    /// An invalid parameter `name`, with the reason.
    pub fn param(name: &'static str, reason: impl Into<String>) -> Self {
        ErrorKind::InvalidParam {
            name,
            reason: reason.into(),
        }
        .into()
    }

    #[cfg_attr(feature = "hnsw", allow(dead_code))]
    pub(crate) fn feature_disabled(feature: &'static str, what: impl Into<String>) -> Self {
        ErrorKind::FeatureDisabled {
            feature,
            what: what.into(),
        }
        .into()
    }

    pub(crate) fn format(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ErrorKind::Format {
            path: path.into(),
            message: message.into(),
        }
        .into()
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Self {
        Error(Box::new(kind))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&*self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_column() {
        let e = Error::parse(
            Position::cell("ref.csv", 7, "rs123"),
            "not a number: \"abc\"",
        );
        assert_eq!(e.to_string(), "ref.csv:7:rs123: not a number: \"abc\"");
    }
}
