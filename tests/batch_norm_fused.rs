//! burn-flex runs training batch norm as one fused op (`src/ops/norm_kernel.rs`); every
//! other backend runs it as tensor ops. Both must give the same outputs, gradients and
//! running statistics, for images and for vectors, including a single-image batch.

use archc::elaborate::{Options, compile};
use archc::ir::Shape;
use archc::lower::weights::{RawTensor, StateDict};
use archc::lower::{Network, Value};
use archc::source::Sources;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::backend::AutodiffBackend;

/// A seeded pseudo-random sequence (no backend RNG, so both backends see the same data).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 1.5
        })
        .collect()
}

struct Outcome {
    output: Vec<f32>,
    grads: StateDict,
    input_grad: Vec<f32>,
    state: StateDict,
}

fn run<B: AutodiffBackend>(source: &str, batch: usize) -> Outcome {
    let mut sources = Sources::new();
    let result = compile(&mut sources, "bn.arch", source, &Options::default());
    assert!(!result.has_errors(), "{}", archc::diagnostics::render_plain(&sources, &result.diagnostics));
    let model = &result.models[0];
    let device = Default::default();
    let network = Network::<B>::new(model, &device);
    // Non-trivial affine parameters and running statistics.
    let mut dict = network.state_dict();
    for (i, (name, tensor)) in dict.tensors.iter_mut().enumerate() {
        let n = tensor.data.len();
        let mut data = values(n, 100 + i as u64);
        if name.ends_with("running_var") {
            data.iter_mut().for_each(|v| *v = v.abs() + 0.5);
        }
        *tensor = RawTensor { shape: tensor.shape.clone(), data };
    }
    let network = network.load_state_dict(&dict).unwrap();
    let (dims, input): (Vec<usize>, Value<B>) = match model.input {
        Shape::Image { c, h, w } => {
            let dims = vec![batch, c as usize, h as usize, w as usize];
            let data = TensorData::new(values(dims.iter().product(), 7), dims.clone());
            (dims, Value::Image(Tensor::<B, 4>::from_data(data, &device).require_grad()))
        }
        Shape::Vector { d } => {
            let dims = vec![batch, d as usize];
            let data = TensorData::new(values(dims.iter().product(), 7), dims.clone());
            (dims, Value::Vector(Tensor::<B, 2>::from_data(data, &device).require_grad()))
        }
        Shape::Tokens { .. } => unreachable!(),
    };
    let output = match network.forward(input.clone()) {
        Value::Image(t) => t.flatten::<1>(0, 3),
        Value::Vector(t) => t.flatten::<1>(0, 1),
        Value::Tokens(_) => unreachable!(),
    };
    // A loss that weighs every output differently, so each gradient term matters.
    let weights = Tensor::<B, 1>::from_data(TensorData::new(values(output.dims()[0], 3), [output.dims()[0]]), &device);
    let loss = (output.clone() * weights).sum();
    let gradients = loss.backward();
    let input_grad = match &input {
        Value::Image(t) => t.grad(&gradients).map(|g| g.flatten::<1>(0, 3)),
        Value::Vector(t) => t.grad(&gradients).map(|g| g.flatten::<1>(0, 1)),
        Value::Tokens(_) => unreachable!(),
    }
    .expect("the input requires a gradient");
    let as_vec = |t: Tensor<B::InnerBackend, 1>| t.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    assert_eq!(dims.iter().product::<usize>(), input_grad.dims()[0]);
    Outcome {
        output: as_vec(output.inner()),
        grads: network.gradients(&gradients),
        input_grad: as_vec(input_grad),
        state: network.state_dict(),
    }
}

fn close(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let scale = b.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= 1e-4 * scale, "{what}[{i}]: fused {x} vs tensor ops {y}");
    }
}

fn same(source: &str, batch: usize) {
    let fused = run::<Autodiff<Flex>>(source, batch);
    let reference = run::<Autodiff<NdArray>>(source, batch);
    close("output", &fused.output, &reference.output);
    close("input gradient", &fused.input_grad, &reference.input_grad);
    assert_eq!(fused.grads.tensors.len(), 2, "gradients for weight and bias");
    for (name, expected) in &reference.grads.tensors {
        close(&format!("gradient of {name}"), &fused.grads.tensors[name].data, &expected.data);
    }
    for (name, expected) in &reference.state.tensors {
        close(&format!("{name} after the step"), &fused.state.tensors[name].data, &expected.data);
    }
}

#[test]
fn images_match_the_tensor_op_version() {
    same("network bn_image { input image(3, 5, 7)\n bn: batchnorm }", 4);
}

#[test]
fn a_single_image_batch_matches() {
    same("network bn_one { input image(2, 3, 3)\n bn: batchnorm }", 1);
}

#[test]
fn vectors_match_the_tensor_op_version() {
    same("network bn_vector { input vector(6)\n bn: batchnorm }", 5);
}
