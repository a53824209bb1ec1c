//! `archc analyze gradients|activations MODEL...` (the labs' experiments at
//! initialisation) and `archc analyze attention MODEL IMAGE` (what a trained network's
//! gates and heads look at): the arguments, and what the jobs in `analyze::job`
//! measured, on stdout.

use super::{CompileArgs, NormalizeArgs, print_diagnostics};
use crate::analyze::job::{self, AttentionRequest, Events, ProbeRequest};
use crate::backend::BackendKind;
use crate::elaborate::Compiled;
use crate::error::Error;
use crate::report::Warning;
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
    #[command(flatten)]
    normalize: NormalizeArgs,
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
    #[command(flatten)]
    memory: super::MemoryArgs,
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

pub fn run(args: AnalyzeArgs) -> Result<ExitCode, Error> {
    let mut printer = Printer;
    let analyzed = match args.what {
        What::Gradients(probe) => job::gradients(&probe.request(), &mut printer)?,
        What::Activations(probe) => job::activations(&probe.request(), &mut printer)?,
        What::Attention(args) => {
            let shown = job::attention(&args.request(), &mut printer)?;
            print!("{}", shown.text);
            println!("wrote {} in {}", shown.written.join(", "), shown.dir.display());
            return Ok(ExitCode::SUCCESS);
        }
    };
    print!("{}", analyzed.text);
    println!("\nwrote {}/{}.{{{}}}", analyzed.dir.display(), analyzed.name, analyzed.written.join(","));
    Ok(ExitCode::SUCCESS)
}

impl ProbeArgs {
    fn request(self) -> ProbeRequest {
        ProbeRequest {
            models: self.models,
            sweep: self.sweep,
            depths: self.depths,
            compile: self.compile.options(),
            data: self.data,
            data_dir: self.data_dir,
            batch: self.batch,
            seed: self.seed,
            backend: self.backend,
            out: self.out,
            memory_check: self.memory.check(),
        }
    }
}

impl AttentionArgs {
    fn request(self) -> AttentionRequest {
        AttentionRequest {
            model: self.model,
            image: self.image,
            weights: self.weights,
            compile: self.compile.options(),
            mean: self.normalize.mean,
            std: self.normalize.std,
            seed: self.seed,
            backend: self.backend,
            out: self.out,
        }
    }
}

/// Diagnostics and warnings on stderr.
struct Printer;

impl Events for Printer {
    fn compiled(&mut self, compiled: &Compiled) {
        print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
    }

    fn warning(&mut self, warning: &Warning) {
        eprintln!("warning: {warning}");
    }
}
