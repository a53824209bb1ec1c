//! `archc predict MODEL --weights W [--format human|json] [--backend ...] INPUT...`:
//! the arguments, and each input's five likeliest classes as lines or JSON. The job
//! is `predict::run`.

use super::{CompileArgs, Format, NormalizeArgs, print_diagnostics};
use crate::backend::BackendKind;
use crate::error::Error;
use crate::predict::{self, Request};
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PredictArgs {
    /// The model's `.arch` file.
    model: String,
    /// Weights: `.safetensors` (archc's checkpoints, or any torch-named state dict) or PyTorch `.pt`/`.pth`.
    #[arg(long)]
    weights: PathBuf,
    /// Images (PNG, JPEG) or `.npy` arrays of shape [N, C, H, W], float32.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    compile: CompileArgs,
    #[command(flatten)]
    normalize: NormalizeArgs,
    /// Class names, one per line (default: from the checkpoint, else indices).
    #[arg(long)]
    labels: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    #[command(flatten)]
    memory: super::MemoryArgs,
}

pub fn run(args: PredictArgs) -> Result<ExitCode, Error> {
    let request = Request {
        model: args.model,
        weights: args.weights,
        inputs: args.inputs,
        compile: args.compile.options(),
        mean: args.normalize.mean,
        std: args.normalize.std,
        labels: args.labels,
        backend: args.backend,
        memory_check: args.memory.check(),
    };
    let predicted =
        predict::run(&request, &mut |compiled| print_diagnostics(&compiled.sources, &compiled.result.diagnostics))?;
    for warning in &predicted.warnings {
        eprintln!("warning: {warning}");
    }
    for prediction in predicted.predictions {
        match args.format {
            Format::Human => {
                println!("{}", prediction.input);
                for (_, name, p) in &prediction.top5 {
                    println!("  {:>6.2}%  {name}", p * 100.0);
                }
            }
            Format::Json => {
                let top: Vec<_> = prediction
                    .top5
                    .iter()
                    .map(|(k, name, p)| json!({"class": k, "name": name, "probability": p}))
                    .collect();
                println!("{}", json!({"input": prediction.input, "logits": prediction.logits, "top5": top}));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
