//! `archc eval MODEL --weights CKPT --data DATASET`: top-1/top-5, per-class accuracy
//! and the confusion matrix, in eval mode, on the test set.

use super::{CompileArgs, print_diagnostics};
use crate::backend::BackendKind;
use crate::error::Error;
use crate::lower::Precision;
use crate::train::evaluate::{self, Evaluated};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct EvalArgs {
    model: String,
    /// Weights (`best.safetensors` of a run, or any torch-named state dict).
    #[arg(long)]
    weights: PathBuf,
    #[arg(long)]
    data: String,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    compile: CompileArgs,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
    /// Compute precision (default: the one the weights were trained in, so that eval
    /// reports what training's validation did).
    #[arg(long, value_enum)]
    precision: Option<Precision>,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Where to draw the confusion matrix (default: confusion.png beside the weights).
    #[arg(long)]
    confusion_png: Option<PathBuf>,
    #[command(flatten)]
    memory: super::MemoryArgs,
}

pub fn run(args: EvalArgs) -> Result<ExitCode, Error> {
    let request = evaluate::Request {
        model: args.model.clone(),
        weights: args.weights.clone(),
        data: args.data.clone(),
        data_dir: args.data_dir.clone(),
        compile: args.compile.options(),
        batch: args.batch,
        backend: args.backend,
        memory_check: args.memory.check(),
        precision: args.precision,
        confusion_png: args.confusion_png.clone(),
    };
    let Evaluated { model, data, test, evaluation, warnings, .. } =
        evaluate::run(&request, &mut |compiled| print_diagnostics(&compiled.sources, &compiled.result.diagnostics))?;
    let per_class = evaluation.per_class();
    for warning in &warnings {
        eprintln!("warning: {warning}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": model, "data": data, "images": test.len(),
                "loss": evaluation.loss, "top1": evaluation.top1, "top5": evaluation.top5,
                "per_class": test.classes.iter().zip(&per_class).map(|(c, a)| serde_json::json!({"class": c, "accuracy": a})).collect::<Vec<_>>(),
                "confusion": evaluation.confusion,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} on {} ({} images): top-1 {:.2}%, top-5 {:.2}%, loss {:.4}",
        model,
        data,
        test.len(),
        evaluation.top1 * 100.0,
        evaluation.top5 * 100.0,
        evaluation.loss
    );
    let width = test.classes.iter().map(|c| c.chars().count()).max().unwrap_or(5).max(5);
    println!("\nper class:");
    for (class, accuracy) in test.classes.iter().zip(&per_class) {
        println!("  {class:<width$}  {:6.2}%", accuracy * 100.0);
    }
    println!("\nconfusion matrix (rows: true class, columns: predicted):");
    for (class, row) in test.classes.iter().zip(&evaluation.confusion) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:>5}")).collect();
        println!("  {class:<width$} {}", cells.join(""));
    }
    Ok(ExitCode::SUCCESS)
}
