//! Cost tables as text: aligned table, Markdown, CSV (exact integers), JSON (exact).

use super::Report;
use crate::report::{aligned, bytes, human, markdown, thousands};
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Markdown,
    Csv,
    Json,
}

const HEADER: [&str; 8] = ["name", "op", "output", "params", "MACs", "FLOPs", "activations", "%"];

fn percent(part: u128, whole: u128) -> String {
    if whole == 0 {
        return "-".into();
    }
    // Exact integer arithmetic down to hundredths of a percent.
    let hundredths = part.saturating_mul(10_000) / whole;
    format!("{}.{:02}%", hundredths / 100, hundredths % 100)
}

fn cells(report: &Report) -> Vec<[String; 8]> {
    let mut rows: Vec<[String; 8]> = report
        .rows
        .iter()
        .map(|r| {
            [
                if r.name.is_empty() { "(network)".into() } else { r.name.clone() },
                r.op.clone(),
                r.output.to_string(),
                human(r.params),
                human(r.macs),
                human(r.macs.saturating_mul(2)),
                human(r.activations),
                percent(r.macs, report.macs),
            ]
        })
        .collect();
    rows.push([
        "total".into(),
        String::new(),
        String::new(),
        human(report.params),
        human(report.macs),
        human(report.flops),
        human(report.activations),
        percent(report.macs, report.macs),
    ]);
    rows
}

fn title(report: &Report) -> String {
    format!(
        "{}: {} MACs, {} FLOPs, {} params ({} convention, input {}, batch {})",
        report.model,
        thousands(report.macs),
        thousands(report.flops),
        thousands(report.params),
        report.convention.name(),
        report.input,
        report.batch
    )
}

fn memory_lines(report: &Report) -> String {
    let m = &report.memory;
    format!(
        "memory (float32): parameters {}, forward activations {} at batch {}\n\
         training estimate: {} with SGD + momentum, {} with Adam (weights + gradients + optimiser state + activations kept for backward)\n",
        bytes(m.param_bytes),
        bytes(m.forward_activation_bytes),
        report.batch,
        bytes(m.train_sgd_momentum_bytes),
        bytes(m.train_adam_bytes)
    )
}

pub fn render(report: &Report, format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Table => {
            let rows = cells(report);
            let _ = writeln!(out, "{}", title(report));
            // Names, ops and shapes align left; numbers align right.
            out.push_str(&aligned(&HEADER, &rows, 3));
            out.push_str(&memory_lines(report));
        }
        Format::Markdown => {
            let _ = writeln!(out, "### {}\n", title(report));
            let _ = writeln!(out, "| {} |", HEADER.join(" | "));
            let _ = writeln!(out, "|{}|", ["---", "---", "---", "--:", "--:", "--:", "--:", "--:"].join("|"));
            for row in cells(report) {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
            let _ = writeln!(out);
            out.push_str(&memory_lines(report));
        }
        Format::Csv => {
            let _ = writeln!(out, "model,name,op,output,params,macs,flops,activations");
            for r in &report.rows {
                let output: Vec<String> = r.output.dims().iter().map(u64::to_string).collect();
                let _ = writeln!(
                    out,
                    "{},{},{},{},{},{},{},{}",
                    report.model,
                    r.name,
                    r.op,
                    output.join("x"),
                    r.params,
                    r.macs,
                    r.macs.saturating_mul(2),
                    r.activations
                );
            }
            let _ = writeln!(
                out,
                "{},total,,,{},{},{},{}",
                report.model, report.params, report.macs, report.flops, report.activations
            );
        }
        Format::Json => {
            let _ = writeln!(out, "{}", serde_json::to_string(report).unwrap_or_default());
        }
    }
    out
}

