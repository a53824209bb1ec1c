//! `archc export MODEL --format onnx|pytorch --out FILE`: the arguments, and one line
//! saying what was written. The job is `export::run`.

use super::{CompileArgs, print_diagnostics};
use crate::error::Error;
use crate::export::{self, Batch, Format, Request};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The model's `.arch` file.
    model: String,
    /// onnx (a ModelProto with the weights), pytorch (a self-contained Python module) or
    /// safetensors (freshly initialised weights, `--seed`).
    #[arg(long, value_enum)]
    format: Format,
    /// The file to write.
    #[arg(long)]
    out: PathBuf,
    /// ONNX: the weights to put in the file (safetensors or a PyTorch pickle); without
    /// it, freshly initialised weights (`--seed`).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// ONNX and safetensors: the seed of freshly initialised weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// ONNX: the operator set (17 to 21).
    #[arg(long, default_value_t = 17)]
    opset: i64,
    /// ONNX: the batch dimension, `dynamic` (any size) or a fixed number.
    #[arg(long, default_value = "dynamic", value_parser = parse_batch)]
    batch: Batch,
    #[command(flatten)]
    compile: CompileArgs,
}

fn parse_batch(text: &str) -> Result<Batch, String> {
    match text {
        "dynamic" => Ok(Batch::Dynamic),
        _ => match text.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Batch::Fixed(n)),
            _ => Err(format!("`{text}` is neither `dynamic` nor a batch size of 1 or more")),
        },
    }
}

pub fn run(args: ExportArgs) -> Result<ExitCode, Error> {
    let request = Request {
        model: args.model,
        compile: args.compile.options(),
        format: args.format,
        out: args.out,
        weights: args.weights,
        seed: args.seed,
        opset: args.opset,
        batch: args.batch,
    };
    let exported =
        export::run(&request, &mut |compiled| print_diagnostics(&compiled.sources, &compiled.result.diagnostics))?;
    let size = crate::format::bytes(exported.bytes as u128);
    let weights = match &exported.weights {
        Some(path) => format!("weights from {}", path.display()),
        None => format!("weights freshly initialised (seed {})", request.seed),
    };
    match (&exported.onnx, exported.format) {
        (_, Format::Safetensors) => println!(
            "wrote {} ({size}): {}'s weights freshly initialised (seed {}), by PyTorch name",
            exported.path.display(),
            exported.model,
            request.seed
        ),
        (Some(summary), _) => println!(
            "wrote {} ({size}): {} as ONNX opset {}, {} nodes, {} initializers ({} weights), {weights}\noperators: {}",
            exported.path.display(),
            exported.model,
            request.opset,
            summary.nodes,
            summary.initializers,
            summary.weights,
            summary.operators.join(", ")
        ),
        (None, _) => println!(
            "wrote {} ({size}): {} as a PyTorch module (classes {}); load archc's weights with `model.load_state_dict(safetensors.torch.load_file(PATH))`",
            exported.path.display(),
            exported.model,
            exported.classes.join(", ")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
