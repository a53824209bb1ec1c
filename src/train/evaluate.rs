//! Evaluation, always in eval mode: the network given here is on an inner (non-autodiff)
//! backend, so batch norm uses its running statistics and dropout is off. `run` is the
//! job behind `archc eval`: a model with its weights on a dataset's test set.

use crate::backend::BackendKind;
use crate::data::dataset::{self, Dataset, Pipeline, Source};
use crate::elaborate::{Compiled, Options, compile_file};
use crate::error::{DataError, Error, Purpose, WeightsError};
use crate::lower::weights::StateDict;
use crate::lower::{Network, Precision, Value};
use crate::report::Warning;
use burn::prelude::*;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Evaluation {
    pub loss: f64,
    pub top1: f64,
    pub top5: f64,
    /// confusion[true][predicted]
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    pub fn per_class(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| row[c] as f64 / row.iter().sum::<u64>().max(1) as f64)
            .collect()
    }
}

pub fn evaluate<B: Backend>(
    network: &Network<B>,
    data: &Dataset,
    pipeline: &Pipeline,
    batch: usize,
    device: &B::Device,
) -> Evaluation {
    let classes = data.classes.len().max(1);
    let mut confusion = vec![vec![0u64; classes]; classes];
    let network = network.for_inference();
    let (mut loss, mut top1, mut top5) = (0f64, 0usize, 0usize);
    let indices: Vec<usize> = (0..data.len()).collect();
    for chunk in indices.chunks(batch.max(1)) {
        let (images, _) = pipeline.batch::<B>(data, chunk, None, device);
        let logits = network.forward(Value::Image(images)).vector();
        let width = logits.dims()[1];
        // `iter` converts each value to f32, whatever the compute precision.
        let values: Vec<f32> = logits.into_data().iter::<f32>().collect();
        for (row, &i) in values.chunks(width).zip(chunk) {
            let label = data.labels[i] as usize;
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            let log_sum = row.iter().map(|v| ((v - max) as f64).exp()).sum::<f64>().ln() + max as f64;
            loss += log_sum - row[label] as f64;
            let mut order: Vec<usize> = (0..width).collect();
            order.sort_by(|a, b| row[*b].total_cmp(&row[*a]));
            top1 += usize::from(order[0] == label);
            top5 += usize::from(order.iter().take(5).any(|&c| c == label));
            if label < classes && order[0] < classes {
                confusion[label][order[0]] += 1;
            }
        }
    }
    let n = data.len().max(1) as f64;
    Evaluation { loss: loss / n, top1: top1 as f64 / n, top5: top5 as f64 / n, confusion }
}

/// What to evaluate on what.
pub struct Request {
    pub model: String,
    pub weights: PathBuf,
    /// fashion-mnist, mnist, cifar10, cifar100, or an ImageFolder directory.
    pub data: String,
    pub data_dir: Option<PathBuf>,
    pub compile: Options,
    pub batch: usize,
    pub backend: BackendKind,
    /// The compute precision (default: the checkpoint's).
    pub precision: Option<Precision>,
    /// Where to draw the confusion matrix (default: `confusion.png` beside the weights).
    pub confusion_png: Option<PathBuf>,
    /// Refuse a network whose memory estimate exceeds what the device can give
    /// (`cost::admission`); off with `--no-memory-check`.
    pub memory_check: bool,
}

/// An evaluated model: what it was evaluated on, and how it did.
pub struct Evaluated {
    pub model: String,
    /// The dataset's name.
    pub data: String,
    /// The test set (or, for a dataset without one, the training set).
    pub test: Dataset,
    pub evaluation: Evaluation,
    /// The confusion matrix picture, if it could be drawn.
    pub confusion_png: Option<PathBuf>,
    pub warnings: Vec<Warning>,
}

/// Evaluates the weights on the dataset's test set (its training set when it has none),
/// normalised as the checkpoint was trained.
pub fn run(request: &Request, compiled_file: &mut dyn FnMut(&Compiled)) -> Result<Evaluated, Error> {
    let compiled = compile_file(&request.model, &request.compile)?;
    compiled_file(&compiled);
    let Some(model) = compiled.result.models.first() else {
        return Err(Error::HasErrors { path: request.model.clone(), purpose: Purpose::Evaluate });
    };
    if request.batch == 0 {
        return Err(crate::error::ArgumentError::ZeroBatch.into());
    }
    if request.memory_check {
        let purpose = crate::cost::admission::Purpose::Infer;
        crate::backend::admit(request.backend, model, purpose, request.batch as u64)?;
    }
    // Everything computes on this thread: it can be one of the kernels' threads.
    crate::backend::use_threads(None, true)?;
    let source = Source::parse(&request.data);
    let (test, skipped) = dataset::load_test(&source, request.data_dir.as_deref(), model.input)?;
    if test.shape() != model.input {
        return Err(DataError::ImagesDoNotFit {
            data: source.name(),
            images: test.shape(),
            model: model.name.clone(),
            input: model.input,
            suggest_input: false,
        }
        .into());
    }
    let dict = StateDict::read(&request.weights)?;
    dict.check_settings(&request.weights, &request.compile.set)?;
    // The checkpoint remembers the normalisation it was trained with.
    let (mean, std) = dict
        .stored_normalization(&request.weights, test.channels)?
        .or_else(|| source.standard_normalization())
        .unwrap_or_else(|| test.channel_stats());
    let pipeline = Pipeline { mean, std, crop_padding: 0, flip: false };
    let precision = match request.precision {
        Some(precision) => precision,
        None => dict.precision().map_err(|e| WeightsError::Metadata {
            weights: request.weights.clone(),
            key: "precision",
            problem: e.to_string(),
        })?,
    };
    let evaluation = crate::with_backend!(request.backend, |B, device| {
        crate::backend::check_precision::<B>(precision, request.backend, &device)?;
        let network = Network::<B>::new(model, &device).load_file(&dict, &request.weights, &model.name)?;
        let network = network.with_precision(precision);
        evaluate::<B>(&network, &test, &pipeline, request.batch, &device)
    })?;
    let png = request.confusion_png.clone().unwrap_or_else(|| request.weights.with_file_name("confusion.png"));
    let mut warnings = Vec::new();
    if let Some(first) = skipped.first() {
        warnings.push(Warning::SkippedFiles { count: skipped.len(), first: first.clone() });
    }
    let confusion_png = match crate::plots::confusion(&png, &test.classes, &evaluation.confusion) {
        Ok(()) => Some(png),
        Err(reason) => {
            warnings.push(Warning::NoConfusion { reason: reason.to_string() });
            None
        }
    };
    Ok(Evaluated { model: model.name.clone(), data: source.name(), test, evaluation, confusion_png, warnings })
}
