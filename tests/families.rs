//! Model families written as tables (models/vgg.arch, models/resnet.arch): each member
//! equals the hand-written single model in IR, weight names and counts; their weight
//! names and shapes are torchvision's state_dict's, entry for entry; and with weights
//! that depend only on each tensor's name, VGG-16-BN and AlexNet give PyTorch's logits
//! (tests/fixtures/reference/families.json, made by tests/fixtures/make_family_fixtures.py).

use archc::elaborate::{Options, compile};
use archc::ir::{Model, Shape};
use archc::lower::weights::{RawTensor, StateDict};
use archc::lower::{Network, Value};
use archc::source::Sources;
use burn::backend::Flex;
use burn::prelude::*;
use burn::tensor::TensorData;
use std::collections::BTreeMap;

fn compile_with(path: &str, set: &[(&str, &str)], input: Option<Shape>) -> Model {
    let text = std::fs::read_to_string(path).unwrap();
    let mut sources = Sources::new();
    let options =
        Options { input, set: set.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), ..Options::default() };
    let result = compile(&mut sources, path, &text, &options);
    let rendered = archc::diagnostics::render_plain(&sources, &result.diagnostics);
    assert!(!result.has_errors(), "{path} {set:?} does not compile:\n{rendered}");
    result.models.into_iter().next().unwrap()
}

/// The IR dump without its first line (which names the network).
fn body_of_dump(model: &Model) -> String {
    archc::ir::dump(model).split_once('\n').map(|(_, rest)| rest.to_string()).unwrap_or_default()
}

fn tensors(model: &Model) -> Vec<(String, Vec<u64>)> {
    model.tensors().into_iter().map(|t| (t.name, t.shape.to_vec())).collect()
}

fn assert_same(family: &Model, single: &Model, what: &str, rename: &dyn Fn(String) -> String) {
    assert_eq!(rename(body_of_dump(family)), rename(body_of_dump(single)), "{what}: IR differs");
    assert_eq!(tensors(family), tensors(single), "{what}: weight names or shapes differ");
    assert_eq!(family.params(), single.params(), "{what}: params");
}

#[test]
fn one_resnet_file_is_the_five_resnets_resnext_and_wide_resnet() {
    let same = |s: String| s;
    for depth in ["18", "34", "50", "101", "152"] {
        let family = compile_with("models/resnet.arch", &[("depth", depth)], None);
        let single = compile_with(&format!("models/resnet{depth}.arch"), &[], None);
        assert_same(&family, &single, &format!("resnet depth={depth}"), &same);
    }
    let wide = compile_with("models/resnet.arch", &[("width_per_group", "128")], None);
    assert_same(&wide, &compile_with("models/wide_resnet50_2.arch", &[], None), "wide_resnet50_2", &same);
    // The ResNeXt file defines its own copy of the bottleneck under another name.
    let resnext = compile_with("models/resnet.arch", &[("groups", "32"), ("width_per_group", "4")], None);
    let block_name = |s: String| s.replace("resnext_bottleneck", "bottleneck");
    assert_same(&resnext, &compile_with("models/resnext50_32x4d.arch", &[], None), "resnext50_32x4d", &block_name);
    // On CIFAR sizes too.
    let cifar = Some(Shape::Image { c: 3, h: 32, w: 32 });
    let family = compile_with("models/resnet.arch", &[("depth", "18")], cifar);
    assert_same(&family, &compile_with("models/resnet18.arch", &[], cifar), "resnet18 at 32x32", &same);
}

