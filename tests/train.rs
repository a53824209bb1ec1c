//! `archc train` and `archc eval` on datasets the tests make themselves: IDX (plain and
//! gzipped), CIFAR binary and ImageFolder; corrupt files; resuming an interrupted run
//! gives the same metrics as an uninterrupted one; a diverging run stops with a message.
//! Data-parallel replicas train as one device does; bf16 and f16 runs record their
//! precision and evaluate in it. `fashion_mnist_end_to_end` trains LeNet-5 on the real
//! Fashion-MNIST (Debian's dataset-fashion-mnist, installed by .ci/run).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::{Scratch, assert_png, masked};

mod support;

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).env("RAYON_NUM_THREADS", "2").output().expect("archc runs")
}

fn scratch(name: &str) -> Scratch {
    Scratch::new("train", name)
}

/// Images whose brightness pattern depends on the label, so a small net can learn them.
fn images(count: usize, size: usize, channels: usize) -> (Vec<u8>, Vec<u8>) {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..count {
        let label = (i * 7 + i / 3) % 10;
        labels.push(label as u8);
        for c in 0..channels {
            for y in 0..size {
                for x in 0..size {
                    let v = ((x * (label + 1) + y * 3 + c * 11 + i) % 17) as u8 * 15;
                    pixels.push(v);
                }
            }
        }
    }
    (pixels, labels)
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

fn write_mnist(dir: &Path, gzip: bool) {
    for (prefix, count) in [("train", 200), ("t10k", 50)] {
        let (pixels, labels) = images(count, 8, 1);
        let files = [
            (format!("{prefix}-images-idx3-ubyte"), idx(&[count as u32, 8, 8], &pixels)),
            (format!("{prefix}-labels-idx1-ubyte"), idx(&[count as u32], &labels)),
        ];
        for (name, bytes) in files {
            if gzip {
                let file = std::fs::File::create(dir.join(format!("{name}.gz"))).unwrap();
                let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
                encoder.write_all(&bytes).unwrap();
                encoder.finish().unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }
}

const TINY: &str = "network tiny(classes: int = 10, width: int = 8) {
    input image(1, 8, 8)
    conv1:   conv(width, kernel: 3, padding: 1, bias: false)
    bn1:     batchnorm
             relu
    avgpool: global_avgpool
             flatten
    drop:    dropout(0.2)
    fc:      linear(classes)
}
";

fn tiny_model(dir: &Path) -> String {
    let path = dir.join("tiny.arch");
    std::fs::write(&path, TINY).unwrap();
    path.display().to_string()
}

fn metrics_without_timing(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|line| line.split(',').take(7).collect::<Vec<_>>().join(","))
        .collect()
}

fn ok(out: &Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    text
}

#[test]
fn gzipped_and_plain_idx_train_and_evaluate() {
    for gzip in [true, false] {
        let dir = scratch(if gzip { "gz" } else { "plain" });
        write_mnist(&dir, gzip);
        let model = tiny_model(&dir);
        let run = dir.join("run");
        let data_dir = dir.display().to_string();
        let args = [
            "train",
            &model,
            "--data",
            "mnist",
            "--data-dir",
            &data_dir,
            "--epochs",
            "2",
            "--batch",
            "32",
            "--lr",
            "0.05",
        ];
        let text = ok(&archc(&[&args[..], &["--out", run.to_str().unwrap()]].concat()));
        assert!(text.contains("epoch 2/2"), "{text}");
        for file in ["config.json", "model.arch", "metrics.csv", "last.safetensors", "best.safetensors", "state.json"] {
            assert!(run.join(file).exists(), "{file} is written");
        }
        assert_eq!(metrics_without_timing(&run).len(), 3, "a header and two epochs");
        let best = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        let eval = ok(&archc(&[
            "eval",
            &model,
            "--weights",
            run.join("best.safetensors").to_str().unwrap(),
            "--data",
            "mnist",
            "--data-dir",
            &data_dir,
            "--json",
        ]));
        let v: serde_json::Value = serde_json::from_str(eval.lines().next().unwrap()).unwrap();
        let top1 = v["top1"].as_f64().unwrap();
        let best_top1 =
            best.lines().skip(1).map(|l| l.split(',').nth(4).unwrap().parse::<f64>().unwrap()).fold(0.0, f64::max);
        assert!((top1 - best_top1).abs() < 1e-6, "eval {top1} = best validation {best_top1}");
        assert_eq!(v["confusion"].as_array().unwrap().len(), 10);
        // The learning curves and the confusion matrix are real PNG pictures.
        assert_png(&run.join("curves.png"), (1200, 480));
        assert_png(&run.join("confusion.png"), (780, 680));
    }
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let dir = scratch("resume");
    write_mnist(&dir, true);
    let model = tiny_model(&dir);
    let data_dir = dir.display().to_string();
    let common = [
        "train",
        model.as_str(),
        "--data",
        "mnist",
        "--data-dir",
        &data_dir,
        "--epochs",
        "3",
        "--batch",
        "16",
        "--lr",
        "0.05",
        "--seed",
        "7",
        "--crop-padding",
        "1",
        "--flip",
    ];
    let whole = dir.join("whole");
    ok(&archc(&[&common[..], &["--out", whole.to_str().unwrap()]].concat()));
    let parts = dir.join("parts");
    ok(&archc(&[&common[..], &["--out", parts.to_str().unwrap(), "--stop-after", "1"]].concat()));
    assert_eq!(metrics_without_timing(&parts).len(), 2, "interrupted after one epoch");
    ok(&archc(&["train", "--resume", parts.to_str().unwrap()]));
    assert_eq!(metrics_without_timing(&whole), metrics_without_timing(&parts));
    let read = |run: &Path| archc::lower::weights::StateDict::read(&run.join("last.safetensors")).unwrap().tensors;
    assert!(read(&whole) == read(&parts), "the same final weights, bit for bit");
}

#[test]
fn diverging_loss_stops_with_a_message() {
    let dir = scratch("nan");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let out = archc(&[
        "train",
        &model,
        "--data",
        "mnist",
        "--data-dir",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
        "--lr",
        "1e30",
        "--out",
        dir.join("run").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the loss became") && err.contains("--lr"), "{err}");
}

#[test]
fn corrupt_and_mismatched_data_are_one_line_errors() {
    let dir = scratch("corrupt");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let images = dir.join("train-images-idx3-ubyte");
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() / 2]).unwrap();
    let out = archc(&["train", &model, "--data", "mnist", "--data-dir", dir.to_str().unwrap(), "--epochs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(err.contains("train-images-idx3-ubyte") && err.contains("truncated"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    std::fs::write(dir.join("train-images-idx3-ubyte"), b"garbage").unwrap();
    let err = String::from_utf8_lossy(
        &archc(&["train", &model, "--data", "mnist", "--data-dir", dir.to_str().unwrap()]).stderr,
    )
    .to_string();
    assert!(err.contains("train-images-idx3-ubyte") && err.contains("not an IDX file"), "{err}");

    let cifar = scratch("cifar");
    std::fs::write(cifar.join("data_batch_1.bin"), vec![0u8; 3073 * 2 + 5]).unwrap();
    let err = String::from_utf8_lossy(
        &archc(&["train", "models/resnet20.arch", "--data", "cifar10", "--data-dir", cifar.to_str().unwrap()]).stderr,
    )
    .to_string();
    assert!(err.contains("data_batch_1.bin") && err.contains("records"), "{err}");

    write_mnist(&dir, false);
    let out = archc(&["train", "models/resnet20.arch", "--data", "mnist", "--data-dir", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("image(1, 8, 8)") && err.contains("--input 1x8x8"), "{err}");
}

#[test]
fn cifar_and_image_folders_load() {
    let dir = scratch("cifar-ok");
    let (pixels, labels) = images(40, 32, 3);
    let mut records = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        records.push(*label);
        records.extend_from_slice(&pixels[i * 3072..(i + 1) * 3072]);
    }
    for i in 1..=5 {
        std::fs::write(dir.join(format!("data_batch_{i}.bin")), &records).unwrap();
    }
    std::fs::write(dir.join("test_batch.bin"), &records).unwrap();
    let model = dir.join("small.arch");
    std::fs::write(&model, "network small(classes: int = 10) { input image(3, 32, 32)\n c: conv(4, kernel: 3, stride: 4)\n global_avgpool\n flatten\n fc: linear(classes) }").unwrap();
    let text = ok(&archc(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        "cifar10",
        "--data-dir",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
        "--out",
        dir.join("run").to_str().unwrap(),
    ]));
    assert!(text.contains("200 images, validation 40 images"), "{text}");

    let folder = scratch("folder");
    for class in ["cats", "dogs"] {
        std::fs::create_dir_all(folder.join(class)).unwrap();
        for i in 0..6u8 {
            let image = image::RgbImage::from_fn(12, 10, |x, y| {
                image::Rgb([x as u8 * 20 + i, y as u8 * 20, if class == "cats" { 0 } else { 255 }])
            });
            image.save(folder.join(class).join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(folder.join("cats").join("notes.txt"), "not an image").unwrap();
    let model = folder.join("two.arch");
    std::fs::write(&model, "network two(classes: int = 2) { input image(3, 8, 8)\n c: conv(4, kernel: 3)\n global_avgpool\n flatten\n fc: linear(classes) }").unwrap();
    let text = ok(&archc(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--epochs",
        "1",
        "--val-split",
        "0.25",
        "--out",
        folder.join("run").to_str().unwrap(),
    ]));
    assert!(text.contains("9 images, validation 3 images"), "{text}");
}

#[test]
fn fashion_mnist_end_to_end() {
    let data = Path::new("/usr/share/datasets/fashion-mnist");
    if !data.exists() {
        assert!(std::env::var("CI").is_err(), "CI installs dataset-fashion-mnist; it is missing");
        eprintln!("skipped: install Debian's dataset-fashion-mnist to run this test");
        return;
    }
    let dir = scratch("fmnist");
    let run = dir.join("run");
    let args =
        ["train", "models/lenet5.arch", "--data", "fashion-mnist", "--epochs", "2", "--batch", "64", "--lr", "0.05"];
    let text = ok(&archc(&[&args[..], &["--out", run.to_str().unwrap()]].concat()));
    let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let last = metrics.lines().last().unwrap();
    let top1: f64 = last.split(',').nth(4).unwrap().parse().unwrap();
    assert!(top1 >= 0.85, "LeNet-5 reached {top1} after 2 epochs:\n{text}");
    let eval = ok(&archc(&[
        "eval",
        "models/lenet5.arch",
        "--weights",
        run.join("best.safetensors").to_str().unwrap(),
        "--data",
        "fashion-mnist",
        "--json",
    ]));
    let v: serde_json::Value = serde_json::from_str(eval.lines().next().unwrap()).unwrap();
    let best =
        metrics.lines().skip(1).map(|l| l.split(',').nth(4).unwrap().parse::<f64>().unwrap()).fold(0.0, f64::max);
    assert!((v["top1"].as_f64().unwrap() - best).abs() < 1e-6, "eval reports the best checkpoint's accuracy");
}

#[test]
fn compare_trains_measures_and_reports() {
    let dir = scratch("compare");
    write_mnist(&dir, false);
    let small = tiny_model(&dir);
    let other = dir.join("other.arch");
    std::fs::write(&other, TINY.replace("network tiny", "network other")).unwrap();
    let report = dir.join("report");
    let text = ok(&archc(&[
        "compare",
        &small,
        other.to_str().unwrap(),
        "--sweep",
        "width=4,8",
        "--data",
        "mnist",
        "--data-dir",
        dir.to_str().unwrap(),
        "--subset",
        "50,all",
        "--epochs",
        "2",
        "--batch",
        "16",
        "--lr",
        "0.05",
        "--bench-batch",
        "1,4",
        "--bench-iters",
        "2",
        "--out",
        report.to_str().unwrap(),
    ]));
    assert!(text.contains("report:"), "{text}");
    // One row per model and training-set size, each from its own run directory.
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(report.join("results.json")).unwrap()).unwrap();
    let rows = results.as_array().unwrap();
    let seen: Vec<(String, u64)> =
        rows.iter().map(|r| (r["model"].as_str().unwrap().to_string(), r["train_images"].as_u64().unwrap())).collect();
    let models = ["tiny width=4", "tiny width=8", "other width=4", "other width=8"];
    let expected: Vec<(String, u64)> =
        [50, 200].iter().flat_map(|&n| models.iter().map(move |m| (m.to_string(), n))).collect();
    assert_eq!(seen, expected);
    for row in rows {
        let run = PathBuf::from(row["run"].as_str().unwrap());
        // The table's accuracy is the run's last epoch, as its metrics.csv says.
        let metrics = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
        let last = metrics.lines().last().unwrap();
        let top1: f64 = last.split(',').nth(4).unwrap().parse().unwrap();
        assert!((row["top1"].as_f64().unwrap() - top1).abs() < 1e-12, "{row}\n{metrics}");
        assert_eq!(metrics.lines().count(), 3, "two epochs in {}", run.display());
        assert_eq!(row["latency_ms"].as_array().unwrap().len(), 2);
        // Each variant is built with its own width: conv, batch norm, classifier.
        let width: u64 = row["model"].as_str().unwrap().rsplit('=').next().unwrap().parse().unwrap();
        assert_eq!(row["params"].as_u64().unwrap(), width * 9 + 2 * width + width * 10 + 10, "{row}");
        let run_name = run.file_name().unwrap().to_string_lossy().to_string();
        assert!(run_name.ends_with(&format!("width-{width}-{}", if row["train_images"] == 50 { "50" } else { "all" })));
    }
    for (png, size) in [
        ("curves.png", (1400, 560)),
        ("accuracy_vs_macs.png", (900, 600)),
        ("accuracy_vs_params.png", (900, 600)),
        ("accuracy_vs_subset.png", (900, 600)),
    ] {
        assert_png(&report.join(png), size);
    }
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    // The command line names this run's temporary directory.
    let md: String = md.lines().filter(|l| !l.starts_with("Produced by")).collect::<Vec<_>>().join("\n");
    insta::with_settings!({ snapshot_path => "../snapshots/compare", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("compare_report", masked(&md));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_refuses_bad_arguments_before_training() {
    let cases: &[(&[&str], &str)] = &[
        (&["compare", "models/lenet5.arch", "models/nope.arch", "--data", "mnist"], "models/nope.arch"),
        (&["compare", "models/lenet5.arch", "--data", "mnist", "--bench-iters", "0"], "--bench-iters"),
        (&["compare", "models/lenet5.arch", "--data", "mnist", "--epochs", "0"], "--epochs must be at least 1"),
        (&["compare", "models/lenet5.arch", "models/lenet5.arch", "--data", "fashion-mnist"], "given twice"),
        (
            &["compare", "models/lenet5.arch", "--data", "fashion-mnist", "--subset", "10,10"],
            "--subset 10 is given twice",
        ),
        // Data that does not fit a model is found before anything is measured or trained.
        (&["compare", "models/lenet5.arch", "models/resnet20.arch", "--data", "fashion-mnist"], "--input 1x28x28"),
        // So are a precision the backend lacks and devices it does not have.
        (
            &["compare", "models/lenet5.arch", "--data", "mnist", "--backend", "ndarray", "--precision", "f16"],
            "the ndarray backend cannot compute in f16",
        ),
        (&["compare", "models/lenet5.arch", "--data", "mnist", "--devices", "cuda:0"], "add --backend cuda"),
    ];
    for (args, expected) in cases {
        let out = archc(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(expected) && !err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(archc(&["compare", "models/lenet5.arch", "--data", "mnist", "--subset", "0"]).status.code(), Some(2));
}

#[test]
fn weights_remember_the_network_arguments_they_were_trained_with() {
    let dir = scratch("settings");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    let data_dir = dir.display().to_string();
    ok(&archc(&[
        "train",
        &model,
        "--data",
        "mnist",
        "--data-dir",
        &data_dir,
        "--epochs",
        "1",
        "--set",
        "classes=10",
        "--out",
        run.to_str().unwrap(),
    ]));
    let weights = run.join("best.safetensors").display().to_string();
    let eval = |extra: &[&str]| {
        let mut args = vec!["eval", model.as_str(), "--weights", &weights, "--data", "mnist", "--data-dir", &data_dir];
        args.extend(extra);
        archc(&args)
    };
    // Evaluating on a network built without the same --set is refused, naming both.
    let out = eval(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("was trained with --set classes=10, but this run has no --set"), "{err}");
    ok(&eval(&["--set", "classes=10"]));
    // A resumed run keeps its network; another --set is refused.
    let out = archc(&["train", "--resume", run.to_str().unwrap(), "--set", "classes=12"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a resumed run keeps the network it started with"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// metrics.csv as numbers: per epoch, train loss, train accuracy, val loss, val top-1.
fn metric_values(run: &Path) -> Vec<[f64; 4]> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let row = |line: &str| {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        [v[1], v[2], v[3], v[4]]
    };
    text.lines().skip(1).map(row).collect()
}

/// Without batch norm (whose statistics are per device) or dropout, the same batch
/// split over replicas gives the whole batch's mean gradient, so the runs agree up to
/// the rounding of summing the shares' gradients. The uneven splits (batch 15 over 2
/// and 4 replicas, and a last batch of 8) are on purpose.
#[test]
fn data_parallel_replicas_train_as_one_device() {
    let dir = scratch("parallel");
    write_mnist(&dir, false);
    let model = dir.join("plain.arch");
    std::fs::write(
        &model,
        "network plain(classes: int = 10) {
            input image(1, 8, 8)
            conv1: conv(8, kernel: 3, padding: 1)
                   relu
                   maxpool(kernel: 2)
                   flatten
            fc:    linear(classes)
        }",
    )
    .unwrap();
    let data_dir = dir.display().to_string();
    let common = [
        "train",
        model.to_str().unwrap(),
        "--data",
        "mnist",
        "--data-dir",
        &data_dir,
        "--epochs",
        "3",
        "--batch",
        "15",
        "--lr",
        "0.05",
        "--crop-padding",
        "1",
        "--flip",
    ];
    let one = dir.join("one");
    ok(&archc(&[&common[..], &["--out", one.to_str().unwrap()]].concat()));
    let reference = metric_values(&one);
    // A run interrupted on one device and resumed on two (a run may move).
    let moved = dir.join("moved");
    ok(&archc(&[&common[..], &["--out", moved.to_str().unwrap(), "--stop-after", "1"]].concat()));
    ok(&archc(&["train", "--resume", moved.to_str().unwrap(), "--devices", "cpu,cpu"]));
    for (devices, run) in [("cpu,cpu", None), ("cpu,cpu,cpu,cpu", None), ("1 then 2", Some(moved))] {
        let run = run.unwrap_or_else(|| {
            let run = dir.join(devices.replace(',', "-"));
            let text = ok(&archc(&[&common[..], &["--out", run.to_str().unwrap(), "--devices", devices]].concat()));
            assert!(text.contains(&format!("on flex ({devices})")), "{text}");
            run
        });
        let metrics = metric_values(&run);
        assert_eq!(metrics.len(), reference.len());
        for (epoch, (a, b)) in metrics.iter().zip(&reference).enumerate() {
            for (k, (x, y)) in a.iter().zip(b).enumerate() {
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs().max(1.0),
                    "{devices}, epoch {}, column {k}: {x} vs {y}",
                    epoch + 1
                );
            }
        }
    }
    // Batch norm normalises each device's share by its own statistics; the running
    // mean the replicas' updates leave (Burn averages them) is the whole batch's. One
    // step of the 200 images at learning rate 0 changes nothing else.
    let tiny = tiny_model(&dir);
    let args = ["train", &tiny, "--data", "mnist", "--data-dir", &data_dir, "--epochs", "1", "--batch", "200"];
    let running_mean = |devices: &[&str]| {
        let run = dir.join(format!("bn{}", devices.len()));
        ok(&archc(&[&args[..], &["--lr", "0", "--out", run.to_str().unwrap()], devices].concat()));
        let weights = archc::lower::weights::StateDict::read(&run.join("last.safetensors")).unwrap();
        weights.tensors["bn1.running_mean"].data.clone()
    };
    let (single, replicas) = (running_mean(&[]), running_mean(&["--devices", "cpu,cpu"]));
    assert!(single.iter().any(|&m| m.abs() > 1e-3), "the step moved the running mean: {single:?}");
    for (a, b) in replicas.iter().zip(&single) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "running mean {replicas:?} vs {single:?}");
    }
}

/// A bf16 run trains, records its precision in config.json and in the checkpoint (whose
/// tensors stay f32), and `archc eval` then measures in bf16 what validation measured.
/// An f16 run keeps its loss scaler across an interruption.
#[test]
fn mixed_precision_runs_record_and_evaluate_their_precision() {
    let dir = scratch("precision");
    write_mnist(&dir, true);
    let model = tiny_model(&dir);
    let data_dir = dir.display().to_string();
    let common = ["train", &model, "--data", "mnist", "--data-dir", &data_dir, "--batch", "32", "--lr", "0.05"];
    let run = dir.join("bf16");
    let text =
        ok(&archc(&[&common[..], &["--epochs", "2", "--precision", "bf16", "--out", run.to_str().unwrap()]].concat()));
    assert!(text.contains(" in bf16;"), "{text}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["hyper"]["precision"], "bf16");
    let best = run.join("best.safetensors");
    let bytes = std::fs::read(&best).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(header.metadata().as_ref().and_then(|m| m.get("precision")).map(String::as_str), Some("bf16"));
    assert!(
        header.tensors().values().all(|t| t.dtype == safetensors::Dtype::F32 || t.dtype == safetensors::Dtype::I64)
    );
    let best_top1 = metric_values(&run).iter().map(|m| m[3]).fold(0.0, f64::max);
    let eval = |extra: &[&str]| {
        let args =
            ["eval", &model, "--weights", best.to_str().unwrap(), "--data", "mnist", "--data-dir", &data_dir, "--json"];
        let out = ok(&archc(&[&args[..], extra].concat()));
        serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap()).unwrap()["top1"].as_f64().unwrap()
    };
    assert!((eval(&[]) - best_top1).abs() < 1e-9, "eval in the checkpoint's bf16 = the best validation top-1");
    assert!((eval(&["--precision", "f32"]) - best_top1).abs() < 0.1, "f32 evaluates the same weights");

    let f16 = [&common[..], &["--epochs", "3", "--precision", "f16", "--seed", "3"]].concat();
    let whole = dir.join("whole");
    ok(&archc(&[&f16[..], &["--out", whole.to_str().unwrap()]].concat()));
    let parts = dir.join("parts");
    ok(&archc(&[&f16[..], &["--out", parts.to_str().unwrap(), "--stop-after", "1"]].concat()));
    let text = ok(&archc(&["train", "--resume", parts.to_str().unwrap()]));
    assert!(text.contains("f16 loss scale"), "{text}");
    assert_eq!(metrics_without_timing(&whole), metrics_without_timing(&parts));
    let scaler = |run: &Path| {
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
        state["loss_scale"].clone()
    };
    assert!(scaler(&whole)["scale"].as_f64().unwrap() > 0.0, "{}", scaler(&whole));
    assert_eq!(scaler(&whole), scaler(&parts));
}

/// Where a run computes is checked before any data is read or a directory made.
#[test]
fn devices_and_precisions_are_checked_before_training() {
    let dir = scratch("devices");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let run = dir.join("run");
    let base =
        ["train", &model, "--data", "mnist", "--data-dir", dir.to_str().unwrap(), "--out", run.to_str().unwrap()];
    let cases: &[(&[&str], &str)] = &[
        (&["--precision", "bf16", "--backend", "ndarray"], "the ndarray backend cannot compute in bf16"),
        (&["--devices", "cuda:0,cuda:1"], "--devices cuda:0,cuda:1 names GPUs: add --backend cuda"),
        (&["--devices", "cpu,gpu"], "`gpu` is not a device"),
        (&["--devices", "cpu,,cpu"], "an entry is empty"),
        (&["--backend", "cuda", "--devices", "cuda:1,cuda:1"], "cuda:1 is listed twice"),
        (&["--backend", "cuda", "--devices", "cpu"], "`cpu` is not a CUDA device"),
    ];
    for (extra, message) in cases {
        let out = archc(&[&base[..], extra].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {err}");
        assert!(err.contains(message), "{extra:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{extra:?}: {err}");
        assert!(!run.exists(), "{extra:?} made a run directory");
    }
    // Without NVIDIA's driver, the CUDA backend is one line too, not Burn's panic.
    if !Path::new("/proc/driver/nvidia").exists() {
        let out = archc(&[&base[..], &["--backend", "cuda"]].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("needs NVIDIA's driver"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
    }
}
