//! `archc check FILE... [--input CxHxW] [--trace] [--rounding] [--format human|json]`

use super::{CompileArgs, Format, compile_file, print_diagnostics};
use crate::error::Error;
use crate::ir;
use crate::report::thousands;
use serde_json::json;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// `.arch` files to check.
    #[arg(required = true)]
    files: Vec<String>,
    #[command(flatten)]
    compile: CompileArgs,
    /// Print the shape trace: every layer's name, op and output shape.
    #[arg(long)]
    trace: bool,
    /// List every value the network rounded to a whole number (channel and block
    /// counts under `make_divisible`, `round`, integer division), and the params and
    /// MACs as built against the unrounded ideal.
    #[arg(long)]
    rounding: bool,
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
}

/// Exact integers in JSON: a number when it fits in 64 bits, a decimal string beyond.
fn json_int(n: u128) -> serde_json::Value {
    u64::try_from(n).map(serde_json::Value::from).unwrap_or_else(|_| serde_json::Value::String(n.to_string()))
}

pub fn run(args: CheckArgs) -> Result<ExitCode, Error> {
    let options = args.compile.options();
    let mut failed = false;
    for path in &args.files {
        let compiled = match compile_file(path, &options) {
            Ok(compiled) => compiled,
            Err(message) => {
                failed = true;
                if args.format == Format::Json {
                    // The same fields as every other diagnostic and line, with no span to point at.
                    let error = json!({"code": "io", "severity": "error", "message": message.to_string(), "label": "",
                                       "file": path, "line": 0, "column": 0, "help": null, "notes": [], "related": []});
                    println!(
                        "{}",
                        json!({"file": path, "model": null, "params": null, "input": null, "output": null,
                               "errors": [error], "warnings": []})
                    );
                } else {
                    eprintln!("error: {message}");
                }
                continue;
            }
        };
        let result = &compiled.result;
        failed |= result.has_errors();
        match args.format {
            Format::Human => {
                print_diagnostics(&compiled.sources, &result.diagnostics);
                for model in &result.models {
                    println!(
                        "{}: {} → {}, {} params",
                        model.name,
                        model.input,
                        model.output,
                        thousands(model.params())
                    );
                    if args.trace {
                        print!("{}", ir::trace(model));
                    }
                }
                if args.rounding && !result.has_errors() && !result.models.is_empty() {
                    let report = crate::cost::rounding::rounding_report(path, &options)?;
                    print!("\n{}", crate::cost::rounding::render_rounding(&report));
                }
                // A network with errors has no model; its trace shows how far checking got.
                if args.trace && result.models.is_empty() {
                    for checked in &result.steps {
                        print!("{}", ir::trace_steps(&checked.network, checked.input, &checked.steps));
                    }
                }
                let errors = result.diagnostics.iter().filter(|d| d.is_error()).count();
                if errors > 0 {
                    let warnings = result.diagnostics.len() - errors;
                    eprintln!(
                        "error: `{path}` has {errors} error{}{}",
                        if errors == 1 { "" } else { "s" },
                        if warnings > 0 {
                            format!(" and {warnings} warning{}", if warnings == 1 { "" } else { "s" })
                        } else {
                            String::new()
                        }
                    );
                } else if result.networks.is_empty() {
                    println!("{path}: no errors, but no network to check (it defines no `network`)");
                }
            }
            Format::Json => {
                let diagnostics = |errors: bool| -> Vec<serde_json::Value> {
                    result
                        .diagnostics
                        .iter()
                        .filter(|d| d.is_error() == errors)
                        .map(|d| serde_json::to_value(d.to_json(&compiled.sources)).unwrap_or_default())
                        .collect()
                };
                let mut objects = Vec::new();
                for name in &result.networks {
                    let model = result.models.iter().find(|m| &m.name == name);
                    objects.push(json!({
                        "file": path,
                        "model": name,
                        "params": model.map(|m| json_int(m.params())),
                        "input": model.map(|m| m.input),
                        "output": model.map(|m| m.output),
                    }));
                }
                if objects.is_empty() {
                    objects.push(json!({"file": path, "model": null, "params": null, "input": null, "output": null}));
                }
                let rounding = if args.rounding && !result.has_errors() && !result.models.is_empty() {
                    Some(crate::cost::rounding::rounding_report(path, &options)?)
                } else {
                    None
                };
                for mut object in objects {
                    object["errors"] = serde_json::Value::Array(diagnostics(true));
                    object["warnings"] = serde_json::Value::Array(diagnostics(false));
                    if let Some(rounding) = rounding.as_ref().filter(|r| object["model"] == r.network.as_str()) {
                        object["rounding"] = serde_json::to_value(rounding).unwrap_or_default();
                    }
                    println!("{object}");
                }
            }
        }
    }
    Ok(ExitCode::from(if failed { 1 } else { 0 }))
}
