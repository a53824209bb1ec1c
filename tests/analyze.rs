//! `archc analyze`: what the labs' experiments must show, measured on small seeded
//! networks (the direction of each effect, never a fixed number), and the files the
//! command writes.

use archc::analyze::Probe;
use archc::analyze::activations::{activation_stats, per_depth};
use archc::analyze::attention::AttentionMap;
use archc::analyze::gradients::gradient_norms;
use archc::elaborate::{Options, compile};
use archc::ir::{Model, Shape};
use archc::lower::{Network, Value};
use archc::source::Sources;
use burn::backend::{Autodiff, Flex};
use burn::prelude::*;
use std::process::{Command, Output};
use support::{Scratch, assert_png, masked};

mod support;

type B = Autodiff<Flex>;

/// Burn has one random generator per backend, shared by the threads the harness runs
/// tests on: a test that seeds it and draws from it holds this lock, or another test's
/// draws would come between its seed and its draws.
fn seeded_generator() -> std::sync::MutexGuard<'static, ()> {
    static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());
    GENERATOR.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// models/deepnet.arch on a small input, with the given network arguments.
fn deepnet(set: &[(&str, &str)]) -> Model {
    deepnet_on(set, Shape::Image { c: 1, h: 10, w: 10 })
}

/// First weight layer's gradient norm over the last hidden one's (the output layer
/// reads features whose scale depends on the architecture, so it is left out).
fn first_over_last_hidden(model: &Model, seed: u64) -> f64 {
    let device = Default::default();
    let _generator = seeded_generator();
    B::seed(&device, seed);
    let probe = Probe::<B>::random(model, 16, &device);
    B::seed(&device, seed);
    let network = Network::<B>::new(model, &device);
    let rows = gradient_norms(&network, probe);
    assert_eq!(rows.len(), network.layers.iter().filter(|l| archc::analyze::is_weight_layer(*l)).count());
    assert!(rows.windows(2).all(|w| w[0].depth + 1 == w[1].depth), "depths count weight layers in order");
    rows[0].grad_norm / rows[rows.len() - 2].grad_norm
}

#[test]
fn gradients_vanish_in_a_deep_plain_net_and_not_in_the_residual_one() {
    for seed in [0, 1] {
        let plain30 = first_over_last_hidden(&deepnet(&[("depth", "30"), ("skip", "false")]), seed);
        let plain10 = first_over_last_hidden(&deepnet(&[("depth", "10"), ("skip", "false")]), seed);
        let residual30 = first_over_last_hidden(&deepnet(&[("depth", "30"), ("skip", "true")]), seed);
        // Orders of magnitude below in the plain net, and worse with depth...
        assert!(plain30 < 1e-3, "seed {seed}: plain, 30 layers: first/last = {plain30:e}");
        assert!(plain30 < plain10, "seed {seed}: depth makes it worse: {plain30:e} vs {plain10:e} at 10 layers");
        // ...within an order of magnitude or so with identity shortcuts.
        assert!(residual30 > 1e-2, "seed {seed}: residual, 30 layers: first/last = {residual30:e}");
        assert!(residual30 > 1e3 * plain30, "seed {seed}: residual {residual30:e} vs plain {plain30:e}");
    }
}

#[test]
fn batch_norm_holds_the_scale_of_activations_across_depth() {
    let std_at_depths = |norm: &str| -> Vec<f64> {
        let model = deepnet(&[("depth", "12"), ("act", "relu"), ("norm", norm)]);
        let device = Default::default();
        let _generator = seeded_generator();
        B::seed(&device, 3);
        let probe = Probe::<B>::random(&model, 16, &device);
        let network = Network::<B>::new(&model, &device);
        let rows = activation_stats(&network, probe.input);
        assert_eq!(rows.len(), network.program.steps.len(), "one row per step");
        per_depth(&rows).iter().map(|r| r.std).collect()
    };
    let plain = std_at_depths("identity");
    let normalised = std_at_depths("batchnorm");
    // Stem, 12 units, classifier: one row per weight layer.
    assert_eq!((plain.len(), normalised.len()), (14, 14));
    let (first, last_hidden) = (1, 12);
    assert!(plain[last_hidden] < 1e-2 * plain[first], "without batch norm the scale decays: {plain:?}");
    let ratio = normalised[last_hidden] / normalised[first];
    assert!((0.5..2.0).contains(&ratio), "batch norm keeps it: {normalised:?}");
}

