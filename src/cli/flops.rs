//! `archc flops FILE... [--input CxHxW] [--batch N] [--by layer|block|stage]
//!  [--convention core|fvcore|full] [--sweep NAME=V1,V2,...] [--format table|markdown|csv|json]`

use super::{CompileArgs, compile_file, print_diagnostics};
use crate::cost::{self, Convention, Format, GroupBy};
use crate::error::{ArgumentError, Error};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct FlopsArgs {
    /// `.arch` files; several give a side-by-side summary after the tables.
    #[arg(required = true)]
    files: Vec<String>,
    #[command(flatten)]
    compile: CompileArgs,
    /// Batch size: multiplies MACs and activations.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    batch: u64,
    /// Rows per op, per block instance, or per top-level stage.
    #[arg(long, value_enum, default_value = "layer")]
    by: GroupBy,
    /// What counts as a multiply-accumulate (see README, "Counting conventions").
    #[arg(long, value_enum, default_value = "core")]
    convention: Convention,
    /// One row per value of a network parameter (`--sweep width=0.25,0.5,1,2`; several
    /// sweeps give every combination): params, MACs, memory and the multiple of the
    /// network as written. `--format csv` for plotting.
    #[arg(long, value_name = "NAME=V1,V2,...", value_parser = super::analyze::parse_sweep)]
    sweep: Vec<(String, Vec<String>)>,
    /// With one numeric `--sweep`: a PNG of MACs against the swept value, as built and
    /// unrounded (the ideal `check --rounding` measures), so what rounding bends shows.
    #[arg(long, value_name = "FILE.png", requires = "sweep")]
    plot: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn run(args: FlopsArgs) -> Result<ExitCode, Error> {
    if !args.sweep.is_empty() {
        return sweep(args);
    }
    let options = args.compile.options();
    let mut reports = Vec::new();
    let mut failed = false;
    for path in &args.files {
        let compiled = match compile_file(path, &options) {
            Ok(compiled) => compiled,
            Err(message) => {
                eprintln!("error: {message}");
                failed = true;
                continue;
            }
        };
        print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
        if compiled.result.has_errors() {
            eprintln!("error: `{path}` has errors; no cost table");
            failed = true;
            continue;
        }
        for model in &compiled.result.models {
            let report = cost::report(model, args.convention, args.batch, args.by);
            print!("{}", cost::render(&report, args.format));
            if matches!(args.format, Format::Table | Format::Markdown) {
                println!();
            }
            reports.push(report);
        }
    }
    if reports.len() > 1 && matches!(args.format, Format::Table | Format::Markdown) {
        print!("{}", cost::render_comparison(&reports, args.format));
    }
    Ok(ExitCode::from(if failed { 1 } else { 0 }))
}

/// `--sweep`: every combination of the swept values, for each file, against the file's
/// network as written.
fn sweep(args: FlopsArgs) -> Result<ExitCode, Error> {
    let options = args.compile.options();
    let axis = match (&args.plot, args.sweep.as_slice()) {
        (None, _) => None,
        (Some(_), [(name, values)]) => {
            let mut xs = Vec::new();
            for value in values {
                let x: f64 =
                    value.parse().map_err(|_| ArgumentError::PlotValue { name: name.clone(), value: value.clone() })?;
                xs.push(x);
            }
            Some((name.clone(), xs))
        }
        (Some(_), sweeps) => return Err(ArgumentError::PlotSweeps { swept: sweeps.len() }.into()),
    };
    let mut failed = None;
    let variants =
        crate::elaborate::variants::compile_variants(&args.files, &options, &args.sweep, "--sweep", &mut |compiled| {
            print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
        })?;
    for path in &args.files {
        let compiled = compile_file(path, &options)?;
        let Some(base) = compiled.result.models.first() else {
            print_diagnostics(&compiled.sources, &compiled.result.diagnostics);
            failed = Some(path.clone());
            continue;
        };
        let base = cost::report(base, args.convention, args.batch, GroupBy::Layer);
        let rows: Vec<(String, cost::Report)> = variants
            .iter()
            .filter(|v| &v.path == path)
            .map(|v| (v.label.clone(), cost::report(&v.model, args.convention, args.batch, GroupBy::Layer)))
            .collect();
        print!("{}", cost::render_sweep(&rows, &base, args.format));
        if let (Some(plot), Some((name, xs))) = (&args.plot, &axis) {
            let mut built = Vec::new();
            let mut ideal = Vec::new();
            let mut effect = Vec::new();
            // G, M or K MACs: whichever keeps the largest a number of a few digits.
            let largest = rows.iter().map(|(_, r)| r.macs).max().unwrap_or(0) as f64;
            let (unit, unit_name) = [(1e9, "GMACs"), (1e6, "MMACs"), (1e3, "KMACs")]
                .into_iter()
                .find(|(u, _)| largest >= *u)
                .unwrap_or((1.0, "MACs"));
            for ((variant, (_, report)), x) in variants.iter().filter(|v| &v.path == path).zip(&rows).zip(xs) {
                let options = crate::elaborate::Options { set: variant.settings.clone(), ..options.clone() };
                let rounding = crate::cost::rounding::rounding_report(path, &options)?;
                built.push((*x, report.macs as f64 / unit));
                if let Some(macs) = rounding.ideal_macs.map(|m| m * args.batch as f64) {
                    ideal.push((*x, macs / unit));
                    effect.push((*x, (report.macs as f64 / macs - 1.0) * 100.0));
                }
            }
            let title = format!("{}: MACs against {name}", base.model);
            let y = format!("{unit_name} (batch {})", args.batch);
            let axes = crate::plots::Axes { title: &title, x: name, y: &y };
            let series = [
                ("unrounded ideal", ideal, crate::plots::color(1)),
                ("as built (rounded)", built, crate::plots::color(0)),
            ];
            let effect_axes =
                crate::plots::Axes { title: "what rounding did", x: name, y: "MACs as built vs unrounded (%)" };
            if effect.is_empty() {
                eprintln!(
                    "warning: no unrounded ideal for any value (see `check --rounding`); the right panel is empty"
                );
            }
            let effect = [("as built vs unrounded", effect, crate::plots::color(2))];
            match crate::plots::side_by_side(plot, (1200, 500), (&axes, &series), (&effect_axes, &effect)) {
                Ok(()) => eprintln!("wrote {}", plot.display()),
                Err(error) => eprintln!("warning: no plot: {error}"),
            }
        }
    }
    if let Some(path) = failed {
        eprintln!("error: `{path}` has errors; no sweep");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::from(0))
}
