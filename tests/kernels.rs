//! burn-flex runs convolutions, pooling and training batch norm on archc's own kernels
//! (`kernels/`, wrapped in `src/ops/kernels/`); every other backend runs Burn's ops.
//!
//! - Through whole networks, burn-flex must give ndarray's outputs, gradients and
//!   running statistics: images and vectors, one image or several, every convolution
//!   setting (stride, padding, dilation, groups, no bias, 1×1), max and average
//!   pooling (padding, ceil mode, `count_include_pad`), with one thread and with more.
//! - The convolution kernel itself must match a direct, loop-by-loop convolution
//!   written here, on random sizes (proptest), forward and all three gradients.
//! - archc's SGD step must be Burn's, bit for bit, and read and write its checkpoints.

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
    run_as::<B>(source, batch, true)
}

/// `run`, with the fused chains (`forward`) or every step on its own (`forward_unfused`).
fn run_as<B: AutodiffBackend>(source: &str, batch: usize, fused: bool) -> Outcome {
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
    let output = if fused { network.forward(input.clone()) } else { network.forward_unfused(input.clone()) };
    let output = match output {
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
    // One thread and several (images shared among threads; GEMMs parallel inside one
    // image only for large ones: `one_large_image_runs_its_gemms_in_parallel`).
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| same_on_this_pool(source, batch));
    }
}

fn same_on_this_pool(source: &str, batch: usize) {
    let fused = run::<Autodiff<Flex>>(source, batch);
    let reference = run::<Autodiff<NdArray>>(source, batch);
    agree(&fused, &reference);
    // The fused chains against the same kernels run step by step.
    agree(&fused, &run_as::<Autodiff<Flex>>(source, batch, false));
}

fn agree(fused: &Outcome, reference: &Outcome) {
    close("output", &fused.output, &reference.output);
    close("input gradient", &fused.input_grad, &reference.input_grad);
    let names = |o: &Outcome| o.grads.tensors.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(fused), names(reference), "the same parameters have gradients");
    assert!(!fused.grads.tensors.is_empty());
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

#[test]
fn convolutions_match_burns() {
    for (layer, input, batch) in [
        ("conv(4, kernel: 3, padding: 1)", "image(3, 6, 5)", 4),
        ("conv(4, kernel: 3, stride: 2, padding: 1, bias: false)", "image(2, 7, 7)", 2),
        ("conv(6, kernel: 3, stride: 2, dilation: 2, padding: 2, groups: 2)", "image(4, 9, 8)", 3),
        ("conv(5, kernel: 1)", "image(3, 4, 4)", 2),
        ("conv(5, kernel: 1, stride: 2, bias: false)", "image(3, 5, 5)", 1),
        ("conv(3, kernel: 5, padding: 3)", "image(1, 3, 3)", 1),
        ("conv(2, kernel: 2, stride: 3)", "image(2, 8, 7)", 5),
        ("conv(4, kernel: 1, groups: 2)", "image(4, 3, 5)", 3),
        ("conv(2, kernel: 3)", "image(2, 4, 20)", 2),
        ("conv(3, kernel: 3, stride: 2, padding: 1)", "image(2, 3, 40)", 2),
    ] {
        same(&format!("network c {{ input {input}\n c: {layer} }}"), batch);
    }
}

#[test]
fn poolings_match_burns() {
    for (layer, input, batch) in [
        ("maxpool(kernel: 2)", "image(3, 6, 5)", 4),
        ("maxpool(kernel: 3, stride: 2, padding: 1)", "image(2, 7, 7)", 2),
        ("maxpool(kernel: 3, stride: 2, ceil_mode: true)", "image(2, 8, 8)", 3),
        ("avgpool(kernel: 2)", "image(3, 5, 5)", 2),
        // Windows that tile the input: whole rows of blocks, and rows with a column left.
        ("avgpool(kernel: 2)", "image(3, 6, 8)", 3),
        ("avgpool(kernel: 3)", "image(2, 9, 7)", 2),
        // Not a tiling: the last window is partial.
        ("avgpool(kernel: 2, ceil_mode: true)", "image(2, 5, 5)", 2),
        ("avgpool(kernel: 3, stride: 2, padding: 1)", "image(2, 7, 6)", 2),
        ("avgpool(kernel: 3, stride: 2, padding: 1, count_include_pad: false)", "image(2, 7, 6)", 1),
        ("avgpool(kernel: 3, stride: 2, ceil_mode: true, count_include_pad: false)", "image(1, 8, 8)", 2),
        ("avgpool(kernel: 2, stride: 1, padding: 1, ceil_mode: true)", "image(1, 4, 5)", 3),
        // 1×1 windows without padding: every stride-th pixel (the option-A shortcut's
        // subsampling), odd sizes, strides that leave rows and columns out at the end.
        ("maxpool(kernel: 1, stride: 2)", "image(3, 7, 6)", 2),
        ("avgpool(kernel: 1, stride: 3)", "image(2, 8, 7)", 3),
        ("maxpool(kernel: 1, stride: 2, ceil_mode: true)", "image(2, 5, 9)", 1),
    ] {
        // A convolution first, so the pooling's input gradient reaches a parameter too.
        same(&format!("network p {{ input {input}\n c: conv(3, kernel: 1)\n p: {layer} }}"), batch);
    }
}

/// Zero channels around an image's own, alone and after the option-A subsampling, and
/// as a basic block's shortcut (whose gradient the block's first convolution then adds
/// onto its own input gradient).
#[test]
fn channel_padding_matches_burns() {
    for (layer, input, batch) in [
        ("pad_channels(9)", "image(3, 5, 4)", 2),
        ("pad_channels(4)", "image(4, 3, 3)", 3),
        ("pad_shortcut(channels: 7, stride: 2)", "image(3, 7, 7)", 2),
        ("basic(8, stride: 2, shortcut: pad_shortcut)", "image(4, 8, 8)", 3),
    ] {
        same(&format!("network p {{ input {input}\n c: conv(4, kernel: 1)\n p: {layer} }}"), batch);
    }
}

/// Networks whose steps the planner fuses into chains (`lower/fuse.rs`), and some it
/// must not: each checked on burn-flex (fused kernels) against ndarray (Burn's ops, the
/// chains run step by step) and against burn-flex unfused, in training, and the folded
/// inference network against ndarray's.
const CHAINS: &[(&str, usize)] = &[
    // batchnorm → relu, and basic blocks: bn2 → add → relu with an identity shortcut and
    // with a projection (whose own batch norm must not take the same add).
    (
        "network res { input image(3, 8, 8)
            stem: conv(8, kernel: 3, padding: 1, bias: false)
            bn: batchnorm
                relu
            b1: basic(8)
            b2: basic(16, stride: 2)
            pool: global_avgpool
                flatten
            fc: linear(3) }",
        3,
    ),
    // conv → add (pre-activation blocks) and conv → relu (LeNet) while training.
    (
        "network pre { input image(2, 6, 6)\n c: conv(4, kernel: 3)\n relu\n b: preact_basic(4)\n b2: preact_basic(6, stride: 2) }",
        2,
    ),
    // A batch norm whose output two steps read (the ReLU and the shortcut): not fused;
    // the convolution after it is (conv → add → relu).
    (
        "network twice { input image(3, 5, 5)
            bn: batchnorm
            residual { relu\n c: conv(3, kernel: 1) }
            relu
            c2: conv(3, kernel: 3, padding: 1)
            bn2: batchnorm }",
        4,
    ),
    // x + x, a ReLU that is the network's output, vectors (batch norm 1-d: the chain
    // runs step by step).
    ("network xx { input image(2, 4, 4)\n c: conv(2, kernel: 1)\n residual(shortcut: identity) { }\n relu }", 2),
    (
        "network vec { input vector(5)\n fc: linear(6)\n bn: batchnorm\n relu\n out: linear(2)\n bn2: batchnorm\n relu }",
        4,
    ),
    ("network one { input image(2, 3, 3)\n c: conv(4, kernel: 3, padding: 1)\n bn: batchnorm\n relu }", 1),
];

