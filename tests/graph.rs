//! `archc graph`: the pictures have one box (or merge) per row of `archc flops` at the
//! same level, for every zoo model; boxes never overlap and sit inside the frames of
//! their blocks; the same network gives the same bytes; small pictures are snapshots;
//! and the HTML page, driven in headless Chromium, renders without errors, counts
//! the same at each level, opens and closes a block on click and finds names.

mod support;

use archc::cost::{self, Convention, GroupBy};
use archc::elaborate::{Options, compile};
use archc::graph::layout::{self, BOX_HEIGHT, BOX_WIDTH, Mark};
use archc::graph::{self, Format, Level};
use archc::ir::Model;
use archc::source::Sources;
use std::process::Command;

const LEVELS: [(Level, GroupBy); 3] =
    [(Level::Stage, GroupBy::Stage), (Level::Block, GroupBy::Block), (Level::Layer, GroupBy::Layer)];

fn compile_file(path: &str) -> (Model, Sources) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut sources = Sources::new();
    let result = compile(&mut sources, path, &text, &Options::default());
    assert!(!result.has_errors(), "{path} does not compile");
    (result.models.into_iter().next().unwrap(), sources)
}

fn zoo() -> Vec<String> {
    let mut paths: Vec<String> = std::fs::read_dir("models")
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().to_string())
        .filter(|p| p.ends_with(".arch"))
        .collect();
    paths.push("tests/fixtures/graph/forms.arch".into());
    paths.push("tests/fixtures/diff/bare_residual.arch".into());
    paths.push("tests/fixtures/graph/shared_twice.arch".into());
    paths.sort();
    paths
}

/// `archc flops --by` rows: what the picture must have one box or merge for.
fn rows(model: &Model, by: GroupBy) -> usize {
    cost::report(model, Convention::Core, 1, by).rows.len()
}

