//! Datasets in memory as bytes (one `u8` per pixel, C×H×W per image), the splits a
//! training run uses, and turning index lists into normalised, augmented batches.

use super::{cifar, folder, idx};
use crate::ir::Shape;
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Dataset {
    pub name: String,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub pixels: Vec<u8>,
    pub labels: Vec<u32>,
    pub classes: Vec<String>,
}

const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
const CIFAR10_CLASSES: [&str; 10] =
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

/// Where Debian's `dataset-fashion-mnist` package installs the files.
pub const FASHION_MNIST_DIR: &str = "/usr/share/datasets/fashion-mnist";

impl Dataset {
    pub fn empty(name: &str, channels: usize, height: usize, width: usize) -> Dataset {
        Dataset {
            name: name.into(),
            channels,
            height,
            width,
            pixels: Vec::new(),
            labels: Vec::new(),
            classes: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image_size(&self) -> usize {
        self.channels * self.height * self.width
    }

    pub fn shape(&self) -> Shape {
        Shape::Image { c: self.channels as u64, h: self.height as u64, w: self.width as u64 }
    }

    fn select(&self, indices: &[usize]) -> Dataset {
        let size = self.image_size();
        let mut out =
            Dataset { pixels: Vec::with_capacity(indices.len() * size), labels: Vec::new(), ..self.clone_meta() };
        for &i in indices {
            out.pixels.extend_from_slice(&self.pixels[i * size..(i + 1) * size]);
            out.labels.push(self.labels[i]);
        }
        out
    }

    fn clone_meta(&self) -> Dataset {
        Dataset { pixels: Vec::new(), labels: Vec::new(), ..self.clone() }
    }

    /// A stratified, seeded subset of `n` images: each class keeps its share.
    pub fn subset(&self, n: usize, seed: u64) -> Dataset {
        if n >= self.len() {
            return self.clone();
        }
        self.select(&self.stratified(n, seed))
    }

    /// Splits off a seeded, stratified validation part of `fraction` of the images.
    pub fn split(&self, fraction: f64, seed: u64) -> (Dataset, Dataset) {
        let val = self.stratified(((self.len() as f64) * fraction).round() as usize, seed);
        let mut in_val = vec![false; self.len()];
        for &i in &val {
            in_val[i] = true;
        }
        let train: Vec<usize> = (0..self.len()).filter(|&i| !in_val[i]).collect();
        (self.select(&train), self.select(&val))
    }

    /// `n` indices drawn per class in proportion to the class sizes (largest
    /// remainders get the rounding), in ascending order.
    fn stratified(&self, n: usize, seed: u64) -> Vec<usize> {
        let mut rng: StdRng = rand::SeedableRng::seed_from_u64(seed);
        let classes = self.labels.iter().max().map(|&m| m as usize + 1).unwrap_or(0);
        let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
        for (i, &label) in self.labels.iter().enumerate() {
            by_class[label as usize].push(i);
        }
        let total = self.len().max(1);
        let mut take: Vec<usize> = by_class.iter().map(|m| m.len() * n / total).collect();
        let mut order: Vec<usize> = (0..classes).collect();
        order.sort_by_key(|&c| (std::cmp::Reverse(by_class[c].len() * n % total), c));
        let mut missing = n.saturating_sub(take.iter().sum());
        for c in order {
            if missing == 0 {
                break;
            }
            if take[c] < by_class[c].len() {
                take[c] += 1;
                missing -= 1;
            }
        }
        let mut chosen = Vec::with_capacity(n);
        for (members, count) in by_class.iter_mut().zip(take) {
            members.shuffle(&mut rng);
            chosen.extend_from_slice(&members[..count]);
        }
        chosen.sort();
        chosen
    }

    /// Per-channel mean and standard deviation of the pixels in [0, 1].
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let plane = self.height * self.width;
        let mut sum = vec![0f64; self.channels];
        let mut squares = vec![0f64; self.channels];
        for image in self.pixels.chunks_exact(self.image_size()) {
            for c in 0..self.channels {
                for &p in &image[c * plane..(c + 1) * plane] {
                    let v = p as f64 / 255.0;
                    sum[c] += v;
                    squares[c] += v * v;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = squares.iter().zip(&mean).map(|(q, m)| ((q / n - m * m).max(1e-12)).sqrt() as f32).collect();
        (mean.iter().map(|m| *m as f32).collect(), std)
    }
}

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
}

/// Loads a dataset; `shape` is the model's input (folders are resized to it).
pub fn load(source: &Source, dir: Option<&Path>, shape: Shape) -> Result<Loaded, String> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| source.default_dir());
    match source {
        Source::FashionMnist | Source::Mnist => {
            let classes: Vec<String> = if *source == Source::FashionMnist {
                FASHION_CLASSES.iter().map(|s| s.to_string()).collect()
            } else {
                (0..10).map(|d| d.to_string()).collect()
            };
            let read = |prefix: &str| -> Result<Dataset, String> {
                let images = idx::read(&dir.join(format!("{prefix}-images-idx3-ubyte")))?;
                let labels = idx::read(&dir.join(format!("{prefix}-labels-idx1-ubyte")))?;
                if images.dims.len() != 3 || labels.dims.len() != 1 || images.dims[0] != labels.dims[0] {
                    return Err(format!(
                        "`{}`: {prefix} images {:?} and labels {:?} do not match",
                        dir.display(),
                        images.dims,
                        labels.dims
                    ));
                }
                if let Some(bad) = labels.data.iter().find(|&&l| l >= 10) {
                    return Err(format!("`{}`: {prefix} labels contain {bad}, expected 0..9", dir.display()));
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
            Ok(Loaded { train: read("train")?, test: Some(read("t10k")?) })
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
            let read = |files: &[String]| -> Result<Dataset, String> {
                let mut dataset = Dataset::empty(&source.name(), 3, 32, 32);
                dataset.classes = classes.clone();
                for file in files {
                    let (pixels, labels) = cifar::read(&dir.join(file), hundred)?;
                    dataset.pixels.extend(pixels);
                    dataset.labels.extend(labels);
                }
                Ok(dataset)
            };
            Ok(Loaded { train: read(&train_files)?, test: Some(read(&[test_file.to_string()])?) })
        }
        Source::Folder(root) => {
            let Shape::Image { c, h, w } = shape else {
                return Err("image folders need a model that takes images".into());
            };
            let (c, h, w) = (c as usize, h as usize, w as usize);
            let split = |name: &str| root.join(name).is_dir().then(|| root.join(name));
            match (split("train"), split("val").or_else(|| split("test"))) {
                (Some(train), Some(test)) => {
                    let train = folder::read(&train, &source.name(), (c, h, w), None)?;
                    // Labelled by the training split's class names, not by its own folders.
                    let test = folder::read(&test, &source.name(), (c, h, w), Some(&train.classes))?;
                    Ok(Loaded { train, test: Some(test) })
                }
                _ => Ok(Loaded { train: folder::read(root, &source.name(), (c, h, w), None)?, test: None }),
            }
        }
    }
}

/// How a batch is prepared.
#[derive(Clone, Debug)]
pub struct Pipeline {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// Random crop after zero-padding by this many pixels (0: no crop).
    pub crop_padding: usize,
    pub flip: bool,
}

impl Pipeline {
    /// A normalised batch as [N, C, H, W] and its labels; augmentation only when `rng`
    /// is given (training).
    pub fn batch<B: Backend>(
        &self,
        data: &Dataset,
        indices: &[usize],
        rng: Option<&mut StdRng>,
        device: &B::Device,
    ) -> (Tensor<B, 4>, Tensor<B, 1, Int>) {
        let (c, h, w) = (data.channels, data.height, data.width);
        let size = data.image_size();
        let mut out = vec![0f32; indices.len() * size];
        let mut rng = rng;
        for (k, &i) in indices.iter().enumerate() {
            let image = &data.pixels[i * size..(i + 1) * size];
            let (dy, dx, flip) = match rng.as_deref_mut() {
                Some(rng) => {
                    let p = self.crop_padding as i64;
                    let (dy, dx) = if p > 0 { (rng.random_range(-p..=p), rng.random_range(-p..=p)) } else { (0, 0) };
                    (dy, dx, self.flip && rng.random_bool(0.5))
                }
                None => (0, 0, false),
            };
            for ch in 0..c {
                let (m, s) = (self.mean[ch], self.std[ch]);
                for y in 0..h {
                    for x in 0..w {
                        let sy = y as i64 + dy;
                        let sx0 = if flip { (w - 1 - x) as i64 } else { x as i64 };
                        let sx = sx0 + dx;
                        let v = if sy < 0 || sx < 0 || sy >= h as i64 || sx >= w as i64 {
                            0.0 // the zero padding, before normalisation (torchvision pads the image)
                        } else {
                            image[ch * h * w + sy as usize * w + sx as usize] as f32 / 255.0
                        };
                        out[k * size + ch * h * w + y * w + x] = (v - m) / s;
                    }
                }
            }
        }
        let labels: Vec<i64> = indices.iter().map(|&i| data.labels[i] as i64).collect();
        (
            Tensor::from_data(TensorData::new(out, [indices.len(), c, h, w]), device),
            Tensor::from_data(TensorData::new(labels, [indices.len()]), device),
        )
    }
}