#[test]
fn fused_chains_match_the_steps_they_replace() {
    for (source, batch) in CHAINS {
        same(source, *batch);
        inference_agrees(source, *batch);
    }
}

/// Eval-mode outputs of the folded and fused network: burn-flex against ndarray.
fn inference_agrees(source: &str, batch: usize) {
    fn infer<B: Backend>(source: &str, batch: usize) -> Vec<f32> {
        let mut sources = Sources::new();
        let result = compile(&mut sources, "chain.arch", source, &Options::default());
        assert!(!result.has_errors(), "{}", archc::diagnostics::render_plain(&sources, &result.diagnostics));
        let model = &result.models[0];
        let network = Network::<B>::new(model, &Default::default());
        let mut dict = network.state_dict();
        for (i, (name, tensor)) in dict.tensors.iter_mut().enumerate() {
            let mut data = values(tensor.data.len(), 300 + i as u64);
            if name.ends_with("running_var") {
                data.iter_mut().for_each(|v| *v = v.abs() + 0.5);
            }
            *tensor = RawTensor { shape: tensor.shape.clone(), data };
        }
        let network = network.load_state_dict(&dict).unwrap().for_inference();
        let input = match model.input {
            Shape::Image { c, h, w } => {
                let dims = [batch, c as usize, h as usize, w as usize];
                Value::Image(Tensor::<B, 4>::from_data(
                    TensorData::new(values(dims.iter().product(), 9), dims),
                    &Default::default(),
                ))
            }
            Shape::Vector { d } => {
                let dims = [batch, d as usize];
                Value::Vector(Tensor::<B, 2>::from_data(
                    TensorData::new(values(dims.iter().product(), 9), dims),
                    &Default::default(),
                ))
            }
            Shape::Tokens { .. } => unreachable!(),
        };
        let output = match network.forward(input) {
            Value::Image(t) => t.flatten::<1>(0, 3),
            Value::Vector(t) => t.flatten::<1>(0, 1),
            Value::Tokens(_) => unreachable!(),
        };
        output.into_data().convert::<f32>().to_vec::<f32>().unwrap()
    }
    close("inference output", &infer::<Flex>(source, batch), &infer::<NdArray>(source, batch));
}

#[test]
fn the_planner_fuses_every_resnet_block() {
    let source = std::fs::read_to_string("models/resnet20.arch").unwrap();
    let mut sources = Sources::new();
    let result = compile(&mut sources, "resnet20.arch", &source, &Options::default());
    let model = &result.models[0];
    let network = Network::<Autodiff<Flex>>::new(model, &Default::default());
    let chains = network.program.fused_chains();
    // Training: the stem's bn → relu, and in each of the nine blocks bn1 → relu and
    // bn2 → add → relu.
    assert_eq!(chains.len(), 19, "{chains:?}");
    assert_eq!(chains.iter().filter(|c| c.ends_with("batchnorm → add → relu")).count(), 9, "{chains:?}");
    assert!(chains.contains(&"layer2.0.bn2: batchnorm → add → relu".to_string()), "{chains:?}");
    // Inference: batch norms folded, so the same chains start at the convolutions.
    let folded = Network::<Flex>::new(model, &Default::default()).for_inference();
    let chains = folded.program.fused_chains();
    assert_eq!(chains.len(), 19, "{chains:?}");
    assert!(chains.iter().all(|c| c.contains(": conv → ")), "{chains:?}");
    assert!(chains.contains(&"layer3.2.conv2: conv → add → relu".to_string()), "{chains:?}");
}

/// A "same" 3×3 convolution of 128 channels without bias, on burn-flex, and its
/// output for an input of 8 images of 8×8, which takes the Winograd form.
fn winograd_layer(weight_seed: u64) -> archc::ops::conv::ConvModule<Flex> {
    let weight = TensorData::new(values(128 * 128 * 9, weight_seed), [128, 128, 3, 3]);
    archc::ops::conv::ConvModule {
        weight: burn::module::Param::from_tensor(Tensor::from_data(weight, &Default::default())),
        bias: None,
        stride: 1,
        padding: 1,
        dilation: 1,
        groups: 1,
        prepared: None,
    }
}

fn winograd_layer_input(seed: u64) -> Tensor<Flex, 4> {
    let geometry = Conv2d { height: 8, width: 8, ..square_conv(8, (128, 128), 0, (3, 1, 1)) };
    assert!(conv_kernel::is_winograd(&geometry), "the layer should take the Winograd form");
    Tensor::from_data(TensorData::new(values(8 * 128 * 8 * 8, seed), [8, 128, 8, 8]), &Default::default())
}

fn layer_output(conv: &archc::ops::conv::ConvModule<Flex>, x: &Tensor<Flex, 4>) -> Vec<f32> {
    conv.forward(x.clone()).into_data().to_vec::<f32>().unwrap()
}

/// The Winograd form's weight transform is made once for an inference network's
/// convolution and kept between calls: the second call reads the kept transform, and a
/// convolution given another weight tensor makes the new weight's (it never reads a
/// transform of a weight it no longer has).
#[test]
fn a_kept_weight_transform_follows_the_weight() {
    let x = winograd_layer_input(7);
    let (first, second) = (winograd_layer(1), winograd_layer(2));
    let (expected_first, expected_second) = (layer_output(&first, &x), layer_output(&second, &x));
    assert!(expected_first != expected_second);
    let mut kept = first.prepared();
    assert!(format!("{kept:?}").contains("winograd: None"), "{kept:?}");
    assert!(layer_output(&kept, &x) == expected_first, "first call");
    assert!(format!("{kept:?}").contains("Transformed(128 × 128 × 36)"), "made by the first call: {kept:?}");
    assert!(layer_output(&kept, &x) == expected_first, "second call, from the kept transform");
    kept.weight = second.weight.clone();
    assert!(layer_output(&kept, &x) == expected_second, "another weight: its own transform");
}

/// Calls of one kept convolution running at once on rayon's pool, as a caller mapping
/// a network over inputs in parallel makes them, from a fresh convolution each time (so
/// that they meet while the first makes the transform): each call gives the plain
/// convolution's output, and the transform is kept.
#[test]
fn calls_of_a_kept_convolution_can_run_at_once() {
    use rayon::prelude::*;
    let plain = winograd_layer(1);
    let inputs: Vec<Tensor<Flex, 4>> = (0..8).map(|seed| winograd_layer_input(10 + seed)).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    let expected: Vec<Vec<f32>> = pool.install(|| inputs.iter().map(|x| layer_output(&plain, x)).collect());
    for _ in 0..16 {
        let kept = plain.clone().prepared();
        let found: Vec<Vec<f32>> = pool.install(|| inputs.par_iter().map(|x| layer_output(&kept, x)).collect());
        assert!(found == expected, "calls at once gave other outputs");
        assert!(format!("{kept:?}").contains("Transformed(128 × 128 × 36)"), "{kept:?}");
    }
}

