//! The training job behind `archc train` and `archc compare`: from a request (a model
//! file and a dataset, or a run directory to resume) to a finished run. It compiles the
//! model, checks where it will compute, loads and splits the data, makes the run
//! directory and trains, telling the caller what happens through `Events`; it prints
//! nothing itself.

use super::loss_scale::LossScale;
use super::schedule::{LrPlan, Schedule};
use super::{EpochMetrics, Hyper, Observer, OptimizerKind, RunDir, Session};
use crate::backend::BackendKind;
use crate::cost::admission::Purpose as MemoryPurpose;
use crate::data::dataset::{Dataset, Pipeline, Source, load_for};
use crate::elaborate::{self, Compiled, Options};
use crate::error::{ArgumentError, Error, FileKind, Purpose, RunError, WeightsError};
use crate::ir::Model;
use crate::lower::Precision;
use crate::lower::transfer::{Freeze, Transfer};
use crate::lower::weights::StateDict;
use crate::report::Warning;
use crate::tensor::Shape;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What to train: a model file on a dataset, or the run directory to resume. Its
/// serialised form is the `args` of a run's config.json.
#[derive(Clone, Serialize, Deserialize)]
pub struct Request {
    /// The model's `.arch` file (not needed to resume).
    pub model: Option<String>,
    /// fashion-mnist, mnist, cifar10, cifar100, or an ImageFolder directory.
    pub data: Option<String>,
    /// Where the dataset's files are.
    pub data_dir: Option<PathBuf>,
    /// How the model is compiled (`--input`, `--allow`, `--set`).
    #[serde(skip)]
    pub compile: Options,
    #[serde(flatten)]
    pub options: TrainOptions,
    /// Train on a stratified, seeded subset of N images.
    pub subset: Option<usize>,
    /// The run directory (default: runs/MODEL-DATA-TIME).
    pub out: Option<PathBuf>,
    /// Continue the run in this directory from its last checkpoint.
    #[serde(skip)]
    pub resume: Option<PathBuf>,
    /// Stop after this many epochs in total, as if interrupted (for testing resume).
    #[serde(skip)]
    pub stop_after: Option<usize>,
    /// With `resume`: train the run to this many epochs in total, its schedule
    /// recomputed for the new length (`--epochs` on `--resume`).
    #[serde(skip)]
    pub extend_to: Option<usize>,
    /// Refuse a network whose memory estimate exceeds what the device can give
    /// (`cost::admission`); off with `--no-memory-check`.
    #[serde(skip)]
    pub memory_check: bool,
    /// With `resume`: the options (`--lr`) and arguments (`MODEL`) the command line
    /// gave; each must say what the run already has, unless `RESUME_MAY_CHANGE` lets it
    /// change.
    #[serde(skip)]
    pub given: Vec<String>,
}

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
    /// Start from these weights (safetensors or a PyTorch pickle, torchvision/timm
    /// names): every tensor whose name and shape match is loaded, and a transfer report
    /// says what carried over.
    #[arg(long, value_name = "WEIGHTS")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// With --init: train even when tensors have another shape here (a new `fc` for
    /// other classes) or none match.
    #[arg(long, requires = "init")]
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub init_partial: bool,
    /// Keep these parameters fixed: comma-separated dotted prefixes of weight names
    /// (`conv1,bn1,layer1`). Batch norms they cover stay in eval mode.
    #[arg(long, value_delimiter = ',', value_name = "PREFIXES")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub freeze: Vec<String>,
    /// With --init: the learning rate of the tensors the weights did not provide (new
    /// or reshaped) is multiplied by X.
    #[arg(long, requires = "init", value_name = "X")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_lr_mult: Option<f64>,
}

/// What `--init` carried over and `--freeze` fixed: printed before training starts,
/// written to the run directory as `init.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InitReport {
    /// The weights file, as an absolute path.
    pub weights: PathBuf,
    pub sha256: String,
    pub partial: bool,
    pub transfer: Transfer,
    /// What `--freeze` covers (nothing without it), and how many parameters train.
    pub freeze: Freeze,
}

