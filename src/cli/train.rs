//! `archc train MODEL --data DATASET [options]` and `--resume RUN_DIR`.

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::backend::BackendKind;
use crate::data::dataset::{self, Dataset, Pipeline, Source};
use crate::ir::{Model, Shape};
use crate::lower::Precision;
use crate::train::schedule::{LrPlan, Schedule};
use crate::train::{EpochMetrics, Hyper, Observer, OptimizerKind, RunDir, Session};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Clone, Serialize, Deserialize)]
pub struct TrainArgs {
    /// The model's `.arch` file (not needed with --resume).
    #[arg(required_unless_present = "resume")]
    pub model: Option<String>,
    /// fashion-mnist, mnist, cifar10, cifar100, or an ImageFolder directory.
    #[arg(long, required_unless_present = "resume")]
    pub data: Option<String>,
    /// Where the dataset's files are (default: /usr/share/datasets/fashion-mnist for
    /// Fashion-MNIST, /usr/share/datasets/mnist, ./cifar-10-batches-bin, ./cifar-100-binary).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    #[serde(skip)]
    pub compile: CompileArgs,
    #[command(flatten)]
    #[serde(flatten)]
    pub options: TrainOptions,
    /// Train on a stratified, seeded subset of N images.
    #[arg(long)]
    pub subset: Option<usize>,
    /// The run directory (default: runs/MODEL-DATA-TIME).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[arg(long)]
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Stop after this many epochs in total, as if interrupted (for testing --resume).
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub stop_after: Option<usize>,
}

/// How to train, apart from what and on which data: shared by `archc train` and
/// `archc compare`.
#[derive(clap::Args, Clone, Serialize, Deserialize)]
pub struct TrainOptions {
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    #[arg(long, value_enum, default_value = "sgd")]
    pub optimizer: OptimizerKind,
    /// Learning rate (default 0.1 for SGD, 0.001 for AdamW).
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long, default_value_t = 0.9)]
    pub momentum: f64,
    #[arg(long)]
    pub nesterov: bool,
    /// Weight decay (default 5e-4 for SGD, 0.01 for AdamW).
    #[arg(long)]
    pub weight_decay: Option<f64>,
    #[arg(long, value_enum, default_value = "cosine")]
    pub schedule: Schedule,
    /// StepLR: epochs between decays.
    #[arg(long, default_value_t = 30)]
    pub step_size: usize,
    /// StepLR: decay factor.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// Epochs of linear warm-up.
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f64,
    /// Clip gradients to this global L2 norm.
    #[arg(long)]
    pub clip_grad_norm: Option<f64>,
    /// Hold out this fraction of the training set for validation instead of the test set.
    #[arg(long)]
    pub val_split: Option<f64>,
    /// standard (the dataset's usual constants), computed (from the training set) or none.
    #[arg(long, value_enum, default_value = "standard")]
    pub normalize: Normalization,
    /// Random crop after zero-padding by N pixels (e.g. 4 for CIFAR).
    #[arg(long, default_value_t = 0)]
    pub crop_padding: usize,
    /// Random horizontal flips.
    #[arg(long)]
    pub flip: bool,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, value_enum, default_value = "flex")]
    pub backend: BackendKind,
    /// Compute precision: f32, or mixed precision with f32 weights as PyTorch's autocast
    /// does it: bf16, or f16 with dynamic loss scaling. For --backend cuda; on flex it
    /// is emulated (slower than f32), and ndarray has only f32.
    #[arg(long, value_enum, default_value = "f32")]
    #[serde(default)]
    pub precision: Precision,
    /// Train data parallel: `cuda:0,cuda:1,...` with --backend cuda. --batch is split
    /// over them. On the CPU backends, `cpu,cpu` runs two replicas on the one CPU.
    #[arg(long)]
    #[serde(default)]
    pub devices: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    Standard,
    Computed,
    None,
}

/// What config.json holds: the arguments as resolved, and the input shape used.
#[derive(Serialize, Deserialize)]
struct RunConfig {
    args: TrainArgs,
    input: Shape,
    hyper: Hyper,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// The network arguments given with `--set`, which the saved model.arch needs again.
    #[serde(default)]
    set: Vec<(String, String)>,
}

pub fn run(args: TrainArgs) -> Result<ExitCode, String> {
    train(args)?;
    Ok(ExitCode::SUCCESS)
}

/// A finished (or stopped) run: how much it trained on and every epoch's metrics.
pub struct Trained {
    /// Images in the training set actually used (after --subset and --val-split).
    pub train_images: usize,
    /// What the validation metrics were measured on, in words.
    pub evaluated_on: String,
    pub history: Vec<EpochMetrics>,
}

