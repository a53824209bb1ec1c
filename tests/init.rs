//! `archc train --init`: starting from another network's weights (a torchvision-named
//! ResNet-18 state dict, made here by archc's own resnet18.arch, whose names and
//! layout are torchvision's: tests/lowering.rs checks them against torchvision), the
//! transfer report, `--freeze` and `--head-lr-mult`.

mod support;

use archc::elaborate::{Options, compile_file};
use archc::lower::Network;
use archc::lower::weights::{RawTensor, StateDict};
use burn::backend::Flex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use support::Scratch;
use support::runs::{archc, ok};

fn scratch(name: &str) -> Scratch {
    Scratch::new("init", name)
}

/// A torchvision ResNet-18 state dict (1000 classes) with every batch norm's running
/// statistics moved off their defaults, so that "did not move" cannot pass by chance.
fn torchvision_resnet18(dir: &Path) -> PathBuf {
    let compiled = compile_file("models/resnet18.arch", &Options::default()).unwrap();
    let model = &compiled.result.models[0];
    let mut dict = Network::<Flex>::new(model, &Default::default()).state_dict();
    for (name, tensor) in dict.tensors.iter_mut() {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            let base = if name.ends_with("running_var") { 1.5 } else { 0.25 };
            tensor.data = (0..tensor.data.len()).map(|i| base + 0.01 * (i % 7) as f32).collect();
        }
    }
    let path = dir.join("resnet18_torchvision.safetensors");
    dict.write_safetensors(&path, &[]).unwrap();
    path
}

/// An ImageFolder of ten classes of RGB 16×16 pictures, two per class.
fn ten_classes(dir: &Path) -> PathBuf {
    let root = dir.join("pictures");
    for class in 0..10u8 {
        let folder = root.join(format!("class{class}"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..2u8 {
            let picture = image::RgbImage::from_fn(16, 16, |x, y| {
                image::Rgb([(x as u8).wrapping_mul(class + 1), (y as u8) * 9 + i, class * 20])
            });
            picture.save(folder.join(format!("{i}.png"))).unwrap();
        }
    }
    root
}

struct Setup {
    _dir: Scratch,
    weights: PathBuf,
    data: PathBuf,
    root: PathBuf,
}

fn setup(name: &str) -> Setup {
    let dir = scratch(name);
    let weights = torchvision_resnet18(&dir);
    let data = ten_classes(&dir);
    let root = dir.to_path_buf();
    Setup { _dir: dir, weights, data, root }
}

impl Setup {
    /// `archc train MODEL --init W` on the pictures for one epoch of one batch, plus `extra`.
    fn train(&self, model: &str, out: &str, extra: &[&str]) -> std::process::Output {
        let out = self.root.join(out);
        let mut args = vec![
            "train",
            model,
            "--set",
            "classes=10",
            "--input",
            "3x16x16",
            "--data",
            self.data.to_str().unwrap(),
            "--val-split",
            "0.1",
            "--batch",
            "32",
            "--init",
            self.weights.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        if !extra.contains(&"--epochs") {
            args.extend(["--epochs", "1"]);
        }
        archc(&args)
    }

    fn run(&self, out: &str) -> PathBuf {
        self.root.join(out)
    }
}

fn text(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn init_json(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("init.json")).unwrap()).unwrap()
}

fn names(report: &serde_json::Value, part: &str) -> Vec<String> {
    report["transfer"][part].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
}

fn tensors(path: &Path) -> StateDict {
    StateDict::read(path).unwrap()
}

fn tensor<'a>(dict: &'a StateDict, name: &str) -> &'a RawTensor {
    dict.tensors.get(name).unwrap_or_else(|| panic!("{name} is in the file"))
}

