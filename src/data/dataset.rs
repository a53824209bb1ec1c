//! Where datasets come from: what `--data` names (Fashion-MNIST, MNIST, CIFAR-10/100,
//! an ImageFolder directory), their standard normalisations, and loading one into
//! memory with its train and test splits.

pub use super::memory::{Dataset, Pipeline};
use super::{cifar, folder, idx};
use crate::error::{DataError, Error};
use crate::ir::Model;
use crate::tensor::Shape;
use std::path::{Path, PathBuf};

const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// What `--data` names.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    FashionMnist,
    Mnist,
    Cifar10,
    Cifar100,
    Folder(PathBuf),
}

impl Source {
    pub fn parse(text: &str) -> Source {
        match text.to_ascii_lowercase().as_str() {
            "fashion-mnist" | "fashion_mnist" | "fashionmnist" => Source::FashionMnist,
            "mnist" => Source::Mnist,
            "cifar10" | "cifar-10" => Source::Cifar10,
            "cifar100" | "cifar-100" => Source::Cifar100,
            _ => Source::Folder(PathBuf::from(text)),
        }
    }

    /// The standard normalisation constants (mean, std) for the known datasets.
    pub fn standard_normalization(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        Some(match self {
            Source::FashionMnist => (vec![0.2860], vec![0.3530]),
            Source::Mnist => (vec![0.1307], vec![0.3081]),
            Source::Cifar10 => (vec![0.4914, 0.4822, 0.4465], vec![0.2470, 0.2435, 0.2616]),
            Source::Cifar100 => (vec![0.5071, 0.4865, 0.4409], vec![0.2673, 0.2564, 0.2762]),
            Source::Folder(_) => return None,
        })
    }

    fn default_dir(&self) -> PathBuf {
        PathBuf::from(match self {
            Source::FashionMnist => FASHION_MNIST_DIR,
            Source::Mnist => "/usr/share/datasets/mnist",
            Source::Cifar10 => "cifar-10-batches-bin",
            Source::Cifar100 => "cifar-100-binary",
            Source::Folder(p) => return p.clone(),
        })
    }

    pub fn name(&self) -> String {
        match self {
            Source::FashionMnist => "fashion-mnist".into(),
            Source::Mnist => "mnist".into(),
            Source::Cifar10 => "cifar10".into(),
            Source::Cifar100 => "cifar100".into(),
            Source::Folder(p) => p.display().to_string(),
        }
    }
}

/// Training and test sets. `test` is `None` for a folder without a `val`/`test` split.
pub struct Loaded {
    pub train: Dataset,
    pub test: Option<Dataset>,
    /// Files in an ImageFolder's class folders that are not images, skipped.
    pub skipped: Vec<PathBuf>,
}

/// Loads a dataset; `shape` is the model's input (folders are resized to it).
pub fn load(source: &Source, dir: Option<&Path>, shape: Shape) -> Result<Loaded, Error> {
    load_splits(source, dir, shape, false)
}

/// Loads the set to evaluate on: the test set, read alone where it is a file of its
/// own (MNIST's, CIFAR's), so that evaluating needs no training images; an
/// ImageFolder without a test split evaluates its one split.
pub fn load_test(source: &Source, dir: Option<&Path>, shape: Shape) -> Result<(Dataset, Vec<PathBuf>), Error> {
    let loaded = load_splits(source, dir, shape, true)?;
    Ok((loaded.test.unwrap_or(loaded.train), loaded.skipped))
}

