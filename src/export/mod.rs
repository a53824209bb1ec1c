//! `archc export`: a checked model leaves archc as an ONNX file (for onnxruntime,
//! TensorRT, Netron) or as a PyTorch module (for `torchrun` and the rest of PyTorch's
//! world). The `.arch` file stays the source; weights keep their PyTorch names on both
//! roads, so archc's checkpoints load into either as they are.

pub mod onnx;
#[allow(clippy::all, clippy::pedantic)]
pub mod onnx_proto;
pub mod pytorch;

use crate::elaborate::{Compiled, Options, compile_file};
use crate::error::{Error, ExportError, Purpose};
use crate::lower::Network;
use crate::lower::weights::StateDict;
use burn::backend::Flex;
use burn::prelude::Backend;
use std::path::PathBuf;

pub use onnx::Batch;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Onnx,
    Pytorch,
    /// The network's weights, freshly initialised from `--seed` as PyTorch initialises
    /// them, by PyTorch name (what `predict --weights` and `train --init` read).
    Safetensors,
}

pub struct Request {
    pub model: String,
    pub compile: Options,
    pub format: Format,
    pub out: PathBuf,
    /// ONNX: the weights to write (default: freshly initialised from `seed`).
    pub weights: Option<PathBuf>,
    pub seed: u64,
    pub opset: i64,
    pub batch: Batch,
}

/// What was written.
pub struct Exported {
    pub model: String,
    pub path: PathBuf,
    pub bytes: u64,
    pub format: Format,
    /// ONNX: nodes, initializers and operator types.
    pub onnx: Option<onnx::Summary>,
    /// PyTorch: the classes the file defines.
    pub classes: Vec<String>,
    /// Where the weights came from: the file, or the seed.
    pub weights: Option<PathBuf>,
}

pub fn run(request: &Request, compiled_file: &mut dyn FnMut(&Compiled)) -> Result<Exported, Error> {
    let compiled = compile_file(&request.model, &request.compile)?;
    compiled_file(&compiled);
    let Some(model) = compiled.result.models.first() else {
        return Err(Error::HasErrors { path: request.model.clone(), purpose: Purpose::Export });
    };
    let (bytes, onnx, classes) = match request.format {
        Format::Onnx => {
            let weights = weights(request, model)?;
            let (proto, summary) = onnx::model_proto(model, &compiled.sources, &weights, request.opset, request.batch)?;
            let bytes = prost::Message::encode_to_vec(&proto);
            // Protobuf messages are limited to 2 GB; larger models need external data.
            if bytes.len() >= i32::MAX as usize {
                return Err(ExportError::TooLarge { bytes: bytes.len() as u64 }.into());
            }
            (bytes, Some(summary), Vec::new())
        }
        Format::Safetensors => {
            if request.weights.is_some() {
                return Err(ExportError::WeightsInCode.into());
            }
            fresh(model, request.seed).save(&request.out)?;
            let bytes = std::fs::metadata(&request.out).map(|m| m.len()).unwrap_or(0);
            return Ok(Exported {
                model: model.name.clone(),
                path: request.out.clone(),
                bytes,
                format: request.format,
                onnx: None,
                classes: Vec::new(),
                weights: None,
            });
        }
        Format::Pytorch => {
            if request.weights.is_some() {
                return Err(ExportError::WeightsInCode.into());
            }
            let module = pytorch::module(model, &compiled.sources)?;
            (module.text.into_bytes(), None, module.classes)
        }
    };
    crate::report::write_atomic(&request.out, &bytes)?;
    Ok(Exported {
        model: model.name.clone(),
        path: request.out.clone(),
        bytes: bytes.len() as u64,
        format: request.format,
        onnx,
        classes,
        weights: request.weights.clone(),
    })
}

/// The network's tensors: from `--weights` (checked to fit, name by name), or freshly
/// initialised from the seed.
fn weights(request: &Request, model: &crate::ir::Model) -> Result<StateDict, Error> {
    let network = fresh(model, request.seed);
    let Some(path) = &request.weights else { return Ok(network.state_dict()) };
    let dict = StateDict::read(path)?;
    dict.check_settings(path, &request.compile.set)?;
    let network = network.load_file(&dict, path, &model.name)?;
    // What the checkpoint says about its inputs and classes travels with the weights.
    let mut exported = network.state_dict();
    exported.metadata = dict.metadata;
    Ok(exported)
}

/// The network with PyTorch's initialisation, seeded.
fn fresh(model: &crate::ir::Model, seed: u64) -> Network<Flex> {
    let device = Default::default();
    Flex::seed(&device, seed);
    Network::<Flex>::new(model, &device)
}
