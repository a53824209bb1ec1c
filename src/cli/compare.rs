//! `archc compare MODEL... --data DATASET`: trains each model (as `archc train`),
//! measures it (as `archc bench`), and writes one report directory: a Markdown report
//! with the comparison table, learning curves of all models on one plot, accuracy vs
//! MACs and vs parameters, and accuracy vs training-set size when several subsets ran.

use super::train::{self as train_cmd, TrainArgs, TrainOptions};
use super::{CompileArgs, compile_file, human, print_diagnostics, thousands};
use crate::bench::{self, Measurement, Mode, Plan, Target};
use crate::cost::{self, Convention, GroupBy, aligned, bytes, markdown};
use crate::ir::Model;
use crate::plots::{self, Axes, Series};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// The models' `.arch` files.
    #[arg(required = true)]
    models: Vec<String>,
    /// fashion-mnist, mnist, cifar10, cifar100, or an ImageFolder directory.
    #[arg(long)]
    data: String,
    /// Where the dataset's files are (as for `archc train`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training-set sizes to compare: stratified, seeded subsets of N images, or `all`
    /// (e.g. 1000,10000,all).
    #[arg(long, value_delimiter = ',', value_parser = parse_subset, default_value = "all")]
    subset: Vec<Option<usize>>,
    #[command(flatten)]
    compile: CompileArgs,
    #[command(flatten)]
    options: TrainOptions,
    /// Batch sizes at which inference latency is measured.
    #[arg(long, value_delimiter = ',', default_value = "1,32,128")]
    bench_batch: Vec<usize>,
    /// Timed iterations per latency measurement.
    #[arg(long, default_value_t = 10)]
    bench_iters: usize,
    /// The report directory (default: runs/compare-TIME).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn parse_subset(text: &str) -> Result<Option<usize>, String> {
    match text.trim() {
        "all" | "full" => Ok(None),
        n => match n.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!("`{text}` is not a training-set size: write a positive number or `all`")),
            Ok(n) => Ok(Some(n)),
        },
    }
}

/// One model trained on one training-set size, and measured.
#[derive(Serialize)]
struct Row {
    model: String,
    file: String,
    train_images: usize,
    params: u128,
    macs: u128,
    top1: f64,
    top5: f64,
    best_top1: f64,
    epochs: usize,
    train_seconds: f64,
    train_images_per_s: f64,
    /// Inference latency (median, ms) per batch size.
    latency_ms: Vec<(usize, f64)>,
    /// Peak memory of a training step at the training batch size.
    train_peak_bytes: Option<u64>,
    run: String,
    #[serde(skip)]
    curve: Vec<(f64, f64, f64)>,
}

