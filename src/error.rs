//! What can go wrong outside a `.arch` file (whose mistakes are `Diagnostic`s), as
//! data: every variant holds the facts (paths, shapes, counts, the option involved),
//! and `Display` below is the one place that words them. The CLI prints
//! `error: {error}` and exits with 1. Where a third-party reader explains a malformed
//! file in its own words (safetensors, serde, gzip, PyTorch's pickle), those words are
//! kept as the `problem`.

use crate::tensor::Shape;
use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    /// A file or directory that cannot be read.
    Read {
        path: PathBuf,
        reason: IoReason,
    },
    /// `path` missing, and its gzipped twin `gz` too.
    ReadEither {
        path: PathBuf,
        gz: PathBuf,
    },
    /// A file that cannot be written (whole: the old one, if any, is left as it was).
    Write {
        path: PathBuf,
        reason: IoReason,
    },
    /// A directory that cannot be created.
    Create {
        path: PathBuf,
        reason: IoReason,
    },
    /// A file whose contents are not what its kind needs.
    Malformed {
        path: PathBuf,
        kind: FileKind,
        problem: String,
    },
    /// A `.arch` file whose diagnostics (already shown) include errors.
    HasErrors {
        path: String,
        purpose: Purpose,
    },
    Data(DataError),
    Weights(WeightsError),
    Device(DeviceError),
    Run(RunError),
    Argument(ArgumentError),
    Export(ExportError),
}

/// What `archc export` cannot write.
#[derive(Clone, Debug, PartialEq)]
pub enum ExportError {
    /// A layer the chosen ONNX opset has no operators for.
    Unsupported {
        layer: String,
        location: String,
        opset: i64,
        what: String,
    },
    Opset {
        opset: i64,
        lowest: i64,
        highest: i64,
    },
    /// A weight the graph reads that the weights do not have (not reached: they come
    /// from the network itself).
    NoWeight {
        name: String,
    },
    TooLarge {
        bytes: u64,
    },
    /// `--weights` with `--format pytorch` (code) or `safetensors` (fresh weights).
    WeightsInCode,
    /// A layer the PyTorch writer has no module for.
    NoModule {
        layer: String,
        location: String,
        what: String,
    },
}

/// Why a file could not be read or written.
#[derive(Clone, Debug, PartialEq)]
pub enum IoReason {
    NotFound,
    PermissionDenied,
    IsADirectory,
    NotUtf8,
    /// The operating system's (or the writing library's) own words.
    Other(String),
}

impl From<&std::io::Error> for IoReason {
    fn from(error: &std::io::Error) -> IoReason {
        match error.kind() {
            std::io::ErrorKind::NotFound => IoReason::NotFound,
            std::io::ErrorKind::PermissionDenied => IoReason::PermissionDenied,
            std::io::ErrorKind::IsADirectory => IoReason::IsADirectory,
            std::io::ErrorKind::InvalidData => IoReason::NotUtf8,
            _ => IoReason::Other(error.to_string()),
        }
    }
}

impl IoReason {
    /// The operating system's own words for the error (`No such file or directory (os
    /// error 2)`).
    pub fn os(error: &std::io::Error) -> IoReason {
        IoReason::Other(error.to_string())
    }
}

impl From<std::io::Error> for IoReason {
    fn from(error: std::io::Error) -> IoReason {
        IoReason::from(&error)
    }
}

/// What a malformed file was supposed to be.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FileKind {
    Safetensors,
    /// safetensors or a PyTorch pickle, whichever it is not.
    StateDict,
    Gzip,
    Idx,
    Npy,
    Image,
    Cifar {
        classes: u32,
    },
    /// A benchmark report of the given schema.
    BenchReport {
        schema: &'static str,
    },
    /// A file archc wrote itself (config.json, state.json, a checkpoint).
    Damaged,
}

/// What a `.arch` file with errors was to be used for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Purpose {
    Train,
    Evaluate,
    Run,
    Export,
    /// `archc graph`.
    Draw,
    /// `archc diff`.
    Compare,
}

