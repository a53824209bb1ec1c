//! `archc`: parses arguments and maps outcomes to exit codes (0 ok, 1 errors found or
//! a file could not be used, 2 usage errors). Everything else is in `archc::cli`.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = archc::cli::Cli::parse();
    archc::cli::run(cli)
}
