//! The `nof1` command-line tool and its tooling, over the `nof1` library.
//!
//! This crate holds what a library user does not need: argument parsing and
//! the subcommands ([`command`]), the bundled 1000 Genomes demonstration
//! ([`demo`]), the evaluations ([`eval`]), synthetic cohorts ([`synth`]) and
//! the speed benchmark ([`mod@bench`]) and the multi-omic example ([`omics`]). The binary (`src/main.rs`) only maps the
//! outcome of [`command::run`] to an exit code.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bench;
pub mod command;
pub mod demo;
pub mod eval;
pub mod omics;
pub mod synth;