/// A dataset or input that does not fit the model, or holds what it should not.
#[derive(Clone, Debug, PartialEq)]
pub enum DataError {
    /// The dataset's images are not the model's input; `suggest_input` adds `--input`.
    ImagesDoNotFit {
        data: String,
        images: Shape,
        model: String,
        input: Shape,
        suggest_input: bool,
    },
    ClassesDoNotFit {
        data: String,
        classes: u64,
        model: String,
        output: Shape,
    },
    ImagesAndLabelsDiffer {
        dir: PathBuf,
        split: String,
        images: Vec<usize>,
        labels: Vec<usize>,
    },
    LabelOutOfRange {
        dir: PathBuf,
        split: String,
        label: u8,
    },
    CifarLabelOutOfRange {
        path: PathBuf,
        record: usize,
        label: u8,
        classes: u32,
    },
    FolderNeedsImages,
    NoClassFolders {
        root: PathBuf,
    },
    UnknownClass {
        dir: PathBuf,
    },
    NoImages {
        root: PathBuf,
    },
    /// A training class folder without images.
    EmptyClass {
        dir: PathBuf,
    },
    Channels {
        path: PathBuf,
        channels: usize,
    },
    NormalizationChannels {
        means: usize,
        stds: usize,
        channels: usize,
    },
    ArrayDoesNotFit {
        path: PathBuf,
        shape: Vec<usize>,
        model: String,
        input: [usize; 3],
    },
    ClassNames {
        names: usize,
        classes: usize,
    },
    NotAClassifier {
        model: String,
        input: Shape,
        output: Shape,
    },
    NotAnImageModel {
        model: String,
        input: Shape,
    },
    NoAttention {
        model: String,
    },
}

/// A state dict that does not fit a network, or was made for another.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightsError {
    DoNotFit {
        weights: PathBuf,
        model: String,
        problems: Vec<WeightProblem>,
    },
    /// `--init` weights (a state dict given in memory) that do not fit.
    InitDoesNotFit {
        problems: Vec<WeightProblem>,
    },
    /// `--init` weights with tensors of another shape than the model's, without
    /// `--init-partial`.
    InitReshaped {
        weights: PathBuf,
        model: String,
        /// Each tensor's name, its shape in the file and in the model.
        reshaped: Vec<(String, Vec<u64>, Vec<u64>)>,
    },
    /// `--init` weights of which the model uses nothing, without `--init-partial`.
    InitMatchesNothing {
        weights: PathBuf,
        model: String,
        unused: usize,
    },
    SettingsDiffer {
        weights: PathBuf,
        trained: Vec<(String, String)>,
        given: Vec<(String, String)>,
    },
    /// Metadata archc wrote that cannot be read back (`set`, `classes`).
    Metadata {
        weights: PathBuf,
        key: &'static str,
        problem: String,
    },
}

/// One tensor of a state dict against the network's.
#[derive(Clone, Debug, PartialEq)]
pub enum WeightProblem {
    Missing { name: String, expected: Vec<usize> },
    Reshaped { name: String, found: Vec<usize>, expected: Vec<usize> },
    Unexpected { name: String, shape: Vec<usize> },
}

/// What a network is built to do, which decides the memory it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryUse {
    /// Forward, backward and an optimiser step.
    Train,
    /// Forward and backward, no optimiser (`analyze`).
    Backward,
    /// Forward only.
    Infer,
}

/// Where a job was asked to compute, and why it cannot.
#[derive(Clone, Debug, PartialEq)]
pub enum DeviceError {
    NoDriver,
    DriverIncomplete,
    NoCudaDevice,
    DriverCannotStart {
        code: i32,
    },
    BuiltWithoutCuda,
    EmptyEntry {
        devices: String,
    },
    NotADevice {
        entry: String,
        backend: String,
    },
    NotACudaDevice {
        entry: String,
    },
    GpusNeedCuda {
        devices: String,
    },
    ListedTwice {
        index: u16,
    },
    NoSuchDevice {
        index: u16,
        count: usize,
    },
    NoPrecision {
        backend: String,
        precision: String,
    },
    /// The static memory estimate exceeds what the device can give.
    NotEnoughMemory {
        model: String,
        needs: MemoryUse,
        batch: u64,
        needed: u128,
        available: u64,
        source: String,
        largest_batch: Option<u64>,
    },
    Failed {
        backend: String,
        reason: String,
    },
    Threads {
        threads: usize,
        reason: String,
    },
}

