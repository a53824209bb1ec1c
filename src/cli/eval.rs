//! `archc eval MODEL --weights CKPT --data DATASET`: top-1/top-5, per-class accuracy
//! and the confusion matrix, in eval mode, on the test set.

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::backend::BackendKind;
use crate::data::dataset::{self, Pipeline, Source};
use crate::lower::weights::StateDict;
use crate::lower::{Network, Precision};
use crate::train::evaluate;
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
}

pub fn run(args: EvalArgs) -> Result<ExitCode, String> {
    let compiled = compile_file(&args.model, &args.compile.options())?;
    print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    let Some(model) = compiled.result.models.first() else {
        return Err(format!("`{}` has errors; nothing to evaluate", args.model));
    };
    let source = Source::parse(&args.data);
    let loaded = dataset::load(&source, args.data_dir.as_deref(), model.input)?;
    let test = loaded.test.unwrap_or(loaded.train);
    if test.shape() != model.input {
        return Err(format!(
            "`{}` images are {}, but `{}` takes {}",
            source.name(),
            test.shape(),
            model.name,
            model.input
        ));
    }
    let dict = StateDict::read(&args.weights)?;
    super::check_settings(&args.weights, &dict, &args.compile)?;
    // The checkpoint remembers the normalisation it was trained with.
    let (mean, std) = dict
        .normalization(test.channels)
        .or_else(|| source.standard_normalization())
        .unwrap_or_else(|| test.channel_stats());
    let pipeline = Pipeline { mean, std, crop_padding: 0, flip: false };
    let load_errors =
        |e: Vec<String>| format!("`{}` does not fit `{}`:\n  {}", args.weights.display(), model.name, e.join("\n  "));
    let precision = args.precision.unwrap_or_else(|| dict.precision());
    let evaluation = crate::with_backend!(args.backend, |B, device| {
        precision.check::<B>(args.backend, &device)?;
        let network = Network::<B>::new(model, &device).load_state_dict(&dict).map_err(load_errors)?;
        let network = network.with_precision(precision);
        evaluate::<B>(&network, &test, &pipeline, args.batch, &device)?
    })?;
    let per_class = evaluation.per_class();
    let png = args.confusion_png.clone().unwrap_or_else(|| args.weights.with_file_name("confusion.png"));
    if let Err(message) = crate::plots::confusion(&png, &test.classes, &evaluation.confusion) {
        eprintln!("warning: no confusion-matrix plot: {message}");
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "model": model.name, "data": source.name(), "images": test.len(),
                "loss": evaluation.loss, "top1": evaluation.top1, "top5": evaluation.top5,
                "per_class": test.classes.iter().zip(&per_class).map(|(c, a)| serde_json::json!({"class": c, "accuracy": a})).collect::<Vec<_>>(),
                "confusion": evaluation.confusion,
            })
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} on {} ({} images): top-1 {:.2}%, top-5 {:.2}%, loss {:.4}",
        model.name,
        source.name(),
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
