//! `archc bench`: real measurements in the documented schema, and the side-by-side
//! comparison with a reference report.

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).output().expect("archc runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Forward FLOPs per image, from `archc flops` (the static cost the bench divides by).
fn forward_flops(model: &str) -> f64 {
    let out = archc(&["flops", model, "--format", "json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["flops"].as_str().map(|s| s.parse().unwrap()).or(report["flops"].as_f64()).unwrap()
}

const QUICK: &[&str] = &["--iters", "3", "--warmup", "1", "--threads", "1"];

fn bench(args: &[&str]) -> Output {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(QUICK);
    archc(&all)
}

#[test]
fn json_report_follows_the_schema_and_its_numbers_agree() {
    let file = scratch("lenet5.json");
    let out = bench(&["models/lenet5.arch", "--batch", "1,4", "--format", "json", "--out", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(report, written, "--out writes the same report");
    assert_eq!(report["schema"], "archc-bench/1");
    assert!(report["tool"].as_str().unwrap().starts_with("archc "));
    assert_eq!(report["date"].as_str().unwrap().len(), 10);

    let results = report["results"].as_array().unwrap();
    let cases: Vec<(String, u64)> =
        results.iter().map(|r| (r["mode"].as_str().unwrap().to_string(), r["batch"].as_u64().unwrap())).collect();
    let expected = [("infer", 1), ("infer", 4), ("train", 1), ("train", 4)].map(|(m, b)| (m.to_string(), b));
    assert_eq!(cases, expected);

    let flops = forward_flops("models/lenet5.arch");
    for r in results {
        let mut keys: Vec<&str> = r.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "backend",
                "batch",
                "device",
                "gflops_achieved",
                "images_per_s",
                "latency_ms",
                "mode",
                "model",
                "peak_bytes",
                "threads"
            ]
        );
        assert_eq!(r["model"], "lenet5");
        assert_eq!(r["backend"], "flex");
        assert_eq!(r["device"], "cpu");
        assert_eq!(r["threads"], 1);
        let (median, p90) = (r["latency_ms"]["median"].as_f64().unwrap(), r["latency_ms"]["p90"].as_f64().unwrap());
        assert!(median > 0.0 && p90 >= median, "{r}");
        let batch = r["batch"].as_f64().unwrap();
        let images_per_s = r["images_per_s"].as_f64().unwrap();
        assert!((images_per_s - batch / (median / 1e3)).abs() < 1e-6 * images_per_s, "{r}");
        let factor = if r["mode"] == "train" { 3.0 } else { 1.0 };
        let gflops = r["gflops_achieved"].as_f64().unwrap();
        assert!((gflops - flops * factor * images_per_s / 1e9).abs() < 1e-6 * gflops.max(1e-9), "{r}");
        if cfg!(target_os = "linux") {
            assert!(r["peak_bytes"].is_u64(), "Linux reports resident memory: {r}");
        }
    }
}

#[test]
fn table_shows_the_static_cost_beside_the_measurement() {
    let out = bench(&["models/lenet5.arch", "--batch", "2", "--mode", "infer"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("lenet5 on flex (cpu, 1 thread); input image(1, 28, 28)"), "{table}");
    assert!(table.contains("median ms") && table.contains("static estimate"), "{table}");
    let rows: Vec<&str> = table.lines().filter(|l| l.starts_with("infer")).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(!table.lines().any(|l| l.starts_with("train")), "--mode infer measures inference only: {table}");
}

fn reference(images_per_s: f64) -> String {
    format!(
        r#"{{"schema": "archc-bench/1", "tool": "pytorch 2.15.0", "date": "2026-11-23", "machine": "test",
            "results": [{{"model": "lenet5", "backend": "pytorch", "device": "cpu", "threads": 1, "batch": 2,
            "mode": "infer", "latency_ms": {{"median": 1.0, "p90": 1.5}}, "images_per_s": {images_per_s},
            "gflops_achieved": 1.0, "peak_bytes": null}}]}}"#
    )
}

#[test]
fn compare_puts_the_reference_beside_with_the_ratio() {
    let file = scratch("reference.json");
    std::fs::write(&file, reference(1000.0)).unwrap();
    let ours = scratch("ours.json");
    let out = bench(&[
        "models/lenet5.arch",
        "--batch",
        "2,3",
        "--mode",
        "infer",
        "--compare",
        file.to_str().unwrap(),
        "--out",
        ours.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    assert!(table.contains("compared with pytorch 2.15.0"), "{table}");
    assert!(table.contains("pytorch img/s") && table.contains("ratio"), "{table}");
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&ours).unwrap()).unwrap();
    let measured = report["results"][0]["images_per_s"].as_f64().unwrap();
    let ratio = format!("{:.2}x", measured / 1000.0);
    let row = table.lines().rev().find(|l| l.starts_with("infer") && l.split_whitespace().nth(1) == Some("2")).unwrap();
    assert!(row.contains(&ratio) && row.contains("1000"), "expected {ratio} in `{row}`");
    // Batch 3 has no twin in the reference: its cells say so rather than guess.
    let row = table.lines().rev().find(|l| l.starts_with("infer") && l.split_whitespace().nth(1) == Some("3")).unwrap();
    assert!(row.split_whitespace().filter(|c| *c == "-").count() >= 3, "{row}");
}

#[test]
fn a_bad_reference_fails_before_measuring_with_one_line() {
    let damaged = scratch("damaged.json");
    std::fs::write(&damaged, "{\"schema\": \"archc-bench/1\", \"results\": [").unwrap();
    let other = scratch("other-schema.json");
    std::fs::write(&other, reference(1.0).replace("archc-bench/1", "archc-bench/0")).unwrap();
    for (path, words) in [
        ("bench/nope.json".to_string(), "cannot read"),
        (damaged.display().to_string(), "is not a bench report"),
        (other.display().to_string(), "has schema `archc-bench/0`"),
    ] {
        let started = std::time::Instant::now();
        let out = bench(&["models/resnet50.arch", "--compare", &path]);
        assert_eq!(out.status.code(), Some(1));
        let err = text(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(&path) && err.contains(words), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // ResNet-50 at batch 128 would take minutes: the error must come first.
        assert!(started.elapsed().as_secs() < 30);
    }
}

#[test]
fn a_reference_without_the_model_warns_and_names_what_it_has() {
    let file = scratch("lenet-only.json");
    std::fs::write(&file, reference(10.0)).unwrap();
    let out = bench(&[
        "tests/fixtures/lowering/tiny_resnet.arch",
        "--batch",
        "1",
        "--mode",
        "infer",
        "--compare",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("has no results for") && err.contains("(it has: lenet5)"), "{err}");
}

#[test]
fn bad_arguments_and_models_exit_nonzero() {
    assert_eq!(archc(&["bench", "models/lenet5.arch", "--batch", "0"]).status.code(), Some(2));
    assert_eq!(archc(&["bench", "models/lenet5.arch", "--iters", "0"]).status.code(), Some(2));
    assert_eq!(archc(&["bench", "models/lenet5.arch", "--mode", "fast"]).status.code(), Some(2));
    let out = archc(&["bench", "tests/ui/E0009_residual_identity_mismatch.arch"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("error[E0009]"));
}