/// A run directory, and a run that stopped.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    NotARunDir {
        dir: PathBuf,
    },
    ResumeFrom {
        file: PathBuf,
        reason: String,
    },
    /// A run's model.arch changed since the run started.
    ModelEdited {
        file: PathBuf,
    },
    /// A run directory with a later epoch's checkpoint but no state.json.
    StateLost {
        dir: PathBuf,
        checkpoint: PathBuf,
    },
    /// A checkpoint file that is missing or not the one state.json was saved with.
    NotOfCheckpoint {
        file: PathBuf,
        epoch: usize,
        missing: bool,
    },
    OtherOptimizer {
        dir: PathBuf,
    },
    ResumeKeepsSettings {
        dir: PathBuf,
    },
    NoDevice,
    NoOrder {
        epoch: usize,
    },
    DeviceFailed {
        epoch: usize,
        batch: usize,
        failure: String,
        dir: PathBuf,
    },
    LossNotFinite {
        value: f64,
        epoch: usize,
        batch: usize,
        dir: PathBuf,
    },
    WeightsNotFinite {
        epoch: usize,
        dir: PathBuf,
    },
    NoEpoch {
        model: String,
    },
    /// Another archc holds the directory's lock (its pid, when it wrote one).
    InUse {
        dir: PathBuf,
        pid: Option<u32>,
    },
    /// `--out` names a directory that already holds a run.
    AlreadyARun {
        dir: PathBuf,
    },
    /// `--resume` with a model or options other than the run's: each as written, its
    /// value now and the run's.
    ResumeDiffers {
        dir: PathBuf,
        differences: Vec<(String, String, String)>,
    },
    /// `--out` of `compare` names a directory that already holds a comparison.
    AlreadyAComparison {
        dir: PathBuf,
    },
    /// `--out` of `compare` names a training run's directory.
    NotForComparison {
        dir: PathBuf,
    },
    /// `--epochs` on `--resume` below the epochs the run has already trained.
    EpochsBehind {
        dir: PathBuf,
        epochs: usize,
        completed: usize,
    },
}

/// Options that contradict each other or are out of range.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgumentError {
    ValSplit {
        fraction: f64,
    },
    BatchForBatchNorm {
        batch: usize,
    },
    MeanWithoutStd,
    Normalization {
        channels: usize,
    },
    BenchSizes,
    NoEpochs,
    FileTwice {
        path: String,
    },
    SubsetTwice {
        size: Option<usize>,
    },
    SameLabel {
        label: String,
    },
    DepthsTwice,
    SweptTwice {
        name: String,
    },
    FixedAndSwept {
        name: String,
        flag: String,
    },
    /// `flops --plot` draws cost against one swept parameter.
    PlotSweeps {
        swept: usize,
    },
    /// `flops --plot` needs numbers on its x axis.
    PlotValue {
        name: String,
        value: String,
    },
    SchemaOf {
        path: String,
        schema: String,
        expected: &'static str,
    },
    ReferenceLacks {
        path: String,
        model: String,
        has: Vec<String>,
    },
    NotACode {
        text: String,
    },
    /// A training request with neither a model and a dataset nor a run to resume.
    NothingToTrain,
    /// `archc graph --out FILE` without `--format`, FILE's extension naming no format.
    GraphFormat {
        out: PathBuf,
    },
    /// `archc diff` with one file and no `A:`/`B:` setting: nothing to compare it with.
    DiffNeedsTwo {
        file: String,
    },
    /// `--freeze` covering tensors that `--init` does not provide: they would stay at
    /// their random start.
    FreezesFresh {
        names: Vec<String>,
    },
    /// `--freeze` covering every parameter: nothing would train.
    FreezesEverything,
    /// `--head-lr-mult` when `--init` provides every tensor: nothing to speed up.
    NoHead,
    /// `--freeze` prefixes that name no parameter of the model.
    FreezeCoversNothing {
        prefixes: Vec<String>,
        suggestions: Vec<Option<String>>,
    },
    ZeroBatch,
    /// A hyperparameter that is not finite or outside its range (`range` words it).
    OutOfRange {
        flag: &'static str,
        value: f64,
        range: &'static str,
    },
    /// A training or validation set with no images.
    EmptyTraining {
        data: String,
        subset: Option<usize>,
    },
    /// A validation set with no images: held out by `--val-split` (its fraction), or
    /// the dataset's own test set.
    EmptyValidation {
        data: String,
        fraction: Option<f64>,
    },
}

impl From<DataError> for Error {
    fn from(e: DataError) -> Error {
        Error::Data(e)
    }
}

impl From<WeightsError> for Error {
    fn from(e: WeightsError) -> Error {
        Error::Weights(e)
    }
}

impl From<DeviceError> for Error {
    fn from(e: DeviceError) -> Error {
        Error::Device(e)
    }
}

impl From<RunError> for Error {
    fn from(e: RunError) -> Error {
        Error::Run(e)
    }
}

