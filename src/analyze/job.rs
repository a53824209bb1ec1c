//! The analysis jobs behind `archc analyze`: gradient flow and activations of models at
//! initialisation (each variant of a sweep side by side), and attention maps of one
//! image. Each writes its tables, CSV and pictures into an output directory and returns
//! what it measured as text; diagnostics and warnings go to `Events`.

use super::Probe;
use super::activations::{StepStats, activation_stats, per_depth};
use super::attention::{AttentionMap, attention_maps};
use super::gradients::{LayerGradient, gradient_norms};
use crate::backend::BackendKind;
use crate::cost::admission::Purpose as MemoryPurpose;
use crate::data::dataset::{Pipeline, Source, load_for};
use crate::data::images;
use crate::elaborate::variants::{Variant, compile_variants};
use crate::elaborate::{Compiled, Options, compile_file};
use crate::error::{ArgumentError, DataError, Error, Purpose, WeightsError};
use crate::ir::{Model, Shape};
use crate::lower::weights::StateDict;
use crate::lower::{Network, Value};
use crate::plots::{self, Axes, DrawError, Picture};
use crate::report::files::out_dir;
use crate::report::{Warning, aligned, markdown, write_atomic};
use burn::prelude::*;
use std::fmt::Write;
use std::path::PathBuf;

/// The models for `gradients` and `activations`, and the batch to run them on.
pub struct ProbeRequest {
    /// The models' `.arch` files.
    pub models: Vec<String>,
    /// Network parameters and the values each takes; every combination runs.
    pub sweep: Vec<(String, Vec<String>)>,
    /// Shorthand for a sweep of `depth`.
    pub depths: Vec<u64>,
    pub compile: Options,
    /// Take the batch from this dataset's training set; without it the batch is seeded
    /// standard-normal noise.
    pub data: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub batch: usize,
    /// Seeds the initialisation and the batch.
    pub seed: u64,
    pub backend: BackendKind,
    /// The output directory (default: runs/gradients-TIME or runs/activations-TIME).
    pub out: Option<PathBuf>,
    /// Refuse a network whose memory estimate exceeds what the device can give
    /// (`cost::admission`); off with `--no-memory-check`.
    pub memory_check: bool,
}

/// The model, image and weights for `attention`.
pub struct AttentionRequest {
    pub model: String,
    /// A PNG or JPEG image; it is resized to the model's input.
    pub image: PathBuf,
    /// Trained weights; without them the maps are an untrained network's.
    pub weights: Option<PathBuf>,
    pub compile: Options,
    /// Per-channel mean and standard deviation for the image (default: from the
    /// checkpoint, else none).
    pub mean: Option<Vec<f32>>,
    pub std: Option<Vec<f32>>,
    /// Seeds the initialisation when no weights are given.
    pub seed: u64,
    pub backend: BackendKind,
    /// The output directory (default: runs/attention-TIME).
    pub out: Option<PathBuf>,
}

/// What the caller hears while a job runs.
pub trait Events {
    fn compiled(&mut self, _compiled: &Compiled) {}
    fn warning(&mut self, _warning: &Warning) {}
}

/// A finished `gradients` or `activations` run: its table as aligned text, and the
/// files `NAME.EXT` written into `dir` (the picture only when it could be drawn).
pub struct Analyzed {
    pub text: String,
    pub dir: PathBuf,
    pub name: &'static str,
    pub written: Vec<&'static str>,
}

/// A finished `attention` run: a line per map, and the files written into `dir`.
pub struct Shown {
    pub text: String,
    pub dir: PathBuf,
    pub written: Vec<&'static str>,
}

