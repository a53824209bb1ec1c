//! `archc export --format onnx`: every zoo model, and the PyTorch-made fixtures of
//! tests/fixtures/lowering, exported and run in onnxruntime (tests/fixtures/onnx_check.py,
//! after `onnx.checker.check_model(full_check=True)`), against archc's logits and
//! PyTorch's. The Python is ARCHC_ONNX_PYTHON (`.ci/run` makes a virtual environment
//! with onnx and onnxruntime); without it those tests are ignored, in CI they run.
//! What needs no Python (the file's structure, the refusals) runs everywhere.

mod support;

use archc::elaborate::{Options, compile_file};
use archc::export::onnx_proto as pb;
use archc::ir::{Model, Shape};
use archc::lower::weights::StateDict;
use archc::lower::{Network, Value};
use burn::backend::Flex;
use burn::prelude::*;
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Scratch;
use support::runs::{archc, ok};

fn compiled(path: &str, input: Option<Shape>) -> Model {
    compiled_with(path, input, &[])
}

fn compiled_with(path: &str, input: Option<Shape>, set: &[(String, String)]) -> Model {
    let options = Options { input, set: set.to_vec(), ..Options::default() };
    let compiled = compile_file(path, &options).unwrap();
    compiled.result.models.into_iter().next().unwrap_or_else(|| panic!("{path} compiles"))
}

/// Burn's random generator is one for the process: tests running beside each other
/// take turns seeding it and drawing a network's initial weights.
static SEEDED: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn seeded_state_dict(model: &Model, seed: u64) -> StateDict {
    let _turn = SEEDED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = Default::default();
    Flex::seed(&device, seed);
    Network::<Flex>::new(model, &device).state_dict()
}

/// A network's weights with nothing left at a default that could hide a wiring
/// mistake: running statistics away from 0 and 1, zero tensors (class token, biases
/// PyTorch starts at zero) filled.
fn weights(model: &Model, seed: u64) -> StateDict {
    let mut dict = seeded_state_dict(model, seed);
    for (name, tensor) in dict.tensors.iter_mut() {
        let n = tensor.data.len();
        let wave = |i: usize, scale: f32| ((i * 7919 % 101) as f32 / 101.0 - 0.5) * scale;
        if name.ends_with("running_var") {
            tensor.data = (0..n).map(|i| 0.6 + wave(i, 1.0).abs() * 2.0).collect();
        } else if name.ends_with("running_mean") || tensor.data.iter().all(|v| *v == 0.0) {
            tensor.data = (0..n).map(|i| wave(i, 0.4)).collect();
        }
    }
    dict
}

fn input_batch(shape: &Shape, batch: usize) -> (Vec<usize>, Vec<f32>) {
    let mut dims = vec![batch];
    dims.extend(shape.dims().iter().map(|&d| d as usize));
    let n: usize = dims.iter().product();
    let data = (0..n).map(|i| (((i * 2654435761) % 1000) as f32 / 500.0) - 1.0).collect();
    (dims, data)
}

fn archc_logits(model: &Model, dict: &StateDict, dims: &[usize], data: &[f32]) -> Vec<f32> {
    let device = Default::default();
    // Building draws initial weights from the shared generator: take a turn too.
    let network = {
        let _turn = SEEDED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        Network::<Flex>::new(model, &device)
    };
    let network = network.load_state_dict(dict).unwrap();
    let input = match dims.len() {
        4 => Value::Image(Tensor::from_data(TensorData::new(data.to_vec(), dims.to_vec()), &device)),
        3 => Value::Tokens(Tensor::from_data(TensorData::new(data.to_vec(), dims.to_vec()), &device)),
        _ => Value::Vector(Tensor::from_data(TensorData::new(data.to_vec(), dims.to_vec()), &device)),
    };
    network.forward(input).vector().into_data().iter::<f32>().collect()
}

fn write_npy(path: &Path, dims: &[usize], data: &[f32]) {
    let shape = dims.iter().map(|d| format!("{d}, ")).collect::<String>();
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    bytes.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    std::fs::write(path, bytes).unwrap();
}