#[test]
fn a_conv_bn_relu_stack_matches_burns() {
    let source = "network r { input image(3, 8, 8)
        stem: conv(8, kernel: 3, padding: 1, bias: false)
        bn: batchnorm
        act: relu
        a: conv(8, kernel: 3, padding: 1)
        b: conv(8, kernel: 1, bias: false) }";
    same(source, 3);
}

// ---- The convolution kernel against a direct convolution ------------------------

mod direct {
    use archc_kernels::conv::Conv2d;

    /// Calls `f(x index, weight index, y index)` for every multiply of the convolution.
    fn each_tap(c: &Conv2d, mut f: impl FnMut(usize, usize, usize)) {
        let [oh_n, ow_n] = c.output_size();
        let (in_g, out_g) = (c.in_channels / c.groups, c.out_channels / c.groups);
        for b in 0..c.batch {
            for co in 0..c.out_channels {
                let g = co / out_g;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        for ci in 0..in_g {
                            for ki in 0..c.kernel[0] {
                                for kj in 0..c.kernel[1] {
                                    let ih = (oh * c.stride[0] + ki * c.dilation[0]) as isize - c.padding[0] as isize;
                                    let iw = (ow * c.stride[1] + kj * c.dilation[1]) as isize - c.padding[1] as isize;
                                    if ih < 0 || iw < 0 || ih as usize >= c.height || iw as usize >= c.width {
                                        continue;
                                    }
                                    let channel = g * in_g + ci;
                                    let xi = ((b * c.in_channels + channel) * c.height + ih as usize) * c.width
                                        + iw as usize;
                                    let wi = ((co * in_g + ci) * c.kernel[0] + ki) * c.kernel[1] + kj;
                                    let yi = ((b * c.out_channels + co) * oh_n + oh) * ow_n + ow;
                                    f(xi, wi, yi);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn forward(c: &Conv2d, x: &[f32], w: &[f32], bias: &[f32]) -> Vec<f32> {
        let [oh, ow] = c.output_size();
        let per_channel = oh * ow;
        let mut y: Vec<f32> = (0..c.output_len()).map(|i| bias[(i / per_channel) % c.out_channels]).collect();
        each_tap(c, |xi, wi, yi| y[yi] += x[xi] * w[wi]);
        y
    }

    /// dx alone for the output gradient `dy`.
    pub fn input_gradient(c: &Conv2d, w: &[f32], dy: &[f32]) -> Vec<f32> {
        let mut dx = vec![0f32; c.input_len()];
        each_tap(c, |xi, wi, yi| dx[xi] += w[wi] * dy[yi]);
        dx
    }

    /// (dx, dw, db) for the output gradient `dy`.
    pub fn backward(c: &Conv2d, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (mut dx, mut dw) = (vec![0f32; x.len()], vec![0f32; w.len()]);
        each_tap(c, |xi, wi, yi| {
            dx[xi] += w[wi] * dy[yi];
            dw[wi] += x[xi] * dy[yi];
        });
        let [oh, ow] = c.output_size();
        let mut db = vec![0f32; c.out_channels];
        for (i, g) in dy.iter().enumerate() {
            db[(i / (oh * ow)) % c.out_channels] += g;
        }
        (dx, dw, db)
    }
}

fn close_to(what: &str, actual: &[f32], expected: &[f32]) -> Result<(), TestCaseError> {
    close_within(what, actual, expected, 1e-4)
}

/// Every value within `tolerance` × the largest expected magnitude (at least 1).
fn close_within(what: &str, actual: &[f32], expected: &[f32], tolerance: f32) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len(), "{}: lengths", what);
    let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        prop_assert!((a - e).abs() <= tolerance * scale, "{}[{}]: kernel {} vs direct {}", what, i, a, e);
    }
    Ok(())
}

use archc_kernels::conv::{self as conv_kernel, Conv2d, Wanted};
use proptest::prelude::*;

fn geometry() -> impl Strategy<Value = Conv2d> {
    // Widths up to 40: outputs 16 and wider are unfolded in runs along rows, narrower
    // ones too; heights stay small so the direct convolution stays quick.
    (1usize..4, 1usize..4, 1usize..7, 1usize..3, 1usize..8, 1usize..40, (1usize..4, 1usize..4), (1usize..4, 1usize..4))
        .prop_flat_map(|(batch, in_g, out_g, groups, height, width, kernel, stride)| {
            ((0usize..3, 0usize..3), (1usize..3, 1usize..3)).prop_map(move |(padding, dilation)| Conv2d {
                batch,
                in_channels: in_g * groups,
                height,
                width,
                out_channels: out_g * groups,
                kernel: [kernel.0, kernel.1],
                stride: [stride.0, stride.1],
                padding: [padding.0, padding.1],
                dilation: [dilation.0, dilation.1],
                groups,
            })
        })
        .prop_filter("the window fits", Conv2d::is_supported)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_convolution_kernel_matches_a_direct_convolution(c in geometry(), threads in 1usize..4, seed in 0u64..1000) {
        let x = values(c.input_len(), seed);
        let w = values(c.weight_len(), seed + 1);
        let bias = values(c.out_channels, seed + 2);
        let dy = values(c.output_len(), seed + 3);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (y, without_bias, found) = pool.install(|| {
            let all = Wanted { input: true, weight: true, bias: true };
            (
                conv_kernel::forward(&c, &x, &w, Some(&bias)),
                conv_kernel::forward(&c, &x, &w, None),
                conv_kernel::backward(&c, &x, &w, &dy, all),
            )
        });
        close_to("output", &y, &direct::forward(&c, &x, &w, &bias))?;
        close_to("output without bias", &without_bias, &direct::forward(&c, &x, &w, &vec![0.0; c.out_channels]))?;
        let (dx, dw, db) = direct::backward(&c, &x, &w, &dy);
        close_to("input gradient", &found.input.unwrap(), &dx)?;
        close_to("weight gradient", &found.weight.unwrap(), &dw)?;
        close_to("bias gradient", &found.bias.unwrap(), &db)?;
        // The GEMM's weight gradient, which a CPU without AVX2 takes.
        let all = Wanted { input: true, weight: true, bias: true };
        let on_gemm = pool.install(|| conv_kernel::backward_on_gemm(&c, &x, &w, &dy, all));
        close_to("weight gradient on the GEMM", &on_gemm.weight.unwrap(), &dw)?;
        // AVX2's dot products, which a CPU without AVX-512 takes.
        let on_avx2 = pool.install(|| conv_kernel::backward_on_avx2(&c, &x, &w, &dy, all));
        close_to("weight gradient in AVX2", &on_avx2.weight.unwrap(), &dw)?;
        close_to("input gradient on the GEMM path", &on_gemm.input.unwrap(), &dx)?;
        // Only what is asked for.
        let only_weight = conv_kernel::backward(&c, &x, &w, &dy, Wanted { input: false, weight: true, bias: false });
        prop_assert!(only_weight.input.is_none() && only_weight.bias.is_none());
        close_to("weight gradient alone", &only_weight.weight.unwrap(), &dw)?;
    }
}

// ---- The fused batch norm → add → ReLU kernel against finite differences --------

/// The training batch norm → residual add → ReLU in f64, written out directly.
mod chain_reference {
    use archc_kernels::batch_norm::Planes;

    /// The pre-activations z = x̂·γ + β + r.
    pub fn pre(x: &[f64], gamma: &[f64], beta: &[f64], r: Option<&[f64]>, at: Planes, eps: f64) -> Vec<f64> {
        let (c, s) = (at.channels, at.spatial);
        let count = (at.batch * s) as f64;
        let mut z = vec![0f64; x.len()];
        for ch in 0..c {
            let index = |b: usize, i: usize| (b * c + ch) * s + i;
            let all = || (0..at.batch).flat_map(move |b| (0..s).map(move |i| index(b, i)));
            let mean = all().map(|j| x[j]).sum::<f64>() / count;
            let var = all().map(|j| (x[j] - mean).powi(2)).sum::<f64>() / count;
            for j in all() {
                z[j] = (x[j] - mean) / (var + eps).sqrt() * gamma[ch] + beta[ch] + r.map_or(0.0, |r| r[j]);
            }
        }
        z
    }

    pub fn output(z: &[f64], relu: bool) -> Vec<f64> {
        z.iter().map(|&v| if relu { v.max(0.0) } else { v }).collect()
    }

    /// Σ w·y: a loss whose gradient with respect to y is w.
    pub fn loss(w: &[f64], y: &[f64]) -> f64 {
        w.iter().zip(y).map(|(w, y)| w * y).sum()
    }
}

fn wide(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&v| v as f64).collect()
}

fn close_f64(what: &str, actual: &[f32], expected: &[f64], tolerance: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(actual.len(), expected.len(), "{}: lengths", what);
    let scale = expected.iter().fold(1f64, |m, v| m.max(v.abs()));
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        prop_assert!((a as f64 - e).abs() <= tolerance * scale, "{}[{}]: kernel {} vs reference {}", what, i, a, e);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Forward against the direct f64 version; every gradient (input, γ, β, residual)
    /// against central differences of Σ w·relu(bn(x) + r).
    #[test]
    fn the_fused_batch_norm_chain_matches_finite_differences(
        (batch, channels, spatial) in (1usize..4, 1usize..4, 1usize..12),
        residual in any::<bool>(),
        relu in any::<bool>(),
        threads in 1usize..3,
        seed in 0u64..1000,
    ) {
        use archc_kernels::Epilogue;
        use archc_kernels::batch_norm::{self as bn, Backward, Planes};
        let at = Planes { batch, channels, spatial };
        let n = batch * channels * spatial;
        prop_assume!(batch * spatial > 1);
        let (x, gamma, beta) = (values(n, seed), values(channels, seed + 1), values(channels, seed + 2));
        let r = residual.then(|| values(n, seed + 3));
        let w = values(n, seed + 4);
        let eps = 1e-5;
        let (xd, gd, bd, rd, wd) = (wide(&x), wide(&gamma), wide(&beta), r.as_deref().map(wide), wide(&w));
        let z = chain_reference::pre(&xd, &gd, &bd, rd.as_deref(), at, eps);
        // Finite differences are only valid away from ReLU's kink.
        prop_assume!(!relu || z.iter().all(|v| v.abs() > 1e-2));
        // f32 against f64: the input gradient's rounding grows as 1/σ², so a channel of
        // two nearly equal values (σ near 0) compares rounding, not the formula.
        let stats = archc_kernels::batch_norm::statistics(&x, at, eps);
        prop_assume!(stats.var.iter().all(|&v| v > 0.05));

        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (y, found) = pool.install(|| {
            let stats = bn::statistics(&x, at, eps);
            let y = bn::normalize(&x, at, &stats, &gamma, &beta, Epilogue { residual: r.as_deref(), relu });
            let wanted = Backward { input: true, relu_output: relu.then_some(&y[..]), before_relu: residual };
            let found = bn::backward(&x, &w, at, &stats, &gamma, wanted);
            (y.clone(), found)
        });
        close_f64("output", &y, &chain_reference::output(&z, relu), 1e-4)?;

        let h = 1e-4;
        let loss_at = |x: &[f64], g: &[f64], b: &[f64], r: Option<&[f64]>| {
            chain_reference::loss(&wd, &chain_reference::output(&chain_reference::pre(x, g, b, r, at, eps), relu))
        };
        let central = |f: &dyn Fn(f64) -> f64| (f(h) - f(-h)) / (2.0 * h);
        let nudged = |v: &[f64], j: usize, d: f64| {
            let mut v = v.to_vec();
            v[j] += d;
            v
        };
        let dx: Vec<f64> = (0..n).map(|j| central(&|d| loss_at(&nudged(&xd, j, d), &gd, &bd, rd.as_deref()))).collect();
        let dgamma: Vec<f64> =
            (0..channels).map(|j| central(&|d| loss_at(&xd, &nudged(&gd, j, d), &bd, rd.as_deref()))).collect();
        let dbeta: Vec<f64> =
            (0..channels).map(|j| central(&|d| loss_at(&xd, &gd, &nudged(&bd, j, d), rd.as_deref()))).collect();
        close_f64("input gradient", found.input.as_deref().unwrap(), &dx, 1e-3)?;
        close_f64("gamma gradient", &found.gamma, &dgamma, 1e-3)?;
        close_f64("beta gradient", &found.beta, &dbeta, 1e-3)?;
        if let Some(rd) = &rd {
            let dr: Vec<f64> = (0..n).map(|j| central(&|d| loss_at(&xd, &gd, &bd, Some(&nudged(rd, j, d))))).collect();
            // Without a ReLU the residual's gradient is the output gradient itself,
            // which the caller passes on (the kernel returns nothing).
            let found_dr = if relu { found.before_relu.clone().unwrap() } else { w.clone() };
            prop_assert!(relu == found.before_relu.is_some());
            close_f64("residual gradient", &found_dr, &dr, 1e-3)?;
        }
    }

    /// The convolution with its epilogue: relu(conv(x) + r) against the direct
    /// convolution, then the add and the ReLU.
    #[test]
    fn the_convolution_epilogue_matches_the_steps(c in geometry(), relu in any::<bool>(), threads in 1usize..3, seed in 0u64..1000) {
        use archc_kernels::Epilogue;
        let (x, w, bias, r) =
            (values(c.input_len(), seed), values(c.weight_len(), seed + 1), values(c.out_channels, seed + 2), values(c.output_len(), seed + 3));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let y = pool.install(|| conv_kernel::forward_then(&c, &x, &w, Some(&bias), Epilogue { residual: Some(&r), relu }));
        let expected: Vec<f32> = direct::forward(&c, &x, &w, &bias)
            .iter()
            .zip(&r)
            .map(|(y, r)| if relu { (y + r).max(0.0) } else { y + r })
            .collect();
        close_to("output with the epilogue", &y, &expected)?;
        let only_relu = conv_kernel::forward_then(&c, &x, &w, None, Epilogue { residual: None, relu: true });
        let expected: Vec<f32> = direct::forward(&c, &x, &w, &vec![0.0; c.out_channels]).iter().map(|y| y.max(0.0)).collect();
        close_to("output through ReLU", &only_relu, &expected)?;
    }
}

/// A square image and window without dilation or groups: `batch` images of
/// `(in, out)` channels, `size` × `size`, window `(kernel, stride, padding)`.
fn square_conv(
    batch: usize,
    (in_channels, out_channels): (usize, usize),
    size: usize,
    window: (usize, usize, usize),
) -> Conv2d {
    let (kernel, stride, padding) = window;
    Conv2d {
        batch,
        in_channels,
        height: size,
        width: size,
        out_channels,
        kernel: [kernel; 2],
        stride: [stride; 2],
        padding: [padding; 2],
        dilation: [1, 1],
        groups: 1,
    }
}

/// A convolution big enough that one image's GEMMs run on several threads (small ones
/// stay on one): forward and gradients against the direct convolution, on 3 threads.
#[test]
fn one_large_image_runs_its_gemms_in_parallel() {
    for (stride, padding, size) in [(1, 1, 24), (2, 1, 48)] {
        let c = square_conv(1, (32, 32), size, (3, stride, padding));
        let (x, w, bias, dy) =
            (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.out_channels, 3), values(c.output_len(), 4));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let all = Wanted { input: true, weight: true, bias: true };
        let (y, found) = pool
            .install(|| (conv_kernel::forward(&c, &x, &w, Some(&bias)), conv_kernel::backward(&c, &x, &w, &dy, all)));
        let (dx, dw, db) = direct::backward(&c, &x, &w, &dy);
        let check =
            |what: &str, a: &[f32], e: &[f32]| close_to(what, a, e).unwrap_or_else(|e| panic!("stride {stride}: {e}"));
        check("output", &y, &direct::forward(&c, &x, &w, &bias));
        check("input gradient", &found.input.unwrap(), &dx);
        check("weight gradient", &found.weight.unwrap(), &dw);
        check("bias gradient", &found.bias.unwrap(), &db);
    }
}

/// A convolution's forward pass as the kernel picks it (with bias, without, and with a
/// residual and ReLU after), and the same three by the image-by-image unfolding.
fn forwards_against_unfolding(c: &Conv2d, x: &[f32], w: &[f32], bias: &[f32]) -> ([Vec<f32>; 3], [Vec<f32>; 3]) {
    use archc_kernels::Epilogue;
    let residual = values(c.output_len(), 4);
    let then = Epilogue { residual: Some(&residual), relu: true };
    let none = Epilogue::default();
    let found = [
        conv_kernel::forward(c, x, w, Some(bias)),
        conv_kernel::forward(c, x, w, None),
        conv_kernel::forward_then(c, x, w, Some(bias), then),
    ];
    let expected = [
        conv_kernel::forward_unfolded(c, x, w, Some(bias), none),
        conv_kernel::forward_unfolded(c, x, w, None, none),
        conv_kernel::forward_unfolded(c, x, w, Some(bias), then),
    ];
    (found, expected)
}

/// Winograd's F(4×4, 3×3) form takes 3×3 stride-1 convolutions of 64 channels or more
/// over enough tiles, which the random sizes above never reach: outputs not a
/// multiple of 4 (the last tiles cut), padding 0, 1 and 2, a batch of one and ResNet-18's
/// 4×4 stage (few tiles: one task, its GEMMs in parallel), batches shared among threads
/// and one taken in several panels, with and without bias and epilogue, against the
/// unfolding GEMM path (itself checked against the direct convolution above), and one
/// case with its input gradient (a stride-1 convolution of dy, run forward through the
/// same form) against the direct convolution.
#[test]
fn winograd_convolutions_match_the_unfolding_ones() {
    let cases = [
        (1, (128, 128), (16, 32), 1, 2),
        (8, (128, 136), (7, 9), 1, 2),
        (11, (130, 128), (8, 12), 0, 3),
        (8, (128, 128), (5, 5), 2, 2),
        (16, (512, 512), (4, 4), 1, 2),
        (8, (128, 128), (16, 16), 1, 2),
        // 64 channels: only with enough tiles for every thread (here 288).
        (4, (64, 72), (32, 33), 1, 2),
        // On one thread: three panels, the last shorter, reusing the first's buffers.
        (40, (144, 128), (8, 8), 1, 1),
        // On one thread, two panels of 66 and 30 tiles: the shorter takes more channels to
        // a block, and its lines are longer than the first panel's.
        (16, (130, 128), (8, 12), 0, 1),
    ];
    for (batch, (cin, cout), (height, width), padding, threads) in cases {
        let c = Conv2d {
            batch,
            in_channels: cin,
            height,
            width,
            out_channels: cout,
            ..square_conv(1, (1, 1), 1, (3, 1, padding))
        };
        assert!(conv_kernel::is_winograd(&c), "{c:?} should take the F(4×4, 3×3) form");
        let (x, w, bias) = (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.out_channels, 3));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (found, expected) = pool.install(|| forwards_against_unfolding(&c, &x, &w, &bias));
        // With the weight's transform made beforehand (inference): the same values, bit
        // for bit, as the pass that transforms it panel by panel.
        let transformed = conv_kernel::winograd_weight(&c, &w).expect("a 3×3 stride-1 window");
        let residual = values(c.output_len(), 4);
        let then = archc_kernels::Epilogue { residual: Some(&residual), relu: true };
        let made_before =
            pool.install(|| conv_kernel::forward_transformed(&c, &x, &w, Some(&transformed), Some(&bias), then));
        assert!(made_before == found[2], "{c:?}: the transform made beforehand gives other outputs");
        // Both in f32 over the same sums, G's entries rounded: a few units of 1e-6 apart
        // (a transform's value off by 1e-4 of itself is off by more than 1e-5 here).
        for ((what, a), e) in
            ["output", "output without bias", "output with the epilogue"].iter().zip(&found).zip(&expected)
        {
            close_within(what, a, e, 1e-5).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        }
    }
    // A "same" convolution, whose input gradient is the same geometry run forward (so
    // also in the Winograd form): that gradient and the output against the direct
    // convolution.
    let c = Conv2d {
        batch: 4,
        in_channels: 128,
        height: 8,
        width: 16,
        out_channels: 128,
        ..square_conv(1, (1, 1), 1, (3, 1, 1))
    };
    assert!(conv_kernel::is_winograd(&c));
    let (x, w, bias, dy) =
        (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.out_channels, 3), values(c.output_len(), 5));
    let found = conv_kernel::backward(&c, &x, &w, &dy, Wanted { input: true, weight: false, bias: false });
    close_to("input gradient", &found.input.unwrap(), &direct::input_gradient(&c, &w, &dy)).unwrap();
    close_to("output", &conv_kernel::forward(&c, &x, &w, Some(&bias)), &direct::forward(&c, &x, &w, &bias)).unwrap();
}

