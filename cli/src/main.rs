//! The `nof1` command-line tool: a thin layer over the library.
//!
//! Exit codes:
//! - 0: success (`check`: no invisible patient);
//! - 1: `nof1 check` found an invisible patient (with `--strict`, also a
//!   low_support one), even when the reader of its stdout stopped early;
//! - 2: any error, including output lost to a closed pipe (`assess --out -
//!   | head` exits 2, never 0);
//! - 130 / 143 / 129: interrupted by SIGINT / SIGTERM / SIGHUP; incomplete
//!   output files are removed first (`command::cleanup`).

use nof1_cli::command as cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::run() {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe is an error like any other: output was lost.
            eprintln!("nof1: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
