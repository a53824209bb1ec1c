//! `archc train` and `archc eval` on datasets the tests make themselves: IDX (plain and
//! gzipped), CIFAR binary and ImageFolder; corrupt files; `archc compare` and its report;
//! data-parallel replicas train as one device does; bf16 and f16 runs record their
//! precision, evaluate in it and scale f16's loss. `fashion_mnist_end_to_end` trains
//! LeNet-5 on the real Fashion-MNIST (Debian's dataset-fashion-mnist, installed by
//! .ci/run). Interruptions, divergence and failed writes are in tests/faults.rs.

use std::path::{Path, PathBuf};
use support::runs::{TINY, archc, images, metric_values, metrics_without_timing, ok, tiny_model, write_mnist};
use support::{Scratch, assert_png, masked};

mod support;

fn scratch(name: &str) -> Scratch {
    Scratch::new("train", name)
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
        assert_png(&run.join("confusion.png"), (660, 690));
    }
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
    // The file that is not an image is named as skipped.
    let notes = folder.join("cats").join("notes.txt");
    assert!(text.contains(&format!("warning: skipped `{}`: it is not a PNG or JPEG image", notes.display())), "{text}");

    // A training class without images is an error naming its folder.
    std::fs::create_dir_all(folder.join("birds")).unwrap();
    let out = archc(&[
        "train",
        model.to_str().unwrap(),
        "--data",
        folder.to_str().unwrap(),
        "--out",
        folder.join("run2").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("class folder `{}` has no PNG or JPEG images", folder.join("birds").display())),
        "{err}"
    );
}

