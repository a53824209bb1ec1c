//! The labs' experiments on a network at initialisation: how gradients flow back
//! through depth (`gradients`) and how activations are scaled across it
//! (`activations`). Both run one batch, real or seeded random, through a freshly
//! initialised network in training mode (batch norm uses the batch's statistics, as
//! at the first step of training).

pub mod activations;
pub mod attention;
pub mod gradients;
pub mod job;

use crate::lower::{Layer, Network, Step, Value};
use burn::prelude::*;

/// One batch to run: the input and, for classifiers, a label per example.
pub struct Probe<B: Backend> {
    pub input: Value<B>,
    pub labels: Option<Tensor<B, 1, Int>>,
}

impl<B: Backend> Probe<B> {
    /// A standard-normal batch of the model's input shape, labelled round-robin over
    /// the classes. Seed the backend first for a reproducible batch.
    pub fn random(model: &crate::ir::Model, batch: usize, device: &B::Device) -> Probe<B> {
        let input = Value::random(&model.input, batch, device);
        Probe { input, labels: crate::tensor::cyclic_labels(&model.output, batch, device) }
    }
}

/// Layers that hold a weight matrix or kernel (convolutions, linear maps, attention):
/// the "depth" of a network counts these, as papers do.
pub fn is_weight_layer<B: Backend>(layer: &Layer<B>) -> bool {
    matches!(layer, Layer::Conv(_) | Layer::Patchify(_) | Layer::Linear(_) | Layer::Attention(_))
}

/// For each step of the program, how many weight layers have run up to and including
/// it: the depth at which the step's output is computed.
pub fn step_depths<B: Backend>(network: &Network<B>) -> Vec<usize> {
    let mut depth = 0;
    network
        .program
        .steps
        .iter()
        .map(|step| {
            if let Step::Layer { layer, .. } = step
                && is_weight_layer(&network.layers[*layer])
            {
                depth += 1;
            }
            depth
        })
        .collect()
}

/// The sum of squares of a tensor, in f64.
fn sum_of_squares<B: Backend, const D: usize>(t: Tensor<B, D>) -> f64 {
    t.powi_scalar(2).sum().into_scalar().elem::<f64>()
}
