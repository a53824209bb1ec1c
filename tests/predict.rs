//! `archc predict`: PyTorch checkpoints (`.pt`, a wrapped `.pth`) and images / `.npy`
//! inputs give PyTorch's logits (tests/fixtures/predict, made by
//! tests/fixtures/make_torch_fixtures.py from the same tiny torchvision ResNet).

use std::process::{Command, Output};

const MODEL: &str = "tests/fixtures/lowering/tiny_resnet.arch";

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).output().expect("archc runs")
}

fn logits(out: &Output) -> Vec<Vec<f32>> {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
        })
        .collect()
}

fn expected(path: &str) -> Vec<Vec<f32>> {
    let array = archc::data::npy::read(std::path::Path::new(path)).unwrap();
    array.data.chunks(array.shape[1]).map(<[f32]>::to_vec).collect()
}

fn assert_close(actual: &[Vec<f32>], expected: &[Vec<f32>]) {
    assert_eq!(actual.len(), expected.len());
    for (a, e) in actual.iter().zip(expected) {
        for (x, y) in a.iter().zip(e) {
            assert!((x - y).abs() < 1e-4, "{a:?} vs {e:?}");
        }
    }
}

#[test]
fn pytorch_checkpoint_and_npy_give_pytorch_logits() {
    for weights in ["tests/fixtures/predict/tiny_resnet.pt", "tests/fixtures/predict/tiny_resnet_wrapped.pth"] {
        for backend in ["flex", "ndarray"] {
            let out = archc(&[
                "predict",
                MODEL,
                "--weights",
                weights,
                "--backend",
                backend,
                "--format",
                "json",
                "tests/fixtures/predict/input.npy",
            ]);
            assert_close(&logits(&out), &expected("tests/fixtures/predict/input_logits.npy"));
        }
    }
}

#[test]
fn images_are_normalised_as_asked() {
    let out = archc(&[
        "predict",
        MODEL,
        "--weights",
        "tests/fixtures/predict/tiny_resnet.pt",
        "--format",
        "json",
        "--mean",
        "0.5,0.4,0.3",
        "--std",
        "0.2,0.25,0.3",
        "tests/fixtures/predict/image.png",
    ]);
    assert_close(&logits(&out), &expected("tests/fixtures/predict/image_logits.npy"));
    let human = archc(&[
        "predict",
        MODEL,
        "--weights",
        "tests/fixtures/predict/tiny_resnet.pt",
        "--mean",
        "0.5,0.4,0.3",
        "--std",
        "0.2,0.25,0.3",
        "tests/fixtures/predict/image.png",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(text.lines().count(), 6, "the file name and five classes:\n{text}");
    assert!(text.lines().nth(1).unwrap().trim_start().contains("%  3"), "{text}");
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--weights", "tests/fixtures/predict/corrupt.pt", "tests/fixtures/predict/input.npy"], "corrupt.pt"),
        (
            &["--weights", "tests/fixtures/predict/not_weights.safetensors", "tests/fixtures/predict/input.npy"],
            "not_weights",
        ),
        (&["--weights", "tests/fixtures/predict/tiny_resnet.pt", "tests/fixtures/predict/missing.png"], "missing.png"),
        (
            &["--weights", "tests/fixtures/predict/tiny_resnet.pt", "tests/fixtures/predict/input_logits.npy"],
            "input_logits.npy",
        ),
        (&["--weights", "tests/fixtures/predict/tiny_resnet.pt", "tests/fixtures/predict/README.md"], "README.md"),
        (
            &["--weights", "tests/fixtures/lowering/lenet5.safetensors", "tests/fixtures/predict/input.npy"],
            "lenet5.safetensors",
        ),
    ];
    for (args, needle) in cases {
        let mut all = vec!["predict", MODEL];
        all.extend_from_slice(args);
        let out = archc(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?} should name {needle}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
