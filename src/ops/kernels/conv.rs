//! 2-D convolution on burn-flex through `archc_kernels::conv`: the forward pass and
//! both gradients as GEMMs over unfolded images. Burn-flex's own convolution converts
//! to NHWC and back on every call and computes the input gradient as a direct
//! transposed convolution; the profile put those at a fifth of a training step.

use super::{Ad, Kind, Tail, cast, is_f32, kind, stand_in, take_gradient, tensor, values};
use archc_kernels::Epilogue;
use archc_kernels::conv::{self as kernel, Conv2d, Wanted};
use burn::backend::Flex;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{TensorMetadata, TensorPrimitive};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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

/// A convolution's weight in the form a kernel reads, kept from one call to the next by
/// a network whose weights do not change (`Network::for_inference`): the Winograd
/// form's transform of a 3×3 weight, four times the weight's size, which each call
/// would otherwise make again (a seventh of ResNet-18's inference at batch 32). Made
/// by the first call that takes the form, and made again for a weight that is another
/// tensor than the one it was made from.
#[derive(Default)]
pub struct Prepared {
    /// The weight the transform was made from (kept, so that its buffer is neither
    /// freed and reused nor written in place while it is here), and the transform.
    made: Mutex<Made>,
}

type Made = Option<(FlexTensor, Arc<kernel::WinogradWeight>)>;

impl Prepared {
    /// The transform of `weight` (contiguous f32), where `conv`'s forward pass takes the
    /// Winograd form.
    fn winograd_weight(&self, conv: &Conv2d, weight: &FlexTensor) -> Option<Arc<kernel::WinogradWeight>> {
        if !kernel::is_winograd(conv) {
            return None;
        }
        {
            let mut made = self.made();
            if let Some((kept, transformed)) = &*made {
                let (kept, now) = (values(kept), values(weight));
                if std::ptr::eq(kept, now) && transformed.fits(conv) {
                    return Some(Arc::clone(transformed));
                }
            }
            // Another weight's transform goes before this one is made: never both at once.
            *made = None;
        }
        // Made without the lock: the transform runs on rayon's pool, whose threads take
        // other tasks while they wait (another call of this convolution among them,
        // which would wait on the lock its own thread holds).
        let transformed = Arc::new(kernel::winograd_weight(conv, values(weight))?);
        *self.made() = Some((weight.clone(), Arc::clone(&transformed)));
        Some(transformed)
    }

    fn made(&self) -> MutexGuard<'_, Made> {
        self.made.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let made = self.made();
        f.debug_struct("Prepared").field("winograd", &made.as_ref().map(|(_, t)| t)).finish()
    }
}

/// `conv2d(x, weight, bias)` followed by `tail` on archc's kernels, or `None` when `B`
/// is neither burn-flex nor its autodiff, or the tensors are not f32 (the caller then
/// runs Burn's). With `prepared`, the weight's transforms are kept between calls.
pub fn conv2d<B: Backend>(
    x: &Tensor<B, 4>,
    weight: &Tensor<B, 4>,
    bias: Option<&Tensor<B, 1>>,
    settings: Settings,
    tail: Tail<B, 4>,
    prepared: Option<&Prepared>,
) -> Option<Tensor<B, 4>> {
    match kind::<B>()? {
        Kind::Flex => {
            let primitive = |t: Tensor<Flex, 4>| t.into_primitive().tensor();
            let (x, weight) = (primitive(cast(x.clone())), primitive(cast(weight.clone())));
            let bias = bias.map(|b| cast::<_, Tensor<Flex, 1>>(b.clone()).into_primitive().tensor());
            let residual = tail.residual.map(|r| primitive(cast(r.clone())));
            let (conv, y, _) = forward(&x, &weight, bias.as_ref(), settings, residual.as_ref(), tail.relu, prepared)?;
            Some(cast(Tensor::<Flex, 4>::from_primitive(TensorPrimitive::Float(output(&conv, y)))))
        }
        Kind::Autodiff => {
            let x = cast::<_, Tensor<Ad, 4>>(x.clone()).into_primitive().tensor();
            let weight = cast::<_, Tensor<Ad, 4>>(weight.clone()).into_primitive().tensor();
            let bias = bias.map(|b| cast::<_, Tensor<Ad, 1>>(b.clone()).into_primitive().tensor());
            let residual = tail.residual.map(|r| cast::<_, Tensor<Ad, 4>>(r.clone()).into_primitive().tensor());
            let (conv, y, (x_values, weight_values)) = forward(
                &x.primitive,
                &weight.primitive,
                bias.as_ref().map(|b| &b.primitive),
                settings,
                residual.as_ref().map(|r| &r.primitive),
                tail.relu,
                prepared,
            )?;
            let y = output(&conv, y);
            let absent = || stand_in(&Default::default()).node;
            let bias_node = bias.map_or_else(absent, |b| b.node);
            let residual_node = residual.map_or_else(absent, |r| r.node);
            let parents = [x.node.clone(), weight.node.clone(), bias_node, residual_node];
            let y = match ConvBackward.prepare::<NoCheckpointing>(parents).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    // Kept only for the ReLU's mask; shared, not copied.
                    let relu_output = tail.relu.then(|| y.clone());
                    prep.finish(Saved { conv, x: x_values, weight: weight_values, relu_output }, y)
                }
                OpsKind::UnTracked(prep) => prep.finish(y),
            };
            Some(cast(Tensor::<Ad, 4>::from_primitive(TensorPrimitive::Float(y))))
        }
    }
}

