//! `archc diff`: snapshots of the labs' comparisons (ResNet-50 against its SE and CBAM
//! variants, ResNet-20 against plain-20, SE in two stages only); for every pair of zoo
//! models, the tensor lists are exactly the set differences by name and the counts add
//! up; a file against itself is identical; one file under two settings equals the two
//! single files; `--weights` reports what `archc train --init` would load; the JSON
//! output keeps its schema.

mod support;

use archc::diff::{self, Change, Side};
use archc::elaborate::{Options, compile};
use archc::ir::Model;
use archc::source::Sources;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output};

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).output().expect("archc runs")
}

fn stdout(args: &[&str]) -> String {
    let run = archc(args);
    assert!(run.status.success(), "archc {args:?}: {}", String::from_utf8_lossy(&run.stderr));
    String::from_utf8(run.stdout).unwrap()
}

fn snapshot(name: &str, args: &[&str]) {
    let text = stdout(args);
    insta::with_settings!({ snapshot_path => "../snapshots/diff", prepend_module_to_snapshot => false, description => args.join(" ") }, {
        insta::assert_snapshot!(name, text);
    });
}

#[test]
fn the_labs_comparisons_are_snapshots() {
    snapshot("resnet50_vs_resnet50_se", &["diff", "models/resnet50.arch", "models/resnet50_se.arch"]);
    snapshot("resnet50_vs_resnet50_cbam", &["diff", "models/resnet50.arch", "models/resnet50_cbam.arch"]);
    snapshot("resnet50_se_vs_resnet50_cbam", &["diff", "models/resnet50_se.arch", "models/resnet50_cbam.arch"]);
    snapshot("resnet20_vs_plain20", &["diff", "models/resnet20.arch", "models/plain20.arch"]);
    snapshot(
        "resnet50_vs_se_in_two_stages",
        &["diff", "models/resnet50.arch", "tests/fixtures/diff/resnet50_se_layer3_4.arch"],
    );
    snapshot("deepnet_depth_10_vs_20", &["diff", "models/deepnet.arch", "--set", "A:depth=10", "--set", "B:depth=20"]);
    snapshot(
        "resnet50_vs_resnet50_cbam_markdown",
        &["diff", "models/resnet50.arch", "models/resnet50_cbam.arch", "--format", "markdown"],
    );
}

fn compile_with(path: &str, set: &[(&str, &str)]) -> Model {
    let text = std::fs::read_to_string(path).unwrap();
    let mut sources = Sources::new();
    let options =
        Options { set: set.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(), ..Options::default() };
    let result = compile(&mut sources, path, &text, &options);
    assert!(!result.has_errors(), "{path} does not compile");
    result.models.into_iter().next().unwrap()
}

fn side(path: &str, model: &Model) -> Side {
    Side { file: path.into(), model: model.name.clone(), input: model.input, settings: Vec::new() }
}

fn compare(a: (&str, &Model), b: (&str, &Model)) -> diff::Diff {
    diff::compare((a.1, side(a.0, a.1)), (b.1, side(b.0, b.1)), 1)
}

/// Tensors by name (BatchNorm's counters left out, as `--init` leaves them).
fn by_name(model: &Model) -> BTreeMap<String, Vec<u64>> {
    model
        .tensors()
        .into_iter()
        .filter(|t| !t.name.ends_with("num_batches_tracked"))
        .map(|t| (t.name, t.shape))
        .collect()
}