impl From<ExportError> for Error {
    fn from(e: ExportError) -> Error {
        Error::Export(e)
    }
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Unsupported { layer, location, opset, what } => {
                write!(f, "cannot export `{layer}` ({location}) to ONNX opset {opset}: {what}")
            }
            ExportError::Opset { opset, lowest, highest } => {
                write!(f, "--opset {opset} is not one archc writes: give one from {lowest} to {highest}")
            }
            ExportError::NoWeight { name } => write!(f, "the weights have no tensor `{name}`"),
            ExportError::TooLarge { bytes } => write!(
                f,
                "the ONNX file would be {} and protobuf files stop at 2 GB; archc does not write external data",
                crate::format::bytes(*bytes as u128)
            ),
            ExportError::WeightsInCode => f.write_str(
                "--weights is for ONNX files: a PyTorch export is code (load the weights with `model.load_state_dict(safetensors.torch.load_file(...))`) and a safetensors export is fresh weights",
            ),
            ExportError::NoModule { layer, location, what } => {
                write!(f, "cannot export `{layer}` ({location}) to PyTorch: {what}")
            }
        }
    }
}

impl From<ArgumentError> for Error {
    fn from(e: ArgumentError) -> Error {
        Error::Argument(e)
    }
}

impl std::error::Error for Error {}

impl Error {
    /// The process's exit status: 2 for settings that contradict each other or are out
    /// of range (usage errors, like the ones clap finds), 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            // A reference file that cannot be used is a file problem, not a usage one.
            Error::Argument(ArgumentError::SchemaOf { .. } | ArgumentError::ReferenceLacks { .. }) => 1,
            Error::Argument(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Read { path, reason } => write!(f, "cannot read `{}`: {reason}", path.display()),
            Error::ReadEither { path, gz } => {
                write!(f, "cannot read `{}`: no such file (nor `{}`)", path.display(), gz.display())
            }
            Error::Write { path, reason } => write!(f, "cannot write `{}`: {reason}", path.display()),
            Error::Create { path, reason } => write!(f, "cannot create `{}`: {reason}", path.display()),
            Error::Malformed { path, kind, problem } => {
                let path = path.display();
                match kind {
                    FileKind::Safetensors => write!(f, "`{path}` is not a valid safetensors file: {problem}"),
                    FileKind::StateDict => {
                        write!(f, "`{path}` is neither safetensors nor a PyTorch state dict: {problem}")
                    }
                    FileKind::Gzip => write!(f, "`{path}` is not a valid gzip file: {problem}"),
                    FileKind::Idx | FileKind::Npy => write!(f, "`{path}`: {problem}"),
                    FileKind::Image => write!(f, "`{path}` is not a readable PNG or JPEG image: {problem}"),
                    FileKind::Cifar { classes } => {
                        write!(f, "`{path}` is not a CIFAR-{classes} binary batch: {problem}")
                    }
                    FileKind::BenchReport { schema } => {
                        write!(f, "`{path}` is not a bench report ({schema} JSON): {problem}")
                    }
                    FileKind::Damaged => write!(f, "`{path}` is damaged: {problem}"),
                }
            }
            Error::HasErrors { path, purpose } => {
                let purpose = match purpose {
                    Purpose::Train => "train",
                    Purpose::Evaluate => "evaluate",
                    Purpose::Run => "run",
                    Purpose::Export => "export",
                    Purpose::Draw => "draw",
                    Purpose::Compare => "compare",
                };
                write!(f, "`{path}` has errors; nothing to {purpose}")
            }
            Error::Data(e) => e.fmt(f),
            Error::Weights(e) => e.fmt(f),
            Error::Device(e) => e.fmt(f),
            Error::Run(e) => e.fmt(f),
            Error::Argument(e) => e.fmt(f),
            Error::Export(e) => e.fmt(f),
        }
    }
}

