//! Subcommands, one file each. They load files, call the compiler and print.

mod analyze;
mod bench;
mod check;
mod compare;
mod eval;
mod explain;
mod flops;
mod ir;
mod predict;
mod train;

use crate::diagnostics::{Code, Diagnostic, render_human};
use crate::elaborate::{self, Compilation, Options};
use crate::ir::Shape;
use crate::source::Sources;
use clap::{Parser, Subcommand};
use codespan_reporting::term::termcolor::{ColorChoice, StandardStream};
use std::io::IsTerminal;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "archc", version, about = "A compiler for neural-network architectures")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check models: every shape, every mistake, before anything runs.
    Check(check::CheckArgs),
    /// Print the IR of a model in its canonical text form.
    Ir(ir::IrArgs),
    /// Static cost tables: parameters, MACs, FLOPs, memory.
    Flops(flops::FlopsArgs),
    /// Run a classifier on images or .npy arrays with given weights: top-5 classes.
    Predict(predict::PredictArgs),
    /// Train a model on a dataset, writing a run directory (metrics, checkpoints).
    Train(train::TrainArgs),
    /// Evaluate weights on a dataset's test set: accuracy, per class, confusion matrix.
    Eval(eval::EvalArgs),
    /// Measure latency, throughput and peak memory; compare with a PyTorch reference run.
    Bench(bench::BenchArgs),
    /// The labs' experiments: gradient flow and activations at initialisation, attention maps.
    #[command(subcommand_required = true)]
    Analyze(analyze::AnalyzeArgs),
    /// Train and measure several models on one dataset: a Markdown report with a
    /// comparison table and plots.
    Compare(compare::CompareArgs),
    /// Explain a diagnostic code (`archc explain E0009`), or list them all.
    Explain(explain::ExplainArgs),
}

pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Ir(args) => ir::run(args),
        Command::Flops(args) => flops::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Explain(args) => explain::run(args),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Options shared by every command that compiles models.
#[derive(clap::Args, Clone, Default)]
pub struct CompileArgs {
    /// Override the declared input: CxHxW for an image (3x32x32), NxD for tokens, D for a vector.
    #[arg(long, value_parser = parse_input)]
    input: Option<Shape>,
    /// Silence a lint for this run (code or name, e.g. W0002 or uneven_stride). Repeatable.
    #[arg(long, value_parser = parse_lint)]
    allow: Vec<Code>,
    /// Set a network parameter: NAME=VALUE, e.g. --set skip=false --set classes=100. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = parse_setting)]
    set: Vec<(String, String)>,
}

impl CompileArgs {
    fn options(&self) -> Options {
        Options { input: self.input, allow: self.allow.clone(), set: self.set.clone() }
    }
}

/// The normalisation for image inputs: `--mean` and `--std` when given, else what the
/// checkpoint stores, else none.
pub fn image_normalization(
    mean: &Option<Vec<f32>>,
    std: &Option<Vec<f32>>,
    dict: Option<&crate::lower::weights::StateDict>,
    channels: usize,
) -> Result<Option<crate::data::images::Normalize>, String> {
    let (mean, std) = match (mean, std) {
        (Some(m), Some(s)) => (m.clone(), s.clone()),
        (None, None) => match dict.and_then(|d| d.normalization(channels)) {
            Some(stored) => stored,
            None => return Ok(None),
        },
        _ => return Err("give both --mean and --std, or neither".into()),
    };
    if mean.len() != channels || std.len() != channels || std.contains(&0.0) {
        return Err(format!("normalisation needs {channels} means and {channels} non-zero stds"));
    }
    Ok(Some(crate::data::images::Normalize { mean, std }))
}

