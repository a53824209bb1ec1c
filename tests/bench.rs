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
    let started = std::time::Instant::now();
    let out = bench(&["models/lenet5.arch", "--batch", "1,4", "--format", "json", "--out", file.to_str().unwrap()]);
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
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
    // LeNet-5's 416,520 MACs per image: the README's zoo table, which PyTorch's counter checks.
    assert_eq!(flops, 2.0 * 416_520.0);
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
    // Against clocks archc does not read: the timed iterations (3 per case) fit in the
    // command's wall time, and no rate exceeds what one core can do (a few tens of
    // GFLOP/s; 500 would take a latency read in the wrong unit).
    let timed: f64 = results.iter().map(|r| 3.0 * r["latency_ms"]["median"].as_f64().unwrap()).sum();
    assert!(timed < wall_ms, "{timed} ms of timed iterations in a {wall_ms} ms run");
    for r in results {
        assert!(r["gflops_achieved"].as_f64().unwrap() < 500.0, "one thread: {r}");
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

/// `model name` from /proc/cpuinfo, where the kernel lists one.
fn cpu_model_name() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("model name"))?;
    Some(line.split_once(':')?.1.trim().to_string())
}

fn utc_date() -> String {
    let out = Command::new("date").args(["-u", "+%F"]).output().expect("date runs");
    text(&out.stdout).trim().to_string()
}

/// The report's top level has exactly the schema's fields, each with a value that can
/// be checked from outside archc: the version, today's date, the CPU and core count.
#[test]
fn json_report_names_the_tool_the_date_and_the_machine() {
    let before = utc_date();
    let out = archc(&[
        "bench",
        "models/lenet5.arch",
        "--batch",
        "1",
        "--mode",
        "infer",
        "--iters",
        "2",
        "--warmup",
        "0",
        "--threads",
        "2",
        "--format",
        "json",
    ]);
    let after = utc_date();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is the JSON report");
    let mut keys: Vec<&str> = report.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["date", "machine", "results", "schema", "tool"]);
    assert_eq!(report["schema"], "archc-bench/1");
    assert_eq!(report["tool"], format!("archc {}", env!("CARGO_PKG_VERSION")));
    let date = report["date"].as_str().unwrap();
    assert!(date == before || date == after, "{date}, not today ({before})");
    let cores = std::thread::available_parallelism().unwrap().get();
    let machine = report["machine"].as_str().unwrap();
    match cpu_model_name() {
        Some(cpu) => assert_eq!(machine, format!("{cpu} ({cores} cores)")),
        None => assert_eq!(machine, format!("{} ({cores} cores)", std::env::consts::ARCH)),
    }
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r["threads"], 2, "--threads sizes the pool and the report says so");
    let mut latency: Vec<&str> = r["latency_ms"].as_object().unwrap().keys().map(String::as_str).collect();
    latency.sort();
    assert_eq!(latency, ["median", "p90"]);
    assert_eq!(
        (r["model"].as_str(), r["mode"].as_str(), r["batch"].as_u64()),
        (Some("lenet5"), Some("infer"), Some(1))
    );
}

/// `--precision bf16` (and f16) on burn-flex, which emulates them: the runs happen and
/// the report names the precision in `backend`; a backend without the precision is a
/// one-line error before anything is measured.
#[test]
fn precision_runs_on_flex_and_is_refused_where_the_backend_lacks_it() {
    for (precision, backend) in [("bf16", "flex-bf16"), ("f16", "flex-f16"), ("f32", "flex")] {
        let out = bench(&["models/lenet5.arch", "--batch", "2", "--precision", precision, "--format", "json"]);
        assert_eq!(out.status.code(), Some(0), "{precision}: {}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let results = report["results"].as_array().unwrap();
        assert_eq!(results.len(), 2, "infer and train");
        for r in results {
            assert_eq!(r["backend"], backend, "{r}");
            assert!(r["latency_ms"]["median"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    let table = text(&bench(&["models/lenet5.arch", "--batch", "2", "--mode", "infer", "--precision", "bf16"]).stdout);
    assert!(table.contains("lenet5 on flex-bf16 (cpu, 1 thread)"), "{table}");

    let started = std::time::Instant::now();
    let out = bench(&["models/resnet50.arch", "--backend", "ndarray", "--precision", "f16"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("the ndarray backend cannot compute in f16"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(started.elapsed().as_secs() < 30, "refused before measuring ResNet-50");
}
