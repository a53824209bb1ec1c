//! `archc ir FILE [--input CxHxW]`: the canonical IR dump.

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::error::Error;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct IrArgs {
    file: String,
    #[command(flatten)]
    compile: CompileArgs,
}

pub fn run(args: IrArgs) -> Result<ExitCode, Error> {
    let compiled = compile_file(&args.file, &args.compile.options())?;
    print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    for model in &compiled.result.models {
        print!("{}", crate::ir::dump(model));
    }
    Ok(ExitCode::from(if compiled.result.has_errors() { 1 } else { 0 }))
}