/// Stride-1 convolutions of up to 64 channels run straight from a padded copy of each
/// image, 8 output channels × 48 positions to a register block, the positions running
/// along padded rows (so a vector crosses rows, and the lanes in padding columns are
/// dropped as they are stored): a ResNet's 32×32 and 8×8 (several images to a group)
/// layers, LeNet-5's 5×5 with padding at batch 1 and valid, channels not a multiple of
/// 8, a wide rectangular image with uneven padding and dilation, 5×5 windows over 64 and
/// 48 channels, one image whose channel blocks are split between threads, a dilation
/// that leaves a whole vector in a row's padding, window rows of one, a 5-wide window
/// with dilated rows, and stride 2 over the image's phases. Against the image-by-image unfolding with bias, without,
/// and with residual and ReLU; the plain output and all three gradients also against
/// the direct loops (the weight gradient from the padded images in register blocks of
/// 1, 2 and 4 vectors of output channels, one image's blocks split between threads).
/// Then a "same" layer's input gradient, which runs forward through the same form.
#[test]
fn direct_convolutions_match_the_unfolding_ones() {
    let same = |batch, (cin, cout), size| square_conv(batch, (cin, cout), size, (3, 1, 1));
    let rectangular = Conv2d {
        batch: 3,
        in_channels: 5,
        height: 9,
        width: 40,
        out_channels: 13,
        kernel: [3, 2],
        stride: [1, 1],
        padding: [2, 1],
        dilation: [2, 3],
        groups: 1,
    };
    for (c, threads) in [
        (same(3, (16, 16), 32), 2),
        (same(5, (64, 64), 8), 2),
        (square_conv(1, (1, 6), 28, (5, 1, 2)), 2),
        (square_conv(4, (6, 16), 14, (5, 1, 0)), 1),
        (same(7, (24, 20), 16), 3),
        (rectangular, 2),
        (square_conv(2, (8, 64), 12, (5, 1, 2)), 2),
        (square_conv(3, (32, 48), 9, (5, 1, 2)), 1),
        // One image, three channel blocks shared between two threads.
        (square_conv(1, (3, 24), 16, (3, 1, 1)), 2),
        // Rows of 31: each row its own two vectors (16 lanes, then 15), as 32 and 16 (above)
        // take theirs with every lane kept; and rows of 16 over 8 rows, two images to a
        // group of row vectors (the last group of one).
        (same(2, (8, 16), 31), 2),
        (Conv2d { height: 8, ..same(3, (8, 16), 16) }, 2),
        // Rows 36 long of which 20 are outputs: vector 8 (positions 128-143) lies
        // wholly in a row's padding.
        (Conv2d { kernel: [1, 3], padding: [0, 8], dilation: [1, 8], ..square_conv(2, (4, 10), 20, (1, 1, 0)) }, 2),
        // Window rows of one, and 5 wide with dilated rows (the weight gradient's blocks).
        (Conv2d { kernel: [1, 5], padding: [0, 2], ..square_conv(2, (6, 20), 10, (1, 1, 0)) }, 2),
        (Conv2d { kernel: [3, 5], padding: [2, 2], dilation: [2, 1], ..square_conv(3, (5, 16), 11, (1, 1, 0)) }, 3),
        // Stride 2 over the image's four phases: ResNet-20's two layers that halve, an
        // odd-sized rectangle (phases of unequal size), rows of 70 (the phase split 32
        // values at a time, then 6) without padding, a 5×5 window, and a dilation of 2
        // (every tap in the even phases; its input gradient folds).
        (square_conv(2, (16, 32), 32, (3, 2, 1)), 2),
        (square_conv(3, (32, 64), 16, (3, 2, 1)), 2),
        (Conv2d { height: 15, width: 13, ..square_conv(2, (5, 12), 0, (3, 2, 1)) }, 1),
        (Conv2d { height: 6, width: 70, ..square_conv(2, (3, 9), 0, (3, 2, 0)) }, 2),
        (square_conv(2, (4, 8), 17, (5, 2, 2)), 3),
        (Conv2d { dilation: [2, 2], ..square_conv(2, (6, 10), 12, (3, 2, 2)) }, 2),
        // Windows of 2 and 4 (phases with as many taps each), one image whose channel
        // blocks are split between threads, and a single row.
        (square_conv(3, (6, 5), 9, (2, 2, 0)), 2),
        (square_conv(2, (7, 9), 11, (4, 2, 1)), 2),
        (square_conv(1, (20, 18), 13, (3, 2, 1)), 2),
        (Conv2d { height: 1, ..square_conv(2, (3, 4), 9, (3, 2, 1)) }, 2),
    ] {
        if archc_kernels::kernel_width() != "avx512" {
            // The form needs AVX-512; elsewhere the others compute these (tested above).
            assert!(!conv_kernel::is_direct(&c));
            continue;
        }
        assert!(conv_kernel::is_direct(&c), "{c:?} should take the direct form");
        let (x, w, bias) = (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.out_channels, 3));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let (found, expected) = pool.install(|| forwards_against_unfolding(&c, &x, &w, &bias));
        for ((what, a), e) in ["with bias", "without bias", "with residual and ReLU"].iter().zip(&found).zip(&expected)
        {
            close_to(what, a, e).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        }
        close_to("against the direct loops", &found[0], &direct::forward(&c, &x, &w, &bias)).unwrap();
        // The gradients: the weight's from the same padded images (window widths 3 and
        // 5; the dilated one unfolds), against the direct loops.
        pool.install(|| all_gradients_match_the_direct_loops(&c, &x, &w, &values(c.output_len(), 5)));
    }
    let c = same(6, (32, 40), 16);
    let (x, w, dy) = (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.output_len(), 5));
    let found = conv_kernel::backward(&c, &x, &w, &dy, Wanted { input: true, weight: false, bias: false });
    close_to("input gradient", &found.input.unwrap(), &direct::input_gradient(&c, &w, &dy)).unwrap();
}

