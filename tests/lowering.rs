//! The lowered Burn networks compute what PyTorch computes. Fixtures
//! (tests/fixtures/lowering/*.safetensors, made by tests/fixtures/make_torch_fixtures.py)
//! hold PyTorch's weights with non-trivial batch-norm statistics, an input batch, the
//! eval-mode logits, the train-mode logits, the cross-entropy loss, every parameter's
//! gradient and the running statistics after one training step. Each model is checked
//! on burn-ndarray and burn-flex, and in bf16 and f16 mixed precision on burn-flex
//! against the same f32 reference, with the looser tolerances those formats allow.

use archc::elaborate::{Options, compile};
use archc::ir::Model;
use archc::lower::weights::{RawTensor, StateDict};
use archc::lower::{Layer, Network, Precision, Step, Value};
use archc::source::Sources;
use burn::backend::{Autodiff, Flex, NdArray};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use burn::tensor::{DType, TensorData};

const FIXTURES: &[(&str, &str)] = &[
    ("tiny_resnet", "tests/fixtures/lowering/tiny_resnet.arch"),
    ("tiny_bottleneck_attention", "tests/fixtures/lowering/tiny_bottleneck_attention.arch"),
    ("tiny_vit", "tests/fixtures/lowering/tiny_vit.arch"),
    ("tiny_se_lab", "tests/fixtures/lowering/tiny_se_lab.arch"),
    ("lenet5", "models/lenet5.arch"),
    ("resnet20", "models/resnet20.arch"),
    ("plain20", "models/plain20.arch"),
];

fn model(path: &str) -> Model {
    let text = std::fs::read_to_string(path).unwrap();
    let mut sources = Sources::new();
    let result = compile(&mut sources, path, &text, &Options::default());
    assert!(!result.has_errors(), "{path} does not compile");
    result.models.into_iter().next().unwrap()
}

struct Fixture {
    weights: StateDict,
    all: StateDict,
}

impl Fixture {
    fn read(name: &str) -> Fixture {
        let all =
            StateDict::read(std::path::Path::new(&format!("tests/fixtures/lowering/{name}.safetensors"))).unwrap();
        let weights = StateDict {
            tensors: all
                .tensors
                .iter()
                .filter(|(k, _)| !k.starts_with("__"))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            metadata: Default::default(),
        };
        Fixture { weights, all }
    }

    fn get(&self, name: &str) -> &RawTensor {
        self.all.tensors.get(name).unwrap_or_else(|| panic!("fixture has no {name}"))
    }

    fn tensor<B: Backend, const D: usize>(&self, name: &str, device: &B::Device) -> Tensor<B, D> {
        let t = self.get(name);
        Tensor::from_data(TensorData::new(t.data.clone(), t.shape.clone()), device)
    }
}

/// |a − b| ≤ tolerance · max(1, max |reference|) over the whole tensor.
fn assert_close(what: &str, actual: &[f32], expected: &RawTensor, tolerance: f32) {
    assert_eq!(actual.len(), expected.data.len(), "{what}: sizes differ");
    let scale = expected.data.iter().fold(1f32, |m, v| m.max(v.abs()));
    let worst = actual.iter().zip(&expected.data).map(|(a, e)| (a - e).abs()).fold(0f32, f32::max);
    assert!(worst <= tolerance * scale, "{what}: max |Δ| {worst:e} > {tolerance:e} × {scale}");
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn check_eval<B: Backend>(name: &str, m: &Model, fixture: &Fixture, device: &B::Device) {
    let network =
        Network::<B>::new(m, device).load_state_dict(&fixture.weights).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let input = fixture.tensor::<B, 4>("__input", device);
    let logits = network.forward(Value::Image(input.clone())).vector();
    assert_close(&format!("{name} eval logits"), &values(logits), fixture.get("__logits_eval"), 1e-4);

    // Inference folds each batch norm that reads a convolution into it: same logits,
    // and none of those batch norms left to run.
    let folded = network.for_inference();
    let logits = folded.forward(Value::Image(input)).vector();
    assert_close(&format!("{name} folded eval logits"), &values(logits), fixture.get("__logits_eval"), 1e-4);
    let norms = |n: &Network<B>| {
        n.program
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Layer { layer, .. } if matches!(n.layers[*layer], Layer::BatchNorm(_))))
            .count()
    };
    let after_conv = |n: &Network<B>| {
        let steps = &n.program.steps;
        steps
            .iter()
            .filter(|s| match s {
                Step::Layer { layer, input } if matches!(n.layers[*layer], Layer::BatchNorm(_)) && *input > 0 => {
                    matches!(steps[input - 1], Step::Layer { layer: p, .. } if matches!(n.layers[p], Layer::Conv(_)))
                }
                _ => false,
            })
            .count()
    };
    assert_eq!(after_conv(&folded), 0, "{name}: a batch norm after a convolution survived folding");
    assert_eq!(norms(&network) - norms(&folded), after_conv(&network), "{name}: only those are folded");
    assert_eq!(network.program.steps.len() - folded.program.steps.len(), after_conv(&network), "{name}: steps");
}

