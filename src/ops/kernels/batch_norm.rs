//! Batch norm's training pass as one autodiff op, with the residual add and ReLU that
//! follow it in a fused chain: forward and backward are the contiguous per-channel
//! loops of `archc_kernels::batch_norm`, the ReLU mask applied inside them.

use super::{Ad, Kind, Tail, cast, is_f32, kind, stand_in, tensor, values};
use archc_kernels::Epilogue;
use archc_kernels::batch_norm::{self as kernel, Planes, Statistics};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};

/// Training batch norm over `x` as [batch, channels, spatial], followed by `tail`: the
/// output, and the per-channel batch mean and biased variance (for the running
/// statistics, outside the autodiff graph). `None` when `B` is not `Autodiff<Flex>` or
/// the tensors are not f32: the caller then runs the generic version.
#[allow(clippy::type_complexity)]
pub fn train<B: Backend>(
    x: &Tensor<B, 3>,
    gamma: &Tensor<B, 1>,
    beta: &Tensor<B, 1>,
    eps: f64,
    tail: Tail<B, 3>,
) -> Option<(Tensor<B, 3>, Tensor<B, 1>, Tensor<B, 1>)> {
    if !matches!(kind::<B>(), Some(Kind::Autodiff)) {
        return None;
    }
    let (x, gamma, beta): (Tensor<Ad, 3>, Tensor<Ad, 1>, Tensor<Ad, 1>) =
        (cast(x.clone()), cast(gamma.clone()), cast(beta.clone()));
    let residual = tail.residual.map(|r| cast::<_, Tensor<Ad, 3>>(r.clone()).into_primitive().tensor());
    let device = x.device();
    let x = x.into_primitive().tensor();
    let gamma = gamma.into_primitive().tensor();
    let beta = beta.into_primitive().tensor();
    let all_f32 = [&x.primitive, &gamma.primitive, &beta.primitive].into_iter().all(is_f32);
    if !all_f32
        || residual.as_ref().is_some_and(|r| !is_f32(&r.primitive) || r.primitive.shape() != x.primitive.shape())
    {
        return None;
    }
    let input = x.primitive.to_contiguous();
    let [batch, channels, spatial] = input.shape().dims::<3>();
    let at = Planes { batch, channels, spatial };
    let stats = kernel::statistics(values(&input), at, eps);
    let gamma_values = gamma.primitive.to_contiguous();
    let residual_values = residual.as_ref().map(|r| r.primitive.to_contiguous());
    let then = Epilogue { residual: residual_values.as_ref().map(values), relu: tail.relu };
    let beta_values = beta.primitive.to_contiguous();
    let y = kernel::normalize(values(&input), at, &stats, values(&gamma_values), values(&beta_values), then);
    let y = tensor(y, &[batch, channels, spatial]);
    let per_channel = |v: &[f32]| Tensor::<Ad, 1>::from_data(TensorData::new(v.to_vec(), [channels]), &device);
    let (mean, var) = (per_channel(&stats.mean), per_channel(&stats.var));
    let residual_node = residual.map_or_else(|| stand_in(&device).node, |r| r.node);
    let parents = [x.node.clone(), gamma.node.clone(), beta.node.clone(), residual_node];
    let y = match BatchNormBackward.prepare::<NoCheckpointing>(parents).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            // The output is kept only for the ReLU's mask; it is shared, not copied.
            let relu_output = tail.relu.then(|| y.clone());
            prep.finish(Saved { x: input, gamma: gamma_values, at, stats, relu_output }, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(y),
    };
    let y = Tensor::<Ad, 3>::from_primitive(TensorPrimitive::Float(y));
    Some((cast(y), cast(mean), cast(var)))
}

/// What the backward pass needs: the input (shared, not copied), gamma, the statistics
/// and a fused ReLU's output; x̂ is recomputed rather than stored.
#[derive(Clone, Debug)]
struct Saved {
    x: FlexTensor,
    gamma: FlexTensor,
    at: Planes,
    stats: Statistics,
    relu_output: Option<FlexTensor>,
}

#[derive(Debug)]
struct BatchNormBackward;

impl Backward<Flex, 4> for BatchNormBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, gamma_node, beta_node, residual_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved { x, gamma, at, stats, relu_output } = ops.state;
        let wanted = kernel::Backward {
            input: x_node.is_some(),
            relu_output: relu_output.as_ref().map(values),
            before_relu: residual_node.is_some(),
        };
        let found = kernel::backward(values(&x), values(&dy), at, &stats, values(&gamma), wanted);
        let shape = [at.batch, at.channels, at.spatial];
        if let (Some(node), Some(dx)) = (x_node, found.input) {
            grads.register::<Flex>(node.id, tensor(dx, &shape));
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, tensor(found.gamma, &[at.channels]));
        }
        if let Some(node) = beta_node {
            grads.register::<Flex>(node.id, tensor(found.beta, &[at.channels]));
        }
        if let Some(node) = residual_node {
            // The residual's gradient is the add's: dy, through the ReLU's mask if any.
            let gradient = found.before_relu.map_or(dy, |dz| tensor(dz, &shape));
            grads.register::<Flex>(node.id, gradient);
        }
    }
}
