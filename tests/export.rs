//! `archc export --format pytorch` and `--format safetensors`: the generated Python for
//! zoo models (insta snapshots: what a user reads), its determinism, and the
//! refusals. That the Python computes archc's logits is proved with torch by
//! tests/fixtures/check_pytorch_export.py (not in CI: torch is several GB).

mod support;

use archc::elaborate::{Options, compile_file};
use archc::lower::weights::StateDict;
use support::Scratch;
use support::runs::{archc, ok};

fn export(dir: &Scratch, model: &str, format: &str, extra: &[&str]) -> std::path::PathBuf {
    let stem = std::path::Path::new(model).file_stem().unwrap().to_str().unwrap().to_string();
    let out = dir.join(format!("{stem}.{format}"));
    let mut args = vec!["export", model, "--format", format, "--out", out.to_str().unwrap()];
    args.extend(extra);
    ok(&archc(&args));
    out
}

#[test]
fn pytorch_modules_of_zoo_models() {
    let dir = Scratch::new("export", "pytorch");
    for model in ["lenet5", "resnet18", "resnet20", "se_resnet20", "resnet50_cbam", "vit_tiny_16"] {
        let path = export(&dir, &format!("models/{model}.arch"), "pytorch", &[]);
        let text = std::fs::read_to_string(&path).unwrap();
        // The same model writes the same file.
        let again = export(&dir, &format!("models/{model}.arch"), "pytorch", &[]);
        assert_eq!(std::fs::read_to_string(again).unwrap(), text, "{model} is deterministic");
        insta::with_settings!({ snapshot_path => "../snapshots/export", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(format!("pytorch_{model}"), text);
        });
    }
}

/// Every parameter and buffer the generated module declares is one of archc's, by
/// name: the attribute names follow the IR paths.
#[test]
fn pytorch_attributes_are_the_weight_names() {
    let dir = Scratch::new("export", "names");
    for model in ["resnet50_se", "vit_b_16", "resnext50_32x4d", "preact_resnet18", "deepnet"] {
        let arch = format!("models/{model}.arch");
        let text = std::fs::read_to_string(export(&dir, &arch, "pytorch", &[])).unwrap();
        let compiled = compile_file(&arch, &Options::default()).unwrap();
        let mut layers = Vec::new();
        compiled.result.models[0].walk(&mut |node, _| {
            if !node.shared && !node.own_tensors().is_empty() {
                layers.push(node.path.clone());
            }
        });
        assert!(!layers.is_empty());
        for path in layers {
            let attr = path.rsplit('.').next().unwrap();
            // Each layer with weights is declared under its own name: an attribute, an
            // entry of a named nn.Sequential, or a position in an indexed one.
            let declared = text.contains(&format!("self.{attr} = "))
                || text.contains(&format!("(\"{attr}\", "))
                || attr.chars().all(|c| c.is_ascii_digit());
            assert!(declared, "{model}: {path} has no attribute in\n{text}");
        }
    }
}

#[test]
fn safetensors_export_is_seeded_fresh_weights() {
    let dir = Scratch::new("export", "safetensors");
    let one = export(&dir, "models/resnet20.arch", "safetensors", &["--seed", "4"]);
    let a = StateDict::read(&one).unwrap();
    std::fs::rename(&one, dir.join("first.safetensors")).unwrap();
    let b = StateDict::read(&export(&dir, "models/resnet20.arch", "safetensors", &["--seed", "4"])).unwrap();
    let c = StateDict::read(&export(&dir, "models/resnet20.arch", "safetensors", &["--seed", "5"])).unwrap();
    assert_eq!(a.tensors, b.tensors, "the same seed gives the same weights");
    assert_ne!(a.tensors["conv1.weight"], c.tensors["conv1.weight"], "another seed other weights");
    let compiled = compile_file("models/resnet20.arch", &Options::default()).unwrap();
    let names: Vec<String> = compiled.result.models[0]
        .tensors()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .collect();
    let mut names = names;
    names.sort();
    let stored: Vec<String> = a.tensors.keys().filter(|n| !n.ends_with("num_batches_tracked")).cloned().collect();
    assert_eq!(stored, names);
}

/// The generated Python is formatted: black (120 columns) leaves every zoo model's file
/// as archc wrote it. Needs the test Python of `.ci/run` (ARCHC_ONNX_PYTHON, which also
/// has black); ignored without it, run in CI.
#[test]
#[cfg_attr(not(onnxruntime), ignore = "needs ARCHC_ONNX_PYTHON (a Python with black)")]
fn pytorch_modules_are_formatted_as_black_formats_them() {
    let dir = Scratch::new("export", "black");
    let mut files = Vec::new();
    let mut models: Vec<_> = std::fs::read_dir("models").unwrap().map(|e| e.unwrap().path()).collect();
    models.sort();
    for model in models {
        files.push(export(&dir, model.to_str().unwrap(), "pytorch", &[]));
    }
    let python = std::env::var("ARCHC_ONNX_PYTHON").expect("ARCHC_ONNX_PYTHON names the test Python");
    let out = std::process::Command::new(python)
        .args(["-m", "black", "--check", "--diff", "--line-length", "120"])
        .args(&files)
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "black would reformat:\n{said}");
}