impl fmt::Display for IoReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IoReason::NotFound => f.write_str("no such file"),
            IoReason::PermissionDenied => f.write_str("permission denied"),
            IoReason::IsADirectory => f.write_str("it is a directory"),
            IoReason::NotUtf8 => f.write_str("it is not UTF-8 text"),
            IoReason::Other(reason) => f.write_str(reason),
        }
    }
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataError::ImagesDoNotFit { data, images, model, input, suggest_input } => {
                write!(f, "`{data}` images are {images}, but `{model}` takes {input}")?;
                match (suggest_input, images) {
                    (true, Shape::Image { c, h, w }) => write!(f, ": run with `--input {c}x{h}x{w}`"),
                    _ => Ok(()),
                }
            }
            // A classifier ends in a vector of scores; tokens or an image need a head first.
            DataError::ClassesDoNotFit { data, classes, model, output } => match output {
                Shape::Tokens { .. } => write!(
                    f,
                    "`{data}` has {classes} classes, but `{model}` outputs {output}, one vector per token: end it with `select_token(0)` (the class token) or `mean_tokens`, then `linear(classes)`"
                ),
                Shape::Image { .. } => write!(
                    f,
                    "`{data}` has {classes} classes, but `{model}` outputs {output}, an image: end it with `global_avgpool`, `flatten` and `linear(classes)`"
                ),
                Shape::Vector { .. } => write!(
                    f,
                    "`{data}` has {classes} classes, but `{model}` outputs {output}: set its `classes` parameter (`--set classes={classes}`)"
                ),
            },
            DataError::ImagesAndLabelsDiffer { dir, split, images, labels } => {
                write!(f, "`{}`: {split} images {images:?} and labels {labels:?} do not match", dir.display())
            }
            DataError::LabelOutOfRange { dir, split, label } => {
                write!(f, "`{}`: {split} labels contain {label}, expected 0..9", dir.display())
            }
            DataError::CifarLabelOutOfRange { path, record, label, classes } => write!(
                f,
                "`{}`: record {record} has label {label}, but CIFAR-{classes} has {classes} classes",
                path.display()
            ),
            DataError::FolderNeedsImages => f.write_str("image folders need a model that takes images"),
            DataError::NoClassFolders { root } => write!(
                f,
                "`{}` has no class sub-directories (ImageFolder layout: ROOT/CLASS/IMAGE.png)",
                root.display()
            ),
            DataError::UnknownClass { dir } => {
                write!(f, "`{}` is a class that the training split does not have", dir.display())
            }
            DataError::NoImages { root } => {
                write!(f, "`{}` has class folders but no PNG or JPEG images", root.display())
            }
            DataError::EmptyClass { dir } => write!(
                f,
                "class folder `{}` has no PNG or JPEG images: a class without images cannot be learned; add images or remove the folder",
                dir.display()
            ),
            DataError::Channels { path, channels } => {
                write!(f, "`{}`: the model takes {channels} channels; images give 1 (grey) or 3 (RGB)", path.display())
            }
            DataError::NormalizationChannels { means, stds, channels } => {
                write!(f, "normalisation has {means} means and {stds} stds for a {channels}-channel model")
            }
            DataError::ArrayDoesNotFit { path, shape, model, input: [c, h, w] } => {
                write!(f, "`{}` has shape {shape:?}, but `{model}` takes [N, {c}, {h}, {w}]", path.display())
            }
            DataError::ClassNames { names, classes } => {
                write!(f, "{names} class names for a model with {classes} outputs")
            }
            DataError::NotAClassifier { model, input, output } => {
                write!(f, "`predict` runs image classifiers; `{model}` maps {input} to {output}")
            }
            DataError::NotAnImageModel { model, input } => write!(f, "`{model}` takes {input}, not an image"),
            DataError::NoAttention { model } => write!(
                f,
                "`{model}` has no attention to show: no SE or CBAM gate (`scale`) and no attention layer over a square patch grid"
            ),
        }
    }
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::DoNotFit { weights, model, problems } => {
                // Shapes that differ first (they say most), then missing and unexpected
                // tensors; the first few, then a count: a file of another network
                // differs everywhere.
                const SHOWN: usize = 8;
                write!(f, "`{}` does not fit `{model}`:", weights.display())?;
                let rank = |p: &&WeightProblem| match p {
                    WeightProblem::Reshaped { .. } => 0,
                    WeightProblem::Missing { .. } => 1,
                    WeightProblem::Unexpected { .. } => 2,
                };
                let mut ordered: Vec<&WeightProblem> = problems.iter().collect();
                ordered.sort_by_key(rank);
                ordered.iter().take(SHOWN).try_for_each(|p| write!(f, "\n  {p}"))?;
                if problems.len() > SHOWN {
                    write!(f, "\n  and {} more", problems.len() - SHOWN)?;
                }
                Ok(())
            }
            WeightsError::InitDoesNotFit { problems } => {
                let problems: Vec<String> = problems.iter().map(WeightProblem::to_string).collect();
                f.write_str(&problems.join("; "))
            }
            WeightsError::InitReshaped { weights, model, reshaped } => {
                let shape = |s: &[u64]| format!("[{}]", s.iter().map(u64::to_string).collect::<Vec<_>>().join(", "));
                let listed: Vec<String> = reshaped
                    .iter()
                    .map(|(name, found, expected)| {
                        format!("`{name}` is {} there and {} here", shape(found), shape(expected))
                    })
                    .collect();
                write!(
                    f,
                    "`{}` does not fit `{model}`: {}; give --init-partial to train these from a fresh start",
                    weights.display(),
                    listed.join(", ")
                )
            }
            WeightsError::InitMatchesNothing { weights, model, unused } => write!(
                f,
                "`{}` has no tensor that `{model}` uses (by name and shape; {unused} unused): are these the weights of another network? give --init-partial to start from them anyway",
                weights.display()
            ),
            WeightsError::SettingsDiffer { weights, trained, given } => {
                let show = |set: &[(String, String)]| match set.is_empty() {
                    true => "no --set".to_string(),
                    false => set.iter().map(|(n, v)| format!("--set {n}={v}")).collect::<Vec<_>>().join(" "),
                };
                write!(
                    f,
                    "`{}` was trained with {}, but is used here with {}: give the same settings",
                    weights.display(),
                    show(trained),
                    show(given)
                )
            }
            WeightsError::Metadata { weights, key, problem } => {
                write!(f, "`{}` has damaged `{key}` metadata: {problem}", weights.display())
            }
        }
    }
}