/// config.json's summary of `init.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct InitSummary {
    weights: PathBuf,
    sha256: String,
    loaded: usize,
    new: usize,
    reshaped: usize,
    unused: usize,
    trainable_params: u128,
    frozen_params: u128,
}

impl InitReport {
    fn summary(&self) -> InitSummary {
        InitSummary {
            weights: self.weights.clone(),
            sha256: self.sha256.clone(),
            loaded: self.transfer.loaded.len(),
            new: self.transfer.new.len(),
            reshaped: self.transfer.reshaped.len(),
            unused: self.transfer.unused.len(),
            trainable_params: self.freeze.trainable_params,
            frozen_params: self.freeze.frozen_params,
        }
    }
}

/// What a run starts from besides the seed: the `--init` weights and their report (a
/// new run), the report the run recorded (a resumed one), and the `--freeze` plan.
struct Origin {
    weights: Option<StateDict>,
    report: Option<InitReport>,
    freeze: Option<Freeze>,
}

/// Reads and checks `--init` and `--freeze` before any data is read or directory made:
/// weights with a tensor of another shape, or with nothing the model uses, are refused
/// unless `--init-partial`; a prefix that covers no parameter is refused.
fn origin(options: &TrainOptions, model: &Model, resumed: Option<&RunDir>) -> Result<Origin, Error> {
    let freeze = match options.freeze.is_empty() {
        true => None,
        false => Some(Freeze::plan(model, &options.freeze).map_err(|unknown| {
            let names = crate::lower::transfer::tensor_prefixes(model);
            let known: Vec<&str> = names.iter().map(String::as_str).collect();
            let suggestions =
                unknown.iter().map(|p| crate::suggest::closest(p, known.iter().copied()).map(str::to_string)).collect();
            ArgumentError::FreezeCoversNothing { prefixes: unknown, suggestions }
        })?),
    };
    if freeze.as_ref().is_some_and(|f| f.trainable_params == 0) {
        return Err(ArgumentError::FreezesEverything.into());
    }
    let Some(path) = &options.init else { return Ok(Origin { weights: None, report: None, freeze }) };
    if let Some(run) = resumed {
        // The checkpoint holds the weights; the report says which tensors were new.
        let file = run.dir.join("init.json");
        let text = crate::report::files::read_text(&file)?;
        let report: InitReport = serde_json::from_str(&text).map_err(|e| Error::Malformed {
            path: file,
            kind: FileKind::Damaged,
            problem: e.to_string(),
        })?;
        return Ok(Origin { weights: None, report: Some(report), freeze });
    }
    // One read serves the tensors and the digest the run records.
    let bytes = crate::report::files::read_bytes(path)?;
    let weights = StateDict::parse(path, &bytes)?;
    let transfer = Transfer::plan(model, &weights);
    if !options.init_partial {
        // Nothing carried over says more than the shape of whichever tensor clashes.
        if transfer.loaded.is_empty() {
            let unused = transfer.unused.len();
            return Err(
                WeightsError::InitMatchesNothing { weights: path.clone(), model: model.name.clone(), unused }.into()
            );
        }
        if !transfer.reshaped.is_empty() {
            let reshaped =
                transfer.reshaped.iter().map(|r| (r.name.clone(), r.found.clone(), r.expected.clone())).collect();
            return Err(
                WeightsError::InitReshaped { weights: path.clone(), model: model.name.clone(), reshaped }.into()
            );
        }
    }
    let fresh = transfer.fresh();
    if let Some(freeze) = &freeze {
        let frozen_fresh: Vec<String> = fresh.iter().filter(|n| freeze.is_frozen(n)).cloned().collect();
        if !frozen_fresh.is_empty() {
            return Err(ArgumentError::FreezesFresh { names: frozen_fresh }.into());
        }
    }
    if options.head_lr_mult.is_some() && fresh.is_empty() {
        return Err(ArgumentError::NoHead.into());
    }
    let sha256 = super::checkpoint::sha256(&bytes);
    let freeze_plan = match &freeze {
        Some(freeze) => freeze.clone(),
        None => Freeze::plan(model, &[]).unwrap_or_default(),
    };
    let report = InitReport {
        weights: std::path::absolute(path).unwrap_or_else(|_| path.clone()),
        sha256,
        partial: options.init_partial,
        transfer,
        freeze: freeze_plan,
    };
    Ok(Origin { weights: Some(weights), report: Some(report), freeze })
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    Standard,
    Computed,
    None,
}

