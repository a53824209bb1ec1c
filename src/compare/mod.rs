//! The comparison job behind `archc compare MODEL... --data DATASET`: trains each
//! model (as `archc train` does), measures it (as `archc bench` does), and writes one
//! report directory: a Markdown report with the comparison table, learning curves of
//! all models on one plot, accuracy vs MACs and vs parameters, and accuracy vs
//! training-set size when several subsets ran. Progress goes to `Events`.

use crate::backend::BackendKind;
use crate::bench::{self, Measurement, Mode, Plan, Target};
use crate::cost::{self, Convention, GroupBy};
use crate::elaborate::Options;
use crate::elaborate::variants::{self, Variant};
use crate::error::{ArgumentError, Error, IoReason, RunError};
use crate::ir::Model;
use crate::plots::{self, Axes, DrawError, Series};
use crate::report::{aligned, bytes, human, markdown, thousands, write_atomic};
use crate::train::Warning;
use crate::train::job::{self, TrainOptions};
use serde::Serialize;
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// What to compare, and how to train and measure each model.
pub struct Request {
    /// The models' `.arch` files.
    pub models: Vec<String>,
    /// fashion-mnist, mnist, cifar10, cifar100, or an ImageFolder directory.
    pub data: String,
    pub data_dir: Option<PathBuf>,
    /// Training-set sizes: a stratified, seeded subset of N images, or all (`None`).
    pub subset: Vec<Option<usize>>,
    /// Network parameters and the values each takes; every combination runs.
    pub sweep: Vec<(String, Vec<String>)>,
    pub compile: Options,
    pub options: TrainOptions,
    /// Batch sizes at which inference latency is measured.
    pub bench_batch: Vec<usize>,
    /// Timed iterations per latency measurement.
    pub bench_iters: usize,
    /// The report directory (default: runs/compare-TIME).
    pub out: Option<PathBuf>,
    /// The command that asked for the comparison, as the report quotes it.
    pub command: String,
    /// Refuse a network whose memory estimate exceeds what the device can give
    /// (`cost::admission`); off with `--no-memory-check`.
    pub memory_check: bool,
}

/// What the caller hears: each model's training (as `archc train` tells it), and
/// when each model is measured and trained.
pub trait Events: job::Events {
    fn measuring(&mut self, _label: &str, _backend: BackendKind, _threads: usize) {}
    fn training(&mut self, _label: &str, _images: &str, _data: &str) {}
}

/// A finished comparison: its rows, the report directory, and the comparison table as
/// aligned text.
pub struct Compared {
    pub rows: Vec<Row>,
    pub dir: PathBuf,
    pub table: String,
}

/// One model trained on one training-set size, and measured.
#[derive(Serialize)]
pub struct Row {
    /// The network's name (with its file's stem when two files share it).
    pub model: String,
    /// Which `--subset` entry this row trained on.
    pub subset_index: usize,
    /// What top-1 and top-5 were measured on.
    pub evaluated_on: String,
    pub file: String,
    pub train_images: usize,
    pub params: u128,
    pub macs: u128,
    pub top1: f64,
    pub top5: f64,
    pub best_top1: f64,
    pub epochs: usize,
    pub train_seconds: f64,
    pub train_images_per_s: f64,
    /// Inference latency (median, ms) per batch size.
    pub latency_ms: Vec<(usize, f64)>,
    /// Peak memory of a training step at the training batch size.
    pub train_peak_bytes: Option<u64>,
    pub run: String,
    #[serde(skip)]
    pub curve: Vec<(f64, f64, f64)>,
}