/// Batch norm's statistics, gathered plane by plane and merged, against two passes in
/// f64 over the same values: a channel whose mean is ten thousand times its spread (the
/// merge adds each plane's deviations from its own mean, not its sum less n times that
/// mean, whose rounding would grow with the mean), a constant one (variance 0, never
/// below), and an ordinary one; planes of 1024, 16 and 1 values.
#[test]
fn batch_norm_statistics_hold_for_large_means_and_constant_channels() {
    use archc_kernels::batch_norm::{self as bn, Planes};
    for (batch, spatial) in [(4, 1024), (16, 16), (64, 1)] {
        let at = Planes { batch, channels: 3, spatial };
        let noise = values(batch * 3 * spatial, 7);
        let x: Vec<f32> = noise
            .iter()
            .enumerate()
            .map(|(i, &v)| match (i / spatial) % 3 {
                // Planes whose means differ by about the spread, 10⁴ away from 0.
                0 => 10_000.0 + (i / spatial / 3) as f32 + v,
                1 => 0.1,
                _ => v,
            })
            .collect();
        let stats = bn::statistics(&x, at, 1e-5);
        for ch in 0..3 {
            let channel: Vec<f64> =
                (0..batch).flat_map(|b| x[(b * 3 + ch) * spatial..][..spatial].iter().map(|&v| v as f64)).collect();
            let mean = channel.iter().sum::<f64>() / channel.len() as f64;
            let var = channel.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / channel.len() as f64;
            let what = format!("channel {ch} over {batch} planes of {spatial}");
            assert!(
                (stats.mean[ch] as f64 - mean).abs() <= 1e-6 * mean.abs().max(1.0),
                "{what}: mean {} vs {mean}",
                stats.mean[ch]
            );
            assert!(stats.var[ch] >= 0.0, "{what}: variance {} below 0", stats.var[ch]);
            assert!(
                (stats.var[ch] as f64 - var).abs() <= 1e-5 * var + 1e-12,
                "{what}: variance {} vs {var}",
                stats.var[ch]
            );
        }
    }
}

