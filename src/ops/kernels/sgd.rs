//! The SGD step on burn-flex through `archc_kernels::sgd`: one pass per parameter that
//! updates the parameter and its velocity in place (a copy is made first only when
//! something else still shares the buffer). The optimiser that calls it is
//! `train::sgd`.

use super::{cast, values};
use archc_kernels::sgd::{self as kernel, Settings, Velocity};
use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{DType, TensorPrimitive};
use std::any::TypeId;

/// Whether the kernel can take these tensors: `B` is burn-flex (the optimiser steps on
/// the inner backend, not its autodiff) and every one of them is f32.
pub fn applies<'a, B: Backend, const D: usize>(tensors: impl IntoIterator<Item = &'a Tensor<B, D>>) -> bool {
    TypeId::of::<B>() == TypeId::of::<Flex>() && tensors.into_iter().all(|t| t.dtype() == DType::F32)
}

/// The parameter after one step, and its velocity when the settings have momentum
/// (`velocity` is the last step's, `None` on the first). Callers check `applies`.
pub fn step<B: Backend, const D: usize>(
    param: Tensor<B, D>,
    grad: Tensor<B, D>,
    velocity: Option<Tensor<B, D>>,
    settings: &Settings,
) -> (Tensor<B, D>, Option<Tensor<B, D>>) {
    let mut param = whole(flex(param));
    let grad = whole(flex(grad));
    let mut velocity = settings.momentum.map(|_| match velocity {
        Some(v) => (whole(flex(v)), true),
        None => (FlexTensor::empty(param.layout().shape().clone(), DType::F32), false),
    });
    kernel::step(
        param.storage_mut::<f32>(),
        values(&grad),
        velocity.as_mut().map(|(v, started)| Velocity { values: v.storage_mut::<f32>(), started: *started }),
        settings,
    );
    (burn_tensor(param), velocity.map(|(v, _)| burn_tensor(v)))
}

fn flex<B: Backend, const D: usize>(t: Tensor<B, D>) -> FlexTensor {
    cast::<_, Tensor<Flex, D>>(t).into_primitive().tensor()
}

fn burn_tensor<B: Backend, const D: usize>(t: FlexTensor) -> Tensor<B, D> {
    cast(Tensor::<Flex, D>::from_primitive(TensorPrimitive::Float(t)))
}

/// The tensor as one contiguous buffer of exactly its values, so that the whole storage
/// can be written in place; the original handle is dropped first, so a buffer nobody
/// else holds is not copied.
fn whole(t: FlexTensor) -> FlexTensor {
    let contiguous = t.to_contiguous();
    drop(t);
    contiguous
}
