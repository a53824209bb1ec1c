//! `archc flops` (filled in by the cost issue).
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct FlopsArgs {
    files: Vec<String>,
}

pub fn run(_args: FlopsArgs) -> Result<ExitCode, String> {
    Ok(ExitCode::SUCCESS)
}