/// What config.json holds: the request as resolved, and the input shape used.
#[derive(Serialize, Deserialize)]
struct RunConfig {
    args: Request,
    input: Shape,
    hyper: Hyper,
    mean: Vec<f32>,
    std: Vec<f32>,
    /// The network arguments given with `--set`, which the saved model.arch needs again.
    #[serde(default)]
    set: Vec<(String, String)>,
    /// The sha256 of model.arch as the run saved it: a resume refuses an edited copy,
    /// whose network would not be the one the checkpoints hold. Absent in older runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model_sha256: Option<String>,
    /// Where `--init` started the run (init.json has the whole report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    init: Option<InitSummary>,
}

/// What the caller hears while a run is prepared and trained: the compiled model (with
/// its diagnostics), the run about to start, each batch and epoch, and the end.
pub trait Events: Observer {
    fn compiled(&mut self, _compiled: &Compiled) {}
    fn started(&mut self, _start: &Start) {}
    /// What `--init` carried over and `--freeze` fixed, before the first epoch of a new run.
    fn transfer(&mut self, _report: &InitReport) {}
    /// The run has trained (or stopped where asked) and saved its last epoch.
    fn finished(&mut self, _trained: &Trained) {}
}

/// A run about to train.
pub struct Start<'a> {
    pub model: &'a Model,
    /// The dataset's name.
    pub data: String,
    pub train_images: usize,
    pub val_images: usize,
    pub epochs: usize,
    pub batch: usize,
    pub backend: BackendKind,
    pub devices: Option<&'a str>,
    pub precision: Precision,
    pub run_dir: &'a Path,
    /// With `--freeze`: (parameters that train, parameters kept fixed).
    pub trainable: Option<(u128, u128)>,
}

/// A finished (or stopped) run: how much it trained on and every epoch's metrics.
pub struct Trained {
    /// Images in the training set actually used (after the subset and validation split).
    pub train_images: usize,
    /// What the validation metrics were measured on, in words.
    pub evaluated_on: String,
    pub history: Vec<EpochMetrics>,
    /// The f16 loss scaler at the end; `None` in other precisions.
    pub loss_scale: Option<LossScale>,
    pub run_dir: PathBuf,
}

/// Where a run computes, checked before any data is read or a directory made: the
/// device indices of `devices` (the main device alone without it), on a backend that
/// exists here and computes in the precision asked for.
pub fn placement(options: &TrainOptions) -> Result<Vec<u16>, Error> {
    let backend = options.backend;
    let indices = match &options.devices {
        Some(text) => crate::backend::parse_devices(backend, text)?,
        None => vec![0],
    };
    crate::with_backend!(backend, |B, device| {
        crate::backend::check_precision::<B>(options.precision, backend, &device)?;
        crate::backend::devices::<B>(&device, &indices)?;
    })?;
    Ok(indices)
}

/// The request to carry out: a new one as given, or the one a run directory was
/// started with (on the devices asked for now, if any), with the file to compile.
/// What `--resume` may be given that differs from the run: where it computes now and
/// where the dataset is (neither changes what it computes), how many epochs it trains
/// to in total, the lints it reports, the test-only interruption, and `--set` (checked
/// against the run's own, see `ResumeKeepsSettings`).
pub const RESUME_MAY_CHANGE: &[&str] =
    &["--resume", "--epochs", "--devices", "--data-dir", "--stop-after", "--set", "--no-memory-check", "--allow"];

