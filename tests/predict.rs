//! `archc predict`: PyTorch checkpoints (`.pt`, a wrapped `.pth`) and images / `.npy`
//! inputs give PyTorch's logits (tests/fixtures/predict, made by
//! tests/fixtures/make_torch_fixtures.py from the same tiny torchvision ResNet); JPEG
//! input; grey images into an RGB model and RGB images into a grey one; `--labels`;
//! the normalisation and class names an archc checkpoint carries; and weights trained
//! with other `--set` arguments refused by `predict` and `analyze attention`.

use archc::lower::weights::StateDict;
use std::path::Path;
use std::process::{Command, Output};
use support::Scratch;

mod support;

const MODEL: &str = "tests/fixtures/lowering/tiny_resnet.arch";
const WEIGHTS: &str = "tests/fixtures/predict/tiny_resnet.pt";
const IMAGE: &str = "tests/fixtures/predict/image.png";
/// The normalisation `image_logits.npy` (and the other RGB logits) were computed with.
const MEAN: &str = "0.5,0.4,0.3";
const STD: &str = "0.2,0.25,0.3";

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).output().expect("archc runs")
}

fn predict(args: &[&str]) -> Output {
    let mut all = vec!["predict"];
    all.extend_from_slice(args);
    archc(&all)
}