/// Trains and measures every model as `archc compare` does and writes the report
/// directory.
pub fn run(args: &Request, events: &mut dyn Events) -> Result<Compared, Error> {
    if args.bench_batch.contains(&0) || args.bench_iters == 0 {
        return Err(ArgumentError::BenchSizes.into());
    }
    // Everything that can be checked is checked before anything trains: a typo should
    // not cost an hour.
    args.options.check()?;
    job::placement(&args.options)?;
    for (i, path) in args.models.iter().enumerate() {
        if args.models[..i].contains(path) {
            return Err(ArgumentError::FileTwice { path: path.clone() }.into());
        }
    }
    for (i, size) in args.subset.iter().enumerate() {
        if args.subset[..i].contains(size) {
            return Err(ArgumentError::SubsetTwice { size: *size }.into());
        }
    }
    let variants =
        variants::compile_variants(&args.models, &args.compile, &args.sweep, "--sweep", &mut |c| events.compiled(c))?;
    let source = crate::data::dataset::Source::parse(&args.data);
    for variant in &variants {
        crate::data::dataset::load_for(&source, args.data_dir.as_deref(), &variant.model)?;
    }
    if args.memory_check {
        use crate::cost::admission::Purpose;
        let sgd = args.options.optimizer == crate::train::OptimizerKind::Sgd;
        let train = Purpose::Train { state_copies: if sgd { 1 } else { 2 } };
        let bench_batch = args.bench_batch.iter().copied().max().unwrap_or(1) as u64;
        for variant in &variants {
            crate::backend::admit(args.options.backend, &variant.model, train, args.options.batch as u64)?;
            crate::backend::admit(args.options.backend, &variant.model, Purpose::Infer, bench_batch)?;
        }
    }
    let labels: Vec<String> = variants.iter().map(|v| unique_label(&variants, v)).collect();
    for (i, label) in labels.iter().enumerate() {
        if labels[..i].contains(label) {
            return Err(ArgumentError::SameLabel { label: label.clone() }.into());
        }
    }
    let dir = crate::report::files::out_dir(args.out.as_deref(), "compare")?;
    // Held to the end: a second comparison into the same directory is refused.
    let _lock = crate::report::files::lock_dir(&dir)?;
    if dir.join("config.json").exists() {
        return Err(RunError::NotForComparison { dir }.into());
    }
    if dir.join("report.md").exists() || dir.join("runs").exists() {
        return Err(RunError::AlreadyAComparison { dir }.into());
    }

    // Trained and measured on this thread, which computes as one of the kernels' own
    // (as `archc bench` does), unless several devices train.
    let threads = crate::backend::use_threads(None, args.options.devices.is_none())?;
    let mut measured = Vec::new();
    for (variant, label) in variants.iter().zip(&labels) {
        events.measuring(label, args.options.backend, threads);
        measured.push(measure(&variant.model, args, threads)?);
    }

    let mut rows = Vec::new();
    for (subset_index, subset) in args.subset.iter().enumerate() {
        for ((variant, (latency, peak)), label) in variants.iter().zip(&measured).zip(&labels) {
            let model = &variant.model;
            let size = subset.map_or("all".to_string(), |n| n.to_string());
            let run_dir = dir.join("runs").join(format!("{}-{size}", file_name(label)));
            events.training(label, &size, &args.data);
            let request = job::Request {
                model: Some(variant.path.clone()),
                data: Some(args.data.clone()),
                data_dir: args.data_dir.clone(),
                compile: Options { set: variant.settings.clone(), ..args.compile.clone() },
                options: args.options.clone(),
                subset: *subset,
                out: Some(run_dir.clone()),
                resume: None,
                stop_after: None,
                extend_to: None,
                memory_check: args.memory_check,
                given: Vec::new(),
            };
            let trained = job::run(request, events)?;
            let Some(last) = trained.history.last() else {
                return Err(RunError::NoEpoch { model: label.clone() }.into());
            };
            let cost = cost::report(model, Convention::Core, 1, GroupBy::Layer);
            let seconds: f64 = trained.history.iter().map(|m| m.seconds).sum();
            let images = trained.train_images;
            rows.push(Row {
                model: label.clone(),
                subset_index,
                evaluated_on: trained.evaluated_on.clone(),
                file: variant.path.clone(),
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
    // A picture that cannot be drawn (no font, say) costs the picture, not the runs.
    let pictures = draw(&dir, args, &rows, events);
    let report = render_report(args, &rows, threads, dir.to_string_lossy().as_ref(), &pictures);
    write_atomic(&dir.join("report.md"), &report)?;
    let json = serde_json::to_string_pretty(&rows)
        .map_err(|e| Error::Write { path: dir.join("results.json"), reason: IoReason::Other(e.to_string()) })?;
    write_atomic(&dir.join("results.json"), json + "\n")?;
    Ok(Compared { table: table(args, &rows, false), rows, dir })
}

/// How a model is called in the report: its network name and swept values, with the
/// file's stem added when two files define networks of the same name.
fn unique_label(variants: &[Variant], variant: &Variant) -> String {
    let same = variants.iter().filter(|v| v.label == variant.label).count();
    if same > 1 {
        let stem = std::path::Path::new(&variant.path).file_stem().map(|s| s.to_string_lossy().to_string());
        format!("{} ({})", variant.label, stem.unwrap_or_default())
    } else {
        variant.label.clone()
    }
}

/// A label as a directory name: `deepnet skip=false` → `deepnet-skip-false`.
fn file_name(label: &str) -> String {
    let name: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() || "._".contains(c) { c } else { '-' }).collect();
    name.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

type Latencies = Vec<(usize, f64)>;

/// Inference latency at each `--bench-batch`, and the peak memory of one training step.
fn measure(model: &Model, args: &Request, threads: usize) -> Result<(Latencies, Option<u64>), Error> {
    let infer =
        Plan { batches: args.bench_batch.clone(), modes: vec![Mode::Infer], warmup: 2, iters: args.bench_iters };
    let train = Plan { batches: vec![args.options.batch], modes: vec![Mode::Train], warmup: 1, iters: 2 };
    let mut quiet = |_: &Measurement| {};
    let (inference, training) = crate::with_backend!(args.options.backend, |B, device| {
        let target = Target { kind: args.options.backend, precision: args.options.precision, threads };
        type AD = burn::backend::Autodiff<B>;
        let inference = bench::measure::<AD>(model, &infer, &target, &device, &mut quiet)?;
        let training = bench::measure::<AD>(model, &train, &target, &device, &mut quiet)?;
        Ok::<_, Error>((inference, training))
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
fn table(args: &Request, rows: &[Row], markdown_table: bool) -> String {
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

fn render_report(args: &Request, rows: &[Row], threads: usize, dir: &str, pictures: &[&str]) -> String {
    let mut md = format!("# Comparison on {}\n\n", args.data);
    let o = &args.options;
    let sgd = o.optimizer == crate::train::OptimizerKind::Sgd;
    let lr = o.lr.unwrap_or(if sgd { 0.1 } else { 1e-3 });
    let weight_decay = o.weight_decay.unwrap_or(if sgd { 5e-4 } else { 0.01 });
    let mut augmentation = Vec::new();
    if o.crop_padding > 0 {
        augmentation.push(format!("random crops after {}-pixel padding", o.crop_padding));
    }
    if o.flip {
        augmentation.push("horizontal flips".to_string());
    }
    let augmentation = if augmentation.is_empty() { "no augmentation".to_string() } else { augmentation.join(" and ") };
    let evaluated_on: Vec<&str> = rows.iter().map(|r| r.evaluated_on.as_str()).collect();
    let evaluated_on = match evaluated_on.first() {
        Some(first) if evaluated_on.iter().all(|e| e == first) => first.to_string(),
        _ => "each run's validation set (see its run directory)".to_string(),
    };
    let memory = match o.backend {
        crate::backend::BackendKind::Cuda => {
            "peak memory is the growth of the CUDA allocator's reserved memory over one training step, all models \
             measured in one process (a later model may reuse memory an earlier one reserved)"
        }
        _ => "peak memory is the growth of the process's resident set over one training step",
    };
    let mut place = format!("the `{}` backend", o.backend);
    if let Some(devices) = &o.devices {
        place.push_str(&format!(" (devices {devices})"));
    }
    if o.precision != crate::lower::Precision::F32 {
        place.push_str(&format!(" in {} mixed precision", o.precision));
    }
    let _ = writeln!(md, "Produced by `{}`.\n", args.command);
    let _ = writeln!(
        md,
        "Each model trained for {} epochs with {} (learning rate {lr}, {} schedule, weight decay {weight_decay}, \
         batch {}, {augmentation}, seed {}) on {place}, {threads} threads. Top-1 and top-5 are measured on \
         {evaluated_on} in eval mode after the last epoch; best top-1 is the best epoch on the same images, so it is \
         optimistic. Time is the whole run (data loading, evaluation and checkpoints included); images/s is the \
         training passes' throughput. Latency is the median of {} eval-mode forward passes on random input; {memory}.\n",
        o.epochs,
        value_name(&o.optimizer),
        value_name(&o.schedule),
        o.batch,
        o.seed,
        args.bench_iters
    );
    let _ = writeln!(md, "## Results\n\n{}", table(args, rows, true));
    let has = |name: &str| pictures.contains(&name);
    if has("curves.png") {
        let _ = writeln!(md, "## Learning curves\n\n![validation top-1 and training loss per epoch](curves.png)\n");
    }
    if has("accuracy_vs_macs.png") || has("accuracy_vs_params.png") {
        let _ = writeln!(md, "## Accuracy against cost\n");
        if has("accuracy_vs_macs.png") {
            let _ = writeln!(md, "![top-1 vs MACs](accuracy_vs_macs.png)\n");
        }
        if has("accuracy_vs_params.png") {
            let _ = writeln!(md, "![top-1 vs parameters](accuracy_vs_params.png)\n");
        }
    }
    if has("accuracy_vs_subset.png") {
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

/// The rows of the largest training set (the one the cost plots and curves show): one
/// `--subset` entry's rows, even when two entries came to the same size.
fn largest(rows: &[Row]) -> Vec<&Row> {
    let Some(most) = rows.iter().max_by_key(|r| (r.train_images, std::cmp::Reverse(r.subset_index))) else {
        return Vec::new();
    };
    rows.iter().filter(|r| r.subset_index == most.subset_index).collect()
}

/// Draws the report's pictures and returns those written; one that fails is a warning.
fn draw(dir: &Path, args: &Request, rows: &[Row], events: &mut dyn Events) -> Vec<&'static str> {
    let mut written = Vec::new();
    let mut keep = |name: &'static str, result: Result<(), DrawError>| match result {
        Ok(()) => written.push(name),
        Err(reason) => events.warning(&Warning::NotDrawn { picture: name.to_string(), reason: reason.to_string() }),
    };
    let last = largest(rows);
    let per_model = |f: &dyn Fn(&Row) -> Vec<(f64, f64)>| -> Vec<Series> {
        last.iter().enumerate().map(|(i, r)| (r.model.as_str(), f(r), plots::color(i))).collect()
    };
    let top1 = per_model(&|r| r.curve.iter().map(|&(e, a, _)| (e, 100.0 * a)).collect());
    let loss = per_model(&|r| r.curve.iter().map(|&(e, _, l)| (e, l)).collect());
    keep(
        "curves.png",
        plots::atomic_png(&dir.join("curves.png"), (1400, 560), |root| {
            let (left, right) = root.split_horizontally(700);
            plots::line_chart(&left, &Axes { title: "validation top-1", x: "epoch", y: "top-1 (%)" }, &top1)?;
            plots::line_chart(&right, &Axes { title: "training loss", x: "epoch", y: "loss" }, &loss)
        }),
    );
    let macs = per_model(&|r| vec![(r.macs as f64 / 1e6, 100.0 * r.top1)]);
    let axes = Axes { title: "top-1 against multiply-accumulates", x: "MMACs per image", y: "top-1 (%)" };
    keep("accuracy_vs_macs.png", plots::single(&dir.join("accuracy_vs_macs.png"), (900, 600), &axes, &macs, false));
    let params = per_model(&|r| vec![(r.params as f64 / 1e6, 100.0 * r.top1)]);
    let axes = Axes { title: "top-1 against parameters", x: "parameters (millions)", y: "top-1 (%)" };
    keep(
        "accuracy_vs_params.png",
        plots::single(&dir.join("accuracy_vs_params.png"), (900, 600), &axes, &params, false),
    );
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
        keep(
            "accuracy_vs_subset.png",
            plots::single(&dir.join("accuracy_vs_subset.png"), (900, 600), &axes, &series, true),
        );
    }
    written
}