/// The options and arguments a resuming command gave that differ from the run's: the
/// option as written, its value now, and the run's.
fn differences(request: &Request, config: &RunConfig, dir: &Path) -> Result<Vec<(String, String, String)>, Error> {
    let show = |value: Option<&serde_json::Value>| match value {
        None | Some(serde_json::Value::Null) => "not given".to_string(),
        Some(serde_json::Value::String(text)) => text.clone(),
        // `--freeze a,b` as it was written.
        Some(serde_json::Value::Array(items)) => {
            items.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    };
    let json = |r: &Request| serde_json::to_value(r).unwrap_or_default();
    // Compared as config.json records them (a folder's path made absolute).
    let now = match &request.data {
        Some(data) => recorded(request, &Source::parse(data)),
        None => request.clone(),
    };
    let (now, run) = (json(&now), json(&config.args));
    let mut differ = Vec::new();
    for flag in request.given.iter().filter(|g| !RESUME_MAY_CHANGE.contains(&g.as_str())) {
        let (given, had) = match flag.as_str() {
            // The model is compared by its text with the copy the run keeps.
            "MODEL" => {
                let path = request.model.clone().unwrap_or_default();
                let kept = crate::report::files::read_text(&dir.join("model.arch"))?;
                match crate::report::files::read_text(Path::new(&path))? == kept {
                    true => continue,
                    false => (path, format!("{}", dir.join("model.arch").display())),
                }
            }
            "--input" => match request.compile.input {
                Some(input) if input == config.input => continue,
                input => (input.map_or("not given".into(), |s| s.to_string()), config.input.to_string()),
            },
            _ => {
                let key = flag.trim_start_matches("--").replace('-', "_");
                let (given, had) = (now.get(&key), run.get(&key));
                if given == had {
                    continue;
                }
                (show(given), show(had))
            }
        };
        differ.push((flag.clone(), given, had));
    }
    Ok(differ)
}

/// With `--epochs` on a resume, also the run's new config.json, written only once
/// every check has passed (a refused command leaves the run as it was).
fn resolve(request: Request) -> Result<(Request, Option<RunDir>, String, Option<String>), Error> {
    let Some(dir) = &request.resume else {
        let (Some(model), Some(_)) = (request.model.clone(), &request.data) else {
            return Err(ArgumentError::NothingToTrain.into());
        };
        return Ok((request, None, model, None));
    };
    let (run, config) = RunDir::open(dir)?;
    let config: RunConfig = serde_json::from_str(&config).map_err(|e| Error::Malformed {
        path: dir.join("config.json"),
        kind: FileKind::Damaged,
        problem: e.to_string(),
    })?;
    let differ = differences(&request, &config, dir)?;
    if !differ.is_empty() {
        return Err(RunError::ResumeDiffers { dir: dir.clone(), differences: differ }.into());
    }
    let kept = dir.join("model.arch");
    if let Some(recorded) = &config.model_sha256
        && super::checkpoint::sha256(crate::report::files::read_text(&kept)?.as_bytes()) != *recorded
    {
        return Err(RunError::ModelEdited { file: kept }.into());
    }
    let RunConfig { args: mut resumed, input, mean, std, set, model_sha256, init, .. } = config;
    resumed.stop_after = request.stop_after;
    resumed.memory_check = request.memory_check;
    if !request.compile.set.is_empty() && request.compile.set != set {
        return Err(RunError::ResumeKeepsSettings { dir: dir.clone() }.into());
    }
    let mut new_config = None;
    if let Some(epochs) = request.extend_to {
        resumed.options.epochs = epochs;
        resumed.options.check()?;
        let completed = run.completed_epochs()?;
        if epochs < completed {
            return Err(RunError::EpochsBehind { dir: dir.clone(), epochs, completed }.into());
        }
        // config.json says how long the run is: rewritten, so that a later resume keeps it.
        let hyper = hyper(&resumed.options);
        let config = RunConfig { args: resumed.clone(), input, hyper, mean, std, set: set.clone(), model_sha256, init };
        new_config = Some(config_text(&config, dir)?);
    }
    // A run may move: resumed on other devices, or with its data elsewhere, it computes
    // the same thing.
    if request.options.devices.is_some() {
        resumed.options.devices = request.options.devices.clone();
    }
    if request.data_dir.is_some() {
        resumed.data_dir = request.data_dir.clone();
    }
    resumed.compile.input = Some(input);
    resumed.compile.set = set;
    Ok((resumed, Some(run), dir.join("model.arch").display().to_string(), new_config))
}

fn config_text(config: &RunConfig, dir: &Path) -> Result<String, Error> {
    serde_json::to_string_pretty(config).map_err(|e| Error::Write {
        path: dir.join("config.json"),
        reason: crate::error::IoReason::Other(e.to_string()),
    })
}

/// The request as config.json records it: paths made absolute, so that `--resume`
/// finds the data from any working directory.
fn recorded(request: &Request, source: &Source) -> Request {
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut recorded = request.clone();
    recorded.data_dir = request.data_dir.as_deref().map(absolute);
    recorded.options.init = request.options.init.as_deref().map(absolute);
    if let (Source::Folder(root), Some(_)) = (source, &request.data) {
        recorded.data = Some(absolute(root).display().to_string());
    }
    recorded
}

/// Trains as `archc train` does and returns the run.
pub fn run(request: Request, events: &mut dyn Events) -> Result<Trained, Error> {
    let (request, run_dir, model_path, new_config) = resolve(request)?;
    let compiled = elaborate::compile_file(&model_path, &request.compile)?;
    events.compiled(&compiled);
    let Some(model) = compiled.result.models.first() else {
        return Err(Error::HasErrors { path: model_path, purpose: Purpose::Train });
    };
    let options = &request.options;
    options.check()?;
    let device_indices = placement(options)?;
    // Several devices step on threads of Burn's while this one waits for them.
    crate::backend::use_threads(None, device_indices.len() == 1)?;
    let purpose = MemoryPurpose::Train { state_copies: if options.optimizer == OptimizerKind::Sgd { 1 } else { 2 } };
    if request.memory_check {
        crate::backend::admit(options.backend, model, purpose, options.batch as u64)?;
    }
    let origin = origin(options, model, run_dir.as_ref())?;
    let Some(data) = request.data.as_deref() else { return Err(ArgumentError::NothingToTrain.into()) };
    let source = Source::parse(data);
    let loaded = load_for(&source, request.data_dir.as_deref(), model)?;
    if let Some(first) = loaded.skipped.first() {
        events.warning(&Warning::SkippedFiles { count: loaded.skipped.len(), first: first.clone() });
    }
    let mut train = match request.subset {
        Some(n) => loaded.train.subset(n, options.seed),
        None => loaded.train,
    };
    let (val, evaluated_on) = match (options.val_split, loaded.test) {
        (Some(_), _) | (None, None) => {
            let fraction = options.val_split.unwrap_or(0.1);
            if !(0.0..1.0).contains(&fraction) {
                return Err(ArgumentError::ValSplit { fraction }.into());
            }
            let (rest, val) = train.split(fraction, options.seed);
            train = rest;
            let held_out = format!("{} images held out of the training set ({:.0}%)", val.len(), 100.0 * fraction);
            (val, held_out)
        }
        (None, Some(test)) => {
            let official = format!("the {} images of the test set", test.len());
            (test, official)
        }
    };
    let subset = request.subset;
    if train.is_empty() {
        return Err(ArgumentError::EmptyTraining { data: source.name(), subset }.into());
    }
    if val.is_empty() {
        return Err(ArgumentError::EmptyValidation { data: source.name(), fraction: options.val_split }.into());
    }
    if train.len() < train.classes.len() {
        events.warning(&Warning::FewerImagesThanClasses { images: train.len(), classes: train.classes.len() });
    }
    let (mean, std) = normalization(options, &source, &train);
    let pipeline =
        Pipeline { mean: mean.clone(), std: std.clone(), crop_padding: options.crop_padding, flip: options.flip };
    let hyper = hyper(options);
    let run = match run_dir {
        Some(run) => {
            if let Some(text) = new_config {
                crate::report::write_atomic(&run.dir.join("config.json"), text)?;
            }
            run
        }
        None => {
            let dir = match &request.out {
                Some(out) => out.clone(),
                None => claim_dir(&default_run_dir(&model.name, &source))?,
            };
            let text = crate::report::files::read_text(Path::new(&model_path))?;
            let config = RunConfig {
                args: recorded(&request, &source),
                input: model.input,
                hyper: hyper.clone(),
                mean,
                std,
                set: request.compile.set.clone(),
                model_sha256: Some(super::checkpoint::sha256(text.as_bytes())),
                init: origin.report.as_ref().map(InitReport::summary),
            };
            let run = RunDir::create(&dir, &config_text(&config, &dir)?, &text)?;
            if let Some(report) = &origin.report {
                let json = serde_json::to_string_pretty(report).map_err(|e| Error::Write {
                    path: dir.join("init.json"),
                    reason: crate::error::IoReason::Other(e.to_string()),
                })?;
                crate::report::write_atomic(&dir.join("init.json"), json)?;
            }
            run
        }
    };
    events.started(&Start {
        model,
        data: source.name(),
        train_images: train.len(),
        val_images: val.len(),
        epochs: hyper.epochs,
        batch: hyper.batch,
        backend: options.backend,
        devices: options.devices.as_deref(),
        precision: hyper.precision,
        run_dir: &run.dir,
        trainable: origin.freeze.as_ref().map(|f| (f.trainable_params, f.frozen_params)),
    });
    if let (Some(report), Some(_)) = (&origin.report, &origin.weights) {
        events.transfer(report);
    }
    let fresh = origin.report.as_ref().map(|r| r.transfer.fresh()).unwrap_or_default();
    let init_file = origin.report.as_ref().map(|r| {
        let name =
            r.weights.file_name().map_or_else(|| r.weights.display().to_string(), |n| n.to_string_lossy().into());
        (name, r.sha256.clone())
    });
    let session = Session {
        model,
        train: &train,
        val: &val,
        pipeline: &pipeline,
        hyper: &hyper,
        run: &run,
        stop_after: request.stop_after,
        settings: &request.compile.set,
        init: origin.weights.as_ref().map(super::Init::Matching),
        freeze: origin.freeze.as_ref(),
        head: options.head_lr_mult.map(|multiplier| (multiplier, fresh.as_slice())),
        origin: init_file.as_ref().map(|(name, sha)| (name.as_str(), sha.as_str())),
        order: None,
    };
    let progress = crate::with_backend!(options.backend, |B, device| {
        let devices = crate::backend::devices::<B>(&device, &device_indices)?;
        super::train::<burn::backend::Autodiff<B>>(&session, &devices, events)
    })??;
    let trained = Trained {
        train_images: train.len(),
        evaluated_on,
        history: progress.history,
        loss_scale: progress.loss_scale,
        run_dir: run.dir.clone(),
    };
    events.finished(&trained);
    Ok(trained)
}

impl TrainOptions {
    /// Refuses settings that would train on nothing or compute nonsense: a batch or an
    /// epoch count of 0, a validation fraction outside (0, 1), and hyperparameters that
    /// are not finite or outside their range.
    pub fn check(&self) -> Result<(), ArgumentError> {
        if self.batch == 0 {
            return Err(ArgumentError::ZeroBatch);
        }
        if self.epochs == 0 {
            return Err(ArgumentError::NoEpochs);
        }
        if let Some(fraction) = self.val_split.filter(|f| !(*f > 0.0 && *f < 1.0)) {
            return Err(ArgumentError::ValSplit { fraction });
        }
        type Rule = (&'static str, Option<f64>, fn(f64) -> bool, &'static str);
        let rules: [Rule; 8] = [
            // 0 is allowed: a run that must not move its weights (tests use it).
            ("--lr", self.lr, |v| v >= 0.0, "0 or more"),
            ("--momentum", Some(self.momentum), |v| (0.0..1.0).contains(&v), "in [0, 1)"),
            ("--weight-decay", self.weight_decay, |v| v >= 0.0, "0 or more"),
            ("--gamma", Some(self.gamma), |v| v > 0.0, "greater than 0"),
            ("--step-size", Some(self.step_size as f64), |v| v >= 1.0, "at least 1"),
            ("--label-smoothing", Some(self.label_smoothing), |v| (0.0..1.0).contains(&v), "in [0, 1)"),
            ("--clip-grad-norm", self.clip_grad_norm, |v| v > 0.0, "greater than 0"),
            ("--head-lr-mult", self.head_lr_mult, |v| v > 0.0, "greater than 0"),
        ];
        for (flag, value, in_range, range) in rules {
            if let Some(value) = value.filter(|v| !v.is_finite() || !in_range(*v)) {
                return Err(ArgumentError::OutOfRange { flag, value, range });
            }
        }
        Ok(())
    }
}

/// The hyperparameters of a run, with the optimiser's defaults filled in.
pub fn hyper(options: &TrainOptions) -> Hyper {
    let sgd = options.optimizer == OptimizerKind::Sgd;
    Hyper {
        epochs: options.epochs,
        batch: options.batch,
        optimizer: options.optimizer,
        lr: LrPlan {
            base: options.lr.unwrap_or(if sgd { 0.1 } else { 1e-3 }),
            schedule: options.schedule,
            epochs: options.epochs,
            step_size: options.step_size,
            gamma: options.gamma,
            warmup: options.warmup,
            min_lr: 0.0,
        },
        momentum: options.momentum,
        nesterov: options.nesterov,
        weight_decay: options.weight_decay.unwrap_or(if sgd { 5e-4 } else { 0.01 }),
        label_smoothing: options.label_smoothing,
        clip_grad_norm: options.clip_grad_norm,
        seed: options.seed,
        precision: options.precision,
    }
}

fn normalization(options: &TrainOptions, source: &Source, train: &Dataset) -> (Vec<f32>, Vec<f32>) {
    let none = (vec![0.0; train.channels], vec![1.0; train.channels]);
    match options.normalize {
        Normalization::None => none,
        Normalization::Computed => train.channel_stats(),
        Normalization::Standard => source.standard_normalization().unwrap_or_else(|| train.channel_stats()),
    }
}

/// A new directory for a run without `--out`: `base`, or `base-2`, `base-3`, … when
/// taken. Creating it is the claim, so runs started together never share one.
fn claim_dir(base: &Path) -> Result<PathBuf, Error> {
    if let Some(parent) = base.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::report::files::create_dir(parent)?;
    }
    let mut n = 1;
    loop {
        let dir = numbered(base, n);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100_000 => n += 1,
            Err(e) => return Err(Error::Create { path: dir, reason: crate::error::IoReason::os(&e) }),
        }
    }
}

/// `runs/x` for 1, `runs/x-2`, `runs/x-3`, … after it.
fn numbered(dir: &Path, n: usize) -> PathBuf {
    match n {
        1 => dir.to_path_buf(),
        n => PathBuf::from(format!("{}-{n}", dir.display())),
    }
}

fn default_run_dir(model: &str, source: &Source) -> PathBuf {
    let seconds = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let data = Path::new(&source.name()).file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    PathBuf::from("runs").join(format!("{model}-{data}-{seconds}"))
}