/// Runs the checker and onnxruntime on `file` (with `file.input.npy` beside it).
fn onnxruntime(file: &Path) -> Vec<f32> {
    let python = std::env::var("ARCHC_ONNX_PYTHON").expect("ARCHC_ONNX_PYTHON names a Python with onnxruntime");
    let out = Command::new(python).arg("tests/fixtures/onnx_check.py").arg(file).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}: {said}", file.display());
    archc::data::npy::read(&file.with_extension("ort.npy")).unwrap().data
}

/// The largest difference relative to the largest logit.
fn relative(actual: &[f32], expected: &[f32]) -> f32 {
    assert_eq!(actual.len(), expected.len());
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-12);
    actual.iter().zip(expected).fold(0f32, |m, (a, e)| m.max((a - e).abs())) / scale
}

/// Exports `arch` with `dict` as its weights and returns onnxruntime's logits on `dims`/`data`.
fn export_and_run(
    dir: &Path,
    name: &str,
    arch: &str,
    extra: &[&str],
    dict: &StateDict,
    dims: &[usize],
    data: &[f32],
) -> Vec<f32> {
    let weights = dir.join(format!("{name}.safetensors"));
    dict.write_safetensors(&weights, &[]).unwrap();
    let file = dir.join(format!("{name}.onnx"));
    let mut args = vec![
        "export",
        arch,
        "--format",
        "onnx",
        "--out",
        file.to_str().unwrap(),
        "--weights",
        weights.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&archc(&args));
    write_npy(&file.with_extension("input.npy"), dims, data);
    let logits = onnxruntime(&file);
    for path in [file.clone(), weights, file.with_extension("input.npy"), file.with_extension("ort.npy")] {
        let _ = std::fs::remove_file(path);
    }
    logits
}

/// Models are checked at a reduced input where theirs is large (the weights are the
/// same; a ViT's position table follows the token count). Not those that end in an
/// adaptive pooling (VGG, AlexNet): on a smaller map its bins are unequal, which ONNX
/// cannot express; their 4096-wide classifiers are narrowed instead (`hidden`), which
/// keeps every name and op.
fn test_input(model_path: &str) -> (Option<Shape>, Vec<(String, String)>) {
    let model = compiled(model_path, None);
    let mut adaptive = false;
    for node in &model.nodes {
        node.walk(0, &mut |n, _| {
            adaptive |= matches!(&n.kind, archc::ir::NodeKind::Op { name, .. } if *name == "adaptive_avgpool");
        });
    }
    if adaptive {
        let text = std::fs::read_to_string(model_path).unwrap();
        let narrowed = text.contains("hidden: int").then(|| ("hidden".to_string(), "64".to_string()));
        return (None, narrowed.into_iter().collect());
    }
    match model.input {
        Shape::Image { c, h, .. } if h > 64 => (Some(Shape::Image { c, h: 64, w: 64 }), Vec::new()),
        _ => (None, Vec::new()),
    }
}

#[test]
#[cfg_attr(not(onnxruntime), ignore = "needs ARCHC_ONNX_PYTHON (a Python with onnx and onnxruntime)")]
fn every_zoo_model_gives_archcs_logits_in_onnxruntime() {
    let dir = Scratch::new("onnx", "zoo");
    let mut paths: Vec<PathBuf> = std::fs::read_dir("models").unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    assert!(paths.len() >= 20, "the zoo is in models/");
    for path in paths {
        let arch = path.to_str().unwrap();
        let (input, set) = test_input(arch);
        let model = compiled_with(arch, input, &set);
        let dict = weights(&model, 7);
        let (dims, data) = input_batch(&model.input, 2);
        let expected = archc_logits(&model, &dict, &dims, &data);
        let shape = input.map(|s| s.dims().iter().map(u64::to_string).collect::<Vec<_>>().join("x"));
        let settings: Vec<String> = set.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let mut extra: Vec<&str> = shape.iter().flat_map(|s| ["--input", s.as_str()]).collect();
        extra.extend(settings.iter().flat_map(|s| ["--set", s.as_str()]));
        let actual = export_and_run(&dir, &model.name, arch, &extra, &dict, &dims, &data);
        let error = relative(&actual, &expected);
        assert!(error <= 1e-4, "{}: onnxruntime's logits differ from archc's by {error:e} of the largest", model.name);
    }
}

