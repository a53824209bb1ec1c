//! `archc predict MODEL --weights W [--format human|json] [--backend ...] INPUT...`:
//! the arguments, and each input's five likeliest classes as lines or JSON. The job
//! is `predict::run`.

use super::{CompileArgs, print_diagnostics};
use crate::backend::BackendKind;
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
    /// Per-channel mean for images, e.g. 0.485,0.456,0.406 (default: from the checkpoint, else none).
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation, e.g. 0.229,0.224,0.225.
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Class names, one per line (default: from the checkpoint, else indices).
    #[arg(long)]
    labels: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
enum Format {
    Human,
    Json,
}

pub fn run(args: PredictArgs) -> Result<ExitCode, String> {
    let request = Request {
        model: args.model,
        weights: args.weights,
        inputs: args.inputs,
        compile: args.compile.options(),
        mean: args.mean,
        std: args.std,
        labels: args.labels,
        backend: args.backend,
    };
    let predictions =
        predict::run(&request, &mut |compiled| print_diagnostics(&compiled.sources, &compiled.result.diagnostics))?;
    for prediction in predictions {
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