/// `[64, 3, 7, 7]`
fn dims(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

impl fmt::Display for WeightProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightProblem::Missing { name, expected } => {
                write!(f, "missing `{name}` (archc expects shape {})", dims(expected))
            }
            WeightProblem::Reshaped { name, found, expected } => {
                write!(f, "`{name}` has shape {} in the file, but the model needs {}", dims(found), dims(expected))
            }
            WeightProblem::Unexpected { name, shape } => {
                write!(f, "unexpected `{name}` (shape {}): the model has no such tensor", dims(shape))
            }
        }
    }
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::NoDriver => f.write_str(
                "the cuda backend needs NVIDIA's driver, and this machine has none (libcuda.so.1 cannot be \
                 loaded; check LD_LIBRARY_PATH): use --backend flex",
            ),
            DeviceError::DriverIncomplete => {
                f.write_str("the NVIDIA driver library has no cuInit or cuDeviceGetCount: reinstall the driver")
            }
            DeviceError::NoCudaDevice => {
                f.write_str("the NVIDIA driver sees no CUDA device on this machine: use --backend flex")
            }
            DeviceError::DriverCannotStart { code } => {
                write!(f, "the NVIDIA driver cannot start (CUDA error {code}): no usable GPU; use --backend flex")
            }
            DeviceError::BuiltWithoutCuda => {
                f.write_str("this archc was built without CUDA: rebuild with `cargo build --features cuda`")
            }
            DeviceError::EmptyEntry { devices } => write!(f, "--devices {devices}: an entry is empty"),
            DeviceError::NotADevice { entry, backend } if backend == "cuda" => {
                write!(f, "--devices: `{entry}` is not a device: write cuda:0, cuda:1, ...")
            }
            DeviceError::NotADevice { entry, backend } => {
                write!(f, "--devices: `{entry}` is not a device: with --backend {backend}, write cpu (one per replica)")
            }
            DeviceError::NotACudaDevice { entry } => {
                write!(f, "--devices: `{entry}` is not a CUDA device: write cuda:0, cuda:1, ...")
            }
            DeviceError::GpusNeedCuda { devices } => write!(f, "--devices {devices} names GPUs: add --backend cuda"),
            DeviceError::ListedTwice { index } => write!(f, "--devices: cuda:{index} is listed twice"),
            DeviceError::NoSuchDevice { index, count } => {
                write!(f, "--devices: there is no cuda:{index}; this machine has {count} CUDA device(s)")
            }
            DeviceError::NoPrecision { backend, precision } => write!(
                f,
                "the {backend} backend cannot compute in {precision}: use --backend flex or --backend cuda, or --precision f32"
            ),
            DeviceError::NotEnoughMemory { model, needs, batch, needed, available, source, largest_batch } => {
                let (verb, what) = match needs {
                    MemoryUse::Train => ("train", "weights, gradients, optimiser state and activations"),
                    MemoryUse::Backward => ("run forward and backward", "weights, gradients and activations"),
                    MemoryUse::Infer => ("run", "weights and activations"),
                };
                write!(
                    f,
                    "`{model}` needs about {} to {verb} at batch {batch} ({what}, as `archc flops` estimates), but {} {} available ({source}); ",
                    crate::format::bytes(*needed),
                    crate::format::bytes(*available as u128),
                    if *available == 1 { "is" } else { "are" },
                )?;
                match largest_batch {
                    Some(fits) => write!(f, "the largest batch that fits is {fits}: give --batch {fits} or less"),
                    None => f.write_str("no batch fits, not even 1"),
                }?;
                f.write_str(" (or --no-memory-check if the estimate is wrong)")
            }
            DeviceError::Failed { backend, reason } => write!(f, "the {backend} device failed: {reason}"),
            DeviceError::Threads { threads, reason } => write!(f, "cannot start {threads} threads: {reason}"),
        }
    }
}