#[test]
fn every_picture_has_one_box_or_merge_per_flops_row() {
    for path in zoo() {
        let (model, sources) = compile_file(&path);
        for (level, by) in LEVELS {
            let expected = rows(&model, by);
            let svg = graph::draw(&model, &sources, Format::Svg, level);
            assert_eq!(svg.matches(r#"<g class="node"#).count(), expected, "{path} at {level:?}: SVG nodes");
            // DOT: the same nodes plus the input and the output.
            let dot = graph::draw(&model, &sources, Format::Dot, level);
            let nodes = dot.lines().filter(|l| l.trim_start().starts_with('n') && l.contains(" [label=")).count();
            assert_eq!(nodes, expected + 2, "{path} at {level:?}: DOT nodes");
        }
    }
}

fn overlap(a: (f64, f64, f64, f64), b: (f64, f64, f64, f64)) -> bool {
    a.0 < b.0 + b.2 && b.0 < a.0 + a.2 && a.1 < b.1 + b.3 && b.1 < a.1 + a.3
}

#[test]
fn boxes_never_overlap_and_stay_inside_their_frames_and_the_page() {
    for path in zoo() {
        let (model, sources) = compile_file(&path);
        let graph = graph::build(&model, &sources);
        for (level, _) in LEVELS {
            let laid = layout::layout(&graph, level);
            let mut boxes = Vec::new();
            let mut frames = Vec::new();
            for mark in &laid.marks {
                match mark {
                    Mark::Box { x, y, item, .. } => boxes.push(((*x, *y, BOX_WIDTH, BOX_HEIGHT), item.path.clone())),
                    Mark::Frame { x, y, w, h, item } => frames.push(((*x, *y, *w, *h), item.path.clone())),
                    _ => {}
                }
            }
            for (i, (a, name_a)) in boxes.iter().enumerate() {
                assert!(
                    a.0 >= 0.0 && a.1 >= 0.0 && a.0 + a.2 <= laid.width && a.1 + a.3 <= laid.height,
                    "{path} {level:?}: {name_a} leaves the page"
                );
                for (b, name_b) in &boxes[i + 1..] {
                    assert!(!overlap(*a, *b), "{path} {level:?}: {name_a} overlaps {name_b}");
                }
                // Every frame of a block that encloses this box (by name) contains it.
                for (f, frame) in &frames {
                    if !frame.is_empty() && name_a.starts_with(&format!("{frame}.")) {
                        assert!(
                            a.0 >= f.0 && a.1 >= f.1 && a.0 + a.2 <= f.0 + f.2 && a.1 + a.3 <= f.1 + f.3,
                            "{path} {level:?}: {name_a} is outside the frame of {frame}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn the_same_network_gives_the_same_bytes() {
    for path in ["models/resnet50_cbam.arch", "models/vit_tiny_16.arch"] {
        let (model, sources) = compile_file(path);
        for format in [Format::Svg, Format::Html, Format::Dot] {
            let first = graph::draw(&model, &sources, format, Level::Block);
            let (again, again_sources) = compile_file(path);
            assert_eq!(first, graph::draw(&again, &again_sources, format, Level::Block), "{path} {format:?}");
        }
    }
}

#[test]
fn small_pictures_are_snapshots() {
    let snapshot = |name: &str, path: &str, format: Format, level: Level| {
        let (model, sources) = compile_file(path);
        insta::with_settings!({ snapshot_path => "../snapshots/graph", prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(name, graph::draw(&model, &sources, format, level));
        });
    };
    snapshot("forms_layer_svg", "tests/fixtures/graph/forms.arch", Format::Svg, Level::Layer);
    snapshot("forms_layer_dot", "tests/fixtures/graph/forms.arch", Format::Dot, Level::Layer);
    snapshot("resnet20_block_svg", "models/resnet20.arch", Format::Svg, Level::Block);
    snapshot("lenet5_stage_dot", "models/lenet5.arch", Format::Dot, Level::Stage);
}

#[test]
fn boxes_say_name_shape_and_cost_and_tooltips_say_the_rest() {
    let (model, sources) = compile_file("models/resnet20.arch");
    // The picture without its legend (which shows a sample of each line).
    let picture = |svg: String| svg.split(r#"<g class="legend">"#).next().unwrap().to_string();
    let svg = picture(graph::draw(&model, &sources, Format::Svg, Level::Block));
    // A closed block with its identity shortcut drawn beside it, and one with a projection.
    assert!(svg.contains(r#"data-path="layer1.1""#) && svg.contains("layer1.1 · basic"), "closed block");
    assert!(svg.contains(r#"class="flow shortcut identity""#));
    assert!(svg.contains(r#"class="flow shortcut projection""#));
    // The stem's conv: its shape, its cost, and in the tooltip its arguments and line.
    assert!(svg.contains("→ 16×32×32"));
    assert!(svg.contains("432 params · 442 K MACs"));
    assert!(svg.contains("params 432  MACs 442,368"));
    assert!(svg.contains("models/resnet20.arch:8"), "the source line of conv1");
    // plain20 has the same boxes and no shortcut at all.
    let (plain, plain_sources) = compile_file("models/plain20.arch");
    let plain_svg = picture(graph::draw(&plain, &plain_sources, Format::Svg, Level::Layer));
    assert!(!plain_svg.contains(r#"class="flow shortcut"#), "plain20 draws no shortcut");
    let layer_svg = graph::draw(&model, &sources, Format::Svg, Level::Layer);
    let merges = |svg: &str| svg.matches(r#"<g class="node merge""#).count();
    assert_eq!((merges(&layer_svg), merges(&plain_svg)), (9, 0), "resnet20 adds nine times, plain20 never");
    // Beside the merges, resnet20 has the two option-A shortcuts' layers (subsample, pad).
    let layers = |svg: &str| svg.matches(r#"<g class="node"#).count() - merges(svg);
    assert_eq!(layers(&layer_svg), layers(&plain_svg) + 4);
}

fn archc(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).output().expect("archc runs")
}

#[test]
fn the_command_writes_the_format_its_file_names_and_refuses_broken_models() {
    let dir = support::Scratch::new("graph", "command");
    for (name, start) in [("a.svg", "<svg"), ("a.html", "<!DOCTYPE html>"), ("a.dot", "digraph")] {
        let out = dir.join(name);
        let run = archc(&["graph", "models/lenet5.arch", "--out", out.to_str().unwrap()]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        assert!(std::fs::read_to_string(&out).unwrap().starts_with(start), "{name}");
    }
    // A symbolic link stays one: the file it names is replaced.
    let target = dir.join("target.svg");
    std::fs::write(&target, "old").unwrap();
    let link = dir.join("link.svg");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(archc(&["graph", "models/lenet5.arch", "--out", link.to_str().unwrap()]).status.success());
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&target).unwrap().starts_with("<svg"));
    // A file name that says no format is refused, not filled with SVG.
    let run = archc(&["graph", "models/lenet5.arch", "--out", dir.join("a.png").to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("writes .svg, .html or .dot"));
    assert!(!dir.join("a.png").exists());
    let run = archc(&["graph", "models/lenet5.arch", "--format", "dot", "--level", "layer"]);
    assert!(String::from_utf8_lossy(&run.stdout).starts_with("digraph \"lenet5\""));
    let broken = dir.join("broken.arch");
    std::fs::write(&broken, "network n {\n    input image(3, 8, 8)\n    conv(8, kernel: 9)\n}\n").unwrap();
    let out = dir.join("broken.svg");
    let run = archc(&["graph", broken.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("error[E") && stderr.contains("has errors; nothing to draw"), "{stderr}");
    assert!(!out.exists(), "nothing written for a broken model");
}

/// What tests/browser/graph.mjs saw.
#[derive(serde::Deserialize, Debug)]
struct Seen {
    console_errors: Vec<String>,
    page_errors: Vec<String>,
    requests: Vec<String>,
    body_errors: String,
    initial: usize,
    levels: std::collections::BTreeMap<String, usize>,
    after_open: Option<usize>,
    frame_opened: Option<usize>,
    after_close: Option<usize>,
    stage_opened: Option<usize>,
    located: usize,
    /// (path, x, y) of each box the viewer drew, by level.
    boxes: std::collections::BTreeMap<String, Vec<(String, f64, f64)>>,
    details: Option<String>,
    search: Option<serde_json::Value>,
    summary: String,
}

fn browse(path: &str, open: &str, query: &str, screenshot: &std::path::Path) -> (Model, Sources, Seen) {
    let dir = support::Scratch::new("graph", &format!("browser-{}", open.replace('.', "_")));
    let (model, sources) = compile_file(path);
    let page = dir.join("page.html");
    std::fs::write(&page, graph::draw(&model, &sources, Format::Html, Level::Block)).unwrap();
    let run = Command::new("node")
        .current_dir("tests/browser")
        .args(["graph.mjs", page.to_str().unwrap(), screenshot.to_str().unwrap(), open, query])
        .output()
        .expect("node runs (apt-get install nodejs; npm ci in tests/browser)");
    assert!(run.status.success(), "graph.mjs failed:\n{}", String::from_utf8_lossy(&run.stderr));
    let seen: Seen = serde_json::from_slice(&run.stdout).expect("graph.mjs prints JSON");
    assert!(seen.console_errors.is_empty() && seen.page_errors.is_empty() && seen.body_errors.is_empty(), "{seen:?}");
    assert!(seen.requests.is_empty(), "the page fetched {:?}", seen.requests);
    for (level, by) in LEVELS {
        assert_eq!(seen.levels[level.name()], rows(&model, by), "{path}: nodes on the page at {level:?}");
    }
    assert_eq!(seen.initial, rows(&model, GroupBy::Block), "{path}: the page opens at --level");
    // The viewer lays out with archc's rules: every box where the SVG has it.
    let graph = graph::build(&model, &sources);
    for (level, _) in LEVELS {
        let mut ours: Vec<(String, f64, f64)> = layout::layout(&graph, level)
            .marks
            .iter()
            .filter_map(|mark| match mark {
                Mark::Box { x, y, item, .. } => Some((item.path.clone(), *x, *y)),
                _ => None,
            })
            .collect();
        let mut theirs = seen.boxes[level.name()].clone();
        let order = |a: &(String, f64, f64), b: &(String, f64, f64)| a.partial_cmp(b).unwrap();
        ours.sort_by(order);
        theirs.sort_by(order);
        assert_eq!(ours.len(), theirs.len(), "{path} {level:?}: boxes");
        for (a, b) in ours.iter().zip(&theirs) {
            let close = a.0 == b.0 && (a.1 - b.1).abs() < 0.01 && (a.2 - b.2).abs() < 0.01;
            assert!(close, "{path} {level:?}: the SVG has {a:?}, the page {b:?}");
        }
    }
    (model, sources, seen)
}

#[test]
#[cfg_attr(not(chromium), ignore = "needs /usr/bin/chromium and `npm ci` in tests/browser")]
fn the_page_renders_in_chromium_and_opens_blocks_on_click() {
    let shots = support::Scratch::new("graph", "shots");
    let (model, sources, seen) =
        browse("models/resnet50_cbam.arch", "layer2.0", "layer3.1", &shots.join("resnet50_cbam.png"));
    // Opening layer2.0 replaces its box by every layer and merge inside it.
    let inside = cost::report(&model, Convention::Core, 1, GroupBy::Layer)
        .rows
        .iter()
        .filter(|r| r.name == "layer2.0" || r.name.starts_with("layer2.0."))
        .count();
    assert_eq!(seen.after_open, Some(rows(&model, GroupBy::Block) - 1 + inside));
    assert_eq!(seen.frame_opened, Some(1));
    let blocks_in_layer2 = cost::report(&model, Convention::Core, 1, GroupBy::Block)
        .rows
        .iter()
        .filter(|r| r.name.starts_with("layer2."))
        .count();
    assert_eq!(
        seen.stage_opened,
        Some(rows(&model, GroupBy::Stage) - 1 + blocks_in_layer2),
        "layer2 opens to its blocks"
    );
    assert_eq!(seen.located, 1, "a top-layers row finds exactly that layer");
    assert_eq!(seen.after_close, Some(rows(&model, GroupBy::Block)), "a click on the frame closes it");
    let details = seen.details.unwrap();
    assert!(
        details.contains("layer2.0.conv2") && details.contains("image(128, 56, 56) → image(128, 28, 28)"),
        "{details}"
    );
    // Every item whose name holds `layer3.1` is found (its block opened to show them).
    let expected: usize = graph::build(&model, &sources).items.iter().map(|i| count_paths(i, "layer3.1")).sum();
    let search = seen.search.unwrap();
    assert_eq!(search["hits"], expected, "{search}");
    assert!(seen.summary.contains("28,073,576") && seen.summary.contains("layer1.0.conv2"), "{}", seen.summary);
    let png = std::fs::read(shots.join("resnet50_cbam.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 50_000, "a screenshot with something on it");
}

#[test]
#[cfg_attr(not(chromium), ignore = "needs /usr/bin/chromium and `npm ci` in tests/browser")]
fn a_vision_transformer_page_renders_in_chromium() {
    let shots = support::Scratch::new("graph", "vit");
    browse("models/vit_tiny_16.arch", "", "", &shots.join("vit.png"));
}

/// The items (boxes and frames) whose name holds `query`.
fn count_paths(item: &graph::Item, query: &str) -> usize {
    usize::from(item.path.contains(query)) + item.children().into_iter().map(|c| count_paths(c, query)).sum::<usize>()
}
