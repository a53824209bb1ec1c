//! Every error archc can report outside a `.arch` file, as a user reads it: one sample of
//! each variant of `archc::error::Error`, rendered through its `Display` (the one place
//! that words them) into one snapshot. Each message is one line (the weights report
//! lists its tensors below its line) and names the file or option it is about.

use archc::error::{
    ArgumentError, DataError, DeviceError, Error, ExportError, FileKind, IoReason, MemoryUse, Purpose, RunError,
    WeightProblem, WeightsError,
};
use archc::ir::Shape;
use std::path::PathBuf;

fn path(p: &str) -> PathBuf {
    PathBuf::from(p)
}

fn samples() -> Vec<Error> {
    let image = |c, h, w| Shape::Image { c, h, w };
    let problems = vec![
        WeightProblem::Missing { name: "conv1.weight".into(), expected: vec![64, 3, 7, 7] },
        WeightProblem::Reshaped { name: "fc.weight".into(), found: vec![1000, 512], expected: vec![10, 512] },
        WeightProblem::Unexpected { name: "head.extra".into(), shape: vec![2] },
    ];
    let mut all: Vec<Error> = vec![
        Error::Read { path: path("models/missing.arch"), reason: IoReason::NotFound },
        Error::Read { path: path("locked.safetensors"), reason: IoReason::PermissionDenied },
        Error::Read { path: path("models"), reason: IoReason::IsADirectory },
        Error::Read { path: path("latin1.arch"), reason: IoReason::NotUtf8 },
        Error::ReadEither { path: path("data/train-images-idx3-ubyte"), gz: path("data/train-images-idx3-ubyte.gz") },
        Error::Write {
            path: path("runs/a/last.safetensors"),
            reason: IoReason::Other("File too large (os error 27)".into()),
        },
        Error::Create { path: path("/proc/runs"), reason: IoReason::PermissionDenied },
        Error::HasErrors { path: "broken.arch".into(), purpose: Purpose::Train },
        Error::HasErrors { path: "broken.arch".into(), purpose: Purpose::Evaluate },
        Error::HasErrors { path: "broken.arch".into(), purpose: Purpose::Run },
        Error::HasErrors { path: "broken.arch".into(), purpose: Purpose::Export },
    ];
    let malformed = [
        FileKind::Safetensors,
        FileKind::StateDict,
        FileKind::Gzip,
        FileKind::Idx,
        FileKind::Npy,
        FileKind::Image,
        FileKind::Cifar { classes: 10 },
        FileKind::BenchReport { schema: "archc-bench/1" },
        FileKind::Damaged,
    ];
    all.extend(malformed.into_iter().map(|kind| Error::Malformed {
        path: path("file"),
        kind,
        problem: "its reader's words".into(),
    }));
    let data = [
        DataError::ImagesDoNotFit {
            data: "cifar10".into(),
            images: image(3, 32, 32),
            model: "lenet5".into(),
            input: image(1, 28, 28),
            suggest_input: true,
        },
        DataError::ImagesDoNotFit {
            data: "cifar10".into(),
            images: image(3, 32, 32),
            model: "lenet5".into(),
            input: image(1, 28, 28),
            suggest_input: false,
        },
        DataError::ClassesDoNotFit {
            data: "cifar100".into(),
            classes: 100,
            model: "resnet20".into(),
            output: Shape::Vector { d: 10 },
        },
        // A ViT without its head: the fix is a head, not `--set classes`.
        DataError::ClassesDoNotFit {
            data: "fashion-mnist".into(),
            classes: 10,
            model: "vit_tiny_16".into(),
            output: Shape::Tokens { n: 197, d: 1000 },
        },
        DataError::ClassesDoNotFit {
            data: "fashion-mnist".into(),
            classes: 10,
            model: "backbone".into(),
            output: Shape::Image { c: 512, h: 7, w: 7 },
        },
        DataError::ImagesAndLabelsDiffer {
            dir: path("mnist"),
            split: "train".into(),
            images: vec![60000, 28, 28],
            labels: vec![59999],
        },
        DataError::LabelOutOfRange { dir: path("mnist"), split: "t10k".into(), label: 12 },
        DataError::CifarLabelOutOfRange { path: path("data_batch_1.bin"), record: 7, label: 10, classes: 10 },
        DataError::FolderNeedsImages,
        DataError::NoClassFolders { root: path("photos") },
        DataError::UnknownClass { dir: path("photos/val/zebra") },
        DataError::NoImages { root: path("photos") },
        DataError::Channels { path: path("cat.png"), channels: 4 },
        DataError::NormalizationChannels { means: 3, stds: 1, channels: 3 },
        DataError::ArrayDoesNotFit {
            path: path("batch.npy"),
            shape: vec![2, 1, 28, 28],
            model: "resnet20".into(),
            input: [3, 32, 32],
        },
        DataError::ClassNames { names: 9, classes: 10 },
        DataError::NotAClassifier { model: "encoder".into(), input: image(3, 32, 32), output: image(64, 8, 8) },
        DataError::NotAnImageModel { model: "mlp".into(), input: Shape::Vector { d: 784 } },
        DataError::NoAttention { model: "lenet5".into() },
        DataError::EmptyClass { dir: path("flowers/train/tulips") },
    ];
    all.extend(data.into_iter().map(Error::from));
    let weights = [
        WeightsError::DoNotFit { weights: path("resnet18.pth"), model: "resnet18".into(), problems: problems.clone() },
        WeightsError::InitDoesNotFit { problems },
        WeightsError::SettingsDiffer {
            weights: path("runs/a/best.safetensors"),
            trained: vec![("skip".into(), "false".into())],
            given: Vec::new(),
        },
        WeightsError::Metadata { weights: path("best.safetensors"), key: "set", problem: "expected value".into() },
        WeightsError::InitReshaped {
            weights: path("resnet18.safetensors"),
            model: "resnet18".into(),
            reshaped: vec![
                ("fc.weight".into(), vec![1000, 512], vec![10, 512]),
                ("fc.bias".into(), vec![1000], vec![10]),
            ],
        },
        WeightsError::InitMatchesNothing { weights: path("vit.safetensors"), model: "resnet18".into(), unused: 152 },
    ];
    all.extend(weights.into_iter().map(Error::from));
    let devices = [
        DeviceError::NoDriver,
        DeviceError::DriverIncomplete,
        DeviceError::NoCudaDevice,
        DeviceError::DriverCannotStart { code: 999 },
        DeviceError::BuiltWithoutCuda,
        DeviceError::EmptyEntry { devices: "cuda:0,".into() },
        DeviceError::NotADevice { entry: "cuda:x".into(), backend: "cuda".into() },
        DeviceError::NotADevice { entry: "gpu".into(), backend: "flex".into() },
        DeviceError::NotACudaDevice { entry: "cpu".into() },
        DeviceError::GpusNeedCuda { devices: "cuda:0,cuda:1".into() },
        DeviceError::ListedTwice { index: 1 },
        DeviceError::NoSuchDevice { index: 3, count: 2 },
        DeviceError::NoPrecision { backend: "ndarray".into(), precision: "bf16".into() },
        DeviceError::Failed { backend: "cuda".into(), reason: "out of memory".into() },
        DeviceError::Threads { threads: 4, reason: "the global thread pool has already been initialized".into() },
        DeviceError::NotEnoughMemory {
            model: "resnet50".into(),
            needs: MemoryUse::Train,
            batch: 512,
            needed: 60_000_000_000,
            available: 20_000_000_000,
            source: "MemAvailable".into(),
            largest_batch: Some(160),
        },
        DeviceError::NotEnoughMemory {
            model: "huge".into(),
            needs: MemoryUse::Infer,
            batch: 1,
            needed: 4_000_000_000_000,
            available: 20_000_000_000,
            source: "the cgroup's memory limit".into(),
            largest_batch: None,
        },
    ];
    all.extend(devices.into_iter().map(Error::from));
    let runs = [
        RunError::NotARunDir { dir: path("runs/typo") },
        RunError::ResumeFrom { file: path("runs/a/last.mpk"), reason: "unexpected end of file".into() },
        RunError::OtherOptimizer { dir: path("runs/a") },
        RunError::ResumeKeepsSettings { dir: path("runs/a") },
        RunError::NoDevice,
        RunError::NoOrder { epoch: 3 },
        RunError::DeviceFailed { epoch: 2, batch: 17, failure: "out of memory".into(), dir: path("runs/a") },
        RunError::LossNotFinite { value: f64::NAN, epoch: 2, batch: 5, dir: path("runs/a") },
        RunError::WeightsNotFinite { epoch: 4, dir: path("runs/a") },
        RunError::LossNotFinite { value: f64::INFINITY, epoch: 1, batch: 3, dir: path("runs/a") },
        RunError::NoEpoch { model: "resnet20".into() },
        RunError::NotOfCheckpoint { file: path("runs/a/checkpoints/3/last.mpk"), epoch: 3, missing: false },
        RunError::NotOfCheckpoint { file: path("runs/a/checkpoints/3/optimizer.mpk"), epoch: 3, missing: true },
        RunError::InUse { dir: path("runs/a"), pid: Some(4242) },
        RunError::InUse { dir: path("runs/a"), pid: None },
        RunError::AlreadyARun { dir: path("runs/a") },
        RunError::ResumeDiffers {
            dir: path("runs/a"),
            differences: vec![
                ("MODEL".into(), "models/resnet20.arch".into(), "runs/a/model.arch".into()),
                ("--lr".into(), "0.1".into(), "0.05".into()),
            ],
        },
        RunError::AlreadyAComparison { dir: path("runs/cmp") },
        RunError::NotForComparison { dir: path("runs/a") },
        RunError::ModelEdited { file: path("runs/a/model.arch") },
        RunError::StateLost { dir: path("runs/a"), checkpoint: path("runs/a/checkpoints/4") },
        RunError::EpochsBehind { dir: path("runs/a"), epochs: 2, completed: 5 },
    ];
    all.extend(runs.into_iter().map(Error::from));
    let arguments = [
        ArgumentError::ValSplit { fraction: 1.5 },
        ArgumentError::BatchForBatchNorm { batch: 1 },
        ArgumentError::MeanWithoutStd,
        ArgumentError::Normalization { channels: 3 },
        ArgumentError::BenchSizes,
        ArgumentError::NoEpochs,
        ArgumentError::FileTwice { path: "models/resnet20.arch".into() },
        ArgumentError::SubsetTwice { size: Some(1000) },
        ArgumentError::SubsetTwice { size: None },
        ArgumentError::SameLabel { label: "resnet20".into() },
        ArgumentError::DepthsTwice,
        ArgumentError::SweptTwice { name: "depth".into() },
        ArgumentError::FixedAndSwept { name: "depth".into(), flag: "--depths".into() },
        ArgumentError::SchemaOf { path: "old.json".into(), schema: "archc-bench/0".into(), expected: "archc-bench/1" },
        ArgumentError::ReferenceLacks {
            path: "torch.json".into(),
            model: "lenet5".into(),
            has: vec!["resnet20".into(), "resnet18".into()],
        },
        ArgumentError::NotACode { text: "E9999".into() },
        ArgumentError::NothingToTrain,
        ArgumentError::FreezesFresh { names: vec!["conv1.weight".into()] },
        ArgumentError::FreezesEverything,
        ArgumentError::NoHead,
        ArgumentError::FreezeCoversNothing {
            prefixes: vec!["lyer2".into(), "head".into()],
            suggestions: vec![Some("layer2".into()), None],
        },
        ArgumentError::ZeroBatch,
        ArgumentError::OutOfRange { flag: "--lr", value: f64::NAN, range: "greater than 0" },
        ArgumentError::EmptyTraining { data: "mnist".into(), subset: Some(0) },
        ArgumentError::EmptyValidation { data: "data/flowers".into(), fraction: Some(0.001) },
        ArgumentError::EmptyValidation { data: "mnist".into(), fraction: None },
    ];
    all.extend(arguments.into_iter().map(Error::from));
    let export = [
        ExportError::Unsupported {
            layer: "pool".into(),
            location: "uneven.arch:3:3".into(),
            opset: 17,
            what: "adaptive_avgpool(3) on 10×10 makes bins of unequal sizes, which ONNX has no operator for".into(),
        },
        ExportError::Opset { opset: 16, lowest: 17, highest: 21 },
        ExportError::NoWeight { name: "fc.weight".into() },
        ExportError::TooLarge { bytes: 3_000_000_000 },
        ExportError::WeightsInCode,
        ExportError::NoModule {
            layer: "block.0.conv".into(),
            location: "m.arch:4:9".into(),
            what: "its weights belong to a block inside a block that uses layers of the one around it".into(),
        },
    ];
    all.extend(export.into_iter().map(Error::from));
    all
}