fn deepnet_on(set: &[(&str, &str)], input: Shape) -> Model {
    let path = "models/deepnet.arch";
    let text = std::fs::read_to_string(path).unwrap();
    let set = set.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    let result = compile(&mut Sources::new(), path, &text, &Options { input: Some(input), set, ..Options::default() });
    assert!(!result.has_errors(), "{:?}", result.diagnostics);
    result.models.into_iter().next().unwrap()
}

/// (path, weights, ‖∇W‖, ‖W‖) of each convolution and linear layer in order, measured
/// here without archc's analysis code: the batch and the network drawn from the seed as
/// `analyze` documents (seed, batch, seed again, network), labels `i mod classes`, one
/// cross-entropy backward pass, each weight's gradient read from Burn.
fn independent_gradient_norms(model: &Model, batch: usize, seed: u64) -> Vec<(String, usize, f64, f64)> {
    use archc::lower::{Layer, Step};
    use burn::nn::loss::CrossEntropyLossConfig;
    let device = Default::default();
    let _generator = seeded_generator();
    B::seed(&device, seed);
    let probe = Probe::<B>::random(model, batch, &device);
    B::seed(&device, seed);
    let network = Network::<B>::new(model, &device);
    let classes = network.forward(probe.input).vector();
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % classes.dims()[1] as i64).collect();
    let labels = Tensor::<B, 1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    let grads = CrossEntropyLossConfig::new().init(&device).forward(classes, labels).backward();
    let norm = |t: Vec<f32>| t.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>().sqrt();
    let mut rows = Vec::new();
    for (i, step) in network.program.steps.iter().enumerate() {
        let Step::Layer { layer, .. } = step else { continue };
        let (count, grad, weight) = match &network.layers[*layer] {
            Layer::Conv(c) => {
                let g = c.weight.grad(&grads).expect("every weight has a gradient");
                (c.weight.shape().num_elements(), to_vec(g), to_vec(c.weight.val().inner()))
            }
            Layer::Linear(l) => {
                let g = l.weight.grad(&grads).expect("every weight has a gradient");
                (l.weight.shape().num_elements(), to_vec(g), to_vec(l.weight.val().inner()))
            }
            _ => continue,
        };
        rows.push((network.program.labels[i].path.clone(), count, norm(grad), norm(weight)));
    }
    rows
}

/// (path, mean, population std, share of zeros) of every step's output, computed here
/// from the values (seeded as `analyze` documents, training mode).
fn independent_step_statistics(model: &Model, batch: usize, seed: u64) -> Vec<(String, f64, f64, f64)> {
    let device = Default::default();
    let _generator = seeded_generator();
    B::seed(&device, seed);
    let probe = Probe::<B>::random(model, batch, &device);
    B::seed(&device, seed);
    let network = Network::<B>::new(model, &device);
    let mut rows = Vec::new();
    network.forward_observed(probe.input, &mut |i, value| {
        let values = match value {
            Value::Image(t) => to_vec(t.clone()),
            Value::Tokens(t) => to_vec(t.clone()),
            Value::Vector(t) => to_vec(t.clone()),
        };
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let zeros = values.iter().filter(|&&v| v == 0.0).count() as f64 / n;
        rows.push((network.program.labels[i].path.clone(), mean, var.sqrt(), zeros));
    });
    rows
}

