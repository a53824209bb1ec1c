//! The prediction job behind `archc predict`: a classifier with its weights on images
//! (PNG/JPEG, resized and normalised for the model) or `.npy` float32 arrays
//! [N, C, H, W] used as they are; each input's logits and its five likeliest classes.

use crate::backend::BackendKind;
use crate::data::{images, npy};
use crate::elaborate::{Compiled, Options, compile_file};
use crate::error::{DataError, Error, IoReason, Purpose, WeightsError};
use crate::lower::weights::StateDict;
use crate::lower::{Network, Value};
use crate::report::Warning;
use crate::tensor::Shape;
use burn::prelude::*;
use burn::tensor::TensorData;
use std::path::PathBuf;

/// What to run on what.
pub struct Request {
    pub model: String,
    /// `.safetensors` (archc's checkpoints, or any torch-named state dict) or PyTorch `.pt`.
    pub weights: PathBuf,
    /// Images (PNG, JPEG) or `.npy` arrays of shape [N, C, H, W], float32.
    pub inputs: Vec<PathBuf>,
    pub compile: Options,
    /// Per-channel mean and standard deviation for images (default: from the
    /// checkpoint, else none).
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    /// Class names, one per line (default: from the checkpoint, else indices).
    pub labels: Option<PathBuf>,
    pub backend: BackendKind,
    /// Refuse a network whose memory estimate exceeds what the device can give
    /// (`cost::admission`); off with `--no-memory-check`.
    pub memory_check: bool,
}

/// One image's (or one row of an array's) prediction.
pub struct Prediction {
    /// The file, with `[i]` for the rows of an array of more than one.
    pub input: String,
    pub logits: Vec<f32>,
    /// The five likeliest classes, likeliest first: index, name, probability.
    pub top5: Vec<(usize, String, f32)>,
}

/// Runs the model on every input, in order.
/// The predictions, and what the user should know about them.
pub struct Predicted {
    pub predictions: Vec<Prediction>,
    pub warnings: Vec<Warning>,
}

pub fn run(request: &Request, compiled_file: &mut dyn FnMut(&Compiled)) -> Result<Predicted, Error> {
    let compiled = compile_file(&request.model, &request.compile)?;
    compiled_file(&compiled);
    let Some(model) = compiled.result.models.first() else {
        return Err(Error::HasErrors { path: request.model.clone(), purpose: Purpose::Run });
    };
    let (Shape::Image { c, h, w }, Shape::Vector { d: classes }) = (model.input, model.output) else {
        let (model, input, output) = (model.name.clone(), model.input, model.output);
        return Err(DataError::NotAClassifier { model, input, output }.into());
    };
    // Everything computes on this thread: it can be one of the kernels' threads.
    crate::backend::use_threads(None, true)?;
    let dict = StateDict::read(&request.weights)?;
    dict.check_settings(&request.weights, &request.compile.set)?;
    let (c, h, w, classes) = (c as usize, h as usize, w as usize, classes as usize);
    let stored = dict.stored_normalization(&request.weights, c)?;
    let normalize = images::normalization(&request.mean, &request.std, stored, c)?;
    let names = class_names(request, &dict, classes)?;
    let mut batches: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for input in &request.inputs {
        let is_npy = input.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy"));
        if is_npy {
            let array = npy::read(input)?;
            if array.shape.len() != 4 || array.shape[1..] != [c, h, w] {
                let (path, model) = (input.clone(), model.name.clone());
                return Err(DataError::ArrayDoesNotFit { path, shape: array.shape, model, input: [c, h, w] }.into());
            }
            batches.push((input.display().to_string(), array.shape, array.data));
        } else {
            let data = images::load(input, c, h, w, normalize.as_ref())?;
            batches.push((input.display().to_string(), vec![1, c, h, w], data));
        }
    }
    if request.memory_check {
        let batch = batches.iter().map(|(_, shape, _)| shape[0]).max().unwrap_or(1);
        crate::backend::admit(request.backend, model, crate::cost::admission::Purpose::Infer, batch as u64)?;
    }
    let logits: Vec<Vec<f32>> = crate::with_backend!(request.backend, |B, device| {
        let network =
            Network::<B>::new(model, &device).load_file(&dict, &request.weights, &model.name)?.for_inference();
        let mut all = Vec::new();
        for (_, shape, data) in &batches {
            let x = Tensor::<B, 4>::from_data(TensorData::new(data.clone(), shape.clone()), &device);
            let y = network.forward(Value::Image(x)).vector();
            // `iter` converts each value to f32: it cannot fail.
            all.push(y.into_data().iter::<f32>().collect());
        }
        Ok::<_, Error>(all)
    })??;
    let mut predictions = Vec::new();
    for ((file, shape, _), values) in batches.iter().zip(&logits) {
        for (i, row) in values.chunks(classes).enumerate() {
            let input = if shape[0] > 1 { format!("{file}[{i}]") } else { file.clone() };
            let p = softmax(row);
            let top5 = top5(&p).into_iter().map(|k| (k, names[k].clone(), p[k])).collect();
            predictions.push(Prediction { input, logits: row.to_vec(), top5 });
        }
    }
    let mut warnings = Vec::new();
    let images = request.inputs.iter().any(|i| !i.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")));
    if images && normalize.is_none() {
        warnings.push(Warning::Unnormalized { weights: request.weights.clone() });
    }
    Ok(Predicted { predictions, warnings })
}

fn class_names(request: &Request, dict: &StateDict, classes: usize) -> Result<Vec<String>, Error> {
    let names: Vec<String> = match (&request.labels, dict.metadata.get("classes")) {
        (Some(path), _) => std::fs::read_to_string(path)
            .map_err(|e| Error::Read { path: path.clone(), reason: IoReason::os(&e) })?
            .lines()
            .map(str::to_string)
            .collect(),
        (None, Some(list)) => serde_json::from_str(list).map_err(|e| WeightsError::Metadata {
            weights: request.weights.clone(),
            key: "classes",
            problem: e.to_string(),
        })?,
        (None, None) => Vec::new(),
    };
    if !names.is_empty() && names.len() != classes {
        return Err(DataError::ClassNames { names: names.len(), classes }.into());
    }
    Ok((0..classes).map(|i| names.get(i).cloned().unwrap_or_else(|| i.to_string())).collect())
}

fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|v| (v - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|v| v / sum).collect()
}

fn top5(probabilities: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|a, b| probabilities[*b].total_cmp(&probabilities[*a]));
    order.truncate(5);
    order
}