/// `Data::ImagesDoNotFit`: the variant, from its `Debug` form.
fn variant(error: &Error) -> String {
    let debug = format!("{error:?}");
    let head = debug.split([' ', '{']).next().unwrap_or_default();
    head.trim_end_matches(')').replace('(', "::")
}

#[test]
fn every_error_reads_as_one_line_naming_what_it_is_about() {
    let samples = samples();
    let mut text = String::new();
    for error in &samples {
        let message = error.to_string();
        let first = message.lines().next().unwrap_or_default();
        let full_stop = first.ends_with('.') && !first.ends_with("...");
        assert!(!first.is_empty() && !full_stop, "one line, no full stop: {message:?}");
        if !matches!(error, Error::Weights(WeightsError::DoNotFit { .. })) {
            assert!(!message.contains('\n'), "one line: {message:?}");
        }
        text.push_str(&format!("{}\n  {}\n", variant(error), message.replace('\n', "\n  ")));
    }
    insta::with_settings!({ snapshot_path => "../snapshots/errors", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("every_error", text);
    });
}

#[test]
fn io_reasons_come_from_the_operating_system() {
    let reason = |kind| IoReason::from(std::io::Error::from(kind));
    assert_eq!(reason(std::io::ErrorKind::NotFound), IoReason::NotFound);
    assert_eq!(reason(std::io::ErrorKind::PermissionDenied), IoReason::PermissionDenied);
    assert_eq!(reason(std::io::ErrorKind::IsADirectory), IoReason::IsADirectory);
    assert!(matches!(reason(std::io::ErrorKind::StorageFull), IoReason::Other(_)));
    let error = archc::elaborate::compile_file("tests/no/such/file.arch", &Default::default()).err();
    assert_eq!(error.map(|e| e.to_string()).as_deref(), Some("cannot read `tests/no/such/file.arch`: no such file"));
}

/// Every warning (what a job could not do or should say without stopping), as read.
#[test]
fn every_warning_reads_as_one_line() {
    use archc::report::Warning;
    let samples = [
        Warning::NoCurves { reason: "no font: install fonts-dejavu-core or set ARCHC_FONT".into() },
        Warning::NotDrawn { picture: "accuracy.png".into(), reason: "no font".into() },
        Warning::NoConfusion { reason: "no font".into() },
        Warning::UntrainedMaps,
        Warning::Unnormalized { weights: path("resnet18.safetensors") },
        Warning::FewerImagesThanClasses { images: 5, classes: 10 },
        Warning::SkippedFiles { count: 1, first: path("flowers/train/roses/notes.txt") },
        Warning::SkippedFiles { count: 4, first: path("flowers/train/roses/notes.txt") },
    ];
    let mut text = String::new();
    for warning in &samples {
        let message = warning.to_string();
        assert!(!message.contains('\n') && !message.ends_with('.'), "one line, no full stop: {message:?}");
        text.push_str(&format!("{warning:?}\n  {message}\n"));
    }
    insta::with_settings!({ snapshot_path => "../snapshots/errors", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("every_warning", text);
    });
}