/// Where a run computes, checked before any data is read or a directory made: the
/// device indices of `--devices` (the main device alone without it), on a backend
/// that exists here and computes in the precision asked for.
pub fn placement(options: &TrainOptions) -> Result<Vec<u16>, String> {
    let backend = options.backend;
    let indices = match &options.devices {
        Some(text) => crate::backend::parse_devices(backend, text)?,
        None => vec![0],
    };
    crate::with_backend!(backend, |B, device| {
        options.precision.check::<B>(backend, &device)?;
        crate::backend::devices::<B>(&device, &indices)?;
    })?;
    Ok(indices)
}

/// Loads a dataset for `model`, checking that its images and classes fit the model.
pub fn load_for(source: &Source, data_dir: Option<&Path>, model: &Model) -> Result<dataset::Loaded, String> {
    let loaded = dataset::load(source, data_dir, model.input)?;
    if loaded.train.shape() != model.input {
        let s = loaded.train.shape();
        let hint = match s {
            Shape::Image { c, h, w } => format!(": run with `--input {c}x{h}x{w}`"),
            _ => String::new(),
        };
        return Err(format!("`{}` images are {s}, but `{}` takes {}{hint}", source.name(), model.name, model.input));
    }
    let classes = loaded.train.classes.len() as u64;
    if model.output != (Shape::Vector { d: classes }) {
        return Err(format!(
            "`{}` has {classes} classes, but `{}` outputs {}: set its `classes` parameter (`--set classes={classes}`)",
            source.name(),
            model.name,
            model.output
        ));
    }
    Ok(loaded)
}

/// Trains as `archc train` does, printing progress, and returns the run.
pub fn train(args: TrainArgs) -> Result<Trained, String> {
    let (args, run_dir, model_path) = match &args.resume {
        Some(dir) => {
            let (run, config) = RunDir::open(dir)?;
            let config: RunConfig = serde_json::from_str(&config)
                .map_err(|e| format!("`{}/config.json` is damaged: {e}", dir.display()))?;
            let mut resumed = config.args;
            resumed.stop_after = args.stop_after;
            // A run may move: resumed on other devices, it computes the same thing.
            if args.options.devices.is_some() {
                resumed.options.devices = args.options.devices.clone();
            }
            resumed.compile.input = Some(config.input);
            if !args.compile.set.is_empty() && args.compile.set != config.set {
                return Err(format!(
                    "a resumed run keeps the network it started with; `{}` has its own `--set` (see its config.json)",
                    dir.display()
                ));
            }
            resumed.compile.set = config.set;
            (resumed, Some(run), dir.join("model.arch").display().to_string())
        }
        None => {
            let model = args.model.clone().unwrap_or_default();
            (args, None, model)
        }
    };
    let compiled = compile_file(&model_path, &args.compile.options())?;
    print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    let Some(model) = compiled.result.models.first() else {
        return Err(format!("`{model_path}` has errors; nothing to train"));
    };
    let device_indices = placement(&args.options)?;
    let backend = args.options.backend;
    let source = Source::parse(args.data.as_deref().unwrap_or_default());
    let loaded = load_for(&source, args.data_dir.as_deref(), model)?;
    let mut train = match args.subset {
        Some(n) => loaded.train.subset(n, args.options.seed),
        None => loaded.train,
    };
    let (val, evaluated_on) = match (args.options.val_split, loaded.test) {
        (Some(_), _) | (None, None) => {
            let fraction = args.options.val_split.unwrap_or(0.1);
            if !(0.0..1.0).contains(&fraction) {
                return Err(format!("--val-split must be in [0, 1), not {fraction}"));
            }
            let (rest, val) = train.split(fraction, args.options.seed);
            train = rest;
            let held_out = format!("{} images held out of the training set ({:.0}%)", val.len(), 100.0 * fraction);
            (val, held_out)
        }
        (None, Some(test)) => {
            let official = format!("the {} images of the test set", test.len());
            (test, official)
        }
    };
    let (mean, std) = normalization(&args, &source, &train);
    let pipeline = Pipeline {
        mean: mean.clone(),
        std: std.clone(),
        crop_padding: args.options.crop_padding,
        flip: args.options.flip,
    };
    let hyper = hyper(&args);
    let run = match run_dir {
        Some(run) => run,
        None => {
            let dir = args.out.clone().unwrap_or_else(|| default_run_dir(&model.name, &source));
            let config = RunConfig {
                args: args.clone(),
                input: model.input,
                hyper: hyper.clone(),
                mean,
                std,
                set: args.compile.set.clone(),
            };
            let text = std::fs::read_to_string(&model_path).unwrap_or_default();
            RunDir::create(&dir, &serde_json::to_string_pretty(&config).unwrap_or_default(), &text)?
        }
    };
    println!(
        "training {} on {} ({} images, validation {} images) for {} epochs on {}{}; run directory {}",
        model.name,
        source.name(),
        train.len(),
        val.len(),
        hyper.epochs,
        args.options.devices.as_deref().map_or_else(|| backend.to_string(), |d| format!("{backend} ({d})")),
        match hyper.precision {
            Precision::F32 => String::new(),
            p => format!(" in {p}"),
        },
        run.dir.display()
    );
    let session = Session {
        model,
        train: &train,
        val: &val,
        pipeline: &pipeline,
        hyper: &hyper,
        run: &run,
        stop_after: args.stop_after,
        settings: &args.compile.set,
        init: None,
        order: None,
    };
    let mut observer = Printer::new(train.len().div_ceil(hyper.batch.max(1)));
    let progress = crate::with_backend!(args.options.backend, |B, device| {
        let devices = crate::backend::devices::<B>(&device, &device_indices)?;
        crate::train::train::<burn::backend::Autodiff<B>>(&session, &devices, &mut observer)
    })??;
    if let Some(scaler) = &progress.loss_scale {
        println!(
            "f16 loss scale {} at the end; {} step(s) skipped for overflowing gradients",
            scaler.scale, scaler.skipped
        );
    }
    if let Some(best) = progress.history.iter().map(|m| m.val_top1).reduce(f64::max) {
        println!("best validation top-1 {:.2}%; checkpoints in {}", best * 100.0, run.dir.display());
    }
    Ok(Trained { train_images: train.len(), evaluated_on, history: progress.history })
}