/// Ignored where Debian's dataset-fashion-mnist is not installed (build.rs decides), so
/// the summary says so; in CI it always runs and a missing dataset fails it.
#[test]
#[cfg_attr(not(fashion_mnist), ignore = "needs Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)")]
fn fashion_mnist_end_to_end() {
    let data = Path::new("/usr/share/datasets/fashion-mnist");
    assert!(data.exists(), "CI installs Debian's dataset-fashion-mnist, but {} is missing", data.display());
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
    // Each run is told as `archc train` tells it: its first line, its epochs, its end.
    let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
    assert_eq!(count("== training "), 8, "{text}");
    assert_eq!(count("training "), 8, "{text}");
    assert_eq!(count("epoch "), 16, "{text}");
    assert_eq!(count("best validation top-1 "), 8, "{text}");
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
    check_report_numbers(&md, rows);
    // The command line names this run's temporary directory.
    let md: String = md.lines().filter(|l| !l.starts_with("Produced by")).collect::<Vec<_>>().join("\n");
    insta::with_settings!({ snapshot_path => "../snapshots/compare", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("compare_report", masked(&md));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The numbers of a compare report (the snapshot masks them) against what they come
/// from: the command's arguments, each run's metrics.csv, results.json's measurements,
/// and the tiny models' parameter and MAC counts worked out by hand.
fn check_report_numbers(md: &str, rows: &[serde_json::Value]) {
    for phrase in [
        "trained for 2 epochs with sgd (learning rate 0.05, cosine schedule, weight decay 0.0005, batch 16, no \
         augmentation, seed 0) on the `flex` backend, 2 threads",
        "measured on the 50 images of the test set",
        "median of 2 eval-mode forward passes",
    ] {
        assert!(md.contains(phrase), "`{phrase}` in\n{md}");
    }
    let table: Vec<Vec<String>> = md
        .lines()
        .skip_while(|l| !l.starts_with("## Results"))
        .filter(|l| l.starts_with("| ") && !l.starts_with("|-"))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
        .take_while(|cells: &Vec<String>| cells.len() == 12)
        .collect();
    assert_eq!(table.len(), rows.len() + 1, "a header and one row per run:\n{md}");
    for (cells, row) in table[1..].iter().zip(rows) {
        let run = PathBuf::from(row["run"].as_str().unwrap());
        let epochs: Vec<Vec<f64>> = std::fs::read_to_string(run.join("metrics.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
            .collect();
        let last = epochs.last().unwrap();
        let width: f64 = row["model"].as_str().unwrap().rsplit('=').next().unwrap().parse().unwrap();
        let close = |cell: &str, value: f64, within: f64| {
            let shown = number(cell);
            assert!((shown - value).abs() <= within, "{}: `{cell}` shows {shown}, expected {value}", row["model"]);
        };
        assert_eq!(cells[0], row["model"].as_str().unwrap());
        close(&cells[1], row["train_images"].as_f64().unwrap(), 0.0);
        // 3×3 convolution (9 weights per channel), batch norm (2), classifier (10 + 10).
        let params = width * 9.0 + 2.0 * width + width * 10.0 + 10.0;
        close(&cells[2], params, 0.005 * params);
        // The convolution over 8×8 positions, the classifier's 10 per channel.
        let macs = width * 9.0 * 64.0 + width * 10.0;
        close(&cells[3], macs, 0.005 * macs);
        // Accuracies: the last epoch's (top-1, top-5) and the best epoch's top-1.
        close(&cells[4], 100.0 * last[4], 0.005);
        close(&cells[5], 100.0 * last[5], 0.005);
        close(&cells[6], 100.0 * epochs.iter().map(|e| e[4]).fold(0.0, f64::max), 0.005);
        // The whole run's time and the mean training throughput of its epochs.
        let seconds: f64 = epochs.iter().map(|e| e[7]).sum();
        close(&cells[7], seconds, if seconds < 10.0 { 0.051 } else { 0.51 });
        close(&cells[8], epochs.iter().map(|e| e[8]).sum::<f64>() / epochs.len() as f64, 0.1);
        for (k, latency) in row["latency_ms"].as_array().unwrap().iter().enumerate() {
            close(&cells[9 + k], latency[1].as_f64().unwrap(), 0.005);
        }
        match row["train_peak_bytes"].as_f64() {
            Some(bytes) => close(&cells[11], bytes, 0.005 * bytes),
            None => assert_eq!(cells[11], "-"),
        }
    }
}

/// A table cell as a number: `1,234`, `84.00%`, `1.2 s`, `0.51 ms`, `4.33 K`, `24.8 MB`.
fn number(cell: &str) -> f64 {
    let cell = cell.trim_end_matches(['%', 's', 'B']).trim_end_matches(" m").trim();
    let (digits, scale) = match cell.rsplit_once(' ') {
        Some((digits, "K")) => (digits, 1e3),
        Some((digits, "M")) => (digits, 1e6),
        Some((digits, "G")) => (digits, 1e9),
        _ => (cell, 1.0),
    };
    digits.replace(',', "").trim().parse::<f64>().unwrap_or_else(|_| panic!("`{cell}` is not a number")) * scale
}

#[test]
fn compare_refuses_bad_arguments_before_training() {
    let dir = scratch("compare-refuses");
    write_mnist(&dir, false);
    let tiny = tiny_model(&dir);
    let data_dir = dir.to_str().unwrap();
    let out = archc(&["compare", &tiny, "models/resnet20.arch", "--data", "mnist", "--data-dir", data_dir]);
    // Data that does not fit a model is found before anything is measured or trained.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("--input 1x8x8") && !err.contains("panicked"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("=="), "nothing measured or trained first");
    // Settings that contradict each other are usage errors (exit 2); a missing file or
    // a device the machine lacks is 1.
    let cases: &[(&[&str], &str, i32)] = &[
        (&["compare", "models/lenet5.arch", "models/nope.arch", "--data", "mnist"], "models/nope.arch", 1),
        (&["compare", "models/lenet5.arch", "--data", "mnist", "--bench-iters", "0"], "--bench-iters", 2),
        (&["compare", "models/lenet5.arch", "--data", "mnist", "--epochs", "0"], "--epochs must be at least 1", 2),
        (&["compare", "models/lenet5.arch", "models/lenet5.arch", "--data", "fashion-mnist"], "given twice", 2),
        (
            &["compare", "models/lenet5.arch", "--data", "fashion-mnist", "--subset", "10,10"],
            "--subset 10 is given twice",
            2,
        ),
        // A precision the backend lacks and devices it does not have are found first too.
        (
            &["compare", "models/lenet5.arch", "--data", "mnist", "--backend", "ndarray", "--precision", "f16"],
            "the ndarray backend cannot compute in f16",
            1,
        ),
        (&["compare", "models/lenet5.arch", "--data", "mnist", "--devices", "cuda:0"], "add --backend cuda", 1),
    ];
    for (args, expected, code) in cases {
        let out = archc(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
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
    assert!(err.contains("was trained with --set classes=10, but is used here with no --set"), "{err}");
    ok(&eval(&["--set", "classes=10"]));
    // A resumed run keeps its network; another --set is refused.
    let out = archc(&["train", "--resume", run.to_str().unwrap(), "--set", "classes=12"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("a resumed run keeps the network arguments it started with"));
    let _ = std::fs::remove_dir_all(&dir);
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
    // The best epoch (the first with the highest validation top-1) is the checkpoint.
    let epochs = metric_values(&run);
    let best_epoch = epochs.iter().fold(epochs[0], |b, m| if m[3] > b[3] { *m } else { b });
    let eval = |extra: &[&str]| {
        let args =
            ["eval", &model, "--weights", best.to_str().unwrap(), "--data", "mnist", "--data-dir", &data_dir, "--json"];
        let out = ok(&archc(&[&args[..], extra].concat()));
        let v = serde_json::from_str::<serde_json::Value>(out.lines().next().unwrap()).unwrap();
        (v["loss"].as_f64().unwrap(), v["top1"].as_f64().unwrap())
    };
    // In the checkpoint's bf16, eval measures what validation measured (metrics.csv
    // keeps six decimals).
    let (bf16_loss, bf16_top1) = eval(&[]);
    assert!((bf16_top1 - best_epoch[3]).abs() < 1e-9, "eval top-1 {bf16_top1} vs validation {best_epoch:?}");
    assert!((bf16_loss - best_epoch[2]).abs() < 1e-6, "eval loss {bf16_loss} vs validation {best_epoch:?}");
    // In f32 it measures what the same weights give in f32, computed here.
    let (f32_loss, f32_top1) = eval(&["--precision", "f32"]);
    let (own_loss, own_top1) = evaluate_in_f32(&model, &best, 50);
    assert!((f32_loss - own_loss).abs() < 1e-5 * own_loss, "eval --precision f32 loss {f32_loss} vs {own_loss}");
    assert!((f32_top1 - own_top1).abs() < 1e-9, "eval --precision f32 top-1 {f32_top1} vs {own_top1}");
    assert!((f32_loss - bf16_loss).abs() > 1e-5, "f32 ({f32_loss}) and bf16 ({bf16_loss}) differ: --precision is used");

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
    assert_eq!(scaler(&whole), scaler(&parts));
    // 3 epochs of 7 batches: too few for the scale to grow (2000 good steps), so it is
    // 65536 halved once per skipped step, and the good steps follow the last skip.
    let (scale, skipped, good) = scale_state(&whole);
    assert_eq!(scale * 2f64.powi(skipped as i32), 65536.0, "{}", scaler(&whole));
    assert!(good + skipped <= 21, "{}", scaler(&whole));
}

/// (scale, skipped steps, good steps since the last change) of an f16 run's scaler.
fn scale_state(run: &Path) -> (f64, u64, u64) {
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("state.json")).unwrap()).unwrap();
    let s = &state["loss_scale"];
    (s["scale"].as_f64().unwrap(), s["skipped"].as_u64().unwrap(), s["good_steps"].as_u64().unwrap())
}

/// Loss and top-1 of `weights` on the first `count` test images that `write_mnist`
/// writes, computed here in f32 (the lowered network, the checkpoint's normalisation,
/// a plain cross-entropy), independently of `archc eval`.
fn evaluate_in_f32(model: &str, weights: &Path, count: usize) -> (f64, f64) {
    use archc::lower::Network;
    use burn::backend::Flex;
    use burn::prelude::*;
    let text = std::fs::read_to_string(model).unwrap();
    let compiled = archc::elaborate::compile(
        &mut archc::source::Sources::new(),
        model,
        &text,
        &archc::elaborate::Options::default(),
    );
    let dict = archc::lower::weights::StateDict::read(weights).unwrap();
    let (mean, std) = dict.normalization(1).expect("archc's checkpoints carry the normalisation");
    let device = Default::default();
    let network = Network::<Flex>::new(&compiled.models[0], &device).load_state_dict(&dict).unwrap();
    let (pixels, labels) = images(count, 8, 1);
    let input: Vec<f32> = pixels.iter().map(|&p| (p as f32 / 255.0 - mean[0]) / std[0]).collect();
    let logits = network.logits(Tensor::from_data(TensorData::new(input, [count, 1, 8, 8]), &device));
    let rows = logits.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let (mut loss, mut hits) = (0f64, 0usize);
    for (row, &label) in rows.chunks(10).zip(&labels) {
        let top = row.iter().copied().fold(f32::MIN, f32::max) as f64;
        let log_sum = row.iter().map(|&v| (v as f64 - top).exp()).sum::<f64>().ln() + top;
        loss += log_sum - row[label as usize] as f64;
        let best = (0..10).fold(0, |b, i| if row[i] > row[b] { i } else { b });
        hits += usize::from(best == label as usize);
    }
    (loss / count as f64, hits as f64 / count as f64)
}

/// f16's loss scaling in real runs: a batch of one makes the scaled gradients
/// overflow f16, so steps are skipped (and the run goes on, finite); clipping sees the
/// unscaled gradients, so a bound no unscaled norm reaches changes nothing, and an
/// active one trains as f32 with the same bound does.
#[test]
fn f16_runs_skip_overflowing_steps_and_clip_unscaled_gradients() {
    let dir = scratch("f16");
    write_mnist(&dir, false);
    let model = tiny_model(&dir);
    let data_dir = dir.display().to_string();
    let base = ["train", &model, "--data", "mnist", "--data-dir", &data_dir, "--epochs", "1", "--seed", "2"];
    let skipping = dir.join("skipping");
    let text = ok(&archc(
        &[&base[..], &["--precision", "f16", "--batch", "1", "--subset", "60", "--out", skipping.to_str().unwrap()]]
            .concat(),
    ));
    let (scale, skipped, good) = scale_state(&skipping);
    assert!(skipped >= 1, "no step overflowed: {text}");
    assert_eq!(scale * 2f64.powi(skipped as i32), 65536.0);
    assert!(good + skipped <= 60);
    assert!(text.contains(&format!("f16 loss scale {scale} at the end; {skipped} step(s) skipped")), "{text}");
    assert!(metric_values(&skipping)[0].iter().all(|v| v.is_finite()));
    let weights = archc::lower::weights::StateDict::read(&skipping.join("last.safetensors")).unwrap();
    assert!(weights.tensors.values().all(|t| t.data.iter().all(|v| v.is_finite())), "skipped steps change nothing");

    let run = |name: &str, extra: &[&str]| {
        let out = dir.join(name);
        ok(&archc(&[&base[..], &["--batch", "32", "--out", out.to_str().unwrap()], extra].concat()));
        metric_values(&out)[0]
    };
    let plain = run("f16", &["--precision", "f16"]);
    let loose = run("f16-loose", &["--precision", "f16", "--clip-grad-norm", "100"]);
    assert_eq!(plain, loose, "a bound of 100 is far above the unscaled norms (but not the scaled ones)");
    let clipped = run("f16-clipped", &["--precision", "f16", "--clip-grad-norm", "0.05"]);
    assert_ne!(clipped, plain, "a bound of 0.05 clips");
    // The same seed starts both runs from the same weights: the clipped f16 run moves
    // them as the clipped f32 run does, up to f16's rounding.
    run("f32-clipped", &["--clip-grad-norm", "0.05"]);
    let start = dir.join("start");
    ok(&archc(&[&base[..], &["--batch", "32", "--lr", "0", "--out", start.to_str().unwrap()]].concat()));
    let weights = |run: &str| archc::lower::weights::StateDict::read(&dir.join(run).join("last.safetensors")).unwrap();
    let (initial, f16, f32) = (weights("start"), weights("f16-clipped"), weights("f32-clipped"));
    for (name, w0) in initial.tensors.iter().filter(|(n, _)| n.ends_with("weight") || n.ends_with("bias")) {
        let delta = |w: &archc::lower::weights::StateDict| -> Vec<f64> {
            w.tensors[name].data.iter().zip(&w0.data).map(|(a, b)| (a - b) as f64).collect()
        };
        let (a, e) = (delta(&f16), delta(&f32));
        let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
        let difference: Vec<f64> = a.iter().zip(&e).map(|(x, y)| x - y).collect();
        assert!(norm(&e) > 0.0, "{name} moved");
        assert!(norm(&difference) <= 0.05 * norm(&e), "{name}: f16 update {} vs f32 {}", norm(&a), norm(&e));
    }
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