/// The PyTorch-made fixtures (torchvision's BasicBlock and ViT, timm's Bottleneck with
/// CBAM and SE, the labs' models): their state dicts exported into ONNX give PyTorch's
/// own eval logits, in every opset archc writes for the ViT (GELU through Erf before
/// opset 20, the Gelu operator from it).
#[test]
#[cfg_attr(not(onnxruntime), ignore = "needs ARCHC_ONNX_PYTHON (a Python with onnx and onnxruntime)")]
fn pytorch_weights_exported_give_pytorchs_logits() {
    let dir = Scratch::new("onnx", "pytorch");
    let fixtures = [
        ("tiny_resnet", "tests/fixtures/lowering/tiny_resnet.arch"),
        ("tiny_bottleneck_attention", "tests/fixtures/lowering/tiny_bottleneck_attention.arch"),
        ("tiny_vit", "tests/fixtures/lowering/tiny_vit.arch"),
        ("tiny_se_lab", "tests/fixtures/lowering/tiny_se_lab.arch"),
        ("tiny_bn_stats", "tests/fixtures/lowering/tiny_bn_stats.arch"),
        ("every_op", "tests/fixtures/lowering/every_op.arch"),
        ("lenet5", "models/lenet5.arch"),
        ("resnet20", "models/resnet20.arch"),
        ("plain20", "models/plain20.arch"),
    ];
    for (name, arch) in fixtures {
        let fixture = StateDict::read(Path::new(&format!("tests/fixtures/lowering/{name}.safetensors"))).unwrap();
        let mut dict = fixture.clone();
        dict.tensors.retain(|k, _| !k.starts_with("__"));
        dict.metadata.clear();
        let input = &fixture.tensors["__input"];
        let expected = &fixture.tensors["__logits_eval"].data;
        let opsets: &[&str] = if name == "tiny_vit" { &["17", "18", "19", "20", "21"] } else { &["17"] };
        for opset in opsets {
            let actual = export_and_run(&dir, name, arch, &["--opset", opset], &dict, &input.shape, &input.data);
            let error = relative(&actual, expected);
            assert!(error <= 1e-4, "{name} (opset {opset}): onnxruntime's logits differ from PyTorch's by {error:e}");
        }
    }
}

fn read_model(path: &Path) -> pb::ModelProto {
    pb::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap()
}

