//! `archc explain [CODE]`: the long story behind a diagnostic code.

use crate::diagnostics::{CODES, Code};
use crate::error::{ArgumentError, Error};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// A code (E0009) or lint name (uneven_stride); all codes when left out.
    code: Option<String>,
}

pub fn run(args: ExplainArgs) -> Result<ExitCode, Error> {
    let Some(text) = args.code else {
        for info in CODES {
            let lint = info.lint.map(|l| format!(" ({l})")).unwrap_or_default();
            println!("{}  {}{lint}", info.id, info.summary);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let code = Code::lookup(&text).ok_or(ArgumentError::NotACode { text })?;
    let info = code.info();
    println!("{}: {}\n\n{}", info.id, info.summary, info.explanation);
    Ok(ExitCode::SUCCESS)
}