fn check_train<B: Backend>(name: &str, m: &Model, fixture: &Fixture, device: &B::Device) {
    type Ad<B> = Autodiff<B>;
    let network =
        Network::<Ad<B>>::new(m, device).load_state_dict(&fixture.weights).unwrap_or_else(|e| panic!("{name}: {e:?}"));
    let input = fixture.tensor::<Ad<B>, 4>("__input", device);
    let labels = fixture.get("__labels").data.iter().map(|&v| v as i64).collect::<Vec<_>>();
    let labels = Tensor::<Ad<B>, 1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), device);
    let logits = network.forward(Value::Image(input)).vector();
    assert_close(&format!("{name} train logits"), &values(logits.clone()), fixture.get("__logits_train"), 1e-4);
    let loss = CrossEntropyLossConfig::new().init(device).forward(logits, labels);
    assert_close(&format!("{name} loss"), &values(loss.clone()), fixture.get("__loss"), 1e-4);
    let grads = network.gradients(&loss.backward());
    let expected: Vec<&String> = fixture.all.tensors.keys().filter(|k| k.starts_with("__grad.")).collect();
    assert_eq!(grads.tensors.len(), expected.len(), "{name}: one gradient per parameter");
    for key in expected {
        let param = &key["__grad.".len()..];
        let grad = grads.tensors.get(param).unwrap_or_else(|| panic!("{name}: no gradient for {param}"));
        assert_eq!(grad.shape, fixture.get(key).shape, "{name}: gradient shape of {param}");
        assert_close(&format!("{name} grad {param}"), &grad.data, fixture.get(key), 1e-3);
    }
    let state = network.state_dict();
    for (key, reference) in fixture.all.tensors.iter().filter(|(k, _)| k.starts_with("__running_")) {
        let (stat, layer) = key.trim_start_matches("__").split_once("_after.").unwrap();
        let name_in_model = format!("{layer}.{stat}");
        let actual = state.tensors.get(&name_in_model).unwrap_or_else(|| panic!("{name}: no {name_in_model}"));
        assert_close(&format!("{name} {name_in_model} after one step"), &actual.data, reference, 1e-4);
    }
}

#[test]
fn ndarray_matches_pytorch() {
    let device = Default::default();
    for (name, path) in FIXTURES {
        let (m, fixture) = (model(path), Fixture::read(name));
        check_eval::<NdArray>(name, &m, &fixture, &device);
        check_train::<NdArray>(name, &m, &fixture, &device);
    }
}

#[test]
fn flex_matches_pytorch() {
    let device = Default::default();
    for (name, path) in FIXTURES {
        let (m, fixture) = (model(path), Fixture::read(name));
        check_eval::<Flex>(name, &m, &fixture, &device);
        check_train::<Flex>(name, &m, &fixture, &device);
    }
}

#[test]
fn mismatched_weights_name_the_key_and_both_shapes() {
    let m = model("tests/fixtures/lowering/tiny_resnet.arch");
    let mut dict = Fixture::read("tiny_resnet").weights;
    dict.tensors.remove("layer1.0.conv1.weight");
    dict.tensors.insert("fc.weight".into(), RawTensor { shape: vec![3, 16], data: vec![0.0; 48] });
    dict.tensors.insert("head.extra".into(), RawTensor { shape: vec![2], data: vec![0.0; 2] });
    let errors = Network::<NdArray>::new(&m, &Default::default()).load_state_dict(&dict).unwrap_err();
    let text = errors.join("\n");
    assert!(text.contains("missing `layer1.0.conv1.weight` (archc expects shape [8, 8, 3, 3])"), "{text}");
    assert!(text.contains("`fc.weight` has shape [3, 16] in the file, but the model needs [10, 16]"), "{text}");
    assert!(text.contains("unexpected `head.extra` (shape [2])"), "{text}");
}

