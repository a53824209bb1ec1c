//! 2-D convolution on burn-flex through `archc_kernels::conv`: the forward pass and
//! both gradients as GEMMs over unfolded images. Burn-flex's own convolution converts
//! to NHWC and back on every call and computes the input gradient as a direct
//! transposed convolution; the profile put those at a fifth of a training step.

use super::{Ad, Kind, cast, is_f32, kind, tensor, values};
use archc_kernels::conv::{self as kernel, Conv2d, Wanted};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};

/// A square-window convolution's settings, as `ConvModule` holds them.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
    pub groups: usize,
}

impl Settings {
    fn geometry(&self, x: &[usize], weight: &[usize]) -> Option<Conv2d> {
        let [batch, in_channels, height, width] = <[usize; 4]>::try_from(x).ok()?;
        let [out_channels, per_group, kh, kw] = <[usize; 4]>::try_from(weight).ok()?;
        let conv = Conv2d {
            batch,
            in_channels,
            height,
            width,
            out_channels,
            kernel: [kh, kw],
            stride: [self.stride; 2],
            padding: [self.padding; 2],
            dilation: [self.dilation; 2],
            groups: self.groups,
        };
        (conv.is_supported() && per_group * self.groups == in_channels).then_some(conv)
    }
}

/// `conv2d(x, weight, bias)` on archc's kernels, or `None` when `B` is neither burn-flex
/// nor its autodiff, or the tensors are not f32 (the caller then runs Burn's).
pub fn conv2d<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    settings: Settings,
) -> Option<Tensor<B, 4>> {
    match kind::<B>()? {
        Kind::Flex => {
            let primitive = |t: Tensor<Flex, 4>| t.into_primitive().tensor();
            let (x, weight) = (primitive(cast(x.clone())), primitive(cast(weight.clone())));
            let bias = bias.map(|b| cast::<_, Tensor<Flex, 1>>(b.clone()).into_primitive().tensor());
            let (conv, y, _) = forward(&x, &weight, bias.as_ref(), settings)?;
            let [out_h, out_w] = conv.output_size();
            let y = tensor(y, &[conv.batch, conv.out_channels, out_h, out_w]);
            Some(cast(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(y))))
        }
        Kind::Autodiff => {
            let x = cast::<_, Tensor<Ad, 4>>(x.clone()).into_primitive().tensor();
            let weight = cast::<_, Tensor<Ad, 4>>(weight.clone()).into_primitive().tensor();
            let bias = bias.map(|b| cast::<_, Tensor<Ad, 1>>(b.clone()).into_primitive().tensor());
            let (conv, y, (x_values, weight_values)) =
                forward(&x.primitive, &weight.primitive, bias.as_ref().map(|b| &b.primitive), settings)?;
            let [out_h, out_w] = conv.output_size();
            let y = tensor(y, &[conv.batch, conv.out_channels, out_h, out_w]);
            // Without a bias, an untracked stand-in: the op always has three parents.
            let bias_node = match bias {
                Some(bias) => bias.node,
                None => Tensor::<Ad, 1>::zeros([conv.out_channels], &Default::default()).into_primitive().tensor().node,
            };
            let parents = [x.node.clone(), weight.node.clone(), bias_node];
            let y = match ConvBackward.prepare::<NoCheckpointing>(parents).compute_bound().stateful() {
                OpsKind::Tracked(prep) => prep.finish(Saved { conv, x: x_values, weight: weight_values }, y),
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Some(cast(Tensor::<Ad, 4>::from_primitive(TensorPrimitive::Float(y))))
        }
    }
}

/// Runs the forward kernel: the sizes, the output, and the input and weight made
/// contiguous (kept for the backward pass); `None` for what it does not handle.
fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    settings: Settings,
) -> Option<(Conv2d, Vec<f32>, (FlexTensor, FlexTensor))> {
    if !(is_f32(x) && is_f32(weight) && bias.is_none_or(is_f32)) {
        return None;
    }
    let conv = settings.geometry(x.shape().as_slice(), weight.shape().as_slice())?;
    if bias.is_some_and(|b| b.shape().as_slice() != [conv.out_channels]) {
        return None;
    }
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let bias = bias.map(FlexTensor::to_contiguous);
    let y = kernel::forward(&conv, values(&x), values(&weight), bias.as_ref().map(values));
    Some((conv, y, (x, weight)))
}

/// What the backward pass needs: the sizes, the input and the weight (shared with the
/// graph, not copied); the unfolded image is recomputed rather than stored.
#[derive(Clone, Debug)]
struct Saved {
    conv: Conv2d,
    x: FlexTensor,
    weight: FlexTensor,
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 3> for ConvBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved { conv, x, weight } = ops.state;
        let wanted = Wanted { input: x_node.is_some(), weight: weight_node.is_some(), bias: bias_node.is_some() };
        let found = kernel::backward(&conv, values(&x), values(&weight), values(&dy), wanted);
        if let (Some(node), Some(dx)) = (x_node, found.input) {
            grads.register::<Flex>(node.id, tensor(dx, &[conv.batch, conv.in_channels, conv.height, conv.width]));
        }
        if let (Some(node), Some(dw)) = (weight_node, found.weight) {
            let shape = weight.shape();
            grads.register::<Flex>(node.id, tensor(dw, shape.as_slice()));
        }
        if let (Some(node), Some(db)) = (bias_node, found.bias) {
            grads.register::<Flex>(node.id, tensor(db, &[conv.out_channels]));
        }
    }
}