/// Weights trained with `--set` arguments only fit the network built with the same
/// ones; a different network may take the same tensor shapes and give wrong answers
/// without any error.
pub fn check_settings(
    weights: &std::path::Path,
    dict: &crate::lower::weights::StateDict,
    compile: &CompileArgs,
) -> Result<(), String> {
    let normal = |set: &[(String, String)]| {
        let mut set: Vec<(String, String)> = set.iter().map(|(n, v)| (n.clone(), v.trim().to_string())).collect();
        set.sort();
        set
    };
    // Only archc's checkpoints record their arguments (`set`, beside the class names it
    // always writes); a PyTorch file says nothing about how it was built, so any `--set`
    // may use it.
    if !dict.metadata.contains_key("set") && !dict.metadata.contains_key("classes") {
        return Ok(());
    }
    let (trained, given) = (normal(&dict.settings()), normal(&compile.set));
    if trained == given {
        return Ok(());
    }
    let show = |set: &[(String, String)]| match set.is_empty() {
        true => "no --set".to_string(),
        false => set.iter().map(|(n, v)| format!("--set {n}={v}")).collect::<Vec<_>>().join(" "),
    };
    Err(format!(
        "`{}` was trained with {}, but this run has {}: give the same settings",
        weights.display(),
        show(&trained),
        show(&given)
    ))
}

/// `NAME=VALUE`; the value is an expression of the language, checked when compiling.
pub fn parse_setting(text: &str) -> Result<(String, String), String> {
    let (name, value) =
        text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=VALUE, e.g. --set skip=false"))?;
    let name = name.trim();
    let is_name = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err(format!("`{name}` in `{text}` is not a parameter name"));
    }
    if value.trim().is_empty() {
        return Err(format!("`{text}` gives no value for `{name}`"));
    }
    Ok((name.to_string(), value.to_string()))
}

pub fn parse_input(text: &str) -> Result<Shape, String> {
    let mut sizes = Vec::new();
    for part in text.split(['x', 'X', ',']) {
        let part = part.trim();
        match part.parse::<u64>() {
            Ok(n) => sizes.push(n),
            Err(_) if !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) => {
                return Err(format!("`{part}` in `{text}` is too large"));
            }
            Err(_) => return Err(format!("`{text}` is not a shape: write CxHxW, e.g. 3x224x224")),
        }
    }
    if sizes.contains(&0) {
        return Err(format!("`{text}`: sizes must be positive"));
    }
    let shape = match sizes.as_slice() {
        [c, h, w] => Shape::Image { c: *c, h: *h, w: *w },
        [n, d] => Shape::Tokens { n: *n, d: *d },
        [d] => Shape::Vector { d: *d },
        _ => return Err(format!("`{text}` is not a shape: write CxHxW, e.g. 3x224x224")),
    };
    shape.elements().map(|_| shape).ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_lint(text: &str) -> Result<Code, String> {
    Code::lookup(text)
        .filter(|c| c.info().lint.is_some())
        .ok_or_else(|| format!("`{text}` is not a lint; see `archc explain`"))
}

/// One file, compiled: its sources (for rendering) and the result.
pub struct Compiled {
    pub path: String,
    pub sources: Sources,
    pub result: Compilation,
}

/// Reads and compiles a file. An unreadable file is a one-line error naming it.
pub fn compile_file(path: &str, options: &Options) -> Result<Compiled, String> {
    let text = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("cannot read `{path}`: no such file"),
        std::io::ErrorKind::IsADirectory => format!("cannot read `{path}`: it is a directory"),
        _ => format!("cannot read `{path}`: {e}"),
    })?;
    let text = String::from_utf8(text).map_err(|_| format!("cannot read `{path}`: it is not UTF-8 text"))?;
    let mut sources = Sources::new();
    let result = elaborate::compile(&mut sources, path, &text, options);
    Ok(Compiled { path: path.to_string(), sources, result })
}

/// Prints diagnostics to stderr, in colour on a terminal.
pub fn print_diagnostics(sources: &Sources, diagnostics: &[Diagnostic]) {
    if diagnostics.is_empty() {
        return;
    }
    let choice = if std::io::stderr().is_terminal() { ColorChoice::Auto } else { ColorChoice::Never };
    let mut stderr = StandardStream::stderr(choice);
    render_human(sources, diagnostics, &mut stderr);
}

/// `1,234,567`
pub fn thousands(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// `4.09 G`, `25.6 M`: three significant digits with an SI prefix.
pub fn human(n: u128) -> String {
    const UNITS: &[(f64, &str)] = &[(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")];
    let value = n as f64;
    for (scale, unit) in UNITS {
        if value >= *scale {
            let scaled = value / scale;
            let text = if scaled >= 100.0 {
                format!("{scaled:.0}")
            } else if scaled >= 10.0 {
                format!("{scaled:.1}")
            } else {
                format!("{scaled:.2}")
            };
            return format!("{text} {unit}");
        }
    }
    n.to_string()
}