/// Where a stopped run's last good checkpoint is: the epoch before the one that
/// failed, and none when the first epoch of the run failed.
struct LastGood<'a> {
    epoch: usize,
    dir: &'a Path,
}

impl fmt::Display for LastGood<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self.epoch {
            0 | 1 => f.write_str("No epoch was completed, so there is no checkpoint"),
            n => write!(f, "The last good checkpoint (epoch {}) is in `{}`", n - 1, self.dir.display()),
        }
    }
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let advice = "Try a smaller --lr or --clip-grad-norm";
        match self {
            RunError::NotARunDir { dir } => write!(f, "`{}` is not a run directory (no config.json)", dir.display()),
            RunError::ResumeFrom { file, reason } => write!(f, "cannot resume from `{}`: {reason}", file.display()),
            RunError::ModelEdited { file } => write!(
                f,
                "cannot resume: `{}` was changed since the run started (its sha256 differs from config.json's), so it is not the network the checkpoints hold; restore it, or start a new run",
                file.display()
            ),
            RunError::StateLost { dir, checkpoint } => write!(
                f,
                "cannot resume `{}`: its state.json is missing, but `{}` holds a later epoch's checkpoint (a run never leaves that); restore state.json, or start a new run",
                dir.display(),
                checkpoint.display()
            ),
            RunError::NotOfCheckpoint { file, epoch, missing: true } => write!(
                f,
                "cannot resume: `{}` is missing from epoch {epoch}'s checkpoint, which state.json names",
                file.display()
            ),
            RunError::NotOfCheckpoint { file, epoch, missing: false } => write!(
                f,
                "cannot resume: `{}` is not the file epoch {epoch}'s checkpoint was saved with (its size or sha256 differs from state.json's)",
                file.display()
            ),
            RunError::OtherOptimizer { dir } => {
                write!(f, "`{}`: the saved optimiser state is for another optimiser", dir.display())
            }
            RunError::ResumeKeepsSettings { dir } => write!(
                f,
                "a resumed run keeps the network arguments it started with (see `{}`); drop --set",
                dir.join("config.json").display()
            ),
            RunError::NoDevice => f.write_str("no device to train on"),
            RunError::NoOrder { epoch } => write!(f, "no image order for epoch {epoch}"),
            RunError::DeviceFailed { epoch, batch, failure, dir } => write!(
                f,
                "a device failed in epoch {epoch} (batch {batch}): {failure}. {}",
                LastGood { epoch: *epoch, dir }
            ),
            RunError::LossNotFinite { value, epoch, batch, dir } => write!(
                f,
                "the loss became {value} in epoch {epoch} (batch {batch}); stopped. {}. {advice}",
                LastGood { epoch: *epoch, dir }
            ),
            RunError::WeightsNotFinite { epoch, dir } => write!(
                f,
                "the weights became NaN or infinite in epoch {epoch} while the loss stayed finite; stopped. {}. {advice}",
                LastGood { epoch: *epoch, dir }
            ),
            RunError::NoEpoch { model } => write!(f, "`{model}` trained no epoch: give --epochs 1 or more"),
            RunError::InUse { dir, pid } => {
                write!(f, "run directory `{}` is in use by another archc", dir.display())?;
                pid.map_or(Ok(()), |pid| write!(f, " (pid {pid})"))
            }
            RunError::AlreadyARun { dir } => write!(
                f,
                "`{}` already holds a run: continue it with `--resume {}`, or give another --out",
                dir.display(),
                dir.display()
            ),
            RunError::ResumeDiffers { dir, differences } => {
                let listed: Vec<String> =
                    differences.iter().map(|(flag, now, run)| format!("{flag} {now} (the run's: {run})")).collect();
                write!(
                    f,
                    "--resume continues `{}` as it started; drop what differs: {} (only --epochs, --devices, --data-dir, --allow and --no-memory-check may change)",
                    dir.display(),
                    listed.join(", ")
                )
            }
            RunError::NotForComparison { dir } => {
                write!(f, "`{}` holds a training run: give compare another --out", dir.display())
            }
            RunError::AlreadyAComparison { dir } => {
                write!(f, "`{}` already holds a comparison: give another --out (or remove it)", dir.display())
            }
            RunError::EpochsBehind { dir, epochs, completed } => write!(
                f,
                "`{}` has already trained {completed} epochs: --epochs {epochs} would not extend it",
                dir.display()
            ),
        }
    }
}

