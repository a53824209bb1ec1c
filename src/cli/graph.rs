//! `archc graph MODEL [--format svg|html|dot] [--level stage|block|layer] [--out FILE]`:
//! a picture of the network with every shape and cost, written to a file or stdout.

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::error::{ArgumentError, Error, Purpose};
use crate::graph::{self, Format, Level};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct GraphArgs {
    /// The model's `.arch` file.
    model: String,
    /// svg, html (explorable, self-contained) or dot (Graphviz); default: from --out's
    /// extension, else svg.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// One box per stage, per block instance, or per layer (the HTML page opens and
    /// closes them on click).
    #[arg(long, value_enum, default_value = "block")]
    level: Level,
    /// The file to write (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    compile: CompileArgs,
}

pub fn run(args: GraphArgs) -> Result<ExitCode, Error> {
    let format = match (args.format, args.out.as_deref()) {
        (Some(format), _) => format,
        (None, None) => Format::Svg,
        (None, Some(out)) => Format::of(out).ok_or_else(|| ArgumentError::GraphFormat { out: out.to_path_buf() })?,
    };
    let compiled = compile_file(&args.model, &args.compile.options())?;
    print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    let Some(model) = compiled.result.models.first().filter(|_| !compiled.result.has_errors()) else {
        return Err(Error::HasErrors { path: args.model, purpose: Purpose::Draw });
    };
    let text = graph::draw(model, &compiled.sources, format, args.level);
    match &args.out {
        Some(path) => {
            crate::report::write_atomic(path, &text)?;
            println!(
                "wrote {} ({}): {} at --level {}",
                path.display(),
                crate::format::bytes(text.len() as u128),
                model.name,
                args.level.name()
            );
        }
        None => super::print_out(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}