fn output(conv: &Conv2d, y: Vec<f32>) -> FlexTensor {
    let [out_h, out_w] = conv.output_size();
    tensor(y, &[conv.batch, conv.out_channels, out_h, out_w])
}

/// Runs the forward kernel and the tail: the sizes, the output, and the input and
/// weight made contiguous (kept for the backward pass); `None` for what it does not
/// handle.
fn forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: Option<&FlexTensor>,
    settings: Settings,
    residual: Option<&FlexTensor>,
    relu: bool,
    prepared: Option<&Prepared>,
) -> Option<(Conv2d, Vec<f32>, (FlexTensor, FlexTensor))> {
    if !(is_f32(x) && is_f32(weight) && bias.is_none_or(is_f32) && residual.is_none_or(is_f32)) {
        return None;
    }
    let conv = settings.geometry(x.shape().as_slice(), weight.shape().as_slice())?;
    if bias.is_some_and(|b| b.shape().as_slice() != [conv.out_channels]) {
        return None;
    }
    let [out_h, out_w] = conv.output_size();
    if residual.is_some_and(|r| r.shape().as_slice() != [conv.batch, conv.out_channels, out_h, out_w]) {
        return None;
    }
    let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
    let bias = bias.map(FlexTensor::to_contiguous);
    let residual = residual.map(FlexTensor::to_contiguous);
    let then = Epilogue { residual: residual.as_ref().map(values), relu };
    let transformed = prepared.and_then(|p| p.winograd_weight(&conv, &weight));
    let (x_values, weight_values, bias) = (values(&x), values(&weight), bias.as_ref().map(values));
    let y = kernel::forward_transformed(&conv, x_values, weight_values, transformed.as_deref(), bias, then);
    Some((conv, y, (x, weight)))
}

/// What the backward pass needs: the sizes, the input and the weight (shared with the
/// graph, not copied), a fused ReLU's output; the unfolded image is recomputed rather
/// than stored.
#[derive(Clone, Debug)]
struct Saved {
    conv: Conv2d,
    x: FlexTensor,
    weight: FlexTensor,
    relu_output: Option<FlexTensor>,
}

#[derive(Debug)]
struct ConvBackward;

impl Backward<Flex, 4> for ConvBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Saved, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_node, weight_node, bias_node, residual_node] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let Saved { conv, x, weight, relu_output } = ops.state;
        // Through the fused ReLU: the gradient of the convolution's output (plus residual).
        let dy = match relu_output {
            Some(y) => tensor(archc_kernels::relu_backward(values(&dy), values(&y)), dy.shape().as_slice()),
            None => dy,
        };
        let wanted = Wanted { input: x_node.is_some(), weight: weight_node.is_some(), bias: bias_node.is_some() };
        // x's gradient from its other uses so far (a residual's, registered by the later
        // layers' steps, which run first), added in the kernel's pass rather than by
        // autodiff's serial addition after it.
        let onto = x_node.as_ref().and_then(|node| take_gradient!(grads, node));
        let onto = match onto {
            Some(g) if is_f32(&g) && g.shape().as_slice() == x.shape().as_slice() => Some(g.to_contiguous()),
            Some(other) => {
                // Not what the kernel reads: back for autodiff to add.
                if let Some(node) = &x_node {
                    grads.register::<Flex>(node.id, other);
                }
                None
            }
            None => None,
        };
        let found = match &onto {
            Some(onto) => kernel::backward_onto(&conv, values(&x), values(&weight), values(&dy), wanted, values(onto)),
            None => kernel::backward(&conv, values(&x), values(&weight), values(&dy), wanted),
        };
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
        if let Some(node) = residual_node {
            grads.register::<Flex>(node.id, dy);
        }
    }
}
