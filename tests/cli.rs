//! The `archc` binary as users run it: exit codes, output formats, one-line errors.

use std::process::{Command, Output};

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).output().expect("archc runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_prints_a_summary_line_and_exits_zero() {
    let out = archc(&["check", "models/resnet18.arch", "models/lenet5.arch"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("resnet18: image(3, 224, 224) → vector(1000), 11,689,512 params"), "{text}");
    assert!(text.contains("lenet5: image(1, 28, 28) → vector(10), 61,706 params"), "{text}");
}

#[test]
fn check_exits_one_on_errors_and_renders_them() {
    let out = archc(&["check", "tests/ui/E0009_residual_identity_mismatch.arch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("error[E0009]"), "{err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{err}");
}

#[test]
fn warnings_alone_exit_zero() {
    let out = archc(&["check", "tests/ui/W0001_bias_before_batchnorm.arch"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("warning[W0001]"));
}

#[test]
fn usage_errors_exit_two() {
    assert_eq!(archc(&["check"]).status.code(), Some(2));
    assert_eq!(archc(&["check", "models/resnet18.arch", "--input", "3x0x32"]).status.code(), Some(2));
    assert_eq!(archc(&["check", "models/resnet18.arch", "--format", "xml"]).status.code(), Some(2));
    assert_eq!(archc(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn missing_file_is_a_one_line_error() {
    let out = archc(&["check", "models/nope.arch"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("models/nope.arch") && err.contains("no such file"), "{err}");
}

#[test]
fn input_override_changes_shapes() {
    let out = archc(&["check", "models/resnet18.arch", "--input", "3x32x32", "--trace", "--allow", "tiny_input_stem"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("layer4.1.conv2") && text.contains("image(512, 1, 1)"), "{text}");
    assert!(stderr(&out).is_empty(), "the lint was allowed");
}

#[test]
fn json_has_the_documented_fields() {
    let out =
        archc(&["check", "--format", "json", "models/resnet50_cbam.arch", "tests/ui/E0014_heads_do_not_divide.arch"]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["model"], "resnet50_cbam");
    assert_eq!(lines[0]["params"], 28_073_576);
    assert_eq!(lines[0]["output"], serde_json::json!([1000]));
    assert_eq!(lines[0]["errors"], serde_json::json!([]));
    let error = &lines[1]["errors"][0];
    assert_eq!(error["code"], "E0014");
    assert_eq!(error["line"], 4);
    assert_eq!(error["column"], 5);
    assert!(error["file"].as_str().unwrap().ends_with("E0014_heads_do_not_divide.arch"));
    assert!(error["message"].as_str().unwrap().contains("heads"));
}

#[test]
fn ir_dump_and_explain() {
    let out = archc(&["ir", "models/lenet5.arch"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).starts_with("network lenet5: image(1, 28, 28) -> vector(10) {"));
    let out = archc(&["explain", "E0009"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("shortcut"));
    // An unknown code is a usage mistake, like clap's.
    assert_eq!(archc(&["explain", "E9999"]).status.code(), Some(2));
}

#[test]
fn flops_json_and_comparison() {
    let out = archc(&["flops", "--format", "json", "--input", "3x32x32", "models/resnet18_cifar.arch"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    for key in ["model", "params", "macs", "flops", "convention", "input", "layers"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    assert_eq!(v["macs"], 555_422_720u64);
    assert_eq!(v["flops"], 1_110_845_440u64);
    assert_eq!(v["layers"][0]["name"], "conv1");
    let out = archc(&["flops", "--by", "stage", "models/resnet50.arch", "models/resnet50_se.arch"]);
    assert!(stdout(&out).contains("differences from resnet50"));
    let out = archc(&["flops", "--batch", "0", "models/resnet50.arch"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn set_gives_network_arguments_on_the_command_line() {
    let out = archc(&["check", "models/plain20.arch", "--set", "classes=100", "--set", "skip=true"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("plain20: image(3, 32, 32) → vector(100)"), "{}", stdout(&out));
    // An unknown name, a value of the wrong type and one that does not parse: each is a
    // diagnostic pointing into the `--set` text, and nothing cascades from it.
    let cases = [
        ("skp=true", "network `plain20` has no parameter `skp`", "did you mean `skip`?"),
        ("classes=true", "`classes` must be an integer, but this is a bool", "--set classes=64"),
        ("skip=1+", "`1+` is not a value for `skip`", "--set:1:6"),
    ];
    for (setting, message, detail) in cases {
        let out = archc(&["check", "models/plain20.arch", "--set", setting]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{setting}: {err}");
        assert!(err.contains(message) && err.contains(detail), "{setting}: {err}");
        assert_eq!(err.matches("error[").count(), 1, "{setting}: one error only\n{err}");
    }
    // The same name twice: which would count is not obvious.
    let out = archc(&["check", "models/plain20.arch", "--set", "skip=true", "--set", "skip=false"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`skip` is set twice") && stderr(&out).contains("first set here"),
        "{}",
        stderr(&out)
    );
    assert_eq!(archc(&["check", "models/plain20.arch", "--set", "skip"]).status.code(), Some(2));
    assert_eq!(archc(&["check", "models/plain20.arch", "--set", "2x=1"]).status.code(), Some(2));
}

/// Line and column (1-based, in characters) where `needle` first starts in `text`,
/// counted here, apart from archc's own span arithmetic.
fn line_column(text: &str, needle: &str) -> (u64, u64) {
    let offset = text.find(needle).unwrap();
    let before = &text[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before.rsplit('\n').next().unwrap().chars().count() as u64 + 1;
    (line, column)
}

fn sorted_keys(value: &serde_json::Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    keys
}

const LINE_KEYS: [&str; 7] = ["errors", "file", "input", "model", "output", "params", "warnings"];
const DIAGNOSTIC_KEYS: [&str; 10] =
    ["code", "column", "file", "help", "label", "line", "message", "notes", "related", "severity"];

/// One line per network with exactly the README's fields, and every diagnostic with
/// exactly its fields, each value checked: one file with an error, one with a warning,
/// and one that cannot be read.
#[test]
fn check_json_gives_every_documented_field_and_no_other() {
    let dir = std::env::temp_dir().join(format!("archc-cli-json-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A comment line and a blank one first, so that line and column are not 1.
    let broken = "# `fc` reads an image\n\nnetwork broken(classes: int = 10) {\n    input image(3, 32, 32)\n    conv1:   conv(16, kernel: 3, padding: 1)\n             relu\n    avgpool: global_avgpool\n      fc:    linear(classes)\n}\n";
    let warned = "network warned {\n    input image(3, 32, 32)\n    stem: { conv1: conv(16, kernel: 3, padding: 1)\n            bn1: batchnorm }\n          relu\n}\n";
    let (broken_path, warned_path) = (dir.join("broken.arch"), dir.join("warned.arch"));
    std::fs::write(&broken_path, broken).unwrap();
    std::fs::write(&warned_path, warned).unwrap();
    let missing_path = dir.join("missing.arch");
    let paths = [&broken_path, &warned_path, &missing_path].map(|p| p.to_str().unwrap().to_string());

    let out = archc(&["check", "--format", "json", &paths[0], &paths[1], &paths[2]]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).is_empty(), "JSON goes to stdout only: {}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3, "{}", stdout(&out));
    for line in &lines {
        assert_eq!(sorted_keys(line), LINE_KEYS, "{line}");
        for diagnostic in line["errors"].as_array().unwrap().iter().chain(line["warnings"].as_array().unwrap()) {
            assert_eq!(sorted_keys(diagnostic), DIAGNOSTIC_KEYS, "{diagnostic}");
        }
    }

    let (line, column) = line_column(broken, "fc:");
    assert_eq!((line, column), (8, 7));
    assert_eq!(
        lines[0],
        serde_json::json!({
            "file": paths[0], "model": "broken", "params": null, "input": null, "output": null,
            "errors": [{
                "code": "E0011", "severity": "error",
                "message": "`linear` expects a vector, but its input is image(16, 1, 1)",
                "label": "this gets image(16, 1, 1)",
                "file": paths[0], "line": line, "column": column,
                "help": "add `flatten` before it (or `global_avgpool` then `flatten`)",
                "notes": ["in `fc`, whose input is image(16, 1, 1)"],
                "related": [],
            }],
            "warnings": [],
        })
    );

    // conv1: 16·3·3·3 weights + 16 biases; bn1: 16 scales + 16 shifts.
    let params = 16 * 3 * 3 * 3 + 16 + 16 + 16;
    let (line, column) = line_column(warned, "conv1:");
    assert_eq!((line, column), (3, 13));
    assert_eq!(
        lines[1],
        serde_json::json!({
            "file": paths[1], "model": "warned", "params": params, "input": [3, 32, 32], "output": [16, 32, 32],
            "errors": [],
            "warnings": [{
                "code": "W0001", "severity": "warning",
                "message": "`stem.conv1` has a bias that the batch norm after it cancels",
                "label": "16 bias parameters that do nothing",
                "file": paths[1], "line": line, "column": column,
                "help": "write `bias: false` on the convolution",
                "notes": [],
                "related": [{"message": "this batch norm subtracts the mean", "file": paths[1], "line": 4, "column": 13}],
            }],
        })
    );

    // A file that cannot be read is a line of the same form, its error at line 0.
    assert_eq!(
        lines[2],
        serde_json::json!({
            "file": paths[2], "model": null, "params": null, "input": null, "output": null,
            "errors": [{
                "code": "io", "severity": "error",
                "message": format!("cannot read `{}`: no such file", paths[2]),
                "label": "", "file": paths[2], "line": 0, "column": 0, "help": null, "notes": [], "related": [],
            }],
            "warnings": [],
        })
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// With errors, `--trace` shows the layers as far as checking got: every failure
/// marked with its code and the shape checking went on with.
#[test]
fn trace_of_a_file_with_errors_shows_how_far_checking_got() {
    let out = archc(&["check", "--trace", "tests/ui/multi_shape_mistakes.arch"]);
    assert_eq!(out.status.code(), Some(1));
    insta::with_settings!({ snapshot_path => "../snapshots/check", prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("trace_with_errors", stdout(&out));
    });
    let out = archc(&["check", "--trace", "tests/ui/multi_residual_in_every_stage.arch"]);
    let text = stdout(&out);
    assert!(text.contains("layer1.0.(residual)") && text.contains("✗ E0009"), "{text}");
    assert!(text.contains("fc") && text.contains("✗ E0010"), "{text}");
}

#[test]
fn flops_sweep_prints_one_row_per_value_and_a_csv() {
    let out = archc(&["flops", "models/resnet.arch", "--sweep", "width=0.5,1,2", "--format", "csv"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "variant,params,macs,forward_activation_bytes,train_sgd_momentum_bytes,params_ratio,macs_ratio"
    );
    assert_eq!(lines.len(), 4, "{text}");
    // Width 1 is the network as written: ResNet-50's counts, ratio 1.
    assert_eq!(
        lines[2],
        format!("resnet width=1,25557032,4089184256,{},{},1.000000,1.000000", field(lines[2], 3), field(lines[2], 4))
    );
    let macs = |line: &str| field(line, 2).parse::<f64>().unwrap();
    assert!(macs(lines[3]) / macs(lines[2]) > 3.5 && macs(lines[1]) / macs(lines[2]) < 0.3, "about quadratic: {text}");
    // --plot draws against one numeric sweep.
    let two =
        archc(&["flops", "models/resnet.arch", "--sweep", "width=1,2", "--sweep", "depth=18,34", "--plot", "x.png"]);
    assert_eq!(two.status.code(), Some(2), "{}", stderr(&two));
    assert!(
        stderr(&two).contains("--plot draws cost against one swept parameter, but 2 are swept"),
        "{}",
        stderr(&two)
    );
}

fn field(line: &str, index: usize) -> &str {
    line.split(',').nth(index).unwrap_or_default()
}

#[test]
fn a_set_value_that_uses_its_own_parameter_is_an_error() {
    let out = archc(&["check", "models/resnet20.arch", "--set", "classes=classes + 1"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("the value of `classes` uses `classes`, which has no value yet"), "{}", stderr(&out));
}