#[test]
fn for_every_pair_of_zoo_models_the_tensor_lists_are_the_set_differences() {
    let mut paths: Vec<String> = std::fs::read_dir("models")
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().to_string())
        .filter(|p| p.ends_with(".arch"))
        .collect();
    paths.sort();
    let models: Vec<(String, Model)> = paths.iter().map(|p| (p.clone(), compile_with(p, &[]))).collect();
    for (path_a, a) in &models {
        for (path_b, b) in &models {
            let d = compare((path_a, a), (path_b, b));
            let (ta, tb) = (by_name(a), by_name(b));
            let names = |list: &[archc::lower::transfer::NamedShape]| {
                list.iter().map(|t| t.name.clone()).collect::<BTreeSet<_>>()
            };
            let added: BTreeSet<String> = tb.keys().filter(|n| !ta.contains_key(*n)).cloned().collect();
            let removed: BTreeSet<String> = ta.keys().filter(|n| !tb.contains_key(*n)).cloned().collect();
            let reshaped: BTreeSet<String> =
                tb.iter().filter(|(n, s)| ta.get(*n).is_some_and(|t| t != *s)).map(|(n, _)| n.clone()).collect();
            let what = format!("{path_a} → {path_b}");
            assert_eq!(names(&d.tensors.added), added, "{what}: added");
            assert_eq!(names(&d.tensors.removed), removed, "{what}: removed");
            assert_eq!(
                d.tensors.reshaped.iter().map(|r| r.name.clone()).collect::<BTreeSet<_>>(),
                reshaped,
                "{what}: reshaped"
            );
            assert_eq!(d.tensors.same + added.len() + reshaped.len(), tb.len(), "{what}: B's tensors");
            assert_eq!(d.tensors.same + removed.len() + reshaped.len(), ta.len(), "{what}: A's tensors");
            // The totals are the two networks' own.
            let (total_a, total_b) = (d.total.a.unwrap(), d.total.b.unwrap());
            assert_eq!((total_a.params, total_b.params), (a.params(), b.params()), "{what}: params");
            if path_a == path_b {
                assert!(d.identical(), "{what}: a model against itself");
            }
            // An added module's tensors are new, and a removed one's gone, unless the other
            // side has tensors under the same name (positional names: `features.5` may be
            // a conv in A and a batch norm in B).
            let (new, gone) = (names(&d.tensors.added), names(&d.tensors.removed));
            for module in &d.modules {
                let prefix = format!("{}.", module.path);
                let under = |t: &BTreeMap<String, Vec<u64>>| {
                    t.keys().filter(|n| n.starts_with(&prefix)).cloned().collect::<Vec<_>>()
                };
                match module.change {
                    Change::Added if under(&ta).is_empty() => {
                        assert!(under(&tb).iter().all(|n| new.contains(n)), "{what}: added {}", module.path)
                    }
                    Change::Removed if under(&tb).is_empty() => {
                        assert!(under(&ta).iter().all(|n| gone.contains(n)), "{what}: removed {}", module.path)
                    }
                    _ => {}
                }
            }
        }
    }
}

#[test]
fn inserting_se_in_two_stages_is_exactly_those_modules() {
    let a = compile_with("models/resnet50.arch", &[]);
    let b = compile_with("tests/fixtures/diff/resnet50_se_layer3_4.arch", &[]);
    let d = compare(("a", &a), ("b", &b));
    let added: Vec<&str> = d.modules.iter().map(|m| m.path.as_str()).collect();
    let expected: Vec<String> =
        (0..6).map(|i| format!("layer3.{i}.se")).chain((0..3).map(|i| format!("layer4.{i}.se"))).collect();
    assert_eq!(added, expected);
    assert!(d.modules.iter().all(|m| m.change == Change::Added
        && m.after.as_deref() == Some(&format!("{}.bn3", m.path.trim_end_matches(".se"))[..])));
    // Their parameters are the whole difference, and they sit in layer3 and layer4 only.
    let params: i128 = d.modules.iter().map(|m| m.params).sum();
    assert_eq!(params, b.params() as i128 - a.params() as i128);
    for stage in &d.stages {
        let changed = stage.a != stage.b;
        assert_eq!(changed, stage.name == "layer3" || stage.name == "layer4", "{}", stage.name);
    }
}

#[test]
fn plain20_has_the_same_tensors_as_resnet20_and_says_so() {
    let a = compile_with("models/resnet20.arch", &[]);
    let b = compile_with("models/plain20.arch", &[]);
    let d = compare(("a", &a), ("b", &b));
    assert!(d.same_tensors() && !d.identical());
    let rewired: Vec<&str> =
        d.modules.iter().filter(|m| m.change == Change::Changed).map(|m| m.path.as_str()).collect();
    assert_eq!(rewired.len(), 9, "{rewired:?}");
    let text = stdout(&["diff", "models/resnet20.arch", "models/plain20.arch"]);
    assert!(text.contains("same tensors, different wiring"), "{text}");
}

