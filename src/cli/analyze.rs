//! `archc analyze gradients|activations MODEL...`: the labs' experiments at
//! initialisation, each as a table on stdout and a directory holding the same table
//! (Markdown, CSV) and a plot; `archc analyze attention MODEL IMAGE`: what a (trained)
//! network's SE/CBAM gates and ViT heads look at, as pictures.

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::analyze::Probe;
use crate::analyze::activations::{StepStats, activation_stats, per_depth};
use crate::analyze::attention::{AttentionMap, attention_maps};
use crate::analyze::gradients::{LayerGradient, gradient_norms};
use crate::backend::BackendKind;
use crate::cost::{aligned, markdown};
use crate::data::dataset::{Pipeline, Source};
use crate::data::images;
use crate::ir::{Model, Shape};
use crate::lower::weights::StateDict;
use crate::lower::{Network, Value};
use crate::plots::Picture;
use crate::plots::{self, Axes};
use crate::train::write_atomic;
use burn::prelude::*;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AnalyzeArgs {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand)]
enum What {
    /// Gradient norm of every weight layer after one backward pass at initialisation
    /// (vanishing gradients: plain vs residual, across depths).
    Gradients(ProbeArgs),
    /// Mean and standard deviation of every layer's output at initialisation (what batch
    /// norm does to activations across depth).
    Activations(ProbeArgs),
    /// What attention looks at for one image: SE/CBAM channel weights, CBAM spatial
    /// maps, a ViT's class-token attention per head, as pictures.
    Attention(AttentionArgs),
}

#[derive(clap::Args)]
struct AttentionArgs {
    /// The model's `.arch` file.
    model: String,
    /// A PNG or JPEG image; it is resized to the model's input.
    image: PathBuf,
    /// Trained weights (`.safetensors` or PyTorch `.pt`). Without them the maps are an
    /// untrained network's.
    #[arg(long)]
    weights: Option<PathBuf>,
    #[command(flatten)]
    compile: CompileArgs,
    /// Per-channel mean for the image (default: from the checkpoint, else none).
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation (default: from the checkpoint, else none).
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
    /// Seeds the initialisation when no weights are given.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
    /// The directory for the pictures and the CSV (default: runs/attention-TIME).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// The models' `.arch` files.
    #[arg(required = true)]
    models: Vec<String>,
    /// Compare values of a network parameter: NAME=V1,V2,... (e.g. skip=false,true).
    /// Repeatable; every combination runs.
    #[arg(long, value_name = "NAME=V1,V2,...", value_parser = parse_sweep)]
    sweep: Vec<(String, Vec<String>)>,
    /// Shorthand for `--sweep depth=...`, for models with a `depth` parameter.
    #[arg(long, value_delimiter = ',')]
    depths: Vec<u64>,
    #[command(flatten)]
    compile: CompileArgs,
    /// Take the batch from this dataset's training set (normalised as `archc train`
    /// does): fashion-mnist, mnist, cifar10, cifar100 or an ImageFolder directory.
    /// Without it the batch is seeded standard-normal noise.
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Seeds the initialisation and the batch.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
    /// The directory for the table (Markdown, CSV) and the plot
    /// (default: runs/gradients-TIME or runs/activations-TIME).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// `NAME=V1,V2,...`; commas inside brackets belong to a value (`norm=batchnorm(eps: 1e-3),identity`).
pub(super) fn parse_sweep(text: &str) -> Result<(String, Vec<String>), String> {
    let usage = "write NAME=V1,V2,..., e.g. --sweep skip=false,true";
    let (name, values) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=V1,V2,...: {usage}"))?;
    let (name, _) = super::parse_setting(&format!("{name}=_"))
        .map_err(|_| format!("`{name}` in `{text}` is not a parameter name"))?;
    let mut parts = vec![String::new()];
    let mut depth = 0i32;
    for ch in values.chars() {
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("`{text}` closes a bracket it never opened"));
        }
        parts.last_mut().expect("one part at least").push(ch);
    }
    if depth != 0 {
        return Err(format!("`{text}` leaves a bracket open"));
    }
    let parts: Vec<String> = parts.into_iter().map(|p| p.trim().to_string()).collect();
    if parts.iter().any(String::is_empty) {
        return Err(format!("`{text}` has an empty value: {usage}"));
    }
    Ok((name, parts))
}

