//! Hand-computed checks of single ops through the whole path (text → IR → Burn), on
//! burn-ndarray: padding and stride arithmetic, count_include_pad, LayerNorm epsilon,
//! exact vs tanh GELU, attention scaling by 1/√d, sinusoidal positions.

use archc::elaborate::{Options, compile};
use archc::lower::weights::RawTensor;
use archc::lower::{Network, Value};
use archc::source::Sources;
use burn::backend::NdArray;
use burn::prelude::*;
use burn::tensor::TensorData;

type B = NdArray;

fn network(source: &str, weights: &[(&str, Vec<usize>, Vec<f32>)]) -> Network<B> {
    let mut sources = Sources::new();
    let result = compile(&mut sources, "op.arch", source, &Options::default());
    let rendered = archc::diagnostics::render_plain(&sources, &result.diagnostics);
    assert!(!result.has_errors(), "{rendered}");
    let model = &result.models[0];
    let net = Network::<B>::new(model, &Default::default());
    if weights.is_empty() {
        return net;
    }
    let mut dict = net.state_dict();
    for (name, shape, data) in weights {
        dict.tensors.insert(name.to_string(), RawTensor { shape: shape.clone(), data: data.clone() });
    }
    net.load_state_dict(&dict).unwrap()
}

fn run<const D: usize>(net: &Network<B>, shape: [usize; D], data: Vec<f32>) -> Vec<f32> {
    let x = Tensor::<B, D>::from_data(TensorData::new(data, shape), &Default::default());
    let input = match D {
        4 => Value::Image(x.reshape([shape[0], shape[1], shape[2], shape[3]])),
        3 => Value::Tokens(x.reshape([shape[0], shape[1], shape[2]])),
        _ => Value::Vector(x.reshape([shape[0], shape[1]])),
    };
    let out = match net.forward(input) {
        Value::Image(t) => t.into_data(),
        Value::Tokens(t) => t.into_data(),
        Value::Vector(t) => t.into_data(),
    };
    out.convert::<f32>().to_vec().unwrap()
}

fn close(actual: &[f32], expected: &[f32]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        assert!((a - e).abs() < 1e-5, "{actual:?} != {expected:?}");
    }
}

#[test]
fn conv_padding_and_stride() {
    // 4×4 input 0..15, a 3×3 all-ones kernel, stride 2, padding 1: output 2×2 of window sums.
    let net = network(
        "network n { input image(1, 4, 4)\n c: conv(1, kernel: 3, stride: 2, padding: 1, bias: false) }",
        &[("c.weight", vec![1, 1, 3, 3], vec![1.0; 9])],
    );
    let out = run(&net, [1, 1, 4, 4], (0..16).map(|v| v as f32).collect());
    // windows centred on (0,0), (0,2), (2,0), (2,2)
    close(&out, &[10.0, 24.0, 51.0, 90.0]);
}

#[test]
fn avgpool_counts_padding_as_torch_does() {
    let with = network("network n { input image(1, 2, 2)\n p: avgpool(kernel: 3, stride: 1, padding: 1) }", &[]);
    close(&run(&with, [1, 1, 2, 2], vec![1.0; 4]), &[4.0 / 9.0; 4]);
    let without = network(
        "network n { input image(1, 2, 2)\n p: avgpool(kernel: 3, stride: 1, padding: 1, count_include_pad: false) }",
        &[],
    );
    close(&run(&without, [1, 1, 2, 2], vec![1.0; 4]), &[1.0; 4]);
}

#[test]
fn maxpool_ceil_mode_keeps_the_last_window() {
    // 3×3 input, kernel 2, stride 2: floor gives 1×1, ceil gives 2×2.
    let net = network("network n { input image(1, 3, 3)\n p: maxpool(kernel: 2, ceil_mode: true) }", &[]);
    close(&run(&net, [1, 1, 3, 3], (1..=9).map(|v| v as f32).collect()), &[5.0, 6.0, 8.0, 9.0]);
}

#[test]
fn layernorm_uses_its_epsilon() {
    // [1, 3]: mean 2, biased variance 1, so y = ±1/√(1 + eps).
    for eps in [1e-6f32, 1.0] {
        let net = network(&format!("network n {{ input vector(2)\n ln: layernorm(eps: {eps:?}) }}"), &[]);
        let y = 1.0 / (1.0 + eps).sqrt();
        close(&run(&net, [1, 2], vec![1.0, 3.0]), &[-y, y]);
    }
}

#[test]
fn gelu_exact_and_tanh() {
    let exact = network("network n { input vector(3)\n gelu }", &[]);
    close(&run(&exact, [1, 3], vec![1.0, 0.0, -1.0]), &[0.841_344_7, 0.0, -0.158_655_3]);
    let tanh = network("network n { input vector(1)\n gelu(approximate: tanh) }", &[]);
    close(&run(&tanh, [1, 1], vec![1.0]), &[0.841_192]);
}