#[test]
fn a_ten_class_resnet18_refuses_then_reshapes_exactly_the_head() {
    let s = setup("head");
    let refused = s.train("models/resnet18.arch", "refused", &[]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("`fc.weight` is [1000, 512] there and [10, 512] here"), "{said}");
    assert!(said.contains("`fc.bias` is [1000] there and [10] here"), "{said}");
    assert_eq!(said.matches(" there and ").count(), 2, "only the head is named: {said}");
    assert!(said.contains("--init-partial"), "{said}");
    assert!(!s.run("refused").exists(), "a refused run makes no directory");

    // --lr 0: the loaded tensors are still the file's after the epoch.
    let said = ok(&s.train("models/resnet18.arch", "run", &["--init-partial", "--lr", "0"]));
    assert!(said.contains("carried over  100 tensors"), "{said}");
    assert!(
        said.contains("reshaped      2: fc.weight [1000, 512] there, [10, 512] here; fc.bias [1000] there, [10] here"),
        "{said}"
    );
    let run = s.run("run");
    let report = init_json(&run);
    assert_eq!(names(&report, "reshaped"), ["fc.weight", "fc.bias"]);
    assert!(names(&report, "new").is_empty() && names(&report, "unused").is_empty());
    let source = tensors(&s.weights);
    let trained = tensors(&run.join("last.safetensors"));
    let loaded = names(&report, "loaded");
    assert_eq!(loaded.len(), 100, "torchvision's 102 tensors besides the batch-norm counters, less the head");
    for name in loaded.iter().filter(|n| !n.contains("running_")) {
        assert_eq!(tensor(&trained, name), tensor(&source, name), "{name} carried over");
    }
    assert_eq!(tensor(&trained, "fc.weight").shape, [10, 512]);
    // Where the run started is in its config and in every checkpoint.
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["init"]["reshaped"], 2);
    assert_eq!(config["init"]["loaded"], 100);
    let sha = report["sha256"].as_str().unwrap();
    assert_eq!(trained.metadata.get("init").map(String::as_str), Some("resnet18_torchvision.safetensors"));
    assert_eq!(trained.metadata.get("init_sha256").map(String::as_str), Some(sha));
}

#[test]
fn se_resnet18_cifar_gets_new_se_tensors_and_a_reshaped_stem() {
    let s = setup("se");
    let said = ok(&s.train("models/se_resnet18_cifar.arch", "run", &["--init-partial"]));
    let report = init_json(&s.run("run"));
    let compiled = compile_file("models/se_resnet18_cifar.arch", &Options::default()).unwrap();
    let se: Vec<String> = compiled.result.models[0]
        .tensors()
        .into_iter()
        .map(|t| t.name)
        .filter(|n| n.split('.').any(|part| part == "se"))
        .collect();
    assert_eq!(se.len(), 16, "two bias-free linear layers in each of 8 blocks: {se:?}");
    assert_eq!(names(&report, "new"), se);
    assert_eq!(names(&report, "reshaped"), ["conv1.weight", "fc.weight", "fc.bias"]);
    assert!(names(&report, "unused").is_empty());
    assert!(said.contains("conv1.weight [64, 3, 7, 7] there, [64, 3, 3, 3] here"), "{said}");
    // What the user reads, from the run's first line to the first epoch.
    let start = said.find("training ").unwrap();
    let end = said.find("epoch 1/").unwrap();
    let shown = said[start..end].replace(&s.root.display().to_string(), "TMP");
    let sha = report["sha256"].as_str().unwrap()[..12].to_string();
    insta::with_settings!({ snapshot_path => "../snapshots/init", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("transfer_report_se_resnet18", shown.replace(&sha, "SHA256"));
    });
}

#[test]
fn frozen_layers_and_their_batch_norms_do_not_move() {
    let s = setup("freeze");
    let frozen = "conv1,bn1,layer1,layer2";
    let args = ["--init-partial", "--freeze", frozen, "--lr", "0.05", "--stop-after", "1", "--epochs", "2"];
    let said = ok(&s.train("models/resnet18.arch", "run", &args));
    assert!(said.contains("10,498,570 parameters train, 683,072 are frozen"), "{said}");
    let run = s.run("run");
    let report = init_json(&run);
    let source = tensors(&s.weights);
    let check = |trained: &StateDict| {
        let mut still = BTreeSet::new();
        for (name, value) in &trained.tensors {
            let covered = frozen.split(',').any(|p| name == p || name.starts_with(&format!("{p}.")));
            let Some(before) = source.tensors.get(name).filter(|b| b.shape == value.shape) else { continue };
            if covered {
                assert_eq!(value, before, "{name} is frozen");
                still.insert(name.clone());
            } else if name.starts_with("layer3") && (name.ends_with("conv1.weight") || name.ends_with("running_mean")) {
                assert_ne!(value, before, "{name} trains");
            }
        }
        // Weights, biases and running statistics of the frozen layers were all compared.
        assert!(still.contains("layer2.0.downsample.1.running_var") && still.contains("bn1.running_mean"));
    };
    check(&tensors(&run.join("last.safetensors")));
    let frozen_params: u128 = report["freeze"]["frozen_params"].as_u64().unwrap().into();
    // conv1 9408 + bn1 128 + layer1 147968 + layer2 525568.
    assert_eq!(frozen_params, 9408 + 128 + 147_968 + 525_568);
    // The resumed epoch keeps them frozen too.
    ok(&archc(&["train", "--resume", run.to_str().unwrap()]));
    check(&tensors(&run.join("last.safetensors")));
}

