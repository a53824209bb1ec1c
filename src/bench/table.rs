//! Bench results as a user reads them: one table per model, and archc beside a
//! reference run (PyTorch's, from `bench/pytorch_reference.py`) with the ratio.

use super::{Measurement, Mode, Report, SCHEMA};
use crate::cost::{self, Convention, GroupBy};
use crate::error::{ArgumentError, Error, FileKind, IoReason};
use crate::ir::Model;
use crate::report::{aligned, bytes, human};

fn milliseconds(ms: f64) -> String {
    if ms >= 100.0 {
        format!("{ms:.0}")
    } else if ms >= 10.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.2}")
    }
}

fn rate(x: f64) -> String {
    if x >= 100.0 { format!("{x:.0}") } else { format!("{x:.1}") }
}

fn peak(bytes_used: Option<u64>) -> String {
    bytes_used.map(|b| bytes(b as u128)).unwrap_or_else(|| "-".into())
}

/// The static estimate of the memory a measurement adds on top of the weights it
/// starts with: the activations of one forward pass for inference; for a training
/// step also the gradients and the momentum buffers (`archc flops`' memory rows).
fn estimate(model: &Model, mode: Mode, batch: usize) -> u128 {
    let memory = cost::report(model, Convention::Core, batch as u64, GroupBy::Layer).memory;
    match mode {
        Mode::Infer => memory.forward_activation_bytes,
        Mode::Train => memory.train_sgd_momentum_bytes.saturating_sub(memory.param_bytes),
    }
}

/// One model's measurements, with its static cost beside them.
pub fn render(model: &Model, results: &[Measurement]) -> String {
    let Some(first) = results.first() else { return String::new() };
    let forward = cost::report(model, Convention::Core, 1, GroupBy::Layer);
    let mut out = format!(
        "{} on {} ({}, {} thread{}); input {}; {} MACs = {} FLOPs per image forward, x3 for a training step\n",
        model.name,
        first.backend,
        first.device,
        first.threads,
        if first.threads == 1 { "" } else { "s" },
        model.input,
        human(forward.macs),
        human(forward.flops)
    );
    let header = ["mode", "batch", "median ms", "p90 ms", "images/s", "GFLOP/s", "peak memory", "static estimate"];
    let rows: Vec<[String; 8]> = results
        .iter()
        .map(|m| {
            [
                m.mode.name().into(),
                m.batch.to_string(),
                milliseconds(m.latency_ms.median),
                milliseconds(m.latency_ms.p90),
                rate(m.images_per_s),
                rate(m.gflops_achieved),
                peak(m.peak_bytes),
                bytes(estimate(model, m.mode, m.batch)),
            ]
        })
        .collect();
    out.push_str(&aligned(&header, &rows, 1));
    out
}

/// Reads a report written by `archc bench --format json` or the PyTorch reference.
pub fn read_reference(path: &str) -> Result<Report, Error> {
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::Read { path: path.into(), reason: IoReason::os(&e) })?;
    let report: Report = serde_json::from_str(&text).map_err(|e| Error::Malformed {
        path: path.into(),
        kind: FileKind::BenchReport { schema: SCHEMA },
        problem: e.to_string(),
    })?;
    if report.schema != SCHEMA {
        return Err(ArgumentError::SchemaOf { path: path.to_string(), schema: report.schema, expected: SCHEMA }.into());
    }
    Ok(report)
}

/// archc's measurements beside the reference's for the same model, mode and batch,
/// with the throughput ratio (archc ÷ reference: above 1 is faster than the reference).
pub fn side_by_side(ours: &[Measurement], reference: &Report, path: &str) -> Result<String, Error> {
    let Some(first) = ours.first() else { return Ok(String::new()) };
    let theirs: Vec<&Measurement> = reference.results.iter().filter(|r| r.model == first.model).collect();
    if theirs.is_empty() {
        let mut names: Vec<&str> = reference.results.iter().map(|r| r.model.as_str()).collect();
        names.dedup();
        let has = names.into_iter().map(String::from).collect();
        return Err(ArgumentError::ReferenceLacks { path: path.to_string(), model: first.model.clone(), has }.into());
    }
    let tool = reference.tool.split_whitespace().next().unwrap_or("reference").to_string();
    let mut out = format!(
        "{} compared with {} (`{path}`, {}, {})\n",
        first.model, reference.tool, reference.date, reference.machine
    );
    let (their_ms, their_rate, their_peak) = (format!("{tool} ms"), format!("{tool} img/s"), format!("{tool} peak"));
    let header =
        ["mode", "batch", "archc ms", &their_ms, "archc img/s", &their_rate, "ratio", "archc peak", &their_peak];
    let mut rows = Vec::new();
    let mut thread_mismatch = Vec::new();
    for m in ours {
        let twin = theirs.iter().find(|r| r.mode == m.mode && r.batch == m.batch);
        if let Some(t) = twin
            && t.threads != m.threads
        {
            thread_mismatch.push(format!(
                "{} batch {}: {} vs {} threads",
                m.mode.name(),
                m.batch,
                m.threads,
                t.threads
            ));
        }
        let missing = || "-".to_string();
        rows.push([
            m.mode.name().to_string(),
            m.batch.to_string(),
            milliseconds(m.latency_ms.median),
            twin.map(|t| milliseconds(t.latency_ms.median)).unwrap_or_else(missing),
            rate(m.images_per_s),
            twin.map(|t| rate(t.images_per_s)).unwrap_or_else(missing),
            twin.map(|t| format!("{:.2}x", m.images_per_s / t.images_per_s)).unwrap_or_else(missing),
            peak(m.peak_bytes),
            twin.map(|t| peak(t.peak_bytes)).unwrap_or_else(missing),
        ]);
    }
    out.push_str(&aligned(&header, &rows, 1));
    if !thread_mismatch.is_empty() {
        out.push_str(&format!(
            "note: thread counts differ ({}); the ratio is not like for like\n",
            thread_mismatch.join("; ")
        ));
    }
    Ok(out)
}