/// A CSV's rows after the header, fields split with quotes respected.
fn csv_rows(csv: &str) -> Vec<Vec<String>> {
    csv.lines()
        .skip(1)
        .map(|line| {
            let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
            for c in line.chars() {
                match c {
                    '"' => quoted = !quoted,
                    ',' if !quoted => fields.push(std::mem::take(&mut field)),
                    c => field.push(c),
                }
            }
            fields.push(field);
            fields
        })
        .collect()
}

/// Each row of the activations report (depth, layer, op, mean, std, zeros) is one of
/// the CSV's steps, its numbers shown to three significant digits.
fn check_activation_report(md: &str, csv: &str) {
    let rows = csv_rows(csv);
    let mut variant = String::new();
    let mut checked = 0;
    for line in md.lines() {
        if let Some(label) = line.strip_prefix("## ") {
            variant = label.to_string();
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if !line.starts_with("| ") || cells[0] == "depth" {
            continue;
        }
        let step = rows
            .iter()
            .rev()
            .find(|r| r[0] == variant && r[2] == cells[0] && r[3] == cells[1] && r[4] == cells[2])
            .unwrap_or_else(|| panic!("{variant}: no step `{line}` in the CSV"));
        for (cell, value) in [(cells[3], &step[5]), (cells[4], &step[6])] {
            let (shown, value): (f64, f64) = (cell.parse().unwrap(), value.parse().unwrap());
            assert!((shown - value).abs() <= 5e-4 * value.abs(), "{variant}: `{line}` vs the CSV's {value}");
        }
        let zeros: f64 = step[7].parse().unwrap();
        assert_eq!(cells[5], format!("{:.1}%", 100.0 * zeros), "{variant}: `{line}`");
        checked += 1;
    }
    assert_eq!(checked, 2 * 5, "each variant's stem, three units and classifier");
}

fn to_vec<T: Backend, const D: usize>(t: Tensor<T, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

/// The Markdown report's numbers (three significant digits) against the CSV's.
fn check_gradient_report(md: &str, csv: &str) {
    // (‖∇W‖, ‖W‖) of each weight layer of a variant.
    let layers = |label: &str| -> Vec<(f64, f64)> {
        csv_rows(csv)
            .into_iter()
            .filter(|r| r[0] == label)
            .map(|r| (r[5].parse().unwrap(), r[6].parse().unwrap()))
            .collect()
    };
    let norms = |label: &str| -> Vec<f64> { layers(label).into_iter().map(|(g, _)| g).collect() };
    let close = |cell: &str, value: f64| {
        let shown: f64 = cell.parse().unwrap_or_else(|_| panic!("`{cell}` is a number"));
        assert!((shown - value).abs() <= 5e-4 * value.abs(), "`{cell}` shows {shown}, the CSV {value}");
    };
    let mut variant = String::new();
    for line in md.lines() {
        if let Some(label) = line.strip_prefix("## ") {
            variant = label.to_string();
            continue;
        }
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if !line.starts_with("| ") || cells[0] == "model" || cells[0] == "depth" {
            continue;
        }
        if variant.is_empty() {
            // The summary: layers, first, last hidden, their ratio, the output layer.
            let n = norms(cells[0]);
            assert_eq!(cells[1], n.len().to_string());
            let (first, hidden, output) = (n[0], n[n.len() - 2], n[n.len() - 1]);
            for (cell, value) in cells[2..].iter().zip([first, hidden, first / hidden, output]) {
                close(cell, value);
            }
        } else {
            let depth: usize = cells[0].parse().unwrap();
            let (grad, weight) = layers(&variant)[depth - 1];
            for (cell, value) in [(cells[4], grad), (cells[5], weight), (cells[6], grad / weight)] {
                close(cell, value);
            }
        }
    }
}

fn archc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_archc")).args(args).output().expect("archc runs")
}

fn scratch(name: &str) -> Scratch {
    Scratch::new("analyze", name)
}

#[test]
fn gradients_command_writes_table_csv_and_plot() {
    let dir = scratch("gradients");
    let out = archc(&[
        "analyze",
        "gradients",
        "models/deepnet.arch",
        "--depths",
        "2,4",
        "--sweep",
        "skip=false,true",
        "--input",
        "1x8x8",
        "--batch",
        "4",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    for label in ["deepnet skip=false depth=2", "deepnet skip=false depth=4", "deepnet skip=true depth=4"] {
        assert!(stdout.contains(label), "{label} in\n{stdout}");
    }
    // CSV: one row per weight layer of each variant (stem + depth convs + fc).
    let csv = std::fs::read_to_string(dir.join("gradients.csv")).unwrap();
    let rows = |label: &str| csv.lines().filter(|l| l.starts_with(&format!("{label},"))).count();
    assert_eq!(rows("deepnet skip=false depth=2"), 4, "{csv}");
    assert_eq!(rows("deepnet skip=true depth=4"), 6, "{csv}");
    // Every number is the measurement made here independently, for every variant.
    for (depth, skip) in [("2", "false"), ("4", "false"), ("2", "true"), ("4", "true")] {
        let label = format!("deepnet skip={skip} depth={depth}");
        let model = deepnet_on(&[("depth", depth), ("skip", skip)], Shape::Image { c: 1, h: 8, w: 8 });
        let expected = independent_gradient_norms(&model, 4, 0);
        let rows: Vec<Vec<&str>> =
            csv.lines().filter(|l| l.starts_with(&format!("{label},"))).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), expected.len(), "{label}: one row per weight layer");
        for (k, (row, (path, weights, grad, weight))) in rows.iter().zip(&expected).enumerate() {
            assert_eq!(
                (row[1], row[2], row[4]),
                ((k + 1).to_string().as_str(), path.as_str(), weights.to_string().as_str())
            );
            let (csv_grad, csv_weight): (f64, f64) = (row[5].parse().unwrap(), row[6].parse().unwrap());
            assert!((csv_grad - grad).abs() <= 1e-5 * grad, "{label} {path}: ‖∇W‖ {csv_grad} vs {grad}");
            assert!((csv_weight - weight).abs() <= 1e-6 * weight, "{label} {path}: ‖W‖ {csv_weight} vs {weight}");
        }
    }
    assert_png(&dir.join("gradients.png"), (1000, 600));
    let md = std::fs::read_to_string(dir.join("gradients.md")).unwrap();
    check_gradient_report(&md, &csv);
    insta::with_settings!({ snapshot_path => "../snapshots/analyze", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("gradients_report", masked(&md));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn activations_command_writes_table_csv_and_plot() {
    let dir = scratch("activations");
    let out = archc(&[
        "analyze",
        "activations",
        "models/deepnet.arch",
        "--set",
        "depth=3",
        "--set",
        "act=relu",
        "--sweep",
        "norm=identity,batchnorm(eps: 1e-3, momentum: 0.1)",
        "--input",
        "1x8x8",
        "--batch",
        "4",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("deepnet norm=batchnorm(eps: 1e-3, momentum: 0.1)"), "{stdout}");
    // Every step of each variant is in the CSV (stem, relu, 3 × (conv, norm, relu), pool,
    // flatten, fc), the norm steps being what the sweep chose.
    let csv = std::fs::read_to_string(dir.join("activations.csv")).unwrap();
    let rows = |label: &str, op: &str| {
        csv.lines().filter(|l| l.starts_with(label) && (op.is_empty() || l.contains(&format!(",{op},")))).count()
    };
    assert_eq!(rows("deepnet norm=identity,", ""), 14, "{csv}");
    assert_eq!(rows("\"deepnet norm=batchnorm(eps: 1e-3, momentum: 0.1)\",", ""), 14, "{csv}");
    assert_eq!(rows("deepnet norm=identity,", "identity"), 3, "{csv}");
    assert_eq!(rows("\"deepnet norm=batchnorm(eps: 1e-3, momentum: 0.1)\",", "batchnorm"), 3, "{csv}");
    // Every step's numbers are the statistics of its output computed here, for both
    // variants, and the report's rows are the CSV's.
    for norm in ["identity", "batchnorm(eps: 1e-3, momentum: 0.1)"] {
        let label = format!("deepnet norm={norm}");
        let model = deepnet_on(&[("depth", "3"), ("act", "relu"), ("norm", norm)], Shape::Image { c: 1, h: 8, w: 8 });
        let expected = independent_step_statistics(&model, 4, 0);
        let rows: Vec<Vec<String>> = csv_rows(&csv).into_iter().filter(|r| r[0] == label).collect();
        assert_eq!(rows.len(), expected.len(), "{label}: one row per step");
        for (row, (path, mean, std, zeros)) in rows.iter().zip(&expected) {
            assert_eq!(&row[3], path);
            let (m, sd, z): (f64, f64, f64) =
                (row[5].parse().unwrap(), row[6].parse().unwrap(), row[7].parse().unwrap());
            let scale = mean.abs() + std;
            assert!((m - mean).abs() <= 1e-5 * scale, "{label} {path}: mean {m} vs {mean}");
            assert!((sd - std).abs() <= 1e-5 * scale, "{label} {path}: std {sd} vs {std}");
            assert_eq!(z, *zeros, "{label} {path}: zeros");
        }
    }
    assert_png(&dir.join("activations.png"), (1400, 560));
    let md = std::fs::read_to_string(dir.join("activations.md")).unwrap();
    check_activation_report(&md, &csv);
    insta::with_settings!({ snapshot_path => "../snapshots/analyze", prepend_module_to_snapshot => false, omit_expression => true }, {
        insta::assert_snapshot!("activations_report", masked(&md));
    });
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn analyze_errors_are_one_clear_message() {
    // A sweep over a parameter the network does not have points at it.
    let out = archc(&["analyze", "gradients", "models/resnet20.arch", "--depths", "8", "--out", "/nonexistent/x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("network `resnet20` has no parameter `depth`") && err.contains("--set"), "{err}");
    // Settings that contradict each other are usage errors (exit 2); a missing file is 1.
    let cases: &[(&[&str], &str, i32)] = &[
        (&["analyze", "gradients", "models/deepnet.arch", "--batch", "1"], "--batch must be at least 2", 2),
        (&["analyze", "activations", "models/nope.arch"], "models/nope.arch", 1),
        (
            &["analyze", "gradients", "models/deepnet.arch", "--depths", "3", "--sweep", "depth=4"],
            "give the depths once",
            2,
        ),
        (
            &["analyze", "gradients", "models/deepnet.arch", "--set", "depth=3", "--depths", "4"],
            "both fixed with --set",
            2,
        ),
        (
            &["analyze", "gradients", "models/deepnet.arch", "--sweep", "skip=true", "--sweep", "skip=false"],
            "swept twice",
            2,
        ),
    ];
    for (args, expected, code) in cases {
        let out = archc(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(err.contains(expected) && !err.contains("panicked"), "{args:?}: {err}");
    }
    // Usage mistakes are clap's (exit 2).
    assert_eq!(archc(&["analyze", "gradients", "models/deepnet.arch", "--sweep", "skip"]).status.code(), Some(2));
    assert_eq!(
        archc(&["analyze", "gradients", "models/deepnet.arch", "--sweep", "norm=batchnorm(eps: 1"]).status.code(),
        Some(2)
    );
    assert_eq!(archc(&["analyze"]).status.code(), Some(2));
}

/// The class token's attention over the patches in the last encoder layer, for each
/// head, against PyTorch's own attention weights (torchvision's ViT with
/// `need_weights=True, average_attn_weights=False`, in the tiny_vit fixture).
#[test]
fn attention_maps_are_pytorchs_attention_weights() {
    use archc::lower::weights::{RawTensor, StateDict};
    let text = std::fs::read_to_string("tests/fixtures/lowering/tiny_vit.arch").unwrap();
    let result = compile(&mut Sources::new(), "tiny_vit.arch", &text, &Options::default());
    let model = result.models.into_iter().next().unwrap();
    let fixture = StateDict::read(std::path::Path::new("tests/fixtures/lowering/tiny_vit.safetensors")).unwrap();
    let mut weights = fixture.clone();
    weights.tensors.retain(|k, _| !k.starts_with("__"));
    let device = Default::default();
    // Building draws initial weights (replaced here) from the shared generator.
    let network = {
        let _generator = seeded_generator();
        Network::<Flex>::new(&model, &device).load_state_dict(&weights).unwrap()
    };
    let input: &RawTensor = &fixture.tensors["__input"];
    let expected: &RawTensor = &fixture.tensors["__attention_class_token"];
    let [batch, heads, patches] = expected.shape[..] else { panic!("[batch, heads, patches]") };
    let per_image = input.data.len() / batch;
    for b in 0..batch {
        let image = input.data[b * per_image..(b + 1) * per_image].to_vec();
        let image = Tensor::<Flex, 4>::from_data(TensorData::new(image, [1, 3, 16, 16]), &device);
        let maps = archc::analyze::attention::attention_maps(&network, image);
        let [AttentionMap::Heads { from_class_token: true, height: 4, width: 4, heads: computed, path }] =
            maps.as_slice()
        else {
            panic!("one class-token map over 4×4 patches expected");
        };
        assert_eq!(path, "encoder.layers.encoder_layer_1.self_attention", "the last attention layer");
        assert_eq!(computed.len(), heads);
        for (h, head) in computed.iter().enumerate() {
            let reference = &expected.data[(b * heads + h) * patches..(b * heads + h + 1) * patches];
            assert_eq!(head.len(), patches);
            for (a, e) in head.iter().zip(reference) {
                assert!((a - e).abs() <= 1e-5, "image {b}, head {h}: {head:?} vs PyTorch's {reference:?}");
            }
        }
    }
}

#[test]
fn attention_command_draws_gates_spatial_maps_and_heads() {
    let image = "tests/fixtures/predict/image.png";
    // CBAM (channel and spatial gates) in layer1, SE in layer2.
    let dir = scratch("attention-cbam");
    let model = "tests/fixtures/lowering/tiny_bottleneck_attention.arch";
    let out = archc(&["analyze", "attention", model, image, "--out", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("untrained"), "a warning without --weights");
    let csv = std::fs::read_to_string(dir.join("channel_weights.csv")).unwrap();
    let mut gates: Vec<(String, usize)> = Vec::new();
    for line in csv.lines().skip(1) {
        let fields: Vec<&str> = line.split(',').collect();
        let weight: f32 = fields[2].parse().unwrap();
        assert!(weight > 0.0 && weight < 1.0, "a sigmoid gate: {line}");
        match gates.last_mut() {
            Some((gate, n)) if gate == fields[0] => *n += 1,
            _ => gates.push((fields[0].to_string(), 1)),
        }
    }
    let counts: Vec<usize> = gates.iter().map(|(_, n)| *n).collect();
    assert_eq!(counts, [32, 64], "CBAM's channel gate on 32 channels, SE's on 64: {gates:?}");
    assert_png(&dir.join("channel_weights.png"), (720, 260));
    assert_png(&dir.join("spatial_attention.png"), (660, 284));
    let _ = std::fs::remove_dir_all(&dir);

    let dir = scratch("attention-vit");
    let out = archc(&[
        "analyze",
        "attention",
        "tests/fixtures/lowering/tiny_vit.arch",
        image,
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("class-token attention of 2 heads over 4×4 patches"));
    assert_png(&dir.join("head_attention.png"), (660, 284));
    let _ = std::fs::remove_dir_all(&dir);

    // A network without attention says so.
    let out = archc(&["analyze", "attention", "models/lenet5.arch", image, "--out", "/nonexistent/x"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no attention to show"));
}