#[test]
fn head_lr_mult_scales_exactly_the_fresh_tensors_step() {
    let s = setup("head-lr");
    // One epoch of one batch with plain SGD: each tensor moves once, by lr·grad.
    let run = |out: &str, lr: &str, extra: &[&str]| {
        let mut args = vec!["--init-partial", "--momentum", "0", "--weight-decay", "0", "--lr", lr];
        args.extend(extra);
        ok(&s.train("models/resnet18.arch", out, &args));
        tensors(&s.run(out).join("last.safetensors"))
    };
    let start = run("zero", "0", &[]);
    let one = run("one", "0.01", &[]);
    let ten = run("ten", "0.01", &["--head-lr-mult", "10"]);
    let moved = |after: &StateDict, name: &str| -> Vec<f64> {
        let (a, b) = (tensor(after, name), tensor(&start, name));
        a.data.iter().zip(&b.data).map(|(x, y)| (*x as f64) - (*y as f64)).collect()
    };
    let close = |a: &[f64], b: &[f64], what: &str| {
        let scale = a.iter().chain(b).fold(0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "{what} moved");
        let worst = a.iter().zip(b).fold(0f64, |m, (x, y)| m.max((x - y).abs()));
        assert!(worst <= 1e-3 * scale, "{what}: differs by {worst} of {scale}");
    };
    // The reshaped head (fresh from the same seed in every run) takes 10 times the step.
    for name in ["fc.weight", "fc.bias"] {
        let tenfold: Vec<f64> = moved(&one, name).iter().map(|v| v * 10.0).collect();
        close(&moved(&ten, name), &tenfold, name);
    }
    // Carried-over tensors take the base rate.
    for name in ["layer4.1.conv2.weight", "conv1.weight", "layer4.1.bn2.bias"] {
        close(&moved(&ten, name), &moved(&one, name), name);
    }
}

#[test]
fn init_refusals_name_the_problem() {
    let s = setup("refusals");
    let tiny = s.root.join("tiny.safetensors");
    let compiled = archc::elaborate::compile(
        &mut archc::source::Sources::new(),
        "t.arch",
        "network t { input vector(4)\n head: linear(3) }",
        &Options::default(),
    );
    Network::<Flex>::new(&compiled.models[0], &Default::default()).save(&tiny).unwrap();
    let out = archc(&[
        "train",
        "models/resnet18.arch",
        "--data",
        s.data.to_str().unwrap(),
        "--init",
        tiny.to_str().unwrap(),
        "--out",
        s.root.join("x").to_str().unwrap(),
    ]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("has no tensor that `resnet18` uses (by name and shape; 2 unused)"), "{said}");

    let out = s.train("models/resnet18.arch", "typo", &["--init-partial", "--freeze", "layer1,lyer2"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--freeze `lyer2` (did you mean `layer2`?) names no parameter of the model"), "{said}");

    let missing = s.root.join("nowhere.safetensors");
    let out = archc(&["train", "models/resnet18.arch", "--data", "x", "--init", missing.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("nowhere.safetensors"), "{said}");

    let out = archc(&["train", "models/resnet18.arch", "--data", "x", "--head-lr-mult", "10"]);
    assert_eq!(out.status.code(), Some(2), "--head-lr-mult needs --init");

    // Frozen, a tensor the file does not provide would keep its random start.
    let out = s.train("models/resnet18.arch", "fresh", &["--init-partial", "--freeze", "layer4,fc"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--freeze covers `fc.weight`, `fc.bias`, which --init does not provide"), "{said}");

    // Another network whose names overlap but whose shapes all differ: nothing carried
    // over is the problem, not the first clash.
    let resnet20 = s.root.join("resnet20.safetensors");
    let compiled = compile_file("models/resnet20.arch", &Options::default()).unwrap();
    Network::<Flex>::new(&compiled.result.models[0], &Default::default()).save(&resnet20).unwrap();
    let out = archc(&["train", "models/resnet18.arch", "--data", "x", "--init", resnet20.to_str().unwrap()]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("has no tensor that `resnet18` uses"), "{said}");

    let weights = s.weights.to_str().unwrap();
    let out = archc(&["train", "models/resnet18.arch", "--data", "x", "--init", weights, "--head-lr-mult", "3"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--head-lr-mult has nothing to speed up"), "{said}");

    let out = archc(&["train", "models/lenet5.arch", "--data", "x", "--freeze", "conv1,conv2,fc1,fc2,fc3"]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("--freeze covers every parameter: nothing would train"), "{said}");
}