/// "ResNet-50 vs +SE vs +CBAM": one line per model, differences from the first.
pub fn render_comparison(reports: &[Report], format: Format) -> String {
    let Some(first) = reports.first() else { return String::new() };
    let delta = |value: u128, base: u128| -> String {
        if base == 0 {
            return "-".into();
        }
        let sign = if value >= base { "+" } else { "-" };
        let diff = value.abs_diff(base);
        let hundredths = diff.saturating_mul(10_000) / base;
        format!("{sign}{}.{:02}%", hundredths / 100, hundredths % 100)
    };
    let header = ["model", "input", "params", "MACs", "FLOPs", "forward activations", "Δ params", "Δ MACs"];
    let rows: Vec<[String; 8]> = reports
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let (dp, dm) = if i == 0 {
                ("-".into(), "-".into())
            } else {
                (delta(r.params, first.params), delta(r.macs, first.macs))
            };
            [
                r.model.clone(),
                r.input.to_string(),
                human(r.params),
                human(r.macs),
                human(r.flops),
                bytes(r.memory.forward_activation_bytes),
                dp,
                dm,
            ]
        })
        .collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} convention, batch {}; differences from {}",
        first.convention.name(),
        first.batch,
        first.model
    );
    if format == Format::Markdown {
        let _ = writeln!(out, "\n| {} |", header.join(" | "));
        let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|");
        for row in rows {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        return out;
    }
    out.push_str(&aligned(&header, &rows, 2));
    out
}

/// `archc flops --sweep`: one row per variant of a network (`resnet width=0.5`), with
/// its cost as a multiple of `base` (the network with its parameters' defaults). CSV
/// and JSON hold exact integers, for plotting.
pub fn render_sweep(variants: &[(String, Report)], base: &Report, format: Format) -> String {
    let ratio = |value: u128, base: u128| -> f64 { if base == 0 { 0.0 } else { value as f64 / base as f64 } };
    match format {
        Format::Csv => {
            let mut out = String::from(
                "variant,params,macs,forward_activation_bytes,train_sgd_momentum_bytes,params_ratio,macs_ratio\n",
            );
            for (label, r) in variants {
                // RFC 4180: a field with a comma or a quote is quoted, its quotes doubled.
                let label = if label.contains([',', '"']) {
                    format!("\"{}\"", label.replace('"', "\"\""))
                } else {
                    label.clone()
                };
                let _ = writeln!(
                    out,
                    "{label},{},{},{},{},{:.6},{:.6}",
                    r.params,
                    r.macs,
                    r.memory.forward_activation_bytes,
                    r.memory.train_sgd_momentum_bytes,
                    ratio(r.params, base.params),
                    ratio(r.macs, base.macs)
                );
            }
            out
        }
        Format::Json => {
            let rows: Vec<serde_json::Value> = variants
                .iter()
                .map(|(label, r)| {
                    serde_json::json!({
                        "variant": label,
                        "params": super::json_exact(r.params),
                        "macs": super::json_exact(r.macs),
                        "forward_activation_bytes": super::json_exact(r.memory.forward_activation_bytes),
                        "train_sgd_momentum_bytes": super::json_exact(r.memory.train_sgd_momentum_bytes),
                        "params_ratio": ratio(r.params, base.params),
                        "macs_ratio": ratio(r.macs, base.macs),
                    })
                })
                .collect();
            let document = serde_json::json!({
                "convention": base.convention.name(),
                "batch": base.batch,
                "base": {"model": base.model, "params": super::json_exact(base.params), "macs": super::json_exact(base.macs)},
                "variants": rows,
            });
            format!("{document}\n")
        }
        Format::Table | Format::Markdown => {
            let header =
                ["variant", "params", "MACs", "forward activations", "train memory (SGD)", "× params", "× MACs"];
            let rows: Vec<[String; 7]> = variants
                .iter()
                .map(|(label, r)| {
                    [
                        label.clone(),
                        human(r.params),
                        human(r.macs),
                        bytes(r.memory.forward_activation_bytes),
                        bytes(r.memory.train_sgd_momentum_bytes),
                        format!("{:.3}", ratio(r.params, base.params)),
                        format!("{:.3}", ratio(r.macs, base.macs)),
                    ]
                })
                .collect();
            let mut out = format!(
                "{} convention, batch {}; × is the multiple of `{}` as written ({} params, {} MACs)\n",
                base.convention.name(),
                base.batch,
                base.model,
                human(base.params),
                human(base.macs)
            );
            if format == Format::Markdown {
                out.push('\n');
                out.push_str(&markdown(&header, &rows, 1));
                return out;
            }
            out.push_str(&aligned(&header, &rows, 1));
            out
        }
    }
}
