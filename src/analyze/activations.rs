//! Activation statistics: the mean and standard deviation of every step's output,
//! first step to last. Without normalisation the scale of a deep network's
//! activations drifts with depth (towards zero or infinity); batch norm holds it.

use super::step_depths;
use crate::lower::{Network, Step, Value};
use crate::ops::Op;
use burn::prelude::*;

/// Statistics of one step's output over the whole batch.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StepStats {
    /// Weight layers run up to and including this step.
    pub depth: usize,
    pub path: String,
    /// The op: `conv`, `batchnorm`, `relu`, `add`, ...
    pub what: String,
    pub mean: f64,
    pub std: f64,
    /// Fraction of exact zeros (dead ReLU units show here).
    pub zeros: f64,
    /// A layer's own output (weight layer, normalisation, activation, residual add,
    /// gate or merge), not a pooling or reshaping step.
    #[serde(skip)]
    pub layer_output: bool,
}

/// Runs `input` through `network` and returns the statistics of every step's output.
/// The network runs as given: an autodiff network in training mode.
pub fn activation_stats<B: Backend>(network: &Network<B>, input: Value<B>) -> Vec<StepStats> {
    let depths = step_depths(network);
    let mut rows = Vec::new();
    network.forward_observed(input, &mut |i, value| {
        let (mean, std, zeros) = match value {
            Value::Image(t) => moments(t.clone().flatten::<1>(0, 3)),
            Value::Tokens(t) => moments(t.clone().flatten::<1>(0, 2)),
            Value::Vector(t) => moments(t.clone().flatten::<1>(0, 1)),
        };
        let label = &network.program.labels[i];
        let layer_output =
            !matches!(&network.program.steps[i], Step::Op { op, .. } if !matches!(op, Op::Activation(_)));
        rows.push(StepStats {
            depth: depths[i],
            path: label.path.clone(),
            what: label.what.to_string(),
            mean,
            std,
            zeros,
            layer_output,
        });
    });
    rows
}

/// Mean, population standard deviation and share of zeros, in f64.
fn moments<B: Backend>(values: Tensor<B, 1>) -> (f64, f64, f64) {
    let n = values.shape().num_elements().max(1) as f64;
    let mean = values.clone().mean().into_scalar().elem::<f64>();
    let var = (values.clone() - mean).powi_scalar(2).mean().into_scalar().elem::<f64>();
    let zeros = values.equal_elem(0.0).int().sum().into_scalar().elem::<f64>() / n;
    (mean, var.max(0.0).sqrt(), zeros)
}

/// One row per depth: the last layer output computed at that depth (the weight layer
/// with the normalisation, activation and residual add after it; pooling and
/// reshaping are not layers here), so that variants with and without batch norm line
/// up by depth.
pub fn per_depth(rows: &[StepStats]) -> Vec<&StepStats> {
    let mut picked: Vec<&StepStats> = Vec::new();
    for row in rows.iter().filter(|r| r.depth > 0 && r.layer_output) {
        match picked.last_mut() {
            Some(last) if last.depth == row.depth => *last = row,
            _ => picked.push(row),
        }
    }
    picked
}
