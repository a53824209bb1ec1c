//! Gradient flow: one forward and backward pass, and the norm of the gradient of every
//! weight layer's weights, first layer to last. In a deep plain network the first
//! layers' gradients are orders of magnitude smaller than the last's (vanishing
//! gradients); identity shortcuts carry the gradient back unchanged.

use super::{Probe, is_weight_layer, step_depths, sum_of_squares};
use crate::lower::{Layer, Network, Step};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// The gradient of one weight layer.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LayerGradient {
    /// 1 for the first weight layer.
    pub depth: usize,
    /// The IR path (`body.12.conv`).
    pub path: String,
    /// `conv`, `linear`, `attention`, ...
    pub what: String,
    /// Number of weights whose gradient is measured (biases excluded).
    pub weights: usize,
    /// L2 norm of the weights' gradient.
    pub grad_norm: f64,
    /// L2 norm of the weights themselves, for the relative size of an update.
    pub weight_norm: f64,
}

/// Runs `probe` through `network` (training mode), backpropagates the loss
/// (cross-entropy for a classifier with labels, else the output's mean) and measures
/// each weight layer's weight gradient. A layer shared by several steps is reported
/// once, at its first use.
pub fn gradient_norms<B: AutodiffBackend>(network: &Network<B>, probe: Probe<B>) -> Vec<LayerGradient> {
    let loss = network.forward(probe.input).probe_loss(probe.labels);
    let grads = loss.backward();
    let depths = step_depths(network);
    let mut seen = vec![false; network.layers.len()];
    let mut rows = Vec::new();
    for (i, step) in network.program.steps.iter().enumerate() {
        let Step::Layer { layer, .. } = step else { continue };
        if seen[*layer] || !is_weight_layer(&network.layers[*layer]) {
            continue;
        }
        seen[*layer] = true;
        let (mut grad, mut weight, mut count) = (0.0, 0.0, 0);
        let mut add = |g: f64, w: f64, n: usize| {
            grad += g;
            weight += w;
            count += n;
        };
        match &network.layers[*layer] {
            Layer::Conv(conv) | Layer::Patchify(conv) => {
                let (g, w, n) = measure(&conv.weight, &grads);
                add(g, w, n);
            }
            Layer::Linear(linear) => {
                let (g, w, n) = measure(&linear.weight, &grads);
                add(g, w, n);
            }
            Layer::Attention(attention) => {
                let (g, w, n) = measure(&attention.in_proj_weight, &grads);
                add(g, w, n);
                let (g, w, n) = measure(&attention.out_proj.weight, &grads);
                add(g, w, n);
            }
            _ => {}
        }
        let label = &network.program.labels[i];
        rows.push(LayerGradient {
            depth: depths[i],
            path: label.path.clone(),
            what: label.what.to_string(),
            weights: count,
            grad_norm: grad.sqrt(),
            weight_norm: weight.sqrt(),
        });
    }
    rows
}

/// (sum of squared gradients, sum of squared weights, count) of one parameter; a
/// parameter the loss does not reach has a zero gradient.
fn measure<B: AutodiffBackend, const D: usize>(param: &Param<Tensor<B, D>>, grads: &B::Gradients) -> (f64, f64, usize) {
    let value = param.val();
    let count = value.shape().num_elements();
    let grad = value.grad(grads).map(sum_of_squares).unwrap_or(0.0);
    (grad, sum_of_squares(value.inner()), count)
}