#[test]
fn attention_scales_scores_by_root_width() {
    // One head, width 4, identity projections and zero biases: out = softmax(XXᵀ/2)·X.
    let mut eye = vec![0.0f32; 16];
    for i in 0..4 {
        eye[i * 4 + i] = 1.0;
    }
    let mut qkv = Vec::new();
    for _ in 0..3 {
        qkv.extend(&eye);
    }
    let net = network(
        "network n { input tokens(2, 4)\n a: attention(heads: 1) }",
        &[
            ("a.in_proj_weight", vec![12, 4], qkv),
            ("a.in_proj_bias", vec![12], vec![0.0; 12]),
            ("a.out_proj.weight", vec![4, 4], eye),
            ("a.out_proj.bias", vec![4], vec![0.0; 4]),
        ],
    );
    let x = [2.0f32, 0.0, 0.0, 0.0, 0.0, 2.0, 0.0, 0.0];
    // scores: [[4, 0], [0, 4]] / √4 = [[2, 0], [0, 2]]; softmax rows: p = e²/(e²+1).
    let p = (2f32).exp() / ((2f32).exp() + 1.0);
    let expected = [2.0 * p, 2.0 * (1.0 - p), 0.0, 0.0, 2.0 * (1.0 - p), 2.0 * p, 0.0, 0.0];
    close(&run(&net, [1, 2, 4], x.to_vec()), &expected);
}

#[test]
fn sinusoidal_positions() {
    let net = network("network n { input tokens(2, 4)\n p: pos_embedding(kind: sinusoidal) }", &[]);
    let out = run(&net, [1, 2, 4], vec![0.0; 8]);
    // position 0: sin 0, cos 0, sin 0, cos 0; position 1: sin 1, cos 1, sin 0.01, cos 0.01.
    close(&out, &[0.0, 1.0, 0.0, 1.0, 1f32.sin(), 1f32.cos(), 0.01f32.sin(), 0.01f32.cos()]);
}

#[test]
fn batchnorm_eval_uses_running_statistics() {
    let net = network(
        "network n { input image(1, 1, 2)\n bn: batchnorm }",
        &[
            ("bn.weight", vec![1], vec![2.0]),
            ("bn.bias", vec![1], vec![0.5]),
            ("bn.running_mean", vec![1], vec![1.0]),
            ("bn.running_var", vec![1], vec![4.0]),
        ],
    );
    let y = |x: f32| 2.0 * (x - 1.0) / (4.0f32 + 1e-5).sqrt() + 0.5;
    close(&run(&net, [1, 1, 1, 2], vec![3.0, -1.0]), &[y(3.0), y(-1.0)]);
}

#[test]
fn option_a_shortcut_pads_channels_evenly() {
    let net = network("network n { input image(2, 2, 2)\n s: pad_shortcut(channels: 4, stride: 2) }", &[]);
    // keeps x[:, :, ::2, ::2] and adds one zero channel before and one after.
    close(&run(&net, [1, 2, 2, 2], (1..=8).map(|v| v as f32).collect()), &[0.0, 1.0, 5.0, 0.0]);
}

/// The sliding-window rule every convolution and pooling shape comes from, against the
/// sizes PyTorch's max pooling gives (tests/fixtures/reference/pool_shapes.json, made by
/// pool_shapes.py): 1,152 combinations of size, kernel, stride, padding, dilation and
/// ceil mode, 134 of which torch refuses as empty.
#[test]
fn window_sizes_are_pytorchs() {
    use archc::ops::conv::Window;
    let text = std::fs::read_to_string("tests/fixtures/reference/pool_shapes.json").unwrap();
    let table: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut wrong = Vec::new();
    let cases = table["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1152);
    for case in cases {
        let n = |i: usize| case[i].as_u64().unwrap();
        let window = Window { kernel: n(1), stride: n(2), padding: n(3), dilation: n(4), ceil: case[5] == true };
        let archc = window.output_size("maxpool", n(0)).ok();
        if archc != case[6].as_u64() {
            wrong.push(format!("{case}: archc {archc:?}"));
        }
    }
    assert!(wrong.is_empty(), "[size, kernel, stride, padding, dilation, ceil, torch]:\n{}", wrong.join("\n"));
}

/// Batch norm in training mode on one value per channel (a batch of one vector): the
/// batch variance is 0 and has no unbiased form (PyTorch refuses such a batch); archc
/// normalises to the bias and moves the running statistics towards the value and 0,
/// never to infinity.
#[test]
fn batch_norm_on_one_value_per_channel_keeps_finite_statistics() {
    use burn::backend::Autodiff;
    let text = "network n { input vector(2)\n bn: batchnorm(momentum: 0.25) }";
    let result = compile(&mut Sources::new(), "bn.arch", text, &Options::default());
    let device = Default::default();
    let net = Network::<Autodiff<B>>::new(&result.models[0], &device);
    let x = Tensor::<Autodiff<B>, 2>::from_data(TensorData::new(vec![2.0f32, -4.0], [1, 2]), &device);
    let out = net.forward(Value::Vector(x)).vector().into_data().convert::<f32>().to_vec::<f32>().unwrap();
    close(&out, &[0.0, 0.0]);
    let state = net.state_dict();
    // running = 0.75 · running + 0.25 · batch, from mean 0 and variance 1.
    close(&state.tensors["bn.running_mean"].data, &[0.5, -1.0]);
    close(&state.tensors["bn.running_var"].data, &[0.75, 0.75]);
}