fn variants(args: &ProbeRequest, events: &mut dyn Events) -> Result<Vec<Variant>, Error> {
    let mut sweeps = args.sweep.clone();
    if !args.depths.is_empty() {
        if sweeps.iter().any(|(name, _)| name == "depth") {
            return Err(ArgumentError::DepthsTwice.into());
        }
        sweeps.push(("depth".into(), args.depths.iter().map(u64::to_string).collect()));
    }
    compile_variants(&args.models, &args.compile, &sweeps, "--depths", &mut |c| events.compiled(c))
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
fn real_batch(args: &ProbeRequest, model: &Model) -> Result<Option<HostBatch>, Error> {
    let Some(data) = &args.data else { return Ok(None) };
    let source = Source::parse(data);
    let loaded = load_for(&source, args.data_dir.as_deref(), model)?;
    let subset = loaded.train.subset(args.batch.min(loaded.train.len()), args.seed);
    let (mean, std) = source.standard_normalization().unwrap_or_else(|| subset.channel_stats());
    let pipeline = Pipeline { mean, std, crop_padding: 0, flip: false };
    let indices: Vec<usize> = (0..subset.len()).collect();
    // Built on the CPU once, then copied to whichever device runs the analysis.
    let device = burn::backend::flex::FlexDevice;
    let (images, labels) = pipeline.batch::<burn::backend::Flex>(&subset, &indices, None, &device);
    let dims = images.dims();
    // `iter` converts each value: it cannot fail.
    let pixels = images.into_data().iter::<f32>().collect();
    let labels = labels.into_data().iter::<i64>().collect();
    Ok(Some(HostBatch { pixels, dims, labels }))
}

/// The real batch of each variant, the dataset read once per distinct input and output
/// shape rather than once per variant.
fn real_batches(args: &ProbeRequest, variants: &[Variant]) -> Result<Vec<Option<HostBatch>>, Error> {
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
    args: &ProbeRequest,
    device: &B::Device,
    measure: impl FnOnce(&Network<B>, Probe<B>) -> T,
) -> T {
    B::seed(device, args.seed);
    let probe = probe::<B>(&variant.model, real, args.batch, device);
    B::seed(device, args.seed);
    let network = Network::<B>::new(&variant.model, device);
    measure(&network, probe)
}

/// Admission (`cost::admission`) of every variant, before any is built.
fn admit_all(args: &ProbeRequest, variants: &[Variant], purpose: MemoryPurpose) -> Result<(), Error> {
    if args.memory_check {
        for variant in variants {
            crate::backend::admit(args.backend, &variant.model, purpose, args.batch as u64)?;
        }
    }
    Ok(())
}

fn check_batch(args: &ProbeRequest) -> Result<(), Error> {
    // Batch norm in training mode needs more than one value per channel.
    if args.batch < 2 {
        return Err(ArgumentError::BatchForBatchNorm { batch: args.batch }.into());
    }
    Ok(())
}

/// A picture that cannot be drawn (no font, say) is a warning: the tables stand alone.
fn warn_unless_drawn(events: &mut dyn Events, name: &str, result: Result<(), DrawError>) -> bool {
    match result {
        Ok(()) => true,
        Err(reason) => {
            events.warning(&Warning::NotDrawn { picture: name.to_string(), reason: reason.to_string() });
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

/// Gradient norm of every weight layer after one backward pass at initialisation, for
/// every variant: written as gradients.{md,csv,png} in the output directory.
pub fn gradients(args: &ProbeRequest, events: &mut dyn Events) -> Result<Analyzed, Error> {
    check_batch(args)?;
    let variants = variants(args, events)?;
    admit_all(args, &variants, MemoryPurpose::Train { state_copies: 0 })?;
    let mut results: Vec<(String, Vec<LayerGradient>)> = Vec::new();
    for (variant, real) in variants.iter().zip(real_batches(args, &variants)?) {
        let rows = crate::with_backend!(args.backend, |B, device| {
            let measure = |network: &_, probe| gradient_norms(network, probe);
            at_initialisation::<burn::backend::Autodiff<B>, _>(variant, &real, args, &device, measure)
        })?;
        results.push((variant.label.clone(), rows));
    }
    let dir = out_dir(args.out.as_deref(), "gradients")?;
    let mut text = String::new();
    let mut md = String::from("# Gradient norm per layer at initialisation\n\n");
    let _ = writeln!(md, "{}\n", batch_description(args));
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
    let drawn = warn_unless_drawn(events, "gradients.png", plots::single(&png, (1000, 600), &axes, &series, true));
    let written = if drawn { vec!["md", "csv", "png"] } else { vec!["md", "csv"] };
    Ok(Analyzed { text, dir, name: "gradients", written })
}

fn batch_description(args: &ProbeRequest) -> String {
    let batch = match &args.data {
        Some(data) => format!("a batch of {} training images of `{data}`", args.batch),
        None => format!("a batch of {} standard-normal inputs", args.batch),
    };
    format!("One forward and backward pass at initialisation (training mode) on {batch}, seed {}.", args.seed)
}

/// Mean and standard deviation of every layer's output at initialisation, for every
/// variant: written as activations.{md,csv,png} in the output directory.
pub fn activations(args: &ProbeRequest, events: &mut dyn Events) -> Result<Analyzed, Error> {
    check_batch(args)?;
    let variants = variants(args, events)?;
    // Every activation is read after the pass: all are held, as in training.
    admit_all(args, &variants, MemoryPurpose::Train { state_copies: 0 })?;
    let mut results: Vec<(String, Vec<StepStats>)> = Vec::new();
    for (variant, real) in variants.iter().zip(real_batches(args, &variants)?) {
        let rows = crate::with_backend!(args.backend, |B, device| {
            // The autodiff backend runs the network in training mode, as training does.
            let measure = |network: &_, probe: Probe<_>| activation_stats(network, probe.input);
            at_initialisation::<burn::backend::Autodiff<B>, _>(variant, &real, args, &device, measure)
        })?;
        results.push((variant.label.clone(), rows));
    }
    let dir = out_dir(args.out.as_deref(), "activations")?;
    let mut text = String::new();
    let mut md = String::from("# Activations per layer at initialisation\n\n");
    let description = batch_description(args).replace(" and backward pass", " pass");
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
    let drawn = warn_unless_drawn(events, "activations.png", picture);
    let written = if drawn { vec!["md", "csv", "png"] } else { vec!["md", "csv"] };
    Ok(Analyzed { text, dir, name: "activations", written })
}

/// What a network's SE/CBAM gates and ViT heads look at for one image: channel weights
/// (CSV and bars), spatial maps and per-head attention (heat maps over the image).
pub fn attention(args: &AttentionRequest, events: &mut dyn Events) -> Result<Shown, Error> {
    let compiled = compile_file(&args.model, &args.compile)?;
    events.compiled(&compiled);
    let Some(model) = compiled.result.models.first() else {
        return Err(Error::HasErrors { path: args.model.clone(), purpose: Purpose::Run });
    };
    let Shape::Image { c, h, w } = model.input else {
        return Err(DataError::NotAnImageModel { model: model.name.clone(), input: model.input }.into());
    };
    let (c, h, w) = (c as usize, h as usize, w as usize);
    let dict = args.weights.as_deref().map(StateDict::read).transpose()?;
    if let (Some(path), Some(dict)) = (&args.weights, &dict) {
        dict.check_settings(path, &args.compile.set)?;
    }
    let stored = match (&dict, &args.weights) {
        (Some(dict), Some(path)) => dict.stored_normalization(path, c)?,
        _ => None,
    };
    let normalize = images::normalization(&args.mean, &args.std, stored, c)?;
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
    let load_errors = |problems| WeightsError::DoNotFit {
        weights: args.weights.clone().unwrap_or_default(),
        model: model.name.clone(),
        problems,
    };
    let maps = crate::with_backend!(args.backend, |B, device| {
        B::seed(&device, args.seed);
        let mut network = Network::<B>::new(model, &device);
        if let Some(dict) = &dict {
            network = network.load_state_dict(dict).map_err(load_errors)?;
        }
        let image = Tensor::<B, 4>::from_data(TensorData::new(input.clone(), [1, c, h, w]), &device);
        Ok::<_, Error>(attention_maps(&network, image))
    })??;
    if maps.is_empty() {
        return Err(DataError::NoAttention { model: model.name.clone() }.into());
    }
    if dict.is_none() {
        events.warning(&Warning::UntrainedMaps);
    }
    let dir = out_dir(args.out.as_deref(), "attention")?;
    let mut shown = Shown { text: String::new(), dir, written: Vec::new() };
    write_channel_weights(&maps, &mut shown, events)?;
    draw_maps(&maps, &picture, &mut shown, events);
    Ok(shown)
}

/// The SE/CBAM gates' channel weights: a line each, a CSV, and bars.
fn write_channel_weights(maps: &[AttentionMap], shown: &mut Shown, events: &mut dyn Events) -> Result<(), Error> {
    let Shown { text, dir, written } = shown;
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
            events,
            "channel_weights.png",
            plots::bar_grid(&dir.join("channel_weights.png"), &title, &channels),
        ) {
            written.push("channel_weights.png");
        }
    }
    Ok(())
}

/// CBAM's spatial maps and a ViT's per-head attention, as heat maps over the image.
fn draw_maps(maps: &[AttentionMap], picture: &Picture, shown: &mut Shown, events: &mut dyn Events) {
    let Shown { text, dir, written } = shown;
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
        if warn_unless_drawn(events, "spatial_attention.png", plots::heat_grid(&png, &title, picture, &spatial, false))
        {
            written.push("spatial_attention.png");
        }
    }
    for map in maps {
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
            if warn_unless_drawn(events, "head_attention.png", plots::heat_grid(&png, &title, picture, &panels, true)) {
                written.push("head_attention.png");
            }
        }
    }
}