impl fmt::Display for ArgumentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgumentError::ValSplit { fraction } => {
                write!(f, "--val-split must be between 0 and 1 (a fraction to hold out), not {fraction}")
            }
            ArgumentError::BatchForBatchNorm { batch } => {
                write!(f, "--batch must be at least 2 (batch norm needs a batch), not {batch}")
            }
            ArgumentError::MeanWithoutStd => f.write_str("give both --mean and --std, or neither"),
            ArgumentError::Normalization { channels } => {
                write!(f, "normalisation needs {channels} means and {channels} non-zero stds")
            }
            ArgumentError::BenchSizes => f.write_str("--bench-batch sizes and --bench-iters must be positive"),
            ArgumentError::NoEpochs => f.write_str("--epochs must be at least 1"),
            ArgumentError::FileTwice { path } => write!(f, "`{path}` is given twice"),
            ArgumentError::SubsetTwice { size } => {
                write!(f, "--subset {} is given twice", size.map_or("all".to_string(), |n| n.to_string()))
            }
            ArgumentError::SameLabel { label } => {
                write!(f, "two models would both be called `{label}`: rename one network or file")
            }
            ArgumentError::DepthsTwice => f.write_str("give the depths once: --depths or --sweep depth=..., not both"),
            ArgumentError::SweptTwice { name } => {
                write!(f, "`{name}` is swept twice: give all its values in one --sweep {name}=...")
            }
            ArgumentError::FixedAndSwept { name, flag } => {
                write!(f, "`{name}` is both fixed with --set and swept with {flag}: give one")
            }
            ArgumentError::PlotSweeps { swept } => {
                write!(f, "--plot draws cost against one swept parameter, but {swept} are swept: give one --sweep")
            }
            ArgumentError::PlotValue { name, value } => {
                write!(f, "--plot needs numbers on its x axis, but `{name}={value}` is not a number")
            }
            ArgumentError::SchemaOf { path, schema, expected } => {
                write!(f, "`{path}` has schema `{schema}`; this archc reads `{expected}`")
            }
            ArgumentError::ReferenceLacks { path, model, has } => {
                write!(f, "`{path}` has no results for `{model}` (it has: {})", has.join(", "))
            }
            ArgumentError::GraphFormat { out } => write!(
                f,
                "`{}`: archc graph writes .svg, .html or .dot; name the file so, or give --format",
                out.display()
            ),
            ArgumentError::DiffNeedsTwo { file } => write!(
                f,
                "`archc diff {file}` has nothing to compare with: give a second file, or settings for each side (`--set A:depth=10 --set B:depth=20`)"
            ),
            ArgumentError::NotACode { text } => {
                write!(f, "`{text}` is not a diagnostic code; `archc explain` lists them")
            }
            ArgumentError::NothingToTrain => f.write_str("give a model file and --data, or --resume a run directory"),
            ArgumentError::FreezesFresh { names } => write!(
                f,
                "--freeze covers {}, which --init does not provide: frozen, it would keep its random start; freeze fewer layers",
                names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
            ),
            ArgumentError::FreezesEverything => f.write_str("--freeze covers every parameter: nothing would train"),
            ArgumentError::NoHead => {
                f.write_str("--head-lr-mult has nothing to speed up: --init provides every tensor of the model")
            }
            ArgumentError::FreezeCoversNothing { prefixes, suggestions } => {
                let listed: Vec<String> = prefixes
                    .iter()
                    .zip(suggestions)
                    .map(|(p, s)| match s {
                        Some(s) => format!("`{p}` (did you mean `{s}`?)"),
                        None => format!("`{p}`"),
                    })
                    .collect();
                let verb = if listed.len() == 1 { "names" } else { "name" };
                write!(f, "--freeze {} {verb} no parameter of the model", listed.join(", "))
            }
            ArgumentError::ZeroBatch => f.write_str("--batch must be at least 1"),
            ArgumentError::OutOfRange { flag, value, range } => write!(f, "{flag} must be {range}, not {value}"),
            ArgumentError::EmptyTraining { data, subset } => {
                write!(f, "nothing to train on: the training set of `{data}` has no images")?;
                subset.map_or(Ok(()), |n| write!(f, " (--subset {n})"))
            }
            ArgumentError::EmptyValidation { data, fraction: Some(fraction) } => write!(
                f,
                "nothing to validate on: --val-split {fraction} holds out no image of `{data}`'s training set; give a larger fraction"
            ),
            ArgumentError::EmptyValidation { data, fraction: None } => {
                write!(f, "nothing to validate on: the test set of `{data}` has no images; give --val-split")
            }
        }
    }
}
