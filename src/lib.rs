//! # nof1 — is this patient represented in the reference cohort?
//!
//! Before a clinical or genomic model is applied to a patient, nof1 checks
//! whether the patient is represented in the cohort the model was built from,
//! or is *mathematically invisible* to it. The pipeline:
//!
//! reference table → [standardise] → [project] (PCA with
//! faer) → [index] → for each patient: [score] (kNN distance,
//! residual, density, support) → [calibrate] (cross-fitted
//! conformal p-values) → [verdict] (`supported`, `low_support`,
//! `invisible`, `insufficient_data`) → [output].
//!
//! Large patient files stream in bounded memory ([`Model::patient_stream`],
//! [`Model::assess_stream`]); [`Model::summary`] tells what a model holds.
//! The module layout is described in `docs/architecture.md`.
//!
//! ```
//! use nof1::{Params, Table, Verdict};
//!
//! // A reference cohort: two correlated features.
//! let mut values = Vec::new();
//! for i in 0..200 {
//!     let t = (i as f64 * 0.37).sin();
//!     values.extend_from_slice(&[t, 0.5 * t + 0.1 * (i as f64 * 1.3).cos()]);
//! }
//! let ids = (0..200).map(|i| format!("ref{i}")).collect();
//! let names = vec!["x".to_string(), "y".to_string()];
//! let reference = Table::from_rows(ids, names.clone(), values)?;
//!
//! let model = Params::default().k(10).alpha(0.05).fit(&reference)?;
//!
//! let patients = Table::from_rows(
//!     vec!["typical".into(), "far".into()],
//!     names,
//!     vec![0.2, 0.1, 9.0, -9.0],
//! )?;
//! let out = model.assess(&patients)?;
//! assert_eq!(out[1].verdict, Verdict::Invisible);
//! assert!(out[1].novelty > out[0].novelty);
//! # Ok::<(), nof1::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod atomic;
pub mod calibrate;
pub mod cpu;
pub mod error;
pub mod index;
pub mod marginal;
pub mod model;
pub mod output;
pub mod project;
pub mod report;
pub mod rng;
pub mod score;
pub mod standardise;
pub mod table;
pub mod verdict;

pub use error::{Error, ErrorKind, Position, Result};
pub use model::{IndexChoice, Model, ModelSummary, Params, Progress};
pub use project::ComponentRule;
pub use score::KnnStatistic;
pub use table::{Role, Table, TableOptions};
pub use verdict::{Assessment, Verdict, VerdictCounts};
