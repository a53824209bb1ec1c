//! Subcommands, one file each: each parses its arguments into a library request, calls
//! the job (or the compiler), and prints what comes back; errors are printed here as
//! `error: ...` with exit code 1.

mod analyze;
mod bench;
mod check;
mod compare;
mod diff;
mod eval;
mod explain;
mod export;
mod flops;
mod fmt;
mod graph;
mod ir;
mod lsp;
mod predict;
mod train;

use crate::diagnostics::{Code, Diagnostic, render_human};
use crate::elaborate::Options;
use crate::ir::Shape;
use crate::source::Sources;
use clap::{FromArgMatches, Parser, Subcommand};
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
    /// Write a model out: an ONNX file (onnxruntime, TensorRT, Netron) or a PyTorch module.
    Export(export::ExportArgs),
    /// Explain a diagnostic code (`archc explain E0009`), or list them all.
    Explain(explain::ExplainArgs),
    /// What an edit changed: modules and tensors by name, cost per stage (two files, or
    /// one with `--set A:… --set B:…`).
    Diff(diff::DiffArgs),
    /// Draw a network: SVG, an explorable HTML page, or Graphviz DOT, with every shape
    /// and cost.
    Graph(graph::GraphArgs),
    /// Format `.arch` files in place (`--check` lists those that are not; `-` for stdin).
    Fmt(fmt::FmtArgs),
    /// The language server, over stdin and stdout, for editors (see editors/).
    Lsp(lsp::LspArgs),
}

/// Runs the command the arguments name. `matches` also says which options were given
/// on the command line (not defaulted), which `train --resume` needs.
pub fn run(matches: &clap::ArgMatches) -> ExitCode {
    let cli = match Cli::from_arg_matches(matches) {
        Ok(cli) => cli,
        Err(error) => error.exit(),
    };
    let result = match cli.command {
        Command::Check(args) => check::run(args),
        Command::Ir(args) => ir::run(args),
        Command::Flops(args) => flops::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Train(args) => train::run(args, &given_options(matches, "train")),
        Command::Eval(args) => eval::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Export(args) => export::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Graph(args) => graph::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Lsp(args) => lsp::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

/// The options (and positional arguments) the command line gave to `subcommand`, as
/// written (`--lr`, `MODEL`), rather than left to their defaults.
fn given_options(matches: &clap::ArgMatches, subcommand: &str) -> Vec<String> {
    use clap::CommandFactory;
    let (Some(matches), Some(command)) =
        (matches.subcommand_matches(subcommand), Cli::command().find_subcommand(subcommand).cloned())
    else {
        return Vec::new();
    };
    command
        .get_arguments()
        .filter(|arg| matches.value_source(arg.get_id().as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|arg| match arg.get_long() {
            Some(long) => format!("--{long}"),
            None => arg.get_id().as_str().to_uppercase(),
        })
        .collect()
}

/// How a command writes its results: for people, or one JSON object per line.
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
}

/// How images are normalised for a trained model: `(x − mean) / std` per channel.
#[derive(clap::Args)]
pub struct NormalizeArgs {
    /// Per-channel mean for images, e.g. 0.485,0.456,0.406 (default: from the
    /// checkpoint, else none).
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel standard deviation, e.g. 0.229,0.224,0.225 (default: from the
    /// checkpoint, else none).
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
}

/// `--no-memory-check`, for every command that builds a network.
#[derive(clap::Args, Clone, Default)]
pub struct MemoryArgs {
    /// Build the network even when its memory estimate for the batch (as `archc flops`
    /// computes it) exceeds what the device can give: for when the estimate is wrong.
    #[arg(long)]
    no_memory_check: bool,
}

impl MemoryArgs {
    fn check(&self) -> bool {
        !self.no_memory_check
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
        Options { input: self.input, allow: self.allow.clone(), set: self.set.clone(), nudge: None }
    }
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

pub use crate::elaborate::{Compiled, compile_file};

/// Writes a command's result to stdout: a write that fails (a full disk) is an error
/// naming stdout, not a panic.
pub fn print_out(text: &str) -> Result<(), crate::error::Error> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| crate::error::Error::Write { path: "stdout".into(), reason: crate::error::IoReason::os(&e) })
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