/// With `test_only`, the training set of MNIST and CIFAR is left empty (unread).
fn load_splits(source: &Source, dir: Option<&Path>, shape: Shape, test_only: bool) -> Result<Loaded, Error> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| source.default_dir());
    match source {
        Source::FashionMnist | Source::Mnist => {
            let classes: Vec<String> = if *source == Source::FashionMnist {
                FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
            } else {
                (0..10).map(|d| d.to_string()).collect()
            };
            let read = |prefix: &str| -> Result<Dataset, Error> {
                let images = idx::read(&dir.join(format!("{prefix}-images-idx3-ubyte")))?;
                let labels = idx::read(&dir.join(format!("{prefix}-labels-idx1-ubyte")))?;
                if images.dims.len() != 3 || labels.dims.len() != 1 || images.dims[0] != labels.dims[0] {
                    return Err(DataError::ImagesAndLabelsDiffer {
                        dir: dir.clone(),
                        split: prefix.to_string(),
                        images: images.dims,
                        labels: labels.dims,
                    }
                    .into());
                }
                if let Some(bad) = labels.data.iter().find(|&&l| l >= 10) {
                    let (dir, split) = (dir.clone(), prefix.to_string());
                    return Err(DataError::LabelOutOfRange { dir, split, label: *bad }.into());
                }
                Ok(Dataset {
                    name: source.name(),
                    channels: 1,
                    height: images.dims[1],
                    width: images.dims[2],
                    pixels: images.data,
                    labels: labels.data.iter().map(|&l| l as u32).collect(),
                    classes: classes.clone(),
                })
            };
            let test = read("t10k")?;
            let train = match test_only {
                true => Dataset {
                    classes: test.classes.clone(),
                    ..Dataset::empty(&test.name, test.channels, test.height, test.width)
                },
                false => read("train")?,
            };
            Ok(Loaded { train, test: Some(test), skipped: Vec::new() })
        }
        Source::Cifar10 | Source::Cifar100 => {
            let hundred = *source == Source::Cifar100;
            let (train_files, test_file): (Vec<String>, &str) = if hundred {
                (vec!["train.bin".into()], "test.bin")
            } else {
                ((1..=5).map(|i| format!("data_batch_{i}.bin")).collect(), "test_batch.bin")
            };
            let classes: Vec<String> = if hundred {
                (0..100).map(|i| i.to_string()).collect()
            } else {
                CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect()
            };
            let read = |files: &[String]| -> Result<Dataset, Error> {
                let mut dataset = Dataset::empty(&source.name(), 3, 32, 32);
                dataset.classes = classes.clone();
                for file in files {
                    let (pixels, labels) = cifar::read(&dir.join(file), hundred)?;
                    dataset.pixels.extend(pixels);
                    dataset.labels.extend(labels);
                }
                Ok(dataset)
            };
            let train = if test_only { Vec::new() } else { train_files };
            Ok(Loaded { train: read(&train)?, test: Some(read(&[test_file.to_string()])?), skipped: Vec::new() })
        }
        Source::Folder(root) => {
            let Shape::Image { c, h, w } = shape else {
                return Err(DataError::FolderNeedsImages.into());
            };
            let (c, h, w) = (c as usize, h as usize, w as usize);
            let split = |name: &str| root.join(name).is_dir().then(|| root.join(name));
            let mut skipped = Vec::new();
            let (train, test) = match (split("train"), split("val").or_else(|| split("test"))) {
                (Some(train), Some(test)) => {
                    let train = folder::read(&train, &source.name(), (c, h, w), None, &mut skipped)?;
                    // Labelled by the training split's class names, not by its own folders.
                    let test = folder::read(&test, &source.name(), (c, h, w), Some(&train.classes), &mut skipped)?;
                    (train, Some(test))
                }
                _ => (folder::read(root, &source.name(), (c, h, w), None, &mut skipped)?, None),
            };
            Ok(Loaded { train, test, skipped })
        }
    }
}

/// Loads a dataset for `model`, checking that its images and classes fit the model.
pub fn load_for(source: &Source, data_dir: Option<&Path>, model: &Model) -> Result<Loaded, Error> {
    let loaded = load(source, data_dir, model.input)?;
    if loaded.train.shape() != model.input {
        return Err(DataError::ImagesDoNotFit {
            data: source.name(),
            images: loaded.train.shape(),
            model: model.name.clone(),
            input: model.input,
            suggest_input: true,
        }
        .into());
    }
    let classes = loaded.train.classes.len() as u64;
    if model.output != (Shape::Vector { d: classes }) {
        let (data, model, output) = (source.name(), model.name.clone(), model.output);
        return Err(DataError::ClassesDoNotFit { data, classes, model, output }.into());
    }
    Ok(loaded)
}