#[test]
fn one_file_under_two_settings_equals_the_two_files() {
    let diff_of = |args: &[&str]| -> serde_json::Value {
        let mut json: serde_json::Value = serde_json::from_str(&stdout(args)).unwrap();
        // Only where the networks came from may differ.
        json.as_object_mut().unwrap().remove("a");
        json.as_object_mut().unwrap().remove("b");
        json
    };
    let files = diff_of(&["diff", "models/resnet18.arch", "models/resnet34.arch", "--format", "json"]);
    let settings =
        diff_of(&["diff", "models/resnet.arch", "--set", "A:depth=18", "--set", "B:depth=34", "--format", "json"]);
    assert_eq!(files, settings);
    // A setting without a side applies to both.
    let both =
        stdout(&["diff", "models/resnet.arch", "--set", "A:depth=18", "--set", "B:depth=34", "--set", "classes=10"]);
    assert!(
        both.contains("with depth=18, classes=10") && both.contains("with classes=10, depth=34")
            || both.contains("with depth=34, classes=10"),
        "{both}"
    );
}

#[test]
fn the_json_output_keeps_its_schema() {
    let text = stdout(&["diff", "models/resnet50.arch", "models/resnet50_cbam.arch", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["schema"], "archc-diff/1");
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<_>>();
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(keys(&json), set(&["schema", "a", "b", "batch", "modules", "tensors", "stages", "total"]));
    assert_eq!(keys(&json["a"]), set(&["file", "model", "input", "settings"]));
    let module = &json["modules"][0];
    assert_eq!(keys(module), set(&["change", "path", "op", "what", "after", "layers", "tensors", "params", "macs"]));
    assert_eq!(module["change"], "added");
    assert_eq!(module["path"], "layer1.0.se");
    assert!(module["params"].is_i64() && module["macs"].is_i64());
    assert_eq!(keys(&json["tensors"]), set(&["same", "added", "removed", "reshaped"]));
    assert_eq!(keys(&json["tensors"]["added"][0]), set(&["name", "shape"]));
    assert_eq!(keys(&json["stages"][0]), set(&["name", "op", "a", "b"]));
    assert_eq!(keys(&json["stages"][0]["a"]), set(&["params", "macs", "activation_bytes"]));
    assert_eq!(json["total"]["a"]["params"], 25_557_032);
    assert_eq!(json["total"]["b"]["params"], 28_073_576);
}

#[test]
fn weights_of_a_report_what_they_give_b() {
    let dir = support::Scratch::new("diff", "weights");
    let weights = dir.join("resnet20.safetensors");
    stdout(&["export", "models/resnet20.arch", "--format", "safetensors", "--out", weights.to_str().unwrap()]);
    let args = ["diff", "models/resnet20.arch", "models/se_resnet20.arch", "--weights", weights.to_str().unwrap()];
    let text = stdout(&args);
    let a = compile_with("models/resnet20.arch", &[]);
    let b = compile_with("models/se_resnet20.arch", &[]);
    let d = compare(("a", &a), ("b", &b));
    // Carried over: the tensors both have; new: SE's; nothing unused (B keeps all of A's).
    assert!(text.contains(&format!("carried over  {} tensors", d.tensors.same)), "{text}");
    assert!(text.contains(&format!("new           {}:", d.tensors.added.len())), "{text}");
    assert!(text.contains("unused        0"), "{text}");
    assert!(!text.contains("may not be A's weights"), "{text}");
    // B's weights given as A's: B's SE tensors are unused, and the mismatch is said.
    let b_weights = dir.join("se.safetensors");
    stdout(&["export", "models/se_resnet20.arch", "--format", "safetensors", "--out", b_weights.to_str().unwrap()]);
    let swapped =
        stdout(&["diff", "models/plain20.arch", "models/resnet20.arch", "--weights", b_weights.to_str().unwrap()]);
    assert!(swapped.contains(&format!("unused        {}:", d.tensors.added.len())), "{swapped}");
    assert!(swapped.contains("may not be A's weights"), "{swapped}");
    let json: serde_json::Value = serde_json::from_str(&stdout(&[&args[..], &["--format", "json"]].concat())).unwrap();
    assert_eq!(json["transfer"]["transfer"]["loaded"].as_array().unwrap().len(), d.tensors.same);
}

#[test]
fn mistakes_are_one_line_errors() {
    let run = archc(&["diff", "models/resnet20.arch"]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("nothing to compare with") && stderr.contains("--set A:depth=10"), "{stderr}");
    let run = archc(&["diff", "models/resnet20.arch", "models/nope.arch"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("models/nope.arch"));
    let run = archc(&["diff", "models/resnet.arch", "--set", "A:depth=19", "--set", "B:depth=34"]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("error[E0030]") && stderr.contains("has errors; nothing to compare"), "{stderr}");
    let run = archc(&["diff", "models/resnet20.arch", "models/plain20.arch", "--weights", "/nonexistent.safetensors"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("/nonexistent.safetensors"));
}

#[test]
fn an_inserted_numbered_layer_is_added_and_what_follows_renumbered() {
    let a = compile_with("tests/fixtures/diff/numbered.arch", &[]);
    let b = compile_with("tests/fixtures/diff/numbered_inserted.arch", &[]);
    let d = compare(("a", &a), ("b", &b));
    let seen: Vec<(Change, &str, Option<&str>)> =
        d.modules.iter().map(|m| (m.change, m.path.as_str(), m.was.as_deref())).collect();
    assert_eq!(
        seen,
        [
            (Change::Added, "features.5", None),
            (Change::Added, "features.6", None),
            (Change::Renumbered, "features.7", Some("features.5")),
        ]
    );
}

#[test]
fn a_wider_layer_changes_the_next_ones_input_and_the_changes_add_up() {
    let a = compile_with("tests/fixtures/diff/numbered.arch", &[]);
    let b = compile_with("tests/fixtures/diff/numbered_wider.arch", &[]);
    let d = compare(("a", &a), ("b", &b));
    let changed: Vec<&str> = d.modules.iter().map(|m| m.path.as_str()).collect();
    assert_eq!(changed, ["features.2", "features.3", "features.4", "features.5"]);
    assert!(d.modules[3].what[0].starts_with("input image(32, 16, 16) → image(48, 16, 16)"), "{:?}", d.modules[3]);
    let params: i128 = d.modules.iter().map(|m| m.params).sum();
    assert_eq!(params, b.params() as i128 - a.params() as i128);
}

#[test]
fn the_networks_own_wiring_is_compared() {
    let a = compile_with("tests/fixtures/diff/bare_residual.arch", &[]);
    let b = compile_with("tests/fixtures/diff/bare_residual.arch", &[("skip", "false")]);
    let d = compare(("a", &a), ("b", &b));
    assert!(!d.identical() && d.same_tensors());
    assert_eq!(d.modules[0].path, "(network)");
    assert_eq!(
        d.modules[0].what,
        ["wiring residual (identity shortcut), parallel (sum) → residual (off), parallel (sum)"]
    );
    let text =
        stdout(&["diff", "tests/fixtures/diff/bare_residual.arch", "--set", "A:skip=true", "--set", "B:skip=false"]);
    assert!(text.contains("(network) add") && text.contains("same tensors, different wiring"), "{text}");
}

#[test]
fn a_full_disk_is_an_error_not_a_panic() {
    let Ok(full) = std::fs::File::create("/dev/full") else { return };
    let run = Command::new(env!("CARGO_BIN_EXE_archc"))
        .args(["diff", "models/resnet20.arch", "models/plain20.arch"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("cannot write `stdout`") && !stderr.contains("panicked"), "{stderr}");
}

#[test]
fn swapped_stages_are_one_move_and_the_counts_agree() {
    let a = compile_with("models/resnet18_cifar.arch", &[]);
    let b = compile_with("tests/fixtures/diff/resnet18_cifar_swapped.arch", &[]);
    let d = compare(("a", &a), ("b", &b));
    let moved: Vec<(&str, Option<&str>)> =
        d.modules.iter().filter(|m| m.change == Change::Moved).map(|m| (m.path.as_str(), m.after.as_deref())).collect();
    assert_eq!(moved, [("layer2", Some("layer3"))]);
    assert_eq!((d.count(Change::Added), d.count(Change::Removed)), (0, 0));
    assert!(d.tensors.added.is_empty() && d.tensors.removed.is_empty() && !d.tensors.reshaped.is_empty());
    // One row per stage, both sides present.
    assert!(d.stages.iter().all(|s| s.a.is_some() && s.b.is_some()), "{:?}", d.stages);
    assert_eq!(d.stages.iter().filter(|s| s.name == "layer2").count(), 1);
}