fn logits(out: &Output) -> Vec<Vec<f32>> {
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    json_lines(out)
        .iter()
        .map(|v| v["logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
        .collect()
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn expected(path: &str) -> Vec<Vec<f32>> {
    let array = archc::data::npy::read(Path::new(path)).unwrap();
    array.data.chunks(array.shape[1]).map(<[f32]>::to_vec).collect()
}

fn assert_close_within(actual: &[Vec<f32>], expected: &[Vec<f32>], tolerance: f32) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (a, e) in actual.iter().zip(expected) {
        assert_eq!(a.len(), e.len(), "{a:?} vs {e:?}");
        for (x, y) in a.iter().zip(e) {
            assert!((x - y).abs() < tolerance, "{a:?} vs {e:?}");
        }
    }
}

fn assert_close(actual: &[Vec<f32>], expected: &[Vec<f32>]) {
    assert_close_within(actual, expected, 1e-4);
}

fn max_difference(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter().flatten().zip(b.iter().flatten()).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The fixture's weights written as an archc checkpoint (safetensors) with `metadata`.
fn checkpoint(dir: &Path, name: &str, source: &str, metadata: &[(&str, &str)]) -> String {
    let mut dict = StateDict::read(Path::new(source)).unwrap();
    dict.tensors.retain(|name, _| !name.starts_with("__"));
    dict.metadata = metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let path = dir.join(name);
    dict.write_safetensors(&path, &[]).unwrap();
    path.display().to_string()
}

/// The one line of an error, after checking that it is one line and exit status 1.
fn one_line_error(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn pytorch_checkpoint_and_npy_give_pytorch_logits() {
    for weights in [WEIGHTS, "tests/fixtures/predict/tiny_resnet_wrapped.pth"] {
        for backend in ["flex", "ndarray"] {
            let out = predict(&[
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
    let out = predict(&[MODEL, "--weights", WEIGHTS, "--format", "json", "--mean", MEAN, "--std", STD, IMAGE]);
    assert_close(&logits(&out), &expected("tests/fixtures/predict/image_logits.npy"));
    let human = predict(&[MODEL, "--weights", WEIGHTS, "--mean", MEAN, "--std", STD, IMAGE]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert_eq!(text.lines().count(), 6, "the file name and five classes:\n{text}");
    assert!(text.lines().nth(1).unwrap().trim_start().contains("%  3"), "{text}");
}

/// Class names from `--labels` (one per line) replace the indices in both formats, and
/// win over the names a checkpoint carries; a file with too few lines is refused.
#[test]
fn labels_name_the_classes() {
    let dir = Scratch::new("predict", "labels");
    let names: Vec<String> = ["plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let labels = dir.join("labels.txt");
    std::fs::write(&labels, names.join("\n") + "\n").unwrap();
    let labels = labels.to_str().unwrap();
    let stored = checkpoint(
        &dir,
        "named.safetensors",
        WEIGHTS,
        &[("classes", r#"["c0","c1","c2","c3","c4","c5","c6","c7","c8","c9"]"#)],
    );
    for weights in [WEIGHTS, stored.as_str()] {
        let out = predict(&[MODEL, "--weights", weights, "--labels", labels, "--format", "json", IMAGE]);
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
        let top5 = json_lines(&out)[0]["top5"].as_array().unwrap().clone();
        assert_eq!(top5.len(), 5);
        for entry in &top5 {
            let class = entry["class"].as_u64().unwrap() as usize;
            assert_eq!(entry["name"], names[class], "{entry}");
        }
        let human = predict(&[MODEL, "--weights", weights, "--labels", labels, "--mean", MEAN, "--std", STD, IMAGE]);
        let text = String::from_utf8_lossy(&human.stdout);
        // Class 3 is the top class of image.png (see images_are_normalised_as_asked).
        assert!(text.lines().nth(1).unwrap().ends_with("%  cat"), "{text}");
        let shown: Vec<&str> = text.lines().skip(1).map(|l| l.rsplit("  ").next().unwrap()).collect();
        assert!(shown.iter().all(|name| names.iter().any(|n| n == name)), "{text}");
    }
    // Without --labels, the checkpoint's names.
    let out = predict(&[MODEL, "--weights", &stored, "--format", "json", IMAGE]);
    for entry in json_lines(&out)[0]["top5"].as_array().unwrap() {
        assert_eq!(entry["name"], format!("c{}", entry["class"]), "{entry}");
    }

    let short = dir.join("short.txt");
    std::fs::write(&short, names[..9].join("\n")).unwrap();
    let err = one_line_error(&predict(&[MODEL, "--weights", WEIGHTS, "--labels", short.to_str().unwrap(), IMAGE]));
    assert!(err.contains("9 class names") && err.contains("10 outputs"), "{err}");
    let missing = dir.join("missing.txt");
    let err = one_line_error(&predict(&[MODEL, "--weights", WEIGHTS, "--labels", missing.to_str().unwrap(), IMAGE]));
    assert!(err.contains("missing.txt"), "{err}");
}

/// An archc checkpoint's `mean`/`std` metadata normalise images when `--mean/--std` are
/// not given; given, they win.
#[test]
fn checkpoint_normalisation_applies_unless_mean_and_std_are_given() {
    let dir = Scratch::new("predict", "normalisation");
    let image_logits = expected("tests/fixtures/predict/image_logits.npy");
    let right = checkpoint(&dir, "right.safetensors", WEIGHTS, &[("mean", MEAN), ("std", STD)]);
    let out = predict(&[MODEL, "--weights", &right, "--format", "json", IMAGE]);
    assert_close(&logits(&out), &image_logits);

    let other = checkpoint(&dir, "other.safetensors", WEIGHTS, &[("mean", "0.1,0.9,0.2"), ("std", "0.7,0.3,0.5")]);
    let stored = logits(&predict(&[MODEL, "--weights", &other, "--format", "json", IMAGE]));
    assert!(max_difference(&stored, &image_logits) > 1e-2, "the stored normalisation changes the logits");
    let out = predict(&[MODEL, "--weights", &other, "--format", "json", "--mean", MEAN, "--std", STD, IMAGE]);
    assert_close(&logits(&out), &image_logits);

    // Damaged metadata is an error naming the file, not a quiet fallback to no
    // normalisation (which would give other logits without a word).
    for (key, mean, std) in [("mean", "0.5,zero,0.5", STD), ("std", MEAN, "0.2,0.2")] {
        let damaged = checkpoint(&dir, "damaged.safetensors", WEIGHTS, &[("mean", mean), ("std", std)]);
        let err = one_line_error(&predict(&[MODEL, "--weights", &damaged, IMAGE]));
        assert!(err.contains("damaged.safetensors") && err.contains(&format!("damaged `{key}` metadata")), "{err}");
    }
}

/// A JPEG is decoded by the `image` crate (zune-jpeg), not libjpeg as in PIL, and the two
/// round differently in the inverse DCT, chroma upsampling and colour conversion: on
/// `image.jpg` (4:2:0) 580 of the 768 values agree, 111 differ by one level, 75 by two
/// and 2 by three. So the pixels are asserted within 3 levels of PIL's and within 0.5
/// of a level on average, and the logits are compared with PyTorch's on PIL's pixels
/// with a tolerance derived from the largest difference: the fixture stores, per logit,
/// the L1 norm of its gradient with respect to the normalised input
/// (`image_jpg_sensitivity.npy`), and a pixel that moves by d levels moves the
/// normalised input by at most d / 255 / min(std); so |Δlogit| ≤ that norm × max d /
/// 255 / min(std) to first order (the net is piecewise linear), plus 1e-4 for rounding.
#[test]
fn jpeg_input_gives_pytorch_logits_within_the_decoders_difference() {
    let decoded = archc::data::images::load(Path::new("tests/fixtures/predict/image.jpg"), 3, 16, 16, None).unwrap();
    let pil = archc::data::npy::read(Path::new("tests/fixtures/predict/image_jpg_pixels.npy")).unwrap();
    assert_eq!(pil.shape, [16, 16, 3]);
    let differences: Vec<f32> = pil
        .data
        .iter()
        .enumerate()
        .map(|(i, want)| {
            let (y, x, c) = (i / 48, i / 3 % 16, i % 3);
            (decoded[c * 256 + y * 16 + x] * 255.0 - want).abs()
        })
        .collect();
    let largest = differences.iter().cloned().fold(0.0, f32::max);
    let mean = differences.iter().sum::<f32>() / differences.len() as f32;
    assert!(
        largest <= 3.0 + 1e-3 && mean < 0.5,
        "archc decodes image.jpg up to {largest} levels (mean {mean}) from PIL"
    );

    let sensitivity = archc::data::npy::read(Path::new("tests/fixtures/predict/image_jpg_sensitivity.npy")).unwrap();
    let min_std = 0.2;
    let jpeg = "tests/fixtures/predict/image.jpg";
    let actual =
        logits(&predict(&[MODEL, "--weights", WEIGHTS, "--format", "json", "--mean", MEAN, "--std", STD, jpeg]));
    let want = expected("tests/fixtures/predict/image_jpg_logits.npy");
    assert_eq!((actual.len(), actual[0].len(), sensitivity.data.len()), (1, 10, 10));
    for k in 0..10 {
        let tolerance = sensitivity.data[k] * largest / 255.0 / min_std + 1e-4;
        // Not a vacuous tolerance: a level moves a logit by at most ~0.005 here.
        assert!(tolerance < 0.02, "logit {k}: tolerance {tolerance}");
        assert!(
            (actual[0][k] - want[0][k]).abs() <= tolerance,
            "logit {k}: {actual:?} vs {want:?} (tolerance {tolerance})"
        );
    }
}

/// gray.png (8×8, one channel) into the 3-channel, 16×16 tiny_resnet: the grey values
/// are copied to R, G and B and resized with a triangle (bilinear) filter over pixel
/// centres, rounded once (`gray_resized.npy`, from torch's antialiased bilinear
/// interpolation; PIL's `convert("RGB").resize(BILINEAR)` rounds between its two passes
/// and differs by one level in places).
#[test]
fn a_grey_image_into_an_rgb_model_is_copied_to_three_channels_and_resized() {
    let decoded = archc::data::images::load(Path::new("tests/fixtures/predict/gray.png"), 3, 16, 16, None).unwrap();
    let want = archc::data::npy::read(Path::new("tests/fixtures/predict/gray_resized.npy")).unwrap();
    assert_eq!(want.shape, [16, 16]);
    for c in 0..3 {
        let plane: Vec<f32> = decoded[c * 256..(c + 1) * 256].iter().map(|v| v * 255.0).collect();
        let off: Vec<usize> = (0..256).filter(|&i| (plane[i] - want.data[i]).abs() > 1e-3).collect();
        assert!(off.is_empty(), "channel {c}: pixels {off:?} differ: {plane:?} vs {:?}", want.data);
    }
    let out = predict(&[
        MODEL,
        "--weights",
        WEIGHTS,
        "--format",
        "json",
        "--mean",
        MEAN,
        "--std",
        STD,
        "tests/fixtures/predict/gray.png",
    ]);
    assert_close(&logits(&out), &expected("tests/fixtures/predict/gray_logits.npy"));
}

/// image.png (RGB) into a one-channel model: the luma PIL's `convert("L")` gives (and
/// torchvision's `Grayscale` with it), L = (299 R + 587 G + 114 B) / 1000 rounded.
#[test]
fn an_rgb_image_into_a_grey_model_is_luma() {
    let decoded = archc::data::images::load(Path::new(IMAGE), 1, 16, 16, None).unwrap();
    let want = archc::data::npy::read(Path::new("tests/fixtures/predict/image_luma.npy")).unwrap();
    assert_eq!(want.shape, [16, 16]);
    let got: Vec<f32> = decoded.iter().map(|v| v * 255.0).collect();
    let off: Vec<usize> = (0..256).filter(|&i| (got[i] - want.data[i]).abs() > 1e-3).collect();
    assert!(off.is_empty(), "pixels {off:?} differ: {got:?} vs {:?}", want.data);
    let out = predict(&[
        "tests/fixtures/predict/tiny_gray.arch",
        "--weights",
        "tests/fixtures/predict/tiny_gray.pt",
        "--format",
        "json",
        "--mean",
        "0.5",
        "--std",
        "0.25",
        IMAGE,
    ]);
    assert_close(&logits(&out), &expected("tests/fixtures/predict/image_luma_logits.npy"));
}

/// Weights trained with `--set` arguments are refused by a run with others (a plain and
/// a residual net take the same tensors), by `predict` and by `analyze attention`;
/// PyTorch's own files record no arguments, so any `--set` may use them.
#[test]
fn weights_trained_with_other_network_arguments_are_refused() {
    let dir = Scratch::new("predict", "settings");
    let set = r#"[["classes","10"]]"#;
    let trained = checkpoint(&dir, "trained.safetensors", WEIGHTS, &[("set", set), ("mean", MEAN), ("std", STD)]);
    let npy = "tests/fixtures/predict/input.npy";
    let err = one_line_error(&predict(&[MODEL, "--weights", &trained, npy]));
    assert!(err.contains("was trained with --set classes=10, but is used here with no --set"), "{err}");
    let err = one_line_error(&predict(&[MODEL, "--weights", &trained, "--set", "classes=12", npy]));
    assert!(err.contains("--set classes=10") && err.contains("--set classes=12"), "{err}");
    let out = predict(&[MODEL, "--weights", &trained, "--set", "classes=10", "--format", "json", npy]);
    assert_close(&logits(&out), &expected("tests/fixtures/predict/input_logits.npy"));
    // An archc checkpoint trained without --set refuses a run with one.
    let plain = checkpoint(
        &dir,
        "plain.safetensors",
        WEIGHTS,
        &[("mean", MEAN), ("std", STD), ("classes", r#"["0","1","2","3","4","5","6","7","8","9"]"#)],
    );
    let err = one_line_error(&predict(&[MODEL, "--weights", &plain, "--set", "classes=10", npy]));
    assert!(err.contains("was trained with no --set, but is used here with --set classes=10"), "{err}");
    // A PyTorch file says nothing about how it was built.
    let out = predict(&[MODEL, "--weights", WEIGHTS, "--set", "classes=10", "--format", "json", npy]);
    assert_close(&logits(&out), &expected("tests/fixtures/predict/input_logits.npy"));

    let model = "tests/fixtures/lowering/tiny_se_lab.arch";
    let se = checkpoint(&dir, "se.safetensors", "tests/fixtures/lowering/tiny_se_lab.safetensors", &[("set", set)]);
    let out_dir = dir.join("attention");
    let attention = |extra: &[&str]| {
        let mut args = vec!["analyze", "attention", model, IMAGE, "--weights", &se, "--out", out_dir.to_str().unwrap()];
        args.extend_from_slice(extra);
        archc(&args)
    };
    let err = one_line_error(&attention(&[]));
    assert!(err.contains("was trained with --set classes=10, but is used here with no --set"), "{err}");
    assert!(!out_dir.join("channel_weights.csv").exists(), "nothing is written");
    let out = attention(&["--set", "classes=10"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out_dir.join("channel_weights.csv").exists());
}

#[test]
fn bad_inputs_are_one_line_errors() {
    let cases: &[(&[&str], &str)] = &[
        (&["--weights", "tests/fixtures/predict/corrupt.pt", "tests/fixtures/predict/input.npy"], "corrupt.pt"),
        (
            &["--weights", "tests/fixtures/predict/not_weights.safetensors", "tests/fixtures/predict/input.npy"],
            "not_weights",
        ),
        (&["--weights", WEIGHTS, "tests/fixtures/predict/missing.png"], "missing.png"),
        (&["--weights", WEIGHTS, "tests/fixtures/predict/input_logits.npy"], "input_logits.npy"),
        (&["--weights", WEIGHTS, "tests/fixtures/predict/README.md"], "README.md"),
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
