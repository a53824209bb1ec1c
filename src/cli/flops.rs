//! `archc flops FILE... [--input CxHxW] [--batch N] [--by layer|block|stage]
//!  [--convention core|fvcore|full] [--format table|markdown|csv|json]`

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::cost::{self, Convention, Format, GroupBy};
use crate::error::Error;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct FlopsArgs {
    /// `.arch` files; several give a side-by-side summary after the tables.
    #[arg(required = true)]
    files: Vec<String>,
    #[command(flatten)]
    compile: CompileArgs,
    /// Batch size: multiplies MACs and activations.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Rows per op, per block instance, or per top-level stage.
    #[arg(long, value_enum, default_value = "layer")]
    by: GroupBy,
    /// What counts as a multiply-accumulate (see README, "Counting conventions").
    #[arg(long, value_enum, default_value = "core")]
    convention: Convention,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn run(args: FlopsArgs) -> Result<ExitCode, Error> {
    let options = args.compile.options();
    let mut reports = Vec::new();
    let mut failed = false;
    for path in &args.files {
        let compiled = match compile_file(path, &options) {
            Ok(compiled) => compiled,
            Err(message) => {
                eprintln!("error: {message}");
                failed = true;
                continue;
            }
        };
        print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
        if compiled.result.has_errors() {
            eprintln!("error: `{path}` has errors; no cost table");
            failed = true;
            continue;
        }
        for model in &compiled.result.models {
            let report = cost::report(model, args.convention, args.batch, args.by);
            print!("{}", cost::render(&report, args.format));
            if matches!(args.format, Format::Table | Format::Markdown) {
                println!();
            }
            reports.push(report);
        }
    }
    if reports.len() > 1 && matches!(args.format, Format::Table | Format::Markdown) {
        print!("{}", cost::render_comparison(&reports, args.format));
    }
    Ok(ExitCode::from(if failed { 1 } else { 0 }))
}