fn hyper(args: &TrainArgs) -> Hyper {
    let sgd = args.options.optimizer == OptimizerKind::Sgd;
    Hyper {
        epochs: args.options.epochs,
        batch: args.options.batch.max(1),
        optimizer: args.options.optimizer,
        lr: LrPlan {
            base: args.options.lr.unwrap_or(if sgd { 0.1 } else { 1e-3 }),
            schedule: args.options.schedule,
            epochs: args.options.epochs,
            step_size: args.options.step_size,
            gamma: args.options.gamma,
            warmup: args.options.warmup,
            min_lr: 0.0,
        },
        momentum: args.options.momentum,
        nesterov: args.options.nesterov,
        weight_decay: args.options.weight_decay.unwrap_or(if sgd { 5e-4 } else { 0.01 }),
        label_smoothing: args.options.label_smoothing,
        clip_grad_norm: args.options.clip_grad_norm,
        seed: args.options.seed,
        precision: args.options.precision,
    }
}

fn normalization(args: &TrainArgs, source: &Source, train: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let none = (vec![0.0; train.channels], vec![1.0; train.channels]);
    match args.options.normalize {
        Normalization::None => none,
        Normalization::Computed => train.channel_stats(),
        Normalization::Standard => source.standard_normalization().unwrap_or_else(|| train.channel_stats()),
    }
}

fn default_run_dir(model: &str, source: &Source) -> PathBuf {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let data = Path::new(&source.name()).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    PathBuf::from("runs").join(format!("{model}-{data}-{seconds}"))
}

/// A progress bar per epoch on a terminal; one line per epoch otherwise.
struct Printer {
    bar: Option<ProgressBar>,
    batches: usize,
}

impl Printer {
    fn new(batches: usize) -> Printer {
        Printer { bar: None, batches }
    }
}

impl Observer for Printer {
    fn batch(&mut self, done: usize, total: usize, loss: f64, acc: f64, images_per_s: f64) {
        if !std::io::stdout().is_terminal() {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(self.batches as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("loss {loss:.4}  acc {:.2}%  {images_per_s:.0} img/s", acc * 100.0));
    }

    fn epoch(&mut self, m: &EpochMetrics, epochs: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        println!(
            "epoch {}/{epochs}: train loss {:.4} acc {:.2}% | val loss {:.4} top-1 {:.2}% top-5 {:.2}% | lr {:.5} | {:.1} s, {:.0} img/s",
            m.epoch,
            m.train_loss,
            m.train_acc * 100.0,
            m.val_loss,
            m.val_top1 * 100.0,
            m.val_top5 * 100.0,
            m.lr,
            m.seconds,
            m.images_per_s
        );
    }
}