#[test]
fn saved_weights_load_back_by_name() {
    let m = model("tests/fixtures/lowering/tiny_vit.arch");
    let device = Default::default();
    let fixture = Fixture::read("tiny_vit");
    let network = Network::<NdArray>::new(&m, &device).load_state_dict(&fixture.weights).unwrap();
    let dir = std::env::temp_dir().join(format!("archc-save-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tiny_vit.safetensors");
    network.save(&path).unwrap();
    let back = StateDict::read(&path).unwrap();
    for (name, tensor) in &fixture.weights.tensors {
        assert_eq!(back.tensors.get(name), Some(tensor), "{name} survives save and load");
    }
    let reloaded = Network::<NdArray>::new(&m, &device).load_state_dict(&back);
    assert!(reloaded.is_ok());
    std::fs::remove_dir_all(dir).unwrap();
}

/// Runs `network` in mixed precision, returning its logits, how many steps autocast's
/// rule names, and those that break it: convolutions, linear layers and attention
/// compute in `compute`, layer norm and softmax in f32.
fn run_checking_autocast<B: Backend>(
    network: &Network<B>,
    input: Tensor<B, 4>,
    compute: DType,
) -> (Tensor<B, 2>, usize, Vec<(&'static str, DType)>) {
    let (mut ruled, mut stray) = (0, Vec::new());
    let logits = network.forward_observed(Value::Image(input), &mut |i, v| {
        let what = network.program.labels[i].what;
        let wanted = match what {
            "conv" | "patchify" | "linear" | "attention" => compute,
            "layernorm" | "softmax" => DType::F32,
            _ => return,
        };
        ruled += 1;
        if v.dtype() != wanted {
            stray.push((what, v.dtype()));
        }
    });
    (logits.vector(), ruled, stray)
}

/// Mixed precision on burn-flex against PyTorch's f32 numbers: each op in the
/// precision autocast gives it, f32 logits and f32 gradients within what the format's
/// rounding allows (a weight left uncast would meet a bf16 input, which burn-flex does
/// not refuse but misreads) (`grads_tolerance: None` checks only that
/// they are f32).
fn check_mixed(name: &str, m: &Model, fixture: &Fixture, precision: Precision, tolerance: (f32, Option<f32>)) {
    type Ad = Autodiff<Flex>;
    let (values_tolerance, grads_tolerance) = tolerance;
    let device = Default::default();
    let what = |w: &str| format!("{name} {precision} {w}");
    let build = || Network::<Ad>::new(m, &device).load_state_dict(&fixture.weights).unwrap().with_precision(precision);
    let network = build();
    let input = fixture.tensor::<Ad, 4>("__input", &device);
    let (logits, ruled, stray) = run_checking_autocast(&network, input.clone(), precision.dtype().into());
    assert!(ruled > 0 && stray.is_empty(), "{}: {stray:?} of {ruled}", what("steps out of autocast's precision"));
    assert_eq!(logits.dtype(), DType::F32, "{}", what("logits are f32"));
    assert_close(&what("train logits"), &values(logits.clone()), fixture.get("__logits_train"), values_tolerance);
    let labels = fixture.get("__labels").data.iter().map(|&v| v as i64).collect::<Vec<_>>();
    let labels = Tensor::<Ad, 1, Int>::from_data(TensorData::new(labels.clone(), [labels.len()]), &device);
    let loss = CrossEntropyLossConfig::new().init(&device).forward(logits, labels);
    assert_close(&what("loss"), &values(loss.clone()), fixture.get("__loss"), values_tolerance);
    let backward = loss.backward();
    let first = network.layers.iter().find_map(|l| match l {
        Layer::Conv(c) | Layer::Patchify(c) => Some(c.weight.clone()),
        _ => None,
    });
    let first = first.expect("every fixture starts with a convolution");
    assert_eq!(first.grad(&backward).map(|g| g.dtype()), Some(DType::F32), "{}", what("weight gradients are f32"));
    let grads = network.gradients(&backward);
    for key in fixture.all.tensors.keys().filter(|k| k.starts_with("__grad.")) {
        let param = &key["__grad.".len()..];
        let grad = grads.tensors.get(param).unwrap_or_else(|| panic!("{}: no gradient for {param}", what("")));
        if let Some(tolerance) = grads_tolerance {
            assert_close(&what(&format!("grad {param}")), &grad.data, fixture.get(key), tolerance);
        }
    }
    // A fresh network: the training pass above moved the running statistics.
    use burn::module::AutodiffModule;
    let eval = build().valid().for_inference();
    assert_eq!(eval.precision, precision, "{}", what("inference keeps the precision"));
    let logits = eval.forward(Value::Image(input.inner())).vector();
    assert_close(&what("eval logits"), &values(logits), fixture.get("__logits_eval"), values_tolerance);
}

#[test]
fn flex_mixed_precision_tracks_pytorch() {
    // bf16 keeps 8 bits of mantissa, f16 11: about 4e-3 and 5e-4 per rounding, grown
    // by the depth of the network. The first layers' gradients of the 20-layer nets
    // are not compared element by element: at this batch size, rounding the input
    // alone to bf16 (f16) moves them by half (a fifth) of their norm in f32, because
    // ReLU and batch-norm switching makes them that sensitive.
    for (name, path) in FIXTURES {
        let (m, fixture) = (model(path), Fixture::read(name));
        let shallow = name.starts_with("tiny_") || *name == "lenet5";
        check_mixed(name, &m, &fixture, Precision::Bf16, (3e-2, shallow.then_some(4e-2)));
        check_mixed(name, &m, &fixture, Precision::F16, (1e-2, shallow.then_some(2e-2)));
    }
}

/// The ops no fixture has (sinusoidal positions, dropout, softmax, pooling, channel
/// padding, token means), in bf16 and f16: each op in autocast's precision in training
/// mode (dropout on) and eval mode, and eval logits near f32's.
#[test]
fn mixed_precision_runs_every_op_in_autocasts_precision() {
    const EVERY_OP: &str = "network every_op(classes: int = 5) {
        input image(3, 16, 16)
        conv1: conv(8, kernel: 3, padding: 1, bias: false)
        bn1:   batchnorm
               silu
               maxpool(kernel: 2, stride: 1, padding: 1)
               pad_channels(12)
               avgpool(kernel: 2, stride: 1)
               adaptive_avgpool(8)
        proj:  patchify(16, patch: 2)
               pos_embedding(kind: sinusoidal)
               dropout(0.1)
        enc:   encoder_layer(heads: 2, mlp_dim: 32, dropout: 0.1, attention_dropout: 0.1)
               softmax
               tanh
               mean_tokens
        fc:    linear(classes)
    }";
    let mut sources = Sources::new();
    let result = compile(&mut sources, "every_op.arch", EVERY_OP, &Options::default());
    assert!(!result.has_errors(), "the test model compiles");
    let m = &result.models[0];
    type Ad = Autodiff<Flex>;
    let device = Default::default();
    Ad::seed(&device, 3);
    let network = Network::<Ad>::new(m, &device);
    let input = Tensor::<Ad, 4>::random([2, 3, 16, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    use burn::module::AutodiffModule;
    let f32_logits = values(network.valid().forward(Value::Image(input.clone().inner())).vector());
    for (precision, tolerance) in [(Precision::Bf16, 3e-2), (Precision::F16, 1e-2)] {
        let compute = DType::from(precision.dtype());
        let train = network.clone().with_precision(precision);
        let (logits, ruled, stray) = run_checking_autocast(&train, input.clone(), compute);
        assert!(ruled >= 6 && stray.is_empty(), "{precision} training: {stray:?} of {ruled}");
        assert!(values(logits).iter().all(|v| v.is_finite()), "{precision}: finite training logits");
        let (logits, ruled, stray) = run_checking_autocast(&train.valid(), input.clone().inner(), compute);
        assert!(ruled >= 6 && stray.is_empty(), "{precision} eval: {stray:?} of {ruled}");
        let reference = RawTensor { shape: vec![2, 5], data: f32_logits.clone() };
        assert_close(&format!("every_op {precision} eval logits"), &values(logits), &reference, tolerance);
    }
}
