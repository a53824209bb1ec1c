//! `archc lsp`: the language server, over stdin and stdout (editors start it).

use crate::error::Error;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct LspArgs {}

pub fn run(_args: LspArgs) -> Result<ExitCode, Error> {
    match crate::lsp::run_stdio() {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::from(1))
        }
    }
}