pub fn run(args: CompareArgs) -> Result<ExitCode, String> {
    if args.bench_batch.contains(&0) || args.bench_iters == 0 {
        return Err("--bench-batch sizes and --bench-iters must be positive".into());
    }
    // Every model compiles before anything trains: a typo should not cost an hour.
    let mut models: Vec<(String, Model)> = Vec::new();
    for path in &args.models {
        let compiled = compile_file(path, &args.compile.options())?;
        print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
        let Some(model) = compiled.result.models.into_iter().next() else {
            return Err(format!("`{path}` has errors; nothing to compare"));
        };
        models.push((path.clone(), model));
    }
    let dir = args.out.clone().unwrap_or_else(|| {
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from("runs").join(format!("compare-{seconds}"))
    });
    std::fs::create_dir_all(dir.join("runs")).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;

    let threads = rayon::current_num_threads();
    let mut measured = Vec::new();
    for (_, model) in &models {
        println!("== measuring {} on {} ({threads} threads)", model.name, args.options.backend);
        measured.push(measure(model, &args, threads)?);
    }

    let mut rows = Vec::new();
    for subset in &args.subset {
        for ((path, model), (latency, peak)) in models.iter().zip(&measured) {
            let size = subset.map_or("all".to_string(), |n| n.to_string());
            let run_dir = dir.join("runs").join(format!("{}-{size}", unique_name(&models, model, path)));
            println!("== training {} on {size} images of {}", model.name, args.data);
            let trained = train_cmd::train(TrainArgs {
                model: Some(path.clone()),
                data: Some(args.data.clone()),
                data_dir: args.data_dir.clone(),
                compile: args.compile.clone(),
                options: args.options.clone(),
                subset: *subset,
                out: Some(run_dir.clone()),
                resume: None,
                stop_after: None,
            })?;
            let Some(last) = trained.history.last() else {
                return Err(format!("`{}` trained no epoch: give --epochs 1 or more", model.name));
            };
            let cost = cost::report(model, Convention::Core, 1, GroupBy::Layer);
            let seconds: f64 = trained.history.iter().map(|m| m.seconds).sum();
            let images = trained.train_images;
            rows.push(Row {
                model: model.name.clone(),
                file: path.clone(),
                train_images: images,
                params: cost.params,
                macs: cost.macs,
                top1: last.val_top1,
                top5: last.val_top5,
                best_top1: trained.history.iter().map(|m| m.val_top1).fold(0.0, f64::max),
                epochs: trained.history.len(),
                train_seconds: seconds,
                train_images_per_s: trained.history.iter().map(|m| m.images_per_s).sum::<f64>()
                    / trained.history.len() as f64,
                latency_ms: latency.clone(),
                train_peak_bytes: *peak,
                run: run_dir.display().to_string(),
                curve: trained.history.iter().map(|m| (m.epoch as f64, m.val_top1, m.train_loss)).collect(),
            });
        }
    }
    let report = render_report(&args, &rows, threads, dir.to_string_lossy().as_ref());
    crate::train::write_atomic(&dir.join("report.md"), &report)?;
    let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
    crate::train::write_atomic(&dir.join("results.json"), &(json + "\n"))?;
    draw(&dir, &args, &rows)?;
    println!("\n{}", table(&args, &rows, false));
    println!("report: {}", dir.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}

/// The name a model's run directories take: its network name, with the file's stem
/// added when two files define networks of the same name.
fn unique_name(models: &[(String, Model)], model: &Model, path: &str) -> String {
    let same = models.iter().filter(|(_, m)| m.name == model.name).count();
    if same > 1 {
        let stem = std::path::Path::new(path).file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        format!("{}-{stem}", model.name)
    } else {
        model.name.clone()
    }
}

type Latencies = Vec<(usize, f64)>;

/// Inference latency at each `--bench-batch`, and the peak memory of one training step.
fn measure(model: &Model, args: &CompareArgs, threads: usize) -> Result<(Latencies, Option<u64>), String> {
    let infer =
        Plan { batches: args.bench_batch.clone(), modes: vec![Mode::Infer], warmup: 2, iters: args.bench_iters };
    let train = Plan { batches: vec![args.options.batch.max(1)], modes: vec![Mode::Train], warmup: 1, iters: 2 };
    let mut quiet = |_: &Measurement| {};
    let (inference, training) = crate::with_backend!(args.options.backend, |B, device| {
        let target = Target { kind: args.options.backend, threads };
        type AD = burn::backend::Autodiff<B>;
        let inference = bench::measure::<AD>(model, &infer, &target, &device, &mut quiet)?;
        let training = bench::measure::<AD>(model, &train, &target, &device, &mut quiet)?;
        Ok::<_, String>((inference, training))
    })??;
    let latency = inference.iter().map(|m| (m.batch, m.latency_ms.median)).collect();
    Ok((latency, training.first().and_then(|m| m.peak_bytes)))
}

/// An option's value as written on the command line (`sgd`, `cosine`).
fn value_name(value: &impl clap::ValueEnum) -> String {
    value.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default()
}

fn percent(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// The comparison table, aligned text or Markdown.
fn table(args: &CompareArgs, rows: &[Row], markdown_table: bool) -> String {
    let mut header: Vec<String> =
        ["model", "train images", "params", "MACs", "top-1", "top-5", "best top-1", "time", "train img/s"]
            .map(String::from)
            .to_vec();
    header.extend(args.bench_batch.iter().map(|b| format!("latency b{b}")));
    header.push(format!("peak memory (train, b{})", args.options.batch));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                r.model.clone(),
                thousands(r.train_images as u128),
                human(r.params),
                human(r.macs),
                percent(r.top1),
                percent(r.top5),
                percent(r.best_top1),
                if r.train_seconds < 10.0 {
                    format!("{:.1} s", r.train_seconds)
                } else {
                    format!("{:.0} s", r.train_seconds)
                },
                format!("{:.1}", r.train_images_per_s),
            ];
            row.extend(r.latency_ms.iter().map(|(_, ms)| format!("{ms:.2} ms")));
            row.push(r.train_peak_bytes.map_or("-".into(), |b| bytes(b as u128)));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    if markdown_table { markdown(&header, &cells, 1) } else { aligned(&header, &cells, 1) }
}

fn render_report(args: &CompareArgs, rows: &[Row], threads: usize, dir: &str) -> String {
    let mut md = format!("# Comparison on {}\n\n", args.data);
    let command: Vec<String> = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    let o = &args.options;
    let evaluated_on = match o.val_split {
        Some(f) => format!("a validation split of {:.0}% of the training set", 100.0 * f),
        None => "the test set".to_string(),
    };
    let _ = writeln!(md, "Produced by `{}`.\n", command.join(" "));
    let _ = writeln!(
        md,
        "Each model trained for {} epochs with {} (learning rate {}, {} schedule, batch {}, seed {}) on the `{}` \
         backend, {threads} threads. \
         Accuracy is measured on {evaluated_on} in eval mode after the last epoch (top-1, top-5) and at the best epoch \
         (best top-1). Time is the whole run, evaluation included; images/s is the training passes' throughput. Latency is the median of {} eval-mode \
         forward passes on random input; peak memory is the resident-set growth of one training step.\n",
        o.epochs,
        value_name(&o.optimizer),
        o.lr.map_or("default".into(), |lr| lr.to_string()),
        value_name(&o.schedule),
        o.batch,
        o.seed,
        o.backend,
        args.bench_iters
    );
    let _ = writeln!(md, "## Results\n\n{}", table(args, rows, true));
    let _ = writeln!(md, "## Learning curves\n\n![validation top-1 and training loss per epoch](curves.png)\n");
    let _ = writeln!(md, "## Accuracy against cost\n\n![top-1 vs MACs](accuracy_vs_macs.png)\n");
    let _ = writeln!(md, "![top-1 vs parameters](accuracy_vs_params.png)\n");
    if args.subset.len() > 1 {
        let _ = writeln!(
            md,
            "## Accuracy against training-set size\n\n![top-1 vs training images](accuracy_vs_subset.png)\n"
        );
    }
    let _ = writeln!(md, "## Runs\n");
    for r in rows {
        let run = r.run.strip_prefix(dir).map(|p| p.trim_start_matches('/')).unwrap_or(&r.run);
        let _ = writeln!(
            md,
            "- {} on {} images: `{run}` (metrics.csv, checkpoints, curves.png)",
            r.model,
            thousands(r.train_images as u128)
        );
    }
    md
}

/// The rows of the largest training set (the one the cost plots and curves show).
fn largest(rows: &[Row]) -> Vec<&Row> {
    let most = rows.iter().map(|r| r.train_images).max().unwrap_or(0);
    rows.iter().filter(|r| r.train_images == most).collect()
}

fn draw(dir: &std::path::Path, args: &CompareArgs, rows: &[Row]) -> Result<(), String> {
    let last = largest(rows);
    let per_model = |f: &dyn Fn(&Row) -> Vec<(f64, f64)>| -> Vec<Series> {
        last.iter().enumerate().map(|(i, r)| (r.model.as_str(), f(r), plots::color(i))).collect()
    };
    let top1 = per_model(&|r| r.curve.iter().map(|&(e, a, _)| (e, 100.0 * a)).collect());
    let loss = per_model(&|r| r.curve.iter().map(|&(e, _, l)| (e, l)).collect());
    plots::atomic_png(&dir.join("curves.png"), (1400, 560), |root| {
        let (left, right) = root.split_horizontally(700);
        plots::line_chart(&left, &Axes { title: "validation top-1", x: "epoch", y: "top-1 (%)" }, &top1)?;
        plots::line_chart(&right, &Axes { title: "training loss", x: "epoch", y: "loss" }, &loss)
    })?;
    let macs = per_model(&|r| vec![(r.macs as f64 / 1e6, 100.0 * r.top1)]);
    let axes = Axes { title: "top-1 against multiply-accumulates", x: "MMACs per image", y: "top-1 (%)" };
    plots::single(&dir.join("accuracy_vs_macs.png"), (900, 600), &axes, &macs, false)?;
    let params = per_model(&|r| vec![(r.params as f64 / 1e6, 100.0 * r.top1)]);
    let axes = Axes { title: "top-1 against parameters", x: "parameters (millions)", y: "top-1 (%)" };
    plots::single(&dir.join("accuracy_vs_params.png"), (900, 600), &axes, &params, false)?;
    if args.subset.len() > 1 {
        let mut names: Vec<&str> = Vec::new();
        for r in rows {
            if !names.contains(&r.model.as_str()) {
                names.push(&r.model);
            }
        }
        let series: Vec<Series> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut points: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| r.model == *name)
                    .map(|r| ((r.train_images as f64).log10(), 100.0 * r.top1))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                (*name, points, plots::color(i))
            })
            .collect();
        let axes = Axes { title: "top-1 against training-set size", x: "log10 training images", y: "top-1 (%)" };
        plots::single(&dir.join("accuracy_vs_subset.png"), (900, 600), &axes, &series, true)?;
    }
    Ok(())
}