/// One network to analyse: a model file with one combination of swept values.
pub(super) struct Variant {
    /// The network's name and the swept values.
    pub label: String,
    pub path: String,
    /// Every `--set`, the swept ones included.
    pub settings: Vec<(String, String)>,
    pub model: Model,
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode, String> {
    match args.what {
        What::Gradients(probe) => gradients(probe),
        What::Activations(probe) => activations(probe),
        What::Attention(args) => attention(args),
    }
}

/// Every combination of the swept values, in order (the last sweep varies fastest).
fn combinations(sweeps: &[(String, Vec<String>)]) -> Vec<Vec<(String, String)>> {
    let mut all = vec![Vec::new()];
    for (name, values) in sweeps {
        all = all
            .into_iter()
            .flat_map(|prefix: Vec<(String, String)>| {
                values.iter().map(move |v| {
                    let mut next = prefix.clone();
                    next.push((name.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    all
}

fn variants(args: &ProbeArgs) -> Result<Vec<Variant>, String> {
    let mut sweeps = args.sweep.clone();
    if !args.depths.is_empty() {
        if sweeps.iter().any(|(name, _)| name == "depth") {
            return Err("give the depths once: --depths or --sweep depth=..., not both".into());
        }
        sweeps.push(("depth".into(), args.depths.iter().map(u64::to_string).collect()));
    }
    compile_variants(&args.models, &args.compile, &sweeps, "--depths")
}

/// Every model file with every combination of the swept values, compiled and labelled
/// (`deepnet skip=false depth=30`). A parameter is either fixed (`--set`) or swept, and
/// swept once; `depth_flag` names where a `depth` sweep came from, for the message.
pub(super) fn compile_variants(
    paths: &[String],
    compile: &CompileArgs,
    sweeps: &[(String, Vec<String>)],
    depth_flag: &str,
) -> Result<Vec<Variant>, String> {
    for (i, (name, _)) in sweeps.iter().enumerate() {
        if sweeps[..i].iter().any(|(n, _)| n == name) {
            return Err(format!("`{name}` is swept twice: give all its values in one --sweep {name}=..."));
        }
        if compile.set.iter().any(|(n, _)| n == name) {
            let flag = if name == "depth" { depth_flag } else { "--sweep" };
            return Err(format!("`{name}` is both fixed with --set and swept with {flag}: give one"));
        }
    }
    let mut out = Vec::new();
    for path in paths {
        for combination in combinations(sweeps) {
            let mut options = compile.options();
            options.set.extend(combination.iter().cloned());
            let compiled = compile_file(path, &options)?;
            print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
            let Some(model) = compiled.result.models.into_iter().next() else {
                return Err(format!("`{path}` has errors; nothing to run"));
            };
            let values: Vec<String> = combination.iter().map(|(n, v)| format!("{n}={v}")).collect();
            let label = std::iter::once(model.name.clone()).chain(values).collect::<Vec<_>>().join(" ");
            out.push(Variant { label, path: path.clone(), settings: options.set, model });
        }
    }
    Ok(out)
}

/// Normalised pixels of a batch, its [N, C, H, W] and its labels, on the host.
#[derive(Clone)]
struct HostBatch {
    pixels: Vec<f32>,
    dims: [usize; 4],
    labels: Vec<i64>,
}

/// A batch of real images for `model`, when `--data` is given: the first `batch`
/// images of a seeded stratified subset of the training set.
fn real_batch(args: &ProbeArgs, model: &Model) -> Result<Option<HostBatch>, String> {
    let Some(data) = &args.data else { return Ok(None) };
    let source = Source::parse(data);
    let loaded = super::train::load_for(&source, args.data_dir.as_deref(), model)?;
    let subset = loaded.train.subset(args.batch.min(loaded.train.len()), args.seed);
    let (mean, std) = source.standard_normalization().unwrap_or_else(|| subset.channel_stats());
    let pipeline = Pipeline { mean, std, crop_padding: 0, flip: false };
    let indices: Vec<usize> = (0..subset.len()).collect();
    // Built on the CPU once, then copied to whichever device runs the analysis.
    let device = burn::backend::flex::FlexDevice;
    let (images, labels) = pipeline.batch::<burn::backend::Flex>(&subset, &indices, None, &device);
    let dims = images.dims();
    let pixels = images.into_data().to_vec::<f32>().map_err(|e| format!("{e:?}"))?;
    let labels = labels.into_data().convert::<i64>().to_vec::<i64>().map_err(|e| format!("{e:?}"))?;
    Ok(Some(HostBatch { pixels, dims, labels }))
}

/// The real batch of each variant, the dataset read once per distinct input and output
/// shape rather than once per variant.
fn real_batches(args: &ProbeArgs, variants: &[Variant]) -> Result<Vec<Option<HostBatch>>, String> {
    let mut loaded: Vec<((Shape, Shape), Option<HostBatch>)> = Vec::new();
    let mut out = Vec::new();
    for variant in variants {
        let key = (variant.model.input, variant.model.output);
        let batch = match loaded.iter().find(|(k, _)| *k == key) {
            Some((_, batch)) => batch.clone(),
            None => {
                let batch = real_batch(args, &variant.model)?;
                loaded.push((key, batch.clone()));
                batch
            }
        };
        out.push(batch);
    }
    Ok(out)
}

fn probe<B: Backend>(model: &Model, real: &Option<HostBatch>, batch: usize, device: &B::Device) -> Probe<B> {
    match real {
        Some(host) => Probe {
            input: Value::Image(Tensor::from_data(TensorData::new(host.pixels.clone(), host.dims), device)),
            labels: Some(Tensor::from_data(TensorData::new(host.labels.clone(), [host.labels.len()]), device)),
        },
        None => Probe::random(model, batch, device),
    }
}

/// Builds `variant`'s network at initialisation and its batch, each from the seed, and
/// measures.
fn at_initialisation<B: Backend, T>(
    variant: &Variant,
    real: &Option<HostBatch>,
    args: &ProbeArgs,
    device: &B::Device,
    measure: impl FnOnce(&Network<B>, Probe<B>) -> T,
) -> T {
    B::seed(device, args.seed);
    let probe = probe::<B>(&variant.model, real, args.batch, device);
    B::seed(device, args.seed);
    let network = Network::<B>::new(&variant.model, device);
    measure(&network, probe)
}

fn check_batch(args: &ProbeArgs) -> Result<(), String> {
    // Batch norm in training mode needs more than one value per channel.
    if args.batch < 2 {
        return Err(format!("--batch must be at least 2 (batch norm needs a batch), not {}", args.batch));
    }
    Ok(())
}

/// The output directory: `--out`, or `runs/WHAT-SECONDS`; created.
pub(super) fn out_dir(out: &Option<PathBuf>, what: &str) -> Result<PathBuf, String> {
    let dir = out.clone().unwrap_or_else(|| {
        let seconds =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        PathBuf::from("runs").join(format!("{what}-{seconds}"))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
    Ok(dir)
}

/// A picture that cannot be drawn (no font, say) is a warning: the tables stand alone.
fn warn_unless_drawn(name: &str, result: Result<(), String>) -> bool {
    match result {
        Ok(()) => true,
        Err(message) => {
            eprintln!("warning: {name} not drawn: {message}");
            false
        }
    }
}

/// A CSV field, quoted when it holds a comma or a quote (labels such as
/// `norm=batchnorm(eps: 1e-3, momentum: 0.1)`).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) { format!("\"{}\"", text.replace('"', "\"\"")) } else { text.to_string() }
}

/// `1.23e-5`: gradient norms span many orders of magnitude.
fn sci(x: f64) -> String {
    match x {
        0.0 => "0".into(),
        x if x.is_nan() => "-".into(),
        x => format!("{x:.3e}"),
    }
}

fn gradients(args: ProbeArgs) -> Result<ExitCode, String> {
    check_batch(&args)?;
    let variants = variants(&args)?;
    let mut results: Vec<(String, Vec<LayerGradient>)> = Vec::new();
    for (variant, real) in variants.iter().zip(real_batches(&args, &variants)?) {
        let rows = crate::with_backend!(args.backend, |B, device| {
            let measure = |network: &_, probe| gradient_norms(network, probe);
            at_initialisation::<burn::backend::Autodiff<B>, _>(variant, &real, &args, &device, measure)
        })?;
        results.push((variant.label.clone(), rows));
    }
    let dir = out_dir(&args.out, "gradients")?;
    let mut text = String::new();
    let mut md = String::from("# Gradient norm per layer at initialisation\n\n");
    let _ = writeln!(md, "{}\n", batch_description(&args));
    // The output layer's gradient scales with the features it reads, which grow with
    // depth in a residual net; the flow through the body is first vs last hidden layer.
    let header =
        ["model", "weight layers", "first ‖∇W‖", "last hidden ‖∇W‖", "first / last hidden", "output layer ‖∇W‖"];
    let summary: Vec<[String; 6]> = results
        .iter()
        .map(|(label, rows)| {
            let norm = |i: Option<usize>| i.and_then(|i| rows.get(i)).map_or(f64::NAN, |r| r.grad_norm);
            let (first, hidden, output) =
                (norm(Some(0)), norm(rows.len().checked_sub(2)), norm(rows.len().checked_sub(1)));
            [label.clone(), rows.len().to_string(), sci(first), sci(hidden), sci(first / hidden), sci(output)]
        })
        .collect();
    text.push_str(&aligned(&header, &summary, 1));
    md.push_str(&markdown(&header, &summary, 1));
    let layer_header = ["depth", "layer", "op", "weights", "‖∇W‖", "‖W‖", "‖∇W‖ / ‖W‖"];
    for (label, rows) in &results {
        let cells: Vec<[String; 7]> = rows
            .iter()
            .map(|r| {
                [
                    r.depth.to_string(),
                    r.path.clone(),
                    r.what.clone(),
                    r.weights.to_string(),
                    sci(r.grad_norm),
                    sci(r.weight_norm),
                    sci(r.grad_norm / r.weight_norm),
                ]
            })
            .collect();
        let _ = write!(text, "\n{label}\n{}", aligned(&layer_header, &cells, 3));
        let _ = write!(md, "\n## {label}\n\n{}", markdown(&layer_header, &cells, 3));
    }
    let mut csv = String::from("model,depth,layer,op,weights,grad_norm,weight_norm\n");
    for (label, rows) in &results {
        for r in rows {
            let (label, path) = (csv_field(label), csv_field(&r.path));
            let _ = writeln!(
                csv,
                "{label},{},{path},{},{},{:e},{:e}",
                r.depth, r.what, r.weights, r.grad_norm, r.weight_norm
            );
        }
    }
    let series: Vec<plots::Series> = results
        .iter()
        .enumerate()
        .map(|(i, (label, rows))| {
            let points =
                rows.iter().filter(|r| r.grad_norm > 0.0).map(|r| (r.depth as f64, r.grad_norm.log10())).collect();
            (label.as_str(), points, plots::color(i))
        })
        .collect();
    let png = dir.join("gradients.png");
    let axes = Axes {
        title: "gradient norm per layer at initialisation",
        x: "layer depth (weight layers, input to output)",
        y: "log10 ‖∇W‖",
    };
    write_atomic(&dir.join("gradients.md"), &md)?;
    write_atomic(&dir.join("gradients.csv"), &csv)?;
    let drawn = warn_unless_drawn("gradients.png", plots::single(&png, (1000, 600), &axes, &series, true));
    print!("{text}");
    println!("\nwrote {}/gradients.{{md,csv{}}}", dir.display(), if drawn { ",png" } else { "" });
    Ok(ExitCode::SUCCESS)
}

fn batch_description(args: &ProbeArgs) -> String {
    let batch = match &args.data {
        Some(data) => format!("a batch of {} training images of `{data}`", args.batch),
        None => format!("a batch of {} standard-normal inputs", args.batch),
    };
    format!("One forward and backward pass at initialisation (training mode) on {batch}, seed {}.", args.seed)
}

fn activations(args: ProbeArgs) -> Result<ExitCode, String> {
    check_batch(&args)?;
    let variants = variants(&args)?;
    let mut results: Vec<(String, Vec<StepStats>)> = Vec::new();
    for (variant, real) in variants.iter().zip(real_batches(&args, &variants)?) {
        let rows = crate::with_backend!(args.backend, |B, device| {
            // The autodiff backend runs the network in training mode, as training does.
            let measure = |network: &_, probe: Probe<_>| activation_stats(network, probe.input);
            at_initialisation::<burn::backend::Autodiff<B>, _>(variant, &real, &args, &device, measure)
        })?;
        results.push((variant.label.clone(), rows));
    }
    let dir = out_dir(&args.out, "activations")?;
    let mut text = String::new();
    let mut md = String::from("# Activations per layer at initialisation\n\n");
    let description = batch_description(&args).replace(" and backward pass", " pass");
    let _ = writeln!(
        md,
        "{description} Each row is the output at one depth: the weight layer with the normalisation, activation and residual add that follow it."
    );
    let header = ["depth", "layer", "op", "mean", "std", "zeros"];
    for (label, rows) in &results {
        let cells: Vec<[String; 6]> = per_depth(rows)
            .into_iter()
            .map(|r| {
                [
                    r.depth.to_string(),
                    r.path.clone(),
                    r.what.clone(),
                    sci(r.mean),
                    sci(r.std),
                    format!("{:.1}%", 100.0 * r.zeros),
                ]
            })
            .collect();
        let _ = write!(text, "{}{label}\n{}", if text.is_empty() { "" } else { "\n" }, aligned(&header, &cells, 3));
        let _ = write!(md, "\n## {label}\n\n{}", markdown(&header, &cells, 3));
    }
    let mut csv = String::from("model,step,depth,layer,op,mean,std,zeros\n");
    for (label, rows) in &results {
        for (i, r) in rows.iter().enumerate() {
            let (label, path) = (csv_field(label), csv_field(&r.path));
            let _ =
                writeln!(csv, "{label},{},{},{path},{},{:e},{:e},{}", i + 1, r.depth, r.what, r.mean, r.std, r.zeros);
        }
    }
    let series = |value: fn(&StepStats) -> f64| -> Vec<plots::Series> {
        results
            .iter()
            .enumerate()
            .map(|(i, (label, rows))| {
                let points = per_depth(rows).into_iter().map(|r| (r.depth as f64, value(r))).collect();
                (label.as_str(), points, plots::color(i))
            })
            .collect()
    };
    let stds = series(|r| if r.std > 0.0 { r.std.log10() } else { f64::NAN });
    let means = series(|r| r.mean);
    let x = "layer depth (weight layers, input to output)";
    let picture = plots::atomic_png(&dir.join("activations.png"), (1400, 560), |root| {
        let (left, right) = root.split_horizontally(700);
        plots::line_chart(&left, &Axes { title: "standard deviation of activations", x, y: "log10 std" }, &stds)?;
        plots::line_chart(&right, &Axes { title: "mean of activations", x, y: "mean" }, &means)
    });
    write_atomic(&dir.join("activations.md"), &md)?;
    write_atomic(&dir.join("activations.csv"), &csv)?;
    let drawn = warn_unless_drawn("activations.png", picture);
    print!("{text}");
    println!("\nwrote {}/activations.{{md,csv{}}}", dir.display(), if drawn { ",png" } else { "" });
    Ok(ExitCode::SUCCESS)
}

fn attention(args: AttentionArgs) -> Result<ExitCode, String> {
    let compiled = compile_file(&args.model, &args.compile.options())?;
    print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    let Some(model) = compiled.result.models.first() else {
        return Err(format!("`{}` has errors; nothing to run", args.model));
    };
    let Shape::Image { c, h, w } = model.input else {
        return Err(format!("`{}` takes {}, not an image", model.name, model.input));
    };
    let (c, h, w) = (c as usize, h as usize, w as usize);
    let dict = args.weights.as_deref().map(StateDict::read).transpose()?;
    if let (Some(path), Some(dict)) = (&args.weights, &dict) {
        super::check_settings(path, dict, &args.compile)?;
    }
    let normalize = super::image_normalization(&args.mean, &args.std, dict.as_ref(), c)?;
    let input = images::load(&args.image, c, h, w, normalize.as_ref())?;
    let raw = images::load(&args.image, c, h, w, None)?;
    let picture = Picture {
        width: w,
        height: h,
        rgb: (0..h * w)
            .map(|i| {
                let at = |ch: usize| (raw[(ch.min(c - 1)) * h * w + i] * 255.0).round().clamp(0.0, 255.0) as u8;
                [at(0), at(1), at(2)]
            })
            .collect(),
    };
    let load_errors = |errors: Vec<String>| {
        let weights = args.weights.as_ref().map(|p| p.display().to_string()).unwrap_or_default();
        format!("`{weights}` does not fit `{}`:\n  {}", model.name, errors.join("\n  "))
    };
    let maps = crate::with_backend!(args.backend, |B, device| {
        B::seed(&device, args.seed);
        let mut network = Network::<B>::new(model, &device);
        if let Some(dict) = &dict {
            network = network.load_state_dict(dict).map_err(load_errors)?;
        }
        let image = Tensor::<B, 4>::from_data(TensorData::new(input.clone(), [1, c, h, w]), &device);
        Ok::<_, String>(attention_maps(&network, image))
    })??;
    if maps.is_empty() {
        return Err(format!(
            "`{}` has no attention to show: no SE or CBAM gate (`scale`) and no attention layer over a square patch grid",
            model.name
        ));
    }
    if dict.is_none() {
        eprintln!("warning: no --weights: these are the maps of an untrained network");
    }
    let dir = out_dir(&args.out, "attention")?;
    let mut written = Vec::new();
    let mut text = String::new();
    let channels: Vec<(String, Vec<f32>)> = maps
        .iter()
        .filter_map(|m| match m {
            AttentionMap::Channels { path, weights } => Some((path.clone(), weights.clone())),
            _ => None,
        })
        .collect();
    if !channels.is_empty() {
        let mut csv = String::from("gate,channel,weight\n");
        for (path, weights) in &channels {
            for (i, v) in weights.iter().enumerate() {
                let _ = writeln!(csv, "{},{i},{v}", csv_field(path));
            }
            let (lo, hi) = weights.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
            let mean = weights.iter().sum::<f32>() / weights.len().max(1) as f32;
            let _ = writeln!(
                text,
                "{path}: channel weights of {} channels, min {lo:.3}, mean {mean:.3}, max {hi:.3}",
                weights.len()
            );
        }
        write_atomic(&dir.join("channel_weights.csv"), &csv)?;
        let title = "channel weights of each gate (0 to 1)".to_string();
        written.push("channel_weights.csv");
        if warn_unless_drawn(
            "channel_weights.png",
            plots::bar_grid(&dir.join("channel_weights.png"), &title, &channels),
        ) {
            written.push("channel_weights.png");
        }
    }
    let spatial: Vec<(String, usize, usize, Vec<f32>)> = maps
        .iter()
        .filter_map(|m| match m {
            AttentionMap::Spatial { path, height, width, map } => Some((path.clone(), *width, *height, map.clone())),
            _ => None,
        })
        .collect();
    if !spatial.is_empty() {
        for (path, mw, mh, map) in &spatial {
            let mean = map.iter().sum::<f32>() / map.len().max(1) as f32;
            let _ = writeln!(text, "{path}: spatial map {mh}×{mw}, mean {mean:.3}");
        }
        let title = "spatial attention, 0 blue to 1 red".to_string();
        let png = dir.join("spatial_attention.png");
        if warn_unless_drawn("spatial_attention.png", plots::heat_grid(&png, &title, &picture, &spatial, false)) {
            written.push("spatial_attention.png");
        }
    }
    for map in &maps {
        if let AttentionMap::Heads { path, from_class_token, height, width, heads } = map {
            let what = if *from_class_token { "class-token attention" } else { "mean attention received" };
            let panels: Vec<(String, usize, usize, Vec<f32>)> = heads
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("head {}", i + 1), *width, *height, m.clone()))
                .collect();
            let _ = writeln!(text, "{path}: {what} of {} heads over {height}×{width} patches", heads.len());
            let title = format!("{what} per head, last attention layer (each head scaled to its range)");
            let png = dir.join("head_attention.png");
            if warn_unless_drawn("head_attention.png", plots::heat_grid(&png, &title, &picture, &panels, true)) {
                written.push("head_attention.png");
            }
        }
    }
    print!("{text}");
    println!("wrote {} in {}", written.join(", "), dir.display());
    Ok(ExitCode::SUCCESS)
}