/// The input gradient added onto a given one (x's gradient from its other uses) in the
/// pass that writes it, in each form the input gradient takes: as a convolution run
/// forward (the direct form, Winograd's, the unfolding) with the addition as its
/// epilogue (the direct form's alongside the weight gradient where an image fills a
/// group); by the direct form's stride-2 phases (on AVX-512; one image's channel
/// blocks split between threads too); folded (a valid window, a dilated stride 2) or by
/// a 1×1 GEMM starting from it.
#[test]
fn the_input_gradient_adds_onto_the_one_given() {
    let all = Wanted { input: true, weight: true, bias: true };
    for c in [
        square_conv(3, (16, 16), 12, (3, 1, 1)),
        // Alongside the weight gradient, image by image (one image's blocks split too).
        square_conv(2, (16, 24), 16, (3, 1, 1)),
        square_conv(1, (20, 16), 16, (3, 1, 1)),
        square_conv(2, (64, 64), 16, (3, 1, 1)),
        square_conv(2, (80, 72), 9, (3, 1, 1)),
        square_conv(3, (16, 32), 16, (3, 2, 1)),
        square_conv(1, (12, 24), 10, (3, 2, 1)),
        square_conv(2, (5, 7), 10, (3, 1, 0)),
        Conv2d { dilation: [2, 2], ..square_conv(2, (6, 10), 12, (3, 2, 2)) },
        square_conv(2, (6, 9), 7, (1, 1, 0)),
    ] {
        let (x, w, dy, onto) =
            (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.output_len(), 3), values(c.input_len(), 4));
        let plain = conv_kernel::backward(&c, &x, &w, &dy, all);
        let added = conv_kernel::backward_onto(&c, &x, &w, &dy, all, &onto);
        let expected: Vec<f32> = plain.input.unwrap().iter().zip(&onto).map(|(a, b)| a + b).collect();
        close_to("input gradient plus the one given", &added.input.unwrap(), &expected)
            .unwrap_or_else(|e| panic!("{c:?}: {e}"));
        assert_eq!(added.weight, plain.weight, "{c:?}: the weight gradient is the same");
        assert_eq!(added.bias, plain.bias, "{c:?}: the bias gradient is the same");
    }
}