#[test]
fn one_vgg_file_is_vgg11_and_vgg16() {
    let same = |s: String| s;
    let vgg11 = compile_with("models/vgg.arch", &[("config", "A")], None);
    assert_same(&vgg11, &compile_with("models/vgg11.arch", &[], None), "vgg config=A", &same);
    let vgg16 = compile_with("models/vgg.arch", &[], None);
    assert_same(&vgg16, &compile_with("models/vgg16.arch", &[], None), "vgg config=D", &same);
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string("tests/fixtures/reference/families.json").unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn weight_names_and_shapes_are_torchvisions_state_dicts() {
    let reference = reference();
    // (torchvision's model, archc's file, its settings)
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: &[Case] = &[
        ("vgg11", "models/vgg11.arch", &[]),
        ("vgg16", "models/vgg16.arch", &[]),
        ("vgg11", "models/vgg.arch", &[("config", "A")]),
        ("vgg16_bn", "models/vgg.arch", &[("batch_norm", "true")]),
        ("vgg19_bn", "models/vgg.arch", &[("config", "E"), ("batch_norm", "true")]),
        ("alexnet", "models/alexnet.arch", &[]),
        ("wide_resnet50_2", "models/wide_resnet50_2.arch", &[]),
    ];
    for (name, path, set) in cases {
        let expected: BTreeMap<String, Vec<u64>> = reference["state_dicts"][name]
            .as_object()
            .unwrap_or_else(|| panic!("no state_dict {name}"))
            .iter()
            .map(|(k, v)| (k.clone(), v.as_array().unwrap().iter().map(|d| d.as_u64().unwrap()).collect()))
            .collect();
        let ours: BTreeMap<String, Vec<u64>> = tensors(&compile_with(path, set, None)).into_iter().collect();
        let missing: Vec<&String> = expected.keys().filter(|k| !ours.contains_key(*k)).collect();
        let extra: Vec<&String> = ours.keys().filter(|k| !expected.contains_key(*k)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{path} {set:?} vs {name}: missing {missing:?}, extra {extra:?}"
        );
        for (key, shape) in &expected {
            assert_eq!(&ours[key], shape, "{path} {set:?}: {key}");
        }
    }
}

/// The generator of make_family_fixtures.py: u(name, k) uniform in [-1, 1).
fn uniform(name: &str, count: usize) -> Vec<f64> {
    const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut hash: u64 = 0xCBF2_9CE4_8422_2325;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3);
    }
    (0..count as u64)
        .map(|k| {
            let mut z = hash.wrapping_add(k.wrapping_mul(GOLDEN)).wrapping_add(GOLDEN);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// A tensor filled from its name, as make_family_fixtures.py fills it.
fn filled(name: &str, shape: &[usize]) -> RawTensor {
    let count: usize = shape.iter().product();
    let u = uniform(name, count);
    let data = if name.ends_with("running_var") {
        u.iter().map(|v| (0.5 + 0.5 * v.abs()) as f32).collect()
    } else if name.ends_with("running_mean") || name.ends_with(".bias") {
        u.iter().map(|v| (0.1 * v) as f32).collect()
    } else if shape.len() == 1 {
        u.iter().map(|v| (1.0 + 0.1 * v) as f32).collect()
    } else {
        let scale = (3.0 / (count / shape[0]) as f64).sqrt();
        u.iter().map(|v| (v * scale) as f32).collect()
    };
    RawTensor { shape: shape.to_vec(), data }
}

fn logits_match(key: &str, path: &str, set: &[(&str, &str)]) {
    let reference = reference();
    let expected = &reference["logits"][key];
    let input: Vec<usize> =
        expected["input"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
    let want: Vec<f32> = expected["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
    let shape = Shape::Image { c: input[1] as u64, h: input[2] as u64, w: input[3] as u64 };
    let model = compile_with(path, set, Some(shape));
    let tensors = model
        .tensors()
        .into_iter()
        .filter(|t| !t.name.ends_with("num_batches_tracked"))
        .map(|t| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
            (t.name.clone(), filled(&t.name, &shape))
        })
        .collect();
    let weights = StateDict { tensors, metadata: Default::default() };
    let device = Default::default();
    let network =
        Network::<Flex>::new(&model, &device).load_state_dict(&weights).unwrap_or_else(|e| panic!("{key}: {e:?}"));
    let pixels = uniform("__input", input.iter().product()).into_iter().map(|v| v as f32).collect::<Vec<f32>>();
    let x = Tensor::<Flex, 4>::from_data(TensorData::new(pixels, input.clone()), &device);
    let got: Vec<f32> = network.forward(Value::Image(x)).vector().into_data().convert::<f32>().to_vec().unwrap();
    assert_eq!(got.len(), want.len(), "{key}: logits");
    let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-4 * largest.max(1.0),
        "{key}: logits differ from PyTorch's by {worst} (largest {largest})\n{got:?}\n{want:?}"
    );
}

#[test]
fn vgg16_bn_gives_pytorchs_logits() {
    let set = [("batch_norm", "true"), ("hidden", "64"), ("classes", "10")];
    logits_match("vgg16_bn_hidden64", "models/vgg.arch", &set);
}

#[test]
fn alexnet_gives_pytorchs_logits() {
    logits_match("alexnet_hidden64", "models/alexnet.arch", &[("hidden", "64"), ("classes", "10")]);
}
