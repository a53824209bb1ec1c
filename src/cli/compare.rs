//! `archc compare MODEL... --data DATASET`: the arguments, the progress lines, and the
//! comparison table at the end. The job itself is `compare::run`.

use super::CompileArgs;
use super::train::Printer;
use crate::backend::BackendKind;
use crate::compare::{self, Events, Request};
use crate::error::Error;
use crate::train::job::TrainOptions;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CompareArgs {
    /// The models' `.arch` files.
    #[arg(required = true)]
    models: Vec<String>,
    /// fashion-mnist, mnist, cifar10, cifar100, or an ImageFolder directory.
    #[arg(long)]
    data: String,
    /// Where the dataset's files are (as for `archc train`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Training-set sizes to compare: stratified, seeded subsets of N images, or `all`
    /// (e.g. 1000,10000,all).
    #[arg(long, value_delimiter = ',', value_parser = parse_subset, default_value = "all")]
    subset: Vec<Option<usize>>,
    /// Compare values of a network parameter: NAME=V1,V2,... (e.g. skip=false,true);
    /// every model runs with every combination.
    #[arg(long, value_name = "NAME=V1,V2,...", value_parser = super::analyze::parse_sweep)]
    sweep: Vec<(String, Vec<String>)>,
    #[command(flatten)]
    compile: CompileArgs,
    #[command(flatten)]
    options: TrainOptions,
    /// Batch sizes at which inference latency is measured.
    #[arg(long, value_delimiter = ',', default_value = "1,32,128")]
    bench_batch: Vec<usize>,
    /// Timed iterations per latency measurement.
    #[arg(long, default_value_t = 10)]
    bench_iters: usize,
    /// The report directory (default: runs/compare-TIME).
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(flatten)]
    memory: super::MemoryArgs,
}

fn parse_subset(text: &str) -> Result<Option<usize>, String> {
    match text.trim() {
        "all" | "full" => Ok(None),
        n => match n.parse::<usize>() {
            Ok(0) | Err(_) => Err(format!("`{text}` is not a training-set size: write a positive number or `all`")),
            Ok(n) => Ok(Some(n)),
        },
    }
}

pub fn run(args: CompareArgs) -> Result<ExitCode, Error> {
    let command: Vec<String> = std::env::args().map(|a| if a.contains(' ') { format!("'{a}'") } else { a }).collect();
    let request = Request {
        models: args.models,
        data: args.data,
        data_dir: args.data_dir,
        subset: args.subset,
        sweep: args.sweep,
        compile: args.compile.options(),
        options: args.options,
        bench_batch: args.bench_batch,
        bench_iters: args.bench_iters,
        out: args.out,
        command: command.join(" "),
        memory_check: args.memory.check(),
    };
    let compared = compare::run(&request, &mut Printer::default())?;
    println!("\n{}", compared.table);
    println!("report: {}", compared.dir.join("report.md").display());
    Ok(ExitCode::SUCCESS)
}

impl Events for Printer {
    fn measuring(&mut self, label: &str, backend: BackendKind, threads: usize) {
        println!("== measuring {label} on {backend} ({threads} threads)");
    }

    fn training(&mut self, label: &str, images: &str, data: &str) {
        println!("== training {label} on {images} images of {data}");
    }
}
