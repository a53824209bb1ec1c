//! `archc bench MODEL... [--batch 1,32,128] [--mode infer|train|both] [--backend ...]
//!  [--warmup N] [--iters N] [--threads N] [--format table|json] [--compare REF.json]`

use super::{CompileArgs, print_diagnostics};
use crate::backend::BackendKind;
use crate::bench::{self, Events, Measurement, Mode, Plan, Report, Request};
use crate::elaborate::Compiled;
use crate::error::{Error, IoReason};
use crate::ir::Model;
use crate::lower::Precision;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// `.arch` files to measure.
    #[arg(required = true)]
    files: Vec<String>,
    #[command(flatten)]
    compile: CompileArgs,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 32, 128],
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    batch: Vec<u32>,
    /// infer (eval-mode forward), train (forward, backward, SGD step) or both.
    #[arg(long, value_enum, default_value = "both")]
    mode: ModeArg,
    #[arg(long, value_enum, default_value = "flex")]
    backend: BackendKind,
    /// Compute precision: f32, or bf16/f16 mixed precision with f32 weights (what
    /// `bench/pytorch_reference.py --dtype bf16` measures with autocast).
    #[arg(long, value_enum, default_value = "f32")]
    precision: Precision,
    /// Untimed iterations before measuring (allocator, caches, CUDA autotuning).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed iterations per batch size and mode.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    iters: u32,
    /// CPU threads (default: one per core). Use the same number for the PyTorch reference.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    threads: Option<u32>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
    /// Also write the JSON report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// A JSON report (from `bench/pytorch_reference.py` or an earlier `archc bench`) to
    /// print side by side with this run.
    #[arg(long)]
    compare: Option<String>,
    #[command(flatten)]
    memory: super::MemoryArgs,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum ModeArg {
    Infer,
    Train,
    Both,
}

#[derive(Clone, Copy, PartialEq, clap::ValueEnum)]
enum OutputFormat {
    Table,
    Json,
}

pub fn run(args: BenchArgs) -> Result<ExitCode, Error> {
    let request = Request {
        files: args.files.clone(),
        compile: args.compile.options(),
        plan: Plan {
            batches: args.batch.iter().map(|&b| b as usize).collect(),
            modes: match args.mode {
                ModeArg::Infer => vec![Mode::Infer],
                ModeArg::Train => vec![Mode::Train],
                ModeArg::Both => vec![Mode::Infer, Mode::Train],
            },
            warmup: args.warmup,
            iters: args.iters as usize,
        },
        backend: args.backend,
        memory_check: args.memory.check(),
        precision: args.precision,
        threads: args.threads.map(|n| n as usize),
        reference: args.compare.clone(),
        out: args.out.clone(),
    };
    let mut printer = Printer { table: args.format == OutputFormat::Table, reference: None };
    let benched = bench::run(&request, &mut printer)?;
    if args.format == OutputFormat::Json {
        let json = serde_json::to_string_pretty(&benched.report)
            .map_err(|e| Error::Write { path: "standard output".into(), reason: IoReason::Other(e.to_string()) })?;
        println!("{json}");
    }
    Ok(ExitCode::from(if benched.failed.is_empty() { 0 } else { 1 }))
}

/// Diagnostics, each measurement as it is taken (on a terminal), and each model's
/// table (beside the reference's, when one is given).
struct Printer {
    table: bool,
    reference: Option<(String, Report)>,
}

impl Events for Printer {
    fn reference(&mut self, path: &str, reference: &Report) {
        self.reference = Some((path.to_string(), reference.clone()));
    }

    fn compiled(&mut self, compiled: &Compiled) {
        print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
        if compiled.result.has_errors() {
            eprintln!("error: `{}` has errors; nothing to measure", compiled.path);
        }
    }

    fn measurement(&mut self, m: &Measurement) {
        if std::io::stderr().is_terminal() {
            eprintln!("  {} {} batch {}: {:.2} ms", m.model, m.mode.name(), m.batch, m.latency_ms.median);
        }
    }

    fn measured(&mut self, model: &Model, results: &[Measurement]) {
        if !self.table {
            return;
        }
        println!("{}", bench::render(model, results));
        if let Some((path, reference)) = &self.reference {
            match bench::side_by_side(results, reference, path) {
                Ok(table) => println!("{table}"),
                Err(message) => eprintln!("warning: {message}"),
            }
        }
    }
}