/// Convolutions with few output positions per image run several images side by side in
/// one GEMM: a ResNet's stride-2 3×3 and 1×1 layers into 4×4, and a valid 5×5 one into
/// 8×8 (the 3×3 and 5×5 with 72 channels: with 64 or fewer they take the direct form); a last GEMM with fewer images, bias, residual and ReLU. Against the image-by-image
/// unfolding, and the plain output against the direct convolution.
#[test]
fn side_by_side_convolutions_match_the_image_by_image_ones() {
    for (batch, (cin, cout), size, (kernel, stride, padding), threads) in
        [(5, (6, 72), 8, (3, 2, 1), 2), (9, (8, 12), 8, (1, 2, 0), 1), (2, (3, 72), 12, (5, 1, 0), 1)]
    {
        let c = square_conv(batch, (cin, cout), size, (kernel, stride, padding));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        assert!(pool.install(|| conv_kernel::is_side_by_side(&c)), "{c:?} should run side by side");
        let (x, w, bias) = (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.out_channels, 3));
        let (found, expected) = pool.install(|| forwards_against_unfolding(&c, &x, &w, &bias));
        for ((what, a), e) in ["with bias", "without bias", "with residual and ReLU"].iter().zip(&found).zip(&expected)
        {
            close_to(what, a, e).unwrap_or_else(|e| panic!("{c:?}: {e}"));
        }
        close_to("against the direct loops", &found[0], &direct::forward(&c, &x, &w, &bias)).unwrap();
    }
}

/// A folded input gradient over few output positions (under 48) and long patches (256
/// values or more) is computed transposed (dcolᵀ = dyᵀ·W) and transposed back for the
/// fold: a stride-2 layer into 4×4 (ResNet-18's shape, fewer channels), a stride-1 one
/// at batch 1 (whose input gradient is folded rather than run as a convolution: too
/// few positions for the flipped weight to pay), grouped, and a 5×6 output on three
/// threads; all gradients against the direct loops.
#[test]
fn input_gradients_over_few_positions_match() {
    let grouped = Conv2d { groups: 2, ..square_conv(3, (64, 96), 8, (3, 2, 1)) };
    let uneven = Conv2d { width: 11, ..square_conv(2, (40, 24), 9, (3, 2, 1)) };
    for (c, threads) in [
        (square_conv(2, (32, 40), 8, (3, 2, 1)), 2),
        (square_conv(1, (64, 64), 4, (3, 1, 1)), 2),
        (grouped, 1),
        (uneven, 3),
    ] {
        let [out_h, out_w] = c.output_size();
        assert!(
            out_h * out_w < 48 && c.in_channels / c.groups * 9 >= 256,
            "{c:?} is not a case of the transposed path"
        );
        let (x, w, dy) = (values(c.input_len(), 1), values(c.weight_len(), 2), values(c.output_len(), 3));
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| all_gradients_match_the_direct_loops(&c, &x, &w, &dy));
    }
}

/// The kernel's input, weight and bias gradients (on the current pool) against the
/// direct loops'.
fn all_gradients_match_the_direct_loops(c: &Conv2d, x: &[f32], w: &[f32], dy: &[f32]) {
    let all = Wanted { input: true, weight: true, bias: true };
    let found = conv_kernel::backward(c, x, w, dy, all);
    let (dx, dw, db) = direct::backward(c, x, w, dy);
    close_to("input gradient", &found.input.unwrap(), &dx).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    close_to("weight gradient", &found.weight.unwrap(), &dw).unwrap_or_else(|e| panic!("{c:?}: {e}"));
    close_to("bias gradient", &found.bias.unwrap(), &db).unwrap_or_else(|e| panic!("{c:?}: {e}"));
}

/// The weight gradient's dot-product kernels (AVX-512 and AVX2) run only over 256
/// positions or more, which the random sizes above seldom reach: a 20×20 "same" and a
/// valid 5×5 convolution, images shared among one and two threads.
#[test]
fn the_dot_product_kernels_match_on_long_rows() {
    for (kernel, padding, size) in [(3, 1, 20), (5, 0, 22)] {
        let c = square_conv(3, (5, 7), size, (kernel, 1, padding));
        assert!(c.output_size()[0] * c.output_size()[1] >= 256);
        let (x, w, dy) = (values(c.input_len(), 5), values(c.weight_len(), 6), values(c.output_len(), 7));
        let (_, dw, _) = direct::backward(&c, &x, &w, &dy);
        let all = Wanted { input: true, weight: true, bias: true };
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let check = |what: &str, a: &[f32]| {
                close_to(what, a, &dw).unwrap_or_else(|e| panic!("kernel {kernel}, {threads} threads: {e}"))
            };
            check("weight gradient", &pool.install(|| conv_kernel::backward(&c, &x, &w, &dy, all)).weight.unwrap());
            check(
                "weight gradient in AVX2",
                &pool.install(|| conv_kernel::backward_on_avx2(&c, &x, &w, &dy, all)).weight.unwrap(),
            );
        }
    }
}

