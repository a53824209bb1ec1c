//! The model zoo: every file in `models/` checks cleanly (no errors, no warnings),
//! its parameter count equals PyTorch's own (tests/fixtures/reference, produced by
//! torch_reference.py from torchvision / timm / the hand-written twins), and its shape
//! trace and IR dump are snapshots. The same reference also holds networks that are not
//! in the zoo (depthwise, grouped and dilated convolutions), keyed by their file's path.

use archc::elaborate::{Options, compile};
use archc::ir::{Model, Shape};
use archc::source::Sources;
use serde_json::Value;

fn reference() -> Value {
    let text = std::fs::read_to_string("tests/fixtures/reference/reference_counts.json").expect("reference counts");
    serde_json::from_str(&text).expect("valid json")
}

fn zoo() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("models")
        .expect("models/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "arch"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    names.sort();
    names
}

/// Where a reference key's network comes from: a zoo model (`resnet18`), a zoo model at
/// another input (`resnet18@3x32x32`), or a file outside the zoo, by its path from the
/// repository root (`tests/fixtures/reference/dilated.arch`).
fn source_of(key: &str) -> (String, Option<Shape>) {
    if key.ends_with(".arch") {
        return (key.to_string(), None);
    }
    match key.split_once('@') {
        Some((name, input)) => (format!("models/{name}.arch"), Some(archc::cli::parse_input(input).unwrap())),
        None => (format!("models/{key}.arch"), None),
    }
}

pub fn compile_model(name: &str, input: Option<Shape>) -> Model {
    compile_path(&format!("models/{name}.arch"), input)
}

fn compile_path(path: &str, input: Option<Shape>) -> Model {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut sources = Sources::new();
    // An ImageNet network checked on a CIFAR-sized input rightly warns about its stem.
    let allow = if input.is_some() { vec![archc::diagnostics::Code::TinyInputStem] } else { Vec::new() };
    let result = compile(&mut sources, path, &text, &Options { input, allow, ..Options::default() });
    let rendered = archc::diagnostics::render_plain(&sources, &result.diagnostics);
    assert!(result.diagnostics.is_empty(), "{path} has diagnostics:\n{rendered}");
    assert_eq!(result.models.len(), 1, "{path} defines one network");
    result.models.into_iter().next().unwrap()
}

fn shape_of(dims: &Value) -> Shape {
    let d: Vec<u64> = dims.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    match d.as_slice() {
        [c, h, w] => Shape::Image { c: *c, h: *h, w: *w },
        [d] => Shape::Vector { d: *d },
        _ => panic!("unexpected shape {d:?}"),
    }
}

#[test]
fn parameter_counts_and_shapes_equal_pytorch() {
    let reference = reference();
    let zoo = zoo();
    assert!(zoo.len() >= 22);
    let mut outside_zoo = 0;
    for (key, expected) in reference.as_object().unwrap() {
        let (path, input) = source_of(key);
        if key.ends_with(".arch") {
            // A zoo model is keyed by its name, so that "every zoo file has an entry" holds.
            assert!(!key.starts_with("models/"), "{key}: key a zoo model by its name");
            assert!(std::path::Path::new(&path).is_file(), "reference key {key} names no file");
            outside_zoo += 1;
        } else {
            let name = key.split('@').next().unwrap();
            assert!(zoo.iter().any(|z| z == name), "reference model {name} is missing from models/");
        }
        let model = compile_path(&path, input);
        assert_eq!(model.input, shape_of(&expected["input"]), "{key}: input");
        assert_eq!(model.params(), expected["params"].as_u64().unwrap() as u128, "{key}: params");
        assert_eq!(model.output, shape_of(&expected["output"]), "{key}: output");
    }
    for name in &zoo {
        assert!(reference.get(name).is_some(), "models/{name}.arch has no PyTorch reference");
    }
    assert!(outside_zoo >= 2, "the depthwise and dilated references are gone");
}

#[test]
fn zoo_traces_and_ir_dumps() {
    for name in zoo() {
        let model = compile_model(&name, None);
        insta::with_settings!({ snapshot_path => "../snapshots/models", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(format!("{name}.trace"), archc::ir::trace(&model));
            insta::assert_snapshot!(format!("{name}.ir"), archc::ir::dump(&model));
        });
    }
}

#[test]
fn weight_names_follow_torchvision() {
    let model = compile_model("resnet18", None);
    let names: Vec<String> = model.tensors().into_iter().map(|t| t.name).collect();
    for expected in
        ["conv1.weight", "bn1.running_var", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias", "fc.bias"]
    {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    assert_eq!(names.len(), 122, "torchvision's resnet18 state_dict has 122 entries");
    let vit = compile_model("vit_b_16", None);
    let names: Vec<String> = vit.tensors().into_iter().map(|t| t.name).collect();
    assert_eq!(names.len(), 152, "torchvision's vit_b_16 state_dict has 152 entries");
    for expected in [
        "class_token",
        "encoder.pos_embedding",
        "encoder.layers.encoder_layer_11.self_attention.in_proj_weight",
        "encoder.layers.encoder_layer_0.mlp.3.weight",
        "heads.head.weight",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    let cbam = compile_model("resnet50_cbam", None);
    let names: Vec<String> = cbam.tensors().into_iter().map(|t| t.name).collect();
    assert_eq!(names.len(), 448, "timm's resnet50 + CBAM state_dict has 448 entries");
    assert!(names.iter().any(|n| n == "layer1.0.se.spatial.conv.bn.running_mean"));
    // torchvision's resnext50_32x4d: ResNet-50's names; the 3×3 is grouped, so its weight
    // holds width / 32 input channels (shapes from torchvision 0.29's state_dict).
    let resnext = compile_model("resnext50_32x4d", None);
    let tensors = resnext.tensors();
    assert_eq!(tensors.len(), 320, "torchvision's resnext50_32x4d state_dict has 320 entries");
    for (expected, shape) in [
        ("layer1.0.conv1.weight", [128, 64, 1, 1]),
        ("layer1.0.conv2.weight", [128, 4, 3, 3]),
        ("layer1.0.conv3.weight", [256, 128, 1, 1]),
        ("layer4.0.conv2.weight", [1024, 32, 3, 3]),
        ("layer4.0.downsample.0.weight", [2048, 1024, 1, 1]),
    ] {
        let tensor = tensors.iter().find(|t| t.name == expected).unwrap_or_else(|| panic!("missing {expected}"));
        assert_eq!(tensor.shape, shape, "{expected}");
    }
}