#[test]
fn the_file_names_weights_as_pytorch_and_nodes_by_source_line() {
    let dir = Scratch::new("onnx", "structure");
    let file = dir.join("resnet18.onnx");
    let said = ok(&archc(&[
        "export",
        "models/resnet18.arch",
        "--format",
        "onnx",
        "--out",
        file.to_str().unwrap(),
        "--seed",
        "3",
    ]));
    assert!(said.contains("resnet18 as ONNX opset 17"), "{said}");
    let proto = read_model(&file);
    assert_eq!(proto.opset_import[0].version, Some(17));
    let graph = proto.graph.unwrap();
    // The initializers are the state dict's tensors, by name, with their values.
    let model = compiled("models/resnet18.arch", None);
    let dict = seeded_state_dict(&model, 3);
    let mut names: Vec<&str> = graph.initializer.iter().filter_map(|t| t.name.as_deref()).collect();
    names.sort_unstable();
    let expected: Vec<&str> = dict.tensors.keys().map(String::as_str).collect();
    assert_eq!(names, expected);
    let conv1 = graph.initializer.iter().find(|t| t.name.as_deref() == Some("conv1.weight")).unwrap();
    assert_eq!(conv1.dims, [64, 3, 7, 7]);
    let raw = conv1.raw_data.as_ref().unwrap();
    let values: Vec<f32> = raw.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(values, dict.tensors["conv1.weight"].data);
    // Each node says where it comes from; the first is conv1, line 6.
    let first = &graph.node[0];
    assert_eq!(first.op_type.as_deref(), Some("Conv"));
    assert_eq!(first.doc_string.as_deref(), Some("models/resnet18.arch:6:5"));
    // A symbolic batch by default, a fixed one when asked.
    let batch = |graph: &pb::GraphProto| graph.input[0].r#type.clone().unwrap();
    let text = format!("{:?}", batch(&graph));
    assert!(text.contains("DimParam(\"batch\")") && text.contains("DimValue(224)"), "{text}");
    let fixed = dir.join("fixed.onnx");
    ok(&archc(&["export", "models/lenet5.arch", "--format", "onnx", "--out", fixed.to_str().unwrap(), "--batch", "8"]));
    let text = format!("{:?}", batch(&read_model(&fixed).graph.unwrap()));
    assert!(text.contains("DimValue(8)") && !text.contains("DimParam"), "{text}");
    assert!(read_model(&fixed).metadata_props.is_empty(), "fresh weights say nothing about inputs");
    // A checkpoint's normalisation and class names travel into the file's metadata.
    let model = compiled("models/lenet5.arch", None);
    let mut checkpoint = weights(&model, 2);
    checkpoint.metadata.insert("mean".into(), "0.286".into());
    checkpoint.metadata.insert("std".into(), "0.353".into());
    checkpoint.metadata.insert("classes".into(), "[\"T-shirt\",\"Trouser\"]".into());
    let best = dir.join("best.safetensors");
    checkpoint.write_safetensors(&best, &[]).unwrap();
    let with = dir.join("with.onnx");
    let (out, best) = (with.to_str().unwrap(), best.to_str().unwrap());
    ok(&archc(&["export", "models/lenet5.arch", "--format", "onnx", "--out", out, "--weights", best]));
    let props: Vec<(String, String)> = read_model(&with)
        .metadata_props
        .into_iter()
        .map(|p| (p.key.unwrap_or_default(), p.value.unwrap_or_default()))
        .collect();
    assert!(
        props.contains(&("mean".into(), "0.286".into())) && props.contains(&("std".into(), "0.353".into())),
        "{props:?}"
    );
    assert!(props.iter().any(|(k, v)| k == "classes" && v.contains("Trouser")), "{props:?}");
}

#[test]
fn export_refuses_what_it_cannot_write() {
    let dir = Scratch::new("onnx", "refusals");
    let out = dir.join("x.onnx");
    let out_arg = out.to_str().unwrap();
    let refused = |args: &[&str], code: i32, says: &str| {
        let run = archc(args);
        let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert_eq!(run.status.code(), Some(code), "{said}");
        assert!(said.contains(says), "{args:?}: {said}");
        assert!(!out.exists(), "a refused export writes nothing");
    };
    refused(
        &["export", "models/lenet5.arch", "--format", "onnx", "--out", out_arg, "--opset", "16"],
        1,
        "--opset 16 is not one archc writes: give one from 17 to 21",
    );
    let uneven = dir.join("uneven.arch");
    std::fs::write(&uneven, "network uneven { input image(3, 10, 10)\n  c: conv(4, kernel: 3, padding: 1)\n  pool: adaptive_avgpool(3)\n  flatten\n  fc: linear(2)\n}\n").unwrap();
    refused(
        &["export", uneven.to_str().unwrap(), "--format", "onnx", "--out", out_arg],
        1,
        &format!(
            "cannot export `pool` ({}:3:3) to ONNX opset 17: adaptive_avgpool(3) on 10×10 makes bins of unequal sizes",
            uneven.display()
        ),
    );
    refused(
        &["export", "models/lenet5.arch", "--format", "onnx", "--out", out_arg, "--batch", "0"],
        2,
        "neither `dynamic` nor a batch size",
    );
    let other = dir.join("resnet20.safetensors");
    weights(&compiled("models/resnet20.arch", None), 1).write_safetensors(&other, &[]).unwrap();
    refused(
        &["export", "models/lenet5.arch", "--format", "onnx", "--out", out_arg, "--weights", other.to_str().unwrap()],
        1,
        "does not fit `lenet5`",
    );
    refused(
        &[
            "export",
            "models/lenet5.arch",
            "--format",
            "pytorch",
            "--out",
            out_arg,
            "--weights",
            other.to_str().unwrap(),
        ],
        1,
        "--weights is for ONNX files",
    );
}
