//! `archc predict MODEL --weights W [--format human|json] [--backend ...] INPUT...`
//! INPUT is a PNG/JPEG image (resized and normalised for the model) or a `.npy`
//! float32 array [N, C, H, W] used as is.

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::backend::BackendKind;
use crate::data::images;
use crate::data::npy;
use crate::ir::Shape;
use crate::lower::weights::StateDict;
use crate::lower::{Network, Value};
use burn::prelude::*;
use burn::tensor::TensorData;
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
    let compiled = compile_file(&args.model, &args.compile.options())?;
    print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    let Some(model) = compiled.result.models.first() else {
        return Err(format!("`{}` has errors; nothing to run", args.model));
    };
    let (Shape::Image { c, h, w }, Shape::Vector { d: classes }) = (model.input, model.output) else {
        return Err(format!(
            "`predict` runs image classifiers; `{}` maps {} to {}",
            model.name, model.input, model.output
        ));
    };
    let dict = StateDict::read(&args.weights)?;
    super::check_settings(&args.weights, &dict, &args.compile)?;
    let normalize = super::image_normalization(&args.mean, &args.std, Some(&dict), c as usize)?;
    let names = class_names(&args, &dict, classes as usize)?;
    let (c, h, w) = (c as usize, h as usize, w as usize);
    let mut batches: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for input in &args.inputs {
        let is_npy = input.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        if is_npy {
            let array = npy::read(input)?;
            if array.shape.len() != 4 || array.shape[1..] != [c, h, w] {
                return Err(format!(
                    "`{}` has shape {:?}, but `{}` takes [N, {c}, {h}, {w}]",
                    input.display(),
                    array.shape,
                    model.name
                ));
            }
            batches.push((input.display().to_string(), array.shape, array.data));
        } else {
            let data = images::load(input, c, h, w, normalize.as_ref())?;
            batches.push((input.display().to_string(), vec![1, c, h, w], data));
        }
    }
    let load_errors = |errors: Vec<String>| {
        format!("`{}` does not fit `{}`:\n  {}", args.weights.display(), model.name, errors.join("\n  "))
    };
    let logits: Vec<Vec<Vec<f32>>> = crate::with_backend!(args.backend, |B, device| {
        let network = Network::<B>::new(model, &device).load_state_dict(&dict).map_err(load_errors)?.for_inference();
        batches
            .iter()
            .map(|(_, shape, data)| {
                let x = Tensor::<B, 4>::from_data(TensorData::new(data.clone(), shape.clone()), &device);
                let y = network.forward(Value::Image(x)).vector();
                let values = y.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default();
                values.chunks(classes as usize).map(<[f32]>::to_vec).collect()
            })
            .collect()
    })?;
    print_predictions(&args, &batches, &logits, &names);
    Ok(ExitCode::SUCCESS)
}

fn class_names(args: &PredictArgs, dict: &StateDict, classes: usize) -> Result<Vec<String>, String> {
    let names: Vec<String> = match (&args.labels, dict.metadata.get("classes")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read `{}`: {e}", path.display()))?
            .lines()
            .map(str::to_string)
            .collect(),
        (None, Some(list)) => serde_json::from_str(list).unwrap_or_default(),
        (None, None) => Vec::new(),
    };
    if !names.is_empty() && names.len() != classes {
        return Err(format!("{} class names for a model with {classes} outputs", names.len()));
    }
    Ok((0..classes).map(|i| names.get(i).cloned().unwrap_or_else(|| i.to_string())).collect())
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

fn top5(probabilities: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
    order.truncate(5);
    order
}

fn print_predictions(
    args: &PredictArgs,
    batches: &[(String, Vec<usize>, Vec<f32>)],
    logits: &[Vec<Vec<f32>>],
    names: &[String],
) {
    for ((file, shape, _), rows) in batches.iter().zip(logits) {
        for (i, row) in rows.iter().enumerate() {
            let label = if shape[0] > 1 { format!("{file}[{i}]") } else { file.clone() };
            let p = softmax(row);
            let best = top5(&p);
            match args.format {
                Format::Human => {
                    println!("{label}");
                    for k in &best {
                        println!("  {:>6.2}%  {}", p[*k] * 100.0, names[*k]);
                    }
                }
                Format::Json => {
                    let top: Vec<_> =
                        best.iter().map(|k| json!({"class": k, "name": names[*k], "probability": p[*k]})).collect();
                    println!("{}", json!({"input": label, "logits": row, "top5": top}));
                }
            }
        }
    }
}
