//! The benchmark job behind `archc bench`: every model of every file measured by one
//! plan, on one backend and thread count. Progress, each model's results and files
//! with errors go to `Events`; a file with errors does not stop the others.

use super::{Measurement, Mode, Plan, Report, Target, measure, read_reference};
use crate::backend::BackendKind;
use crate::cost::admission::Purpose as MemoryPurpose;
use crate::elaborate::{Compiled, Options, compile_file};
use crate::error::{Error, IoReason};
use crate::ir::Model;
use crate::lower::Precision;
use crate::report::write_atomic;
use std::path::PathBuf;

/// What to measure, and how.
pub struct Request {
    /// `.arch` files; every model in each is measured.
    pub files: Vec<String>,
    pub compile: Options,
    pub plan: Plan,
    pub backend: BackendKind,
    pub precision: Precision,
    /// CPU threads (default: one per core).
    pub threads: Option<usize>,
    /// A JSON report to compare with, read before anything is measured.
    pub reference: Option<String>,
    /// Where to write the run's JSON report, if anywhere.
    pub out: Option<PathBuf>,
    /// Refuse a network whose memory estimate exceeds what the device can give
    /// (`cost::admission`); off with `--no-memory-check`.
    pub memory_check: bool,
}

/// What the caller hears while models are measured.
pub trait Events {
    /// The reference report, once read.
    fn reference(&mut self, _path: &str, _reference: &Report) {}
    fn compiled(&mut self, _compiled: &Compiled) {}
    fn measurement(&mut self, _measurement: &Measurement) {}
    /// Every measurement of one model.
    fn measured(&mut self, _model: &Model, _results: &[Measurement]) {}
}

/// The run's report (every measurement taken), and the files that had errors (and so
/// were not measured).
pub struct Benched {
    pub report: Report,
    pub failed: Vec<String>,
}

/// Admission (`cost::admission`) of the largest batch in each mode measured.
fn admit(request: &Request, model: &Model) -> Result<(), Error> {
    let Some(&batch) = request.plan.batches.iter().max() else { return Ok(()) };
    if !request.memory_check {
        return Ok(());
    }
    for mode in &request.plan.modes {
        let purpose = match mode {
            Mode::Infer => MemoryPurpose::Infer,
            // SGD with momentum, as the measured step is.
            Mode::Train => MemoryPurpose::Train { state_copies: 1 },
        };
        crate::backend::admit(request.backend, model, purpose, batch as u64)?;
    }
    Ok(())
}

pub fn run(request: &Request, events: &mut dyn Events) -> Result<Benched, Error> {
    // Read the reference first: a bad file should fail before minutes of measuring.
    if let Some(path) = &request.reference {
        events.reference(path, &read_reference(path)?);
    }
    let threads = crate::backend::use_threads(request.threads, true)?;
    let (mut measurements, mut failed) = (Vec::new(), Vec::new());
    for path in &request.files {
        let compiled = compile_file(path, &request.compile)?;
        events.compiled(&compiled);
        if compiled.result.has_errors() {
            failed.push(path.clone());
            continue;
        }
        for model in &compiled.result.models {
            admit(request, model)?;
            let results = crate::with_backend!(request.backend, |B, device| {
                crate::backend::check_precision::<B>(request.precision, request.backend, &device)?;
                let target = Target { kind: request.backend, precision: request.precision, threads };
                let mut progress = |m: &Measurement| events.measurement(m);
                measure::<burn::backend::Autodiff<B>>(model, &request.plan, &target, &device, &mut progress)
            })??;
            events.measured(model, &results);
            measurements.extend(results);
        }
    }
    let report = Report::new(measurements);
    if let Some(out) = &request.out {
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| Error::Write { path: out.clone(), reason: IoReason::Other(e.to_string()) })?;
        write_atomic(out, json + "\n")?;
    }
    Ok(Benched { report, failed })
}
