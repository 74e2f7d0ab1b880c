//! Dispatch of the subcommands. Everything for humans goes to stderr, prefixed `nof1:`.

mod args;
pub mod cleanup;
mod commands;
mod input;
mod progress;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;

use args::Cli;

/// Parses the arguments and runs the command.
pub fn run() -> Result<ExitCode> {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return Ok(ExitCode::from(code));
        }
    };
    cleanup::install().context("cannot install the signal handlers")?;
    if let Some(t) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(t.max(1))
            .build_global()
            .context("cannot configure the thread pool")?;
    }
    commands::dispatch(cli)
}