/// archc's SGD (one fused pass on burn-flex, Burn's op chain elsewhere) against Burn's
/// `Sgd`, stepped side by side over the same gradients and learning rates: the same
/// parameters bit for bit after every step, and a second handle on the parameter left
/// as it was (the fused step writes in place only into a buffer nobody else holds).
fn sgd_steps_as_burns<B: Backend>(momentum: f64, dampening: f64, nesterov: bool, decay: f64) {
    use burn::optim::SimpleOptimizer;
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    let burns =
        burn::optim::SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| {
                MomentumConfig::new().with_momentum(momentum).with_dampening(dampening).with_nesterov(nesterov)
            }))
            .with_weight_decay((decay > 0.0).then(|| WeightDecayConfig::new(decay as f32)))
            .build::<B>();
    let ours = archc::train::sgd::Sgd::pytorch(momentum, dampening, nesterov, decay);
    let device = Default::default();
    // 37 000 values: two whole parallel chunks of 16 K and a ragged one.
    let shape = [37, 1000];
    let tensor = |seed| Tensor::<B, 2>::from_data(TensorData::new(values(37_000, seed), shape), &device);
    let start = tensor(1);
    let (mut burn_param, mut burn_state) = (start.clone(), None);
    let (mut our_param, mut our_state) = (start.clone(), None);
    let settings = format!("momentum {momentum}, dampening {dampening}, nesterov {nesterov}, decay {decay}");
    for step in 0..4u64 {
        let grad = tensor(10 + step);
        let lr = 0.05 * (step + 1) as f64;
        // A second handle on every other step: the fused step must copy then, and may
        // write in place otherwise.
        let kept = (step % 2 == 0).then(|| our_param.clone());
        let kept_values = kept.as_ref().map(|k| k.to_data().to_vec::<f32>().unwrap());
        (burn_param, burn_state) = SimpleOptimizer::<B>::step(&burns, lr, burn_param, grad.clone(), burn_state);
        (our_param, our_state) = SimpleOptimizer::<B>::step(&ours, lr, our_param, grad, our_state);
        if let (Some(kept), Some(values)) = (kept, kept_values) {
            assert_eq!(kept.to_data().to_vec::<f32>().unwrap(), values, "{settings}: a shared parameter was written");
        }
        let (a, b) = (our_param.to_data().to_vec::<f32>().unwrap(), burn_param.to_data().to_vec::<f32>().unwrap());
        let differing = a.iter().zip(&b).filter(|(x, y)| x.to_bits() != y.to_bits()).count();
        assert_eq!(differing, 0, "{settings}, step {step}: {differing} of {} values differ from Burn's", a.len());
        assert_eq!(our_state.as_ref().unwrap().momentum.is_some(), momentum > 0.0, "{settings}");
    }
}

const SGD_SETTINGS: [(f64, f64, bool, f64); 5] = [
    (0.9, 0.0, false, 0.0),
    (0.9, 0.0, true, 5e-4),
    (0.8, 0.3, false, 1e-2),
    (0.0, 0.0, false, 1e-3),
    (0.0, 0.0, false, 0.0),
];

#[test]
fn the_fused_sgd_step_is_burns_bit_for_bit() {
    for (momentum, dampening, nesterov, decay) in SGD_SETTINGS {
        sgd_steps_as_burns::<Flex>(momentum, dampening, nesterov, decay);
    }
}

#[test]
fn sgd_on_other_backends_is_burns_bit_for_bit() {
    for (momentum, dampening, nesterov, decay) in SGD_SETTINGS {
        sgd_steps_as_burns::<NdArray>(momentum, dampening, nesterov, decay);
    }
}

/// A run checkpointed by Burn's optimiser (archc before its own SGD) resumes with
/// archc's, and the other way round: the optimiser record is read back from its bytes
/// and the next step is the same as the writer's own.
#[test]
fn sgd_checkpoints_cross_between_burns_optimiser_and_archcs() {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{GradientsParams, Optimizer, SgdConfig};
    use burn::record::{FullPrecisionSettings, NamedMpkBytesRecorder, Recorder};
    type Ad = Autodiff<Flex>;
    let device = Default::default();
    let recorder = NamedMpkBytesRecorder::<FullPrecisionSettings>::new();
    let grads = |model: &Linear<Ad>, seed| {
        let x = Tensor::<Ad, 2>::from_data(TensorData::new(values(8 * 40, seed), [8, 40]), &device);
        GradientsParams::from_grads(model.forward(x).powf_scalar(2.0).sum().backward(), model)
    };
    let weights = |model: &Linear<Ad>| model.weight.val().to_data().to_vec::<f32>().unwrap();
    let start: Linear<Ad> = LinearConfig::new(40, 30).init(&device);
    let burns = || {
        SgdConfig::new()
            .with_momentum(Some(MomentumConfig::new().with_momentum(0.9).with_dampening(0.0)))
            .init::<Ad, Linear<Ad>>()
    };
    let ours = || archc::train::sgd::Sgd::pytorch(0.9, 0.0, false, 0.0).init::<Ad, Linear<Ad>>();

    // Burn's record into archc's optimiser.
    let mut writer = burns();
    let model = writer.step(0.1, start.clone(), grads(&start, 1));
    let bytes = recorder.record(writer.to_record(), ()).unwrap();
    let mut reader = ours().load_record(recorder.load(bytes, &device).unwrap());
    let expected = weights(&writer.step(0.1, model.clone(), grads(&model, 2)));
    assert_eq!(weights(&reader.step(0.1, model.clone(), grads(&model, 2))), expected);

    // archc's record into Burn's optimiser.
    let mut writer = ours();
    let model = writer.step(0.1, start.clone(), grads(&start, 3));
    let bytes = recorder.record(writer.to_record(), ()).unwrap();
    let mut reader = burns().load_record(recorder.load(bytes, &device).unwrap());
    let expected = weights(&writer.step(0.1, model.clone(), grads(&model, 4)));
    assert_eq!(weights(&reader.step(0.1, model.clone(), grads(&model, 4))), expected);
}

/// Marks the child processes below, whatever `ARCHC_KERNEL_WIDTH` the caller has set.
const CHILD: &str = "ARCHC_KERNELS_TEST_CHILD";

/// Every test of this file again in each narrower width that this CPU can stand in for
/// (`ARCHC_KERNEL_WIDTH`, this binary run again as a child process): the AVX2 and
/// baseline builds of archc's multiversioned loops (batch norm, Winograd's transforms
/// with their scalar row split, ReLU's gradient, SGD), the AVX2 dot products, and the
/// other forms wherever the direct one needs AVX-512 (the `gemm` crate's own
/// microkernels keep the CPU's width). On an AVX-512 machine they would otherwise never
/// run. Each child must pass every other test of the file.
#[test]
fn every_kernel_matches_in_the_narrower_widths() {
    if std::env::var_os(CHILD).is_some() {
        return;
    }
    let narrower: &[&str] = match archc_kernels::kernel_width() {
        "avx512" => &["avx2", "baseline"],
        "avx2" => &["baseline"],
        _ => &[],
    };
    let this = std::env::current_exe().unwrap();
    let skip = ["--skip", "every_kernel_matches_in_the_narrower_widths"];
    let listed = std::process::Command::new(&this).args(["--list"]).args(skip).env(CHILD, "1").output().unwrap();
    let others = String::from_utf8_lossy(&listed.stdout).lines().filter(|l| l.ends_with(": test")).count();
    assert!(others >= 20, "the file's other tests: {others}");
    for width in narrower {
        let child = std::process::Command::new(&this)
            .env(CHILD, "1")
            .env("ARCHC_KERNEL_WIDTH", width)
            .args(skip)
            .output()
            .unwrap();
        let (out, err) = (String::from_utf8_lossy(&child.stdout), String::from_utf8_lossy(&child.stderr));
        assert!(child.status.success(), "the kernels in {width}:\n{out}{err}");
        let passed: usize = out
            .lines()
            .find_map(|line| line.strip_prefix("test result: ok. "))
            .and_then(|rest| rest.split(' ').next()?.parse().ok())
            .unwrap_or(0);
        assert_eq!(passed, others, "the kernels in {width}: {passed} of {others} tests passed\n{out}");
    }
}

/// In the child processes above, the kernels run in the width asked for.
#[test]
fn the_width_asked_for_is_the_one_the_kernels_use() {
    if std::env::var_os(CHILD).is_some() {
        let asked = std::env::var("ARCHC_KERNEL_WIDTH").unwrap();
        assert_eq!(archc_kernels::kernel_width(), asked, "ARCHC_KERNEL_WIDTH={asked}");
    }
}
