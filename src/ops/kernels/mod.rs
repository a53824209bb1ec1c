//! Fused ops on burn-flex, the default CPU backend: archc's own kernels (the
//! `archc-kernels` crate, built optimised) wrapped as Burn ops with their backward
//! passes.
//!
//! Burn runs a convolution or a training batch norm as a chain of generic ops, each
//! walking strided memory and each recorded for autodiff; on burn-flex that chain was
//! most of a ResNet's training step (BENCHMARKS.md). These are backend extensions done
//! inside archc, and the shape of what we would propose upstream: a `batch_norm_train`
//! module op, and a convolution whose gradients are GEMMs rather than a transposed
//! convolution. Other backends keep Burn's ops. The switch is by type (`TypeId`), so no
//! new trait bound spreads through the lowering.

pub mod batch_norm;
pub mod conv;
pub mod pad;
pub mod pool;
pub mod sgd;

use burn::backend::flex::FlexTensor;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use std::any::{Any, TypeId};

/// What a fused chain does after its layer (conv or batch norm): add `residual` (same
/// shape as the layer's output), then ReLU. See `lower/fuse.rs` for the planner.
pub struct Tail<'a, B: Backend, const D: usize> {
    pub residual: Option<&'a Tensor<B, D>>,
    pub relu: bool,
}

impl<B: Backend, const D: usize> Tail<'_, B, D> {
    pub fn none() -> Self {
        Tail { residual: None, relu: false }
    }
}

/// An untracked tensor standing in for an absent optional input (a bias, a residual),
/// so that an op always has the same parents; it never receives a gradient.
fn stand_in(device: &burn::tensor::Device<Ad>) -> burn::tensor::ops::FloatTensor<Ad> {
    Tensor::<Ad, 1>::zeros([1], device).into_primitive().tensor()
}

/// Takes the gradient registered so far for a parent node, if any: registering a
/// tensor's gradient adds it to what is there, so a step that adds it itself takes it
/// first and registers the sum. `Gradients` looks tensors up by their node; the probe
/// carries only that node. (A macro: Burn does not export the node's type.)
macro_rules! take_gradient {
    ($grads:expr, $node:expr) => {{
        let mut probe = super::stand_in(&Default::default());
        probe.node = $node.clone();
        probe.rc = std::sync::Arc::new($node.id);
        $grads.remove::<burn::backend::Flex>(&probe)
    }};
}
use take_gradient;

/// The training backend the kernels serve.
type Ad = Autodiff<Flex>;

/// Which of the kernels' backends `B` is.
enum Kind {
    /// Inference: plain tensors.
    Flex,
    /// Training: tensors that record the graph.
    Autodiff,
}

fn kind<B: 'static>() -> Option<Kind> {
    if TypeId::of::<B>() == TypeId::of::<Flex>() {
        Some(Kind::Flex)
    } else if TypeId::of::<B>() == TypeId::of::<Ad>() {
        Some(Kind::Autodiff)
    } else {
        None
    }
}

/// Moves a value to a type that `TypeId` says is the same type.
fn cast<A: 'static, T: 'static>(value: A) -> T {
    let mut slot = Some(value);
    (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<T>>()
        .and_then(Option::take)
        .expect("cast only between identical types")
}

/// Whether the kernels can read the tensor (they are written for f32).
fn is_f32(t: &FlexTensor) -> bool {
    t.dtype() == DType::F32
}

/// A contiguous f32 tensor's values; callers check `is_f32` and make it contiguous.
fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("a contiguous f32 tensor")
}

fn tensor(values: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape.to_vec()))
}
